//! Perturbation norms, as rows record them.

use serde::{Deserialize, Serialize};

/// Mean perturbation norms of a set of examples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Norms {
    pub l0: f64,
    pub l1: f64,
    pub l2: f64,
    pub linf: f64,
}

impl Norms {
    /// Mean norms of `adv - clean` over the images selected by `mask`;
    /// `None` when none is selected. l0 counts pixels moved by more than
    /// half a grey level.
    pub fn mean(adv: &[f32], clean: &[f32], dim: usize, mask: &[bool]) -> Option<Norms> {
        let mut sum = Norms::default();
        let mut count = 0;
        for ((a, x), &selected) in adv.chunks(dim).zip(clean.chunks(dim)).zip(mask) {
            if !selected {
                continue;
            }
            count += 1;
            let delta: Vec<f32> = a.iter().zip(x).map(|(a, x)| a - x).collect();
            sum.l0 += delta.iter().filter(|d| d.abs() > 0.5 / 255.0).count() as f64;
            sum.l1 += delta.iter().map(|d| d.abs() as f64).sum::<f64>();
            sum.l2 += delta.iter().map(|d| d * d).sum::<f32>().sqrt() as f64;
            sum.linf += delta.iter().fold(0.0f32, |m, d| m.max(d.abs())) as f64;
        }
        (count > 0).then(|| {
            let n = count as f64;
            Norms {
                l0: sum.l0 / n,
                l1: sum.l1 / n,
                l2: sum.l2 / n,
                linf: sum.linf / n,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_average_over_selected_images() {
        let clean = [0.0, 0.0, 0.0, 0.0];
        let adv = [0.3, 0.4, 1.0, 1.0];
        let n = Norms::mean(&adv, &clean, 2, &[true, false]).unwrap();
        assert!((n.l2 - 0.5).abs() < 1e-6 && (n.linf - 0.4).abs() < 1e-6 && n.l0 == 2.0);
        assert!(Norms::mean(&adv, &clean, 2, &[false, false]).is_none());
    }
}
