//! AutoAttack: the standard robustness evaluation. Four diverse attacks run
//! in sequence, each on the images the ones before it left classified
//! correctly: APGD-CE, APGD-T with the targeted DLR loss towards the most
//! likely other classes, FAB-T, and the score-based Square attack. Each image
//! keeps the first example that fools the model, so an image counts as
//! robust only if every part fails on it: the per-image worst case. Croce &
//! Hein 2020, "Reliable evaluation of adversarial robustness with an
//! ensemble of diverse parameter-free attacks".

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::apgd::{ApgdConfig, ApgdLoss};
use super::fab::{likely_targets, FabConfig};
use super::{fooled, named, AttackSpec, Crafted, Norm, Signal, SquareConfig, ThreatModel};
use crate::data::Split;
use crate::model::metrics::correct;
use crate::model::Model;
use crate::registry::Describe;
use crate::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoAttackConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `linf` (default) or `l2`.
    #[serde(default = "super::pgd::default_norm")]
    pub norm: Norm,
    pub eps: f32,
    /// `standard` (Croce & Hein's settings) or `fast`.
    #[serde(default)]
    pub version: Version,
}

/// Which settings the parts run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// Croce & Hein's: 100 iterations, 9 targets, 5000 queries.
    #[default]
    Standard,
    /// Fewer iterations, targets and queries: seconds on a few hundred
    /// MNIST-sized images with a small MLP.
    Fast,
}

/// What a version runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// APGD-CE and APGD-T iterations (one restart each).
    pub apgd_steps: usize,
    /// Target classes of APGD-T and FAB-T: the most likely other classes,
    /// capped at the number of classes minus one.
    pub targets: usize,
    /// FAB-T iterations per target (one restart).
    pub fab_steps: usize,
    /// Square's queries per image.
    pub square_queries: usize,
}

/// Square's initial square size, AutoAttack's for both norms.
const SQUARE_P_INIT: f32 = 0.8;

impl Version {
    pub fn settings(self) -> Settings {
        match self {
            Version::Standard => Settings {
                apgd_steps: 100,
                targets: 9,
                fab_steps: 100,
                square_queries: 5000,
            },
            Version::Fast => Settings {
                apgd_steps: 20,
                targets: 3,
                fab_steps: 20,
                square_queries: 1000,
            },
        }
    }

    fn name(self) -> &'static str {
        match self {
            Version::Standard => "standard",
            Version::Fast => "fast",
        }
    }
}

impl AutoAttackConfig {
    pub fn new(norm: Norm, eps: f32, version: Version) -> Self {
        AutoAttackConfig {
            name: None,
            norm,
            eps,
            version,
        }
    }

    /// The first part: untargeted APGD with cross-entropy.
    pub fn apgd_ce(&self) -> ApgdConfig {
        ApgdConfig {
            steps: self.version.settings().apgd_steps,
            ..ApgdConfig::new(self.norm, self.eps)
        }
    }

    /// The second part's attack, run once per target class with explicit
    /// targets: APGD with the targeted DLR loss.
    fn apgd_t(&self) -> ApgdConfig {
        ApgdConfig {
            loss: ApgdLoss::Dlr,
            ..self.apgd_ce()
        }
    }

    /// The third part: FAB-T over the most likely other classes.
    pub fn fab_t(&self) -> FabConfig {
        let settings = self.version.settings();
        FabConfig {
            steps: settings.fab_steps,
            targets: Some(settings.targets),
            ..FabConfig::new(self.norm, self.eps)
        }
    }

    /// The last part: Square, from scores alone.
    pub fn square(&self) -> SquareConfig {
        SquareConfig {
            norm: self.norm,
            queries: self.version.settings().square_queries,
            p_init: Some(SQUARE_P_INIT),
            ..SquareConfig::new(self.eps)
        }
    }

    /// APGD-T: per rank of the clean logits (most likely other class
    /// first), APGD with the targeted DLR towards that class, on the images
    /// still robust, batch by batch.
    fn apgd_targeted(
        &self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        rng: &mut ChaCha8Rng,
        batch: usize,
        worst: &mut Worst,
    ) {
        let ranks = likely_targets(&model.logits(x), y, model.classes(), self.version.settings().targets);
        let apgd = self.apgd_t();
        let dim = model.input_dim();
        for targets in ranks {
            worst.attack_remaining(model, x, y, |images, xs, ys| {
                let targets = gather(&targets, images, 1);
                let examples = xs
                    .chunks(batch * dim)
                    .zip(ys.chunks(batch).zip(targets.chunks(batch)))
                    .flat_map(|(xb, (yb, tb))| apgd.craft_towards(model, xb, yb, tb, rng))
                    .collect();
                Crafted {
                    examples,
                    queries: None,
                }
            });
        }
    }
}

