//! amlip-cli: what the `main-node` and `computing-node` binaries share: node flags and value
//! parsers, logging, Ctrl-C, a progress display for sessions, child computing nodes, the
//! benchmark, the HTTP server with Prometheus metrics and the dashboard, and training plots.
//! Not for programs that use amlip as a library (they depend on `amlip-core` alone).
//!
//! # Module map
//! - [`NodeArgs`]: the flags every node binary takes, and the [`NodeConfig`] they describe.
//! - [`progress`]: an [`Observer`](crate::session::Observer) drawing a progress bar and what
//!   each computing node is doing.
//! - [`procs`]: `computing-node` processes a main starts itself (bench, demo).
//! - [`bench`](mod@bench): job round trips and throughput against TCP on loopback.
//! - [`jobs`]: `main-node jobs`' workload of checked upper-case jobs.
//! - [`metrics`], [`serve`], [`dashboard`]: `--metrics`/`--serve`: Prometheus metrics and the
//!   status dashboard over HTTP.
//! - [`plot`]: training curves as SVG/PNG; [`tables`]: the binaries' text reports.
#![warn(missing_docs)]

// The library's floors, under the names this code has always used.
use amlip_core::{batch, cancel, config, dds, error, node, prelude, session, trust, wire};
use amlip_fabric::runtime;

pub mod bench;
pub mod dashboard;
pub mod jobs;
pub mod metrics;
pub mod plot;
pub mod procs;
pub mod progress;
pub mod serve;
mod strangers;
pub mod tables;

use std::time::Duration;

use crate::cancel::CancelToken;
use crate::config::{parse_domain, NodeConfig};
use crate::dds::{Network, DEFAULT_DOMAIN, MAX_DOMAIN};
use crate::trust::Trust;

/// Environment variable holding the default DDS domain id.
pub const ENV_DOMAIN: &str = "AMLIP_DOMAIN";
/// Environment variable holding the default network (`all`, `localhost`, or IPs).
pub const ENV_NETWORK: &str = "AMLIP_NETWORK";
/// Environment variable naming the trusted domain's node folder (`DIR/NAME`), as `--trust`.
pub const ENV_TRUST: &str = "AMLIP_TRUST";

