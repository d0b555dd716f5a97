//! The consuming side of a sample stream: finds every producer of a stream on the domain,
//! reads each from the first sample it still retains, checks every batch, and keeps what passes
//! in a bounded [`Store`] under its policy, counting each sample exactly once.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::store::{Policy, Store};
use super::wire::{self, BatchFrame, ProducerInfo};
use super::{ProducerCounts, Samples, StreamError};
use crate::cancel::CancelToken;
use crate::config::NodeConfig;
use crate::dds::{Participant, Profile};
use crate::runtime::{NodeThread, Shutdown};
use crate::trust::tls::{Link as Connection, Tls};

/// What a consumer keeps and expects.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Samples held at most (default 1,000,000). Up to it every valid sample is kept; past it
    /// [`policy`](Self::policy) decides, and every sample it drops is counted against the
    /// producer it came from. Memory: about `keep` x the sample's bytes, plus one frame (at
    /// most 16 MiB) per connected producer while it is read.
    pub keep: usize,
    /// What a full store does (default: a window of the newest).
    pub policy: Policy,
    /// Seeds the reservoir's draws.
    pub seed: u64,
    /// Floats per input and per target the samples must have (a trainer's network's); `None`:
    /// whatever the first valid batch has. Batches of another shape are rejected and counted.
    pub shape: Option<(usize, usize)>,
    /// A producer neither announcing nor sending for this long is given up as lost.
    pub silence: Duration,
    /// Producers followed at most; later ones are ignored (and counted).
    pub max_producers: usize,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            keep: 1_000_000,
            policy: Policy::Window,
            seed: 1,
            shape: None,
            silence: Duration::from_secs(10),
            max_producers: 256,
        }
    }
}

/// How the consumer stands with one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    Connecting,
    Live,
    Ended,
    Lost(String),
}

/// What is known of one producer.
struct Entry {
    id: u64,
    rank: u32,
    addrs: Vec<Ipv4Addr>,
    port: u16,
    announced: u64,
    next_seq: u64,
    received: u64,
    rejected_shape: u64,
    rejected_values: u64,
    dropped_by_producer: u64,
    dropped_by_cap: u64,
    duplicates: u64,
    link: Link,
    last_heard: Instant,
    problems: Vec<String>,
}

/// Problems remembered per producer (the rest are only counted).
const MAX_PROBLEMS: usize = 5;

impl Entry {
    fn problem(&mut self, what: String) {
        if self.problems.len() < MAX_PROBLEMS {
            tracing::warn!("producer rank {}: {what}", self.rank);
            self.problems.push(what);
        }
    }
}

