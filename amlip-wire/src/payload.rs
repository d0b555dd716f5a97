//! amlip's job and solution payloads: named tensors in the [safetensors] format, with the job
//! kind, a format version and the kind's parameters in its `__metadata__`:
//!
//! | metadata key | value |
//! |---|---|
//! | `amlip.kind` | the job kind, e.g. `mlp_train` |
//! | `amlip.version` | `1`, this format's version |
//! | `amlip.params` | the kind's parameters, as JSON text (optional) |
//!
//! So numpy, PyTorch or the `safetensors` Python package write and read amlip jobs directly:
//!
//! ```python
//! from safetensors.numpy import save, load
//! job = save({"images": x, "labels": y}, metadata={"amlip.kind": "mlp_train", "amlip.version": "1", "amlip.params": "{...}"})
//! ```
//!
//! A payload says its kind explicitly; one that does not is not an amlip payload (see
//! [`Payload::detect`]). Validation is strict and every defect is named: a truncated or padded
//! payload, an unknown version, a missing tensor, a wrong dtype or shape, a non-finite weight.
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, View};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The metadata key naming the job kind.
pub const KIND_KEY: &str = "amlip.kind";
/// The metadata key holding the format version.
pub const VERSION_KEY: &str = "amlip.version";
/// The metadata key holding the kind's parameters (JSON text).
pub const PARAMS_KEY: &str = "amlip.params";
/// The payload format version this build writes and reads.
pub const VERSION: u32 = 1;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// Unsigned bytes (images, labels, opaque blobs).
    U8,
    /// 32-bit signed integers.
    I32,
    /// 64-bit signed integers (numpy's default integer).
    I64,
    /// 32-bit floats (weights, features).
    F32,
    /// 64-bit floats (numpy's default float).
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    fn to_safetensors(self) -> Dtype {
        match self {
            DType::U8 => Dtype::U8,
            DType::I32 => Dtype::I32,
            DType::I64 => Dtype::I64,
            DType::F32 => Dtype::F32,
            DType::F64 => Dtype::F64,
        }
    }

    fn from_safetensors(d: Dtype) -> Option<Self> {
        Some(match d {
            Dtype::U8 => DType::U8,
            Dtype::I32 => DType::I32,
            Dtype::I64 => DType::I64,
            Dtype::F32 => DType::F32,
            Dtype::F64 => DType::F64,
            _ => return None,
        })
    }
}

/// Why a payload is not a valid amlip payload, or not the one expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not safetensors, or safetensors that does not say its amlip kind.
    #[error("not an amlip payload: {0}")]
    NotAmlip(String),
    /// Safetensors, but broken: truncated, padded, overlapping tensors...
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// Written by a newer (or older) amlip.
    #[error(
        "payload format version {found:?} is not supported (this node reads version {VERSION})"
    )]
    Version {
        /// The version the payload says.
        found: String,
    },
    /// The payload is of another kind than expected.
    #[error("expected a {expected} payload, got {found}")]
    Kind {
        /// The kind expected.
        expected: String,
        /// The kind found.
        found: String,
    },
    /// A tensor the kind needs is missing.
    #[error("{kind} payload has no tensor {name:?} (it has: {present})")]
    MissingTensor {
        /// The payload's kind.
        kind: String,
        /// The tensor wanted.
        name: String,
        /// The tensors it has.
        present: String,
    },
    /// A tensor has the wrong element type.
    #[error("tensor {name:?} is {found}, expected {expected}")]
    DType {
        /// The tensor.
        name: String,
        /// Its element type.
        found: String,
        /// What the kind reads.
        expected: String,
    },
    /// A tensor has the wrong shape.
    #[error("tensor {name:?} has shape {found:?}, expected [{expected}]")]
    Shape {
        /// The tensor.
        name: String,
        /// Its shape.
        found: Vec<usize>,
        /// The shape wanted (`any` for free dimensions).
        expected: String,
    },
    /// The kind's parameters are missing or do not parse.
    #[error("{kind} parameters: {message}")]
    Params {
        /// The payload's kind.
        kind: String,
        /// What is wrong with them.
        message: String,
    },
    /// Anything else a kind finds wrong with its input (a label out of range, a NaN weight...).
    #[error("{0}")]
    Invalid(String),
}

