//! amlip's extension types (see `idl/amlipx.idl`).
//!
//! They travel on `amlipx/...` topics with `amlipx::...` type names. AML-IP nodes never create
//! these topics, so DDS never matches them with AML-IP endpoints and AML-IP never sees a byte of
//! them: the AML-IP wire stays exactly as AML-IP expects. An amlip node learns that a peer is an
//! amlip node (and what it supports) from the peer's [`NodeInfo`]; with a peer that never
//! announces one it speaks plain AML-IP.

use std::net::Ipv4Addr;

use bytes::Bytes;

use super::cdr::{ByteOrder, CdrReader, CdrWriter};
use super::{AmlipId, NodeKind, NodeState, TaskId, WireError, WireType};

/// Version of the extension protocol. A peer announcing another version is treated as plain AML-IP.
pub const EXTENSION_VERSION: u32 = 1;

/// Feature bit: the node sends and receives large payloads as a credit-windowed chunk stream.
pub const FEATURE_STREAM: u32 = 1;

/// Feature bit: the node accepts large payloads over a direct TCP connection, at
/// [`NodeInfo::direct_addrs`] : [`NodeInfo::direct_port`] (see [`DirectHello`]).
pub const FEATURE_DIRECT: u32 = 2;

/// Where a job held by a computing node stands, as it reports in its heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPhase {
    /// Chosen by the main; the job's data is on its way.
    Receiving,
    /// Data received, waiting for the worker.
    Queued,
    /// Being computed.
    Running,
    /// Solution being sent.
    Replying,
}

impl JobPhase {
    fn to_u32(self) -> u32 {
        match self {
            JobPhase::Receiving => 0,
            JobPhase::Queued => 1,
            JobPhase::Running => 2,
            JobPhase::Replying => 3,
        }
    }

    fn from_u32(n: u32) -> Result<Self, WireError> {
        Ok(match n {
            0 => JobPhase::Receiving,
            1 => JobPhase::Queued,
            2 => JobPhase::Running,
            3 => JobPhase::Replying,
            n => {
                return Err(WireError::Invalid {
                    field: "jobs.phase",
                    reason: format!("unknown job phase {n}"),
                })
            }
        })
    }
}

/// One job a computing node holds, with its progress (`done` of `total` steps, 0/0 if unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProgress {
    /// The job's main.
    pub client_id: AmlipId,
    /// The job's task id.
    pub task_id: TaskId,
    /// What the node does with it.
    pub phase: JobPhase,
    /// Steps done, as the job reports.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
}

/// `amlipx::node_info` on `amlipx/node_info`: an amlip node's capabilities and heartbeat.
///
/// Published at start and then every `heartbeat_ms`. Its arrival is how a main knows a computing
/// node is alive while it holds a job (rustdds' own participant lease is 50 s, far too slow), and
/// the `jobs` list is how it knows the node still has the job it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node.
    pub id: AmlipId,
    /// Extension version.
    pub version: u32,
    /// The node's kind.
    pub kind: NodeKind,
    /// The node's state.
    pub state: NodeState,
    /// Feature bits (FEATURE_*).
    pub features: u32,
    /// Largest chunk this node sends or accepts, in bytes.
    pub chunk_size: u32,
    /// Bytes a sender may have in flight to this node before it grants more.
    pub window: u32,
    /// Heartbeat period.
    pub heartbeat_ms: u32,
    /// Computing nodes: the jobs this node holds.
    pub jobs: Vec<JobProgress>,
    /// Mains: the next task id this main will use. A request with a lower id that is not in
    /// `open_tasks` was already taken or withdrawn, so a late-joining computing node replaying
    /// history knows not to answer it.
    pub next_task: TaskId,
    /// Mains: the requests still waiting for a computing node.
    pub open_tasks: Vec<TaskId>,
    /// Mains: computing nodes discovered recently. A computing node listed here knows that any
    /// request written after this heartbeat was written while the main knew it: live, not
    /// replayed history.
    pub known_peers: Vec<AmlipId>,
    /// The TCP port of the node's direct data path (0: none). Appended after `known_peers`,
    /// so nodes that predate it read the rest unchanged.
    pub direct_port: u16,
    /// Where the direct path listens, best first.
    pub direct_addrs: Vec<Ipv4Addr>,
    /// Computing nodes: jobs a main may hand this node over the direct path without a
    /// request, beyond those it already handed and has no solution for (0: ask first).
    pub handoff_slots: u32,
    /// Jobs finished so far: served (computing nodes) or solved (mains). Appended after
    /// `handoff_slots`; for `main-node status`.
    pub jobs_done: u32,
}