struct State {
    store: Store,
    shape: Option<(usize, usize)>,
    producers: Vec<Entry>,
    by_id: HashMap<u64, usize>,
    ignored_producers: u64,
    /// Bumped at every sample taken in and every change of a producer's state.
    version: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    silence: Duration,
    max_producers: usize,
    /// TLS to producers, in a trusted domain.
    tls: Option<Tls>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f` to producer `i` and wakes waiters.
    fn update(&self, i: usize, f: impl FnOnce(&mut Entry)) {
        let mut st = self.lock();
        f(&mut st.producers[i]);
        st.version += 1;
        drop(st);
        self.changed.notify_all();
    }
}

/// Follows one stream on the domain.
///
/// ```no_run
/// use std::time::Duration;
/// use amlip_fabric::config::NodeConfig;
/// use amlip_flows::stream::{Consumer, ConsumerOptions};
///
/// let cfg = NodeConfig::new("Trainer").domain(7).localhost();
/// let consumer = Consumer::follow(&cfg, "sin", ConsumerOptions::default())?;
/// consumer.wait_for_producers(4, Duration::from_secs(30), &Default::default());
/// while !consumer.settled() {
///     consumer.wait_changed(consumer.version(), Duration::from_secs(1));
/// }
/// for p in consumer.counts() {
///     println!("rank {}: {} received, {} kept", p.rank, p.received, p.kept);
/// }
/// # Ok::<(), amlip_flows::stream::StreamError>(())
/// ```
pub struct Consumer {
    shared: Arc<Shared>,
    engine: NodeThread,
    stream: String,
    domain: u16,
}

impl Consumer {
    /// Starts following `stream` on `cfg`'s domain, producers that ended before now included
    /// (as long as they still run and retain their samples).
    pub fn follow(
        cfg: &NodeConfig,
        stream: &str,
        opts: ConsumerOptions,
    ) -> Result<Self, StreamError> {
        super::check_name(stream)?;
        let tls = super::tls_of(cfg.trusted())?;
        let mut store = Store::new(opts.keep, opts.policy, opts.seed);
        if let Some((i, t)) = opts.shape {
            store.shape(i, t);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                store,
                shape: opts.shape,
                producers: Vec::new(),
                by_id: HashMap::new(),
                ignored_producers: 0,
                version: 0,
            }),
            changed: Condvar::new(),
            silence: opts.silence,
            max_producers: opts.max_producers,
            tls,
        });
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let (domain, network, trust) = (
            cfg.domain_id(),
            cfg.interfaces().clone(),
            cfg.trusted().cloned(),
        );
        let engine_shared = shared.clone();
        let name = stream.to_owned();
        let mut engine = NodeThread::spawn("amlip-consumer", move |shutdown| async move {
            let setup = Participant::with_trust(domain, &network, trust.as_ref()).and_then(|p| {
                let r = p.reader::<ProducerInfo>(wire::TOPIC, Profile::NodeInfo)?;
                Ok((p, r))
            });
            match setup {
                Ok((_participant, reader)) => {
                    let _ = ready_tx.send(Ok(()));
                    discover(reader, name, engine_shared, shutdown).await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(StreamError::from(e)));
                }
            }
        })
        .map_err(|e| StreamError::Io(format!("cannot start the consumer's thread: {e}")))?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Self {
                shared,
                engine,
                stream: stream.to_owned(),
                domain,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                engine.stop(Duration::from_secs(2));
                Err(StreamError::Io("the consumer did not start in 10 s".into()))
            }
        }
    }

    /// The stream followed.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Counts per producer, by rank then id.
    pub fn counts(&self) -> Vec<ProducerCounts> {
        let st = self.shared.lock();
        let kept = st.store.kept_by(st.producers.len());
        let mut out: Vec<ProducerCounts> = st
            .producers
            .iter()
            .zip(kept)
            .map(|(e, kept)| ProducerCounts {
                producer: format!("{:016x}", e.id),
                rank: e.rank,
                produced: e.announced.max(e.next_seq),
                received: e.received,
                kept,
                rejected_shape: e.rejected_shape,
                rejected_values: e.rejected_values,
                dropped_by_producer: e.dropped_by_producer,
                dropped_by_cap: e.dropped_by_cap,
                duplicates: e.duplicates,
                state: match &e.link {
                    Link::Connecting => "connecting".into(),
                    Link::Live => "live".into(),
                    Link::Ended => "ended".into(),
                    Link::Lost(why) => format!("lost: {why}"),
                },
                problems: e.problems.clone(),
            })
            .collect();
        out.sort_by(|a, b| (a.rank, &a.producer).cmp(&(b.rank, &b.producer)));
        out
    }

    /// The domain followed on.
    pub fn domain(&self) -> u16 {
        self.domain
    }

    /// Producers seen that the consumer did not follow (more than `max_producers`).
    pub fn ignored_producers(&self) -> u64 {
        self.shared.lock().ignored_producers
    }

    /// Samples held now.
    pub fn held(&self) -> usize {
        self.shared.lock().store.len()
    }

    /// Changes with every sample taken in and every change of a producer's state.
    pub fn version(&self) -> u64 {
        self.shared.lock().version
    }

    /// A copy of the samples held, with the version it reflects; `None` while none is held.
    pub fn samples(&self) -> Option<(Samples, u64)> {
        let st = self.shared.lock();
        let (input_len, target_len) = st.shape?;
        if st.store.len() == 0 {
            return None;
        }
        let (inputs, targets) = st.store.copy();
        Some((
            Samples {
                inputs,
                targets,
                input_len,
                target_len,
            },
            st.version,
        ))
    }

    /// Whether producers were seen and every one has ended (read whole) or was lost.
    pub fn settled(&self) -> bool {
        let st = self.shared.lock();
        !st.producers.is_empty()
            && st
                .producers
                .iter()
                .all(|e| matches!(e.link, Link::Ended | Link::Lost(_)))
    }

    /// Producers seen so far.
    pub fn producers(&self) -> usize {
        self.shared.lock().producers.len()
    }

    /// Waits until `n` producers were seen, up to `timeout` or `cancel`; returns how many were.
    pub fn wait_for_producers(&self, n: usize, timeout: Duration, cancel: &CancelToken) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.producers();
            if seen >= n || Instant::now() >= deadline || cancel.is_cancelled() {
                return seen;
            }
            self.wait_changed(self.version(), Duration::from_millis(100));
        }
    }

    /// Waits up to `timeout` for the version to move past `since`; returns the version.
    pub fn wait_changed(&self, since: u64, timeout: Duration) -> u64 {
        let st = self.shared.lock();
        let (st, _) = self
            .shared
            .changed
            .wait_timeout_while(st, timeout, |s| s.version == since)
            .unwrap_or_else(|e| e.into_inner());
        st.version
    }

    /// Stops reading (also on drop).
    pub fn stop(&mut self) {
        self.engine.stop(Duration::from_secs(2));
    }
}

