//! The task heads on the GPU, the twins of `cpu::heads` op for op: classification (RoBERTa and
//! BERT), multiple choice, span QA, tagging, and MLM over the masked positions only.
//!
//! Each `*_forward` keeps what its backward needs in a [`HeadActs`] and, given targets, writes
//! one loss per scored row into the device view the caller provides (the model reads every
//! loss of a step back in one copy and averages on the host, as the CPU does); each
//! `*_backward` overwrites dL/dhidden (B, T, C) and accumulates the head's f32 gradients. The
//! rows a head gathers and its targets arrive as views of the batch's one upload
//! ([`HeadIo`]); the buffers live in [`Slot`]s sized for the largest batch so far.

use super::device::{Dev, Dtype, Gpu};
use super::gemm::{gemm, DMat, Strides};
use super::ops::*;
use super::upload::Slot;
use crate::model::dropout::{DropoutCfg, Site};
use crate::model::heads::{ClassifierHead, MlmHead, SpanHead, TaggingHead};
use crate::{Error, Result};
use std::ops::Range;

/// The device inputs of one head for one batch, views of the batch's upload.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadIo<'a> {
    /// (M) u32 rows gathered from the hidden states: each sequence's first token
    /// (classification, multiple choice), the masked positions (MLM).
    pub rows: Option<Dev<'a>>,
    /// i64 targets: (B) labels, (B) choices, (B·T) tags, (2B) span starts then ends, (M) MLM
    /// tokens; `IGNORE_INDEX` (-100) where unscored.
    pub targets: Option<Dev<'a>>,
    /// f32 per-row losses the forward writes (one per target).
    pub losses: Option<Dev<'a>>,
    /// Scored targets (not ignored): [all] or, for span QA, [starts, ends].
    pub counts: [usize; 2],
}

impl<'a> HeadIo<'a> {
    fn rows(&self) -> Result<Dev<'a>> {
        self.rows.ok_or_else(|| Error::Usage("a gathering head without its rows".into()))
    }
    fn targets(&self) -> Result<Dev<'a>> {
        self.targets.ok_or_else(|| Error::Usage("a head backward without targets".into()))
    }
}

/// Device buffers of one head, kept from its forward for its backward and for reading its
/// outputs, with room for the largest batch so far. Every buffer is `(rows, cols)` of the
/// activation dtype unless noted.
pub struct HeadActs {
    /// (M, C) gathered (and for classification, dropped-out) hidden states.
    x: Slot,
    /// (M, C) dense output before the activation; span QA: (B, T) start logits.
    pre: Slot,
    /// (M, C) tanh / GELU output (before the dropout that follows it).
    act: Slot,
    /// (M, C) the input of the output layer (MLM: the LayerNorm output).
    h: Slot,
    /// (M) f32 LayerNorm mean (MLM).
    mean: Slot,
    /// (M) f32 LayerNorm rstd (MLM).
    rstd: Slot,
    /// (M, K) logits (span QA: (B, T) end logits); the backward overwrites them with their
    /// gradient.
    logits: Slot,
    /// Backward scratch: three (M, C) buffers.
    d1: Slot,
    d2: Slot,
    d3: Slot,
    /// Elements of the last forward's logits (0 before any).
    logits_len: usize,
    /// Elements of the last span forward's start logits.
    pre_len: usize,
}

impl Default for HeadActs {
    fn default() -> Self {
        HeadActs {
            x: Slot::new("head input"),
            pre: Slot::new("head dense output"),
            act: Slot::new("head activation"),
            h: Slot::new("head hidden"),
            mean: Slot::new("head LN mean"),
            rstd: Slot::new("head LN rstd"),
            logits: Slot::new("head logits"),
            d1: Slot::new("head backward scratch"),
            d2: Slot::new("head backward scratch"),
            d3: Slot::new("head backward scratch"),
            logits_len: 0,
            pre_len: 0,
        }
    }
}

impl HeadActs {
    /// The logits of the last forward (classification (B, K), multiple choice (B, K), tagging
    /// (N, K), span QA end logits (B, T)); `None` before any.
    pub fn logits(&self) -> Option<Dev<'_>> {
        (self.logits_len > 0).then(|| self.logits.view(self.logits_len).ok()).flatten()
    }

    /// The start logits (B, T) of the last span-QA forward.
    pub fn start_logits(&self) -> Option<Dev<'_>> {
        (self.pre_len > 0).then(|| self.pre.view(self.pre_len).ok()).flatten()
    }
}

