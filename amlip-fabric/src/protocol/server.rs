//! The computing node's side of the job protocol.
//!
//! When idle (nothing awaited, queued or running) and willing, it answers the oldest request it
//! has not seen taken, waits a bounded time for the main's target, and, if chosen, for the
//! data. Jobs run on a worker (the user's replier thread, or the caller of `process_job`), so
//! the engine keeps heartbeating while a job computes. Targets seen for any node mark requests
//! as taken, so a node that starts late is not confused by the replayed history; requests from
//! mains that are gone are dropped; every wait has a timeout.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::StreamExt;
use tokio::sync::mpsc;

use super::core::{error_payload, report_start, Inbound, Load, NodeCore, Role, CANCELLED_BY_NODE};
use super::requests::{Key, OpenRequests, Pending, Verdict};
use crate::dds::SourceTime;
use crate::job::{Job, JobContext};
use crate::peers::PeerTable;
use crate::runtime::Shutdown;
use crate::transfer::Envelope;
use crate::wire::ext::{ChunkKind, JobPhase, JobProgress};
use crate::wire::{AmlipId, MsReference, NodeState, TaskId};

/// A job handed to a worker, with its context.
pub(crate) struct WorkItem {
    pub job: Job,
    pub ctx: JobContext,
}

pub(crate) enum ServerCommand {
    /// Serve `n` more jobs.
    Accept(usize),
    /// Serve until stopped, with this many workers taking jobs at once.
    AcceptForever { workers: usize },
    /// Serve `n` fewer jobs (a `process_job` call that timed out).
    Withdraw(usize),
    /// Answer no more requests (jobs in hand still finish).
    StopAccepting,
    /// A worker finished a job.
    Finished {
        client_id: AmlipId,
        task_id: TaskId,
        result: Result<Bytes, String>,
    },
}

/// Counters shared with the node handle.
#[derive(Default)]
pub(crate) struct ServerShared {
    pub jobs_served: AtomicU64,
    pub jobs_failed: AtomicU64,
    /// Requests dropped unanswered: no participant vouched for their main in time, or their
    /// main had too many open.
    pub requests_refused: AtomicU64,
}

/// A set that remembers the last `cap` insertions.
struct RecentSet<T> {
    set: HashSet<T>,
    order: VecDeque<T>,
    cap: usize,
}

