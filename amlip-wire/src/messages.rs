//! AML-IP v0.3's message types, field for field and byte for byte (see `idl/amlip.idl`).

use bytes::Bytes;

use super::cdr::{ByteOrder, CdrReader, CdrWriter};
use super::{AmlipId, TaskId, WireError, WireType};

/// `amlip::ms_request`: a main asks who is available for task `task_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsRequest {
    /// The main.
    pub client_id: AmlipId,
    /// The main's task id.
    pub task_id: TaskId,
}

/// `amlip::ms_reference`: a computing node answers availability (`job_reply_available_<main>`),
/// or a main names the chosen computing node (`job_task_target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsReference {
    /// The main.
    pub client_id: AmlipId,
    /// The main's task id.
    pub task_id: TaskId,
    /// The computing node.
    pub server_id: AmlipId,
}

/// `amlip::ms_data_GENERIC`: a job (main to computing) or a solution (computing to main).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsData {
    /// The main.
    pub client_id: AmlipId,
    /// The main's task id.
    pub task_id: TaskId,
    /// The computing node.
    pub server_id: AmlipId,
    /// The GENERIC payload. On decode this is a zero-copy slice of the received sample.
    pub data: Bytes,
}

/// `amlip::status`: what a node is and whether it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The node.
    pub id: AmlipId,
    /// What it is.
    pub node_kind: NodeKind,
    /// How it is.
    pub state: NodeState,
}

/// `amlip::AMLIP-MODEL-STATISTICS`: a model sender's statistics blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStatistics {
    /// The model.
    pub name: String,
    /// The computing node.
    pub server_id: AmlipId,
    /// The payload.
    pub data: Bytes,
}

/// AML-IP's node kinds, with their wire numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// Not said.
    Undetermined,
    /// A discovery server.
    Discovery,
    /// A DDS router agent.
    Agent,
    /// Sends jobs.
    Main,
    /// Computes jobs.
    Computing,
    /// Watches nodes' status.
    Status,
    /// A meta node.
    Meta,
    /// Sends inference data.
    Edge,
    /// Computes inferences.
    Inference,
    /// Requests models.
    ModelReceiver,
    /// Hands models over.
    ModelSender,
    /// A FIWARE bridge.
    Fiware,
    /// A number AML-IP v0.3 does not define; kept so newer peers are not rejected.
    Other(u32),
}

/// AML-IP's node states, with their wire numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Not said.
    Unknown,
    /// Working.
    Running,
    /// Up, but taking no work.
    Stopped,
    /// Gone.
    Dropped,
    /// A value this build does not know.
    Other(u32),
}

const KINDS: [NodeKind; 12] = [
    NodeKind::Undetermined,
    NodeKind::Discovery,
    NodeKind::Agent,
    NodeKind::Main,
    NodeKind::Computing,
    NodeKind::Status,
    NodeKind::Meta,
    NodeKind::Edge,
    NodeKind::Inference,
    NodeKind::ModelReceiver,
    NodeKind::ModelSender,
    NodeKind::Fiware,
];

impl NodeKind {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            NodeKind::Other(n) => n,
            k => KINDS.iter().position(|x| *x == k).expect("listed") as u32,
        }
    }

    /// From the wire value.
    pub fn from_u32(n: u32) -> Self {
        KINDS.get(n as usize).copied().unwrap_or(NodeKind::Other(n))
    }
}

impl NodeState {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            NodeState::Unknown => 0,
            NodeState::Running => 1,
            NodeState::Stopped => 2,
            NodeState::Dropped => 3,
            NodeState::Other(n) => n,
        }
    }

    /// From the wire value.
    pub fn from_u32(n: u32) -> Self {
        match n {
            0 => NodeState::Unknown,
            1 => NodeState::Running,
            2 => NodeState::Stopped,
            3 => NodeState::Dropped,
            n => NodeState::Other(n),
        }
    }
}

