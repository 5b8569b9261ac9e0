//! The files a run writes: rows, summary, manifest; all written atomically.

mod norms;

pub use norms::Norms;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::RunFolderError;

pub mod stats;

pub const SCHEMA_VERSION: u32 = 1;

/// One match, one round: every metric of the round protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRow {
    /// Index of the match in the tournament's plan.
    pub match_id: usize,
    pub attacker: String,
    pub defender: String,
    pub seed: u64,
    pub round: usize,
    /// The attack the attacker picked this round.
    pub attack: String,
    /// Robust accuracy of the pre-update model under the picked attack.
    pub zero_day_acc: f64,
    /// `1 - zero_day_acc`: the payoff matrix's entry (measured on
    /// evaluation images; no agent ever sees it).
    pub reward: f64,
    /// What the attacker's policy observed: `1 -` the picked attack's robust
    /// accuracy on the attacker slice (training images no defender learns
    /// from), against the same pre-update model.
    pub agent_reward: f64,
    /// Queries per attacker-slice image the agent's reward cost (query
    /// attacks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_queries: Option<f64>,
    /// Accuracy of the updated model on clean evaluation images.
    pub clean_acc: f64,
    /// Every attack used so far in the match, re-run against the updated model.
    pub seen_acc: BTreeMap<String, f64>,
    pub seen_worst: f64,
    /// The unseen panel, run against the updated model.
    pub unseen_acc: BTreeMap<String, f64>,
    pub unseen_worst: Option<f64>,
    pub unseen_mean: Option<f64>,
    /// `seen_worst - unseen_worst`.
    pub gap: Option<f64>,
    /// Per-image worst case over every attack seen so far: the share of
    /// evaluation images that every one of them fails on.
    pub seen_union_acc: f64,
    /// Per-image worst case over the unseen panel.
    pub unseen_union_acc: Option<f64>,
    /// `seen_union_acc - unseen_union_acc`.
    pub union_gap: Option<f64>,
    /// With `[specialists]`: per unseen attack, the robust accuracy of the
    /// specialist of its threat model (the pretrained model PGD-trained in
    /// it), fixed per seed...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub specialist_acc: BTreeMap<String, f64>,
    /// ...and `unseen_acc - specialist_acc`, paired over evaluation images.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unseen_vs_specialist: BTreeMap<String, Paired>,
    /// Worst accuracy of the updated model on the zero-day examples of
    /// every round so far (crafted against the models of those rounds).
    pub stale_acc: f64,
    /// `stale_acc - seen_worst`.
    pub stale_inflation: f64,
    /// Mean probability of the wrong answer on successful zero-day examples.
    pub wrong_confidence: Option<f64>,
    /// Mean perturbation norms of the successful zero-day examples.
    pub perturbation: Option<Norms>,
    /// Queries per evaluation image the zero-day attack spent (query
    /// attacks only).
    #[serde(default)]
    pub zero_day_queries: Option<f64>,
    /// Why the attacker picked this round's attack, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_note: Option<String>,
    /// What the defense found worth recording (fast-at: its catastrophic
    /// overfitting check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defense_note: Option<String>,
    /// Smoothing only: certified accuracy at the rules' l2 budget...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certified_acc: Option<f64>,
    /// ...robust accuracy of the smoothed classifier under the strongest
    /// l2 attack of the round (EOT-PGD at the budget included)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certified_empirical_acc: Option<f64>,
    /// ...and the sanity check that the first never exceeds the second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certified_within_empirical: Option<bool>,
    /// Set when the defender's training diverged this round (non-finite
    /// outputs after its update): the reason. The model then classifies
    /// nothing, so the post-round accuracies are 0, and the match ends here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<String>,
    /// Examples the referee rejected this round (counted as failures).
    pub violations: usize,
    /// What the referee rejected, for the first few violations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referee_log: Vec<String>,
    pub timing: RoundTiming,
}

