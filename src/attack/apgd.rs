//! APGD: PGD without a step-size to tune. The step starts at 2 eps and is
//! halved at checkpoints when progress stalls, with momentum, restarting
//! from the best point found. Croce & Hein 2020, "Reliable evaluation of
//! adversarial robustness with an ensemble of diverse parameter-free attacks".

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, whitebox_run, AttackSpec, Signal};
use crate::registry::Describe;

use super::{ascend, random_start, Attack, AttackLoss, Norm, Objective, Target, ThreatModel};
use crate::model::{argmax_rows, CrossEntropy, Dlr, Loss, Model, TargetedDlr};

/// APGD's two losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApgdLoss {
    #[default]
    Ce,
    /// Difference of logits ratio: scale-invariant, robust to masking.
    Dlr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApgdConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "super::pgd::default_norm")]
    pub norm: Norm,
    pub eps: f32,
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default)]
    pub loss: ApgdLoss,
    /// The fraction of improving steps below which the step size is halved.
    #[serde(default = "default_rho")]
    pub rho: f32,
    /// `untargeted` (default), `random` or `least-likely`; a targeted run
    /// ascends the negated cross-entropy of the target, or the targeted DLR.
    #[serde(default)]
    pub target: Target,
}

fn default_steps() -> usize {
    20
}
fn default_rho() -> f32 {
    0.75
}

impl ApgdConfig {
    pub fn new(norm: Norm, eps: f32) -> Self {
        ApgdConfig {
            name: None,
            norm,
            eps,
            steps: default_steps(),
            loss: ApgdLoss::Ce,
            rho: default_rho(),
            target: Target::Untargeted,
        }
    }
}

/// The iterations at which the step size may be halved: p_0 = 0,
/// p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06).
pub fn checkpoints(steps: usize) -> Vec<usize> {
    let mut p = vec![0.0f64, 0.22];
    while *p.last().expect("non-empty") < 1.0 {
        let (a, b) = (p[p.len() - 2], p[p.len() - 1]);
        p.push(b + (b - a - 0.03).max(0.06));
    }
    p[1..]
        .iter()
        .filter(|&&v| v < 1.0)
        .map(|v| (v * steps as f64 - 1e-9).ceil() as usize)
        .collect()
}

