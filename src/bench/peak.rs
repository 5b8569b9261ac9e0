//! The machine's physical limit, measured the way `shared/bench/fma_peak.c`
//! does: independent FMA chains held in registers, no memory traffic, on
//! every thread at once. Each item's GFLOP/s is read against it.

use std::time::Instant;

use serde::Serialize;

/// Independent accumulators per thread: enough to cover the FMA latency
/// (4 cycles) on two FMA ports, as in `fma_peak.c`.
const CHAINS: usize = 12;

/// The FMA throughput of `threads` threads, in GFLOP/s, per vector width.
#[derive(Debug, Clone, Serialize)]
pub struct FmaPeak {
    /// 256-bit FMA (AVX2); absent on a CPU without FMA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fma256_gflops: Option<f64>,
    /// 512-bit FMA; absent on a CPU without AVX-512.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fma512_gflops: Option<f64>,
}

impl FmaPeak {
    /// The widest vector's figure: what the engine's kernels can reach.
    pub fn best(&self) -> Option<f64> {
        self.fma512_gflops.or(self.fma256_gflops)
    }
}

/// Which microkernels `gemm` 0.19 dispatches to on this CPU: where built
/// with AVX-512 ([`crate::model::uses_avx512`]) it tests `avx512f`, then
/// `fma`, at run time (gemm-common's `gemm_def!`), the same tests as here.
pub fn kernel_family() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::model::uses_avx512() {
            return "avx512";
        }
        if is_x86_feature_detected!("fma") {
            return "avx2-fma";
        }
    }
    "scalar"
}

/// Median of 5 timed runs per width after a warm-up, every thread running
/// the loop at once (`quick`: shorter runs). Only the widths the engine
/// runs: no 512-bit figure from a build without AVX-512, whose kernels
/// cannot reach it.
pub fn measure(threads: usize, quick: bool) -> FmaPeak {
    #[cfg(target_arch = "x86_64")]
    {
        let iterations: u64 = if quick { 10_000_000 } else { 50_000_000 };
        let fma256_gflops = (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then(|| {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            median_gflops(threads, iterations, 8, |n| unsafe { x86::fma256(n) })
        });
        let fma512_gflops = crate::model::uses_avx512().then(|| {
            // SAFETY: the CPU has AVX-512F (`uses_avx512` checks it).
            median_gflops(threads, iterations, 16, |n| unsafe { x86::fma512(n) })
        });
        FmaPeak {
            fma256_gflops,
            fma512_gflops,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (threads, quick);
        FmaPeak {
            fma256_gflops: None,
            fma512_gflops: None,
        }
    }
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn median_gflops(threads: usize, iterations: u64, lanes: usize, run: impl Fn(u64) -> f32 + Sync) -> f64 {
    let timed = |iterations: u64| {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| std::hint::black_box(run(iterations)));
            }
        });
        let flop = threads as f64 * iterations as f64 * (CHAINS * lanes * 2) as f64;
        flop / started.elapsed().as_secs_f64() / 1e9
    };
    timed(iterations / 4);
    let mut runs: Vec<f64> = (0..5).map(|_| timed(iterations)).collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    use super::CHAINS;

    // Every operand passes through `black_box`: with known constants the
    // compiler sees that `1 * 0.9999999 + 1e-7` is a fixed point and folds
    // the whole loop away.

    /// `iterations` rounds of one FMA on each of the chains.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(iterations: u64) -> f32 {
        let (b, c) = black_box((_mm256_set1_ps(0.999_999_9), _mm256_set1_ps(1e-7)));
        let mut acc = black_box([_mm256_set1_ps(1.0); CHAINS]);
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, b, c);
            }
        }
        let mut lanes = [0.0f32; 8];
        let sum = acc.iter().fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum()
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(iterations: u64) -> f32 {
        let (b, c) = black_box((_mm512_set1_ps(0.999_999_9), _mm512_set1_ps(1e-7)));
        let mut acc = black_box([_mm512_set1_ps(1.0); CHAINS]);
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, b, c);
            }
        }
        let sum = acc.iter().fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a));
        _mm512_reduce_add_ps(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_measured_for_the_kernels_gemm_uses() {
        let peak = measure(1, true);
        match kernel_family() {
            "avx512" => assert!(peak.fma512_gflops.is_some_and(|g| g > 0.0) && peak.fma256_gflops.is_some()),
            "avx2-fma" => assert!(peak.fma256_gflops.is_some_and(|g| g > 0.0) && peak.fma512_gflops.is_none()),
            _ => assert!(peak.best().is_none()),
        }
    }
}
