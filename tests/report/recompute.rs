//! `summary.json` recomputed from `rounds.jsonl` with a few lines of plain
//! arithmetic, none of the library's summary code: what the report tests
//! compare the stored summary against.

use std::collections::BTreeMap;

use serde_json::Value;

/// Summary and recomputation add the same numbers, possibly in another order.
const EXACT: f64 = 1e-12;
/// Intervals use Student's t, which the library finds numerically.
const INTERVAL: f64 = 1e-9;
/// The equilibrium is solved by floating-point pivoting.
const GAME: f64 = 1e-9;

/// Each `final_*` summary field and the row field it is the last round's value of.
const FINALS: [(&str, &str); 8] = [
    ("final_clean_acc", "clean_acc"),
    ("final_seen_worst", "seen_worst"),
    ("final_unseen_worst", "unseen_worst"),
    ("final_gap", "gap"),
    ("final_seen_union_acc", "seen_union_acc"),
    ("final_unseen_union_acc", "unseen_union_acc"),
    ("final_union_gap", "union_gap"),
    ("final_stale_inflation", "stale_inflation"),
];

/// One match, from its rows.
pub struct Match {
    seed: u64,
    id: u64,
    attacker: String,
    defender: String,
    aurc_unseen: f64,
    aurc_seen: f64,
    aurc_unseen_union: f64,
    aurc_seen_union: f64,
    aurc_zero_day: f64,
    mean_reward: f64,
    mean_agent_reward: f64,
    last: Value,
    picks: BTreeMap<String, u64>,
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.into_iter().collect();
    values.iter().sum::<f64>() / values.len() as f64
}

fn assert_close(got: &Value, want: f64, tolerance: f64, what: &str) {
    let got = num(got);
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: summary.json has {got}, the rows give {want}"
    );
}

/// Every match in (seed, match id) order, each over its rows in round
/// order. Every match must have played all `rounds` rounds.
pub fn matches(rows: &[Value], rounds: usize) -> Vec<Match> {
    let mut by_match: BTreeMap<(u64, u64), Vec<&Value>> = BTreeMap::new();
    for r in rows {
        let key = (r["seed"].as_u64().unwrap(), r["match_id"].as_u64().unwrap());
        by_match.entry(key).or_default().push(r);
    }
    by_match
        .into_iter()
        .map(|((seed, id), mut rows)| {
            rows.sort_by_key(|r| r["round"].as_u64().unwrap());
            assert_eq!(rows.len(), rounds, "match {id} of seed {seed}");
            assert!(rows.iter().all(|r| r["diverged"].is_null()), "match {id} diverged");
            let over_rounds = |key: &str| mean(rows.iter().map(|r| num(&r[key])));
            let mut picks = BTreeMap::new();
            for r in &rows {
                *picks.entry(r["attack"].as_str().unwrap().to_string()).or_insert(0) += 1;
            }
            let last = rows[rows.len() - 1].clone();
            Match {
                seed,
                id,
                attacker: last["attacker"].as_str().unwrap().to_string(),
                defender: last["defender"].as_str().unwrap().to_string(),
                aurc_unseen: over_rounds("unseen_worst"),
                aurc_seen: over_rounds("seen_worst"),
                aurc_unseen_union: over_rounds("unseen_union_acc"),
                aurc_seen_union: over_rounds("seen_union_acc"),
                aurc_zero_day: over_rounds("zero_day_acc"),
                mean_reward: over_rounds("reward"),
                mean_agent_reward: over_rounds("agent_reward"),
                last,
                picks,
            }
        })
        .collect()
}

