//! `main-node jobs`: send N upper-case jobs of a given size as a batch, check every solution,
//! report per-job times and who solved what.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use amlip_core::cancel::CancelToken;
use amlip_core::cli::metrics::Sources;
use amlip_core::cli::{self, NodeArgs};
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

/// Job `i`'s payload: its number, then lower-case letters up to `size` bytes.
fn payload(i: usize, size: usize) -> Vec<u8> {
    let mut p = format!("job-{i}-").into_bytes();
    p.truncate(size);
    p.resize(size, b'a' + (i % 26) as u8);
    p
}

pub fn run(
    node: &NodeArgs,
    args: &JobsArgs,
    stop: &CancelToken,
    sources: &Sources,
) -> anyhow::Result<()> {
    let main = MainNode::with_config(node.config("Main")).context("cannot start the main node")?;
    sources.main(main.probe());
    let (count, in_flight) = (args.count as usize, args.in_flight as usize);
    println!(
        "main node {} on domain {}: {} batch(es) of {count} jobs of {} bytes, {in_flight} in flight",
        main.id(),
        main.domain(),
        args.batches,
        args.size,
    );
    let known = main.wait_for_computing_nodes(args.wait_nodes, args.timeout, stop);
    if stop.is_cancelled() {
        bail!("interrupted");
    }
    if known < args.wait_nodes {
        bail!(
            "only {known} of {} computing nodes appeared on domain {} within {:?}",
            args.wait_nodes,
            main.domain(),
            args.timeout
        );
    }
    let start = Instant::now();
    let (mut times, mut failures) = (Vec::new(), Vec::new());
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    for b in 0..args.batches {
        if b > 0 {
            println!("pausing {:?}", args.pause);
            if stop.wait_timeout(args.pause) {
                bail!("interrupted");
            }
        }
        let batch_start = Instant::now();
        let mut batch = main.batch().job_timeout(args.timeout).cancel_on(stop);
        let jobs = b * count..(b + 1) * count;
        let mut next = jobs.start;
        while next < jobs.end && next < jobs.start + in_flight {
            batch.submit(next, payload(next, args.size))?;
            next += 1;
        }
        while let Some(outcome) = batch.next() {
            if next < jobs.end && !stop.is_cancelled() {
                batch.submit(next, payload(next, args.size))?;
                next += 1;
            }
            let i = outcome.label;
            match outcome.result {
                Ok(s) if s.data[..] == payload(i, args.size).to_ascii_uppercase()[..] => {
                    times.push(outcome.elapsed);
                    *by_node.entry(s.server_id.to_string()).or_default() += 1;
                    if !args.quiet {
                        println!(
                            "job {i:>5}  {:>9} bytes  solved by {}  in {:>9.3} ms",
                            s.data.len(),
                            s.server_id,
                            outcome.elapsed.as_secs_f64() * 1e3
                        );
                    }
                }
                Ok(s) => failures.push(format!("job {i}: wrong solution from {}", s.server_id)),
                Err(JobError::Cancelled { .. }) if stop.is_cancelled() => {
                    bail!("interrupted with {} jobs unanswered", batch.pending() + 1)
                }
                Err(e) => {
                    println!("job {i:>5}  FAILED: {e}");
                    failures.push(format!("job {i}: {e}"));
                }
            }
        }
        if stop.is_cancelled() {
            bail!(
                "interrupted after {} of {} jobs",
                times.len(),
                count * args.batches
            );
        }
        if args.batches > 1 {
            println!(
                "batch {b} done in {:.3} s",
                batch_start.elapsed().as_secs_f64()
            );
        }
    }
    let stats = main.stats();
    let total = count * args.batches;
    times.sort();
    let pct = |p: f64| -> f64 {
        times
            .get(((times.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{} of {total} jobs solved, {} failed, in {:.3} s; per job: median {:.3} ms, p99 {:.3} ms",
        times.len(),
        failures.len(),
        start.elapsed().as_secs_f64(),
        pct(0.5),
        pct(0.99)
    );
    println!(
        "re-sent: {}, duplicate solutions dropped: {}",
        stats.resent, stats.duplicates_dropped
    );
    for (server, n) in &by_node {
        println!("  {server}: {n} jobs");
    }
    if !failures.is_empty() {
        bail!(
            "{} of {total} jobs failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::payload;

    #[test]
    fn payloads_are_distinct_and_sized() {
        assert_eq!(payload(3, 10), b"job-3-dddd".to_vec());
        assert_eq!(payload(3, 2), b"jo".to_vec());
        assert_ne!(payload(1, 50), payload(2, 50));
    }
}
