//! Running a tournament: data, pretraining, every match (concurrently, on
//! blocking threads), then the files and the summary.

pub mod game;
pub mod matrix;
pub mod summary;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::arena::{self, MatchPlan, Phase};
use crate::config::{DataConfig, Plan, PretrainConfig};
use crate::data::{self, Dataset, Split};
use crate::error::{Error, Result};
use crate::model::{kernels, Classifier, Engine, ModelConfig};
use crate::path;
pub use crate::record::read_manifest;
use crate::record::{self, read_json, Manifest, RoundRow, RowLog, RunFiles, RunTiming, Shard, Status, Summary};
use crate::rng::{derived_seed, stream};

/// What a tournament reports while it runs (progress bars live above).
pub trait Observer: Send + Sync {
    fn pretraining(&self) {}
    /// The rounds this run will play (fewer than the plan's when resuming
    /// or running one part of a sharded run).
    fn planned(&self, _rounds: usize) {}
    fn match_started(&self, _id: usize, _attacker: &str, _defender: &str, _rounds: usize) {}
    fn phase(&self, _id: usize, _round: usize, _phase: Phase) {}
    fn round_done(&self, _row: &RoundRow) {}
    fn match_finished(&self, _id: usize) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

pub struct RunOptions {
    pub out: PathBuf,
    /// Matches run at once.
    pub jobs: usize,
    /// Replace the run files of an existing output folder.
    pub force: bool,
    /// Threads per model's matrix multiplies (default: the cores left per
    /// concurrent match).
    pub threads: Option<usize>,
    /// Continue the partial run in `out` (its configuration was checked to
    /// be this plan's): completed matches are kept, the rest are played.
    pub resume: bool,
    /// Play only this part of the matches.
    pub shard: Option<Shard>,
}

/// The (seed, match id) pairs whose every round is in `rows` (or whose
/// defender diverged, which ends a match early).
pub fn completed_matches(rows: &[RoundRow], rounds: usize) -> BTreeSet<(u64, usize)> {
    let mut by_match: BTreeMap<(u64, usize), BTreeSet<usize>> = BTreeMap::new();
    let mut diverged = BTreeSet::new();
    for r in rows {
        by_match.entry((r.seed, r.match_id)).or_default().insert(r.round);
        if r.diverged.is_some() {
            diverged.insert((r.seed, r.match_id));
        }
    }
    by_match
        .into_iter()
        .filter(|(key, played)| {
            let until = played.iter().max().copied().unwrap_or(0);
            let contiguous = played.len() == until && played.iter().copied().eq(1..=until);
            contiguous && (until == rounds || diverged.contains(key))
        })
        .map(|(key, _)| key)
        .collect()
}

/// Load the dataset a `[data]` table names, cut to its sizes (synthetic
/// digits are drawn from `seed`).
pub fn load_dataset(d: &DataConfig, seed: u64) -> Result<Dataset> {
    let dataset = match d.dataset.as_str() {
        "synthetic-digits" => data::synthetic_digits(seed, d.train, d.test),
        "idx" => {
            let path = d
                .path
                .as_deref()
                .ok_or_else(|| Error::Usage("`data.path` is required for the idx dataset".into()))?;
            data::load_idx_dir(path, "idx")?
        }
        named => data::load_idx_dir(&data::resolve_named(named)?, named)?,
    };
    let (rows, cols) = crate::config::IMAGE_SIZE;
    if (dataset.train.rows, dataset.train.cols) != (rows, cols) {
        return Err(Error::Usage(format!(
            "the dataset's images are {}x{}; redqueen's models take {rows}x{cols}",
            dataset.train.rows, dataset.train.cols
        )));
    }
    Ok(dataset.truncate(d.train, d.test)?)
}

/// The tournament's fixed evaluation subset of the test split.
pub fn eval_subset(test: &Split, size: usize, seed: u64) -> Split {
    let mut indices = rand::seq::index::sample(&mut stream(seed, path!["eval-subset"]), test.len(), size).into_vec();
    indices.sort_unstable();
    test.subset(&indices)
}

/// Clean training before round 1. Depends only on the model, the pretraining
/// settings, the data and the seed, so every defender of a model shares it.
pub fn pretrain(
    model: &ModelConfig,
    engine: Engine,
    settings: &PretrainConfig,
    train: &Split,
    classes: usize,
    seed: u64,
) -> Box<dyn Classifier> {
    use crate::model::{Examples, TrainConfig, TrainSet, Trainer};
    let key = serde_json::to_string(&(model, engine)).expect("model configs serialize");
    let mut net = model.init(
        engine,
        train.rows,
        train.cols,
        classes,
        derived_seed(seed, path!["init", &key]),
    );
    let config = TrainConfig::epochs(settings.epochs, settings.batch, settings.optimizer);
    Trainer::new(config).fit(
        net.as_mut(),
        Examples::Set(TrainSet::labeled(&train.images, &train.labels)),
        &mut stream(seed, path!["pretrain", &key]),
    );
    net
}

/// The run files an existing folder may hold, removed by `--force`.
const RUN_FILES: &[&str] = &[
    "config.toml",
    "manifest.json",
    "rounds.jsonl",
    "summary.json",
    "gallery.json",
    "matrix.json",
    "report.html",
];

pub(crate) fn prepare_output(out: &Path, force: bool) -> Result<()> {
    if out.exists() {
        if !out.is_dir() {
            return Err(Error::Usage(format!(
                "--out {}: exists and is not a folder",
                out.display()
            )));
        }
        let non_empty = std::fs::read_dir(out)
            .map_err(Error::io(format!("reading {}", out.display())))?
            .next()
            .is_some();
        if non_empty && !force {
            return Err(Error::Usage(format!(
                "the output folder {} already exists; choose another with --out, or pass --force to replace its run files",
                out.display()
            )));
        }
        for name in RUN_FILES {
            let path = out.join(name);
            // symlink_metadata: a link is removed itself, never followed.
            if std::fs::symlink_metadata(&path).is_ok() {
                std::fs::remove_file(&path).map_err(Error::io(format!("removing {}", path.display())))?;
            }
        }
        let plots = out.join("plots");
        match std::fs::symlink_metadata(&plots) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&plots),
            Ok(_) => std::fs::remove_file(&plots),
            Err(_) => Ok(()),
        }
        .map_err(Error::io(format!("removing {}", plots.display())))?;
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::Usage(format!("--out {}: cannot create the folder: {e}", out.display())))
}