/// The per-match summaries: AURCs and mean reward as means over rounds,
/// final values from the last round, picks counted.
pub fn check_matches(summary: &Value, matches: &[Match]) {
    let eval_images = summary["intervals"]["eval_images"].as_u64().unwrap() as usize;
    let stored = summary["matches"].as_array().unwrap();
    assert_eq!(stored.len(), matches.len());
    for (s, m) in stored.iter().zip(matches) {
        let what = format!("match {} of seed {}", m.id, m.seed);
        assert_eq!((&s["seed"], &s["match_id"]), (&Value::from(m.seed), &Value::from(m.id)));
        assert_eq!(
            (&s["attacker"], &s["defender"]),
            (&Value::from(m.attacker.as_str()), &Value::from(m.defender.as_str())),
            "{what}"
        );
        for (key, want) in [
            ("aurc_unseen", m.aurc_unseen),
            ("aurc_seen", m.aurc_seen),
            ("aurc_unseen_union", m.aurc_unseen_union),
            ("aurc_seen_union", m.aurc_seen_union),
            ("aurc_zero_day", m.aurc_zero_day),
            ("mean_reward", m.mean_reward),
            ("mean_agent_reward", m.mean_agent_reward),
        ] {
            assert_close(&s[key], want, EXACT, &format!("{what}: {key}"));
            // A match's interval: Wilson's, over the evaluation images.
            if key != "mean_agent_reward" {
                let [low, high] = wilson(want, eval_images);
                assert_close(&s["ci95"][key][0], low, INTERVAL, &format!("{what}: {key} low"));
                assert_close(&s["ci95"][key][1], high, INTERVAL, &format!("{what}: {key} high"));
            }
        }
        for (key, row_key) in FINALS {
            assert_close(&s[key], num(&m.last[row_key]), EXACT, &format!("{what}: {key}"));
        }
        assert_eq!(s["picks"], serde_json::to_value(&m.picks).unwrap(), "{what}: picks");
    }
}

/// The 95% Wilson score interval of an accuracy on `n` images (counted to
/// the nearest image): (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).
fn wilson(acc: f64, n: usize) -> [f64; 2] {
    let z = 1.959963984540054f64;
    let n = n as f64;
    let p = (acc * n).round() / n;
    let centre = p + z * z / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    let scale = 1.0 + z * z / n;
    [
        ((centre - spread) / scale).max(0.0),
        ((centre + spread) / scale).min(1.0),
    ]
}

/// Student's t 97.5% quantile, in closed form for the few degrees of
/// freedom these tests use (1: Cauchy; 2: t = (2u - 1) / sqrt(2u(1 - u))).
fn t975(df: usize) -> f64 {
    let u: f64 = 0.975;
    match df {
        1 => (std::f64::consts::PI * (u - 0.5)).tan(),
        2 => (2.0 * u - 1.0) / (2.0 * u * (1.0 - u)).sqrt(),
        _ => panic!("no closed form here for {df} degrees of freedom"),
    }
}

/// The 95% half-width of the mean of `values`: Student's t times the
/// standard error.
fn half_width(values: &[f64]) -> f64 {
    let (n, m) = (values.len() as f64, mean(values.iter().copied()));
    let variance = values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0);
    t975(values.len() - 1) * (variance / n).sqrt()
}

/// Per seed, the mean of `f` over that seed's `matches`.
fn per_seed(matches: &[&Match], seeds: &[u64], f: impl Fn(&Match) -> f64) -> Vec<f64> {
    seeds
        .iter()
        .map(|&seed| mean(matches.iter().filter(|m| m.seed == seed).map(|m| f(m))))
        .collect()
}

/// The paired rule: two entries are tied when the 95% interval of their
/// per-seed differences contains 0.
fn tied(a: &[f64], b: &[f64]) -> bool {
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    mean(differences.iter().copied()).abs() <= half_width(&differences)
}

/// The names of `side`'s entries, in the summary's (ranked) order.
fn names<'a>(entries: &'a [Value], key: &str) -> Vec<&'a str> {
    entries.iter().map(|e| e[key].as_str().unwrap()).collect()
}

