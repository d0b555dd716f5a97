//! The AI-in-the-loop workflow (Dragon's): a small network approximates sin(x); a cheap
//! simulation checks it, an expensive one makes the data it retrains on, until five successes.
//!
//! Each iteration draws x ~ U(-pi, pi) and, at once, asks the model for sin(x) (on an inference
//! node that serves it, else locally) and runs `sim_cheap`: the Taylor series of sin cut into
//! [`AiLoop::cheap_ranks`] jobs of [`AiLoop::terms_per_rank`] terms, summed. If the two differ
//! by more than [`AiLoop::tolerance`] it says `training`, runs `sim_expensive` (one job per
//! rank, [`AiLoop::ranks_per_node`] ranks per computing node, 32 samples each, seeded by the
//! number of times trained, each sin(x) simulated by integrating y'' = -y with RK4), trains the model on those samples in an `nn_fit` job on a
//! computing node (Adam, lr 0.01), and retries the same x; otherwise it counts a success and
//! says `approx = <model>, exact = <sin x>`.
//!
//! Every job goes through the job protocol, which re-sends a job whose computing node is lost:
//! nodes may die mid-loop. The model starts from a seeded initialisation (there is no
//! pre-trained one), so a run is reproducible.
//!
//! - `kinds`: the job kinds `sim_cheap`, `sim_expensive` and `nn_fit` (in
//!   [`Registry::builtin`](crate::kind::BuiltinKinds::builtin)).

pub mod kinds;

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::batch::Batch;
use crate::cancel::CancelToken;
use crate::infer::Session;
use crate::kind::{self, JobKind, Json};
use crate::nn::{Network, OptimState, Optimizer, Spec};
use crate::node::MainNode;
use crate::payload::Payload;
use crate::summary::{Figures, SessionHandle};
use kinds::{ExpensiveRank, FitJob, FitResult, NnFit, SimCheap, SimExpensive, TaylorTerms};

/// Why the loop stopped without its successes.
#[derive(Debug, thiserror::Error)]
pub enum AiLoopError {
    /// A job failed every attempt.
    #[error("{what} failed {attempts} time(s); last: {why}")]
    Job {
        /// Which job.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        why: String,
    },
    /// The network, its parameters or a solution's tensors.
    #[error("{0}")]
    Model(String),
    /// Cancelled (Ctrl-C).
    #[error("cancelled after {iterations} iteration(s)")]
    Cancelled {
        /// Iterations run.
        iterations: usize,
    },
    /// Too many iterations.
    #[error("{successes} success(es) after {iterations} iterations (the most allowed)")]
    TooLong {
        /// Iterations run.
        iterations: usize,
        /// Successes counted.
        successes: usize,
    },
}

/// The workflow's settings. [`AiLoop::default`] is the seed's.
#[derive(Debug, Clone)]
pub struct AiLoop {
    /// Successes to reach (5).
    pub successes: usize,
    /// Largest |model - Taylor| that counts as a success (0.05).
    pub tolerance: f64,
    /// `sim_cheap` jobs (4).
    pub cheap_ranks: u32,
    /// Taylor terms each sums (3: 12 terms, exact to 1e-9 on [-pi, pi]).
    pub terms_per_rank: u32,
    /// `sim_expensive` ranks per computing node seen at the start (8).
    pub ranks_per_node: usize,
    /// Samples per `sim_expensive` rank (32).
    pub samples_per_rank: u32,
    /// RK4 steps per unit of x `sim_expensive` integrates with (100,000: ~0.1 s per rank).
    pub expensive_steps: u32,
    /// The model (1-32-32-1, tanh... see [`Spec::regression`]).
    pub spec: Spec,
    /// Adam's learning rate (0.01).
    pub lr: f32,
    /// Epochs over each round of new samples (10).
    pub epochs: u32,
    /// Samples per step (32).
    pub batch: u32,
    /// Seeds the initial model and the points x.
    pub seed: u64,
    /// Iterations at most (500).
    pub max_iterations: usize,
    /// Bound on each job (the protocol re-sends a lost node's job within it).
    pub job_timeout: Duration,
    /// Attempts per job that fails outright (3).
    pub attempts: u32,
    /// How long to wait for an inference node to serve a new version of the model before
    /// inferring locally instead (5 s).
    pub serve_timeout: Duration,
}

