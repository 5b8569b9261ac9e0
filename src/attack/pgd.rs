//! PGD: iterated gradient steps projected back onto the threat model, from a
//! random start, keeping the best of several restarts. Madry et al. 2018.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, whitebox_run, AttackSpec, Signal};
use crate::registry::Describe;

use super::{ascend_projected, fooled, random_start, Attack, AttackLoss, Norm, Objective, Target, ThreatModel};
use crate::model::{Loss, Model};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgdConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "default_norm")]
    pub norm: Norm,
    pub eps: f32,
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Step length; default 2.5 * eps / steps (Madry et al.'s rule of thumb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f32>,
    #[serde(default = "default_restarts")]
    pub restarts: usize,
    #[serde(default = "default_true")]
    pub random_start: bool,
    #[serde(default)]
    pub loss: AttackLoss,
    /// `untargeted` (default), `random` or `least-likely`.
    #[serde(default)]
    pub target: Target,
}

pub(crate) fn default_norm() -> Norm {
    Norm::Linf
}
fn default_steps() -> usize {
    10
}
fn default_restarts() -> usize {
    1
}
fn default_true() -> bool {
    true
}

impl PgdConfig {
    pub fn new(norm: Norm, eps: f32) -> Self {
        PgdConfig {
            name: None,
            norm,
            eps,
            steps: default_steps(),
            step_size: None,
            restarts: 1,
            random_start: true,
            loss: AttackLoss::Ce,
            target: Target::Untargeted,
        }
    }

    pub fn step(&self) -> f32 {
        self.step_size.unwrap_or(2.5 * self.eps / self.steps.max(1) as f32)
    }
}

impl AttackSpec for PgdConfig {
    named!();
    fn required_success(&self) -> Option<f64> {
        Some(0.9)
    }
    fn label_detail(&self) -> String {
        let mut detail = self.target.label_detail().to_string();
        if self.loss == AttackLoss::Cw {
            detail.push_str("-cw");
        }
        if self.steps != default_steps() {
            detail.push_str(&format!("-{}steps", self.steps));
        }
        if self.restarts != 1 {
            detail.push_str(&format!("-{}restarts", self.restarts));
        }
        detail
    }
    fn validate(&self) -> crate::Result<()> {
        if self.steps == 0 {
            return Err(crate::Error::invalid("`steps` must be at least 1"));
        }
        if self.restarts == 0 {
            return Err(crate::Error::invalid("`restarts` must be at least 1"));
        }
        if let Some(s) = self.step_size {
            if !(s.is_finite() && s > 0.0) {
                return Err(crate::Error::invalid(format!(
                    "`step_size` must be a positive number, got {s}"
                )));
            }
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
        if self.loss == AttackLoss::Cw {
            Signal::Margin
        } else {
            Signal::Gradient
        }
    }
    fn target(&self) -> Target {
        self.target
    }
    fn scale_budget(&mut self, factor: f32) -> bool {
        self.eps *= factor;
        self.step_size = self.step_size.map(|s| s * factor);
        true
    }
    whitebox_run!();
}

impl Describe for PgdConfig {
    const HELP: &'static str = "projected gradient descent with random start and restarts, CE or CW-margin loss (Madry et al. 2018); linf, l2, or l1 by sparse L1 descent (Tramer & Boneh 2019)";
    fn example() -> Self {
        PgdConfig::new(Norm::Linf, 0.3)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![
            PgdConfig::new(Norm::Linf, 0.1),
            {
                let mut cw = PgdConfig::new(Norm::Linf, 0.1);
                cw.loss = AttackLoss::Cw;
                cw
            },
            PgdConfig::new(Norm::L2, 2.0),
            {
                let mut l1 = PgdConfig::new(Norm::L1, 10.0);
                l1.steps = 50;
                l1
            },
        ]
    }
}

impl Attack for PgdConfig {
    fn craft(&self, model: &dyn Model, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let dim = model.input_dim();
        let threat = self.threat();
        let loss = Objective::new(self.loss, self.target, model, x, y, rng);
        let mut best: Option<(Vec<f32>, Vec<bool>, Vec<f32>)> = None;
        let mut grad = Vec::new();
        for _ in 0..self.restarts {
            let mut adv = if self.random_start {
                random_start(threat, x, dim, rng)
            } else {
                x.to_vec()
            };
            for _ in 0..self.steps {
                model.input_grad_into(&adv, &loss, &mut grad);
                ascend_projected(threat, &mut adv, &grad, self.step(), x, dim);
            }
            if self.restarts == 1 {
                return adv;
            }
            let is_fooled = fooled(model, &adv, y);
            let (values, _) = loss.eval(&model.logits(&adv), model.classes());
            best = Some(match best {
                None => (adv, is_fooled, values),
                Some((mut b_adv, mut b_fooled, mut b_values)) => {
                    // Per image: a fooling example beats one that does not;
                    // otherwise the higher loss wins.
                    for i in 0..y.len() {
                        let better =
                            (is_fooled[i] && !b_fooled[i]) || (is_fooled[i] == b_fooled[i] && values[i] > b_values[i]);
                        if better {
                            b_adv[i * dim..(i + 1) * dim].copy_from_slice(&adv[i * dim..(i + 1) * dim]);
                            b_fooled[i] = is_fooled[i];
                            b_values[i] = values[i];
                        }
                    }
                    (b_adv, b_fooled, b_values)
                }
            });
        }
        best.map(|(adv, _, _)| adv).unwrap_or_else(|| x.to_vec())
    }
}
