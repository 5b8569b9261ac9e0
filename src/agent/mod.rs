//! Attacker agents: policies that pick, each round, one attack of their
//! repertoire from what their earlier picks earned.

pub mod bandit;
pub mod cycle;
pub mod fixed;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::attack::AttackConfig;
pub use bandit::{BanditAlgorithm, BanditConfig};

/// A policy over the arms `0..repertoire.len()`.
pub trait Policy: Send {
    /// The arm to play in `round` (1-based).
    fn pick(&mut self, round: usize, rng: &mut ChaCha8Rng) -> usize;
    /// What the arm played earned, in [0,1].
    fn observe(&mut self, arm: usize, reward: f64);
}

/// The policies a strategy file can name, by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// Always the first attack of the repertoire.
    Fixed,
    /// The repertoire in order, round after round.
    Cycle,
    /// A multi-armed bandit over the repertoire.
    Bandit(BanditConfig),
}

/// Policy names and one line of help each, for `redqueen list`.
pub const POLICIES: &[(&str, &str)] = &[
    ("fixed", "always plays the first attack of its repertoire"),
    ("cycle", "plays its repertoire in order, one attack per round"),
    (
        "bandit",
        "EXP3 (adversarial bandit) or UCB1 over its repertoire, rewarded by 1 - zero_day_acc",
    ),
];

impl PolicyConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyConfig::Fixed => "fixed",
            PolicyConfig::Cycle => "cycle",
            PolicyConfig::Bandit(_) => "bandit",
        }
    }

    pub fn init(&self, arms: usize) -> Box<dyn Policy> {
        match self {
            PolicyConfig::Fixed => Box::new(fixed::Fixed),
            PolicyConfig::Cycle => Box::new(cycle::Cycle { arms }),
            PolicyConfig::Bandit(c) => c.init(arms),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            PolicyConfig::Bandit(c) => c.validate(),
            _ => Ok(()),
        }
    }
}

/// An attacker agent: a name, a policy and the attacks it may pick from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackerConfig {
    pub name: String,
    pub policy: PolicyConfig,
    pub repertoire: Vec<AttackConfig>,
}
