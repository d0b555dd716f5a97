//! Failures and hostile input: frozen and vanished computing nodes, late joiners replaying
//! history, garbage on every topic, and interoperation with plain AML-IP peers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{cfg, domain, uppercase_node, wait_until, watch, Domain};
use amlip_core::dds::{topics, DroppedSamples, Participant, Profile};
use amlip_core::node::ClusterMonitor;
use amlip_core::prelude::*;
use amlip_core::wire::{MsReference, MsRequest, WireType};
use futures::StreamExt;

/// A node that freezes on its first job (until the test releases it) and answers late.
#[test]
fn a_job_held_past_its_deadline_is_resent_and_the_late_solution_dropped() {
    let d = domain();
    let (release, frozen) = mpsc::channel::<()>();
    let frozen = Mutex::new(Some(frozen));
    let mut slow = AsyncComputingNode::with_config(cfg("Slow", &d)).unwrap();
    slow.run(move |job: &Job, _ctx: &JobContext| {
        if let Some(wait) = frozen.lock().unwrap().take() {
            let _ = wait.recv_timeout(Duration::from_secs(60));
        }
        Ok(Bytes::from(job.data.to_ascii_uppercase()))
    })
    .unwrap();
    let main =
        MainNode::with_config(cfg("Main", &d).job_deadline(Duration::from_millis(1200))).unwrap();
    // Only the slow node exists when the job goes out, so it takes it.
    assert!(wait_until(Duration::from_secs(30), || !main
        .stats()
        .computing_nodes
        .is_empty()));
    std::thread::scope(|s| {
        let h = s.spawn(|| main.request_job_solution("payload", Duration::from_secs(60)));
        assert!(wait_until(Duration::from_secs(30), || !main
            .stats()
            .running
            .is_empty()));
        let fast = uppercase_node("Fast", &d, Duration::ZERO);
        let sol = h.join().unwrap().unwrap();
        assert_eq!(&sol.data[..], b"PAYLOAD");
        assert_eq!(
            &sol.server_id,
            fast.id(),
            "the re-sent job was solved by the other node while the first was frozen"
        );
        // The frozen node wakes and answers: its solution must be dropped, not delivered.
        release.send(()).unwrap();
        assert!(wait_until(Duration::from_secs(30), || main
            .stats()
            .duplicates_dropped
            == 1));
    });
    let stats = main.stats();
    assert_eq!((stats.solved, stats.resent), (1, 1));
}

/// A computing node that vanishes mid-job has its job re-sent to another node, within the
/// liveness timeout (3 s here; the bound allows 5x).
#[test]
fn a_vanished_computing_node_has_its_job_finished_by_another() {
    let d = domain();
    let started = Arc::new(AtomicBool::new(false));
    let mut doomed = AsyncComputingNode::with_config(cfg("Doomed", &d)).unwrap();
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
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    assert!(wait_until(Duration::from_secs(30), || !main
        .stats()
        .computing_nodes
        .is_empty()));
    std::thread::scope(|sc| {
        let h = sc.spawn(|| main.request_job_solution("job", Duration::from_secs(60)));
        assert!(wait_until(Duration::from_secs(30), || started.load(Ordering::SeqCst)));
        let survivor = uppercase_node("Survivor", &d, Duration::ZERO);
        let t = Instant::now();
        drop(doomed); // leaves the domain with its job unfinished
        let sol = h.join().unwrap().unwrap();
        assert_eq!(&sol.data[..], b"JOB");
        assert_eq!(&sol.server_id, survivor.id());
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "re-sent within 5x the liveness timeout: {:?}",
            t.elapsed()
        );
    });
    assert_eq!(main.stats().resent, 1);
}

/// A computing node that starts after jobs were solved replays the request and target history
/// (transient-local) but must answer none of the old requests. The main has no direct path,
/// so that its lone jobs are requested (an amlip main with one hands them to idle amlip
/// nodes: no request history at all).
#[test]
fn a_late_computing_node_ignores_replayed_history() {
    let d = domain();
    let main_cfg = cfg("Main", &d).direct_path(false);
    late_node_ignores_history(&d, main_cfg);
}

/// The same with a main that speaks plain AML-IP (no heartbeat to say what is still open).
#[test]
fn a_late_computing_node_ignores_history_of_a_plain_aml_ip_main() {
    let d = domain();
    let main_cfg = cfg("PlainMain", &d).aml_ip_compatible_only();
    late_node_ignores_history(&d, main_cfg);
}

