//! Aggregates computed from match records only.

use std::collections::BTreeMap;

use super::game::{bradley_terry, mean_ci95, solve_zero_sum};
use crate::arena::metrics::mean;
use crate::record::stats::wilson95_acc;
use crate::record::{
    AttackerSummary, DefenderSummary, Diverged, Equilibrium, Interval, IntervalBasis, IntervalMethod, MatchSummary,
    Payoff, RoundRow, RunTiming, Summary, Weight, SCHEMA_VERSION,
};

/// Summarize one match from its rows (in round order), over `rounds`
/// rounds: a match whose defender diverged counts its remaining rounds as
/// lost (accuracy 0, reward 1), so that diverging never looks better than
/// playing on.
pub fn match_summary(rows: &[RoundRow], rounds: usize, eval_images: usize) -> Option<MatchSummary> {
    let last = rows.last()?;
    let lost = rounds.saturating_sub(rows.len()) as f64;
    let over = rows.len() as f64 + lost;
    let avg = |f: &dyn Fn(&RoundRow) -> f64| rows.iter().map(f).sum::<f64>() / over;
    let avg_opt = |f: &dyn Fn(&RoundRow) -> Option<f64>| {
        let values: Vec<f64> = rows.iter().filter_map(f).collect();
        (values.len() == rows.len()).then(|| values.iter().sum::<f64>() / over)
    };
    let mut picks = BTreeMap::new();
    for r in rows {
        *picks.entry(r.attack.clone()).or_insert(0) += 1;
    }
    let diverged = rows.iter().find_map(|r| {
        r.diverged.as_ref().map(|reason| Diverged {
            round: r.round,
            reason: reason.clone(),
        })
    });
    let mut summary = MatchSummary {
        diverged,
        match_id: last.match_id,
        seed: last.seed,
        attacker: last.attacker.clone(),
        defender: last.defender.clone(),
        rounds: rows.len(),
        aurc_unseen: avg_opt(&|r| r.unseen_worst),
        aurc_seen: avg(&|r| r.seen_worst),
        aurc_unseen_union: avg_opt(&|r| r.unseen_union_acc),
        aurc_seen_union: avg(&|r| r.seen_union_acc),
        aurc_zero_day: avg(&|r| r.zero_day_acc),
        mean_reward: (rows.iter().map(|r| r.reward).sum::<f64>() + lost) / over,
        mean_agent_reward: (rows.iter().map(|r| r.agent_reward).sum::<f64>() + lost) / over,
        final_clean_acc: last.clean_acc,
        final_seen_worst: last.seen_worst,
        final_unseen_worst: last.unseen_worst,
        final_gap: last.gap,
        final_seen_union_acc: last.seen_union_acc,
        final_unseen_union_acc: last.unseen_union_acc,
        final_union_gap: last.union_gap,
        final_stale_inflation: last.stale_inflation,
        specialist_acc: last.specialist_acc.clone(),
        final_unseen_vs_specialist: last.unseen_vs_specialist.clone(),
        picks,
        ci95: BTreeMap::new(),
    };
    summary.ci95 = ACCURACIES
        .iter()
        .chain(&["mean_reward"])
        .filter_map(|&name| Some((name.to_string(), wilson95(accuracy(&summary, name)?, eval_images)?)))
        .collect();
    Some(summary)
}

/// A match's accuracies, by field name: the quantities that carry a 95%
/// interval (gaps and inflations are differences, and do not).
const ACCURACIES: [&str; 10] = [
    "aurc_unseen_union",
    "aurc_seen_union",
    "aurc_unseen",
    "aurc_seen",
    "aurc_zero_day",
    "final_clean_acc",
    "final_seen_union_acc",
    "final_unseen_union_acc",
    "final_seen_worst",
    "final_unseen_worst",
];

