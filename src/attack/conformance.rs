//! The suite every registered attack must pass.

use super::*;
use crate::testing::{trained_mlp, SyntheticFixture};
use rand::SeedableRng;

/// Every registered attack's example and variants (the default
/// tournament's budgets: linf 0.1, l2 2.0), plus the variants that matter:
/// PGD-linf at 0.3, CW and DLR losses, restarts, Gaussian noise, targets.
fn every_attack() -> Vec<AttackConfig> {
    let mut configs: Vec<AttackConfig> = ATTACKS
        .iter()
        .flat_map(|e| std::iter::once((e.example)()).chain((e.variants)()))
        .collect();
    configs.push(AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1)));
    configs.push(AttackConfig::Pgd(PgdConfig::new(Norm::L2, 2.0)));
    let mut l1 = PgdConfig::new(Norm::L1, 10.0);
    l1.steps = 50;
    configs.push(AttackConfig::Pgd(l1));
    configs.push(AttackConfig::Fgsm(FgsmConfig::new(Norm::Linf, 0.1)));
    configs.push(AttackConfig::Fgsm(FgsmConfig::new(Norm::L2, 2.0)));
    configs.push(AttackConfig::Mim(MimConfig::new(Norm::Linf, 0.1)));
    configs.push(AttackConfig::Mim(MimConfig::new(Norm::L2, 2.0)));
    configs.push(AttackConfig::Apgd(ApgdConfig::new(Norm::Linf, 0.1)));
    let mut dlr = ApgdConfig::new(Norm::L2, 2.0);
    dlr.loss = apgd::ApgdLoss::Dlr;
    configs.push(AttackConfig::Apgd(dlr));
    configs.push(AttackConfig::Square(SquareConfig::new(0.1)));
    let mut square_l2 = SquareConfig::new(2.0);
    square_l2.norm = Norm::L2;
    configs.push(AttackConfig::Square(square_l2));
    configs.push(AttackConfig::DeepFool(DeepFoolConfig::new(Norm::Linf, 0.1)));
    let mut gaussian = NoiseConfig::new(Norm::L2, 2.0);
    gaussian.distribution = noise::Distribution::Gaussian;
    configs.push(AttackConfig::Noise(gaussian));
    let mut targeted = PgdConfig::new(Norm::Linf, 0.3);
    targeted.target = Target::Random;
    configs.push(AttackConfig::Pgd(targeted));
    let mut targeted_apgd = ApgdConfig::new(Norm::Linf, 0.3);
    targeted_apgd.target = Target::Random;
    configs.push(AttackConfig::Apgd(targeted_apgd));
    let mut targeted_cw = CwConfig::new(2.0);
    targeted_cw.target = Target::Random;
    configs.push(AttackConfig::Cw(targeted_cw));
    let mut least_likely = MimConfig::new(Norm::Linf, 0.3);
    least_likely.target = Target::LeastLikely;
    configs.push(AttackConfig::Mim(least_likely));
    let mut targeted_dlr = ApgdConfig::new(Norm::Linf, 0.3);
    targeted_dlr.loss = apgd::ApgdLoss::Dlr;
    targeted_dlr.target = Target::Random;
    configs.push(AttackConfig::Apgd(targeted_dlr));
    let mut targeted_square = SquareConfig::new(0.3);
    targeted_square.target = Target::LeastLikely;
    configs.push(AttackConfig::Square(targeted_square));
    let mut targeted_hsj = HopSkipJumpConfig::new(Norm::L2, 4.0);
    targeted_hsj.target = Target::Random;
    configs.push(AttackConfig::HopSkipJump(targeted_hsj));
    let mut cw = PgdConfig::new(Norm::Linf, 0.1);
    cw.loss = AttackLoss::Cw;
    cw.restarts = 2;
    configs.push(AttackConfig::Pgd(cw));
    configs
}

#[test]
fn registry_names_match_configs() {
    for entry in ATTACKS {
        assert_eq!((entry.example)().family(), entry.name);
        assert!((entry.example)().validate().is_ok());
    }
}

#[test]
fn every_attack_stays_inside_its_budget_and_the_pixel_box() {
    let SyntheticFixture {
        model,
        x,
        y,
        dim,
        train,
    } = trained_mlp();
    let dim = *dim;
    // A property of every example, not a rate: 64 images show it.
    let (x, y) = (&x[..64 * dim], &y[..64]);
    for config in every_attack() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let adv = config
            .run_with(model.as_ref(), x, y, &mut rng, 64, Some(train))
            .examples;
        assert_eq!(adv.len(), x.len(), "{}", config.label());
        for (a, c) in adv.chunks(dim).zip(x.chunks(dim)) {
            config
                .threat()
                .admits(a, c)
                .unwrap_or_else(|v| panic!("{}: {v}", config.label()));
        }
    }
}