/// One named array: element type, shape (C order) and little-endian bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Bytes,
}

impl Tensor {
    /// A tensor from raw little-endian bytes; the byte count must fit the dtype and shape.
    pub fn new(
        dtype: DType,
        shape: &[usize],
        data: impl Into<Bytes>,
    ) -> Result<Self, PayloadError> {
        let data = data.into();
        let want = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| PayloadError::Invalid(format!("shape {shape:?} overflows")))?;
        if want != data.len() {
            return Err(PayloadError::Invalid(format!(
                "a {dtype:?} tensor of shape {shape:?} needs {want} bytes, got {}",
                data.len()
            )));
        }
        Ok(Self {
            dtype,
            shape: shape.to_vec(),
            data,
        })
    }

    /// A u8 tensor from an array of any shape.
    pub fn from_u8<D: ndarray::Dimension>(a: ndarray::ArrayView<'_, u8, D>) -> Self {
        let data = match a.as_slice() {
            Some(s) => s.to_vec(),
            None => a.iter().copied().collect(),
        };
        Self {
            dtype: DType::U8,
            shape: a.shape().to_vec(),
            data: Bytes::from(data),
        }
    }

    /// An f32 tensor from an array of any shape.
    pub fn from_f32<D: ndarray::Dimension>(a: ndarray::ArrayView<'_, f32, D>) -> Self {
        let mut data = Vec::with_capacity(a.len() * 4);
        for x in a.iter() {
            data.extend_from_slice(&x.to_le_bytes());
        }
        Self {
            dtype: DType::F32,
            shape: a.shape().to_vec(),
            data: Bytes::from(data),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements, if the tensor is F32.
    pub fn to_f32s(&self) -> Option<Vec<f32>> {
        (self.dtype == DType::F32).then(|| {
            if cfg!(target_endian = "little") {
                // One copy of the bytes as they are: the element-wise conversion was 4% of a
                // model server's time on 200 KB requests.
                let n = self.data.len() / 4;
                let mut v = vec![0f32; n];
                bytemuck::cast_slice_mut::<f32, u8>(&mut v).copy_from_slice(&self.data[..n * 4]);
                v
            } else {
                self.data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect()
            }
        })
    }

    /// The elements, if the tensor is I64.
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        (self.dtype == DType::I64).then(|| {
            self.data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        })
    }
}

impl View for &Tensor {
    fn dtype(&self) -> Dtype {
        self.dtype.to_safetensors()
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }

    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// A job or solution: its kind, its parameters, and named tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    kind: String,
    params: Value,
    tensors: BTreeMap<String, Tensor>,
}

/// What [`Payload::detect`] makes of some bytes.
#[derive(Debug)]
pub enum Detected {
    /// An amlip payload (it names its kind), valid or not.
    Amlip(Result<Payload, PayloadError>),
    /// Not an amlip payload: a plain AML-IP job (text, or anything else).
    Plain,
}