impl<T: Eq + Hash + Clone> RecentSet<T> {
    fn new(cap: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn insert(&mut self, v: T) {
        if self.set.insert(v.clone()) {
            self.order.push_back(v);
            if self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, v: &T) -> bool {
        self.set.contains(v)
    }

    fn remove(&mut self, v: &T) {
        if self.set.remove(v) {
            self.order.retain(|o| o != v);
        }
    }
}

struct Held {
    key: Key,
    phase: JobPhase,
    since: Instant,
    ctx: Option<JobContext>,
}

struct Awaiting {
    key: Key,
    since: Instant,
    /// The request answered, put back if no target comes (see `on_tick`).
    request: Pending,
}

enum Internal {
    SolutionSent(Key),
}

struct ServerEngine {
    core: Rc<NodeCore>,
    shared: Arc<ServerShared>,
    /// Open availability requests, by main (see [`super::requests`]).
    requests: OpenRequests,
    taken: RecentSet<Key>,
    replied: RecentSet<Key>,
    /// Requests put back once after an answer got no target (never twice: a main that
    /// never targets costs one more answer, not one per back-off).
    restored: RecentSet<Key>,
    served: RecentSet<Key>,
    awaiting: Option<Awaiting>,
    held: Vec<Held>,
    queue: VecDeque<Job>,
    /// Jobs handed to the workers and not finished (running, or waiting in their channel).
    running: usize,
    /// Workers computing jobs side by side (see [`depth`](Self::depth)).
    workers: usize,
    capacity: Option<usize>,
    work: std_mpsc::Sender<WorkItem>,
    internal: mpsc::UnboundedSender<Internal>,
    /// When this node joined the domain, by its clock (see [`verdict`]).
    joined: SourceTime,
}

const MEMORY: usize = 200_000;

/// Jobs a main may hand this node without a request (while it serves forever), beyond those
/// it has handed and has no solution for. Mains hand fewer to nodes whose jobs take long.
const HANDOFF_SLOTS: u32 = 32;

/// How many of the oldest open requests an idle node chooses among.
const MAX_CHOICE: usize = 64;

/// Runs a computing node's engine until `shutdown`.
pub(crate) async fn run(
    core: Rc<NodeCore>,
    shared: Arc<ServerShared>,
    work: std_mpsc::Sender<WorkItem>,
    mut commands: mpsc::UnboundedReceiver<ServerCommand>,
    initial_capacity: Option<usize>,
    ready: std_mpsc::Sender<Result<(), crate::dds::DdsError>>,
    mut shutdown: Shutdown,
) {
    let joined = SourceTime::now();
    let Some(mut inbound) = report_start(&ready, core.subscribe(Role::Server)) else {
        return;
    };
    let (internal, mut internal_rx) = mpsc::unbounded_channel();
    let mut engine = ServerEngine {
        core: core.clone(),
        shared,
        requests: OpenRequests::default(),
        taken: RecentSet::new(MEMORY),
        replied: RecentSet::new(MEMORY),
        restored: RecentSet::new(MEMORY),
        served: RecentSet::new(MEMORY),
        awaiting: None,
        held: Vec::new(),
        queue: VecDeque::new(),
        running: 0,
        workers: 1,
        capacity: initial_capacity,
        work,
        internal,
        joined,
    };
    core.publish_status(NodeState::Running).await;
    engine.heartbeat().await;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut heartbeat = tokio::time::interval(core.cfg.heartbeat);
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
            Some(Internal::SolutionSent(key)) = internal_rx.recv() => {
                engine.held.retain(|h| h.key != key);
            }
            _ = tick.tick() => engine.on_tick().await,
            _ = heartbeat.tick() => engine.heartbeat().await,
        }
        if died && !shutdown.is_triggered() {
            match core.recover(Role::Server).await {
                Some(streams) => inbound = streams,
                None => break,
            }
            engine.heartbeat().await;
        }
    }
    for h in &engine.held {
        if let Some(ctx) = &h.ctx {
            ctx.cancel();
        }
    }
    core.publish_status(NodeState::Dropped).await;
    core.publish_info(NodeState::Dropped, Load::default()).await;
    drop(engine);
    drop(inbound);
}

impl ServerEngine {
    fn willing(&self) -> bool {
        self.capacity.is_none_or(|c| c > 0)
    }

    /// Free to answer a request: nothing awaited, received or queued, and a worker free.
    fn idle(&self) -> bool {
        self.awaiting.is_none()
            && self.queue.is_empty()
            && self.running < self.workers
            && !self.held.iter().any(|h| h.phase == JobPhase::Receiving)
    }

    /// How many jobs the workers may hold at once: while serving forever, one more than there
    /// are workers, so a worker that finishes takes its next job at once instead of waiting
    /// for a round trip through this engine (measured: the worker sat idle half the time
    /// serving small inference requests one at a time). A node serving a counted number of
    /// jobs hands one at a time to its caller.
    fn depth(&self) -> usize {
        if self.capacity.is_none() {
            self.workers + 1
        } else {
            1
        }
    }

    fn state(&self) -> NodeState {
        if self.willing() {
            NodeState::Running
        } else {
            NodeState::Stopped
        }
    }

    async fn heartbeat(&self) {
        let jobs = self
            .held
            .iter()
            .map(|h| {
                let (done, total) = h.ctx.as_ref().map_or((0, 0), |c| c.progress.get());
                JobProgress {
                    client_id: h.key.0.clone(),
                    task_id: h.key.1,
                    phase: h.phase,
                    done,
                    total,
                }
            })
            .collect();
        let load = Load {
            jobs,
            // Only a node serving forever takes jobs unasked: one serving a counted number
            // (`process_job`) must not be handed more than it will serve.
            handoff_slots: if self.capacity.is_none() {
                HANDOFF_SLOTS
            } else {
                0
            },
            jobs_done: self.shared.jobs_served.load(Ordering::Relaxed),
            ..Load::default()
        };
        self.core.publish_info(self.state(), load).await;
    }

