//! Tables, plots and the HTML report, from a run folder's files only.

pub mod html;
pub mod plots;

use std::path::{Path, PathBuf};

use tabled::builder::Builder;
use tabled::settings::formatting::AlignmentStrategy;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Modify, Style};

use crate::error::{CompareError, Error, Result, RunFolderError};
use crate::record::{
    self, read_json, DefenderSummary, GalleryItem, Manifest, MatrixResult, RoundRow, RunFiles, Summary,
};

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

/// `57.7%` over its 95% interval `[50.6, 64.3]` (in percent), on two lines;
/// `-` without a value.
fn pct_interval(v: Option<f64>, interval: Option<&crate::record::Interval>) -> String {
    match (v, interval) {
        (Some(v), Some([low, high])) => format!("{}\n[{:.1}, {:.1}]", pct(v), 100.0 * low, 100.0 * high),
        (v, _) => pct_opt(v),
    }
}

/// What the intervals of a summary's tables are.
pub fn intervals_line(summary: &Summary) -> String {
    let basis = &summary.intervals;
    match basis.method {
        crate::record::IntervalMethod::StudentT => format!(
            "[..]: 95% Student-t intervals over {} seeds ({} evaluation images each).\n",
            basis.seeds, basis.eval_images
        ),
        crate::record::IntervalMethod::Wilson => format!(
            "[..]: 95% Wilson intervals over {} evaluation images, one seed (conservative for AURCs and means over attackers).\n",
            basis.eval_images
        ),
    }
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
    table.with(Style::rounded()).with(
        Modify::new(Columns::new(2..))
            .with(Alignment::right())
            .with(AlignmentStrategy::PerLine),
    );
    table.to_string()
}

