//! The library's error type, and which errors are the user's input.

use std::path::{Path, PathBuf};

use crate::data::DataError;
use crate::record::Shard;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tournament or strategy file that cannot be used as written.
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    /// A configuration value out of range or inconsistent with another,
    /// naming its key: what every `validate()` returns; the configuration
    /// layer adds the file it came from.
    #[error("{0}")]
    Invalid(String),
    /// A dataset that cannot be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A flag or argument that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// An output folder that cannot be written into.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A folder given as a run that is not one (of this version).
    #[error(transparent)]
    RunFolder(#[from] RunFolderError),
    /// A run that cannot be resumed as asked.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// Parts of a sharded run that cannot be merged.
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// Runs that cannot be compared.
    #[error(transparent)]
    Compare(#[from] CompareError),
    /// The run was interrupted; what completed is on disk. `save_models`:
    /// the run saves its models, so the resume it suggests does too (one
    /// without would play the rest unsaved, and a later one replay them).
    #[error("interrupted: partial results kept in {}; a tournament continues with `redqueen run --resume {}{}`", dir.display(), shell_word(dir), if *save_models { " --save-models" } else { "" })]
    Interrupted { dir: PathBuf, save_models: bool },
    /// A complete run resumed to save its missing models was interrupted:
    /// it stays complete (every round kept), some models still missing.
    #[error("interrupted: the run in {} stays complete, every round kept, but not every missing model was saved; `redqueen run --resume {} --save-models` saves the rest", .0.display(), shell_word(.0))]
    ModelsInterrupted(PathBuf),
    /// A matrix run was interrupted: a row cut short would be a wrong
    /// number, so none is written.
    #[error("interrupted: the generalization matrix in {} is incomplete (its finished rows are kept); continue it with `redqueen matrix --resume {}`", .0.display(), shell_word(.0))]
    MatrixInterrupted(PathBuf),
    /// A reproduction was interrupted: its numbers would be of models
    /// trained short, so none is written.
    /// `command`: what to run again (the name or file as given, the flags).
    #[error(
        "interrupted: reproduction {name} stopped before its evaluations; nothing was written; run `{command}` again"
    )]
    ReproductionInterrupted { name: String, command: String },
    /// A model whose training diverged before anything was measured on it
    /// (pretraining, a specialist's or a matrix row's training): a NaN
    /// model predicts one class and every attack on it fails, so any
    /// number of it would be meaningless. `settings`: the table to change.
    /// `of`: what is not finite (weights, or outputs).
    #[error("{what} diverged: {bad} of {total} {of} are NaN or infinite after its training, so nothing is measured on it; lower the learning rate (or the weight decay) in {settings}, then start the run again with `--force` over its folder (what it holds was made under the old settings)")]
    Diverged {
        what: String,
        bad: usize,
        total: usize,
        of: String,
        settings: String,
    },
    /// Anything else (disk full, a folder that vanished).
    #[error("{context}: {source}{}", next_step(context, source))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn config(file: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            file: file.into(),
            message: message.into(),
        }
    }

    /// An out-of-range or inconsistent configuration value.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }

    /// The same error, its message prefixed with where it was found
    /// (`in `attack`: ...`).
    pub fn within(self, context: &str) -> Error {
        match self {
            Error::Invalid(message) => Error::Invalid(format!("{context}: {message}")),
            Error::Config { file, message } => Error::Config {
                file,
                message: format!("{context}: {message}"),
            },
            other => other,
        }
    }

    /// The same error, an invalid value now cited in `file` (the
    /// configuration layer knows the file; the parts it checks do not).
    pub fn in_file(self, file: &str) -> Error {
        match self {
            Error::Invalid(message) => Error::config(file, message),
            other => other,
        }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The process exit code for this error (docs/GUIDE.md lists them):
    /// 2 for what the user can fix, 130 for an interruption, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. }
            | Error::Invalid(_)
            | Error::Data(_)
            | Error::Usage(_)
            | Error::Output(_)
            | Error::RunFolder(_)
            | Error::Resume(_)
            | Error::Merge(_)
            | Error::Compare(_)
            | Error::Diverged { .. } => 2,
            Error::Interrupted { .. }
            | Error::ModelsInterrupted(_)
            | Error::MatrixInterrupted(_)
            | Error::ReproductionInterrupted { .. } => 130,
            Error::Io { source, .. } if users_to_fix(source) => 2,
            Error::Io { .. } => 1,
        }
    }
}

