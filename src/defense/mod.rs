//! Defenses: how a defender agent updates its model after being attacked.
//!
//! A defense sees only [`RoundData`]: the examples crafted against it this
//! round and the clean training split. Evaluation images are not in it, so
//! no defense can train on them.

pub mod adversarial;
pub mod pgd_at;
pub mod squeeze;
pub mod standard;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::Split;
pub use crate::model::train_epochs;
use crate::model::{Classifier, Sgd};
pub use adversarial::AdversarialConfig;
pub use pgd_at::PgdAtConfig;
pub use squeeze::SqueezeConfig;

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
}

/// The defenses a strategy file can name, by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DefenseConfig {
    Standard,
    Adversarial(AdversarialConfig),
    PgdAt(PgdAtConfig),
    Squeeze(SqueezeConfig),
}

/// Defense names and one line of help each, for `redqueen list`.
pub const DEFENSES: &[(&str, &str)] = &[
    ("standard", "no defense: the pretrained model is never updated"),
    (
        "adversarial",
        "retrains on the attackers' examples mixed with clean data, with a replay buffer of past rounds",
    ),
    (
        "pgd-at",
        "Madry et al.'s adversarial training: PGD examples crafted on the fly at every step",
    ),
    (
        "squeeze",
        "feature squeezing: median smoothing and bit-depth reduction in front of the model (Xu et al. 2018); masks gradients",
    ),
];

impl DefenseConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            DefenseConfig::Standard => "standard",
            DefenseConfig::Adversarial(_) => "adversarial",
            DefenseConfig::PgdAt(_) => "pgd-at",
            DefenseConfig::Squeeze(_) => "squeeze",
        }
    }

    /// The model as deployed: some defenses put a step in front of it.
    pub fn deploy(&self, model: Box<dyn Classifier>) -> Box<dyn Classifier> {
        match self {
            DefenseConfig::Squeeze(c) => c.deploy(model),
            _ => model,
        }
    }

    pub fn init(&self) -> Box<dyn Defense> {
        match self {
            DefenseConfig::Standard => Box::new(standard::Standard),
            DefenseConfig::Adversarial(c) => Box::new(c.init()),
            DefenseConfig::PgdAt(c) => Box::new(c.clone()),
            DefenseConfig::Squeeze(_) => Box::new(squeeze::NoRetraining),
        }
    }

    /// Images passed through the model (forward and backward) per round,
    /// roughly: used only to start the costliest matches first.
    pub fn work_per_round(&self, craft: usize) -> usize {
        match self {
            DefenseConfig::Standard | DefenseConfig::Squeeze(_) => 0,
            DefenseConfig::Adversarial(c) => {
                let examples = craft + c.replay.min(craft * 8);
                c.epochs * (examples as f32 * (1.0 + c.clean_ratio)) as usize
            }
            DefenseConfig::PgdAt(c) => c.steps * c.batch * (c.attack.steps * c.attack.restarts + 1),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            DefenseConfig::Standard => Ok(()),
            DefenseConfig::Adversarial(c) => c.validate(),
            DefenseConfig::PgdAt(c) => c.validate(),
            DefenseConfig::Squeeze(c) => c.validate(),
        }
    }
}

/// A defender agent: a name and a training strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefenderConfig {
    pub name: String,
    pub strategy: DefenseConfig,
}

/// Checks shared by the training hyperparameters of every defense.
pub fn validate_training(epochs_or_steps: (&str, usize), batch: usize, opt: &Sgd) -> Result<(), String> {
    if epochs_or_steps.1 == 0 {
        return Err(format!("`{}` must be at least 1", epochs_or_steps.0));
    }
    if batch == 0 {
        return Err("`batch` must be at least 1".into());
    }
    if !(opt.lr.is_finite() && opt.lr > 0.0) {
        return Err(format!("`lr` must be a positive number, got {}", opt.lr));
    }
    if !(0.0..1.0).contains(&opt.momentum) {
        return Err(format!("`momentum` must be in [0, 1), got {}", opt.momentum));
    }
    Ok(())
}

/// `count` distinct random training images and their labels.
pub fn sample_train(train: &Split, count: usize, rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<u8>) {
    let indices = rand::seq::index::sample(rng, train.len(), count.min(train.len())).into_vec();
    let subset = train.subset(&indices);
    (subset.images, subset.labels)
}
