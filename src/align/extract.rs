//! Alignment links from the hidden states of the two sides of a pair (one row per sub-word
//! piece, special tokens already dropped), then mapped from pieces to words.
//!
//! - `softmax` (awesome-align, `BertForMaskedLM.get_aligned_word`): S = H_src · H_tgtᵀ, raw dot
//!   products; P_s→t = softmax of each row, P_t→s = softmax of each column; pieces (i, j) are
//!   linked iff both probabilities are strictly above the threshold τ.
//! - `argmax` (SimAlign's "inter"): sim = (cos + 1) / 2; (i, j) is linked iff j is the largest of
//!   row i and i the largest of column j (ties go to the first index, as `numpy.argmax`).
//! - `itermax` (SimAlign's `iter_max`, two rounds, α = 0.9): the argmax links; then, unless the
//!   shorter side has at most 2 pieces, one more round over the rows and columns still free:
//!   each entry weighted by min(1, 0.9·[row free] + 0.9·[column free]), and mutual row/column
//!   maxima added where the row or the column is free (none when no row or no column is free).
//!
//! A word pair is linked iff any of its piece pairs is.

use super::pharaoh::Link;

/// How links are extracted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// awesome-align's bidirectional softmax with threshold τ.
    Softmax {
        /// τ: both probabilities must be strictly above it.
        threshold: f32,
    },
    /// SimAlign's mutual argmax of (cos + 1) / 2.
    Argmax,
    /// SimAlign's IterMax (two rounds, α = 0.9).
    Itermax,
}

/// A similarity or score matrix (m, n), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// m · n values; entry (i, j) at i · n + j.
    pub data: Vec<f32>,
    /// Rows (source pieces).
    pub m: usize,
    /// Columns (target pieces).
    pub n: usize,
}

impl Matrix {
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.n + j]
    }
}

/// Raw dot products S (m, n) = src (m, C) · tgt (n, C)ᵀ, accumulated in f64.
pub fn dot_products(src: &[f32], tgt: &[f32], c: usize) -> Matrix {
    let (m, n) = (src.len() / c.max(1), tgt.len() / c.max(1));
    let mut data = Vec::with_capacity(m * n);
    for a in src.chunks_exact(c) {
        for b in tgt.chunks_exact(c) {
            data.push(a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() as f32);
        }
    }
    Matrix { data, m, n }
}

/// SimAlign's similarity (m, n): (cos(src_i, tgt_j) + 1) / 2, a zero vector having cosine 0.
pub fn cosine_similarity(src: &[f32], tgt: &[f32], c: usize) -> Matrix {
    let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let (ns, nt): (Vec<f64>, Vec<f64>) =
        (src.chunks_exact(c).map(norm).collect(), tgt.chunks_exact(c).map(norm).collect());
    let mut data = Vec::with_capacity(ns.len() * nt.len());
    for (a, &na) in src.chunks_exact(c).zip(&ns) {
        for (b, &nb) in tgt.chunks_exact(c).zip(&nt) {
            let dot = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>();
            let cos = if na > 0.0 && nb > 0.0 { dot / (na * nb) } else { 0.0 };
            data.push(((cos + 1.0) / 2.0) as f32);
        }
    }
    Matrix { data, m: ns.len(), n: nt.len() }
}

/// awesome-align's links: (i, j) where softmax over row i and softmax over column j of the
/// scores `s` both exceed `threshold`.
#[allow(clippy::needless_range_loop)] // (i, j) indexing reads as the matrix definitions do
pub fn softmax_links(s: &Matrix, threshold: f32) -> Vec<Link> {
    let (m, n) = (s.m, s.n);
    // Row softmax (over targets) and column softmax (over sources), in f64.
    let mut row_max = vec![f64::NEG_INFINITY; m];
    let mut col_max = vec![f64::NEG_INFINITY; n];
    for i in 0..m {
        for j in 0..n {
            let v = s.at(i, j) as f64;
            row_max[i] = row_max[i].max(v);
            col_max[j] = col_max[j].max(v);
        }
    }
    let mut row_sum = vec![0.0f64; m];
    let mut col_sum = vec![0.0f64; n];
    for i in 0..m {
        for j in 0..n {
            let v = s.at(i, j) as f64;
            row_sum[i] += (v - row_max[i]).exp();
            col_sum[j] += (v - col_max[j]).exp();
        }
    }
    let tau = threshold as f64;
    let mut links = Vec::new();
    for i in 0..m {
        for j in 0..n {
            let v = s.at(i, j) as f64;
            let p_st = (v - row_max[i]).exp() / row_sum[i];
            let p_ts = (v - col_max[j]).exp() / col_sum[j];
            if p_st > tau && p_ts > tau {
                links.push((i, j));
            }
        }
    }
    links
}