impl NodeInfo {
    /// Whether large payloads may go to this node as a chunk stream.
    pub fn supports_stream(&self) -> bool {
        self.version == EXTENSION_VERSION && self.features & FEATURE_STREAM != 0
    }

    /// Whether large payloads may go to this node over a direct connection.
    pub fn supports_direct(&self) -> bool {
        self.supports_stream()
            && self.features & FEATURE_DIRECT != 0
            && self.direct_port != 0
            && !self.direct_addrs.is_empty()
    }
}

/// What a transfer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// A job, main to computing node.
    Job,
    /// A solution, computing node to main.
    Solution,
    /// A job a main hands straight to a computing node that announced free slots, with no
    /// request and reply before it. Only on the direct path (a chunk of this kind is invalid).
    Handoff,
}

/// `amlipx::chunk` on `amlipx/stream_<receiverId>`: one piece of a large job or solution.
///
/// Every chunk repeats the job header, so a receiver never depends on having kept the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The node sending the stream.
    pub sender_id: AmlipId,
    /// Unique per sender for its lifetime.
    pub transfer_id: u64,
    /// The whole payload's length.
    pub total_len: u64,
    /// This chunk's offset in the payload.
    pub offset: u64,
    /// Job or solution.
    pub kind: ChunkKind,
    /// The job's main.
    pub client_id: AmlipId,
    /// The job's task id.
    pub task_id: TaskId,
    /// The computing node.
    pub server_id: AmlipId,
    /// This chunk's bytes.
    pub data: Bytes,
}

/// Receiver's verdict on a transfer, carried by a [`Credit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditStatus {
    /// `received` bytes are in; the sender may have `received + window` sent.
    Progress,
    /// Everything arrived and was handed to the node: an application-level acknowledgment.
    Complete,
    /// The receiver dropped the transfer (gap, too large, not expected); the sender must stop.
    Rejected,
}

/// `amlipx::credit` on `amlipx/credit_<senderId>`: flow control for a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    /// The node receiving the stream.
    pub receiver_id: AmlipId,
    /// The transfer.
    pub transfer_id: u64,
    /// Bytes received in order so far.
    pub received: u64,
    /// Whether the receiver goes on.
    pub status: CreditStatus,
}

