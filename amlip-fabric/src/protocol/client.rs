//! The main's side of the job protocol.
//!
//! For each job: publish `ms_request{me, t}`; take the first `ms_reference` reply for `t`;
//! broadcast it as the target; send the data to the chosen node; the first solution wins.
//! Beyond AML-IP: many jobs are in flight at once (one request each, so every idle computing
//! node can take one); an assigned job whose holder is gone (participant lost, status dropped,
//! heartbeats stopped, or no longer listing the job) or that passed its deadline is re-sent under
//! a new task id; solutions after the first are dropped and counted; a request that is no longer
//! wanted is closed with a target naming the main itself, so computing nodes stop waiting on it.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::StreamExt;
use tokio::sync::mpsc;

use super::core::{
    parse_error_payload, report_start, Inbound, Load, NodeCore, Role, CANCELLED_BY_NODE,
};

use crate::error::JobError;
use crate::runtime::Shutdown;
use crate::summary::{self, SessionBoard, Summarizer};
use crate::transfer::{Envelope, TransferError};
use crate::wire::ext::{ChunkKind, JobPhase};
use crate::wire::{AmlipId, MsReference, MsRequest, NodeKind, NodeState, TaskId};

/// A job's solution, with the job's task id and the computing node that solved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solution {
    /// The solution's bytes.
    pub data: Bytes,
    /// The id returned when the job was submitted (its first task id).
    pub task_id: TaskId,
    /// The computing node that solved it.
    pub server_id: AmlipId,
}

/// Counters a main keeps, for progress displays and tests.
#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    /// Jobs submitted.
    pub submitted: u64,
    /// Jobs solved.
    pub solved: u64,
    /// Jobs that ended without a solution (error, timeout, cancelled).
    pub failed: u64,
    /// Jobs re-sent because their holder was gone or their deadline passed.
    pub resent: u64,
    /// Answers dropped because their job was already decided (solved elsewhere, timed out
    /// or cancelled).
    pub duplicates_dropped: u64,
    /// Jobs waiting for a computing node to answer.
    pub waiting: usize,
    /// Jobs held by computing nodes.
    pub running: Vec<RunningJob>,
    /// Computing nodes known to be alive (amlip nodes by heartbeat, others by status).
    pub computing_nodes: Vec<AmlipId>,
    /// Payloads (jobs) this main sent over the direct TCP path, acknowledged; the others
    /// went over DDS.
    pub direct_sent: u64,
    /// Payloads (solutions) this main received over the direct TCP path.
    pub direct_received: u64,
    /// Bytes of the jobs submitted.
    pub bytes_sent: u64,
    /// Bytes of the solutions accepted.
    pub bytes_received: u64,
    /// Round trips of solved jobs, by the job's payload size.
    pub round_trips: RoundTrips,
}

/// Upper bounds of the payload size classes of [`RoundTrips`], in bytes (the last class is
/// everything larger).
pub const SIZE_CLASSES: [(&str, u64); 5] = [
    ("1KB", 1 << 10),
    ("64KB", 64 << 10),
    ("1MB", 1 << 20),
    ("16MB", 16 << 20),
    ("larger", u64::MAX),
];

/// Upper bounds of the round-trip buckets of [`RoundTrips`], in seconds.
pub const ROUND_TRIP_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// A histogram of job round trips (submission to solution) per payload size class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundTrips {
    /// Per size class (as [`SIZE_CLASSES`]): count per bucket (as [`ROUND_TRIP_BUCKETS`], then
    /// one for longer), and the sum of seconds.
    pub classes: [([u64; ROUND_TRIP_BUCKETS.len() + 1], f64); SIZE_CLASSES.len()],
}

impl RoundTrips {
    /// Counts a round trip of `seconds` for a job of `bytes`.
    pub fn observe(&mut self, bytes: u64, seconds: f64) {
        let class = SIZE_CLASSES
            .iter()
            .position(|(_, max)| bytes <= *max)
            .unwrap_or(SIZE_CLASSES.len() - 1);
        let bucket = ROUND_TRIP_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(ROUND_TRIP_BUCKETS.len());
        let (counts, sum) = &mut self.classes[class];
        counts[bucket] += 1;
        *sum += seconds;
    }

    /// Round trips counted in all.
    pub fn count(&self) -> u64 {
        self.classes
            .iter()
            .map(|(c, _)| c.iter().sum::<u64>())
            .sum()
    }
}

/// A job a computing node holds, as the main sees it.
#[derive(Debug, Clone)]
pub struct RunningJob {
    /// The job (the id its submitter got).
    pub task_id: TaskId,
    /// The computing node holding it.
    pub server_id: AmlipId,
    /// What the node last said it does with it (receiving, queued, running, replying).
    pub phase: Option<JobPhase>,
    /// Steps done, as the job's code last reported.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
    /// Since when the node holds it.
    pub since: Instant,
}

