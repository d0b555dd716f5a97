//! Data sets, independent of any transport: MNIST loading and validation, shards, hold-outs.

pub mod mnist;
pub mod split;

pub use mnist::{load_dir, DatasetError, Mnist, MnistSplits};
pub use split::{hold_out, shard, shard_indices, Sharding};

/// Where the repository keeps MNIST, relative to the workspace root.
pub const MNIST_DIR: &str = "datasets/mnist";
