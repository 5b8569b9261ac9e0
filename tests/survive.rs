//! Runs that survive: killed and resumed, interrupted by SIGTERM, split
//! into shards and merged, and a defender whose training diverges.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{redqueen, rows, saved_models, tiny_tournament, tiny_tournament_with, without_timing};
use predicates::prelude::*;

/// A tournament of about a quarter of a second: signals land mid-run.
fn tournament(dir: &Path) -> std::path::PathBuf {
    let file = tiny_tournament(
        dir,
        "[[defenders]]\nname = \"standard\"\nstrategy = { kind = \"standard\" }\n\n[[defenders]]\nname = \"adversarial\"\nstrategy = { kind = \"adversarial\" }\n\n[[defenders]]\nname = \"pgd-at\"\nstrategy = { kind = \"pgd-at\", steps = 10, attack = { eps = 0.1, steps = 3 } }",
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("rounds = 2", "rounds = 6");
    std::fs::write(&file, text).unwrap();
    file
}

fn binary() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("redqueen")
}

/// The binary as a plain child process (to signal it), with the tests'
/// model cache, as `redqueen()` gives it.
fn spawnable() -> Command {
    let mut command = Command::new(binary());
    command.env("REDQUEEN_CACHE", common::model_cache());
    command
}

/// `run --save-models --jobs 1 --resume DIR`, its output captured.
fn replay_command(run: &Path) -> Command {
    let mut command = spawnable();
    command
        .arg("run")
        .args(["--save-models", "--jobs", "1", "--resume"])
        .arg(run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn same_results(a: &Path, b: &Path) {
    for file in ["rounds.jsonl", "summary.json", "gallery.json"] {
        assert_eq!(
            without_timing(&a.join(file)),
            without_timing(&b.join(file)),
            "{file} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

fn status(dir: &Path) -> String {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["status"].as_str().unwrap().to_string()
}

#[test]
fn killed_at_random_moments_and_resumed_it_ends_as_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = tournament(dir.path());
    let whole = dir.path().join("whole");
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&whole)
        .assert()
        .success();

    // Kill moments from a fixed LCG: random, but the same on every run.
    let mut state: u64 = 0x5eed;
    let mut next_delay = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis(5 + (state >> 33) % 120)
    };
    let killed = dir.path().join("killed");
    let mut kills = 0;
    // Five runs cut short at random moments (or finishing first), then one
    // left to finish.
    for attempt in 0..6 {
        let mut command = spawnable();
        command.arg("run");
        if attempt == 0 || !killed.join("manifest.json").exists() {
            // Killed before the manifest was written: nothing to resume yet.
            command.arg(&file).arg("--out").arg(&killed).arg("--force");
        } else {
            command.arg("--resume").arg(&killed);
        }
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(next_delay());
        if attempt < 5 && child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let exit = child.wait().unwrap();
        if exit.success() && status(&killed) == "complete" {
            break;
        }
    }
    assert!(
        kills >= 2,
        "the run was killed {kills} times; the test needs it cut short"
    );
    assert_eq!(status(&killed), "complete");
    same_results(&whole, &killed);
}

#[test]
fn sigterm_keeps_a_partial_run_that_resumes_and_a_changed_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = tournament(dir.path());
    let (whole, stopped) = (dir.path().join("whole"), dir.path().join("stopped"));
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&whole)
        .assert()
        .success();

    let child = spawnable()
        .arg("run")
        .arg(&file)
        .args(["--jobs", "1", "--out"])
        .arg(&stopped)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first round to land, then ask it to stop.
    for _ in 0..200 {
        if rows_in(&stopped) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(status(&stopped), "partial");
    let partial_rows = rows(&stopped).len();
    assert!(partial_rows < rows(&whole).len(), "SIGTERM stopped nothing");
    // The partial run's tables say what they leave out.
    redqueen()
        .arg("report")
        .arg(&stopped)
        .assert()
        .success()
        .stdout(predicate::str::contains("Partial:"));

    // The same file with another seed is another tournament: refused.
    redqueen()
        .arg("run")
        .arg(&file)
        .args(["--seed", "9", "--resume"])
        .arg(&stopped)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("differs from the run's"));
    // The same file, or no file, continues it.
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--resume")
        .arg(&stopped)
        .assert()
        .success();
    assert_eq!(status(&stopped), "complete");
    same_results(&whole, &stopped);
    // Resuming a complete run plays nothing and changes nothing.
    let before = without_timing(&stopped.join("rounds.jsonl"));
    redqueen().arg("run").arg("--resume").arg(&stopped).assert().success();
    assert_eq!(before, without_timing(&stopped.join("rounds.jsonl")));
}

