//! Tables, plots and the HTML report, from a run folder's files only.

pub mod html;
pub mod plots;

use std::path::{Path, PathBuf};

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Modify, Style};

use crate::error::{Error, Result};
use crate::record::{self, GalleryItem, Manifest, MatrixResult, RoundRow, RunFiles, Summary};

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn pct_opt(v: Option<f64>) -> String {
    v.map(pct).unwrap_or_else(|| "-".into())
}

/// Signed, in percentage points.
fn points(v: Option<f64>) -> String {
    v.map(|v| format!("{:+.1}", 100.0 * v)).unwrap_or_else(|| "-".into())
}

/// `57.7%`, or `57.7% ± 2.1` with an interval (in points).
fn pct_ci(v: Option<f64>, ci: Option<f64>) -> String {
    match (v, ci) {
        (Some(v), Some(ci)) => format!("{} ± {:.1}", pct(v), 100.0 * ci),
        (v, _) => pct_opt(v),
    }
}

fn render(builder: Builder) -> String {
    let mut table = builder.build();
    table
        .with(Style::rounded())
        .with(Modify::new(Columns::new(2..)).with(Alignment::right()));
    table.to_string()
}

/// Lines naming the entries a leaderboard cannot tell apart at the seeds' noise.
fn ties(entries: &[(String, Vec<String>)], seeds: usize) -> String {
    if seeds < 2 {
        return "One seed: no confidence intervals (run with --seeds N for them).\n".into();
    }
    let rank = |name: &str| entries.iter().position(|(n, _)| n == name).map(|i| i + 1).unwrap_or(0);
    let mut pairs = Vec::new();
    for (i, (name, others)) in entries.iter().enumerate() {
        for other in others {
            if rank(other) > i + 1 {
                pairs.push(format!("#{} {name} and #{} {other}", i + 1, rank(other)));
            }
        }
    }
    if pairs.is_empty() {
        format!("Every entry is separable from every other at 95% over {seeds} seeds.\n")
    } else {
        format!("Not separable at 95% over {seeds} seeds: {}.\n", pairs.join("; "))
    }
}

/// Defenders ranked by `aurc_unseen`; attackers by mean reward; ratings and,
/// with several seeds, 95% intervals.
pub fn leaderboards(summary: &Summary) -> String {
    let mut defenders = Builder::default();
    defenders.push_record([
        "#",
        "defender",
        "clean",
        "seen worst",
        "unseen worst",
        "gap (pts)",
        "stale infl. (pts)",
        "AURC unseen",
        "AURC zero-day",
        "rating",
    ]);
    for (i, d) in summary.defenders.iter().enumerate() {
        defenders.push_record([
            (i + 1).to_string(),
            d.defender.clone(),
            pct(d.final_clean_acc),
            pct(d.final_seen_worst),
            pct_opt(d.final_unseen_worst),
            points(d.final_gap),
            points(Some(d.final_stale_inflation)),
            pct_ci(d.aurc_unseen, d.aurc_unseen_ci95),
            pct(d.aurc_zero_day),
            format!("{:.0}", d.rating),
        ]);
    }
    let mut attackers = Builder::default();
    attackers.push_record(["#", "attacker", "mean reward", "rating", "most picked"]);
    for (i, a) in summary.attackers.iter().enumerate() {
        let favourite = a
            .picks
            .iter()
            .max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0)))
            .map(|(attack, n)| format!("{attack} ({n})"))
            .unwrap_or_default();
        let reward = match a.mean_reward_ci95 {
            Some(ci) => format!("{:.3} ± {:.3}", a.mean_reward, ci),
            None => format!("{:.3}", a.mean_reward),
        };
        attackers.push_record([
            (i + 1).to_string(),
            a.attacker.clone(),
            reward,
            format!("{:.0}", a.rating),
            favourite,
        ]);
    }
    let seeds = summary.seeds.len();
    let defender_ties: Vec<_> = summary
        .defenders
        .iter()
        .map(|d| (d.defender.clone(), d.not_separable_from.clone()))
        .collect();
    let attacker_ties: Vec<_> = summary
        .attackers
        .iter()
        .map(|a| (a.attacker.clone(), a.not_separable_from.clone()))
        .collect();
    format!(
        "Defenders, ranked by robustness to unseen attacks (AURC unseen; final-round accuracies, mean over attackers{})\n{}\n{}{}\nAttackers, ranked by mean reward (1 - zero-day accuracy)\n{}\n{}\n{}",
        if seeds > 1 { " and seeds" } else { "" },
        render(defenders),
        ties(&defender_ties, seeds),
        diverged_lines(summary),
        render(attackers),
        ties(&attacker_ties, seeds),
        game_table(summary),
    )
}

