//! The pictures of a run, and `report.html`: one self-contained page
//! (inline SVG and CSS, no scripts, nothing fetched).

use std::collections::BTreeMap;

use super::plots::{self, Dash, Series};
use super::Run;
use crate::error::{Error, Result};
use crate::record::{GalleryItem, Manifest, MatrixResult, Summary};

/// One picture: its file under `plots/`, and what the page says about it.
pub struct Plot {
    pub file: String,
    pub title: String,
    pub svg: String,
}

fn plot_error(what: &str) -> impl FnOnce(plots::PlotError) -> Error + '_ {
    move |e| Error::Io {
        context: format!("drawing {what}"),
        source: std::io::Error::other(e.to_string()),
    }
}

/// A file name from an agent's name: letters, digits, '-' and '_' only, so
/// no name can reach outside `plots/`. A name that had to change (or is
/// long) gets a hash of the whole name, so that two names never share a file.
pub fn file_stem(name: &str) -> String {
    const LONGEST: usize = 64;
    let safe: String = name
        .chars()
        .take(LONGEST)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe == name && !name.is_empty() {
        return safe;
    }
    let hash = crate::rng::fnv1a(name.as_bytes(), crate::rng::FNV_OFFSET);
    format!("{safe}-{:08x}", hash as u32)
}

/// Per defender, per round: the mean over its matches (attackers and
/// seeds) of each robustness metric.
fn robustness_series(run: &Run, defender: &str) -> (Vec<usize>, Vec<Series>) {
    let mut by_round: BTreeMap<usize, Vec<&crate::record::RoundRow>> = BTreeMap::new();
    for row in run.rows.iter().filter(|r| r.defender == defender) {
        by_round.entry(row.round).or_default().push(row);
    }
    let rounds: Vec<usize> = by_round.keys().copied().collect();
    let mean = |f: &dyn Fn(&crate::record::RoundRow) -> Option<f64>| -> Vec<Option<f64>> {
        by_round
            .values()
            .map(|rows| {
                let values: Option<Vec<f64>> = rows.iter().map(|r| f(r)).collect();
                values.map(|v| v.iter().sum::<f64>() / v.len() as f64)
            })
            .collect()
    };
    let mut series = vec![
        Series {
            dash: Dash::Dashed,
            ..Series::new("zero-day", mean(&|r| Some(r.zero_day_acc)))
        },
        // The per-image worst cases, as the leaderboards rank by.
        Series::new("seen, all", mean(&|r| Some(r.seen_union_acc))),
        Series::new("unseen, all", mean(&|r| r.unseen_union_acc)),
        Series {
            dash: Dash::Dotted,
            ..Series::new("stale", mean(&|r| Some(r.stale_acc)))
        },
        Series::new("clean", mean(&|r| Some(r.clean_acc))),
    ];
    // With specialists: the unseen attacks that have one, the defender's
    // mean accuracy under them and the specialists' (their distance is the
    // mean unseen_vs_specialist).
    let with_specialists = by_round.values().flatten().any(|r| !r.specialist_acc.is_empty());
    if with_specialists {
        use crate::record::RoundRow;
        let over = |f: fn(&RoundRow, &str) -> Option<f64>| {
            move |r: &RoundRow| -> Option<f64> {
                let values: Option<Vec<f64>> = r.specialist_acc.keys().map(|a| f(r, a)).collect();
                values
                    .filter(|v| !v.is_empty())
                    .map(|v| v.iter().sum::<f64>() / v.len() as f64)
            }
        };
        series.push(Series::new(
            "unseen, mean",
            mean(&over(|r, a| r.unseen_acc.get(a).copied())),
        ));
        series.push(Series::new(
            "specialists, mean",
            mean(&over(|r, a| r.specialist_acc.get(a).copied())),
        ));
    }
    // The headline lines get their 95% bands: Wilson over the evaluation
    // images (conservative for means over matches; with several seeds the
    // leaderboards' intervals are over seeds instead, as the figure's
    // caption says).
    let images = run.summary.as_ref().map_or(0, |s| s.intervals.eval_images);
    for s in series
        .iter_mut()
        .filter(|s| s.label == "seen, all" || s.label == "unseen, all")
    {
        s.band = s
            .values
            .iter()
            .map(|v| v.and_then(|v| crate::record::stats::wilson95_acc(v, images)))
            .collect();
    }
    (rounds, series)
}

