//! The native engine: forward and backward passes written for the layer
//! kinds redqueen ships, on `gemm` with buffers reused across calls.
//!
//! Against dfdx it saves what a general autodiff cannot: an input gradient
//! computes no weight gradients, a training step no input gradient, no
//! tensor is allocated per op, and the matrix multiply uses 512-bit kernels
//! where the CPU has them. `tests` check it against the dfdx engine.

use std::sync::Mutex;

use super::arch::{self, Layer};
use super::kernels::{self, for_chunks, matmul, View};
use super::{Classifier, Loss, Model, ModelConfig, Sgd};

/// A pad entry in a convolution template.
const PAD: u32 = u32::MAX;

pub struct Native {
    layers: Vec<Layer>,
    /// Per parameter tensor, in layer order (weight, then bias).
    params: Vec<Vec<f32>>,
    velocity: Vec<Vec<f32>>,
    /// Per layer: for a convolution, the input pixel of every (output pixel,
    /// kernel tap) of one image, or PAD.
    templates: Vec<Vec<u32>>,
    input_dim: usize,
    classes: usize,
    /// Buffers reused across calls (a model is used by one match at a time).
    workspace: Mutex<Workspace>,
}

#[derive(Default)]
struct Workspace {
    /// `acts[0]` is the input, `acts[i + 1]` the output of layer `i`.
    acts: Vec<Vec<f32>>,
    /// im2col columns of a chunk of images.
    columns: Vec<f32>,
    /// Per layer: where each pooled value came from.
    argmax: Vec<Vec<u32>>,
    grad: Vec<f32>,
    grad_in: Vec<f32>,
    grad_columns: Vec<f32>,
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
    pub fn new(config: &ModelConfig, rows: usize, cols: usize, classes: usize, seed: u64) -> Native {
        let layers = arch::layers(config, rows, cols, classes);
        let params = arch::init_parameters(&layers, seed);
        Native::with_parameters(layers, params, rows * cols, classes)
    }

    pub(crate) fn with_parameters(
        layers: Vec<Layer>,
        params: Vec<Vec<f32>>,
        input_dim: usize,
        classes: usize,
    ) -> Native {
        let templates = layers
            .iter()
            .map(|layer| match *layer {
                Layer::Conv { h, w, k, .. } => arch::conv_indices(1, h, w, k)
                    .into_iter()
                    .map(|i| if i == h * w { PAD } else { i as u32 })
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        Native {
            velocity: params.iter().map(|p| vec![0.0; p.len()]).collect(),
            layers,
            params,
            templates,
            input_dim,
            classes,
            workspace: Mutex::new(Workspace::default()),
        }
    }

    fn batch_of(&self, x: &[f32]) -> usize {
        assert_eq!(x.len() % self.input_dim, 0, "input is not a whole number of images");
        x.len() / self.input_dim
    }

    /// Forward pass; the logits end up in `ws.acts.last()`.
    fn forward(&self, x: &[f32], ws: &mut Workspace) {
        let batch = self.batch_of(x);
        let n = self.layers.len();
        ws.acts.resize_with(n + 1, Vec::new);
        ws.argmax.resize_with(n, Vec::new);
        ws.acts[0].clear();
        ws.acts[0].extend_from_slice(x);
        let mut p = 0;
        for (i, layer) in self.layers.iter().enumerate() {
            let (before, after) = ws.acts.split_at_mut(i + 1);
            let input = &before[i];
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
                    let hw = h * w;
                    let patch = k * k * cin;
                    resize(output, batch * hw * cout);
                    broadcast_rows(output, &self.params[p + 1]);
                    // A few images at a time, so the im2col columns stay in
                    // cache for the matmul that reads them.
                    let chunk = images_per_chunk(hw * patch);
                    for b0 in (0..batch).step_by(chunk) {
                        let n = chunk.min(batch - b0);
                        let columns = &mut ws.columns;
                        resize(columns, n * hw * patch);
                        im2col(&input[b0 * hw * cin..], columns, &self.templates[i], hw, cin, k * k);
                        matmul(
                            &mut output[b0 * hw * cout..(b0 + n) * hw * cout],
                            View::new(columns, n * hw, patch),
                            View::new(&self.params[p], patch, cout),
                            true,
                        );
                    }
                    p += 2;
                    if !matches!(self.layers.get(i + 1), Some(Layer::Pool { .. })) {
                        relu_in_place(output);
                    }
                }
                Layer::Pool { h, w, c } => {
                    let out_len = batch * (h / 2) * (w / 2) * c;
                    resize(output, out_len);
                    let argmax = &mut ws.argmax[i];
                    argmax.resize(out_len, 0);
                    max_pool_relu(input, output, argmax, h, w, c);
                }
            }
        }
    }

