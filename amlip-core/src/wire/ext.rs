//! amlip's extension types (see `idl/amlipx.idl`).
//!
//! They travel on `amlipx/...` topics with `amlipx::...` type names. AML-IP nodes never create
//! these topics, so DDS never matches them with AML-IP endpoints and AML-IP never sees a byte of
//! them: the AML-IP wire stays exactly as AML-IP expects. An amlip node learns that a peer is an
//! amlip node (and what it supports) from the peer's [`NodeInfo`]; with a peer that never
//! announces one it speaks plain AML-IP.

use bytes::Bytes;

use super::cdr::{ByteOrder, CdrReader, CdrWriter};
use super::{AmlipId, NodeKind, NodeState, TaskId, WireError, WireType};

/// Version of the extension protocol. A peer announcing another version is treated as plain AML-IP.
pub const EXTENSION_VERSION: u32 = 1;

/// Feature bit: the node sends and receives large payloads as a credit-windowed chunk stream.
pub const FEATURE_STREAM: u32 = 1;

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
}

impl NodeInfo {
    /// Whether large payloads may go to this node as a chunk stream.
    pub fn supports_stream(&self) -> bool {
        self.version == EXTENSION_VERSION && self.features & FEATURE_STREAM != 0
    }
}

/// What a transfer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// A job, main to computing node.
    Job,
    /// A solution, computing node to main.
    Solution,
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
        })
    }
}

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
        w.u32(match kind {
            ChunkKind::Job => 1,
            ChunkKind::Solution => 2,
        });
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
        let kind = match r.u32("kind")? {
            1 => ChunkKind::Job,
            2 => ChunkKind::Solution,
            n => {
                return Err(WireError::Invalid {
                    field: "kind",
                    reason: format!("unknown chunk kind {n}"),
                })
            }
        };
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
        };
        assert_eq!(NodeInfo::from_payload(&info.to_payload()).unwrap(), info);
        assert!(info.supports_stream());
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
        let bad = Chunk { offset: 6, ..c };
        assert!(Chunk::from_payload(&bad.to_payload()).is_err());
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
        }
        .to_payload();
        let n = p.len();
        // jobs.length sits before next_task, open_tasks.length and known_peers.length.
        p[n - 16..n - 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(NodeInfo::from_payload(&p).is_err());
    }
}
