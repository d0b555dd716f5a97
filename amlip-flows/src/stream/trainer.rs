//! Online training: epochs over the samples a [`Consumer`] holds, taking in the ones that
//! arrived at each epoch's end (SmartSim's data generator), until the streams end.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::{Consumer, ProducerCounts, Samples, StreamError, Totals};
use crate::cancel::CancelToken;
use crate::nn::{Fit, Network, Optimizer, Spec, Targets};

/// How to train on a stream. [`OnlineTraining::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct OnlineTraining {
    /// The network (a regression: its loss must be MSE, its sizes the samples').
    pub spec: Spec,
    /// Default Adam, lr 0.01.
    pub optimizer: Optimizer,
    /// Samples per step (default 32).
    pub batch: usize,
    /// Seeds the initial parameters and the shuffles.
    pub seed: u64,
    /// Producers to wait for before the streams can count as ended (default 1).
    pub producers: usize,
    /// How long to wait for the first producer (default 30 s): none in that time is an error.
    pub wait: Duration,
    /// Epochs trained after every stream ended and its last sample was taken in (default 50).
    pub settle_epochs: usize,
    /// Epochs at most (default 100,000).
    pub max_epochs: usize,
    /// The whole run at most (default one hour); training stops there, with what it has.
    pub timeout: Duration,
    /// Held-out samples scored (MSE) after every epoch.
    pub validation: Option<Samples>,
}

impl OnlineTraining {
    /// Defaults around `spec`.
    pub fn new(spec: Spec) -> Self {
        Self {
            spec,
            optimizer: Optimizer::Adam { lr: 0.01 },
            batch: 32,
            seed: 1,
            producers: 1,
            wait: Duration::from_secs(30),
            settle_epochs: 50,
            max_epochs: 100_000,
            timeout: Duration::from_secs(3600),
            validation: None,
        }
    }
}

/// One epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EpochReport {
    /// From 1.
    pub epoch: usize,
    /// Samples trained on.
    pub held: usize,
    /// Samples taken in at this epoch's start.
    pub new_samples: u64,
    /// Mean training loss.
    pub loss: f64,
    /// MSE on the validation samples.
    pub validation: Option<f64>,
    /// Whether every stream had ended.
    pub streams_ended: bool,
}

impl std::fmt::Display for EpochReport {
    /// One line: epoch, samples held (and new), loss, validation MSE, whether streams ended.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {:>6}: {:>7} samples held (+{}), loss {:.6}, validation MSE {}{}",
            self.epoch,
            self.held,
            self.new_samples,
            self.loss,
            self.validation
                .map(|v| format!("{v:.6}"))
                .unwrap_or_else(|| "-".into()),
            if self.streams_ended {
                ", streams ended"
            } else {
                ""
            }
        )
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct OnlineReport {
    /// The network trained.
    pub spec: Spec,
    /// Its parameters.
    pub params: Vec<f32>,
    /// Every epoch.
    pub epochs: Vec<EpochReport>,
    /// What the consumer counted, per producer.
    pub producers: Vec<ProducerCounts>,
    /// Why training stopped.
    pub ended: String,
    /// Seconds from the start (waiting for producers included).
    pub seconds: f64,
}

impl OnlineReport {
    /// Every producer's counts summed.
    pub fn totals(&self) -> Totals {
        Totals::of(&self.producers)
    }

    /// The report as JSON (`main-node online --json`), naming the stream followed.
    pub fn json(&self, stream: &str) -> serde_json::Value {
        serde_json::json!({
            "stream": stream,
            "epochs": self.epochs,
            "producers": self.producers,
            "totals": self.totals(),
            "validation_mse": self.epochs.last().and_then(|e| e.validation),
            "ended": self.ended,
            "seconds": self.seconds,
        })
    }
}

