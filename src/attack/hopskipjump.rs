//! HopSkipJump: a decision-based attack from top-1 labels alone. From an
//! adversarial starting point it alternates a binary search to the decision
//! boundary, a Monte Carlo estimate of the boundary's normal from label
//! flips, and a geometric step along it; the result is projected onto the
//! budget. Chen, Jordan & Wainwright 2020, "HopSkipJumpAttack: a
//! query-efficient decision-based attack".

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{in_batches, named, Access, AttackSpec, Crafted, Signal};
use crate::data::Split;
use crate::model::Model;
use crate::registry::Describe;

use super::access::LabelOracle;
use super::target::choose_targets;
use super::{standard_normal, Norm, Target, ThreatModel};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HopSkipJumpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "default_norm")]
    pub norm: Norm,
    pub eps: f32,
    /// Queries per image (at most the rules' `queries`).
    #[serde(default = "default_queries")]
    pub queries: usize,
    /// Samples of the first gradient estimate (grows as sqrt(iteration)).
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// `untargeted` (default) or `random`. Targeted, it starts from an image
    /// of the batch whose true label is the target (else from noise the
    /// model labels so), as the paper starts from a target-class image.
    #[serde(default)]
    pub target: Target,
}

fn default_norm() -> Norm {
    Norm::L2
}
fn default_queries() -> usize {
    1000
}
fn default_samples() -> usize {
    50
}

/// Per-image query accounting on top of the oracle's batch cap.
struct Queries<'o, 'a> {
    oracle: &'o mut LabelOracle<'a>,
    label: u8,
    /// The class to reach, when targeted.
    target: Option<u8>,
    left: usize,
}

impl Queries<'_, '_> {
    /// Whether each image of `x` is adversarial (misclassified, or labelled
    /// as the target); `None` when out of queries.
    fn adversarial(&mut self, x: &[f32]) -> Option<Vec<bool>> {
        let n = x.len() / self.oracle.input_dim();
        if n > self.left {
            return None;
        }
        self.left -= n;
        let labels = self.oracle.labels(x)?;
        Some(
            labels
                .iter()
                .map(|&l| self.target.map_or(l != self.label, |t| l == t))
                .collect(),
        )
    }
}

impl HopSkipJumpConfig {
    pub fn new(norm: Norm, eps: f32) -> Self {
        HopSkipJumpConfig {
            name: None,
            norm,
            eps,
            queries: default_queries(),
            samples: default_samples(),
            target: Target::Untargeted,
        }
    }

    pub fn craft(&self, oracle: &mut LabelOracle<'_>, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let targets = (self.target != Target::Untargeted)
            .then(|| choose_targets(self.target, y, oracle.classes(), rng, Vec::new));
        self.craft_towards(oracle, x, y, targets.as_deref(), rng)
    }

    /// The attack with explicit targets (`None`: untargeted).
    pub(crate) fn craft_towards(
        &self,
        oracle: &mut LabelOracle<'_>,
        x: &[f32],
        y: &[u8],
        targets: Option<&[u8]>,
        rng: &mut ChaCha8Rng,
    ) -> Vec<f32> {
        let dim = oracle.input_dim();
        let mut out = Vec::with_capacity(x.len());
        for (i, (image, &label)) in x.chunks(dim).zip(y).enumerate() {
            let target = targets.map(|t| t[i]);
            // Targeted starting points: up to 4 images of the target class.
            let starts: Vec<f32> = match target {
                Some(t) => x
                    .chunks(dim)
                    .zip(y)
                    .filter(|&(_, &l)| l == t)
                    .take(4)
                    .flat_map(|(img, _)| img.iter().copied())
                    .collect(),
                None => Vec::new(),
            };
            let mut queries = Queries {
                oracle: &mut *oracle,
                label,
                target,
                left: self.queries,
            };
            let adv = self
                .attack_one(&mut queries, image, &starts, rng)
                .unwrap_or_else(|| image.to_vec());
            out.extend(adv);
        }
        self.threat().project(&mut out, x, dim);
        out
    }

    fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        let delta: Vec<f32> = a.iter().zip(b).map(|(a, b)| a - b).collect();
        self.norm.of(&delta)
    }

    /// Binary search on the segment from `x` (clean) to `adv` (adversarial)
    /// for the boundary; returns an adversarial point next to it.
    fn to_boundary(&self, q: &mut Queries<'_, '_>, x: &[f32], adv: &[f32]) -> Option<Vec<f32>> {
        let (mut low, mut high) = (0.0f32, 1.0f32);
        let blend = |t: f32| -> Vec<f32> { x.iter().zip(adv).map(|(a, b)| a + t * (b - a)).collect() };
        for _ in 0..12 {
            let mid = (low + high) / 2.0;
            if q.adversarial(&blend(mid))?[0] {
                high = mid;
            } else {
                low = mid;
            }
        }
        Some(blend(high))
    }

    /// One image: from an adversarial start, walk along the boundary
    /// towards `x`, keeping the closest adversarial point; `None` when no
    /// start was found within the queries.
    fn attack_one(&self, q: &mut Queries<'_, '_>, x: &[f32], starts: &[f32], rng: &mut ChaCha8Rng) -> Option<Vec<f32>> {
        let start = self.adversarial_start(q, starts, x.len(), rng)?;
        let mut boundary = self.to_boundary(q, x, &start)?;
        let mut best = boundary.clone();
        for t in 1.. {
            let distance = self.distance(&boundary, x);
            let Some(direction) = self.boundary_normal(q, &boundary, distance, t, rng) else {
                break;
            };
            let Some(moved) = self.geometric_step(q, &boundary, &direction, distance, t) else {
                break;
            };
            let Some(next) = self.to_boundary(q, x, &moved) else {
                break;
            };
            boundary = next;
            if self.distance(&boundary, x) < self.distance(&best, x) {
                best = boundary.clone();
            }
        }
        Some(best)
    }

    /// An adversarial start: the given images, else uniform noise images,
    /// tried a batch at a time.
    fn adversarial_start(
        &self,
        q: &mut Queries<'_, '_>,
        starts: &[f32],
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Option<Vec<f32>> {
        let from_starts = match starts.is_empty() {
            true => None,
            false => q
                .adversarial(starts)?
                .iter()
                .position(|&f| f)
                .map(|k| starts[k * dim..(k + 1) * dim].to_vec()),
        };
        match from_starts {
            Some(start) => Some(start),
            None => {
                let noise: Vec<f32> = (0..10 * dim).map(|_| rng.gen_range(0.0..1.0)).collect();
                let k = q.adversarial(&noise)?.iter().position(|&f| f)?;
                Some(noise[k * dim..(k + 1) * dim].to_vec())
            }
        }
    }

    /// Iteration `t`'s estimate of the boundary's normal at `boundary`
    /// (`distance` from the clean image), from label flips of random probes
    /// around it: a unit l2 direction, or its sign in linf. `None` when the
    /// queries left cannot pay for the probes.
    fn boundary_normal(
        &self,
        q: &mut Queries<'_, '_>,
        boundary: &[f32],
        distance: f32,
        t: usize,
        rng: &mut ChaCha8Rng,
    ) -> Option<Vec<f32>> {
        let dim = boundary.len();
        let theta = match self.norm {
            Norm::Linf => 1.0 / (dim as f32 * dim as f32),
            _ => 1.0 / (dim as f32).powf(1.5),
        };
        // The paper's probe radius: sqrt(d) theta dist in l2, d theta dist in linf.
        let spread = match self.norm {
            Norm::Linf => dim as f32,
            _ => (dim as f32).sqrt(),
        };
        let delta = (spread * theta * distance).max(1e-4);
        let samples = ((self.samples as f32 * (t as f32).sqrt()) as usize).min(q.left.saturating_sub(20));
        if samples < 2 {
            return None;
        }
        let directions: Vec<Vec<f32>> = (0..samples)
            .map(|_| {
                let u: Vec<f32> = (0..dim).map(|_| standard_normal(rng)).collect();
                let length = Norm::L2.of(&u).max(1e-12);
                u.into_iter().map(|v| v / length).collect()
            })
            .collect();
        let probes: Vec<f32> = directions
            .iter()
            .flat_map(|u| {
                boundary
                    .iter()
                    .zip(u)
                    .map(|(b, u)| (b + delta * u).clamp(0.0, 1.0))
                    .collect::<Vec<_>>()
            })
            .collect();
        let flags = q.adversarial(&probes)?;
        let signs: Vec<f32> = flags.iter().map(|&f| if f { 1.0 } else { -1.0 }).collect();
        let baseline = signs.iter().sum::<f32>() / samples as f32;
        let mut normal = vec![0.0f32; dim];
        for (u, s) in directions.iter().zip(&signs) {
            let weight = if baseline.abs() < 1.0 { s - baseline } else { *s };
            normal.iter_mut().zip(u).for_each(|(n, u)| *n += weight * u);
        }
        Some(match self.norm {
            Norm::Linf => normal.iter().map(|v| v.signum()).collect(),
            _ => {
                let length = Norm::L2.of(&normal).max(1e-12);
                normal.iter().map(|v| v / length).collect()
            }
        })
    }

    /// A geometric step of iteration `t` from `boundary` along `direction`,
    /// halved until still adversarial; `None` when it shrinks to nothing or
    /// the queries run out.
    fn geometric_step(
        &self,
        q: &mut Queries<'_, '_>,
        boundary: &[f32],
        direction: &[f32],
        distance: f32,
        t: usize,
    ) -> Option<Vec<f32>> {
        let mut step = distance / (t as f32).sqrt();
        while step > 1e-4 {
            let candidate: Vec<f32> = boundary
                .iter()
                .zip(direction)
                .map(|(b, d)| (b + step * d).clamp(0.0, 1.0))
                .collect();
            match q.adversarial(&candidate) {
                Some(f) if f[0] => return Some(candidate),
                Some(_) => step /= 2.0,
                None => return None,
            }
        }
        None
    }
}

impl AttackSpec for HopSkipJumpConfig {
    named!();
    fn validate(&self) -> crate::Result<()> {
        if self.norm == Norm::L1 {
            return Err(crate::Error::invalid(
                "hopskipjump supports `norm = \"l2\"` or `\"linf\"`",
            ));
        }
        if self.target == Target::LeastLikely {
            return Err(crate::Error::invalid(
                "hopskipjump sees labels only, so it has no least likely class: use `target = \"random\"`",
            ));
        }
        if self.queries < 10 || self.samples == 0 {
            return Err(crate::Error::invalid(
                "`queries` must be at least 10 and `samples` at least 1",
            ));
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
        Access::Labels
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
            |n| LabelOracle::new(model, n, self.queries),
            |oracle, xb, yb| self.craft(oracle, xb, yb, rng),
            |oracle| oracle.queries(),
        )
    }
}

impl Describe for HopSkipJumpConfig {
    const HELP: &'static str = "HopSkipJump: boundary search from top-1 labels only, within a query budget (Chen et al. 2020); l2 or linf; labels access";
    fn example() -> Self {
        HopSkipJumpConfig::new(Norm::L2, 2.0)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![
            HopSkipJumpConfig::new(Norm::Linf, 0.1),
            HopSkipJumpConfig::new(Norm::L2, 2.0),
        ]
    }
}
