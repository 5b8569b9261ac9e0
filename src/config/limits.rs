//! Fixed limits on every whole number and list a configuration may give,
//! checked by `check` and `run` alike before any work, so that no input
//! reaches an allocation, an integer overflow or a loop that never ends.
//! They are set high enough for real work (all of MNIST, CIFAR-sized
//! inputs, long runs); whether a plan fits in this machine's memory is
//! [`crate::tournament::memory`]'s question, asked by `run` only.
//!
//! The limits go by key name, over the configuration as it serializes, so
//! that a new attack, defense or policy is bounded with no code of its own:
//! a key missing from [`LIMITS`] is held to [`ANY_WHOLE_NUMBER`].

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// A key's largest value, and what it counts (for the message).
pub struct Limit {
    pub key: &'static str,
    pub max: u64,
    pub counts: &'static str,
}

const fn limit(key: &'static str, max: u64, counts: &'static str) -> Limit {
    Limit { key, max, counts }
}

/// The largest seed: TOML, in which runs record their configuration, holds
/// integers up to 2^63 - 1.
pub const MAX_SEED: u64 = i64::MAX as u64;

/// The most seeds one run plays.
pub const MAX_SEEDS: usize = 1_000;

/// The longest name of a tournament, agent or attack (it names folders,
/// table rows and plot legends).
pub const MAX_NAME: usize = 64;

/// Every limited key (documented in docs/LIMITS.md; keep the two in step).
pub const LIMITS: &[Limit] = &[
    limit("seed", MAX_SEED, "seed"),
    limit("seeds", MAX_SEED, "seed"),
    limit("rounds", 10_000, "rounds of a match"),
    limit("steps", 1_000_000, "steps of an attack or of training"),
    limit("attack_steps", 10_000, "attack steps per training step"),
    limit("epochs", 10_000, "epochs of training"),
    limit("queries", 1_000_000, "queries per image"),
    limit("restarts", 1_000, "restarts of an attack"),
    limit("samples", 100_000, "samples per step or per image"),
    limit("binary_steps", 1_000, "binary search steps"),
    limit("angles", 3_600, "rotations tried"),
    limit("batch", 65_536, "images per batch"),
    limit("hidden", 16_384, "units of a layer"),
    limit("dense", 16_384, "units of a layer"),
    limit("channels", 1_024, "channels of a layer"),
    limit("train", 1_000_000, "images"),
    limit("test", 1_000_000, "images"),
    limit("eval", 1_000_000, "images"),
    limit("craft", 1_000_000, "images"),
    limit("attacker_slice", 1_000_000, "images"),
    limit("images", 1_000_000, "images"),
    limit("replay", 1_000_000, "images kept for replay"),
    limit("every", 1_000_000, "steps"),
    limit("eps_warmup", 1_000_000, "steps"),
    limit("population", 10_000, "candidates"),
];

/// The limit of a whole number under a key not in [`LIMITS`].
pub const ANY_WHOLE_NUMBER: u64 = 1_000_000_000;

/// The longest list of any kind (agents, attacks, layers, seeds).
pub const MAX_LIST: usize = 1_000;

/// The longest list of layer widths.
pub const MAX_LAYERS: usize = 16;

/// Every whole number, list and name in `config` (anything that serializes:
/// a tournament, matrix or reproduction file) within its limit; the error
/// names the key by its path (`attackers[0].repertoire[1].steps`).
pub fn check(config: &impl Serialize) -> Result<()> {
    let value = serde_json::to_value(config).map_err(|e| Error::invalid(format!("a number is out of range: {e}")))?;
    walk(&value, "", None)
}

fn walk(value: &Value, path: &str, key: Option<&str>) -> Result<()> {
    match value {
        Value::Number(n) => match n.as_u64() {
            Some(v) => check_number(path, key, v),
            // Negative or fractional numbers are the validators' to judge.
            None => Ok(()),
        },
        Value::String(s) => check_text(path, key, s),
        Value::Array(items) => {
            let max = if matches!(key, Some("hidden")) {
                MAX_LAYERS
            } else if matches!(key, Some("seeds")) {
                MAX_SEEDS
            } else {
                MAX_LIST
            };
            if items.len() > max {
                return Err(Error::invalid(format!(
                    "`{path}` lists {} entries; the limit is {max}",
                    items.len()
                )));
            }
            items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| walk(item, &format!("{path}[{i}]"), key))
        }
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let inner = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            walk(v, &inner, Some(k))
        }),
        Value::Bool(_) | Value::Null => Ok(()),
    }
}

