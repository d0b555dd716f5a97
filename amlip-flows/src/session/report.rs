//! What a training session returns: a results table, the model, and how to save both.

use std::fmt;
use std::path::Path;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::aml::{ClassMetrics, Metrics, Model, OneVsRest};
use crate::kind::federated::{with_weights, FedModel};
use crate::mlp::Mlp;
use crate::payload::{Payload, PayloadError, Tensor};

/// How well a model did on the test set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Score {
    /// A classifier's metrics (multi-class ones macro-averaged over classes).
    Classes {
        /// Fraction classified right.
        accuracy: f64,
        /// Mean of per-class recall (binary: of TPR and TNR).
        balanced: f64,
        /// False positive rate.
        fpr: f64,
        /// False negative rate.
        fnr: f64,
    },
    /// A regression's errors, in the target's units.
    Regression {
        /// Mean squared error.
        mse: f64,
        /// Mean absolute error.
        mae: f64,
    },
}

/// One row of a results table: a model (a shard's, or the aggregate) on the test set.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What the row is.
    pub name: String,
    /// How it did.
    pub score: Score,
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
            score: Score::Classes {
                accuracy: m.accuracy(),
                balanced: m.balanced_accuracy(),
                fpr: m.fpr(),
                fnr: m.fnr(),
            },
            seconds,
            detail,
        }
    }

    /// A multi-class classifier's row.
    pub fn classes(name: String, m: &ClassMetrics, seconds: Option<f64>, detail: String) -> Self {
        Row {
            name,
            score: Score::Classes {
                accuracy: m.accuracy,
                balanced: m.balanced_accuracy,
                fpr: m.fpr,
                fnr: m.fnr,
            },
            seconds,
            detail,
        }
    }

    /// A regression's row, from predictions and true values.
    pub fn regression(
        name: String,
        predicted: &[f32],
        truth: &[f32],
        seconds: Option<f64>,
        detail: String,
    ) -> Self {
        let (mse, mae) = errors(predicted, truth);
        Row {
            name,
            score: Score::Regression { mse, mae },
            seconds,
            detail,
        }
    }

    /// The row as JSON.
    pub fn json(&self) -> Value {
        let mut v = match self.score {
            Score::Classes {
                accuracy,
                balanced,
                fpr,
                fnr,
            } => {
                json!({"accuracy": accuracy, "balanced_accuracy": balanced, "fpr": fpr, "fnr": fnr})
            }
            Score::Regression { mse, mae } => json!({"mse": mse, "mae": mae}),
        };
        v["name"] = json!(self.name);
        v["seconds"] = json!(self.seconds);
        v["detail"] = json!(self.detail);
        v
    }
}

/// Mean squared and mean absolute error.
pub fn errors(predicted: &[f32], truth: &[f32]) -> (f64, f64) {
    let n = truth.len().max(1) as f64;
    let (mut se, mut ae) = (0.0, 0.0);
    for (p, t) in predicted.iter().zip(truth) {
        let e = (*p - *t) as f64;
        se += e * e;
        ae += e.abs();
    }
    (se / n, ae / n)
}

/// A titled results table; its `Display` is the table `main-node train` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// What was trained, how, evaluated where.
    pub title: String,
    /// Shards' rows, then the aggregate's.
    pub rows: Vec<Row>,
}