/// What happens to a job, as a batch sees it (see [`crate::batch`]).
#[derive(Debug)]
pub(crate) enum JobUpdate {
    /// A computing node holds it and last reported `done` of `total` steps.
    Running {
        server: AmlipId,
        done: u32,
        total: u32,
    },
    /// Its holder was given up on; it was requested again.
    Resent { from: AmlipId, reason: String },
    /// Its outcome (the last update).
    Finished(Result<Solution, JobError>),
}

/// How a job's outcome (and, for batches, its progress) reaches its submitter.
pub(crate) enum Responder {
    Once(std_mpsc::SyncSender<Result<Solution, JobError>>),
    Listener(std_mpsc::Sender<Result<Solution, JobError>>),
    Updates(flume::Sender<(TaskId, JobUpdate)>),
}

impl Responder {
    fn respond(self, job_id: TaskId, outcome: Result<Solution, JobError>) {
        let _ = match self {
            Responder::Once(tx) => tx.try_send(outcome).map_err(drop),
            Responder::Listener(tx) => tx.send(outcome).map_err(drop),
            Responder::Updates(tx) => tx
                .send((job_id, JobUpdate::Finished(outcome)))
                .map_err(drop),
        };
    }

    /// Tells a batch about progress (other submitters only get the outcome).
    fn update(&self, job_id: TaskId, update: JobUpdate) {
        if let Responder::Updates(tx) = self {
            let _ = tx.send((job_id, update));
        }
    }
}

pub(crate) enum ClientCommand {
    Submit {
        job_id: TaskId,
        data: Bytes,
        timeout: Option<Duration>,
        respond: Responder,
        /// Only to an idle node that asks for it (see [`Job::exclusive`]).
        exclusive: bool,
    },
    Cancel(TaskId),
}

/// State shared between the engine thread and the node handle.
#[derive(Default)]
pub(crate) struct ClientShared {
    next_job: AtomicU32,
    pub stats: Mutex<ClientStats>,
    /// The direct path's counters, read live by [`ClientShared::stats`].
    direct: std::sync::OnceLock<Arc<crate::direct::DirectCounts>>,
    /// The sessions this main runs, for its summary.
    pub sessions: Arc<SessionBoard>,
}

impl ClientShared {
    /// A new job id. Job ids are what the API returns and the listener reports; the wire task
    /// ids of a job's attempts are allocated by the engine in publication order (so that its
    /// heartbeat can say which requests are still open), and equal the job ids as long as no
    /// job is re-sent.
    pub fn allocate_job(&self) -> TaskId {
        self.next_job.fetch_add(1, Ordering::Relaxed)
    }

    /// The counters, with the direct path's as they are now.
    pub fn stats(&self) -> ClientStats {
        let mut stats = self.stats.lock().expect("stats").clone();
        if let Some(c) = self.direct.get() {
            stats.direct_sent = c.sent.load(Ordering::Relaxed);
            stats.direct_received = c.received.load(Ordering::Relaxed);
        }
        stats
    }
}

struct Job {
    data: Bytes,
    /// When it was submitted (for the round-trip histogram).
    submitted: Instant,
    deadline: Option<(Instant, Duration)>,
    respond: Responder,
    current: Option<TaskId>,
    /// Every attempt's task id.
    tasks: Vec<TaskId>,
    /// The holder and progress last told to a batch.
    last_running: Option<(AmlipId, u32, u32)>,
    /// Never handed off: requested, so that only an idle node takes it. Jobs that must all
    /// run at once on distinct nodes (an all-reduce group's workers) are exclusive.
    exclusive: bool,
}

#[derive(Debug)]
enum AttemptState {
    Requested,
    Assigned {
        server: AmlipId,
        missing_since: Option<Instant>,
    },
    /// Re-sent elsewhere; a solution from it is still accepted if it comes first.
    Superseded,
    Closed,
}

struct Attempt {
    job: TaskId,
    state: AttemptState,
    since: Instant,
    /// Handed to its node over the direct path, without a request: the node whose handoff
    /// slot it holds until it is closed (superseded, it may still occupy the node).
    slot: Option<AmlipId>,
}

/// Handed jobs a node may hold at once, by how long its last handed job took from handing to
/// solution: tiny jobs are pipelined deep; long ones one at a time, so that a node never sits
/// on queued work another could start (the round trip a job waits for is small beside it).
fn handoff_depth(took: Duration) -> usize {
    if took < Duration::from_millis(20) {
        32
    } else if took < Duration::from_millis(200) {
        2
    } else {
        1
    }
}

enum Internal {
    SendFailed {
        task: TaskId,
        server: AmlipId,
        error: TransferError,
    },
}