impl WireType for NodeInfo {
    const TYPE_NAME: &'static str = "amlipx::node_info";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        self.id.write(&mut w);
        w.u32(self.version);
        w.u32(self.kind.to_u32());
        w.u32(self.state.to_u32());
        w.u32(self.features);
        w.u32(self.chunk_size);
        w.u32(self.window);
        w.u32(self.heartbeat_ms);
        w.u32(self.jobs.len() as u32);
        for j in &self.jobs {
            j.client_id.write(&mut w);
            w.u32(j.task_id);
            w.u32(j.phase.to_u32());
            w.u32(j.done);
            w.u32(j.total);
        }
        w.u32(self.next_task);
        w.u32(self.open_tasks.len() as u32);
        for t in &self.open_tasks {
            w.u32(*t);
        }
        w.u32(self.known_peers.len() as u32);
        for p in &self.known_peers {
            p.write(&mut w);
        }
        w.u32(self.direct_port as u32);
        w.u32(self.direct_addrs.len() as u32);
        for a in &self.direct_addrs {
            w.u32(u32::from(*a));
        }
        w.u32(self.handoff_slots);
        w.u32(self.jobs_done);
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let id = AmlipId::read(&mut r, "id")?;
        let version = r.u32("version")?;
        let kind = NodeKind::from_u32(r.u32("kind")?);
        let state = NodeState::from_u32(r.u32("state")?);
        let features = r.u32("features")?;
        let chunk_size = r.u32("chunk_size")?;
        let window = r.u32("window")?;
        let heartbeat_ms = r.u32("heartbeat_ms")?;
        let n = r.u32("jobs.length")? as usize;
        // Each entry is at least 28 bytes: refuse counts the sample cannot hold.
        if n > r.remaining() / 28 {
            return Err(WireError::Invalid {
                field: "jobs.length",
                reason: format!("{n} jobs cannot fit in {} bytes", r.remaining()),
            });
        }
        let mut jobs = Vec::with_capacity(n);
        for _ in 0..n {
            jobs.push(JobProgress {
                client_id: AmlipId::read(&mut r, "jobs.client_id")?,
                task_id: r.u32("jobs.task_id")?,
                phase: JobPhase::from_u32(r.u32("jobs.phase")?)?,
                done: r.u32("jobs.done")?,
                total: r.u32("jobs.total")?,
            });
        }
        let next_task = r.u32("next_task")?;
        let n = r.u32("open_tasks.length")? as usize;
        if n > r.remaining() / 4 {
            return Err(WireError::Invalid {
                field: "open_tasks.length",
                reason: format!("{n} task ids cannot fit in {} bytes", r.remaining()),
            });
        }
        let open_tasks = (0..n)
            .map(|_| r.u32("open_tasks"))
            .collect::<Result<Vec<_>, _>>()?;
        let n = r.u32("known_peers.length")? as usize;
        // Each id is at least 10 bytes (length, one character, NUL, 4 bytes).
        if n > r.remaining() / 10 {
            return Err(WireError::Invalid {
                field: "known_peers.length",
                reason: format!("{n} ids cannot fit in {} bytes", r.remaining()),
            });
        }
        let known_peers = (0..n)
            .map(|_| AmlipId::read(&mut r, "known_peers"))
            .collect::<Result<Vec<_>, _>>()?;
        // Appended fields: absent in a node that predates them.
        let (mut direct_port, mut direct_addrs, mut handoff_slots, mut jobs_done) =
            (0, Vec::new(), 0, 0);
        if r.remaining() >= 8 {
            let port = r.u32("direct_port")?;
            direct_port = u16::try_from(port).map_err(|_| WireError::Invalid {
                field: "direct_port",
                reason: format!("{port} is not a port"),
            })?;
            let n = r.u32("direct_addrs.length")? as usize;
            if n > r.remaining() / 4 || n > MAX_DIRECT_ADDRS {
                return Err(WireError::Invalid {
                    field: "direct_addrs.length",
                    reason: format!(
                        "{n} addresses (at most {MAX_DIRECT_ADDRS}, in {} bytes)",
                        r.remaining()
                    ),
                });
            }
            direct_addrs = (0..n)
                .map(|_| r.u32("direct_addrs").map(Ipv4Addr::from))
                .collect::<Result<Vec<_>, _>>()?;
            if r.remaining() >= 4 {
                handoff_slots = r.u32("handoff_slots")?;
            }
            if r.remaining() >= 4 {
                jobs_done = r.u32("jobs_done")?;
            }
        }
        // No end check: a later extension version may append fields (it says its `version`).
        Ok(Self {
            id,
            version,
            kind,
            state,
            features,
            chunk_size,
            window,
            heartbeat_ms,
            jobs,
            next_task,
            open_tasks,
            known_peers,
            direct_port,
            direct_addrs,
            handoff_slots,
            jobs_done,
        })
    }
}

/// Most addresses a node announces for its direct path.
pub const MAX_DIRECT_ADDRS: usize = 16;