impl Default for AiLoop {
    fn default() -> Self {
        Self {
            successes: 5,
            tolerance: 0.05,
            cheap_ranks: 4,
            terms_per_rank: 3,
            ranks_per_node: 8,
            samples_per_rank: 32,
            expensive_steps: 100_000,
            spec: Spec::regression(1, &[32, 32], 1),
            lr: 0.01,
            epochs: 10,
            batch: 32,
            seed: 1,
            max_iterations: 500,
            job_timeout: Duration::from_secs(120),
            attempts: 3,
            serve_timeout: Duration::from_secs(5),
        }
    }
}

/// One success.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Success {
    /// The point.
    pub x: f64,
    /// The model's value.
    pub approx: f64,
    /// sin(x).
    pub exact: f64,
    /// `sim_cheap`'s value.
    pub taylor: f64,
}

/// Seconds spent per phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PhaseTimes {
    /// Inference (within the parallel phase).
    pub inference: f64,
    /// `sim_cheap` (within the parallel phase).
    pub sim_cheap: f64,
    /// Inference and `sim_cheap` together, as run (at once).
    pub check: f64,
    /// `sim_expensive`.
    pub sim_expensive: f64,
    /// `nn_fit`.
    pub training: f64,
    /// Handing each new model to the inference node.
    pub serving: f64,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct AiLoopReport {
    /// Times through the loop (inference + check).
    pub iterations: usize,
    /// Times the model was trained.
    pub times_trained: usize,
    /// The successes, in order.
    pub successes: Vec<Success>,
    /// Time per phase.
    pub phases: PhaseTimes,
    /// Where inference ran, in words.
    pub inference: String,
    /// Jobs re-sent because their node was lost (or failed and were re-submitted).
    pub resent: u32,
    /// Seconds in all.
    pub seconds: f64,
    /// The model.
    pub spec: Spec,
    /// Its parameters.
    pub params: Vec<f32>,
}

impl AiLoopReport {
    /// The report as JSON (`main-node ai-loop --json`): iterations, trainings, successes,
    /// phases, where inference ran, jobs re-sent, seconds.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "iterations": self.iterations,
            "times_trained": self.times_trained,
            "successes": self.successes,
            "phases": self.phases,
            "inference": self.inference,
            "resent": self.resent,
            "seconds": self.seconds,
        })
    }
}

/// Where the model is asked.
pub enum Inference {
    /// In this process.
    Local,
    /// On the domain's inference nodes, through a session; `name` is the model's name there.
    /// When no node serves a new version in time the loop infers locally and says so.
    Session {
        /// The session.
        session: Box<Session>,
        /// The model's name.
        name: String,
    },
}

impl AiLoop {
    /// Runs the loop on `main`'s computing nodes until [`successes`](Self::successes).
    /// `say` gets the seed's lines (`training`, `approx = ..., exact = ...`) and notes.
    pub fn run(
        &self,
        main: &MainNode,
        inference: Inference,
        cancel: &CancelToken,
        say: &dyn Fn(&str),
    ) -> Result<AiLoopReport, AiLoopError> {
        // Its entry in the main's summary: successes as steps, |model - Taylor| per iteration
        // as the curve.
        let session = main.session("ailoop", "AI in the loop", "success", self.successes as u32);
        let said = |line: &str| {
            session.say(line);
            say(line)
        };
        match self.iterate(main, inference, cancel, &said, &session) {
            Ok(r) => {
                session.finish(&format!(
                    "{} successes in {} iterations, trained {} time(s), {:.1} s",
                    r.successes.len(),
                    r.iterations,
                    r.times_trained,
                    r.seconds
                ));
                Ok(r)
            }
            Err(e) => {
                session.fail(&e.to_string());
                Err(e)
            }
        }
    }

