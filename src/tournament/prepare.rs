//! The prepare phase: the first dataset loaded, a resumed run checked
//! against its folder (or a fresh folder made ready), and the
//! configuration and manifest written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{completed_matches, RunOptions};
use crate::config::Plan;
use crate::data::Dataset;
use crate::error::{Error, OutputError, Result, ResumeError};
use crate::model::ModelConfig;
use crate::record::{self, read_json, read_manifest, Manifest, RoundRow, RunFiles, RunTiming, Status, Summary};

/// The run files an existing folder may hold, removed by `--force`.
const RUN_FILES: &[&str] = &[
    "config.toml",
    "manifest.json",
    "rounds.jsonl",
    "summary.json",
    "gallery.json",
    "matrix.json",
    "matrix-rows.jsonl",
    "report.html",
];

/// A run folder ready for the matches.
pub(super) struct Prepared {
    /// The first seed's dataset (loaded first, so bad data is reported
    /// before anything is written).
    pub first_dataset: Dataset,
    pub files: RunFiles,
    pub manifest: Manifest,
    /// What a resumed run keeps from before (nothing for a fresh run).
    pub previous: Previous,
    /// Held until the run ends.
    pub lock: RunLock,
}

/// What a resumed run keeps: the rows of every completed match (a match
/// cut short is replayed from its start, which gives the same rows again),
/// when it started, and the time already spent. With `--save-models`, a
/// completed match whose model is missing (a failed save, or a sitting
/// without the flag) is played again too; its rows stay in `rounds.jsonl`
/// meanwhile, so that a replay cut short loses nothing.
pub(super) struct Previous {
    pub kept: Vec<RoundRow>,
    /// Finished matches (in `kept`) played again to save their models.
    pub replay_for_models: BTreeSet<(u64, usize)>,
    /// When the run completed, for a complete run resumed only to save
    /// models with every match whole on disk: it stays complete whatever
    /// becomes of the replays.
    pub completed: Option<String>,
    pub started: String,
    pub timing: RunTiming,
}

/// Load the first dataset, check or make the run folder, and write the
/// configuration and the (partial) manifest.
pub(super) async fn prepare(plan: &Plan, options: &RunOptions) -> Result<Prepared> {
    let file = &plan.file;
    let first_dataset = {
        let (data, seed, model) = (file.data.clone(), file.seed_list()[0], file.model.clone());
        tokio::task::spawn_blocking(move || super::dataset::load_for(&data, &model, seed))
            .await
            .expect("dataset loading does not panic")?
    };
    let files = RunFiles {
        dir: options.out.clone(),
    };
    let weights_fingerprint = weights_fingerprint(&file.model)?;
    let io = |what: &Path| Error::io(format!("writing {}", what.display()));
    let config_text = plan.to_toml();
    let config_fingerprints = plan.fingerprints();
    let (previous, lock) = if options.resume {
        let lock = RunLock::take(&options.out)?;
        let weights_now = weights_fingerprint.as_deref();
        (
            resume(
                options,
                &first_dataset,
                (&file.model, weights_now),
                &config_fingerprints,
                &files,
                file.rounds,
            )?,
            lock,
        )
    } else {
        let lock = prepare_output(&options.out, options.force)?;
        let fresh = Previous {
            kept: Vec::new(),
            replay_for_models: BTreeSet::new(),
            completed: None,
            started: record::now_rfc3339(),
            timing: RunTiming::default(),
        };
        (fresh, lock)
    };
    record::write_atomic(&files.config(), config_text.as_bytes()).map_err(io(&files.config()))?;
    let manifest = Manifest {
        started: previous.started.clone(),
        finished: previous.completed.clone(),
        status: if previous.completed.is_some() {
            Status::Complete
        } else {
            Status::Partial
        },
        shard: options.shard,
        weights_fingerprint,
        config_fingerprint: Some(config_fingerprints[0].clone()),
        seeds: Manifest::several(&file.seed_list()),
        ..Manifest::begin(&file.name, file.seed, &first_dataset.name, &first_dataset.fingerprint)
    };
    record::write_json(&files.manifest(), &manifest).map_err(io(&files.manifest()))?;
    Ok(Prepared {
        first_dataset,
        files,
        manifest,
        previous,
        lock,
    })
}