/// Lines naming the entries a leaderboard cannot tell apart at the seeds'
/// noise. Each entry: its name, the others it overlaps, and whether it has
/// an interval at all (none: too few completed seeds), in which case no
/// claim is made.
fn ties(entries: &[(String, Vec<String>, bool)], seeds: usize) -> String {
    if seeds < 2 {
        return "One seed: which entries differ beyond the seeds' noise is not judged (run with --seeds N for that).\n"
            .into();
    }
    if entries.len() < 2 {
        return String::new();
    }
    let without: Vec<&str> = entries.iter().filter(|e| !e.2).map(|e| e.0.as_str()).collect();
    if !without.is_empty() {
        return format!(
            "No 95% interval for {} (fewer than two seeds completed), so separability is not judged.\n",
            without.join(", ")
        );
    }
    let rank = |name: &str| entries.iter().position(|e| e.0 == name).map(|i| i + 1).unwrap_or(0);
    let mut pairs = Vec::new();
    for (i, (name, others, _)) in entries.iter().enumerate() {
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

/// What the ranking key of a defender is: the AURC of the per-image worst
/// case over the unseen panel, or over the attacks seen when the tournament
/// has no unseen panel; its field name, value and 95% half-width over seeds.
pub fn ranking_key(d: &crate::record::DefenderSummary) -> (&'static str, f64, Option<f64>) {
    match d.aurc_unseen_union {
        Some(v) => ("aurc_unseen_union", v, d.aurc_unseen_union_ci95),
        None => ("aurc_seen_union", d.aurc_seen_union, d.aurc_seen_union_ci95),
    }
}

/// A ranking key's column header.
fn key_header(field: &str) -> &'static str {
    match field {
        "aurc_unseen_union" => "AURC unseen, all",
        _ => "AURC seen, all",
    }
}

/// A line saying what a summary leaves out: matches not completed.
pub fn partial_line(summary: &Summary) -> String {
    if summary.matches.len() < summary.matches_expected {
        format!(
            "Partial: {} of {} matches completed; the tables cover those only (resume the run to complete it).\n",
            summary.matches.len(),
            summary.matches_expected
        )
    } else {
        String::new()
    }
}

/// Defenders ranked by `aurc_unseen_union` (`aurc_seen_union` without an
/// unseen panel: the per-image worst cases);
/// attackers by mean reward; ratings and, with several seeds, 95% intervals.
pub fn leaderboards(summary: &Summary) -> String {
    // Tables of no rows would print as headers on a broken frame.
    if summary.matches.is_empty() {
        return format!(
            "Partial: 0 of {} matches completed; there is nothing to rank yet (resume the run to play them).\n",
            summary.matches_expected
        );
    }
    let key_name = summary
        .defenders
        .first()
        .map(|d| ranking_key(d).0)
        .unwrap_or("aurc_unseen_union");
    let builder = |(header, rows): (Vec<String>, Vec<Vec<String>>)| {
        let mut b = Builder::default();
        b.push_record(header);
        for row in rows {
            b.push_record(row);
        }
        b
    };
    let defenders = builder(defender_table(summary));
    let attackers = builder(attacker_table(summary));
    let seeds = summary.seeds.len();
    let defender_ties: Vec<_> = summary
        .defenders
        .iter()
        .map(|d| {
            (
                d.defender.clone(),
                d.not_separable_from.clone(),
                ranking_key(d).2.is_some(),
            )
        })
        .collect();
    let attacker_ties: Vec<_> = summary
        .attackers
        .iter()
        .map(|a| {
            (
                a.attacker.clone(),
                a.not_separable_from.clone(),
                a.mean_reward_ci95.is_some(),
            )
        })
        .collect();
    let specialists = match specialist_table(summary) {
        Some(table) => format!(
            "\nThe unseen panel against the specialists (final round, mean over attackers{})\n{}\n{SPECIALIST_LINE}",
            if seeds > 1 { " and seeds" } else { "" },
            render(builder(table))
        ),
        None => String::new(),
    };
    let defenders = format!(
        "{}\n{ALL_LINE}{}{}{}{specialists}",
        render(defenders),
        intervals_line(summary),
        ties(&defender_ties, seeds),
        diverged_lines(summary)
    );
    format!(
        "{}Defenders, ranked by {}; final-round accuracies, mean over attackers{}\n{defenders}\nAttackers, ranked by mean reward (1 - zero-day accuracy on evaluation images; agent reward: what its policy observed, on the attacker slice)\n{}\n{}\n{}",
        partial_line(summary),
        if key_name == "aurc_unseen_union" {
            "robustness to unseen attacks (AURC unseen, all)"
        } else {
            "robustness to the attacks used (AURC seen, all; the tournament has no unseen panel)"
        },
        if seeds > 1 { " and seeds" } else { "" },
        render(attackers),
        ties(&attacker_ties, seeds),
        game_table(summary),
    ) + LEGEND_LINE
}

/// The columns a newcomer cannot guess, in one line under the tables.
pub const LEGEND_LINE: &str = "Legend: AURC = an accuracy's mean over the rounds (the area under its robustness curve); rating = Bradley-Terry over every match on the Elo scale (mean 1500; 400 points = 10-to-1 odds); equilibrium = each side's Nash mix, and its value the mean attacker reward both sides can guarantee.\n";

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

/// What "all" means in the defenders' table.
pub const ALL_LINE: &str = "all: robust only where every attack of the set fails on the image (the per-image worst case); gap = seen, all - unseen, all. Per-attack worst cases are in summary.json.\n";

/// The defenders' leaderboard, header and rows, for the terminal and the
/// page alike. Every accuracy over its 95% interval.
pub fn defender_table(summary: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let key_name = summary
        .defenders
        .first()
        .map(|d| ranking_key(d).0)
        .unwrap_or("aurc_unseen_union");
    let header = [
        "#",
        "defender",
        "clean",
        "seen, all",
        "unseen, all",
        "gap (pts)",
        "stale infl. (pts)",
        key_header(key_name),
        "AURC zero-day",
        "rating",
    ];
    let rows = summary
        .defenders
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (key_field, key, _) = ranking_key(d);
            let cell = |v: Option<f64>, field: &str| pct_interval(v, d.ci95.get(field));
            vec![
                (i + 1).to_string(),
                d.defender.clone(),
                cell(Some(d.final_clean_acc), "final_clean_acc"),
                cell(Some(d.final_seen_union_acc), "final_seen_union_acc"),
                cell(d.final_unseen_union_acc, "final_unseen_union_acc"),
                points(d.final_union_gap),
                points(Some(d.final_stale_inflation)),
                cell(Some(key), key_field),
                cell(Some(d.aurc_zero_day), "aurc_zero_day"),
                format!("{:.0}", d.rating),
            ]
        })
        .collect();
    (header.map(String::from).to_vec(), rows)
}

