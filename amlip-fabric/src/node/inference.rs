//! AML-IP's inference scenario: [`EdgeNode`]s (clients) send data to [`InferenceNode`]s
//! (servers). It is the job protocol on the `inference_*` topics, so these nodes are the main
//! and computing nodes under other kinds, with the same deadlines, liveness and re-sending;
//! AML-IP's C++ and Python edge and inference nodes exchange requests with them.

use std::time::Duration;

use bytes::Bytes;

use super::{
    AsyncComputingNode, AsyncMainNode, ClientStats, ComputingNode, ComputingProbe, JobReplier,
    MainNode, MainProbe, ServedJob, Solution, SolutionListener,
};
use crate::batch::Batch;
use crate::config::NodeConfig;
use crate::error::Error;
use crate::job::Job;
use crate::wire::{AmlipId, NodeKind, TaskId};

/// An edge node with a blocking API: each call sends one inference request and waits for its
/// answer (AML-IP's `EdgeNode.request_inference`).
pub struct EdgeNode {
    inner: MainNode,
}

impl EdgeNode {
    /// An edge node named `name` with the default configuration (domain 166).
    pub fn new(name: &str) -> Result<Self, Error> {
        Self::with_config(NodeConfig::new(name))
    }

    /// An edge node as `cfg` says.
    pub fn with_config(cfg: NodeConfig) -> Result<Self, Error> {
        Ok(Self {
            inner: MainNode::of_kind(cfg, NodeKind::Edge)?,
        })
    }

    /// The node's id.
    pub fn id(&self) -> &AmlipId {
        self.inner.id()
    }

    /// Sends `data` and waits at most `timeout` for the inference. If the inference node
    /// holding it disappears, the request is re-sent to another one within that time.
    pub fn request_inference(
        &self,
        data: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Solution, Error> {
        self.inner.request_job_solution(data, timeout)
    }

    /// Many requests in flight at once, consumed as they are answered.
    pub fn batch<L: Clone>(&self) -> Batch<'_, L> {
        self.inner.batch()
    }

    /// Counters and the requests in flight.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats()
    }

    /// Reads [`stats`](Self::stats) from any thread.
    pub fn probe(&self) -> MainProbe {
        self.inner.probe()
    }

    /// Waits until `n` inference nodes are known alive, for at most `timeout`, or until
    /// `cancel` is raised. Returns how many are known when it stops.
    pub fn wait_for_inference_nodes(
        &self,
        n: usize,
        timeout: Duration,
        cancel: &crate::cancel::CancelToken,
    ) -> usize {
        self.inner.wait_for_computing_nodes(n, timeout, cancel)
    }
}

/// An edge node whose answers go to a listener (AML-IP's `AsyncEdgeNode`).
pub struct AsyncEdgeNode {
    inner: AsyncMainNode,
}

impl AsyncEdgeNode {
    /// An async edge node as `cfg` says; answers go to `listener`.
    pub fn with_config(cfg: NodeConfig, listener: impl SolutionListener) -> Result<Self, Error> {
        Ok(Self {
            inner: AsyncMainNode::of_kind(cfg, NodeKind::Edge, listener)?,
        })
    }

    /// The node's id.
    pub fn id(&self) -> &AmlipId {
        self.inner.id()
    }

    /// Sends `data`; returns its task id at once.
    pub fn request_inference(&self, data: impl Into<Bytes>) -> Result<TaskId, Error> {
        self.inner.request_job_solution(data)
    }

    /// As `request_inference`, but the listener hears a timeout error if no answer arrived
    /// within `timeout`.
    pub fn request_inference_with_timeout(
        &self,
        data: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<TaskId, Error> {
        self.inner.request_job_solution_with_timeout(data, timeout)
    }

    /// Counters and the requests in flight.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats()
    }

    /// Gives up on the request `task_id` (the listener hears it cancelled).
    pub fn cancel(&self, task_id: TaskId) {
        self.inner.cancel(task_id)
    }
}

/// An inference node with a blocking API: each call serves one request
/// (AML-IP's `InferenceNode.process_inference`).
pub struct InferenceNode {
    inner: ComputingNode,
}

impl InferenceNode {
    /// An inference node as `cfg` says.
    pub fn with_config(cfg: NodeConfig) -> Result<Self, Error> {
        Ok(Self {
            inner: ComputingNode::of_kind(cfg, NodeKind::Inference)?,
        })
    }

    /// The node's id.
    pub fn id(&self) -> &AmlipId {
        self.inner.id()
    }

    /// Waits at most `timeout` for one request and answers it with `f`.
    pub fn process_inference<F>(&self, f: F, timeout: Duration) -> Result<ServedJob, Error>
    where
        F: FnOnce(&Job) -> Result<Bytes, crate::error::BoxError>,
    {
        self.inner.process_job(f, timeout)
    }
}

/// An inference node that answers every request with a [`JobReplier`] on its own thread
/// (AML-IP's `AsyncInferenceNode`); `ModelServer` (`amlip-flows`) is the
/// replier that serves models.
pub struct AsyncInferenceNode {
    inner: AsyncComputingNode,
}

impl AsyncInferenceNode {
    /// A node as `cfg` says, already answering requests with `replier`.
    pub fn serve(cfg: NodeConfig, replier: impl JobReplier) -> Result<Self, Error> {
        let mut node = Self::with_config(cfg)?;
        node.run(replier)?;
        Ok(node)
    }

    /// A node as `cfg` says, on the domain but answering nothing until [`run`](Self::run)
    /// (AML-IP's `AsyncInferenceNode` gets its replier first and starts on `run()`).
    pub fn with_config(cfg: NodeConfig) -> Result<Self, Error> {
        Ok(Self {
            inner: AsyncComputingNode::of_kind(cfg, NodeKind::Inference)?,
        })
    }

    /// Starts answering requests with `replier` on the node's thread, one at a time (as
    /// AML-IP's node does: a replier need not expect concurrent calls).
    pub fn run(&mut self, replier: impl JobReplier) -> Result<(), Error> {
        self.inner.run(replier)
    }

    /// Starts answering requests with `replier` on `workers` threads, up to `workers` requests
    /// at once (a model server whose requests each use one core).
    pub fn run_on(&mut self, replier: impl JobReplier, workers: usize) -> Result<(), Error> {
        self.inner.run_on(replier, workers)
    }

    /// The node's id.
    pub fn id(&self) -> &AmlipId {
        self.inner.id()
    }

    /// Stops taking requests (one in progress is still answered).
    pub fn stop(&mut self) {
        self.inner.stop()
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.inner.jobs_served()
    }

    /// Reads the node's counters from any thread.
    pub fn probe(&self) -> ComputingProbe {
        self.inner.probe()
    }
}
