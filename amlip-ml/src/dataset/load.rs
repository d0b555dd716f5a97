//! Loading a data set from a file or a directory: the format from the name (or named), the
//! test set from a file, the directory, or a stratified split.

use std::path::{Path, PathBuf};

use super::raw::{self, default_memory_limit};
use super::{arrays, idx, text, Dataset, DatasetError, Target, Task};

/// A file format amlip reads data from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma- (or, for `.tsv`, tab-) separated values.
    Csv,
    /// One numpy array: a table whose label is one of its columns.
    Npy,
    /// A numpy archive of named arrays.
    Npz,
    /// A safetensors file of named tensors.
    Safetensors,
    /// A directory of IDX files: `train-images*` and `train-labels*`, and the test set as
    /// `t10k-*` or `test-*` (MNIST's layout; images of any shape).
    IdxDir,
}

impl Format {
    /// The format of `path` from its name (`.gz` ignored) or, for a directory, IDX.
    pub fn detect(path: &Path) -> Option<Format> {
        if path.is_dir() {
            return Some(Format::IdxDir);
        }
        let name = path.file_name()?.to_string_lossy().to_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit('.').next()?;
        Some(match ext {
            "csv" | "tsv" | "txt" => Format::Csv,
            "npy" => Format::Npy,
            "npz" => Format::Npz,
            "safetensors" | "st" => Format::Safetensors,
            _ => return None,
        })
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_lowercase().as_str() {
            "csv" | "tsv" => Format::Csv,
            "npy" => Format::Npy,
            "npz" => Format::Npz,
            "safetensors" => Format::Safetensors,
            "idx" => Format::IdxDir,
            _ => {
                return Err(format!(
                    "unknown format {s:?} (csv, npy, npz, safetensors or idx)"
                ))
            }
        })
    }
}

/// How to read a data set.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The format; `None`: from the file name.
    pub format: Option<Format>,
    /// The label: a CSV column's name or 0-based index, a `.npy` column's index, or a tensor's
    /// name; `None`: the last column, or a tensor called `labels`, `label`, `y`, `targets` or
    /// `target`.
    pub label: Option<String>,
    /// The features tensor of a `.npz` or safetensors file; `None`: one called `features`,
    /// `x`, `X`, `images`, `data` or `inputs`, or the only one left.
    pub features: Option<String>,
    /// Classification or regression; `None`: text and whole-number labels are classes,
    /// fractional ones values.
    pub task: Option<Task>,
    /// Whether a CSV's first row names the columns; `None`: guessed (it does if a cell of it
    /// is text above a number, or it holds the label's name).
    pub header: Option<bool>,
    /// The most bytes a file (or its arrays) may take in memory; a larger one is an error
    /// instead of a machine swapping or killed. Default: half of the available memory.
    pub max_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            format: None,
            label: None,
            features: None,
            task: None,
            header: None,
            max_bytes: default_memory_limit(),
        }
    }
}

/// A training set and the test set it is judged on.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Trained on.
    pub train: Dataset,
    /// Evaluated on (classes numbered as in `train`).
    pub test: Dataset,
    /// Where the test set came from, for reports.
    pub test_source: String,
}

/// Reads one data set from a file (a directory: its training set).
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset, DatasetError> {
    match format_of(path, opts)? {
        Format::Csv => text::read(path, opts),
        Format::Npy => arrays::read_npy(path, opts),
        Format::Npz => arrays::read_npz(path, opts),
        Format::Safetensors => arrays::read_safetensors(path, opts),
        Format::IdxDir => idx_pair(path, "train", opts),
    }
}

/// Reads labelled data to score a model on: a file as [`load`] reads it, a directory's test
/// files (classes numbered as in its training files); the first `limit` samples if given.
pub fn load_scored(
    path: &Path,
    opts: &LoadOptions,
    limit: Option<usize>,
) -> Result<Dataset, DatasetError> {
    let data = if path.is_dir() {
        load_splits(path, None, 0.2, 1, opts)?.test
    } else {
        load(path, opts)?
    };
    Ok(match limit {
        Some(n) if n < data.len() => data.head(n),
        _ => data,
    })
}

