//! The adaptive attacker: defense-aware, as Tramer et al. 2020 ("On
//! adaptive attacks to adversarial example defenses") ask an evaluation to
//! be. Each round it probes the defender's model and diagnoses before it
//! switches: a randomized defense calls for EOT, a preprocessing step for
//! BPDA, a saturated softmax for a margin loss, no gradient signal at all
//! for a query attack. When no diagnosis applies it falls back on what it
//! has seen: success that does not grow with the budget (masking of an
//! unknown kind), or another attack of its repertoire having earned more.
//! Every switch is explained in the round's row, naming the diagnosis.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Policy, PolicySpec, Probe};
use crate::attack::{AttackConfig, Signal};
use crate::registry::Describe;

/// `kind = "adaptive"`: nothing to configure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConfig {}

impl Describe for AdaptiveConfig {
    const HELP: &'static str = "defense-aware: diagnoses randomness, preprocessing, a saturated softmax or no gradient at all, and switches to EOT, BPDA, a margin loss or a query attack, else to what earned more; says why";
    fn example() -> Self {
        AdaptiveConfig {}
    }
}

impl PolicySpec for AdaptiveConfig {
    fn init(&self, repertoire: &[AttackConfig]) -> Box<dyn Policy> {
        Box::new(Adaptive::new(repertoire))
    }
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }
}

/// What an arm is, as far as adapting goes: how its attack gets its signal,
/// as the attack's own file declares it.
type Kind = Signal;

fn kind(attack: &AttackConfig) -> Kind {
    attack.signal()
}

/// What a probe can diagnose, in the order it is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Diagnosis {
    /// Identical queries got different outputs.
    Randomness,
    /// A non-differentiable step in front of the network.
    Preprocessing,
    /// Cross-entropy's gradient vanishes where a margin's does not.
    Saturation,
    /// Not even the margin has a gradient, and there is nothing to go around.
    NoSignal,
}

impl Diagnosis {
    fn name(self) -> &'static str {
        match self {
            Diagnosis::Randomness => "a randomized defense",
            Diagnosis::Preprocessing => "non-differentiable preprocessing",
            Diagnosis::Saturation => "a saturated softmax",
            Diagnosis::NoSignal => "no gradient signal",
        }
    }

    /// The kinds of attack that answer it, best first.
    fn remedies(self) -> &'static [Kind] {
        match self {
            Diagnosis::Randomness => &[Kind::Eot],
            Diagnosis::Preprocessing => &[Kind::Bpda, Kind::Query, Kind::Search],
            Diagnosis::Saturation => &[Kind::Margin, Kind::Query, Kind::Search],
            Diagnosis::NoSignal => &[Kind::Query, Kind::Search],
        }
    }

    /// Whether an attack of `kind` is fooled by what it diagnoses.
    fn rules_out(self, kind: Kind) -> bool {
        match self {
            Diagnosis::Randomness => kind != Kind::Eot,
            Diagnosis::Preprocessing | Diagnosis::NoSignal => needs_gradients(kind),
            Diagnosis::Saturation => kind == Kind::Gradient,
        }
    }
}

/// Every diagnosis `p` supports, in order, each with what showed it.
fn diagnose(p: &Probe) -> Vec<(Diagnosis, String)> {
    let percent = |share: f64| format!("{:.0}%", 100.0 * share);
    let mut found = Vec::new();
    if p.random_outputs {
        found.push((
            Diagnosis::Randomness,
            "identical queries got different outputs".to_string(),
        ));
    }
    if p.preprocessed {
        found.push((
            Diagnosis::Preprocessing,
            format!(
                "the defense preprocesses its input, and the margin loss's input gradient is zero on {} of probe images (gradient masking)",
                percent(p.zero_gradient_fraction)
            ),
        ));
    }
    if p.saturated_fraction > DIAGNOSED {
        found.push((
            Diagnosis::Saturation,
            format!(
                "cross-entropy's input gradient vanishes on {} of probe images while the margin loss's does not",
                percent(p.saturated_fraction)
            ),
        ));
    }
    if p.zero_gradient_fraction > DIAGNOSED && !p.preprocessed {
        found.push((
            Diagnosis::NoSignal,
            format!(
                "even the margin loss's input gradient is zero on {} of probe images, with no preprocessing to differentiate around (gradient masking)",
                percent(p.zero_gradient_fraction)
            ),
        ));
    }
    found
}

