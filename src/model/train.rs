//! The one minibatch trainer: pretraining, every defense, the matrix and the
//! transfer surrogate all train through [`Trainer::fit`].
//!
//! It sits at the model layer, so it knows nothing of attacks: examples
//! crafted on the fly come in as a closure that makes each batch. What a run
//! may tune (optimizer, batch size, length) is one [`TrainConfig`], where
//! later settings (other optimizers, schedules, warm-up, early stopping)
//! belong too.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{Classifier, CrossEntropy, Loss, Sgd, SoftCrossEntropy};

/// How long a training run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Passes over a fixed set, each in a fresh random order.
    Epochs(usize),
    /// Optimizer steps, one batch each.
    Steps(usize),
}

/// The settings of one training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    pub optimizer: Sgd,
    /// Images per batch (a made batch may hold more rows, e.g. clean and
    /// adversarial copies of each image).
    pub batch: usize,
    pub length: Length,
}

impl TrainConfig {
    /// `epochs` passes over a fixed set in batches of `batch`.
    pub fn epochs(epochs: usize, batch: usize, optimizer: Sgd) -> TrainConfig {
        TrainConfig {
            optimizer,
            batch,
            length: Length::Epochs(epochs),
        }
    }

    /// `steps` optimizer steps on batches of `batch`.
    pub fn steps(steps: usize, batch: usize, optimizer: Sgd) -> TrainConfig {
        TrainConfig {
            optimizer,
            batch,
            length: Length::Steps(steps),
        }
    }
}

/// A fixed training set: images, with a label and/or a target distribution
/// (one row of class probabilities) per image.
#[derive(Debug, Clone, Copy)]
pub struct TrainSet<'a> {
    pub x: &'a [f32],
    pub labels: Option<&'a [u8]>,
    pub targets: Option<&'a [f32]>,
}

impl<'a> TrainSet<'a> {
    /// Images and their labels.
    pub fn labeled(x: &'a [f32], labels: &'a [u8]) -> TrainSet<'a> {
        TrainSet {
            x,
            labels: Some(labels),
            targets: None,
        }
    }

    /// Images and a target distribution for each.
    pub fn with_targets(x: &'a [f32], targets: &'a [f32]) -> TrainSet<'a> {
        TrainSet {
            x,
            labels: None,
            targets: Some(targets),
        }
    }
}

/// One minibatch: the rows a step trains on.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub x: Vec<f32>,
    /// One label per image (empty when the set has none).
    pub labels: Vec<u8>,
    /// One target row per image (empty when the set has none).
    pub targets: Vec<f32>,
    /// Where the images sit in a fixed set; empty for made batches.
    pub indices: Vec<usize>,
}

impl Batch {
    /// A made batch of images and their labels.
    pub fn labeled(x: Vec<f32>, labels: Vec<u8>) -> Batch {
        Batch {
            x,
            labels,
            ..Batch::default()
        }
    }
}

/// Makes each step's batch from the current model, the batch size and the
/// run's random stream (for examples crafted against the model as it trains).
pub type MakeBatch<'a> = dyn FnMut(&dyn Classifier, usize, &mut ChaCha8Rng) -> Batch + 'a;

/// What a run trains on.
pub enum Examples<'a> {
    /// A fixed set, shuffled anew at every pass.
    Set(TrainSet<'a>),
    /// Batches made afresh for every step; only [`Length::Steps`] applies.
    Made(&'a mut MakeBatch<'a>),
}

/// For runs that do not train on plain cross-entropy: given a batch and the
/// step, calls the step once with the batch's loss and returns what it
/// returns. (Handing the loss to the step, rather than returning it, lets
/// the loss borrow from both the batch and the caller's data.)
type BatchLoss<'a> = dyn Fn(&Batch, &mut dyn FnMut(&dyn Loss) -> f32) -> f32 + 'a;

/// A minibatch trainer: a [`TrainConfig`], and optionally a loss per batch
/// and a condition to stop early on.
pub struct Trainer<'a> {
    pub config: TrainConfig,
    loss: Option<Box<BatchLoss<'a>>>,
    stop: Option<&'a dyn Fn() -> bool>,
}

