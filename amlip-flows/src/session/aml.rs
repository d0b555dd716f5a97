//! AML on shards of a data set: one `aml_train` job per shard (per class for the multi-class
//! classifier), the shards' models merged by union, the cutoff calibrated on a hold-out, and
//! every model evaluated on the test set. Image bytes are read as pixels on or off (MNIST's
//! embedding); numeric features as quantile levels fitted on the training set.

use std::fmt;

use rayon::prelude::*;

use super::{Row, Runner, Score, SessionError, Table, TrainPoint, TrainReport, TrainedModel};
use crate::aml::{self, ClassMetrics, Embedding, Model, OneVsRest};
use crate::dataset::{self, Dataset, Features, Quantizer, Sharding};
use crate::kind::aml_train::{AmlModelSolution, AmlTrain, AmlTrainJob, AmlTrainParams};
use crate::kind::{job_bytes, Message};
use crate::payload::Payload;

/// How to train AML classifiers on shards.
#[derive(Debug, Clone)]
pub struct AmlShards {
    /// The binary classifier "is it this class?" (a class index); `None`: the multi-class
    /// classifier (one-vs-rest per class).
    pub digit: Option<u8>,
    /// Levels each numeric feature is cut into (quantiles of the training set); image bytes
    /// ignore it (on or off at 10% brightness).
    pub levels: u8,
    /// How the report names the test set.
    pub test_set: String,
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
            levels: 8,
            test_set: "official test set".into(),
            shards: 3,
            batches: 10,
            batch_sizes: (100, 900),
            filter_merge: false,
            holdout: 0.1,
            seed: 1,
        }
    }
}

/// A job of the session: which class, which shard.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Label {
    digit: u8,
    name: String,
    shard: usize,
    shards: usize,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} shard {}/{}", self.name, self.shard + 1, self.shards)
    }
}

/// The training and test sets as rows of bytes for the embedding: image bytes as they are,
/// numbers as quantile levels fitted on `train`.
fn as_bytes(
    train: &Dataset,
    test: &Dataset,
    levels: u8,
) -> (Dataset, Dataset, Embedding, Option<Quantizer>) {
    match (&train.features, &test.features) {
        (Features::Values(x), Features::Values(t)) => {
            let q = Quantizer::fit(x.view(), levels.max(1));
            let emb = Embedding::levels(train.width(), q.levels());
            let bytes = |d: &Dataset, v: &ndarray::Array2<f32>| Dataset {
                features: Features::Pixels(q.apply(v.view())),
                ..d.clone()
            };
            (bytes(train, x), bytes(test, t), emb, Some(q))
        }
        _ => (
            train.clone(),
            test.clone(),
            Embedding::pixels(train.width()),
            None,
        ),
    }
}

/// What the report calls class `c`: `digit 3` for MNIST's digits, else `class "name"`.
pub(super) fn class_name(data: &Dataset, c: u8) -> String {
    let names = data.class_names();
    let digits = names.len() == 10 && names.iter().enumerate().all(|(i, n)| *n == i.to_string());
    match names.get(c as usize) {
        Some(n) if !digits => format!("class {n}"),
        _ => format!("digit {c}"),
    }
}

