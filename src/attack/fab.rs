//! FAB: the fast adaptive boundary attack, a minimum-norm attack. Each
//! iteration linearizes the classifier, projects both the current point and
//! the clean image onto the nearest linearized decision hyperplane inside
//! the pixel box, and steps towards a mix of the two that is biased to stay
//! close to the clean image; once across the boundary it steps back towards
//! the clean image. A short search along the segment to the clean image
//! ends it. FAB-T linearizes only the boundary to one target class at a
//! time. Croce & Hein 2020, "Minimally distorted adversarial examples with
//! a fast adaptive boundary attack" (ICML); FAB-T as in AutoAttack.
//!
//! The smallest adversarial example found is then projected onto the budget
//! (like C&W and DeepFool), so the referee always accepts it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, standard_normal, whitebox_run, Attack, AttackSpec, Norm, Signal, ThreatModel};
use crate::model::{argmax_rows, Loss, Model};
use crate::registry::Describe;
use crate::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FabConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The norm FAB minimizes: `linf` (default) or `l2`.
    #[serde(default = "super::pgd::default_norm")]
    pub norm: Norm,
    /// The budget the minimal example is projected onto; restarts start at
    /// random points within half of it.
    pub eps: f32,
    /// Iterations per restart (and per target class); AutoAttack's 100.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Runs per target class: the first from the clean image, the others
    /// from random points; AutoAttack's standard version uses 1.
    #[serde(default = "default_restarts")]
    pub restarts: usize,
    /// The largest weight of the step from the clean image (the bias
    /// towards it); the paper's 0.1.
    #[serde(default = "default_alpha_max")]
    pub alpha_max: f32,
    /// Overshoot past the linearized boundary; the paper's 1.05.
    #[serde(default = "default_eta")]
    pub eta: f32,
    /// How far back towards the clean image a point that fools the model
    /// is moved; the paper's 0.9.
    #[serde(default = "default_beta")]
    pub beta: f32,
    /// FAB-T: run once per each of this many most likely classes other than
    /// the true one, keeping per image the smallest success (AutoAttack's
    /// standard version uses 9). Absent: untargeted FAB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<usize>,
}

fn default_steps() -> usize {
    100
}
fn default_restarts() -> usize {
    1
}
fn default_alpha_max() -> f32 {
    0.1
}
fn default_eta() -> f32 {
    1.05
}
fn default_beta() -> f32 {
    0.9
}

/// Steps of the final search along the segment from the clean image to the
/// best example (the reference implementation's 3).
const FINAL_SEARCH_STEPS: usize = 3;

impl FabConfig {
    pub fn new(norm: Norm, eps: f32) -> Self {
        FabConfig {
            name: None,
            norm,
            eps,
            steps: default_steps(),
            restarts: default_restarts(),
            alpha_max: default_alpha_max(),
            eta: default_eta(),
            beta: default_beta(),
            targets: None,
        }
    }
}

