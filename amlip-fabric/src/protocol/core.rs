//! What the client (main) and server (computing) sides of the job protocol share: the node's
//! identity and participant, its peers, its transfers, cached writers, status and heartbeats,
//! and the inbound samples of every topic it reads, decoded into one event type.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{select_all, LocalBoxStream, SelectAll, StreamExt};

use super::endpoints::Endpoints;
use crate::config::NodeConfig;
use crate::dds::topics::Service;
use crate::dds::{
    topics, DdsError, DiscoveryEvent, DropCounters, ParticipantKey, Profile, Reader, SourceTime,
};
use crate::direct::{DirectEvent, DirectPath};
use crate::peers::PeerTable;
use crate::transfer::{Budget, ChunkOutcome, Envelope, TransferError, Transfers};
use crate::wire::ext::{
    Chunk, ChunkKind, Credit, JobProgress, NodeInfo, EXTENSION_VERSION, FEATURE_DIRECT,
    FEATURE_STREAM,
};
use crate::wire::summary::MainSummary;
use crate::wire::{
    AmlipId, MsData, MsReference, MsRequest, NodeKind, NodeState, Status, TaskId, WireType,
};

/// How often [`NodeCore::pause_watch`] looks at the clock.
const PAUSE_WATCH_EVERY: Duration = Duration::from_millis(100);
/// How much longer than usual the engine may go unscheduled before the process counts as
/// having been stopped.
const PAUSE_SUSPECTED: Duration = Duration::from_millis(200);

/// Peers whose writers a node creates ahead of their first job (see
/// [`NodeCore::prepare_writers_to`]).
const MAX_PREPARED: usize = 256;

/// How long a stopping node waits for its `dropped` status to be acknowledged.
const LAST_WORD_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// Tells a node's constructor (waiting on `ready`) whether the engine's endpoints exist;
/// returns the value to go on with, or `None` if start-up failed.
pub fn report_start<T>(
    ready: &std::sync::mpsc::Sender<Result<(), DdsError>>,
    result: Result<T, DdsError>,
) -> Option<T> {
    match result {
        Ok(v) => {
            let _ = ready.send(Ok(()));
            Some(v)
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            None
        }
    }
}

/// A decoded sample (or DDS event) for an engine.
#[derive(Debug)]
pub enum Inbound {
    /// A request, with when its main wrote it and the participant that wrote it.
    Request(MsRequest, Option<SourceTime>, ParticipantKey),
    Reply(MsReference),
    Target(MsReference),
    /// A job (to a computing node) or a solution (to a main), whichever way it came.
    Payload(Envelope),
    /// Part of a streamed payload arrived.
    PayloadProgress {
        client_id: AmlipId,
        task_id: TaskId,
    },
    /// A peer's first heartbeat.
    NewPeer(NodeInfo),
    Heartbeat,
    /// Every heartbeat of every amlip node, for monitors ([`Role::Monitor`]) only.
    Info(NodeInfo),
    /// Every main's summary, for monitors only.
    Summary(Box<MainSummary>),
    Status(Status),
    PeersLost(Vec<AmlipId>),
    /// A reader of another DDS implementation (an AML-IP node's) was found on this topic.
    /// Writers towards it are best created now: see [`crate::dds`]'s discovery.
    ForeignReader(String),
    /// rustdds stopped this node's participant (see [`NodeCore::pause_watch`]): the engine
    /// must [`NodeCore::recover`].
    ParticipantDied,
    /// Handled inside the core; engines ignore it.
    Internal,
}

/// Every inbound stream of a node, merged.
pub type InboundStreams = SelectAll<LocalBoxStream<'static, Inbound>>;

/// What a heartbeat reports about the node's work.
#[derive(Debug, Default)]
pub struct Load {
    pub jobs: Vec<JobProgress>,
    pub next_task: TaskId,
    pub open_tasks: Vec<TaskId>,
    pub known_peers: Vec<AmlipId>,
    pub handoff_slots: u32,
    pub jobs_done: u64,
}

