//! BPDA: Backward Pass Differentiable Approximation. Against a model with a
//! non-differentiable preprocessing step, run the inner attack with the
//! step kept in the forward pass and replaced by the identity in the
//! backward pass. Athalye, Carlini & Wagner 2018, "Obfuscated gradients give
//! a false sense of security".

use serde::{Deserialize, Serialize};

use super::AttackConfig;
use crate::model::{Loss, Model, Preprocess};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BpdaConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The white-box attack to run through the approximation.
    pub attack: Box<AttackConfig>,
}

/// A model seen through BPDA: the same logits, gradients taken at the
/// preprocessed input of the network behind the step.
pub struct Bpda<'a> {
    pub model: &'a dyn Model,
}

impl Model for Bpda<'_> {
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
        match self.model.preprocessed() {
            // d step(x)/dx ~ I: the network's gradient at step(x).
            Some((step, network)) => network.input_grad(&step.apply(x), loss),
            None => self.model.input_grad(x, loss),
        }
    }
    fn preprocessed(&self) -> Option<(&dyn Preprocess, &dyn Model)> {
        None
    }
}
