//! Spatial attack: the worst rotation and translation within budget, by
//! grid search (Engstrom et al. 2019, "Exploring the landscape of spatial
//! robustness"). The attack only chooses the transformation; the images are
//! rendered by `render`, so no example can leave the threat model.

use crate::data::Shape;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{named, whitebox_run, Attack, AttackSpec, Norm, Rules, Signal, ThreatModel};
use crate::model::{argmax_rows, CrossEntropy, Loss, Model};
use crate::registry::Describe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpatialConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Largest rotation, in degrees either way.
    pub degrees: f32,
    /// Largest translation, in whole pixels along each axis.
    pub pixels: u32,
    /// Rotations tried, evenly spaced over [-degrees, degrees].
    #[serde(default = "default_angles")]
    pub angles: usize,
}

fn default_angles() -> usize {
    7
}

/// The rules' spatial budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpatialBudget {
    pub degrees: f32,
    pub pixels: u32,
}

/// One transformation: a rotation about the centre, then a translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub degrees: f32,
    pub dx: i32,
    pub dy: i32,
}

/// Render `image` (of `shape`, every channel alike) under `t`, rotating
/// about its centre, bilinear, zero outside.
pub fn render(image: &[f32], shape: Shape, t: Transform) -> Vec<f32> {
    let (sin, cos) = t.degrees.to_radians().sin_cos();
    let (rows, cols) = (shape.rows as i64, shape.cols as i64);
    let (cy, cx) = ((shape.rows as f32 - 1.0) / 2.0, (shape.cols as f32 - 1.0) / 2.0);
    let mut out = vec![0.0; image.len()];
    for r in 0..shape.rows {
        for col in 0..shape.cols {
            // Inverse map: undo the translation, then the rotation.
            let (y, x) = (r as f32 - t.dy as f32 - cy, col as f32 - t.dx as f32 - cx);
            let (sy, sx) = (cos * y - sin * x + cy, sin * y + cos * x + cx);
            let (y0, x0) = (sy.floor(), sx.floor());
            let (fy, fx) = (sy - y0, sx - x0);
            let (y0, x0) = (y0 as i64, x0 as i64);
            for c in 0..shape.channels {
                let at = |r: i64, col: i64| -> f32 {
                    if r < 0 || col < 0 || r >= rows || col >= cols {
                        0.0
                    } else {
                        image[shape.at(c, r as usize, col as usize)]
                    }
                };
                let v = at(y0, x0) * (1.0 - fy) * (1.0 - fx)
                    + at(y0, x0 + 1) * (1.0 - fy) * fx
                    + at(y0 + 1, x0) * fy * (1.0 - fx)
                    + at(y0 + 1, x0 + 1) * fy * fx;
                out[shape.at(c, r, col)] = v.clamp(0.0, 1.0);
            }
        }
    }
    out
}

impl SpatialConfig {
    pub fn new(degrees: f32, pixels: u32) -> Self {
        SpatialConfig {
            name: None,
            degrees,
            pixels,
            angles: default_angles(),
        }
    }

    /// Whether the rules allow this attack's transformations.
    pub fn within_budget(&self, budget: Option<SpatialBudget>) -> crate::Result<()> {
        match budget {
            None => Err(crate::Error::invalid("the rules set no spatial budget; add `spatial = { degrees = ..., pixels = ... }` to [rules]")),
            Some(b) if self.degrees > b.degrees || self.pixels > b.pixels => Err(crate::Error::invalid(format!(
                "rotation {} degrees / translation {} pixels exceed the rules' spatial budget {} / {} (`rules.spatial`)",
                self.degrees, self.pixels, b.degrees, b.pixels
            ))),
            Some(_) => Ok(()),
        }
    }

    fn grid(&self) -> Vec<Transform> {
        let angles: Vec<f32> = if self.angles == 1 {
            vec![0.0]
        } else {
            (0..self.angles)
                .map(|i| -self.degrees + 2.0 * self.degrees * i as f32 / (self.angles - 1) as f32)
                .collect()
        };
        let p = self.pixels as i32;
        let mut grid = Vec::new();
        for &degrees in &angles {
            for dx in -p..=p {
                for dy in -p..=p {
                    grid.push(Transform { degrees, dx, dy });
                }
            }
        }
        grid
    }
}

