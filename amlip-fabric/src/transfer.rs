//! Large payloads between amlip nodes: a stream of bounded chunks under a credit window.
//!
//! rustdds sends a big sample as one burst of 256-byte fragments with no pacing; once the
//! kernel drops a datagram, repair crawls at 64 KiB per heartbeat round (see
//! `shared/docs/rustdds-notes.md`). So between amlip nodes a payload above
//! [`StreamConfig::threshold`](crate::config::StreamConfig) travels as chunks of at most
//! `chunk_size` bytes (one loopback datagram, no fragmentation) with at most `window` bytes
//! unacknowledged: the receiver returns a [`Credit`] every quarter window, and a final
//! `Complete` credit once the whole message was handed to the node, an application-level
//! acknowledgment. A transfer that gets no credit for `stall_timeout` fails, and the caller
//! (the main) re-sends the job elsewhere. Peers that never announced the stream feature get a
//! single GENERIC sample, as AML-IP expects.
//!
//! The receiving half is pure state (chunks in, messages and credits out) so it is tested
//! without DDS; the sending half writes through a [`Writer`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::config::StreamConfig;
use crate::dds::{DdsError, Writer};
use crate::wire::ext::{Chunk, ChunkKind, Credit, CreditStatus};
use crate::wire::{AmlipId, TaskId};

/// One job or solution, whichever way it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub kind: ChunkKind,
    pub client_id: AmlipId,
    pub task_id: TaskId,
    pub server_id: AmlipId,
    pub data: Bytes,
}

/// Why a stream transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{peer} granted no credit for {stalled:?} ({acked} of {total} bytes acknowledged)")]
    Stalled {
        peer: AmlipId,
        stalled: Duration,
        acked: u64,
        total: u64,
    },
    #[error("{peer} rejected the transfer after {acked} bytes")]
    Rejected { peer: AmlipId, acked: u64 },
    #[error(transparent)]
    Dds(#[from] DdsError),
    #[error(transparent)]
    Direct(#[from] crate::direct::DirectError),
}

/// What a received chunk amounted to.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// The message is complete.
    Complete(Envelope),
    /// More to come; `received` of `total` bytes are in.
    Progress {
        client_id: AmlipId,
        task_id: TaskId,
        received: u64,
        total: u64,
    },
    /// The transfer was refused (see the log for why).
    Rejected,
    /// A chunk of a transfer already refused or finished: ignored.
    Ignored,
}

#[derive(Debug, Clone, Copy)]
struct CreditState {
    received: u64,
    status: CreditStatus,
}

struct Reassembly {
    buf: Vec<u8>,
    total: u64,
    credited: u64,
    last: Instant,
}

/// Smallest step in which a reassembly buffer grows.
const GROW_MIN: usize = 1 << 20;

/// Bytes held by unfinished incoming payloads (chunk streams and the direct path alike): in
/// all, and per sending peer, within the node's caps. Buffers grow as bytes arrive (never to
/// what a first chunk or header merely announces), so this bounds what peers can make a node
/// allocate.
pub struct Budget {
    held: RefCell<Held>,
    /// Cap on all peers together.
    max_incoming: usize,
    /// Cap on one peer.
    max_per_peer: usize,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_peer: HashMap<AmlipId, usize>,
}

impl Budget {
    pub fn new(cfg: &StreamConfig) -> Self {
        Self {
            held: RefCell::default(),
            max_incoming: cfg.max_incoming,
            max_per_peer: cfg.max_message,
        }
    }

    /// Makes room for `more` bytes in `buf`, a payload of `total` bytes from `peer` being
    /// received: grows it in steps (doubling, at least [`GROW_MIN`], at most to `total`)
    /// within the caps, and counts the growth.
    pub fn grow(
        &self,
        peer: &AmlipId,
        buf: &mut Vec<u8>,
        total: u64,
        more: usize,
    ) -> Result<(), String> {
        let len = buf.len();
        if buf.capacity() - len >= more {
            return Ok(());
        }
        let total = usize::try_from(total).unwrap_or(usize::MAX);
        let want = (len * 2)
            .max(len + more)
            .max(GROW_MIN)
            .min(total.max(len + more));
        let before = buf.capacity();
        let extra = want - before;
        {
            let held = self.held.borrow();
            if held.total + extra > self.max_incoming {
                return Err(format!(
                    "unfinished transfers would hold {} bytes, over this node's cap of {}",
                    held.total + extra,
                    self.max_incoming
                ));
            }
            let of_peer = held.by_peer.get(peer).copied().unwrap_or(0);
            if of_peer + extra > self.max_per_peer {
                return Err(format!(
                    "this peer's unfinished transfers would hold {} bytes, over the per-peer cap of {}",
                    of_peer + extra,
                    self.max_per_peer
                ));
            }
        }
        buf.reserve_exact(want - len);
        self.add(peer, buf.capacity() - before);
        Ok(())
    }

