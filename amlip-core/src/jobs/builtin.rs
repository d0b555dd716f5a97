//! The job AML-IP's own tests use.

use bytes::Bytes;

use crate::error::BoxError;
use crate::protocol::server::{Job, JobContext};

/// The solution is the payload with ASCII letters upper-cased.
pub fn uppercase(job: &Job, _ctx: &JobContext) -> Result<Bytes, BoxError> {
    Ok(Bytes::from(job.data.to_ascii_uppercase()))
}
