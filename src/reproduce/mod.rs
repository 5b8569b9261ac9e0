//! `redqueen reproduce`: a paper's result, rerun under fixed claims.
//!
//! A reproduction file names the paper, the models to train (a pretraining
//! recipe, or a defense applied to a new or an earlier model), the
//! evaluations (each the per-image worst case over a list of attacks, with
//! the paper's figure where it published one) and the claims: a bound on an
//! evaluation or on arithmetic over several, fixed before the run, for the
//! full size and for `--quick`. The run trains (or loads from the model
//! cache), evaluates, checks, and writes its folder; a failed claim is exit
//! code 3.

mod expr;
mod page;

use crate::arena::worst_case::{worst_case, WorstCase};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::arena::referee;
use crate::attack::AttackConfig;
use crate::config::{self, DataConfig, PretrainConfig};
use crate::defense::{DefenseConfig, RoundData};
use crate::error::{Error, Result};
use crate::model::cache::{fingerprint, ModelCache};
use crate::model::{kernels, Classifier, Engine, Length, ModelConfig};
use crate::path;
use crate::record::{self, stats::wilson95};
use crate::rng::stream;
use crate::tournament::pretrain::{cached, Recipe, Start};
use crate::tournament::{eval_subset, load_dataset};

pub use expr::Expr;
pub use page::render_page;

/// The reproductions built into the binary: (name, contents).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "madry-mnist",
        include_str!("../../strategies/reproduce/madry-mnist.toml"),
    ),
    (
        "distillation-cw",
        include_str!("../../strategies/reproduce/distillation-cw.toml"),
    ),
    (
        "wong-catastrophic",
        include_str!("../../strategies/reproduce/wong-catastrophic.toml"),
    ),
    ("forgetting", include_str!("../../strategies/reproduce/forgetting.toml")),
    (
        "maini-mnist",
        include_str!("../../strategies/reproduce/maini-mnist.toml"),
    ),
];

/// A reproduction file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReproductionFile {
    pub name: String,
    /// The paper: authors, year, title.
    pub paper: String,
    /// What the paper found, in a sentence or two.
    pub finding: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub engine: Engine,
    pub data: DataConfig,
    /// Test images every evaluation runs on (drawn once from `data.test`).
    pub eval: usize,
    /// The reduced size of `--quick`.
    pub quick: Quick,
    pub models: Vec<ModelEntry>,
    pub evaluations: Vec<Evaluation>,
    pub claims: Vec<Claim>,
}

/// `--quick`: fewer images and shorter training, for tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quick {
    pub train: usize,
    pub eval: usize,
    /// Every recipe's length, warm-up and checkpoint interval multiplied
    /// by this (a `defense` entry keeps its own settings).
    pub length: f64,
}

/// A model: trained from scratch with a recipe (`model` and `pretrain`), or
/// a defense applied to a new model (`model` and `defense`) or to an earlier
/// one (`from` and `defense`), once or over `rounds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// The architecture (for a model trained from scratch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelConfig>,
    /// Its training recipe (for a model trained from scratch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain: Option<PretrainConfig>,
    /// An earlier model this one starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The defense applied, as a tournament's rounds would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defense: Option<DefenseConfig>,
    /// The defense's rounds, each with examples crafted against the model as
    /// it stands; none: one round without crafted examples.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<CraftRound>,
    /// The paper's model, for comparing like with like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<String>,
}

/// One round of a defense: `attack` crafts examples against the model from
/// `images` training images drawn at random, and the defense updates on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CraftRound {
    pub attack: AttackConfig,
    pub images: usize,
}

/// What an evaluation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// Images classified correctly, clean and under every attack.
    #[default]
    Accuracy,
    /// Of the images classified correctly clean, those some attack fools.
    Success,
}

/// Which images an evaluation runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Images {
    #[default]
    Test,
    Train,
}

fn is_test(images: &Images) -> bool {
    *images == Images::Test
}

/// One evaluation: a model under the per-image worst case of `attacks`
/// (none: clean accuracy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    pub name: String,
    pub model: String,
    #[serde(default)]
    pub attacks: Vec<AttackConfig>,
    #[serde(default)]
    pub measure: Measure,
    /// The images: `eval` test images (default), or as many training images
    /// (what the model learned from, e.g. to see it overfit).
    #[serde(default, skip_serializing_if = "is_test")]
    pub on: Images,
    /// The paper's figure for the same measure, and its setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_setup: Option<String>,
}

/// A claim: a bound on an evaluation, or on a `value` computed from several
/// (see [`Expr`]), fixed before the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<String>,
    /// Arithmetic over evaluations and `seconds(model)`, e.g.
    /// `"pgd-robust - early-robust"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The bound at full size (written out rather than a flattened
    /// [`Bound`], so that a misspelt key is told the valid ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<f64>,
    /// The bound at `--quick` size (the claim's direction, not its figure).
    pub quick: Bound,
}

impl Claim {
    /// What it bounds, parsed: its evaluation, or its value.
    pub fn expr(&self) -> Result<Expr> {
        match (&self.evaluation, &self.value) {
            (Some(name), None) => Ok(Expr::Evaluation(name.clone())),
            (None, Some(value)) => Expr::parse(value).map_err(|e| e.within("its `value`")),
            _ => Err(Error::invalid("a claim has either `evaluation` or `value`")),
        }
    }

