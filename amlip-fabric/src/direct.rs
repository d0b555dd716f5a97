//! Large payloads between amlip nodes over a direct TCP connection.
//!
//! Between hosts, rustdds moves a 10 MB payload at a sixth of TCP's rate (it sizes datagrams by
//! the smallest MTU a peer announces) and repairs a lost datagram only at the next heartbeat,
//! which makes a lossy link 40x slower than TCP. TCP brings flow control, congestion control
//! and fast retransmit. So a receiving amlip node listens on a TCP port and announces it in its
//! heartbeat ([`NodeInfo::direct_port`](crate::wire::ext::NodeInfo)); a sender with a payload
//! above the stream threshold connects there and writes the payload, checked by length and
//! CRC-32, and the receiver acknowledges once it handed the payload to its node. DDS stays the
//! discovery and control plane. When no connection can be made (a firewall, NAT), the payload
//! goes over the DDS chunk stream instead (`transfer`); the node says once per peer which path
//! it uses. The frames are in `idl/amlipx.idl` (`direct_hello`, `direct_header`, `direct_ack`).
//!
//! Every wait is bounded: connecting and the hello by `connect_timeout`, every read and write
//! of a payload by `stall_timeout`, an idle incoming connection by [`IDLE_CLOSE`]. Memory for
//! an incoming payload grows as its bytes arrive, within the node's [`Budget`], and at most
//! [`MAX_CONNECTIONS`] incoming connections are served at once.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::timeout;

use crate::config::NodeConfig;
use crate::dds::Network;
use crate::transfer::{Budget, Envelope};
use crate::trust::tls::{Link, Tls};
use crate::trust::RefusalLog;
use crate::wire::ext::{
    ChunkKind, DirectAck, DirectHeader, DirectHello, EXTENSION_VERSION, MAX_DIRECT_ADDRS,
    MAX_DIRECT_FRAME,
};
use crate::wire::{AmlipId, TaskId, WireType};

/// An incoming connection with no payload for this long is closed.
const IDLE_CLOSE: Duration = Duration::from_secs(120);
/// A sender does not reuse a connection idle for longer than this (well under [`IDLE_CLOSE`]).
const IDLE_REUSE: Duration = Duration::from_secs(60);
/// Incoming connections served at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 256;
/// Idle outgoing connections kept per peer.
const MAX_IDLE_PER_PEER: usize = 4;
/// Bytes per read or write step, each bounded by the stall timeout.
const STEP: usize = 1 << 20;
/// Bytes a receiver reserves at once for the start of a payload.
const FIRST_STEP: usize = 16 << 20;
/// A progress event every this many bytes received (the receiver's data timeout restarts).
const PROGRESS_EVERY: usize = 4 << 20;
/// After the direct path to a peer failed, payloads to it go over DDS for this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Most payloads, and bytes, a lane writes at once.
const LANE_BATCH: usize = 256;
const LANE_BATCH_BYTES: usize = 1 << 20;

/// What the direct path hands to the node's engine.
#[derive(Debug)]
pub enum DirectEvent {
    /// A whole payload arrived and checked.
    Payload(Envelope),
    /// Part of a payload arrived.
    Progress { client_id: AmlipId, task_id: TaskId },
}

/// Why a direct transfer did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DirectError {
    /// No connection could be made: nothing was sent, so the payload may go another way.
    #[error("cannot reach {peer}'s direct path ({why})")]
    Unreachable { peer: AmlipId, why: String },
    /// The connection failed, or the receiver refused the payload, during the transfer.
    #[error("direct transfer to {peer} failed after {sent} of {total} bytes: {why}")]
    Failed {
        peer: AmlipId,
        sent: u64,
        total: u64,
        why: String,
    },
}

/// Which path payloads to a peer take, as last said in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathState {
    Direct(SocketAddr),
    Dds { since: Instant },
}

/// A small payload waiting on a lane, and who waits for its acknowledgment.
struct Outgoing {
    env: Envelope,
    done: oneshot::Sender<Result<(), DirectError>>,
}