struct ClientEngine {
    core: Rc<NodeCore>,
    shared: Arc<ClientShared>,
    jobs: HashMap<TaskId, Job>,
    attempts: HashMap<TaskId, Attempt>,
    next_task: TaskId,
    queue: VecDeque<TaskId>,
    open_requests: usize,
    internal: mpsc::UnboundedSender<Internal>,
    last_waiting_warning: Option<Instant>,
    /// Computing nodes discovered recently, newest last, for the heartbeat.
    newcomers: VecDeque<(AmlipId, Instant)>,
    /// Handed jobs each node holds, and how many it may hold (see [`handoff_depth`]).
    handed: HashMap<AmlipId, usize>,
    depth: HashMap<AmlipId, usize>,
    /// Closed attempts, in the order they closed (see [`CLOSED_MEMORY`]).
    closed: VecDeque<TaskId>,
}

/// How long a closed attempt is remembered, so that its late solutions count as duplicates.
const CLOSED_MEMORY: Duration = Duration::from_secs(120);

/// Frees the handoff slot an attempt holds, if it holds one (it is being closed).
fn free_slot(handed: &mut HashMap<AmlipId, usize>, a: &mut Attempt) {
    if let Some(server) = a.slot.take() {
        if let Some(n) = handed.get_mut(&server) {
            *n = n.saturating_sub(1);
        }
    }
}

/// How long a newly discovered computing node stays in the heartbeat's `known_peers`.
const NEWCOMER_MEMORY: Duration = Duration::from_secs(30);
/// At most this many ids in `known_peers`.
const MAX_NEWCOMERS: usize = 64;

/// Runs a main's engine until `shutdown`.
pub(crate) async fn run(
    core: Rc<NodeCore>,
    shared: Arc<ClientShared>,
    mut commands: mpsc::UnboundedReceiver<ClientCommand>,
    ready: std_mpsc::Sender<Result<(), crate::dds::DdsError>>,
    mut shutdown: Shutdown,
) {
    let start = (|| {
        let ep = core.endpoints();
        ep.requests()?;
        ep.references(&core.service.task_target())?;
        core.subscribe(Role::Client)
    })();
    if let Some(counts) = core.direct_counts() {
        let _ = shared.direct.set(counts);
    }
    let Some(mut inbound) = report_start(&ready, start) else {
        return;
    };
    let (internal, mut internal_rx) = mpsc::unbounded_channel();
    let mut engine = ClientEngine {
        core: core.clone(),
        shared,
        jobs: HashMap::new(),
        attempts: HashMap::new(),
        next_task: 0,
        queue: VecDeque::new(),
        open_requests: 0,
        internal,
        last_waiting_warning: None,
        newcomers: VecDeque::new(),
        handed: HashMap::new(),
        depth: HashMap::new(),
        closed: VecDeque::new(),
    };
    core.publish_status(NodeState::Running).await;
    engine.heartbeat().await;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut heartbeat = tokio::time::interval(core.cfg.heartbeat);
    // Mains say what they do; edge nodes (the same engine) have nothing to show.
    let mut summarizer = (core.kind == NodeKind::Main).then(Summarizer::new);
    let mut summary_tick = tokio::time::interval(summary::PERIOD);
    loop {
        let mut died = false;
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(cmd) = commands.recv() => engine.on_command(cmd).await,
            Some(ev) = inbound.next() => {
                died = matches!(ev, Inbound::ParticipantDied);
                engine.on_inbound(ev).await;
                // While samples keep arriving every branch above is ready at once and this
                // loop would never let the tasks it spawned run (credits, transfers, replies):
                // rustdds streams do not take part in tokio's cooperative budget.
                tokio::task::yield_now().await;
            }
            Some(ev) = internal_rx.recv() => engine.on_internal(ev).await,
            _ = tick.tick() => engine.on_tick().await,
            _ = heartbeat.tick() => engine.heartbeat().await,
            _ = summary_tick.tick(), if summarizer.is_some() => {
                if let Some(s) = summarizer.as_mut() {
                    engine.summarize(s, false).await;
                }
            }
        }
        if died && !shutdown.is_triggered() {
            match core.recover(Role::Client).await {
                Some(streams) => inbound = streams,
                None => break,
            }
            engine.republish_requests().await;
            engine.heartbeat().await;
        }
    }
    for (id, job) in engine.jobs.drain() {
        job.respond
            .respond(id, Err(JobError::Stopped { task_id: id }));
    }
    if let Some(s) = summarizer.as_mut() {
        engine.summarize(s, true).await;
    }
    core.publish_status(NodeState::Dropped).await;
    core.publish_info(NodeState::Dropped, Load::default()).await;
    // Endpoints before the participant (it is dropped with the last `core`).
    drop(engine);
    drop(inbound);
}

impl ClientEngine {
    async fn write_target(&self, target: &MsReference) -> Result<(), crate::dds::DdsError> {
        self.core
            .endpoints()
            .references(&self.core.service.task_target())?
            .write(target)
            .await
    }

    /// Publishes the main's summary if it is due (`last`: whatever it is, as the main leaves).
    async fn summarize(&self, summarizer: &mut Summarizer, last: bool) {
        let stats = self.shared.stats();
        if let Some(s) = summarizer.due(&self.core.id, &stats, &self.shared.sessions, last) {
            self.core.publish_summary(&s, last).await;
        }
    }

