//! Attacker agents: policies that pick, each round, one attack of their
//! repertoire from what their earlier picks earned.

pub mod adaptive;
pub mod bandit;
pub mod cycle;
pub mod evolve;
pub mod fixed;
pub mod probe;

#[cfg(test)]
mod conformance;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::attack::AttackConfig;
pub use adaptive::AdaptiveConfig;
pub use bandit::{BanditAlgorithm, BanditConfig};
pub use cycle::CycleConfig;
pub use evolve::EvolveConfig;
pub use fixed::FixedConfig;
pub use probe::{probe, Probe};

/// A policy over arms: the repertoire's attacks, unless `attack` says
/// otherwise (a policy may invent attacks of its own).
pub trait Policy: Send {
    /// The arm to play in `round` (1-based).
    fn pick(&mut self, round: usize, rng: &mut ChaCha8Rng) -> usize;
    /// What the arm played earned, in [0,1].
    fn observe(&mut self, arm: usize, reward: f64);
    /// Whether the policy probes the defender before picking.
    fn wants_probe(&self) -> bool {
        false
    }
    /// What a probe of the defender's current model showed.
    fn probe(&mut self, _probe: &Probe) {}
    /// Why the last pick was made, when there is something to say.
    fn note(&self) -> Option<String> {
        None
    }
    /// The attack the probe should try at two budgets, if any.
    fn probe_attack(&self) -> Option<AttackConfig> {
        None
    }
    /// The attack an arm stands for, when it is not `repertoire[arm]`.
    fn attack(&self, _arm: usize) -> Option<AttackConfig> {
        None
    }
}

/// What every attacker policy's configuration answers, implemented in the
/// policy's own file.
pub trait PolicySpec {
    /// A fresh policy over `repertoire`.
    fn init(&self, repertoire: &[AttackConfig]) -> Box<dyn Policy>;
    /// Whether the configuration's values can be used.
    fn validate(&self) -> crate::Result<()>;
}

crate::registry! {
    /// The policies a strategy file can name, by `kind`, in the order
    /// `redqueen list` shows them.
    pub enum PolicyConfig: dyn PolicySpec, tag = "kind" {
        Fixed(FixedConfig) = "fixed",
        Cycle(CycleConfig) = "cycle",
        Bandit(BanditConfig) = "bandit",
        Evolve(EvolveConfig) = "evolve",
        Adaptive(AdaptiveConfig) = "adaptive",
    }
}

impl PolicyConfig {
    pub fn kind(&self) -> &'static str {
        self.registry_name()
    }

    pub fn init(&self, repertoire: &[AttackConfig]) -> Box<dyn Policy> {
        self.part().init(repertoire)
    }

    pub fn validate(&self) -> crate::Result<()> {
        self.part().validate()
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
