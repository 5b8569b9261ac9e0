//! Random noise inside the budget: uniform or Gaussian. Not an attack so
//! much as the baseline that tells whether an attack's gradients matter.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, whitebox_run, AttackSpec, Signal};
use crate::registry::Describe;

use super::{random_start, standard_normal, Attack, Norm, ThreatModel};
use crate::model::Model;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Uniform in the ball (linf: every pixel in [-eps, eps]).
    #[default]
    Uniform,
    /// Gaussian with standard deviation eps/2 per pixel (linf) or
    /// eps/sqrt(d) (l2), projected onto the ball.
    Gaussian,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "super::pgd::default_norm")]
    pub norm: Norm,
    pub eps: f32,
    #[serde(default)]
    pub distribution: Distribution,
}

impl NoiseConfig {
    pub fn new(norm: Norm, eps: f32) -> Self {
        NoiseConfig {
            name: None,
            norm,
            eps,
            distribution: Distribution::Uniform,
        }
    }
}

impl AttackSpec for NoiseConfig {
    named!();
    fn label_detail(&self) -> String {
        match self.distribution {
            Distribution::Uniform => String::new(),
            Distribution::Gaussian => "-gaussian".into(),
        }
    }
    fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: self.norm,
            eps: self.eps,
        }
    }
    fn signal(&self) -> Signal {
        Signal::Search
    }
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }
    whitebox_run!();
}

impl Describe for NoiseConfig {
    const HELP: &'static str = "uniform or Gaussian random noise inside the budget: the baseline any attack must beat";
    fn example() -> Self {
        NoiseConfig::new(Norm::Linf, 0.3)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![NoiseConfig::new(Norm::Linf, 0.1)]
    }
}

impl Attack for NoiseConfig {
    fn craft(&self, model: &dyn Model, x: &[f32], _y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let dim = model.input_dim();
        let threat = self.threat();
        match self.distribution {
            Distribution::Uniform => random_start(threat, x, dim, rng),
            Distribution::Gaussian => {
                let sigma = match self.norm {
                    Norm::Linf => self.eps / 2.0,
                    Norm::L2 => self.eps / (dim as f32).sqrt(),
                    Norm::L1 => self.eps / dim as f32,
                };
                let mut adv: Vec<f32> = x.iter().map(|v| v + sigma * standard_normal(rng)).collect();
                threat.project(&mut adv, x, dim);
                adv
            }
        }
    }
}