#[test]
fn every_attack_is_deterministic_under_a_seed() {
    let SyntheticFixture { model, x, y, train, .. } = trained_mlp();
    let (x, y) = (&x[..32 * 784], &y[..32]);
    for config in every_attack() {
        let run = |seed| {
            config
                .run_with(
                    model.as_ref(),
                    x,
                    y,
                    &mut ChaCha8Rng::seed_from_u64(seed),
                    64,
                    Some(train),
                )
                .examples
        };
        assert_eq!(run(3), run(3), "{}", config.label());
        let randomized = matches!(
            config.family(),
            "noise" | "square" | "apgd" | "hopskipjump" | "pointwise" | "autoattack"
        ) || matches!(&config, AttackConfig::Pgd(p) if p.random_start);
        if randomized {
            assert_ne!(run(3), run(4), "{} ignores its seed", config.label());
        }
    }
}

#[test]
fn attacks_break_an_undefended_model_within_their_query_budgets() {
    let SyntheticFixture { model, x, y, train, .. } = trained_mlp();
    let correct: Vec<bool> = fooled(model.as_ref(), x, y).iter().map(|f| !f).collect();
    let n_correct = correct.iter().filter(|&&c| c).count();
    assert!(
        n_correct as f64 > 0.8 * y.len() as f64,
        "the fixture model is not trained"
    );
    let mut success_of = std::collections::BTreeMap::new();
    for config in every_attack() {
        let crafted = config.run_with(model.as_ref(), x, y, &mut ChaCha8Rng::seed_from_u64(5), 64, Some(train));
        match (config.access(), crafted.queries) {
            (Access::Whitebox, None) => {}
            (Access::Transfer, Some(0)) => {}
            // Query attacks, and composites with a query part (autoattack).
            (_, Some(q)) if config.queries().is_some() => {
                let cap = config.queries().expect("query attacks have a budget") * y.len();
                assert!(q <= cap, "{}: {q} queries, cap {cap}", config.label());
            }
            (access, queries) => panic!("{}: {access:?} access but queries {queries:?}", config.label()),
        }
        let after = fooled(model.as_ref(), &crafted.examples, y);
        let success = correct.iter().zip(&after).filter(|(&c, &f)| c && f).count() as f64 / n_correct as f64;
        // The floors are for untargeted attacks; a targeted one aims at one
        // class and is checked by `targeted_attacks_reach_their_targets`.
        let required = config
            .part()
            .required_success()
            .filter(|_| config.target() == Target::Untargeted);
        if let Some(required) = required {
            assert!(
                success >= required,
                "{} succeeded on {success:.3}, needs {required}",
                config.label()
            );
        }
        success_of.insert(config.label(), success);
    }
    assert!(
        success_of["pgd-linf-0.1"] > success_of["noise-linf-0.3"] + 0.5,
        "pgd does not beat noise: {success_of:?}"
    );
}

/// Against feature squeezing, the deployed model's gradient is zero: plain
/// PGD is left with its random start, while the same PGD through BPDA
/// differentiates around the squeezer.
#[test]
fn bpda_beats_plain_pgd_against_squeezing() {
    let SyntheticFixture { model, x, y, .. } = trained_mlp();
    let squeezed = crate::defense::SqueezeConfig { bits: 1, median: 2 }.deploy(model.boxed_clone());
    let plain = AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.3));
    let bpda = AttackConfig::Bpda(BpdaConfig {
        name: None,
        attack: Box::new(plain.clone()),
    });
    let clean = crate::model::metrics::correct(squeezed.as_ref(), x, y);
    let robust_acc = |attack: &AttackConfig| {
        let adv = attack
            .run(squeezed.as_ref(), x, y, &mut ChaCha8Rng::seed_from_u64(2), 64)
            .examples;
        crate::model::metrics::robust_accuracy(squeezed.as_ref(), &adv, y, &clean)
    };
    let (plain_acc, bpda_acc) = (robust_acc(&plain), robust_acc(&bpda));
    assert!(
        crate::model::metrics::fraction(&clean) > 0.7,
        "the squeezed model should still classify"
    );
    assert!(
        bpda_acc + 0.3 < plain_acc,
        "robust accuracy under plain PGD {plain_acc}, under BPDA {bpda_acc}"
    );
}

