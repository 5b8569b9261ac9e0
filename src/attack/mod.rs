//! Attacks: one file each, one trait, one registry.
//!
//! An attack is an algorithm plus hyperparameters in one threat model. It is
//! configured by a table in a strategy file (`family = "pgd"` picks the
//! variant of [`AttackConfig`]) and built into an [`Attack`].

pub mod access;
pub mod apgd;
pub mod autoattack;
pub mod bpda;
pub mod cw;
pub mod deepfool;
pub mod eot;
pub mod fab;
pub mod fgsm;
pub mod hopskipjump;
pub mod mim;
pub mod noise;
pub mod pgd;
pub mod pointwise;
pub mod rules;
pub mod spatial;
pub mod square;
pub mod target;
pub mod threat;
pub mod transfer;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{Shape, Split};
use crate::model::{argmax_rows, Model};
use crate::registry::Entry;
use crate::{Error, Result};
pub use access::{Access, LabelOracle, ScoreOracle};
pub use apgd::ApgdConfig;
pub use bpda::BpdaConfig;
pub use cw::CwConfig;
pub use deepfool::DeepFoolConfig;
pub use eot::EotConfig;
pub use fgsm::FgsmConfig;
pub use hopskipjump::HopSkipJumpConfig;
pub use mim::MimConfig;
pub use noise::NoiseConfig;
pub use pgd::PgdConfig;
pub use pointwise::PointwiseConfig;
pub use rules::{check_budget, within_rules, Rules};
pub use spatial::{SpatialBudget, SpatialConfig};
pub use square::SquareConfig;
pub use target::{Objective, Target};
pub use threat::{Norm, ThreatModel, Violation};
pub use transfer::TransferConfig;

/// A white-box crafting algorithm: one batch against a model it may ask
/// for logits and gradients.
pub trait Attack: Send + Sync {
    /// Adversarial versions of the images `x` (true labels `y`) against
    /// `model`. All randomness comes from `rng`.
    fn craft(&self, model: &dyn Model, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32>;
}

/// How an attack gets its signal: what the adaptive attacker needs to know
/// to choose among attacks when a defense masks gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Input gradients of cross-entropy, which saturate on confident models.
    Gradient,
    /// Input gradients of a logit margin, which do not.
    Margin,
    /// BPDA: gradients around a preprocessing step.
    Bpda,
    /// EOT: gradients averaged over a randomized defense.
    Eot,
    /// Scores or labels access, or transfer: no gradient of the target.
    Query,
    /// Logits but no gradient (spatial search, noise): a last resort.
    Search,
}

/// Everything about one attack family, implemented by its config in the
/// family's own file; [`AttackConfig`] hands each configuration out behind
/// it.
pub trait AttackSpec: Send + Sync {
    /// The `name` the strategy file gave it, if any: its label from then on.
    fn name_mut(&mut self) -> &mut Option<String>;
    fn name(&self) -> Option<&str>;
    /// The threat model its examples must stay in.
    fn threat(&self) -> ThreatModel;
    /// What it may ask of the model it attacks (a wrapper: what its inner
    /// attack may).
    fn access(&self) -> Access {
        self.inner().map_or(Access::Whitebox, AttackConfig::access)
    }
    /// How it gets its signal (for the adaptive attacker).
    fn signal(&self) -> Signal;
    /// What distinguishes it in its label after `family-norm-eps`.
    fn label_detail(&self) -> String {
        String::new()
    }
    /// Its label when it has no `name` (`family` is its registry name).
    fn default_label(&self, family: &str) -> String {
        let t = self.threat();
        format!("{family}-{}-{}{}", t.norm, t.eps, self.label_detail())
    }
    /// Why this configuration is invalid, if it is, naming the key.
    fn validate(&self) -> Result<()>;
    /// Why a model it trains of its own (a transfer surrogate) cannot take
    /// images of `shape`, once the dataset's shape is known (a wrapper: its
    /// inner attack's reason).
    fn check_shape(&self, shape: Shape) -> Result<()> {
        self.inner().map_or(Ok(()), |inner| inner.check_shape(Some(shape)))
    }
    /// Queries per image it will spend at most (query attacks; a wrapper:
    /// its inner attack's).
    fn queries(&self) -> Option<usize> {
        self.inner().and_then(AttackConfig::queries)
    }
    /// Its target mode (a wrapper: its inner attack's).
    fn target(&self) -> Target {
        self.inner().map_or(Target::Untargeted, AttackConfig::target)
    }
    /// The attack a wrapper runs (BPDA, EOT, transfer): access, queries,
    /// target and rules then follow from it unless the wrapper says
    /// otherwise.
    fn inner(&self) -> Option<&AttackConfig> {
        None
    }
    /// Whether the rules allow it: a wrapper when they allow what it runs;
    /// any other attack when its norm budget and its queries are within
    /// theirs.
    fn within(&self, rules: &Rules) -> Result<()> {
        if let Some(inner) = self.inner() {
            return within_rules(rules, inner);
        }
        check_budget(rules, self.threat())?;
        match self.queries() {
            Some(queries) if queries > rules.queries => Err(Error::invalid(format!(
                "`queries` = {queries} exceeds the rules' query budget {} (`rules.queries`)",
                rules.queries
            ))),
            _ => Ok(()),
        }
    }
    /// The share of the images an undefended model classifies correctly
    /// that it promises to fool, untargeted, at its variants' budgets: the
    /// conformance suite holds it to this. `None` for baselines.
    fn required_success(&self) -> Option<f64> {
        None
    }
    /// Scale its budget by `factor`; false when its budget is not one `eps`.
    fn scale_budget(&mut self, _factor: f32) -> bool {
        false
    }
    /// Run it against `model` on `x` in batches of `batch` images, handing
    /// it only what its access allows; `train` is the training split that
    /// attacks which learn (transfer) may use.
    fn run(
        &self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        rng: &mut ChaCha8Rng,
        batch: usize,
        train: Option<&Split>,
    ) -> Crafted;
}

