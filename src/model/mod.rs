//! The classifier trait and its engines.
//!
//! Attacks, defenses and agents see a model only through [`Classifier`]:
//! logits, the input gradient of a loss, and a training step. An engine can
//! be replaced behind it without touching any of them. Every training run
//! takes its steps through the one minibatch [`Trainer`].

pub mod arch;
pub mod cache;
pub(crate) mod conv;
mod direct;
pub mod kernels;
pub mod loss;
pub mod metrics;
mod native;
mod net;
pub mod optim;
pub mod torch;
pub mod train;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::Shape;

pub use direct::{uses_avx512, ConvKernels};
pub use loss::{argmax_rows, softmax, CrossEntropy, CwMargin, Dlr, Loss, SoftCrossEntropy, TargetedDlr};
pub use native::Native;
pub use net::{naive_conv2d, Net};
pub use optim::{Optimizer, OptimizerConfig, OptimizerKind, OptimizerState, Schedule};
pub use train::{Batch, EarlyStop, Examples, Fitted, Length, MakeBatch, Step, TrainConfig, TrainSet, Trainer};

/// What an attack may see of a classifier: logits and input gradients.
pub trait Model: Send + Sync {
    /// Values per image (`image_shape().dim()`).
    fn input_dim(&self) -> usize {
        self.image_shape().dim()
    }
    /// The shape of the images it takes (stored channels-last).
    fn image_shape(&self) -> Shape;
    /// Number of classes.
    fn classes(&self) -> usize;
    /// Logits for a batch (`x.len() / input_dim` images), row-major.
    fn logits(&self, x: &[f32]) -> Vec<f32>;
    /// Logits and the gradient of the summed `loss` with respect to `x`.
    fn input_grad(&self, x: &[f32], loss: &dyn Loss) -> (Vec<f32>, Vec<f32>);
    /// `input_grad`'s gradient alone, into `grad` (whatever it held before).
    /// For attacks that take many steps: an engine that keeps its buffers
    /// hands the gradient over without allocating or copying it.
    fn input_grad_into(&self, x: &[f32], loss: &dyn Loss, grad: &mut Vec<f32>) {
        *grad = self.input_grad(x, loss).1;
    }
    /// For a model that preprocesses its input (a non-differentiable step in
    /// front of a network): the step and the network behind it, so that an
    /// attack can differentiate around the step (BPDA).
    fn preprocessed(&self) -> Option<(&dyn Preprocess, &dyn Model)> {
        None
    }
    /// For a randomized-smoothing classifier: its base model, so that its
    /// predictions can be certified.
    fn smoothed_base(&self) -> Option<&dyn Model> {
        None
    }
    /// Whether the model's outputs and gradients are random draws, so that
    /// an attack must average over its randomness (EOT).
    fn randomized(&self) -> bool {
        self.smoothed_base().is_some()
    }
}

/// A transformation applied to inputs before a network sees them.
pub trait Preprocess: Send + Sync {
    fn apply(&self, x: &[f32]) -> Vec<f32>;
}

/// A trainable image classifier over flattened images.
pub trait Classifier: Model {
    /// One step of `optimizer` on the mean of `loss` over the batch, with
    /// the optimizer state the model carries; returns that mean.
    fn train_step(&mut self, x: &[f32], loss: &dyn Loss, optimizer: &Optimizer) -> f32;
    /// An independent copy, parameters and optimizer state included.
    fn boxed_clone(&self) -> Box<dyn Classifier>;
    /// All parameters, flattened (for checks and fingerprints).
    fn parameters(&self) -> Vec<f32>;
    /// Replaces every parameter with `flat` (as `parameters()` lists them),
    /// e.g. to go back to the best checkpoint of a run; the optimizer state
    /// stays.
    fn set_parameters(&mut self, flat: &[f32]);
    /// What the optimizer remembers (to save a model with it).
    fn optimizer_state(&self) -> OptimizerState;
    /// Replaces what the optimizer remembers (a saved model's).
    fn set_optimizer_state(&mut self, state: OptimizerState);
}

/// The model families redqueen ships, as written in a tournament file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelConfig {
    /// Fully connected ReLU network.
    Mlp {
        #[serde(default = "default_hidden")]
        hidden: Vec<usize>,
        /// A safetensors file (PyTorch layout, see [`torch`]) to start
        /// from instead of pretraining.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weights: Option<PathBuf>,
    },
    /// Madry et al.'s MNIST network: two 5x5 same-padded conv layers with
    /// ReLU and 2x2 max-pooling, then a dense ReLU layer and the output.
    Cnn {
        #[serde(default = "default_channels")]
        channels: [usize; 2],
        #[serde(default = "default_dense")]
        dense: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weights: Option<PathBuf>,
    },
}

impl ModelConfig {
    /// An MLP with these hidden widths, freshly initialized.
    pub fn mlp(hidden: Vec<usize>) -> ModelConfig {
        ModelConfig::Mlp { hidden, weights: None }
    }

    /// A CNN with these channels and dense width, freshly initialized.
    pub fn cnn(channels: [usize; 2], dense: usize) -> ModelConfig {
        ModelConfig::Cnn {
            channels,
            dense,
            weights: None,
        }
    }

