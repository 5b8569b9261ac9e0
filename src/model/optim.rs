//! Optimizers and learning-rate schedules: every parameter update of both
//! engines is computed here, so that the engines agree by construction and
//! a new optimizer is one match arm.
//!
//! An engine computes the gradients and hands each parameter tensor to
//! [`Optimizer::update`] together with the [`OptimizerState`] it keeps for
//! the model (as a PyTorch checkpoint keeps the optimizer beside the
//! weights): the engine never reads that state, it only carries it, so that
//! a defender's momentum survives from one round to the next and a cloned
//! model carries its own copy.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Which update rule an optimizer applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with (optionally Nesterov) momentum and
    /// L2 weight decay added to the gradient.
    Sgd,
    /// Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient.
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter 2019).
    AdamW,
}

/// How the learning rate changes over a training run, as a multiple of `lr`
/// at each fraction of the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `lr` throughout.
    Constant,
    /// Multiplied by `decay` at each milestone (fractions of the run).
    Piecewise { milestones: Vec<f32>, decay: f32 },
    /// Half a cosine from `lr` down to 0.
    Cosine,
    /// Linear from 0 up to `lr` at fraction `peak` of the run, then linear
    /// down to 0 (Wong et al. 2020's cyclic schedule).
    OneCycle { peak: f32 },
}

/// An optimizer and its learning-rate schedule, as written in a file:
/// `optimizer = { lr = 0.05, momentum = 0.9 }` (SGD, the default kind) or
/// `optimizer = { kind = "adam", lr = 1e-3, schedule = "cosine" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawOptimizer", into = "RawOptimizer")]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f32,
    /// SGD's momentum.
    pub momentum: f32,
    /// SGD: Nesterov momentum.
    pub nesterov: bool,
    pub weight_decay: f32,
    /// Adam's decay rates of the first and second moment estimates.
    pub betas: [f32; 2],
    /// Adam's denominator term.
    pub eps: f32,
    pub schedule: Schedule,
}

const DEFAULT_MOMENTUM: f32 = 0.9;
const DEFAULT_BETAS: [f32; 2] = [0.9, 0.999];
const DEFAULT_EPS: f32 = 1e-8;
const DEFAULT_DECAY: f32 = 0.1;
const DEFAULT_PEAK: f32 = 0.4;

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::sgd(0.05, DEFAULT_MOMENTUM, 0.0)
    }
}

impl OptimizerConfig {
    /// SGD with momentum at a constant learning rate.
    pub const fn sgd(lr: f32, momentum: f32, weight_decay: f32) -> OptimizerConfig {
        OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr,
            momentum,
            nesterov: false,
            weight_decay,
            betas: DEFAULT_BETAS,
            eps: DEFAULT_EPS,
            schedule: Schedule::Constant,
        }
    }

    /// Adam at a constant learning rate, PyTorch's defaults otherwise.
    pub const fn adam(lr: f32) -> OptimizerConfig {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            betas: DEFAULT_BETAS,
            eps: DEFAULT_EPS,
            schedule: Schedule::Constant,
        }
    }

    /// The same optimizer with another schedule.
    pub fn with_schedule(mut self, schedule: Schedule) -> OptimizerConfig {
        self.schedule = schedule;
        self
    }

    /// The optimizer for step `step` (from 0) of a run of `steps`: the
    /// learning rate its schedule gives there.
    pub fn at(&self, step: usize, steps: usize) -> Optimizer {
        // The middle of the step, so that a schedule starting at 0 (one-cycle)
        // still moves on the first step.
        let progress = ((step as f32 + 0.5) / steps.max(1) as f32).min(1.0);
        let factor = match &self.schedule {
            Schedule::Constant => 1.0,
            Schedule::Piecewise { milestones, decay } => {
                decay.powi(milestones.iter().filter(|&&m| progress >= m).count() as i32)
            }
            Schedule::Cosine => 0.5 * (1.0 + (std::f32::consts::PI * progress).cos()),
            Schedule::OneCycle { peak } => {
                if progress < *peak {
                    progress / peak
                } else {
                    (1.0 - progress) / (1.0 - peak)
                }
            }
        };
        Optimizer {
            config: self.clone(),
            lr: self.lr * factor,
        }
    }
}

