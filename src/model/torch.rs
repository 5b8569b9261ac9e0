//! Weights in PyTorch's own names and layouts, as safetensors files, so that
//! a PyTorch user moves them both ways with `safetensors.torch.save_file` /
//! `load_file` and no conversion code.
//!
//! The architectures are the `nn.Sequential`s that `mlp` and `cnn` are:
//!
//! - `mlp`: `Flatten(), Linear(C*H*W, h1), ReLU(), ..., Linear(hn, classes)`,
//!   so its tensors are `1.weight`, `1.bias`, `3.weight`, ...
//! - `cnn`: `Conv2d(C, c1, 5, padding=2), ReLU(), MaxPool2d(2), Conv2d(c1,
//!   c2, 5, padding=2), ReLU(), MaxPool2d(2), Flatten(), Linear(c2*H/4*W/4,
//!   dense), ReLU(), Linear(dense, classes)`: tensors `0.*`, `3.*`, `7.*`,
//!   `9.*`.
//!
//! PyTorch keeps a Linear weight `(out, in)` and a Conv2d weight `(cout, cin,
//! k, k)`; the engines keep `(in, out)` and `((k, k, cin), cout)`. PyTorch
//! flattens NCHW, the engines NHWC: the first Linear's input columns are
//! permuted accordingly (nothing moves for one channel into an MLP; for the
//! CNN's first Linear, the pooled map's channels move). Tensors under a
//! common prefix (`net.0.weight` of a module holding the Sequential as
//! `net`) are found too.

// A weights file's fingerprint: the cache key of the models trained from
// it, and what a run records.
use crate::record::content_fingerprint;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::arch::{self, Layer};
use super::{Classifier, Engine, ModelConfig};
use crate::data::Shape;

/// Safetensors files larger than this are refused before reading: the
/// largest model a model file may ask for is far smaller.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// A safetensors file's tensors by name: shape and values.
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// One parameter tensor as PyTorch holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The PyTorch name of each parameterized layer of `layers`: its index in the
/// `nn.Sequential` (ReLU, MaxPool2d and Flatten take indices too).
fn sequential_indices(layers: &[Layer]) -> Vec<Option<usize>> {
    let mut index = 0;
    let mut flattened = false;
    layers
        .iter()
        .map(|layer| match *layer {
            Layer::Conv { .. } => {
                let at = index;
                index += 2; // Conv2d, ReLU
                Some(at)
            }
            Layer::Pool { .. } => {
                index += 1;
                None
            }
            Layer::Dense { relu, .. } => {
                if !flattened {
                    index += 1; // Flatten
                    flattened = true;
                }
                let at = index;
                index += 1 + relu as usize;
                Some(at)
            }
        })
        .collect()
}

/// The map a dense layer reads, as (channels, pixels), when it is the first
/// dense layer (PyTorch flattens it channel-major); `None` when its input is
/// already a flat vector.
fn flattened_map(layers: &[Layer], at: usize, shape: Shape) -> Option<(usize, usize)> {
    if layers[..at].iter().any(|l| matches!(l, Layer::Dense { .. })) {
        return None;
    }
    match layers[..at].last() {
        Some(Layer::Pool { h, w, c }) => Some((*c, (h / 2) * (w / 2))),
        Some(Layer::Conv { h, w, cout, .. }) => Some((*cout, h * w)),
        _ => Some((shape.channels, shape.pixels())),
    }
}

/// PyTorch's name and shape of each parameter tensor of `layers`, in the
/// engines' order (weight, then bias, layer by layer).
pub fn torch_names(layers: &[Layer]) -> Vec<(String, Vec<usize>)> {
    let names = sequential_indices(layers);
    layers
        .iter()
        .zip(names)
        .filter_map(|(layer, index)| {
            let index = index?;
            let (weight, out) = match *layer {
                Layer::Dense { inp, out, .. } => (vec![out, inp], out),
                Layer::Conv { cin, cout, k, .. } => (vec![cout, cin, k, k], cout),
                Layer::Pool { .. } => return None,
            };
            Some([
                (format!("{index}.weight"), weight),
                (format!("{index}.bias"), vec![out]),
            ])
        })
        .flatten()
        .collect()
}

