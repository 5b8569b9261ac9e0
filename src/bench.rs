//! `redqueen bench`: the workloads of `shared/bench/torch_baseline.py`
//! (same shapes, batch, loss, optimizer and FLOP conventions), timed the
//! same way, so that `compare.py` can set the two side by side.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::attack::{ascend, Norm, ThreatModel};
use crate::config;
use crate::model::kernels::{self, View};
use crate::model::{Classifier, CrossEntropy, Engine, ModelConfig, Sgd};
use crate::tournament::{self, RunOptions, Silent};

const BATCH: usize = 128;
const EPS: f32 = 0.3;
const ALPHA: f32 = 0.1;
const PGD_STEPS: usize = 10;
const SGD: Sgd = Sgd {
    lr: 0.01,
    momentum: 0.9,
    weight_decay: 0.0,
};
const MLP_MATMUL_PARAMS: f64 = (784 * 256 + 256 * 256 + 256 * 10) as f64;
const CNN_FORWARD_MACS_PER_EXAMPLE: f64 = (28 * 28 * 32 * 25 + 14 * 14 * 64 * 25 * 32 + 3136 * 1024 + 1024 * 10) as f64;

/// One timed item: the median over blocks of (block time / steps).
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub reps: usize,
    pub steps_per_rep: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub redqueen: String,
    pub engine: String,
    pub threads: usize,
    pub batch: usize,
    #[serde(flatten)]
    pub items: BTreeMap<String, Item>,
}

fn time_blocks(mut step: impl FnMut(), steps: usize, reps: usize, warmup: usize) -> Item {
    for _ in 0..warmup {
        step();
    }
    let mut per_step: Vec<f64> = (0..reps)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..steps {
                step();
            }
            started.elapsed().as_secs_f64() / steps as f64
        })
        .collect();
    per_step.sort_by(f64::total_cmp);
    Item {
        median_s: per_step[per_step.len() / 2],
        min_s: per_step[0],
        max_s: per_step[per_step.len() - 1],
        reps,
        steps_per_rep: steps,
        gflops: None,
    }
}

fn uniform(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(0.0..1.0)).collect()
}

fn labels(n: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    (0..n).map(|_| rng.gen_range(0..10u8)).collect()
}

fn mlp() -> ModelConfig {
    ModelConfig::Mlp { hidden: vec![256, 256] }
}

/// One PGD-linf step as redqueen's attacks take it: input gradient, a signed
/// step, projection onto the ball and [0,1].
fn pgd_step(model: &dyn Classifier, adv: &mut [f32], clean: &[f32], y: &[u8]) {
    let (_, grad) = model.input_grad(adv, &CrossEntropy { labels: y });
    ascend(Norm::Linf, adv, &grad, ALPHA, model.input_dim());
    ThreatModel {
        norm: Norm::Linf,
        eps: EPS,
    }
    .project(adv, clean, model.input_dim());
}

/// A train step and a PGD step of `config`, batch 128. It times a bare
/// `train_step`, not `model::Trainer`, so that shuffling and batch gathering
/// stay out of the kernel's time.
fn bench_model(
    name: &str,
    config: &ModelConfig,
    forward_flop: f64,
    (steps, reps, warmup): (usize, usize, usize),
    items: &mut BTreeMap<String, Item>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut model = config.init(Engine::Native, 28, 28, 10, 0);
    let x = uniform(BATCH * 784, &mut rng);
    let y = labels(BATCH, &mut rng);
    let mut item = time_blocks(
        || {
            model.train_step(&x, &CrossEntropy { labels: &y }, &SGD);
        },
        steps,
        reps,
        warmup,
    );
    item.gflops = Some(3.0 * forward_flop / item.median_s / 1e9);
    items.insert(format!("{name}_train_step"), item);

    let mut adv = x.clone();
    let mut item = time_blocks(|| pgd_step(model.as_ref(), &mut adv, &x, &y), steps, reps, warmup);
    item.gflops = Some(2.0 * forward_flop / item.median_s / 1e9);
    items.insert(format!("{name}_pgd_step"), item);
}

/// PGD adversarial training over `x`: per batch of 128, a random start and
/// 10 PGD steps, then one SGD step on the adversarial batch. A fixed
/// workload for timing, so it steps the model itself rather than through
/// `model::Trainer`.
fn adversarial_epoch(model: &mut dyn Classifier, x: &[f32], y: &[u8], rng: &mut ChaCha8Rng) {
    let dim = model.input_dim();
    let ball = ThreatModel {
        norm: Norm::Linf,
        eps: EPS,
    };
    for (xb, yb) in x.chunks(BATCH * dim).zip(y.chunks(BATCH)) {
        let mut adv: Vec<f32> = xb.iter().map(|v| v + rng.gen_range(-EPS..EPS)).collect();
        ball.project(&mut adv, xb, dim);
        for _ in 0..PGD_STEPS {
            pgd_step(model, &mut adv, xb, yb);
        }
        model.train_step(&adv, &CrossEntropy { labels: yb }, &SGD);
    }
}