impl Table {
    /// The last row (the aggregate) in one line, its figures as the table prints them: what a
    /// status view shows as the session's result.
    pub fn final_line(&self) -> String {
        let Some(r) = self.rows.last() else {
            return "no result".into();
        };
        match r.score {
            Score::Classes {
                accuracy,
                balanced,
                fpr,
                fnr,
            } => format!(
                "{}: accuracy {accuracy:.4}, bal. acc {balanced:.4}, FPR {fpr:.4}, FNR {fnr:.4}",
                r.name
            ),
            Score::Regression { mse, mae } => format!("{}: MSE {mse:.5}, MAE {mae:.5}", r.name),
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        let regression = self
            .rows
            .first()
            .is_some_and(|r| matches!(r.score, Score::Regression { .. }));
        if regression {
            writeln!(
                f,
                "{:<26} {:>11} {:>11} {:>9}",
                "", "MSE", "MAE", "time (s)"
            )?;
        } else {
            writeln!(
                f,
                "{:<26} {:>9} {:>9} {:>7} {:>7} {:>9}",
                "", "accuracy", "bal. acc", "FPR", "FNR", "time (s)"
            )?;
        }
        for r in &self.rows {
            let time = r.seconds.map_or("".into(), |s| format!("{s:.2}"));
            match r.score {
                Score::Classes {
                    accuracy,
                    balanced,
                    fpr,
                    fnr,
                } => writeln!(
                    f,
                    "{:<26} {accuracy:>9.4} {balanced:>9.4} {fpr:>7.4} {fnr:>7.4} {time:>9}  {}",
                    r.name, r.detail
                )?,
                Score::Regression { mse, mae } => writeln!(
                    f,
                    "{:<26} {mse:>11.5} {mae:>11.5} {time:>9}  {}",
                    r.name, r.detail
                )?,
            }
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
    /// AML one-vs-rest classifiers, one per class (ten for MNIST).
    AmlTenClass(OneVsRest),
    /// The neural network.
    Mlp(Mlp),
}

/// The payload of a model file, with what the model needs to read new data (`data`: class
/// names, quantizer, standardisation) in its parameters.
fn with_data(p: Payload, params: Value, data: &Value) -> Result<Payload, PayloadError> {
    let mut params = params;
    if !data.is_null() {
        params["data"] = data.clone();
    }
    p.with_params(&params)
}

impl TrainedModel {
    /// The model's file: AML binary classifiers to `.json` are AML-IP's tutorial JSON form;
    /// everything else is an amlip payload (safetensors) of kind `aml_classifier`,
    /// `aml_ten_class` or `mlp_model`, readable from Python.
    pub fn file_bytes(&self, path: &Path) -> Result<Bytes, PayloadError> {
        self.file_bytes_with(path, &Value::Null)
    }

    /// [`file_bytes`](Self::file_bytes) with `data` (how to prepare new samples: class
    /// names, quantizer, standardisation) in the payload's parameters.
    pub fn file_bytes_with(&self, path: &Path, data: &Value) -> Result<Bytes, PayloadError> {
        let json_wanted = path.extension().is_some_and(|e| e == "json");
        match self {
            TrainedModel::AmlBinary { model, .. } if json_wanted => {
                Ok(Bytes::from(model.to_json()))
            }
            TrainedModel::AmlBinary { digit, model } => {
                let bytes = Tensor::from_u8(ndarray::Array1::from(model.to_bytes()).view());
                let params = json!({"digit": digit, "cutoff": model.cutoff});
                with_data(Payload::new("aml_classifier"), params, data)?
                    .with_tensor("model", bytes)
                    .encode()
            }
            TrainedModel::AmlTenClass(ovr) => {
                let cutoffs: Vec<_> = ovr.models.iter().map(|m| m.cutoff).collect();
                let params = json!({"cutoffs": cutoffs});
                let mut p = with_data(Payload::new("aml_ten_class"), params, data)?;
                for (d, m) in ovr.models.iter().enumerate() {
                    let t = Tensor::from_u8(ndarray::Array1::from(m.to_bytes()).view());
                    p.insert(&format!("digit{d}"), t);
                }
                p.encode()
            }
            TrainedModel::Mlp(m) => {
                let p = with_data(Payload::new("mlp_model"), json!({}), data)?;
                with_weights(p, &m.weights()).encode()
            }
        }
    }

    /// Writes the model's file (see [`file_bytes`](Self::file_bytes)).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        self.save_with(path, &Value::Null)
    }

    /// Writes the model's file with `data` (see [`file_bytes_with`](Self::file_bytes_with)).
    pub fn save_with(&self, path: &Path, data: &Value) -> std::io::Result<()> {
        let bytes = self
            .file_bytes_with(path, data)
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
    /// The training data as the model needs to know it (class names, features, and the
    /// quantizer or standardisation fitted on it), written into model files.
    pub data: Value,
}

impl TrainReport {
    /// Writes the model's file, with [`data`](Self::data) in it.
    pub fn save_model(&self, path: &Path) -> std::io::Result<()> {
        self.model.save_with(path, &self.data)
    }
}

impl TrainReport {
    /// The report as JSON, with the main's job counts and the wall time.
    pub fn json(&self, stats: &crate::node::ClientStats, wall_seconds: f64) -> Value {
        json!({
            "model": self.model_name,
            "digit": self.digit,
            "jobs": self.shards,
            "training_images": self.training_images,
            "data": self.data,
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
