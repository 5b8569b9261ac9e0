//! Bad input, one row per case: every row exits with code 2 and a message
//! that names the file or flag, the line or key, and what would be valid;
//! nothing panics; and no half-written results folder is left behind.
//! Also: no name, include or planted link makes redqueen read or write
//! outside the folders it means to.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{redqueen, strategies, tiny_tournament, tiny_tournament_with, without_timing, write_idx_dataset};

/// The tiny tournament's one defender.
const DEFENDER: &str = "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }";
/// The tiny tournament's first attacker's repertoire (its eps is the rules' linf budget).
const FIXED_REPERTOIRE: &str = "repertoire = [{ family = \"pgd\", eps = 0.1, steps = 5 }]\n\n[[attackers]]";
/// Where every row points `--out` (unless the row is about `--out`).
const OUT: &str = "out";

/// What a row must leave at its output path.
#[derive(Clone, Copy, Debug)]
enum Out {
    /// Nothing: no folder was created.
    Absent,
    /// Exactly what was there before the run (files and contents).
    Untouched,
}

struct Case {
    /// What is wrong.
    name: &'static str,
    /// Writes the row's files into the (empty) temporary folder the command
    /// runs in, and returns the command's arguments.
    setup: fn(&Path) -> Vec<String>,
    /// Substrings stderr must hold: the file or flag, the line or key, and
    /// what would be valid.
    stderr: &'static [&'static str],
    /// The output path the row watches (relative to the temporary folder).
    out: &'static str,
    expect_out: Out,
    /// A row that cannot pass yet, and why. It still runs: the test says
    /// when it starts passing, so that the skip can be removed.
    skip: Option<&'static str>,
}

/// `tiny.toml` (the tiny tournament with one standard defender) with each
/// `from` replaced once by its `to`; every `from` must occur, so that a row
/// cannot silently test an unbroken file.
fn tiny_with(dir: &Path, edits: &[(&str, &str)]) -> String {
    tiny_tournament_with(dir, DEFENDER, edits);
    "tiny.toml".to_string()
}

/// A safetensors file holding an `nn.Sequential(Flatten, Linear(inputs, 4),
/// ReLU, Linear(4, 10))` with zero weights, written by hand (the format: a
/// little-endian header length, a JSON header, the float32 data).
fn write_mlp_safetensors(path: &Path, inputs: usize) {
    write_mlp_safetensors_filled(path, inputs, 0.0);
}

/// [`write_mlp_safetensors`] with every weight `value`.
fn write_mlp_safetensors_filled(path: &Path, inputs: usize, value: f32) {
    let tensors = [
        ("1.weight", vec![4, inputs]),
        ("1.bias", vec![4]),
        ("3.weight", vec![10, 4]),
        ("3.bias", vec![10]),
    ];
    let (mut header, mut offset) = (Vec::new(), 0);
    for (name, shape) in &tensors {
        let bytes = 4 * shape.iter().product::<usize>();
        header.push(format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape:?},\"data_offsets\":[{offset},{}]}}",
            offset + bytes
        ));
        offset += bytes;
    }
    let header = format!("{{{}}}", header.join(","));
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend(std::iter::repeat_n(value.to_le_bytes(), offset / 4).flatten());
    std::fs::write(path, file).unwrap();
}

/// `redqueen run FILE --out out`.
fn run(file: String) -> Vec<String> {
    vec!["run".into(), file, "--out".into(), OUT.into()]
}

/// A `strategies/` folder (the repository's attackers and defenders) with
/// the tiny tournament, edited, in `strategies/tournaments/tiny.toml`.
fn in_strategies(dir: &Path, edits: &[(&str, &str)]) -> String {
    let root = dir.join("strategies");
    for sub in ["attackers", "defenders"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
        for entry in std::fs::read_dir(strategies().join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), root.join(sub).join(entry.file_name())).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("tournaments")).unwrap();
    tiny_with(dir, edits);
    std::fs::rename(dir.join("tiny.toml"), root.join("tournaments/tiny.toml")).unwrap();
    "strategies/tournaments/tiny.toml".to_string()
}

/// The tiny tournament on an IDX folder `data/` of `train` and `test`
/// images of `rows` x `cols`, after `tamper` has had its way with the folder.
fn on_idx(dir: &Path, (train, test): (usize, usize), (rows, cols): (usize, usize), tamper: fn(&Path)) -> Vec<String> {
    let data = write_idx_dataset(&dir.join("data"), train, test, rows, cols);
    tamper(&data);
    run(tiny_with(
        dir,
        &[("dataset = \"synthetic-digits\"", "dataset = \"idx\"\npath = \"data\"")],
    ))
}

/// The tiny tournament's `use`-free defender replaced by `use = "{to}"`, in a strategies folder.
fn defender_use(dir: &Path, to: &str) -> Vec<String> {
    let edit = format!("[[defenders]]\nuse = \"{to}\"");
    run(in_strategies(dir, &[(DEFENDER, &edit)]))
}

