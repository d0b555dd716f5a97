//! `computing-node`: serves jobs from any main on the domain until Ctrl-C.

use std::time::{Duration, Instant};

use amlip_core::cli::metrics::{self, Sources};
use amlip_core::cli::serve::HttpServer;
use amlip_core::cli::{self, NodeArgs};
use amlip_core::kind::plain;
use amlip_core::prelude::*;
use anyhow::Context;
use clap::Parser;

/// Serve amlip / AML-IP jobs until Ctrl-C.
///
/// The node finds main nodes on its DDS domain by itself and serves the job kinds of amlip's
/// built-in registry (AML and neural-network training on data shards). A job that fails (or
/// that it cannot parse) is answered with an error solution, and the node keeps serving.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    node: NodeArgs,

    /// What to do with plain AML-IP payloads (which name no job kind). `auto`: AML-IP's MNIST
    /// tutorial jobs (`x: ... y: ...`) get a JSON atomization, anything else is upper-cased.
    /// `uppercase`: upper-case every plain payload (the job AML-IP's own tests use).
    #[arg(long, default_value = "auto", value_parser = ["auto", "uppercase"])]
    job: String,

    /// The digit an AML-IP tutorial job trains a classifier for.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=9))]
    tutorial_digit: u8,

    /// Serve this many jobs, then exit (default: until Ctrl-C).
    #[arg(long, value_parser = |s: &str| cli::count_in(s, 1, usize::MAX).map(|n| n as u64))]
    max_jobs: Option<u64>,

    /// Spend this long on each job before answering (simulates work; e.g. 500ms).
    #[arg(long, default_value = "0s", value_parser = cli::duration_arg)]
    work_time: Duration,

    /// Log every job.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let verbose = args.verbose;
    cli::report(run(args), verbose)
}

fn run(args: Args) -> anyhow::Result<()> {
    cli::init_logging(
        if args.verbose { "debug" } else { "info" },
        args.node.log_format == "json",
    );
    let stop =
        cli::ctrl_c(Duration::from_millis(900)).context("cannot install the Ctrl-C handler")?;
    let sources = Sources::default();
    let metrics_router = || metrics::router(sources.clone());
    let _metrics = HttpServer::start_if(args.node.metrics, metrics_router, "metrics", "/metrics")
        .context("cannot serve --metrics")?;
    let mut node = AsyncComputingNode::with_config(args.node.config("Computing"))
        .context("cannot start the computing node")?;
    sources.computing(node.probe());
    let registry = match args.job.as_str() {
        "uppercase" => Registry::builtin().plain(plain::uppercase),
        _ => Registry::builtin().plain(plain::Auto {
            tutorial_digit: args.tutorial_digit,
        }),
    };
    let kinds = registry.kinds().join(", ");
    let work_time = args.work_time;
    node.run(move |job: &Job, ctx: &JobContext| {
        let t = Instant::now();
        tracing::info!(task = job.task_id, main = %job.client_id, bytes = job.data.len(), "working on job");
        while t.elapsed() < work_time && !ctx.is_cancelled() {
            std::thread::sleep(Duration::from_millis(10).min(work_time));
        }
        let solution = registry.process_job(job, ctx);
        tracing::info!(task = job.task_id, main = %job.client_id, "job solved in {:?}", t.elapsed());
        solution
    })?;
    println!(
        "computing node {} serving {kinds} and plain `{}` jobs on domain {}; Ctrl-C to stop",
        node.id(),
        args.job,
        node.domain()
    );
    let mut last_report = (Instant::now(), 0u64);
    while !stop.wait_timeout(Duration::from_millis(100)) {
        let served = node.jobs_served() + node.jobs_failed();
        if args.max_jobs.is_some_and(|m| served >= m) {
            // Let the last solution leave before the node does.
            stop.wait_timeout(Duration::from_millis(300));
            break;
        }
        if last_report.0.elapsed() >= Duration::from_secs(5) && served != last_report.1 {
            tracing::info!(
                served = node.jobs_served(),
                failed = node.jobs_failed(),
                "jobs so far"
            );
            last_report = (Instant::now(), served);
        }
    }
    let (served, failed) = (node.jobs_served(), node.jobs_failed());
    drop(node);
    println!("computing node stopped after {served} jobs ({failed} failed)");
    Ok(())
}
