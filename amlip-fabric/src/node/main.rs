//! Main nodes: send jobs, get solutions.

use std::collections::BTreeMap;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::start_engine;
use crate::batch::Batch;
use crate::config::NodeConfig;
use crate::dds::{DropCounters, DroppedSamples};
use crate::error::{Error, JobError};
use crate::kind::{self, JobKind};
use crate::protocol::client::{
    self, ClientCommand, ClientShared, ClientStats, Responder, Solution,
};
use crate::runtime::{BoundedThread, NodeThread};
use crate::summary::SessionHandle;
use crate::wire::{AmlipId, NodeKind, TaskId};

use super::STOP_TIMEOUT;

/// Receives the outcome of each job an [`AsyncMainNode`] sent, on a dedicated thread, in the
/// order outcomes arrive. A closure `Fn(Bytes, TaskId, AmlipId)` is a listener.
pub trait SolutionListener: Send + Sync + 'static {
    /// `solution` of the job `task_id` (the id `request_job_solution` returned), computed by
    /// `server_id`.
    fn solution_received(&self, solution: Bytes, task_id: TaskId, server_id: AmlipId);

    /// The job ended without a solution (its timeout passed, or the node answered an error).
    fn job_failed(&self, task_id: TaskId, error: JobError) {
        tracing::warn!(task_id, "job failed: {error}");
    }
}

impl<F> SolutionListener for F
where
    F: Fn(Bytes, TaskId, AmlipId) + Send + Sync + 'static,
{
    fn solution_received(&self, solution: Bytes, task_id: TaskId, server_id: AmlipId) {
        self(solution, task_id, server_id)
    }
}

/// What both main nodes share: the engine thread and the way to talk to it.
pub(crate) struct ClientHandle {
    pub id: AmlipId,
    pub domain: u16,
    thread: NodeThread,
    commands: mpsc::UnboundedSender<ClientCommand>,
    shared: Arc<ClientShared>,
    dropped: Arc<DropCounters>,
}

impl ClientHandle {
    fn start(cfg: NodeConfig, kind: NodeKind) -> Result<Self, Error> {
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(ClientShared::default());
        let engine_shared = shared.clone();
        let domain = cfg.domain;
        let dropped = Arc::new(DropCounters::default());
        let (id, thread) = start_engine(
            kind,
            cfg,
            dropped.clone(),
            "amlip-main",
            move |core, ready, sd| client::run(core, engine_shared, rx, ready, sd),
        )?;
        tracing::info!(%id, domain, "{} node started", super::kind_name(kind));
        Ok(Self {
            id,
            domain,
            thread,
            commands,
            shared,
            dropped,
        })
    }

    pub fn submit(
        &self,
        data: Bytes,
        timeout: Option<Duration>,
        respond: Responder,
        exclusive: bool,
    ) -> Result<TaskId, Error> {
        let job_id = self.shared.allocate_job();
        self.commands
            .send(ClientCommand::Submit {
                job_id,
                data,
                timeout,
                respond,
                exclusive,
            })
            .map_err(|_| Error::Stopped)?;
        Ok(job_id)
    }

    /// Cancels a job; its submitter gets [`JobError::Cancelled`].
    pub fn cancel(&self, job_id: TaskId) {
        let _ = self.commands.send(ClientCommand::Cancel(job_id));
    }

    pub fn stats(&self) -> ClientStats {
        self.shared.stats()
    }

    /// A session's entry in this main's summary (see [`crate::summary`]).
    pub fn session(&self, kind: &str, name: &str, step_name: &str, steps: u32) -> SessionHandle {
        self.shared.sessions.start(kind, name, step_name, steps)
    }

    /// Whether the engine has ended.
    pub fn is_stopped(&self) -> bool {
        self.thread.is_finished()
    }

    /// Sends one job and waits for its outcome.
    fn request(&self, job: Bytes, timeout: Duration) -> Result<Solution, Error> {
        let (tx, rx) = std_mpsc::sync_channel(1);
        let job_id = self.submit(job, Some(timeout), Responder::Once(tx), false)?;
        // The engine answers by the deadline; the margin only covers a dead engine thread.
        match rx.recv_timeout(timeout + Duration::from_secs(2)) {
            Ok(outcome) => outcome.map_err(Error::Job),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                self.cancel(job_id);
                Err(JobError::Timeout {
                    task_id: job_id,
                    timeout,
                    hint: String::new(),
                }
                .into())
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => Err(Error::Stopped),
        }
    }
}