/// The unseen panel against the specialists, header and rows: per unseen
/// attack, each defender's final accuracy minus the specialist's (the
/// pretrained model PGD-trained in that threat model), in points; `None`
/// without `[specialists]`.
pub fn specialist_table(summary: &Summary) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let attacks: Vec<String> = summary
        .defenders
        .iter()
        .flat_map(|d| d.specialist_acc.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if attacks.is_empty() {
        return None;
    }
    let mut header = vec!["defender".to_string()];
    header.extend(attacks.iter().map(|a| format!("{a}\nvs specialist (pts)")));
    let mut rows: Vec<Vec<String>> = summary
        .defenders
        .iter()
        .map(|d| {
            let mut row = vec![d.defender.clone()];
            row.extend(attacks.iter().map(|a| {
                // One match: its paired interval; several: the mean difference.
                let intervals: Vec<&crate::record::Paired> = summary
                    .matches
                    .iter()
                    .filter(|m| m.defender == d.defender)
                    .filter_map(|m| m.final_unseen_vs_specialist.get(a))
                    .collect();
                match (d.final_unseen_vs_specialist.get(a), intervals.as_slice()) {
                    (Some(_), [one]) => format!("{:+.1}\n± {:.1}", 100.0 * one.diff, 100.0 * one.ci95),
                    (Some(diff), _) => format!("{:+.1}", 100.0 * diff),
                    (None, _) => "–".into(),
                }
            }));
            row
        })
        .collect();
    let mut specialist = vec!["(specialist's accuracy)".to_string()];
    let first = summary.defenders.first();
    specialist.extend(attacks.iter().map(|a| {
        first
            .and_then(|d| d.specialist_acc.get(a))
            .map_or("–".into(), |acc| format!("{:.1}%", 100.0 * acc))
    }));
    rows.push(specialist);
    Some((header, rows))
}

/// What the specialists' table means.
pub const SPECIALIST_LINE: &str = "vs specialist: a defender's final accuracy under the unseen attack minus that of a specialist (the pretrained model adversarially trained in the attack's threat model, as [specialists] sets it: by default PGD for as many gradient evaluations as the shipped pgd-at spends over the match), paired over the evaluation images (± the 95% half-width with one match). Near 0: the defender is about as robust there as training for it made the specialist; well below 0: novelty costs it.\n";

/// The attackers' leaderboard, header and rows.
pub fn attacker_table(summary: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let header = ["#", "attacker", "mean reward", "agent reward", "rating", "most picked"];
    let rows = summary
        .attackers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let favourite = a
                .picks
                .iter()
                .max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0)))
                .map(|(attack, n)| format!("{attack} ({n})"))
                .unwrap_or_default();
            let reward = match a.ci95.get("mean_reward") {
                Some([low, high]) => format!("{:.3}\n[{low:.3}, {high:.3}]", a.mean_reward),
                None => format!("{:.3}", a.mean_reward),
            };
            vec![
                (i + 1).to_string(),
                a.attacker.clone(),
                reward,
                format!("{:.3}", a.mean_agent_reward),
                format!("{:.0}", a.rating),
                favourite,
            ]
        })
        .collect();
    (header.map(String::from).to_vec(), rows)
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
        row.extend(
            rewards
                .iter()
                .map(|r| r.map(|r| format!("{r:.3}")).unwrap_or_else(|| "-".into())),
        );
        let p = eq
            .iter()
            .flat_map(|eq| &eq.attackers)
            .find(|w| &w.agent == a)
            .map(|w| w.probability);
        row.push(p.map(|p| format!("{p:.3}")).unwrap_or_default());
        table.push_record(row);
    }
    let mut last = vec!["equilibrium".to_string()];
    last.extend(payoff.defenders.iter().map(|d| {
        eq.iter()
            .flat_map(|eq| &eq.defenders)
            .find(|w| &w.agent == d)
            .map(|w| format!("{:.3}", w.probability))
            .unwrap_or_default()
    }));
    last.push(match eq {
        Some(eq) => format!("value {:.3}", eq.value),
        None => "none: a pairing has no completed match".into(),
    });
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
    let n = result.eval_images;
    let cell = |acc: f64| {
        let interval = crate::record::stats::wilson95_acc(acc, n).map(|(low, high)| [low, high]);
        pct_interval(Some(acc), interval.as_ref())
    };
    for row in &result.rows {
        let mut cells = vec![row.trained_on.clone(), cell(row.clean_acc)];
        cells.extend(row.robust_acc.iter().map(|&a| cell(a)));
        table.push_record(cells);
    }
    let mut table = table.build();
    table.with(Style::rounded()).with(
        Modify::new(Columns::new(1..))
            .with(Alignment::right())
            .with(AlignmentStrategy::PerLine),
    );
    let intervals = match n {
        0 => String::new(),
        n => format!("[..]: 95% Wilson intervals over {n} evaluation images, one seed.\n"),
    };
    format!("Generalization matrix: robust accuracy of a defender trained against one attack (rows) under each attack (columns)\n{table}\n{intervals}")
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
    /// A matrix stopped short: its rows finished, and its rows in all.
    pub matrix_progress: Option<(usize, usize)>,
}

