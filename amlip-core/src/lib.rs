//! amlip: distributed machine-learning jobs over DDS, wire-compatible with eProsima AML-IP v0.3.
//!
//! A main node splits work into jobs and sends each to whichever computing node answers first;
//! computing nodes anywhere on the same DDS domain find the main by themselves.
//!
//! # Module map
//! The fabric, from bytes up (no import runs back down):
//! - [`wire`]: the bytes. AML-IP's types (`AmlipId`, `ms_request`, `ms_reference`,
//!   `ms_data_GENERIC`, `status`) exactly as AML-IP lays them out, and amlip's extension types
//!   (heartbeats, chunks, credits). Pure; no I/O.
//! - [`dds`]: rustdds plumbing: participant, topic names, QoS, typed readers and writers; readers
//!   that catch up with a new AML-IP writer's first sample, and what discovery reports.
//! - `transfer`: large payloads between amlip nodes as a credit-windowed chunk stream.
//! - `direct`: large payloads between amlip nodes over a direct TCP connection the receiver
//!   announces (the chunk stream is the fallback).
//! - `peers`: which peers are alive, which speak the extensions, which jobs they hold.
//! - `protocol`: the job protocol's state machines (main side and computing side).
//! - `runtime`: the threads a node owns and how they stop.
//! - [`node`]: the public API: `MainNode`, `AsyncMainNode`, `ComputingNode`,
//!   `AsyncComputingNode`, `StatusNode`, AML-IP's edge, inference and model-manager nodes,
//!   configured by [`config`].
//! - [`job`]: what a computing node's code sees of a job (`Job`, `JobContext`).
//! - [`batch`]: many jobs from one main, consumed as they finish (iterator or `Stream`), with
//!   progress events; [`cancel`]: the token that stops a batch or session early.
//!
//! The workflows, on top of the fabric:
//! - [`payload`]: jobs and solutions as named tensors in safetensors, with their kind.
//! - [`kind`]: the `JobKind` trait, the `Registry` a computing node serves from, and the
//!   built-in kinds (`aml_train`, `mlp_train`, AML-IP's plain jobs).
//! - [`session`]: training sessions a main runs: FedAvg of any model, AML on shards, the MLP
//!   sized from the data (classes or regression); their reports.
//! - [`group`]: synchronous data-parallel training: a ring all-reduce between computing
//!   nodes, the main's rendezvous and watch channel, the `group_train` job kind;
//!   [`session::AllReduce`] drives it and re-forms a group that loses a worker.
//! - [`pipeline`]: graphs of tasks (prepare, train, evaluate, program) from TOML, run across
//!   computing nodes with independent tasks at once and bounded retries.
//! - [`stream`]: sample streams (simulations publish samples per iteration and rank; a
//!   consumer follows every producer, late or not, in bounded memory, counting each sample
//!   once) and [`stream::OnlineTraining`], which trains on them as they arrive.
//! - [`ailoop`]: the AI-in-the-loop workflow (infer, check against a cheap simulation,
//!   retrain from an expensive one, until five successes), its simulations and training as jobs.
//! - [`infer`]: serving models (ONNX through tract, amlip's own) to edge nodes over AML-IP's
//!   inference topics, publishing them through model managers, SmartSim-style sessions.
//!
//! Beside them, knowing nothing of DDS:
//! - [`dataset`]: data sets from CSV, numpy, safetensors and IDX files (MNIST's among them),
//!   checked defect by defect; quantile levels and standardisation; shards and hold-outs.
//! - [`aml`]: the Algebraic Machine Learning engine: training, models, merge, metrics.
//! - [`mlp`]: a one-hidden-layer network trained by SGD (cross entropy or squared error).
//! - [`nn`]: networks as data (dense, conv2d, max-pool, dropout, ReLU, tanh, log-softmax;
//!   NLL, cross-entropy, MSE; SGD with momentum, Adam), forward and backward passes over one
//!   flat parameter vector.
//! - [`error`]: the errors node APIs return.
//! - `cli` (feature `cli`): flags, logging, Ctrl-C, progress display, benchmarks, the HTTP
//!   server with Prometheus metrics and the dashboard, and training plots, shared by the
//!   binaries.
//!
//! # A first program
//! ```no_run
//! use std::time::Duration;
//! use amlip_core::prelude::*;
//!
//! let cfg = |name: &str| NodeConfig::new(name).domain(7).localhost();
//! let mut computing = AsyncComputingNode::with_config(cfg("Computing"))?;
//! computing.run(amlip_core::kind::plain::uppercase)?;
//! let main = MainNode::with_config(cfg("Main"))?;
//! let solution = main.request_job_solution("hello", Duration::from_secs(10))?;
//! assert_eq!(&solution.data[..], b"HELLO");
//! # Ok::<(), amlip_core::Error>(())
//! ```
#![warn(missing_docs)]

pub mod ailoop;
pub mod aml;
pub mod batch;
pub mod cancel;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod dataset;
pub mod dds;
pub(crate) mod direct;
pub mod error;
pub mod group;
pub mod infer;
pub mod job;
pub mod kind;
pub mod mlp;
pub mod nn;
pub mod node;
pub mod payload;
pub(crate) mod peers;
pub mod pipeline;
pub(crate) mod protocol;
pub(crate) mod runtime;
pub mod session;
pub mod stream;
pub(crate) mod transfer;
pub mod wire;

pub use error::{BoxError, Error, JobError};

/// What an application needs, in one `use`.
pub mod prelude {
    pub use crate::batch::{Batch, Event, Outcome};
    pub use crate::cancel::CancelToken;
    pub use crate::config::NodeConfig;
    pub use crate::dds::Network;
    pub use crate::error::{BoxError, Error, JobError};
    pub use crate::job::{Job, JobContext};
    pub use crate::kind::federated::{FedKind, FedModel, LocalOutcome, LocalTraining, Weights};
    pub use crate::kind::{JobKind, Json, Message, Registry};
    pub use crate::node::{
        AsyncComputingNode, AsyncMainNode, ClientStats, ComputingNode, JobReplier, MainNode,
        RunningJob, ServedJob, Solution, SolutionListener, StatusNode,
    };
    pub use crate::payload::{Payload, PayloadError, Tensor};
    pub use crate::session::{FedAvg, Observer, Runner, SessionError, Silent};
    pub use crate::wire::{AmlipId, NodeKind, NodeState, Status, TaskId};
    pub use bytes::Bytes;
}
