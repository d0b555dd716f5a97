//! Splitting a data set: shards (random or stratified by label) and a calibration hold-out.
//! Deterministic for a given seed.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::mnist::Mnist;

/// How to deal rows into shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharding {
    /// Shuffled, then cut into equal parts.
    Random,
    /// Each label's rows shuffled and dealt in turn, so every shard has the same label mix.
    Stratified,
}

/// Row indices of `k` shards of `data` (every row in exactly one shard).
pub fn shard_indices(data: &Mnist, k: usize, how: Sharding, seed: u64) -> Vec<Vec<usize>> {
    let k = k.max(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shards = vec![Vec::new(); k];
    match how {
        Sharding::Random => {
            let mut idx: Vec<usize> = (0..data.len()).collect();
            idx.shuffle(&mut rng);
            for (i, row) in idx.into_iter().enumerate() {
                shards[i % k].push(row);
            }
        }
        Sharding::Stratified => {
            let mut next = 0;
            for label in 0..10u8 {
                let mut idx: Vec<usize> = (0..data.len())
                    .filter(|&i| data.labels[i] == label)
                    .collect();
                idx.shuffle(&mut rng);
                for row in idx {
                    shards[next % k].push(row);
                    next += 1;
                }
            }
            for s in &mut shards {
                s.shuffle(&mut rng);
            }
        }
    }
    shards
}

/// The `k` shards themselves.
pub fn shard(data: &Mnist, k: usize, how: Sharding, seed: u64) -> Vec<Mnist> {
    shard_indices(data, k, how, seed)
        .iter()
        .map(|idx| data.select(idx))
        .collect()
}

/// Splits off a stratified `fraction` of `data` for calibration: (rest, held out).
pub fn hold_out(data: &Mnist, fraction: f64, seed: u64) -> (Mnist, Mnist) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_ca1b);
    let mut keep = Vec::new();
    let mut held = Vec::new();
    for label in 0..10u8 {
        let mut idx: Vec<usize> = (0..data.len())
            .filter(|&i| data.labels[i] == label)
            .collect();
        idx.shuffle(&mut rng);
        let n_held = ((idx.len() as f64) * fraction.clamp(0.0, 1.0)).round() as usize;
        held.extend_from_slice(&idx[..n_held]);
        keep.extend_from_slice(&idx[n_held..]);
    }
    keep.shuffle(&mut rng);
    held.shuffle(&mut rng);
    (data.select(&keep), data.select(&held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    fn toy(n: usize) -> Mnist {
        Mnist {
            images: Array2::from_shape_fn((n, 784), |(i, _)| i as u8),
            labels: Array1::from_iter((0..n).map(|i| (i % 10) as u8)),
        }
    }

    #[test]
    fn shards_partition_the_rows() {
        let d = toy(103);
        for how in [Sharding::Random, Sharding::Stratified] {
            let s = shard_indices(&d, 4, how, 1);
            let mut all: Vec<usize> = s.concat();
            all.sort();
            assert_eq!(all, (0..103).collect::<Vec<_>>());
            assert!(s.iter().all(|x| (25..=26).contains(&x.len())), "{how:?}");
        }
    }

    #[test]
    fn stratified_shards_have_the_same_label_mix() {
        let d = toy(400);
        for s in shard(&d, 4, Sharding::Stratified, 7) {
            assert_eq!(s.label_counts(), [10; 10]);
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let d = toy(50);
        assert_eq!(
            shard_indices(&d, 3, Sharding::Random, 5),
            shard_indices(&d, 3, Sharding::Random, 5)
        );
        assert_ne!(
            shard_indices(&d, 3, Sharding::Random, 5),
            shard_indices(&d, 3, Sharding::Random, 6)
        );
    }

    #[test]
    fn hold_out_is_stratified_and_disjoint() {
        let d = toy(200);
        let (rest, held) = hold_out(&d, 0.1, 3);
        assert_eq!((rest.len(), held.len()), (180, 20));
        assert_eq!(held.label_counts(), [2; 10]);
    }
}
