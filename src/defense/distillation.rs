//! Defensive distillation: a teacher trained at temperature T, a student
//! trained on the teacher's soft labels at T, deployed at temperature 1.
//! Papernot et al. 2016, "Distillation as a defense to adversarial
//! perturbations against deep neural networks". Its robustness is gradient
//! masking: the deployed logits are about T times larger, the softmax
//! saturates and cross-entropy gradients vanish (Carlini & Wagner 2016).

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adversarial::{default_batch, default_opt};
use super::{sample_train, validate_training, Defense, DefenseSpec, RoundData};
use crate::error::Error;
use crate::model::{softmax, Classifier, Examples, Loss, OptimizerConfig, TrainConfig, TrainSet, Trainer};
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillationConfig {
    /// The paper's 100 on MNIST.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Training images the teacher and the student learn from.
    #[serde(default = "default_images")]
    pub images: usize,
    /// Epochs for the teacher, and again for the student.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_opt")]
    pub optimizer: OptimizerConfig,
}

fn default_temperature() -> f32 {
    100.0
}
fn default_images() -> usize {
    3000
}
fn default_epochs() -> usize {
    3
}

impl Describe for DistillationConfig {
    const HELP: &'static str =
        "defensive distillation at temperature T, deployed at 1 (Papernot et al. 2016); masks gradients";
    fn example() -> Self {
        super::with_defaults()
    }
}

impl DefenseSpec for DistillationConfig {
    fn init(&self) -> Box<dyn Defense> {
        Box::new(Distillation::new(self.clone()))
    }

    fn work_per_round(&self, _craft: usize) -> usize {
        4 * self.epochs * self.images
    }

    fn validate(&self) -> crate::Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 1.0) {
            return Err(Error::invalid(format!(
                "`temperature` must be at least 1, got {}",
                self.temperature
            )));
        }
        if self.images == 0 {
            return Err(Error::invalid("`images` must be at least 1"));
        }
        validate_training(("epochs", self.epochs), self.batch, &self.optimizer)
    }
}

impl DistillationConfig {
    /// Train `model` at temperature T against per-image targets.
    fn train_at_temperature(&self, model: &mut dyn Classifier, x: &[f32], targets: &[f32], rng: &mut ChaCha8Rng) {
        let training = TrainConfig::epochs(self.epochs, self.batch, self.optimizer.clone());
        Trainer::new(training)
            .loss(|batch, step| {
                step(&TemperedCrossEntropy {
                    targets: &batch.targets,
                    temperature: self.temperature,
                })
            })
            .fit(model, Examples::Set(TrainSet::with_targets(x, targets)), rng);
    }
}

/// Distils once, in the first round; afterwards the student stays as it is.
pub struct Distillation {
    pub config: DistillationConfig,
    done: bool,
}

impl Distillation {
    pub fn new(config: DistillationConfig) -> Distillation {
        Distillation { config, done: false }
    }
}

impl Defense for Distillation {
    fn update(&mut self, model: &mut dyn Classifier, round: &RoundData<'_>, rng: &mut ChaCha8Rng) {
        if self.done {
            return;
        }
        self.done = true;
        let classes = model.classes();
        let (x, y) = sample_train(round.train, self.config.images, rng);
        let hard: Vec<f32> = y
            .iter()
            .flat_map(|&l| (0..classes).map(move |j| if j == l as usize { 1.0 } else { 0.0 }))
            .collect();
        // Teacher and student both start from the pretrained model.
        let mut teacher = model.boxed_clone();
        self.config.train_at_temperature(teacher.as_mut(), &x, &hard, rng);
        let scaled: Vec<f32> = teacher.logits(&x).iter().map(|z| z / self.config.temperature).collect();
        let soft = softmax(&scaled, classes);
        self.config.train_at_temperature(model, &x, &soft, rng);
    }
}

/// Cross-entropy of `softmax(z / T)` against target distributions, with its
/// gradient multiplied by T (as Hinton et al. do) so that steps keep their
/// size at high temperature.
struct TemperedCrossEntropy<'a> {
    targets: &'a [f32],
    temperature: f32,
}

impl Loss for TemperedCrossEntropy<'_> {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let scaled: Vec<f32> = logits.iter().map(|z| z / self.temperature).collect();
        let p = softmax(&scaled, classes);
        let losses = p
            .chunks(classes)
            .zip(self.targets.chunks(classes))
            .map(|(p, q)| -p.iter().zip(q).map(|(p, q)| q * p.max(1e-30).ln()).sum::<f32>())
            .collect();
        // d/dz of CE(softmax(z / T), q) is (p - q) / T; times T.
        let grad = p.iter().zip(self.targets).map(|(p, q)| p - q).collect();
        (losses, grad)
    }
}