/// A match's accuracy (or mean reward) by field name.
fn accuracy(m: &MatchSummary, name: &str) -> Option<f64> {
    match name {
        "aurc_unseen_union" => m.aurc_unseen_union,
        "aurc_seen_union" => Some(m.aurc_seen_union),
        "aurc_unseen" => m.aurc_unseen,
        "aurc_seen" => Some(m.aurc_seen),
        "aurc_zero_day" => Some(m.aurc_zero_day),
        "final_clean_acc" => Some(m.final_clean_acc),
        "final_seen_union_acc" => Some(m.final_seen_union_acc),
        "final_unseen_union_acc" => m.final_unseen_union_acc,
        "final_seen_worst" => Some(m.final_seen_worst),
        "final_unseen_worst" => m.final_unseen_worst,
        "mean_reward" => Some(m.mean_reward),
        _ => None,
    }
}

/// The 95% Wilson interval of an accuracy measured on `n` images
/// (conservative for AURCs and means: see [`wilson95_acc`]).
fn wilson95(acc: f64, n: usize) -> Option<Interval> {
    wilson95_acc(acc, n).map(|(low, high)| [low, high])
}

/// The 95% Student-t interval over per-seed values, clipped to [0, 1].
fn student_t95(per_seed: &[f64]) -> Option<Interval> {
    let (mean, half) = mean_ci95(per_seed)?;
    Some([(mean - half).max(0.0), (mean + half).min(1.0)])
}

/// The intervals of a group of matches' mean accuracies (a defender's):
/// over seeds with several, else Wilson over the evaluation images.
fn group_intervals(
    matches: &[&MatchSummary],
    seeds: &[u64],
    eval_images: usize,
    fields: &[&'static str],
    value: impl Fn(&MatchSummary, &str) -> Option<f64>,
) -> BTreeMap<String, Interval> {
    fields
        .iter()
        .filter_map(|&name| {
            let interval = if seeds.len() > 1 {
                student_t95(&per_seed(matches, seeds, |m| value(m, name))?)
            } else {
                wilson95(mean_opt(matches, |m| value(m, name))?, eval_images)
            };
            Some((name.to_string(), interval?))
        })
        .collect()
}

fn mean_of(matches: &[&MatchSummary], f: impl Fn(&MatchSummary) -> f64) -> f64 {
    matches.iter().map(|m| f(m)).sum::<f64>() / matches.len() as f64
}

fn mean_opt(matches: &[&MatchSummary], f: impl Fn(&MatchSummary) -> Option<f64>) -> Option<f64> {
    let values: Option<Vec<f64>> = matches.iter().map(|m| f(m)).collect();
    values.and_then(|v| mean(&v))
}

/// Per seed, the mean over `matches` of that seed's values of `f`: one
/// replicate each. `None` when a seed has no value.
fn per_seed(matches: &[&MatchSummary], seeds: &[u64], f: impl Fn(&MatchSummary) -> Option<f64>) -> Option<Vec<f64>> {
    seeds
        .iter()
        .map(|&seed| {
            let of_seed: Vec<&MatchSummary> = matches.iter().copied().filter(|m| m.seed == seed).collect();
            mean_opt(&of_seed, &f)
        })
        .collect()
}

/// The 95% half-width over seeds of a per-match quantity.
fn ci_over_seeds(matches: &[&MatchSummary], seeds: &[u64], f: impl Fn(&MatchSummary) -> Option<f64>) -> Option<f64> {
    mean_ci95(&per_seed(matches, seeds, f)?).map(|(_, half)| half)
}

/// For each entry, the others it cannot be told apart from at 95%: a paired
/// test, since two entries share each seed's data and pretraining; the 95%
/// interval of their per-seed differences contains 0. Without per-seed
/// values (fewer than two seeds) nothing is claimed either way.
fn paired_ties(values: &[(String, Option<Vec<f64>>)]) -> Vec<Vec<String>> {
    let tied = |a: &[f64], b: &[f64]| {
        let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        mean_ci95(&differences).is_some_and(|(mean, half)| mean.abs() <= half)
    };
    values
        .iter()
        .map(|(name, a)| {
            values
                .iter()
                .filter(|(other, b)| other != name && matches!((a, b), (Some(a), Some(b)) if tied(a, b)))
                .map(|(other, _)| other.clone())
                .collect()
        })
        .collect()
}

/// The whole summary of the completed matches among `rows` (`expected` is
/// how many the run should hold): per match; per defender (ranked by
/// `aurc_unseen_union`, then `aurc_seen_union`) and per attacker (ranked by mean
/// reward), with 95% intervals over seeds and ratings; the payoff matrix
/// and, when every pairing was played, its equilibrium.
pub fn summarize(
    name: &str,
    (seeds, eval_images): (&[u64], usize),
    rounds: usize,
    expected: usize,
    rows: &[RoundRow],
    timing: RunTiming,
) -> Summary {
    let matches = match_summaries(rows, rounds, eval_images);
    let players = Players::in_plan_order(&matches);
    let ratings = ratings(&matches, &players);
    let defenders = defender_summaries(&matches, (seeds, eval_images), &players, &ratings);
    let attackers = attacker_summaries(&matches, (seeds, eval_images), &players, &ratings);
    let payoff = payoff_matrix(&matches, players.attackers, players.defenders);
    let equilibrium = equilibrium(&payoff);
    Summary {
        schema_version: SCHEMA_VERSION,
        name: name.to_string(),
        seed: seeds.first().copied().unwrap_or_default(),
        seeds: seeds.to_vec(),
        matches_expected: expected,
        matches,
        intervals: IntervalBasis {
            method: if seeds.len() > 1 {
                IntervalMethod::StudentT
            } else {
                IntervalMethod::Wilson
            },
            eval_images,
            seeds: seeds.len(),
        },
        defenders,
        attackers,
        payoff,
        equilibrium,
        timing,
    }
}

/// One summary per completed match, in (seed, match id) order.
fn match_summaries(rows: &[RoundRow], rounds: usize, eval_images: usize) -> Vec<MatchSummary> {
    let complete = super::completed_matches(rows, rounds);
    let mut by_match: BTreeMap<(u64, usize), Vec<RoundRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| complete.contains(&(r.seed, r.match_id))) {
        by_match.entry((r.seed, r.match_id)).or_default().push(r.clone());
    }
    by_match
        .values_mut()
        .filter_map(|rows| {
            rows.sort_by_key(|r| r.round);
            match_summary(rows, rounds, eval_images)
        })
        .collect()
}

