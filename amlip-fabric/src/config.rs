//! Node configuration: which domain and network, and every timeout (no wait is unbounded).
//!
//! A builder: `NodeConfig::new("Main").domain(7).localhost()`. It never reads the environment;
//! the binaries read `AMLIP_DOMAIN` and `AMLIP_NETWORK` and pass them in, so a program's
//! behaviour is what its code says.

use std::net::SocketAddrV4;
use std::time::Duration;

use crate::dds::{Network, DEFAULT_DOMAIN, MAX_DOMAIN};
use crate::trust::Trust;

/// How a node behaves on the wire and how long it waits for anything.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub(crate) name: String,
    pub(crate) domain: u16,
    pub(crate) network: Network,
    pub(crate) extensions: bool,
    pub(crate) heartbeat: Duration,
    pub(crate) liveness_timeout: Duration,
    pub(crate) job_deadline: Duration,
    pub(crate) target_timeout: Duration,
    pub(crate) data_timeout: Duration,
    pub(crate) history_settle: Duration,
    pub(crate) ghost_timeout: Duration,
    pub(crate) max_open_requests: usize,
    pub(crate) stream: StreamConfig,
    pub(crate) trust: Option<Trust>,
}

/// Flow control of large payloads between amlip nodes.
#[derive(Debug, Clone)]
pub(crate) struct StreamConfig {
    /// Bytes per chunk. 60 000 keeps a chunk in one loopback datagram (no RTPS fragmentation).
    pub chunk_size: usize,
    /// Bytes a sender may have unacknowledged.
    pub window: usize,
    /// Payloads larger than this go as a stream to amlip peers; smaller ones as one sample.
    pub threshold: usize,
    /// A transfer with no credit for this long fails (and the job is re-sent).
    pub stall_timeout: Duration,
    /// Largest message a node accepts (a transfer announcing more is rejected); also what
    /// one peer's unfinished transfers may hold at once.
    pub max_message: usize,
    /// Bytes all unfinished incoming transfers may hold at once.
    pub max_incoming: usize,
    /// Unfinished incoming transfers at once.
    pub max_transfers: usize,
    /// Whether large payloads between amlip nodes may go over a direct TCP connection.
    pub direct: bool,
    /// The direct path's listening port (0: any free port).
    pub direct_port: u16,
    /// Announce this address for the direct path instead of the node's own (NAT, port
    /// forwarding).
    pub direct_advertise: Option<SocketAddrV4>,
    /// How long connecting (and the hello) to a peer's direct path may take.
    pub connect_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            chunk_size: 60_000,
            window: 2 << 20,
            threshold: 60_000,
            stall_timeout: Duration::from_secs(10),
            max_message: 2 << 30,
            max_incoming: 4 << 30,
            max_transfers: 1024,
            direct: true,
            direct_port: 0,
            direct_advertise: None,
            connect_timeout: Duration::from_secs(2),
        }
    }
}

