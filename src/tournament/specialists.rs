//! Specialists: for each threat model and budget of the unseen panel, the
//! pretrained model trained with PGD in it by the matrix's training, once
//! per seed. An unseen accuracy compared with the specialist's separates
//! "never seen" from "hard": a threat model where even a model trained for
//! it stays weak is hard, not novel.

use std::collections::BTreeMap;

use crate::arena::metrics::EVAL_BATCH;
use crate::arena::referee;
use crate::attack::AttackConfig;
use crate::config::TournamentFile;
use crate::data::Split;
use crate::model::cache::ModelCache;
use crate::model::metrics::{correct, robust};
use crate::model::Classifier;
use crate::path;
use crate::rng::stream;

use super::pretrain::{cached, Recipe, TrainingRecord};

/// Per unseen attack (by label): which images of the evaluation subset the
/// specialist of its threat model stays correct on under it.
pub type SpecialistMasks = BTreeMap<String, Vec<bool>>;

/// What specialists start from and learn on: one seed's pretrained model
/// (and its cache key), its training images (and their fingerprint), and
/// its evaluation subset.
pub struct Basis<'a> {
    pub pretrained: &'a dyn Classifier,
    pub pretrained_key: &'a str,
    pub train: &'a Split,
    pub train_fingerprint: &'a str,
    pub eval: &'a Split,
    pub classes: usize,
    pub seed: u64,
}

/// Trains (or loads from `cache`) the specialist of every threat model of
/// `file`'s unseen panel and measures it under the panel's attacks of that
/// threat model. Empty without `[specialists]`; incomplete once `stop`
/// says so (the caller then uses none of it); an error when a
/// specialist's training diverged.
pub fn measure(
    file: &TournamentFile,
    start: &Basis<'_>,
    cache: Option<&ModelCache>,
    stop: &dyn Fn() -> bool,
) -> crate::Result<SpecialistMasks> {
    let Some(config) = &file.specialists else {
        return Ok(SpecialistMasks::new());
    };
    let (training, attack_steps) = config.training(file.rounds);
    // One specialist per distinct training attack, for every unseen attack
    // of its threat model.
    let mut groups: BTreeMap<String, (AttackConfig, Vec<&AttackConfig>)> = BTreeMap::new();
    for unseen in &file.unseen {
        let attack = config.attack_for(unseen, attack_steps);
        groups
            .entry(attack.label())
            .or_insert_with(|| (attack, Vec::new()))
            .1
            .push(unseen);
    }
    let mut masks = SpecialistMasks::new();
    for (label, (attack, unseen)) in &groups {
        if stop() {
            break;
        }
        let recipe: Recipe<'_> = Recipe {
            start: super::pretrain::Start::From(start.pretrained_key),
            pretrain: None,
            defense: None,
            rounds: &[],
            name: None,
            engine: file.engine,
            seed: start.seed,
            classes: start.classes,
            train: start.train_fingerprint,
            specialist: Some((attack, &training)),
        };
        let mut model = start.pretrained.boxed_clone();
        let name = format!("the {label} specialist");
        cached(cache, &recipe, &name, model.as_mut(), stop, |net| {
            let began = std::time::Instant::now();
            super::matrix::train_into(net, attack, start.train, &training, start.seed, stop);
            TrainingRecord {
                name: name.clone(),
                seconds: began.elapsed().as_secs_f64(),
            }
        });
        // Cut short, it is no specialist: the caller drops the seed.
        if stop() {
            break;
        }
        super::pretrain::check_trained(model.as_ref(), start.train, &name, "`[specialists]` (its `optimizer`)")?;
        let eval = start.eval;
        let clean = correct(model.as_ref(), &eval.images, &eval.labels);
        for attack in unseen {
            let mut rng = stream(start.seed, path!["specialist", label, &attack.label()]);
            let crafted = attack.run_with(
                model.as_ref(),
                &eval.images,
                &eval.labels,
                &mut rng,
                EVAL_BATCH,
                Some(start.train),
            );
            let verdict = referee::check(attack.threat(), crafted.examples, &eval.images, eval.dim());
            masks.insert(
                attack.label(),
                robust(model.as_ref(), &verdict.examples, &eval.labels, &clean),
            );
        }
    }
    Ok(masks)
}
