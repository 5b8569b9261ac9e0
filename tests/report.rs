//! The game, several seeds, the generalization matrix, and the reports
//! rebuilt from a run folder's files: end to end.

mod common;

use std::path::Path;

use common::{redqueen, rows, tiny_tournament, without_timing};
use predicates::prelude::*;

const DEFENDERS: &str = "[[defenders]]\nname = \"standard\"\nstrategy = { kind = \"standard\" }\n\n[[defenders]]\nname = \"pgd-at\"\nstrategy = { kind = \"pgd-at\", steps = 10, attack = { eps = 0.1, steps = 3 } }";

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn seeds_give_intervals_ratings_the_game_and_a_self_contained_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(dir.path(), DEFENDERS);
    let (three, single) = (dir.path().join("three"), dir.path().join("single"));
    redqueen()
        .arg("run")
        .arg(&file)
        .args(["--seeds", "3", "--out"])
        .arg(&three)
        .assert()
        .success()
        .stdout(predicate::str::contains("over 3 seeds"))
        .stdout(predicate::str::contains("Nash equilibrium"));
    let summary = json(&three.join("summary.json"));
    assert_eq!(summary["seeds"], serde_json::json!([3, 4, 5]));
    assert_eq!(summary["matches"].as_array().unwrap().len(), 2 * 2 * 3);
    for d in summary["defenders"].as_array().unwrap() {
        assert!(d["aurc_unseen_ci95"].as_f64().unwrap() >= 0.0, "{d}");
        assert!(d["rating"].as_f64().unwrap().is_finite());
    }
    for a in summary["attackers"].as_array().unwrap() {
        assert!(a["mean_reward_ci95"].as_f64().is_some(), "{a}");
    }
    // The payoff matrix is attackers x defenders of mean rewards, and the
    // equilibrium's strategies are distributions over them.
    let payoff = &summary["payoff"];
    assert_eq!(payoff["attackers"], serde_json::json!(["fixed", "bandit"]));
    assert_eq!(payoff["defenders"], serde_json::json!(["standard", "pgd-at"]));
    let reward = |a: usize, d: usize| payoff["reward"][a][d].as_f64().unwrap();
    for side in ["attackers", "defenders"] {
        let total: f64 = summary["equilibrium"][side]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["probability"].as_f64().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{side}: {total}");
    }
    let value = summary["equilibrium"]["value"].as_f64().unwrap();
    let lowest = (0..2)
        .flat_map(|a| (0..2).map(move |d| (a, d)))
        .map(|(a, d)| reward(a, d))
        .fold(f64::INFINITY, f64::min);
    let highest = (0..2)
        .flat_map(|a| (0..2).map(move |d| (a, d)))
        .map(|(a, d)| reward(a, d))
        .fold(0.0, f64::max);
    assert!(lowest <= value && value <= highest, "value {value} outside the matrix");

    // Seeds are replicates: seed 3's matches equal a plain run with seed 3.
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&single)
        .assert()
        .success()
        .stdout(predicate::str::contains("One seed: no confidence intervals"));
    let strip = |mut v: serde_json::Value| {
        v.as_object_mut().unwrap().remove("timing");
        v
    };
    let of_seed_3: Vec<_> = rows(&three).into_iter().filter(|r| r["seed"] == 3).map(strip).collect();
    let plain: Vec<_> = rows(&single).into_iter().map(strip).collect();
    assert_eq!(of_seed_3, plain);

    // Pictures and the page: one robustness plot per defender, the payoff
    // heat map and the gallery, all inline in one page that fetches nothing.
    for plot in ["payoff", "robustness-standard", "robustness-pgd-at", "gallery"] {
        let svg = read(&three.join("plots").join(format!("{plot}.svg")));
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "{plot}");
    }
    let page = read(&three.join("report.html"));
    assert_eq!(page.matches("<figure").count(), 4);
    for forbidden in ["<script", "<link", "src=\"http", "url(http"] {
        assert!(!page.contains(forbidden), "report.html has {forbidden}");
    }
    for text in ["How to read this report", "not separable from", "config.toml", "pgd-at"] {
        assert!(page.contains(text), "report.html lacks {text}");
    }
    let gallery = json(&three.join("gallery.json"));
    assert!(!gallery.as_array().unwrap().is_empty());
}

