//! The direct TCP path between amlip nodes: payloads and handed-off jobs over it, the fallback
//! to DDS when it cannot be reached or is turned off, and peers that stall, cut a payload
//! short, corrupt it or send garbage: every job is answered correctly (re-sent if need be),
//! and nothing hangs.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::common::{cfg, domain, uppercase_batch, uppercase_node, wait_until, watch, Domain};
use amlip_core::prelude::*;

const MB: usize = 1_000_000;

/// A distinctive job: `size` bytes of one letter with a marker in the middle.
fn job(size: usize, letter: u8) -> Vec<u8> {
    let mut v = vec![letter; size];
    v[size / 2] = b'#';
    v
}

fn assert_upper(solution: &[u8], job: &[u8]) {
    assert_eq!(solution.len(), job.len());
    assert!(
        solution == job.to_ascii_uppercase(),
        "the solution is not the job upper-cased"
    );
}

/// A free TCP port on loopback (bound, then released for the node to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the proxy does to the first connection's sender-to-receiver bytes.
#[derive(Clone, Copy)]
enum Fault {
    /// Forward this many bytes, then nothing more (the connection stays open).
    StallAfter(usize),
    /// Flip the byte at this offset.
    FlipByte(usize),
    /// Forward this many bytes, then close both ways.
    CutAfter(usize),
    /// Flip every byte from this offset on.
    FlipFrom(usize),
}

/// A TCP proxy in front of a node's direct path, misbehaving on its first connection only.
/// Dropping it releases stalled connections.
struct Proxy {
    addr: SocketAddrV4,
    faulted: Arc<AtomicUsize>,
    _release: mpsc::Sender<()>,
}

fn proxy(upstream: SocketAddr, fault: Fault) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let SocketAddr::V4(addr) = listener.local_addr().unwrap() else {
        unreachable!()
    };
    let faulted = Arc::new(AtomicUsize::new(0));
    let (release, released) = mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    let f = faulted.clone();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(upstream) else {
                return;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || pump(s2, c2, None, None));
            let fault = (n == 0).then_some(fault);
            let (f, released) = (f.clone(), released.clone());
            std::thread::spawn(move || pump(client, server, fault.map(|x| (x, f)), Some(released)));
        }
    });
    Proxy {
        addr,
        faulted,
        _release: release,
    }
}

/// Copies `from` to `to`, applying `fault`.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    fault: Option<(Fault, Arc<AtomicUsize>)>,
    released: Option<Arc<Mutex<mpsc::Receiver<()>>>>,
) {
    let mut buf = vec![0u8; 64 << 10];
    let mut offset = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        match &fault {
            Some((Fault::StallAfter(at), hit)) if offset + n > *at => {
                let _ = to.write_all(&chunk[..at - offset]);
                hit.fetch_add(1, Ordering::SeqCst);
                // Hold the connection open, silent, until the test ends.
                if let Some(r) = &released {
                    let _ = r.lock().unwrap().recv();
                }
                return;
            }
            Some((Fault::CutAfter(at), hit)) if offset + n > *at => {
                let _ = to.write_all(&chunk[..at - offset]);
                hit.fetch_add(1, Ordering::SeqCst);
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
            Some((Fault::FlipByte(at), hit)) if (offset..offset + n).contains(at) => {
                chunk[at - offset] ^= 0x01;
                hit.fetch_add(1, Ordering::SeqCst);
            }
            Some((Fault::FlipFrom(at), hit)) if offset + n > *at => {
                if offset <= *at {
                    hit.fetch_add(1, Ordering::SeqCst);
                }
                for b in &mut chunk[at.saturating_sub(offset)..] {
                    *b ^= 0x01;
                }
            }
            _ => {}
        }
        offset += n;
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A computing node whose direct path is announced at a proxy with `fault`. Its timeouts
/// are short so that after a failed transfer it takes the re-sent job soon.
fn proxied_node(d: &Domain, fault: Fault) -> (AsyncComputingNode, Proxy) {
    let port = free_port();
    let p = proxy(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), fault);
    let mut node = AsyncComputingNode::with_config(
        cfg("Proxied", d)
            .direct_port(port)
            .direct_advertise(p.addr)
            .computing_timeouts(Duration::from_secs(3), Duration::from_secs(3)),
    )
    .unwrap();
    node.run(amlip_core::kind::plain::uppercase).unwrap();
    (node, p)
}

fn main_node(d: &Domain) -> MainNode {
    let main = MainNode::with_config(cfg("Main", d).stall_timeout(Duration::from_secs(2))).unwrap();
    assert!(wait_until(Duration::from_secs(30), || !main
        .stats()
        .computing_nodes
        .is_empty()));
    main
}

#[test]
fn payloads_and_handed_off_jobs_go_over_the_direct_path() {
    let d = domain();
    let _a = uppercase_node("A", &d, Duration::ZERO);
    let _b = uppercase_node("B", &d, Duration::ZERO);
    let main = main_node(&d);
    for (i, size) in [MB, 10 * MB, 1_000].into_iter().enumerate() {
        let j = job(size, b'a' + i as u8);
        let s = main
            .request_job_solution(j.clone(), Duration::from_secs(60))
            .unwrap();
        assert_upper(&s.data, &j);
    }
    let stats = main.stats();
    assert_eq!(
        (stats.direct_sent, stats.direct_received),
        (3, 3),
        "three jobs and three solutions over TCP"
    );
    // A batch: jobs handed straight to the nodes, small solutions back on their lanes.
    let mut batch = main.batch().job_timeout(Duration::from_secs(60));
    let per_node = uppercase_batch(&mut batch, "handed", 500);
    drop(batch);
    let stats = main.stats();
    assert!(
        stats.direct_sent >= 3 + 450 && stats.direct_received >= 3 + 450,
        "most of the batch went over the direct path: {stats:?}"
    );
    assert_eq!(per_node.values().sum::<usize>(), 500);
    assert_eq!(stats.resent, 0);
}

#[test]
fn an_unreachable_direct_path_falls_back_to_dds() {
    let d = domain();
    // Announce a port nobody listens on: connections are refused.
    let closed = SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port());
    let mut node =
        AsyncComputingNode::with_config(cfg("Unreachable", &d).direct_advertise(closed)).unwrap();
    node.run(amlip_core::kind::plain::uppercase).unwrap();
    let main = main_node(&d);
    let j = job(MB, b'q');
    let s = main
        .request_job_solution(j.clone(), Duration::from_secs(60))
        .unwrap();
    assert_upper(&s.data, &j);
    let mut batch = main.batch().job_timeout(Duration::from_secs(60));
    uppercase_batch(&mut batch, "fallback", 100);
    drop(batch);
    let stats = main.stats();
    assert_eq!(stats.direct_sent, 0, "nothing reached the node over TCP");
    assert!(
        stats.direct_received > 0,
        "the node reached the main's own direct path"
    );
    assert_eq!(stats.resent, 0, "the job fell back to DDS, not re-sent");
}

