//! Handlers for plain AML-IP payloads, which name no kind: the jobs of AML-IP's own tests and
//! tutorials. A [`Registry`](super::Registry) hands them what no kind claims. (The
//! `computing-node` binary's handler, which also answers AML-IP's MNIST tutorial jobs, is
//! `amlip-flows`' `kind::plain::Auto`.)

use bytes::Bytes;

use crate::error::BoxError;
use crate::job::{Job, JobContext};

/// The job AML-IP's own tests use: the solution is the payload with ASCII letters
/// upper-cased.
pub fn uppercase(job: &Job, _ctx: &JobContext) -> Result<Bytes, BoxError> {
    Ok(Bytes::from(job.data.to_ascii_uppercase()))
}
