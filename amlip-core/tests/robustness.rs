//! Failures and hostile input: frozen and vanished computing nodes, late joiners replaying
//! history, garbage on every topic, and interoperation with plain AML-IP peers.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amlip_core::dds::{topics, Participant, Profile};
use amlip_core::prelude::*;
use amlip_core::wire::{MsReference, WireType};
use common::{cfg, uppercase_node, wait_until, Outcomes};
use futures::StreamExt;

/// A node that sleeps through its first job (a frozen node) and answers late.
#[test]
fn a_job_held_past_its_deadline_is_resent_and_the_late_solution_dropped() {
    let d = 110;
    let frozen = Arc::new(AtomicBool::new(true));
    let mut slow = AsyncComputingNode::with_config(cfg("Slow", d)).unwrap();
    let f = frozen.clone();
    slow.run(move |job: &Job, _ctx: &JobContext| {
        if f.swap(false, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(3));
        }
        Ok(Bytes::from(job.data.to_ascii_uppercase()))
    })
    .unwrap();
    let main =
        MainNode::with_config(cfg("Main", d).job_deadline(Duration::from_millis(1200))).unwrap();
    // Only the slow node exists when the job goes out, so it takes it.
    assert!(wait_until(Duration::from_secs(5), || !main
        .stats()
        .computing_nodes
        .is_empty()));
    let start = Instant::now();
    std::thread::scope(|s| {
        let h = s.spawn(|| main.request_job_solution("payload", Duration::from_secs(20)));
        assert!(wait_until(Duration::from_secs(5), || !main
            .stats()
            .running
            .is_empty()));
        let fast = uppercase_node("Fast", d, Duration::ZERO);
        let sol = h.join().unwrap().unwrap();
        assert_eq!(&sol.data[..], b"PAYLOAD");
        assert_eq!(
            &sol.server_id,
            fast.id(),
            "the re-sent job was solved by the other node"
        );
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "solved before the frozen node woke"
        );
        // The frozen node wakes and answers: its solution must be dropped, not delivered.
        assert!(wait_until(Duration::from_secs(10), || main
            .stats()
            .duplicates_dropped
            == 1));
    });
    let stats = main.stats();
    assert_eq!((stats.solved, stats.resent), (1, 1));
}

/// A computing node that vanishes mid-job (here: stops heartbeating because its participant
/// is gone) has its job re-sent to another node.
#[test]
fn a_vanished_computing_node_has_its_job_finished_by_another() {
    let d = 111;
    let started = Arc::new(AtomicBool::new(false));
    let mut doomed = AsyncComputingNode::with_config(cfg("Doomed", d)).unwrap();
    let s = started.clone();
    doomed
        .run(move |_job: &Job, ctx: &JobContext| {
            s.store(true, Ordering::SeqCst);
            while !ctx.is_cancelled() {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err("cancelled".into())
        })
        .unwrap();
    let main = MainNode::with_config(cfg("Main", d)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || !main
        .stats()
        .computing_nodes
        .is_empty()));
    std::thread::scope(|sc| {
        let h = sc.spawn(|| main.request_job_solution("job", Duration::from_secs(30)));
        assert!(wait_until(Duration::from_secs(10), || started.load(Ordering::SeqCst)));
        let survivor = uppercase_node("Survivor", d, Duration::ZERO);
        let t = Instant::now();
        drop(doomed); // leaves the domain with its job unfinished
        let sol = h.join().unwrap().unwrap();
        assert_eq!(&sol.data[..], b"JOB");
        assert_eq!(&sol.server_id, survivor.id());
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "re-sent promptly: {:?}",
            t.elapsed()
        );
    });
    assert_eq!(main.stats().resent, 1);
}

/// A computing node that starts after jobs were solved replays the request and target history
/// (transient-local) but must answer none of the old requests.
#[test]
fn a_late_computing_node_ignores_replayed_history() {
    late_node_ignores_history(112, cfg("Main", 112));
}