/// Reads announcements; starts a connection task per new producer of `stream`.
async fn discover(
    reader: crate::dds::Reader<ProducerInfo>,
    stream: String,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    let mut announcements = reader.into_stream();
    loop {
        let got = tokio::select! {
            _ = shutdown.wait() => return,
            got = announcements.next() => got,
        };
        let Some(got) = got else { return };
        let info = match got.value {
            Ok(info) if info.stream == stream => info,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("malformed producer announcement: {e}");
                continue;
            }
        };
        let mut st = shared.lock();
        if let Some(&i) = st.by_id.get(&info.producer) {
            let e = &mut st.producers[i];
            e.announced = e.announced.max(info.produced);
            e.last_heard = Instant::now();
            continue;
        }
        if st.producers.len() >= shared.max_producers {
            st.ignored_producers += 1;
            continue;
        }
        let i = st.producers.len();
        st.by_id.insert(info.producer, i);
        st.producers.push(Entry {
            id: info.producer,
            rank: info.rank,
            addrs: info.addrs.clone(),
            port: info.port,
            announced: info.produced,
            next_seq: 0,
            received: 0,
            rejected_shape: 0,
            rejected_values: 0,
            dropped_by_producer: 0,
            dropped_by_cap: 0,
            duplicates: 0,
            link: Link::Connecting,
            last_heard: Instant::now(),
            problems: Vec::new(),
        });
        st.version += 1;
        drop(st);
        shared.changed.notify_all();
        tracing::info!("following producer rank {} of stream {stream:?}", info.rank);
        tokio::task::spawn_local(follow(shared.clone(), i, shutdown.clone()));
    }
}

