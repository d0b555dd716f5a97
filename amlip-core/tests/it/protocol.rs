//! The job protocol between real nodes over DDS on loopback: N mains x M computing nodes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::common::{cfg, domain, uppercase_batch, uppercase_node, wait_until};
use amlip_core::prelude::*;

#[test]
fn one_main_three_computing_nodes() {
    let d = domain();
    let nodes: Vec<_> = (0..3)
        .map(|i| uppercase_node(&format!("Computing{i}"), &d, Duration::from_millis(5)))
        .collect();
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    let per_server = uppercase_batch(&mut main.batch(), "m", 30);
    assert!(
        per_server.len() >= 2,
        "jobs spread over several nodes: {per_server:?}"
    );
    let served: u64 = nodes.iter().map(|n| n.jobs_served()).sum();
    assert_eq!(served, 30, "no job was computed twice");
    assert_eq!(main.stats().duplicates_dropped, 0);
}

#[test]
fn three_mains_one_computing_node() {
    let d = domain();
    let node = uppercase_node("Computing", &d, Duration::ZERO);
    let mains: Vec<_> = (0..3)
        .map(|i| MainNode::with_config(cfg(&format!("Main{i}"), &d)).unwrap())
        .collect();
    let node_id = node.id().clone();
    std::thread::scope(|s| {
        for (i, main) in mains.iter().enumerate() {
            let node_id = &node_id;
            s.spawn(move || {
                for j in 0..10 {
                    let job = format!("main{i}-job{j}");
                    let sol = main
                        .request_job_solution(job.clone(), Duration::from_secs(30))
                        .unwrap();
                    assert_eq!(sol.data, job.to_ascii_uppercase().as_bytes());
                    assert_eq!(&sol.server_id, node_id);
                }
            });
        }
    });
    assert_eq!(node.jobs_served(), 30);
}

#[test]
fn three_mains_five_computing_nodes_twenty_jobs_each() {
    let d = domain();
    let nodes: Vec<_> = (0..5)
        .map(|i| uppercase_node(&format!("Computing{i}"), &d, Duration::from_millis(10)))
        .collect();
    // Async mains: their batches' outcomes go to the batch, not to the listener.
    let heard = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mains: Vec<_> = (0..3)
        .map(|i| {
            let heard = heard.clone();
            let listener = move |_: Bytes, _: TaskId, _: AmlipId| {
                heard.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            };
            AsyncMainNode::with_config(cfg(&format!("Main{i}"), &d), listener).unwrap()
        })
        .collect();
    let mut all_servers: HashMap<AmlipId, usize> = HashMap::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = mains
            .iter()
            .enumerate()
            .map(|(i, m)| s.spawn(move || uppercase_batch(&mut m.batch(), &format!("main{i}"), 20)))
            .collect();
        for h in handles {
            for (server, n) in h.join().unwrap() {
                *all_servers.entry(server).or_insert(0) += n;
            }
        }
    });
    assert_eq!(all_servers.values().sum::<usize>(), 60);
    assert!(
        all_servers.len() >= 3,
        "jobs spread over several computing nodes: {all_servers:?}"
    );
    let served: u64 = nodes.iter().map(|n| n.jobs_served()).sum();
    assert_eq!(served, 60, "no job was computed twice");
    assert_eq!(heard.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn blocking_computing_node_serves_one_job_per_call() {
    let d = domain();
    let node = ComputingNode::with_config(cfg("Computing", &d)).unwrap();
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let a = main
                .request_job_solution("first", Duration::from_secs(20))
                .unwrap();
            let b = main.request_job_solution("second", Duration::from_secs(20));
            (a, b)
        });
        let first = node
            .process_job(
                |job| Ok(Bytes::from(job.data.to_ascii_uppercase())),
                Duration::from_secs(20),
            )
            .unwrap();
        let second = node
            .process_job(
                |_job| Err("this job is not supported".into()),
                Duration::from_secs(20),
            )
            .unwrap();
        assert_eq!(first.client_id, *main.id());
        assert_eq!(second.error.as_deref(), Some("this job is not supported"));
        let (a, b) = h.join().unwrap();
        assert_eq!(&a.data[..], b"FIRST");
        match b {
            Err(Error::Job(JobError::Failed {
                message, server_id, ..
            })) => {
                assert_eq!(message, "this job is not supported");
                assert_eq!(&server_id, node.id());
            }
            other => panic!("expected an error solution, got {other:?}"),
        }
    });
    // With no call waiting, the node takes no job: the main times out with a clear reason.
    let err = main
        .request_job_solution("nobody", Duration::from_millis(800))
        .unwrap_err();
    assert!(err.to_string().contains("no solution within"), "{err}");
}

#[test]
fn a_panicking_job_gets_an_error_solution_and_the_node_keeps_serving() {
    let d = domain();
    let mut node = AsyncComputingNode::with_config(cfg("Computing", &d)).unwrap();
    node.run(|job: &Job, _ctx: &JobContext| {
        if &job.data[..] == b"boom" {
            panic!("cannot handle boom");
        }
        Ok(Bytes::from(job.data.to_ascii_uppercase()))
    })
    .unwrap();
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    let err = main
        .request_job_solution("boom", Duration::from_secs(20))
        .unwrap_err();
    assert!(err.to_string().contains("cannot handle boom"), "{err}");
    let ok = main
        .request_job_solution("fine", Duration::from_secs(20))
        .unwrap();
    assert_eq!(&ok.data[..], b"FINE");
    assert_eq!(node.jobs_failed(), 1);
}