/// The names an entry lists as not separable from it (absent when none).
fn not_separable(entry: &Value) -> Vec<&str> {
    entry["not_separable_from"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// Each side's entries: ranked best first by its key, and each lists
/// exactly the others the paired rule ties it with.
fn check_ranking_and_ties(entries: &[Value], name_key: &str, key: impl Fn(&str) -> Vec<f64>) {
    let names = names(entries, name_key);
    let means: Vec<f64> = names.iter().map(|n| mean(key(n))).collect();
    assert!(
        means.windows(2).all(|w| w[0] >= w[1]),
        "{names:?} not ranked: {means:?}"
    );
    for (entry, name) in entries.iter().zip(&names) {
        let want: Vec<&str> = names
            .iter()
            .copied()
            .filter(|other| other != name && tied(&key(name), &key(other)))
            .collect();
        assert_eq!(not_separable(entry), want, "{name}: not_separable_from");
    }
}

/// Per defender: means over its matches, intervals over seeds, ranking by
/// AURC unseen and ties.
pub fn check_defenders(summary: &Value, matches: &[Match], seeds: &[u64]) {
    let stored = summary["defenders"].as_array().unwrap();
    let of = |name: &str| -> Vec<&Match> { matches.iter().filter(|m| m.defender == name).collect() };
    for d in stored {
        let name = d["defender"].as_str().unwrap();
        let ms = of(name);
        assert_eq!(d["matches"], ms.len(), "{name}");
        for (key, f) in [
            ("aurc_unseen", (|m: &Match| m.aurc_unseen) as fn(&Match) -> f64),
            ("aurc_seen", |m| m.aurc_seen),
            ("aurc_unseen_union", |m| m.aurc_unseen_union),
            ("aurc_seen_union", |m| m.aurc_seen_union),
            ("aurc_zero_day", |m| m.aurc_zero_day),
        ] {
            let value = mean(ms.iter().map(|m| f(m)));
            assert_close(&d[key], value, EXACT, &format!("{name}: {key}"));
            let half = half_width(&per_seed(&ms, seeds, f));
            let ci = format!("{key}_ci95");
            if key != "aurc_zero_day" {
                assert_close(&d[&ci], half, INTERVAL, &format!("{name}: {ci}"));
            }
            // Several seeds: the interval is Student's t over them, clipped to [0, 1].
            let (low, high) = ((value - half).max(0.0), (value + half).min(1.0));
            assert_close(&d["ci95"][key][0], low, INTERVAL, &format!("{name}: ci95.{key} low"));
            assert_close(&d["ci95"][key][1], high, INTERVAL, &format!("{name}: ci95.{key} high"));
        }
        for (key, row_key) in FINALS {
            let want = mean(ms.iter().map(|m| num(&m.last[row_key])));
            assert_close(&d[key], want, EXACT, &format!("{name}: {key}"));
        }
    }
    check_ranking_and_ties(stored, "defender", |name| {
        per_seed(&of(name), seeds, |m| m.aurc_unseen_union)
    });
}

/// Per attacker: mean reward, its interval over seeds, picks over all its
/// matches, ranking by mean reward and ties.
pub fn check_attackers(summary: &Value, matches: &[Match], seeds: &[u64]) {
    let stored = summary["attackers"].as_array().unwrap();
    let of = |name: &str| -> Vec<&Match> { matches.iter().filter(|m| m.attacker == name).collect() };
    for a in stored {
        let name = a["attacker"].as_str().unwrap();
        let ms = of(name);
        assert_eq!(a["matches"], ms.len(), "{name}");
        assert_close(&a["mean_reward"], mean(ms.iter().map(|m| m.mean_reward)), EXACT, name);
        let half = half_width(&per_seed(&ms, seeds, |m| m.mean_reward));
        assert_close(
            &a["mean_reward_ci95"],
            half,
            INTERVAL,
            &format!("{name}: mean_reward_ci95"),
        );
        let mut picks: BTreeMap<&str, u64> = BTreeMap::new();
        for m in &ms {
            for (attack, n) in &m.picks {
                *picks.entry(attack).or_insert(0) += n;
            }
        }
        assert_eq!(a["picks"], serde_json::to_value(&picks).unwrap(), "{name}: picks");
    }
    check_ranking_and_ties(stored, "attacker", |name| per_seed(&of(name), seeds, |m| m.mean_reward));
}

/// Ratings: every attacker meets every defender equally often, so a
/// Bradley-Terry fit rates a player higher exactly when it scored more
/// (attackers score their reward, defenders one minus it).
pub fn check_ratings(summary: &Value, matches: &[Match]) {
    for (side, name_key) in [("attackers", "attacker"), ("defenders", "defender")] {
        let entries = summary[side].as_array().unwrap();
        let scored: Vec<(f64, f64)> = entries
            .iter()
            .map(|e| {
                let name = e[name_key].as_str().unwrap();
                let theirs = matches.iter().filter(|m| match side {
                    "attackers" => m.attacker == name,
                    _ => m.defender == name,
                });
                let reward = mean(theirs.map(|m| m.mean_reward));
                let score = if side == "attackers" { reward } else { 1.0 - reward };
                (score, num(&e["rating"]))
            })
            .collect();
        for (i, a) in scored.iter().enumerate() {
            for b in &scored[i + 1..] {
                if (a.0 - b.0).abs() > 1e-9 {
                    assert_eq!(a.0 > b.0, a.1 > b.1, "{side}: (score, rating) {a:?} vs {b:?}");
                }
            }
        }
    }
}

/// The agents in plan order (first appearance by match id): attackers, defenders.
fn plan_order(matches: &[Match]) -> (Vec<&str>, Vec<&str>) {
    let mut by_id: Vec<&Match> = matches.iter().collect();
    by_id.sort_by_key(|m| m.id);
    let (mut attackers, mut defenders) = (Vec::new(), Vec::new());
    for m in by_id {
        if !attackers.contains(&m.attacker.as_str()) {
            attackers.push(m.attacker.as_str());
        }
        if !defenders.contains(&m.defender.as_str()) {
            defenders.push(m.defender.as_str());
        }
    }
    (attackers, defenders)
}

/// The payoff matrix: rows are attackers, columns defenders, each in plan
/// order; a cell is the mean over that pairing's matches of the mean reward.
/// A transposed matrix fails here.
pub fn check_payoff(summary: &Value, matches: &[Match]) {
    let payoff = &summary["payoff"];
    let (attackers, defenders) = plan_order(matches);
    assert_eq!(payoff["attackers"], serde_json::json!(attackers));
    assert_eq!(payoff["defenders"], serde_json::json!(defenders));
    let rows = payoff["reward"].as_array().unwrap();
    assert_eq!(rows.len(), attackers.len());
    for (row, attacker) in rows.iter().zip(&attackers) {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), defenders.len());
        for (cell, defender) in row.iter().zip(&defenders) {
            let pairing = matches
                .iter()
                .filter(|m| m.attacker == *attacker && m.defender == *defender);
            let want = mean(pairing.map(|m| m.mean_reward));
            assert_close(cell, want, EXACT, &format!("payoff {attacker} x {defender}"));
        }
    }
}

