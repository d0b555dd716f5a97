//! `aml_train`: train an AML binary classifier ("is it this class?") on a shard of rows of
//! bytes: MNIST images by default, or any rows with the embedding the job names.
//!
//! | | parameters | tensors |
//! |---|---|---|
//! | job | [`AmlTrainParams`] | `images` U8 `[n, features]` (784 without `cuts`), `labels` U8/I32/I64 `[n]` |
//! | solution | [`AmlModelInfo`] | `model` U8 `[len]`: the model's binary form ([`Model::to_bytes`]) |

use std::time::{Duration, Instant};

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::{JobKind, Message};
use crate::aml::{self, DigitParams, Embedding, Model};
use crate::dataset::mnist::PIXELS;
use crate::error::BoxError;
use crate::job::JobContext;
use crate::payload::{Payload, PayloadError, Tensor};

/// The error a cancelled training job answers with (nobody waits for it; it is logged).
pub(crate) const CANCELLED: &str =
    "the job was cancelled (its main is gone or this node is stopping)";

/// What an `aml_train` job asks: train "is it class `digit`?" on the shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmlTrainParams {
    /// The class to recognise (a digit for MNIST).
    pub digit: u8,
    /// Classes the labels range over (10 if absent: MNIST).
    #[serde(default = "ten")]
    pub classes: u16,
    /// The embedding's cuts on every feature's byte ([`Embedding`]);
    /// absent: MNIST's pixel embedding (784 pixels, on at 26).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuts: Option<Vec<u8>>,
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

fn ten() -> u16 {
    10
}

impl Default for AmlTrainParams {
    /// Digit 0 of MNIST, the tutorial's 10 batches of 100 + 900, one shard.
    fn default() -> Self {
        Self {
            digit: 0,
            classes: 10,
            cuts: None,
            batches: 10,
            positives: 100,
            negatives: 900,
            seed: 1,
            shard: 0,
            shards: 1,
        }
    }
}

impl AmlTrainParams {
    /// The embedding the job's rows are read with, for rows of `features` bytes.
    pub fn embedding(&self, features: usize) -> Embedding {
        match &self.cuts {
            Some(cuts) => Embedding {
                features,
                cuts: cuts.clone(),
            },
            None => Embedding::pixels(features),
        }
    }
}

/// An `aml_train` job: parameters and a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct AmlTrainJob {
    /// What to train.
    pub params: AmlTrainParams,
    /// One row of bytes per sample (784 pixels for MNIST).
    pub images: Array2<u8>,
    /// One class per sample.
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

/// Reads a shard's rows (`[n, width]` bytes; any width if `width` is `None`) and class
/// labels (below `classes`) from a payload.
pub(crate) fn read_images(
    p: &Payload,
    width: Option<usize>,
    classes: usize,
) -> Result<(Array2<u8>, Array1<u8>), PayloadError> {
    let (shape, img) = p.u8s("images", &[None, width])?;
    let (n, width) = (shape[0], shape[1]);
    if n == 0 || width == 0 {
        return Err(PayloadError::Invalid("the job has no samples".into()));
    }
    let labels = p.labels("labels", n, classes)?;
    Ok((
        Array2::from_shape_vec((n, width), img.to_vec()).expect("shape checked"),
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
        if !(2..=256).contains(&params.classes) || params.digit as u16 >= params.classes {
            return Err(PayloadError::Invalid(format!(
                "class {} of {}: need 2..=256 classes and a class below them",
                params.digit, params.classes
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
        let width = params.cuts.is_none().then_some(PIXELS);
        let (images, labels) = read_images(&p, width, params.classes as usize)?;
        params
            .embedding(images.ncols())
            .check()
            .map_err(PayloadError::Invalid)?;
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
            embedding: params.embedding(job.images.ncols()),
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
            classes: 10,
            cuts: None,
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
        let mut p = params();
        p.classes = 3;
        assert!(run(good.clone().with_params(&p).unwrap()).contains("class 3 of 3"));
        let mut p = params();
        p.cuts = Some(vec![4, 2]);
        assert!(run(good.clone().with_params(&p).unwrap()).contains("ascending cuts"));
    }

    /// Rows of any width with a levels embedding train a classifier of that many constants.
    #[test]
    fn any_width_with_cuts() {
        let images = Array2::from_shape_fn((40, 3), |(i, j)| ((i + j) % 4) as u8);
        let labels = Array1::from_iter((0..40).map(|i| (i % 4 == 0) as u8));
        let mut p = params();
        (p.digit, p.classes, p.cuts) = (1, 2, Some(vec![1, 2, 3]));
        let job = job_bytes::<AmlTrain>(&AmlTrainJob {
            params: p,
            images,
            labels,
        })
        .unwrap();
        let solution = run_bytes(&AmlTrain, &job, &JobContext::default()).unwrap();
        let s = read_solution::<AmlTrain>(&solution).unwrap();
        assert_eq!(s.model.n_constants, 2 * 3 * 3 + 1);
        assert!(!s.model.is_empty());
    }
}
