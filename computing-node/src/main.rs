//! `computing-node`: serves jobs from any main on the domain until Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use amlip_cli::metrics::{self, Sources};
use amlip_cli::serve::HttpServer;
use amlip_cli::{self as cli, NodeArgs};
use amlip_core::infer::query::specs_text;
use amlip_core::infer::{HostOptions, ModelHost, ModelServer};
use amlip_core::kind::plain;
use amlip_core::pipeline::{Evaluate, PrepareData, Program};
use amlip_core::prelude::*;
use anyhow::Context;
use clap::Parser;

/// Serve amlip / AML-IP jobs until Ctrl-C.
///
/// The node finds main nodes on its DDS domain by itself and serves the job kinds of amlip's
/// built-in registry (AML and neural-network training on data shards). A job that fails (or
/// that it cannot parse) is answered with an error solution, and the node keeps serving.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Examples:\n  \
computing-node                                       serve jobs on domain 166\n  \
computing-node --domain 7 --network localhost        on one host, domain 7\n  \
computing-node --model cnn=datasets/fixtures/onnx/cnn.onnx   also serve an ONNX model\n  \
computing-node --serve-models                        also serve every model published on the domain"
)]
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

    /// Also serve inference of this model file (ONNX, or a model `main-node train --out`
    /// wrote) on the inference topics, as `NAME=FILE` or `FILE` (named after the file's stem).
    /// Repeatable. Edge nodes and `main-node infer` send it requests.
    #[arg(long = "model", value_name = "[NAME=]FILE")]
    models: Vec<String>,

    /// Also serve inference of every model announced on the domain: published by a model
    /// manager (e.g. `main-node train --publish NAME`) or served by another node (its --model
    /// files), fetching each newer version as it is announced. Nodes started with it all serve
    /// the same models, so any of them can answer any request.
    #[arg(long)]
    serve_models: bool,

    /// Pipelines' `prepare` tasks read data under this directory only [default: datasets,
    /// here or next to the repository the binary was built in].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Run pipelines' `program` tasks: programs under DIR only (none without this flag).
    #[arg(long, value_name = "DIR")]
    allow_programs: Option<PathBuf>,

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
    let registry = registry
        .with(PrepareData::new(
            args.data_dir
                .clone()
                .unwrap_or_else(|| cli::locate(Path::new("datasets"))),
        ))
        .with(Evaluate)
        .with(Program::new(args.allow_programs.clone()));
    let kinds = registry.kinds().join(", ");
    let host = start_model_host(&args)?;
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
    if let Some(host) = host {
        println!("inference node stopped after {} requests", host.served());
    }
    println!("computing node stopped after {served} jobs ({failed} failed)");
    Ok(())
}

/// The inference side: the `--model` files, and with `--serve-models` what model managers
/// publish. `None` when asked for neither.
fn start_model_host(args: &Args) -> anyhow::Result<Option<ModelHost>> {
    if args.models.is_empty() && !args.serve_models {
        return Ok(None);
    }
    let server = ModelServer::new();
    for spec in &args.models {
        let i = server
            .load_spec(spec)
            .with_context(|| format!("--model {spec}"))?;
        println!(
            "serving model {:?} ({}, inputs {}) from {}",
            i.name,
            i.kind,
            specs_text(&i.inputs),
            spec.split_once('=').map_or(spec.as_str(), |(_, path)| path)
        );
    }
    let opts = HostOptions {
        follow: args.serve_models,
    };
    let host = ModelHost::start(&args.node.config("Computing"), server, opts)
        .context("cannot start the inference node")?;
    println!(
        "inference node {} serving {}{}",
        host.inference_id(),
        if args.models.is_empty() {
            "no model yet"
        } else {
            "the models above"
        },
        if args.serve_models {
            ", and every model published on the domain"
        } else {
            ""
        }
    );
    Ok(Some(host))
}
