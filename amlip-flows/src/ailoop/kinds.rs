//! The job kinds of the AI-in-the-loop workflow, served by every computing node.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::BoxError;
use crate::job::JobContext;
use crate::kind::{JobKind, Json};
use crate::nn::{Fit, Network, Optimizer, Spec};
use crate::payload::{Payload, Tensor};

/// Most Taylor terms one job sums (past ~90 the factorial overflows f64 anyway).
const MAX_TERMS: u32 = 80;
/// Most samples one `sim_expensive` job makes, and one `nn_fit` job trains on.
const MAX_SAMPLES: u32 = 1 << 20;
/// Most epochs one `nn_fit` job runs.
const MAX_EPOCHS: u32 = 10_000;

/// Terms `first .. first + count` of sin's Taylor series at `x`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaylorTerms {
    /// The point.
    pub x: f64,
    /// The first term's index k (the term is (-1)^k x^(2k+1) / (2k+1)!).
    pub first: u32,
    /// Terms to sum.
    pub count: u32,
}

/// The sum of terms `first .. first + count` of sin's Taylor series at `x`, each term computed
/// from the previous one (no factorial overflow).
pub fn taylor_terms(x: f64, first: u32, count: u32) -> f64 {
    let mut term = x; // k = 0
    for k in 0..first {
        let k = k as f64;
        term *= -x * x / ((2.0 * k + 2.0) * (2.0 * k + 3.0));
    }
    let mut sum = 0.0;
    for k in first..first + count {
        sum += term;
        let k = k as f64;
        term *= -x * x / ((2.0 * k + 2.0) * (2.0 * k + 3.0));
    }
    sum
}

/// `sim_cheap`: one rank's share of the Taylor approximation of sin(x).
pub struct SimCheap;

impl JobKind for SimCheap {
    const NAME: &'static str = "sim_cheap";
    type Input = Json<TaylorTerms>;
    type Output = Json<f64>;

    fn run(&self, job: Json<TaylorTerms>, _ctx: &JobContext) -> Result<Json<f64>, BoxError> {
        let t = job.0;
        if !t.x.is_finite() {
            return Err(format!("x = {} is not a number to expand sin at", t.x).into());
        }
        if t.first.saturating_add(t.count) > MAX_TERMS {
            return Err(format!(
                "terms {}..{} (at most {MAX_TERMS} terms of the series)",
                t.first,
                t.first.saturating_add(t.count)
            )
            .into());
        }
        Ok(Json(taylor_terms(t.x, t.first, t.count)))
    }
}

/// One rank of `sim_expensive`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpensiveRank {
    /// The seed (the number of times the model was trained, as in the seed workflow).
    pub seed: u64,
    /// The rank (each draws its own points).
    pub rank: u32,
    /// Samples to make.
    pub samples: u32,
    /// RK4 steps per unit of x the simulation integrates with.
    pub steps_per_unit: u32,
}

/// Most RK4 steps per unit of x.
const MAX_STEPS_PER_UNIT: u32 = 10_000_000;

/// The points one rank of `sim_expensive` draws, x ~ U(-pi, pi) from (seed, rank), and sin x
/// simulated: the oscillator y'' = -y (y(0) = 0, y'(0) = 1) integrated from 0 to x by RK4 in
/// `steps_per_unit` steps per unit of |x|. That is what makes it the expensive simulation.
pub fn expensive_samples(
    seed: u64,
    rank: u32,
    n: usize,
    steps_per_unit: u32,
) -> (Vec<f32>, Vec<f32>) {
    let mut rng = SmallRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ rank as u64);
    let pi = std::f64::consts::PI;
    let x: Vec<f64> = (0..n).map(|_| rng.random_range(-pi..pi)).collect();
    (
        x.iter().map(|&v| v as f32).collect(),
        x.iter()
            .map(|&v| oscillator(v, steps_per_unit) as f32)
            .collect(),
    )
}

/// y(x) for y'' = -y, y(0) = 0, y'(0) = 1 (that is, sin x), by RK4.
fn oscillator(x: f64, steps_per_unit: u32) -> f64 {
    let steps = ((x.abs() * steps_per_unit as f64).ceil() as u64).max(1);
    let h = x / steps as f64;
    let (mut y, mut v) = (0.0f64, 1.0f64);
    for _ in 0..steps {
        let (k1y, k1v) = (v, -y);
        let (k2y, k2v) = (v + 0.5 * h * k1v, -(y + 0.5 * h * k1y));
        let (k3y, k3v) = (v + 0.5 * h * k2v, -(y + 0.5 * h * k2y));
        let (k4y, k4v) = (v + h * k3v, -(y + h * k3y));
        y += h / 6.0 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y);
        v += h / 6.0 * (k1v + 2.0 * k2v + 2.0 * k3v + k4v);
    }
    y
}

/// `sim_expensive`: one rank's samples (x, sin x).
pub struct SimExpensive;

impl JobKind for SimExpensive {
    const NAME: &'static str = "sim_expensive";
    type Input = Json<ExpensiveRank>;
    type Output = Payload;

