//! The ring all-reduce of the seed CNN's 1,199,882 parameters among 2 and 4 workers on
//! loopback, against TCP moving the same bytes: one connection carrying what one worker sends
//! (`tcp_ms`, what a worker's link carries when every worker has its own host), and one
//! connection per worker at once (`tcp_all_ms`, the same total traffic through this host's
//! cores, which all workers share here).
//!
//!     cargo bench -p amlip-core --bench allreduce [-- ROUNDS]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const PARAMS: usize = 1_199_882;

/// Moving `bytes` over a fresh loopback TCP connection, the mean of `rounds`.
fn tcp(bytes: usize, rounds: usize) -> Duration {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = l.local_addr().expect("bound");
    let reader = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = vec![0u8; bytes];
        for _ in 0..=rounds {
            s.read_exact(&mut buf).expect("read");
            s.write_all(&[1]).expect("ack");
        }
    });
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let data = vec![7u8; bytes];
    let mut ack = [0u8];
    s.write_all(&data).expect("write"); // warm-up
    s.read_exact(&mut ack).expect("ack");
    let t = Instant::now();
    for _ in 0..rounds {
        s.write_all(&data).expect("write");
        s.read_exact(&mut ack).expect("ack");
    }
    let d = t.elapsed() / rounds as u32;
    reader.join().expect("reader");
    d
}

/// `streams` transfers of `bytes` at once; the slowest's mean time.
fn tcp_parallel(streams: usize, bytes: usize, rounds: usize) -> Duration {
    let hs: Vec<_> = (0..streams)
        .map(|_| std::thread::spawn(move || tcp(bytes, rounds)))
        .collect();
    hs.into_iter()
        .map(|h| h.join().expect("tcp thread"))
        .max()
        .unwrap_or_default()
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    for world in [2usize, 4] {
        let (ring, sent) =
            amlip_core::group::measure_ring(world, PARAMS, rounds).expect("ring on loopback");
        let one = tcp(sent as usize, rounds);
        let all = tcp_parallel(world, sent as usize, rounds);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{{\"workers\": {world}, \"params\": {PARAMS}, \"bytes_per_worker\": {sent}, \"allreduce_ms\": {:.2}, \"tcp_ms\": {:.2}, \"ratio\": {:.2}, \"tcp_all_ms\": {:.2}, \"ratio_all\": {:.2}}}",
            ms(ring),
            ms(one),
            ring.as_secs_f64() / one.as_secs_f64(),
            ms(all),
            ring.as_secs_f64() / all.as_secs_f64()
        );
    }
}
