//! EOT: Expectation over Transformation. Against a randomized defense, the
//! inner attack sees gradients averaged over `samples` draws of the
//! defense's randomness, an estimate of the expected gradient rather than
//! one noisy draw. Athalye et al. 2018, "Synthesizing robust adversarial
//! examples"; "Obfuscated gradients give a false sense of security".

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, Access, AttackConfig, AttackSpec, Crafted, Norm, PgdConfig, Signal, ThreatModel};
use crate::data::Split;
use crate::model::{Loss, Model, Preprocess};
use crate::registry::Describe;
use crate::Error;

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

impl AttackSpec for EotConfig {
    named!();
    fn signal(&self) -> Signal {
        Signal::Eot
    }
    fn threat(&self) -> ThreatModel {
        self.attack.threat()
    }
    fn default_label(&self, _family: &str) -> String {
        format!("eot{}-{}", self.samples, self.attack.label())
    }
    fn inner(&self) -> Option<&AttackConfig> {
        Some(&self.attack)
    }
    fn validate(&self) -> crate::Result<()> {
        self.attack.validate().map_err(|e| e.within("in `attack`"))?;
        if self.samples == 0 {
            return Err(Error::invalid("`samples` must be at least 1"));
        }
        if self.attack.access() != Access::Whitebox || matches!(*self.attack, AttackConfig::Eot(_)) {
            return Err(Error::invalid(
                "`attack` of an eot wrapper must be a white-box attack other than eot",
            ));
        }
        Ok(())
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
        let averaged = Eot {
            model,
            samples: self.samples,
        };
        self.attack.run_with(&averaged, x, y, rng, batch, train)
    }
}

impl Describe for EotConfig {
    const HELP: &'static str = "wrapper: runs `attack` on input gradients averaged over `samples` draws of a randomized defense (Athalye et al. 2018)";
    fn example() -> Self {
        EotConfig {
            name: None,
            samples: 4,
            attack: Box::new(AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.3))),
        }
    }
    /// None of its own: on an undefended model it is the attack it wraps.
    fn variants() -> Vec<Self> {
        Vec::new()
    }
}

/// A model seen through EOT.
pub struct Eot<'a> {
    pub model: &'a dyn Model,
    pub samples: usize,
}

impl Model for Eot<'_> {
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