/// Every picture the run's files allow.
pub fn plots(run: &Run) -> Result<Vec<Plot>> {
    let mut out = Vec::new();
    if let Some(summary) = &run.summary {
        if !summary.payoff.attackers.is_empty() {
            out.push(payoff_plot(summary)?);
        }
        for d in &summary.defenders {
            out.push(robustness_plot(run, &d.defender)?);
        }
    }
    if let Some(matrix) = &run.matrix {
        out.push(matrix_plot(matrix)?);
    }
    if !run.gallery.is_empty() {
        out.push(gallery_plot(&run.gallery, &class_names(&run.config))?);
    }
    Ok(out)
}

/// The payoff matrix as a heat map, with each side's equilibrium mix.
fn payoff_plot(summary: &Summary) -> Result<Plot> {
    let payoff = &summary.payoff;
    let eq = summary.equilibrium.as_ref();
    let row_mix: Option<Vec<f64>> = eq.map(|e| e.attackers.iter().map(|w| w.probability).collect());
    let col_mix: Option<Vec<f64>> = eq.map(|e| e.defenders.iter().map(|w| w.probability).collect());
    let title = match eq {
        Some(eq) => format!("Payoff: mean attacker reward (equilibrium value {:.3})", eq.value),
        None => "Payoff: mean attacker reward (no equilibrium: a pairing has no completed match)".into(),
    };
    Ok(Plot {
        file: "payoff".into(),
        // Rewards in the terminal's unit (0.529, not 52.9%).
        svg: plots::heat_map_in(
            plots::Unit::Fraction,
            &title,
            &payoff.attackers,
            &payoff.defenders,
            &payoff.reward,
            "attacker reward",
            row_mix.as_deref(),
            col_mix.as_deref(),
        )
        .map_err(plot_error("the payoff heat map"))?,
        title,
    })
}

/// One defender's robustness over rounds, with the seen-unseen gap shaded
/// where the run has an unseen panel.
fn robustness_plot(run: &Run, defender: &str) -> Result<Plot> {
    let (rounds, series) = robustness_series(run, defender);
    let has_unseen = series[2].values.iter().any(|v| v.is_some());
    let title = format!("{defender}: robustness over rounds");
    Ok(Plot {
        file: format!("robustness-{}", file_stem(defender)),
        svg: plots::robustness_over_rounds(&title, &rounds, &series, has_unseen.then_some((1, 2)))
            .map_err(plot_error("a robustness plot"))?,
        title,
    })
}

/// The generalization matrix as a heat map: clean accuracy, then each attack.
fn matrix_plot(matrix: &MatrixResult) -> Result<Plot> {
    let rows: Vec<String> = matrix
        .rows
        .iter()
        .map(|r| format!("trained on {}", r.trained_on))
        .collect();
    let mut cols = vec!["clean".to_string()];
    cols.extend(matrix.attacks.iter().cloned());
    let values: Vec<Vec<Option<f64>>> = matrix
        .rows
        .iter()
        .map(|r| {
            std::iter::once(r.clean_acc)
                .chain(r.robust_acc.iter().copied())
                .map(Some)
                .collect()
        })
        .collect();
    let title = "Generalization matrix: robust accuracy".to_string();
    Ok(Plot {
        file: "matrix".into(),
        svg: plots::heat_map(&title, &rows, &cols, &values, "robust accuracy", None, None)
            .map_err(plot_error("the generalization matrix"))?,
        title,
    })
}

