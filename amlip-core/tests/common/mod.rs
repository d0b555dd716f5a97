//! Helpers for tests that run real nodes on loopback.
//!
//! Every test uses its own DDS domain so tests run in parallel without seeing each other.
//! Domains used by amlip-core's tests: 42 (readme.rs) and 100..=149; main-node's process
//! tests use 150..=199.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amlip_core::prelude::*;

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,rustdds=off".into()))
        .with_test_writer()
        .try_init();
}

/// A node configuration on `domain`, loopback only, with test-sized timeouts.
pub fn cfg(name: &str, domain: u16) -> NodeConfig {
    init_logs();
    let mut c = NodeConfig::new(name).domain(domain).localhost();
    c.liveness_timeout = Duration::from_secs(3);
    c
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// One job's outcome: its id and its solution with the solver, or why it failed.
pub type Outcome = (TaskId, Result<(Bytes, AmlipId), JobError>);

/// Every outcome an async main's listener received.
#[derive(Clone, Default)]
pub struct Outcomes {
    inner: Arc<Mutex<Vec<Outcome>>>,
}

impl Outcomes {
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().len()
    }

    pub fn all(&self) -> Vec<Outcome> {
        self.inner.lock().unwrap().clone()
    }

    /// Solutions by task id; panics if any task got two outcomes or failed.
    pub fn solutions_once(&self) -> HashMap<TaskId, (Bytes, AmlipId)> {
        let mut m = HashMap::new();
        for (task, outcome) in self.all() {
            let s = outcome.unwrap_or_else(|e| panic!("job {task} failed: {e}"));
            assert!(m.insert(task, s).is_none(), "job {task} answered twice");
        }
        m
    }
}

impl SolutionListener for Outcomes {
    fn solution_received(&self, solution: Bytes, task_id: TaskId, server_id: AmlipId) {
        self.inner
            .lock()
            .unwrap()
            .push((task_id, Ok((solution, server_id))));
    }

    fn job_failed(&self, task_id: TaskId, error: JobError) {
        self.inner.lock().unwrap().push((task_id, Err(error)));
    }
}

/// An async computing node serving the upper-case job, optionally slowed down.
pub fn uppercase_node(name: &str, domain: u16, delay: Duration) -> AsyncComputingNode {
    let mut node = AsyncComputingNode::with_config(cfg(name, domain)).unwrap();
    node.run(move |job: &Job, _ctx: &JobContext| {
        std::thread::sleep(delay);
        Ok(Bytes::from(job.data.to_ascii_uppercase()))
    })
    .unwrap();
    node
}