/// How long connecting to a producer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Between attempts to reach a producer that still announces itself.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Reads producer `i` until its end, reconnecting from where it left off while the producer
/// still announces itself; gives it up as lost after `silence`.
async fn follow(shared: Arc<Shared>, i: usize, mut shutdown: Shutdown) {
    let (id, addrs, port) = {
        let st = shared.lock();
        let e = &st.producers[i];
        (e.id, e.addrs.clone(), e.port)
    };
    loop {
        let why = tokio::select! {
            _ = shutdown.wait() => return,
            r = read_producer(&shared, i, id, &addrs, port) => match r {
                Ok(()) => return,
                Err(why) => why,
            },
        };
        let silent = {
            let st = shared.lock();
            st.producers[i].last_heard.elapsed() >= shared.silence
        };
        if silent {
            let lost = format!("{why}; silent for {:?}", shared.silence);
            shared.update(i, |e| {
                let produced = e.announced.max(e.next_seq);
                let missed = produced.saturating_sub(e.next_seq);
                e.link = Link::Lost(if missed > 0 {
                    format!("{lost}; {missed} announced sample(s) never read")
                } else {
                    lost
                });
            });
            return;
        }
        shared.update(i, |e| {
            if e.link == Link::Live {
                e.link = Link::Connecting;
            }
        });
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}

/// One connection to a producer: hello from where we are, then frames until the end.
async fn read_producer(
    shared: &Shared,
    i: usize,
    id: u64,
    addrs: &[Ipv4Addr],
    port: u16,
) -> Result<(), String> {
    let mut conn = None;
    let mut why = String::from("no address announced");
    for a in addrs {
        let to = SocketAddr::from((*a, port));
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
            Ok(Ok(c)) => {
                conn = Some(c);
                break;
            }
            Ok(Err(e)) => why = format!("cannot connect to {to}: {e}"),
            Err(_) => why = format!("cannot connect to {to}: timed out"),
        }
    }
    let conn = conn.ok_or(why)?;
    let _ = conn.set_nodelay(true);
    let mut conn = match &shared.tls {
        None => Connection::Plain(conn),
        Some(tls) => tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(conn, None))
            .await
            .map_err(|_| "no TLS handshake in time".to_string())??,
    };
    let from = shared.lock().producers[i].next_seq;
    conn.write_all(&wire::hello(id, from))
        .await
        .map_err(|e| format!("hello: {e}"))?;
    conn.flush().await.map_err(|e| format!("hello: {e}"))?;
    shared.update(i, |e| {
        e.link = Link::Live;
        e.last_heard = Instant::now();
    });
    let mut body = Vec::new();
    loop {
        let mut head = [0u8; 5];
        match tokio::time::timeout(shared.silence, conn.read_exact(&mut head)).await {
            Err(_) => return Err(format!("nothing for {:?}", shared.silence)),
            Ok(Err(e)) => return Err(format!("connection ended before the stream did ({e})")),
            Ok(Ok(_)) => {}
        }
        let len = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes")) as usize;
        if len > wire::MAX_FRAME {
            let what = format!("a frame of {len} bytes (at most {})", wire::MAX_FRAME);
            shared.update(i, |e| e.problem(what.clone()));
            return Err(what);
        }
        if !len.is_multiple_of(4) {
            let what = format!("a frame of {len} bytes (frames are whole 4-byte words)");
            shared.update(i, |e| e.problem(what.clone()));
            return Err(what);
        }
        // The buffer is kept between frames and grows only as bytes arrive (1 MiB at a time):
        // a frame announced but not sent costs little, and frames no larger than one already
        // read are read in place (zeroing the buffer for every frame was one more pass over
        // every byte streamed).
        let words = len / 4;
        let mut read = 0;
        while read < words {
            let upto = if body.len() > read {
                words.min(body.len())
            } else {
                body.resize(words.min(read + (1 << 18)), 0);
                body.len()
            };
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut body[read..upto]);
            tokio::time::timeout(shared.silence, conn.read_exact(bytes))
                .await
                .map_err(|_| "a frame cut short".to_string())?
                .map_err(|e| format!("a frame cut short ({e})"))?;
            read = upto;
        }
        let body = &mut body[..words];
        wire::words_from_le(body);
        shared.lock().producers[i].last_heard = Instant::now();
        match head[0] {
            wire::BATCH => match wire::parse_batch(body) {
                Ok(b) => take_batch(shared, i, b),
                Err(what) => {
                    shared.update(i, |e| e.problem(what.clone()));
                    return Err(what);
                }
            },
            wire::GAP if len == 16 => {
                let (first, n) = (word_pair(&body[..2]), word_pair(&body[2..]));
                shared.update(i, |e| {
                    if first == e.next_seq {
                        e.dropped_by_producer += n;
                        e.next_seq += n;
                        e.problem(format!(
                            "{n} sample(s) from #{first} were no longer retained by the producer"
                        ));
                    }
                });
            }
            wire::END if len == 8 => {
                let total = word_pair(&body[..2]);
                let _ = conn.write_all(&[1]).await;
                let _ = conn.flush().await;
                shared.update(i, |e| {
                    e.announced = e.announced.max(total);
                    if e.next_seq < total {
                        let n = total - e.next_seq;
                        e.dropped_by_producer += n;
                        e.problem(format!("the stream ended {n} sample(s) short"));
                        e.next_seq = total;
                    }
                    e.link = Link::Ended;
                });
                return Ok(());
            }
            wire::KEEPALIVE if len == 0 => {}
            tag => {
                let what = format!("an unknown frame (tag {tag}, {len} bytes)");
                shared.update(i, |e| e.problem(what.clone()));
                return Err(what);
            }
        }
    }
}

