//! Running the real `main-node` and `computing-node` binaries from tests. Every test leases its
//! own DDS domain (`amlip_testkit::domain`) and keeps traffic on loopback.
#![allow(dead_code)]

use std::path::PathBuf;

pub use amlip_testkit::{domain, Domain, Proc};

pub fn main_node() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_main-node"))
}

/// The computing-node binary, built beside main-node by `cargo test --workspace`.
pub fn computing_node() -> PathBuf {
    amlip_testkit::binary("computing-node")
}

/// A `computing-node` process named `name` on `domain`, loopback only.
pub fn computing(name: &str, domain: &Domain, extra: &[&str]) -> Proc {
    let d = domain.arg();
    let mut args = vec!["--name", name, "--domain", &d, "--network", "localhost"];
    args.extend_from_slice(extra);
    Proc::spawn(name, computing_node(), &args, &[])
}

/// A `main-node` process on `domain`, loopback only.
pub fn main(domain: &Domain, args: &[&str]) -> Proc {
    let d = domain.arg();
    let mut all = vec!["--domain", &d, "--network", "localhost"];
    all.extend_from_slice(args);
    Proc::spawn("main", main_node(), &all, &[])
}

/// `n` computing nodes named `C0`.. on `domain`.
pub fn computing_nodes(domain: &Domain, n: usize) -> Vec<Proc> {
    (0..n)
        .map(|i| computing(&format!("C{i}"), domain, &[]))
        .collect()
}
