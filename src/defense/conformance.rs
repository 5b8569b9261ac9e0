//! The suite every registered defense must pass, on the shipped strategy
//! files: deterministic under a seed, trained from the pretrained model,
//! blind to evaluation data, and better than `standard` at what it targets.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::agent::{AttackerConfig, FixedConfig, PolicyConfig};
use crate::arena::{play_to_end, MatchPlan};
use crate::attack::{AttackConfig, EotConfig, Norm, PgdConfig};
use crate::config::{builtin, parse, Rules};
use crate::model::metrics::{self, correct};
use crate::model::Model;
use crate::testing::{trained_mlp, SyntheticFixture};

/// Every defense kind, as its shipped strategy file configures it.
fn every_defender() -> Vec<DefenderConfig> {
    DefenseConfig::names()
        .map(|kind| {
            let path = format!("defenders/{kind}.toml");
            let text = builtin::get(&path).unwrap_or_else(|| panic!("no strategy file {path}"));
            parse::<DefenderConfig>(text, &path).unwrap()
        })
        .collect()
}

/// The arena's defense phase, without the arena: each round, PGD-linf 0.1
/// examples crafted against the current model on 256 training images, then
/// the defense's update.
fn train(defender: &DefenderConfig, rounds: usize, seed: u64) -> Box<dyn Classifier> {
    let SyntheticFixture { model, train, .. } = trained_mlp();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut deployed = defender.strategy.deploy(model.boxed_clone(), seed);
    let mut defense = defender.strategy.init();
    let attack = PgdConfig::new(Norm::Linf, 0.1);
    for _ in 0..rounds {
        let (x, y) = sample_train(train, 256, &mut rng);
        let crafted = crate::attack::Attack::craft(&attack, deployed.as_ref(), &x, &y, &mut rng);
        let round = RoundData {
            crafted: &crafted,
            crafted_labels: &y,
            train,
        };
        defense.update(deployed.as_mut(), &round, &mut rng);
    }
    deployed
}

#[test]
fn every_kind_has_a_strategy_file_that_validates() {
    for defender in every_defender() {
        assert_eq!(defender.strategy.kind(), defender.name);
        defender.strategy.validate().unwrap();
    }
}

#[test]
fn every_defense_is_deterministic_under_a_seed_and_starts_from_the_pretrained_model() {
    let pretrained = trained_mlp().model.parameters();
    for defender in every_defender() {
        let fresh = defender.strategy.deploy(trained_mlp().model.boxed_clone(), 0);
        assert_eq!(
            fresh.parameters(),
            pretrained,
            "{}: not the pretrained model",
            defender.name
        );
        let (a, b) = (train(&defender, 1, 7), train(&defender, 1, 7));
        assert_eq!(a.parameters(), b.parameters(), "{}: not deterministic", defender.name);
        if !matches!(
            defender.strategy,
            DefenseConfig::Standard(_) | DefenseConfig::Squeeze(_)
        ) {
            assert_ne!(
                a.parameters(),
                train(&defender, 1, 8).parameters(),
                "{}: ignores its seed",
                defender.name
            );
        }
    }
}

/// A defense cannot see evaluation images: `RoundData` has none. A whole
/// match played with two different evaluation sets leaves every defense
/// with the same model.
#[test]
fn no_defense_sees_evaluation_data() {
    let SyntheticFixture { model, train, x, y, .. } = trained_mlp();
    let dim = model.input_dim();
    let evals = [(0..100), (100..200)].map(|range| crate::data::Split {
        images: x[range.start * dim..range.end * dim].to_vec(),
        labels: y[range].to_vec(),
        rows: 28,
        cols: 28,
    });
    let attacker = AttackerConfig {
        name: "pgd".into(),
        policy: PolicyConfig::Fixed(FixedConfig {}),
        repertoire: vec![AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1))],
    };
    let rules: Rules = toml::from_str("linf = 0.1\nl2 = 2.0").unwrap();
    for defender in every_defender() {
        let models: Vec<Vec<f32>> = evals
            .iter()
            .map(|eval| {
                let plan = MatchPlan {
                    match_id: 0,
                    seed: 3,
                    rounds: 1,
                    craft: 128,
                    attacker: &attacker,
                    defender: &defender,
                    unseen: &[],
                    rules: &rules,
                    train,
                    // A fixed attacker observes nothing: any images do.
                    attacker_slice: train,
                    eval,
                };
                play_to_end(&plan, model.as_ref(), &|_, _| {}, &|| false, &mut |_| {})
                    .1
                    .parameters()
            })
            .collect();
        assert_eq!(
            models[0], models[1],
            "{}: its model depends on the evaluation set",
            defender.name
        );
    }
}

