//! `[specialists]`: the unseen panel measured against models trained for
//! it, end to end, and their reuse from the model cache.

mod common;

use common::{redqueen, rows, tiny_tournament, without_timing};

#[test]
fn a_specialist_beats_the_undefended_model_under_its_attack_and_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(
        dir.path(),
        "[[defenders]]\nname = \"standard\"\nstrategy = { kind = \"standard\" }",
    );
    let text = std::fs::read_to_string(&file).unwrap() + "\n[specialists]\nsteps = 150\n";
    std::fs::write(&file, text).unwrap();
    let cache = dir.path().join("cache");
    let run = |out: &str| {
        let out = dir.path().join(out);
        let output = redqueen()
            .env("REDQUEEN_CACHE", &cache)
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        (out, stdout)
    };
    let (first, stdout) = run("first");
    let label = "pgd-l2-2-5steps";
    for row in rows(&first) {
        let specialist = row["specialist_acc"][label].as_f64().unwrap_or_else(|| panic!("{row}"));
        // The standard defender never trains: its unseen accuracy is the
        // pretrained model's, which PGD-l2 training must improve on.
        let unseen = row["unseen_acc"][label].as_f64().unwrap();
        assert!(
            specialist > unseen + 0.05,
            "specialist {specialist}, undefended {unseen}"
        );
        let paired = &row["unseen_vs_specialist"][label];
        assert!((paired["diff"].as_f64().unwrap() - (unseen - specialist)).abs() < 1e-9);
        assert!(paired["ci95"].as_f64().unwrap() > 0.0);
    }
    assert!(stdout.contains("against the specialists"), "{stdout}");
    let report = std::fs::read_to_string(first.join("report.html")).unwrap();
    assert!(report.contains("The unseen panel against the specialists"));
    // Two entries: the pretrained model and the specialist; a second run
    // loads both and plays the same rounds.
    assert_eq!(std::fs::read_dir(cache.join("models")).unwrap().count(), 2);
    let (second, _) = run("second");
    assert_eq!(
        without_timing(&first.join("rounds.jsonl")),
        without_timing(&second.join("rounds.jsonl"))
    );
}

#[test]
fn specialists_without_an_unseen_panel_are_refused_naming_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(
        dir.path(),
        "[[defenders]]\nname = \"standard\"\nstrategy = { kind = \"standard\" }",
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let without_unseen = text[..text.find("[[unseen]]").unwrap()].to_string() + "[specialists]\n";
    std::fs::write(&file, without_unseen).unwrap();
    let output = redqueen().arg("check").arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[specialists]") && stderr.contains("unseen"),
        "{stderr}"
    );
    let bad = text + "\n[specialists]\nsteps = 0\n";
    std::fs::write(&file, bad).unwrap();
    let output = redqueen().arg("check").arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("`steps`"));
}

/// Sharded like matches: a part trains the pretrained model and the
/// specialists of the seeds its matches cover (and part 1 the first seed's,
/// for the gallery), not every seed's.
#[test]
fn a_part_trains_the_specialists_of_its_own_seeds_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(
        dir.path(),
        "[[defenders]]\nname = \"standard\"\nstrategy = { kind = \"standard\" }",
    );
    let text = std::fs::read_to_string(&file).unwrap() + "\n[specialists]\nsteps = 20\n";
    std::fs::write(&file, text).unwrap();
    let mut trained_per_part = Vec::new();
    for k in 1..=3 {
        let (cache, out) = (
            dir.path().join(format!("cache{k}")),
            dir.path().join(format!("part{k}")),
        );
        let output = redqueen()
            .env("REDQUEEN_CACHE", &cache)
            .arg("run")
            .arg(&file)
            .args(["--seeds", "3", "--shard", &format!("{k}/3"), "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let mut seeds: std::collections::BTreeSet<u64> =
            rows(&out).iter().map(|r| r["seed"].as_u64().unwrap()).collect();
        if k == 1 {
            seeds.insert(3); // the first seed: the gallery's
        }
        // Per seed: its pretrained model and its one specialist.
        let entries = std::fs::read_dir(cache.join("models")).unwrap().count();
        assert_eq!(entries, 2 * seeds.len(), "part {k} played seeds {seeds:?}");
        trained_per_part.push(seeds.len());
    }
    // Three seeds on three parts: a seed each, so each seed's models are
    // trained once in all.
    assert_eq!(trained_per_part, [1, 1, 1]);
}
