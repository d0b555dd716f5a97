//! `mlp_train`: a few epochs of SGD on the [`Mlp`] a job carries, on the shard it carries; a
//! [`FedKind`] whose solutions the main averages by FedAvg.
//!
//! | | parameters | tensors |
//! |---|---|---|
//! | job | [`FedRound`](super::federated::FedRound) fields, [`MlpHyper`] and `task` (`classify`, the default, or `regress`) | `images` U8 `[n, inputs]` (scaled to 0..1) or `features` F32 `[n, inputs]` (as they are); `labels` U8/I32/I64 `[n]` (classify) or `targets` F32 `[n]` (regress); `w1` F32 `[inputs, hidden]`, `b1` `[hidden]`, `w2` `[hidden, outputs]`, `b2` `[outputs]` |
//! | solution | [`FedUpdate`](super::federated::FedUpdate) | `w1`, `b1`, `w2`, `b2` |

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::aml_train::CANCELLED;
use super::federated::{weight, FedKind, FedModel, LocalOutcome, LocalTraining, Weights};
use crate::error::BoxError;
use crate::job::JobContext;
use crate::mlp::{Mlp, SgdParams, SparseImages, Targets};
use crate::payload::{Payload, PayloadError};

/// How an `mlp_train` job trains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MlpHyper {
    /// Local epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// SGD learning rate.
    pub learning_rate: f32,
    /// SGD momentum, in [0, 1).
    pub momentum: f32,
}

impl Default for MlpHyper {
    fn default() -> Self {
        Self {
            epochs: 2,
            batch: 64,
            learning_rate: 0.05,
            momentum: 0.9,
        }
    }
}

impl FedModel for Mlp {
    fn weights(&self) -> Weights {
        let mut w = Weights::new();
        w.insert("w1".into(), self.w1.clone().into_dyn());
        w.insert("b1".into(), self.b1.clone().into_dyn());
        w.insert("w2".into(), self.w2.clone().into_dyn());
        w.insert("b2".into(), self.b2.clone().into_dyn());
        w
    }

    fn from_weights(w: &Weights) -> Result<Self, PayloadError> {
        let w1: Array2<f32> = weight(w, "w1", &[None, None])?;
        let (inputs, hidden) = w1.dim();
        let w2: Array2<f32> = weight(w, "w2", &[Some(hidden), None])?;
        let classes = w2.ncols();
        if inputs == 0
            || inputs > 65_536
            || hidden == 0
            || classes == 0
            || hidden > 65_536
            || classes > 256
        {
            return Err(PayloadError::Invalid(format!(
                "a network of {inputs} inputs, {hidden} hidden units and {classes} classes is not one this node trains"
            )));
        }
        Ok(Mlp {
            w1,
            b1: weight(w, "b1", &[Some(hidden)])?,
            w2,
            b2: weight(w, "b2", &[Some(classes)])?,
        })
    }
}

/// SGD with momentum on softmax cross-entropy, on a shard of images.
#[derive(Debug, Clone, Copy, Default)]
pub struct MlpTraining;

/// The `mlp_train` kind.
pub fn kind() -> FedKind<MlpTraining> {
    FedKind(MlpTraining)
}

/// One `mlp_train` job outside a FedAvg session (round 1 of one shard): train `net` on
/// `images` (`[n, inputs]` bytes) and `labels` as `hyper` says.
pub fn job(
    net: &Mlp,
    images: &Array2<u8>,
    labels: &Array1<u8>,
    hyper: &MlpHyper,
    seed: u64,
) -> Result<Payload, PayloadError> {
    let round = super::federated::FedRound {
        round: 1,
        shard: 0,
        shards: 1,
        seed,
    };
    let hyper = match serde_json::to_value(hyper).expect("serialises") {
        serde_json::Value::Object(h) => h,
        _ => unreachable!("a struct serialises as an object"),
    };
    let p = Payload::new(MlpTraining::KIND).with_params(&round.params_with(&hyper))?;
    Ok(super::federated::with_weights(
        super::aml_train::with_images(p, images, labels),
        &net.weights(),
    ))
}

impl LocalTraining for MlpTraining {
    const KIND: &'static str = "mlp_train";
    type Model = Mlp;

