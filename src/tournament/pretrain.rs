//! Training before round 1: clean, or adversarial with a recipe.

use crate::config::PretrainConfig;
use crate::data::Split;
use crate::model::{Classifier, Engine, Examples, Fitted, ModelConfig, TrainSet, Trainer};
use crate::path;
use crate::rng::{derived_seed, stream};

/// Pretraining. Depends only on the model, the pretraining settings, the
/// data and the seed, so every defender of a model shares it.
pub fn pretrain(
    model: &ModelConfig,
    engine: Engine,
    settings: &PretrainConfig,
    train: &Split,
    classes: usize,
    seed: u64,
) -> Box<dyn Classifier> {
    pretrain_with_report(model, engine, settings, train, classes, seed, &|| false).0
}

/// [`pretrain`], stopping before any step at which `stop` says so, and
/// what the trainer did (checkpoints, early stopping).
pub fn pretrain_with_report(
    model: &ModelConfig,
    engine: Engine,
    settings: &PretrainConfig,
    train: &Split,
    classes: usize,
    seed: u64,
    stop: &dyn Fn() -> bool,
) -> (Box<dyn Classifier>, Fitted) {
    let key = serde_json::to_string(&(model, engine)).expect("model configs serialize");
    let mut net = model.init(
        engine,
        train.rows,
        train.cols,
        classes,
        derived_seed(seed, path!["init", &key]),
    );
    let mut rng = stream(seed, path!["pretrain", &key]);
    let Some(attack) = &settings.attack else {
        let fitted = Trainer::new(settings.training(train.len())).stop_when(stop).fit(
            net.as_mut(),
            Examples::Set(TrainSet::labeled(&train.images, &train.labels)),
            &mut rng,
        );
        return (net, fitted);
    };
    let fitted = crate::defense::pgd_at::train_against(
        net.as_mut(),
        attack,
        train,
        settings.training(
            train
                .len()
                .saturating_sub(settings.early_stop.as_ref().map_or(0, |e| e.images)),
        ),
        &mut rng,
        stop,
    );
    (net, fitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{AttackConfig, Norm, PgdConfig};
    use crate::data::synthetic_digits;
    use crate::defense::pgd_at::robust_accuracy;
    use crate::model::{EarlyStop, Length, OptimizerConfig};

    #[test]
    fn adversarial_pretraining_is_robust_where_clean_pretraining_is_not() {
        let data = synthetic_digits(3, 1200, 200);
        let model = ModelConfig::Mlp { hidden: vec![64] };
        let clean = PretrainConfig {
            length: Length::Steps(150),
            optimizer: OptimizerConfig::adam(1e-3),
            ..PretrainConfig::default()
        };
        let attack = AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1));
        let adversarial = PretrainConfig {
            attack: Some(attack.clone()),
            eps_warmup: 50,
            early_stop: Some(EarlyStop {
                every: 25,
                images: 100,
                drop: 0.2,
            }),
            ..clean.clone()
        };
        let robust = |settings: &PretrainConfig| {
            let (net, fitted) = pretrain_with_report(&model, Engine::Native, settings, &data.train, 10, 5, &|| false);
            let mut rng = stream(9, path!["test"]);
            (robust_accuracy(net.as_ref(), &attack, &data.test, &mut rng), fitted)
        };
        let (clean_robust, clean_fit) = robust(&clean);
        let (adv_robust, adv_fit) = robust(&adversarial);
        assert!(clean_fit.checkpoints.is_empty() && clean_fit.kept.is_none());
        // Checkpoints after the 50 warm-up steps, every 25: 75, 100, 125, 150.
        assert_eq!(adv_fit.checkpoints.first().map(|c| c.0), Some(75), "{adv_fit:?}");
        assert!(adv_fit.kept.is_some());
        assert!(
            adv_robust > clean_robust + 0.15,
            "PGD accuracy at linf 0.1: adversarial {adv_robust}, clean {clean_robust}"
        );
    }
}
