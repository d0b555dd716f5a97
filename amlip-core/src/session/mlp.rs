//! The 784-128-10 network trained on shards of MNIST by FedAvg, evaluated on the test set after
//! every round.

use super::{FedAvg, Row, Runner, SessionError, Table, TrainReport, TrainedModel};
use crate::aml::ClassMetrics;
use crate::dataset::{self, Mnist, Sharding};
use crate::kind::aml_train::with_images;
use crate::kind::federated::LocalTraining;
use crate::kind::mlp_train::{MlpHyper, MlpTraining};
use crate::mlp::{Mlp, SparseImages};
use crate::payload::Payload;

/// How to train the network by FedAvg.
#[derive(Debug, Clone)]
pub struct MnistMlp {
    /// Shards of the training set (stratified): one job each per round.
    pub shards: usize,
    /// Federated rounds.
    pub rounds: usize,
    /// Local training in each job.
    pub hyper: MlpHyper,
    /// Seed of the sharding, the initial weights and the training.
    pub seed: u64,
}

impl Default for MnistMlp {
    fn default() -> Self {
        Self {
            shards: 3,
            rounds: 5,
            hyper: MlpHyper::default(),
            seed: 1,
        }
    }
}

impl MnistMlp {
    /// Trains on `train` across the runner's computing nodes and evaluates on `test`.
    pub fn run(
        &self,
        runner: &mut Runner<'_>,
        train: &Mnist,
        test: &Mnist,
    ) -> Result<TrainReport, SessionError> {
        let n = self.shards;
        super::check_shards("the MLP", n, train)?;
        let mut session = FedAvg::new(MlpTraining::KIND, Mlp::mnist(self.seed))
            .rounds(self.rounds)
            .seed(self.seed)
            .hyper(&self.hyper)?;
        for s in dataset::shard(train, n, Sharding::Stratified, self.seed) {
            session = session.shard(with_images(Payload::new(""), &s.images, &s.labels));
        }
        let x_test = SparseImages::from_bytes(test.images.view());
        let truth = test.labels.as_slice().expect("contiguous labels");
        let mut rows = Vec::new();
        let mut aggregated = 0;
        let model = session.run(runner, |round, runner| {
            aggregated += round.updates.len();
            let m = ClassMetrics::from_predictions(&round.model.predict(&x_test), truth, 10);
            runner.note(&format!(
                "round {}/{}: FedAvg of {} shards -> test accuracy {:.4} ({:.1} s)",
                round.round,
                round.rounds,
                round.updates.len(),
                m.accuracy,
                round.seconds
            ));
            if round.round < round.rounds {
                return;
            }
            for u in &round.updates {
                let shard = ClassMetrics::from_predictions(&u.model.predict(&x_test), truth, 10);
                rows.push(Row::classes(
                    format!("shard {}/{n} ({} images)", u.shard + 1, u.info.samples),
                    &shard,
                    Some(u.seconds),
                    format!("loss {:.4}, by {}", u.info.loss, u.server),
                ));
            }
            rows.push(Row::classes(
                "aggregate (FedAvg)".into(),
                &m,
                None,
                format!(
                    "after {} round(s) of {} epoch(s)",
                    round.rounds, self.hyper.epochs
                ),
            ));
        })?;
        let title = format!(
            "MLP 784-128-10, {n} shard(s), {} round(s) of {} epoch(s), FedAvg (official test set; rows are the last round)",
            self.rounds, self.hyper.epochs
        );
        Ok(TrainReport {
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