pub struct Adaptive {
    attacks: Vec<AttackConfig>,
    labels: Vec<String>,
    kinds: Vec<Kind>,
    current: usize,
    /// Sum and count of rewards per arm.
    earned: Vec<(f64, usize)>,
    probe: Option<Probe>,
    /// Every diagnosis made so far: it is remembered, so that a probe near
    /// a threshold does not send the agent back and forth.
    diagnosed: Vec<Diagnosis>,
    /// Masking of no diagnosed kind (success flat in the budget, a query
    /// attack out-earning the gradient one), remembered likewise.
    masked: bool,
    note: Option<String>,
}

/// The share of probe images above which a probe's sign is taken as a
/// diagnosis.
const DIAGNOSED: f64 = 0.5;

impl Adaptive {
    pub fn new(repertoire: &[AttackConfig]) -> Adaptive {
        let kinds: Vec<Kind> = repertoire.iter().map(kind).collect();
        // Start as a plain evaluation would: with a gradient attack.
        let current = kinds.iter().position(|&k| k == Kind::Gradient).unwrap_or(0);
        Adaptive {
            attacks: repertoire.to_vec(),
            labels: repertoire.iter().map(|a| a.label()).collect(),
            kinds,
            current,
            earned: vec![(0.0, 0); repertoire.len()],
            probe: None,
            diagnosed: Vec::new(),
            masked: false,
            note: None,
        }
    }

    fn mean(&self, arm: usize) -> Option<f64> {
        let (sum, n) = self.earned[arm];
        (n > 0).then(|| sum / n as f64)
    }

    fn first_of(&self, wanted: &[Kind]) -> Option<usize> {
        wanted
            .iter()
            .find_map(|&k| self.kinds.iter().position(|&kind| kind == k))
    }

    fn switch(&mut self, to: usize, why: String) {
        if to != self.current {
            self.note = Some(format!("{} -> {}: {why}", self.labels[self.current], self.labels[to]));
            self.current = to;
        }
    }

    /// Act on this round's probe: remember what it diagnoses, and leave
    /// the current attack for the first remedy the repertoire holds when a
    /// diagnosis rules it out. Whether it switched.
    fn by_diagnosis(&mut self) -> bool {
        let found = self.probe.as_ref().map(diagnose).unwrap_or_default();
        for (diagnosis, _) in &found {
            if !self.diagnosed.contains(diagnosis) {
                self.diagnosed.push(*diagnosis);
            }
        }
        for (diagnosis, why) in found {
            if !diagnosis.rules_out(self.kinds[self.current]) {
                continue;
            }
            if let Some(arm) = self.first_of(diagnosis.remedies()) {
                self.switch(arm, format!("diagnosis: {}: {why}", diagnosis.name()));
                return true;
            }
        }
        false
    }

    /// Whether a diagnosis made so far rules `kind` out (only where the
    /// repertoire holds something better).
    fn ruled_out(&self, kind: Kind) -> bool {
        self.diagnosed
            .iter()
            .any(|d| d.rules_out(kind) && self.first_of(d.remedies()).is_some())
    }

    /// Masking of no diagnosed kind, seen in this round's probe: success
    /// that does not grow with the budget; why, if seen.
    fn masking_seen(&self) -> Option<String> {
        let (quarter, full) = self.probe.as_ref()?.success_by_budget?;
        (full < 0.5 && full <= quarter + 0.05).then(|| {
            format!(
                "success does not grow with the budget ({:.0}% at a quarter of it, {:.0}% at all of it): gradient masking",
                100.0 * quarter,
                100.0 * full
            )
        })
    }

    /// Once masking is seen, leave an attack that trusts the raw gradient
    /// for BPDA, a query or a search attack. Whether it switched.
    fn around_masking(&mut self, why: Option<String>) -> bool {
        if self.masked && needs_gradients(self.kinds[self.current]) {
            if let Some(arm) = self.first_of(&[Kind::Bpda, Kind::Query, Kind::Search]) {
                self.switch(arm, why.unwrap_or_else(|| "gradient masking seen earlier".into()));
                return true;
            }
        }
        false
    }

    /// Attacks a diagnosis rules out are out; against masked gradients, so
    /// are attacks that trust the raw gradient.
    fn usable(&self, arm: usize) -> bool {
        !self.ruled_out(self.kinds[arm]) && (!self.masked || !needs_gradients(self.kinds[arm]))
    }