/// Writes the per-row cross-entropy of `logits` (N, K) against the targets into `io.losses`,
/// when the head has targets.
fn row_losses(g: &Gpu, io: &HeadIo, logits: Dev, n: usize, k: usize) -> Result<()> {
    match (io.targets, io.losses) {
        (Some(t), Some(l)) => crossentropy_forward(g, l.at(0, n), logits, t.at(0, n), n, k),
        _ => Ok(()),
    }
}

/// Backward of the mean of [`row_losses`] over `count` scored rows, times `scale`: overwrites
/// `logits` (N, K) with their gradient, in place.
fn mean_loss_backward(g: &Gpu, logits: Dev, targets: Dev, count: usize, scale: f32, n: usize, k: usize) -> Result<()> {
    crossentropy_backward(g, logits, logits, targets.at(0, n), scale / count.max(1) as f32, n, k)
}

/// Classification forward (the twin of `cpu::heads::classifier_forward`): hidden (B, T, C) →
/// logits (B, K), one loss per sequence; the first token of each sequence comes from
/// `io.rows`. `params` in the activation dtype.
pub fn classifier_forward(
    g: &Gpu,
    a: &mut HeadActs,
    params: Dev,
    head: &ClassifierHead,
    hidden: Dev,
    io: &HeadIo,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) -> Result<()> {
    classifier_scores(g, a, params, head, hidden, io, b, t, c, drop)?;
    let k = head.num_labels;
    row_losses(g, io, a.logits.view(b * k)?, b, k)
}

/// The logits (B, K) of the classification head, without losses.
fn classifier_scores(
    g: &Gpu,
    a: &mut HeadActs,
    params: Dev,
    head: &ClassifierHead,
    hidden: Dev,
    io: &HeadIo,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) -> Result<()> {
    let (k, x) = (head.num_labels, hidden.dtype);
    let w = |r: &Range<usize>| params.slice(r.clone());
    for s in [&mut a.x, &mut a.pre, &mut a.act, &mut a.h] {
        s.ensure(g, b * c, x)?;
    }
    a.logits.ensure(g, b * k, x)?;
    let (cls, pre, pooled, h) = (a.x.view(b * c)?, a.pre.view(b * c)?, a.act.view(b * c)?, a.h.view(b * c)?);
    let logits = a.logits.view(b * k)?;
    gather_rows(g, cls, hidden, io.rows()?.at(0, b), b, b * t, c)?;
    if head.dropout_before_dense {
        dropout_forward(g, cls, drop.hidden, drop.seed_of(Site::ClassifierInput), b * c)?;
    }
    matmul_forward(g, pre, cls, w(&head.dense_w), Some(w(&head.dense_b)), b, c, c)?;
    tanh_forward(g, pooled, pre, b * c)?;
    g.copy(h, pooled)?;
    dropout_forward(g, h, drop.hidden, drop.seed_of(Site::ClassifierHidden), b * c)?;
    matmul_forward(g, logits, h, w(&head.out_w), Some(w(&head.out_b)), b, c, k)?;
    a.logits_len = b * k;
    Ok(())
}

