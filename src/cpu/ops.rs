//! The reference ops: every layer of the encoder and its heads, forward and backward, in f32.
//!
//! Argument order everywhere: outputs, inputs, sizes (the CUDA kernels use the same order).
//! Gradient convention: parameter gradients accumulate (`+=`); activation gradients are
//! overwritten, except where a function's doc says it accumulates (the residual stream).
//! Shapes: B batch, T time, C channels, NH heads, HS head size, OC output channels, N = B*T rows.

use super::gemm::{sgemm, Mat, Par};
use super::math::{dot, erf, exp, sum};
use crate::model::batch::IGNORE_INDEX;
use crate::model::optim::AdamWConfig;
use crate::rng;
use rayon::prelude::*;

/// Defines an element-wise kernel twice, for the build's target and for AVX-512 (16 lanes
/// instead of 8), and picks the copy the CPU supports at run time.
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn portable($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn wide($($arg: $ty),*) {
                portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F, checked just above.
                return unsafe { wide($($arg),*) };
            }
            portable($($arg),*)
        }
    };
}

/// Rows per rayon task for row-wise ops: large enough to amortise scheduling.
const ROWS_PER_TASK: usize = 16;
/// Rows per block of the deterministic parameter-gradient reductions.
const REDUCE_ROWS: usize = 64;
/// Elements per rayon task for element-wise ops.
const ELEMS_PER_TASK: usize = 1 << 14;

// ----------------------------------------------------------------------------------------------
// embeddings

/// out (N, C) = wte[ids] + wpe[pos] + wtt[types]; tables (V, C), (P, C), (TT, C).
pub fn embedding_forward(
    out: &mut [f32],
    ids: &[u32],
    pos: &[u32],
    types: &[u32],
    wte: &[f32],
    wpe: &[f32],
    wtt: &[f32],
    n: usize,
    c: usize,
) {
    out[..n * c].par_chunks_mut(c).enumerate().for_each(|(i, o)| {
        let (w, p, tt) = (ids[i] as usize * c, pos[i] as usize * c, types[i] as usize * c);
        for j in 0..c {
            o[j] = wte[w + j] + wpe[p + j] + wtt[tt + j];
        }
    });
}

/// Scatter-adds dout (N, C) into the rows of dwte (V, C), dwpe (P, C), dwtt (TT, C).
/// Differentiates `o = wte[w] + wpe[p] + wtt[tt]`. Like `nn.Embedding(padding_idx=...)`, the
/// rows `word_pad` of wte and `pos_pad` of wpe receive no gradient (they stay as loaded).
pub fn embedding_backward(
    dwte: &mut [f32],
    dwpe: &mut [f32],
    dwtt: &mut [f32],
    dout: &[f32],
    ids: &[u32],
    pos: &[u32],
    types: &[u32],
    word_pad: Option<u32>,
    pos_pad: Option<u32>,
    n: usize,
    c: usize,
) {
    for i in 0..n {
        let d = &dout[i * c..(i + 1) * c];
        for (table, row, skip) in
            [(&mut *dwte, ids[i], word_pad), (&mut *dwpe, pos[i], pos_pad), (&mut *dwtt, types[i], None)]
        {
            if Some(row) == skip {
                continue;
            }
            let r = &mut table[row as usize * c..(row as usize + 1) * c];
            r.iter_mut().zip(d).for_each(|(g, x)| *g += x);
        }
    }
}

// ----------------------------------------------------------------------------------------------
// layernorm

/// out (N, C) = (inp - mean) * rstd * w + b; saves mean (N) and rstd (N) for the backward.
pub fn layernorm_forward(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    inp: &[f32],
    w: &[f32],
    b: &[f32],
    n: usize,
    c: usize,
    eps: f32,
) {
    out[..n * c]
        .par_chunks_mut(c)
        .zip(mean[..n].par_iter_mut())
        .zip(rstd[..n].par_iter_mut())
        .enumerate()
        .with_min_len(ROWS_PER_TASK)
        .for_each(|(i, ((o, m), r))| {
            let x = &inp[i * c..(i + 1) * c];
            let mu = sum(x) / c as f32;
            let mut centred = [0.0f32; 8];
            let var = {
                let chunks = x.chunks_exact(8);
                let rest: f32 = chunks.remainder().iter().map(|v| (v - mu) * (v - mu)).sum();
                for ch in chunks {
                    for l in 0..8 {
                        centred[l] += (ch[l] - mu) * (ch[l] - mu);
                    }
                }
                (sum(&centred) + rest) / c as f32
            };
            let s = 1.0 / (var + eps).sqrt();
            for j in 0..c {
                o[j] = (x[j] - mu) * s * w[j] + b[j];
            }
            *m = mu;
            *r = s;
        });
}

