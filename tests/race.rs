//! The arena's claims, on real (small) trained models.

mod common;

use common::{redqueen, tiny_tournament};

fn rows(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("rounds.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pgd_at_is_more_robust_than_standard() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(
        dir.path(),
        "[[defenders]]\nname = \"standard\"\nstrategy = { kind = \"standard\" }\n\n[[defenders]]\nname = \"pgd-at\"\n[defenders.strategy]\nkind = \"pgd-at\"\nsteps = 60\nattack = { eps = 0.1, steps = 5 }",
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("rounds = 2", "rounds = 3");
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("out");
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let last = |defender: &str| {
        rows(&out)
            .into_iter()
            .filter(|r| r["defender"] == defender && r["attacker"] == "fixed" && r["round"] == 3)
            .map(|r| r["seen_acc"]["pgd-linf-0.1-5steps"].as_f64().unwrap())
            .next()
            .unwrap()
    };
    let (standard, pgd_at) = (last("standard"), last("pgd-at"));
    assert!(
        pgd_at > standard + 0.15,
        "PGD robust accuracy: pgd-at {pgd_at} vs standard {standard}"
    );
}

/// The claims the README makes about the built-in default tournament, on
/// the full (not `--quick`) run.
#[test]
fn the_default_tournament_shows_the_race() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("default");
    redqueen().args(["run", "--out"]).arg(&out).assert().success();
    let rows = rows(&out);
    let of =
        |defender: &str| -> Vec<&serde_json::Value> { rows.iter().filter(|r| r["defender"] == defender).collect() };
    let f = |r: &serde_json::Value, key: &str| r[key].as_f64().unwrap();

    // `standard` is broken in every round, by every attacker.
    for r in of("standard") {
        assert!(
            f(r, "zero_day_acc") < 0.15,
            "standard zero-day {}",
            f(r, "zero_day_acc")
        );
    }
    for attacker in ["pgd-linf", "bandit-linf"] {
        let adversarial: Vec<_> = of("adversarial")
            .into_iter()
            .filter(|r| r["attacker"] == attacker)
            .collect();
        let (first, last) = (adversarial[0], adversarial[adversarial.len() - 1]);
        // It learns what it is hit with...
        assert!(
            f(last, "seen_worst") > f(first, "seen_worst") + 0.15,
            "{attacker}: seen_worst does not climb"
        );
        // ...and that does not carry over to what it has not seen.
        assert!(
            f(last, "unseen_worst") < f(last, "seen_worst") - 0.15,
            "{attacker}: no generalization gap"
        );
        // A replay of stale examples flatters every retrained defender, in
        // every round.
        for defender in ["adversarial", "pgd-at"] {
            for r in of(defender).into_iter().filter(|r| r["attacker"] == attacker) {
                assert!(
                    f(r, "stale_acc") > f(r, "seen_worst"),
                    "{defender}, round {}: stale does not exceed seen",
                    r["round"]
                );
            }
        }
    }
}
