//! Training before round 1: clean, or adversarial with a recipe; and the
//! recipe keys under which the model cache keeps trained models.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::attack::AttackConfig;
use crate::config::matrix::MatrixTraining;
use crate::config::PretrainConfig;
use crate::data::Split;
use crate::defense::DefenseConfig;
use crate::model::cache::ModelCache;
use crate::model::{Classifier, Engine, Examples, Fitted, ModelConfig, TrainSet, Trainer};
use crate::path;
use crate::rng::{derived_seed, stream};

/// Everything that decides a trained model's weights: what the model cache
/// keys it by. `R`: a reproduction's crafted rounds (none elsewhere).
#[derive(Serialize)]
pub struct Recipe<'a, R: Serialize = ()> {
    /// The model it starts from: an architecture, or an earlier model's key.
    pub start: Start<'a>,
    pub pretrain: Option<&'a PretrainConfig>,
    pub defense: Option<&'a DefenseConfig>,
    pub rounds: &'a [R],
    /// Names a defense's random stream (so part of what decides it).
    pub name: Option<&'a str>,
    pub engine: Engine,
    pub seed: u64,
    pub classes: usize,
    /// The training images' fingerprint.
    pub train: &'a str,
    /// A specialist's training: its attack and settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub specialist: Option<(&'a AttackConfig, &'a MatrixTraining)>,
}

#[derive(Serialize)]
pub enum Start<'a> {
    New(&'a ModelConfig),
    From(&'a str),
}

/// What a cache entry of a tournament's model records: the time its
/// training took (the fields a reproduction's record starts with, so that
/// either can read the other's entries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    pub name: String,
    pub seconds: f64,
}

/// The model `recipe` names, in `net`: the cache's entry loaded, or `train`
/// run (and its model kept, unless `stop` cut it short). Returns the key,
/// the training's record (the stored one when loaded) and whether it was
/// loaded. An entry that cannot be used is reported and trained again.
pub fn cached<R: Serialize, T: Serialize + serde::de::DeserializeOwned>(
    cache: Option<&ModelCache>,
    recipe: &Recipe<'_, R>,
    name: &str,
    net: &mut dyn Classifier,
    stop: &dyn Fn() -> bool,
    train: impl FnOnce(&mut dyn Classifier) -> T,
) -> (String, T, bool) {
    let key = ModelCache::key(recipe);
    if let Some(cache) = cache {
        // Kept to undo a load whose record turns out unreadable.
        let (parameters, state) = (net.parameters(), net.optimizer_state());
        match cache.load(&key, net) {
            Ok(None) => {}
            Ok(Some(found)) if non_finite_weights(net) > 0 => {
                crate::warn_line!(
                    "warning: ignoring a model cache entry whose weights are not all finite, training instead: {}",
                    found.path.display()
                );
                net.set_parameters(&parameters);
                net.set_optimizer_state(state);
            }
            Ok(Some(found)) => match serde_json::from_value::<T>(found.record) {
                Ok(record) => return (key, record, true),
                Err(e) => {
                    crate::warn_line!(
                        "warning: ignoring a model cache entry, training instead: {}: record: {e}",
                        found.path.display()
                    );
                    net.set_parameters(&parameters);
                    net.set_optimizer_state(state);
                }
            },
            Err(why) => crate::warn_line!("warning: ignoring a model cache entry, training instead: {why}"),
        }
    }
    let record = train(net);
    // A diverged model is never kept: its caller refuses it.
    if let (Some(cache), false, 0) = (cache, stop(), non_finite_weights(net)) {
        if let Err(e) = cache.store(&key, net, recipe, &record) {
            crate::warn_line!(
                "warning: the model cache in {} could not keep {name}: {e}",
                cache.dir().display()
            );
        }
    }
    (key, record, false)
}

/// How many of the model's weights are NaN or infinite.
pub fn non_finite_weights(model: &dyn Classifier) -> usize {
    model.parameters().iter().filter(|v| !v.is_finite()).count()
}

