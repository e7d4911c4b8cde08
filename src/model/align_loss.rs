//! awesome-align's self-training objective (`so`, Dou & Neubig 2021, `BertGuideHead`) on the
//! host: the loss of a batch of sentence pairs from one layer's hidden states, and its gradient
//! with respect to those hidden states. Both backends run the encoder to the layer, call
//! [`so_forward_backward`] on the hidden states, and run the encoder backward from the layer
//! ([`crate::model::TaskModel::accumulate_so`]); the objective has no parameters of its own.
//!
//! For a pair with source pieces H_s (m, C) and target pieces H_t (n, C) (special and padding
//! positions excluded), S = H_s·H_tᵀ (raw dot products), A = softmax of each row of S (over the
//! target), B = softmax of each column (over the source), and G (m, n) the guide: 1 where the
//! two pieces' words are aligned by the model's own current alignment (computed by the caller).
//! The pair's loss is −(Σ A⊙G / m + Σ B⊙G / n); the batch's loss is the mean over its pairs.
//! Probabilities, not log-probabilities, as awesome-align's `so_loss`. With
//! [`SoBatch::consistency`], awesome-align's `co_loss` joins it: −trace(A·Bᵀ) / min(m, n).

use super::batch::Batch;
use crate::error::{Error, Result};

/// A batch of sentence pairs for the self-training objective.
#[derive(Clone, Debug)]
pub struct SoBatch {
    /// 2P sequences padded to T: rows 0..P the pairs' source sides, rows P..2P their target
    /// sides, each `[CLS] pieces [SEP]` / `<s> pieces </s>`.
    pub batch: Batch,
    /// (P) the pieces of each pair's source and target side (m, n): rows 1..=m and 1..=n.
    pub lens: Vec<(usize, usize)>,
    /// (P) each pair's guide (m, n), row-major: 1.0 where the pieces' words are aligned, else 0.
    pub guide: Vec<Vec<f32>>,
    /// Adds awesome-align's consistency objective (`co`): −Σ A⊙B / min(m, n) per pair, the
    /// two directions' probabilities made to agree.
    pub consistency: bool,
}

impl SoBatch {
    /// Pairs in the batch.
    pub fn pairs(&self) -> usize {
        self.lens.len()
    }

    /// An error when the parts do not fit together (a library misuse, not bad data).
    pub fn check(&self) -> Result<()> {
        let (b, t, p) = (self.batch.b, self.batch.t, self.pairs());
        let bad = |what: String| Err(Error::Usage(format!("self-training batch: {what}")));
        if p == 0 || b != 2 * p {
            return bad(format!("{b} sequences for {p} pairs (expected two per pair, at least one pair)"));
        }
        if self.guide.len() != p {
            return bad(format!("{} guides for {p} pairs", self.guide.len()));
        }
        for (k, (&(m, n), g)) in self.lens.iter().zip(&self.guide).enumerate() {
            if m == 0 || n == 0 || m + 2 > t || n + 2 > t {
                return bad(format!("pair {k} has {m} and {n} pieces in sequences of {t} positions"));
            }
            if g.len() != m * n {
                return bad(format!("pair {k}'s guide has {} entries for {m} × {n} pieces", g.len()));
            }
        }
        Ok(())
    }
}

