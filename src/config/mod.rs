//! Tournament files: raw TOML in, a checked [`Plan`] out.
//!
//! Parsing is strict (unknown keys are errors, with the line), and checking
//! happens before anything runs, so a typo never surfaces an hour in.

pub mod builtin;
pub mod matrix;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::{AttackerConfig, PolicyConfig};
use crate::attack::{AttackConfig, Norm, ThreatModel};
use crate::defense::{DefenderConfig, DefenseConfig};
use crate::error::{did_you_mean, Error, Result};
use crate::model::{Engine, ModelConfig, Sgd};

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
    pub optimizer: Sgd,
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
            optimizer: Sgd::default(),
        }
    }
}

/// The largest budget allowed per threat model; a threat model without a
/// budget is not allowed at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linf: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1: Option<f32>,
    /// Queries per image allowed to attacks with scores or labels access.
    #[serde(default = "default_queries")]
    pub queries: usize,
    /// Largest rotation (degrees) and translation (pixels) for spatial
    /// attacks (a table, so it comes last when written back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spatial: Option<crate::attack::SpatialBudget>,
}

fn default_queries() -> usize {
    1000
}

impl Rules {
    pub fn budget(&self, norm: Norm) -> Option<f32> {
        match norm {
            Norm::Linf => self.linf,
            Norm::L2 => self.l2,
            Norm::L1 => self.l1,
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

/// Where `use = "..."` references are read from.
pub enum Store {
    /// A `strategies/` folder on disk.
    Disk(PathBuf),
    /// The copies built into the binary.
    Builtin,
}

impl Store {
    /// The store for a tournament file: the folder above `tournaments/` when
    /// the file sits in one, else the file's own folder.
    pub fn for_file(path: &Path) -> Store {
        let dir = path.parent().unwrap_or(Path::new("."));
        let root = if dir.file_name().is_some_and(|n| n == "tournaments") {
            dir.parent().unwrap_or(Path::new("."))
        } else {
            dir
        };
        Store::Disk(root.to_path_buf())
    }

    /// Read a strategy file by its path relative to the store; returns the
    /// name to cite in errors and the text.
    fn read(&self, relative: &str, cited_from: &str) -> Result<(String, String)> {
        let rel = Path::new(relative);
        let safe =
            rel.extension().is_some_and(|e| e == "toml") && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(Error::config(
                cited_from,
                format!("`use = \"{relative}\"`: a strategy reference must be a relative path to a .toml file inside the strategies folder, without `..`, such as \"attackers/bandit-linf.toml\""),
            ));
        }
        match self {
            Store::Builtin => builtin::get(relative)
                .map(|text| (format!("strategies/{relative} (built in)"), text.to_string()))
                .ok_or_else(|| {
                    let known: Vec<&str> = builtin::STRATEGIES.iter().map(|(p, _)| *p).collect();
                    Error::config(
                        cited_from,
                        format!(
                            "`use = \"{relative}\"`: no such built-in strategy; built in: {}{}",
                            known.join(", "),
                            did_you_mean(relative, known.iter().copied())
                        ),
                    )
                }),
            Store::Disk(root) => {
                // An empty parent (a file in the current folder) means ".".
                let root = if root.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    root
                };
                let path = root.join(rel);
                let canonical_root = root.canonicalize().map_err(|e| {
                    Error::config(
                        cited_from,
                        format!(
                            "`use = \"{relative}\"`: cannot open the strategies folder {}: {e}",
                            root.display()
                        ),
                    )
                })?;
                let canonical = path.canonicalize().map_err(|e| {
                    let known = toml_files_beside(root, rel);
                    let listing = if known.is_empty() {
                        String::new()
                    } else {
                        format!("; the strategy files there: {}", known.join(", "))
                    };
                    Error::config(
                        cited_from,
                        format!(
                            "`use = \"{relative}\"`: cannot read {}: {e}{listing}{}",
                            path.display(),
                            did_you_mean(relative, known.iter().map(String::as_str)),
                        ),
                    )
                })?;
                // A symbolic link inside the strategies folder may not lead
                // out of it.
                if !canonical.starts_with(&canonical_root) {
                    return Err(Error::config(
                        cited_from,
                        format!(
                            "`use = \"{relative}\"`: {} leads to {}, outside the strategies folder {}; strategy files (and any links to them) must stay inside it",
                            path.display(),
                            canonical.display(),
                            canonical_root.display()
                        ),
                    ));
                }
                let text = std::fs::read_to_string(&canonical).map_err(|e| {
                    Error::config(
                        cited_from,
                        format!("`use = \"{relative}\"`: cannot read {}: {e}", path.display()),
                    )
                })?;
                Ok((path.display().to_string(), text))
            }
        }
    }
}

/// The `.toml` files in the folder `rel` names under `root`, as paths
/// relative to `root` (for suggestions), sorted.
fn toml_files_beside(root: &Path, rel: &Path) -> Vec<String> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let Ok(entries) = std::fs::read_dir(root.join(parent)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| parent.join(entry.file_name()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter_map(|p| p.to_str().map(str::to_string))
        .collect();
    names.sort();
    names
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

/// A checked tournament, every reference resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The fully resolved file (entries inline): rerunning it reproduces the run.
    pub file: TournamentFile,
    pub attackers: Vec<AttackerConfig>,
    pub defenders: Vec<DefenderConfig>,
}

/// One match of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchRef {
    pub id: usize,
    pub attacker: usize,
    pub defender: usize,
}

impl Plan {
    /// Every attacker against every defender, in a fixed order.
    pub fn matches(&self) -> Vec<MatchRef> {
        let d = self.defenders.len();
        (0..self.attackers.len() * d)
            .map(|id| MatchRef {
                id,
                attacker: id / d,
                defender: id % d,
            })
            .collect()
    }

