//! The producing side of a sample stream: a simulation (one per rank) publishes batches; they are
//! retained, up to a byte cap, for every consumer that connects, late ones included.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::wire::{self, ProducerInfo};
use super::{Samples, StreamError};
use crate::cancel::CancelToken;
use crate::config::NodeConfig;
use crate::dds::{Network, Participant, Profile};
use crate::runtime::{NodeThread, Shutdown};
use crate::trust::tls::{Link, Tls};

/// How a producer retains what it published.
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Bytes of published batches kept for consumers (default 256 MiB). Past it the oldest
    /// batches are let go; a consumer that had not read them is told how many samples it
    /// missed (it counts them as dropped by the producer). The newest batch is always kept.
    pub retain_bytes: usize,
    /// How often the producer announces itself (and its count) on the domain.
    pub heartbeat: Duration,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        Self {
            retain_bytes: 256 << 20,
            heartbeat: Duration::from_secs(1),
        }
    }
}

/// One published batch, encoded once as the frame every consumer is sent.
struct Stored {
    first_seq: u64,
    count: u64,
    frame: Bytes,
}

#[derive(Default)]
struct Retained {
    batches: VecDeque<Stored>,
    bytes: usize,
    /// The first sequence number still retained.
    oldest: u64,
    /// The next sample's sequence number: samples produced.
    next: u64,
    iterations: u64,
    ended: bool,
    /// Consumers that acknowledged the whole stream.
    drained: usize,
    /// Consumers connected now.
    connected: usize,
    /// Bytes of frames retained at most.
    cap: usize,
    /// Samples let go before every consumer had them (all of them, for consumers that
    /// connect later).
    evicted: u64,
}

struct Shared {
    state: Mutex<Retained>,
    /// Bumped at every publish and at the end, waking the connections.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Retained> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What [`Producer::finish`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Samples produced.
    pub produced: u64,
    /// Consumers that read the whole stream before the producer stopped.
    pub drained: usize,
}

/// A producer of one rank of a sample stream.
///
/// ```no_run
/// use amlip_fabric::config::NodeConfig;
/// use amlip_flows::stream::{Producer, ProducerOptions, Samples};
///
/// let cfg = NodeConfig::new("Sim").domain(7).localhost();
/// let producer = Producer::start(&cfg, "sin", 0, ProducerOptions::default())?;
/// for iteration in 0..20 {
///     let x: Vec<f32> = (0..16).map(|i| i as f32 / 16.0).collect();
///     let y = x.iter().map(|v| v.sin()).collect();
///     producer.publish(iteration, &Samples::new(x, 1, y, 1)?)?;
/// }
/// producer.finish(1, std::time::Duration::from_secs(30), &Default::default());
/// # Ok::<(), amlip_flows::stream::StreamError>(())
/// ```
pub struct Producer {
    shared: Arc<Shared>,
    engine: NodeThread,
    id: u64,
}

