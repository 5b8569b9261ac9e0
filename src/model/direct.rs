//! Direct convolution kernels: the forward pass and the weight gradient
//! computed from a zero-padded copy of each image, with no im2col columns.
//!
//! They exist for speed and keep gemm's bits. Building an image's columns
//! (313 KB for the small CNN's second layer) took about a third of that
//! layer's forward pass on the Xeon; the padded image is 20 KB and stays in
//! L1. Every output is what `gemm` 0.19 computes from the columns, bit for
//! bit, because both compute it the same way: gemm sums a dot product of
//! up to 512 terms (its depth block `kc` is never below 512) in one chain
//! of fused multiply-adds from zero, in the order of the columns, then adds
//! the chain to the destination once. These kernels run the same chain in
//! the same order, and read the same zeros at the borders. Longer dot
//! products, shapes whose channels do not fill whole vectors, and CPUs
//! without FMA keep the im2col path ([`Direct::for_forward`] and
//! [`Direct::for_weight_grad`] return `None`).

use super::conv::Geometry;

/// The longest dot product gemm is certain to sum in one chain.
const MAX_CHAIN: usize = 512;

/// Which instruction set the kernels use: both give the same bits (one
/// chain per output whatever the vector width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direct {
    Avx512,
    Avx2,
}

impl Direct {
    /// The instruction sets this CPU runs, widest first.
    pub(crate) fn available() -> Vec<Direct> {
        let mut found = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                found.push(Direct::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                found.push(Direct::Avx2);
            }
        }
        found
    }

    /// The kernels for [`super::conv::forward`] at `g`: the widest set
    /// whose vectors hold `cout` channels exactly, where it gives gemm's
    /// bits (a dot product over a patch of at most [`MAX_CHAIN`] terms).
    pub(crate) fn for_forward(g: Geometry) -> Option<Direct> {
        Direct::choose(g, g.patch())
    }

    /// The kernels for [`super::conv::weight_grad`] at `g` (dot products
    /// over the pixels), with at least 8 input channels: a weight tile
    /// spans input channels, and with fewer its few accumulators leave
    /// the FMA units waiting (twice gemm's time with one channel).
    pub(crate) fn for_weight_grad(g: Geometry) -> Option<Direct> {
        Direct::choose(g, g.pixels()).filter(|_| g.cin >= 8)
    }

    /// gemm takes other routes below 3 terms, above [`MAX_CHAIN`], and
    /// for a single pixel or output channel.
    fn choose(g: Geometry, chain: usize) -> Option<Direct> {
        if !(3..=MAX_CHAIN).contains(&chain) || g.pixels() < 2 || g.cout < 2 {
            return None;
        }
        Direct::available().into_iter().find(|isa| g.cout.is_multiple_of(isa.lanes()))
    }

    pub(crate) fn lanes(self) -> usize {
        match self {
            Direct::Avx512 => 16,
            Direct::Avx2 => 8,
        }
    }

    /// `out = conv(image) + bias` for one image, from `padded`
    /// ([`pad`]ded image), as `forward` computes it from im2col columns.
    pub(crate) fn forward(self, padded: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32], g: Geometry) {
        let padded_len = (g.h + 2 * g.pad()) * (g.w + 2 * g.pad()) * g.cin;
        assert!(padded.len() >= padded_len && weights.len() >= g.patch() * g.cout);
        assert!(bias.len() >= g.cout && out.len() >= g.pixels() * g.cout);
        assert!(g.cout.is_multiple_of(self.lanes()));
        // SAFETY: the CPU has the instruction set (`choose` found it), and
        // the kernels read and write only inside the lengths asserted above.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match self {
                Direct::Avx512 => avx512::forward_image(padded, weights, bias, out, g),
                Direct::Avx2 => avx2::forward_image(padded, weights, bias, out, g),
            }
        }
    }

    /// `slot = columns(image)^T · grad`, or `slot +=` it with `accumulate`:
    /// one image's weight gradient, as `weight_grad` computes it.
    pub(crate) fn weight_grad(self, padded: &[f32], grad: &[f32], slot: &mut [f32], accumulate: bool, g: Geometry) {
        let padded_len = (g.h + 2 * g.pad()) * (g.w + 2 * g.pad()) * g.cin;
        assert!(padded.len() >= padded_len && grad.len() >= g.pixels() * g.cout);
        assert!(slot.len() >= g.patch() * g.cout);
        assert!(g.cout.is_multiple_of(self.lanes()));
        // SAFETY: as in `forward`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match self {
                Direct::Avx512 => avx512::weight_grad_image(padded, grad, slot, accumulate, g),
                Direct::Avx2 => avx2::weight_grad_image(padded, grad, slot, accumulate, g),
            }
        }
    }
}