/// Run every workload with `threads` threads.
pub fn run(threads: usize, quick: bool, skip_cnn: bool) -> anyhow::Result<Report> {
    let threads = threads.max(1);
    // The pool the matrix multiplies run on; an error means it already exists.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    kernels::set_threads(threads);
    let mut items = BTreeMap::new();
    bench_models(quick, skip_cnn, &mut items);
    items.insert("gemm_128x784x256".into(), bench_gemm(quick));
    items.insert("mlp_advtrain_epoch".into(), bench_adversarial_epoch(quick));
    items.insert("tournament_default".into(), bench_tournament(threads, quick)?);
    Ok(Report {
        redqueen: env!("CARGO_PKG_VERSION").into(),
        engine: "native".into(),
        threads,
        batch: BATCH,
        items,
    })
}

/// The train and PGD steps of the MLP, and of the CNN unless skipped.
fn bench_models(quick: bool, skip_cnn: bool, items: &mut BTreeMap<String, Item>) {
    let mlp_forward_flop = 2.0 * BATCH as f64 * MLP_MATMUL_PARAMS;
    bench_model(
        "mlp",
        &mlp(),
        mlp_forward_flop,
        if quick { (20, 5, 20) } else { (50, 15, 20) },
        items,
    );
    if !skip_cnn {
        let cnn = ModelConfig::Cnn {
            channels: [32, 64],
            dense: 1024,
        };
        let cnn_forward_flop = 2.0 * BATCH as f64 * CNN_FORWARD_MACS_PER_EXAMPLE;
        bench_model(
            "cnn",
            &cnn,
            cnn_forward_flop,
            if quick { (2, 3, 3) } else { (5, 7, 3) },
            items,
        );
    }
}

/// The matrix multiply alone, at the MLP's largest shape.
fn bench_gemm(quick: bool) -> Item {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (a, b) = (uniform(BATCH * 784, &mut rng), uniform(784 * 256, &mut rng));
    let mut c = vec![0.0; BATCH * 256];
    let mut item = time_blocks(
        || kernels::matmul(&mut c, View::new(&a, BATCH, 784), View::new(&b, 784, 256), false),
        100,
        if quick { 5 } else { 15 },
        20,
    );
    item.gflops = Some(2.0 * (BATCH * 784 * 256) as f64 / item.median_s / 1e9);
    item
}

/// An epoch of PGD adversarial training of the MLP over 10,000 images,
/// after a warm-up on 1,280.
fn bench_adversarial_epoch(quick: bool) -> Item {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (x, y) = (uniform(10_000 * 784, &mut rng), labels(10_000, &mut rng));
    let mut model = mlp().init(Engine::Native, 28, 28, 10, 1);
    adversarial_epoch(model.as_mut(), &x[..1280 * 784], &y[..1280], &mut rng);
    let mut item = time_blocks(
        || adversarial_epoch(model.as_mut(), &x, &y, &mut rng),
        1,
        if quick { 2 } else { 5 },
        0,
    );
    let epoch_flop = 10_000.0 * 2.0 * MLP_MATMUL_PARAMS * (PGD_STEPS * 2 + 3) as f64;
    item.gflops = Some(epoch_flop / item.median_s / 1e9);
    item
}

/// The built-in default tournament, end to end, `threads` matches at once.
fn bench_tournament(threads: usize, quick: bool) -> anyhow::Result<Item> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut tournament_times = Vec::new();
    for _ in 0..if quick { 1 } else { 3 } {
        let mut plan = config::load_default()?;
        if quick {
            config::quick(&mut plan.file);
        }
        let dir = tempfile::tempdir()?;
        let options = RunOptions {
            out: dir.path().join("run"),
            jobs: threads,
            force: false,
            // As many matches as threads, one thread each.
            threads: Some(1),
            resume: false,
            shard: None,
        };
        let started = Instant::now();
        runtime.block_on(tournament::run(
            plan,
            options,
            Arc::new(Silent),
            Arc::new(AtomicBool::new(false)),
        ))?;
        tournament_times.push(started.elapsed().as_secs_f64());
    }
    tournament_times.sort_by(f64::total_cmp);
    Ok(Item {
        median_s: tournament_times[tournament_times.len() / 2],
        min_s: tournament_times[0],
        max_s: tournament_times[tournament_times.len() - 1],
        reps: tournament_times.len(),
        steps_per_rep: 1,
        gflops: None,
    })
}

/// The report as a table for the terminal.
pub fn table(report: &Report) -> String {
    let mut out = format!("redqueen bench, {} thread(s), batch {}\n", report.threads, report.batch);
    for (name, item) in &report.items {
        let gflops = item.gflops.map(|g| format!("  {g:7.1} GFLOP/s")).unwrap_or_default();
        out.push_str(&format!("  {name:22} {:11.3} ms{gflops}\n", item.median_s * 1e3));
    }
    out
}
