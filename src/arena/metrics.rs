//! Per-round measurements on the evaluation set: the model-level ones
//! live in [`crate::model::metrics`], so that defenses below the arena use
//! the same definitions.

pub use crate::model::metrics::*;

pub fn min(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    values
        .into_iter()
        .fold(None, |m, v| Some(m.map_or(v, |m: f64| m.min(v))))
}

pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(fraction(&[true, false, true, true]), 0.75);
        assert_eq!(min([0.5, 0.2, 0.9]), Some(0.2));
        assert_eq!(min(Vec::<f64>::new()), None);
        assert_eq!(mean(&[0.5, 1.0]), Some(0.75));
    }
}
