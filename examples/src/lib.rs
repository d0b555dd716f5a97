//! What amlip's examples share: the domain they run on, from `--domain N` (default 7).
//! Each example is one file beside this crate's manifest; `README.md` lists them.

/// The DDS domain: `--domain N` on the command line, or 7.
pub fn domain() -> u16 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--domain")
        .and_then(|i| args.get(i + 1))
        .map(|d| {
            d.parse()
                .unwrap_or_else(|_| panic!("--domain {d:?} is not a domain id (0..=232)"))
        })
        .unwrap_or(7)
}

/// The MNIST directory of this repository.
pub fn mnist_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/mnist")
}

/// The small committed data sets of this repository (`datasets/fixtures`).
pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/fixtures")
}

/// What a status view anywhere on the domain says of `main`'s sessions once they ended (each
/// main publishes a summary about once a second): one line per session, `kind state step:
/// detail`, as `main-node status` shows them. Waits at most 10 s for every session to end.
pub fn sessions_seen(
    monitor: &amlip_core::node::ClusterMonitor,
    main: &amlip_core::wire::AmlipId,
) -> Vec<String> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let nodes = monitor.nodes();
        let sessions = (nodes.iter())
            .find(|n| n.id == main.to_string())
            .and_then(|n| n.main.clone())
            .map(|m| m.sessions)
            .unwrap_or_default();
        let ended = !sessions.is_empty() && sessions.iter().all(|s| s.state != "running");
        if ended || std::time::Instant::now() > end {
            return (sessions.iter())
                .map(|s| {
                    format!(
                        "{} {} {} {}/{}: {}",
                        s.kind, s.state, s.step_name, s.step, s.steps, s.detail
                    )
                })
                .collect();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
