//! Square attack: random search with square-shaped updates (at the corners
//! of the linf ball, or moving pseudo-Gaussian mass between windows in l2),
//! from probabilities alone, accepting a change when it lowers the margin. Andriushchenko et al. 2020, "Square Attack: a
//! query-efficient black-box adversarial attack via random search".

use crate::data::Shape;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{in_batches, named, Access, AttackSpec, Crafted, Signal};
use crate::data::Split;
use crate::model::Model;
use crate::registry::Describe;

use super::access::ScoreOracle;
use super::target::choose_targets;
use super::{Norm, Target, ThreatModel};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquareConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "super::pgd::default_norm")]
    pub norm: Norm,
    pub eps: f32,
    /// Queries per image (at most the rules' `queries`).
    #[serde(default = "default_queries")]
    pub queries: usize,
    /// Initial fraction of pixels a square covers (the paper's p for MNIST-sized images).
    /// Default: 0.3 in linf, 0.1 in l2 (the paper's values for MNIST-sized images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_init: Option<f32>,
    /// `untargeted` (default), `random` or `least-likely` (the least likely
    /// class costs one query per image). Targeted, a change is accepted when
    /// it lowers the target's cross-entropy, as in the paper.
    #[serde(default)]
    pub target: Target,
}

fn default_queries() -> usize {
    1000
}

impl SquareConfig {
    pub fn new(eps: f32) -> Self {
        SquareConfig {
            name: None,
            norm: Norm::Linf,
            eps,
            queries: default_queries(),
            p_init: None,
            target: Target::Untargeted,
        }
    }

    /// The paper's schedule for the square's area, halved at fixed
    /// fractions of a 10,000-query budget (rescaled to ours).
    fn p_at(&self, iteration: usize) -> f32 {
        let i = iteration * 10_000 / self.queries.max(1);
        let halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
            .iter()
            .filter(|&&t| i > t)
            .count();
        let p_init = self.p_init.unwrap_or(if self.norm == Norm::L2 { 0.1 } else { 0.3 });
        p_init / (1u32 << halvings) as f32
    }

    /// The starting point. linf: vertical stripes at the corners of the
    /// ball (a sign per column and channel). l2: a grid of pseudo-Gaussian
    /// bumps of random sign per channel, scaled onto the sphere of radius eps.
    fn start(&self, clean: &[f32], shape: Shape, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let clamp = |v: f32| v.clamp(0.0, 1.0);
        let (rows, cols, channels) = (shape.rows, shape.cols, shape.channels);
        match self.norm {
            Norm::L2 => {
                let mut delta = vec![0.0f32; clean.len()];
                let tile = (rows.min(cols) / 5).max(1);
                let bump = pseudo_gaussian(tile, tile);
                for r0 in (0..rows).step_by(tile) {
                    for c0 in (0..cols).step_by(tile) {
                        for ch in 0..channels {
                            let sign = if rng.gen::<bool>() { 1.0 } else { -1.0 };
                            for r in 0..tile.min(rows - r0) {
                                for c in 0..tile.min(cols - c0) {
                                    delta[shape.at(ch, r0 + r, c0 + c)] = sign * bump[r * tile + c];
                                }
                            }
                        }
                    }
                }
                let length = Norm::L2.of(&delta).max(1e-12);
                clean
                    .iter()
                    .zip(&delta)
                    .map(|(c, d)| clamp(c + self.eps * d / length))
                    .collect()
            }
            _ => {
                // Stored channels-last, value p is column (p / channels) %
                // cols, channel p % channels: one sign per pair.
                let signs: Vec<f32> = (0..cols * channels)
                    .map(|_| if rng.gen::<bool>() { self.eps } else { -self.eps })
                    .collect();
                clean
                    .iter()
                    .enumerate()
                    .map(|(p, c)| clamp(c + signs[p % signs.len()]))
                    .collect()
            }
        }
    }

    /// linf: one s x s window set to a random corner of the ball (a sign
    /// per channel), resampled until the window actually changes (a few
    /// tries).
    fn propose_linf(&self, a: &[f32], c: &[f32], s: usize, shape: Shape, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let mut candidate = a.to_vec();
        for _ in 0..10 {
            let (r0, c0) = (rng.gen_range(0..=shape.rows - s), rng.gen_range(0..=shape.cols - s));
            let signs: Vec<f32> = (0..shape.channels)
                .map(|_| if rng.gen::<bool>() { self.eps } else { -self.eps })
                .collect();
            let mut changed = false;
            for r in r0..r0 + s {
                for col in c0..c0 + s {
                    for (ch, sign) in signs.iter().enumerate() {
                        let p = shape.at(ch, r, col);
                        let v = (c[p] + sign).clamp(0.0, 1.0);
                        changed |= (v - a[p]).abs() > 1e-7;
                        candidate[p] = v;
                    }
                }
            }
            if changed {
                break;
            }
            candidate.copy_from_slice(a);
        }
        candidate
    }