/// The classes' names of the run's data (its `config.toml`'s `[data]`);
/// empty when the labels are their own names or the config cannot be read.
fn class_names(config: &str) -> Vec<String> {
    config
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("data").cloned())
        .and_then(|d| d.try_into::<crate::config::DataConfig>().ok())
        .map(|d| d.class_names())
        .unwrap_or_default()
}

/// The gallery's examples, pixels scaled from bytes to [0, 1].
fn gallery_plot(gallery: &[GalleryItem], class_names: &[String]) -> Result<Plot> {
    let items: Vec<plots::GalleryItem> = gallery
        .iter()
        .map(|g| plots::GalleryItem {
            attack: g.attack.clone(),
            channels: g.channels,
            rows: g.rows,
            cols: g.cols,
            clean: g.clean.iter().map(|&p| p as f32 / 255.0).collect(),
            adversarial: g.adversarial.iter().map(|&p| p as f32 / 255.0).collect(),
            true_label: g.true_label,
            clean_pred: g.clean_pred,
            clean_conf: g.clean_conf,
            adv_pred: g.adv_pred,
            adv_conf: g.adv_conf,
            class_names: class_names.to_vec(),
        })
        .collect();
    let title = "Adversarial examples against the pretrained model".to_string();
    Ok(Plot {
        file: "gallery".into(),
        svg: plots::gallery(&items).map_err(plot_error("the gallery"))?,
        title,
    })
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG document as an inline element (no XML declaration).
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(start) => &svg[start..],
        None => svg,
    }
}

/// A table with one more column.
fn with_column(
    (mut header, rows): (Vec<String>, Vec<Vec<String>>),
    name: &str,
    cells: impl Iterator<Item = String>,
) -> (Vec<String>, Vec<Vec<String>>) {
    header.push(name.to_string());
    let rows = rows
        .into_iter()
        .zip(cells)
        .map(|(mut row, cell)| {
            row.push(cell);
            row
        })
        .collect();
    (header, rows)
}