/// Flags every node binary takes.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Node name; 4 random bytes are appended ([0-9A-Za-z_.-], at most 28 characters).
    /// In a trusted domain the node takes its certificate's name instead.
    #[arg(long, conflicts_with = "trust")]
    pub name: Option<String>,

    /// Join the trusted domain of DIR as node NAME (files made by `main-node trust init DIR`
    /// and `main-node trust add DIR NAME`): DDS Security on every topic, mutual TLS on the
    /// direct path; nodes without the domain's certificates are refused.
    #[arg(long, env = ENV_TRUST, value_name = "DIR/NAME", value_parser = trust_arg)]
    pub trust: Option<Trust>,

    /// DDS domain id (0..=232). Nodes only see nodes on the same domain.
    #[arg(long, env = ENV_DOMAIN, default_value_t = DEFAULT_DOMAIN, value_parser = domain_arg,
          allow_negative_numbers = true)]
    pub domain: u16,

    /// Network interfaces: `all` (other hosts can join), `localhost` (every node on this
    /// host; large payloads ~5x faster), or comma-separated interface IPs.
    #[arg(long, env = ENV_NETWORK, default_value = "all", value_parser = network_arg)]
    pub network: Network,

    /// Speak plain AML-IP only: no heartbeats, no chunk streams (interoperability testing).
    #[arg(long)]
    pub plain_aml_ip: bool,

    /// A peer silent for this long is considered gone (e.g. 5s, 500ms; 100ms to 1h).
    #[arg(long, default_value = "5s",
          value_parser = |s: &str| bounded_duration(s, Duration::from_millis(100), Duration::from_secs(3600)))]
    pub liveness_timeout: Duration,

    /// Send large payloads to amlip peers over DDS only, never over a direct TCP connection
    /// (and accept none).
    #[arg(long)]
    pub no_direct: bool,

    /// TCP port of the direct data path (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub direct_port: u16,

    /// Announce this IPv4 ADDR:PORT for the direct data path instead of this host's
    /// addresses (behind NAT or port forwarding).
    #[arg(long, value_name = "ADDR:PORT")]
    pub advertise: Option<std::net::SocketAddrV4>,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9464; port 0:
    /// any free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Log lines as text, or as one JSON object each (for log shippers).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl NodeArgs {
    /// The node configuration these flags describe, named `default_name` unless `--name`.
    pub fn config(&self, default_name: &str) -> NodeConfig {
        let cfg = NodeConfig::new(self.name.as_deref().unwrap_or(default_name))
            .domain(self.domain)
            .network(self.network.clone())
            .liveness_timeout(self.liveness_timeout)
            .direct_path(!self.no_direct)
            .direct_port(self.direct_port);
        let cfg = match self.advertise {
            Some(a) => cfg.direct_advertise(a),
            None => cfg,
        };
        let cfg = match &self.trust {
            Some(t) => cfg.trust(t.clone()),
            None => cfg,
        };
        if self.plain_aml_ip {
            cfg.aml_ip_compatible_only()
        } else {
            cfg
        }
    }

    /// The `--network` value that selects the same interfaces (for child processes).
    pub fn network_flag(&self) -> String {
        match &self.network {
            Network::All => "all".into(),
            Network::Localhost => "localhost".into(),
            Network::Only(ips) => ips
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// Loads and checks a trusted domain's node folder; the error names the file at fault.
fn trust_arg(s: &str) -> Result<Trust, String> {
    Trust::load(s).map_err(|e| e.to_string())
}

fn domain_arg(s: &str) -> Result<u16, String> {
    parse_domain(s).ok_or_else(|| format!("{s:?} is not a domain id (0..={MAX_DOMAIN})"))
}

fn network_arg(s: &str) -> Result<Network, String> {
    s.parse()
}

/// Parses `5s`, `250ms`, `2m`, `1h 30m`.
pub fn duration_arg(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 5s or 250ms: {e}"))
}

/// A duration between `min` and `max`.
pub fn bounded_duration(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = duration_arg(s)?;
    if d < min || d > max {
        return Err(format!(
            "{s:?} is outside {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// A positive duration (a timeout of 0 would end everything at once).
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    bounded_duration(
        s,
        Duration::from_millis(1),
        Duration::from_secs(30 * 24 * 3600),
    )
}

/// A finite number greater than 0 (a learning rate).
pub fn positive_f32(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err(format!("{s:?} must be a finite number above 0")),
        Err(e) => Err(format!("{s:?} is not a number: {e}")),
    }
}

/// A number in [0, 1) (a momentum, a hold-out fraction).
pub fn unit_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..1.0).contains(&x) => Ok(x),
        Ok(_) => Err(format!("{s:?} must be at least 0 and below 1")),
        Err(e) => Err(format!("{s:?} is not a number: {e}")),
    }
}

/// A count from `min` to `max`, saying the range when refused.
pub fn count_in(s: &str, min: usize, max: usize) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) if max == usize::MAX => Err(format!("{s:?} must be at least {min}")),
        Ok(_) => Err(format!("{s:?} is outside {min}..={max}")),
        Err(e) => Err(format!("{s:?} is not a count: {e}")),
    }
}

