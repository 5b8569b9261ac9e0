//! The suite every registered attacker policy must pass, for any rewards
//! and any probes: it picks only arms of its repertoire, or attacks it
//! invents inside the rules; it is deterministic under a seed; and it never
//! panics, on a repertoire of one as on a mixed one. Driven by the
//! registry, so a new policy is covered without a line here.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::attack::{Access, Norm, ATTACKS};
use crate::config::{builtin, within_rules, Rules};

/// Every registered policy as its registry example, plus what the shipped
/// attackers configure and the bandit's other algorithm.
fn every_policy() -> Vec<PolicyConfig> {
    let mut policies: Vec<PolicyConfig> = PolicyConfig::ENTRIES.iter().map(|e| (e.example)()).collect();
    policies.extend(shipped_attackers().into_iter().map(|a| a.policy));
    policies.push(PolicyConfig::Bandit(BanditConfig {
        algorithm: BanditAlgorithm::Ucb1,
        ..<BanditConfig as crate::registry::Describe>::example()
    }));
    // The smallest population: a child always displaces a member.
    policies.push(PolicyConfig::Evolve(EvolveConfig { population: 2 }));
    policies
}

fn shipped_attackers() -> Vec<AttackerConfig> {
    builtin::STRATEGIES
        .iter()
        .filter(|(path, _)| path.starts_with("attackers/"))
        .map(|(path, text)| crate::config::parse::<AttackerConfig>(text, path).unwrap())
        .collect()
}

/// Repertoires of one (every attack family's example alone), every example
/// together, a linf / l2 / query mix, and the shipped attackers'.
fn every_repertoire() -> Vec<Vec<AttackConfig>> {
    let examples: Vec<AttackConfig> = ATTACKS.iter().map(|e| (e.example)()).collect();
    let mut repertoires: Vec<Vec<AttackConfig>> = examples.iter().map(|a| vec![a.clone()]).collect();
    repertoires.push(examples.clone());
    let first = |wanted: &dyn Fn(&AttackConfig) -> bool| examples.iter().find(|a| wanted(a)).cloned();
    let whitebox = |norm: Norm| move |a: &AttackConfig| a.access() == Access::Whitebox && a.threat().norm == norm;
    let mix: Vec<AttackConfig> = [
        first(&whitebox(Norm::Linf)),
        first(&whitebox(Norm::L2)),
        first(&|a| a.access() != Access::Whitebox),
    ]
    .into_iter()
    .map(|a| a.expect("the registry has linf, l2 and query attacks"))
    .collect();
    repertoires.push(mix);
    repertoires.extend(shipped_attackers().into_iter().map(|a| a.repertoire));
    repertoires
}

/// The tightest rules that admit `repertoire`: per norm its largest budget,
/// its largest query count, its largest spatial transformation. Rules that
/// admit the repertoire admit at least this much, so an attack inside these
/// is inside any tournament's rules the repertoire could be played under.
fn tightest_rules(repertoire: &[AttackConfig]) -> Rules {
    let mut rules = Rules {
        linf: None,
        l2: None,
        l1: None,
        queries: 0,
        spatial: None,
    };
    fn admit(rules: &mut Rules, attack: &AttackConfig) {
        match attack {
            AttackConfig::Bpda(c) => admit(rules, &c.attack),
            AttackConfig::Eot(c) => admit(rules, &c.attack),
            AttackConfig::Transfer(c) => admit(rules, &c.attack),
            AttackConfig::Spatial(s) => {
                let widest = rules.spatial.map_or((s.degrees, s.pixels), |b| {
                    (b.degrees.max(s.degrees), b.pixels.max(s.pixels))
                });
                rules.spatial = Some(crate::attack::SpatialBudget {
                    degrees: widest.0,
                    pixels: widest.1,
                });
            }
            _ => {
                let threat = attack.threat();
                let budget = match threat.norm {
                    Norm::Linf => &mut rules.linf,
                    Norm::L2 => &mut rules.l2,
                    Norm::L1 => &mut rules.l1,
                };
                *budget = Some(budget.map_or(threat.eps, |b| b.max(threat.eps)));
                rules.queries = rules.queries.max(attack.queries().unwrap_or(0));
            }
        }
    }
    for attack in repertoire {
        admit(&mut rules, attack);
    }
    rules
}

/// What a policy did in one round.
#[derive(Debug, Clone, PartialEq)]
struct Turn {
    arm: usize,
    note: Option<String>,
    /// The attack it invented for the arm, if any.
    invented: Option<AttackConfig>,
    probe_attack: Option<AttackConfig>,
}

