//! Training before round 1: clean, or adversarial with a recipe.

use crate::arena::metrics::{correct, fraction, robust, EVAL_BATCH};
use crate::attack::{AttackConfig, PgdConfig};
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
    // Early stopping scores on training images the run never trains on.
    let held_out_count = settings.early_stop.as_ref().map_or(0, |early| early.images);
    let (trained_on, held_out) = hold_out(train, held_out_count, seed);
    let score_attack = early_stop_attack(attack);
    let score = |model: &dyn Classifier| {
        let mut rng = stream(seed, path!["pretrain", "early-stop"]);
        robust_accuracy(model, &score_attack, &held_out, &mut rng)
    };
    let training = settings.training(trained_on.len());
    let fitted = crate::defense::pgd_at::train_against(
        net.as_mut(),
        attack,
        &trained_on,
        training,
        &mut rng,
        stop,
        settings
            .early_stop
            .as_ref()
            .map(|_| &score as &dyn Fn(&dyn Classifier) -> f64),
    );
    (net, fitted)
}

/// The first `count` images of a fixed shuffle of `train` apart from the rest.
fn hold_out(train: &Split, count: usize, seed: u64) -> (Split, Split) {
    if count == 0 {
        return (train.clone(), train.subset(&[]));
    }
    let mut order: Vec<usize> = (0..train.len()).collect();
    rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut stream(seed, path!["pretrain", "held-out"]));
    let (held, rest) = order.split_at(count.min(train.len()));
    (train.subset(rest), train.subset(held))
}

/// What early stopping scores with: PGD-10 from a random start at the
/// training attack's norm and full budget, step 2.5 eps / 10 (Madry's rule).
pub fn early_stop_attack(attack: &AttackConfig) -> AttackConfig {
    let threat = attack.threat();
    AttackConfig::Pgd(PgdConfig::new(threat.norm, threat.eps))
}

/// The share of `split` that `model` classifies correctly both clean and
/// under `attack`.
pub fn robust_accuracy(
    model: &dyn Classifier,
    attack: &AttackConfig,
    split: &Split,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> f64 {
    let clean = correct(model, &split.images, &split.labels);
    let adv = attack.run_with(model, &split.images, &split.labels, rng, EVAL_BATCH, None);
    fraction(&robust(model, &adv.examples, &split.labels, &clean))
}
