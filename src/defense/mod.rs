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

use crate::data::Split;
use crate::model::{Classifier, Sgd};
pub use adversarial::AdversarialConfig;
pub use continual::ContinualConfig;
pub use distillation::DistillationConfig;
pub use ensemble_at::EnsembleAtConfig;
pub use fast_at::FastAtConfig;
pub use pgd_at::PgdAtConfig;
pub use smoothing::SmoothingConfig;
pub use squeeze::SqueezeConfig;
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

/// The defenses a strategy file can name, by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DefenseConfig {
    Standard,
    Adversarial(AdversarialConfig),
    PgdAt(PgdAtConfig),
    FastAt(FastAtConfig),
    Trades(TradesConfig),
    Distillation(DistillationConfig),
    EnsembleAt(EnsembleAtConfig),
    Squeeze(SqueezeConfig),
    Smoothing(SmoothingConfig),
    Continual(ContinualConfig),
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
        "fast-at",
        "FGSM adversarial training from a random start (Wong et al. 2020); flags catastrophic overfitting",
    ),
    (
        "trades",
        "clean cross-entropy plus beta times KL(clean || adversarial) (Zhang et al. 2019)",
    ),
    (
        "distillation",
        "defensive distillation at temperature T, deployed at 1 (Papernot et al. 2016); masks gradients",
    ),
    (
        "ensemble-at",
        "adversarial training on FGSM examples from the model and from static models kept aside (Tramer et al. 2018)",
    ),
    (
        "squeeze",
        "feature squeezing: median smoothing and bit-depth reduction in front of the model (Xu et al. 2018); masks gradients",
    ),
    (
        "smoothing",
        "Gaussian-noise training, smoothed prediction and certified l2 radii (Cohen et al. 2019)",
    ),
    (
        "continual",
        "fine-tunes on each new attack with replay and a penalty on logit drift (after Dai et al. 2025)",
    ),
];

impl DefenseConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            DefenseConfig::Standard => "standard",
            DefenseConfig::Adversarial(_) => "adversarial",
            DefenseConfig::PgdAt(_) => "pgd-at",
            DefenseConfig::FastAt(_) => "fast-at",
            DefenseConfig::Trades(_) => "trades",
            DefenseConfig::Distillation(_) => "distillation",
            DefenseConfig::EnsembleAt(_) => "ensemble-at",
            DefenseConfig::Squeeze(_) => "squeeze",
            DefenseConfig::Smoothing(_) => "smoothing",
            DefenseConfig::Continual(_) => "continual",
        }
    }

    /// The model as deployed: some defenses put a step in front of it;
    /// randomized ones draw their randomness from `seed`.
    pub fn deploy(&self, model: Box<dyn Classifier>, seed: u64) -> Box<dyn Classifier> {
        match self {
            DefenseConfig::Squeeze(c) => c.deploy(model),
            DefenseConfig::Smoothing(c) => c.deploy(model, seed),
            _ => model,
        }
    }

    pub fn init(&self) -> Box<dyn Defense> {
        match self {
            DefenseConfig::Standard => Box::new(standard::Standard),
            DefenseConfig::Adversarial(c) => Box::new(c.init()),
            DefenseConfig::PgdAt(c) => Box::new(c.clone()),
            DefenseConfig::FastAt(c) => Box::new(fast_at::FastAt::new(c.clone())),
            DefenseConfig::Trades(c) => Box::new(c.clone()),
            DefenseConfig::Distillation(c) => Box::new(distillation::Distillation::new(c.clone())),
            DefenseConfig::EnsembleAt(c) => Box::new(ensemble_at::EnsembleAt::new(c.clone())),
            // Squeezing does not retrain: the pretrained model, behind it.
            DefenseConfig::Squeeze(_) => Box::new(standard::Standard),
            DefenseConfig::Smoothing(c) => Box::new(c.clone()),
            DefenseConfig::Continual(c) => Box::new(continual::Continual::new(c.clone())),
        }
    }

    /// Certified accuracy at l2 `radius` of `model` as this defense deployed
    /// it, for a defense that certifies (`smoothing`); `None` otherwise.
    pub fn certified_accuracy(
        &self,
        model: &dyn crate::model::Model,
        x: &[f32],
        y: &[u8],
        radius: f32,
        rng: &mut ChaCha8Rng,
    ) -> Option<f64> {
        match self {
            DefenseConfig::Smoothing(c) => Some(c.certified_accuracy(model.smoothed_base()?, x, y, radius, rng)),
            _ => None,
        }
    }

    /// The attacks it crafts with while training: held to the rules'
    /// budgets, and kept out of the unseen panel.
    pub fn training_attacks(&self) -> Vec<crate::attack::AttackConfig> {
        use crate::attack::AttackConfig;
        match self {
            DefenseConfig::PgdAt(c) => vec![AttackConfig::Pgd(c.attack.clone())],
            DefenseConfig::FastAt(c) => vec![AttackConfig::Pgd(c.attack())],
            DefenseConfig::Trades(c) => vec![AttackConfig::Pgd(c.attack())],
            DefenseConfig::EnsembleAt(c) => vec![AttackConfig::Fgsm(c.fgsm())],
            _ => Vec::new(),
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
            DefenseConfig::FastAt(c) => c.steps * c.batch * 2,
            DefenseConfig::Trades(c) => c.steps * c.batch * (c.attack_steps + 3),
            DefenseConfig::Distillation(c) => 4 * c.epochs * c.images,
            DefenseConfig::EnsembleAt(c) => c.steps * c.batch * 2,
            DefenseConfig::Smoothing(c) => c.steps * c.batch + 200 * c.n,
            DefenseConfig::Continual(c) => c.epochs * (craft as f32 * (2.0 + c.clean_ratio)) as usize,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            DefenseConfig::Standard => Ok(()),
            DefenseConfig::Adversarial(c) => c.validate(),
            DefenseConfig::PgdAt(c) => c.validate(),
            DefenseConfig::FastAt(c) => c.validate(),
            DefenseConfig::Trades(c) => c.validate(),
            DefenseConfig::Distillation(c) => c.validate(),
            DefenseConfig::EnsembleAt(c) => c.validate(),
            DefenseConfig::Squeeze(c) => c.validate(),
            DefenseConfig::Smoothing(c) => c.validate(),
            DefenseConfig::Continual(c) => c.validate(),
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
    if !(opt.weight_decay.is_finite() && opt.weight_decay >= 0.0) {
        return Err(format!(
            "`weight_decay` must be a number, 0 or more, got {}",
            opt.weight_decay
        ));
    }
    Ok(())
}

/// `count` distinct random training images and their labels.
pub fn sample_train(train: &Split, count: usize, rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<u8>) {
    let indices = rand::seq::index::sample(rng, train.len(), count.min(train.len())).into_vec();
    let subset = train.subset(&indices);
    (subset.images, subset.labels)
}
