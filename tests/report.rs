//! The game, several seeds, the generalization matrix, and the reports
//! rebuilt from a run folder's files: end to end.

mod common;
#[path = "report/recompute.rs"]
mod recompute;

use std::path::Path;

use common::{redqueen, rows, tiny_tournament, without_timing, write_idx_dataset};
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
    // The manifest lists them too (it held only the first).
    let manifest = json(&three.join("manifest.json"));
    assert_eq!(
        (&manifest["seed"], &manifest["seeds"]),
        (&serde_json::json!(3), &serde_json::json!([3, 4, 5]))
    );
    assert_eq!(summary["payoff"]["attackers"], serde_json::json!(["fixed", "bandit"]));
    assert_eq!(
        summary["payoff"]["defenders"],
        serde_json::json!(["standard", "pgd-at"])
    );
    // Every number of the summary, recomputed here from the rows alone.
    let matches = recompute::matches(&rows(&three), 2);
    assert_eq!(matches.len(), 2 * 2 * 3);
    recompute::check_matches(&summary, &matches);
    recompute::check_defenders(&summary, &matches, &[3, 4, 5]);
    recompute::check_attackers(&summary, &matches, &[3, 4, 5]);
    recompute::check_ratings(&summary, &matches);
    recompute::check_payoff(&summary, &matches);
    recompute::check_equilibrium(&summary);

    // Seeds are replicates: seed 3's matches equal a plain run with seed 3.
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&single)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "95% Wilson intervals over 60 evaluation images",
        ));
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
    // The page states its setup first: data, model, budgets, repertoires,
    // the unseen panel and the weight of one evaluation image.
    let setup = &page[page.find("<h2>Setup</h2>").expect("a setup section")..page.find("<h2>Defenders</h2>").unwrap()];
    for text in [
        "synthetic-digits (1x28x28 images): 600 training images, 200 test images",
        "mlp, hidden layers [64]",
        "linf 0.1, l2 2",
        "attacker bandit",
        "pgd-linf-0.1-5steps, fgsm-linf-0.1",
        "unseen panel",
        "pgd-l2-2-5steps",
        "60 (one image is 1.67 points of an accuracy)",
    ] {
        assert!(setup.contains(text), "the setup lacks {text}: {setup}");
    }
    // The gallery's examples are real images within the rules' budgets
    // (linf 0.1, l2 2.0), stored as bytes: one byte of rounding per pixel.
    let gallery = json(&three.join("gallery.json"));
    assert!(!gallery.as_array().unwrap().is_empty());
    for item in gallery.as_array().unwrap() {
        let pixels = |key: &str| -> Vec<f64> {
            item[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_f64().unwrap())
                .collect()
        };
        let (clean, adversarial) = (pixels("clean"), pixels("adversarial"));
        let size = item["rows"].as_u64().unwrap() * item["cols"].as_u64().unwrap();
        assert_eq!(
            (clean.len() as u64, adversarial.len() as u64),
            (size, size),
            "{}",
            item["attack"]
        );
        let diff: Vec<f64> = clean.iter().zip(&adversarial).map(|(c, a)| (a - c) / 255.0).collect();
        let linf = diff.iter().fold(0.0_f64, |m, d| m.max(d.abs()));
        let l2 = diff.iter().map(|d| d * d).sum::<f64>().sqrt();
        let label = item["attack"].as_str().unwrap();
        let within = if label.contains("-l2-") {
            l2 <= 2.0 + (size as f64).sqrt() / 255.0
        } else {
            linf <= 0.1 + 1.0 / 255.0
        };
        assert!(within, "{label}: linf {linf}, l2 {l2}");
        let conf = item["adv_conf"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&conf), "{label}: confidence {conf}");
    }
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
    let printed = redqueen()
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .assert()
        .success()
        .stdout(predicate::str::contains("[2] - [1] (pts)"));
    let printed = String::from_utf8(printed.get_output().stdout.clone()).unwrap();
    // Each defender's difference and verdict, from the two summaries: AURC
    // unseen in points, beyond noise when the two intervals are disjoint.
    let (first, second) = (json(&a.join("summary.json")), json(&b.join("summary.json")));
    for name in ["standard", "pgd-at"] {
        let of = |s: &serde_json::Value| {
            let d = s["defenders"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["defender"] == name)
                .unwrap();
            (
                d["aurc_unseen_union"].as_f64().unwrap(),
                d["aurc_unseen_union_ci95"].as_f64().unwrap(),
            )
        };
        let ((x, hx), (y, hy)) = (of(&first), of(&second));
        let verdict = if x + hx < y - hy || y + hy < x - hx {
            "beyond noise"
        } else {
            "within noise"
        };
        let cell = format!("{:+.1} ({verdict})", 100.0 * (y - x));
        let line = printed.lines().find(|l| l.contains(name)).unwrap();
        assert!(line.contains(&cell), "{name}: expected {cell} in\n{printed}");
    }
    // Other seeds are what compare weighs; another configuration is noted.
    assert!(!printed.contains("another configuration"), "{printed}");
    let longer = dir.path().join("longer.toml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("rounds = 2", "rounds = 3");
    std::fs::write(&longer, text).unwrap();
    let other = dir.path().join("other");
    redqueen()
        .arg("run")
        .arg(&longer)
        .arg("--out")
        .arg(&other)
        .assert()
        .success();
    redqueen()
        .arg("compare")
        .arg(&a)
        .arg(&other)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "[2] ran another configuration than [1], seeds aside",
        ));
    // A run stopped before its first match has nothing to rank: beside a
    // finished run it shows dashes, not an error about mixed metrics.
    let stopped = dir.path().join("stopped");
    std::fs::create_dir(&stopped).unwrap();
    std::fs::copy(a.join("config.toml"), stopped.join("config.toml")).unwrap();
    let manifest = std::fs::read_to_string(a.join("manifest.json")).unwrap();
    std::fs::write(
        stopped.join("manifest.json"),
        manifest.replace("\"complete\"", "\"partial\""),
    )
    .unwrap();
    std::fs::write(stopped.join("rounds.jsonl"), "").unwrap();
    let mut empty = first.clone();
    for key in ["matches", "defenders", "attackers"] {
        empty[key] = serde_json::json!([]);
    }
    empty["payoff"] = serde_json::json!({ "attackers": [], "defenders": [], "reward": [] });
    empty["equilibrium"] = serde_json::Value::Null;
    std::fs::write(stopped.join("summary.json"), empty.to_string()).unwrap();
    redqueen()
        .arg("compare")
        .arg(&a)
        .arg(&stopped)
        .assert()
        .success()
        .stdout(predicate::str::contains("partial: 0 of"));
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