/// Check that the run in `options.out` can be resumed as asked (same part,
/// same data, same weights file contents), and keep the rows of its
/// completed matches.
fn resume(
    options: &RunOptions,
    first_dataset: &Dataset,
    (model, weights_now): (&ModelConfig, Option<&str>),
    config_now: &[String; 2],
    files: &RunFiles,
    rounds: usize,
) -> Result<Previous> {
    let previous = read_manifest(&options.out)?;
    check_config_unedited(&options.out, previous.config_fingerprint.as_deref(), config_now)?;
    // Said now, not after the first match has played.
    let models = files.models();
    // (A link to a folder is a folder here: saving goes through it.)
    if options.save_models && std::fs::metadata(&models).is_ok_and(|m| !m.is_dir()) {
        return Err(Error::Usage(format!(
            "{}: is not a folder, but --save-models keeps each match's final defender there; move it away, then resume",
            models.display()
        )));
    }
    if previous.shard != options.shard {
        return Err(ResumeError::ShardDiffers {
            dir: options.out.clone(),
            recorded: previous.shard,
        }
        .into());
    }
    if previous.dataset_fingerprint != first_dataset.fingerprint {
        return Err(ResumeError::DataChanged {
            dir: options.out.clone(),
            then: previous.dataset_fingerprint,
            now: first_dataset.fingerprint.clone(),
        }
        .into());
    }
    check_same_weights(
        &options.out,
        model,
        previous.weights_fingerprint.as_deref(),
        weights_now,
    )?;
    // Time already spent counts: the summary's timing is the run's total.
    let mut timing = RunTiming::default();
    let mut summarized = None;
    if let Ok(Some(summary)) = read_json::<Summary>(&files.summary()) {
        timing = summary.timing;
        summarized = Some(summary.matches_expected);
    }
    let rows =
        record::read_rows(&files.rounds()).map_err(Error::io(format!("reading {}", files.rounds().display())))?;
    let done = completed_matches(&rows, rounds);
    let replay_for_models = if options.save_models {
        without_model(files, &rows)
            .into_keys()
            .filter(|key| done.contains(key))
            .collect()
    } else {
        BTreeSet::new()
    };
    let mut kept: Vec<RoundRow> = rows
        .into_iter()
        .filter(|r| done.contains(&(r.seed, r.match_id)))
        .collect();
    record::write_rows_sorted(&files.rounds(), &mut kept)
        .map_err(Error::io(format!("writing {}", files.rounds().display())))?;
    // Only a replay for models keeps a complete run complete, and only
    // while every match it covers is still whole on disk: one resumed
    // because its files did not read back (a row lost, a summary gone) is
    // partial until they are rebuilt.
    let whole = summarized == Some(done.len());
    let completed = (previous.status == Status::Complete && whole && !replay_for_models.is_empty())
        .then(|| previous.finished.unwrap_or_else(record::now_rfc3339));
    Ok(Previous {
        kept,
        replay_for_models,
        completed,
        started: previous.started,
        timing,
    })
}

/// The matches among `rows` whose model is not in the run's `models/`
/// (never saved, or a save that failed), by (seed, match id), with the
/// model file's name. One look per match, not per row.
pub(super) fn without_model(files: &RunFiles, rows: &[RoundRow]) -> BTreeMap<(u64, usize), String> {
    let models = files.models();
    let mut names = BTreeMap::new();
    for r in rows {
        names
            .entry((r.seed, r.match_id))
            .or_insert_with(|| super::play::model_file_name(r.seed, r.match_id, &r.defender, &r.attacker));
    }
    names.retain(|_, name| !models.join(name).is_file());
    names
}

