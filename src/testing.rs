//! Shared test fixtures: a real model trained on real (synthetic) data.

use std::sync::OnceLock;

use crate::config::PretrainConfig;
use crate::data::synthetic_digits;
use crate::model::{Classifier, Engine, ModelConfig, Sgd};
use crate::tournament::pretrain;

pub struct SyntheticFixture {
    pub model: Box<dyn Classifier>,
    /// Held-out images and labels.
    pub x: Vec<f32>,
    pub y: Vec<u8>,
    pub dim: usize,
    /// The training split the model learned from.
    pub train: crate::data::Split,
}

/// An undefended MLP trained on 3000 synthetic digits, with 200 test images;
/// built once per test binary.
pub fn trained_mlp() -> &'static SyntheticFixture {
    static FIXTURE: OnceLock<SyntheticFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = synthetic_digits(11, 3000, 200);
        let settings = PretrainConfig {
            epochs: 4,
            batch: 64,
            optimizer: Sgd::default(),
        };
        let model = pretrain(
            &ModelConfig::Mlp { hidden: vec![128] },
            Engine::Native,
            &settings,
            &data.train,
            data.classes,
            11,
        );
        SyntheticFixture {
            model,
            dim: data.test.dim(),
            train: data.train.clone(),
            x: data.test.images,
            y: data.test.labels,
        }
    })
}