    async fn on_command(&mut self, cmd: ServerCommand) {
        match cmd {
            ServerCommand::Accept(n) => {
                let was = self.willing();
                self.capacity = Some(self.capacity.unwrap_or(0) + n);
                if !was {
                    self.core.publish_status(NodeState::Running).await;
                }
            }
            ServerCommand::AcceptForever { workers } => {
                if !self.willing() {
                    self.core.publish_status(NodeState::Running).await;
                }
                self.capacity = None;
                self.workers = workers.max(1);
            }
            ServerCommand::Withdraw(n) => {
                if let Some(c) = self.capacity.as_mut() {
                    *c = c.saturating_sub(n);
                }
            }
            ServerCommand::StopAccepting => {
                self.capacity = Some(0);
                self.core.publish_status(NodeState::Stopped).await;
                // Mains hand jobs to nodes whose heartbeat says Running: say it now.
                self.heartbeat().await;
            }
            ServerCommand::Finished {
                client_id,
                task_id,
                result,
            } => {
                self.running = self.running.saturating_sub(1);
                let key = (client_id, task_id);
                let cancelled = self
                    .held
                    .iter()
                    .find(|h| h.key == key)
                    .and_then(|h| h.ctx.as_ref())
                    .is_some_and(|c| c.is_cancelled());
                // A job this node cancelled (its main seemed gone, or it is stopping) says so:
                // a main that is in fact alive (a partition that healed) re-sends it rather
                // than failing it; one that gave up on this node drops it.
                let result = match result {
                    Err(message) if cancelled => Err(format!("{CANCELLED_BY_NODE}{message}")),
                    r => r,
                };
                self.reply_solution(key, result);
            }
        }
        self.dispatch();
        self.try_answer().await;
    }

    async fn on_inbound(&mut self, ev: Inbound) {
        match ev {
            Inbound::NewPeer(info) if info.kind == self.core.service.client_kind() => {
                self.heard_main(&info.id)
            }
            Inbound::Status(s) if s.node_kind == self.core.service.client_kind() => {
                self.heard_main(&s.id)
            }
            Inbound::Request(r, written_at, from) => {
                let key = (r.client_id, r.task_id);
                if !self.taken.contains(&key) && !self.replied.contains(&key) {
                    let vouched = self.core.peers.borrow().vouched(&key.0, from);
                    self.requests
                        .add(key, written_at, from, vouched, Instant::now());
                }
            }
            Inbound::Target(t) => self.on_target(t),
            Inbound::Payload(env) if env.kind == ChunkKind::Job => self.on_data(env),
            Inbound::Payload(env) if env.kind == ChunkKind::Handoff => self.on_handoff(env),
            Inbound::PayloadProgress { client_id, task_id } => {
                let key = (client_id, task_id);
                if !self.replied.contains(&key) {
                    return;
                }
                self.chosen(&key);
                if let Some(h) = self.held.iter_mut().find(|h| h.key == key) {
                    h.since = Instant::now();
                }
            }
            _ => {}
        }
        self.dispatch();
        self.try_answer().await;
    }

    /// Notes when a main was first heard (heartbeat, status or request): its replayed history
    /// arrives around then (see `verdict`). Its status or heartbeat may vouch for requests
    /// waiting aside.
    fn heard_main(&mut self, main: &AmlipId) {
        let now = Instant::now();
        self.requests.heard(main, now);
        let peers = self.core.peers.borrow();
        self.requests
            .recheck(now, self.core.cfg.ghost_timeout, |m, from| {
                peers.vouched(m, from)
            });
    }

