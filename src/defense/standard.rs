//! No defense: the pretrained model faces every round unchanged. The
//! baseline every defense is measured against.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Defense, DefenseSpec, RoundData};
use crate::model::Classifier;
use crate::registry::Describe;

/// `kind = "standard"`: nothing to configure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardConfig {}

impl Describe for StandardConfig {
    const HELP: &'static str = "no defense: the pretrained model is never updated";
    fn example() -> Self {
        StandardConfig {}
    }
}

impl DefenseSpec for StandardConfig {
    fn init(&self) -> Box<dyn Defense> {
        Box::new(Standard)
    }
    fn work_per_round(&self, _craft: usize) -> usize {
        0
    }
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }
}

pub struct Standard;

impl Defense for Standard {
    fn update(&mut self, _model: &mut dyn Classifier, _round: &RoundData<'_>, _rng: &mut ChaCha8Rng) {}
}
