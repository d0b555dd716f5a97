//! A model loaded for serving: ONNX through tract, or one of amlip's own model files (the MLP,
//! AML binary and one-vs-rest classifiers `main-node train --out` writes), behind one `run`
//! from named tensors to named tensors.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, TDim, TValue, Tensor as TractTensor,
    ToDim, TypedModel, TypedRunnableModel,
};

use crate::aml::{Embedding, Model as AmlModel, OneVsRest};
use crate::dataset::prepare::{Quantizer, Standardizer};
use crate::kind::federated::{weights_of, FedModel};
use crate::mlp::{argmax, Mlp, SparseImages};
use crate::payload::{DType, Payload, PayloadError, Tensor};

/// Largest model file a node loads or accepts from a peer (a CNN of 1.2 M parameters is 5 MB).
pub const MAX_MODEL_BYTES: usize = 256 << 20;

/// Why a model could not be loaded or run. Every message says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The file or announcement is not a model this build can load.
    #[error("model {name:?}: {why}")]
    Load {
        /// The model's name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A request for a model this node does not hold.
    #[error("no model {name:?} here (models served: {served})")]
    Unknown {
        /// The model asked for.
        name: String,
        /// What is served.
        served: String,
    },
    /// A request whose inputs do not fit the model.
    #[error("model {name:?}: {why}")]
    Input {
        /// The model.
        name: String,
        /// What was expected and what came.
        why: String,
    },
    /// The model failed on valid-looking inputs.
    #[error("model {name:?} failed: {why}")]
    Run {
        /// The model.
        name: String,
        /// tract's or amlip's message.
        why: String,
    },
    /// The request or answer payload itself.
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// What a model's input or output is: name, element type and shape (`None`: any size, as a
/// batch dimension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The tensor's name in requests and answers.
    pub name: String,
    /// `u8`, `i32`, `i64`, `f32` or `f64`.
    pub dtype: String,
    /// Dimensions; `null` where any size is accepted.
    pub shape: Vec<Option<usize>>,
}

impl TensorSpec {
    fn new(name: &str, dtype: DType, shape: &[Option<usize>]) -> Self {
        Self {
            name: name.into(),
            dtype: dtype_name(dtype).into(),
            shape: shape.to_vec(),
        }
    }

    /// The shape of `n` samples of `width` values each as this input takes them: its own
    /// dimensions after the batch when they are fixed and hold `width` values (`[n, 1, 28,
    /// 28]` for 784 pixels), else `[n, width]`.
    pub fn batch_shape(&self, n: usize, width: usize) -> Vec<usize> {
        let rest: Option<Vec<usize>> = self.shape.iter().skip(1).copied().collect();
        match rest {
            Some(rest) if rest.iter().product::<usize>() == width => {
                std::iter::once(n).chain(rest).collect()
            }
            _ => vec![n, width],
        }
    }

    /// Whether `t` fits; else what is wrong.
    fn check(&self, t: &Tensor) -> Result<(), String> {
        let dtype = dtype_name(t.dtype());
        let fits_shape = t.shape().len() == self.shape.len()
            && t.shape()
                .iter()
                .zip(&self.shape)
                .all(|(d, want)| want.is_none_or(|w| w == *d));
        if dtype != self.dtype || !fits_shape {
            return Err(format!(
                "input {:?} is {dtype} {:?}, expected {} {}",
                self.name,
                t.shape(),
                self.dtype,
                shape_text(&self.shape)
            ));
        }
        Ok(())
    }
}

/// `[N, 784]`-style text for a spec's shape.
pub fn shape_text(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("N".into(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::U8 => "u8",
        DType::I32 => "i32",
        DType::I64 => "i64",
        DType::F32 => "f32",
        DType::F64 => "f64",
    }
}

/// What a model is, as announcements and `main-node models` say it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name requests use.
    pub name: String,
    /// `onnx`, `mlp`, `aml` or `aml_ten_class`.
    pub kind: String,
    /// Grows with every model published under the name; the highest wins.
    pub version: u64,
    /// What a request must carry.
    pub inputs: Vec<TensorSpec>,
    /// What an answer carries.
    pub outputs: Vec<TensorSpec>,
    /// The model file's size.
    pub bytes: usize,
    /// Class names, when the model classifies (`label` outputs index them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// What computes it: `amlip` (amlip's own kernels, ONNX graphs they can run included) or
    /// `tract: WHY` (an ONNX graph amlip's kernels do not take, and why). Empty from nodes
    /// that predate it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine: String,
}

