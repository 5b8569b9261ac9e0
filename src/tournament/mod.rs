//! Running a tournament: data, pretraining, every match (concurrently, on
//! blocking threads), then the files and the summary.

mod dataset;
pub mod game;
pub mod matrix;
pub mod memory;
mod merge;
mod play;
mod prepare;
pub mod pretrain;
pub mod shard;
pub mod specialists;
pub mod summary;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::arena::{self, Phase};
use crate::attack::AttackConfig;
use crate::config::{Plan, TournamentFile};
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::model::{kernels, Classifier};
pub use crate::record::read_manifest;
use crate::record::{self, RoundRow, RunFiles, RunTiming, Shard, Status, Summary};

pub use dataset::{eval_subset, load_dataset, load_whole, split_attacker_slice};
pub use merge::{merge, read_part};
pub use prepare::{check_same_config, RunLock};
pub(crate) use prepare::{first_difference, prepare_output};
pub use pretrain::pretrain;

/// What a tournament reports while it runs (progress bars live above).
pub trait Observer: Send + Sync {
    /// The run folder is locked and checked: the run will cover `matches`
    /// (its part's, on a shard). Nothing is said before, so a refused
    /// folder prints only its error.
    fn starting(&self, _matches: usize) {}
    fn pretraining(&self) {}
    /// A `--save-models` resume plays again `matches` finished matches
    /// whose model is missing (told once the run folder is locked and
    /// checked, before pretraining).
    fn replaying_for_models(&self, _matches: usize) {}
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
    /// Where pretrained models and specialists are kept between runs (none:
    /// trained every time).
    pub cache: Option<crate::model::cache::ModelCache>,
    /// Keep each finished match's final defender in `out/models/`.
    pub save_models: bool,
}

/// The model files missing from the `models/` of the run in `dir`, one per
/// match that has every round but no model: `run --resume DIR
/// --save-models` plays those matches again (a complete run's too), which
/// gives the same rows and saves the models.
pub fn models_missing(dir: &std::path::Path, rounds: usize) -> Result<Vec<String>> {
    let files = RunFiles { dir: dir.to_path_buf() };
    let rows = crate::record::read_rows(&files.rounds())
        .map_err(Error::io(format!("reading {}", files.rounds().display())))?;
    let finished = completed_matches(&rows, rounds);
    // In (seed, match) order.
    Ok(prepare::without_model(&files, &rows)
        .into_iter()
        .filter(|(key, _)| finished.contains(key))
        .map(|(_, name)| name)
        .collect())
}

/// The (seed, match id) pairs whose every round is in `rows` once (or whose
/// defender diverged, which ends a match early). A round twice (a file
/// damaged by hand) leaves its match incomplete: a resume plays it again.
pub fn completed_matches(rows: &[RoundRow], rounds: usize) -> BTreeSet<(u64, usize)> {
    let mut by_match: BTreeMap<(u64, usize), Vec<usize>> = BTreeMap::new();
    let mut diverged = BTreeSet::new();
    for r in rows {
        by_match.entry((r.seed, r.match_id)).or_default().push(r.round);
        if r.diverged.is_some() {
            diverged.insert((r.seed, r.match_id));
        }
    }
    by_match
        .into_iter()
        .filter(|(key, played)| {
            let mut played = played.clone();
            played.sort_unstable();
            let until = played.last().copied().unwrap_or(0);
            let contiguous = played.iter().copied().eq(1..=until);
            contiguous && (until == rounds || diverged.contains(key))
        })
        .map(|(key, _)| key)
        .collect()
}

/// One seed's share of a tournament: its data, split three ways, and its
/// pretrained model (all derived from that seed).
struct Replicate {
    seed: u64,
    /// The training images defenders (and pretraining) may learn from.
    train: Split,
    /// Training images set aside for the attackers' rewards and probes.
    attacker_slice: Split,
    /// The fixed evaluation subset of the test split: measured, never learned from.
    eval: Split,
    pretrained: Box<dyn Classifier>,
    /// The specialists of the unseen panel's threat models, measured on
    /// `eval` (empty without `[specialists]`).
    specialists: specialists::SpecialistMasks,
}