/// Classification backward from dL/dlogits, which the caller has written over the logits
/// (the twin of `classifier_backward_logits`): dhidden (B, T, C) overwritten.
pub fn classifier_backward_logits(
    g: &Gpu,
    dhidden: Dev,
    grads: Dev,
    a: &mut HeadActs,
    params: Dev,
    head: &ClassifierHead,
    io: &HeadIo,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) -> Result<()> {
    let (k, x) = (head.num_labels, dhidden.dtype);
    let w = |r: &Range<usize>| params.slice(r.clone());
    let gr = |r: &Range<usize>| grads.slice(r.clone());
    for s in [&mut a.d1, &mut a.d2, &mut a.d3] {
        s.ensure(g, b * c, x)?;
    }
    let (dh, dpre, dcls) = (a.d1.view(b * c)?, a.d2.view(b * c)?, a.d3.view(b * c)?);
    let dlogits = a.logits.view(b * k)?;
    // logits = h · Wout^T + bout
    let (h, act, cls) = (a.h.view(b * c)?, a.act.view(b * c)?, a.x.view(b * c)?);
    matmul_backward(g, dh, gr(&head.out_w), Some(gr(&head.out_b)), dlogits, h, w(&head.out_w), b, c, k)?;
    // h = dropout(tanh(pre))
    dropout_backward(g, dh, drop.hidden, drop.seed_of(Site::ClassifierHidden), b * c)?;
    tanh_backward(g, dpre, act, dh, b * c)?;
    // pre = cls · Wd^T + bd
    let (dw, db) = (gr(&head.dense_w), gr(&head.dense_b));
    matmul_backward(g, dcls, dw, Some(db), dpre, cls, w(&head.dense_w), b, c, c)?;
    if head.dropout_before_dense {
        dropout_backward(g, dcls, drop.hidden, drop.seed_of(Site::ClassifierInput), b * c)?;
    }
    // cls = hidden[:, 0, :]
    g.zero(dhidden.at(0, b * t * c))?;
    scatter_rows(g, dhidden, dcls, io.rows()?.at(0, b), b, b * t, c)
}

/// Classification backward of the mean loss (the twin of `classifier_backward`). Every head
/// backward takes `scale`, the factor on dL (the fp16 loss scale; 1 otherwise).
pub fn classifier_backward(
    g: &Gpu,
    dhidden: Dev,
    grads: Dev,
    a: &mut HeadActs,
    params: Dev,
    head: &ClassifierHead,
    io: &HeadIo,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
    scale: f32,
) -> Result<()> {
    // loss = mean CE(logits, labels); the gradient replaces the logits in place
    let k = head.num_labels;
    mean_loss_backward(g, a.logits.view(b * k)?, io.targets()?, io.counts[0], scale, b, k)?;
    classifier_backward_logits(g, dhidden, grads, a, params, head, io, b, t, c, drop)
}

/// Multiple choice forward over hidden (B·K, T, C): one score per sequence from the
/// classification scorer (K = 1 output), read as (B, K) (the twin of `multiple_choice_forward`);
/// one loss per question.
pub fn multiple_choice_forward(
    g: &Gpu,
    a: &mut HeadActs,
    params: Dev,
    scorer: &ClassifierHead,
    num_choices: usize,
    hidden: Dev,
    io: &HeadIo,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) -> Result<()> {
    classifier_scores(g, a, params, scorer, hidden, io, b * num_choices, t, c, drop)?;
    // scores (B·K, 1) read as (B, K)
    row_losses(g, io, a.logits.view(b * num_choices)?, b, num_choices)
}

/// Multiple choice backward of the mean loss (the twin of `multiple_choice_backward`).
pub fn multiple_choice_backward(
    g: &Gpu,
    dhidden: Dev,
    grads: Dev,
    a: &mut HeadActs,
    params: Dev,
    scorer: &ClassifierHead,
    num_choices: usize,
    io: &HeadIo,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
    scale: f32,
) -> Result<()> {
    // loss = mean CE(scores (B, K), labels)
    let scores = a.logits.view(b * num_choices)?;
    mean_loss_backward(g, scores, io.targets()?, io.counts[0], scale, b, num_choices)?;
    classifier_backward_logits(g, dhidden, grads, a, params, scorer, io, b * num_choices, t, c, drop)
}

/// Tagging forward over hidden (N, C) (the twin of `tagging_forward`); one loss per token.
pub fn tagging_forward(
    g: &Gpu,
    a: &mut HeadActs,
    params: Dev,
    head: &TaggingHead,
    hidden: Dev,
    io: &HeadIo,
    n: usize,
    c: usize,
    drop: DropoutCfg,
) -> Result<()> {
    let (k, x) = (head.num_labels, hidden.dtype);
    a.x.ensure(g, n * c, x)?;
    a.logits.ensure(g, n * k, x)?;
    let (xb, logits) = (a.x.view(n * c)?, a.logits.view(n * k)?);
    g.copy(xb, hidden.at(0, n * c))?;
    dropout_forward(g, xb, drop.hidden, drop.seed_of(Site::Tagging), n * c)?;
    let (w, bias) = (params.slice(head.w.clone()), params.slice(head.b.clone()));
    matmul_forward(g, logits, xb, w, Some(bias), n, c, k)?;
    a.logits_len = n * k;
    row_losses(g, io, logits, n, k)
}

