//! The ML jobs a computing node serves, and the solutions it sends back, in the
//! [`payload`](super::payload) container:
//!
//! | kind | direction | parameters | sections |
//! |---|---|---|---|
//! | `aml_train` | job | [`AmlTrainParams`] | `images` u8 [n, 784], `labels` u8 [n] |
//! | `aml_model` | solution | [`AmlModelInfo`] | `model` u8 [len] (binary model form) |
//! | `mlp_train` | job | [`MlpTrainParams`] | `images`, `labels`, `w1`, `b1`, `w2`, `b2` (f32) |
//! | `mlp_update` | solution | [`MlpUpdateInfo`] | `w1`, `b1`, `w2`, `b2` |

use std::time::{Duration, Instant};

use bytes::Bytes;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::payload::{Payload, PayloadBuilder, PayloadError};
use crate::aml::{self, DigitParams, Model};
use crate::dataset::mnist::PIXELS;
use crate::error::BoxError;
use crate::mlp::{Mlp, SgdParams, SparseImages};
use crate::protocol::server::JobContext;

/// The error a cancelled training job answers with (nobody waits for it; it is logged).
const CANCELLED: &str = "the job was cancelled (its main is gone or this node is stopping)";

pub const AML_TRAIN: &str = "aml_train";
pub const AML_MODEL: &str = "aml_model";
pub const MLP_TRAIN: &str = "mlp_train";
pub const MLP_UPDATE: &str = "mlp_update";

/// What an `aml_train` job asks: train "is it `digit`?" on the shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmlTrainParams {
    pub digit: u8,
    pub batches: usize,
    pub positives: usize,
    pub negatives: usize,
    pub seed: u64,
    /// Which shard this is (for reports), 0-based, and of how many.
    pub shard: usize,
    pub shards: usize,
}

/// What an `aml_model` solution reports beside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmlModelInfo {
    pub digit: u8,
    pub shard: usize,
    pub images: usize,
    pub batches: usize,
    pub train_seconds: f64,
}

/// What an `mlp_train` job asks: `epochs` local epochs from the given weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpTrainParams {
    pub round: usize,
    pub shard: usize,
    pub shards: usize,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f32,
    pub momentum: f32,
    pub seed: u64,
}

/// What an `mlp_update` solution reports beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpUpdateInfo {
    pub round: usize,
    pub shard: usize,
    /// Samples trained on (the FedAvg weight).
    pub samples: usize,
    pub loss: f32,
    pub train_seconds: f64,
}

fn invalid(msg: String) -> PayloadError {
    PayloadError::Invalid(msg)
}

/// Adds a shard's images and labels to a payload.
fn with_data(
    b: PayloadBuilder,
    images: ArrayView2<'_, u8>,
    labels: ArrayView1<'_, u8>,
) -> PayloadBuilder {
    let img = images.as_standard_layout();
    let lab = labels.to_vec();
    b.u8(
        "images",
        &[images.nrows(), images.ncols()],
        img.as_slice().expect("standard layout"),
    )
    .u8("labels", &[labels.len()], &lab)
}

/// Reads and checks a job's images and labels.
fn data(p: &Payload) -> Result<(Array2<u8>, Array1<u8>), PayloadError> {
    let (shape, img) = p.u8s("images", &[None, Some(PIXELS)])?;
    let n = shape[0];
    let (_, lab) = p
        .u8s("labels", &[Some(n)])
        .map_err(|e| invalid(format!("labels must be one per image ({n} images): {e}")))?;
    if let Some((i, l)) = lab.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(invalid(format!("label {i} is {l}, not a digit")));
    }
    if n == 0 {
        return Err(invalid("the job has no images".into()));
    }
    Ok((
        Array2::from_shape_vec((n, PIXELS), img.to_vec()).expect("shape checked"),
        Array1::from(lab.to_vec()),
    ))
}

