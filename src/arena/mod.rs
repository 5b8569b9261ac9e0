//! The arena: one match, round by round, as DESIGN.md's round protocol.

pub mod gallery;
pub mod metrics;
pub mod referee;

use std::collections::BTreeMap;
use std::time::Instant;

use crate::agent::{AttackerConfig, Probe};
use crate::attack::{within_rules, AttackConfig, Rules};
use crate::data::Split;
use crate::defense::{DefenderConfig, RoundData};
use crate::model::{Classifier, CwMargin, Model};
use crate::path;
use crate::record::{Norms, RoundRow, RoundTiming};
use crate::rng::{derived_seed, stream};
use metrics::{correct, fraction, robust, wrong_confidence, EVAL_BATCH};

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
    pub train: &'a Split,
    /// The tournament's fixed evaluation subset of the test split.
    pub eval: &'a Split,
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

/// Probe a model's input gradients on 32 training images (what a
/// defense-aware attacker may look at before picking).
fn probe(model: &dyn Model, train: &Split, attack: Option<AttackConfig>, rng: &mut rand_chacha::ChaCha8Rng) -> Probe {
    let indices = rand::seq::index::sample(rng, train.len(), 32.min(train.len())).into_vec();
    let set = train.subset(&indices);
    // The margin's gradient does not vanish on confident predictions the
    // way cross-entropy's does, so only masking makes it zero.
    let margin = CwMargin {
        labels: &set.labels,
        kappa: f32::INFINITY,
    };
    let (_, grad) = model.input_grad(&set.images, &margin);
    let norms: Vec<f64> = grad
        .chunks(set.dim())
        .map(|g| g.iter().map(|v| v.abs() as f64).sum())
        .collect();
    let random_outputs = model.logits(&set.images) != model.logits(&set.images);
    let success_at = |attack: &AttackConfig, rng: &mut rand_chacha::ChaCha8Rng| {
        let adv = attack.run(model, &set.images, &set.labels, rng, EVAL_BATCH).examples;
        1.0 - fraction(&correct(model, &adv, &set.labels))
    };
    let success_by_budget = attack.and_then(|a| {
        let quarter = a.scaled(0.25)?;
        Some((success_at(&quarter, rng), success_at(&a, rng)))
    });
    Probe {
        zero_gradient_fraction: norms.iter().filter(|&&n| n < 1e-12).count() as f64 / norms.len().max(1) as f64,
        random_outputs,
        success_by_budget,
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
pub fn play_to_end(
    plan: &MatchPlan<'_>,
    pretrained: &dyn Classifier,
    on_phase: &dyn Fn(usize, Phase),
    stop: &dyn Fn() -> bool,
    on_row: &mut dyn FnMut(&RoundRow),
) -> (Vec<RoundRow>, Box<dyn Classifier>) {
    let dim = pretrained.input_dim();
    let deploy_seed = derived_seed(
        plan.seed,
        path!["match", &plan.attacker.name, &plan.defender.name, "deploy"],
    );
    let mut model = plan.defender.strategy.deploy(pretrained.boxed_clone(), deploy_seed);
    let repertoire = &plan.attacker.repertoire;
    let mut policy = plan.attacker.policy.init(repertoire);
    let mut defense = plan.defender.strategy.init();
    let (eval_x, eval_y) = (&plan.eval.images, &plan.eval.labels);
    let mut seen: BTreeMap<String, AttackConfig> = BTreeMap::new();
    let mut stale_sets: Vec<Vec<f32>> = Vec::new();
    let mut rows = Vec::with_capacity(plan.rounds);

    for round in 1..=plan.rounds {
        if stop() {
            break;
        }
        let rng = |purpose: &str, detail: &str| {
            stream(
                plan.seed,
                path![
                    "match",
                    &plan.attacker.name,
                    &plan.defender.name,
                    round,
                    purpose,
                    detail
                ],
            )
        };
        let mut timing = RoundTiming::default();

        // 1. Attack: the agent picks; it crafts on fresh training images.
        on_phase(round, Phase::Attack);
        let started = Instant::now();
        if policy.wants_probe() {
            let attack = policy.probe_attack();
            policy.probe(&probe(model.as_ref(), plan.train, attack, &mut rng("probe", "")));
        }
        let arm = policy.pick(round, &mut rng("pick", ""));
        let agent_note = policy.note();
        let config = policy.attack(arm).unwrap_or_else(|| repertoire[arm].clone());
        let config = &config;
        let label = config.label();
        let craft_indices =
            rand::seq::index::sample(&mut rng("craft-images", ""), plan.train.len(), plan.craft).into_vec();
        let craft_set = plan.train.subset(&craft_indices);
        // A policy may invent attacks: the referee holds them to the rules
        // too, and an attack outside them fails whole.
        let allowed = within_rules(plan.rules, config);
        let attack_on = |x: &[f32], y: &[u8], purpose: &str| -> (referee::Verdict, Option<usize>) {
            match &allowed {
                Err(reason) => (referee::reject_all(x, dim, reason), None),
                Ok(()) => {
                    let crafted = config.run_with(
                        model.as_ref(),
                        x,
                        y,
                        &mut rng(purpose, &label),
                        EVAL_BATCH,
                        Some(plan.train),
                    );
                    (
                        referee::check(config.threat(), crafted.examples, x, dim),
                        crafted.queries,
                    )
                }
            }
        };
        let (crafted, _) = attack_on(&craft_set.images, &craft_set.labels, "craft");

        // 2. Zero-day: the same attack on the evaluation set, before any defense.
        let (zero_day, zero_day_queries) = attack_on(eval_x, eval_y, "zero-day");
        let zero_day_queries = zero_day_queries.map(|q| q as f64 / eval_y.len().max(1) as f64);
        let clean_before = correct(model.as_ref(), eval_x, eval_y);
        let zero_day_robust = robust(model.as_ref(), &zero_day.examples, eval_y, &clean_before);
        let zero_day_acc = fraction(&zero_day_robust);
        policy.observe(arm, 1.0 - zero_day_acc);
        let success: Vec<bool> = clean_before
            .iter()
            .zip(&zero_day_robust)
            .map(|(&c, &r)| c && !r)
            .collect();
        let wrong_conf = wrong_confidence(model.as_ref(), &zero_day.examples, &success);
        let perturbation = Norms::mean(&zero_day.examples, eval_x, dim, &success);
        timing.attack_s = started.elapsed().as_secs_f64();

        // 3. Defense: the defender learns from this round's crafted examples.
        on_phase(round, Phase::Defense);
        let started = Instant::now();
        let data = RoundData {
            crafted: &crafted.examples,
            crafted_labels: &craft_set.labels,
            train: plan.train,
        };
        defense.update(model.as_mut(), &data, &mut rng("defense", ""));
        let defense_note = defense.note();
        let diverged = divergence(model.as_ref(), eval_x, dim);
        timing.defense_s = started.elapsed().as_secs_f64();
        // 4. Post-round evaluation of the updated model. A diverged model
        // classifies nothing: every accuracy is 0, and the match ends here.
        on_phase(round, Phase::Evaluation);
        let started = Instant::now();
        seen.insert(label.clone(), config.clone());
        stale_sets.push(zero_day.examples);
        let clean_after = match diverged {
            Some(_) => vec![false; eval_y.len()],
            None => correct(model.as_ref(), eval_x, eval_y),
        };
        let robust_acc = |config: &AttackConfig, purpose: &str| {
            let label = config.label();
            if diverged.is_some() {
                return (label, 0.0);
            }
            // The unseen panel attacks a preprocessing defense around its
            // preprocessing (BPDA), as an adaptive evaluation must; it is
            // recorded under the panel's own label.
            let config = match (purpose, model.preprocessed()) {
                ("unseen", Some(_)) => config.through_bpda(),
                _ => config.clone(),
            };
            let adv = config.run_with(
                model.as_ref(),
                eval_x,
                eval_y,
                &mut rng(purpose, &label),
                EVAL_BATCH,
                Some(plan.train),
            );
            let adv = referee::check(config.threat(), adv.examples, eval_x, dim);
            (
                label,
                fraction(&robust(model.as_ref(), &adv.examples, eval_y, &clean_after)),
            )
        };
        let seen_acc: BTreeMap<String, f64> = seen.values().map(|c| robust_acc(c, "seen")).collect();
        let unseen_acc: BTreeMap<String, f64> = plan.unseen.iter().map(|c| robust_acc(c, "unseen")).collect();
        let stale_acc = metrics::min(
            stale_sets
                .iter()
                .map(|set| fraction(&robust(model.as_ref(), set, eval_y, &clean_after))),
        )
        .unwrap_or(0.0);
        let seen_worst = metrics::min(seen_acc.values().copied()).unwrap_or(0.0);
        let unseen_worst = metrics::min(unseen_acc.values().copied());
        let unseen_values: Vec<f64> = unseen_acc.values().copied().collect();
        let certified = diverged.is_none().then(|| {
            certify(plan, model.as_ref(), &mut rng("certify", ""), |configs| {
                // The l2 attacks already run this round count as attacks on the
                // smoothed classifier too.
                let l2 = |c: &&AttackConfig| c.threat().norm == crate::attack::Norm::L2;
                let seen_l2 = seen.values().filter(l2).map(|c| seen_acc[&c.label()]);
                let unseen_l2 = plan.unseen.iter().filter(l2).map(|c| unseen_acc[&c.label()]);
                let strongest = configs.iter().map(|c| robust_acc(c, "certify").1);
                metrics::min(seen_l2.chain(unseen_l2).chain(strongest)).unwrap_or(1.0)
            })
        });
        let certified = certified.flatten();
        timing.eval_s = started.elapsed().as_secs_f64();

        let row = RoundRow {
            match_id: plan.match_id,
            attacker: plan.attacker.name.clone(),
            defender: plan.defender.name.clone(),
            seed: plan.seed,
            round,
            attack: label,
            zero_day_acc,
            reward: 1.0 - zero_day_acc,
            clean_acc: fraction(&clean_after),
            seen_worst,
            unseen_worst,
            unseen_mean: metrics::mean(&unseen_values),
            gap: unseen_worst.map(|u| seen_worst - u),
            stale_acc,
            stale_inflation: stale_acc - seen_worst,
            seen_acc,
            unseen_acc,
            wrong_confidence: wrong_conf,
            perturbation,
            zero_day_queries,
            agent_note,
            defense_note,
            certified_acc: certified.map(|c| c.0),
            certified_empirical_acc: certified.map(|c| c.1),
            certified_within_empirical: certified.map(|c| c.0 <= c.1),
            diverged: diverged.clone(),
            violations: crafted.violations + zero_day.violations,
            referee_log: crafted.log.into_iter().chain(zero_day.log).collect(),
            timing,
        };
        on_row(&row);
        rows.push(row);
        if diverged.is_some() {
            break;
        }
    }
    (rows, model)
}

/// Why the model's training diverged, if it did: its outputs on the first
/// evaluation batch are not all finite (NaN or infinite weights or loss
/// show up there).
fn divergence(model: &dyn Classifier, eval_x: &[f32], dim: usize) -> Option<String> {
    // ReLU maps NaN to 0, so NaN weights can hide behind finite outputs:
    // look at the weights too.
    let bad_weights = model.parameters().iter().filter(|v| !v.is_finite()).count();
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
            "the defender's training diverged: {bad} of {} outputs on the evaluation images are NaN or infinite after its update",
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
    rng: &mut rand_chacha::ChaCha8Rng,
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
        attack: Box::new(AttackConfig::Pgd(crate::attack::PgdConfig::new(
            crate::attack::Norm::L2,
            radius,
        ))),
    });
    Some((certified, empirical(&[eot])))
}