    /// What it bounds, as written.
    pub fn measured(&self) -> &str {
        self.evaluation.as_deref().or(self.value.as_deref()).unwrap_or_default()
    }

    /// The full-size bound.
    pub fn bound(&self) -> Bound {
        Bound {
            at_least: self.at_least,
            at_most: self.at_most,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<f64>,
}

impl Bound {
    /// Whether `value` is within the bound; a non-finite value (a division
    /// by zero) never is.
    fn holds(&self, value: f64) -> bool {
        value.is_finite()
            && self.at_least.is_none_or(|low| value >= low)
            && self.at_most.is_none_or(|high| value <= high)
    }

    /// The bound in words; `share`: its numbers are shares (percentages).
    fn describe(&self, share: bool) -> String {
        let show = |x: f64| if share { pct(x) } else { format!("{x}") };
        match (self.at_least, self.at_most) {
            (Some(low), Some(high)) => format!("between {} and {}", show(low), show(high)),
            (Some(low), None) => format!("at least {}", show(low)),
            (None, Some(high)) => format!("at most {}", show(high)),
            (None, None) => "any".into(),
        }
    }

    /// `range`: the values what it bounds can take, when it is a share (an
    /// evaluation in [0, 1], a difference of two in [-1, 1]).
    fn validate(&self, range: Option<(f64, f64)>) -> Result<()> {
        let bounds = [self.at_least, self.at_most];
        if bounds.iter().all(Option::is_none) {
            return Err(Error::invalid("a claim needs `at_least` or `at_most`"));
        }
        if bounds.iter().flatten().any(|b| !b.is_finite()) {
            return Err(Error::invalid("`at_least` and `at_most` must be finite numbers"));
        }
        if let Some((low, high)) = range {
            if bounds.iter().flatten().any(|b| !(low..=high).contains(b)) {
                return Err(Error::invalid(format!(
                    "`at_least` and `at_most` are fractions between {low} and {high} here (an evaluation is \
                     a share between 0 and 1, a difference of two between -1 and 1)"
                )));
            }
        }
        if let (Some(low), Some(high)) = (self.at_least, self.at_most) {
            if low > high {
                return Err(Error::invalid(format!(
                    "`at_least` = {low} is above `at_most` = {high}: no value could hold"
                )));
            }
        }
        Ok(())
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// Every built-in reproduction's name.
pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

/// A built-in reproduction by name, or a reproduction file by path.
pub fn load(name: &str) -> Result<ReproductionFile> {
    let (text, cited) = match BUILTIN.iter().find(|(n, _)| *n == name) {
        Some((n, text)) => ((*text).to_string(), format!("strategies/reproduce/{n}.toml")),
        // Something there that is no file (a folder, a device): read_text
        // says what it is, rather than "no reproduction named".
        None if name.ends_with(".toml") || Path::new(name).exists() => {
            let text = config::read_text(Path::new(name), name)?;
            let word = crate::error::shell_word(Path::new(name));
            // Another kind of file is named as such, not by its first unknown key.
            if config::matrix::is_matrix_file(Path::new(name)) {
                return Err(Error::Usage(format!(
                    "{name} is a generalization matrix file (it has `attacks`), not a reproduction; run it with `redqueen matrix {word}`"
                )));
            }
            if config::matrix::is_tournament_file(Path::new(name)) {
                return Err(Error::Usage(format!(
                    "{name} is a tournament file (it has `attackers` or `defenders`), not a reproduction; run it with `redqueen run {word}`"
                )));
            }
            (text, name.to_string())
        }
        None => {
            return Err(Error::Usage(format!(
                "no reproduction named {name:?}; built in: {} (or give the path of a .toml file){}",
                names().join(", "),
                crate::error::did_you_mean(name, names())
            )))
        }
    };
    let file: ReproductionFile = config::parse(&text, &cited)?;
    config::limits::check(&file).map_err(|e| e.in_file(&cited))?;
    file.validate().map_err(|e| match e {
        Error::Invalid(message) => Error::config(&cited, message),
        other => other,
    })?;
    Ok(file)
}

impl ReproductionFile {
    /// Everything that can be checked without data.
    pub fn validate(&self) -> Result<()> {
        crate::config::check_name(&self.name)?;
        crate::config::check_data(&self.data)?;
        if self.eval == 0 || self.eval > self.data.test {
            return Err(Error::invalid(format!(
                "`eval` = {} must be between 1 and `data.test` = {}",
                self.eval, self.data.test
            )));
        }
        let q = &self.quick;
        if q.train == 0 || q.train > self.data.train || q.eval == 0 || q.eval > self.eval {
            return Err(Error::invalid(
                "`quick.train` and `quick.eval` must be between 1 and the full sizes",
            ));
        }
        if !(q.length > 0.0 && q.length <= 1.0) {
            return Err(Error::invalid(format!(
                "`quick.length` must be in (0, 1], got {}",
                q.length
            )));
        }
        let models = self.validate_models()?;
        let evaluations = self.validate_evaluations(&models)?;
        self.validate_claims(&evaluations, &models)
    }

    /// Each evaluation's model, attacks and images; returns the names.
    fn validate_evaluations(&self, seen: &[&str]) -> Result<Vec<&str>> {
        let mut evaluations: Vec<&str> = Vec::new();
        let shape = self.data.known_shape();
        for e in &self.evaluations {
            if evaluations.contains(&e.name.as_str()) {
                return Err(Error::invalid(format!("two evaluations are named {:?}", e.name)));
            }
            if !seen.contains(&e.model.as_str()) {
                return Err(Error::invalid(format!(
                    "evaluation {:?}: no model named {:?}; models: {}",
                    e.name,
                    e.model,
                    seen.join(", ")
                )));
            }
            for attack in &e.attacks {
                attack
                    .validate()
                    .and_then(|_| attack.check_shape(shape))
                    .map_err(|err| Error::invalid(format!("evaluation {:?}: {err}", e.name)))?;
            }
            if e.on == Images::Train && self.eval > self.data.train {
                return Err(Error::invalid(format!(
                    "evaluation {:?} is `on = \"train\"`: `eval` = {} is more than `data.train` = {}",
                    e.name, self.eval, self.data.train
                )));
            }
            if e.measure == Measure::Success && e.attacks.is_empty() {
                return Err(Error::invalid(format!(
                    "evaluation {:?}: `measure = \"success\"` needs `attacks`",
                    e.name
                )));
            }
            evaluations.push(&e.name);
        }
        Ok(evaluations)
    }

    /// Each claim's names (evaluations, and models in `seconds`) and bounds.
    fn validate_claims(&self, evaluations: &[&str], seen: &[&str]) -> Result<()> {
        if self.claims.is_empty() {
            return Err(Error::invalid("a reproduction needs at least one claim"));
        }
        for c in &self.claims {
            let within = |e: Error, which: &str| e.within(&format!("claim {:?}, {which}", c.text));
            let expr = c.expr().map_err(|e| e.within(&format!("claim {:?}", c.text)))?;
            let (named_evaluations, named_models) = expr.names();
            for name in named_evaluations {
                if !evaluations.contains(&name) {
                    return Err(Error::invalid(format!(
                        "claim {:?}: no evaluation named {name:?}; evaluations: {}",
                        c.text,
                        evaluations.join(", ")
                    )));
                }
            }
            for name in named_models {
                if !seen.contains(&name) {
                    return Err(Error::invalid(format!(
                        "claim {:?}: `seconds({name})` names no model; models: {}",
                        c.text,
                        seen.join(", ")
                    )));
                }
            }
            let range = expr.share_range();
            c.bound().validate(range).map_err(|e| within(e, "its bound"))?;
            c.quick.validate(range).map_err(|e| within(e, "its `quick` bound"))?;
        }
        Ok(())
    }

    /// Each model's recipe, or its `from` and defense; returns the names.
    fn validate_models(&self) -> Result<Vec<&str>> {
        let mut seen: Vec<&str> = Vec::new();
        // A defense's or an attack's own models (static models, a transfer
        // surrogate) are built for the dataset's images too.
        let shape = self.data.known_shape();
        for m in &self.models {
            let within = |e: Error| e.within(&format!("in model {:?}", m.name));
            if seen.contains(&m.name.as_str()) {
                return Err(Error::invalid(format!("two models are named {:?}", m.name)));
            }
            match (&m.model, &m.pretrain, &m.from, &m.defense) {
                (Some(model), Some(pretrain), None, None) => {
                    model.refuse_weights("model").map_err(within)?;
                    model.validate(shape).map_err(within)?;
                    pretrain.validate(self.data.train, shape).map_err(within)?;
                }
                (Some(model), None, None, Some(defense)) => {
                    model.refuse_weights("model").map_err(within)?;
                    model.validate(shape).map_err(within)?;
                    defense
                        .validate()
                        .and_then(|_| defense.check_shape(shape))
                        .map_err(within)?;
                }
                (None, None, Some(from), Some(defense)) => {
                    if !seen.contains(&from.as_str()) {
                        return Err(within(Error::invalid(format!(
                            "`from` = {from:?} must name a model listed before it"
                        ))));
                    }
                    defense
                        .validate()
                        .and_then(|_| defense.check_shape(shape))
                        .map_err(within)?;
                }
                _ => {
                    return Err(within(Error::invalid(
                        "a model has `model` and `pretrain`, `model` and `defense`, or `from` and `defense`",
                    )))
                }
            }
            if !m.rounds.is_empty() && m.defense.is_none() {
                return Err(within(Error::invalid("`rounds` are a defense's: give `defense`")));
            }
            for (r, round) in m.rounds.iter().enumerate() {
                let within = |e: Error| within(e.within(&format!("round {}", r + 1)));
                round
                    .attack
                    .validate()
                    .and_then(|_| round.attack.check_shape(shape))
                    .map_err(within)?;
                if round.images == 0 || round.images > self.data.train {
                    return Err(within(Error::invalid(format!(
                        "`images` = {} must be between 1 and `data.train` = {}",
                        round.images, self.data.train
                    ))));
                }
            }
            seen.push(&m.name);
        }
        Ok(seen)
    }

    /// The reduced version `--quick` runs, checked again (a shortened
    /// recipe must still be a valid one).
    pub fn shrink(&mut self) -> Result<()> {
        self.shrink_sizes()?;
        self.validate()
            .map_err(|e| e.within("the file shrunk by --quick (its `quick` sizes)"))
    }

    fn shrink_sizes(&mut self) -> Result<()> {
        let scale = |n: usize| ((n as f64 * self.quick.length).ceil() as usize).max(1);
        self.data.train = self.quick.train;
        // A smaller pool of test images to draw the quick evaluation from.
        self.data.test = self.data.test.min(self.quick.eval.max(self.quick.train / 4));
        self.eval = self.quick.eval.min(self.data.test);
        for m in &mut self.models {
            if let Some(p) = &mut m.pretrain {
                p.length = match p.length {
                    Length::Epochs(e) => Length::Epochs(scale(e)),
                    Length::Steps(s) => Length::Steps(scale(s)),
                };
                if p.eps_warmup > 0 {
                    p.eps_warmup = scale(p.eps_warmup);
                }
                if let Some(early) = &mut p.early_stop {
                    early.every = scale(early.every);
                    early.images = early.images.min(self.quick.train / 5).max(1);
                }
            }
            if let Some(defense) = &mut m.defense {
                *defense = shrink_defense(defense, self.quick.length, self.quick.train / 5)?;
            }
            for round in &mut m.rounds {
                round.images = scale(round.images).min(self.quick.train);
            }
        }
        Ok(())
    }
}

/// `defense` with its training lengths (`steps`, `epochs`, `eps_warmup`,
/// early stopping's `every`) scaled by `length`, and its held-out images at
/// most `held_out`: the same keys whatever the defense.
fn shrink_defense(defense: &DefenseConfig, length: f64, held_out: usize) -> Result<DefenseConfig> {
    let mut value = serde_json::to_value(defense).expect("defenses serialize");
    let scale = |v: &mut serde_json::Value| {
        if let Some(n) = v.as_u64().filter(|&n| n > 0) {
            *v = ((n as f64 * length).ceil().max(1.0) as u64).into();
        }
    };
    if let Some(table) = value.as_object_mut() {
        for key in ["steps", "epochs", "eps_warmup"] {
            table.get_mut(key).map(scale);
        }
        if let Some(early) = table.get_mut("early_stop").and_then(|e| e.as_object_mut()) {
            early.get_mut("every").map(scale);
            if let Some(images) = early.get_mut("images") {
                let n = images.as_u64().unwrap_or(1).min(held_out.max(1) as u64);
                *images = n.into();
            }
        }
    }
    serde_json::from_value(value)
        .map_err(|e| Error::invalid(format!("the defense shortened by --quick does not read back: {e}")))
}

/// A trained model's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    pub name: String,
    pub seconds: f64,
    /// Optimizer steps (models trained with a recipe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_per_step: Option<f64>,
    /// The checkpoint early stopping kept: (step, score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_checkpoint: Option<(usize, f64)>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped_early: bool,
    /// What the defense reported (e.g. fast-at's overfitting check).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Loaded from the model cache (`seconds` is then the time it took when
    /// it was trained).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

/// One evaluation's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub name: String,
    pub model: String,
    pub measure: Measure,
    #[serde(default, skip_serializing_if = "is_test")]
    pub on: Images,
    pub attacks: Vec<String>,
    pub value: f64,
    /// Wilson 95% interval.
    pub interval: (f64, f64),
    /// Images the value is a share of.
    pub images: usize,
    pub paper: Option<f64>,
    pub paper_setup: Option<String>,
    pub seconds: f64,
}

/// One claim's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub text: String,
    /// The evaluation, or the `value` as written.
    pub evaluation: String,
    /// Whether the value is a share (printed as a percentage).
    #[serde(default = "yes")]
    pub share: bool,
    /// The bound checked (the full one, or `--quick`'s).
    pub bound: String,
    /// Not finite where the claim divides by zero: JSON writes that as
    /// `null`, read back as NaN, so the file stays readable.
    #[serde(deserialize_with = "nan_if_null")]
    pub value: f64,
    pub holds: bool,
}

/// Files written before value claims existed bound only evaluations.
fn yes() -> bool {
    true
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// What a reproduction run writes to `reproduction.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reproduction {
    pub schema_version: u32,
    pub name: String,
    pub paper: String,
    pub finding: String,
    pub quick: bool,
    pub seed: u64,
    pub dataset: String,
    pub train_images: usize,
    pub eval_images: usize,
    pub cpu: String,
    pub threads: usize,
    pub models: Vec<TrainedModel>,
    pub evaluations: Vec<Measured>,
    pub claims: Vec<Verdict>,
    pub total_seconds: f64,
    pub created: String,
}

impl Verdict {
    /// The value as printed: a percentage for shares, else a number.
    pub fn shown(&self) -> String {
        if !self.value.is_finite() {
            // Not `inf` or `NaN`: the claim has no value, and says why.
            "undefined (it divides by zero)".to_string()
        } else if self.share {
            pct(self.value)
        } else {
            format!("{:.3}", self.value)
        }
    }
}

impl Reproduction {
    pub fn all_hold(&self) -> bool {
        self.claims.iter().all(|c| c.holds)
    }
}

/// Runs `file` (already shrunk for `--quick`), writing into `out`; models
/// come from `cache` where it holds them, and go into it when trained.
pub fn run(
    file: &ReproductionFile,
    quick: bool,
    out: &Path,
    force: bool,
    cache: Option<&ModelCache>,
    cancel: &Arc<AtomicBool>,
) -> Result<Reproduction> {
    let started = Instant::now();
    prepare(out, force)?;
    let dataset = load_dataset(&file.data, file.seed)?;
    let eval_test = eval_subset(&dataset.test, file.eval.min(dataset.test.len()), file.seed);
    let eval_train = eval_subset(&dataset.train, file.eval.min(dataset.train.len()), file.seed);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    kernels::set_threads(threads);
    let stop = || cancel.load(Ordering::SeqCst);
    // The CLI puts the command that reruns it in place of this one.
    let interrupted = || Error::ReproductionInterrupted {
        name: file.name.clone(),
        command: format!("redqueen reproduce {}", file.name),
    };

    let trainer = ModelTrainer {
        file,
        dataset: &dataset,
        train_fingerprint: fingerprint(&dataset.train),
        cache,
        stop: &stop,
    };
    let mut models: BTreeMap<String, (Box<dyn Classifier>, String)> = BTreeMap::new();
    let mut trained = Vec::new();
    for entry in &file.models {
        let (model, key, record) = trainer.train(entry, &models)?;
        if stop() {
            return Err(interrupted());
        }
        trained.push(record);
        models.insert(entry.name.clone(), (model, key));
    }
    let mut evaluations: Vec<Measured> = Vec::new();
    for e in &file.evaluations {
        if stop() {
            return Err(interrupted());
        }
        let images = match e.on {
            Images::Test => &eval_test,
            Images::Train => &eval_train,
        };
        evaluations.push(evaluate(
            models[&e.model].0.as_ref(),
            e,
            images,
            &dataset.train,
            file.seed,
        ));
    }
    let claims = check_claims(&file.claims, &evaluations, &trained, quick);
    let result = Reproduction {
        schema_version: record::SCHEMA_VERSION,
        name: file.name.clone(),
        paper: file.paper.clone(),
        finding: file.finding.clone(),
        quick,
        seed: file.seed,
        dataset: file.data.dataset.clone(),
        train_images: dataset.train.len(),
        eval_images: eval_test.len(),
        cpu: crate::bench::cpu_name(),
        threads,
        models: trained,
        evaluations,
        claims,
        total_seconds: started.elapsed().as_secs_f64(),
        created: record::now_rfc3339(),
    };
    write(out, file, &result)?;
    Ok(result)
}

/// What training a reproduction's models needs.
struct ModelTrainer<'a> {
    file: &'a ReproductionFile,
    dataset: &'a crate::data::Dataset,
    /// Of the training images, for cache keys.
    train_fingerprint: String,
    cache: Option<&'a ModelCache>,
    stop: &'a dyn Fn() -> bool,
}

impl ModelTrainer<'_> {
    /// One model of the file: loaded from the cache, or trained (and then
    /// cached). Returns it deployed, its cache key, and its record; an
    /// error when its training diverged (cut short by `stop`, it is the
    /// caller's to drop).
    fn train(
        &self,
        entry: &ModelEntry,
        models: &BTreeMap<String, (Box<dyn Classifier>, String)>,
    ) -> Result<(Box<dyn Classifier>, String, TrainedModel)> {
        let (file, dataset) = (self.file, self.dataset);
        let from = entry.from.as_ref().map(|from| &models[from]);
        let recipe = Recipe {
            start: match (&entry.model, from) {
                (Some(model), _) => Start::New(model),
                (None, Some((_, key))) => Start::From(key),
                (None, None) => unreachable!("checked by validate"),
            },
            pretrain: entry.pretrain.as_ref(),
            defense: entry.defense.as_ref(),
            rounds: &entry.rounds,
            name: entry.defense.as_ref().map(|_| entry.name.as_str()),
            engine: file.engine,
            seed: file.seed,
            classes: dataset.classes,
            train: &self.train_fingerprint,
            specialist: None,
        };
        let mut net = match (&entry.model, from) {
            (Some(model), _) => {
                crate::tournament::pretrain::init(model, file.engine, &dataset.train, dataset.classes, file.seed)
            }
            (None, Some((parent, _))) => parent.boxed_clone(),
            (None, None) => unreachable!("checked by validate"),
        };
        let name = format!("model {:?}", entry.name);
        let (key, mut record, loaded) = cached(self.cache, &recipe, &name, net.as_mut(), self.stop, |net| {
            self.fit(entry, net)
        });
        if loaded {
            record.name = entry.name.clone();
            record.cached = true;
        }
        if !(self.stop)() {
            let what = format!("model {:?}", entry.name);
            let settings = format!("its entry under `[[models]]` (`{}`)", entry.name);
            crate::tournament::pretrain::check_trained(net.as_ref(), &dataset.train, &what, &settings)?;
        }
        let net = match &entry.defense {
            Some(defense) => defense.deploy(net, file.seed),
            None => net,
        };
        Ok((net, key, record))
    }

