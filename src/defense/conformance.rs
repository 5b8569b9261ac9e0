//! The suite every registered defense must pass, on the shipped strategy
//! files: deterministic under a seed, trained from the pretrained model,
//! blind to evaluation data, and better than `standard` at what it targets
//! under an evaluation that masking cannot pass (BPDA, EOT and a margin
//! loss where they apply). Under that evaluation the two that only mask
//! gradients (squeeze, distillation) give back at least half of what plain
//! PGD could not take.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::smoothing::{clopper_pearson_lower, standard_normal_quantile};
use super::*;
use crate::agent::{AttackerConfig, FixedConfig, PolicyConfig};
use crate::arena::{play_to_end, MatchPlan};
use crate::attack::{AttackConfig, AttackLoss, EotConfig, Norm, PgdConfig, Signal};
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
        shape: crate::data::Shape::MNIST,
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
                    specialists: &Default::default(),
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

/// A defender trained as [`train`] does for two rounds from seed 5, once
/// per test binary: several checks attack the same models.
fn trained(defender: &DefenderConfig) -> &'static dyn Classifier {
    static CACHE: Mutex<BTreeMap<String, &'static dyn Classifier>> = Mutex::new(BTreeMap::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    *cache
        .entry(defender.name.clone())
        .or_insert_with(|| -> &'static dyn Classifier { Box::leak(train(defender, 2, 5)) })
}

/// Per held-out image, whether `model` withstands `attack`, as the arena
/// measures it (an image wrong when clean is not robust).
fn robust_images(model: &dyn Model, attack: &AttackConfig) -> Vec<bool> {
    let SyntheticFixture { x, y, .. } = trained_mlp();
    let (x, y) = (&x[..100 * 784], &y[..100]);
    let adv = attack
        .run(model, x, y, &mut ChaCha8Rng::seed_from_u64(11), 100)
        .examples;
    let clean = correct(model, x, y);
    metrics::robust(model, &adv, y, &clean)
}

/// Robust accuracy under the per-image worst case over `attacks`: an image
/// counts only if it withstands every one.
fn worst_case(model: &dyn Model, attacks: &[AttackConfig]) -> f64 {
    let masks: Vec<Vec<bool>> = attacks.iter().map(|a| robust_images(model, a)).collect();
    let every: Vec<bool> = (0..masks[0].len()).map(|i| masks.iter().all(|m| m[i])).collect();
    metrics::fraction(&every)
}

/// `plain` and what an adaptive evaluator runs besides it against `model`
/// (Tramer et al. 2020), as the adaptive attacker's probe diagnoses it:
/// BPDA through preprocessing, EOT through randomness, and a margin loss
/// where cross-entropy saturates.
fn adaptive_evaluation(plain: &AttackConfig, model: &dyn Model) -> Vec<AttackConfig> {
    let images = &trained_mlp().train;
    let probe = crate::agent::probe(model, images, None, &mut ChaCha8Rng::seed_from_u64(13));
    let mut adapted = plain.clone();
    if probe.preprocessed {
        adapted = adapted.through_bpda();
    }
    if probe.random_outputs {
        adapted = AttackConfig::Eot(EotConfig {
            name: None,
            samples: 8,
            attack: Box::new(adapted),
        });
    }
    let mut attacks = vec![plain.clone()];
    if probe.saturated_fraction > 0.5 {
        attacks.push(with_margin_loss(&adapted));
    }
    if adapted != *plain {
        attacks.push(adapted);
    }
    attacks
}

/// The same PGD (inside any wrappers) ascending the CW margin.
fn with_margin_loss(attack: &AttackConfig) -> AttackConfig {
    let mut copy = attack.clone();
    match &mut copy {
        AttackConfig::Pgd(pgd) => pgd.loss = AttackLoss::Cw,
        AttackConfig::Bpda(c) => *c.attack = with_margin_loss(&c.attack),
        AttackConfig::Eot(c) => *c.attack = with_margin_loss(&c.attack),
        other => panic!("no margin-loss version of {}", other.label()),
    }
    copy
}

fn labels(attacks: &[AttackConfig]) -> Vec<String> {
    attacks.iter().map(AttackConfig::label).collect()
}

/// What a defense targets: l2 perturbations within a radius the shipped
/// smoothing can certify (sigma times the normal quantile of the best
/// Clopper-Pearson bound its `n` draws allow: 1.23 at sigma 0.5), linf
/// 0.1 for every other defense.
fn target(defender: &DefenderConfig) -> AttackConfig {
    match &defender.strategy {
        DefenseConfig::Smoothing(c) => {
            let radius = 1.0;
            let best = clopper_pearson_lower(c.n, c.n, c.alpha);
            let largest = c.sigma as f64 * standard_normal_quantile(best);
            assert!(
                radius <= largest,
                "smoothing cannot certify l2 {radius}: at most {largest}"
            );
            AttackConfig::Pgd(PgdConfig::new(Norm::L2, radius as f32))
        }
        _ => AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1)),
    }
}

/// Defenses whose robustness is gradient masking: they claim none.
fn masks_gradients(defender: &DefenderConfig) -> bool {
    matches!(
        defender.strategy,
        DefenseConfig::Squeeze(_) | DefenseConfig::Distillation(_)
    )
}

