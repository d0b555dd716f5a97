//! Child `computing-node` processes that the main starts itself (bench, demo), killed when
//! dropped so none outlives the main.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use amlip_core::cli::NodeArgs;
use anyhow::{bail, Context};

/// The `computing-node` binary next to this one.
pub fn computing_node_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot locate this executable")?;
    let path = me.with_file_name(format!("computing-node{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p computing-node`",
            path.display()
        );
    }
    Ok(path)
}

/// Running computing nodes; dropped = killed.
pub struct Children {
    children: Vec<Child>,
}

impl Children {
    /// Starts `n` computing nodes on the node flags' domain and network.
    pub fn spawn_computing(node: &NodeArgs, n: usize, extra: &[&str]) -> anyhow::Result<Self> {
        let bin = computing_node_binary()?;
        let mut children = Vec::with_capacity(n);
        for i in 0..n {
            let child = Command::new(&bin)
                .arg("--name")
                .arg(format!("Computing{i}"))
                .arg("--domain")
                .arg(node.domain.to_string())
                .arg("--network")
                .arg(network_flag(node))
                .args(extra)
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("cannot start {}", bin.display()))?;
            children.push(child);
        }
        Ok(Self { children })
    }
}

fn network_flag(node: &NodeArgs) -> String {
    match &node.network {
        amlip_core::dds::Network::All => "all".into(),
        amlip_core::dds::Network::Localhost => "localhost".into(),
        amlip_core::dds::Network::Only(ips) => ips
            .iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}
