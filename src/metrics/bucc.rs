//! BUCC 2018 bitext mining and its F1, as XTREME and jiant run it (LASER's `mine_bitext`,
//! `bucc_optimize`, `bucc_extract`).
//!
//! Mining (`mode='mine'`, defaults `retrieval='max'`, `margin='ratio'`, k = 4, cosine):
//! L2-normalise both sides; k-NN in both directions; `fwd_mean[i]` = mean of x_i's k
//! similarities, `bwd_mean[j]` likewise for y_j;
//! `score(i, j) = margin(cos(x_i, y_j), (fwd_mean[i] + bwd_mean[j]) / 2)` with ratio margin
//! `a / b`. Each x_i proposes the best-scoring of its k neighbours, each y_j likewise. `max`
//! retrieval sorts all these proposals by score and greedily keeps those whose source and
//! target are both still unused, above the mining threshold (0).
//!
//! Sentences are mined once per distinct text; [`mine_pairs`] maps mined text pairs back to
//! sentence ids — XTREME drops texts that occur more than once ([`Duplicates::Drop`]), jiant
//! maps them to every id ([`Duplicates::Expand`]) — keeping the max score per id pair.
//!
//! Threshold: candidates sorted by score (descending, stable); walking the prefix, each new
//! best F1 against gold sets the threshold to the midpoint of this score and the next; the
//! pairs with score ≥ threshold are extracted. XTREME tunes it on dev (the BUCC "sample" set)
//! and applies it to test (the "training" set), see [`tune_and_evaluate`].

use super::knn::{check_matrix, dot, knn_inner_product, l2_normalize_rows};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};

/// A (source id, English id) sentence pair.
pub type Pair = (String, String);

/// How the margin combines a cosine `a` with the mean neighbourhood similarity `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Margin {
    /// `a / b` (XTREME and jiant).
    #[default]
    Ratio,
    /// `a - b`.
    Distance,
    /// `a` (plain cosine).
    Absolute,
}

impl Margin {
    /// The margin of cosine `a` against neighbourhood mean `b`.
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Margin::Ratio => a / b,
            Margin::Distance => a - b,
            Margin::Absolute => a,
        }
    }
}

/// Which proposals become candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Retrieval {
    /// Every source's best target, in source order.
    Forward,
    /// Every target's best source, in target order.
    Backward,
    /// Pairs proposed in both directions, in source order.
    Intersect,
    /// Both directions' proposals, best score first, greedily one-to-one (XTREME and jiant).
    #[default]
    Max,
}

/// Mining settings; the default is what XTREME and jiant use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MineOptions {
    /// Neighbourhood size (4), capped at the other side's size.
    pub k: usize,
    /// Margin function (ratio).
    pub margin: Margin,
    /// Retrieval mode (max).
    pub retrieval: Retrieval,
    /// `Max` keeps only scores strictly above this (0); the other modes ignore it, as
    /// `mine_bitext` does.
    pub threshold: f64,
}

impl Default for MineOptions {
    fn default() -> Self {
        MineOptions { k: 4, margin: Margin::Ratio, retrieval: Retrieval::Max, threshold: 0.0 }
    }
}

/// One mined pair of row indices with its margin score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Source row.
    pub src: usize,
    /// Target row.
    pub trg: usize,
    /// Margin score.
    pub score: f64,
}

/// The neighbourhood statistics behind the margin scores of two embedding sets.
#[derive(Clone, Debug)]
pub struct MarginScorer {
    x: Vec<f32>, // (nx, d), L2-normalised
    y: Vec<f32>, // (ny, d), L2-normalised
    d: usize,
    margin: Margin,
    /// Mean cosine of each source row to its k nearest targets, (nx,).
    pub fwd_mean: Vec<f32>,
    /// Mean cosine of each target row to its k nearest sources, (ny,).
    pub bwd_mean: Vec<f32>,
    fwd_idx: Vec<usize>, // (nx, kf)
    bwd_idx: Vec<usize>, // (ny, kb)
    kf: usize,
    kb: usize,
}

