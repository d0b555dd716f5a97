//! [`AllReduce`]: synchronous data-parallel training of a [`Spec`] network over a group of
//! computing nodes (see [`crate::group`]), re-forming the group when a worker is lost.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Runner, SessionError, TrainPoint};
use crate::batch::Event;
use crate::dataset::{self, Dataset, Features, Sharding, Target};
use crate::dds::Network as Interfaces;
use crate::error::JobError;
use crate::group::control::{Coordinator, Seen};
use crate::group::seal::GroupKey;
use crate::group::{Ending, GroupJob, GroupResult, Times};
use crate::kind::JobKind;
use crate::nn::{self, Network, OptimState, Optimizer, Spec};
use crate::payload::{Payload, Tensor};

/// The session's settings.
#[derive(Debug, Clone)]
pub struct AllReduce {
    /// The network.
    pub spec: Spec,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Workers in the group (computing nodes, one job each).
    pub workers: usize,
    /// Mini-batch per worker.
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Seeds the initial parameters, the sharding, shuffling and dropout.
    pub seed: u64,
    /// Threads each worker computes its gradient with.
    pub threads: usize,
    /// How long a ring exchange may wait on a silent worker before the group re-forms.
    pub step_timeout: Duration,
}

/// One epoch, as the group measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLine {
    /// 1-based.
    pub epoch: usize,
    /// Test accuracy (classifiers) or MSE (regressors), over every worker's test shard.
    pub score: f64,
    /// Mean training loss of the epoch's steps.
    pub loss: f64,
}

/// One formation of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Workers.
    pub world: usize,
    /// Optimizer steps when it formed and when it ended.
    pub steps: (u64, u64),
    /// The time split of the lowest rank that answered (rank 0's unless it was lost).
    pub times: Times,
    /// `finished`, or why it was re-formed.
    pub ended: String,
}

/// What an all-reduce session produced.
#[derive(Debug, Clone)]
pub struct AllReduceReport {
    /// The network.
    pub network: Network,
    /// Its trained parameters.
    pub params: Vec<f32>,
    /// Per epoch.
    pub epochs: Vec<EpochLine>,
    /// Per formation of the group (more than one if a worker was lost).
    pub generations: Vec<Generation>,
    /// Steps at which every worker reported the same parameter hash.
    pub steps_checked: u64,
    /// Wall time of the session.
    pub seconds: f64,
    /// How pixels were standardised for the network: `(x / 255 - mean) / std`.
    pub pixels: (f32, f32),
}

impl AllReduceReport {
    /// Appends [`csv_rows`](Self::csv_rows) to the file at `path` (created if missing).
    pub fn append_csv(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for row in self.csv_rows() {
            writeln!(f, "{row}")?;
        }
        Ok(())
    }

    /// Seconds spent training (computing and communicating) and testing, summed over the
    /// group's formations (rank 0's, or the lowest rank that answered).
    pub fn total_times(&self) -> (f64, f64) {
        let g = &self.generations;
        (
            g.iter()
                .map(|g| g.times.training + g.times.communication)
                .sum(),
            g.iter().map(|g| g.times.testing).sum(),
        )
    }

    /// The trained model as a payload (`nn_model`: parameters by PyTorch's names, the spec
    /// and the pixel standardisation in its metadata), as `main-node train --out` writes it.
    pub fn model_payload(&self) -> Result<crate::payload::Payload, crate::payload::PayloadError> {
        self.network
            .payload("nn_model", &self.params)
            .with_params(&serde_json::json!({
                "spec": self.network.spec(),
                "pixels": { "mean": self.pixels.0, "std": self.pixels.1 },
            }))
    }

    /// The report as JSON (`main-node train --report`), with the session's wall time.
    pub fn json(&self, wall_seconds: f64) -> serde_json::Value {
        use serde_json::json;
        json!({
            "epochs": self.epochs.iter().map(|e| json!({"epoch": e.epoch, "score": e.score, "loss": e.loss})).collect::<Vec<_>>(),
            "generations": self.generations.iter().map(|g| json!({"world": g.world, "steps": [g.steps.0, g.steps.1], "training_s": g.times.training, "communication_s": g.times.communication, "testing_s": g.times.testing, "ended": g.ended})).collect::<Vec<_>>(),
            "steps_checked": self.steps_checked,
            "params_hash": format!("{:016x}", crate::nn::hash(&self.params)),
            "wall_s": wall_seconds,
        })
    }