/// The test tournament run with `--save-models` into `dir/run`: the folder,
/// and its six models (path and bytes), in name order.
fn run_saving_models(dir: &Path) -> (std::path::PathBuf, Vec<(std::path::PathBuf, Vec<u8>)>) {
    let file = tournament(dir);
    let run = dir.join("run");
    redqueen()
        .arg("run")
        .arg(&file)
        .args(["--save-models", "--out"])
        .arg(&run)
        .assert()
        .success();
    let mut models: Vec<_> = std::fs::read_dir(run.join("models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|path| (path.clone(), std::fs::read(&path).unwrap()))
        .collect();
    models.sort();
    assert_eq!(models.len(), 6, "one model per match");
    (run, models)
}

/// A model whose save fails (here a folder stands where the file goes)
/// stops the run with its rounds kept; `--resume --save-models` then plays
/// that match again and saves it, with the same rows as before.
#[test]
fn a_failed_model_save_is_made_good_by_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (run, saved) = run_saving_models(dir.path());
    let whole = without_timing(&run.join("rounds.jsonl"));
    let models = run.join("models");
    let (lost, original) = saved[1].clone();
    // A complete run with every model has nothing to resume.
    redqueen()
        .arg("run")
        .args(["--save-models", "--resume"])
        .arg(&run)
        .assert()
        .success()
        .stdout(predicate::str::contains("already complete"));

    // The model is gone and its save cannot succeed: the run plays the
    // match again, fails to save it, and says how to go on.
    std::fs::remove_file(&lost).unwrap();
    std::fs::create_dir(&lost).unwrap();
    let failed = redqueen()
        .arg("run")
        .args(["--save-models", "--resume"])
        .arg(&run)
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let message = String::from_utf8_lossy(&failed);
    assert!(
        message.contains("1 finished match(es)"),
        "it says what it replays: {message}"
    );
    assert!(message.contains(&*lost.to_string_lossy()), "{message}");
    assert!(message.contains("--save-models"), "{message}");
    // The run stays complete, every round kept as it was.
    assert_eq!(status(&run), "complete");
    assert!(
        whole == without_timing(&run.join("rounds.jsonl")),
        "the rounds were not kept"
    );

    // Without --save-models, a resume asks no model back.
    std::fs::remove_dir(&lost).unwrap();
    redqueen()
        .arg("run")
        .arg("--resume")
        .arg(&run)
        .assert()
        .success()
        .stdout(predicate::str::contains("already complete"));
    assert!(!lost.exists());
    // With it, the match is played again and its model saved.
    redqueen()
        .arg("run")
        .args(["--save-models", "--resume"])
        .arg(&run)
        .assert()
        .success();
    assert_eq!(status(&run), "complete");
    assert_eq!(std::fs::read(&lost).unwrap(), original, "the same model, byte for byte");
    assert!(
        whole == without_timing(&run.join("rounds.jsonl")),
        "other rows than the first run's"
    );
    // A file where models/ goes is refused before any match replays.
    std::fs::rename(&models, run.join("models-kept")).unwrap();
    std::fs::write(&models, "").unwrap();
    redqueen()
        .arg("run")
        .args(["--save-models", "--resume"])
        .arg(&run)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("models: is not a folder"));
}

