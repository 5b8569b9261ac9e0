//! Clean training before round 1.

use crate::config::PretrainConfig;
use crate::data::Split;
use crate::defense::train_epochs;
use crate::model::{Classifier, Engine, ModelConfig};
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
    train_epochs(
        net.as_mut(),
        &train.images,
        &train.labels,
        settings.epochs,
        settings.batch,
        &settings.optimizer,
        &mut stream(seed, path!["pretrain", &key]),
    );
    net
}
