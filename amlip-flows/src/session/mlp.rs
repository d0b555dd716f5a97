//! A one-hidden-layer network sized from the data (784-128-10 on MNIST) trained on shards by
//! FedAvg, evaluated on the test set after every round. Image bytes go as they are (the node
//! scales them to 0..1); numeric features are standardised with the training set's means and
//! deviations; a regression target is standardised too and the errors reported in its units.

use serde_json::json;

use super::{
    FedAvg, Row, Runner, Score, SessionError, Table, TrainPoint, TrainReport, TrainedModel,
};
use crate::aml::ClassMetrics;
use crate::dataset::{self, Dataset, Features, Sharding, Standardizer, Target};
use crate::kind::federated::LocalTraining;
use crate::kind::mlp_train::{MlpHyper, MlpTraining};
use crate::mlp::{Mlp, SparseImages};

/// How to train the network by FedAvg.
#[derive(Debug, Clone)]
pub struct MlpShards {
    /// Shards of the training set (stratified): one job each per round.
    pub shards: usize,
    /// Federated rounds.
    pub rounds: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Local training in each job.
    pub hyper: MlpHyper,
    /// Seed of the sharding, the initial weights and the training.
    pub seed: u64,
    /// How the report names the test set.
    pub test_set: String,
}

impl Default for MlpShards {
    fn default() -> Self {
        Self {
            shards: 3,
            rounds: 5,
            hidden: 128,
            hyper: MlpHyper::default(),
            seed: 1,
            test_set: "official test set".into(),
        }
    }
}

/// How the network reads the data, fitted on the training set: standardised numeric features
/// and regression targets (image bytes and classes stay as they are).
struct Prepared {
    /// Numeric features' means and deviations.
    standardizer: Option<Standardizer>,
    /// Mean and deviation of a regression target.
    target_scale: Option<(f32, f32)>,
}

impl Prepared {
    fn fit(train: &Dataset) -> Self {
        let standardizer = match &train.features {
            Features::Values(x) => Some(Standardizer::fit(x.view())),
            Features::Pixels(_) => None,
        };
        let target_scale = match &train.target {
            Target::Values(y) => {
                let sd = y.std(0.0);
                Some((y.mean().unwrap_or(0.0), if sd > 1e-12 { sd } else { 1.0 }))
            }
            Target::Classes { .. } => None,
        };
        Self {
            standardizer,
            target_scale,
        }
    }

    /// `d` as the network reads it.
    fn apply(&self, d: &Dataset) -> Dataset {
        let features = match (&d.features, &self.standardizer) {
            (Features::Values(x), Some(s)) => Features::Values(s.apply(x.view())),
            (f, _) => f.clone(),
        };
        let target = match (&d.target, self.target_scale) {
            (Target::Values(y), Some((mean, sd))) => Target::Values(y.mapv(|v| (v - mean) / sd)),
            (t, _) => t.clone(),
        };
        Dataset {
            features,
            sample_shape: d.sample_shape.clone(),
            target,
        }
    }

    /// The network's inputs for `d`.
    fn inputs(&self, d: &Dataset) -> SparseImages {
        match &self.apply(d).features {
            Features::Pixels(x) => SparseImages::from_bytes(x.view()),
            Features::Values(x) => SparseImages::from_f32(x.view()),
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut v = json!({});
        if let Some(s) = &self.standardizer {
            v["standardizer"] = serde_json::to_value(s).expect("serialises");
        }
        if let Some((mean, sd)) = self.target_scale {
            v["target_mean"] = json!(mean);
            v["target_sd"] = json!(sd);
        }
        v
    }
}

impl MlpShards {
    /// Trains on `train` across the runner's computing nodes and evaluates on `test`.
    pub fn run(
        &self,
        runner: &mut Runner<'_>,
        train: &Dataset,
        test: &Dataset,
    ) -> Result<TrainReport, SessionError> {
        let name = format!(
            "MLP {}-{}-{} on {} shard(s)",
            train.width(),
            self.hidden,
            train.classes().max(1),
            self.shards
        );
        runner.named(
            ("fedavg", &name, "round", self.rounds),
            |runner| self.train(runner, train, test),
            |r| r.table.final_line(),
        )
    }

