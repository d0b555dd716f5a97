//! Splitting a data set: shards (random or stratified by class) and hold-outs (stratified for
//! classes, random for regression). Deterministic for a given seed.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::Dataset;

/// How to deal rows into shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharding {
    /// Shuffled, then cut into equal parts.
    Random,
    /// Each class's rows shuffled and dealt in turn, so every shard has the same class mix
    /// (random for a regression set).
    Stratified,
}

/// Row indices of `k` shards of `data` (every row in exactly one shard).
pub fn shard_indices(data: &Dataset, k: usize, how: Sharding, seed: u64) -> Vec<Vec<usize>> {
    let k = k.max(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shards = vec![Vec::new(); k];
    let labels = data.labels();
    match (how, labels) {
        (Sharding::Random, _) | (Sharding::Stratified, None) => {
            let mut idx: Vec<usize> = (0..data.len()).collect();
            idx.shuffle(&mut rng);
            for (i, row) in idx.into_iter().enumerate() {
                shards[i % k].push(row);
            }
        }
        (Sharding::Stratified, Some(labels)) => {
            let mut next = 0;
            for class in by_class(labels, data.classes()) {
                let mut idx = class;
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
pub fn shard(data: &Dataset, k: usize, how: Sharding, seed: u64) -> Vec<Dataset> {
    shard_indices(data, k, how, seed)
        .iter()
        .map(|idx| data.select(idx))
        .collect()
}

/// Rows of each class, in order.
fn by_class(labels: ndarray::ArrayView1<'_, u8>, classes: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); classes.max(1)];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(c) = out.get_mut(l as usize) {
            c.push(i);
        }
    }
    out
}

/// Splits off a `fraction` of `data` (stratified by class): (rest, held out).
pub fn hold_out(data: &Dataset, fraction: f64, seed: u64) -> (Dataset, Dataset) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_ca1b);
    let mut keep = Vec::new();
    let mut held = Vec::new();
    let groups = match data.labels() {
        Some(labels) => by_class(labels, data.classes()),
        None => vec![(0..data.len()).collect()],
    };
    for mut idx in groups {
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

    fn toy(n: usize) -> Dataset {
        Dataset::from_pixels(
            Array2::from_shape_fn((n, 784), |(i, _)| i as u8),
            Array1::from_iter((0..n).map(|i| (i % 10) as u8)),
            vec![784],
        )
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
            assert_eq!(s.class_counts(), vec![10; 10]);
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
        assert_eq!(held.class_counts(), vec![2; 10]);
    }
}
