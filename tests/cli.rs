//! The command line, end to end.

mod common;

use common::{redqueen, rows, strategies, tiny_tournament, tiny_tournament_with, without_timing};
use predicates::prelude::*;

#[test]
fn run_quick_writes_every_file_and_prints_the_leaderboards() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    redqueen()
        .args(["run", "--quick", "--jobs", "2", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("Defenders, ranked by"))
        .stdout(predicate::str::contains("pgd-at"))
        .stdout(predicate::str::contains("Attackers, ranked by mean reward"));
    for file in ["config.toml", "manifest.json", "rounds.jsonl", "summary.json"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["schema_version"], 1);
    // 2 attackers x 3 defenders x 3 quick rounds.
    let rows = rows(&out);
    assert_eq!(rows.len(), 18);
    let row = &rows[0];
    for key in [
        "zero_day_acc",
        "clean_acc",
        "seen_acc",
        "seen_worst",
        "unseen_acc",
        "unseen_worst",
        "unseen_mean",
        "gap",
        "stale_acc",
        "stale_inflation",
        "wrong_confidence",
        "timing",
    ] {
        assert!(row.get(key).is_some(), "rows lack {key}");
    }
    // The resolved config reruns as it is.
    redqueen().arg("check").arg(out.join("config.toml")).assert().success();
}

#[test]
fn results_do_not_depend_on_jobs_or_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    // One match at a time on two threads, then two at a time on one each.
    for (out, jobs, threads) in [(&one, "1", "2"), (&two, "2", "1")] {
        redqueen()
            .args(["run", "--quick", "--jobs", jobs, "--threads", threads, "--out"])
            .arg(out)
            .assert()
            .success();
    }
    for file in ["rounds.jsonl", "summary.json"] {
        assert_eq!(
            without_timing(&one.join(file)),
            without_timing(&two.join(file)),
            "{file} differs between --jobs 1 and 2"
        );
    }
}