/// The mean self-training loss of `sb` from `hidden` (2P, T, C), hidden states of the layer
/// the objective reads. With `dhidden` (2P, T, C), also writes dLoss/dhidden there (zero at
/// special and padding positions), overwriting it. Sums in f64.
pub fn so_forward_backward(mut dhidden: Option<&mut [f32]>, hidden: &[f32], sb: &SoBatch, c: usize) -> f32 {
    let (p, t) = (sb.pairs(), sb.batch.t);
    if let Some(d) = dhidden.as_deref_mut() {
        d.fill(0.0);
    }
    let row = |seq: usize, pos: usize| (seq * t + pos) * c;
    let mut total = 0.0f64;
    for (k, (&(m, n), g)) in sb.lens.iter().zip(&sb.guide).enumerate() {
        let (s0, t0) = (row(k, 1), row(p + k, 1));
        let hs = &hidden[s0..s0 + m * c];
        let ht = &hidden[t0..t0 + n * c];
        // S (m, n)
        let mut s = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let (a, b) = (&hs[i * c..(i + 1) * c], &ht[j * c..(j + 1) * c]);
                s[i * n + j] = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
            }
        }
        // A: softmax over each row; B: softmax over each column.
        let mut a = s.clone();
        for r in a.chunks_exact_mut(n) {
            let mx = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            r.iter_mut().for_each(|v| *v = (*v - mx).exp());
            let z: f64 = r.iter().sum();
            r.iter_mut().for_each(|v| *v /= z);
        }
        let mut bm = s;
        for j in 0..n {
            let mx = (0..m).map(|i| bm[i * n + j]).fold(f64::NEG_INFINITY, f64::max);
            let mut z = 0.0;
            for i in 0..m {
                let e = (bm[i * n + j] - mx).exp();
                bm[i * n + j] = e;
                z += e;
            }
            (0..m).for_each(|i| bm[i * n + j] /= z);
        }
        let (mf, nf, pf) = (m as f64, n as f64, p as f64);
        let sa: f64 = a.iter().zip(g).map(|(&x, &w)| x * w as f64).sum();
        let sbv: f64 = bm.iter().zip(g).map(|(&x, &w)| x * w as f64).sum();
        total += -(sa / mf + sbv / nf);
        // Consistency: −trace(A·Bᵀ) / min(m, n) = −Σ A⊙B / min(m, n).
        let kf = m.min(n) as f64;
        if sb.consistency {
            total += -a.iter().zip(&bm).map(|(&x, &y)| x * y).sum::<f64>() / kf;
        }
        let Some(d) = dhidden.as_deref_mut() else { continue };
        // dA = −G / (m·P) [− B / (min·P)], dB = −G / (n·P) [− A / (min·P)].
        let mut da: Vec<f64> = g.iter().map(|&w| -(w as f64) / (mf * pf)).collect();
        let mut db: Vec<f64> = g.iter().map(|&w| -(w as f64) / (nf * pf)).collect();
        if sb.consistency {
            for k in 0..m * n {
                da[k] -= bm[k] / (kf * pf);
                db[k] -= a[k] / (kf * pf);
            }
        }
        // Through the row softmax (A) and the column softmax (B) to dS.
        let mut ds = vec![0.0f64; m * n];
        for i in 0..m {
            let r = i * n..(i + 1) * n;
            let dot: f64 = a[r.clone()].iter().zip(&da[r.clone()]).map(|(&x, &y)| x * y).sum();
            for k in r {
                ds[k] += a[k] * (da[k] - dot);
            }
        }
        for j in 0..n {
            let dot: f64 = (0..m).map(|i| bm[i * n + j] * db[i * n + j]).sum();
            for i in 0..m {
                let k = i * n + j;
                ds[k] += bm[k] * (db[k] - dot);
            }
        }
        // dH_s = dS·H_t, dH_t = dSᵀ·H_s.
        for i in 0..m {
            let out = &mut d[s0 + i * c..s0 + (i + 1) * c];
            for j in 0..n {
                let w = ds[i * n + j];
                for (o, &y) in out.iter_mut().zip(&ht[j * c..(j + 1) * c]) {
                    *o += (w * y as f64) as f32;
                }
            }
        }
        for j in 0..n {
            let out = &mut d[t0 + j * c..t0 + (j + 1) * c];
            for i in 0..m {
                let w = ds[i * n + j];
                for (o, &x) in out.iter_mut().zip(&hs[i * c..(i + 1) * c]) {
                    *o += (w * x as f64) as f32;
                }
            }
        }
    }
    (total / p as f64) as f32
}
