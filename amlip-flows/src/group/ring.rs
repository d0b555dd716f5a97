//! Ring all-reduce between the workers of a group, over direct TCP connections: each worker
//! sends to the next and receives from the previous, so every link carries the same load and
//! no node is a bottleneck. Reduce-scatter then all-gather: each chunk is summed at exactly one
//! worker and copied to the others, so every worker ends with the same bits. (Values are
//! sent in the host's byte order: little-endian on every platform amlip builds for.)

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::seal::{GroupKey, Opener, Sealer, SALT, TAG};

/// Bytes a ring connection opens with: magic, group, generation, rank of the sender.
const HELLO: usize = 4 + 8 + 4 + 4;
const MAGIC: &[u8; 4] = b"AMLR";

/// Why a ring operation failed (a peer died, stalled, or the group was aborted).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RingError(pub String);

/// Who a worker is in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub group: u64,
    pub generation: u32,
    pub rank: u32,
}

impl Member {
    fn hello(&self) -> [u8; HELLO] {
        let mut b = [0u8; HELLO];
        b[..4].copy_from_slice(MAGIC);
        b[4..12].copy_from_slice(&self.group.to_le_bytes());
        b[12..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..20].copy_from_slice(&self.rank.to_le_bytes());
        b
    }
}

/// A worker's two links: to the next worker and from the previous one.
pub(crate) struct Ring {
    rank: usize,
    world: usize,
    next: Option<(TcpStream, Option<Sealer>)>,
    prev: Option<(TcpStream, Option<Opener>)>,
    tmp: Vec<f32>,
    /// A sealed frame's bytes (trusted groups).
    buf: Vec<u8>,
}

/// Breaks a ring's links from another thread, so that a blocked all-reduce returns at once.
#[derive(Clone, Default)]
pub(crate) struct RingBreaker(Arc<Mutex<(bool, Vec<TcpStream>)>>);