/// A difference of two accuracies on the same images, and the half-width
/// of its 95% interval (see [`stats::paired_difference`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub diff: f64,
    pub ci95: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundTiming {
    pub attack_s: f64,
    pub defense_s: f64,
    pub eval_s: f64,
}

/// Aggregates of one match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchSummary {
    pub match_id: usize,
    pub seed: u64,
    pub attacker: String,
    pub defender: String,
    pub rounds: usize,
    pub aurc_unseen: Option<f64>,
    pub aurc_seen: f64,
    /// AURCs of the per-image worst cases (`unseen_union_acc`, `seen_union_acc`).
    pub aurc_unseen_union: Option<f64>,
    pub aurc_seen_union: f64,
    pub aurc_zero_day: f64,
    pub mean_reward: f64,
    /// Mean of what the attacker's policy observed (`agent_reward`).
    pub mean_agent_reward: f64,
    pub final_clean_acc: f64,
    pub final_seen_worst: f64,
    pub final_unseen_worst: Option<f64>,
    pub final_gap: Option<f64>,
    pub final_seen_union_acc: f64,
    pub final_unseen_union_acc: Option<f64>,
    pub final_union_gap: Option<f64>,
    pub final_stale_inflation: f64,
    /// With `[specialists]`: the specialists' accuracies (fixed per seed)
    /// and the last round's `unseen_vs_specialist`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub specialist_acc: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub final_unseen_vs_specialist: BTreeMap<String, Paired>,
    /// How often each attack was picked.
    pub picks: BTreeMap<String, usize>,
    /// 95% intervals of this match's accuracies (and mean reward), by field
    /// name: Wilson intervals over the evaluation images (see
    /// [`Summary::intervals`]).
    pub ci95: BTreeMap<String, Interval>,
    /// When the defender's training diverged: the round and the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<Diverged>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diverged {
    pub round: usize,
    pub reason: String,
}

/// A defender's aggregates over its matches (means).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefenderSummary {
    pub defender: String,
    pub matches: usize,
    pub aurc_unseen: Option<f64>,
    pub aurc_seen: f64,
    pub aurc_unseen_union: Option<f64>,
    pub aurc_seen_union: f64,
    pub aurc_zero_day: f64,
    pub final_clean_acc: f64,
    pub final_seen_worst: f64,
    pub final_unseen_worst: Option<f64>,
    pub final_gap: Option<f64>,
    pub final_seen_union_acc: f64,
    pub final_unseen_union_acc: Option<f64>,
    pub final_union_gap: Option<f64>,
    pub final_stale_inflation: f64,
    /// With `[specialists]`: per unseen attack, the final unseen accuracy
    /// minus the specialist's, averaged over matches (each match's paired
    /// interval is in its `MatchSummary`)...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub final_unseen_vs_specialist: BTreeMap<String, f64>,
    /// ...and the specialists' accuracies, averaged over its matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub specialist_acc: BTreeMap<String, f64>,
    /// 95% intervals of these accuracies, by field name: over seeds with
    /// several, over evaluation images with one (see [`Summary::intervals`]).
    pub ci95: BTreeMap<String, Interval>,
    /// Half-width of the 95% confidence interval of `aurc_unseen` (and
    /// `aurc_seen`) over seeds: Student's t over the per-seed means. `None`
    /// with fewer than two seeds.
    pub aurc_unseen_ci95: Option<f64>,
    pub aurc_seen_ci95: Option<f64>,
    /// The same for the ranking keys, `aurc_unseen_union` and `aurc_seen_union`.
    pub aurc_unseen_union_ci95: Option<f64>,
    pub aurc_seen_union_ci95: Option<f64>,
    /// Defenders whose ranking key cannot be told apart from this one's at
    /// the seeds' noise: the 95% interval of the per-seed differences (a
    /// paired test: both share each seed's data) contains 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_separable_from: Vec<String>,
    /// Bradley-Terry rating from every match record (Elo scale, mean 1500
    /// over attackers and defenders together).
    pub rating: f64,
    /// Matches in which this defender's training diverged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub diverged_matches: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// An attacker's aggregates over its matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackerSummary {
    pub attacker: String,
    pub matches: usize,
    pub mean_reward: f64,
    /// Half-width of the 95% interval of `mean_reward` over seeds.
    pub mean_reward_ci95: Option<f64>,
    /// 95% interval of `mean_reward`, as [`DefenderSummary::ci95`].
    pub ci95: BTreeMap<String, Interval>,
    /// Mean of what its policy observed (`agent_reward`, on the attacker slice).
    pub mean_agent_reward: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_separable_from: Vec<String>,
    pub rating: f64,
    pub picks: BTreeMap<String, usize>,
}