    /// The resolved configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.file).expect("a checked plan serializes")
    }
}

/// Parse a TOML document, naming `file` in the error.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::config(file, crate::error::explain_serde_message(e.to_string().trim_end())))
}

/// Load and check a tournament file from disk.
pub fn load_file(path: &Path) -> Result<Plan> {
    let cited = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::config(&cited, format!("cannot read the file: {e}")))?;
    check(parse(&text, &cited)?, &cited, &Store::for_file(path))
}

/// The built-in default tournament.
pub fn load_default() -> Result<Plan> {
    let cited = format!("strategies/{} (built in)", builtin::DEFAULT_TOURNAMENT);
    let text = builtin::get(builtin::DEFAULT_TOURNAMENT).expect("the default tournament is built in");
    check(parse(text, &cited)?, &cited, &Store::Builtin)
}

/// `seeds` lists distinct seeds; `seed`, when also given, is the first.
fn check_seeds(file: &mut TournamentFile) -> std::result::Result<(), String> {
    if file.seeds.is_empty() {
        return Ok(());
    }
    let mut distinct = file.seeds.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != file.seeds.len() {
        return Err(format!(
            "`seeds` lists a seed twice: {:?}; list distinct seeds",
            file.seeds
        ));
    }
    if file.seed != 0 && file.seed != file.seeds[0] {
        return Err(format!(
            "`seed = {}` and `seeds = {:?}` disagree; `seeds` lists every seed, so remove `seed`",
            file.seed, file.seeds
        ));
    }
    let seeds = std::mem::take(&mut file.seeds);
    file.set_seeds(seeds);
    Ok(())
}

/// Shrink a plan for a quick run (tests, smoke checks).
pub fn quick(file: &mut TournamentFile) {
    file.rounds = file.rounds.min(3);
    file.data.train = file.data.train.min(1500);
    file.data.test = file.data.test.min(300);
    file.sizes.eval = file.sizes.eval.min(100);
    file.sizes.craft = file.sizes.craft.min(64);
    file.pretrain.epochs = file.pretrain.epochs.min(2);
}

