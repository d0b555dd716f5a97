//! amlip-fabric: computers on a network find each other over DDS and exchange jobs, with no
//! broker, wire-compatible with eProsima AML-IP v0.3. The crate to add to exchange jobs: it
//! knows nothing of models or data sets (no tract, gemm or file formats); those are
//! `amlip-ml` and `amlip-flows`, and `amlip-core` puts everything under one roof.
//!
//! # Module map
//! From bytes up (no import runs back down; the bytes themselves are `amlip-wire`, re-exported
//! here as [`wire`] and [`payload`]):
//! - [`dds`]: rustdds plumbing: participant, topic names, QoS, typed readers and writers;
//!   readers that catch up with a new AML-IP writer's first sample, and what discovery reports.
//! - `transfer`: large payloads between amlip nodes as a credit-windowed chunk stream.
//! - `direct`: large payloads between amlip nodes over a direct TCP connection the receiver
//!   announces (the chunk stream is the fallback).
//! - `peers`: which peers are alive, which speak the extensions, which jobs they hold.
//! - `protocol`: the job protocol's state machines (main side and computing side).
//! - [`runtime`]: the threads a node owns and how they stop.
//! - [`node`]: the public API: `MainNode`, `AsyncMainNode`, `ComputingNode`,
//!   `AsyncComputingNode`, `StatusNode`, AML-IP's edge, inference and model-manager nodes,
//!   configured by [`config`].
//! - [`job`]: what a computing node's code sees of a job (`Job`, `JobContext`).
//! - [`batch`]: many jobs from one main, consumed as they finish (iterator or `Stream`), with
//!   progress events; [`cancel`]: the token that stops a batch or session early.
//! - [`kind`]: the `JobKind` trait, the `Registry` a computing node serves from, and AML-IP's
//!   plain jobs (the built-in ML kinds are `amlip-flows`').
//! - [`trust`]: trusted domains: the files `trust init/add` write, their checks, and the
//!   direct path's mutual TLS (DDS Security itself is rustdds's).
//! - [`summary`]: what a main says about its jobs and sessions, for status views anywhere.
//! - [`error`]: the errors node APIs return.
#![warn(missing_docs)]

pub use amlip_wire as wire;
pub use amlip_wire::payload;

pub mod batch;
pub mod cancel;
pub mod config;
pub mod dds;
pub(crate) mod direct;
pub mod error;
pub mod job;
pub mod kind;
pub mod node;
pub(crate) mod peers;
pub(crate) mod protocol;
pub mod runtime;
pub mod summary;
pub(crate) mod transfer;
pub mod trust;

pub use error::{BoxError, Error, JobError};
