//! Why a data set could not be loaded: every error names the file and what is wrong.

use std::path::PathBuf;

/// Why a data set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A class asked for by name that the data does not have.
    #[error("the classes are {classes}; no class {name:?}")]
    UnknownClass {
        /// The name asked for.
        name: String,
        /// The data's classes, listed.
        classes: String,
    },
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `.gz` file is not gzip.
    #[error("{path}: not a valid gzip stream: {source}")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not an IDX file of the expected kind.
    #[error("{path}: magic number {found} (expected {expected}: {what})")]
    Magic {
        /// The file.
        path: PathBuf,
        /// Its magic number.
        found: u32,
        /// The one expected.
        expected: u32,
        /// What that one means.
        what: &'static str,
    },
    /// Shorter than its header says.
    #[error("{path}: truncated: {what}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// Anything else wrong with its contents.
    #[error("{path}: {what}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A file of the set is not there.
    #[error("no {which} file in {dir} (looked for {tried})")]
    Missing {
        /// The directory.
        dir: PathBuf,
        /// Which file.
        which: String,
        /// The names tried.
        tried: String,
    },
    /// A row of a table is wrong (1-based line number in the file).
    #[error("{path}: line {line}: {what}")]
    Row {
        /// The file.
        path: PathBuf,
        /// Its line.
        line: u64,
        /// What is wrong.
        what: String,
    },
    /// A tensor or array of the file is wrong.
    #[error("{path}: {tensor}: {what}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name (or `array` in a `.npy`).
        tensor: String,
        /// What is wrong.
        what: String,
    },
    /// The data would not fit in the memory allowed.
    #[error("{path}: {what} needs {needed} bytes, more than the {limit} bytes allowed (LoadOptions::max_bytes; by default half the available memory)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What it holds.
        what: String,
        /// Bytes it would take.
        needed: u64,
        /// Bytes allowed.
        limit: u64,
    },
    /// The file's format is not one amlip reads, or the options do not fit it.
    #[error("{path}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Images and labels do not pair up.
    #[error("{images} holds {n_images} samples but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// Images in it.
        n_images: usize,
        /// The labels file.
        labels: PathBuf,
        /// Labels in it.
        n_labels: usize,
    },
}
