//! `main-node bench`: job round trips and throughput over DDS, with a TCP loopback transfer of
//! the same bytes measured in the same run as the physical reference.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use super::procs::{Children, Placement};
use super::NodeArgs;
use crate::cancel::CancelToken;
use crate::error::Error;
use crate::prelude::*;

/// Why a benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Something measured went wrong (a wrong solution, nodes that never appeared...).
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// A node failed.
    #[error(transparent)]
    Node(#[from] Error),
    /// Starting processes or writing results failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, BenchError>;

macro_rules! fail {
    ($($arg:tt)*) => { return Err(BenchError::Failed(format!($($arg)*))) };
}

/// `main-node bench` flags.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Payload sizes for round trips (job and solution both this size).
    #[arg(long, value_delimiter = ',', default_value = "1KB,100KB,1MB,10MB,50MB",
          value_parser = |s: &str| super::bounded_size(s, 1 << 30))]
    sizes: Vec<usize>,

    /// Measured round trips per size (after the warm-up).
    #[arg(long, default_value_t = 20, value_parser = |s: &str| super::count_in(s, 1, 100_000))]
    jobs: usize,

    /// Warm-up round trips per size (not measured).
    #[arg(long, default_value_t = 3)]
    warmup: usize,

    /// Computing-node counts for the tiny-job throughput runs (0 skips them; at most 11: with
    /// the main, 12 participants is what rustdds finds on one host's loopback).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4",
          value_parser = |s: &str| super::count_in(s, 0, 11))]
    nodes: Vec<usize>,

    /// Tiny (16-byte) jobs per throughput run.
    #[arg(long, default_value_t = 2000, value_parser = |s: &str| super::count_in(s, 1, 1_000_000))]
    tiny_jobs: usize,

    /// Trials of "start a computing node process and a main, solve one job" (0 skips).
    #[arg(long, default_value_t = 5)]
    first_job_trials: usize,

    /// Run the computing nodes, and the TCP echo server of the reference, in this network
    /// namespace (`ip netns exec`; `scripts/bench-hosts.sh` makes one joined by a veth pair).
    #[arg(long, requires = "computing_ip")]
    computing_netns: Option<String>,

    /// The computing nodes' address in that namespace: their `--network`, and where the echo
    /// server listens.
    #[arg(long, requires = "computing_netns")]
    computing_ip: Option<Ipv4Addr>,

    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,

    /// Write the results as CSV here (one row per measurement).
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// Runs the benchmark, printing tables as it goes.
pub fn run(node: &NodeArgs, args: &BenchArgs, stop: &CancelToken) -> Result<()> {
    println!(
        "bench on domain {} (network {:?}{})",
        node.domain,
        node.network,
        if node.network == Network::All {
            "; use --network localhost when every node is on this host"
        } else {
            ""
        }
    );
    let at = Placement {
        netns: args.computing_netns.clone(),
        network: args.computing_ip.map(|ip| ip.to_string()),
    };
    let tcp = TcpEcho::start(&at, args.computing_ip)?;
    let mut results = Vec::new();
    if !args.sizes.is_empty() {
        let _computing = Children::spawn_computing_at(node, 1, &[], &at)?;
        let main = MainNode::with_config(node.config("BenchMain"))?;
        wait_for_nodes(&main, 1, stop)?;
        println!(
            "\nround trips (job + equal-size solution), {} per size after {} warm-up:",
            args.jobs, args.warmup
        );
        println!(
            "{:>10} {:>11} {:>11} {:>11} {:>12} {:>9} {:>11}",
            "size", "median", "p99", "min", "TCP median", "ours/TCP", "MB/s (ours)"
        );
        for &size in &args.sizes {
            check_stop(stop)?;
            let ours = measure(args, |i| {
                let job = payload(size, i);
                let t = Instant::now();
                let s = main.request_job_solution(job, Duration::from_secs(120))?;
                let e = t.elapsed();
                if s.data.len() != size {
                    fail!("solution of {} bytes for a {size}-byte job", s.data.len());
                }
                Ok(e)
            })?;
            let reference = measure(args, |i| tcp.round_trip(&payload(size, i)))?;
            let ratio = ours.median.as_secs_f64() / reference.median.as_secs_f64();
            let mbps = 2.0 * size as f64 / ours.median.as_secs_f64() / 1e6;
            println!(
                "{:>10} {:>11} {:>11} {:>11} {:>12} {:>9.2} {:>11.0}",
                human_size(size),
                ms(ours.median),
                ms(ours.p99),
                ms(ours.min),
                ms(reference.median),
                ratio,
                mbps
            );
            results.push(json!({
                "kind": "round_trip", "size": size, "jobs": args.jobs,
                "median_ms": ours.median.as_secs_f64() * 1e3,
                "p99_ms": ours.p99.as_secs_f64() * 1e3,
                "min_ms": ours.min.as_secs_f64() * 1e3,
                "tcp_median_ms": reference.median.as_secs_f64() * 1e3,
                "ratio_to_tcp": ratio,
            }));
        }
    }
    let nodes: Vec<usize> = args.nodes.iter().copied().filter(|n| *n > 0).collect();
    if !nodes.is_empty() {
        println!(
            "\nthroughput of {} tiny jobs (16 bytes), all submitted at once:",
            args.tiny_jobs
        );
        println!(
            "{:>16} {:>10} {:>10}",
            "computing nodes", "jobs/s", "seconds"
        );
    }
    for n in nodes {
        check_stop(stop)?;
        let (rate, secs) = throughput(node, &at, n, args.tiny_jobs, stop)?;
        println!("{n:>16} {rate:>10.0} {secs:>10.2}");
        results.push(json!({
            "kind": "throughput", "computing_nodes": n, "jobs": args.tiny_jobs,
            "jobs_per_s": rate, "seconds": secs,
        }));
    }
    if args.first_job_trials > 0 {
        check_stop(stop)?;
        let times = first_job(node, &at, args.first_job_trials, stop)?;
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "\nfirst job solved after both processes start ({} trials): median {:.0} ms, max {:.0} ms",
            times.len(),
            median * 1e3,
            sorted[sorted.len() - 1] * 1e3
        );
        results.push(json!({
            "kind": "first_job", "trials": times.len(), "median_ms": median * 1e3,
            "max_ms": sorted[sorted.len() - 1] * 1e3,
        }));
    }
    if let Some(path) = &args.csv {
        let mut csv = String::from("kind,size,computing_nodes,median_ms,p99_ms,min_ms,tcp_median_ms,ratio_to_tcp,jobs_per_s\n");
        for r in &results {
            let f = |k: &str| r.get(k).map(|v| v.to_string()).unwrap_or_default();
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\n",
                r["kind"].as_str().unwrap_or(""),
                f("size"),
                f("computing_nodes"),
                f("median_ms"),
                f("p99_ms"),
                f("min_ms"),
                f("tcp_median_ms"),
                f("ratio_to_tcp"),
                f("jobs_per_s")
            ));
        }
        std::fs::write(path, csv)?;
        println!("results written to {}", path.display());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results).expect("json"))?;
        println!("\nresults written to {}", path.display());
    }
    Ok(())
}