/// dinp (N, C) = dL/dinp (overwritten); dw, db (C) accumulate.
/// Differentiates `out = (inp - mean) * rstd * w + b`.
pub fn layernorm_backward(
    dinp: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    mean: &[f32],
    rstd: &[f32],
    w: &[f32],
    n: usize,
    c: usize,
) {
    // Fixed blocks of rows, partial sums collected in block order: the result does not depend
    // on how rayon schedules the blocks, so reruns are bit-identical.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dinp[..n * c]
        .par_chunks_mut(REDUCE_ROWS * c)
        .enumerate()
        .map(|(blk, dblk)| {
            let (mut gw, mut gb) = (vec![0.0f32; c], vec![0.0f32; c]);
            for (r, di) in dblk.chunks_mut(c).enumerate() {
                let i = blk * REDUCE_ROWS + r;
                let x = &inp[i * c..(i + 1) * c];
                let d = &dout[i * c..(i + 1) * c];
                let (mu, s) = (mean[i], rstd[i]);
                // dnorm = dout * w; dinp = s * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
                let mut sum_d = 0.0f32;
                let mut sum_dn = 0.0f32;
                for j in 0..c {
                    let norm = (x[j] - mu) * s;
                    let dn = d[j] * w[j];
                    sum_d += dn;
                    sum_dn += dn * norm;
                    gw[j] += d[j] * norm;
                    gb[j] += d[j];
                }
                let (md, mdn) = (sum_d / c as f32, sum_dn / c as f32);
                for j in 0..c {
                    let norm = (x[j] - mu) * s;
                    di[j] = s * (d[j] * w[j] - md - norm * mdn);
                }
            }
            (gw, gb)
        })
        .collect();
    let (mut gw, mut gb) = (vec![0.0f32; c], vec![0.0f32; c]);
    for (pw, pb) in &partials {
        gw.iter_mut().zip(pw).for_each(|(p, q)| *p += q);
        gb.iter_mut().zip(pb).for_each(|(p, q)| *p += q);
    }
    dw.iter_mut().zip(&gw).for_each(|(p, q)| *p += q);
    db.iter_mut().zip(&gb).for_each(|(p, q)| *p += q);
}

// ----------------------------------------------------------------------------------------------
// linear

/// out (N, OC) = inp (N, C) · w (OC, C)^T + bias (OC).
pub fn matmul_forward(out: &mut [f32], inp: &[f32], w: &[f32], bias: Option<&[f32]>, n: usize, c: usize, oc: usize) {
    linear_forward(out, inp, Mat::t(w, c), bias, n, c, oc);
}

/// out (N, OC) = inp (N, C) · op(W) (C, OC) + bias: the bias rows are written first and the
/// GEMM accumulates onto them.
fn linear_forward(out: &mut [f32], inp: &[f32], w: Mat<'_>, bias: Option<&[f32]>, n: usize, c: usize, oc: usize) {
    let out = &mut out[..n * oc];
    if let Some(b) = bias {
        out.par_chunks_mut(oc).with_min_len(ROWS_PER_TASK).for_each(|row| row.copy_from_slice(&b[..oc]));
    }
    sgemm(n, oc, c, out, oc, Mat::n(inp, c), w, bias.is_some(), Par::Pool);
}

/// out (N, OC) = inp (N, C) · wt (C, OC) + bias (OC): the forward on transposed weights
/// (inference only, see `LinearLayout::InOut`).
pub fn matmul_forward_t(out: &mut [f32], inp: &[f32], wt: &[f32], bias: Option<&[f32]>, n: usize, c: usize, oc: usize) {
    linear_forward(out, inp, Mat::n(wt, oc), bias, n, c, oc);
}

