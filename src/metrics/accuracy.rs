//! Accuracy (XNLI, PAWS-X, the NLI and multiple-choice intermediate tasks, Tatoeba) and the
//! positive-class F1 that QQP averages with it, as streaming metrics.

use crate::error::{Error, Result};

/// Streaming accuracy: the fraction of predictions equal to their gold label
/// (XTREME `evaluate.py:accuracy`, jiant `SimpleAccuracyEvaluationScheme`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accuracy {
    correct: usize,
    total: usize,
}

impl Accuracy {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one batch. `gold` and `pred` must have the same length; the official script
    /// would silently `zip` them to the shorter one.
    pub fn update<T: PartialEq>(&mut self, gold: &[T], pred: &[T]) -> Result<()> {
        if gold.len() != pred.len() {
            return Err(Error::Usage(format!(
                "accuracy: {} gold labels but {} predictions in one batch",
                gold.len(),
                pred.len()
            )));
        }
        self.correct += gold.iter().zip(pred).filter(|(g, p)| g == p).count();
        self.total += gold.len();
        Ok(())
    }

    /// Adds one example.
    pub fn update_one<T: PartialEq>(&mut self, gold: &T, pred: &T) {
        self.correct += usize::from(gold == pred);
        self.total += 1;
    }

    /// Fraction correct in [0, 1]; 0 when nothing was added (the official script divides by
    /// zero there, so callers should reject empty inputs first).
    pub fn compute(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }

    /// Number of examples seen.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Number of correct predictions seen.
    pub fn correct(&self) -> usize {
        self.correct
    }

    /// Forgets everything added.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Binary F1 of the `positive` class, as scikit-learn's `f1_score(gold, pred)` that jiant's
/// QQP metric uses: 2·TP / (2·TP + FP + FN), 0 when there is no true or predicted positive.
pub fn binary_f1<T: PartialEq>(gold: &[T], pred: &[T], positive: &T) -> Result<f64> {
    if gold.len() != pred.len() {
        return Err(Error::Usage(format!("f1: {} gold labels but {} predictions", gold.len(), pred.len())));
    }
    let (mut tp, mut fp, mut fne) = (0usize, 0usize, 0usize);
    for (g, p) in gold.iter().zip(pred) {
        match (g == positive, p == positive) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fne += 1,
            (false, false) => {}
        }
    }
    let denom = 2 * tp + fp + fne;
    Ok(if tp == 0 { 0.0 } else { 2.0 * tp as f64 / denom as f64 })
}