/// A little-endian u64 from two words (low first).
fn word_pair(w: &[u32]) -> u64 {
    w[0] as u64 | (w[1] as u64) << 32
}

/// Checks a batch and takes in its samples: each new sample once; a batch of the wrong shape
/// or a sample with a non-finite value is rejected and counted.
fn take_batch(shared: &Shared, i: usize, b: BatchFrame<'_>) {
    let mut guard = shared.lock();
    let st = &mut *guard;
    let e = &mut st.producers[i];
    let end = b.first_seq + b.count as u64;
    if end <= e.next_seq {
        e.duplicates += b.count as u64;
        return;
    }
    if b.first_seq > e.next_seq {
        let n = b.first_seq - e.next_seq;
        e.dropped_by_producer += n;
        e.problem(format!(
            "samples #{}..#{} never arrived",
            e.next_seq, b.first_seq
        ));
        e.next_seq = b.first_seq;
    }
    let skip = (e.next_seq - b.first_seq) as usize;
    e.duplicates += skip as u64;
    let fresh = b.count - skip;
    e.received += fresh as u64;
    e.next_seq = end;
    let shape = (b.input_len, b.target_len);
    let expected = *st.shape.get_or_insert_with(|| {
        st.store.shape(shape.0, shape.1);
        shape
    });
    if shape != expected || shape.0 == 0 {
        e.rejected_shape += fresh as u64;
        e.problem(format!(
            "iteration {}: {fresh} sample(s) of {} input and {} target value(s); expected {} and {}",
            b.iteration, shape.0, shape.1, expected.0, expected.1
        ));
    } else {
        let (xs, ys) = b.values.split_at(b.count * shape.0);
        // Branch-free, so it vectorises; the per-sample check runs only on a batch with a
        // non-finite value somewhere.
        let finite = |v: &[f32]| v.iter().fold(true, |ok, x| ok & x.is_finite());
        let clean = finite(b.values);
        let mut bad = 0u64;
        for k in skip..b.count {
            let x = &xs[k * shape.0..(k + 1) * shape.0];
            let y = &ys[k * shape.1..(k + 1) * shape.1];
            let ok = clean || (finite(x) && finite(y));
            if !ok {
                bad += 1;
                continue;
            }
            if let Some(owner) = st.store.insert(x, y, i as u32) {
                st.producers[owner as usize].dropped_by_cap += 1;
            }
        }
        let e = &mut st.producers[i];
        if bad > 0 {
            e.rejected_values += bad;
            e.problem(format!(
                "iteration {}: {bad} sample(s) with a NaN or infinite value",
                b.iteration
            ));
        }
    }
    st.version += 1;
    drop(guard);
    shared.changed.notify_all();
}
