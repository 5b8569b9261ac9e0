//! The one minibatch trainer: pretraining, every defense, the matrix and the
//! transfer surrogate all train through [`Trainer::fit`].
//!
//! It sits at the model layer, so it knows nothing of attacks: examples
//! crafted on the fly come in as a closure that makes each batch (told the
//! step, and how far the budget has warmed up), and early stopping takes its
//! score (e.g. PGD accuracy on held-out training images) as a closure too.
//! What a run may tune is one [`TrainConfig`].

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Classifier, CrossEntropy, Loss, OptimizerConfig, SoftCrossEntropy};

/// How long a training run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Passes over a fixed set, each in a fresh random order.
    Epochs(usize),
    /// Optimizer steps, one batch each.
    Steps(usize),
}

/// The settings of one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// The optimizer and its learning-rate schedule (over this run's steps).
    pub optimizer: OptimizerConfig,
    /// Images per batch (a made batch may hold more rows, e.g. clean and
    /// adversarial copies of each image).
    pub batch: usize,
    pub length: Length,
    /// Steps over which the attack budget of made batches grows linearly
    /// from 0 to its full size (0: full from the start).
    pub eps_warmup: usize,
    /// Checkpoints scored during the run, the best one kept.
    pub early_stop: Option<EarlyStop>,
}

/// Early stopping (Wong et al. 2020's remedy for catastrophic overfitting):
/// every `every` steps once the budget has warmed up, the model is scored
/// (by the caller: robust accuracy on training images held out of the run);
/// the run stops when the score falls more than `drop` below the best so
/// far, and ends on the best checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStop {
    /// Steps between checkpoints.
    #[serde(default = "default_every")]
    pub every: usize,
    /// Training images held out of the run to score checkpoints on.
    #[serde(default = "default_held_out")]
    pub images: usize,
    /// How far below the best score (a fraction, 0 to 1) stops the run.
    #[serde(default = "default_drop")]
    pub drop: f64,
}

fn default_every() -> usize {
    100
}
fn default_held_out() -> usize {
    500
}
fn default_drop() -> f64 {
    0.2
}

impl EarlyStop {
    pub fn validate(&self) -> crate::Result<()> {
        let invalid = |message: String| Err(crate::Error::invalid(message));
        if self.every == 0 {
            return invalid("`early_stop.every` must be at least 1 step".into());
        }
        if self.images == 0 {
            return invalid("`early_stop.images` must be at least 1".into());
        }
        if !(self.drop.is_finite() && (0.0..=1.0).contains(&self.drop)) {
            return invalid(format!("`early_stop.drop` must be in [0, 1], got {}", self.drop));
        }
        Ok(())
    }
}

impl TrainConfig {
    /// `epochs` passes over a fixed set in batches of `batch`.
    pub fn epochs(epochs: usize, batch: usize, optimizer: OptimizerConfig) -> TrainConfig {
        TrainConfig {
            optimizer,
            batch,
            length: Length::Epochs(epochs),
            eps_warmup: 0,
            early_stop: None,
        }
    }

    /// `steps` optimizer steps on batches of `batch`.
    pub fn steps(steps: usize, batch: usize, optimizer: OptimizerConfig) -> TrainConfig {
        TrainConfig {
            length: Length::Steps(steps),
            ..TrainConfig::epochs(0, batch, optimizer)
        }
    }

    /// Optimizer steps the run takes on `images` images (early stopping aside).
    pub fn total_steps(&self, images: usize) -> usize {
        match self.length {
            Length::Steps(steps) => steps,
            Length::Epochs(epochs) => epochs.saturating_mul(images.div_ceil(self.batch.max(1))),
        }
    }