/// Run every match of `plan`, once per seed, writing the run folder. Bad
/// input (data, output folder) is reported before anything is written.
pub async fn run(
    plan: Plan,
    options: RunOptions,
    observer: Arc<dyn Observer>,
    cancel: Arc<AtomicBool>,
) -> Result<Summary> {
    Ok(run_locked(plan, options, observer, cancel).await?.0)
}

/// The matches this run covers (its part's, on a shard), those it plays
/// (less those a resumed run has kept, but for those it plays again to
/// save their models), and so the seeds it prepares: a part trains the pretrained models and
/// specialists of its own seeds only, and the first part also the first
/// seed's, which the gallery shows.
fn share_of_matches(
    plan: &Plan,
    seeds: &[u64],
    shard: Option<Shard>,
    previous: &prepare::Previous,
) -> (usize, play::Schedule, Vec<bool>) {
    let part = shard.map(|shard| {
        let per_seed = plan.matches();
        let costs: Vec<usize> = seeds
            .iter()
            .flat_map(|_| per_seed.iter().map(|m| play::cost(plan, m)))
            .collect();
        shard::Part::plan(shard, &costs, per_seed.len())
    });
    let mut done = completed_matches(&previous.kept, plan.file.rounds);
    done.retain(|key| !previous.replay_for_models.contains(key));
    let mut schedule = play::Schedule::new(plan, seeds, part.as_ref(), &done);
    schedule.replaying = previous.replay_for_models.clone();
    let mut needed = vec![false; seeds.len()];
    for &(s, _) in &schedule.order {
        needed[s] = true;
    }
    needed[0] |= shard.is_none_or(|s| s.index == 1);
    let covered = part.map_or(seeds.len() * plan.matches().len(), |p| p.match_count());
    (covered, schedule, needed)
}

/// [`run`], handing back the lock on the run folder too, so that the caller
/// can write the report before another run may take the folder.
pub async fn run_locked(
    plan: Plan,
    options: RunOptions,
    observer: Arc<dyn Observer>,
    cancel: Arc<AtomicBool>,
) -> Result<(Summary, RunLock)> {
    let started = Instant::now();
    let plan = Arc::new(plan);
    let seeds = plan.file.seed_list();
    let prepared = prepare::prepare(&plan, &options).await?;
    // Held to the end: a second run on this folder is refused meanwhile.
    let lock = prepared.lock;

    // Pretraining runs alone, so it gets every core; then cores are shared
    // out: matches run side by side, each model's matrix multiplies use the
    // cores left per match. Thread counts never change a result.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    kernels::set_threads(cores);
    let previous = prepared.previous;
    let (expected, schedule, needed) = share_of_matches(&plan, &seeds, options.shard, &previous);
    observer.starting(expected);
    if !previous.replay_for_models.is_empty() {
        observer.replaying_for_models(previous.replay_for_models.len());
    }

    observer.pretraining();
    let pretrain_started = Instant::now();
    let replicates = pretrain_replicates(
        &plan.file,
        prepared.first_dataset,
        needed,
        options.cache.clone(),
        prepared.manifest.weights_fingerprint.clone(),
        &cancel,
    )
    .await?;
    let Some(replicates) = replicates else {
        // Interrupted before any match: nothing more to write.
        let still_complete = previous.completed.is_some();
        return Err(interrupted(options.out, still_complete, options.save_models));
    };
    let pretrain_s = pretrain_started.elapsed().as_secs_f64();
    kernels::set_threads(options.threads.unwrap_or(cores / options.jobs.max(1)));

    let matches_started = Instant::now();
    observer.planned(schedule.order.len() * plan.file.rounds);
    let files = prepared.files;
    let played = play::play(
        &plan,
        &replicates,
        schedule,
        &files,
        (options.jobs, options.save_models),
        observer,
        cancel.clone(),
    )
    .await?;
    let (rows, differed) = with_replays(previous.kept, played, &previous.replay_for_models, plan.file.rounds);
    warn_replays_differed(&differed);
    let matches_s = matches_started.elapsed().as_secs_f64();

    let played = Played {
        rows,
        files,
        was_complete: previous.completed.is_some(),
        save_models: options.save_models,
        manifest: prepared.manifest,
        expected,
        timing: RunTiming {
            pretrain_s: previous.timing.pretrain_s + pretrain_s,
            matches_s: previous.timing.matches_s + matches_s,
            total_s: previous.timing.total_s,
        },
        started,
    };
    let interrupted = cancel.load(Ordering::SeqCst);
    let summary = summarize(&plan, replicates[0].as_ref(), options.shard, interrupted, played).await?;
    Ok((summary, lock))
}