/// Acknowledgments a lane waits for, oldest first.
type PendingAcks = Rc<RefCell<VecDeque<(u64, oneshot::Sender<Result<(), DirectError>>)>>>;

/// An outgoing connection, hello done.
struct Conn {
    stream: Link,
    addr: SocketAddr,
    idle_since: Instant,
}

/// One node's direct path: its listener and its connections to peers. Lives on the engine
/// thread; the listener and every incoming connection are tasks of the engine's runtime, so
/// they end with the node.
pub struct DirectPath {
    me: AmlipId,
    stall: Duration,
    connect_timeout: Duration,
    max_message: usize,
    budget: Rc<Budget>,
    /// What the node announces.
    port: u16,
    addrs: Vec<Ipv4Addr>,
    idle: RefCell<HashMap<AmlipId, Vec<Conn>>>,
    /// One connection per peer for small payloads (handed-off jobs and their solutions),
    /// written in batches: the queue its task drains.
    lanes: RefCell<HashMap<AmlipId, mpsc::UnboundedSender<Outgoing>>>,
    paths: RefCell<HashMap<AmlipId, PathState>>,
    serving: Cell<usize>,
    counts: Arc<DirectCounts>,
    /// Mutual TLS with the domain's identities (a trusted domain); plain TCP otherwise.
    tls: Option<Tls>,
    refusals: RefCell<RefusalLog>,
}

