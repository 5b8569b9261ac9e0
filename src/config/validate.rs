//! Checking a tournament: everything that can be checked before any data
//! is loaded, so a typo never surfaces an hour in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{check_budget, within_rules, DataConfig, Rules, TournamentFile, DATASETS};
use crate::agent::AttackerConfig;
use crate::attack::AttackConfig;
use crate::data::Shape;
use crate::defense::DefenderConfig;
use crate::error::did_you_mean;
use crate::Error;

/// `seeds` lists distinct seeds; `seed`, when also given, is the first.
pub(super) fn check_seeds(file: &mut TournamentFile) -> crate::Result<()> {
    if file.seeds.is_empty() {
        return Ok(());
    }
    let mut distinct = file.seeds.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != file.seeds.len() {
        return Err(Error::invalid(format!(
            "`seeds` lists a seed twice: {:?}; list distinct seeds",
            file.seeds
        )));
    }
    if file.seed != 0 && file.seed != file.seeds[0] {
        return Err(Error::invalid(format!(
            "`seed = {}` and `seeds = {:?}` disagree; `seeds` lists every seed, so remove `seed`",
            file.seed, file.seeds
        )));
    }
    let seeds = std::mem::take(&mut file.seeds);
    file.set_seeds(seeds);
    Ok(())
}

/// How an agent is cited in errors: its name, and its strategy file if it
/// came from one.
fn cite(kind: &str, name: &str, source: &Option<String>) -> String {
    match source {
        Some(source) => format!("{kind} {name:?} (in {source})"),
        None => format!("{kind} {name:?}"),
    }
}

/// Everything about a tournament that can be checked before loading data:
/// sizes and data, the rules, the attackers, the defenders, and the unseen
/// panel, in that order (the first problem found is the one reported).
pub(super) fn validate(
    file: &TournamentFile,
    attackers: &[AttackerConfig],
    attacker_sources: &[Option<String>],
    defenders: &[DefenderConfig],
    defender_sources: &[Option<String>],
) -> crate::Result<()> {
    // Read once (an IDX header): the model, and the models agents train of
    // their own, are built for the dataset's images.
    let shape = file.data.known_shape();
    check_sizes_and_data(file, shape)?;
    check_rules(&file.rules)?;
    if attackers.is_empty() || defenders.is_empty() {
        return Err(Error::invalid(
            "a tournament needs at least one entry in `attackers` and one in `defenders`",
        ));
    }
    let mut labels = Labels {
        rules: &file.rules,
        shape,
        seen: BTreeMap::new(),
    };
    // What the agents use, as configurations without names: the unseen panel
    // may hold none of it.
    let mut used: Vec<AttackConfig> = Vec::new();
    check_attackers(attackers, attacker_sources, &mut labels, &mut used)?;
    check_defenders(&file.rules, shape, defenders, defender_sources, &mut used)?;
    check_unseen(&file.unseen, &mut labels, &used)?;
    if let Some(specialists) = &file.specialists {
        if file.unseen.is_empty() {
            return Err(Error::invalid(
                "[specialists] measure the unseen panel against what was possible: give `unseen` attacks, or drop [specialists]",
            ));
        }
        specialists.validate(file.rounds)?;
    }
    Ok(())
}

/// The name, rounds, data, evaluation and crafting sizes, the model and
/// pretraining.
fn check_sizes_and_data(file: &TournamentFile, shape: Option<Shape>) -> crate::Result<()> {
    check_name(&file.name)?;
    if file.rounds == 0 {
        return Err(Error::invalid("`rounds` must be at least 1"));
    }
    check_data(&file.data)?;
    if file.sizes.eval == 0 || file.sizes.eval > file.data.test {
        return Err(Error::invalid(format!(
            "`sizes.eval` = {} must be between 1 and the test images used (`data.test` = {})",
            file.sizes.eval, file.data.test
        )));
    }
    let slice = file.sizes.attacker_slice(file.data.train);
    if slice == 0 || slice >= file.data.train {
        return Err(Error::invalid(format!(
            "`sizes.attacker_slice` = {slice} must be between 1 and the training images used (`data.train` = {}) less one",
            file.data.train
        )));
    }
    // Crafting draws from the training images the defenders may learn
    // from: the attacker slice is not among them.
    let defender_train = file.data.train - slice;
    if file.sizes.craft == 0 || file.sizes.craft > defender_train {
        return Err(Error::invalid(format!(
            "`sizes.craft` = {} must be between 1 and the training images left after the attacker slice (`data.train` - `sizes.attacker_slice` = {} - {slice} = {defender_train})",
            file.sizes.craft, file.data.train
        )));
    }
    file.model.validate(shape).map_err(|e| e.within("`model`"))?;
    file.pretrain
        .validate(defender_train, shape)
        .map_err(|e| e.within("[pretrain]"))
}

