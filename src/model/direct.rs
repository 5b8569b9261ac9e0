//! Direct convolution kernels: the forward pass and the weight gradient
//! computed from a zero-padded copy of each image, with no im2col columns.
//!
//! They exist for speed and keep gemm's bits. Building an image's columns
//! (313 KB for the small CNN's second layer) took about a third of that
//! layer's forward pass on the Xeon; the padded image is 20 KB and stays in
//! L1. Every output is what `gemm` 0.19 computes from the columns, bit for
//! bit, because both compute it the same way: gemm sums a dot product of
//! up to 512 terms in one chain of fused multiply-adds from zero, in the
//! order of the columns (its depth block `kc` is all of `k` whenever
//! `k <= 512`), then adds the chain to the destination once. These
//! kernels run the same chain in the same order, and read the same zeros
//! at the borders. Longer dot products, shapes whose channels do not fill
//! whole vectors, and CPUs without AVX2 and FMA keep the im2col path
//! ([`Direct::for_forward`] and [`Direct::for_weight_grad`] return `None`).
// Off x86_64 no kernel exists, and the helpers they share go unused.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_macros))]

use std::sync::atomic::{AtomicU8, Ordering};

use super::conv::Geometry;

/// Whether the engine runs AVX-512 code on this CPU: where the CPU has
/// AVX-512F and the build has the `avx512` feature (the default). gemm
/// follows the same two tests: its AVX-512 kernels exist only with that
/// feature (gemm's `x86-v4`) and run only where the CPU has AVX-512F.
pub fn uses_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cfg!(feature = "avx512") && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The longest dot product gemm is certain to sum in one chain.
const MAX_CHAIN: usize = super::kernels::MAX_DEPTH_BLOCK;

/// Which instruction set the kernels use: both give the same bits (one
/// chain per output whatever the vector width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direct {
    Avx512,
    Avx2,
}

impl Direct {
    /// Whether this CPU runs the set (a cached check, cheap per call).
    fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Direct::Avx512 => uses_avx512(),
                Direct::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The instruction sets this CPU runs, widest first.
    pub(crate) fn available() -> impl Iterator<Item = Direct> {
        [Direct::Avx512, Direct::Avx2].into_iter().filter(|isa| isa.supported())
    }

    /// The sets the engine may choose under `setting` (the process's
    /// [`ConvKernels::current`]): those [`available`](Direct::available)
    /// that it allows, widest first.
    fn allowed(setting: ConvKernels) -> impl Iterator<Item = Direct> {
        Direct::available().filter(move |isa| setting.allows(*isa))
    }

    /// The kernels for [`super::conv::forward`] at `g`: the widest set
    /// whose vectors hold `cout` channels exactly, where it gives gemm's
    /// bits (dot products over the patch, one per pixel and channel).
    pub(crate) fn for_forward(g: Geometry) -> Option<Direct> {
        Direct::choose(g, g.patch(), g.pixels(), ConvKernels::current())
    }

    /// The kernels for [`super::conv::weight_grad`] at `g` (dot products
    /// over the pixels, one per weight), with at least 8 input channels:
    /// a weight tile spans input channels, and with fewer its few
    /// accumulators leave the FMA units waiting (twice gemm's time with
    /// one channel). The kernels give the bits with any count.
    pub(crate) fn for_weight_grad(g: Geometry) -> Option<Direct> {
        Direct::choose(g, g.pixels(), g.patch(), ConvKernels::current()).filter(|_| g.cin >= 8)
    }

    /// The set for dot products of `chain` terms giving a `rows x cout`
    /// result, where gemm sums each in one chain. `conv` hands gemm that
    /// result row-major (`kernels::matmul`), so gemm transposes the
    /// problem to `cout x rows` with the channels' stride in the left
    /// operand, which rules out its horizontal kernels; below 3 terms it
    /// takes another route (`gevv`), and for a single row or channel it
    /// multiplies a vector (`gemv`); past [`MAX_CHAIN`] it splits the chain.
    /// `setting` caps the sets it may take.
    fn choose(g: Geometry, chain: usize, rows: usize, setting: ConvKernels) -> Option<Direct> {
        if !one_chain(chain, rows) || g.cout < 2 {
            return None;
        }
        Direct::allowed(setting).find(|isa| g.cout.is_multiple_of(isa.lanes()))
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
        assert!(self.supported(), "{self:?} kernels on a CPU without them");
        assert!(padded.len() >= padded_len(g) && weights.len() >= g.patch() * g.cout);
        assert!(bias.len() >= g.cout && out.len() >= g.pixels() * g.cout);
        assert!(g.cout.is_multiple_of(self.lanes()));
        // SAFETY: the CPU has the instruction set, and the kernels read
        // and write only inside the lengths asserted above.
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
        assert!(self.supported(), "{self:?} kernels on a CPU without them");
        assert!(padded.len() >= padded_len(g) && grad.len() >= g.pixels() * g.cout);
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

/// Whether gemm sums each of a `rows x cout` result's dot products of
/// `chain` terms in one chain (for `cout >= 2`; [`Direct::choose`] says why).
pub(crate) fn one_chain(chain: usize, rows: usize) -> bool {
    (3..=MAX_CHAIN).contains(&chain) && rows >= 2
}

/// Which direct kernels the engine may use, process-wide: every set it
/// runs on this CPU (the default; [`uses_avx512`] says whether that
/// includes AVX-512), AVX2 at most, or none (im2col and gemm for every
/// layer). Only `redqueen bench --conv` changes it, to time the kernels
/// against each other and against the path they replace on one machine;
/// the results have the same bits whichever runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConvKernels {
    Auto,
    Avx2,
    Im2col,
}

/// The process's [`ConvKernels`], as its discriminant (its index in
/// [`ConvKernels::ALL`]).
static CONV_KERNELS: AtomicU8 = AtomicU8::new(ConvKernels::Auto as u8);

impl ConvKernels {
    pub const ALL: [ConvKernels; 3] = [ConvKernels::Auto, ConvKernels::Avx2, ConvKernels::Im2col];

