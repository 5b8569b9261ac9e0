//! The tournament file's schema: the serde structs a file is parsed into,
//! as written (strategy references unresolved).

use crate::data::Shape;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::agent::PolicyConfig;
use crate::attack::{AttackConfig, Rules};
use crate::defense::DefenseConfig;
use crate::model::{EarlyStop, Engine, Length, ModelConfig, OptimizerConfig, TrainConfig};

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
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "listed_seeds")]
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
    /// A specialist per threat model of the unseen panel, the yardstick of
    /// what a defender could have had there (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialists: Option<SpecialistsConfig>,
}

/// `[specialists]`: for each threat model and budget of the unseen panel,
/// the pretrained model trained Madry-style with PGD in that threat model
/// (a spatial attack: against the attack itself), once per seed, by the
/// matrix's training. `batch`, `optimizer` and `attack_steps` default to
/// the shipped `pgd-at` defender's (`strategies/defenders/pgd-at.toml`),
/// `steps` to what that defender trains over the whole match, so that a
/// specialist spends as many gradient evaluations as it; `eps_warmup` to
/// none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialistsConfig {
    /// Training steps (default: `rounds` times the shipped pgd-at's steps
    /// per round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Steps of the PGD attack it trains on (default: the shipped pgd-at's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_steps: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerConfig>,
    /// Steps over which the training attack's budget grows from 0.
    #[serde(default, skip_serializing_if = "is_zero_steps")]
    pub eps_warmup: usize,
}

/// `seeds` as written: absent means `seed` alone, but an empty list would
/// too, silently, and whoever wrote it meant some seeds.
fn listed_seeds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
    let seeds = Vec::<u64>::deserialize(deserializer)?;
    if seeds.is_empty() {
        return Err(serde::de::Error::custom(
            "`seeds = []` lists no seed; list at least one (`seeds = [0, 1, 2]`), or remove `seeds` to run `seed` alone",
        ));
    }
    Ok(seeds)
}

fn is_zero_steps(n: &usize) -> bool {
    *n == 0
}

impl SpecialistsConfig {
    /// The settings a specialist trains with, for a match of `rounds`
    /// rounds, and the PGD steps of its attack.
    pub fn training(&self, rounds: usize) -> (crate::config::matrix::MatrixTraining, usize) {
        let shipped = shipped_pgd_at();
        let training = crate::config::matrix::MatrixTraining {
            steps: self.steps.unwrap_or(rounds.saturating_mul(shipped.steps)),
            batch: self.batch.unwrap_or(shipped.batch),
            optimizer: self.optimizer.clone().unwrap_or(shipped.optimizer),
            eps_warmup: self.eps_warmup,
            early_stop: None,
        };
        (training, self.attack_steps.unwrap_or(shipped.attack.steps))
    }

    /// The attack a specialist for `unseen` trains on: PGD in its threat
    /// model, or a spatial attack itself (it has no norm ball).
    pub fn attack_for(&self, unseen: &AttackConfig, attack_steps: usize) -> AttackConfig {
        // A wrapper (EOT, BPDA, transfer) has its inner attack's threat.
        let mut innermost = unseen;
        while let Some(inner) = innermost.inner() {
            innermost = inner;
        }
        if let AttackConfig::Spatial(_) = innermost {
            return innermost.clone();
        }
        let threat = unseen.threat();
        let mut pgd = crate::attack::PgdConfig::new(threat.norm, threat.eps);
        pgd.steps = attack_steps;
        AttackConfig::Pgd(pgd)
    }

    pub fn validate(&self, rounds: usize) -> crate::Result<()> {
        let (training, attack_steps) = self.training(rounds);
        let invalid = |what: &str| Err(crate::Error::invalid(format!("[specialists]: {what}")));
        if training.steps == 0 || attack_steps == 0 {
            return invalid("`steps` and `attack_steps` must be at least 1");
        }
        if self.eps_warmup >= training.steps {
            return invalid("`eps_warmup` must be shorter than `steps`");
        }
        crate::defense::validate_training(("steps", training.steps), training.batch, &training.optimizer)
            .map_err(|e| e.within("[specialists]"))
    }
}

