//! The generalization matrix (Tramèr & Boneh 2019; Maini et al. 2020): one
//! defender adversarially trained against each attack of a list, each
//! evaluated under every attack of the list.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{eval_subset, load_dataset, prepare_output, pretrain, RunOptions};
use crate::arena::metrics::{correct, fraction, robust, EVAL_BATCH};
use crate::arena::referee;
use crate::attack::AttackConfig;
use crate::config::matrix::{MatrixFile, MatrixTraining};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::model::{kernels, Classifier, TrainConfig};
use crate::path;
use crate::record::{self, Manifest, MatrixResult, MatrixRow, MatrixTiming, RunFiles, Status, SCHEMA_VERSION};
use crate::rng::stream;

/// The row of the model no attack trained.
pub const UNDEFENDED: &str = "none";

/// A defender trained against `attack` from `pretrained` (pgd-at's
/// training, with any attack).
pub fn train_against(
    pretrained: &dyn Classifier,
    attack: &AttackConfig,
    train: &Split,
    settings: &MatrixTraining,
    seed: u64,
    stop: &dyn Fn() -> bool,
) -> Box<dyn Classifier> {
    let mut model = pretrained.boxed_clone();
    let mut rng = stream(seed, path!["matrix", "train", &attack.label()]);
    let training = TrainConfig::steps(settings.steps, settings.batch, settings.optimizer);
    crate::defense::pgd_at::train_against(model.as_mut(), attack, train, training, &mut rng, stop);
    model
}

/// One row: clean accuracy, and robust accuracy under every attack.
pub fn evaluate(
    model: &dyn Classifier,
    trained_on: &str,
    attacks: &[AttackConfig],
    eval: &Split,
    seed: u64,
) -> MatrixRow {
    let clean = correct(model, &eval.images, &eval.labels);
    let robust_acc = attacks
        .iter()
        .map(|attack| {
            let mut rng = stream(seed, path!["matrix", "eval", trained_on, &attack.label()]);
            let adv = attack.run_with(model, &eval.images, &eval.labels, &mut rng, EVAL_BATCH, None);
            let adv = referee::check(attack.threat(), adv.examples, &eval.images, eval.dim());
            fraction(&robust(model, &adv.examples, &eval.labels, &clean))
        })
        .collect();
    MatrixRow {
        trained_on: trained_on.to_string(),
        clean_acc: fraction(&clean),
        robust_acc,
    }
}

/// Run the matrix, writing `config.toml`, `manifest.json` and `matrix.json`
/// to `options.out` (plots and report are the report layer's).
pub async fn run(file: MatrixFile, options: RunOptions, cancel: Arc<AtomicBool>) -> Result<MatrixResult> {
    let started = Instant::now();
    let dataset = {
        let (data, seed) = (file.data.clone(), file.seed);
        tokio::task::spawn_blocking(move || load_dataset(&data, seed))
            .await
            .expect("dataset loading does not panic")?
    };
    prepare_output(&options.out, options.force)?;
    let files = RunFiles {
        dir: options.out.clone(),
    };
    let io = |what: &Path| Error::io(format!("writing {}", what.display()));
    record::write_atomic(&files.config(), file.to_toml().as_bytes()).map_err(io(&files.config()))?;
    let mut manifest = Manifest::begin(&file.name, file.seed, &dataset.name, &dataset.fingerprint);
    record::write_json(&files.manifest(), &manifest).map_err(io(&files.manifest()))?;

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    kernels::set_threads(cores);
    let pretrain_started = Instant::now();
    let file = Arc::new(file);
    let dataset = Arc::new(dataset);
    let eval = Arc::new(eval_subset(&dataset.test, file.eval, file.seed));
    let pretrained: Arc<dyn Classifier> = {
        let (file, dataset) = (file.clone(), dataset.clone());
        Arc::from(
            tokio::task::spawn_blocking(move || {
                pretrain(
                    &file.model,
                    file.engine,
                    &file.pretrain,
                    &dataset.train,
                    dataset.classes,
                    file.seed,
                )
            })
            .await
            .expect("pretraining does not panic"),
        )
    };
    let pretrain_s = pretrain_started.elapsed().as_secs_f64();
    kernels::set_threads(options.threads.unwrap_or(cores / options.jobs.max(1)).max(1));

    // The undefended row, then one trained defender per attack, `jobs` at a time.
    let training_started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(options.jobs.max(1)));
    let mut handles = Vec::new();
    for row in 0..=file.attacks.len() {
        let permit = semaphore.clone().acquire_owned().await.expect("never closed");
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        let (file, dataset, eval, pretrained, cancel) = (
            file.clone(),
            dataset.clone(),
            eval.clone(),
            pretrained.clone(),
            cancel.clone(),
        );
        handles.push(tokio::task::spawn_blocking(move || {
            let result = match row {
                0 => evaluate(pretrained.as_ref(), UNDEFENDED, &file.attacks, &eval, file.seed),
                _ => {
                    let attack = &file.attacks[row - 1];
                    let stop = || cancel.load(Ordering::SeqCst);
                    let model = train_against(
                        pretrained.as_ref(),
                        attack,
                        &dataset.train,
                        &file.training,
                        file.seed,
                        &stop,
                    );
                    if stop() {
                        // Cut short: its numbers would be wrong, and are dropped.
                        drop(permit);
                        return None;
                    }
                    evaluate(model.as_ref(), &attack.label(), &file.attacks, &eval, file.seed)
                }
            };
            drop(permit);
            Some(result)
        }));
    }
    let mut rows = Vec::new();
    for handle in handles {
        rows.extend(handle.await.map_err(|e| Error::Io {
            context: "a matrix row failed".into(),
            source: std::io::Error::other(e.to_string()),
        })?);
    }
    if cancel.load(Ordering::SeqCst) {
        // A row cut short would be a wrong number: keep none of them.
        return Err(Error::MatrixInterrupted(options.out));
    }
    let result = MatrixResult {
        schema_version: SCHEMA_VERSION,
        name: file.name.clone(),
        seed: file.seed,
        attacks: file.attacks.iter().map(|a| a.label()).collect(),
        rows,
        timing: MatrixTiming {
            pretrain_s,
            training_s: training_started.elapsed().as_secs_f64(),
            total_s: started.elapsed().as_secs_f64(),
        },
    };
    record::write_json(&files.matrix(), &result).map_err(io(&files.matrix()))?;
    manifest.finished = Some(record::now_rfc3339());
    manifest.status = Status::Complete;
    record::write_json(&files.manifest(), &manifest).map_err(io(&files.manifest()))?;
    Ok(result)
}
