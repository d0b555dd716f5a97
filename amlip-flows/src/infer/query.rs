//! Querying served models from a program (what `main-node infer` does): finding a model
//! someone serves, sending one request, predicting a data set and scoring it, measuring
//! latency and throughput.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::model::{shape_text, InferError, ModelInfo, TensorSpec};
use super::publish::Publisher;
use super::wire::{Answer, Request};
use crate::cancel::CancelToken;
use crate::dataset::{Dataset, Features};
use crate::error::{Error, JobError};
use crate::node::EdgeNode;
use crate::payload::{DType, Payload, PayloadError, Tensor};

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No node serves the model.
    #[error("no node serves model {name:?} (models announced: {announced})")]
    NotServed {
        /// The model asked for.
        name: String,
        /// What is announced instead.
        announced: String,
    },
    /// The model does not take what was given.
    #[error(transparent)]
    Model(#[from] InferError),
    /// A request or its answer.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The edge node could not send a request.
    #[error(transparent)]
    Node(#[from] Error),
    /// A request got no answer, or an error one.
    #[error("request {request} failed: {why}")]
    Request {
        /// Which (by number).
        request: usize,
        /// What happened.
        why: JobError,
    },
    /// An answer that cannot be read as predictions.
    #[error("{0}")]
    Answer(String),
    /// Stopped by the cancel token.
    #[error("interrupted")]
    Cancelled,
}

/// The newest version of `name` that some node serves, waiting for one at most `timeout`.
pub fn find_served(
    publisher: &Publisher,
    name: &str,
    timeout: Duration,
    cancel: &CancelToken,
) -> Result<ModelInfo, QueryError> {
    let start = Instant::now();
    loop {
        if let Some(s) = publisher
            .servers(name, 0)
            .into_iter()
            .max_by_key(|s| s.info.version)
        {
            return Ok(s.info);
        }
        if start.elapsed() > timeout || cancel.wait_timeout(Duration::from_millis(50)) {
            let mut names: Vec<String> = publisher
                .statistics()
                .iter()
                .map(|s| s.name.clone())
                .collect();
            names.sort();
            names.dedup();
            return Err(QueryError::NotServed {
                name: name.to_owned(),
                announced: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        }
    }
}

/// One request: `inputs` (named as the model's) to the model, its outputs back.
pub fn request(
    edge: &EdgeNode,
    model: &ModelInfo,
    inputs: BTreeMap<String, Tensor>,
    timeout: Duration,
) -> Result<BTreeMap<String, Tensor>, QueryError> {
    let request = Request {
        model: model.name.clone(),
        inputs,
    }
    .to_bytes()?;
    let solution = edge.request_inference(request, timeout)?;
    Ok(Answer::from_bytes(&solution.data)?.outputs)
}

/// A data set's predictions, and how many of its labels they match.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// Each sample's predicted class.
    pub labels: Vec<i64>,
    /// Predictions equal to the data's class (by name).
    pub correct: usize,
    /// Samples with a class to compare against (0 when the data has none).
    pub scored: usize,
    /// Wall time of all the requests.
    pub seconds: f64,
}

impl Prediction {
    /// The share of scored samples predicted right, if any were scored.
    pub fn accuracy(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.correct as f64 / self.scored as f64)
    }

    /// The predictions as a payload (`predictions`, an i64 tensor `label`).
    pub fn to_payload(&self) -> Result<Payload, PayloadError> {
        let bytes: Vec<u8> = self.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = Tensor::new(DType::I64, &[self.labels.len()], bytes)?;
        Ok(Payload::new("predictions").with_tensor("label", t))
    }
}

/// Predicts every sample of `data` with `model`, `batch` samples per request (all requests in
/// flight at once, spread over the nodes serving it), and scores the predictions against the
/// data's classes.
pub fn predict(
    edge: &EdgeNode,
    model: &ModelInfo,
    data: &Dataset,
    batch: usize,
    timeout: Duration,
    cancel: &CancelToken,
) -> Result<Prediction, QueryError> {
    let spec = match model.inputs.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(QueryError::Answer(format!(
                "model {:?} takes {} inputs ({}); a data set feeds models of one input",
                model.name,
                model.inputs.len(),
                specs_text(&model.inputs)
            )))
        }
    };
    let n = data.len();
    let batch_len = batch.max(1);
    let start = Instant::now();
    let mut requests = edge.batch::<usize>().job_timeout(timeout).cancel_on(cancel);
    for (k, lo) in (0..n).step_by(batch_len).enumerate() {
        let rows: Vec<usize> = (lo..(lo + batch_len).min(n)).collect();
        let input = input_tensor(&data.select(&rows), &spec)?;
        let request = Request {
            model: model.name.clone(),
            inputs: [(spec.name.clone(), input)].into(),
        }
        .to_bytes()?;
        requests.submit(k, request)?;
    }
    let mut predicted = vec![None::<i64>; n];
    for outcome in &mut requests {
        let solution = outcome.result.map_err(|why| QueryError::Request {
            request: outcome.label,
            why,
        })?;
        let answer = Answer::from_bytes(&solution.data)?;
        let labels = answer.labels().ok_or_else(|| {
            QueryError::Answer(
                "the answer has no label and no score matrix to take a class from".into(),
            )
        })?;
        let lo = outcome.label * batch_len;
        for (i, l) in labels.into_iter().enumerate() {
            if let Some(slot) = predicted.get_mut(lo + i) {
                *slot = Some(l);
            }
        }
    }
    if cancel.is_cancelled() {
        return Err(QueryError::Cancelled);
    }
    let seconds = start.elapsed().as_secs_f64();
    let labels: Vec<i64> = predicted
        .into_iter()
        .map(|p| p.ok_or_else(|| QueryError::Answer("an answer was missing samples".into())))
        .collect::<Result<_, _>>()?;
    let (correct, scored) = score(model, data, &labels);
    Ok(Prediction {
        labels,
        correct,
        scored,
        seconds,
    })
}