    /// The seed's `stats.csv` rows: `world_size,training_time,communication_time,testing_time`,
    /// one per formation of the group (rank 0's seconds).
    pub fn csv_rows(&self) -> Vec<String> {
        self.generations
            .iter()
            .map(|g| {
                format!(
                    "{},{:.3},{:.3},{:.3}",
                    g.world, g.times.training, g.times.communication, g.times.testing
                )
            })
            .collect()
    }
}

/// Where the training stands between generations.
struct Checkpoint {
    params: Vec<f32>,
    state: OptimState,
    /// Epoch, and steps of it done, with `world` workers of `steps_per_epoch` steps.
    at: (usize, usize),
    world: usize,
    steps_per_epoch: usize,
}

impl AllReduce {
    /// Trains on `train`, evaluating on `test` after every epoch.
    pub fn run(
        &self,
        runner: &mut Runner<'_>,
        train: &Dataset,
        test: &Dataset,
    ) -> Result<AllReduceReport, SessionError> {
        let convolves = (self.spec.layers.iter()).any(|l| matches!(l, nn::Layer::Conv2d { .. }));
        let name = format!(
            "{} of {} layers on {} workers",
            if convolves { "CNN" } else { "dense network" },
            self.spec.layers.len(),
            self.workers
        );
        let what = if self.spec.loss.classifies() {
            "test accuracy"
        } else {
            "test MSE"
        };
        runner.named(
            ("allreduce", &name, "epoch", self.epochs),
            |runner| self.train(runner, train, test),
            |r| match r.epochs.last() {
                Some(e) => format!(
                    "epoch {}: {what} {:.4}, train loss {:.4}, {:.1} s",
                    e.epoch, e.score, e.loss, r.seconds
                ),
                None => "no epoch".into(),
            },
        )
    }