/// The exit code for an error that reached `main`: [`Error::exit_code`]
/// for redqueen's own errors, 2 for the input errors inside them when one
/// arrives unwrapped (a `ResumeError` turned straight into `anyhow`), and 1
/// for anything else (a bug).
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if let Some(own) = e.downcast_ref::<Error>() {
        return own.exit_code();
    }
    let input = e.is::<OutputError>()
        || e.is::<RunFolderError>()
        || e.is::<ResumeError>()
        || e.is::<MergeError>()
        || e.is::<CompareError>()
        || e.is::<DataError>();
    if input {
        2
    } else {
        1
    }
}

/// `path` as one shell word, for the commands that messages suggest: quoted
/// where it holds spaces or shell syntax (`'my runs'`), after `./` where it
/// starts with `-`, as it is otherwise, so that the command can be pasted.
/// A path shlex cannot quote (a NUL byte, which no file name holds) is
/// shown as it reads.
pub fn shell_word(path: &Path) -> String {
    // A leading `-` would read as a flag: `./-runs` is the same folder.
    let text = match path.to_string_lossy() {
        text if text.starts_with('-') => format!("./{text}").into(),
        text => text,
    };
    match shlex::try_quote(&text) {
        Ok(word) => word.into_owned(),
        Err(_) => text.into_owned(),
    }
}

/// What to do about an I/O error where that is not plain from it. Output
/// that is no run folder's (standard output, a `--json` file) is written
/// again by running the command again; otherwise the error does not know
/// which command met it, so a full disk's advice covers each kind of run
/// folder.
fn next_step(context: &str, e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        StorageFull | QuotaExceeded if context.starts_with(STDOUT) => {
            "; free some space, then run the command again (a finished run's tables: `redqueen report DIR`)"
        }
        StorageFull | QuotaExceeded if context.starts_with("--json ") => "; free some space, then run the command again",
        StorageFull | QuotaExceeded => {
            "; free some space, then: an unfinished run continues with `redqueen run --resume DIR` (a matrix: `redqueen matrix --resume DIR`), keeping what it finished; a finished run's pages are rebuilt by `redqueen report DIR`; anything else, run the command again"
        }
        _ => "",
    }
}

/// The context of an error writing to standard output.
pub const STDOUT: &str = "writing to standard output";

/// Whether an I/O error is the user's to fix (a read-only or full disk, a
/// permission, a path that is not there or not a folder), not redqueen's.
fn users_to_fix(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        NotFound
            | PermissionDenied
            | ReadOnlyFilesystem
            | StorageFull
            | QuotaExceeded
            | NotADirectory
            | IsADirectory
            | DirectoryNotEmpty
            | InvalidFilename
            | AlreadyExists
            | FileTooLarge
    )
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An output folder (`--out`) that cannot be written into.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("the output folder {} exists and is not a folder; choose another with --out", .0.display())]
    NotAFolder(PathBuf),
    /// Not empty, and `--force` was not given.
    #[error("the output folder {} already exists; choose another with --out, or pass --force to replace its run files", .0.display())]
    Exists(PathBuf),
    /// `--force` on a folder that is not a run: it would lose files that
    /// are not redqueen's.
    #[error("the output folder {} is not empty and holds no redqueen run (no manifest.json); --force replaces only a redqueen run folder or an empty one; choose another with --out", .0.display())]
    NotARun(PathBuf),
    #[error("the output folder {} is the root of the filesystem; choose a folder with --out", .0.display())]
    Root(PathBuf),
    /// `--force` on a folder that holds more than a reproduction's files.
    #[error("the output folder {} holds files that are not a reproduction's (it has {}); --force replaces only a reproduction's own files (config.toml, reproduction.json, report.html, table.md); choose another with --out", .dir.display(), .foreign)]
    NotAReproduction { dir: PathBuf, foreign: String },
    /// Two reproductions of one command would write the same folder.
    #[error("{first} and {second} would both write {}; give each reproduction once", .dir.display())]
    SameFolder {
        first: String,
        second: String,
        dir: PathBuf,
    },
    /// Another process holds the folder's lock.
    #[error("the output folder {} is in use by another redqueen run (pid {pid}); wait for it to finish, or choose another folder", .dir.display())]
    Locked { dir: PathBuf, pid: String },
    #[error("cannot create the output folder {}: {reason}; choose another with --out", .dir.display(), reason = .source)]
    Create {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Merging into a part would destroy it.
    #[error("--out {}: is one of the parts being merged; choose another folder", .0.display())]
    IsAPart(PathBuf),
}

