//! Synthetic handwritten-looking digits: an MNIST stand-in that needs no
//! download, so tests and demos run anywhere.
//!
//! Each digit is a skeleton of strokes (polylines and arcs) in a unit box.
//! An image picks a digit and one of its variants (a 7 with or without a
//! crossbar, an open or closed 4, ...), wobbles the skeleton, applies a
//! random affine map, and renders the strokes anti-aliased at a random
//! width, plus a little pixel noise. The result is 28x28, background near 0
//! and strokes near 1, like MNIST.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Dataset, Split};

/// Name of the generated dataset.
pub const SYNTHETIC_NAME: &str = "synthetic-digits";
/// Side of the square images, as in MNIST.
pub const SIDE: usize = 28;
pub const CLASSES: usize = 10;

/// Glyph box size in pixels before the random scale. MNIST digits fit a
/// 20x20 box, and are narrower than tall.
const GLYPH_WIDTH: f32 = 13.0;
const GLYPH_HEIGHT: f32 = 17.0;
/// Largest wobble amplitude, in glyph-box units.
const WOBBLE: f32 = 0.06;

/// A stroke: a polyline in the unit box (x right, y down).
type Stroke = Vec<(f32, f32)>;
/// One way of writing a digit.
type Glyph = Vec<Stroke>;

/// Points along an elliptic arc centred at (cx, cy). Angles are in degrees
/// with y pointing down, so 0 is right, 90 is down and increasing angles go
/// clockwise on screen; `to < from` walks the other way.
fn arc(cx: f32, cy: f32, rx: f32, ry: f32, from: f32, to: f32) -> Stroke {
    // About one segment per 15 degrees: fine enough that the polygon is
    // invisible at stroke widths of 1.5 px and more.
    let steps = ((to - from).abs() / 15.0).ceil().max(2.0) as usize;
    (0..=steps)
        .map(|i| {
            let a = (from + (to - from) * i as f32 / steps as f32).to_radians();
            (cx + rx * a.cos(), cy + ry * a.sin())
        })
        .collect()
}

/// Joins strokes end to start into one pen stroke.
fn join(parts: &[Stroke]) -> Stroke {
    parts.iter().flatten().copied().collect()
}

fn line(points: &[(f32, f32)]) -> Stroke {
    points.to_vec()
}