#[test]
fn a_stopped_computing_node_takes_no_more_jobs() {
    let d = domain();
    let mut a = uppercase_node("A", &d, Duration::ZERO);
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    let s = main
        .request_job_solution("x", Duration::from_secs(20))
        .unwrap();
    assert_eq!(&s.server_id, a.id());
    a.stop();
    let b = uppercase_node("B", &d, Duration::ZERO);
    for _ in 0..5 {
        let s = main
            .request_job_solution("y", Duration::from_secs(20))
            .unwrap();
        assert_eq!(&s.server_id, b.id());
    }
    assert_eq!(a.jobs_served(), 1);
}

#[test]
fn a_node_with_two_workers_computes_two_jobs_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let d = domain();
    let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut node = AsyncComputingNode::with_config(cfg("Two", &d)).unwrap();
    {
        let (inside, most) = (inside.clone(), most.clone());
        node.run_on(
            move |job: &Job, _ctx: &JobContext| {
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Each job waits (bounded) for another to be computing beside it: with one
                // worker, none ever is.
                let _ = wait_until(Duration::from_secs(20), || most.load(Ordering::SeqCst) >= 2);
                inside.fetch_sub(1, Ordering::SeqCst);
                Ok(Bytes::from(job.data.to_ascii_uppercase()))
            },
            2,
        )
        .unwrap();
    }
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    let per_server = uppercase_batch(&mut main.batch(), "pair", 4);
    assert_eq!(per_server.get(node.id()), Some(&4));
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "two jobs computed side by side"
    );
}

#[test]
fn status_node_sees_every_node_start_and_drop() {
    let d = domain();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Status>::new()));
    let mut status = StatusNode::with_config(cfg("Status", &d)).unwrap();
    let s2 = seen.clone();
    status
        .process_status_async(move |s| s2.lock().unwrap().push(s))
        .unwrap();
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    let computing = uppercase_node("Computing", &d, Duration::ZERO);
    let (main_id, computing_id) = (main.id().clone(), computing.id().clone());
    let has = |id: &AmlipId, kind: NodeKind, state: NodeState| {
        seen.lock()
            .unwrap()
            .iter()
            .any(|s| s.id == *id && s.node_kind == kind && s.state == state)
    };
    assert!(wait_until(Duration::from_secs(10), || {
        has(&main_id, NodeKind::Main, NodeState::Running)
            && has(&computing_id, NodeKind::Computing, NodeState::Running)
    }));
    drop(main);
    drop(computing);
    assert!(wait_until(Duration::from_secs(10), || {
        has(&main_id, NodeKind::Main, NodeState::Dropped)
            && has(&computing_id, NodeKind::Computing, NodeState::Dropped)
    }));
    let kinds: HashSet<_> = seen.lock().unwrap().iter().map(|s| s.node_kind).collect();
    assert!(
        kinds.contains(&NodeKind::Status),
        "the status node reports itself too"
    );
}

/// AML-IP puts node names into topic names as they are. Every character a peer's name may hold
/// (printable ASCII but `/`) makes a topic rustdds matches and delivers on: a sample written on
/// `amlip/job_task_data_A<chars>B.01.02.03.04` by one participant reaches another's reader, and
/// decodes with that name. (The Fast DDS side of the same: `main-node/tests/interop.rs`.)
#[test]
fn every_printable_character_makes_a_working_topic() {
    use amlip_core::dds::{topics::Service, Participant, Profile};
    use amlip_core::wire::MsRequest;
    use futures::StreamExt;

    let d = domain();
    // Every character, a dozen to a name (names hold at most 28 bytes): 8 topics, not 94.
    let chars: Vec<char> = (' '..='~').filter(|c| *c != '/').collect();
    let ids: Vec<AmlipId> = chars
        .chunks(12)
        .map(|c| AmlipId::from_parts(&format!("A{}B", String::from_iter(c)), [1, 2, 3, 4]).unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let received = local.block_on(&rt, async {
        let net = Network::Localhost;
        let (pw, pr) = (
            Participant::new(d.id(), &net).unwrap(),
            Participant::new(d.id(), &net).unwrap(),
        );
        let mut streams = futures::stream::SelectAll::new();
        let mut writers = Vec::new();
        for id in &ids {
            let topic = Service::Job.task_data(id);
            streams.push(
                pr.reader::<MsRequest>(&topic, Profile::JobControl)
                    .unwrap()
                    .into_stream(),
            );
            let w = pw.writer::<MsRequest>(&topic, Profile::JobControl).unwrap();
            w.write(&MsRequest {
                client_id: id.clone(),
                task_id: 7,
            })
            .await
            .unwrap();
            writers.push(w);
        }
        let mut got = HashSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while got.len() < ids.len() {
            match tokio::time::timeout_at(deadline, streams.next()).await {
                Ok(Some(s)) => {
                    got.insert(s.value.unwrap().client_id);
                }
                _ => break,
            }
        }
        got
    });
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !received.contains(id))
        .map(|id| format!("{:?}", id.name()))
        .collect();
    assert!(missing.is_empty(), "no sample on the topics of {missing:?}");
}