    /// Refuses `weights` where a model is trained from scratch by the part
    /// that owns it (`what`), since they would be ignored there.
    pub fn refuse_weights(&self, what: &str) -> crate::Result<()> {
        match self.weights() {
            Some(_) => Err(crate::Error::invalid(format!(
                "`{what}.weights`: {what} is trained from scratch; weights are read only for the tournament's `model`"
            ))),
            None => Ok(()),
        }
    }

    /// The safetensors file it starts from, if any.
    pub fn weights(&self) -> Option<&Path> {
        match self {
            ModelConfig::Mlp { weights, .. } | ModelConfig::Cnn { weights, .. } => weights.as_deref(),
        }
    }

    /// The architecture alone (what the weights are loaded into).
    pub fn without_weights(&self) -> ModelConfig {
        let mut bare = self.clone();
        match &mut bare {
            ModelConfig::Mlp { weights, .. } | ModelConfig::Cnn { weights, .. } => *weights = None,
        }
        bare
    }
}

fn default_hidden() -> Vec<usize> {
    vec![256, 256]
}
fn default_channels() -> [usize; 2] {
    [32, 64]
}
fn default_dense() -> usize {
    1024
}

/// Model names and one line of help each, for `redqueen list`.
pub const MODELS: &[(&str, &str)] = &[
    (
        "mlp",
        "fully connected ReLU network; `hidden` = layer widths; `weights` = a PyTorch safetensors file to start from",
    ),
    (
        "cnn",
        "Madry MNIST CNN: two 5x5 conv + 2x2 max-pool, dense head; `channels`, `dense`, `weights`",
    ),
];

/// Which engine runs a model. Both compute the same functions (tests hold
/// them to agree); `native` is the fast one, `dfdx` the general reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Native,
    Dfdx,
}

/// The widest layer a model file may ask for: far beyond what a CPU trains
/// in a tournament, and small enough that sizing the weights cannot overflow.
pub const MAX_WIDTH: usize = 1 << 16;

impl ModelConfig {
    /// A freshly initialized model for images of `shape`, its weights drawn
    /// from `seed` (the same weights on either engine).
    pub fn init(&self, engine: Engine, shape: Shape, classes: usize, seed: u64) -> Box<dyn Classifier> {
        match engine {
            Engine::Native => Box::new(Native::new(self, shape, classes, seed)),
            Engine::Dfdx => Box::new(Net::new(self, shape, classes, seed)),
        }
    }

    /// Why this configuration cannot be built for images of `shape` (or, with
    /// `None` before the data is read, for any images), if it cannot.
    pub fn validate(&self, shape: Option<Shape>) -> crate::Result<()> {
        match self {
            ModelConfig::Mlp { hidden, .. } => {
                // Past the limits of LIMITS.md a file is refused before
                // this; what is left to say is a zero (or a model built in code).
                if hidden.contains(&0) {
                    return Err(crate::Error::invalid(format!(
                        "every entry of `hidden` must be at least 1 (units of a layer), got {hidden:?}"
                    )));
                }
                if hidden.iter().any(|&h| h > MAX_WIDTH) {
                    return Err(crate::Error::invalid(format!(
                        "every entry of `hidden` must be at most {MAX_WIDTH}, got {hidden:?}"
                    )));
                }
            }
            ModelConfig::Cnn { channels, dense, .. } => {
                if channels.contains(&0) || *dense == 0 {
                    return Err(crate::Error::invalid(format!(
                        "every entry of `channels`, and `dense`, must be at least 1, got channels = {channels:?}, dense = {dense}"
                    )));
                }
                if channels.iter().chain([dense]).any(|&c| c > MAX_WIDTH) {
                    return Err(crate::Error::invalid(format!(
                        "`channels` and `dense` must be at most {MAX_WIDTH}"
                    )));
                }
                if let Some(Shape { rows, cols, .. }) = shape {
                    if !rows.is_multiple_of(4) || !cols.is_multiple_of(4) {
                        return Err(crate::Error::invalid(format!(
                            "the cnn pools twice by 2, so image sides must be multiples of 4 (got {rows}x{cols})"
                        )));
                    }
                }
            }
        }
        // Weights are read whole once the images' shape is known, so that a
        // file that does not fit is refused before anything runs.
        if let (Some(path), Some(shape)) = (self.weights(), shape) {
            torch::load(
                path,
                &self.without_weights(),
                Engine::Native,
                shape,
                crate::data::CLASSES,
            )?;
        }
        Ok(())
    }
}

/// Predicted labels, in batches of `batch`.
pub fn predict(model: &dyn Model, x: &[f32], batch: usize) -> Vec<u8> {
    let dim = model.input_dim();
    x.chunks(batch * dim)
        .flat_map(|chunk| argmax_rows(&model.logits(chunk), model.classes()))
        .collect()
}

/// Softmax probabilities, in batches of `batch`.
pub fn probabilities(model: &dyn Model, x: &[f32], batch: usize) -> Vec<f32> {
    let dim = model.input_dim();
    x.chunks(batch * dim)
        .flat_map(|chunk| softmax(&model.logits(chunk), model.classes()))
        .collect()
}

/// Fraction of `x` classified as `labels`.
pub fn accuracy(model: &dyn Model, x: &[f32], labels: &[u8]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let predicted = predict(model, x, 256);
    let correct = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    correct as f64 / labels.len() as f64
}