/// Which engine serves an ONNX model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnnxEngine {
    /// amlip's own kernels when the graph maps onto them, else tract.
    #[default]
    Auto,
    /// tract always (to compare the engines).
    Tract,
}

/// How a model computes.
enum Engine {
    /// tract's plan, and why amlip's kernels do not run the graph.
    Onnx {
        plan: Arc<TypedRunnableModel<TypedModel>>,
        why: String,
    },
    Mlp {
        net: Box<Mlp>,
        standardizer: Option<Standardizer>,
        target: Option<(f32, f32)>,
    },
    Aml {
        models: Vec<AmlModel>,
        embedding: Embedding,
        quantizer: Option<Quantizer>,
    },
    /// An ONNX graph imported into a network of [`crate::nn`]: same inputs and outputs as the
    /// file, run by amlip's kernels.
    Imported(Box<crate::nn::Served>),
    /// A network of [`crate::nn`]; `pixels` (mean, std) normalises u8 inputs as in training.
    Nn {
        served: Box<crate::nn::Served>,
        pixels: Option<(f32, f32)>,
    },
}

/// A model ready to serve, with its file (handed on to model receivers as is).
pub struct Model {
    info: ModelInfo,
    engine: Engine,
    file: Bytes,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("info", &self.info).finish()
    }
}

impl Model {
    /// Loads the model file `file` (ONNX, or an amlip model payload) under `name`.
    pub fn from_bytes(name: &str, version: u64, file: Bytes) -> Result<Self, InferError> {
        Self::from_bytes_on(name, version, file, OnnxEngine::Auto)
    }

    /// [`from_bytes`](Self::from_bytes), an ONNX file served by the engine `onnx` says.
    pub fn from_bytes_on(
        name: &str,
        version: u64,
        file: Bytes,
        onnx: OnnxEngine,
    ) -> Result<Self, InferError> {
        let load = |why: String| InferError::Load {
            name: name.into(),
            why,
        };
        if file.len() > MAX_MODEL_BYTES {
            return Err(load(format!(
                "{} bytes is more than the {MAX_MODEL_BYTES} a model may have",
                file.len()
            )));
        }
        let (kind, engine, inputs, outputs, classes) = match Payload::decode(&file) {
            Ok(p) => amlip_model(&p).map_err(load)?,
            Err(_) if looks_like_safetensors(&file) => {
                return Err(load(
                    "a safetensors file, but not an amlip model (kind mlp_model, nn_model, \
                     aml_classifier or aml_ten_class)"
                        .into(),
                ))
            }
            Err(_) => onnx_model(&file, onnx).map_err(load)?,
        };
        let engine_name = match &engine {
            Engine::Onnx { why, .. } => format!("tract: {why}"),
            _ => "amlip".into(),
        };
        if let Engine::Onnx { why, .. } = &engine {
            tracing::info!(model = name, "served by tract: {why}");
        }
        Ok(Self {
            info: ModelInfo {
                name: name.into(),
                kind: kind.into(),
                version,
                inputs,
                outputs,
                bytes: file.len(),
                classes,
                engine: engine_name,
            },
            engine,
            file,
        })
    }

    /// Loads a model file from disk; its name is the file's stem unless `name` is given.
    pub fn load(path: &std::path::Path, name: Option<&str>) -> Result<Self, InferError> {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let name = name.map(str::to_owned).unwrap_or(stem);
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if size > MAX_MODEL_BYTES as u64 {
            return Err(InferError::Load {
                name,
                why: format!("{}: {size} bytes is too large for a model", path.display()),
            });
        }
        let file = std::fs::read(path).map_err(|e| InferError::Load {
            name: name.clone(),
            why: format!("{}: {e}", path.display()),
        })?;
        Self::from_bytes(&name, 1, Bytes::from(file))
    }

