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
