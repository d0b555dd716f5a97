//! What the client (main) and server (computing) sides of the job protocol share: the node's
//! identity and participant, its peers, its transfers, cached writers, status and heartbeats,
//! and the inbound samples of every topic it reads, decoded into one event type.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{LocalBoxStream, StreamExt};

use crate::config::NodeConfig;
use crate::dds::{
    topics, DdsError, Participant, ParticipantKey, Profile, Reader, SourceTime, Writer,
};
use crate::peers::PeerTable;
use crate::transfer::{ChunkOutcome, Envelope, TransferError, Transfers};
use crate::wire::ext::{
    Chunk, ChunkKind, Credit, JobProgress, NodeInfo, EXTENSION_VERSION, FEATURE_STREAM,
};
use crate::wire::{
    AmlipId, MsData, MsReference, MsRequest, NodeKind, NodeState, Status, TaskId, WireType,
};

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
    /// A request, with when its main wrote it.
    Request(MsRequest, Option<SourceTime>),
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
    Heartbeat(AmlipId),
    Status(Status),
    PeersLost(Vec<AmlipId>),
    /// Handled inside the core; engines ignore it.
    Internal,
}

/// What a heartbeat reports about the node's work.
#[derive(Debug, Default)]
pub struct Load {
    pub jobs: Vec<JobProgress>,
    pub next_task: TaskId,
    pub open_tasks: Vec<TaskId>,
    pub known_peers: Vec<AmlipId>,
}

/// Which topics a node reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
    Monitor,
}

/// Writers created on demand and kept, one per topic.
struct WriterCache<T> {
    writers: RefCell<HashMap<String, Rc<Writer<T>>>>,
    profile: Profile,
}

impl<T: WireType> WriterCache<T> {
    fn new(profile: Profile) -> Self {
        Self {
            writers: RefCell::new(HashMap::new()),
            profile,
        }
    }

    fn get(&self, participant: &Participant, topic: &str) -> Result<Rc<Writer<T>>, DdsError> {
        if let Some(w) = self.writers.borrow().get(topic) {
            return Ok(w.clone());
        }
        let w = Rc::new(participant.writer::<T>(topic, self.profile)?);
        self.writers
            .borrow_mut()
            .insert(topic.to_owned(), w.clone());
        Ok(w)
    }
}

/// Bytes a chunk-stream writer carries before it is replaced.
const ROTATE_AFTER: usize = 32 << 20;

/// A chunk-stream writer, with what it has carried and how many transfers use it.
struct StreamWriter {
    writer: Writer<Chunk>,
    carried: Cell<usize>,
    users: Cell<usize>,
}

/// A transfer's hold on a stream writer.
struct Lease(Rc<StreamWriter>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.users.set(self.0.users.get() - 1);
    }
}

/// The chunk-stream writers towards each peer: the one in use and a standby.
///
/// rustdds trims a writer's history only on a 6-second timer, so a writer that streams at
/// hundreds of MB/s keeps gigabytes, and slows down as its bookkeeping grows. Dropping a writer
/// frees its history at once. So once the active writer has carried `ROTATE_AFTER` bytes and
/// no transfer uses it, it is dropped and the standby, created earlier so that the peer has
/// already matched it, takes over; a new standby is created. Transfers never span writers (each
/// writer delivers its chunks in order).
#[derive(Default)]
struct StreamWriters {
    peers: RefCell<HashMap<AmlipId, PeerStreams>>,
}

/// The writer in use towards a peer, and its standby.
type PeerStreams = (Rc<StreamWriter>, Option<Rc<StreamWriter>>);

impl StreamWriters {
    fn create(p: &Participant, peer: &AmlipId) -> Result<Rc<StreamWriter>, DdsError> {
        Ok(Rc::new(StreamWriter {
            writer: p.writer::<Chunk>(&topics::stream(peer), Profile::Stream)?,
            carried: Cell::new(0),
            users: Cell::new(0),
        }))
    }

    /// Makes sure both writers towards `peer` exist (discovery runs ahead of the first use).
    fn prepare(&self, p: &Participant, peer: &AmlipId) -> Result<(), DdsError> {
        let mut peers = self.peers.borrow_mut();
        if !peers.contains_key(peer) {
            peers.insert(
                peer.clone(),
                (Self::create(p, peer)?, Some(Self::create(p, peer)?)),
            );
        }
        Ok(())
    }