/// An optimizer at one step: its settings and the learning rate of the step.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    pub config: OptimizerConfig,
    pub lr: f32,
}

impl Optimizer {
    /// The optimizer at a constant learning rate (the configured `lr`).
    pub fn constant(config: OptimizerConfig) -> Optimizer {
        let lr = config.lr;
        Optimizer { config, lr }
    }

    /// Applies one update to every parameter tensor, `(weights, gradient)`
    /// in the model's fixed order, carrying `state` from step to step.
    pub fn update<'w>(
        &self,
        state: &mut OptimizerState,
        tensors: impl ExactSizeIterator<Item = (&'w mut [f32], &'w [f32])>,
    ) {
        let c = &self.config;
        let count = tensors.len();
        if state.kind != Some(c.kind) || state.first.len() != count {
            // A new optimizer (or another kind than the model trained with
            // before) starts from zero moments, as a fresh one in PyTorch.
            *state = OptimizerState {
                kind: Some(c.kind),
                ..OptimizerState::default()
            };
        }
        state.steps += 1;
        let lr = self.lr;
        let [beta1, beta2] = c.betas;
        let t = state.steps.min(i32::MAX as u64) as i32;
        let (correction1, correction2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        for (p, (w, g)) in tensors.enumerate() {
            if state.first.len() <= p {
                state.first.push(vec![0.0; w.len()]);
                if c.kind != OptimizerKind::Sgd {
                    state.second.push(vec![0.0; w.len()]);
                }
            }
            let first = &mut state.first[p];
            match c.kind {
                OptimizerKind::Sgd if c.nesterov => elementwise(w, first, None, g, |w, v, _, g| {
                    for ((w, v), g) in w.iter_mut().zip(v).zip(g) {
                        let g = g + c.weight_decay * *w;
                        *v = c.momentum * *v + g;
                        *w -= lr * (g + c.momentum * *v);
                    }
                }),
                OptimizerKind::Sgd => elementwise(w, first, None, g, |w, v, _, g| {
                    for ((w, v), g) in w.iter_mut().zip(v).zip(g) {
                        *v = c.momentum * *v + g + c.weight_decay * *w;
                        *w -= lr * *v;
                    }
                }),
                OptimizerKind::Adam | OptimizerKind::AdamW => {
                    let decoupled = c.kind == OptimizerKind::AdamW;
                    elementwise(w, first, Some(&mut state.second[p]), g, |w, m, v, g| {
                        for (((w, m), v), g) in w.iter_mut().zip(m).zip(v).zip(g) {
                            let g = if decoupled { *g } else { g + c.weight_decay * *w };
                            if decoupled {
                                *w -= lr * c.weight_decay * *w;
                            }
                            *m = beta1 * *m + (1.0 - beta1) * g;
                            *v = beta2 * *v + (1.0 - beta2) * g * g;
                            let (m_hat, v_hat) = (*m / correction1, *v / correction2);
                            *w -= lr * m_hat / (v_hat.sqrt() + c.eps);
                        }
                    })
                }
            }
        }
    }
}

/// Elements per parallel task of an update.
const UPDATE_CHUNK: usize = 1 << 14;

