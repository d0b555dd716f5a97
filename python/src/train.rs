//! Training sessions and pipelines from Python, on the library's sessions (no logic here but
//! choosing the session the arguments name): `amlip.train(...)` returns the report `main-node
//! train --report` writes; `amlip.pipeline(path)` the pipeline's task reports.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use amlip_core::cancel::CancelToken;
use amlip_core::config::NodeConfig;
use amlip_core::dataset::{self, LoadOptions};
use amlip_core::kind::mlp_train::MlpHyper;
use amlip_core::nn::{Optimizer, Spec};
use amlip_core::node::MainNode;
use amlip_core::pipeline::{Pipeline, RunOptions};
use amlip_core::session::{AllReduce, AmlShards, MlpShards, Runner};
use pyo3::prelude::*;

use crate::errors::{argument, Error};
use crate::wait;

/// What `amlip.train` was asked for.
struct Training {
    cfg: NodeConfig,
    model: String,
    data: PathBuf,
    test: Option<PathBuf>,
    jobs: usize,
    rounds: usize,
    epochs: Option<usize>,
    hidden: usize,
    digit: Option<String>,
    batch: usize,
    learning_rate: Option<f32>,
    seed: u64,
    limit: Option<usize>,
    wait_nodes: usize,
    timeout: Duration,
    out: Option<PathBuf>,
}

fn run_training(t: Training, cancel: &CancelToken) -> Result<serde_json::Value, String> {
    let start = Instant::now();
    let splits = dataset::load_splits(
        &t.data,
        t.test.as_deref(),
        0.2,
        t.seed,
        &LoadOptions::default(),
    )
    .map_err(|e| format!("cannot load {}: {e}", t.data.display()))?;
    let train = match t.limit {
        Some(n) => splits.train.head(n),
        None => splits.train,
    };
    let main = MainNode::with_config(t.cfg).map_err(|e| e.to_string())?;
    let mut runner = Runner::new(&main, t.timeout).cancel_on(cancel);
    let test_set = format!("test: {}", splits.test_source);
    if t.model == "cnn" || t.model == "dense" {
        runner
            .wait_for_nodes(t.wait_nodes.max(t.jobs))
            .map_err(|e| e.to_string())?;
        let spec = if t.model == "cnn" {
            Spec::cnn_for(&train.sample_shape).map_err(|e| format!("model cnn: {e}"))?
        } else {
            Spec::dense(train.width(), t.hidden, train.classes().max(1))
        };
        let optimizer =
            Optimizer::choose(false, t.learning_rate, None).map_err(|e| e.to_string())?;
        let report = AllReduce {
            spec,
            optimizer,
            workers: t.jobs,
            batch: t.batch,
            epochs: t.epochs.unwrap_or(3),
            seed: t.seed,
            threads: 1,
            step_timeout: Duration::from_secs(60),
        }
        .run(&mut runner, &train, &splits.test)
        .map_err(|e| e.to_string())?;
        if let Some(out) = &t.out {
            let bytes = report
                .model_payload()
                .and_then(|p| p.encode())
                .map_err(|e| e.to_string())?;
            std::fs::write(out, bytes)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        }
        return Ok(report.json(start.elapsed().as_secs_f64()));
    }
    runner
        .wait_for_nodes(t.wait_nodes)
        .map_err(|e| e.to_string())?;
    let digit = match &t.digit {
        Some(c) => Some(
            train
                .class_named(c)
                .map_err(|e| format!("digit {c}: {e}"))?,
        ),
        None => None,
    };
    let report = match t.model.as_str() {
        "aml" => AmlShards {
            digit,
            levels: 8,
            test_set,
            shards: t.jobs,
            batches: 10,
            batch_sizes: (100, 900),
            filter_merge: false,
            holdout: 0.1,
            seed: t.seed,
        }
        .run(&mut runner, &train, &splits.test),
        "mlp" => MlpShards {
            shards: t.jobs,
            rounds: t.rounds,
            hidden: t.hidden,
            test_set,
            hyper: MlpHyper {
                epochs: t.epochs.unwrap_or(2),
                batch: t.batch,
                learning_rate: t.learning_rate.unwrap_or(0.05),
                momentum: 0.9,
            },
            seed: t.seed,
        }
        .run(&mut runner, &train, &splits.test),
        other => return Err(format!("model {other:?}: one of aml, mlp, cnn, dense")),
    }
    .map_err(|e| e.to_string())?;
    drop(runner);
    if let Some(out) = &t.out {
        report
            .save_model(out)
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(report.json(&main.stats(), start.elapsed().as_secs_f64()))
}

/// Runs `work` on a thread of its own while this one waits for it, releasing the GIL and
/// stopping at Ctrl-C (which cancels `work` through its token).
fn interruptible(
    py: Python<'_>,
    work: impl FnOnce(&CancelToken) -> Result<serde_json::Value, String> + Send + 'static,
) -> PyResult<String> {
    let cancel = CancelToken::new();
    let token = cancel.clone();
    let (tx, rx) = flume::bounded(1);
    std::thread::Builder::new()
        .name("amlip-py-session".into())
        .spawn(move || drop(tx.send(work(&token))))
        .map_err(|e| Error::new_err(format!("cannot start a thread: {e}")))?;
    match wait::until(py, None, |slice| rx.recv_timeout(slice).ok()) {
        Ok(Some(Ok(json))) => Ok(json.to_string()),
        Ok(Some(Err(why))) => Err(Error::new_err(why)),
        Ok(None) => Err(Error::new_err("the session ended without a report")),
        Err(interrupted) => {
            cancel.cancel();
            Err(interrupted)
        }
    }
}

/// Trains across the domain's computing nodes on `data` (default `datasets/mnist`); returns
/// the report as JSON text.
#[pyfunction]
#[pyo3(signature = (model = "mlp", data = None, test = None, jobs = 3, rounds = 5,
    epochs = None, hidden = 128, digit = None, batch = 64, learning_rate = None, seed = 1,
    limit = None, wait_nodes = 0, timeout = 600.0, out = None, domain = None, network = None))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    model: &str,
    data: Option<PathBuf>,
    test: Option<PathBuf>,
    jobs: usize,
    rounds: usize,
    epochs: Option<usize>,
    hidden: usize,
    digit: Option<String>,
    batch: usize,
    learning_rate: Option<f32>,
    seed: u64,
    limit: Option<usize>,
    wait_nodes: usize,
    timeout: f64,
    out: Option<PathBuf>,
    domain: Option<u16>,
    network: Option<&str>,
) -> PyResult<String> {
    if jobs == 0 || rounds == 0 || batch == 0 || hidden == 0 {
        return Err(argument(
            "jobs, rounds, batch and hidden must be at least 1",
        ));
    }
    let t = Training {
        cfg: crate::config::node("Main", domain, network)?,
        model: model.to_owned(),
        data: data.unwrap_or_else(|| PathBuf::from("datasets/mnist")),
        test,
        jobs,
        rounds,
        epochs,
        hidden,
        digit,
        batch,
        learning_rate,
        seed,
        limit,
        wait_nodes,
        timeout: wait::duration(timeout)?,
        out,
    };
    interruptible(py, move |cancel| run_training(t, cancel))
}