impl NodeConfig {
    /// Defaults: domain 166 (AML-IP's), every interface, amlip's extensions on.
    ///
    /// `name` is at most 28 characters of `[0-9A-Za-z_.-]`; the node's id is the name plus 4
    /// random bytes (a bad name is reported when the node starts).
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
            ghost_timeout: Duration::from_secs(10),
            max_open_requests: 64,
            stream: StreamConfig::default(),
            trust: None,
        }
    }

    /// The DDS domain id (0..=232); nodes only see nodes on their domain.
    pub fn domain(mut self, domain: u16) -> Self {
        self.domain = domain;
        self
    }

    /// The network interfaces the node uses.
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Joins a trusted domain as the node `trust` names: DDS Security on every topic, mutual
    /// TLS on the direct path. The node takes its certificate's name (peers check it).
    pub fn trust(mut self, trust: Trust) -> Self {
        self.name = trust.name().to_owned();
        self.trust = Some(trust);
        self
    }

    /// The trusted domain's identity this node uses, if any.
    pub fn trusted(&self) -> Option<&Trust> {
        self.trust.as_ref()
    }

    /// Loopback only: every node is on this host (large payloads ~5x faster).
    pub fn localhost(self) -> Self {
        self.network(Network::Localhost)
    }

    /// Speak plain AML-IP only: no heartbeats, no chunk streams. The node is then
    /// indistinguishable from an AML-IP v0.3 node on the wire (for interoperability tests).
    pub fn aml_ip_compatible_only(mut self) -> Self {
        self.extensions = false;
        self
    }

    /// Main: how long one computing node may hold a job before it is re-sent elsewhere
    /// (default 10 minutes).
    pub fn job_deadline(mut self, d: Duration) -> Self {
        self.job_deadline = d;
        self
    }

    /// A peer silent for this long is considered gone (default 5 s). Heartbeats go out every
    /// 500 ms, or four times per timeout if that is shorter.
    pub fn liveness_timeout(mut self, d: Duration) -> Self {
        self.liveness_timeout = d;
        self.heartbeat = self.heartbeat.min(d / 4).max(Duration::from_millis(10));
        self
    }

    /// Computing: how long to wait for the main's choice after answering availability, and
    /// for a job's data once chosen (defaults 3 s and 30 s).
    pub fn computing_timeouts(mut self, target: Duration, data: Duration) -> Self {
        self.target_timeout = target;
        self.data_timeout = data;
        self
    }

    /// Computing: how long a request waits for its main to be vouched for (its status or
    /// heartbeat published by the participant that wrote the request) before it is dropped as
    /// a ghost's (default 10 s).
    pub fn ghost_timeout(mut self, d: Duration) -> Self {
        self.ghost_timeout = d;
        self
    }

    /// Main: most availability requests open at once (default 64; more jobs wait in a queue).
    pub fn max_open_requests(mut self, n: usize) -> Self {
        self.max_open_requests = n.max(1);
        self
    }

    /// Largest payload this node accepts from a peer, and what one peer's unfinished
    /// transfers may hold at once (default 2 GiB). A transfer announcing more is refused
    /// before anything is allocated; memory for a transfer grows as its bytes arrive.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.stream.max_message = bytes;
        self
    }

    /// Bytes all unfinished incoming transfers together may hold (default 4 GiB); a chunk
    /// that would go over it is refused, with its transfer.
    pub fn max_incoming(mut self, bytes: usize) -> Self {
        self.stream.max_incoming = bytes;
        self
    }

    /// Whether large payloads between amlip nodes may go over a direct TCP connection the
    /// receiver announces (default on). Off, or when the connection cannot be made, they go
    /// over DDS as a chunk stream. AML-IP peers always get one DDS sample.
    pub fn direct_path(mut self, enabled: bool) -> Self {
        self.stream.direct = enabled;
        self
    }

    /// The TCP port the direct path listens on (default 0: any free port).
    pub fn direct_port(mut self, port: u16) -> Self {
        self.stream.direct_port = port;
        self
    }

    /// Announce `addr` as where this node's direct path listens, instead of its own addresses
    /// and port: for a node behind NAT or port forwarding.
    pub fn direct_advertise(mut self, addr: SocketAddrV4) -> Self {
        self.stream.direct_advertise = Some(addr);
        self
    }

    /// A transfer that makes no progress for this long fails and its job is re-sent
    /// (default 10 s).
    pub fn stall_timeout(mut self, d: Duration) -> Self {
        self.stream.stall_timeout = d;
        self
    }

    /// This configuration for a helper node named after this one plus `suffix` (e.g. the
    /// inference node of a computing node), cut so that the id still fits its 28 bytes.
    /// In a trusted domain the helper keeps the name, which is its certificate's.
    pub fn suffixed(&self, suffix: &str) -> NodeConfig {
        if self.trust.is_some() {
            return self.clone();
        }
        let keep = 28usize.saturating_sub(suffix.len());
        let mut c = self.clone();
        c.name = format!(
            "{}{suffix}",
            self.name.chars().take(keep).collect::<String>()
        );
        c
    }

    /// The node's name (before the random suffix).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which network interfaces the node uses.
    pub fn interfaces(&self) -> &Network {
        &self.network
    }

    /// The DDS domain id.
    pub fn domain_id(&self) -> u16 {
        self.domain
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

    #[test]
    fn a_short_liveness_timeout_shortens_heartbeats() {
        let c = NodeConfig::new("x").liveness_timeout(Duration::from_secs(1));
        assert_eq!(c.heartbeat, Duration::from_millis(250));
        let c = NodeConfig::new("x").liveness_timeout(Duration::from_secs(5));
        assert_eq!(c.heartbeat, Duration::from_millis(500));
    }
}