crate::registry! {
    /// Every attack a strategy file can name, by `family`: the registry, in
    /// the order `list` shows them. One row per attack file.
    pub enum AttackConfig: dyn AttackSpec, tag = "family" {
        Fgsm(FgsmConfig) = "fgsm",
        Pgd(PgdConfig) = "pgd",
        Mim(MimConfig) = "mim",
        Apgd(ApgdConfig) = "apgd",
        Cw(CwConfig) = "cw",
        DeepFool(DeepFoolConfig) = "deepfool",
        Square(SquareConfig) = "square",
        HopSkipJump(HopSkipJumpConfig) = "hopskipjump",
        Pointwise(PointwiseConfig) = "pointwise",
        Bpda(BpdaConfig) = "bpda",
        Eot(EotConfig) = "eot",
        Spatial(SpatialConfig) = "spatial",
        Transfer(TransferConfig) = "transfer",
        Noise(NoiseConfig) = "noise",
        Fab(fab::FabConfig) = "fab",
        AutoAttack(autoattack::AutoAttackConfig) = "autoattack",
    }
}

/// The registry's rows, for `list` and the conformance suite.
pub const ATTACKS: &[Entry<AttackConfig>] = AttackConfig::ENTRIES;

/// What running an attack produced.
pub struct Crafted {
    pub examples: Vec<f32>,
    /// Queries spent (scores and labels access only).
    pub queries: Option<usize>,
}

impl Crafted {
    /// A white-box attack run batch by batch.
    pub fn whitebox(
        attack: &dyn Attack,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        rng: &mut ChaCha8Rng,
        batch: usize,
    ) -> Crafted {
        Crafted {
            examples: craft_batched(attack, model, x, y, rng, batch),
            queries: None,
        }
    }
}

