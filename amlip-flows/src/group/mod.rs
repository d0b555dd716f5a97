//! Synchronous data-parallel training in a group of computing nodes (Twister2Flow's and
//! PyTorch DDP's scheme): every worker holds the same network, computes the gradient of its
//! own mini-batch, the group averages the gradients by a ring all-reduce, and every worker
//! takes the same optimizer step, so parameters stay bit-identical (checked by a hash each
//! step).
//!
//! - `ring`: the all-reduce over direct TCP links between workers.
//! - `control`: the main's rendezvous and watch channel (join, peers, step reports, abort).
//! - `worker`: [`GroupTrain`], the `group_train` job kind a computing node runs.
//! - `seal`: in a trusted domain, both channels sealed with AES-256-GCM under a key the main
//!   hands the workers inside their jobs.
//! - The main's side is the session [`AllReduce`](crate::session::AllReduce).
//!
//! A group that loses a member does not hang: the main sees the member's control link drop
//! (or a worker reports a broken ring after its step timeout) and tells the others to stop;
//! they hand back their state at the last completed step, and the session re-forms the group
//! from the workers left, re-sharding the data.

pub(crate) mod control;
pub(crate) mod ring;
pub(crate) mod seal;
mod worker;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::nn::{Network, NnError, OptimState, Optimizer, Spec};
use crate::payload::{Payload, PayloadError, Tensor};

pub use worker::GroupTrain;

/// What a `group_train` job carries in its parameters (its tensors: the shard `images` U8 or
/// `features` F32 and `labels` U8 or `targets` F32, the same for the test shard prefixed
/// `test_`, the parameters prefixed `p.`, and the optimizer state `opt.first` / `opt.second`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupJob {
    /// The session's group id (random): a job of another session cannot join.
    pub group: u64,
    /// Bumped each time the group re-forms.
    pub generation: u32,
    /// This worker's rank.
    pub rank: u32,
    /// Workers in the group.
    pub world: u32,
    /// Where the main's control channel listens.
    pub control: Vec<SocketAddr>,
    /// The network.
    pub spec: Spec,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Optimizer steps taken before this generation.
    pub optim_steps: u64,
    /// Mini-batch per worker.
    pub batch: usize,
    /// Epochs in all.
    pub epochs: usize,
    /// Steps per epoch (the same on every worker, or the ring would wait for a missing one).
    pub steps_per_epoch: usize,
    /// Where this generation starts: epoch and step within it.
    pub start: (usize, usize),
    /// Seeds shuffling and dropout.
    pub seed: u64,
    /// Threads for the gradient.
    pub threads: usize,
    /// Longest a ring exchange or the group's forming may take before the worker gives up.
    pub step_timeout_s: f64,
    /// Pixel standardisation: `(x / 255 - mean) / std`.
    pub pixels: (f32, f32),
    /// In a trusted domain: the key (hex) that seals the group's control and ring
    /// connections. It reaches the worker inside this job, which crosses the domain's DDS
    /// Security or the direct path's TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// How a worker's job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Every epoch done (rank 0's solution carries the parameters).
    Finished,
    /// The group was aborted: the solution carries the state at the last completed step.
    Regroup,
    /// The job was not (or no longer) part of the group forming.
    Stale,
}

/// A `group_train` solution's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupResult {
    /// How it ended.
    pub ending: Ending,
    /// The job's rank and generation.
    pub rank: u32,
    /// The job's generation.
    pub generation: u32,
    /// Where the state it carries stands: epoch and completed steps within it.
    pub at: (usize, usize),
    /// Optimizer steps taken in all.
    pub optim_steps: u64,
    /// Why it stopped, for `Regroup` and `Stale`.
    pub why: String,
    /// Seconds computing gradients and steps, in all-reduce, and evaluating.
    pub times: Times,
}