fn check_stop(stop: &CancelToken) -> Result<()> {
    if stop.is_cancelled() {
        return Err(BenchError::Interrupted);
    }
    Ok(())
}

fn wait_for_nodes(main: &MainNode, n: usize, stop: &CancelToken) -> Result<()> {
    let known = main.wait_for_computing_nodes(n, Duration::from_secs(30), stop);
    check_stop(stop)?;
    if known < n {
        fail!("only {known} of {n} computing nodes showed up within 30 s");
    }
    Ok(())
}

/// Distinct lower-case content per job, so a stale buffer cannot pass for a solution.
fn payload(size: usize, i: usize) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; size]
}

struct Timings {
    median: Duration,
    p99: Duration,
    min: Duration,
}

fn measure(args: &BenchArgs, mut once: impl FnMut(usize) -> Result<Duration>) -> Result<Timings> {
    for i in 0..args.warmup {
        once(i)?;
    }
    let mut v = (0..args.jobs.max(1))
        .map(&mut once)
        .collect::<Result<Vec<_>>>()?;
    v.sort();
    let pct = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Ok(Timings {
        median: pct(0.5),
        p99: pct(0.99),
        min: v[0],
    })
}

fn throughput(
    node: &NodeArgs,
    at: &Placement,
    n: usize,
    jobs: usize,
    stop: &CancelToken,
) -> Result<(f64, f64)> {
    let _computing = Children::spawn_computing_at(node, n, &[], at)?;
    let main = MainNode::with_config(node.config("BenchMain"))?;
    wait_for_nodes(&main, n, stop)?;
    let run = |count: usize| -> Result<f64> {
        let mut batch = main
            .batch()
            .job_timeout(Duration::from_secs(120))
            .cancel_on(stop);
        let t = Instant::now();
        for i in 0..count {
            batch.submit(i, payload(16, i))?;
        }
        for outcome in &mut batch {
            match outcome.result {
                Ok(s) if s.data[..] == payload(16, outcome.label).to_ascii_uppercase()[..] => {}
                Ok(_) => fail!("tiny job {}: wrong solution", outcome.label),
                Err(e) => fail!("tiny job {}: {e}", outcome.label),
            }
        }
        check_stop(stop)?;
        Ok(t.elapsed().as_secs_f64())
    };
    // Warm up every node's endpoints.
    run(4 * n)?;
    let secs = run(jobs)?;
    Ok((jobs as f64 / secs, secs))
}