/// A `--save-models` resume that replays a complete run's matches, killed
/// at random moments: the run stays complete with every round as it was,
/// and a last resume saves every model, the same bytes as the first run's.
#[test]
fn a_killed_replay_for_models_keeps_the_run_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (run, originals) = run_saving_models(dir.path());
    let rounds = std::fs::read(run.join("rounds.jsonl")).unwrap();
    let whole = without_timing(&run.join("rounds.jsonl"));
    let models = run.join("models");
    // The replay, started with no model on disk, is stopped once its first
    // model is saved (five matches still to play, one at a time): by
    // SIGKILL, then by Ctrl-C. Tried a few times, in case one finishes first.
    let saved = || std::fs::read_dir(&models).map_or(0, |d| d.count());
    let replay = |signal: &str| -> Option<std::process::Output> {
        if models.exists() {
            std::fs::remove_dir_all(&models).unwrap();
        }
        let child = replay_command(&run).spawn().unwrap();
        for _ in 0..2000 {
            if saved() > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        let output = child.wait_with_output().unwrap();
        (saved() < 6).then_some(output)
    };
    let killed = (0..3).filter_map(|_| replay("-KILL")).count();
    assert!(killed >= 1, "no kill landed during the replay");
    // Not a byte touched: the replayed rows are not appended.
    assert!(std::fs::read(run.join("rounds.jsonl")).unwrap() == rounds);
    assert_eq!(status(&run), "complete");
    let interrupted = (0..3)
        .filter_map(|_| replay("-INT"))
        .find(|output| output.status.code() == Some(130))
        .expect("no Ctrl-C landed during the replay");
    let message = String::from_utf8_lossy(&interrupted.stderr);
    assert!(message.contains("stays complete, every round kept"), "{message}");
    assert!(message.contains("--save-models` saves the rest"), "{message}");
    assert_eq!(status(&run), "complete");
    assert!(
        std::fs::read(run.join("rounds.jsonl")).unwrap() == rounds,
        "the rows were rewritten otherwise"
    );
    if models.exists() {
        std::fs::remove_dir_all(&models).unwrap();
    }
    redqueen()
        .arg("run")
        .args(["--save-models", "--resume"])
        .arg(&run)
        .assert()
        .success()
        .stderr(predicate::str::contains("6 finished match(es)"));
    for (path, bytes) in originals {
        assert!(std::fs::read(&path).unwrap() == bytes, "{} differs", path.display());
    }
    assert!(whole == without_timing(&run.join("rounds.jsonl")));
}

#[test]
fn ctrl_c_then_sigterm_exits_at_once_and_leaves_the_files_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = tournament(dir.path());
    let (whole, stopped) = (dir.path().join("whole"), dir.path().join("stopped"));
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&whole)
        .assert()
        .success();
    let child = spawnable()
        .arg("run")
        .arg(&file)
        .args(["--jobs", "1", "--out"])
        .arg(&stopped)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if rows_in(&stopped) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    // Ctrl-C (SIGINT) first, then SIGTERM: either signal counts.
    for signal in ["-INT", "-TERM"] {
        Command::new("kill").args([signal, &pid]).status().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    // Whatever is on disk parses: the manifest, and every complete row.
    assert_eq!(status(&stopped), "partial");
    redqueen().arg("run").arg("--resume").arg(&stopped).assert().success();
    same_results(&whole, &stopped);
}