impl AttackSpec for FabConfig {
    named!();
    fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: self.norm,
            eps: self.eps,
        }
    }
    /// It steps along logit differences, which do not saturate.
    fn signal(&self) -> Signal {
        Signal::Margin
    }
    /// What distinguishes this FAB in its label, after `fab-<norm>-<eps>`.
    fn label_detail(&self) -> String {
        let mut detail = String::new();
        if let Some(k) = self.targets {
            detail.push_str(&format!("-t{k}"));
        }
        if self.steps != default_steps() {
            detail.push_str(&format!("-{}steps", self.steps));
        }
        if self.restarts != default_restarts() {
            detail.push_str(&format!("-{}restarts", self.restarts));
        }
        for (key, value, default) in [
            ("alpha", self.alpha_max, default_alpha_max()),
            ("eta", self.eta, default_eta()),
            ("beta", self.beta, default_beta()),
        ] {
            if value != default {
                detail.push_str(&format!("-{key}{value}"));
            }
        }
        detail
    }
    fn validate(&self) -> crate::Result<()> {
        if self.norm == Norm::L1 {
            return Err(Error::invalid("`norm` must be \"linf\" or \"l2\" for fab, got \"l1\""));
        }
        if self.steps == 0 {
            return Err(Error::invalid("`steps` must be at least 1"));
        }
        if self.restarts == 0 {
            return Err(Error::invalid("`restarts` must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.alpha_max) {
            return Err(Error::invalid(format!(
                "`alpha_max` must be between 0 and 1, got {}",
                self.alpha_max
            )));
        }
        if !(self.eta.is_finite() && self.eta >= 1.0) {
            return Err(Error::invalid(format!(
                "`eta` must be a number of at least 1, got {}",
                self.eta
            )));
        }
        if !(self.beta > 0.0 && self.beta < 1.0) {
            return Err(Error::invalid(format!(
                "`beta` must be between 0 and 1 (exclusive), got {}",
                self.beta
            )));
        }
        // Every dataset has CLASSES classes, so each image has one fewer to
        // target: more would silently run the same targets.
        let other_classes = crate::data::CLASSES - 1;
        if let Some(k) = self.targets.filter(|&k| k == 0 || k > other_classes) {
            return Err(Error::invalid(format!(
                "`targets` must be between 1 and {other_classes} (the classes other than an image's own), or absent for untargeted fab; got {k}"
            )));
        }
        Ok(())
    }
    /// FAB-T counts any misclassification as success, as AutoAttack does.
    fn required_success(&self) -> Option<f64> {
        Some(0.9)
    }
    fn scale_budget(&mut self, factor: f32) -> bool {
        self.eps *= factor;
        true
    }
    whitebox_run!();
}

impl Describe for FabConfig {
    const HELP: &'static str = "fast adaptive boundary: minimum-norm steps to the nearest linearized boundary biased towards the clean image, then projected onto the budget; `targets = k` is FAB-T (Croce & Hein 2020); linf or l2";
    fn example() -> Self {
        FabConfig::new(Norm::Linf, 0.3)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0), untargeted
    /// and FAB-T over the 9 other classes.
    fn variants() -> Vec<Self> {
        let fab_t = |norm, eps| FabConfig {
            targets: Some(9),
            ..FabConfig::new(norm, eps)
        };
        vec![
            FabConfig::new(Norm::Linf, 0.1),
            FabConfig::new(Norm::L2, 2.0),
            fab_t(Norm::Linf, 0.1),
            fab_t(Norm::L2, 2.0),
        ]
    }
}

/// `f_j - f_y` per image, `j` (`towards`) and `y` (`labels`) per image: the
/// function FAB linearizes, its summed gradient one backward pass.
struct LogitDifference<'a> {
    towards: &'a [u8],
    labels: &'a [u8],
}

impl Loss for LogitDifference<'_> {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let mut grad = vec![0.0; logits.len()];
        let mut values = Vec::with_capacity(self.labels.len());
        let rows = logits.chunks(classes).zip(grad.chunks_mut(classes));
        for ((z, g), (&j, &y)) in rows.zip(self.towards.iter().zip(self.labels)) {
            let (j, y) = (j as usize, y as usize);
            values.push(z[j] - z[y]);
            g[j] += 1.0;
            g[y] -= 1.0;
        }
        (values, grad)
    }
}

/// One image's linearized boundary: `gap + w . (z - point) = 0`, where
/// `gap` is `f_j - f_y` at the point where it was linearized.
struct Boundary {
    gap: f32,
    w: Vec<f32>,
}

/// The smallest examples found so far, per image of the attacked batch.
struct Best {
    adv: Vec<f32>,
    norm: Vec<f32>,
}