    /// The model's name, kind, version and tensors.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model file, as loaded.
    pub fn file(&self) -> &Bytes {
        &self.file
    }

    /// Runs the model on `inputs` (by name; a model with one input takes any one tensor).
    pub fn run(
        &self,
        inputs: &BTreeMap<String, Tensor>,
    ) -> Result<BTreeMap<String, Tensor>, InferError> {
        let name = &self.info.name;
        let bad = |why: String| InferError::Input {
            name: name.clone(),
            why,
        };
        let mut ordered = Vec::with_capacity(self.info.inputs.len());
        for spec in &self.info.inputs {
            let t = match inputs.get(&spec.name) {
                Some(t) => t,
                None if self.info.inputs.len() == 1 && inputs.len() == 1 => {
                    inputs.values().next().expect("one")
                }
                None => {
                    return Err(bad(format!(
                        "no input {:?} (the request has: {}; the model takes: {})",
                        spec.name,
                        names(inputs.keys()),
                        names(self.info.inputs.iter().map(|s| &s.name))
                    )))
                }
            };
            self.accept(spec, t).map_err(&bad)?;
            ordered.push(t);
        }
        let run = |why: String| InferError::Run {
            name: name.clone(),
            why,
        };
        match &self.engine {
            Engine::Onnx { plan, .. } => {
                let values: Result<Vec<TValue>, String> = ordered
                    .iter()
                    .map(|t| to_tract(t).map(TValue::from))
                    .collect();
                let outs = plan
                    .run(values.map_err(&bad)?.into_iter().collect())
                    .map_err(|e| run(format!("{e:#}")))?;
                let mut named = BTreeMap::new();
                for (spec, value) in self.info.outputs.iter().zip(outs) {
                    named.insert(spec.name.clone(), from_tract(&value).map_err(&run)?);
                }
                Ok(named)
            }
            Engine::Mlp {
                net,
                standardizer,
                target,
            } => {
                let x = mlp_inputs(ordered[0], standardizer.as_ref()).map_err(&bad)?;
                let mut out = BTreeMap::new();
                match target {
                    Some((mean, sd)) => {
                        let v: Vec<f32> = net
                            .predict_values(&x)
                            .into_iter()
                            .map(|z| z * sd + mean)
                            .collect();
                        out.insert("value".into(), f32_tensor(&[v.len()], &v));
                    }
                    None => {
                        let p = net.probabilities(&x);
                        let labels: Vec<i64> =
                            p.rows().into_iter().map(|r| argmax(r) as i64).collect();
                        out.insert("probabilities".into(), Tensor::from_f32(p.view()));
                        out.insert("label".into(), i64_tensor(&labels));
                    }
                }
                Ok(out)
            }
            Engine::Aml {
                models,
                embedding,
                quantizer,
            } => {
                let x = aml_inputs(ordered[0], quantizer.as_ref()).map_err(&bad)?;
                let labels: Vec<i64> = if models.len() == 1 {
                    let terms = embedding.terms(x.view());
                    terms
                        .iter()
                        .map(|t| i64::from(models[0].predict(t)))
                        .collect()
                } else {
                    let ovr = OneVsRest {
                        models: models.clone(),
                    };
                    ovr.predict_images(embedding, x.view())
                        .into_iter()
                        .map(i64::from)
                        .collect()
                };
                let mut out = BTreeMap::new();
                out.insert("label".into(), i64_tensor(&labels));
                Ok(out)
            }
            Engine::Imported(served) => {
                let x = ordered[0]
                    .to_f32s()
                    .ok_or_else(|| bad("the input is not f32".into()))?;
                let slicing = Slicing::start();
                let y = served
                    .forward(&x, slicing.threads())
                    .map_err(|e| run(e.to_string()))?;
                let outs = served.network().output_len();
                let spec = &self.info.outputs[0];
                Ok(BTreeMap::from([(
                    spec.name.clone(),
                    f32_tensor(&[y.len() / outs.max(1), outs], &y),
                )]))
            }
            Engine::Nn { served, pixels } => {
                let net = served.network();
                let t = ordered[0];
                let x: Vec<f32> = match (t.dtype(), pixels) {
                    (DType::U8, Some((mean, std))) => t
                        .bytes()
                        .iter()
                        .map(|&b| (b as f32 / 255.0 - mean) / std)
                        .collect(),
                    (DType::U8, None) => t.bytes().iter().map(|&b| b as f32).collect(),
                    _ => f32_array(t).map_err(&bad)?.into_raw_vec_and_offset().0,
                };
                let slicing = Slicing::start();
                let y = served
                    .forward(&x, slicing.threads())
                    .map_err(|e| run(e.to_string()))?;
                let outs = net.output_len();
                let n = y.len() / outs.max(1);
                let mut out = BTreeMap::new();
                if net.spec().loss.classifies() {
                    let labels: Vec<i64> = y
                        .chunks_exact(outs)
                        .map(|r| {
                            r.iter()
                                .enumerate()
                                .max_by(|a, b| a.1.total_cmp(b.1))
                                .map_or(0, |(i, _)| i as i64)
                        })
                        .collect();
                    out.insert("label".into(), i64_tensor(&labels));
                }
                out.insert("output".into(), f32_tensor(&[n, outs], &y));
                Ok(out)
            }
        }
    }