/// The tournament as a zero-sum game: mean attacker reward per pairing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payoff {
    /// Rows.
    pub attackers: Vec<String>,
    /// Columns.
    pub defenders: Vec<String>,
    /// `reward[a][d]`: mean of `1 - zero_day_acc` over the rounds (and seeds)
    /// of attacker `a` against defender `d`; `None` for a pairing with no
    /// completed match (a partial run, or one part of a sharded run).
    pub reward: Vec<Vec<Option<f64>>>,
}

/// One side's mixed strategy: a probability per agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weight {
    pub agent: String,
    pub probability: f64,
}

/// The Nash equilibrium of the payoff matrix, solved exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Equilibrium {
    /// The attacker reward both sides can guarantee.
    pub value: f64,
    pub attackers: Vec<Weight>,
    pub defenders: Vec<Weight>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    pub name: String,
    pub seed: u64,
    /// Every seed the matches were played with.
    pub seeds: Vec<u64>,
    /// Matches the run should hold; `matches` has the completed ones (fewer
    /// in a partial run).
    pub matches_expected: usize,
    pub matches: Vec<MatchSummary>,
    /// How the `ci95` intervals were computed.
    pub intervals: IntervalBasis,
    /// Ranked by `aurc_unseen_union` (`aurc_seen_union` without an unseen
    /// panel), best first.
    pub defenders: Vec<DefenderSummary>,
    /// Ranked by mean reward, best first.
    pub attackers: Vec<AttackerSummary>,
    pub payoff: Payoff,
    /// `None` unless every pairing has a completed match.
    pub equilibrium: Option<Equilibrium>,
    pub timing: RunTiming,
}

/// A 95% interval, `[low, high]`.
pub type Interval = [f64; 2];

