//! `group_train`: one worker of an all-reduce group. Joins the main's control channel, links
//! into the ring, then steps through its shard in lockstep with the others.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::control::{self, Rx, StepReport, ToMain, ToWorker, Tx};
use super::ring::{Member, Ring, RingBreaker};
use super::seal::GroupKey;
use super::{Ending, GroupJob, GroupResult, Times};
use crate::error::BoxError;
use crate::job::JobContext;
use crate::kind::JobKind;
use crate::nn::{self, Network, OptimState, Targets};
use crate::payload::Payload;

/// The `group_train` job kind (served by `computing-node`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupTrain;

impl JobKind for GroupTrain {
    const NAME: &'static str = "group_train";
    type Input = Payload;
    type Output = Payload;

    fn run(&self, job: Payload, ctx: &JobContext) -> Result<Payload, BoxError> {
        let cfg: GroupJob = job.params()?;
        check(&cfg)?;
        let net = Network::new(cfg.spec.clone())?;
        let train = Shard::read(&job, "", &net, cfg.pixels)?;
        let test = Shard::read(&job, "test_", &net, cfg.pixels)?;
        let mut params = super::read_params(&job, &net)?;
        let mut state = super::read_state(&job, &cfg.optimizer, &net, cfg.optim_steps)?;
        let timeout = Duration::from_secs_f64(cfg.step_timeout_s);
        let me = Member {
            group: cfg.group,
            generation: cfg.generation,
            rank: cfg.rank,
        };
        let mut result = GroupResult {
            ending: Ending::Stale,
            rank: cfg.rank,
            generation: cfg.generation,
            at: cfg.start,
            optim_steps: state.steps,
            why: String::new(),
            times: Times::default(),
        };

        let key = cfg.key.as_deref().map(GroupKey::from_hex).transpose()?;
        let (mut writer, reader, listener) = join_control(&cfg, timeout, key.as_ref())?;
        let mut reader = reader;
        let forming = Instant::now();
        let peers = loop {
            match control::recv::<ToWorker>(&mut reader) {
                Ok(Some(ToWorker::Peers(p))) if p.len() == cfg.world as usize => break p,
                Ok(Some(ToWorker::Stale(why))) | Ok(Some(ToWorker::Abort(why))) => {
                    result.why = why;
                    return Ok(output(&net, result, None));
                }
                Ok(Some(other)) => {
                    return Err(format!(
                        "the main's control channel said {other:?} while forming the group"
                    )
                    .into())
                }
                Ok(None) if ctx.is_cancelled() => {
                    return Err("cancelled while the group formed".into())
                }
                Ok(None) if forming.elapsed() > timeout => {
                    result.why =
                        format!("the group of {} did not form within {timeout:?}", cfg.world);
                    return Ok(output(&net, result, None));
                }
                Ok(None) => continue,
                Err(e) => {
                    result.why = format!("the group did not form: {e}");
                    return Ok(output(&net, result, None));
                }
            }
        };
        let breaker = RingBreaker::default();
        let _watch = Watcher::start(reader, breaker.clone());
        let mut ring = match Ring::form(me, &peers, &listener, timeout, &breaker, key.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                return Ok(regroup(
                    &net,
                    result,
                    &mut writer,
                    e.to_string(),
                    &params,
                    &state,
                ))
            }
        };