/// `[rules]`: a spatial budget in range, and positive norm budgets.
fn check_rules(rules: &Rules) -> crate::Result<()> {
    if let Some(s) = rules.spatial {
        if !(s.degrees.is_finite() && (0.0..=180.0).contains(&s.degrees)) || s.pixels > 14 {
            return Err(Error::invalid(format!(
                "`rules.spatial` must have `degrees` between 0 and 180 and `pixels` at most 14, got {} and {}",
                s.degrees, s.pixels
            )));
        }
    }
    for (key, budget) in [("linf", rules.linf), ("l2", rules.l2), ("l1", rules.l1)] {
        if let Some(b) = budget {
            if !(b.is_finite() && b > 0.0) {
                return Err(Error::invalid(format!(
                    "`rules.{key}` must be a positive number, got {b}"
                )));
            }
        }
    }
    Ok(())
}

/// The attacks checked so far, by label: attack labels identify attacks in
/// rows, so one label names one configuration.
struct Labels<'r> {
    rules: &'r Rules,
    /// The dataset's image shape, where it is known before loading.
    shape: Option<Shape>,
    seen: BTreeMap<String, AttackConfig>,
}

impl Labels<'_> {
    /// An attack is valid, within the rules, and its label is not taken by
    /// another configuration; `at` says where it was given.
    fn check(&mut self, at: &str, attack: &AttackConfig) -> crate::Result<()> {
        attack.validate().map_err(|e| e.within(at))?;
        attack.check_shape(self.shape).map_err(|e| e.within(at))?;
        within_rules(self.rules, attack).map_err(|e| e.within(at))?;
        let label = attack.label();
        match self.seen.get(&label) {
            Some(other) if other != attack => Err(Error::invalid(format!(
                "{at}: the label {label:?} already names a different attack; give one of them another `name`"
            ))),
            _ => {
                self.seen.insert(label, attack.clone());
                Ok(())
            }
        }
    }
}

/// Settings refused in the files people write, but not in a run's own
/// `config.toml` (see [`super::load_recorded`]): runs recorded before
/// these rules may hold them, and must keep resuming. Each was accepted
/// and then ignored or miscounted: an attack twice in a repertoire (a
/// policy took the two for two arms), a bandit key of the other algorithm.
pub(super) fn refuse_ignored_settings(plan: &super::Plan) -> crate::Result<()> {
    for (i, a) in plan.attackers.iter().enumerate() {
        let at = format!("attackers[{i}] ({:?})", a.name);
        for (j, attack) in a.repertoire.iter().enumerate() {
            if let Some(first) = a.repertoire[..j].iter().position(|b| b.unnamed() == attack.unnamed()) {
                return Err(Error::invalid(format!(
                    "{at}, repertoire[{j}]: {:?} is already repertoire[{first}]; a repertoire lists each attack once (a policy would take the two for two arms)",
                    attack.label()
                )));
            }
        }
        if let crate::agent::PolicyConfig::Bandit(bandit) = &a.policy {
            bandit
                .refuse_other_algorithms_keys()
                .map_err(|e| e.within(&format!("{at}: `policy`")))?;
        }
    }
    Ok(())
}

/// Unique names, valid policies, and non-empty repertoires of valid attacks
/// (added to `used`).
fn check_attackers(
    attackers: &[AttackerConfig],
    sources: &[Option<String>],
    labels: &mut Labels,
    used: &mut Vec<AttackConfig>,
) -> crate::Result<()> {
    let mut names = BTreeSet::new();
    for (a, source) in attackers.iter().zip(sources) {
        let at = cite("attacker", &a.name, source);
        if a.name.is_empty() || !names.insert(a.name.clone()) {
            return Err(Error::invalid(format!(
                "{at}: attacker names must be non-empty and unique"
            )));
        }
        a.policy.validate().map_err(|e| e.within(&format!("{at}: `policy`")))?;
        if a.repertoire.is_empty() {
            return Err(Error::invalid(format!(
                "{at}: `repertoire` must list at least one attack"
            )));
        }
        for (j, attack) in a.repertoire.iter().enumerate() {
            labels.check(&format!("{at}, repertoire[{j}]"), attack)?;
            used.push(attack.unnamed());
        }
    }
    Ok(())
}