    /// We are (or learnt we are) the chosen node for `key`: expect its data.
    fn chosen(&mut self, key: &Key) {
        if self.awaiting.as_ref().is_some_and(|a| a.key == *key) {
            self.awaiting = None;
        }
        if !self.served.contains(key) && !self.held.iter().any(|h| h.key == *key) {
            self.held.push(Held {
                key: key.clone(),
                phase: JobPhase::Receiving,
                since: Instant::now(),
                ctx: None,
            });
        }
    }

    fn on_target(&mut self, t: MsReference) {
        self.requests.target_seen(&t.client_id);
        let key = (t.client_id, t.task_id);
        self.taken.insert(key.clone());
        if t.server_id == self.core.id {
            if self.replied.contains(&key) {
                self.chosen(&key);
            }
        } else if self.awaiting.as_ref().is_some_and(|a| a.key == key) {
            self.awaiting = None; // another node (or the main itself, closing it) took it
        } else if let Some(i) = self.held.iter().position(|h| h.key == key) {
            // A second target for a task we hold: the main closed it (it was solved elsewhere
            // or cancelled). Stop working on it.
            tracing::info!(main = %key.0, task = key.1, "the main closed a job this node holds; cancelling it");
            match &self.held[i].ctx {
                Some(ctx) => ctx.cancel(),
                None => {
                    // Not started: forget it, and ignore its data if that is still coming.
                    self.queue
                        .retain(|j| (&j.client_id, j.task_id) != (&key.0, key.1));
                    self.held.remove(i);
                    self.served.insert(key);
                }
            }
        }
    }

    fn on_data(&mut self, env: Envelope) {
        if env.server_id != self.core.id {
            tracing::debug!(server = %env.server_id, "job data addressed to another node; ignored");
            return;
        }
        let key = (env.client_id.clone(), env.task_id);
        if self.served.contains(&key) {
            tracing::debug!(main = %key.0, task = key.1, "duplicate job data ignored");
            return;
        }
        if !self.replied.contains(&key) {
            tracing::warn!(main = %key.0, task = key.1, "job data for a task this node never answered; ignored");
            return;
        }
        self.chosen(&key);
        self.served.insert(key.clone());
        if let Some(h) = self.held.iter_mut().find(|h| h.key == key) {
            h.phase = JobPhase::Queued;
            h.since = Instant::now();
        }
        tracing::debug!(main = %key.0, task = key.1, bytes = env.data.len(), "job received");
        self.queue.push_back(Job {
            data: env.data,
            task_id: env.task_id,
            client_id: env.client_id,
        });
    }

    /// A job a main handed over the direct path, unasked: queued if its main is a live main
    /// this node knows (the direct path checked that the connection is from that main's id).
    fn on_handoff(&mut self, env: Envelope) {
        let key = (env.client_id.clone(), env.task_id);
        if env.server_id != self.core.id || self.served.contains(&key) {
            tracing::debug!(main = %key.0, task = key.1, "handed job not for this node, or seen before; ignored");
            return;
        }
        let known = self
            .core
            .peers
            .borrow()
            .info(&key.0)
            .is_some_and(|i| i.kind == self.core.service.client_kind());
        if !known {
            tracing::warn!(main = %key.0, task = key.1, "job handed by a main this node has not heard; ignored");
            return;
        }
        self.served.insert(key.clone());
        if !self.willing() {
            // Handed before the main heard this node stop: it re-sends the job elsewhere.
            let why = format!("{CANCELLED_BY_NODE}this computing node takes no more jobs");
            self.reply_solution(key, Err(why));
            return;
        }
        self.held.push(Held {
            key: key.clone(),
            phase: JobPhase::Queued,
            since: Instant::now(),
            ctx: None,
        });
        self.queue.push_back(Job {
            data: env.data,
            task_id: env.task_id,
            client_id: env.client_id,
        });
    }