/// The agents that played, each in plan order, and their player numbers in
/// the rating game: attackers first, then defenders.
struct Players {
    attackers: Vec<String>,
    defenders: Vec<String>,
}

impl Players {
    /// Match ids run attacker-major, defender-minor: first appearance by
    /// match id is plan order.
    fn in_plan_order(matches: &[MatchSummary]) -> Players {
        let mut in_plan_order: Vec<&MatchSummary> = matches.iter().collect();
        in_plan_order.sort_by_key(|m| m.match_id);
        let mut players = Players {
            attackers: Vec::new(),
            defenders: Vec::new(),
        };
        for m in &in_plan_order {
            if !players.defenders.contains(&m.defender) {
                players.defenders.push(m.defender.clone());
            }
            if !players.attackers.contains(&m.attacker) {
                players.attackers.push(m.attacker.clone());
            }
        }
        players
    }

    fn count(&self) -> usize {
        self.attackers.len() + self.defenders.len()
    }

    fn attacker(&self, name: &str) -> usize {
        self.attackers.iter().position(|a| a == name).expect("listed")
    }

    fn defender(&self, name: &str) -> usize {
        self.attackers.len() + self.defenders.iter().position(|d| d == name).expect("listed")
    }
}

/// Ratings: each match is one game, scored by the attacker's mean reward.
fn ratings(matches: &[MatchSummary], players: &Players) -> Vec<f64> {
    let games: Vec<(usize, usize, f64)> = matches
        .iter()
        .map(|m| {
            (
                players.attacker(&m.attacker),
                players.defender(&m.defender),
                m.mean_reward,
            )
        })
        .collect();
    bradley_terry(players.count(), &games)
}

/// Per attack, the mean of its values over `maps` (an attack missing from
/// some counts over those that have it).
fn mean_by_attack(maps: impl Iterator<Item = BTreeMap<String, f64>>) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for map in maps {
        for (attack, value) in map {
            let entry = sums.entry(attack).or_insert((0.0, 0));
            *entry = (entry.0 + value, entry.1 + 1);
        }
    }
    sums.into_iter().map(|(a, (sum, n))| (a, sum / n as f64)).collect()
}

