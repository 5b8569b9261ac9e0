//! A reproduction's `report.html`: the paper beside ours, the claims, the
//! models' training, self-contained.

use super::{pct, Images, Reproduction};
use crate::report::html::escape;

pub fn render_page(r: &Reproduction) -> String {
    let mut rows = String::new();
    for m in &r.evaluations {
        let (paper, gap) = match m.paper {
            Some(p) => (pct(p), format!("{:+.1}", 100.0 * (m.value - p))),
            None => ("–".into(), "–".into()),
        };
        rows.push_str(&format!(
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}–{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>\n",
            escape(&m.name),
            if m.on == Images::Train { " (training images)" } else { "" },
            escape(&m.model),
            escape(&m.attacks.join(" + ")),
            pct(m.value),
            pct(m.interval.0),
            pct(m.interval.1),
            m.images,
            paper,
            gap,
            escape(m.paper_setup.as_deref().unwrap_or("")),
        ));
    }
    let mut claims = String::new();
    for c in &r.claims {
        claims.push_str(&format!(
            "<tr><td class={}>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td>{}</td></tr>\n",
            if c.holds { "ok" } else { "bad" },
            if c.holds { "holds" } else { "failed" },
            escape(&c.text),
            escape(&c.evaluation),
            c.shown(),
            escape(&c.bound),
        ));
    }
    let mut models = String::new();
    for m in &r.models {
        models.push_str(&format!(
            "<tr><td>{}</td><td class=n>{:.1}{}</td><td class=n>{}</td><td class=n>{}</td><td>{}{}</td></tr>\n",
            escape(&m.name),
            m.seconds,
            if m.cached { " (cached)" } else { "" },
            m.steps.map_or("–".into(), |s| s.to_string()),
            m.seconds_per_step.map_or("–".into(), |s| format!("{s:.3}")),
            m.kept_checkpoint.map_or(String::new(), |(at, score)| format!(
                "step {at} ({} held-out PGD accuracy){}",
                pct(score),
                if m.stopped_early { ", stopped early" } else { "" }
            )),
            m.notes.iter().map(|n| format!("<br>{}", escape(n))).collect::<String>(),
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name}: reproduction</title>
<style>body{{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
.n{{text-align:right}}.ok{{color:#070}}.bad{{color:#b00;font-weight:bold}}</style></head>
<body><h1>{name}</h1>
<p><b>{paper}</b>: {finding}</p>
<p>{dataset}, {train} training images, {eval} test images evaluated, seed {seed}{quick}; {total:.0} s on {cpu} ({threads} threads).
Intervals are Wilson 95% intervals over the images counted. A model marked cached was loaded from the model cache: its seconds are those of the run that trained it.</p>
<h2>Claims</h2><table><tr><th></th><th>claim</th><th>evaluation</th><th>ours</th><th>bound (fixed before the run)</th></tr>
{claims}</table>
<h2>Ours beside the paper</h2><table><tr><th>evaluation</th><th>model</th><th>attacks (per-image worst case)</th><th>ours</th><th>95% interval</th><th>images</th><th>paper</th><th>gap (points)</th><th>paper's setup</th></tr>
{rows}</table>
<h2>Models</h2><table><tr><th>model</th><th>seconds</th><th>steps</th><th>s per step</th><th>early stopping kept; the defense's notes</th></tr>
{models}</table>
</body></html>
"#,
        name = escape(&r.name),
        paper = escape(&r.paper),
        finding = escape(&r.finding),
        dataset = escape(&r.dataset),
        train = r.train_images,
        eval = r.eval_images,
        seed = r.seed,
        quick = if r.quick { ", --quick (reduced size)" } else { "" },
        total = r.total_seconds,
        cpu = escape(&r.cpu),
        threads = r.threads,
    )
}
