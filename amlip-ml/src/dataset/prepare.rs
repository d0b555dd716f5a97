//! Fitting features to the models, from the training set only (so nothing of the test set
//! leaks into training): quantile levels for AML, standardisation for the MLP.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Maps each numeric feature to a level `0..=K`: how many of its cut points (training-set
/// quantiles `1/(K+1) .. K/(K+1)`, repeated values dropped) the value reaches. AML then reads
/// levels through [`Embedding::levels`](crate::aml::Embedding::levels).
///
/// Why quantiles: AML's constants are yes/no facts about a sample; thresholds at quantiles
/// give every fact a useful share of the samples on both sides whatever the feature's scale
/// or skew, the way MNIST's "pixel brighter than 10%" does for pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantizer {
    /// Ascending cut points of each feature.
    pub cuts: Vec<Vec<f32>>,
}

impl Quantizer {
    /// Cut points of each column of `x` at `levels` quantiles.
    pub fn fit(x: ArrayView2<'_, f32>, levels: u8) -> Self {
        let n = x.nrows();
        let cuts = x
            .axis_iter(Axis(1))
            .map(|col| {
                let mut v = col.to_vec();
                v.sort_by(f32::total_cmp);
                let mut cuts: Vec<f32> = (1..=levels as usize)
                    .map(|k| v[(k * n / (levels as usize + 1)).min(n.saturating_sub(1))])
                    .filter(|&c| v.first().is_some_and(|&min| c > min))
                    .collect();
                cuts.dedup();
                cuts
            })
            .collect();
        Self { cuts }
    }

    /// The most levels any feature has.
    pub fn levels(&self) -> u8 {
        self.cuts.iter().map(Vec::len).max().unwrap_or(0).max(1) as u8
    }

    /// The level of every value of `x` (columns as at [`fit`](Self::fit)).
    pub fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<u8> {
        let mut out = Array2::zeros(x.raw_dim());
        for (mut o, row) in out.rows_mut().into_iter().zip(x.rows()) {
            for ((o, &v), cuts) in o.iter_mut().zip(row).zip(&self.cuts) {
                *o = cuts.partition_point(|&c| c <= v) as u8;
            }
        }
        out
    }
}

/// Subtracts each feature's training mean and divides by its standard deviation (1 for a
/// constant feature), so that the MLP's learning rate suits every feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Mean of each feature.
    pub mean: Vec<f32>,
    /// Standard deviation of each feature.
    pub scale: Vec<f32>,
}

impl Standardizer {
    /// Means and deviations of the columns of `x`.
    pub fn fit(x: ArrayView2<'_, f32>) -> Self {
        let mean = x
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(x.ncols()));
        let scale = x
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 1e-12 { s } else { 1.0 });
        Self {
            mean: mean.to_vec(),
            scale: scale.to_vec(),
        }
    }

    /// `x` standardised.
    pub fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut out = x.to_owned();
        for mut row in out.rows_mut() {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn quantiles_split_a_feature_evenly() {
        let x = Array2::from_shape_fn((100, 1), |(i, _)| i as f32);
        let q = Quantizer::fit(x.view(), 3);
        assert_eq!(q.cuts, vec![vec![25.0, 50.0, 75.0]]);
        let levels = q.apply(x.view());
        let count = |l| levels.iter().filter(|&&v| v == l).count();
        assert_eq!((count(0), count(1), count(2), count(3)), (25, 25, 25, 25));
        // A binary feature keeps one useful cut; a constant one none.
        let b = array![[0.0, 5.0], [0.0, 5.0], [1.0, 5.0], [1.0, 5.0]];
        let q = Quantizer::fit(b.view(), 4);
        assert_eq!(q.cuts, vec![vec![1.0], vec![]]);
        assert_eq!(q.apply(b.view()).column(0).to_vec(), vec![0, 0, 1, 1]);
    }

    #[test]
    fn standardised_columns_have_mean_0_and_deviation_1() {
        let x = array![[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]];
        let s = Standardizer::fit(x.view());
        let z = s.apply(x.view());
        assert!((z.column(0).sum()).abs() < 1e-6);
        assert!((z.column(0).std(0.0) - 1.0).abs() < 1e-6);
        assert_eq!(z.column(1).to_vec(), vec![0.0; 3]);
    }
}
