//! The group's control channel: a TCP listener the main opens (like PyTorch's rendezvous
//! store), where workers join, learn each other's ring addresses, report each step, and are
//! told to stop when a member is lost. Only small JSON lines travel here; gradients go
//! round the ring.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::seal::{hex, unhex, GroupKey, Opener, Sealer, SALT};

/// Longest control line accepted (a peer's input: bounded).
const MAX_LINE: u64 = 64 * 1024;
/// Most connections served at once (workers, re-sent jobs, strangers).
const MAX_CONNECTIONS: usize = 256;

/// What a worker says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ToMain {
    /// I am this rank of this generation; my ring listener is here.
    Join {
        group: u64,
        generation: u32,
        rank: u32,
        ring: SocketAddr,
    },
    /// A step done: its loss on my batch and the hash of my parameters after it.
    Step(StepReport),
    /// An epoch's evaluation, averaged over the group (sent by every worker).
    Eval {
        epoch: usize,
        accuracy: f64,
        loss: f64,
        seconds: f64,
    },
    /// My gradient was not finite at this step.
    NonFinite { step: u64 },
    /// The ring broke under me.
    Broken { why: String },
    /// I ran every step: leaving on purpose.
    Done,
}

/// One step as one worker saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StepReport {
    pub step: u64,
    pub epoch: usize,
    pub loss: f32,
    pub hash: u64,
    pub compute_s: f64,
    pub comm_s: f64,
}

/// What the main says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ToWorker {
    /// Everyone joined: the ring, by rank.
    Peers(Vec<SocketAddr>),
    /// Not a member of the group forming now.
    Stale(String),
    /// A member was lost: stop at once and hand back your state.
    Abort(String),
}

/// What the coordinator saw, for the session to act on.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    /// Every member reported step `step` with the same parameter hash.
    Step {
        step: u64,
        epoch: usize,
        loss: f32,
        hash: u64,
        compute_s: f64,
        comm_s: f64,
    },
    /// Rank 0's evaluation line.
    Eval {
        epoch: usize,
        accuracy: f64,
        loss: f64,
        seconds: f64,
    },
    /// Workers' parameters differ after a step.
    Diverged { step: u64, hashes: Vec<(u32, u64)> },
    /// A worker's gradient was not finite.
    NonFinite { rank: u32, step: u64 },
    /// The generation was aborted; `survivors` were connected then.
    Aborted { why: String, survivors: Vec<u32> },
}

#[derive(Default)]
struct State {
    group: u64,
    generation: u32,
    world: u32,
    joined: BTreeMap<u32, (SocketAddr, Tx)>,
    /// The group's key in a trusted domain: every line is sealed.
    key: Option<GroupKey>,
    running: bool,
    aborted: bool,
    steps: BTreeMap<u64, Vec<(u32, StepReport)>>,
    seen: Vec<Seen>,
}