/// `rule(weights, first, second, gradient)` over matching chunks of one
/// tensor (`second` is empty where the rule keeps no second buffer), on the
/// engine's threads when the tensor is large. An update is elementwise, so
/// the split changes no bits; a dense layer of millions of weights is
/// otherwise a few milliseconds on one core while the other waits.
fn elementwise<F>(w: &mut [f32], first: &mut [f32], second: Option<&mut [f32]>, g: &[f32], rule: F)
where
    F: Fn(&mut [f32], &mut [f32], &mut [f32], &[f32]) + Send + Sync,
{
    use rayon::prelude::*;
    if crate::model::kernels::threads() < 2 || w.len() < 2 * UPDATE_CHUNK {
        return rule(w, first, second.unwrap_or(&mut []), g);
    }
    match second {
        None => w
            .par_chunks_mut(UPDATE_CHUNK)
            .zip(first.par_chunks_mut(UPDATE_CHUNK))
            .zip(g.par_chunks(UPDATE_CHUNK))
            .for_each(|((w, a), g)| rule(w, a, &mut [], g)),
        Some(second) => w
            .par_chunks_mut(UPDATE_CHUNK)
            .zip(first.par_chunks_mut(UPDATE_CHUNK))
            .zip(second.par_chunks_mut(UPDATE_CHUNK))
            .zip(g.par_chunks(UPDATE_CHUNK))
            .for_each(|(((w, a), b), g)| rule(w, a, b, g)),
    }
}

/// What an optimizer remembers between steps: momentum (SGD) or the moment
/// estimates and step count (Adam), one buffer per parameter tensor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptimizerState {
    kind: Option<OptimizerKind>,
    steps: u64,
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
}

impl OptimizerState {
    /// The kind it was built by (none before its first step).
    pub fn kind(&self) -> Option<OptimizerKind> {
        self.kind
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Its buffers: the first moments (SGD's momentum), then the second
    /// (Adam's), one per parameter tensor.
    pub fn buffers(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.first, &self.second)
    }

    /// A state saved from its kind, steps and buffers.
    pub fn from_parts(kind: Option<OptimizerKind>, steps: u64, first: Vec<Vec<f32>>, second: Vec<Vec<f32>>) -> Self {
        OptimizerState {
            kind,
            steps,
            first,
            second,
        }
    }
}

/// The optimizer as written: every key optional, so that a key that does not
/// belong to the kind is an error rather than silently ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptimizer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<OptimizerKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lr: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    momentum: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nesterov: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight_decay: Option<f32>,
    #[serde(default, deserialize_with = "two_betas", skip_serializing_if = "Option::is_none")]
    betas: Option<[f32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    eps: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    milestones: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decay: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peak: Option<f32>,
}

/// The optimizers by `kind`, for `list`.
pub const OPTIMIZERS: &[(&str, &str)] = &[
    (
        "sgd",
        "the default: `lr`, `momentum` (0.9), `nesterov` (false), `weight_decay` (0, added to the gradient)",
    ),
    (
        "adam",
        "`lr`, `betas` ([0.9, 0.999]), `eps` (1e-8), `weight_decay` (0, added to the gradient)",
    ),
    (
        "adamw",
        "Adam with decoupled `weight_decay` (0.01, PyTorch's; Loshchilov & Hutter 2019)",
    ),
];

/// The schedules by name, for errors and `list`.
pub const SCHEDULES: &[(&str, &str)] = &[
    ("constant", "`lr` throughout (default)"),
    (
        "piecewise",
        "`lr` times `decay` (default 0.1) at each of `milestones`, fractions of the run",
    ),
    ("cosine", "half a cosine from `lr` to 0"),
    (
        "one-cycle",
        "linear from 0 to `lr` at fraction `peak` (default 0.4), then to 0 (Wong et al. 2020)",
    ),
];

impl TryFrom<RawOptimizer> for OptimizerConfig {
    type Error = Error;