/// Every variant of every digit, indexed by digit. Long because it is a
/// table of stroke coordinates, one entry per digit variant.
fn glyphs() -> [Vec<Glyph>; CLASSES] {
    [
        // 0: an oval, sometimes narrow, sometimes not quite closed.
        vec![
            vec![arc(0.5, 0.5, 0.42, 0.5, 0.0, 360.0)],
            vec![arc(0.5, 0.5, 0.32, 0.5, 250.0, 620.0)],
            vec![arc(0.5, 0.5, 0.45, 0.48, -80.0, 250.0)],
        ],
        // 1: a bar, with or without a flag and a foot.
        vec![
            vec![line(&[(0.5, 0.0), (0.5, 1.0)])],
            vec![line(&[(0.25, 0.22), (0.52, 0.0), (0.52, 1.0)])],
            vec![
                line(&[(0.25, 0.22), (0.52, 0.0), (0.52, 1.0)]),
                line(&[(0.25, 1.0), (0.8, 1.0)]),
            ],
        ],
        // 2: a hook over a diagonal, with a flat or a rising base.
        vec![
            vec![join(&[
                arc(0.5, 0.3, 0.42, 0.3, 195.0, 400.0),
                line(&[(0.05, 1.0), (0.95, 1.0)]),
            ])],
            vec![join(&[
                arc(0.5, 0.3, 0.42, 0.3, 200.0, 380.0),
                line(&[(0.1, 0.95), (1.0, 0.88)]),
            ])],
        ],
        // 3: two bowls, or a flat top over one bowl.
        vec![
            vec![
                arc(0.5, 0.26, 0.4, 0.26, 200.0, 450.0),
                arc(0.5, 0.74, 0.45, 0.26, 270.0, 520.0),
            ],
            vec![join(&[
                line(&[(0.1, 0.0), (0.9, 0.0), (0.45, 0.42)]),
                arc(0.5, 0.7, 0.45, 0.3, 260.0, 520.0),
            ])],
        ],
        // 4: closed (one pen stroke) or open top.
        vec![
            vec![line(&[(0.7, 1.0), (0.7, 0.0), (0.0, 0.68), (1.0, 0.68)])],
            vec![
                line(&[(0.2, 0.0), (0.05, 0.62), (1.0, 0.62)]),
                line(&[(0.72, 0.22), (0.72, 1.0)]),
            ],
        ],
        // 5: flag, back, and a bowl that opens to the left.
        vec![
            vec![join(&[
                line(&[(0.9, 0.0), (0.22, 0.0), (0.15, 0.45)]),
                arc(0.48, 0.68, 0.44, 0.32, 215.0, 520.0),
            ])],
            vec![
                line(&[(0.2, 0.0), (0.92, 0.02)]),
                join(&[
                    line(&[(0.2, 0.0), (0.14, 0.48)]),
                    arc(0.5, 0.7, 0.42, 0.3, 210.0, 510.0),
                ]),
            ],
        ],
        // 6: a falling stem that ends in a loop.
        vec![
            vec![join(&[
                arc(0.92, 0.62, 0.82, 0.62, 245.0, 180.0),
                arc(0.5, 0.72, 0.4, 0.28, 180.0, 540.0),
            ])],
            vec![join(&[
                line(&[(0.75, 0.0), (0.1, 0.7)]),
                arc(0.5, 0.74, 0.4, 0.26, 190.0, 540.0),
            ])],
        ],
        // 7: a bar and a diagonal; crossbar or top hook sometimes.
        vec![
            vec![line(&[(0.0, 0.0), (1.0, 0.0), (0.35, 1.0)])],
            vec![
                line(&[(0.0, 0.0), (1.0, 0.0), (0.4, 1.0)]),
                line(&[(0.3, 0.52), (0.88, 0.52)]),
            ],
            vec![line(&[(0.0, 0.18), (0.02, 0.0), (1.0, 0.0), (0.45, 1.0)])],
        ],
        // 8: two loops, the lower one larger.
        vec![
            vec![
                arc(0.5, 0.24, 0.34, 0.24, 0.0, 360.0),
                arc(0.5, 0.72, 0.44, 0.28, 0.0, 360.0),
            ],
            vec![
                arc(0.5, 0.25, 0.38, 0.25, 90.0, 450.0),
                arc(0.5, 0.73, 0.4, 0.27, 270.0, 630.0),
            ],
        ],
        // 9: a loop with a straight or a curling tail.
        vec![
            vec![
                arc(0.5, 0.28, 0.42, 0.28, 0.0, 360.0),
                line(&[(0.92, 0.28), (0.88, 1.0)]),
            ],
            vec![join(&[
                arc(0.5, 0.28, 0.42, 0.28, -360.0, 0.0),
                arc(0.42, 0.28, 0.5, 0.72, 0.0, 110.0),
            ])],
        ],
    ]
}

/// A segment in pixel coordinates.
#[derive(Clone, Copy)]
struct Segment {
    ax: f32,
    ay: f32,
    bx: f32,
    by: f32,
}

/// Random look of one image.
struct Style {
    /// Unit box to pixels, as a 2x3 affine map.
    m: [f32; 6],
    /// Smooth wobble of the skeleton: amplitude, frequency, phase of the x
    /// shift along y and along x, then of the y shift along x and along y.
    wobble: [(f32, f32, f32); 4],
    /// Half the stroke width, in pixels.
    radius: f32,
    /// Ink intensity at the stroke centre.
    ink: f32,
}