/// The same with a main that speaks plain AML-IP (no heartbeat to say what is still open).
#[test]
fn a_late_computing_node_ignores_history_of_a_plain_aml_ip_main() {
    late_node_ignores_history(117, cfg("PlainMain", 117).aml_ip_compatible_only());
}

fn late_node_ignores_history(d: u16, main_cfg: NodeConfig) {
    let first = uppercase_node("First", d, Duration::ZERO);
    let main = MainNode::with_config(main_cfg).unwrap();
    for i in 0..10 {
        let s = main
            .request_job_solution(format!("old{i}"), Duration::from_secs(20))
            .unwrap();
        assert_eq!(&s.server_id, first.id());
    }
    // Watch every availability answer sent to this main.
    let replies = Arc::new(Mutex::new(Vec::<MsReference>::new()));
    let watcher = Participant::new(d, &Network::Localhost).unwrap();
    let reader = watcher
        .reader::<MsReference>(&topics::job_reply_available(main.id()), Profile::JobControl)
        .unwrap();
    let r2 = replies.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let watch = std::thread::spawn(move || {
        rt.block_on(async move {
            let mut s = reader.into_stream();
            let end = tokio::time::sleep(Duration::from_secs(6));
            tokio::pin!(end);
            loop {
                tokio::select! {
                    _ = &mut end => break,
                    Some(r) = s.next() => r2.lock().unwrap().push(r.value.unwrap()),
                }
            }
        })
    });
    let late = uppercase_node("Late", d, Duration::ZERO);
    std::thread::sleep(Duration::from_secs(1)); // history arrives and is digested
    drop(first);
    let t = Instant::now();
    for i in 0..5 {
        let s = main
            .request_job_solution(format!("new{i}"), Duration::from_secs(20))
            .unwrap();
        assert_eq!(&s.server_id, late.id());
    }
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "no waiting on stale requests: {:?}",
        t.elapsed()
    );
    watch.join().unwrap();
    let late_replies: Vec<u32> = replies
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.server_id == *late.id())
        .map(|r| r.task_id)
        .collect();
    assert!(!late_replies.is_empty());
    assert!(
        late_replies.iter().all(|t| *t >= 10),
        "the late node answered an old, already taken request: {late_replies:?}"
    );
}

