//! Attacks: one file each, one trait, one registry.
//!
//! An attack is an algorithm plus hyperparameters in one threat model. It is
//! configured by a table in a strategy file (`family = "pgd"` picks the
//! variant of [`AttackConfig`]) and built into an [`Attack`].

pub mod access;
pub mod apgd;
pub mod bpda;
pub mod cw;
pub mod deepfool;
pub mod eot;
pub mod fgsm;
pub mod hopskipjump;
pub mod mim;
pub mod noise;
pub mod pgd;
pub mod rules;
pub mod spatial;
pub mod square;
pub mod target;
pub mod threat;
pub mod transfer;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::{argmax_rows, Model};
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
pub use rules::{check_budget, within_rules, Rules};
pub use spatial::{SpatialBudget, SpatialConfig};
pub use square::SquareConfig;
pub use target::{Objective, Target};
pub use threat::{Norm, Norms, ThreatModel, Violation};
pub use transfer::TransferConfig;

/// A crafting algorithm with its hyperparameters.
pub trait Attack: Send + Sync {
    /// Adversarial versions of the images `x` (true labels `y`) against
    /// `model`. All randomness comes from `rng`.
    fn craft(&self, model: &dyn Model, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) -> Vec<f32>;
}

/// Every attack a strategy file can name, by `family`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case")]
pub enum AttackConfig {
    Fgsm(FgsmConfig),
    Pgd(PgdConfig),
    Mim(MimConfig),
    Apgd(ApgdConfig),
    Cw(CwConfig),
    #[serde(rename = "deepfool")]
    DeepFool(DeepFoolConfig),
    Square(SquareConfig),
    #[serde(rename = "hopskipjump")]
    HopSkipJump(HopSkipJumpConfig),
    Noise(NoiseConfig),
    Bpda(BpdaConfig),
    Transfer(TransferConfig),
    Spatial(SpatialConfig),
    Eot(EotConfig),
}

/// A built attack, by the access it has: each kind is handed only what its
/// access allows.
pub enum Built {
    Whitebox(Box<dyn Attack>),
    Scores(SquareConfig),
    Labels(HopSkipJumpConfig),
    /// A white-box attack run through BPDA.
    Bpda(Box<AttackConfig>),
    /// A white-box attack run on a surrogate.
    Transfer(TransferConfig),
    /// Rotations and translations, rendered by trusted code.
    Spatial(SpatialConfig),
    /// A white-box attack on gradients averaged over a randomized defense.
    Eot(EotConfig),
}

/// What running an attack produced.
pub struct Crafted {
    pub examples: Vec<f32>,
    /// Queries spent (scores and labels access only).
    pub queries: Option<usize>,
}

/// One registered attack family.
pub struct AttackEntry {
    pub family: &'static str,
    pub help: &'static str,
    /// A typical configuration, used by `list` and by the conformance suite.
    pub example: fn() -> AttackConfig,
}