/// What the intervals of a summary rest on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalBasis {
    /// `wilson`: a Wilson score interval over the evaluation images (one
    /// seed; conservative for AURCs and means over matches, which are
    /// means of per-image values in [0, 1]); `student-t`: over the per-seed
    /// values (several seeds). Matches always use `wilson`.
    pub method: IntervalMethod,
    pub eval_images: usize,
    pub seeds: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntervalMethod {
    Wilson,
    StudentT,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunTiming {
    pub pretrain_s: f64,
    pub matches_s: f64,
    pub total_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not (yet) complete: still running, interrupted or killed.
    Partial,
    Complete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub redqueen_version: String,
    pub name: String,
    /// The run's seed; with several, the first.
    pub seed: u64,
    /// A run of several seeds: every one, in order (absent for one seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
    pub dataset: String,
    pub dataset_fingerprint: String,
    pub started: String,
    pub finished: Option<String>,
    pub status: Status,
    /// Set for one part of a sharded run (`run --shard K/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// For a run that starts from a weights file (`model.weights`): the
    /// file's content fingerprint, so that a resume or a merge notices a
    /// file changed in place (the configuration names only its path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_fingerprint: Option<String>,
    /// A fingerprint of `config.toml` as the run began, so that a resume
    /// notices the file edited by hand (rows already played would then sit
    /// beside rows played under other settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_fingerprint: Option<String>,
}

impl Manifest {
    /// `seeds` as a manifest records them: only when there are several.
    pub fn several(seeds: &[u64]) -> Option<Vec<u64>> {
        (seeds.len() > 1).then(|| seeds.to_vec())
    }

    /// The manifest of a run that starts now: `partial` until it completes.
    pub fn begin(name: &str, seed: u64, dataset: &str, fingerprint: &str) -> Manifest {
        Manifest {
            schema_version: SCHEMA_VERSION,
            redqueen_version: env!("CARGO_PKG_VERSION").to_string(),
            name: name.to_string(),
            seed,
            seeds: None,
            dataset: dataset.to_string(),
            dataset_fingerprint: fingerprint.to_string(),
            started: now_rfc3339(),
            finished: None,
            status: Status::Partial,
            shard: None,
            weights_fingerprint: None,
            config_fingerprint: None,
        }
    }
}

/// A content fingerprint: the first 16 bytes of the SHA-256 of `bytes`, in hex.
pub fn content_fingerprint(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Part `index` (1-based) of `count` disjoint parts of a tournament's matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

fn one() -> usize {
    1
}
fn is_one(n: &usize) -> bool {
    *n == 1
}

/// One adversarial example for the report's gallery (`gallery.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryItem {
    /// The attack's label.
    pub attack: String,
    /// 1 (grayscale, and left out of the file) or 3 (RGB).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
    /// Pixels, row-major, channels last, 0..=255.
    pub clean: Vec<u8>,
    pub adversarial: Vec<u8>,
    pub true_label: usize,
    /// The model's answer and its softmax probability, clean and attacked.
    pub clean_pred: usize,
    pub clean_conf: f64,
    pub adv_pred: usize,
    pub adv_conf: f64,
}

/// The generalization matrix (`matrix.json`): defenders trained against one
/// attack each, evaluated under every attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixResult {
    pub schema_version: u32,
    pub name: String,
    pub seed: u64,
    /// Column labels: the attacks evaluated (in the file's order).
    pub attacks: Vec<String>,
    /// Evaluation images every accuracy was measured on (the tables' 95%
    /// Wilson intervals rest on them; 0 in files written before they did).
    #[serde(default)]
    pub eval_images: usize,
    /// The images' shape, for the report (absent in files written before
    /// it was kept: the report then names it only for built-in datasets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_shape: Option<crate::data::Shape>,
    /// The pretrained model first (`trained_on` = "none"), then one row per
    /// attack trained against.
    pub rows: Vec<MatrixRow>,
    pub timing: MatrixTiming,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixRow {
    pub trained_on: String,
    pub clean_acc: f64,
    /// Robust accuracy under each attack of `attacks`, in order.
    pub robust_acc: Vec<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MatrixTiming {
    pub pretrain_s: f64,
    pub training_s: f64,
    pub total_s: f64,
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder,
/// flushed to disk, then renamed over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Readable by others, like any file the user writes (tempfile's 0600
    // would otherwise survive the rename).
    let mut tmp = tempfile::Builder::new()
        .prefix(".redqueen-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(without_temp_name)?;
    // Through the File: NamedTempFile's own writes add its name to errors.
    tmp.as_file_mut().write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The OS's error without tempfile's note of the temporary file's name
/// ("… at path \".redqueen-XXXX\""), which would only puzzle: the caller
/// names the file it writes. The kind, which decides the exit code, stays.
fn without_temp_name(e: io::Error) -> io::Error {
    let text = e.to_string();
    match text.rfind(" at path ") {
        Some(at) if e.raw_os_error().is_none() => io::Error::new(e.kind(), text[..at].to_string()),
        _ => e,
    }
}

/// Write `bytes` to a path the user named for output (`--json`):
/// - the process's own standard output or error (`/dev/stdout`, or any
///   path to the file or terminal behind it) through that stream, at its
///   place: reopening a redirected file would truncate or replace it;
/// - atomically ([`write_atomic`]) where it is a regular file or not there
///   yet, so that no reader sees half a file, and so through a link to a
///   regular file, into the file it leads to (the link stays);
/// - straight into anything else (a device such as `/dev/null`, a named
///   pipe, or through a link that leads nowhere yet, creating its target),
///   which a rename would replace instead.
pub fn write_output(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let same_file =
        |a: &fs::Metadata, stream: &str| fs::metadata(stream).is_ok_and(|b| a.dev() == b.dev() && a.ino() == b.ino());
    if let Ok(target) = fs::metadata(path) {
        if same_file(&target, "/dev/stdout") {
            let mut out = io::stdout().lock();
            out.write_all(bytes)?;
            return out.flush();
        }
        if same_file(&target, "/dev/stderr") {
            return io::stderr().lock().write_all(bytes);
        }
    }
    match (fs::symlink_metadata(path), fs::metadata(path)) {
        (Err(e), _) if e.kind() == io::ErrorKind::NotFound => write_atomic(path, bytes),
        (Ok(meta), _) if meta.is_file() => write_atomic(path, bytes),
        (Ok(meta), Ok(target)) if meta.file_type().is_symlink() && target.is_file() => {
            write_atomic(&fs::canonicalize(path)?, bytes)
        }
        _ => {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?;
            file.write_all(bytes)?;
            file.flush()
        }
    }
}

/// Serialize `value` as pretty JSON (with a final newline) atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Appends rows to `rounds.jsonl`, one complete line per write, flushed.
pub struct RowLog {
    file: File,
}

impl RowLog {
    pub fn open(path: &Path) -> io::Result<RowLog> {
        // Never append through a link planted in the run folder.
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(io::Error::other(format!(
                "{} is a symbolic link; redqueen writes only real files inside the run folder",
                path.display()
            )));
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RowLog { file })
    }

    pub fn append(&mut self, row: &RoundRow) -> io::Result<()> {
        let mut line = serde_json::to_string(row).map_err(io::Error::other)?;
        line.push('\n');
        // One write call per line, so a crash leaves at most a torn last line.
        self.file.write_all(line.as_bytes())?;
        self.file.flush()
    }
}

/// Read every complete row of a `rounds.jsonl` (a torn last line is
/// skipped); no file is no rows.
pub fn read_rows(path: &Path) -> io::Result<Vec<RoundRow>> {
    let text = match fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        text => text?,
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// A run folder's `config.toml`: read only if it is a regular file within
/// [`crate::config::MAX_FILE_BYTES`] (a planted FIFO or a huge file would
/// hang or fill memory), as an I/O error otherwise.
pub fn read_config_text(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let cap = crate::config::MAX_FILE_BYTES;
    let mut text = String::new();
    fs::File::open(path)?.take(cap + 1).read_to_string(&mut text)?;
    if meta.len() > cap || text.len() as u64 > cap {
        return Err(io::Error::new(io::ErrorKind::FileTooLarge, "larger than 1 MiB"));
    }
    Ok(text)
}

/// Every row of a `rounds.jsonl`, strictly: a line that is not a row (torn,
/// a wrong type, NaN) is an error naming the file and line, except a torn
/// last line where `torn_last_allowed` (a run still going or killed). A
/// missing file is an error too.
pub fn read_rows_strict(path: &Path, torn_last_allowed: bool) -> crate::error::Result<Vec<RoundRow>> {
    let text = fs::read_to_string(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => RunFolderError::Missing(path.to_path_buf()).into(),
        _ => crate::error::Error::io(format!("reading {}", path.display()))(e),
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let mut rows = Vec::with_capacity(lines.len());
    // Each (seed, match, round) once: a repeat would count a round twice.
    let mut lines_of = std::collections::BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<RoundRow>(line) {
            Ok(row) => {
                if let Some(first) = lines_of.insert((row.seed, row.match_id, row.round), i + 1) {
                    return Err(RunFolderError::RepeatedRow {
                        path: path.to_path_buf(),
                        line: i + 1,
                        first,
                    }
                    .into());
                }
                rows.push(row)
            }
            Err(_) if torn_last_allowed && i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(source) => {
                return Err(RunFolderError::BadRow {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                }
                .into())
            }
        }
    }
    Ok(rows)
}

/// A JSON file of a run folder: `None` when absent, a clear error when it
/// does not parse.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> crate::error::Result<Option<T>> {
    let text = match fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        text => text.map_err(crate::error::Error::io(format!("reading {}", path.display())))?,
    };
    serde_json::from_str(&text).map(Some).map_err(|source| {
        RunFolderError::NotThisVersion {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

/// The manifest of a run folder, or a clear error when the folder is not a
/// redqueen run.
pub fn read_manifest(dir: &Path) -> crate::error::Result<Manifest> {
    match fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(RunFolderError::NoSuchFolder(dir.to_path_buf()).into())
        }
        Ok(meta) if !meta.is_dir() => return Err(RunFolderError::NotAFolder(dir.to_path_buf()).into()),
        _ => {}
    }
    let path = dir.join("manifest.json");
    // The version first: a newer manifest may lack a field this one needs,
    // and should read as newer, not as malformed.
    let value: serde_json::Value = read_json(&path)?.ok_or_else(|| {
        if dir.join("reproduction.json").is_file() {
            RunFolderError::Reproduction(dir.to_path_buf())
        } else {
            RunFolderError::NoManifest(dir.to_path_buf())
        }
    })?;
    let version = value.get("schema_version").and_then(serde_json::Value::as_u64);
    if let Some(found) = version.filter(|&v| v > u64::from(SCHEMA_VERSION)) {
        return Err(RunFolderError::NewerSchema {
            path,
            found: u32::try_from(found).unwrap_or(u32::MAX),
            reads: SCHEMA_VERSION,
        }
        .into());
    }
    serde_json::from_value(value).map_err(|source| RunFolderError::NotThisVersion { path, source }.into())
}

/// Rewrite `rounds.jsonl` with `rows` in canonical order (seed, match, round), so
/// the file does not depend on which match finished first.
pub fn write_rows_sorted(path: &Path, rows: &mut [RoundRow]) -> io::Result<()> {
    rows.sort_by_key(|r| (r.seed, r.match_id, r.round));
    let mut text = String::new();
    for row in rows.iter() {
        text.push_str(&serde_json::to_string(row).map_err(io::Error::other)?);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// The standard file names inside a run folder.
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn manifest(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }
    pub fn rounds(&self) -> PathBuf {
        self.dir.join("rounds.jsonl")
    }
    /// Where `--save-models` keeps each match's final defender.
    pub fn models(&self) -> PathBuf {
        self.dir.join("models")
    }
    pub fn summary(&self) -> PathBuf {
        self.dir.join("summary.json")
    }
    pub fn matrix(&self) -> PathBuf {
        self.dir.join("matrix.json")
    }
    pub fn gallery(&self) -> PathBuf {
        self.dir.join("gallery.json")
    }
    pub fn report(&self) -> PathBuf {
        self.dir.join("report.html")
    }
    pub fn plots(&self) -> PathBuf {
        self.dir.join("plots")
    }
}

/// The current time as RFC 3339, UTC, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails says the OS's reason, not the temporary file's
    /// name, and keeps the kind that decides the exit code.
    #[test]
    fn a_failed_write_does_not_name_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        fs::write(&file, "").unwrap();
        let e = write_atomic(&file.join("x.json"), b"{}").unwrap_err();
        assert!(!e.to_string().contains(".redqueen-"), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::NotADirectory, "{e}");
    }

    /// `--json` through a link: into the regular file it leads to (the link
    /// stays), or creating the file a dangling link names.
    #[test]
    fn output_goes_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let (target, link) = (dir.path().join("t.json"), dir.path().join("link.json"));
        fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_output(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        let (nowhere, dangling) = (dir.path().join("later.json"), dir.path().join("dangling.json"));
        std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
        write_output(&dangling, b"made").unwrap();
        assert_eq!(fs::read_to_string(&nowhere).unwrap(), "made");
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        // No temporary files left behind, and readable by others.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rounds.jsonl");
        fs::write(&path, "not json\n{\"match_id\": 1, \"trunc").unwrap();
        assert!(read_rows(&path).unwrap().is_empty());
    }
}
