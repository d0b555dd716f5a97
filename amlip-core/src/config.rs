//! Node configuration: which domain and network, and every timeout (no wait is unbounded).

use std::time::Duration;

use crate::dds::{Network, DEFAULT_DOMAIN, MAX_DOMAIN};

/// Environment variable holding the default DDS domain id.
pub const ENV_DOMAIN: &str = "AMLIP_DOMAIN";
/// Environment variable holding the default network (`all`, `localhost`, or IPs).
pub const ENV_NETWORK: &str = "AMLIP_NETWORK";

/// How a node behaves on the wire and how long it waits for anything.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name (at most 28 bytes of `[0-9A-Za-z_.]`); 4 random bytes are added to it.
    pub name: String,
    /// DDS domain id (default 166, or `AMLIP_DOMAIN`).
    pub domain: u16,
    /// Interfaces the participant uses (default all, or `AMLIP_NETWORK`).
    pub network: Network,
    /// Announce and use amlip's extensions (heartbeats, chunk streams). With `false` the node is
    /// indistinguishable from an AML-IP v0.3 node on the wire (used to test interoperability).
    pub extensions: bool,
    /// Period of heartbeats ([`crate::wire::ext::NodeInfo`]).
    pub heartbeat: Duration,
    /// A peer whose heartbeat is this old is considered gone.
    pub liveness_timeout: Duration,
    /// Main: how long one computing node may hold a job before it is re-sent elsewhere.
    pub job_deadline: Duration,
    /// Computing: how long to wait for the main's choice after answering availability.
    pub target_timeout: Duration,
    /// Computing: how long to wait for a job's data once chosen (reset by stream progress).
    pub data_timeout: Duration,
    /// Computing: after first hearing from a plain AML-IP main, how long to wait before
    /// answering its requests, so that its replayed target history arrives first.
    pub history_settle: Duration,
    /// Main: most availability requests left unanswered at once (more jobs wait in a queue).
    pub max_open_requests: usize,
    /// Chunk stream settings.
    pub stream: StreamConfig,
}

/// Flow control of large payloads between amlip nodes.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Bytes per chunk. 60 000 keeps a chunk in one loopback datagram (no RTPS fragmentation).
    pub chunk_size: usize,
    /// Bytes a sender may have unacknowledged.
    pub window: usize,
    /// Payloads larger than this go as a stream to amlip peers; smaller ones as one sample.
    pub threshold: usize,
    /// A transfer with no credit for this long fails (and the job is re-sent).
    pub stall_timeout: Duration,
    /// Largest message a node accepts (a transfer announcing more is rejected).
    pub max_message: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            chunk_size: 60_000,
            window: 2 << 20,
            threshold: 60_000,
            stall_timeout: Duration::from_secs(10),
            max_message: 2 << 30,
        }
    }
}

/// A configuration value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value:?} is not a domain id (0..={MAX_DOMAIN})")]
    Domain { var: &'static str, value: String },
    #[error("{var}={value:?}: {reason}")]
    Network {
        var: &'static str,
        value: String,
        reason: String,
    },
}

impl NodeConfig {
    /// Defaults, with domain and network taken from the environment when set.
    pub fn from_env(name: &str) -> Result<Self, ConfigError> {
        let mut cfg = Self::new(name);
        if let Ok(v) = std::env::var(ENV_DOMAIN) {
            cfg.domain = parse_domain(&v).ok_or(ConfigError::Domain {
                var: ENV_DOMAIN,
                value: v.clone(),
            })?;
        }
        if let Ok(v) = std::env::var(ENV_NETWORK) {
            cfg.network = v.parse().map_err(|reason| ConfigError::Network {
                var: ENV_NETWORK,
                value: v.clone(),
                reason,
            })?;
        }
        Ok(cfg)
    }

    /// Defaults on domain 166, all interfaces.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            domain: DEFAULT_DOMAIN,
            network: Network::All,
            extensions: true,
            heartbeat: Duration::from_millis(500),
            liveness_timeout: Duration::from_secs(5),
            job_deadline: Duration::from_secs(600),
            target_timeout: Duration::from_secs(3),
            data_timeout: Duration::from_secs(30),
            history_settle: Duration::from_millis(300),
            max_open_requests: 64,
            stream: StreamConfig::default(),
        }
    }

    pub fn domain(mut self, domain: u16) -> Self {
        self.domain = domain;
        self
    }

    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Loopback only: all nodes on this host (fast large payloads).
    pub fn localhost(self) -> Self {
        self.network(Network::Localhost)
    }

    /// Speak plain AML-IP only (no heartbeats, no streams).
    pub fn aml_ip_compatible_only(mut self) -> Self {
        self.extensions = false;
        self
    }

    pub fn job_deadline(mut self, d: Duration) -> Self {
        self.job_deadline = d;
        self
    }

    pub fn liveness_timeout(mut self, d: Duration) -> Self {
        self.liveness_timeout = d;
        self
    }
}

/// Parses a domain id, refusing ids whose ports would not fit.
pub fn parse_domain(s: &str) -> Option<u16> {
    s.trim().parse::<u16>().ok().filter(|d| *d <= MAX_DOMAIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_bounds() {
        assert_eq!(parse_domain("166"), Some(166));
        assert_eq!(parse_domain("232"), Some(232));
        assert_eq!(parse_domain("233"), None);
        assert_eq!(parse_domain("x"), None);
    }

    #[test]
    fn network_parses() {
        assert_eq!("localhost".parse::<Network>(), Ok(Network::Localhost));
        assert_eq!("all".parse::<Network>(), Ok(Network::All));
        assert!(matches!(
            "10.0.0.1,127.0.0.1".parse::<Network>(),
            Ok(Network::Only(v)) if v.len() == 2
        ));
        assert!("eth0".parse::<Network>().unwrap_err().contains("eth0"));
    }
}