fn rows_in(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("rounds.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn three_shards_merge_into_the_single_machine_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = tournament(dir.path());
    let whole = dir.path().join("whole");
    redqueen()
        .arg("run")
        .arg(&file)
        .args(["--seeds", "2", "--save-models", "--out"])
        .arg(&whole)
        .assert()
        .success();
    let mut parts = Vec::new();
    for k in 1..=3 {
        let part = dir.path().join(format!("part{k}"));
        redqueen()
            .arg("run")
            .arg(&file)
            .args(["--seeds", "2", "--save-models", "--shard", &format!("{k}/3"), "--out"])
            .arg(&part)
            .assert()
            .success();
        parts.push(part);
    }
    // Disjoint parts that together hold every match, each with a share of
    // the costly defender and of the cheap ones.
    let total: usize = parts.iter().map(|p| rows(p).len()).sum();
    assert_eq!(total, rows(&whole).len());
    for part in &parts {
        let defenders: std::collections::BTreeSet<String> = rows(part)
            .iter()
            .map(|r| r["defender"].as_str().unwrap().to_string())
            .collect();
        assert!(defenders.len() >= 2, "{}: only {defenders:?}", part.display());
    }
    redqueen()
        .arg("report")
        .arg(&parts[0])
        .assert()
        .success()
        .stdout(predicate::str::contains("Part 1 of 3 of a sharded run"));
    // A complete part resumed as another part is refused, not called complete.
    redqueen()
        .arg("run")
        .args(["--shard", "2/3", "--resume"])
        .arg(&parts[0])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "it is part 1/3 of a sharded run; resume it with --shard 1/3",
        ));
    // Missing a part is refused; all three merge.
    let merged = dir.path().join("merged");
    redqueen()
        .arg("merge")
        .args(&parts[..2])
        .arg("--out")
        .arg(&merged)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("every part 1..3"));
    assert!(!merged.exists(), "a refused merge writes nothing");
    // Parts of two configurations are refused, showing where they differ.
    let config = parts[1].join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replacen("rounds = 6", "rounds = 7", 1)).unwrap();
    redqueen()
        .arg("merge")
        .args(&parts)
        .arg("--out")
        .arg(&merged)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("different configurations"))
        .stderr(predicate::str::contains(
            "`rounds = 6` in the first, `rounds = 7` in the other",
        ));
    assert!(!merged.exists(), "a refused merge writes nothing");
    std::fs::write(&config, text).unwrap();
    redqueen()
        .arg("merge")
        .args(&parts)
        .arg("--out")
        .arg(&merged)
        .assert()
        .success()
        .stdout(predicate::str::contains("Merged 3 parts"))
        .stderr(predicate::str::contains("have no model").not());
    same_results(&whole, &merged);
    assert_eq!(status(&merged), "complete");
    // Every part's saved defenders, byte for byte the single run's.
    let matches: std::collections::BTreeSet<(u64, u64)> = rows(&whole)
        .iter()
        .map(|r| (r["seed"].as_u64().unwrap(), r["match_id"].as_u64().unwrap()))
        .collect();
    assert_eq!(saved_models(&merged).len(), matches.len(), "a model per match");
    assert!(
        saved_models(&merged) == saved_models(&whole),
        "the merged models differ from the single run's"
    );
    assert!(merged.join("report.html").exists());
    // A part short of a model (a save that failed) merges, saying so.
    let lost = std::fs::read_dir(parts[0].join("models"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&lost).unwrap();
    redqueen()
        .arg("merge")
        .args(&parts)
        .args(["--force", "--out"])
        .arg(&merged)
        .assert()
        .success()
        .stderr(predicate::str::contains("1 match(es) have no model"));
    redqueen().args(["run", "--quick", "--shard", "4/3"]).assert().code(2);
    redqueen().args(["run", "--quick", "--shard", "x"]).assert().code(2);
}

#[test]
fn a_diverging_defender_is_recorded_and_the_tournament_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(
        dir.path(),
        "[[defenders]]\nname = \"standard\"\nstrategy = { kind = \"standard\" }\n\n[[defenders]]\nname = \"blowup\"\nstrategy = { kind = \"adversarial\", optimizer = { lr = 1e30 } }",
    );
    let out = dir.path().join("run");
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("diverged"));
    let rows = rows(&out);
    let blowup: Vec<_> = rows.iter().filter(|r| r["defender"] == "blowup").collect();
    let diverged = blowup
        .iter()
        .find(|r| r.get("diverged").is_some())
        .expect("a diverged row");
    assert!(diverged["diverged"].as_str().unwrap().contains("NaN or infinite"));
    assert_eq!(diverged["clean_acc"], 0.0);
    // Its matches end at the diverged round; the others play every round.
    assert!(blowup.iter().all(|r| r["round"].as_u64() <= diverged["round"].as_u64()));
    assert_eq!(rows.iter().filter(|r| r["defender"] == "standard").count(), 2 * 2);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let d = summary["defenders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["defender"] == "blowup")
        .unwrap();
    assert_eq!(d["diverged_matches"], 2);
}

/// Ctrl-C during a long pretraining stops it at its next step (it once ran
/// to the end first), for a tournament, its specialists and a matrix: exit
/// 130, the folder `partial`, nothing played.
#[test]
fn ctrl_c_stops_pretraining() {
    let dir = tempfile::tempdir().unwrap();
    // A million steps: hours, were it not stopped.
    let file = tiny_tournament_with(
        dir.path(),
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
        &[("epochs = 3", "steps = 1000000")],
    );
    let out = dir.path().join("out");
    let stderr = stopped_in_pretraining(&["run".as_ref(), file.as_os_str()], &out);
    assert!(stderr.contains("redqueen run --resume"), "{stderr}");
    assert_eq!(rows_in(&out), 0);

    // Likewise a specialist's training, and the specialist cut short is not
    // then evaluated (a million-step unseen attack would take minutes).
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("steps = 1000000", "epochs = 3")
        .replace("eps = 2.0\nsteps = 5", "eps = 2.0\nsteps = 1000000")
        + "\n[specialists]\nsteps = 1000000\n";
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("specialists-out");
    stopped_in_pretraining(&["run".as_ref(), file.as_os_str()], &out);
    assert_eq!(rows_in(&out), 0);

    let matrix = dir.path().join("m.toml");
    std::fs::write(
        &matrix,
        "name = \"m\"\neval = 60\n[data]\ndataset = \"synthetic-digits\"\ntrain = 600\ntest = 200\n[model]\nkind = \"mlp\"\nhidden = [8]\n[pretrain]\nsteps = 1000000\n[training]\nsteps = 5\n[[attacks]]\nfamily = \"fgsm\"\neps = 0.1\n",
    )
    .unwrap();
    let out = dir.path().join("matrix-out");
    let stderr = stopped_in_pretraining(&["matrix".as_ref(), matrix.as_os_str()], &out);
    assert!(stderr.contains("redqueen matrix --resume"), "{stderr}");
    assert!(!out.join("matrix.json").exists());
}