impl Attack for FabConfig {
    fn craft(&self, model: &dyn Model, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let dim = model.input_dim();
        let classes = model.classes();
        // Only correctly classified images are attacked; the others already fool.
        let logits = model.logits(x);
        let predicted = argmax_rows(&logits, classes);
        let attacked: Vec<usize> = (0..y.len()).filter(|&i| predicted[i] == y[i]).collect();
        let x0: Vec<f32> = attacked
            .iter()
            .flat_map(|&i| x[i * dim..(i + 1) * dim].to_vec())
            .collect();
        let y0: Vec<u8> = attacked.iter().map(|&i| y[i]).collect();
        let logits0: Vec<f32> = attacked
            .iter()
            .flat_map(|&i| logits[i * classes..(i + 1) * classes].to_vec())
            .collect();
        let mut best = Best {
            adv: x0.clone(),
            norm: vec![f32::INFINITY; y0.len()],
        };
        let runs: Vec<Option<Vec<u8>>> = match self.targets {
            None => vec![None],
            Some(k) => likely_targets(&logits0, &y0, classes, k)
                .into_iter()
                .map(Some)
                .collect(),
        };
        for targets in &runs {
            for restart in 0..self.restarts {
                let start = if restart == 0 {
                    x0.clone()
                } else {
                    self.random_start(&x0, &best.norm, dim, rng)
                };
                self.run_once(model, &x0, &y0, targets.as_deref(), start, &mut best);
            }
        }
        final_search(model, self.norm, &x0, &y0, &mut best);
        let mut adv = x.to_vec();
        for (a, &i) in attacked.iter().enumerate() {
            if best.norm[a].is_finite() {
                adv[i * dim..(i + 1) * dim].copy_from_slice(&best.adv[a * dim..(a + 1) * dim]);
            }
        }
        self.threat().project(&mut adv, x, dim);
        adv
    }
}

impl FabConfig {
    /// A random point around each image at half of the smaller of the budget
    /// and the best norm found so far, in the attack's norm (the paper's
    /// restarts).
    fn random_start(&self, x0: &[f32], best: &[f32], dim: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let mut start = x0.to_vec();
        for (s, &best) in start.chunks_mut(dim).zip(best) {
            let direction: Vec<f32> = match self.norm {
                Norm::L2 => (0..dim).map(|_| standard_normal(rng)).collect(),
                _ => (0..dim).map(|_| rng.gen_range(-1.0f32..=1.0)).collect(),
            };
            let length = self.norm.of(&direction).max(1e-12);
            let radius = 0.5 * best.min(self.eps);
            for (v, d) in s.iter_mut().zip(direction) {
                *v = (*v + radius * d / length).clamp(0.0, 1.0);
            }
        }
        start
    }

    /// One run of `steps` iterations from `x1`, towards `targets` (FAB-T) or
    /// the nearest boundary (FAB), recording every success smaller than the
    /// best so far.
    fn run_once(
        &self,
        model: &dyn Model,
        x0: &[f32],
        y: &[u8],
        targets: Option<&[u8]>,
        mut x1: Vec<f32>,
        best: &mut Best,
    ) {
        let dim = model.input_dim();
        for _ in 0..self.steps {
            let boundaries = linearize(model, self.norm, &x1, y, targets);
            for (i, boundary) in boundaries.iter().enumerate() {
                let range = i * dim..(i + 1) * dim;
                let next = self.biased_step(&x1[range.clone()], &x0[range.clone()], boundary);
                x1[range].copy_from_slice(&next);
            }
            let predicted = argmax_rows(&model.logits(&x1), model.classes());
            for i in (0..y.len()).filter(|&i| predicted[i] != y[i]) {
                let range = i * dim..(i + 1) * dim;
                let delta: Vec<f32> = x1[range.clone()]
                    .iter()
                    .zip(&x0[range.clone()])
                    .map(|(a, b)| a - b)
                    .collect();
                let size = self.norm.of(&delta);
                if size < best.norm[i] {
                    best.norm[i] = size;
                    best.adv[range.clone()].copy_from_slice(&x1[range.clone()]);
                }
                // Across the boundary: back towards the clean image.
                for ((v, &x), d) in x1[range.clone()].iter_mut().zip(&x0[range]).zip(delta) {
                    *v = x + self.beta * d;
                }
            }
        }
    }

