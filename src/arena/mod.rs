//! The arena: one match, round by round, as DESIGN.md's round protocol.

pub mod gallery;
pub mod metrics;
pub mod referee;
pub mod worst_case;

use std::collections::BTreeMap;
use std::time::Instant;

use rand_chacha::ChaCha8Rng;

use crate::agent::{probe, AttackerConfig, Policy};
use crate::attack::{within_rules, AttackConfig, Norm, Rules};
use crate::data::Split;
use crate::defense::{DefenderConfig, Defense, RoundData};
use crate::model::{Classifier, Model};
use crate::path;
use crate::record::{stats, Norms, Paired, RoundRow, RoundTiming};
use crate::rng::{derived_seed, stream};
use metrics::{correct, fraction, robust, robust_accuracy, wrong_confidence, EVAL_BATCH};

/// Everything one match needs, borrowed from the tournament.
pub struct MatchPlan<'a> {
    pub match_id: usize,
    pub seed: u64,
    pub rounds: usize,
    /// Training images crafted on per round.
    pub craft: usize,
    pub attacker: &'a AttackerConfig,
    pub defender: &'a DefenderConfig,
    pub unseen: &'a [AttackConfig],
    /// The rules every attack is held to.
    pub rules: &'a Rules,
    /// The training images defenders learn from and attackers craft on.
    pub train: &'a Split,
    /// Training images no defender ever learns from: the only data any
    /// attacker's reward, probe or the divergence check is measured on.
    pub attacker_slice: &'a Split,
    /// The tournament's fixed evaluation subset of the test split: it is
    /// measured on, never learned from and never steers an agent.
    pub eval: &'a Split,
    /// Per unseen attack: which evaluation images the specialist of its
    /// threat model stays correct on (empty without specialists).
    pub specialists: &'a BTreeMap<String, Vec<bool>>,
}

/// The phase a match is in, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Attack,
    Defense,
    Evaluation,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Attack => "attack",
            Phase::Defense => "defense",
            Phase::Evaluation => "evaluation",
        }
    }
}

/// Play one match from `pretrained`, handing each round's row to `on_row`
/// as soon as it is complete. `stop` is asked before every round.
pub fn play(
    plan: &MatchPlan<'_>,
    pretrained: &dyn Classifier,
    on_phase: &dyn Fn(usize, Phase),
    stop: &dyn Fn() -> bool,
    on_row: &mut dyn FnMut(&RoundRow),
) -> Vec<RoundRow> {
    play_to_end(plan, pretrained, on_phase, stop, on_row).0
}