impl AttackConfig {
    pub fn family(&self) -> &'static str {
        self.registry_name()
    }

    pub fn access(&self) -> Access {
        self.part().access()
    }

    pub fn threat(&self) -> ThreatModel {
        self.part().threat()
    }

    pub fn signal(&self) -> Signal {
        self.part().signal()
    }

    /// The name rows and tables use: the configured `name`, or one made of
    /// the family, norm, budget and whatever else distinguishes it.
    pub fn label(&self) -> String {
        match self.part().name() {
            Some(name) => name.to_string(),
            None => self.part().default_label(self.family()),
        }
    }

    /// Why this configuration is invalid, if it is: names the key.
    pub fn validate(&self) -> Result<()> {
        let t = self.threat();
        if !(t.eps.is_finite() && t.eps > 0.0) {
            return Err(Error::invalid(format!(
                "`eps` must be a positive number, got {}",
                t.eps
            )));
        }
        self.part().validate()
    }

    /// See [`AttackSpec::check_shape`]; with no shape (not known before
    /// the data is loaded) there is nothing to check.
    pub fn check_shape(&self, shape: Option<Shape>) -> Result<()> {
        shape.map_or(Ok(()), |shape| self.part().check_shape(shape))
    }

    /// The attack a wrapper runs (BPDA, EOT, transfer).
    pub fn inner(&self) -> Option<&AttackConfig> {
        self.part().inner()
    }

    /// The attack run through BPDA, if it is a white-box attack not already
    /// wrapped; otherwise itself.
    pub fn through_bpda(&self) -> AttackConfig {
        match self {
            AttackConfig::Bpda(_) => self.clone(),
            a if a.access() != Access::Whitebox => self.clone(),
            a => AttackConfig::Bpda(BpdaConfig {
                name: None,
                attack: Box::new(a.clone()),
            }),
        }
    }

    /// The attack run through EOT with `samples` draws per gradient, if it
    /// is a white-box attack not already wrapped; otherwise itself.
    pub fn through_eot(&self, samples: usize) -> AttackConfig {
        match self {
            AttackConfig::Eot(_) => self.clone(),
            a if a.access() != Access::Whitebox => self.clone(),
            a => AttackConfig::Eot(EotConfig {
                name: None,
                samples,
                attack: Box::new(a.clone()),
            }),
        }
    }

    /// Queries per image the attack will spend at most, for query attacks.
    pub fn queries(&self) -> Option<usize> {
        self.part().queries()
    }

    /// The same attack with its budget scaled by `factor`, for the attacks
    /// whose budget is one `eps`.
    pub fn scaled(&self, factor: f32) -> Option<AttackConfig> {
        let mut copy = self.clone();
        if !copy.part_mut().scale_budget(factor) {
            return None;
        }
        copy.set_name(format!("{}-x{factor}", self.label()));
        Some(copy)
    }

    /// The attack's target mode (wrappers: their inner attack's).
    pub fn target(&self) -> Target {
        self.part().target()
    }

    /// Give the attack a `name` (its label from then on).
    pub fn set_name(&mut self, name: String) {
        *self.part_mut().name_mut() = Some(name);
    }

    /// The same attack without its `name`: two configurations are the same
    /// attack when these are equal.
    pub fn unnamed(&self) -> AttackConfig {
        let mut copy = self.clone();
        *copy.part_mut().name_mut() = None;
        copy
    }

    /// Run the attack against `model` on `x` in batches of `batch` images,
    /// handing it only what its access allows.
    pub fn run(&self, model: &dyn Model, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng, batch: usize) -> Crafted {
        self.run_with(model, x, y, rng, batch, None)
    }

    /// As [`AttackConfig::run`], with the training data that attacks which
    /// learn (transfer) may use.
    pub fn run_with(
        &self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        rng: &mut ChaCha8Rng,
        batch: usize,
        train: Option<&Split>,
    ) -> Crafted {
        self.part().run(model, x, y, rng, batch, train)
    }
}

/// The `name` accessors, the same in every attack config: `name_mut` and
/// `name` over its `name` field.
macro_rules! named {
    () => {
        fn name_mut(&mut self) -> &mut Option<String> {
            &mut self.name
        }
        fn name(&self) -> Option<&str> {
            self.name.as_deref()
        }
    };
}
pub(crate) use named;

/// `run` for a white-box attack: its [`Attack::craft`], batch by batch.
macro_rules! whitebox_run {
    () => {
        fn run(
            &self,
            model: &dyn $crate::model::Model,
            x: &[f32],
            y: &[u8],
            rng: &mut rand_chacha::ChaCha8Rng,
            batch: usize,
            _train: Option<&$crate::data::Split>,
        ) -> $crate::attack::Crafted {
            $crate::attack::Crafted::whitebox(self, model, x, y, rng, batch)
        }
    };
}
pub(crate) use whitebox_run;

/// The loss a gradient attack ascends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttackLoss {
    /// Cross-entropy of the true label.
    #[default]
    Ce,
    /// Carlini-Wagner margin on logits.
    Cw,
}

/// Move every image of `adv` a step of length `step` (in `norm`) along the
/// steepest ascent direction of its gradient.
pub fn ascend(norm: Norm, adv: &mut [f32], grad: &[f32], step: f32, dim: usize) {
    for (a, g) in adv.chunks_mut(dim).zip(grad.chunks(dim)) {
        match norm {
            Norm::Linf => {
                for (a, g) in a.iter_mut().zip(g) {
                    *a += step * g.signum() * (*g != 0.0) as u8 as f32;
                }
            }
            Norm::L2 => {
                let length = g.iter().map(|g| g * g).sum::<f32>().sqrt();
                if length > 1e-12 {
                    for (a, g) in a.iter_mut().zip(g) {
                        *a += step * g / length;
                    }
                }
            }
            Norm::L1 => sparse_l1_step(a, g, step),
        }
    }
}

/// [`ascend`], then `threat.project` around `clean`: one PGD step. For
/// linf both happen in one pass over the batch (the same arithmetic, so
/// the same bits as the two calls).
pub fn ascend_projected(threat: ThreatModel, adv: &mut [f32], grad: &[f32], step: f32, clean: &[f32], dim: usize) {
    if threat.norm != Norm::Linf {
        ascend(threat.norm, adv, grad, step, dim);
        threat.project(adv, clean, dim);
        return;
    }
    // `f32::clamp`'s check that min <= max would keep this loop scalar;
    // comparisons and selects give the same result, NaN included.
    let clamp = |v: f32, low: f32, high: f32| {
        if v < low {
            low
        } else if v > high {
            high
        } else {
            v
        }
    };
    for ((a, g), &x) in adv.iter_mut().zip(grad).zip(clean) {
        let moved = *a + step * g.signum() * (*g != 0.0) as u8 as f32;
        *a = clamp(clamp(moved, x - threat.eps, x + threat.eps), 0.0, 1.0);
    }
}