/// Payloads a node sent over its direct path (acknowledged) and received, readable from any
/// thread.
#[derive(Debug, Default)]
pub struct DirectCounts {
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

impl DirectPath {
    /// Binds the listener and starts accepting (on the current `LocalSet`). `None`, with a
    /// warning, if no port can be bound: payloads then go over DDS.
    pub fn start(
        me: AmlipId,
        cfg: &NodeConfig,
        budget: Rc<Budget>,
        events: flume::Sender<DirectEvent>,
    ) -> Option<Rc<Self>> {
        let tls = match cfg.trust.as_ref().map(Tls::new).transpose() {
            Ok(t) => t,
            Err(e) => {
                // Never plain in a trusted domain: payloads go over (secured) DDS instead.
                tracing::warn!("no direct path: {e}");
                return None;
            }
        };
        let ip = match cfg.network {
            Network::Localhost => Ipv4Addr::LOCALHOST,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        let bound = std::net::TcpListener::bind((ip, cfg.stream.direct_port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(TcpListener::from_std)
            .and_then(|l| l.local_addr().map(|a| (l, a.port())));
        let (listener, port) = match bound {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(
                    "cannot listen on TCP port {} of {ip} for the direct path ({e}); large \
                     payloads to this node go over DDS",
                    cfg.stream.direct_port
                );
                return None;
            }
        };
        let (port, addrs) = match cfg.stream.direct_advertise {
            Some(a) => (a.port(), vec![*a.ip()]),
            None => (port, local_addrs(&cfg.network)),
        };
        tracing::debug!(%me, port, ?addrs, "direct path listening");
        let path = Rc::new(Self {
            me,
            stall: cfg.stream.stall_timeout,
            connect_timeout: cfg.stream.connect_timeout,
            max_message: cfg.stream.max_message,
            budget,
            port,
            addrs,
            idle: RefCell::default(),
            lanes: RefCell::default(),
            paths: RefCell::default(),
            serving: Cell::new(0),
            counts: Arc::default(),
            tls,
            refusals: RefCell::default(),
        });
        tokio::task::spawn_local(accept_loop(Rc::downgrade(&path), listener, events));
        Some(path)
    }

    /// Payloads sent (acknowledged) and received so far.
    pub fn counts(&self) -> Arc<DirectCounts> {
        self.counts.clone()
    }

    /// The port and addresses this node announces.
    pub fn announced(&self) -> (u16, &[Ipv4Addr]) {
        (self.port, &self.addrs)
    }

    /// Whether to try the direct path to `peer` now (not within [`RETRY_AFTER`] of a failure).
    pub fn usable(&self, peer: &AmlipId) -> bool {
        match self.paths.borrow().get(peer) {
            Some(PathState::Dds { since }) => since.elapsed() >= RETRY_AFTER,
            _ => true,
        }
    }

    /// Sends `env` to `peer`, which listens at `addrs` : `port`. Resolves once the peer
    /// acknowledged the whole payload. Says in the log, once per change, which path payloads
    /// to `peer` take.
    pub async fn send(
        &self,
        peer: &AmlipId,
        port: u16,
        addrs: &[Ipv4Addr],
        env: &Envelope,
    ) -> Result<(), DirectError> {
        let result = self.try_send(peer, port, addrs, env).await;
        self.note(peer, result.as_ref().map(|a| *a));
        if result.is_ok() {
            self.counts.sent.fetch_add(1, Ordering::Relaxed);
        }
        result.map(drop)
    }

    /// Sends a small payload to `peer` on its lane: one connection per peer, payloads written
    /// in batches without waiting for each acknowledgment. Resolves once acknowledged.
    pub async fn send_small(
        &self,
        self_rc: &Rc<Self>,
        peer: &AmlipId,
        port: u16,
        addrs: &[Ipv4Addr],
        env: Envelope,
    ) -> Result<(), DirectError> {
        let (done, result) = oneshot::channel();
        let mut item = Outgoing { env, done };
        let existing = self.lanes.borrow().get(peer).cloned();
        if let Some(tx) = existing {
            match tx.send(item) {
                Ok(()) => return self.lane_result(peer, result).await,
                Err(mpsc::error::SendError(back)) => item = back,
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(item);
        self.lanes.borrow_mut().insert(peer.clone(), tx.clone());
        tokio::task::spawn_local(lane(
            Rc::downgrade(self_rc),
            peer.clone(),
            port,
            addrs.to_vec(),
            tx,
            rx,
        ));
        self.lane_result(peer, result).await
    }

    async fn lane_result(
        &self,
        peer: &AmlipId,
        result: oneshot::Receiver<Result<(), DirectError>>,
    ) -> Result<(), DirectError> {
        // Bounded: the lane fails every payload it holds when a wait of its own times out.
        result.await.unwrap_or_else(|_| {
            Err(DirectError::Failed {
                peer: peer.clone(),
                sent: 0,
                total: 0,
                why: "the connection's task ended".into(),
            })
        })
    }

    /// Says in the log, once per change, which path payloads to `peer` take.
    fn note(&self, peer: &AmlipId, result: Result<SocketAddr, &DirectError>) {
        let state = match &result {
            Ok(addr) => PathState::Direct(*addr),
            Err(_) => PathState::Dds {
                since: Instant::now(),
            },
        };
        let before = self.paths.borrow_mut().insert(peer.clone(), state);
        match (result, before) {
            (Ok(addr), b) if b != Some(PathState::Direct(addr)) => {
                tracing::info!(%peer, "payloads to this peer go over a direct TCP connection to {addr}")
            }
            (Err(e), b) if !matches!(b, Some(PathState::Dds { .. })) => tracing::warn!(
                "{e}; payloads to {peer} go over DDS (the direct path is tried again in {}s)",
                RETRY_AFTER.as_secs()
            ),
            _ => {}
        }
    }

    /// Tells once that payloads to `peer` go over DDS for a reason of the peer's own.
    pub fn note_dds(&self, peer: &AmlipId, why: &str) {
        let mut paths = self.paths.borrow_mut();
        if !matches!(paths.get(peer), Some(PathState::Dds { .. })) {
            tracing::info!(%peer, "payloads to this peer go over DDS ({why})");
            paths.insert(
                peer.clone(),
                PathState::Dds {
                    since: Instant::now(),
                },
            );
        }
    }

    async fn try_send(
        &self,
        peer: &AmlipId,
        port: u16,
        addrs: &[Ipv4Addr],
        env: &Envelope,
    ) -> Result<SocketAddr, DirectError> {
        let mut conn = match self.take_idle(peer) {
            Some(c) => c,
            None => self.connect(peer, port, addrs).await?,
        };
        let total = env.data.len() as u64;
        match self.transfer(&mut conn.stream, env).await {
            Ok(()) => {
                let addr = conn.addr;
                conn.idle_since = Instant::now();
                let mut idle = self.idle.borrow_mut();
                let pool = idle.entry(peer.clone()).or_default();
                if pool.len() < MAX_IDLE_PER_PEER {
                    pool.push(conn);
                }
                Ok(addr)
            }
            Err((sent, why)) => Err(DirectError::Failed {
                peer: peer.clone(),
                sent,
                total,
                why,
            }),
        }
    }

    /// A kept connection to `peer` that is still open and quiet.
    fn take_idle(&self, peer: &AmlipId) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let pool = idle.get_mut(peer)?;
        while let Some(c) = pool.pop() {
            let mut probe = [0u8; 1];
            let open = matches!(c.stream.tcp().try_read(&mut probe),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
            if open && c.idle_since.elapsed() < IDLE_REUSE {
                return Some(c);
            }
        }
        None
    }

    /// Connects to every announced address at once and keeps the first whose node answers the
    /// hello as `peer` (an address can reach another node on another host).
    async fn connect(
        &self,
        peer: &AmlipId,
        port: u16,
        addrs: &[Ipv4Addr],
    ) -> Result<Conn, DirectError> {
        let mut tries: FuturesUnordered<_> = addrs
            .iter()
            .take(MAX_DIRECT_ADDRS)
            .map(|ip| self.connect_one(peer, SocketAddr::V4(SocketAddrV4::new(*ip, port))))
            .collect();
        let mut errors = Vec::new();
        while let Some(r) = tries.next().await {
            match r {
                Ok(c) => return Ok(c),
                Err(e) => errors.push(e),
            }
        }
        Err(DirectError::Unreachable {
            peer: peer.clone(),
            why: if errors.is_empty() {
                "it announces no address".into()
            } else {
                errors.join("; ")
            },
        })
    }

    async fn connect_one(&self, peer: &AmlipId, addr: SocketAddr) -> Result<Conn, String> {
        let attempt = async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            let mut stream = match &self.tls {
                Some(tls) => tls.connect(tcp, Some(peer.name())).await?,
                None => Link::Plain(tcp),
            };
            let hello = DirectHello {
                version: EXTENSION_VERSION,
                receiver_id: peer.clone(),
                sender_id: self.me.clone(),
            };
            write_frame(&mut stream, &hello)
                .await
                .map_err(|e| e.to_string())?;
            let ack: DirectAck = read_frame(&mut stream).await?;
            if !ack.refused.is_empty() {
                return Err(format!("refused: {}", ack.refused));
            }
            Ok(stream)
        };
        match timeout(self.connect_timeout, attempt).await {
            Ok(Ok(stream)) => Ok(Conn {
                stream,
                addr,
                idle_since: Instant::now(),
            }),
            Ok(Err(e)) => Err(format!("{addr}: {e}")),
            Err(_) => Err(format!(
                "{addr}: no answer within {:?}",
                self.connect_timeout
            )),
        }
    }

    /// Writes one payload and waits for its acknowledgment. On failure: bytes sent, and why.
    async fn transfer(&self, stream: &mut Link, env: &Envelope) -> Result<(), (u64, String)> {
        let stall = self.stall;
        let header = header_of(env);
        let stalled = |sent: u64| (sent, format!("no progress for {stall:?}"));
        // The header goes with the first piece and the checksum with the last, in one write
        // each: a lone small segment at the end of a flight, if lost, waits for a
        // retransmission timeout (200 ms or more) where one inside the flight is repaired
        // at once. The data is hashed piece by piece as it goes, so the receiver works
        // meanwhile.
        let mut head = frame(&header);
        let mut crc = crc32fast::Hasher::new();
        let mut sent = 0u64;
        let pieces = env.data.len().div_ceil(STEP).max(1);
        for i in 0..pieces {
            let piece =
                &env.data[(i * STEP).min(env.data.len())..((i + 1) * STEP).min(env.data.len())];
            crc.update(piece);
            let tail = if i + 1 == pieces {
                crc.clone().finalize().to_le_bytes().to_vec()
            } else {
                Vec::new()
            };
            let mut buf = Buf::chain(Buf::chain(&head[..], piece), &tail[..]);
            timeout(stall, stream.write_all_buf(&mut buf))
                .await
                .map_err(|_| stalled(sent))?
                .map_err(|e| (sent, e.to_string()))?;
            head.clear();
            sent += piece.len() as u64;
        }
        timeout(stall, stream.flush())
            .await
            .map_err(|_| stalled(sent))?
            .map_err(|e| (sent, e.to_string()))?;
        let ack: DirectAck = timeout(stall, read_frame(stream))
            .await
            .map_err(|_| (sent, format!("no acknowledgment within {stall:?}")))?
            .map_err(|e| (sent, e))?;
        if ack.refused.is_empty() {
            Ok(())
        } else {
            Err((sent, format!("refused: {}", ack.refused)))
        }
    }

    /// Reads the `header.len` bytes that follow a header, within the budget, and checks them.
    async fn receive(
        &self,
        sender: &AmlipId,
        header: DirectHeader,
        rd: &mut (impl AsyncRead + Unpin),
        events: &flume::Sender<DirectEvent>,
    ) -> Result<Envelope, String> {
        let total = header.len;
        if total > self.max_message as u64 {
            return Err(format!(
                "{total} bytes exceed this node's limit of {}",
                self.max_message
            ));
        }
        let mut buf = Vec::new();
        let mut next_progress = PROGRESS_EVERY;
        let stall = self.stall;
        let mut crc = crc32fast::Hasher::new();
        let read = async {
            while (buf.len() as u64) < total {
                // The first step takes up to FIRST_STEP at once: a payload of that size is
                // then read with no copying, and the memory is only touched as bytes arrive.
                let step =
                    (total - buf.len() as u64)
                        .min(if buf.is_empty() { FIRST_STEP } else { STEP } as u64)
                        as usize;
                self.budget.grow(sender, &mut buf, total, step)?;
                let before = buf.len();
                let n = timeout(stall, (&mut *rd).take(step as u64).read_buf(&mut buf))
                    .await
                    .map_err(|_| {
                        format!(
                            "no data for {stall:?} ({} of {total} bytes received)",
                            buf.len()
                        )
                    })?
                    .map_err(|e| format!("{e} ({} of {total} bytes received)", buf.len()))?;
                if n == 0 {
                    return Err(format!(
                        "connection closed after {} of {total} bytes",
                        buf.len()
                    ));
                }
                crc.update(&buf[before..]);
                if buf.len() >= next_progress {
                    next_progress += PROGRESS_EVERY;
                    let _ = events.send(DirectEvent::Progress {
                        client_id: header.client_id.clone(),
                        task_id: header.task_id,
                    });
                }
            }
            let mut trailer = [0u8; 4];
            timeout(stall, rd.read_exact(&mut trailer))
                .await
                .map_err(|_| format!("no checksum within {stall:?} after the {total} bytes"))?
                .map_err(|e| format!("no checksum after the {total} bytes: {e}"))?;
            let (got, sent) = (crc.finalize(), u32::from_le_bytes(trailer));
            if got != sent {
                return Err(format!(
                    "checksum mismatch: the {total} bytes received hash to {got:08x}, the \
                     sender's to {sent:08x}"
                ));
            }
            Ok(())
        }
        .await;
        self.budget.release(sender, buf.capacity());
        read.map(|()| Envelope {
            kind: header.kind,
            client_id: header.client_id,
            task_id: header.task_id,
            server_id: header.server_id,
            data: Bytes::from(buf),
        })
    }
}

async fn accept_loop(
    path: Weak<DirectPath>,
    listener: TcpListener,
    events: flume::Sender<DirectEvent>,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: try again shortly.
                tracing::warn!("direct path: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(p) = path.upgrade() else { return };
        if p.serving.get() >= MAX_CONNECTIONS {
            tracing::warn!(%from, "direct path: {MAX_CONNECTIONS} connections already open; closing this one");
            continue;
        }
        p.serving.set(p.serving.get() + 1);
        let events = events.clone();
        tokio::task::spawn_local(async move {
            serve(&p, stream, from, &events).await;
            p.serving.set(p.serving.get() - 1);
        });
    }
}

/// Serves one incoming connection: the hello, then payloads one after another until the
/// sender closes it, it idles, or something is wrong with it (which closes it).
async fn serve(
    p: &DirectPath,
    stream: TcpStream,
    from: SocketAddr,
    events: &flume::Sender<DirectEvent>,
) {
    let _ = stream.set_nodelay(true);
    // In a trusted domain nothing is read before the peer proved its identity.
    let (stream, certified) = match &p.tls {
        None => (Link::Plain(stream), None),
        Some(tls) => match timeout(p.stall, tls.accept(stream)).await {
            Ok(Ok((link, name))) => (link, Some(name)),
            Ok(Err(why)) => return p.refused(from, &why),
            Err(_) => return p.refused(from, &format!("no TLS handshake within {:?}", p.stall)),
        },
    };
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::with_capacity(64 << 10, rd);
    let hello: DirectHello = match timeout(p.stall, read_frame(&mut rd)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::debug!(%from, "direct path: bad hello: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%from, "direct path: no hello within {:?}", p.stall);
            return;
        }
    };
    if let Some(name) = certified.filter(|n| n != hello.sender_id.name()) {
        return p.refused(
            from,
            &format!(
                "the hello says {}, the certificate is {name}'s",
                hello.sender_id
            ),
        );
    }
    if hello.version != EXTENSION_VERSION || hello.receiver_id != p.me {
        let refused = format!(
            "this is {} (extension version {EXTENSION_VERSION}), not {} (version {})",
            p.me, hello.receiver_id, hello.version
        );
        let _ = timeout(p.stall, write_frame(&mut wr, &DirectAck { refused })).await;
        return;
    }
    let ok = DirectAck {
        refused: String::new(),
    };
    if !matches!(
        timeout(p.stall, write_frame(&mut wr, &ok)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let sender = hello.sender_id;
    let ok = frame(&ok);
    // Acknowledgments of payloads read from one batch go out together, once the batch is read.
    let mut acks = Vec::new();
    loop {
        if rd.buffer().is_empty() && !acks.is_empty() {
            if !matches!(
                timeout(p.stall, write_flush(&mut wr, &acks)).await,
                Ok(Ok(()))
            ) {
                return;
            }
            acks.clear();
        }
        let header: DirectHeader = match timeout(IDLE_CLOSE, read_frame(&mut rd)).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                if !e.starts_with("closed") {
                    tracing::warn!(%sender, %from, "direct path: closing the connection: {e}");
                }
                return;
            }
            Err(_) => return,
        };
        let (client_id, task_id) = (header.client_id.clone(), header.task_id);
        let claimed = match header.kind {
            ChunkKind::Solution => &header.server_id,
            ChunkKind::Job | ChunkKind::Handoff => &header.client_id,
        };
        let received = if *claimed != sender {
            Err(format!(
                "the connection is from {sender}, the payload claims to be from {claimed}"
            ))
        } else {
            p.receive(&sender, header, &mut rd, events).await
        };
        match received {
            Ok(env) => {
                p.counts.received.fetch_add(1, Ordering::Relaxed);
                let _ = events.send(DirectEvent::Payload(env));
                acks.extend_from_slice(&ok);
            }
            Err(refused) => {
                tracing::warn!(
                    %sender, %client_id, task = task_id,
                    "direct path: refusing a payload: {refused}"
                );
                acks.extend_from_slice(&frame(&DirectAck { refused }));
                let _ = timeout(p.stall, write_flush(&mut wr, &acks)).await;
                return;
            }
        }
    }
}

/// Runs a lane to `peer`: connects, then writes what `rx` brings in batches while a second
/// task matches acknowledgments to payloads, until the lane idles for [`IDLE_REUSE`] or fails
/// (which fails every payload it holds).
async fn lane(
    path: Weak<DirectPath>,
    peer: AmlipId,
    port: u16,
    addrs: Vec<Ipv4Addr>,
    me: mpsc::UnboundedSender<Outgoing>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let Some(p) = path.upgrade() else { return };
    let pending: PendingAcks = Rc::default();
    let failure = match p.connect(&peer, port, &addrs).await {
        Err(e) => Some(e),
        Ok(conn) => {
            p.note(&peer, Ok(conn.addr));
            let (rd, mut wr) = tokio::io::split(conn.stream);
            let wake = Rc::new(Notify::new());
            let mut acks = tokio::task::spawn_local(lane_acks(
                peer.clone(),
                p.stall,
                rd,
                pending.clone(),
                wake.clone(),
                p.counts.clone(),
            ));
            // Whichever half stops first ends the lane.
            let failure = tokio::select! {
                f = lane_writes(&p, &peer, &mut wr, &mut rx, &pending, &wake) => f,
                f = &mut acks => f.ok(),
            };
            acks.abort();
            failure
        }
    };
    if let Some(tx) = p.lanes.borrow_mut().remove(&peer) {
        if !tx.same_channel(&me) {
            p.lanes.borrow_mut().insert(peer.clone(), tx);
        }
    }
    rx.close();
    if let Some(f) = &failure {
        p.note(&peer, Err(f));
    }
    let failure = failure.unwrap_or_else(|| DirectError::Failed {
        peer: peer.clone(),
        sent: 0,
        total: 0,
        why: "the connection closed".into(),
    });
    for (_, done) in pending.borrow_mut().drain(..) {
        let _ = done.send(Err(failure.clone()));
    }
    while let Ok(item) = rx.try_recv() {
        let _ = item.done.send(Err(failure.clone()));
    }
}

/// A lane's writing half. Returns why it failed, or `None` once it idled.
async fn lane_writes(
    p: &DirectPath,
    peer: &AmlipId,
    wr: &mut (impl AsyncWrite + Unpin),
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    pending: &PendingAcks,
    wake: &Notify,
) -> Option<DirectError> {
    let failed = |why: String| {
        Some(DirectError::Failed {
            peer: peer.clone(),
            sent: 0,
            total: 0,
            why,
        })
    };
    loop {
        let first = match timeout(IDLE_REUSE, rx.recv()).await {
            Ok(Some(item)) => item,
            _ => return None,
        };
        let mut buf = Vec::new();
        let add = |buf: &mut Vec<u8>, item: Outgoing| {
            let env = &item.env;
            buf.extend_from_slice(&frame(&header_of(env)));
            buf.extend_from_slice(&env.data);
            buf.extend_from_slice(&crc32fast::hash(&env.data).to_le_bytes());
            pending
                .borrow_mut()
                .push_back((env.data.len() as u64, item.done));
        };
        add(&mut buf, first);
        let mut n = 1;
        while n < LANE_BATCH && buf.len() < LANE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(item) => add(&mut buf, item),
                Err(_) => break,
            }
            n += 1;
        }
        wake.notify_one();
        match timeout(p.stall, write_flush(wr, &buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return failed(e.to_string()),
            Err(_) => return failed(format!("no progress for {:?}", p.stall)),
        }
    }
}

/// A lane's reading half: answers each pending payload, in order, with its acknowledgment.
/// Returns why it stopped (the connection failed, or no acknowledgment came in time).
async fn lane_acks(
    peer: AmlipId,
    stall: Duration,
    rd: ReadHalf<Link>,
    pending: PendingAcks,
    wake: Rc<Notify>,
    counts: Arc<DirectCounts>,
) -> DirectError {
    let mut rd = BufReader::new(rd);
    loop {
        if pending.borrow().is_empty() {
            wake.notified().await;
            continue;
        }
        let ack = timeout(stall, read_frame::<DirectAck>(&mut rd)).await;
        let failure = match ack {
            Ok(Ok(ack)) => {
                let Some((len, done)) = pending.borrow_mut().pop_front() else {
                    continue;
                };
                let result = if ack.refused.is_empty() {
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                } else {
                    Err(DirectError::Failed {
                        peer: peer.clone(),
                        sent: len,
                        total: len,
                        why: format!("refused: {}", ack.refused),
                    })
                };
                let _ = done.send(result);
                continue;
            }
            Ok(Err(why)) => why,
            Err(_) => format!("no acknowledgment within {stall:?}"),
        };
        let error = DirectError::Failed {
            peer: peer.clone(),
            sent: 0,
            total: 0,
            why: failure,
        };
        for (_, done) in pending.borrow_mut().drain(..) {
            let _ = done.send(Err(error.clone()));
        }
        return error;
    }
}

/// The header frame announcing `env`.
fn header_of(env: &Envelope) -> DirectHeader {
    DirectHeader {
        kind: env.kind,
        client_id: env.client_id.clone(),
        task_id: env.task_id,
        server_id: env.server_id.clone(),
        len: env.data.len() as u64,
    }
}

/// One frame: a `u32` little-endian length, then the serialized value.
fn frame<T: WireType>(value: &T) -> Vec<u8> {
    let payload = value.to_payload();
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&payload);
    buf
}

/// Writes one frame.
async fn write_frame<T: WireType>(
    w: &mut (impl AsyncWrite + Unpin),
    value: &T,
) -> std::io::Result<()> {
    write_flush(w, &frame(value)).await
}

/// Writes `bytes` and flushes them (TLS holds what it encrypted until flushed).
async fn write_flush(w: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

impl DirectPath {
    fn refused(&self, from: SocketAddr, why: &str) {
        if let Some(also) = self.refusals.borrow_mut().admit() {
            tracing::warn!(%from, "trusted domain: refused a direct-path connection: {why}{also}");
        }
    }
}

/// Reads one frame. An error starting with "closed" means the peer closed the connection
/// cleanly between frames.
async fn read_frame<T: WireType>(r: &mut (impl AsyncRead + Unpin)) -> Result<T, String> {
    let mut len = [0u8; 4];
    if let Err(e) = r.read_exact(&mut len).await {
        return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "closed by the peer".into()
        } else {
            e.to_string()
        });
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_DIRECT_FRAME {
        return Err(format!(
            "a {} frame of {n} bytes (at most {MAX_DIRECT_FRAME}): not an amlip direct connection",
            T::TYPE_NAME
        ));
    }
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)
        .await
        .map_err(|e| format!("{} frame cut short: {e}", T::TYPE_NAME))?;
    T::from_payload(&buf).map_err(|e| format!("malformed {}: {e}", T::TYPE_NAME))
}

/// The IPv4 addresses to announce for `network`: non-loopback interfaces first.
pub(crate) fn local_addrs(network: &Network) -> Vec<Ipv4Addr> {
    let mut addrs: Vec<(bool, Ipv4Addr)> = match network {
        Network::Localhost => vec![(true, Ipv4Addr::LOCALHOST)],
        Network::Only(ips) => ips
            .iter()
            .filter_map(|ip| match ip {
                std::net::IpAddr::V4(v4) => Some((v4.is_loopback(), *v4)),
                std::net::IpAddr::V6(_) => None,
            })
            .collect(),
        Network::All => netdev::get_interfaces()
            .iter()
            .filter(|i| i.is_up())
            .flat_map(|i| i.ipv4.iter().map(|n| (n.addr().is_loopback(), n.addr())))
            .collect(),
    };
    addrs.sort_by_key(|(loopback, _)| *loopback);
    let mut out: Vec<Ipv4Addr> = Vec::new();
    for (_, a) in addrs {
        if !a.is_unspecified() && !out.contains(&a) {
            out.push(a);
        }
    }
    out.truncate(MAX_DIRECT_ADDRS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_announced_last() {
        assert_eq!(local_addrs(&Network::Localhost), vec![Ipv4Addr::LOCALHOST]);
        let all = local_addrs(&Network::All);
        if let Some(i) = all.iter().position(|a| a.is_loopback()) {
            assert!(all[i..].iter().all(|a| a.is_loopback()), "{all:?}");
        }
        let only: Network = "10.1.2.3,127.0.0.1".parse().unwrap();
        assert_eq!(
            local_addrs(&only),
            vec![Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::LOCALHOST]
        );
    }
}