/// One seed's share of a tournament: its data, evaluation subset and
/// pretrained model (all derived from that seed).
struct Replicate {
    seed: u64,
    dataset: Dataset,
    eval: Split,
    pretrained: Box<dyn Classifier>,
}

/// Run every match of `plan`, once per seed, writing the run folder. Bad
/// input (data, output folder) is reported before anything is written.
pub async fn run(
    plan: Plan,
    options: RunOptions,
    observer: Arc<dyn Observer>,
    cancel: Arc<AtomicBool>,
) -> Result<Summary> {
    let started = Instant::now();
    let plan = Arc::new(plan);
    let file = plan.file.clone();
    let seeds = file.seed_list();
    let first_dataset = {
        let (data, seed) = (file.data.clone(), seeds[0]);
        tokio::task::spawn_blocking(move || load_dataset(&data, seed))
            .await
            .expect("dataset loading does not panic")?
    };
    let files = RunFiles {
        dir: options.out.clone(),
    };
    let io = |what: &Path| Error::io(format!("writing {}", what.display()));
    // On resume: keep the rows of every completed match (a match cut short
    // is replayed from its start, which gives the same rows again).
    let mut kept: Vec<RoundRow> = Vec::new();
    let mut started_at = record::now_rfc3339();
    let mut previous_timing = RunTiming::default();
    if options.resume {
        let previous = read_manifest(&options.out)?;
        if previous.shard != options.shard {
            return Err(Error::Usage(format!(
                "--resume {}: {}; resume it with the same --shard, or without --shard",
                options.out.display(),
                match previous.shard {
                    Some(s) => format!("it is part {}/{} of a sharded run", s.index, s.count),
                    None => "it is a whole run, not a part of a sharded one".into(),
                }
            )));
        }
        if previous.dataset_fingerprint != first_dataset.fingerprint {
            return Err(Error::Usage(format!(
                "--resume {}: the dataset changed since the run began (fingerprint {} then, {} now); resume with the same data, or start a new run",
                options.out.display(),
                previous.dataset_fingerprint,
                first_dataset.fingerprint
            )));
        }
        started_at = previous.started;
        // Time already spent counts: the summary's timing is the run's total.
        if let Ok(Some(summary)) = read_json::<Summary>(&files.summary()) {
            previous_timing = summary.timing;
        }
        let rows =
            record::read_rows(&files.rounds()).map_err(Error::io(format!("reading {}", files.rounds().display())))?;
        let done = completed_matches(&rows, file.rounds);
        kept = rows
            .into_iter()
            .filter(|r| done.contains(&(r.seed, r.match_id)))
            .collect();
        record::write_rows_sorted(&files.rounds(), &mut kept).map_err(io(&files.rounds()))?;
    } else {
        prepare_output(&options.out, options.force)?;
    }
    record::write_atomic(&files.config(), plan.to_toml().as_bytes()).map_err(io(&files.config()))?;
    let mut manifest = Manifest {
        started: started_at,
        shard: options.shard,
        ..Manifest::begin(&file.name, file.seed, &first_dataset.name, &first_dataset.fingerprint)
    };
    record::write_json(&files.manifest(), &manifest).map_err(io(&files.manifest()))?;

    // Pretraining runs alone, so it gets every core; then cores are shared
    // out: matches run side by side, each model's matrix multiplies use the
    // cores left per match. Thread counts never change a result.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    kernels::set_threads(cores);

    // Per seed: its data (synthetic digits are drawn from the seed), its
    // evaluation subset and its pretrained model.
    observer.pretraining();
    let pretrain_started = Instant::now();
    let replicates: Option<Vec<Arc<Replicate>>> = {
        let file = file.clone();
        let seeds = seeds.clone();
        let cancel_pretraining = cancel.clone();
        tokio::task::spawn_blocking(move || -> Result<Option<Vec<Arc<Replicate>>>> {
            let mut first = Some(first_dataset);
            seeds
                .iter()
                .map(|&seed| {
                    // A stop during pretraining stops before the next seed.
                    if cancel_pretraining.load(Ordering::SeqCst) {
                        return Ok(None);
                    }
                    let dataset = match first.take() {
                        Some(dataset) => dataset,
                        None => load_dataset(&file.data, seed)?,
                    };
                    let eval = eval_subset(&dataset.test, file.sizes.eval, seed);
                    let pretrained = pretrain(
                        &file.model,
                        file.engine,
                        &file.pretrain,
                        &dataset.train,
                        dataset.classes,
                        seed,
                    );
                    Ok(Some(Arc::new(Replicate {
                        seed,
                        dataset,
                        eval,
                        pretrained,
                    })))
                })
                .collect::<Result<Option<Vec<_>>>>()
        })
        .await
        .expect("pretraining does not panic")?
    };
    let Some(replicates) = replicates else {
        // Interrupted before any match: nothing more to write.
        return Err(Error::Interrupted(options.out));
    };
    let pretrain_s = pretrain_started.elapsed().as_secs_f64();
    kernels::set_threads(options.threads.unwrap_or(cores / options.jobs.max(1)));

    // Matches, `jobs` at a time, each on a blocking thread.
    let matches_started = Instant::now();
    let log = Arc::new(Mutex::new(RowLog::open(&files.rounds()).map_err(io(&files.rounds()))?));
    let write_error: Arc<Mutex<Option<std::io::Error>>> = Arc::new(Mutex::new(None));
    let semaphore = Arc::new(tokio::sync::Semaphore::new(options.jobs.max(1)));
    let mut handles = Vec::new();
    // Costliest first, so that no long match starts last (the order of
    // execution does not change any result).
    let per_seed = plan.matches();
    let cost = |m: &crate::config::MatchRef| plan.defenders[m.defender].strategy.work_per_round(file.sizes.craft);
    let parts = options.shard.map(|shard| {
        let costs: Vec<usize> = seeds.iter().flat_map(|_| per_seed.iter().map(cost)).collect();
        (shard.index, Shard::deal(&costs, shard.count))
    });
    let done = completed_matches(&kept, file.rounds);
    let mut order: Vec<(usize, crate::config::MatchRef)> = (0..replicates.len())
        .flat_map(|s| per_seed.iter().map(move |&m| (s, m)))
        .enumerate()
        .filter(|(position, _)| parts.as_ref().is_none_or(|(index, part)| part[*position] == *index))
        .map(|(_, sm)| sm)
        .filter(|(s, m)| !done.contains(&(seeds[*s], m.id)))
        .collect();
    observer.planned(order.len() * file.rounds);
    order.sort_by_key(|(_, m)| std::cmp::Reverse(cost(m)));
    for (s, m) in order {
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        let (plan, replicate) = (plan.clone(), replicates[s].clone());
        let (observer, cancel, log, write_error) = (observer.clone(), cancel.clone(), log.clone(), write_error.clone());
        // Progress shows every (seed, match) as its own line.
        let progress_id = s * per_seed.len() + m.id;
        handles.push(tokio::task::spawn_blocking(move || {
            let attacker = &plan.attackers[m.attacker];
            let defender = &plan.defenders[m.defender];
            let match_plan = MatchPlan {
                match_id: m.id,
                seed: replicate.seed,
                rounds: plan.file.rounds,
                craft: plan.file.sizes.craft,
                attacker,
                defender,
                unseen: &plan.file.unseen,
                rules: &plan.file.rules,
                train: &replicate.dataset.train,
                eval: &replicate.eval,
            };
            observer.match_started(progress_id, &attacker.name, &defender.name, plan.file.rounds);
            let rows = arena::play(
                &match_plan,
                replicate.pretrained.as_ref(),
                &|round, phase| observer.phase(progress_id, round, phase),
                &|| cancel.load(Ordering::SeqCst),
                &mut |row| {
                    if let Err(e) = log.lock().unwrap_or_else(|e| e.into_inner()).append(row) {
                        write_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                    }
                    observer.round_done(row);
                },
            );
            observer.match_finished(progress_id);
            drop(permit);
            rows
        }));
    }
    let mut rows: Vec<RoundRow> = kept;
    for handle in handles {
        // A panicking match is a bug; report it as an error (exit 1), with
        // the manifest left `partial`, rather than unwinding through here.
        rows.extend(handle.await.map_err(|e| Error::Io {
            context: "a match failed".into(),
            source: std::io::Error::other(e.to_string()),
        })?);
    }
    if let Some(e) = write_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(Error::Io {
            context: format!("appending to {}", files.rounds().display()),
            source: e,
        });
    }
    let matches_s = matches_started.elapsed().as_secs_f64();

    // Canonical order, so the file does not depend on `--jobs`.
    record::write_rows_sorted(&files.rounds(), &mut rows).map_err(io(&files.rounds()))?;

    // The gallery: a few of the tournament's attacks against the first
    // seed's pretrained (undefended) model.
    let interrupted = cancel.load(Ordering::SeqCst);
    // A sharded run's gallery comes from its first part (merge copies it).
    if !interrupted && options.shard.is_none_or(|s| s.index == 1) {
        let (plan, replicate) = (plan.clone(), replicates[0].clone());
        let items = tokio::task::spawn_blocking(move || {
            arena::gallery::gallery(
                replicate.pretrained.as_ref(),
                &replicate.eval,
                &replicate.dataset.train,
                &gallery_attacks(&plan),
                replicate.seed,
            )
        })
        .await
        .expect("the gallery does not panic");
        record::write_json(&files.gallery(), &items).map_err(io(&files.gallery()))?;
    }

    let timing = RunTiming {
        pretrain_s: previous_timing.pretrain_s + pretrain_s,
        matches_s: previous_timing.matches_s + matches_s,
        total_s: previous_timing.total_s + started.elapsed().as_secs_f64(),
    };
    let expected = match &parts {
        Some((index, part)) => part.iter().filter(|p| *p == index).count(),
        None => seeds.len() * per_seed.len(),
    };
    let summary = summary::summarize(&file.name, &seeds, file.rounds, expected, &rows, timing);
    record::write_json(&files.summary(), &summary).map_err(io(&files.summary()))?;
    manifest.finished = Some(record::now_rfc3339());
    manifest.status = if interrupted { Status::Partial } else { Status::Complete };
    record::write_json(&files.manifest(), &manifest).map_err(io(&files.manifest()))?;
    if interrupted {
        return Err(Error::Interrupted(options.out));
    }
    Ok(summary)
}