    /// The name `bench --conv` takes.
    pub fn name(self) -> &'static str {
        match self {
            ConvKernels::Auto => "auto",
            ConvKernels::Avx2 => "avx2",
            ConvKernels::Im2col => "im2col",
        }
    }

    pub fn from_name(name: &str) -> Option<ConvKernels> {
        ConvKernels::ALL.into_iter().find(|k| k.name() == name)
    }

    fn allows(self, isa: Direct) -> bool {
        match self {
            ConvKernels::Auto => true,
            ConvKernels::Avx2 => isa == Direct::Avx2,
            ConvKernels::Im2col => false,
        }
    }

    /// Make `self` the process's setting; an error (what this CPU runs)
    /// where it asks for a set the CPU lacks.
    pub fn set(self) -> Result<(), String> {
        if self == ConvKernels::Avx2 && !Direct::Avx2.supported() {
            return Err("this CPU has no AVX2 and FMA, so it runs no avx2 kernels; use auto or im2col".into());
        }
        CONV_KERNELS.store(self as u8, Ordering::Relaxed);
        Ok(())
    }

    pub fn current() -> ConvKernels {
        // Only `set` stores, and only a discriminant.
        ConvKernels::ALL[usize::from(CONV_KERNELS.load(Ordering::Relaxed))]
    }

