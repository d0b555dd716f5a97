//! amlip: distributed machine-learning jobs over DDS, wire-compatible with eProsima AML-IP v0.3.
//!
//! A main node splits work into jobs and sends each to whichever computing node answers first;
//! computing nodes anywhere on the same DDS domain find the main by themselves.
//!
//! # Module map
//! - [`wire`]: the bytes. AML-IP's types (`AmlipId`, `ms_request`, `ms_reference`,
//!   `ms_data_GENERIC`, `status`) exactly as AML-IP lays them out, and amlip's extension types
//!   (heartbeats, chunks, credits). Pure; no I/O.
//! - [`dds`]: rustdds plumbing: participant, topic names, QoS, typed readers and writers.
//! - [`transfer`]: large payloads between amlip nodes as a credit-windowed chunk stream.
//! - [`peers`]: which peers are alive, which speak the extensions, which jobs they hold.
//! - [`protocol`]: the job protocol's state machines: [`protocol::client`] (main side) and
//!   [`protocol::server`] (computing side).
//! - [`node`]: the public API: `MainNode`, `AsyncMainNode`, `ComputingNode`,
//!   `AsyncComputingNode`, `StatusNode`.
//! - [`runtime`]: the thread and shutdown signal each node runs on.
//! - [`config`]: domain, network and every timeout.
//! - [`jobs`]: built-in jobs (the upper-case job AML-IP's tests use).
//! - [`dataset`]: MNIST loading and validation, shards and hold-outs (no DDS).
//! - [`aml`]: the Algebraic Machine Learning engine: training, models, merge, metrics (no DDS).
//! - [`mlp`]: a 784-128-10 neural network trained by SGD, averaged by FedAvg (no DDS).
//! - [`error`]: the errors node APIs return.
//! - `cli` (feature `cli`): flags, logging and Ctrl-C handling shared by the binaries.
//!
//! # A first program
//! ```no_run
//! use std::time::Duration;
//! use amlip_core::prelude::*;
//!
//! let mut computing = AsyncComputingNode::new("Computing")?;
//! computing.run(amlip_core::jobs::uppercase)?;
//! let main = MainNode::new("Main")?;
//! let solution = main.request_job_solution("hello", Duration::from_secs(10))?;
//! assert_eq!(&solution.data[..], b"HELLO");
//! # Ok::<(), amlip_core::Error>(())
//! ```

pub mod aml;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod dataset;
pub mod dds;
pub mod error;
pub mod jobs;
pub mod mlp;
pub mod node;
pub mod peers;
pub mod protocol;
pub mod runtime;
pub mod transfer;
pub mod wire;

pub use error::{BoxError, Error, JobError};

/// What an application needs, in one `use`.
pub mod prelude {
    pub use crate::config::NodeConfig;
    pub use crate::dds::Network;
    pub use crate::error::{BoxError, Error, JobError};
    pub use crate::node::{
        AsyncComputingNode, AsyncMainNode, ComputingNode, JobReplier, MainNode, ServedJob,
        SolutionListener, StatusNode,
    };
    pub use crate::protocol::client::{ClientStats, Solution};
    pub use crate::protocol::server::{Job, JobContext};
    pub use crate::wire::{AmlipId, NodeKind, NodeState, Status, TaskId};
    pub use bytes::Bytes;
}
