//! Tournament files: raw TOML in, a checked [`Plan`] out.
//!
//! Parsing is strict (unknown keys are errors, with the line), and checking
//! happens before anything runs, so a typo never surfaces an hour in. The
//! schema ([`schema`]), the strategy store that resolves `use = "..."`
//! ([`store`]) and the checks ([`validate`]) each have their file; the
//! rules the arena applies live below it, in [`crate::attack::rules`].

pub mod builtin;
pub mod limits;
pub mod matrix;
pub mod schema;
pub mod short_floats;
pub mod store;
mod validate;

use std::path::Path;

use crate::agent::AttackerConfig;
use crate::defense::DefenderConfig;
use crate::error::{Error, Result};

pub use crate::attack::rules::{check_budget, within_rules, Rules};
pub use schema::{
    AttackerEntry, DataConfig, DefenderEntry, PretrainConfig, Sizes, SpecialistsConfig, TournamentFile,
    CIFAR10_CLASSES, DATASETS, FASHION_MNIST_CLASSES,
};
pub use store::Store;
pub(crate) use validate::{check_data, check_name};

/// A checked tournament, every reference resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The fully resolved file (entries inline): rerunning it reproduces the run.
    pub file: TournamentFile,
    pub attackers: Vec<AttackerConfig>,
    pub defenders: Vec<DefenderConfig>,
    /// The strategy files its `use` entries were read from, in order, once
    /// each (`strategies/... (built in)` for the built-in copies).
    pub strategy_files: Vec<String>,
}

/// One match of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchRef {
    pub id: usize,
    pub attacker: usize,
    pub defender: usize,
}

impl Plan {
    /// Every attacker against every defender, in a fixed order.
    pub fn matches(&self) -> Vec<MatchRef> {
        let d = self.defenders.len();
        (0..self.attackers.len() * d)
            .map(|id| MatchRef {
                id,
                attacker: id / d,
                defender: id % d,
            })
            .collect()
    }

    /// The resolved configuration as TOML, as a run folder records it.
    pub fn to_toml(&self) -> String {
        to_toml(&self.file)
    }

    /// The fingerprints a run of this configuration may have recorded.
    pub fn fingerprints(&self) -> [String; 2] {
        fingerprints(&self.file)
    }
}

/// A checked configuration as TOML, as a run folder records it: each `f32`
/// in its shortest form (see [`short_floats`]).
pub(crate) fn to_toml<T: serde::Serialize>(value: &T) -> String {
    short_floats::to_string(value).expect("a checked configuration serializes")
}

/// The fingerprints of `value`'s text that a run of it may have recorded
/// (`config_fingerprint`): as [`to_toml`] writes it, and as runs recorded it
/// before f32s were written shortest (widened to f64, `toml`'s own way), so
/// that those runs still resume.
pub(crate) fn fingerprints<T: serde::Serialize>(value: &T) -> [String; 2] {
    let widened = toml::to_string(value).expect("a checked configuration serializes");
    [to_toml(value), widened].map(|text| crate::record::content_fingerprint(text.as_bytes()))
}

/// A configuration a run folder recorded, as this version writes it (a run
/// recorded before f32s were written shortest then reads like one recorded
/// now); `text` itself where it does not read as a `T`.
pub fn rewritten<T: serde::Serialize + serde::de::DeserializeOwned>(text: &str) -> String {
    toml::from_str::<T>(text)
        .ok()
        .and_then(|value| short_floats::to_string(&value).ok())
        .unwrap_or_else(|| text.to_string())
}

/// Parse a TOML document, naming `file` in the error.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T> {
    if let Ok(table) = text.parse::<toml::Table>() {
        check_float_range(&toml::Value::Table(table), "").map_err(|message| Error::config(file, message))?;
    }
    toml::from_str(text).map_err(|e| Error::config(file, crate::error::explain_serde_message(e.to_string().trim_end())))
}

/// Most numbers redqueen reads it keeps as 32-bit floats, where `1e300`
/// becomes infinite and `1e-50` becomes 0: a value that would is refused
/// at its key, rather than checked (and reported) as `inf` or `0`. The
/// few 64-bit keys are held to the same range: none needs more.
fn check_float_range(value: &toml::Value, at: &str) -> std::result::Result<(), String> {
    match value {
        toml::Value::Float(f) if f.is_finite() && ((*f as f32).is_infinite() || (*f != 0.0 && *f as f32 == 0.0)) => {
            Err(format!(
                "`{at}` = {f:e} is out of the range redqueen reads a number in (magnitudes from about 1e-45 to 3.4e38, a 32-bit float's, which most of its numbers are)"
            ))
        }
        toml::Value::Table(table) => table.iter().try_for_each(|(key, v)| {
            let at = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
            check_float_range(v, &at)
        }),
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_float_range(v, &format!("{at}[{i}]"))),
        _ => Ok(()),
    }
}

