//! The arena's claims, on real (small) trained models.

mod common;

use common::{redqueen, rows, saved_models, tiny_tournament};

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
    // The reference results in the repository are this run's: never stale.
    let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/reference/default");
    for file in ["rounds.jsonl", "summary.json", "gallery.json"] {
        assert_eq!(
            common::without_timing(&out.join(file)),
            common::without_timing(&reference.join(file)),
            "results/reference/default/{file} is out of date: run results/regenerate"
        );
    }
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
        // It learns what it is hit with (per image: robust to every attack
        // seen so far)...
        assert!(
            f(last, "seen_union_acc") > f(first, "seen_union_acc") + 0.15,
            "{attacker}: seen_union_acc does not climb"
        );
        // ...and that does not carry over to what it has not seen.
        assert!(
            f(last, "unseen_union_acc") < f(last, "seen_union_acc") - 0.15,
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
    // The gap is beyond the evaluation images' noise for both retrained
    // defenders: their 95% intervals (Wilson, 200 images) do not overlap.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for d in summary["defenders"].as_array().unwrap() {
        if d["defender"] == "standard" {
            continue;
        }
        let interval = |field: &str| {
            (
                d["ci95"][field][0].as_f64().unwrap(),
                d["ci95"][field][1].as_f64().unwrap(),
            )
        };
        let (seen, unseen) = (interval("final_seen_union_acc"), interval("final_unseen_union_acc"));
        assert!(
            unseen.1 < seen.0,
            "{}: seen {seen:?} and unseen {unseen:?} overlap",
            d["defender"]
        );
    }
}

/// Squeezing masks gradients: plain PGD fails against it, and the adaptive
/// attacker notices within the first rounds, switches to BPDA, says why in
/// the row, and does much better.
#[test]
fn the_adaptive_attacker_sees_through_gradient_masking() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("masking");
    let file = common::strategies().join("tournaments/masking.toml");
    redqueen()
        .arg("run")
        .arg(&file)
        .args(["--quick", "--out"])
        .arg(&out)
        .assert()
        .success();
    let rows = rows(&out);
    let squeeze: Vec<_> = rows.iter().filter(|r| r["defender"] == "squeeze").collect();
    let zero_day = |attacker: &str, round: u64| {
        squeeze
            .iter()
            .find(|r| r["attacker"] == attacker && r["round"] == round)
            .map(|r| r["zero_day_acc"].as_f64().unwrap())
            .unwrap()
    };
    let switch = squeeze
        .iter()
        .find(|r| r["attacker"] == "adaptive-linf" && r["attack"].as_str().unwrap().starts_with("bpda-"))
        .expect("the adaptive attacker never switched to BPDA");
    let round = switch["round"].as_u64().unwrap();
    assert!(round <= 2, "it took until round {round}");
    assert!(
        switch["agent_note"].as_str().unwrap().contains("gradient masking"),
        "{switch}"
    );
    assert!(
        zero_day("adaptive-linf", round) + 0.3 < zero_day("pgd-linf", round),
        "BPDA {} vs plain PGD {}",
        zero_day("adaptive-linf", round),
        zero_day("pgd-linf", round)
    );
    // The unseen panel attacks the squeezer through BPDA too: it is not
    // fooled into reporting the squeezer as robust.
    let unseen = squeeze[0]["unseen_worst"].as_f64().unwrap();
    assert!(unseen < 0.5, "unseen panel against squeeze: {unseen}");

    // Distillation (in place from round 2): plain cross-entropy PGD leaves
    // most images standing in every round; the adaptive attacker's best
    // round leaves far fewer, and it says why it switched.
    let distilled: Vec<_> = rows.iter().filter(|r| r["defender"] == "distillation").collect();
    let best = |attacker: &str| {
        distilled
            .iter()
            .filter(|r| r["attacker"] == attacker && r["round"].as_u64().unwrap() >= 2)
            .map(|r| r["zero_day_acc"].as_f64().unwrap())
            .fold(1.0, f64::min)
    };
    assert!(
        best("pgd-linf") > 0.5,
        "plain PGD against distillation: {}",
        best("pgd-linf")
    );
    assert!(
        best("adaptive-linf") + 0.3 < best("pgd-linf"),
        "adaptive {} vs plain PGD {} against distillation",
        best("adaptive-linf"),
        best("pgd-linf")
    );
    // It gets there by diagnosis: within two rounds of distillation being
    // in place, the margin loss, with the saturated softmax named.
    let margin = distilled
        .iter()
        .find(|r| r["attacker"] == "adaptive-linf" && r["attack"].as_str().unwrap().ends_with("-cw"))
        .expect("the adaptive attacker never tried the margin loss against distillation");
    assert!(margin["round"].as_u64().unwrap() <= 3, "{margin}");
    assert!(
        margin["agent_note"].as_str().unwrap().contains("saturated softmax"),
        "{margin}"
    );
}

/// Agents learn only from the attacker slice: the same tournament judged on
/// two different evaluation subsets makes every agent pick the same attack
/// in every round, for the same reward, and trains the same defenders.
#[test]
fn picks_do_not_depend_on_the_evaluation_images() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(
        dir.path(),
        r#"[[attackers]]
name = "adaptive"
policy = { kind = "adaptive" }
repertoire = [
  { family = "pgd", eps = 0.1, steps = 5 },
  { family = "pgd", eps = 0.1, steps = 5, loss = "cw" },
  { family = "bpda", attack = { family = "pgd", eps = 0.1, steps = 5 } },
]

[[defenders]]
name = "adversarial"
strategy = { kind = "adversarial" }

[[defenders]]
name = "squeeze"
strategy = { kind = "squeeze" }

[[defenders]]
name = "smoothing"
strategy = { kind = "smoothing" }"#,
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("rounds = 2", "rounds = 4");
    let run = |eval: usize| {
        let changed = dir.path().join(format!("eval-{eval}.toml"));
        std::fs::write(&changed, text.replace("eval = 60", &format!("eval = {eval}"))).unwrap();
        let out = dir.path().join(format!("out-{eval}"));
        redqueen()
            .arg("run")
            .arg(&changed)
            .args(["--save-models", "--out"])
            .arg(&out)
            .assert()
            .success();
        out
    };
    let (out_a, out_b) = (run(60), run(100));
    // Every match's final defender, byte for byte.
    assert!(!saved_models(&out_a).is_empty());
    assert!(
        saved_models(&out_a) == saved_models(&out_b),
        "the defenders trained differently under another evaluation subset"
    );
    let (a, b) = (rows(&out_a), rows(&out_b));
    assert_eq!(a.len(), b.len());
    let key = |r: &serde_json::Value| (r["match_id"].clone(), r["round"].clone());
    let mut evaluated_differently = false;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(key(x), key(y));
        for field in ["attack", "agent_note", "agent_reward", "defense_note"] {
            assert_eq!(x[field], y[field], "{field} differs in {:?}: {x} vs {y}", key(x));
        }
        evaluated_differently |= x["zero_day_acc"] != y["zero_day_acc"];
    }
    assert!(evaluated_differently, "the two evaluation subsets measured the same");
    let picks = |rows: &[serde_json::Value]| {
        rows.iter()
            .map(|r| r["attack"].as_str().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(picks(&a).len() >= 3, "the agents never moved: {:?}", picks(&a));
}
