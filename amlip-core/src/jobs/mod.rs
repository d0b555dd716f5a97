//! Jobs a computing node serves, and the payloads they travel in.
//!
//! - [`payload`]: the versioned container of amlip's ML jobs and solutions.
//! - [`ml`]: AML and MLP training jobs and their solutions.
//! - [`tutorial`]: the text job of AML-IP's MNIST tutorial (answered with a JSON atomization).
//! - [`builtin`]: the upper-case job AML-IP's own tests use.
//!
//! [`serve`] picks the right one for a payload, so one computing node serves them all.

pub mod builtin;
pub mod ml;
pub mod payload;
pub mod tutorial;

use bytes::Bytes;

pub use builtin::uppercase;

use crate::error::BoxError;
use crate::protocol::server::{Job, JobContext};
use payload::Payload;

/// How a computing node answers payloads that are not amlip containers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    /// The digit a tutorial job trains for (the tutorial's `target_digit`).
    pub tutorial_digit: u8,
}

/// Serves any job: an amlip container by its kind (`aml_train`, `mlp_train`), AML-IP's
/// tutorial text, and anything else with the upper-case job. A container this node cannot
/// serve, or a malformed one, is an error (sent back as an error solution).
pub fn serve(job: &Job, ctx: &JobContext, opts: ServeOptions) -> Result<Bytes, BoxError> {
    if Payload::is_container(&job.data) {
        let p = Payload::decode(&job.data)?;
        return match p.kind() {
            ml::AML_TRAIN => ml::run_aml_train(&p, ctx),
            ml::MLP_TRAIN => ml::run_mlp_train(&p, ctx),
            other => Err(format!(
                "job kind {other:?} is not one this node serves ({}, {})",
                ml::AML_TRAIN,
                ml::MLP_TRAIN
            )
            .into()),
        };
    }
    if tutorial::is_tutorial_job(&job.data) {
        return tutorial::run(&job.data, ctx, opts.tutorial_digit);
    }
    uppercase(job, ctx)
}