/// The registry: every attack family, in the order `list` shows them.
pub const ATTACKS: &[AttackEntry] = &[
    AttackEntry {
        family: "fgsm",
        help: "fast gradient sign method, one step of size eps (Goodfellow et al. 2015); linf or l2",
        example: || AttackConfig::Fgsm(FgsmConfig::new(Norm::Linf, 0.3)),
    },
    AttackEntry {
        family: "pgd",
        help: "projected gradient descent with random start and restarts, CE or CW-margin loss (Madry et al. 2018); linf, l2, or l1 by sparse L1 descent (Tramer & Boneh 2019)",
        example: || AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.3)),
    },
    AttackEntry {
        family: "mim",
        help: "momentum iterative FGSM: steps along an accumulated L1-normalized gradient (Dong et al. 2018); linf or l2",
        example: || AttackConfig::Mim(MimConfig::new(Norm::Linf, 0.3)),
    },
    AttackEntry {
        family: "apgd",
        help: "auto-PGD: step size halved when progress stalls, momentum, CE or DLR loss (Croce & Hein 2020); linf or l2",
        example: || AttackConfig::Apgd(ApgdConfig::new(Norm::Linf, 0.3)),
    },
    AttackEntry {
        family: "cw",
        help: "Carlini-Wagner L2: tanh variables, Adam, binary search over c; the minimal example is projected onto the budget (Carlini & Wagner 2017)",
        example: || AttackConfig::Cw(CwConfig::new(2.0)),
    },
    AttackEntry {
        family: "deepfool",
        help: "DeepFool: steps to the nearest linearized decision boundary, then projected onto the budget (Moosavi-Dezfooli et al. 2016); l2 or linf",
        example: || AttackConfig::DeepFool(DeepFoolConfig::new(Norm::L2, 2.0)),
    },
    AttackEntry {
        family: "square",
        help: "square attack: random search from probabilities only, within a query budget (Andriushchenko et al. 2020); linf or l2; scores access",
        example: || AttackConfig::Square(SquareConfig::new(0.3)),
    },
    AttackEntry {
        family: "hopskipjump",
        help: "HopSkipJump: boundary search from top-1 labels only, within a query budget (Chen et al. 2020); l2 or linf; labels access",
        example: || AttackConfig::HopSkipJump(HopSkipJumpConfig::new(Norm::L2, 2.0)),
    },
    AttackEntry {
        family: "bpda",
        help: "wrapper: runs `attack` with a non-differentiable preprocessing step treated as the identity in the backward pass (Athalye et al. 2018)",
        example: || {
            AttackConfig::Bpda(BpdaConfig {
                name: None,
                attack: Box::new(AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.3))),
            })
        },
    },
    AttackEntry {
        family: "eot",
        help: "wrapper: runs `attack` on input gradients averaged over `samples` draws of a randomized defense (Athalye et al. 2018)",
        example: || {
            AttackConfig::Eot(EotConfig {
                name: None,
                samples: 4,
                attack: Box::new(AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.3))),
            })
        },
    },
    AttackEntry {
        family: "spatial",
        help: "the worst rotation and translation within `degrees` and `pixels`, by grid search (Engstrom et al. 2019)",
        example: || AttackConfig::Spatial(SpatialConfig::new(30.0, 3)),
    },
    AttackEntry {
        family: "transfer",
        help: "trains its own surrogate on training data and runs `attack` on it; never queries the target (Papernot et al. 2016)",
        example: || {
            AttackConfig::Transfer(TransferConfig {
                name: None,
                attack: Box::new(AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.3))),
                surrogate: crate::model::ModelConfig::Mlp { hidden: vec![128] },
                images: 2000,
                epochs: 3,
                seed: 0,
            })
        },
    },
    AttackEntry {
        family: "noise",
        help: "uniform or Gaussian random noise inside the budget: the baseline any attack must beat",
        example: || AttackConfig::Noise(NoiseConfig::new(Norm::Linf, 0.3)),
    },
];

