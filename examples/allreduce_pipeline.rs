//! A pipeline built in Rust: prepare MNIST on a computing node, train the dense 784-128-10
//! network by all-reduce across 2 computing nodes, evaluate it on a third task.
//! Run: `cargo run --release -p amlip-examples --example allreduce_pipeline -- --domain 7`
//! (it starts its own 2 computing nodes; nothing else needs to run).
use std::time::Duration;

use amlip_core::cancel::CancelToken;
use amlip_core::node::ClusterMonitor;
use amlip_core::pipeline::{Evaluate, Pipeline, PrepareData, RunOptions, Task, Work};
use amlip_core::prelude::*;

fn task(name: &str, after: &[&str], work: Work) -> Task {
    let after = after.iter().map(|s| s.to_string()).collect();
    Task {
        name: name.into(),
        after,
        retries: 1,
        work,
    }
}

fn main() -> Result<(), BoxError> {
    let domain = amlip_examples::domain();
    let cfg = |name: &str| NodeConfig::new(name).domain(domain).localhost();
    let data = amlip_examples::mnist_dir().join("..");
    let kinds = || {
        Registry::builtin()
            .with(PrepareData::new(&data))
            .with(Evaluate)
    };
    let _nodes = [
        AsyncComputingNode::serve(cfg("Worker0"), kinds())?,
        AsyncComputingNode::serve(cfg("Worker1"), kinds())?,
    ];
    let prepare = Work::Prepare {
        data: "mnist".into(),
        limit: Some(6000),
        test_split: 0.2,
    };
    let train = Work::Train {
        model: "dense".into(),
        workers: 2,
        epochs: 4,
        batch: 64,
        optimizer: "adam".into(),
        lr: None,
        momentum: 0.5,
    };
    let pipeline = Pipeline::new(
        "mnist-dense".into(),
        vec![
            task("prepare", &[], prepare),
            task("train", &["prepare"], train),
            task("evaluate", &["train"], Work::Evaluate {}),
        ],
    )?;
    print!("{pipeline}");
    let main = MainNode::with_config(cfg("Main"))?;
    // What anyone on the domain sees of this main (as `main-node status` shows it).
    let monitor = ClusterMonitor::start(cfg("Watcher"))?;
    let opts = RunOptions {
        task_timeout: Duration::from_secs(300),
        seed: 1,
        step_timeout: Duration::from_secs(60),
        cancel: CancelToken::new(),
    };
    let say = |line: &str| println!("{line}");
    for r in pipeline.run(&main, &opts, &say)? {
        println!(
            "{}: {} in {:.1} s ({} attempt(s)): {}",
            r.name, r.kind, r.seconds, r.attempts, r.summary
        );
    }
    for line in amlip_examples::sessions_seen(&monitor, main.id()) {
        println!("status view: {line}");
    }
    Ok(())
}
