//! Data sets, independent of any transport.
//!
//! - [`data`]: [`Dataset`]: features (image bytes or numbers), classes or values to regress.
//! - [`mod@load`]: [`load()`] / [`load_splits`] / [`load_scored`] from CSV, `.npy`, `.npz`,
//!   safetensors (each maybe gzip'd) or a directory of IDX files, within a memory limit, with [`LoadOptions`].
//! - [`prepare`]: fitted on the training set: [`Quantizer`] (AML levels) and
//!   [`Standardizer`] (MLP inputs).
//! - [`split`]: shards and hold-outs.
//! - [`mnist`]: MNIST's own loader ([`Mnist`], [`load_dir`]).
//! - [`DatasetError`]: every defect, naming the file and the row or tensor.

pub mod data;
pub mod load;
pub mod mnist;
pub mod prepare;
pub mod split;

mod arrays;
mod error;
mod idx;
mod raw;
mod text;

pub use data::{Dataset, Features, Target, Task};
pub use error::DatasetError;
pub use load::{load, load_scored, load_splits, Format, LoadOptions, Splits};
pub use mnist::{load_dir, Mnist, MnistSplits};
pub use prepare::{Quantizer, Standardizer};
pub use raw::{default_memory_limit, MAX_CLASSES};
pub use split::{hold_out, shard, shard_indices, Sharding};

/// Where the repository keeps MNIST, relative to the workspace root.
pub const MNIST_DIR: &str = "datasets/mnist";
