//! ONNX graphs amlip's own kernels can run: a chain of Conv, Relu, MaxPool, Gemm / MatMul +
//! Add, Flatten / Reshape, Dropout, Softmax / LogSoftmax, Tanh, Sigmoid (BatchNormalization
//! folded into the convolution or dense layer before it) becomes an [`nn`](crate::nn)
//! network, served by the same im2col + `gemm` kernels as training.
//!
//! Why: tract's convolution is 3-4x slower than these kernels on the seed CNN, and a served
//! CNN spends nearly all its time there. Anything this importer does not take (another
//! operator, a branch, padding, strides) is served by tract as before; [`import`] says why.

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, NodeProto, TensorProto};

use crate::nn::{Layer, Loss, Network, Served, Spec};

/// The operators [`import`] may take (with the attributes it checks).
const SUPPORTED: &[&str] = &[
    "Constant",
    "Relu",
    "Tanh",
    "Sigmoid",
    "Dropout",
    "Identity",
    "Softmax",
    "LogSoftmax",
    "Flatten",
    "Reshape",
    "Conv",
    "MaxPool",
    "Gemm",
    "MatMul",
    "Add",
    "BatchNormalization",
];

/// A constant of the graph (an initializer or a `Constant` node), as numbers.
struct Constant {
    dims: Vec<usize>,
    floats: Vec<f32>,
    ints: Vec<i64>,
}

/// The network as it is built, layer by layer.
struct Builder {
    layers: Vec<Layer>,
    /// Each layer's weight and bias, `None` for layers without parameters.
    params: Vec<Option<(Vec<f32>, Vec<f32>)>>,
    /// One sample's shape after the last layer.
    shape: Vec<usize>,
}

impl Builder {
    fn push(&mut self, layer: Layer, params: Option<(Vec<f32>, Vec<f32>)>) {
        self.layers.push(layer);
        self.params.push(params);
    }

    /// The last layer's parameters, if it is a convolution or dense layer (for a bias or a
    /// batch normalisation to fold into).
    fn last_params(&mut self) -> Option<&mut (Vec<f32>, Vec<f32>)> {
        match self.layers.last() {
            Some(Layer::Conv2d { .. } | Layer::Dense { .. }) => self.params.last_mut()?.as_mut(),
            _ => None,
        }
    }
}

