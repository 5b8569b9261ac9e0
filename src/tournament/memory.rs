//! Whether a tournament fits in this machine's memory: an estimate, made
//! before anything is loaded or written, of what the plan holds at its peak
//! (datasets, each running match's models, activations, replay buffers and
//! stale example sets), so that `run` refuses a plan that would abort on an
//! allocation hours in. It is an upper estimate, not an accounting: it
//! assumes every match keeps the largest batch of any agent.

use serde_json::Value;

use crate::config::Plan;
use crate::data::Shape;
use crate::model::ModelConfig;

const F32: u64 = 4;

/// What the estimate is made of, in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub parts: Vec<(&'static str, u64)>,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.parts.iter().fold(0u64, |sum, (_, b)| sum.saturating_add(*b))
    }

    /// `parts` as `name 1.2 GiB, ...`.
    pub fn describe(&self) -> String {
        self.parts
            .iter()
            .map(|(name, bytes)| format!("{name} {}", gib(*bytes)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The peak memory of `plan` run with `jobs` matches at once.
pub fn estimate(plan: &Plan, jobs: usize) -> Estimate {
    let file = &plan.file;
    // The shape where it is known before loading (an unreadable idx header
    // fails the load itself).
    let shape = file.data.known_shape().unwrap_or(Shape::MNIST);
    let image = shape.dim() as u64 * F32;
    let seeds = file.seed_list().len() as u64;
    let jobs = (jobs as u64)
        .min((plan.matches().len() as u64).saturating_mul(seeds))
        .max(1);
    let config = serde_json::to_value(file).unwrap_or(Value::Null);
    let largest = |key: &str| largest_under(&config, key);

    // Every seed keeps its own training and evaluation images.
    let datasets = (file.data.train as u64 + file.data.test as u64)
        .saturating_mul(image + 1)
        .saturating_mul(seeds);
    let (parameters, per_image) = model_size(&file.model, shape);
    // Weights, gradients, two optimizer moments, and the copies a match
    // makes (pretrained, deployed, evaluated, the specialist).
    let models = parameters.saturating_mul(F32 * 8);
    // Forward activations and their gradients for the largest batch a
    // training step or an attack (in batches of EVAL_BATCH) takes at once,
    // and the evaluation and crafting images with a few working copies.
    let batch = largest("batch")
        .max(crate::arena::metrics::EVAL_BATCH as u64)
        .max(file.pretrain.batch as u64);
    let activations = batch.saturating_mul(per_image).saturating_mul(F32 * 3);
    let sets = (file.sizes.eval as u64 + file.sizes.craft as u64)
        .saturating_mul(image)
        .saturating_mul(4);
    let replay = largest("replay").saturating_mul(image + 1);
    // Every round's zero-day examples are kept to measure staleness.
    let stale = (file.rounds as u64)
        .saturating_mul(file.sizes.eval as u64)
        .saturating_mul(image);
    let crafted = (file.sizes.craft as u64).saturating_mul(image).saturating_mul(4);
    let per_match = [models, activations, sets, replay, stale, crafted]
        .iter()
        .fold(0u64, |s, b| s.saturating_add(*b));
    Estimate {
        parts: vec![
            ("datasets", datasets),
            ("matches running at once", per_match.saturating_mul(jobs)),
        ],
    }
}

/// A model's parameter count and the floats one image's forward pass
/// holds (inputs of every layer, im2col buffers included).
fn model_size(model: &ModelConfig, shape: Shape) -> (u64, u64) {
    let (pixels, depth) = (shape.pixels() as u64, shape.channels as u64);
    const CLASSES: u64 = 10;
    match model {
        ModelConfig::Mlp { hidden, .. } => {
            let widths: Vec<u64> = std::iter::once(pixels * depth)
                .chain(hidden.iter().map(|&h| h as u64))
                .chain([CLASSES])
                .collect();
            let parameters = widths
                .windows(2)
                .fold(0u64, |s, w| s.saturating_add(w[0].saturating_mul(w[1]) + w[1]));
            let activations = widths.iter().fold(0u64, |s, w| s.saturating_add(w * 2));
            (parameters, activations)
        }
        ModelConfig::Cnn { channels, dense, .. } => {
            let (c1, c2, dense) = (channels[0] as u64, channels[1] as u64, *dense as u64);
            let (full, half, quarter) = (pixels, pixels / 4, pixels / 16);
            let parameters = [
                25 * depth * c1 + c1,
                25 * c1 * c2 + c2,
                quarter * c2 * dense + dense,
                dense * CLASSES + CLASSES,
            ]
            .iter()
            .fold(0u64, |s, p| s.saturating_add(*p));
            let activations = [
                full * depth * 26,
                full * c1 * 3,
                half * c1 * 26,
                half * c2 * 3,
                quarter * c2,
                dense * 2,
                CLASSES,
            ]
            .iter()
            .fold(0u64, |s, a| s.saturating_add(*a));
            (parameters, activations)
        }
    }
}

/// The largest whole number under `key` anywhere in `value` (0 if none).
fn largest_under(value: &Value, key: &str) -> u64 {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match (k == key, v.as_u64()) {
                (true, Some(n)) => n,
                _ => largest_under(v, key),
            })
            .max()
            .unwrap_or(0),
        Value::Array(items) => items.iter().map(|v| largest_under(v, key)).max().unwrap_or(0),
        _ => 0,
    }
}

/// The memory this machine has free for a new process (Linux's
/// MemAvailable); `None` where it cannot be told.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_tournament_is_small_and_huge_plans_are_not() {
        let plan = crate::config::load_default().unwrap();
        let small = estimate(&plan, 2).total();
        assert!(small < 1 << 30, "{}", gib(small));

        let mut wide = plan.clone();
        wide.file.model = ModelConfig::mlp(vec![16_384; 3]);
        let big = estimate(&wide, 2);
        // Three 16,384-unit layers: 2 x 16,384^2 weights, 8 copies of 4 bytes, 2 matches.
        assert!(big.total() > 30 << 30, "{}", big.describe());

        let mut long = plan.clone();
        long.file.rounds = 10_000;
        long.file.sizes.eval = 100_000;
        long.file.data.test = 100_000;
        assert!(estimate(&long, 1).total() > 1 << 40);
    }

    #[test]
    fn largest_under_finds_nested_keys() {
        let v = serde_json::json!({ "a": { "batch": 64 }, "b": [{ "batch": 512 }, { "x": 1 }] });
        assert_eq!(largest_under(&v, "batch"), 512);
        assert_eq!(largest_under(&v, "replay"), 0);
    }
}
