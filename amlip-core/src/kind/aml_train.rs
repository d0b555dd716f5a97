//! `aml_train`: train an AML binary classifier ("is it this digit?") on a shard of images.
//!
//! | | parameters | tensors |
//! |---|---|---|
//! | job | [`AmlTrainParams`] | `images` U8 `[n, 784]`, `labels` U8/I32/I64 `[n]` |
//! | solution | [`AmlModelInfo`] | `model` U8 `[len]`: the model's binary form ([`Model::to_bytes`]) |

use std::time::{Duration, Instant};

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::{JobKind, Message};
use crate::aml::{self, DigitParams, Model};
use crate::dataset::mnist::PIXELS;
use crate::error::BoxError;
use crate::job::JobContext;
use crate::payload::{Payload, PayloadError, Tensor};

/// The error a cancelled training job answers with (nobody waits for it; it is logged).
pub(crate) const CANCELLED: &str =
    "the job was cancelled (its main is gone or this node is stopping)";

/// What an `aml_train` job asks: train "is it `digit`?" on the shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmlTrainParams {
    /// The class to recognise.
    pub digit: u8,
    /// Training batches.
    pub batches: usize,
    /// Positive examples per batch.
    pub positives: usize,
    /// Negative examples per batch.
    pub negatives: usize,
    /// Seed of the batch sampling.
    pub seed: u64,
    /// Which shard this is (for reports), 0-based.
    pub shard: usize,
    /// Of how many shards.
    pub shards: usize,
}

/// An `aml_train` job: parameters and a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct AmlTrainJob {
    /// What to train.
    pub params: AmlTrainParams,
    /// Images, one row of 784 pixels each.
    pub images: Array2<u8>,
    /// One digit per image.
    pub labels: Array1<u8>,
}

/// What an `aml_train` solution reports beside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmlModelInfo {
    /// The class the model recognises.
    pub digit: u8,
    /// The shard it was trained on.
    pub shard: usize,
    /// Images in that shard.
    pub images: usize,
    /// Batches trained.
    pub batches: usize,
    /// Training time on the computing node.
    pub train_seconds: f64,
}

/// An `aml_train` solution.
#[derive(Debug, Clone)]
pub struct AmlModelSolution {
    /// About the training.
    pub info: AmlModelInfo,
    /// The trained model.
    pub model: Model,
}

/// Reads a shard's images (`[n, 784]` bytes) and digit labels from a payload.
pub(crate) fn read_images(p: &Payload) -> Result<(Array2<u8>, Array1<u8>), PayloadError> {
    let (shape, img) = p.u8s("images", &[None, Some(PIXELS)])?;
    let n = shape[0];
    if n == 0 {
        return Err(PayloadError::Invalid("the job has no images".into()));
    }
    let labels = p.labels("labels", n, 10)?;
    Ok((
        Array2::from_shape_vec((n, PIXELS), img.to_vec()).expect("shape checked"),
        Array1::from(labels),
    ))
}

/// Adds images and labels to a payload.
pub(crate) fn with_images(p: Payload, images: &Array2<u8>, labels: &Array1<u8>) -> Payload {
    p.with_tensor("images", Tensor::from_u8(images.view()))
        .with_tensor("labels", Tensor::from_u8(labels.view()))
}

impl Message for AmlTrainJob {
    fn to_payload(&self, kind: &str) -> Result<Payload, PayloadError> {
        let p = Payload::new(kind).with_params(&self.params)?;
        Ok(with_images(p, &self.images, &self.labels))
    }

    fn from_payload(p: Payload) -> Result<Self, PayloadError> {
        let params: AmlTrainParams = p.params()?;
        if params.digit > 9 {
            return Err(PayloadError::Invalid(format!(
                "digit {} is not 0-9",
                params.digit
            )));
        }
        if params.batches == 0
            || params.batches > 10_000
            || params.positives == 0
            || params.negatives == 0
        {
            return Err(PayloadError::Invalid(format!(
                "batches {} of {}+{} examples: need 1..=10000 batches and at least one example of each kind",
                params.batches, params.positives, params.negatives
            )));
        }
        let (images, labels) = read_images(&p)?;
        Ok(Self {
            params,
            images,
            labels,
        })
    }
}

