//! A hostile peer on the domain while real jobs run: well-formed requests from mains that do
//! not exist (and in a real main's name, from the attacker's participant), and garbage on every
//! topic. The garbage must arrive (counted), and the real jobs must finish within 2x of their
//! time without the attack.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{cfg, domain, wait_until, Domain};
use amlip_core::dds::{topics, Participant, Profile};
use amlip_core::prelude::*;
use amlip_core::wire::MsRequest;

/// Jobs per batch and the work each takes: long enough that scheduling noise is small.
const JOBS: usize = 12;
const WORK: Duration = Duration::from_millis(150);

fn worker(name: &str, d: &Domain) -> AsyncComputingNode {
    let cfg = cfg(name, d).ghost_timeout(Duration::from_secs(1));
    AsyncComputingNode::serve(cfg, |job: &Job, _ctx: &JobContext| {
        std::thread::sleep(WORK);
        Ok(Bytes::from(job.data.to_ascii_uppercase()))
    })
    .unwrap()
}

/// Sends JOBS jobs at once; checks every solution; returns the batch's wall time.
fn run_batch(main: &MainNode, tag: &str) -> Duration {
    let t = Instant::now();
    let mut batch = main.batch().job_timeout(Duration::from_secs(120));
    for i in 0..JOBS {
        batch.submit(i, format!("{tag}-{i}")).unwrap();
    }
    for o in &mut batch {
        let s = o
            .result
            .unwrap_or_else(|e| panic!("{tag} job {}: {e}", o.label));
        assert_eq!(
            s.data,
            format!("{tag}-{}", o.label).to_uppercase().as_bytes()
        );
    }
    t.elapsed()
}

/// Publishes ghost requests and garbage until `stop`.
fn attack(d: u16, real_main: AmlipId, targets: Vec<(String, &'static str)>, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let attacker = Participant::new(d, &Network::Localhost).unwrap();
    let requests = attacker
        .writer::<MsRequest>(topics::JOB_REQUEST_AVAILABILITY, Profile::JobControl)
        .unwrap();
    let garbage: Vec<_> = targets
        .iter()
        .filter(|(t, _)| t != topics::JOB_REQUEST_AVAILABILITY)
        .map(|(t, ty)| attacker.raw_writer(t, ty, Profile::JobControl).unwrap())
        .collect();
    let ghosts: Vec<AmlipId> = (0..40)
        .map(|i| AmlipId::from_parts(&format!("Ghost{i}"), [i as u8, 1, 2, 3]).unwrap())
        .chain([real_main]) // requests in a real main's name, from the wrong participant
        .collect();
    rt.block_on(async {
        let mut task = 1_000_000u32;
        while !stop.load(Ordering::Relaxed) {
            for g in &ghosts {
                let r = MsRequest {
                    client_id: g.clone(),
                    task_id: task,
                };
                let _ = requests.write(&r).await;
            }
            task += 1;
            for w in &garbage {
                let _ = w.write_body(Bytes::from_static(&[1, 2, 3, 255, 9])).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn ghost_requests_and_garbage_do_not_delay_real_jobs() {
    let d = domain();
    let nodes = [worker("W1", &d), worker("W2", &d)];
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    assert!(wait_until(Duration::from_secs(30), || main
        .stats()
        .computing_nodes
        .len()
        == 2));
    run_batch(&main, "warm");
    let quiet = run_batch(&main, "quiet");

    let mut targets: Vec<(String, &'static str)> = topics::FIXED_TOPICS
        .iter()
        .map(|(t, ty)| (t.to_string(), *ty))
        .collect();
    for n in &nodes {
        targets.push((topics::job_task_data(n.id()), "amlip::ms_data_GENERIC"));
        targets.push((topics::stream(n.id()), "amlipx::chunk"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (stop, main_id) = (stop.clone(), main.id().clone());
        let t = targets.clone();
        std::thread::spawn(move || attack(d.id(), main_id, t, stop))
    };
    // The attack is under way once ghost requests are being refused.
    let refused = || nodes.iter().map(|n| n.requests_refused()).sum::<u64>();
    assert!(
        wait_until(Duration::from_secs(60), || refused() > 0),
        "no ghost request reached the computing nodes"
    );
    let attacked = run_batch(&main, "attacked");
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();

    // The garbage arrived: every topic the computing nodes read counted some.
    for (topic, _) in &targets {
        if topic.starts_with("amlipx/stream_") || topic.starts_with("amlip/job_task_data_") {
            let n = nodes
                .iter()
                .filter_map(|n| n.dropped_samples().get(topic).map(|c| c.malformed))
                .sum::<u64>();
            assert!(n > 0, "no garbage counted on {topic}");
        }
    }
    let refused = refused();
    eprintln!(
        "quiet batch {quiet:?}, under attack {attacked:?} ({:.2}x); {refused} ghost requests refused",
        attacked.as_secs_f64() / quiet.as_secs_f64()
    );
    assert!(
        attacked < quiet * 2,
        "under attack the batch took {attacked:?}, without {quiet:?}"
    );
    let served: u64 = nodes.iter().map(|n| n.jobs_served()).sum();
    assert_eq!(served, 3 * JOBS as u64, "only real jobs were served");
}
