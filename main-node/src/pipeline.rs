//! `main-node pipeline FILE.toml`: reads and checks the graph, prints it, runs it on the
//! domain's computing nodes, prints each task's result and timing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use amlip_cli::{self as cli, tables, NodeArgs};
use amlip_core::cancel::CancelToken;
use amlip_core::pipeline::{Pipeline, RunOptions};
use amlip_core::prelude::*;
use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct PipelineArgs {
    /// The pipeline: `[[task]]` tables with name, kind (prepare, train, evaluate, program),
    /// after = [...] and the kind's settings (see the README).
    file: PathBuf,
    /// Only read, check and print the graph.
    #[arg(long)]
    check: bool,
    /// Bound on each attempt of a task.
    #[arg(long, default_value = "30m", value_parser = cli::positive_duration)]
    task_timeout: Duration,
    /// All-reduce groups: how long a step may wait on a silent worker.
    #[arg(long, default_value = "60s", value_parser = cli::positive_duration)]
    step_timeout: Duration,
    /// Seeds data splits and training.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Wait for this many computing nodes before starting.
    #[arg(long, default_value_t = 1)]
    wait_nodes: usize,
}

pub fn run(node: &NodeArgs, args: &PipelineArgs, stop: &CancelToken) -> anyhow::Result<()> {
    let pipeline = Pipeline::from_file(&args.file)?;
    print!("{pipeline}");
    if args.check {
        return Ok(());
    }
    let main = MainNode::with_config(node.config("Main")).context("cannot start the main node")?;
    println!("main node {} on domain {}", main.id(), main.domain());
    cli::wait_for_nodes(&main, args.wait_nodes, args.task_timeout, stop)?;
    let start = Instant::now();
    let opts = RunOptions {
        task_timeout: args.task_timeout,
        seed: args.seed,
        step_timeout: args.step_timeout,
        cancel: stop.clone(),
    };
    let say = |line: &str| println!("{line}");
    let reports = pipeline.run(&main, &opts, &say)?;
    println!("{}", tables::pipeline(&reports));
    let c = main.stats();
    println!(
        "pipeline {} done in {:.1} s; jobs: {} sent, {} solved, {} re-sent",
        pipeline.name,
        start.elapsed().as_secs_f64(),
        c.submitted,
        c.solved,
        c.resent
    );
    Ok(())
}