/// Prints a binary's outcome and gives its exit code: nothing and 0 on success; on failure
/// one line, `error: ` and the whole chain of causes (no backtrace, whatever `RUST_BACKTRACE`
/// says), and 1. `verbose` adds the debug form (with a backtrace if one was captured).
pub fn report<E: std::fmt::Display + std::fmt::Debug>(
    result: Result<(), E>,
    verbose: bool,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if verbose {
                eprintln!("{e:?}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Parses `1000`, `1KB`, `10MB`, `1MiB`.
pub fn size_arg(s: &str) -> Result<usize, String> {
    let b = s
        .parse::<bytesize::ByteSize>()
        .map_err(|e| format!("{s:?} is not a size like 1000, 64KB or 10MB: {e}"))?;
    usize::try_from(b.as_u64()).map_err(|_| format!("{s:?} does not fit in memory"))
}

/// A size flag bounded by `max` bytes: the error names the flag's limit.
pub fn bounded_size(s: &str, max: usize) -> Result<usize, String> {
    let n = size_arg(s)?;
    if n > max {
        return Err(format!(
            "{s:?} is more than the {} this accepts",
            bytesize::ByteSize(max as u64)
        ));
    }
    Ok(n)
}

/// Logs to stderr (as text, or JSON objects if `json`) at `default` level (e.g. `info`, `warn`, `debug`); `RUST_LOG` overrides it.
/// rustdds logs only its errors unless `RUST_LOG` names it (it warns on every datagram above
/// 1500 bytes).
pub fn init_logging(default: &str, json: bool) {
    let mut filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.into());
    if !filter.contains("rustdds") {
        // rustdds warns on every datagram over 1500 bytes and on routine loopback discovery.
        filter.push_str(",rustdds=error,rustdds::network::udp_listener=off");
        // In a trusted domain rustdds's security logs errors as endpoints match (a crypto
        // handle looked up before discovery registered it, registered twice) although every
        // sample then flows; amlip logs each refused peer itself (dds::discovery).
        filter.push_str(
            ",rustdds::security=off,rustdds::discovery::secure_discovery=off,\
             rustdds::rtps::reader=off,rustdds::rtps::writer=off",
        );
    }
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let env = tracing_subscriber::EnvFilter::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let fmt = if json {
        fmt.json().with_filter(env).boxed()
    } else {
        fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(env)
            .boxed()
    };
    let strangers = strangers::Strangers::default().with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target(strangers::TARGET, tracing::Level::INFO),
    );
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(strangers)
        .try_init();
}

/// Installs the Ctrl-C (and SIGTERM) handler. The returned token is raised on the first one;
/// after `grace` the process exits with status 130 whatever is still running, and a second
/// Ctrl-C exits at once. So a node always ends promptly.
pub fn ctrl_c(grace: Duration) -> Result<CancelToken, ctrlc::Error> {
    let token = CancelToken::new();
    let raised = token.clone();
    let mut first = true;
    ctrlc::set_handler(move || {
        if first {
            first = false;
            raised.cancel();
            std::thread::spawn(move || {
                std::thread::sleep(grace);
                eprintln!("still stopping after {grace:?}; exiting");
                std::process::exit(130);
            });
        } else {
            std::process::exit(130);
        }
    })?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size_arg("10MB"), Ok(10_000_000));
        assert_eq!(size_arg("1KiB"), Ok(1024));
        assert_eq!(size_arg("512"), Ok(512));
        assert!(size_arg("ten").is_err());
        assert!(bounded_size("1TB", 1 << 30).unwrap_err().contains("1TB"));
        assert_eq!(duration_arg("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration_arg("soon").unwrap_err().contains("soon"));
    }
}

/// `path` as given if it exists (or is absolute), else the first such path beside one of the
/// running binary's ancestor directories (so `target/release/main-node` finds the repository's
/// `datasets/` from anywhere), else as given, for the caller to report as missing.
pub fn locate(path: &std::path::Path) -> std::path::PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_owned();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().map(|a| a.join(path)).find(|p| p.exists()))
        .unwrap_or_else(|| path.to_owned())
}

/// Why [`wait_for_nodes`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// Fewer nodes came.
    #[error(
        "only {known} of {wanted} computing nodes appeared on domain {domain} within {timeout:?}"
    )]
    TooFew {
        /// Nodes seen.
        known: usize,
        /// Nodes asked for.
        wanted: usize,
        /// The domain.
        domain: u16,
        /// How long we waited.
        timeout: Duration,
    },
}

/// Waits at most `timeout` until `main` knows `n` computing nodes.
pub fn wait_for_nodes(
    main: &node::MainNode,
    n: usize,
    timeout: Duration,
    stop: &CancelToken,
) -> Result<(), WaitError> {
    let known = main.wait_for_computing_nodes(n, timeout, stop);
    if stop.is_cancelled() {
        return Err(WaitError::Interrupted);
    }
    if known < n {
        return Err(WaitError::TooFew {
            known,
            wanted: n,
            domain: main.domain(),
            timeout,
        });
    }
    Ok(())
}

/// A file the binaries could not write, named.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    path: std::path::PathBuf,
    source: std::io::Error,
}

/// Writes `bytes` to `path` (a report, a model, an answer); the error names the file.
pub fn write_file(path: &std::path::Path, bytes: impl AsRef<[u8]>) -> Result<(), WriteError> {
    std::fs::write(path, bytes).map_err(|source| WriteError {
        path: path.to_owned(),
        source,
    })
}