/// Reads a main's counters from any thread ([`MainNode::probe`]).
#[derive(Clone)]
pub struct MainProbe(Arc<ClientShared>);

impl MainProbe {
    /// The main's counters now.
    pub fn stats(&self) -> ClientStats {
        self.0.stats()
    }
}

/// A main node with a blocking API: each call sends one job and waits for its solution.
/// Calls from several threads run concurrently (one job in flight per call); a
/// [`batch`](Self::batch) sends many at once.
pub struct MainNode {
    handle: ClientHandle,
    /// The interfaces it uses: sessions that open their own listeners (all-reduce groups)
    /// listen and announce on the same ones.
    network: crate::dds::Network,
    /// Whether it is a member of a trusted domain (sessions with connections of their own
    /// refuse to run in clear there).
    trusted: bool,
}

impl MainNode {
    /// The network interfaces it uses.
    pub fn interfaces(&self) -> &crate::dds::Network {
        &self.network
    }

    /// Whether it is a member of a trusted domain.
    pub fn is_trusted(&self) -> bool {
        self.trusted
    }

    /// A main node named `name` with the default configuration (domain 166, every interface).
    pub fn new(name: &str) -> Result<Self, Error> {
        Self::with_config(NodeConfig::new(name))
    }

    /// A main node as `cfg` says.
    pub fn with_config(cfg: NodeConfig) -> Result<Self, Error> {
        Self::of_kind(cfg, NodeKind::Main)
    }