/// Every defense that claims robustness (adversarial training of every
/// kind, and smoothing at a radius it can certify) beats `standard` under
/// an adaptive evaluation: the per-image worst case over the plain attack
/// and its BPDA, EOT and margin-loss versions where they apply.
#[test]
fn every_defense_that_claims_robustness_beats_standard_under_adaptive_evaluation() {
    let standard = trained_mlp().model.as_ref();
    for defender in every_defender() {
        if matches!(defender.strategy, DefenseConfig::Standard(_)) || masks_gradients(&defender) {
            continue;
        }
        let target = target(&defender);
        let defended = trained(&defender);
        let (ours, theirs) = (
            adaptive_evaluation(&target, defended),
            adaptive_evaluation(&target, standard),
        );
        let (ours_acc, theirs_acc) = (worst_case(defended, &ours), worst_case(standard, &theirs));
        eprintln!(
            "{}: {ours_acc:.2} under {:?}; standard {theirs_acc:.2} under {:?}",
            defender.name,
            labels(&ours),
            labels(&theirs)
        );
        assert!(
            ours_acc >= theirs_acc + 0.1,
            "{}: robust accuracy {ours_acc} under {:?}, standard {theirs_acc}",
            defender.name,
            labels(&ours)
        );
    }
}

/// The linf budget at which a masking defense is checked: where it looks
/// robust to plain PGD without being so. One-bit squeezing of these
/// near-binary digits withstands linf 0.1 for real: BPDA leaves 84% of
/// images, even Square with 1,000 queries 80%, so it is checked at the
/// masking tournament's 0.3 (plain PGD 88%, BPDA 41%).
fn masking_budget(defender: &DefenderConfig) -> f32 {
    match defender.strategy {
        DefenseConfig::Squeeze(_) => 0.3,
        _ => 0.1,
    }
}

/// Squeezing and distillation look robust to plain PGD; an adaptive
/// evaluation takes back at least half of what plain PGD could not: with
/// p the defense's accuracy under plain PGD, a under the adaptive
/// evaluation and s standard's under plain PGD, p - a >= (p - s) / 2.
#[test]
fn adaptive_evaluation_takes_back_what_masking_hid() {
    let standard = trained_mlp().model.as_ref();
    for defender in every_defender().into_iter().filter(masks_gradients) {
        let eps = masking_budget(&defender);
        let plain = AttackConfig::Pgd(PgdConfig::new(Norm::Linf, eps));
        let defended = trained(&defender);
        let adaptive = adaptive_evaluation(&plain, defended);
        let (p, a, s) = (
            worst_case(defended, std::slice::from_ref(&plain)),
            worst_case(defended, &adaptive),
            worst_case(standard, std::slice::from_ref(&plain)),
        );
        eprintln!(
            "{}: plain PGD {p:.2}, adaptive {a:.2} under {:?}, standard {s:.2}",
            defender.name,
            labels(&adaptive)
        );
        assert!(
            p > s,
            "{}: plain PGD leaves {p}, standard {s}: plain PGD was not fooled, nothing masked to take back",
            defender.name
        );
        assert!(
            p - a >= 0.5 * (p - s),
            "{}: the adaptive evaluation ({:?}) leaves {a}, plain PGD {p}, standard {s}",
            defender.name,
            labels(&adaptive)
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
    let distilled = trained(&defender("distillation"));
    let ce = AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1));
    let (ce_acc, margin_acc) = (
        worst_case(distilled, std::slice::from_ref(&ce)),
        worst_case(distilled, &[with_margin_loss(&ce)]),
    );
    eprintln!("distillation: PGD-CE {ce_acc}, PGD-CW {margin_acc}");
    assert!(ce_acc > 0.8, "cross-entropy PGD should look defeated: {ce_acc}");
    assert!(margin_acc + 0.5 < ce_acc, "PGD-CW {margin_acc} vs PGD-CE {ce_acc}");
}

/// The adaptive attacker, probing as the arena does: the pretrained model
/// first (distillation happens in round 1's defense phase), then the
/// distilled one, whose probe shows a saturated softmax; its second pick
/// is the margin loss, and its note says why.
#[test]
fn the_adaptive_attacker_diagnoses_distillation_and_picks_the_margin_loss_second() {
    let path = "attackers/adaptive-linf.toml";
    let attacker = parse::<AttackerConfig>(builtin::get(path).unwrap(), path).unwrap();
    let mut policy = attacker.policy.init(&attacker.repertoire);
    let images = &trained_mlp().train;
    let models: [&dyn Model; 2] = [trained_mlp().model.as_ref(), trained(&defender("distillation"))];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut picks = Vec::new();
    for (round, model) in models.into_iter().enumerate() {
        let probe = crate::agent::probe(model, images, policy.probe_attack(), &mut rng);
        eprintln!("round {}: {probe:?}", round + 1);
        policy.probe(&probe);
        let arm = policy.pick(round + 1, &mut rng);
        picks.push((probe, arm, policy.note()));
        policy.observe(arm, if round == 0 { 0.9 } else { 0.1 });
    }
    assert!(picks[0].0.saturated_fraction < 0.5, "pretrained: {:?}", picks[0].0);
    assert!(picks[1].0.saturated_fraction > 0.5, "distilled: {:?}", picks[1].0);
    let (arm, note) = (picks[1].1, picks[1].2.clone().unwrap_or_default());
    assert_eq!(attacker.repertoire[arm].signal(), Signal::Margin, "{note}");
    assert!(note.contains("saturated softmax"), "{note}");
}

/// What smoothing proves never exceeds what the strongest l2 attack on the
/// smoothed classifier leaves standing, in every round of a small match.
#[test]
fn smoothing_certifies_no_more_than_survives_attack() {
    let SyntheticFixture { model, train, x, y, .. } = trained_mlp();
    let eval = crate::data::Split {
        images: x[..100 * 784].to_vec(),
        labels: y[..100].to_vec(),
        shape: crate::data::Shape::MNIST,
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
        specialists: &Default::default(),
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