    /// The writer a transfer of `bytes` towards `peer` uses, rotated when due.
    fn lease(&self, p: &Participant, peer: &AmlipId, bytes: usize) -> Result<Lease, DdsError> {
        self.prepare(p, peer)?;
        let mut peers = self.peers.borrow_mut();
        let (active, standby) = peers.get_mut(peer).expect("prepared");
        if active.carried.get() >= ROTATE_AFTER && active.users.get() == 0 {
            *active = match standby.take() {
                Some(s) => s,
                None => Self::create(p, peer)?,
            };
        }
        if standby.is_none() {
            *standby = Some(Self::create(p, peer)?);
        }
        active.carried.set(active.carried.get() + bytes);
        active.users.set(active.users.get() + 1);
        Ok(Lease(active.clone()))
    }
}

/// One node's shared protocol state. Lives on the node's engine thread.
pub struct NodeCore {
    pub id: AmlipId,
    pub kind: NodeKind,
    pub cfg: NodeConfig,
    pub peers: RefCell<PeerTable>,
    pub transfers: Transfers,
    status_writer: Writer<Status>,
    info_writer: Option<Writer<NodeInfo>>,
    references: WriterCache<MsReference>,
    payloads: WriterCache<MsData>,
    streams: StreamWriters,
    credits: WriterCache<Credit>,
    // Last: fields drop in order, and writers must go before their participant.
    pub participant: Participant,
}

impl NodeCore {
    pub fn new(id: AmlipId, kind: NodeKind, cfg: NodeConfig) -> Result<Rc<Self>, DdsError> {
        let participant = Participant::new(cfg.domain, &cfg.network)?;
        let status_writer = participant.writer::<Status>(topics::STATUS, Profile::Status)?;
        let info_writer = if cfg.extensions {
            Some(participant.writer::<NodeInfo>(topics::NODE_INFO, Profile::NodeInfo)?)
        } else {
            None
        };
        Ok(Rc::new(Self {
            peers: RefCell::new(PeerTable::new(id.clone(), cfg.liveness_timeout)),
            transfers: Transfers::new(id.clone(), cfg.stream.clone()),
            id,
            kind,
            participant,
            status_writer,
            info_writer,
            references: WriterCache::new(Profile::JobControl),
            payloads: WriterCache::new(Profile::JobPayload),
            streams: StreamWriters::default(),
            credits: WriterCache::new(Profile::Credit),
            cfg,
        }))
    }

    pub async fn publish_status(&self, state: NodeState) {
        let s = Status {
            id: self.id.clone(),
            node_kind: self.kind,
            state,
        };
        if let Err(e) = self.status_writer.write(&s).await {
            tracing::warn!("cannot publish status {state:?}: {e}");
        }
        if state == NodeState::Dropped {
            // The node is about to leave: give readers a moment to receive its last word.
            self.status_writer.flush(LAST_WORD_WAIT).await;
        }
    }

    /// Publishes a heartbeat (no-op without extensions): a computing node lists the jobs it
    /// holds, a main its task counter and open requests.
    pub async fn publish_info(&self, state: NodeState, load: Load) {
        let Some(w) = &self.info_writer else { return };
        let info = NodeInfo {
            id: self.id.clone(),
            version: EXTENSION_VERSION,
            kind: self.kind,
            state,
            features: FEATURE_STREAM,
            chunk_size: self.cfg.stream.chunk_size as u32,
            window: self.cfg.stream.window as u32,
            heartbeat_ms: self.cfg.heartbeat.as_millis() as u32,
            jobs: load.jobs,
            next_task: load.next_task,
            open_tasks: load.open_tasks,
            known_peers: load.known_peers,
        };
        if let Err(e) = w.write(&info).await {
            tracing::debug!("cannot publish heartbeat: {e}");
        }
    }

    /// Writer for `ms_reference` samples on `topic`, created once.
    pub fn reference_writer(&self, topic: &str) -> Result<Rc<Writer<MsReference>>, DdsError> {
        self.references.get(&self.participant, topic)
    }

