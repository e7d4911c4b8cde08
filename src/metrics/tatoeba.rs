//! Tatoeba retrieval accuracy (XTREME `similarity_search`, jiant `tatoeba.py`): cosine nearest
//! neighbour of each query among the candidates, compared with the gold index.
//!
//! The official direction is en→xx: the English sentences (sorted lexicographically by the
//! preprocessing) are the queries, the other language's sentences the searched set, and the
//! gold label of English sentence j is the line index of its translation.

use super::accuracy::Accuracy;
use super::knn::knn_cosine;
use crate::error::{Error, Result};

/// For each row of `queries` (nq, d), the index of the most cosine-similar row of `base`
/// (nb, d); ties go to the lower index. Both are L2-normalised first (zero rows stay zero).
pub fn nearest(queries: &[f32], base: &[f32], d: usize) -> Result<Vec<usize>> {
    Ok(knn_cosine(queries, base, d, 1)?.idx)
}

/// Fraction of `pred[j] == gold[j]`, in [0, 1]; the two must have the same, non-zero length.
pub fn accuracy(pred: &[usize], gold: &[usize]) -> Result<f64> {
    if gold.is_empty() {
        return Err(Error::Data("Tatoeba: no gold labels".into()));
    }
    let mut acc = Accuracy::new();
    acc.update(gold, pred)?;
    Ok(acc.compute())
}

/// Nearest-neighbour accuracy of `queries` against `base` with gold indices `gold` (one per
/// query row).
pub fn evaluate(queries: &[f32], base: &[f32], d: usize, gold: &[usize]) -> Result<f64> {
    let pred = nearest(queries, base, d)?;
    accuracy(&pred, gold)
}