impl Chunk {
    /// Encodes the header and `data` in one buffer without building an intermediate `Chunk`
    /// (the sender slices a large payload into many chunks).
    #[allow(clippy::too_many_arguments)]
    pub fn encode_parts(
        sender_id: &AmlipId,
        transfer_id: u64,
        total_len: u64,
        offset: u64,
        kind: ChunkKind,
        client_id: &AmlipId,
        task_id: TaskId,
        server_id: &AmlipId,
        data: &[u8],
    ) -> Vec<u8> {
        let mut w = CdrWriter::with_capacity(data.len() + 128);
        sender_id.write(&mut w);
        w.u64(transfer_id);
        w.u64(total_len);
        w.u64(offset);
        w.u32(chunk_kind_code(kind));
        client_id.write(&mut w);
        w.u32(task_id);
        server_id.write(&mut w);
        w.byte_seq(data);
        w.finish()
    }
}

impl WireType for Chunk {
    const TYPE_NAME: &'static str = "amlipx::chunk";

    fn encode(&self) -> Vec<u8> {
        Chunk::encode_parts(
            &self.sender_id,
            self.transfer_id,
            self.total_len,
            self.offset,
            self.kind,
            &self.client_id,
            self.task_id,
            &self.server_id,
            &self.data,
        )
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let sender_id = AmlipId::read(&mut r, "sender_id")?;
        let transfer_id = r.u64("transfer_id")?;
        let total_len = r.u64("total_len")?;
        let offset = r.u64("offset")?;
        let kind = chunk_kind_of(r.u32("kind")?)?;
        if kind == ChunkKind::Handoff {
            return Err(WireError::Invalid {
                field: "kind",
                reason: "a handed-off job travels only on the direct path".into(),
            });
        }
        let client_id = AmlipId::read(&mut r, "client_id")?;
        let task_id = r.u32("task_id")?;
        let server_id = AmlipId::read(&mut r, "server_id")?;
        let data = r.byte_seq(body, "data")?;
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|end| end > total_len)
        {
            return Err(WireError::Invalid {
                field: "offset",
                reason: format!(
                    "chunk [{offset}, +{}) runs past the transfer's {total_len} bytes",
                    data.len()
                ),
            });
        }
        r.end()?;
        Ok(Self {
            sender_id,
            transfer_id,
            total_len,
            offset,
            kind,
            client_id,
            task_id,
            server_id,
            data,
        })
    }
}

impl WireType for Credit {
    const TYPE_NAME: &'static str = "amlipx::credit";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        self.receiver_id.write(&mut w);
        w.u64(self.transfer_id);
        w.u64(self.received);
        w.u32(match self.status {
            CreditStatus::Progress => 0,
            CreditStatus::Complete => 1,
            CreditStatus::Rejected => 2,
        });
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let v = Self {
            receiver_id: AmlipId::read(&mut r, "receiver_id")?,
            transfer_id: r.u64("transfer_id")?,
            received: r.u64("received")?,
            status: match r.u32("status")? {
                0 => CreditStatus::Progress,
                1 => CreditStatus::Complete,
                2 => CreditStatus::Rejected,
                n => {
                    return Err(WireError::Invalid {
                        field: "status",
                        reason: format!("unknown credit status {n}"),
                    })
                }
            },
        };
        r.end()?;
        Ok(v)
    }
}

/// First frame on a direct connection, sender to receiver. The receiver refuses a hello not
/// addressed to it (an address announced by one host can reach another node on another).
///
/// Frames on a direct connection are a `u32` little-endian length then a serialized payload
/// (encapsulation header and CDR body, as on DDS), at most [`MAX_DIRECT_FRAME`] bytes; a
/// [`DirectHeader`] frame is followed by exactly `len` raw bytes of data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectHello {
    /// Extension version (1).
    pub version: u32,
    /// The node the sender means to reach.
    pub receiver_id: AmlipId,
    /// The sender.
    pub sender_id: AmlipId,
}