impl AttackSpec for SpatialConfig {
    named!();
    /// Not an Lp ball: any image in [0,1] passes this check, and the
    /// transformation itself is enforced by rendering.
    fn threat(&self) -> ThreatModel {
        ThreatModel {
            norm: Norm::Linf,
            eps: 1.0,
        }
    }
    fn signal(&self) -> Signal {
        Signal::Search
    }
    fn default_label(&self, _family: &str) -> String {
        format!("spatial-{}deg-{}px", self.degrees, self.pixels)
    }
    /// Its budget is the rules' spatial one, not a norm.
    fn within(&self, rules: &Rules) -> crate::Result<()> {
        self.within_budget(rules.spatial)
    }
    fn validate(&self) -> crate::Result<()> {
        if !(self.degrees.is_finite() && self.degrees >= 0.0 && self.degrees <= 180.0) {
            return Err(crate::Error::invalid(format!(
                "`degrees` must be between 0 and 180, got {}",
                self.degrees
            )));
        }
        if self.angles == 0 || self.angles > 361 {
            return Err(crate::Error::invalid(format!(
                "`angles` must be between 1 and 361, got {}",
                self.angles
            )));
        }
        if self.pixels > 14 {
            return Err(crate::Error::invalid(format!(
                "`pixels` must be at most 14, got {}",
                self.pixels
            )));
        }
        Ok(())
    }
    whitebox_run!();
}

impl Describe for SpatialConfig {
    const HELP: &'static str =
        "the worst rotation and translation within `degrees` and `pixels`, by grid search (Engstrom et al. 2019)";
    fn example() -> Self {
        SpatialConfig::new(30.0, 3)
    }
    /// At the default tournament's budgets (linf 0.1, l2 2.0, l1 10).
    fn variants() -> Vec<Self> {
        vec![SpatialConfig::new(30.0, 3)]
    }
}

impl Attack for SpatialConfig {
    /// The worst transformation per image: the first that fools the model,
    /// else the one with the highest loss.
    fn craft(&self, model: &dyn Model, x: &[f32], y: &[u8], _rng: &mut ChaCha8Rng) -> Vec<f32> {
        let shape = model.image_shape();
        let dim = shape.dim();
        let n = y.len();
        let mut best = x.to_vec();
        let mut best_loss = vec![f32::NEG_INFINITY; n];
        let mut fooled = vec![false; n];
        let loss = CrossEntropy { labels: y };
        for t in self.grid() {
            let candidates: Vec<f32> = x.chunks(dim).flat_map(|image| render(image, shape, t)).collect();
            let logits = model.logits(&candidates);
            let (losses, _) = loss.eval(&logits, model.classes());
            let predicted = argmax_rows(&logits, model.classes());
            for i in 0..n {
                if fooled[i] {
                    continue;
                }
                if predicted[i] != y[i] || losses[i] > best_loss[i] {
                    best_loss[i] = losses[i];
                    fooled[i] = predicted[i] != y[i];
                    best[i * dim..(i + 1) * dim].copy_from_slice(&candidates[i * dim..(i + 1) * dim]);
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_translation_render_exactly() {
        let side = Shape::gray(4, 4);
        let image: Vec<f32> = (0..16).map(|v| v as f32 / 16.0).collect();
        assert_eq!(
            render(
                &image,
                side,
                Transform {
                    degrees: 0.0,
                    dx: 0,
                    dy: 0
                }
            ),
            image
        );
        let shifted = render(
            &image,
            side,
            Transform {
                degrees: 0.0,
                dx: 1,
                dy: 0,
            },
        );
        assert_eq!(shifted[0], 0.0);
        assert_eq!(shifted[1], image[0]);
    }

    #[test]
    fn a_quarter_turn_moves_corners() {
        let side = Shape::gray(3, 3);
        let mut image = vec![0.0; 9];
        image[0] = 1.0;
        let turned = render(
            &image,
            side,
            Transform {
                degrees: 90.0,
                dx: 0,
                dy: 0,
            },
        );
        assert!((turned.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(turned[0] < 1e-4, "the corner moved");
    }

    #[test]
    fn every_channel_moves_alike_on_a_rectangle() {
        let rgb = Shape {
            channels: 3,
            rows: 3,
            cols: 5,
        };
        // Channel c of pixel p is (p + 1) * (c + 1): each plane is the
        // gray image scaled.
        let gray: Vec<f32> = (0..15).map(|p| (p + 1) as f32 / 50.0).collect();
        let image: Vec<f32> = (0..15)
            .flat_map(|p| (0..3).map(move |c| (p + 1) as f32 * (c + 1) as f32 / 50.0))
            .collect();
        let t = Transform {
            degrees: 20.0,
            dx: 1,
            dy: -1,
        };
        let turned_gray = render(&gray, Shape::gray(3, 5), t);
        let turned = render(&image, rgb, t);
        for p in 0..15 {
            for c in 0..3 {
                let want = (turned_gray[p] * (c + 1) as f32).min(1.0);
                assert!((turned[p * 3 + c] - want).abs() < 1e-5, "pixel {p} channel {c}");
            }
        }
    }
}
