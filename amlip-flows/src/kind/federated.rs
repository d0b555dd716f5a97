//! The computing side of federated training: a [`FedKind`] trains the model a job carries on the
//! data the job carries, and answers the new weights; the main averages them (FedAvg, see
//! [`crate::session::FedAvg`]).
//!
//! A model takes part by naming its weights ([`FedModel`]); its local training is a
//! [`LocalTraining`]. Both sides agree on the payload:
//!
//! | | parameters (JSON) | tensors |
//! |---|---|---|
//! | job | [`FedRound`] fields, plus the training's own hyper-parameters | the model's weights (F32), the shard's data |
//! | solution | [`FedUpdate`] | the trained weights (F32) |

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use super::JobKind;
use crate::error::BoxError;
use crate::job::JobContext;
use crate::payload::{DType, Payload, PayloadError, Tensor};

/// A model's weights: named f32 arrays.
pub type Weights = BTreeMap<String, ArrayD<f32>>;

/// A model that can be trained federatedly: its weights by name, and back.
pub trait FedModel: Sized {
    /// The model's weights, by name.
    fn weights(&self) -> Weights;
    /// The model from weights (`weights` may hold more arrays than the model needs; shapes
    /// that do not fit together are an error naming them).
    fn from_weights(weights: &Weights) -> Result<Self, PayloadError>;
}

/// What every federated job says besides its training's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FedRound {
    /// The round, from 1.
    pub round: usize,
    /// The shard, from 0.
    pub shard: usize,
    /// Of how many shards.
    pub shards: usize,
    /// A seed for this round and shard.
    pub seed: u64,
}

impl FedRound {
    /// A job's parameters: these fields and the training's hyper-parameters (a JSON object;
    /// its fields of the same names give way to these).
    pub fn params_with(
        &self,
        hyper: &serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Value {
        let mut params = hyper.clone();
        if let serde_json::Value::Object(round) = serde_json::to_value(self).expect("serialises") {
            params.extend(round);
        }
        serde_json::Value::Object(params)
    }
}

/// What a federated solution reports beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FedUpdate {
    /// The round.
    pub round: usize,
    /// The shard.
    pub shard: usize,
    /// Samples trained on: the update's weight in the average.
    pub samples: usize,
    /// The training loss at the end.
    pub loss: f32,
    /// Training time on the computing node.
    pub train_seconds: f64,
}

/// What one local training reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalOutcome {
    /// Samples trained on.
    pub samples: usize,
    /// The training loss at the end.
    pub loss: f32,
}

/// How a computing node trains a model on one shard.
pub trait LocalTraining: Send + Sync + 'static {
    /// The job kind name.
    const KIND: &'static str;
    /// The model trained.
    type Model: FedModel;

    /// Trains `model` in place on the job's data. `job` holds the round ([`FedRound`]
    /// fields) and the training's hyper-parameters in its parameters, and the data among
    /// its tensors. Report progress and stop early on cancellation through `ctx`.
    fn train(
        &self,
        model: &mut Self::Model,
        job: &Payload,
        ctx: &JobContext,
    ) -> Result<LocalOutcome, BoxError>;
}

/// The job kind of a [`LocalTraining`].
pub struct FedKind<T>(pub T);

impl<T: LocalTraining> JobKind for FedKind<T> {
    const NAME: &'static str = T::KIND;
    type Input = Payload;
    type Output = Payload;

    fn run(&self, job: Payload, ctx: &JobContext) -> Result<Payload, BoxError> {
        let round: FedRound = job.params()?;
        let mut model = T::Model::from_weights(&weights_of(&job)?)?;
        let start = Instant::now();
        let outcome = self.0.train(&mut model, &job, ctx)?;
        if !outcome.loss.is_finite() {
            return Err(format!("training diverged (loss {})", outcome.loss).into());
        }
        let update = FedUpdate {
            round: round.round,
            shard: round.shard,
            samples: outcome.samples,
            loss: outcome.loss,
            train_seconds: start.elapsed().as_secs_f64(),
        };
        Ok(with_weights(
            Payload::new(T::KIND).with_params(&update)?,
            &model.weights(),
        ))
    }
}