    fn try_from(raw: RawOptimizer) -> Result<OptimizerConfig, Error> {
        let invalid = |message: String| Err(Error::invalid(message));
        let kind = raw.kind.unwrap_or(OptimizerKind::Sgd);
        let Some(lr) = raw.lr else {
            return invalid("the optimizer needs `lr`, the learning rate".into());
        };
        let sgd_only = [
            ("momentum", raw.momentum.is_some()),
            ("nesterov", raw.nesterov.is_some()),
        ];
        let adam_only = [("betas", raw.betas.is_some()), ("eps", raw.eps.is_some())];
        let (foreign, other) = if kind == OptimizerKind::Sgd {
            (adam_only, "adam\" or \"adamw")
        } else {
            (sgd_only, "sgd")
        };
        if let Some((key, _)) = foreign.iter().find(|(_, given)| *given) {
            return invalid(format!(
                "`{key}` belongs to `kind = \"{other}\"`, not to `kind = \"{}\"`",
                kind_name(kind)
            ));
        }
        let schedule = raw.schedule.as_deref().unwrap_or("constant");
        let schedule_only = |key: &str, given: bool, schedule_of: &str| {
            if given && schedule != schedule_of {
                Err(Error::invalid(format!(
                    "`{key}` belongs to `schedule = \"{schedule_of}\"`, not to `schedule = \"{schedule}\"`"
                )))
            } else {
                Ok(())
            }
        };
        schedule_only("milestones", raw.milestones.is_some(), "piecewise")?;
        schedule_only("decay", raw.decay.is_some(), "piecewise")?;
        schedule_only("peak", raw.peak.is_some(), "one-cycle")?;
        let schedule = match schedule {
            "constant" => Schedule::Constant,
            "cosine" => Schedule::Cosine,
            "piecewise" => Schedule::Piecewise {
                milestones: raw.milestones.unwrap_or_else(|| vec![0.5, 0.75]),
                decay: raw.decay.unwrap_or(DEFAULT_DECAY),
            },
            "one-cycle" => Schedule::OneCycle {
                peak: raw.peak.unwrap_or(DEFAULT_PEAK),
            },
            other => {
                let names: Vec<&str> = SCHEDULES.iter().map(|(name, _)| *name).collect();
                return invalid(format!("unknown `schedule` {other:?}; valid: {}", names.join(", ")));
            }
        };
        let config = OptimizerConfig {
            kind,
            lr,
            momentum: raw.momentum.unwrap_or(if kind == OptimizerKind::Sgd {
                DEFAULT_MOMENTUM
            } else {
                0.0
            }),
            nesterov: raw.nesterov.unwrap_or(false),
            // AdamW's default decay is PyTorch's; the others add none.
            weight_decay: raw
                .weight_decay
                .unwrap_or(if kind == OptimizerKind::AdamW { 0.01 } else { 0.0 }),
            betas: raw.betas.unwrap_or(DEFAULT_BETAS),
            eps: raw.eps.unwrap_or(DEFAULT_EPS),
            schedule,
        };
        config.validate()?;
        Ok(config)
    }
}

/// `betas` as written: exactly two numbers (TOML's reader fills a pair
/// from the first two of a longer list, silently dropping the rest).
fn two_betas<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<[f32; 2]>, D::Error> {
    let betas = Vec::<f32>::deserialize(deserializer)?;
    <[f32; 2]>::try_from(betas).map(Some).map_err(|betas| {
        serde::de::Error::custom(format!(
            "`betas` takes two numbers, [beta1, beta2] (as `betas = [0.9, 0.999]`); got {}",
            betas.len()
        ))
    })
}

fn kind_name(kind: OptimizerKind) -> &'static str {
    match kind {
        OptimizerKind::Sgd => "sgd",
        OptimizerKind::Adam => "adam",
        OptimizerKind::AdamW => "adamw",
    }
}