/// Resolve references and check everything that can be checked without data.
pub fn check(mut file: TournamentFile, cited: &str, store: &Store) -> Result<Plan> {
    let err = |message: String| Error::config(cited, message);

    // Where each agent was written, for error messages: the tournament file,
    // or the strategy file it `use`s.
    let mut attacker_sources = Vec::new();
    let mut defender_sources = Vec::new();
    let mut attackers = Vec::new();
    for (i, entry) in file.attackers.iter().enumerate() {
        let at = format!("attackers[{i}]");
        let config = match &entry.include {
            Some(include) => {
                if entry.policy.is_some() || entry.repertoire.is_some() {
                    return Err(err(format!("{at}: `use` takes the whole attacker from its file; remove `policy` and `repertoire` (only `name` may override)")));
                }
                let (source, text) = store.read(include, cited)?;
                let mut config: AttackerConfig = parse(&text, &source)?;
                if let Some(name) = &entry.name {
                    config.name = name.clone();
                }
                attacker_sources.push(Some(source));
                config
            }
            None => {
                attacker_sources.push(None);
                AttackerConfig {
                    name: entry.name.clone().ok_or_else(|| {
                        err(format!(
                            "{at}: needs `name`, `policy` and `repertoire`, or `use = \"attackers/NAME.toml\"`"
                        ))
                    })?,
                    policy: entry.policy.clone().ok_or_else(|| {
                        err(format!(
                            "{at}: missing `policy` (a table with `kind` = {})",
                            PolicyConfig::names().collect::<Vec<_>>().join(", ")
                        ))
                    })?,
                    repertoire: entry
                        .repertoire
                        .clone()
                        .ok_or_else(|| err(format!("{at}: missing `repertoire` (a list of attack tables)")))?,
                }
            }
        };
        attackers.push(config);
    }

    let mut defenders = Vec::new();
    for (i, entry) in file.defenders.iter().enumerate() {
        let at = format!("defenders[{i}]");
        let config = match &entry.include {
            Some(include) => {
                if entry.strategy.is_some() {
                    return Err(err(format!("{at}: `use` takes the whole defender from its file; remove `strategy` (only `name` may override)")));
                }
                let (source, text) = store.read(include, cited)?;
                let mut config: DefenderConfig = parse(&text, &source)?;
                if let Some(name) = &entry.name {
                    config.name = name.clone();
                }
                defender_sources.push(Some(source));
                config
            }
            None => {
                defender_sources.push(None);
                DefenderConfig {
                    name: entry.name.clone().ok_or_else(|| {
                        err(format!(
                            "{at}: needs `name` and `strategy`, or `use = \"defenders/NAME.toml\"`"
                        ))
                    })?,
                    strategy: entry.strategy.clone().ok_or_else(|| {
                        err(format!(
                            "{at}: missing `strategy` (a table with `kind` = {})",
                            DefenseConfig::names().collect::<Vec<_>>().join(", ")
                        ))
                    })?,
                }
            }
        };
        defenders.push(config);
    }

    // From here on the file is self-contained: write the resolved entries back.
    file.attackers = attackers
        .iter()
        .map(|a| AttackerEntry {
            include: None,
            name: Some(a.name.clone()),
            policy: Some(a.policy.clone()),
            repertoire: Some(a.repertoire.clone()),
        })
        .collect();
    file.defenders = defenders
        .iter()
        .map(|d| DefenderEntry {
            include: None,
            name: Some(d.name.clone()),
            strategy: Some(d.strategy.clone()),
        })
        .collect();

    check_seeds(&mut file).map_err(err)?;
    validate(&file, &attackers, &attacker_sources, &defenders, &defender_sources).map_err(err)?;
    Ok(Plan {
        file,
        attackers,
        defenders,
    })
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

/// How an agent is cited in errors: its name, and its strategy file if it
/// came from one.
fn cite(kind: &str, name: &str, source: &Option<String>) -> String {
    match source {
        Some(source) => format!("{kind} {name:?} (in {source})"),
        None => format!("{kind} {name:?}"),
    }
}

fn validate(
    file: &TournamentFile,
    attackers: &[AttackerConfig],
    attacker_sources: &[Option<String>],
    defenders: &[DefenderConfig],
    defender_sources: &[Option<String>],
) -> std::result::Result<(), String> {
    check_name(&file.name)?;
    if file.rounds == 0 {
        return Err("`rounds` must be at least 1".into());
    }
    check_data(&file.data)?;
    if file.sizes.eval == 0 || file.sizes.eval > file.data.test {
        return Err(format!(
            "`sizes.eval` = {} must be between 1 and the test images used (`data.test` = {})",
            file.sizes.eval, file.data.test
        ));
    }
    if file.sizes.craft == 0 || file.sizes.craft > file.data.train {
        return Err(format!(
            "`sizes.craft` = {} must be between 1 and the training images used (`data.train` = {})",
            file.sizes.craft, file.data.train
        ));
    }
    file.model
        .validate(IMAGE_SIZE.0, IMAGE_SIZE.1)
        .map_err(|e| format!("`model`: {e}"))?;
    crate::defense::validate_training(
        ("epochs", file.pretrain.epochs),
        file.pretrain.batch,
        &file.pretrain.optimizer,
    )
    .map_err(|e| format!("[pretrain]: {e}"))?;
    if let Some(s) = file.rules.spatial {
        if !(s.degrees.is_finite() && (0.0..=180.0).contains(&s.degrees)) || s.pixels > 14 {
            return Err(format!(
                "`rules.spatial` must have `degrees` between 0 and 180 and `pixels` at most 14, got {} and {}",
                s.degrees, s.pixels
            ));
        }
    }
    for (key, budget) in [("linf", file.rules.linf), ("l2", file.rules.l2), ("l1", file.rules.l1)] {
        if let Some(b) = budget {
            if !(b.is_finite() && b > 0.0) {
                return Err(format!("`rules.{key}` must be a positive number, got {b}"));
            }
        }
    }
    if attackers.is_empty() || defenders.is_empty() {
        return Err("a tournament needs at least one entry in `attackers` and one in `defenders`".into());
    }

    // Attack labels identify attacks in rows: one label, one configuration.
    let mut labels: BTreeMap<String, AttackConfig> = BTreeMap::new();
    let mut check_attack = |at: &str, attack: &AttackConfig| -> std::result::Result<(), String> {
        attack.validate().map_err(|e| format!("{at}: {e}"))?;
        within_rules(&file.rules, attack).map_err(|e| format!("{at}: {e}"))?;
        let label = attack.label();
        match labels.get(&label) {
            Some(other) if other != attack => Err(format!(
                "{at}: the label {label:?} already names a different attack; give one of them another `name`"
            )),
            _ => {
                labels.insert(label, attack.clone());
                Ok(())
            }
        }
    };

    let mut names = BTreeSet::new();
    // What the agents use, as configurations without names: the unseen panel
    // may hold none of it.
    let mut used: Vec<AttackConfig> = Vec::new();
    for (a, source) in attackers.iter().zip(attacker_sources) {
        let at = cite("attacker", &a.name, source);
        if a.name.is_empty() || !names.insert(a.name.clone()) {
            return Err(format!("{at}: attacker names must be non-empty and unique"));
        }
        a.policy.validate().map_err(|e| format!("{at}: `policy`: {e}"))?;
        if a.repertoire.is_empty() {
            return Err(format!("{at}: `repertoire` must list at least one attack"));
        }
        for (j, attack) in a.repertoire.iter().enumerate() {
            check_attack(&format!("{at}, repertoire[{j}]"), attack)?;
            used.push(attack.unnamed());
        }
    }
    let mut names = BTreeSet::new();
    for (d, source) in defenders.iter().zip(defender_sources) {
        let at = cite("defender", &d.name, source);
        if d.name.is_empty() || !names.insert(d.name.clone()) {
            return Err(format!("{at}: defender names must be non-empty and unique"));
        }
        d.strategy.validate().map_err(|e| format!("{at}: `strategy`: {e}"))?;
        // The attacks a defense trains with are held to the rules too.
        for attack in d.strategy.training_attacks() {
            check_budget(&file.rules, attack.threat())
                .map_err(|e| format!("{at}: `strategy` trains with {}: {e}", attack.label()))?;
            used.push(attack.unnamed());
        }
    }
    for (j, attack) in file.unseen.iter().enumerate() {
        let at = format!("unseen[{j}]");
        check_attack(&at, attack)?;
        if used.contains(&attack.unnamed()) {
            return Err(format!(
                "{at}: {:?} is an attack an agent uses (an attacker's repertoire or a defender's training attack); the unseen panel must hold attacks no agent uses",
                attack.label()
            ));
        }
    }
    Ok(())
}

/// A run's name names its results folder: letters, digits, '-' and '_'.
pub(crate) fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!(
            "`name` = {name:?} must be non-empty and use only letters, digits, '-' and '_' (it names the results folder)"
        ));
    }
    Ok(())
}