/// Sparse L1 descent (Tramer & Boneh 2019): spend the step on the top 1%
/// of coordinates by gradient magnitude, skipping those the pixel box
/// would stop (a pixel at 1 cannot grow), in equal shares.
fn sparse_l1_step(a: &mut [f32], g: &[f32], step: f32) {
    let movable = |i: usize| (g[i] > 0.0 && a[i] < 1.0) || (g[i] < 0.0 && a[i] > 0.0);
    let mut candidates: Vec<usize> = (0..a.len()).filter(|&i| movable(i)).collect();
    if candidates.is_empty() {
        return;
    }
    let k = (a.len() / 100).max(1).min(candidates.len());
    candidates.select_nth_unstable_by(k - 1, |&i, &j| g[j].abs().total_cmp(&g[i].abs()).then(i.cmp(&j)));
    for &i in &candidates[..k] {
        a[i] += step * g[i].signum() / k as f32;
    }
}

/// A uniformly random point of the threat model around each image (for l2,
/// a uniformly random direction at a radius drawn uniformly in [0, eps]).
pub fn random_start(threat: ThreatModel, x: &[f32], dim: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut adv = x.to_vec();
    for a in adv.chunks_mut(dim) {
        match threat.norm {
            Norm::Linf => a.iter_mut().for_each(|v| *v += rng.gen_range(-threat.eps..=threat.eps)),
            Norm::L1 => {
                // Laplace-distributed direction, radius uniform in [0, eps].
                let direction: Vec<f32> = (0..dim)
                    .map(|_| {
                        let u: f32 = rng.gen_range(f32::EPSILON..1.0);
                        if rng.gen::<bool>() {
                            -u.ln()
                        } else {
                            u.ln()
                        }
                    })
                    .collect();
                let length = Norm::L1.of(&direction).max(1e-12);
                let radius = threat.eps * rng.gen_range(0.0f32..=1.0);
                for (v, d) in a.iter_mut().zip(direction) {
                    *v += radius * d / length;
                }
            }
            Norm::L2 => {
                let direction: Vec<f32> = (0..dim).map(|_| standard_normal(rng)).collect();
                let length = Norm::L2.of(&direction).max(1e-12);
                let radius = threat.eps * rng.gen_range(0.0f32..=1.0);
                for (v, d) in a.iter_mut().zip(direction) {
                    *v += radius * d / length;
                }
            }
        }
    }
    threat.project(&mut adv, x, dim);
    adv
}

/// A standard normal sample (Box-Muller), from our own stream so that
/// results do not depend on another crate's sampling algorithm.
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Run `attack` over `x` in batches of `batch` images (bounding memory).
pub fn craft_batched(
    attack: &dyn Attack,
    model: &dyn Model,
    x: &[f32],
    y: &[u8],
    rng: &mut ChaCha8Rng,
    batch: usize,
) -> Vec<f32> {
    let dim = model.input_dim();
    x.chunks(batch * dim)
        .zip(y.chunks(batch))
        .flat_map(|(xb, yb)| attack.craft(model, xb, yb, rng))
        .collect()
}

/// Run a query attack batch by batch, each batch with an oracle of its own
/// (made for that many images), adding up the queries spent.
pub(crate) fn in_batches<O>(
    x: &[f32],
    y: &[u8],
    dim: usize,
    batch: usize,
    oracle_for: impl Fn(usize) -> O,
    mut craft: impl FnMut(&mut O, &[f32], &[u8]) -> Vec<f32>,
    spent: impl Fn(&O) -> usize,
) -> Crafted {
    let mut queries = 0;
    let mut examples = Vec::with_capacity(x.len());
    for (xb, yb) in x.chunks(batch * dim).zip(y.chunks(batch)) {
        let mut oracle = oracle_for(yb.len());
        examples.extend(craft(&mut oracle, xb, yb));
        queries += spent(&oracle);
    }
    Crafted {
        examples,
        queries: Some(queries),
    }
}

/// For each image, whether `model` misclassifies it.
pub fn fooled(model: &dyn Model, x: &[f32], y: &[u8]) -> Vec<bool> {
    argmax_rows(&model.logits(x), model.classes())
        .iter()
        .zip(y)
        .map(|(p, t)| p != t)
        .collect()
}

#[cfg(test)]
pub(crate) mod conformance;
