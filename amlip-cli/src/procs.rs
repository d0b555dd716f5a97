//! Child `computing-node` processes that the main starts itself (bench, demo), killed when
//! dropped so none outlives the main.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::NodeArgs;

/// The `computing-node` binary next to this one.
pub fn computing_node_binary() -> std::io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(format!("computing-node{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{} not found: build it with `cargo build --release -p computing-node`",
                path.display()
            ),
        ));
    }
    Ok(path)
}

/// Running computing nodes; dropped = killed.
#[derive(Default)]
pub struct Children {
    children: Vec<Child>,
}

impl Children {
    /// Starts `n` computing nodes on the node flags' domain and network.
    pub fn spawn_computing(node: &NodeArgs, n: usize, extra: &[&str]) -> std::io::Result<Self> {
        Self::spawn_computing_at(node, n, extra, &Placement::default())
    }

    /// Starts `n` computing nodes on the node flags' domain, where `at` says.
    pub fn spawn_computing_at(
        node: &NodeArgs,
        n: usize,
        extra: &[&str],
        at: &Placement,
    ) -> std::io::Result<Self> {
        let bin = computing_node_binary()?;
        let mut children = Vec::with_capacity(n);
        for i in 0..n {
            let mut cmd = at.command(&bin);
            // In a trusted domain the children join as this node (its certificate names
            // them); otherwise they are numbered.
            match &node.trust {
                Some(t) => cmd.arg("--trust").arg(t.node_dir()),
                None => cmd.arg("--name").arg(format!("Computing{i}")),
            };
            let child = cmd
                .arg("--domain")
                .arg(node.domain.to_string())
                .arg("--network")
                .arg(at.network.clone().unwrap_or_else(|| node.network_flag()))
                .args(extra)
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display()))
                })?;
            children.push(child);
        }
        Ok(Self { children })
    }

    /// Adopts a child started elsewhere (killed with the others).
    pub fn push(&mut self, child: Child) {
        self.children.push(child);
    }
}

/// Where child processes run: this host's network, or a network namespace.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// `ip netns exec` this namespace.
    pub netns: Option<String>,
    /// The children's `--network` (default: the main's).
    pub network: Option<String>,
}

impl Placement {
    /// A command running `bin` there.
    pub fn command(&self, bin: &std::path::Path) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin);
                c
            }
            None => Command::new(bin),
        }
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
