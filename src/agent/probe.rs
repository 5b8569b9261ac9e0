//! The probe a defense-aware attacker runs on the defender's current model
//! before it picks: what Tramer et al. 2020 ("On adaptive attacks to
//! adversarial example defenses") ask an evaluator to diagnose first.
//! Does cross-entropy saturate where a margin does not, is there a
//! preprocessing step to differentiate around, is the defense randomized,
//! is there any gradient signal at all.

use rand_chacha::ChaCha8Rng;

use crate::attack::AttackConfig;
use crate::data::Split;
use crate::model::metrics::{correct, fraction, EVAL_BATCH};
use crate::model::{CrossEntropy, CwMargin, Model};

/// Images a probe looks at.
const PROBE_IMAGES: usize = 32;

/// An input gradient whose L1 norm is below this is zero.
const ZERO: f64 = 1e-12;

/// Cross-entropy's input gradient counts as vanished when it is below this
/// share of the margin's: the softmax has saturated to float precision
/// (defensive distillation's logits, T times larger, do this).
const VANISHED: f64 = 1e-12;

/// A probe of the defender's model on a few training images.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Share of probe images whose margin-loss input gradient is all zero:
    /// no gradient signal, even from a loss that does not saturate.
    pub zero_gradient_fraction: f64,
    /// Share of probe images whose cross-entropy input gradient has
    /// vanished while the margin's has not (a saturated softmax).
    pub saturated_fraction: f64,
    /// Whether the model declares a preprocessing step in front of its
    /// network (a white-box attacker may know the defense).
    pub preprocessed: bool,
    /// Whether two identical queries got different logits (a randomized defense).
    pub random_outputs: bool,
    /// Success of the policy's probe attack at a quarter of its budget and
    /// at its full budget; under masking it does not grow.
    pub success_by_budget: Option<(f64, f64)>,
}

/// Probe `model` on 32 of `images` (never evaluation images), trying
/// `attack` at two budgets if given. Draws from `rng` in a fixed order:
/// the images, then the attack at a quarter and at all of its budget.
pub fn probe(model: &dyn Model, images: &Split, attack: Option<AttackConfig>, rng: &mut ChaCha8Rng) -> Probe {
    let indices = rand::seq::index::sample(rng, images.len(), PROBE_IMAGES.min(images.len())).into_vec();
    let set = images.subset(&indices);
    // The margin's gradient does not vanish on confident predictions the
    // way cross-entropy's does, so only masking makes it zero.
    let margin = CwMargin {
        labels: &set.labels,
        kappa: f32::INFINITY,
    };
    let margin_norms = gradient_norms(model, &set.images, &margin, set.dim());
    let random_outputs = model.logits(&set.images) != model.logits(&set.images);
    let success_at = |attack: &AttackConfig, rng: &mut ChaCha8Rng| {
        let adv = attack.run(model, &set.images, &set.labels, rng, EVAL_BATCH).examples;
        1.0 - fraction(&correct(model, &adv, &set.labels))
    };
    let success_by_budget = attack.and_then(|a| {
        let quarter = a.scaled(0.25)?;
        Some((success_at(&quarter, rng), success_at(&a, rng)))
    });
    // Asked last, so that the queries above see a randomized model's
    // noise in the order they always have.
    let ce = CrossEntropy { labels: &set.labels };
    let ce_norms = gradient_norms(model, &set.images, &ce, set.dim());
    let share = |hits: usize| hits as f64 / margin_norms.len().max(1) as f64;
    let saturated = ce_norms
        .iter()
        .zip(&margin_norms)
        .filter(|&(&ce, &margin)| margin >= ZERO && ce < VANISHED * margin)
        .count();
    Probe {
        zero_gradient_fraction: share(margin_norms.iter().filter(|&&n| n < ZERO).count()),
        saturated_fraction: share(saturated),
        preprocessed: model.preprocessed().is_some(),
        random_outputs,
        success_by_budget,
    }
}

/// The L1 norm of each image's input gradient of `loss`.
fn gradient_norms(model: &dyn Model, images: &[f32], loss: &dyn crate::model::Loss, dim: usize) -> Vec<f64> {
    let (_, grad) = model.input_grad(images, loss);
    grad.chunks(dim)
        .map(|g| g.iter().map(|v| v.abs() as f64).sum())
        .collect()
}
