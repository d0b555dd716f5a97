//! amlip-flows: the workflows of the systems amlip replaces, on the fabric (`amlip-fabric`) and
//! the models (`amlip-ml`). Not for: the protocol itself, or the models' mathematics.
//!
//! # Module map
//! - [`kind`]: the built-in job kinds (`aml_train`, `mlp_train`, federated kinds, AML-IP's MNIST
//!   tutorial jobs) and [`BuiltinKinds`], the registry `computing-node` serves.
//! - [`session`]: training sessions a main runs: FedAvg of any model, AML on shards, the MLP
//!   sized from the data (classes or regression), all-reduce training; their reports.
//! - [`group`]: synchronous data-parallel training: a ring all-reduce between computing
//!   nodes, the main's rendezvous and watch channel, the `group_train` job kind.
//! - [`pipeline`]: graphs of tasks (prepare, train, evaluate, program) from TOML, run across
//!   computing nodes with independent tasks at once and bounded retries.
//! - [`stream`]: sample streams (simulations publish samples per iteration and rank; a
//!   consumer follows every producer, late or not, in bounded memory, counting each sample
//!   once) and [`stream::OnlineTraining`], which trains on them as they arrive. In a trusted
//!   domain their connections are mutual TLS (`amlip_fabric::trust::tls`).
//! - [`ailoop`]: the AI-in-the-loop workflow (infer, check against a cheap simulation,
//!   retrain from an expensive one, until five successes), its simulations and training as jobs.
//! - [`infer`]: serving models (ONNX through tract, amlip's own) to edge nodes over AML-IP's
//!   inference topics, publishing and fetching them through model managers, SmartSim-style
//!   sessions, predicting and scoring data sets.
#![warn(missing_docs)]

// The floors below, under the names the code has always used.
pub(crate) use amlip_fabric::{
    batch, cancel, config, dds, error, job, node, payload, runtime, summary, trust, wire,
};
pub(crate) use amlip_ml::{aml, dataset, mlp, nn};

pub mod ailoop;
pub mod group;
pub mod infer;
pub mod kind;
pub mod pipeline;
pub mod session;
pub mod stream;

pub use kind::BuiltinKinds;
