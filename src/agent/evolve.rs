//! The evolving attacker: a population of attack configurations that starts
//! as its repertoire; once each has been played, it mutates the best one
//! (steps, step size, loss, restarts, random start), plays the child, and
//! drops the worst member when the population is full. Budgets (eps) are
//! never mutated, so every child stays within the rules.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Policy, PolicySpec};
use crate::attack::apgd::ApgdLoss;
use crate::attack::{AttackConfig, AttackLoss};
use crate::error::Error;
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvolveConfig {
    /// The most configurations kept at once.
    #[serde(default = "default_population")]
    pub population: usize,
}

fn default_population() -> usize {
    6
}

impl Describe for EvolveConfig {
    const HELP: &'static str = "keeps a population of attack configurations, mutates the best (steps, step size, loss, restarts), keeps what earned most";
    fn example() -> Self {
        EvolveConfig {
            population: default_population(),
        }
    }
}

impl PolicySpec for EvolveConfig {
    fn init(&self, repertoire: &[AttackConfig]) -> Box<dyn Policy> {
        Box::new(Evolve::new(self, repertoire))
    }

    fn validate(&self) -> crate::Result<()> {
        if self.population < 2 {
            return Err(Error::invalid(format!(
                "`population` must be at least 2, got {}",
                self.population
            )));
        }
        Ok(())
    }
}

struct Member {
    attack: AttackConfig,
    /// The repertoire entry it descends from, for naming children.
    root: String,
    earned: f64,
    plays: usize,
}

impl Member {
    fn mean(&self) -> f64 {
        if self.plays == 0 {
            0.0
        } else {
            self.earned / self.plays as f64
        }
    }
}

pub struct Evolve {
    members: Vec<Member>,
    cap: usize,
    children: usize,
    note: Option<String>,
}

impl Evolve {
    pub fn new(config: &EvolveConfig, repertoire: &[AttackConfig]) -> Evolve {
        Evolve {
            members: repertoire
                .iter()
                .map(|a| Member {
                    attack: a.clone(),
                    root: a.label(),
                    earned: 0.0,
                    plays: 0,
                })
                .collect(),
            cap: config.population.max(repertoire.len()),
            children: 0,
            note: None,
        }
    }
}

/// Halve or double an iteration count (within 1..=100); says what it did.
fn mutate_steps(steps: &mut usize, rng: &mut ChaCha8Rng) -> String {
    *steps = if rng.gen() {
        (*steps * 2).min(100)
    } else {
        (*steps / 2).max(1)
    };
    format!("steps {steps}")
}

/// One random change to an attack's hyperparameters (never its budget), or
/// `None` for a family with nothing to mutate. Returns what changed.
pub fn mutate(attack: &AttackConfig, rng: &mut ChaCha8Rng) -> Option<(AttackConfig, String)> {
    let mut child = attack.clone();
    let what = match &mut child {
        AttackConfig::Pgd(p) => match rng.gen_range(0..5) {
            0 => mutate_steps(&mut p.steps, rng),
            1 => {
                let step = p.step() * if rng.gen() { 1.5 } else { 1.0 / 1.5 };
                p.step_size = Some(step);
                format!("step size {step:.4}")
            }
            2 => {
                p.loss = if p.loss == AttackLoss::Ce {
                    AttackLoss::Cw
                } else {
                    AttackLoss::Ce
                };
                format!("loss {:?}", p.loss).to_lowercase()
            }
            3 => {
                p.restarts = if p.restarts < 3 { p.restarts + 1 } else { 1 };
                format!("restarts {}", p.restarts)
            }
            _ => {
                p.random_start = !p.random_start;
                format!("random start {}", p.random_start)
            }
        },
        AttackConfig::Mim(m) => {
            if rng.gen() {
                mutate_steps(&mut m.steps, rng)
            } else {
                m.decay = if rng.gen() {
                    m.decay * 0.5
                } else {
                    (m.decay * 2.0).min(2.0)
                };
                format!("decay {}", m.decay)
            }
        }
        AttackConfig::Apgd(a) => {
            if rng.gen() {
                mutate_steps(&mut a.steps, rng)
            } else {
                a.loss = if a.loss == ApgdLoss::Ce {
                    ApgdLoss::Dlr
                } else {
                    ApgdLoss::Ce
                };
                format!("loss {:?}", a.loss).to_lowercase()
            }
        }
        AttackConfig::Fgsm(f) => {
            f.loss = if f.loss == AttackLoss::Ce {
                AttackLoss::Cw
            } else {
                AttackLoss::Ce
            };
            format!("loss {:?}", f.loss).to_lowercase()
        }
        AttackConfig::Bpda(b) => {
            let (inner, what) = mutate(&b.attack, rng)?;
            *b.attack = inner;
            what
        }
        _ => return None,
    };
    Some((child, what))
}