    /// Whether `t` fits `spec`; amlip's own models also take f32 where they list u8.
    fn accept(&self, spec: &TensorSpec, t: &Tensor) -> Result<(), String> {
        match (&self.engine, t.dtype()) {
            (Engine::Onnx { .. } | Engine::Imported(_), _) | (_, DType::U8) => spec.check(t),
            (Engine::Nn { .. }, DType::F32) if spec.dtype == "f32" => spec.check(t),
            (_, DType::F32) => {
                let as_u8 = Tensor::new(DType::U8, t.shape(), vec![0u8; t.len()])
                    .map_err(|e| e.to_string())?;
                spec.check(&as_u8).map_err(|e| e.replace("is u8", "is f32"))
            }
            _ => spec.check(t),
        }
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(", ")
    }
}

fn looks_like_safetensors(b: &[u8]) -> bool {
    b.len() >= 9 && b[8] == b'{'
}

type Loaded = (
    &'static str,
    Engine,
    Vec<TensorSpec>,
    Vec<TensorSpec>,
    Vec<String>,
);

/// Requests computing in this process now (see [`Slicing`]).
static COMPUTING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The threads a request's batch may be cut into while it computes: the cores this process
/// may use, shared among the requests computing at once. A node serving several requests side
/// by side already keeps its cores busy: cutting each batch too cost more in hand-offs than it
/// gained (measured: dense batch 64, two workers, 15% of the node's time waking threads).
struct Slicing;

impl Slicing {
    fn start() -> Self {
        COMPUTING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Slicing
    }

    fn threads(&self) -> usize {
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let now = COMPUTING.load(std::sync::atomic::Ordering::Relaxed).max(1);
        (cores / now).max(1)
    }
}

