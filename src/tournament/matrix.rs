//! The generalization matrix (Tramèr & Boneh 2019; Maini et al. 2020): one
//! defender adversarially trained against each attack of a list, each
//! evaluated under every attack of the list.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{eval_subset, prepare_output, RunOptions};
use crate::arena::metrics::{correct, fraction, robust, EVAL_BATCH};
use crate::arena::referee;
use crate::attack::AttackConfig;
use crate::config::matrix::{MatrixFile, MatrixTraining};
use crate::data::{Dataset, Split};
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
    train_into(model.as_mut(), attack, train, settings, seed, stop);
    model
}

/// [`train_against`] on `model` itself: the one training of the matrix's
/// rows and of a tournament's specialists.
pub fn train_into(
    model: &mut dyn Classifier,
    attack: &AttackConfig,
    train: &Split,
    settings: &MatrixTraining,
    seed: u64,
    stop: &dyn Fn() -> bool,
) {
    let mut rng = stream(seed, path!["matrix", "train", &attack.label()]);
    let mut training = TrainConfig::steps(settings.steps, settings.batch, settings.optimizer.clone());
    training.eps_warmup = settings.eps_warmup;
    training.early_stop = settings.early_stop.clone();
    crate::defense::pgd_at::train_against(model, attack, train, training, &mut rng, stop);
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
    Ok(run_locked(file, options, cancel).await?.0)
}

/// [`run`], handing back the lock on the run folder too, so that the caller
/// can write the report before another run may take the folder.
pub async fn run_locked(
    file: MatrixFile,
    options: RunOptions,
    cancel: Arc<AtomicBool>,
) -> Result<(MatrixResult, super::RunLock)> {
    let started = Instant::now();
    let dataset = load(&file).await?;
    let files = RunFiles {
        dir: options.out.clone(),
    };
    // The lock is held to the end: a second run on this folder is refused.
    let (manifest, lock, finished) = if options.resume {
        resume(&file, &dataset, &options)?
    } else {
        let (manifest, lock) = begin(&file, &dataset, &options, &files)?;
        (manifest, lock, Vec::new())
    };

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    kernels::set_threads(cores);
    let pretrain_started = Instant::now();
    let file = Arc::new(file);
    let image_shape = dataset.test.shape;
    let dataset = Arc::new(dataset);
    let eval = Arc::new(eval_subset(&dataset.test, file.eval, file.seed));
    let pretrained = pretrain_shared(
        file.clone(),
        dataset.clone(),
        manifest.weights_fingerprint.clone(),
        cancel.clone(),
    )
    .await?;
    let pretrain_s = pretrain_started.elapsed().as_secs_f64();
    kernels::set_threads(options.threads.unwrap_or(cores / options.jobs.max(1)).max(1));

    let training_started = Instant::now();
    let log = files.dir.join(ROWS_LOG);
    let shared = Shared {
        file: file.clone(),
        dataset,
        eval,
        pretrained,
        cancel: cancel.clone(),
        log: Arc::new(std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(writing(&log))?,
        )),
    };
    let done: Vec<usize> = finished.iter().map(|r| r.row).collect();
    let mut rows = finished;
    rows.extend(play_rows(shared, options.jobs, &done).await?);
    if cancel.load(Ordering::SeqCst) {
        // A row cut short would be a wrong number: it is dropped; the
        // finished rows are in the log, for `matrix --resume`.
        return Err(Error::MatrixInterrupted(options.out));
    }
    rows.sort_by_key(|r| r.row);
    let rows: Vec<MatrixRow> = rows.into_iter().map(|r| r.result).collect();
    let result = MatrixResult {
        schema_version: SCHEMA_VERSION,
        name: file.name.clone(),
        seed: file.seed,
        attacks: file.attacks.iter().map(|a| a.label()).collect(),
        eval_images: file.eval,
        image_shape: Some(image_shape),
        rows,
        timing: MatrixTiming {
            pretrain_s,
            training_s: training_started.elapsed().as_secs_f64(),
            total_s: started.elapsed().as_secs_f64(),
        },
    };
    finish(&files, &result, manifest)?;
    // matrix.json holds every row now.
    let _ = std::fs::remove_file(&log);
    Ok((result, lock))
}

/// The log of finished rows in a matrix folder, one JSON line each, kept
/// until the matrix completes so that an interrupted one can be resumed.
pub(crate) const ROWS_LOG: &str = "matrix-rows.jsonl";

