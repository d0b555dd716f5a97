//! Sample streams: simulations publish samples while a network trains on them (SmartSim's
//! online training), and the trainer that grows its training set at each epoch's end.
//!
//! - `wire`: the producer announcement on DDS and the frames of the TCP connection samples
//!   travel on (DDS finds producers; TCP carries the data, at TCP's speed, with a sequence
//!   number per sample so a late or reconnecting consumer resumes exactly where it was).
//! - `producer`: [`Producer`], one per rank: `publish(iteration, samples)`; it retains what it
//!   published (up to [`ProducerOptions::retain_bytes`]) for consumers that come later.
//! - `consumer`: [`Consumer`], which follows every producer of a stream, checks each batch
//!   (shape, finite values), keeps samples in a bounded store and counts each sample once.
//! - `store`: the bounded store and its [`Policy`] (window or reservoir).
//! - `trainer`: [`OnlineTraining`], epochs over what is held, taking in new samples at each
//!   epoch's end, validation on a held-out set, until the streams end.
//! - `function`: [`Function`], the simulated functions the demo producer samples.
//!
//! # Memory
//! A producer retains at most `retain_bytes` of batches (default 256 MiB), dropping the oldest;
//! a consumer that had not read them is told, and counts them as *dropped by the producer*. A
//! consumer holds at most `keep` samples (default 1,000,000); past it a window drops the oldest,
//! a reservoir keeps a uniform sample of all seen; each sample so dropped is counted as *dropped
//! by the cap* against its producer. So for every producer that ended:
//! `produced = kept + dropped_by_cap + dropped_by_producer + rejected_shape + rejected_values`.

mod consumer;
mod function;
mod producer;
mod store;
mod trainer;
mod wire;

pub use consumer::{Consumer, ConsumerOptions};
pub use function::{Fault, Function, Simulated, Simulation};
pub use producer::{Finished, Producer, ProducerOptions};
pub use store::Policy;
pub use trainer::{EpochReport, OnlineReport, OnlineTraining};
pub use wire::{MAX_FRAME, MAX_STREAM_NAME};

use std::time::Duration;

use crate::trust::tls::Tls;

/// Why a stream operation failed. Each names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// DDS refused a participant or an endpoint.
    #[error(transparent)]
    Dds(#[from] crate::dds::DdsError),
    /// A socket or thread could not be set up.
    #[error("{0}")]
    Io(String),
    /// A batch whose parts do not agree.
    #[error("inconsistent batch: {0}")]
    Batch(String),
    /// A batch too large for one frame.
    #[error(
        "a batch of {bytes} bytes is more than the {max} one frame may carry: publish it in parts"
    )]
    TooLarge {
        /// Its bytes.
        bytes: usize,
        /// The most a frame carries.
        max: usize,
    },
    /// Publishing after the end.
    #[error("the stream was already ended")]
    Ended,
    /// A stream name that cannot be used.
    #[error("stream name {0:?}: 1 to 128 characters of [0-9A-Za-z_.-]")]
    Name(String),
    /// No producer announced the stream in time.
    #[error("no producer of stream {stream:?} appeared on domain {domain} within {waited:?}")]
    NoProducers {
        /// The stream.
        stream: String,
        /// The domain.
        domain: u16,
        /// How long the trainer waited.
        waited: Duration,
    },
    /// Producers came and went without one usable sample.
    #[error("the producers of stream {stream:?} ended without one usable sample ({why})")]
    NoSamples {
        /// The stream.
        stream: String,
        /// What the samples were rejected for.
        why: String,
    },
    /// The network or its settings.
    #[error(transparent)]
    Nn(#[from] crate::nn::NnError),
    /// Training produced a non-finite loss.
    #[error("training diverged at epoch {epoch}: the loss is {loss}")]
    Diverged {
        /// The epoch.
        epoch: usize,
        /// The loss.
        loss: f64,
    },
}

fn check_name(name: &str) -> Result<(), StreamError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_STREAM_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StreamError::Name(name.to_owned()))
    }
}