const CASES: &[Case] = &[
    // ---- the tournament file ----
    Case {
        name: "a tournament file that does not exist",
        setup: |_| run("no-such-file.toml".into()),
        stderr: &["no-such-file.toml", "cannot read"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "malformed TOML (an unterminated string)",
        setup: |dir| run(tiny_with(dir, &[("name = \"tiny\"", "name = \"tiny")])),
        stderr: &["tiny.toml", "line 2", "invalid basic string", "closing quote"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an unknown key (suggests the closest)",
        setup: |dir| run(tiny_with(dir, &[("rounds = 2", "runds = 2")])),
        stderr: &["tiny.toml", "line 4", "unknown field `runds`", "did you mean `rounds`?"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an unknown key in a table (suggests the closest)",
        setup: |dir| run(tiny_with(dir, &[("craft = 48", "crafts = 48")])),
        stderr: &[
            "tiny.toml",
            "line 13",
            "unknown field `crafts`",
            "did you mean `craft`?",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a missing key",
        setup: |dir| run(tiny_with(dir, &[("rounds = 2\n", "")])),
        stderr: &["tiny.toml", "missing field `rounds`"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a wrong type (a string for a count)",
        setup: |dir| run(tiny_with(dir, &[("rounds = 2", "rounds = \"two\"")])),
        stderr: &["tiny.toml", "line 4", "rounds = \"two\"", "expected a whole number"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a wrong type (a string for a budget)",
        setup: |dir| run(tiny_with(dir, &[("linf = 0.1", "linf = \"0.1\"")])),
        stderr: &["tiny.toml", "line 23", "linf = \"0.1\"", "expected a number"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    // ---- unknown names ----
    Case {
        name: "an unknown attack family (suggests)",
        setup: |dir| run(tiny_with(dir, &[("family = \"fgsm\"", "family = \"fgsn\"")])),
        stderr: &[
            "tiny.toml",
            "line 34",
            "unknown variant `fgsn`",
            "did you mean `fgsm`?",
            "`pgd`",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an unknown threat model (suggests)",
        setup: |dir| run(tiny_with(dir, &[("norm = \"l2\"", "norm = \"l3\"")])),
        stderr: &[
            "tiny.toml",
            "line",
            "unknown variant `l3`",
            "did you mean `l2`?",
            "`linf`",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an unknown defense kind (suggests)",
        setup: |dir| run(tiny_with(dir, &[("kind = \"standard\"", "kind = \"standart\"")])),
        stderr: &[
            "tiny.toml",
            "line 38",
            "unknown variant `standart`",
            "did you mean `standard`?",
            "`pgd-at`",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an unknown attacker policy kind (suggests)",
        setup: |dir| run(tiny_with(dir, &[("kind = \"bandit\"", "kind = \"bandid\"")])),
        stderr: &[
            "tiny.toml",
            "line 33",
            "unknown variant `bandid`",
            "did you mean `bandit`?",
            "`fixed`",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an unknown model kind (suggests)",
        setup: |dir| run(tiny_with(dir, &[("kind = \"mlp\"", "kind = \"mpl\"")])),
        stderr: &[
            "tiny.toml",
            "line 16",
            "unknown variant `mpl`",
            "did you mean `mlp`?",
            "`cnn`",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an unknown dataset (suggests)",
        setup: |dir| run(tiny_with(dir, &[("\"synthetic-digits\"", "\"synthetic-digit\"")])),
        stderr: &[
            "tiny.toml",
            "`data.dataset`",
            "did you mean `synthetic-digits`?",
            "fashion-mnist",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an attacker's strategy file used under [[defenders]]",
        setup: |dir| defender_use(dir, "attackers/adaptive-linf.toml"),
        stderr: &[
            "strategies/tournaments/tiny.toml",
            "defenders[0]",
            "`use = \"attackers/adaptive-linf.toml\"` is a strategy file for [[attackers]]",
            "under defenders/",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an unknown strategy file in `use` (suggests, lists the folder)",
        setup: |dir| defender_use(dir, "defenders/standrd.toml"),
        stderr: &[
            "strategies/tournaments/tiny.toml",
            "`use = \"defenders/standrd.toml\"`",
            "did you mean `defenders/standard.toml`?",
            "defenders/pgd-at.toml",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    // ---- budgets and sizes ----
    Case {
        name: "a negative budget",
        setup: |dir| run(tiny_with(dir, &[("linf = 0.1", "linf = -0.1")])),
        stderr: &["tiny.toml", "`rules.linf`", "positive number", "-0.1"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a zero budget in the rules",
        setup: |dir| run(tiny_with(dir, &[("linf = 0.1", "linf = 0.0")])),
        stderr: &["tiny.toml", "`rules.linf`", "positive number"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a zero budget in an attack",
        setup: |dir| {
            run(tiny_with(
                dir,
                &[("family = \"fgsm\", eps = 0.1", "family = \"fgsm\", eps = 0.0")],
            ))
        },
        stderr: &[
            "tiny.toml",
            "attacker \"bandit\"",
            "repertoire[1]",
            "`eps`",
            "positive number",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an attack budget above the rules",
        setup: |dir| {
            let above = FIXED_REPERTOIRE.replace("eps = 0.1", "eps = 0.3");
            run(tiny_with(dir, &[(FIXED_REPERTOIRE, &above)]))
        },
        stderr: &[
            "tiny.toml",
            "attacker \"fixed\"",
            "repertoire[0]",
            "eps 0.3",
            "`rules.linf`",
            "0.1",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an attack in a threat model the rules do not allow",
        setup: |dir| run(tiny_with(dir, &[("l2 = 2.0\n", "")])),
        stderr: &["tiny.toml", "unseen[0]", "no l2 budget", "[rules]"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a layer wider than any model can be",
        setup: |dir| run(tiny_with(dir, &[("hidden = [64]", "hidden = [9223372036854775807]")])),
        stderr: &["tiny.toml", "`model.hidden[0]`", "limit of 16384"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a weight decay that is not a number",
        setup: |dir| {
            run(tiny_with(
                dir,
                &[(
                    "epochs = 3",
                    "epochs = 3\noptimizer = { lr = 0.05, weight_decay = nan }",
                )],
            ))
        },
        stderr: &["tiny.toml", "`weight_decay`", "0 or more", "NaN"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "rounds = 0",
        setup: |dir| run(tiny_with(dir, &[("rounds = 2", "rounds = 0")])),
        stderr: &["tiny.toml", "`rounds`", "at least 1"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "more evaluation images than the test images used",
        setup: |dir| run(tiny_with(dir, &[("eval = 60", "eval = 500")])),
        stderr: &["tiny.toml", "`sizes.eval` = 500", "`data.test` = 200"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "more crafting images than the training images used",
        setup: |dir| run(tiny_with(dir, &[("craft = 48", "craft = 900")])),
        stderr: &[
            "tiny.toml",
            "`sizes.craft` = 900",
            "`data.train` - `sizes.attacker_slice` = 600 - 120",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "crafting on the attacker slice",
        setup: |dir| run(tiny_with(dir, &[("craft = 48", "craft = 500")])),
        stderr: &[
            "tiny.toml",
            "`sizes.craft` = 500",
            "left after the attacker slice",
            "= 480",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an attacker slice as large as the training images used",
        setup: |dir| run(tiny_with(dir, &[("craft = 48", "craft = 48\nattacker_slice = 600")])),
        stderr: &["tiny.toml", "`sizes.attacker_slice` = 600", "`data.train` = 600"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "more test images than the dataset's test split has",
        setup: |dir| on_idx(dir, (600, 50), (28, 28), |_| {}),
        stderr: &["`data.test` = 200", "only 50", "at most 50"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "more training images than the dataset's train split has",
        setup: |dir| on_idx(dir, (100, 200), (28, 28), |_| {}),
        stderr: &["`data.train` = 600", "only 100", "at most 100"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    // ---- data ----
    Case {
        name: "a missing dataset folder",
        setup: |dir| {
            run(tiny_with(
                dir,
                &[(
                    "dataset = \"synthetic-digits\"",
                    "dataset = \"idx\"\npath = \"no-such-folder\"",
                )],
            ))
        },
        stderr: &["tiny.toml", "`data.path`", "no-such-folder", "train-images-idx3-ubyte"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an IDX folder missing a file",
        setup: |dir| {
            on_idx(dir, (600, 200), (28, 28), |data| {
                std::fs::remove_file(data.join("t10k-labels-idx1-ubyte")).unwrap()
            })
        },
        stderr: &["test labels file missing", "data", "t10k-labels-idx1-ubyte.gz"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an IDX file that is a folder (it was called missing)",
        setup: |dir| {
            on_idx(dir, (600, 200), (28, 28), |data| {
                let labels = data.join("t10k-labels-idx1-ubyte");
                std::fs::remove_file(&labels).unwrap();
                std::fs::create_dir(&labels).unwrap();
            })
        },
        stderr: &["t10k-labels-idx1-ubyte", "not a regular file"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a truncated IDX file",
        setup: |dir| {
            on_idx(dir, (600, 200), (28, 28), |data| {
                let path = data.join("train-images-idx3-ubyte");
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
            })
        },
        stderr: &[
            "train-images-idx3-ubyte",
            "truncated",
            "600 images of 28x28 = 470400 bytes",
            "470300",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an IDX file with a wrong magic number",
        setup: |dir| {
            on_idx(dir, (600, 200), (28, 28), |data| {
                let path = data.join("t10k-labels-idx1-ubyte");
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[..4].copy_from_slice(&0x0803u32.to_be_bytes());
                std::fs::write(&path, bytes).unwrap();
            })
        },
        stderr: &[
            "t10k-labels-idx1-ubyte",
            "wrong magic number",
            "expected 0x00000801",
            "found 0x00000803",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "IDX images and labels that disagree",
        setup: |dir| {
            on_idx(dir, (600, 200), (28, 28), |data| {
                let mut labels = 0x0801u32.to_be_bytes().to_vec();
                labels.extend_from_slice(&599u32.to_be_bytes());
                labels.extend((0..599).map(|i| (i % 10) as u8));
                std::fs::write(data.join("train-labels-idx1-ubyte"), labels).unwrap();
            })
        },
        stderr: &[
            "counts disagree",
            "train-images-idx3-ubyte has 600 images",
            "train-labels-idx1-ubyte has 599 labels",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "IDX images a cnn cannot take (30x30: it pools twice by 2)",
        setup: |dir| {
            write_idx_dataset(&dir.join("data"), 600, 200, 30, 30);
            run(tiny_with(
                dir,
                &[
                    ("dataset = \"synthetic-digits\"", "dataset = \"idx\"\npath = \"data\""),
                    (
                        "kind = \"mlp\"\nhidden = [64]",
                        "kind = \"cnn\"\nchannels = [2, 2]\ndense = 8",
                    ),
                ],
            ))
        },
        stderr: &["tiny.toml", "`model`", "multiples of 4", "30x30"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a transfer surrogate a cnn cannot take on 30x30 IDX images",
        setup: |dir| {
            write_idx_dataset(&dir.join("data"), 600, 200, 30, 30);
            run(tiny_with(
                dir,
                &[
                    ("dataset = \"synthetic-digits\"", "dataset = \"idx\"\npath = \"data\""),
                    (
                        "[[unseen]]",
                        "[[unseen]]\nfamily = \"transfer\"\nsurrogate = { kind = \"cnn\", channels = [2, 2], dense = 8 }\nattack = { family = \"fgsm\", eps = 0.1 }\n\n[[unseen]]",
                    ),
                ],
            ))
        },
        stderr: &["tiny.toml", "unseen[0]", "`surrogate`", "multiples of 4", "30x30"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an ensemble's static cnn on 30x30 IDX images",
        setup: |dir| {
            write_idx_dataset(&dir.join("data"), 600, 200, 30, 30);
            run(tiny_with(
                dir,
                &[
                    ("dataset = \"synthetic-digits\"", "dataset = \"idx\"\npath = \"data\""),
                    (
                        "strategy = { kind = \"standard\" }",
                        "strategy = { kind = \"ensemble-at\", eps = 0.1, static_models = [{ kind = \"cnn\", channels = [2, 2], dense = 8 }] }",
                    ),
                ],
            ))
        },
        stderr: &[
            "tiny.toml",
            "defender \"d\"",
            "`static_models[0]`",
            "multiples of 4",
            "30x30",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a pretraining transfer attack whose cnn surrogate cannot take 30x30 IDX images",
        setup: |dir| {
            write_idx_dataset(&dir.join("data"), 600, 200, 30, 30);
            run(tiny_with(
                dir,
                &[
                    ("dataset = \"synthetic-digits\"", "dataset = \"idx\"\npath = \"data\""),
                    (
                        "[pretrain]\nepochs = 3",
                        "[pretrain]\nepochs = 3\nattack = { family = \"transfer\", surrogate = { kind = \"cnn\", channels = [2, 2], dense = 8 }, attack = { family = \"fgsm\", eps = 0.1 } }",
                    ),
                ],
            ))
        },
        stderr: &["tiny.toml", "[pretrain]", "`surrogate`", "multiples of 4", "30x30"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a data path for the generated synthetic digits",
        setup: |dir| run(tiny_with(dir, &[("train = 600", "path = \"data\"\ntrain = 600")])),
        stderr: &["tiny.toml", "`data.path`", "synthetic-digits"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a CIFAR-10 folder that does not exist",
        setup: |dir| {
            run(tiny_with(
                dir,
                &[(
                    "dataset = \"synthetic-digits\"",
                    "dataset = \"cifar10\"\npath = \"no-cifar\"",
                )],
            ))
        },
        stderr: &["no-cifar", "CIFAR-10 folder", "data_batch_1.bin", "test_batch.bin"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a weights file that does not exist",
        setup: |dir| {
            run(tiny_with(
                dir,
                &[("hidden = [64]", "hidden = [64]\nweights = \"no-such.safetensors\"")],
            ))
        },
        stderr: &["tiny.toml", "`model`", "no-such.safetensors", "cannot read"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "weights that do not fit the model",
        setup: |dir| {
            let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/mlp-rgb.safetensors");
            std::fs::copy(fixture, dir.join("w.safetensors")).unwrap();
            run(tiny_with(
                dir,
                &[("hidden = [64]", "hidden = [64]\nweights = \"w.safetensors\"")],
            ))
        },
        stderr: &[
            "tiny.toml",
            "w.safetensors",
            "`1.weight` has shape [12, 48]",
            "[64, 784]",
            "nn.Linear(784, 64)",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    // ---- evaluate ----
    Case {
        name: "evaluate: a model file that does not exist",
        setup: |_| vec!["evaluate".into(), "no-such.safetensors".into()],
        stderr: &["no-such.safetensors", "cannot read"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: a model that is not a safetensors file",
        setup: |dir| {
            std::fs::write(dir.join("m.safetensors"), b"not a model").unwrap();
            vec!["evaluate".into(), "m.safetensors".into()]
        },
        stderr: &["m.safetensors", "not a safetensors file"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: an unknown dataset",
        setup: |_| {
            let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/cnn-cifar.safetensors");
            vec![
                "evaluate".into(),
                model.display().to_string(),
                "--data".into(),
                "cifar100".into(),
            ]
        },
        stderr: &["--data", "cifar100", "cifar10", "did you mean"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: a model for other images than the dataset's",
        setup: |_| {
            let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/cnn-cifar.safetensors");
            vec![
                "evaluate".into(),
                model.display().to_string(),
                "--data".into(),
                "synthetic-digits".into(),
            ]
        },
        stderr: &[
            "cnn-cifar.safetensors",
            "`0.weight` has shape [4, 3, 5, 5]",
            "[4, 1, 5, 5]",
            "1x28x28",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: a model whose outputs overflow (every attack would fail on it)",
        setup: |dir| {
            write_mlp_safetensors_filled(&dir.join("big.safetensors"), 784, 3e38);
            let args = [
                "evaluate",
                "big.safetensors",
                "--data",
                "synthetic-digits",
                "--images",
                "50",
                "--json",
                OUT,
            ];
            args.map(String::from).to_vec()
        },
        stderr: &["big.safetensors", "outputs are NaN or infinite on 50 of the 50 images"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: --json into a folder that does not exist",
        setup: |_| {
            vec![
                "evaluate".into(),
                "m.safetensors".into(),
                "--json".into(),
                "no-folder/e.json".into(),
            ]
        },
        stderr: &["--json", "no-folder", "does not exist"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "bench: --json naming a folder, refused before the timing",
        setup: |dir| {
            std::fs::create_dir(dir.join("a-folder")).unwrap();
            vec![
                "bench".into(),
                "--quick".into(),
                "--only".into(),
                "mlp_pgd_step".into(),
                "--json".into(),
                "a-folder".into(),
            ]
        },
        stderr: &["--json a-folder", "is a folder", "name of a file"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "attacks: --json into a folder that does not exist, refused before the attacks",
        setup: |_| {
            vec![
                "attacks".into(),
                "--quick".into(),
                "--json".into(),
                "no-folder/a.json".into(),
            ]
        },
        stderr: &["--json", "no-folder", "does not exist"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "run: --threads far past any machine's cores",
        setup: |_| {
            vec![
                "run".into(),
                "--threads".into(),
                "100000".into(),
                "--out".into(),
                "out".into(),
            ]
        },
        stderr: &["--threads 100000", "at most 1024"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "bench: --threads past the limit",
        setup: |_| vec!["bench".into(), "--threads".into(), "5000".into()],
        stderr: &["--threads 5000", "at most 1024"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "reproduce: one reproduction twice, refused before either runs",
        setup: |_| {
            ["reproduce", "madry-mnist", "madry-mnist", "--quick", "--out", "out"]
                .map(String::from)
                .to_vec()
        },
        stderr: &[
            "madry-mnist and madry-mnist would both write",
            "give each reproduction once",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "reproduce --force on a folder holding other files",
        setup: |dir| {
            std::fs::create_dir(dir.join("out")).unwrap();
            std::fs::write(dir.join("out/notes.txt"), "mine").unwrap();
            ["reproduce", "madry-mnist", "--quick", "--out", "out", "--force"]
                .map(String::from)
                .to_vec()
        },
        stderr: &[
            "out holds files that are not a reproduction's",
            "notes.txt",
            "choose another with --out",
        ],
        out: OUT,
        expect_out: Out::Untouched,
        skip: None,
    },
    Case {
        name: "merge: a part that does not exist, and a file for a part",
        setup: |dir| {
            std::fs::write(dir.join("a-file"), "").unwrap();
            ["merge", "no-such-run", "a-file"].map(String::from).to_vec()
        },
        stderr: &["no-such-run: no such folder"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "report and compare: a folder that does not exist",
        setup: |_| ["report", "no-such-run"].map(String::from).to_vec(),
        stderr: &["no-such-run: no such folder"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "merge: a file for a part",
        setup: |dir| {
            std::fs::write(dir.join("a-file"), "").unwrap();
            ["merge", "a-file"].map(String::from).to_vec()
        },
        stderr: &["a-file: not a folder"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "report: a run written by a newer redqueen (which dropped a field this one needs)",
        setup: |dir| {
            std::fs::create_dir(dir.join("newer")).unwrap();
            let manifest = serde_json::json!({
                "schema_version": 99, "redqueen_version": "9.0.0", "name": "m", "seed": 1,
                "dataset": "synthetic-digits", "started": "2026-01-01T00:00:00Z",
                "finished": null, "status": "complete"
            });
            std::fs::write(dir.join("newer/manifest.json"), manifest.to_string()).unwrap();
            vec!["report".into(), "newer".into()]
        },
        stderr: &["manifest.json", "newer redqueen", "schema_version 99", "reads 1"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a reproduction file given to check (run likewise)",
        setup: |_| {
            let file = strategies().join("reproduce/distillation-cw.toml");
            vec!["check".into(), file.display().to_string()]
        },
        stderr: &["distillation-cw.toml", "is a reproduction file", "redqueen reproduce"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a reproduction file given to matrix",
        setup: |_| {
            let file = strategies().join("reproduce/distillation-cw.toml");
            vec!["matrix".into(), file.display().to_string(), "--out".into(), OUT.into()]
        },
        stderr: &["distillation-cw.toml", "is a reproduction file", "not a matrix file"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "report on a reproduction's folder",
        setup: |dir| {
            std::fs::create_dir(dir.join("repro")).unwrap();
            std::fs::write(dir.join("repro/reproduction.json"), "{}").unwrap();
            vec!["report".into(), "repro".into()]
        },
        stderr: &["repro", "a reproduction's folder", "table.md"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "reproduce: a mistyped name (suggests), also with --list",
        setup: |_| ["reproduce", "--list", "madyr-mnist"].map(String::from).to_vec(),
        stderr: &["no reproduction named \"madyr-mnist\"", "did you mean `madry-mnist`?"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "bench: --only CNN items with --skip-cnn",
        setup: |_| {
            ["bench", "--only", "cnn_train_step", "--skip-cnn"]
                .map(String::from)
                .to_vec()
        },
        stderr: &["--only cnn_train_step with --skip-cnn leaves nothing to time"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "reproduce: given a tournament file",
        setup: |dir| vec!["reproduce".into(), tiny_with(dir, &[]), "--quick".into()],
        stderr: &["tiny.toml is a tournament file", "`redqueen run tiny.toml`"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: --attacks given a tournament file",
        setup: |dir| {
            let file = tiny_with(dir, &[]);
            vec!["evaluate".into(), "m.safetensors".into(), "--attacks".into(), file]
        },
        stderr: &[
            "tiny.toml",
            "a tournament file",
            "--attacks takes a file of `attacks = [...]`",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a layer of 0 units",
        setup: |dir| run(tiny_with(dir, &[("hidden = [64]", "hidden = [0]")])),
        stderr: &["tiny.toml", "`hidden`", "at least 1", "[0]"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "run --resume on a matrix's folder",
        setup: |dir| {
            let m = dir.join("m");
            std::fs::create_dir(&m).unwrap();
            let manifest = serde_json::json!({
                "schema_version": 1, "redqueen_version": "0.1.0", "name": "m", "seed": 1,
                "dataset": "synthetic-digits", "dataset_fingerprint": "0", "started": "2026-01-01T00:00:00Z",
                "finished": null, "status": "partial"
            });
            std::fs::write(m.join("manifest.json"), manifest.to_string()).unwrap();
            std::fs::write(m.join("config.toml"), "name = \"m\"\nattacks = []\n").unwrap();
            vec!["run".into(), "--resume".into(), "m".into()]
        },
        stderr: &[
            "--resume m",
            "generalization-matrix run",
            "`redqueen matrix --resume m`",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: idx data without --data-path",
        setup: |_| {
            let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/cnn-cifar.safetensors");
            vec![
                "evaluate".into(),
                model.display().to_string(),
                "--data".into(),
                "idx".into(),
            ]
        },
        stderr: &["--data", "idx", "--data-path"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: --images 0",
        setup: |_| vec!["evaluate".into(), "m.safetensors".into(), "--images".into(), "0".into()],
        stderr: &["--images", "at least 1"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: --seed past the seeds a tournament can record",
        setup: |_| {
            vec![
                "evaluate".into(),
                "m.safetensors".into(),
                "--seed".into(),
                u64::MAX.to_string(),
            ]
        },
        stderr: &["--seed 18446744073709551615", "9223372036854775807"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: an attack list with a bad attack",
        setup: |dir| {
            std::fs::write(dir.join("a.toml"), "attacks = [{ family = \"pgd\", eps = -1 }]\n").unwrap();
            vec![
                "evaluate".into(),
                "m.safetensors".into(),
                "--attacks".into(),
                "a.toml".into(),
            ]
        },
        stderr: &["a.toml", "attacks[0]", "eps"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "evaluate: a transfer attack whose cnn surrogate cannot take the data's 30x30 images",
        setup: |dir| {
            write_idx_dataset(&dir.join("data"), 600, 200, 30, 30);
            write_mlp_safetensors(&dir.join("m.safetensors"), 30 * 30);
            std::fs::write(
                dir.join("a.toml"),
                "attacks = [{ family = \"transfer\", surrogate = { kind = \"cnn\", channels = [2, 2], dense = 8 }, attack = { family = \"fgsm\", eps = 0.1 } }]\n",
            )
            .unwrap();
            [
                "evaluate",
                "m.safetensors",
                "--data",
                "idx",
                "--data-path",
                "data",
                "--images",
                "100",
                "--attacks",
                "a.toml",
            ]
            .map(String::from)
            .to_vec()
        },
        stderr: &["--attacks", "attacks[0]", "`surrogate`", "multiples of 4", "30x30"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    // ---- the output folder and flags ----
    Case {
        name: "an output folder that exists, without --force",
        setup: |dir| {
            std::fs::create_dir(dir.join(OUT)).unwrap();
            std::fs::write(dir.join(OUT).join("keep.txt"), "precious").unwrap();
            std::fs::write(dir.join(OUT).join("rounds.jsonl"), "not ours to replace\n").unwrap();
            run(tiny_with(dir, &[]))
        },
        stderr: &["out", "already exists", "--out", "--force"],
        out: OUT,
        expect_out: Out::Untouched,
        skip: None,
    },
    Case {
        name: "an output folder that cannot be created (under a file)",
        setup: |dir| {
            std::fs::write(dir.join("blocker"), "a file, not a folder").unwrap();
            let file = tiny_with(dir, &[]);
            vec!["run".into(), file, "--out".into(), "blocker/sub".into()]
        },
        stderr: &["--out", "blocker/sub", "cannot create"],
        out: "blocker",
        expect_out: Out::Untouched,
        skip: None,
    },
    Case {
        name: "an output path that is a file",
        setup: |dir| {
            std::fs::write(dir.join(OUT), "a file, not a folder").unwrap();
            run(tiny_with(dir, &[]))
        },
        stderr: &["--out", "out", "not a folder"],
        out: OUT,
        expect_out: Out::Untouched,
        skip: None,
    },
    Case {
        name: "--jobs 0",
        setup: |dir| {
            let mut args = run(tiny_with(dir, &[]));
            args.extend(["--jobs".into(), "0".into()]);
            args
        },
        stderr: &["--jobs", "at least 1"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a resume of a folder that is not a redqueen run",
        setup: |dir| {
            std::fs::create_dir(dir.join("empty")).unwrap();
            vec!["run".into(), "--resume".into(), "empty".into()]
        },
        stderr: &["empty", "not a redqueen run"],
        out: "empty",
        expect_out: Out::Untouched,
        skip: None,
    },
    // ---- names and includes that would leave their folders ----
    Case {
        name: "a tournament name that climbs out of results/",
        setup: |dir| {
            let file = tiny_with(dir, &[("name = \"tiny\"", "name = \"../escape\"")]);
            vec!["run".into(), file]
        },
        stderr: &["tiny.toml", "`name` = \"../escape\"", "letters, digits"],
        out: "results",
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a tournament name with a slash",
        setup: |dir| {
            let file = tiny_with(dir, &[("name = \"tiny\"", "name = \"a/b\"")]);
            vec!["run".into(), file]
        },
        stderr: &["tiny.toml", "`name` = \"a/b\"", "letters, digits"],
        out: "results",
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an include that climbs out with ..",
        setup: |dir| {
            std::fs::write(dir.join("x.toml"), "name = \"x\"\nstrategy = { kind = \"standard\" }\n").unwrap();
            defender_use(dir, "../../x.toml")
        },
        stderr: &[
            "strategies/tournaments/tiny.toml",
            "`use = \"../../x.toml\"`",
            "without `..`",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an include with an absolute path",
        setup: |dir| defender_use(dir, "/etc/passwd.toml"),
        stderr: &[
            "strategies/tournaments/tiny.toml",
            "`use = \"/etc/passwd.toml\"`",
            "relative path",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an include through a symbolic link that leads out of strategies/",
        setup: |dir| {
            let outside = dir.join("outside.toml");
            std::fs::write(&outside, "name = \"evil\"\nstrategy = { kind = \"standard\" }\n").unwrap();
            let args = defender_use(dir, "defenders/evil.toml");
            std::os::unix::fs::symlink(&outside, dir.join("strategies/defenders/evil.toml")).unwrap();
            args
        },
        stderr: &[
            "strategies/tournaments/tiny.toml",
            "`use = \"defenders/evil.toml\"`",
            "outside.toml",
            "outside the strategies folder",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    // ---- numbers past redqueen's limits (issue 17): refused before any work ----
    Case {
        name: "--seed past the largest seed TOML can record",
        setup: |dir| {
            let mut args = run(tiny_with(dir, &[]));
            args.extend(["--seed".into(), u64::MAX.to_string()]);
            args
        },
        stderr: &["--seed 18446744073709551615", "9223372036854775807"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "seeds = [] (an empty list once ran seed 0 alone)",
        setup: |dir| run(tiny_with(dir, &[("seed = 3", "seeds = []")])),
        stderr: &["tiny.toml", "`seeds = []` lists no seed", "remove `seeds`"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "--seeds 100000000",
        setup: |dir| {
            let mut args = run(tiny_with(dir, &[]));
            args.extend(["--seeds".into(), "100000000".into()]);
            args
        },
        stderr: &["--seeds 100000000", "at most 1000"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "rounds = 2^63 - 1",
        setup: |dir| run(tiny_with(dir, &[("rounds = 2", "rounds = 9223372036854775807")])),
        stderr: &["tiny.toml", "`rounds` = 9223372036854775807", "limit of 10000"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "rounds = 1000000000",
        setup: |dir| run(tiny_with(dir, &[("rounds = 2", "rounds = 1000000000")])),
        stderr: &["tiny.toml", "`rounds` = 1000000000", "limit of 10000"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a cnn with 65536 channels",
        setup: |dir| {
            run(tiny_with(
                dir,
                &[(
                    "kind = \"mlp\"\nhidden = [64]",
                    "kind = \"cnn\"\nchannels = [65536, 65536]",
                )],
            ))
        },
        stderr: &["tiny.toml", "`model.channels[0]` = 65536", "limit of 1024"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "three hidden layers of 65536 units",
        setup: |dir| run(tiny_with(dir, &[("hidden = [64]", "hidden = [65536, 65536, 65536]")])),
        stderr: &["tiny.toml", "`model.hidden[0]` = 65536", "limit of 16384"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a plan that cannot fit in memory (within every limit)",
        setup: |dir| {
            run(tiny_with(
                dir,
                &[
                    (
                        "hidden = [64]",
                        "hidden = [16384, 16384, 16384, 16384, 16384, 16384, 16384, 16384]",
                    ),
                    ("[pretrain]\nepochs = 3", "[pretrain]\nepochs = 3\nbatch = 65536"),
                ],
            ))
        },
        stderr: &["needs about", "GiB of memory", "free", "--jobs"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a defender batch of 10^11",
        setup: |dir| {
            run(tiny_with(
                dir,
                &[(
                    DEFENDER,
                    "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"adversarial\", batch = 100000000000 }",
                )],
            ))
        },
        stderr: &[
            "tiny.toml",
            "`defenders[0].strategy.batch` = 100000000000",
            "limit of 65536",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "4,000,000,000 synthetic training images",
        setup: |dir| run(tiny_with(dir, &[("train = 600", "train = 4000000000")])),
        stderr: &["tiny.toml", "`data.train` = 4000000000", "limit of 1000000"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an attack of 10^11 steps",
        setup: |dir| {
            run(tiny_with(
                dir,
                &[(
                    "eps = 0.1, steps = 5 }]\n\n[[attackers]]",
                    "eps = 0.1, steps = 100000000000 }]\n\n[[attackers]]",
                )],
            ))
        },
        stderr: &[
            "tiny.toml",
            "`attackers[0].repertoire[0].steps` = 100000000000",
            "limit of 1000000",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    // ---- files that are not files, names that are not names ----
    Case {
        name: "a device as the tournament file (/dev/urandom)",
        setup: |_| run("/dev/urandom".into()),
        stderr: &["/dev/urandom", "not a regular file"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a tournament file over 1 MiB",
        setup: |dir| {
            let file = tiny_with(dir, &[]);
            let mut text = std::fs::read_to_string(dir.join(&file)).unwrap();
            text.push_str(&format!("# {}\n", "x".repeat(1 << 20)));
            std::fs::write(dir.join(&file), text).unwrap();
            run(file)
        },
        stderr: &["tiny.toml", "larger than 1024 KiB"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an agent name holding an ANSI escape",
        setup: |dir| run(tiny_with(dir, &[("name = \"fixed\"", "name = \"red\\u001b[31m\"")])),
        stderr: &["tiny.toml", "`attackers[0].name`", "control character"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an agent name holding NUL",
        setup: |dir| run(tiny_with(dir, &[("name = \"fixed\"", "name = \"nul\\u0000\"")])),
        stderr: &["tiny.toml", "`attackers[0].name`", "control character"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an agent name holding a newline",
        setup: |dir| run(tiny_with(dir, &[("name = \"d\"", "name = \"two\\nlines\"")])),
        stderr: &["tiny.toml", "`defenders[0].name`", "control character"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a 300-character tournament name, no --out",
        setup: |dir| {
            let long = format!("name = \"{}\"", "n".repeat(300));
            vec!["run".into(), tiny_with(dir, &[("name = \"tiny\"", &long)])]
        },
        stderr: &["tiny.toml", "`name`", "at most 64"],
        out: "results",
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "the same attack twice in the unseen panel",
        setup: |dir| {
            let file = tiny_with(dir, &[]);
            let mut text = std::fs::read_to_string(dir.join(&file)).unwrap();
            text.push_str("\n[[unseen]]\nfamily = \"pgd\"\nnorm = \"l2\"\neps = 2.0\nsteps = 5\n");
            std::fs::write(dir.join(&file), text).unwrap();
            run(file)
        },
        stderr: &["tiny.toml", "unseen[1]", "already unseen[0]"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a number beyond a 32-bit float (it read as `got 0` or `got inf`)",
        setup: |dir| run(tiny_with(dir, &[("linf = 0.1", "linf = 1e300")])),
        stderr: &["tiny.toml", "`rules.linf` = 1e300", "out of the range"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "the same attack twice in a repertoire (a bandit took it for two arms)",
        setup: |dir| {
            let twice = "repertoire = [{ family = \"fgsm\", eps = 0.1 }, { family = \"fgsm\", eps = 0.1 }]";
            run(tiny_with(
                dir,
                &[("repertoire = [{ family = \"pgd\", eps = 0.1, steps = 5 }]", twice)],
            ))
        },
        stderr: &["tiny.toml", "repertoire[1]", "already repertoire[0]"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a bandit key of the other algorithm (it was ignored)",
        setup: |dir| {
            let ucb1 = "{ kind = \"bandit\", algorithm = \"ucb1\", gamma = 0.3 }";
            run(tiny_with(dir, &[("{ kind = \"bandit\", algorithm = \"ucb1\" }", ucb1)]))
        },
        stderr: &["tiny.toml", "`gamma` = 0.3 belongs to `algorithm = \"exp3\"`"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an attacker's strategy file given to check (an unknown key `policy`)",
        setup: |dir| {
            std::fs::copy(strategies().join("attackers/pgd-linf.toml"), dir.join("sa.toml")).unwrap();
            vec!["check".into(), "sa.toml".into()]
        },
        stderr: &["sa.toml", "an attacker's strategy file", "[[attackers]]", "use ="],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "an evaluate --attacks list given to matrix (a missing `name`)",
        setup: |dir| {
            std::fs::write(dir.join("atk.toml"), "attacks = [{ family = \"fgsm\", eps = 0.1 }]\n").unwrap();
            vec!["matrix".into(), "atk.toml".into()]
        },
        stderr: &[
            "atk.toml",
            "a list of attacks",
            "redqueen evaluate MODEL --attacks atk.toml",
        ],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "matrix --resume on a matrix folder without config.toml (called a tournament's)",
        setup: |dir| {
            let matrix = stopped_matrix(dir, "kind = \"mlp\"\nhidden = [4]");
            std::fs::remove_file(matrix.join("config.toml")).unwrap();
            vec!["matrix".into(), "--resume".into(), "matrix-out".into()]
        },
        stderr: &["matrix-out/config.toml: missing", "cannot be rebuilt"],
        out: "matrix-out",
        expect_out: Out::Untouched,
        skip: None,
    },
    Case {
        name: "report on a run whose manifest is cut short",
        setup: |dir| {
            finished_run(dir, "cut");
            std::fs::write(dir.join("cut/manifest.json"), "{").unwrap();
            vec!["report".into(), "cut".into()]
        },
        stderr: &["cut/manifest.json", "cut short (the file is damaged)"],
        out: "cut",
        expect_out: Out::Untouched,
        skip: None,
    },
    Case {
        name: "a matrix file given to run",
        setup: |dir| {
            let matrix = std::fs::read_to_string(strategies().join("matrix/default.toml")).unwrap();
            std::fs::write(dir.join("m.toml"), matrix).unwrap();
            run("m.toml".into())
        },
        stderr: &["m.toml", "matrix file", "redqueen matrix m.toml"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "a tournament file given to matrix",
        setup: |dir| vec!["matrix".into(), tiny_with(dir, &[]), "--out".into(), OUT.into()],
        stderr: &["tiny.toml", "tournament file", "redqueen run"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    // ---- output folders (issue 17) ----
    Case {
        name: "--force on a non-empty folder that holds no redqueen run",
        setup: |dir| {
            std::fs::create_dir(dir.join(OUT)).unwrap();
            std::fs::write(dir.join(OUT).join("thesis.tex"), "precious").unwrap();
            let mut args = run(tiny_with(dir, &[]));
            args.push("--force".into());
            args
        },
        stderr: &["out", "holds no redqueen run", "--force replaces only"],
        out: OUT,
        expect_out: Out::Untouched,
        skip: None,
    },
    Case {
        name: "`report` on a file, not a folder",
        setup: |dir| {
            std::fs::write(dir.join("file.txt"), "not a run").unwrap();
            vec!["report".into(), "file.txt".into()]
        },
        stderr: &["file.txt", "not a folder"],
        out: "file.txt",
        expect_out: Out::Untouched,
        skip: None,
    },
    Case {
        name: "class names that repeat",
        setup: |dir| {
            run(tiny_with(
                dir,
                &[("train = 600", "train = 600\nclasses = [\"a\", \"b\", \"a\"]")],
            ))
        },
        stderr: &["tiny.toml", "`data.classes`", "distinct"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "class names for a shipped dataset, miscounted (check said ok)",
        setup: |dir| {
            let mut args = run(tiny_with(
                dir,
                &[("train = 600", "train = 600\nclasses = [\"a\", \"b\"]")],
            ));
            args.truncate(2);
            args[0] = "check".into();
            args
        },
        stderr: &["tiny.toml", "`data.classes` names 2 classes", "synthetic-digits has 10"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "class names for a dataset with another number of classes",
        setup: |dir| {
            let mut args = on_idx(dir, (600, 200), (28, 28), |_| {});
            let text = std::fs::read_to_string(dir.join("tiny.toml")).unwrap();
            std::fs::write(
                dir.join("tiny.toml"),
                text.replacen("path = \"data\"", "path = \"data\"\nclasses = [\"cat\", \"dog\"]", 1),
            )
            .unwrap();
            args.truncate(2);
            args[0] = "check".into();
            args
        },
        stderr: &["`data.classes` names 2 classes", "has 10"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    // ---- `check` means it: the data is loaded as `run` loads it ----
    Case {
        name: "check: an IDX label of 200",
        setup: |dir| {
            let mut args = on_idx(dir, (600, 200), (28, 28), |data| {
                let path = data.join("train-labels-idx1-ubyte");
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[8 + 5] = 200;
                std::fs::write(&path, bytes).unwrap();
            });
            args.truncate(2);
            args[0] = "check".into();
            args
        },
        stderr: &["train-labels-idx1-ubyte", "label 5 is 200", "less than 10"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
    Case {
        name: "check: more training images than the dataset has",
        setup: |dir| {
            let mut args = on_idx(dir, (100, 200), (28, 28), |_| {});
            args.truncate(2);
            args[0] = "check".into();
            args
        },
        stderr: &["`data.train` = 600", "only 100"],
        out: OUT,
        expect_out: Out::Absent,
        skip: None,
    },
];

/// Every file under `path` (or `path` itself) with its contents; `None`
/// when nothing is there.
fn snapshot(path: &Path) -> Option<BTreeMap<PathBuf, Vec<u8>>> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut files = BTreeMap::new();
    if meta.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                } else {
                    files.insert(entry.path(), std::fs::read(entry.path()).unwrap_or_default());
                }
            }
        }
    } else {
        files.insert(path.to_path_buf(), std::fs::read(path).unwrap_or_default());
    }
    Some(files)
}

/// Why a row fails, or `None` when it passes.
fn check_case(case: &Case) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let args = (case.setup)(dir.path());
    let out = dir.path().join(case.out);
    let before = snapshot(&out);
    let results_before = snapshot(&dir.path().join("results"));
    let output = redqueen().current_dir(dir.path()).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut problems = Vec::new();
    if output.status.code() != Some(2) {
        problems.push(format!("exit code {:?}, expected 2", output.status.code()));
    }
    for needle in case.stderr {
        if !stderr.contains(needle) {
            problems.push(format!("stderr lacks {needle:?}"));
        }
    }
    for bad in ["panicked", "RUST_BACKTRACE"] {
        if stderr.contains(bad) {
            problems.push(format!("stderr holds {bad:?}"));
        }
    }
    match case.expect_out {
        Out::Absent if out.exists() => problems.push(format!("{} was created", case.out)),
        Out::Untouched if snapshot(&out) != before => problems.push(format!("{} was changed", case.out)),
        _ => {}
    }
    if snapshot(&dir.path().join("results")) != results_before {
        problems.push("a results/ folder was written".into());
    }
    (!problems.is_empty()).then(|| format!("{}\n  args: {args:?}\n  stderr: {stderr}", problems.join("; ")))
}

#[test]
fn bad_input_exits_2_with_a_message_that_says_what_is_valid() {
    let mut failures = Vec::new();
    for case in CASES {
        let outcome = check_case(case);
        match (case.skip, outcome) {
            (None, None) => eprintln!("ok    {}", case.name),
            (None, Some(why)) => failures.push(format!("{}: {why}", case.name)),
            (Some(reason), None) => eprintln!("SKIP  {} passes now: remove its skip ({reason})", case.name),
            (Some(reason), Some(why)) => eprintln!("SKIP  {} ({reason}): {why}", case.name),
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn output_paths_cannot_escape() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("plots")).unwrap();
    std::fs::write(outside.join("rounds.jsonl"), "victim rounds\n").unwrap();
    std::fs::write(outside.join("summary.json"), "victim summary\n").unwrap();
    std::fs::write(outside.join("plots/keep.svg"), "victim plot\n").unwrap();
    let victims = snapshot(&outside);

    // A run folder with links planted where the run writes: to files that
    // exist, to a folder, and to files that do not exist yet.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let link = |name: &str, target: &str| std::os::unix::fs::symlink(outside.join(target), out.join(name)).unwrap();
    link("rounds.jsonl", "rounds.jsonl");
    link("summary.json", "summary.json");
    link("plots", "plots");
    link("manifest.json", "manifest.json");
    link("config.toml", "config.toml");
    link("report.html", "report.html");

    let file = tiny_tournament(dir.path(), DEFENDER);
    let output = redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .arg("--force")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        snapshot(&outside),
        victims,
        "the run wrote through a link outside its folder (exit {:?}); stderr: {stderr}",
        output.status.code()
    );
    // Either the run refused (bad input), or it replaced the links with its own files.
    match output.status.code() {
        Some(0) => {
            for name in [
                "rounds.jsonl",
                "summary.json",
                "manifest.json",
                "config.toml",
                "report.html",
                "plots",
            ] {
                let meta = std::fs::symlink_metadata(out.join(name)).unwrap();
                assert!(!meta.file_type().is_symlink(), "{name} is still a link");
            }
        }
        code => assert_eq!(code, Some(2), "stderr: {stderr}"),
    }
    // Links planted after the run: `report` and `--resume` replace them too.
    if output.status.code() == Some(0) {
        std::fs::remove_dir_all(out.join("plots")).unwrap();
        link("plots", "plots");
        redqueen().arg("report").arg(&out).assert().success();
        std::fs::remove_dir_all(out.join("plots")).unwrap();
        link("plots", "plots");
        std::fs::remove_file(out.join("rounds.jsonl")).unwrap();
        link("rounds.jsonl", "rounds.jsonl");
        redqueen().arg("run").arg("--resume").arg(&out).assert().success();
        assert_eq!(snapshot(&outside), victims, "report or resume wrote through a link");
    }
}

/// A finished run of the tiny tournament, in `dir/name`.
fn finished_run(dir: &Path, name: &str) -> PathBuf {
    let file = tiny_tournament(dir, DEFENDER);
    let out = dir.join(name);
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    out
}

/// A tiny generalization matrix with `model` (a `[model]` table's body),
/// run into `dir/matrix-out` and then marked as if stopped before its end
/// (`partial`), for `matrix --resume` to check.
fn stopped_matrix(dir: &Path, model: &str) -> PathBuf {
    let matrix = dir.join("m.toml");
    let text = format!(
        "name = \"m\"\nseed = 5\neval = 60\n[data]\ndataset = \"synthetic-digits\"\ntrain = 600\ntest = 200\n[model]\n{model}\n[training]\nsteps = 5\n[[attacks]]\nfamily = \"fgsm\"\neps = 0.1\n"
    );
    std::fs::write(&matrix, text).unwrap();
    let matrix_run = dir.join("matrix-out");
    redqueen()
        .arg("matrix")
        .arg(&matrix)
        .arg("--out")
        .arg(&matrix_run)
        .assert()
        .success();
    let manifest = std::fs::read_to_string(matrix_run.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"config_fingerprint\""), "{manifest}");
    std::fs::write(
        matrix_run.join("manifest.json"),
        manifest.replace("\"complete\"", "\"partial\""),
    )
    .unwrap();
    matrix_run
}

/// A copy of the run folder `from` at `to` (files only; plots too).
fn copy_run(from: &Path, to: &Path) {
    for (path, bytes) in snapshot(from).unwrap() {
        let target = to.join(path.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

/// `report`, `compare` and `merge` read runs strictly: a damaged row or a
/// missing file is exit 2 naming the file (and line), and nothing is rebuilt.
#[test]
fn reading_a_damaged_run_back_is_refused_and_rebuilds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = finished_run(dir.path(), "good");
    let rows = std::fs::read_to_string(good.join("rounds.jsonl")).unwrap();
    let first = rows.lines().next().unwrap().to_string();
    // (what is damaged, how, what stderr must say)
    type Damage<'a> = (&'a str, Box<dyn Fn(&Path) + 'a>, Vec<&'a str>);
    let damages: Vec<Damage> = vec![
        (
            "a truncated line",
            Box::new(|run: &Path| {
                let torn = rows.replacen(&first, &first[..first.len() / 2], 1);
                std::fs::write(run.join("rounds.jsonl"), torn).unwrap();
            }),
            vec!["rounds.jsonl, line 1", "not a round row"],
        ),
        (
            "a string where a number belongs",
            Box::new(|run: &Path| {
                let bad = rows.replacen("\"round\":1", "\"round\":\"one\"", 1);
                assert_ne!(bad, rows);
                std::fs::write(run.join("rounds.jsonl"), bad).unwrap();
            }),
            vec!["rounds.jsonl, line 1", "not a round row"],
        ),
        (
            "NaN",
            Box::new(|run: &Path| {
                let bad = rows.replacen("\"clean_acc\":", "\"clean_acc\":NaN,\"x\":", 1);
                assert_ne!(bad, rows);
                std::fs::write(run.join("rounds.jsonl"), bad).unwrap();
            }),
            vec!["rounds.jsonl, line 1"],
        ),
        (
            "a row deleted",
            Box::new(|run: &Path| {
                let fewer: String = rows.lines().skip(1).map(|l| format!("{l}\n")).collect();
                std::fs::write(run.join("rounds.jsonl"), fewer).unwrap();
            }),
            vec!["rounds.jsonl", "summary.json says it played 2"],
        ),
        (
            // It once looked complete: resume summed the round twice.
            "a row repeated",
            Box::new(|run: &Path| {
                std::fs::write(run.join("rounds.jsonl"), format!("{rows}{first}\n")).unwrap();
            }),
            vec!["rounds.jsonl", "repeats the seed, match and round of line 1"],
        ),
        (
            "rounds.jsonl deleted",
            Box::new(|run: &Path| std::fs::remove_file(run.join("rounds.jsonl")).unwrap()),
            vec!["rounds.jsonl: missing"],
        ),
        (
            "summary.json deleted",
            Box::new(|run: &Path| std::fs::remove_file(run.join("summary.json")).unwrap()),
            vec!["summary.json: missing"],
        ),
    ];
    for (i, (what, damage, stderr)) in damages.iter().enumerate() {
        let run = dir.path().join(format!("damaged-{i}"));
        copy_run(&good, &run);
        damage(&run);
        let before = snapshot(&run);
        for args in [vec!["report"], vec!["compare", good.to_str().unwrap()]] {
            let output = redqueen().args(&args).arg(&run).output().unwrap();
            let text = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{what}, {args:?}: {text}");
            for needle in stderr {
                assert!(
                    text.contains(needle),
                    "{what}, {args:?}: stderr lacks {needle:?}: {text}"
                );
            }
            assert_eq!(text.matches("error:").count(), 1, "{what}: printed once: {text}");
            assert_eq!(snapshot(&run), before, "{what}, {args:?}: the run folder changed");
        }
        // A missing file's message says which command rebuilds it.
        if what.ends_with(".json deleted") || what.ends_with(".jsonl deleted") {
            let text =
                String::from_utf8_lossy(&redqueen().arg("report").arg(&run).output().unwrap().stderr).to_string();
            assert!(
                text.contains(&format!("`redqueen run --resume {}`", run.display())),
                "{what}: {text}"
            );
        }
        // The run is marked complete, but `run --resume` does not call it
        // so: it rebuilds the files from the rows it has, playing again any
        // match whose rows were lost, and the run reads back as the good one.
        let output = redqueen().arg("run").arg("--resume").arg(&run).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{what}: {text}");
        assert!(text.contains("does not read back"), "{what}: {text}");
        redqueen().arg("report").arg(&run).assert().success();
        for file in ["rounds.jsonl", "summary.json"] {
            assert_eq!(
                without_timing(&run.join(file)),
                without_timing(&good.join(file)),
                "{what}: {file} differs from the undamaged run's"
            );
        }
    }
}

/// `run --resume` on a finished run says so, exits 0 and touches nothing.
#[test]
fn resuming_a_complete_run_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path(), "done");
    let before = snapshot(&run);
    let output = redqueen().arg("run").arg("--resume").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("already complete"));
    assert_eq!(snapshot(&run), before);
    // Another configuration is refused, complete or not (it was called
    // complete, exit 0).
    let output = redqueen()
        .arg("run")
        .arg("--resume")
        .arg(&run)
        .args(["--seed", "99"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("differs from the run's"), "{stderr}");
    assert_eq!(snapshot(&run), before);
}

/// A complete run on IDX data at a relative path, resumed from another
/// folder, is still complete (its configuration is not loaded again, so
/// the data path that no longer resolves does not matter); given flags
/// that could change it, it is checked, and here refused for the data.
#[test]
fn a_complete_run_resumed_from_elsewhere_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let args = on_idx(dir.path(), (600, 200), (28, 28), |_| {});
    redqueen().current_dir(dir.path()).args(&args).assert().success();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    redqueen()
        .current_dir(&sub)
        .args(["run", "--resume", &format!("../{OUT}")])
        .assert()
        .success()
        .stdout(predicates::str::contains("already complete"));
    redqueen()
        .current_dir(&sub)
        .args(["run", "--resume", &format!("../{OUT}"), "--seed", "3"])
        .assert()
        .code(2);
}

/// A run records a fingerprint of its configuration: a partial run whose
/// `config.toml` was edited by hand is not resumed (its rows so far were
/// played under the old settings), and nothing in it changes; put back,
/// it resumes. A run recorded before the fingerprint was kept resumes as
/// it is.
#[test]
fn resuming_after_the_configuration_was_edited_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path(), "edited");
    let manifest = std::fs::read_to_string(run.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"config_fingerprint\""), "{manifest}");
    let stopped = manifest.replace("\"status\": \"complete\"", "\"status\": \"partial\"");
    assert_ne!(stopped, manifest);
    std::fs::write(run.join("manifest.json"), &stopped).unwrap();
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let edited = config.replace("eval = 60", "eval = 30");
    assert_ne!(edited, config);
    std::fs::write(run.join("config.toml"), &edited).unwrap();
    let before = snapshot(&run);
    let output = redqueen().arg("run").arg("--resume").arg(&run).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for wanted in ["--resume", "config.toml", "was edited since the run began", "put back"] {
        assert!(stderr.contains(wanted), "stderr lacks {wanted:?}: {stderr}");
    }
    assert_eq!(snapshot(&run), before, "the run folder changed");
    // The same file given explicitly is the same configuration: refused too.
    let given = dir.path().join("given.toml");
    std::fs::write(&given, &edited).unwrap();
    let output = redqueen()
        .arg("run")
        .arg(&given)
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Put back, it resumes.
    std::fs::write(run.join("config.toml"), &config).unwrap();
    redqueen().arg("run").arg("--resume").arg(&run).assert().success();
    // Recorded before the fingerprint was kept: taken as it is, and the
    // fingerprint recorded from then on.
    let mut old: serde_json::Value = serde_json::from_str(&stopped).unwrap();
    old.as_object_mut().unwrap().remove("config_fingerprint");
    std::fs::write(run.join("manifest.json"), serde_json::to_string_pretty(&old).unwrap()).unwrap();
    redqueen().arg("run").arg("--resume").arg(&run).assert().success();
    let manifest = std::fs::read_to_string(run.join("manifest.json")).unwrap();
    assert!(
        manifest.contains("\"config_fingerprint\"") && manifest.contains("\"complete\""),
        "{manifest}"
    );
    // `matrix --resume` checks it too.
    let matrix_run = stopped_matrix(dir.path(), "kind = \"mlp\"\nhidden = [4]");
    let config = std::fs::read_to_string(matrix_run.join("config.toml")).unwrap();
    std::fs::write(matrix_run.join("config.toml"), config.replace("eval = 60", "eval = 30")).unwrap();
    let output = redqueen()
        .arg("matrix")
        .arg("--resume")
        .arg(&matrix_run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("was edited since the run began"), "{stderr}");
}

/// A model whose training diverged is never measured: pretraining (a
/// tournament's, a matrix's) and a matrix row's training that end with NaN
/// weights stop the run with exit 2, naming the table whose learning rate
/// to lower; no round or row of it is recorded, and the model cache keeps
/// none of it.
#[test]
fn a_diverged_model_is_refused_before_anything_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let lr = ("epochs = 3", "epochs = 3\noptimizer = { lr = 1e30 }");
    let file = tiny_tournament_with(dir.path(), DEFENDER, &[lr]);
    let out = dir.path().join("run");
    let output = redqueen()
        .env("REDQUEEN_CACHE", &cache)
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pretraining diverged") && stderr.contains("`[pretrain]`"),
        "{stderr}"
    );
    assert!(std::fs::read_to_string(out.join("rounds.jsonl"))
        .unwrap_or_default()
        .is_empty());
    assert!(!out.join("summary.json").exists());
    let cached = std::fs::read_dir(cache.join("models")).map_or(0, |entries| entries.count());
    assert_eq!(cached, 0, "the diverged model was cached");

    // A weights file whose finite weights overflow the outputs: refused
    // too (it was measured, and its gallery did not read back).
    write_mlp_safetensors_filled(&dir.path().join("big.safetensors"), 784, 3e38);
    let weights = ("hidden = [64]", "hidden = [4]\nweights = \"big.safetensors\"");
    let file = tiny_tournament_with(dir.path(), DEFENDER, &[weights]);
    let output = redqueen()
        .current_dir(dir.path())
        .arg("run")
        .arg(&file)
        .args(["--out", "weights-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("big.safetensors") && stderr.contains("outputs on training images are NaN or infinite"),
        "{stderr}"
    );
    assert!(!dir.path().join("weights-run/summary.json").exists());

    let matrix = |pretrain: &str, training: &str| {
        let text = format!(
            "name = \"m\"\nseed = 5\neval = 60\n[data]\ndataset = \"synthetic-digits\"\ntrain = 600\ntest = 200\n[model]\nkind = \"mlp\"\nhidden = [16]\n[pretrain]\nepochs = 1\nbatch = 32\n{pretrain}\n[training]\nsteps = 5\nbatch = 32\n{training}\n[[attacks]]\nfamily = \"fgsm\"\neps = 0.1\n"
        );
        let path = dir.path().join("m.toml");
        std::fs::write(&path, text).unwrap();
        let out = dir.path().join("matrix-out");
        let output = redqueen()
            .arg("matrix")
            .arg(&path)
            .arg("--out")
            .arg(&out)
            .arg("--force")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!out.join("matrix.json").exists());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = matrix("optimizer = { lr = 1e30 }", "");
    assert!(stderr.contains("pretraining diverged"), "{stderr}");
    let stderr = matrix("", "optimizer = { lr = 1e30 }");
    assert!(
        stderr.contains("row 1 (against fgsm-linf-0.1) diverged") && stderr.contains("`[training]`"),
        "{stderr}"
    );
}

/// Runs recorded before f32s were written in their shortest form hold
/// `eps = 0.10000000149011612` where runs now hold `eps = 0.1`, and the
/// fingerprint of that text: they still resume (with no file, and with the
/// file they ran), and `compare` sees the same configuration.
#[test]
fn a_run_recorded_with_f32s_widened_still_resumes() {
    use redqueen::config::{self, matrix::MatrixFile, TournamentFile};
    use redqueen::record::content_fingerprint;
    /// Rewrite `run`'s config.toml as earlier versions wrote it (a `T`),
    /// its manifest `partial` with that text's fingerprint.
    fn widen<T: serde::Serialize + serde::de::DeserializeOwned>(run: &Path) {
        let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
        let widened = toml::to_string(&config::parse::<T>(&text, "config.toml").unwrap()).unwrap();
        assert!(
            widened.contains("0.10000000149011612") && !text.contains("0.10000000149011612"),
            "{text}"
        );
        std::fs::write(run.join("config.toml"), &widened).unwrap();
        let manifest = std::fs::read_to_string(run.join("manifest.json")).unwrap();
        let mut manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        manifest["status"] = "partial".into();
        manifest["config_fingerprint"] = content_fingerprint(widened.as_bytes()).into();
        std::fs::write(run.join("manifest.json"), manifest.to_string()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path(), "widened");
    let fresh = finished_run(dir.path(), "fresh");
    let rows = without_timing(&run.join("rounds.jsonl"));
    widen::<TournamentFile>(&run);
    let output = redqueen().args(["compare"]).arg(&run).arg(&fresh).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!stdout.contains("another configuration"), "{stdout}");
    let file = dir.path().join("tiny.toml");
    for given in [None, Some(&file)] {
        let mut resume = redqueen();
        resume
            .arg("run")
            .args(given)
            .arg("--resume")
            .arg(&run)
            .assert()
            .success();
        assert!(std::fs::read_to_string(run.join("manifest.json"))
            .unwrap()
            .contains("\"complete\""));
        assert_eq!(without_timing(&run.join("rounds.jsonl")), rows);
        widen::<TournamentFile>(&run);
    }
    let matrix_run = stopped_matrix(dir.path(), "kind = \"mlp\"\nhidden = [4]");
    widen::<MatrixFile>(&matrix_run);
    redqueen()
        .arg("matrix")
        .arg("--resume")
        .arg(&matrix_run)
        .assert()
        .success();
}

/// Rules added for written files (an attack twice in a repertoire, a
/// bandit key of the other algorithm) do not apply to a run's own
/// `config.toml`: a run recorded before them still resumes, while the same
/// settings in a file given are refused.
#[test]
fn a_recorded_configuration_is_not_held_to_rules_added_since() {
    use redqueen::record::content_fingerprint;
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path(), "older");
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    // Recorded with both algorithms' keys at their defaults.
    let ucb1 = "algorithm = \"ucb1\"\ngamma = 0.2\n";
    assert!(config.contains(ucb1), "{config}");
    let older = config.replacen(ucb1, "algorithm = \"ucb1\"\ngamma = 0.3\n", 1);
    std::fs::write(run.join("config.toml"), &older).unwrap();
    let manifest = std::fs::read_to_string(run.join("manifest.json")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    manifest["status"] = "partial".into();
    manifest["config_fingerprint"] = content_fingerprint(older.as_bytes()).into();
    std::fs::write(run.join("manifest.json"), manifest.to_string()).unwrap();
    let given = dir.path().join("given.toml");
    std::fs::write(&given, &older).unwrap();
    let output = redqueen()
        .arg("run")
        .arg(&given)
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("given.toml") && stderr.contains("`gamma` = 0.3 belongs to"),
        "{stderr}"
    );
    redqueen().arg("run").arg("--resume").arg(&run).assert().success();
    assert!(std::fs::read_to_string(run.join("manifest.json"))
        .unwrap()
        .contains("\"complete\""));
}

/// A run records what its weights file held: a resume after the file
/// changed in place is refused (the configuration names only the path),
/// and the run's files are kept; with the same bytes it resumes.
#[test]
fn resuming_after_the_weights_file_changed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    write_mlp_safetensors(&weights, 784);
    let model = format!(
        "kind = \"mlp\"\nhidden = [4]\nweights = {:?}",
        weights.display().to_string()
    );
    let file = dir
        .path()
        .join(tiny_with(dir.path(), &[("kind = \"mlp\"\nhidden = [64]", &model)]));
    let run = dir.path().join("out");
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&run)
        .assert()
        .success();
    let manifest = std::fs::read_to_string(run.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"weights_fingerprint\""), "{manifest}");
    // As if stopped after its last row (a complete run has nothing to resume).
    let stopped = manifest.replace("\"status\": \"complete\"", "\"status\": \"partial\"");
    assert_ne!(stopped, manifest);
    let resume = || {
        std::fs::write(run.join("manifest.json"), &stopped).unwrap();
        redqueen().arg("run").arg("--resume").arg(&run).output().unwrap()
    };
    let output = resume();
    assert_eq!(
        output.status.code(),
        Some(0),
        "the same bytes resume: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One weight changed in place: the path, and so the configuration, is the same.
    let mut bytes = std::fs::read(&weights).unwrap();
    *bytes.last_mut().unwrap() = 0x3f;
    std::fs::write(&weights, bytes).unwrap();
    std::fs::write(run.join("manifest.json"), &stopped).unwrap();
    let before = snapshot(&run);
    let output = resume();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for wanted in [
        "--resume",
        "w.safetensors",
        "holds other contents than when the run began",
    ] {
        assert!(stderr.contains(wanted), "stderr lacks {wanted:?}: {stderr}");
    }
    assert_eq!(snapshot(&run), before);
    // A run recorded before fingerprints were kept is resumed as it is, and
    // records the fingerprint from then on.
    let mut old: serde_json::Value = serde_json::from_str(&stopped).unwrap();
    old.as_object_mut().unwrap().remove("weights_fingerprint");
    std::fs::write(run.join("manifest.json"), serde_json::to_string_pretty(&old).unwrap()).unwrap();
    let output = redqueen().arg("run").arg("--resume").arg(&run).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let manifest = std::fs::read_to_string(run.join("manifest.json")).unwrap();
    assert!(
        manifest.contains("\"weights_fingerprint\"") && manifest.contains("\"complete\""),
        "{manifest}"
    );
    // A matrix from the same file: `matrix --resume` checks it too.
    let matrix_run = stopped_matrix(dir.path(), &model);
    let manifest = std::fs::read_to_string(matrix_run.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"weights_fingerprint\""), "{manifest}");
    write_mlp_safetensors(&weights, 784);
    let output = redqueen()
        .arg("matrix")
        .arg("--resume")
        .arg(&matrix_run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("holds other contents than when the run began"),
        "{stderr}"
    );
    // Shards of one run, the file changed between them: merge refuses.
    let parts: Vec<PathBuf> = (1..=2).map(|k| dir.path().join(format!("part{k}"))).collect();
    for (k, part) in parts.iter().enumerate() {
        if k == 1 {
            let mut bytes = std::fs::read(&weights).unwrap();
            *bytes.last_mut().unwrap() = 0x3f;
            std::fs::write(&weights, bytes).unwrap();
        }
        let shard = format!("{}/2", k + 1);
        redqueen()
            .arg("run")
            .arg(&file)
            .args(["--shard", &shard, "--out"])
            .arg(part)
            .assert()
            .success();
    }
    let merged = dir.path().join("merged");
    let output = redqueen()
        .arg("merge")
        .args(&parts)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("weights of different contents"), "{stderr}");
    assert!(!merged.exists(), "a refused merge writes nothing");
}

/// A run folder another run holds is refused with that run's pid, and its
/// files are kept; the lock is the OS's, so it goes with its process.
#[test]
fn a_second_run_on_a_folder_in_use_is_refused() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path(), "busy");
    // The run removed its lock file when it ended.
    assert!(!run.join(".redqueen.lock").exists());
    let mut held = std::fs::File::create(run.join(".redqueen.lock")).unwrap();
    write!(held, "4242").unwrap();
    held.lock().unwrap();
    let before = snapshot(&run);
    let file = dir.path().join("tiny.toml");
    let output = redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&run)
        .arg("--force")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in use by another redqueen run (pid 4242)"), "{stderr}");
    assert_eq!(snapshot(&run), before, "the held folder changed");
    drop(held);
    redqueen()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&run)
        .arg("--force")
        .assert()
        .success();
}

/// `--out /` is refused, with or without `--force`: `/` is never a run
/// folder.
#[test]
fn the_filesystem_root_is_never_an_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(dir.path(), DEFENDER);
    let had_manifest = Path::new("/manifest.json").exists();
    for force in [false, true] {
        let mut run = redqueen();
        run.arg("run").arg(&file).args(["--out", "/"]);
        if force {
            run.arg("--force");
        }
        let output = run.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("the root of the filesystem"), "{stderr}");
        assert_eq!(Path::new("/manifest.json").exists(), had_manifest);
    }
}

/// The README's "Writing a tournament" pattern from any folder: `use` of a
/// shipped strategy file falls back to the built-in copy, and `check` says
/// which file it used; a missing one lists what exists and where it looked.
#[test]
fn a_tournament_file_anywhere_can_use_the_shipped_strategies() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_tournament(dir.path(), "[[defenders]]\nuse = \"defenders/adversarial.toml\"");
    let output = redqueen().arg("check").arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        stdout.contains("strategies/defenders/adversarial.toml (built in)"),
        "{stdout}"
    );

    // A file on disk wins over the built-in one of the same name.
    std::fs::create_dir_all(dir.path().join("mine/defenders")).unwrap();
    std::fs::write(
        dir.path().join("mine/defenders/adversarial.toml"),
        "name = \"mine\"\nstrategy = { kind = \"standard\" }\n",
    )
    .unwrap();
    let output = redqueen()
        .arg("check")
        .arg(&file)
        .arg("--strategies")
        .arg(dir.path().join("mine"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("mine/defenders/adversarial.toml"), "{stdout}");
    assert!(!stdout.contains("(built in)"), "{stdout}");

    let missing = tiny_tournament(dir.path(), "[[defenders]]\nuse = \"defenders/adversarail.toml\"");
    let output = redqueen().arg("check").arg(&missing).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for needle in [
        "defenders/adversarail.toml",
        "nor is it built in",
        "did you mean `defenders/adversarial.toml`",
    ] {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    }
}
