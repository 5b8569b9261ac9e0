//! The play phase: every match of the run, `jobs` at a time, each on a
//! blocking thread, its rows appended to the row log as they come.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::shard::Part;
use super::{Observer, Replicate};
use crate::arena::{self, MatchPlan};
use crate::config::{MatchRef, Plan};
use crate::error::{Error, Result};
use crate::record::{RoundRow, RowLog, RunFiles};

/// What every match in flight shares: progress, the stop flag, and the row
/// log (with the first error appending to it).
#[derive(Clone)]
struct Shared {
    observer: Arc<dyn Observer>,
    cancel: Arc<AtomicBool>,
    log: Arc<Mutex<RowLog>>,
    write_error: Arc<Mutex<Option<std::io::Error>>>,
    /// The folder final defenders are saved into, when asked.
    save_models: Option<std::path::PathBuf>,
    /// The first model that could not be saved, and why.
    save_error: Arc<Mutex<Option<(std::path::PathBuf, std::io::Error)>>>,
    /// Finished matches played again to save their models: their rows are
    /// in the log already, so their replayed rows are not appended.
    replaying: Arc<BTreeSet<(u64, usize)>>,
}

/// The matches left to play: (replicate index, match) in this run's part
/// and not completed yet, costliest first.
pub(super) struct Schedule {
    pub order: Vec<(usize, MatchRef)>,
    /// Completed matches among them, played again to save their models:
    /// their rows are in the row log already.
    pub replaying: BTreeSet<(u64, usize)>,
}

impl Schedule {
    /// In canonical order (seed, then match id) each match's position
    /// decides its part; completed matches (`done`) are left out.
    pub fn new(plan: &Plan, seeds: &[u64], part: Option<&Part>, done: &BTreeSet<(u64, usize)>) -> Schedule {
        let per_seed = plan.matches();
        let mut order: Vec<(usize, MatchRef)> = (0..seeds.len())
            .flat_map(|s| per_seed.iter().map(move |&m| (s, m)))
            .enumerate()
            .filter(|(position, _)| part.is_none_or(|part| part.contains(*position)))
            .map(|(_, sm)| sm)
            .filter(|(s, m)| !done.contains(&(seeds[*s], m.id)))
            .collect();
        // Costliest first, so that no long match starts last (the order of
        // execution does not change any result).
        order.sort_by_key(|(_, m)| std::cmp::Reverse(cost(plan, m)));
        Schedule {
            order,
            replaying: BTreeSet::new(),
        }
    }
}

/// A match's estimated cost: its defender's work per round.
pub(super) fn cost(plan: &Plan, m: &MatchRef) -> usize {
    plan.defenders[m.defender]
        .strategy
        .work_per_round(plan.file.sizes.craft)
}

/// Play the scheduled matches, `jobs` at a time, appending each row to
/// `rounds.jsonl` as it comes (but those of the matches the schedule
/// replays, whose rows are there already); returns the rows played (in no
/// set order).
/// A stop (`cancel`) lets the matches in flight finish and starts no more.
pub(super) async fn play(
    plan: &Arc<Plan>,
    replicates: &[Option<Arc<Replicate>>],
    schedule: Schedule,
    files: &RunFiles,
    (jobs, save_models): (usize, bool),
    observer: Arc<dyn Observer>,
    cancel: Arc<AtomicBool>,
) -> Result<Vec<RoundRow>> {
    let log = RowLog::open(&files.rounds()).map_err(Error::io(format!("writing {}", files.rounds().display())))?;
    let shared = Shared {
        observer,
        cancel,
        log: Arc::new(Mutex::new(log)),
        write_error: Arc::new(Mutex::new(None)),
        save_models: save_models.then(|| files.models()),
        save_error: Arc::new(Mutex::new(None)),
        replaying: Arc::new(schedule.replaying),
    };
    let semaphore = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let per_seed = plan.matches().len();
    let mut handles = Vec::new();
    for (s, m) in schedule.order {
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if shared.cancel.load(Ordering::SeqCst) {
            break;
        }
        let replicate = replicates[s].clone().expect("every scheduled match's seed is prepared");
        let (plan, shared) = (plan.clone(), shared.clone());
        // Progress shows every (seed, match) as its own line.
        let progress_id = s * per_seed + m.id;
        handles.push(tokio::task::spawn_blocking(move || {
            let rows = play_match(&plan, &replicate, m, progress_id, &shared);
            drop(permit);
            rows
        }));
    }
    let mut rows = Vec::new();
    for handle in handles {
        // A panicking match is a bug; report it as an error (exit 1), with
        // the manifest left `partial`, rather than unwinding through here.
        rows.extend(handle.await.map_err(|e| Error::Io {
            context: "a match failed".into(),
            source: std::io::Error::other(e.to_string()),
        })?);
    }
    if let Some(e) = shared.write_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(Error::Io {
            context: format!("appending to {}", files.rounds().display()),
            source: e,
        });
    }
    if let Some((path, source)) = shared.save_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(Error::Io {
            context: format!(
                "writing {} (every round is kept; once the cause is fixed, `redqueen run --resume {} --save-models` plays again the matches whose model is missing)",
                path.display(),
                crate::error::shell_word(&files.dir)
            ),
            source,
        });
    }
    Ok(rows)
}

