//! `redqueen evaluate`: one model, saved by a run or brought from PyTorch,
//! under a fixed list of attacks on a dataset's test images, once: the
//! per-image worst case with its interval, as RobustBench reports it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::arena::worst_case::{worst_case, WorstCase};
use crate::attack::autoattack::{AutoAttackConfig, Version};
use crate::attack::{AttackConfig, Norm};
use crate::config::DataConfig;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{torch, Engine};
use crate::path;
use crate::record::stats::wilson95;
use crate::rng::stream;

/// An attack list file: `attacks = [ { family = "...", ... }, ... ]`, each
/// entry as in a tournament's unseen panel.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttackList {
    pub attacks: Vec<AttackConfig>,
}

/// What to evaluate, and on what.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    pub model: PathBuf,
    pub data: DataConfig,
    /// None: AutoAttack (standard) in linf at the dataset's usual budget.
    pub attacks: Option<Vec<AttackConfig>>,
    /// Test images, drawn once from the seed.
    pub images: usize,
    pub seed: u64,
}

/// The usual linf budget of a dataset: 0.3 for MNIST-like digits and
/// clothes (Madry et al. 2018), 8/255 for CIFAR-10 (RobustBench).
pub fn default_eps(dataset: &str) -> f32 {
    match dataset {
        "cifar10" => 8.0 / 255.0,
        _ => 0.3,
    }
}

/// One attack of the cascade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackResult {
    pub attack: String,
    /// Images still standing when it ran.
    pub ran_on: usize,
    pub fooled: usize,
    /// Robust accuracy after it (and every attack before it).
    pub accuracy_after: f64,
}

/// `evaluation.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationResult {
    pub model: String,
    pub architecture: String,
    pub dataset: String,
    pub dataset_fingerprint: String,
    pub images: usize,
    pub seed: u64,
    pub clean_accuracy: f64,
    pub clean_interval: (f64, f64),
    pub attacks: Vec<AttackResult>,
    /// Right clean and under every attack (the per-image worst case).
    pub robust_accuracy: f64,
    /// Wilson 95% interval over the images.
    pub robust_interval: (f64, f64),
    pub seconds: f64,
    /// What the file's metadata says that bears on the numbers: a defense
    /// outside the weights, or another dataset than the one evaluated on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Reads an attack list file, checking every attack.
pub fn read_attacks(path: &Path) -> Result<Vec<AttackConfig>> {
    let cited = path.display().to_string();
    let text = crate::config::read_text(path, &cited)?;
    if crate::config::matrix::is_tournament_file(path) {
        return Err(Error::config(
            &cited,
            "a tournament file (it has `attackers` or `defenders`); --attacks takes a file of `attacks = [...]`, written as a tournament's unseen panel",
        ));
    }
    // As a tournament file is parsed: the same hints (TOML's number range).
    let list: AttackList = crate::config::parse(&text, &cited)?;
    crate::config::limits::check(&list).map_err(|e| Error::config(&cited, e.to_string()))?;
    if list.attacks.is_empty() {
        return Err(Error::config(&cited, "`attacks` must list at least one attack"));
    }
    for (i, attack) in list.attacks.iter().enumerate() {
        attack
            .validate()
            .map_err(|e| Error::config(&cited, format!("`attacks[{i}]` ({}): {e}", attack.label())))?;
    }
    Ok(list.attacks)
}

/// A model whose outputs overflow (finite weights, NaN or infinite logits)
/// rejects every adversarial example as it does every clean one, so it
/// would read as robust: refused, naming the file.
fn check_outputs_finite(model: &dyn crate::model::Model, eval: &crate::data::Split, file: &Path) -> Result<()> {
    let dim = eval.dim();
    let bad: usize = eval
        .images
        .chunks(crate::model::metrics::EVAL_BATCH * dim)
        .map(|batch| {
            let logits = model.logits(batch);
            let classes = logits.len() / (batch.len() / dim);
            logits
                .chunks(classes)
                .filter(|row| row.iter().any(|v| !v.is_finite()))
                .count()
        })
        .sum();
    if bad == 0 {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "weights file {}: the model's outputs are NaN or infinite on {bad} of the {} images, so no accuracy of it would mean anything (its weights overflow in the forward pass)",
        file.display(),
        eval.len()
    )))
}