/// A weight of `layer` (the `at`-th of `layers`) moved between the engines'
/// layout and PyTorch's: `to_torch` true reads the engines' and writes
/// PyTorch's, false the reverse. Biases need no move.
fn move_weight(layers: &[Layer], at: usize, shape: Shape, from: &[f32], to_torch: bool) -> Vec<f32> {
    let mut out = vec![0.0; from.len()];
    let mut put = |ours: usize, theirs: usize| {
        if to_torch {
            out[theirs] = from[ours];
        } else {
            out[ours] = from[theirs];
        }
    };
    match layers[at] {
        Layer::Dense { inp, out: width, .. } => {
            let map = flattened_map(layers, at, shape);
            for i in 0..inp {
                let column = torch_column(i, map);
                for o in 0..width {
                    put(i * width + o, o * inp + column);
                }
            }
        }
        Layer::Conv { cin, cout, k, .. } => {
            for tap in 0..k * k {
                for ci in 0..cin {
                    for co in 0..cout {
                        put((tap * cin + ci) * cout + co, (co * cin + ci) * k * k + tap);
                    }
                }
            }
        }
        Layer::Pool { .. } => unreachable!("pooling has no parameters"),
    }
    out
}

/// The layers that hold parameters, by position in `layers`.
fn parameterized(layers: &[Layer]) -> Vec<usize> {
    (0..layers.len())
        .filter(|&at| !matches!(layers[at], Layer::Pool { .. }))
        .collect()
}

/// `params` (the engines' tensors of `layers`, in order) in PyTorch's names,
/// shapes and layouts.
pub fn to_torch(layers: &[Layer], params: &[Vec<f32>], shape: Shape) -> Vec<TorchTensor> {
    let names = torch_names(layers);
    let mut tensors = Vec::with_capacity(names.len());
    for (k, at) in parameterized(layers).into_iter().enumerate() {
        let values = [
            move_weight(layers, at, shape, &params[2 * k], true),
            params[2 * k + 1].clone(),
        ];
        for ((name, shape), values) in names[2 * k..2 * k + 2].iter().cloned().zip(values) {
            tensors.push(TorchTensor { name, shape, values });
        }
    }
    tensors
}

/// Where the engines' input feature `i` (channels last) sits in PyTorch's
/// flattening (channels first) of `map` = (channels, pixels).
fn torch_column(i: usize, map: Option<(usize, usize)>) -> usize {
    match map {
        Some((channels, pixels)) => (i % channels) * pixels + i / channels,
        None => i,
    }
}

/// The engines' tensors of `layers` from PyTorch's, checking every name and
/// shape before any of them is built (so a file that does not fit costs
/// no more than its own size, however large the model it is checked
/// against).
pub fn from_torch(layers: &[Layer], shape: Shape, tensors: &Tensors) -> Result<Vec<Vec<f32>>, String> {
    let wanted = torch_names(layers);
    let names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    let prefix = common_prefix(&wanted, &names)?;
    let mut extra: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !wanted.iter().any(|(w, _)| format!("{prefix}{w}") == *n))
        .collect();
    extra.sort_unstable();
    if !extra.is_empty() {
        return Err(format!(
            "it holds tensors the model does not have: {} (the model's are {})",
            extra.join(", "),
            list(&wanted, &prefix)
        ));
    }
    for (name, expected) in &wanted {
        let name = format!("{prefix}{name}");
        let found = &tensors[&name].0;
        if found != expected {
            return Err(format!(
                "tensor `{name}` has shape {found:?}, but the model needs {expected:?} there"
            ));
        }
    }
    let value = |k: usize| &tensors[&format!("{prefix}{}", wanted[k].0)].1;
    Ok(parameterized(layers)
        .into_iter()
        .enumerate()
        .flat_map(|(k, at)| {
            [
                move_weight(layers, at, shape, value(2 * k), false),
                value(2 * k + 1).clone(),
            ]
        })
        .collect())
}