impl From<OptimizerConfig> for RawOptimizer {
    /// Written back as read: SGD as `{ lr, momentum, weight_decay }` (what
    /// run folders held before there were other optimizers), other keys only
    /// where they apply or differ from their defaults.
    fn from(c: OptimizerConfig) -> RawOptimizer {
        let sgd = c.kind == OptimizerKind::Sgd;
        let mut raw = RawOptimizer {
            kind: (!sgd).then_some(c.kind),
            lr: Some(c.lr),
            momentum: sgd.then_some(c.momentum),
            nesterov: (sgd && c.nesterov).then_some(true),
            weight_decay: Some(c.weight_decay),
            betas: (!sgd && c.betas != DEFAULT_BETAS).then_some(c.betas),
            eps: (!sgd && c.eps != DEFAULT_EPS).then_some(c.eps),
            ..RawOptimizer::default()
        };
        match c.schedule {
            Schedule::Constant => {}
            Schedule::Cosine => raw.schedule = Some("cosine".into()),
            Schedule::Piecewise { milestones, decay } => {
                raw.schedule = Some("piecewise".into());
                raw.milestones = Some(milestones);
                raw.decay = Some(decay);
            }
            Schedule::OneCycle { peak } => {
                raw.schedule = Some("one-cycle".into());
                raw.peak = Some(peak);
            }
        }
        raw
    }
}