/// A matrix stopped short in `dir`: the rows it finished (each logged in
/// [`ROWS_LOG`]) and the rows it has in all (the undefended one and one per
/// of its `attacks`).
pub fn progress(dir: &Path, attacks: usize) -> (usize, usize) {
    let all = attacks + 1;
    let text = std::fs::read_to_string(dir.join(ROWS_LOG)).unwrap_or_default();
    let mut finished: Vec<usize> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<LoggedRow>(line).ok())
        .map(|logged| logged.row)
        .filter(|&row| row < all)
        .collect();
    finished.sort_unstable();
    finished.dedup();
    (finished.len(), all)
}

/// A finished row, as the log keeps it: its index (0, the undefended
/// model; `i`, trained against attack `i - 1`) and its numbers.
#[derive(serde::Serialize, serde::Deserialize)]
struct LoggedRow {
    row: usize,
    #[serde(flatten)]
    result: MatrixRow,
}

/// `matrix --resume DIR`: the folder locked, its run checked to be this
/// matrix (same configuration, same data) and unfinished, and the rows it
/// finished read back.
fn resume(
    file: &MatrixFile,
    dataset: &Dataset,
    options: &RunOptions,
) -> Result<(Manifest, super::prepare::RunLock, Vec<LoggedRow>)> {
    use crate::error::ResumeError;
    let dir = &options.out;
    let lock = super::prepare::RunLock::take(dir)?;
    let manifest = record::read_manifest(dir)?;
    super::check_same_config::<MatrixFile>(dir, &file.to_toml())?;
    super::prepare::check_config_unedited(dir, manifest.config_fingerprint.as_deref(), &file.fingerprints())?;
    if manifest.dataset_fingerprint != dataset.fingerprint {
        return Err(ResumeError::DataChanged {
            dir: dir.clone(),
            then: manifest.dataset_fingerprint,
            now: dataset.fingerprint.clone(),
        }
        .into());
    }
    let weights_now = super::prepare::weights_fingerprint(&file.model)?;
    super::prepare::check_same_weights(
        dir,
        &file.model,
        manifest.weights_fingerprint.as_deref(),
        weights_now.as_deref(),
    )?;
    // Partial until it finishes: a complete matrix is resumed only when its
    // files did not read back, and it is rebuilt then.
    let manifest = Manifest {
        weights_fingerprint: manifest.weights_fingerprint.or(weights_now),
        config_fingerprint: manifest.config_fingerprint.or(Some(file.fingerprints()[0].clone())),
        status: Status::Partial,
        finished: None,
        ..manifest
    };
    record::write_json(&dir.join("manifest.json"), &manifest).map_err(writing(&dir.join("manifest.json")))?;
    let log = dir.join(ROWS_LOG);
    let text = match std::fs::read_to_string(&log) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(format!("reading {}", log.display()))(e)),
    };
    // A torn last line is a row the interruption cut: it is trained again,
    // and cut from the log so that the next row starts on a line of its own.
    if let Some(end) = text
        .rfind('\n')
        .map(|i| i + 1)
        .or(Some(0))
        .filter(|&end| end < text.len())
    {
        std::fs::write(&log, &text[..end]).map_err(writing(&log))?;
    }
    let mut rows: Vec<LoggedRow> = Vec::new();
    for line in text.lines() {
        if let Ok(row) = serde_json::from_str::<LoggedRow>(line) {
            if row.row <= file.attacks.len() && !rows.iter().any(|r| r.row == row.row) {
                rows.push(row);
            }
        }
    }
    Ok((manifest, lock, rows))
}

/// What every row's task shares.
#[derive(Clone)]
struct Shared {
    file: Arc<MatrixFile>,
    dataset: Arc<Dataset>,
    eval: Arc<Split>,
    pretrained: Arc<dyn Classifier>,
    cancel: Arc<AtomicBool>,
    /// Where each finished row is appended ([`ROWS_LOG`]).
    log: Arc<std::sync::Mutex<std::fs::File>>,
}

fn writing(what: &Path) -> impl FnOnce(std::io::Error) -> Error {
    Error::io(format!("writing {}", what.display()))
}

/// The dataset, loaded off the async threads.
async fn load(file: &MatrixFile) -> Result<Dataset> {
    let (data, seed, model) = (file.data.clone(), file.seed, file.model.clone());
    tokio::task::spawn_blocking(move || super::dataset::load_for(&data, &model, seed))
        .await
        .expect("dataset loading does not panic")
}

/// The output folder, its `config.toml` and a begun `manifest.json`.
fn begin(
    file: &MatrixFile,
    dataset: &Dataset,
    options: &RunOptions,
    files: &RunFiles,
) -> Result<(Manifest, super::prepare::RunLock)> {
    // Read before the folder is made: an unreadable file leaves nothing behind.
    let weights_fingerprint = super::prepare::weights_fingerprint(&file.model)?;
    let lock = prepare_output(&options.out, options.force)?;
    let config_text = file.to_toml();
    record::write_atomic(&files.config(), config_text.as_bytes()).map_err(writing(&files.config()))?;
    let manifest = Manifest {
        weights_fingerprint,
        config_fingerprint: Some(record::content_fingerprint(config_text.as_bytes())),
        ..Manifest::begin(&file.name, file.seed, &dataset.name, &dataset.fingerprint)
    };
    record::write_json(&files.manifest(), &manifest).map_err(writing(&files.manifest()))?;
    Ok((manifest, lock))
}

