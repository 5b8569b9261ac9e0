//! No defense: the pretrained model faces every round unchanged. The
//! baseline every defense is measured against.

use rand_chacha::ChaCha8Rng;

use super::{Defense, RoundData};
use crate::model::Classifier;

pub struct Standard;

impl Defense for Standard {
    fn update(&mut self, _model: &mut dyn Classifier, _round: &RoundData<'_>, _rng: &mut ChaCha8Rng) {}
}
