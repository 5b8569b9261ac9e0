//! Randomized smoothing: training under Gaussian noise, prediction by the
//! class the base model picks most often under noise, and certification of
//! an l2 radius. Cohen, Rosenfeld & Kolter 2019, "Certified adversarial
//! robustness via randomized smoothing".

use std::sync::Mutex;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ContinuousCDF, Normal};

use super::adversarial::{default_batch, default_opt};
use super::{sample_train, validate_training, Defense, DefenseSpec, RoundData};
use crate::attack::standard_normal;
use crate::error::Error;
use crate::model::{
    argmax_rows, Batch, Classifier, Examples, Loss, Model, Optimizer, OptimizerConfig, Step, TrainConfig, Trainer,
};
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmoothingConfig {
    /// Noise level, for training and for prediction (Cohen et al. use 0.12 to 1.0).
    #[serde(default = "default_sigma")]
    pub sigma: f32,
    /// Noisy training steps per round.
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_opt")]
    pub optimizer: OptimizerConfig,
    /// Noise draws behind every deployed prediction (a Monte Carlo vote).
    #[serde(default = "default_votes")]
    pub votes: usize,
    /// Certification: draws that pick the top class...
    #[serde(default = "default_n0")]
    pub n0: usize,
    /// ...and draws that bound its probability (Cohen et al. use 100,000;
    /// fewer keep a round short and only make the bound more cautious).
    #[serde(default = "default_n")]
    pub n: usize,
    /// The bound holds with probability 1 - alpha.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

fn default_sigma() -> f32 {
    0.5
}
fn default_steps() -> usize {
    100
}
fn default_votes() -> usize {
    32
}
fn default_n0() -> usize {
    100
}
fn default_n() -> usize {
    1000
}
fn default_alpha() -> f64 {
    0.001
}

impl Describe for SmoothingConfig {
    const HELP: &'static str =
        "Gaussian-noise training, smoothed prediction and certified l2 radii (Cohen et al. 2019)";
    fn example() -> Self {
        super::with_defaults()
    }
}

impl DefenseSpec for SmoothingConfig {
    /// The deployed model: `inner` under noise, its noise drawn from `seed`.
    fn deploy(&self, inner: Box<dyn Classifier>, seed: u64) -> Box<dyn Classifier> {
        Box::new(Smoothed {
            inner,
            sigma: self.sigma,
            votes: self.votes,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        })
    }

    fn init(&self) -> Box<dyn Defense> {
        Box::new(self.clone())
    }

    /// Certifies the base model behind the smoothing `deploy` put it under.
    fn certified_accuracy(
        &self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        radius: f32,
        rng: &mut ChaCha8Rng,
    ) -> Option<f64> {
        Some(self.certify(model.smoothed_base()?, x, y, radius, rng))
    }

    fn work_per_round(&self, _craft: usize) -> usize {
        self.steps * self.batch + 200 * self.n
    }

    fn validate(&self) -> crate::Result<()> {
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return Err(Error::invalid(format!(
                "`sigma` must be a positive number, got {}",
                self.sigma
            )));
        }
        if self.votes == 0 || self.n0 == 0 || self.n == 0 {
            return Err(Error::invalid("`votes`, `n0` and `n` must be at least 1"));
        }
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(Error::invalid(format!(
                "`alpha` must be in (0, 0.5), got {}",
                self.alpha
            )));
        }
        validate_training(("steps", self.steps), self.batch, &self.optimizer)
    }
}

