//! The registries: one table per kind of part (attacks, defenses, attacker
//! policies), each row naming one part's config type.
//!
//! [`registry!`] turns rows like `Pgd(PgdConfig) = "pgd",` into the serde
//! enum a strategy file is parsed into (tagged by `family` or `kind`), the
//! list of names `list`, the parser and the "did you mean" suggestions use,
//! and one `match` that hands out the part behind its kind's trait. Every
//! other question about a part is answered by that trait, implemented in
//! the part's own file, so adding a part is one file and one row.

/// One registered part: its name in strategy files, one line of help, a
/// typical configuration (for `list` and the conformance suites), and the
/// configurations worth tabulating and testing.
pub struct Entry<E: 'static> {
    pub name: &'static str,
    pub help: &'static str,
    pub example: fn() -> E,
    pub variants: fn() -> Vec<E>,
}

/// What every part's config says about itself without an instance.
pub trait Describe: Sized {
    /// One line of help for `list`.
    const HELP: &'static str;
    /// A typical configuration.
    fn example() -> Self;
    /// The configurations tables and conformance suites run (for attacks:
    /// at the default tournament's budgets); by default the example alone.
    fn variants() -> Vec<Self> {
        vec![Self::example()]
    }
}

/// Declares a registry enum: see the module documentation.
#[macro_export]
macro_rules! registry {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Enum:ident: dyn $Trait:ident, tag = $tag:literal {
            $( $Variant:ident($Config:ty) = $name:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = $tag)]
        $vis enum $Enum {
            $( #[serde(rename = $name)] $Variant($Config), )*
        }

        impl $Enum {
            /// Every registered part, in the order `list` shows them.
            pub const ENTRIES: &'static [$crate::registry::Entry<$Enum>] = &[
                $( $crate::registry::Entry {
                    name: $name,
                    help: <$Config as $crate::registry::Describe>::HELP,
                    example: || $Enum::$Variant(<$Config as $crate::registry::Describe>::example()),
                    variants: || {
                        <$Config as $crate::registry::Describe>::variants()
                            .into_iter()
                            .map($Enum::$Variant)
                            .collect()
                    },
                }, )*
            ];

            /// The registered names, in registry order.
            pub fn names() -> impl Iterator<Item = &'static str> {
                Self::ENTRIES.iter().map(|e| e.name)
            }

            /// This configuration's name in the registry.
            pub fn registry_name(&self) -> &'static str {
                match self {
                    $( $Enum::$Variant(_) => $name, )*
                }
            }

            /// The part behind its kind's trait.
            pub fn part(&self) -> &dyn $Trait {
                match self {
                    $( $Enum::$Variant(c) => c, )*
                }
            }

            /// The part behind its kind's trait, to change it.
            pub fn part_mut(&mut self) -> &mut dyn $Trait {
                match self {
                    $( $Enum::$Variant(c) => c, )*
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Entry;
    use crate::agent::PolicyConfig;
    use crate::attack::AttackConfig;
    use crate::defense::DefenseConfig;

    /// Every row's example and variants carry the row's name, and survive a
    /// trip through a strategy file's TOML unchanged: a new part's config
    /// is reachable from a file by its registry name alone.
    fn rows_round_trip<E>(entries: &[Entry<E>], name_of: impl Fn(&E) -> &'static str)
    where
        E: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let mut names = std::collections::BTreeSet::new();
        for entry in entries {
            assert!(names.insert(entry.name), "{} is registered twice", entry.name);
            assert!(!entry.help.is_empty(), "{} has no help", entry.name);
            for config in std::iter::once((entry.example)()).chain((entry.variants)()) {
                assert_eq!(name_of(&config), entry.name);
                let text = toml::to_string(&config).expect("a config serializes");
                let back: E = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", entry.name));
                assert_eq!(back, config, "{} changed on its way through TOML", entry.name);
            }
        }
    }

    #[test]
    fn every_registry_row_round_trips_through_toml() {
        rows_round_trip(AttackConfig::ENTRIES, AttackConfig::registry_name);
        rows_round_trip(DefenseConfig::ENTRIES, DefenseConfig::registry_name);
        rows_round_trip(PolicyConfig::ENTRIES, PolicyConfig::registry_name);
    }
}