/// Imports `graph` (opset `opset` of the default domain), or says why it cannot: the first
/// operator or attribute amlip's kernels do not take.
pub(super) fn import(graph: &GraphProto, opset: i64) -> Result<Served, String> {
    if let Some(n) = graph
        .node
        .iter()
        .find(|n| !SUPPORTED.contains(&n.op_type.as_str()))
    {
        return Err(format!("operator {}", n.op_type));
    }
    let mut consts: HashMap<&str, Constant> = HashMap::new();
    for t in &graph.initializer {
        consts.insert(&t.name, constant(t)?);
    }
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !consts.contains_key(i.name.as_str()))
        .collect();
    let ([input], [output]) = (inputs.as_slice(), graph.output.as_slice()) else {
        return Err("it has several inputs or outputs".into());
    };
    let sample = sample_shape(input)?;
    let mut b = Builder {
        layers: Vec::new(),
        params: Vec::new(),
        shape: sample.clone(),
    };
    let mut cur: &str = &input.name;
    for node in &graph.node {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(format!("operator {}.{}", node.domain, node.op_type));
        }
        if node.op_type == "Constant" {
            let out = node.output.first().ok_or("a Constant without output")?;
            let t = attr(node, "value")
                .and_then(|a| a.t.as_ref())
                .ok_or("a Constant that is not a tensor")?;
            consts.insert(out, constant(t)?);
            continue;
        }
        let op = node.op_type.as_str();
        let what = || format!("{op} {:?}", node.name);
        if node.input.first().map(String::as_str) != Some(cur) {
            return Err(format!("{}: not a chain of layers (a branch)", what()));
        }
        // Extra outputs (Dropout's mask, MaxPool's indices) must be unused.
        if node.output.iter().skip(1).any(|o| !o.is_empty()) && op != "Dropout" {
            return Err(format!("{}: a second output", what()));
        }
        let konst = |i: usize| -> Result<&Constant, String> {
            let name = node
                .input
                .get(i)
                .ok_or_else(|| format!("{}: input {i} is missing", what()))?;
            consts
                .get(name.as_str())
                .ok_or_else(|| format!("{}: input {name:?} is not a constant", what()))
        };
        match op {
            "Relu" => b.push(Layer::Relu, None),
            "Tanh" => b.push(Layer::Tanh, None),
            "Sigmoid" => b.push(Layer::Sigmoid, None),
            "Dropout" | "Identity" => {}
            "Softmax" | "LogSoftmax" => {
                let axis = int_attr(node, "axis").unwrap_or(if opset >= 13 { -1 } else { 1 });
                if b.shape.len() != 1 || !(axis == 1 || axis == -1) {
                    return Err(format!(
                        "{}: over axis {axis} of a {}-d sample",
                        what(),
                        b.shape.len()
                    ));
                }
                let l = if op == "Softmax" {
                    Layer::Softmax
                } else {
                    Layer::LogSoftmax
                };
                b.push(l, None);
            }
            "Flatten" => {
                if int_attr(node, "axis").unwrap_or(1) != 1 {
                    return Err(format!("{}: an axis other than 1", what()));
                }
                flatten(&mut b);
            }
            "Reshape" => {
                let to = &konst(1)?.ints;
                let n: usize = b.shape.iter().product();
                let flat = matches!(to.as_slice(), [-1 | 0, k] if *k == -1 || *k as usize == n);
                if !flat {
                    return Err(format!("{}: to {to:?}, not [N, {n}]", what()));
                }
                flatten(&mut b);
            }
            "Conv" => conv(&mut b, node, konst(1)?, konst(2).ok(), node.input.len() > 2)
                .map_err(|e| format!("{}: {e}", what()))?,
            "MaxPool" => {
                let k = square(node, "kernel_shape").map_err(|e| format!("{}: {e}", what()))?;
                let strides = ints_attr(node, "strides").unwrap_or(&[]);
                let plain = strides == [k as i64, k as i64]
                    && zeros(node, "pads")
                    && ones(node, "dilations")
                    && int_attr(node, "ceil_mode").unwrap_or(0) == 0
                    && not_padded(node);
                if !plain || b.shape.len() != 3 {
                    return Err(format!(
                        "{}: only {k}x{k} windows with stride {k}, no padding",
                        what()
                    ));
                }
                b.shape = vec![b.shape[0], b.shape[1] / k, b.shape[2] / k];
                b.push(Layer::MaxPool { size: k }, None);
            }
            "Gemm" => {
                let w = konst(1)?;
                let alpha = float_attr(node, "alpha").unwrap_or(1.0);
                let beta = float_attr(node, "beta").unwrap_or(1.0);
                if int_attr(node, "transA").unwrap_or(0) != 0 || w.dims.len() != 2 {
                    return Err(format!(
                        "{}: a transposed input or a non-matrix weight",
                        what()
                    ));
                }
                let trans_b = int_attr(node, "transB").unwrap_or(0) != 0;
                let (rows, cols) = (w.dims[0], w.dims[1]);
                let (inl, out) = if trans_b { (cols, rows) } else { (rows, cols) };
                let mut weight = if trans_b {
                    w.floats.clone()
                } else {
                    transpose(&w.floats, rows, cols)
                };
                weight.iter_mut().for_each(|v| *v *= alpha);
                dense(&mut b, inl, out, weight).map_err(|e| format!("{}: {e}", what()))?;
                if node.input.len() > 2 && !node.input[2].is_empty() {
                    add_bias(&mut b, konst(2)?, beta).map_err(|e| format!("{}: {e}", what()))?;
                }
            }
            "MatMul" => {
                let w = konst(1)?;
                let [rows, cols] = w.dims[..] else {
                    return Err(format!("{}: a weight of shape {:?}", what(), w.dims));
                };
                let weight = transpose(&w.floats, rows, cols);
                dense(&mut b, rows, cols, weight).map_err(|e| format!("{}: {e}", what()))?;
            }
            "Add" => add_bias(&mut b, konst(1)?, 1.0).map_err(|e| format!("{}: {e}", what()))?,
            "BatchNormalization" => {
                batch_norm(&mut b, node, &konst).map_err(|e| format!("{}: {e}", what()))?
            }
            other => unreachable!("{other} is not in SUPPORTED"),
        }
        cur = node.output.first().map(String::as_str).unwrap_or("");
    }
    if cur != output.name {
        return Err("its output is not the last operator's".into());
    }
    if b.shape.len() != 1 {
        return Err(format!("its output is {:?} per sample, not flat", b.shape));
    }
    let spec = Spec {
        input: sample,
        layers: b.layers,
        loss: Loss::Mse,
    };
    let net = Network::new(spec).map_err(|e| e.to_string())?;
    let mut params = Vec::with_capacity(net.len());
    for (w, bias) in b.params.into_iter().flatten() {
        params.extend(w);
        params.extend(bias);
    }
    if params.len() != net.len() {
        return Err(format!(
            "{} parameter values for a network of {}",
            params.len(),
            net.len()
        ));
    }
    net.served(&params).map_err(|e| e.to_string())
}