impl WireType for MsRequest {
    const TYPE_NAME: &'static str = "amlip::ms_request";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        self.client_id.write(&mut w);
        w.u32(self.task_id);
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let v = Self {
            client_id: AmlipId::read(&mut r, "client_id")?,
            task_id: r.u32("task_id")?,
        };
        r.end()?;
        Ok(v)
    }
}

impl WireType for MsReference {
    const TYPE_NAME: &'static str = "amlip::ms_reference";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        self.client_id.write(&mut w);
        w.u32(self.task_id);
        self.server_id.write(&mut w);
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let v = Self {
            client_id: AmlipId::read(&mut r, "client_id")?,
            task_id: r.u32("task_id")?,
            server_id: AmlipId::read(&mut r, "server_id")?,
        };
        r.end()?;
        Ok(v)
    }
}

impl WireType for MsData {
    const TYPE_NAME: &'static str = "amlip::ms_data_GENERIC";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::with_capacity(self.data.len() + 96);
        self.client_id.write(&mut w);
        w.u32(self.task_id);
        self.server_id.write(&mut w);
        w.generic(&self.data);
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let v = Self {
            client_id: AmlipId::read(&mut r, "client_id")?,
            task_id: r.u32("task_id")?,
            server_id: AmlipId::read(&mut r, "server_id")?,
            data: r.generic(body, "data")?,
        };
        r.end()?;
        Ok(v)
    }
}

/// `amlip::rpc_requestGENERIC`: a model receiver asks a model sender for a model. The
/// layout is `ms_data_GENERIC`'s (`client_id` is the receiver, `server_id` the sender); only
/// the type name differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcRequest(pub MsData);

/// `amlip::rpc_replyGENERIC`: a model sender's answer, laid out as `ms_data_GENERIC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcReply(pub MsData);

impl WireType for RpcRequest {
    const TYPE_NAME: &'static str = "amlip::rpc_requestGENERIC";

    fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        MsData::decode(body, order).map(Self)
    }
}

impl WireType for RpcReply {
    const TYPE_NAME: &'static str = "amlip::rpc_replyGENERIC";

    fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        MsData::decode(body, order).map(Self)
    }
}

impl WireType for Status {
    const TYPE_NAME: &'static str = "amlip::status";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        self.id.write(&mut w);
        w.u32(self.node_kind.to_u32());
        w.u32(self.state.to_u32());
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let v = Self {
            id: AmlipId::read(&mut r, "id")?,
            node_kind: NodeKind::from_u32(r.u32("node_kind")?),
            state: NodeState::from_u32(r.u32("state")?),
        };
        r.end()?;
        Ok(v)
    }
}

impl WireType for ModelStatistics {
    const TYPE_NAME: &'static str = "amlip::AMLIP-MODEL-STATISTICS";

    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::with_capacity(self.data.len() + 96);
        w.string(&self.name);
        w.u32(self.data.len() as u32);
        self.server_id.write(&mut w);
        w.octets(&self.data);
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let name = r.string("name")?.to_owned();
        let size = r.u32("size")? as usize;
        let server_id = AmlipId::read(&mut r, "server_id")?;
        let start = r.position();
        r.octets(size, "data")?;
        r.end()?;
        Ok(Self {
            name,
            server_id,
            data: body.slice(start..start + size),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn main_id() -> AmlipId {
        AmlipId::from_parts("AmlipMainCpp", [0x83, 0x63, 0xf2, 0x1d]).unwrap()
    }

    fn computing_id() -> AmlipId {
        AmlipId::from_parts("AmlipComputingCpp", [0xf6, 0x55, 0x80, 0x1f]).unwrap()
    }

    /// The vectors of `shared/docs/wire-vectors.txt`, captured from real AML-IP v0.3 nodes.
    const VECTORS: &str = include_str!("../tests/data/wire-vectors.txt");

    fn vectors() -> Vec<(String, Vec<u8>)> {
        VECTORS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (topic, payload) = l.split_once(' ').unwrap();
                (topic.to_owned(), hex(payload.trim()))
            })
            .collect()
    }