/// Read a run folder (a tournament's or a matrix's).
pub fn load_run(dir: &Path) -> Result<Run> {
    // read_manifest names a folder that does not exist, or a file, as such.
    let files = RunFiles { dir: dir.to_path_buf() };
    let manifest = record::read_manifest(dir)?;
    let config = record::read_config_text(&files.config()).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RunFolderError::Missing(files.config()).into(),
        _ => Error::io(format!("reading {}", files.config().display()))(e),
    })?;
    let complete = manifest.status == record::Status::Complete;
    let matrix: Option<MatrixResult> = read_json(&files.matrix())?;
    let summary: Option<Summary> = read_json(&files.summary())?;
    // A matrix run has no rounds; a tournament's rows and summary are its
    // results, so a complete one must have both, and they must agree.
    let is_matrix = crate::config::matrix::is_matrix_file(&files.config());
    let mut matrix_progress = None;
    let rows = if is_matrix {
        if complete && matrix.is_none() {
            return Err(RunFolderError::Missing(files.matrix()).into());
        }
        if !complete {
            matrix_progress = crate::config::matrix::attack_count(&files.config())
                .map(|attacks| crate::tournament::matrix::progress(dir, attacks));
        }
        Vec::new()
    } else {
        let rows = record::read_rows_strict(&files.rounds(), !complete)?;
        match &summary {
            Some(summary) => check_rows_against(summary, &rows, &files.rounds(), complete)?,
            None if complete => return Err(RunFolderError::Missing(files.summary()).into()),
            None => {}
        }
        rows
    };
    Ok(Run {
        dir: dir.to_path_buf(),
        config,
        manifest,
        rows,
        summary,
        gallery: read_json(&files.gallery())?.unwrap_or_default(),
        matrix,
        matrix_progress,
    })
}

/// Every match the summary lists has its rows, rounds 1 to its count, and
/// (in a complete run: a partial one holds rows of matches cut short) no
/// row belongs to a match it does not list.
fn check_rows_against(summary: &Summary, rows: &[RoundRow], path: &Path, complete: bool) -> Result<()> {
    let inconsistent = |message: String| -> Error {
        RunFolderError::Inconsistent {
            path: path.to_path_buf(),
            message,
        }
        .into()
    };
    let mut by_match: std::collections::BTreeMap<(u64, usize), Vec<usize>> = std::collections::BTreeMap::new();
    for r in rows {
        by_match.entry((r.seed, r.match_id)).or_default().push(r.round);
    }
    for m in &summary.matches {
        let mut rounds = by_match.remove(&(m.seed, m.match_id)).unwrap_or_default();
        rounds.sort_unstable();
        if rounds != (1..=m.rounds).collect::<Vec<_>>() {
            return Err(inconsistent(format!(
                "match {} (seed {}, {} vs {}) has rows for rounds {rounds:?}, but summary.json says it played {}",
                m.match_id, m.seed, m.attacker, m.defender, m.rounds
            )));
        }
    }
    match by_match.keys().next().filter(|_| complete) {
        Some((seed, id)) => Err(inconsistent(format!(
            "holds rows of match {id} (seed {seed}), which summary.json does not list"
        ))),
        None => Ok(()),
    }
}

