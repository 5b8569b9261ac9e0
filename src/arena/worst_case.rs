//! The per-image worst case over a list of attacks, as AutoAttack runs its
//! parts: the first attack runs on every image, each later one only on the
//! images all earlier ones left standing (an image one attack fooled stays
//! fooled). Every example passes the referee first.

use rand_chacha::ChaCha8Rng;

use super::referee;
use crate::attack::AttackConfig;
use crate::data::Split;
use crate::model::metrics::correct;
use crate::model::Model;

/// What the cascade found.
#[derive(Debug, Clone, PartialEq)]
pub struct WorstCase {
    /// Per image: classified right clean.
    pub clean: Vec<bool>,
    /// Per image: right clean and under every attack.
    pub survives: Vec<bool>,
    /// Per attack, in order: the images it ran on and those it fooled.
    pub per_attack: Vec<(usize, usize)>,
}

/// Runs `attacks` in turn on `eval` against `model`, each with the random
/// stream `rng_for` gives it; transfer attacks train their surrogate on
/// `train`.
pub fn worst_case(
    model: &dyn Model,
    attacks: &[AttackConfig],
    eval: &Split,
    train: &Split,
    rng_for: &dyn Fn(&AttackConfig) -> ChaCha8Rng,
) -> WorstCase {
    let clean = correct(model, &eval.images, &eval.labels);
    let mut survives = clean.clone();
    let mut per_attack = Vec::with_capacity(attacks.len());
    for (a, attack) in attacks.iter().enumerate() {
        let standing: Vec<usize> = (0..eval.len()).filter(|&i| a == 0 || survives[i]).collect();
        if standing.is_empty() {
            per_attack.push((0, 0));
            continue;
        }
        let images = eval.subset(&standing);
        let mut rng = rng_for(attack);
        let crafted = attack.run_with(model, &images.images, &images.labels, &mut rng, 128, Some(train));
        let verdict = referee::check(attack.threat(), crafted.examples, &images.images, eval.dim());
        let still_correct = correct(model, &verdict.examples, &images.labels);
        let mut fooled = 0;
        for (&i, ok) in standing.iter().zip(still_correct) {
            fooled += (survives[i] && !ok) as usize;
            survives[i] &= ok;
        }
        per_attack.push((standing.len(), fooled));
    }
    WorstCase {
        clean,
        survives,
        per_attack,
    }
}
