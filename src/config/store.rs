//! The strategy store: where `use = "..."` references are read from (the
//! strategies folder on disk, or the copies built in), with path safety,
//! and the one resolver that turns attacker and defender entries, inline
//! or included, into configurations.

use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;

use super::{builtin, parse, AttackerEntry, DefenderEntry};
use crate::agent::AttackerConfig;
use crate::defense::DefenderConfig;
use crate::error::{did_you_mean, Error, Result};

/// Where `use = "..."` references are read from.
pub enum Store {
    /// A `strategies/` folder on disk.
    Disk(PathBuf),
    /// The copies built into the binary.
    Builtin,
}

impl Store {
    /// The store for a tournament file: the folder above `tournaments/` when
    /// the file sits in one, else the file's own folder.
    pub fn for_file(path: &Path) -> Store {
        let dir = path.parent().unwrap_or(Path::new("."));
        let root = if dir.file_name().is_some_and(|n| n == "tournaments") {
            dir.parent().unwrap_or(Path::new("."))
        } else {
            dir
        };
        Store::Disk(root.to_path_buf())
    }

    /// Read a strategy file by its path relative to the store; returns the
    /// name to cite in errors and the text.
    pub(super) fn read(&self, relative: &str, cited_from: &str) -> Result<(String, String)> {
        let rel = Path::new(relative);
        let safe =
            rel.extension().is_some_and(|e| e == "toml") && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(Error::config(
                cited_from,
                format!("`use = \"{relative}\"`: a strategy reference must be a relative path to a .toml file inside the strategies folder, without `..`, such as \"attackers/bandit-linf.toml\""),
            ));
        }
        match self {
            Store::Builtin => builtin::get(relative)
                .map(|text| (format!("strategies/{relative} (built in)"), text.to_string()))
                .ok_or_else(|| {
                    // Only agents' files: a tournament or matrix file is no agent.
                    let known: Vec<&str> = builtin::STRATEGIES
                        .iter()
                        .map(|(p, _)| *p)
                        .filter(|p| p.starts_with("attackers/") || p.starts_with("defenders/"))
                        .collect();
                    Error::config(
                        cited_from,
                        format!(
                            "`use = \"{relative}\"`: no such built-in strategy; built in: {}{}",
                            known.join(", "),
                            did_you_mean(relative, known.iter().copied())
                        ),
                    )
                }),
            Store::Disk(root) => read_disk(root, relative, cited_from),
        }
    }
}

/// [`Store::read`] from a strategies folder on disk, `rel` already checked
/// safe; a file missing there comes from the built-in copies.
fn read_disk(root: &Path, relative: &str, cited_from: &str) -> Result<(String, String)> {
    let rel = Path::new(relative);
    // An empty parent (a file in the current folder) means ".".
    let root = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    let path = root.join(rel);
    let canonical_root = root.canonicalize().map_err(|e| {
        Error::config(
            cited_from,
            format!(
                "`use = \"{relative}\"`: cannot open the strategies folder {}: {e}",
                root.display()
            ),
        )
    })?;
    let canonical = match path.canonicalize() {
        Ok(canonical) => canonical,
        // Not on disk: the built-in file of that name, so that a
        // tournament file anywhere can use the shipped strategies.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && builtin::get(relative).is_some() => {
            return Store::Builtin.read(relative, cited_from);
        }
        Err(e) => {
            let known = toml_files_beside(root, rel);
            let listing = if known.is_empty() {
                String::new()
            } else {
                format!("; the strategy files there: {}", known.join(", "))
            };
            let builtins: Vec<&str> = builtin::STRATEGIES.iter().map(|(p, _)| *p).collect();
            return Err(Error::config(
                cited_from,
                format!(
                    "`use = \"{relative}\"`: cannot read {}: {e}{listing}; nor is it built in (built in: {}){}",
                    path.display(),
                    builtins.join(", "),
                    did_you_mean(
                        relative,
                        known.iter().map(String::as_str).chain(builtins.iter().copied())
                    ),
                ),
            ));
        }
    };
    // A symbolic link inside the strategies folder may not lead
    // out of it.
    if !canonical.starts_with(&canonical_root) {
        return Err(Error::config(
                cited_from,
                format!(
                    "`use = \"{relative}\"`: {} leads to {}, outside the strategies folder {}; strategy files (and any links to them) must stay inside it",
                    path.display(),
                    canonical.display(),
                    canonical_root.display()
                ),
            ));
    }
    let text = super::read_text(&canonical, &path.display().to_string())?;
    Ok((path.display().to_string(), text))
}