    /// Publishes the main's heartbeat: its task counter and open requests.
    async fn heartbeat(&self) {
        // An open request is always its job's current attempt.
        let mut open_tasks: Vec<TaskId> = self
            .jobs
            .values()
            .filter_map(|j| j.current)
            .filter(|t| {
                self.attempts
                    .get(t)
                    .is_some_and(|a| matches!(a.state, AttemptState::Requested))
            })
            .collect();
        open_tasks.sort_unstable();
        let load = Load {
            jobs: vec![],
            next_task: self.next_task,
            open_tasks,
            known_peers: self.newcomers.iter().map(|(id, _)| id.clone()).collect(),
            handoff_slots: 0,
            jobs_done: self.shared.stats.lock().expect("stats").solved,
        };
        self.core.publish_info(NodeState::Running, load).await;
    }

    async fn on_command(&mut self, cmd: ClientCommand) {
        match cmd {
            ClientCommand::Submit {
                job_id,
                data,
                timeout,
                respond,
                exclusive,
            } => {
                let now = Instant::now();
                self.jobs.insert(
                    job_id,
                    Job {
                        submitted: now,
                        data,
                        deadline: timeout.map(|t| (now + t, t)),
                        respond,
                        current: None,
                        tasks: Vec::new(),
                        last_running: None,
                        exclusive,
                    },
                );
                {
                    let mut stats = self.shared.stats.lock().expect("stats");
                    stats.submitted += 1;
                    stats.bytes_sent += self.jobs[&job_id].data.len() as u64;
                }
                self.queue.push_back(job_id);
                self.fill_requests().await;
            }
            ClientCommand::Cancel(job_id) => {
                if let Some(job) = self.jobs.remove(&job_id) {
                    self.close_attempts(&job.tasks).await;
                    self.queue.retain(|j| *j != job_id);
                    self.shared.stats.lock().expect("stats").failed += 1;
                    job.respond
                        .respond(job_id, Err(JobError::Cancelled { task_id: job_id }));
                    self.fill_requests().await;
                }
            }
        }
    }

    /// Hands queued jobs to nodes with free handoff slots, then publishes requests for the
    /// rest while fewer than the limit are open.
    async fn fill_requests(&mut self) {
        while let Some(&job_id) = self.queue.front() {
            let Some(job) = self.jobs.get(&job_id) else {
                self.queue.pop_front();
                continue;
            };
            if job.exclusive {
                break;
            }
            let Some(server) = self.handoff_target(None) else {
                break;
            };
            self.queue.pop_front();
            self.hand(job_id, server);
        }
        // Refill in bursts, once half the slots are free: requests written together share
        // datagrams (rustdds coalesces samples waiting in a writer), and so do the computing
        // nodes' acknowledgments of them.
        let exclusive_next = self
            .queue
            .front()
            .and_then(|j| self.jobs.get(j))
            .is_some_and(|j| j.exclusive);
        // A lone job no idle amlip node took is requested as AML-IP does: whichever node is
        // idle first answers, and the job never waits on slots that may not free up.
        let lone = self.jobs.len() <= 1;
        let max = if exclusive_next || lone {
            self.core.cfg.max_open_requests
        } else {
            self.request_limit()
        };
        if self.open_requests > max / 2 {
            return;
        }
        while self.open_requests < max {
            let Some(job_id) = self.queue.pop_front() else {
                break;
            };
            if self.jobs.contains_key(&job_id) {
                self.request(job_id).await;
            }
        }
    }

    /// Whether jobs are handed off: whenever this node has a direct path. A lone job goes
    /// only to an [`idle`](Self::idle) node; with none, it is requested as AML-IP does, and
    /// any idle node, AML-IP's included, may answer.
    fn handing_off(&self) -> bool {
        self.core.has_direct()
    }

    /// Whether `id` is idle: it holds no job of ours (which this main knows at once) and its
    /// last heartbeat listed no other main's (a heartbeat may still list ours, just solved).
    fn idle(&self, id: &AmlipId) -> bool {
        let others = self
            .core
            .peers
            .borrow()
            .info(id)
            .is_none_or(|i| i.jobs.iter().any(|j| j.client_id != self.core.id));
        !others && self.handed.get(id).copied().unwrap_or(0) == 0
    }

    /// Computing nodes alive, each with the handoff slots it announces (0: asks first).
    fn computing_nodes(&self) -> Vec<(AmlipId, usize)> {
        let alive = self
            .core
            .peers
            .borrow()
            .alive_of_kind(self.core.service.server_kind(), Instant::now());
        alive
            .into_iter()
            .map(|id| {
                let slots = self.core.handoff_slots(&id);
                (id, slots)
            })
            .collect()
    }

