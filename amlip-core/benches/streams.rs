//! Samples per second a consumer ingests from 4 producers of a sample stream (in this process,
//! on loopback), for samples of 1 KB and 100 KB, against TCP moving the same bytes from 4
//! senders to one receiver over loopback.
//!
//! Each producer publishes its share as fast as it can (batches of 64 KB / 800 KB, retained
//! whole); the clock runs from the first publish until the consumer has received every sample
//! (checked, shape-checked and stored under its cap). The consumer's reading runs on one
//! thread, as a trainer's does; the TCP reference reads with one thread per connection.
//!
//!     cargo bench -p amlip-core --bench streams [-- MB_PER_PRODUCER]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use amlip_core::cancel::CancelToken;
use amlip_core::config::NodeConfig;
use amlip_core::stream::{Consumer, ConsumerOptions, Producer, ProducerOptions, Samples};

const PRODUCERS: usize = 4;

/// Seconds for 4 senders to move `bytes` each to one receiving process over loopback TCP.
fn tcp(bytes: usize) -> f64 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = l.local_addr().expect("bound");
    let readers = std::thread::spawn(move || {
        let conns: Vec<TcpStream> = (0..PRODUCERS)
            .map(|_| l.accept().expect("accept").0)
            .collect();
        let threads: Vec<_> = conns
            .into_iter()
            .map(|mut s| {
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 20];
                    let mut left = bytes;
                    while left > 0 {
                        let n = s.read(&mut buf[..left.min(1 << 20)]).expect("read");
                        assert!(n > 0, "cut short");
                        left -= n;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("reader");
        }
    });
    let t = Instant::now();
    let senders: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                let chunk = vec![7u8; 1 << 20];
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    s.write_all(&chunk[..n]).expect("write");
                    left -= n;
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    readers.join().expect("readers");
    t.elapsed().as_secs_f64()
}

/// Seconds for 4 producers to stream `samples` each of `floats` floats to one consumer.
fn stream(domain: u16, floats: usize, per_batch: usize, samples: usize) -> f64 {
    let cfg = NodeConfig::new("Bench").domain(domain).localhost();
    let name = format!("bench{floats}");
    let consumer = Consumer::follow(
        &cfg,
        &name,
        ConsumerOptions {
            keep: 2_000,
            shape: Some((floats - 1, 1)),
            ..Default::default()
        },
    )
    .expect("consumer");
    let producers: Vec<Producer> = (0..PRODUCERS as u32)
        .map(|r| {
            let opts = ProducerOptions {
                retain_bytes: samples * floats * 4 + (64 << 20),
                ..Default::default()
            };
            Producer::start(&cfg, &name, r, opts).expect("producer")
        })
        .collect();
    assert_eq!(
        consumer.wait_for_producers(PRODUCERS, Duration::from_secs(30), &CancelToken::new()),
        PRODUCERS
    );
    let batch = Samples::new(
        vec![0.5; per_batch * (floats - 1)],
        floats - 1,
        vec![0.25; per_batch],
        1,
    )
    .expect("batch");
    let t = Instant::now();
    let threads: Vec<_> = producers
        .into_iter()
        .map(|p| {
            let batch = batch.clone();
            std::thread::spawn(move || {
                for it in 0..(samples / per_batch) as u64 {
                    p.publish(it, &batch).expect("publish");
                }
                p.finish(1, Duration::from_secs(120), &CancelToken::new())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !consumer.settled() {
        assert!(Instant::now() < deadline, "{:?}", consumer.counts());
        consumer.wait_changed(consumer.version(), Duration::from_millis(50));
    }
    let secs = t.elapsed().as_secs_f64();
    for th in threads {
        th.join().expect("producer");
    }
    let c = consumer.counts();
    assert!(c
        .iter()
        .all(|c| c.received == samples as u64 && c.rejected() == 0 && c.dropped_by_producer == 0));
    secs
}

fn main() {
    let mb: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(64);
    let domain = 150 + (std::process::id() % 40) as u16;
    println!("{PRODUCERS} producers x {mb} MB each -> 1 consumer, loopback (domain {domain})\n");
    println!(
        "{:<8} {:>14} {:>14} {:>14} {:>8}",
        "sample", "stream samp/s", "TCP samp/s", "stream MB/s", "ratio"
    );
    for (label, floats, per_batch) in [("1 KB", 256, 64), ("100 KB", 25_600, 8)] {
        let bytes = floats * 4;
        let samples = (mb << 20) / bytes / per_batch * per_batch;
        let s = stream(domain, floats, per_batch, samples);
        let t = tcp(samples * bytes);
        let total = (PRODUCERS * samples) as f64;
        println!(
            "{label:<8} {:>14.0} {:>14.0} {:>14.0} {:>7.2}x",
            total / s,
            total / t,
            total * bytes as f64 / s / 1e6,
            t / s
        );
    }
}
