//! Losses on logits, computed on the host.
//!
//! An engine only needs forward passes and vector-Jacobian products: each loss
//! here returns per-example values and the gradient of their sum with respect
//! to the logits, so adding a loss never touches an engine.

/// A loss over a batch of logits (`n x classes`, row-major).
pub trait Loss: Sync {
    /// Per-example losses and d(sum of losses)/d(logits).
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>);
}

/// Numerically stable softmax of one row, written into `out`.
pub fn softmax_into(row: &[f32], out: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (o, &z) in out.iter_mut().zip(row) {
        *o = (z - max).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// Softmax of every row.
pub fn softmax(logits: &[f32], classes: usize) -> Vec<f32> {
    let mut out = vec![0.0; logits.len()];
    for (row, o) in logits.chunks(classes).zip(out.chunks_mut(classes)) {
        softmax_into(row, o);
    }
    out
}

/// Index of the largest logit of every row.
pub fn argmax_rows(logits: &[f32], classes: usize) -> Vec<u8> {
    logits
        .chunks(classes)
        .map(|row| {
            let mut best = 0;
            for (j, &z) in row.iter().enumerate() {
                if z > row[best] {
                    best = j;
                }
            }
            best as u8
        })
        .collect()
}

/// Cross-entropy against hard labels.
pub struct CrossEntropy<'a> {
    pub labels: &'a [u8],
}

impl Loss for CrossEntropy<'_> {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let mut grad = softmax(logits, classes);
        let mut losses = Vec::with_capacity(self.labels.len());
        for (row, &y) in grad.chunks_mut(classes).zip(self.labels) {
            let y = y as usize;
            losses.push(-row[y].max(1e-30).ln());
            row[y] -= 1.0;
        }
        (losses, grad)
    }
}

/// Cross-entropy against soft targets (one probability row per example).
pub struct SoftCrossEntropy<'a> {
    pub targets: &'a [f32],
}

impl Loss for SoftCrossEntropy<'_> {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let mut grad = softmax(logits, classes);
        let mut losses = Vec::with_capacity(logits.len() / classes);
        for (row, target) in grad.chunks_mut(classes).zip(self.targets.chunks(classes)) {
            let loss: f32 = row.iter().zip(target).map(|(p, t)| -t * p.max(1e-30).ln()).sum();
            losses.push(loss);
            for (g, t) in row.iter_mut().zip(target) {
                *g -= t;
            }
        }
        (losses, grad)
    }
}

/// The Carlini-Wagner margin: `max_{j != y} z_j - z_y`, capped at `kappa`.
/// An attack ascends it; unlike cross-entropy it does not saturate when the
/// softmax does, which is why it sees through some gradient masking.
pub struct CwMargin<'a> {
    pub labels: &'a [u8],
    pub kappa: f32,
}

impl Loss for CwMargin<'_> {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let mut grad = vec![0.0; logits.len()];
        let mut losses = Vec::with_capacity(self.labels.len());
        for ((row, g), &y) in logits.chunks(classes).zip(grad.chunks_mut(classes)).zip(self.labels) {
            let y = y as usize;
            let other = (0..classes)
                .filter(|&j| j != y)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(y);
            let margin = row[other] - row[y];
            if margin < self.kappa {
                g[other] += 1.0;
                g[y] -= 1.0;
            }
            losses.push(margin.min(self.kappa));
        }
        (losses, grad)
    }
}

/// Croce & Hein's difference-of-logits-ratio, as a loss to ascend:
/// `-(z_y - max_{j != y} z_j) / (z_1 - z_3 + 1e-12)`, `z_1 >= z_2 >= z_3` the
/// largest logits. Invariant to shifting and scaling the logits, so a model
/// that saturates its softmax cannot hide behind the scale.
pub struct Dlr<'a> {
    pub labels: &'a [u8],
}