    fn iterate(
        &self,
        main: &MainNode,
        mut inference: Inference,
        cancel: &CancelToken,
        say: &dyn Fn(&str),
        session: &SessionHandle,
    ) -> Result<AiLoopReport, AiLoopError> {
        let start = Instant::now();
        let model = |e: crate::nn::NnError| AiLoopError::Model(e.to_string());
        let net = Network::new(self.spec.clone()).map_err(model)?;
        let optimizer = Optimizer::Adam { lr: self.lr };
        let mut params = net.init(self.seed);
        let mut state = optimizer.state(net.len());
        let nodes = main.stats().computing_nodes.len().max(1);
        let ranks = self.ranks_per_node * nodes;
        say(&format!(
            "{nodes} computing node(s): sim-cheap on {} ranks, sim-expensive on {ranks} ranks \
             ({} per node) of {} samples",
            self.cheap_ranks, self.ranks_per_node, self.samples_per_rank
        ));
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut report = AiLoopReport {
            iterations: 0,
            times_trained: 0,
            successes: Vec::new(),
            phases: PhaseTimes::default(),
            inference: String::new(),
            resent: 0,
            seconds: 0.0,
            spec: self.spec.clone(),
            params: Vec::new(),
        };
        let mut served_version = None;
        let pi = std::f64::consts::PI;
        let mut x = rng.random_range(-pi..pi);
        while report.successes.len() < self.successes {
            if cancel.is_cancelled() {
                return Err(AiLoopError::Cancelled {
                    iterations: report.iterations,
                });
            }
            if report.iterations >= self.max_iterations {
                return Err(AiLoopError::TooLong {
                    iterations: report.iterations,
                    successes: report.successes.len(),
                });
            }
            report.iterations += 1;
            // Hand the model to the inference node when it changed.
            if let Inference::Session { session, name } = &mut inference {
                if served_version != Some(report.times_trained) {
                    let t = Instant::now();
                    let file = model_file(&net, &params)?;
                    match session.set_model(name, file) {
                        Ok(info) => {
                            served_version = Some(report.times_trained);
                            report.inference =
                                format!("inference node (model {name:?} v{})", info.version);
                        }
                        Err(e) => {
                            say(&format!(
                                "no inference node took the model ({e}): inferring locally"
                            ));
                            inference = Inference::Local;
                        }
                    }
                    report.phases.serving += t.elapsed().as_secs_f64();
                }
            }
            // In parallel: the cheap simulation's jobs run while the model is asked.
            let t = Instant::now();
            let mut cheap = main
                .batch::<usize>()
                .job_timeout(self.job_timeout)
                .cancel_on(cancel);
            let jobs: Vec<TaylorTerms> = (0..self.cheap_ranks)
                .map(|r| TaylorTerms {
                    x,
                    first: r * self.terms_per_rank,
                    count: self.terms_per_rank,
                })
                .collect();
            submit_all::<SimCheap>(
                &mut cheap,
                &jobs.iter().cloned().map(Json).collect::<Vec<_>>(),
            )?;
            let approx = match &mut inference {
                Inference::Local => {
                    report.inference = "local".into();
                    local(&net, &params, x)?
                }
                Inference::Session { session, name } => match remote(session, name, x) {
                    Ok(v) => v,
                    Err(e) => {
                        say(&format!("inference node failed ({e}): inferring locally"));
                        inference = Inference::Local;
                        report.inference = "local (the inference node failed)".into();
                        local(&net, &params, x)?
                    }
                },
            };
            report.phases.inference += t.elapsed().as_secs_f64();
            let sums = collect::<SimCheap>(
                main,
                cheap,
                &jobs.into_iter().map(Json).collect::<Vec<_>>(),
                "sim-cheap",
                self,
                cancel,
                &mut report.resent,
            )?;
            let taylor: f64 = sums.iter().map(|s| s.0).sum();
            report.phases.sim_cheap += t.elapsed().as_secs_f64();
            report.phases.check += t.elapsed().as_secs_f64();

            let error = (approx - taylor).abs();
            let figures = Figures {
                loss: Some(error),
                ..Figures::default()
            };
            session.point(report.iterations as u32, 0, figures);
            if error > self.tolerance {
                say("training");
                let t = Instant::now();
                let ranks: Vec<Json<ExpensiveRank>> = (0..ranks)
                    .map(|r| {
                        Json(ExpensiveRank {
                            seed: report.times_trained as u64,
                            rank: r as u32,
                            samples: self.samples_per_rank,
                            steps_per_unit: self.expensive_steps,
                        })
                    })
                    .collect();
                let mut batch = main
                    .batch::<usize>()
                    .job_timeout(self.job_timeout)
                    .cancel_on(cancel);
                submit_all::<SimExpensive>(&mut batch, &ranks)?;
                let parts = collect::<SimExpensive>(
                    main,
                    batch,
                    &ranks,
                    "sim-expensive",
                    self,
                    cancel,
                    &mut report.resent,
                )?;
                let (mut xs, mut ys) = (Vec::new(), Vec::new());
                for p in &parts {
                    xs.extend(
                        p.f32s("x", &[None, Some(1)])
                            .map_err(|e| AiLoopError::Model(e.to_string()))?,
                    );
                    ys.extend(
                        p.f32s("y", &[None, Some(1)])
                            .map_err(|e| AiLoopError::Model(e.to_string()))?,
                    );
                }
                report.phases.sim_expensive += t.elapsed().as_secs_f64();
                let t = Instant::now();
                let fit = fit_job(self, &net, &params, &state, &xs, &ys, report.times_trained)?;
                let mut batch = main
                    .batch::<usize>()
                    .job_timeout(self.job_timeout)
                    .cancel_on(cancel);
                submit_all::<NnFit>(&mut batch, std::slice::from_ref(&fit))?;
                let out = collect::<NnFit>(
                    main,
                    batch,
                    std::slice::from_ref(&fit),
                    "training",
                    self,
                    cancel,
                    &mut report.resent,
                )?
                .pop()
                .expect("one job, one solution");
                let result: FitResult = out
                    .params()
                    .map_err(|e| AiLoopError::Model(e.to_string()))?;
                params = crate::group::read_params(&out, &net).map_err(model)?;
                state = crate::group::read_state(&out, &optimizer, &net, result.steps)
                    .map_err(|e| AiLoopError::Model(e.to_string()))?;
                report.times_trained += 1;
                report.phases.training += t.elapsed().as_secs_f64();
                continue; // the same x again
            }
            let exact = x.sin();
            say(&format!(
                "approx = {approx}, exact = {exact}  (x = {x}, taylor = {taylor})"
            ));
            report.successes.push(Success {
                x,
                approx,
                exact,
                taylor,
            });
            session.step(report.successes.len() as u32, self.successes as u32);
            x = rng.random_range(-pi..pi);
        }
        report.seconds = start.elapsed().as_secs_f64();
        report.params = params;
        Ok(report)
    }
}

