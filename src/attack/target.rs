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

/// The loss an attack ascends, owning what it refers to.
pub struct Objective {
    loss: AttackLoss,
    /// True labels (untargeted) or targets (targeted).
    classes: Vec<u8>,
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
        let k = model.classes();
        let classes = match target {
            Target::Untargeted => y.to_vec(),
            Target::Random => y
                .iter()
                .map(|&t| {
                    let shift = rng.gen_range(1..k as u8);
                    (t + shift) % k as u8
                })
                .collect(),
            Target::LeastLikely => {
                let negated: Vec<f32> = model.logits(x).iter().map(|z| -z).collect();
                argmax_rows(&negated, k)
            }
        };
        Objective {
            loss,
            classes,
            targeted: target != Target::Untargeted,
        }
    }
}

impl Loss for Objective {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let labels = &self.classes;
        let (values, grad) = match self.loss {
            AttackLoss::Ce => CrossEntropy { labels }.eval(logits, classes),
            AttackLoss::Cw => CwMargin { labels, kappa: 50.0 }.eval(logits, classes),
        };
        if self.targeted {
            // Towards the target: descend its cross-entropy, or its margin
            // (the CW margin of the target is max_{j != t} z_j - z_t).
            (values.iter().map(|v| -v).collect(), grad.iter().map(|g| -g).collect())
        } else {
            (values, grad)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Engine, ModelConfig};
    use rand::SeedableRng;

    #[test]
    fn targets_differ_from_the_true_label() {
        let model = ModelConfig::Mlp { hidden: vec![8] }.init(Engine::Native, 2, 2, 10, 0);
        let x = vec![0.3; 4 * 50];
        let y: Vec<u8> = (0..50).map(|i| (i % 10) as u8).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let random = Objective::new(AttackLoss::Ce, Target::Random, model.as_ref(), &x, &y, &mut rng);
        assert!(random.classes.iter().zip(&y).all(|(t, y)| t != y));
        let least = Objective::new(AttackLoss::Ce, Target::LeastLikely, model.as_ref(), &x, &y, &mut rng);
        // Identical images: one least likely class for all.
        assert!(least.classes.iter().all(|&c| c == least.classes[0]));
    }
}