/// dinp (N, C) = dout · w (overwritten); dw (OC, C) += dout^T · inp; dbias (OC) += Σ_rows dout.
/// Differentiates `out = inp · w^T + bias`.
pub fn matmul_backward(
    dinp: &mut [f32],
    dw: &mut [f32],
    dbias: Option<&mut [f32]>,
    dout: &[f32],
    inp: &[f32],
    w: &[f32],
    n: usize,
    c: usize,
    oc: usize,
) {
    sgemm(n, c, oc, &mut dinp[..n * c], c, Mat::n(dout, oc), Mat::n(w, c), false, Par::Pool);
    sgemm(oc, c, n, &mut dw[..oc * c], c, Mat::t(dout, oc), Mat::n(inp, c), true, Par::Pool);
    if let Some(db) = dbias {
        bias_backward(db, dout, n, oc);
    }
}

/// dbias (OC) += Σ over rows of dout (N, OC).
pub fn bias_backward(dbias: &mut [f32], dout: &[f32], n: usize, oc: usize) {
    // Fixed blocks summed in order (see layernorm_backward): deterministic.
    let partials: Vec<Vec<f32>> = dout[..n * oc]
        .par_chunks(REDUCE_ROWS * oc)
        .map(|blk| {
            let mut acc = vec![0.0f32; oc];
            for row in blk.chunks(oc) {
                acc.iter_mut().zip(row).for_each(|(a, x)| *a += x);
            }
            acc
        })
        .collect();
    let mut sums = vec![0.0f32; oc];
    for p in &partials {
        sums.iter_mut().zip(p).for_each(|(a, x)| *a += x);
    }
    dbias[..oc].iter_mut().zip(&sums).for_each(|(d, s)| *d += s);
}

// ----------------------------------------------------------------------------------------------
// attention

/// Multi-head self-attention with a key-padding mask.
/// out (B, T, C) = softmax(Q K^T / sqrt(HS) + mask) V per head, with dropout on the
/// probabilities; att (B, NH, T, T) saves the probabilities before dropout.
/// qkv (B, T, 3C) holds Q, K, V side by side; mask (B, T) is 1 for real tokens, 0 for padding.
pub fn attention_forward(
    out: &mut [f32],
    att: &mut [f32],
    qkv: &[f32],
    mask: &[f32],
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    p_drop: f32,
    seed: u64,
) {
    let hs = c / nh;
    let scale = 1.0 / (hs as f32).sqrt();
    out[..b * t * c].par_chunks_mut(t * c).zip(att[..b * nh * t * t].par_chunks_mut(nh * t * t)).enumerate().for_each(
        |(bi, (out_b, att_b))| {
            let qkv_b = &qkv[bi * t * 3 * c..(bi + 1) * t * 3 * c];
            let mask_b = &mask[bi * t..(bi + 1) * t];
            let mut dropped = vec![0.0f32; t * t];
            for h in 0..nh {
                let att_h = &mut att_b[h * t * t..(h + 1) * t * t];
                let (q, k, v) = (&qkv_b[h * hs..], &qkv_b[c + h * hs..], &qkv_b[2 * c + h * hs..]);
                // scores (T, T) = Q (T, HS) · K (T, HS)^T
                sgemm(t, t, hs, att_h, t, Mat::n(q, 3 * c), Mat::t(k, 3 * c), false, Par::Serial);
                for i in 0..t {
                    let row = &mut att_h[i * t..(i + 1) * t];
                    softmax_masked_row(row, mask_b, scale);
                }
                let probs: &[f32] = if p_drop > 0.0 {
                    let base = ((bi * nh + h) * t * t) as u64;
                    for (idx, (d, &pr)) in dropped.iter_mut().zip(att_h.iter()).enumerate() {
                        *d = pr * dropout_scale(seed, base + idx as u64, p_drop);
                    }
                    &dropped
                } else {
                    att_h
                };
                // out_h (T, HS) = P (T, T) · V (T, HS), written into this head's columns of out
                sgemm(t, hs, t, &mut out_b[h * hs..], c, Mat::n(probs, t), Mat::n(v, 3 * c), false, Par::Serial);
            }
        },
    );
}