/// [`play`], also handing back the defender's final model (for tests).
/// Each round is DESIGN.md's protocol, step by step.
pub fn play_to_end(
    plan: &MatchPlan<'_>,
    pretrained: &dyn Classifier,
    on_phase: &dyn Fn(usize, Phase),
    stop: &dyn Fn() -> bool,
    on_row: &mut dyn FnMut(&RoundRow),
) -> (Vec<RoundRow>, Box<dyn Classifier>) {
    let deploy_seed = derived_seed(
        plan.seed,
        path!["match", &plan.attacker.name, &plan.defender.name, "deploy"],
    );
    let mut model = plan.defender.strategy.deploy(pretrained.boxed_clone(), deploy_seed);
    let mut policy = plan.attacker.policy.init(&plan.attacker.repertoire);
    let mut defense = plan.defender.strategy.init();
    let mut history = History::default();
    let mut rows = Vec::with_capacity(plan.rounds);

    for number in 1..=plan.rounds {
        if stop() {
            break;
        }
        let round = Round { plan, number };
        let mut timing = RoundTiming::default();

        // 1. Attack: the agent picks; it crafts on fresh training images.
        on_phase(number, Phase::Attack);
        let started = Instant::now();
        let attack = attack_phase(&round, policy.as_mut(), model.as_ref());
        // 2. Zero-day: the same attack on the evaluation set, before any
        // defense; the agent learns only from its success on its own slice.
        // Evaluation runs on a copy, so that a randomized defense's noise
        // stream is never advanced by evaluation images: otherwise their
        // number would change its later training and the agent's rewards.
        let zero_day = zero_day(&round, model.boxed_clone().as_ref(), &attack);
        let agent_reward = agent_reward(&round, model.as_ref(), &attack);
        policy.observe(attack.arm, agent_reward.reward);
        timing.attack_s = started.elapsed().as_secs_f64();

        // 3. Defense: the defender learns from this round's crafted examples.
        on_phase(number, Phase::Defense);
        let started = Instant::now();
        let defended = defense_phase(&round, defense.as_mut(), model.as_mut(), &attack);
        timing.defense_s = started.elapsed().as_secs_f64();

        // 4. Post-round evaluation of the updated model. A diverged model
        // classifies nothing: every accuracy is 0, and the match ends here.
        on_phase(number, Phase::Evaluation);
        let started = Instant::now();
        history.seen.insert(attack.label.clone(), attack.config.clone());
        history.stale_sets.push(zero_day.verdict.examples.clone());
        let evaluation = match &defended.diverged {
            Some(_) => Evaluation::diverged(plan, &history),
            None => evaluate(&round, model.boxed_clone().as_ref(), &history),
        };
        timing.eval_s = started.elapsed().as_secs_f64();

        // 5. Record one row.
        let row = record(&round, (attack, zero_day, agent_reward), defended, evaluation, timing);
        on_row(&row);
        let diverged = row.diverged.is_some();
        rows.push(row);
        if diverged {
            break;
        }
    }
    (rows, model)
}

/// One round of a match: its plan and number, and the random streams named
/// after them (every draw of the round comes from one of these).
struct Round<'p, 'a> {
    plan: &'p MatchPlan<'a>,
    number: usize,
}

impl Round<'_, '_> {
    /// The stream for one purpose of this round (`detail`: the attack's
    /// label where several attacks draw for the same purpose).
    fn rng(&self, purpose: &str, detail: &str) -> ChaCha8Rng {
        let plan = self.plan;
        stream(
            plan.seed,
            path![
                "match",
                &plan.attacker.name,
                &plan.defender.name,
                self.number,
                purpose,
                detail
            ],
        )
    }

    /// `config` run against `model` on images `x`, its examples checked by
    /// the referee, with the stream for `purpose`.
    fn run_attack(
        &self,
        model: &dyn Model,
        config: &AttackConfig,
        label: &str,
        (x, y): (&[f32], &[u8]),
        purpose: &str,
    ) -> (referee::Verdict, Option<usize>) {
        let crafted = config.run_with(
            model,
            x,
            y,
            &mut self.rng(purpose, label),
            EVAL_BATCH,
            Some(self.plan.train),
        );
        let verdict = referee::check(config.threat(), crafted.examples, x, model.input_dim());
        (verdict, crafted.queries)
    }

    /// As [`Round::run_attack`] for an agent's attack, which the referee
    /// also holds to the rules: an attack outside them fails whole.
    fn run_agent_attack(
        &self,
        model: &dyn Model,
        (config, label, allowed): (&AttackConfig, &str, &crate::Result<()>),
        images: (&[f32], &[u8]),
        purpose: &str,
    ) -> (referee::Verdict, Option<usize>) {
        match allowed {
            Err(reason) => (
                referee::reject_all(images.0, model.input_dim(), &reason.to_string()),
                None,
            ),
            Ok(()) => self.run_attack(model, config, label, images, purpose),
        }
    }
}

/// What the attacks of a match have left behind for later rounds.
#[derive(Default)]
struct History {
    /// Every attack used so far, by label.
    seen: BTreeMap<String, AttackConfig>,
    /// The zero-day examples of every round, crafted against older models.
    stale_sets: Vec<Vec<f32>>,
}