/// One match, start to end (or to a stop), on the calling thread.
fn play_match(plan: &Plan, replicate: &Replicate, m: MatchRef, progress_id: usize, shared: &Shared) -> Vec<RoundRow> {
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
        train: &replicate.train,
        attacker_slice: &replicate.attacker_slice,
        eval: &replicate.eval,
        specialists: &replicate.specialists,
    };
    let observer = &shared.observer;
    let logged = !shared.replaying.contains(&(replicate.seed, m.id));
    observer.match_started(progress_id, &attacker.name, &defender.name, plan.file.rounds);
    let (rows, model) = arena::play_to_end(
        &match_plan,
        replicate.pretrained.as_ref(),
        &|round, phase| observer.phase(progress_id, round, phase),
        &|| shared.cancel.load(Ordering::SeqCst),
        &mut |row| {
            let appended = match logged {
                true => shared.log.lock().unwrap_or_else(|e| e.into_inner()).append(row),
                false => Ok(()),
            };
            if let Err(e) = appended {
                shared
                    .write_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
            }
            observer.round_done(row);
        },
    );
    observer.match_finished(progress_id);
    let finished = rows.len() == plan.file.rounds || rows.last().is_some_and(|r| r.diverged.is_some());
    if let (Some(dir), true) = (&shared.save_models, finished) {
        let path = dir.join(model_file_name(
            match_plan.seed,
            match_plan.match_id,
            &defender.name,
            &attacker.name,
        ));
        if let Err(e) = save_model(&path, plan, &match_plan, model.as_ref()) {
            shared
                .save_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert((path, e));
        }
    }
    rows
}

/// The file a match's final defender is kept in, under `models/`:
/// `seed-S-match-ID-DEFENDER-vs-ATTACKER.safetensors`, names cut to
/// letters, digits, `-`, `_` and `.`.
pub fn model_file_name(seed: u64, match_id: usize, defender: &str, attacker: &str) -> String {
    let clean = |name: &str| -> String {
        name.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "seed-{seed}-match-{match_id}-{}-vs-{}.safetensors",
        clean(defender),
        clean(attacker)
    )
}

/// Writes the final defender of a match in PyTorch's layout, with what it
/// is in the file's metadata.
fn save_model(
    path: &std::path::Path,
    plan: &Plan,
    m: &MatchPlan<'_>,
    model: &dyn crate::model::Classifier,
) -> std::io::Result<()> {
    let mut metadata = vec![
        ("redqueen.tournament", plan.file.name.clone()),
        ("redqueen.defender", m.defender.name.clone()),
        ("redqueen.attacker", m.attacker.name.clone()),
        ("redqueen.seed", m.seed.to_string()),
        ("redqueen.match_id", m.match_id.to_string()),
        ("redqueen.rounds", plan.file.rounds.to_string()),
        // For `evaluate`, which is told the data by flags.
        ("redqueen.dataset", plan.file.data.dataset.clone()),
    ];
    // What a defender deploys around its network is not in the weights.
    if model.preprocessed().is_some() {
        metadata.push((
            "redqueen.deployed",
            "behind a preprocessing step (feature squeezing) these weights do not include".into(),
        ));
    } else if model.smoothed_base().is_some() {
        metadata.push((
            "redqueen.deployed",
            "as the base of randomized smoothing, which these weights do not include".into(),
        ));
    }
    crate::model::torch::save(path, model, &plan.file.model, &metadata)
}