    /// Creates ahead of time the writers we will need towards `peer`, so that the first job
    /// does not pay for endpoint discovery.
    pub fn prepare_writers_to(&self, peer: &NodeInfo) {
        let p = &self.participant;
        let result = match (self.kind, peer.kind) {
            (NodeKind::Main, NodeKind::Computing) => self
                .payloads
                .get(p, &topics::job_task_data(&peer.id))
                .map(drop),
            (NodeKind::Computing, NodeKind::Main) => self
                .references
                .get(p, &topics::job_reply_available(&peer.id))
                .and_then(|_| self.payloads.get(p, &topics::job_task_solution(&peer.id)))
                .map(drop),
            _ => return,
        };
        let result = result.and_then(|_| {
            if self.cfg.extensions && peer.supports_stream() {
                self.streams.prepare(p, &peer.id)?;
                self.credits.get(p, &topics::credit(&peer.id))?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(peer = %peer.id, "cannot prepare writers: {e}");
        }
    }

    /// Sends a job or solution to `peer`: as a chunk stream if the peer is an amlip node and the
    /// payload is large, otherwise as one GENERIC sample on the AML-IP topic. Resolves when
    /// the stream was acknowledged, or when the sample was handed to DDS.
    pub async fn send_payload(&self, peer: &AmlipId, env: Envelope) -> Result<(), TransferError> {
        let streamable = self.cfg.extensions && env.data.len() > self.cfg.stream.threshold;
        let peer_limits = {
            let peers = self.peers.borrow();
            peers
                .info(peer)
                .filter(|i| i.supports_stream())
                .map(|i| (i.chunk_size as usize, i.window as usize))
        };
        if let (true, Some((chunk, window))) = (streamable, peer_limits) {
            let lease = self
                .streams
                .lease(&self.participant, peer, env.data.len())?;
            return self
                .transfers
                .send(&lease.0.writer, peer, chunk, window, &env)
                .await;
        }
        let topic = match env.kind {
            ChunkKind::Job => topics::job_task_data(peer),
            ChunkKind::Solution => topics::job_task_solution(peer),
        };
        let writer = self.payloads.get(&self.participant, &topic)?;
        let msg = MsData {
            client_id: env.client_id,
            task_id: env.task_id,
            server_id: env.server_id,
            data: env.data,
        };
        writer.write(&msg).await?;
        Ok(())
    }

    /// The inbound event streams for a node of `role`.
    pub fn inbound(
        self: &Rc<Self>,
        role: Role,
    ) -> Result<Vec<LocalBoxStream<'static, Inbound>>, DdsError> {
        let p = &self.participant;
        let me = &self.id;
        let mut streams: Vec<LocalBoxStream<'static, Inbound>> = Vec::new();
        match role {
            Role::Client => {
                streams.push(
                    decoded(p.reader::<MsReference>(
                        &topics::job_reply_available(me),
                        Profile::JobControl,
                    )?)
                    .map(|s| Inbound::Reply(s.value))
                    .boxed_local(),
                );
                streams.push(self.payload_stream(&topics::job_task_solution(me))?);
            }
            Role::Server => {
                streams.push(
                    decoded(p.reader::<MsRequest>(
                        topics::JOB_REQUEST_AVAILABILITY,
                        Profile::JobControl,
                    )?)
                    .map(|s| Inbound::Request(s.value, s.written_at))
                    .boxed_local(),
                );
                streams.push(
                    decoded(p.reader::<MsReference>(topics::JOB_TASK_TARGET, Profile::JobControl)?)
                        .map(|s| Inbound::Target(s.value))
                        .boxed_local(),
                );
                streams.push(self.payload_stream(&topics::job_task_data(me))?);
            }
            Role::Monitor => {}
        }
        let core = self.clone();
        streams.push(
            decoded(p.reader::<Status>(topics::STATUS, Profile::Status)?)
                .map(move |s| {
                    core.peers.borrow_mut().on_status(&s.value, s.from);
                    Inbound::Status(s.value)
                })
                .boxed_local(),
        );
        if role != Role::Monitor {
            let core = self.clone();
            streams.push(
                p.lost_participants()
                    .map(move |key| {
                        Inbound::PeersLost(core.peers.borrow_mut().on_participant_lost(key))
                    })
                    .boxed_local(),
            );
        }
        if self.cfg.extensions && role != Role::Monitor {
            let core = self.clone();
            streams.push(
                decoded(p.reader::<NodeInfo>(topics::NODE_INFO, Profile::NodeInfo)?)
                    .map(move |s| {
                        let info = s.value;
                        let id = info.id.clone();
                        let first = core.peers.borrow_mut().on_info(
                            info.clone(),
                            s.from,
                            s.written_at,
                            Instant::now(),
                        );
                        if first {
                            core.prepare_writers_to(&info);
                            Inbound::NewPeer(info)
                        } else {
                            Inbound::Heartbeat(id)
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

    fn payload_stream(&self, topic: &str) -> Result<LocalBoxStream<'static, Inbound>, DdsError> {
        let kind = if topic.starts_with("amlip/job_task_data_") {
            ChunkKind::Job
        } else {
            ChunkKind::Solution
        };
        Ok(decoded(
            self.participant
                .reader::<MsData>(topic, Profile::JobPayload)?,
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
                    .credits
                    .get(&core.participant, &topics::credit(&sender))
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