/// Step 1's outcome: the attack picked and what it crafted.
struct Attacked {
    arm: usize,
    config: AttackConfig,
    label: String,
    agent_note: Option<String>,
    /// Whether the attack is inside the rules (a policy may invent attacks).
    allowed: crate::Result<()>,
    craft_labels: Vec<u8>,
    crafted: referee::Verdict,
}

/// Step 1: the policy probes (if it wants to) and picks; the attack crafts
/// on `craft` fresh training images.
fn attack_phase(round: &Round<'_, '_>, policy: &mut dyn Policy, model: &dyn Classifier) -> Attacked {
    let plan = round.plan;
    if policy.wants_probe() {
        let attack = policy.probe_attack();
        policy.probe(&probe(model, plan.attacker_slice, attack, &mut round.rng("probe", "")));
    }
    let arm = policy.pick(round.number, &mut round.rng("pick", ""));
    let agent_note = policy.note();
    let config = policy
        .attack(arm)
        .unwrap_or_else(|| plan.attacker.repertoire[arm].clone());
    let craft_indices =
        rand::seq::index::sample(&mut round.rng("craft-images", ""), plan.train.len(), plan.craft).into_vec();
    let craft_set = plan.train.subset(&craft_indices);
    let label = config.label();
    let allowed = within_rules(plan.rules, &config);
    let images = (&craft_set.images[..], &craft_set.labels[..]);
    let (crafted, _) = round.run_agent_attack(model, (&config, &label, &allowed), images, "craft");
    Attacked {
        arm,
        config,
        label,
        agent_note,
        allowed,
        craft_labels: craft_set.labels,
        crafted,
    }
}

/// Step 2's outcome: the picked attack against the current model on the
/// evaluation set.
struct ZeroDay {
    verdict: referee::Verdict,
    acc: f64,
    /// Queries per evaluation image (query attacks).
    queries: Option<f64>,
    wrong_confidence: Option<f64>,
    perturbation: Option<Norms>,
}

/// Step 2: the defender facing an attack it has never trained on.
fn zero_day(round: &Round<'_, '_>, model: &dyn Classifier, attack: &Attacked) -> ZeroDay {
    let eval = round.plan.eval;
    let images = (&eval.images[..], &eval.labels[..]);
    let agent_attack = (&attack.config, &attack.label[..], &attack.allowed);
    let (verdict, queries) = round.run_agent_attack(model, agent_attack, images, "zero-day");
    let clean = correct(model, &eval.images, &eval.labels);
    let robust = robust(model, &verdict.examples, &eval.labels, &clean);
    let success: Vec<bool> = clean.iter().zip(&robust).map(|(&c, &r)| c && !r).collect();
    ZeroDay {
        acc: fraction(&robust),
        queries: queries.map(|q| q as f64 / eval.labels.len().max(1) as f64),
        wrong_confidence: wrong_confidence(model, &verdict.examples, &success),
        perturbation: Norms::mean(&verdict.examples, &eval.images, eval.dim(), &success),
        verdict,
    }
}

/// What the agent learns from its attack: its success on the attacker
/// slice (never on evaluation images, which would let the test set steer
/// what the defender trains on next).
struct AgentReward {
    /// `1 -` robust accuracy on the attacker slice.
    reward: f64,
    /// Queries per slice image (query attacks).
    queries: Option<f64>,
}

/// Step 2, the agent's side: the picked attack against the current model on
/// the attacker slice.
fn agent_reward(round: &Round<'_, '_>, model: &dyn Classifier, attack: &Attacked) -> AgentReward {
    let slice = round.plan.attacker_slice;
    let images = (&slice.images[..], &slice.labels[..]);
    let agent_attack = (&attack.config, &attack.label[..], &attack.allowed);
    let (verdict, queries) = round.run_agent_attack(model, agent_attack, images, "agent-reward");
    let clean = correct(model, &slice.images, &slice.labels);
    AgentReward {
        reward: 1.0 - robust_accuracy(model, &verdict.examples, &slice.labels, &clean),
        queries: queries.map(|q| q as f64 / slice.labels.len().max(1) as f64),
    }
}