/// Tagging backward of the mean loss over labelled tokens (the twin of `tagging_backward`).
pub fn tagging_backward(
    g: &Gpu,
    dhidden: Dev,
    grads: Dev,
    a: &HeadActs,
    params: Dev,
    head: &TaggingHead,
    io: &HeadIo,
    n: usize,
    c: usize,
    drop: DropoutCfg,
    scale: f32,
) -> Result<()> {
    let k = head.num_labels;
    // loss = mean CE(logits, labels) over labelled tokens
    let logits = a.logits.view(n * k)?;
    mean_loss_backward(g, logits, io.targets()?, io.counts[0], scale, n, k)?;
    // logits = x · W^T + b
    let (dw, db) = (grads.slice(head.w.clone()), grads.slice(head.b.clone()));
    matmul_backward(g, dhidden, dw, Some(db), logits, a.x.view(n * c)?, params.slice(head.w.clone()), n, c, k)?;
    // x = dropout(hidden)
    dropout_backward(g, dhidden, drop.hidden, drop.seed_of(Site::Tagging), n * c)
}

/// Span QA forward over hidden (B, T, C) (the twin of `span_forward`). The start and end
/// logits are computed as two one-output products (rows 0 and 1 of the (2, C) weight), so each
/// is a contiguous (B, T) buffer. With targets ((2B): starts, then ends, outside the window
/// already `IGNORE_INDEX`), writes B start losses then B end losses.
pub fn span_forward(
    g: &Gpu,
    a: &mut HeadActs,
    params: Dev,
    head: &SpanHead,
    hidden: Dev,
    io: &HeadIo,
    b: usize,
    t: usize,
    c: usize,
) -> Result<()> {
    let (n, x) = (b * t, hidden.dtype);
    let (w, bias) = (params.slice(head.w.clone()), params.slice(head.b.clone()));
    a.pre.ensure(g, n, x)?;
    a.logits.ensure(g, n, x)?;
    let (start, end) = (a.pre.view(n)?, a.logits.view(n)?);
    matmul_forward(g, start, hidden, w.at(0, c), Some(bias.at(0, 1)), n, c, 1)?;
    matmul_forward(g, end, hidden, w.at(c, c), Some(bias.at(1, 1)), n, c, 1)?;
    (a.pre_len, a.logits_len) = (n, n);
    if let (Some(tg), Some(l)) = (io.targets, io.losses) {
        crossentropy_forward(g, l.at(0, b), start, tg.at(0, b), b, t)?;
        crossentropy_forward(g, l.at(b, b), end, tg.at(b, b), b, t)?;
    }
    Ok(())
}

/// Span QA backward (the twin of `span_backward`): dhidden (B, T, C) overwritten. `hidden` is
/// the forward's input.
pub fn span_backward(
    g: &Gpu,
    dhidden: Dev,
    grads: Dev,
    a: &HeadActs,
    params: Dev,
    head: &SpanHead,
    hidden: Dev,
    io: &HeadIo,
    b: usize,
    t: usize,
    c: usize,
    scale: f32,
) -> Result<()> {
    let n = b * t;
    let (w, dw, db) = (params.slice(head.w.clone()), grads.slice(head.w.clone()), grads.slice(head.b.clone()));
    let targets = io.targets()?;
    // loss = CE(start)/2 + CE(end)/2, each a mean over in-window sequences
    for (j, logits) in [a.pre.view(n)?, a.logits.view(n)?].into_iter().enumerate() {
        let dloss = 0.5 * scale / io.counts[j].max(1) as f32;
        crossentropy_backward(g, logits, logits, targets.at(j * b, b), dloss, b, t)?;
        // logits_j = hidden · W[j]^T + b[j]: dhidden = Σ_j dlogits_j · W[j] (the second adds)
        let beta = if j == 0 { 0.0 } else { 1.0 };
        gemm(g, n, c, 1, dhidden, c, DMat::n(logits, 1), DMat::n(w.at(j * c, c), c), 1.0, beta, Strides::ONE)?;
        gemm(g, 1, c, n, dw.at(j * c, c), c, DMat::t(logits, 1), DMat::n(hidden, c), 1.0, 1.0, Strides::ONE)?;
        bias_backward(g, db.at(j, 1), logits, n, 1)?;
    }
    Ok(())
}