    /// The share of the attack budget at `step` (from 0): rises linearly to 1
    /// over the warm-up (reaching it at the warm-up's last step).
    pub fn eps_scale(&self, step: usize) -> f32 {
        if self.eps_warmup == 0 {
            1.0
        } else {
            ((step + 1) as f32 / self.eps_warmup as f32).min(1.0)
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

/// Where a step stands in its run, for the closure that makes its batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Images per batch.
    pub batch: usize,
    /// This step (from 0) and the run's steps.
    pub index: usize,
    pub steps: usize,
    /// The share of the attack budget to craft with (see `eps_warmup`).
    pub eps_scale: f32,
}

/// Makes each step's batch from the current model, the step and the run's
/// random stream (for examples crafted against the model as it trains).
pub type MakeBatch<'a> = dyn FnMut(&dyn Classifier, &Step, &mut ChaCha8Rng) -> Batch + 'a;

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

/// Scores a checkpoint for early stopping (higher is better).
pub type Score<'a> = dyn Fn(&dyn Classifier) -> f64 + 'a;

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// The mean loss per row of the last pass over a set (or of all the
    /// steps on made batches).
    pub loss: f32,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Every checkpoint's step (counted from 1) and score, when the run
    /// stopped early or scored checkpoints.
    pub checkpoints: Vec<(usize, f64)>,
    /// The checkpoint the model ended on, when early stopping chose one.
    pub kept: Option<(usize, f64)>,
    /// Whether the score's fall stopped the run before its length.
    pub stopped_early: bool,
}

/// A minibatch trainer: a [`TrainConfig`], and optionally a loss per batch,
/// a condition to stop on, and a score for early stopping.
pub struct Trainer<'a> {
    pub config: TrainConfig,
    loss: Option<Box<BatchLoss<'a>>>,
    stop: Option<&'a dyn Fn() -> bool>,
    score: Option<&'a Score<'a>>,
}

/// The run's progress as early stopping follows it.
struct Checkpoints {
    every: usize,
    drop: f64,
    after: usize,
    best: Option<(usize, f64, Vec<f32>)>,
    scores: Vec<(usize, f64)>,
    fell: bool,
}

impl<'a> Trainer<'a> {
    /// Trains on cross-entropy against the labels (or, for a set with only
    /// targets, against the targets) until `config.length` is spent.
    pub fn new(config: TrainConfig) -> Trainer<'a> {
        Trainer {
            config,
            loss: None,
            stop: None,
            score: None,
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

    /// Scores checkpoints with `score` when `config.early_stop` is set.
    pub fn score_with(mut self, score: &'a Score<'a>) -> Trainer<'a> {
        self.score = Some(score);
        self
    }

    /// Trains `model` on `examples`, drawing every shuffle and every made
    /// batch from `rng`, in order.
    pub fn fit(&self, model: &mut dyn Classifier, examples: Examples<'_>, rng: &mut ChaCha8Rng) -> Fitted {
        let mut checkpoints = self
            .config
            .early_stop
            .as_ref()
            .filter(|_| self.score.is_some())
            .map(|early| Checkpoints {
                every: early.every,
                drop: early.drop,
                after: self.config.eps_warmup,
                best: None,
                scores: Vec::new(),
                fell: false,
            });
        let (loss, steps) = match examples {
            Examples::Set(set) => self.fit_set(model, set, rng, &mut checkpoints),
            Examples::Made(make) => self.fit_made(model, make, rng, &mut checkpoints),
        };
        let mut fitted = Fitted {
            loss,
            steps,
            checkpoints: Vec::new(),
            kept: None,
            stopped_early: false,
        };
        if let Some(mut checkpoints) = checkpoints {
            // The run's end is a checkpoint too, unless one was just taken.
            if checkpoints.scores.last().is_none_or(|&(at, _)| at != steps)
                && !checkpoints.fell
                && steps > checkpoints.after
            {
                self.checkpoint(model, steps, &mut checkpoints);
            }
            if let Some((at, score, params)) = checkpoints.best {
                if at != steps {
                    model.set_parameters(&params);
                }
                fitted.kept = Some((at, score));
            }
            fitted.checkpoints = checkpoints.scores;
            fitted.stopped_early = checkpoints.fell;
        }
        fitted
    }

    /// Scores the model after `done` steps; returns whether the run stops.
    fn checkpoint(&self, model: &dyn Classifier, done: usize, checkpoints: &mut Checkpoints) -> bool {
        let score = (self.score.expect("checkpoints only with a score"))(model);
        checkpoints.scores.push((done, score));
        match &checkpoints.best {
            Some((_, best, _)) if score <= *best => {
                checkpoints.fell = score < best - checkpoints.drop;
                checkpoints.fell
            }
            _ => {
                checkpoints.best = Some((done, score, model.parameters()));
                false
            }
        }
    }

