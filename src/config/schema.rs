//! The tournament file's schema: the serde structs a file is parsed into,
//! as written (strategy references unresolved).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::agent::PolicyConfig;
use crate::attack::{AttackConfig, Rules};
use crate::defense::DefenseConfig;
use crate::model::{Engine, ModelConfig, OptimizerConfig};

/// A tournament file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TournamentFile {
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    /// Several seeds: every match is played once per seed, and the summary
    /// gives means with 95% confidence intervals. When given, `seed` is the
    /// first of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    pub rounds: usize,
    /// The engine models run on: `native` (default) or `dfdx`.
    #[serde(default)]
    pub engine: Engine,
    pub data: DataConfig,
    #[serde(default)]
    pub sizes: Sizes,
    pub model: ModelConfig,
    #[serde(default)]
    pub pretrain: PretrainConfig,
    pub rules: Rules,
    pub attackers: Vec<AttackerEntry>,
    pub defenders: Vec<DefenderEntry>,
    /// Held-out attacks that only measure generalization.
    #[serde(default)]
    pub unseen: Vec<AttackConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `synthetic-digits`, `mnist`, `fashion-mnist`, or `idx` with `path`.
    pub dataset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Training images used (the first ones of the split).
    #[serde(default = "default_train")]
    pub train: usize,
    /// Test images the evaluation subset is drawn from.
    #[serde(default = "default_test")]
    pub test: usize,
}

fn default_train() -> usize {
    5000
}
fn default_test() -> usize {
    1000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    /// Evaluation images, drawn once per tournament from the test split.
    #[serde(default = "default_eval")]
    pub eval: usize,
    /// Training images an attacker crafts on per round.
    #[serde(default = "default_craft")]
    pub craft: usize,
    /// Training images set aside, once per seed, for the attackers alone:
    /// every reward a policy observes, its probes and the divergence check
    /// are measured on them, and nothing ever trains on them. Default:
    /// [`DEFAULT_ATTACKER_SLICE`], or a fifth of `data.train` if that is less.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attacker_slice: Option<usize>,
}

/// The attacker slice's default size.
pub const DEFAULT_ATTACKER_SLICE: usize = 200;

impl Sizes {
    /// The attacker slice's size for `train` training images.
    pub fn attacker_slice(&self, train: usize) -> usize {
        self.attacker_slice.unwrap_or(DEFAULT_ATTACKER_SLICE.min(train / 5))
    }
}

fn default_eval() -> usize {
    200
}
fn default_craft() -> usize {
    256
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            eval: default_eval(),
            craft: default_craft(),
            attacker_slice: None,
        }
    }
}

/// Clean training before round 1, shared by every defender of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default)]
    pub optimizer: OptimizerConfig,
}

fn default_epochs() -> usize {
    3
}
fn default_batch() -> usize {
    64
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            epochs: default_epochs(),
            batch: default_batch(),
            optimizer: OptimizerConfig::default(),
        }
    }
}

/// An attacker: inline, or `use = "attackers/NAME.toml"` (optionally with
/// a `name` override).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackerEntry {
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repertoire: Option<Vec<AttackConfig>>,
}

/// A defender: inline, or `use = "defenders/NAME.toml"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefenderEntry {
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DefenseConfig>,
}

impl TournamentFile {
    /// The seeds the tournament runs, in order (`[seed]` unless `seeds` lists several).
    pub fn seed_list(&self) -> Vec<u64> {
        if self.seeds.is_empty() {
            vec![self.seed]
        } else {
            self.seeds.clone()
        }
    }

    /// Run every match for each of `seeds` (one seed: the plain `seed`).
    pub fn set_seeds(&mut self, seeds: Vec<u64>) {
        self.seed = seeds[0];
        self.seeds = if seeds.len() > 1 { seeds } else { Vec::new() };
    }
}

pub const DATASETS: &[(&str, &str)] = &[
    (
        "synthetic-digits",
        "built in: 28x28 digits drawn from strokes with random affine transforms, generated from the seed",
    ),
    (
        "mnist",
        "MNIST IDX files from $REDQUEEN_DATA/mnist or /usr/share/datasets/mnist",
    ),
    (
        "fashion-mnist",
        "Fashion-MNIST IDX files from $REDQUEEN_DATA/fashion-mnist or /usr/share/datasets/fashion-mnist",
    ),
    (
        "idx",
        "any folder of the four MNIST-format IDX files (gzip or raw), given as `path`",
    ),
];

/// The image size every model takes (MNIST format).
pub const IMAGE_SIZE: (usize, usize) = (28, 28);
