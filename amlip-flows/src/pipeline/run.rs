//! Running a [`Pipeline`] on a main node: tasks start as soon as the tasks they need are done
//! (so independent ones run at once), each is re-run up to its retries, and the first task
//! that fails for good stops the others.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::kinds::{dataset_from, PrepareJob, ProgramJob};
use super::{Pipeline, PipelineError, Task, Work};
use crate::cancel::CancelToken;
use crate::kind::JobKind;
use crate::nn::{Optimizer, Spec};
use crate::node::MainNode;
use crate::payload::Payload;
use crate::session::{AllReduce, Observer, Runner};
use crate::summary::SessionHandle;

/// How a pipeline runs.
#[derive(Clone)]
pub struct RunOptions {
    /// Bound on each task attempt.
    pub task_timeout: Duration,
    /// Seeds data splits and training.
    pub seed: u64,
    /// All-reduce groups' step timeout.
    pub step_timeout: Duration,
    /// Ctrl-C.
    pub cancel: CancelToken,
}

/// How a task went.
#[derive(Debug, Clone)]
pub struct TaskReport {
    /// The task.
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// Attempts made (1 if it succeeded at once).
    pub attempts: u32,
    /// Seconds from its first start to its end.
    pub seconds: f64,
    /// The computing node(s) that ran it.
    pub nodes: String,
    /// One line on its result.
    pub summary: String,
}

type Said<'a> = &'a (dyn Fn(&str) + Sync);

impl Pipeline {
    /// Runs every task; `say` gets one line per event (a task started, retried, finished).
    pub fn run(
        &self,
        main: &MainNode,
        opts: &RunOptions,
        say: Said<'_>,
    ) -> Result<Vec<TaskReport>, PipelineError> {
        // Its entry in the main's summary: tasks done as steps, each event as its line.
        let session = main.session("pipeline", &self.name, "task", self.tasks.len() as u32);
        let start = Instant::now();
        let said = |line: &str| {
            session.say(line);
            say(line)
        };
        let result = self.run_tasks(main, opts, &said, &session);
        match &result {
            Ok(r) => session.finish(&format!(
                "{} task(s) done in {:.1} s",
                r.len(),
                start.elapsed().as_secs_f64()
            )),
            Err(e) => session.fail(&e.to_string()),
        }
        result
    }

    fn run_tasks(
        &self,
        main: &MainNode,
        opts: &RunOptions,
        say: Said<'_>,
        session: &SessionHandle,
    ) -> Result<Vec<TaskReport>, PipelineError> {
        let stop = CancelToken::new();
        let mut outputs: BTreeMap<String, Arc<Payload>> = BTreeMap::new();
        let mut reports = Vec::new();
        let mut started = BTreeSet::new();
        let mut failed: Option<PipelineError> = None;
        let mut finished = 0;
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            loop {
                if failed.is_none() && !stop.is_cancelled() {
                    for t in &self.tasks {
                        if started.contains(&t.name)
                            || !t.after.iter().all(|d| outputs.contains_key(d))
                        {
                            continue;
                        }
                        started.insert(t.name.clone());
                        let inputs: Vec<(String, Arc<Payload>)> = self
                            .upstream(&t.name)
                            .iter()
                            .map(|u| (u.name.clone(), outputs[&u.name].clone()))
                            .collect();
                        let (tx, stop) = (tx.clone(), stop.clone());
                        say(&format!("[{}] started ({})", t.name, t.work.kind()));
                        s.spawn(move || {
                            let r = attempts(t, &inputs, main, opts, &stop, say);
                            let _ = tx.send((t.name.clone(), r));
                        });
                    }
                }
                if started.len() == finished {
                    break; // nothing in flight, nothing left that may start
                }
                if opts.cancel.is_cancelled() && !stop.is_cancelled() {
                    stop.cancel();
                    failed.get_or_insert(PipelineError::Interrupted);
                }
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok((name, Ok((out, report)))) => {
                        finished += 1;
                        let r: &TaskReport = &report;
                        say(&format!(
                            "[{name}] done in {:.1} s on {}: {}",
                            r.seconds, r.nodes, r.summary
                        ));
                        outputs.insert(name, Arc::new(out));
                        reports.push(report);
                        session.step(reports.len() as u32, self.tasks.len() as u32);
                    }
                    Ok((_, Err(e))) => {
                        finished += 1;
                        stop.cancel();
                        if matches!(failed, None | Some(PipelineError::Interrupted)) {
                            failed = Some(e);
                        }
                    }
                    Err(_) => {}
                }
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    }
}