    fn train(
        &self,
        runner: &mut Runner<'_>,
        train: &Dataset,
        test: &Dataset,
    ) -> Result<AllReduceReport, SessionError> {
        let start = Instant::now();
        let net =
            Network::new(self.spec.clone()).map_err(|e| SessionError::Config(e.to_string()))?;
        self.optimizer
            .check()
            .map_err(|e| SessionError::Config(e.to_string()))?;
        self.check(&net, train, test)?;
        let pixels = pixel_stats(train);
        let main = runner.main;
        // In a trusted domain the group's own connections are sealed with a key that reaches
        // the workers inside their jobs (secured like every job).
        let key = if main.is_trusted() {
            Some(GroupKey::random().map_err(SessionError::Config)?)
        } else {
            None
        };
        let (bind, announce) = match main.interfaces() {
            Interfaces::Localhost => (Ipv4Addr::LOCALHOST, vec![Ipv4Addr::LOCALHOST]),
            n => (Ipv4Addr::UNSPECIFIED, n.local_addrs()),
        };
        let group = rand::random::<u64>();
        let coordinator = Coordinator::start(bind, &announce, group, key.clone()).map_err(|e| {
            SessionError::Config(format!("cannot open the group's control channel: {e}"))
        })?;
        let mut ck = Checkpoint {
            params: net.init(self.seed),
            state: self.optimizer.state(net.len()),
            at: (0, 0),
            world: self.workers,
            steps_per_epoch: 1,
        };
        let mut world = self.workers;
        let mut report = AllReduceReport {
            network: net.clone(),
            params: Vec::new(),
            epochs: Vec::new(),
            generations: Vec::new(),
            steps_checked: 0,
            seconds: 0.0,
            pixels,
        };
        let test_shards = dataset::shard(test, world, Sharding::Stratified, self.seed);
        for generation in 1u32.. {
            let shards = dataset::shard(
                train,
                world,
                Sharding::Stratified,
                self.seed ^ generation as u64,
            );
            let steps_per_epoch = shards
                .iter()
                .map(|s| s.len())
                .min()
                .unwrap_or(1)
                .div_ceil(self.batch)
                .max(1);
            // Resume where the last group stopped, in samples of the epoch consumed.
            let consumed = ck.at.1 * self.batch * ck.world;
            let mut at = (
                ck.at.0,
                (consumed / (self.batch * world)).min(steps_per_epoch),
            );
            if ck.at.1 >= ck.steps_per_epoch || at.1 >= steps_per_epoch {
                at = (ck.at.0 + usize::from(ck.at.1 > 0), 0);
            }
            let test_shards = if test_shards.len() == world {
                test_shards.clone()
            } else {
                dataset::shard(test, world, Sharding::Stratified, self.seed)
            };
            coordinator.begin(generation, world as u32);
            let first_step = ck.state.steps;
            runner.note(&format!(
                "generation {generation}: {world} worker(s), {steps_per_epoch} steps per epoch of {} per worker, from epoch {} step {}",
                self.batch,
                at.0 + 1,
                at.1
            ));
            let mut jobs = Vec::with_capacity(world);
            for rank in 0..world {
                let cfg = GroupJob {
                    group,
                    generation,
                    rank: rank as u32,
                    world: world as u32,
                    control: coordinator.addrs().to_vec(),
                    spec: self.spec.clone(),
                    optimizer: self.optimizer,
                    optim_steps: ck.state.steps,
                    batch: self.batch,
                    epochs: self.epochs,
                    steps_per_epoch,
                    start: at,
                    seed: self.seed,
                    threads: self.threads,
                    step_timeout_s: self.step_timeout.as_secs_f64(),
                    pixels,
                    key: key.as_ref().map(GroupKey::to_hex),
                };
                jobs.push((
                    rank,
                    job(&net, &cfg, &shards[rank], &test_shards[rank], &ck)?,
                ));
            }
            let outcome = self.run_generation(runner, &coordinator, jobs, &mut report, world)?;
            let (results, ended) = outcome;
            // The lowest rank's times (rank 0's unless it was the one lost).
            let times = results
                .iter()
                .filter(|(r, _)| r.ending != Ending::Stale)
                .min_by_key(|(r, _)| r.rank)
                .map(|(r, _)| r.times)
                .unwrap_or_default();
            match ended {
                None => {
                    let (r, p) = results
                        .into_iter()
                        .find(|(r, p)| r.ending == Ending::Finished && r.rank == 0 && p.is_some())
                        .ok_or_else(|| {
                            SessionError::Config(
                                "the group finished but rank 0 sent no parameters".into(),
                            )
                        })?;
                    let p = p.expect("checked");
                    report.params = crate::group::read_params(&p, &net).map_err(|e| bad(&e))?;
                    report.generations.push(Generation {
                        world,
                        steps: (first_step, r.optim_steps),
                        times,
                        ended: "finished".into(),
                    });
                    break;
                }
                Some(why) => {
                    // The state of the survivor furthest along (all completed steps are valid).
                    let best = results
                        .iter()
                        .filter(|(r, p)| r.ending == Ending::Regroup && p.is_some())
                        .max_by_key(|(r, _)| r.optim_steps);
                    let Some((r, p)) = best else {
                        return Err(SessionError::Config(format!(
                            "the group lost every worker ({why})"
                        )));
                    };
                    let p = p.as_ref().expect("filtered");
                    let survivors = results
                        .iter()
                        .filter(|(r, _)| r.ending == Ending::Regroup)
                        .count();
                    ck = Checkpoint {
                        params: crate::group::read_params(p, &net).map_err(|e| bad(&e))?,
                        state: crate::group::read_state(p, &self.optimizer, &net, r.optim_steps)?,
                        at: r.at,
                        world,
                        steps_per_epoch,
                    };
                    report.generations.push(Generation {
                        world,
                        steps: (first_step, r.optim_steps),
                        times,
                        ended: why.clone(),
                    });
                    runner.note(&format!(
                        "re-forming the group with the {survivors} worker(s) left, from step {} (epoch {}): {why}",
                        r.optim_steps,
                        r.at.0 + 1
                    ));
                    world = survivors;
                }
            }
        }
        report.seconds = start.elapsed().as_secs_f64();
        Ok(report)
    }

