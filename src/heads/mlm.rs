//! Masked language modelling head, as HF `XLMRobertaForMaskedLM` / `BertForMaskedLM`:
//! dense → GELU → LayerNorm → decoder tied to the word embeddings, plus a bias. Only masked
//! positions (label ≠ IGNORE_INDEX) are gathered and scored, so no logits are computed for
//! the rest of the sequence. (jiant's head adds the bias twice; this one adds it once, as HF.)

use crate::config::Family;
use crate::cpu::encoder::two_mut;
use crate::cpu::gemm::{sgemm, Mat, Par};
use crate::cpu::ops::*;
use crate::model::ParamLayout;
use std::ops::Range;

/// Ranges of the MLM head's own tensors; the decoder weight is the word-embedding table.
#[derive(Clone, Debug)]
pub struct MlmHead {
    /// (C, C)
    pub dense_w: Range<usize>,
    /// (C)
    pub dense_b: Range<usize>,
    /// (C)
    pub ln_w: Range<usize>,
    /// (C)
    pub ln_b: Range<usize>,
    /// (V) decoder bias.
    pub bias: Range<usize>,
    /// (V, C) the tied word embeddings (the encoder's `wte`).
    pub wte: Range<usize>,
    /// V
    pub vocab: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
}

impl MlmHead {
    /// Registers the head under the family's HF names (`lm_head.*` for XLM-R,
    /// `cls.predictions.*` for BERT), tied to the word embeddings at `wte`.
    pub fn register(
        layout: &mut ParamLayout,
        family: Family,
        wte: Range<usize>,
        c: usize,
        vocab: usize,
        eps: f32,
    ) -> Self {
        let (dense, ln, bias) = match family {
            Family::XlmRoberta => ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"),
            Family::Bert => {
                ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias")
            }
        };
        MlmHead {
            dense_w: layout.push(&format!("{dense}.weight"), &[c, c], true, false),
            dense_b: layout.push(&format!("{dense}.bias"), &[c], false, false),
            ln_w: layout.push(&format!("{ln}.weight"), &[c], false, false),
            ln_b: layout.push(&format!("{ln}.bias"), &[c], false, false),
            bias: layout.push(bias, &[vocab], false, false),
            wte,
            vocab,
            eps,
        }
    }
}

/// Buffers of one MLM forward over M masked positions.
#[derive(Clone, Debug, Default)]
pub struct MlmActs {
    /// (M) flat token indices of the masked positions.
    pub rows: Vec<usize>,
    /// (M) their target ids.
    pub targets: Vec<i64>,
    /// (M, C) gathered hidden states.
    x: Vec<f32>,
    /// (M, C) dense output.
    h1: Vec<f32>,
    /// (M, C) GELU output.
    h2: Vec<f32>,
    /// (M, C) LayerNorm output.
    h3: Vec<f32>,
    /// (M)
    mean: Vec<f32>,
    /// (M)
    rstd: Vec<f32>,
    /// (M, V) logits of the masked positions only.
    pub logits: Vec<f32>,
    /// (M)
    losses: Vec<f32>,
}

/// Gathers the masked rows of hidden (N, C) and runs dense → GELU → LayerNorm on them;
/// returns M, the number of masked rows.
fn mlm_transform(
    a: &mut MlmActs,
    params: &[f32],
    head: &MlmHead,
    hidden: &[f32],
    labels: &[i64],
    n: usize,
    c: usize,
) -> usize {
    a.rows = (0..n).filter(|&i| labels[i] != IGNORE_INDEX).collect();
    a.targets = a.rows.iter().map(|&i| labels[i]).collect();
    let m = a.rows.len();
    if m == 0 {
        return 0;
    }
    for buf in [&mut a.x, &mut a.h1, &mut a.h2, &mut a.h3] {
        buf.resize(m * c, 0.0);
    }
    a.mean.resize(m, 0.0);
    a.rstd.resize(m, 0.0);
    for (j, &i) in a.rows.iter().enumerate() {
        a.x[j * c..(j + 1) * c].copy_from_slice(&hidden[i * c..(i + 1) * c]);
    }
    let w = |r: &Range<usize>| &params[r.clone()];
    matmul_forward(&mut a.h1, &a.x, w(&head.dense_w), Some(w(&head.dense_b)), m, c, c);
    gelu_forward(&mut a.h2, &a.h1, m * c);
    layernorm_forward(&mut a.h3, &mut a.mean, &mut a.rstd, &a.h2, w(&head.ln_w), w(&head.ln_b), m, c, head.eps);
    m
}

/// Forward: gathers the positions of hidden (N, C) whose `labels` (N) are not ignored and
/// returns the mean cross-entropy over them (0.0 when nothing is masked).
pub fn mlm_forward(
    a: &mut MlmActs,
    params: &[f32],
    head: &MlmHead,
    hidden: &[f32],
    labels: &[i64],
    n: usize,
    c: usize,
) -> f32 {
    let v = head.vocab;
    let m = mlm_transform(a, params, head, hidden, labels, n, c);
    if m == 0 {
        return 0.0;
    }
    a.logits.resize(m * v, 0.0);
    a.losses.resize(m, 0.0);
    let w = |r: &Range<usize>| &params[r.clone()];
    matmul_forward(&mut a.logits, &a.h3, w(&head.wte), Some(w(&head.bias)), m, c, v);
    let (sum, count) = crossentropy_forward(&mut a.losses, &a.logits, &a.targets, m, v);
    sum / count.max(1) as f32
}