    /// The computing node (other than `not`) with the most free handoff slots, if any has one.
    fn handoff_target(&self, not: Option<&AmlipId>) -> Option<AmlipId> {
        if !self.handing_off() {
            return None;
        }
        // A lone job to a node busy with another main's work would wait behind it, where a
        // request lets an idle node (AML-IP's too) take it at once.
        let lone = self.jobs.len() <= 1;
        self.computing_nodes()
            .into_iter()
            .filter(|(id, _)| Some(id) != not)
            .filter(|(id, _)| !lone || self.idle(id))
            .filter_map(|(id, slots)| {
                let depth = self.depth.get(&id).copied().unwrap_or(1).min(slots);
                let used = self.handed.get(&id).copied().unwrap_or(0);
                (used < depth).then_some((depth - used, id))
            })
            .max_by_key(|(free, _)| *free)
            .map(|(_, id)| id)
    }

    /// Most requests open at once. While nodes take handed jobs, only as many as there are
    /// other computing nodes to answer them (AML-IP's, or nodes serving a counted number of
    /// jobs): a request no node answers only delays the job it holds back from a handoff.
    fn request_limit(&self) -> usize {
        let max = self.core.cfg.max_open_requests;
        if !self.handing_off() {
            return max;
        }
        let nodes = self.computing_nodes();
        let asking = nodes.iter().filter(|(_, slots)| *slots == 0).count();
        if asking == nodes.len() {
            max
        } else {
            asking.min(max)
        }
    }

