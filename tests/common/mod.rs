//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The binary, with its model cache in a folder of this test process's own
/// under the build's scratch space, never the user's.
pub fn redqueen() -> Command {
    let mut command = Command::cargo_bin("redqueen").expect("the binary is built");
    command.env("REDQUEEN_CACHE", model_cache());
    command
}

/// The model cache the binary gets in tests: one folder per test binary,
/// shared by its tests (so that their reproductions reuse each other's
/// models), emptied when the binary starts (so that no model trained by an
/// older build is reused). Cargo runs test binaries one at a time.
pub fn model_cache() -> PathBuf {
    static CLEARED: std::sync::Once = std::sync::Once::new();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // Without cargo's hash suffix, so that each build reuses one folder.
    let binary = binary
        .rsplit_once('-')
        .map_or(binary.as_str(), |(name, _)| name)
        .to_string();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("model-cache-{binary}"));
    CLEARED.call_once(|| {
        let _ = std::fs::remove_dir_all(&dir);
    });
    dir
}

/// The repository's `strategies/` folder.
pub fn strategies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies")
}

/// `rounds.jsonl` or `summary.json` with every `timing` value removed.
pub fn without_timing(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let strip = |mut v: serde_json::Value| {
        if let Some(map) = v.as_object_mut() {
            map.remove("timing");
        }
        v.to_string()
    };
    if path.extension().is_some_and(|e| e == "jsonl") {
        text.lines()
            .map(|l| strip(serde_json::from_str(l).expect("valid json line")))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        strip(serde_json::from_str(&text).expect("valid json"))
    }
}

/// The rows of a run folder's `rounds.jsonl`, as JSON values.
pub fn rows(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("rounds.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid json line"))
        .collect()
}

/// The files of a run folder's `models/` (`--save-models`), by name, with
/// their bytes, in name order.
pub fn saved_models(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("models"))
        .unwrap_or_else(|e| panic!("{}/models: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// A tiny tournament for fast end-to-end tests, written to `dir`.
pub fn tiny_tournament(dir: &Path, defenders: &str) -> PathBuf {
    let text = format!(
        r#"# A tiny tournament for tests.
name = "tiny"
seed = 3
rounds = 2

[data]
dataset = "synthetic-digits"
train = 600
test = 200

[sizes]
eval = 60
craft = 48

[model]
kind = "mlp"
hidden = [64]

[pretrain]
epochs = 3

[rules]
linf = 0.1
l2 = 2.0

[[attackers]]
name = "fixed"
policy = {{ kind = "fixed" }}
repertoire = [{{ family = "pgd", eps = 0.1, steps = 5 }}]

[[attackers]]
name = "bandit"
policy = {{ kind = "bandit", algorithm = "ucb1" }}
repertoire = [{{ family = "pgd", eps = 0.1, steps = 5 }}, {{ family = "fgsm", eps = 0.1 }}]

{defenders}

[[unseen]]
family = "pgd"
norm = "l2"
eps = 2.0
steps = 5
"#
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).expect("writable temp dir");
    path
}

/// [`tiny_tournament`] with each `from` replaced once by its `to`; every
/// `from` must occur, so that a test cannot silently run an unchanged file.
pub fn tiny_tournament_with(dir: &Path, defenders: &str, edits: &[(&str, &str)]) -> PathBuf {
    let path = tiny_tournament(dir, defenders);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "the tiny tournament lacks {from:?}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes an MNIST-format IDX folder (the four raw files) with `train` and
/// `test` images of `rows` x `cols` into `dir`: deterministic pixels and
/// labels cycling through 0..10. Returns `dir`.
pub fn write_idx_dataset(dir: &Path, train: usize, test: usize, rows: usize, cols: usize) -> PathBuf {
    std::fs::create_dir_all(dir).expect("writable temp dir");
    let be = |n: usize| (n as u32).to_be_bytes();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut images = Vec::with_capacity(16 + n * rows * cols);
        images.extend_from_slice(&0x0803u32.to_be_bytes());
        for word in [n, rows, cols] {
            images.extend_from_slice(&be(word));
        }
        images.extend((0..n * rows * cols).map(|i| (i * 37 % 256) as u8));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).expect("writable temp dir");
        let mut labels = Vec::with_capacity(8 + n);
        labels.extend_from_slice(&0x0801u32.to_be_bytes());
        labels.extend_from_slice(&be(n));
        labels.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).expect("writable temp dir");
    }
    dir.to_path_buf()
}

/// The folder holding `mnist/` for tests on real data: `$REDQUEEN_DATA`, or
/// the shared datasets beside the repository; `None` (the test skips, saying
/// so) when neither holds MNIST.
pub fn real_data() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("REDQUEEN_DATA").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets")),
    ];
    let found = candidates.into_iter().flatten().find(|dir| dir.join("mnist").is_dir());
    if found.is_none() {
        eprintln!("skipped: no MNIST in $REDQUEEN_DATA or ../shared/datasets (see README, Datasets)");
    }
    found
}