impl SmoothingConfig {
    /// Certified accuracy at l2 `radius` of the smoothed classifier over
    /// `base`: the share of images whose certified prediction (CERTIFY of
    /// Cohen et al.) is the true label with a certified radius of at least
    /// `radius`. Abstentions count as wrong.
    pub fn certify(&self, base: &dyn Model, x: &[f32], y: &[u8], radius: f32, rng: &mut ChaCha8Rng) -> f64 {
        let dim = base.input_dim();
        let classes = base.classes();
        let mut certified = 0;
        for (image, &label) in x.chunks(dim).zip(y) {
            let guess = argmax(&counts(base, image, self.sigma, self.n0, classes, rng));
            let top = counts(base, image, self.sigma, self.n, classes, rng)[guess];
            let p_lower = clopper_pearson_lower(top, self.n, self.alpha);
            if p_lower > 0.5 && guess == label as usize {
                let r = self.sigma as f64 * standard_normal_quantile(p_lower);
                if r >= radius as f64 {
                    certified += 1;
                }
            }
        }
        certified as f64 / y.len().max(1) as f64
    }
}

impl Defense for SmoothingConfig {
    /// Noisy training: the deployed model adds the noise in `train_step`.
    fn update(&mut self, model: &mut dyn Classifier, round: &RoundData<'_>, rng: &mut ChaCha8Rng) {
        let mut make = |_: &dyn Classifier, step: &Step, rng: &mut ChaCha8Rng| {
            let (x, y) = sample_train(round.train, step.batch, rng);
            Batch::labeled(x, y)
        };
        let training = TrainConfig::steps(self.steps, self.batch, self.optimizer.clone());
        Trainer::new(training).fit(model, Examples::Made(&mut make), rng);
    }
}

/// How often the base model picks each class under `samples` noise draws.
fn counts(
    base: &dyn Model,
    image: &[f32],
    sigma: f32,
    samples: usize,
    classes: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let mut counts = vec![0; classes];
    let chunk = 250;
    for start in (0..samples).step_by(chunk) {
        let m = chunk.min(samples - start);
        let noisy: Vec<f32> = (0..m)
            .flat_map(|_| {
                image
                    .iter()
                    .map(|v| v + sigma * standard_normal(rng))
                    .collect::<Vec<_>>()
            })
            .collect();
        for c in argmax_rows(&base.logits(&noisy), classes) {
            counts[c as usize] += 1;
        }
    }
    counts
}

fn argmax(counts: &[usize]) -> usize {
    (0..counts.len())
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .unwrap_or(0)
}

/// One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial
/// proportion after `k` successes in `n` trials.
pub fn clopper_pearson_lower(k: usize, n: usize, alpha: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let beta = Beta::new(k as f64, (n - k + 1) as f64).expect("positive shape parameters");
    beta.inverse_cdf(alpha)
}

pub fn standard_normal_quantile(p: f64) -> f64 {
    Normal::new(0.0, 1.0).expect("unit normal").inverse_cdf(p)
}

/// A classifier deployed under randomized smoothing.
pub struct Smoothed {
    inner: Box<dyn Classifier>,
    sigma: f32,
    votes: usize,
    /// Noise for predictions, gradients and training; one stream per match.
    rng: Mutex<ChaCha8Rng>,
}

impl Smoothed {
    fn noisy(&self, x: &[f32], copies: usize) -> Vec<f32> {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let dim = self.inner.input_dim();
        let mut out = Vec::with_capacity(x.len() * copies);
        for image in x.chunks(dim) {
            for _ in 0..copies {
                out.extend(image.iter().map(|v| v + self.sigma * standard_normal(&mut rng)));
            }
        }
        out
    }
}

impl Model for Smoothed {
    fn image_shape(&self) -> crate::data::Shape {
        self.inner.image_shape()
    }
    fn classes(&self) -> usize {
        self.inner.classes()
    }
    /// The smoothed classifier's scores: log vote shares over `votes` draws.
    fn logits(&self, x: &[f32]) -> Vec<f32> {
        let classes = self.classes();
        let noisy = self.noisy(x, self.votes);
        let picks = argmax_rows(&self.inner.logits(&noisy), classes);
        let mut out = Vec::with_capacity(picks.len() / self.votes * classes);
        for votes in picks.chunks(self.votes) {
            let mut share = vec![0.0f32; classes];
            for &c in votes {
                share[c as usize] += 1.0 / self.votes as f32;
            }
            out.extend(share.iter().map(|s| (s + 1e-3).ln()));
        }
        out
    }
    /// The base model's gradient at one noise draw: random, so an attacker
    /// averages it over draws (EOT) to attack the smoothed classifier.
    fn input_grad(&self, x: &[f32], loss: &dyn Loss) -> (Vec<f32>, Vec<f32>) {
        self.inner.input_grad(&self.noisy(x, 1), loss)
    }
    fn smoothed_base(&self) -> Option<&dyn Model> {
        Some(self.inner.as_ref())
    }
}