impl AmlShards {
    /// Trains on `train` across the runner's computing nodes and evaluates on `test`.
    pub fn run(
        &self,
        runner: &mut Runner<'_>,
        train: &Dataset,
        test: &Dataset,
    ) -> Result<TrainReport, SessionError> {
        let what = match self.digit {
            Some(d) => class_name(train, d),
            None => format!("{}-class", train.classes()),
        };
        let name = format!("AML {what} on {} shard(s)", self.shards);
        runner.named(
            ("aml", &name, "round", 1),
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
        super::check_shards("AML", n, train)?;
        if train.classes() == 0 || test.classes() != train.classes() {
            return Err(SessionError::Config(
                "AML classifies: it needs class labels (for values to predict, train the MLP)"
                    .into(),
            ));
        }
        let classes = train.classes();
        if let Some(d) = self.digit.filter(|&d| d as usize >= classes) {
            return Err(SessionError::Config(format!(
                "class {d} is not one of the {classes} classes ({})",
                train.class_names().join(", ")
            )));
        }
        let (train_b, test, emb, quantizer) = as_bytes(train, test, self.levels);
        let test = &test;
        let (test_x, test_y) = (
            test.pixels().expect("bytes"),
            test.labels().expect("classes"),
        );
        let (rest, held) = dataset::hold_out(&train_b, self.holdout, self.seed);
        let (held_x, held_y) = (
            held.pixels().expect("bytes"),
            held.labels().expect("classes"),
        );
        let shards = dataset::shard(&rest, n, Sharding::Stratified, self.seed);
        let digits: Vec<u8> = match self.digit {
            Some(d) => vec![d],
            None => (0..classes as u8).collect(),
        };
        let cuts = quantizer.is_some().then(|| emb.cuts.clone());
        let mut jobs = Vec::new();
        for &digit in &digits {
            for (i, s) in shards.iter().enumerate() {
                let job = AmlTrainJob {
                    params: AmlTrainParams {
                        digit,
                        classes: classes as u16,
                        cuts: cuts.clone(),
                        batches: self.batches,
                        positives: self.batch_sizes.0,
                        negatives: self.batch_sizes.1,
                        seed: self.seed.wrapping_add(i as u64 * 1000 + digit as u64),
                        shard: i,
                        shards: n,
                    },
                    images: s.pixels().expect("bytes").to_owned(),
                    labels: s.labels().expect("classes").to_owned(),
                };
                let label = Label {
                    digit,
                    name: class_name(train, digit),
                    shard: i,
                    shards: n,
                };
                jobs.push((label, job_bytes::<AmlTrain>(&job)?));
            }
        }
        runner.note(&format!(
            "sending {} AML job(s): {} class(es) x {n} shard(s) of ~{} samples, {} batches of {}+{}",
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
        let mut per_digit: Vec<Vec<Model>> = vec![Vec::new(); classes];
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
                aml::calibrate(&mut m, &emb, held_x, held_y, d.label.digit);
                let metrics = aml::evaluate(&m, &emb, test_x, test_y, d.label.digit);
                rows.push(Row::binary(
                    format!(
                        "shard {}/{n} ({} {})",
                        d.label.shard + 1,
                        s.info.images,
                        train.unit()
                    ),
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
                let positives: Option<Vec<Vec<aml::Bits>>> = self.filter_merge.then(|| {
                    shards
                        .iter()
                        .map(|s| positive_terms(&emb, digit, s))
                        .collect()
                });
                let mut m = aml::merge_shards(&per_digit[digit as usize], positives.as_deref());
                aml::calibrate(&mut m, &emb, held_x, held_y, digit);
                m
            })
            .collect();
        let batches = self.batches;
        let (title, model) = if let [m] = merged.as_slice() {
            let digit = digits[0];
            let metrics = aml::evaluate(m, &emb, test_x, test_y, digit);
            rows.push(Row::binary(
                format!("aggregate ({merge})"),
                &metrics,
                None,
                format!("{} atoms, cutoff {}", m.len(), m.cutoff.unwrap_or(1)),
            ));
            (
                format!(
                    "AML, {}, {n} shard(s), {batches} batches each ({})",
                    class_name(train, digit),
                    self.test_set
                ),
                TrainedModel::AmlBinary {
                    digit,
                    model: m.clone(),
                },
            )
        } else {
            for (digit, m) in merged.iter().enumerate() {
                let metrics = aml::evaluate(m, &emb, test_x, test_y, digit as u8);
                rows.push(Row::binary(
                    format!("{} (merged)", class_name(train, digit as u8)),
                    &metrics,
                    None,
                    format!("{} atoms, cutoff {}", m.len(), m.cutoff.unwrap_or(1)),
                ));
            }
            let ovr = OneVsRest { models: merged };
            let predicted = ovr.predict_images(&emb, test_x);
            let truth = test_y.as_slice().expect("contiguous labels");
            let metrics = ClassMetrics::from_predictions(&predicted, truth, classes);
            let what = if class_name(train, 0).starts_with("digit") {
                "digits"
            } else {
                "classes"
            };
            rows.push(Row::classes(
                format!("aggregate ({classes}-class)"),
                &metrics,
                None,
                format!("{} merged one-vs-rest models ({merge})", words(classes)),
            ));
            (
                format!(
                    "AML {classes}-class, {n} shard(s) x {classes} {what}, {batches} batches each ({})",
                    self.test_set
                ),
                TrainedModel::AmlTenClass(ovr),
            )
        };
        // One round: each shard's model (binary classifiers) and the aggregate (the last row).
        let last = rows.len().saturating_sub(1);
        for (i, r) in rows.iter().enumerate() {
            let shard = r
                .name
                .strip_prefix("shard ")
                .and_then(|s| s.split('/').next()?.parse::<usize>().ok())
                .map(|k| k - 1);
            if let (Score::Classes { accuracy, .. }, true) = (r.score, shard.is_some() || i == last)
            {
                runner.progress(TrainPoint {
                    round: 1,
                    rounds: 1,
                    shard,
                    loss: None,
                    accuracy: Some(accuracy),
                    mse: None,
                    seconds: 0.0,
                });
            }
        }
        let mut data = super::data_json(train);
        data["embedding"] = serde_json::to_value(&emb).expect("serialises");
        if let Some(q) = &quantizer {
            data["quantizer"] = serde_json::to_value(q).expect("serialises");
        }
        Ok(TrainReport {
            data,
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

/// The AML terms of a shard's rows of class `digit`.
fn positive_terms(emb: &Embedding, digit: u8, s: &Dataset) -> Vec<aml::Bits> {
    let (x, y) = (s.pixels().expect("bytes"), s.labels().expect("classes"));
    (0..s.len())
        .filter(|&r| y[r] == digit)
        .map(|r| emb.term(x.row(r).as_slice().expect("row")))
        .collect()
}

/// "ten" for 10 (the MNIST table's wording), else the number.
fn words(n: usize) -> String {
    if n == 10 {
        "ten".into()
    } else {
        n.to_string()
    }
}