/// [`crate::Error::Diverged`] unless every weight of `net`, trained as
/// `what` on `train`, is finite, and so are its outputs on the first batch
/// of `train` (weights grown huge overflow there); `settings` names the
/// table whose learning rate to lower.
pub fn check_trained(net: &dyn Classifier, train: &Split, what: &str, settings: &str) -> crate::Result<()> {
    let diverged = |bad: usize, total: usize, of: &str| crate::Error::Diverged {
        what: what.to_string(),
        bad,
        total,
        of: of.to_string(),
        settings: settings.to_string(),
    };
    let bad = non_finite_weights(net);
    if bad > 0 {
        return Err(diverged(bad, net.parameters().len(), "weights"));
    }
    match non_finite_outputs(net, train) {
        (0, _) => Ok(()),
        (bad, total) => Err(diverged(bad, total, "outputs on training images")),
    }
}

/// How many of the model's outputs on the first batch of `train` are NaN
/// or infinite, and of how many (never evaluation images, which steer
/// nothing).
fn non_finite_outputs(net: &dyn Classifier, train: &Split) -> (usize, usize) {
    let n = train.len().min(crate::model::metrics::EVAL_BATCH);
    let logits = net.logits(&train.images[..n * train.dim()]);
    (logits.iter().filter(|v| !v.is_finite()).count(), logits.len())
}

/// The table a pretraining's learning rate is set in, for
/// [`check_trained`].
const PRETRAIN_SETTINGS: &str = "`[pretrain]` (its `optimizer`)";

/// The model a run starts from: `model.weights` when given (PyTorch's
/// layout; `recorded_weights`, the file's fingerprint when the run began,
/// as in [`from_weights`]), else [`pretrain`] through the model cache.
/// Returns the model and the key that names it to what is trained from it
/// (for weights, a hash of the file, so that a changed file is a different
/// model).
pub fn pretrain_cached(
    cache: Option<&ModelCache>,
    (model, engine): (&ModelConfig, Engine),
    settings: &PretrainConfig,
    train: &Split,
    (classes, seed, train_fingerprint): (usize, u64, &str),
    recorded_weights: Option<&str>,
    stop: &dyn Fn() -> bool,
) -> crate::Result<(Box<dyn Classifier>, String)> {
    if let Some(path) = model.weights() {
        return from_weights(path, model, engine, train, classes, recorded_weights);
    }
    let recipe: Recipe<'_> = Recipe {
        start: Start::New(model),
        pretrain: Some(settings),
        defense: None,
        rounds: &[],
        name: None,
        engine,
        seed,
        classes,
        train: train_fingerprint,
        specialist: None,
    };
    let mut net = init(model, engine, train, classes, seed);
    // Cut short by `stop` (Ctrl-C), the model is not kept: the caller
    // checks `stop` too and uses none of it.
    let (key, _, _) = cached(cache, &recipe, "the pretrained model", net.as_mut(), stop, |net| {
        let began = Instant::now();
        fit(net, model, engine, settings, train, seed, stop);
        TrainingRecord {
            name: "pretrained".into(),
            seconds: began.elapsed().as_secs_f64(),
        }
    });
    if !stop() {
        check_trained(net.as_ref(), train, "pretraining", PRETRAIN_SETTINGS)?;
    }
    Ok((net, key))
}

/// The model in the safetensors file `path`, and its key. `recorded` is
/// the file's fingerprint when the run began: the configuration names the
/// file by path, and a run reads it again for each seed (and a matrix once
/// more for its model), so a file replaced meanwhile would start some
/// seeds from another model. That is an error, not a silent mix
/// ([`crate::model::torch::load_recorded`]).
pub fn from_weights(
    path: &std::path::Path,
    model: &ModelConfig,
    engine: Engine,
    train: &Split,
    classes: usize,
    recorded: Option<&str>,
) -> crate::Result<(Box<dyn Classifier>, String)> {
    let (net, now) =
        crate::model::torch::load_recorded(path, &model.without_weights(), engine, train.shape, classes, recorded)?;
    // Its weights are finite (load refuses others), but may overflow.
    let (bad, total) = non_finite_outputs(net.as_ref(), train);
    if bad > 0 {
        return Err(crate::Error::invalid(format!(
            "`model.weights`: weights file {}: the model's outputs on training images are NaN or infinite ({bad} of {total}): its weights overflow in the forward pass, so nothing can be measured on it",
            path.display()
        )));
    }
    Ok((net, format!("weights-{now}")))
}