impl Policy for Evolve {
    fn pick(&mut self, _round: usize, rng: &mut ChaCha8Rng) -> usize {
        self.note = None;
        if let Some(untried) = self.members.iter().position(|m| m.plays == 0) {
            return untried;
        }
        let best = (0..self.members.len())
            .max_by(|&a, &b| {
                self.members[a]
                    .mean()
                    .total_cmp(&self.members[b].mean())
                    .then(b.cmp(&a))
            })
            .expect("a population is never empty");
        let Some((mut child, what)) = mutate(&self.members[best].attack, rng) else {
            return best;
        };
        self.children += 1;
        let root = self.members[best].root.clone();
        child.set_name(format!("{root}-evolved{}", self.children));
        self.note = Some(format!(
            "mutated {} ({}): {what}",
            self.members[best].attack.label(),
            self.members[best].mean()
        ));
        if self.members.len() >= self.cap {
            let worst = (0..self.members.len())
                .filter(|&m| m != best)
                .min_by(|&a, &b| {
                    self.members[a]
                        .mean()
                        .total_cmp(&self.members[b].mean())
                        .then(b.cmp(&a))
                })
                .expect("a full population has another member");
            self.members.remove(worst);
        }
        self.members.push(Member {
            attack: child,
            root,
            earned: 0.0,
            plays: 0,
        });
        self.members.len() - 1
    }

    fn observe(&mut self, arm: usize, reward: f64) {
        self.members[arm].earned += reward;
        self.members[arm].plays += 1;
    }

    fn attack(&self, arm: usize) -> Option<AttackConfig> {
        Some(self.members[arm].attack.clone())
    }

    fn note(&self) -> Option<String> {
        self.note.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{Norm, PgdConfig};
    use rand::SeedableRng;

    #[test]
    fn mutations_keep_the_budget_and_stay_valid() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let parent = AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1));
        for _ in 0..100 {
            let (child, _) = mutate(&parent, &mut rng).unwrap();
            assert_eq!(child.threat(), parent.threat());
            child.validate().unwrap();
        }
    }

    #[test]
    fn it_plays_the_repertoire_then_breeds_from_the_best() {
        let repertoire = vec![
            AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1)),
            AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.05)),
        ];
        let mut policy = Evolve::new(&EvolveConfig { population: 3 }, &repertoire);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for round in 1..=2 {
            let arm = policy.pick(round, &mut rng);
            policy.observe(arm, if arm == 0 { 0.9 } else { 0.1 });
        }
        let child = policy.pick(3, &mut rng);
        let attack = policy.attack(child).unwrap();
        assert!(attack.label().starts_with("pgd-linf-0.1-evolved"), "{}", attack.label());
        assert!(policy.note().unwrap().contains("mutated pgd-linf-0.1"));
        policy.observe(child, 0.5);
        // Full: the next child replaces the worst (the 0.05 attack).
        let next = policy.pick(4, &mut rng);
        let labels: Vec<String> = (0..3).map(|a| policy.attack(a).unwrap().label()).collect();
        assert!(!labels.contains(&"pgd-linf-0.05".to_string()), "{labels:?}");
        assert!(next < 3);
    }
}