/// Unique names, valid strategies, and training attacks within the rules'
/// budgets (added to `used`).
fn check_defenders(
    rules: &Rules,
    shape: Option<Shape>,
    defenders: &[DefenderConfig],
    sources: &[Option<String>],
    used: &mut Vec<AttackConfig>,
) -> crate::Result<()> {
    let mut names = BTreeSet::new();
    for (d, source) in defenders.iter().zip(sources) {
        let at = cite("defender", &d.name, source);
        if d.name.is_empty() || !names.insert(d.name.clone()) {
            return Err(Error::invalid(format!(
                "{at}: defender names must be non-empty and unique"
            )));
        }
        d.strategy
            .validate()
            .and_then(|_| d.strategy.check_shape(shape))
            .map_err(|e| e.within(&format!("{at}: `strategy`")))?;
        // The attacks a defense trains with are held to the rules too.
        for attack in d.strategy.training_attacks() {
            check_budget(rules, attack.threat())
                .map_err(|e| e.within(&format!("{at}: `strategy` trains with {}", attack.label())))?;
            used.push(attack.unnamed());
        }
    }
    Ok(())
}

/// The unseen panel: valid attacks that no agent uses.
fn check_unseen(unseen: &[AttackConfig], labels: &mut Labels, used: &[AttackConfig]) -> crate::Result<()> {
    for (j, attack) in unseen.iter().enumerate() {
        let at = format!("unseen[{j}]");
        if let Some(first) = unseen[..j].iter().position(|a| a.label() == attack.label()) {
            return Err(Error::invalid(format!(
                "{at}: {:?} is already unseen[{first}]; the panel lists each attack once",
                attack.label()
            )));
        }
        labels.check(&at, attack)?;
        if used.contains(&attack.unnamed()) {
            return Err(Error::invalid(format!(
                "{at}: {:?} is an attack an agent uses (an attacker's repertoire or a defender's training attack); the unseen panel must hold attacks no agent uses",
                attack.label()
            )));
        }
    }
    Ok(())
}

/// A run's name names its results folder: letters, digits, '-' and '_'.
pub(crate) fn check_name(name: &str) -> crate::Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::invalid(format!(
            "`name` = {name:?} must be non-empty and use only letters, digits, '-' and '_' (it names the results folder)"
        )));
    }
    Ok(())
}

/// `[data]`: a known dataset, a path for `idx`, and non-empty splits.
pub(crate) fn check_data(data: &DataConfig) -> crate::Result<()> {
    if !DATASETS.iter().any(|(name, _)| *name == data.dataset) {
        let names: Vec<&str> = DATASETS.iter().map(|(n, _)| *n).collect();
        return Err(Error::invalid(format!(
            "`data.dataset` = {:?} is not a dataset; valid: {}{}",
            data.dataset,
            names.join(", "),
            did_you_mean(&data.dataset, names.iter().copied())
        )));
    }
    if data.dataset == "idx" {
        let Some(path) = &data.path else {
            return Err(Error::invalid(
                "`data.dataset` = \"idx\" needs `data.path`, the folder holding the four IDX files",
            ));
        };
        check_idx_folder(path)?;
    }
    if data.dataset == "synthetic-digits" && data.path.is_some() {
        return Err(Error::invalid(
            "`data.path` does not apply to synthetic-digits, which are generated; it names the folder of idx, mnist, fashion-mnist or cifar10",
        ));
    }
    if data.train == 0 || data.test == 0 {
        return Err(Error::invalid("`data.train` and `data.test` must be at least 1"));
    }
    if let Some(names) = &data.classes {
        let mut distinct: Vec<&String> = names.iter().collect();
        distinct.sort();
        distinct.dedup();
        if names.len() < 2 || names.iter().any(|n| n.trim().is_empty()) || distinct.len() != names.len() {
            return Err(Error::invalid(format!(
                "`data.classes` = {names:?} must list at least 2 distinct, non-empty names, label 0 first"
            )));
        }
        // The shipped datasets have ten classes; an IDX folder's count is
        // known once its labels are read (checked then).
        if data.dataset != "idx" && names.len() != 10 {
            return Err(Error::invalid(format!(
                "`data.classes` names {} classes, but dataset {} has 10; list one name per class, label 0 first",
                names.len(),
                data.dataset
            )));
        }
    }
    Ok(())
}

/// What can be told about an `idx` folder before loading it: that it exists
/// (the model is checked against its images' size separately). Everything else
/// (missing files, wrong magic numbers, truncation) is reported, file by
/// file, when the data is loaded, before anything is written.
fn check_idx_folder(path: &Path) -> crate::Result<()> {
    if !path.is_dir() {
        return Err(Error::invalid(format!(
            "`data.path` = {:?} is not a folder (a relative path is read from the current folder); it should hold the four MNIST-format IDX files {}",
            path.display().to_string(),
            crate::data::idx::IdxFile::ALL
                .iter()
                .map(|f| format!("{}[.gz]", f.canonical_name()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}