impl OnlineTraining {
    /// Trains on what `consumer` receives; calls `on_epoch` after every epoch. Stops
    /// `settle_epochs` after every producer ended (or was lost), at `max_epochs`, at
    /// `timeout`, or when `cancel` is raised.
    pub fn run(
        &self,
        consumer: &Consumer,
        cancel: &CancelToken,
        on_epoch: &mut dyn FnMut(&EpochReport),
    ) -> Result<OnlineReport, StreamError> {
        let start = Instant::now();
        let net = Network::new(self.spec.clone())?;
        if self.spec.loss.classifies() {
            return Err(StreamError::Nn(crate::nn::NnError::Spec(
                "online training fits values: the network's loss must be MSE".into(),
            )));
        }
        self.optimizer.check()?;
        let seen = consumer.wait_for_producers(self.producers.max(1), self.wait, cancel);
        if seen == 0 && !cancel.is_cancelled() {
            return Err(StreamError::NoProducers {
                stream: consumer.stream().to_owned(),
                domain: consumer.domain(),
                waited: self.wait,
            });
        }
        let mut params = net.init(self.seed);
        let mut state = self.optimizer.state(net.len());
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut data: Option<Samples> = None;
        let mut version = None;
        let mut received = 0u64;
        let mut epochs = Vec::new();
        let mut settled_epochs = 0;
        let ended = loop {
            if cancel.is_cancelled() {
                break "cancelled".to_string();
            }
            if start.elapsed() >= self.timeout {
                break format!("stopped at the {:?} timeout", self.timeout);
            }
            if epochs.len() >= self.max_epochs {
                break format!("{} epochs (the most allowed)", self.max_epochs);
            }
            // Read `settled` before taking samples in: once it holds, the copy is complete.
            let settled = consumer.settled() && consumer.producers() >= self.producers;
            let now = consumer.version();
            let mut new_samples = 0;
            if version != Some(now) {
                if let Some((s, v)) = consumer.samples() {
                    data = Some(s);
                    version = Some(v);
                } else {
                    version = Some(now);
                }
                let total: u64 = consumer.counts().iter().map(|p| p.received).sum();
                new_samples = total - received;
                received = total;
            }
            let Some(d) = &data else {
                if settled {
                    return Err(StreamError::NoSamples {
                        stream: consumer.stream().to_owned(),
                        why: why_none(&consumer.counts()),
                    });
                }
                consumer.wait_changed(now, Duration::from_millis(200));
                continue;
            };
            if d.input_len != net.input_len() || d.target_len != net.output_len() {
                return Err(StreamError::Batch(format!(
                    "the samples have {} input and {} target value(s); the network takes {} \
                     and gives {}",
                    d.input_len,
                    d.target_len,
                    net.input_len(),
                    net.output_len()
                )));
            }
            let n = d.len();
            let fit = Fit {
                net: &net,
                optimizer: &self.optimizer,
                batch: self.batch.max(1),
            };
            let loss = fit.epoch(&mut params, &mut state, &d.inputs, &d.targets, &mut rng)?;
            if !loss.is_finite() {
                return Err(StreamError::Diverged {
                    epoch: epochs.len() + 1,
                    loss,
                });
            }
            let validation = match &self.validation {
                Some(v) => Some(net.score(&params, &v.inputs, Targets::Values(&v.targets))?),
                None => None,
            };
            let report = EpochReport {
                epoch: epochs.len() + 1,
                held: n,
                new_samples,
                loss,
                validation,
                streams_ended: settled,
            };
            on_epoch(&report);
            epochs.push(report);
            if settled {
                settled_epochs += 1;
                if settled_epochs >= self.settle_epochs {
                    break format!(
                        "every stream ended; {} epoch(s) trained after",
                        self.settle_epochs
                    );
                }
            }
        };
        Ok(OnlineReport {
            spec: self.spec.clone(),
            params,
            epochs,
            producers: consumer.counts(),
            ended,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// Why producers that ended left no usable sample, in words.
fn why_none(counts: &[ProducerCounts]) -> String {
    let shape: u64 = counts.iter().map(|p| p.rejected_shape).sum();
    let values: u64 = counts.iter().map(|p| p.rejected_values).sum();
    let received: u64 = counts.iter().map(|p| p.received).sum();
    let mut why = format!("{received} received, {shape} of the wrong shape, {values} not finite");
    if let Some(p) = counts.iter().flat_map(|p| p.problems.first()).next() {
        why.push_str(&format!("; first problem: {p}"));
    }
    why
}