impl MarginScorer {
    /// k-NN in both directions between the (nx, d) source `x` and (ny, d) target `y`
    /// (normalised copies); neither may be empty.
    pub fn new(x: &[f32], y: &[f32], d: usize, k: usize, margin: Margin) -> Result<Self> {
        let nx = check_matrix(x, d, "source")?;
        let ny = check_matrix(y, d, "target")?;
        if nx == 0 || ny == 0 {
            return Err(Error::Usage(format!("bitext mining: {nx} source and {ny} target sentences")));
        }
        let (mut x, mut y) = (x.to_vec(), y.to_vec());
        l2_normalize_rows(&mut x, d);
        l2_normalize_rows(&mut y, d);
        let fwd = knn_inner_product(&x, &y, d, k)?;
        let bwd = knn_inner_product(&y, &x, d, k)?;
        let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
        let fwd_mean = (0..nx).map(|i| mean(fwd.sims_of(i))).collect();
        let bwd_mean = (0..ny).map(|j| mean(bwd.sims_of(j))).collect();
        Ok(MarginScorer {
            x,
            y,
            d,
            margin,
            fwd_mean,
            bwd_mean,
            kf: fwd.k,
            kb: bwd.k,
            fwd_idx: fwd.idx,
            bwd_idx: bwd.idx,
        })
    }

    /// `margin(cos(x_i, y_j), (fwd_mean[i] + bwd_mean[j]) / 2)`.
    pub fn score(&self, i: usize, j: usize) -> f32 {
        let d = self.d;
        let cos = dot(&self.x[i * d..(i + 1) * d], &self.y[j * d..(j + 1) * d]);
        self.margin.apply(cos, (self.fwd_mean[i] + self.bwd_mean[j]) / 2.0)
    }

    /// The k nearest targets of source `i`, nearest first.
    pub fn fwd_neighbours(&self, i: usize) -> &[usize] {
        &self.fwd_idx[i * self.kf..(i + 1) * self.kf]
    }

    /// The k nearest sources of target `j`, nearest first.
    pub fn bwd_neighbours(&self, j: usize) -> &[usize] {
        &self.bwd_idx[j * self.kb..(j + 1) * self.kb]
    }

    /// Best-scoring target among source `i`'s neighbours (first on ties, as `argmax`).
    pub fn best_target(&self, i: usize) -> Result<(usize, f32)> {
        best(self.fwd_neighbours(i).iter().map(|&j| (j, self.score(i, j))), || format!("source row {i}"))
    }

    /// Best-scoring source among target `j`'s neighbours.
    pub fn best_source(&self, j: usize) -> Result<(usize, f32)> {
        best(self.bwd_neighbours(j).iter().map(|&i| (i, self.score(i, j))), || format!("target row {j}"))
    }
}

/// First maximum of (index, score) items; a NaN score (all-zero embeddings on both sides) is an
/// error rather than an arbitrary pick.
fn best(items: impl Iterator<Item = (usize, f32)>, what: impl Fn() -> String) -> Result<(usize, f32)> {
    let mut out: Option<(usize, f32)> = None;
    for (j, s) in items {
        if s.is_nan() {
            return Err(Error::Data(format!("bitext mining: undefined margin score for {} (zero vectors?)", what())));
        }
        if out.is_none_or(|(_, b)| s > b) {
            out = Some((j, s));
        }
    }
    out.ok_or_else(|| Error::Usage(format!("bitext mining: no neighbour for {}", what())))
}

