//! Brute-force cosine k-nearest-neighbour search over row-major embedding matrices, the
//! exact search faiss `IndexFlatIP` / `IndexFlatL2` performs for BUCC mining and Tatoeba.
//!
//! Queries are processed in blocks in parallel (rayon); each block's similarities to a block
//! of the base come from one single-threaded GEMM, then a k-best list per query is updated.

use crate::cpu::gemm::{sgemm, Mat, Par};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Query rows per parallel work item.
const QUERY_BLOCK: usize = 64;
/// Base rows per GEMM.
const BASE_BLOCK: usize = 1024;

/// Checks that `x` is an (n, d) matrix of finite values and returns n. `name` appears in the
/// error.
pub fn check_matrix(x: &[f32], d: usize, name: &str) -> Result<usize> {
    if d == 0 {
        return Err(Error::Usage(format!("{name} embeddings: dimension must be positive")));
    }
    if !x.len().is_multiple_of(d) {
        return Err(Error::Usage(format!(
            "{name} embeddings: {} values is not a whole number of rows of dimension {d}",
            x.len()
        )));
    }
    if let Some(p) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Data(format!("{name} embeddings: row {} holds a non-finite value {}", p / d, x[p])));
    }
    Ok(x.len() / d)
}

/// Divides each row of the (n, d) matrix `x` by its L2 norm, in place; all-zero rows stay zero
/// (faiss `normalize_L2`).
pub fn l2_normalize_rows(x: &mut [f32], d: usize) {
    if d == 0 {
        return;
    }
    x.par_chunks_mut(d).for_each(|row| {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            let inv = 1.0 / norm;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    });
}

/// Dot product of two rows, summed left to right in f32.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The k best base rows of each query row.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbours {
    /// Neighbours per query (the requested k, capped at the number of base rows).
    pub k: usize,
    /// (n_queries, k) inner products, best first.
    pub sims: Vec<f32>,
    /// (n_queries, k) base row indices matching `sims`.
    pub idx: Vec<usize>,
}

impl Neighbours {
    /// Similarities of query `q`, best first.
    pub fn sims_of(&self, q: usize) -> &[f32] {
        &self.sims[q * self.k..(q + 1) * self.k]
    }
    /// Base indices of query `q`, best first.
    pub fn idx_of(&self, q: usize) -> &[usize] {
        &self.idx[q * self.k..(q + 1) * self.k]
    }
}

/// Inserts (v, j) into the descending list `sims`/`idx` holding `len` entries (capacity k).
/// Ties keep the earlier base row first, since rows arrive in increasing order.
fn push_best(sims: &mut [f32], idx: &mut [usize], len: &mut usize, v: f32, j: usize) {
    let k = sims.len();
    if *len == k && v <= sims[k - 1] {
        return;
    }
    let mut p = (*len).min(k - 1);
    while p > 0 && sims[p - 1] < v {
        sims[p] = sims[p - 1];
        idx[p] = idx[p - 1];
        p -= 1;
    }
    sims[p] = v;
    idx[p] = j;
    *len = (*len + 1).min(k);
}

/// Exact k-NN by inner product: for each row of `queries` (nq, d), the `k` rows of `base`
/// (nb, d) with the largest dot products, best first (ties: lower base index first). With
/// L2-normalised inputs this is cosine k-NN. `k` is capped at nb; nb and k must be positive.
pub fn knn_inner_product(queries: &[f32], base: &[f32], d: usize, k: usize) -> Result<Neighbours> {
    let nq = check_matrix(queries, d, "query")?;
    let nb = check_matrix(base, d, "base")?;
    if nb == 0 {
        return Err(Error::Usage("k-NN: the base set is empty".into()));
    }
    if k == 0 {
        return Err(Error::Usage("k-NN: k must be positive".into()));
    }
    let k = k.min(nb);
    let mut sims = vec![f32::NEG_INFINITY; nq * k]; // (nq, k)
    let mut idx = vec![0usize; nq * k]; // (nq, k)
    sims.par_chunks_mut(QUERY_BLOCK * k).zip(idx.par_chunks_mut(QUERY_BLOCK * k)).enumerate().for_each(
        |(blk, (s, ix))| {
            let q0 = blk * QUERY_BLOCK;
            let qn = s.len() / k;
            let q = &queries[q0 * d..(q0 + qn) * d]; // (qn, d)
            let mut scratch = vec![0.0f32; qn * BASE_BLOCK]; // (qn, bn)
            let mut len = vec![0usize; qn];
            for b0 in (0..nb).step_by(BASE_BLOCK) {
                let bn = BASE_BLOCK.min(nb - b0);
                let b = &base[b0 * d..(b0 + bn) * d]; // (bn, d)
                                                      // (qn, bn) = (qn, d) · (bn, d)ᵀ
                sgemm(qn, bn, d, &mut scratch, bn, Mat::n(q, d), Mat::t(b, d), false, Par::Serial);
                for r in 0..qn {
                    let row = &scratch[r * bn..(r + 1) * bn];
                    let (rs, ri) = (&mut s[r * k..(r + 1) * k], &mut ix[r * k..(r + 1) * k]);
                    for (j, &v) in row.iter().enumerate() {
                        push_best(rs, ri, &mut len[r], v, b0 + j);
                    }
                }
            }
        },
    );
    Ok(Neighbours { k, sims, idx })
}

/// Cosine k-NN: L2-normalised copies of both matrices, then [`knn_inner_product`].
pub fn knn_cosine(queries: &[f32], base: &[f32], d: usize, k: usize) -> Result<Neighbours> {
    check_matrix(queries, d, "query")?;
    check_matrix(base, d, "base")?;
    let mut q = queries.to_vec();
    let mut b = base.to_vec();
    l2_normalize_rows(&mut q, d);
    l2_normalize_rows(&mut b, d);
    knn_inner_product(&q, &b, d, k)
}