/// A task, re-run after failures up to its retries.
fn attempts(
    t: &Task,
    inputs: &[(String, Arc<Payload>)],
    main: &MainNode,
    opts: &RunOptions,
    stop: &CancelToken,
    say: Said<'_>,
) -> Result<(Payload, TaskReport), PipelineError> {
    let start = Instant::now();
    let mut last = String::new();
    for attempt in 1..=t.retries + 1 {
        if stop.is_cancelled() {
            return Err(PipelineError::Interrupted);
        }
        match run_task(t, inputs, main, opts, stop, say) {
            Ok((out, nodes, summary)) => {
                let report = TaskReport {
                    name: t.name.clone(),
                    kind: t.work.kind(),
                    attempts: attempt,
                    seconds: start.elapsed().as_secs_f64(),
                    nodes,
                    summary,
                };
                return Ok((out, report));
            }
            Err(why) => {
                if attempt <= t.retries && !stop.is_cancelled() {
                    say(&format!(
                        "[{}] attempt {attempt} failed ({why}); re-running it",
                        t.name
                    ));
                }
                last = why;
            }
        }
    }
    Err(PipelineError::TaskFailed {
        task: t.name.clone(),
        attempts: t.retries + 1,
        why: last,
    })
}

/// The nearest input holding tensors named `tensor`.
fn input_with<'a>(inputs: &'a [(String, Arc<Payload>)], tensor: &str) -> Option<&'a Payload> {
    inputs.iter().map(|(_, p)| p.as_ref()).find(|p| {
        p.tensors()
            .keys()
            .any(|k| k == tensor || k.starts_with(tensor))
    })
}

