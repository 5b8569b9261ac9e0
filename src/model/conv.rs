//! Same-padded, stride-1 convolutions and 2x2 max-pooling in NHWC for the
//! native engine.
//!
//! The forward pass and the input gradient run image by image, the images
//! in parallel: each image's im2col columns are built in a per-thread buffer
//! that the matrix multiply reads right after, while it is in cache (313 KB
//! for the small CNN's second layer, 627 KB for the Madry CNN's), and no
//! column matrix of the whole batch is ever built or scattered back. Where
//! the direct kernels of `direct.rs` give the same bits, the forward pass
//! and the weight gradient skip the columns and read a zero-padded copy of
//! the image from the same buffer. Each image's work runs on one thread
//! with the same shapes whatever the thread count, so results do not
//! depend on it. The weight gradient, a sum over the batch, is summed in a
//! fixed order: per image into one of a fixed number of slots, then the
//! slots in order.
//!
//! Columns come in two layouts. With several input channels, pixel-major
//! (`[pixel][tap][channel]`): each kernel row of a patch is one contiguous
//! run of the input row, copied whole. With one input channel (the first
//! layer of an MNIST model) pixel-major rows would be 25 single floats, so
//! the columns are tap-major (`[tap][pixel]`): each tap is the image shifted,
//! row by row, and the multiply reads the transpose.

use std::cell::RefCell;

use super::direct::{pad, padded_len, Direct};
use super::kernels::{broadcast_rows, for_chunks, matmul_serial, View};

/// A convolution layer's shape: `h x w` pixels, `cin` channels in, `cout`
/// out, a `k x k` kernel with `k / 2` zero padding on every side.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
}

impl Geometry {
    pub(crate) fn pixels(&self) -> usize {
        self.h * self.w
    }

    fn taps(&self) -> usize {
        self.k * self.k
    }

    /// Inputs per output pixel: the rows of the weight matrix.
    pub(crate) fn patch(&self) -> usize {
        self.taps() * self.cin
    }

    pub(crate) fn pad(&self) -> usize {
        self.k / 2
    }

    /// Output coordinates `o` along an axis of length `n` whose input
    /// `o + offset - pad` lies inside the image.
    fn valid_outputs(&self, offset: usize, n: usize) -> std::ops::Range<usize> {
        let pad = self.pad();
        ordered(pad.saturating_sub(offset), (n + pad).saturating_sub(offset).min(n))
    }

    /// Kernel offsets whose input `o + offset - pad` lies inside an axis of
    /// length `n`, for output coordinate `o`.
    fn valid_offsets(&self, o: usize, n: usize) -> std::ops::Range<usize> {
        let pad = self.pad();
        ordered(pad.saturating_sub(o), (n + pad).saturating_sub(o).min(self.k))
    }
}

/// `start..end`, or the empty `end..end` where `start > end` (an image
/// narrower than the padding), so that slicing by it stays in bounds.
fn ordered(start: usize, end: usize) -> std::ops::Range<usize> {
    start.min(end)..end
}

thread_local! {
    /// One image's columns (or column gradients, or its zero-padded copy
    /// for the direct kernels), per thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.len() < len {
            scratch.resize(len, 0.0);
        }
        f(&mut scratch[..len])
    })
}

/// `dst = src` for the kernel rows of a patch that pixel-major columns copy
/// (80 floats in the small CNN's second layer, 160 in the Madry CNN's), in
/// blocks that compile to vector moves rather than a call to memmove: about
/// 13% faster columns with 16 channels on the Xeon, the same with 32. The
/// one-channel layout's image rows (28 floats) copy faster through memmove.
#[inline]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    fn blocks<const N: usize>(dst: &mut [f32], src: &[f32]) -> usize {
        let whole = dst.len() / N * N;
        for (d, s) in dst[..whole].chunks_exact_mut(N).zip(src.chunks_exact(N)) {
            let d: &mut [f32; N] = d.try_into().expect("a block of N");
            *d = s.try_into().expect("a block of N");
        }
        whole
    }
    assert_eq!(dst.len(), src.len());
    let done = blocks::<16>(dst, src);
    let done = done + blocks::<4>(&mut dst[done..], &src[done..]);
    for (d, s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = *s;
    }
}

