//! FGSM: one step of size eps along the gradient's sign (linf) or its
//! normalized direction (l2). Goodfellow, Shlens & Szegedy 2015.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, whitebox_run, AttackSpec, Signal};
use crate::registry::Describe;

use super::{ascend, Attack, AttackLoss, Norm, Objective, Target, ThreatModel};
use crate::model::Model;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FgsmConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "super::pgd::default_norm")]
    pub norm: Norm,
    pub eps: f32,
    #[serde(default)]
    pub loss: AttackLoss,
    /// `untargeted` (default), `random` or `least-likely`.
    #[serde(default)]
    pub target: Target,
}

impl FgsmConfig {
    pub fn new(norm: Norm, eps: f32) -> Self {
        FgsmConfig {
            name: None,
            norm,
            eps,
            loss: AttackLoss::Ce,
            target: Target::Untargeted,
        }
    }
}

impl AttackSpec for FgsmConfig {
    named!();
    fn required_success(&self) -> Option<f64> {
        Some(0.9)
    }
    fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: self.norm,
            eps: self.eps,
        }
    }
    fn signal(&self) -> Signal {
        Signal::Gradient
    }
    fn label_detail(&self) -> String {
        self.target.label_detail().to_string()
    }
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }
    fn target(&self) -> Target {
        self.target
    }
    fn scale_budget(&mut self, factor: f32) -> bool {
        self.eps *= factor;
        true
    }
    whitebox_run!();
}

impl Describe for FgsmConfig {
    const HELP: &'static str = "fast gradient sign method, one step of size eps (Goodfellow et al. 2015); linf or l2";
    fn example() -> Self {
        FgsmConfig::new(Norm::Linf, 0.3)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![FgsmConfig::new(Norm::Linf, 0.1)]
    }
}

impl Attack for FgsmConfig {
    fn craft(&self, model: &dyn Model, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let dim = model.input_dim();
        let objective = Objective::new(self.loss, self.target, model, x, y, rng);
        let (_, grad) = model.input_grad(x, &objective);
        let mut adv = x.to_vec();
        ascend(self.norm, &mut adv, &grad, self.eps, dim);
        self.threat().project(&mut adv, x, dim);
        adv
    }
}