    /// Hands `job_id` straight to `server` under a fresh task id: no request, reply or target.
    fn hand(&mut self, job_id: TaskId, server: AmlipId) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        let task = self.next_task;
        self.next_task = self.next_task.wrapping_add(1);
        job.current = Some(task);
        job.tasks.push(task);
        self.attempts.insert(
            task,
            Attempt {
                job: job_id,
                state: AttemptState::Assigned {
                    server: server.clone(),
                    missing_since: None,
                },
                since: Instant::now(),
                slot: Some(server.clone()),
            },
        );
        *self.handed.entry(server.clone()).or_default() += 1;
        tracing::debug!(job = job_id, task, %server, "job handed over the direct path");
        let env = Envelope {
            kind: ChunkKind::Handoff,
            client_id: self.core.id.clone(),
            task_id: task,
            server_id: server.clone(),
            data: job.data.clone(),
        };
        let core = self.core.clone();
        let internal = self.internal.clone();
        tokio::task::spawn_local(async move {
            if let Err(error) = core.hand_off(&server, env).await {
                let _ = internal.send(Internal::SendFailed {
                    task,
                    server,
                    error,
                });
            }
        });
    }

    /// Writes every open request again: after [`NodeCore::recover`] the writer that carried
    /// them is gone, and with it their history for computing nodes that join later.
    async fn republish_requests(&self) {
        for (task, a) in &self.attempts {
            if matches!(a.state, AttemptState::Requested) {
                self.write_request(*task).await;
            }
        }
    }

    async fn write_request(&self, task: TaskId) {
        let req = MsRequest {
            client_id: self.core.id.clone(),
            task_id: task,
        };
        let written = match self.core.endpoints().requests() {
            Ok(w) => w.write(&req).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!(task, "cannot publish availability request: {e}");
        }
    }

    /// Opens a request for `job_id` under a fresh task id.
    async fn request(&mut self, job_id: TaskId) {
        let task = self.next_task;
        self.next_task = self.next_task.wrapping_add(1);
        let now = Instant::now();
        self.attempts.insert(
            task,
            Attempt {
                job: job_id,
                state: AttemptState::Requested,
                since: now,
                slot: None,
            },
        );
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.current = Some(task);
            job.tasks.push(task);
        }
        self.open_requests += 1;
        self.write_request(task).await;
    }

    async fn on_inbound(&mut self, ev: Inbound) {
        match ev {
            Inbound::Reply(r) => self.on_reply(r).await,
            Inbound::Payload(env) if env.kind == ChunkKind::Solution => self.on_solution(env).await,
            Inbound::NewPeer(info) if info.kind == self.core.service.server_kind() => {
                tracing::info!(node = %info.id, "computing node joined");
                let now = Instant::now();
                self.newcomers.push_back((info.id.clone(), now));
                while self.newcomers.len() > MAX_NEWCOMERS
                    || self
                        .newcomers
                        .front()
                        .is_some_and(|(_, at)| now.duration_since(*at) > NEWCOMER_MEMORY)
                {
                    self.newcomers.pop_front();
                }
                // A fresh heartbeat lets the newcomer tell our replayed history from live
                // requests at once (see `server::verdict`).
                self.heartbeat().await;
            }
            Inbound::PeersLost(ids) => {
                for id in ids {
                    tracing::info!(node = %id, "participant lost");
                }
                self.check_holders().await;
            }
            _ => {}
        }
    }

    async fn on_reply(&mut self, r: MsReference) {
        if r.client_id != self.core.id {
            tracing::debug!(client = %r.client_id, "reply for another main on our topic; ignored");
            return;
        }
        let Some(attempt) = self.attempts.get_mut(&r.task_id) else {
            tracing::debug!(task = r.task_id, "reply for an unknown task; ignored");
            return;
        };
        if !matches!(attempt.state, AttemptState::Requested) {
            return; // already taken by an earlier reply: the target tells the others
        }
        let job_id = attempt.job;
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        attempt.state = AttemptState::Assigned {
            server: r.server_id.clone(),
            missing_since: None,
        };
        attempt.since = Instant::now();
        // A requested job occupies its node like a handed one: a node busy with a long job
        // is not handed another while others sit idle.
        if attempt.slot.is_none() {
            attempt.slot = Some(r.server_id.clone());
            *self.handed.entry(r.server_id.clone()).or_default() += 1;
        }
        self.open_requests = self.open_requests.saturating_sub(1);
        tracing::debug!(job = job_id, task = r.task_id, server = %r.server_id, "job assigned");
        if let Err(e) = self.write_target(&r).await {
            tracing::error!(task = r.task_id, "cannot publish target: {e}");
        }
        let env = Envelope {
            kind: ChunkKind::Job,
            client_id: self.core.id.clone(),
            task_id: r.task_id,
            server_id: r.server_id.clone(),
            data: job.data.clone(),
        };
        let core = self.core.clone();
        let internal = self.internal.clone();
        let server = r.server_id;
        tokio::task::spawn_local(async move {
            let task = env.task_id;
            if let Err(error) = core.send_payload(&server, env).await {
                let _ = internal.send(Internal::SendFailed {
                    task,
                    server,
                    error,
                });
            }
        });
        self.fill_requests().await;
    }

    async fn on_solution(&mut self, env: Envelope) {
        if env.client_id != self.core.id {
            return;
        }
        let (job_id, superseded) = match self.attempts.get(&env.task_id) {
            Some(a) => (a.job, matches!(a.state, AttemptState::Superseded)),
            None => {
                self.shared.stats.lock().expect("stats").duplicates_dropped += 1;
                return;
            }
        };
        if superseded && self.jobs.contains_key(&job_id) {
            if let Some(message) = parse_error_payload(&env.data) {
                // A node we gave up on failed (often: it cancelled the job when it found itself
                // cut off). The re-sent attempt decides the job, not this error.
                tracing::warn!(task = env.task_id, server = %env.server_id, "error from a re-sent job's earlier holder ignored: {message}");
                self.shared.stats.lock().expect("stats").duplicates_dropped += 1;
                return;
            }
        }
        if let Some(message) =
            parse_error_payload(&env.data).filter(|m| m.starts_with(CANCELLED_BY_NODE))
        {
            // The node gave the job up on its own (it lost sight of this main, or it is
            // stopping): not the job's failure. Re-send it if this is its current attempt.
            if !superseded
                && self.jobs.contains_key(&job_id)
                && self.resend(env.task_id, &message).await
            {
                return;
            }
        }
        let Some(job) = self.jobs.remove(&job_id) else {
            tracing::debug!(task = env.task_id, server = %env.server_id, "late duplicate solution dropped");
            self.shared.stats.lock().expect("stats").duplicates_dropped += 1;
            return;
        };
        if let Some(a) = self.attempts.get_mut(&env.task_id) {
            if a.slot.is_some() && matches!(a.state, AttemptState::Assigned { .. }) {
                self.depth
                    .insert(env.server_id.clone(), handoff_depth(a.since.elapsed()));
            }
            free_slot(&mut self.handed, a);
            a.state = AttemptState::Closed;
            a.since = Instant::now();
            self.closed.push_back(env.task_id);
        }
        self.close_attempts(&job.tasks).await;
        let outcome = match parse_error_payload(&env.data) {
            Some(message) => Err(JobError::Failed {
                task_id: job_id,
                server_id: env.server_id,
                message,
            }),
            None => Ok(Solution {
                data: env.data,
                task_id: job_id,
                server_id: env.server_id,
            }),
        };
        {
            let mut stats = self.shared.stats.lock().expect("stats");
            match &outcome {
                Ok(s) => {
                    stats.solved += 1;
                    stats.bytes_received += s.data.len() as u64;
                    let seconds = job.submitted.elapsed().as_secs_f64();
                    stats.round_trips.observe(job.data.len() as u64, seconds);
                }
                Err(_) => stats.failed += 1,
            }
        }
        job.respond.respond(job_id, outcome);
        self.fill_requests().await;
    }

    /// Closes every open attempt in `tasks` (a finished job's) with a closing target naming the main
    /// itself: computing nodes that answered a request nobody took stop waiting for it, and
    /// one still holding an attempt (given up on, or of a cancelled job) stops working on it.
    async fn close_attempts(&mut self, tasks: &[TaskId]) {
        let now = Instant::now();
        let mut to_close = Vec::new();
        for task in tasks {
            let Some(a) = self.attempts.get_mut(task) else {
                continue;
            };
            if matches!(a.state, AttemptState::Closed) {
                continue;
            }
            if matches!(a.state, AttemptState::Requested) {
                self.open_requests = self.open_requests.saturating_sub(1);
            }
            free_slot(&mut self.handed, a);
            to_close.push(*task);
            a.state = AttemptState::Closed;
            a.since = now;
            self.closed.push_back(*task);
        }
        for task in to_close {
            let close = MsReference {
                client_id: self.core.id.clone(),
                task_id: task,
                server_id: self.core.id.clone(),
            };
            if let Err(e) = self.write_target(&close).await {
                tracing::warn!(task, "cannot close request: {e}");
            }
        }
    }

    async fn on_internal(&mut self, ev: Internal) {
        match ev {
            Internal::SendFailed {
                task,
                server,
                error,
            } => {
                let assigned_here = self.attempts.get(&task).is_some_and(|a| {
                    matches!(&a.state, AttemptState::Assigned { server: s, .. } if *s == server)
                });
                let unreached = matches!(
                    error,
                    TransferError::Direct(crate::direct::DirectError::Unreachable { .. })
                );
                if assigned_here && unreached {
                    // Nothing reached the node (its direct path is now avoided for a while):
                    // the job goes another way, as a lone job always could, not a re-send.
                    tracing::debug!(task, %server, "handing the job failed: {error}");
                    self.reroute(task).await;
                } else if assigned_here {
                    tracing::warn!(task, %server, "sending the job failed: {error}");
                    self.resend(task, &format!("sending the job failed ({error})"))
                        .await;
                }
            }
        }
    }

    /// Sends the job of handed attempt `task`, which never reached its node, another way: to
    /// another node with a free slot, or as a request.
    async fn reroute(&mut self, task: TaskId) {
        let Some(a) = self.attempts.get_mut(&task) else {
            return;
        };
        let job_id = a.job;
        a.state = AttemptState::Superseded;
        free_slot(&mut self.handed, a);
        if !self.jobs.contains_key(&job_id) {
            return;
        }
        match self.handoff_target(None) {
            Some(other) => self.hand(job_id, other),
            None => self.request(job_id).await,
        }
    }

    /// Marks `task` superseded and requests its job again under a new task id. False if
    /// `task` is not an assigned attempt of a pending job (nothing done).
    async fn resend(&mut self, task: TaskId, why: &str) -> bool {
        let Some(a) = self.attempts.get_mut(&task) else {
            return false;
        };
        let job_id = a.job;
        let server = match &a.state {
            AttemptState::Assigned { server, .. } => server.clone(),
            _ => return false,
        };
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return false;
        };
        a.state = AttemptState::Superseded;
        job.last_running = None;
        job.respond.update(
            job_id,
            JobUpdate::Resent {
                from: server.clone(),
                reason: why.to_owned(),
            },
        );
        self.shared.stats.lock().expect("stats").resent += 1;
        tracing::warn!(
            job = job_id,
            old_task = task,
            new_task = self.next_task,
            %server,
            "re-sending job: {why}"
        );
        let exclusive = self.jobs.get(&job_id).is_some_and(|j| j.exclusive);
        match self.handoff_target(Some(&server)) {
            Some(other) if !exclusive => self.hand(job_id, other),
            _ => self.request(job_id).await,
        }
        true
    }

    /// Re-sends jobs whose holder is gone, stopped listing them, or kept them too long.
    async fn check_holders(&mut self) {
        self.core.check_clock();
        let now = Instant::now();
        let grace = self.core.cfg.liveness_timeout / 2;
        let mut resend = Vec::new();
        {
            let peers = self.core.peers.borrow();
            // An assigned attempt is always its job's current one: closed attempts, which
            // may be many, are not looked at.
            let current: Vec<TaskId> = self.jobs.values().filter_map(|j| j.current).collect();
            for task in &current {
                let Some(a) = self.attempts.get_mut(task) else {
                    continue;
                };
                let AttemptState::Assigned {
                    server,
                    missing_since,
                } = &mut a.state
                else {
                    continue;
                };
                if let Some(reason) = peers.gone(server, now) {
                    resend.push((*task, format!("computing node {server} is gone: {reason}")));
                } else if now.duration_since(a.since) > self.core.cfg.job_deadline {
                    resend.push((
                        *task,
                        format!(
                            "computing node {server} held it past the {:?} deadline",
                            self.core.cfg.job_deadline
                        ),
                    ));
                } else {
                    match peers.holds(server, &self.core.id, *task, a.since) {
                        Some(false) => {
                            let since = *missing_since.get_or_insert(now);
                            if now.duration_since(since) > grace {
                                resend.push((
                                    *task,
                                    format!("computing node {server} no longer lists it"),
                                ));
                            }
                        }
                        Some(true) => *missing_since = None,
                        None => {}
                    }
                }
            }
        }
        for (task, why) in resend {
            self.resend(task, &why).await;
        }
    }

    async fn on_tick(&mut self) {
        self.core.transfers.expire(Instant::now());
        self.check_holders().await;
        let now = Instant::now();
        // Jobs whose caller's timeout passed.
        let expired: Vec<TaskId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.deadline.is_some_and(|(at, _)| now >= at))
            .map(|(id, _)| *id)
            .collect();
        for job_id in expired {
            let job = self.jobs.remove(&job_id).expect("listed");
            let hint = self.waiting_hint(job.current);
            self.close_attempts(&job.tasks).await;
            self.queue.retain(|j| *j != job_id);
            self.shared.stats.lock().expect("stats").failed += 1;
            let timeout = job.deadline.map(|(_, t)| t).unwrap_or_default();
            job.respond.respond(
                job_id,
                Err(JobError::Timeout {
                    task_id: job_id,
                    timeout,
                    hint,
                }),
            );
        }
        self.fill_requests().await;
        // Forget closed attempts after a while (late duplicates then count as unknown), oldest
        // first: they are in `closed` in the order they closed.
        while let Some(task) = self.closed.front() {
            match self.attempts.get(task) {
                Some(a) if now.duration_since(a.since) < CLOSED_MEMORY => break,
                Some(a) if matches!(a.state, AttemptState::Closed) => {
                    self.attempts.remove(task);
                }
                _ => {}
            }
            self.closed.pop_front();
        }
        self.warn_if_nobody_answers(now);
        self.update_stats(now);
    }

    fn waiting_hint(&self, current: Option<TaskId>) -> String {
        let Some(a) = current.and_then(|t| self.attempts.get(&t)) else {
            return String::new();
        };
        match &a.state {
            AttemptState::Requested => {
                let alive = self
                    .core
                    .peers
                    .borrow()
                    .alive_of_kind(self.core.service.server_kind(), Instant::now())
                    .len();
                format!(
                    " (no computing node took it; {alive} computing node(s) known alive on domain {})",
                    self.core.cfg.domain
                )
            }
            AttemptState::Assigned { server, .. } => format!(" (held by {server})"),
            _ => String::new(),
        }
    }

    fn warn_if_nobody_answers(&mut self, now: Instant) {
        // Undecided jobs' current attempts only: closed attempts may be many.
        let oldest_unanswered = self
            .jobs
            .values()
            .filter_map(|j| j.current.and_then(|t| self.attempts.get(&t)))
            .filter(|a| matches!(a.state, AttemptState::Requested))
            .map(|a| a.since)
            .min();
        let Some(oldest) = oldest_unanswered else {
            return;
        };
        let due = self
            .last_waiting_warning
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(10));
        if now.duration_since(oldest) > Duration::from_secs(5) && due {
            self.last_waiting_warning = Some(now);
            let alive = self
                .core
                .peers
                .borrow()
                .alive_of_kind(self.core.service.server_kind(), now);
            tracing::warn!(
                waiting = self.open_requests + self.queue.len(),
                computing_nodes_alive = alive.len(),
                domain = self.core.cfg.domain,
                "jobs are waiting: no computing node has answered for {:?}",
                now.duration_since(oldest)
            );
        }
    }

    /// Refreshes the counters the node handle reads, and tells batches where their jobs run.
    fn update_stats(&mut self, now: Instant) {
        let peers = self.core.peers.borrow();
        let me = &self.core.id;
        let mut running = Vec::new();
        // Undecided jobs only: closed attempts are kept for minutes and may be many.
        for (job_id, job) in self.jobs.iter_mut() {
            let Some((task, a)) = job
                .current
                .and_then(|t| self.attempts.get(&t).map(|a| (t, a)))
            else {
                continue;
            };
            let AttemptState::Assigned { server, .. } = &a.state else {
                continue;
            };
            let (phase, done, total) = peers
                .info(server)
                .and_then(|i| {
                    i.jobs
                        .iter()
                        .find(|j| j.task_id == task && j.client_id == *me)
                })
                .map(|j| (Some(j.phase), j.done, j.total))
                .unwrap_or((None, 0, 0));
            let now_running = (server.clone(), done, total);
            if job.last_running.as_ref() != Some(&now_running) {
                job.respond.update(
                    *job_id,
                    JobUpdate::Running {
                        server: server.clone(),
                        done,
                        total,
                    },
                );
                job.last_running = Some(now_running);
            }
            running.push(RunningJob {
                task_id: *job_id,
                server_id: server.clone(),
                phase,
                done,
                total,
                since: a.since,
            });
        }
        let mut stats = self.shared.stats.lock().expect("stats");
        stats.waiting = self.open_requests + self.queue.len();
        stats.running = running;
        stats.computing_nodes = peers.alive_of_kind(self.core.service.server_kind(), now);
    }
}