    /// l2 (the paper's Algorithm 3): move the perturbation's mass from a
    /// second window into a first one, adding a pseudo-Gaussian bump there
    /// (of random sign per channel), keeping the total norm at eps.
    fn propose_l2(&self, a: &[f32], c: &[f32], s: usize, shape: Shape, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let s = s.max(3) | 1;
        let s = s.min(shape.rows.min(shape.cols));
        let mut delta: Vec<f32> = a.iter().zip(c).map(|(a, c)| a - c).collect();
        // Every value of the window, each pixel's channels together.
        let window = |r0: usize, c0: usize| -> Vec<usize> {
            (r0..r0 + s)
                .flat_map(|r| (c0..c0 + s).map(move |col| (r, col)))
                .flat_map(|(r, col)| (0..shape.channels).map(move |ch| shape.at(ch, r, col)))
                .collect()
        };
        let (rows, cols) = (shape.rows, shape.cols);
        let first = window(rng.gen_range(0..=rows - s), rng.gen_range(0..=cols - s));
        let second = window(rng.gen_range(0..=rows - s), rng.gen_range(0..=cols - s));
        let norm_of = |idx: &[usize], d: &[f32]| idx.iter().map(|&p| d[p] * d[p]).sum::<f32>().sqrt();
        let image_norm = Norm::L2.of(&delta);
        let mut union = first.clone();
        union.extend(second.iter().filter(|p| !first.contains(p)));
        let union_norm = norm_of(&union, &delta);
        let first_norm = norm_of(&first, &delta);
        // A two-lobed pseudo-Gaussian bump of random sign and orientation.
        let mut bump = meta_pseudo_gaussian(s);
        if rng.gen::<bool>() {
            bump = transpose(&bump, s);
        }
        let signs: Vec<f32> = (0..shape.channels)
            .map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 })
            .collect();
        let mut proposal: Vec<f32> = first
            .iter()
            .enumerate()
            .map(|(k, &p)| {
                let b = bump[k / shape.channels];
                signs[k % shape.channels] * b + delta[p] / (first_norm + 1e-10)
            })
            .collect();
        let length = proposal.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        let target = ((self.eps * self.eps - image_norm * image_norm).max(0.0) + union_norm * union_norm).sqrt();
        proposal.iter_mut().for_each(|v| *v *= target / length);
        for &p in &second {
            delta[p] = 0.0;
        }
        for (&p, v) in first.iter().zip(proposal) {
            delta[p] = v;
        }
        let total = Norm::L2.of(&delta).max(1e-12);
        c.iter()
            .zip(&delta)
            .map(|(c, d)| (c + d * self.eps / total).clamp(0.0, 1.0))
            .collect()
    }

    pub fn craft(&self, oracle: &mut ScoreOracle<'_>, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let targets = (self.target != Target::Untargeted).then(|| {
            choose_targets(self.target, y, oracle.classes(), rng, || {
                oracle.probabilities(x).unwrap_or_default()
            })
        });
        self.craft_towards(oracle, x, y, targets.as_deref(), rng)
    }

    /// The attack with explicit targets (`None`: untargeted).
    pub(crate) fn craft_towards(
        &self,
        oracle: &mut ScoreOracle<'_>,
        x: &[f32],
        y: &[u8],
        targets: Option<&[u8]>,
        rng: &mut ChaCha8Rng,
    ) -> Vec<f32> {
        let shape = oracle.image_shape();
        let dim = shape.dim();
        let classes = oracle.classes();
        let n = y.len();
        let side = shape.rows.min(shape.cols);
        if side < 2 {
            // Windows smaller than the image need two rows and columns.
            return x.to_vec();
        }
        // What is minimized, per image, and whether the image is done.
        // Untargeted: the margin log p_y - max_{j != y} log p_j (equal to the
        // logit margin), done below 0. Targeted: -log p_t, done once t leads.
        let objective = |p: &[f32], i: usize| -> (f32, bool) {
            let log = |v: f32| v.max(1e-30).ln();
            let best_other = |c: usize| (0..classes).filter(|&j| j != c).map(|j| p[j]).fold(0.0f32, f32::max);
            match targets {
                None => {
                    let margin = log(p[y[i] as usize]) - log(best_other(y[i] as usize));
                    (margin, margin < 0.0)
                }
                Some(t) => {
                    let t = t[i] as usize;
                    (-log(p[t]), p[t] > best_other(t))
                }
            }
        };

        let mut adv: Vec<f32> = x.chunks(dim).flat_map(|c| self.start(c, shape, rng)).collect();
        let Some(probs) = oracle.probabilities(&adv) else {
            return x.to_vec();
        };
        let (mut loss, mut done): (Vec<f32>, Vec<bool>) =
            probs.chunks(classes).enumerate().map(|(i, p)| objective(p, i)).unzip();

        for iteration in 0..self.queries - 1 {
            let active: Vec<usize> = (0..n).filter(|&i| !done[i]).collect();
            if active.is_empty() {
                break;
            }
            // The window covers a fraction p of each channel's pixels.
            let s = ((self.p_at(iteration) * shape.pixels() as f32).sqrt().round() as usize).clamp(1, side - 1);
            let mut candidates = Vec::with_capacity(active.len() * dim);
            for &i in &active {
                let (a, c) = (&adv[i * dim..(i + 1) * dim], &x[i * dim..(i + 1) * dim]);
                let candidate = match self.norm {
                    Norm::L2 => self.propose_l2(a, c, s, shape, rng),
                    _ => self.propose_linf(a, c, s, shape, rng),
                };
                candidates.extend_from_slice(&candidate);
            }
            let Some(probs) = oracle.probabilities(&candidates) else {
                break;
            };
            for (k, (&i, p)) in active.iter().zip(probs.chunks(classes)).enumerate() {
                let (l, d) = objective(p, i);
                if l < loss[i] {
                    (loss[i], done[i]) = (l, d);
                    adv[i * dim..(i + 1) * dim].copy_from_slice(&candidates[k * dim..(k + 1) * dim]);
                }
            }
        }
        adv
    }
}

