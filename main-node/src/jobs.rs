//! `main-node jobs`: send N upper-case jobs of a given size, check every solution, report
//! per-job times and who solved what.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use amlip_core::cli::{self, NodeArgs};
use amlip_core::prelude::*;
use anyhow::{bail, Context};

use crate::runner::Forward;

#[derive(clap::Args, Debug)]
pub struct JobsArgs {
    /// Jobs per batch.
    #[arg(long, default_value_t = 10)]
    count: usize,

    /// Payload size of each job (the solution has the same size).
    #[arg(long, default_value = "1KB", value_parser = cli::size_arg)]
    size: usize,

    /// Jobs in flight at once (1 = one after the other).
    #[arg(long, default_value_t = 1)]
    in_flight: usize,

    /// Batches to send; the main stays up between them.
    #[arg(long, default_value_t = 1)]
    batches: usize,

    /// Pause between batches.
    #[arg(long, default_value = "0s", value_parser = cli::duration_arg)]
    pause: Duration,

    /// Give up on a job after this long.
    #[arg(long, default_value = "60s", value_parser = cli::duration_arg)]
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
    let letter = b'a' + (i % 26) as u8;
    p.resize(size, letter);
    p
}

pub fn run(node: &NodeArgs, args: &JobsArgs, stop: &Receiver<()>) -> anyhow::Result<()> {
    let (tx, outcomes) = mpsc::channel();
    let main = AsyncMainNode::with_config(node.config("Main"), Forward(std::sync::Mutex::new(tx)))
        .context("cannot start the main node")?;
    println!(
        "main node {} on domain {}: {} batch(es) of {} jobs of {} bytes, {} in flight",
        main.id(),
        main.domain(),
        args.batches,
        args.count,
        args.size,
        args.in_flight.max(1)
    );
    if args.wait_nodes > 0 {
        let deadline = Instant::now() + args.timeout;
        while main.stats().computing_nodes.len() < args.wait_nodes {
            if stop.try_recv().is_ok() {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                bail!(
                    "only {} of {} computing nodes appeared on domain {} within {:?}",
                    main.stats().computing_nodes.len(),
                    args.wait_nodes,
                    main.domain(),
                    args.timeout
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let start = Instant::now();
    let mut times = Vec::new();
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut next = 0usize;
    for batch in 0..args.batches {
        if batch > 0 {
            println!("pausing {:?}", args.pause);
            if stop.recv_timeout(args.pause).is_ok() {
                bail!("interrupted");
            }
        }
        let batch_start = Instant::now();
        let end = next + args.count;
        let mut pending: HashMap<TaskId, (usize, Instant)> = HashMap::new();
        let mut sent = next;
        while next < end || !pending.is_empty() {
            while sent < end && pending.len() < args.in_flight.max(1) {
                let task =
                    main.request_job_solution_with_timeout(payload(sent, args.size), args.timeout)?;
                pending.insert(task, (sent, Instant::now()));
                sent += 1;
            }
            if stop.try_recv().is_ok() {
                bail!("interrupted with {} jobs unanswered", pending.len());
            }
            let Ok((task, outcome)) = outcomes.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let Some((i, at)) = pending.remove(&task) else {
                continue;
            };
            next += 1;
            let took = at.elapsed();
            match outcome {
                Ok((data, server)) => {
                    let expected = payload(i, args.size).to_ascii_uppercase();
                    if data != expected {
                        failures.push(format!("job {i}: wrong solution from {server}"));
                        continue;
                    }
                    times.push(took);
                    *by_node.entry(server.to_string()).or_default() += 1;
                    if !args.quiet {
                        println!(
                            "job {i:>5}  {:>9} bytes  solved by {server}  in {:>9.3} ms",
                            data.len(),
                            took.as_secs_f64() * 1e3
                        );
                    }
                }
                Err(e) => {
                    println!("job {i:>5}  FAILED: {e}");
                    failures.push(format!("job {i}: {e}"));
                }
            }
        }
        if args.batches > 1 {
            println!(
                "batch {batch} done in {:.3} s",
                batch_start.elapsed().as_secs_f64()
            );
        }
    }
    let stats = main.stats();
    let total = args.count * args.batches;
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