    /// After step `done` (counted from 1): a checkpoint where one is due;
    /// whether the run stops there.
    fn after_step(&self, model: &dyn Classifier, done: usize, checkpoints: &mut Option<Checkpoints>) -> bool {
        match checkpoints {
            Some(c) if done > c.after && (done - c.after).is_multiple_of(c.every) => self.checkpoint(model, done, c),
            _ => false,
        }
    }

    /// Passes over `set`, each in a fresh order; in steps, as many passes as
    /// the steps take, the last one cut short.
    fn fit_set(
        &self,
        model: &mut dyn Classifier,
        set: TrainSet<'_>,
        rng: &mut ChaCha8Rng,
        checkpoints: &mut Option<Checkpoints>,
    ) -> (f32, usize) {
        let n = set.x.len() / model.input_dim().max(1);
        let batch = self.config.batch;
        let total = self.config.total_steps(n);
        let passes = match self.config.length {
            Length::Epochs(epochs) => epochs,
            Length::Steps(steps) => steps.div_ceil(n.div_ceil(batch.max(1)).max(1)),
        };
        let mut order: Vec<usize> = (0..n).collect();
        let mut last = Mean::default();
        let mut done = 0;
        for _ in 0..passes {
            order.shuffle(rng);
            let mut pass = Mean::default();
            for chunk in order.chunks(batch) {
                if done == total || self.stopped() {
                    return (pass.value(), done);
                }
                let batch = gather(&set, chunk, model);
                pass.add(self.step(model, &batch, done, total), chunk.len());
                done += 1;
                if self.after_step(model, done, checkpoints) {
                    return (pass.value(), done);
                }
            }
            last = pass;
        }
        (last.value(), done)
    }

    /// One step per made batch, each made against the model as it stands.
    fn fit_made(
        &self,
        model: &mut dyn Classifier,
        make: &mut MakeBatch<'_>,
        rng: &mut ChaCha8Rng,
        checkpoints: &mut Option<Checkpoints>,
    ) -> (f32, usize) {
        let Length::Steps(steps) = self.config.length else {
            panic!("made batches have no epochs: train them for a number of steps");
        };
        let mut mean = Mean::default();
        for index in 0..steps {
            if self.stopped() {
                return (mean.value(), index);
            }
            let step = Step {
                batch: self.config.batch,
                index,
                steps,
                eps_scale: self.config.eps_scale(index),
            };
            let batch = make(&*model, &step, rng);
            let rows = batch.x.len() / model.input_dim().max(1);
            mean.add(self.step(model, &batch, index, steps), rows);
            if self.after_step(model, index + 1, checkpoints) {
                return (mean.value(), index + 1);
            }
        }
        (mean.value(), steps)
    }

    fn stopped(&self) -> bool {
        self.stop.is_some_and(|stop| stop())
    }

