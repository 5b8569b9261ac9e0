//! The architectures redqueen ships, as a list of layers every engine runs.
//!
//! Activations are `(pixels, channels)` matrices (NHWC); a dense layer sees
//! its input as `(batch, features)`. Parameters are flat: a weight matrix
//! `(fan_in, fan_out)` row-major, then a bias of `fan_out`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ModelConfig;
use crate::data::Shape;

#[derive(Clone, Copy, Debug)]
pub enum Layer {
    /// `x W + b`, `W` stored `(inp, out)`, optionally followed by ReLU.
    Dense { inp: usize, out: usize, relu: bool },
    /// Same-padded, stride-1 `k x k` convolution followed by ReLU, NHWC.
    Conv {
        h: usize,
        w: usize,
        cin: usize,
        cout: usize,
        k: usize,
    },
    /// 2x2 max-pooling with stride 2.
    Pool { h: usize, w: usize, c: usize },
}

impl Layer {
    /// Shapes of its parameters, as (rows, cols) with fan-in = rows.
    pub fn parameter_shapes(&self) -> Vec<(usize, usize)> {
        match *self {
            Layer::Dense { inp, out, .. } => vec![(inp, out), (1, out)],
            Layer::Conv { cin, cout, k, .. } => vec![(k * k * cin, cout), (1, cout)],
            Layer::Pool { .. } => vec![],
        }
    }
}

/// The layers of `config` for images of `shape`.
pub fn layers(config: &ModelConfig, shape: Shape, classes: usize) -> Vec<Layer> {
    let Shape { rows, cols, .. } = shape;
    match config {
        ModelConfig::Mlp { hidden, .. } => {
            let mut layers = Vec::new();
            let mut inp = shape.dim();
            for &out in hidden {
                layers.push(Layer::Dense { inp, out, relu: true });
                inp = out;
            }
            layers.push(Layer::Dense {
                inp,
                out: classes,
                relu: false,
            });
            layers
        }
        ModelConfig::Cnn { channels, dense, .. } => {
            let [c1, c2] = *channels;
            let (h2, w2) = (rows / 2, cols / 2);
            vec![
                Layer::Conv {
                    h: rows,
                    w: cols,
                    cin: shape.channels,
                    cout: c1,
                    k: 5,
                },
                Layer::Pool {
                    h: rows,
                    w: cols,
                    c: c1,
                },
                Layer::Conv {
                    h: h2,
                    w: w2,
                    cin: c1,
                    cout: c2,
                    k: 5,
                },
                Layer::Pool { h: h2, w: w2, c: c2 },
                Layer::Dense {
                    inp: (h2 / 2) * (w2 / 2) * c2,
                    out: *dense,
                    relu: true,
                },
                Layer::Dense {
                    inp: *dense,
                    out: classes,
                    relu: false,
                },
            ]
        }
    }
}

/// PyTorch's default initialization: uniform in +-1/sqrt(fan_in), weights
/// and biases alike.
pub fn init_parameters(layers: &[Layer], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    layers
        .iter()
        .flat_map(|l| l.parameter_shapes())
        .map(|(fan_in, cols)| {
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..fan_in * cols).map(|_| rng.gen_range(-bound..bound)).collect()
        })
        .collect()
}

/// im2col gather indices for a same-padded `k x k` convolution over `batch`
/// images of `h x w` pixels; `batch * h * w` is the zero row.
pub fn conv_indices(batch: usize, h: usize, w: usize, k: usize) -> Vec<usize> {
    let pad = (k / 2) as isize;
    let zero_row = batch * h * w;
    let mut idx = Vec::with_capacity(batch * h * w * k * k);
    for b in 0..batch {
        for oy in 0..h as isize {
            for ox in 0..w as isize {
                for ky in 0..k as isize {
                    for kx in 0..k as isize {
                        let (iy, ix) = (oy + ky - pad, ox + kx - pad);
                        idx.push(if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                            b * h * w + iy as usize * w + ix as usize
                        } else {
                            zero_row
                        });
                    }
                }
            }
        }
    }
    idx
}

/// Gather indices for 2x2 max-pooling: the four candidates of every output
/// pixel, candidate-major so that a `(4, pixels, c)` reshape lines them up.
pub fn pool_indices(batch: usize, h: usize, w: usize) -> Vec<usize> {
    let (oh, ow) = (h / 2, w / 2);
    let mut idx = Vec::with_capacity(4 * batch * oh * ow);
    for q in 0..4 {
        let (dy, dx) = (q / 2, q % 2);
        for b in 0..batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    idx.push(b * h * w + (2 * oy + dy) * w + 2 * ox + dx);
                }
            }
        }
    }
    idx
}