/// One job or solution on a direct connection: the header frame; `len` raw bytes of data
/// follow, then their CRC-32 (IEEE) as a little-endian `u32` (a trailer, so that both ends
/// hash while the bytes move).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectHeader {
    /// Job or solution.
    pub kind: ChunkKind,
    /// The job's main.
    pub client_id: AmlipId,
    /// The job's task id.
    pub task_id: TaskId,
    /// The computing node.
    pub server_id: AmlipId,
    /// Bytes of data that follow.
    pub len: u64,
}

/// The receiver's answer to a hello or to a whole payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectAck {
    /// Empty if accepted (the payload was handed to the node); otherwise why not.
    pub refused: String,
}

/// Largest frame (hello, header or ack) on a direct connection.
pub const MAX_DIRECT_FRAME: usize = 4096;

fn chunk_kind_code(kind: ChunkKind) -> u32 {
    match kind {
        ChunkKind::Job => 1,
        ChunkKind::Solution => 2,
        ChunkKind::Handoff => 3,
    }
}

fn chunk_kind_of(n: u32) -> Result<ChunkKind, WireError> {
    match n {
        1 => Ok(ChunkKind::Job),
        2 => Ok(ChunkKind::Solution),
        3 => Ok(ChunkKind::Handoff),
        n => Err(WireError::Invalid {
            field: "kind",
            reason: format!("unknown payload kind {n}"),
        }),
    }
}

impl WireType for DirectHello {
    const TYPE_NAME: &'static str = "amlipx::direct_hello";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        w.u32(self.version);
        self.receiver_id.write(&mut w);
        self.sender_id.write(&mut w);
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let v = Self {
            version: r.u32("version")?,
            receiver_id: AmlipId::read(&mut r, "receiver_id")?,
            sender_id: AmlipId::read(&mut r, "sender_id")?,
        };
        r.end()?;
        Ok(v)
    }
}

impl WireType for DirectHeader {
    const TYPE_NAME: &'static str = "amlipx::direct_header";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        w.u32(chunk_kind_code(self.kind));
        self.client_id.write(&mut w);
        w.u32(self.task_id);
        self.server_id.write(&mut w);
        w.u64(self.len);
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let v = Self {
            kind: chunk_kind_of(r.u32("kind")?)?,
            client_id: AmlipId::read(&mut r, "client_id")?,
            task_id: r.u32("task_id")?,
            server_id: AmlipId::read(&mut r, "server_id")?,
            len: r.u64("len")?,
        };
        r.end()?;
        Ok(v)
    }
}