impl Classifier for Smoothed {
    /// Gaussian data augmentation, as Cohen et al. train.
    fn train_step(&mut self, x: &[f32], loss: &dyn Loss, opt: &Optimizer) -> f32 {
        let noisy = self.noisy(x, 1);
        self.inner.train_step(&noisy, loss, opt)
    }
    fn boxed_clone(&self) -> Box<dyn Classifier> {
        let rng = self.rng.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Box::new(Smoothed {
            inner: self.inner.boxed_clone(),
            sigma: self.sigma,
            votes: self.votes,
            rng: Mutex::new(rng),
        })
    }
    fn parameters(&self) -> Vec<f32> {
        self.inner.parameters()
    }

    fn set_parameters(&mut self, flat: &[f32]) {
        self.inner.set_parameters(flat)
    }

    fn optimizer_state(&self) -> crate::model::OptimizerState {
        self.inner.optimizer_state()
    }

    fn set_optimizer_state(&mut self, state: crate::model::OptimizerState) {
        self.inner.set_optimizer_state(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clopper_pearson_and_the_normal_quantile_match_known_values() {
        // All 1000 draws agree: the bound is alpha^(1/n).
        let lower = clopper_pearson_lower(1000, 1000, 0.001);
        assert!((lower - 0.001f64.powf(1.0 / 1000.0)).abs() < 1e-6, "{lower}");
        assert!(clopper_pearson_lower(500, 1000, 0.001) < 0.5);
        assert_eq!(clopper_pearson_lower(0, 10, 0.05), 0.0);
        assert!((standard_normal_quantile(0.975) - 1.959964).abs() < 1e-5);
    }

    #[test]
    fn a_constant_base_model_is_certified_to_the_largest_radius_the_draws_allow() {
        // Zero weights: every draw votes class 0, so p_lower = alpha^(1/n).
        let base = crate::model::ModelConfig::mlp(vec![]).init(
            crate::model::Engine::Native,
            crate::data::Shape::gray(2, 2),
            3,
            0,
        );
        let zero = zero_model(base);
        let config: SmoothingConfig = toml::from_str("sigma = 1.0\nn = 1000").unwrap();
        let x = vec![0.5; 4 * 5];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let largest = standard_normal_quantile(0.001f64.powf(1.0 / 1000.0));
        let at = |r: f32, labels: &[u8], rng: &mut ChaCha8Rng| config.certify(zero.as_ref(), &x, labels, r, rng);
        assert_eq!(at(largest as f32 - 0.01, &[0; 5], &mut rng), 1.0);
        assert_eq!(at(largest as f32 + 0.01, &[0; 5], &mut rng), 0.0);
        assert_eq!(at(0.1, &[1; 5], &mut rng), 0.0, "a wrong prediction is never certified");
    }

    fn zero_model(mut model: Box<dyn Classifier>) -> Box<dyn Classifier> {
        // One SGD step with weight decay 1 and lr 1 zeroes every parameter.
        let opt = OptimizerConfig::sgd(1.0, 0.0, 1.0);
        struct Zero;
        impl Loss for Zero {
            fn eval(&self, logits: &[f32], _: usize) -> (Vec<f32>, Vec<f32>) {
                (vec![0.0; logits.len()], vec![0.0; logits.len()])
            }
        }
        model.train_step(&[0.0; 4], &Zero, &crate::model::Optimizer::constant(opt));
        assert!(model.parameters().iter().all(|&p| p == 0.0));
        model
    }
}
