//! The suite every registered attack must pass.

use super::*;
use crate::testing::{trained_mlp, SyntheticFixture};
use rand::SeedableRng;

/// Minimum success rate on correctly classified images of an undefended
/// MLP, per family; families not listed (baselines) have none.
fn required_success(family: &str) -> Option<f64> {
    match family {
        "pgd" => Some(0.9),
        "fgsm" => Some(0.5),
        _ => None,
    }
}

fn every_attack() -> Vec<AttackConfig> {
    let mut configs: Vec<AttackConfig> = ATTACKS.iter().map(|e| (e.example)()).collect();
    // Each family in its other threat model too.
    configs.push(AttackConfig::Pgd(PgdConfig::new(Norm::L2, 2.0)));
    configs.push(AttackConfig::Fgsm(FgsmConfig::new(Norm::L2, 2.0)));
    let mut gaussian = NoiseConfig::new(Norm::L2, 2.0);
    gaussian.distribution = noise::Distribution::Gaussian;
    configs.push(AttackConfig::Noise(gaussian));
    let mut cw = PgdConfig::new(Norm::Linf, 0.3);
    cw.loss = AttackLoss::Cw;
    cw.restarts = 2;
    configs.push(AttackConfig::Pgd(cw));
    configs
}

#[test]
fn registry_names_match_configs() {
    for entry in ATTACKS {
        assert_eq!((entry.example)().family(), entry.family);
        assert!((entry.example)().validate().is_ok());
    }
}

#[test]
fn every_attack_stays_inside_its_budget_and_the_pixel_box() {
    let SyntheticFixture { model, x, y, dim } = trained_mlp();
    let dim = *dim;
    for config in every_attack() {
        let attack = config.build();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let adv = craft_batched(attack.as_ref(), model.as_ref(), x, y, &mut rng, 64);
        assert_eq!(adv.len(), x.len(), "{}", config.label());
        for (a, c) in adv.chunks(dim).zip(x.chunks(dim)) {
            attack
                .threat()
                .admits(a, c)
                .unwrap_or_else(|v| panic!("{}: {v}", config.label()));
        }
    }
}

#[test]
fn every_attack_is_deterministic_under_a_seed() {
    let SyntheticFixture { model, x, y, .. } = trained_mlp();
    let (x, y) = (&x[..32 * 784], &y[..32]);
    for config in every_attack() {
        let attack = config.build();
        let run = |seed| attack.craft(model.as_ref(), x, y, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(run(3), run(3), "{}", config.label());
        if config.family() == "noise" || matches!(&config, AttackConfig::Pgd(p) if p.random_start) {
            assert_ne!(run(3), run(4), "{} ignores its seed", config.label());
        }
    }
}

#[test]
fn gradient_attacks_break_an_undefended_model() {
    let SyntheticFixture { model, x, y, .. } = trained_mlp();
    let correct: Vec<bool> = fooled(model.as_ref(), x, y).iter().map(|f| !f).collect();
    let n_correct = correct.iter().filter(|&&c| c).count();
    assert!(
        n_correct as f64 > 0.8 * y.len() as f64,
        "the fixture model is not trained"
    );
    let mut noise_success = 1.0;
    let mut pgd_success = 0.0;
    for config in every_attack() {
        let attack = config.build();
        let adv = craft_batched(
            attack.as_ref(),
            model.as_ref(),
            x,
            y,
            &mut ChaCha8Rng::seed_from_u64(5),
            64,
        );
        let after = fooled(model.as_ref(), &adv, y);
        let success = correct.iter().zip(&after).filter(|(&c, &f)| c && f).count() as f64 / n_correct as f64;
        if config == (ATTACKS[1].example)() {
            pgd_success = success;
        }
        if config == (ATTACKS[2].example)() {
            noise_success = success;
        }
        if let Some(required) = required_success(config.family()) {
            assert!(
                success >= required,
                "{} succeeded on {success:.3}, needs {required}",
                config.label()
            );
        }
    }
    assert!(
        pgd_success > noise_success + 0.5,
        "pgd {pgd_success} vs noise {noise_success}"
    );
}
