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