    /// Backward pass from `dlogits` (in `ws.grad`). With `param_grads` it
    /// fills `ws.param_grads`; with `want_input` it leaves d/dx in `ws.grad`.
    /// One function on purpose: the layers run back to back over one
    /// workspace, and splitting them would hand its buffers around by hand.
    fn backward(&self, ws: &mut Workspace, batch: usize, param_grads: bool, want_input: bool) {
        if param_grads {
            ws.param_grads.resize_with(self.params.len(), Vec::new);
            for (g, p) in ws.param_grads.iter_mut().zip(&self.params) {
                resize(g, p.len());
            }
        }
        let mut p = self.params.len();
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let need_input = i > 0 || want_input;
            let input = &ws.acts[i];
            let output = &ws.acts[i + 1];
            match *layer {
                Layer::Dense { inp, out, relu } => {
                    p -= 2;
                    if relu {
                        relu_backward(&mut ws.grad, output);
                    }
                    if param_grads {
                        let (dw, db) = two_mut(&mut ws.param_grads, p);
                        matmul(
                            dw,
                            View::new(input, batch, inp).t(),
                            View::new(&ws.grad, batch, out),
                            false,
                        );
                        column_sums(db, &ws.grad, out);
                    }
                    if need_input {
                        resize(&mut ws.grad_in, batch * inp);
                        matmul(
                            &mut ws.grad_in,
                            View::new(&ws.grad, batch, out),
                            weight_t(&ws.transposed, ws.transposed_valid, &self.params[p], p, inp, out),
                            false,
                        );
                        std::mem::swap(&mut ws.grad, &mut ws.grad_in);
                    }
                }
                Layer::Conv { h, w, cin, cout, k } => {
                    p -= 2;
                    let hw = h * w;
                    let patch = k * k * cin;
                    relu_backward(&mut ws.grad, output);
                    if param_grads {
                        column_sums(&mut ws.param_grads[p + 1], &ws.grad, cout);
                    }
                    if need_input {
                        resize(&mut ws.grad_in, batch * hw * cin);
                    }
                    // Chunk by chunk as in the forward pass: the columns are
                    // rebuilt (cheaper than keeping them all), and the weight
                    // gradient accumulates over chunks in a fixed order.
                    let chunk = images_per_chunk(hw * patch);
                    for b0 in (0..batch).step_by(chunk) {
                        let n = chunk.min(batch - b0);
                        let grad = &ws.grad[b0 * hw * cout..(b0 + n) * hw * cout];
                        if param_grads {
                            resize(&mut ws.columns, n * hw * patch);
                            im2col(
                                &input[b0 * hw * cin..],
                                &mut ws.columns,
                                &self.templates[i],
                                hw,
                                cin,
                                k * k,
                            );
                            matmul(
                                &mut ws.param_grads[p],
                                View::new(&ws.columns, n * hw, patch).t(),
                                View::new(grad, n * hw, cout),
                                b0 > 0,
                            );
                        }
                        if need_input {
                            resize(&mut ws.grad_columns, n * hw * patch);
                            matmul(
                                &mut ws.grad_columns,
                                View::new(grad, n * hw, cout),
                                weight_t(&ws.transposed, ws.transposed_valid, &self.params[p], p, patch, cout),
                                false,
                            );
                            col2im(
                                &ws.grad_columns,
                                &mut ws.grad_in[b0 * hw * cin..(b0 + n) * hw * cin],
                                &self.templates[i],
                                hw,
                                cin,
                                k * k,
                            );
                        }
                    }
                    if need_input {
                        std::mem::swap(&mut ws.grad, &mut ws.grad_in);
                    }
                }
                Layer::Pool { h, w, c } => {
                    resize(&mut ws.grad_in, batch * h * w * c);
                    max_pool_backward(&ws.grad, &mut ws.grad_in, &ws.argmax[i]);
                    std::mem::swap(&mut ws.grad, &mut ws.grad_in);
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
        // Copy into the kept buffer: replacing it would free and reallocate
        // the large gradient buffers on every call.
        ws.grad.clear();
        ws.grad.extend_from_slice(&dlogits);
        self.backward(ws, batch, param_grads, want_input);
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

/// Images per im2col chunk: about 8 MB of columns (at least one image);
/// measured faster than 4 or 16 MB for the Madry CNN at batch 128.
fn images_per_chunk(floats_per_image: usize) -> usize {
    ((1 << 21) / floats_per_image.max(1)).max(1)
}

/// Mutable access to parameter gradients `p` (weight) and `p + 1` (bias).
fn two_mut(grads: &mut [Vec<f32>], p: usize) -> (&mut [f32], &mut [f32]) {
    let (a, b) = grads.split_at_mut(p + 1);
    (&mut a[p], &mut b[0])
}

/// `dst` (cols x rows) = the transpose of `m` (rows x cols), in tiles.
fn transpose_into(m: &[f32], rows: usize, cols: usize, dst: &mut Vec<f32>) {
    const TILE: usize = 32;
    resize(dst, rows * cols);
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[c * rows + r] = m[r * cols + c];
                }
            }
        }
    }
}

