//! What a training session returns: a results table, the model, and how to save both.

use std::fmt;
use std::path::Path;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::aml::{ClassMetrics, Metrics, Model, OneVsRest};
use crate::kind::federated::{with_weights, FedModel};
use crate::mlp::Mlp;
use crate::payload::{Payload, PayloadError, Tensor};

/// One row of a results table: a model (a shard's, or the aggregate) on the test set.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What the row is.
    pub name: String,
    /// Fraction classified right.
    pub accuracy: f64,
    /// Mean of per-class recall (binary: of TPR and TNR).
    pub balanced: f64,
    /// False positive rate.
    pub fpr: f64,
    /// False negative rate.
    pub fnr: f64,
    /// Training time, for a shard's row.
    pub seconds: Option<f64>,
    /// Anything else worth a note (atoms, loss, who trained it).
    pub detail: String,
}

impl Row {
    /// A binary classifier's row.
    pub fn binary(name: String, m: &Metrics, seconds: Option<f64>, detail: String) -> Self {
        Row {
            name,
            accuracy: m.accuracy(),
            balanced: m.balanced_accuracy(),
            fpr: m.fpr(),
            fnr: m.fnr(),
            seconds,
            detail,
        }
    }

    /// A multi-class classifier's row.
    pub fn classes(name: String, m: &ClassMetrics, seconds: Option<f64>, detail: String) -> Self {
        Row {
            name,
            accuracy: m.accuracy,
            balanced: m.balanced_accuracy,
            fpr: m.fpr,
            fnr: m.fnr,
            seconds,
            detail,
        }
    }

    /// The row as JSON.
    pub fn json(&self) -> Value {
        json!({"name": self.name, "accuracy": self.accuracy, "balanced_accuracy": self.balanced,
               "fpr": self.fpr, "fnr": self.fnr, "seconds": self.seconds, "detail": self.detail})
    }
}

/// A titled results table; its `Display` is the table `main-node train` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// What was trained, how, evaluated where.
    pub title: String,
    /// Shards' rows, then the aggregate's.
    pub rows: Vec<Row>,
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        writeln!(
            f,
            "{:<26} {:>9} {:>9} {:>7} {:>7} {:>9}",
            "", "accuracy", "bal. acc", "FPR", "FNR", "time (s)"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<26} {:>9.4} {:>9.4} {:>7.4} {:>7.4} {:>9}  {}",
                r.name,
                r.accuracy,
                r.balanced,
                r.fpr,
                r.fnr,
                r.seconds.map_or("".into(), |s| format!("{s:.2}")),
                r.detail
            )?;
        }
        Ok(())
    }
}

/// A trained model, ready to save.
#[derive(Debug, Clone)]
pub enum TrainedModel {
    /// An AML binary classifier for one digit.
    AmlBinary {
        /// The digit.
        digit: u8,
        /// The merged, calibrated model.
        model: Model,
    },
    /// Ten AML one-vs-rest classifiers.
    AmlTenClass(OneVsRest),
    /// The neural network.
    Mlp(Mlp),
}

impl TrainedModel {
    /// The model's file: AML binary classifiers to `.json` are AML-IP's tutorial JSON form;
    /// everything else is an amlip payload (safetensors) of kind `aml_classifier`,
    /// `aml_ten_class` or `mlp_model`, readable from Python.
    pub fn file_bytes(&self, path: &Path) -> Result<Bytes, PayloadError> {
        let json_wanted = path.extension().is_some_and(|e| e == "json");
        match self {
            TrainedModel::AmlBinary { model, .. } if json_wanted => {
                Ok(Bytes::from(model.to_json()))
            }
            TrainedModel::AmlBinary { digit, model } => {
                let bytes = Tensor::from_u8(ndarray::Array1::from(model.to_bytes()).view());
                Payload::new("aml_classifier")
                    .with_params(&json!({"digit": digit, "cutoff": model.cutoff}))?
                    .with_tensor("model", bytes)
                    .encode()
            }
            TrainedModel::AmlTenClass(ovr) => {
                let cutoffs: Vec<_> = ovr.models.iter().map(|m| m.cutoff).collect();
                let mut p =
                    Payload::new("aml_ten_class").with_params(&json!({"cutoffs": cutoffs}))?;
                for (d, m) in ovr.models.iter().enumerate() {
                    let t = Tensor::from_u8(ndarray::Array1::from(m.to_bytes()).view());
                    p.insert(&format!("digit{d}"), t);
                }
                p.encode()
            }
            TrainedModel::Mlp(m) => with_weights(Payload::new("mlp_model"), &m.weights()).encode(),
        }
    }

    /// Writes the model's file (see [`file_bytes`](Self::file_bytes)).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = self
            .file_bytes(path)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::write(path, bytes)
    }
}

/// What a training session returns.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// `aml` or `mlp`.
    pub model_name: &'static str,
    /// The digit of a binary classifier.
    pub digit: Option<u8>,
    /// Shards trained on.
    pub shards: usize,
    /// Training images (before the hold-out).
    pub training_images: usize,
    /// The results table.
    pub table: Table,
    /// The trained model.
    pub model: TrainedModel,
    /// Solutions aggregated into it.
    pub aggregated: usize,
}

impl TrainReport {
    /// The report as JSON, with the main's job counts and the wall time.
    pub fn json(&self, stats: &crate::protocol::client::ClientStats, wall_seconds: f64) -> Value {
        json!({
            "model": self.model_name,
            "digit": self.digit,
            "jobs": self.shards,
            "training_images": self.training_images,
            "rows": self.table.rows.iter().map(Row::json).collect::<Vec<_>>(),
            "aggregate": self.table.rows.last().map(Row::json),
            "jobs_sent": stats.submitted,
            "solved": stats.solved,
            "resent": stats.resent,
            "duplicates_dropped": stats.duplicates_dropped,
            "aggregated": self.aggregated,
            "wall_seconds": wall_seconds,
        })
    }
}
