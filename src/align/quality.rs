//! Alignment quality against a gold alignment, as awesome-align's evaluation (`tools/aer.py`,
//! from lilt/alignment-scripts) computes it: gold links are sure (`i-j`) or possible (`ipj`),
//! every sure link also counting as possible; with A the predicted links, S the sure and P the
//! possible ones, summed over all sentences,
//! precision = |A∩P| / |A|, recall = |A∩S| / |S|, AER = 1 − (|A∩S| + |A∩P|) / (|A| + |S|),
//! F1 = 2PR / (P + R). Line k of the prediction belongs to line k of the gold file.

use super::pharaoh::{self, Kind, Link};
use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// The scores of a predicted alignment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlignmentScores {
    /// Alignment error rate (lower is better).
    pub aer: f64,
    /// |A∩P| / |A| (0 when nothing is predicted).
    pub precision: f64,
    /// |A∩S| / |S| (0 when the gold has no sure link).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Sentence pairs.
    pub sentences: usize,
    /// |A|: predicted links.
    pub predicted: usize,
    /// |S|: sure gold links.
    pub sure: usize,
    /// Possible gold links (sure ones included).
    pub possible: usize,
}

/// Scores `pred` against `gold`, sentence by sentence (the same number of each).
pub fn score(gold: &[Vec<(Link, Kind)>], pred: &[Vec<Link>]) -> AlignmentScores {
    let (mut a, mut s, mut p, mut a_s, mut a_p) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for (g, hyp) in gold.iter().zip(pred) {
        let sure: HashSet<Link> = g.iter().filter(|(_, k)| *k == Kind::Sure).map(|(l, _)| *l).collect();
        let possible: HashSet<Link> = g.iter().map(|(l, _)| *l).collect();
        let hyp: HashSet<Link> = hyp.iter().copied().collect();
        a += hyp.len();
        s += sure.len();
        p += possible.len();
        a_s += hyp.intersection(&sure).count();
        a_p += hyp.intersection(&possible).count();
    }
    let ratio = |x: usize, y: usize| if y == 0 { 0.0 } else { x as f64 / y as f64 };
    let (precision, recall) = (ratio(a_p, a), ratio(a_s, s));
    let aer = if a + s == 0 { 0.0 } else { 1.0 - (a_s + a_p) as f64 / (a + s) as f64 };
    let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    AlignmentScores { aer, precision, recall, f1, sentences: gold.len(), predicted: a, sure: s, possible: p }
}

/// Scores the prediction file `pred` (zero-indexed) against the gold file `gold` (1-indexed
/// with `gold_one_indexed`, as many published gold sets are). Files with different line counts
/// are an error naming both.
pub fn score_files(gold: &Path, pred: &Path, gold_one_indexed: bool) -> Result<AlignmentScores> {
    let g = pharaoh::read_file(gold, gold_one_indexed)?;
    let h = pharaoh::read_file(pred, false)?;
    if g.len() != h.len() {
        return Err(Error::Data(format!(
            "{} has {} lines but {} has {}: line k of the prediction must align the pair of gold line k",
            pred.display(),
            h.len(),
            gold.display(),
            g.len()
        )));
    }
    let h: Vec<Vec<Link>> = h.into_iter().map(|l| l.into_iter().map(|(link, _)| link).collect()).collect();
    Ok(score(&g, &h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aer_precision_recall_as_the_reference_script() {
        // Gold: sure 0-0, 1-1; possible 1p2. Prediction: 0-0 (sure), 1-2 (possible), 2-2 (wrong).
        let gold = vec![vec![((0, 0), Kind::Sure), ((1, 1), Kind::Sure), ((1, 2), Kind::Possible)]];
        let s = score(&gold, &[vec![(0, 0), (1, 2), (2, 2)]]);
        // |A| = 3, |S| = 2, |A∩S| = 1, |A∩P| = 2.
        assert_eq!((s.predicted, s.sure, s.possible), (3, 2, 3));
        assert!((s.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.recall - 0.5).abs() < 1e-12);
        assert!((s.aer - (1.0 - 3.0 / 5.0)).abs() < 1e-12);
        assert!((s.f1 - 2.0 * (2.0 / 3.0) * 0.5 / (2.0 / 3.0 + 0.5)).abs() < 1e-12);
        // Sums are pooled over sentences, not averaged; duplicates count once.
        let gold2 = vec![vec![((0, 0), Kind::Sure)], vec![((0, 0), Kind::Sure), ((1, 1), Kind::Sure)]];
        let s2 = score(&gold2, &[vec![(0, 0), (0, 0)], vec![]]);
        assert_eq!((s2.predicted, s2.sure), (1, 3));
        assert!((s2.recall - 1.0 / 3.0).abs() < 1e-12 && s2.precision == 1.0);
        // A perfect prediction has AER 0.
        assert_eq!(score(&gold2, &[vec![(0, 0)], vec![(0, 0), (1, 1)]]).aer, 0.0);
    }
}