/// Runs the pipeline file at `path` on the domain's computing nodes; returns its task reports
/// as JSON text (name, kind, attempts, seconds, nodes, summary).
#[pyfunction]
#[pyo3(signature = (path, wait_nodes = 1, task_timeout = 1800.0, seed = 1, domain = None, network = None))]
pub fn pipeline(
    py: Python<'_>,
    path: PathBuf,
    wait_nodes: usize,
    task_timeout: f64,
    seed: u64,
    domain: Option<u16>,
    network: Option<&str>,
) -> PyResult<String> {
    let pipeline = Pipeline::from_file(&path).map_err(|e| argument(e.to_string()))?;
    let cfg = crate::config::node("Main", domain, network)?;
    let task_timeout = wait::duration(task_timeout)?;
    interruptible(py, move |cancel| {
        let main = MainNode::with_config(cfg).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + task_timeout;
        while main.stats().computing_nodes.len() < wait_nodes {
            if Instant::now() > deadline || cancel.wait_timeout(Duration::from_millis(20)) {
                return Err(format!("fewer than {wait_nodes} computing nodes appeared"));
            }
        }
        let opts = RunOptions {
            task_timeout,
            seed,
            step_timeout: Duration::from_secs(60),
            cancel: cancel.clone(),
        };
        let reports = pipeline
            .run(&main, &opts, &|_: &str| {})
            .map_err(|e| e.to_string())?;
        Ok(serde_json::Value::Array(
            reports
                .iter()
                .map(|r| {
                    serde_json::json!({"name": r.name, "kind": r.kind, "attempts": r.attempts,
                        "seconds": r.seconds, "nodes": r.nodes, "summary": r.summary})
                })
                .collect(),
        ))
    })
}