/// Concentric rings weighted 1/(k+1)^2 over a rows x cols rectangle,
/// normalized to unit l2 norm (the paper's pseudo-Gaussian perturbation).
fn pseudo_gaussian(rows: usize, cols: usize) -> Vec<f32> {
    let mut bump = vec![0.0f32; rows * cols];
    let (cr, cc) = (rows / 2, cols / 2);
    for r in 0..rows {
        for c in 0..cols {
            let ring = r.abs_diff(cr).max(c.abs_diff(cc));
            // Every centred square that covers this pixel adds 1/(k+1)^2.
            bump[r * cols + c] = (ring..=cr.max(cc)).map(|k| 1.0 / ((k + 1) * (k + 1)) as f32).sum();
        }
    }
    let length = bump.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    bump.iter().map(|v| v / length).collect()
}

/// Two pseudo-Gaussian halves of opposite sign in an s x s square.
fn meta_pseudo_gaussian(s: usize) -> Vec<f32> {
    let top = s / 2;
    let mut bump = vec![0.0f32; s * s];
    let upper = pseudo_gaussian(top.max(1), s);
    let lower = pseudo_gaussian(s - top, s);
    for r in 0..s {
        for c in 0..s {
            bump[r * s + c] = if r < top {
                upper[r * s + c]
            } else {
                -lower[(r - top) * s + c]
            };
        }
    }
    let length = bump.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    bump.iter().map(|v| v / length).collect()
}

fn transpose(m: &[f32], s: usize) -> Vec<f32> {
    (0..s * s).map(|i| m[(i % s) * s + i / s]).collect()
}

impl AttackSpec for SquareConfig {
    named!();
    fn required_success(&self) -> Option<f64> {
        Some(0.8)
    }
    fn validate(&self) -> crate::Result<()> {
        if self.norm == Norm::L1 {
            return Err(crate::Error::invalid("square supports `norm = \"linf\"` or `\"l2\"`"));
        }
        if self.queries < 2 {
            return Err(crate::Error::invalid("`queries` must be at least 2"));
        }
        if let Some(p) = self.p_init.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(crate::Error::invalid(format!("`p_init` must be in (0, 1], got {p}")));
        }
        Ok(())
    }
    fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: self.norm,
            eps: self.eps,
        }
    }
    fn access(&self) -> Access {
        Access::Scores
    }
    fn signal(&self) -> Signal {
        Signal::Query
    }
    fn label_detail(&self) -> String {
        format!("-{}q{}", self.queries, self.target.label_detail())
    }
    fn queries(&self) -> Option<usize> {
        Some(self.queries)
    }
    fn target(&self) -> Target {
        self.target
    }
    fn run(
        &self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        rng: &mut ChaCha8Rng,
        batch: usize,
        _train: Option<&Split>,
    ) -> Crafted {
        in_batches(
            x,
            y,
            model.input_dim(),
            batch,
            |n| ScoreOracle::new(model, n, self.queries),
            |oracle, xb, yb| self.craft(oracle, xb, yb, rng),
            |oracle| oracle.queries(),
        )
    }
}

impl Describe for SquareConfig {
    const HELP: &'static str = "square attack: random search from probabilities only, within a query budget (Andriushchenko et al. 2020); linf or l2; scores access";
    fn example() -> Self {
        SquareConfig::new(0.3)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![SquareConfig::new(0.1), {
            let mut l2 = SquareConfig::new(2.0);
            l2.norm = Norm::L2;
            l2
        }]
    }
}
