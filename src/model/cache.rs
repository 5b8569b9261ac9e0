//! Trained models kept on disk, keyed by everything that decides their
//! weights (architecture, engine, recipe, seed, and a fingerprint of the
//! training images), so that a model trained once is loaded by every later
//! run that asks for the same one.
//!
//! Each entry is one safetensors file, `models/KEY.safetensors` under the
//! cache folder: the flat parameter vector, the optimizer's buffers (so that
//! training continued from a loaded model takes the same steps as from the
//! one trained), and in its metadata the recipe it was keyed by and the
//! record of its training (time, steps), shown when it is reused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::optim::OptimizerKind;
use super::{Classifier, OptimizerState};
use crate::data::Split;

/// The format of an entry; a change of it (or of what a key covers) makes
/// old entries unreachable rather than wrong.
const FORMAT: &str = "redqueen-model-cache/1";

/// The folder trained models are kept in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCache {
    dir: PathBuf,
}

/// What a cache entry holds besides the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    pub path: PathBuf,
    /// The record stored with it (the training's time, steps, ...).
    pub record: serde_json::Value,
}

impl ModelCache {
    pub fn at(dir: impl Into<PathBuf>) -> ModelCache {
        ModelCache { dir: dir.into() }
    }

    /// `$REDQUEEN_CACHE`, else `$XDG_CACHE_HOME/redqueen`, else
    /// `$HOME/.cache/redqueen`; none when none of them is set.
    pub fn from_env() -> Option<ModelCache> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        var("REDQUEEN_CACHE")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("redqueen")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("redqueen")))
            .map(ModelCache::at)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of a recipe: a hash of its JSON.
    pub fn key(recipe: &impl Serialize) -> String {
        let json = serde_json::to_string(&(FORMAT, recipe)).expect("recipes serialize");
        hex(&Sha256::digest(json.as_bytes())[..16])
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join("models").join(format!("{key}.safetensors"))
    }

    /// Loads the entry `key` into `model` (built with the same architecture).
    /// `Ok(None)` when there is none; an error says why an entry that exists
    /// cannot be used (the caller trains instead).
    pub fn load(&self, key: &str, model: &mut dyn Classifier) -> Result<Option<Cached>, String> {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let why = |what: String| format!("{}: {what}", path.display());
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| why(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(why(format!("not a {FORMAT} file")));
        }
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| why(e.to_string()))?;
        let floats = |name: &str| -> Result<Vec<f32>, String> {
            let view = tensors.tensor(name).map_err(|e| why(format!("{name}: {e}")))?;
            if view.dtype() != Dtype::F32 {
                return Err(why(format!("{name} is not f32")));
            }
            Ok(view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let parameters = floats("parameters")?;
        let expected = model.parameters().len();
        if parameters.len() != expected {
            return Err(why(format!(
                "{} parameters where the model has {expected}",
                parameters.len()
            )));
        }
        let buffers = |prefix: &str| -> Result<Vec<Vec<f32>>, String> {
            let mut names: Vec<&str> = tensors.names().into_iter().filter(|n| n.starts_with(prefix)).collect();
            names.sort();
            names.into_iter().map(floats).collect()
        };
        let kind = match meta.get("optimizer.kind").map(String::as_str) {
            None | Some("") => None,
            Some(kind) => Some(
                serde_json::from_str::<OptimizerKind>(&format!("\"{kind}\""))
                    .map_err(|e| why(format!("optimizer.kind: {e}")))?,
            ),
        };
        let steps = meta
            .get("optimizer.steps")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| why("no optimizer.steps".into()))?;
        let (first, second) = (buffers("optimizer.first.")?, buffers("optimizer.second.")?);
        // Buffers are saved in the model's tensor order: each pair of the
        // same length, and together as long as the parameters (an update
        // would otherwise index past them or skip weights).
        let total = |b: &[Vec<f32>]| b.iter().map(Vec::len).sum::<usize>();
        let lengths_agree = second.is_empty() || second.iter().map(Vec::len).eq(first.iter().map(Vec::len));
        let adam_has_both = kind.is_none_or(|k| k == OptimizerKind::Sgd) || second.len() == first.len();
        if !(first.is_empty() || total(&first) == expected) || !lengths_agree || !adam_has_both {
            return Err(why("its optimizer buffers do not fit the model".into()));
        }
        let state = OptimizerState::from_parts(kind, steps, first, second);
        let record = meta
            .get("record")
            .map(|r| serde_json::from_str(r))
            .transpose()
            .map_err(|e| why(format!("record: {e}")))?
            .unwrap_or(serde_json::Value::Null);
        model.set_parameters(&parameters);
        model.set_optimizer_state(state);
        Ok(Some(Cached { path, record }))
    }

    /// Keeps `model` as entry `key`, with the recipe it was keyed by and its
    /// training's record (written whole or not at all).
    pub fn store(
        &self,
        key: &str,
        model: &dyn Classifier,
        recipe: &impl Serialize,
        record: &impl Serialize,
    ) -> std::io::Result<PathBuf> {
        let parameters = model.parameters();
        let state = model.optimizer_state();
        let (kind, steps) = (state.kind(), state.steps());
        let (first, second) = state.buffers();
        let mut named: Vec<(String, Vec<u8>)> = vec![("parameters".into(), bytes(&parameters))];
        for (prefix, buffers) in [("optimizer.first.", first), ("optimizer.second.", second)] {
            for (i, buffer) in buffers.iter().enumerate() {
                named.push((format!("{prefix}{i:04}"), bytes(buffer)));
            }
        }
        let views = named
            .iter()
            .map(|(name, data)| {
                let view = TensorView::new(Dtype::F32, vec![data.len() / 4], data).map_err(std::io::Error::other)?;
                Ok((name.clone(), view))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let kind = kind
            .map(|k| serde_json::to_value(k).expect("kinds serialize"))
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            (
                "recipe".into(),
                serde_json::to_string(recipe).map_err(std::io::Error::other)?,
            ),
            (
                "record".into(),
                serde_json::to_string(record).map_err(std::io::Error::other)?,
            ),
            ("optimizer.kind".into(), kind),
            ("optimizer.steps".into(), steps.to_string()),
        ]);
        let file = safetensors::serialize(views, Some(meta)).map_err(std::io::Error::other)?;
        let path = self.path(key);
        std::fs::create_dir_all(path.parent().expect("entries are inside the cache"))?;
        crate::record::write_atomic(&path, &file)?;
        Ok(path)
    }
}

