//! Adversarial retraining on what the attackers produced: each round's
//! crafted examples, a replay buffer of earlier rounds' examples, and clean
//! images, so the defender learns what it was hit with (and only that).

use std::collections::VecDeque;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{sample_train, validate_training, Defense, DefenseSpec, RoundData};
use crate::error::Error;
use crate::model::{Classifier, Examples, OptimizerConfig, TrainConfig, TrainSet, Trainer};
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdversarialConfig {
    /// Adversarial examples from earlier rounds kept for replay.
    #[serde(default = "default_replay")]
    pub replay: usize,
    /// Passes over this round's training set.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Clean images mixed in per adversarial example.
    #[serde(default = "default_clean_ratio")]
    pub clean_ratio: f32,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_opt")]
    pub optimizer: OptimizerConfig,
}

fn default_replay() -> usize {
    2048
}
fn default_epochs() -> usize {
    2
}
fn default_clean_ratio() -> f32 {
    0.5
}
pub(crate) fn default_batch() -> usize {
    64
}
pub(crate) fn default_opt() -> OptimizerConfig {
    OptimizerConfig::sgd(0.02, 0.9, 0.0)
}

impl Describe for AdversarialConfig {
    const HELP: &'static str =
        "retrains on the attackers' examples mixed with clean data, with a replay buffer of past rounds";
    fn example() -> Self {
        super::with_defaults()
    }
}

impl DefenseSpec for AdversarialConfig {
    fn init(&self) -> Box<dyn Defense> {
        Box::new(Adversarial {
            config: self.clone(),
            buffer: VecDeque::new(),
        })
    }

    fn work_per_round(&self, craft: usize) -> usize {
        let examples = craft + self.replay.min(craft * 8);
        self.epochs * (examples as f32 * (1.0 + self.clean_ratio)) as usize
    }

    fn validate(&self) -> crate::Result<()> {
        if !(self.clean_ratio.is_finite() && self.clean_ratio >= 0.0) {
            return Err(Error::invalid(format!(
                "`clean_ratio` must be a non-negative number, got {}",
                self.clean_ratio
            )));
        }
        validate_training(("epochs", self.epochs), self.batch, &self.optimizer)
    }
}

pub struct Adversarial {
    config: AdversarialConfig,
    /// Earlier rounds' examples, oldest first.
    buffer: VecDeque<(Vec<f32>, u8)>,
}

impl Defense for Adversarial {
    fn update(&mut self, model: &mut dyn Classifier, round: &RoundData<'_>, rng: &mut ChaCha8Rng) {
        let dim = model.input_dim();
        let mut x = round.crafted.to_vec();
        let mut y = round.crafted_labels.to_vec();
        for (image, label) in &self.buffer {
            x.extend_from_slice(image);
            y.push(*label);
        }
        let clean = (y.len() as f32 * self.config.clean_ratio).round() as usize;
        let (clean_x, clean_y) = sample_train(round.train, clean, rng);
        x.extend(clean_x);
        y.extend(clean_y);
        let training = TrainConfig::epochs(self.config.epochs, self.config.batch, self.config.optimizer.clone());
        Trainer::new(training).fit(model, Examples::Set(TrainSet::labeled(&x, &y)), rng);

        for (image, &label) in round.crafted.chunks(dim).zip(round.crafted_labels) {
            self.buffer.push_back((image.to_vec(), label));
        }
        while self.buffer.len() > self.config.replay {
            self.buffer.pop_front();
        }
    }
}