impl Style {
    fn sample(rng: &mut ChaCha8Rng) -> Style {
        let angle = rng.gen_range(-15.0f32..15.0).to_radians();
        let scale = rng.gen_range(0.8f32..1.1);
        // Width varies a little apart from height: people write wide and
        // narrow digits.
        let sx = scale * rng.gen_range(0.85f32..1.15) * GLYPH_WIDTH;
        let sy = scale * GLYPH_HEIGHT;
        // Mostly a rightward slant ('/'), as in right-handed writing; with
        // y down that is a negative shear.
        let shear = rng.gen_range(-0.3f32..0.1);
        let tx = SIDE as f32 / 2.0 + rng.gen_range(-2.0f32..2.0);
        let ty = SIDE as f32 / 2.0 + rng.gen_range(-2.0f32..2.0);
        let (sin, cos) = angle.sin_cos();
        // p = R * [[sx, shear*sy], [0, sy]] * (u - 0.5) + t: centre the
        // unit box on the origin, scale, shear x by y, rotate, translate.
        let (m00, m01) = (cos * sx, (cos * shear - sin) * sy);
        let (m10, m11) = (sin * sx, (sin * shear + cos) * sy);
        let m = [m00, m01, tx - 0.5 * (m00 + m01), m10, m11, ty - 0.5 * (m10 + m11)];
        let mut wobble = [(0.0, 0.0, 0.0); 4];
        for w in &mut wobble {
            *w = (
                rng.gen_range(0.0f32..WOBBLE),
                rng.gen_range(3.0f32..9.0),
                rng.gen_range(0.0f32..std::f32::consts::TAU),
            );
        }
        Style {
            m,
            wobble,
            radius: rng.gen_range(0.75f32..1.5),
            ink: rng.gen_range(0.85f32..1.0),
        }
    }

    /// A skeleton point in the unit box to pixel coordinates.
    fn map(&self, (x, y): (f32, f32)) -> (f32, f32) {
        // Low-frequency sines bend strokes smoothly, the way a hand does,
        // rather than jittering each point.
        let wave = |(a, f, p): (f32, f32, f32), t: f32| a * (f * t + p).sin();
        let [xy, xx, yx, yy] = self.wobble;
        let (x, y) = (x + wave(xy, y) + wave(xx, x), y + wave(yx, x) + wave(yy, y));
        let m = &self.m;
        (m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5])
    }
}

/// Renders segments into `out` (SIDE*SIDE, zeroed by the caller).
fn render(segments: &[Segment], style: &Style, dist2: &mut [f32], out: &mut [f32]) {
    // Intensity falls from `ink` to 0 over a soft edge SOFT px wide around
    // the stroke boundary: enough to anti-alias and to look like a scan.
    const SOFT: f32 = 1.2;
    let reach = style.radius + SOFT / 2.0;
    dist2.fill(f32::INFINITY);
    for s in segments {
        let (dx, dy) = (s.bx - s.ax, s.by - s.ay);
        let len2 = (dx * dx + dy * dy).max(1e-12);
        // Only pixels within `reach` of the segment can be touched.
        let x0 = ((s.ax.min(s.bx) - reach - 0.5).floor().max(0.0)) as usize;
        let y0 = ((s.ay.min(s.by) - reach - 0.5).floor().max(0.0)) as usize;
        let x1 = (s.ax.max(s.bx) + reach).ceil().min(SIDE as f32 - 1.0);
        let y1 = (s.ay.max(s.by) + reach).ceil().min(SIDE as f32 - 1.0);
        if x1 < 0.0 || y1 < 0.0 {
            continue;
        }
        let (x1, y1) = (x1 as usize, y1 as usize);
        for row in y0..=y1 {
            let py = row as f32 + 0.5 - s.ay;
            for col in x0..=x1 {
                let px = col as f32 + 0.5 - s.ax;
                let t = ((px * dx + py * dy) / len2).clamp(0.0, 1.0);
                let (ex, ey) = (px - t * dx, py - t * dy);
                let d2 = ex * ex + ey * ey;
                let cell = &mut dist2[row * SIDE + col];
                if d2 < *cell {
                    *cell = d2;
                }
            }
        }
    }
    let reach2 = reach * reach;
    for (o, &d2) in out.iter_mut().zip(dist2.iter()) {
        if d2 < reach2 {
            let edge = ((reach - d2.sqrt()) / SOFT).clamp(0.0, 1.0);
            // Smoothstep: a soft shoulder rather than a linear ramp.
            *o = style.ink * edge * edge * (3.0 - 2.0 * edge);
        }
    }
}