fn late_node_ignores_history(d: &Domain, main_cfg: NodeConfig) {
    let first = uppercase_node("First", d, Duration::ZERO);
    let main = MainNode::with_config(main_cfg).unwrap();
    for i in 0..10 {
        let s = main
            .request_job_solution(format!("old{i}"), Duration::from_secs(30))
            .unwrap();
        assert_eq!(&s.server_id, first.id());
    }
    // Watch every availability answer sent to this main.
    let watch = watch::<MsReference>(
        d,
        &topics::job_reply_available(main.id()),
        Profile::JobControl,
    );
    let late = uppercase_node("Late", d, Duration::ZERO);
    drop(first);
    for i in 0..5 {
        let s = main
            .request_job_solution(format!("new{i}"), Duration::from_secs(30))
            .unwrap();
        assert_eq!(&s.server_id, late.id());
    }
    // The late node's answers arrive in the order it wrote them: once its answer to the last
    // new request (task 14) is in, everything it answered before is too.
    let mut late_replies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !late_replies.contains(&14) && Instant::now() < deadline {
        if let Ok(r) = watch.samples.recv_timeout(Duration::from_millis(100)) {
            if r.server_id == *late.id() {
                late_replies.push(r.task_id);
            }
        }
    }
    drop(watch);
    assert!(late_replies.contains(&14), "{late_replies:?}");
    assert!(
        late_replies.iter().all(|t| *t >= 10),
        "the late node answered an old, already taken request: {late_replies:?}"
    );
}

/// Garbage under every topic and type name a node reads: every reader receives it, counts it
/// as malformed and drops it, and the nodes keep serving (a monitor, the reader of mains'
/// summaries, keeps showing the main's). A well-formed request under a foreign type name is
/// dropped too (DDS would not match it).
#[test]
fn garbage_on_every_topic_is_dropped_and_nodes_keep_serving() {
    let d = domain();
    let computing = uppercase_node("Computing", &d, Duration::ZERO);
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    let monitor = ClusterMonitor::start(cfg("Status", &d)).unwrap();
    let ok = main
        .request_job_solution("before", Duration::from_secs(30))
        .unwrap();
    assert_eq!(&ok.data[..], b"BEFORE");

    let mut targets: Vec<(String, &str)> = topics::FIXED_TOPICS
        .iter()
        .map(|(t, ty)| (t.to_string(), *ty))
        .collect();
    targets.extend([
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
    ]);
    let attacker = Participant::new(d.id(), &Network::Localhost).unwrap();
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
    // A well-formed request from a main that does not exist, under a foreign type name.
    let ghost = MsRequest {
        client_id: AmlipId::from_parts("Ghost", [9, 9, 9, 9]).unwrap(),
        task_id: 0,
    };
    // (Another participant: one participant registers a topic under one type name.)
    let foreigner = Participant::new(d.id(), &Network::Localhost).unwrap();
    let foreign = foreigner
        .raw_writer(
            topics::JOB_REQUEST_AVAILABILITY,
            "foreign::request",
            Profile::JobControl,
        )
        .unwrap();
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
        foreign
            .write_body(Bytes::from(ghost.encode()))
            .await
            .unwrap();
    });
    // Every topic's reader got garbage and dropped it as malformed.
    let dropped = || -> BTreeMap<String, DroppedSamples> {
        let mut all = main.dropped_samples();
        let others = computing.dropped_samples().into_iter();
        for (topic, c) in others.chain(monitor.dropped_samples()) {
            let e = all.entry(topic).or_default();
            e.malformed += c.malformed;
            e.foreign_type += c.foreign_type;
        }
        all
    };
    let all_seen = || {
        let seen = dropped();
        targets
            .iter()
            .all(|(t, _)| seen.get(t).is_some_and(|c| c.malformed > 0))
            && seen
                .get(topics::JOB_REQUEST_AVAILABILITY)
                .is_some_and(|c| c.foreign_type > 0)
    };
    assert!(
        wait_until(Duration::from_secs(60), all_seen),
        "not every topic's reader saw and dropped the garbage: {:#?}",
        dropped()
    );
    // Bad payload in a well-formed message: a target naming our computing node for a task it
    // never answered. It must not confuse it.
    let fake_target = MsReference {
        client_id: AmlipId::from_parts("Fake", [1, 2, 3, 4]).unwrap(),
        task_id: 0,
        server_id: computing.id().clone(),
    };
    rt.block_on(async {
        let w = attacker
            .writer::<MsReference>(topics::JOB_TASK_TARGET, Profile::JobControl)
            .unwrap();
        w.write(&fake_target).await.unwrap();
        w.flush(Duration::from_secs(10)).await;
    });
    for i in 0..5 {
        let s = main
            .request_job_solution(format!("after{i}"), Duration::from_secs(30))
            .unwrap();
        assert_eq!(s.data, format!("AFTER{i}").as_bytes());
    }
    assert_eq!(
        computing.jobs_served(),
        6,
        "the ghost request was not served"
    );
    let summary_says = |solved: u64| {
        let nodes = monitor.nodes();
        let m = nodes.iter().find(|n| n.id == main.id().to_string());
        m.and_then(|n| n.main.as_ref())
            .is_some_and(|m| m.solved == solved && m.state == "running")
    };
    assert!(
        wait_until(Duration::from_secs(30), || summary_says(6)),
        "{:?}",
        monitor.nodes()
    );
}

