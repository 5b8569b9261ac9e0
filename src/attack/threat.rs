//! Threat models: the Lp balls around a clean image, intersected with the
//! pixel box [0,1], and the projections onto them.

use serde::{Deserialize, Serialize};

/// Which norm bounds a perturbation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    Linf,
    L2,
    L1,
}

impl Norm {
    pub fn name(self) -> &'static str {
        match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
            Norm::L1 => "l1",
        }
    }

    /// The norm of one perturbation.
    pub fn of(self, delta: &[f32]) -> f32 {
        match self {
            Norm::Linf => delta.iter().fold(0.0, |m, d| m.max(d.abs())),
            Norm::L2 => delta.iter().map(|d| d * d).sum::<f32>().sqrt(),
            Norm::L1 => delta.iter().map(|d| d.abs()).sum(),
        }
    }
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A norm ball of radius `eps`, intersected with [0,1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThreatModel {
    pub norm: Norm,
    pub eps: f32,
}

impl ThreatModel {
    /// Project every image of `adv` onto the ball around the matching image
    /// of `clean`, then into [0,1]. For linf the result is exact; for l2 the
    /// box clamp after the ball projection can only shrink the perturbation,
    /// so the result stays inside both sets.
    pub fn project(&self, adv: &mut [f32], clean: &[f32], dim: usize) {
        for (a, x) in adv.chunks_mut(dim).zip(clean.chunks(dim)) {
            match self.norm {
                Norm::Linf => {
                    for (a, &x) in a.iter_mut().zip(x) {
                        *a = a.clamp(x - self.eps, x + self.eps);
                    }
                }
                Norm::L1 => project_l1_box(a, x, self.eps),
                Norm::L2 => {
                    let norm = a.iter().zip(x).map(|(a, x)| (a - x) * (a - x)).sum::<f32>().sqrt();
                    if norm > self.eps {
                        let scale = self.eps / norm;
                        for (a, &x) in a.iter_mut().zip(x) {
                            *a = x + (*a - x) * scale;
                        }
                    }
                }
            }
            for a in a.iter_mut() {
                *a = a.clamp(0.0, 1.0);
            }
        }
    }

    /// Whether `adv` lies inside this threat model around `clean` (with a
    /// float tolerance), finite and inside [0,1].
    pub fn admits(&self, adv: &[f32], clean: &[f32]) -> Result<(), Violation> {
        if adv.len() != clean.len() {
            return Err(Violation::Shape);
        }
        if adv.iter().any(|a| !a.is_finite()) {
            return Err(Violation::NotFinite);
        }
        if adv.iter().any(|&a| !(-1e-6..=1.0 + 1e-6).contains(&a)) {
            return Err(Violation::OutsideBox);
        }
        let delta: Vec<f32> = adv.iter().zip(clean).map(|(a, x)| a - x).collect();
        let norm = self.norm.of(&delta);
        if norm > self.eps * (1.0 + 1e-4) + 1e-5 {
            return Err(Violation::OverBudget {
                norm: self.norm,
                size: norm,
                eps: self.eps,
            });
        }
        Ok(())
    }
}

/// The exact Euclidean projection of `adv` onto {x + d : ||d||_1 <= eps,
/// x + d in [0,1]}: d_i = clamp(sign(v_i) max(|v_i| - theta, 0)) for the
/// theta that spends the budget exactly, found by bisection (the clamped
/// L1 norm falls as theta grows). Projecting onto the ball and then
/// clipping would stay feasible but leave budget unspent at the box.
pub fn project_l1_box(adv: &mut [f32], clean: &[f32], eps: f32) {
    let shrunk = |v: f32, x: f32, theta: f32| -> f32 { (v.signum() * (v.abs() - theta).max(0.0)).clamp(-x, 1.0 - x) };
    let spent =
        |adv: &[f32], theta: f32| -> f32 { adv.iter().zip(clean).map(|(a, &x)| shrunk(a - x, x, theta).abs()).sum() };
    let theta = if spent(adv, 0.0) <= eps {
        0.0
    } else {
        let mut low = 0.0f32;
        let mut high = adv.iter().zip(clean).map(|(a, x)| (a - x).abs()).fold(0.0, f32::max);
        for _ in 0..50 {
            let mid = (low + high) / 2.0;
            if spent(adv, mid) > eps {
                low = mid;
            } else {
                high = mid;
            }
        }
        high
    };
    for (a, &x) in adv.iter_mut().zip(clean) {
        *a = x + shrunk(*a - x, x, theta);
    }
}

/// Why the referee rejected an adversarial example.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    #[error("the example has the wrong number of pixels")]
    Shape,
    #[error("the example has a NaN or infinite pixel")]
    NotFinite,
    #[error("the example has a pixel outside [0,1]")]
    OutsideBox,
    #[error("the perturbation's {norm} norm {size} exceeds the budget {eps}")]
    OverBudget { norm: Norm, size: f32, eps: f32 },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused PGD step gives the same bits as `ascend` then `project`,
    /// zero gradients and pixels at the box's edges included.
    #[test]
    fn the_fused_step_equals_ascend_then_project() {
        let clean: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin().abs()).collect();
        let mut start = clean.clone();
        (start[0], start[1], start[2]) = (0.0, 1.0, 0.999);
        let grad: Vec<f32> = (0..40)
            .map(|i| if i % 7 == 0 { 0.0 } else { (i as f32 * 1.3).cos() })
            .collect();
        for norm in [Norm::Linf, Norm::L2, Norm::L1] {
            let threat = ThreatModel { norm, eps: 0.3 };
            let (mut fused, mut apart) = (start.clone(), start.clone());
            crate::attack::ascend_projected(threat, &mut fused, &grad, 0.1, &clean, 20);
            crate::attack::ascend(norm, &mut apart, &grad, 0.1, 20);
            threat.project(&mut apart, &clean, 20);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused), bits(&apart), "{norm:?}");
        }
    }

    #[test]
    fn linf_projection_clips_to_ball_and_box() {
        let t = ThreatModel {
            norm: Norm::Linf,
            eps: 0.1,
        };
        let clean = [0.5, 0.95, 0.02];
        let mut adv = [0.9, 1.2, -0.5];
        t.project(&mut adv, &clean, 3);
        assert_eq!(adv, [0.6, 1.0, 0.0]);
        assert!(t.admits(&adv, &clean).is_ok());
    }

    #[test]
    fn l2_projection_scales_onto_the_sphere() {
        let t = ThreatModel {
            norm: Norm::L2,
            eps: 0.5,
        };
        let clean = [0.5, 0.5];
        let mut adv = [0.5 + 0.6, 0.5 + 0.8];
        t.project(&mut adv, &clean, 2);
        // The perturbation (0.6, 0.8) has norm 1; scaled by 0.5 to (0.3, 0.4).
        assert!((adv[0] - 0.8).abs() < 1e-6 && (adv[1] - 0.9).abs() < 1e-6);
        let mut near_edge = [0.9, 0.9];
        t.project(&mut near_edge, &[0.8, 0.8], 2);
        assert!(t.admits(&near_edge, &[0.8, 0.8]).is_ok());
        // Onto the sphere first (0.5 + 0.5), then the box clamps nothing more.
        let mut outside_box = [1.3, 0.5];
        t.project(&mut outside_box, &clean, 2);
        assert_eq!(outside_box, [1.0, 0.5]);
        // The box clamp after the ball projection.
        let mut far = [1.5, 0.5];
        t.project(&mut far, &[0.9, 0.5], 2);
        assert_eq!(far, [1.0, 0.5]);
        assert!(t.admits(&adv, &clean).is_ok());
    }

    #[test]
    fn l1_projection_spends_the_budget_inside_the_box() {
        let t = ThreatModel {
            norm: Norm::L1,
            eps: 0.4,
        };
        // Inside the box it is the ball's soft threshold: theta = 0.2.
        let clean = [0.5, 0.5, 0.5, 0.5];
        let mut adv = [1.0, 0.2, 0.6, 0.5];
        t.project(&mut adv, &clean, 4);
        let expected = [0.8, 0.4, 0.5, 0.5];
        assert!(adv.iter().zip(expected).all(|(a, e)| (a - e).abs() < 1e-5), "{adv:?}");
        // At the box: the first coordinate stops at 1 and the rest of the
        // budget goes elsewhere (ball-then-clip would leave it unspent).
        let clean = [0.9, 0.5, 0.5, 0.5];
        let mut adv = [1.5, 0.2, 0.6, 0.5];
        t.project(&mut adv, &clean, 4);
        assert!(t.admits(&adv, &clean).is_ok(), "{adv:?}");
        let spent: f32 = adv.iter().zip(&clean).map(|(a, x)| (a - x).abs()).sum();
        assert!((spent - 0.4).abs() < 1e-4, "{adv:?} spends {spent}");
        assert_eq!(adv[0], 1.0);
    }

    #[test]
    fn admits_rejects_each_violation() {
        let t = ThreatModel {
            norm: Norm::Linf,
            eps: 0.1,
        };
        let clean = [0.5, 0.5];
        assert_eq!(t.admits(&[f32::NAN, 0.5], &clean), Err(Violation::NotFinite));
        assert_eq!(t.admits(&[1.5, 0.5], &clean), Err(Violation::OutsideBox));
        assert!(matches!(
            t.admits(&[0.7, 0.5], &clean),
            Err(Violation::OverBudget { .. })
        ));
        assert_eq!(t.admits(&[0.5], &clean), Err(Violation::Shape));
    }
}
