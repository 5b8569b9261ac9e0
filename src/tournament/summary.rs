//! Aggregates computed from match records only.

use std::collections::BTreeMap;

use crate::arena::metrics::mean;
use crate::record::{AttackerSummary, DefenderSummary, MatchSummary, RoundRow, RunTiming, Summary, SCHEMA_VERSION};

/// Summarize one match from its rows (in round order).
pub fn match_summary(rows: &[RoundRow]) -> Option<MatchSummary> {
    let last = rows.last()?;
    let avg = |f: &dyn Fn(&RoundRow) -> f64| rows.iter().map(f).sum::<f64>() / rows.len() as f64;
    let unseen: Vec<f64> = rows.iter().filter_map(|r| r.unseen_worst).collect();
    let mut picks = BTreeMap::new();
    for r in rows {
        *picks.entry(r.attack.clone()).or_insert(0) += 1;
    }
    Some(MatchSummary {
        match_id: last.match_id,
        attacker: last.attacker.clone(),
        defender: last.defender.clone(),
        rounds: rows.len(),
        aurc_unseen: (unseen.len() == rows.len()).then(|| mean(&unseen)).flatten(),
        aurc_seen: avg(&|r| r.seen_worst),
        aurc_zero_day: avg(&|r| r.zero_day_acc),
        mean_reward: avg(&|r| r.reward),
        final_clean_acc: last.clean_acc,
        final_seen_worst: last.seen_worst,
        final_unseen_worst: last.unseen_worst,
        final_gap: last.gap,
        final_stale_inflation: last.stale_inflation,
        picks,
    })
}

fn mean_of(matches: &[&MatchSummary], f: impl Fn(&MatchSummary) -> f64) -> f64 {
    matches.iter().map(|m| f(m)).sum::<f64>() / matches.len() as f64
}

fn mean_opt(matches: &[&MatchSummary], f: impl Fn(&MatchSummary) -> Option<f64>) -> Option<f64> {
    let values: Option<Vec<f64>> = matches.iter().map(|m| f(m)).collect();
    values.and_then(|v| mean(&v))
}

/// The whole summary: per match, per defender (ranked by `aurc_unseen`,
/// then `aurc_seen`), per attacker (ranked by mean reward).
pub fn summarize(name: &str, seed: u64, rows: &[RoundRow], timing: RunTiming) -> Summary {
    let mut by_match: BTreeMap<usize, Vec<RoundRow>> = BTreeMap::new();
    for r in rows {
        by_match.entry(r.match_id).or_default().push(r.clone());
    }
    let matches: Vec<MatchSummary> = by_match
        .values_mut()
        .filter_map(|rows| {
            rows.sort_by_key(|r| r.round);
            match_summary(rows)
        })
        .collect();

    let mut defender_names: Vec<&str> = Vec::new();
    let mut attacker_names: Vec<&str> = Vec::new();
    for m in &matches {
        if !defender_names.contains(&m.defender.as_str()) {
            defender_names.push(&m.defender);
        }
        if !attacker_names.contains(&m.attacker.as_str()) {
            attacker_names.push(&m.attacker);
        }
    }

    let mut defenders: Vec<DefenderSummary> = defender_names
        .iter()
        .map(|&name| {
            let ms: Vec<&MatchSummary> = matches.iter().filter(|m| m.defender == name).collect();
            DefenderSummary {
                defender: name.to_string(),
                matches: ms.len(),
                aurc_unseen: mean_opt(&ms, |m| m.aurc_unseen),
                aurc_seen: mean_of(&ms, |m| m.aurc_seen),
                aurc_zero_day: mean_of(&ms, |m| m.aurc_zero_day),
                final_clean_acc: mean_of(&ms, |m| m.final_clean_acc),
                final_seen_worst: mean_of(&ms, |m| m.final_seen_worst),
                final_unseen_worst: mean_opt(&ms, |m| m.final_unseen_worst),
                final_gap: mean_opt(&ms, |m| m.final_gap),
                final_stale_inflation: mean_of(&ms, |m| m.final_stale_inflation),
            }
        })
        .collect();
    defenders.sort_by(|a, b| {
        let key = |d: &DefenderSummary| (d.aurc_unseen.unwrap_or(f64::NEG_INFINITY), d.aurc_seen);
        key(b)
            .partial_cmp(&key(a))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.defender.cmp(&b.defender))
    });

    let mut attackers: Vec<AttackerSummary> = attacker_names
        .iter()
        .map(|&name| {
            let ms: Vec<&MatchSummary> = matches.iter().filter(|m| m.attacker == name).collect();
            let mut picks = BTreeMap::new();
            for m in &ms {
                for (attack, n) in &m.picks {
                    *picks.entry(attack.clone()).or_insert(0) += n;
                }
            }
            AttackerSummary {
                attacker: name.to_string(),
                matches: ms.len(),
                mean_reward: mean_of(&ms, |m| m.mean_reward),
                picks,
            }
        })
        .collect();
    attackers.sort_by(|a, b| {
        b.mean_reward
            .total_cmp(&a.mean_reward)
            .then_with(|| a.attacker.cmp(&b.attacker))
    });

    Summary {
        schema_version: SCHEMA_VERSION,
        name: name.to_string(),
        seed,
        matches,
        defenders,
        attackers,
        timing,
    }
}
