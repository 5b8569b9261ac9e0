//! The dfdx engine: MLPs and the Madry CNN as one list of layers.
//!
//! dfdx 0.13's convolution and pooling are nightly-only, so both are built
//! from stable ops: activations are kept as a `(pixels, channels)` matrix,
//! a convolution is an im2col by `gather` (a zero row appended serves the
//! padding) followed by one `matmul`, and 2x2 max-pooling is a `gather` of
//! the four candidates followed by a `max` over them.

use std::collections::HashMap;
use std::sync::Mutex;

use dfdx::prelude::*;

use super::arch::{self, Layer};
use super::{Classifier, Loss, Model, ModelConfig, Optimizer, OptimizerState};
use crate::data::Shape;

type Matrix<Tp> = Tensor<(usize, usize), f32, Cpu, Tp>;
type Flat<Tp> = Tensor<(usize,), f32, Cpu, Tp>;
type Indices = Tensor<(usize,), usize, Cpu>;
type Taped = OwnedTape<f32, Cpu>;

/// A network on the dfdx CPU device.
pub struct Net {
    dev: Cpu,
    layers: Vec<Layer>,
    params: Vec<Flat<NoneTape>>,
    /// Carried for the optimizer, never read here (see `optim`).
    optimizer_state: OptimizerState,
    shape: Shape,
    classes: usize,
    /// Gather indices by (layer, batch size): they depend on nothing else.
    index_cache: Mutex<HashMap<(usize, usize), Indices>>,
}

impl Net {
    pub fn new(config: &ModelConfig, shape: Shape, classes: usize, seed: u64) -> Net {
        let layers = arch::layers(config, shape, classes);
        let host = arch::init_parameters(&layers, seed);
        Net::from_parts(Cpu::seed_from_u64(seed), layers, &host, shape, classes)
    }

    /// A network with the given parameters (as `parameters()` lists them).
    #[cfg(test)]
    pub(crate) fn with_parameters(layers: Vec<Layer>, host: &[Vec<f32>], shape: Shape, classes: usize) -> Net {
        Net::from_parts(Cpu::default(), layers, host, shape, classes)
    }

    fn from_parts(dev: Cpu, layers: Vec<Layer>, host: &[Vec<f32>], shape: Shape, classes: usize) -> Net {
        let params = host
            .iter()
            .map(|p| dev.tensor_from_vec(p.clone(), (p.len(),)))
            .collect();
        Net {
            optimizer_state: OptimizerState::default(),
            dev,
            layers,
            params,
            shape,
            classes,
            index_cache: Mutex::new(HashMap::new()),
        }
    }

    fn batch_of(&self, x: &[f32]) -> usize {
        assert_eq!(
            x.len() % self.shape.dim(),
            0,
            "input length {} is not a multiple of the image size {}",
            x.len(),
            self.shape.dim()
        );
        x.len() / self.shape.dim()
    }

    fn indices(&self, layer: usize, batch: usize) -> Indices {
        let mut cache = self.index_cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry((layer, batch))
            .or_insert_with(|| {
                let idx = match self.layers[layer] {
                    Layer::Conv { h, w, k, .. } => arch::conv_indices(batch, h, w, k),
                    Layer::Pool { h, w, .. } => arch::pool_indices(batch, h, w),
                    Layer::Dense { .. } => unreachable!("dense layers gather nothing"),
                };
                let len = idx.len();
                self.dev.tensor_from_vec(idx, (len,))
            })
            .clone()
    }

    fn forward<Tp: Tape<f32, Cpu>>(&self, x: Matrix<Tp>, params: Vec<Flat<Tp>>) -> Matrix<Tp> {
        let batch = x.shape().0;
        let mut params = params.into_iter();
        let mut next = || params.next().expect("one tensor per parameter");
        let mut act = x;
        for (li, layer) in self.layers.iter().enumerate() {
            act = match *layer {
                Layer::Dense { inp, out, relu } => {
                    let w = next().reshape_like(&(inp, out));
                    let b = next();
                    let z = act.reshape_like(&(batch, inp)).matmul(w) + b.broadcast_like::<_, Axis<0>>(&(batch, out));
                    if relu {
                        z.relu()
                    } else {
                        z
                    }
                }
                Layer::Conv { h, w, cin, cout, k } => {
                    let pixels = batch * h * w;
                    let weights = next();
                    let bias = next();
                    conv_same(
                        &self.dev,
                        act.reshape_like(&(pixels, cin)),
                        self.indices(li, batch),
                        weights.reshape_like(&(k * k * cin, cout)),
                        bias,
                    )
                    .relu()
                }
                Layer::Pool { h, w, c } => {
                    let out_pixels = batch * (h / 2) * (w / 2);
                    let candidates: Matrix<Tp> = act.reshape_like(&(batch * h * w, c)).gather(self.indices(li, batch));
                    candidates
                        .reshape_like(&(4usize, out_pixels, c))
                        .max::<(usize, usize), Axis<0>>()
                }
            };
        }
        act.reshape_like(&(batch, self.classes))
    }

