//! Carlini & Wagner L2: minimize ||x' - x||^2 + c * max(z_y - max_{j!=y} z_j, -kappa)
//! over x' = (tanh(w) + 1) / 2 with Adam, binary-searching c per image; the
//! smallest successful perturbation is then projected onto the budget.
//! Carlini & Wagner 2017, "Towards evaluating the robustness of neural networks".

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, whitebox_run, AttackSpec, Signal};
use crate::registry::Describe;

use super::target::target_margin;
use super::{Attack, AttackLoss, Norm, Objective, Target, ThreatModel};
use crate::model::{argmax_rows, CwMargin, Loss, Model};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CwConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The budget the result is projected onto (the attack itself is L2).
    pub eps: f32,
    /// Adam steps per value of c.
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_binary_steps")]
    pub binary_steps: usize,
    #[serde(default = "default_c")]
    pub initial_c: f32,
    /// Confidence: the logit margin a success must have.
    #[serde(default)]
    pub kappa: f32,
    #[serde(default = "default_lr")]
    pub lr: f32,
    /// `untargeted` (default), `random` or `least-likely`.
    #[serde(default)]
    pub target: Target,
}

fn default_steps() -> usize {
    50
}
fn default_binary_steps() -> usize {
    5
}
fn default_c() -> f32 {
    1.0
}
fn default_lr() -> f32 {
    0.05
}

/// The margin C&W's `f` is the negative of: away from the true label by
/// kappa (untargeted), or onto the target by kappa (targeted).
struct Margin<'a> {
    labels: &'a [u8],
    targets: &'a [u8],
    targeted: bool,
    kappa: f32,
}

impl Loss for Margin<'_> {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        if self.targeted {
            target_margin(self.targets, logits, classes, self.kappa)
        } else {
            CwMargin {
                labels: self.labels,
                kappa: self.kappa,
            }
            .eval(logits, classes)
        }
    }
}

impl CwConfig {
    pub fn new(eps: f32) -> Self {
        CwConfig {
            name: None,
            eps,
            steps: default_steps(),
            binary_steps: default_binary_steps(),
            initial_c: default_c(),
            kappa: 0.0,
            lr: default_lr(),
            target: Target::Untargeted,
        }
    }
}

impl AttackSpec for CwConfig {
    named!();
    fn required_success(&self) -> Option<f64> {
        Some(0.9)
    }
    fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: Norm::L2,
            eps: self.eps,
        }
    }
    fn validate(&self) -> crate::Result<()> {
        if self.steps == 0 || self.binary_steps == 0 {
            return Err(crate::Error::invalid("`steps` and `binary_steps` must be at least 1"));
        }
        for (key, v) in [("initial_c", self.initial_c), ("lr", self.lr)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(crate::Error::invalid(format!(
                    "`{key}` must be a positive number, got {v}"
                )));
            }
        }
        if !(self.kappa.is_finite() && self.kappa >= 0.0) {
            return Err(crate::Error::invalid(format!(
                "`kappa` must be a non-negative number, got {}",
                self.kappa
            )));
        }
        Ok(())
    }
    fn signal(&self) -> Signal {
        Signal::Margin
    }
    fn label_detail(&self) -> String {
        self.target.label_detail().to_string()
    }
    fn target(&self) -> Target {
        self.target
    }
    whitebox_run!();
}

impl Describe for CwConfig {
    const HELP: &'static str = "Carlini-Wagner L2: tanh variables, Adam, binary search over c; the minimal example is projected onto the budget (Carlini & Wagner 2017)";
    fn example() -> Self {
        CwConfig::new(2.0)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![CwConfig::new(2.0)]
    }
}

impl Attack for CwConfig {
    fn craft(&self, model: &dyn Model, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let dim = model.input_dim();
        let classes = model.classes();
        let n = y.len();
        let w0: Vec<f32> = x.iter().map(|v| ((2.0 * v - 1.0) * 0.999_999).atanh()).collect();
        // Untargeted: away from y by kappa; targeted: onto the target by kappa.
        let targets = Objective::new(AttackLoss::Cw, self.target, model, x, y, rng).classes;
        let targeted = self.target != Target::Untargeted;
        let margin = Margin {
            labels: y,
            targets: &targets,
            targeted,
            kappa: self.kappa,
        };
        let mut c = vec![self.initial_c; n];
        let (mut lower, mut upper) = (vec![0.0f32; n], vec![f32::INFINITY; n]);
        let mut best = x.to_vec();
        let mut best_l2 = vec![f32::INFINITY; n];
        let (beta1, beta2) = (0.9f32, 0.999f32);

        for _ in 0..self.binary_steps {
            let mut w = w0.clone();
            let (mut m, mut v) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
            let mut succeeded = vec![false; n];
            for t in 1..=self.steps {
                let adv: Vec<f32> = w.iter().map(|w| (w.tanh() + 1.0) / 2.0).collect();
                // d/dx' of c * f, f = -margin (margin is what an attack ascends).
                let (logits, grad_margin) = model.input_grad(&adv, &margin);
                let (margins, _) = margin.eval(&logits, classes);
                let predicted = argmax_rows(&logits, classes);
                for i in 0..n {
                    let range = i * dim..(i + 1) * dim;
                    let l2: f32 = adv[range.clone()]
                        .iter()
                        .zip(&x[range.clone()])
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    let success = if targeted {
                        predicted[i] == targets[i]
                    } else {
                        predicted[i] != y[i]
                    };
                    if success && margins[i] >= self.kappa && l2 < best_l2[i] {
                        best_l2[i] = l2;
                        best[range.clone()].copy_from_slice(&adv[range.clone()]);
                    }
                    if success && margins[i] >= self.kappa {
                        succeeded[i] = true;
                    }
                    for p in range {
                        let g_adv = 2.0 * (adv[p] - x[p]) - c[i] * grad_margin[p];
                        let g = g_adv * (1.0 - w[p].tanh().powi(2)) / 2.0;
                        m[p] = beta1 * m[p] + (1.0 - beta1) * g;
                        v[p] = beta2 * v[p] + (1.0 - beta2) * g * g;
                        let m_hat = m[p] / (1.0 - beta1.powi(t as i32));
                        let v_hat = v[p] / (1.0 - beta2.powi(t as i32));
                        w[p] -= self.lr * m_hat / (v_hat.sqrt() + 1e-8);
                    }
                }
            }
            // Binary search on c, per image.
            for i in 0..n {
                if succeeded[i] {
                    upper[i] = upper[i].min(c[i]);
                } else {
                    lower[i] = lower[i].max(c[i]);
                }
                c[i] = if upper[i].is_finite() {
                    (lower[i] + upper[i]) / 2.0
                } else {
                    (c[i] * 10.0).min(1e10)
                };
            }
        }
        self.threat().project(&mut best, x, dim);
        best
    }
}
