//! The task heads on the CPU: each head's buffers for one batch, and its forward and backward
//! over the ops of [`super::ops`]. The heads' tensors are ranges of the model's flat buffer
//! ([`crate::model::heads`]); `cuda/heads.rs` is this file's twin.

use super::encoder::two_mut;
use super::gemm::{sgemm, Mat, Par};
use super::ops::*;
use crate::model::batch::IGNORE_INDEX;
use crate::model::dropout::{DropoutCfg, Site};
use crate::model::heads::{ClassifierHead, MlmHead, MultipleChoiceHead, SpanHead, TaggingHead};
use std::ops::Range;

// ---------------------------------------------------------------------------------------------
// Sequence / pair classification
//
// Sequence / pair classification head on the first token, dense + tanh + linear:
// XLM-R's `classifier.dense` → tanh → `classifier.out_proj` (RoBERTa head, dropout before
// each linear), BERT's `pooler` → dropout → `classifier` (the pooler is the encoder's).

/// Activations and gradients of the head for one batch of B sequences.
#[derive(Clone, Debug)]
pub struct HeadActs {
    /// (B, C) first-token states after dropout.
    pub cls: Vec<f32>,
    /// (B, C) dense output before tanh.
    pub pre: Vec<f32>,
    /// (B, C) tanh output after dropout (for BERT, the pooled output before dropout is `pooled`).
    pub h: Vec<f32>,
    /// (B, C) tanh output before dropout: BERT's `pooler_output`.
    pub pooled: Vec<f32>,
    /// (B, K)
    pub logits: Vec<f32>,
    /// (B)
    pub losses: Vec<f32>,
    /// (B, K)
    dlogits: Vec<f32>,
    /// (B, C)
    dh: Vec<f32>,
    /// (B, C)
    dpre: Vec<f32>,
    /// (B, C)
    dcls: Vec<f32>,
}

impl HeadActs {
    /// Buffers for B sequences, K labels, C channels.
    pub fn new(b: usize, c: usize, k: usize) -> Self {
        let z = |n| vec![0.0f32; n];
        HeadActs {
            cls: z(b * c),
            pre: z(b * c),
            h: z(b * c),
            pooled: z(b * c),
            logits: z(b * k),
            losses: z(b),
            dlogits: z(b * k),
            dh: z(b * c),
            dpre: z(b * c),
            dcls: z(b * c),
        }
    }
}

/// Forward: logits from hidden (B, T, C); returns the mean cross-entropy over labelled rows
/// when `labels` (B) is given (0.0 otherwise).
pub fn classifier_forward(
    a: &mut HeadActs,
    params: &[f32],
    head: &ClassifierHead,
    hidden: &[f32],
    labels: Option<&[i64]>,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) -> f32 {
    let k = head.num_labels;
    let w = |r: &Range<usize>| &params[r.clone()];
    for bi in 0..b {
        a.cls[bi * c..(bi + 1) * c].copy_from_slice(&hidden[bi * t * c..bi * t * c + c]);
    }
    if head.dropout_before_dense {
        dropout_forward(&mut a.cls, drop.hidden, drop.seed_of(Site::ClassifierInput), b * c);
    }
    matmul_forward(&mut a.pre, &a.cls, w(&head.dense_w), Some(w(&head.dense_b)), b, c, c);
    tanh_forward(&mut a.pooled, &a.pre, b * c);
    a.h.copy_from_slice(&a.pooled);
    dropout_forward(&mut a.h, drop.hidden, drop.seed_of(Site::ClassifierHidden), b * c);
    matmul_forward(&mut a.logits, &a.h, w(&head.out_w), Some(w(&head.out_b)), b, c, k);
    match labels {
        Some(y) => {
            let (sum, count) = crossentropy_forward(&mut a.losses, &a.logits, y, b, k);
            if count == 0 {
                0.0
            } else {
                sum / count as f32
            }
        }
        None => 0.0,
    }
}

