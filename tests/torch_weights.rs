//! Models in and out in PyTorch's layout, and images of any shape: a
//! PyTorch-written fixture matched, a CIFAR-format tournament run end to end
//! from imported weights, its defenders saved and evaluated, and (where
//! PyTorch is installed) loaded back by the documented PyTorch snippet.

mod common;

use std::path::{Path, PathBuf};

use common::redqueen;
use redqueen::data::cifar::{batch_bytes, TEST_FILE, TRAIN_FILES};
use redqueen::data::Shape;
use redqueen::model::{torch, Engine};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch")
        .join(name)
}

/// Within the engines' own agreement tolerance: relative 1e-4.
fn assert_close(ours: &[f32], theirs: &[f64], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}");
    for (k, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
        let tolerance = 1e-4 * b.abs().max(1.0);
        assert!(
            (a as f64 - b).abs() <= tolerance,
            "{what}: logit {k}: ours {a}, PyTorch {b}"
        );
    }
}

#[test]
fn pytorch_written_weights_give_pytorchs_logits() {
    let printed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("logits.json")).unwrap()).unwrap();
    for name in ["cnn-rgb", "mlp-rgb", "cnn-cifar"] {
        let entry = &printed[name];
        let dims: Vec<usize> = entry["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let shape = Shape {
            channels: dims[0],
            rows: dims[1],
            cols: dims[2],
        };
        let path = fixture(&format!("{name}.safetensors"));
        // No redqueen metadata: the architecture comes from the tensors.
        let config = torch::architecture(&path).unwrap();
        for engine in [Engine::Native, Engine::Dfdx] {
            let model = torch::load(&path, &config, engine, shape, 10).unwrap();
            let nchw: Vec<f32> = entry["inputs_nchw"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let hwc: Vec<f32> = nchw
                .chunks(shape.dim())
                .flat_map(|image| shape.from_chw(image))
                .collect();
            let theirs: Vec<f64> = entry["logits"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
                .collect();
            assert_close(&model.logits(&hwc), &theirs, &format!("{name} on {engine:?}"));
        }
    }
}

/// A CIFAR-10 binary folder of `per_batch` images in each of the five
/// training batches and `test` in the test batch: each class a colour
/// (its own mix of red, green and blue) with noise, so that it can be learnt.
fn write_cifar(dir: &Path, per_batch: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let shape = Shape::CIFAR;
    let mut state = 12345u64;
    let mut noise = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut batch = |n: usize, offset: usize| {
        let labels: Vec<u8> = (0..n).map(|i| ((i + offset) % 10) as u8).collect();
        let images: Vec<f32> = labels
            .iter()
            .flat_map(|&l| {
                let colour = [(l % 3) as f32 / 2.0, (l / 3 % 3) as f32 / 2.0, (l % 2) as f32];
                (0..shape.pixels())
                    .flat_map(|_| colour.map(|c| 0.7 * c + 0.3 * noise()))
                    .collect::<Vec<_>>()
            })
            .collect();
        batch_bytes(&images, &labels)
    };
    for (k, name) in TRAIN_FILES.iter().enumerate() {
        std::fs::write(dir.join(name), batch(per_batch, k)).unwrap();
    }
    std::fs::write(dir.join(TEST_FILE), batch(test, 7)).unwrap();
}

fn tournament(dir: &Path, data: &Path) -> PathBuf {
    let text = format!(
        r#"name = "cifar-format"
seed = 1
rounds = 2

[data]
dataset = "cifar10"
path = {data:?}
train = 200
test = 100

[sizes]
eval = 40
craft = 32

[model]
kind = "cnn"
channels = [4, 8]
dense = 16
weights = {weights:?}

[rules]
linf = 0.1
l2 = 2.0
spatial = {{ degrees = 20, pixels = 2 }}

[[attackers]]
name = "pgd"
policy = {{ kind = "fixed" }}
repertoire = [{{ family = "pgd", eps = 0.1, steps = 3 }}]

[[defenders]]
name = "pgd-at"
strategy = {{ kind = "pgd-at", steps = 20, batch = 32, optimizer = {{ kind = "adam", lr = 0.001 }}, attack = {{ eps = 0.1, steps = 3 }} }}

[[unseen]]
family = "square"
eps = 0.1
queries = 30

[[unseen]]
family = "spatial"
degrees = 20
pixels = 2
"#,
        data = data.display().to_string(),
        weights = fixture("cnn-cifar.safetensors").display().to_string(),
    );
    let path = dir.join("cifar.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_cifar_format_tournament_runs_from_imported_weights_and_keeps_its_defenders() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar-10-batches-bin");
    write_cifar(&data, 40, 100);
    let file = tournament(dir.path(), &data);
    let out = dir.path().join("run");
    let output = redqueen()
        .args(["run", "--save-models", "--out"])
        .arg(&out)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The report and its RGB gallery.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("3x32x32"), "the setup names the image shape");
    assert!(
        report.contains("airplane") || report.contains("automobile") || report.contains("truck"),
        "class names"
    );
    let gallery: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("gallery.json")).unwrap()).unwrap();
    assert_eq!(gallery.as_array().unwrap()[0]["channels"], 3);

    // One model per match, in PyTorch's layout, with what it is.
    let models: Vec<PathBuf> = std::fs::read_dir(out.join("models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(models.len(), 1, "{models:?}");
    let saved = &models[0];
    assert!(
        saved
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-1-match-0-pgd-at-vs-pgd"),
        "{saved:?}"
    );
    let config = torch::architecture(saved).unwrap();
    let model = torch::load(saved, &config, Engine::Native, Shape::CIFAR, 10).unwrap();
    let imported = torch::load(
        &fixture("cnn-cifar.safetensors"),
        &config,
        Engine::Native,
        Shape::CIFAR,
        10,
    )
    .unwrap();
    assert_ne!(model.parameters(), imported.parameters(), "the defender trained");

    // `evaluate` on the saved defender, with an attack list.
    let attacks = dir.path().join("attacks.toml");
    std::fs::write(
        &attacks,
        "attacks = [{ family = \"fgsm\", eps = 0.03 }, { family = \"pgd\", eps = 0.03, steps = 5 }]\n",
    )
    .unwrap();
    let json = dir.path().join("evaluation.json");
    let output = redqueen()
        .arg("evaluate")
        .arg(saved)
        .args(["--data", "cifar10", "--data-path"])
        .arg(&data)
        .arg("--attacks")
        .arg(&attacks)
        .args(["--images", "50", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let (clean, robust) = (
        result["clean_accuracy"].as_f64().unwrap(),
        result["robust_accuracy"].as_f64().unwrap(),
    );
    // The PyTorch-trained model classifies these images; training at
    // linf 0.1 keeps it doing so.
    assert!(robust <= clean && clean > 0.8, "clean {clean}, robust {robust}");
    assert_eq!(result["images"], 50);
    assert_eq!(result["attacks"].as_array().unwrap().len(), 2);
    assert!(
        stdout.contains("per-image worst case") && stdout.contains("95% interval"),
        "{stdout}"
    );

    pytorch_loads_it_back(saved, model.as_ref(), dir.path());
}

/// The documented snippet (docs/pytorch/load_redqueen_model.py) loads the
/// saved defender in PyTorch and prints redqueen's logits. Skipped, saying
/// so, where PyTorch is not installed (`REDQUEEN_TORCH_PYTHON` names a
/// Python that has it; default `python3`).
fn pytorch_loads_it_back(saved: &Path, model: &dyn redqueen::model::Classifier, dir: &Path) {
    let python = std::env::var("REDQUEEN_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_torch = std::process::Command::new(&python)
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!(
            "skipping the PyTorch round trip: {python} cannot import torch and safetensors (set REDQUEEN_TORCH_PYTHON)"
        );
        return;
    }
    let shape = Shape::CIFAR;
    let hwc: Vec<f32> = (0..2 * shape.dim()).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
    let nchw: Vec<f32> = hwc.chunks(shape.dim()).flat_map(|image| shape.to_chw(image)).collect();
    let inputs = dir.join("inputs.json");
    std::fs::write(&inputs, serde_json::to_string(&nchw).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/pytorch/load_redqueen_model.py");
    let output = std::process::Command::new(&python)
        .arg(script)
        .arg(saved)
        .arg(&inputs)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Vec<Vec<f64>> = serde_json::from_slice(&output.stdout).unwrap();
    let theirs: Vec<f64> = printed.concat();
    assert_close(&model.logits(&hwc), &theirs, "the saved defender in PyTorch");
}
