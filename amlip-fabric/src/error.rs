//! The library's errors: what a caller of a node API can get back.

use std::time::Duration;

use crate::dds::DdsError;
use crate::payload::PayloadError;
use crate::wire::{AmlipId, IdError, TaskId};

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node's name cannot make an id.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The node's trusted-domain files cannot be used.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// DDS refused something (a participant, a topic, a write).
    #[error(transparent)]
    Dds(#[from] DdsError),
    /// The node's thread could not start.
    #[error("cannot start the node's thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The node's DDS side did not come up in time.
    #[error("the node did not start within {0:?}")]
    StartTimeout(Duration),
    /// The node was stopped (or its engine ended).
    #[error("the node is stopped")]
    Stopped,
    /// A job ended without a solution.
    #[error(transparent)]
    Job(#[from] JobError),
    /// `ComputingNode::process_job` waited in vain.
    #[error("no job arrived within {0:?}")]
    NoJob(Duration),
    /// A payload could not be encoded, or a solution could not be decoded.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// A model manager sender did not hand the model over.
    #[error("model request to {sender} failed: {why}")]
    ModelRequest {
        /// The sender asked.
        sender: AmlipId,
        /// What it said, or that it said nothing in time.
        why: String,
    },
}

/// Why one job ended without a solution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// No solution arrived within the job's timeout.
    #[error("job {task_id} got no solution within {timeout:?}{hint}")]
    Timeout {
        /// The job.
        task_id: TaskId,
        /// Its timeout.
        timeout: Duration,
        /// What the main saw meanwhile (e.g. that no computing node answered).
        hint: String,
    },
    /// The computing node answered with an error.
    #[error("computing node {server_id} could not process job {task_id}: {message}")]
    Failed {
        /// The job.
        task_id: TaskId,
        /// The computing node that failed it.
        server_id: AmlipId,
        /// Why, in its words.
        message: String,
    },
    /// The main node stopped first.
    #[error("the node stopped before job {task_id} was solved")]
    Stopped {
        /// The job.
        task_id: TaskId,
    },
    /// The job was cancelled (its batch was cancelled or dropped).
    #[error("job {task_id} was cancelled")]
    Cancelled {
        /// The job.
        task_id: TaskId,
    },
}

impl JobError {
    /// The job this error is about.
    pub fn task_id(&self) -> TaskId {
        match self {
            JobError::Timeout { task_id, .. }
            | JobError::Failed { task_id, .. }
            | JobError::Stopped { task_id }
            | JobError::Cancelled { task_id } => *task_id,
        }
    }
}

/// An error a job's code returns; any error type converts into it with `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