    fn add(&self, peer: &AmlipId, bytes: usize) {
        let mut held = self.held.borrow_mut();
        held.total += bytes;
        *held.by_peer.entry(peer.clone()).or_default() += bytes;
    }

    /// Forgets `bytes` held for `peer` (a buffer completed, handed on or dropped).
    pub fn release(&self, peer: &AmlipId, bytes: usize) {
        let mut held = self.held.borrow_mut();
        held.total = held.total.saturating_sub(bytes);
        if let Some(b) = held.by_peer.get_mut(peer) {
            *b = b.saturating_sub(bytes);
            if *b == 0 {
                held.by_peer.remove(peer);
            }
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.held.borrow().total
    }
}

/// Both halves of one node's transfers. Lives on the node's engine thread.
pub struct Transfers {
    me: AmlipId,
    cfg: StreamConfig,
    next_id: Cell<u64>,
    outgoing: RefCell<HashMap<u64, watch::Sender<CreditState>>>,
    incoming: RefCell<HashMap<(AmlipId, u64), Reassembly>>,
    /// Capacity of the `incoming` buffers, in all and per peer (shared with the direct path).
    budget: Rc<Budget>,
    /// Transfers refused or finished recently, so their stray chunks are ignored quietly.
    closed: RefCell<HashMap<(AmlipId, u64), Instant>>,
}

impl Transfers {
    pub fn new(me: AmlipId, cfg: StreamConfig, budget: Rc<Budget>) -> Self {
        Self {
            me,
            cfg,
            // Start from a random point: ids need only be unique per sender, but a random start
            // makes stale chunks from an earlier incarnation impossible to confuse.
            next_id: Cell::new(rand::random::<u32>() as u64),
            outgoing: RefCell::new(HashMap::new()),
            incoming: RefCell::new(HashMap::new()),
            budget,
            closed: RefCell::new(HashMap::new()),
        }
    }

    /// Routes a credit to the transfer it belongs to.
    pub fn on_credit(&self, credit: &Credit) {
        if let Some(tx) = self.outgoing.borrow().get(&credit.transfer_id) {
            tx.send_replace(CreditState {
                received: credit.received,
                status: credit.status,
            });
        }
    }

    /// Sends `env` to `peer` as a chunk stream through `writer` (a writer on the peer's stream
    /// topic). `peer_chunk`/`peer_window` are what the peer announced (0 = no limit).
    /// Resolves once the peer acknowledged the whole message.
    pub async fn send(
        &self,
        writer: &Writer<Chunk>,
        peer: &AmlipId,
        peer_chunk: usize,
        peer_window: usize,
        env: &Envelope,
    ) -> Result<(), TransferError> {
        let chunk = limit(self.cfg.chunk_size, peer_chunk).max(1);
        let window = limit(self.cfg.window, peer_window).max(chunk);
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let (tx, mut rx) = watch::channel(CreditState {
            received: 0,
            status: CreditStatus::Progress,
        });
        self.outgoing.borrow_mut().insert(id, tx);
        let _unregister = Unregister(&self.outgoing, id);

        let total = env.data.len() as u64;
        let mut sent = 0u64;
        let mut acked = 0u64;
        let write_chunk = |from: u64, to: u64| {
            Bytes::from(Chunk::encode_parts(
                &self.me,
                id,
                total,
                from,
                env.kind,
                &env.client_id,
                env.task_id,
                &env.server_id,
                &env.data[from as usize..to as usize],
            ))
        };
        if total == 0 {
            // An empty message is one empty chunk.
            writer.write_encoded(write_chunk(0, 0)).await?;
        }
        loop {
            while sent < total && sent - acked < window as u64 {
                let end = (sent + chunk as u64).min(total);
                writer.write_encoded(write_chunk(sent, end)).await?;
                sent = end;
            }
            let stall = self.cfg.stall_timeout;
            match tokio::time::timeout(stall, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    return Err(TransferError::Stalled {
                        peer: peer.clone(),
                        stalled: stall,
                        acked,
                        total,
                    })
                }
            }
            let state = *rx.borrow_and_update();
            match state.status {
                CreditStatus::Complete => return Ok(()),
                CreditStatus::Rejected => {
                    return Err(TransferError::Rejected {
                        peer: peer.clone(),
                        acked: state.received,
                    })
                }
                CreditStatus::Progress => acked = acked.max(state.received.min(sent)),
            }
        }
    }