/// Matches replayed to save their models whose rows came out otherwise
/// (see [`with_replays`]), said on stderr.
fn warn_replays_differed(differed: &BTreeSet<(u64, usize)>) {
    if differed.is_empty() {
        return;
    }
    let which: Vec<String> = differed
        .iter()
        .map(|(seed, id)| format!("seed {seed} match {id}"))
        .collect();
    crate::warn_line!(
        "warning: {} replayed to save its model played out otherwise than its recorded rows ({}); the replay's rows replace them, as its saved model goes with them. Play is deterministic on one machine and build; another CPU's kernels (AVX2 or AVX-512) or another redqueen version change the last bits",
        if which.len() == 1 { "a match" } else { "matches" },
        which.join(", ")
    );
}

/// The run's rows: those `kept` from before and those `played` now. A
/// match replayed to save its model keeps its rows from before, timings
/// and all, unless it finished again with other rows (play is
/// deterministic on one machine and build, so that is another machine or
/// a bug): then the new rows, which the saved model goes with; those
/// matches are returned too, to be reported. A replay cut short adds
/// nothing.
fn with_replays(
    kept: Vec<RoundRow>,
    played: Vec<RoundRow>,
    replayed: &BTreeSet<(u64, usize)>,
    rounds: usize,
) -> (Vec<RoundRow>, BTreeSet<(u64, usize)>) {
    let key = |r: &RoundRow| (r.seed, r.match_id);
    let (replays, mut rows): (Vec<RoundRow>, Vec<RoundRow>) =
        played.into_iter().partition(|r| replayed.contains(&key(r)));
    let finished_again = completed_matches(&replays, rounds);
    // A match's rows in round order, timings left out.
    let rounds_of = |rows: &[RoundRow], match_key: (u64, usize)| {
        let mut untimed: Vec<RoundRow> = rows
            .iter()
            .filter(|r| key(r) == match_key)
            .map(|r| RoundRow {
                timing: Default::default(),
                ..r.clone()
            })
            .collect();
        untimed.sort_by_key(|r| r.round);
        untimed
    };
    let changed: BTreeSet<(u64, usize)> = finished_again
        .into_iter()
        .filter(|&k| rounds_of(&kept, k) != rounds_of(&replays, k))
        .collect();
    rows.extend(kept.into_iter().filter(|r| !changed.contains(&key(r))));
    rows.extend(replays.into_iter().filter(|r| changed.contains(&key(r))));
    (rows, changed)
}

/// Per seed that is `needed`: its data (synthetic digits are drawn from the
/// seed), its evaluation subset, its pretrained model and its specialists
/// (both from the model cache when it holds them); other seeds are `None`.
/// `None` as a whole when stopped first. `recorded_weights`: the weights
/// file's fingerprint when the run began, which each seed's read must match.
async fn pretrain_replicates(
    file: &TournamentFile,
    first_dataset: Dataset,
    needed: Vec<bool>,
    cache: Option<crate::model::cache::ModelCache>,
    recorded_weights: Option<String>,
    cancel: &Arc<AtomicBool>,
) -> Result<Option<Vec<Option<Arc<Replicate>>>>> {
    let (file, cancel) = (file.clone(), cancel.clone());
    tokio::task::spawn_blocking(move || -> Result<Option<Vec<Option<Arc<Replicate>>>>> {
        let mut first = Some(first_dataset);
        file.seed_list()
            .iter()
            .zip(needed)
            .map(|(&seed, needed)| {
                // A stop during pretraining stops it, and no seed after it starts.
                if cancel.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                let first = first.take();
                if !needed {
                    return Ok(Some(None));
                }
                let dataset = match first {
                    Some(dataset) => dataset,
                    None => load_dataset(&file.data, seed)?,
                };
                let eval = eval_subset(&dataset.test, file.sizes.eval, seed);
                let slice = file.sizes.attacker_slice(dataset.train.len());
                let (train, attacker_slice) = split_attacker_slice(&dataset.train, slice, seed);
                let fingerprint = crate::model::cache::fingerprint(&train);
                // Stopped mid-way, a model is not the seed's: none is used.
                let stop = || cancel.load(Ordering::SeqCst);
                let (pretrained, key) = pretrain::pretrain_cached(
                    cache.as_ref(),
                    (&file.model, file.engine),
                    &file.pretrain,
                    &train,
                    (dataset.classes, seed, &fingerprint),
                    recorded_weights.as_deref(),
                    &stop,
                )?;
                if stop() {
                    return Ok(None);
                }
                let basis = specialists::Basis {
                    pretrained: pretrained.as_ref(),
                    pretrained_key: &key,
                    train: &train,
                    train_fingerprint: &fingerprint,
                    eval: &eval,
                    classes: dataset.classes,
                    seed,
                };
                let specialists = specialists::measure(&file, &basis, cache.as_ref(), &stop)?;
                if stop() {
                    return Ok(None);
                }
                Ok(Some(Some(Arc::new(Replicate {
                    seed,
                    train,
                    attacker_slice,
                    eval,
                    pretrained,
                    specialists,
                }))))
            })
            .collect::<Result<Option<Vec<Option<_>>>>>()
    })
    .await
    .expect("pretraining does not panic")
}