/// Adds a network's weights (sections `w1`, `b1`, `w2`, `b2`) to a payload.
pub fn with_mlp(b: PayloadBuilder, m: &Mlp) -> PayloadBuilder {
    let std = |a: &Array2<f32>| a.as_standard_layout().to_owned();
    let (w1, w2) = (std(&m.w1), std(&m.w2));
    b.f32("w1", w1.shape(), w1.as_slice().expect("standard"))
        .f32("b1", m.b1.shape(), m.b1.as_slice().expect("contiguous"))
        .f32("w2", w2.shape(), w2.as_slice().expect("standard"))
        .f32("b2", m.b2.shape(), m.b2.as_slice().expect("contiguous"))
}

/// Reads network weights; the shapes must agree with each other and take 784 inputs.
fn mlp(p: &Payload) -> Result<Mlp, PayloadError> {
    let shape = |name: &str| {
        p.header
            .sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.shape.clone())
            .ok_or_else(|| invalid(format!("{} payload has no section {name:?}", p.kind())))
    };
    let s1 = shape("w1")?;
    let s2 = shape("w2")?;
    if s1.len() != 2
        || s2.len() != 2
        || s1[0] != PIXELS
        || s1[1] != s2[0]
        || s1[1] == 0
        || s2[1] == 0
    {
        return Err(invalid(format!(
            "network shapes w1 {s1:?} and w2 {s2:?} do not fit: expected [784, h] and [h, classes]"
        )));
    }
    let (h, c) = (s1[1], s2[1]);
    if h > 65_536 || c > 1024 {
        return Err(invalid(format!(
            "network of {h} hidden units and {c} classes is too large"
        )));
    }
    Ok(Mlp {
        w1: Array2::from_shape_vec((PIXELS, h), p.f32s("w1", &[PIXELS, h])?).expect("shape"),
        b1: Array1::from(p.f32s("b1", &[h])?),
        w2: Array2::from_shape_vec((h, c), p.f32s("w2", &[h, c])?).expect("shape"),
        b2: Array1::from(p.f32s("b2", &[c])?),
    })
}

/// An `aml_train` job.
pub fn aml_train_job(
    params: &AmlTrainParams,
    images: ArrayView2<'_, u8>,
    labels: ArrayView1<'_, u8>,
) -> Bytes {
    let b = PayloadBuilder::new(AML_TRAIN, serde_json::to_value(params).expect("params"));
    with_data(b, images, labels).build()
}

/// Reads an `aml_model` solution.
pub fn parse_aml_model(data: &Bytes) -> Result<(AmlModelInfo, Model), PayloadError> {
    let p = Payload::decode(data)?;
    if p.kind() != AML_MODEL {
        return Err(invalid(format!(
            "expected an {AML_MODEL} solution, got {}",
            p.kind()
        )));
    }
    let info: AmlModelInfo = p.params()?;
    let (_, bytes) = p.u8s("model", &[None])?;
    let model = Model::from_bytes(&bytes).map_err(|e| invalid(e.to_string()))?;
    Ok((info, model))
}

/// An `mlp_train` job.
pub fn mlp_train_job(
    params: &MlpTrainParams,
    images: ArrayView2<'_, u8>,
    labels: ArrayView1<'_, u8>,
    model: &Mlp,
) -> Bytes {
    let b = PayloadBuilder::new(MLP_TRAIN, serde_json::to_value(params).expect("params"));
    with_mlp(with_data(b, images, labels), model).build()
}

/// Reads an `mlp_update` solution.
pub fn parse_mlp_update(data: &Bytes) -> Result<(MlpUpdateInfo, Mlp), PayloadError> {
    let p = Payload::decode(data)?;
    if p.kind() != MLP_UPDATE {
        return Err(invalid(format!(
            "expected an {MLP_UPDATE} solution, got {}",
            p.kind()
        )));
    }
    Ok((p.params()?, mlp(&p)?))
}

/// Logs training progress at most once a second, plus the last step.
struct Ticker {
    last: Instant,
}

impl Ticker {
    fn new() -> Self {
        Self {
            last: Instant::now() - Duration::from_secs(1),
        }
    }

    fn due(&mut self, done: usize, total: usize) -> bool {
        if done == total || self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            true
        } else {
            false
        }
    }
}

