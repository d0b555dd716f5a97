//! `main-node jobs`: send N upper-case jobs of a given size as a batch, check every solution,
//! report per-job times and who solved what.

use std::time::Duration;

use amlip_cli::jobs::{self, JobEvent, Workload};
use amlip_cli::metrics::Sources;
use amlip_cli::{self as cli, NodeArgs};
use amlip_core::cancel::CancelToken;
use amlip_core::prelude::*;
use anyhow::{bail, Context};

/// Largest job `--size` accepted: the size nodes accept by default, halved for headroom.
const MAX_SIZE: usize = 1 << 30;

#[derive(clap::Args, Debug)]
pub struct JobsArgs {
    /// Jobs per batch.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    count: u32,
    /// Payload size of each job, at most 1 GiB (the solution has the same size).
    #[arg(long, default_value = "1KB", value_parser = |s: &str| cli::bounded_size(s, MAX_SIZE))]
    size: usize,
    /// Jobs in flight at once (1 = one after the other).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    in_flight: u32,
    /// Batches to send; the main stays up between them.
    #[arg(long, default_value_t = 1, value_parser = |s: &str| cli::count_in(s, 1, 10_000))]
    batches: usize,
    /// Pause between batches.
    #[arg(long, default_value = "0s", value_parser = cli::duration_arg)]
    pause: Duration,
    /// Give up on a job after this long.
    #[arg(long, default_value = "60s", value_parser = cli::positive_duration)]
    timeout: Duration,
    /// Wait for this many computing nodes before sending (at most the job timeout).
    #[arg(long, default_value_t = 0)]
    wait_nodes: usize,
    /// Print only the summary, not a line per job.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(
    node: &NodeArgs,
    args: &JobsArgs,
    stop: &CancelToken,
    sources: &Sources,
) -> anyhow::Result<()> {
    let main = MainNode::with_config(node.config("Main")).context("cannot start the main node")?;
    sources.main(main.probe());
    let w = Workload {
        count: args.count as usize,
        size: args.size,
        in_flight: args.in_flight as usize,
        batches: args.batches,
        pause: args.pause,
        timeout: args.timeout,
    };
    println!(
        "main node {} on domain {}: {} batch(es) of {} jobs of {} bytes, {} in flight",
        main.id(),
        main.domain(),
        w.batches,
        w.count,
        w.size,
        w.in_flight
    );
    cli::wait_for_nodes(&main, args.wait_nodes, args.timeout, stop)?;
    let report = jobs::run(&main, &w, stop, &mut |e| match e {
        JobEvent::Solved {
            job,
            solution: s,
            elapsed,
        } if !args.quiet => println!(
            "job {job:>5}  {:>9} bytes  solved by {}  in {:>9.3} ms",
            s.data.len(),
            s.server_id,
            elapsed.as_secs_f64() * 1e3
        ),
        JobEvent::Failed { job, why } => println!("job {job:>5}  FAILED: {why}"),
        JobEvent::BatchDone { batch, elapsed } if w.batches > 1 => {
            println!("batch {batch} done in {:.3} s", elapsed.as_secs_f64())
        }
        JobEvent::Pausing(d) => println!("pausing {d:?}"),
        _ => {}
    })?;
    let stats = main.stats();
    let total = w.count * w.batches;
    println!(
        "{} of {total} jobs solved, {} failed, in {:.3} s; per job: median {:.3} ms, p99 {:.3} ms",
        report.times.len(),
        report.failures.len(),
        report.elapsed.as_secs_f64(),
        report.percentile_ms(0.5),
        report.percentile_ms(0.99)
    );
    println!(
        "re-sent: {}, duplicate solutions dropped: {}; over the direct path: {} payloads sent, \
         {} received",
        stats.resent, stats.duplicates_dropped, stats.direct_sent, stats.direct_received
    );
    for (server, n) in &report.by_node {
        println!("  {server}: {n} jobs");
    }
    if !report.failures.is_empty() {
        bail!(
            "{} of {total} jobs failed: {}",
            report.failures.len(),
            report.failures.join("; ")
        );
    }
    Ok(())
}