/// One sample's shape: the input's dimensions after the batch, all known, f32.
fn sample_shape(v: &tract_onnx::pb::ValueInfoProto) -> Result<Vec<usize>, String> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    use tract_onnx::pb::type_proto::Value as Ty;
    let Some(Ty::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err("its input is not a tensor".into());
    };
    if t.elem_type != 1 {
        return Err("its input is not f32".into());
    }
    let dims = t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
    let sample: Option<Vec<usize>> = dims
        .iter()
        .skip(1)
        .map(|d| match d.value {
            Some(Dim::DimValue(n)) if n > 0 => Some(n as usize),
            _ => None,
        })
        .collect();
    match sample {
        Some(s) if (1..=3).contains(&s.len()) => Ok(s),
        _ => Err(
            "its input is not [N, features] or [N, channels, height, width] with known sizes"
                .into(),
        ),
    }
}

fn constant(t: &TensorProto) -> Result<Constant, String> {
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let n: usize = dims.iter().product();
    let raw = &t.raw_data;
    let (floats, ints) = match t.data_type {
        1 if !raw.is_empty() => (
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
            vec![],
        ),
        1 => (t.float_data.clone(), vec![]),
        7 if !raw.is_empty() => (
            vec![],
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
        7 => (vec![], t.int64_data.clone()),
        other => return Err(format!("a constant {:?} of element type {other}", t.name)),
    };
    if floats.len().max(ints.len()) != n {
        return Err(format!("constant {:?} holds no data of its own", t.name));
    }
    Ok(Constant { dims, floats, ints })
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a tract_onnx::pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn int_attr(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

fn float_attr(node: &NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f)
}

fn ints_attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a [i64]> {
    attr(node, name).map(|a| a.ints.as_slice())
}

fn zeros(node: &NodeProto, name: &str) -> bool {
    ints_attr(node, name).is_none_or(|v| v.iter().all(|&x| x == 0))
}

fn ones(node: &NodeProto, name: &str) -> bool {
    ints_attr(node, name).is_none_or(|v| v.iter().all(|&x| x == 1))
}

fn not_padded(node: &NodeProto) -> bool {
    attr(node, "auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET" || a.s == b"VALID")
}

/// A square 2-D window's side.
fn square(node: &NodeProto, name: &str) -> Result<usize, String> {
    match ints_attr(node, name) {
        Some(&[h, w]) if h == w && h > 0 => Ok(h as usize),
        other => Err(format!("a {name} of {other:?}, not a square 2-D window")),
    }
}

fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

fn flatten(b: &mut Builder) {
    if b.shape.len() > 1 {
        b.shape = vec![b.shape.iter().product()];
        b.push(Layer::Flatten, None);
    }
}

fn conv(
    b: &mut Builder,
    node: &NodeProto,
    w: &Constant,
    bias: Option<&Constant>,
    has_bias: bool,
) -> Result<(), String> {
    let k = square(node, "kernel_shape").or_else(|_| match w.dims[..] {
        [_, _, h, w] if h == w => Ok(h),
        _ => Err(format!("a weight of shape {:?}", w.dims)),
    })?;
    let plain = zeros(node, "pads")
        && ones(node, "strides")
        && ones(node, "dilations")
        && int_attr(node, "group").unwrap_or(1) == 1
        && not_padded(node);
    if !plain {
        return Err("padding, strides, dilations or groups (amlip's kernels take none)".into());
    }
    let [out, c, kh, kw] = w.dims[..] else {
        return Err(format!("a weight of shape {:?}", w.dims));
    };
    let [ch, h, wd] = b.shape[..] else {
        return Err(format!("over a {:?} sample", b.shape));
    };
    if c != ch || kh != k || kw != k || k > h || k > wd {
        return Err(format!("a {:?} weight over a {:?} sample", w.dims, b.shape));
    }
    let bias = match (has_bias, bias) {
        (true, Some(b)) if b.floats.len() == out => b.floats.clone(),
        (true, _) => return Err("a bias that is not one value per output channel".into()),
        (false, _) => vec![0.0; out],
    };
    let name = format!("l{}", b.layers.len());
    b.shape = vec![out, h - k + 1, wd - k + 1];
    b.push(Layer::conv(&name, out, k), Some((w.floats.clone(), bias)));
    Ok(())
}

fn dense(b: &mut Builder, inl: usize, out: usize, weight: Vec<f32>) -> Result<(), String> {
    if b.shape != [inl] {
        return Err(format!(
            "takes {inl} values, the sample is {:?} here",
            b.shape
        ));
    }
    let name = format!("l{}", b.layers.len());
    b.shape = vec![out];
    b.push(
        Layer::Dense {
            name,
            inputs: Some(inl),
            out,
        },
        Some((weight, vec![0.0; out])),
    );
    Ok(())
}

/// Adds `scale` x `c` to the last layer's bias: a scalar, or one value per output channel
/// as ONNX broadcasting aligns it (dense: `[out]` or `[1, out]`; convolution: `[out, 1, 1]`
/// or `[1, out, 1, 1]`).
fn add_bias(b: &mut Builder, c: &Constant, scale: f32) -> Result<(), String> {
    // The layer's output, batch included: [N, out] or [N, out, h, w].
    let rank = b.shape.len() + 1;
    let Some((_, bias)) = b.last_params() else {
        return Err("an addition that is not a bias of the layer before".into());
    };
    let out = bias.len();
    let per_channel = c.dims.len() <= rank
        && c.dims.iter().rev().enumerate().all(|(from_end, &d)| {
            let axis = rank - 1 - from_end;
            d == 1 || (axis == 1 && d == out)
        });
    if !(c.floats.len() == 1 || (per_channel && c.floats.len() == out)) {
        return Err(format!("a bias of shape {:?} for {out} outputs", c.dims));
    }
    for (i, v) in bias.iter_mut().enumerate() {
        *v += scale * c.floats[i % c.floats.len()];
    }
    Ok(())
}

/// Folds `y = (x - mean) / sqrt(var + eps) * scale + shift` into the layer before.
fn batch_norm<'c>(
    b: &mut Builder,
    node: &NodeProto,
    konst: &dyn Fn(usize) -> Result<&'c Constant, String>,
) -> Result<(), String> {
    if node.output.iter().skip(1).any(|o| !o.is_empty())
        || int_attr(node, "training_mode").unwrap_or(0) != 0
    {
        return Err("in training mode".into());
    }
    let eps = float_attr(node, "epsilon").unwrap_or(1e-5);
    let (scale, shift, mean, var) = (konst(1)?, konst(2)?, konst(3)?, konst(4)?);
    let Some((w, bias)) = b.last_params() else {
        return Err("not after a convolution or dense layer".into());
    };
    let out = bias.len();
    if [scale, shift, mean, var]
        .iter()
        .any(|c| c.floats.len() != out)
    {
        return Err(format!("statistics that are not {out} values"));
    }
    let per = w.len() / out;
    for o in 0..out {
        let f = scale.floats[o] / (var.floats[o] + eps).sqrt();
        w[o * per..(o + 1) * per].iter_mut().for_each(|v| *v *= f);
        bias[o] = (bias[o] - mean.floats[o]) * f + shift.floats[o];
    }
    Ok(())
}
