//! `redqueen reproduce`: a paper's result, rerun under fixed claims.
//!
//! A reproduction file names the paper, the models to train (a pretraining
//! recipe, or a defense applied to an earlier model), the evaluations (each
//! the per-image worst case over a list of attacks, with the paper's figure
//! where it published one) and the claims: a bound on an evaluation, fixed
//! before the run, for the full size and for `--quick`. The run trains,
//! evaluates, checks, and writes its folder; a failed claim is exit code 3.

mod page;

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
use crate::model::metrics::correct;
use crate::model::{kernels, Classifier, Engine, Length, ModelConfig};
use crate::path;
use crate::record::{self, stats::wilson95};
use crate::rng::stream;
use crate::tournament::{eval_subset, load_dataset};

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

/// A model: trained from scratch with a recipe, or an earlier model with a
/// defense applied once.
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
    /// The defense applied to `from`, as one round of a tournament would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defense: Option<DefenseConfig>,
    /// The paper's model, for comparing like with like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<String>,
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
    /// The paper's figure for the same measure, and its setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_setup: Option<String>,
}

/// A claim: a bound on an evaluation, fixed before the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub text: String,
    pub evaluation: String,
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
    fn holds(&self, value: f64) -> bool {
        self.at_least.is_none_or(|low| value >= low) && self.at_most.is_none_or(|high| value <= high)
    }

    fn describe(&self) -> String {
        match (self.at_least, self.at_most) {
            (Some(low), Some(high)) => format!("between {} and {}", pct(low), pct(high)),
            (Some(low), None) => format!("at least {}", pct(low)),
            (None, Some(high)) => format!("at most {}", pct(high)),
            (None, None) => "any".into(),
        }
    }

    fn validate(&self) -> Result<()> {
        let bounds = [self.at_least, self.at_most];
        if bounds.iter().all(Option::is_none) {
            return Err(Error::invalid("a claim needs `at_least` or `at_most`"));
        }
        if bounds.iter().flatten().any(|b| !(0.0..=1.0).contains(b)) {
            return Err(Error::invalid("`at_least` and `at_most` are fractions between 0 and 1"));
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
        None if name.ends_with(".toml") || Path::new(name).is_file() => {
            let text = std::fs::read_to_string(name)
                .map_err(|e| Error::config(name, format!("cannot read the reproduction file: {e}")))?;
            (text, name.to_string())
        }
        None => {
            return Err(Error::Usage(format!(
                "no reproduction named {name:?}; built in: {} (or give the path of a .toml file)",
                names().join(", ")
            )))
        }
    };
    let file: ReproductionFile = config::parse(&text, &cited)?;
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
        let seen = self.validate_models()?;
        let mut evaluations: Vec<&str> = Vec::new();
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
                    .map_err(|err| Error::invalid(format!("evaluation {:?}: {err}", e.name)))?;
            }
            if e.measure == Measure::Success && e.attacks.is_empty() {
                return Err(Error::invalid(format!(
                    "evaluation {:?}: `measure = \"success\"` needs `attacks`",
                    e.name
                )));
            }
            evaluations.push(&e.name);
        }
        if self.claims.is_empty() {
            return Err(Error::invalid("a reproduction needs at least one claim"));
        }
        for c in &self.claims {
            if !evaluations.contains(&c.evaluation.as_str()) {
                return Err(Error::invalid(format!(
                    "claim {:?}: no evaluation named {:?}",
                    c.text, c.evaluation
                )));
            }
            let within = |e: Error, which: &str| e.within(&format!("claim {:?}, {which}", c.text));
            c.bound().validate().map_err(|e| within(e, "its bound"))?;
            c.quick.validate().map_err(|e| within(e, "its `quick` bound"))?;
        }
        Ok(())
    }

    /// Each model's recipe, or its `from` and defense; returns the names.
    fn validate_models(&self) -> Result<Vec<&str>> {
        let mut seen: Vec<&str> = Vec::new();
        for m in &self.models {
            let within = |e: Error| e.within(&format!("in model {:?}", m.name));
            if seen.contains(&m.name.as_str()) {
                return Err(Error::invalid(format!("two models are named {:?}", m.name)));
            }
            match (&m.model, &m.pretrain, &m.from, &m.defense) {
                (Some(model), Some(pretrain), None, None) => {
                    model
                        .validate(config::IMAGE_SIZE.0, config::IMAGE_SIZE.1)
                        .map_err(within)?;
                    pretrain.validate(self.data.train).map_err(within)?;
                }
                (None, None, Some(from), Some(defense)) => {
                    if !seen.contains(&from.as_str()) {
                        return Err(within(Error::invalid(format!(
                            "`from` = {from:?} must name a model listed before it"
                        ))));
                    }
                    defense.validate().map_err(within)?;
                }
                _ => {
                    return Err(within(Error::invalid(
                        "a model has either `model` and `pretrain`, or `from` and `defense`",
                    )))
                }
            }
            seen.push(&m.name);
        }
        Ok(seen)
    }

    /// The reduced version `--quick` runs.
    pub fn shrink(&mut self) {
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
        }
    }
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
}

