//! Generalization-matrix files: one defender adversarially trained per
//! attack of a list, each evaluated under every attack of the list.

use serde::{Deserialize, Serialize};

use super::{builtin, parse, DataConfig, PretrainConfig};
use crate::attack::{Access, AttackConfig};
use crate::error::{Error, Result};
use crate::model::{EarlyStop, Engine, ModelConfig, OptimizerConfig};

/// The built-in default matrix, on synthetic digits.
pub const DEFAULT_MATRIX: &str = "matrix/default.toml";

/// A matrix file as written (and, resolved, as `config.toml` in its folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixFile {
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub engine: Engine,
    pub data: DataConfig,
    /// Evaluation images, drawn once from the test split.
    #[serde(default = "default_eval")]
    pub eval: usize,
    pub model: ModelConfig,
    #[serde(default)]
    pub pretrain: PretrainConfig,
    #[serde(default)]
    pub training: MatrixTraining,
    /// The attacks: each trains one defender and evaluates all of them.
    pub attacks: Vec<AttackConfig>,
}

fn default_eval() -> usize {
    200
}

/// Adversarial training from the pretrained model: every step crafts the
/// row's attack against the current model on a fresh batch (Madry et al.).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixTraining {
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerConfig,
    /// Steps over which each row's attack budget grows linearly from 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eps_warmup: usize,
    /// Early stopping on PGD accuracy of training images held out of each
    /// row's training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<EarlyStop>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_steps() -> usize {
    200
}
fn default_batch() -> usize {
    64
}
fn default_optimizer() -> OptimizerConfig {
    OptimizerConfig::sgd(0.02, 0.9, 0.0)
}

impl Default for MatrixTraining {
    fn default() -> Self {
        MatrixTraining {
            steps: default_steps(),
            batch: default_batch(),
            optimizer: default_optimizer(),
            eps_warmup: 0,
            early_stop: None,
        }
    }
}

impl MatrixFile {
    /// The resolved configuration as TOML.
    pub fn to_toml(&self) -> String {
        super::to_toml(self)
    }

    /// The fingerprints a run of this matrix may have recorded.
    pub fn fingerprints(&self) -> [String; 2] {
        super::fingerprints(self)
    }

    /// Shrink for a quick run (tests, smoke checks).
    pub fn quick(&mut self) {
        self.data.train = self.data.train.min(1500);
        self.data.test = self.data.test.min(300);
        self.eval = self.eval.min(100);
        self.pretrain.shorten();
        self.training.steps = self.training.steps.min(30);
        self.training.eps_warmup = self.training.eps_warmup.min(self.training.steps / 2);
        if let Some(early) = &mut self.training.early_stop {
            early.every = early.every.min(10);
            early.images = early.images.min(self.data.train / 4);
        }
    }
}

/// Whether a file is a matrix file (it lists `attacks` at the top level)
/// rather than a tournament; unreadable or malformed files are not, so
/// that the tournament checker reports them.
pub fn is_matrix_file(path: &std::path::Path) -> bool {
    top_level_keys(path).is_some_and(|keys| keys.contains_key("attacks"))
}

/// Whether the file at `path` reads as a tournament file (it has
/// `attackers` or `defenders`).
pub fn is_tournament_file(path: &std::path::Path) -> bool {
    top_level_keys(path).is_some_and(|keys| keys.contains_key("attackers") || keys.contains_key("defenders"))
}

/// How many attacks a matrix file lists, read without checking the rest
/// (a report must not need the data or weights the run was trained on).
pub fn attack_count(path: &std::path::Path) -> Option<usize> {
    top_level_keys(path)?.get("attacks")?.as_array().map(Vec::len)
}

/// Whether the file at `path` reads as a reproduction file (it has
/// `paper` and `evaluations`), for `run`, `check` and `matrix` to name it.
pub fn is_reproduction_file(path: &std::path::Path) -> bool {
    top_level_keys(path).is_some_and(|keys| keys.contains_key("paper") && keys.contains_key("evaluations"))
}

