//! Neural networks described as data: layers (dense, conv2d, max-pool, dropout, ReLU, tanh,
//! log-softmax), losses (NLL, softmax cross-entropy, MSE), optimizers (SGD with momentum,
//! Adam), and their parameters as named tensors in PyTorch's layout.
//!
//! - `spec`: [`Spec`], [`Layer`], [`Loss`]: a network as JSON, checked shape by shape;
//!   the seed CNN, the dense 784-128-10 network and small regression networks (and the
//!   layers of imported ONNX graphs: softmax, sigmoid).
//! - `net`: [`Network`]: forward and backward passes over one flat parameter vector,
//!   a batch's slices in parallel threads.
//! - `optim`: [`Optimizer`] and its [`OptimState`].
//! - `fit`: [`Fit`], an epoch of mini-batches on values (the online trainer's, `nn_fit`'s).
//! - `serve`: [`Served`], a network laid out for inference, a batch cut across threads.
//! - `ops`: matrix products (the `gemm` crate) and im2col.
//!
//! Why not a tensor crate: the layers are few, their backward passes are a page, and plain
//! `matrixmultiply` GEMMs over im2col are as fast as PyTorch's CPU kernels on this network
//! (see `scripts/bench-allreduce.sh`); a flat parameter vector is also what an all-reduce
//! wants.

mod fit;
mod net;
mod ops;
mod optim;
mod serve;
mod spec;

use std::collections::BTreeMap;

pub use fit::Fit;
pub use net::Network;
pub use optim::{OptimState, Optimizer};
pub use serve::Served;
pub use spec::{Layer, Loss, ParamShape, Spec};

use crate::payload::{Payload, Tensor};

/// What is wrong with a network, its parameters or its data.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// The spec does not describe a network that can run.
    #[error("network spec: {0}")]
    Spec(String),
    /// Parameters or data do not fit the network.
    #[error("{0}")]
    Shape(String),
    /// Training settings that do not go together.
    #[error("{0}")]
    Settings(String),
}

/// The targets of a batch.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// A class index per sample.
    Classes(&'a [u8]),
    /// Output values per sample, row after row.
    Values(&'a [f32]),
}

impl<'a> Targets<'a> {
    fn slice(self, lo: usize, hi: usize, outputs: usize) -> Targets<'a> {
        match self {
            Targets::Classes(y) => Targets::Classes(&y[lo..hi]),
            Targets::Values(t) => Targets::Values(&t[lo * outputs..hi * outputs]),
        }
    }
}

impl Network {
    /// The parameters as named tensors (`conv1.weight`, ...), for safetensors files and jobs.
    pub fn tensors(&self, params: &[f32]) -> BTreeMap<String, Tensor> {
        self.param_shapes()
            .iter()
            .map(|(p, off)| {
                let n: usize = p.shape.iter().product();
                let a = ndarray::ArrayViewD::from_shape(p.shape.clone(), &params[*off..off + n])
                    .expect("the layout fits the vector");
                (p.name.clone(), Tensor::from_f32(a))
            })
            .collect()
    }

    /// Reads the parameters back from named tensors (a payload's, a safetensors file's),
    /// naming any that is missing, misshapen or not finite.
    pub fn params_from(&self, tensors: &BTreeMap<String, Tensor>) -> Result<Vec<f32>, NnError> {
        let mut out = vec![0.0; self.len()];
        for (p, off) in self.param_shapes() {
            let t = tensors
                .get(&p.name)
                .ok_or_else(|| NnError::Shape(format!("parameter {} is missing", p.name)))?;
            if t.shape() != p.shape.as_slice() {
                return Err(NnError::Shape(format!(
                    "parameter {} is {:?} {:?}, the network needs F32 {:?}",
                    p.name,
                    t.dtype(),
                    t.shape(),
                    p.shape
                )));
            }
            let v = t.to_f32s().ok_or_else(|| {
                NnError::Shape(format!("parameter {} is {:?}, not F32", p.name, t.dtype()))
            })?;
            if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
                return Err(NnError::Shape(format!("parameter {} holds {bad}", p.name)));
            }
            out[*off..off + v.len()].copy_from_slice(&v);
        }
        Ok(out)
    }

    /// A payload of kind `kind` holding the parameters.
    pub fn payload(&self, kind: &str, params: &[f32]) -> Payload {
        let mut p = Payload::new(kind);
        for (name, t) in self.tensors(params) {
            p.insert(&name, t);
        }
        p
    }

    /// Share of correct classes (classifiers) or mean squared error (regressors) over `x`.
    pub fn score(&self, params: &[f32], x: &[f32], targets: Targets<'_>) -> Result<f64, NnError> {
        let out = self.forward(params, x)?;
        let o = self.output_len();
        Ok(match targets {
            Targets::Classes(y) => {
                let right = out
                    .chunks(o)
                    .zip(y)
                    .filter(|(r, &l)| crate::mlp::argmax(r.iter()) == l as usize)
                    .count();
                right as f64 / y.len().max(1) as f64
            }
            Targets::Values(t) => {
                out.iter()
                    .zip(t)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
                    / t.len().max(1) as f64
            }
        })
    }
}

/// A 64-bit hash of parameter bits: equal on two workers iff (barring collisions) their
/// parameters are bit-identical.
pub fn hash(params: &[f32]) -> u64 {
    // FNV-1a over the words: fast, stable across runs and machines.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in params {
        h ^= v.to_bits() as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests;
