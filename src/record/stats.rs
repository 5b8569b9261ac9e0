//! Judging results recorded with confidence intervals; below the
//! tournament (which computes the intervals) and the reports (which show
//! which differences count), so both use one rule.

/// Whether two `(mean, half-width)` intervals are disjoint, i.e. the difference is worth reporting.
/// Touching intervals, and intervals with a NaN, count as not separable.
pub fn separable(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 + a.1 < b.0 - b.1 || b.0 + b.1 < a.0 - a.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separability() {
        assert!(separable((0.0, 1.0), (3.0, 1.5)));
        assert!(separable((3.0, 1.5), (0.0, 1.0)));
        assert!(!separable((0.0, 1.0), (2.0, 1.0)), "touching intervals overlap");
        assert!(!separable((0.0, 1.0), (0.5, 0.1)));
        assert!(!separable((0.0, f64::NAN), (9.0, 0.1)));
    }
}
