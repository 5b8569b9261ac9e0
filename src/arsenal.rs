//! `redqueen attacks`: every registered attack, at the default tournament's
//! budgets, against an undefended and a PGD-trained MLP on synthetic
//! digits: robust accuracy, queries and the norms of what succeeded.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::arena::metrics::{correct, fraction, robust};
use crate::arena::referee;
use crate::attack::*;
use crate::config::PretrainConfig;
use crate::data::synthetic_digits;
use crate::defense::{Defense, PgdAtConfig, RoundData};
use crate::model::{Classifier, Engine, ModelConfig, OptimizerConfig};
use crate::record::Norms;
use crate::tournament::{eval_subset, pretrain};

/// One attack against one model.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub attack: String,
    pub access: Access,
    pub model: String,
    pub robust_acc: f64,
    /// The evaluation images `robust_acc` is a share of.
    pub images: usize,
    /// Per evaluation image, for query attacks.
    pub queries: Option<f64>,
    /// Mean norms of the successful examples.
    pub norms: Option<Norms>,
}

/// The attacks of the table: every registered attack's variants, at the
/// default tournament's budgets (linf 0.1, l2 2.0, l1 10, rotations up to
/// 30 degrees with translations up to 3 pixels), in registry order.
pub fn attacks() -> Vec<AttackConfig> {
    AttackConfig::ENTRIES.iter().flat_map(|e| (e.variants)()).collect()
}

/// Train the two models and run every attack against both.
pub fn run(quick: bool) -> Vec<Row> {
    let seed = 1;
    let data = synthetic_digits(seed, 4000, 1000);
    let eval = eval_subset(&data.test, if quick { 100 } else { 200 }, seed);
    let mlp = ModelConfig::mlp(vec![256, 256]);
    let settings = PretrainConfig {
        length: crate::model::Length::Epochs(4),
        ..PretrainConfig::default()
    };
    let standard = pretrain(&mlp, Engine::Native, &settings, &data.train, data.classes, seed);
    let mut pgd_at_model = standard.boxed_clone();
    let mut pgd_at = PgdAtConfig {
        attack: {
            let mut a = PgdConfig::new(Norm::Linf, 0.1);
            a.steps = 7;
            a
        },
        steps: if quick { 100 } else { 400 },
        batch: 64,
        optimizer: OptimizerConfig::sgd(0.02, 0.9, 0.0),
        eps_warmup: 0,
    };
    let round = RoundData {
        crafted: &[],
        crafted_labels: &[],
        train: &data.train,
    };
    pgd_at.update(pgd_at_model.as_mut(), &round, &mut ChaCha8Rng::seed_from_u64(seed));

    let models: [(&str, &dyn Classifier); 2] = [("standard", standard.as_ref()), ("pgd-at", pgd_at_model.as_ref())];
    let dim = data.train.dim();
    let mut rows = Vec::new();
    for config in attacks() {
        for (name, model) in models {
            let clean = correct(model, &eval.images, &eval.labels);
            let crafted = config.run_with(
                model,
                &eval.images,
                &eval.labels,
                &mut ChaCha8Rng::seed_from_u64(seed),
                100,
                Some(&data.train),
            );
            let checked = referee::check(config.threat(), crafted.examples, &eval.images, dim);
            let robust = robust(model, &checked.examples, &eval.labels, &clean);
            let success: Vec<bool> = clean.iter().zip(&robust).map(|(&c, &r)| c && !r).collect();
            rows.push(Row {
                attack: config.label(),
                access: config.access(),
                model: name.to_string(),
                robust_acc: fraction(&robust),
                images: eval.labels.len(),
                queries: crafted.queries.map(|q| q as f64 / eval.labels.len() as f64),
                norms: Norms::mean(&checked.examples, &eval.images, dim, &success),
            });
        }
    }
    rows
}

/// The rows as a Markdown table, one line per attack.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| attack | access | robust acc, standard | robust acc, pgd-at | queries / image (standard, pgd-at) | mean l2 / linf of successes (standard) |\n| --- | --- | ---: | ---: | ---: | ---: |\n",
    );
    for pair in rows.chunks(2) {
        let (s, p) = (&pair[0], &pair[1]);
        let queries = match (s.queries, p.queries) {
            (Some(a), Some(b)) => format!("{a:.0}, {b:.0}"),
            _ => "-".into(),
        };
        let norms = s
            .norms
            .map(|n| format!("{:.2} / {:.3}", n.l2, n.linf))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {queries} | {norms} |\n",
            s.attack,
            s.access.name(),
            with_interval(s),
            with_interval(p)
        ));
    }
    if let Some(first) = rows.first() {
        out.push_str(&format!(
            "\n[..]: 95% Wilson intervals over {} evaluation images, one seed.\n",
            first.images
        ));
    }
    out
}

/// A robust accuracy with its interval over the images.
fn with_interval(row: &Row) -> String {
    match crate::record::stats::wilson95_acc(row.robust_acc, row.images) {
        Some((low, high)) => format!(
            "{:.1}% [{:.1}, {:.1}]",
            100.0 * row.robust_acc,
            100.0 * low,
            100.0 * high
        ),
        None => format!("{:.1}%", 100.0 * row.robust_acc),
    }
}
