//! The Pointwise attack: a sparse, decision-based attack from top-1 labels
//! alone. Salt-and-pepper noise of rising density until the label flips;
//! then one pass, in random order, over the changed pixels, each set back to
//! its clean value if the image stays adversarial; then up to 8 passes
//! halving each remaining change while the image stays adversarial. The result is projected onto
//! the l1 budget. Schott, Rauber, Bethge & Brendel 2019, "Towards the first
//! adversarially robust neural network model on MNIST" (the attack their and
//! Maini et al. 2020's l0/l1 evaluations use): a gradient-free, sparse check
//! that masked gradients cannot fool.
//!
//! The images of a batch move in lockstep, one candidate each per query, so
//! that every query is one forward pass over the batch.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::access::LabelOracle;
use super::{in_batches, named, Access, AttackSpec, Crafted, Norm, Signal, ThreatModel};
use crate::data::Split;
use crate::model::Model;
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointwiseConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The l1 budget the result is held to.
    pub eps: f32,
    /// Queries per image (at most the rules' `queries`).
    #[serde(default = "default_queries")]
    pub queries: usize,
}

fn default_queries() -> usize {
    1000
}

/// Salt-and-pepper densities tried, rising linearly to half the pixels.
const DENSITIES: usize = 40;
/// Passes of the halving stage.
const HALVINGS: usize = 8;

/// One image's progress.
struct Image {
    clean: Vec<f32>,
    label: u8,
    /// The current adversarial image (`None` until noise flipped the label).
    adv: Option<Vec<f32>>,
    left: usize,
    /// Pixels still to try in this pass, and whether the pass changed any.
    todo: Vec<usize>,
    changed: bool,
}

impl Image {
    /// The changed pixels, shuffled: the next pass's order.
    fn pass(&mut self, rng: &mut ChaCha8Rng) {
        let adv = self.adv.as_ref().expect("a pass starts from an adversarial image");
        self.todo = (0..adv.len()).filter(|&i| adv[i] != self.clean[i]).collect();
        self.todo.shuffle(rng);
        self.changed = false;
    }
}

impl PointwiseConfig {
    pub fn new(eps: f32) -> Self {
        PointwiseConfig {
            name: None,
            eps,
            queries: default_queries(),
        }
    }

    pub fn craft(&self, oracle: &mut LabelOracle<'_>, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let dim = oracle.input_dim();
        let mut images: Vec<Image> = x
            .chunks(dim)
            .zip(y)
            .map(|(clean, &label)| Image {
                clean: clean.to_vec(),
                label,
                adv: None,
                left: self.queries,
                todo: Vec::new(),
                changed: false,
            })
            .collect();
        salt_and_pepper(oracle, &mut images, rng);
        for image in images.iter_mut().filter(|i| i.adv.is_some()) {
            image.pass(rng);
        }
        // Stage 1: a pixel set back to clean; stage 2: a change halved.
        refine(oracle, &mut images, rng, 1, |adv, clean, i| adv[i] = clean[i]);
        refine(oracle, &mut images, rng, HALVINGS, |adv, clean, i| {
            adv[i] = clean[i] + (adv[i] - clean[i]) / 2.0
        });
        let mut out: Vec<f32> = images.into_iter().flat_map(|i| i.adv.unwrap_or(i.clean)).collect();
        self.threat().project(&mut out, x, dim);
        out
    }
}

/// Which candidates are adversarial: one query each, in one forward pass.
/// `None` for every candidate when the oracle's budget is spent.
fn ask(oracle: &mut LabelOracle<'_>, images: &mut [Image], candidates: &[(usize, Vec<f32>)]) -> Vec<bool> {
    let batch: Vec<f32> = candidates.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    match oracle.labels(&batch) {
        Some(labels) => candidates
            .iter()
            .zip(labels)
            .map(|((i, _), label)| {
                images[*i].left -= 1;
                label != images[*i].label
            })
            .collect(),
        None => vec![false; candidates.len()],
    }
}

