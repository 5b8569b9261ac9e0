//! Fast adversarial training: FGSM from a uniform random start with step
//! 1.25 eps, one gradient per training step. Wong, Rice & Kolter 2020, "Fast
//! is better than free: revisiting adversarial training".

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adversarial::{default_batch, default_opt};
use super::{sample_train, validate_training, Defense, DefenseSpec, RoundData};
use crate::attack::{Attack, AttackConfig, FgsmConfig, Norm, PgdConfig, ThreatModel};
use crate::error::Error;
use crate::model::metrics::{correct, fraction};
use crate::model::{Classifier, EarlyStop, OptimizerConfig, TrainConfig};
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastAtConfig {
    /// linf budget it trains at (the paper's 0.3 on MNIST; at most the rules').
    #[serde(default = "default_eps")]
    pub eps: f32,
    /// FGSM step; default 1.25 eps, the paper's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f32>,
    /// Training steps per round.
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_opt")]
    pub optimizer: OptimizerConfig,
    /// Catastrophic overfitting is declared when accuracy under FGSM exceeds
    /// accuracy under PGD by this much on held-aside training images.
    #[serde(default = "default_overfit_gap")]
    pub overfit_gap: f64,
    /// Steps (of each round's training) over which the budget grows
    /// linearly from 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eps_warmup: usize,
    /// Wong et al.'s early stopping within each round's training: PGD
    /// accuracy on training images held out of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<EarlyStop>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_eps() -> f32 {
    0.3
}
fn default_steps() -> usize {
    100
}
fn default_overfit_gap() -> f64 {
    0.3
}

/// Training images the overfitting check attacks after every round.
const CHECK_IMAGES: usize = 256;

impl FastAtConfig {
    pub fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: Norm::Linf,
            eps: self.eps,
        }
    }

    /// The one-step attack it trains on: PGD with one step from a random start.
    pub fn attack(&self) -> PgdConfig {
        let mut attack = PgdConfig::new(Norm::Linf, self.eps);
        attack.steps = 1;
        attack.step_size = Some(self.alpha.unwrap_or(1.25 * self.eps));
        attack
    }
}

impl Describe for FastAtConfig {
    const HELP: &'static str =
        "FGSM adversarial training from a random start (Wong et al. 2020); flags catastrophic overfitting";
    fn example() -> Self {
        super::with_defaults()
    }
}

impl DefenseSpec for FastAtConfig {
    fn init(&self) -> Box<dyn Defense> {
        Box::new(FastAt::new(self.clone()))
    }

    fn training_attacks(&self) -> Vec<AttackConfig> {
        vec![AttackConfig::Pgd(self.attack())]
    }

    fn work_per_round(&self, _craft: usize) -> usize {
        self.steps * self.batch * 2
    }

    fn validate(&self) -> crate::Result<()> {
        let invalid = |message: String| Err(Error::invalid(message));
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return invalid(format!("`eps` must be a positive number, got {}", self.eps));
        }
        if let Some(alpha) = self.alpha.filter(|a| !(a.is_finite() && *a > 0.0)) {
            return invalid(format!("`alpha` must be a positive number, got {alpha}"));
        }
        if !(0.0..=1.0).contains(&self.overfit_gap) {
            return invalid(format!("`overfit_gap` must be in [0, 1], got {}", self.overfit_gap));
        }
        // The held-out images are capped at half of each round's training
        // images when it runs; here only the warm-up and the settings.
        crate::config::schema::check_adversarial_recipe(
            None,
            self.eps_warmup,
            self.early_stop.as_ref(),
            self.steps,
            usize::MAX,
        )?;
        validate_training(("steps", self.steps), self.batch, &self.optimizer)
    }
}

/// Fast-AT with the outcome of its last overfitting check.
pub struct FastAt {
    pub config: FastAtConfig,
    note: Option<String>,
}

impl FastAt {
    pub fn new(config: FastAtConfig) -> FastAt {
        FastAt { config, note: None }
    }
}

impl Defense for FastAt {
    fn update(&mut self, model: &mut dyn Classifier, round: &RoundData<'_>, rng: &mut ChaCha8Rng) {
        let attack = AttackConfig::Pgd(self.config.attack());
        let mut training = TrainConfig::steps(self.config.steps, self.config.batch, self.config.optimizer.clone());
        training.eps_warmup = self.config.eps_warmup;
        training.early_stop = self.config.early_stop.clone();
        let fitted = super::pgd_at::train_against(model, &attack, round.train, training, rng, &|| false);
        // The check of Wong et al.: PGD accuracy collapsing while FGSM
        // accuracy stays high means the model learned to defeat FGSM only.
        let (x, y) = sample_train(round.train, CHECK_IMAGES, rng);
        let fgsm = FgsmConfig::new(Norm::Linf, self.config.eps);
        let pgd = PgdConfig::new(Norm::Linf, self.config.eps);
        let fgsm_acc = fraction(&correct(model, &fgsm.craft(model, &x, &y, rng), &y));
        let pgd_acc = fraction(&correct(model, &pgd.craft(model, &x, &y, rng), &y));
        let overfit = fgsm_acc - pgd_acc >= self.config.overfit_gap;
        let kept = match fitted.kept {
            Some((step, score)) => format!(
                "; early stopping kept step {step} of {} (held-out PGD acc {score:.3})",
                self.config.steps
            ),
            None => String::new(),
        };
        self.note = Some(format!(
            "{}FGSM acc {fgsm_acc:.3}, PGD acc {pgd_acc:.3} on {} training images{kept}",
            if overfit { "catastrophic overfitting: " } else { "" },
            y.len()
        ));
    }

    fn note(&mut self) -> Option<String> {
        self.note.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_training_attack_is_one_step_of_one_and_a_quarter_eps_from_a_random_start() {
        let config: FastAtConfig = toml::from_str("eps = 0.2").unwrap();
        let attack = config.attack();
        assert_eq!((attack.steps, attack.random_start), (1, true));
        assert!((attack.step() - 0.25).abs() < 1e-6);
        assert!(config.validate().is_ok());
        let bad: FastAtConfig = toml::from_str("overfit_gap = 2.0").unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("overfit_gap"));
    }
}