fn generate_split(rng: &mut ChaCha8Rng, n: usize, glyphs: &[Vec<Glyph>; CLASSES]) -> Split {
    const NOISE: f32 = 0.04;
    let dim = SIDE * SIDE;
    let mut images = vec![0.0f32; n * dim];
    let mut labels = Vec::with_capacity(n);
    let mut segments = Vec::with_capacity(64);
    let mut dist2 = vec![0.0f32; dim];
    for image in images.chunks_exact_mut(dim) {
        let label = rng.gen_range(0..CLASSES);
        let variants = &glyphs[label];
        let glyph = &variants[rng.gen_range(0..variants.len())];
        let style = Style::sample(rng);
        segments.clear();
        for stroke in glyph {
            let points: Vec<(f32, f32)> = stroke.iter().map(|&p| style.map(p)).collect();
            segments.extend(points.windows(2).map(|w| Segment {
                ax: w[0].0,
                ay: w[0].1,
                bx: w[1].0,
                by: w[1].1,
            }));
        }
        render(&segments, &style, &mut dist2, image);
        for px in image.iter_mut() {
            *px = (*px + rng.gen_range(-NOISE..NOISE)).clamp(0.0, 1.0);
        }
        labels.push(label as u8);
    }
    Split {
        images,
        labels,
        shape: crate::data::Shape::gray(SIDE, SIDE),
    }
}

