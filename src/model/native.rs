//! The native engine: forward and backward passes written for the layer
//! kinds redqueen ships, on `gemm` with buffers reused across calls.
//!
//! Against dfdx it saves what a general autodiff cannot: an input gradient
//! computes no weight gradients, a training step no input gradient, no
//! tensor is allocated per op, and the matrix multiply uses 512-bit kernels
//! where the CPU has them. `tests` check it against the dfdx engine.

use std::sync::Mutex;

use super::arch::{self, Layer};
use super::conv::{self, Geometry};
use super::kernels::{self, broadcast_rows, matmul, View};
use super::{Classifier, Loss, Model, ModelConfig, Optimizer, OptimizerState};
use crate::data::Shape;

pub struct Native {
    layers: Vec<Layer>,
    /// Per parameter tensor, in layer order (weight, then bias).
    params: Vec<Vec<f32>>,
    /// Carried for the optimizer, never read here (see `optim`).
    optimizer_state: OptimizerState,
    shape: Shape,
    classes: usize,
    /// Buffers reused across calls (a model is used by one match at a time).
    workspace: Mutex<Workspace>,
}

#[derive(Default)]
struct Workspace {
    /// `acts[i + 1]` is the output of layer `i`; `acts[0]` stays empty (the
    /// layers read the caller's input, which is not copied).
    acts: Vec<Vec<f32>>,
    /// A convolution's weight-gradient partial sums.
    weight_grad_slots: Vec<f32>,
    /// `grads[i]` is d loss / d (the input of layer `i`); `grads[n]` the
    /// logits' gradient. One buffer per boundary, like `acts`: each keeps
    /// its length from call to call, so none is zero-filled again (two
    /// buffers swapped layer by layer grew and refilled about 8 MB per
    /// train step of the small CNN at batch 128).
    grads: Vec<Vec<f32>>,
    param_grads: Vec<Vec<f32>>,
    /// Transposed copies of the weight matrices (by parameter index), while
    /// `transposed_valid`: a matmul by a transposed view is up to twice as
    /// slow, and attacks take many input gradients between weight updates.
    transposed: Vec<Vec<f32>>,
    transposed_valid: bool,
}

/// `W^T` of parameter `p` (a `rows x cols` matrix) as a view: from the
/// transposed cache where it is valid, else a transposed view of `w`.
fn weight_t<'a>(transposed: &'a [Vec<f32>], valid: bool, w: &'a [f32], p: usize, rows: usize, cols: usize) -> View<'a> {
    if valid {
        View::new(&transposed[p], cols, rows)
    } else {
        View::new(w, rows, cols).t()
    }
}

fn resize(buffer: &mut Vec<f32>, len: usize) {
    buffer.resize(len, 0.0);
}

impl Native {
    pub fn new(config: &ModelConfig, shape: Shape, classes: usize, seed: u64) -> Native {
        let layers = arch::layers(config, shape, classes);
        let params = arch::init_parameters(&layers, seed);
        Native::with_parameters(layers, params, shape, classes)
    }

    pub(crate) fn with_parameters(layers: Vec<Layer>, params: Vec<Vec<f32>>, shape: Shape, classes: usize) -> Native {
        Native {
            optimizer_state: OptimizerState::default(),
            layers,
            params,
            shape,
            classes,
            workspace: Mutex::new(Workspace::default()),
        }
    }

    fn batch_of(&self, x: &[f32]) -> usize {
        assert_eq!(x.len() % self.shape.dim(), 0, "input is not a whole number of images");
        x.len() / self.shape.dim()
    }

