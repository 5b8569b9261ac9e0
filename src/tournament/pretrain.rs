//! Clean training before round 1.

use crate::config::PretrainConfig;
use crate::data::Split;
use crate::model::{Classifier, Engine, Examples, ModelConfig, TrainConfig, TrainSet, Trainer};
use crate::path;
use crate::rng::{derived_seed, stream};

/// Clean training before round 1. Depends only on the model, the pretraining
/// settings, the data and the seed, so every defender of a model shares it.
pub fn pretrain(
    model: &ModelConfig,
    engine: Engine,
    settings: &PretrainConfig,
    train: &Split,
    classes: usize,
    seed: u64,
) -> Box<dyn Classifier> {
    let key = serde_json::to_string(&(model, engine)).expect("model configs serialize");
    let mut net = model.init(
        engine,
        train.rows,
        train.cols,
        classes,
        derived_seed(seed, path!["init", &key]),
    );
    let config = TrainConfig::epochs(settings.epochs, settings.batch, settings.optimizer.clone());
    Trainer::new(config).fit(
        net.as_mut(),
        Examples::Set(TrainSet::labeled(&train.images, &train.labels)),
        &mut stream(seed, path!["pretrain", &key]),
    );
    net
}