/// A folder given as a run folder that is not one.
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    #[error("{}: not a folder; give a run folder written by `redqueen run` or `redqueen matrix`", .0.display())]
    NotAFolder(PathBuf),
    #[error("{}: no such folder; give a run folder written by `redqueen run` or `redqueen matrix`", .0.display())]
    NoSuchFolder(PathBuf),
    /// A manifest of a later schema than this redqueen reads.
    #[error("{}: written by a newer redqueen (schema_version {found}; this one reads {reads}); read it with that version", .path.display())]
    NewerSchema { path: PathBuf, found: u32, reads: u32 },
    /// A file every run of its kind has.
    #[error("{}: missing; the run folder is incomplete ({})", .0.display(), missing_advice(.0))]
    Missing(PathBuf),
    /// A line of `rounds.jsonl` that is not a row.
    #[error("{}, line {line}: not a round row of this version: {source}", .path.display())]
    BadRow {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    /// A row whose seed, match and round an earlier line has (added by
    /// hand, or a file damaged).
    #[error("{}: line {line} repeats the seed, match and round of line {first}; a run records each round once, so the file was edited or damaged (`redqueen run --resume` on the run plays that match again)", .path.display())]
    RepeatedRow { path: PathBuf, line: usize, first: usize },
    /// Rows and summary that disagree (a row deleted or added by hand).
    #[error("{}: {message}", .path.display())]
    Inconsistent { path: PathBuf, message: String },
    #[error("{}: not a redqueen run folder (it has no manifest.json); give a folder written by `redqueen run` or `redqueen matrix`", .0.display())]
    NoManifest(PathBuf),
    /// A reproduction's folder given where a run folder goes: it has its
    /// own table and page, which `report` does not rebuild.
    #[error("{}: a reproduction's folder, not a run's: its table is table.md and its page report.html, both written by `redqueen reproduce`", .0.display())]
    Reproduction(PathBuf),
    /// A run file that does not parse: cut short, not JSON, or JSON of
    /// another shape.
    #[error("{}: {}: {source}", .path.display(), unreadable_json(source))]
    NotThisVersion { path: PathBuf, source: serde_json::Error },
    /// A run folder given to `merge` that is not one part of a sharded run.
    #[error("{}: not a shard (it was not run with --shard K/N); merge combines the parts of one sharded run", .0.display())]
    NotAShard(PathBuf),
}

/// A run that `--resume` cannot continue.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("--resume {}: is a generalization-matrix run; continue it with `redqueen matrix --resume {}`", .0.display(), shell_word(.0))]
    Matrix(PathBuf),
    /// Resumed with a `--shard` other than the one it was run with.
    #[error("--resume {}: {}", .dir.display(), shard_role(.recorded))]
    ShardDiffers { dir: PathBuf, recorded: Option<Shard> },
    #[error("--resume {}: the dataset changed since the run began (fingerprint {then} then, {now} now); resume with the same data, or start a new run", .dir.display())]
    DataChanged { dir: PathBuf, then: String, now: String },
    #[error("--resume {}: the weights file {} holds other contents than when the run began (fingerprint {then} then, {now} now); resume with the same weights, or start a new run", .dir.display(), .weights.display())]
    WeightsChanged {
        dir: PathBuf,
        weights: PathBuf,
        then: String,
        now: String,
    },
    #[error("--resume {}: {} was edited since the run began (fingerprint {then} then, {now} now), so the rows already played would sit beside rows played under other settings; put back the configuration it began with, or start a new run", .dir.display(), .config.display())]
    ConfigEdited {
        dir: PathBuf,
        config: PathBuf,
        then: String,
        now: String,
    },
    #[error("{}: cannot read it ({source}); is {} a redqueen run?", .config.display(), .dir.display())]
    ConfigUnreadable {
        dir: PathBuf,
        config: PathBuf,
        source: std::io::Error,
    },
    /// The arguments resolve to another configuration than the run's;
    /// `difference` says where (see `first_difference`).
    #[error("--resume {}: the configuration given differs from the run's {} ({difference}); resume with the same file and flags, or with no file to use the run's own", .dir.display(), .config.display())]
    ConfigDiffers {
        dir: PathBuf,
        config: PathBuf,
        difference: String,
    },
}