/// Backward of the mean loss: writes dL/dhidden into `dhidden` (B, T, C) (overwritten; only
/// the first token of each sequence is non-zero) and accumulates the head's gradients.
pub fn classifier_backward(
    dhidden: &mut [f32],
    grads: &mut [f32],
    a: &mut HeadActs,
    params: &[f32],
    head: &ClassifierHead,
    labels: &[i64],
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) {
    let k = head.num_labels;
    let count = labels[..b].iter().filter(|&&y| y != IGNORE_INDEX).count().max(1);
    // loss = mean CE(logits, labels)
    let mut dlogits = std::mem::take(&mut a.dlogits);
    crossentropy_backward(&mut dlogits, &a.logits, labels, 1.0 / count as f32, b, k);
    classifier_backward_logits(dhidden, grads, a, params, head, &dlogits, b, t, c, drop);
    a.dlogits = dlogits;
}

/// Backward from a given dL/dlogits (B, K) (for heads that put their own loss on the logits,
/// such as multiple choice): writes dL/dhidden (B, T, C) and accumulates the head's gradients.
pub fn classifier_backward_logits(
    dhidden: &mut [f32],
    grads: &mut [f32],
    a: &mut HeadActs,
    params: &[f32],
    head: &ClassifierHead,
    dlogits: &[f32],
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) {
    let k = head.num_labels;
    let w = |r: &Range<usize>| &params[r.clone()];
    // logits = h · Wout^T + bout
    let (dw, db) = two_mut(grads, &head.out_w, &head.out_b);
    matmul_backward(&mut a.dh, dw, Some(db), dlogits, &a.h, w(&head.out_w), b, c, k);
    // h = dropout(tanh(pre))
    dropout_backward(&mut a.dh, drop.hidden, drop.seed_of(Site::ClassifierHidden), b * c);
    tanh_backward(&mut a.dpre, &a.pooled, &a.dh, b * c);
    // pre = cls · Wd^T + bd
    let (dw, db) = two_mut(grads, &head.dense_w, &head.dense_b);
    matmul_backward(&mut a.dcls, dw, Some(db), &a.dpre, &a.cls, w(&head.dense_w), b, c, c);
    if head.dropout_before_dense {
        dropout_backward(&mut a.dcls, drop.hidden, drop.seed_of(Site::ClassifierInput), b * c);
    }
    // cls = hidden[:, 0, :]
    dhidden[..b * t * c].fill(0.0);
    for bi in 0..b {
        dhidden[bi * t * c..bi * t * c + c].copy_from_slice(&a.dcls[bi * c..(bi + 1) * c]);
    }
}

// ---------------------------------------------------------------------------------------------
// Multiple choice
//
// Multiple choice (HellaSwag, Cosmos QA, CommonsenseQA), as jiant's `MultipleChoiceModel`:
// each of the K choices is encoded as its own sequence `prompt [SEP] choice`, a RoBERTa-style
// head with one output scores its first token, and cross-entropy runs over the K scores.

/// Buffers for B examples of K choices.
#[derive(Clone, Debug)]
pub struct MultipleChoiceActs {
    /// Scorer buffers over the B·K sequences.
    pub scorer: HeadActs,
    /// (B) per-example losses.
    pub losses: Vec<f32>,
    /// (B, K) gradient of the choice scores.
    dscores: Vec<f32>,
}

impl MultipleChoiceActs {
    /// Buffers for B examples, K choices, C channels.
    pub fn new(b: usize, k: usize, c: usize) -> Self {
        MultipleChoiceActs { scorer: HeadActs::new(b * k, c, 1), losses: vec![0.0; b], dscores: vec![0.0; b * k] }
    }
    /// (B, K) choice scores of the last forward.
    pub fn scores(&self) -> &[f32] {
        &self.scorer.logits
    }
}

/// Forward over hidden (B·K, T, C), sequences of one example adjacent. Returns the mean
/// cross-entropy over the choices of the labelled examples (`labels` (B), or 0.0 without).
pub fn multiple_choice_forward(
    a: &mut MultipleChoiceActs,
    params: &[f32],
    head: &MultipleChoiceHead,
    hidden: &[f32],
    labels: Option<&[i64]>,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) -> f32 {
    let k = head.num_choices;
    classifier_forward(&mut a.scorer, params, &head.scorer, hidden, None, b * k, t, c, drop);
    match labels {
        None => 0.0,
        Some(y) => {
            // scores (B·K, 1) read as (B, K)
            let (sum, count) = crossentropy_forward(&mut a.losses, &a.scorer.logits, y, b, k);
            sum / count.max(1) as f32
        }
    }
}

