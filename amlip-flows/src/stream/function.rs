//! Simulated functions a demo producer samples at random points, and their held-out grids.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Samples;

/// A known function, for demos and tests of online training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// sin(x), x in [-pi, pi].
    Sin,
    /// sin(x) cos(y), x and y in [-pi, pi].
    SinCos,
}

impl std::str::FromStr for Function {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sin" => Ok(Function::Sin),
            "sincos" => Ok(Function::SinCos),
            other => Err(format!("function {other:?}: expected sin or sincos")),
        }
    }
}

impl Function {
    /// Floats per input.
    pub fn inputs(self) -> usize {
        match self {
            Function::Sin => 1,
            Function::SinCos => 2,
        }
    }

    fn value(self, x: &[f32]) -> f32 {
        match self {
            Function::Sin => x[0].sin(),
            Function::SinCos => x[0].sin() * x[1].cos(),
        }
    }

    /// `n` points drawn uniformly from the domain, seeded by `seed`, with their values.
    pub fn sample(self, n: usize, seed: u64) -> Samples {
        let mut rng = SmallRng::seed_from_u64(seed);
        let pi = std::f32::consts::PI;
        let inputs: Vec<f32> = (0..n * self.inputs())
            .map(|_| rng.random_range(-pi..pi))
            .collect();
        self.with_values(inputs)
    }

    /// A regular grid over the domain: `per_axis` points per input dimension.
    pub fn grid(self, per_axis: usize) -> Samples {
        let pi = std::f32::consts::PI;
        let at = |i: usize| -pi + 2.0 * pi * i as f32 / (per_axis.max(2) - 1) as f32;
        let inputs: Vec<f32> = match self {
            Function::Sin => (0..per_axis).map(at).collect(),
            Function::SinCos => (0..per_axis * per_axis)
                .flat_map(|k| [at(k / per_axis), at(k % per_axis)])
                .collect(),
        };
        self.with_values(inputs)
    }

    fn with_values(self, inputs: Vec<f32>) -> Samples {
        let targets = inputs
            .chunks_exact(self.inputs())
            .map(|x| self.value(x))
            .collect();
        Samples {
            inputs,
            targets,
            input_len: self.inputs(),
            target_len: 1,
        }
    }
}

/// What a faulty producer sends wrong (to try a trainer's checks): `nan` or `shape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// One sample of the batch has a NaN input.
    Nan,
    /// The whole batch has one input value too many per sample.
    Shape,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nan" => Ok(Fault::Nan),
            "shape" => Ok(Fault::Shape),
            other => Err(format!("fault {other:?}: expected nan or shape")),
        }
    }
}

impl Fault {
    /// `batch` made wrong in this way, and how many of its samples a trainer should reject.
    pub fn spoil(self, batch: super::Samples) -> (super::Samples, usize) {
        match self {
            Fault::Nan => {
                let mut b = batch;
                b.inputs[0] = f32::NAN;
                (b, 1)
            }
            Fault::Shape => {
                let n = batch.len();
                let w = batch.input_len + 1;
                let mut inputs = Vec::with_capacity(n * w);
                for x in batch.inputs.chunks_exact(batch.input_len) {
                    inputs.extend_from_slice(x);
                    inputs.push(0.0);
                }
                let spoiled = super::Samples {
                    inputs,
                    input_len: w,
                    ..batch
                };
                (spoiled, n)
            }
        }
    }
}

/// A simulated rank: samples of `function` at random points, `batch` per iteration, `every`
/// apart, published on a producer (what `main-node produce` runs). With `fault`, every fifth
/// batch (iterations 4, 9, ...) is made wrong that way.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// The function sampled.
    pub function: Function,
    /// The rank (seeds its points with `seed` and the iteration).
    pub rank: u32,
    /// Samples per iteration.
    pub batch: usize,
    /// Iterations.
    pub iterations: usize,
    /// Time between iterations.
    pub every: std::time::Duration,
    /// Seeds the points.
    pub seed: u64,
    /// Bad batches to send, if any.
    pub fault: Option<Fault>,
}

/// What a simulation sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Simulated {
    /// Iterations published (fewer than asked if stopped).
    pub iterations: u64,
    /// Samples sent wrong on purpose (a trainer should reject them).
    pub bad: usize,
    /// Whether the cancel token stopped it.
    pub stopped: bool,
}

impl Simulation {
    /// Publishes every iteration on `producer`, telling `on` each iteration's number and batch
    /// size; stops early when `stop` is raised.
    pub fn run(
        &self,
        producer: &super::Producer,
        stop: &crate::cancel::CancelToken,
        on: &mut dyn FnMut(u64, usize),
    ) -> Result<Simulated, super::StreamError> {
        let mut done = Simulated::default();
        for it in 0..self.iterations as u64 {
            if it > 0 && stop.wait_timeout(self.every) {
                done.stopped = true;
                break;
            }
            let seed = self.seed.wrapping_mul(1_000_003) ^ ((self.rank as u64) << 32) ^ it;
            let mut batch = self.function.sample(self.batch, seed);
            if let Some(fault) = self.fault.filter(|_| it % 5 == 4) {
                let (spoiled, n) = fault.spoil(batch);
                (batch, done.bad) = (spoiled, done.bad + n);
            }
            producer.publish(it, &batch)?;
            done.iterations = it + 1;
            on(it, batch.len());
        }
        Ok(done)
    }
}