    /// Forward and backward for `loss`, the loss gradient scaled by `scale`.
    /// Returns the logits, the per-example losses and the gradients.
    fn backward(
        &self,
        x: &[f32],
        loss: &dyn Loss,
        scale: f32,
    ) -> (Vec<f32>, Vec<f32>, Gradients<f32, Cpu>, Matrix<NoneTape>) {
        let batch = self.batch_of(x);
        let x_leaf: Matrix<NoneTape> = self.dev.tensor_from_vec(x.to_vec(), (batch, self.shape.dim()));
        let params: Vec<Flat<Taped>> = self.params.iter().map(|p| p.clone().leaky_traced()).collect();
        let logits = self.forward(x_leaf.clone().leaky_traced(), params);
        let values = logits.as_vec();
        let (losses, mut dlogits) = loss.eval(&values, self.classes);
        if scale != 1.0 {
            dlogits.iter_mut().for_each(|g| *g *= scale);
        }
        let dlogits = self.dev.tensor_from_vec(dlogits, (batch, self.classes));
        // d/dθ sum(logits * dlogits) is the chain rule's next step.
        let grads = (logits * dlogits).sum::<Rank0, _>().backward();
        (values, losses, grads, x_leaf)
    }

    fn host_parameters(&self) -> Vec<Vec<f32>> {
        self.params.iter().map(|p| p.as_vec()).collect()
    }
}

/// Same-padded stride-1 convolution of `(pixels, cin)` activations by
/// im2col: gather every pixel's `k x k` neighbourhood (the appended zero row
/// stands for the padding), then one matmul with `(k*k*cin, cout)` weights.
fn conv_same<Tp: Tape<f32, Cpu>>(
    dev: &Cpu,
    act: Matrix<Tp>,
    indices: Indices,
    weights: Matrix<Tp>,
    bias: Flat<Tp>,
) -> Matrix<Tp> {
    let (pixels, cin) = *act.shape();
    let (patch, cout) = *weights.shape();
    let zero_row = dev.zeros_like(&(1usize, cin)).retaped::<Tp>();
    let padded = (act, zero_row).concat_along(Axis::<0>);
    let columns: Matrix<Tp> = padded.gather(indices);
    columns.reshape_like(&(pixels, patch)).matmul(weights) + bias.broadcast_like::<_, Axis<0>>(&(pixels, cout))
}

/// A direct same-padded convolution, NHWC, weights `(k, k, cin, cout)`: the
/// reference the im2col path is tested against.
#[allow(clippy::too_many_arguments)]
pub fn naive_conv2d(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    batch: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    k: usize,
) -> Vec<f32> {
    let pad = (k / 2) as isize;
    let mut out = vec![0.0; batch * h * w * cout];
    for b in 0..batch {
        for oy in 0..h {
            for ox in 0..w {
                for co in 0..cout {
                    let mut acc = bias[co];
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = oy as isize + ky as isize - pad;
                            let ix = ox as isize + kx as isize - pad;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            for ci in 0..cin {
                                let xv = x[((b * h + iy as usize) * w + ix as usize) * cin + ci];
                                acc += xv * weights[((ky * k + kx) * cin + ci) * cout + co];
                            }
                        }
                    }
                    out[((b * h + oy) * w + ox) * cout + co] = acc;
                }
            }
        }
    }
    out
}