/// Which topics a node reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
    Monitor,
}

/// One node's shared protocol state. Lives on the node's engine thread.
pub struct NodeCore {
    pub id: AmlipId,
    pub kind: NodeKind,
    /// The scenario whose topics the node reads and writes (monitors: `Job`, unused).
    pub service: Service,
    pub cfg: NodeConfig,
    pub peers: RefCell<PeerTable>,
    pub transfers: Transfers,
    /// The direct TCP path for large payloads (amlip mains and computing nodes with
    /// extensions, unless turned off or no port could be bound).
    direct: Option<Rc<DirectPath>>,
    /// Payloads that arrived over the direct path.
    direct_events: flume::Receiver<DirectEvent>,
    /// The DDS side, replaceable (see [`NodeCore::revive`]).
    endpoints: RefCell<Rc<Endpoints>>,
    /// What the readers dropped, kept across [`revive`](Self::revive).
    dropped: Arc<DropCounters>,
    /// Peers whose writers were created ahead of time.
    prepared: RefCell<std::collections::HashSet<AmlipId>>,
    /// When [`check_clock`](NodeCore::check_clock) last ran, and whether it found a stall.
    clock: Cell<Instant>,
    stalled: Cell<bool>,
}

impl NodeCore {
    pub fn new(
        id: AmlipId,
        kind: NodeKind,
        cfg: NodeConfig,
        dropped: Arc<DropCounters>,
    ) -> Result<Rc<Self>, DdsError> {
        let service = Service::of(kind).unwrap_or(Service::Job);
        let endpoints = Endpoints::new(&cfg, service, dropped.clone())?;
        let budget = Rc::new(Budget::new(&cfg.stream));
        let (events, direct_events) = flume::unbounded();
        let direct = (cfg.extensions && cfg.stream.direct && Service::of(kind).is_some())
            .then(|| DirectPath::start(id.clone(), &cfg, budget.clone(), events))
            .flatten();
        Ok(Rc::new(Self {
            peers: RefCell::new(PeerTable::new(id.clone(), cfg.liveness_timeout)),
            transfers: Transfers::new(id.clone(), cfg.stream.clone(), budget),
            direct,
            direct_events,
            id,
            kind,
            service,
            cfg,
            endpoints: RefCell::new(Rc::new(endpoints)),
            dropped,
            prepared: RefCell::new(Default::default()),
            clock: Cell::new(Instant::now()),
            stalled: Cell::new(false),
        }))
    }

    /// The current DDS side (hold it only briefly: [`revive`](Self::revive) replaces it).
    pub fn endpoints(&self) -> Rc<Endpoints> {
        self.endpoints.borrow().clone()
    }

    /// Replaces the DDS participant and every endpoint with new ones, under the same node id,
    /// keeping all protocol state. For when rustdds has stopped the participant (see
    /// [`endpoints`](super::endpoints)); the caller must subscribe again ([`inbound`](Self::inbound)).
    pub fn revive(&self) -> Result<(), DdsError> {
        let fresh = Endpoints::new(&self.cfg, self.service, self.dropped.clone())?;
        *self.endpoints.borrow_mut() = Rc::new(fresh);
        self.prepared.borrow_mut().clear();
        Ok(())
    }

    /// Every inbound stream of a node of `role`, merged.
    pub fn subscribe(self: &Rc<Self>, role: Role) -> Result<InboundStreams, DdsError> {
        Ok(select_all(self.inbound(role)?))
    }

    /// After [`Inbound::ParticipantDied`]: new endpoints and subscriptions, and our status
    /// published again. `None` if that failed too (the engine then stops).
    pub async fn recover(self: &Rc<Self>, role: Role) -> Option<InboundStreams> {
        tracing::warn!(
            node = %self.id,
            "the DDS participant stopped (rustdds ends it when a poll is interrupted, e.g. after \
             the process was paused); creating a new one"
        );
        match self.revive().and_then(|_| self.subscribe(role)) {
            Ok(streams) => {
                self.publish_status(NodeState::Running).await;
                Some(streams)
            }
            Err(e) => {
                tracing::error!(node = %self.id, "cannot recreate the DDS participant: {e}");
                None
            }
        }
    }