/// Every row of `dst` set to `bias` (the matmul then accumulates onto it).
fn broadcast_rows(dst: &mut [f32], bias: &[f32]) {
    for row in dst.chunks_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

fn relu_in_place(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
}

/// Zero the gradient where the ReLU output was zero.
fn relu_backward(grad: &mut [f32], output: &[f32]) {
    for (g, &o) in grad.iter_mut().zip(output) {
        if o <= 0.0 {
            *g = 0.0;
        }
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

/// im2col for a same-padded convolution, one image per parallel chunk.
fn im2col(input: &[f32], columns: &mut [f32], template: &[u32], pixels: usize, cin: usize, taps: usize) {
    for_chunks(columns, pixels * taps * cin, |b, image_columns| {
        let image = &input[b * pixels * cin..(b + 1) * pixels * cin];
        for (dst, &src) in image_columns.chunks_mut(cin).zip(template) {
            if src == PAD {
                dst.fill(0.0);
            } else {
                let s = src as usize * cin;
                dst.copy_from_slice(&image[s..s + cin]);
            }
        }
    });
}

/// The adjoint of [`im2col`]: scatter-add column gradients back to pixels.
fn col2im(grad_columns: &[f32], grad_in: &mut [f32], template: &[u32], pixels: usize, cin: usize, taps: usize) {
    for_chunks(grad_in, pixels * cin, |b, image_grad| {
        image_grad.fill(0.0);
        let cols = &grad_columns[b * pixels * taps * cin..(b + 1) * pixels * taps * cin];
        for (src, &dst) in cols.chunks(cin).zip(template) {
            if dst != PAD {
                let d = dst as usize * cin;
                for (g, s) in image_grad[d..d + cin].iter_mut().zip(src) {
                    *g += s;
                }
            }
        }
    });
}

/// 2x2 max-pooling with stride 2 followed by ReLU (max and ReLU commute,
/// so the convolution before it skips its own ReLU: 4 times fewer values),
/// remembering each winner's index. One image per parallel chunk.
fn max_pool_relu(input: &[f32], output: &mut [f32], argmax: &mut [u32], h: usize, w: usize, c: usize) {
    use rayon::prelude::*;
    let (oh, ow) = (h / 2, w / 2);
    let per_image = oh * ow * c;
    let pool_image = |b: usize, out: &mut [f32], arg: &mut [u32]| {
        for oy in 0..oh {
            for ox in 0..ow {
                let top = ((b * h + 2 * oy) * w + 2 * ox) * c;
                let corners = [top, top + c, top + w * c, top + w * c + c];
                let o = (oy * ow + ox) * c;
                for ch in 0..c {
                    let mut best = corners[0] + ch;
                    for &corner in &corners[1..] {
                        if input[corner + ch] > input[best] {
                            best = corner + ch;
                        }
                    }
                    out[o + ch] = input[best].max(0.0);
                    arg[o + ch] = best as u32;
                }
            }
        }
    };
    if kernels::threads() > 1 {
        output
            .par_chunks_mut(per_image)
            .zip(argmax.par_chunks_mut(per_image))
            .enumerate()
            .for_each(|(b, (out, arg))| pool_image(b, out, arg));
    } else {
        output
            .chunks_mut(per_image)
            .zip(argmax.chunks_mut(per_image))
            .enumerate()
            .for_each(|(b, (out, arg))| pool_image(b, out, arg));
    }
}

fn max_pool_backward(grad_out: &[f32], grad_in: &mut [f32], argmax: &[u32]) {
    grad_in.fill(0.0);
    for (g, &a) in grad_out.iter().zip(argmax) {
        grad_in[a as usize] += g;
    }
}

impl Model for Native {
    fn input_dim(&self) -> usize {
        self.input_dim
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
            (ws.acts.last().expect("at least one layer").clone(), ws.grad.clone())
        })
    }
}

impl Classifier for Native {
    fn train_step(&mut self, x: &[f32], loss: &dyn Loss, opt: &Sgd) -> f32 {
        let batch = self.batch_of(x);
        let mut ws = std::mem::take(self.workspace.get_mut().unwrap_or_else(|e| e.into_inner()));
        let losses = kernels::in_pool(|| self.run(x, loss, 1.0 / batch as f32, true, false, &mut ws));
        for ((w, v), g) in self.params.iter_mut().zip(&mut self.velocity).zip(&ws.param_grads) {
            for ((w, v), g) in w.iter_mut().zip(v.iter_mut()).zip(g) {
                *v = opt.momentum * *v + g + opt.weight_decay * *w;
                *w -= opt.lr * *v;
            }
        }
        ws.transposed_valid = false;
        *self.workspace.get_mut().unwrap_or_else(|e| e.into_inner()) = ws;
        losses.iter().sum::<f32>() / batch as f32
    }

    fn boxed_clone(&self) -> Box<dyn Classifier> {
        let mut copy = Native::with_parameters(self.layers.clone(), self.params.clone(), self.input_dim, self.classes);
        copy.velocity = self.velocity.clone();
        Box::new(copy)
    }

    fn parameters(&self) -> Vec<f32> {
        self.params.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CrossEntropy, Net};
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
        let native = Native::new(&config, rows, cols, 10, 3);
        let reference = Net::with_parameters(native.layers().to_vec(), native.parameter_tensors(), rows * cols, 10);
        let x = random(batch * rows * cols, 4);
        let labels: Vec<u8> = (0..batch).map(|i| (i * 7 % 10) as u8).collect();
        let loss = CrossEntropy { labels: &labels };

        assert_close("logits", &native.logits(&x), &reference.logits(&x), 1e-4);
        let (_, native_dx) = native.input_grad(&x, &loss);
        let (_, reference_dx) = reference.input_grad(&x, &loss);
        assert_close("input gradient", &native_dx, &reference_dx, 1e-4);

        // Weight gradients: dfdx's, read off one plain SGD step of lr 1.
        let mut stepped = reference.boxed_clone();
        let before = reference.parameters();
        stepped.train_step(
            &x,
            &loss,
            &Sgd {
                lr: 1.0,
                momentum: 0.0,
                weight_decay: 0.0,
            },
        );
        let reference_grads: Vec<f32> = before.iter().zip(stepped.parameters()).map(|(b, a)| b - a).collect();
        let native_grads = native.parameter_gradients(&x, &loss).concat();
        assert_close("weight gradients", &native_grads, &reference_grads, 1e-3);
    }

    #[test]
    fn mlp_agrees_with_dfdx() {
        agree_with_dfdx(ModelConfig::Mlp { hidden: vec![64, 32] }, 28, 28, 16);
    }

    #[test]
    fn cnn_agrees_with_dfdx() {
        agree_with_dfdx(
            ModelConfig::Cnn {
                channels: [4, 8],
                dense: 32,
            },
            28,
            28,
            3,
        );
    }

    #[test]
    fn cnn_agrees_with_dfdx_across_im2col_chunks() {
        // 256 channels into the second convolution: one image per chunk.
        assert_eq!(images_per_chunk(14 * 14 * 25 * 256), 1);
        agree_with_dfdx(
            ModelConfig::Cnn {
                channels: [256, 4],
                dense: 8,
            },
            28,
            28,
            3,
        );
    }

    #[test]
    fn training_steps_agree_with_dfdx_over_several_steps() {
        let config = ModelConfig::Mlp { hidden: vec![32] };
        let mut native = Native::new(&config, 28, 28, 10, 5);
        let mut reference: Box<dyn Classifier> = Box::new(Net::with_parameters(
            native.layers().to_vec(),
            native.parameter_tensors(),
            784,
            10,
        ));
        let opt = Sgd {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-4,
        };
        for step in 0..5 {
            let x = random(8 * 784, 10 + step);
            let labels: Vec<u8> = (0..8).map(|i| ((i + step as usize) % 10) as u8).collect();
            let a = native.train_step(&x, &CrossEntropy { labels: &labels }, &opt);
            let b = reference.train_step(&x, &CrossEntropy { labels: &labels }, &opt);
            assert!((a - b).abs() < 1e-4, "step {step}: loss {a} vs {b}");
        }
        assert_close(
            "parameters after 5 steps",
            &native.parameters(),
            &reference.parameters(),
            1e-4,
        );
    }

    #[test]
    fn batches_of_any_size_reuse_the_workspace_correctly() {
        let native = Native::new(
            &ModelConfig::Cnn {
                channels: [2, 3],
                dense: 8,
            },
            8,
            8,
            10,
            1,
        );
        let x = random(5 * 64, 2);
        let all = native.logits(&x);
        let one = native.logits(&x[..64]);
        assert_close("first image alone", &one, &all[..10], 1e-5);
        assert_eq!(native.logits(&x), all);
    }
}