impl WireType for DirectAck {
    const TYPE_NAME: &'static str = "amlipx::direct_ack";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        w.string(&self.refused);
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let v = Self {
            refused: r.string("refused")?.to_owned(),
        };
        r.end()?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: &str) -> AmlipId {
        AmlipId::from_parts(n, [1, 2, 3, 4]).unwrap()
    }

    #[test]
    fn node_info_round_trips() {
        let info = NodeInfo {
            id: id("C"),
            version: EXTENSION_VERSION,
            kind: NodeKind::Computing,
            state: NodeState::Running,
            features: FEATURE_STREAM,
            chunk_size: 60_000,
            window: 2 << 20,
            heartbeat_ms: 500,
            jobs: vec![JobProgress {
                client_id: id("M"),
                task_id: 3,
                phase: JobPhase::Running,
                done: 4,
                total: 10,
            }],
            next_task: 12,
            open_tasks: vec![10, 11],
            known_peers: vec![id("C2")],
            direct_port: 40123,
            direct_addrs: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::LOCALHOST],
            handoff_slots: 32,
            jobs_done: 7,
        };
        assert_eq!(NodeInfo::from_payload(&info.to_payload()).unwrap(), info);
        assert!(info.supports_stream());
        assert!(!info.supports_direct(), "no FEATURE_DIRECT bit");
        let direct = NodeInfo {
            features: FEATURE_STREAM | FEATURE_DIRECT,
            ..info.clone()
        };
        assert!(direct.supports_direct());
        // The appended fields are the last 24 bytes: port, count, two addresses (big end
        // first in the number, so 10.0.0.2 is 0x0a000002), handoff slots, jobs done.
        let p = direct.to_payload();
        assert_eq!(&p[p.len() - 24..p.len() - 20], &40123u32.to_le_bytes());
        assert_eq!(
            &p[p.len() - 16..p.len() - 12],
            &0x0a00_0002u32.to_le_bytes()
        );
        assert_eq!(&p[p.len() - 8..p.len() - 4], &32u32.to_le_bytes());
        assert_eq!(&p[p.len() - 4..], &7u32.to_le_bytes());
        // A node that predates jobs_done reads as 0 done.
        let older = NodeInfo::from_payload(&p[..p.len() - 4]).unwrap();
        assert_eq!((older.handoff_slots, older.jobs_done), (32, 0));
        // A node that predates them all sends none: read as no direct path.
        let old = NodeInfo::from_payload(&p[..p.len() - 24]).unwrap();
        assert_eq!(
            (old.direct_port, old.direct_addrs.len(), old.handoff_slots),
            (0, 0, 0)
        );
        assert!(!old.supports_direct());
    }

    #[test]
    fn direct_frames_round_trip() {
        let hello = DirectHello {
            version: EXTENSION_VERSION,
            receiver_id: id("C"),
            sender_id: id("M"),
        };
        assert_eq!(
            DirectHello::from_payload(&hello.to_payload()).unwrap(),
            hello
        );
        let header = DirectHeader {
            kind: ChunkKind::Solution,
            client_id: id("M"),
            task_id: 7,
            server_id: id("C"),
            len: 10 << 20,
        };
        assert_eq!(
            DirectHeader::from_payload(&header.to_payload()).unwrap(),
            header
        );
        let mut bad = header.to_payload();
        bad[4] = 9; // kind
        assert!(DirectHeader::from_payload(&bad).is_err());
        let ack = DirectAck {
            refused: "checksum mismatch".into(),
        };
        assert_eq!(DirectAck::from_payload(&ack.to_payload()).unwrap(), ack);
    }

    #[test]
    fn chunk_round_trips_and_checks_bounds() {
        let c = Chunk {
            sender_id: id("M"),
            transfer_id: 9,
            total_len: 10,
            offset: 5,
            kind: ChunkKind::Job,
            client_id: id("M"),
            task_id: 1,
            server_id: id("C"),
            data: Bytes::from_static(b"hello"),
        };
        assert_eq!(Chunk::from_payload(&c.to_payload()).unwrap(), c);
        let bad = Chunk {
            offset: 6,
            ..c.clone()
        };
        assert!(Chunk::from_payload(&bad.to_payload()).is_err());
        let handoff = Chunk {
            kind: ChunkKind::Handoff,
            ..c
        };
        assert!(Chunk::from_payload(&handoff.to_payload()).is_err());
    }

    #[test]
    fn credit_round_trips() {
        let c = Credit {
            receiver_id: id("C"),
            transfer_id: u64::MAX,
            received: 1 << 40,
            status: CreditStatus::Complete,
        };
        assert_eq!(Credit::from_payload(&c.to_payload()).unwrap(), c);
    }

    #[test]
    fn hostile_job_count_is_refused() {
        let mut p = NodeInfo {
            id: id("C"),
            version: 1,
            kind: NodeKind::Computing,
            state: NodeState::Running,
            features: 0,
            chunk_size: 0,
            window: 0,
            heartbeat_ms: 0,
            jobs: vec![],
            next_task: 0,
            open_tasks: vec![],
            known_peers: vec![],
            direct_port: 0,
            direct_addrs: vec![],
            handoff_slots: 0,
            jobs_done: 0,
        }
        .to_payload();
        let n = p.len();
        // jobs.length sits before next_task, open_tasks.length, known_peers.length,
        // direct_port, direct_addrs.length, handoff_slots and jobs_done.
        p[n - 32..n - 28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(NodeInfo::from_payload(&p).is_err());
    }
}