    /// Trains `net` as `entry` says: its recipe, or its defense's rounds.
    fn fit(&self, entry: &ModelEntry, net: &mut dyn Classifier) -> TrainedModel {
        let (file, dataset) = (self.file, self.dataset);
        let began = Instant::now();
        let mut record = TrainedModel {
            name: entry.name.clone(),
            seconds: 0.0,
            steps: None,
            seconds_per_step: None,
            kept_checkpoint: None,
            stopped_early: false,
            notes: Vec::new(),
            cached: false,
        };
        if let (Some(model), Some(recipe)) = (&entry.model, &entry.pretrain) {
            let fitted =
                crate::tournament::pretrain::fit(net, model, file.engine, recipe, &dataset.train, file.seed, self.stop);
            record.steps = Some(fitted.steps);
            record.seconds_per_step = Some(began.elapsed().as_secs_f64() / fitted.steps.max(1) as f64);
            record.kept_checkpoint = fitted.kept;
            record.stopped_early = fitted.stopped_early;
        } else if let Some(defense) = &entry.defense {
            let mut rng = stream(file.seed, path!["reproduce", &entry.name]);
            let mut state = defense.init();
            let no_rounds = [None];
            let rounds: Vec<Option<&CraftRound>> = if entry.rounds.is_empty() {
                no_rounds.to_vec()
            } else {
                entry.rounds.iter().map(Some).collect()
            };
            for round in rounds {
                if (self.stop)() {
                    break;
                }
                let (crafted, labels) = match round {
                    Some(round) => craft(net, round, &dataset.train, &mut rng),
                    None => (Vec::new(), Vec::new()),
                };
                let data = RoundData {
                    crafted: &crafted,
                    crafted_labels: &labels,
                    train: &dataset.train,
                };
                state.update(net, &data, &mut rng);
                record.notes.extend(state.note());
            }
        }
        record.seconds = began.elapsed().as_secs_f64();
        record
    }
}