/// The length of an image of `g` with `k / 2` zeros on every side.
pub(crate) fn padded_len(g: Geometry) -> usize {
    (g.h + 2 * g.pad()) * (g.w + 2 * g.pad()) * g.cin
}

/// `padded` = `image` (NHWC, one image) inside a border of `k / 2` zeros.
pub(crate) fn pad(image: &[f32], padded: &mut [f32], g: Geometry) {
    let (pad, row, padded_row) = (g.pad(), g.w * g.cin, (g.w + 2 * g.pad()) * g.cin);
    let padded = &mut padded[..padded_len(g)];
    padded.fill(0.0);
    for (y, src) in image.chunks_exact(row).take(g.h).enumerate() {
        let start = (y + pad) * padded_row + pad * g.cin;
        padded[start..start + row].copy_from_slice(src);
    }
}

/// The width of tiles, at most `max`, that cover `n` in as few tiles of
/// as even a width as can be: a narrow last tile would have too few
/// accumulators to keep the FMA units busy (14 pixels: 7 and 7, not 12 and 2).
fn even_tiles(n: usize, max: usize) -> usize {
    n.div_ceil(n.div_ceil(max).max(1)).max(1)
}

/// `$body!(P)` for the `P` in 1..=12 equal to `$p`: the tile widths, as
/// constants so that a tile's accumulators live in registers.
macro_rules! by_width {
    ($p:expr, $body:ident) => {
        match $p {
            1 => $body!(1),
            2 => $body!(2),
            3 => $body!(3),
            4 => $body!(4),
            5 => $body!(5),
            6 => $body!(6),
            7 => $body!(7),
            8 => $body!(8),
            9 => $body!(9),
            10 => $body!(10),
            11 => $body!(11),
            12 => $body!(12),
            _ => unreachable!("tiles are 1 to 12 wide"),
        }
    };
}