    /// The paper's step for one image: project both the current point `x1`
    /// and the clean image `x0` onto the boundary inside the box, overshoot
    /// both by `eta`, and mix them with weight `alpha` on the clean image's
    /// projection, larger the farther `x1` is from the boundary relative to
    /// `x0` (capped at `alpha_max`).
    fn biased_step(&self, x1: &[f32], x0: &[f32], boundary: &Boundary) -> Vec<f32> {
        let w = &boundary.w;
        let from_current = project_onto_hyperplane(self.norm, x1, w, -boundary.gap);
        let moved: f32 = w.iter().zip(x1.iter().zip(x0)).map(|(w, (a, b))| w * (a - b)).sum();
        let from_clean = project_onto_hyperplane(self.norm, x0, w, moved - boundary.gap);
        let a1 = self.norm.of(&from_current).max(1e-8);
        let a2 = self.norm.of(&from_clean).max(1e-8);
        let alpha = (a1 / (a1 + a2)).clamp(0.0, self.alpha_max);
        (0..x1.len())
            .map(|p| {
                let current = x1[p] + self.eta * from_current[p];
                let clean = x0[p] + self.eta * from_clean[p];
                (current * (1.0 - alpha) + clean * alpha).clamp(0.0, 1.0)
            })
            .collect()
    }
}

/// Per rank `r < k`, per image, the `r+1`-th most likely class other than
/// its label by the clean `logits` (ties to the lower class); `k` is capped
/// at the number of other classes.
pub(crate) fn likely_targets(logits: &[f32], y: &[u8], classes: usize, k: usize) -> Vec<Vec<u8>> {
    let ranked: Vec<Vec<u8>> = logits
        .chunks(classes)
        .zip(y)
        .map(|(z, &label)| {
            let mut order: Vec<u8> = (0..classes as u8).filter(|&j| j != label).collect();
            order.sort_by(|&a, &b| z[b as usize].total_cmp(&z[a as usize]).then(a.cmp(&b)));
            order
        })
        .collect();
    (0..k.min(classes.saturating_sub(1)))
        .map(|r| ranked.iter().map(|order| order[r]).collect())
        .collect()
}

/// Per image of `x1`, the linearized boundary FAB steps to: towards its
/// target (FAB-T), or the nearest in the attack's norm over every class
/// other than its label (one backward pass per class, as in the paper).
fn linearize(model: &dyn Model, norm: Norm, x1: &[f32], y: &[u8], targets: Option<&[u8]>) -> Vec<Boundary> {
    let dim = model.input_dim();
    let classes = model.classes();
    let boundary_of = |i: usize, values: &[f32], grads: &[f32]| Boundary {
        gap: values[i],
        w: grads[i * dim..(i + 1) * dim].to_vec(),
    };
    if let Some(targets) = targets {
        let (values, grads) = logit_differences(model, x1, targets, y);
        return (0..y.len()).map(|i| boundary_of(i, &values, &grads)).collect();
    }
    let mut nearest: Vec<(f32, Boundary)> = (0..y.len())
        .map(|_| {
            (
                f32::INFINITY,
                Boundary {
                    gap: 0.0,
                    w: vec![0.0; dim],
                },
            )
        })
        .collect();
    for class in 0..classes {
        let towards = vec![class as u8; y.len()];
        let (values, grads) = logit_differences(model, x1, &towards, y);
        for (i, slot) in nearest.iter_mut().enumerate() {
            if y[i] as usize == class {
                continue;
            }
            let w = &grads[i * dim..(i + 1) * dim];
            // The distance to the hyperplane in the attack's norm: the gap
            // over the dual norm of its normal.
            let dual = match norm {
                Norm::Linf => Norm::L1.of(w),
                _ => Norm::L2.of(w),
            };
            let distance = values[i].abs() / (1e-12 + dual);
            if distance < slot.0 {
                *slot = (distance, boundary_of(i, &values, &grads));
            }
        }
    }
    nearest.into_iter().map(|(_, boundary)| boundary).collect()
}