/// What the summarize phase takes from the phases before it.
struct Played {
    /// Every row of the run: kept from before a resume, and played now.
    rows: Vec<RoundRow>,
    files: RunFiles,
    /// The run was complete before this resume (which only replays
    /// matches to save their models): it stays complete if interrupted.
    was_complete: bool,
    manifest: record::Manifest,
    /// The matches this run (or this part) covers.
    expected: usize,
    /// `--save-models`: a resume after an interruption should save too.
    save_models: bool,
    /// Time spent so far (a resumed run's earlier time included), but for
    /// this run's own total, which runs until the summary.
    timing: RunTiming,
    started: Instant,
}

/// The summarize phase: the rows in canonical order, the gallery, the
/// summary and the final manifest. An interrupted run writes what it has
/// and says so.
async fn summarize(
    plan: &Arc<Plan>,
    first: Option<&Arc<Replicate>>,
    shard: Option<Shard>,
    interrupted: bool,
    mut played: Played,
) -> Result<Summary> {
    let files = &played.files;
    let io = |what: &std::path::Path| Error::io(format!("writing {}", what.display()));
    // Canonical order, so the file does not depend on `--jobs`.
    record::write_rows_sorted(&files.rounds(), &mut played.rows).map_err(io(&files.rounds()))?;

    // The gallery: a few of the tournament's attacks against the first
    // seed's pretrained (undefended) model. A sharded run's gallery comes
    // from its first part (merge copies it).
    if let (false, true, Some(first)) = (interrupted, shard.is_none_or(|s| s.index == 1), first) {
        let (plan, replicate) = (plan.clone(), first.clone());
        let items = tokio::task::spawn_blocking(move || {
            arena::gallery::gallery(
                replicate.pretrained.as_ref(),
                &replicate.eval,
                &replicate.train,
                &gallery_attacks(&plan),
                replicate.seed,
            )
        })
        .await
        .expect("the gallery does not panic");
        record::write_json(&files.gallery(), &items).map_err(io(&files.gallery()))?;
    }

    let timing = RunTiming {
        total_s: played.timing.total_s + played.started.elapsed().as_secs_f64(),
        ..played.timing
    };
    let file = &plan.file;
    let summary = summary::summarize(
        &file.name,
        (&file.seed_list(), file.sizes.eval),
        file.rounds,
        played.expected,
        &played.rows,
        timing,
    );
    record::write_json(&files.summary(), &summary).map_err(io(&files.summary()))?;
    // A complete run interrupted while it replayed matches for their models
    // stays complete, as long as every match is still in its rows.
    let still_complete = played.was_complete && completed_matches(&played.rows, file.rounds).len() >= played.expected;
    let mut manifest = played.manifest;
    if !(interrupted && still_complete) {
        manifest.finished = Some(record::now_rfc3339());
    }
    let partial = interrupted && !still_complete;
    manifest.status = if partial { Status::Partial } else { Status::Complete };
    record::write_json(&files.manifest(), &manifest).map_err(io(&files.manifest()))?;
    if interrupted {
        return Err(self::interrupted(files.dir.clone(), still_complete, played.save_models));
    }
    Ok(summary)
}