        let total_steps = (cfg.epochs * cfg.steps_per_epoch) as u32;
        let mut grad = vec![0.0f32; net.len()];
        let (mut xb, mut yb, mut tb) = (Vec::new(), Vec::new(), Vec::new());
        for epoch in cfg.start.0..cfg.epochs {
            let mut order: Vec<usize> = (0..train.len()).collect();
            order.shuffle(&mut StdRng::seed_from_u64(
                cfg.seed ^ (epoch as u64) << 32 ^ (cfg.rank as u64) << 48 ^ cfg.generation as u64,
            ));
            let first = if epoch == cfg.start.0 { cfg.start.1 } else { 0 };
            let mut losses = 0.0f64;
            for step in first..cfg.steps_per_epoch {
                if ctx.is_cancelled() {
                    let _ = control::send(
                        &mut writer,
                        &ToMain::Broken {
                            why: "cancelled".into(),
                        },
                    );
                    return Err("cancelled".into());
                }
                let t = Instant::now();
                let lo = (step * cfg.batch) % train.len();
                let idx = &order[lo..(lo + cfg.batch).min(train.len())];
                train.gather(idx, &mut xb, &mut yb, &mut tb);
                grad.fill(0.0);
                let seed =
                    cfg.seed ^ state.steps.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ cfg.rank as u64;
                let loss = net.gradient(
                    &params,
                    &xb,
                    train.targets(&yb, &tb),
                    seed,
                    cfg.threads,
                    &mut grad,
                )?;
                let mine_finite = loss.is_finite() && grad.iter().all(|g| g.is_finite());
                if !mine_finite {
                    let _ = control::send(&mut writer, &ToMain::NonFinite { step: state.steps });
                }
                let computed = t.elapsed().as_secs_f64();
                let t = Instant::now();
                if let Err(e) = ring.all_reduce(&mut grad) {
                    result.at = (epoch, step);
                    result.times.training += computed;
                    return Ok(regroup(
                        &net,
                        result,
                        &mut writer,
                        e.to_string(),
                        &params,
                        &state,
                    ));
                }
                let comm = t.elapsed().as_secs_f64();
                if !grad.iter().all(|g| g.is_finite()) {
                    return Err(format!(
                        "training diverged at epoch {} step {}: the averaged gradient is not finite ({})",
                        epoch + 1,
                        step + 1,
                        if mine_finite { "another worker's gradient was not".to_owned() } else { format!("this worker's was not: loss {loss}") }
                    )
                    .into());
                }
                let t = Instant::now();
                let inv = 1.0 / cfg.world as f32;
                grad.iter_mut().for_each(|g| *g *= inv);
                cfg.optimizer.step(&mut params, &grad, &mut state);
                let stepped = computed + t.elapsed().as_secs_f64();
                result.times.training += stepped;
                result.times.communication += comm;
                losses += loss as f64;
                let report = StepReport {
                    step: state.steps,
                    epoch,
                    loss,
                    hash: nn::hash(&params),
                    compute_s: stepped,
                    comm_s: comm,
                };
                let _ = control::send(&mut writer, &ToMain::Step(report));
                ctx.report_progress((epoch * cfg.steps_per_epoch + step + 1) as u32, total_steps);
            }
            // The epoch's test accuracy (or MSE), averaged over the group as in the seed.
            let t = Instant::now();
            let score = net.score(&params, &test.x, test.targets(&test.labels, &test.values))?;
            let mut sums = [(score * test.len() as f64) as f32, test.len() as f32];
            let scored = t.elapsed().as_secs_f64();
            if let Err(e) = ring.all_reduce(&mut sums) {
                result.at = (epoch + 1, 0);
                return Ok(regroup(
                    &net,
                    result,
                    &mut writer,
                    e.to_string(),
                    &params,
                    &state,
                ));
            }
            result.times.testing += scored;
            let steps = (cfg.steps_per_epoch - first).max(1) as f64;
            let eval = ToMain::Eval {
                epoch,
                accuracy: sums[0] as f64 / sums[1].max(1.0) as f64,
                loss: losses / steps,
                seconds: scored,
            };
            let _ = control::send(&mut writer, &eval);
        }
        let _ = control::send(&mut writer, &ToMain::Done);
        result.ending = Ending::Finished;
        result.at = (cfg.epochs, 0);
        result.optim_steps = state.steps;
        let keep = (cfg.rank == 0).then_some((&params[..], &state));
        Ok(output(&net, result, keep))
    }
}

fn check(cfg: &GroupJob) -> Result<(), BoxError> {
    let bad = cfg.world == 0
        || cfg.world > 1024
        || cfg.rank >= cfg.world
        || cfg.batch == 0
        || cfg.epochs == 0
        || cfg.epochs > 100_000
        || cfg.steps_per_epoch == 0
        || cfg.threads == 0
        || cfg.threads > 256
        || !(cfg.step_timeout_s.is_finite() && cfg.step_timeout_s > 0.0)
        || cfg.control.is_empty()
        || !(cfg.pixels.1.is_finite() && cfg.pixels.1 > 0.0 && cfg.pixels.0.is_finite());
    if bad {
        return Err(format!(
            "group job out of bounds: rank {} of {}, batch {}, {} epochs of {} steps, {} threads, step timeout {} s, pixels {:?}",
            cfg.rank, cfg.world, cfg.batch, cfg.epochs, cfg.steps_per_epoch, cfg.threads, cfg.step_timeout_s, cfg.pixels
        )
        .into());
    }
    cfg.optimizer.check()?;
    Ok(())
}