/// `columns[tap][pixel]` of one single-channel image.
fn columns_tap_major(image: &[f32], columns: &mut [f32], g: Geometry) {
    let (h, w, pad) = (g.h, g.w, g.pad());
    for (tap, plane) in columns.chunks_mut(g.pixels()).enumerate() {
        let (ky, kx) = (tap / g.k, tap % g.k);
        let rows = g.valid_outputs(ky, h);
        let xs = g.valid_outputs(kx, w);
        for (y, row) in plane.chunks_mut(w).enumerate() {
            if !rows.contains(&y) {
                row.fill(0.0);
                continue;
            }
            row[..xs.start].fill(0.0);
            row[xs.end..].fill(0.0);
            let src = (y + ky - pad) * w + xs.start + kx - pad;
            row[xs.clone()].copy_from_slice(&image[src..src + xs.len()]);
        }
    }
}

/// The adjoint of [`columns_tap_major`]: `image += ` the column gradients
/// summed back onto the pixels they were copied from.
fn add_tap_major(columns: &[f32], image: &mut [f32], g: Geometry) {
    let (h, w, pad) = (g.h, g.w, g.pad());
    for (tap, plane) in columns.chunks(g.pixels()).enumerate() {
        let (ky, kx) = (tap / g.k, tap % g.k);
        let xs = g.valid_outputs(kx, w);
        for y in g.valid_outputs(ky, h) {
            let dst = (y + ky - pad) * w + xs.start + kx - pad;
            let src = &plane[y * w + xs.start..y * w + xs.end];
            for (d, s) in image[dst..dst + xs.len()].iter_mut().zip(src) {
                *d += s;
            }
        }
    }
}

/// `columns[pixel][tap][channel]` of one image.
fn columns_pixel_major(image: &[f32], columns: &mut [f32], g: Geometry) {
    let (w, cin, pad, row_len) = (g.w, g.cin, g.pad(), g.k * g.cin);
    for (p, patch) in columns.chunks_mut(g.patch()).enumerate() {
        let (y, x) = (p / w, p % w);
        let kxs = g.valid_offsets(x, w);
        for (ky, row) in patch.chunks_mut(row_len).enumerate() {
            if !g.valid_offsets(y, g.h).contains(&ky) {
                row.fill(0.0);
                continue;
            }
            row[..kxs.start * cin].fill(0.0);
            row[kxs.end * cin..].fill(0.0);
            let src = ((y + ky - pad) * w + x + kxs.start - pad) * cin;
            copy_run(
                &mut row[kxs.start * cin..kxs.end * cin],
                &image[src..src + kxs.len() * cin],
            );
        }
    }
}

/// The adjoint of [`columns_pixel_major`].
fn add_pixel_major(columns: &[f32], image: &mut [f32], g: Geometry) {
    let (w, cin, pad, row_len) = (g.w, g.cin, g.pad(), g.k * g.cin);
    for (p, patch) in columns.chunks(g.patch()).enumerate() {
        let (y, x) = (p / w, p % w);
        let kxs = g.valid_offsets(x, w);
        for ky in g.valid_offsets(y, g.h) {
            let src = &patch[ky * row_len + kxs.start * cin..ky * row_len + kxs.end * cin];
            let dst = ((y + ky - pad) * w + x + kxs.start - pad) * cin;
            for (d, s) in image[dst..dst + src.len()].iter_mut().zip(src) {
                *d += s;
            }
        }
    }
}

