//! Main nodes: send jobs, get solutions.

use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{start_engine, HelperThread, STOP_TIMEOUT};
use crate::config::NodeConfig;
use crate::error::{Error, JobError};
use crate::protocol::client::{
    self, ClientCommand, ClientShared, ClientStats, Responder, Solution,
};
use crate::runtime::NodeThread;
use crate::wire::{AmlipId, NodeKind, TaskId};

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

struct ClientHandle {
    id: AmlipId,
    domain: u16,
    thread: NodeThread,
    commands: mpsc::UnboundedSender<ClientCommand>,
    shared: Arc<ClientShared>,
}

impl ClientHandle {
    fn start(cfg: NodeConfig) -> Result<Self, Error> {
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(ClientShared::default());
        let engine_shared = shared.clone();
        let domain = cfg.domain;
        let (id, thread) =
            start_engine(NodeKind::Main, cfg, "amlip-main", move |core, ready, sd| {
                client::run(core, engine_shared, rx, ready, sd)
            })?;
        tracing::info!(%id, domain, "main node started");
        Ok(Self {
            id,
            domain,
            thread,
            commands,
            shared,
        })
    }

    fn submit(
        &self,
        data: Bytes,
        timeout: Option<Duration>,
        respond: Responder,
    ) -> Result<TaskId, Error> {
        let job_id = self.shared.allocate_job();
        self.commands
            .send(ClientCommand::Submit {
                job_id,
                data,
                timeout,
                respond,
            })
            .map_err(|_| Error::Stopped)?;
        Ok(job_id)
    }

    fn stats(&self) -> ClientStats {
        self.shared.stats.lock().expect("stats").clone()
    }
}

/// A main node with a blocking API: each call sends one job and waits for its solution.
/// Calls from several threads run concurrently (one job in flight per call).
pub struct MainNode {
    handle: ClientHandle,
}

impl MainNode {
    /// A main node named `name`, on the domain and network of the environment (default 166).
    pub fn new(name: &str) -> Result<Self, Error> {
        Self::with_config(NodeConfig::from_env(name)?)
    }

    pub fn with_config(cfg: NodeConfig) -> Result<Self, Error> {
        Ok(Self {
            handle: ClientHandle::start(cfg)?,
        })
    }

    pub fn id(&self) -> &AmlipId {
        &self.handle.id
    }

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
        let (tx, rx) = std_mpsc::sync_channel(1);
        let job_id = self
            .handle
            .submit(job.into(), Some(timeout), Responder::Once(tx))?;
        // The engine answers by the deadline; the margin only covers a dead engine thread.
        match rx.recv_timeout(timeout + Duration::from_secs(2)) {
            Ok(outcome) => outcome.map_err(Error::Job),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                let _ = self.handle.commands.send(ClientCommand::Cancel(job_id));
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

    /// Counters and the jobs in flight.
    pub fn stats(&self) -> ClientStats {
        self.handle.stats()
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
    listener: HelperThread,
}

impl AsyncMainNode {
    pub fn new(name: &str, listener: impl SolutionListener) -> Result<Self, Error> {
        Self::with_config(NodeConfig::from_env(name)?, listener)
    }

    pub fn with_config(cfg: NodeConfig, listener: impl SolutionListener) -> Result<Self, Error> {
        let handle = ClientHandle::start(cfg)?;
        let (tx, rx) = std_mpsc::channel::<Result<Solution, JobError>>();
        let listener = HelperThread::spawn("amlip-listener", move || {
            for outcome in rx {
                match outcome {
                    Ok(s) => listener.solution_received(s.data, s.task_id, s.server_id),
                    Err(e) => {
                        let task = match &e {
                            JobError::Timeout { task_id, .. }
                            | JobError::Failed { task_id, .. }
                            | JobError::Stopped { task_id } => *task_id,
                        };
                        listener.job_failed(task, e);
                    }
                }
            }
        })?;
        Ok(Self {
            handle,
            outcomes: Some(tx),
            listener,
        })
    }

    pub fn id(&self) -> &AmlipId {
        &self.handle.id
    }

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
        self.handle.submit(job, timeout, Responder::Listener(tx))
    }

    pub fn stats(&self) -> ClientStats {
        self.handle.stats()
    }
}

impl Drop for AsyncMainNode {
    fn drop(&mut self) {
        self.outcomes = None;
        self.handle.thread.stop(STOP_TIMEOUT);
        self.listener.join(STOP_TIMEOUT);
    }
}