/// `train` and `test` synthetic 28x28 digit images, 10 classes, fully
/// determined by `seed` (each split from its own stream, so the test split
/// does not change when the train size does).
pub fn synthetic_digits(seed: u64, train: usize, test: usize) -> Dataset {
    let glyphs = glyphs();
    let mut train_rng = crate::rng::stream(seed, crate::path![SYNTHETIC_NAME, "train"]);
    let mut test_rng = crate::rng::stream(seed, crate::path![SYNTHETIC_NAME, "test"]);
    let train = generate_split(&mut train_rng, train, &glyphs);
    let test = generate_split(&mut test_rng, test, &glyphs);
    Dataset::new(SYNTHETIC_NAME, train, test, CLASSES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        let a = synthetic_digits(5, 50, 20);
        let b = synthetic_digits(5, 50, 20);
        let c = synthetic_digits(6, 50, 20);
        assert_eq!(a.train.images, b.train.images);
        assert_eq!(a.train.labels, b.train.labels);
        assert_eq!(a.test.images, b.test.images);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.train.images, c.train.images);
        assert_ne!(a.fingerprint, c.fingerprint);
        // Train and test come from different streams.
        assert_ne!(a.train.image(0), a.test.image(0));
        // The test split does not depend on the train size.
        let d = synthetic_digits(5, 10, 20);
        assert_eq!(a.test.images, d.test.images);
        assert_eq!(&a.train.images[..10 * 784], &d.train.images[..]);
    }

    #[test]
    fn shape_range_and_look() {
        let d = synthetic_digits(1, 500, 100);
        assert_eq!(d.name, "synthetic-digits");
        assert_eq!(d.classes, 10);
        assert_eq!((d.train.shape.rows, d.train.shape.cols), (28, 28));
        assert_eq!(d.train.len(), 500);
        assert_eq!(d.test.len(), 100);
        assert_eq!(d.train.images.len(), 500 * 784);
        assert!(d.train.images.iter().all(|p| (0.0..=1.0).contains(p)));
        assert!(d.test.images.iter().all(|p| (0.0..=1.0).contains(p)));
        let mut touching_border = 0;
        for i in 0..d.train.len() {
            let img = d.train.image(i);
            let ink = img.iter().filter(|&&p| p > 0.5).count();
            // MNIST digits cover roughly 5-25% of the image.
            assert!((10..350).contains(&ink), "image {i}: {ink} inked pixels");
            let border: f32 = (0..28)
                .map(|k| img[k] + img[27 * 28 + k] + img[k * 28] + img[k * 28 + 27])
                .sum();
            // Noise alone gives about 1.
            if border > 3.0 {
                touching_border += 1;
            }
        }
        // The border stays dark, like MNIST's padding, but for a rare
        // large, shifted digit.
        assert!(touching_border < 10, "{touching_border} of 500 touch the border");
        let mean: f32 = d.train.images.iter().sum::<f32>() / d.train.images.len() as f32;
        // MNIST's mean pixel is 0.13.
        assert!((0.05..0.25).contains(&mean), "mean pixel {mean}");
    }

    #[test]
    fn labels_cover_all_classes() {
        let d = synthetic_digits(2, 2000, 500);
        for split in [&d.train, &d.test] {
            let mut counts = [0usize; 10];
            for &l in &split.labels {
                counts[l as usize] += 1;
            }
            let expected = split.len() / 10;
            for (class, &c) in counts.iter().enumerate() {
                assert!(
                    c > expected / 2 && c < expected * 2,
                    "class {class}: {c} of {}",
                    split.len()
                );
            }
        }
    }

    #[test]
    fn empty_splits_are_fine() {
        let d = synthetic_digits(3, 0, 0);
        assert!(d.train.is_empty() && d.test.is_empty());
    }

    /// Multinomial logistic regression trained by plain SGD: the data must be
    /// learnable by a linear model (MNIST: about 92%) but not trivially.
    #[test]
    fn learnable_by_logistic_regression() {
        let d = synthetic_digits(11, 4000, 1000);
        let (train_acc, test_acc) = logistic_regression(&d, 3, 0.05);
        eprintln!("logistic regression: train {train_acc:.3}, test {test_acc:.3}");
        assert!(test_acc > 0.85, "test accuracy {test_acc}");
        // Real intra-class variety: a linear model does not ace it.
        assert!(test_acc < 0.99, "test accuracy {test_acc}");
    }

    /// Trains on `d.train` and returns (train, test) accuracy.
    fn logistic_regression(d: &Dataset, epochs: usize, lr: f32) -> (f32, f32) {
        let dim = d.train.dim();
        let mut w = vec![0.0f32; CLASSES * dim];
        let mut b = [0.0f32; CLASSES];
        let logits = |w: &[f32], b: &[f32; CLASSES], x: &[f32]| {
            let mut z = *b;
            for (k, zk) in z.iter_mut().enumerate() {
                *zk += w[k * dim..(k + 1) * dim].iter().zip(x).map(|(a, b)| a * b).sum::<f32>();
            }
            z
        };
        for epoch in 0..epochs {
            let lr = lr / (1.0 + epoch as f32);
            for i in 0..d.train.len() {
                let x = d.train.image(i);
                let z = logits(&w, &b, x);
                let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f32> = z.iter().map(|v| (v - max).exp()).collect();
                let sum: f32 = exp.iter().sum();
                for k in 0..CLASSES {
                    let target = if k == d.train.labels[i] as usize { 1.0 } else { 0.0 };
                    let g = exp[k] / sum - target;
                    b[k] -= lr * g;
                    for (wk, xk) in w[k * dim..(k + 1) * dim].iter_mut().zip(x) {
                        *wk -= lr * g * xk;
                    }
                }
            }
        }
        let accuracy = |s: &Split| {
            let correct = (0..s.len())
                .filter(|&i| {
                    let z = logits(&w, &b, s.image(i));
                    let best = (0..CLASSES).fold(0, |best, k| if z[k] > z[best] { k } else { best });
                    best == s.labels[i] as usize
                })
                .count();
            correct as f32 / s.len() as f32
        };
        (accuracy(&d.train), accuracy(&d.test))
    }
}