    /// Takes one received chunk. Returns what it amounted to and the credit to send back to
    /// `chunk.sender_id`, if any.
    pub fn on_chunk(&self, chunk: Chunk, now: Instant) -> (ChunkOutcome, Option<Credit>) {
        let key = (chunk.sender_id.clone(), chunk.transfer_id);
        if self.closed.borrow().contains_key(&key) {
            return (ChunkOutcome::Ignored, None);
        }
        let mut incoming = self.incoming.borrow_mut();
        if !incoming.contains_key(&key) {
            if chunk.offset != 0 {
                drop(incoming);
                return self.reject(key, "its first chunk seen starts past offset 0", now);
            }
            if chunk.total_len > self.cfg.max_message as u64 {
                drop(incoming);
                let why = format!(
                    "{} bytes exceed this node's limit of {}",
                    chunk.total_len, self.cfg.max_message
                );
                return self.reject(key, &why, now);
            }
            if incoming.len() >= self.cfg.max_transfers {
                drop(incoming);
                let why = format!(
                    "{} transfers are already in progress",
                    self.cfg.max_transfers
                );
                return self.reject(key, &why, now);
            }
            incoming.insert(
                key.clone(),
                Reassembly {
                    buf: Vec::new(),
                    total: chunk.total_len,
                    credited: 0,
                    last: now,
                },
            );
        }
        let r = incoming.get_mut(&key).expect("inserted above");
        if chunk.offset != r.buf.len() as u64 || chunk.total_len != r.total {
            let why = format!(
                "chunk at offset {} (total {}) but {} of {} bytes received: a chunk was lost",
                chunk.offset,
                chunk.total_len,
                r.buf.len(),
                r.total
            );
            let freed = incoming.remove(&key).map_or(0, |r| r.buf.capacity());
            drop(incoming);
            self.budget.release(&key.0, freed);
            return self.reject(key, &why, now);
        }
        if r.buf.len() as u64 + chunk.data.len() as u64 > r.total {
            let why = format!(
                "a chunk of {} bytes at offset {} runs past the announced {} bytes",
                chunk.data.len(),
                chunk.offset,
                r.total
            );
            let freed = incoming.remove(&key).map_or(0, |r| r.buf.capacity());
            drop(incoming);
            self.budget.release(&key.0, freed);
            return self.reject(key, &why, now);
        }
        if let Err(why) = self
            .budget
            .grow(&key.0, &mut r.buf, r.total, chunk.data.len())
        {
            let freed = incoming.remove(&key).map_or(0, |r| r.buf.capacity());
            drop(incoming);
            self.budget.release(&key.0, freed);
            return self.reject(key, &why, now);
        }
        r.buf.extend_from_slice(&chunk.data);
        r.last = now;
        let received = r.buf.len() as u64;
        if received == r.total {
            let r = incoming.remove(&key).expect("present");
            drop(incoming);
            self.budget.release(&key.0, r.buf.capacity());
            self.closed.borrow_mut().insert(key, now);
            let credit = self.credit(&chunk, received, CreditStatus::Complete);
            let env = Envelope {
                kind: chunk.kind,
                client_id: chunk.client_id,
                task_id: chunk.task_id,
                server_id: chunk.server_id,
                data: Bytes::from(r.buf),
            };
            return (ChunkOutcome::Complete(env), Some(credit));
        }
        let credit = (received - r.credited >= (self.cfg.window as u64 / 4).max(1)).then(|| {
            r.credited = received;
            self.credit(&chunk, received, CreditStatus::Progress)
        });
        let outcome = ChunkOutcome::Progress {
            client_id: chunk.client_id.clone(),
            task_id: chunk.task_id,
            received,
            total: r.total,
        };
        (outcome, credit)
    }

    fn credit(&self, chunk: &Chunk, received: u64, status: CreditStatus) -> Credit {
        Credit {
            receiver_id: self.me.clone(),
            transfer_id: chunk.transfer_id,
            received,
            status,
        }
    }

    fn reject(
        &self,
        key: (AmlipId, u64),
        why: &str,
        now: Instant,
    ) -> (ChunkOutcome, Option<Credit>) {
        tracing::warn!(sender = %key.0, transfer = key.1, "rejecting transfer: {why}");
        let credit = Credit {
            receiver_id: self.me.clone(),
            transfer_id: key.1,
            received: 0,
            status: CreditStatus::Rejected,
        };
        self.closed.borrow_mut().insert(key, now);
        (ChunkOutcome::Rejected, Some(credit))
    }