fn table((header, rows): (Vec<String>, Vec<Vec<String>>)) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in header {
        out.push_str(&format!("<th>{}</th>", escape(&h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            // A value over its interval: two lines in the terminal, two here.
            let cell = match escape(&cell).split_once('\n') {
                Some((value, interval)) => format!("{value}<br><small>{interval}</small>"),
                None => escape(&cell),
            };
            out.push_str(&format!("<td>{cell}</td>"));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn figure(plot: &Plot, caption: &str) -> String {
    format!(
        "<figure id=\"{}\">{}<figcaption>{}</figcaption></figure>",
        escape(&plot.file),
        inline_svg(&plot.svg),
        caption
    )
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
.meta{color:#666}table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#f3f3f3}td small{white-space:nowrap;color:#555}
td:first-child,th:first-child,td:nth-child(2){text-align:left}
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}details{margin:1em 0}
.guide dt{font-weight:bold;margin-top:.6em}";

const GUIDE: &str = "<dl class=\"guide\">
<dt>zero-day</dt><dd>Accuracy under the attack picked this round, against the model before it retrains: the defender facing something it has never trained on. The payoff matrix's reward is one minus it. The attacker's own policy never sees it: it learns from the same attack's success on its attacker slice, training images no defender learns from.</dd>
<dt>seen, all</dt><dd>After retraining, the share of evaluation images that every attack used so far in the match fails on, each re-run against the updated model (the per-image worst case; the per-attack worst case, seen worst, is in the files).</dd>
<dt>unseen, all</dt><dd>The same over the held-out panel, attacks no agent may use, run through BPDA or EOT where the defense calls for it: how far the robustness carries to what was never trained on.</dd>
<dt>gap (shaded)</dt><dd>seen, all minus unseen, all. A wide band is adversarial training failing to generalize.</dd>
<dt>intervals</dt><dd>The bracket under each accuracy is its 95% interval: Wilson over the evaluation images with one seed, Student's t over seeds with several; the line under the table says which.</dd>
<dt>stale</dt><dd>Accuracy on examples crafted against earlier models, replayed. Above seen worst, it shows how much a non-adaptive evaluation overstates robustness.</dd>
<dt>payoff and equilibrium</dt><dd>Each cell is the attacker's mean reward against that defender. The equilibrium is the pair of mixed strategies neither side can improve on alone; its value is the reward an attacker can guarantee against the best defender mix. A defender with weight in the equilibrium is worth deploying against an unknown, adaptive attacker.</dd>
<dt>ratings</dt><dd>Bradley-Terry fitted on every match, each scored by the attacker's mean reward, on the Elo scale (400 points: 10-to-1 odds).</dd>
<dt>generalization matrix</dt><dd>Rows are defenders trained against one attack; columns, the attacks they face. A bright diagonal with a dark off-diagonal is robustness that does not transfer across perturbation types.</dd>
<dt>gallery</dt><dd>The clean image, its adversarial version and the perturbation (amplified to be visible), with the model's answer and confidence on each.</dd>
</dl>";

/// The whole page.
pub fn page(run: &Run, plots: &[Plot]) -> String {
    let m = &run.manifest;
    let mut body = page_heading(m);
    body.push_str(&setup(
        &run.config,
        &run.gallery,
        run.matrix.as_ref().and_then(|m| m.image_shape),
    ));
    let find = |file: &str| plots.iter().find(|p| p.file == file);
    if let Some(s) = &run.summary {
        body.push_str(&leaderboards(s));
        if let Some(p) = find("payoff") {
            body.push_str("<h2>The game</h2>");
            body.push_str(&figure(
                p,
                "Rows: attackers; columns: defenders; cells: mean attacker reward. Bars: each side's equilibrium mix.",
            ));
        }
        body.push_str("<h2>The race, per defender</h2>");
        for d in &s.defenders {
            if let Some(p) = find(&format!("robustness-{}", file_stem(&d.defender))) {
                body.push_str(&figure(
                    p,
                    "Mean over the defender's matches (a match whose defender diverged drops out after that round). The shaded band is the gap between seen and unseen robustness; the light bands around seen, all and unseen, all are 95% Wilson intervals over the evaluation images at each round (with several seeds, not the tables' intervals over seeds).",
                ));
            }
        }
    }
    if let Some(p) = find("matrix") {
        body.push_str("<h2>Generalization matrix</h2>");
        body.push_str(&figure(
            p,
            "Rows: the attack a defender was trained against (none: the pretrained model); columns: the attack it is evaluated under.",
        ));
    }
    if let Some(p) = find("gallery") {
        body.push_str("<h2>Adversarial examples</h2>");
        body.push_str(&figure(p, "Clean, adversarial, and the perturbation amplified."));
    }
    body.push_str("<h2>How to read this report</h2>");
    body.push_str(GUIDE);
    body.push_str(&format!(
        "<h2>Configuration</h2><details><summary>config.toml (rerunning it reproduces the run)</summary><pre>{}</pre></details>",
        escape(&run.config)
    ));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>redqueen: {}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(&m.name)
    )
}

/// What the run was, at the top of the page: the data, the model, the
/// budgets, each attacker's repertoire, the defenders, the unseen panel and
/// how many evaluation images a number rests on (so one image's weight is
/// visible); read from the run's own resolved `config.toml`, and the image
/// shape from its gallery, else as the run `recorded` it (a matrix has no
/// gallery; a report never reads the dataset). Empty when it
/// is neither a tournament nor a matrix file of this version.
fn setup(config: &str, gallery: &[GalleryItem], recorded: Option<crate::data::Shape>) -> String {
    use crate::config::matrix::MatrixFile;
    use crate::config::TournamentFile;
    let shape = gallery
        .first()
        .map(|g| crate::data::Shape {
            channels: g.channels,
            rows: g.rows,
            cols: g.cols,
        })
        .or(recorded);
    let rows = if let Ok(file) = toml::from_str::<TournamentFile>(config) {
        tournament_setup(&file, shape)
    } else if let Ok(file) = toml::from_str::<MatrixFile>(config) {
        vec![
            setup_row("data", data_text(&file.data, shape)),
            setup_row("model", model_text(&file.model)),
            setup_row("attacks", attack_labels(&file.attacks)),
            setup_row("evaluation images", images_text(file.eval)),
        ]
    } else {
        return String::new();
    };
    format!("<h2>Setup</h2><dl class=\"setup\">{}</dl>", rows.concat())
}

/// A tournament's setup rows, in the order the page shows them.
fn tournament_setup(file: &crate::config::TournamentFile, shape: Option<crate::data::Shape>) -> Vec<String> {
    let rules = &file.rules;
    let budgets: Vec<String> = [("linf", rules.linf), ("l2", rules.l2), ("l1", rules.l1)]
        .iter()
        .filter_map(|(n, b)| b.map(|b| format!("{n} {b}")))
        .chain(
            rules
                .spatial
                .map(|s| format!("spatial {}° / {} px", s.degrees, s.pixels)),
        )
        .chain([format!("{} queries per image", rules.queries)])
        .collect();
    let pretraining = match (file.model.weights(), &file.pretrain.attack) {
        (Some(path), _) => format!("none: the weights in {} (PyTorch layout)", path.display()),
        (None, Some(a)) => format!("adversarial, against {}", a.label()),
        (None, None) => "clean".into(),
    };
    let mut rows = vec![
        setup_row("data", data_text(&file.data, shape)),
        setup_row("model", model_text(&file.model)),
        setup_row("pretraining", pretraining),
        setup_row("budgets", budgets.join(", ")),
        setup_row(
            "rounds and seeds",
            format!("{} rounds, seeds {:?}", file.rounds, file.seed_list()),
        ),
    ];
    // The resolved file writes every entry inline.
    for entry in &file.attackers {
        if let (Some(name), Some(policy), Some(repertoire)) = (&entry.name, &entry.policy, &entry.repertoire) {
            rows.push(setup_row(
                &format!("attacker {name}"),
                format!("{} over {}", policy.registry_name(), attack_labels(repertoire)),
            ));
        }
    }
    for entry in &file.defenders {
        if let (Some(name), Some(strategy)) = (&entry.name, &entry.strategy) {
            rows.push(setup_row(
                &format!("defender {name}"),
                strategy.registry_name().to_string(),
            ));
        }
    }
    let unseen = if file.unseen.is_empty() {
        "none".into()
    } else {
        attack_labels(&file.unseen)
    };
    rows.push(setup_row("unseen panel", unseen));
    rows.push(setup_row("evaluation images", images_text(file.sizes.eval)));
    rows
}

fn setup_row(what: &str, text: String) -> String {
    format!("<dt>{}</dt><dd>{}</dd>", escape(what), escape(&text))
}

fn data_text(d: &crate::config::DataConfig, shape: Option<crate::data::Shape>) -> String {
    format!(
        "{}{}: {} training images, {} test images{}",
        d.dataset,
        shape
            .or_else(|| d.fixed_shape())
            .map_or(String::new(), |s| format!(" ({s} images)")),
        d.train,
        d.test,
        d.path
            .as_ref()
            .map_or(String::new(), |p| format!(", from {}", p.display()))
    )
}

fn model_text(m: &crate::model::ModelConfig) -> String {
    match m {
        crate::model::ModelConfig::Mlp { hidden, .. } => format!("mlp, hidden layers {hidden:?}"),
        crate::model::ModelConfig::Cnn { channels, dense, .. } => {
            format!("cnn, 5x5 conv channels {channels:?}, dense {dense}")
        }
    }
}

fn images_text(n: usize) -> String {
    format!(
        "{n} (one image is {:.2} points of an accuracy)",
        100.0 / n.max(1) as f64
    )
}

fn attack_labels(attacks: &[crate::attack::AttackConfig]) -> String {
    attacks.iter().map(|a| a.label()).collect::<Vec<_>>().join(", ")
}

/// The page's title and the run's provenance line.
fn page_heading(m: &Manifest) -> String {
    format!(
        "<h1>redqueen: {}</h1><p class=\"meta\">seed {} · dataset {} (fingerprint {}) · status {} · started {} · redqueen {}</p>",
        escape(&m.name),
        m.seed,
        escape(&m.dataset),
        escape(&m.dataset_fingerprint),
        match m.status {
            crate::record::Status::Complete => "complete",
            crate::record::Status::Partial => "partial",
        },
        escape(&m.started),
        escape(&m.redqueen_version),
    )
}

/// The partial-run warning, then the defenders' and attackers' leaderboards
/// with whom each is not separable from, and any diverged matches.
fn leaderboards(s: &Summary) -> String {
    let mut out = String::new();
    let partial = super::partial_line(s);
    if !partial.is_empty() {
        out.push_str(&format!(
            "<p class=\"partial\"><strong>{}</strong></p>",
            escape(&partial)
        ));
    }
    if s.matches.is_empty() {
        return out;
    }
    let key = s
        .defenders
        .first()
        .map(|d| super::ranking_key(d).0)
        .unwrap_or("aurc_unseen_union");
    out.push_str(&format!(
        "<h2>Defenders</h2><p>Ranked by {} (the mean over rounds of the share of evaluation images that every {} attack fails on: the per-image worst case); final-round accuracies are means over attackers and seeds. {} {}</p>",
        if key == "aurc_unseen_union" { "AURC unseen, all" } else { "AURC seen, all" },
        if key == "aurc_unseen_union" { "unseen-panel" } else { "seen" },
        escape(super::ALL_LINE),
        escape(&super::intervals_line(s)),
    ));
    let ties = s.defenders.iter().map(|d| d.not_separable_from.join(", "));
    out.push_str(&table(with_column(
        super::defender_table(s),
        "not separable from",
        ties,
    )));
    if let Some(specialists) = super::specialist_table(s) {
        out.push_str(&format!(
            "<h2>The unseen panel against the specialists</h2><p>{}</p>",
            escape(super::SPECIALIST_LINE)
        ));
        out.push_str(&table(specialists));
    }
    let diverged = super::diverged_lines(s);
    if !diverged.is_empty() {
        out.push_str(&format!(
            "<p class=\"diverged\">{}</p>",
            escape(&diverged).replace('\n', "<br>")
        ));
    }
    out.push_str("<h2>Attackers</h2>");
    let ties = s.attackers.iter().map(|a| a.not_separable_from.join(", "));
    out.push_str(&table(with_column(
        super::attacker_table(s),
        "not separable from",
        ties,
    )));
    out
}

#[cfg(test)]
mod file_stem_tests {
    use super::file_stem;

    #[test]
    fn stems_stay_in_the_folder_and_never_collide() {
        assert_eq!(file_stem("pgd-at_2"), "pgd-at_2");
        for name in ["..", "../x", "/etc/passwd", "a/../../b", "\\..\\x", "", "é"] {
            let stem = file_stem(name);
            assert!(
                !stem.is_empty() && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{name:?} -> {stem:?}"
            );
            assert!(!stem.contains(".."), "{name:?} -> {stem:?}");
        }
        assert!(file_stem("..").starts_with("__-"));
        // Names that sanitize alike still get their own files.
        assert_ne!(file_stem("a b"), file_stem("a_b"));
        assert_ne!(file_stem("a b"), file_stem("a.b"));
        assert_ne!(file_stem(&"x".repeat(100)), file_stem(&"x".repeat(101)));
        assert!(file_stem(&"x".repeat(1000)).len() < 80);
        // Pure: the same name, the same stem.
        assert_eq!(file_stem("a b"), file_stem("a b"));
    }
}
