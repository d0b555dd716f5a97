//! Handlers for plain AML-IP payloads, which name no kind: the jobs of AML-IP's own tests and
//! tutorials. A [`Registry`](super::Registry) hands them what no kind claims.

use bytes::Bytes;

use crate::error::BoxError;
use crate::job::{Job, JobContext};
use crate::node::JobReplier;

/// The job AML-IP's own tests use: the solution is the payload with ASCII letters
/// upper-cased.
pub fn uppercase(job: &Job, _ctx: &JobContext) -> Result<Bytes, BoxError> {
    Ok(Bytes::from(job.data.to_ascii_uppercase()))
}

/// What the `computing-node` binary does with plain payloads: the text jobs of AML-IP's MNIST
/// tutorial (`x: [...] y: [...]`) get the trained model's JSON atomization (so the tutorial's
/// Python main works with amlip), anything else is upper-cased.
#[derive(Debug, Clone, Copy, Default)]
pub struct Auto {
    /// The digit a tutorial job trains a classifier for (the tutorial's `target_digit`).
    pub tutorial_digit: u8,
}

impl JobReplier for Auto {
    fn process_job(&self, job: &Job, ctx: &JobContext) -> Result<Bytes, BoxError> {
        if super::tutorial::is_tutorial_job(&job.data) {
            super::tutorial::run(&job.data, ctx, self.tutorial_digit)
        } else {
            uppercase(job, ctx)
        }
    }
}