/// Softmax of `row * scale` over unmasked keys; masked keys get probability 0 (HF adds the
/// dtype's minimum to their scores, which underflows to exactly 0 after exp).
fn softmax_masked_row(row: &mut [f32], mask: &[f32], scale: f32) {
    let max = row
        .iter()
        .zip(mask)
        .map(|(&x, &m)| if m != 0.0 { x * scale } else { f32::NEG_INFINITY })
        .fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    // Separate passes (exp, sum, scale) so each loop vectorises.
    for (x, &m) in row.iter_mut().zip(mask) {
        let e = exp(*x * scale - max);
        *x = if m != 0.0 { e } else { 0.0 };
    }
    let inv = 1.0 / sum(row);
    row.iter_mut().for_each(|x| *x *= inv);
}

/// dqkv (B, T, 3C) = dL/dqkv (overwritten) from dout (B, T, C).
/// Differentiates `out = dropout(softmax(Q K^T * scale + mask)) V`, recomputing the dropout mask.
pub fn attention_backward(
    dqkv: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    att: &[f32],
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    p_drop: f32,
    seed: u64,
) {
    let hs = c / nh;
    let scale = 1.0 / (hs as f32).sqrt();
    dqkv[..b * t * 3 * c].par_chunks_mut(t * 3 * c).enumerate().for_each(|(bi, dqkv_b)| {
        let qkv_b = &qkv[bi * t * 3 * c..(bi + 1) * t * 3 * c];
        let dout_b = &dout[bi * t * c..(bi + 1) * t * c];
        let mut datt = vec![0.0f32; t * t];
        let mut dropped = vec![0.0f32; t * t];
        let mut keep = vec![0.0f32; if p_drop > 0.0 { t * t } else { 0 }];
        for h in 0..nh {
            let att_h = &att[((bi * nh + h) * t * t)..((bi * nh + h + 1) * t * t)];
            let (q, k, v) = (&qkv_b[h * hs..], &qkv_b[c + h * hs..], &qkv_b[2 * c + h * hs..]);
            let base = ((bi * nh + h) * t * t) as u64;
            let probs: &[f32] = if p_drop > 0.0 {
                for (idx, ((d, s), &pr)) in dropped.iter_mut().zip(keep.iter_mut()).zip(att_h).enumerate() {
                    *s = dropout_scale(seed, base + idx as u64, p_drop);
                    *d = pr * *s;
                }
                &dropped
            } else {
                att_h
            };
            // dV (T, HS) = P^T · dout_h ; dP (T, T) = dout_h · V^T
            sgemm(
                t,
                hs,
                t,
                &mut dqkv_b[2 * c + h * hs..],
                3 * c,
                Mat::t(probs, t),
                Mat::n(&dout_b[h * hs..], c),
                false,
                Par::Serial,
            );
            sgemm(t, t, hs, &mut datt, t, Mat::n(&dout_b[h * hs..], c), Mat::t(v, 3 * c), false, Par::Serial);
            if p_drop > 0.0 {
                datt.iter_mut().zip(&keep).for_each(|(d, s)| *d *= s);
            }
            // softmax backward: dS = P ⊙ (dP - Σ_j dP ⊙ P), then the 1/sqrt(HS) scale
            for i in 0..t {
                let (pr, dr) = (&att_h[i * t..(i + 1) * t], &mut datt[i * t..(i + 1) * t]);
                let pd = dot(pr, dr);
                for (d, p) in dr.iter_mut().zip(pr) {
                    *d = p * (*d - pd) * scale;
                }
            }
            // dQ (T, HS) = dS · K ; dK (T, HS) = dS^T · Q
            sgemm(t, hs, t, &mut dqkv_b[h * hs..], 3 * c, Mat::n(&datt, t), Mat::n(k, 3 * c), false, Par::Serial);
            sgemm(t, hs, t, &mut dqkv_b[c + h * hs..], 3 * c, Mat::t(&datt, t), Mat::n(q, 3 * c), false, Par::Serial);
        }
    });
}

// ----------------------------------------------------------------------------------------------
// activations

