//! Ensemble adversarial training: half of every batch is adversarial,
//! crafted by FGSM against either the model being trained or one of a few
//! static models it trained once and keeps aside, so it also learns from
//! perturbations it did not make itself. Tramèr et al. 2018, "Ensemble
//! adversarial training: attacks and defenses".

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adversarial::{default_batch, default_opt};
use super::{sample_train, validate_training, Defense, DefenseSpec, RoundData};
use crate::attack::{Attack, AttackConfig, FgsmConfig, Norm, ThreatModel};
use crate::data::Shape;
use crate::error::Error;
use crate::model::{
    Batch, Classifier, Engine, Examples, ModelConfig, OptimizerConfig, Step, TrainConfig, TrainSet, Trainer,
};
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleAtConfig {
    /// linf budget of the FGSM examples (the paper's 0.3 on MNIST).
    #[serde(default = "default_eps")]
    pub eps: f32,
    /// The static models, trained on clean data in the first round.
    #[serde(default = "default_static_models")]
    pub static_models: Vec<ModelConfig>,
    /// Epochs of that training.
    #[serde(default = "default_static_epochs")]
    pub static_epochs: usize,
    /// Training steps per round.
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_opt")]
    pub optimizer: OptimizerConfig,
}

fn default_eps() -> f32 {
    0.3
}
fn default_static_models() -> Vec<ModelConfig> {
    vec![ModelConfig::mlp(vec![128]), ModelConfig::mlp(vec![64, 64])]
}
fn default_static_epochs() -> usize {
    2
}
fn default_steps() -> usize {
    80
}

impl EnsembleAtConfig {
    pub fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: Norm::Linf,
            eps: self.eps,
        }
    }

    /// The attack its adversarial half of each batch is crafted with.
    pub fn fgsm(&self) -> FgsmConfig {
        FgsmConfig::new(Norm::Linf, self.eps)
    }
}

impl Describe for EnsembleAtConfig {
    const HELP: &'static str =
        "adversarial training on FGSM examples from the model and from static models kept aside (Tramer et al. 2018)";
    fn example() -> Self {
        super::with_defaults()
    }
}

impl DefenseSpec for EnsembleAtConfig {
    fn init(&self) -> Box<dyn Defense> {
        Box::new(EnsembleAt::new(self.clone()))
    }

    fn training_attacks(&self) -> Vec<AttackConfig> {
        vec![AttackConfig::Fgsm(self.fgsm())]
    }

    fn work_per_round(&self, _craft: usize) -> usize {
        self.steps * self.batch * 2
    }

    fn validate(&self) -> crate::Result<()> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::invalid(format!(
                "`eps` must be a positive number, got {}",
                self.eps
            )));
        }
        if self.static_models.is_empty() {
            return Err(Error::invalid("`static_models` must name at least one model"));
        }
        for (i, m) in self.static_models.iter().enumerate() {
            m.refuse_weights("static_models")
                .and_then(|_| m.validate(None))
                .map_err(|e| Error::invalid(e.to_string()).within(&format!("`static_models[{i}]`")))?;
        }
        validate_training(("steps", self.steps), self.batch, &self.optimizer)?;
        validate_training(("static_epochs", self.static_epochs), self.batch, &self.optimizer)
    }

    fn check_shape(&self, shape: Shape) -> crate::Result<()> {
        for (i, m) in self.static_models.iter().enumerate() {
            m.validate(Some(shape))
                .map_err(|e| Error::invalid(e.to_string()).within(&format!("`static_models[{i}]`")))?;
        }
        Ok(())
    }
}

pub struct EnsembleAt {
    pub config: EnsembleAtConfig,
    /// Trained in the first round, never updated after.
    statics: Vec<Box<dyn Classifier>>,
}

impl EnsembleAt {
    pub fn new(config: EnsembleAtConfig) -> EnsembleAt {
        EnsembleAt {
            config,
            statics: Vec::new(),
        }
    }
}

impl Defense for EnsembleAt {
    fn update(&mut self, model: &mut dyn Classifier, round: &RoundData<'_>, rng: &mut ChaCha8Rng) {
        let train = round.train;
        if self.statics.is_empty() {
            // Clean training, in batches of 64 whatever `batch` says.
            let training = TrainConfig::epochs(self.config.static_epochs, 64, self.config.optimizer.clone());
            for config in &self.config.static_models {
                let mut net = config.init(Engine::Native, train.shape, model.classes(), rng.gen());
                let set = TrainSet::labeled(&train.images, &train.labels);
                Trainer::new(training.clone()).fit(net.as_mut(), Examples::Set(set), rng);
                self.statics.push(net);
            }
        }
        let fgsm = self.config.fgsm();
        let statics = &self.statics;
        let mut make = |model: &dyn Classifier, step: &Step, rng: &mut ChaCha8Rng| {
            let batch = step.batch;
            let half = (batch / 2).max(1);
            let (mut x, mut y) = sample_train(train, step.batch, rng);
            let (adv_x, adv_y) = sample_train(train, half, rng);
            // The source: the current model or a static one, uniformly.
            let source = rng.gen_range(0..=statics.len());
            let adv = match source {
                0 => fgsm.craft(model, &adv_x, &adv_y, rng),
                k => fgsm.craft(statics[k - 1].as_ref(), &adv_x, &adv_y, rng),
            };
            x.truncate((batch - half) * model.input_dim());
            y.truncate(batch - half);
            x.extend(adv);
            y.extend(adv_y);
            Batch::labeled(x, y)
        };
        let training = TrainConfig::steps(self.config.steps, self.config.batch, self.config.optimizer.clone());
        Trainer::new(training).fit(model, Examples::Made(&mut make), rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::DefenseConfig;

    #[test]
    fn the_static_models_are_checked_against_the_datasets_shape() {
        let mut ensemble: EnsembleAtConfig = super::super::with_defaults();
        ensemble.static_models.push(ModelConfig::cnn([2, 2], 8));
        let last = ensemble.static_models.len() - 1;
        let defense = DefenseConfig::EnsembleAt(ensemble);
        defense.validate().expect("valid before the shape is known");
        defense.check_shape(Some(Shape::MNIST)).expect("28x28 pools twice");
        let err = defense.check_shape(Some(Shape::gray(30, 30))).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`static_models[{last}]`")) && err.contains("30x30"),
            "{err}"
        );
    }
}
