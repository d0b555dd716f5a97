//! Helpers for tests that run real nodes on loopback. Every test leases its own DDS domain
//! (`amlip_testkit::domain`), so tests of this and any other checkout never see each other.
#![allow(dead_code)]

use std::time::Duration;

use amlip_core::prelude::*;
#[allow(unused_imports)] // not every test file waits
pub use amlip_testkit::{domain, wait_until, Domain};

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,rustdds=off".into()))
        .with_test_writer()
        .try_init();
}

/// A node configuration on `domain`, loopback only, with a test-sized liveness timeout.
pub fn cfg(name: &str, domain: &Domain) -> NodeConfig {
    init_logs();
    NodeConfig::new(name)
        .domain(domain.id())
        .localhost()
        .liveness_timeout(Duration::from_secs(3))
}

/// An async computing node serving the upper-case job, optionally slowed down.
pub fn uppercase_node(name: &str, domain: &Domain, delay: Duration) -> AsyncComputingNode {
    let mut node = AsyncComputingNode::with_config(cfg(name, domain)).unwrap();
    node.run(move |job: &Job, _ctx: &JobContext| {
        std::thread::sleep(delay);
        Ok(Bytes::from(job.data.to_ascii_uppercase()))
    })
    .unwrap();
    node
}

/// Sends `jobs` upper-case jobs as a batch and checks each is answered once, correctly.
/// Returns how many each computing node solved.
pub fn uppercase_batch(
    batch: &mut Batch<'_, String>,
    tag: &str,
    jobs: usize,
) -> std::collections::HashMap<AmlipId, usize> {
    for j in 0..jobs {
        let payload = format!("{tag}-job-{j}");
        batch.submit(payload.clone(), payload).unwrap();
    }
    let mut per_server = std::collections::HashMap::new();
    let mut answered = 0;
    for outcome in batch {
        let s = outcome
            .result
            .unwrap_or_else(|e| panic!("{tag}: job {} failed: {e}", outcome.label));
        assert_eq!(
            std::str::from_utf8(&s.data).unwrap(),
            outcome.label.to_ascii_uppercase(),
            "{tag}: solution of {}",
            outcome.label
        );
        *per_server.entry(s.server_id).or_insert(0) += 1;
        answered += 1;
    }
    assert_eq!(answered, jobs, "{tag}: every job answered exactly once");
    per_server
}

/// Every sample of `T` written on `topic` of a domain, by any node, as a watching participant
/// of its own receives it (decoded; undecodable ones skipped). Stops on drop.
pub struct Watch<T> {
    pub samples: std::sync::mpsc::Receiver<T>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts watching `topic` on `domain`.
pub fn watch<T: amlip_core::wire::WireType + Send + 'static>(
    domain: &Domain,
    topic: &str,
    profile: amlip_core::dds::Profile,
) -> Watch<T> {
    use amlip_core::dds::{Network, Participant};
    use futures::StreamExt;
    let participant = Participant::new(domain.id(), &Network::Localhost).unwrap();
    let reader = participant.reader::<T>(topic, profile).unwrap();
    let (tx, samples) = std::sync::mpsc::channel();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _participant = participant;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut s = reader.into_stream();
            loop {
                tokio::select! {
                    Some(r) = s.next() => {
                        if let Ok(v) = r.value {
                            let _ = tx.send(v);
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {
                        if stopped.try_recv().is_ok() { break; }
                    }
                }
            }
        })
    });
    Watch {
        samples,
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl<T> Drop for Watch<T> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
