//! The fixed attacker: the same attack every round, as a static benchmark
//! evaluation would use.

use rand_chacha::ChaCha8Rng;

use super::Policy;

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