/// Our main with a computing node that speaks only plain AML-IP (no heartbeats, no streams),
/// and the other way round: jobs flow both ways, large payloads as one GENERIC sample.
#[test]
fn plain_aml_ip_peers_interoperate_both_ways() {
    let d = domain();
    let mut plain =
        AsyncComputingNode::with_config(cfg("PlainComputing", &d).aml_ip_compatible_only())
            .unwrap();
    plain.run(amlip_core::kind::plain::uppercase).unwrap();
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    for size in [16usize, 1_000, 1_000_000] {
        let job = vec![b'q'; size];
        let s = main
            .request_job_solution(job, Duration::from_secs(60))
            .unwrap();
        assert_eq!(s.data.len(), size);
        assert!(s.data.iter().all(|b| *b == b'Q'));
        assert_eq!(&s.server_id, plain.id());
    }
    drop(main);
    drop(plain);

    let d = domain();
    let ours = uppercase_node("Computing", &d, Duration::ZERO);
    let plain_main = MainNode::with_config(cfg("PlainMain", &d).aml_ip_compatible_only()).unwrap();
    for size in [16usize, 1_000_000] {
        let s = plain_main
            .request_job_solution(vec![b'z'; size], Duration::from_secs(60))
            .unwrap();
        assert_eq!(s.data.len(), size);
        assert!(s.data.iter().all(|b| *b == b'Z'));
        assert_eq!(&s.server_id, ours.id());
    }
}

/// An async main whose job times out gets `job_failed` through its listener, with a reason
/// naming the situation (the job's timeout is the feature here).
#[test]
fn a_job_nobody_takes_times_out_with_a_reason() {
    let d = domain();
    let (tx, failures) = mpsc::channel();
    struct Failures(Mutex<mpsc::Sender<(TaskId, JobError)>>);
    impl SolutionListener for Failures {
        fn solution_received(&self, _: Bytes, task_id: TaskId, _: AmlipId) {
            panic!("job {task_id} was solved with no computing node on the domain");
        }
        fn job_failed(&self, task_id: TaskId, error: JobError) {
            let _ = self.0.lock().unwrap().send((task_id, error));
        }
    }
    let main = AsyncMainNode::with_config(cfg("Lonely", &d), Failures(Mutex::new(tx))).unwrap();
    let task = main
        .request_job_solution_with_timeout("x", Duration::from_millis(600))
        .unwrap();
    let (t, err) = failures.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(t, task);
    assert!(
        matches!(&err, JobError::Timeout { hint, .. } if hint.contains("no computing node took it")),
        "{err}"
    );
}

/// A batch: outcomes as an iterator and as a stream, progress events, per-job timeouts and
/// cancellation.
#[test]
fn a_batch_reports_progress_and_can_be_cancelled() {
    let d = domain();
    let mut node = AsyncComputingNode::with_config(cfg("Stepper", &d)).unwrap();
    node.run(|job: &Job, ctx: &JobContext| {
        if &job.data[..] == b"forever" {
            while !ctx.is_cancelled() {
                ctx.report_progress(1, 2);
                std::thread::sleep(Duration::from_millis(20));
            }
            return Err("cancelled".into());
        }
        for step in 1..=3 {
            ctx.report_progress(step, 3);
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(Bytes::from(job.data.to_ascii_uppercase()))
    })
    .unwrap();
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    let mut batch = main.batch();
    batch.submit("slow", "slow").unwrap();
    let mut steps = Vec::new();
    let mut outcome = None;
    let mut events = batch.events();
    assert!(matches!(
        events.next(),
        Some(Event::Sent { label: "slow", .. })
    ));
    for ev in events {
        match ev {
            Event::Running { node: n, done, .. } => {
                assert_eq!(&n, node.id());
                steps.push(done);
            }
            Event::Done(o) => outcome = Some(o),
            _ => {}
        }
    }
    let o = outcome.expect("an outcome");
    assert_eq!(&o.result.unwrap().data[..], b"SLOW");
    assert_eq!(o.resent, 0);
    assert!(
        steps.contains(&1) || steps.contains(&2),
        "progress seen: {steps:?}"
    );

    // A job that never ends: its own timeout ends it.
    let mut batch = main.batch();
    batch
        .submit_with_timeout("stuck", "forever", Duration::from_millis(800))
        .unwrap();
    let o = batch.next().unwrap();
    assert!(
        matches!(o.result, Err(JobError::Timeout { .. })),
        "{:?}",
        o.result
    );

    // Cancelled: the job ends as cancelled, the node notices and serves the next.
    let token = CancelToken::new();
    let mut batch = main.batch().cancel_on(&token);
    batch.submit("stuck", "forever").unwrap();
    assert!(wait_until(Duration::from_secs(30), || !main
        .stats()
        .running
        .is_empty()));
    token.cancel();
    let o = batch.next().unwrap();
    assert!(
        matches!(o.result, Err(JobError::Cancelled { .. })),
        "{:?}",
        o.result
    );
    assert!(batch.next().is_none());
    drop(batch);

    // As a stream.
    let mut batch = main.batch();
    for i in 0..3 {
        batch.submit(i, format!("s{i}")).unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut got: Vec<(i32, Bytes)> = rt.block_on(
        batch
            .into_stream()
            .map(|o| (o.label, o.result.unwrap().data))
            .collect(),
    );
    got.sort();
    assert_eq!(
        got,
        vec![
            (0, Bytes::from("S0")),
            (1, Bytes::from("S1")),
            (2, Bytes::from("S2"))
        ]
    );
}
