//! What a node knows of the other nodes: whether they speak amlip's extensions, whether they are
//! alive, and which jobs they say they hold.
//!
//! A peer counts as gone when its DDS participant is lost, when it published status `dropped`,
//! or (for amlip peers, which heartbeat) when its last heartbeat is older than the liveness
//! timeout. Hearing from it again clears that: a partitioned node that comes back is alive.
//! Silence while this node itself was stopped is not held against peers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::dds::{ParticipantKey, SourceTime};
use crate::wire::ext::NodeInfo;
use crate::wire::{AmlipId, NodeKind, NodeState, Status, TaskId};

/// Why a peer is considered gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    ParticipantLost,
    StatusDropped,
    HeartbeatTimeout,
}

impl std::fmt::Display for GoneReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GoneReason::ParticipantLost => "its DDS participant was lost",
            GoneReason::StatusDropped => "it published status dropped",
            GoneReason::HeartbeatTimeout => "its heartbeats stopped",
        })
    }
}

/// Participants that published a peer's status or heartbeat, at most this many remembered.
const MAX_VOUCHERS: usize = 4;

#[derive(Debug)]
struct Peer {
    participant: Option<ParticipantKey>,
    /// Participants that published this peer's status or heartbeat (newest last).
    vouchers: Vec<ParticipantKey>,
    info: Option<NodeInfo>,
    info_at: Option<Instant>,
    info_written_at: Option<SourceTime>,
    /// The peer (a main) listed us in a heartbeat: it has discovered us.
    knows_me: bool,
    kind: Option<NodeKind>,
    dropped: bool,
    lost: bool,
}

/// The peers one node has heard of.
#[derive(Debug)]
pub struct PeerTable {
    me: AmlipId,
    peers: HashMap<AmlipId, Peer>,
    liveness_timeout: Duration,
    /// When this node last resumed after being stopped (see [`PeerTable::resumed`]).
    resumed_at: Option<Instant>,
}

impl PeerTable {
    pub fn new(me: AmlipId, liveness_timeout: Duration) -> Self {
        Self {
            me,
            peers: HashMap::new(),
            liveness_timeout,
            resumed_at: None,
        }
    }

    /// This node was stopped (SIGSTOP, `docker pause`) or starved until `now`: it heard
    /// nothing meanwhile, so every peer gets a full liveness timeout from now before its
    /// heartbeats count as stopped.
    pub fn resumed(&mut self, now: Instant) {
        self.resumed_at = Some(now);
    }

    fn entry(&mut self, id: &AmlipId) -> &mut Peer {
        self.peers.entry(id.clone()).or_insert(Peer {
            participant: None,
            vouchers: Vec::new(),
            info: None,
            info_at: None,
            info_written_at: None,
            knows_me: false,
            kind: None,
            dropped: false,
            lost: false,
        })
    }

    /// Any sample in the name of `id` written by participant `from` (a chunk): it is there.
    /// Only a status or heartbeat ties `id` to a participant for good (see `vouch`).
    pub fn heard(&mut self, id: &AmlipId, from: ParticipantKey) {
        if *id == self.me {
            return;
        }
        let p = self.entry(id);
        p.participant.get_or_insert(from);
        p.lost = false;
    }

    /// `from` published `id`'s status or heartbeat: `id` lives on `from`.
    fn vouch(&mut self, id: &AmlipId, from: ParticipantKey) {
        let p = self.entry(id);
        p.participant = Some(from);
        p.lost = false;
        if !p.vouchers.contains(&from) {
            p.vouchers.push(from);
            if p.vouchers.len() > MAX_VOUCHERS {
                p.vouchers.remove(0);
            }
        }
    }

    /// Whether `id` is a main whose status or heartbeat participant `from` published: a
    /// request `from` wrote in `id`'s name is `id`'s.
    pub fn vouched(&self, id: &AmlipId, from: ParticipantKey) -> bool {
        self.peers.get(id).is_some_and(|p| {
            matches!(p.kind, Some(NodeKind::Main | NodeKind::Edge)) && p.vouchers.contains(&from)
        })
    }

    /// A heartbeat, written at `written_at` by the peer's clock. Returns true the first time
    /// this peer announces itself.
    pub fn on_info(
        &mut self,
        info: NodeInfo,
        from: ParticipantKey,
        written_at: Option<SourceTime>,
        now: Instant,
    ) -> bool {
        if info.id == self.me {
            return false;
        }
        let id = info.id.clone();
        self.vouch(&id, from);
        let lists_me = info.known_peers.contains(&self.me);
        let p = self.entry(&id);
        p.knows_me |= lists_me;
        let first = p.info.is_none();
        p.kind = Some(info.kind);
        p.dropped = info.state == NodeState::Dropped;
        p.info = Some(info);
        p.info_at = Some(now);
        p.info_written_at = written_at;
        first
    }

    pub fn on_status(&mut self, status: &Status, from: ParticipantKey) {
        if status.id == self.me {
            return;
        }
        self.vouch(&status.id, from);
        let p = self.entry(&status.id);
        p.kind = Some(status.node_kind);
        p.dropped = status.state == NodeState::Dropped;
    }

    /// A DDS participant was lost: every node it hosted is gone. Returns those nodes.
    pub fn on_participant_lost(&mut self, key: ParticipantKey) -> Vec<AmlipId> {
        let mut ids = Vec::new();
        for (id, p) in &mut self.peers {
            if p.participant == Some(key) {
                p.lost = true;
                ids.push(id.clone());
            }
        }
        ids
    }

