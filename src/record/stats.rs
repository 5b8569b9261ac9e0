//! Judging results recorded with confidence intervals; below the
//! tournament (which computes the intervals) and the reports (which show
//! which differences count), so both use one rule.

/// Whether two `(mean, half-width)` intervals are disjoint, i.e. the difference is worth reporting.
/// Touching intervals, and intervals with a NaN, count as not separable.
pub fn separable(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 + a.1 < b.0 - b.1 || b.0 + b.1 < a.0 - a.1
}

/// The standard normal quantile for a two-sided 95% interval.
const Z95: f64 = 1.959963984540054;

/// The 95% Wilson score interval `(low, high)` for a binomial proportion
/// of `successes` out of `n`; `None` for `n = 0`.
///
/// Why it bounds an AURC too: an AURC is a mean over rounds of accuracies
/// measured on the same n evaluation images, so it equals the mean over
/// images of z_i, the share of rounds in which image i was robust. Each
/// z_i lies in [0, 1], so Var(z) <= E[z](1 - E[z]): the spread of the z_i
/// is at most that of 0/1 outcomes with the same mean, and the binomial
/// variance behind the Wilson interval over the n images bounds it. The
/// interval is therefore conservative (at least as wide as needed) for an
/// AURC as it is exact in variance for a single accuracy.
pub fn wilson95(successes: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (k, n) = (successes.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At p = 0 (or 1) the low (high) end is exactly 0 (1); rounding must not move it.
    let low = if k == 0.0 { 0.0 } else { center - half };
    let high = if k == n { 1.0 } else { center + half };
    Some((low.max(0.0), high.min(1.0)))
}

/// [`wilson95`] for an accuracy `acc` measured on `n` images: the count of
/// robust images is `acc * n` rounded to the nearest integer. `None` for
/// `n = 0` or an accuracy that is not a number.
pub fn wilson95_acc(acc: f64, n: usize) -> Option<(f64, f64)> {
    if !acc.is_finite() {
        return None;
    }
    let successes = (acc.clamp(0.0, 1.0) * n as f64).round() as usize;
    wilson95(successes, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: (f64, f64), want: (f64, f64)) -> bool {
        (got.0 - want.0).abs() < 1e-12 && (got.1 - want.1).abs() < 1e-12
    }

    #[test]
    fn wilson_matches_values_worked_independently() {
        // Expected digits: Wilson's formula evaluated at 40 significant
        // digits (Python's mpmath, z = sqrt(2) erfinv(0.95)), rounded to 15.
        // Newcombe (1998, Statistics in Medicine 17:857, Table I) prints the
        // same intervals to 4 places: 0/10 -> 0.0000-0.2775, 81/263 ->
        // 0.2553-0.3662.
        let cases = [
            ((0, 10), (0.0, 0.277532799862889)),
            ((5, 10), (0.236593090512564, 0.763406909487436)),
            ((10, 10), (0.722467200137111, 1.0)),
            ((81, 263), (0.255288519878274, 0.366209576982800)),
            ((1, 1), (0.206549314377237, 1.0)),
            ((100, 2000), (0.0412812336187317, 0.0604441089343959)),
        ];
        for ((k, n), want) in cases {
            let got = wilson95(k, n).unwrap();
            assert!(close(got, want), "{k}/{n}: {got:?} vs {want:?}");
        }
        assert_eq!(wilson95(0, 0), None);
    }

    #[test]
    fn wilson_contains_p_stays_in_the_unit_interval_and_narrows_with_n() {
        for n in [1, 2, 7, 60, 200, 10_000] {
            for k in 0..=n.min(60) {
                let (low, high) = wilson95(k, n).unwrap();
                let p = k as f64 / n as f64;
                assert!(
                    0.0 <= low && low <= p && p <= high && high <= 1.0,
                    "{k}/{n}: ({low}, {high})"
                );
            }
        }
        // The same proportion, 3 in 10, on more images: strictly narrower.
        let widths: Vec<f64> = [10, 100, 1000, 10_000]
            .iter()
            .map(|&n| wilson95(3 * n / 10, n).map(|(low, high)| high - low).unwrap())
            .collect();
        assert!(widths.windows(2).all(|w| w[1] < w[0]), "{widths:?}");
    }

    #[test]
    fn wilson_of_an_accuracy_rounds_to_the_nearest_count() {
        // 0.29 * 100 = 28.999999999999996 in floating point: 29 images.
        assert_eq!(wilson95_acc(0.29, 100), wilson95(29, 100));
        assert_eq!(wilson95_acc(81.0 / 263.0, 263), wilson95(81, 263));
        assert_eq!(wilson95_acc(1.0, 10), wilson95(10, 10));
        assert_eq!(wilson95_acc(0.5, 0), None);
        assert_eq!(wilson95_acc(f64::NAN, 10), None);
    }

    #[test]
    fn separability() {
        assert!(separable((0.0, 1.0), (3.0, 1.5)));
        assert!(separable((3.0, 1.5), (0.0, 1.0)));
        assert!(!separable((0.0, 1.0), (2.0, 1.0)), "touching intervals overlap");
        assert!(!separable((0.0, 1.0), (0.5, 0.1)));
        assert!(!separable((0.0, f64::NAN), (9.0, 0.1)));
    }
}

/// `a - b` over the same images (a model's robust mask against another's),
/// and the half-width of its 95% interval: the mean and normal-approximation
/// interval of the per-image differences (each -1, 0 or 1), which pairs the
/// two models image by image. `(0, 0)` for no images.
pub fn paired_difference(a: &[bool], b: &[bool]) -> (f64, f64) {
    let n = a.len().min(b.len());
    if n == 0 {
        return (0.0, 0.0);
    }
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(&a, &b)| a as u8 as f64 - b as u8 as f64)
        .collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 1.0);
    }
    let variance = d.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, 1.96 * (variance / n as f64).sqrt())
}

#[cfg(test)]
mod paired_tests {
    use super::*;

    #[test]
    fn the_paired_difference_counts_each_image_once_for_both_models() {
        // Same accuracy, different images: difference 0 with a wide interval.
        let (d, half) = paired_difference(&[true, false, true, false], &[false, true, false, true]);
        assert_eq!(d, 0.0);
        assert!(half > 0.9, "{half}");
        // Identical masks: no uncertainty about the difference at all.
        assert_eq!(paired_difference(&[true, false], &[true, false]), (0.0, 0.0));
        assert_eq!(paired_difference(&[false; 10], &[true; 10]).0, -1.0);
    }
}
