//! What inference requests, answers, model announcements and model requests carry.
//!
//! - A request is an amlip payload of kind `infer`, parameters `{"model": NAME}`, its inputs as
//!   named tensors; the answer is kind `infer_result`, parameters `{"model", "version"}`, the
//!   outputs as named tensors. Both are safetensors, so Python writes and reads them directly.
//! - AML-IP's own edge nodes send text: a JSON list of pixel values (an MNIST image: 784
//!   integers 0..255), or `{"model": NAME, "input": [...]}`; the answer is the class as text.
//! - A model announcement (the blob of `amlip/model_statistics`) is JSON:
//!   `{"amlip_model": "sender"|"server", "info": {name, kind, version, inputs, outputs, ...}}`.
//!   `sender`: a model manager offers the file; `server`: an inference node serves it.
//! - A model request (the RPC's data) is JSON `{"model": NAME}`; the reply is the model file.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::ModelInfo;
use crate::mlp::argmax;
use crate::payload::{DType, Payload, PayloadError, Tensor};

/// The request payload's kind.
pub const REQUEST_KIND: &str = "infer";
/// The answer payload's kind.
pub const ANSWER_KIND: &str = "infer_result";
/// Largest announcement blob read (a model's description, not the model).
const MAX_ANNOUNCEMENT: usize = 64 << 10;
/// Most values in a plain-text request.
const MAX_TEXT_VALUES: usize = 1 << 20;

/// A request: which model, and its inputs.
#[derive(Debug, Clone)]
pub struct Request {
    /// The model's name.
    pub model: String,
    /// Its inputs, by name.
    pub inputs: BTreeMap<String, Tensor>,
}

impl Request {
    /// The request's payload bytes.
    pub fn to_bytes(&self) -> Result<Bytes, PayloadError> {
        let mut p = Payload::new(REQUEST_KIND).with_params(&json!({"model": self.model}))?;
        for (name, t) in &self.inputs {
            p.insert(name, t.clone());
        }
        p.encode()
    }

    /// A request from its payload.
    pub fn from_payload(p: &Payload) -> Result<Self, PayloadError> {
        p.expect_kind(REQUEST_KIND)?;
        let model = p.params_json()["model"]
            .as_str()
            .ok_or_else(|| PayloadError::Params {
                kind: REQUEST_KIND.into(),
                message: "no \"model\" name".into(),
            })?
            .to_owned();
        Ok(Self {
            model,
            inputs: p.tensors().clone(),
        })
    }
}

/// An answer: the model that gave it and its outputs.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The model's name.
    pub model: String,
    /// The version that answered.
    pub version: u64,
    /// Its outputs, by name.
    pub outputs: BTreeMap<String, Tensor>,
}

impl Answer {
    /// Each sample's class (see [`labels_of`]).
    pub fn labels(&self) -> Option<Vec<i64>> {
        labels_of(&self.outputs)
    }

    /// An answer from its payload bytes.
    pub fn from_bytes(data: &Bytes) -> Result<Self, PayloadError> {
        let p = Payload::decode(data)?;
        p.expect_kind(ANSWER_KIND)?;
        Ok(Self {
            model: p.params_json()["model"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            version: p.params_json()["version"].as_u64().unwrap_or(0),
            outputs: p.tensors().clone(),
        })
    }
}

/// The answer payload for `outputs` of the model `info`.
pub fn answer(info: &ModelInfo, outputs: BTreeMap<String, Tensor>) -> Result<Bytes, PayloadError> {
    let mut p = Payload::new(ANSWER_KIND)
        .with_params(&json!({"model": info.name, "version": info.version}))?;
    for (name, t) in outputs {
        p.insert(&name, t);
    }
    p.encode()
}

/// A plain-text request: the model named, if any, and the values.
pub fn parse_text_request(data: &[u8]) -> Result<(Option<String>, Vec<f32>), String> {
    const EXPECTED: &str = "expected an MNIST image as a JSON list of 784 integers 0..255, or \
                            {\"model\": NAME, \"input\": [...]}";
    let text = std::str::from_utf8(data).map_err(|_| format!("not text; {EXPECTED}"))?;
    if text.len() > MAX_TEXT_VALUES * 8 {
        return Err(format!(
            "{} bytes of text is too long a request",
            text.len()
        ));
    }
    let v: Value = serde_json::from_str(text.trim_end_matches('\0'))
        .map_err(|e| format!("not JSON ({e}); {EXPECTED}"))?;
    let (model, values) = match &v {
        Value::Array(_) => (None, &v),
        Value::Object(o) => (
            o.get("model").and_then(Value::as_str).map(str::to_owned),
            o.get("input")
                .ok_or_else(|| format!("no \"input\"; {EXPECTED}"))?,
        ),
        _ => return Err(EXPECTED.into()),
    };
    let mut out = Vec::new();
    flatten(values, &mut out).map_err(|e| format!("{e}; {EXPECTED}"))?;
    if out.is_empty() {
        return Err(format!("no values; {EXPECTED}"));
    }
    Ok((model, out))
}

fn flatten(v: &Value, out: &mut Vec<f32>) -> Result<(), String> {
    match v {
        Value::Array(a) => a.iter().try_for_each(|x| flatten(x, out)),
        Value::Number(n) => {
            if out.len() >= MAX_TEXT_VALUES {
                return Err("too many values".into());
            }
            let x = n.as_f64().unwrap_or(f64::NAN) as f32;
            if !x.is_finite() {
                return Err(format!("{n} is not a finite number"));
            }
            out.push(x);
            Ok(())
        }
        other => Err(format!("{other} is not a number")),
    }
}

/// One sample of values as a request tensor: bytes when they are all integers 0..255 (image
/// pixels), else f32.
pub fn pixels_tensor(values: &[f32]) -> Tensor {
    if values
        .iter()
        .all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v))
    {
        let bytes: Vec<u8> = values.iter().map(|v| *v as u8).collect();
        Tensor::new(DType::U8, &[1, values.len()], bytes).expect("sized")
    } else {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::new(DType::F32, &[1, values.len()], bytes).expect("sized")
    }
}