/// Make `out` an empty run folder and lock it for this process: create it,
/// or (with `force`) remove the run files of the redqueen run it holds. An
/// existing non-empty folder without `force`, one that holds no redqueen
/// run (no manifest.json), `/`, and a folder another run holds are errors,
/// and a refused folder is left as it was (folders made on the way to a
/// folder that cannot be made are removed again).
pub(crate) fn prepare_output(out: &Path, force: bool) -> Result<RunLock> {
    if out.exists() {
        if !out.is_dir() {
            return Err(OutputError::NotAFolder(out.to_path_buf()).into());
        }
        if out.canonicalize().is_ok_and(|c| c.parent().is_none()) {
            return Err(OutputError::Root(out.to_path_buf()).into());
        }
        let non_empty = std::fs::read_dir(out)
            .map_err(Error::io(format!("reading {}", out.display())))?
            .any(|e| e.is_ok_and(|e| e.file_name() != LOCK_FILE));
        if non_empty && !force {
            return Err(OutputError::Exists(out.to_path_buf()).into());
        }
        if non_empty && !out.join("manifest.json").is_file() {
            return Err(OutputError::NotARun(out.to_path_buf()).into());
        }
        // Locked before anything is removed: a folder another run is
        // writing keeps its files.
        let lock = RunLock::take(out)?;
        remove_run_files(out)?;
        return Ok(lock);
    }
    let made = create_dir_all_or_nothing(out)?;
    RunLock::take(out).inspect_err(|_| remove_made(&made))
}

/// `create_dir_all`, except that a failure removes the folders it made
/// (a default `results/` left empty would be a surprise on disk). Returns
/// the folders it made, deepest first.
fn create_dir_all_or_nothing(out: &Path) -> Result<Vec<std::path::PathBuf>> {
    let missing: Vec<std::path::PathBuf> = out
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .map(Path::to_path_buf)
        .collect();
    match std::fs::create_dir_all(out) {
        Ok(()) => Ok(missing),
        Err(source) => {
            remove_made(&missing);
            Err(OutputError::Create {
                dir: out.to_path_buf(),
                source,
            }
            .into())
        }
    }
}

/// The folders a refused run made, removed again (deepest first; any lock
/// file in them first).
fn remove_made(made: &[std::path::PathBuf]) {
    if let Some(deepest) = made.first() {
        let _ = std::fs::remove_file(deepest.join(LOCK_FILE));
    }
    for dir in made {
        let _ = std::fs::remove_dir(dir);
    }
}

/// The lock file inside a run folder.
pub(crate) const LOCK_FILE: &str = ".redqueen.lock";

/// An OS lock on a run folder, held while the value lives: the OS drops it
/// when the process ends, however it ends, so no stale lock survives a
/// killed run. The file holds the pid, for the message another run gets,
/// and is removed when the run ends (a killed run leaves it, unlocked).
#[derive(Debug)]
pub struct RunLock {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still locked; a run that opened it meanwhile finds
        // its file gone from the folder and tries again (`take`).
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

impl RunLock {
    pub(crate) fn take(dir: &Path) -> Result<RunLock> {
        // A run that ends removes the file it locked; one that opened it
        // just before would hold a lock on a file no longer in the folder.
        // So a lock counts only on the file the path still names: retry
        // otherwise.
        for _ in 0..100 {
            if let Some(lock) = Self::try_take(dir)? {
                return Ok(lock);
            }
        }
        Err(Error::io(format!("locking {}", dir.join(LOCK_FILE).display()))(
            std::io::Error::other("the lock file kept changing"),
        ))
    }

    /// One attempt: `None` when the file locked is no longer the folder's.
    fn try_take(dir: &Path) -> Result<Option<RunLock>> {
        use std::io::{Read, Seek, Write};
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io(format!(
                "opening {} (the lock redqueen keeps while it writes the folder; if it is not a file, remove it)",
                path.display()
            )))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(OutputError::Locked {
                    dir: dir.to_path_buf(),
                    pid: pid.trim().to_string(),
                }
                .into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("locking {}", path.display()))(e));
            }
        }
        if !same_file(&file, &path) {
            return Ok(None);
        }
        let write_pid = |file: &mut std::fs::File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            write!(file, "{}", std::process::id())
        };
        write_pid(&mut file).map_err(Error::io(format!("writing {}", path.display())))?;
        Ok(Some(RunLock { file, path }))
    }
}

/// Whether the open `file` is the one `path` names now.
#[cfg(unix)]
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

/// The content fingerprint of the weights file a run starts from, if any:
/// the configuration names the file by path, so what it held is recorded
/// for a resume or a merge to compare.
pub(crate) fn weights_fingerprint(model: &ModelConfig) -> Result<Option<String>> {
    model.weights().map(crate::model::torch::fingerprint).transpose()
}