/// Connects to the first reachable control address, binds the ring listener on the
/// interface that reached it, and sends the join.
fn join_control(
    cfg: &GroupJob,
    timeout: Duration,
    key: Option<&GroupKey>,
) -> Result<(Tx, Rx, TcpListener), BoxError> {
    let mut last = String::new();
    for addr in &cfg.control {
        match TcpStream::connect_timeout(addr, Duration::from_secs(5)) {
            Ok(s) => {
                let local = s.local_addr()?.ip();
                let listener = TcpListener::bind((local, 0))?;
                let ring: SocketAddr = listener.local_addr()?;
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                s.set_write_timeout(Some(timeout))?;
                let mut w = Tx::new(s.try_clone()?, key)?;
                control::send(
                    &mut w,
                    &ToMain::Join {
                        group: cfg.group,
                        generation: cfg.generation,
                        rank: cfg.rank,
                        ring,
                    },
                )?;
                return Ok((w, Rx::new(s, key), listener));
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(format!("cannot reach the main's group control channel ({last})").into())
}

/// Tells the main the ring broke (it may know already) and hands the state back.
fn regroup(
    net: &Network,
    mut r: GroupResult,
    w: &mut Tx,
    why: String,
    params: &[f32],
    state: &OptimState,
) -> Payload {
    let _ = control::send(w, &ToMain::Broken { why: why.clone() });
    r.ending = Ending::Regroup;
    r.why = why;
    r.optim_steps = state.steps;
    output(net, r, Some((params, state)))
}

fn output(net: &Network, r: GroupResult, state: Option<(&[f32], &OptimState)>) -> Payload {
    let mut p = Payload::new(GroupTrain::NAME)
        .with_params(&r)
        .expect("a result serialises");
    if let Some((params, st)) = state {
        super::put_state(&mut p, net, params, Some(st));
    }
    p
}

/// Reads the main's control lines while the worker trains: an abort (or the main going
/// away) breaks the ring so a blocked all-reduce returns at once.
struct Watcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Watcher {
    fn start(mut reader: Rx, breaker: RingBreaker) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("group-watch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match control::recv::<ToWorker>(&mut reader) {
                        Ok(None) => {}
                        Ok(Some(ToWorker::Abort(why))) => {
                            tracing::info!("the main aborted the group: {why}");
                            breaker.break_ring();
                            return;
                        }
                        Ok(Some(_)) => {}
                        Err(e) => {
                            tracing::info!("lost the main's control channel: {e}");
                            breaker.break_ring();
                            return;
                        }
                    }
                }
            })
            .ok();
        Watcher { stop, handle }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A worker's samples, standardised, and their targets.
struct Shard {
    x: Vec<f32>,
    width: usize,
    labels: Vec<u8>,
    values: Vec<f32>,
    outputs: usize,
}

impl Shard {
    fn read(
        job: &Payload,
        prefix: &str,
        net: &Network,
        (mean, std): (f32, f32),
    ) -> Result<Shard, BoxError> {
        let width = net.input_len();
        let outputs = net.output_len();
        let images = format!("{prefix}images");
        let x: Vec<f32> = if job.tensors().contains_key(&images) {
            let (shape, bytes) = job
                .u8s(&images, &[None])
                .or_else(|_| job.u8s(&images, &[None, None]))
                .or_else(|_| job.u8s(&images, &[None, None, None]))
                .or_else(|_| job.u8s(&images, &[None, None, None, None]))?;
            if shape.is_empty() || shape[1..].iter().product::<usize>() != width {
                return Err(format!(
                    "tensor {images:?} is {shape:?}: the network takes samples of {:?}",
                    net.spec().input
                )
                .into());
            }
            bytes
                .iter()
                .map(|&b| (b as f32 / 255.0 - mean) / std)
                .collect()
        } else {
            let name = format!("{prefix}features");
            job.f32s(&name, &[None, Some(width)])?
                .into_raw_vec_and_offset()
                .0
        };
        let n = x.len() / width.max(1);
        if n == 0 {
            return Err(format!(
                "the {}shard is empty",
                if prefix.is_empty() { "" } else { "test " }
            )
            .into());
        }
        let (labels, values) = if net.spec().loss.classifies() {
            (
                job.labels(&format!("{prefix}labels"), n, outputs)?,
                Vec::new(),
            )
        } else {
            let name = format!("{prefix}targets");
            let t = job.f32s(&name, &[Some(n), Some(outputs)]).or_else(|e| {
                if outputs == 1 {
                    job.f32s(&name, &[Some(n)])
                } else {
                    Err(e)
                }
            })?;
            (Vec::new(), t.into_raw_vec_and_offset().0)
        };
        Ok(Shard {
            x,
            width,
            labels,
            values,
            outputs,
        })
    }

    fn len(&self) -> usize {
        self.x.len() / self.width
    }

    fn targets<'a>(&self, labels: &'a [u8], values: &'a [f32]) -> Targets<'a> {
        if self.values.is_empty() && !self.labels.is_empty() {
            Targets::Classes(labels)
        } else {
            Targets::Values(values)
        }
    }

    fn gather(&self, idx: &[usize], x: &mut Vec<f32>, y: &mut Vec<u8>, t: &mut Vec<f32>) {
        x.clear();
        y.clear();
        t.clear();
        for &i in idx {
            x.extend_from_slice(&self.x[i * self.width..(i + 1) * self.width]);
            if !self.labels.is_empty() {
                y.push(self.labels[i]);
            } else {
                t.extend_from_slice(&self.values[i * self.outputs..(i + 1) * self.outputs]);
            }
        }
    }
}