/// One sample of values as the model's input `spec`: shaped `[1, ...]` as it takes them, as
/// bytes for byte inputs, and for float inputs scaled from pixels (integers 0..255) to 0..1,
/// as PyTorch and Keras MNIST models take them (other values as they are).
pub fn fit_to(values: &[f32], spec: &super::TensorSpec) -> Result<Tensor, String> {
    let shape = spec.batch_shape(1, values.len());
    let pixels = values
        .iter()
        .all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v));
    let bytes: Vec<u8> = match spec.dtype.as_str() {
        "u8" if pixels => values.iter().map(|v| *v as u8).collect(),
        "f32" => values
            .iter()
            .flat_map(|v| (if pixels { v / 255.0 } else { *v }).to_le_bytes())
            .collect(),
        _ => return Ok(pixels_tensor(values)),
    };
    let dtype = if spec.dtype == "u8" {
        DType::U8
    } else {
        DType::F32
    };
    Tensor::new(dtype, &shape, bytes).map_err(|e| e.to_string())
}

/// The text answer to a plain request: the first sample's class (its name when the model has
/// class names), from a `label` output or else the highest of a score row; otherwise the first
/// output's values as JSON (a regression's prediction).
pub fn label_text(info: &ModelInfo, outputs: &BTreeMap<String, Tensor>) -> String {
    let name = |c: i64| {
        usize::try_from(c)
            .ok()
            .and_then(|c| info.classes.get(c).cloned())
            .unwrap_or_else(|| c.to_string())
    };
    if let Some(&first) = labels_of(outputs).as_deref().and_then(<[i64]>::first) {
        return name(first);
    }
    let values = outputs
        .values()
        .find_map(Tensor::to_f32s)
        .unwrap_or_default();
    serde_json::to_string(&values).unwrap_or_default()
}

/// Each sample's class: the `label` output, else the highest score of each row of the first
/// f32 output of shape `[n, k]` with `k > 1`; `None` when the outputs hold neither.
pub fn labels_of(outputs: &BTreeMap<String, Tensor>) -> Option<Vec<i64>> {
    if let Some(labels) = outputs.get("label").and_then(Tensor::to_i64s) {
        return Some(labels);
    }
    let scores = outputs
        .values()
        .find(|t| t.dtype() == DType::F32 && matches!(t.shape(), [_, k] if *k > 1))?;
    let k = scores.shape()[1];
    let v = scores.to_f32s()?;
    Some(v.chunks(k).map(|row| argmax(row) as i64).collect())
}

/// Who announces a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A model manager offering the file.
    Sender,
    /// An inference node serving it.
    Server,
}

/// A model announcement's blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// Who says it.
    #[serde(rename = "amlip_model")]
    pub role: Role,
    /// The model.
    pub info: ModelInfo,
}

impl Announcement {
    /// The blob's bytes (JSON text, readable by AML-IP's Python nodes).
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("serialises"))
    }

    /// Reads a blob; says what is wrong with one that is not amlip's.
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        if data.len() > MAX_ANNOUNCEMENT {
            return Err(format!(
                "{} bytes is too long for a model announcement",
                data.len()
            ));
        }
        let a: Self = serde_json::from_slice(data)
            .map_err(|e| format!("not an amlip model announcement ({e})"))?;
        if a.info.name.is_empty() || a.info.inputs.is_empty() {
            return Err("a model announcement without a name or inputs".into());
        }
        Ok(a)
    }
}

/// The RPC data asking for the model `name`, as amlip's receivers send it.
pub fn model_request(name: &str) -> Bytes {
    Bytes::from(json!({ "model": name }).to_string())
}

/// Longest model request read as a name.
const MAX_MODEL_REQUEST: usize = 1024;

