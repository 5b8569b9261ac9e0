//! The bandit attacker: treats each attack of its repertoire as an arm and
//! learns which one hurts the defender most. EXP3 (Auer et al. 2002) suits a
//! defender that changes under it; UCB1 (Auer, Cesa-Bianchi & Fischer 2002)
//! is the stationary baseline.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Policy, PolicySpec};
use crate::attack::AttackConfig;
use crate::error::Error;
use crate::registry::Describe;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BanditAlgorithm {
    #[default]
    Exp3,
    Ucb1,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanditConfig {
    #[serde(default)]
    pub algorithm: BanditAlgorithm,
    /// EXP3's exploration rate in (0, 1].
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// UCB1's exploration constant.
    #[serde(default = "default_exploration")]
    pub exploration: f64,
}

fn default_gamma() -> f64 {
    0.2
}
fn default_exploration() -> f64 {
    2.0f64.sqrt()
}

impl Describe for BanditConfig {
    const HELP: &'static str = "EXP3 (adversarial bandit) or UCB1 over its repertoire, rewarded by agent_reward (1 - accuracy on the attacker slice, never the evaluation images)";
    fn example() -> Self {
        BanditConfig {
            algorithm: BanditAlgorithm::default(),
            gamma: default_gamma(),
            exploration: default_exploration(),
        }
    }
}

impl PolicySpec for BanditConfig {
    fn init(&self, repertoire: &[AttackConfig]) -> Box<dyn Policy> {
        self.over_arms(repertoire.len())
    }

    fn validate(&self) -> crate::Result<()> {
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(Error::invalid(format!("`gamma` must be in (0, 1], got {}", self.gamma)));
        }
        if !(self.exploration >= 0.0 && self.exploration.is_finite()) {
            return Err(Error::invalid(format!(
                "`exploration` must be a non-negative number, got {}",
                self.exploration
            )));
        }
        Ok(())
    }
}

impl BanditConfig {
    /// A key set for the other algorithm, which would be ignored: refused
    /// in written files (not in a run's recorded configuration, which may
    /// predate the rule: [`crate::config::load_recorded`]).
    pub fn refuse_other_algorithms_keys(&self) -> crate::Result<()> {
        // Each key belongs to one algorithm; set for the other, it would be
        // ignored. (Both are filled with their defaults, so only a value
        // other than the default shows that it was written.)
        match self.algorithm {
            BanditAlgorithm::Ucb1 if self.gamma != default_gamma() => Err(Error::invalid(format!(
                "`gamma` = {} belongs to `algorithm = \"exp3\"`; UCB1 explores by `exploration`",
                self.gamma
            ))),
            BanditAlgorithm::Exp3 if self.exploration != default_exploration() => Err(Error::invalid(format!(
                "`exploration` = {} belongs to `algorithm = \"ucb1\"`; EXP3 explores by `gamma`",
                self.exploration
            ))),
            _ => Ok(()),
        }
    }

    /// A fresh bandit over `arms` arms.
    pub fn over_arms(&self, arms: usize) -> Box<dyn Policy> {
        match self.algorithm {
            BanditAlgorithm::Exp3 => Box::new(Exp3 {
                gamma: self.gamma,
                weights: vec![1.0; arms],
                last_probabilities: vec![1.0 / arms as f64; arms],
            }),
            BanditAlgorithm::Ucb1 => Box::new(Ucb1 {
                exploration: self.exploration,
                pulls: vec![0; arms],
                total: vec![0.0; arms],
            }),
        }
    }
}

pub struct Exp3 {
    gamma: f64,
    weights: Vec<f64>,
    last_probabilities: Vec<f64>,
}

impl Exp3 {
    fn probabilities(&self) -> Vec<f64> {
        let k = self.weights.len() as f64;
        let sum: f64 = self.weights.iter().sum();
        self.weights
            .iter()
            .map(|w| (1.0 - self.gamma) * w / sum + self.gamma / k)
            .collect()
    }
}

impl Policy for Exp3 {
    fn pick(&mut self, _round: usize, rng: &mut ChaCha8Rng) -> usize {
        self.last_probabilities = self.probabilities();
        let mut u: f64 = rng.gen_range(0.0..1.0);
        for (arm, p) in self.last_probabilities.iter().enumerate() {
            if u < *p {
                return arm;
            }
            u -= p;
        }
        self.weights.len() - 1
    }