    /// Hands queued jobs to the workers, as many as they may hold.
    fn dispatch(&mut self) {
        while self.running < self.depth() {
            let Some(job) = self.queue.pop_front() else {
                return;
            };
            let key = (job.client_id.clone(), job.task_id);
            let ctx = JobContext::default();
            if let Some(h) = self.held.iter_mut().find(|h| h.key == key) {
                h.phase = JobPhase::Running;
                h.since = Instant::now();
                h.ctx = Some(ctx.clone());
            }
            if let Some(c) = self.capacity.as_mut() {
                *c = c.saturating_sub(1);
            }
            self.running += 1;
            if self.work.send(WorkItem { job, ctx }).is_err() {
                self.running -= 1;
                self.reply_solution(key, Err("the computing node's worker has stopped".into()));
            }
        }
    }

    /// Sends a solution (or an error solution) for `key`, in the background.
    fn reply_solution(&mut self, key: Key, result: Result<Bytes, String>) {
        let data = match result {
            Ok(d) => {
                self.shared.jobs_served.fetch_add(1, Ordering::Relaxed);
                d
            }
            Err(message) => {
                self.shared.jobs_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(main = %key.0, task = key.1, "job failed: {message}");
                error_payload(&message)
            }
        };
        if let Some(h) = self.held.iter_mut().find(|h| h.key == key) {
            h.phase = JobPhase::Replying;
        }
        let env = Envelope {
            kind: ChunkKind::Solution,
            client_id: key.0.clone(),
            task_id: key.1,
            server_id: self.core.id.clone(),
            data,
        };
        let core = self.core.clone();
        let internal = self.internal.clone();
        tokio::task::spawn_local(async move {
            if let Err(e) = core.send_payload(&key.0, env).await {
                tracing::warn!(main = %key.0, task = key.1, "cannot send solution: {e}");
            }
            let _ = internal.send(Internal::SolutionSent(key));
        });
    }

    /// If idle and willing, answers the oldest open request.
    async fn try_answer(&mut self) {
        if !self.idle() || !self.willing() {
            return;
        }
        let now = Instant::now();
        // The open requests we may answer (at most MAX_CHOICE of the oldest).
        let answerable = {
            let peers = self.core.peers.borrow();
            let (taken, replied) = (&self.taken, &self.replied);
            let settle = self.core.cfg.history_settle;
            let joined = self.joined;
            self.requests.answerable(now, MAX_CHOICE, |p, heard| {
                verdict(p, now, &peers, taken, replied, (heard, joined), settle)
            })
        };
        if answerable.is_empty() {
            return;
        }
        // Idle computing nodes all see the same open requests; if each answered the oldest,
        // all but one would lose it and wait a round trip for nothing. Each takes a different
        // one instead: the request at its rank among the computing nodes it knows.
        let pick = answerable[self.rank(now) % answerable.len()].clone();
        self.requests.remove(&pick);
        let key = pick.key.clone();
        let reply = MsReference {
            client_id: key.0.clone(),
            task_id: key.1,
            server_id: self.core.id.clone(),
        };
        let written = match self
            .core
            .endpoints()
            .references(&self.core.service.reply_available(&key.0))
        {
            Ok(w) => w.write(&reply).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(main = %key.0, task = key.1, "cannot answer availability: {e}");
            return;
        }
        tracing::debug!(main = %key.0, task = key.1, "answered availability");
        self.replied.insert(key.clone());
        self.awaiting = Some(Awaiting {
            key,
            since: now,
            request: pick,
        });
    }

    /// This node's position among the computing nodes it knows (itself included), by id.
    fn rank(&self, now: Instant) -> usize {
        let mut nodes = self
            .core
            .peers
            .borrow()
            .alive_of_kind(self.core.service.server_kind(), now);
        nodes.push(self.core.id.clone());
        nodes.sort();
        nodes.iter().position(|n| *n == self.core.id).unwrap_or(0)
    }