/// Garbage under every topic and type name a node reads: nodes log, drop, and keep serving.
#[test]
fn garbage_on_every_topic_is_dropped_and_nodes_keep_serving() {
    let d = 113;
    let computing = uppercase_node("Computing", d, Duration::ZERO);
    let main = MainNode::with_config(cfg("Main", d)).unwrap();
    let ok = main
        .request_job_solution("before", Duration::from_secs(20))
        .unwrap();
    assert_eq!(&ok.data[..], b"BEFORE");

    let mut targets: Vec<(String, &str)> = topics::FIXED_TOPICS
        .iter()
        .map(|(t, ty)| (t.to_string(), *ty))
        .collect();
    for (topic, ty) in [
        (
            topics::job_reply_available(main.id()),
            "amlip::ms_reference",
        ),
        (
            topics::job_task_solution(main.id()),
            "amlip::ms_data_GENERIC",
        ),
        (
            topics::job_task_data(computing.id()),
            "amlip::ms_data_GENERIC",
        ),
        (topics::stream(main.id()), "amlipx::chunk"),
        (topics::stream(computing.id()), "amlipx::chunk"),
        (topics::credit(main.id()), "amlipx::credit"),
        (topics::credit(computing.id()), "amlipx::credit"),
    ] {
        targets.push((topic, ty));
    }
    let attacker = Participant::new(d, &Network::Localhost).unwrap();
    let writers: Vec<_> = targets
        .iter()
        .map(|(t, ty)| attacker.raw_writer(t, ty, Profile::JobControl).unwrap())
        .collect();
    let mut seed = 0x9e37_79b9u32;
    let mut garbage = |len: usize| -> Bytes {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect::<Vec<u8>>()
            .into()
    };
    // Well-formed headers with hostile contents: a 4 GB GENERIC, a bad flag, a huge string.
    let mut hostile: Vec<Bytes> = vec![
        Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]),
        Bytes::from_static(&[2, 0, 0, 0, b'M', 0, 1, 2, 3, 4, 0, 0, 7, 0, 0, 0]),
        Bytes::new(),
    ];
    for len in [1usize, 3, 8, 17, 64, 300, 5000] {
        hostile.push(garbage(len));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for w in &writers {
            for body in &hostile {
                w.write_body(body.clone()).await.unwrap();
            }
        }
        for w in &writers {
            w.flush(Duration::from_secs(2)).await;
        }
    });
    // Bad payload in a well-formed message: a target naming our computing node for a task it
    // never answered, and a job nobody asked it for. Neither may confuse it.
    let fake_main = AmlipId::from_parts("Fake", [1, 2, 3, 4]).unwrap();
    let fake_target = MsReference {
        client_id: fake_main.clone(),
        task_id: 0,
        server_id: computing.id().clone(),
    };
    rt.block_on(async {
        let w = attacker
            .writer::<MsReference>(topics::JOB_TASK_TARGET, Profile::JobControl)
            .unwrap();
        w.write(&fake_target).await.unwrap();
        w.flush(Duration::from_secs(2)).await;
    });
    assert_eq!(fake_target.encode().len() % 4, 0);
    for i in 0..5 {
        let s = main
            .request_job_solution(format!("after{i}"), Duration::from_secs(20))
            .unwrap();
        assert_eq!(s.data, format!("AFTER{i}").as_bytes());
    }
    assert_eq!(computing.jobs_served(), 6);
}

/// Our main with a computing node that speaks only plain AML-IP (no heartbeats, no streams),
/// and the other way round: jobs flow both ways, large payloads as one GENERIC sample.
#[test]
fn plain_aml_ip_peers_interoperate_both_ways() {
    let d = 114;
    let mut plain =
        AsyncComputingNode::with_config(cfg("PlainComputing", d).aml_ip_compatible_only()).unwrap();
    plain.run(amlip_core::jobs::uppercase).unwrap();
    let main = MainNode::with_config(cfg("Main", d)).unwrap();
    for size in [16usize, 1_000, 1_000_000] {
        let job = vec![b'q'; size];
        let s = main
            .request_job_solution(job, Duration::from_secs(30))
            .unwrap();
        assert_eq!(s.data.len(), size);
        assert!(s.data.iter().all(|b| *b == b'Q'));
        assert_eq!(&s.server_id, plain.id());
    }
    drop(main);
    drop(plain);

    let d = 115;
    let ours = uppercase_node("Computing", d, Duration::ZERO);
    let plain_main = MainNode::with_config(cfg("PlainMain", d).aml_ip_compatible_only()).unwrap();
    for size in [16usize, 1_000_000] {
        let s = plain_main
            .request_job_solution(vec![b'z'; size], Duration::from_secs(30))
            .unwrap();
        assert_eq!(s.data.len(), size);
        assert!(s.data.iter().all(|b| *b == b'Z'));
        assert_eq!(&s.server_id, ours.id());
    }
}

/// An async main whose job times out gets `job_failed`, with a reason naming the situation.
#[test]
fn a_job_nobody_takes_times_out_with_a_reason() {
    let d = 116;
    let outcomes = Outcomes::default();
    let main = AsyncMainNode::with_config(cfg("Lonely", d), outcomes.clone()).unwrap();
    let task = main
        .request_job_solution_with_timeout("x", Duration::from_millis(600))
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || outcomes.len() == 1));
    let (t, outcome) = outcomes.all().remove(0);
    assert_eq!(t, task);
    let err = outcome.unwrap_err();
    assert!(
        matches!(&err, JobError::Timeout { hint, .. } if hint.contains("no computing node took it")),
        "{err}"
    );
}