impl Drop for Slicing {
    fn drop(&mut self) {
        COMPUTING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An ONNX model: imported into amlip's kernels when its graph maps onto them (and `engine`
/// allows), else optimised by tract for any batch size where the file leaves the batch free.
fn onnx_model(file: &[u8], engine: OnnxEngine) -> Result<Loaded, String> {
    let onnx = tract_onnx::onnx();
    let proto = onnx
        .proto_model_for_read(&mut std::io::Cursor::new(file))
        .map_err(|e| format!("not an ONNX model: {e:#}"))?;
    let graph = proto.graph.as_ref().ok_or("the ONNX file has no graph")?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let spec_of = |v: &tract_onnx::pb::ValueInfoProto| -> Result<TensorSpec, String> {
        use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
        use tract_onnx::pb::type_proto::Value as Ty;
        let Some(Ty::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            return Err(format!("{:?} is not a tensor", v.name));
        };
        let dtype = match t.elem_type {
            1 => DType::F32,
            2 => DType::U8,
            6 => DType::I32,
            7 => DType::I64,
            11 => DType::F64,
            other => {
                return Err(format!(
                    "{:?} has ONNX element type {other}, which amlip's requests cannot carry",
                    v.name
                ))
            }
        };
        let shape: Vec<Option<usize>> = t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(Dim::DimValue(n)) if n > 0 => Some(n as usize),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(TensorSpec::new(&v.name, dtype, &shape))
    };
    let inputs: Vec<TensorSpec> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .map(spec_of)
        .collect::<Result<_, _>>()?;
    let outputs: Vec<TensorSpec> = graph.output.iter().map(spec_of).collect::<Result<_, _>>()?;
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(13, |o| o.version);
    let why = match engine {
        OnnxEngine::Tract => "asked for".to_string(),
        OnnxEngine::Auto => match super::import::import(graph, opset) {
            Ok(served) => {
                let engine = Engine::Imported(Box::new(served));
                return Ok(("onnx", engine, inputs, outputs, vec![]));
            }
            Err(why) => why,
        },
    };
    let mut model = onnx
        .model_for_proto_model(&proto)
        .map_err(|e| format!("tract cannot read it: {e:#}"))?;
    // Free dimensions become one symbol per axis position, so the plan takes any batch.
    for (i, spec) in inputs.iter().enumerate() {
        let dt = match spec.dtype.as_str() {
            "u8" => DatumType::U8,
            "i32" => DatumType::I32,
            "i64" => DatumType::I64,
            "f64" => DatumType::F64,
            _ => DatumType::F32,
        };
        let dims: Vec<TDim> = spec
            .shape
            .iter()
            .enumerate()
            .map(|(k, d)| match d {
                Some(n) => TDim::from(*n),
                None => model.sym(&format!("d{i}_{k}")).to_dim(),
            })
            .collect();
        let fact = InferenceFact::dt_shape(dt, dims);
        model
            .set_input_fact(i, fact)
            .map_err(|e| format!("input {:?}: {e:#}", spec.name))?;
    }
    let plan = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("tract cannot run it: {e:#}"))?;
    Ok((
        "onnx",
        Engine::Onnx {
            plan: Arc::new(plan),
            why,
        },
        inputs,
        outputs,
        vec![],
    ))
}

/// One of amlip's model files.
fn amlip_model(p: &Payload) -> Result<Loaded, String> {
    let data: &Value = &p.params_json()["data"];
    let classes: Vec<String> = data["classes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let standardizer: Option<Standardizer> = parse_opt(&data["standardizer"], "standardizer")?;
    let quantizer: Option<Quantizer> = parse_opt(&data["quantizer"], "quantizer")?;
    let embedding: Option<Embedding> = parse_opt(&data["embedding"], "embedding")?;
    let dtype = if standardizer.is_some() || quantizer.is_some() {
        DType::F32
    } else {
        DType::U8
    };
    match p.kind() {
        "mlp_model" => {
            let net = Mlp::from_weights(&weights_of(p).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let target = match (data["target_mean"].as_f64(), data["target_sd"].as_f64()) {
                (Some(m), Some(s)) => Some((m as f32, s as f32)),
                _ => None,
            };
            let inputs = vec![TensorSpec::new("input", dtype, &[None, Some(net.inputs())])];
            let outputs = if target.is_some() {
                vec![TensorSpec::new("value", DType::F32, &[None])]
            } else {
                vec![
                    TensorSpec::new("probabilities", DType::F32, &[None, Some(net.classes())]),
                    TensorSpec::new("label", DType::I64, &[None]),
                ]
            };
            let engine = Engine::Mlp {
                net: Box::new(net),
                standardizer,
                target,
            };
            Ok(("mlp", engine, inputs, outputs, classes))
        }
        kind @ ("aml_classifier" | "aml_ten_class") => {
            let mut models = Vec::new();
            let cutoffs: Vec<Option<u32>> = match kind {
                "aml_classifier" => vec![p.params_json()["cutoff"].as_u64().map(|c| c as u32)],
                _ => p.params_json()["cutoffs"]
                    .as_array()
                    .map(|a| a.iter().map(|c| c.as_u64().map(|c| c as u32)).collect())
                    .unwrap_or_default(),
            };
            for (i, cutoff) in cutoffs.iter().enumerate() {
                let tensor = if kind == "aml_classifier" {
                    "model".to_string()
                } else {
                    format!("digit{i}")
                };
                let bytes = p.tensor(&tensor).map_err(|e| e.to_string())?;
                let mut m = AmlModel::from_bytes(bytes.bytes())
                    .map_err(|e| format!("tensor {tensor:?}: {e}"))?;
                if m.cutoff.is_none() {
                    m.cutoff = *cutoff;
                }
                models.push(m);
            }
            if models.is_empty() {
                return Err("an AML model file with no classifiers".into());
            }
            let n_constants = models[0].n_constants;
            let embedding = embedding.unwrap_or_else(|| Embedding::pixels(784));
            if embedding.n_constants() != n_constants {
                return Err(format!(
                    "its embedding makes {} constants but its atoms have {n_constants}",
                    embedding.n_constants()
                ));
            }
            let width = embedding.features;
            let inputs = vec![TensorSpec::new("input", dtype, &[None, Some(width)])];
            let outputs = vec![TensorSpec::new("label", DType::I64, &[None])];
            let engine = Engine::Aml {
                models,
                embedding,
                quantizer,
            };
            if kind == "aml_classifier" {
                // A binary classifier answers 1 for its class, 0 for any other.
                let d = p.params_json()["digit"].as_u64().unwrap_or(0) as usize;
                let class = classes.get(d).cloned().unwrap_or_else(|| d.to_string());
                return Ok((
                    "aml",
                    engine,
                    inputs,
                    outputs,
                    vec![format!("not {class}"), class],
                ));
            }
            Ok(("aml_ten_class", engine, inputs, outputs, classes))
        }
        "nn_model" => nn_model(p),
        other => Err(format!(
            "an amlip payload of kind {other:?}, not a model (mlp_model, nn_model, \
             aml_classifier or aml_ten_class)"
        )),
    }
}

/// A network of [`crate::nn`]: its spec (and pixel normalisation) in the metadata, its
/// parameters as tensors by their names (or `p.<name>`, as pipelines save them).
fn nn_model(p: &Payload) -> Result<Loaded, String> {
    let meta = p.params_json();
    let spec: crate::nn::Spec = serde_json::from_value(meta["spec"].clone())
        .map_err(|e| format!("its spec is malformed: {e}"))?;
    let net = crate::nn::Network::new(spec).map_err(|e| e.to_string())?;
    let plain = net.params_from(p.tensors());
    let params = match plain {
        Ok(v) => v,
        Err(_) => crate::group::read_params(p, &net).map_err(|e| e.to_string())?,
    };
    let pixels = match (
        meta["pixels"]["mean"].as_f64(),
        meta["pixels"]["std"].as_f64(),
    ) {
        (Some(m), Some(s)) if s > 0.0 => Some((m as f32, s as f32)),
        _ => None,
    };
    let dtype = if pixels.is_some() {
        DType::U8
    } else {
        DType::F32
    };
    let (ins, outs) = (net.input_len(), net.output_len());
    let inputs = vec![TensorSpec::new("input", dtype, &[None, Some(ins)])];
    let mut outputs = vec![TensorSpec::new("output", DType::F32, &[None, Some(outs)])];
    if net.spec().loss.classifies() {
        outputs.insert(0, TensorSpec::new("label", DType::I64, &[None]));
    }
    let engine = Engine::Nn {
        served: Box::new(net.served(&params).map_err(|e| e.to_string())?),
        pixels,
    };
    Ok(("nn", engine, inputs, outputs, Vec::new()))
}

fn parse_opt<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<Option<T>, String> {
    if v.is_null() {
        return Ok(None);
    }
    serde_json::from_value(v.clone())
        .map(Some)
        .map_err(|e| format!("its {what} is malformed: {e}"))
}

/// An MLP's inputs: image bytes scaled to 0..1, or numbers standardised as in training.
fn mlp_inputs(t: &Tensor, s: Option<&Standardizer>) -> Result<SparseImages, String> {
    let (n, d) = (t.shape()[0], t.shape()[1]);
    match t.dtype() {
        DType::U8 => {
            let a = ArrayView2::from_shape((n, d), &t.bytes()[..]).map_err(|e| e.to_string())?;
            Ok(SparseImages::from_bytes(a))
        }
        _ => {
            let a = f32_array(t)?;
            let a = match s {
                Some(s) => s.apply(a.view()),
                None => a,
            };
            Ok(SparseImages::from_f32(a.view()))
        }
    }
}

/// AML's inputs: bytes as they are, or numbers cut into the training set's levels.
fn aml_inputs(t: &Tensor, q: Option<&Quantizer>) -> Result<Array2<u8>, String> {
    let (n, d) = (t.shape()[0], t.shape()[1]);
    match (t.dtype(), q) {
        (DType::U8, _) => {
            Array2::from_shape_vec((n, d), t.bytes().to_vec()).map_err(|e| e.to_string())
        }
        (_, Some(q)) => Ok(q.apply(f32_array(t)?.view())),
        (_, None) => {
            let a = f32_array(t)?;
            if a.iter().any(|v| !(0.0..=255.0).contains(v)) {
                return Err("an image model's f32 input must hold pixel values 0..255".into());
            }
            Ok(a.mapv(|v| v.round() as u8))
        }
    }
}

fn f32_array(t: &Tensor) -> Result<Array2<f32>, String> {
    let (n, d) = (t.shape()[0], t.shape()[1]);
    let v = t
        .to_f32s()
        .ok_or_else(|| format!("{:?} inputs where f32 was expected", t.dtype()))?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "sample {}, feature {}: {} (inputs must be finite)",
            i / d.max(1),
            i % d.max(1),
            v[i]
        ));
    }
    Array2::from_shape_vec((n, d), v).map_err(|e| e.to_string())
}

