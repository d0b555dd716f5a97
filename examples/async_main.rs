//! A main node that sends jobs without waiting; a listener gets each solution as it arrives
//! (AML-IP's `AsyncMainNode` and `SolutionListener`).
//!
//! Run, with a computing node on the same domain:
//!   `cargo run --release -p computing-node -- --domain 7 --network localhost`
//!   `cargo run --release -p amlip-examples --example async_main -- --domain 7`
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use amlip_core::prelude::*;

fn main() -> Result<(), Error> {
    let (tx, solutions) = mpsc::channel();
    let listener = move |solution: Bytes, task: TaskId, server: AmlipId| {
        let _ = tx.send((task, solution, server));
    };
    let cfg = NodeConfig::new("AsyncMain")
        .domain(amlip_examples::domain())
        .localhost();
    let main = AsyncMainNode::with_config(cfg, listener)?;
    let mut sent = HashMap::new();
    for job in ["alpha", "beta", "gamma", "delta"] {
        let task = main.request_job_solution_with_timeout(job, Duration::from_secs(30))?;
        println!("sent {job:?} as task {task}");
        sent.insert(task, job);
    }
    while !sent.is_empty() {
        let (task, solution, server) = solutions
            .recv_timeout(Duration::from_secs(40))
            .expect("every job is answered within its timeout");
        let job = sent.remove(&task).expect("a job we sent");
        println!(
            "{job} -> {} (by {server})",
            String::from_utf8_lossy(&solution)
        );
        assert_eq!(solution, job.to_uppercase().as_bytes());
    }
    Ok(())
}