/// Backward of the mean loss: dL/dhidden (B·K, T, C) overwritten, head gradients accumulated.
pub fn multiple_choice_backward(
    dhidden: &mut [f32],
    grads: &mut [f32],
    a: &mut MultipleChoiceActs,
    params: &[f32],
    head: &MultipleChoiceHead,
    labels: &[i64],
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) {
    let k = head.num_choices;
    let count = labels[..b].iter().filter(|&&y| y != IGNORE_INDEX).count().max(1);
    // loss = mean CE(scores (B, K), labels)
    crossentropy_backward(&mut a.dscores, &a.scorer.logits, labels, 1.0 / count as f32, b, k);
    // scores = scorer(hidden[:, 0]) per sequence
    classifier_backward_logits(dhidden, grads, &mut a.scorer, params, &head.scorer, &a.dscores, b * k, t, c, drop);
}

// ---------------------------------------------------------------------------------------------
// Extractive QA (span)
//
// Extractive QA (SQuAD, XQuAD, MLQA, TyDiQA), as HF `*ForQuestionAnswering` and jiant's
// `QAHead`: Linear(C, 2) gives start and end logits per token; the loss is the mean of the
// start and end cross-entropies over the sequence, gold positions clamped to [0, T] and T
// ignored (answers outside the window).

/// Buffers for B sequences of T tokens.
#[derive(Clone, Debug)]
pub struct SpanActs {
    /// (B·T, 2) interleaved start/end logits.
    pub logits: Vec<f32>,
    /// (B, T) start logits.
    pub start: Vec<f32>,
    /// (B, T) end logits.
    pub end: Vec<f32>,
    /// (B) per-sequence losses scratch.
    losses: Vec<f32>,
    /// (B, T) each.
    dstart: Vec<f32>,
    dend: Vec<f32>,
    /// (B·T, 2)
    dlogits: Vec<f32>,
}

impl SpanActs {
    /// Buffers for B sequences of T tokens.
    pub fn new(b: usize, t: usize) -> Self {
        let z = |n| vec![0.0f32; n];
        SpanActs {
            logits: z(b * t * 2),
            start: z(b * t),
            end: z(b * t),
            losses: z(b),
            dstart: z(b * t),
            dend: z(b * t),
            dlogits: z(b * t * 2),
        }
    }
}

/// Gold positions clamped to [0, T]; T means "not in this window" and is ignored.
fn clamp_targets(pos: &[i64], t: usize) -> Vec<i64> {
    pos.iter().map(|&p| if p < 0 || p >= t as i64 { IGNORE_INDEX } else { p }).collect()
}

/// Forward over hidden (B, T, C); with gold (start, end) positions (B each) returns
/// (CE(start) + CE(end)) / 2, each a mean over sequences whose position is inside the window.
pub fn span_forward(
    a: &mut SpanActs,
    params: &[f32],
    head: &SpanHead,
    hidden: &[f32],
    gold: Option<(&[i64], &[i64])>,
    b: usize,
    t: usize,
    c: usize,
) -> f32 {
    let n = b * t;
    matmul_forward(&mut a.logits, hidden, &params[head.w.clone()], Some(&params[head.b.clone()]), n, c, 2);
    for i in 0..n {
        a.start[i] = a.logits[2 * i];
        a.end[i] = a.logits[2 * i + 1];
    }
    let Some((s, e)) = gold else { return 0.0 };
    let mut loss = 0.0;
    for (logits, pos) in [(&a.start, s), (&a.end, e)] {
        let targets = clamp_targets(pos, t);
        let (sum, count) = crossentropy_forward(&mut a.losses, logits, &targets, b, t);
        if count > 0 {
            loss += sum / count as f32 / 2.0;
        }
    }
    loss
}