#[test]
fn nodes_with_the_direct_path_turned_off_use_dds() {
    let d = domain();
    let mut node = AsyncComputingNode::with_config(cfg("NoDirect", &d).direct_path(false)).unwrap();
    node.run(amlip_core::kind::plain::uppercase).unwrap();
    let main = main_node(&d);
    let j = job(MB, b'n');
    let s = main
        .request_job_solution(j.clone(), Duration::from_secs(60))
        .unwrap();
    assert_upper(&s.data, &j);
    let mut batch = main.batch().job_timeout(Duration::from_secs(60));
    uppercase_batch(&mut batch, "no-direct", 100);
    drop(batch);
    let stats = main.stats();
    assert_eq!((stats.direct_sent, stats.direct_received), (0, 0));
}

/// Runs one 1 MB job through a node behind a proxy with `fault`: it must come back right,
/// after one re-send, with the fault having struck. With `falls_back`, the failure was seen
/// on the connection and the re-sent job went over DDS.
fn faulty_transfer_is_resent(fault: Fault, falls_back: bool) {
    let d = domain();
    let (_node, proxy) = proxied_node(&d, fault);
    let main = main_node(&d);
    let j = job(MB, b'f');
    let s = main
        .request_job_solution(j.clone(), Duration::from_secs(90))
        .unwrap();
    assert_upper(&s.data, &j);
    assert_eq!(proxy.faulted.load(Ordering::SeqCst), 1, "the fault struck");
    let stats = main.stats();
    assert_eq!(
        stats.resent, 1,
        "the failed transfer was re-sent: {stats:?}"
    );
    if falls_back {
        assert_eq!(stats.direct_sent, 0);
    }
}

#[test]
fn a_peer_that_stalls_mid_payload_costs_a_resend() {
    // The node's heartbeat stops listing the job it never fully got before the stalled write
    // times out: the re-send may take the direct path again (the proxy stalls only once).
    faulty_transfer_is_resent(Fault::StallAfter(300_000), false);
}

#[test]
fn a_payload_with_a_wrong_checksum_is_refused_and_resent() {
    faulty_transfer_is_resent(Fault::FlipByte(500_000), true);
}

#[test]
fn a_payload_cut_short_is_resent() {
    faulty_transfer_is_resent(Fault::CutAfter(700_000), true);
}

/// Small jobs handed off on a lane whose first connection turns to garbage after its first
/// few hundred bytes: the node refuses and closes it, and every job written on it is re-sent
/// and answered right.
#[test]
fn jobs_on_a_corrupted_lane_are_resent() {
    let d = domain();
    let (_node, proxy) = proxied_node(&d, Fault::FlipFrom(200));
    let main = main_node(&d);
    let mut batch = main.batch().job_timeout(Duration::from_secs(90));
    uppercase_batch(&mut batch, "lane", 50);
    drop(batch);
    assert_eq!(proxy.faulted.load(Ordering::SeqCst), 1, "the fault struck");
    let stats = main.stats();
    assert!(
        stats.resent >= 1,
        "the refused jobs were re-sent: {stats:?}"
    );
    assert_eq!(stats.solved, 50);
}