/// Step 3's outcome.
struct Defended {
    note: Option<String>,
    /// Why training diverged, if it did.
    diverged: Option<String>,
}

/// Step 3: the defense updates the model from the crafted examples and the
/// clean training split (never the evaluation set).
fn defense_phase(
    round: &Round<'_, '_>,
    defense: &mut dyn Defense,
    model: &mut dyn Classifier,
    attack: &Attacked,
) -> Defended {
    let data = RoundData {
        crafted: &attack.crafted.examples,
        crafted_labels: &attack.craft_labels,
        train: round.plan.train,
    };
    defense.update(model, &data, &mut round.rng("defense", ""));
    Defended {
        note: defense.note(),
        diverged: divergence(model, &round.plan.attacker_slice.images, model.input_dim()),
    }
}

/// Step 4's outcome: the updated model on the evaluation set.
struct Evaluation {
    clean_acc: f64,
    seen_acc: BTreeMap<String, f64>,
    unseen_acc: BTreeMap<String, f64>,
    /// Per-image worst case: the share of images every seen attack fails on.
    seen_union_acc: f64,
    /// ...and every attack of the unseen panel (`None` without a panel).
    unseen_union_acc: Option<f64>,
    /// Per unseen attack with a specialist: unseen minus specialist.
    unseen_vs_specialist: BTreeMap<String, Paired>,
    stale_acc: f64,
    /// Certified and empirical accuracy, for a defense that certifies.
    certified: Option<(f64, f64)>,
}

impl Evaluation {
    /// A diverged model's: it classifies nothing.
    fn diverged(plan: &MatchPlan<'_>, history: &History) -> Evaluation {
        let zero = |labels: Vec<String>| labels.into_iter().map(|l| (l, 0.0)).collect();
        let nothing = vec![false; plan.eval.len()];
        Evaluation {
            clean_acc: 0.0,
            seen_acc: zero(history.seen.keys().cloned().collect()),
            unseen_acc: zero(plan.unseen.iter().map(AttackConfig::label).collect()),
            seen_union_acc: 0.0,
            unseen_union_acc: (!plan.unseen.is_empty()).then_some(0.0),
            unseen_vs_specialist: versus_specialists(plan, |_| &nothing),
            stale_acc: 0.0,
            certified: None,
        }
    }
}

/// Step 4: every attack seen so far re-run against the updated model, the
/// unseen panel, the stale examples, and certification where it applies.
fn evaluate(round: &Round<'_, '_>, model: &dyn Classifier, history: &History) -> Evaluation {
    let plan = round.plan;
    let eval = plan.eval;
    let clean = correct(model, &eval.images, &eval.labels);
    let robust_mask = |config: &AttackConfig, label: &str, purpose: &str| {
        let images = (&eval.images[..], &eval.labels[..]);
        let (verdict, _) = round.run_attack(model, config, label, images, purpose);
        robust(model, &verdict.examples, &eval.labels, &clean)
    };
    let robust_acc = |config: &AttackConfig, label: &str, purpose: &str| fraction(&robust_mask(config, label, purpose));
    let seen = PerImage::of(
        history
            .seen
            .values()
            .map(|c| (c.label(), robust_mask(c, &c.label(), "seen"))),
    );
    // The unseen panel is an adaptive evaluation: it is recorded under the
    // panel's own labels, but runs as adapted to the defense.
    let unseen_masks: BTreeMap<String, Vec<bool>> = plan
        .unseen
        .iter()
        .map(|c| (c.label(), robust_mask(&adapted(c, model), &c.label(), "unseen")))
        .collect();
    let unseen_vs_specialist = versus_specialists(plan, |label| &unseen_masks[label]);
    let unseen = PerImage::of(plan.unseen.iter().map(|c| {
        let label = c.label();
        let mask = unseen_masks[&label].clone();
        (label, mask)
    }));
    let (seen_acc, unseen_acc) = (seen.accuracies, unseen.accuracies);
    let stale_acc = metrics::min(
        history
            .stale_sets
            .iter()
            .map(|set| robust_accuracy(model, set, &eval.labels, &clean)),
    )
    .unwrap_or(0.0);
    let certified = certify(plan, model, &mut round.rng("certify", ""), |configs| {
        // The l2 attacks already run this round count as attacks on the
        // smoothed classifier too.
        let l2 = |c: &&AttackConfig| c.threat().norm == Norm::L2;
        let seen_l2 = history.seen.values().filter(l2).map(|c| seen_acc[&c.label()]);
        let unseen_l2 = plan.unseen.iter().filter(l2).map(|c| unseen_acc[&c.label()]);
        let strongest = configs.iter().map(|c| robust_acc(c, &c.label(), "certify"));
        metrics::min(seen_l2.chain(unseen_l2).chain(strongest)).unwrap_or(1.0)
    });
    Evaluation {
        clean_acc: fraction(&clean),
        seen_acc,
        unseen_acc,
        seen_union_acc: seen.union_acc.unwrap_or(0.0),
        unseen_union_acc: unseen.union_acc,
        unseen_vs_specialist,
        stale_acc,
        certified,
    }
}