    /// The peer's latest heartbeat, if it is an amlip node.
    pub fn info(&self, id: &AmlipId) -> Option<&NodeInfo> {
        self.peers.get(id).and_then(|p| p.info.as_ref())
    }

    /// Whether the peer has said (in a heartbeat) that it discovered us.
    pub fn knows_me(&self, id: &AmlipId) -> bool {
        self.peers.get(id).is_some_and(|p| p.knows_me)
    }

    /// The peer's latest heartbeat with the time the peer wrote it.
    pub fn info_with_time(&self, id: &AmlipId) -> Option<(&NodeInfo, Option<SourceTime>)> {
        let p = self.peers.get(id)?;
        Some((p.info.as_ref()?, p.info_written_at))
    }

    /// Why `id` is gone, if it is.
    pub fn gone(&self, id: &AmlipId, now: Instant) -> Option<GoneReason> {
        let p = self.peers.get(id)?;
        if p.lost {
            Some(GoneReason::ParticipantLost)
        } else if p.dropped {
            Some(GoneReason::StatusDropped)
        } else if p.info_at.is_some_and(|at| {
            let since = self.resumed_at.map_or(at, |r| r.max(at));
            now.saturating_duration_since(since) > self.liveness_timeout
        }) {
            Some(GoneReason::HeartbeatTimeout)
        } else {
            None
        }
    }

    /// For an amlip peer with a heartbeat newer than `since`: whether it lists (client, task).
    /// `None` when we cannot tell (not an amlip peer, or no heartbeat since then).
    pub fn holds(
        &self,
        id: &AmlipId,
        client: &AmlipId,
        task: TaskId,
        since: Instant,
    ) -> Option<bool> {
        let p = self.peers.get(id)?;
        let at = p.info_at?;
        if at <= since {
            return None;
        }
        let info = p.info.as_ref()?;
        Some(
            info.jobs
                .iter()
                .any(|j| j.client_id == *client && j.task_id == task),
        )
    }

    /// Peers of `kind` that are not gone.
    pub fn alive_of_kind(&self, kind: NodeKind, now: Instant) -> Vec<AmlipId> {
        let mut v: Vec<AmlipId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.kind == Some(kind))
            .map(|(id, _)| id.clone())
            .filter(|id| self.gone(id, now).is_none())
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ext::{EXTENSION_VERSION, FEATURE_STREAM};

    fn id(n: &str) -> AmlipId {
        AmlipId::from_parts(n, [0, 0, 0, 1]).unwrap()
    }

    fn info(n: &str) -> NodeInfo {
        NodeInfo {
            id: id(n),
            version: EXTENSION_VERSION,
            kind: NodeKind::Computing,
            state: NodeState::Running,
            features: FEATURE_STREAM,
            chunk_size: 60_000,
            window: 1 << 20,
            heartbeat_ms: 500,
            jobs: vec![],
            next_task: 0,
            open_tasks: vec![],
            known_peers: vec![],
            direct_port: 0,
            direct_addrs: vec![],
            handoff_slots: 0,
            jobs_done: 0,
        }
    }

    #[test]
    fn heartbeat_timeout_and_recovery() {
        let mut t = PeerTable::new(id("me"), Duration::from_secs(5));
        let k = ParticipantKey::of_writer(rustdds::GUID::GUID_UNKNOWN);
        let t0 = Instant::now();
        assert!(t.on_info(info("c"), k, None, t0));
        assert!(t.info(&id("c")).is_some_and(NodeInfo::supports_stream));
        assert_eq!(t.gone(&id("c"), t0 + Duration::from_secs(1)), None);
        assert_eq!(
            t.gone(&id("c"), t0 + Duration::from_secs(6)),
            Some(GoneReason::HeartbeatTimeout)
        );
        assert!(!t.on_info(info("c"), k, None, t0 + Duration::from_secs(7)));
        assert_eq!(t.gone(&id("c"), t0 + Duration::from_secs(8)), None);
    }

    #[test]
    fn silence_while_we_were_stopped_is_forgiven() {
        let mut t = PeerTable::new(id("me"), Duration::from_secs(5));
        let k = ParticipantKey::of_writer(rustdds::GUID::GUID_UNKNOWN);
        let t0 = Instant::now();
        t.on_info(info("c"), k, None, t0);
        // We were stopped from t0+1 s to t0+10 s.
        t.resumed(t0 + Duration::from_secs(10));
        assert_eq!(t.gone(&id("c"), t0 + Duration::from_secs(11)), None);
        assert_eq!(
            t.gone(&id("c"), t0 + Duration::from_secs(16)),
            Some(GoneReason::HeartbeatTimeout)
        );
    }

    #[test]
    fn participant_loss_marks_its_nodes() {
        let mut t = PeerTable::new(id("me"), Duration::from_secs(5));
        let k = ParticipantKey::of_writer(rustdds::GUID::GUID_UNKNOWN);
        t.heard(&id("c"), k);
        assert_eq!(t.on_participant_lost(k), vec![id("c")]);
        assert_eq!(
            t.gone(&id("c"), Instant::now()),
            Some(GoneReason::ParticipantLost)
        );
        t.heard(&id("c"), k);
        assert_eq!(t.gone(&id("c"), Instant::now()), None);
    }

    #[test]
    fn plain_aml_ip_peers_never_stream() {
        let mut t = PeerTable::new(id("me"), Duration::from_secs(5));
        let k = ParticipantKey::of_writer(rustdds::GUID::GUID_UNKNOWN);
        t.heard(&id("c"), k);
        assert!(!t.info(&id("c")).is_some_and(NodeInfo::supports_stream));
        assert_eq!(t.holds(&id("c"), &id("me"), 0, Instant::now()), None);
    }
}