    fn check(&self, net: &Network, train: &Dataset, test: &Dataset) -> Result<(), SessionError> {
        let config = |s: String| Err(SessionError::Config(s));
        if self.workers == 0 || self.batch == 0 || self.epochs == 0 || self.threads == 0 {
            return config(format!(
                "{} worker(s), batch {}, {} epoch(s), {} thread(s): each must be at least 1",
                self.workers, self.batch, self.epochs, self.threads
            ));
        }
        if train.len() < self.workers || test.is_empty() {
            return config(format!(
                "{} training and {} test samples for {} workers",
                train.len(),
                test.len(),
                self.workers
            ));
        }
        if train.width() != net.input_len() {
            return config(format!(
                "the data's samples are {:?} ({} values), the network takes {:?} ({})",
                train.sample_shape,
                train.width(),
                net.spec().input,
                net.input_len()
            ));
        }
        match (&train.target, net.spec().loss.classifies()) {
            (Target::Classes { .. }, true) if train.classes() > net.output_len() => {
                config(format!(
                    "the data has {} classes, the network {} outputs",
                    train.classes(),
                    net.output_len()
                ))
            }
            (Target::Values(_), true) => {
                config("the network classifies, the data's targets are values".into())
            }
            (Target::Classes { .. }, false) => {
                config("the network regresses, the data's targets are classes".into())
            }
            _ => Ok(()),
        }
    }

    /// Runs one formation of the group until every worker finished, or until it was aborted
    /// and the survivors handed their state back. Returns the results and, if aborted, why.
    #[allow(clippy::type_complexity)]
    fn run_generation(
        &self,
        runner: &mut Runner<'_>,
        coordinator: &Coordinator,
        jobs: Vec<(usize, Bytes)>,
        report: &mut AllReduceReport,
        world: usize,
    ) -> Result<(Vec<(GroupResult, Option<Payload>)>, Option<String>), SessionError> {
        let remaining = runner.deadline.saturating_duration_since(Instant::now());
        let mut batch = runner
            .main
            .batch()
            .exclusive(true)
            .job_timeout(remaining)
            .cancel_on(&runner.cancel)
            .stall_report(Duration::from_millis(500));
        let total = jobs.len();
        for (rank, data) in jobs {
            batch.submit(format!("worker {rank}"), data)?;
        }
        runner.observer.started(total);
        let mut results: Vec<(GroupResult, Option<Payload>)> = Vec::new();
        let mut aborted: Option<(String, Vec<u32>, Instant)> = None;
        let grace = self.step_timeout * 2;
        loop {
            for seen in coordinator.drain() {
                match seen {
                    Seen::Step {
                        step,
                        epoch,
                        loss,
                        hash,
                        compute_s,
                        comm_s,
                    } => {
                        report.steps_checked += 1;
                        if step % 20 == 0 {
                            runner.note(&format!(
                                "step {step} (epoch {}): loss {loss:.4}, params {hash:016x} on all {world} workers, compute {:.0} ms, all-reduce {:.0} ms",
                                epoch + 1,
                                compute_s * 1e3,
                                comm_s * 1e3
                            ));
                        }
                    }
                    Seen::Eval {
                        epoch,
                        accuracy,
                        loss,
                        seconds,
                    } => {
                        runner.note(&format!("epoch {}: test {} {accuracy:.4}, train loss {loss:.4} (tested in {seconds:.1} s)", epoch + 1, if self.spec.loss.classifies() { "accuracy" } else { "MSE" }));
                        let classifies = self.spec.loss.classifies();
                        runner.progress(TrainPoint {
                            round: epoch + 1,
                            rounds: self.epochs,
                            shard: None,
                            loss: Some(loss),
                            accuracy: classifies.then_some(accuracy),
                            mse: (!classifies).then_some(accuracy),
                            seconds: 0.0,
                        });
                        report.epochs.retain(|e| e.epoch != epoch + 1);
                        report.epochs.push(EpochLine {
                            epoch: epoch + 1,
                            score: accuracy,
                            loss,
                        });
                    }
                    Seen::Diverged { step, hashes } => {
                        batch.cancel();
                        return Err(SessionError::Config(format!(
                            "workers' parameters differ after step {step}: {hashes:x?}"
                        )));
                    }
                    Seen::NonFinite { rank, step } => runner.note(&format!(
                        "worker {rank}'s gradient at step {} is not finite",
                        step + 1
                    )),
                    Seen::Aborted { why, survivors } => {
                        runner.note(&format!("the group lost a worker: {why}"));
                        aborted = Some((why, survivors, Instant::now()));
                    }
                }
            }
            if let Some((why, survivors, when)) = &aborted {
                let back = results
                    .iter()
                    .filter(|(r, _)| r.ending == Ending::Regroup)
                    .count();
                if back >= survivors.len() || when.elapsed() > grace {
                    batch.cancel();
                    return Ok((results, Some(why.clone())));
                }
            }
            let Some(event) = batch.next_event() else {
                break;
            };
            if !matches!(event, Event::Waiting(_)) {
                runner.observer.event(&event.clone().map(|l| l.to_string()));
            }
            let Event::Done(outcome) = event else {
                continue;
            };
            match outcome.result {
                Ok(s) => {
                    let p = Payload::decode(&s.data).map_err(|e| SessionError::BadSolution {
                        job: outcome.label.clone(),
                        error: e,
                    })?;
                    let r: GroupResult = p.params().map_err(|e| SessionError::BadSolution {
                        job: outcome.label.clone(),
                        error: e,
                    })?;
                    let keep = p.tensors().keys().any(|k| k.starts_with("p.")).then_some(p);
                    results.push((r, keep));
                }
                Err(JobError::Cancelled { .. }) if runner.cancel.is_cancelled() => {
                    return Err(SessionError::Interrupted {
                        unsolved: batch.pending() + 1,
                        total,
                    });
                }
                Err(JobError::Cancelled { .. }) => {}
                Err(error) => {
                    batch.cancel();
                    return Err(SessionError::JobFailed {
                        job: outcome.label,
                        error,
                    });
                }
            }
        }
        if let Some((why, _, _)) = aborted {
            return Ok((results, Some(why)));
        }
        let finished = results
            .iter()
            .filter(|(r, _)| r.ending == Ending::Finished)
            .count();
        if finished == total {
            return Ok((results, None));
        }
        let why = results
            .iter()
            .find(|(r, _)| r.ending != Ending::Finished)
            .map(|(r, _)| r.why.clone())
            .unwrap_or_default();
        if results.iter().any(|(r, _)| r.ending == Ending::Regroup) {
            return Ok((results, Some(why)));
        }
        Err(SessionError::Config(format!(
            "the group did not form: {why}"
        )))
    }
}