    pub async fn publish_status(&self, state: NodeState) {
        let s = Status {
            id: self.id.clone(),
            node_kind: self.kind,
            state,
        };
        let ep = self.endpoints();
        if let Err(e) = ep.status.write(&s).await {
            tracing::warn!("cannot publish status {state:?}: {e}");
        }
        if state == NodeState::Dropped {
            // The node is about to leave: give readers a moment to receive its last word.
            ep.status.flush(LAST_WORD_WAIT).await;
        }
    }

    /// Publishes a main's summary (no-op without extensions); `last` waits a moment for
    /// readers to have it, as the node is about to leave.
    pub async fn publish_summary(&self, summary: &MainSummary, last: bool) {
        if !self.cfg.extensions {
            return;
        }
        let ep = self.endpoints();
        let w = match ep.summary() {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!("cannot create the summary writer: {e}");
                return;
            }
        };
        if let Err(e) = w.write(summary).await {
            tracing::debug!("cannot publish the main's summary: {e}");
        } else if last {
            w.flush(LAST_WORD_WAIT).await;
        }
    }

    /// Publishes a heartbeat (no-op without extensions): a computing node lists the jobs it
    /// holds, a main its task counter and open requests.
    pub async fn publish_info(&self, state: NodeState, load: Load) {
        let ep = self.endpoints();
        let Some(w) = &ep.info else { return };
        let (direct_port, direct_addrs) = match &self.direct {
            Some(d) => {
                let (port, addrs) = d.announced();
                (port, addrs.to_vec())
            }
            None => (0, Vec::new()),
        };
        let info = NodeInfo {
            id: self.id.clone(),
            version: EXTENSION_VERSION,
            kind: self.kind,
            state,
            features: if self.direct.is_some() {
                FEATURE_STREAM | FEATURE_DIRECT
            } else {
                FEATURE_STREAM
            },
            chunk_size: self.cfg.stream.chunk_size as u32,
            window: self.cfg.stream.window as u32,
            heartbeat_ms: self.cfg.heartbeat.as_millis() as u32,
            jobs: load.jobs,
            next_task: load.next_task,
            open_tasks: load.open_tasks,
            known_peers: load.known_peers,
            direct_port,
            direct_addrs,
            handoff_slots: if self.direct.is_some() {
                load.handoff_slots
            } else {
                0
            },
            jobs_done: load.jobs_done.min(u32::MAX as u64) as u32,
        };
        if let Err(e) = w.write(&info).await {
            tracing::debug!("cannot publish heartbeat: {e}");
        }
    }

    /// Creates ahead of time the writers we will need towards `peer`, so that the first job
    /// does not pay for endpoint discovery: on AML-IP's per-node topics for any peer of the
    /// other role that published its status (a reader on a topic DDS has not matched yet gets
    /// a sample written there only at the writer's next heartbeat: 3 s for Fast DDS), and the
    /// chunk-stream writers too for amlip peers. At most `MAX_PREPARED` peers are prepared this
    /// way (statuses are cheap to forge); others get their writers on first use.
    pub fn prepare_writers_to(&self, peer: &AmlipId, kind: NodeKind, info: Option<&NodeInfo>) {
        let (client, server) = (self.service.client_kind(), self.service.server_kind());
        let pair = (self.kind, kind);
        if pair != (client, server) && pair != (server, client) {
            return;
        }
        {
            let mut prepared = self.prepared.borrow_mut();
            if !prepared.contains(peer) {
                if prepared.len() >= MAX_PREPARED {
                    return;
                }
                prepared.insert(peer.clone());
            } else if info.is_none() {
                return;
            }
        }
        let ep = self.endpoints();
        let service = self.service;
        let result = if self.kind == client {
            ep.payloads(&service.task_data(peer)).map(drop)
        } else {
            ep.references(&service.reply_available(peer))
                .and_then(|_| ep.payloads(&service.task_solution(peer)))
                .map(drop)
        };
        let result = result.and_then(|_| {
            let Some(peer) = info else { return Ok(()) };
            if self.cfg.extensions && peer.supports_stream() {
                ep.prepare_streams(&peer.id)?;
                ep.credits(&peer.id)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(%peer, "cannot prepare writers: {e}");
        }
    }

    /// Payloads sent (acknowledged) and received over the direct path, if there is one.
    pub fn direct_counts(&self) -> Option<Arc<crate::direct::DirectCounts>> {
        self.direct.as_ref().map(|d| d.counts())
    }

    /// Whether this node has a direct path.
    pub fn has_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// How many jobs `peer` takes without a request ([`NodeInfo::handoff_slots`]), if both
    /// ends have a direct path and it is not in its back-off after a failure.
    pub fn handoff_slots(&self, peer: &AmlipId) -> usize {
        let Some(direct) = &self.direct else { return 0 };
        let peers = self.peers.borrow();
        match peers.info(peer) {
            Some(i)
                if i.supports_direct() && i.state == NodeState::Running && direct.usable(peer) =>
            {
                i.handoff_slots as usize
            }
            _ => 0,
        }
    }

    /// The peer's direct path, if it announces one and we have one too.
    fn direct_to(&self, peer: &AmlipId) -> Option<(Rc<DirectPath>, u16, Vec<std::net::Ipv4Addr>)> {
        let direct = self.direct.as_ref()?;
        let peers = self.peers.borrow();
        let info = peers.info(peer).filter(|i| i.supports_direct())?;
        Some((direct.clone(), info.direct_port, info.direct_addrs.clone()))
    }

    /// Hands a job straight to `peer` over the direct path (no request before it): small
    /// ones on the peer's lane, large ones on a connection of their own.
    pub async fn hand_off(&self, peer: &AmlipId, env: Envelope) -> Result<(), TransferError> {
        let Some((direct, port, addrs)) = self.direct_to(peer) else {
            return Err(crate::direct::DirectError::Unreachable {
                peer: peer.clone(),
                why: "it announces no direct path".into(),
            }
            .into());
        };
        if env.data.len() > self.cfg.stream.threshold {
            direct.send(peer, port, &addrs, &env).await?;
        } else {
            direct.send_small(&direct, peer, port, &addrs, env).await?;
        }
        Ok(())
    }

    /// Sends a job or solution to `peer`. To an amlip node with a direct path (and we have
    /// one too) it goes over TCP: a large payload on a connection of its own, a small one on
    /// the peer's lane. Otherwise, or if no connection can be made, a large payload to an amlip
    /// node goes as a chunk stream, anything else as one GENERIC sample on the AML-IP topic.
    /// Resolves when the payload was acknowledged, or when the sample was handed to DDS.
    pub async fn send_payload(&self, peer: &AmlipId, env: Envelope) -> Result<(), TransferError> {
        let large = self.cfg.extensions && env.data.len() > self.cfg.stream.threshold;
        let lane = self.cfg.extensions;
        let peer_limits = {
            let peers = self.peers.borrow();
            peers
                .info(peer)
                .filter(|i| i.supports_stream())
                .map(|i| (i.chunk_size as usize, i.window as usize))
        };
        if (large || lane) && peer_limits.is_some() && self.direct.is_some() {
            match self.direct_to(peer) {
                Some((direct, port, addrs)) if direct.usable(peer) => {
                    let sent = if large {
                        direct.send(peer, port, &addrs, &env).await
                    } else {
                        direct
                            .send_small(&direct, peer, port, &addrs, env.clone())
                            .await
                    };
                    match sent {
                        Ok(()) => return Ok(()),
                        // Nothing was sent: DDS carries it.
                        Err(crate::direct::DirectError::Unreachable { .. }) => {}
                        // A main drops a second copy of a solution: DDS may carry it too.
                        Err(e) if env.kind == ChunkKind::Solution => {
                            tracing::warn!("{e}; sending the solution over DDS");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(_) => {}
                None => {
                    if let Some(direct) = &self.direct {
                        direct.note_dds(peer, "it announces no direct path");
                    }
                }
            }
        }
        let streamable = large;
        let ep = self.endpoints();
        if let (true, Some((chunk, window))) = (streamable, peer_limits) {
            let lease = ep.stream(peer, env.data.len())?;
            return self
                .transfers
                .send(&lease.0.writer, peer, chunk, window, &env)
                .await;
        }
        let topic = match env.kind {
            ChunkKind::Job => self.service.task_data(peer),
            ChunkKind::Solution => self.service.task_solution(peer),
            ChunkKind::Handoff => {
                return Err(crate::direct::DirectError::Unreachable {
                    peer: peer.clone(),
                    why: "a handed-off job goes only over the direct path".into(),
                }
                .into())
            }
        };
        let writer = ep.payloads(&topic)?;
        let msg = MsData {
            client_id: env.client_id,
            task_id: env.task_id,
            server_id: env.server_id,
            data: env.data,
        };
        writer.write(&msg).await?;
        Ok(())
    }

    /// Yields [`Inbound::ParticipantDied`] once the process was stopped and continued and
    /// rustdds did not survive it (see [`Participant::alive`](crate::dds::Participant::alive)).
    ///
    /// A stop shows as a timer that fires late. Only then is the participant probed, since a
    /// probe announces a writer to every peer, and one tick later, since rustdds's threads may
    /// not have run yet. A late timer can also mean a starved thread; the probe then finds the
    /// participant alive and nothing happens.
    fn pause_watch(self: &Rc<Self>) -> LocalBoxStream<'static, Inbound> {
        let core = Rc::downgrade(self);
        futures::stream::unfold((), move |()| {
            let core = core.clone();
            async move {
                let mut suspect = false;
                loop {
                    tokio::time::sleep(PAUSE_WATCH_EVERY).await;
                    let core = core.upgrade()?;
                    if suspect && !core.endpoints().participant.alive() {
                        return Some((Inbound::ParticipantDied, ()));
                    }
                    core.check_clock();
                    suspect = core.stalled.take();
                }
            }
        })
        .boxed_local()
    }

    /// Notes the time. If this node's thread went unscheduled for long (the process was
    /// stopped, or starved), peers' silence meanwhile is forgiven and the pause watch is told
    /// to probe the participant. Engines call it before judging peers' liveness: which timer
    /// fires first after a stop is not defined.
    pub fn check_clock(&self) {
        let now = Instant::now();
        if now.duration_since(self.clock.replace(now)) > PAUSE_WATCH_EVERY + PAUSE_SUSPECTED {
            self.peers.borrow_mut().resumed(now);
            self.stalled.set(true);
        }
    }

    /// The inbound event streams for a node of `role`.
    pub fn inbound(
        self: &Rc<Self>,
        role: Role,
    ) -> Result<Vec<LocalBoxStream<'static, Inbound>>, DdsError> {
        let ep = self.endpoints();
        let p = &ep.participant;
        let me = &self.id;
        let mut streams: Vec<LocalBoxStream<'static, Inbound>> = Vec::new();
        match role {
            Role::Client => {
                streams.push(
                    decoded(p.reader_catching_up::<MsReference>(
                        &self.service.reply_available(me),
                        Profile::JobControl,
                    )?)
                    .map(|s| Inbound::Reply(s.value))
                    .boxed_local(),
                );
                streams.push(
                    self.payload_stream(&self.service.task_solution(me), ChunkKind::Solution)?,
                );
            }
            Role::Server => {
                streams.push(
                    decoded(p.reader::<MsRequest>(
                        &self.service.request_availability(),
                        Profile::JobControl,
                    )?)
                    .map(|s| Inbound::Request(s.value, s.written_at, s.from))
                    .boxed_local(),
                );
                streams.push(
                    decoded(
                        p.reader::<MsReference>(&self.service.task_target(), Profile::JobControl)?,
                    )
                    .map(|s| Inbound::Target(s.value))
                    .boxed_local(),
                );
                streams.push(self.payload_stream(&self.service.task_data(me), ChunkKind::Job)?);
            }
            Role::Monitor => {}
        }
        let core = self.clone();
        streams.push(
            decoded(p.reader::<Status>(topics::STATUS, Profile::Status)?)
                .map(move |s| {
                    core.peers.borrow_mut().on_status(&s.value, s.from);
                    if s.value.state == NodeState::Running {
                        core.prepare_writers_to(&s.value.id, s.value.node_kind, None);
                    }
                    Inbound::Status(s.value)
                })
                .boxed_local(),
        );
        let core = self.clone();
        streams.push(
            p.discovery()
                .map(move |event| match event {
                    DiscoveryEvent::Lost(key) => {
                        Inbound::PeersLost(core.peers.borrow_mut().on_participant_lost(key))
                    }
                    DiscoveryEvent::ForeignReader { topic } => {
                        if let Some((peer, kind)) = core.service.peer_of_topic(&topic) {
                            core.prepare_writers_to(&peer, kind, None);
                        }
                        Inbound::ForeignReader(topic)
                    }
                })
                .boxed_local(),
        );
        streams.push(self.pause_watch());
        if self.cfg.extensions && role == Role::Monitor {
            // Monitors read heartbeats to show what amlip nodes do; they never send to them,
            // so no writers are prepared and no data topics read.
            let core = self.clone();
            streams.push(
                decoded(p.reader::<NodeInfo>(topics::NODE_INFO, Profile::NodeInfo)?)
                    .map(move |s| {
                        core.peers.borrow_mut().on_info(
                            s.value.clone(),
                            s.from,
                            s.written_at,
                            Instant::now(),
                        );
                        Inbound::Info(s.value)
                    })
                    .boxed_local(),
            );
            streams.push(
                decoded(p.reader::<MainSummary>(topics::MAIN_SUMMARY, Profile::Summary)?)
                    .map(|s| Inbound::Summary(Box::new(s.value)))
                    .boxed_local(),
            );
        }
        if self.cfg.extensions && role != Role::Monitor {
            let core = self.clone();
            streams.push(
                decoded(p.reader::<NodeInfo>(topics::NODE_INFO, Profile::NodeInfo)?)
                    .map(move |s| {
                        let info = s.value;
                        let first = core.peers.borrow_mut().on_info(
                            info.clone(),
                            s.from,
                            s.written_at,
                            Instant::now(),
                        );
                        if first {
                            core.prepare_writers_to(&info.id, info.kind, Some(&info));
                            Inbound::NewPeer(info)
                        } else {
                            Inbound::Heartbeat
                        }
                    })
                    .boxed_local(),
            );
            let core = self.clone();
            streams.push(
                decoded(p.reader::<Chunk>(&topics::stream(me), Profile::Stream)?)
                    .map(move |s| core.on_chunk(s.value, s.from))
                    .boxed_local(),
            );
            streams.push(
                self.direct_events
                    .clone()
                    .into_stream()
                    .map(|e| match e {
                        DirectEvent::Payload(env) => Inbound::Payload(env),
                        DirectEvent::Progress { client_id, task_id } => {
                            Inbound::PayloadProgress { client_id, task_id }
                        }
                    })
                    .boxed_local(),
            );
            let core = self.clone();
            streams.push(
                decoded(p.reader::<Credit>(&topics::credit(me), Profile::Credit)?)
                    .map(move |s| {
                        core.transfers.on_credit(&s.value);
                        Inbound::Internal
                    })
                    .boxed_local(),
            );
        }
        Ok(streams)
    }

    fn payload_stream(
        &self,
        topic: &str,
        kind: ChunkKind,
    ) -> Result<LocalBoxStream<'static, Inbound>, DdsError> {
        Ok(decoded(
            self.endpoints()
                .participant
                .reader_catching_up::<MsData>(topic, Profile::JobPayload)?,
        )
        .map(move |s| {
            let d = s.value;
            Inbound::Payload(Envelope {
                kind,
                client_id: d.client_id,
                task_id: d.task_id,
                server_id: d.server_id,
                data: d.data,
            })
        })
        .boxed_local())
    }

    fn on_chunk(self: &Rc<Self>, chunk: Chunk, from: ParticipantKey) -> Inbound {
        self.peers.borrow_mut().heard(&chunk.sender_id, from);
        let sender = chunk.sender_id.clone();
        let (outcome, credit) = self.transfers.on_chunk(chunk, Instant::now());
        if let Some(credit) = credit {
            let core = self.clone();
            tokio::task::spawn_local(async move {
                let result = core
                    .endpoints()
                    .credits(&sender)
                    .map(|w| async move { w.write(&credit).await });
                match result {
                    Ok(fut) => {
                        if let Err(e) = fut.await {
                            tracing::warn!(%sender, "cannot send credit: {e}");
                        }
                    }
                    Err(e) => tracing::warn!(%sender, "cannot create credit writer: {e}"),
                }
            });
        }
        match outcome {
            ChunkOutcome::Complete(env) => Inbound::Payload(env),
            ChunkOutcome::Progress {
                client_id, task_id, ..
            } => Inbound::PayloadProgress { client_id, task_id },
            ChunkOutcome::Rejected | ChunkOutcome::Ignored => Inbound::Internal,
        }
    }
}

/// A well-formed sample, who wrote it and when.
pub struct Sample<T> {
    pub from: ParticipantKey,
    pub written_at: Option<SourceTime>,
    pub value: T,
}

/// Decodes a reader's samples; a malformed one is logged (rate-limited) and dropped, never
/// passed on and never a panic.
pub fn decoded<T: WireType + 'static>(
    reader: Reader<T>,
) -> impl futures::Stream<Item = Sample<T>> + 'static {
    let topic = reader.topic().to_owned();
    let dropped = reader.dropped();
    let mut bad = 0u64;
    reader.into_stream().filter_map(move |r| {
        let out = match r.value {
            Ok(value) => Some(Sample {
                from: r.from,
                written_at: r.written_at,
                value,
            }),
            Err(e) => {
                bad += 1;
                dropped.malformed(&topic);
                if bad <= 10 || bad.is_power_of_two() {
                    tracing::warn!(
                        topic = %topic,
                        dropped = bad,
                        "dropping malformed {} sample: {e}",
                        T::TYPE_NAME
                    );
                }
                None
            }
        };
        futures::future::ready(out)
    })
}

/// The payload an error solution carries: readable text, so an AML-IP Python main that gets
/// one sees why.
pub const ERROR_PREFIX: &[u8] = b"AMLIP_ERROR: ";
/// What an error solution's message starts with when the computing node cancelled the job on
/// its own (it lost sight of the main, or it is stopping): not the job's failure, so an amlip
/// main that is alive re-sends the job instead of failing it.
pub const CANCELLED_BY_NODE: &str = "cancelled by the computing node: ";

pub fn error_payload(message: &str) -> Bytes {
    let mut v = ERROR_PREFIX.to_vec();
    v.extend_from_slice(message.as_bytes());
    Bytes::from(v)
}

/// The message of an error solution, if `payload` is one.
pub fn parse_error_payload(payload: &[u8]) -> Option<String> {
    payload
        .strip_prefix(ERROR_PREFIX)
        .map(|m| String::from_utf8_lossy(m).into_owned())
}
