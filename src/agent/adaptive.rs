//! The adaptive attacker: defense-aware, as Tramer et al. 2020 ("On
//! adaptive attacks to adversarial example defenses") ask an evaluation to
//! be. Each round it probes the defender's input gradients; when they
//! vanish (gradient masking) it switches to an attack that does not need
//! them to be honest (BPDA, then a query attack); when another attack of
//! its repertoire has earned more than the current one, it switches to it.
//! Every switch is explained in the round's row.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Policy, PolicySpec, Probe};
use crate::attack::{AttackConfig, Signal};
use crate::registry::Describe;

/// `kind = "adaptive"`: nothing to configure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConfig {}

impl Describe for AdaptiveConfig {
    const HELP: &'static str = "defense-aware: probes for vanishing gradients and switches to BPDA or a query attack, or to what earned more; says why";
    fn example() -> Self {
        AdaptiveConfig {}
    }
}

impl PolicySpec for AdaptiveConfig {
    fn init(&self, repertoire: &[AttackConfig]) -> Box<dyn Policy> {
        Box::new(Adaptive::new(repertoire))
    }
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }
}

/// What an arm is, as far as adapting goes: how its attack gets its signal,
/// as the attack's own file declares it.
type Kind = Signal;

fn kind(attack: &AttackConfig) -> Kind {
    attack.signal()
}

pub struct Adaptive {
    attacks: Vec<AttackConfig>,
    labels: Vec<String>,
    kinds: Vec<Kind>,
    current: usize,
    /// Sum and count of rewards per arm.
    earned: Vec<(f64, usize)>,
    probe: Option<Probe>,
    /// Once masking is seen it is remembered: a probe near the threshold
    /// must not send the agent back and forth.
    masked: bool,
    note: Option<String>,
}

/// The share of probe images with zero input gradient above which the
/// defender is taken to mask its gradients.
const MASKED: f64 = 0.5;

impl Adaptive {
    pub fn new(repertoire: &[AttackConfig]) -> Adaptive {
        let kinds: Vec<Kind> = repertoire.iter().map(kind).collect();
        // Start as a plain evaluation would: with a gradient attack.
        let current = kinds.iter().position(|&k| k == Kind::Gradient).unwrap_or(0);
        Adaptive {
            attacks: repertoire.to_vec(),
            labels: repertoire.iter().map(|a| a.label()).collect(),
            kinds,
            current,
            earned: vec![(0.0, 0); repertoire.len()],
            probe: None,
            masked: false,
            note: None,
        }
    }

    fn mean(&self, arm: usize) -> Option<f64> {
        let (sum, n) = self.earned[arm];
        (n > 0).then(|| sum / n as f64)
    }

    fn first_of(&self, wanted: &[Kind]) -> Option<usize> {
        wanted
            .iter()
            .find_map(|&k| self.kinds.iter().position(|&kind| kind == k))
    }

    fn switch(&mut self, to: usize, why: String) {
        if to != self.current {
            self.note = Some(format!("{} -> {}: {why}", self.labels[self.current], self.labels[to]));
            self.current = to;
        }
    }

    /// A randomized defense: average its gradients over its randomness.
    /// Whether it switched to an EOT arm.
    fn against_randomness(&mut self) -> bool {
        if self.probe.as_ref().is_some_and(|p| p.random_outputs) && self.kinds[self.current] != Kind::Eot {
            if let Some(arm) = self.first_of(&[Kind::Eot]) {
                self.switch(
                    arm,
                    "identical queries got different outputs (a randomized defense)".into(),
                );
                return true;
            }
        }
        false
    }

    /// Masking in this round's probe, seen two ways: zero gradients, or
    /// success that does not grow with the budget; why, if seen.
    fn masking_seen(&self) -> Option<String> {
        let p = self.probe.as_ref()?;
        if p.zero_gradient_fraction > MASKED {
            return Some(format!(
                "input gradients are zero on {:.0}% of probe images (gradient masking)",
                100.0 * p.zero_gradient_fraction
            ));
        }
        let (quarter, full) = p.success_by_budget?;
        (full < 0.5 && full <= quarter + 0.05).then(|| {
            format!(
                "success does not grow with the budget ({:.0}% at a quarter of it, {:.0}% at all of it): gradient masking",
                100.0 * quarter,
                100.0 * full
            )
        })
    }

    /// Once masking is seen, leave an attack that trusts the raw gradient
    /// for BPDA, a query or a search attack. Whether it switched.
    fn around_masking(&mut self, why: Option<String>) -> bool {
        if self.masked && needs_gradients(self.kinds[self.current]) {
            if let Some(arm) = self.first_of(&[Kind::Bpda, Kind::Query, Kind::Search]) {
                self.switch(arm, why.unwrap_or_else(|| "gradient masking seen earlier".into()));
                return true;
            }
        }
        false
    }

    /// Against masked gradients, attacks that trust the raw gradient are out.
    fn usable(&self, arm: usize) -> bool {
        !self.masked || !needs_gradients(self.kinds[arm])
    }