const INV_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1 / sqrt(2π)
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// out (N) = 0.5 x (1 + erf(x / sqrt 2)): exact GELU as HF `hidden_act: gelu`.
pub fn gelu_forward(out: &mut [f32], inp: &[f32], n: usize) {
    out[..n]
        .par_chunks_mut(ELEMS_PER_TASK)
        .zip(inp[..n].par_chunks(ELEMS_PER_TASK))
        .for_each(|(o, x)| gelu_forward_chunk(o, x));
}

multiversion! {
    /// GELU of one chunk.
    fn gelu_forward_chunk(out: &mut [f32], inp: &[f32]) {
        for (o, &x) in out.iter_mut().zip(inp) {
            *o = 0.5 * x * (1.0 + erf(x * INV_SQRT_2));
        }
    }
}

multiversion! {
    /// GELU backward of one chunk.
    fn gelu_backward_chunk(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
        for ((d, &x), &g) in dinp.iter_mut().zip(inp).zip(dout) {
            let cdf = 0.5 * (1.0 + erf(x * INV_SQRT_2));
            let pdf = exp(-0.5 * x * x) * INV_SQRT_2PI;
            *d = g * (cdf + x * pdf);
        }
    }
}

/// dinp (N) = dout · GELU'(inp) (overwritten). Differentiates `out = 0.5 x (1 + erf(x/√2))`:
/// GELU'(x) = Φ(x) + x φ(x).
pub fn gelu_backward(dinp: &mut [f32], inp: &[f32], dout: &[f32], n: usize) {
    dinp[..n]
        .par_chunks_mut(ELEMS_PER_TASK)
        .zip(inp[..n].par_chunks(ELEMS_PER_TASK))
        .zip(dout[..n].par_chunks(ELEMS_PER_TASK))
        .for_each(|((d, x), g)| gelu_backward_chunk(d, x, g));
}

/// out (N) = tanh(inp).
pub fn tanh_forward(out: &mut [f32], inp: &[f32], n: usize) {
    out[..n].iter_mut().zip(&inp[..n]).for_each(|(o, x)| *o = x.tanh());
}

/// dinp (N) = dout · (1 - out²) (overwritten). Differentiates `out = tanh(inp)`.
pub fn tanh_backward(dinp: &mut [f32], out: &[f32], dout: &[f32], n: usize) {
    for i in 0..n {
        dinp[i] = dout[i] * (1.0 - out[i] * out[i]);
    }
}

// ----------------------------------------------------------------------------------------------
// dropout and residual

/// The factor dropout applies to element `index`: 0 with probability p, else 1/(1-p).
/// Counter-based, so the backward regenerates the forward's mask from (seed, index).
#[inline]
pub fn dropout_scale(seed: u64, index: u64, p: f32) -> f32 {
    if rng::uniform(seed, index) < p {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}

/// x (N) *= dropout mask (in place). No-op when p = 0.
pub fn dropout_forward(x: &mut [f32], p: f32, seed: u64, n: usize) {
    if p <= 0.0 {
        return;
    }
    x[..n].par_chunks_mut(ELEMS_PER_TASK).enumerate().for_each(|(ci, chunk)| {
        let off = (ci * ELEMS_PER_TASK) as u64;
        for (j, v) in chunk.iter_mut().enumerate() {
            *v *= dropout_scale(seed, off + j as u64, p);
        }
    });
}

/// dx (N) *= the same mask (in place). Differentiates `x = x * mask`.
pub fn dropout_backward(dx: &mut [f32], p: f32, seed: u64, n: usize) {
    dropout_forward(dx, p, seed, n);
}

/// out (N) += inp (N): the residual connection, and the accumulation of residual-stream
/// gradients in the backward.
pub fn residual_forward(out: &mut [f32], inp: &[f32], n: usize) {
    out[..n].par_chunks_mut(ELEMS_PER_TASK).zip(inp[..n].par_chunks(ELEMS_PER_TASK)).for_each(|(o, x)| {
        o.iter_mut().zip(x).for_each(|(o, x)| *o += x);
    });
}

// ----------------------------------------------------------------------------------------------
// loss

/// losses (N) = -log softmax(logits (N, K))[target] (0 where target is ignored).
/// Returns (sum of losses, number of counted rows). Never stores probabilities, so K may be a
/// 250k vocabulary.
pub fn crossentropy_forward(losses: &mut [f32], logits: &[f32], targets: &[i64], n: usize, k: usize) -> (f32, usize) {
    losses[..n].par_iter_mut().enumerate().for_each(|(i, l)| {
        let t = targets[i];
        *l = if t == IGNORE_INDEX {
            0.0
        } else {
            let row = &logits[i * k..(i + 1) * k];
            let (max, lse) = log_sum_exp(row);
            max + lse - row[t as usize]
        };
    });
    let count = targets[..n].iter().filter(|&&t| t != IGNORE_INDEX).count();
    (losses[..n].iter().sum(), count)
}

/// Returns (max, ln Σ exp(x - max)) of a row. The sum is accumulated in f64: over a 250k-token
/// vocabulary an f32 running sum loses its small terms (1.5e-4 relative on a real row).
fn log_sum_exp(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|x| (x - max).exp() as f64).sum();
    (max, sum.ln() as f32)
}

