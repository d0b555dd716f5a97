//! Binary classification metrics, and the misses cutoff that maximises balanced accuracy.
//!
//! Always answering "no" already scores ~90% accuracy on a one-digit MNIST task, so balanced
//! accuracy (mean of the true positive and true negative rates), FPR and FNR are what tell.

use serde::{Deserialize, Serialize};

/// Confusion counts and the rates derived from them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// True negatives.
    pub tn: usize,
    #[serde(rename = "fn")]
    /// False negatives.
    pub fn_: usize,
}

impl Metrics {
    /// From predictions and truths.
    pub fn from_predictions(predicted: &[bool], truth: &[bool]) -> Self {
        let mut m = Metrics::default();
        for (&p, &t) in predicted.iter().zip(truth) {
            match (p, t) {
                (true, true) => m.tp += 1,
                (true, false) => m.fp += 1,
                (false, false) => m.tn += 1,
                (false, true) => m.fn_ += 1,
            }
        }
        m
    }

    /// From misses, with "positive iff misses < cutoff".
    pub fn from_misses(misses: &[u32], truth: &[bool], cutoff: u32) -> Self {
        let predicted: Vec<bool> = misses.iter().map(|&m| m < cutoff).collect();
        Self::from_predictions(&predicted, truth)
    }

    /// Examples counted.
    pub fn total(&self) -> usize {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// Fraction classified right.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.total())
    }

    /// True positive rate.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// True negative rate.
    pub fn specificity(&self) -> f64 {
        ratio(self.tn, self.tn + self.fp)
    }

    /// Mean of recall and specificity.
    pub fn balanced_accuracy(&self) -> f64 {
        (self.recall() + self.specificity()) / 2.0
    }

    /// False positive rate: negatives called positive.
    pub fn fpr(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }

    /// False negative rate: positives missed.
    pub fn fnr(&self) -> f64 {
        ratio(self.fn_, self.fn_ + self.tp)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Metrics of a multi-class classifier, macro-averaged over classes (each class one-vs-rest):
/// accuracy, balanced accuracy (mean recall), and mean FPR and FNR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Fraction classified right.
    pub accuracy: f64,
    /// Mean recall over the classes present.
    pub balanced_accuracy: f64,
    /// Mean false positive rate.
    pub fpr: f64,
    /// Mean false negative rate.
    pub fnr: f64,
}

impl ClassMetrics {
    /// From class scores, one row per example: the prediction is each row's highest score.
    pub fn from_scores(scores: ndarray::ArrayView2<'_, f32>, truth: &[u8]) -> Self {
        let predicted: Vec<u8> = scores
            .rows()
            .into_iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (c, &v)| {
                        if v > best.1 {
                            (c, v)
                        } else {
                            best
                        }
                    })
                    .0 as u8
            })
            .collect();
        Self::from_predictions(&predicted, truth, scores.ncols())
    }

    /// From predicted and true classes (`classes` of them).
    pub fn from_predictions(predicted: &[u8], truth: &[u8], classes: usize) -> Self {
        let right = predicted.iter().zip(truth).filter(|(a, b)| a == b).count();
        let mut sum = ClassMetrics {
            accuracy: ratio(right, truth.len()),
            ..ClassMetrics::default()
        };
        let mut present = 0;
        for c in 0..classes as u8 {
            let p: Vec<bool> = predicted.iter().map(|&x| x == c).collect();
            let t: Vec<bool> = truth.iter().map(|&x| x == c).collect();
            if !t.iter().any(|&x| x) {
                continue;
            }
            let m = Metrics::from_predictions(&p, &t);
            sum.balanced_accuracy += m.recall();
            sum.fpr += m.fpr();
            sum.fnr += m.fnr();
            present += 1;
        }
        let n = present.max(1) as f64;
        sum.balanced_accuracy /= n;
        sum.fpr /= n;
        sum.fnr /= n;
        sum
    }
}

