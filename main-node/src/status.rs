//! `main-node status`: every node on the domain (a `ClusterMonitor` of the library), as a
//! table or JSON, once or redrawn.

use std::time::{Duration, Instant};

use amlip_cli::metrics::Sources;
use amlip_cli::serve::HttpServer;
use amlip_cli::{self as cli, dashboard, tables, NodeArgs};
use amlip_core::cancel::CancelToken;
use amlip_core::node::ClusterMonitor;
use anyhow::Context;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  main-node status                   every node seen in 3 s\n  \
main-node status --watch           redraw every second until Ctrl-C\n  \
main-node --domain 42 status --json --for 10s"
)]
pub struct StatusArgs {
    /// Listen this long, print what was seen and exit (nodes announce themselves within about a
    /// second) [default: 3s; with --watch, until Ctrl-C].
    #[arg(long = "for", value_name = "DURATION", value_parser = cli::positive_duration)]
    duration: Option<Duration>,
    /// Print a JSON array of nodes (with --watch: one array per line).
    #[arg(long)]
    json: bool,
    /// Redraw every second.
    #[arg(long)]
    watch: bool,
    /// Serve the live dashboard at http://ADDR:PORT/ (until Ctrl-C, or --for).
    #[arg(long, value_name = "ADDR:PORT")]
    serve: Option<std::net::SocketAddr>,
}

pub fn run(
    node: &NodeArgs,
    args: &StatusArgs,
    stop: &CancelToken,
    sources: &Sources,
) -> anyhow::Result<()> {
    let monitor =
        ClusterMonitor::start(node.config("Status")).context("cannot start the status node")?;
    sources.monitor(monitor.probe());
    let _dashboard = HttpServer::start_if(
        args.serve,
        || dashboard::router(sources.clone()),
        "dashboard",
        "/",
    )
    .context("cannot serve the dashboard (--serve)")?;
    let start = Instant::now();
    let lasting = args.watch || args.serve.is_some();
    let until = args
        .duration
        .or((!lasting).then_some(Duration::from_secs(3)));
    let left = || until.map(|u| u.saturating_sub(start.elapsed()));
    if args.serve.is_some() && !args.watch {
        let wait = left().unwrap_or(Duration::MAX);
        stop.wait_timeout(wait);
        return Ok(());
    }
    if !args.watch {
        let wait = left().unwrap_or_default();
        if stop.wait_timeout(wait) {
            anyhow::bail!("interrupted");
        }
        print(&monitor, args.json, false)?;
        return Ok(());
    }
    loop {
        let tick = left().map_or(Duration::from_secs(1), |l| l.min(Duration::from_secs(1)));
        if stop.wait_timeout(tick) {
            return Ok(());
        }
        print(&monitor, args.json, true)?;
        if left().is_some_and(|l| l.is_zero()) {
            return Ok(());
        }
    }
}

fn print(monitor: &ClusterMonitor, json: bool, redraw: bool) -> anyhow::Result<()> {
    let nodes = monitor.nodes();
    if json {
        println!("{}", serde_json::to_string(&nodes)?);
        return Ok(());
    }
    if redraw {
        print!("\x1b[2J\x1b[H"); // clear the terminal, cursor home
    }
    println!("{}", tables::status(&nodes));
    Ok(())
}