/// Pretraining (or, with `model.weights`, the file's model, checked against
/// `recorded_weights` as in [`from_weights`]). Depends only on the model,
/// the pretraining settings, the data and the seed, so every defender of a
/// model shares it.
pub fn pretrain_or_load(
    (model, engine): (&ModelConfig, Engine),
    settings: &PretrainConfig,
    train: &Split,
    (classes, seed): (usize, u64),
    recorded_weights: Option<&str>,
    stop: &dyn Fn() -> bool,
) -> crate::Result<Box<dyn Classifier>> {
    match model.weights() {
        Some(path) => Ok(from_weights(path, model, engine, train, classes, recorded_weights)?.0),
        None => {
            let mut net = init(model, engine, train, classes, seed);
            fit(net.as_mut(), model, engine, settings, train, seed, stop);
            if !stop() {
                check_trained(net.as_ref(), train, "pretraining", PRETRAIN_SETTINGS)?;
            }
            Ok(net)
        }
    }
}

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
    let mut net = init(model, engine, train, classes, seed);
    fit(net.as_mut(), model, engine, settings, train, seed, &|| false);
    net
}

/// The untrained model pretraining starts from.
pub fn init(model: &ModelConfig, engine: Engine, train: &Split, classes: usize, seed: u64) -> Box<dyn Classifier> {
    model.init(
        engine,
        train.shape,
        classes,
        derived_seed(seed, path!["init", &key(model, engine)]),
    )
}

/// The key that names a model's streams.
fn key(model: &ModelConfig, engine: Engine) -> String {
    serde_json::to_string(&(model, engine)).expect("model configs serialize")
}

/// Pretraining's training of `net` (as [`init`] made it for `model` and
/// `engine`): clean, or adversarial with the recipe's attack.
pub fn fit(
    net: &mut dyn Classifier,
    model: &ModelConfig,
    engine: Engine,
    settings: &PretrainConfig,
    train: &Split,
    seed: u64,
    stop: &dyn Fn() -> bool,
) -> Fitted {
    let mut rng = stream(seed, path!["pretrain", &key(model, engine)]);
    let Some(attack) = &settings.attack else {
        return Trainer::new(settings.training(train.len())).stop_when(stop).fit(
            net,
            Examples::Set(TrainSet::labeled(&train.images, &train.labels)),
            &mut rng,
        );
    };
    crate::defense::pgd_at::train_against(
        net,
        attack,
        train,
        settings.training(
            train
                .len()
                .saturating_sub(settings.early_stop.as_ref().map_or(0, |e| e.images)),
        ),
        &mut rng,
        stop,
    )
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
        let model = ModelConfig::mlp(vec![64]);
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
            let mut net = init(&model, Engine::Native, &data.train, 10, 5);
            let fitted = fit(net.as_mut(), &model, Engine::Native, settings, &data.train, 5, &|| {
                false
            });
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

    /// A weights file is read again for each seed: a file that no longer
    /// holds what the run recorded is refused by name, with both
    /// fingerprints; the same file (or a run with nothing recorded) loads.
    #[test]
    fn a_weights_file_changed_under_a_run_is_refused() {
        let data = synthetic_digits(1, 20, 10);
        let config = ModelConfig::mlp(vec![8]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("start.safetensors");
        let save = |seed| {
            let net = init(&config, Engine::Native, &data.train, 10, seed);
            crate::model::torch::save(&path, net.as_ref(), &config, &[]).unwrap();
            crate::model::torch::fingerprint(&path).unwrap()
        };
        let then = save(1);
        let load = |recorded: Option<&str>| from_weights(&path, &config, Engine::Native, &data.train, 10, recorded);
        let (_, key) = load(Some(&then)).unwrap();
        assert_eq!(key, format!("weights-{then}"));
        let now = save(2);
        assert_ne!(then, now);
        let message = load(Some(&then)).err().expect("a changed file is refused").to_string();
        for part in ["start.safetensors", &then, &now, "--resume"] {
            assert!(message.contains(part), "{message}");
        }
        assert!(load(None).is_ok() && load(Some(&now)).is_ok());
        // Whatever the file holds now, the message is that it changed.
        std::fs::write(&path, b"not a safetensors file").unwrap();
        let message = load(Some(&then)).err().expect("a changed file is refused").to_string();
        assert!(message.contains("changed") && message.contains(&then), "{message}");
    }
}