    fn observe(&mut self, arm: usize, reward: f64) {
        let k = self.weights.len() as f64;
        // Importance-weighted reward estimate; renormalize to avoid overflow.
        let estimate = reward / self.last_probabilities[arm];
        self.weights[arm] *= (self.gamma * estimate / k).exp();
        let max = self.weights.iter().copied().fold(0.0, f64::max);
        self.weights.iter_mut().for_each(|w| *w /= max);
    }
}

pub struct Ucb1 {
    exploration: f64,
    pulls: Vec<u64>,
    total: Vec<f64>,
}

impl Policy for Ucb1 {
    fn pick(&mut self, _round: usize, _rng: &mut ChaCha8Rng) -> usize {
        if let Some(untried) = self.pulls.iter().position(|&n| n == 0) {
            return untried;
        }
        let plays: u64 = self.pulls.iter().sum();
        let score = |arm: usize| {
            let n = self.pulls[arm] as f64;
            self.total[arm] / n + self.exploration * ((plays as f64).ln() / n).sqrt()
        };
        (0..self.pulls.len())
            .max_by(|&a, &b| score(a).total_cmp(&score(b)).then(b.cmp(&a)))
            .unwrap_or(0)
    }

    fn observe(&mut self, arm: usize, reward: f64) {
        self.pulls[arm] += 1;
        self.total[arm] += reward;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Arm 2 pays 0.9, the others 0.1: both algorithms must come to prefer it.
    fn share_of_best_arm(algorithm: BanditAlgorithm) -> f64 {
        let config = BanditConfig {
            algorithm,
            gamma: 0.1,
            exploration: 0.5,
        };
        let mut policy = config.over_arms(4);
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let rounds = 300;
        let mut best = 0;
        for round in 1..=rounds {
            let arm = policy.pick(round, &mut rng);
            let reward = if arm == 2 { 0.9 } else { 0.1 };
            policy.observe(arm, reward);
            if round > rounds / 2 && arm == 2 {
                best += 1;
            }
        }
        best as f64 / (rounds / 2) as f64
    }

    /// A key of the other algorithm is refused, not ignored; defaults pass.
    #[test]
    fn each_key_belongs_to_its_algorithm() {
        let parse = |text: &str| {
            let config = toml::from_str::<BanditConfig>(text).unwrap();
            config.validate().and_then(|_| config.refuse_other_algorithms_keys())
        };
        assert!(parse("algorithm = \"ucb1\"\nexploration = 1.0").is_ok());
        assert!(parse("algorithm = \"exp3\"\ngamma = 0.3").is_ok());
        let err = parse("algorithm = \"ucb1\"\ngamma = 0.3").unwrap_err().to_string();
        assert!(err.contains("`gamma` = 0.3 belongs to"), "{err}");
        let err = parse("exploration = 1.0").unwrap_err().to_string();
        assert!(err.contains("`exploration` = 1 belongs to"), "{err}");
    }

    #[test]
    fn exp3_learns_the_best_arm() {
        assert!(share_of_best_arm(BanditAlgorithm::Exp3) > 0.7);
    }

    #[test]
    fn ucb1_learns_the_best_arm() {
        assert!(share_of_best_arm(BanditAlgorithm::Ucb1) > 0.8);
    }

    #[test]
    fn ucb1_tries_every_arm_first() {
        let mut policy = BanditConfig {
            algorithm: BanditAlgorithm::Ucb1,
            gamma: 0.1,
            exploration: 1.0,
        }
        .over_arms(3);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut first = Vec::new();
        for round in 1..=3 {
            let arm = policy.pick(round, &mut rng);
            policy.observe(arm, 0.0);
            first.push(arm);
        }
        first.sort();
        assert_eq!(first, vec![0, 1, 2]);
    }

    #[test]
    fn rejects_bad_parameters() {
        let mut c = BanditConfig {
            algorithm: BanditAlgorithm::Exp3,
            gamma: 0.0,
            exploration: default_exploration(),
        };
        assert!(c.validate().is_err());
        c.gamma = 0.5;
        assert!(c.validate().is_ok());
    }
}
