//! The rules of a tournament: the budgets an attack must stay within.
//! The configuration sets them; the arena and its referee apply them to
//! every attack, including those a policy invents mid-match.

use serde::{Deserialize, Serialize};

use super::{AttackConfig, Norm, SpatialBudget, ThreatModel};
use crate::Error;

/// The largest budget allowed per threat model; a threat model without a
/// budget is not allowed at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linf: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1: Option<f32>,
    /// Queries per image allowed to attacks with scores or labels access.
    #[serde(default = "default_queries")]
    pub queries: usize,
    /// Largest rotation (degrees) and translation (pixels) for spatial
    /// attacks (a table, so it comes last when written back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spatial: Option<SpatialBudget>,
}

fn default_queries() -> usize {
    1000
}

impl Rules {
    pub fn budget(&self, norm: Norm) -> Option<f32> {
        match norm {
            Norm::Linf => self.linf,
            Norm::L2 => self.l2,
            Norm::L1 => self.l1,
        }
    }
}

/// Whether an attack, wrappers and all, stays within the rules: its norm
/// budget or spatial budget, and its query budget.
pub fn within_rules(rules: &Rules, attack: &AttackConfig) -> crate::Result<()> {
    attack.part().within(rules)
}

/// Whether an attack's threat model is within the rules.
pub fn check_budget(rules: &Rules, threat: ThreatModel) -> crate::Result<()> {
    match rules.budget(threat.norm) {
        None => Err(Error::invalid(format!(
            "the rules set no {} budget, so {} attacks are not allowed; add `{} = ...` to [rules]",
            threat.norm, threat.norm, threat.norm
        ))),
        Some(budget) if threat.eps > budget => Err(Error::invalid(format!(
            "eps {} exceeds the rules' {} budget {} (`rules.{}`)",
            threat.eps, threat.norm, budget, threat.norm
        ))),
        Some(_) => Ok(()),
    }
}
