//! Algebraic Machine Learning (`shared/docs/aml.md`): binary classifiers trained by sparse
//! crossing, evaluated by misses, merged by union. Knows nothing of DDS.
//!
//! - [`bits`]: bit sets of constants and indicators.
//! - [`embedding`]: rows of byte features (MNIST pixels, levels of numeric features) as terms.
//! - [`train`]: the batch algorithm ([`Trainer`]).
//! - [`model`]: the trained atoms, misses, merge, JSON and binary forms.
//! - [`eval`]: metrics and the misses cutoff.
//! - [`multiclass`]: ten one-vs-rest models.

pub mod bits;
pub mod embedding;
pub mod eval;
pub mod model;
pub mod multiclass;
pub mod train;

use std::ops::ControlFlow;

use ndarray::{ArrayView1, ArrayView2};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

pub use bits::Bits;
pub use embedding::Embedding;
pub use eval::{best_cutoff, ClassMetrics, Metrics};
pub use model::{Atom, Model, ModelError};
pub use multiclass::OneVsRest;
pub use train::{BatchReport, TrainConfig, Trainer};

/// What to train: "is it class `digit`?" on `batches` batches of `positives` + `negatives`
/// rows.
#[derive(Debug, Clone)]
pub struct DigitParams {
    /// The class to recognise.
    pub digit: u8,
    /// How rows become terms (MNIST's by default).
    pub embedding: Embedding,
    /// Training batches.
    pub batches: usize,
    /// Positive examples per batch.
    pub positives: usize,
    /// Negative examples per batch.
    pub negatives: usize,
    /// Seed of the batch sampling and the training.
    pub seed: u64,
    /// How the trainer works.
    pub config: TrainConfig,
}

impl Default for DigitParams {
    /// The tutorial's setting: 10 batches of 100 positives and 900 negatives.
    fn default() -> Self {
        Self {
            digit: 0,
            embedding: Embedding::mnist(),
            batches: 10,
            positives: 100,
            negatives: 900,
            seed: 1,
            config: TrainConfig::default(),
        }
    }
}

/// Trains a binary classifier for `params.digit` on `images` (rows of byte features, as
/// `params.embedding` reads them) and
/// `labels`, calling `progress` after each batch; training stops early if it returns
/// `ControlFlow::Break` (a cancelled job). Batches draw positives and negatives without
/// replacement, starting over (reshuffled) when a side runs out. The model is uncalibrated.
pub fn train_digit(
    images: ArrayView2<'_, u8>,
    labels: ArrayView1<'_, u8>,
    params: &DigitParams,
    mut progress: impl FnMut(&BatchReport) -> ControlFlow<()>,
) -> Model {
    let mut rng = StdRng::seed_from_u64(params.seed);
    let (mut pos, mut neg): (Vec<usize>, Vec<usize>) =
        (0..labels.len()).partition(|&i| labels[i] == params.digit);
    pos.shuffle(&mut rng);
    neg.shuffle(&mut rng);
    let mut pos_draw = Drawer::new(pos);
    let mut neg_draw = Drawer::new(neg);
    let emb = &params.embedding;
    let mut trainer = Trainer::new(
        emb.n_constants(),
        emb.v(),
        params.seed,
        params.config.clone(),
    );
    let term_of = |i: usize| {
        let row = images.row(i);
        match row.as_slice() {
            Some(s) => emb.term(s),
            None => emb.term(&row.to_vec()),
        }
    };
    for _ in 0..params.batches {
        let p: Vec<Bits> = pos_draw
            .take(params.positives, &mut rng)
            .into_iter()
            .map(term_of)
            .collect();
        let n: Vec<Bits> = neg_draw
            .take(params.negatives, &mut rng)
            .into_iter()
            .map(term_of)
            .collect();
        if p.is_empty() {
            break; // no example of this digit at all
        }
        let report = trainer.train_batch(&p, &n);
        if progress(&report).is_break() {
            break;
        }
    }
    trainer.model()
}

/// Hands out indices without replacement, reshuffling when exhausted.
struct Drawer {
    items: Vec<usize>,
    next: usize,
}

impl Drawer {
    fn new(items: Vec<usize>) -> Self {
        Self { items, next: 0 }
    }

    fn take(&mut self, k: usize, rng: &mut StdRng) -> Vec<usize> {
        let k = k.min(self.items.len());
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            if self.next == self.items.len() {
                self.items.shuffle(rng);
                self.next = 0;
            }
            out.push(self.items[self.next]);
            self.next += 1;
        }
        out
    }
}

/// Misses of each row and whether it is of class `digit`.
pub fn misses_and_truth(
    model: &Model,
    emb: &Embedding,
    images: ArrayView2<'_, u8>,
    labels: ArrayView1<'_, u8>,
    digit: u8,
) -> (Vec<u32>, Vec<bool>) {
    let terms = emb.terms(images);
    let misses = model.misses_many(&terms);
    let truth = labels.iter().map(|&l| l == digit).collect();
    (misses, truth)
}

/// Chooses the model's cutoff to maximise balanced accuracy on these (held-out) rows.
pub fn calibrate(
    model: &mut Model,
    emb: &Embedding,
    images: ArrayView2<'_, u8>,
    labels: ArrayView1<'_, u8>,
    digit: u8,
) -> Metrics {
    let (misses, truth) = misses_and_truth(model, emb, images, labels, digit);
    let (cutoff, metrics) = best_cutoff(&misses, &truth);
    model.cutoff = Some(cutoff);
    metrics
}