/// Samples and their targets, each a fixed number of floats, row after row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Samples {
    /// `len() * input_len` values.
    pub inputs: Vec<f32>,
    /// `len() * target_len` values.
    pub targets: Vec<f32>,
    /// Floats per input.
    pub input_len: usize,
    /// Floats per target.
    pub target_len: usize,
}

impl Samples {
    /// Checks that inputs and targets describe the same number of samples.
    pub fn new(
        inputs: Vec<f32>,
        input_len: usize,
        targets: Vec<f32>,
        target_len: usize,
    ) -> Result<Self, StreamError> {
        if input_len == 0 || target_len == 0 {
            return Err(StreamError::Batch(
                "inputs and targets need at least one value each".into(),
            ));
        }
        if !inputs.len().is_multiple_of(input_len)
            || !targets.len().is_multiple_of(target_len)
            || inputs.len() / input_len != targets.len() / target_len
        {
            return Err(StreamError::Batch(format!(
                "{} input values in rows of {input_len} and {} target values in rows of \
                 {target_len} are not the same number of samples",
                inputs.len(),
                targets.len()
            )));
        }
        Ok(Self {
            inputs,
            targets,
            input_len,
            target_len,
        })
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.inputs.len().checked_div(self.input_len).unwrap_or(0)
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a consumer counted of one producer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProducerCounts {
    /// The producer's id, in hex.
    pub producer: String,
    /// Its rank.
    pub rank: u32,
    /// Samples it produced (as it announced, or as far as it was read).
    pub produced: u64,
    /// Samples that arrived (each once).
    pub received: u64,
    /// Samples held now.
    pub kept: u64,
    /// Samples rejected for their shape.
    pub rejected_shape: u64,
    /// Samples rejected for a NaN or infinite value.
    pub rejected_values: u64,
    /// Samples the producer no longer retained when asked (never arrived).
    pub dropped_by_producer: u64,
    /// Samples the store's policy dropped.
    pub dropped_by_cap: u64,
    /// Samples that arrived again (after a reconnection) and were ignored.
    pub duplicates: u64,
    /// `connecting`, `live`, `ended` or `lost: why`.
    pub state: String,
    /// The first problems seen, in words.
    pub problems: Vec<String>,
}

/// Every producer's counts, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Samples produced.
    pub produced: u64,
    /// Samples that arrived.
    pub received: u64,
    /// Samples held.
    pub kept: u64,
    /// Samples rejected (shape, NaN).
    pub rejected: u64,
    /// Samples dropped (by producers, by the cap).
    pub dropped: u64,
    /// Samples not accounted for.
    pub missing: u64,
}

impl Totals {
    /// The sums over `counts`.
    pub fn of(counts: &[ProducerCounts]) -> Self {
        let sum = |f: fn(&ProducerCounts) -> u64| counts.iter().map(f).sum();
        Totals {
            produced: sum(|c| c.produced),
            received: sum(|c| c.received),
            kept: sum(|c| c.kept),
            rejected: sum(ProducerCounts::rejected),
            dropped: sum(ProducerCounts::dropped),
            missing: sum(ProducerCounts::missing),
        }
    }
}

impl ProducerCounts {
    /// Samples dropped, by the producer or by the cap.
    pub fn dropped(&self) -> u64 {
        self.dropped_by_producer + self.dropped_by_cap
    }

    /// Samples rejected.
    pub fn rejected(&self) -> u64 {
        self.rejected_shape + self.rejected_values
    }

    /// Produced samples not yet accounted for (still in flight, or never read from a producer
    /// that was lost).
    pub fn missing(&self) -> u64 {
        self.produced
            .saturating_sub(self.received + self.dropped_by_producer)
    }
}

/// The TLS sides of a trusted domain's stream connections (`None` in an open domain).
fn tls_of(trust: Option<&crate::trust::Trust>) -> Result<Option<Tls>, StreamError> {
    trust
        .map(Tls::new)
        .transpose()
        .map_err(|e| StreamError::Io(format!("trusted domain: {e}")))
}