/// Plays `policy` over `repertoire` as the arena does (probe, pick, note,
/// attack, observe), one round per reward, and checks every turn.
fn play(policy: &PolicyConfig, repertoire: &[AttackConfig], rewards: &[f64], probes: &[Probe], seed: u64) -> Vec<Turn> {
    let rules = tightest_rules(repertoire);
    let context = || {
        let labels: Vec<String> = repertoire.iter().map(|a| a.label()).collect();
        format!("{} over {labels:?}", policy.kind())
    };
    let mut agent = policy.init(repertoire);
    let mut turns = Vec::with_capacity(rewards.len());
    for (i, &reward) in rewards.iter().enumerate() {
        let round = i + 1;
        let mut probe_attack = None;
        if agent.wants_probe() {
            probe_attack = agent.probe_attack();
            if let Some(attack) = &probe_attack {
                within_rules(&rules, attack)
                    .unwrap_or_else(|e| panic!("{}, round {round}: probes with {attack:?}: {e}", context()));
            }
            agent.probe(&probes[i % probes.len()]);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(round as u64));
        let arm = agent.pick(round, &mut rng);
        let note = agent.note();
        let invented = agent.attack(arm);
        match &invented {
            None => assert!(
                arm < repertoire.len(),
                "{}, round {round}: arm {arm} is not in the repertoire",
                context()
            ),
            Some(attack) => {
                attack
                    .validate()
                    .unwrap_or_else(|e| panic!("{}, round {round}: invented {attack:?}: {e}", context()));
                within_rules(&rules, attack)
                    .unwrap_or_else(|e| panic!("{}, round {round}: invented {attack:?}: {e}", context()));
            }
        }
        agent.observe(arm, reward);
        turns.push(Turn {
            arm,
            note,
            invented,
            probe_attack,
        });
    }
    turns
}

/// Every policy over every repertoire: checked, and played twice alike.
fn check_all(rewards: &[f64], probes: &[Probe], seed: u64) {
    for policy in every_policy() {
        for repertoire in every_repertoire() {
            let first = play(&policy, &repertoire, rewards, probes, seed);
            let again = play(&policy, &repertoire, rewards, probes, seed);
            assert_eq!(first, again, "{}: not deterministic under a seed", policy.kind());
        }
    }
}

fn probe(zero_gradient_fraction: f64, random_outputs: bool, success_by_budget: Option<(f64, f64)>) -> Probe {
    Probe {
        zero_gradient_fraction,
        saturated_fraction: 0.0,
        preprocessed: false,
        random_outputs,
        success_by_budget,
    }
}

/// Healthy, masked (zero gradients, flat success), randomized, saturated,
/// preprocessed, and mixes.
fn fixed_probes() -> Vec<Vec<Probe>> {
    let saturated = Probe {
        saturated_fraction: 1.0,
        ..probe(0.0, false, Some((0.0, 0.0)))
    };
    let preprocessed = Probe {
        preprocessed: true,
        ..probe(1.0, false, Some((0.0, 0.02)))
    };
    vec![
        vec![probe(0.0, false, None)],
        vec![probe(1.0, false, Some((0.1, 0.1)))],
        vec![probe(0.0, true, Some((0.0, 0.0)))],
        vec![saturated.clone()],
        vec![preprocessed.clone()],
        vec![
            probe(0.0, false, Some((0.2, 0.9))),
            probe(1.0, true, None),
            probe(0.4, false, Some((0.3, 0.31))),
        ],
        vec![saturated, probe(0.0, false, None), preprocessed],
    ]
}

#[test]
fn every_registered_policy_is_covered() {
    let covered: Vec<&str> = every_policy().iter().map(|p| p.kind()).collect();
    for name in PolicyConfig::names() {
        assert!(covered.contains(&name), "{name} is not in the suite");
    }
    for entry in PolicyConfig::ENTRIES {
        let example = (entry.example)();
        assert_eq!(example.kind(), entry.name);
        example.validate().unwrap();
    }
}

#[test]
fn fixed_reward_sequences() {
    let rounds = 30;
    let sequences: [Vec<f64>; 3] = [
        vec![0.0; rounds],
        vec![1.0; rounds],
        (0..rounds).map(|r| (r % 2) as f64).collect(),
    ];
    for rewards in &sequences {
        for probes in fixed_probes() {
            check_all(rewards, &probes, 7);
        }
    }
}

fn any_probe() -> impl Strategy<Value = Probe> {
    let zero = prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0f64];
    let saturated = prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0f64];
    let by_budget = proptest::option::of((0.0..=1.0f64, 0.0..=1.0f64));
    let flags = (any::<bool>(), any::<bool>());
    (zero, saturated, flags, by_budget).prop_map(|(z, s, (random, preprocessed), b)| Probe {
        saturated_fraction: s,
        preprocessed,
        ..probe(z, random, b)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_rewards_and_probes(
        rewards in proptest::collection::vec(0.0..=1.0f64, 1..24),
        probes in proptest::collection::vec(any_probe(), 1..6),
        seed in any::<u64>(),
    ) {
        check_all(&rewards, &probes, seed);
    }
}