fn bad(e: &nn::NnError) -> SessionError {
    SessionError::Config(format!("a worker sent parameters that do not fit: {e}"))
}

/// A worker's job: the settings, its shards, the parameters and optimizer state.
fn job(
    net: &Network,
    cfg: &GroupJob,
    shard: &Dataset,
    test: &Dataset,
    ck: &Checkpoint,
) -> Result<Bytes, SessionError> {
    let mut p = Payload::new(crate::group::GroupTrain::NAME).with_params(cfg)?;
    for (prefix, d) in [("", shard), ("test_", test)] {
        match &d.features {
            Features::Pixels(a) => p.insert(&format!("{prefix}images"), Tensor::from_u8(a.view())),
            Features::Values(a) => {
                p.insert(&format!("{prefix}features"), Tensor::from_f32(a.view()))
            }
        }
        match &d.target {
            Target::Classes { labels, .. } => {
                p.insert(&format!("{prefix}labels"), Tensor::from_u8(labels.view()))
            }
            Target::Values(v) => p.insert(&format!("{prefix}targets"), Tensor::from_f32(v.view())),
        }
    }
    crate::group::put_state(&mut p, net, &ck.params, Some(&ck.state));
    Ok(p.encode()?)
}

/// Mean and deviation of pixel values scaled to 0..1 (MNIST: 0.1307, 0.3081, the seed's
/// normalisation); values are sent as they are.
fn pixel_stats(train: &Dataset) -> (f32, f32) {
    let Features::Pixels(a) = &train.features else {
        return (0.0, 1.0);
    };
    let n = a.len().max(1) as f64;
    let (s, s2) = a.iter().fold((0.0f64, 0.0f64), |(s, s2), &b| {
        let v = b as f64 / 255.0;
        (s + v, s2 + v * v)
    });
    let mean = s / n;
    let std = (s2 / n - mean * mean).max(1e-12).sqrt();
    (mean as f32, std as f32)
}
