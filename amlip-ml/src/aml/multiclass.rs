//! A multi-class classifier from one-vs-rest binary models: the class whose model the row
//! misses least wins. Raw miss counts are not comparable across models (a model with many
//! atoms is missed more), so each model's misses are divided by its calibrated cutoff: a score
//! below 1 means "this model says yes".

use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;

use super::bits::Bits;
use super::embedding::Embedding;
use super::model::Model;

/// One binary model per class, each calibrated.
#[derive(Debug, Clone)]
pub struct OneVsRest {
    /// One binary model per class, in class order.
    pub models: Vec<Model>,
}

impl OneVsRest {
    /// Normalised score of each class for `term` (lower is more likely).
    pub fn scores(&self, term: &Bits) -> Vec<f64> {
        self.models
            .iter()
            .map(|m| m.misses(term) as f64 / m.cutoff.unwrap_or(1).max(1) as f64)
            .collect()
    }

    /// The predicted class.
    pub fn predict(&self, term: &Bits) -> u8 {
        let s = self.scores(term);
        (0..s.len())
            .min_by(|&a, &b| s[a].total_cmp(&s[b]))
            .unwrap_or(0) as u8
    }

    /// Predictions for many rows, on all cores.
    pub fn predict_images(&self, emb: &Embedding, images: ArrayView2<'_, u8>) -> Vec<u8> {
        let terms = emb.terms(images);
        terms.par_iter().map(|t| self.predict(t)).collect()
    }

    /// Fraction of rows classified correctly.
    pub fn accuracy(
        &self,
        emb: &Embedding,
        images: ArrayView2<'_, u8>,
        labels: ArrayView1<'_, u8>,
    ) -> f64 {
        let p = self.predict_images(emb, images);
        let right = p.iter().zip(labels).filter(|(a, b)| *a == *b).count();
        right as f64 / labels.len().max(1) as f64
    }
}
