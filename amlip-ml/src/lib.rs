//! amlip-ml: models and data, knowing nothing of DDS: what a computing node runs and what a
//! main feeds it. Not for: sending anything (`amlip-fabric`), or the sessions that train these
//! models across nodes (`amlip-flows`).
//!
//! # Module map
//! - [`dataset`]: data sets from CSV, numpy, safetensors and IDX files (MNIST's among them),
//!   checked defect by defect; quantile levels and standardisation; shards and hold-outs.
//! - [`aml`]: the Algebraic Machine Learning engine: training, models, merge, metrics.
//! - [`mlp`]: a one-hidden-layer network trained by SGD (cross entropy or squared error).
//! - [`nn`]: networks as data (dense, conv2d, max-pool, dropout, ReLU, tanh, log-softmax;
//!   NLL, cross-entropy, MSE; SGD with momentum, Adam), forward and backward passes over one
//!   flat parameter vector.
#![warn(missing_docs)]

pub(crate) use amlip_wire::payload;

pub mod aml;
pub mod dataset;
pub mod mlp;
pub mod nn;
