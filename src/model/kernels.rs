//! Matrix multiply and the parallel loops the native engine is built on.
//!
//! `gemm` 0.19 with its `x86-v4` feature (the `avx512` feature, on by
//! default) picks 512-bit FMA kernels at run time where the CPU has them;
//! dfdx 0.13's gemm 0.15 stops at 256-bit.

use std::sync::atomic::{AtomicUsize, Ordering};

use gemm::Parallelism;

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Threads one model's matrix multiplies and loops may use. A tournament
/// sets it from the cores left per concurrent match; results do not depend
/// on it (work is split over rows and columns, never over a reduction).
pub fn set_threads(threads: usize) {
    THREADS.store(threads.max(1), Ordering::Relaxed);
}

pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// `f` with `threads` threads, then the count before. Tests that set the
/// count take turns through one lock, so that each runs the path it names
/// (the count is one per process, and tests run side by side).
#[cfg(test)]
pub(crate) fn with_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let before = self::threads();
    set_threads(threads);
    let result = f();
    set_threads(before);
    result
}

/// Products smaller than this many multiply-adds run on one thread: waking
/// another costs more than it saves.
const PARALLEL_MIN_MACS: usize = 1 << 21;

fn parallelism(macs: usize) -> Parallelism {
    match threads() {
        n if n > 1 && macs >= PARALLEL_MIN_MACS => Parallelism::Rayon(n),
        _ => Parallelism::None,
    }
}

/// Run `f` on a thread of the matrix-multiply pool when the engine uses
/// several threads: the caller then blocks once per call, not once per
/// matrix multiply, and the matrix multiplies split work with the thread
/// already running instead of waking two others.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if threads() > 1 && rayon::current_thread_index().is_none() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

/// A row-major matrix view, or its transpose.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub transposed: bool,
}

impl<'a> View<'a> {
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        debug_assert!(data.len() >= rows * cols);
        View {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The transpose: `rows` and `cols` swap, no data moves.
    pub fn t(self) -> View<'a> {
        View {
            rows: self.cols,
            cols: self.rows,
            transposed: !self.transposed,
            data: self.data,
        }
    }

    /// (row stride, column stride) of the logical matrix.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (1, self.rows as isize)
        } else {
            (self.cols as isize, 1)
        }
    }
}

/// `dst (m x n, row-major) = a · b`, or `dst += a · b` with `accumulate`,
/// on the engine's threads where the product is large enough.
pub fn matmul(dst: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    let macs = a.rows * a.cols * b.cols;
    matmul_with(dst, a, b, accumulate, parallelism(macs));
}

/// [`matmul`] on the calling thread only: for products that are already
/// one of many running in parallel.
pub fn matmul_serial(dst: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    matmul_with(dst, a, b, accumulate, Parallelism::None);
}

