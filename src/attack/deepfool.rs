//! DeepFool: repeatedly linearize the classifier and step to the nearest
//! linearized decision boundary, overshooting slightly; a minimal-norm
//! attack, projected onto the budget at the end. Moosavi-Dezfooli et al.
//! 2016, "DeepFool: a simple and accurate method to fool deep neural networks".

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, whitebox_run, AttackSpec, Signal};
use crate::registry::Describe;

use super::{Attack, Norm, ThreatModel};
use crate::model::{argmax_rows, Loss, Model};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepFoolConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "default_norm")]
    pub norm: Norm,
    pub eps: f32,
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_overshoot")]
    pub overshoot: f32,
}

fn default_norm() -> Norm {
    Norm::L2
}
fn default_steps() -> usize {
    50
}
fn default_overshoot() -> f32 {
    0.02
}

/// `z_k - z_y` for every example: its gradient is one VJP.
struct LogitGap<'a> {
    class: usize,
    labels: &'a [u8],
}

impl Loss for LogitGap<'_> {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let mut grad = vec![0.0; logits.len()];
        let mut values = Vec::with_capacity(self.labels.len());
        for ((z, g), &y) in logits.chunks(classes).zip(grad.chunks_mut(classes)).zip(self.labels) {
            values.push(z[self.class] - z[y as usize]);
            g[self.class] += 1.0;
            g[y as usize] -= 1.0;
        }
        (values, grad)
    }
}

impl DeepFoolConfig {
    pub fn new(norm: Norm, eps: f32) -> Self {
        DeepFoolConfig {
            name: None,
            norm,
            eps,
            steps: default_steps(),
            overshoot: default_overshoot(),
        }
    }
}

impl AttackSpec for DeepFoolConfig {
    named!();
    fn required_success(&self) -> Option<f64> {
        Some(0.9)
    }
    fn validate(&self) -> crate::Result<()> {
        if self.norm == Norm::L1 {
            return Err(crate::Error::invalid("deepfool supports `norm = \"l2\"` or `\"linf\"`"));
        }
        if self.steps == 0 {
            return Err(crate::Error::invalid("`steps` must be at least 1"));
        }
        if !(self.overshoot.is_finite() && self.overshoot >= 0.0) {
            return Err(crate::Error::invalid(format!(
                "`overshoot` must be a non-negative number, got {}",
                self.overshoot
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
        Signal::Margin
    }
    whitebox_run!();
}

impl Describe for DeepFoolConfig {
    const HELP: &'static str = "DeepFool: steps to the nearest linearized decision boundary, then projected onto the budget (Moosavi-Dezfooli et al. 2016); l2 or linf";
    fn example() -> Self {
        DeepFoolConfig::new(Norm::L2, 2.0)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![DeepFoolConfig::new(Norm::Linf, 0.1), DeepFoolConfig::new(Norm::L2, 2.0)]
    }
}

impl Attack for DeepFoolConfig {
    fn craft(&self, model: &dyn Model, x: &[f32], y: &[u8], _rng: &mut ChaCha8Rng) -> Vec<f32> {
        let dim = model.input_dim();
        let classes = model.classes();
        let n = y.len();
        let mut total = vec![0.0f32; x.len()];
        let candidate = |total: &[f32], i: usize| -> Vec<f32> {
            (0..dim)
                .map(|p| (x[i * dim + p] + (1.0 + self.overshoot) * total[i * dim + p]).clamp(0.0, 1.0))
                .collect()
        };
        let mut active: Vec<usize> = (0..n).collect();
        for _ in 0..self.steps {
            let batch: Vec<f32> = active.iter().flat_map(|&i| candidate(&total, i)).collect();
            let labels: Vec<u8> = active.iter().map(|&i| y[i]).collect();
            let predicted = argmax_rows(&model.logits(&batch), classes);
            let keep: Vec<usize> = (0..active.len()).filter(|&a| predicted[a] == labels[a]).collect();
            if keep.is_empty() {
                break;
            }
            let batch: Vec<f32> = keep
                .iter()
                .flat_map(|&a| batch[a * dim..(a + 1) * dim].to_vec())
                .collect();
            let labels: Vec<u8> = keep.iter().map(|&a| labels[a]).collect();
            active = keep.iter().map(|&a| active[a]).collect();
            // For every class k != y: the gap f_k and its gradient w_k.
            let mut best: Vec<(f32, Vec<f32>)> = vec![(f32::INFINITY, Vec::new()); active.len()];
            for class in 0..classes {
                let gap = LogitGap { class, labels: &labels };
                let (logits, grads) = model.input_grad(&batch, &gap);
                let (values, _) = gap.eval(&logits, classes);
                for (a, slot) in best.iter_mut().enumerate() {
                    if labels[a] as usize == class {
                        continue;
                    }
                    let w = &grads[a * dim..(a + 1) * dim];
                    let dual = match self.norm {
                        Norm::Linf => w.iter().map(|v| v.abs()).sum::<f32>(),
                        _ => w.iter().map(|v| v * v).sum::<f32>().sqrt(),
                    };
                    let distance = values[a].abs() / dual.max(1e-12);
                    // A zero gradient says nothing about where the boundary is.
                    if dual > 0.0 && distance < slot.0 {
                        *slot = (distance, w.to_vec());
                    }
                }
            }
            // Step to the nearest linearized boundary.
            for (a, (distance, w)) in best.into_iter().enumerate() {
                if w.is_empty() {
                    continue;
                }
                let i = active[a];
                let step = distance + 1e-4;
                let r = &mut total[i * dim..(i + 1) * dim];
                match self.norm {
                    // Zero coordinates stay put (`signum` of 0.0 is 1.0).
                    Norm::Linf => r
                        .iter_mut()
                        .zip(&w)
                        .for_each(|(r, v)| *r += step * v.signum() * (*v != 0.0) as u8 as f32),
                    _ => {
                        let length = w.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                        r.iter_mut().zip(&w).for_each(|(r, v)| *r += step * v / length);
                    }
                }
            }
        }
        let mut adv: Vec<f32> = (0..n).flat_map(|i| candidate(&total, i)).collect();
        self.threat().project(&mut adv, x, dim);
        adv
    }
}