    fn run(&self, job: Json<ExpensiveRank>, _ctx: &JobContext) -> Result<Payload, BoxError> {
        let r = job.0;
        if r.samples == 0 || r.samples > MAX_SAMPLES {
            return Err(format!("{} samples (1 to {MAX_SAMPLES})", r.samples).into());
        }
        if r.steps_per_unit == 0 || r.steps_per_unit > MAX_STEPS_PER_UNIT {
            return Err(format!(
                "{} steps per unit (1 to {MAX_STEPS_PER_UNIT})",
                r.steps_per_unit
            )
            .into());
        }
        let (x, y) = expensive_samples(r.seed, r.rank, r.samples as usize, r.steps_per_unit);
        Ok(Payload::new(Self::NAME)
            .with_tensor("x", column(&x))
            .with_tensor("y", column(&y)))
    }
}

/// A column tensor [n, 1].
pub(crate) fn column(v: &[f32]) -> Tensor {
    Tensor::from_f32(
        ndarray::ArrayView2::from_shape((v.len(), 1), v).expect("n x 1 holds n values"),
    )
}

/// What an `nn_fit` job trains, besides its tensors (`p.*` parameters, `opt.*` optimizer
/// state, `x` and `y` as [n, inputs] and [n, outputs]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitJob {
    /// The network (loss MSE).
    pub spec: Spec,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Optimizer steps taken before (Adam's bias correction).
    pub steps: u64,
    /// Epochs over the samples.
    pub epochs: u32,
    /// Samples per step.
    pub batch: u32,
    /// Seeds the shuffles.
    pub seed: u64,
}

/// What an `nn_fit` solution says besides its tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitResult {
    /// Mean loss of the last epoch.
    pub loss: f64,
    /// Optimizer steps taken in all.
    pub steps: u64,
}

/// `nn_fit`: trains a regression network on the samples sent, from the parameters and
/// optimizer state sent; answers the new parameters and state.
pub struct NnFit;

impl JobKind for NnFit {
    const NAME: &'static str = "nn_fit";
    type Input = Payload;
    type Output = Payload;

    fn run(&self, job: Payload, ctx: &JobContext) -> Result<Payload, BoxError> {
        let cfg: FitJob = job.params()?;
        if cfg.spec.loss.classifies() {
            return Err("nn_fit trains regressions: the spec's loss must be MSE".into());
        }
        if cfg.epochs == 0 || cfg.epochs > MAX_EPOCHS || cfg.batch == 0 {
            return Err(format!(
                "{} epochs of batches of {} (1 to {MAX_EPOCHS} epochs, batches of 1 or more)",
                cfg.epochs, cfg.batch
            )
            .into());
        }
        cfg.optimizer.check()?;
        let net = Network::new(cfg.spec.clone())?;
        let (ins, outs) = (net.input_len(), net.output_len());
        let x = job
            .f32s("x", &[None, Some(ins)])?
            .into_raw_vec_and_offset()
            .0;
        let n = x.len() / ins;
        if n == 0 || n > MAX_SAMPLES as usize {
            return Err(format!("{n} samples (1 to {MAX_SAMPLES})").into());
        }
        let y = job
            .f32s("y", &[Some(n), Some(outs)])?
            .into_raw_vec_and_offset()
            .0;
        if let Some(i) = x.iter().chain(&y).position(|v| !v.is_finite()) {
            return Err(format!("sample value {i} is not finite").into());
        }
        let mut params = crate::group::read_params(&job, &net)?;
        let mut state = crate::group::read_state(&job, &cfg.optimizer, &net, cfg.steps)?;
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let fit = Fit {
            net: &net,
            optimizer: &cfg.optimizer,
            batch: cfg.batch as usize,
        };
        let mut loss = f64::NAN;
        for epoch in 0..cfg.epochs {
            loss = fit.epoch(&mut params, &mut state, &x, &y, &mut rng)?;
            if !loss.is_finite() {
                return Err(
                    format!("training diverged at epoch {}: loss {loss}", epoch + 1).into(),
                );
            }
            ctx.report_progress(epoch + 1, cfg.epochs);
        }
        let mut out = Payload::new(Self::NAME).with_params(&FitResult {
            loss,
            steps: state.steps,
        })?;
        crate::group::put_state(&mut out, &net, &params, Some(&state));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taylor_terms_split_across_ranks_sum_to_sin() {
        for x in [-3.1, -1.0, 0.0, 0.5, 2.9] {
            let split: f64 = (0..4).map(|r| taylor_terms(x, 3 * r, 3)).sum();
            assert!((split - taylor_terms(x, 0, 12)).abs() < 1e-12);
            assert!((split - f64::sin(x)).abs() < 1e-9, "x {x}: {split}");
        }
    }

    #[test]
    fn expensive_samples_are_seeded_by_times_trained_and_rank() {
        let (a, ya) = expensive_samples(0, 1, 32, 1000);
        assert_eq!(expensive_samples(0, 1, 32, 1000).0, a);
        assert_ne!(expensive_samples(1, 1, 32, 1000).0, a);
        assert_ne!(expensive_samples(0, 2, 32, 1000).0, a);
        assert!(a.iter().all(|v| v.abs() <= std::f32::consts::PI));
        // The simulated oscillator is sin to f32's precision.
        for (x, y) in a.iter().zip(&ya) {
            assert!((y - x.sin()).abs() < 1e-6, "{x}: {y}");
        }
    }
}