/// The main's end: listens, admits the members of the current generation, watches them.
pub(crate) struct Coordinator {
    addrs: Vec<SocketAddr>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Coordinator {
    /// Listens on `ip` (unspecified: every interface), announcing `announce` (with the port
    /// chosen) to workers.
    pub fn start(
        ip: Ipv4Addr,
        announce: &[Ipv4Addr],
        group: u64,
        key: Option<GroupKey>,
    ) -> std::io::Result<Coordinator> {
        let listener = TcpListener::bind((ip, 0))?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let state = Arc::new(Mutex::new(State {
            group,
            key,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let acceptor = std::thread::Builder::new()
            .name("group-control".into())
            .spawn(move || accept_loop(listener, st, sp))?;
        Ok(Coordinator {
            addrs: announce
                .iter()
                .map(|ip| SocketAddr::from((*ip, port)))
                .collect(),
            state,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// Where workers reach it.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Starts admitting `world` members of `generation` (closing the previous one's links).
    pub fn begin(&self, generation: u32, world: u32) {
        let mut s = self.state.lock().expect("control lock");
        for (_, (_, c)) in std::mem::take(&mut s.joined) {
            c.shutdown();
        }
        s.generation = generation;
        s.world = world;
        s.running = false;
        s.aborted = false;
        s.steps.clear();
    }

    /// What happened since the last call.
    pub fn drain(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().expect("control lock").seen)
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.begin(u32::MAX, 0);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) if live.load(Ordering::Relaxed) < MAX_CONNECTIONS => {
                let (st, sp, lv) = (state.clone(), stop.clone(), live.clone());
                lv.fetch_add(1, Ordering::Relaxed);
                if let Ok(h) = std::thread::Builder::new()
                    .name("group-member".into())
                    .spawn(move || {
                        serve(s, &st, &sp);
                        lv.fetch_sub(1, Ordering::Relaxed);
                    })
                {
                    handlers.push(h);
                }
                handlers.retain(|h| !h.is_finished());
            }
            Ok(_) => tracing::warn!("group control: too many connections; dropped one"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    for h in handlers {
        let _ = h.join();
    }
}

/// A control connection's sending half; in a trusted group its salt goes first and every
/// line is sealed (hex of the sealed JSON).
pub(crate) struct Tx {
    s: TcpStream,
    seal: Option<Sealer>,
}

impl Tx {
    pub fn new(mut s: TcpStream, key: Option<&GroupKey>) -> std::io::Result<Self> {
        let seal = match key {
            None => None,
            Some(k) => {
                let (sealer, salt) = Sealer::new(k).map_err(std::io::Error::other)?;
                s.write_all(format!("{}\n", hex(&salt)).as_bytes())?;
                Some(sealer)
            }
        };
        Ok(Self { s, seal })
    }

    pub fn shutdown(&self) {
        let _ = self.s.shutdown(std::net::Shutdown::Both);
    }
}

/// A control connection's receiving half (opens sealed lines in a trusted group).
pub(crate) struct Rx {
    r: BufReader<TcpStream>,
    key: Option<GroupKey>,
    open: Option<Opener>,
}

impl Rx {
    pub fn new(s: TcpStream, key: Option<&GroupKey>) -> Self {
        Self {
            r: BufReader::new(s),
            key: key.cloned(),
            open: None,
        }
    }
}

pub(crate) fn send(tx: &mut Tx, msg: &impl Serialize) -> std::io::Result<()> {
    let json = serde_json::to_vec(msg).expect("control messages serialise");
    let mut line = match &mut tx.seal {
        None => json,
        Some(sealer) => {
            let mut b = json;
            sealer.seal(&mut b);
            hex(&b).into_bytes()
        }
    };
    line.push(b'\n');
    tx.s.write_all(&line)
}

/// Reads one message (a line of at most [`MAX_LINE`] bytes): `Ok(None)` on a timeout, `Err`
/// at the end of the stream or on a malformed (or, sealed, unopenable) line.
pub(crate) fn recv<T: for<'de> Deserialize<'de>>(rx: &mut Rx) -> Result<Option<T>, String> {
    loop {
        let Some(line) = read_line(&mut rx.r)? else {
            return Ok(None);
        };
        let line = &line[..line.len() - 1];
        let json = match (&rx.key, &mut rx.open) {
            (None, _) => line.to_vec(),
            (Some(key), None) => {
                let salt = std::str::from_utf8(line)
                    .ok()
                    .and_then(unhex)
                    .filter(|b| b.len() == SALT)
                    .ok_or("the first control line is not the sealed channel's salt")?;
                rx.open = Some(Opener::new(key, &salt.try_into().expect("16 bytes")));
                continue;
            }
            (Some(_), Some(opener)) => {
                let mut b = std::str::from_utf8(line)
                    .ok()
                    .and_then(unhex)
                    .ok_or("a sealed control line that is not hex")?;
                opener.open(&mut b)?.to_vec()
            }
        };
        return serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| format!("malformed control line: {e}"));
    }
}

/// One line, newline included: `Ok(None)` on a timeout before any byte.
fn read_line(r: &mut BufReader<TcpStream>) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    match r.by_ref().take(MAX_LINE).read_until(b'\n', &mut line) {
        Ok(0) => Err("connection closed".into()),
        Ok(_) if !line.ends_with(b"\n") => Err(format!(
            "a control line longer than {MAX_LINE} bytes or cut short"
        )),
        Ok(_) => Ok(Some(line)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            if line.is_empty() {
                Ok(None)
            } else {
                Err("a control line cut short".into())
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// One connection: a join, then the member's reports until it leaves or the group stops.
fn serve(stream: TcpStream, state: &Mutex<State>, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let key = state.lock().expect("control lock").key.clone();
    let Ok(mut writer) = stream.try_clone().and_then(|w| Tx::new(w, key.as_ref())) else {
        return;
    };
    let mut reader = Rx::new(stream, key.as_ref());
    let started = Instant::now();
    let join = loop {
        match recv::<ToMain>(&mut reader) {
            Ok(Some(m)) => break m,
            Ok(None)
                if started.elapsed() < Duration::from_secs(10) && !stop.load(Ordering::Relaxed) =>
            {
                continue
            }
            _ => return,
        }
    };
    let ToMain::Join {
        group,
        generation,
        rank,
        ring,
    } = join
    else {
        let _ = send(
            &mut writer,
            &ToWorker::Stale("the first control line must be a join".into()),
        );
        return;
    };
    {
        let mut s = state.lock().expect("control lock");
        let why = if group != s.group {
            Some(format!(
                "group {group:x} is not this main's ({:x})",
                s.group
            ))
        } else if generation != s.generation || s.running || s.aborted {
            Some(format!(
                "generation {generation} is not forming (now: generation {})",
                s.generation
            ))
        } else if rank >= s.world || s.joined.contains_key(&rank) {
            Some(format!(
                "rank {rank} is taken or not in a group of {}",
                s.world
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let _ = send(&mut writer, &ToWorker::Stale(why));
            return;
        }
        s.joined.insert(rank, (ring, writer));
        if s.joined.len() == s.world as usize {
            s.running = true;
            let peers: Vec<SocketAddr> = s.joined.values().map(|(a, _)| *a).collect();
            for (_, (_, c)) in s.joined.iter_mut() {
                let _ = send(c, &ToWorker::Peers(peers.clone()));
            }
        }
    }
    let why = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match recv::<ToMain>(&mut reader) {
            Ok(None) => continue,
            Ok(Some(ToMain::Step(r))) => step(state, generation, rank, r),
            Ok(Some(ToMain::Eval {
                epoch,
                accuracy,
                loss,
                seconds,
            })) if rank == 0 => state.lock().expect("control lock").seen.push(Seen::Eval {
                epoch,
                accuracy,
                loss,
                seconds,
            }),
            Ok(Some(ToMain::Eval { .. })) => {}
            Ok(Some(ToMain::NonFinite { step })) => state
                .lock()
                .expect("control lock")
                .seen
                .push(Seen::NonFinite { rank, step }),
            Ok(Some(ToMain::Broken { why })) => break format!("worker {rank}: {why}"),
            Ok(Some(ToMain::Done)) => break String::new(),
            Ok(Some(ToMain::Join { .. })) => break format!("worker {rank} joined twice"),
            Err(e) => break format!("worker {rank} left ({e})"),
        }
    };
    let mut s = state.lock().expect("control lock");
    if s.generation != generation || s.joined.remove(&rank).is_none() || why.is_empty() {
        return;
    }
    if s.running && !s.aborted {
        s.aborted = true;
        let survivors: Vec<u32> = s.joined.keys().copied().collect();
        for (_, (_, c)) in s.joined.iter_mut() {
            let _ = send(c, &ToWorker::Abort(why.clone()));
        }
        s.seen.push(Seen::Aborted { why, survivors });
        // The step in flight when the member was lost: the survivors' reports settle it.
        let pending: Vec<u64> = s.steps.keys().copied().collect();
        for step in pending {
            settle(&mut s, step);
        }
    }
}

fn step(state: &Mutex<State>, generation: u32, rank: u32, r: StepReport) {
    let mut s = state.lock().expect("control lock");
    if s.generation != generation {
        return;
    }
    let step = r.step;
    s.steps.entry(step).or_default().push((rank, r));
    settle(&mut s, step);
}

/// Compares a step's parameter hashes once every member (after an abort: every survivor)
/// reported it.
fn settle(s: &mut State, step: u64) {
    let need = if s.aborted {
        s.joined.len().max(1)
    } else {
        s.world as usize
    };
    if s.steps.get(&step).is_none_or(|r| r.len() < need) {
        return;
    }
    let reports = s.steps.remove(&step).expect("just seen");
    let hashes: Vec<(u32, u64)> = reports.iter().map(|(k, r)| (*k, r.hash)).collect();
    if hashes.iter().any(|(_, h)| *h != hashes[0].1) {
        s.seen.push(Seen::Diverged { step, hashes });
        return;
    }
    let n = reports.len() as f64;
    let first = reports
        .iter()
        .min_by_key(|(k, _)| *k)
        .map(|(_, r)| r.clone())
        .expect("one at least");
    s.seen.push(Seen::Step {
        step,
        epoch: first.epoch,
        loss: (reports.iter().map(|(_, r)| r.loss as f64).sum::<f64>() / n) as f32,
        hash: first.hash,
        compute_s: first.compute_s,
        comm_s: first.comm_s,
    });
}