/// The first index of the largest value of each row and of each column of `s`.
#[allow(clippy::needless_range_loop)] // (i, j) indexing reads as the matrix definitions do
fn row_col_argmax(s: &Matrix) -> (Vec<usize>, Vec<usize>) {
    let mut rows = vec![0usize; s.m];
    let mut cols = vec![0usize; s.n];
    for i in 0..s.m {
        for j in 1..s.n {
            if s.at(i, j) > s.at(i, rows[i]) {
                rows[i] = j;
            }
        }
    }
    for j in 0..s.n {
        for i in 1..s.m {
            if s.at(i, j) > s.at(cols[j], j) {
                cols[j] = i;
            }
        }
    }
    (rows, cols)
}

/// SimAlign's "inter": (i, j) with j the row maximum of i and i the column maximum of j.
pub fn argmax_links(sim: &Matrix) -> Vec<Link> {
    let (rows, cols) = row_col_argmax(sim);
    (0..sim.m).filter(|&i| sim.n > 0 && cols[rows[i]] == i).map(|i| (i, rows[i])).collect()
}

/// SimAlign's IterMax with two rounds and α = 0.9 (see the module documentation).
pub fn itermax_links(sim: &Matrix) -> Vec<Link> {
    const ALPHA: f32 = 0.9;
    let (m, n) = (sim.m, sim.n);
    let mut links = argmax_links(sim);
    if m.min(n) <= 2 {
        return links;
    }
    let mut row_free = vec![true; m];
    let mut col_free = vec![true; n];
    for &(i, j) in &links {
        row_free[i] = false;
        col_free[j] = false;
    }
    if !row_free.iter().any(|&f| f) || !col_free.iter().any(|&f| f) {
        return links;
    }
    let weight = |i: usize, j: usize| (ALPHA * row_free[i] as u8 as f32 + ALPHA * col_free[j] as u8 as f32).min(1.0);
    let weighted = Matrix { data: (0..m * n).map(|k| sim.data[k] * weight(k / n, k % n)).collect(), m, n };
    for (i, j) in argmax_links(&weighted) {
        if row_free[i] || col_free[j] {
            links.push((i, j));
        }
    }
    links.sort_unstable();
    links
}

/// Piece links of `method` for one pair: `src` (m, C) and `tgt` (n, C) hidden states.
pub fn piece_links(method: Method, src: &[f32], tgt: &[f32], c: usize) -> Vec<Link> {
    if src.is_empty() || tgt.is_empty() {
        return Vec::new();
    }
    match method {
        Method::Softmax { threshold } => softmax_links(&dot_products(src, tgt, c), threshold),
        Method::Argmax => argmax_links(&cosine_similarity(src, tgt, c)),
        Method::Itermax => itermax_links(&cosine_similarity(src, tgt, c)),
    }
}