/// A batch of samples as the model's input: reshaped to its shape, pixels scaled to 0..1
/// for float inputs (as PyTorch and Keras MNIST models take them), numbers as they are.
pub fn input_tensor(d: &Dataset, spec: &TensorSpec) -> Result<Tensor, QueryError> {
    let shape = spec.batch_shape(d.len(), d.width());
    let t = match (&d.features, spec.dtype.as_str()) {
        (Features::Pixels(x), "u8") => {
            Tensor::new(DType::U8, &shape, x.iter().copied().collect::<Vec<u8>>())?
        }
        (Features::Pixels(x), "f32") => Tensor::new(
            DType::F32,
            &shape,
            x.iter()
                .flat_map(|&p| (p as f32 / 255.0).to_le_bytes())
                .collect::<Vec<u8>>(),
        )?,
        (Features::Values(x), "f32") => Tensor::new(
            DType::F32,
            &shape,
            x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
        )?,
        (_, other) => {
            return Err(QueryError::Answer(format!(
                "the model takes {other} {}; the data gives {}",
                shape_text(&spec.shape),
                if matches!(d.features, Features::Pixels(_)) {
                    "pixels (u8)"
                } else {
                    "numbers (f32)"
                }
            )))
        }
    };
    Ok(t)
}

/// Correct predictions and samples scored, comparing class names (a binary AML model's
/// classes are `not X` and `X`).
pub fn score(model: &ModelInfo, d: &Dataset, predicted: &[i64]) -> (usize, usize) {
    let (Some(labels), names) = (d.labels(), d.class_names()) else {
        return (0, 0);
    };
    let name_of = |p: i64| -> String {
        usize::try_from(p)
            .ok()
            .and_then(|p| model.classes.get(p).cloned())
            .unwrap_or_else(|| p.to_string())
    };
    let binary = match model.classes.as_slice() {
        [not, yes] if not.strip_prefix("not ") == Some(yes.as_str()) => Some(yes.clone()),
        _ => None,
    };
    let correct = labels
        .iter()
        .zip(predicted)
        .filter(|(&l, &p)| {
            let truth = names
                .get(l as usize)
                .cloned()
                .unwrap_or_else(|| l.to_string());
            let truth = match &binary {
                Some(yes) if truth != *yes => format!("not {yes}"),
                _ => truth,
            };
            name_of(p) == truth
        })
        .count();
    (correct, labels.len())
}

