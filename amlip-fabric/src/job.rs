//! What a computing node's code sees of a job: its bytes and who sent it ([`Job`]), and a way to
//! report progress and notice cancellation ([`JobContext`]). Model code depends on these two
//! types only, never on the protocol that carried the job.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::wire::{AmlipId, TaskId};

/// A job as a computing node's code receives it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The payload the main sent.
    pub data: Bytes,
    /// The main's task id for this attempt.
    pub task_id: TaskId,
    /// The main that sent it.
    pub client_id: AmlipId,
}

/// Lets a running job report progress (shown by the main) and notice cancellation.
#[derive(Clone, Default)]
pub struct JobContext {
    pub(crate) progress: Arc<Progress>,
    pub(crate) cancelled: Arc<AtomicBool>,
}

/// Steps done of a total, as the job last reported them.
#[derive(Default)]
pub(crate) struct Progress {
    done: AtomicU32,
    total: AtomicU32,
}

impl Progress {
    /// (done, total).
    pub fn get(&self) -> (u32, u32) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

impl JobContext {
    /// Reports `done` of `total` steps (batches, epochs...). Travels in the next heartbeat.
    pub fn report_progress(&self, done: u32, total: u32) {
        self.progress.total.store(total, Ordering::Relaxed);
        self.progress.done.store(done, Ordering::Relaxed);
    }

    /// True once the node is stopping or the job's main is gone: a long job may give up early.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// For training loops' progress callbacks: `Break` once the job is cancelled.
    pub fn keep_going(&self) -> ControlFlow<()> {
        if self.is_cancelled() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// Marks the job cancelled.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}
