//! PGD adversarial training: every step crafts PGD examples against the
//! current model on a fresh clean batch and trains on them. Madry et al. 2018.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adversarial::{default_batch, default_opt};
use super::{sample_train, validate_training, Defense, DefenseSpec, RoundData};
use crate::attack::{AttackConfig, Norm, PgdConfig};
use crate::data::Split;
use crate::error::Error;
use crate::model::train::Score;
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
        validate_training(("steps", self.steps), self.batch, &self.optimizer)
    }
}

impl Defense for PgdAtConfig {
    fn update(&mut self, model: &mut dyn Classifier, round: &RoundData<'_>, rng: &mut ChaCha8Rng) {
        let attack = AttackConfig::Pgd(self.attack.clone());
        let mut training = TrainConfig::steps(self.steps, self.batch, self.optimizer.clone());
        training.eps_warmup = self.eps_warmup;
        train_against(model, &attack, round.train, training, rng, &|| false, None);
    }
}

/// Madry-style adversarial training, for any attack: every step crafts
/// `attack` (its budget scaled by the warm-up, if any) against the current
/// model on a fresh batch of `train` and trains on the result. Stops early
/// when `stop` says so, and scores checkpoints with `score` when the
/// training has early stopping.
pub fn train_against(
    model: &mut dyn Classifier,
    attack: &AttackConfig,
    train: &Split,
    training: TrainConfig,
    rng: &mut ChaCha8Rng,
    stop: &dyn Fn() -> bool,
    score: Option<&Score<'_>>,
) -> Fitted {
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
    let mut trainer = Trainer::new(training).stop_when(stop);
    if let Some(score) = score {
        trainer = trainer.score_with(score);
    }
    trainer.fit(model, Examples::Made(&mut make), rng)
}