impl Loss for Dlr<'_> {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let mut grad = vec![0.0; logits.len()];
        let mut losses = Vec::with_capacity(self.labels.len());
        for ((z, g), &y) in logits.chunks(classes).zip(grad.chunks_mut(classes)).zip(self.labels) {
            let y = y as usize;
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
            let other = order.iter().copied().find(|&j| j != y).unwrap_or(y);
            let (top, third) = (order[0], order[2.min(classes - 1)]);
            let numerator = z[y] - z[other];
            let denominator = z[top] - z[third] + 1e-12;
            losses.push(-numerator / denominator);
            // d/dz of -(n / d): -(dn * d - n * dd) / d^2.
            let scale = 1.0 / denominator;
            g[y] -= scale;
            g[other] += scale;
            let ratio = numerator / (denominator * denominator);
            g[top] += ratio;
            g[third] -= ratio;
        }
        (losses, grad)
    }
}

/// Targeted DLR (Croce & Hein 2020): `-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`,
/// ascended to pull the target `t` above the true class `y`; the scale of
/// the logits cancels out, as in the untargeted DLR.
pub struct TargetedDlr<'a> {
    pub labels: &'a [u8],
    pub targets: &'a [u8],
}

impl Loss for TargetedDlr<'_> {
    fn eval(&self, logits: &[f32], classes: usize) -> (Vec<f32>, Vec<f32>) {
        let mut grad = vec![0.0; logits.len()];
        let mut losses = Vec::with_capacity(self.labels.len());
        let rows = logits.chunks(classes).zip(grad.chunks_mut(classes));
        for ((z, g), (&y, &t)) in rows.zip(self.labels.iter().zip(self.targets)) {
            let (y, t) = (y as usize, t as usize);
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
            let last = classes - 1;
            let (top, third, fourth) = (order[0], order[2.min(last)], order[3.min(last)]);
            let numerator = z[y] - z[t];
            let denominator = z[top] - 0.5 * (z[third] + z[fourth]) + 1e-12;
            losses.push(-numerator / denominator);
            // d/dz of -(n / d): -(dn * d - n * dd) / d^2.
            let scale = 1.0 / denominator;
            g[y] -= scale;
            g[t] += scale;
            let ratio = numerator / (denominator * denominator);
            g[top] += ratio;
            g[third] -= 0.5 * ratio;
            g[fourth] -= 0.5 * ratio;
        }
        (losses, grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_grad(loss: &dyn Loss, logits: &[f32], classes: usize) -> Vec<f32> {
        let h = 1e-3;
        (0..logits.len())
            .map(|i| {
                let mut up = logits.to_vec();
                let mut down = logits.to_vec();
                up[i] += h;
                down[i] -= h;
                let f = |z: &[f32]| loss.eval(z, classes).0.iter().sum::<f32>();
                (f(&up) - f(&down)) / (2.0 * h)
            })
            .collect()
    }

    #[test]
    fn analytic_gradients_match_finite_differences() {
        let logits = [0.3, -1.2, 2.0, 0.1, 0.5, 0.4, -0.7, 1.1];
        let labels = [2u8, 3];
        let targets = [0.1, 0.2, 0.6, 0.1, 0.25, 0.25, 0.25, 0.25];
        let losses: Vec<Box<dyn Loss>> = vec![
            Box::new(CrossEntropy { labels: &labels }),
            Box::new(SoftCrossEntropy { targets: &targets }),
            Box::new(CwMargin {
                labels: &labels,
                kappa: 50.0,
            }),
            Box::new(Dlr { labels: &labels }),
            Box::new(TargetedDlr {
                labels: &labels,
                targets: &[0, 1],
            }),
        ];
        for loss in &losses {
            let (_, grad) = loss.eval(&logits, 4);
            let numeric = numeric_grad(loss.as_ref(), &logits, 4);
            for (a, n) in grad.iter().zip(&numeric) {
                assert!((a - n).abs() < 1e-2, "analytic {a} vs numeric {n}");
            }
        }
    }

    #[test]
    fn margin_is_capped_at_kappa() {
        let (loss, grad) = CwMargin {
            labels: &[0],
            kappa: 0.5,
        }
        .eval(&[0.0, 3.0], 2);
        assert_eq!(loss, vec![0.5]);
        assert_eq!(grad, vec![0.0, 0.0]);
    }

    #[test]
    fn argmax_and_softmax() {
        assert_eq!(argmax_rows(&[0.1, 0.9, 0.3, 2.0, 1.0, 0.0], 3), vec![1, 0]);
        let p = softmax(&[1000.0, 1000.0], 2);
        assert!((p[0] - 0.5).abs() < 1e-6);
    }
}