/// Per unseen attack with a specialist: the updated model's robust mask
/// (`unseen` gives it by label) against the specialist's, paired by image.
fn versus_specialists<'m>(plan: &MatchPlan<'_>, unseen: impl Fn(&str) -> &'m Vec<bool>) -> BTreeMap<String, Paired> {
    plan.specialists
        .iter()
        .map(|(label, specialist)| {
            let (diff, ci95) = stats::paired_difference(unseen(label), specialist);
            (label.clone(), Paired { diff, ci95 })
        })
        .collect()
}

/// A set of attacks' results on the evaluation images: each attack's robust
/// accuracy, and the per-image worst case over the set.
struct PerImage {
    accuracies: BTreeMap<String, f64>,
    /// The share of images robust under every attack (`None`: no attacks).
    union_acc: Option<f64>,
}

impl PerImage {
    fn of(masks: impl Iterator<Item = (String, Vec<bool>)>) -> PerImage {
        let mut accuracies = BTreeMap::new();
        let mut union: Option<Vec<bool>> = None;
        for (label, mask) in masks {
            accuracies.insert(label, fraction(&mask));
            union = Some(match union {
                None => mask,
                Some(all) => all.iter().zip(&mask).map(|(&a, &m)| a && m).collect(),
            });
        }
        PerImage {
            accuracies,
            union_acc: union.as_deref().map(fraction),
        }
    }
}

/// Gradient draws an adaptive evaluation averages per step against a
/// randomized defense.
const EOT_SAMPLES: usize = 8;

/// An attack as an adaptive evaluation runs it against `model` (DESIGN's
/// honesty rule 3): around a preprocessing step through BPDA, and over a
/// randomized defense's randomness through EOT.
fn adapted(config: &AttackConfig, model: &dyn Model) -> AttackConfig {
    let config = match model.preprocessed() {
        Some(_) => config.through_bpda(),
        None => config.clone(),
    };
    match model.randomized() {
        true => config.through_eot(EOT_SAMPLES),
        false => config,
    }
}