/// Backward of the mean loss: dL/dhidden (N, C) overwritten (non-zero only at masked rows);
/// gradients of the head and of the tied word embeddings accumulate.
pub fn mlm_backward(
    dhidden: &mut [f32],
    grads: &mut [f32],
    a: &MlmActs,
    params: &[f32],
    head: &MlmHead,
    n: usize,
    c: usize,
) {
    let (v, m) = (head.vocab, a.rows.len());
    dhidden[..n * c].fill(0.0);
    if m == 0 {
        return;
    }
    // loss = mean CE(logits, targets)
    let mut dlogits = vec![0.0f32; m * v];
    crossentropy_backward(&mut dlogits, &a.logits, &a.targets, 1.0 / m as f32, m, v);
    let mut dh3 = vec![0.0f32; m * c];
    decoder_backward(&mut dh3, grads, &dlogits, &a.h3, params, head, m, c);
    transform_backward(dhidden, grads, a, &dh3, params, head, c);
}

/// logits = h3 · wte^T + bias: dh3 (M, C) = dlogits · wte (overwritten); dwte += dlogits^T · h3;
/// dbias += Σ rows.
fn decoder_backward(
    dh3: &mut [f32],
    grads: &mut [f32],
    dlogits: &[f32],
    h3: &[f32],
    params: &[f32],
    head: &MlmHead,
    m: usize,
    c: usize,
) {
    let v = head.vocab;
    sgemm(m, c, v, dh3, c, Mat::n(dlogits, v), Mat::n(&params[head.wte.clone()], c), false, Par::Pool);
    sgemm(v, c, m, &mut grads[head.wte.clone()], c, Mat::t(dlogits, v), Mat::n(h3, c), true, Par::Pool);
    bias_backward(&mut grads[head.bias.clone()], dlogits, m, v);
}

/// Backward through LayerNorm, GELU, the dense layer and the gather, from dh3 (M, C) to
/// dhidden (N, C) (masked rows written; the caller zeroed the rest).
fn transform_backward(
    dhidden: &mut [f32],
    grads: &mut [f32],
    a: &MlmActs,
    dh3: &[f32],
    params: &[f32],
    head: &MlmHead,
    c: usize,
) {
    let m = a.rows.len();
    let w = |r: &Range<usize>| &params[r.clone()];
    // h3 = LN(h2)
    let mut dh2 = vec![0.0f32; m * c];
    let (dlw, dlb) = two_mut(grads, &head.ln_w, &head.ln_b);
    layernorm_backward(&mut dh2, dlw, dlb, dh3, &a.h2, &a.mean, &a.rstd, w(&head.ln_w), m, c);
    // h2 = gelu(h1)
    let mut dh1 = vec![0.0f32; m * c];
    gelu_backward(&mut dh1, &a.h1, &dh2, m * c);
    // h1 = x · Wd^T + bd
    let mut dx = vec![0.0f32; m * c];
    let (dw, db) = two_mut(grads, &head.dense_w, &head.dense_b);
    matmul_backward(&mut dx, dw, Some(db), &dh1, &a.x, w(&head.dense_w), m, c, c);
    // x = hidden[rows]
    for (j, &i) in a.rows.iter().enumerate() {
        dhidden[i * c..(i + 1) * c].copy_from_slice(&dx[j * c..(j + 1) * c]);
    }
}

/// Rows of vocabulary logits held at once by [`mlm_forward_backward`].
pub const LOGIT_ROWS_PER_CHUNK: usize = 32;

/// Training forward and backward in one pass: the (M, V) logits are never held whole, only
/// `LOGIT_ROWS_PER_CHUNK` rows at a time (with a 250k vocabulary, 32 MB instead of M × 1 MB).
/// Returns the mean cross-entropy; dL/dhidden (N, C) is overwritten and the head's and the
/// tied embeddings' gradients accumulate, exactly as `mlm_forward` + `mlm_backward`.
pub fn mlm_forward_backward(
    dhidden: &mut [f32],
    grads: &mut [f32],
    a: &mut MlmActs,
    params: &[f32],
    head: &MlmHead,
    hidden: &[f32],
    labels: &[i64],
    n: usize,
    c: usize,
) -> f32 {
    let v = head.vocab;
    dhidden[..n * c].fill(0.0);
    let m = mlm_transform(a, params, head, hidden, labels, n, c);
    if m == 0 {
        return 0.0;
    }
    let rows = LOGIT_ROWS_PER_CHUNK.min(m);
    let (mut logits, mut dlogits) = (vec![0.0f32; rows * v], vec![0.0f32; rows * v]);
    let mut losses = vec![0.0f32; rows];
    let mut dh3 = vec![0.0f32; m * c];
    let mut total = 0.0f32;
    for r0 in (0..m).step_by(rows) {
        let mc = rows.min(m - r0);
        let h3 = &a.h3[r0 * c..(r0 + mc) * c];
        let targets = &a.targets[r0..r0 + mc];
        // logits (mc, V) = h3 · wte^T + bias ; loss += Σ CE
        matmul_forward(&mut logits, h3, &params[head.wte.clone()], Some(&params[head.bias.clone()]), mc, c, v);
        total += crossentropy_forward(&mut losses, &logits, targets, mc, v).0;
        crossentropy_backward(&mut dlogits, &logits, targets, 1.0 / m as f32, mc, v);
        decoder_backward(&mut dh3[r0 * c..(r0 + mc) * c], grads, &dlogits[..mc * v], h3, params, head, mc, c);
    }
    transform_backward(dhidden, grads, a, &dh3, params, head, c);
    total / m as f32
}