impl AttackSpec for AutoAttackConfig {
    named!();
    fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: self.norm,
            eps: self.eps,
        }
    }
    /// No one signal fits a composite: margin, because the parts that carry
    /// it past a saturated softmax (targeted DLR, FAB's logit differences)
    /// follow logit margins, and Square needs no gradient at all.
    fn signal(&self) -> Signal {
        Signal::Margin
    }
    /// The version and what it runs, so that a row says what was run.
    fn label_detail(&self) -> String {
        let s = self.version.settings();
        format!(
            "-{}(apgd{},t{},fab{},sq{})",
            self.version.name(),
            s.apgd_steps,
            s.targets,
            s.fab_steps,
            s.square_queries
        )
    }
    /// `eps` is checked for every attack by [`super::AttackConfig::validate`].
    fn validate(&self) -> crate::Result<()> {
        if self.norm == Norm::L1 {
            return Err(Error::invalid(
                "`norm` must be \"linf\" or \"l2\" for autoattack, got \"l1\"",
            ));
        }
        Ok(())
    }
    /// Square's queries per image: the rules' `queries` must allow them.
    fn queries(&self) -> Option<usize> {
        Some(self.version.settings().square_queries)
    }
    /// At least what its first part, APGD-CE, promises.
    fn required_success(&self) -> Option<f64> {
        Some(0.9)
    }
    fn scale_budget(&mut self, factor: f32) -> bool {
        self.eps *= factor;
        true
    }
    /// The parts in order, each after the first on the images still robust;
    /// the queries are Square's.
    fn run(
        &self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        rng: &mut ChaCha8Rng,
        batch: usize,
        _train: Option<&Split>,
    ) -> Crafted {
        let mut worst = Worst::new(model, x, y);
        // APGD-CE runs on every image, as it would alone, so that it fools
        // exactly the images it fools alone.
        let ce = self.apgd_ce().run(model, x, y, rng, batch, None);
        let every: Vec<usize> = (0..y.len()).collect();
        worst.keep(model, &every, &ce.examples, y);
        self.apgd_targeted(model, x, y, rng, batch, &mut worst);
        let fab = self.fab_t();
        worst.attack_remaining(model, x, y, |_, xs, ys| fab.run(model, xs, ys, rng, batch, None));
        let square = self.square();
        let queries = worst.attack_remaining(model, x, y, |_, xs, ys| square.run(model, xs, ys, rng, batch, None));
        Crafted {
            examples: worst.adv,
            queries: Some(queries.unwrap_or(0)),
        }
    }
}

impl Describe for AutoAttackConfig {
    const HELP: &'static str = "AutoAttack, the standard evaluation: per image the worst case of APGD-CE, APGD-T (targeted DLR), FAB-T and Square, each run on the images the others left robust (Croce & Hein 2020); linf or l2; `version` standard or fast";
    fn example() -> Self {
        AutoAttackConfig::new(Norm::Linf, 0.3, Version::Fast)
    }
    /// The fast version at the default tournament's budgets (the standard
    /// one takes minutes on the attacks table's 200 images).
    fn variants() -> Vec<Self> {
        vec![
            AutoAttackConfig::new(Norm::Linf, 0.1, Version::Fast),
            AutoAttackConfig::new(Norm::L2, 2.0, Version::Fast),
        ]
    }
}

/// The per-image worst case so far: the example each image keeps, and
/// whether the image is still robust (classified correctly under every part
/// run so far; an image misclassified clean never is).
struct Worst {
    adv: Vec<f32>,
    robust: Vec<bool>,
    dim: usize,
}

impl Worst {
    fn new(model: &dyn Model, x: &[f32], y: &[u8]) -> Worst {
        Worst {
            adv: x.to_vec(),
            robust: correct(model, x, y),
            dim: model.input_dim(),
        }
    }

    /// Of the images `images` (indices into the batch, whose labels are
    /// `y`), given their `examples` in the same order, keep each example
    /// that fools the model on an image still robust.
    fn keep(&mut self, model: &dyn Model, images: &[usize], examples: &[f32], y: &[u8]) {
        let dim = self.dim;
        let labels = gather(y, images, 1);
        for (k, (&i, wrong)) in images.iter().zip(fooled(model, examples, &labels)).enumerate() {
            if wrong && self.robust[i] {
                self.robust[i] = false;
                self.adv[i * dim..(i + 1) * dim].copy_from_slice(&examples[k * dim..(k + 1) * dim]);
            }
        }
    }

