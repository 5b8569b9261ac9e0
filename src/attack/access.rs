//! Access levels, enforced by type: an attack with `scores` or `labels`
//! access is handed an oracle that cannot give it logits or gradients (its
//! model is a private field of another module), and that counts every
//! image it is asked about against a cap.

use serde::{Deserialize, Serialize};

use crate::model::{argmax_rows, softmax, Model};

/// What an attack may ask of the defender's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Logits and input gradients.
    Whitebox,
    /// Probabilities only; each image asked about is a query.
    Scores,
    /// The top-1 label only; each image asked about is a query.
    Labels,
    /// Nothing: it crafts on a surrogate model it trains itself.
    Transfer,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Whitebox => "whitebox",
            Access::Scores => "scores",
            Access::Labels => "labels",
            Access::Transfer => "transfer",
        }
    }
}

/// Query accounting shared by both oracles: `cap` queries per image.
#[derive(Debug)]
struct Budget {
    used: usize,
    cap: usize,
}

impl Budget {
    fn new(images: usize, per_image: usize) -> Budget {
        Budget {
            used: 0,
            cap: images * per_image,
        }
    }

    /// Take `n` queries, if that many are left.
    fn take(&mut self, n: usize) -> bool {
        if self.used + n > self.cap {
            return false;
        }
        self.used += n;
        true
    }
}

/// Probabilities of the defender's model, and nothing else.
pub struct ScoreOracle<'a> {
    model: &'a dyn Model,
    budget: Budget,
}

impl<'a> ScoreOracle<'a> {
    /// An oracle for a batch of `images`, `per_image` queries each.
    pub fn new(model: &'a dyn Model, images: usize, per_image: usize) -> Self {
        ScoreOracle {
            model,
            budget: Budget::new(images, per_image),
        }
    }

    /// Softmax probabilities of every image of `x`, or `None` when that
    /// many queries are no longer left.
    pub fn probabilities(&mut self, x: &[f32]) -> Option<Vec<f32>> {
        let n = x.len() / self.model.input_dim();
        self.budget
            .take(n)
            .then(|| softmax(&self.model.logits(x), self.model.classes()))
    }

    pub fn classes(&self) -> usize {
        self.model.classes()
    }
    pub fn input_dim(&self) -> usize {
        self.model.input_dim()
    }
    pub fn image_shape(&self) -> crate::data::Shape {
        self.model.image_shape()
    }
    pub fn queries(&self) -> usize {
        self.budget.used
    }
    pub fn remaining(&self) -> usize {
        self.budget.cap - self.budget.used
    }
}

/// The top-1 label of the defender's model, and nothing else.
pub struct LabelOracle<'a> {
    model: &'a dyn Model,
    budget: Budget,
}

impl<'a> LabelOracle<'a> {
    pub fn new(model: &'a dyn Model, images: usize, per_image: usize) -> Self {
        LabelOracle {
            model,
            budget: Budget::new(images, per_image),
        }
    }

    /// The predicted label of every image of `x`, or `None` when that many
    /// queries are no longer left.
    pub fn labels(&mut self, x: &[f32]) -> Option<Vec<u8>> {
        let n = x.len() / self.model.input_dim();
        self.budget
            .take(n)
            .then(|| argmax_rows(&self.model.logits(x), self.model.classes()))
    }

    /// How many labels there are (what a label may be, not a score).
    pub fn classes(&self) -> usize {
        self.model.classes()
    }
    pub fn input_dim(&self) -> usize {
        self.model.input_dim()
    }
    pub fn image_shape(&self) -> crate::data::Shape {
        self.model.image_shape()
    }
    pub fn queries(&self) -> usize {
        self.budget.used
    }
    pub fn remaining(&self) -> usize {
        self.budget.cap - self.budget.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Engine, ModelConfig};

    #[test]
    fn oracles_count_images_and_refuse_past_the_cap() {
        let model = ModelConfig::mlp(vec![4]).init(Engine::Native, crate::data::Shape::gray(2, 2), 3, 0);
        let x = vec![0.5; 2 * 4];
        let mut scores = ScoreOracle::new(model.as_ref(), 2, 3);
        for _ in 0..3 {
            let p = scores.probabilities(&x).unwrap();
            assert!((p[..3].iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        assert_eq!(scores.queries(), 6);
        assert!(scores.probabilities(&x).is_none());
        assert!(scores.probabilities(&x[..4]).is_none());
        let mut labels = LabelOracle::new(model.as_ref(), 1, 1);
        assert_eq!(labels.labels(&x[..4]).unwrap().len(), 1);
        assert!(labels.labels(&x[..4]).is_none());
        assert_eq!(labels.remaining(), 0);
    }
}