impl Producer {
    /// Starts rank `rank` of the stream `stream` on `cfg`'s domain: listens for consumers and
    /// announces itself.
    pub fn start(
        cfg: &NodeConfig,
        stream: &str,
        rank: u32,
        opts: ProducerOptions,
    ) -> Result<Self, StreamError> {
        super::check_name(stream)?;
        let ip = match cfg.interfaces() {
            Network::Localhost => Ipv4Addr::LOCALHOST,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        let listener = std::net::TcpListener::bind((ip, 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| StreamError::Io(format!("cannot listen for consumers: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| StreamError::Io(e.to_string()))?
            .port();
        let id = rand::random::<u64>();
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(Retained::default()),
            changed,
        });
        let info = ProducerInfo {
            stream: stream.to_owned(),
            producer: id,
            rank,
            port,
            addrs: cfg.interfaces().local_addrs(),
            produced: 0,
            iterations: 0,
            ended: false,
        };
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let (domain, network, trust) = (
            cfg.domain_id(),
            cfg.interfaces().clone(),
            cfg.trusted().cloned(),
        );
        let engine_shared = shared.clone();
        let mut engine = NodeThread::spawn("amlip-producer", move |shutdown| async move {
            let setup = (|| {
                let tls = super::tls_of(trust.as_ref())?;
                let participant = Participant::with_trust(domain, &network, trust.as_ref())?;
                let writer = participant.writer::<ProducerInfo>(wire::TOPIC, Profile::NodeInfo)?;
                let listener = TcpListener::from_std(listener)
                    .map_err(|e| StreamError::Io(format!("cannot listen for consumers: {e}")))?;
                Ok::<_, StreamError>((participant, writer, listener, tls))
            })();
            match setup {
                Ok((_participant, writer, listener, tls)) => {
                    let _ = ready_tx.send(Ok(()));
                    let accept =
                        accept_loop(listener, tls, engine_shared.clone(), id, shutdown.clone());
                    let announce =
                        announce_loop(writer, info, engine_shared, opts.heartbeat, shutdown);
                    tokio::join!(accept, announce);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| StreamError::Io(format!("cannot start the producer's thread: {e}")))?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                engine.stop(Duration::from_secs(2));
                return Err(StreamError::Io("the producer did not start in 10 s".into()));
            }
        }
        shared.lock().cap = opts.retain_bytes;
        Ok(Self { shared, engine, id })
    }

    /// This producer's id on the domain.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Samples published so far.
    pub fn produced(&self) -> u64 {
        self.shared.lock().next
    }

    /// Publishes one iteration's batch. The batch is checked only for consistency: its
    /// shape and values are the consumers' to judge (they count and report what they reject).
    pub fn publish(&self, iteration: u64, batch: &Samples) -> Result<(), StreamError> {
        let count = batch.len();
        let bytes = wire::BATCH_HEADER + 4 * (batch.inputs.len() + batch.targets.len());
        if bytes > wire::MAX_FRAME {
            return Err(StreamError::TooLarge {
                bytes,
                max: wire::MAX_FRAME,
            });
        }
        let mut st = self.shared.lock();
        if st.ended {
            return Err(StreamError::Ended);
        }
        let frame = wire::batch_frame(
            iteration,
            st.next,
            &batch.inputs,
            batch.input_len,
            &batch.targets,
            batch.target_len,
            count,
        );
        st.bytes += frame.len();
        let first_seq = st.next;
        st.batches.push_back(Stored {
            first_seq,
            count: count as u64,
            frame: Bytes::from(frame),
        });
        st.next += count as u64;
        st.iterations += 1;
        while st.bytes > st.cap && st.batches.len() > 1 {
            let old = st.batches.pop_front().expect("more than one");
            st.bytes -= old.frame.len();
            st.evicted += old.count;
            st.oldest = old.first_seq + old.count;
        }
        let next = st.next;
        drop(st);
        self.shared.changed.send_replace(next);
        Ok(())
    }

    /// Marks the stream ended and waits, up to `linger` (or until `cancel`), until `readers`
    /// consumers have read it whole and no other is still reading.
    pub fn finish(mut self, readers: usize, linger: Duration, cancel: &CancelToken) -> Finished {
        {
            self.shared.lock().ended = true;
        }
        self.shared.changed.send_modify(|v| *v += 1);
        let deadline = Instant::now() + linger;
        loop {
            let (drained, connected, produced) = {
                let st = self.shared.lock();
                (st.drained, st.connected, st.next)
            };
            if (drained >= readers && connected == 0) || Instant::now() >= deadline {
                self.engine.stop(Duration::from_secs(2));
                return Finished { produced, drained };
            }
            if cancel.wait_timeout(Duration::from_millis(50)) {
                self.engine.stop(Duration::from_secs(2));
                return Finished { produced, drained };
            }
        }
    }
}

/// Announces the producer every `heartbeat` and at every change of its end state.
async fn announce_loop(
    writer: crate::dds::Writer<ProducerInfo>,
    mut info: ProducerInfo,
    shared: Arc<Shared>,
    heartbeat: Duration,
    mut shutdown: Shutdown,
) {
    let mut changed = shared.changed.subscribe();
    let mut last = Instant::now() - heartbeat;
    loop {
        let (produced, iterations, ended) = {
            let st = shared.lock();
            (st.next, st.iterations, st.ended)
        };
        let moved = ended != info.ended;
        if moved || last.elapsed() >= heartbeat {
            info.produced = produced;
            info.iterations = iterations;
            info.ended = ended;
            if let Err(e) = writer.write(&info).await {
                tracing::warn!("cannot announce producer {:016x}: {e}", info.producer);
            }
            last = Instant::now();
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = changed.changed() => {}
            _ = tokio::time::sleep(heartbeat) => {}
        }
    }
}

/// Accepts consumers, each served by its own task.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<Tls>,
    shared: Arc<Shared>,
    id: u64,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            accepted = listener.accept() => match accepted {
                Ok((conn, peer)) => {
                    let shared = shared.clone();
                    let tls = tls.clone();
                    tokio::task::spawn_local(async move {
                        let _ = conn.set_nodelay(true);
                        // In a trusted domain only members get a byte of the stream.
                        let conn = match tls {
                            None => Link::Plain(conn),
                            Some(tls) => match tokio::time::timeout(HELLO_TIMEOUT, tls.accept(conn)).await {
                                Ok(Ok((link, _))) => link,
                                Ok(Err(e)) => {
                                    tracing::warn!("trusted domain: refused consumer {peer}: {e}");
                                    return;
                                }
                                Err(_) => {
                                    tracing::warn!("trusted domain: refused consumer {peer}: no TLS handshake within {HELLO_TIMEOUT:?}");
                                    return;
                                }
                            },
                        };
                        shared.lock().connected += 1;
                        if let Err(e) = serve(conn, &shared, id).await {
                            tracing::info!("consumer {peer}: {e}");
                        }
                        shared.lock().connected -= 1;
                    });
                }
                Err(e) => {
                    tracing::warn!("accepting a consumer: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// How long a consumer may take to say hello, or to acknowledge the end.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Sent when a connection has been idle this long.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);

/// Sends one consumer everything from the sequence number it asks for, as it is published.
async fn serve(mut conn: Link, shared: &Shared, id: u64) -> Result<(), String> {
    let mut hello = [0u8; 24];
    tokio::time::timeout(HELLO_TIMEOUT, conn.read_exact(&mut hello))
        .await
        .map_err(|_| "no hello".to_string())?
        .map_err(|e| format!("hello: {e}"))?;
    let (meant, mut next) = wire::parse_hello(&hello)?;
    if meant != id {
        return Err(format!(
            "asked for producer {meant:016x}; this is {id:016x}"
        ));
    }
    let mut changed = shared.changed.subscribe();
    loop {
        let mut out: Vec<Bytes> = Vec::new();
        let end = {
            let st = shared.lock();
            if next < st.oldest {
                let mut body = Vec::with_capacity(16);
                body.extend_from_slice(&next.to_le_bytes());
                body.extend_from_slice(&(st.oldest - next).to_le_bytes());
                out.push(Bytes::from(wire::frame(wire::GAP, &body)));
                next = st.oldest;
            }
            let from = next;
            for b in st.batches.iter().filter(|b| b.first_seq + b.count > from) {
                out.push(b.frame.clone());
                next = b.first_seq + b.count;
            }
            (st.ended && next >= st.next).then_some(st.next)
        };
        for f in &out {
            conn.write_all(f)
                .await
                .map_err(|e| format!("sending: {e}"))?;
        }
        conn.flush().await.map_err(|e| format!("sending: {e}"))?;
        if let Some(total) = end {
            conn.write_all(&wire::frame(wire::END, &total.to_le_bytes()))
                .await
                .map_err(|e| format!("sending the end: {e}"))?;
            conn.flush()
                .await
                .map_err(|e| format!("sending the end: {e}"))?;
            let mut ack = [0u8; 1];
            tokio::time::timeout(HELLO_TIMEOUT, conn.read_exact(&mut ack))
                .await
                .map_err(|_| "no acknowledgment of the end".to_string())?
                .map_err(|e| format!("acknowledgment: {e}"))?;
            shared.lock().drained += 1;
            return Ok(());
        }
        if out.is_empty() {
            tokio::select! {
                r = changed.changed() => if r.is_err() { return Ok(()) },
                _ = tokio::time::sleep(KEEPALIVE_EVERY) => {
                    conn.write_all(&wire::frame(wire::KEEPALIVE, &[]))
                        .await
                        .map_err(|e| format!("keepalive: {e}"))?;
                    conn.flush().await.map_err(|e| format!("keepalive: {e}"))?;
                }
            }
        }
    }
}