#[test]
fn rerunning_the_resolved_config_reproduces_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(dir.path(), "[[defenders]]\nuse = \"defenders/adversarial.toml\"");
    // `use` needs the strategies folder: run from a copy of the file beside it.
    let tournaments = dir.path().join("strategies/tournaments");
    std::fs::create_dir_all(&tournaments).unwrap();
    copy_dir(
        &strategies().join("defenders"),
        &dir.path().join("strategies/defenders"),
    );
    let file_in_place = tournaments.join("tiny.toml");
    std::fs::rename(&file, &file_in_place).unwrap();
    let first = dir.path().join("first");
    redqueen()
        .arg("run")
        .arg(&file_in_place)
        .arg("--out")
        .arg(&first)
        .assert()
        .success();
    let second = dir.path().join("second");
    redqueen()
        .arg("run")
        .arg(first.join("config.toml"))
        .arg("--out")
        .arg(&second)
        .assert()
        .success();
    for f in ["rounds.jsonl", "summary.json"] {
        assert_eq!(without_timing(&first.join(f)), without_timing(&second.join(f)));
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn check_accepts_every_shipped_tournament_and_matrix() {
    let tournaments = std::fs::read_dir(strategies().join("tournaments")).unwrap();
    let matrices = std::fs::read_dir(strategies().join("matrix")).unwrap();
    // `check` loads the data as `run` would, so files on real data need it.
    let data = common::real_data();
    for entry in tournaments.chain(matrices) {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut check = redqueen();
        match &data {
            Some(dir) => {
                check.env("REDQUEEN_DATA", dir);
            }
            None if text.contains("dataset = \"mnist\"") || text.contains("dataset = \"fashion-mnist\"") => continue,
            None => {}
        }
        check
            .arg("check")
            .arg(&path)
            .assert()
            .success()
            .stdout(predicate::str::contains("ok"))
            .stdout(predicate::str::contains("data: "));
    }
}

#[test]
fn check_names_the_broken_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(
        dir.path(),
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let cases = [
        (text.replace("rounds = 2", "rounds = 2\nrouns = 4"), "rouns"),
        (text.replace("rounds = 2", "rounds = 0"), "`rounds`"),
        (text.replace("rounds = 2", "rounds = \"two\""), "rounds"),
        (text.replace("kind = \"standard\"", "kind = \"magic\""), "magic"),
        (
            text.replace(
                "eps = 0.1, steps = 5 }]\n\n[[attackers]]",
                "eps = 0.5, steps = 5 }]\n\n[[attackers]]",
            ),
            "rules.linf",
        ),
        (text.replace("eval = 60", "eval = 6000"), "sizes.eval"),
        (text.replace("name = \"tiny\"", "name = [1"), "line"),
    ];
    for (broken, expected) in cases {
        std::fs::write(&file, &broken).unwrap();
        redqueen()
            .arg("check")
            .arg(&file)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(expected))
            .stderr(predicate::str::contains("tiny.toml"))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn a_missing_file_and_bad_flags_exit_2() {
    redqueen()
        .args(["check", "no/such/file.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no/such/file.toml"));
    redqueen()
        .args(["run", "--jobs", "0", "--quick"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--jobs"));
    redqueen().args(["run", "--bogus"]).assert().code(2);
}

#[test]
fn an_existing_output_folder_is_refused_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keep.txt");
    std::fs::write(&keep, "precious").unwrap();
    let file = tiny_tournament(
        dir.path(),
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
    );
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious");
    assert!(!dir.path().join("rounds.jsonl").exists());
}

#[test]
fn a_missing_dataset_exits_2_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(
        dir.path(),
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
    );
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "dataset = \"synthetic-digits\"",
        "dataset = \"idx\"\npath = \"no-such-folder\"",
    );
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("out");
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no-such-folder"));
    assert!(
        !out.exists(),
        "a results folder was created for a run that never started"
    );
}

#[test]
fn list_names_everything_registered() {
    let assert = redqueen().arg("list").assert().success();
    let out = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for attack in redqueen::attack::ATTACKS {
        assert!(out.contains(attack.name), "list lacks {}", attack.name);
    }
    let registered = redqueen::agent::PolicyConfig::names().chain(redqueen::defense::DefenseConfig::names());
    for name in registered {
        assert!(out.contains(name), "list lacks {name}");
    }
    let tables: [&[(&str, &str)]; 2] = [redqueen::model::MODELS, redqueen::config::DATASETS];
    for table in tables {
        for (name, _) in table {
            assert!(out.contains(name), "list lacks {name}");
        }
    }
    for (path, _) in redqueen::config::builtin::STRATEGIES {
        assert!(out.contains(path), "list lacks {path}");
    }
}

#[test]
fn bench_writes_the_keys_compare_reads() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    redqueen()
        .args(["bench", "--quick", "--threads", "1", "--json"])
        .arg(&json)
        .assert()
        .success()
        .stdout(predicate::str::contains("mlp_pgd_step").and(predicate::str::contains("FMA peak")));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // Every item of shared/bench/torch_baseline.py (but torchattacks'), and ours.
    for key in [
        "mlp_train_step",
        "mlp_pgd_step",
        "cnn_train_step",
        "cnn_pgd_step",
        "cnn_small_train_step",
        "cnn_small_pgd_step",
        "mlp_advtrain_epoch",
        "mlp_hand_pgd10_attack",
        "cnn_small_madry_step_b64",
        "tournament_default",
    ] {
        assert!(report[key]["median_s"].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(report["mlp_hand_pgd10_attack"]["per_step_ms"].as_f64().unwrap() > 0.0);
    let family = report["kernel_family"].as_str().unwrap();
    assert!(["avx512", "avx2-fma", "scalar"].contains(&family), "{family}");
    // Which build this is (the tests run the default one, with AVX-512).
    assert_eq!(report["avx512_build"].as_bool(), Some(cfg!(feature = "avx512")));
    if family != "scalar" {
        assert!(report["fma_peak"]["fma256_gflops"].as_f64().unwrap() > 0.0);
        // A share, not a timing: its size is for benchmarks to judge.
        let share = report["cnn_small_pgd_step"]["peak_percent"].as_f64().unwrap();
        assert!(share.is_finite() && share > 0.0, "{share}% of the FMA peak");
    }
    redqueen().args(["bench", "--threads", "0"]).assert().code(2);
    // One item alone, as for profiling; a misspelt item is refused by name.
    let one = dir.path().join("one.json");
    redqueen()
        .args(["bench", "--quick", "--threads", "1", "--only", "mlp_pgd_step", "--json"])
        .arg(&one)
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&one).unwrap()).unwrap();
    assert!(report["mlp_pgd_step"]["median_s"].as_f64().unwrap() > 0.0);
    assert!(report.get("mlp_train_step").is_none() && report.get("tournament_default").is_none());
    // --json writes through a link (into a file, or into a device such as
    // /dev/null), never replacing the link or what it leads to.
    let (to_file, to_device, target) = (
        dir.path().join("to-file"),
        dir.path().join("to-null"),
        dir.path().join("t.json"),
    );
    std::fs::write(&target, "old").unwrap();
    std::os::unix::fs::symlink(&target, &to_file).unwrap();
    std::os::unix::fs::symlink("/dev/null", &to_device).unwrap();
    for link in [&to_file, &to_device] {
        redqueen()
            .args(["bench", "--quick", "--threads", "1", "--only", "mlp_pgd_step", "--json"])
            .arg(link)
            .assert()
            .success();
        assert!(
            std::fs::symlink_metadata(link).unwrap().file_type().is_symlink(),
            "{}",
            link.display()
        );
    }
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert!(written["mlp_pgd_step"]["median_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        std::fs::read_link(&to_device).unwrap(),
        std::path::Path::new("/dev/null")
    );
    // --json /dev/stdout with stdout sent to a file: the JSON follows the
    // table in that file (reopening it would have replaced the table).
    let captured = dir.path().join("captured.txt");
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("redqueen"))
        .args([
            "bench",
            "--quick",
            "--threads",
            "1",
            "--only",
            "mlp_pgd_step",
            "--json",
            "/dev/stdout",
        ])
        .stdout(std::fs::File::create(&captured).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&captured).unwrap();
    let json_start = text.find("\n{").expect("the JSON after the table") + 1;
    assert!(text[..json_start].contains("mlp_pgd_step"), "the table first: {text}");
    let report: serde_json::Value = serde_json::from_str(&text[json_start..]).unwrap();
    assert!(report["mlp_pgd_step"]["median_s"].as_f64().unwrap() > 0.0);
    // Without the direct convolution kernels, as the report says; a kernel
    // set that does not exist is refused by name.
    let im2col = dir.path().join("im2col.json");
    redqueen()
        .args([
            "bench",
            "--quick",
            "--threads",
            "1",
            "--only",
            "cnn_small_pgd_step",
            "--conv",
            "im2col",
            "--json",
        ])
        .arg(&im2col)
        .assert()
        .success()
        .stdout(predicate::str::contains("direct conv kernels: im2col"));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&im2col).unwrap()).unwrap();
    assert_eq!(report["conv_kernels"], "im2col");
    assert!(report["cnn_small_pgd_step"]["median_s"].as_f64().unwrap() > 0.0);
    redqueen()
        .args(["bench", "--conv", "avx1024"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`avx1024`").and(predicate::str::contains("auto, avx2, im2col")));
    redqueen()
        .args(["bench", "--only", "mlp_pgd_stp"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("mlp_pgd_stp").and(predicate::str::contains("mlp_pgd_step")));
    redqueen()
        .args(["run", "--threads", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--threads"));
}

#[test]
fn attacks_prints_a_row_per_attack() {
    let assert = redqueen().args(["attacks", "--quick"]).assert().success();
    let out = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for attack in redqueen::arsenal::attacks() {
        assert!(
            out.contains(&format!("`{}`", attack.label())),
            "no row for {}",
            attack.label()
        );
    }
    assert!(out.contains("scores"), "the square attack's access is shown");
    // Each accuracy with its interval, and what the intervals rest on.
    assert!(out.contains("% ["), "no interval: {out}");
    assert!(
        out.contains("95% Wilson intervals over 100 evaluation images, one seed"),
        "{out}"
    );
}

#[test]
fn an_evolving_attacker_breeds_new_attacks_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament_with(
        dir.path(),
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
        &[
            ("rounds = 2", "rounds = 4"),
            (
                "policy = { kind = \"fixed\" }",
                "policy = { kind = \"evolve\", population = 3 }",
            ),
        ],
    );
    let out = dir.path().join("out");
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let evolved: Vec<serde_json::Value> = rows(&out)
        .into_iter()
        .filter(|r| r["attacker"] == "fixed" && r["attack"].as_str().unwrap().contains("evolved"))
        .collect();
    assert!(!evolved.is_empty(), "no evolved attack was played");
    assert!(evolved[0]["agent_note"].as_str().unwrap().starts_with("mutated"));
}

/// Output that cannot be written (stdout on a full disk) fails the command
/// with exit 2 and says so; a reader that stops early (`| head`) does not,
/// and neither does a stderr that cannot be written.
#[test]
fn lost_output_is_an_error_but_a_closed_pipe_or_a_full_stderr_is_not() {
    use std::process::Stdio;
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("skipped: this system has no /dev/full");
        return;
    };
    let binary = assert_cmd::cargo::cargo_bin("redqueen");
    let output = std::process::Command::new(&binary)
        .arg("list")
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("writing to standard output"), "{stderr}");
    // Nor does a stderr that cannot be written lose the run (eprintln!
    // panicked: exit 101, the folder half written): the lines are lost, the
    // exit code still says what happened.
    let open_full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let output = std::process::Command::new(&binary)
        .args(["check", "no-such.toml"])
        .stderr(open_full())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(
        dir.path(),
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
    );
    let out = dir.path().join("run");
    let output = std::process::Command::new(&binary)
        .env("REDQUEEN_CACHE", common::model_cache())
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(open_full())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(std::fs::read_to_string(out.join("manifest.json"))
        .unwrap()
        .contains("\"complete\""));
    // A pipe closed before the first byte: `list` still exits 0.
    let mut child = std::process::Command::new(&binary)
        .arg("list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