/// The cutoff (positive iff misses < cutoff) that maximises balanced accuracy on these
/// examples; ties go to the smaller cutoff (fewer false positives). Cutoff is at least 1.
pub fn best_cutoff(misses: &[u32], truth: &[bool]) -> (u32, Metrics) {
    let max = misses.iter().copied().max().unwrap_or(0);
    // Histograms of misses for positives and negatives, then sweep the cutoff.
    let mut pos = vec![0usize; max as usize + 2];
    let mut neg = vec![0usize; max as usize + 2];
    for (&m, &t) in misses.iter().zip(truth) {
        if t {
            pos[m as usize] += 1;
        } else {
            neg[m as usize] += 1;
        }
    }
    let (n_pos, n_neg) = (pos.iter().sum::<usize>(), neg.iter().sum::<usize>());
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best = (1u32, f64::MIN);
    for cutoff in 1..=max + 1 {
        tp += pos[cutoff as usize - 1];
        fp += neg[cutoff as usize - 1];
        let bal = (ratio(tp, n_pos) + ratio(n_neg - fp, n_neg)) / 2.0;
        if bal > best.1 + 1e-12 {
            best = (cutoff, bal);
        }
    }
    (best.0, Metrics::from_misses(misses, truth, best.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let m = Metrics::from_predictions(&[true, true, false, false], &[true, false, false, true]);
        assert_eq!((m.tp, m.fp, m.tn, m.fn_), (1, 1, 1, 1));
        assert_eq!(m.balanced_accuracy(), 0.5);
        assert_eq!(m.fpr(), 0.5);
    }

    #[test]
    fn class_metrics_macro_average() {
        let m = ClassMetrics::from_predictions(&[0, 1, 1, 2], &[0, 1, 2, 2], 3);
        assert_eq!(m.accuracy, 0.75);
        assert!((m.balanced_accuracy - (1.0 + 1.0 + 0.5) / 3.0).abs() < 1e-12);
        assert!((m.fnr - 0.5 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn cutoff_separates_when_it_can() {
        // Positives miss 0-2 atoms, negatives 3 or more.
        let misses = [0, 1, 2, 3, 5, 9];
        let truth = [true, true, true, false, false, false];
        let (c, m) = best_cutoff(&misses, &truth);
        assert_eq!(c, 3);
        assert_eq!(m.balanced_accuracy(), 1.0);
    }

    #[test]
    fn cutoff_trades_off_balanced() {
        // Overlapping classes: no cutoff is perfect, and the best balance is neither the most
        // permissive nor the strictest one.
        let pos = [0u32, 0, 1, 1, 2, 2, 3, 4];
        let neg = [1u32, 2, 3, 3, 4, 4, 5, 6, 6, 7];
        let misses: Vec<u32> = pos.iter().chain(&neg).copied().collect();
        let truth: Vec<bool> = (0..misses.len()).map(|i| i < pos.len()).collect();
        let balanced = |c: u32| Metrics::from_misses(&misses, &truth, c).balanced_accuracy();
        // Exhaustively: the first cutoff with the highest balanced accuracy.
        let mut expected = 1;
        for c in 1..=9 {
            if balanced(c) > balanced(expected) + 1e-12 {
                expected = c;
            }
        }
        let (c, m) = best_cutoff(&misses, &truth);
        assert_eq!(c, expected);
        assert_eq!(m.balanced_accuracy(), balanced(expected));
        assert!(c > 1 && c < 9, "an interior trade-off: {c}");
        assert!(m.balanced_accuracy() < 1.0 && m.balanced_accuracy() > balanced(1));
        assert!(m.balanced_accuracy() > balanced(9));
    }

    #[test]
    fn inseparable_examples_keep_the_smallest_cutoff() {
        let misses = [2u32; 20];
        let truth: Vec<bool> = (0..20).map(|i| i < 10).collect();
        let (c, m) = best_cutoff(&misses, &truth);
        assert_eq!((c, m.balanced_accuracy()), (1, 0.5));
    }
}
