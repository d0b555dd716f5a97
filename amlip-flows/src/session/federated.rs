//! Federated averaging (FedAvg) of any model over shards: every round, each shard's job
//! carries the current model and the shard; computing nodes train it locally
//! ([`FedKind`](crate::kind::federated::FedKind)); the new model is the average of theirs,
//! weighted by samples.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Runner, SessionError};
use crate::kind::federated::{average, weights_of, with_weights, FedModel, FedRound, FedUpdate};
use crate::payload::{Payload, PayloadError};
use crate::wire::AmlipId;

/// A FedAvg session: a job kind that computing nodes serve, a model, shards, rounds.
pub struct FedAvg<M> {
    kind: String,
    model: M,
    rounds: usize,
    hyper: Map<String, Value>,
    shards: Vec<Payload>,
    seed: u64,
}

/// Names a job of a federated session: "mlp_train round 2 shard 1/3".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLabel {
    /// The round, from 1.
    pub round: usize,
    /// The shard, from 0.
    pub shard: usize,
    /// Shards in all.
    pub shards: usize,
    kind: Arc<str>,
}

impl fmt::Display for ShardLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} round {} shard {}/{}",
            self.kind,
            self.round,
            self.shard + 1,
            self.shards
        )
    }
}

/// One shard's trained model in a round.
#[derive(Debug, Clone)]
pub struct ShardUpdate<M> {
    /// The shard, from 0.
    pub shard: usize,
    /// Its locally trained model.
    pub model: M,
    /// What its computing node reported.
    pub info: FedUpdate,
    /// That computing node.
    pub server: AmlipId,
    /// From job submission to solution.
    pub seconds: f64,
}

/// A finished round.
#[derive(Debug, Clone)]
pub struct Round<M> {
    /// The round, from 1.
    pub round: usize,
    /// Rounds in all.
    pub rounds: usize,
    /// The averaged model.
    pub model: M,
    /// Every shard's update, by shard.
    pub updates: Vec<ShardUpdate<M>>,
    /// How long the round took.
    pub seconds: f64,
}

impl<M: FedModel + Clone> FedAvg<M> {
    /// A session of `kind` (served by the computing nodes) starting from `model`; one round
    /// until told otherwise.
    pub fn new(kind: &str, model: M) -> Self {
        Self {
            kind: kind.to_owned(),
            model,
            rounds: 1,
            hyper: Map::new(),
            shards: Vec::new(),
            seed: 1,
        }
    }

    /// Rounds of local training and averaging.
    pub fn rounds(mut self, rounds: usize) -> Self {
        self.rounds = rounds;
        self
    }

    /// The local training's hyper-parameters (a struct or map serde writes as a JSON
    /// object), sent in every job.
    pub fn hyper(mut self, hyper: &impl Serialize) -> Result<Self, PayloadError> {
        match serde_json::to_value(hyper) {
            Ok(Value::Object(m)) => {
                self.hyper = m;
                Ok(self)
            }
            Ok(other) => Err(PayloadError::Invalid(format!(
                "hyper-parameters must be a JSON object, not {other}"
            ))),
            Err(e) => Err(PayloadError::Invalid(e.to_string())),
        }
    }

    /// The seed each job's seed is derived from.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds a shard: a payload holding its data tensors (its kind is ignored).
    pub fn shard(mut self, data: Payload) -> Self {
        self.shards.push(data);
        self
    }

    /// Runs every round; after each, calls `after_round` (to evaluate, or to note progress
    /// through the runner). Returns the final model.
    pub fn run(
        self,
        runner: &mut Runner<'_>,
        mut after_round: impl FnMut(&Round<M>, &mut Runner<'_>),
    ) -> Result<M, SessionError> {
        let n = self.shards.len();
        if n == 0 || self.rounds == 0 {
            return Err(SessionError::Config(format!(
                "FedAvg needs at least one shard and one round ({n} shard(s), {} round(s))",
                self.rounds
            )));
        }
        let kind: Arc<str> = self.kind.as_str().into();
        let mut model = self.model;
        for round in 1..=self.rounds {
            let start = Instant::now();
            let weights = model.weights();
            let mut jobs = Vec::with_capacity(n);
            for (i, shard) in self.shards.iter().enumerate() {
                let label = ShardLabel {
                    round,
                    shard: i,
                    shards: n,
                    kind: kind.clone(),
                };
                let params = FedRound {
                    round,
                    shard: i,
                    shards: n,
                    seed: self.seed.wrapping_add((round * 1000 + i) as u64),
                }
                .params_with(&self.hyper);
                let mut job = Payload::new(&kind).with_params(&params)?;
                for (name, t) in shard.tensors() {
                    job.insert(name, t.clone());
                }
                let bytes = with_weights(job, &weights).encode()?;
                jobs.push((label, bytes));
            }
            let done = runner.run(jobs)?;
            let mut updates = Vec::with_capacity(n);
            for d in done {
                let bad = |error| SessionError::BadSolution {
                    job: d.label.to_string(),
                    error,
                };
                let p = Payload::decode(&d.solution).map_err(bad)?;
                p.expect_kind(&kind).map_err(bad)?;
                let info: FedUpdate = p.params().map_err(bad)?;
                let shard_model = weights_of(&p)
                    .and_then(|w| M::from_weights(&w))
                    .map_err(bad)?;
                updates.push(ShardUpdate {
                    shard: d.label.shard,
                    model: shard_model,
                    info,
                    server: d.server,
                    seconds: d.seconds,
                });
            }
            updates.sort_by_key(|u| u.shard);
            let weighted: Vec<_> = updates
                .iter()
                .map(|u| (u.model.weights(), u.info.samples as f64))
                .collect();
            model = M::from_weights(&average(&weighted).map_err(|error| {
                SessionError::BadSolution {
                    job: format!("{kind} round {round} (averaging)"),
                    error,
                }
            })?)
            .map_err(|error| SessionError::BadSolution {
                job: format!("{kind} round {round} (averaging)"),
                error,
            })?;
            let r = Round {
                round,
                rounds: self.rounds,
                model,
                updates,
                seconds: start.elapsed().as_secs_f64(),
            };
            after_round(&r, runner);
            model = r.model;
        }
        Ok(model)
    }
}