fn i64_tensor(v: &[i64]) -> Tensor {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    Tensor::new(DType::I64, &[v.len()], bytes).expect("sized")
}

fn f32_tensor(shape: &[usize], v: &[f32]) -> Tensor {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    Tensor::new(DType::F32, shape, bytes).expect("sized")
}

fn to_tract(t: &Tensor) -> Result<TractTensor, String> {
    let dt = match t.dtype() {
        DType::U8 => DatumType::U8,
        DType::I32 => DatumType::I32,
        DType::I64 => DatumType::I64,
        DType::F32 => DatumType::F32,
        DType::F64 => DatumType::F64,
    };
    // SAFETY: `Tensor::new` checked that the bytes are exactly shape x element size, and
    // every bit pattern is a valid value of these plain numeric types.
    unsafe { TractTensor::from_raw_dt(dt, t.shape(), t.bytes()) }.map_err(|e| e.to_string())
}

fn from_tract(v: &TractTensor) -> Result<Tensor, String> {
    let dtype = match v.datum_type() {
        DatumType::U8 | DatumType::Bool => DType::U8,
        DatumType::I32 => DType::I32,
        DatumType::I64 => DType::I64,
        DatumType::F32 => DType::F32,
        DatumType::F64 => DType::F64,
        other => {
            let cast = v
                .cast_to_dt(DatumType::F32)
                .map_err(|e| format!("an output of type {other:?}: {e}"))?;
            return from_tract(&cast);
        }
    };
    Tensor::new(dtype, v.shape(), Bytes::copy_from_slice(v.as_bytes())).map_err(|e| e.to_string())
}