/// The `.toml` files in the folder `rel` names under `root`, as paths
/// relative to `root` (for suggestions), sorted.
fn toml_files_beside(root: &Path, rel: &Path) -> Vec<String> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let Ok(entries) = std::fs::read_dir(root.join(parent)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| parent.join(entry.file_name()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter_map(|p| p.to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// A tournament file entry: written inline, or taken whole from a strategy
/// file with `use = "..."` (only its `name` may be overridden).
pub(super) trait Entry {
    /// What the entry resolves to.
    type Config: DeserializeOwned;
    /// The entry's list in the tournament file (`attackers`, `defenders`).
    const LIST: &'static str;
    /// The agent an entry describes, for errors (`attacker`, `defender`).
    const AGENT: &'static str;
    /// The keys `use` replaces, for errors (`` `strategy` ``).
    const WHOLE: &'static str;
    /// The key every strategy file of this list has.
    const KEY: &'static str;
    /// The other list, and its `KEY`: a file `use`d from the wrong list
    /// (it has the other's key and not this one's) is named as such, not
    /// as a bad key.
    const OTHER: (&'static str, &'static str);

    fn include(&self) -> Option<&str>;
    fn name(&self) -> Option<&String>;
    /// Whether keys other than `use` and `name` are given.
    fn has_inline_keys(&self) -> bool;
    /// The configuration written inline; `at` names the entry and `err`
    /// cites the tournament file.
    fn inline(&self, at: &str, err: &dyn Fn(String) -> Error) -> Result<Self::Config>;
    fn rename(config: &mut Self::Config, name: String);
    /// The entry written back inline, so the resolved file is self-contained.
    fn resolved(config: &Self::Config) -> Self;
}

/// Resolved entries, and where each was written (`None`: inline).
pub(super) type Resolved<C> = (Vec<C>, Vec<Option<String>>);

/// Every entry of a list resolved, in order, with where each was written
/// for errors (the strategy file it `use`s, or `None` for inline).
pub(super) fn resolve<E: Entry>(entries: &[E], store: &Store, cited: &str) -> Result<Resolved<E::Config>> {
    let err = |message: String| Error::config(cited, message);
    let mut configs = Vec::new();
    let mut sources = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("{}[{i}]", E::LIST);
        let config = match entry.include() {
            Some(include) => {
                if entry.has_inline_keys() {
                    return Err(err(format!(
                        "{at}: `use` takes the whole {} from its file; remove {} (only `name` may override)",
                        E::AGENT,
                        E::WHOLE
                    )));
                }
                let (source, text) = store.read(include, cited)?;
                let (other_list, other_key) = E::OTHER;
                let keys = text.parse::<toml::Table>().unwrap_or_default();
                if keys.contains_key(other_key) && !keys.contains_key(E::KEY) {
                    return Err(err(format!(
                        "{at}: `use = {include:?}` is a strategy file for [[{other_list}]] (it has `{other_key}`), not for [[{}]]; give a file under {}/",
                        E::LIST,
                        E::LIST
                    )));
                }
                let mut config: E::Config = parse(&text, &source)?;
                if let Some(name) = entry.name() {
                    E::rename(&mut config, name.clone());
                }
                sources.push(Some(source));
                config
            }
            None => {
                sources.push(None);
                entry.inline(&at, &err)?
            }
        };
        configs.push(config);
    }
    Ok((configs, sources))
}

impl Entry for AttackerEntry {
    type Config = AttackerConfig;
    const LIST: &'static str = "attackers";
    const AGENT: &'static str = "attacker";
    const WHOLE: &'static str = "`policy` and `repertoire`";
    const KEY: &'static str = "policy";
    const OTHER: (&'static str, &'static str) = ("defenders", "strategy");

    fn include(&self) -> Option<&str> {
        self.include.as_deref()
    }
    fn name(&self) -> Option<&String> {
        self.name.as_ref()
    }
    fn has_inline_keys(&self) -> bool {
        self.policy.is_some() || self.repertoire.is_some()
    }
    fn inline(&self, at: &str, err: &dyn Fn(String) -> Error) -> Result<AttackerConfig> {
        Ok(AttackerConfig {
            name: self.name.clone().ok_or_else(|| {
                err(format!(
                    "{at}: needs `name`, `policy` and `repertoire`, or `use = \"attackers/NAME.toml\"`"
                ))
            })?,
            policy: self.policy.clone().ok_or_else(|| {
                err(format!(
                    "{at}: missing `policy` (a table with `kind` = {})",
                    crate::agent::PolicyConfig::names().collect::<Vec<_>>().join(", ")
                ))
            })?,
            repertoire: self
                .repertoire
                .clone()
                .ok_or_else(|| err(format!("{at}: missing `repertoire` (a list of attack tables)")))?,
        })
    }
    fn rename(config: &mut AttackerConfig, name: String) {
        config.name = name;
    }
    fn resolved(a: &AttackerConfig) -> AttackerEntry {
        AttackerEntry {
            include: None,
            name: Some(a.name.clone()),
            policy: Some(a.policy.clone()),
            repertoire: Some(a.repertoire.clone()),
        }
    }
}

impl Entry for DefenderEntry {
    type Config = DefenderConfig;
    const LIST: &'static str = "defenders";
    const AGENT: &'static str = "defender";
    const WHOLE: &'static str = "`strategy`";
    const KEY: &'static str = "strategy";
    const OTHER: (&'static str, &'static str) = ("attackers", "policy");

    fn include(&self) -> Option<&str> {
        self.include.as_deref()
    }
    fn name(&self) -> Option<&String> {
        self.name.as_ref()
    }
    fn has_inline_keys(&self) -> bool {
        self.strategy.is_some()
    }
    fn inline(&self, at: &str, err: &dyn Fn(String) -> Error) -> Result<DefenderConfig> {
        Ok(DefenderConfig {
            name: self.name.clone().ok_or_else(|| {
                err(format!(
                    "{at}: needs `name` and `strategy`, or `use = \"defenders/NAME.toml\"`"
                ))
            })?,
            strategy: self.strategy.clone().ok_or_else(|| {
                err(format!(
                    "{at}: missing `strategy` (a table with `kind` = {})",
                    crate::defense::DefenseConfig::names().collect::<Vec<_>>().join(", ")
                ))
            })?,
        })
    }
    fn rename(config: &mut DefenderConfig, name: String) {
        config.name = name;
    }
    fn resolved(d: &DefenderConfig) -> DefenderEntry {
        DefenderEntry {
            include: None,
            name: Some(d.name.clone()),
            strategy: Some(d.strategy.clone()),
        }
    }
}
