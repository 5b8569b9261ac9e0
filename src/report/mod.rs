//! Tables for the terminal, from the summary only.

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Modify, Style};

use crate::record::Summary;

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

fn render(builder: Builder) -> String {
    let mut table = builder.build();
    table
        .with(Style::rounded())
        .with(Modify::new(Columns::new(2..)).with(Alignment::right()));
    table.to_string()
}

/// Defenders ranked by `aurc_unseen`; attackers by mean reward.
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
            pct_opt(d.aurc_unseen),
            pct(d.aurc_zero_day),
        ]);
    }
    let mut attackers = Builder::default();
    attackers.push_record(["#", "attacker", "mean reward", "most picked"]);
    for (i, a) in summary.attackers.iter().enumerate() {
        let favourite = a
            .picks
            .iter()
            .max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0)))
            .map(|(attack, n)| format!("{attack} ({n})"))
            .unwrap_or_default();
        attackers.push_record([
            (i + 1).to_string(),
            a.attacker.clone(),
            format!("{:.3}", a.mean_reward),
            favourite,
        ]);
    }
    format!(
        "Defenders, ranked by robustness to unseen attacks (AURC unseen; final-round accuracies, mean over attackers)\n{}\n\nAttackers, ranked by mean reward (1 - zero-day accuracy)\n{}\n",
        render(defenders),
        render(attackers)
    )
}