impl<'a> Trainer<'a> {
    /// Trains on cross-entropy against the labels (or, for a set with only
    /// targets, against the targets) until `config.length` is spent.
    pub fn new(config: TrainConfig) -> Trainer<'a> {
        Trainer {
            config,
            loss: None,
            stop: None,
        }
    }

    /// Trains each batch on its own loss instead: `loss(batch, step)` calls
    /// `step` once with the batch's loss and returns what `step` returns.
    pub fn loss(mut self, loss: impl Fn(&Batch, &mut dyn FnMut(&dyn Loss) -> f32) -> f32 + 'a) -> Trainer<'a> {
        self.loss = Some(Box::new(loss));
        self
    }

    /// Stops before any step at which `stop` returns true.
    pub fn stop_when(mut self, stop: &'a dyn Fn() -> bool) -> Trainer<'a> {
        self.stop = Some(stop);
        self
    }

    /// Trains `model` on `examples`, drawing every shuffle and every made
    /// batch from `rng`, in order. Returns the mean loss per row of the last
    /// pass over a set (or of all the steps on made batches).
    pub fn fit(&self, model: &mut dyn Classifier, examples: Examples<'_>, rng: &mut ChaCha8Rng) -> f32 {
        match examples {
            Examples::Set(set) => self.fit_set(model, set, rng),
            Examples::Made(make) => self.fit_made(model, make, rng),
        }
    }

    /// Passes over `set`, each in a fresh order; in steps, as many passes as
    /// the steps take, the last one cut short.
    fn fit_set(&self, model: &mut dyn Classifier, set: TrainSet<'_>, rng: &mut ChaCha8Rng) -> f32 {
        let n = set.x.len() / model.input_dim().max(1);
        let batch = self.config.batch;
        let (passes, mut steps_left) = match self.config.length {
            Length::Epochs(epochs) => (epochs, usize::MAX),
            Length::Steps(steps) => (steps.div_ceil(n.div_ceil(batch.max(1)).max(1)), steps),
        };
        let mut order: Vec<usize> = (0..n).collect();
        let mut last = Mean::default();
        for _ in 0..passes {
            order.shuffle(rng);
            let mut pass = Mean::default();
            for chunk in order.chunks(batch) {
                if steps_left == 0 || self.stopped() {
                    return pass.value();
                }
                steps_left -= 1;
                let batch = gather(&set, chunk, model);
                pass.add(self.step(model, &batch), chunk.len());
            }
            last = pass;
        }
        last.value()
    }

    /// One step per made batch, each made against the model as it stands.
    fn fit_made(&self, model: &mut dyn Classifier, make: &mut MakeBatch<'_>, rng: &mut ChaCha8Rng) -> f32 {
        let Length::Steps(steps) = self.config.length else {
            panic!("made batches have no epochs: train them for a number of steps");
        };
        let mut mean = Mean::default();
        for _ in 0..steps {
            if self.stopped() {
                break;
            }
            let batch = make(&*model, self.config.batch, rng);
            let rows = batch.x.len() / model.input_dim().max(1);
            mean.add(self.step(model, &batch), rows);
        }
        mean.value()
    }

    fn stopped(&self) -> bool {
        self.stop.is_some_and(|stop| stop())
    }

    /// One optimizer step on `batch`; returns its mean loss.
    fn step(&self, model: &mut dyn Classifier, batch: &Batch) -> f32 {
        let opt = &self.config.optimizer;
        match &self.loss {
            Some(loss) => loss(batch, &mut |loss| model.train_step(&batch.x, loss, opt)),
            None if batch.labels.is_empty() && !batch.targets.is_empty() => model.train_step(
                &batch.x,
                &SoftCrossEntropy {
                    targets: &batch.targets,
                },
                opt,
            ),
            None => model.train_step(&batch.x, &CrossEntropy { labels: &batch.labels }, opt),
        }
    }
}

/// The rows of `set` at `indices`, in that order.
fn gather(set: &TrainSet<'_>, indices: &[usize], model: &dyn Classifier) -> Batch {
    let (dim, classes) = (model.input_dim(), model.classes());
    let rows = |v: &[f32], width: usize| -> Vec<f32> {
        indices
            .iter()
            .flat_map(|&i| &v[i * width..(i + 1) * width])
            .copied()
            .collect()
    };
    Batch {
        x: rows(set.x, dim),
        labels: set
            .labels
            .map(|y| indices.iter().map(|&i| y[i]).collect())
            .unwrap_or_default(),
        targets: set.targets.map(|t| rows(t, classes)).unwrap_or_default(),
        indices: indices.to_vec(),
    }
}

/// A running mean of batch losses, weighted by rows.
#[derive(Default)]
struct Mean {
    total: f32,
    rows: usize,
}

impl Mean {
    fn add(&mut self, loss: f32, rows: usize) {
        self.total += loss * rows as f32;
        self.rows += rows;
    }

    fn value(&self) -> f32 {
        self.total / self.rows.max(1) as f32
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::model::{Engine, ModelConfig};

    fn model() -> Box<dyn Classifier> {
        ModelConfig::Mlp { hidden: vec![8] }.init(Engine::Native, 4, 4, 3, 7)
    }

    fn data(n: usize) -> (Vec<f32>, Vec<u8>) {
        let x = (0..n * 16).map(|i| (i % 11) as f32 / 10.0).collect();
        let y = (0..n).map(|i| (i % 3) as u8).collect();
        (x, y)
    }

    #[test]
    fn an_epoch_visits_every_image_once_in_a_shuffled_order() {
        let (x, y) = data(10);
        let seen = std::cell::RefCell::new(Vec::new());
        let trainer = Trainer::new(TrainConfig::epochs(2, 3, Sgd::default())).loss(|batch, step| {
            seen.borrow_mut().extend_from_slice(&batch.indices);
            step(&CrossEntropy { labels: &batch.labels })
        });
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        trainer.fit(model().as_mut(), Examples::Set(TrainSet::labeled(&x, &y)), &mut rng);
        drop(trainer);
        let seen = seen.into_inner();
        assert_eq!(seen.len(), 20);
        for epoch in seen.chunks(10) {
            let mut sorted = epoch.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(seen[..10], seen[10..], "each epoch draws its own order");
    }

    #[test]
    fn steps_over_a_set_run_on_into_the_next_pass() {
        let (x, y) = data(10);
        let steps = std::cell::Cell::new(0);
        let trainer = Trainer::new(TrainConfig::steps(5, 3, Sgd::default())).loss(|batch, step| {
            steps.set(steps.get() + 1);
            step(&CrossEntropy { labels: &batch.labels })
        });
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        trainer.fit(model().as_mut(), Examples::Set(TrainSet::labeled(&x, &y)), &mut rng);
        assert_eq!(steps.get(), 5, "four batches in a pass of 10, then one more");
    }

    #[test]
    fn made_batches_train_for_their_steps_and_stop_when_told() {
        let (x, y) = data(4);
        let made = std::cell::Cell::new(0);
        let stop = || made.get() == 3;
        let mut make = |_: &dyn Classifier, batch: usize, _: &mut ChaCha8Rng| {
            made.set(made.get() + 1);
            assert_eq!(batch, 4);
            Batch::labeled(x.clone(), y.clone())
        };
        let trainer = Trainer::new(TrainConfig::steps(10, 4, Sgd::default())).stop_when(&stop);
        let mut net = model();
        let before = net.parameters();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let loss = trainer.fit(net.as_mut(), Examples::Made(&mut make), &mut rng);
        assert_eq!(made.get(), 3);
        assert!(loss.is_finite() && loss > 0.0);
        assert_ne!(net.parameters(), before);
    }

    #[test]
    fn the_same_stream_trains_the_same_model() {
        let (x, y) = data(12);
        let run = || {
            let mut net = model();
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let trainer = Trainer::new(TrainConfig::epochs(2, 5, Sgd::default()));
            trainer.fit(net.as_mut(), Examples::Set(TrainSet::labeled(&x, &y)), &mut rng);
            net.parameters()
        };
        assert_eq!(run(), run());
    }
}