    /// Drops reassemblies idle for longer than the stall timeout, and old closed-transfer marks.
    /// Returns how many reassemblies were dropped.
    pub fn expire(&self, now: Instant) -> usize {
        let stall = self.cfg.stall_timeout;
        let mut incoming = self.incoming.borrow_mut();
        let before = incoming.len();
        incoming.retain(|(sender, id), r| {
            let keep = now.duration_since(r.last) <= stall;
            if !keep {
                tracing::warn!(%sender, transfer = id, "dropping a transfer idle for {stall:?}");
                self.budget.release(sender, r.buf.capacity());
            }
            keep
        });
        self.closed
            .borrow_mut()
            .retain(|_, at| now.duration_since(*at) <= stall * 6);
        before - incoming.len()
    }

    /// Bytes currently held in unfinished incoming transfers.
    #[cfg(test)]
    pub fn incoming_bytes(&self) -> usize {
        self.incoming.borrow().values().map(|r| r.buf.len()).sum()
    }

    /// Memory reserved for unfinished incoming transfers.
    #[cfg(test)]
    pub fn incoming_capacity(&self) -> usize {
        let held = self.budget.total();
        let actual: usize = self
            .incoming
            .borrow()
            .values()
            .map(|r| r.buf.capacity())
            .sum();
        assert_eq!(held, actual, "the accounting matches the buffers");
        held
    }
}

fn limit(ours: usize, theirs: usize) -> usize {
    if theirs == 0 {
        ours
    } else {
        ours.min(theirs)
    }
}