    /// Go with what has earned the most; try an untried arm when the
    /// current one does poorly.
    fn by_earnings(&mut self) {
        let current_mean = self.mean(self.current);
        let best = (0..self.kinds.len())
            .filter(|&arm| self.usable(arm))
            .filter_map(|arm| self.mean(arm).map(|m| (arm, m)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        let (Some(current), Some((arm, m))) = (current_mean, best) else {
            return;
        };
        if m > current + 0.05 {
            if self.kinds[arm] == Kind::Query && needs_gradients(self.kinds[self.current]) {
                // A query or transfer attack beating the gradient attack
                // is itself a sign of masked gradients.
                self.masked = true;
                self.switch(
                    arm,
                    format!("a query or transfer attack earned {m:.2} against the gradient attack's {current:.2} (gradient masking)"),
                );
            } else {
                self.switch(arm, format!("it earned {m:.2} against {current:.2}"));
            }
        } else if current < 0.5 {
            self.try_untried(current);
        }
    }

    /// The current attack earns little: an arm not yet tried, a margin loss
    /// first after a cross-entropy gradient attack.
    fn try_untried(&mut self, current: f64) {
        let untried = |kind: Option<Kind>| {
            (0..self.kinds.len())
                .find(|&a| self.earned[a].1 == 0 && self.usable(a) && kind.is_none_or(|k| self.kinds[a] == k))
        };
        // Cross-entropy saturates on confident models: a margin loss first.
        let margin = untried(Some(Kind::Margin)).filter(|_| self.kinds[self.current] == Kind::Gradient);
        if let Some(arm) = margin {
            self.switch(
                arm,
                format!("the current attack earns only {current:.2}; cross-entropy may saturate, trying a margin loss"),
            );
        } else if let Some(arm) = untried(None) {
            self.switch(
                arm,
                format!("the current attack earns only {current:.2}; trying another"),
            );
        }
    }
}

/// Attacks that trust the defender's raw gradient.
fn needs_gradients(kind: Kind) -> bool {
    matches!(kind, Kind::Gradient | Kind::Margin)
}

impl Policy for Adaptive {
    fn wants_probe(&self) -> bool {
        true
    }

    fn probe(&mut self, probe: &Probe) {
        self.probe = Some(probe.clone());
    }

    fn probe_attack(&self) -> Option<AttackConfig> {
        self.kinds
            .iter()
            .position(|&k| k == Kind::Gradient)
            .map(|arm| self.attacks[arm].clone())
    }

    fn pick(&mut self, _round: usize, _rng: &mut ChaCha8Rng) -> usize {
        self.note = None;
        if self.against_randomness() {
            return self.current;
        }
        let why = self.masking_seen();
        self.masked |= why.is_some();
        if self.around_masking(why) {
            return self.current;
        }
        self.by_earnings();
        self.current
    }

    fn observe(&mut self, arm: usize, reward: f64) {
        self.earned[arm].0 += reward;
        self.earned[arm].1 += 1;
    }

    fn note(&self) -> Option<String> {
        self.note.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{BpdaConfig, Norm, PgdConfig, SquareConfig};
    use rand::SeedableRng;

    fn probe(zero: f64, by_budget: Option<(f64, f64)>, random: bool) -> Probe {
        Probe {
            zero_gradient_fraction: zero,
            random_outputs: random,
            success_by_budget: by_budget,
        }
    }

    fn repertoire() -> Vec<AttackConfig> {
        let pgd = AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1));
        vec![
            pgd.clone(),
            AttackConfig::Square(SquareConfig::new(0.1)),
            AttackConfig::Bpda(BpdaConfig {
                name: None,
                attack: Box::new(pgd),
            }),
        ]
    }

    #[test]
    fn masked_gradients_send_it_to_bpda_and_it_says_why() {
        let mut policy = Adaptive::new(&repertoire());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        policy.probe(&probe(0.0, None, false));
        assert_eq!(policy.pick(1, &mut rng), 0);
        assert!(policy.note().is_none());
        policy.observe(0, 0.9);
        policy.probe(&probe(1.0, None, false));
        assert_eq!(policy.pick(2, &mut rng), 2);
        assert!(policy.note().unwrap().contains("gradient masking"));
    }

    #[test]
    fn it_moves_to_the_attack_that_earned_more() {
        let mut policy = Adaptive::new(&repertoire());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let healthy = probe(0.0, None, false);
        policy.probe(&healthy);
        let first = policy.pick(1, &mut rng);
        policy.observe(first, 0.2);
        // A poor reward: it tries an untried arm next.
        let second = policy.pick(2, &mut rng);
        assert_ne!(second, first);
        policy.observe(second, 0.8);
        assert_eq!(policy.pick(3, &mut rng), second);
        assert!(policy.note().is_none(), "no switch, no note");
    }

    #[test]
    fn success_that_does_not_grow_with_the_budget_means_masking() {
        let mut policy = Adaptive::new(&repertoire());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        policy.probe(&probe(0.0, Some((0.10, 0.12)), false));
        assert_eq!(policy.pick(1, &mut rng), 2);
        assert!(policy.note().unwrap().contains("does not grow with the budget"));
    }

    #[test]
    fn it_tries_the_query_attack_when_the_gradient_attack_earns_little() {
        let mut policy = Adaptive::new(&repertoire()[..2]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        policy.probe(&probe(0.0, None, false));
        let first = policy.pick(1, &mut rng);
        policy.observe(first, 0.3);
        let second = policy.pick(2, &mut rng);
        assert_eq!(second, 1, "it tries the query attack");
        policy.observe(second, 0.9);
        assert_eq!(policy.pick(3, &mut rng), 1);
        assert!(policy.note().is_none());
    }

    #[test]
    fn a_randomized_defense_sends_it_to_eot() {
        let pgd = AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1));
        let eot = AttackConfig::Eot(crate::attack::EotConfig {
            name: None,
            samples: 4,
            attack: Box::new(pgd.clone()),
        });
        let mut policy = Adaptive::new(&[pgd, eot]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        policy.probe(&probe(0.0, None, true));
        assert_eq!(policy.pick(1, &mut rng), 1);
        assert!(policy.note().unwrap().contains("randomized"));
    }
}
