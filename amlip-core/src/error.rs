//! The library's errors: what a caller of a node API can get back.

use std::time::Duration;

use crate::config::ConfigError;
use crate::dds::DdsError;
use crate::wire::{AmlipId, IdError, TaskId};

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Id(#[from] IdError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Dds(#[from] DdsError),
    #[error("cannot start the node's thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("the node did not start within {0:?}")]
    StartTimeout(Duration),
    #[error("the node is stopped")]
    Stopped,
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("no job arrived within {0:?}")]
    NoJob(Duration),
}

/// Why one job ended without a solution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("job {task_id} got no solution within {timeout:?}{hint}")]
    Timeout {
        task_id: TaskId,
        timeout: Duration,
        /// What the main saw meanwhile (e.g. that no computing node answered).
        hint: String,
    },
    #[error("computing node {server_id} could not process job {task_id}: {message}")]
    Failed {
        task_id: TaskId,
        server_id: AmlipId,
        message: String,
    },
    #[error("the node stopped before job {task_id} was solved")]
    Stopped { task_id: TaskId },
}

/// An error a job's code returns; any error type converts into it with `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