    /// Forward pass; the logits end up in `ws.acts.last()`.
    fn forward(&self, x: &[f32], ws: &mut Workspace) {
        let batch = self.batch_of(x);
        let n = self.layers.len();
        ws.acts.resize_with(n + 1, Vec::new);
        let mut p = 0;
        for (i, layer) in self.layers.iter().enumerate() {
            let (before, after) = ws.acts.split_at_mut(i + 1);
            let input: &[f32] = if i == 0 { x } else { &before[i] };
            let output = &mut after[0];
            match *layer {
                Layer::Dense { inp, out, relu } => {
                    resize(output, batch * out);
                    let (w, b) = (&self.params[p], &self.params[p + 1]);
                    p += 2;
                    broadcast_rows(output, b);
                    matmul(output, View::new(input, batch, inp), View::new(w, inp, out), true);
                    if relu {
                        relu_in_place(output);
                    }
                }
                Layer::Conv { h, w, cin, cout, k } => {
                    resize(output, batch * h * w * cout);
                    let (weights, bias) = (&self.params[p], &self.params[p + 1]);
                    conv::forward(input, weights, bias, output, Geometry { h, w, cin, cout, k });
                    p += 2;
                    if !matches!(self.layers.get(i + 1), Some(Layer::Pool { .. })) {
                        relu_in_place(output);
                    }
                }
                Layer::Pool { h, w, c } => {
                    let out_len = batch * (h / 2) * (w / 2) * c;
                    resize(output, out_len);
                    conv::max_pool_relu(input, output, h, w, c);
                }
            }
        }
    }