impl AttackSpec for ApgdConfig {
    named!();
    fn required_success(&self) -> Option<f64> {
        Some(0.9)
    }
    fn validate(&self) -> crate::Result<()> {
        if self.norm == Norm::L1 {
            return Err(crate::Error::invalid("apgd supports `norm = \"linf\"` or `\"l2\"`"));
        }
        if self.steps == 0 {
            return Err(crate::Error::invalid("`steps` must be at least 1"));
        }
        if !(self.rho > 0.0 && self.rho <= 1.0) {
            return Err(crate::Error::invalid(format!(
                "`rho` must be in (0, 1], got {}",
                self.rho
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
        if self.loss == ApgdLoss::Dlr {
            Signal::Margin
        } else {
            Signal::Gradient
        }
    }
    fn label_detail(&self) -> String {
        let loss = if self.loss == ApgdLoss::Dlr { "-dlr" } else { "" };
        format!("{loss}{}", self.target.label_detail())
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

impl Describe for ApgdConfig {
    const HELP: &'static str =
        "auto-PGD: step size halved when progress stalls, momentum, CE or DLR loss (Croce & Hein 2020); linf or l2";
    fn example() -> Self {
        ApgdConfig::new(Norm::Linf, 0.3)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![ApgdConfig::new(Norm::Linf, 0.1), {
            let mut dlr = ApgdConfig::new(Norm::Linf, 0.1);
            dlr.loss = ApgdLoss::Dlr;
            dlr
        }]
    }
}

impl Attack for ApgdConfig {
    fn craft(&self, model: &dyn Model, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        // Targets are drawn once per batch; untargeted, `objective.classes` is `y`.
        let objective = Objective::new(AttackLoss::Ce, self.target, model, x, y, rng);
        self.craft_with(model, x, y, objective, rng)
    }
}

impl ApgdConfig {
    /// APGD towards one given target class per image (`targets`), whatever
    /// its `target` mode: AutoAttack's APGD-T, which picks the targets itself.
    pub(crate) fn craft_towards(
        &self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        targets: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Vec<f32> {
        let objective = Objective::towards(AttackLoss::Ce, targets.to_vec());
        self.craft_with(model, x, y, objective, rng)
    }

    /// Algorithm 1 of Croce & Hein 2020 as one loop, so that it reads
    /// against the paper line by line, for the targets of `objective`.
    fn craft_with(
        &self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        objective: Objective,
        rng: &mut ChaCha8Rng,
    ) -> Vec<f32> {
        let dim = model.input_dim();
        let n = y.len();
        let threat = self.threat();
        let targeted = objective.targeted();
        let targets = objective.classes.clone();
        let loss: Box<dyn Loss + '_> = match (self.loss, targeted) {
            (ApgdLoss::Dlr, false) => Box::new(Dlr { labels: y }),
            (ApgdLoss::Dlr, true) => Box::new(TargetedDlr {
                labels: y,
                targets: &targets,
            }),
            (ApgdLoss::Ce, false) => Box::new(CrossEntropy { labels: y }),
            (ApgdLoss::Ce, true) => Box::new(objective),
        };
        // Loss values, gradients, and which images succeed: misclassified,
        // or (targeted) classified as their target.
        let evaluate = |adv: &[f32]| -> (Vec<f32>, Vec<f32>, Vec<bool>) {
            let (logits, grad) = model.input_grad(adv, loss.as_ref());
            let wrong = argmax_rows(&logits, model.classes())
                .iter()
                .zip(y.iter().zip(&targets))
                .map(|(p, (y, t))| if targeted { p == t } else { p != y })
                .collect();
            (loss.eval(&logits, model.classes()).0, grad, wrong)
        };
        let image = |i: usize| i * dim..(i + 1) * dim;

        let mut current = random_start(threat, x, dim, rng);
        let (mut f_current, mut grad, wrong) = evaluate(&current);
        // As Croce & Hein's code: besides the highest-loss point, keep the
        // first point that fools the model, which the loss may not rank first.
        let mut fooling = current.clone();
        let mut fooled = wrong;
        let mut previous = current.clone();
        let (mut best, mut f_best) = (current.clone(), f_current.clone());
        let mut eta = vec![2.0 * self.eps; n];
        let mut improved = vec![0usize; n];
        let mut f_best_at_checkpoint = f_best.clone();
        let mut halved_at_checkpoint = vec![false; n];
        let checkpoints = checkpoints(self.steps);
        let mut last_checkpoint = 0;

        for k in 0..self.steps {
            // z = P(x_k + eta d), then x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1})).
            let mut z = current.clone();
            for i in 0..n {
                ascend(self.norm, &mut z[image(i)], &grad[image(i)], eta[i], dim);
            }
            threat.project(&mut z, x, dim);
            let alpha = if k == 0 { 1.0 } else { 0.75 };
            let mut next: Vec<f32> = (0..current.len())
                .map(|p| current[p] + alpha * (z[p] - current[p]) + (1.0 - alpha) * (current[p] - previous[p]))
                .collect();
            threat.project(&mut next, x, dim);
            let (f_next, grad_next, wrong) = evaluate(&next);
            for i in 0..n {
                if wrong[i] && !fooled[i] {
                    fooled[i] = true;
                    fooling[image(i)].copy_from_slice(&next[image(i)]);
                }
                if f_next[i] > f_current[i] {
                    improved[i] += 1;
                }
                if f_next[i] > f_best[i] {
                    f_best[i] = f_next[i];
                    best[image(i)].copy_from_slice(&next[image(i)]);
                }
            }
            previous = std::mem::replace(&mut current, next);
            f_current = f_next;
            grad = grad_next;

            if checkpoints.contains(&(k + 1)) {
                let span = (k + 1 - last_checkpoint) as f32;
                let mut restarted = false;
                for i in 0..n {
                    let stalled = (improved[i] as f32) < self.rho * span;
                    let flat = !halved_at_checkpoint[i] && f_best_at_checkpoint[i] == f_best[i];
                    halved_at_checkpoint[i] = stalled || flat;
                    if stalled || flat {
                        eta[i] /= 2.0;
                        current[image(i)].copy_from_slice(&best[image(i)]);
                        previous[image(i)].copy_from_slice(&best[image(i)]);
                        restarted = true;
                    }
                    improved[i] = 0;
                    f_best_at_checkpoint[i] = f_best[i];
                }
                if restarted {
                    (f_current, grad, _) = evaluate(&current);
                }
                last_checkpoint = k + 1;
            }
        }
        for i in 0..n {
            if fooled[i] {
                best[image(i)].copy_from_slice(&fooling[image(i)]);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_follow_the_paper() {
        // p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 for 100 steps.
        assert_eq!(checkpoints(100), vec![22, 41, 57, 70, 80, 87, 93, 99]);
    }
}