/// Reads a training set and its test set: from `test` if given, else from the directory's
/// test files, else by holding out a stratified `test_split` of the data (seeded).
pub fn load_splits(
    path: &Path,
    test: Option<&Path>,
    test_split: f64,
    seed: u64,
    opts: &LoadOptions,
) -> Result<Splits, DatasetError> {
    let data = load(path, opts)?;
    if let [only] = data.class_names() {
        return Err(DatasetError::Format {
            path: path.to_owned(),
            what: format!(
                "every sample has the label {only:?}: a classifier needs at least two classes"
            ),
        });
    }
    if let Some(t) = test {
        let mut test = load(t, opts)?;
        align_classes(&mut test, &data, t)?;
        return Ok(Splits {
            train: data,
            test,
            test_source: t.display().to_string(),
        });
    }
    if format_of(path, opts)? == Format::IdxDir {
        if let Some(prefix) = ["t10k", "test"]
            .into_iter()
            .find(|p| find_idx(path, p, "images").is_ok())
        {
            let mut test = idx_pair(path, prefix, opts)?;
            align_classes(&mut test, &data, path)?;
            return Ok(Splits {
                train: data,
                test,
                test_source: format!("{} ({prefix} files)", path.display()),
            });
        }
    }
    if !(test_split > 0.0 && test_split < 1.0) {
        return Err(DatasetError::Format {
            path: path.to_owned(),
            what: format!("no test set: give a test file, or a split in (0, 1) (got {test_split})"),
        });
    }
    let (train, test) = super::split::hold_out(&data, test_split, seed ^ 0x7e57);
    if train.is_empty() || test.is_empty() {
        return Err(DatasetError::Format {
            path: path.to_owned(),
            what: format!(
                "{} samples are too few to hold out {test_split} of them for testing",
                data.len()
            ),
        });
    }
    Ok(Splits {
        train,
        test,
        test_source: format!("{:.0}% held out of {}", test_split * 100.0, path.display()),
    })
}

fn format_of(path: &Path, opts: &LoadOptions) -> Result<Format, DatasetError> {
    if !path.exists() {
        return Err(DatasetError::Format {
            path: path.to_owned(),
            what: "no such file or directory".into(),
        });
    }
    opts.format
        .or_else(|| Format::detect(path))
        .ok_or_else(|| DatasetError::Format {
            path: path.to_owned(),
            what: "cannot tell the format from the name (.csv, .tsv, .npy, .npz, .safetensors, optionally .gz, or a directory of IDX files); name it with --format".into(),
        })
}

/// Numbers `test`'s classes as `train`'s.
fn align_classes(test: &mut Dataset, train: &Dataset, source: &Path) -> Result<(), DatasetError> {
    let (
        Target::Classes { labels, names },
        Target::Classes {
            names: train_names, ..
        },
    ) = (&mut test.target, &train.target)
    else {
        if test.task() != train.task() {
            return Err(DatasetError::Format {
                path: source.to_owned(),
                what: "the test set's labels are of another kind than the training set's (classes and numbers); pass --task".into(),
            });
        }
        return Ok(());
    };
    let mut map = Vec::with_capacity(names.len());
    for n in names.iter() {
        match train_names.iter().position(|t| t == n) {
            Some(i) => map.push(i as u8),
            None => {
                return Err(DatasetError::Format {
                    path: source.to_owned(),
                    what: format!(
                        "the test set has class {n:?}, which the training set does not ({})",
                        train_names.join(", ")
                    ),
                })
            }
        }
    }
    labels.mapv_inplace(|l| map[l as usize]);
    *names = train_names.clone();
    if test.width() != train.width() {
        return Err(DatasetError::Format {
            path: source.to_owned(),
            what: format!(
                "test samples have {} features, training samples {}",
                test.width(),
                train.width()
            ),
        });
    }
    Ok(())
}

fn find_idx(dir: &Path, prefix: &str, what: &str) -> Result<PathBuf, DatasetError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| DatasetError::Io {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with(&format!("{prefix}-{what}")))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .ok_or_else(|| DatasetError::Missing {
            dir: dir.to_owned(),
            which: format!("{prefix} {what}"),
            tried: format!("{prefix}-{what}*"),
        })
}

fn idx_pair(dir: &Path, prefix: &str, opts: &LoadOptions) -> Result<Dataset, DatasetError> {
    let images = find_idx(dir, prefix, "images")?;
    let labels = find_idx(dir, prefix, "labels")?;
    let x = idx::read(&images, opts.max_bytes)?;
    let y = idx::read(&labels, opts.max_bytes)?;
    if x.shape.first() != y.shape.first() {
        return Err(DatasetError::CountMismatch {
            images: images.clone(),
            n_images: x.shape.first().copied().unwrap_or(0),
            labels,
            n_labels: y.shape.first().copied().unwrap_or(0),
        });
    }
    raw::assemble(&images, x, y, opts.task)
}
