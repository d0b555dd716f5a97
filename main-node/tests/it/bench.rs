//! The benchmark's sizes and node counts at small counts, for correctness only (no timing
//! assertions): every measurement completes and is reported.

use std::time::Duration;

use crate::common::{domain, main as main_proc};

#[test]
fn bench_runs_every_size_and_node_count() {
    let d = domain();
    let dir = std::env::temp_dir().join(format!("amlip-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json").to_string_lossy().into_owned();
    let csv = dir.join("bench.csv").to_string_lossy().into_owned();
    let mut p = main_proc(
        &d,
        &[
            "bench",
            "--sizes",
            "1KB,100KB,1MB,10MB,50MB",
            "--jobs",
            "2",
            "--warmup",
            "1",
            "--nodes",
            "1,2,4",
            "--tiny-jobs",
            "200",
            "--first-job-trials",
            "1",
            "--json",
            &json,
            "--csv",
            &csv,
        ],
    );
    let status = p
        .wait_exit(Duration::from_secs(240))
        .expect("bench finished");
    assert!(status.success(), "{}", p.output());
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let sizes: Vec<u64> = rows
        .iter()
        .filter(|r| r["kind"] == "round_trip")
        .map(|r| r["size"].as_u64().unwrap())
        .collect();
    assert_eq!(
        sizes,
        vec![1_000, 100_000, 1_000_000, 10_000_000, 50_000_000]
    );
    for r in rows.iter().filter(|r| r["kind"] == "round_trip") {
        assert!(
            r["median_ms"].as_f64().unwrap() > 0.0 && r["tcp_median_ms"].as_f64().unwrap() > 0.0
        );
    }
    let nodes: Vec<u64> = rows
        .iter()
        .filter(|r| r["kind"] == "throughput")
        .map(|r| r["computing_nodes"].as_u64().unwrap())
        .collect();
    assert_eq!(nodes, vec![1, 2, 4]);
    assert!(rows.iter().any(|r| r["kind"] == "first_job"));
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv.lines().count(), 1 + rows.len(), "{csv}");
    std::fs::remove_dir_all(&dir).ok();
}
