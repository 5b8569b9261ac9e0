//! `redqueen bench`: the workloads of `shared/bench/torch_baseline.py`
//! (same shapes, batch, loss, optimizer and FLOP conventions), timed the
//! same way, so that `compare.py` can set the two side by side; plus the
//! small CNN's PGD-training step of `shared/bench/torch_madry_small.py`,
//! and the machine's FMA peak that every GFLOP/s figure is read against.

mod peak;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::attack::pgd::PgdConfig;
use crate::attack::{ascend_projected, Attack, Norm, ThreatModel};
use crate::config;
use crate::model::kernels::{self, View};
use crate::model::{Classifier, CrossEntropy, Engine, ModelConfig, Optimizer, OptimizerConfig};
use crate::tournament::{self, RunOptions, Silent};

const BATCH: usize = 128;
const EPS: f32 = 0.3;
const ALPHA: f32 = 0.1;
const PGD_STEPS: usize = 10;
const SGD: OptimizerConfig = OptimizerConfig::sgd(0.01, 0.9, 0.0);
const MLP_MATMUL_PARAMS: f64 = (784 * 256 + 256 * 256 + 256 * 10) as f64;
const CNN_FORWARD_MACS_PER_EXAMPLE: f64 = (28 * 28 * 32 * 25 + 14 * 14 * 64 * 25 * 32 + 3136 * 1024 + 1024 * 10) as f64;
const SMALL_CNN_FORWARD_MACS_PER_EXAMPLE: f64 =
    (28 * 28 * 16 * 25 + 14 * 14 * 32 * 25 * 16 + 1568 * 100 + 100 * 10) as f64;
/// `torch_madry_small.py`'s training batch.
const MADRY_BATCH: usize = 64;

/// Every item `bench` can time, in the order it times them.
pub const ITEMS: &[&str] = &[
    "mlp_train_step",
    "mlp_pgd_step",
    "cnn_train_step",
    "cnn_pgd_step",
    "cnn_small_train_step",
    "cnn_small_pgd_step",
    "cnn_small_madry_step_b64",
    "gemm_128x784x256",
    "mlp_advtrain_epoch",
    "mlp_hand_pgd10_attack",
    "tournament_default",
];

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
    /// `gflops` as a percentage of the measured FMA peak.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_percent: Option<f64>,
    /// For a whole attack: the time per PGD step in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_step_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub redqueen: String,
    pub engine: String,
    pub threads: usize,
    pub batch: usize,
    /// The CPU as the OS names it (`model name` in /proc/cpuinfo).
    pub cpu: String,
    /// The microkernels gemm dispatched to: `avx512`, `avx2-fma` or `scalar`.
    pub kernel_family: &'static str,
    /// Whether the engine was built with AVX-512 (the `avx512` feature, on
    /// by default). Without it, gemm and the convolutions run AVX2 code
    /// even on a CPU with AVX-512.
    pub avx512_build: bool,
    /// The direct convolution kernels the engine may use (`avx512`, `avx2`,
    /// or `im2col` for none; `bench --conv` sets it), where a layer's shape
    /// suits them.
    pub conv_kernels: &'static str,
    /// Register-only FMA throughput of `threads` threads.
    pub fma_peak: peak::FmaPeak,
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
        peak_percent: None,
        per_step_ms: None,
    }
}

fn uniform(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(0.0..1.0)).collect()
}

fn labels(n: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    (0..n).map(|_| rng.gen_range(0..10u8)).collect()
}

fn mlp() -> ModelConfig {
    ModelConfig::mlp(vec![256, 256])
}

/// One PGD-linf step as redqueen's attacks take it: input gradient, a signed
/// step, projection onto the ball and [0,1].
fn pgd_step(model: &dyn Classifier, adv: &mut [f32], clean: &[f32], y: &[u8], grad: &mut Vec<f32>) {
    model.input_grad_into(adv, &CrossEntropy { labels: y }, grad);
    let ball = ThreatModel {
        norm: Norm::Linf,
        eps: EPS,
    };
    ascend_projected(ball, adv, grad, ALPHA, clean, model.input_dim());
}