/// A file of another kind given where a tournament or matrix file goes (a
/// reproduction, a strategy file, an `evaluate --attacks` list): an error
/// that says what it is and how to use it, rather than its first unknown
/// or missing key.
pub fn refuse_other_kinds(path: &std::path::Path, expected: &str) -> Result<()> {
    let Some(keys) = top_level_keys(path) else {
        return Ok(());
    };
    let has = |key: &str| keys.contains_key(key);
    // A tournament or matrix file with a stray key is still one: its own
    // checks name the key.
    let agent_file = !has("attackers") && !has("defenders") && !has("attacks");
    let what = if has("paper") && has("evaluations") {
        format!(
            "is a reproduction file (it has `paper` and `evaluations`), not {expected}; run it with `redqueen reproduce {}`",
            crate::error::shell_word(path)
        )
    } else if agent_file && has("policy") && has("repertoire") {
        format!("is an attacker's strategy file (it has `policy` and `repertoire`), not {expected}; a tournament uses it from `[[attackers]]` as `use = \"attackers/<file>.toml\"` (`redqueen check` on that tournament checks it)")
    } else if agent_file && has("strategy") {
        format!("is a defender's strategy file (it has `strategy`), not {expected}; a tournament uses it from `[[defenders]]` as `use = \"defenders/<file>.toml\"` (`redqueen check` on that tournament checks it)")
    } else if !has("attackers") && !has("defenders") && !has("attacks") && (has("training") || has("eval")) {
        "reads as a generalization matrix file (it has `training` or `eval`) that lists no `attacks`; add them as `[[attacks]]` tables and run it with `redqueen matrix`".to_string()
    } else if has("attacks") && keys.len() == 1 {
        format!("is a list of attacks (it has only `attacks`), not {expected}; evaluate a model under it with `redqueen evaluate MODEL --attacks {}`", crate::error::shell_word(path))
    } else {
        return Ok(());
    };
    Err(Error::config(path.display().to_string(), what))
}

fn top_level_keys(path: &std::path::Path) -> Option<toml::Table> {
    super::read_text(path, "")
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
}

/// Load and check a matrix file from disk.
pub fn load_matrix_file(path: &std::path::Path) -> Result<MatrixFile> {
    let cited = path.display().to_string();
    let text = super::read_text(path, &cited)?;
    refuse_other_kinds(path, "a matrix file")?;
    if is_tournament_file(path) && !is_matrix_file(path) {
        return Err(Error::config(
            cited,
            "is a tournament file (it has `attackers` or `defenders`), not a matrix file; run it with `redqueen run`",
        ));
    }
    check_matrix(parse(&text, &cited)?, &cited)
}

/// The built-in default matrix.
pub fn load_default_matrix() -> Result<MatrixFile> {
    let cited = format!("strategies/{DEFAULT_MATRIX} (built in)");
    let text = builtin::get(DEFAULT_MATRIX).expect("the default matrix is built in");
    check_matrix(parse(text, &cited)?, &cited)
}

/// Everything that can be checked without data.
pub fn check_matrix(file: MatrixFile, cited: &str) -> Result<MatrixFile> {
    let err = |message: String| Error::config(cited, message);
    let in_file = |e: Error| e.in_file(cited);
    super::limits::check(&file).map_err(in_file)?;
    super::check_name(&file.name).map_err(in_file)?;
    super::check_data(&file.data).map_err(in_file)?;
    if file.eval == 0 || file.eval > file.data.test {
        return Err(err(format!(
            "`eval` must be between 1 and `data.test` ({}), got {}",
            file.data.test, file.eval
        )));
    }
    let shape = file.data.known_shape();
    file.model.validate(shape).map_err(|e| in_file(e.within("`model`")))?;
    file.pretrain
        .validate(file.data.train, shape)
        .map_err(|e| in_file(e.within("[pretrain]")))?;
    crate::defense::validate_training(
        ("steps", file.training.steps),
        file.training.batch,
        &file.training.optimizer,
    )
    .map_err(|e| in_file(e.within("[training]")))?;
    let training = &file.training;
    super::schema::check_adversarial_recipe(
        None,
        training.eps_warmup,
        training.early_stop.as_ref(),
        training.steps,
        file.data.train,
    )
    .map_err(|e| in_file(e.within("[training]")))?;
    for (i, attack) in file.attacks.iter().enumerate() {
        super::schema::check_adversarial_recipe(
            Some(attack),
            training.eps_warmup,
            training.early_stop.as_ref(),
            training.steps,
            file.data.train,
        )
        .map_err(|e| in_file(e.within(&format!("[training] with attacks[{i}]"))))?;
    }
    if file.attacks.is_empty() {
        return Err(err("`attacks` must list at least one attack".into()));
    }
    let mut labels = Vec::new();
    for (i, attack) in file.attacks.iter().enumerate() {
        attack
            .validate()
            .map_err(|e| in_file(e.within(&format!("attacks[{i}]"))))?;
        if attack.access() == Access::Transfer {
            return Err(err(format!(
                "attacks[{i}]: a transfer attack trains its own surrogate, so a defender cannot train against it; use a white-box, query or spatial attack"
            )));
        }
        let label = attack.label();
        if labels.contains(&label) {
            return Err(err(format!(
                "attacks[{i}]: the label {label:?} is already used; give one of them another `name`"
            )));
        }
        labels.push(label);
    }
    Ok(file)
}