/// Noise of rising density (each pixel set to 0 or 1 with probability
/// `density`) until each image's label flips or its queries run out.
fn salt_and_pepper(oracle: &mut LabelOracle<'_>, images: &mut [Image], rng: &mut ChaCha8Rng) {
    for step in 1..=DENSITIES {
        let density = 0.5 * step as f32 / DENSITIES as f32;
        let candidates: Vec<(usize, Vec<f32>)> = images
            .iter()
            .enumerate()
            .filter(|(_, img)| img.adv.is_none() && img.left > 0)
            .map(|(i, img)| {
                let noisy = img
                    .clean
                    .iter()
                    .map(|&p| match rng.gen::<f32>() {
                        r if r < density / 2.0 => 0.0,
                        r if r < density => 1.0,
                        _ => p,
                    })
                    .collect();
                (i, noisy)
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let hits = ask(oracle, images, &candidates);
        for ((i, candidate), hit) in candidates.into_iter().zip(hits) {
            if hit {
                images[i].adv = Some(candidate);
            }
        }
    }
}

/// Passes over each adversarial image's changed pixels, in lockstep: every
/// pixel's change made smaller by `shrink` (kept only if still adversarial),
/// up to `passes` passes or until a pass changes nothing, within the
/// queries left.
fn refine(
    oracle: &mut LabelOracle<'_>,
    images: &mut [Image],
    rng: &mut ChaCha8Rng,
    passes: usize,
    shrink: impl Fn(&mut [f32], &[f32], usize),
) {
    let mut pass_count = vec![0usize; images.len()];
    for image in images.iter_mut().filter(|i| i.adv.is_some()) {
        image.pass(rng);
    }
    loop {
        let mut candidates = Vec::new();
        for (i, image) in images.iter_mut().enumerate() {
            if image.adv.is_none() || image.left == 0 {
                continue;
            }
            if image.todo.is_empty() {
                pass_count[i] += 1;
                if !image.changed || pass_count[i] >= passes {
                    continue;
                }
                image.pass(rng);
                if image.todo.is_empty() {
                    continue;
                }
            }
            let pixel = image.todo.pop().expect("checked non-empty");
            let mut candidate = image.adv.clone().expect("checked adversarial");
            shrink(&mut candidate, &image.clean, pixel);
            candidates.push((i, candidate));
        }
        if candidates.is_empty() {
            return;
        }
        let hits = ask(oracle, images, &candidates);
        for ((i, candidate), hit) in candidates.into_iter().zip(hits) {
            if hit {
                images[i].adv = Some(candidate);
                images[i].changed = true;
            }
        }
    }
}

impl AttackSpec for PointwiseConfig {
    named!();
    fn validate(&self) -> crate::Result<()> {
        if self.queries < DENSITIES {
            return Err(crate::Error::invalid(format!(
                "`queries` must be at least {DENSITIES} (the salt-and-pepper densities tried)"
            )));
        }
        Ok(())
    }
    fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: Norm::L1,
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
        format!("-{}q", self.queries)
    }
    fn queries(&self) -> Option<usize> {
        Some(self.queries)
    }
    /// A label-only sparse search fools fewer images than gradients do at
    /// the same l1 budget (the attacks table: 55.0% left standing on the
    /// fixture's undefended MLP, against PGD-l1's 6.5%); it promises a
    /// quarter of the correct answers.
    fn required_success(&self) -> Option<f64> {
        Some(0.25)
    }
    fn scale_budget(&mut self, factor: f32) -> bool {
        self.eps *= factor;
        true
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

impl Describe for PointwiseConfig {
    const HELP: &'static str = "Pointwise: salt-and-pepper noise, then pixels set back one by one while the label stays wrong; sparse, from top-1 labels only (Schott et al. 2019); l1; labels access";
    fn example() -> Self {
        PointwiseConfig::new(10.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::fooled;
    use crate::testing::{trained_mlp, SyntheticFixture};
    use rand::SeedableRng;

    /// On an undefended model the attack finds sparse examples within an
    /// l1 budget of 10 for most images, changing few pixels; and it stays
    /// within its queries.
    #[test]
    fn pointwise_finds_sparse_examples_within_budget_and_queries() {
        let SyntheticFixture { model, x, y, dim, .. } = trained_mlp();
        let (n, dim) = (64, *dim);
        let (x, y) = (&x[..n * dim], &y[..n]);
        let attack = PointwiseConfig::new(10.0);
        let crafted = attack.run(model.as_ref(), x, y, &mut ChaCha8Rng::seed_from_u64(1), 64, None);
        assert!(crafted.queries.unwrap() <= n * attack.queries);
        let fooled_clean = fooled(model.as_ref(), x, y).iter().filter(|&&f| f).count();
        let fooled_adv = fooled(model.as_ref(), &crafted.examples, y);
        let rate = fooled_adv.iter().filter(|&&f| f).count() as f64 / n as f64;
        assert!(
            rate > 0.5 && fooled_adv.iter().filter(|&&f| f).count() > fooled_clean,
            "fooled {rate}"
        );
        for ((adv, clean), fooled) in crafted.examples.chunks(dim).zip(x.chunks(dim)).zip(&fooled_adv) {
            let l1: f32 = adv.iter().zip(clean).map(|(a, c)| (a - c).abs()).sum();
            assert!(l1 <= 10.0 + 1e-3, "l1 {l1}");
            let changed = adv.iter().zip(clean).filter(|(a, c)| a != c).count();
            if *fooled {
                assert!(changed < dim / 4, "{changed} pixels changed: not sparse");
            }
        }
    }
}