#[test]
fn report_rebuilds_the_same_tables_plots_and_page_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(dir.path(), DEFENDERS);
    let out = dir.path().join("run");
    let printed = redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let printed = String::from_utf8(printed.get_output().stdout.clone()).unwrap();
    let page = read(&out.join("report.html"));
    let payoff = read(&out.join("plots/payoff.svg"));
    std::fs::remove_file(out.join("report.html")).unwrap();
    std::fs::remove_dir_all(out.join("plots")).unwrap();
    let again = redqueen().arg("report").arg(&out).assert().success();
    let again = String::from_utf8(again.get_output().stdout.clone()).unwrap();
    let tables = printed.split("\nResults in").next().unwrap();
    assert!(again.starts_with(tables), "report prints the run's tables:\n{again}");
    assert_eq!(read(&out.join("report.html")), page);
    assert_eq!(read(&out.join("plots/payoff.svg")), payoff);
}

#[test]
fn compare_puts_defenders_side_by_side_with_the_noise() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(dir.path(), DEFENDERS);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (out, seed) in [(&a, "3"), (&b, "7")] {
        redqueen()
            .arg("run")
            .arg(&file)
            .args(["--seeds", "2", "--seed", seed, "--out"])
            .arg(out)
            .assert()
            .success();
    }
    redqueen()
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .assert()
        .success()
        .stdout(predicate::str::contains("[2] - [1] (pts)"))
        .stdout(predicate::str::contains("pgd-at"))
        .stdout(predicate::str::contains("noise"));
    // One folder is not a comparison; a folder that is no run is bad input.
    redqueen().arg("compare").arg(&a).assert().code(2);
    redqueen()
        .arg("compare")
        .arg(&a)
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a redqueen run folder"));
    redqueen()
        .arg("report")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("manifest.json"));
}

const MATRIX: &str = r#"# A tiny generalization matrix for tests.
name = "tiny-matrix"
seed = 5
eval = 60

[data]
dataset = "synthetic-digits"
train = 600
test = 200

[model]
kind = "mlp"
hidden = [64]

[pretrain]
epochs = 3

[training]
steps = 25

[[attacks]]
family = "pgd"
norm = "linf"
eps = 0.1
steps = 5

[[attacks]]
family = "pgd"
norm = "l2"
eps = 2.0
steps = 5
"#;

#[test]
fn matrix_trains_one_defender_per_attack_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("matrix.toml");
    std::fs::write(&file, MATRIX).unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    for (out, jobs) in [(&one, "1"), (&two, "2")] {
        redqueen()
            .arg("matrix")
            .arg(&file)
            .args(["--jobs", jobs, "--out"])
            .arg(out)
            .assert()
            .success()
            .stdout(predicate::str::contains("Generalization matrix"))
            .stdout(predicate::str::contains("pgd-l2-2"));
    }
    assert_eq!(
        without_timing(&one.join("matrix.json")),
        without_timing(&two.join("matrix.json"))
    );
    let matrix = json(&one.join("matrix.json"));
    assert_eq!(
        matrix["attacks"],
        serde_json::json!(["pgd-linf-0.1-5steps", "pgd-l2-2-5steps"])
    );
    let rows = matrix["rows"].as_array().unwrap();
    let trained: Vec<&str> = rows.iter().map(|r| r["trained_on"].as_str().unwrap()).collect();
    assert_eq!(trained, ["none", "pgd-linf-0.1-5steps", "pgd-l2-2-5steps"]);
    // Training against an attack raises robustness to it over the undefended model.
    let acc = |row: usize, col: usize| rows[row]["robust_acc"][col].as_f64().unwrap();
    assert!(acc(1, 0) > acc(0, 0), "linf training: {} vs {}", acc(1, 0), acc(0, 0));
    assert!(read(&one.join("plots/matrix.svg")).contains("trained on pgd-l2-2-5steps"));
    assert!(read(&one.join("report.html")).contains("Generalization matrix"));
    assert_eq!(json(&one.join("manifest.json"))["status"], "complete");
}

#[test]
fn bad_seeds_and_matrix_files_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(dir.path(), DEFENDERS);
    let text = read(&file).replace("seed = 3", "seeds = [1, 2, 1]");
    std::fs::write(&file, text).unwrap();
    redqueen()
        .arg("check")
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`seeds` lists a seed twice"));
    redqueen()
        .args(["run", "--quick", "--seeds", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--seeds"));
    let matrix = dir.path().join("matrix.toml");
    std::fs::write(&matrix, MATRIX.replace("eval = 60", "eval = 6000")).unwrap();
    redqueen()
        .arg("matrix")
        .arg(&matrix)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`eval`"));
    std::fs::write(&matrix, MATRIX.replace("[training]", "[trainin]")).unwrap();
    redqueen()
        .arg("matrix")
        .arg(&matrix)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("trainin"));
}