/// One evaluation's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub name: String,
    pub model: String,
    pub measure: Measure,
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
    pub evaluation: String,
    /// The bound checked (the full one, or `--quick`'s).
    pub bound: String,
    pub value: f64,
    pub holds: bool,
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

impl Reproduction {
    pub fn all_hold(&self) -> bool {
        self.claims.iter().all(|c| c.holds)
    }
}

/// Runs `file` (already shrunk for `--quick`), writing into `out`.
pub fn run(
    file: &ReproductionFile,
    quick: bool,
    out: &Path,
    force: bool,
    cancel: &Arc<AtomicBool>,
) -> Result<Reproduction> {
    let started = Instant::now();
    prepare(out, force)?;
    let dataset = load_dataset(&file.data, file.seed)?;
    let eval = eval_subset(&dataset.test, file.eval.min(dataset.test.len()), file.seed);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    kernels::set_threads(threads);
    let stop = || cancel.load(Ordering::SeqCst);
    let interrupted = || Error::ReproductionInterrupted(file.name.clone());

    let mut models: BTreeMap<String, Box<dyn Classifier>> = BTreeMap::new();
    let mut trained = Vec::new();
    for entry in &file.models {
        let (model, record) = train_model(entry, file, &dataset, &models, &stop);
        if stop() {
            return Err(interrupted());
        }
        trained.push(record);
        models.insert(entry.name.clone(), model);
    }
    let mut evaluations: Vec<Measured> = Vec::new();
    for e in &file.evaluations {
        if stop() {
            return Err(interrupted());
        }
        evaluations.push(evaluate(models[&e.model].as_ref(), e, &eval, &dataset.train, file.seed));
    }
    let claims = check_claims(&file.claims, &evaluations, quick);
    let result = Reproduction {
        schema_version: record::SCHEMA_VERSION,
        name: file.name.clone(),
        paper: file.paper.clone(),
        finding: file.finding.clone(),
        quick,
        seed: file.seed,
        dataset: file.data.dataset.clone(),
        train_images: dataset.train.len(),
        eval_images: eval.len(),
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

/// One model of the file: trained from scratch with its recipe, or an
/// earlier model (in `models`) with its defense applied once.
fn train_model(
    entry: &ModelEntry,
    file: &ReproductionFile,
    dataset: &crate::data::Dataset,
    models: &BTreeMap<String, Box<dyn Classifier>>,
    stop: &dyn Fn() -> bool,
) -> (Box<dyn Classifier>, TrainedModel) {
    let began = Instant::now();
    let mut record = TrainedModel {
        name: entry.name.clone(),
        seconds: 0.0,
        steps: None,
        seconds_per_step: None,
        kept_checkpoint: None,
        stopped_early: false,
    };
    let model = match (&entry.model, &entry.pretrain, &entry.from, &entry.defense) {
        (Some(model), Some(recipe), _, _) => {
            let (net, fitted) = crate::tournament::pretrain::pretrain_with_report(
                model,
                file.engine,
                recipe,
                &dataset.train,
                dataset.classes,
                file.seed,
                stop,
            );
            record.steps = Some(fitted.steps);
            record.seconds_per_step = Some(began.elapsed().as_secs_f64() / fitted.steps.max(1) as f64);
            record.kept_checkpoint = fitted.kept;
            record.stopped_early = fitted.stopped_early;
            net
        }
        (_, _, Some(from), Some(defense)) => {
            let mut net = models[from].boxed_clone();
            let round = RoundData {
                crafted: &[],
                crafted_labels: &[],
                train: &dataset.train,
            };
            let mut rng = stream(file.seed, path!["reproduce", &entry.name]);
            defense.init().update(net.as_mut(), &round, &mut rng);
            defense.deploy(net, file.seed)
        }
        _ => unreachable!("checked by validate"),
    };
    record.seconds = began.elapsed().as_secs_f64();
    (model, record)
}

/// Each claim's verdict: its full-size bound, or its quick one.
fn check_claims(claims: &[Claim], evaluations: &[Measured], quick: bool) -> Vec<Verdict> {
    claims
        .iter()
        .map(|c| {
            let value = evaluations
                .iter()
                .find(|m| m.name == c.evaluation)
                .expect("checked by validate")
                .value;
            let bound = if quick { c.quick } else { c.bound() };
            Verdict {
                text: c.text.clone(),
                evaluation: c.evaluation.clone(),
                bound: bound.describe(),
                value,
                holds: bound.holds(value),
            }
        })
        .collect()
}

/// The per-image worst case of `e.attacks` on `model`.
/// Transfer attacks train their surrogate on `train`.
fn evaluate(
    model: &dyn Classifier,
    e: &Evaluation,
    eval: &crate::data::Split,
    train: &crate::data::Split,
    seed: u64,
) -> Measured {
    let began = Instant::now();
    let clean = correct(model, &eval.images, &eval.labels);
    let mut survives = clean.clone();
    for attack in &e.attacks {
        let mut rng = stream(seed, path!["reproduce", &e.name, &attack.label()]);
        let crafted = attack.run_with(model, &eval.images, &eval.labels, &mut rng, 128, Some(train));
        let verdict = referee::check(attack.threat(), crafted.examples, &eval.images, eval.dim());
        let still_correct = correct(model, &verdict.examples, &eval.labels);
        for (s, ok) in survives.iter_mut().zip(still_correct) {
            *s &= ok;
        }
    }
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
        let foreign = names.iter().any(|n| !ours.contains(&n.as_str()));
        if !names.is_empty() && (!force || foreign) {
            return Err(crate::error::OutputError::Exists(out.to_path_buf()).into());
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
    let text = toml::to_string(file).expect("a checked reproduction serializes");
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
        let (paper, gap) = match m.paper {
            Some(p) => (pct(p), format!("{:+.1}", 100.0 * (m.value - p))),
            None => ("-".into(), "-".into()),
        };
        text.push_str(&format!(
            "| {} | {} | {}–{} | {} | {} | {} |\n",
            m.name,
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
        text.push_str(&format!("model {}: trained in {:.1} s", m.name, m.seconds));
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
        text.push('\n');
    }
    text.push('\n');
    for c in &result.claims {
        text.push_str(&format!(
            "{} {} ({}: {}, bound {})\n",
            if c.holds { "HOLDS " } else { "FAILED" },
            c.text,
            c.evaluation,
            pct(c.value),
            c.bound
        ));
    }
    text.push_str(&format!(
        "\ntotal {:.1} s on {} ({} threads)\n",
        result.total_seconds, result.cpu, result.threads
    ));
    text
}

/// `reproduce --list`.
pub fn list() -> String {
    let mut text = String::new();
    for name in names() {
        match load(name) {
            Ok(file) => {
                text.push_str(&format!("{name}: {}\n  {}\n", file.paper, file.finding));
                for c in &file.claims {
                    text.push_str(&format!(
                        "  claim: {} ({} {})\n",
                        c.text,
                        c.evaluation,
                        c.bound().describe()
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
            quick.shrink();
            quick.validate().unwrap();
        }
    }

    #[test]
    fn bounds_hold_and_describe_themselves() {
        let b = Bound {
            at_least: Some(0.85),
            at_most: None,
        };
        assert!(b.holds(0.85) && !b.holds(0.849));
        assert_eq!(b.describe(), "at least 85.0%");
        assert!(Bound {
            at_least: None,
            at_most: None
        }
        .validate()
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
}