    fn train(
        &self,
        model: &mut Mlp,
        job: &Payload,
        ctx: &JobContext,
    ) -> Result<LocalOutcome, BoxError> {
        let hyper: MlpHyper = job.params()?;
        let seed = job.params_json()["seed"].as_u64().unwrap_or(1);
        if hyper.epochs == 0 || hyper.epochs > 1000 || hyper.batch == 0 {
            return Err(format!(
                "{} epochs of batch {}: need 1..=1000 epochs and a batch of at least 1",
                hyper.epochs, hyper.batch
            )
            .into());
        }
        let rate_ok = hyper.learning_rate.is_finite() && hyper.learning_rate > 0.0;
        if !rate_ok || !(0.0..1.0).contains(&hyper.momentum) {
            return Err(format!(
                "learning rate {} / momentum {}: need a positive rate and momentum in [0, 1)",
                hyper.learning_rate, hyper.momentum
            )
            .into());
        }
        let inputs = model.inputs();
        let with_inputs = |e: PayloadError| format!("{e} (the network takes {inputs} inputs)");
        let x = if job.tensors().contains_key("features") {
            let f = job
                .f32s("features", &[None, Some(inputs)])
                .map_err(with_inputs)?;
            let f = f
                .into_dimensionality::<ndarray::Ix2>()
                .expect("shape checked");
            SparseImages::from_f32(f.view())
        } else {
            let (shape, img) = job
                .u8s("images", &[None, Some(inputs)])
                .map_err(with_inputs)?;
            let images =
                Array2::from_shape_vec((shape[0], inputs), img.to_vec()).expect("shape checked");
            SparseImages::from_bytes(images.view())
        };
        let n = x.len();
        if n == 0 {
            return Err("the job has no samples".into());
        }
        let task = job.params_json()["task"].as_str().unwrap_or("classify");
        let (labels, values);
        let targets = match task {
            "classify" => {
                labels = Array1::from(job.labels("labels", n, model.classes())?);
                Targets::Classes(labels.view())
            }
            "regress" => {
                values = job.f32s("targets", &[Some(n)])?;
                Targets::Values(
                    values
                        .view()
                        .into_dimensionality::<ndarray::Ix1>()
                        .expect("shape checked"),
                )
            }
            other => {
                return Err(
                    format!("task {other:?} is not one of \"classify\" or \"regress\"").into(),
                )
            }
        };
        tracing::info!(
            samples = n,
            epochs = hyper.epochs,
            task,
            "training MLP {}-{}-{}",
            model.inputs(),
            model.hidden(),
            model.classes()
        );
        let sgd = SgdParams {
            epochs: hyper.epochs,
            batch: hyper.batch,
            learning_rate: hyper.learning_rate,
            momentum: hyper.momentum,
            seed,
        };
        let mut cancelled = false;
        let loss = model.train(&x, targets, &sgd, |epoch, loss| {
            ctx.report_progress(epoch as u32, hyper.epochs as u32);
            tracing::info!("epoch {epoch}/{}: loss {loss:.4}", hyper.epochs);
            let flow = ctx.keep_going();
            cancelled |= flow.is_break();
            flow
        });
        if cancelled {
            return Err(CANCELLED.into());
        }
        Ok(LocalOutcome { samples: n, loss })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::mnist::PIXELS;
    use crate::kind::federated::{with_weights, FedRound, FedUpdate};
    use crate::kind::tests::toy;
    use crate::kind::{read_solution, run_bytes, JobKind};
    use crate::payload::Tensor;

    fn job(net: &Mlp, n: usize, hyper: serde_json::Value) -> Payload {
        let (images, labels) = toy(n);
        let params = FedRound {
            round: 1,
            shard: 0,
            shards: 1,
            seed: 3,
        }
        .params_with(hyper.as_object().unwrap());
        with_weights(Payload::new("mlp_train"), &net.weights())
            .with_params(&params)
            .unwrap()
            .with_tensor("images", Tensor::from_u8(images.view()))
            .with_tensor("labels", Tensor::from_u8(labels.view()))
    }

    fn hyper() -> serde_json::Value {
        serde_json::to_value(MlpHyper {
            epochs: 2,
            batch: 16,
            ..MlpHyper::default()
        })
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let net = Mlp::new(PIXELS, 8, 10, 1);
        let bytes = job(&net, 50, hyper()).encode().unwrap();
        let solution = run_bytes(&kind(), &bytes, &JobContext::default()).unwrap();
        let p = read_solution::<FedKind<MlpTraining>>(&solution).unwrap();
        let info: FedUpdate = p.params().unwrap();
        assert_eq!((info.samples, info.round), (50, 1));
        let trained = Mlp::from_weights(&crate::kind::federated::weights_of(&p).unwrap()).unwrap();
        assert_eq!(trained.w1.dim(), (PIXELS, 8));
        assert_ne!(trained.w1, net.w1);
        assert_eq!(<FedKind<MlpTraining> as JobKind>::NAME, "mlp_train");
    }

    #[test]
    fn malformed_jobs_are_refused_with_the_reason() {
        let net = Mlp::new(PIXELS, 8, 10, 1);
        let run = |p: Payload| {
            run_bytes(&kind(), &p.encode().unwrap(), &JobContext::default())
                .unwrap_err()
                .to_string()
        };
        let short = job(&net, 10, hyper())
            .with_tensor("labels", Tensor::from_u8(Array1::from(vec![0u8; 9]).view()));
        let e = run(short);
        assert!(e.contains("\"labels\" has shape [9]"), "{e}");
        let mut wrong = net.clone();
        wrong.w2 = Array2::zeros((7, 10));
        let e = run(job(&wrong, 10, hyper()));
        assert!(e.contains("\"w2\" has shape [7, 10]"), "{e}");
        let e = run(job(
            &net,
            10,
            serde_json::json!({"epochs": 0, "batch": 1, "learning_rate": 0.1, "momentum": 0.5}),
        ));
        assert!(e.contains("need 1..=1000 epochs"), "{e}");
        let e = run(job(&net, 10, serde_json::json!({"epochs": "two"})));
        assert!(e.contains("mlp_train parameters"), "{e}");
    }
}