    /// A client node of `kind` (`Main`, or `Edge` for the inference topics).
    pub(crate) fn of_kind(cfg: NodeConfig, kind: NodeKind) -> Result<Self, Error> {
        let network = cfg.network.clone();
        let trusted = cfg.trust.is_some();
        Ok(Self {
            handle: ClientHandle::start(cfg, kind)?,
            network,
            trusted,
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

    /// Sends `job` and waits for its solution for at most `timeout`. If the computing node
    /// holding it disappears, the job is re-sent to another one within that time.
    pub fn request_job_solution(
        &self,
        job: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Solution, Error> {
        self.handle.request(job.into(), timeout)
    }

    /// Sends a job of kind `K` and waits for its decoded solution for at most `timeout`.
    pub fn request<K: JobKind>(
        &self,
        input: &K::Input,
        timeout: Duration,
    ) -> Result<K::Output, Error> {
        let solution = self.handle.request(kind::job_bytes::<K>(input)?, timeout)?;
        Ok(kind::read_solution::<K>(&solution.data)?)
    }

    /// A batch of jobs sent from this node, labelled with `L`.
    pub fn batch<L: Clone>(&self) -> Batch<'_, L> {
        Batch::new(&self.handle)
    }

    /// Counters and the jobs in flight.
    pub fn stats(&self) -> ClientStats {
        self.handle.stats()
    }

    /// A handle that reads [`stats`](Self::stats) from any thread for as long as it is kept
    /// (after the node stops, the last counters): for metrics exporters and dashboards.
    pub fn probe(&self) -> MainProbe {
        MainProbe(self.handle.shared.clone())
    }

    /// Starts a session's entry in the summary this main publishes: its `kind` (`fedavg`,
    /// `aml`, `allreduce`, `pipeline`, ...), `name`, and `steps` in all of `step_name` (0:
    /// unknown). Every status view on the domain then shows it, with its curve.
    pub fn session(&self, kind: &str, name: &str, step_name: &str, steps: u32) -> SessionHandle {
        self.handle.session(kind, name, step_name, steps)
    }

    /// Waits until `n` computing nodes are known alive, for at most `timeout`, or until
    /// `cancel` is raised. Returns how many are known when it stops.
    pub fn wait_for_computing_nodes(
        &self,
        n: usize,
        timeout: Duration,
        cancel: &crate::cancel::CancelToken,
    ) -> usize {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let known = self.stats().computing_nodes.len();
            if known >= n
                || std::time::Instant::now() > deadline
                || cancel.wait_timeout(Duration::from_millis(20))
            {
                return known;
            }
        }
    }

    /// Samples this node's readers dropped (malformed, or of a foreign type), by topic.
    pub fn dropped_samples(&self) -> BTreeMap<String, DroppedSamples> {
        self.handle.dropped.snapshot()
    }

    /// Stops the node (status `dropped` is published). Dropping it does the same.
    pub fn stop(mut self) {
        self.handle.thread.stop(STOP_TIMEOUT);
    }
}

/// A main node that sends jobs without waiting: `request_job_solution` returns the job's task
/// id at once and the [`SolutionListener`] gets each outcome.
pub struct AsyncMainNode {
    handle: ClientHandle,
    outcomes: Option<std_mpsc::Sender<Result<Solution, JobError>>>,
    listener: BoundedThread,
}

impl AsyncMainNode {
    /// An async main node named `name` with the default configuration.
    pub fn new(name: &str, listener: impl SolutionListener) -> Result<Self, Error> {
        Self::with_config(NodeConfig::new(name), listener)
    }

    /// An async main node as `cfg` says.
    pub fn with_config(cfg: NodeConfig, listener: impl SolutionListener) -> Result<Self, Error> {
        Self::of_kind(cfg, NodeKind::Main, listener)
    }

    /// A client node of `kind` (`Main`, or `Edge` for the inference topics).
    pub(crate) fn of_kind(
        cfg: NodeConfig,
        kind: NodeKind,
        listener: impl SolutionListener,
    ) -> Result<Self, Error> {
        let handle = ClientHandle::start(cfg, kind)?;
        let (tx, rx) = std_mpsc::channel::<Result<Solution, JobError>>();
        let listener = BoundedThread::spawn("amlip-listener", move || {
            for outcome in rx {
                match outcome {
                    Ok(s) => listener.solution_received(s.data, s.task_id, s.server_id),
                    Err(e) => listener.job_failed(e.task_id(), e),
                }
            }
        })?;
        Ok(Self {
            handle,
            outcomes: Some(tx),
            listener,
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

    /// Sends `job`; returns its task id at once. The job is re-sent if its holder disappears,
    /// and waits for a computing node for as long as it takes (see
    /// [`request_job_solution_with_timeout`](Self::request_job_solution_with_timeout)).
    pub fn request_job_solution(&self, job: impl Into<Bytes>) -> Result<TaskId, Error> {
        self.submit(job.into(), None)
    }

    /// As `request_job_solution`, but the listener gets `job_failed` with a timeout error if no
    /// solution arrived within `timeout`.
    pub fn request_job_solution_with_timeout(
        &self,
        job: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<TaskId, Error> {
        self.submit(job.into(), Some(timeout))
    }

    fn submit(&self, job: Bytes, timeout: Option<Duration>) -> Result<TaskId, Error> {
        let tx = self.outcomes.as_ref().ok_or(Error::Stopped)?.clone();
        self.handle
            .submit(job, timeout, Responder::Listener(tx), false)
    }

    /// A batch of jobs sent from this node; its outcomes go to the batch, not the listener.
    pub fn batch<L: Clone>(&self) -> Batch<'_, L> {
        Batch::new(&self.handle)
    }

    /// Gives up on the job `task_id`: the listener hears `job_failed` with
    /// [`JobError::Cancelled`] (a solution already on its way is dropped).
    pub fn cancel(&self, task_id: TaskId) {
        self.handle.cancel(task_id)
    }

    /// Counters and the jobs in flight.
    pub fn stats(&self) -> ClientStats {
        self.handle.stats()
    }

    /// A handle that reads [`stats`](Self::stats) from any thread for as long as it is kept
    /// (after the node stops, the last counters): for metrics exporters and dashboards.
    pub fn probe(&self) -> MainProbe {
        MainProbe(self.handle.shared.clone())
    }

    /// Starts a session's entry in the summary this main publishes: its `kind` (`fedavg`,
    /// `aml`, `allreduce`, `pipeline`, ...), `name`, and `steps` in all of `step_name` (0:
    /// unknown). Every status view on the domain then shows it, with its curve.
    pub fn session(&self, kind: &str, name: &str, step_name: &str, steps: u32) -> SessionHandle {
        self.handle.session(kind, name, step_name, steps)
    }
}

impl Drop for AsyncMainNode {
    fn drop(&mut self) {
        self.outcomes = None;
        self.handle.thread.stop(STOP_TIMEOUT);
        self.listener.join(STOP_TIMEOUT);
    }
}