/// Starts a computing-node process and a main node at the same moment and times one tiny job
/// from then until its solution, `trials` times (each on a fresh domain-scoped pair).
fn first_job(
    node: &NodeArgs,
    at: &Placement,
    trials: usize,
    stop: &CancelToken,
) -> Result<Vec<f64>> {
    let mut times = Vec::new();
    for _ in 0..trials {
        check_stop(stop)?;
        let t = Instant::now();
        let _computing = Children::spawn_computing_at(node, 1, &[], at)?;
        let main = MainNode::with_config(node.config("FirstJobMain"))?;
        let s = main.request_job_solution(&b"first job"[..], Duration::from_secs(30))?;
        times.push(t.elapsed().as_secs_f64());
        if &s.data[..] != b"FIRST JOB" {
            fail!("wrong solution to the first job");
        }
        drop(main);
        // Let this pair leave the domain before the next starts.
        if stop.wait_timeout(Duration::from_millis(300)) {
            return Err(BenchError::Interrupted);
        }
    }
    Ok(times)
}

/// Where the echo server listens when it runs in another namespace.
const ECHO_PORT: u16 = 47_999;

/// An echo server answering each message upper-cased: the same bytes a job and its solution
/// move, over plain TCP. On loopback in this process, or, with a namespace, in a child
/// process there (`main-node bench-echo`), so that it crosses the same link as the jobs.
struct TcpEcho {
    stream: std::sync::Mutex<TcpStream>,
    _server: Option<Children>,
}

impl TcpEcho {
    fn start(at: &Placement, ip: Option<Ipv4Addr>) -> Result<Self> {
        let (addr, server) = match (&at.netns, ip) {
            (Some(_), Some(ip)) => {
                let addr = SocketAddr::from((ip, ECHO_PORT));
                let child = at
                    .command(&std::env::current_exe()?)
                    .args(["bench-echo", "--listen", &addr.to_string()])
                    .stdin(std::process::Stdio::null())
                    .spawn()?;
                let mut children = Children::default();
                children.push(child);
                (addr, Some(children))
            }
            _ => {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = listener.local_addr()?;
                std::thread::spawn(move || {
                    if let Ok((s, _)) = listener.accept() {
                        echo(s);
                    }
                });
                (addr, None)
            }
        };
        // The server in a namespace takes a moment to start: retry for up to 10 s.
        let started = Instant::now();
        let stream = loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => break s,
                Err(e) if started.elapsed() > Duration::from_secs(10) => {
                    fail!("cannot reach the TCP echo server at {addr}: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            stream: std::sync::Mutex::new(stream),
            _server: server,
        })
    }

    fn round_trip(&self, data: &[u8]) -> Result<Duration> {
        let mut s = self.stream.lock().expect("tcp stream");
        let t = Instant::now();
        s.write_all(&(data.len() as u64).to_le_bytes())?;
        s.write_all(data)?;
        let mut len = [0u8; 8];
        s.read_exact(&mut len)?;
        let mut buf = vec![0u8; u64::from_le_bytes(len) as usize];
        s.read_exact(&mut buf)?;
        Ok(t.elapsed())
    }
}

/// Answers one connection's length-prefixed messages upper-cased until it closes.
fn echo(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut len = [0u8; 8];
    while s.read_exact(&mut len).is_ok() {
        let mut buf = vec![0u8; u64::from_le_bytes(len) as usize];
        if s.read_exact(&mut buf).is_err() {
            break;
        }
        buf.make_ascii_uppercase();
        if s.write_all(&len).and_then(|_| s.write_all(&buf)).is_err() {
            break;
        }
    }
}

/// `main-node bench-echo`: the TCP reference's echo server, serving connections one after
/// another until killed (the bench starts it in the computing nodes' namespace).
pub fn serve_echo(listen: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    for s in listener.incoming() {
        echo(s?);
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn human_size(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{} MB", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{} KB", n / 1_000),
        n => format!("{n} B"),
    }
}