impl RingBreaker {
    /// Shuts the links down (now, and any made later).
    pub fn break_ring(&self) {
        let mut g = self.0.lock().expect("ring breaker lock");
        g.0 = true;
        for s in &g.1 {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn watch(&self, s: &TcpStream) -> Result<(), RingError> {
        let mut g = self.0.lock().expect("ring breaker lock");
        if g.0 {
            return Err(RingError("the group was aborted".into()));
        }
        g.1.push(
            s.try_clone()
                .map_err(|e| RingError(format!("cannot watch a ring link: {e}")))?,
        );
        Ok(())
    }
}

impl Ring {
    /// Links worker `me.rank` of `peers.len()` into the ring: connects to the next worker's
    /// listener and accepts the previous one's connection on `listener`, checking who it is
    /// (anything else connecting is dropped). `timeout` bounds forming the ring and then
    /// every read and write.
    pub fn form(
        me: Member,
        peers: &[SocketAddr],
        listener: &TcpListener,
        timeout: Duration,
        breaker: &RingBreaker,
        key: Option<&GroupKey>,
    ) -> Result<Ring, RingError> {
        let world = peers.len();
        let rank = me.rank as usize;
        let mut ring = Ring {
            rank,
            world,
            next: None,
            prev: None,
            tmp: Vec::new(),
            buf: Vec::new(),
        };
        if world <= 1 {
            return Ok(ring);
        }
        let deadline = Instant::now() + timeout;
        let next_addr = peers[(rank + 1) % world];
        let connect = std::thread::scope(|s| {
            let dialer = s.spawn(|| -> Result<(TcpStream, Option<Sealer>), RingError> {
                loop {
                    match TcpStream::connect_timeout(&next_addr, Duration::from_secs(2)) {
                        Ok(mut t) => {
                            let link = |e: std::io::Error| {
                                RingError(format!("ring link to {next_addr}: {e}"))
                            };
                            // Sealed: the salt in clear, then the hello sealed.
                            let mut hello = me.hello().to_vec();
                            let sealer = match key {
                                None => None,
                                Some(k) => {
                                    let (mut sealer, salt) = Sealer::new(k).map_err(RingError)?;
                                    t.write_all(&salt).map_err(link)?;
                                    sealer.seal(&mut hello);
                                    Some(sealer)
                                }
                            };
                            t.write_all(&hello).map_err(link)?;
                            return Ok((t, sealer));
                        }
                        Err(e) if Instant::now() > deadline => {
                            return Err(RingError(format!(
                                "cannot reach the next worker at {next_addr}: {e}"
                            )))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            });
            let prev = accept_prev(me, world, listener, deadline, key);
            (dialer.join().expect("the dialer does not panic"), prev)
        });
        let (next, prev) = (connect.0?, connect.1?);
        for s in [&next.0, &prev.0] {
            let _ = s.set_nodelay(true);
            s.set_read_timeout(Some(timeout))
                .and_then(|_| s.set_write_timeout(Some(timeout)))
                .map_err(|e| RingError(e.to_string()))?;
            breaker.watch(s)?;
        }
        ring.next = Some(next);
        ring.prev = Some(prev);
        Ok(ring)
    }

    /// Sums `values` over the group in place: afterwards every worker holds the same sums.
    pub fn all_reduce(&mut self, values: &mut [f32]) -> Result<(), RingError> {
        let n = self.world;
        if n <= 1 {
            return Ok(());
        }
        let bounds: Vec<(usize, usize)> = (0..n)
            .map(|c| (values.len() * c / n, values.len() * (c + 1) / n))
            .collect();
        let r = self.rank;
        // Reduce-scatter: after n-1 steps worker r holds the sum of chunk r+1.
        for i in 0..n - 1 {
            let send = bounds[(r + n - i) % n];
            let recv = bounds[(r + 2 * n - i - 1) % n];
            self.exchange(&values[send.0..send.1], recv.1 - recv.0)?;
            for (v, t) in values[recv.0..recv.1].iter_mut().zip(&self.tmp) {
                *v += t;
            }
        }
        // All-gather: pass the finished chunks round.
        for i in 0..n - 1 {
            let send = bounds[(r + 1 + n - i) % n];
            let recv = bounds[(r + n - i) % n];
            self.exchange(&values[send.0..send.1], recv.1 - recv.0)?;
            values[recv.0..recv.1].copy_from_slice(&self.tmp);
        }
        Ok(())
    }

    /// Sends `out` to the next worker while receiving `n` values from the previous into
    /// `self.tmp`. Values travel as their little-endian bytes, viewed in place (no copies).
    fn exchange(&mut self, out: &[f32], n: usize) -> Result<(), RingError> {
        self.tmp.resize(n, 0.0);
        let (next, prev) = (
            self.next.as_mut().expect("formed"),
            self.prev.as_mut().expect("formed"),
        );
        let send: &[u8] = bytemuck::cast_slice(out);
        let recv: &mut [u8] = bytemuck::cast_slice_mut(&mut self.tmp[..]);
        let buf = &mut self.buf;
        let (sent, got) = std::thread::scope(|s| {
            let sender = s.spawn(move || match &mut next.1 {
                None => next.0.write_all(send),
                Some(sealer) => {
                    // One copy: sealed in place in a buffer of its own.
                    let mut sealed = Vec::with_capacity(send.len() + TAG);
                    sealed.extend_from_slice(send);
                    sealer.seal(&mut sealed);
                    next.0.write_all(&sealed)
                }
            });
            let got = match &mut prev.1 {
                None => prev.0.read_exact(recv),
                Some(opener) => {
                    buf.resize(recv.len() + TAG, 0);
                    prev.0.read_exact(buf).and_then(|()| {
                        let plain = opener.open(buf).map_err(std::io::Error::other)?;
                        recv.copy_from_slice(plain);
                        Ok(())
                    })
                }
            };
            (sender.join().expect("the sender does not panic"), got)
        });
        sent.map_err(|e| {
            RingError(format!(
                "sending to worker {}: {e}",
                (self.rank + 1) % self.world
            ))
        })?;
        got.map_err(|e| {
            RingError(format!(
                "receiving from worker {}: {e}",
                (self.rank + self.world - 1) % self.world
            ))
        })?;
        Ok(())
    }
}

/// Accepts connections until the previous worker's arrives (by its hello), dropping others.
fn accept_prev(
    me: Member,
    world: usize,
    listener: &TcpListener,
    deadline: Instant,
    key: Option<&GroupKey>,
) -> Result<(TcpStream, Option<Opener>), RingError> {
    let want = Member {
        rank: ((me.rank as usize + world - 1) % world) as u32,
        ..me
    };
    listener
        .set_nonblocking(true)
        .map_err(|e| RingError(e.to_string()))?;
    loop {
        match listener.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if let Some(opener) = read_hello(&mut s, key, &want) {
                    return Ok((s, opener));
                }
                tracing::warn!(
                    "dropped a ring connection that was not worker {}'s",
                    want.rank
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(RingError(format!("worker {} never connected", want.rank)));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(RingError(format!("accepting the previous worker: {e}"))),
        }
    }
}

/// Reads the previous worker's hello (sealed in a trusted group, after its salt); `None` if it
/// is not `want`'s. The opener continues the link.
fn read_hello(s: &mut TcpStream, key: Option<&GroupKey>, want: &Member) -> Option<Option<Opener>> {
    let Some(key) = key else {
        let mut hello = [0u8; HELLO];
        s.read_exact(&mut hello).ok()?;
        return (hello == want.hello()).then_some(None);
    };
    let mut salt = [0u8; SALT];
    s.read_exact(&mut salt).ok()?;
    let mut opener = Opener::new(key, &salt);
    let mut sealed = [0u8; HELLO + TAG];
    s.read_exact(&mut sealed).ok()?;
    let hello = opener.open(&mut sealed).ok()?;
    (*hello == want.hello()).then_some(Some(opener))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_ends_with_the_same_sums_plain_or_sealed() {
        let sealed = GroupKey::random().unwrap();
        for (world, key) in [1usize, 2, 3, 4]
            .into_iter()
            .flat_map(|w| [(w, None), (w, Some(&sealed))])
        {
            let listeners: Vec<TcpListener> = (0..world)
                .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
                .collect();
            let peers: Vec<SocketAddr> =
                listeners.iter().map(|l| l.local_addr().unwrap()).collect();
            let results: Vec<Vec<f32>> = std::thread::scope(|s| {
                let hs: Vec<_> = listeners
                    .iter()
                    .enumerate()
                    .map(|(r, l)| {
                        let peers = peers.clone();
                        s.spawn(move || {
                            let me = Member {
                                group: 9,
                                generation: 1,
                                rank: r as u32,
                            };
                            let mut ring = Ring::form(
                                me,
                                &peers,
                                l,
                                Duration::from_secs(30),
                                &RingBreaker::default(),
                                key,
                            )
                            .unwrap();
                            let mut v: Vec<f32> =
                                (0..1001).map(|i| (i * (r + 1)) as f32 * 0.1).collect();
                            ring.all_reduce(&mut v).unwrap();
                            v
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let k: usize = (1..=world).sum();
            for v in &results {
                assert_eq!(
                    v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    results[0].iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                );
                assert!(
                    (v[1000] - 1000.0 * 0.1 * k as f32).abs() < 0.1,
                    "{world}: {}",
                    v[1000]
                );
            }
        }
    }

    #[test]
    fn a_broken_ring_fails_fast_instead_of_hanging() {
        let listeners: Vec<TcpListener> = (0..2)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let peers: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let breaker = RingBreaker::default();
        let t = Instant::now();
        let err = std::thread::scope(|s| {
            let b = breaker.clone();
            let peers2 = peers.clone();
            let l1 = &listeners[1];
            // Worker 1 joins the ring, then goes silent.
            s.spawn(move || {
                let me = Member {
                    group: 1,
                    generation: 1,
                    rank: 1,
                };
                let ring = Ring::form(
                    me,
                    &peers2,
                    l1,
                    Duration::from_secs(60),
                    &RingBreaker::default(),
                    None,
                )
                .unwrap();
                std::thread::sleep(Duration::from_millis(300));
                b.break_ring();
                drop(ring);
            });
            let me = Member {
                group: 1,
                generation: 1,
                rank: 0,
            };
            let mut ring = Ring::form(
                me,
                &peers,
                &listeners[0],
                Duration::from_secs(60),
                &breaker,
                None,
            )
            .unwrap();
            let mut v = vec![1.0f32; 10];
            ring.all_reduce(&mut v).unwrap_err()
        });
        assert!(t.elapsed() < Duration::from_secs(30), "{err}");
    }
}

// Values travel as the host's bytes; a big-endian host would need a conversion first.
#[cfg(target_endian = "big")]
compile_error!("the all-reduce sends f32 values as little-endian bytes");
