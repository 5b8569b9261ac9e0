//! Shared test fixtures: a real model trained on real (synthetic) data.

use std::sync::OnceLock;

use crate::config::PretrainConfig;
use crate::data::synthetic_digits;
use crate::model::{Classifier, Engine, ModelConfig};
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

/// An undefended MLP (784-256-256-10, the default tournament's model) trained
/// on 3000 synthetic digits, with 200 test images;
/// built once per test binary.
pub fn trained_mlp() -> &'static SyntheticFixture {
    static FIXTURE: OnceLock<SyntheticFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = synthetic_digits(11, 3000, 200);
        let settings = PretrainConfig {
            length: crate::model::Length::Epochs(4),
            ..PretrainConfig::default()
        };
        let model = pretrain(
            &ModelConfig::mlp(vec![256, 256]),
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

/// A randomized defense for tests: Gaussian noise added to every input, a
/// fresh draw at every call.
pub struct NoisyInput<'a> {
    pub inner: &'a dyn crate::model::Model,
    pub sigma: f32,
    pub rng: std::sync::Mutex<rand_chacha::ChaCha8Rng>,
}

impl NoisyInput<'_> {
    fn noisy(&self, x: &[f32]) -> Vec<f32> {
        let mut rng = self.rng.lock().unwrap();
        x.iter()
            .map(|v| (v + self.sigma * crate::attack::standard_normal(&mut rng)).clamp(0.0, 1.0))
            .collect()
    }
}

impl crate::model::Model for NoisyInput<'_> {
    fn image_shape(&self) -> crate::data::Shape {
        self.inner.image_shape()
    }
    fn classes(&self) -> usize {
        self.inner.classes()
    }
    fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.inner.logits(&self.noisy(x))
    }
    fn input_grad(&self, x: &[f32], loss: &dyn crate::model::Loss) -> (Vec<f32>, Vec<f32>) {
        self.inner.input_grad(&self.noisy(x), loss)
    }
}