/// The shipped `pgd-at` defender's settings, the specialists' defaults.
fn shipped_pgd_at() -> crate::defense::pgd_at::PgdAtConfig {
    #[derive(Deserialize)]
    struct File {
        strategy: DefenseConfig,
    }
    let text = crate::config::builtin::get("defenders/pgd-at.toml").expect("pgd-at.toml is built in");
    match toml::from_str::<File>(text).map(|f| f.strategy) {
        Ok(DefenseConfig::PgdAt(config)) => config,
        other => unreachable!("the shipped pgd-at.toml is a pgd-at defender: {other:?}"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `synthetic-digits`, `mnist`, `fashion-mnist`, `cifar10`, or `idx`
    /// with `path`.
    pub dataset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Training images used (the first ones of the split).
    #[serde(default = "default_train")]
    pub train: usize,
    /// Test images the evaluation subset is drawn from.
    #[serde(default = "default_test")]
    pub test: usize,
    /// The classes' names, label 0 first, for the gallery and the report
    /// (default: Fashion-MNIST's built in; digits name themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

/// CIFAR-10's classes, label 0 first (as its `batches.meta.txt` lists them).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Fashion-MNIST's classes, label 0 first (Xiao, Rasul & Vollgraf 2017).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

impl DataConfig {
    /// The classes' names: `classes` when given, else the dataset's built-in
    /// names (Fashion-MNIST's, CIFAR-10's); empty for digits, whose labels
    /// are their names.
    pub fn class_names(&self) -> Vec<String> {
        let built_in = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        match (&self.classes, self.dataset.as_str()) {
            (Some(names), _) => names.clone(),
            (None, "fashion-mnist") => built_in(&FASHION_MNIST_CLASSES),
            (None, "cifar10") => built_in(&CIFAR10_CLASSES),
            (None, _) => Vec::new(),
        }
    }

    /// The shape of the datasets whose shape never varies (the synthetic
    /// digits, CIFAR-10), read from nothing on disk.
    pub fn fixed_shape(&self) -> Option<Shape> {
        match self.dataset.as_str() {
            "cifar10" => Some(Shape::CIFAR),
            "synthetic-digits" => Some(Shape::MNIST),
            _ => None,
        }
    }

    /// The images' shape where it is known before loading: the fixed shapes
    /// of the synthetic digits and CIFAR-10, or what an IDX folder's
    /// train-images header says (`mnist`, `fashion-mnist` and `idx` alike).
    /// `None` when the header cannot be read (loading reports why).
    pub fn known_shape(&self) -> Option<Shape> {
        match self.dataset.as_str() {
            "cifar10" | "synthetic-digits" => self.fixed_shape(),
            // IDX folders, named or not: what the train-images header says.
            name => {
                let dir = crate::data::source_dir(name, self.path.as_deref()).ok()??;
                let (_, rows, cols) = crate::data::idx_image_sizes(&dir).into_iter().next()?;
                // A header promising more than any file could hold is the
                // loader's to refuse; no model is sized from it.
                (rows.checked_mul(cols)? <= 1 << 28).then(|| Shape::gray(rows, cols))
            }
        }
    }
}

impl Default for DataConfig {
    /// The built-in synthetic digits at their default sizes.
    fn default() -> DataConfig {
        DataConfig {
            dataset: "synthetic-digits".into(),
            path: None,
            train: default_train(),
            test: default_test(),
            classes: None,
        }
    }
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

/// Training before round 1, shared by every defender of a model: clean by
/// default, or adversarial (Madry et al.) when it names an `attack`, so that
/// a tournament can start every defender from a robust model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPretrain", into = "RawPretrain")]
pub struct PretrainConfig {
    /// `epochs` over the training split (default 3) or `steps`.
    pub length: Length,
    pub batch: usize,
    pub optimizer: OptimizerConfig,
    /// Adversarial pretraining: every step crafts this attack against the
    /// model as it trains and trains on the result only.
    pub attack: Option<AttackConfig>,
    /// Steps over which the attack's budget grows linearly from 0.
    pub eps_warmup: usize,
    /// Early stopping on PGD accuracy at the attack's budget, on training
    /// images held out of pretraining.
    pub early_stop: Option<EarlyStop>,
}

/// `[pretrain]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPretrain {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    epochs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    steps: Option<usize>,
    #[serde(default = "default_batch")]
    batch: usize,
    #[serde(default)]
    optimizer: OptimizerConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attack: Option<AttackConfig>,
    #[serde(default, skip_serializing_if = "is_zero")]
    eps_warmup: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    early_stop: Option<EarlyStop>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl TryFrom<RawPretrain> for PretrainConfig {
    type Error = crate::Error;

    fn try_from(raw: RawPretrain) -> crate::Result<PretrainConfig> {
        let length = match (raw.epochs, raw.steps) {
            (Some(_), Some(_)) => {
                return Err(crate::Error::invalid(
                    "give `epochs` or `steps`, not both: the length is one or the other",
                ))
            }
            (_, Some(steps)) => Length::Steps(steps),
            (epochs, None) => Length::Epochs(epochs.unwrap_or_else(default_epochs)),
        };
        if raw.attack.is_none() {
            for (key, given) in [
                ("eps_warmup", raw.eps_warmup > 0),
                ("early_stop", raw.early_stop.is_some()),
            ] {
                if given {
                    return Err(crate::Error::invalid(format!(
                        "`{key}` applies to adversarial pretraining: name its `attack` too"
                    )));
                }
            }
        }
        Ok(PretrainConfig {
            length,
            batch: raw.batch,
            optimizer: raw.optimizer,
            attack: raw.attack,
            eps_warmup: raw.eps_warmup,
            early_stop: raw.early_stop,
        })
    }
}

impl From<PretrainConfig> for RawPretrain {
    fn from(c: PretrainConfig) -> RawPretrain {
        let (epochs, steps) = match c.length {
            Length::Epochs(epochs) => (Some(epochs), None),
            Length::Steps(steps) => (None, Some(steps)),
        };
        RawPretrain {
            epochs,
            steps,
            batch: c.batch,
            optimizer: c.optimizer,
            attack: c.attack,
            eps_warmup: c.eps_warmup,
            early_stop: c.early_stop,
        }
    }
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
            length: Length::Epochs(default_epochs()),
            batch: default_batch(),
            optimizer: OptimizerConfig::default(),
            attack: None,
            eps_warmup: 0,
            early_stop: None,
        }
    }
}

impl PretrainConfig {
    /// The trainer's settings for `images` training images.
    pub fn training(&self, images: usize) -> TrainConfig {
        let mut training = match (self.length, &self.attack) {
            // Made batches are counted in steps: an epoch is a pass's worth.
            (Length::Epochs(epochs), Some(_)) => TrainConfig::steps(
                TrainConfig::epochs(epochs, self.batch, self.optimizer.clone()).total_steps(images),
                self.batch,
                self.optimizer.clone(),
            ),
            (Length::Epochs(epochs), None) => TrainConfig::epochs(epochs, self.batch, self.optimizer.clone()),
            (Length::Steps(steps), _) => TrainConfig::steps(steps, self.batch, self.optimizer.clone()),
        };
        training.eps_warmup = self.eps_warmup;
        training.early_stop = self.early_stop.clone();
        training
    }

    /// A shorter version for quick runs: at most 2 epochs, or 200 steps.
    pub fn shorten(&mut self) {
        self.length = match self.length {
            Length::Epochs(epochs) => Length::Epochs(epochs.min(2)),
            Length::Steps(steps) => Length::Steps(steps.min(200)),
        };
        self.eps_warmup = self.eps_warmup.min(match self.length {
            Length::Steps(steps) => steps / 2,
            Length::Epochs(_) => 100,
        });
        if let Some(early) = &mut self.early_stop {
            early.every = early.every.min(50);
            early.images = early.images.min(200);
        }
    }

    /// Why these settings cannot pretrain on `train` images of `shape` (where
    /// it is known before loading), if they cannot.
    pub fn validate(&self, train: usize, shape: Option<Shape>) -> crate::Result<()> {
        let (key, length) = match self.length {
            Length::Epochs(epochs) => ("epochs", epochs),
            Length::Steps(steps) => ("steps", steps),
        };
        crate::defense::validate_training((key, length), self.batch, &self.optimizer)?;
        if let Some(attack) = &self.attack {
            attack
                .validate()
                .and_then(|_| attack.check_shape(shape))
                .map_err(|e| crate::Error::invalid(e.to_string()).within("in `attack`"))?;
        }
        let held_out = self.early_stop.as_ref().map_or(0, |e| e.images);
        let steps = self
            .training(train.saturating_sub(held_out))
            .total_steps(train.saturating_sub(held_out));
        check_adversarial_recipe(
            self.attack.as_ref(),
            self.eps_warmup,
            self.early_stop.as_ref(),
            steps,
            train,
        )
    }
}

/// Checks shared by every adversarial training run with a warm-up or early
/// stopping: both need an attack whose budget is one `eps` (what a warm-up
/// scales and early stopping's PGD scores at), a warm-up shorter than the
/// run, and held-out images at most half of `train`.
pub fn check_adversarial_recipe(
    attack: Option<&AttackConfig>,
    eps_warmup: usize,
    early_stop: Option<&EarlyStop>,
    steps: usize,
    train: usize,
) -> crate::Result<()> {
    let invalid = |message: String| Err(crate::Error::invalid(message));
    if let Some(attack) = attack {
        let key = match (eps_warmup > 0, early_stop.is_some()) {
            (true, _) => Some("eps_warmup"),
            (false, true) => Some("early_stop"),
            (false, false) => None,
        };
        if let Some(key) = key.filter(|_| attack.scaled(0.5).is_none()) {
            return invalid(format!(
                "`{key}` needs an attack whose budget is one `eps` (pgd, fgsm, mim, apgd, ...); {} has none",
                attack.label()
            ));
        }
    }
    if eps_warmup > 0 && eps_warmup >= steps {
        return invalid(format!(
            "`eps_warmup` = {eps_warmup} must be fewer than the run's {steps} steps: the budget would never reach full size"
        ));
    }
    if let Some(early) = early_stop {
        early.validate()?;
        if early.images > train / 2 {
            return invalid(format!(
                "`early_stop.images` = {} must be at most half the training images ({train})",
                early.images
            ));
        }
    }
    Ok(())
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
        "cifar10",
        "CIFAR-10 binary version (3x32x32, RGB) from $REDQUEEN_DATA/cifar-10-batches-bin, or the folder given as `path`",
    ),
    (
        "idx",
        "any folder of the four MNIST-format IDX files (gzip or raw, grayscale of any size), given as `path`",
    ),
];