/// The prefix every wanted name carries in `names` (empty for a plain
/// `nn.Sequential`'s state dict), or why none fits.
fn common_prefix(wanted: &[(String, Vec<usize>)], names: &[&str]) -> Result<String, String> {
    let first = &wanted[0].0;
    let mut candidates: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_suffix(first.as_str()))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .map(String::from)
        .collect();
    candidates.push(String::new());
    candidates.sort();
    candidates.dedup();
    let present = |prefix: &String| {
        wanted
            .iter()
            .filter(|(w, _)| names.contains(&format!("{prefix}{w}").as_str()))
            .count()
    };
    let fitting: Vec<&String> = candidates.iter().filter(|p| present(p) == wanted.len()).collect();
    match fitting[..] {
        [prefix] => Ok(prefix.clone()),
        [] => {
            // Said relative to the prefix the file comes closest under.
            let best = candidates
                .iter()
                .max_by_key(|p| present(p))
                .cloned()
                .unwrap_or_default();
            let missing: Vec<String> = wanted
                .iter()
                .map(|(w, _)| format!("{best}{w}"))
                .filter(|w| !names.contains(&w.as_str()))
                .collect();
            let mut found: Vec<&str> = names.to_vec();
            found.sort_unstable();
            Err(format!(
                "it lacks tensors the model needs: {} (it holds {}; the model's are {})",
                missing.join(", "),
                if found.is_empty() {
                    "none".to_string()
                } else {
                    found.join(", ")
                },
                list(wanted, &best)
            ))
        }
        _ => Err(format!(
            "it holds the model's tensors under several prefixes ({}); keep one model per file",
            fitting.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

fn list(tensors: &[(String, Vec<usize>)], prefix: &str) -> String {
    tensors
        .iter()
        .map(|(name, shape)| format!("{prefix}{name} {shape:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `model` (of `config`, for `shape` images) as a safetensors file in
/// PyTorch's layout, whole or not at all. `metadata` goes into the header
/// beside what describes the architecture.
pub fn save(
    path: &Path,
    model: &dyn Classifier,
    config: &ModelConfig,
    metadata: &[(&str, String)],
) -> std::io::Result<()> {
    let shape = model.image_shape();
    let layers = arch::layers(config, shape, model.classes());
    let flat = model.parameters();
    let mut params = Vec::new();
    let mut rest = &flat[..];
    for (rows, cols) in layers.iter().flat_map(|l| l.parameter_shapes()) {
        let (head, tail) = rest.split_at(rows * cols);
        params.push(head.to_vec());
        rest = tail;
    }
    let tensors = to_torch(&layers, &params, shape);
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, data)| {
            let view = TensorView::new(Dtype::F32, t.shape.clone(), data).map_err(std::io::Error::other)?;
            Ok((t.name.clone(), view))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut meta: HashMap<String, String> = HashMap::from([
        ("format".into(), "pt".into()),
        (
            "redqueen.model".into(),
            serde_json::to_string(&config.without_weights()).map_err(std::io::Error::other)?,
        ),
        ("redqueen.input".into(), format!("{} (NCHW in PyTorch)", shape)),
        ("redqueen.classes".into(), model.classes().to_string()),
        ("redqueen.pytorch".into(), pytorch_code(config, shape, model.classes())),
    ]);
    meta.extend(metadata.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let file = sorted_header(safetensors::serialize(views, Some(meta)).map_err(std::io::Error::other)?)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    crate::record::write_atomic(path, &file)
}

/// `file` with its JSON header's keys in sorted order. safetensors writes
/// the metadata in a hash map's order, which differs from run to run; a
/// saved model must be the same bytes every time. Same keys, same values,
/// so the header keeps its length and every offset stays right.
fn sorted_header(mut file: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let bad = || std::io::Error::other("safetensors wrote a header it cannot read back");
    let len = u64::from_le_bytes(file.get(..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let header = file.get(8..8 + len).ok_or_else(bad)?;
    // serde_json's maps are ordered by key (no `preserve_order` feature).
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|_| bad())?;
    let mut sorted = serde_json::to_vec(&value).map_err(std::io::Error::other)?;
    if sorted.len() > len {
        return Err(bad());
    }
    sorted.resize(len, b' ');
    file[8..8 + len].copy_from_slice(&sorted);
    Ok(file)
}

/// Reads a safetensors file into a new model of `config` for `shape`
/// images and `classes` classes. Errors name the file and say what would fit.
pub fn load(
    path: &Path,
    config: &ModelConfig,
    engine: Engine,
    shape: Shape,
    classes: usize,
) -> crate::Result<Box<dyn Classifier>> {
    Ok(load_recorded(path, config, engine, shape, classes, None)?.0)
}

/// The content fingerprint of the weights file at `path`.
pub fn fingerprint(path: &Path) -> crate::Result<String> {
    read_file(path)
        .map(|bytes| content_fingerprint(&bytes))
        .map_err(|what| crate::Error::invalid(format!("weights file {}: {what}", path.display())))
}

/// [`load`], and the content fingerprint of the bytes the model was read
/// from (as [`fingerprint`] gives it, without a second read). `recorded`:
/// the fingerprint a run recorded when it began. The configuration names
/// the file by path and a run reads it again (per seed, and a matrix once
/// more), so a file replaced meanwhile is refused as changed, checked
/// before parsing so that the message says so whatever the file holds now.
pub fn load_recorded(
    path: &Path,
    config: &ModelConfig,
    engine: Engine,
    shape: Shape,
    classes: usize,
    recorded: Option<&str>,
) -> crate::Result<(Box<dyn Classifier>, String)> {
    let why = |what: String| crate::Error::invalid(format!("weights file {}: {what}", path.display()));
    let bytes = read_file(path).map_err(why)?;
    let key = content_fingerprint(&bytes);
    if let Some(then) = recorded.filter(|then| *then != key) {
        return Err(crate::Error::invalid(format!(
            "weights file {}: its contents changed while the run was under way (fingerprint {then} when the run \
             began, {key} now); put back the file the run began with and resume the run (--resume), or start a new run",
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
        )));
    }
    let tensors = parse(&bytes).map_err(why)?;
    let layers = arch::layers(config, shape, classes);
    let params = from_torch(&layers, shape, &tensors).map_err(|e| {
        why(format!(
            "{e}; the model is {} for {shape} images and {classes} classes, which in PyTorch is {}",
            describe(config),
            pytorch_code(config, shape, classes)
        ))
    })?;
    let mut model = config.init(engine, shape, classes, 0);
    model.set_parameters(&params.concat());
    Ok((model, key))
}

/// Why `bytes` are not a safetensors file, with what they look like when
/// that is plainer than the parser's words (a TOML file given as a model
/// reads "header too large").
fn not_safetensors(bytes: &[u8], e: impl std::fmt::Display) -> String {
    let head = &bytes[..bytes.len().min(512)];
    if !head.is_empty() && std::str::from_utf8(head).is_ok_and(|t| !t.contains('\0')) {
        return "not a safetensors file: it holds text (a .toml or .json file?); give a model's .safetensors file (saved by `redqueen run --save-models`, or by PyTorch's safetensors.torch.save_file)".to_string();
    }
    format!("not a safetensors file: {e}")
}

/// The text metadata of a safetensors file (redqueen's keys start with
/// `redqueen.`); empty for a file without any.
pub fn metadata(path: &Path) -> crate::Result<HashMap<String, String>> {
    let why = |what: String| crate::Error::invalid(format!("weights file {}: {what}", path.display()));
    let bytes = read_file(path).map_err(why)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| why(not_safetensors(&bytes, e)))?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// The architecture a safetensors file holds: the one redqueen wrote in its
/// metadata, else the one its tensors' names and shapes spell (a
/// `nn.Sequential` of the kinds above, as PyTorch saved it).
pub fn architecture(path: &Path) -> crate::Result<ModelConfig> {
    let why = |what: String| crate::Error::invalid(format!("weights file {}: {what}", path.display()));
    let bytes = read_file(path).map_err(why)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| why(not_safetensors(&bytes, e)))?;
    if let Some(model) = header.metadata().as_ref().and_then(|m| m.get("redqueen.model")) {
        // The architecture only: a file never points at another file.
        return serde_json::from_str::<ModelConfig>(model)
            .map(|m| m.without_weights())
            .map_err(|e| why(format!("metadata `redqueen.model`: {e}")));
    }
    let tensors = parse(&bytes).map_err(why)?;
    infer(&tensors).map_err(|e| {
        why(format!(
            "{e}; redqueen reads the nn.Sequential of an mlp (Flatten, then Linear and ReLU) or a cnn \
             (Conv2d 5x5, ReLU, MaxPool2d twice, then Flatten, Linear, ReLU, Linear), saved with safetensors.torch.save_file(model.state_dict(), ...)"
        ))
    })
}

/// The architecture from tensor names and shapes alone.
fn infer(tensors: &Tensors) -> Result<ModelConfig, String> {
    // (index, weight shape) of every layer, in Sequential order; any
    // prefix before the index is ignored (checked when loading).
    let mut weights: Vec<(usize, &[usize])> = tensors
        .iter()
        .filter_map(|(name, (shape, _))| {
            let stem = name.strip_suffix(".weight")?;
            let index = stem.rsplit('.').next()?.parse().ok()?;
            Some((index, shape.as_slice()))
        })
        .collect();
    weights.sort_unstable_by_key(|w| w.0);
    let out = |shape: &[usize]| shape.first().copied().unwrap_or(0);
    match weights[..] {
        [] => Err("it holds no `N.weight` tensors".into()),
        [(_, conv1), (_, conv2), (_, dense), (_, last)] if conv1.len() == 4 => {
            if conv2.len() != 4 || dense.len() != 2 || last.len() != 2 {
                return Err("it starts with a Conv2d but is not two Conv2d then two Linear".into());
            }
            Ok(ModelConfig::cnn([out(conv1), out(conv2)], out(dense)))
        }
        ref linears if linears.iter().all(|(_, s)| s.len() == 2) => Ok(ModelConfig::mlp(
            linears[..linears.len() - 1].iter().map(|(_, s)| out(s)).collect(),
        )),
        _ => Err(format!(
            "its layers are not those of an mlp or a cnn (weight shapes {:?})",
            weights.iter().map(|w| w.1).collect::<Vec<_>>()
        )),
    }
}

/// The file's bytes: a regular file, at most [`MAX_FILE_BYTES`].
fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if meta.is_dir() {
        return Err("is a folder; give a model's .safetensors file".into());
    }
    if !meta.is_file() {
        return Err("not a regular file (a device, a pipe or a socket); give a model's .safetensors file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes, more than the {MAX_FILE_BYTES} any model here needs",
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))
}

/// Every tensor of a safetensors file as f32, by name.
fn parse(bytes: &[u8]) -> Result<Tensors, String> {
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| not_safetensors(bytes, e))?;
    let mut out = HashMap::new();
    // In name order: the tensor an error names must not follow a hash.
    let mut named = tensors.tensors();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in named {
        if view.dtype() != Dtype::F32 {
            return Err(format!(
                "tensor `{name}` is {:?}; redqueen reads float32 (in PyTorch: `model.float()` before saving)",
                view.dtype()
            ));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        // A NaN weight would make every match look like a defender that
        // diverged; the file is at fault, so it is named here.
        if let Some(first) = values.iter().position(|v| !v.is_finite()) {
            let count = values.iter().filter(|v| !v.is_finite()).count();
            return Err(format!(
                "tensor `{name}` holds {count} NaN or infinite value(s) (the first at flat index {first}); redqueen starts from and evaluates finite weights only"
            ));
        }
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

/// The configuration as a person writes it in a tournament file.
fn describe(config: &ModelConfig) -> String {
    match config {
        ModelConfig::Mlp { hidden, .. } => format!("mlp with hidden = {hidden:?}"),
        ModelConfig::Cnn { channels, dense, .. } => format!("cnn with channels = {channels:?}, dense = {dense}"),
    }
}

/// The `nn.Sequential` that `config` is, as PyTorch code.
pub fn pytorch_code(config: &ModelConfig, shape: Shape, classes: usize) -> String {
    let layers = arch::layers(config, shape, classes);
    let parts: Vec<String> = match config {
        ModelConfig::Mlp { .. } => std::iter::once("nn.Flatten()".to_string())
            .chain(layers.iter().flat_map(|l| match *l {
                Layer::Dense { inp, out, relu } => {
                    let mut v = vec![format!("nn.Linear({inp}, {out})")];
                    if relu {
                        v.push("nn.ReLU()".into());
                    }
                    v
                }
                _ => vec![],
            }))
            .collect(),
        ModelConfig::Cnn { .. } => {
            let mut flattened = false;
            layers
                .iter()
                .flat_map(|l| match *l {
                    Layer::Conv { cin, cout, k, .. } => {
                        vec![
                            format!("nn.Conv2d({cin}, {cout}, {k}, padding={})", k / 2),
                            "nn.ReLU()".into(),
                        ]
                    }
                    Layer::Pool { .. } => vec!["nn.MaxPool2d(2)".into()],
                    Layer::Dense { inp, out, relu } => {
                        let mut v = Vec::new();
                        if !flattened {
                            v.push("nn.Flatten()".to_string());
                            flattened = true;
                        }
                        v.push(format!("nn.Linear({inp}, {out})"));
                        if relu {
                            v.push("nn.ReLU()".into());
                        }
                        v
                    }
                })
                .collect()
        }
    };
    format!("nn.Sequential({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Engine;

    fn shapes() -> Vec<(ModelConfig, Shape)> {
        let rgb = Shape {
            channels: 3,
            rows: 8,
            cols: 12,
        };
        vec![
            (ModelConfig::mlp(vec![7, 5]), Shape::gray(4, 4)),
            (ModelConfig::mlp(vec![6]), rgb),
            (ModelConfig::cnn([3, 4], 9), Shape::gray(8, 8)),
            (ModelConfig::cnn([2, 3], 5), rgb),
        ]
    }

    #[test]
    fn names_follow_the_sequential_indices() {
        let names = |config: &ModelConfig, shape| {
            let layers = arch::layers(config, shape, 10);
            let params = arch::init_parameters(&layers, 1);
            to_torch(&layers, &params, shape)
                .into_iter()
                .map(|t| format!("{} {:?}", t.name, t.shape))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&ModelConfig::mlp(vec![256, 128]), Shape::MNIST),
            [
                "1.weight [256, 784]",
                "1.bias [256]",
                "3.weight [128, 256]",
                "3.bias [128]",
                "5.weight [10, 128]",
                "5.bias [10]"
            ]
        );
        assert_eq!(
            names(&ModelConfig::cnn([16, 32], 100), Shape::CIFAR),
            [
                "0.weight [16, 3, 5, 5]",
                "0.bias [16]",
                "3.weight [32, 16, 5, 5]",
                "3.bias [32]",
                "7.weight [100, 2048]",
                "7.bias [100]",
                "9.weight [10, 100]",
                "9.bias [10]"
            ]
        );
        assert_eq!(
            pytorch_code(&ModelConfig::cnn([16, 32], 100), Shape::MNIST, 10),
            "nn.Sequential(nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1568, 100), nn.ReLU(), nn.Linear(100, 10))"
        );
    }

    #[test]
    fn save_and_load_give_back_the_same_model() {
        for (config, shape) in shapes() {
            let model = config.init(Engine::Native, shape, 10, 3);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.safetensors");
            save(&path, model.as_ref(), &config, &[("note", "x".into())]).unwrap();
            for engine in [Engine::Native, Engine::Dfdx] {
                let loaded = load(&path, &config, engine, shape, 10).unwrap();
                assert_eq!(loaded.parameters(), model.parameters(), "{config:?} {shape}");
                let x: Vec<f32> = (0..2 * shape.dim()).map(|i| (i % 13) as f32 / 13.0).collect();
                assert_eq!(loaded.image_shape(), shape);
                let (a, b) = (loaded.logits(&x), model.logits(&x));
                assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs().max(1.0)));
            }
        }
    }

    /// The permutation is PyTorch's, not merely invertible: the first
    /// Linear of an RGB MLP, in PyTorch's layout, applied to the image in
    /// CHW order gives the engines' first layer.
    #[test]
    fn the_first_linear_reads_chw_images() {
        let shape = Shape {
            channels: 3,
            rows: 2,
            cols: 3,
        };
        let config = ModelConfig::mlp(vec![]);
        let model = config.init(Engine::Native, shape, 4, 9);
        let layers = arch::layers(&config, shape, 4);
        let flat = model.parameters();
        let (w, b) = flat.split_at(shape.dim() * 4);
        let torch = to_torch(&layers, &[w.to_vec(), b.to_vec()], shape);
        let x: Vec<f32> = (0..shape.dim()).map(|i| ((i * 7) % 11) as f32 / 11.0).collect();
        let chw = shape.to_chw(&x);
        let weight = &torch[0].values;
        let logits = model.logits(&x);
        for o in 0..4 {
            let z: f32 = (0..shape.dim())
                .map(|i| weight[o * shape.dim() + i] * chw[i])
                .sum::<f32>()
                + torch[1].values[o];
            assert!((z - logits[o]).abs() < 1e-5, "class {o}: {z} vs {}", logits[o]);
        }
    }

    #[test]
    fn wrong_files_are_refused_with_what_would_fit() {
        let config = ModelConfig::mlp(vec![8]);
        let shape = Shape::gray(4, 4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let other = ModelConfig::mlp(vec![9]);
        save(&path, other.init(Engine::Native, shape, 10, 1).as_ref(), &other, &[]).unwrap();
        let err = load(&path, &config, Engine::Native, shape, 10)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("m.safetensors") && err.contains("`1.weight` has shape [9, 16]") && err.contains("[8, 16]"),
            "{err}"
        );
        assert!(err.contains("nn.Linear(16, 8)"), "{err}");

        let cnn = ModelConfig::cnn([2, 2], 4);
        let err = load(&path, &cnn, Engine::Native, shape, 10).err().unwrap().to_string();
        assert!(
            err.contains("lacks tensors") && err.contains("0.weight") && err.contains("1.weight"),
            "{err}"
        );

        // A weight that is NaN: the file is refused by tensor, not read as
        // a model that diverges in every match.
        let mut nan = config.init(Engine::Native, shape, 10, 1);
        let mut weights = nan.parameters();
        weights[3] = f32::NAN;
        nan.set_parameters(&weights);
        save(&path, nan.as_ref(), &config, &[]).unwrap();
        let err = load(&path, &config, Engine::Native, shape, 10)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("m.safetensors")
                && err.contains("1 NaN or infinite value(s)")
                && err.contains("finite weights"),
            "{err}"
        );

        std::fs::write(&path, b"garbage").unwrap();
        let err = load(&path, &config, Engine::Native, shape, 10)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a safetensors file: it holds text"), "{err}");
        std::fs::write(&path, [0xff_u8, 0, 1, 2]).unwrap();
        let err = load(&path, &config, Engine::Native, shape, 10)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a safetensors file") && !err.contains("text"), "{err}");
        let err = load(&dir.path().join("none"), &config, Engine::Native, shape, 10)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn a_saved_model_is_the_same_bytes_every_time() {
        let config = ModelConfig::mlp(vec![4]);
        let model = config.init(Engine::Native, Shape::gray(2, 2), 3, 1);
        let dir = tempfile::tempdir().unwrap();
        // Many keys: a hash map's order differs from one map to the next.
        let keys: Vec<String> = (0..20).map(|i| format!("key{i}")).collect();
        let meta: Vec<(&str, String)> = keys.iter().map(|k| (k.as_str(), "v".to_string())).collect();
        let mut files = Vec::new();
        for n in 0..4 {
            let path = dir.path().join(format!("{n}.safetensors"));
            save(&path, model.as_ref(), &config, &meta).unwrap();
            files.push(std::fs::read(&path).unwrap());
        }
        assert!(files.windows(2).all(|w| w[0] == w[1]));
        let loaded = load(
            &dir.path().join("0.safetensors"),
            &config,
            Engine::Native,
            Shape::gray(2, 2),
            3,
        )
        .unwrap();
        assert_eq!(loaded.parameters(), model.parameters());
    }

    #[test]
    fn the_architecture_is_read_from_metadata_or_tensors() {
        let dir = tempfile::tempdir().unwrap();
        for (config, shape) in shapes() {
            let path = dir.path().join("m.safetensors");
            let model = config.init(Engine::Native, shape, 10, 3);
            save(&path, model.as_ref(), &config, &[]).unwrap();
            assert_eq!(architecture(&path).unwrap(), config);
            // As PyTorch writes it: no redqueen metadata.
            let layers = arch::layers(&config, shape, 10);
            let tensors: HashMap<_, _> = to_torch(&layers, &arch::init_parameters(&layers, 1), shape)
                .into_iter()
                .map(|t| (t.name, (t.shape, t.values)))
                .collect();
            assert_eq!(infer(&tensors).unwrap(), config);
        }
        std::fs::write(dir.path().join("bad"), b"x").unwrap();
        let err = architecture(&dir.path().join("bad")).unwrap_err().to_string();
        assert!(err.contains("not a safetensors file"), "{err}");
    }

    #[test]
    fn a_prefix_is_found_and_extra_tensors_refused() {
        let config = ModelConfig::mlp(vec![3]);
        let shape = Shape::gray(2, 2);
        let layers = arch::layers(&config, shape, 2);
        let params = arch::init_parameters(&layers, 5);
        let mut tensors: Tensors = to_torch(&layers, &params, shape)
            .into_iter()
            .map(|t| (format!("net.{}", t.name), (t.shape, t.values)))
            .collect();
        assert_eq!(from_torch(&layers, shape, &tensors).unwrap(), params);
        tensors.insert("net.9.weight".into(), (vec![1], vec![0.0]));
        let err = from_torch(&layers, shape, &tensors).unwrap_err();
        assert!(err.contains("net.9.weight"), "{err}");
    }
}