    fn train(
        &self,
        runner: &mut Runner<'_>,
        train: &Dataset,
        test: &Dataset,
    ) -> Result<TrainReport, SessionError> {
        let n = self.shards;
        super::check_shards("the MLP", n, train)?;
        if test.task() != train.task() || test.width() != train.width() {
            return Err(SessionError::Config(
                "the test set's features or labels are not like the training set's".into(),
            ));
        }
        if train.width() > 1 << 16 || self.hidden == 0 {
            return Err(SessionError::Config(format!(
                "a network of {} inputs and {} hidden units: need 1..=65536 inputs and some hidden units",
                train.width(),
                self.hidden
            )));
        }
        let prep = Prepared::fit(train);
        let outputs = train.classes().max(1);
        let net = Mlp::new(train.width(), self.hidden, outputs, self.seed);
        let mut hyper = serde_json::to_value(self.hyper).expect("serialises");
        if prep.target_scale.is_some() {
            hyper["task"] = json!("regress");
        }
        let mut session = FedAvg::new(MlpTraining::KIND, net)
            .rounds(self.rounds)
            .seed(self.seed)
            .hyper(&hyper)?;
        for s in dataset::shard(&prep.apply(train), n, Sharding::Stratified, self.seed) {
            session = session.shard(s.to_payload());
        }
        let steps = train.len().div_ceil(n).div_ceil(self.hyper.batch.max(1)) * self.hyper.epochs;
        if steps < 100 {
            runner.note(&format!(
                "note: ~{} samples per shard make {steps} SGD step(s) per round; small sets often need more --epochs or a smaller --batch",
                train.len() / n
            ));
        }
        let x_test = prep.inputs(test);
        let score = |m: &Mlp, name: String, seconds, detail| match &test.target {
            Target::Classes { labels, .. } => {
                let truth = labels.as_slice().expect("contiguous labels");
                let cm = ClassMetrics::from_predictions(&m.predict(&x_test), truth, outputs);
                Row::classes(name, &cm, seconds, detail)
            }
            Target::Values(y) => {
                let (mean, sd) = prep.target_scale.expect("a regression set");
                let p: Vec<f32> = m
                    .predict_values(&x_test)
                    .iter()
                    .map(|v| v * sd + mean)
                    .collect();
                Row::regression(name, &p, y.as_slice().expect("contiguous"), seconds, detail)
            }
        };
        let mut rows = Vec::new();
        let mut aggregated = 0;
        let model = session.run(runner, |round, runner| {
            aggregated += round.updates.len();
            let agg = score(
                &round.model,
                "aggregate (FedAvg)".into(),
                None,
                format!(
                    "after {} round(s) of {} epoch(s)",
                    round.rounds, self.hyper.epochs
                ),
            );
            let shown = match agg.score {
                Score::Classes { accuracy, .. } => format!("test accuracy {accuracy:.4}"),
                Score::Regression { mse, .. } => format!("test MSE {mse:.5}"),
            };
            let point = |shard, loss, score: &Score| {
                let (accuracy, mse) = match *score {
                    Score::Classes { accuracy, .. } => (Some(accuracy), None),
                    Score::Regression { mse, .. } => (None, Some(mse)),
                };
                TrainPoint {
                    round: round.round,
                    rounds: round.rounds,
                    shard,
                    loss,
                    accuracy,
                    mse,
                    seconds: 0.0,
                }
            };
            let shard_rows: Vec<Row> = round
                .updates
                .iter()
                .map(|u| {
                    score(
                        &u.model,
                        format!(
                            "shard {}/{n} ({} {})",
                            u.shard + 1,
                            u.info.samples,
                            train.unit()
                        ),
                        Some(u.seconds),
                        format!("loss {:.4}, by {}", u.info.loss, u.server),
                    )
                })
                .collect();
            let losses: Vec<f64> = round.updates.iter().map(|u| u.info.loss as f64).collect();
            for (u, r) in round.updates.iter().zip(&shard_rows) {
                runner.progress(point(Some(u.shard), Some(u.info.loss as f64), &r.score));
            }
            let mean_loss = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
            runner.progress(point(None, Some(mean_loss), &agg.score));
            runner.note(&format!(
                "round {}/{}: FedAvg of {} shards -> {shown} ({:.1} s)",
                round.round,
                round.rounds,
                round.updates.len(),
                round.seconds
            ));
            if round.round < round.rounds {
                return;
            }
            rows.extend(shard_rows);
            rows.push(agg);
        })?;
        let shape = if train.classes() == 0 {
            format!("{}-{}-1 regression", train.width(), self.hidden)
        } else {
            format!("{}-{}-{}", train.width(), self.hidden, outputs)
        };
        let title = format!(
            "MLP {shape}, {n} shard(s), {} round(s) of {} epoch(s), FedAvg ({}; rows are the last round)",
            self.rounds, self.hyper.epochs, self.test_set
        );
        let mut data = super::data_json(train);
        data["inputs"] = prep.json();
        Ok(TrainReport {
            data,
            model_name: "mlp",
            digit: None,
            shards: n,
            training_images: train.len(),
            table: Table { title, rows },
            model: TrainedModel::Mlp(model),
            aggregated,
        })
    }
}
