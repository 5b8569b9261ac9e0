//! PGD adversarial training: every step crafts PGD examples against the
//! current model on a fresh clean batch and trains on them. Madry et al. 2018.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adversarial::{default_batch, default_opt};
use super::{sample_train, validate_training, Defense, DefenseSpec, RoundData};
use crate::attack::{AttackConfig, Norm, PgdConfig};
use crate::data::Split;
use crate::error::Error;
use crate::model::metrics::{correct, fraction, robust, EVAL_BATCH};
use crate::model::{Batch, Classifier, Examples, Fitted, OptimizerConfig, Step, TrainConfig, Trainer};
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgdAtConfig {
    /// The attack it trains against (its budget must be within the rules).
    #[serde(default = "default_attack")]
    pub attack: PgdConfig,
    /// Training steps per round.
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_opt")]
    pub optimizer: OptimizerConfig,
    /// Steps (of each round's training) over which the attack's budget
    /// grows linearly from 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eps_warmup: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_attack() -> PgdConfig {
    let mut attack = PgdConfig::new(Norm::Linf, 0.3);
    attack.steps = 7;
    attack
}
fn default_steps() -> usize {
    40
}

impl Describe for PgdAtConfig {
    const HELP: &'static str = "Madry et al.'s adversarial training: PGD examples crafted on the fly at every step";
    fn example() -> Self {
        super::with_defaults()
    }
}

impl DefenseSpec for PgdAtConfig {
    fn init(&self) -> Box<dyn Defense> {
        Box::new(self.clone())
    }

    fn training_attacks(&self) -> Vec<AttackConfig> {
        vec![AttackConfig::Pgd(self.attack.clone())]
    }

    fn work_per_round(&self, _craft: usize) -> usize {
        self.steps * self.batch * (self.attack.steps * self.attack.restarts + 1)
    }

    fn validate(&self) -> crate::Result<()> {
        // Through its message, whichever error type attacks report.
        AttackConfig::Pgd(self.attack.clone())
            .validate()
            .map_err(|e| Error::invalid(e.to_string()).within("in `attack`"))?;
        crate::config::schema::check_adversarial_recipe(None, self.eps_warmup, None, self.steps, usize::MAX)?;
        validate_training(("steps", self.steps), self.batch, &self.optimizer)
    }
}

impl Defense for PgdAtConfig {
    fn update(&mut self, model: &mut dyn Classifier, round: &RoundData<'_>, rng: &mut ChaCha8Rng) {
        let attack = AttackConfig::Pgd(self.attack.clone());
        let mut training = TrainConfig::steps(self.steps, self.batch, self.optimizer.clone());
        training.eps_warmup = self.eps_warmup;
        train_against(model, &attack, round.train, training, rng, &|| false);
    }
}

/// Madry-style adversarial training, for any attack: every step crafts
/// `attack` (its budget scaled by the warm-up, if any) against the current
/// model on a fresh batch of `train` and trains on the result. Stops early
/// when `stop` says so. With `training.early_stop`, a slice of `train` (its
/// `images`, at most half) is held out of the run, drawn from `rng`, and
/// checkpoints are scored by PGD accuracy on it at the attack's full budget.
pub fn train_against(
    model: &mut dyn Classifier,
    attack: &AttackConfig,
    train: &Split,
    training: TrainConfig,
    rng: &mut ChaCha8Rng,
    stop: &dyn Fn() -> bool,
) -> Fitted {
    let (trained_on, held_out) = match &training.early_stop {
        Some(early) => {
            // At most half the images: the rest must still train.
            let (held, rest) = hold_out(train, early.images.min(train.len() / 2), rng);
            (std::borrow::Cow::Owned(rest), Some(held))
        }
        None => (std::borrow::Cow::Borrowed(train), None),
    };
    let train = trained_on.as_ref();
    let mut make = |model: &dyn Classifier, step: &Step, rng: &mut ChaCha8Rng| {
        let (x, y) = sample_train(train, step.batch, rng);
        let warming = (step.eps_scale < 1.0).then(|| attack.scaled(step.eps_scale)).flatten();
        // The registry's attacks stay in budget (the conformance suite
        // holds them to it), so training needs no referee.
        let adv = warming
            .as_ref()
            .unwrap_or(attack)
            .run_with(model, &x, &y, rng, step.batch, Some(train))
            .examples;
        Batch::labeled(adv, y)
    };
    let score_attack = early_stop_attack(attack);
    // Drawn only with early stopping, so that a run without it consumes the
    // stream as it always did.
    let score_seed = if held_out.is_some() { rng.next_u64() } else { 0 };
    let score = |model: &dyn Classifier| {
        let held_out = held_out.as_ref().expect("scored only with a held-out slice");
        let mut rng = ChaCha8Rng::seed_from_u64(score_seed);
        robust_accuracy(model, &score_attack, held_out, &mut rng)
    };
    let mut trainer = Trainer::new(training).stop_when(stop);
    if held_out.is_some() {
        trainer = trainer.score_with(&score);
    }
    trainer.fit(model, Examples::Made(&mut make), rng)
}

/// `count` images of `train` drawn from `rng`, and the rest:
/// `(held_out, rest)`, each in the split's order.
pub fn hold_out(train: &Split, count: usize, rng: &mut ChaCha8Rng) -> (Split, Split) {
    let mut held = rand::seq::index::sample(rng, train.len(), count.min(train.len())).into_vec();
    held.sort_unstable();
    let mut is_held = vec![false; train.len()];
    held.iter().for_each(|&i| is_held[i] = true);
    let rest: Vec<usize> = (0..train.len()).filter(|&i| !is_held[i]).collect();
    (train.subset(&held), train.subset(&rest))
}

/// What early stopping scores with: PGD-10 from a random start at the
/// training attack's norm and full budget, step 2.5 eps / 10 (Madry's rule).
pub fn early_stop_attack(attack: &AttackConfig) -> AttackConfig {
    let threat = attack.threat();
    AttackConfig::Pgd(PgdConfig::new(threat.norm, threat.eps))
}

/// The share of `split` that `model` classifies correctly both clean and
/// under `attack`.
pub fn robust_accuracy(model: &dyn Classifier, attack: &AttackConfig, split: &Split, rng: &mut ChaCha8Rng) -> f64 {
    let clean = correct(model, &split.images, &split.labels);
    let adv = attack.run_with(model, &split.images, &split.labels, rng, EVAL_BATCH, None);
    fraction(&robust(model, &adv.examples, &split.labels, &clean))
}