/// The model's metrics on these rows (cutoff 1 if uncalibrated).
pub fn evaluate(
    model: &Model,
    emb: &Embedding,
    images: ArrayView2<'_, u8>,
    labels: ArrayView1<'_, u8>,
    digit: u8,
) -> Metrics {
    let (misses, truth) = misses_and_truth(model, emb, images, labels, digit);
    Metrics::from_misses(&misses, &truth, model.cutoff.unwrap_or(1))
}

/// Merges shard models into one: the union of their atoms. With `positives` (one list per
/// shard, in the same order), each shard's atoms that another shard's positives fail are
/// dropped first: every shard's negatives stay learnt by some atom, and no shard's atoms break
/// another shard's positives. The cutoff must be chosen again ([`calibrate`]).
pub fn merge_shards(models: &[Model], positives: Option<&[Vec<Bits>]>) -> Model {
    match positives {
        None => Model::merge(models),
        Some(pos) => {
            let filtered: Vec<Model> = models
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let mut m = m.clone();
                    for (j, p) in pos.iter().enumerate() {
                        if j != i {
                            m.drop_atoms_failing(p);
                        }
                    }
                    m
                })
                .collect();
            Model::merge(&filtered)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Constants 0..8: four two-valued pixels; 8 is v.
    fn img(on: [bool; 4]) -> Bits {
        Bits::from_ones(9, (0..4).map(|i| if on[i] { i } else { i + 4 }))
    }

    fn train(pos: &[Bits], neg: &[Bits], seed: u64) -> Model {
        let mut t = Trainer::new(9, 8, seed, TrainConfig::default());
        t.train_batch(pos, neg);
        t.train_batch(pos, neg);
        t.model()
    }

    #[test]
    fn merge_is_the_union_of_atoms_keyed_by_upper_segment() {
        let atom = |ones: &[usize], epoch, gen| Atom {
            ucs: Bits::from_ones(9, ones.iter().copied()),
            epoch,
            gen,
        };
        let model = |atoms, cutoff| Model {
            n_constants: 9,
            v: 8,
            atoms,
            cutoff,
        };
        let m1 = model(vec![atom(&[0, 8], 1, 1), atom(&[3, 8], 2, 1)], Some(2));
        let m2 = model(vec![atom(&[0, 8], 3, 4), atom(&[5, 8], 1, 2)], None);
        let m = Model::merge([&m1, &m2]);
        assert_eq!(m.len(), 3, "the shared upper segment appears once");
        let shared = m
            .atoms
            .iter()
            .find(|a| a.ucs == Bits::from_ones(9, [0, 8]))
            .expect("the shared atom");
        assert_eq!(
            (shared.epoch, shared.gen),
            (1, 4),
            "minimum epoch, maximum gen"
        );
        assert_eq!(m.cutoff, None, "a merged model must be calibrated again");
        // A term misses an atom of the union iff a shard's model has that atom and the term
        // misses it there.
        for t in [
            img([true, false, false, false]),
            img([false, true, false, true]),
            img([false; 4]),
        ] {
            let missed: std::collections::HashSet<&Bits> = m1
                .atoms
                .iter()
                .chain(&m2.atoms)
                .filter(|a| a.ucs.is_disjoint(&t))
                .map(|a| &a.ucs)
                .collect();
            assert_eq!(m.misses(&t) as usize, missed.len());
        }
    }

    #[test]
    fn merge_keeps_every_negative_of_every_shard() {
        // Class: pixel 0 on. Two shards see different negatives.
        let pos_a = vec![
            img([true, false, false, false]),
            img([true, true, false, true]),
        ];
        let neg_a = vec![
            img([false, true, false, false]),
            img([false, false, true, true]),
        ];
        let pos_b = vec![img([true, true, true, false])];
        let neg_b = vec![
            img([false, true, true, true]),
            img([false, false, false, false]),
        ];
        let (ma, mb) = (train(&pos_a, &neg_a, 1), train(&pos_b, &neg_b, 2));
        for merged in [
            merge_shards(&[ma.clone(), mb.clone()], None),
            merge_shards(&[ma, mb], Some(&[pos_a.clone(), pos_b.clone()])),
        ] {
            for r in neg_a.iter().chain(&neg_b) {
                assert!(
                    merged.misses(r) > 0,
                    "negative {r:?} forgotten by the merge"
                );
            }
        }
    }

    #[test]
    fn filtered_merge_breaks_no_shards_positive() {
        let pos_a = vec![img([true, false, false, false])];
        let neg_a = vec![img([false, true, false, false])];
        let pos_b = vec![img([true, true, true, true])];
        let neg_b = vec![img([false, false, false, true])];
        let (ma, mb) = (train(&pos_a, &neg_a, 3), train(&pos_b, &neg_b, 4));
        let merged = merge_shards(&[ma, mb], Some(&[pos_a.clone(), pos_b.clone()]));
        for p in pos_a.iter().chain(&pos_b) {
            assert_eq!(merged.misses(p), 0, "positive {p:?} broken by the merge");
        }
    }
}
