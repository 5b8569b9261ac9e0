//! Defenses: how a defender agent updates its model after being attacked.
//!
//! A defense sees only [`RoundData`]: the examples crafted against it this
//! round and the clean training split. Evaluation images are not in it, so
//! no defense can train on them.

pub mod adversarial;
pub mod continual;
pub mod distillation;
pub mod ensemble_at;
pub mod fast_at;
pub mod pgd_at;
pub mod smoothing;
pub mod squeeze;
pub mod standard;
pub mod trades;

#[cfg(test)]
mod conformance;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::attack::AttackConfig;
use crate::data::{Shape, Split};
use crate::error::Error;
use crate::model::{Classifier, Model, OptimizerConfig};
pub use adversarial::AdversarialConfig;
pub use continual::ContinualConfig;
pub use distillation::DistillationConfig;
pub use ensemble_at::EnsembleAtConfig;
pub use fast_at::FastAtConfig;
pub use pgd_at::PgdAtConfig;
pub use smoothing::SmoothingConfig;
pub use squeeze::SqueezeConfig;
pub use standard::StandardConfig;
pub use trades::TradesConfig;

/// What a defense may learn from in one round.
pub struct RoundData<'a> {
    /// The attacker's adversarial examples, crafted on training images.
    pub crafted: &'a [f32],
    /// Their true labels.
    pub crafted_labels: &'a [u8],
    /// The clean training split.
    pub train: &'a Split,
}

/// A training strategy.
pub trait Defense: Send {
    /// Update `model` after a round's attack.
    fn update(&mut self, model: &mut dyn Classifier, round: &RoundData<'_>, rng: &mut ChaCha8Rng);
    /// What the last update found worth recording in the round's row.
    fn note(&mut self) -> Option<String> {
        None
    }
}

/// What every defense's configuration answers, implemented in the
/// defense's own file.
pub trait DefenseSpec {
    /// The model as deployed: some defenses put a step in front of it;
    /// randomized ones draw their randomness from `seed`.
    fn deploy(&self, model: Box<dyn Classifier>, _seed: u64) -> Box<dyn Classifier> {
        model
    }

    /// A fresh defense, before its first round.
    fn init(&self) -> Box<dyn Defense>;

    /// Certified accuracy at l2 `radius` of `model` as this defense deployed
    /// it, for a defense that certifies; `None` otherwise.
    fn certified_accuracy(
        &self,
        _model: &dyn Model,
        _x: &[f32],
        _y: &[u8],
        _radius: f32,
        _rng: &mut ChaCha8Rng,
    ) -> Option<f64> {
        None
    }

    /// The attacks it crafts with while training: held to the rules'
    /// budgets, and kept out of the unseen panel.
    fn training_attacks(&self) -> Vec<AttackConfig> {
        Vec::new()
    }

    /// Images passed through the model (forward and backward) per round,
    /// roughly, when attackers craft `craft` examples: used only to start
    /// the costliest matches first.
    fn work_per_round(&self, craft: usize) -> usize;

    /// Whether the configuration's values can be used.
    fn validate(&self) -> crate::Result<()>;

    /// Why a model it trains of its own (an ensemble's static models)
    /// cannot take images of `shape`, once the dataset's shape is known.
    fn check_shape(&self, _shape: Shape) -> crate::Result<()> {
        Ok(())
    }
}

crate::registry! {
    /// The defenses a strategy file can name, by `kind`, in the order
    /// `redqueen list` shows them.
    pub enum DefenseConfig: dyn DefenseSpec, tag = "kind" {
        Standard(StandardConfig) = "standard",
        Adversarial(AdversarialConfig) = "adversarial",
        PgdAt(PgdAtConfig) = "pgd-at",
        FastAt(FastAtConfig) = "fast-at",
        Trades(TradesConfig) = "trades",
        Distillation(DistillationConfig) = "distillation",
        EnsembleAt(EnsembleAtConfig) = "ensemble-at",
        Squeeze(SqueezeConfig) = "squeeze",
        Smoothing(SmoothingConfig) = "smoothing",
        Continual(ContinualConfig) = "continual",
    }
}

impl DefenseConfig {
    pub fn kind(&self) -> &'static str {
        self.registry_name()
    }

    /// See [`DefenseSpec::deploy`].
    pub fn deploy(&self, model: Box<dyn Classifier>, seed: u64) -> Box<dyn Classifier> {
        self.part().deploy(model, seed)
    }

    pub fn init(&self) -> Box<dyn Defense> {
        self.part().init()
    }

    /// See [`DefenseSpec::certified_accuracy`].
    pub fn certified_accuracy(
        &self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        radius: f32,
        rng: &mut ChaCha8Rng,
    ) -> Option<f64> {
        self.part().certified_accuracy(model, x, y, radius, rng)
    }

    /// See [`DefenseSpec::training_attacks`].
    pub fn training_attacks(&self) -> Vec<AttackConfig> {
        self.part().training_attacks()
    }

    /// See [`DefenseSpec::work_per_round`].
    pub fn work_per_round(&self, craft: usize) -> usize {
        self.part().work_per_round(craft)
    }

    pub fn validate(&self) -> crate::Result<()> {
        self.part().validate()
    }

    /// See [`DefenseSpec::check_shape`]; with no shape (not known before
    /// the data is loaded) there is nothing to check.
    pub fn check_shape(&self, shape: Option<Shape>) -> crate::Result<()> {
        shape.map_or(Ok(()), |shape| self.part().check_shape(shape))
    }
}

/// A configuration with every field at its default, as an empty table in
/// a strategy file gives: the registry's example of a defense.
fn with_defaults<T: serde::de::DeserializeOwned>() -> T {
    toml::from_str("").expect("every field of a defense's configuration has a default")
}

/// A defender agent: a name and a training strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefenderConfig {
    pub name: String,
    pub strategy: DefenseConfig,
}

/// Checks shared by the training hyperparameters of every defense.
pub fn validate_training(epochs_or_steps: (&str, usize), batch: usize, opt: &OptimizerConfig) -> crate::Result<()> {
    let invalid = |message: String| Err(Error::invalid(message));
    if epochs_or_steps.1 == 0 {
        return invalid(format!("`{}` must be at least 1", epochs_or_steps.0));
    }
    if batch == 0 {
        return invalid("`batch` must be at least 1".into());
    }
    opt.validate()
}

/// `count` distinct random training images and their labels.
pub fn sample_train(train: &Split, count: usize, rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<u8>) {
    let indices = rand::seq::index::sample(rng, train.len(), count.min(train.len())).into_vec();
    let subset = train.subset(&indices);
    (subset.images, subset.labels)
}