/// A resumed run's weights file must hold what it held when the run began.
/// A run recorded before fingerprints were kept is taken as it is (its
/// manifest records the fingerprint from now on).
pub(crate) fn check_same_weights(dir: &Path, model: &ModelConfig, then: Option<&str>, now: Option<&str>) -> Result<()> {
    match (model.weights(), then, now) {
        (Some(path), Some(then), Some(now)) if then != now => Err(ResumeError::WeightsChanged {
            dir: dir.to_path_buf(),
            // A relative path is read from the current folder: say which file.
            weights: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            then: then.to_string(),
            now: now.to_string(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// A resume must continue the configuration the run began with: the
/// fingerprint recorded (`then`; runs recorded before it was kept are taken
/// as they are) must be one its configuration now may have (`now`, as the
/// run's `config.toml` or the file given resolve: see
/// [`crate::config::fingerprints`]).
pub(super) fn check_config_unedited(dir: &Path, then: Option<&str>, now: &[String; 2]) -> Result<()> {
    match then {
        Some(then) if !now.iter().any(|n| n == then) => Err(ResumeError::ConfigEdited {
            dir: dir.to_path_buf(),
            config: dir.join("config.toml"),
            then: then.to_string(),
            now: now[0].clone(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// A resume must continue the same run: `given`, the configuration the
/// arguments resolve to (as TOML), must be the one `dir` records (a `T`:
/// a tournament or a matrix file), as this version writes it.
pub fn check_same_config<T>(dir: &Path, given: &str) -> Result<()>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let path = dir.join("config.toml");
    let recorded = record::read_config_text(&path).map_err(|source| ResumeError::ConfigUnreadable {
        dir: dir.to_path_buf(),
        config: path.clone(),
        source,
    })?;
    let recorded = crate::config::rewritten::<T>(&recorded);
    if recorded == given {
        return Ok(());
    }
    Err(ResumeError::ConfigDiffers {
        dir: dir.to_path_buf(),
        config: path,
        difference: first_difference(&recorded, given, ("in the run", "given")),
    }
    .into())
}

/// Where two configurations that differ first do, for a message: the line
/// and each side's text of it (`sides` name them), or that only line
/// endings or blank lines at the end differ.
pub(crate) fn first_difference(a: &str, b: &str, sides: (&str, &str)) -> String {
    let (mut a_lines, mut b_lines) = (a.lines(), b.lines());
    for line in 1.. {
        match (a_lines.next(), b_lines.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => break,
            (x, y) => {
                // In backquotes, not Rust's escaping: a TOML line is full of quotes.
                let shown = |l: Option<&str>| l.map_or("the end of the file".to_string(), |l| format!("`{l}`"));
                return format!(
                    "first difference at line {line}: {} {}, {} {}",
                    shown(x),
                    sides.0,
                    shown(y),
                    sides.1
                );
            }
        }
    }
    "the same lines: only line endings, or the newline after the last line, differ".to_string()
}

/// Remove the run files and plots of an existing folder (`--force`).
fn remove_run_files(out: &Path) -> Result<()> {
    for name in RUN_FILES {
        let path = out.join(name);
        // symlink_metadata: a link is removed itself, never followed.
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path).map_err(Error::io(format!("removing {}", path.display())))?;
        }
    }
    for folder in ["plots", "models"] {
        let path = out.join(folder);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(_) => Ok(()),
        }
        .map_err(Error::io(format!("removing {}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::first_difference;

    #[test]
    fn the_first_difference_is_named_even_past_an_end_or_in_line_endings() {
        let sides = ("in a", "in b");
        assert_eq!(
            first_difference("x = 1\ny = 2\n", "x = 1\ny = 3\n", sides),
            "first difference at line 2: `y = 2` in a, `y = 3` in b"
        );
        assert_eq!(
            first_difference("x = 1\n", "x = 1\ny = 3\n", sides),
            "first difference at line 2: the end of the file in a, `y = 3` in b"
        );
        let only_endings = "the same lines: only line endings, or the newline after the last line, differ";
        assert_eq!(first_difference("x = 1\r\n", "x = 1\n", sides), only_endings);
        assert_eq!(first_difference("x = 1", "x = 1\n", sides), only_endings);
    }
}
