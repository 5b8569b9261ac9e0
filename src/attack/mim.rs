//! MI-FGSM: iterative gradient steps along an accumulated, L1-normalized
//! gradient (momentum), which escapes poor local maxima and transfers
//! better. Dong et al. 2018, "Boosting Adversarial Attacks with Momentum".

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, whitebox_run, AttackSpec, Signal};
use crate::registry::Describe;

use super::{ascend, Attack, AttackLoss, Norm, Objective, Target, ThreatModel};
use crate::model::Model;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "super::pgd::default_norm")]
    pub norm: Norm,
    pub eps: f32,
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Momentum decay mu (the paper's 1.0).
    #[serde(default = "default_decay")]
    pub decay: f32,
    #[serde(default)]
    pub loss: AttackLoss,
    /// `untargeted` (default), `random` or `least-likely`.
    #[serde(default)]
    pub target: Target,
}

fn default_steps() -> usize {
    10
}
fn default_decay() -> f32 {
    1.0
}

impl MimConfig {
    pub fn new(norm: Norm, eps: f32) -> Self {
        MimConfig {
            name: None,
            norm,
            eps,
            steps: default_steps(),
            decay: default_decay(),
            loss: AttackLoss::Ce,
            target: Target::Untargeted,
        }
    }
}

impl AttackSpec for MimConfig {
    named!();
    fn required_success(&self) -> Option<f64> {
        Some(0.9)
    }
    fn validate(&self) -> crate::Result<()> {
        if self.norm == Norm::L1 {
            return Err(crate::Error::invalid("mim supports `norm = \"linf\"` or `\"l2\"`"));
        }
        if self.steps == 0 {
            return Err(crate::Error::invalid("`steps` must be at least 1"));
        }
        if !(self.decay.is_finite() && self.decay >= 0.0) {
            return Err(crate::Error::invalid(format!(
                "`decay` must be a non-negative number, got {}",
                self.decay
            )));
        }
        Ok(())
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
    fn target(&self) -> Target {
        self.target
    }
    fn scale_budget(&mut self, factor: f32) -> bool {
        self.eps *= factor;
        true
    }
    whitebox_run!();
}

impl Describe for MimConfig {
    const HELP: &'static str =
        "momentum iterative FGSM: steps along an accumulated L1-normalized gradient (Dong et al. 2018); linf or l2";
    fn example() -> Self {
        MimConfig::new(Norm::Linf, 0.3)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![MimConfig::new(Norm::Linf, 0.1)]
    }
}

impl Attack for MimConfig {
    fn craft(&self, model: &dyn Model, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let dim = model.input_dim();
        let loss = Objective::new(self.loss, self.target, model, x, y, rng);
        // The paper's step: eps / steps, so the steps can just reach the budget.
        let step = self.eps / self.steps as f32;
        let mut adv = x.to_vec();
        let mut momentum = vec![0.0f32; x.len()];
        let mut grad = Vec::new();
        for _ in 0..self.steps {
            model.input_grad_into(&adv, &loss, &mut grad);
            for (g_acc, g) in momentum.chunks_mut(dim).zip(grad.chunks(dim)) {
                let l1 = g.iter().map(|v| v.abs()).sum::<f32>().max(1e-12);
                for (m, v) in g_acc.iter_mut().zip(g) {
                    *m = self.decay * *m + v / l1;
                }
            }
            ascend(self.norm, &mut adv, &momentum, step, dim);
            self.threat().project(&mut adv, x, dim);
        }
        adv
    }
}