/// Per defender, ranked by the per-image worst cases `aurc_unseen_union`,
/// then `aurc_seen_union`, with the defenders it cannot be told apart from.
fn defender_summaries(
    matches: &[MatchSummary],
    (seeds, eval_images): (&[u64], usize),
    players: &Players,
    ratings: &[f64],
) -> Vec<DefenderSummary> {
    let of = |name: &str| -> Vec<&MatchSummary> { matches.iter().filter(|m| m.defender == name).collect() };
    let mut defenders: Vec<DefenderSummary> = players
        .defenders
        .iter()
        .map(|name| {
            let ms = of(name);
            DefenderSummary {
                defender: name.to_string(),
                matches: ms.len(),
                aurc_unseen: mean_opt(&ms, |m| m.aurc_unseen),
                aurc_seen: mean_of(&ms, |m| m.aurc_seen),
                aurc_unseen_union: mean_opt(&ms, |m| m.aurc_unseen_union),
                aurc_seen_union: mean_of(&ms, |m| m.aurc_seen_union),
                aurc_zero_day: mean_of(&ms, |m| m.aurc_zero_day),
                final_clean_acc: mean_of(&ms, |m| m.final_clean_acc),
                final_seen_worst: mean_of(&ms, |m| m.final_seen_worst),
                final_unseen_worst: mean_opt(&ms, |m| m.final_unseen_worst),
                final_gap: mean_opt(&ms, |m| m.final_gap),
                final_seen_union_acc: mean_of(&ms, |m| m.final_seen_union_acc),
                final_unseen_union_acc: mean_opt(&ms, |m| m.final_unseen_union_acc),
                final_union_gap: mean_opt(&ms, |m| m.final_union_gap),
                final_stale_inflation: mean_of(&ms, |m| m.final_stale_inflation),
                final_unseen_vs_specialist: mean_by_attack(ms.iter().map(|m| {
                    m.final_unseen_vs_specialist
                        .iter()
                        .map(|(a, p)| (a.clone(), p.diff))
                        .collect()
                })),
                specialist_acc: mean_by_attack(ms.iter().map(|m| m.specialist_acc.clone())),
                ci95: group_intervals(&ms, seeds, eval_images, &ACCURACIES, accuracy),
                aurc_unseen_ci95: ci_over_seeds(&ms, seeds, |m| m.aurc_unseen),
                aurc_seen_ci95: ci_over_seeds(&ms, seeds, |m| Some(m.aurc_seen)),
                aurc_unseen_union_ci95: ci_over_seeds(&ms, seeds, |m| m.aurc_unseen_union),
                aurc_seen_union_ci95: ci_over_seeds(&ms, seeds, |m| Some(m.aurc_seen_union)),
                not_separable_from: Vec::new(),
                rating: ratings[players.defender(name)],
                diverged_matches: ms.iter().filter(|m| m.diverged.is_some()).count(),
            }
        })
        .collect();
    defenders.sort_by(|a, b| {
        let key = |d: &DefenderSummary| (d.aurc_unseen_union.unwrap_or(f64::NEG_INFINITY), d.aurc_seen_union);
        key(b)
            .partial_cmp(&key(a))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.defender.cmp(&b.defender))
    });
    // Separability on the ranking key: the union AURC unseen where there is
    // an unseen panel, the union AURC seen otherwise.
    let values: Vec<_> = defenders
        .iter()
        .map(|d| {
            let ms = of(&d.defender);
            let key_per_seed = match d.aurc_unseen_union {
                Some(_) => per_seed(&ms, seeds, |m| m.aurc_unseen_union),
                None => per_seed(&ms, seeds, |m| Some(m.aurc_seen_union)),
            };
            (d.defender.clone(), key_per_seed)
        })
        .collect();
    for (d, others) in defenders.iter_mut().zip(paired_ties(&values)) {
        d.not_separable_from = others;
    }
    defenders
}

