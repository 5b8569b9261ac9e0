//! The data a tournament runs on: the dataset its `[data]` table names, and
//! the fixed evaluation subset of the test split.

use crate::config::DataConfig;
use crate::data::{self, Dataset, Split};
use crate::error::{Error, Result};
use crate::path;
use crate::rng::stream;

/// Load the dataset a `[data]` table names, cut to its sizes (synthetic
/// digits are drawn from `seed`).
pub fn load_dataset(d: &DataConfig, seed: u64) -> Result<Dataset> {
    let dataset = load_whole(d, seed)?;
    Ok(dataset.truncate(d.train, d.test)?)
}

/// [`load_dataset`], checking that `model` can take its images (the check
/// before loading reads only the headers it can find).
pub fn load_for(d: &DataConfig, model: &crate::model::ModelConfig, seed: u64) -> Result<Dataset> {
    let dataset = load_dataset(d, seed)?;
    model
        .validate(Some(dataset.train.shape))
        .map_err(|e| e.within("`model`"))?;
    Ok(dataset)
}

/// Load the dataset a `[data]` table names, every image of it (synthetic
/// digits: as many as its sizes say), checking its class names.
pub fn load_whole(d: &DataConfig, seed: u64) -> Result<Dataset> {
    let dataset = match (d.dataset.as_str(), data::source_dir(&d.dataset, d.path.as_deref())?) {
        ("synthetic-digits", _) => data::synthetic_digits(seed, d.train, d.test),
        ("idx", None) => return Err(Error::invalid("`data.path` is required for the idx dataset")),
        ("cifar10", Some(dir)) => data::cifar::load_cifar_dir(&dir)?,
        (name, Some(dir)) => data::load_idx_dir(&dir, name)?,
        (name, None) => return Err(Error::invalid(format!("dataset {name} has no folder"))),
    };
    if let Some(names) = &d.classes {
        if names.len() != dataset.classes {
            return Err(Error::invalid(format!(
                "`data.classes` names {} classes, but dataset {} has {}; list one name per class, label 0 first",
                names.len(),
                dataset.name,
                dataset.classes
            )));
        }
    }
    Ok(dataset)
}

/// The tournament's fixed evaluation subset of the test split.
pub fn eval_subset(test: &Split, size: usize, seed: u64) -> Split {
    let mut indices = rand::seq::index::sample(&mut stream(seed, path!["eval-subset"]), test.len(), size).into_vec();
    indices.sort_unstable();
    test.subset(&indices)
}

/// The training split divided, once per seed, into the images defenders may
/// learn from and the attacker slice (`size` images nothing ever trains
/// on): `(defender_train, attacker_slice)`, each in the split's order.
pub fn split_attacker_slice(train: &Split, size: usize, seed: u64) -> (Split, Split) {
    let mut slice = rand::seq::index::sample(&mut stream(seed, path!["attacker-slice"]), train.len(), size).into_vec();
    slice.sort_unstable();
    let mut in_slice = vec![false; train.len()];
    for &i in &slice {
        in_slice[i] = true;
    }
    let rest: Vec<usize> = (0..train.len()).filter(|&i| !in_slice[i]).collect();
    (train.subset(&rest), train.subset(&slice))
}
