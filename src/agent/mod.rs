//! Attacker agents: policies that pick, each round, one attack of their
//! repertoire from what their earlier picks earned.

pub mod adaptive;
pub mod bandit;
pub mod cycle;
pub mod evolve;
pub mod fixed;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::attack::AttackConfig;
pub use bandit::{BanditAlgorithm, BanditConfig};
pub use evolve::EvolveConfig;

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

/// A probe of the defender's model on a few training images.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Share of probe images whose margin-loss input gradient is all zero.
    pub zero_gradient_fraction: f64,
    /// Whether two identical queries got different logits (a randomized defense).
    pub random_outputs: bool,
    /// Success of the policy's probe attack at a quarter of its budget and
    /// at its full budget; under masking it does not grow.
    pub success_by_budget: Option<(f64, f64)>,
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
    /// Defense-aware: probes for gradient masking and switches attacks.
    Adaptive,
    /// A population of configurations, mutated from the best.
    Evolve(EvolveConfig),
}

/// Policy names and one line of help each, for `redqueen list`.
pub const POLICIES: &[(&str, &str)] = &[
    ("fixed", "always plays the first attack of its repertoire"),
    ("cycle", "plays its repertoire in order, one attack per round"),
    (
        "bandit",
        "EXP3 (adversarial bandit) or UCB1 over its repertoire, rewarded by 1 - zero_day_acc",
    ),
    (
        "evolve",
        "keeps a population of attack configurations, mutates the best (steps, step size, loss, restarts), keeps what earned most",
    ),
    (
        "adaptive",
        "defense-aware: probes for vanishing gradients and switches to BPDA or a query attack, or to what earned more; says why",
    ),
];

impl PolicyConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyConfig::Fixed => "fixed",
            PolicyConfig::Cycle => "cycle",
            PolicyConfig::Bandit(_) => "bandit",
            PolicyConfig::Adaptive => "adaptive",
            PolicyConfig::Evolve(_) => "evolve",
        }
    }

    pub fn init(&self, repertoire: &[AttackConfig]) -> Box<dyn Policy> {
        let arms = repertoire.len();
        match self {
            PolicyConfig::Fixed => Box::new(fixed::Fixed),
            PolicyConfig::Cycle => Box::new(cycle::Cycle { arms }),
            PolicyConfig::Bandit(c) => c.init(arms),
            PolicyConfig::Adaptive => Box::new(adaptive::Adaptive::new(repertoire)),
            PolicyConfig::Evolve(c) => Box::new(evolve::Evolve::new(c, repertoire)),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            PolicyConfig::Bandit(c) => c.validate(),
            PolicyConfig::Evolve(c) => c.validate(),
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
