//! PGD adversarial training: every step crafts PGD examples against the
//! current model on a fresh clean batch and trains on them. Madry et al. 2018.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adversarial::{default_batch, default_opt};
use super::{sample_train, validate_training, Defense, DefenseSpec, RoundData};
use crate::attack::{AttackConfig, Norm, PgdConfig};
use crate::data::Split;
use crate::error::Error;
use crate::model::{Batch, Classifier, Examples, Sgd, TrainConfig, Trainer};
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
    pub optimizer: Sgd,
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
        let training = TrainConfig::steps(self.steps, self.batch, self.optimizer);
        train_against(model, &attack, round.train, training, rng, &|| false);
    }
}

/// Madry-style adversarial training, for any attack: every step crafts
/// `attack` against the current model on a fresh batch of `train` and
/// trains on the result. Stops early when `stop` says so.
pub fn train_against(
    model: &mut dyn Classifier,
    attack: &AttackConfig,
    train: &Split,
    training: TrainConfig,
    rng: &mut ChaCha8Rng,
    stop: &dyn Fn() -> bool,
) {
    let mut make = |model: &dyn Classifier, batch: usize, rng: &mut ChaCha8Rng| {
        let (x, y) = sample_train(train, batch, rng);
        // The registry's attacks stay in budget (the conformance suite
        // holds them to it), so training needs no referee.
        let adv = attack.run_with(model, &x, &y, rng, batch, Some(train)).examples;
        Batch::labeled(adv, y)
    };
    Trainer::new(training)
        .stop_when(stop)
        .fit(model, Examples::Made(&mut make), rng);
}