/// `mine_bitext(mode='mine')` on (nx, d) source and (ny, d) target embeddings (one row per
/// distinct sentence): candidate pairs of row indices with their margin scores, in the order
/// the official script writes them. For `Max`, ties in score are taken in proposal order
/// (all forward proposals, then all backward), where numpy's unstable sort leaves it open.
pub fn mine(x: &[f32], y: &[f32], d: usize, opts: &MineOptions) -> Result<Vec<Candidate>> {
    let sc = MarginScorer::new(x, y, d, opts.k, opts.margin)?;
    let (nx, ny) = (sc.fwd_mean.len(), sc.bwd_mean.len());
    let fwd: Vec<(usize, f32)> = (0..nx).map(|i| sc.best_target(i)).collect::<Result<_>>()?;
    let bwd: Vec<(usize, f32)> = (0..ny).map(|j| sc.best_source(j)).collect::<Result<_>>()?;
    let cand = |src: usize, trg: usize, s: f32| Candidate { src, trg, score: f64::from(s) };
    Ok(match opts.retrieval {
        Retrieval::Forward => fwd.iter().enumerate().map(|(i, &(j, s))| cand(i, j, s)).collect(),
        Retrieval::Backward => bwd.iter().enumerate().map(|(j, &(i, s))| cand(i, j, s)).collect(),
        Retrieval::Intersect => {
            fwd.iter().enumerate().filter(|&(i, &(j, _))| bwd[j].0 == i).map(|(i, &(j, s))| cand(i, j, s)).collect()
        }
        Retrieval::Max => {
            let proposals: Vec<Candidate> = fwd
                .iter()
                .enumerate()
                .map(|(i, &(j, s))| cand(i, j, s))
                .chain(bwd.iter().enumerate().map(|(j, &(i, s))| cand(i, j, s)))
                .collect();
            let mut order: Vec<usize> = (0..proposals.len()).collect();
            order.sort_by(|&a, &b| proposals[b].score.total_cmp(&proposals[a].score));
            let (mut seen_src, mut seen_trg) = (vec![false; nx], vec![false; ny]);
            let mut out = Vec::new();
            for p in order.into_iter().map(|o| proposals[o]) {
                if !seen_src[p.src] && !seen_trg[p.trg] {
                    seen_src[p.src] = true;
                    seen_trg[p.trg] = true;
                    if p.score > opts.threshold {
                        out.push(p);
                    }
                }
            }
            out
        }
    })
}

/// What to do with a sentence text that occurs under several ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Duplicates {
    /// Drop it from the candidates (XTREME `read_sent2id`).
    #[default]
    Drop,
    /// Map it to every id that carries it (jiant).
    Expand,
}

/// One side of a BUCC corpus: ids, texts and their (n, d) embeddings, row i for sentence i.
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    /// Sentence ids (e.g. `de-000000001`).
    pub ids: &'a [String],
    /// Sentence texts; identical texts are mined once.
    pub texts: &'a [String],
    /// (n, d) embeddings.
    pub emb: &'a [f32],
}

/// A candidate id pair with its margin score.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredPair {
    /// Source sentence id.
    pub src: String,
    /// English sentence id.
    pub trg: String,
    /// Margin score.
    pub score: f64,
}

/// Distinct texts of one side: for each, the rows carrying it, and the row whose embedding
/// represents it (the last one, as `unique_embeddings` keeps).
fn unify(side: &Side<'_>, d: usize, name: &str) -> Result<(Vec<Vec<usize>>, Vec<f32>)> {
    let n = check_matrix(side.emb, d, name)?;
    if side.ids.len() != n || side.texts.len() != n {
        return Err(Error::Usage(format!(
            "{name}: {} ids, {} texts and {n} embedding rows should all be equal",
            side.ids.len(),
            side.texts.len()
        )));
    }
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for (r, t) in side.texts.iter().enumerate() {
        let u = *first.entry(t.as_str()).or_insert_with(|| {
            rows.push(Vec::new());
            rows.len() - 1
        });
        rows[u].push(r);
    }
    let mut emb = Vec::with_capacity(rows.len() * d); // (n_unique, d)
    for rs in &rows {
        let r = rs[rs.len() - 1];
        emb.extend_from_slice(&side.emb[r * d..(r + 1) * d]);
    }
    Ok((rows, emb))
}

