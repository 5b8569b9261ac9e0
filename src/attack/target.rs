//! Targeted and untargeted objectives for gradient attacks.
//!
//! Untargeted, an attack ascends a loss of the true label. Targeted, it
//! pulls the image towards a target class: a random class other than the
//! true one, or the class the model finds least likely on the clean image.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::AttackLoss;
use crate::model::{argmax_rows, CrossEntropy, CwMargin, Loss, Model};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    #[default]
    Untargeted,
    /// A random class other than the true one, per image.
    Random,
    /// The class with the lowest logit on the clean image.
    LeastLikely,
}

impl Target {
    pub(crate) fn label_detail(self) -> &'static str {
        match self {
            Target::Untargeted => "",
            Target::Random => "-targeted-random",
            Target::LeastLikely => "-targeted-ll",
        }
    }
}

/// One class per image: the true label (untargeted), a random other class,
/// or the least likely class by `scores` of the clean images (logits or
/// probabilities; only called for `LeastLikely`).
pub(crate) fn choose_targets(
    target: Target,
    y: &[u8],
    classes: usize,
    rng: &mut ChaCha8Rng,
    scores: impl FnOnce() -> Vec<f32>,
) -> Vec<u8> {
    match target {
        Target::Untargeted => y.to_vec(),
        // With fewer than two classes there is no other class to aim at.
        Target::Random if classes < 2 => y.to_vec(),
        Target::Random => y
            .iter()
            .map(|&t| ((t as usize + rng.gen_range(1..classes)) % classes) as u8)
            .collect(),
        Target::LeastLikely => {
            let negated: Vec<f32> = scores().iter().map(|z| -z).collect();
            argmax_rows(&negated, classes)
        }
    }
}

/// The loss an attack ascends, owning what it refers to.
pub struct Objective {
    loss: AttackLoss,
    /// True labels (untargeted) or targets (targeted).
    pub classes: Vec<u8>,
    targeted: bool,
}

impl Objective {
    /// Targets are drawn here, once per batch, so every step pulls the same way.
    pub fn new(
        loss: AttackLoss,
        target: Target,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Objective {
        let classes = choose_targets(target, y, model.classes(), rng, || model.logits(x));
        Objective {
            loss,
            classes,
            targeted: target != Target::Untargeted,
        }
    }

    /// Towards the given target class of each image.
    pub fn towards(loss: AttackLoss, targets: Vec<u8>) -> Objective {
        Objective {
            loss,
            classes: targets,
            targeted: true,
        }
    }

    /// Whether it pulls towards targets rather than away from the labels.
    pub fn targeted(&self) -> bool {
        self.targeted
    }
}

impl Loss for Objective {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let labels = &self.classes;
        match (self.loss, self.targeted) {
            (AttackLoss::Ce, false) => CrossEntropy { labels }.eval(logits, classes),
            (AttackLoss::Cw, false) => CwMargin { labels, kappa: 50.0 }.eval(logits, classes),
            // Towards the target: descend its cross-entropy...
            (AttackLoss::Ce, true) => {
                let (values, grad) = CrossEntropy { labels }.eval(logits, classes);
                (values.iter().map(|v| -v).collect(), grad.iter().map(|g| -g).collect())
            }
            // ...or ascend its own margin z_t - max_{j != t} z_j, capped
            // once the target leads by kappa.
            (AttackLoss::Cw, true) => target_margin(labels, logits, classes, 50.0),
        }
    }
}

/// `min(z_t - max_{j != t} z_j, kappa)` per example, and its gradient.
pub(crate) fn target_margin(targets: &[u8], logits: &[f32], classes: usize, kappa: f32) -> (Vec<f32>, Vec<f32>) {
    let mut grad = vec![0.0; logits.len()];
    let mut values = Vec::with_capacity(targets.len());
    for ((z, g), &t) in logits.chunks(classes).zip(grad.chunks_mut(classes)).zip(targets) {
        let t = t as usize;
        let other = (0..classes)
            .filter(|&j| j != t)
            .max_by(|&a, &b| z[a].total_cmp(&z[b]))
            .unwrap_or(t);
        let margin = z[t] - z[other];
        if margin < kappa {
            g[t] += 1.0;
            g[other] -= 1.0;
        }
        values.push(margin.min(kappa));
    }
    (values, grad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Engine, ModelConfig};
    use rand::SeedableRng;

    #[test]
    fn targets_differ_from_the_true_label() {
        let model = ModelConfig::mlp(vec![8]).init(Engine::Native, crate::data::Shape::gray(2, 2), 10, 0);
        let x = vec![0.3; 4 * 50];
        let y: Vec<u8> = (0..50).map(|i| (i % 10) as u8).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let random = Objective::new(AttackLoss::Ce, Target::Random, model.as_ref(), &x, &y, &mut rng);
        assert!(random.classes.iter().zip(&y).all(|(t, y)| t != y));
        let least = Objective::new(AttackLoss::Ce, Target::LeastLikely, model.as_ref(), &x, &y, &mut rng);
        // Identical images: one least likely class for all.
        assert!(least.classes.iter().all(|&c| c == least.classes[0]));
    }

    #[test]
    fn the_targeted_margin_pulls_a_far_behind_target_forward() {
        // The target (class 2) trails by 100: the gradient must still pull.
        let (values, grad) = target_margin(&[2], &[100.0, 0.0, 0.0], 3, 50.0);
        assert_eq!(values, vec![-100.0]);
        assert_eq!(grad, vec![-1.0, 0.0, 1.0]);
        // Leading by more than kappa: done.
        let (_, grad) = target_margin(&[2], &[0.0, 0.0, 60.0], 3, 50.0);
        assert_eq!(grad, vec![0.0, 0.0, 0.0]);
    }
}