/// `f_j - f_y` per image at `x` and its input gradient.
fn logit_differences(model: &dyn Model, x: &[f32], towards: &[u8], y: &[u8]) -> (Vec<f32>, Vec<f32>) {
    let loss = LogitDifference { towards, labels: y };
    let (logits, grads) = model.input_grad(x, &loss);
    let (values, _) = loss.eval(&logits, model.classes());
    (values, grads)
}

/// The smallest step `d` (in `norm`: linf or l2) from `point` with
/// `w . d = gap` that keeps `point + d` inside [0,1]. When the box does not
/// reach the hyperplane, the step to the box corner that comes closest.
///
/// Each coordinate moves in the direction that closes the gap, by
/// `min(lambda * scale_i, room_i)` (scale 1 for linf, `|w_i|` for l2: the
/// optimality conditions of either problem), so the gap closed grows
/// piecewise linearly in `lambda`: [`multiplier`] finds where it reaches
/// `|gap|`.
pub(crate) fn project_onto_hyperplane(norm: Norm, point: &[f32], w: &[f32], gap: f32) -> Vec<f32> {
    let mut step = vec![0.0; point.len()];
    if gap == 0.0 || !gap.is_finite() {
        return step;
    }
    let up = |w: f32| (w > 0.0) == (gap > 0.0);
    let room = |p: f32, w: f32| if up(w) { 1.0 - p } else { p };
    let scale = |w: f32| if norm == Norm::L2 { w.abs() } else { 1.0 };
    let pieces: Vec<(f32, f32)> = point
        .iter()
        .zip(w)
        .filter(|&(_, &w)| w != 0.0)
        .map(|(&p, &w)| (room(p, w).max(0.0) / scale(w), w.abs() * scale(w)))
        .collect();
    let lambda = multiplier(pieces, gap.abs());
    for ((s, &p), &w) in step.iter_mut().zip(point).zip(w) {
        if w != 0.0 {
            let size = (lambda * scale(w)).min(room(p, w).max(0.0));
            *s = if up(w) { size } else { -size };
        }
    }
    step
}

/// The smallest `lambda` with `sum_i slope_i * min(lambda, end_i) = target`
/// over `pieces` of `(end_i, slope_i)`; infinite when even every piece run
/// to its end falls short.
fn multiplier(mut pieces: Vec<(f32, f32)>, target: f32) -> f32 {
    pieces.sort_by(|a, b| a.0.total_cmp(&b.0));
    let target = target as f64;
    let mut slope: f64 = pieces.iter().map(|&(_, s)| s as f64).sum();
    let (mut closed, mut at) = (0.0f64, 0.0f64);
    for (end, piece_slope) in pieces {
        let reach = closed + slope * (end as f64 - at);
        if reach >= target && slope > 0.0 {
            return (at + (target - closed) / slope) as f32;
        }
        closed = reach;
        at = end as f64;
        slope -= piece_slope as f64;
    }
    f32::INFINITY
}

