//! Dragon's AI-in-the-loop workflow on amlip: a small network learns sin(x) from an expensive
//! simulation, checked against a cheap one, until five successes; the simulations and the
//! training run as jobs on two computing nodes.
//! Run: `cargo run --release -p amlip-examples --example ai_in_the_loop -- --domain 7`
//! (it starts its own 2 computing nodes; nothing else needs to run).
use std::time::Duration;

use amlip_core::ailoop::{AiLoop, Inference};
use amlip_core::cancel::CancelToken;
use amlip_core::node::ClusterMonitor;
use amlip_core::prelude::*;

fn main() -> Result<(), BoxError> {
    let domain = amlip_examples::domain();
    let cfg = |name: &str| NodeConfig::new(name).domain(domain).localhost();
    // Computing nodes serve sim_cheap, sim_expensive and nn_fit with the built-in registry.
    let _nodes = [
        AsyncComputingNode::serve(cfg("Node0"), Registry::builtin())?,
        AsyncComputingNode::serve(cfg("Node1"), Registry::builtin())?,
    ];
    let main = MainNode::with_config(cfg("Main"))?;
    // What anyone on the domain sees of this main (as `main-node status` shows it).
    let monitor = ClusterMonitor::start(cfg("Watcher"))?;
    main.wait_for_computing_nodes(2, Duration::from_secs(30), &CancelToken::new());
    let workflow = AiLoop {
        ranks_per_node: 4,
        ..AiLoop::default()
    };
    let report = workflow.run(&main, Inference::Local, &CancelToken::new(), &|line| {
        println!("{line}")
    })?;
    println!(
        "{} successes in {} iterations, trained {} time(s); sim-expensive {:.2} s, training {:.2} s",
        report.successes.len(),
        report.iterations,
        report.times_trained,
        report.phases.sim_expensive,
        report.phases.training
    );
    for line in amlip_examples::sessions_seen(&monitor, main.id()) {
        println!("status view: {line}");
    }
    Ok(())
}