/// Per attacker, ranked by mean reward, with its picks over every match and
/// the attackers it cannot be told apart from.
fn attacker_summaries(
    matches: &[MatchSummary],
    (seeds, eval_images): (&[u64], usize),
    players: &Players,
    ratings: &[f64],
) -> Vec<AttackerSummary> {
    let of = |name: &str| -> Vec<&MatchSummary> { matches.iter().filter(|m| m.attacker == name).collect() };
    let mut attackers: Vec<AttackerSummary> = players
        .attackers
        .iter()
        .map(|name| {
            let ms = of(name);
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
                mean_reward_ci95: ci_over_seeds(&ms, seeds, |m| Some(m.mean_reward)),
                ci95: group_intervals(&ms, seeds, eval_images, &["mean_reward"], accuracy),
                mean_agent_reward: mean_of(&ms, |m| m.mean_agent_reward),
                not_separable_from: Vec::new(),
                rating: ratings[players.attacker(name)],
                picks,
            }
        })
        .collect();
    attackers.sort_by(|a, b| {
        b.mean_reward
            .total_cmp(&a.mean_reward)
            .then_with(|| a.attacker.cmp(&b.attacker))
    });
    let values: Vec<_> = attackers
        .iter()
        .map(|a| {
            let ms = of(&a.attacker);
            (a.attacker.clone(), per_seed(&ms, seeds, |m| Some(m.mean_reward)))
        })
        .collect();
    for (a, others) in attackers.iter_mut().zip(paired_ties(&values)) {
        a.not_separable_from = others;
    }
    attackers
}

/// Mean attacker reward per pairing, over seeds.
fn payoff_matrix(matches: &[MatchSummary], attackers: Vec<String>, defenders: Vec<String>) -> Payoff {
    let reward = attackers
        .iter()
        .map(|a| {
            defenders
                .iter()
                .map(|d| {
                    let ms: Vec<&MatchSummary> = matches
                        .iter()
                        .filter(|m| &m.attacker == a && &m.defender == d)
                        .collect();
                    (!ms.is_empty()).then(|| mean_of(&ms, |m| m.mean_reward))
                })
                .collect()
        })
        .collect();
    Payoff {
        attackers,
        defenders,
        reward,
    }
}