/// `side`'s equilibrium probabilities, matched by name to `names`' order.
fn strategy(summary: &Value, side: &str) -> Vec<f64> {
    let weights = summary["equilibrium"][side].as_array().unwrap();
    let names = summary["payoff"][side].as_array().unwrap();
    assert_eq!(weights.len(), names.len(), "{side}");
    let probabilities: Vec<f64> = names
        .iter()
        .map(|name| num(&weights.iter().find(|w| &w["agent"] == name).unwrap()["probability"]))
        .collect();
    assert!(probabilities.iter().all(|&p| p >= -GAME), "{side}: {probabilities:?}");
    assert!(
        (probabilities.iter().sum::<f64>() - 1.0).abs() < GAME,
        "{side}: {probabilities:?}"
    );
    probabilities
}

/// The stored equilibrium is one: the attackers' strategy x guarantees the
/// value against every defender (min over columns of xM), and the
/// defenders' strategy y holds every attacker to it (max over rows of My).
/// A wrong value, a wrong or swapped strategy, or a transposed matrix fails.
pub fn check_equilibrium(summary: &Value) {
    let m: Vec<Vec<f64>> = summary["payoff"]["reward"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(num).collect())
        .collect();
    let (x, y) = (strategy(summary, "attackers"), strategy(summary, "defenders"));
    let value = num(&summary["equilibrium"]["value"]);
    let attackers_guarantee = (0..y.len())
        .map(|d| (0..x.len()).map(|a| x[a] * m[a][d]).sum::<f64>())
        .fold(f64::INFINITY, f64::min);
    let defenders_guarantee = (0..x.len())
        .map(|a| (0..y.len()).map(|d| m[a][d] * y[d]).sum::<f64>())
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        (attackers_guarantee - value).abs() < GAME && (defenders_guarantee - value).abs() < GAME,
        "value {value}: attackers guarantee {attackers_guarantee}, defenders concede {defenders_guarantee}"
    );
}