fn matmul_with(dst: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool, parallelism: Parallelism) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "inner dimensions differ");
    assert!(dst.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = a.strides();
    let (b_rs, b_cs) = b.strides();
    let block = depth_block(m, n, k, (a_cs, b_rs));
    for depth in (0..k).step_by(block) {
        // SAFETY: the views and dst are in bounds for the strides given
        // (checked above); a block starts `depth < k` columns into `a` and
        // rows into `b` and ends by column and row k; dst does not alias a
        // or b (it is a distinct &mut).
        unsafe {
            gemm::gemm(
                m,
                n,
                block.min(k - depth),
                dst.as_mut_ptr(),
                1,
                n as isize,
                // Past the first block, add to what the blocks before left.
                accumulate || depth > 0,
                a.data.as_ptr().offset(depth as isize * a_cs),
                a_cs,
                a_rs,
                b.data.as_ptr().offset(depth as isize * b_rs),
                b_cs,
                b_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
}

/// The longest dot product gemm sums in one chain on every machine (the
/// direct convolution kernels rely on it too).
pub(crate) const MAX_DEPTH_BLOCK: usize = 512;

/// How many terms of each dot product one gemm call sums, so that the
/// results are the same on every machine. gemm 0.19 sums a dot product in
/// depth blocks, each a chain of fused multiply-adds from zero added to the
/// destination in turn. For a product with more than 64 rows or columns it
/// sizes the blocks from the CPU's L1 cache and its kernels' width, aiming
/// at 512 terms or more and then evening the blocks out: the 784 terms of
/// an MNIST image become two blocks of 392 on the project's EPYC (AVX2)
/// and Xeon (AVX-512) alike, but one chain of 784 on the same Xeon running
/// AVX2 code, or on an AVX2 CPU with that Xeon's 48 KiB 12-way L1. So past
/// 512 terms the engine splits the depth itself, as gemm does on those two
/// machines (the fewest blocks of at most 512, of equal size but the last),
/// and each call then sums its block in one chain everywhere. The other
/// cases are left to gemm whole, as the machine does not change them or
/// its vector width changes them anyway: a product of at most 64 rows and
/// columns is cut into 512-term blocks on every CPU; a single row or column
/// is a matrix-vector product; and a product of at most 256 outputs with
/// `a` read along its rows and `b` down its columns (`a_cs == 1`,
/// `b_rs == 1`: `a`'s column and `b`'s row stride) takes gemm's horizontal
/// kernels, which sum across a vector's lanes.
fn depth_block(m: usize, n: usize, k: usize, (a_cs, b_rs): (isize, isize)) -> usize {
    let horizontal = a_cs == 1 && b_rs == 1 && m * n <= 256;
    if k > MAX_DEPTH_BLOCK && m > 1 && n > 1 && (m > 64 || n > 64) && !horizontal {
        k.div_ceil(k.div_ceil(MAX_DEPTH_BLOCK))
    } else {
        k
    }
}

/// Every row of `dst` set to `bias`, by doubling copies: one copy per row
/// would be a call per 16 floats.
pub fn broadcast_rows(dst: &mut [f32], bias: &[f32]) {
    if dst.is_empty() {
        return;
    }
    dst[..bias.len()].copy_from_slice(bias);
    let mut filled = bias.len();
    while filled < dst.len() {
        let n = filled.min(dst.len() - filled);
        dst.copy_within(..n, filled);
        filled += n;
    }
}

/// Run `f(chunk_index, chunk)` over `data` split into chunks of `chunk`
/// elements, on the engine's threads.
pub fn for_chunks<F>(data: &mut [f32], chunk: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Send + Sync,
{
    use rayon::prelude::*;
    if threads() > 1 && data.len() >= 2 * chunk {
        data.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    } else {
        data.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut t = vec![0.0; a.len()];
        for i in 0..rows {
            for j in 0..cols {
                t[j * rows + i] = a[i * cols + j];
            }
        }
        t
    }

    /// The depth split that keeps results machine-independent: each dot
    /// product of 784 terms, in a product with more than 64 rows, is two
    /// chains of 392 fused multiply-adds from zero, added in turn, whatever
    /// the CPU's cache and vector width (a Xeon running AVX2 code used to
    /// sum all 784 in one chain). With and without `accumulate`, with
    /// either operand read transposed (as the backward pass reads them),
    /// on one thread and on two (the product is large enough to split).
    #[test]
    fn long_dot_products_are_split_the_same_way_on_every_machine() {
        let (m, k, n) = (256, 784, 64);
        assert!(m * k * n >= PARALLEL_MIN_MACS);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 977) as f32 / 977.0 - 0.5).collect();
        let (a_t, b_t) = (transpose(&a, m, k), transpose(&b, k, n));
        let start: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.25).collect();
        assert_eq!(depth_block(m, n, k, (1, n as isize)), 392);
        let chain = |i: usize, j: usize, terms: std::ops::Range<usize>| {
            terms.fold(0.0f32, |sum, p| a[i * k + p].mul_add(b[p * n + j], sum))
        };
        let expected = |accumulate: bool| -> Vec<f32> {
            (0..m * n)
                .map(|e| {
                    let (i, j) = (e / n, e % n);
                    let first = if accumulate {
                        start[e] + chain(i, j, 0..392)
                    } else {
                        chain(i, j, 0..392)
                    };
                    first + chain(i, j, 392..784)
                })
                .collect()
        };
        let (plain, added) = (expected(false), expected(true));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let views = [
            ("plain", View::new(&a, m, k), View::new(&b, k, n)),
            ("a transposed", View::new(&a_t, k, m).t(), View::new(&b, k, n)),
            ("b transposed", View::new(&a, m, k), View::new(&b_t, n, k).t()),
        ];
        for threads in [1, 2] {
            with_threads(threads, || {
                for (what, a, b) in views {
                    let mut c = vec![f32::NAN; m * n];
                    matmul(&mut c, a, b, false);
                    assert!(bits(&c) == bits(&plain), "{what}, {threads} thread(s)");
                    let mut c = start.clone();
                    matmul(&mut c, a, b, true);
                    assert!(bits(&c) == bits(&added), "{what}, {threads} thread(s), accumulate");
                }
            });
        }
        // Short depths, small products, vectors and gemm's horizontal
        // kernels are left to gemm whole.
        assert_eq!(depth_block(96, 10, 512, (1, 10)), 512);
        assert_eq!(depth_block(64, 64, 784, (1, 64)), 784);
        assert_eq!(depth_block(1, 256, 784, (1, 256)), 784);
        assert_eq!(depth_block(2, 100, 784, (1, 1)), 784);
        assert_eq!(depth_block(2, 100, 784, (1, 100)), 392);
        assert_eq!(depth_block(128, 1024, 3136, (1, 1024)), 448);
    }

    #[test]
    fn matmul_matches_naive_with_and_without_transposes() {
        let (m, k, n) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let expected = naive(&a, &b, m, k, n);
        let close = |c: &[f32]| c.iter().zip(&expected).all(|(x, y)| (x - y).abs() < 1e-4);

        let mut c = vec![0.0; m * n];
        matmul(&mut c, View::new(&a, m, k), View::new(&b, k, n), false);
        assert!(close(&c));

        let at = transpose(&a, m, k);
        let bt = transpose(&b, k, n);
        let mut c = vec![0.0; m * n];
        matmul(&mut c, View::new(&at, k, m).t(), View::new(&bt, n, k).t(), false);
        assert!(close(&c));

        // Accumulate adds onto what is there.
        matmul(&mut c, View::new(&a, m, k), View::new(&b, k, n), true);
        assert!(c.iter().zip(&expected).all(|(x, y)| (x - 2.0 * y).abs() < 1e-4));
    }

    #[test]
    fn results_do_not_depend_on_threads() {
        let (m, k, n) = (128, 300, 256);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut one = vec![0.0; m * n];
        let mut two = vec![0.0; m * n];
        with_threads(1, || matmul(&mut one, View::new(&a, m, k), View::new(&b, k, n), false));
        with_threads(2, || matmul(&mut two, View::new(&a, m, k), View::new(&b, k, n), false));
        assert_eq!(one, two);
    }
}
