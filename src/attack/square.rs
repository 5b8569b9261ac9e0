//! Square attack (linf): random search with square-shaped updates at the
//! corners of the linf ball, from probabilities alone, accepting a change
//! when it lowers the margin. Andriushchenko et al. 2020, "Square Attack: a
//! query-efficient black-box adversarial attack via random search".

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::access::ScoreOracle;
use super::{Norm, ThreatModel};

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
    #[serde(default = "default_p_init")]
    pub p_init: f32,
}

fn default_queries() -> usize {
    1000
}
fn default_p_init() -> f32 {
    0.3
}

impl SquareConfig {
    pub fn new(eps: f32) -> Self {
        SquareConfig {
            name: None,
            norm: Norm::Linf,
            eps,
            queries: default_queries(),
            p_init: default_p_init(),
        }
    }
    pub fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: self.norm,
            eps: self.eps,
        }
    }
    pub fn validate(&self) -> Result<(), String> {
        if self.norm != Norm::Linf {
            return Err("square is implemented for `norm = \"linf\"` only".into());
        }
        if self.queries < 2 {
            return Err("`queries` must be at least 2".into());
        }
        if !(self.p_init > 0.0 && self.p_init <= 1.0) {
            return Err(format!("`p_init` must be in (0, 1], got {}", self.p_init));
        }
        Ok(())
    }

    /// The paper's schedule for the square's area, halved at fixed
    /// fractions of a 10,000-query budget (rescaled to ours).
    fn p_at(&self, iteration: usize) -> f32 {
        let i = iteration * 10_000 / self.queries.max(1);
        let halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
            .iter()
            .filter(|&&t| i > t)
            .count();
        self.p_init / (1u32 << halvings) as f32
    }

    pub fn craft(&self, oracle: &mut ScoreOracle<'_>, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let dim = oracle.input_dim();
        let side = (dim as f64).sqrt() as usize;
        let classes = oracle.classes();
        let n = y.len();
        if side * side != dim || side < 2 {
            // Square windows need square images.
            return x.to_vec();
        }
        let clamp = |v: f32| v.clamp(0.0, 1.0);
        // The margin log p_y - max_{j != y} log p_j equals the logit margin.
        let margins = |probs: &[f32], labels: &mut dyn Iterator<Item = u8>| -> Vec<f32> {
            probs
                .chunks(classes)
                .zip(labels)
                .map(|(p, t)| {
                    let other = (0..classes)
                        .filter(|&j| j != t as usize)
                        .map(|j| p[j])
                        .fold(0.0f32, f32::max);
                    p[t as usize].max(1e-30).ln() - other.max(1e-30).ln()
                })
                .collect()
        };

        // Start: vertical stripes at the corners of the ball.
        let mut adv = x.to_vec();
        for (a, c) in adv.chunks_mut(dim).zip(x.chunks(dim)) {
            let signs: Vec<f32> = (0..side)
                .map(|_| if rng.gen::<bool>() { self.eps } else { -self.eps })
                .collect();
            for (p, (a, c)) in a.iter_mut().zip(c).enumerate() {
                *a = clamp(c + signs[p % side]);
            }
        }
        let Some(probs) = oracle.probabilities(&adv) else {
            return x.to_vec();
        };
        let mut margin = margins(&probs, &mut y.iter().copied());

        for iteration in 0..self.queries - 1 {
            let active: Vec<usize> = (0..n).filter(|&i| margin[i] > 0.0).collect();
            if active.is_empty() {
                break;
            }
            let s = ((self.p_at(iteration) * dim as f32).sqrt().round() as usize).clamp(1, side - 1);
            let mut candidates = Vec::with_capacity(active.len() * dim);
            for &i in &active {
                let (a, c) = (&adv[i * dim..(i + 1) * dim], &x[i * dim..(i + 1) * dim]);
                let mut candidate = a.to_vec();
                // Resample until the window actually changes (a few tries).
                for _ in 0..10 {
                    let (r0, c0) = (rng.gen_range(0..=side - s), rng.gen_range(0..=side - s));
                    let sign = if rng.gen::<bool>() { self.eps } else { -self.eps };
                    let mut changed = false;
                    for r in r0..r0 + s {
                        for col in c0..c0 + s {
                            let p = r * side + col;
                            let v = clamp(c[p] + sign);
                            changed |= (v - a[p]).abs() > 1e-7;
                            candidate[p] = v;
                        }
                    }
                    if changed {
                        break;
                    }
                    candidate.copy_from_slice(a);
                }
                candidates.extend_from_slice(&candidate);
            }
            let Some(probs) = oracle.probabilities(&candidates) else {
                break;
            };
            let proposed = margins(&probs, &mut active.iter().map(|&i| y[i]));
            for (k, (&i, m)) in active.iter().zip(proposed).enumerate() {
                if m < margin[i] {
                    margin[i] = m;
                    adv[i * dim..(i + 1) * dim].copy_from_slice(&candidates[k * dim..(k + 1) * dim]);
                }
            }
        }
        adv
    }
}
