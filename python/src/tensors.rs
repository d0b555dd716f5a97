//! Payloads across the boundary. A tensor crosses as `(name, dtype, shape, bytes)`, dtype one
//! of `u8 i32 i64 f32 f64` (the Python side makes numpy views of the bytes without a copy);
//! parameters cross as JSON text. Bytes from Python are borrowed, not copied, into the payload.

use std::collections::BTreeMap;

use amlip_core::payload::{DType, Payload, Tensor};
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use crate::errors::{argument, payload as payload_err};

/// A tensor from Python: name, dtype, shape, bytes.
pub type TensorIn = (String, String, Vec<usize>, PyBackedBytes);

/// A tensor for Python.
pub type TensorOut<'py> = (String, &'static str, Vec<usize>, Bound<'py, PyBytes>);

/// A tensor's dtype, shape and bytes for Python.
pub type OneOut<'py> = (&'static str, Vec<usize>, Bound<'py, PyBytes>);

fn dtype(name: &str) -> Result<DType, String> {
    Ok(match name {
        "u8" => DType::U8,
        "i32" => DType::I32,
        "i64" => DType::I64,
        "f32" => DType::F32,
        "f64" => DType::F64,
        other => {
            return Err(format!(
            "dtype {other:?} cannot travel (amlip carries uint8, int32, int64, float32, float64)"
        ))
        }
    })
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

/// The tensor `name` from Python, its bytes borrowed; a defect names the tensor.
pub fn tensor(name: &str, dt: &str, shape: &[usize], data: PyBackedBytes) -> PyResult<Tensor> {
    let d = dtype(dt).map_err(|e| argument(format!("tensor {name:?}: {e}")))?;
    Tensor::new(d, shape, Bytes::from_owner(data))
        .map_err(|e| crate::errors::PayloadError::new_err(format!("tensor {name:?}: {e}")))
}

/// A payload of `kind` from JSON parameters and tensors.
pub fn build(kind: &str, params: &str, tensors: Vec<TensorIn>) -> PyResult<Payload> {
    let params: serde_json::Value = serde_json::from_str(params)
        .map_err(|e| argument(format!("parameters are not JSON: {e}")))?;
    let mut p = Payload::new(kind)
        .with_params(&params)
        .map_err(payload_err)?;
    for (name, dt, shape, data) in tensors {
        let t = tensor(&name, &dt, &shape, data)?;
        p.insert(&name, t);
    }
    Ok(p)
}

/// Tensors for Python (one copy each, into a `bytes`).
pub fn to_py<'py>(py: Python<'py>, tensors: &BTreeMap<String, Tensor>) -> Vec<TensorOut<'py>> {
    tensors
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                dtype_name(t.dtype()),
                t.shape().to_vec(),
                PyBytes::new(py, t.bytes()),
            )
        })
        .collect()
}

/// One tensor for Python.
pub fn one_to_py<'py>(py: Python<'py>, t: &Tensor) -> OneOut<'py> {
    (
        dtype_name(t.dtype()),
        t.shape().to_vec(),
        PyBytes::new(py, t.bytes()),
    )
}

/// Encodes a payload: `encode(kind, params_json, [(name, dtype, shape, bytes)]) -> bytes`.
#[pyfunction]
pub fn encode<'py>(
    py: Python<'py>,
    kind: &str,
    params: &str,
    tensors: Vec<TensorIn>,
) -> PyResult<Bound<'py, PyBytes>> {
    let p = build(kind, params, tensors)?;
    let bytes = p.encode().map_err(payload_err)?;
    Ok(PyBytes::new(py, &bytes))
}

/// Decodes a payload: `decode(bytes) -> (kind, params_json, [(name, dtype, shape, bytes)])`.
#[pyfunction]
pub fn decode<'py>(
    py: Python<'py>,
    data: PyBackedBytes,
) -> PyResult<(String, String, Vec<TensorOut<'py>>)> {
    let p = Payload::decode(&Bytes::from_owner(data)).map_err(payload_err)?;
    Ok((
        p.kind().to_owned(),
        p.params_json().to_string(),
        to_py(py, p.tensors()),
    ))
}
