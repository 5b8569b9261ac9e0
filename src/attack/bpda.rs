//! BPDA: Backward Pass Differentiable Approximation. Against a model with a
//! non-differentiable preprocessing step, run the inner attack with the
//! step kept in the forward pass and replaced by the identity in the
//! backward pass. Athalye, Carlini & Wagner 2018, "Obfuscated gradients give
//! a false sense of security".

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, Access, AttackConfig, AttackSpec, Crafted, Norm, PgdConfig, Signal, ThreatModel};
use crate::data::Split;
use crate::model::{Loss, Model, Preprocess};
use crate::registry::Describe;
use crate::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BpdaConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The white-box attack to run through the approximation.
    pub attack: Box<AttackConfig>,
}

impl AttackSpec for BpdaConfig {
    named!();
    fn required_success(&self) -> Option<f64> {
        Some(0.9)
    }
    fn signal(&self) -> Signal {
        Signal::Bpda
    }
    fn threat(&self) -> ThreatModel {
        self.attack.threat()
    }
    fn default_label(&self, _family: &str) -> String {
        format!("bpda-{}", self.attack.label())
    }
    fn inner(&self) -> Option<&AttackConfig> {
        Some(&self.attack)
    }
    fn validate(&self) -> crate::Result<()> {
        self.attack.validate().map_err(|e| e.within("in `attack`"))?;
        match *self.attack {
            AttackConfig::Bpda(_) => Err(Error::invalid("`attack` of a bpda wrapper cannot be another bpda")),
            ref inner if inner.access() != Access::Whitebox => Err(Error::invalid(
                "`attack` of a bpda wrapper must be a white-box attack (it needs gradients)",
            )),
            _ => Ok(()),
        }
    }
    fn run(
        &self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        rng: &mut ChaCha8Rng,
        batch: usize,
        train: Option<&Split>,
    ) -> Crafted {
        self.attack.run_with(&Bpda { model }, x, y, rng, batch, train)
    }
}

impl Describe for BpdaConfig {
    const HELP: &'static str = "wrapper: runs `attack` with a non-differentiable preprocessing step treated as the identity in the backward pass (Athalye et al. 2018)";
    fn example() -> Self {
        BpdaConfig {
            name: None,
            attack: Box::new(AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.3))),
        }
    }
    /// None of its own: on an undefended model it is the attack it wraps.
    fn variants() -> Vec<Self> {
        Vec::new()
    }
}

/// A model seen through BPDA: the same logits, gradients taken at the
/// preprocessed input of the network behind the step.
pub struct Bpda<'a> {
    pub model: &'a dyn Model,
}

impl Model for Bpda<'_> {
    fn image_shape(&self) -> crate::data::Shape {
        self.model.image_shape()
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