    #[test]
    fn spec_example_request() {
        let r = MsRequest {
            client_id: AmlipId::from_parts("Main", [0x11, 0x22, 0x33, 0x44]).unwrap(),
            task_id: 7,
        };
        assert_eq!(
            r.to_payload(),
            hex("00010000050000004d61696e001122334400000007000000")
        );
    }

    #[test]
    fn encodes_every_vector_exactly() {
        let v = vectors();
        assert_eq!(v.len(), 10, "wire-vectors.txt has 10 samples");
        for (i, (topic, bytes)) in v.iter().enumerate() {
            let task_id = (i / 5) as u32;
            let (job, solution) = if task_id == 0 {
                ("abcdefghijklmnop", "ABCDEFGHIJKLMNOP")
            } else {
                ("bcdefghijklmnopq", "BCDEFGHIJKLMNOPQ")
            };
            let encoded = match topic.as_str() {
                "amlip/job_request_availability" => MsRequest {
                    client_id: main_id(),
                    task_id,
                }
                .to_payload(),
                t if t.starts_with("amlip/job_reply_available_")
                    || t == "amlip/job_task_target" =>
                {
                    MsReference {
                        client_id: main_id(),
                        task_id,
                        server_id: computing_id(),
                    }
                    .to_payload()
                }
                t if t.starts_with("amlip/job_task_data_") => MsData {
                    client_id: main_id(),
                    task_id,
                    server_id: computing_id(),
                    data: Bytes::from(job),
                }
                .to_payload(),
                t if t.starts_with("amlip/job_task_solution_") => MsData {
                    client_id: main_id(),
                    task_id,
                    server_id: computing_id(),
                    data: Bytes::from(solution),
                }
                .to_payload(),
                other => panic!("unexpected topic {other}"),
            };
            assert_eq!(&encoded, bytes, "vector {i} on {topic}");
        }
    }

    #[test]
    fn decodes_every_vector() {
        for (i, (topic, bytes)) in vectors().iter().enumerate() {
            let task_id = (i / 5) as u32;
            if topic == "amlip/job_request_availability" {
                let r = MsRequest::from_payload(bytes).unwrap();
                assert_eq!((r.client_id, r.task_id), (main_id(), task_id));
            } else if topic.starts_with("amlip/job_reply_available_")
                || topic == "amlip/job_task_target"
            {
                let r = MsReference::from_payload(bytes).unwrap();
                assert_eq!(
                    (r.client_id, r.task_id, r.server_id),
                    (main_id(), task_id, computing_id())
                );
                // The topic name carries the main's printed id.
                if let Some(suffix) = topic.strip_prefix("amlip/job_reply_available_") {
                    assert_eq!(suffix, main_id().to_string());
                }
            } else {
                let d = MsData::from_payload(bytes).unwrap();
                assert_eq!(
                    (d.client_id, d.task_id, d.server_id),
                    (main_id(), task_id, computing_id())
                );
                assert_eq!(d.data.len(), 16);
                let is_solution = topic.starts_with("amlip/job_task_solution_");
                assert_eq!(d.data.iter().all(|b| b.is_ascii_uppercase()), is_solution);
                if let Some(suffix) = topic.strip_prefix("amlip/job_task_data_") {
                    assert_eq!(suffix, computing_id().to_string());
                }
            }
        }
    }