    /// Optimizer step `index` of `steps` on `batch`; returns its mean loss.
    fn step(&self, model: &mut dyn Classifier, batch: &Batch, index: usize, steps: usize) -> f32 {
        let opt = &self.config.optimizer.at(index, steps);
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
        ModelConfig::mlp(vec![8]).init(Engine::Native, crate::data::Shape::gray(4, 4), 3, 7)
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
        let trainer = Trainer::new(TrainConfig::epochs(2, 3, OptimizerConfig::default())).loss(|batch, step| {
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
        let trainer = Trainer::new(TrainConfig::steps(5, 3, OptimizerConfig::default())).loss(|batch, step| {
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
        let mut make = |_: &dyn Classifier, step: &Step, _: &mut ChaCha8Rng| {
            made.set(made.get() + 1);
            assert_eq!(step.batch, 4);
            Batch::labeled(x.clone(), y.clone())
        };
        let trainer = Trainer::new(TrainConfig::steps(10, 4, OptimizerConfig::default())).stop_when(&stop);
        let mut net = model();
        let before = net.parameters();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let fitted = trainer.fit(net.as_mut(), Examples::Made(&mut make), &mut rng);
        assert_eq!((made.get(), fitted.steps), (3, 3));
        assert!(fitted.loss.is_finite() && fitted.loss > 0.0);
        assert_ne!(net.parameters(), before);
    }

    #[test]
    fn the_same_stream_trains_the_same_model() {
        let (x, y) = data(12);
        let run = || {
            let mut net = model();
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let trainer = Trainer::new(TrainConfig::epochs(2, 5, OptimizerConfig::default()));
            trainer.fit(net.as_mut(), Examples::Set(TrainSet::labeled(&x, &y)), &mut rng);
            net.parameters()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn the_budget_warms_up_linearly_over_its_steps() {
        let (x, y) = data(4);
        let scales = std::cell::RefCell::new(Vec::new());
        let mut make = |_: &dyn Classifier, step: &Step, _: &mut ChaCha8Rng| {
            scales.borrow_mut().push(step.eps_scale);
            Batch::labeled(x.clone(), y.clone())
        };
        let mut config = TrainConfig::steps(6, 4, OptimizerConfig::default());
        config.eps_warmup = 4;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        Trainer::new(config).fit(model().as_mut(), Examples::Made(&mut make), &mut rng);
        assert_eq!(scales.into_inner(), vec![0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    /// A run scored by a script of scores, one per checkpoint.
    fn scored_run(scores: &[f64], steps: usize, drop: f64) -> (Fitted, Vec<Vec<f32>>, Vec<f32>) {
        let (x, y) = data(6);
        let mut config = TrainConfig::steps(steps, 3, OptimizerConfig::default());
        config.eps_warmup = 2;
        config.early_stop = Some(EarlyStop {
            every: 2,
            images: 1,
            drop,
        });
        let snapshots = std::cell::RefCell::new(Vec::new());
        let next = std::cell::Cell::new(0);
        let score = |model: &dyn Classifier| {
            snapshots.borrow_mut().push(model.parameters());
            let s = scores[next.get().min(scores.len() - 1)];
            next.set(next.get() + 1);
            s
        };
        let mut net = model();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let fitted = Trainer::new(config).score_with(&score).fit(
            net.as_mut(),
            Examples::Set(TrainSet::labeled(&x, &y)),
            &mut rng,
        );
        (fitted, snapshots.into_inner(), net.parameters())
    }

    #[test]
    fn early_stopping_scores_after_the_warm_up_and_ends_on_the_best_checkpoint() {
        // Checkpoints after steps 4, 6, 8, 10 (every 2 once the 2 warm-up steps
        // are done); the best is the second; none falls by more than 0.5.
        let (fitted, snapshots, end) = scored_run(&[0.5, 0.7, 0.6, 0.65], 10, 0.5);
        let steps: Vec<usize> = fitted.checkpoints.iter().map(|c| c.0).collect();
        assert_eq!(steps, vec![4, 6, 8, 10]);
        assert_eq!(fitted.kept, Some((6, 0.7)));
        assert!(!fitted.stopped_early);
        assert_eq!(fitted.steps, 10);
        assert_eq!(end, snapshots[1], "the model ends on the kept checkpoint's parameters");
    }

    #[test]
    fn a_fall_beyond_the_drop_stops_the_run() {
        let (fitted, snapshots, end) = scored_run(&[0.8, 0.9, 0.3, 0.95], 20, 0.2);
        assert!(fitted.stopped_early);
        assert_eq!(fitted.steps, 8, "stopped at the third checkpoint");
        assert_eq!(fitted.kept, Some((6, 0.9)));
        assert_eq!(end, snapshots[1]);
    }

    #[test]
    fn a_schedule_reaches_the_optimizer_of_every_step() {
        // One-cycle from 0: with a schedule the first step moves the weights
        // less than a constant rate would.
        let (x, y) = data(3);
        let moved = |optimizer: OptimizerConfig| {
            let mut net = model();
            let before = net.parameters();
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            Trainer::new(TrainConfig::steps(1, 3, optimizer)).fit(
                net.as_mut(),
                Examples::Set(TrainSet::labeled(&x, &y)),
                &mut rng,
            );
            before
                .iter()
                .zip(net.parameters())
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
        };
        let constant = moved(OptimizerConfig::sgd(0.1, 0.0, 0.0));
        let cycled =
            moved(OptimizerConfig::sgd(0.1, 0.0, 0.0).with_schedule(crate::model::Schedule::OneCycle { peak: 0.9 }));
        assert!(cycled > 0.0 && cycled < 0.7 * constant, "{cycled} vs {constant}");
    }
}