fn check_number(path: &str, key: Option<&str>, value: u64) -> Result<()> {
    let (max, counts) = key
        .and_then(|k| LIMITS.iter().find(|l| l.key == k))
        .map_or((ANY_WHOLE_NUMBER, "a whole number"), |l| (l.max, l.counts));
    if value > max {
        return Err(Error::invalid(format!(
            "`{path}` = {value} is over the limit of {max} ({counts}); redqueen's limits are listed in docs/LIMITS.md"
        )));
    }
    Ok(())
}

/// Names and other text: no control characters (they would reach the
/// terminal, the tables and report.html), and names within [`MAX_NAME`].
fn check_text(path: &str, key: Option<&str>, text: &str) -> Result<()> {
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "`{path}` = {text:?} holds the control character {:?}; names and text may not hold control characters (newlines, tabs, escape codes, NUL)",
            c
        )));
    }
    // Bidirectional controls reorder what follows them on screen (a name
    // could show as another's), so they are refused with the rest.
    if let Some(c) = text
        .chars()
        .find(|c| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
    {
        return Err(Error::invalid(format!(
            "`{path}` = {text:?} holds the bidirectional control {c:?}, which reorders text on screen; names and text may not hold it"
        )));
    }
    if key == Some("name") && text.trim().is_empty() {
        return Err(Error::invalid(format!(
            "`{path}` = {text:?} is blank; a name needs at least one visible character (it labels tables and plots)"
        )));
    }
    if key == Some("name") && text.chars().count() > MAX_NAME {
        return Err(Error::invalid(format!(
            "`{path}` is {} characters long; a name may have at most {MAX_NAME}",
            text.chars().count()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blank_names_and_bidirectional_controls_are_refused() {
        let message = check(&json!({ "attackers": [{ "name": "  " }] }))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`attackers[0].name`") && message.contains("blank"),
            "{message}"
        );
        let message = check(&json!({ "name": "evil\u{202E}txt" })).unwrap_err().to_string();
        assert!(message.contains("bidirectional control"), "{message}");
        assert!(check(&json!({ "name": "pgd-linf", "note": "plain text" })).is_ok());
    }

    #[test]
    fn numbers_lists_and_names_within_limits_pass() {
        let config = json!({
            "name": "mnist",
            "rounds": 10_000,
            "attackers": [{ "name": "a", "repertoire": [{ "steps": 1_000_000 }] }],
            "model": { "hidden": [16_384, 16_384] },
            "eps": 0.3,
            "lr": -1,
        });
        check(&config).unwrap();
    }

    #[test]
    fn a_number_over_its_limit_is_named_by_its_path() {
        let config = json!({ "attackers": [{ "repertoire": [{}, { "steps": 100_000_000_000u64 }] }] });
        let message = check(&config).unwrap_err().to_string();
        assert!(
            message.contains("`attackers[0].repertoire[1].steps` = 100000000000"),
            "{message}"
        );
        assert!(message.contains("1000000"), "{message}");
        let message = check(&json!({ "model": { "hidden": [64, 65_536] } }))
            .unwrap_err()
            .to_string();
        assert!(message.contains("`model.hidden[1]` = 65536"), "{message}");
        // A key no limit names still has one.
        let message = check(&json!({ "whatever": u64::MAX })).unwrap_err().to_string();
        assert!(message.contains("1000000000"), "{message}");
        let message = check(&json!({ "seed": u64::MAX })).unwrap_err().to_string();
        assert!(message.contains(&MAX_SEED.to_string()), "{message}");
    }

    #[test]
    fn long_lists_control_characters_and_long_names_are_refused() {
        let message = check(&json!({ "model": { "hidden": vec![8; 17] } }))
            .unwrap_err()
            .to_string();
        assert!(message.contains("`model.hidden` lists 17 entries"), "{message}");
        for bad in ["a\nb", "red\u{1b}[31m", "nul\0"] {
            let message = check(&json!({ "attackers": [{ "name": bad }] }))
                .unwrap_err()
                .to_string();
            assert!(message.contains("`attackers[0].name`"), "{message}");
            assert!(message.contains("control character"), "{message}");
        }
        let message = check(&json!({ "name": "x".repeat(65) })).unwrap_err().to_string();
        assert!(message.contains("at most 64"), "{message}");
        check(&json!({ "name": "x".repeat(64) })).unwrap();
    }
}
