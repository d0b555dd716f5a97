//! A data set in memory: features (bytes of images, or numbers), one target per sample
//! (a class, or a value to regress), and what the classes are called.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

/// What a data set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Predict a class (at most 256 of them).
    Classify,
    /// Predict a number.
    Regress,
}

/// One row of features per sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// Bytes 0-255 (images, as IDX and numpy keep them): AML reads a pixel as on or off, the
    /// MLP scales it to 0..1.
    Pixels(Array2<u8>),
    /// Numbers: AML reads quantile levels, the MLP standardised values.
    Values(Array2<f32>),
}

/// One target per sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Class indices into `names` (the labels as the file spells them, in sorted order).
    Classes {
        /// Class index per sample.
        labels: Array1<u8>,
        /// Name of each class.
        names: Vec<String>,
    },
    /// A value per sample.
    Values(Array1<f32>),
}

/// Samples: features and targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// One row per sample.
    pub features: Features,
    /// The shape of one sample's features (`[28, 28]` for MNIST, `[d]` for a table); the
    /// product is the row width.
    pub sample_shape: Vec<usize>,
    /// One per sample.
    pub target: Target,
}

impl Dataset {
    /// MNIST-like: rows of pixel bytes and digit labels, classes named `0`..`9`.
    pub fn from_pixels(images: Array2<u8>, labels: Array1<u8>, sample_shape: Vec<usize>) -> Self {
        Dataset {
            features: Features::Pixels(images),
            sample_shape,
            target: Target::Classes {
                labels,
                names: (0..10).map(|d| d.to_string()).collect(),
            },
        }
    }

    /// Samples.
    pub fn len(&self) -> usize {
        match &self.features {
            Features::Pixels(x) => x.nrows(),
            Features::Values(x) => x.nrows(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Features per sample.
    pub fn width(&self) -> usize {
        match &self.features {
            Features::Pixels(x) => x.ncols(),
            Features::Values(x) => x.ncols(),
        }
    }

    /// Classification or regression.
    pub fn task(&self) -> Task {
        match self.target {
            Target::Classes { .. } => Task::Classify,
            Target::Values(_) => Task::Regress,
        }
    }

    /// The pixel bytes, if the features are bytes.
    pub fn pixels(&self) -> Option<ArrayView2<'_, u8>> {
        match &self.features {
            Features::Pixels(x) => Some(x.view()),
            Features::Values(_) => None,
        }
    }

    /// Class indices, if this is a classification set.
    pub fn labels(&self) -> Option<ArrayView1<'_, u8>> {
        match &self.target {
            Target::Classes { labels, .. } => Some(labels.view()),
            Target::Values(_) => None,
        }
    }

    /// Class names (empty for regression).
    pub fn class_names(&self) -> &[String] {
        match &self.target {
            Target::Classes { names, .. } => names,
            Target::Values(_) => &[],
        }
    }

    /// Number of classes (0 for regression).
    pub fn classes(&self) -> usize {
        self.class_names().len()
    }

    /// Samples of each class (empty for regression).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes()];
        for &l in self.labels().iter().flatten() {
            if let Some(n) = c.get_mut(l as usize) {
                *n += 1;
            }
        }
        c
    }

    /// The class called `name`, or with that index.
    pub fn class_index(&self, name: &str) -> Option<u8> {
        let names = self.class_names();
        names
            .iter()
            .position(|n| n == name)
            .or_else(|| name.parse::<usize>().ok().filter(|&i| i < names.len()))
            .map(|i| i as u8)
    }

    /// [`class_index`](Self::class_index), or an error listing the classes there are.
    pub fn class_named(&self, name: &str) -> Result<u8, super::DatasetError> {
        self.class_index(name)
            .ok_or_else(|| super::DatasetError::UnknownClass {
                name: name.to_owned(),
                classes: if self.classes() == 0 {
                    "none (the labels are values to regress)".into()
                } else {
                    self.class_names().join(", ")
                },
            })
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            features: match &self.features {
                Features::Pixels(x) => Features::Pixels(x.select(Axis(0), indices)),
                Features::Values(x) => Features::Values(x.select(Axis(0), indices)),
            },
            sample_shape: self.sample_shape.clone(),
            target: match &self.target {
                Target::Classes { labels, names } => Target::Classes {
                    labels: labels.select(Axis(0), indices),
                    names: names.clone(),
                },
                Target::Values(v) => Target::Values(v.select(Axis(0), indices)),
            },
        }
    }

    /// The set as a payload's tensors (e.g. a shard for
    /// `FedAvg::shard` (`amlip-flows`)): `images` U8 `[n, width]` or
    /// `features` F32 `[n, width]`, and `labels` U8 `[n]` or `targets` F32 `[n]`.
    pub fn to_payload(&self) -> crate::payload::Payload {
        use crate::payload::{Payload, Tensor};
        let p = Payload::new("");
        let p = match &self.features {
            Features::Pixels(x) => p.with_tensor("images", Tensor::from_u8(x.view())),
            Features::Values(x) => p.with_tensor("features", Tensor::from_f32(x.view())),
        };
        match &self.target {
            Target::Classes { labels, .. } => {
                p.with_tensor("labels", Tensor::from_u8(labels.view()))
            }
            Target::Values(v) => p.with_tensor("targets", Tensor::from_f32(v.view())),
        }
    }

    /// The first `n` samples (all if fewer).
    pub fn head(&self, n: usize) -> Dataset {
        self.select(&(0..n.min(self.len())).collect::<Vec<_>>())
    }

    /// What a sample is called in reports: "images" for bytes, else "samples".
    pub fn unit(&self) -> &'static str {
        match self.features {
            Features::Pixels(_) => "images",
            Features::Values(_) => "samples",
        }
    }

    /// One line about the set: samples, features, task, classes and their counts.
    pub fn describe(&self) -> String {
        let shape = self
            .sample_shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        let kind = match self.features {
            Features::Pixels(_) => "bytes",
            Features::Values(_) => "numbers",
        };
        let what = match &self.target {
            Target::Classes { names, .. } => {
                let counts = self.class_counts();
                let list: Vec<String> = names
                    .iter()
                    .zip(&counts)
                    .take(12)
                    .map(|(n, c)| format!("{n}: {c}"))
                    .collect();
                let more = if names.len() > 12 { ", ..." } else { "" };
                format!("{} classes ({}{more})", names.len(), list.join(", "))
            }
            Target::Values(v) => {
                let mean = v.mean().unwrap_or(0.0);
                let sd = v.std(0.0);
                format!("regression target (mean {mean:.4}, sd {sd:.4})")
            }
        };
        format!("{} samples of {shape} {kind}, {what}", self.len())
    }
}

impl From<super::Mnist> for Dataset {
    fn from(m: super::Mnist) -> Self {
        Dataset::from_pixels(
            m.images,
            m.labels,
            vec![super::mnist::SIDE, super::mnist::SIDE],
        )
    }
}