/// Word links from piece links: piece i of the source belongs to word `src_words[i]`, piece j
/// of the target to `tgt_words[j]`; distinct and sorted by (source word, target word).
pub fn word_links(pieces: &[Link], src_words: &[usize], tgt_words: &[usize]) -> Vec<Link> {
    let mut w: Vec<Link> = pieces.iter().map(|&(i, j)| (src_words[i], tgt_words[j])).collect();
    w.sort_unstable();
    w.dedup();
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(rows: &[&[f32]]) -> Matrix {
        Matrix { data: rows.iter().flat_map(|r| r.iter().copied()).collect(), m: rows.len(), n: rows[0].len() }
    }

    #[test]
    fn softmax_links_need_both_directions_above_the_threshold() {
        // Row 0 prefers column 0 sharply; column 1 is nobody's (its column softmax is flat over
        // two rows but row 1 puts almost nothing there).
        let s = mat(&[&[10.0, 0.0, 0.0], &[0.0, -20.0, 9.0]]);
        // p_st row 0: [~1, 4.5e-5, 4.5e-5]; row 1: [1.2e-4, ~0, ~1].
        // p_ts col 0: [~1, 4.5e-5]; col 1: [~1, ~0]; col 2: [1.2e-4, ~1].
        assert_eq!(softmax_links(&s, 1e-3), vec![(0, 0), (1, 2)]);
        // A threshold below 4.5e-5 admits (0, 1)? p_st(0,1) = 4.5e-5 but p_ts(0,1) ≈ 1: yes.
        assert_eq!(softmax_links(&s, 1e-5), vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 2)]);
        // Strictly above: a uniform 2 × 2 gives 0.5 everywhere, not above 0.5.
        let u = mat(&[&[1.0, 1.0], &[1.0, 1.0]]);
        assert!(softmax_links(&u, 0.5).is_empty());
        assert_eq!(softmax_links(&u, 0.4999).len(), 4);
    }

    #[test]
    fn argmax_is_mutual_with_ties_to_the_first_index() {
        let sim = mat(&[&[0.9, 0.1, 0.2], &[0.8, 0.3, 0.1], &[0.1, 0.7, 0.7]]);
        // Row maxima: 0→0, 1→0, 2→1 (tie 1/2 → first). Column maxima: 0→0, 1→2, 2→2.
        assert_eq!(argmax_links(&sim), vec![(0, 0), (2, 1)]);
    }

    #[test]
    fn itermax_adds_mutual_maxima_among_free_rows_and_columns() {
        let sim = mat(&[&[0.9, 0.1, 0.2], &[0.8, 0.3, 0.1], &[0.1, 0.7, 0.7]]);
        // Round 1: (0, 0), (2, 1). Free: row 1, column 2. Weights: row 1 × 0.9 (col 0, 1) or
        // 1.0 (col 2: both free, 1.8 → 1); row 0/2 × 0.9 in col 2, × 0 elsewhere.
        // Weighted: [[0, 0, .18], [.72, .27, .1], [0, 0, .63]]. Row maxima: 0→2, 1→0, 2→2;
        // column maxima: 0→1, 1→1, 2→2. Mutual: (1, 0) (row 1 free), (2, 2) (column 2 free).
        assert_eq!(itermax_links(&sim), vec![(0, 0), (1, 0), (2, 1), (2, 2)]);
        // The shorter side has ≤ 2 pieces: argmax alone.
        let small = mat(&[&[0.9, 0.1, 0.2], &[0.8, 0.3, 0.1]]);
        assert_eq!(itermax_links(&small), argmax_links(&small));
        // Nothing free on one side: no second round.
        let diag = mat(&[&[0.9, 0.1, 0.1, 0.5], &[0.1, 0.9, 0.1, 0.5], &[0.1, 0.1, 0.9, 0.5]]);
        assert_eq!(itermax_links(&diag), vec![(0, 0), (1, 1), (2, 2)]);
    }

    #[test]
    fn similarities_and_word_mapping() {
        let src = [1.0, 0.0, 0.0, 2.0]; // two pieces, C = 2
        let tgt = [3.0, 0.0, -1.0, 0.0, 0.0, 0.0];
        let cos = cosine_similarity(&src, &tgt, 2);
        assert_eq!(cos.data, vec![1.0, 0.0, 0.5, 0.5, 0.5, 0.5]);
        assert_eq!(dot_products(&src, &tgt, 2).data, vec![3.0, -1.0, 0.0, 0.0, 0.0, 0.0]);
        // Pieces 0, 1 → word 0; piece 2 → word 1; pieces of the target one word each.
        assert_eq!(word_links(&[(1, 1), (0, 1), (2, 0), (2, 0)], &[0, 0, 1], &[0, 1]), vec![(0, 1), (1, 0)]);
    }
}