/// Mines a BUCC side pair end to end: distinct texts, [`mine`], then back to id pairs under
/// `dup`, keeping the max score per id pair, in first-seen order (the order of the official
/// candidates file, which `bucc_optimize`'s stable sort depends on).
pub fn mine_pairs(
    src: &Side<'_>,
    trg: &Side<'_>,
    d: usize,
    opts: &MineOptions,
    dup: Duplicates,
) -> Result<Vec<ScoredPair>> {
    let (src_rows, x) = unify(src, d, "source")?;
    let (trg_rows, y) = unify(trg, d, "target")?;
    let cands = mine(&x, &y, d, opts)?;
    let ids = |rows: &[usize]| -> Vec<usize> {
        match dup {
            Duplicates::Drop if rows.len() > 1 => Vec::new(),
            _ => rows.to_vec(),
        }
    };
    let mut at: HashMap<(usize, usize), usize> = HashMap::new();
    let mut out: Vec<ScoredPair> = Vec::new();
    for c in cands {
        for &s in &ids(&src_rows[c.src]) {
            for &t in &ids(&trg_rows[c.trg]) {
                match at.get(&(s, t)) {
                    Some(&p) => out[p].score = out[p].score.max(c.score),
                    None => {
                        at.insert((s, t), out.len());
                        out.push(ScoredPair { src: src.ids[s].clone(), trg: trg.ids[t].clone(), score: c.score });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Precision, recall and F1 of a set of predicted pairs, fractions in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prf {
    /// correct / predicted (0 when nothing is correct).
    pub precision: f64,
    /// correct / gold (0 when nothing is correct).
    pub recall: f64,
    /// 2PR / (P + R) (0 when nothing is correct).
    pub f1: f64,
    /// Predicted pairs that are gold.
    pub n_correct: usize,
    /// Distinct predicted pairs.
    pub n_pred: usize,
    /// Distinct gold pairs.
    pub n_gold: usize,
}

/// XTREME `bucc_f1`: set intersection of predicted and gold pairs.
pub fn prf(pred: &HashSet<Pair>, gold: &HashSet<Pair>) -> Prf {
    let n_correct = pred.iter().filter(|p| gold.contains(*p)).count();
    let (n_pred, n_gold) = (pred.len(), gold.len());
    let (precision, recall, f1) = if n_correct > 0 {
        let p = n_correct as f64 / n_pred as f64;
        let r = n_correct as f64 / n_gold as f64;
        (p, r, 2.0 * p * r / (p + r))
    } else {
        (0.0, 0.0, 0.0)
    };
    Prf { precision, recall, f1, n_correct, n_pred, n_gold }
}

/// `bucc_optimize`: the threshold that maximises F1 against `gold`. Candidates are sorted by
/// score, descending and stable; at each new best F1 the threshold becomes the midpoint of this
/// score and the next. Where the best prefix is the whole list (the official code raises an
/// IndexError there) the threshold is the last score, which keeps every candidate. 0 when no
/// candidate is gold.
pub fn optimize_threshold(cands: &[ScoredPair], gold: &HashSet<Pair>) -> f64 {
    let mut order: Vec<&ScoredPair> = cands.iter().collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    let (mut ncorrect, mut threshold, mut best_f1) = (0usize, 0.0f64, 0.0f64);
    for (pos, c) in order.iter().enumerate() {
        let nextract = pos + 1;
        if gold.contains(&(c.src.clone(), c.trg.clone())) {
            ncorrect += 1;
        }
        if ncorrect > 0 {
            let p = ncorrect as f64 / nextract as f64;
            let r = ncorrect as f64 / gold.len() as f64;
            let f1 = 2.0 * p * r / (p + r);
            if f1 > best_f1 {
                best_f1 = f1;
                threshold = match order.get(pos + 1) {
                    Some(next) => (c.score + next.score) / 2.0,
                    None => c.score,
                };
            }
        }
    }
    threshold
}

/// `bucc_extract`: the pairs scoring at least `threshold`.
pub fn extract(cands: &[ScoredPair], threshold: f64) -> HashSet<Pair> {
    cands.iter().filter(|c| c.score >= threshold).map(|c| (c.src.clone(), c.trg.clone())).collect()
}

/// Outcome of [`tune_and_evaluate`].
#[derive(Clone, Debug, PartialEq)]
pub struct BuccResult {
    /// Threshold tuned on dev.
    pub threshold: f64,
    /// Dev scores at that threshold.
    pub dev: Prf,
    /// Test pairs extracted at that threshold.
    pub test_pairs: HashSet<Pair>,
    /// Test scores, when test gold is given.
    pub test: Option<Prf>,
}

/// The XTREME protocol: threshold tuned on the dev candidates against dev gold, then applied
/// to the test candidates (scored when test gold is available).
pub fn tune_and_evaluate(
    dev: &[ScoredPair],
    dev_gold: &HashSet<Pair>,
    test: &[ScoredPair],
    test_gold: Option<&HashSet<Pair>>,
) -> Result<BuccResult> {
    if dev_gold.is_empty() {
        return Err(Error::Data("BUCC: the dev gold set is empty; no threshold can be tuned".into()));
    }
    let threshold = optimize_threshold(dev, dev_gold);
    let dev = prf(&extract(dev, threshold), dev_gold);
    let test_pairs = extract(test, threshold);
    let test = test_gold.map(|g| prf(&test_pairs, g));
    Ok(BuccResult { threshold, dev, test_pairs, test })
}