    /// Run `attack` (handed the indices, images and labels of the images
    /// still robust) and keep what fools; its queries, or `None` when no
    /// image was left to attack.
    fn attack_remaining(
        &mut self,
        model: &dyn Model,
        x: &[f32],
        y: &[u8],
        attack: impl FnOnce(&[usize], &[f32], &[u8]) -> Crafted,
    ) -> Option<usize> {
        let images: Vec<usize> = (0..y.len()).filter(|&i| self.robust[i]).collect();
        if images.is_empty() {
            return None;
        }
        let (xs, ys) = (gather(x, &images, self.dim), gather(y, &images, 1));
        let crafted = attack(&images, &xs, &ys);
        self.keep(model, &images, &crafted.examples, y);
        crafted.queries
    }
}

/// The rows `images` of `values` (rows of `width` values), in that order.
fn gather<T: Copy>(values: &[T], images: &[usize], width: usize) -> Vec<T> {
    images
        .iter()
        .flat_map(|&i| values[i * width..(i + 1) * width].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{within_rules, AttackConfig, EotConfig, Rules};
    use crate::model::{argmax_rows, Classifier, Engine, ModelConfig};
    use crate::testing::{trained_mlp, NoisyInput, SyntheticFixture};
    use rand::{Rng, SeedableRng};

    fn autoattack(norm: Norm, eps: f32, version: Version) -> AttackConfig {
        AttackConfig::AutoAttack(AutoAttackConfig::new(norm, eps, version))
    }

    /// A small untrained MLP on 4x4 images, labels as it predicts them, so
    /// that even the standard version runs in a blink.
    fn tiny() -> (Box<dyn Classifier>, Vec<f32>, Vec<u8>) {
        let model = ModelConfig::mlp(vec![16]).init(Engine::Native, crate::data::Shape::gray(4, 4), 10, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x: Vec<f32> = (0..12 * 16).map(|_| rng.gen_range(0.0..1.0)).collect();
        let y = argmax_rows(&model.logits(&x), 10);
        (model, x, y)
    }

    fn admitted(config: &AttackConfig, adv: &[f32], x: &[f32], dim: usize) {
        for (a, c) in adv.chunks(dim).zip(x.chunks(dim)) {
            config
                .threat()
                .admits(a, c)
                .unwrap_or_else(|v| panic!("{}: {v}", config.label()));
        }
    }

    /// A model whose logits are multiplied by `scale`: its softmax saturates,
    /// so cross-entropy gradients vanish (as with defensive distillation)
    /// while margins keep their direction.
    struct Saturated<'a> {
        inner: &'a dyn Model,
        scale: f32,
    }

    /// `loss` of the scaled logits, its gradient taken back to the unscaled.
    struct Scaled<'a> {
        loss: &'a dyn crate::model::Loss,
        scale: f32,
    }

    impl crate::model::Loss for Scaled<'_> {
        fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
            let scaled: Vec<f32> = logits.iter().map(|z| z * self.scale).collect();
            let (values, grad) = self.loss.eval(&scaled, classes);
            (values, grad.iter().map(|g| g * self.scale).collect())
        }
    }

    impl Model for Saturated<'_> {
        fn image_shape(&self) -> crate::data::Shape {
            self.inner.image_shape()
        }
        fn classes(&self) -> usize {
            self.inner.classes()
        }
        fn logits(&self, x: &[f32]) -> Vec<f32> {
            self.inner.logits(x).iter().map(|z| z * self.scale).collect()
        }
        fn input_grad(&self, x: &[f32], loss: &dyn crate::model::Loss) -> (Vec<f32>, Vec<f32>) {
            let scaled = Scaled {
                loss,
                scale: self.scale,
            };
            let (logits, grad) = self.inner.input_grad(x, &scaled);
            (logits.iter().map(|z| z * self.scale).collect(), grad)
        }
    }

    /// The per-image worst case: every image APGD-CE or FAB-T fools alone,
    /// autoattack fools too; and against a saturated softmax, where
    /// APGD-CE's gradients vanish, the later parts fool what it cannot.
    #[test]
    fn fools_every_image_its_parts_fool_alone() {
        let SyntheticFixture { model, x, y, dim, .. } = trained_mlp();
        let (x, y) = (&x[..64 * dim], &y[..64]);
        let saturated = Saturated {
            inner: model.as_ref(),
            scale: 1000.0,
        };
        let config = AutoAttackConfig::new(Norm::Linf, 0.1, Version::Fast);
        let fooled_by = |attack: AttackConfig| {
            let adv = attack
                .run(&saturated, x, y, &mut ChaCha8Rng::seed_from_u64(2), 32)
                .examples;
            fooled(&saturated, &adv, y)
        };
        let composite = fooled_by(AttackConfig::AutoAttack(config.clone()));
        // APGD-CE alone on the same stream is exactly the first part; FAB-T
        // with one restart draws nothing, so it is the same on any subset.
        let apgd_ce = fooled_by(AttackConfig::Apgd(config.apgd_ce()));
        let fab_t = fooled_by(AttackConfig::Fab(config.fab_t()));
        for (part, alone) in [("apgd-ce", &apgd_ce), ("fab-t", &fab_t)] {
            for (i, (&a, &c)) in alone.iter().zip(&composite).enumerate() {
                assert!(!a || c, "{part} alone fools image {i}, autoattack does not");
            }
        }
        let count = |f: &[bool]| f.iter().filter(|&&f| f).count();
        let (all, ce) = (count(&composite), count(&apgd_ce));
        eprintln!(
            "fooled of {}: autoattack {all}, apgd-ce {ce}, fab-t {}",
            y.len(),
            count(&fab_t)
        );
        assert!(all >= ce + 16, "autoattack fooled {all}, APGD-CE alone {ce}");
    }

    #[test]
    fn both_versions_stay_inside_the_threat_model_within_their_queries() {
        let (model, x, y) = tiny();
        for version in [Version::Standard, Version::Fast] {
            for (norm, eps) in [(Norm::Linf, 0.05), (Norm::L2, 0.3)] {
                let config = autoattack(norm, eps, version);
                // Batches of 5: APGD-T's targets follow their images.
                let crafted = config.run(model.as_ref(), &x, &y, &mut ChaCha8Rng::seed_from_u64(1), 5);
                admitted(&config, &crafted.examples, &x, 16);
                let queries = crafted.queries.expect("Square's queries are counted");
                assert!(queries <= config.queries().unwrap() * y.len(), "{}", config.label());
            }
        }
    }

    #[test]
    fn labels_name_the_version_and_its_settings() {
        assert_eq!(
            autoattack(Norm::Linf, 0.3, Version::Fast).label(),
            "autoattack-linf-0.3-fast(apgd20,t3,fab20,sq1000)"
        );
        assert_eq!(
            autoattack(Norm::L2, 2.0, Version::Standard).label(),
            "autoattack-l2-2-standard(apgd100,t9,fab100,sq5000)"
        );
    }

    #[test]
    fn bad_settings_are_named_with_what_is_valid() {
        let parse = |text: &str| toml::from_str::<AttackConfig>(&format!("family = \"autoattack\"\n{text}"));
        assert_eq!(
            parse("eps = 0.3").unwrap(),
            autoattack(Norm::Linf, 0.3, Version::Standard)
        );
        let e = parse("eps = 0.3\nversion = \"slow\"").unwrap_err().to_string();
        assert!(
            e.contains("slow") && e.contains("`standard`") && e.contains("`fast`"),
            "{e}"
        );
        let cases = [
            (
                autoattack(Norm::L1, 10.0, Version::Fast),
                ["`norm`", "\"linf\" or \"l2\""],
            ),
            (autoattack(Norm::Linf, 0.0, Version::Fast), ["`eps`", "positive"]),
            (autoattack(Norm::L2, f32::NAN, Version::Fast), ["`eps`", "positive"]),
        ];
        for (config, expected) in cases {
            let e = config.validate().unwrap_err().to_string();
            assert!(expected.iter().all(|part| e.contains(part)), "{e}");
        }
        // The standard version's 5000 Square queries need the rules' leave.
        let rules = Rules {
            linf: Some(0.3),
            l2: None,
            l1: None,
            queries: 1000,
            spatial: None,
        };
        let e = within_rules(&rules, &autoattack(Norm::Linf, 0.3, Version::Standard))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`rules.queries`") && e.contains("5000"), "{e}");
        assert!(within_rules(&rules, &autoattack(Norm::Linf, 0.3, Version::Fast)).is_ok());
    }

    #[test]
    fn runs_inside_bpda_and_eot() {
        let (model, x, y) = tiny();
        let plain = autoattack(Norm::Linf, 0.05, Version::Fast);
        let bpda = plain.through_bpda();
        assert!(matches!(bpda, AttackConfig::Bpda(_)), "the arena would not wrap it");
        let eot = AttackConfig::Eot(EotConfig {
            name: None,
            samples: 2,
            attack: Box::new(plain.clone()),
        });
        for wrapped in [&bpda, &eot] {
            wrapped.validate().unwrap();
            assert_eq!(wrapped.queries(), plain.queries());
        }
        let run = |attack: &AttackConfig, model: &dyn Model| {
            attack
                .run(model, &x, &y, &mut ChaCha8Rng::seed_from_u64(4), 12)
                .examples
        };
        // With no preprocessing to go around, BPDA is the attack itself.
        assert_eq!(run(&bpda, model.as_ref()), run(&plain, model.as_ref()));
        let noisy = NoisyInput {
            inner: model.as_ref(),
            sigma: 0.1,
            rng: std::sync::Mutex::new(ChaCha8Rng::seed_from_u64(7)),
        };
        admitted(&eot, &run(&eot, &noisy), &x, 16);
    }
}