/// MLM forward, and with `dhidden` its backward, over the `m` masked rows (`io.rows`) of hidden
/// (N, C) (the twin of `cpu::heads::mlm_forward_backward`): one loss per masked row. The (M, V)
/// logits of the masked rows are the only vocabulary-sized buffer: the cross-entropy backward
/// overwrites them with their gradient in place. dhidden (N, C) is overwritten (zero outside
/// the masked rows) when given; `scale` multiplies dL.
pub fn mlm_step(
    g: &Gpu,
    a: &mut HeadActs,
    dhidden: Option<Dev>,
    grads: Dev,
    params: Dev,
    head: &MlmHead,
    hidden: Dev,
    io: &HeadIo,
    m: usize,
    n: usize,
    c: usize,
    scale: f32,
) -> Result<()> {
    let (v, x) = (head.vocab, hidden.dtype);
    if let Some(dh) = dhidden {
        g.zero(dh.at(0, n * c))?;
    }
    a.logits_len = 0;
    if m == 0 {
        return Ok(());
    }
    let w = |r: &Range<usize>| params.slice(r.clone());
    for s in [&mut a.x, &mut a.act, &mut a.pre, &mut a.h, &mut a.d1, &mut a.d2, &mut a.d3] {
        s.ensure(g, m * c, x)?;
    }
    a.mean.ensure(g, m, Dtype::F32)?;
    a.rstd.ensure(g, m, Dtype::F32)?;
    a.logits.ensure(g, m * v, x)?;
    let (xs, h1, h2, h3) = (a.x.view(m * c)?, a.pre.view(m * c)?, a.act.view(m * c)?, a.h.view(m * c)?);
    let (mean, rstd, logits) = (a.mean.view(m)?, a.rstd.view(m)?, a.logits.view(m * v)?);
    let rows = io.rows()?.at(0, m);
    gather_rows(g, xs, hidden, rows, m, n, c)?;
    matmul_forward(g, h1, xs, w(&head.dense_w), Some(w(&head.dense_b)), m, c, c)?;
    gelu_forward(g, h2, h1, m * c)?;
    let (ln_w, ln_b) = (w(&head.ln_w), w(&head.ln_b));
    layernorm_forward(g, h3, mean, rstd, h2, ln_w, ln_b, m, c, head.eps)?;
    matmul_forward(g, logits, h3, w(&head.wte), Some(w(&head.bias)), m, c, v)?;
    row_losses(g, io, logits, m, v)?;
    let Some(dhidden) = dhidden else { return Ok(()) };

    let gr = |r: &Range<usize>| grads.slice(r.clone());
    let (dh3, dh2, dh1) = (a.d1.view(m * c)?, a.d2.view(m * c)?, a.d3.view(m * c)?);
    // loss = mean CE(logits, targets): dlogits overwrite the logits
    mean_loss_backward(g, logits, io.targets()?, m, scale, m, v)?;
    // logits = h3 · wte^T + bias (the decoder is tied to the word embeddings)
    matmul_backward(g, dh3, gr(&head.wte), Some(gr(&head.bias)), logits, h3, w(&head.wte), m, c, v)?;
    // h3 = LN(h2)
    let (dlw, dlb) = (gr(&head.ln_w), gr(&head.ln_b));
    layernorm_backward(g, dh2, dlw, dlb, dh3, h2, mean, rstd, ln_w, m, c)?;
    // h2 = gelu(h1)
    gelu_backward(g, dh1, h1, dh2, m * c)?;
    // h1 = x · Wd^T + bd (dx into dh3, free again)
    let (dw, db) = (gr(&head.dense_w), gr(&head.dense_b));
    matmul_backward(g, dh3, dw, Some(db), dh1, xs, w(&head.dense_w), m, c, c)?;
    // x = hidden[rows]
    scatter_rows(g, dhidden, dh3, rows, m, n, c)
}
