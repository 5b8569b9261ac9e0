//! Continual robust training: fine-tunes on each round's new attack while
//! replaying earlier rounds' examples, with a penalty on how far the logits
//! move on those (so learning the new attack does not unlearn the old). In
//! the spirit of Dai et al. 2025, "Adapting to evolving adversaries with
//! regularized continual robust training".

use std::collections::VecDeque;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adversarial::{default_batch, default_opt};
use super::{sample_train, validate_training, Defense, DefenseSpec, RoundData};
use crate::error::Error;
use crate::model::{Classifier, CrossEntropy, Examples, Loss, OptimizerConfig, TrainConfig, TrainSet, Trainer};
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinualConfig {
    /// Earlier rounds' examples kept for replay.
    #[serde(default = "default_replay")]
    pub replay: usize,
    /// Weight of the penalty: mean squared change of the logits on replayed
    /// examples, against the logits before this round's training.
    #[serde(default = "default_lambda")]
    pub lambda: f32,
    /// Clean images mixed in per adversarial example.
    #[serde(default = "default_clean_ratio")]
    pub clean_ratio: f32,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_opt")]
    pub optimizer: OptimizerConfig,
}

fn default_replay() -> usize {
    2048
}
fn default_lambda() -> f32 {
    0.1
}
fn default_clean_ratio() -> f32 {
    0.5
}
fn default_epochs() -> usize {
    2
}

impl Describe for ContinualConfig {
    const HELP: &'static str =
        "fine-tunes on each new attack with replay and a penalty on logit drift (after Dai et al. 2025)";
    fn example() -> Self {
        super::with_defaults()
    }
}

impl DefenseSpec for ContinualConfig {
    fn init(&self) -> Box<dyn Defense> {
        Box::new(Continual::new(self.clone()))
    }

    fn work_per_round(&self, craft: usize) -> usize {
        self.epochs * (craft as f32 * (2.0 + self.clean_ratio)) as usize
    }

    fn validate(&self) -> crate::Result<()> {
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(Error::invalid(format!(
                "`lambda` must be a non-negative number, got {}",
                self.lambda
            )));
        }
        if !(self.clean_ratio.is_finite() && self.clean_ratio >= 0.0) {
            return Err(Error::invalid(format!(
                "`clean_ratio` must be a non-negative number, got {}",
                self.clean_ratio
            )));
        }
        validate_training(("epochs", self.epochs), self.batch, &self.optimizer)
    }
}

pub struct Continual {
    pub config: ContinualConfig,
    /// Earlier rounds' examples and labels, oldest first.
    buffer: VecDeque<(Vec<f32>, u8)>,
}

impl Continual {
    pub fn new(config: ContinualConfig) -> Continual {
        Continual {
            config,
            buffer: VecDeque::new(),
        }
    }
}

impl Defense for Continual {
    fn update(&mut self, model: &mut dyn Classifier, round: &RoundData<'_>, rng: &mut ChaCha8Rng) {
        let (dim, classes) = (model.input_dim(), model.classes());
        // Rows: this round's examples, then clean images, then replayed ones
        // with the logits they had before this round (their anchors).
        let mut x = round.crafted.to_vec();
        let mut y = round.crafted_labels.to_vec();
        let clean = ((y.len() + self.buffer.len()) as f32 * self.config.clean_ratio).round() as usize;
        let (clean_x, clean_y) = sample_train(round.train, clean, rng);
        x.extend(clean_x);
        y.extend(clean_y);
        let first_replayed = y.len();
        for (image, label) in &self.buffer {
            x.extend_from_slice(image);
            y.push(*label);
        }
        let anchors = model.logits(&x[first_replayed * dim..]);

        let training = TrainConfig::epochs(self.config.epochs, self.config.batch, self.config.optimizer.clone());
        let lambda = self.config.lambda;
        Trainer::new(training)
            .loss(|batch, step| {
                let anchor: Vec<Option<&[f32]>> = batch
                    .indices
                    .iter()
                    .map(|&i| {
                        let r = i.checked_sub(first_replayed)?;
                        Some(&anchors[r * classes..(r + 1) * classes])
                    })
                    .collect();
                step(&AnchoredCrossEntropy {
                    labels: &batch.labels,
                    anchors: &anchor,
                    lambda,
                })
            })
            .fit(model, Examples::Set(TrainSet::labeled(&x, &y)), rng);

        for (image, &label) in round.crafted.chunks(dim).zip(round.crafted_labels) {
            self.buffer.push_back((image.to_vec(), label));
        }
        while self.buffer.len() > self.config.replay {
            self.buffer.pop_front();
        }
    }
}

/// Cross-entropy on every row, plus `lambda * ||z - anchor||^2 / classes`
/// on rows that have an anchor.
struct AnchoredCrossEntropy<'a> {
    labels: &'a [u8],
    anchors: &'a [Option<&'a [f32]>],
    lambda: f32,
}

impl Loss for AnchoredCrossEntropy<'_> {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let (mut losses, mut grad) = CrossEntropy { labels: self.labels }.eval(logits, classes);
        for (i, anchor) in self.anchors.iter().enumerate() {
            let Some(anchor) = anchor else { continue };
            let row = i * classes..(i + 1) * classes;
            for ((z, a), g) in logits[row.clone()].iter().zip(*anchor).zip(&mut grad[row]) {
                losses[i] += self.lambda * (z - a) * (z - a) / classes as f32;
                *g += 2.0 * self.lambda * (z - a) / classes as f32;
            }
        }
        (losses, grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_penalty_pulls_replayed_logits_back_to_their_anchors() {
        let anchor = [1.0f32, 0.0];
        let anchors = [None, Some(&anchor[..])];
        let loss = AnchoredCrossEntropy {
            labels: &[0, 0],
            anchors: &anchors,
            lambda: 1.0,
        };
        let logits = [3.0f32, 0.0, 3.0, 0.0];
        let (losses, grad) = loss.eval(&logits, 2);
        let (plain, plain_grad) = CrossEntropy { labels: &[0, 0] }.eval(&logits, 2);
        assert_eq!(losses[0], plain[0]);
        assert!((losses[1] - plain[1] - 2.0).abs() < 1e-6, "(3 - 1)^2 / 2 classes");
        assert!((grad[2] - plain_grad[2] - 2.0).abs() < 1e-6);
        assert_eq!(grad[3], plain_grad[3]);
    }
}