/// A targeted attack lands on its target, not just anywhere wrong: the
/// share of images classified as their target after the attack, per
/// targeted attack (gradient, scores and labels access).
#[test]
fn targeted_attacks_reach_their_targets() {
    let SyntheticFixture { model, x, y, .. } = trained_mlp();
    let (x, y) = (&x[..64 * 784], &y[..64]);
    let k = model.classes();
    let negated: Vec<f32> = model.logits(x).iter().map(|z| -z).collect();
    let least_likely = crate::model::argmax_rows(&negated, k);
    let next_class: Vec<u8> = y.iter().map(|&l| (l + 1) % k as u8).collect();
    let hit = |adv: &[f32], targets: &[u8]| {
        let predicted = crate::model::argmax_rows(&model.logits(adv), k);
        predicted.iter().zip(targets).filter(|(p, t)| p == t).count() as f64 / targets.len() as f64
    };
    let rng = || ChaCha8Rng::seed_from_u64(1);
    let whitebox = |config: AttackConfig| config.run(model.as_ref(), x, y, &mut rng(), 64).examples;

    let mut pgd = PgdConfig::new(Norm::Linf, 0.3);
    pgd.target = Target::LeastLikely;
    pgd.steps = 20;
    let mut apgd_ce = ApgdConfig::new(Norm::Linf, 0.3);
    apgd_ce.target = Target::LeastLikely;
    let mut apgd_dlr = apgd_ce.clone();
    apgd_dlr.loss = apgd::ApgdLoss::Dlr;
    // Targeted DLR climbs a ratio, more slowly than CE at 20 steps; the
    // paper gives targeted runs 100.
    apgd_dlr.steps = 50;
    let mut square = SquareConfig::new(0.3);
    square.target = Target::LeastLikely;
    let mut hsj = HopSkipJumpConfig::new(Norm::L2, 4.0);
    hsj.target = Target::Random;
    let mut hsj_oracle = access::LabelOracle::new(model.as_ref(), y.len(), hsj.queries);
    let hsj_adv = hsj.craft_towards(&mut hsj_oracle, x, y, Some(&next_class), &mut rng());

    let rates = [
        ("pgd", hit(&whitebox(AttackConfig::Pgd(pgd)), &least_likely), 0.8),
        (
            "apgd-ce",
            hit(&whitebox(AttackConfig::Apgd(apgd_ce)), &least_likely),
            0.8,
        ),
        (
            "apgd-dlr",
            hit(&whitebox(AttackConfig::Apgd(apgd_dlr)), &least_likely),
            0.8,
        ),
        (
            "square",
            hit(&whitebox(AttackConfig::Square(square)), &least_likely),
            0.5,
        ),
        ("hopskipjump", hit(&hsj_adv, &next_class), 0.5),
    ];
    eprintln!("targets reached: {rates:?}");
    for (attack, rate, required) in rates {
        assert!(
            rate >= required,
            "{attack}: targets reached on {rate}, needs {required}"
        );
    }
}

/// EOT averages the defense's gradient over draws of its randomness: on a
/// deterministic model it changes nothing, on a randomized one its gradient
/// is the mean of the draws.
#[test]
fn eot_averages_gradients_over_the_defenses_randomness() {
    let SyntheticFixture { model, x, y, .. } = trained_mlp();
    let (x, y) = (&x[..8 * 784], &y[..8]);
    let pgd = AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1));
    let eot = AttackConfig::Eot(EotConfig {
        name: None,
        samples: 4,
        attack: Box::new(pgd.clone()),
    });
    let run = |attack: &AttackConfig| {
        attack
            .run(model.as_ref(), x, y, &mut ChaCha8Rng::seed_from_u64(2), 8)
            .examples
    };
    assert_eq!(run(&eot), run(&pgd), "EOT changed an attack on a deterministic model");

    let noisy = |seed| crate::testing::NoisyInput {
        inner: model.as_ref(),
        sigma: 0.3,
        rng: std::sync::Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
    };
    let loss = crate::model::CrossEntropy { labels: y };
    let defense = noisy(7);
    let (_, averaged) = eot::Eot {
        model: &defense,
        samples: 4,
    }
    .input_grad(x, &loss);
    let replay = noisy(7);
    let mut expected = vec![0.0f32; x.len()];
    for _ in 0..4 {
        let (_, g) = replay.input_grad(x, &loss);
        expected.iter_mut().zip(g).for_each(|(e, g)| *e += g / 4.0);
    }
    for (a, e) in averaged.iter().zip(&expected) {
        assert!((a - e).abs() <= 1e-5 * e.abs().max(1.0), "{a} vs {e}");
    }
    let (_, one_draw) = noisy(8).input_grad(x, &loss);
    assert_ne!(one_draw, averaged, "the randomized fixture is not random");
}
