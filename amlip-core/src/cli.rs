//! What the `main-node` and `computing-node` binaries share: node flags, logging, Ctrl-C.
//! (Feature `cli`.)

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use crate::config::{parse_domain, NodeConfig, ENV_DOMAIN, ENV_NETWORK};
use crate::dds::{Network, DEFAULT_DOMAIN, MAX_DOMAIN};

/// Flags every node binary takes.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Node name; 4 random bytes are appended ([0-9A-Za-z_.], at most 28 characters).
    #[arg(long)]
    pub name: Option<String>,

    /// DDS domain id (0..=232). Nodes only see nodes on the same domain.
    #[arg(long, env = ENV_DOMAIN, default_value_t = DEFAULT_DOMAIN, value_parser = domain_arg)]
    pub domain: u16,

    /// Network interfaces: `all` (other hosts can join), `localhost` (every node on this
    /// host; large payloads ~5x faster), or comma-separated interface IPs.
    #[arg(long, env = ENV_NETWORK, default_value = "all", value_parser = network_arg)]
    pub network: Network,

    /// Speak plain AML-IP only: no heartbeats, no chunk streams (interoperability testing).
    #[arg(long)]
    pub plain_aml_ip: bool,

    /// A peer silent for this long is considered gone (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = duration_arg)]
    pub liveness_timeout: Duration,
}

impl NodeArgs {
    /// The node configuration these flags describe, named `default_name` unless `--name`.
    pub fn config(&self, default_name: &str) -> NodeConfig {
        let mut cfg = NodeConfig::new(self.name.as_deref().unwrap_or(default_name))
            .domain(self.domain)
            .network(self.network.clone())
            .liveness_timeout(self.liveness_timeout);
        cfg.extensions = !self.plain_aml_ip;
        cfg
    }
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

/// Parses `1000`, `1KB`, `10MB`, `1MiB`.
pub fn size_arg(s: &str) -> Result<usize, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64() as usize)
        .map_err(|e| format!("{s:?} is not a size like 1000, 64KB or 10MB: {e}"))
}

/// Logs to stderr at `default` level (e.g. `info`, `warn`, `debug`); `RUST_LOG` overrides it.
/// rustdds logs only its errors unless `RUST_LOG` names it (it warns on every datagram above
/// 1500 bytes).
pub fn init_logging(default: &str) {
    let mut filter = rust_log().unwrap_or_else(|| default.into());
    if !filter.contains("rustdds") {
        // rustdds warns on every datagram over 1500 bytes and on routine loopback discovery.
        filter.push_str(",rustdds=error,rustdds::network::udp_listener=off");
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// `RUST_LOG`, unless unset or blank.
pub fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Installs the Ctrl-C handler. The returned channel receives `()` on the first Ctrl-C (or
/// SIGTERM); after `grace` the process exits with status 130 whatever is still running, and a
/// second Ctrl-C exits at once. So a node always ends promptly.
pub fn ctrl_c(grace: Duration) -> Result<std_mpsc::Receiver<()>, ctrlc::Error> {
    let (tx, rx) = std_mpsc::sync_channel(1);
    let mut first = true;
    ctrlc::set_handler(move || {
        if first {
            first = false;
            let _ = tx.try_send(());
            std::thread::spawn(move || {
                std::thread::sleep(grace);
                eprintln!("still stopping after {grace:?}; exiting");
                std::process::exit(130);
            });
        } else {
            std::process::exit(130);
        }
    })?;
    Ok(rx)
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
        assert_eq!(duration_arg("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration_arg("soon").unwrap_err().contains("soon"));
    }
}