    /// Backward pass from `dlogits` (in `ws.grads[n]`) through the forward
    /// pass of `x` just taken. With `param_grads` it fills `ws.param_grads`;
    /// with `want_input` it leaves d/dx in `ws.grads[0]`.
    /// One function on purpose: the layers run back to back over one
    /// workspace, and splitting them would hand its buffers around by hand.
    fn backward(&self, x: &[f32], ws: &mut Workspace, batch: usize, param_grads: bool, want_input: bool) {
        if param_grads {
            ws.param_grads.resize_with(self.params.len(), Vec::new);
            for (g, p) in ws.param_grads.iter_mut().zip(&self.params) {
                resize(g, p.len());
            }
        }
        let mut p = self.params.len();
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let need_input = i > 0 || want_input;
            let input: &[f32] = if i == 0 { x } else { &ws.acts[i] };
            let output = &ws.acts[i + 1];
            // d loss / d output (the ReLU's backward edits it in place), and
            // the buffer for d loss / d input, which every layer overwrites.
            let (below, above) = ws.grads.split_at_mut(i + 1);
            let (grad, grad_in) = (&mut above[0], &mut below[i]);
            match *layer {
                Layer::Dense { inp, out, relu } => {
                    p -= 2;
                    if relu {
                        relu_backward(grad, output);
                    }
                    if param_grads {
                        let (dw, db) = two_mut(&mut ws.param_grads, p);
                        matmul(dw, View::new(input, batch, inp).t(), View::new(grad, batch, out), false);
                        column_sums(db, grad, out);
                    }
                    if need_input {
                        resize(grad_in, batch * inp);
                        matmul(
                            grad_in,
                            View::new(grad, batch, out),
                            weight_t(&ws.transposed, ws.transposed_valid, &self.params[p], p, inp, out),
                            false,
                        );
                    }
                }
                Layer::Conv { h, w, cin, cout, k } => {
                    p -= 2;
                    let geometry = Geometry { h, w, cin, cout, k };
                    // Before a pool, the pool's backward applied the ReLU.
                    if !matches!(self.layers.get(i + 1), Some(Layer::Pool { .. })) {
                        relu_backward(grad, output);
                    }
                    if param_grads {
                        column_sums(&mut ws.param_grads[p + 1], grad, cout);
                        conv::weight_grad(input, grad, &mut ws.param_grads[p], &mut ws.weight_grad_slots, geometry);
                    }
                    if need_input {
                        resize(grad_in, batch * h * w * cin);
                        let patch = k * k * cin;
                        let weights_t = weight_t(&ws.transposed, ws.transposed_valid, &self.params[p], p, patch, cout);
                        conv::input_grad(grad, weights_t, grad_in, geometry);
                    }
                }
                Layer::Pool { h, w, c } => {
                    resize(grad_in, batch * h * w * c);
                    conv::max_pool_relu_backward(grad, input, output, grad_in, h, w, c);
                }
            }
        }
    }

    /// Refresh the transposed weights (once per weight update).
    fn transpose_weights(&self, ws: &mut Workspace) {
        if ws.transposed_valid {
            return;
        }
        ws.transposed.resize_with(self.params.len(), Vec::new);
        let mut p = 0;
        for layer in &self.layers {
            for (rows, cols) in layer.parameter_shapes().into_iter().take(1) {
                transpose_into(&self.params[p], rows, cols, &mut ws.transposed[p]);
            }
            p += layer.parameter_shapes().len();
        }
        ws.transposed_valid = true;
    }

    /// Forward, loss, and backward; returns the per-example losses.
    fn run(
        &self,
        x: &[f32],
        loss: &dyn Loss,
        scale: f32,
        param_grads: bool,
        want_input: bool,
        ws: &mut Workspace,
    ) -> Vec<f32> {
        let batch = self.batch_of(x);
        self.forward(x, ws);
        let (losses, mut dlogits) = loss.eval(ws.acts.last().expect("at least one layer"), self.classes);
        if scale != 1.0 {
            dlogits.iter_mut().for_each(|g| *g *= scale);
        }
        ws.grads.resize_with(self.layers.len() + 1, Vec::new);
        let last = ws.grads.last_mut().expect("a boundary after the last layer");
        last.clear();
        last.extend_from_slice(&dlogits);
        self.backward(x, ws, batch, param_grads, want_input);
        losses
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Workspace> {
        self.workspace.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn layers(&self) -> &[Layer] {
        &self.layers
    }

    #[cfg(test)]
    pub(crate) fn parameter_tensors(&self) -> &[Vec<f32>] {
        &self.params
    }

    /// The mean-loss gradient of every parameter tensor (for tests).
    #[cfg(test)]
    pub(crate) fn parameter_gradients(&self, x: &[f32], loss: &dyn Loss) -> Vec<Vec<f32>> {
        let mut ws = self.lock();
        let batch = self.batch_of(x);
        self.run(x, loss, 1.0 / batch as f32, true, false, &mut ws);
        ws.param_grads.clone()
    }
}

/// Mutable access to parameter gradients `p` (weight) and `p + 1` (bias).
fn two_mut(grads: &mut [Vec<f32>], p: usize) -> (&mut [f32], &mut [f32]) {
    let (a, b) = grads.split_at_mut(p + 1);
    (&mut a[p], &mut b[0])
}

/// `dst` (cols x rows) = the transpose of `m` (rows x cols). Bands of
/// `BAND` destination rows (source columns) run on the engine's threads;
/// a band walks the source `BLOCK` rows at a time, so that its reads stay
/// on a few pages and each destination row is written in runs of `BLOCK`
/// floats. It runs after every weight update that an attack follows (PGD
/// training): a 3136x1024 layer took 10.3 ms with 32x32 tiles on one core,
/// 6.2 ms with bands of 16 columns and no blocks, 2.1 ms as here (two
/// threads, the Xeon).
fn transpose_into(m: &[f32], rows: usize, cols: usize, dst: &mut Vec<f32>) {
    const BAND: usize = 64;
    const BLOCK: usize = 16;
    resize(dst, rows * cols);
    if rows == 0 {
        return;
    }
    kernels::for_chunks(dst, BAND * rows, |band, out| {
        let first = band * BAND;
        let width = out.len() / rows;
        for r0 in (0..rows).step_by(BLOCK) {
            let block = &m[r0 * cols..(r0 + BLOCK).min(rows) * cols];
            for c in 0..width {
                let column = &mut out[c * rows + r0..];
                for (d, row) in column.iter_mut().zip(block.chunks_exact(cols)) {
                    *d = row[first + c];
                }
            }
        }
    });
}

fn relu_in_place(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
}

/// Zero the gradient where the ReLU output was zero (a select, not a
/// conditional store, so that it vectorizes).
fn relu_backward(grad: &mut [f32], output: &[f32]) {
    for (g, &o) in grad.iter_mut().zip(output) {
        *g = if o <= 0.0 { 0.0 } else { *g };
    }
}

/// `dst[j] = sum over rows of m[row, j]`, in row order (deterministic).
fn column_sums(dst: &mut [f32], m: &[f32], cols: usize) {
    dst.fill(0.0);
    for row in m.chunks(cols) {
        for (d, v) in dst.iter_mut().zip(row) {
            *d += v;
        }
    }
}

impl Model for Native {
    fn image_shape(&self) -> Shape {
        self.shape
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn logits(&self, x: &[f32]) -> Vec<f32> {
        let mut ws = self.lock();
        let ws = &mut *ws;
        kernels::in_pool(|| {
            self.forward(x, ws);
            ws.acts.last().expect("at least one layer").clone()
        })
    }

    fn input_grad(&self, x: &[f32], loss: &dyn Loss) -> (Vec<f32>, Vec<f32>) {
        let mut ws = self.lock();
        let ws = &mut *ws;
        kernels::in_pool(|| {
            self.transpose_weights(ws);
            self.run(x, loss, 1.0, false, true, ws);
            (ws.acts.last().expect("at least one layer").clone(), ws.grads[0].clone())
        })
    }

    fn input_grad_into(&self, x: &[f32], loss: &dyn Loss, grad: &mut Vec<f32>) {
        let mut ws = self.lock();
        let ws = &mut *ws;
        kernels::in_pool(|| {
            self.transpose_weights(ws);
            self.run(x, loss, 1.0, false, true, ws);
        });
        // A swap, not a copy: the caller's old buffer (usually of the same
        // length) becomes the workspace's, which the next pass overwrites.
        std::mem::swap(&mut ws.grads[0], grad);
    }
}

impl Classifier for Native {
    fn train_step(&mut self, x: &[f32], loss: &dyn Loss, optimizer: &Optimizer) -> f32 {
        let batch = self.batch_of(x);
        let mut ws = std::mem::take(self.workspace.get_mut().unwrap_or_else(|e| e.into_inner()));
        let losses = kernels::in_pool(|| {
            let losses = self.run(x, loss, 1.0 / batch as f32, true, false, &mut ws);
            let tensors = self.params.iter_mut().map(Vec::as_mut_slice);
            optimizer.update(
                &mut self.optimizer_state,
                tensors.zip(ws.param_grads.iter().map(Vec::as_slice)),
            );
            losses
        });
        ws.transposed_valid = false;
        *self.workspace.get_mut().unwrap_or_else(|e| e.into_inner()) = ws;
        losses.iter().sum::<f32>() / batch as f32
    }

    fn boxed_clone(&self) -> Box<dyn Classifier> {
        let mut copy = Native::with_parameters(self.layers.clone(), self.params.clone(), self.shape, self.classes);
        copy.optimizer_state = self.optimizer_state.clone();
        Box::new(copy)
    }

    fn parameters(&self) -> Vec<f32> {
        self.params.concat()
    }

    fn set_parameters(&mut self, flat: &[f32]) {
        let total: usize = self.params.iter().map(Vec::len).sum();
        assert_eq!(flat.len(), total, "a parameter list of another model");
        let mut rest = flat;
        for p in &mut self.params {
            let (head, tail) = rest.split_at(p.len());
            p.copy_from_slice(head);
            rest = tail;
        }
        self.workspace
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .transposed_valid = false;
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
    use crate::model::{CrossEntropy, Net, OptimizerConfig};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.gen_range(0.0..1.0)).collect()
    }

    fn assert_close(what: &str, a: &[f32], b: &[f32], tolerance: f32) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tolerance * scale,
                "{what}[{i}]: native {x} vs dfdx {y} (scale {scale})"
            );
        }
    }

    /// The native engine against the dfdx engine on the same parameters:
    /// logits, input gradients and weight gradients agree to 1e-4 of the
    /// largest magnitude (float32 sums in different orders).
    fn agree_with_dfdx(config: ModelConfig, rows: usize, cols: usize, batch: usize) {
        agree_on(config, Shape::gray(rows, cols), batch);
    }

    fn agree_on(config: ModelConfig, shape: Shape, batch: usize) {
        let native = Native::new(&config, shape, 10, 3);
        let reference = Net::with_parameters(native.layers().to_vec(), native.parameter_tensors(), shape, 10);
        let x = random(batch * shape.dim(), 4);
        let labels: Vec<u8> = (0..batch).map(|i| (i * 7 % 10) as u8).collect();
        let loss = CrossEntropy { labels: &labels };

        assert_close("logits", &native.logits(&x), &reference.logits(&x), 1e-4);
        let (_, native_dx) = native.input_grad(&x, &loss);
        let (_, reference_dx) = reference.input_grad(&x, &loss);
        assert_close("input gradient", &native_dx, &reference_dx, 1e-4);

        // Weight gradients: dfdx's, read off one plain SGD step of lr 1.
        let mut stepped = reference.boxed_clone();
        let before = reference.parameters();
        stepped.train_step(&x, &loss, &Optimizer::constant(OptimizerConfig::sgd(1.0, 0.0, 0.0)));
        let reference_grads: Vec<f32> = before.iter().zip(stepped.parameters()).map(|(b, a)| b - a).collect();
        let native_grads = native.parameter_gradients(&x, &loss).concat();
        assert_close("weight gradients", &native_grads, &reference_grads, 1e-3);
    }

    #[test]
    fn mlp_agrees_with_dfdx() {
        agree_with_dfdx(ModelConfig::mlp(vec![64, 32]), 28, 28, 16);
    }

    #[test]
    fn cnn_agrees_with_dfdx() {
        agree_with_dfdx(ModelConfig::cnn([4, 8], 32), 28, 28, 3);
    }

    /// Three input channels and a rectangle: the general convolution path
    /// runs on the input layer, and rows and columns are not exchangeable.
    #[test]
    fn rgb_rectangles_agree_with_dfdx() {
        let shape = Shape {
            channels: 3,
            rows: 12,
            cols: 16,
        };
        agree_on(ModelConfig::cnn([4, 6], 16), shape, 3);
        agree_on(ModelConfig::mlp(vec![16]), shape, 5);
    }

    #[test]
    fn cnn_agrees_with_dfdx_with_a_wide_layer() {
        // 256 channels into the second convolution; batch 11 fills some
        // weight-gradient slots with two images, others with one.
        agree_with_dfdx(ModelConfig::cnn([256, 4], 8), 28, 28, 11);
    }

    /// `steps` training steps of `optimizer` (its schedule over the run) on
    /// both engines from the same weights: the losses and the parameters
    /// after must agree.
    fn steps_agree_with_dfdx(config: ModelConfig, optimizer: OptimizerConfig, steps: usize, batch: usize) {
        steps_agree_on(config, Shape::MNIST, optimizer, steps, batch);
    }

    fn steps_agree_on(config: ModelConfig, shape: Shape, optimizer: OptimizerConfig, steps: usize, batch: usize) {
        let mut native = Native::new(&config, shape, 10, 5);
        let mut reference: Box<dyn Classifier> = Box::new(Net::with_parameters(
            native.layers().to_vec(),
            native.parameter_tensors(),
            shape,
            10,
        ));
        for step in 0..steps {
            let opt = optimizer.at(step, steps);
            let x = random(batch * shape.dim(), 10 + step as u64);
            let labels: Vec<u8> = (0..batch).map(|i| ((i + step) % 10) as u8).collect();
            let a = native.train_step(&x, &CrossEntropy { labels: &labels }, &opt);
            let b = reference.train_step(&x, &CrossEntropy { labels: &labels }, &opt);
            assert!((a - b).abs() < 1e-4, "step {step}: loss {a} vs {b}");
        }
        assert_close(
            &format!("parameters after {steps} steps"),
            &native.parameters(),
            &reference.parameters(),
            1e-4,
        );
    }

    #[test]
    fn training_steps_agree_with_dfdx_over_several_steps() {
        let config = ModelConfig::mlp(vec![32]);
        steps_agree_with_dfdx(config, OptimizerConfig::sgd(0.05, 0.9, 1e-4), 5, 8);
    }

    #[test]
    fn sgd_steps_agree_with_dfdx_on_an_rgb_cnn() {
        let shape = Shape {
            channels: 3,
            rows: 16,
            cols: 12,
        };
        steps_agree_on(
            ModelConfig::cnn([4, 8], 16),
            shape,
            OptimizerConfig::sgd(0.05, 0.9, 0.0),
            4,
            6,
        );
    }

    #[test]
    fn adam_steps_agree_with_dfdx_on_a_cnn() {
        let config = ModelConfig::cnn([4, 8], 16);
        let mut adam = OptimizerConfig::adam(1e-3).with_schedule(crate::model::Schedule::Cosine);
        adam.weight_decay = 1e-4;
        steps_agree_with_dfdx(config, adam, 4, 4);
    }

    #[test]
    fn set_parameters_replaces_every_weight_and_refreshes_the_cache() {
        let config = ModelConfig::mlp(vec![8]);
        let mut a = Native::new(&config, crate::data::Shape::gray(4, 4), 3, 1);
        let b = Native::new(&config, crate::data::Shape::gray(4, 4), 3, 2);
        let x = random(2 * 16, 3);
        let _ = a.input_grad(&x, &CrossEntropy { labels: &[0, 1] }); // fills the transposed cache
        a.set_parameters(&b.parameters());
        assert_eq!(a.parameters(), b.parameters());
        assert_eq!(
            a.input_grad(&x, &CrossEntropy { labels: &[0, 1] }),
            b.input_grad(&x, &CrossEntropy { labels: &[0, 1] })
        );
    }

    #[test]
    fn input_grad_into_gives_input_grads_gradient_whatever_the_buffer_held() {
        let native = Native::new(&ModelConfig::cnn([2, 3], 8), crate::data::Shape::gray(8, 8), 10, 1);
        let labels = [3, 1, 4, 1, 5];
        let (x, y) = (random(5 * 64, 2), random(5 * 64, 3));
        // Stale contents of other lengths, then buffers the engine handed back.
        let mut grad = vec![7.0; 3];
        for input in [&x, &y, &x, &x[..64]] {
            let batch = input.len() / 64;
            let loss = CrossEntropy {
                labels: &labels[..batch],
            };
            native.input_grad_into(input, &loss, &mut grad);
            assert_eq!(grad, native.input_grad(input, &loss).1);
        }
    }

    #[test]
    fn transposes_match_the_definition_on_one_thread_and_two() {
        for (rows, cols) in [(3136, 300), (100, 130), (7, 5), (1, 64), (64, 1), (0, 3), (3, 0)] {
            let m: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            for threads in [1, 2] {
                // A stale buffer of another length, as the workspace keeps.
                let mut t = vec![-1.0; 17];
                kernels::with_threads(threads, || transpose_into(&m, rows, cols, &mut t));
                assert_eq!(t.len(), rows * cols);
                for (r, c) in (0..rows).flat_map(|r| (0..cols).map(move |c| (r, c))) {
                    assert_eq!(t[c * rows + r], m[r * cols + c], "{rows}x{cols}, {threads} thread(s)");
                }
            }
        }
    }

    #[test]
    fn batches_of_any_size_reuse_the_workspace_correctly() {
        let native = Native::new(&ModelConfig::cnn([2, 3], 8), crate::data::Shape::gray(8, 8), 10, 1);
        let x = random(5 * 64, 2);
        let all = native.logits(&x);
        let one = native.logits(&x[..64]);
        assert_close("first image alone", &one, &all[..10], 1e-5);
        assert_eq!(native.logits(&x), all);
    }
}