/// `args --out out`, stopped by Ctrl-C once its folder is made (its data
/// is a few hundred images, loaded at once: it is pretraining then); its
/// stderr, after checking that it stopped, with 130, leaving `partial`.
fn stopped_in_pretraining(args: &[&std::ffi::OsStr], out: &Path) -> String {
    let mut child = spawnable()
        .args(args)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..3000 {
        if out.join("manifest.json").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    // Not a timing: a liveness bound, so that a pretraining that ignores
    // the signal fails the test instead of hanging it for hours.
    let stopped = (0..1200).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        child.try_wait().unwrap().is_some()
    });
    if !stopped {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(stopped, "pretraining went on after Ctrl-C: {stderr}");
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert_eq!(status(out), "partial");
    stderr
}

/// An interrupted matrix keeps its finished rows; `matrix --resume DIR`
/// trains only the others and ends as the uninterrupted matrix.
#[test]
fn an_interrupted_matrix_resumes_keeping_its_finished_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, stopped) = (dir.path().join("whole"), dir.path().join("stopped"));
    redqueen()
        .args(["matrix", "--quick", "--jobs", "1", "--out"])
        .arg(&whole)
        .assert()
        .success();
    let child = spawnable()
        .args(["matrix", "--quick", "--jobs", "1", "--out"])
        .arg(&stopped)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = stopped.join("matrix-rows.jsonl");
    let logged = || std::fs::read_to_string(&log).map_or(0, |t| t.lines().count());
    for _ in 0..3000 {
        if logged() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("redqueen matrix --resume"), "{stderr}");
    assert_eq!(status(&stopped), "partial");
    assert!(!stopped.join("matrix.json").exists());
    // `report` says how far it got, and how to finish it.
    let report = redqueen().arg("report").arg(&stopped).assert().success();
    let tables = String::from_utf8_lossy(&report.get_output().stdout).to_string();
    let partial = format!("Partial: {} of ", logged());
    assert!(tables.contains(&partial), "{tables}");
    assert!(
        tables.contains("rows of the generalization matrix finished"),
        "{tables}"
    );
    assert!(tables.contains("redqueen matrix --resume"), "{tables}");

    // A finished row is kept as it is, not trained again: mark it.
    let text = std::fs::read_to_string(&log).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let marked = text.replacen("\"clean_acc\":", "\"clean_acc\":0.123456,\"was\":", 1);
    std::fs::write(&log, marked).unwrap();
    redqueen()
        .arg("matrix")
        .arg("--resume")
        .arg(&stopped)
        .assert()
        .success();
    assert_eq!(status(&stopped), "complete");
    assert!(!log.exists(), "the row log outlived the matrix");

    let read = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("matrix.json")).unwrap()).unwrap()
    };
    let (whole, resumed) = (read(&whole), read(&stopped));
    let (whole_rows, resumed_rows) = (whole["rows"].as_array().unwrap(), resumed["rows"].as_array().unwrap());
    assert_eq!(whole_rows.len(), resumed_rows.len());
    let kept = first["row"].as_u64().unwrap() as usize;
    for (i, (w, r)) in whole_rows.iter().zip(resumed_rows).enumerate() {
        if i == kept {
            assert_eq!(r["clean_acc"], 0.123456, "row {i} was trained again");
        } else {
            assert_eq!(w, r, "row {i} differs from the uninterrupted matrix");
        }
    }
    // Resuming a complete matrix does nothing.
    redqueen()
        .arg("matrix")
        .arg("--resume")
        .arg(&stopped)
        .assert()
        .success()
        .stdout(predicate::str::contains("already complete"));
}
