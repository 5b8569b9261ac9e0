//! A few adversarial examples worth looking at: for each of a few attacks,
//! the evaluation image it fools with the most confidence.

use crate::attack::AttackConfig;
use crate::data::Split;
use crate::model::{probabilities, Model};
use crate::path;
use crate::record::GalleryItem;
use crate::rng::stream;

use super::metrics::EVAL_BATCH;
use super::referee;

/// Images searched per attack: enough to find a fooled one, cheap to craft.
const CANDIDATES: usize = 64;

/// Pixels stored as bytes: the gallery is for eyes, and stays small.
fn to_bytes(pixels: &[f32]) -> Vec<u8> {
    pixels
        .iter()
        .map(|&p| (p.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

fn top(probs: &[f32]) -> (usize, f64) {
    let (class, p) = probs.iter().enumerate().fold(
        (0, f32::NEG_INFINITY),
        |best, (i, &p)| if p > best.1 { (i, p) } else { best },
    );
    (class, p as f64)
}

/// For each attack, the candidate whose adversarial version the model gets
/// wrong with the highest confidence (or, when it fools none, the first
/// image), with the model's answers before and after.
pub fn gallery(
    model: &dyn Model,
    eval: &Split,
    train: &Split,
    attacks: &[AttackConfig],
    seed: u64,
) -> Vec<GalleryItem> {
    let n = CANDIDATES.min(eval.len());
    let indices: Vec<usize> = (0..n).collect();
    let set = eval.subset(&indices);
    let (dim, classes) = (set.dim(), model.classes());
    let clean_probs = probabilities(model, &set.images, EVAL_BATCH);
    attacks
        .iter()
        .map(|attack| {
            let label = attack.label();
            let mut rng = stream(seed, path!["gallery", &label]);
            let crafted = attack.run_with(model, &set.images, &set.labels, &mut rng, EVAL_BATCH, Some(train));
            let adv = referee::check(attack.threat(), crafted.examples, &set.images, dim).examples;
            let adv_probs = probabilities(model, &adv, EVAL_BATCH);
            let answers = |i: usize| {
                let clean = top(&clean_probs[i * classes..(i + 1) * classes]);
                let adv = top(&adv_probs[i * classes..(i + 1) * classes]);
                (clean, adv)
            };
            let fooled = (0..n)
                .filter(|&i| {
                    let ((clean, _), (adv, _)) = answers(i);
                    clean == set.labels[i] as usize && adv != set.labels[i] as usize
                })
                .max_by(|&a, &b| answers(a).1 .1.total_cmp(&answers(b).1 .1).then(b.cmp(&a)));
            let i = fooled.unwrap_or(0);
            let ((clean_pred, clean_conf), (adv_pred, adv_conf)) = answers(i);
            GalleryItem {
                attack: label,
                channels: set.shape.channels,
                rows: set.shape.rows,
                cols: set.shape.cols,
                clean: to_bytes(&set.images[i * dim..(i + 1) * dim]),
                adversarial: to_bytes(&adv[i * dim..(i + 1) * dim]),
                true_label: set.labels[i] as usize,
                clean_pred,
                clean_conf,
                adv_pred,
                adv_conf,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{Norm, PgdConfig};
    use crate::testing::trained_mlp;

    #[test]
    fn finds_a_confidently_fooled_image_within_the_budget() {
        let f = trained_mlp();
        let test = Split {
            images: f.x.clone(),
            labels: f.y.clone(),
            shape: crate::data::Shape::MNIST,
        };
        let attack = AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1));
        let items = gallery(f.model.as_ref(), &test, &f.train, &[attack], 3);
        assert_eq!(items.len(), 1);
        let item = &items[0];
        assert_eq!(item.true_label, item.clean_pred, "the clean image is classified right");
        assert_ne!(item.adv_pred, item.true_label, "and the adversarial one wrong");
        assert!(item.adv_conf > 0.5, "confidently: {}", item.adv_conf);
        let linf = item
            .clean
            .iter()
            .zip(&item.adversarial)
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .max()
            .unwrap();
        // 0.1 of 255, plus a rounding step.
        assert!(linf <= 26, "linf {linf} of 255");
    }
}