/// dlogits (N, K) = dloss · (softmax(logits) - onehot(target)) (overwritten; 0 on ignored rows).
/// Differentiates `loss = dloss · Σ losses`, so `dloss` = 1/count gives the mean's gradient.
pub fn crossentropy_backward(dlogits: &mut [f32], logits: &[f32], targets: &[i64], dloss: f32, n: usize, k: usize) {
    dlogits[..n * k].par_chunks_mut(k).enumerate().for_each(|(i, d)| {
        let t = targets[i];
        if t == IGNORE_INDEX {
            d.fill(0.0);
            return;
        }
        let row = &logits[i * k..(i + 1) * k];
        let (max, lse) = log_sum_exp(row);
        for (j, (d, x)) in d.iter_mut().zip(row).enumerate() {
            let p = (x - max - lse).exp();
            *d = dloss * (p - if j as i64 == t { 1.0 } else { 0.0 });
        }
    });
}

// ----------------------------------------------------------------------------------------------
// optimizer

/// One AdamW step over params/grads/m/v (N) at step `t` (1-based), with `cfg.weight_decay`
/// where `decay` (the layout's flag: not on biases and LayerNorm weights), mirroring PyTorch:
/// p *= 1 - lr·wd; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
/// p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + ε).
pub fn adamw_update(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    cfg: &AdamWConfig,
    decay: bool,
    t: u64,
    n: usize,
) {
    let bc1 = 1.0 - (cfg.beta1 as f64).powf(t as f64);
    let bc2 = 1.0 - (cfg.beta2 as f64).powf(t as f64);
    let step_size = (cfg.lr as f64 / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let decay = if decay { 1.0 - cfg.lr * cfg.weight_decay } else { 1.0 };
    params[..n]
        .par_chunks_mut(ELEMS_PER_TASK)
        .zip(m[..n].par_chunks_mut(ELEMS_PER_TASK))
        .zip(v[..n].par_chunks_mut(ELEMS_PER_TASK))
        .zip(grads[..n].par_chunks(ELEMS_PER_TASK))
        .for_each(|(((p, m), v), g)| {
            for i in 0..p.len() {
                p[i] *= decay;
                m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g[i];
                v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g[i] * g[i];
                let denom = v[i].sqrt() / bc2_sqrt + cfg.eps;
                p[i] -= step_size * m[i] / denom;
            }
        });
}

/// Global L2 norm of a gradient buffer (N), accumulated in f64.
pub fn grad_norm(grads: &[f32]) -> f32 {
    let partials: Vec<f64> =
        grads.par_chunks(ELEMS_PER_TASK).map(|c| c.iter().map(|&g| g as f64 * g as f64).sum::<f64>()).collect();
    partials.iter().sum::<f64>().sqrt() as f32
}

/// Clips grads (N) to a global L2 norm of at most `max_norm`, as PyTorch's
/// `clip_grad_norm_`: coefficient max_norm / (norm + 1e-6), applied only when below 1.
/// Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f32) -> f32 {
    let norm = grad_norm(grads);
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        scale_inplace(grads, coef);
    }
    norm
}

/// grads (N) *= scale.
pub fn scale_inplace(grads: &mut [f32], scale: f32) {
    grads.par_chunks_mut(ELEMS_PER_TASK).for_each(|c| c.iter_mut().for_each(|g| *g *= scale));
}
