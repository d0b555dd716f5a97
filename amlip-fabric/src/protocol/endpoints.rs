//! A node's DDS side: its participant and every writer it uses, created on demand and kept.
//!
//! Kept apart from the protocol state ([`NodeCore`](super::core::NodeCore)) so that it can be
//! replaced whole: rustdds stops its participant for good when a poll is interrupted, which
//! Linux does to `epoll_wait` when a process is stopped and continued (SIGSTOP/SIGCONT,
//! `docker pause`, Ctrl-Z). The node then builds new endpoints under the same id and carries on.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::NodeConfig;
use crate::dds::topics::Service;
use crate::dds::{topics, DdsError, DropCounters, Participant, Profile, Writer};
use crate::wire::ext::{Chunk, Credit, NodeInfo};
use crate::wire::summary::MainSummary;
use crate::wire::{AmlipId, MsData, MsReference, MsRequest, Status, WireType};

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
pub struct StreamWriter {
    pub writer: Writer<Chunk>,
    carried: Cell<usize>,
    users: Cell<usize>,
}

/// A transfer's hold on a stream writer.
pub struct Lease(pub Rc<StreamWriter>);

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

/// One participant and the writers made from it.
pub struct Endpoints {
    pub status: Writer<Status>,
    pub info: Option<Writer<NodeInfo>>,
    requests: WriterCache<MsRequest>,
    references: WriterCache<MsReference>,
    payloads: WriterCache<MsData>,
    streams: StreamWriters,
    credits: WriterCache<Credit>,
    summaries: WriterCache<MainSummary>,
    /// Whose topics `requests` writes on.
    service: Service,
    // Last: fields drop in order, and writers must go before their participant.
    pub participant: Participant,
}

impl Endpoints {
    pub fn new(
        cfg: &NodeConfig,
        service: Service,
        dropped: Arc<DropCounters>,
    ) -> Result<Self, DdsError> {
        let participant =
            Participant::with_counters(cfg.domain, &cfg.network, cfg.trust.as_ref(), dropped)?;
        let status = participant.writer::<Status>(topics::STATUS, Profile::Status)?;
        let info = if cfg.extensions {
            Some(participant.writer::<NodeInfo>(topics::NODE_INFO, Profile::NodeInfo)?)
        } else {
            None
        };
        Ok(Self {
            status,
            info,
            requests: WriterCache::new(Profile::JobControl),
            references: WriterCache::new(Profile::JobControl),
            payloads: WriterCache::new(Profile::JobPayload),
            streams: StreamWriters::default(),
            credits: WriterCache::new(Profile::Credit),
            summaries: WriterCache::new(Profile::Summary),
            service,
            participant,
        })
    }

    /// The availability-request writer (mains).
    pub fn requests(&self) -> Result<Rc<Writer<MsRequest>>, DdsError> {
        self.requests
            .get(&self.participant, &self.service.request_availability())
    }

    /// A writer of `ms_reference` (targets, availability answers).
    pub fn references(&self, topic: &str) -> Result<Rc<Writer<MsReference>>, DdsError> {
        self.references.get(&self.participant, topic)
    }

    /// A writer of one-sample GENERIC payloads (jobs, solutions).
    pub fn payloads(&self, topic: &str) -> Result<Rc<Writer<MsData>>, DdsError> {
        self.payloads.get(&self.participant, topic)
    }

    /// The credit writer towards a peer that streams to us.
    pub fn credits(&self, peer: &AmlipId) -> Result<Rc<Writer<Credit>>, DdsError> {
        self.credits.get(&self.participant, &topics::credit(peer))
    }

    /// The main's summary writer (created on first use: only mains publish one).
    pub fn summary(&self) -> Result<Rc<Writer<MainSummary>>, DdsError> {
        self.summaries.get(&self.participant, topics::MAIN_SUMMARY)
    }

    /// Creates the stream writers towards `peer` ahead of their first use.
    pub fn prepare_streams(&self, peer: &AmlipId) -> Result<(), DdsError> {
        self.streams.prepare(&self.participant, peer)
    }

    /// The stream writer a transfer of `bytes` towards `peer` is to use.
    pub fn stream(&self, peer: &AmlipId, bytes: usize) -> Result<Lease, DdsError> {
        self.streams.lease(&self.participant, peer, bytes)
    }
}