/// The error of a run in `dir` stopped by a signal: a complete run that was
/// only replaying matches for their models stays complete, and says so.
fn interrupted(dir: PathBuf, still_complete: bool, save_models: bool) -> Error {
    if still_complete {
        Error::ModelsInterrupted(dir)
    } else {
        Error::Interrupted { dir, save_models }
    }
}

/// Up to four distinct attacks for the gallery: each attacker's first
/// attack, then the unseen panel.
fn gallery_attacks(plan: &Plan) -> Vec<AttackConfig> {
    let mut attacks: Vec<AttackConfig> = Vec::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Round `round` of match `id` (seed 1), timed `secs` and scored `acc`.
    fn row(id: usize, round: usize, acc: f64, secs: f64) -> RoundRow {
        serde_json::from_value(serde_json::json!({
            "match_id": id, "attacker": "a", "defender": "d", "seed": 1, "round": round,
            "attack": "pgd", "zero_day_acc": acc, "reward": 0.0, "agent_reward": 0.0, "clean_acc": 0.9,
            "seen_acc": {}, "seen_worst": acc, "seen_union_acc": acc, "unseen_acc": {}, "unseen_worst": null,
            "unseen_mean": null, "gap": null, "stale_acc": 0.5, "stale_inflation": 0.0,
            "wrong_confidence": null, "perturbation": null, "diverged": null,
            "violations": 0, "timing": { "attack_s": secs, "defense_s": 0.0, "eval_s": 0.0 }
        }))
        .unwrap()
    }

    /// A match is complete with each of its rounds once: a gap, a missing
    /// last round or a round twice leaves it to be played again.
    #[test]
    fn a_match_is_complete_with_each_round_once() {
        let rows = |rounds: &[usize]| rounds.iter().map(|&r| row(0, r, 0.5, 1.0)).collect::<Vec<_>>();
        assert_eq!(completed_matches(&rows(&[2, 1]), 2), BTreeSet::from([(1, 0)]));
        for incomplete in [&[1][..], &[2], &[1, 1], &[1, 1, 2], &[1, 2, 2], &[1, 3]] {
            assert!(completed_matches(&rows(incomplete), 2).is_empty(), "{incomplete:?}");
        }
    }

    /// A match replayed for its model keeps its rows from before (timings
    /// too) when it finishes again with the same rows, brings its new rows
    /// when they differ, and adds nothing when cut short; other matches'
    /// rows pass through.
    #[test]
    fn replayed_matches_keep_their_rows_unless_they_changed() {
        let kept = vec![
            row(0, 1, 0.5, 1.0),
            row(0, 2, 0.6, 1.0),
            row(1, 1, 0.7, 1.0),
            row(1, 2, 0.8, 1.0),
        ];
        let replayed = BTreeSet::from([(1, 0)]);
        let sorted = |mut rows: Vec<RoundRow>| {
            rows.sort_by_key(|r| (r.match_id, r.round));
            rows
        };
        let fresh = vec![row(2, 1, 0.1, 3.0)];
        // The rows, and the matches reported as played out otherwise.
        let with = |played: Vec<RoundRow>| {
            let (rows, differed) = with_replays(kept.clone(), played, &replayed, 2);
            (sorted(rows), differed)
        };
        let mut expected = kept.clone();
        expected.extend(fresh.clone());
        let none = BTreeSet::new();
        // The same rows, other timings: the kept ones stay.
        let again = vec![row(0, 2, 0.6, 2.0), row(0, 1, 0.5, 2.0)];
        assert_eq!(with([again, fresh.clone()].concat()), (expected.clone(), none.clone()));
        // Cut short: the kept ones stay.
        let cut = vec![row(0, 1, 0.5, 2.0)];
        assert_eq!(with([cut, fresh.clone()].concat()), (expected, none));
        // Other rows: the new ones replace them, and the match is reported.
        let changed = vec![row(0, 1, 0.5, 2.0), row(0, 2, 0.9, 2.0)];
        let mut expected = changed.clone();
        expected.extend([kept[2].clone(), kept[3].clone()]);
        expected.extend(fresh.clone());
        assert_eq!(
            with([changed, fresh].concat()),
            (sorted(expected), BTreeSet::from([(1, 0)]))
        );
    }
}
