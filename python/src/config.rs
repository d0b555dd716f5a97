//! Node settings as Python passes them: a name, an optional domain (else `AMLIP_DOMAIN`, else
//! AML-IP's 166) and an optional network (else `AMLIP_NETWORK`, else every interface). With
//! `AMLIP_TRUST=DIR/NAME` every node joins that trusted domain (as `--trust` does for the
//! binaries) under its certificate's name.

use std::sync::Once;

use amlip_core::config::{parse_domain, NodeConfig};
use amlip_core::dds::{Network, DEFAULT_DOMAIN};
use amlip_core::wire::AmlipId;
use pyo3::prelude::*;

use crate::errors::argument;

/// The configuration of a node named `name`.
pub fn node(name: &str, domain: Option<u16>, network: Option<&str>) -> PyResult<NodeConfig> {
    let domain = match domain {
        Some(d) => check_domain(d)?,
        None => match std::env::var("AMLIP_DOMAIN") {
            Ok(s) => parse_domain(&s)
                .ok_or_else(|| argument(format!("AMLIP_DOMAIN={s:?} is not a domain (0..=232)")))?,
            Err(_) => DEFAULT_DOMAIN,
        },
    };
    let network = match network {
        Some(n) => n.to_owned(),
        None => std::env::var("AMLIP_NETWORK").unwrap_or_else(|_| "all".into()),
    };
    let network: Network = network
        .parse()
        .map_err(|e| argument(format!("network {network:?}: {e}")))?;
    let cfg = NodeConfig::new(name).domain(domain).network(network);
    match std::env::var("AMLIP_TRUST") {
        Ok(t) if !t.trim().is_empty() => {
            let trust = amlip_core::trust::Trust::load(t.trim())
                .map_err(|e| argument(format!("AMLIP_TRUST: {e}")))?;
            Ok(cfg.trust(trust))
        }
        _ => Ok(cfg),
    }
}

fn check_domain(d: u16) -> PyResult<u16> {
    parse_domain(&d.to_string()).ok_or_else(|| argument(format!("domain {d} is not in 0..=232")))
}

/// A new id for a node named `name`: (name, the 4 random bytes), as AML-IP's
/// `AmlipIdDataType(name)` makes one.
#[pyfunction]
pub fn new_id(name: &str) -> PyResult<(String, [u8; 4])> {
    let id = AmlipId::new_random(name).map_err(|e| argument(e.to_string()))?;
    Ok((id.name().to_owned(), id.suffix()))
}

/// An id as text (`Name.0a.1b.2c.3d`) into (name, bytes).
pub fn parse_id(text: &str) -> PyResult<AmlipId> {
    text.parse::<AmlipId>()
        .map_err(|e| argument(format!("{text:?} is not a node id: {e}")))
}

/// Logs the library's events at `level` (`error`, `warn`, `info`, `debug`; or a `RUST_LOG`
/// filter) to standard error. The first call decides; later ones change nothing.
#[pyfunction]
#[pyo3(signature = (level = "warn"))]
pub fn log(level: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_new(level)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    });
}