/// One attempt: the task's output, the node(s) that made it, a summary line.
fn run_task(
    t: &Task,
    inputs: &[(String, Arc<Payload>)],
    main: &MainNode,
    opts: &RunOptions,
    stop: &CancelToken,
    say: Said<'_>,
) -> Result<(Payload, String, String), String> {
    match &t.work {
        Work::Prepare {
            data,
            limit,
            test_split,
        } => {
            let job = PrepareJob {
                data: data.clone(),
                limit: *limit,
                test_split: *test_split,
                seed: opts.seed,
            };
            let p = Payload::new(super::PrepareData::NAME)
                .with_params(&job)
                .map_err(|e| e.to_string())?;
            let (out, node) = one_job(main, p, opts, stop)?;
            // The set's description without its class counts: one line per task.
            let short = |k: &str| {
                let d = out.params_json()[k].as_str().unwrap_or("?");
                d.split(" (").next().unwrap_or(d).to_owned()
            };
            let summary = format!("train {}; test {}", short("train"), short("test"));
            Ok((out, node, summary))
        }
        Work::Train {
            model,
            workers,
            epochs,
            batch,
            optimizer,
            lr,
            momentum,
        } => {
            let data = input_with(inputs, "images")
                .or_else(|| input_with(inputs, "features"))
                .ok_or("no prepared data upstream")?;
            let train = dataset_from(data, "").map_err(|e| e.to_string())?;
            let test = dataset_from(data, "test_").map_err(|e| e.to_string())?;
            let spec = match model.as_str() {
                "cnn" if train.width() == 784 => Spec::cnn(),
                "cnn" => {
                    return Err(format!(
                        "model cnn takes 28x28 images; the data's samples are {:?}",
                        train.sample_shape
                    ))
                }
                _ => Spec::dense(train.width(), 128, train.classes().max(1)),
            };
            let optimizer = match optimizer.as_str() {
                "sgd" => Optimizer::Sgd {
                    lr: lr.unwrap_or(0.01),
                    momentum: *momentum,
                },
                _ => Optimizer::Adam {
                    lr: lr.unwrap_or(0.001),
                },
            };
            let session = AllReduce {
                spec,
                optimizer,
                workers: *workers,
                batch: *batch,
                epochs: *epochs,
                seed: opts.seed,
                threads: 1,
                step_timeout: opts.step_timeout,
            };
            let mut runner = Runner::new(main, opts.task_timeout)
                .observe(Say { task: &t.name, say })
                .cancel_on(stop);
            runner.wait_for_nodes(*workers).map_err(|e| e.to_string())?;
            let report = session
                .run(&mut runner, &train, &test)
                .map_err(|e| e.to_string())?;
            let mut out = Payload::new("nn_model")
                .with_params(&serde_json::json!({
                    "spec": report.network.spec(),
                    "pixels": { "mean": report.pixels.0, "std": report.pixels.1 },
                }))
                .map_err(|e| e.to_string())?;
            crate::group::put_state(&mut out, &report.network, &report.params, None);
            let last = report.epochs.last().map(|e| e.score).unwrap_or(f64::NAN);
            let regroups = report.generations.len() - 1;
            let summary = format!(
                "test score {last:.4} after {epochs} epoch(s); parameters hash-checked at {} steps{}",
                report.steps_checked,
                if regroups > 0 { format!("; re-formed the group {regroups} time(s)") } else { String::new() }
            );
            Ok((out, format!("{workers} worker(s)"), summary))
        }
        Work::Evaluate {} => {
            let model = inputs
                .iter()
                .map(|(_, p)| p.as_ref())
                .find(|p| p.kind() == "nn_model")
                .ok_or("no trained model upstream")?;
            let data = input_with(inputs, "test_").ok_or("no prepared test set upstream")?;
            let mut job = Payload::new(super::Evaluate::NAME)
                .with_params(&serde_json::json!({
                    "spec": model.params_json()["spec"],
                    "pixels": model.params_json()["pixels"],
                    "sample_shape": data.params_json()["sample_shape"],
                    "classes": data.params_json()["classes"],
                }))
                .map_err(|e| e.to_string())?;
            for (name, tensor) in model.tensors().iter().chain(
                data.tensors()
                    .iter()
                    .filter(|(k, _)| k.starts_with("test_")),
            ) {
                job.insert(name, tensor.clone());
            }
            let (out, node) = one_job(main, job, opts, stop)?;
            let r = out.params_json();
            let summary = format!(
                "{} {:.4} on {} samples",
                r["metric"].as_str().unwrap_or("score"),
                r["score"].as_f64().unwrap_or(f64::NAN),
                r["samples"]
            );
            Ok((out, node, summary))
        }
        Work::Program {
            program,
            args,
            timeout_s,
        } => {
            let seen: serde_json::Map<String, serde_json::Value> = inputs
                .iter()
                .map(|(n, p)| (n.clone(), p.params_json().clone()))
                .collect();
            let job = ProgramJob {
                program: program.clone(),
                args: args.clone(),
                timeout_s: *timeout_s,
                inputs: serde_json::Value::Object(seen),
            };
            let p = Payload::new(super::Program::NAME)
                .with_params(&job)
                .map_err(|e| e.to_string())?;
            let (out, node) = one_job(main, p, opts, stop)?;
            let first = out.params_json()["stdout"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            Ok((out, node, format!("{program} exited 0: {first}")))
        }
    }
}

/// Sends one job (the protocol re-sends it if its node is lost) and waits for its solution.
fn one_job(
    main: &MainNode,
    p: Payload,
    opts: &RunOptions,
    stop: &CancelToken,
) -> Result<(Payload, String), String> {
    let data: Bytes = p.encode().map_err(|e| e.to_string())?;
    let mut batch = main.batch().job_timeout(opts.task_timeout).cancel_on(stop);
    batch.submit((), data).map_err(|e| e.to_string())?;
    let outcome = batch.next().ok_or("the job vanished")?;
    let s = outcome.result.map_err(|e| e.to_string())?;
    let out = Payload::decode(&s.data).map_err(|e| format!("the solution: {e}"))?;
    Ok((out, s.server_id.to_string()))
}

/// Passes a training session's lines on, prefixed by the task.
struct Say<'a> {
    task: &'a str,
    say: Said<'a>,
}

impl Observer for Say<'_> {
    fn note(&mut self, line: &str) {
        (self.say)(&format!("[{}] {line}", self.task));
    }
}