fn bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fingerprint of a training split's images and labels, for keys.
pub fn fingerprint(split: &Split) -> String {
    let mut hash = Sha256::new();
    if split.shape.channels != 1 {
        hash.update((split.shape.channels as u64).to_le_bytes());
    }
    hash.update((split.shape.rows as u64).to_le_bytes());
    hash.update((split.shape.cols as u64).to_le_bytes());
    for chunk in split.images.chunks(1 << 16) {
        hash.update(bytes(chunk));
    }
    hash.update(&split.labels);
    hex(&hash.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic_digits;
    use crate::model::{Engine, Examples, ModelConfig, OptimizerConfig, TrainConfig, TrainSet, Trainer};
    use crate::rng::stream;

    #[test]
    fn a_stored_model_loads_back_with_its_optimizer_and_trains_on_identically() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::at(dir.path());
        let data = synthetic_digits(1, 256, 10).train;
        let config = ModelConfig::mlp(vec![16]);
        let mut trained = config.init(Engine::Native, crate::data::Shape::gray(28, 28), 10, 7);
        let train = |model: &mut dyn Classifier| {
            let recipe = TrainConfig::steps(3, 32, OptimizerConfig::adam(1e-3));
            Trainer::new(recipe).fit(
                model,
                Examples::Set(TrainSet::labeled(&data.images, &data.labels)),
                &mut stream(1, &[]),
            );
        };
        train(trained.as_mut());
        let key = ModelCache::key(&("test", 1));
        let mut loaded = config.init(Engine::Native, crate::data::Shape::gray(28, 28), 10, 8);
        assert_eq!(cache.load(&key, loaded.as_mut()), Ok(None));
        cache
            .store(&key, trained.as_ref(), &"recipe", &("record", 2.5))
            .unwrap();
        let found = cache.load(&key, loaded.as_mut()).unwrap().unwrap();
        assert_eq!(found.record, serde_json::json!(["record", 2.5]));
        assert_eq!(loaded.parameters(), trained.parameters());
        assert_eq!(loaded.optimizer_state(), trained.optimizer_state());
        train(trained.as_mut());
        train(loaded.as_mut());
        assert_eq!(loaded.parameters(), trained.parameters());

        // Another architecture is refused with the reason, not loaded.
        let mut other = ModelConfig::mlp(vec![8]).init(Engine::Native, crate::data::Shape::gray(28, 28), 10, 7);
        let err = cache.load(&key, other.as_mut()).unwrap_err();
        assert!(err.contains("parameters where the model has"), "{err}");
        // So is a damaged file.
        std::fs::write(cache.path(&key), b"not safetensors").unwrap();
        assert!(cache.load(&key, loaded.as_mut()).is_err());
        // And optimizer buffers that do not fit the parameters (an update
        // would index past them): refused, not loaded.
        let n = trained.parameters().len();
        let (params, short) = (bytes(&vec![0.0; n]), bytes(&[0.0; 3]));
        let views = vec![
            ("parameters", TensorView::new(Dtype::F32, vec![n], &params).unwrap()),
            (
                "optimizer.first.0000",
                TensorView::new(Dtype::F32, vec![3], &short).unwrap(),
            ),
        ];
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("optimizer.kind".into(), "adam".into()),
            ("optimizer.steps".into(), "1".into()),
        ]);
        std::fs::write(cache.path(&key), safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
        let err = cache.load(&key, loaded.as_mut()).unwrap_err();
        assert!(err.contains("optimizer buffers do not fit"), "{err}");
    }

    #[test]
    fn keys_and_fingerprints_follow_their_inputs() {
        assert_eq!(ModelCache::key(&("a", 1)), ModelCache::key(&("a", 1)));
        assert_ne!(ModelCache::key(&("a", 1)), ModelCache::key(&("a", 2)));
        let a = synthetic_digits(1, 20, 1).train;
        let mut b = a.clone();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.labels[0] = (b.labels[0] + 1) % 10;
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
