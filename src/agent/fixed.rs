//! The fixed attacker: the same attack every round, as a static benchmark
//! evaluation would use.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Policy, PolicySpec};
use crate::attack::AttackConfig;
use crate::registry::Describe;

/// `kind = "fixed"`: nothing to configure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedConfig {}

impl Describe for FixedConfig {
    const HELP: &'static str = "always plays the first attack of its repertoire";
    fn example() -> Self {
        FixedConfig {}
    }
}

impl PolicySpec for FixedConfig {
    fn init(&self, _repertoire: &[AttackConfig]) -> Box<dyn Policy> {
        Box::new(Fixed)
    }
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }
}

pub struct Fixed;

impl Policy for Fixed {
    fn pick(&mut self, _round: usize, _rng: &mut ChaCha8Rng) -> usize {
        0
    }
    fn observe(&mut self, _arm: usize, _reward: f64) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn always_plays_the_first_arm() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut p = Fixed;
        for round in 1..5 {
            assert_eq!(p.pick(round, &mut rng), 0);
            p.observe(0, 1.0);
        }
    }
}