/// Loads the model and the data, and runs the cascade.
pub fn evaluate(options: &EvaluateOptions) -> Result<EvaluationResult> {
    let began = Instant::now();
    // One model at a time: its matrix multiplies get every core (thread
    // counts never change a result).
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    crate::model::kernels::set_threads(cores);
    let architecture = torch::architecture(&options.model)?;
    let dataset = crate::tournament::load_whole(&options.data, options.seed)?;
    architecture.validate(Some(dataset.test.shape)).map_err(|e| {
        Error::invalid(format!(
            "weights file {}: {e} ({}'s images are {})",
            options.model.display(),
            dataset.name,
            dataset.test.shape
        ))
    })?;
    let model = torch::load(
        &options.model,
        &architecture,
        Engine::Native,
        dataset.test.shape,
        dataset.classes,
    )?;
    if options.images == 0 || options.images > dataset.test.len() {
        return Err(Error::Usage(format!(
            "--images must be between 1 and the {} test images of {}, got {}",
            dataset.test.len(),
            dataset.name,
            options.images
        )));
    }
    let eval = crate::tournament::eval_subset(&dataset.test, options.images, options.seed);
    check_outputs_finite(model.as_ref(), &eval, &options.model)?;
    let attacks = attacks_for(options, &dataset)?;
    let rng_for = |attack: &AttackConfig| stream(options.seed, path!["evaluate", &attack.label()]);
    let WorstCase {
        clean,
        survives,
        per_attack,
    } = worst_case(model.as_ref(), &attacks, &eval, &dataset.train, &rng_for);
    let count = |mask: &[bool]| mask.iter().filter(|&&b| b).count();
    let n = eval.len();
    let mut standing = count(&clean);
    let attacks = attacks
        .iter()
        .zip(per_attack)
        .map(|(attack, (ran_on, fooled))| {
            standing -= fooled;
            AttackResult {
                attack: attack.label(),
                ran_on,
                fooled,
                accuracy_after: standing as f64 / n as f64,
            }
        })
        .collect();
    Ok(EvaluationResult {
        model: options.model.display().to_string(),
        architecture: torch::pytorch_code(&architecture, dataset.test.shape, dataset.classes),
        dataset: dataset.name.clone(),
        dataset_fingerprint: dataset.fingerprint.clone(),
        images: n,
        seed: options.seed,
        clean_accuracy: count(&clean) as f64 / n as f64,
        clean_interval: wilson95(count(&clean), n).unwrap_or((0.0, 1.0)),
        attacks,
        robust_accuracy: count(&survives) as f64 / n as f64,
        robust_interval: wilson95(count(&survives), n).unwrap_or((0.0, 1.0)),
        seconds: began.elapsed().as_secs_f64(),
        notes: metadata_notes(&torch::metadata(&options.model)?, &options.data.dataset),
    })
}

/// Notes from a saved model's metadata (`run --save-models` writes it): a
/// defense its weights leave out, and the dataset it was trained on when
/// that is not the one evaluated.
fn metadata_notes(metadata: &std::collections::HashMap<String, String>, evaluated_on: &str) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(deployed) = metadata.get("redqueen.deployed") {
        notes.push(format!(
            "the file says its model was deployed {deployed}: these numbers are of the bare network"
        ));
    }
    if let Some(trained_on) = metadata.get("redqueen.dataset").filter(|d| d.as_str() != evaluated_on) {
        let flags = match trained_on.as_str() {
            "idx" | "cifar10" => format!("--data {trained_on} with --data-path naming its folder"),
            _ => format!("--data {trained_on}"),
        };
        notes.push(format!(
            "the file says its model was trained on {trained_on}, and it was evaluated on {evaluated_on} ({flags} evaluates it on its own data)"
        ));
    }
    notes
}

/// The attacks `--attacks` lists, or AutoAttack (standard) in linf at the
/// dataset's usual budget; a transfer attack's surrogate must fit the
/// dataset's images.
fn attacks_for(options: &EvaluateOptions, dataset: &Dataset) -> Result<Vec<AttackConfig>> {
    let Some(attacks) = &options.attacks else {
        return Ok(vec![AttackConfig::AutoAttack(AutoAttackConfig {
            name: None,
            norm: Norm::Linf,
            eps: default_eps(&options.data.dataset),
            version: Version::Standard,
        })]);
    };
    for (i, attack) in attacks.iter().enumerate() {
        attack.check_shape(Some(dataset.test.shape)).map_err(|e| {
            Error::Usage(format!(
                "--attacks: `attacks[{i}]` ({}): {e} ({}'s images are {})",
                attack.label(),
                dataset.name,
                dataset.test.shape
            ))
        })?;
    }
    Ok(attacks.clone())
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// The result as the terminal shows it.
pub fn table(r: &EvaluationResult) -> String {
    let mut text = format!(
        "{}\n  {}\n  on {} test images of {} (fingerprint {}), seed {}\n\n",
        r.model, r.architecture, r.images, r.dataset, r.dataset_fingerprint, r.seed
    );
    text.push_str("| step | ran on | fooled | accuracy after | 95% interval |\n| --- | ---: | ---: | ---: | --- |\n");
    text.push_str(&format!(
        "| clean | {} | - | {} | {}–{} |\n",
        r.images,
        pct(r.clean_accuracy),
        pct(r.clean_interval.0),
        pct(r.clean_interval.1)
    ));
    for a in &r.attacks {
        text.push_str(&format!(
            "| {} | {} | {} | {} | |\n",
            a.attack,
            a.ran_on,
            a.fooled,
            pct(a.accuracy_after)
        ));
    }
    if r.attacks.len() > 1 {
        // Why "ran on" drops from the first attack to the second by more
        // than the first one fooled.
        text.push_str(
            "\nThe first attack runs on every image; each later one only on the images still classified right (clean, and under every attack before it).\n",
        );
    }
    text.push_str(&format!(
        "\nrobust accuracy (per-image worst case over the attacks): {} (95% interval {}–{}, {} images), {:.1} s\n",
        pct(r.robust_accuracy),
        pct(r.robust_interval.0),
        pct(r.robust_interval.1),
        r.images,
        r.seconds
    ));
    for note in &r.notes {
        text.push_str(&format!("note: {note}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A saved model's metadata that bears on the numbers becomes a note.
    #[test]
    fn metadata_notes_name_what_the_weights_leave_out_and_the_data() {
        let metadata = std::collections::HashMap::from([
            ("redqueen.dataset".to_string(), "synthetic-digits".to_string()),
            (
                "redqueen.deployed".to_string(),
                "behind a preprocessing step (feature squeezing) these weights do not include".to_string(),
            ),
        ]);
        let notes = metadata_notes(&metadata, "mnist");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("feature squeezing") && notes[0].contains("bare network"));
        assert!(notes[1].contains("trained on synthetic-digits") && notes[1].contains("--data synthetic-digits"));
        assert_eq!(metadata_notes(&metadata, "synthetic-digits").len(), 1);
        assert!(metadata_notes(&Default::default(), "mnist").is_empty());
    }
}