/// One image's im2col columns, in the layout that suits `g`, as the
/// `(pixels x k*k*cin)` matrix they stand for.
fn im2col<'a>(image: &[f32], columns: &'a mut [f32], g: Geometry) -> View<'a> {
    if g.cin == 1 {
        columns_tap_major(image, columns, g);
        View::new(columns, g.taps(), g.pixels()).t()
    } else {
        columns_pixel_major(image, columns, g);
        View::new(columns, g.pixels(), g.patch())
    }
}

/// `output = conv(input, weights) + bias` for a batch; `weights` is
/// `(k, k, cin, cout)`, row-major.
pub fn forward(input: &[f32], weights: &[f32], bias: &[f32], output: &mut [f32], g: Geometry) {
    forward_with(input, weights, bias, output, g, Direct::for_forward(g));
}

/// [`forward`] with the direct kernels of `direct`, or from im2col columns.
fn forward_with(input: &[f32], weights: &[f32], bias: &[f32], output: &mut [f32], g: Geometry, direct: Option<Direct>) {
    let (pixels, cin, cout) = (g.pixels(), g.cin, g.cout);
    let w = View::new(weights, g.patch(), cout);
    for_chunks(output, pixels * cout, |b, out| {
        let image = &input[b * pixels * cin..(b + 1) * pixels * cin];
        if let Some(direct) = direct {
            return with_scratch(padded_len(g), |padded| {
                pad(image, padded, g);
                direct.forward(padded, weights, bias, out, g);
            });
        }
        // The bias is set image by image, so that the multiply finds it in cache.
        broadcast_rows(out, bias);
        with_scratch(pixels * g.patch(), |columns| {
            matmul_serial(out, im2col(image, columns, g), w, true);
        });
    });
}

/// `grad_in = d loss / d input` from `grad_out = d loss / d output`.
/// `weights_t` is the `(cout, k*k*cin)` transpose of the weights.
pub fn input_grad(grad_out: &[f32], weights_t: View<'_>, grad_in: &mut [f32], g: Geometry) {
    let (pixels, cin, cout) = (g.pixels(), g.cin, g.cout);
    for_chunks(grad_in, pixels * cin, |b, image_grad| {
        let grad = &grad_out[b * pixels * cout..(b + 1) * pixels * cout];
        image_grad.fill(0.0);
        with_scratch(pixels * g.patch(), |columns| {
            if cin == 1 {
                // Tap-major: [tap][pixel] = weights (taps x cout) · grad^T.
                let grad_t = View::new(grad, pixels, cout).t();
                matmul_serial(columns, weights_t.t(), grad_t, false);
                add_tap_major(columns, image_grad, g);
            } else {
                matmul_serial(columns, View::new(grad, pixels, cout), weights_t, false);
                add_pixel_major(columns, image_grad, g);
            }
        });
    });
}

/// Partial sums of a weight gradient: image `b` adds into slot
/// `b % WEIGHT_GRAD_SLOTS`, the slots run in parallel, each over its images
/// in order, and are summed in order. A fixed count, not the thread count,
/// so that results do not depend on the threads.
const WEIGHT_GRAD_SLOTS: usize = 8;

/// `grad_weights = d loss / d weights`, summed over the batch;
/// `slots` is a buffer kept across calls.
pub fn weight_grad(input: &[f32], grad_out: &[f32], grad_weights: &mut [f32], slots: &mut Vec<f32>, g: Geometry) {
    weight_grad_with(input, grad_out, grad_weights, slots, g, Direct::for_weight_grad(g));
}