/// The tables of a run, as `run` or `matrix` printed them.
pub fn tables(run: &Run) -> String {
    let mut out = String::new();
    if let Some(shard) = run.manifest.shard {
        out.push_str(&format!(
            "Part {} of {} of a sharded run: its tables cover its own matches; `redqueen merge` the parts for the tournament's.\n",
            shard.index, shard.count
        ));
    }
    if let Some(summary) = &run.summary {
        out.push_str(&leaderboards(summary));
    }
    if let Some(matrix) = &run.matrix {
        out.push_str(&matrix_table(matrix));
    }
    if let Some((finished, all)) = run.matrix_progress {
        out.push_str(&format!(
            "Partial: {finished} of {all} rows of the generalization matrix finished; its table waits for every row (`redqueen matrix --resume {}` trains the rest).\n",
            crate::error::shell_word(&run.dir)
        ));
    }
    out
}

/// Rebuild `plots/*.svg` and `report.html` of a run folder from its files.
pub fn write_report(dir: &Path) -> Result<()> {
    let run = load_run(dir)?;
    let files = RunFiles { dir: dir.to_path_buf() };
    let plots = html::plots(&run)?;
    let plots_dir = files.plots();
    // A link planted at plots/ would send the pictures elsewhere: replace it.
    if std::fs::symlink_metadata(&plots_dir).is_ok_and(|m| !m.is_dir()) {
        std::fs::remove_file(&plots_dir).map_err(Error::io(format!("removing {}", plots_dir.display())))?;
    }
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
    let summaries = comparable_summaries(runs)?;
    let mut table = Builder::default();
    table.push_record(compare_header(runs.len()));
    let mut notes = Vec::new();
    for name in &defender_names(&summaries) {
        let entries: Vec<Option<&DefenderSummary>> = summaries
            .iter()
            .map(|s| s.defenders.iter().find(|d| &d.defender == name))
            .collect();
        table.push_record(compare_row(name, &entries));
        if entries.iter().any(|e| e.is_none()) {
            notes.push(format!("{name} is not in every run"));
        }
    }
    notes.extend(setup_notes(runs));
    let mut out = runs_lines(runs, &summaries);
    let mut rendered = table.build();
    rendered
        .with(Style::rounded())
        .with(Modify::new(Columns::new(1..)).with(Alignment::right()));
    out.push_str(&format!(
        "\nDefenders side by side: AURC unseen, all (AURC seen, all where a run has no unseen panel: the per-image worst case), ± the 95% interval over seeds; a difference is beyond noise when the two intervals do not overlap\n{rendered}\n"
    ));
    for note in notes {
        out.push_str(&format!("Note: {note}.\n"));
    }
    Ok(out)
}