    #[test]
    fn only_alignment_padding_may_follow_the_last_field() {
        let (_, request) = &vectors()[0];
        assert!(MsRequest::from_payload(request).is_ok());
        let mut longer = request.clone();
        longer.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            MsRequest::from_payload(&longer).unwrap_err(),
            WireError::Trailing(4)
        );
        let mut garbage = request.clone();
        garbage.push(7);
        assert_eq!(
            MsRequest::from_payload(&garbage).unwrap_err(),
            WireError::Trailing(1)
        );
        // The captured job ends with 3 zero bytes of padding, which is fine.
        let (_, job) = &vectors()[3];
        assert_eq!(&job[job.len() - 3..], &[0, 0, 0]);
        assert!(MsData::from_payload(job).is_ok());
    }

    #[test]
    fn decodes_big_endian() {
        // ms_reference "M"+01020304, task 258, "S"+05060708 in CDR_BE.
        let be = hex(
            "0000000000000002 4d00 01020304 0000 00000102 00000002 5300 05060708"
                .replace(' ', "")
                .as_str(),
        );
        let r = MsReference::from_payload(&be).unwrap();
        assert_eq!(r.client_id.to_string(), "M.01.02.03.04");
        assert_eq!(r.task_id, 258);
        assert_eq!(r.server_id.to_string(), "S.05.06.07.08");
    }

    #[test]
    fn status_round_trips() {
        let s = Status {
            id: main_id(),
            node_kind: NodeKind::Computing,
            state: NodeState::Dropped,
        };
        let p = s.to_payload();
        assert_eq!(&p[p.len() - 8..], &[4, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(Status::from_payload(&p).unwrap(), s);
        assert_eq!(NodeKind::from_u32(11), NodeKind::Fiware);
        assert_eq!(NodeKind::from_u32(99), NodeKind::Other(99));
    }

    /// `AMLIP-MODEL-STATISTICS` as the spec lays it out: `string name; u32 size; AmlipId
    /// server_id; size raw bytes`, and the RPC types exactly `ms_data_GENERIC`'s bytes.
    #[test]
    fn model_manager_types_are_laid_out_as_the_spec_says() {
        let sender = AmlipId::from_parts("S", [1, 2, 3, 4]).unwrap();
        let m = ModelStatistics {
            name: "m".into(),
            server_id: sender.clone(),
            data: Bytes::from_static(b"xy"),
        };
        let want: Vec<u8> = [
            &[0u8, 1, 0, 0][..],    // CDR_LE
            &[2, 0, 0, 0, b'm', 0], // name "m" (length with the NUL)
            &[0, 0],                // pad to 4
            &[2, 0, 0, 0],          // size
            &[2, 0, 0, 0, b'S', 0], // server_id name
            &[1, 2, 3, 4],          // server_id random bytes
            b"xy",                  // data, raw
        ]
        .concat();
        assert_eq!(m.to_payload(), want);
        let d = MsData {
            client_id: main_id(),
            task_id: 9,
            server_id: sender,
            data: Bytes::from_static(b"{\"model\": \"m\"}"),
        };
        assert_eq!(RpcRequest(d.clone()).to_payload(), d.to_payload());
        assert_eq!(RpcReply(d.clone()).to_payload(), d.to_payload());
        assert_eq!(RpcRequest::from_payload(&d.to_payload()).unwrap().0, d);
        assert_eq!(RpcReply::from_payload(&d.to_payload()).unwrap().0, d);
    }

    #[test]
    fn model_statistics_round_trips() {
        let m = ModelStatistics {
            name: "stats".into(),
            server_id: computing_id(),
            data: Bytes::from_static(b"{\"acc\":0.9}"),
        };
        assert_eq!(ModelStatistics::from_payload(&m.to_payload()).unwrap(), m);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng_state = 0x1234_5678u32;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    rng_state = rng_state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (rng_state >> 16) as u8
                })
                .collect();
            let _ = MsRequest::from_payload(&bytes);
            let _ = MsReference::from_payload(&bytes);
            let _ = MsData::from_payload(&bytes);
            let _ = Status::from_payload(&bytes);
            let _ = ModelStatistics::from_payload(&bytes);
        }
        // A GENERIC claiming 4 GB must be refused, not allocated.
        let mut p = MsData {
            client_id: main_id(),
            task_id: 0,
            server_id: computing_id(),
            data: Bytes::from_static(b"x"),
        }
        .to_payload();
        let at = p
            .windows(6)
            .position(|w| w == [1, 0, 0, 0, 1, b'x'])
            .expect("GENERIC header present");
        p[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            MsData::from_payload(&p),
            Err(WireError::Truncated { field: "data", .. })
        ));
    }
}