/// What to do about a run folder that lacks `missing`: its configuration
/// cannot be made again, anything else a resume rebuilds (`run` or
/// `matrix`, whichever the folder holds).
fn missing_advice(missing: &Path) -> String {
    let dir = missing.parent().unwrap_or(Path::new("."));
    if missing.file_name().is_some_and(|n| n == "config.toml") {
        return "its configuration cannot be rebuilt; run it again".into();
    }
    let matrix = missing.file_name().is_some_and(|n| n == "matrix.json")
        || crate::config::matrix::is_matrix_file(&dir.join("config.toml"));
    let command = if matrix { "matrix" } else { "run" };
    format!(
        "`redqueen {command} --resume {}` rebuilds it from what it has",
        shell_word(dir)
    )
}

/// Why a run's JSON file does not read, in words: a file cut short or
/// garbled is damaged; well-formed JSON of another shape is another
/// version's (or no redqueen file).
fn unreadable_json(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => "cut short (the file is damaged)",
        Category::Syntax => "damaged (it is not JSON)",
        Category::Data | Category::Io => "not a redqueen file of this version",
    }
}

/// What a run folder was, for [`ResumeError::ShardDiffers`].
fn shard_role(shard: &Option<Shard>) -> String {
    match shard {
        Some(s) => format!(
            "it is part {}/{} of a sharded run; resume it with --shard {}/{}, or without --shard",
            s.index, s.count, s.index, s.count
        ),
        None => "it is a whole run, not a part of a sharded one; resume it without --shard".into(),
    }
}

/// Parts of a sharded run that `merge` cannot combine.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("merge needs the folders of every part of a sharded run")]
    NoParts,
    #[error("{}: shard {}/{} is partial; finish it first with `redqueen run --resume {} --shard {}/{}`", .dir.display(), .shard.index, .shard.count, shell_word(.dir), .shard.index, .shard.count)]
    Partial { dir: PathBuf, shard: Shard },
    #[error("{}: cannot read it: {source}", .config.display())]
    ConfigUnreadable { config: PathBuf, source: std::io::Error },
    #[error("{} and {}: the parts were run with different configurations (config.toml: {difference}); merge parts of one run", .first.display(), .other.display())]
    ConfigDiffers {
        first: PathBuf,
        other: PathBuf,
        difference: String,
    },
    #[error("{} and {}: the parts were run on different data (dataset fingerprints {} and {})", .first.display(), .other.display(), .fingerprints.0, .fingerprints.1)]
    DataDiffers {
        first: PathBuf,
        other: PathBuf,
        fingerprints: (String, String),
    },
    #[error("{} and {}: the parts started from weights of different contents (fingerprints {} and {}); the file changed between them", .first.display(), .other.display(), .fingerprints.0, .fingerprints.1)]
    WeightsDiffer {
        first: PathBuf,
        other: PathBuf,
        fingerprints: (String, String),
    },
    /// Not every part 1..=count exactly once.
    #[error("merge needs every part 1..{count} exactly once; got parts {}", list_parts(.got))]
    Parts { count: usize, got: Vec<Shard> },
    #[error("the parts hold {complete} of the {expected} matches complete; resume the parts that are missing matches")]
    Incomplete { complete: usize, expected: usize },
}

/// `1/3, 2/3`, for [`MergeError::Parts`].
fn list_parts(parts: &[Shard]) -> String {
    parts
        .iter()
        .map(|p| format!("{}/{}", p.index, p.count))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run folders that `compare` cannot put side by side.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{}: is a generalization-matrix run; compare takes tournament runs (`redqueen report` shows a matrix)", .0.display())]
    MatrixRun(PathBuf),
    #[error("{}: has no summary.json (a tournament run folder is needed; an interrupted run has one once it stops)", .0.display())]
    NoSummary(PathBuf),
    /// Some runs rank defenders by AURC unseen, others by AURC seen.
    #[error("the runs do not all have an unseen panel, so their defenders are ranked by different metrics (AURC unseen and AURC seen); compare runs of the same kind")]
    MixedMetrics,
}