    async fn on_tick(&mut self) {
        self.core.check_clock();
        let now = Instant::now();
        // Transfers a peer started and never finished hold memory: drop them once stalled.
        self.core.transfers.expire(now);
        let cfg = &self.core.cfg;
        {
            let peers = self.core.peers.borrow();
            if let Some(a) = &self.awaiting {
                if now.duration_since(a.since) > cfg.target_timeout {
                    tracing::debug!(main = %a.key.0, task = a.key.1, "no target in time; moving on");
                    self.requests.target_timeout(&a.key.0, now);
                    // Our answer may never have reached the main (a reply writer not yet
                    // matched to its reader): the request goes back once, to be answered
                    // again after the main's back-off if its heartbeat still lists it open,
                    // or dropped once a target shows another node took it. Without this, a
                    // lost answer strands the job while this node sits idle.
                    if let Some(a) = self.awaiting.take() {
                        if !self.restored.contains(&a.key) {
                            self.restored.insert(a.key.clone());
                            self.replied.remove(&a.key);
                            self.requests.restore(a.request);
                        }
                    }
                } else if peers.gone(&a.key.0, now).is_some() {
                    self.awaiting = None;
                }
            }
            self.held.retain(|h| {
                let stale = h.phase == JobPhase::Receiving
                    && (now.duration_since(h.since) > cfg.data_timeout
                        || peers.gone(&h.key.0, now).is_some());
                if stale {
                    tracing::warn!(main = %h.key.0, task = h.key.1, "chosen, but the job's data never came; giving up on it");
                }
                !stale
            });
            for h in &self.held {
                if let (Some(ctx), Some(_)) = (&h.ctx, peers.gone(&h.key.0, now)) {
                    ctx.cancel();
                }
            }
            for main in self.requests.mains() {
                if peers.gone(&main, now).is_some() {
                    self.requests.forget(&main);
                }
            }
            self.requests
                .recheck(now, cfg.ghost_timeout, |m, from| peers.vouched(m, from));
            let refused = self.requests.refused();
            self.shared
                .requests_refused
                .store(refused.ghosts + refused.overflow, Ordering::Relaxed);
        }
        self.dispatch();
        self.try_answer().await;
    }
}

/// Whether to answer an open request now.
///
/// A computing node that starts late receives the mains' request and target histories at
/// about the same time, in no guaranteed order, and must not answer requests already taken.
/// An amlip main's heartbeat says exactly which of its requests are still open (its task
/// counter and open set), for every request it wrote before that heartbeat (both carry the
/// main's source timestamp; mains heartbeat as soon as they discover a computing node). A
/// request newer than a heartbeat that lists us among the main's known peers was written while
/// the main knew us: live. A request written after this node joined (its source timestamp
/// against our clock: exact on one host, NTP's skew across hosts) is live too: any target for
/// it was written after we joined as well, and is not old history (AML-IP mains' first jobs
/// need this to be answered at once). For any other request newer than every heartbeat, or
/// from a plain AML-IP main, we wait `settle` after first hearing from that main, so that its
/// target history arrives first; after that, requests are live and answered at once.
fn verdict(
    req: &Pending,
    now: Instant,
    peers: &PeerTable,
    taken: &RecentSet<Key>,
    replied: &RecentSet<Key>,
    (first_heard, joined): (Instant, SourceTime),
    settle: Duration,
) -> Verdict {
    let key = &req.key;
    if taken.contains(key) || replied.contains(key) {
        return Verdict::Drop;
    }
    if peers.gone(&key.0, now).is_some() {
        return Verdict::Drop;
    }
    if let Some((info, Some(heartbeat_at))) = peers.info_with_time(&key.0) {
        if req.written_at.is_some_and(|r| r <= heartbeat_at) {
            let stale = key.1 < info.next_task && !info.open_tasks.contains(&key.1);
            return if stale {
                Verdict::Drop
            } else {
                Verdict::Answer
            };
        }
        if peers.knows_me(&key.0) {
            // Written after a heartbeat that lists us: the main knew us, so this request
            // reached us live (a taken one gets its target live too).
            return Verdict::Answer;
        }
    }
    if req.written_at.is_some_and(|w| w > joined) {
        return Verdict::Answer;
    }
    if now.duration_since(first_heard) < settle {
        Verdict::Defer
    } else {
        Verdict::Answer
    }
}
