//! Accuracy and robustness of a model on labelled images: one definition
//! for the arena, the matrix, the defenses and the conformance suites.

use super::{predict, probabilities, Model};

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

/// Robust accuracy: the share of images right both clean and attacked.
/// `clean_correct` is [`correct`] on the clean images, computed once per
/// model and shared by every attack measured against it.
pub fn robust_accuracy(model: &dyn Model, adv: &[f32], y: &[u8], clean_correct: &[bool]) -> f64 {
    fraction(&robust(model, adv, y, clean_correct))
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
