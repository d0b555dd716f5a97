//! Synchronous data-parallel training across real computing-node processes: the seed CNN by
//! ring all-reduce, parameters hash-checked every step, a group that loses a worker and
//! re-forms, and a run that diverges.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{computing_nodes, domain, main as main_proc};
use amlip_core::dataset;
use amlip_core::nn::{Network, Spec, Targets};
use amlip_core::payload::Payload;
use serde_json::Value;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("amlip-allreduce-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// "N steps per epoch" from the main's first generation line.
fn steps_per_epoch(out: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("generation 1:"))
        .expect("a generation line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "steps").unwrap();
    words[i - 1].parse().unwrap()
}

#[test]
fn the_cnn_trains_by_all_reduce_with_identical_parameters_at_every_step() {
    let d = domain();
    let _nodes = computing_nodes(&d, 2);
    let dir = tmpdir("cnn");
    let (report, stats, model) = (
        dir.join("r.json"),
        dir.join("stats.csv"),
        dir.join("cnn.safetensors"),
    );
    let _ = std::fs::remove_file(&stats);
    let mut main = main_proc(
        &d,
        &[
            "train",
            "--model",
            "cnn",
            "--parallel",
            "2",
            "--epochs",
            "1",
            "--limit",
            "4000",
            "--report",
            report.to_str().unwrap(),
            "--stats",
            stats.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
        ],
    );
    let status = main
        .wait_exit(Duration::from_secs(300))
        .expect("training ended");
    let out = main.output();
    assert!(status.success(), "{out}");
    let r = json(&report);
    let steps = steps_per_epoch(&out);
    assert_eq!(
        r["steps_checked"].as_u64(),
        Some(steps),
        "every step's hashes compared equal: {out}"
    );
    let acc = r["epochs"][0]["score"].as_f64().unwrap();
    assert!(
        acc >= 0.85,
        "CNN after one epoch of 4,000 images over 2 workers: {acc}\n{out}"
    );
    let csv = std::fs::read_to_string(&stats).unwrap();
    let row: Vec<&str> = csv.trim().split(',').collect();
    assert_eq!(row.len(), 4, "{csv}");
    assert_eq!(row[0], "2");
    assert!(
        row[1..].iter().all(|v| v.parse::<f64>().unwrap() > 0.0),
        "{csv}"
    );

    // The written model is the network the workers held: it scores what they measured.
    let p = Payload::decode(&std::fs::read(&model).unwrap().into()).unwrap();
    let spec: Spec = serde_json::from_value(p.params_json()["spec"].clone()).unwrap();
    let net = Network::new(spec).unwrap();
    let params = net.params_from(p.tensors()).unwrap();
    assert_eq!(
        format!("{:016x}", amlip_core::nn::hash(&params)),
        r["params_hash"].as_str().unwrap()
    );
    let test = dataset::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/mnist"))
        .unwrap()
        .test;
    let px = &p.params_json()["pixels"];
    let (mean, std) = (
        px["mean"].as_f64().unwrap() as f32,
        px["std"].as_f64().unwrap() as f32,
    );
    let x: Vec<f32> = test
        .images
        .iter()
        .map(|&b| (b as f32 / 255.0 - mean) / std)
        .collect();
    let mine = net
        .score(
            &params,
            &x,
            Targets::Classes(test.labels.as_slice().unwrap()),
        )
        .unwrap();
    assert!(
        (mine - acc).abs() < 0.01,
        "the saved model scores {mine}, the group measured {acc}"
    );
}

#[test]
fn a_group_that_loses_a_worker_re_forms_and_finishes() {
    let d = domain();
    let mut nodes = computing_nodes(&d, 3);
    let dir = tmpdir("kill");
    let report = dir.join("r.json");
    let mut main = main_proc(
        &d,
        &[
            "train",
            "--model",
            "cnn",
            "--parallel",
            "3",
            "--epochs",
            "2",
            "--limit",
            "6000",
            "--step-timeout",
            "30s",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert!(
        main.wait_for("step 20 ", Duration::from_secs(240)),
        "{}",
        main.output()
    );
    nodes[1].kill_hard();
    let status = main
        .wait_exit(Duration::from_secs(300))
        .expect("training ended");
    let out = main.output();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("re-forming the group with the 2 worker(s) left"),
        "{out}"
    );
    let r = json(&report);
    let gens = r["generations"].as_array().unwrap();
    assert_eq!(gens.len(), 2, "{out}");
    assert_eq!(gens[0]["world"], 3);
    assert_eq!(gens[1]["world"], 2);
    assert_eq!(gens[1]["ended"], "finished");
    assert_eq!(
        gens[0]["steps"][1], gens[1]["steps"][0],
        "the second group starts where the first stopped"
    );
    assert_eq!(r["epochs"].as_array().unwrap().len(), 2, "{out}");
    let acc = r["epochs"][1]["score"].as_f64().unwrap();
    assert!(acc >= 0.9, "after two epochs: {acc}\n{out}");
    assert_eq!(
        r["steps_checked"], gens[1]["steps"][1],
        "every step hash-checked: {out}"
    );
}

#[test]
fn a_diverging_group_stops_with_an_error_naming_the_step() {
    let d = domain();
    let _nodes = computing_nodes(&d, 2);
    let mut main = main_proc(
        &d,
        &[
            "train",
            "--model",
            "dense",
            "--parallel",
            "2",
            "--epochs",
            "1",
            "--limit",
            "2000",
            "--optimizer",
            "sgd",
            "--lr",
            "1e30",
        ],
    );
    let status = main
        .wait_exit(Duration::from_secs(120))
        .expect("training ended");
    let out = main.output();
    assert!(!status.success(), "{out}");
    assert!(out.contains("training diverged at epoch 1 step"), "{out}");
    assert!(out.contains("gradient is not finite"), "{out}");
}