/// The model name an RPC request asks for: amlip's JSON `{"model": NAME}`, or, as AML-IP's
/// demos send it, the name as plain text (e.g. `MobileNet V1`; surrounding whitespace and NULs
/// ignored). An empty name asks for whatever model the sender holds (see [`pick_model`]).
pub fn parse_model_request(data: &[u8]) -> Result<String, String> {
    if data.len() > MAX_MODEL_REQUEST {
        return Err(format!(
            "a model request of {} bytes is too long for a model name (at most {MAX_MODEL_REQUEST})",
            data.len()
        ));
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        if let Some(name) = v.get("model").and_then(Value::as_str) {
            return Ok(name.to_owned());
        }
    }
    let text = std::str::from_utf8(data).map_err(|_| {
        "a model request must be a model's name as text, or JSON {\"model\": NAME}".to_string()
    })?;
    Ok(text
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_owned())
}

/// The model a request for `name` gets among those `held` (by name): the one of that name, or,
/// when the sender holds exactly one model, that one (AML-IP's demo receivers ask for a model
/// of their own naming, e.g. `MobileNet V1`, from whichever sender announces one).
pub fn pick_model<'a, T>(
    name: &str,
    held: impl IntoIterator<Item = (&'a str, T)>,
) -> Result<T, String> {
    let mut all: Vec<(&str, T)> = held.into_iter().collect();
    if let Some(i) = all.iter().position(|(n, _)| *n == name) {
        return Ok(all.swap_remove(i).1);
    }
    match all.len() {
        1 => Ok(all.pop().expect("one").1),
        0 => Err(format!("no model {name:?} here (none is held)")),
        _ => {
            let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            Err(format!(
                "no model {name:?} here; ask for one of: {}",
                names.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_requests_parse_or_say_what_is_expected() {
        let (m, v) = parse_text_request(b"[0, 12, 255]").unwrap();
        assert_eq!((m, v), (None, vec![0.0, 12.0, 255.0]));
        let (m, v) = parse_text_request(br#"{"model": "mnist", "input": [[1, 2]]}"#).unwrap();
        assert_eq!((m.as_deref(), v.len()), (Some("mnist"), 2));
        for bad in [
            &b"hello"[..],
            b"[\"a\"]",
            b"[]",
            b"{\"model\": \"x\"}",
            b"\xff\xfe",
        ] {
            let e = parse_text_request(bad).unwrap_err();
            assert!(e.contains("expected an MNIST image"), "{e}");
        }
        assert_eq!(pixels_tensor(&[1.0, 2.0]).dtype(), DType::U8);
        assert_eq!(pixels_tensor(&[0.5]).dtype(), DType::F32);
    }

    #[test]
    fn announcements_round_trip_and_garbage_is_named() {
        let a = Announcement {
            role: Role::Server,
            info: ModelInfo {
                name: "mnist".into(),
                kind: "onnx".into(),
                version: 3,
                inputs: vec![super::super::model::TensorSpec {
                    name: "input".into(),
                    dtype: "f32".into(),
                    shape: vec![None, Some(784)],
                }],
                outputs: vec![],
                bytes: 10,
                classes: vec![],
                engine: "amlip".into(),
            },
        };
        assert_eq!(Announcement::parse(&a.to_bytes()).unwrap(), a);
        for bad in [
            &b"{}"[..],
            b"\x00\x01garbage",
            b"{\"amlip_model\": \"server\"}",
        ] {
            let e = Announcement::parse(bad).unwrap_err();
            assert!(e.contains("not an amlip model announcement"), "{e}");
        }
        assert_eq!(parse_model_request(&model_request("x")).unwrap(), "x");
    }

    /// AML-IP's demos ask for a model by its name as plain text; amlip's receivers send JSON.
    /// Either names a model; a sender holding one model hands it to any name.
    #[test]
    fn model_requests_as_text_or_json() {
        assert_eq!(
            parse_model_request(b"MobileNet V1").unwrap(),
            "MobileNet V1"
        );
        assert_eq!(parse_model_request(b" mnist\0").unwrap(), "mnist");
        assert_eq!(parse_model_request(br#"{"model": "cnn"}"#).unwrap(), "cnn");
        assert_eq!(parse_model_request(b"").unwrap(), "");
        let e = parse_model_request(b"\xff\xfe").unwrap_err();
        assert!(e.contains("model's name as text"), "{e}");
        let e = parse_model_request(&[b'x'; 5000]).unwrap_err();
        assert!(e.contains("too long"), "{e}");
        let two = [("mnist", 1), ("cnn", 2)];
        assert_eq!(pick_model("cnn", two), Ok(2));
        let e = pick_model("MobileNet V1", two).unwrap_err();
        assert!(e.contains("mnist, cnn"), "{e}");
        assert_eq!(pick_model("MobileNet V1", [("mnist", 1)]), Ok(1));
        assert_eq!(pick_model("", [("mnist", 1)]), Ok(1));
        assert!(pick_model::<u8>("x", [])
            .unwrap_err()
            .contains("none is held"));
    }
}