/// The kernels for one instruction set. A tile is `P` outputs (pixels for
/// the forward pass, weight rows for the gradient) by `V` vectors of
/// output channels, its `P x V` accumulators in registers (at most 24 of
/// AVX-512's 32, 12 of AVX2's 16).
macro_rules! kernels {
    ($isa:ident, $feature:literal, $lanes:literal, $max_tile:literal,
     $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident, $add:ident) => {
        #[cfg(target_arch = "x86_64")]
        mod $isa {
            use super::{even_tiles, Geometry};
            use std::arch::x86_64::*;

            const LANES: usize = $lanes;

            /// Vectors of output channels per tile (2 where they pair up)
            /// and the widest tile that keeps its accumulators in registers.
            fn tile_shape(cout: usize) -> (usize, usize) {
                if (cout / LANES) % 4 == 0 && $max_tile >= 24 {
                    (4, $max_tile / 4)
                } else if (cout / LANES) % 2 == 0 {
                    (2, $max_tile / 2)
                } else {
                    (1, $max_tile.min(12))
                }
            }

            /// Pixels `x0..x0 + P` of row `y`, channels `j0..j0 + V * LANES`:
            /// each output is its bias plus one chain over the patch in
            /// im2col's order (kernel row, kernel column, input channel).
            #[target_feature(enable = $feature)]
            unsafe fn forward_tile<const P: usize, const V: usize>(
                padded: *const f32,
                weights: *const f32,
                bias: *const f32,
                out: *mut f32,
                g: Geometry,
                (y, x0, j0): (usize, usize, usize),
            ) {
                let (cin, cout, padded_w) = (g.cin, g.cout, g.w + 2 * (g.k / 2));
                let mut acc = [[$zero(); V]; P];
                for ky in 0..g.k {
                    for kx in 0..g.k {
                        let input = padded.add(((y + ky) * padded_w + x0 + kx) * cin);
                        let w = weights.add((ky * g.k + kx) * cin * cout + j0);
                        for c in 0..cin {
                            let mut wv = [$zero(); V];
                            for (v, wv) in wv.iter_mut().enumerate() {
                                *wv = $load(w.add(c * cout + v * LANES));
                            }
                            for (p, acc) in acc.iter_mut().enumerate() {
                                let x = $set1(*input.add(p * cin + c));
                                for (acc, wv) in acc.iter_mut().zip(&wv) {
                                    *acc = $fmadd(x, *wv, *acc);
                                }
                            }
                        }
                    }
                }
                for (p, acc) in acc.iter().enumerate() {
                    for (v, acc) in acc.iter().enumerate() {
                        let j = j0 + v * LANES;
                        $store(
                            out.add((y * g.w + x0 + p) * cout + j),
                            $add($load(bias.add(j)), *acc),
                        );
                    }
                }
            }

            #[target_feature(enable = $feature)]
            pub(super) unsafe fn forward_image(
                padded: &[f32],
                weights: &[f32],
                bias: &[f32],
                out: &mut [f32],
                g: Geometry,
            ) {
                let (v, max_p) = tile_shape(g.cout);
                let (padded, weights, bias, out) = (padded.as_ptr(), weights.as_ptr(), bias.as_ptr(), out.as_mut_ptr());
                let width = even_tiles(g.w, max_p);
                for j0 in (0..g.cout).step_by(v * LANES) {
                    for y in 0..g.h {
                        let mut x0 = 0;
                        while x0 < g.w {
                            let p = width.min(g.w - x0);
                            macro_rules! tile {
                                ($p:literal) => {
                                    match v {
                                        4 => forward_tile::<$p, 4>(padded, weights, bias, out, g, (y, x0, j0)),
                                        2 => forward_tile::<$p, 2>(padded, weights, bias, out, g, (y, x0, j0)),
                                        _ => forward_tile::<$p, 1>(padded, weights, bias, out, g, (y, x0, j0)),
                                    }
                                };
                            }
                            by_width!(p, tile);
                            x0 += p;
                        }
                    }
                }
            }

            /// Weight rows of kernel tap (`ky`, `kx`), input channels
            /// `c0..c0 + P`, output channels `j0..j0 + V * LANES`: each is
            /// one chain over the pixels in order, stored or added once.
            #[target_feature(enable = $feature)]
            unsafe fn weight_tile<const P: usize, const V: usize>(
                padded: *const f32,
                grad: *const f32,
                slot: *mut f32,
                accumulate: bool,
                g: Geometry,
                (ky, kx, c0, j0): (usize, usize, usize, usize),
            ) {
                let (cin, cout, padded_w) = (g.cin, g.cout, g.w + 2 * (g.k / 2));
                let mut acc = [[$zero(); V]; P];
                for y in 0..g.h {
                    let input_row = padded.add(((y + ky) * padded_w + kx) * cin + c0);
                    for x in 0..g.w {
                        let input = input_row.add(x * cin);
                        let grad = grad.add((y * g.w + x) * cout + j0);
                        let mut gv = [$zero(); V];
                        for (v, gv) in gv.iter_mut().enumerate() {
                            *gv = $load(grad.add(v * LANES));
                        }
                        for (i, acc) in acc.iter_mut().enumerate() {
                            let x = $set1(*input.add(i));
                            for (acc, gv) in acc.iter_mut().zip(&gv) {
                                *acc = $fmadd(x, *gv, *acc);
                            }
                        }
                    }
                }
                let row0 = (ky * g.k + kx) * cin + c0;
                for (i, acc) in acc.iter().enumerate() {
                    for (v, acc) in acc.iter().enumerate() {
                        let s = slot.add((row0 + i) * cout + j0 + v * LANES);
                        $store(s, if accumulate { $add($load(s), *acc) } else { *acc });
                    }
                }
            }

            #[target_feature(enable = $feature)]
            pub(super) unsafe fn weight_grad_image(
                padded: &[f32],
                grad: &[f32],
                slot: &mut [f32],
                accumulate: bool,
                g: Geometry,
            ) {
                let (v, max_p) = tile_shape(g.cout);
                let width = even_tiles(g.cin, max_p);
                let (padded, grad, slot) = (padded.as_ptr(), grad.as_ptr(), slot.as_mut_ptr());
                for j0 in (0..g.cout).step_by(v * LANES) {
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            let mut c0 = 0;
                            while c0 < g.cin {
                                let p = width.min(g.cin - c0);
                                macro_rules! tile {
                                    ($p:literal) => {
                                        match v {
                                            4 => weight_tile::<$p, 4>(
                                                padded,
                                                grad,
                                                slot,
                                                accumulate,
                                                g,
                                                (ky, kx, c0, j0),
                                            ),
                                            2 => weight_tile::<$p, 2>(
                                                padded,
                                                grad,
                                                slot,
                                                accumulate,
                                                g,
                                                (ky, kx, c0, j0),
                                            ),
                                            _ => weight_tile::<$p, 1>(
                                                padded,
                                                grad,
                                                slot,
                                                accumulate,
                                                g,
                                                (ky, kx, c0, j0),
                                            ),
                                        }
                                    };
                                }
                                by_width!(p, tile);
                                c0 += p;
                            }
                        }
                    }
                }
            }
        }
    };
}