/// What sets runs apart besides their seeds, which `compare` exists to
/// weigh: another configuration (a `--quick` run beside a full one, two
/// tournaments) makes a difference that is not the seeds' noise.
fn setup_notes(runs: &[Run]) -> Vec<String> {
    let without_seeds = |config: &str| -> String {
        // As this version writes it: a run recorded by an earlier one
        // (f32s widened) differs in digits only.
        crate::config::rewritten::<crate::config::TournamentFile>(config)
            .lines()
            .filter(|l| !(l.starts_with("seed = ") || l.starts_with("seeds = ")))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let first = without_seeds(&runs[0].config);
    runs.iter()
        .enumerate()
        .skip(1)
        .filter(|(_, r)| without_seeds(&r.config) != first)
        .map(|(i, _)| {
            let difference =
                crate::tournament::first_difference(&first, &without_seeds(&runs[i].config), ("in [1]", "here"));
            format!(
                "[{}] ran another configuration than [1], seeds aside (config.toml: {difference}), so its difference is not only the seeds' noise",
                i + 1
            )
        })
        .collect()
}

/// Each run's summary, if every run is a tournament with one, and all
/// rank by one metric: AURC unseen everywhere, or AURC seen everywhere.
fn comparable_summaries(runs: &[Run]) -> Result<Vec<&Summary>> {
    let summaries: Vec<&Summary> = runs
        .iter()
        .map(|r| {
            r.summary.as_ref().ok_or_else(|| {
                let dir = r.dir.clone();
                Error::from(if r.matrix.is_some() {
                    CompareError::MatrixRun(dir)
                } else {
                    CompareError::NoSummary(dir)
                })
            })
        })
        .collect::<Result<_>>()?;
    // Judged on the runs with a completed match: one without (stopped
    // before its first) has no AURC of either kind to mix.
    let has_unseen = |s: &Summary| s.defenders.iter().any(|d| d.aurc_unseen.is_some());
    let played: Vec<&&Summary> = summaries
        .iter()
        .filter(|s| s.defenders.iter().any(|d| d.matches > 0))
        .collect();
    if played.iter().any(|s| has_unseen(s)) && !played.iter().all(|s| has_unseen(s)) {
        return Err(CompareError::MixedMetrics.into());
    }
    Ok(summaries)
}

/// Every defender of any run, in order of first appearance.
fn defender_names(summaries: &[&Summary]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for s in summaries {
        for d in &s.defenders {
            if !names.contains(&d.defender) {
                names.push(d.defender.clone());
            }
        }
    }
    names
}

/// The comparison's header: each run's value, and from the second run on,
/// its difference from the first.
fn compare_header(n_runs: usize) -> Vec<String> {
    let mut header = vec!["defender".to_string()];
    for i in 0..n_runs {
        header.push(format!("[{}] AURC unseen, all", i + 1));
        if i > 0 {
            header.push(format!("[{}] - [1] (pts)", i + 1));
        }
    }
    header
}

/// One defender's row: its value in each run (`-` where absent) and each
/// difference from the first run.
fn compare_row(name: &str, entries: &[Option<&DefenderSummary>]) -> Vec<String> {
    let mut row = vec![name.to_string()];
    for (i, entry) in entries.iter().enumerate() {
        row.push(
            entry
                .map(|d| {
                    let (_, key, ci) = ranking_key(d);
                    pct_ci(Some(key), ci)
                })
                .unwrap_or_else(|| "-".into()),
        );
        if i > 0 {
            row.push(match (entries[0], entry) {
                (Some(base), Some(d)) => difference_cell(base, d),
                _ => "-".into(),
            });
        }
    }
    row
}

/// `d`'s ranking key minus `base`'s, in points, and whether the two
/// intervals separate them.
fn difference_cell(base: &DefenderSummary, d: &DefenderSummary) -> String {
    let ((_, base_key, base_ci), (_, key, ci)) = (ranking_key(base), ranking_key(d));
    let verdict = match (base_ci, ci) {
        (Some(a), Some(b)) => {
            if crate::record::stats::separable((base_key, a), (key, b)) {
                "beyond noise"
            } else {
                "within noise"
            }
        }
        _ => "no intervals",
    };
    format!("{:+.1} ({verdict})", 100.0 * (key - base_key))
}

/// The "Runs:" list: each run's folder, name and seeds, and whether it is
/// a shard or partial.
fn runs_lines(runs: &[Run], summaries: &[&Summary]) -> String {
    let mut out = String::from("Runs:\n");
    for (i, (r, s)) in runs.iter().zip(summaries).enumerate() {
        let status = match (&r.manifest.shard, s.matches.len() < s.matches_expected) {
            (Some(shard), _) => format!(
                "; part {}/{} of a sharded run, merge the parts first",
                shard.index, shard.count
            ),
            (None, true) => format!("; partial: {} of {} matches", s.matches.len(), s.matches_expected),
            (None, false) => String::new(),
        };
        out.push_str(&format!(
            "  [{}] {} ({}, seeds {:?}{status})\n",
            i + 1,
            r.dir.display(),
            s.name,
            s.seeds
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::ties;

    fn entry(name: &str, others: &[&str], interval: bool) -> (String, Vec<String>, bool) {
        (name.into(), others.iter().map(|o| o.to_string()).collect(), interval)
    }

    #[test]
    fn separability_is_claimed_only_with_intervals() {
        let all = [
            entry("a", &[], true),
            entry("b", &["c"], true),
            entry("c", &["b"], true),
        ];
        assert_eq!(ties(&all, 3), "Not separable at 95% over 3 seeds: #2 b and #3 c.\n");
        let clear = [entry("a", &[], true), entry("b", &[], true)];
        assert!(ties(&clear, 3).starts_with("Every entry is separable"));
        // An entry without an interval: no claim either way.
        let missing = [entry("a", &[], true), entry("b", &[], false)];
        let line = ties(&missing, 3);
        assert!(line.starts_with("No 95% interval for b"), "{line}");
        assert!(ties(&[entry("a", &[], true)], 3).is_empty());
        assert!(ties(&clear, 1).starts_with("One seed"));
    }
}
