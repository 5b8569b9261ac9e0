//! The cycling attacker: its repertoire in order, so a defender meets every
//! attack in turn regardless of how each fared.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Policy, PolicySpec};
use crate::attack::AttackConfig;
use crate::registry::Describe;

/// `kind = "cycle"`: nothing to configure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CycleConfig {}

impl Describe for CycleConfig {
    const HELP: &'static str = "plays its repertoire in order, one attack per round";
    fn example() -> Self {
        CycleConfig {}
    }
}

impl PolicySpec for CycleConfig {
    fn init(&self, repertoire: &[AttackConfig]) -> Box<dyn Policy> {
        Box::new(Cycle { arms: repertoire.len() })
    }
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }
}

pub struct Cycle {
    pub arms: usize,
}

impl Policy for Cycle {
    fn pick(&mut self, round: usize, _rng: &mut ChaCha8Rng) -> usize {
        (round - 1) % self.arms.max(1)
    }
    fn observe(&mut self, _arm: usize, _reward: f64) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn plays_every_arm_in_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut p = Cycle { arms: 3 };
        let picks: Vec<usize> = (1..=7).map(|r| p.pick(r, &mut rng)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2, 0]);
    }
}