/// Backward of the loss: dL/dhidden (B, T, C) overwritten, head gradients accumulated.
/// `hidden` is the forward's input.
pub fn span_backward(
    dhidden: &mut [f32],
    grads: &mut [f32],
    a: &mut SpanActs,
    params: &[f32],
    head: &SpanHead,
    hidden: &[f32],
    gold: (&[i64], &[i64]),
    b: usize,
    t: usize,
    c: usize,
) {
    let n = b * t;
    // loss = CE(start)/2 + CE(end)/2, each a mean over in-window sequences
    let (ts, te) = (clamp_targets(gold.0, t), clamp_targets(gold.1, t));
    let scale = |tg: &[i64]| 0.5 / tg.iter().filter(|&&p| p != IGNORE_INDEX).count().max(1) as f32;
    crossentropy_backward(&mut a.dstart, &a.start, &ts, scale(&ts), b, t);
    crossentropy_backward(&mut a.dend, &a.end, &te, scale(&te), b, t);
    for i in 0..n {
        a.dlogits[2 * i] = a.dstart[i];
        a.dlogits[2 * i + 1] = a.dend[i];
    }
    // logits = hidden · W^T + b
    let (dw, db) = two_mut(grads, &head.w, &head.b);
    matmul_backward(dhidden, dw, Some(db), &a.dlogits, hidden, &params[head.w.clone()], n, c, 2);
}

// ---------------------------------------------------------------------------------------------
// Token tagging
//
// Token tagging (UDPOS, PAN-X, CCG), as jiant's `TokenClassificationHead` and HF
// `*ForTokenClassification`: dropout → Linear(C, K) on every token; cross-entropy only on
// labelled positions (the first sub-token of each word; others carry `IGNORE_INDEX`).

/// Buffers for N = B·T tokens.
#[derive(Clone, Debug)]
pub struct TaggingActs {
    /// (N, C) hidden states after dropout.
    pub x: Vec<f32>,
    /// (N, K)
    pub logits: Vec<f32>,
    /// (N)
    pub losses: Vec<f32>,
    /// (N, K)
    dlogits: Vec<f32>,
}

impl TaggingActs {
    /// Buffers for N tokens, C channels, K labels.
    pub fn new(n: usize, c: usize, k: usize) -> Self {
        TaggingActs { x: vec![0.0; n * c], logits: vec![0.0; n * k], losses: vec![0.0; n], dlogits: vec![0.0; n * k] }
    }
}

/// Forward over hidden (N, C); returns the mean cross-entropy over labelled tokens (`labels`
/// (N) with `IGNORE_INDEX` elsewhere), or 0.0 without labels.
pub fn tagging_forward(
    a: &mut TaggingActs,
    params: &[f32],
    head: &TaggingHead,
    hidden: &[f32],
    labels: Option<&[i64]>,
    n: usize,
    c: usize,
    drop: DropoutCfg,
) -> f32 {
    let k = head.num_labels;
    a.x[..n * c].copy_from_slice(&hidden[..n * c]);
    dropout_forward(&mut a.x, drop.hidden, drop.seed_of(Site::Tagging), n * c);
    matmul_forward(&mut a.logits, &a.x, &params[head.w.clone()], Some(&params[head.b.clone()]), n, c, k);
    match labels {
        None => 0.0,
        Some(y) => {
            let (sum, count) = crossentropy_forward(&mut a.losses, &a.logits, y, n, k);
            sum / count.max(1) as f32
        }
    }
}

/// Backward of the mean loss: dL/dhidden (N, C) overwritten, head gradients accumulated.
pub fn tagging_backward(
    dhidden: &mut [f32],
    grads: &mut [f32],
    a: &mut TaggingActs,
    params: &[f32],
    head: &TaggingHead,
    labels: &[i64],
    n: usize,
    c: usize,
    drop: DropoutCfg,
) {
    let k = head.num_labels;
    let count = labels[..n].iter().filter(|&&y| y != IGNORE_INDEX).count().max(1);
    // loss = mean CE(logits, labels) over labelled tokens
    crossentropy_backward(&mut a.dlogits, &a.logits, labels, 1.0 / count as f32, n, k);
    // logits = x · W^T + b
    let (dw, db) = two_mut(grads, &head.w, &head.b);
    matmul_backward(dhidden, dw, Some(db), &a.dlogits, &a.x, &params[head.w.clone()], n, c, k);
    // x = dropout(hidden)
    dropout_backward(dhidden, drop.hidden, drop.seed_of(Site::Tagging), n * c);
}

// ---------------------------------------------------------------------------------------------
// Masked language modelling
//
// Masked language modelling head, as HF `XLMRobertaForMaskedLM` / `BertForMaskedLM`:
// dense → GELU → LayerNorm → decoder tied to the word embeddings, plus a bias. Only masked
// positions (label ≠ IGNORE_INDEX) are gathered and scored, so no logits are computed for
// the rest of the sequence. (jiant's head adds the bias twice; this one adds it once, as HF.)

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