/// A train step and a PGD step of `config`, batch 128. It times a bare
/// `train_step`, not `model::Trainer`, so that shuffling and batch gathering
/// stay out of the kernel's time.
fn bench_model(
    name: &str,
    config: &ModelConfig,
    forward_flop: f64,
    (steps, reps, warmup): (usize, usize, usize),
    wanted: &dyn Fn(&str) -> bool,
    items: &mut BTreeMap<String, Item>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut model = config.init(Engine::Native, crate::data::Shape::gray(28, 28), 10, 0);
    let x = uniform(BATCH * 784, &mut rng);
    let y = labels(BATCH, &mut rng);
    let train = format!("{name}_train_step");
    if wanted(&train) {
        let mut item = time_blocks(
            || {
                model.train_step(&x, &CrossEntropy { labels: &y }, &Optimizer::constant(SGD));
            },
            steps,
            reps,
            warmup,
        );
        item.gflops = Some(3.0 * forward_flop / item.median_s / 1e9);
        items.insert(train, item);
    }
    let pgd = format!("{name}_pgd_step");
    if wanted(&pgd) {
        let (mut adv, mut grad) = (x.clone(), Vec::new());
        let mut item = time_blocks(
            || pgd_step(model.as_ref(), &mut adv, &x, &y, &mut grad),
            steps,
            reps,
            warmup,
        );
        item.gflops = Some(2.0 * forward_flop / item.median_s / 1e9);
        items.insert(pgd, item);
    }
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
    let mut grad = Vec::new();
    for (xb, yb) in x.chunks(BATCH * dim).zip(y.chunks(BATCH)) {
        let mut adv: Vec<f32> = xb.iter().map(|v| v + rng.gen_range(-EPS..EPS)).collect();
        ball.project(&mut adv, xb, dim);
        for _ in 0..PGD_STEPS {
            pgd_step(model, &mut adv, xb, yb, &mut grad);
        }
        model.train_step(&adv, &CrossEntropy { labels: yb }, &Optimizer::constant(SGD));
    }
}

/// Run the workloads of [`ITEMS`] that `wanted` names, with `threads` threads.
pub fn run(threads: usize, quick: bool, wanted: &dyn Fn(&str) -> bool) -> anyhow::Result<Report> {
    let threads = threads.max(1);
    // The pool the matrix multiplies run on; an error means it already exists.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    kernels::set_threads(threads);
    let fma_peak = peak::measure(threads, quick);
    let mut items = BTreeMap::new();
    bench_models(quick, wanted, &mut items);
    let mut time = |name: &str, bench: &mut dyn FnMut() -> anyhow::Result<Item>| -> anyhow::Result<()> {
        if wanted(name) {
            items.insert(name.into(), bench()?);
        }
        Ok(())
    };
    time("cnn_small_madry_step_b64", &mut || Ok(bench_madry_small_step(quick)))?;
    time("gemm_128x784x256", &mut || Ok(bench_gemm(quick)))?;
    time("mlp_advtrain_epoch", &mut || Ok(bench_adversarial_epoch(quick)))?;
    time("mlp_hand_pgd10_attack", &mut || Ok(bench_pgd_attack(quick)))?;
    time("tournament_default", &mut || bench_tournament(threads, quick))?;
    if let Some(peak) = fma_peak.best() {
        for item in items.values_mut() {
            item.peak_percent = item.gflops.map(|g| 100.0 * g / peak);
        }
    }
    Ok(Report {
        redqueen: env!("CARGO_PKG_VERSION").into(),
        engine: "native".into(),
        threads,
        batch: BATCH,
        cpu: cpu_name(),
        kernel_family: peak::kernel_family(),
        avx512_build: cfg!(feature = "avx512"),
        conv_kernels: crate::model::ConvKernels::in_use(),
        fma_peak,
        items,
    })
}

/// The train and PGD steps of the MLP, the Madry CNN and the small CNN.
fn bench_models(quick: bool, wanted: &dyn Fn(&str) -> bool, items: &mut BTreeMap<String, Item>) {
    let madry_cnn = ModelConfig::cnn([32, 64], 1024);
    let models = [
        (
            "mlp",
            mlp(),
            MLP_MATMUL_PARAMS,
            if quick { (20, 5, 20) } else { (50, 15, 20) },
        ),
        (
            "cnn",
            madry_cnn,
            CNN_FORWARD_MACS_PER_EXAMPLE,
            if quick { (2, 3, 3) } else { (5, 7, 3) },
        ),
        (
            "cnn_small",
            small_cnn(),
            SMALL_CNN_FORWARD_MACS_PER_EXAMPLE,
            if quick { (5, 3, 5) } else { (20, 7, 5) },
        ),
    ];
    for (name, config, macs_per_example, repetitions) in models {
        let forward_flop = 2.0 * BATCH as f64 * macs_per_example;
        bench_model(name, &config, forward_flop, repetitions, wanted, items);
    }
}