/// The pretrained model every row starts from, trained off the async
/// threads (or the weights file's, which must still hold `recorded_weights`).
async fn pretrain_shared(
    file: Arc<MatrixFile>,
    dataset: Arc<Dataset>,
    recorded_weights: Option<String>,
    cancel: Arc<AtomicBool>,
) -> Result<Arc<dyn Classifier>> {
    let model = tokio::task::spawn_blocking(move || {
        super::pretrain::pretrain_or_load(
            (&file.model, file.engine),
            &file.pretrain,
            &dataset.train,
            (dataset.classes, file.seed),
            recorded_weights.as_deref(),
            &|| cancel.load(Ordering::SeqCst),
        )
    })
    .await
    .expect("pretraining does not panic")?;
    Ok(Arc::from(model))
}

/// The undefended row, then one trained defender per attack, `jobs` at a
/// time, in row order, each logged as it finishes; rows in `done` are
/// skipped and rows cut short are left out.
async fn play_rows(shared: Shared, jobs: usize, done: &[usize]) -> Result<Vec<LoggedRow>> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut handles = Vec::new();
    for row in (0..=shared.file.attacks.len()).filter(|r| !done.contains(r)) {
        let permit = semaphore.clone().acquire_owned().await.expect("never closed");
        if shared.cancel.load(Ordering::SeqCst) {
            break;
        }
        let shared = shared.clone();
        handles.push(tokio::task::spawn_blocking(move || -> Result<Option<LoggedRow>> {
            let result = match play_row(&shared, row) {
                Ok(result) => result.map(|result| LoggedRow { row, result }),
                Err(diverged) => {
                    // The matrix fails: the rows under way stop, unlogged.
                    shared.cancel.store(true, Ordering::SeqCst);
                    return Err(diverged);
                }
            };
            if let Some(logged) = &result {
                log_row(&shared, logged)?;
            }
            drop(permit);
            Ok(result)
        }));
    }
    let mut rows = Vec::new();
    for handle in handles {
        let row = handle.await.map_err(|e| Error::Io {
            context: "a matrix row failed".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
        rows.extend(row);
    }
    Ok(rows)
}

/// One finished row appended to the log, in one write.
fn log_row(shared: &Shared, row: &LoggedRow) -> Result<()> {
    use std::io::Write;
    let mut line = serde_json::to_string(row).expect("a matrix row serializes");
    line.push('\n');
    let mut file = shared.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    file.write_all(line.as_bytes())
        .and_then(|()| file.flush())
        .map_err(Error::io(format!("writing {ROWS_LOG}")))
}

/// Row 0 evaluates the pretrained model; row `i` trains against attack
/// `i - 1` first. `None` when cancelled during training; an error when
/// that training diverged.
fn play_row(shared: &Shared, row: usize) -> Result<Option<MatrixRow>> {
    let file = &shared.file;
    if row == 0 {
        return Ok(Some(evaluate(
            shared.pretrained.as_ref(),
            UNDEFENDED,
            &file.attacks,
            &shared.eval,
            file.seed,
        )));
    }
    let attack = &file.attacks[row - 1];
    let stop = || shared.cancel.load(Ordering::SeqCst);
    let model = train_against(
        shared.pretrained.as_ref(),
        attack,
        &shared.dataset.train,
        &file.training,
        file.seed,
        &stop,
    );
    if stop() {
        // Cut short: its numbers would be wrong, and are dropped.
        return Ok(None);
    }
    let what = format!("the training of row {row} (against {})", attack.label());
    let train = &shared.dataset.train;
    super::pretrain::check_trained(model.as_ref(), train, &what, "`[training]` (its `optimizer`)")?;
    Ok(Some(evaluate(
        model.as_ref(),
        &attack.label(),
        &file.attacks,
        &shared.eval,
        file.seed,
    )))
}

/// `matrix.json`, and the manifest marked complete.
fn finish(files: &RunFiles, result: &MatrixResult, mut manifest: Manifest) -> Result<()> {
    record::write_json(&files.matrix(), result).map_err(writing(&files.matrix()))?;
    manifest.finished = Some(record::now_rfc3339());
    manifest.status = Status::Complete;
    record::write_json(&files.manifest(), &manifest).map_err(writing(&files.manifest()))
}
