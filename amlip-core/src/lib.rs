//! amlip: distributed machine-learning jobs over DDS, wire-compatible with eProsima AML-IP v0.3.
//!
//! A main node splits work into jobs and sends each to whichever computing node answers first;
//! computing nodes anywhere on the same DDS domain find the main by themselves.
//!
//! This crate is the one to depend on: it puts the workspace's crates under one roof, at the
//! paths programs have always used. Each floor is a crate of its own, and none imports from a
//! floor above it:
//! - `amlip-wire`: the bytes ([`wire`], [`payload`]). Pure; no I/O.
//! - `amlip-fabric`: the fabric, the crate for exchanging jobs with no ML dependency:
//!   [`dds`], the protocol, [`node`], [`config`], [`job`], [`batch`], [`cancel`], [`error`],
//!   and [`kind`]'s machinery.
//! - `amlip-ml`: models and data, knowing nothing of DDS: [`dataset`], [`aml`], [`mlp`], [`nn`].
//! - `amlip-flows`: the workflows on both: the built-in [`kind`]s, [`session`], [`group`],
//!   [`pipeline`], [`stream`], [`ailoop`], [`infer`].
//! - `amlip-cli` (beside, for the binaries): flags, logging, progress, metrics, the dashboard.
//!
//! Each crate's `lib.rs` opens with its own module map.
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

pub use amlip_fabric::{
    batch, cancel, config, dds, error, job, node, payload, summary, trust, wire,
};
pub use amlip_flows::{ailoop, group, infer, kind, pipeline, session, stream};
pub use amlip_ml::{aml, dataset, mlp, nn};

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
    pub use crate::kind::{BuiltinKinds, JobKind, Json, Message, Registry};
    pub use crate::node::{
        AsyncComputingNode, AsyncMainNode, ClientStats, ComputingNode, JobReplier, MainNode,
        RunningJob, ServedJob, Solution, SolutionListener, StatusNode,
    };
    pub use crate::payload::{Payload, PayloadError, Tensor};
    pub use crate::session::{FedAvg, Observer, Runner, SessionError, Silent};
    pub use crate::wire::{AmlipId, NodeKind, NodeState, Status, TaskId};
    pub use bytes::Bytes;
}