/// The model as an `nn_model` payload (what inference nodes load).
pub fn model_file(net: &Network, params: &[f32]) -> Result<bytes::Bytes, AiLoopError> {
    let mut p = Payload::new("nn_model")
        .with_params(&serde_json::json!({ "spec": net.spec() }))
        .map_err(|e| AiLoopError::Model(e.to_string()))?;
    for (name, t) in net.tensors(params) {
        p.insert(&name, t);
    }
    p.encode().map_err(|e| AiLoopError::Model(e.to_string()))
}

fn local(net: &Network, params: &[f32], x: f64) -> Result<f64, AiLoopError> {
    net.forward(params, &[x as f32])
        .map(|y| y[0] as f64)
        .map_err(|e| AiLoopError::Model(e.to_string()))
}

fn remote(session: &mut Session, name: &str, x: f64) -> Result<f64, String> {
    session.put_tensor("x", kinds::column(&[x as f32]));
    session
        .run_model(name, &["x"], &["y"])
        .map_err(|e| e.to_string())?;
    session
        .get_tensor("y")
        .and_then(|t| t.to_f32s())
        .and_then(|v| v.first().copied())
        .map(|v| v as f64)
        .ok_or_else(|| "the answer has no value".to_string())
}

#[allow(clippy::too_many_arguments)]
fn fit_job(
    cfg: &AiLoop,
    net: &Network,
    params: &[f32],
    state: &OptimState,
    xs: &[f32],
    ys: &[f32],
    times_trained: usize,
) -> Result<Payload, AiLoopError> {
    let mut p = Payload::new(NnFit::NAME)
        .with_params(&FitJob {
            spec: cfg.spec.clone(),
            optimizer: Optimizer::Adam { lr: cfg.lr },
            steps: state.steps,
            epochs: cfg.epochs,
            batch: cfg.batch,
            seed: cfg.seed ^ times_trained as u64,
        })
        .map_err(|e| AiLoopError::Model(e.to_string()))?;
    crate::group::put_state(&mut p, net, params, Some(state));
    p.insert("x", kinds::column(xs));
    p.insert("y", kinds::column(ys));
    Ok(p)
}

