//! Serving models and querying them, as AML-IP's edge, inference and model-manager nodes do,
//! and as SmartSim's inference sessions do.
//!
//! - `model`: [`Model`], a model loaded for serving: any ONNX file (through tract, pure Rust)
//!   or one of amlip's own model files (MLP, AML binary and one-vs-rest), run from named
//!   tensors to named tensors, inputs checked against what it takes.
//! - `import`: ONNX graphs amlip's own `nn` kernels can run (Conv, Gemm, MaxPool, ...), imported
//!   into a network; `model` serves them with it instead of tract.
//! - `wire`: what requests, answers, model announcements and model requests carry.
//! - `serve`: [`ModelServer`] answers requests from the models it holds; [`ModelHost`] puts it
//!   on the domain (inference node, announcements, fetching what model managers offer).
//! - `publish`: [`Publisher`], which offers model files to the domain and sees who serves them.
//! - `fetch`: [`fetch`], a model file from whichever sender announces it, amlip's or AML-IP's.
//! - [`query`]: finding a served model, requests, predicting and scoring a data set, benchmarks.
//! - `session`: [`Session`], SmartSim's put tensor / set model / run / get tensor.

mod fetch;
mod import;
mod model;
mod publish;
pub mod query;
mod serve;
mod session;
pub mod wire;

pub use fetch::{fetch, FetchError, Fetched};
pub use model::{
    shape_text, InferError, Model, ModelInfo, OnnxEngine, TensorSpec, MAX_MODEL_BYTES,
};
pub use publish::{servers_in, Publisher, Served};
pub use serve::{HostOptions, ModelHost, ModelServer};
pub use session::{Session, SessionError};
