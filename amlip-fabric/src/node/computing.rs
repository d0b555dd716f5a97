//! Computing nodes: take jobs, compute, answer.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{start_engine, STOP_TIMEOUT};
use crate::config::NodeConfig;
use crate::dds::{DropCounters, DroppedSamples};
use crate::error::{BoxError, Error};
use crate::job::{Job, JobContext};
use crate::protocol::server::{self, ServerCommand, ServerShared, WorkItem};
use crate::runtime::{BoundedThread, NodeThread};
use crate::wire::{AmlipId, NodeKind, TaskId};

/// Computes a solution from a job. A closure `Fn(&Job, &JobContext) -> Result<Bytes, BoxError>`
/// is a replier. An `Err` (or a panic) is sent back as an error solution and the node keeps
/// serving.
pub trait JobReplier: Send + Sync + 'static {
    /// The solution of `job` (an `Err` is sent back as an error solution).
    fn process_job(&self, job: &Job, ctx: &JobContext) -> Result<Bytes, BoxError>;
}

impl<F> JobReplier for F
where
    F: Fn(&Job, &JobContext) -> Result<Bytes, BoxError> + Send + Sync + 'static,
{
    fn process_job(&self, job: &Job, ctx: &JobContext) -> Result<Bytes, BoxError> {
        self(job, ctx)
    }
}

/// What `ComputingNode::process_job` served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedJob {
    /// The main's task id.
    pub task_id: TaskId,
    /// The main that sent it.
    pub client_id: AmlipId,
    /// The error sent back instead of a solution, if the job failed.
    pub error: Option<String>,
}

struct ServerHandle {
    id: AmlipId,
    domain: u16,
    thread: NodeThread,
    commands: mpsc::UnboundedSender<ServerCommand>,
    shared: Arc<ServerShared>,
    dropped: Arc<DropCounters>,
}

impl ServerHandle {
    fn start(
        cfg: NodeConfig,
        kind: NodeKind,
        capacity: Option<usize>,
    ) -> Result<(Self, std_mpsc::Receiver<WorkItem>), Error> {
        let (commands, rx) = mpsc::unbounded_channel();
        let (work_tx, work_rx) = std_mpsc::channel();
        let shared = Arc::new(ServerShared::default());
        let engine_shared = shared.clone();
        let domain = cfg.domain;
        let dropped = Arc::new(DropCounters::default());
        let (id, thread) = start_engine(
            kind,
            cfg,
            dropped.clone(),
            "amlip-computing",
            move |core, ready, sd| {
                server::run(core, engine_shared, work_tx, rx, capacity, ready, sd)
            },
        )?;
        tracing::info!(%id, domain, "{} node started", super::kind_name(kind));
        Ok((
            Self {
                id,
                domain,
                thread,
                commands,
                shared,
                dropped,
            },
            work_rx,
        ))
    }
}

/// Runs one job through `f`, turning errors and panics into the error text sent back.
fn run_job<F>(job: &Job, f: F) -> Result<Bytes, String>
where
    F: FnOnce(&Job) -> Result<Bytes, BoxError>,
{
    match catch_unwind(AssertUnwindSafe(|| f(job))) {
        Ok(Ok(solution)) => Ok(solution),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("the job's code panicked: {what}"))
        }
    }
}

fn finished(job: &Job, result: Result<Bytes, String>) -> ServerCommand {
    ServerCommand::Finished {
        client_id: job.client_id.clone(),
        task_id: job.task_id,
        result,
    }
}

/// Reads a computing node's counters from any thread ([`AsyncComputingNode::probe`]).
#[derive(Clone)]
pub struct ComputingProbe(Arc<ServerShared>);