/// Where a worker's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Times {
    /// Gradients and optimizer steps.
    pub training: f64,
    /// All-reduce (communication, including waiting for slower workers).
    pub communication: f64,
    /// Evaluation on the test shard.
    pub testing: f64,
}

/// Time of one ring all-reduce of `values` f32 among `world` workers (threads of this process
/// over loopback TCP, as between nodes of one host), the mean of `rounds`, and the bytes each
/// worker sends per all-reduce. For benchmarks: `scripts/bench-allreduce.sh` sets it beside a
/// plain TCP transfer of the same bytes.
pub fn measure_ring(
    world: usize,
    values: usize,
    rounds: usize,
) -> std::io::Result<(std::time::Duration, u64)> {
    use std::net::TcpListener;
    let listeners: Vec<TcpListener> = (0..world)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let peers: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()?;
    let timeout = std::time::Duration::from_secs(60);
    let times = std::thread::scope(|s| {
        let handles: Vec<_> = listeners
            .iter()
            .enumerate()
            .map(|(rank, l)| {
                let peers = peers.clone();
                s.spawn(move || -> Result<std::time::Duration, ring::RingError> {
                    let me = ring::Member {
                        group: 1,
                        generation: 1,
                        rank: rank as u32,
                    };
                    let mut r = ring::Ring::form(
                        me,
                        &peers,
                        l,
                        timeout,
                        &ring::RingBreaker::default(),
                        None,
                    )?;
                    let mut v = vec![1.0f32; values];
                    r.all_reduce(&mut v)?; // warm-up
                    let t = std::time::Instant::now();
                    for _ in 0..rounds.max(1) {
                        r.all_reduce(&mut v)?;
                    }
                    Ok(t.elapsed() / rounds.max(1) as u32)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ring thread"))
            .collect::<Vec<_>>()
    });
    let mut worst = std::time::Duration::ZERO;
    for t in times {
        worst = worst.max(t.map_err(|e| std::io::Error::other(e.0))?);
    }
    let sent = if world > 1 {
        2 * (world as u64 - 1) * (values as u64 * 4) / world as u64
    } else {
        0
    };
    Ok((worst, sent))
}

/// The parameters a payload carries as `p.<name>` tensors (group jobs, their solutions,
/// pipeline models).
pub(crate) fn read_params(p: &Payload, net: &Network) -> Result<Vec<f32>, NnError> {
    let named: BTreeMap<String, Tensor> = p
        .tensors()
        .iter()
        .filter_map(|(k, t)| k.strip_prefix("p.").map(|n| (n.to_owned(), t.clone())))
        .collect();
    net.params_from(&named)
}

/// Adds `params` as `p.<name>` tensors and, if given, the optimizer's state as `opt.first`
/// and `opt.second`.
pub(crate) fn put_state(
    p: &mut Payload,
    net: &Network,
    params: &[f32],
    state: Option<&OptimState>,
) {
    for (name, t) in net.tensors(params) {
        p.insert(&format!("p.{name}"), t);
    }
    for (name, v) in state
        .iter()
        .flat_map(|s| [("opt.first", &s.first), ("opt.second", &s.second)])
    {
        if !v.is_empty() {
            p.insert(name, Tensor::from_f32(ndarray::ArrayView1::from(&v[..])));
        }
    }
}

/// The optimizer's state from `opt.first` / `opt.second` (fresh where absent), `steps` in.
pub(crate) fn read_state(
    p: &Payload,
    opt: &Optimizer,
    net: &Network,
    steps: u64,
) -> Result<OptimState, PayloadError> {
    let mut state = opt.state(net.len());
    state.steps = steps;
    for (name, v) in [
        ("opt.first", &mut state.first),
        ("opt.second", &mut state.second),
    ] {
        if !v.is_empty() && p.tensors().contains_key(name) {
            *v = p
                .f32s(name, &[Some(net.len())])?
                .into_raw_vec_and_offset()
                .0;
        }
    }
    Ok(state)
}