kernels!(
    avx512,
    "avx512f",
    16,
    24,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps
);
kernels!(
    avx2,
    "avx2,fma",
    8,
    12,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_as_even_as_can_be() {
        assert_eq!(even_tiles(14, 12), 7);
        assert_eq!(even_tiles(28, 12), 10);
        assert_eq!(even_tiles(12, 12), 12);
        assert_eq!(even_tiles(16, 6), 6);
        assert_eq!(even_tiles(1, 12), 1);
        assert_eq!(even_tiles(0, 12), 1);
    }

    #[test]
    fn padding_puts_the_image_inside_a_border_of_zeros() {
        let g = Geometry {
            h: 2,
            w: 3,
            cin: 2,
            cout: 8,
            k: 3,
        };
        let image: Vec<f32> = (1..=12).map(|v| v as f32).collect();
        let mut padded = vec![f32::NAN; padded_len(g)];
        pad(&image, &mut padded, g);
        let zeros = [0.0; 10];
        assert_eq!(padded.len(), 4 * 5 * 2);
        assert_eq!(&padded[..10], &zeros);
        assert_eq!(&padded[10..20], &[0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.0]);
        assert_eq!(&padded[20..30], &[0.0, 0.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 0.0, 0.0]);
        assert_eq!(&padded[30..], &zeros);
    }

    /// The shapes the shipped CNNs use get the kernels where they keep
    /// gemm's bits and are faster, and keep gemm elsewhere.
    #[test]
    fn kernels_are_chosen_only_where_they_keep_the_bits_and_pay() {
        let widest = Direct::available().first().copied();
        let conv = |h, cin, cout| Geometry {
            h,
            w: h,
            cin,
            cout,
            k: 5,
        };
        // The small CNN's layers: 25- and 400-term patches, 196 pixels.
        assert_eq!(Direct::for_forward(conv(28, 1, 16)), widest);
        assert_eq!(Direct::for_forward(conv(14, 16, 32)), widest);
        assert_eq!(Direct::for_weight_grad(conv(14, 16, 32)), widest);
        // 784 pixels and 800-term patches are longer than one chain.
        assert_eq!(Direct::for_weight_grad(conv(28, 1, 16)), None);
        assert_eq!(Direct::for_forward(conv(14, 32, 64)), None);
        // One input channel: too few accumulators per weight tile.
        assert_eq!(Direct::for_weight_grad(conv(14, 1, 16)), None);
        // Output channels that fill no whole vector.
        assert_eq!(Direct::for_forward(conv(14, 16, 12)), None);
        // A single pixel: gemm multiplies a vector there.
        assert_eq!(Direct::for_forward(conv(1, 16, 32)), None);
    }
}
