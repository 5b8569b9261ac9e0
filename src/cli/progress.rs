//! Progress bars on stderr: the tournament's [`Observer`].

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::arena::Phase;
use crate::record::RoundRow;
use crate::tournament::Observer;

/// Progress on stderr: one bar for the tournament, one line per match in flight.
pub(super) struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    matches: Mutex<HashMap<usize, (ProgressBar, String)>>,
    /// The line that opens the run, given the matches it covers.
    heading: Heading,
}

pub(super) type Heading = Box<dyn Fn(usize) -> String + Send + Sync>;

impl Bars {
    pub(super) fn new(total_rounds: usize, heading: Heading) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(total_rounds as u64));
        overall.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} rounds, {elapsed}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        overall.set_prefix("tournament");
        Bars {
            multi,
            overall,
            matches: Mutex::new(HashMap::new()),
            heading,
        }
    }

    /// A line above the bars on a terminal; plain stderr where they are
    /// hidden.
    fn note(&self, line: String) {
        if self.multi.is_hidden() {
            crate::warn_line!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    pub(super) fn finish(&self) {
        self.overall.finish_and_clear();
    }
}

impl Observer for Bars {
    fn starting(&self, matches: usize) {
        self.note((self.heading)(matches));
    }

    fn replaying_for_models(&self, matches: usize) {
        self.note(format!(
            "redqueen: {matches} finished match(es) have no model in models/; playing them again to save their models (their rounds come out the same)"
        ));
    }

    fn pretraining(&self) {
        self.overall.set_message("pretraining");
        self.overall.set_prefix("pretraining");
    }

    fn planned(&self, rounds: usize) {
        self.overall.set_length(rounds as u64);
    }

    fn match_started(&self, id: usize, attacker: &str, defender: &str, _rounds: usize) {
        self.overall.set_prefix("tournament");
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("  {msg}").expect("valid template"));
        let name = format!("{attacker} vs {defender}");
        bar.set_message(name.clone());
        self.matches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (bar, name));
    }

    fn phase(&self, id: usize, round: usize, phase: Phase) {
        if let Some((bar, name)) = self.matches.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            bar.set_message(format!("{name}: round {round}, {}", phase.name()));
        }
    }

    fn round_done(&self, _row: &RoundRow) {
        self.overall.inc(1);
    }

    fn match_finished(&self, id: usize) {
        if let Some((bar, _)) = self.matches.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}