/// Up to four distinct attacks for the gallery: each attacker's first
/// attack, then the unseen panel.
fn gallery_attacks(plan: &Plan) -> Vec<crate::attack::AttackConfig> {
    let mut attacks: Vec<crate::attack::AttackConfig> = Vec::new();
    let candidates = plan
        .attackers
        .iter()
        .filter_map(|a| a.repertoire.first())
        .chain(&plan.file.unseen);
    for attack in candidates {
        if attacks.len() < 4 && !attacks.iter().any(|a| a.label() == attack.label()) {
            attacks.push(attack.clone());
        }
    }
    attacks
}

/// The manifest of one part of a sharded run, and which part it is; a
/// clear error for any other folder.
pub fn read_part(dir: &Path) -> Result<(Manifest, Shard)> {
    let manifest = read_manifest(dir)?;
    let shard = manifest.shard.ok_or_else(|| {
        Error::Usage(format!(
            "{}: not a shard (it was not run with --shard K/N); merge combines the parts of one sharded run",
            dir.display()
        ))
    })?;
    Ok((manifest, shard))
}

/// Combine the parts of a sharded run (`run --shard K/N`, K = 1..N) into one
/// run folder whose files equal a single-machine run's, apart from timing.
pub fn merge(dirs: &[PathBuf], out: &Path, force: bool) -> Result<Summary> {
    struct Part {
        dir: PathBuf,
        manifest: Manifest,
        shard: Shard,
        config: String,
    }
    let mut parts = Vec::new();
    for dir in dirs {
        let (manifest, shard) = read_part(dir)?;
        if manifest.status != Status::Complete {
            return Err(Error::Usage(format!(
                "{}: shard {}/{} is partial; finish it first with `redqueen run --resume {} --shard {}/{}`",
                dir.display(),
                shard.index,
                shard.count,
                dir.display(),
                shard.index,
                shard.count
            )));
        }
        let config_path = dir.join("config.toml");
        let config = std::fs::read_to_string(&config_path)
            .map_err(|e| Error::Usage(format!("{}: cannot read it: {e}", config_path.display())))?;
        parts.push(Part {
            dir: dir.clone(),
            manifest,
            shard,
            config,
        });
    }
    if parts.is_empty() {
        return Err(Error::Usage(
            "merge needs the folders of every part of a sharded run".into(),
        ));
    }
    parts.sort_by_key(|p| p.shard.index);
    let count = parts[0].shard.count;
    for p in &parts[1..] {
        let (first, dir) = (parts[0].dir.display(), p.dir.display());
        if p.config != parts[0].config {
            return Err(Error::Usage(format!(
                "{first} and {dir}: the parts were run with different configurations (config.toml differs)"
            )));
        }
        let fingerprints = (&parts[0].manifest.dataset_fingerprint, &p.manifest.dataset_fingerprint);
        if fingerprints.0 != fingerprints.1 {
            return Err(Error::Usage(format!(
                "{first} and {dir}: the parts were run on different data (dataset fingerprints {} and {})",
                fingerprints.0, fingerprints.1
            )));
        }
    }
    let indices: Vec<usize> = parts.iter().map(|p| p.shard.index).collect();
    if parts.iter().any(|p| p.shard.count != count) || indices != (1..=count).collect::<Vec<_>>() {
        return Err(Error::Usage(format!(
            "merge needs every part 1..{count} exactly once; got parts {}",
            parts
                .iter()
                .map(|p| format!("{}/{}", p.shard.index, p.shard.count))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let cited = parts[0].dir.join("config.toml").display().to_string();
    let plan = crate::config::check(
        crate::config::parse(&parts[0].config, &cited)?,
        &cited,
        &crate::config::Store::Builtin,
    )?;
    let seeds = plan.file.seed_list();
    let mut rows = Vec::new();
    let mut timing = RunTiming::default();
    for p in &parts {
        let path = p.dir.join("rounds.jsonl");
        rows.extend(record::read_rows(&path).map_err(Error::io(format!("reading {}", path.display())))?);
        // Machine-seconds: the parts' times added up (each part pretrains).
        if let Some(summary) = read_json::<Summary>(&p.dir.join("summary.json"))? {
            timing.pretrain_s += summary.timing.pretrain_s;
            timing.matches_s += summary.timing.matches_s;
            timing.total_s += summary.timing.total_s;
        }
    }
    let expected = seeds.len() * plan.matches().len();
    let done = completed_matches(&rows, plan.file.rounds);
    if done.len() != expected {
        return Err(Error::Usage(format!(
            "the parts hold {} of the {expected} matches complete; resume the parts that are missing matches",
            done.len()
        )));
    }

    // Never merge into one of the parts: --force would destroy it.
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    if canonical(out).is_some() && parts.iter().any(|p| canonical(&p.dir) == canonical(out)) {
        return Err(Error::Usage(format!(
            "--out {}: is one of the parts being merged; choose another folder",
            out.display()
        )));
    }
    prepare_output(out, force)?;
    let files = RunFiles { dir: out.to_path_buf() };
    let io = |what: &Path| Error::io(format!("writing {}", what.display()));
    record::write_atomic(&files.config(), parts[0].config.as_bytes()).map_err(io(&files.config()))?;
    record::write_rows_sorted(&files.rounds(), &mut rows).map_err(io(&files.rounds()))?;
    let gallery: Option<Vec<record::GalleryItem>> = read_json(&parts[0].dir.join("gallery.json"))?;
    if let Some(gallery) = gallery {
        record::write_json(&files.gallery(), &gallery).map_err(io(&files.gallery()))?;
    }
    let summary = summary::summarize(&plan.file.name, &seeds, plan.file.rounds, expected, &rows, timing);
    record::write_json(&files.summary(), &summary).map_err(io(&files.summary()))?;
    let first = &parts[0].manifest;
    let manifest = Manifest {
        started: parts
            .iter()
            .map(|p| p.manifest.started.clone())
            .min()
            .unwrap_or_default(),
        finished: Some(record::now_rfc3339()),
        status: Status::Complete,
        ..Manifest::begin(&first.name, first.seed, &first.dataset, &first.dataset_fingerprint)
    };
    record::write_json(&files.manifest(), &manifest).map_err(io(&files.manifest()))?;
    Ok(summary)
}
