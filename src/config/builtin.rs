//! The strategy files built into the binary, so that `redqueen run` works
//! right after `cargo install` with nothing else on disk.

/// (path under `strategies/`, contents).
pub const STRATEGIES: &[(&str, &str)] = &[
    (
        "tournaments/default.toml",
        include_str!("../../strategies/tournaments/default.toml"),
    ),
    (
        "tournaments/masking.toml",
        include_str!("../../strategies/tournaments/masking.toml"),
    ),
    (
        "tournaments/defenses.toml",
        include_str!("../../strategies/tournaments/defenses.toml"),
    ),
    (
        "tournaments/masking-mnist.toml",
        include_str!("../../strategies/tournaments/masking-mnist.toml"),
    ),
    (
        "tournaments/mnist.toml",
        include_str!("../../strategies/tournaments/mnist.toml"),
    ),
    (
        "tournaments/default-mnist.toml",
        include_str!("../../strategies/tournaments/default-mnist.toml"),
    ),
    (
        "matrix/default.toml",
        include_str!("../../strategies/matrix/default.toml"),
    ),
    ("matrix/mnist.toml", include_str!("../../strategies/matrix/mnist.toml")),
    (
        "attackers/adaptive-linf.toml",
        include_str!("../../strategies/attackers/adaptive-linf.toml"),
    ),
    (
        "attackers/evolve-linf.toml",
        include_str!("../../strategies/attackers/evolve-linf.toml"),
    ),
    (
        "attackers/pgd-linf.toml",
        include_str!("../../strategies/attackers/pgd-linf.toml"),
    ),
    (
        "attackers/bandit-linf.toml",
        include_str!("../../strategies/attackers/bandit-linf.toml"),
    ),
    (
        "attackers/cycle-mixed.toml",
        include_str!("../../strategies/attackers/cycle-mixed.toml"),
    ),
    (
        "defenders/standard.toml",
        include_str!("../../strategies/defenders/standard.toml"),
    ),
    (
        "defenders/adversarial.toml",
        include_str!("../../strategies/defenders/adversarial.toml"),
    ),
    (
        "defenders/squeeze.toml",
        include_str!("../../strategies/defenders/squeeze.toml"),
    ),
    (
        "defenders/pgd-at.toml",
        include_str!("../../strategies/defenders/pgd-at.toml"),
    ),
    (
        "defenders/fast-at.toml",
        include_str!("../../strategies/defenders/fast-at.toml"),
    ),
    (
        "defenders/trades.toml",
        include_str!("../../strategies/defenders/trades.toml"),
    ),
    (
        "defenders/distillation.toml",
        include_str!("../../strategies/defenders/distillation.toml"),
    ),
    (
        "defenders/ensemble-at.toml",
        include_str!("../../strategies/defenders/ensemble-at.toml"),
    ),
    (
        "defenders/smoothing.toml",
        include_str!("../../strategies/defenders/smoothing.toml"),
    ),
    (
        "defenders/continual.toml",
        include_str!("../../strategies/defenders/continual.toml"),
    ),
];

pub const DEFAULT_TOURNAMENT: &str = "tournaments/default.toml";

pub fn get(path: &str) -> Option<&'static str> {
    STRATEGIES.iter().find(|(p, _)| *p == path).map(|(_, text)| *text)
}

/// The first comment line of a strategy file: what it models.
pub fn summary_line(text: &str) -> &str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix('#'))
        .map(str::trim)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    /// Every strategy file shipped in `strategies/` (reproductions aside,
    /// which `reproduce` builds in) is built in, so `list` shows it and a
    /// tournament file anywhere can `use` it.
    #[test]
    fn every_shipped_strategy_file_is_built_in() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies");
        for kind in ["tournaments", "attackers", "defenders", "matrix"] {
            for entry in std::fs::read_dir(root.join(kind)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let path = format!("{kind}/{name}");
                let text = std::fs::read_to_string(root.join(&path)).unwrap();
                assert_eq!(
                    super::get(&path),
                    Some(text.as_str()),
                    "{path} is not built in (src/config/builtin.rs)"
                );
            }
        }
    }
}