impl Payload {
    /// An empty payload of `kind`.
    pub fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            params: Value::Null,
            tensors: BTreeMap::new(),
        }
    }

    /// With the kind's parameters (anything serde can serialize to JSON).
    pub fn with_params(mut self, params: &impl Serialize) -> Result<Self, PayloadError> {
        self.params = serde_json::to_value(params).map_err(|e| PayloadError::Params {
            kind: self.kind.clone(),
            message: e.to_string(),
        })?;
        Ok(self)
    }

    /// With a tensor (replacing one of the same name).
    pub fn with_tensor(mut self, name: &str, tensor: Tensor) -> Self {
        self.tensors.insert(name.to_owned(), tensor);
        self
    }

    /// Adds a tensor (replacing one of the same name).
    pub fn insert(&mut self, name: &str, tensor: Tensor) {
        self.tensors.insert(name.to_owned(), tensor);
    }

    /// The job kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Checks that this payload is of `kind`.
    pub fn expect_kind(&self, kind: &str) -> Result<(), PayloadError> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(PayloadError::Kind {
                expected: kind.to_owned(),
                found: self.kind.clone(),
            })
        }
    }

    /// The parameters as JSON (`null` if none).
    pub fn params_json(&self) -> &Value {
        &self.params
    }

    /// The parameters, deserialised into `T`.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        serde_json::from_value(self.params.clone()).map_err(|e| PayloadError::Params {
            kind: self.kind.clone(),
            message: e.to_string(),
        })
    }

    /// The tensors, by name.
    pub fn tensors(&self) -> &BTreeMap<String, Tensor> {
        &self.tensors
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Result<&Tensor, PayloadError> {
        self.tensors
            .get(name)
            .ok_or_else(|| PayloadError::MissingTensor {
                kind: self.kind.clone(),
                name: name.to_owned(),
                present: self.tensors.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// A u8 tensor whose shape matches `expected` (`None`: any size); its shape and bytes.
    pub fn u8s(
        &self,
        name: &str,
        expected: &[Option<usize>],
    ) -> Result<(Vec<usize>, Bytes), PayloadError> {
        let t = self.typed(name, DType::U8, "U8 (np.uint8)")?;
        check_shape(name, &t.shape, expected)?;
        Ok((t.shape.clone(), t.data.clone()))
    }

    /// An f32 tensor whose shape matches `expected`, as an array; every element must be
    /// finite.
    pub fn f32s(
        &self,
        name: &str,
        expected: &[Option<usize>],
    ) -> Result<ArrayD<f32>, PayloadError> {
        let t = self.typed(name, DType::F32, "F32 (np.float32)")?;
        check_shape(name, &t.shape, expected)?;
        let v: Vec<f32> = t
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(bad) = v.iter().position(|x| !x.is_finite()) {
            return Err(PayloadError::Invalid(format!(
                "tensor {name:?}: element {bad} is not a finite number"
            )));
        }
        Ok(ArrayD::from_shape_vec(IxDyn(&t.shape), v).expect("size checked on decode"))
    }

    /// Class labels: a one-dimensional U8, I32 or I64 tensor of `n` labels, each in
    /// `0..classes` (numpy's default int64 labels are accepted as they are).
    pub fn labels(&self, name: &str, n: usize, classes: usize) -> Result<Vec<u8>, PayloadError> {
        let t = self.tensor(name)?;
        check_shape(name, &t.shape, &[Some(n)])?;
        let values: Vec<i64> = match t.dtype {
            DType::U8 => t.data.iter().map(|&b| b as i64).collect(),
            DType::I32 => t
                .data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
            DType::I64 => t
                .data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            other => {
                return Err(PayloadError::DType {
                    name: name.to_owned(),
                    found: format!("{other:?}"),
                    expected: "an integer type (U8, I32 or I64)".into(),
                })
            }
        };
        let limit = classes.min(256) as i64;
        if let Some((i, l)) = values
            .iter()
            .enumerate()
            .find(|(_, l)| !(0..limit).contains(*l))
        {
            return Err(PayloadError::Invalid(format!(
                "label {i} of {name:?} is {l}, not a class in 0..{limit}"
            )));
        }
        Ok(values.into_iter().map(|l| l as u8).collect())
    }

    fn typed(&self, name: &str, dtype: DType, want: &str) -> Result<&Tensor, PayloadError> {
        let t = self.tensor(name)?;
        if t.dtype != dtype {
            return Err(PayloadError::DType {
                name: name.to_owned(),
                found: format!("{:?}", t.dtype),
                expected: want.to_owned(),
            });
        }
        Ok(t)
    }

    /// The payload's bytes (safetensors).
    pub fn encode(&self) -> Result<Bytes, PayloadError> {
        let mut meta: Vec<(String, String)> = vec![
            (KIND_KEY.into(), self.kind.clone()),
            (VERSION_KEY.into(), VERSION.to_string()),
        ];
        if !self.params.is_null() {
            meta.push((PARAMS_KEY.into(), self.params.to_string()));
        }
        let bytes = safetensors::serialize(
            self.tensors.iter().map(|(n, t)| (n.as_str(), t)),
            Some(meta.into_iter().collect()),
        )
        .map_err(|e| PayloadError::Malformed(e.to_string()))?;
        Ok(Bytes::from(bytes))
    }

    /// Reads a payload; anything but a valid amlip payload is an error naming the defect.
    pub fn decode(data: &Bytes) -> Result<Payload, PayloadError> {
        match Self::detect(data) {
            Detected::Amlip(p) => p,
            Detected::Plain => Err(PayloadError::NotAmlip(
                "it is not safetensors with an \"amlip.kind\" in its metadata".into(),
            )),
        }
    }

    /// Tells an amlip payload from a plain AML-IP job. Bytes are an amlip payload when they
    /// start like safetensors (a little-endian u64 header length, then `{`) and say their
    /// `amlip.kind`; a safetensors payload that does not say its kind, or whose header is
    /// cut, is reported as a malformed amlip payload rather than served as plain bytes.
    pub fn detect(data: &Bytes) -> Detected {
        if data.len() < 9 || data[8] != b'{' {
            return Detected::Plain;
        }
        let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        // Text (every plain AML-IP job a person writes) never starts with a small length.
        if n > 100_000_000 {
            return Detected::Plain;
        }
        Detected::Amlip(Self::parse(data, n as usize))
    }

    fn parse(data: &Bytes, n: usize) -> Result<Payload, PayloadError> {
        let available = data.len() - 8;
        if n > available {
            return Err(PayloadError::Malformed(format!(
                "truncated: the safetensors header needs {n} bytes, only {available} follow"
            )));
        }
        let (_, meta) = SafeTensors::read_metadata(data).map_err(|e| explain(data, n, e))?;
        let info = meta.metadata().as_ref();
        let get = |k: &str| info.and_then(|m| m.get(k)).cloned();
        let kind = get(KIND_KEY).ok_or_else(|| {
            PayloadError::NotAmlip(format!(
                "safetensors without {KIND_KEY:?} in its __metadata__: say which job kind it is"
            ))
        })?;
        match get(VERSION_KEY) {
            Some(v) if v.trim() == VERSION.to_string() => {}
            Some(found) => return Err(PayloadError::Version { found }),
            None => {
                return Err(PayloadError::Malformed(format!(
                    "no {VERSION_KEY:?} in the metadata (this node reads version {VERSION})"
                )))
            }
        }
        let params = match get(PARAMS_KEY) {
            None => Value::Null,
            Some(text) => serde_json::from_str(&text).map_err(|e| PayloadError::Params {
                kind: kind.clone(),
                message: format!("{PARAMS_KEY} is not JSON: {e}"),
            })?,
        };
        Ok(Payload {
            kind,
            params,
            tensors: tensors_after(data, n, &meta)?,
        })
    }
}

/// The named tensors of any safetensors file, amlip's payloads or not (no metadata needed):
/// for files written by numpy or PyTorch that a request carries as they are.
pub fn read_tensors(data: &Bytes) -> Result<BTreeMap<String, Tensor>, PayloadError> {
    if data.len() < 8 {
        return Err(PayloadError::Malformed(format!(
            "{} bytes is too short for safetensors",
            data.len()
        )));
    }
    let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let available = (data.len() - 8) as u64;
    if n > available {
        return Err(PayloadError::Malformed(format!(
            "truncated: the safetensors header needs {n} bytes, only {available} follow"
        )));
    }
    let (_, meta) = SafeTensors::read_metadata(data).map_err(|e| explain(data, n as usize, e))?;
    tensors_after(data, n as usize, &meta)
}

/// The tensors of safetensors `data` whose header of `n` bytes is `meta`, sharing `data`.
fn tensors_after(
    data: &Bytes,
    n: usize,
    meta: &safetensors::tensor::Metadata,
) -> Result<BTreeMap<String, Tensor>, PayloadError> {
    let start = 8 + n;
    let mut tensors = BTreeMap::new();
    for (name, t) in meta.tensors() {
        let dtype = DType::from_safetensors(t.dtype).ok_or_else(|| PayloadError::DType {
            name: name.clone(),
            found: format!("{:?}", t.dtype),
            expected: "U8, I32, I64, F32 or F64".into(),
        })?;
        let (a, b) = t.data_offsets;
        tensors.insert(
            name.clone(),
            Tensor {
                dtype,
                shape: t.shape.clone(),
                data: data.slice(start + a..start + b),
            },
        );
    }
    Ok(tensors)
}

/// Names what is wrong with a payload safetensors refused, in terms a user can act on.
fn explain(data: &[u8], n: usize, e: safetensors::SafeTensorError) -> PayloadError {
    if let safetensors::SafeTensorError::MetadataIncompleteBuffer = e {
        let header: Option<Value> = serde_json::from_slice(&data[8..8 + n]).ok();
        let needed = header
            .as_ref()
            .and_then(Value::as_object)
            .map(|o| {
                o.values()
                    .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let present = data.len() - 8 - n;
        let what = if (present as u64) < needed {
            "truncated"
        } else {
            "padded"
        };
        return PayloadError::Malformed(format!(
            "{what}: the tensors need {needed} bytes after the header, {present} are present"
        ));
    }
    PayloadError::Malformed(e.to_string())
}

fn check_shape(
    name: &str,
    shape: &[usize],
    expected: &[Option<usize>],
) -> Result<(), PayloadError> {
    let ok = shape.len() == expected.len()
        && shape
            .iter()
            .zip(expected)
            .all(|(s, e)| e.is_none_or(|e| *s == e));
    if ok {
        return Ok(());
    }
    let want: Vec<String> = expected
        .iter()
        .map(|e| e.map_or("any".into(), |d| d.to_string()))
        .collect();
    Err(PayloadError::Shape {
        name: name.to_owned(),
        found: shape.to_vec(),
        expected: want.join(", "),
    })
}

/// An array view of a u8 tensor's bytes with its shape.
pub fn u8_view<'a>(shape: &[usize], bytes: &'a [u8]) -> ArrayViewD<'a, u8> {
    ArrayViewD::from_shape(IxDyn(shape), bytes).expect("shape checked on decode")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};

    fn sample() -> Bytes {
        Payload::new("demo")
            .with_params(&serde_json::json!({"k": 3}))
            .unwrap()
            .with_tensor(
                "img",
                Tensor::from_u8(arr2(&[[1u8, 2, 3], [4, 5, 6]]).view()),
            )
            .with_tensor("w", Tensor::from_f32(arr1(&[0.5f32, -1.0]).view()))
            .encode()
            .unwrap()
    }

    #[test]
    fn round_trip() {
        let p = Payload::decode(&sample()).unwrap();
        assert_eq!(p.kind(), "demo");
        assert_eq!(p.params_json()["k"], 3);
        let (shape, img) = p.u8s("img", &[None, Some(3)]).unwrap();
        assert_eq!((shape, &img[..]), (vec![2, 3], &[1u8, 2, 3, 4, 5, 6][..]));
        assert_eq!(
            p.f32s("w", &[Some(2)]).unwrap().into_raw_vec_and_offset().0,
            vec![0.5, -1.0]
        );
    }

    #[test]
    fn it_is_plain_safetensors() {
        let bytes = sample();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("img").unwrap().shape(), &[2, 3]);
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let m = meta.metadata().as_ref().unwrap();
        assert_eq!(m.get(KIND_KEY).map(String::as_str), Some("demo"));
        assert_eq!(m.get(VERSION_KEY).map(String::as_str), Some("1"));
    }

    #[test]
    fn plain_jobs_are_not_amlip_payloads() {
        for plain in [
            &b"hello"[..],
            b"x: [1, 2] y: [0]",
            b"AMLJ\x05\x00\x00\x00{\"v\":1}",
            b"",
        ] {
            assert!(matches!(
                Payload::detect(&Bytes::copy_from_slice(plain)),
                Detected::Plain
            ));
        }
    }

    #[test]
    fn every_defect_is_named() {
        let good = sample();
        let cut = good.slice(..good.len() - 3);
        let e = Payload::decode(&cut).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut long = good.to_vec();
        long.push(0);
        let e = Payload::decode(&Bytes::from(long)).unwrap_err();
        assert!(e.to_string().contains("padded"), "{e}");
        let header_cut = good.slice(..20);
        let e = Payload::decode(&header_cut).unwrap_err();
        assert!(e.to_string().contains("header needs"), "{e}");
        let e = Payload::decode(&Bytes::from_static(b"hello")).unwrap_err();
        assert!(matches!(e, PayloadError::NotAmlip(_)), "{e}");

        let versioned = |v: &str| {
            let mut meta = std::collections::HashMap::new();
            meta.insert(KIND_KEY.to_string(), "x".to_string());
            meta.insert(VERSION_KEY.to_string(), v.to_string());
            let t = Tensor::from_u8(arr1(&[1u8]).view());
            Bytes::from(
                safetensors::serialize([("a", &t)], Some(meta.into_iter().collect())).unwrap(),
            )
        };
        assert_eq!(
            Payload::decode(&versioned("2")).unwrap_err(),
            PayloadError::Version { found: "2".into() }
        );
        assert!(Payload::decode(&versioned("1")).is_ok());
        let unnamed = {
            let t = Tensor::from_u8(arr1(&[1u8]).view());
            Bytes::from(safetensors::serialize([("a", &t)], None).unwrap())
        };
        let e = Payload::decode(&unnamed).unwrap_err();
        assert!(e.to_string().contains("amlip.kind"), "{e}");

        let p = Payload::decode(&good).unwrap();
        let e = p.u8s("img", &[None, Some(784)]).unwrap_err();
        assert!(e.to_string().contains("[2, 3]"), "{e}");
        let e = p.f32s("img", &[None, None]).unwrap_err();
        assert!(e.to_string().contains("np.float32"), "{e}");
        let e = p.u8s("labels", &[None]).unwrap_err();
        assert!(e.to_string().contains("no tensor \"labels\""), "{e}");
    }

    #[test]
    fn labels_of_any_integer_type_are_checked() {
        let p = Payload::new("l")
            .with_tensor(
                "a",
                Tensor::new(
                    DType::I64,
                    &[3],
                    [0i64, 9, 3]
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect::<Vec<u8>>(),
                )
                .unwrap(),
            )
            .with_tensor(
                "b",
                Tensor::new(
                    DType::I32,
                    &[2],
                    [1i32, 10]
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect::<Vec<u8>>(),
                )
                .unwrap(),
            );
        assert_eq!(p.labels("a", 3, 10).unwrap(), vec![0, 9, 3]);
        assert!(p.labels("a", 4, 10).is_err());
        let e = p.labels("b", 2, 10).unwrap_err();
        assert!(e.to_string().contains("is 10"), "{e}");
    }

    #[test]
    fn non_finite_weights_are_refused() {
        let p = Payload::new("w").with_tensor("w", Tensor::from_f32(arr1(&[f32::NAN]).view()));
        let p = Payload::decode(&p.encode().unwrap()).unwrap();
        let e = p.f32s("w", &[Some(1)]).unwrap_err();
        assert!(e.to_string().contains("finite"), "{e}");
    }

    #[test]
    fn tensors_must_fit_their_shape() {
        assert!(Tensor::new(DType::F32, &[2, 2], vec![0u8; 15]).is_err());
        assert!(Tensor::new(DType::F32, &[usize::MAX, 2], vec![]).is_err());
    }
}