/// One line per match whose defender's training diverged.
pub fn diverged_lines(summary: &Summary) -> String {
    summary
        .matches
        .iter()
        .filter_map(|m| {
            m.diverged.as_ref().map(|d| {
                format!(
                    "Diverged: {} against {} (seed {}) at round {}, so the match ended there: {}\n",
                    m.defender, m.attacker, m.seed, d.round, d.reason
                )
            })
        })
        .collect()
}

/// The payoff matrix with the equilibrium's mixed strategies in the margins.
pub fn game_table(summary: &Summary) -> String {
    let (payoff, eq) = (&summary.payoff, &summary.equilibrium);
    let mut table = Builder::default();
    let mut header = vec!["attacker \\ defender".to_string()];
    header.extend(payoff.defenders.iter().cloned());
    header.push("equilibrium".into());
    table.push_record(header);
    for (a, rewards) in payoff.attackers.iter().zip(&payoff.reward) {
        let mut row = vec![a.clone()];
        row.extend(rewards.iter().map(|&r| format!("{r:.3}")));
        let p = eq.attackers.iter().find(|w| &w.agent == a).map(|w| w.probability);
        row.push(p.map(|p| format!("{p:.3}")).unwrap_or_default());
        table.push_record(row);
    }
    let mut last = vec!["equilibrium".to_string()];
    last.extend(payoff.defenders.iter().map(|d| {
        eq.defenders
            .iter()
            .find(|w| &w.agent == d)
            .map(|w| format!("{:.3}", w.probability))
            .unwrap_or_default()
    }));
    last.push(format!("value {:.3}", eq.value));
    table.push_record(last);
    let mut table = table.build();
    table
        .with(Style::rounded())
        .with(Modify::new(Columns::new(1..)).with(Alignment::right()));
    format!(
        "The game: mean attacker reward per pairing, and its Nash equilibrium (each side's mix; value = the reward both can guarantee)\n{table}\n"
    )
}

/// The generalization matrix: rows trained against, columns evaluated under.
pub fn matrix_table(result: &MatrixResult) -> String {
    let mut table = Builder::default();
    let mut header = vec!["trained on \\ evaluated under".to_string(), "clean".into()];
    header.extend(result.attacks.iter().cloned());
    table.push_record(header);
    for row in &result.rows {
        let mut cells = vec![row.trained_on.clone(), pct(row.clean_acc)];
        cells.extend(row.robust_acc.iter().map(|&a| pct(a)));
        table.push_record(cells);
    }
    let mut table = table.build();
    table
        .with(Style::rounded())
        .with(Modify::new(Columns::new(1..)).with(Alignment::right()));
    format!("Generalization matrix: robust accuracy of a defender trained against one attack (rows) under each attack (columns)\n{table}\n")
}

/// What a run folder holds, read back.
pub struct Run {
    pub dir: PathBuf,
    pub config: String,
    pub manifest: Manifest,
    pub rows: Vec<RoundRow>,
    pub summary: Option<Summary>,
    pub gallery: Vec<GalleryItem>,
    pub matrix: Option<MatrixResult>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Usage(format!("{}: not a redqueen file of this version: {e}", path.display())))
}

/// Read a run folder (a tournament's or a matrix's).
pub fn load_run(dir: &Path) -> Result<Run> {
    let files = RunFiles { dir: dir.to_path_buf() };
    let manifest: Manifest = read_json(&files.manifest())?.ok_or_else(|| {
        Error::Usage(format!(
            "{}: not a redqueen run folder (it has no manifest.json); give a folder written by `redqueen run` or `redqueen matrix`",
            dir.display()
        ))
    })?;
    let config = std::fs::read_to_string(files.config()).unwrap_or_default();
    let rows = if files.rounds().exists() {
        record::read_rows(&files.rounds()).map_err(Error::io(format!("reading {}", files.rounds().display())))?
    } else {
        Vec::new()
    };
    Ok(Run {
        dir: dir.to_path_buf(),
        config,
        manifest,
        rows,
        summary: read_json(&files.summary())?,
        gallery: read_json(&files.gallery())?.unwrap_or_default(),
        matrix: read_json(&files.matrix())?,
    })
}