/// The most a tournament, matrix, strategy or reproduction file may hold.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A configuration file's text. Only a regular file under [`MAX_FILE_BYTES`]
/// is read (never a device, a pipe or a folder, which could hang or fill
/// memory), and never more than that of it.
pub fn read_text(path: &Path, cited: &str) -> Result<String> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| Error::config(cited, format!("cannot read the file: {e}"));
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file (a device, a pipe or a socket)"
        };
        return Err(Error::config(cited, format!("is {what}; give a .toml file")));
    }
    let too_big = || {
        Error::config(
            cited,
            format!(
                "is larger than {} KiB, the limit for a configuration file",
                MAX_FILE_BYTES >> 10
            ),
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::config(
            cited,
            format!(
                "is not UTF-8 text (byte {} is not); give a TOML file",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// A run folder's own `config.toml`, checked as when the run began: not by
/// the rules refused in written files only
/// ([`validate::refuse_ignored_settings`]), which runs recorded before them
/// may break, and which must keep resuming and merging.
pub fn load_recorded(path: &Path) -> Result<Plan> {
    load_checked(path, None)
}

/// A tournament file someone wrote, checked, its `use` entries read from
/// `strategies` when given (`--strategies DIR`), else from the strategies
/// tree the file sits in. Either way a reference missing on disk falls
/// back to the built-in copy.
pub fn load_file_with(path: &Path, strategies: Option<&Path>) -> Result<Plan> {
    let plan = load_checked(path, strategies)?;
    validate::refuse_ignored_settings(&plan).map_err(|e| e.in_file(&path.display().to_string()))?;
    Ok(plan)
}

/// [`load_file_with`] without the rules for written files only.
fn load_checked(path: &Path, strategies: Option<&Path>) -> Result<Plan> {
    let cited = path.display().to_string();
    let text = read_text(path, &cited)?;
    matrix::refuse_other_kinds(path, "a tournament file")?;
    let store = match strategies {
        Some(dir) if !dir.is_dir() => {
            return Err(Error::Usage(format!(
                "--strategies {}: not a folder; give the folder that holds attackers/ and defenders/",
                dir.display()
            )))
        }
        Some(dir) => Store::Disk(dir.to_path_buf()),
        None => Store::for_file(path),
    };
    check(parse(&text, &cited)?, &cited, &store)
}

/// The built-in default tournament.
pub fn load_default() -> Result<Plan> {
    let cited = format!("strategies/{} (built in)", builtin::DEFAULT_TOURNAMENT);
    let text = builtin::get(builtin::DEFAULT_TOURNAMENT).expect("the default tournament is built in");
    check(parse(text, &cited)?, &cited, &Store::Builtin)
}

/// Shrink a plan for a quick run (tests, smoke checks).
pub fn quick(file: &mut TournamentFile) {
    file.rounds = file.rounds.min(3);
    file.data.train = file.data.train.min(1500);
    file.data.test = file.data.test.min(300);
    file.sizes.eval = file.sizes.eval.min(100);
    file.sizes.craft = file.sizes.craft.min(64);
    file.pretrain.shorten();
}

/// Resolve references and check everything that can be checked without data.
pub fn check(mut file: TournamentFile, cited: &str, store: &Store) -> Result<Plan> {
    // Where each agent was written, for error messages: the tournament file,
    // or the strategy file it `use`s.
    let (attackers, attacker_sources) = store::resolve(&file.attackers, store, cited)?;
    let (defenders, defender_sources) = store::resolve(&file.defenders, store, cited)?;

    // From here on the file is self-contained: write the resolved entries back.
    file.attackers = attackers.iter().map(store::Entry::resolved).collect();
    file.defenders = defenders.iter().map(store::Entry::resolved).collect();

    limits::check(&file).map_err(|e| e.in_file(cited))?;
    validate::check_seeds(&mut file).map_err(|e| e.in_file(cited))?;
    validate::validate(&file, &attackers, &attacker_sources, &defenders, &defender_sources)
        .map_err(|e| e.in_file(cited))?;
    let mut strategy_files: Vec<String> = Vec::new();
    for source in attacker_sources.iter().chain(&defender_sources).flatten() {
        if !strategy_files.contains(source) {
            strategy_files.push(source.clone());
        }
    }
    Ok(Plan {
        file,
        attackers,
        defenders,
        strategy_files,
    })
}

#[cfg(test)]
mod tests;