    /// Go with what has earned the most; try an untried arm when the
    /// current one does poorly.
    fn by_earnings(&mut self) {
        let current_mean = self.mean(self.current);
        let best = (0..self.kinds.len())
            .filter(|&arm| self.usable(arm))
            .filter_map(|arm| self.mean(arm).map(|m| (arm, m)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        let (Some(current), Some((arm, m))) = (current_mean, best) else {
            return;
        };
        if m > current + 0.05 {
            if self.kinds[arm] == Kind::Query && needs_gradients(self.kinds[self.current]) {
                // A query or transfer attack beating the gradient attack
                // is itself a sign of masked gradients.
                self.masked = true;
                self.switch(
                    arm,
                    format!("a query or transfer attack earned {m:.2} against the gradient attack's {current:.2} (gradient masking)"),
                );
            } else {
                self.switch(arm, format!("it earned {m:.2} against {current:.2}"));
            }
        } else if current < 0.5 {
            self.try_untried(current);
        }
    }

    /// The current attack earns little: an arm not yet tried, a margin loss
    /// first after a cross-entropy gradient attack.
    fn try_untried(&mut self, current: f64) {
        let untried = |kind: Option<Kind>| {
            (0..self.kinds.len())
                .find(|&a| self.earned[a].1 == 0 && self.usable(a) && kind.is_none_or(|k| self.kinds[a] == k))
        };
        // Cross-entropy saturates on confident models: a margin loss first.
        let margin = untried(Some(Kind::Margin)).filter(|_| self.kinds[self.current] == Kind::Gradient);
        if let Some(arm) = margin {
            self.switch(
                arm,
                format!("the current attack earns only {current:.2}; cross-entropy may saturate, trying a margin loss"),
            );
        } else if let Some(arm) = untried(None) {
            self.switch(
                arm,
                format!("the current attack earns only {current:.2}; trying another"),
            );
        }
    }
}

/// Attacks that trust the defender's raw gradient.
fn needs_gradients(kind: Kind) -> bool {
    matches!(kind, Kind::Gradient | Kind::Margin)
}

impl Policy for Adaptive {
    fn wants_probe(&self) -> bool {
        true
    }

    fn probe(&mut self, probe: &Probe) {
        self.probe = Some(probe.clone());
    }

    /// The attack in use, when it trusts the raw gradient (a margin loss
    /// that goes through must not look masked because cross-entropy did
    /// not); otherwise the first cross-entropy gradient attack.
    fn probe_attack(&self) -> Option<AttackConfig> {
        let arm = match needs_gradients(self.kinds[self.current]) {
            true => Some(self.current),
            false => self.kinds.iter().position(|&k| k == Kind::Gradient),
        };
        arm.map(|arm| self.attacks[arm].clone())
    }

    fn pick(&mut self, _round: usize, _rng: &mut ChaCha8Rng) -> usize {
        self.note = None;
        if self.by_diagnosis() {
            return self.current;
        }
        let why = self.masking_seen();
        self.masked |= why.is_some();
        if self.around_masking(why) {
            return self.current;
        }
        self.by_earnings();
        self.current
    }

    fn observe(&mut self, arm: usize, reward: f64) {
        self.earned[arm].0 += reward;
        self.earned[arm].1 += 1;
    }

    fn note(&self) -> Option<String> {
        self.note.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{AttackLoss, BpdaConfig, EotConfig, Norm, PgdConfig, SquareConfig};
    use rand::SeedableRng;

    /// A probe that shows nothing.
    fn healthy() -> Probe {
        Probe {
            zero_gradient_fraction: 0.0,
            saturated_fraction: 0.0,
            preprocessed: false,
            random_outputs: false,
            success_by_budget: None,
        }
    }

    fn pgd() -> AttackConfig {
        AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1))
    }

    fn margin_pgd() -> AttackConfig {
        let mut margin = PgdConfig::new(Norm::Linf, 0.1);
        margin.loss = AttackLoss::Cw;
        AttackConfig::Pgd(margin)
    }

    /// Cross-entropy PGD, Square, BPDA-PGD.
    fn repertoire() -> Vec<AttackConfig> {
        vec![
            pgd(),
            AttackConfig::Square(SquareConfig::new(0.1)),
            AttackConfig::Bpda(BpdaConfig {
                name: None,
                attack: Box::new(pgd()),
            }),
        ]
    }

    /// masking.toml's: cross-entropy PGD, margin PGD, BPDA-PGD, Square.
    fn masking_repertoire() -> Vec<AttackConfig> {
        let mut arms = vec![pgd(), margin_pgd()];
        arms.extend(repertoire().into_iter().skip(1).rev());
        arms
    }

    /// Rounds played as the arena does: probe, pick, observe.
    fn play(policy: &mut Adaptive, probes: &[Probe], reward: f64) -> Vec<(usize, Option<String>)> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut picks = Vec::new();
        for (round, probe) in probes.iter().enumerate() {
            policy.probe(probe);
            let arm = policy.pick(round + 1, &mut rng);
            picks.push((arm, policy.note()));
            policy.observe(arm, reward);
        }
        picks
    }

