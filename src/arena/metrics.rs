//! Per-round measurements on the evaluation set.

use crate::model::{predict, probabilities, Model};

/// Evaluation batch size: bounds memory, not results.
pub const EVAL_BATCH: usize = 128;

/// For each image, whether `model` classifies it as its label.
pub fn correct(model: &dyn Model, x: &[f32], y: &[u8]) -> Vec<bool> {
    predict(model, x, EVAL_BATCH)
        .iter()
        .zip(y)
        .map(|(p, t)| p == t)
        .collect()
}

/// Robust per image: right on the clean image and on its adversarial
/// version (an image the model gets wrong clean is never robust).
pub fn robust(model: &dyn Model, adv: &[f32], y: &[u8], clean_correct: &[bool]) -> Vec<bool> {
    correct(model, adv, y)
        .iter()
        .zip(clean_correct)
        .map(|(&a, &c)| a && c)
        .collect()
}

pub fn fraction(mask: &[bool]) -> f64 {
    if mask.is_empty() {
        return 0.0;
    }
    mask.iter().filter(|&&b| b).count() as f64 / mask.len() as f64
}

/// Mean softmax probability of the (wrong) predicted class over the
/// examples selected by `success`.
pub fn wrong_confidence(model: &dyn Model, adv: &[f32], success: &[bool]) -> Option<f64> {
    let classes = model.classes();
    let probs = probabilities(model, adv, EVAL_BATCH);
    let confidences: Vec<f64> = probs
        .chunks(classes)
        .zip(success)
        .filter(|(_, &s)| s)
        .map(|(p, _)| p.iter().copied().fold(0.0f32, f32::max) as f64)
        .collect();
    (!confidences.is_empty()).then(|| confidences.iter().sum::<f64>() / confidences.len() as f64)
}

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