/// A matrix has no gallery, so it keeps its images' shape for the report:
/// an IDX folder's 30x30 images are named on the page, as a tournament's
/// are from its gallery.
#[test]
fn a_matrix_on_idx_images_names_their_shape() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dataset(&dir.path().join("data"), 600, 200, 30, 30);
    let file = dir.path().join("matrix.toml");
    let text = MATRIX.replace("dataset = \"synthetic-digits\"", "dataset = \"idx\"\npath = \"data\"");
    assert_ne!(text, MATRIX);
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("out");
    redqueen()
        .current_dir(dir.path())
        .arg("matrix")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(
        json(&out.join("matrix.json"))["image_shape"],
        serde_json::json!({"channels": 1, "rows": 30, "cols": 30})
    );
    let page = read(&out.join("report.html"));
    assert!(
        page.contains("idx (1x30x30 images)"),
        "{}",
        &page[..page.len().min(2000)]
    );
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

/// Every run table the README or `docs/` prints is `redqueen report` of a run
/// stored under `results/reference/`, verbatim: a documented number cannot
/// drift from the files it cites.
#[test]
fn the_readme_prints_the_stored_reference_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = root.join("docs");
    let mut pages: Vec<std::path::PathBuf> = std::fs::read_dir(&docs)
        .unwrap_or_else(|e| panic!("{}: {e}", docs.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    let readme = std::iter::once(root.join("README.md"))
        .chain(pages)
        .map(|p| read(&p))
        .collect::<Vec<_>>()
        .join("\n");
    let reference = root.join("results/reference");
    let runs = [
        "default",
        "default-5-seeds",
        "masking",
        "masking-mnist",
        "mnist",
        "defenses",
        "matrix-default",
        "matrix-mnist",
    ];
    for run in runs {
        let dir = reference.join(run);
        let tables = redqueen::report::tables(&redqueen::report::load_run(&dir).unwrap());
        assert!(
            readme.contains(tables.trim_end()),
            "the README or docs/ does not print `redqueen report results/reference/{run}` verbatim:\n{tables}"
        );
    }
    let attacks = read(&reference.join("attacks/table.md"));
    assert!(
        readme.contains(attacks.trim_end()),
        "the attacks table in the README or docs/ is not results/reference/attacks/table.md"
    );
}

/// The gallery names classes where the data says what they are: an `idx`
/// folder with `classes = [...]` (Fashion-MNIST's are built in).
#[test]
fn the_gallery_names_the_classes() {
    let dir = tempfile::tempdir().unwrap();
    common::write_idx_dataset(&dir.path().join("data"), 600, 200, 28, 28);
    let file = tiny_tournament(
        dir.path(),
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
    );
    let names: Vec<String> = (0..10)
        .map(|k| {
            format!(
                "class-{}",
                ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][k]
            )
        })
        .collect();
    let text = read(&file).replacen(
        "dataset = \"synthetic-digits\"",
        &format!("dataset = \"idx\"\npath = \"data\"\nclasses = {names:?}"),
        1,
    );
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("out");
    redqueen()
        .current_dir(dir.path())
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let gallery = read(&out.join("plots/gallery.svg"));
    assert!(gallery.contains("true class-"), "the gallery does not name the classes");
    assert!(!gallery.contains("true 0,") && !gallery.contains("true 1,"));
}