/// Serves an `aml_train` job.
pub fn run_aml_train(p: &Payload, ctx: &JobContext) -> Result<Bytes, BoxError> {
    let params: AmlTrainParams = p.params()?;
    if params.digit > 9 {
        return Err(format!("digit {} is not 0-9", params.digit).into());
    }
    if params.batches == 0
        || params.batches > 10_000
        || params.positives == 0
        || params.negatives == 0
    {
        return Err(format!(
            "batches {} of {}+{} examples: need 1..=10000 batches and at least one example of each kind",
            params.batches, params.positives, params.negatives
        )
        .into());
    }
    let (images, labels) = data(p)?;
    tracing::info!(
        digit = params.digit,
        shard = format!("{}/{}", params.shard + 1, params.shards),
        images = images.nrows(),
        batches = params.batches,
        "training AML binary classifier"
    );
    let start = Instant::now();
    let digit_params = DigitParams {
        digit: params.digit,
        batches: params.batches,
        positives: params.positives,
        negatives: params.negatives,
        seed: params.seed,
        ..DigitParams::default()
    };
    let mut ticker = Ticker::new();
    let mut cancelled = false;
    let model = aml::train_digit(images.view(), labels.view(), &digit_params, |r| {
        ctx.report_progress(r.batch, params.batches as u32);
        if ticker.due(r.batch as usize, params.batches) {
            tracing::info!(
                digit = params.digit,
                "batch {}/{} ({:.3} s, {} atoms)",
                r.batch,
                params.batches,
                r.seconds,
                r.union_atoms
            );
        }
        let flow = ctx.keep_going();
        cancelled |= flow.is_break();
        flow
    });
    if cancelled {
        return Err(CANCELLED.into());
    }
    let info = AmlModelInfo {
        digit: params.digit,
        shard: params.shard,
        images: images.nrows(),
        batches: params.batches,
        train_seconds: start.elapsed().as_secs_f64(),
    };
    let bytes = model.to_bytes();
    Ok(PayloadBuilder::new(AML_MODEL, serde_json::to_value(&info)?)
        .u8("model", &[bytes.len()], &bytes)
        .build())
}