/// The final search (the reference implementation's linear approximation
/// search): a few steps of regula falsi on `f_y - f_j` along the segment
/// from the clean image to the best example, keeping the end that fools
/// the model; it can only shrink the perturbation.
fn final_search(model: &dyn Model, norm: Norm, x0: &[f32], y: &[u8], best: &mut Best) {
    let dim = model.input_dim();
    let classes = model.classes();
    let found: Vec<usize> = (0..y.len()).filter(|&i| best.norm[i].is_finite()).collect();
    if found.is_empty() {
        return;
    }
    let gather = |from: &[f32], width: usize| -> Vec<f32> {
        found
            .iter()
            .flat_map(|&i| from[i * width..(i + 1) * width].to_vec())
            .collect()
    };
    let labels: Vec<usize> = found.iter().map(|&i| y[i] as usize).collect();
    let (mut inside, mut outside) = (gather(x0, dim), gather(&best.adv, dim));
    let (mut z_in, mut z_out) = (model.logits(&inside), model.logits(&outside));
    for _ in 0..FINAL_SEARCH_STEPS {
        let predicted_out = argmax_rows(&z_out, classes);
        let mut between = vec![0.0; inside.len()];
        for (a, &label) in labels.iter().enumerate() {
            let other = predicted_out[a] as usize;
            let row = |z: &[f32], c: usize| z[a * classes + c];
            let (gap_in, gap_out) = (
                row(&z_in, label) - row(&z_in, other),
                row(&z_out, other) - row(&z_out, label),
            );
            let mut t = gap_in / (gap_in + gap_out + 1e-10);
            if !(0.0..=1.0).contains(&t) {
                t = 1.0;
            }
            for p in a * dim..(a + 1) * dim {
                between[p] = inside[p] * (1.0 - t) + outside[p] * t;
            }
        }
        let z_between = model.logits(&between);
        let predicted = argmax_rows(&z_between, classes);
        for (a, &label) in labels.iter().enumerate() {
            let (side, z_side) = if predicted[a] as usize == label {
                (&mut inside, &mut z_in)
            } else {
                (&mut outside, &mut z_out)
            };
            side[a * dim..(a + 1) * dim].copy_from_slice(&between[a * dim..(a + 1) * dim]);
            z_side[a * classes..(a + 1) * classes].copy_from_slice(&z_between[a * classes..(a + 1) * classes]);
        }
    }
    for (a, &i) in found.iter().enumerate() {
        let range = i * dim..(i + 1) * dim;
        let delta: Vec<f32> = outside[a * dim..(a + 1) * dim]
            .iter()
            .zip(&x0[range.clone()])
            .map(|(a, b)| a - b)
            .collect();
        best.norm[i] = norm.of(&delta);
        best.adv[range].copy_from_slice(&outside[a * dim..(a + 1) * dim]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::AttackConfig;
    use crate::model::{Engine, ModelConfig};
    use rand::SeedableRng;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-5)
    }

    #[test]
    fn linf_projection_onto_hyperplane_and_box() {
        // Inside the box: every moving coordinate by the same lambda.
        let d = project_onto_hyperplane(Norm::Linf, &[0.5, 0.5], &[1.0, 1.0], 0.4);
        assert!(close(&d, &[0.2, 0.2]), "{d:?}");
        // Signs follow w and the gap; a zero weight stays put.
        let d = project_onto_hyperplane(Norm::Linf, &[0.5, 0.5, 0.5], &[1.0, -2.0, 0.0], -0.6);
        assert!(close(&d, &[-0.2, 0.2, 0.0]), "{d:?}");
        // The first coordinate stops at the box (room 0.1), the second
        // makes up the rest: 0.1 + 0.3 = 0.4.
        let d = project_onto_hyperplane(Norm::Linf, &[0.9, 0.5], &[1.0, 1.0], 0.4);
        assert!(close(&d, &[0.1, 0.3]), "{d:?}");
        // Out of reach: the box corner that comes closest.
        let d = project_onto_hyperplane(Norm::Linf, &[0.9, 0.2], &[1.0, -1.0], 5.0);
        assert!(close(&d, &[0.1, -0.2]), "{d:?}");
    }

    #[test]
    fn l2_projection_onto_hyperplane_and_box() {
        // Inside the box: along w, gap / |w|^2 = 1 / 25.
        let d = project_onto_hyperplane(Norm::L2, &[0.5, 0.5], &[3.0, 4.0], 1.0);
        assert!(close(&d, &[0.12, 0.16]), "{d:?}");
        // The first coordinate is clipped at 0.05; the second carries the
        // rest of the gap: 0.05 + 0.35 = 0.4.
        let d = project_onto_hyperplane(Norm::L2, &[0.95, 0.5], &[1.0, 1.0], 0.4);
        assert!(close(&d, &[0.05, 0.35]), "{d:?}");
        // Unequal weights, both pointing down: the second coordinate stops
        // at the box after 0.1 (closing 0.2 of the gap), the first closes
        // the remaining 0.7 alone.
        let d = project_onto_hyperplane(Norm::L2, &[0.1, 0.9], &[-1.0, -2.0], -0.9);
        assert!(close(&d, &[0.7, 0.1]), "{d:?}");
        assert_eq!(project_onto_hyperplane(Norm::L2, &[0.3], &[1.0], 0.0), vec![0.0]);
    }

    /// `logits = W x + b`, so every distance to a boundary has a closed form.
    struct Linear {
        w: Vec<f32>,
        b: Vec<f32>,
        dim: usize,
    }

    impl Model for Linear {
        fn image_shape(&self) -> crate::data::Shape {
            crate::data::Shape::gray(1, self.dim)
        }
        fn classes(&self) -> usize {
            self.b.len()
        }
        fn logits(&self, x: &[f32]) -> Vec<f32> {
            x.chunks(self.dim)
                .flat_map(|x| {
                    self.w
                        .chunks(self.dim)
                        .zip(&self.b)
                        .map(|(w, b)| w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>() + b)
                        .collect::<Vec<_>>()
                })
                .collect()
        }
        fn input_grad(&self, x: &[f32], loss: &dyn Loss) -> (Vec<f32>, Vec<f32>) {
            let logits = self.logits(x);
            let (_, g) = loss.eval(&logits, self.classes());
            let grad = g
                .chunks(self.classes())
                .flat_map(|g| {
                    (0..self.dim)
                        .map(|p| {
                            g.iter()
                                .enumerate()
                                .map(|(c, g)| g * self.w[c * self.dim + p])
                                .sum::<f32>()
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            (logits, grad)
        }
    }

    fn linear() -> Linear {
        let dim = 6;
        let w = vec![
            1.0, -0.5, 0.3, 0.8, -0.2, 0.4, //
            -0.6, 0.9, 0.2, -0.4, 0.7, -0.1, //
            0.2, 0.1, -0.9, 0.3, 0.5, -0.7,
        ];
        Linear {
            w,
            b: vec![0.0, 0.4, 0.3],
            dim,
        }
    }

    /// The exact distance from `x` (class `y`) to the nearest boundary of a
    /// linear model, when the box is not in the way: the gap over the dual
    /// norm of the difference of weight rows.
    fn closed_form(model: &Linear, x: &[f32], y: usize, norm: Norm) -> f32 {
        let z = model.logits(x);
        (0..model.classes())
            .filter(|&j| j != y)
            .map(|j| {
                let w: Vec<f32> = (0..model.dim)
                    .map(|p| model.w[j * model.dim + p] - model.w[y * model.dim + p])
                    .collect();
                let dual = if norm == Norm::Linf {
                    Norm::L1.of(&w)
                } else {
                    Norm::L2.of(&w)
                };
                (z[y] - z[j]) / dual
            })
            .fold(f32::INFINITY, f32::min)
    }

    #[test]
    fn finds_the_closed_form_distance_on_a_linear_model() {
        let model = linear();
        let x = vec![0.55, 0.45, 0.5, 0.52, 0.48, 0.5];
        let y = argmax_rows(&model.logits(&x), 3);
        for norm in [Norm::Linf, Norm::L2] {
            let expected = closed_form(&model, &x, y[0] as usize, norm);
            assert!(
                expected > 0.0 && expected < 0.2,
                "the fixture point is too far: {expected}"
            );
            for targets in [None, Some(2)] {
                let mut fab = FabConfig::new(norm, 10.0);
                fab.targets = targets;
                let adv = fab.craft(&model, &x, &y, &mut ChaCha8Rng::seed_from_u64(0));
                let delta: Vec<f32> = adv.iter().zip(&x).map(|(a, b)| a - b).collect();
                let found = norm.of(&delta);
                assert_ne!(
                    argmax_rows(&model.logits(&adv), 3),
                    y,
                    "{norm} {targets:?} did not fool"
                );
                assert!(
                    (found - expected).abs() <= 0.01 * expected,
                    "{norm} {targets:?}: found {found}, the boundary is at {expected}"
                );
            }
        }
    }

    fn small_mlp() -> (Box<dyn crate::model::Classifier>, Vec<f32>, Vec<u8>) {
        let model = ModelConfig::mlp(vec![16]).init(Engine::Native, crate::data::Shape::gray(4, 4), 10, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x: Vec<f32> = (0..12 * 16).map(|_| rng.gen_range(0.0..1.0)).collect();
        // Labels as predicted, so every image is attacked.
        let y = argmax_rows(&model.logits(&x), 10);
        (model, x, y)
    }

    #[test]
    fn results_stay_inside_the_ball_and_the_box() {
        let (model, x, y) = small_mlp();
        for (norm, eps) in [(Norm::Linf, 0.02), (Norm::Linf, 0.5), (Norm::L2, 0.1), (Norm::L2, 3.0)] {
            for targets in [None, Some(3)] {
                let mut fab = FabConfig::new(norm, eps);
                fab.targets = targets;
                fab.steps = 20;
                fab.restarts = 2;
                let adv = fab.craft(model.as_ref(), &x, &y, &mut ChaCha8Rng::seed_from_u64(1));
                for (a, c) in adv.chunks(16).zip(x.chunks(16)) {
                    fab.threat()
                        .admits(a, c)
                        .unwrap_or_else(|v| panic!("{norm} {eps}: {v}"));
                }
            }
        }
    }

    #[test]
    fn deterministic_under_a_seed() {
        let (model, x, y) = small_mlp();
        let mut fab = FabConfig::new(Norm::L2, 3.0);
        fab.steps = 10;
        fab.restarts = 3;
        let run = |seed| fab.craft(model.as_ref(), &x, &y, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(run(5), run(5));
    }

    #[test]
    fn targets_are_the_most_likely_other_classes() {
        let logits = [0.1, 0.9, 0.5, 0.7, 3.0, 2.0, 1.0, 0.0];
        let targets = likely_targets(&logits, &[1, 0], 4, 9);
        assert_eq!(targets, vec![vec![3, 1], vec![2, 2], vec![0, 3]]);
    }

    #[test]
    fn validation_names_the_key() {
        let ok = FabConfig::new(Norm::Linf, 0.3);
        assert!(ok.validate().is_ok());
        type Breaks = fn(&mut FabConfig);
        let cases: [(Breaks, &str); 7] = [
            (|c| c.norm = Norm::L1, "`norm`"),
            (|c| c.eps = 0.0, "`eps`"),
            (|c| c.steps = 0, "`steps`"),
            (|c| c.restarts = 0, "`restarts`"),
            (|c| c.alpha_max = 1.5, "`alpha_max`"),
            (|c| c.eta = 0.5, "`eta`"),
            (|c| c.beta = 1.0, "`beta`"),
        ];
        for (break_it, key) in cases {
            let mut config = ok.clone();
            break_it(&mut config);
            let message = AttackConfig::Fab(config).validate().unwrap_err().to_string();
            assert!(message.contains(key), "{message} should name {key}");
        }
        for k in [0, 10, 1000] {
            let mut config = ok.clone();
            config.targets = Some(k);
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains("`targets` must be between 1 and 9"), "{message}");
        }
        let mut config = ok.clone();
        config.targets = Some(9);
        assert!(config.validate().is_ok(), "9 targets is AutoAttack's FAB-T");
    }

    #[test]
    fn labels_say_what_differs_from_the_defaults() {
        let mut fab = FabConfig::new(Norm::Linf, 0.3);
        assert_eq!(fab.label_detail(), "");
        fab.targets = Some(9);
        fab.steps = 50;
        assert_eq!(fab.label_detail(), "-t9-50steps");
    }
}