/// Latency and throughput of a served model.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Samples per request.
    pub batch: usize,
    /// Requests per measurement.
    pub requests: usize,
    /// Nodes that answered.
    pub servers: usize,
    /// Round trip of one request alone, median (ms).
    pub latency_ms_p50: f64,
    /// Its 90th percentile (ms).
    pub latency_ms_p90: f64,
    /// Requests answered per second with all in flight.
    pub requests_per_s: f64,
    /// Samples answered per second with all in flight.
    pub samples_per_s: f64,
}

/// `requests` requests of `batch` random samples: first one at a time (latency), then all at
/// once (throughput), after five to warm up.
pub fn bench(
    edge: &EdgeNode,
    model: &ModelInfo,
    batch: usize,
    requests: usize,
    timeout: Duration,
    cancel: &CancelToken,
) -> Result<BenchReport, QueryError> {
    let input = random_input(model, batch)?;
    let request = Request {
        model: model.name.clone(),
        inputs: [(model.inputs[0].name.clone(), input)].into(),
    }
    .to_bytes()?;
    for _ in 0..5 {
        edge.request_inference(request.clone(), timeout)?;
    }
    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests.max(1) {
        if cancel.is_cancelled() {
            return Err(QueryError::Cancelled);
        }
        let t = Instant::now();
        edge.request_inference(request.clone(), timeout)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let start = Instant::now();
    let mut all = edge.batch::<usize>().job_timeout(timeout).cancel_on(cancel);
    for i in 0..requests {
        all.submit(i, request.clone())?;
    }
    for outcome in &mut all {
        outcome.result.map_err(|why| QueryError::Request {
            request: outcome.label,
            why,
        })?;
    }
    let rate = requests as f64 / start.elapsed().as_secs_f64();
    Ok(BenchReport {
        batch,
        requests,
        servers: edge.stats().computing_nodes.len(),
        latency_ms_p50: pct(0.5),
        latency_ms_p90: pct(0.9),
        requests_per_s: rate,
        samples_per_s: rate * batch as f64,
    })
}

/// `batch` samples of uniform noise shaped as the model's one input (f32 in 0..1, or u8).
fn random_input(model: &ModelInfo, batch: usize) -> Result<Tensor, QueryError> {
    let [spec] = model.inputs.as_slice() else {
        return Err(QueryError::Answer(format!(
            "a benchmark feeds models of one input; {:?} takes {}",
            model.name,
            specs_text(&model.inputs)
        )));
    };
    let mut shape = vec![batch];
    for d in spec.shape.iter().skip(1) {
        shape.push(d.ok_or_else(|| {
            QueryError::Answer(
                "a benchmark needs a model whose inputs have fixed sizes but the batch".into(),
            )
        })?);
    }
    let n: usize = shape.iter().product();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    Ok(match spec.dtype.as_str() {
        "f32" => Tensor::new(
            DType::F32,
            &shape,
            (0..n)
                .flat_map(|_| next().to_le_bytes())
                .collect::<Vec<u8>>(),
        )?,
        "u8" => Tensor::new(
            DType::U8,
            &shape,
            (0..n).map(|_| (next() * 255.0) as u8).collect::<Vec<u8>>(),
        )?,
        other => {
            return Err(QueryError::Answer(format!(
                "a benchmark makes f32 or u8 inputs; the model takes {other}"
            )))
        }
    })
}

/// Inputs or outputs as text: `name dtype [shape]`, comma-separated.
pub fn specs_text(s: &[TensorSpec]) -> String {
    s.iter()
        .map(|s| format!("{} {} {}", s.name, s.dtype, shape_text(&s.shape)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A tensor's first values, as text (`[0.1000, 0.2000, ...]`).
pub fn preview(t: &Tensor) -> String {
    let vals: Vec<String> = if let Some(v) = t.to_f32s() {
        v.iter().take(8).map(|x| format!("{x:.4}")).collect()
    } else if let Some(v) = t.to_i64s() {
        v.iter().take(8).map(i64::to_string).collect()
    } else {
        t.bytes().iter().take(8).map(u8::to_string).collect()
    };
    let more = if t.len() > 8 { ", ..." } else { "" };
    format!("[{}{more}]", vals.join(", "))
}
