//! Feature squeezing: median smoothing and bit-depth reduction in front of
//! the model (Xu, Evans & Qi 2018). Bit-depth reduction is a step function,
//! so the deployed model's input gradient is zero almost everywhere: plain
//! gradient attacks fail, and an attacker who differentiates around the
//! squeezer (BPDA, Athalye et al. 2018) does not.

use serde::{Deserialize, Serialize};

use super::{standard, Defense, DefenseSpec};
use crate::error::Error;
use crate::model::{Classifier, Loss, Model, Optimizer, Preprocess};
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqueezeConfig {
    /// Bits per pixel kept (Xu et al. use 1 for MNIST).
    #[serde(default = "default_bits")]
    pub bits: u32,
    /// Side of the median filter's window (2 for MNIST); 1 turns it off.
    #[serde(default = "default_median")]
    pub median: usize,
}

fn default_bits() -> u32 {
    1
}
fn default_median() -> usize {
    2
}

impl Describe for SqueezeConfig {
    const HELP: &'static str = "feature squeezing: median smoothing and bit-depth reduction in front of the model (Xu et al. 2018); masks gradients";
    fn example() -> Self {
        super::with_defaults()
    }
}

impl DefenseSpec for SqueezeConfig {
    fn deploy(&self, model: Box<dyn Classifier>, _seed: u64) -> Box<dyn Classifier> {
        SqueezeConfig::deploy(self, model)
    }

    /// Squeezing does not retrain: the pretrained model, behind it.
    fn init(&self) -> Box<dyn Defense> {
        Box::new(standard::Standard)
    }

    fn work_per_round(&self, _craft: usize) -> usize {
        0
    }

    fn validate(&self) -> crate::Result<()> {
        if !(1..=8).contains(&self.bits) {
            return Err(Error::invalid(format!(
                "`bits` must be between 1 and 8, got {}",
                self.bits
            )));
        }
        if !(1..=5).contains(&self.median) {
            return Err(Error::invalid(format!(
                "`median` must be between 1 and 5, got {}",
                self.median
            )));
        }
        Ok(())
    }
}

impl SqueezeConfig {
    /// The deployed model: `inner` behind the squeezer.
    pub fn deploy(&self, inner: Box<dyn Classifier>) -> Box<dyn Classifier> {
        Box::new(Squeezed {
            squeezer: Squeezer {
                bits: self.bits,
                median: self.median,
            },
            inner,
        })
    }
}

/// The squeezing itself, on images of any shape.
#[derive(Debug, Clone, Copy)]
pub struct Squeezer {
    bits: u32,
    median: usize,
}

impl Squeezer {
    /// One image of `shape`: the median filter runs on each channel.
    fn squeeze_image(&self, image: &[f32], shape: crate::data::Shape) -> Vec<f32> {
        let k = self.median;
        let mut smoothed = image.to_vec();
        if k > 1 {
            let mut window = Vec::with_capacity(k * k);
            for r in 0..shape.rows {
                for c in 0..shape.cols {
                    for ch in 0..shape.channels {
                        window.clear();
                        for dr in 0..k {
                            for dc in 0..k {
                                let (rr, cc) = ((r + dr).min(shape.rows - 1), (c + dc).min(shape.cols - 1));
                                window.push(image[shape.at(ch, rr, cc)]);
                            }
                        }
                        window.sort_by(f32::total_cmp);
                        smoothed[shape.at(ch, r, c)] = window[window.len() / 2];
                    }
                }
            }
        }
        let levels = ((1u32 << self.bits) - 1) as f32;
        smoothed.iter().map(|v| (v * levels).round() / levels).collect()
    }
}

/// A model deployed behind a squeezer.
pub struct Squeezed {
    squeezer: Squeezer,
    inner: Box<dyn Classifier>,
}

impl Squeezed {
    fn squeeze(&self, x: &[f32]) -> Vec<f32> {
        let shape = self.inner.image_shape();
        x.chunks(shape.dim())
            .flat_map(|image| self.squeezer.squeeze_image(image, shape))
            .collect()
    }
}

impl Model for Squeezed {
    fn image_shape(&self) -> crate::data::Shape {
        self.inner.image_shape()
    }
    fn classes(&self) -> usize {
        self.inner.classes()
    }
    fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.inner.logits(&self.squeeze(x))
    }
    /// The true gradient of the deployed model: bit-depth reduction is flat
    /// between its levels, so the gradient is zero (almost everywhere).
    fn input_grad(&self, x: &[f32], _loss: &dyn Loss) -> (Vec<f32>, Vec<f32>) {
        (self.logits(x), vec![0.0; x.len()])
    }
    fn preprocessed(&self) -> Option<(&dyn Preprocess, &dyn Model)> {
        Some((self, self.inner.as_ref()))
    }
}

impl Preprocess for Squeezed {
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        self.squeeze(x)
    }
}

impl Classifier for Squeezed {
    fn train_step(&mut self, x: &[f32], loss: &dyn Loss, opt: &Optimizer) -> f32 {
        let squeezed = self.squeeze(x);
        self.inner.train_step(&squeezed, loss, opt)
    }
    fn boxed_clone(&self) -> Box<dyn Classifier> {
        Box::new(Squeezed {
            squeezer: self.squeezer,
            inner: self.inner.boxed_clone(),
        })
    }
    fn parameters(&self) -> Vec<f32> {
        self.inner.parameters()
    }

    fn set_parameters(&mut self, flat: &[f32]) {
        self.inner.set_parameters(flat)
    }

    fn optimizer_state(&self) -> crate::model::OptimizerState {
        self.inner.optimizer_state()
    }

    fn set_optimizer_state(&mut self, state: crate::model::OptimizerState) {
        self.inner.set_optimizer_state(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeezing_quantizes_and_smooths() {
        let s = Squeezer { bits: 1, median: 1 };
        assert_eq!(
            s.squeeze_image(&[0.2, 0.6, 0.49, 0.51], crate::data::Shape::gray(2, 2)),
            vec![0.0, 1.0, 0.0, 1.0]
        );
        // A lone bright pixel disappears under a 2x2 median.
        let s = Squeezer { bits: 8, median: 2 };
        let mut image = vec![0.0; 9];
        image[4] = 1.0;
        assert!(s
            .squeeze_image(&image, crate::data::Shape::gray(3, 3))
            .iter()
            .all(|&v| v == 0.0));
    }
}