/// Serves an `mlp_train` job.
pub fn run_mlp_train(p: &Payload, ctx: &JobContext) -> Result<Bytes, BoxError> {
    let params: MlpTrainParams = p.params()?;
    if params.epochs == 0 || params.epochs > 1000 || params.batch == 0 {
        return Err(format!(
            "{} epochs of batch {}: need 1..=1000 epochs and a batch of at least 1",
            params.epochs, params.batch
        )
        .into());
    }
    let rate_ok = params.learning_rate.is_finite() && params.learning_rate > 0.0;
    if !rate_ok || !(0.0..1.0).contains(&params.momentum) {
        return Err(format!(
            "learning rate {} / momentum {}: need a positive rate and momentum in [0, 1)",
            params.learning_rate, params.momentum
        )
        .into());
    }
    let (images, labels) = data(p)?;
    let mut model = mlp(p)?;
    if let Some(l) = labels.iter().find(|&&l| l as usize >= model.classes()) {
        return Err(format!("label {l} does not fit a {}-class network", model.classes()).into());
    }
    tracing::info!(
        round = params.round,
        shard = format!("{}/{}", params.shard + 1, params.shards),
        images = images.nrows(),
        epochs = params.epochs,
        "training MLP {}-{}-{}",
        model.inputs(),
        model.hidden(),
        model.classes()
    );
    let start = Instant::now();
    let x = SparseImages::from_bytes(images.view());
    let sgd = SgdParams {
        epochs: params.epochs,
        batch: params.batch,
        learning_rate: params.learning_rate,
        momentum: params.momentum,
        seed: params.seed,
    };
    let mut cancelled = false;
    let loss = model.train(&x, labels.view(), &sgd, |epoch, loss| {
        ctx.report_progress(epoch as u32, params.epochs as u32);
        tracing::info!(
            round = params.round,
            "epoch {epoch}/{}: loss {loss:.4}",
            params.epochs
        );
        let flow = ctx.keep_going();
        cancelled |= flow.is_break();
        flow
    });
    if cancelled {
        return Err(CANCELLED.into());
    }
    let info = MlpUpdateInfo {
        round: params.round,
        shard: params.shard,
        samples: images.nrows(),
        loss,
        train_seconds: start.elapsed().as_secs_f64(),
    };
    Ok(with_mlp(
        PayloadBuilder::new(MLP_UPDATE, serde_json::to_value(&info)?),
        &model,
    )
    .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> (Array2<u8>, Array1<u8>) {
        let images =
            Array2::from_shape_fn((n, PIXELS), |(i, j)| if (i + j) % 7 < 3 { 200 } else { 0 });
        let labels = Array1::from_iter((0..n).map(|i| (i % 10) as u8));
        (images, labels)
    }

    #[test]
    fn aml_job_round_trip() {
        let (img, lab) = toy(60);
        let params = AmlTrainParams {
            digit: 3,
            batches: 2,
            positives: 5,
            negatives: 20,
            seed: 1,
            shard: 0,
            shards: 1,
        };
        let job = aml_train_job(&params, img.view(), lab.view());
        let p = Payload::decode(&job).unwrap();
        let solution = run_aml_train(&p, &JobContext::default()).unwrap();
        let (info, model) = parse_aml_model(&solution).unwrap();
        assert_eq!((info.digit, info.images, info.batches), (3, 60, 2));
        assert!(model.atoms.iter().all(|a| a.ucs.contains(model.v)));
    }

    #[test]
    fn mlp_job_round_trip() {
        let (img, lab) = toy(50);
        let net = Mlp::new(PIXELS, 8, 10, 1);
        let params = MlpTrainParams {
            round: 1,
            shard: 0,
            shards: 1,
            epochs: 2,
            batch: 16,
            learning_rate: 0.05,
            momentum: 0.9,
            seed: 1,
        };
        let job = mlp_train_job(&params, img.view(), lab.view(), &net);
        let solution =
            run_mlp_train(&Payload::decode(&job).unwrap(), &JobContext::default()).unwrap();
        let (info, trained) = parse_mlp_update(&solution).unwrap();
        assert_eq!((info.samples, info.round), (50, 1));
        assert_eq!(trained.w1.dim(), (PIXELS, 8));
        assert_ne!(trained.w1, net.w1);
    }

    #[test]
    fn malformed_jobs_are_refused_with_the_reason() {
        let (img, lab) = toy(10);
        let net = Mlp::new(PIXELS, 8, 10, 1);
        let params = MlpTrainParams {
            round: 1,
            shard: 0,
            shards: 1,
            epochs: 1,
            batch: 4,
            learning_rate: 0.05,
            momentum: 0.9,
            seed: 1,
        };
        // Labels that do not match the images.
        let bad = with_mlp(
            PayloadBuilder::new(MLP_TRAIN, serde_json::to_value(&params).unwrap())
                .u8("images", &[10, PIXELS], img.as_slice().unwrap())
                .u8("labels", &[9], &lab.as_slice().unwrap()[..9]),
            &net,
        )
        .build();
        let e = run_mlp_train(&Payload::decode(&bad).unwrap(), &JobContext::default()).unwrap_err();
        assert!(e.to_string().contains("one per image"), "{e}");
        // A network whose layers do not fit together.
        let mut wrong = net.clone();
        wrong.w2 = Array2::zeros((7, 10));
        let bad = mlp_train_job(&params, img.view(), lab.view(), &wrong);
        let e = run_mlp_train(&Payload::decode(&bad).unwrap(), &JobContext::default()).unwrap_err();
        assert!(e.to_string().contains("do not fit"), "{e}");
        // Parameters of the wrong type.
        let bad = PayloadBuilder::new(AML_TRAIN, serde_json::json!({"digit": "zero"}))
            .u8("images", &[1, PIXELS], &[0; PIXELS])
            .u8("labels", &[1], &[0])
            .build();
        let e = run_aml_train(&Payload::decode(&bad).unwrap(), &JobContext::default()).unwrap_err();
        assert!(e.to_string().contains("aml_train parameters"), "{e}");
    }
}
