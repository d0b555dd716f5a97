//! AML on shards of MNIST: one `aml_train` job per shard (per digit for the 10-class
//! classifier), the shards' models merged by union, the cutoff calibrated on a hold-out, and
//! every model evaluated on the test set.

use std::fmt;

use rayon::prelude::*;

use super::{Row, Runner, SessionError, Table, TrainReport, TrainedModel};
use crate::aml::{self, ClassMetrics, Model, OneVsRest};
use crate::dataset::{self, Mnist, Sharding};
use crate::kind::aml_train::{AmlModelSolution, AmlTrain, AmlTrainJob, AmlTrainParams};
use crate::kind::{job_bytes, Message};
use crate::payload::Payload;

/// How to train AML classifiers on shards.
#[derive(Debug, Clone)]
pub struct AmlShards {
    /// The binary classifier "is it this digit?"; `None`: the 10-class classifier (ten
    /// one-vs-rest ones).
    pub digit: Option<u8>,
    /// Shards of the training set (stratified).
    pub shards: usize,
    /// Batches each job trains.
    pub batches: usize,
    /// Positive and negative images per batch.
    pub batch_sizes: (usize, usize),
    /// Drop each shard's atoms that another shard's positives fail before merging.
    pub filter_merge: bool,
    /// Fraction of the training set held out to choose cutoffs.
    pub holdout: f64,
    /// Seed of the hold-out, the sharding and the training.
    pub seed: u64,
}

impl Default for AmlShards {
    fn default() -> Self {
        Self {
            digit: Some(0),
            shards: 3,
            batches: 10,
            batch_sizes: (100, 900),
            filter_merge: false,
            holdout: 0.1,
            seed: 1,
        }
    }
}

/// A job of the session: which digit, which shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label {
    digit: u8,
    shard: usize,
    shards: usize,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "digit {} shard {}/{}",
            self.digit,
            self.shard + 1,
            self.shards
        )
    }
}

impl AmlShards {
    /// Trains on `train` across the runner's computing nodes and evaluates on `test`.
    pub fn run(
        &self,
        runner: &mut Runner<'_>,
        train: &Mnist,
        test: &Mnist,
    ) -> Result<TrainReport, SessionError> {
        let n = self.shards;
        super::check_shards("AML", n, train)?;
        let (rest, held) = dataset::hold_out(train, self.holdout, self.seed);
        let shards = dataset::shard(&rest, n, Sharding::Stratified, self.seed);
        let digits: Vec<u8> = match self.digit {
            Some(d) => vec![d],
            None => (0..10).collect(),
        };
        let mut jobs = Vec::new();
        for &digit in &digits {
            for (i, s) in shards.iter().enumerate() {
                let job = AmlTrainJob {
                    params: AmlTrainParams {
                        digit,
                        batches: self.batches,
                        positives: self.batch_sizes.0,
                        negatives: self.batch_sizes.1,
                        seed: self.seed.wrapping_add(i as u64 * 1000 + digit as u64),
                        shard: i,
                        shards: n,
                    },
                    images: s.images.clone(),
                    labels: s.labels.clone(),
                };
                let label = Label {
                    digit,
                    shard: i,
                    shards: n,
                };
                jobs.push((label, job_bytes::<AmlTrain>(&job)?));
            }
        }
        runner.note(&format!(
            "sending {} AML job(s): {} digit(s) x {n} shard(s) of ~{} images, {} batches of {}+{}",
            jobs.len(),
            digits.len(),
            shards[0].len(),
            self.batches,
            self.batch_sizes.0,
            self.batch_sizes.1
        ));
        let done = runner.run(jobs)?;
        let aggregated = done.len();

        let mut rows = Vec::new();
        let mut per_digit: Vec<Vec<Model>> = vec![Vec::new(); 10];
        for d in &done {
            let bad = |error| SessionError::BadSolution {
                job: d.label.to_string(),
                error,
            };
            let p = Payload::decode(&d.solution).map_err(bad)?;
            p.expect_kind("aml_train").map_err(bad)?;
            let s = AmlModelSolution::from_payload(p).map_err(bad)?;
            if digits.len() == 1 {
                let mut m = s.model.clone();
                aml::calibrate(
                    &mut m,
                    held.images.view(),
                    held.labels.view(),
                    d.label.digit,
                );
                let metrics =
                    aml::evaluate(&m, test.images.view(), test.labels.view(), d.label.digit);
                rows.push(Row::binary(
                    format!("shard {}/{n} ({} images)", d.label.shard + 1, s.info.images),
                    &metrics,
                    Some(d.seconds),
                    format!("{} atoms, by {}", m.len(), d.server),
                ));
            }
            per_digit[d.label.digit as usize].push(s.model);
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));

        let merge = if self.filter_merge {
            "filtered union"
        } else {
            "union"
        };
        let merged: Vec<Model> = digits
            .par_iter()
            .map(|&digit| {
                let positives: Option<Vec<Vec<aml::Bits>>> = self
                    .filter_merge
                    .then(|| shards.iter().map(|s| positive_terms(digit, s)).collect());
                let mut m = aml::merge_shards(&per_digit[digit as usize], positives.as_deref());
                aml::calibrate(&mut m, held.images.view(), held.labels.view(), digit);
                m
            })
            .collect();
        let batches = self.batches;
        let (title, model) = if let [m] = merged.as_slice() {
            let digit = digits[0];
            let metrics = aml::evaluate(m, test.images.view(), test.labels.view(), digit);
            rows.push(Row::binary(
                format!("aggregate ({merge})"),
                &metrics,
                None,
                format!("{} atoms, cutoff {}", m.len(), m.cutoff.unwrap_or(1)),
            ));
            (
                format!(
                    "AML, digit {digit}, {n} shard(s), {batches} batches each (official test set)"
                ),
                TrainedModel::AmlBinary {
                    digit,
                    model: m.clone(),
                },
            )
        } else {
            for (digit, m) in merged.iter().enumerate() {
                let metrics = aml::evaluate(m, test.images.view(), test.labels.view(), digit as u8);
                rows.push(Row::binary(
                    format!("digit {digit} (merged)"),
                    &metrics,
                    None,
                    format!("{} atoms, cutoff {}", m.len(), m.cutoff.unwrap_or(1)),
                ));
            }
            let ovr = OneVsRest { models: merged };
            let predicted = ovr.predict_images(test.images.view());
            let truth = test.labels.as_slice().expect("contiguous labels");
            let metrics = ClassMetrics::from_predictions(&predicted, truth, 10);
            rows.push(Row::classes(
                "aggregate (10-class)".into(),
                &metrics,
                None,
                format!("ten merged one-vs-rest models ({merge})"),
            ));
            (
                format!("AML 10-class, {n} shard(s) x 10 digits, {batches} batches each (official test set)"),
                TrainedModel::AmlTenClass(ovr),
            )
        };
        Ok(TrainReport {
            model_name: "aml",
            digit: self.digit,
            shards: n,
            training_images: train.len(),
            table: Table { title, rows },
            model,
            aggregated,
        })
    }
}

/// The AML terms of a shard's images of `digit`.
fn positive_terms(digit: u8, s: &Mnist) -> Vec<aml::Bits> {
    (0..s.len())
        .filter(|&r| s.labels[r] == digit)
        .map(|r| aml::embedding::term(s.images.row(r).as_slice().expect("row")))
        .collect()
}