/// The exact equilibrium, when every pairing was played (a game with a
/// missing cell has none).
fn equilibrium(payoff: &Payoff) -> Option<Equilibrium> {
    let reward: Option<Vec<Vec<f64>>> = payoff.reward.iter().map(|row| row.iter().copied().collect()).collect();
    let reward = reward.filter(|r| !r.is_empty() && !r[0].is_empty())?;
    let solved = solve_zero_sum(&reward);
    let weights = |names: &[String], probabilities: &[f64]| {
        names
            .iter()
            .zip(probabilities)
            .map(|(agent, &probability)| Weight {
                agent: agent.clone(),
                probability,
            })
            .collect()
    };
    Some(Equilibrium {
        value: solved.value,
        attackers: weights(&payoff.attackers, &solved.row_strategy),
        defenders: weights(&payoff.defenders, &solved.col_strategy),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row with every required field, from JSON (the fields a test sets).
    fn row(round: usize, seen_worst: f64, reward: f64, diverged: Option<&str>) -> RoundRow {
        serde_json::from_value(serde_json::json!({
            "match_id": 0, "attacker": "a", "defender": "d", "seed": 1, "round": round,
            "attack": "pgd", "zero_day_acc": 1.0 - reward, "reward": reward, "agent_reward": reward, "clean_acc": 0.9,
            "seen_acc": {}, "seen_worst": seen_worst, "seen_union_acc": seen_worst, "unseen_acc": {}, "unseen_worst": null,
            "unseen_mean": null, "gap": null, "stale_acc": 0.5, "stale_inflation": 0.0,
            "wrong_confidence": null, "perturbation": null, "diverged": diverged,
            "violations": 0, "timing": { "attack_s": 0.0, "defense_s": 0.0, "eval_s": 0.0 }
        }))
        .unwrap()
    }

    #[test]
    fn separability_is_a_paired_test_over_seeds() {
        // b trails a by 0.02 on every seed, while the seeds themselves vary
        // widely: the unpaired intervals overlap, the paired test separates.
        let a = vec![0.1, 0.5, 0.9];
        let b: Vec<f64> = a.iter().map(|v| v - 0.02).collect();
        let c = vec![0.5, 0.1, 0.9]; // as good as a on average, not per seed
        let values = [
            ("a".to_string(), Some(a.clone())),
            ("b".to_string(), Some(b.clone())),
            ("c".to_string(), Some(c)),
            ("d".to_string(), None),
        ];
        let ties = paired_ties(&values);
        assert!(
            !ties[0].contains(&"b".to_string()),
            "a and b are separable: {:?}",
            ties[0]
        );
        assert!(ties[0].contains(&"c".to_string()), "a and c are not: {:?}", ties[0]);
        assert!(
            ties[3].is_empty() && !ties[0].contains(&"d".to_string()),
            "no claim without values"
        );
        let (ma, ha) = mean_ci95(&a).unwrap();
        let (mb, hb) = mean_ci95(&b).unwrap();
        assert!(
            !crate::record::stats::separable((ma, ha), (mb, hb)),
            "the unpaired intervals overlap"
        );
    }

    /// One single-round match per cell of `reward` (rows: attackers, columns:
    /// defenders, in plan order), given to `summarize` in reverse order, with
    /// names that sort differently from plan order.
    fn game(attackers: &[&str], defenders: &[&str], reward: &[&[f64]]) -> Summary {
        let mut rows = Vec::new();
        for (a, attacker) in attackers.iter().enumerate() {
            for (d, defender) in defenders.iter().enumerate() {
                let mut r = row(1, 0.5, reward[a][d], None);
                r.match_id = a * defenders.len() + d;
                (r.attacker, r.defender) = (attacker.to_string(), defender.to_string());
                rows.push(r);
            }
        }
        rows.reverse();
        summarize("t", (&[1], 10), 1, rows.len(), &rows, RunTiming::default())
    }

    /// The payoff matrix's rewards, every cell present.
    fn cells(s: &Summary) -> Vec<Vec<f64>> {
        s.payoff
            .reward
            .iter()
            .map(|r| r.iter().map(|c| c.unwrap()).collect())
            .collect()
    }

    fn assert_weights(got: &[Weight], want: &[(&str, f64)]) {
        let got: Vec<(&str, f64)> = got.iter().map(|w| (w.agent.as_str(), w.probability)).collect();
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.0 == w.0 && (g.1 - w.1).abs() < 1e-9, "{got:?} vs {want:?}");
        }
    }

    /// The summary's game wiring: rows are attackers, columns defenders, each
    /// in plan order, and each side's equilibrium probabilities go to its own
    /// agents. Both games are solved by hand (the solver's own tests are in
    /// `game.rs`).
    #[test]
    fn the_payoff_matrix_and_equilibrium_match_games_solved_by_hand() {
        // 2 attackers x 3 defenders, attacker reward (the attacker maximizes):
        //          d-one d-two d-three
        //   zeta    0.9   0.3   1.0
        //   alpha   0.5   0.7   0.8
        // d-three is dominated for the defender by d-one (1.0 >= 0.9 and
        // 0.8 >= 0.5), leaving [[0.9, 0.3], [0.5, 0.7]], which has no saddle
        // point (maximin 0.5 < minimax 0.7). Attacker plays zeta with x:
        // 0.9x + 0.5(1-x) = 0.3x + 0.7(1-x) gives x = 1/4, value 0.6.
        // Defender plays d-one with y: 0.9y + 0.3(1-y) = 0.5y + 0.7(1-y)
        // gives y = 1/2, value 0.6. d-three against x: 0.25 + 0.6 = 0.85 >
        // 0.6, so the defender leaves it out.
        let wide = [[0.9, 0.3, 1.0], [0.5, 0.7, 0.8]];
        let s = game(
            &["zeta", "alpha"],
            &["d-one", "d-two", "d-three"],
            &[&wide[0], &wide[1]],
        );
        assert_eq!(s.payoff.attackers, ["zeta", "alpha"]);
        assert_eq!(s.payoff.defenders, ["d-one", "d-two", "d-three"]);
        assert_eq!(cells(&s), wide);
        let eq = s.equilibrium.unwrap();
        assert!((eq.value - 0.6).abs() < 1e-9, "value {}", eq.value);
        assert_weights(&eq.attackers, &[("zeta", 0.25), ("alpha", 0.75)]);
        assert_weights(&eq.defenders, &[("d-one", 0.5), ("d-two", 0.5), ("d-three", 0.0)]);

        // The transposed game, 3 attackers x 2 defenders: the same game with
        // the roles swapped (reward 1 - wide[d][a]), so each side gets the
        // other's old strategy and the value becomes 1 - 0.6 = 0.4:
        //          e-one e-two
        //   omega   0.1   0.5
        //   beta    0.7   0.3
        //   gamma   0.0   0.2
        // gamma is dominated for the attacker by omega (0.1 >= 0.0, 0.5 >=
        // 0.2). Attacker: 0.1x + 0.7(1-x) = 0.5x + 0.3(1-x) gives x = 1/2 on
        // omega, value 0.4; defender: 0.1y + 0.5(1-y) = 0.7y + 0.3(1-y)
        // gives y = 1/4 on e-one, value 0.4.
        let tall = [[0.1, 0.5], [0.7, 0.3], [0.0, 0.2]];
        let s = game(
            &["omega", "beta", "gamma"],
            &["e-one", "e-two"],
            &[&tall[0], &tall[1], &tall[2]],
        );
        assert_eq!(s.payoff.attackers, ["omega", "beta", "gamma"]);
        assert_eq!(s.payoff.defenders, ["e-one", "e-two"]);
        assert_eq!(cells(&s), tall);
        let eq = s.equilibrium.unwrap();
        assert!((eq.value - 0.4).abs() < 1e-9, "value {}", eq.value);
        assert_weights(&eq.attackers, &[("omega", 0.5), ("beta", 0.5), ("gamma", 0.0)]);
        assert_weights(&eq.defenders, &[("e-one", 0.25), ("e-two", 0.75)]);
    }

    #[test]
    fn a_diverged_match_counts_its_remaining_rounds_as_lost() {
        let rows = [row(1, 0.6, 0.4, None), row(2, 0.0, 0.5, Some("NaN"))];
        let m = match_summary(&rows, 4, 10).unwrap();
        assert_eq!(m.diverged.as_ref().unwrap().round, 2);
        // Rounds 3 and 4 were never played: accuracy 0, reward 1.
        assert!((m.aurc_seen - 0.6 / 4.0).abs() < 1e-12);
        assert!((m.mean_reward - (0.4 + 0.5 + 2.0) / 4.0).abs() < 1e-12);
        // A match that played every round is a plain mean.
        let full = match_summary(&[row(1, 0.6, 0.4, None), row(2, 0.2, 0.6, None)], 2, 10).unwrap();
        assert!((full.aurc_seen - 0.4).abs() < 1e-12 && (full.mean_reward - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_missing_pairing_has_no_equilibrium_and_incomplete_matches_are_left_out() {
        let with = |match_id: usize, attacker: &str, defender: &str, round: usize| {
            let mut r = row(round, 0.5, 0.5, None);
            (r.match_id, r.attacker, r.defender) = (match_id, attacker.into(), defender.into());
            r
        };
        // a-d and b-e complete; b-d cut short after round 1; a-e never played.
        let rows = [
            with(0, "a", "d", 1),
            with(0, "a", "d", 2),
            with(3, "b", "e", 1),
            with(3, "b", "e", 2),
            with(2, "b", "d", 1),
        ];
        let s = summarize("t", (&[1], 10), 2, 4, &rows, RunTiming::default());
        assert_eq!(s.matches.len(), 2, "the cut match is not summarized");
        assert_eq!(s.matches_expected, 4);
        assert_eq!(s.payoff.reward, [[Some(0.5), None], [None, Some(0.5)]]);
        assert!(s.equilibrium.is_none(), "no equilibrium with a missing cell");
        // Every pairing played: an equilibrium.
        let full = summarize("t", (&[1], 10), 2, 1, &rows[..2], RunTiming::default());
        assert!(full.equilibrium.is_some());
    }
}