/// The tables of a run, as `run` or `matrix` printed them.
pub fn tables(run: &Run) -> String {
    let mut out = String::new();
    if let Some(summary) = &run.summary {
        out.push_str(&leaderboards(summary));
    }
    if let Some(matrix) = &run.matrix {
        out.push_str(&matrix_table(matrix));
    }
    out
}

/// Rebuild `plots/*.svg` and `report.html` of a run folder from its files.
pub fn write_report(dir: &Path) -> Result<()> {
    let run = load_run(dir)?;
    let files = RunFiles { dir: dir.to_path_buf() };
    let plots = html::plots(&run)?;
    let plots_dir = files.plots();
    std::fs::create_dir_all(&plots_dir).map_err(Error::io(format!("creating {}", plots_dir.display())))?;
    for plot in &plots {
        let path = plots_dir.join(format!("{}.svg", plot.file));
        record::write_atomic(&path, plot.svg.as_bytes()).map_err(Error::io(format!("writing {}", path.display())))?;
    }
    let page = html::page(&run, &plots);
    record::write_atomic(&files.report(), page.as_bytes())
        .map_err(Error::io(format!("writing {}", files.report().display())))
}

/// Defenders side by side across runs: each run's AURC unseen (with its
/// interval), the difference from the first run, and whether that
/// difference is beyond the seeds' noise.
pub fn compare(runs: &[Run]) -> Result<String> {
    let summaries: Vec<&Summary> = runs
        .iter()
        .map(|r| {
            r.summary.as_ref().ok_or_else(|| {
                Error::Usage(format!(
                    "{}: has no summary.json (a tournament run folder is needed; an interrupted run has one once it stops)",
                    r.dir.display()
                ))
            })
        })
        .collect::<Result<_>>()?;
    let mut names: Vec<String> = Vec::new();
    for s in &summaries {
        for d in &s.defenders {
            if !names.contains(&d.defender) {
                names.push(d.defender.clone());
            }
        }
    }
    let mut header = vec!["defender".to_string()];
    for i in 0..runs.len() {
        header.push(format!("[{}] AURC unseen", i + 1));
        if i > 0 {
            header.push(format!("[{}] - [1] (pts)", i + 1));
        }
    }
    let mut table = Builder::default();
    table.push_record(header);
    let mut notes = Vec::new();
    for name in &names {
        let entries: Vec<Option<&crate::record::DefenderSummary>> = summaries
            .iter()
            .map(|s| s.defenders.iter().find(|d| &d.defender == name))
            .collect();
        let key = |d: &crate::record::DefenderSummary| d.aurc_unseen.unwrap_or(d.aurc_seen);
        let ci = |d: &crate::record::DefenderSummary| {
            if d.aurc_unseen.is_some() {
                d.aurc_unseen_ci95
            } else {
                d.aurc_seen_ci95
            }
        };
        let mut row = vec![name.clone()];
        for (i, entry) in entries.iter().enumerate() {
            row.push(entry.map(|d| pct_ci(Some(key(d)), ci(d))).unwrap_or_else(|| "-".into()));
            if i > 0 {
                let cell = match (entries[0], entry) {
                    (Some(base), Some(d)) => {
                        let diff = key(d) - key(base);
                        let verdict = match (ci(base), ci(d)) {
                            (Some(a), Some(b)) => {
                                if crate::tournament::game::separable((key(base), a), (key(d), b)) {
                                    "beyond noise"
                                } else {
                                    "within noise"
                                }
                            }
                            _ => "no intervals",
                        };
                        format!("{:+.1} ({verdict})", 100.0 * diff)
                    }
                    _ => "-".into(),
                };
                row.push(cell);
            }
        }
        table.push_record(row);
        if entries.iter().any(|e| e.is_none()) {
            notes.push(format!("{name} is not in every run"));
        }
    }
    let mut out = String::from("Runs:\n");
    for (i, (r, s)) in runs.iter().zip(&summaries).enumerate() {
        out.push_str(&format!(
            "  [{}] {} ({}, seeds {:?})\n",
            i + 1,
            r.dir.display(),
            s.name,
            s.seeds
        ));
    }
    let mut rendered = table.build();
    rendered
        .with(Style::rounded())
        .with(Modify::new(Columns::new(1..)).with(Alignment::right()));
    out.push_str(&format!(
        "\nDefenders side by side: AURC unseen (AURC seen where a run has no unseen panel), ± the 95% interval over seeds; a difference is beyond noise when the two intervals do not overlap\n{rendered}\n"
    ));
    for note in notes {
        out.push_str(&format!("Note: {note}.\n"));
    }
    Ok(out)
}
