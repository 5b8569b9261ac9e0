//! PGD adversarial training: every step crafts PGD examples against the
//! current model on a fresh clean batch and trains on them. Madry et al. 2018.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adversarial::{default_batch, default_opt};
use super::{sample_train, validate_training, Defense, RoundData};
use crate::attack::{Attack, Norm, PgdConfig};
use crate::model::{Classifier, CrossEntropy, Sgd};

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

impl PgdAtConfig {
    pub fn validate(&self) -> Result<(), String> {
        crate::attack::AttackConfig::Pgd(self.attack.clone())
            .validate()
            .map_err(|e| format!("in `attack`: {e}"))?;
        validate_training(("steps", self.steps), self.batch, &self.optimizer)
    }
}

impl Defense for PgdAtConfig {
    fn update(&mut self, model: &mut dyn Classifier, round: &RoundData<'_>, rng: &mut ChaCha8Rng) {
        for _ in 0..self.steps {
            let (x, y) = sample_train(round.train, self.batch, rng);
            let adv = self.attack.craft(model, &x, &y, rng);
            model.train_step(&adv, &CrossEntropy { labels: &y }, &self.optimizer);
        }
    }
}