struct Unregister<'a>(&'a RefCell<HashMap<u64, watch::Sender<CreditState>>>, u64);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().remove(&self.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: &str) -> AmlipId {
        AmlipId::from_parts(n, [9, 9, 9, 9]).unwrap()
    }

    fn cfg() -> StreamConfig {
        StreamConfig {
            chunk_size: 10,
            window: 40,
            threshold: 10,
            stall_timeout: Duration::from_secs(1),
            max_message: 1000,
            max_incoming: 4000,
            max_transfers: 8,
            ..StreamConfig::default()
        }
    }

    /// A first chunk of `len` bytes from `sender`, announcing `total`.
    fn forged(sender: &str, transfer: u64, total: u64, len: usize) -> Chunk {
        Chunk {
            sender_id: id(sender),
            transfer_id: transfer,
            total_len: total,
            offset: 0,
            kind: ChunkKind::Job,
            client_id: id(sender),
            task_id: 1,
            server_id: id("C"),
            data: Bytes::from(vec![7u8; len]),
        }
    }

    #[test]
    fn memory_grows_with_the_bytes_that_arrive_not_with_what_is_announced() {
        let mut c = cfg();
        c.max_message = 1 << 40;
        c.max_incoming = 1 << 40;
        let t = Transfers::new(id("C"), c.clone(), Rc::new(Budget::new(&c)));
        let now = Instant::now();
        for (i, total) in [2u64 << 30, 1 << 40, 1 << 39].into_iter().enumerate() {
            let (out, _) = t.on_chunk(forged("M", i as u64, total, 100), now);
            assert!(matches!(out, ChunkOutcome::Progress { .. }));
        }
        assert_eq!(t.incoming_bytes(), 300);
        assert!(
            t.incoming_capacity() <= 3 * GROW_MIN,
            "{}",
            t.incoming_capacity()
        );
        // Idle transfers are dropped, and their memory with them.
        t.expire(now + Duration::from_secs(2));
        assert_eq!(t.incoming_capacity(), 0);
    }

    #[test]
    fn node_peer_and_count_caps_refuse_transfers_with_a_reason() {
        let mut c = cfg();
        c.max_message = 3 << 20; // per peer
        c.max_incoming = 4 << 20; // the node
        let t = Transfers::new(id("C"), c.clone(), Rc::new(Budget::new(&c)));
        let now = Instant::now();
        // One peer: 3 transfers of GROW_MIN each fit its 3 MiB; a fourth does not.
        for i in 0..3 {
            let (out, _) = t.on_chunk(forged("A", i, 3 << 20, 10), now);
            assert!(matches!(out, ChunkOutcome::Progress { .. }), "transfer {i}");
        }
        let (out, credit) = t.on_chunk(forged("A", 3, 3 << 20, 10), now);
        assert_eq!(out, ChunkOutcome::Rejected);
        assert_eq!(credit.unwrap().status, CreditStatus::Rejected);
        // Another peer: one more MiB fits the node's 4 MiB, then the node is full.
        let (out, _) = t.on_chunk(forged("B", 0, 3 << 20, 10), now);
        assert!(matches!(out, ChunkOutcome::Progress { .. }));
        let (out, _) = t.on_chunk(forged("B", 1, 3 << 20, 10), now);
        assert_eq!(out, ChunkOutcome::Rejected);
        assert!(t.incoming_capacity() <= 4 << 20);
        // Too many transfers at once.
        let mut c = cfg();
        c.max_transfers = 2;
        let t = Transfers::new(id("C"), c.clone(), Rc::new(Budget::new(&c)));
        assert!(matches!(
            t.on_chunk(forged("A", 0, 100, 10), now).0,
            ChunkOutcome::Progress { .. }
        ));
        assert!(matches!(
            t.on_chunk(forged("A", 1, 100, 10), now).0,
            ChunkOutcome::Progress { .. }
        ));
        assert_eq!(
            t.on_chunk(forged("A", 2, 100, 10), now).0,
            ChunkOutcome::Rejected
        );
        // A chunk past the announced total.
        assert_eq!(
            t.on_chunk(forged("B", 9, 5, 10), now).0,
            ChunkOutcome::Rejected
        );
    }

    fn chunks(data: &[u8], transfer: u64, size: usize) -> Vec<Chunk> {
        data.chunks(size)
            .enumerate()
            .map(|(i, c)| Chunk {
                sender_id: id("M"),
                transfer_id: transfer,
                total_len: data.len() as u64,
                offset: (i * size) as u64,
                kind: ChunkKind::Job,
                client_id: id("M"),
                task_id: 5,
                server_id: id("C"),
                data: Bytes::copy_from_slice(c),
            })
            .collect()
    }

    #[test]
    fn reassembles_and_credits_each_quarter_window() {
        let t = Transfers::new(id("C"), cfg(), Rc::new(Budget::new(&cfg())));
        let data: Vec<u8> = (0..95u8).collect();
        let now = Instant::now();
        let mut credits = vec![];
        let mut done = None;
        for c in chunks(&data, 1, 10) {
            let (out, credit) = t.on_chunk(c, now);
            credits.extend(credit);
            if let ChunkOutcome::Complete(env) = out {
                done = Some(env);
            }
        }
        let env = done.expect("complete");
        assert_eq!(&env.data[..], &data[..]);
        assert_eq!((env.task_id, env.kind), (5, ChunkKind::Job));
        // Quarter window = 10 bytes: a credit per chunk, the last one Complete.
        assert_eq!(credits.len(), 10);
        assert_eq!(credits.last().unwrap().status, CreditStatus::Complete);
        assert_eq!(credits.last().unwrap().received, 95);
        assert_eq!(t.incoming_bytes(), 0);
    }

    #[test]
    fn a_gap_rejects_the_transfer_and_later_chunks_are_ignored() {
        let t = Transfers::new(id("C"), cfg(), Rc::new(Budget::new(&cfg())));
        let cs = chunks(&[7u8; 50], 2, 10);
        let now = Instant::now();
        t.on_chunk(cs[0].clone(), now);
        let (out, credit) = t.on_chunk(cs[2].clone(), now);
        assert_eq!(out, ChunkOutcome::Rejected);
        assert_eq!(credit.unwrap().status, CreditStatus::Rejected);
        assert_eq!(t.on_chunk(cs[3].clone(), now).0, ChunkOutcome::Ignored);
    }

    #[test]
    fn oversized_transfers_are_refused_before_allocating() {
        let t = Transfers::new(id("C"), cfg(), Rc::new(Budget::new(&cfg())));
        let mut c = chunks(&[1u8; 10], 3, 10).remove(0);
        c.total_len = 1_000_000;
        assert_eq!(t.on_chunk(c, Instant::now()).0, ChunkOutcome::Rejected);
    }

    #[test]
    fn idle_transfers_expire() {
        let t = Transfers::new(id("C"), cfg(), Rc::new(Budget::new(&cfg())));
        let now = Instant::now();
        t.on_chunk(chunks(&[1u8; 30], 4, 10).remove(0), now);
        assert_eq!(t.incoming_bytes(), 10);
        assert_eq!(t.expire(now + Duration::from_secs(2)), 1);
        assert_eq!(t.incoming_bytes(), 0);
    }
}