impl Model for Net {
    fn image_shape(&self) -> Shape {
        self.shape
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn logits(&self, x: &[f32]) -> Vec<f32> {
        let batch = self.batch_of(x);
        let x = self.dev.tensor_from_vec(x.to_vec(), (batch, self.shape.dim()));
        self.forward(x, self.params.clone()).as_vec()
    }

    fn input_grad(&self, x: &[f32], loss: &dyn Loss) -> (Vec<f32>, Vec<f32>) {
        let (logits, _, grads, x_leaf) = self.backward(x, loss, 1.0);
        (logits, grads.get(&x_leaf).as_vec())
    }
}

impl Classifier for Net {
    fn train_step(&mut self, x: &[f32], loss: &dyn Loss, optimizer: &Optimizer) -> f32 {
        let batch = self.batch_of(x);
        let (_, losses, grads, _) = self.backward(x, loss, 1.0 / batch as f32);
        // The update runs on host copies: dfdx's own optimizers are left
        // out so that both engines share one implementation of each.
        let mut values = self.host_parameters();
        let gradients: Vec<Vec<f32>> = self.params.iter().map(|p| grads.get(p).as_vec()).collect();
        let tensors = values.iter_mut().map(Vec::as_mut_slice);
        optimizer.update(
            &mut self.optimizer_state,
            tensors.zip(gradients.iter().map(Vec::as_slice)),
        );
        for (param, values) in self.params.iter_mut().zip(&values) {
            param.copy_from(values);
        }
        losses.iter().sum::<f32>() / batch as f32
    }

    fn boxed_clone(&self) -> Box<dyn Classifier> {
        // A fresh device: clones of a dfdx device would share one RNG.
        let mut copy = Net::from_parts(
            Cpu::default(),
            self.layers.clone(),
            &self.host_parameters(),
            self.shape,
            self.classes,
        );
        copy.optimizer_state = self.optimizer_state.clone();
        Box::new(copy)
    }

    fn parameters(&self) -> Vec<f32> {
        self.host_parameters().concat()
    }

    fn set_parameters(&mut self, flat: &[f32]) {
        let total: usize = self.params.iter().map(|p| p.shape().0).sum();
        assert_eq!(flat.len(), total, "a parameter list of another model");
        let mut rest = flat;
        for p in &mut self.params {
            let (head, tail) = rest.split_at(p.shape().0);
            p.copy_from(head);
            rest = tail;
        }
    }

    fn optimizer_state(&self) -> OptimizerState {
        self.optimizer_state.clone()
    }

    fn set_optimizer_state(&mut self, state: OptimizerState) {
        self.optimizer_state = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::{conv_indices, pool_indices};
    use crate::model::{accuracy, CrossEntropy, OptimizerConfig};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.gen_range(0.0..1.0)).collect()
    }

    #[test]
    fn im2col_convolution_matches_naive_convolution() {
        let (batch, h, w, cin, cout, k) = (2, 6, 5, 3, 4, 5);
        let x = random(batch * h * w * cin, 1);
        let weights = random(k * k * cin * cout, 2);
        let bias = random(cout, 3);
        let dev = Cpu::default();
        let idx = conv_indices(batch, h, w, k);
        let n = idx.len();
        let out = conv_same::<NoneTape>(
            &dev,
            dev.tensor_from_vec(x.clone(), (batch * h * w, cin)),
            dev.tensor_from_vec(idx, (n,)),
            dev.tensor_from_vec(weights.clone(), (k * k * cin, cout)),
            dev.tensor_from_vec(bias.clone(), (cout,)),
        )
        .as_vec();
        let expected = naive_conv2d(&x, &weights, &bias, batch, h, w, cin, cout, k);
        assert_eq!(out.len(), expected.len());
        for (a, b) in out.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn pooling_takes_the_max_of_each_2x2_block() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let dev = Cpu::default();
        let idx = pool_indices(1, 4, 4);
        let n = idx.len();
        let t: Matrix<NoneTape> = dev.tensor_from_vec(x, (16, 1));
        let g: Matrix<NoneTape> = t.gather(dev.tensor_from_vec(idx, (n,)));
        let pooled = g
            .reshape_like(&(4usize, 4usize, 1usize))
            .max::<(usize, usize), Axis<0>>();
        assert_eq!(pooled.as_vec(), vec![5.0, 7.0, 13.0, 15.0]);
    }