impl Message for AmlModelSolution {
    fn to_payload(&self, kind: &str) -> Result<Payload, PayloadError> {
        let bytes = self.model.to_bytes();
        Ok(Payload::new(kind)
            .with_params(&self.info)?
            .with_tensor("model", Tensor::from_u8(Array1::from(bytes).view())))
    }

    fn from_payload(p: Payload) -> Result<Self, PayloadError> {
        let info: AmlModelInfo = p.params()?;
        let (_, bytes) = p.u8s("model", &[None])?;
        let model = Model::from_bytes(&bytes).map_err(|e| PayloadError::Invalid(e.to_string()))?;
        Ok(Self { info, model })
    }
}

/// The `aml_train` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct AmlTrain;

impl JobKind for AmlTrain {
    const NAME: &'static str = "aml_train";
    type Input = AmlTrainJob;
    type Output = AmlModelSolution;

    fn run(&self, job: AmlTrainJob, ctx: &JobContext) -> Result<AmlModelSolution, BoxError> {
        let params = &job.params;
        tracing::info!(
            digit = params.digit,
            shard = format!("{}/{}", params.shard + 1, params.shards),
            images = job.images.nrows(),
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
        let mut last_log = Instant::now() - Duration::from_secs(1);
        let mut cancelled = false;
        let model = aml::train_digit(job.images.view(), job.labels.view(), &digit_params, |r| {
            ctx.report_progress(r.batch, params.batches as u32);
            if r.batch as usize == params.batches || last_log.elapsed() >= Duration::from_secs(1) {
                last_log = Instant::now();
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
        Ok(AmlModelSolution {
            info: AmlModelInfo {
                digit: params.digit,
                shard: params.shard,
                images: job.images.nrows(),
                batches: params.batches,
                train_seconds: start.elapsed().as_secs_f64(),
            },
            model,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::tests::toy;
    use crate::kind::{job_bytes, read_solution, run_bytes};

    fn params() -> AmlTrainParams {
        AmlTrainParams {
            digit: 3,
            batches: 2,
            positives: 5,
            negatives: 20,
            seed: 1,
            shard: 0,
            shards: 1,
        }
    }

    #[test]
    fn round_trip() {
        let (images, labels) = toy(60);
        let job = job_bytes::<AmlTrain>(&AmlTrainJob {
            params: params(),
            images,
            labels,
        })
        .unwrap();
        let solution = run_bytes(&AmlTrain, &job, &JobContext::default()).unwrap();
        let s = read_solution::<AmlTrain>(&solution).unwrap();
        assert_eq!((s.info.digit, s.info.images, s.info.batches), (3, 60, 2));
        assert!(!s.model.is_empty());
        assert!(s.model.atoms.iter().all(|a| a.ucs.contains(s.model.v)));
    }

    #[test]
    fn bad_jobs_name_the_problem() {
        let (images, labels) = toy(10);
        let good = AmlTrainJob {
            params: params(),
            images,
            labels,
        }
        .to_payload("aml_train")
        .unwrap();
        let run = |p: Payload| {
            run_bytes(&AmlTrain, &p.encode().unwrap(), &JobContext::default())
                .unwrap_err()
                .to_string()
        };
        let short_labels = good
            .clone()
            .with_tensor("labels", Tensor::from_u8(Array1::from(vec![0u8; 9]).view()));
        assert!(run(short_labels).contains("\"labels\" has shape [9]"));
        let wrong_digit = good
            .clone()
            .with_params(&serde_json::json!({"digit": "zero"}))
            .unwrap();
        assert!(run(wrong_digit).contains("aml_train parameters"));
        let mut p = params();
        p.batches = 0;
        assert!(run(good.clone().with_params(&p).unwrap()).contains("need 1..=10000 batches"));
    }
}