/// A round's examples: `round.attack` against `model` from training images
/// drawn with `rng`, as the referee admits them (labels of the clean images).
fn craft(
    model: &dyn Classifier,
    round: &CraftRound,
    train: &crate::data::Split,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> (Vec<f32>, Vec<u8>) {
    let (x, y) = crate::defense::sample_train(train, round.images, rng);
    let crafted = round.attack.run_with(model, &x, &y, rng, 128, Some(train));
    let verdict = referee::check(round.attack.threat(), crafted.examples, &x, train.dim());
    (verdict.examples, y)
}

/// Each claim's verdict: its full-size bound, or its quick one.
fn check_claims(claims: &[Claim], evaluations: &[Measured], models: &[TrainedModel], quick: bool) -> Vec<Verdict> {
    let evaluation = |name: &str| {
        evaluations
            .iter()
            .find(|m| m.name == name)
            .expect("checked by validate")
            .value
    };
    let seconds = |name: &str| {
        models
            .iter()
            .find(|m| m.name == name)
            .expect("checked by validate")
            .seconds
    };
    claims
        .iter()
        .map(|c| {
            let expr = c.expr().expect("checked by validate");
            let value = expr.value(&evaluation, &seconds);
            let bound = if quick { c.quick } else { c.bound() };
            let share = expr.is_share();
            Verdict {
                text: c.text.clone(),
                evaluation: c.measured().to_string(),
                share,
                bound: bound.describe(share),
                value,
                holds: bound.holds(value),
            }
        })
        .collect()
}

/// The per-image worst case of `e.attacks` on `model` (see
/// [`worst_case`](crate::arena::worst_case::worst_case)).
fn evaluate(
    model: &dyn Classifier,
    e: &Evaluation,
    eval: &crate::data::Split,
    train: &crate::data::Split,
    seed: u64,
) -> Measured {
    let began = Instant::now();
    let rng_for = |attack: &AttackConfig| stream(seed, path!["reproduce", &e.name, &attack.label()]);
    let WorstCase { clean, survives, .. } = worst_case(model, &e.attacks, eval, train, &rng_for);
    let (count, images) = match e.measure {
        Measure::Accuracy => (survives.iter().filter(|&&s| s).count(), eval.len()),
        Measure::Success => {
            let clean_count = clean.iter().filter(|&&c| c).count();
            (clean_count - survives.iter().filter(|&&s| s).count(), clean_count)
        }
    };
    let value = if images == 0 { 0.0 } else { count as f64 / images as f64 };
    Measured {
        name: e.name.clone(),
        model: e.model.clone(),
        measure: e.measure,
        on: e.on,
        attacks: e.attacks.iter().map(AttackConfig::label).collect(),
        value,
        interval: wilson95(count, images).unwrap_or((0.0, 1.0)),
        images,
        paper: e.paper,
        paper_setup: e.paper_setup.clone(),
        seconds: began.elapsed().as_secs_f64(),
    }
}

/// An empty (or, with `force`, emptied of our files) output folder.
fn prepare(out: &Path, force: bool) -> Result<()> {
    if out.exists() {
        if !out.is_dir() {
            return Err(crate::error::OutputError::NotAFolder(out.to_path_buf()).into());
        }
        let ours = ["config.toml", "reproduction.json", "report.html", "table.md"];
        let names: Vec<String> = std::fs::read_dir(out)
            .map_err(Error::io(format!("reading {}", out.display())))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if !names.is_empty() && !force {
            return Err(crate::error::OutputError::Exists(out.to_path_buf()).into());
        }
        let mut foreign: Vec<&String> = names.iter().filter(|n| !ours.contains(&n.as_str())).collect();
        if !foreign.is_empty() {
            foreign.sort();
            let shown: Vec<&str> = foreign.iter().take(3).map(|n| n.as_str()).collect();
            return Err(crate::error::OutputError::NotAReproduction {
                dir: out.to_path_buf(),
                foreign: shown.join(", ") + if foreign.len() > 3 { ", …" } else { "" },
            }
            .into());
        }
        // An earlier run's files go now, so that an interrupted run leaves
        // none that could pass for its own.
        for name in ours {
            let path = out.join(name);
            if std::fs::symlink_metadata(&path).is_ok() {
                std::fs::remove_file(&path).map_err(Error::io(format!("removing {}", path.display())))?;
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|source| {
        crate::error::OutputError::Create {
            dir: out.to_path_buf(),
            source,
        }
        .into()
    })
}

fn write(out: &Path, file: &ReproductionFile, result: &Reproduction) -> Result<()> {
    let io = |path: PathBuf| Error::io(format!("writing {}", path.display()));
    let config = out.join("config.toml");
    let text = crate::config::to_toml(file);
    record::write_atomic(&config, text.as_bytes()).map_err(io(config.clone()))?;
    let json = out.join("reproduction.json");
    record::write_json(&json, result).map_err(io(json.clone()))?;
    let html = out.join("report.html");
    record::write_atomic(&html, render_page(result).as_bytes()).map_err(io(html.clone()))?;
    let printed = out.join("table.md");
    record::write_atomic(&printed, table(result).as_bytes()).map_err(io(printed.clone()))
}

/// The side-by-side table printed after a run.
pub fn table(result: &Reproduction) -> String {
    let mut text = format!(
        "\n{} ({}): {}\n{} {} images, {} evaluated, seed {}{}\n\n",
        result.name,
        result.paper,
        result.finding,
        result.dataset,
        result.train_images,
        result.eval_images,
        result.seed,
        if result.quick { ", --quick" } else { "" }
    );
    text.push_str(
        "| evaluation | ours | 95% interval | images | paper | gap |\n| --- | ---: | --- | ---: | ---: | ---: |\n",
    );
    for m in &result.evaluations {
        let name = match m.on {
            Images::Test => m.name.clone(),
            Images::Train => format!("{} (training images)", m.name),
        };
        let (paper, gap) = match m.paper {
            Some(p) => (pct(p), format!("{:+.1}", 100.0 * (m.value - p))),
            None => ("-".into(), "-".into()),
        };
        text.push_str(&format!(
            "| {} | {} | {}–{} | {} | {} | {} |\n",
            name,
            pct(m.value),
            pct(m.interval.0),
            pct(m.interval.1),
            m.images,
            paper,
            gap
        ));
    }
    text.push('\n');
    for m in &result.models {
        text.push_str(&format!(
            "model {}: trained in {:.1} s{}",
            m.name,
            m.seconds,
            if m.cached { " (loaded from the model cache)" } else { "" }
        ));
        if let (Some(steps), Some(per)) = (m.steps, m.seconds_per_step) {
            text.push_str(&format!(", {steps} steps, {:.3} s per step", per));
        }
        if let Some((at, score)) = m.kept_checkpoint {
            text.push_str(&format!(
                ", kept the checkpoint of step {at} ({} held-out PGD accuracy){}",
                pct(score),
                if m.stopped_early { ", stopped early" } else { "" }
            ));
        }
        for note in &m.notes {
            text.push_str(&format!("; {note}"));
        }
        text.push('\n');
    }
    text.push('\n');
    for c in &result.claims {
        text.push_str(&format!(
            "{} {} ({}: {}, bound {})\n",
            if c.holds { "HOLDS " } else { "FAILED" },
            c.text,
            c.evaluation,
            c.shown(),
            c.bound
        ));
    }
    text.push_str(&format!(
        "\ntotal {:.1} s on {} ({} threads)\n",
        result.total_seconds, result.cpu, result.threads
    ));
    text
}

/// `reproduce --list`: each reproduction of `only` (names or files; all built in when empty)
/// with its paper, finding and claims.
pub fn list(only: &[String]) -> String {
    let chosen: Vec<String> = if only.is_empty() {
        names().iter().map(|n| n.to_string()).collect()
    } else {
        only.to_vec()
    };
    let mut text = String::new();
    for name in &chosen {
        match load(name) {
            Ok(file) => {
                text.push_str(&format!("{name}: {}\n  {}\n", file.paper, file.finding));
                for c in &file.claims {
                    text.push_str(&format!(
                        "  claim: {} ({} {})\n",
                        c.text,
                        c.measured(),
                        c.bound().describe(c.expr().is_ok_and(|e| e.is_share()))
                    ));
                }
            }
            Err(e) => text.push_str(&format!("{name}: {e}\n")),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_reproduction_parses_and_checks() {
        for name in names() {
            let file = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(file.name, name);
            let mut quick = file.clone();
            quick.shrink().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn bounds_hold_and_describe_themselves() {
        let b = Bound {
            at_least: Some(0.85),
            at_most: None,
        };
        assert!(b.holds(0.85) && !b.holds(0.849));
        // A division by zero passes no bound.
        assert!(!b.holds(f64::INFINITY) && !b.holds(f64::NAN));
        assert_eq!(b.describe(true), "at least 85.0%");
        // ... and is written, read back and shown as undefined.
        let verdict = Verdict {
            text: "a ratio".into(),
            evaluation: "a / b".into(),
            share: false,
            bound: b.describe(false),
            value: f64::INFINITY,
            holds: false,
        };
        let json = serde_json::to_string(&verdict).unwrap();
        assert!(json.contains("\"value\":null"), "{json}");
        let read: Verdict = serde_json::from_str(&json).unwrap();
        assert!(read.value.is_nan());
        assert_eq!(read.shown(), "undefined (it divides by zero)");
        assert!(Bound {
            at_least: None,
            at_most: None
        }
        .validate(Some((0.0, 1.0)))
        .is_err());
    }

    #[test]
    fn a_bad_file_is_an_error_naming_what_is_wrong() {
        let text = BUILTIN[0]
            .1
            .replace("evaluation = \"natural-pgd40\"", "evaluation = \"nope\"");
        let file: ReproductionFile = config::parse(&text, "x.toml").unwrap();
        let err = file.validate().unwrap_err().to_string();
        assert!(err.contains("no evaluation named \"nope\""), "{err}");
        assert!(matches!(load("no-such-paper"), Err(Error::Usage(_))));
    }

    /// `madry-mnist` with `extra` appended, checked.
    fn check_with(extra: &str) -> String {
        let text = format!("{}\n{extra}", BUILTIN[0].1);
        let file: ReproductionFile = config::parse(&text, "x.toml").unwrap();
        match file.validate() {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn value_claims_rounds_and_training_evaluations_are_checked() {
        let claim = |body: &str| format!("[[claims]]\ntext = \"t\"\n{body}\nquick = {{ at_least = 0.0 }}");
        assert_eq!(
            check_with(&claim("value = \"adversarial-pgd40 - natural-pgd40\"\nat_least = -0.5")),
            "ok"
        );
        let err = check_with(&claim("value = \"adversarial-pgd40 - nope\"\nat_least = 0.0"));
        assert!(err.contains("no evaluation named \"nope\""), "{err}");
        let err = check_with(&claim(
            "value = \"min(natural-pgd40, adversarial-pgd40)\"\nat_least = 80",
        ));
        assert!(err.contains("fractions between 0 and 1"), "{err}");
        assert_eq!(
            check_with(&claim(
                "value = \"seconds(natural) / seconds(adversarial)\"\nat_most = 80"
            )),
            "ok"
        );
        let err = check_with(&claim("value = \"seconds(nope)\"\nat_least = 0.0"));
        assert!(err.contains("`seconds(nope)` names no model"), "{err}");
        let err = check_with(&claim(
            "evaluation = \"natural-pgd40\"\nvalue = \"natural-pgd40\"\nat_least = 0.0",
        ));
        assert!(err.contains("either `evaluation` or `value`"), "{err}");
        let err = check_with(&claim("value = \"natural-pgd40-adversarial-pgd40\"\nat_least = 0.0"));
        assert!(
            err.contains("no evaluation named \"natural-pgd40-adversarial-pgd40\""),
            "{err}"
        );

        let rounds = "[[models]]\nname = \"tuned\"\nfrom = \"natural\"\ndefense = { kind = \"continual\" }\n\
                      rounds = [{ attack = { family = \"pgd\", eps = 0.3 }, images = IMAGES }]";
        assert_eq!(check_with(&rounds.replace("IMAGES", "100")), "ok");
        let err = check_with(&rounds.replace("IMAGES", "0"));
        assert!(err.contains("round 1") && err.contains("`images` = 0"), "{err}");
        let err = check_with(
            "[[models]]\nname = \"r\"\nmodel = { kind = \"mlp\" }\npretrain = { epochs = 1 }\n\
             rounds = [{ attack = { family = \"pgd\", eps = 0.3 }, images = 10 }]",
        );
        assert!(err.contains("`rounds` are a defense's"), "{err}");
        assert_eq!(
            check_with("[[models]]\nname = \"fresh\"\nmodel = { kind = \"mlp\" }\ndefense = { kind = \"fast-at\" }"),
            "ok"
        );
        assert_eq!(
            check_with("[[evaluations]]\nname = \"t\"\nmodel = \"natural\"\non = \"train\""),
            "ok"
        );
    }

    #[test]
    fn quick_runs_shorten_defenses_and_their_rounds() {
        let mut file = load("forgetting").unwrap();
        file.shrink().unwrap();
        let tuned = &file.models[1];
        assert_eq!(tuned.rounds[0].images, 410);
        let mut wong = load("wong-catastrophic").unwrap();
        wong.shrink().unwrap();
        let early = wong.models[2].pretrain.as_ref().unwrap().early_stop.as_ref().unwrap();
        assert_eq!((early.every, early.images), (10, 400));
        let fast: DefenseConfig = toml::from_str(
            "kind = \"fast-at\"\nsteps = 1000\neps_warmup = 100\nearly_stop = { every = 100, images = 500 }",
        )
        .unwrap();
        let short = serde_json::to_value(shrink_defense(&fast, 0.1, 200).unwrap()).unwrap();
        assert_eq!(
            (
                &short["steps"],
                &short["eps_warmup"],
                &short["early_stop"]["every"],
                &short["early_stop"]["images"]
            ),
            (&100.into(), &10.into(), &10.into(), &200.into())
        );
    }
}