fn submit_all<K: JobKind>(
    batch: &mut Batch<'_, usize>,
    inputs: &[K::Input],
) -> Result<(), AiLoopError> {
    for (i, input) in inputs.iter().enumerate() {
        let bytes = kind::job_bytes::<K>(input).map_err(|e| AiLoopError::Model(e.to_string()))?;
        batch.submit(i, bytes).map_err(|e| AiLoopError::Job {
            what: format!("{} job {i}", K::NAME),
            attempts: 1,
            why: e.to_string(),
        })?;
    }
    Ok(())
}

/// Waits for every job of `batch`; a job that fails is sent again, up to `cfg.attempts`.
fn collect<K: JobKind>(
    main: &MainNode,
    batch: Batch<'_, usize>,
    inputs: &[K::Input],
    what: &str,
    cfg: &AiLoop,
    cancel: &CancelToken,
    resent: &mut u32,
) -> Result<Vec<K::Output>, AiLoopError> {
    let mut out: Vec<Option<K::Output>> = inputs.iter().map(|_| None).collect();
    let mut attempts = vec![1u32; inputs.len()];
    let mut batch = batch;
    loop {
        let mut again = Vec::new();
        for o in batch.by_ref() {
            *resent += o.resent;
            let decoded = o
                .result
                .map_err(|e| e.to_string())
                .and_then(|s| kind::read_solution::<K>(&s.data).map_err(|e| e.to_string()));
            match decoded {
                Ok(v) => out[o.label] = Some(v),
                Err(why) if attempts[o.label] >= cfg.attempts || cancel.is_cancelled() => {
                    return Err(AiLoopError::Job {
                        what: format!("{what} job {}", o.label),
                        attempts: attempts[o.label],
                        why,
                    })
                }
                Err(why) => {
                    tracing::warn!("{what} job {} failed ({why}); sending it again", o.label);
                    attempts[o.label] += 1;
                    *resent += 1;
                    again.push(o.label);
                }
            }
        }
        if again.is_empty() {
            break;
        }
        drop(batch);
        batch = main.batch().job_timeout(cfg.job_timeout).cancel_on(cancel);
        for i in again {
            let bytes =
                kind::job_bytes::<K>(&inputs[i]).map_err(|e| AiLoopError::Model(e.to_string()))?;
            batch.submit(i, bytes).map_err(|e| AiLoopError::Job {
                what: format!("{what} job {i}"),
                attempts: attempts[i],
                why: e.to_string(),
            })?;
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, o)| {
            o.ok_or_else(|| AiLoopError::Job {
                what: format!("{what} job {i}"),
                attempts: attempts[i],
                why: "it ended without an outcome".into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::infer::Model;

    #[test]
    fn an_inference_node_runs_the_loops_model_as_the_loop_does() {
        let net = Network::new(Spec::regression(1, &[8, 8], 1)).unwrap();
        let params = net.init(3);
        let model = Model::from_bytes("m", 1, model_file(&net, &params).unwrap()).unwrap();
        assert_eq!(model.info().kind, "nn");
        let xs = [-2.0f32, 0.25, 3.0];
        let inputs = BTreeMap::from([("x".to_string(), kinds::column(&xs))]);
        let out = model.run(&inputs).unwrap();
        let got = out["output"].to_f32s().unwrap();
        // Served, dense weights are stored transposed: the same sums in another order.
        let want = net.forward(&params, &xs).unwrap();
        assert!(
            got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
            "{got:?} {want:?}"
        );
        // A batch of the wrong width is refused, naming the input.
        let wide = BTreeMap::from([(
            "x".to_string(),
            crate::payload::Tensor::from_f32(ndarray::Array2::<f32>::zeros((2, 3)).view()),
        )]);
        let e = model.run(&wide).unwrap_err().to_string();
        assert!(e.contains("input"), "{e}");
    }
}
