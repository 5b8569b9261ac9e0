//! EOT: Expectation over Transformation. Against a randomized defense, the
//! inner attack sees gradients averaged over `samples` draws of the
//! defense's randomness, an estimate of the expected gradient rather than
//! one noisy draw. Athalye et al. 2018, "Synthesizing robust adversarial
//! examples"; "Obfuscated gradients give a false sense of security".

use serde::{Deserialize, Serialize};

use super::AttackConfig;
use crate::model::{Loss, Model, Preprocess};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EotConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Draws averaged per gradient.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// The white-box attack to run on the averaged gradients.
    pub attack: Box<AttackConfig>,
}

fn default_samples() -> usize {
    8
}

/// A model seen through EOT.
pub struct Eot<'a> {
    pub model: &'a dyn Model,
    pub samples: usize,
}

impl Model for Eot<'_> {
    fn input_dim(&self) -> usize {
        self.model.input_dim()
    }
    fn classes(&self) -> usize {
        self.model.classes()
    }
    fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.model.logits(x)
    }
    fn input_grad(&self, x: &[f32], loss: &dyn Loss) -> (Vec<f32>, Vec<f32>) {
        let (logits, mut sum) = self.model.input_grad(x, loss);
        for _ in 1..self.samples {
            let (_, grad) = self.model.input_grad(x, loss);
            sum.iter_mut().zip(grad).for_each(|(s, g)| *s += g);
        }
        let scale = 1.0 / self.samples as f32;
        sum.iter_mut().for_each(|s| *s *= scale);
        (logits, sum)
    }
    fn preprocessed(&self) -> Option<(&dyn Preprocess, &dyn Model)> {
        self.model.preprocessed()
    }
}