impl AttackConfig {
    pub fn family(&self) -> &'static str {
        match self {
            AttackConfig::Fgsm(_) => "fgsm",
            AttackConfig::Pgd(_) => "pgd",
            AttackConfig::Mim(_) => "mim",
            AttackConfig::Apgd(_) => "apgd",
            AttackConfig::Cw(_) => "cw",
            AttackConfig::DeepFool(_) => "deepfool",
            AttackConfig::Square(_) => "square",
            AttackConfig::HopSkipJump(_) => "hopskipjump",
            AttackConfig::Noise(_) => "noise",
            AttackConfig::Bpda(_) => "bpda",
            AttackConfig::Transfer(_) => "transfer",
            AttackConfig::Spatial(_) => "spatial",
            AttackConfig::Eot(_) => "eot",
        }
    }

    /// What the attack may ask of the model it attacks.
    pub fn access(&self) -> Access {
        match self {
            AttackConfig::Square(_) => Access::Scores,
            AttackConfig::HopSkipJump(_) => Access::Labels,
            AttackConfig::Bpda(c) => c.attack.access(),
            AttackConfig::Eot(c) => c.attack.access(),
            AttackConfig::Transfer(_) => Access::Transfer,
            _ => Access::Whitebox,
        }
    }

    pub fn threat(&self) -> ThreatModel {
        match self {
            AttackConfig::Fgsm(c) => c.threat(),
            AttackConfig::Pgd(c) => c.threat(),
            AttackConfig::Mim(c) => c.threat(),
            AttackConfig::Apgd(c) => c.threat(),
            AttackConfig::Cw(c) => c.threat(),
            AttackConfig::DeepFool(c) => c.threat(),
            AttackConfig::Square(c) => c.threat(),
            AttackConfig::HopSkipJump(c) => c.threat(),
            AttackConfig::Noise(c) => c.threat(),
            AttackConfig::Bpda(c) => c.attack.threat(),
            AttackConfig::Transfer(c) => c.attack.threat(),
            // Not an Lp ball: any image in [0,1] passes this check, and the
            // transformation itself is enforced by rendering (see spatial.rs).
            AttackConfig::Spatial(_) => ThreatModel {
                norm: Norm::Linf,
                eps: 1.0,
            },
            AttackConfig::Eot(c) => c.attack.threat(),
        }
    }

    /// The name rows and tables use: the configured `name`, or one made of
    /// the family, norm, budget and whatever else distinguishes it.
    pub fn label(&self) -> String {
        if let AttackConfig::Bpda(c) = self {
            return c.name.clone().unwrap_or_else(|| format!("bpda-{}", c.attack.label()));
        }
        if let AttackConfig::Transfer(c) = self {
            return c
                .name
                .clone()
                .unwrap_or_else(|| format!("transfer-{}", c.attack.label()));
        }
        if let AttackConfig::Eot(c) = self {
            return c
                .name
                .clone()
                .unwrap_or_else(|| format!("eot{}-{}", c.samples, c.attack.label()));
        }
        if let AttackConfig::Spatial(c) = self {
            return c
                .name
                .clone()
                .unwrap_or_else(|| format!("spatial-{}deg-{}px", c.degrees, c.pixels));
        }
        let (name, detail) = match self {
            AttackConfig::Fgsm(c) => (&c.name, c.target.label_detail().to_string()),
            AttackConfig::Pgd(c) => (&c.name, c.label_detail()),
            AttackConfig::Mim(c) => (&c.name, c.target.label_detail().to_string()),
            AttackConfig::Apgd(c) => (
                &c.name,
                format!(
                    "{}{}",
                    if c.loss == apgd::ApgdLoss::Dlr { "-dlr" } else { "" },
                    c.target.label_detail()
                ),
            ),
            AttackConfig::Cw(c) => (&c.name, c.target.label_detail().to_string()),
            AttackConfig::DeepFool(c) => (&c.name, String::new()),
            AttackConfig::Square(c) => (&c.name, format!("-{}q{}", c.queries, c.target.label_detail())),
            AttackConfig::HopSkipJump(c) => (&c.name, format!("-{}q{}", c.queries, c.target.label_detail())),
            AttackConfig::Noise(c) => (&c.name, c.label_detail()),
            AttackConfig::Bpda(c) => (&c.name, String::new()),
            AttackConfig::Transfer(c) => (&c.name, String::new()),
            AttackConfig::Spatial(c) => (&c.name, String::new()),
            AttackConfig::Eot(c) => (&c.name, String::new()),
        };
        if let Some(name) = name {
            return name.clone();
        }
        let t = self.threat();
        format!("{}-{}-{}{}", self.family(), t.norm, t.eps, detail)
    }

    /// Why this configuration is invalid, if it is: names the key.
    pub fn validate(&self) -> Result<(), String> {
        let t = self.threat();
        if !(t.eps.is_finite() && t.eps > 0.0) {
            return Err(format!("`eps` must be a positive number, got {}", t.eps));
        }
        match self {
            AttackConfig::Fgsm(_) => Ok(()),
            AttackConfig::Pgd(c) => c.validate(),
            AttackConfig::Mim(c) => c.validate(),
            AttackConfig::Apgd(c) => c.validate(),
            AttackConfig::Cw(c) => c.validate(),
            AttackConfig::DeepFool(c) => c.validate(),
            AttackConfig::Square(c) => c.validate(),
            AttackConfig::HopSkipJump(c) => c.validate(),
            AttackConfig::Noise(_) => Ok(()),
            AttackConfig::Bpda(c) => {
                c.attack.validate().map_err(|e| format!("in `attack`: {e}"))?;
                match *c.attack {
                    AttackConfig::Bpda(_) => Err("`attack` of a bpda wrapper cannot be another bpda".into()),
                    ref inner if inner.access() != Access::Whitebox => {
                        Err("`attack` of a bpda wrapper must be a white-box attack (it needs gradients)".into())
                    }
                    _ => Ok(()),
                }
            }
            AttackConfig::Transfer(c) => c.validate(),
            AttackConfig::Spatial(c) => c.validate(),
            AttackConfig::Eot(c) => {
                c.attack.validate().map_err(|e| format!("in `attack`: {e}"))?;
                if c.samples == 0 {
                    return Err("`samples` must be at least 1".into());
                }
                if c.attack.access() != Access::Whitebox || matches!(*c.attack, AttackConfig::Eot(_)) {
                    return Err("`attack` of an eot wrapper must be a white-box attack other than eot".into());
                }
                Ok(())
            }
        }
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

    /// Queries per image the attack will spend at most, for query attacks.
    pub fn queries(&self) -> Option<usize> {
        match self {
            AttackConfig::Square(c) => Some(c.queries),
            AttackConfig::HopSkipJump(c) => Some(c.queries),
            AttackConfig::Bpda(c) => c.attack.queries(),
            AttackConfig::Transfer(_) | AttackConfig::Spatial(_) => None,
            AttackConfig::Eot(c) => c.attack.queries(),
            _ => None,
        }
    }

    /// The same attack with its budget scaled by `factor`, for the attacks
    /// whose budget is one `eps`.
    pub fn scaled(&self, factor: f32) -> Option<AttackConfig> {
        let mut copy = self.clone();
        match &mut copy {
            AttackConfig::Fgsm(c) => c.eps *= factor,
            AttackConfig::Pgd(c) => {
                c.eps *= factor;
                c.step_size = c.step_size.map(|s| s * factor);
            }
            AttackConfig::Mim(c) => c.eps *= factor,
            AttackConfig::Apgd(c) => c.eps *= factor,
            _ => return None,
        }
        copy.set_name(format!("{}-x{factor}", self.label()));
        Some(copy)
    }

    /// The attack's target mode (wrappers: their inner attack's).
    pub fn target(&self) -> Target {
        match self {
            AttackConfig::Fgsm(c) => c.target,
            AttackConfig::Pgd(c) => c.target,
            AttackConfig::Mim(c) => c.target,
            AttackConfig::Apgd(c) => c.target,
            AttackConfig::Cw(c) => c.target,
            AttackConfig::Square(c) => c.target,
            AttackConfig::HopSkipJump(c) => c.target,
            AttackConfig::Bpda(c) => c.attack.target(),
            AttackConfig::Eot(c) => c.attack.target(),
            AttackConfig::Transfer(c) => c.attack.target(),
            _ => Target::Untargeted,
        }
    }

    /// Give the attack a `name` (its label from then on).
    pub fn set_name(&mut self, name: String) {
        match self {
            AttackConfig::Fgsm(c) => c.name = Some(name),
            AttackConfig::Pgd(c) => c.name = Some(name),
            AttackConfig::Mim(c) => c.name = Some(name),
            AttackConfig::Apgd(c) => c.name = Some(name),
            AttackConfig::Cw(c) => c.name = Some(name),
            AttackConfig::DeepFool(c) => c.name = Some(name),
            AttackConfig::Square(c) => c.name = Some(name),
            AttackConfig::HopSkipJump(c) => c.name = Some(name),
            AttackConfig::Noise(c) => c.name = Some(name),
            AttackConfig::Bpda(c) => c.name = Some(name),
            AttackConfig::Transfer(c) => c.name = Some(name),
            AttackConfig::Spatial(c) => c.name = Some(name),
            AttackConfig::Eot(c) => c.name = Some(name),
        }
    }

    /// The same attack without its `name`: two configurations are the same
    /// attack when these are equal.
    pub fn unnamed(&self) -> AttackConfig {
        let mut copy = self.clone();
        match &mut copy {
            AttackConfig::Fgsm(c) => c.name = None,
            AttackConfig::Pgd(c) => c.name = None,
            AttackConfig::Mim(c) => c.name = None,
            AttackConfig::Apgd(c) => c.name = None,
            AttackConfig::Cw(c) => c.name = None,
            AttackConfig::DeepFool(c) => c.name = None,
            AttackConfig::Square(c) => c.name = None,
            AttackConfig::HopSkipJump(c) => c.name = None,
            AttackConfig::Noise(c) => c.name = None,
            AttackConfig::Bpda(c) => c.name = None,
            AttackConfig::Transfer(c) => c.name = None,
            AttackConfig::Spatial(c) => c.name = None,
            AttackConfig::Eot(c) => c.name = None,
        }
        copy
    }

    pub fn build(&self) -> Built {
        match self {
            AttackConfig::Fgsm(c) => Built::Whitebox(Box::new(c.clone())),
            AttackConfig::Pgd(c) => Built::Whitebox(Box::new(c.clone())),
            AttackConfig::Mim(c) => Built::Whitebox(Box::new(c.clone())),
            AttackConfig::Apgd(c) => Built::Whitebox(Box::new(c.clone())),
            AttackConfig::Cw(c) => Built::Whitebox(Box::new(c.clone())),
            AttackConfig::DeepFool(c) => Built::Whitebox(Box::new(c.clone())),
            AttackConfig::Square(c) => Built::Scores(c.clone()),
            AttackConfig::HopSkipJump(c) => Built::Labels(c.clone()),
            AttackConfig::Noise(c) => Built::Whitebox(Box::new(c.clone())),
            AttackConfig::Bpda(c) => Built::Bpda(c.attack.clone()),
            AttackConfig::Transfer(c) => Built::Transfer(c.clone()),
            AttackConfig::Spatial(c) => Built::Spatial(c.clone()),
            AttackConfig::Eot(c) => Built::Eot(c.clone()),
        }
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
        train: Option<&crate::data::Split>,
    ) -> Crafted {
        let dim = model.input_dim();
        match self.build() {
            Built::Whitebox(attack) => Crafted {
                examples: craft_batched(attack.as_ref(), model, x, y, rng, batch),
                queries: None,
            },
            Built::Scores(attack) => in_batches(
                x,
                y,
                dim,
                batch,
                |n| ScoreOracle::new(model, n, attack.queries),
                |oracle, xb, yb| attack.craft(oracle, xb, yb, rng),
                |oracle| oracle.queries(),
            ),
            Built::Labels(attack) => in_batches(
                x,
                y,
                dim,
                batch,
                |n| LabelOracle::new(model, n, attack.queries),
                |oracle, xb, yb| attack.craft(oracle, xb, yb, rng),
                |oracle| oracle.queries(),
            ),
            Built::Bpda(attack) => attack.run_with(&bpda::Bpda { model }, x, y, rng, batch, train),
            Built::Transfer(attack) => attack.run(train, x, y, rng, batch),
            Built::Eot(c) => c.attack.run_with(
                &eot::Eot {
                    model,
                    samples: c.samples,
                },
                x,
                y,
                rng,
                batch,
                train,
            ),
            Built::Spatial(attack) => Crafted {
                examples: x
                    .chunks(batch * dim)
                    .zip(y.chunks(batch))
                    .flat_map(|(xb, yb)| attack.craft(model, xb, yb, rng))
                    .collect(),
                queries: None,
            },
        }
    }
}

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
fn in_batches<O>(
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