/// The other way: a main whose direct path corrupts the first solution sent to it. The
/// main refuses it and the computing node sends it again over DDS.
#[test]
fn a_corrupted_solution_is_refused_and_sent_again_over_dds() {
    let d = domain();
    let _node = uppercase_node("Computing", &d, Duration::ZERO);
    let port = free_port();
    let p = proxy(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Fault::FlipByte(400_000),
    );
    let main =
        MainNode::with_config(cfg("Main", &d).direct_port(port).direct_advertise(p.addr)).unwrap();
    let j = job(MB, b's');
    let s = main
        .request_job_solution(j.clone(), Duration::from_secs(60))
        .unwrap();
    assert_upper(&s.data, &j);
    assert_eq!(p.faulted.load(Ordering::SeqCst), 1, "the fault struck");
    let stats = main.stats();
    assert_eq!(stats.resent, 0, "{stats:?}");
    assert_eq!(
        stats.direct_received, 0,
        "the refused solution was not delivered"
    );
}

/// Garbage on a node's direct port closes that connection; the node keeps serving.
#[test]
fn garbage_on_the_direct_port_is_refused_and_the_node_keeps_serving() {
    let d = domain();
    let port = free_port();
    let mut node = AsyncComputingNode::with_config(cfg("Target", &d).direct_port(port)).unwrap();
    node.run(amlip_core::kind::plain::uppercase).unwrap();
    let main = main_node(&d);
    let hostile: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // A frame announcing 4 GB.
        &[0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0],
        &[7u8; 5000],
    ];
    for bytes in hostile {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(bytes);
        let mut rest = Vec::new();
        // The node closes the connection (read returns) instead of waiting for more.
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "nothing answered to garbage: {rest:?}");
    }
    let j = job(MB, b'g');
    let s = main
        .request_job_solution(j.clone(), Duration::from_secs(60))
        .unwrap();
    assert_upper(&s.data, &j);
    assert_eq!(main.stats().direct_sent, 1);
}

/// Lone jobs between amlip nodes go straight to an idle node over the direct path, with no
/// availability request; a node that joins later gets them the same way; a lone job sent
/// while no node is up is requested and taken by the first to come; and a main facing only a
/// plain AML-IP computing node requests its lone jobs, which that node answers.
#[test]
fn lone_jobs_go_straight_to_an_idle_amlip_node_and_to_aml_ip_nodes_by_request() {
    let d = domain();
    // Every availability request written on the domain, counted as it arrives.
    let watch = watch::<amlip_core::wire::MsRequest>(
        &d,
        amlip_core::dds::topics::JOB_REQUEST_AVAILABILITY,
        amlip_core::dds::Profile::JobControl,
    );
    let mut seen = 0;
    let mut requests = move || {
        seen += watch.samples.try_iter().count();
        seen
    };
    let a = uppercase_node("A", &d, Duration::ZERO);
    let main = main_node(&d);
    // The first job may be requested if the main has not yet heard A's heartbeat.
    main.request_job_solution("warm", Duration::from_secs(30))
        .unwrap();
    let before = requests();
    for i in 0..10 {
        let s = main
            .request_job_solution(format!("lone{i}"), Duration::from_secs(30))
            .unwrap();
        assert_eq!(&s.server_id, a.id());
        assert_eq!(&s.data[..], format!("LONE{i}").as_bytes());
    }
    assert_eq!(
        requests(),
        before,
        "a lone job to an idle amlip node needs no request"
    );
    // A node joining later (A gone) gets lone jobs the same way.
    drop(a);
    let b = uppercase_node("B", &d, Duration::ZERO);
    assert!(wait_until(Duration::from_secs(30), || main
        .stats()
        .computing_nodes
        .contains(b.id())));
    for i in 0..5 {
        let s = main
            .request_job_solution(format!("late{i}"), Duration::from_secs(30))
            .unwrap();
        assert_eq!(&s.server_id, b.id());
    }
    // With no node up, a lone job is requested, and the first node to come takes it.
    drop(b);
    assert!(wait_until(Duration::from_secs(30), || main
        .stats()
        .computing_nodes
        .is_empty()));
    let asked = requests();
    let mut waiting = main.batch::<u8>().job_timeout(Duration::from_secs(60));
    waiting.submit(0, "nobody yet").unwrap();
    assert!(wait_until(Duration::from_secs(10), || requests() > asked));
    let c = uppercase_node("C", &d, Duration::ZERO);
    let outcome = waiting.next().expect("an outcome");
    let s = outcome.result.unwrap();
    assert_eq!((&s.server_id, &s.data[..]), (c.id(), &b"NOBODY YET"[..]));
    drop(waiting);
    drop(c);
    // A plain AML-IP computing node (no heartbeat, no direct path) is asked, and answers.
    let mut plain =
        AsyncComputingNode::with_config(cfg("Plain", &d).aml_ip_compatible_only()).unwrap();
    plain.run(amlip_core::kind::plain::uppercase).unwrap();
    let asked = requests();
    for i in 0..3 {
        let s = main
            .request_job_solution(format!("plain{i}"), Duration::from_secs(30))
            .unwrap();
        assert_eq!(&s.server_id, plain.id());
    }
    assert!(requests() >= asked + 3);
}