/// The candidate closest to `input` by edit distance (case, `-` and `_`
/// ignored), when it is close enough to be a likely typo; `None` when
/// `input` is itself a candidate or nothing is close.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let fold = |s: &str| -> Vec<char> {
        s.chars()
            .map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() })
            .collect()
    };
    let wanted = fold(input);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == input {
            return None;
        }
        let folded = fold(candidate);
        let distance = edit_distance(&wanted, &folded);
        let longest = wanted.len().max(folded.len());
        // One edit is a typo unless it is the whole word; beyond that, at
        // most a third of the longer word may differ.
        let close = distance < longest && (distance <= 1 || distance * 3 <= longest);
        if close && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and swaps of two neighbours each cost one.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[(i - 1) * width + j] + 1)
                    .min(d[i * width + j - 1] + 1)
                    .min(d[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * width + b.len()]
}

/// `"; did you mean `x`?"` when one of `candidates` is close to `input`, else "".
pub fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(input, candidates).map_or_else(String::new, |c| format!("; did you mean `{c}`?"))
}

/// A serde error message made friendlier: "unknown field `runds`, expected
/// one of `name`, ..., `rounds`" gains "; did you mean `rounds`?" (likewise
/// unknown variants), and Rust type names become words.
pub fn explain_serde_message(message: &str) -> String {
    message
        .lines()
        .map(|line| {
            let mut line = line.to_string();
            for (rust, words) in [
                ("expected usize", "expected a whole number, 0 or more"),
                ("expected u64", "expected a whole number, 0 or more"),
                ("expected u32", "expected a whole number, 0 or more"),
                ("expected f32", "expected a number"),
                ("expected f64", "expected a number"),
            ] {
                if let Some(head) = line.strip_suffix(rust) {
                    line = format!("{head}{words}");
                }
            }
            if line == "invalid basic string" || line == "invalid literal string" {
                line.push_str(": a string needs its closing quote on the same line");
            }
            if line == "number too large to fit in target type" {
                line.push_str(" (TOML's whole numbers stop at 9223372036854775807; redqueen's limit for each key is in docs/LIMITS.md)");
            }
            if line == "number too small to fit in target type" {
                line.push_str(" (TOML's whole numbers start at -9223372036854775808, and redqueen's counts at 0; its limits are in docs/LIMITS.md)");
            }
            for what in ["unknown field `", "unknown variant `"] {
                let Some(at) = line.find(what) else { continue };
                let rest = &line[at + what.len()..];
                let Some(end) = rest.find('`') else { continue };
                let input = &rest[..end];
                let Some(expected) = rest[end..].find("expected").map(|i| &rest[end + i..]) else {
                    continue;
                };
                // The candidates are the backquoted words after "expected".
                let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
                let hint = did_you_mean(input, candidates);
                line.push_str(&hint);
                break;
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_and_only_typos() {
        let fields = ["name", "seed", "seeds", "rounds", "engine", "data", "rules"];
        assert_eq!(closest("runds", fields), Some("rounds"));
        assert_eq!(closest("nmae", fields), Some("name"));
        assert_eq!(closest("Rounds", fields), Some("rounds"));
        assert_eq!(closest("rulez", fields), Some("rules"));
        assert_eq!(closest("xyz", fields), None);
        assert_eq!(closest("rounds", fields), None);
        assert_eq!(closest("pgd_at", ["pgd-at", "fast-at"]), Some("pgd-at"));
        assert_eq!(closest("standart", ["standard", "adversarial"]), Some("standard"));
        assert_eq!(closest("l3", ["linf", "l2", "l1"]), Some("l2"));
        assert_eq!(closest("q", ["l2"]), None);
        assert_eq!(closest("anything", []), None);
    }

    #[test]
    fn serde_messages_gain_a_suggestion() {
        let message = "TOML parse error at line 4, column 1\n  |\n4 | runds = 8\n  | ^^^^^\nunknown field `runds`, expected one of `name`, `seed`, `rounds`";
        let explained = explain_serde_message(message);
        assert!(explained.starts_with("TOML parse error at line 4"), "{explained}");
        assert!(explained.ends_with("`rounds`; did you mean `rounds`?"), "{explained}");
        assert_eq!(
            explain_serde_message("unknown variant `mlpp`, expected `mlp` or `cnn`"),
            "unknown variant `mlpp`, expected `mlp` or `cnn`; did you mean `mlp`?"
        );
        assert_eq!(
            explain_serde_message("unknown variant `zzzz`, expected `mlp` or `cnn`"),
            "unknown variant `zzzz`, expected `mlp` or `cnn`"
        );
        assert_eq!(
            explain_serde_message("invalid basic string"),
            "invalid basic string: a string needs its closing quote on the same line"
        );
        assert!(explain_serde_message("number too large to fit in target type").ends_with("docs/LIMITS.md)"));
        assert!(explain_serde_message("number too small to fit in target type").ends_with("docs/LIMITS.md)"));
        assert_eq!(
            explain_serde_message("invalid type: string \"x\", expected usize"),
            "invalid type: string \"x\", expected a whole number, 0 or more"
        );
    }

    /// The commands that messages suggest can be pasted: a folder with
    /// spaces or quotes in its name is one shell word there.
    #[test]
    fn suggested_commands_quote_the_folder() {
        assert_eq!(shell_word(Path::new("runs/seed-1")), "runs/seed-1");
        assert_eq!(shell_word(Path::new("my runs/it's")), r#""my runs/it's""#);
        assert_eq!(shell_word(Path::new("a$b")), "'a$b'");
        assert_eq!(shell_word(Path::new("-runs")), "./-runs");
        let dir = PathBuf::from("my runs/a");
        let message = Error::Interrupted {
            dir: dir.clone(),
            save_models: false,
        }
        .to_string();
        assert!(message.ends_with("`redqueen run --resume 'my runs/a'`"), "{message}");
        let message = Error::Interrupted { dir, save_models: true }.to_string();
        assert!(
            message.ends_with("`redqueen run --resume 'my runs/a' --save-models`"),
            "{message}"
        );
        assert_eq!(Error::ModelsInterrupted(PathBuf::from("a")).exit_code(), 130);
    }

    /// A full disk says what to do next.
    #[test]
    fn a_full_disk_says_what_to_do() {
        let full = Error::io("writing runs/a/rounds.jsonl")(std::io::Error::from(std::io::ErrorKind::StorageFull));
        let message = full.to_string();
        assert!(message.starts_with("writing runs/a/rounds.jsonl: "), "{message}");
        assert!(message.contains("free some space"), "{message}");
        assert_eq!(full.exit_code(), 2);
        let gone = Error::io("reading x")(std::io::Error::from(std::io::ErrorKind::NotFound)).to_string();
        assert!(!gone.contains("free some space"), "{gone}");
        // Output that is no run folder's: no run folder advice.
        for context in [STDOUT, "--json e.json: writing it"] {
            let full = Error::io(context)(std::io::Error::from(std::io::ErrorKind::StorageFull)).to_string();
            assert!(full.contains("free some space, then run the command again"), "{full}");
            assert!(!full.contains("--resume"), "{full}");
        }
    }

    /// An input error that reaches `main` unwrapped still exits 2 (a
    /// matrix folder given to `run --resume` once exited 1).
    #[test]
    fn input_errors_exit_2_however_they_arrive() {
        let resume = anyhow::Error::from(ResumeError::Matrix(PathBuf::from("m")));
        assert_eq!(exit_code_of(&resume), 2);
        let wrapped = anyhow::Error::from(Error::from(ResumeError::Matrix(PathBuf::from("m"))));
        assert_eq!(exit_code_of(&wrapped), 2);
        assert_eq!(exit_code_of(&anyhow::anyhow!("a bug")), 1);
    }

    /// A read-only or full disk, a permission or a missing path is the
    /// user's to fix (exit 2); an I/O failure of another kind is redqueen's
    /// (exit 1). Read-only filesystems cannot be made in a test run as root.
    #[test]
    fn io_errors_the_user_can_fix_exit_2() {
        use std::io::ErrorKind;
        let io = |kind: ErrorKind| Error::io("writing out/config.toml")(std::io::Error::from(kind));
        for kind in [
            ErrorKind::ReadOnlyFilesystem,
            ErrorKind::StorageFull,
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
            ErrorKind::NotADirectory,
        ] {
            assert_eq!(io(kind).exit_code(), 2, "{kind:?}");
        }
        assert_eq!(io(ErrorKind::Other).exit_code(), 1);
        assert_eq!(io(ErrorKind::UnexpectedEof).exit_code(), 1);
    }
}
