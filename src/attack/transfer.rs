//! Transfer: no access to the target at all. The attacker trains a
//! surrogate model of its own on training data and runs a white-box attack
//! against it; the examples are then used against the target, relying on
//! adversarial examples transferring between models (Papernot et al. 2016,
//! "Transferability in machine learning"; Tramer et al. 2018).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, Access, AttackConfig, AttackSpec, Crafted, Norm, PgdConfig, Signal, ThreatModel};
use crate::data::{Shape, Split};
use crate::model::{Classifier, Engine, Examples, Model, ModelConfig, OptimizerConfig, TrainConfig, TrainSet, Trainer};
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The white-box attack run on the surrogate.
    pub attack: Box<AttackConfig>,
    #[serde(default = "default_surrogate")]
    pub surrogate: ModelConfig,
    /// Training images the surrogate learns from, and epochs over them.
    #[serde(default = "default_images")]
    pub images: usize,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Seed of the surrogate's initialization and training.
    #[serde(default)]
    pub seed: u64,
}

fn default_surrogate() -> ModelConfig {
    ModelConfig::mlp(vec![128])
}
fn default_images() -> usize {
    2000
}
fn default_epochs() -> usize {
    3
}

impl TransferConfig {
    /// The surrogate for `train`: trained once per configuration and data,
    /// then shared (it depends on nothing else).
    fn surrogate(&self, train: &Split) -> Arc<dyn Classifier> {
        type Cache = Mutex<HashMap<String, Arc<dyn Classifier>>>;
        static SURROGATES: OnceLock<Cache> = OnceLock::new();
        let mut key =
            serde_json::to_string(&(&self.surrogate, self.images, self.epochs, self.seed)).unwrap_or_default();
        // Shape, labels and pixels: another dataset never gets this surrogate.
        key.push_str(&format!("/{:x}", train.hash_into(crate::rng::FNV_OFFSET)));
        let cache = SURROGATES.get_or_init(|| Mutex::new(HashMap::new()));
        if let Some(model) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return model.clone();
        }
        let n = self.images.min(train.len());
        let subset = train.subset(&(0..n).collect::<Vec<_>>());
        let mut model = self.surrogate.init(Engine::Native, train.shape, 10, self.seed);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        Trainer::new(TrainConfig::epochs(self.epochs, 64, OptimizerConfig::default())).fit(
            model.as_mut(),
            Examples::Set(TrainSet::labeled(&subset.images, &subset.labels)),
            &mut rng,
        );
        let model: Arc<dyn Classifier> = Arc::from(model);
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, model.clone());
        model
    }

    /// Craft on the surrogate; the target is never asked anything.
    fn craft_on_surrogate(
        &self,
        train: Option<&Split>,
        x: &[f32],
        y: &[u8],
        rng: &mut ChaCha8Rng,
        batch: usize,
    ) -> Crafted {
        let Some(train) = train else {
            // No training data to learn a surrogate from: nothing to send.
            return Crafted {
                examples: x.to_vec(),
                queries: Some(0),
            };
        };
        let surrogate = self.surrogate(train);
        let crafted = self.attack.run_with(surrogate.as_ref(), x, y, rng, batch, Some(train));
        Crafted {
            examples: crafted.examples,
            queries: Some(0),
        }
    }
}

impl AttackSpec for TransferConfig {
    named!();
    /// Crafted on its own surrogate, never seeing the target: less.
    fn required_success(&self) -> Option<f64> {
        Some(0.5)
    }
    fn threat(&self) -> ThreatModel {
        self.attack.threat()
    }
    fn access(&self) -> Access {
        Access::Transfer
    }
    fn signal(&self) -> Signal {
        Signal::Query
    }
    fn default_label(&self, _family: &str) -> String {
        format!("transfer-{}", self.attack.label())
    }
    fn inner(&self) -> Option<&AttackConfig> {
        Some(&self.attack)
    }
    fn validate(&self) -> crate::Result<()> {
        self.attack.validate().map_err(|e| e.within("in `attack`"))?;
        if self.attack.access() != super::Access::Whitebox || matches!(*self.attack, AttackConfig::Transfer(_)) {
            return Err(crate::Error::invalid(
                "`attack` of a transfer attack must be a white-box attack (it runs on the surrogate)",
            ));
        }
        if self.images == 0 || self.epochs == 0 {
            return Err(crate::Error::invalid("`images` and `epochs` must be at least 1"));
        }
        self.surrogate.refuse_weights("surrogate")?;
        self.surrogate
            .validate(None)
            .map_err(|e| crate::Error::invalid(format!("`surrogate`: {e}")))
    }
    fn check_shape(&self, shape: Shape) -> crate::Result<()> {
        self.surrogate
            .validate(Some(shape))
            .map_err(|e| crate::Error::invalid(format!("`surrogate`: {e}")))
    }
    /// The target model is never asked anything.
    fn run(
        &self,
        _model: &dyn Model,
        x: &[f32],
        y: &[u8],
        rng: &mut ChaCha8Rng,
        batch: usize,
        train: Option<&Split>,
    ) -> Crafted {
        self.craft_on_surrogate(train, x, y, rng, batch)
    }
}

impl Describe for TransferConfig {
    const HELP: &'static str = "trains its own surrogate on training data and runs `attack` on it; never queries the target (Papernot et al. 2016)";
    fn example() -> Self {
        TransferConfig {
            name: None,
            attack: Box::new(AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.3))),
            surrogate: ModelConfig::mlp(vec![128]),
            images: 2000,
            epochs: 3,
            seed: 0,
        }
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![TransferConfig {
            name: None,
            attack: Box::new(AttackConfig::Pgd(PgdConfig::new(Norm::Linf, 0.1))),
            ..Self::example()
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_surrogate_is_checked_against_the_datasets_shape() {
        let mut transfer = TransferConfig::example();
        transfer.surrogate = ModelConfig::cnn([2, 2], 8);
        let attack = AttackConfig::Transfer(transfer);
        attack.validate().expect("valid before the shape is known");
        attack.check_shape(Some(Shape::MNIST)).expect("28x28 pools twice");
        let err = attack.check_shape(Some(Shape::gray(30, 30))).unwrap_err().to_string();
        assert!(err.contains("`surrogate`") && err.contains("30x30"), "{err}");
    }
}