/// Robust accuracy on held-out images under the attack a defense targets,
/// as the arena measures it (an image wrong when clean is not robust).
fn robust_accuracy(model: &dyn Model, attack: &AttackConfig) -> f64 {
    let SyntheticFixture { x, y, .. } = trained_mlp();
    let (x, y) = (&x[..100 * 784], &y[..100]);
    let adv = attack
        .run(model, x, y, &mut ChaCha8Rng::seed_from_u64(11), 100)
        .examples;
    let clean = correct(model, x, y);
    metrics::robust_accuracy(model, &adv, y, &clean)
}

#[test]
fn every_defense_beats_standard_at_what_it_targets() {
    let standard = trained_mlp().model.boxed_clone();
    let pgd = AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1));
    for defender in every_defender() {
        // Smoothing targets l2 perturbations, attacked through its noise (EOT).
        let target = match defender.strategy {
            DefenseConfig::Standard(_) => continue,
            DefenseConfig::Smoothing(_) => AttackConfig::Eot(EotConfig {
                name: None,
                samples: 8,
                attack: Box::new(AttackConfig::Pgd(PgdConfig::new(Norm::L2, 1.0))),
            }),
            _ => pgd.clone(),
        };
        let defended = train(&defender, 2, 5);
        let (ours, theirs) = (
            robust_accuracy(defended.as_ref(), &target),
            robust_accuracy(standard.as_ref(), &target),
        );
        eprintln!(
            "{}: {ours:.2} vs standard {theirs:.2} under {}",
            defender.name,
            target.label()
        );
        assert!(
            ours >= theirs + 0.1,
            "{}: robust accuracy {ours} under {}, standard {theirs}",
            defender.name,
            target.label()
        );
    }
}

fn defender(kind: &str) -> DefenderConfig {
    every_defender()
        .into_iter()
        .find(|d| d.name == kind)
        .expect("a shipped defender")
}

/// Distillation masks gradients: cross-entropy PGD finds almost nothing,
/// the same budget with a margin loss (CW) goes through.
#[test]
fn distillation_looks_robust_only_to_cross_entropy() {
    let distilled = train(&defender("distillation"), 1, 5);
    let ce = PgdConfig::new(Norm::Linf, 0.1);
    let mut margin = ce.clone();
    margin.loss = crate::attack::AttackLoss::Cw;
    let (ce_acc, margin_acc) = (
        robust_accuracy(distilled.as_ref(), &AttackConfig::Pgd(ce)),
        robust_accuracy(distilled.as_ref(), &AttackConfig::Pgd(margin)),
    );
    eprintln!("distillation: PGD-CE {ce_acc}, PGD-CW {margin_acc}");
    assert!(ce_acc > 0.8, "cross-entropy PGD should look defeated: {ce_acc}");
    assert!(margin_acc + 0.5 < ce_acc, "PGD-CW {margin_acc} vs PGD-CE {ce_acc}");
}

/// What smoothing proves never exceeds what the strongest l2 attack on the
/// smoothed classifier leaves standing, in every round of a small match.
#[test]
fn smoothing_certifies_no_more_than_survives_attack() {
    let SyntheticFixture { model, train, x, y, .. } = trained_mlp();
    let eval = crate::data::Split {
        images: x[..100 * 784].to_vec(),
        labels: y[..100].to_vec(),
        rows: 28,
        cols: 28,
    };
    let attacker = AttackerConfig {
        name: "pgd".into(),
        policy: PolicyConfig::Fixed(FixedConfig {}),
        repertoire: vec![AttackConfig::Pgd(PgdConfig::new(Norm::L2, 0.5))],
    };
    // A radius sigma = 0.5 can certify with 1,000 draws (at most 1.23).
    let rules: Rules = toml::from_str("l2 = 0.5").unwrap();
    let defender = defender("smoothing");
    let plan = MatchPlan {
        match_id: 0,
        seed: 3,
        rounds: 2,
        craft: 128,
        attacker: &attacker,
        defender: &defender,
        unseen: &[],
        rules: &rules,
        train,
        attacker_slice: train,
        eval: &eval,
    };
    let (rows, _) = play_to_end(&plan, model.as_ref(), &|_, _| {}, &|| false, &mut |_| {});
    for row in &rows {
        let (certified, empirical) = (row.certified_acc.unwrap(), row.certified_empirical_acc.unwrap());
        eprintln!("round {}: certified {certified}, empirical {empirical}", row.round);
        assert!(
            certified > 0.0,
            "nothing certified at radius 0.5: the check would be vacuous"
        );
        assert!(certified <= empirical, "certified {certified} > empirical {empirical}");
    }
}
