//! A main node that sends jobs one at a time and waits for each solution (AML-IP's
//! `MainNode::request_job_solution`).
//!
//! Run, with a computing node on the same domain:
//!   `cargo run --release -p computing-node -- --domain 7 --network localhost`
//!   `cargo run --release -p amlip-examples --example sync_main -- --domain 7`
use std::time::Duration;

use amlip_core::prelude::*;

fn main() -> Result<(), Error> {
    let cfg = NodeConfig::new("SyncMain")
        .domain(amlip_examples::domain())
        .localhost();
    let main = MainNode::with_config(cfg)?;
    for text in ["hello", "distributed", "world"] {
        // Plain text is a plain AML-IP job: the shipped computing node upper-cases it.
        let solution = main.request_job_solution(text, Duration::from_secs(30))?;
        println!(
            "{text} -> {} (by {})",
            String::from_utf8_lossy(&solution.data),
            solution.server_id
        );
        assert_eq!(solution.data, text.to_uppercase().as_bytes());
    }
    Ok(())
}