/// Every F32 tensor of a payload, as arrays (non-finite values are refused). Float tensors
/// are F32 in amlip: an F64 one is an error naming it (numpy's default float).
pub fn weights_of(p: &Payload) -> Result<Weights, PayloadError> {
    let mut w = Weights::new();
    for (name, t) in p.tensors() {
        if t.dtype() == DType::F64 {
            return Err(PayloadError::DType {
                name: name.clone(),
                found: "F64".into(),
                expected: "F32 (np.float32)".into(),
            });
        }
        if t.dtype() == DType::F32 {
            let any: Vec<Option<usize>> = vec![None; t.shape().len()];
            w.insert(name.clone(), p.f32s(name, &any)?);
        }
    }
    Ok(w)
}

/// Adds weights to a payload as F32 tensors.
pub fn with_weights(mut p: Payload, weights: &Weights) -> Payload {
    for (name, a) in weights {
        p.insert(name, Tensor::from_f32(a.view()));
    }
    p
}

/// One weight array, checked: present, of `shape` (`None`: any size), with the dimension
/// `D` (e.g. `Ix2`, usually inferred).
pub fn weight<D: ndarray::Dimension>(
    weights: &Weights,
    name: &str,
    shape: &[Option<usize>],
) -> Result<ndarray::Array<f32, D>, PayloadError> {
    let a = weights.get(name).ok_or_else(|| {
        PayloadError::Invalid(format!(
            "the model's weight {name:?} is missing (weights present: {})",
            weights.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let fits = a.ndim() == shape.len()
        && a.shape()
            .iter()
            .zip(shape)
            .all(|(s, e)| e.is_none_or(|e| *s == e));
    if !fits {
        let want: Vec<String> = shape
            .iter()
            .map(|e| e.map_or("any".into(), |d| d.to_string()))
            .collect();
        return Err(PayloadError::Shape {
            name: name.to_owned(),
            found: a.shape().to_vec(),
            expected: want.join(", "),
        });
    }
    a.clone()
        .into_dimensionality::<D>()
        .map_err(|_| PayloadError::Shape {
            name: name.to_owned(),
            found: a.shape().to_vec(),
            expected: format!("{} dimensions", shape.len()),
        })
}

/// FedAvg: the average of several models' weights, each weighted (by its samples). Every
/// model must have the same weights with the same shapes.
pub fn average(updates: &[(Weights, f64)]) -> Result<Weights, PayloadError> {
    let Some((first, _)) = updates.first() else {
        return Err(PayloadError::Invalid("nothing to average".into()));
    };
    let total: f64 = updates.iter().map(|(_, w)| *w).sum();
    if total <= 0.0 || !total.is_finite() {
        return Err(PayloadError::Invalid(format!(
            "the updates' weights sum to {total}"
        )));
    }
    let mut avg = Weights::new();
    for (name, a) in first {
        let mut sum = ArrayD::<f32>::zeros(a.raw_dim());
        for (i, (w, n)) in updates.iter().enumerate() {
            let b = w
                .get(name)
                .filter(|b| b.shape() == a.shape())
                .ok_or_else(|| {
                    PayloadError::Invalid(format!(
                        "update {i} has no weight {name:?} of shape {:?}",
                        a.shape()
                    ))
                })?;
            sum.scaled_add((*n / total) as f32, b);
        }
        avg.insert(name.clone(), sum);
    }
    if let Some((i, _)) = updates
        .iter()
        .enumerate()
        .find(|(_, (w, _))| w.len() != avg.len())
    {
        return Err(PayloadError::Invalid(format!(
            "update {i} has {} weights, the first has {}",
            updates[i].0.len(),
            avg.len()
        )));
    }
    Ok(avg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    fn w(v: f32) -> Weights {
        let mut w = Weights::new();
        w.insert("a".into(), arr1(&[v, 2.0 * v]).into_dyn());
        w
    }

    #[test]
    fn average_weighs_by_samples() {
        let avg = average(&[(w(1.0), 1.0), (w(4.0), 2.0)]).unwrap();
        assert_eq!(avg["a"].as_slice().unwrap(), &[3.0, 6.0]);
    }

    #[test]
    fn mismatched_updates_are_refused() {
        let mut other = w(1.0);
        other.insert("a".into(), arr1(&[1.0f32]).into_dyn());
        let e = average(&[(w(1.0), 1.0), (other, 1.0)]).unwrap_err();
        assert!(
            e.to_string().contains("update 1 has no weight \"a\""),
            "{e}"
        );
        let mut more = w(1.0);
        more.insert("b".into(), arr1(&[1.0f32]).into_dyn());
        assert!(average(&[(w(1.0), 1.0), (more, 1.0)]).is_err());
        assert!(average(&[]).is_err());
    }
}