impl ComputingProbe {
    /// Jobs answered with a solution.
    pub fn jobs_served(&self) -> u64 {
        self.0
            .jobs_served
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Jobs answered with an error.
    pub fn jobs_failed(&self) -> u64 {
        self.0
            .jobs_failed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Availability requests dropped unanswered.
    pub fn requests_refused(&self) -> u64 {
        self.0
            .requests_refused
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A computing node with a blocking API: each `process_job` call serves one job.
pub struct ComputingNode {
    handle: ServerHandle,
    work: Mutex<std_mpsc::Receiver<WorkItem>>,
}

impl ComputingNode {
    /// A computing node named `name` with the default configuration (domain 166).
    pub fn new(name: &str) -> Result<Self, Error> {
        Self::with_config(NodeConfig::new(name))
    }

    /// A computing node as `cfg` says.
    pub fn with_config(cfg: NodeConfig) -> Result<Self, Error> {
        Self::of_kind(cfg, NodeKind::Computing)
    }

    /// A server node of `kind` (`Computing`, or `Inference` for the inference topics).
    pub(crate) fn of_kind(cfg: NodeConfig, kind: NodeKind) -> Result<Self, Error> {
        let (handle, work) = ServerHandle::start(cfg, kind, Some(0))?;
        Ok(Self {
            handle,
            work: Mutex::new(work),
        })
    }

    /// The node's id.
    pub fn id(&self) -> &AmlipId {
        &self.handle.id
    }

    /// The node's DDS domain.
    pub fn domain(&self) -> u16 {
        self.handle.domain
    }

    /// Waits up to `timeout` for one job, computes its solution with `f` on this thread, and
    /// sends it back (an `Err` or panic of `f` is sent as an error solution).
    pub fn process_job<F>(&self, f: F, timeout: Duration) -> Result<ServedJob, Error>
    where
        F: FnOnce(&Job) -> Result<Bytes, BoxError>,
    {
        let work = self.work.lock().map_err(|_| Error::Stopped)?;
        self.handle
            .commands
            .send(ServerCommand::Accept(1))
            .map_err(|_| Error::Stopped)?;
        let item = match work.recv_timeout(timeout) {
            Ok(item) => item,
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                let _ = self.handle.commands.send(ServerCommand::Withdraw(1));
                return Err(Error::NoJob(timeout));
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return Err(Error::Stopped),
        };
        let result = run_job(&item.job, f);
        let served = ServedJob {
            task_id: item.job.task_id,
            client_id: item.job.client_id.clone(),
            error: result.as_ref().err().cloned(),
        };
        self.handle
            .commands
            .send(finished(&item.job, result))
            .map_err(|_| Error::Stopped)?;
        Ok(served)
    }

    /// Jobs answered with a solution so far.
    pub fn jobs_served(&self) -> u64 {
        self.handle
            .shared
            .jobs_served
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A computing node that serves jobs in the background with a [`JobReplier`] until stopped.
pub struct AsyncComputingNode {
    handle: ServerHandle,
    work: Mutex<Option<std_mpsc::Receiver<WorkItem>>>,
    workers: Vec<BoundedThread>,
    started_workers: usize,
}

impl AsyncComputingNode {
    /// A computing node named `name` with the default configuration (domain 166).
    pub fn new(name: &str) -> Result<Self, Error> {
        Self::with_config(NodeConfig::new(name))
    }

    /// A computing node as `cfg` says.
    pub fn with_config(cfg: NodeConfig) -> Result<Self, Error> {
        Self::of_kind(cfg, NodeKind::Computing)
    }

    /// A server node of `kind` (`Computing`, or `Inference` for the inference topics).
    pub(crate) fn of_kind(cfg: NodeConfig, kind: NodeKind) -> Result<Self, Error> {
        let (handle, work) = ServerHandle::start(cfg, kind, Some(0))?;
        Ok(Self {
            handle,
            work: Mutex::new(Some(work)),
            workers: Vec::new(),
            started_workers: 0,
        })
    }

    /// The node's id.
    pub fn id(&self) -> &AmlipId {
        &self.handle.id
    }

    /// The node's DDS domain.
    pub fn domain(&self) -> u16 {
        self.handle.domain
    }

    /// A node as `cfg` says, already serving jobs with `replier`.
    pub fn serve(cfg: NodeConfig, replier: impl JobReplier) -> Result<Self, Error> {
        let mut node = Self::with_config(cfg)?;
        node.run(replier)?;
        Ok(node)
    }

    /// Starts serving jobs with `replier` on a worker thread; returns at once.
    /// Calling it again after `stop` resumes serving (with the first replier).
    pub fn run(&mut self, replier: impl JobReplier) -> Result<(), Error> {
        self.run_on(replier, 1)
    }

    /// Starts serving jobs with `replier` on `workers` threads, each computing one job at a
    /// time (jobs that use one core each, such as small inference requests, then run side by
    /// side); returns at once. Calling it again after `stop` resumes serving (with the first
    /// replier and workers).
    pub fn run_on(&mut self, replier: impl JobReplier, workers: usize) -> Result<(), Error> {
        let workers = workers.max(1);
        let work = self.work.lock().map_err(|_| Error::Stopped)?.take();
        if let Some(work) = work {
            let replier = Arc::new(replier);
            let work = Arc::new(Mutex::new(work));
            for i in 0..workers {
                let (commands, replier, work) =
                    (self.handle.commands.clone(), replier.clone(), work.clone());
                let name = if workers == 1 {
                    "amlip-worker".to_owned()
                } else {
                    format!("amlip-worker-{i}")
                };
                self.workers.push(BoundedThread::spawn(&name, move || loop {
                    // One worker waits on the channel while the others wait for the lock.
                    let item = match work.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok(item) = item else { break };
                    let result = run_job(&item.job, |job| replier.process_job(job, &item.ctx));
                    if commands.send(finished(&item.job, result)).is_err() {
                        break;
                    }
                })?);
            }
            self.started_workers = workers;
        }
        self.handle
            .commands
            .send(ServerCommand::AcceptForever {
                workers: self.started_workers,
            })
            .map_err(|_| Error::Stopped)
    }

    /// Stops taking new jobs (a job in progress still finishes and is answered).
    pub fn stop(&mut self) {
        let _ = self.handle.commands.send(ServerCommand::StopAccepting);
    }

    /// Jobs answered with a solution so far.
    pub fn jobs_served(&self) -> u64 {
        self.handle
            .shared
            .jobs_served
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Jobs answered with an error so far.
    pub fn jobs_failed(&self) -> u64 {
        self.handle
            .shared
            .jobs_failed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A handle that reads the node's counters from any thread (metrics exporters).
    pub fn probe(&self) -> ComputingProbe {
        ComputingProbe(self.handle.shared.clone())
    }

    /// Availability requests dropped unanswered: no participant vouched for their main within
    /// the ghost timeout (a main that does not exist), or their main had too many open.
    pub fn requests_refused(&self) -> u64 {
        self.handle
            .shared
            .requests_refused
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Samples this node's readers dropped (malformed, or of a foreign type), by topic.
    pub fn dropped_samples(&self) -> BTreeMap<String, DroppedSamples> {
        self.handle.dropped.snapshot()
    }
}

impl Drop for AsyncComputingNode {
    fn drop(&mut self) {
        self.handle.thread.stop(STOP_TIMEOUT);
        for w in &mut self.workers {
            w.join(STOP_TIMEOUT);
        }
    }
}
