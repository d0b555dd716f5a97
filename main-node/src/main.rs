//! `main-node`: sends jobs to the computing nodes of its DDS domain. Flags in, library
//! sessions and batches do the work, results printed.

mod ailoop;
mod infer;
mod jobs;
mod online;
mod pipeline;
mod status;
mod train;
mod trust;

use std::path::PathBuf;
use std::time::Duration;

use amlip_cli::metrics::{self, Sources};
use amlip_cli::serve::HttpServer;
use amlip_cli::{self as cli, bench, NodeArgs};
use amlip_core::prelude::*;
use anyhow::Context;
use clap::{Parser, Subcommand};

/// Send jobs to computing nodes on the same DDS domain and collect their solutions.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    node: NodeArgs,

    /// Log more.
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train on MNIST or your own data across the computing nodes (AML, the MLP by FedAvg, the
    /// CNN or a dense network by all-reduce), evaluate,
    /// print a table.
    Train(Box<train::TrainArgs>),
    /// Run a pipeline of tasks (prepare, train, evaluate, program) from a TOML file across
    /// the computing nodes; independent tasks run at once, failed ones are re-run.
    Pipeline(pipeline::PipelineArgs),
    /// Stream samples of a simulated function as one rank of a simulation (a demo producer for
    /// `online`; start one process per rank).
    Produce(online::ProduceArgs),
    /// Train a network on a sample stream while the producers run (SmartSim's online
    /// training): the training set grows at each epoch's end; counts per producer at the end.
    Online(Box<online::OnlineArgs>),
    /// Dragon's AI-in-the-loop workflow: infer sin(x), check it against a cheap simulation
    /// (Taylor terms as 4 jobs), retrain from an expensive one (8 ranks per node) until five
    /// successes.
    AiLoop(Box<ailoop::AiLoopArgs>),
    /// Send one job and print (or save) its solution.
    Send {
        /// The job's payload, as text.
        #[arg(required_unless_present = "file")]
        payload: Option<String>,
        /// Send this file's bytes instead (e.g. a safetensors job written from Python).
        #[arg(long, conflicts_with = "payload")]
        file: Option<PathBuf>,
        /// Write the solution's bytes here instead of printing them.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up after this long.
        #[arg(long, default_value = "30s", value_parser = cli::positive_duration)]
        timeout: Duration,
    },
    /// Send N upper-case jobs of a given size, check each solution, print per-job times.
    Jobs(jobs::JobsArgs),
    /// Every node on the domain (AML-IP's too): kind, state, host, jobs, last heard.
    Status(status::StatusArgs),
    /// Send inputs to whoever serves a model; print predictions, and accuracy on labelled data.
    Infer(infer::InferArgs),
    /// The models announced on the domain: name, version, kind, inputs, and who serves them.
    Models(infer::ModelsArgs),
    /// Measure round trips and throughput of upper-case jobs against TCP on loopback.
    Bench(bench::BenchArgs),
    /// Trusted domains: `trust init DIR`, `trust add DIR NAME --role ROLE`, `trust check`.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// The TCP echo server `bench` starts in another network namespace (not for direct use).
    #[command(hide = true)]
    BenchEcho {
        /// Where to listen.
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let verbose = args.verbose;
    match args.command {
        // Files only: no node, no domain joined.
        Command::Trust(cmd) => cli::report(trust::run(cmd), verbose),
        command => cli::report(
            run(Args {
                command,
                node: args.node,
                verbose,
            }),
            verbose,
        ),
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // Tables read best without info logs; the progress display shows what happens.
    let quiet = matches!(
        args.command,
        Command::Bench(_)
            | Command::Train(_)
            | Command::Status(_)
            | Command::Infer(_)
            | Command::Models(_)
            | Command::Produce(_)
            | Command::Online(_)
            | Command::AiLoop(_)
    );
    cli::init_logging(
        match (args.verbose, quiet) {
            (true, _) => "debug",
            (false, true) => "warn",
            (false, false) => "info",
        },
        args.node.log_format == "json",
    );
    let sources = Sources::default();
    let metrics_router = || metrics::router(sources.clone());
    let _metrics = HttpServer::start_if(args.node.metrics, metrics_router, "metrics", "/metrics")
        .context("cannot serve --metrics")?;
    let stop =
        cli::ctrl_c(Duration::from_millis(900)).context("cannot install the Ctrl-C handler")?;
    match args.command {
        Command::Send {
            payload,
            file,
            out,
            timeout,
        } => {
            let job = match (payload, &file) {
                (_, Some(f)) => {
                    std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?
                }
                (Some(text), None) => text.into_bytes(),
                (None, None) => unreachable!("clap requires one"),
            };
            let main = MainNode::with_config(args.node.config("Main"))
                .context("cannot start the main node")?;
            sources.main(main.probe());
            eprintln!("main node {} on domain {}", main.id(), main.domain());
            let solution = main
                .request_job_solution(job, timeout)
                .context("the job got no solution")?;
            match out {
                Some(path) => cli::write_file(&path, &solution.data)?,
                None => println!("{}", String::from_utf8_lossy(&solution.data)),
            }
            eprintln!(
                "solved by {} (task {})",
                solution.server_id, solution.task_id
            );
            Ok(())
        }
        Command::Train(t) => train::run(&args.node, &t, &stop, &sources),
        Command::Pipeline(p) => pipeline::run(&args.node, &p, &stop),
        Command::Produce(p) => online::produce(&args.node, &p, &stop),
        Command::Online(o) => online::online(&args.node, &o, &stop),
        Command::AiLoop(a) => ailoop::run(&args.node, &a, &stop),
        Command::Jobs(j) => jobs::run(&args.node, &j, &stop, &sources),
        Command::Status(s) => status::run(&args.node, &s, &stop, &sources),
        Command::Infer(i) => infer::run(&args.node, &i, &stop),
        Command::Models(m) => infer::models(&args.node, &m, &stop),
        Command::Bench(b) => Ok(bench::run(&args.node, &b, &stop)?),
        Command::Trust(cmd) => trust::run(cmd),
        Command::BenchEcho { listen } => {
            bench::serve_echo(listen).with_context(|| format!("echo server on {listen}"))
        }
    }
}