/// Step 5: the round's row, from what each step measured.
fn record(
    round: &Round<'_, '_>,
    (attack, zero_day, agent_reward): (Attacked, ZeroDay, AgentReward),
    defended: Defended,
    evaluation: Evaluation,
    timing: RoundTiming,
) -> RoundRow {
    let plan = round.plan;
    let Evaluation {
        clean_acc,
        seen_acc,
        unseen_acc,
        seen_union_acc,
        unseen_union_acc,
        unseen_vs_specialist,
        stale_acc,
        certified,
    } = evaluation;
    let seen_worst = metrics::min(seen_acc.values().copied()).unwrap_or(0.0);
    let unseen_worst = metrics::min(unseen_acc.values().copied());
    let unseen_values: Vec<f64> = unseen_acc.values().copied().collect();
    RoundRow {
        match_id: plan.match_id,
        attacker: plan.attacker.name.clone(),
        defender: plan.defender.name.clone(),
        seed: plan.seed,
        round: round.number,
        attack: attack.label,
        zero_day_acc: zero_day.acc,
        reward: 1.0 - zero_day.acc,
        agent_reward: agent_reward.reward,
        agent_queries: agent_reward.queries,
        clean_acc,
        seen_worst,
        unseen_worst,
        unseen_mean: metrics::mean(&unseen_values),
        gap: unseen_worst.map(|u| seen_worst - u),
        seen_union_acc,
        unseen_union_acc,
        union_gap: unseen_union_acc.map(|u| seen_union_acc - u),
        specialist_acc: plan
            .specialists
            .iter()
            .map(|(label, mask)| (label.clone(), metrics::fraction(mask)))
            .collect(),
        unseen_vs_specialist,
        stale_acc,
        stale_inflation: stale_acc - seen_worst,
        seen_acc,
        unseen_acc,
        wrong_confidence: zero_day.wrong_confidence,
        perturbation: zero_day.perturbation,
        zero_day_queries: zero_day.queries,
        agent_note: attack.agent_note,
        defense_note: defended.note,
        certified_acc: certified.map(|c| c.0),
        certified_empirical_acc: certified.map(|c| c.1),
        certified_within_empirical: certified.map(|c| c.0 <= c.1),
        diverged: defended.diverged,
        violations: attack.crafted.violations + zero_day.verdict.violations,
        referee_log: attack.crafted.log.into_iter().chain(zero_day.verdict.log).collect(),
        timing,
    }
}

/// Why the model's training diverged, if it did: its outputs on the first
/// batch of the attacker slice are not all finite (NaN or infinite weights
/// or loss show up there). Never evaluation images: whether a match goes
/// on must not depend on them.
fn divergence(model: &dyn Classifier, eval_x: &[f32], dim: usize) -> Option<String> {
    // ReLU maps NaN to 0, so NaN weights can hide behind finite outputs:
    // look at the weights too.
    let bad_weights = crate::tournament::pretrain::non_finite_weights(model);
    if bad_weights > 0 {
        return Some(format!(
            "the defender's training diverged: {bad_weights} weights are NaN or infinite after its update"
        ));
    }
    let n = (eval_x.len() / dim.max(1)).min(EVAL_BATCH);
    let logits = model.logits(&eval_x[..n * dim]);
    let bad = logits.iter().filter(|v| !v.is_finite()).count();
    (bad > 0).then(|| {
        format!(
            "the defender's training diverged: {bad} of {} outputs on the attacker slice's images are NaN or infinite after its update",
            logits.len()
        )
    })
}

/// For a defender that certifies (smoothing), with an l2 budget in the
/// rules: its certified accuracy at that budget, and its empirical robust
/// accuracy under the strongest l2 attack (`empirical` runs EOT-PGD at the
/// budget and takes the minimum with the round's other l2 attacks).
fn certify(
    plan: &MatchPlan<'_>,
    model: &dyn Model,
    rng: &mut ChaCha8Rng,
    empirical: impl FnOnce(&[AttackConfig]) -> f64,
) -> Option<(f64, f64)> {
    let radius = plan.rules.l2?;
    let certified =
        plan.defender
            .strategy
            .certified_accuracy(model, &plan.eval.images, &plan.eval.labels, radius, rng)?;
    let eot = AttackConfig::Eot(crate::attack::EotConfig {
        name: None,
        samples: 8,
        attack: Box::new(AttackConfig::Pgd(crate::attack::PgdConfig::new(Norm::L2, radius))),
    });
    Some((certified, empirical(&[eot])))
}