impl OptimizerConfig {
    /// Why these settings cannot train, if they cannot.
    pub fn validate(&self) -> crate::Result<()> {
        let invalid = |message: String| Err(Error::invalid(message));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return invalid(format!("`lr` must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return invalid(format!("`momentum` must be in [0, 1), got {}", self.momentum));
        }
        if self.nesterov && self.momentum == 0.0 {
            return invalid("`nesterov = true` needs a `momentum` above 0".into());
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return invalid(format!(
                "`weight_decay` must be a number, 0 or more, got {}",
                self.weight_decay
            ));
        }
        if self.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return invalid(format!("`betas` must both be in [0, 1), got {:?}", self.betas));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return invalid(format!("`eps` must be a positive number, got {}", self.eps));
        }
        match &self.schedule {
            Schedule::Piecewise { milestones, decay } => {
                if milestones.iter().any(|m| !(m.is_finite() && *m > 0.0 && *m < 1.0)) {
                    return invalid(format!(
                        "`milestones` are fractions of the run, each strictly between 0 and 1, got {milestones:?}"
                    ));
                }
                if milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return invalid(format!("`milestones` must increase, got {milestones:?}"));
                }
                if !(decay.is_finite() && *decay > 0.0 && *decay <= 1.0) {
                    return invalid(format!("`decay` must be in (0, 1], got {decay}"));
                }
            }
            Schedule::OneCycle { peak } => {
                if !(peak.is_finite() && *peak > 0.0 && *peak < 1.0) {
                    return invalid(format!("`peak` must be strictly between 0 and 1, got {peak}"));
                }
            }
            Schedule::Constant | Schedule::Cosine => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OptimizerConfig, String> {
        #[derive(Deserialize)]
        struct File {
            optimizer: OptimizerConfig,
        }
        toml::from_str::<File>(text)
            .map(|f| f.optimizer)
            .map_err(|e| e.to_string())
    }

    /// One update of a single-tensor "model" whose gradient is `g`.
    fn step(opt: &Optimizer, state: &mut OptimizerState, w: &mut [f32], g: &[f32]) {
        opt.update(state, std::iter::once((w, g)));
    }

    #[test]
    fn an_update_split_over_threads_gives_the_bits_of_one_thread() {
        use crate::model::kernels::with_threads;
        // Over two chunks and a ragged end, so that two threads split it.
        let n = 2 * UPDATE_CHUNK + 123;
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        for text in [
            "optimizer = { lr = 0.05, momentum = 0.9, weight_decay = 0.001 }",
            "optimizer = { lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 0.001 }",
            "optimizer = { kind = \"adam\", lr = 1e-3, weight_decay = 0.001 }",
            "optimizer = { kind = \"adamw\", lr = 1e-3, weight_decay = 0.01 }",
        ] {
            let opt = Optimizer::constant(parse(text).unwrap());
            let runs: Vec<_> = [1, 2]
                .into_iter()
                .map(|t| {
                    with_threads(t, || {
                        let (mut state, mut w) = (OptimizerState::default(), vec![0.5; n]);
                        for _ in 0..3 {
                            step(&opt, &mut state, &mut w, &g);
                        }
                        (w, state)
                    })
                })
                .collect();
            assert_ne!(runs[0].0, vec![0.5; n], "{text}: nothing was updated");
            assert_eq!(runs[0], runs[1], "{text}");
        }
    }

    #[test]
    fn sgd_as_written_before_other_optimizers_reads_and_writes_the_same() {
        let config = parse("optimizer = { lr = 0.05, momentum = 0.9, weight_decay = 0.0 }").unwrap();
        assert_eq!(config, OptimizerConfig::default());
        let written = crate::config::to_toml(&config);
        assert_eq!(written.trim(), "lr = 0.05\nmomentum = 0.9\nweight_decay = 0.0");
        // toml's own writing widens an f32 to f64, as run folders held it
        // before: the fingerprints they recorded are of that text
        // (config::fingerprints), so it must not change.
        let widened = toml::to_string(&config).unwrap();
        assert_eq!(
            widened.trim(),
            "lr = 0.05000000074505806\nmomentum = 0.8999999761581421\nweight_decay = 0.0"
        );
    }

    #[test]
    fn every_config_round_trips() {
        for text in [
            "optimizer = { kind = \"adam\", lr = 1e-3 }",
            "optimizer = { kind = \"adamw\", lr = 1e-3, weight_decay = 0.01, betas = [0.8, 0.99] }",
            "optimizer = { lr = 0.1, nesterov = true, schedule = \"piecewise\", milestones = [0.3, 0.9] }",
            "optimizer = { lr = 0.1, schedule = \"one-cycle\", peak = 0.25 }",
            "optimizer = { kind = \"adam\", lr = 1e-3, schedule = \"cosine\" }",
        ] {
            let config = parse(text).unwrap();
            let back: OptimizerConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
            assert_eq!(back, config, "{text}");
        }
    }

    #[test]
    fn keys_of_another_kind_or_schedule_are_errors_naming_them() {
        for (text, needle) in [
            (
                "optimizer = { kind = \"adam\", lr = 1e-3, momentum = 0.9 }",
                "`momentum` belongs to `kind = \"sgd\"`",
            ),
            (
                "optimizer = { lr = 0.1, betas = [0.9, 0.99] }",
                "`betas` belongs to `kind = \"adam\" or \"adamw\"`",
            ),
            (
                "optimizer = { lr = 0.1, milestones = [0.5] }",
                "`milestones` belongs to `schedule = \"piecewise\"`",
            ),
            (
                "optimizer = { lr = 0.1, schedule = \"linear\" }",
                "valid: constant, piecewise, cosine, one-cycle",
            ),
            (
                "optimizer = { lr = 0.1, schedule = \"piecewise\", milestones = [0.5, 0.2] }",
                "must increase",
            ),
            (
                "optimizer = { lr = 0.1, schedule = \"one-cycle\", peak = 1.0 }",
                "`peak`",
            ),
            ("optimizer = { kind = \"adam\" }", "needs `lr`"),
            ("optimizer = { kind = \"rmsprop\", lr = 0.1 }", "rmsprop"),
            ("optimizer = { lr = 0.1, nesterov = true, momentum = 0.0 }", "nesterov"),
            ("optimizer = { lr = 0.1, speed = 2 }", "speed"),
            // A longer list once lost its tail silently.
            (
                "optimizer = { kind = \"adam\", lr = 1e-3, betas = [0.5, 0.6, 0.7] }",
                "got 3",
            ),
            (
                "optimizer = { kind = \"adam\", lr = 1e-3, betas = [0.5] }",
                "two numbers",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn schedules_give_the_documented_learning_rates() {
        let lr_at = |schedule: Schedule, step: usize| {
            OptimizerConfig::sgd(1.0, 0.0, 0.0)
                .with_schedule(schedule)
                .at(step, 10)
                .lr
        };
        assert_eq!(lr_at(Schedule::Constant, 7), 1.0);
        let piecewise = Schedule::Piecewise {
            milestones: vec![0.5, 0.8],
            decay: 0.1,
        };
        assert_eq!(lr_at(piecewise.clone(), 4), 1.0);
        assert!((lr_at(piecewise.clone(), 5) - 0.1).abs() < 1e-7);
        assert!((lr_at(piecewise, 9) - 0.01).abs() < 1e-7);
        assert!(lr_at(Schedule::Cosine, 0) > 0.99 && lr_at(Schedule::Cosine, 9) < 0.01);
        let cycle: Vec<f32> = (0..10).map(|s| lr_at(Schedule::OneCycle { peak: 0.5 }, s)).collect();
        assert!(cycle[0] > 0.0 && cycle[0] < 0.2, "{cycle:?}");
        assert!(cycle[4] > 0.85 && cycle[9] < 0.15, "{cycle:?}");
        assert!(cycle.windows(2).take(4).all(|w| w[1] > w[0]));
    }

    #[test]
    fn sgd_momentum_and_nesterov_follow_pytorch() {
        // torch.optim.SGD([w], lr=0.1, momentum=0.5[, nesterov=True]) on a
        // constant gradient of 1, from w = 1: v1 = 1, v2 = 1.5.
        let mut plain = OptimizerConfig::sgd(0.1, 0.5, 0.0);
        let (mut w, mut state) = (vec![1.0f32], OptimizerState::default());
        for _ in 0..2 {
            step(&Optimizer::constant(plain.clone()), &mut state, &mut w, &[1.0]);
        }
        assert!((w[0] - (1.0 - 0.1 - 0.15)).abs() < 1e-6, "{w:?}");
        plain.nesterov = true;
        let (mut w, mut state) = (vec![1.0f32], OptimizerState::default());
        for _ in 0..2 {
            step(&Optimizer::constant(plain.clone()), &mut state, &mut w, &[1.0]);
        }
        // Steps of g + m v: 1 + 0.5 = 1.5, then 1 + 0.75 = 1.75.
        assert!((w[0] - (1.0 - 0.15 - 0.175)).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn adam_moves_each_weight_by_about_lr_at_first_and_adamw_decays_apart() {
        let adam = Optimizer::constant(OptimizerConfig::adam(0.01));
        let (mut w, mut state) = (vec![1.0f32, -2.0], OptimizerState::default());
        step(&adam, &mut state, &mut w, &[3.0, -0.001]);
        assert!((w[0] - 0.99).abs() < 1e-5 && (w[1] + 1.99).abs() < 1e-4, "{w:?}");

        let mut decoupled = OptimizerConfig::adam(0.01);
        decoupled.kind = OptimizerKind::AdamW;
        decoupled.weight_decay = 0.5;
        let (mut w, mut state) = (vec![1.0f32], OptimizerState::default());
        step(&Optimizer::constant(decoupled), &mut state, &mut w, &[0.0]);
        // A zero gradient: only the decay, w (1 - lr wd).
        assert!((w[0] - 0.995).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn another_kind_starts_from_fresh_state() {
        let (mut w, mut state) = (vec![0.0f32], OptimizerState::default());
        step(
            &Optimizer::constant(OptimizerConfig::sgd(1.0, 0.9, 0.0)),
            &mut state,
            &mut w,
            &[1.0],
        );
        step(
            &Optimizer::constant(OptimizerConfig::adam(0.1)),
            &mut state,
            &mut w,
            &[1.0],
        );
        assert_eq!(state.steps, 1);
        assert!((w[0] + 1.1).abs() < 1e-5, "{w:?}");
    }
}