/// The CPU's name, or `unknown` where /proc/cpuinfo does not say.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                line.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

/// A whole 10-step PGD-linf attack from a random start on the MLP, batch
/// 128, through redqueen's own `pgd` attack (eps 0.3, step 0.1).
fn bench_pgd_attack(quick: bool) -> Item {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let model = mlp().init(Engine::Native, crate::data::Shape::gray(28, 28), 10, 0);
    let (x, y) = (uniform(BATCH * 784, &mut rng), labels(BATCH, &mut rng));
    let attack = pgd10(ALPHA);
    let mut item = time_blocks(
        || {
            std::hint::black_box(attack.craft(model.as_ref(), &x, &y, &mut rng));
        },
        if quick { 5 } else { 10 },
        if quick { 5 } else { 15 },
        5,
    );
    item.per_step_ms = Some(item.median_s / PGD_STEPS as f64 * 1e3);
    item
}

/// `torch_madry_small.py`'s training step: on a batch of 64, PGD-linf at
/// 0.3 from a random start (10 steps of eps/4, through the `pgd` attack),
/// then one SGD step on the adversarial batch (the script uses Adam, whose
/// update is a negligible share of the step). 10 x 2 + 3 forward passes.
fn bench_madry_small_step(quick: bool) -> Item {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut model = small_cnn().init(Engine::Native, crate::data::Shape::gray(28, 28), 10, 0);
    let (x, y) = (uniform(MADRY_BATCH * 784, &mut rng), labels(MADRY_BATCH, &mut rng));
    let attack = pgd10(EPS / 4.0);
    let mut item = time_blocks(
        || {
            let adv = attack.craft(model.as_ref(), &x, &y, &mut rng);
            model.train_step(&adv, &CrossEntropy { labels: &y }, &Optimizer::constant(SGD));
        },
        if quick { 2 } else { 5 },
        if quick { 3 } else { 7 },
        2,
    );
    let forward_flop = 2.0 * MADRY_BATCH as f64 * SMALL_CNN_FORWARD_MACS_PER_EXAMPLE;
    item.gflops = Some((2 * PGD_STEPS + 3) as f64 * forward_flop / item.median_s / 1e9);
    item
}

/// redqueen's `pgd` attack at linf 0.3, 10 steps of `step` from a random start.
fn pgd10(step: f32) -> PgdConfig {
    let mut attack = PgdConfig::new(Norm::Linf, EPS);
    attack.steps = PGD_STEPS;
    attack.step_size = Some(step);
    attack
}

fn small_cnn() -> ModelConfig {
    ModelConfig::cnn([16, 32], 100)
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
    let mut model = mlp().init(Engine::Native, crate::data::Shape::gray(28, 28), 10, 1);
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
            // Pretraining is part of what the benchmark times.
            cache: None,
            save_models: false,
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
        peak_percent: None,
        per_step_ms: None,
    })
}

/// The report as a table for the terminal.
pub fn table(report: &Report) -> String {
    let mut out = format!(
        "redqueen bench, {} thread(s), batch {} ({} for the Madry step)\n{}, gemm kernels: {}, direct conv kernels: {}{}\n",
        report.threads,
        report.batch,
        MADRY_BATCH,
        report.cpu,
        report.kernel_family,
        report.conv_kernels,
        if report.avx512_build { "" } else { " (built without AVX-512)" }
    );
    let peak = |g: Option<f64>| g.map(|g| format!("{g:.1} GFLOP/s")).unwrap_or_else(|| "none".into());
    out.push_str(&format!(
        "FMA peak, {} thread(s): 256-bit {}, 512-bit {}\n",
        report.threads,
        peak(report.fma_peak.fma256_gflops),
        peak(report.fma_peak.fma512_gflops)
    ));
    for (name, item) in &report.items {
        let gflops = item.gflops.map(|g| format!("  {g:7.1} GFLOP/s")).unwrap_or_default();
        let share = item
            .peak_percent
            .map(|p| format!("  {p:5.1}% of peak"))
            .unwrap_or_default();
        let per_step = item
            .per_step_ms
            .map(|p| format!("  ({p:.3} ms per PGD step)"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {name:26} {:11.3} ms{gflops}{share}{per_step}\n",
            item.median_s * 1e3
        ));
    }
    out
}