    #[test]
    fn preprocessing_sends_it_to_bpda_and_it_says_why() {
        let mut policy = Adaptive::new(&repertoire());
        let squeezed = Probe {
            zero_gradient_fraction: 1.0,
            preprocessed: true,
            ..healthy()
        };
        let picks = play(&mut policy, &[healthy(), squeezed], 0.9);
        assert_eq!(picks[0], (0, None));
        assert_eq!(picks[1].0, 2);
        let note = picks[1].1.clone().unwrap();
        assert!(note.contains("non-differentiable preprocessing"), "{note}");
        assert!(note.contains("gradient masking"), "{note}");
    }

    #[test]
    fn a_saturated_softmax_sends_it_to_the_margin_loss_and_it_stays() {
        let mut policy = Adaptive::new(&masking_repertoire());
        let distilled = Probe {
            saturated_fraction: 0.9,
            // Cross-entropy PGD gets nowhere at either budget.
            success_by_budget: Some((0.0, 0.0)),
            ..healthy()
        };
        let picks = play(&mut policy, &[healthy(), distilled.clone()], 0.9);
        assert_eq!(picks[1].0, 1, "the margin arm");
        assert!(picks[1].1.clone().unwrap().contains("a saturated softmax"));
        // The probe now tries the margin attack, which goes through.
        assert_eq!(policy.probe_attack(), Some(margin_pgd()));
        let through = Probe {
            success_by_budget: Some((0.4, 0.95)),
            ..distilled
        };
        let later = play(&mut policy, &[through.clone(), through], 0.9);
        assert!(
            later.iter().all(|&(arm, ref note)| arm == 1 && note.is_none()),
            "{later:?}"
        );
    }

    #[test]
    fn no_gradient_signal_sends_it_to_a_query_attack() {
        let mut policy = Adaptive::new(&repertoire());
        let flat = Probe {
            zero_gradient_fraction: 1.0,
            ..healthy()
        };
        let picks = play(&mut policy, &[flat], 0.9);
        assert_eq!(picks[0].0, 1, "Square, not BPDA: there is nothing to go around");
        assert!(picks[0].1.clone().unwrap().contains("no gradient signal"));
    }

    #[test]
    fn a_randomized_defense_sends_it_to_eot() {
        let eot = AttackConfig::Eot(EotConfig {
            name: None,
            samples: 4,
            attack: Box::new(pgd()),
        });
        let mut policy = Adaptive::new(&[pgd(), eot]);
        let noisy = Probe {
            random_outputs: true,
            ..healthy()
        };
        let picks = play(&mut policy, &[noisy], 0.1);
        assert_eq!(picks[0].0, 1);
        assert!(picks[0].1.clone().unwrap().contains("a randomized defense"));
    }

    #[test]
    fn a_diagnosis_with_no_remedy_in_the_repertoire_leaves_earnings_in_charge() {
        let mut policy = Adaptive::new(&[pgd()]);
        let noisy = Probe {
            random_outputs: true,
            saturated_fraction: 1.0,
            ..healthy()
        };
        let picks = play(&mut policy, &[noisy.clone(), noisy], 0.1);
        assert!(picks.iter().all(|&(arm, ref note)| arm == 0 && note.is_none()));
    }

    #[test]
    fn success_that_does_not_grow_with_the_budget_means_masking() {
        let mut policy = Adaptive::new(&repertoire());
        let flat = Probe {
            success_by_budget: Some((0.10, 0.12)),
            ..healthy()
        };
        let picks = play(&mut policy, &[flat], 0.1);
        assert_eq!(picks[0].0, 2);
        assert!(picks[0].1.clone().unwrap().contains("does not grow with the budget"));
    }

    #[test]
    fn it_moves_to_the_attack_that_earned_more() {
        let mut policy = Adaptive::new(&repertoire());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        policy.probe(&healthy());
        let first = policy.pick(1, &mut rng);
        policy.observe(first, 0.2);
        // A poor reward: it tries an untried arm next.
        let second = policy.pick(2, &mut rng);
        assert_ne!(second, first);
        policy.observe(second, 0.8);
        assert_eq!(policy.pick(3, &mut rng), second);
        assert!(policy.note().is_none(), "no switch, no note");
    }

    #[test]
    fn it_tries_the_query_attack_when_the_gradient_attack_earns_little() {
        let mut policy = Adaptive::new(&repertoire()[..2]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        policy.probe(&healthy());
        let first = policy.pick(1, &mut rng);
        policy.observe(first, 0.3);
        let second = policy.pick(2, &mut rng);
        assert_eq!(second, 1, "it tries the query attack");
        policy.observe(second, 0.9);
        assert_eq!(policy.pick(3, &mut rng), 1);
        assert!(policy.note().is_none());
    }
}
