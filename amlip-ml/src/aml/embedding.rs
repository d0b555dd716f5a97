//! Rows of byte-valued features as AML terms: each feature, at each cut, is one of two
//! constants, "at or above the cut" or "below it".
//!
//! With `d` features and cuts `c_0 < ... < c_{K-1}`, feature `j` at cut `k` is constant
//! `j*K + k` if the value is `>= c_k`, else `d*K + j*K + k`; the class constant `v` is `2dK`.
//!
//! - **MNIST** ([`Embedding::mnist`]): 784 pixels, one cut at 26 (a pixel brighter than 25.6 of
//!   255 is "on"), so pixel `j` is constant `j` or `j + 784` and `v` = 1568: the embedding of
//!   `shared/docs/aml.md`, unchanged.
//! - **Images of any size** ([`Embedding::pixels`]): the same single cut per pixel.
//! - **Numeric features** ([`Embedding::levels`]): the main first maps each feature to a level
//!   `0..=K` (how many of its training-set quantiles the value reaches, see
//!   [`Quantizer`](crate::dataset::Quantizer)); cuts `1..=K` then make "feature `j` is at least
//!   its `k`-th quantile" and "is below it" constants. An atom is a set of such constants, so
//!   it can say "`x_j` in this quantile range", which is how AML learns thresholds on numbers.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::bits::Bits;
use crate::dataset::mnist::PIXELS;

/// Number of constants of the MNIST embedding.
pub const N_CONSTANTS: usize = 2 * PIXELS + 1;
/// The class constant of the MNIST embedding.
pub const V: usize = 2 * PIXELS;
/// A pixel at or above this (of 255) is "on": brighter than 25.6.
pub const PIXEL_CUT: u8 = 26;
/// The most constants an embedding may have (bounds what a job can make a node allocate).
pub const MAX_CONSTANTS: usize = 1 << 20;

/// How rows of byte features become terms: how many features, at which cuts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Embedding {
    /// Features per row.
    pub features: usize,
    /// Ascending cuts applied to every feature.
    pub cuts: Vec<u8>,
}

impl Default for Embedding {
    fn default() -> Self {
        Self::mnist()
    }
}

impl Embedding {
    /// MNIST's: 784 pixels, on at 26.
    pub fn mnist() -> Self {
        Self::pixels(PIXELS)
    }

    /// Images of `pixels` bytes each, a pixel on at 26 of 255.
    pub fn pixels(pixels: usize) -> Self {
        Self {
            features: pixels,
            cuts: vec![PIXEL_CUT],
        }
    }

    /// `features` features already mapped to levels `0..=levels`.
    pub fn levels(features: usize, levels: u8) -> Self {
        Self {
            features,
            cuts: (1..=levels).collect(),
        }
    }

    /// Checks the embedding is one a node may build: cuts ascending, at least one feature and
    /// one cut, and at most [`MAX_CONSTANTS`] constants.
    pub fn check(&self) -> Result<(), String> {
        let ascending = self.cuts.windows(2).all(|w| w[0] < w[1]);
        let k = self.cuts.len();
        if self.features == 0 || k == 0 || !ascending {
            return Err(format!(
                "an embedding needs features and ascending cuts ({} feature(s), cuts {:?})",
                self.features, self.cuts
            ));
        }
        match self.features.checked_mul(2 * k) {
            Some(c) if c < MAX_CONSTANTS => Ok(()),
            _ => Err(format!(
                "{} feature(s) x {k} cut(s) make more than {MAX_CONSTANTS} constants",
                self.features
            )),
        }
    }

    /// Constants, the class constant included.
    pub fn n_constants(&self) -> usize {
        self.v() + 1
    }

    /// The class constant.
    pub fn v(&self) -> usize {
        2 * self.features * self.cuts.len()
    }

    /// The term of one row of `features` bytes.
    pub fn term(&self, row: &[u8]) -> Bits {
        debug_assert_eq!(row.len(), self.features);
        let k = self.cuts.len();
        let off = self.features * k;
        Bits::from_ones(
            self.n_constants(),
            row.iter().enumerate().flat_map(|(j, &x)| {
                self.cuts.iter().enumerate().map(move |(c, &cut)| {
                    let at = j * k + c;
                    if x >= cut {
                        at
                    } else {
                        off + at
                    }
                })
            }),
        )
    }

    /// The terms of many rows.
    pub fn terms(&self, rows: ArrayView2<'_, u8>) -> Vec<Bits> {
        rows.rows()
            .into_iter()
            .map(|row| match row.as_slice() {
                Some(s) => self.term(s),
                None => self.term(&row.to_vec()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pixel_is_exactly_one_constant() {
        let e = Embedding::mnist();
        assert_eq!((e.n_constants(), e.v()), (N_CONSTANTS, V));
        let mut img = vec![0u8; PIXELS];
        img[0] = 26;
        img[1] = 25;
        img[783] = 255;
        let t = e.term(&img);
        assert_eq!(t.count(), PIXELS);
        assert!(t.contains(0) && !t.contains(PIXELS));
        assert!(!t.contains(1) && t.contains(1 + PIXELS));
        assert!(t.contains(783));
        assert!(!t.contains(V));
    }

    #[test]
    fn levels_are_thermometer_coded() {
        let e = Embedding::levels(2, 3);
        assert_eq!(e.v(), 12);
        // feature 0 at level 2: >= cuts 1 and 2, below 3; feature 1 at level 0.
        let t = e.term(&[2, 0]);
        let ones: Vec<usize> = (0..e.n_constants()).filter(|&c| t.contains(c)).collect();
        assert_eq!(ones, vec![0, 1, 6 + 2, 6 + 3, 6 + 4, 6 + 5]);
        assert!(Embedding::levels(0, 3).check().is_err());
        assert!(Embedding::levels(1 << 19, 4).check().is_err());
        let unordered = Embedding {
            features: 2,
            cuts: vec![3, 1],
        };
        assert!(unordered.check().unwrap_err().contains("ascending"));
    }
}