/// `[data]`: a known dataset, a path for `idx`, and non-empty splits.
pub(crate) fn check_data(data: &DataConfig) -> std::result::Result<(), String> {
    if !DATASETS.iter().any(|(name, _)| *name == data.dataset) {
        let names: Vec<&str> = DATASETS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "`data.dataset` = {:?} is not a dataset; valid: {}{}",
            data.dataset,
            names.join(", "),
            did_you_mean(&data.dataset, names.iter().copied())
        ));
    }
    if data.dataset == "idx" {
        let Some(path) = &data.path else {
            return Err("`data.dataset` = \"idx\" needs `data.path`, the folder holding the four IDX files".into());
        };
        check_idx_folder(path)?;
    }
    if data.train == 0 || data.test == 0 {
        return Err("`data.train` and `data.test` must be at least 1".into());
    }
    Ok(())
}

/// The image size every model takes (MNIST format).
pub(crate) const IMAGE_SIZE: (usize, usize) = (28, 28);

/// What can be told about an `idx` folder before loading it: that it exists,
/// and that its images are the size the models take. Everything else
/// (missing files, wrong magic numbers, truncation) is reported, file by
/// file, when the data is loaded, before anything is written.
fn check_idx_folder(path: &Path) -> std::result::Result<(), String> {
    if !path.is_dir() {
        return Err(format!(
            "`data.path` = {:?} is not a folder (a relative path is read from the current folder); it should hold the four MNIST-format IDX files {}",
            path.display().to_string(),
            crate::data::idx::IdxFile::ALL
                .iter()
                .map(|f| format!("{}[.gz]", f.canonical_name()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (file, rows, cols) in crate::data::idx_image_sizes(path) {
        if (rows, cols) != IMAGE_SIZE {
            return Err(format!(
                "`data.path`: {} holds {rows}x{cols} images, but the models take {}x{} images (MNIST format)",
                file.display(),
                IMAGE_SIZE.0,
                IMAGE_SIZE.1
            ));
        }
    }
    Ok(())
}

/// Whether an attack, wrappers and all, stays within the rules: its norm
/// budget or spatial budget, and its query budget.
pub fn within_rules(rules: &Rules, attack: &AttackConfig) -> std::result::Result<(), String> {
    match attack {
        AttackConfig::Bpda(c) => within_rules(rules, &c.attack),
        AttackConfig::Eot(c) => within_rules(rules, &c.attack),
        AttackConfig::Transfer(c) => within_rules(rules, &c.attack),
        AttackConfig::Spatial(s) => s.within(rules.spatial),
        _ => {
            check_budget(rules, attack.threat())?;
            match attack.queries() {
                Some(queries) if queries > rules.queries => Err(format!(
                    "`queries` = {queries} exceeds the rules' query budget {} (`rules.queries`)",
                    rules.queries
                )),
                _ => Ok(()),
            }
        }
    }
}

/// Whether an attack's threat model is within the rules.
pub fn check_budget(rules: &Rules, threat: ThreatModel) -> std::result::Result<(), String> {
    match rules.budget(threat.norm) {
        None => Err(format!(
            "the rules set no {} budget, so {} attacks are not allowed; add `{} = ...` to [rules]",
            threat.norm, threat.norm, threat.norm
        )),
        Some(budget) if threat.eps > budget => Err(format!(
            "eps {} exceeds the rules' {} budget {} (`rules.{}`)",
            threat.eps, threat.norm, budget, threat.norm
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests;