/// [`weight_grad`] with the direct kernels of `direct`, or from im2col columns.
fn weight_grad_with(
    input: &[f32],
    grad_out: &[f32],
    grad_weights: &mut [f32],
    slots: &mut Vec<f32>,
    g: Geometry,
    direct: Option<Direct>,
) {
    let (pixels, cin, cout, patch) = (g.pixels(), g.cin, g.cout, g.patch());
    let batch = grad_out.len() / (pixels * cout);
    if batch == 0 {
        grad_weights.fill(0.0);
        return;
    }
    let count = WEIGHT_GRAD_SLOTS.min(batch);
    slots.resize(count * patch * cout, 0.0);
    let scratch_len = if direct.is_some() {
        padded_len(g)
    } else {
        pixels * patch
    };
    for_chunks(slots, patch * cout, |s, slot| {
        with_scratch(scratch_len, |scratch| {
            for (n, b) in (s..batch).step_by(count).enumerate() {
                let image = &input[b * pixels * cin..(b + 1) * pixels * cin];
                let grad = &grad_out[b * pixels * cout..(b + 1) * pixels * cout];
                if let Some(direct) = direct {
                    pad(image, scratch, g);
                    direct.weight_grad(scratch, grad, slot, n > 0, g);
                } else {
                    let grad = View::new(grad, pixels, cout);
                    matmul_serial(slot, im2col(image, scratch, g).t(), grad, n > 0);
                }
            }
        });
    });
    grad_weights.copy_from_slice(&slots[..patch * cout]);
    for slot in slots.chunks(patch * cout).skip(1) {
        grad_weights.iter_mut().zip(slot).for_each(|(d, s)| *d += s);
    }
}

/// 2x2 max-pooling with stride 2 followed by ReLU (max and ReLU commute,
/// so the convolution before it skips its own ReLU: 4 times fewer values).
/// One image per parallel task; the loops over channels are selects only,
/// so that they vectorize.
pub fn max_pool_relu(input: &[f32], output: &mut [f32], h: usize, w: usize, c: usize) {
    let (oh, ow) = (h / 2, w / 2);
    for_chunks(output, oh * ow * c, |b, out| {
        let image = &input[b * h * w * c..(b + 1) * h * w * c];
        for (o, out) in out.chunks_mut(c).enumerate() {
            let window = window(image, o / ow, o % ow, w, c);
            for ch in 0..c {
                // `>` in window order: the first of tied maxima wins, as in PyTorch.
                let mut best = window[0][ch];
                for corner in &window[1..] {
                    best = if corner[ch] > best { corner[ch] } else { best };
                }
                out[ch] = best.max(0.0);
            }
        }
    });
}

/// The four inputs of output pixel (`oy`, `ox`)'s window, row-major.
/// Inlined: a call per output pixel took 1.4 to 2% of the samples outside
/// the FMA probe in `perf` profiles of the small CNN's train step (Xeon).
#[inline(always)]
fn window(image: &[f32], oy: usize, ox: usize, w: usize, c: usize) -> [&[f32]; 4] {
    let top = (2 * oy * w + 2 * ox) * c;
    let bottom = top + w * c;
    [
        &image[top..top + c],
        &image[top + c..top + 2 * c],
        &image[bottom..bottom + c],
        &image[bottom + c..bottom + 2 * c],
    ]
}

/// The gradient of [`max_pool_relu`] with respect to its `input`: each
/// window's winner (the first input equal to the output) gets the window's
/// gradient unless the ReLU clamped the output to 0, every other input
/// zero. So the convolution before it needs no ReLU backward of its own,
/// and the forward pass need not remember the winners.
pub fn max_pool_relu_backward(
    grad_out: &[f32],
    input: &[f32],
    output: &[f32],
    grad_in: &mut [f32],
    h: usize,
    w: usize,
    c: usize,
) {
    let (oh, ow) = (h / 2, w / 2);
    let per_image = oh * ow * c;
    for_chunks(grad_in, h * w * c, |b, image_grad| {
        if h % 2 == 1 || w % 2 == 1 {
            // A last odd row or column belongs to no window.
            image_grad.fill(0.0);
        }
        let image = &input[b * h * w * c..(b + 1) * h * w * c];
        let grad = &grad_out[b * per_image..(b + 1) * per_image];
        let pooled = &output[b * per_image..(b + 1) * per_image];
        for o in 0..oh * ow {
            let (oy, ox) = (o / ow, o % ow);
            let (grad, pooled) = (&grad[o * c..(o + 1) * c], &pooled[o * c..(o + 1) * c]);
            let [x0, x1, x2, x3] = window(image, oy, ox, w, c);
            let top = (2 * oy * w + 2 * ox) * c;
            let (upper, lower) = image_grad[top..].split_at_mut(w * c);
            let (d0, d1) = upper[..2 * c].split_at_mut(c);
            let (d2, d3) = lower[..2 * c].split_at_mut(c);
            route_window(pooled, grad, [x0, x1, x2, x3], [d0, d1, d2, d3]);
        }
    });
}

