//! Watches every node's status on a domain (AML-IP's `StatusNode`): which nodes exist, of
//! what kind, running or gone.
//!
//! Run: `cargo run --release -p amlip-examples --example status_watcher -- --domain 7`
//! and start or stop `computing-node --domain 7 --network localhost` meanwhile. It stops
//! after 10 s, or once it has seen a computing node.
use std::sync::mpsc;
use std::time::{Duration, Instant};

use amlip_core::prelude::*;

fn main() -> Result<(), Error> {
    let cfg = NodeConfig::new("Watcher")
        .domain(amlip_examples::domain())
        .localhost();
    let mut watcher = StatusNode::with_config(cfg)?;
    let (tx, statuses) = mpsc::channel::<Status>();
    watcher.process_status_async(move |s| {
        let _ = tx.send(s);
    })?;
    let end = Instant::now() + Duration::from_secs(10);
    while let Ok(s) = statuses.recv_timeout(end.saturating_duration_since(Instant::now())) {
        println!("{:<40} {:?} {:?}", s.id.to_string(), s.node_kind, s.state);
        if s.node_kind == NodeKind::Computing {
            println!("a computing node is on the domain");
            break;
        }
    }
    Ok(())
}