    /// What the process's setting amounts to on this CPU: the widest set a
    /// layer whose shape suits the kernels gets (`avx512` or `avx2`), or
    /// `im2col` where none does.
    pub fn in_use() -> &'static str {
        match Direct::allowed(ConvKernels::current()).next() {
            Some(Direct::Avx512) => "avx512",
            Some(Direct::Avx2) => "avx2",
            None => "im2col",
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

/// `(start, width)` of the tiles, each at most `max` wide, that cover
/// `0..n` in as few tiles of as even widths as can be: a narrow last tile
/// would have too few accumulators to keep the FMA units busy (14 pixels:
/// 7 and 7, not 12 and 2; 32 channels by 6: 6, 6, 5, 5, 5, 5).
fn even_tiles(n: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = n.div_ceil(max.max(1));
    let (base, wider) = (n.checked_div(count).unwrap_or(0), n.checked_rem(count).unwrap_or(0));
    (0..count).map(move |i| (i * base + i.min(wider), base + usize::from(i < wider)))
}

/// `$f::<P, V>(args)` for the tile width `P` (1 to 12) equal to `$p` and
/// the vectors per tile `V` (4, 2 or 1) equal to `$v`: constants, so that
/// a tile's accumulators live in registers.
macro_rules! dispatch {
    ($f:ident, $p:expr, $v:expr, $args:tt) => {
        dispatch!(@width $f, $p, $v, $args, [1 2 3 4 5 6 7 8 9 10 11 12])
    };
    (@width $f:ident, $p:expr, $v:expr, $args:tt, [$($n:literal)*]) => {
        match $p {
            $($n => dispatch!(@vectors $f, $n, $v, $args),)*
            _ => unreachable!("tiles are 1 to 12 wide"),
        }
    };
    (@vectors $f:ident, $n:literal, $v:expr, ($($arg:expr),*)) => {
        match $v {
            4 => $f::<$n, 4>($($arg),*),
            2 => $f::<$n, 2>($($arg),*),
            _ => $f::<$n, 1>($($arg),*),
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

            /// Vectors of channels per tile (4, 2 or 1: the most that
            /// divide the channels, 4 only with AVX-512's 32 registers) and
            /// the widest tile that keeps its accumulators in registers.
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
                let (cin, cout, padded_w) = (g.cin, g.cout, g.w + 2 * g.pad());
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
                for j0 in (0..g.cout).step_by(v * LANES) {
                    for y in 0..g.h {
                        for (x0, p) in even_tiles(g.w, max_p) {
                            dispatch!(forward_tile, p, v, (padded, weights, bias, out, g, (y, x0, j0)));
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
                let (cin, cout, padded_w) = (g.cin, g.cout, g.w + 2 * g.pad());
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
                let (padded, grad, slot) = (padded.as_ptr(), grad.as_ptr(), slot.as_mut_ptr());
                for j0 in (0..g.cout).step_by(v * LANES) {
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            for (c0, p) in even_tiles(g.cin, max_p) {
                                dispatch!(
                                    weight_tile,
                                    p,
                                    v,
                                    (padded, grad, slot, accumulate, g, (ky, kx, c0, j0))
                                );
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
        let widths = |n, max| even_tiles(n, max).map(|(_, width)| width).collect::<Vec<_>>();
        assert_eq!(widths(14, 12), [7, 7]);
        assert_eq!(widths(28, 12), [10, 9, 9]);
        assert_eq!(widths(32, 6), [6, 6, 5, 5, 5, 5]);
        assert_eq!(widths(12, 12), [12]);
        assert_eq!(widths(1, 12), [1]);
        assert!(widths(0, 12).is_empty());
        // The tiles cover 0..n in order, without gaps.
        for (n, max) in [(31, 6), (28, 12), (5, 1)] {
            let mut next = 0;
            for (start, width) in even_tiles(n, max) {
                assert!(start == next && (1..=max).contains(&width));
                next = start + width;
            }
            assert_eq!(next, n);
        }
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
        let widest = Direct::available().next();
        let conv = |h, cin, cout| Geometry {
            h,
            w: h,
            cin,
            cout,
            k: 5,
        };
        // The small CNN's forward layers (25- and 400-term patches) and
        // second weight gradient (196 pixels).
        assert_eq!(Direct::for_forward(conv(28, 1, 16)), widest);
        assert_eq!(Direct::for_forward(conv(14, 16, 32)), widest);
        assert_eq!(Direct::for_weight_grad(conv(14, 16, 32)), widest);
        // The Madry CNN's second weight gradient: 4 vectors of 16 channels with AVX-512.
        assert_eq!(Direct::for_weight_grad(conv(14, 32, 64)), widest);
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

    /// AVX-512 code runs only from a build with the `avx512` feature, and
    /// there wherever the CPU has AVX-512F (gemm's own two tests).
    #[test]
    fn avx512_kernels_run_only_in_an_avx512_build() {
        #[cfg(target_arch = "x86_64")]
        let cpu_has_it = std::arch::is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        let cpu_has_it = false;
        assert_eq!(uses_avx512(), cfg!(feature = "avx512") && cpu_has_it);
        assert_eq!(Direct::available().any(|isa| isa == Direct::Avx512), uses_avx512());
    }

    /// `bench --conv`'s settings: each allows what its name says, and names
    /// round-trip. (The process-wide setting itself is left alone here: the
    /// tests run in parallel; tests/cli.rs sets it in a child process.)
    #[test]
    fn each_conv_kernels_setting_allows_what_it_names() {
        for (index, setting) in ConvKernels::ALL.into_iter().enumerate() {
            assert_eq!(ConvKernels::from_name(setting.name()), Some(setting));
            assert_eq!(setting as usize, index, "`current` reads ALL by discriminant");
        }
        assert_eq!(ConvKernels::from_name("avx512"), None);
        assert!(ConvKernels::Auto.allows(Direct::Avx512) && ConvKernels::Auto.allows(Direct::Avx2));
        assert!(!ConvKernels::Avx2.allows(Direct::Avx512) && ConvKernels::Avx2.allows(Direct::Avx2));
        assert!(!ConvKernels::Im2col.allows(Direct::Avx512) && !ConvKernels::Im2col.allows(Direct::Avx2));
        assert_eq!(ConvKernels::current(), ConvKernels::Auto);
        // The chooser honours each: the small CNN's second forward layer
        // (400 terms, 196 pixels, 32 channels) gets the widest set the
        // setting allows on this CPU, AVX2 at most, or none.
        let g = Geometry {
            h: 14,
            w: 14,
            cin: 16,
            cout: 32,
            k: 5,
        };
        let under = |setting| Direct::choose(g, g.patch(), g.pixels(), setting);
        assert_eq!(under(ConvKernels::Auto), Direct::available().next());
        assert_eq!(
            under(ConvKernels::Avx2),
            Direct::available().find(|isa| *isa == Direct::Avx2)
        );
        assert_eq!(under(ConvKernels::Im2col), None);
    }
}