/// One window's gradients: `d[q][ch]` = `grad[ch]` where input `x[q]` is
/// the first of the four equal to the pooled value and that value is
/// positive, else 0. With SSE2 masks four channels at a time (compilers
/// leave the scalar form of this loop scalar), the rest one by one.
fn route_window(pooled: &[f32], grad: &[f32], x: [&[f32]; 4], d: [&mut [f32]; 4]) {
    let c = pooled.len();
    let [d0, d1, d2, d3] = d;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        assert!(grad.len() >= c && x.iter().all(|x| x.len() >= c));
        assert!(d0.len() >= c && d1.len() >= c && d2.len() >= c && d3.len() >= c);
        while done + 4 <= c {
            // SAFETY: SSE2 is part of x86_64, and every slice holds at least
            // `c` floats (asserted above), so the 4 lanes at `done` are in bounds.
            unsafe {
                let at = |s: &[f32]| _mm_loadu_ps(s.as_ptr().add(done));
                let p = at(pooled);
                let g = _mm_and_ps(at(grad), _mm_cmpgt_ps(p, _mm_setzero_ps()));
                let e: [__m128; 4] = std::array::from_fn(|q| _mm_cmpeq_ps(at(x[q]), p));
                let mut taken = e[0];
                _mm_storeu_ps(d0.as_mut_ptr().add(done), _mm_and_ps(e[0], g));
                for (q, dst) in [(1, &mut *d1), (2, &mut *d2), (3, &mut *d3)] {
                    _mm_storeu_ps(dst.as_mut_ptr().add(done), _mm_and_ps(_mm_andnot_ps(taken, e[q]), g));
                    taken = _mm_or_ps(taken, e[q]);
                }
            }
            done += 4;
        }
    }
    for ch in done..c {
        let p = pooled[ch];
        let g = if p > 0.0 { grad[ch] } else { 0.0 };
        let e = [x[0][ch] == p, x[1][ch] == p, x[2][ch] == p, x[3][ch] == p];
        d0[ch] = if e[0] { g } else { 0.0 };
        d1[ch] = if e[1] && !e[0] { g } else { 0.0 };
        d2[ch] = if e[2] && !(e[0] || e[1]) { g } else { 0.0 };
        d3[ch] = if e[3] && !(e[0] || e[1] || e[2]) { g } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::direct::one_chain;
    use crate::model::net::naive_conv2d;

    fn pseudo_random(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.618).sin()).collect()
    }

    #[test]
    fn runs_of_every_length_copy_whole() {
        // Every mix of 16-blocks, 4-blocks and single floats, past 2 x 16 + 4 + 3.
        let src: Vec<f32> = (0..40).map(|i| i as f32 + 0.5).collect();
        for len in 0..=src.len() {
            let mut dst = vec![-1.0; len + 1];
            copy_run(&mut dst[..len], &src[..len]);
            assert_eq!(&dst[..len], &src[..len], "length {len}");
            assert_eq!(dst[len], -1.0, "length {len}: wrote past the run");
        }
    }

    /// Both column layouts, at shapes with and without a full interior,
    /// against the naive convolution, and each adjoint against its columns
    /// by `<columns(x), c> == <x, adjoint(c)>`.
    #[test]
    fn convolution_and_its_adjoint_match_the_naive_convolution() {
        for (h, w, cin, cout, k) in [
            (6, 5, 1, 3, 5),
            (6, 5, 3, 4, 5),
            (2, 3, 2, 2, 5),
            (7, 7, 1, 8, 3),
            (4, 4, 5, 9, 3),
        ] {
            let g = Geometry { h, w, cin, cout, k };
            let batch = 3;
            let x = pseudo_random(batch * h * w * cin, 1.0);
            let weights = pseudo_random(g.patch() * cout, 2.0);
            let bias = pseudo_random(cout, 3.0);
            let mut out = vec![f32::NAN; batch * h * w * cout];
            forward(&x, &weights, &bias, &mut out, g);
            let expected = naive_conv2d(&x, &weights, &bias, batch, h, w, cin, cout, k);
            for (a, b) in out.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "{:?}: {a} vs {b}", (h, w, cin, cout, k));
            }

            let image = &x[..h * w * cin];
            let mut columns = vec![0.0; h * w * g.patch()];
            let c = pseudo_random(columns.len(), 4.0);
            let mut back = vec![0.0; image.len()];
            if cin == 1 {
                columns_tap_major(image, &mut columns, g);
                add_tap_major(&c, &mut back, g);
            } else {
                columns_pixel_major(image, &mut columns, g);
                add_pixel_major(&c, &mut back, g);
            }
            let lhs: f32 = columns.iter().zip(&c).map(|(a, b)| a * b).sum();
            let rhs: f32 = image.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0), "adjoint {lhs} vs {rhs}");
        }
    }

    /// The direct kernels of every instruction set this CPU runs give the
    /// bits of the im2col path, in the forward pass and the weight
    /// gradient (stored and accumulated), at shapes with ragged tiles,
    /// images smaller than the kernel, and inputs that are half zeros (as
    /// after a ReLU).
    #[test]
    fn direct_kernels_give_the_bits_of_im2col_and_gemm() {
        for (h, w, cin, cout, k) in [
            (14, 14, 16, 32, 5),
            (28, 28, 1, 16, 5),
            (8, 8, 1, 16, 5),
            (6, 5, 16, 16, 5),
            (7, 9, 3, 24, 3),
            (2, 3, 2, 32, 5),
            (5, 13, 7, 48, 5),
            (4, 4, 13, 8, 3),
            // 4 vectors of channels per tile with AVX-512 (the Madry CNN's 64).
            (7, 7, 16, 64, 5),
            (14, 14, 32, 64, 3),
            // Even kernels, a 1x1 kernel, a single row.
            (5, 6, 8, 16, 4),
            (3, 4, 3, 8, 2),
            (4, 4, 8, 16, 1),
            (1, 9, 8, 16, 3),
        ] {
            let g = Geometry { h, w, cin, cout, k };
            let batch = 10;
            let x: Vec<f32> = pseudo_random(batch * h * w * cin, 1.0)
                .iter()
                .map(|v| v.max(0.0))
                .collect();
            let weights = pseudo_random(g.patch() * cout, 2.0);
            let bias = pseudo_random(cout, 3.0);
            let grad_out = pseudo_random(batch * h * w * cout, 4.0);
            let mut expected = vec![f32::NAN; batch * h * w * cout];
            forward_with(&x, &weights, &bias, &mut expected, g, None);
            let mut expected_grad = vec![f32::NAN; g.patch() * cout];
            weight_grad_with(&x, &grad_out, &mut expected_grad, &mut vec![], g, None);
            let label = (h, w, cin, cout, k);
            for isa in Direct::available().filter(|isa| cout.is_multiple_of(isa.lanes())) {
                // Only where gemm sums in one chain must the bits agree. The
                // weight gradient is tested below 8 input channels too,
                // where it is not chosen (speed).
                if one_chain(g.patch(), g.pixels()) {
                    let mut out = vec![f32::NAN; expected.len()];
                    forward_with(&x, &weights, &bias, &mut out, g, Some(isa));
                    assert!(out == expected, "{isa:?} forward, {label:?}");
                }
                if one_chain(g.pixels(), g.patch()) {
                    let mut grad = vec![f32::NAN; expected_grad.len()];
                    weight_grad_with(&x, &grad_out, &mut grad, &mut vec![], g, Some(isa));
                    assert!(grad == expected_grad, "{isa:?} weight gradient, {label:?}");
                }
            }
        }
    }

    #[test]
    fn pooling_keeps_the_first_of_tied_maxima_and_routes_gradients_there() {
        // One image, 2x4 pixels, 1 channel: windows [0 1; 4 5] and [2 3; 6 7].
        let x = [1.0, 3.0, -2.0, -1.0, 3.0, 0.0, -5.0, -1.0];
        let mut out = vec![0.0; 2];
        max_pool_relu(&x, &mut out, 2, 4, 1);
        assert_eq!(out, vec![3.0, 0.0]);
        // The first window's tied 3s: the first gets it. The second
        // window's winner (-1) was clamped by the ReLU: nothing flows.
        let mut grad_in = vec![9.0; 8];
        max_pool_relu_backward(&[10.0, 20.0], &x, &out, &mut grad_in, 2, 4, 1);
        assert_eq!(grad_in, vec![0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // 5x3 pixels, 2 channels: the odd last row and column get zeros.
        let x: Vec<f32> = (0..30).map(|v| v as f32).collect();
        let mut out = vec![0.0; 4];
        max_pool_relu(&x, &mut out, 5, 3, 2);
        assert_eq!(out, vec![8.0, 9.0, 20.0, 21.0]);
        let mut grad_in = vec![9.0; 30];
        max_pool_relu_backward(&[1.0, 2.0, 3.0, 4.0], &x, &out, &mut grad_in, 5, 3, 2);
        let mut expected = vec![0.0; 30];
        (expected[8], expected[9], expected[20], expected[21]) = (1.0, 2.0, 3.0, 4.0);
        assert_eq!(grad_in, expected);
    }

    /// With 7 channels (one 4-wide SSE2 block and a scalar tail), values
    /// from a small set so that ties and clamped windows are common: the
    /// gradients match a reference that remembers the winner's index.
    #[test]
    fn pooling_gradients_match_an_argmax_reference_in_both_code_paths() {
        let (batch, h, w, c) = (2, 4, 6, 7);
        let x: Vec<f32> = (0..batch * h * w * c).map(|i| ((i * 7919) % 5) as f32 - 2.0).collect();
        let grad_out: Vec<f32> = (0..batch * (h / 2) * (w / 2) * c).map(|i| i as f32 + 1.0).collect();
        let mut out = vec![0.0; grad_out.len()];
        max_pool_relu(&x, &mut out, h, w, c);
        let mut grad_in = vec![f32::NAN; x.len()];
        max_pool_relu_backward(&grad_out, &x, &out, &mut grad_in, h, w, c);

        let mut expected = vec![0.0; x.len()];
        for b in 0..batch {
            for (o, (&g, &pooled)) in grad_out.iter().zip(&out).enumerate().skip(b * 6 * c).take(6 * c) {
                let (pixel, ch) = ((o / c) % 6, o % c);
                let top = ((b * h + 2 * (pixel / 3)) * w + 2 * (pixel % 3)) * c + ch;
                let corners = [top, top + c, top + w * c, top + w * c + c];
                let winner = corners
                    .into_iter()
                    .fold(corners[0], |best, i| if x[i] > x[best] { i } else { best });
                assert_eq!(pooled, x[winner].max(0.0));
                if x[winner] > 0.0 {
                    expected[winner] = g;
                }
            }
        }
        assert_eq!(grad_in, expected);
    }
}