    /// Central differences on a few coordinates of the input and of every
    /// parameter tensor: checks the whole backward pass, gather, concat and
    /// max included.
    fn check_gradients(config: ModelConfig, rows: usize, cols: usize) {
        let net = Net::new(&config, crate::data::Shape::gray(rows, cols), 3, 11);
        let batch = 2;
        let x = random(batch * rows * cols, 5);
        let labels = [0u8, 2];
        let loss = CrossEntropy { labels: &labels };
        let total = |net: &Net, x: &[f32]| -> f64 {
            let (losses, _) = loss.eval(&net.logits(x), 3);
            losses.iter().map(|&l| l as f64).sum()
        };
        let (_, dx) = net.input_grad(&x, &loss);
        let h = 1e-2;
        for i in [0, 7, rows * cols + 3, x.len() - 1] {
            let mut up = x.clone();
            let mut down = x.clone();
            up[i] += h;
            down[i] -= h;
            let numeric = (total(&net, &up) - total(&net, &down)) / (2.0 * h as f64);
            assert!(
                (numeric - dx[i] as f64).abs() < 2e-2 + 0.05 * numeric.abs(),
                "input {i}: numeric {numeric} vs {}",
                dx[i]
            );
        }
        // Weight gradients: one SGD step with lr 1 and no momentum moves
        // each parameter by exactly minus its mean-loss gradient.
        let before = net.host_parameters();
        let mut stepped = Net::from_parts(Cpu::default(), net.layers.clone(), &before, net.shape, net.classes);
        stepped.train_step(&x, &loss, &Optimizer::constant(OptimizerConfig::sgd(1.0, 0.0, 0.0)));
        let after = stepped.host_parameters();
        for (t, (b, a)) in before.iter().zip(&after).enumerate() {
            for i in [0, b.len() / 2, b.len() - 1] {
                let analytic = (b[i] - a[i]) as f64 * batch as f64;
                let mut up = before.clone();
                let mut down = before.clone();
                up[t][i] += h;
                down[t][i] -= h;
                let net_up = Net::from_parts(Cpu::default(), net.layers.clone(), &up, net.shape, net.classes);
                let net_down = Net::from_parts(Cpu::default(), net.layers.clone(), &down, net.shape, net.classes);
                let numeric = (total(&net_up, &x) - total(&net_down, &x)) / (2.0 * h as f64);
                assert!(
                    (numeric - analytic).abs() < 2e-2 + 0.05 * numeric.abs(),
                    "param {t}[{i}]: numeric {numeric} vs {analytic}"
                );
            }
        }
    }

    #[test]
    fn mlp_gradients_match_finite_differences() {
        check_gradients(ModelConfig::mlp(vec![16, 8]), 4, 5);
    }

    #[test]
    fn cnn_gradients_match_finite_differences() {
        check_gradients(ModelConfig::cnn([3, 4], 8), 8, 8);
    }

    #[test]
    fn training_fits_a_small_separable_problem() {
        // Class = which half of the image is brighter.
        let (rows, cols, n) = (4, 4, 128);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let label = rng.gen_range(0..2u8);
            for p in 0..rows * cols {
                let bright = (p < 8) == (label == 0);
                x.push(if bright {
                    rng.gen_range(0.5..1.0)
                } else {
                    rng.gen_range(0.0..0.5)
                });
            }
            y.push(label);
        }
        let mut net = Net::new(&ModelConfig::mlp(vec![16]), crate::data::Shape::gray(rows, cols), 2, 1);
        let before = accuracy(&net, &x, &y);
        for _ in 0..30 {
            net.train_step(
                &x,
                &CrossEntropy { labels: &y },
                &Optimizer::constant(OptimizerConfig::default()),
            );
        }
        let after = accuracy(&net, &x, &y);
        assert!(after > 0.95 && after > before, "accuracy {before} -> {after}");
    }

    #[test]
    fn clones_are_independent() {
        let mut net = Net::new(&ModelConfig::mlp(vec![4]), crate::data::Shape::gray(2, 2), 2, 3);
        let copy = net.boxed_clone();
        assert_eq!(copy.parameters(), net.parameters());
        net.train_step(
            &[0.1, 0.2, 0.3, 0.4],
            &CrossEntropy { labels: &[1] },
            &Optimizer::constant(OptimizerConfig::default()),
        );
        assert_ne!(copy.parameters(), net.parameters());
    }
}
