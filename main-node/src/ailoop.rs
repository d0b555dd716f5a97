//! `main-node ai-loop`: Dragon's AI-in-the-loop workflow on the domain's computing nodes; the
//! seed's lines as they happen, then a summary with the time per phase.

use std::path::PathBuf;
use std::time::Duration;

use amlip_cli::{self as cli, tables, NodeArgs};
use amlip_core::ailoop::{AiLoop, Inference};
use amlip_core::cancel::CancelToken;
use amlip_core::infer::Session;
use amlip_core::prelude::*;
use anyhow::Context;

/// Where the model is asked.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InferArg {
    /// An inference node if one takes the model (e.g. `computing-node --serve-models`),
    /// else here.
    Auto,
    /// On an inference node only (the loop stops if none takes the model).
    Node,
    /// Here, in this process.
    Local,
}

#[derive(clap::Args, Debug)]
pub struct AiLoopArgs {
    /// Successes to reach.
    #[arg(long, default_value_t = 5, value_parser = |s: &str| cli::count_in(s, 1, 10_000))]
    successes: usize,
    /// Largest |model - Taylor| counted as a success.
    #[arg(long, default_value_t = 0.05)]
    tolerance: f64,
    /// sim-expensive ranks per computing node.
    #[arg(long, default_value_t = 8, value_parser = |s: &str| cli::count_in(s, 1, 1024))]
    ranks_per_node: usize,
    /// Samples each sim-expensive rank makes.
    #[arg(long, default_value_t = 32, value_parser = |s: &str| cli::count_in(s, 1, 1 << 20))]
    samples: usize,
    /// RK4 steps per unit of x with which sim-expensive simulates sin (its cost).
    #[arg(long, default_value_t = 100_000, value_parser = |s: &str| cli::count_in(s, 1, 10_000_000))]
    expensive_steps: usize,
    /// Epochs over each round of new samples.
    #[arg(long, default_value_t = 10, value_parser = |s: &str| cli::count_in(s, 1, 10_000))]
    epochs: usize,
    /// Adam's learning rate.
    #[arg(long, visible_alias = "lr", default_value_t = 0.01, value_parser = cli::positive_f32)]
    learning_rate: f32,
    /// Seeds the initial model and the points drawn.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the model is asked.
    #[arg(long, value_enum, default_value = "auto")]
    inference: InferArg,
    /// Wait for this many computing nodes before starting (sim-expensive runs 8 ranks on
    /// each node seen then).
    #[arg(long, default_value_t = 1, value_parser = |s: &str| cli::count_in(s, 1, 10_000))]
    wait_nodes: usize,
    /// Bound on each job (a job whose node is lost is re-sent within it).
    #[arg(long, default_value = "120s", value_parser = cli::positive_duration)]
    job_timeout: Duration,
    /// Iterations at most.
    #[arg(long, default_value_t = 500, value_parser = |s: &str| cli::count_in(s, 1, 1_000_000))]
    max_iterations: usize,
    /// Write the report (successes, phases) here as JSON.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
}

pub fn run(node: &NodeArgs, args: &AiLoopArgs, stop: &CancelToken) -> anyhow::Result<()> {
    let main = MainNode::with_config(node.config("Main")).context("cannot start the main node")?;
    println!("main node {} on domain {}", main.id(), main.domain());
    cli::wait_for_nodes(&main, args.wait_nodes, Duration::from_secs(60), stop)?;
    let cfg = AiLoop {
        successes: args.successes,
        tolerance: args.tolerance,
        ranks_per_node: args.ranks_per_node,
        samples_per_rank: args.samples as u32,
        expensive_steps: args.expensive_steps as u32,
        lr: args.learning_rate,
        epochs: args.epochs as u32,
        seed: args.seed,
        max_iterations: args.max_iterations,
        job_timeout: args.job_timeout,
        ..AiLoop::default()
    };
    let inference = match args.inference {
        InferArg::Local => Inference::Local,
        InferArg::Auto | InferArg::Node => Inference::Session {
            session: Box::new(
                Session::connect(node.config("Main"), cfg.serve_timeout)
                    .context("cannot open an inference session")?,
            ),
            name: "ai-in-the-loop".into(),
        },
    };
    let strict = args.inference == InferArg::Node;
    let say = |line: &str| println!("{line}");
    let report = cfg.run(&main, inference, stop, &say)?;
    if strict && !report.inference.starts_with("inference node") {
        anyhow::bail!("--inference node: {}", report.inference);
    }
    println!("{}", tables::ailoop(&report));
    if let Some(path) = &args.json {
        let json = report.json();
        cli::write_file(path, serde_json::to_vec_pretty(&json)?)?;
    }
    Ok(())
}
