//! The task heads on the GPU, the twins of `cpu::heads` op for op: classification (RoBERTa and
//! BERT), multiple choice, span QA, tagging, and MLM over the masked positions only.
//!
//! Each `*_forward` returns the mean loss over the scored targets (0.0 without targets) and
//! keeps what its backward needs in a [`HeadActs`]; each `*_backward` overwrites dL/dhidden
//! (B, T, C) and accumulates the head's f32 gradients. Losses are read back to the host (one
//! small copy per step); everything else stays on the device.

use super::device::{Buf, Dev, Dtype, Gpu};
use super::gemm::{gemm, DMat, Strides};
use super::ops::*;
use crate::model::batch::IGNORE_INDEX;
use crate::model::dropout::{DropoutCfg, Site};
use crate::model::heads::{ClassifierHead, MlmHead, SpanHead, TaggingHead};
use crate::Result;
use std::ops::Range;

/// Device buffers of one head forward, kept for its backward. Every field is `(rows, cols)` of
/// the activation dtype unless noted.
#[derive(Default)]
pub struct HeadActs {
    /// (M) u32 rows gathered from the hidden states (first tokens, masked positions).
    pub rows: Option<Buf>,
    /// (M, C) gathered (and for classification, dropped-out) hidden states.
    pub x: Option<Buf>,
    /// (M, C) dense output before the activation.
    pub pre: Option<Buf>,
    /// (M, C) tanh / GELU output (before the dropout that follows it).
    pub act: Option<Buf>,
    /// (M, C) the input of the output layer.
    pub h: Option<Buf>,
    /// (M) f32 LayerNorm mean (MLM).
    pub mean: Option<Buf>,
    /// (M) f32 LayerNorm rstd (MLM).
    pub rstd: Option<Buf>,
    /// (M, K) logits; the backward overwrites them with their gradient.
    pub logits: Option<Buf>,
    /// (M) i64 targets on the device.
    pub targets: Option<Buf>,
    /// Host copy of the targets (for counts).
    pub targets_host: Vec<i64>,
}

fn dev(b: &Option<Buf>) -> Result<Dev> {
    b.as_ref().map(|b| b.dev()).ok_or_else(|| crate::Error::Usage("head backward without its forward".into()))
}

/// The mean cross-entropy of the logits in `a` (N, K) against `labels` (N), over the rows whose
/// label is not ignored (0 when none is, or without labels); keeps the targets for the backward.
fn mean_loss(g: &Gpu, a: &mut HeadActs, labels: Option<&[i64]>, n: usize, k: usize) -> Result<f32> {
    let Some(y) = labels else { return Ok(0.0) };
    let t = g.alloc(y.len(), Dtype::I64, "targets")?;
    g.write_i64(t.dev(), y)?;
    let losses = g.alloc(y.len(), Dtype::F32, "losses")?;
    crossentropy_forward(g, losses.dev(), dev(&a.logits)?, t.dev(), n, k)?;
    let l = g.read_f32(losses.dev())?;
    (a.targets, a.targets_host) = (Some(t), y.to_vec());
    let count = y.iter().filter(|&&t| t != IGNORE_INDEX).count();
    Ok(if count == 0 { 0.0 } else { (l.iter().map(|&x| x as f64).sum::<f64>() / count as f64) as f32 })
}

/// Backward of [`mean_loss`] times `scale`: overwrites the logits in `a` (N, K) with their
/// gradient, in place, and returns that view.
fn mean_loss_backward(g: &Gpu, a: &HeadActs, scale: f32, n: usize, k: usize) -> Result<Dev> {
    let count = a.targets_host.iter().filter(|&&y| y != IGNORE_INDEX).count().max(1);
    let logits = dev(&a.logits)?;
    crossentropy_backward(g, logits, logits, dev(&a.targets)?, scale / count as f32, n, k)?;
    Ok(logits)
}

fn upload_rows(g: &Gpu, rows: &[u32]) -> Result<Buf> {
    let r = g.alloc(rows.len(), Dtype::U32, "gathered rows")?;
    g.write_u32(r.dev(), rows)?;
    Ok(r)
}

/// Classification forward (the twin of `heads::classification::classifier_forward`):
/// hidden (B, T, C) → logits (B, K). `params` in the activation dtype.
pub fn classifier_forward(
    g: &Gpu,
    a: &mut HeadActs,
    params: Dev,
    head: &ClassifierHead,
    hidden: Dev,
    labels: Option<&[i64]>,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) -> Result<f32> {
    let (k, x) = (head.num_labels, hidden.dtype);
    let w = |r: &Range<usize>| params.slice(r.clone());
    let rows: Vec<u32> = (0..b).map(|bi| (bi * t) as u32).collect();
    a.rows = Some(upload_rows(g, &rows)?);
    let cls = g.alloc(b * c, x, "head input")?;
    gather_rows(g, cls.dev(), hidden, dev(&a.rows)?, b, b * t, c)?;
    if head.dropout_before_dense {
        dropout_forward(g, cls.dev(), drop.hidden, drop.seed_of(Site::ClassifierInput), b * c)?;
    }
    let pre = g.alloc(b * c, x, "head dense")?;
    matmul_forward(g, pre.dev(), cls.dev(), w(&head.dense_w), Some(w(&head.dense_b)), b, c, c)?;
    let pooled = g.alloc(b * c, x, "head tanh")?;
    tanh_forward(g, pooled.dev(), pre.dev(), b * c)?;
    let h = g.alloc(b * c, x, "head hidden")?;
    g.copy(h.dev(), pooled.dev())?;
    dropout_forward(g, h.dev(), drop.hidden, drop.seed_of(Site::ClassifierHidden), b * c)?;
    let logits = g.alloc(b * k, x, "logits")?;
    matmul_forward(g, logits.dev(), h.dev(), w(&head.out_w), Some(w(&head.out_b)), b, c, k)?;
    (a.x, a.pre, a.act, a.h, a.logits) = (Some(cls), Some(pre), Some(pooled), Some(h), Some(logits));
    mean_loss(g, a, labels, b, k)
}

/// Classification backward from dL/dlogits, which the caller has written over `a.logits`
/// (the twin of `classifier_backward_logits`): dhidden (B, T, C) overwritten.
pub fn classifier_backward_logits(
    g: &Gpu,
    dhidden: Dev,
    grads: Dev,
    a: &HeadActs,
    params: Dev,
    head: &ClassifierHead,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) -> Result<()> {
    let (k, x) = (head.num_labels, dhidden.dtype);
    let w = |r: &Range<usize>| params.slice(r.clone());
    let gr = |r: &Range<usize>| grads.slice(r.clone());
    let dlogits = dev(&a.logits)?;
    // logits = h · Wout^T + bout
    let dh = g.alloc(b * c, x, "head dh")?;
    matmul_backward(g, dh.dev(), gr(&head.out_w), Some(gr(&head.out_b)), dlogits, dev(&a.h)?, w(&head.out_w), b, c, k)?;
    // h = dropout(tanh(pre))
    dropout_backward(g, dh.dev(), drop.hidden, drop.seed_of(Site::ClassifierHidden), b * c)?;
    let dpre = g.alloc(b * c, x, "head dpre")?;
    tanh_backward(g, dpre.dev(), dev(&a.act)?, dh.dev(), b * c)?;
    // pre = cls · Wd^T + bd
    let dcls = g.alloc(b * c, x, "head dcls")?;
    let (dw, db) = (gr(&head.dense_w), gr(&head.dense_b));
    matmul_backward(g, dcls.dev(), dw, Some(db), dpre.dev(), dev(&a.x)?, w(&head.dense_w), b, c, c)?;
    if head.dropout_before_dense {
        dropout_backward(g, dcls.dev(), drop.hidden, drop.seed_of(Site::ClassifierInput), b * c)?;
    }
    // cls = hidden[:, 0, :]
    g.zero(dhidden.at(0, b * t * c))?;
    scatter_rows(g, dhidden, dcls.dev(), dev(&a.rows)?, b, b * t, c)
}

/// Classification backward of the mean loss (the twin of `classifier_backward`). Every head
/// backward takes `scale`, the factor on dL (the fp16 loss scale; 1 otherwise).
pub fn classifier_backward(
    g: &Gpu,
    dhidden: Dev,
    grads: Dev,
    a: &HeadActs,
    params: Dev,
    head: &ClassifierHead,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
    scale: f32,
) -> Result<()> {
    // loss = mean CE(logits, labels); the gradient replaces the logits in place
    mean_loss_backward(g, a, scale, b, head.num_labels)?;
    classifier_backward_logits(g, dhidden, grads, a, params, head, b, t, c, drop)
}

/// Multiple choice forward over hidden (B·K, T, C): one score per sequence from the
/// classification scorer (K = 1 output), read as (B, K) (the twin of `multiple_choice_forward`).
pub fn multiple_choice_forward(
    g: &Gpu,
    a: &mut HeadActs,
    params: Dev,
    scorer: &ClassifierHead,
    num_choices: usize,
    hidden: Dev,
    labels: Option<&[i64]>,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
) -> Result<f32> {
    classifier_forward(g, a, params, scorer, hidden, None, b * num_choices, t, c, drop)?;
    // scores (B·K, 1) read as (B, K)
    mean_loss(g, a, labels, b, num_choices)
}

/// Multiple choice backward of the mean loss (the twin of `multiple_choice_backward`).
pub fn multiple_choice_backward(
    g: &Gpu,
    dhidden: Dev,
    grads: Dev,
    a: &HeadActs,
    params: Dev,
    scorer: &ClassifierHead,
    num_choices: usize,
    b: usize,
    t: usize,
    c: usize,
    drop: DropoutCfg,
    scale: f32,
) -> Result<()> {
    // loss = mean CE(scores (B, K), labels)
    mean_loss_backward(g, a, scale, b, num_choices)?;
    classifier_backward_logits(g, dhidden, grads, a, params, scorer, b * num_choices, t, c, drop)
}

/// Tagging forward over hidden (N, C) (the twin of `tagging_forward`).
pub fn tagging_forward(
    g: &Gpu,
    a: &mut HeadActs,
    params: Dev,
    head: &TaggingHead,
    hidden: Dev,
    labels: Option<&[i64]>,
    n: usize,
    c: usize,
    drop: DropoutCfg,
) -> Result<f32> {
    let (k, x) = (head.num_labels, hidden.dtype);
    let xb = g.alloc(n * c, x, "tagging input")?;
    g.copy(xb.dev(), hidden.at(0, n * c))?;
    dropout_forward(g, xb.dev(), drop.hidden, drop.seed_of(Site::Tagging), n * c)?;
    let logits = g.alloc(n * k, x, "tagging logits")?;
    let (w, bias) = (params.slice(head.w.clone()), params.slice(head.b.clone()));
    matmul_forward(g, logits.dev(), xb.dev(), w, Some(bias), n, c, k)?;
    (a.x, a.logits) = (Some(xb), Some(logits));
    mean_loss(g, a, labels, n, k)
}

/// Tagging backward of the mean loss over labelled tokens (the twin of `tagging_backward`).
pub fn tagging_backward(
    g: &Gpu,
    dhidden: Dev,
    grads: Dev,
    a: &HeadActs,
    params: Dev,
    head: &TaggingHead,
    n: usize,
    c: usize,
    drop: DropoutCfg,
    scale: f32,
) -> Result<()> {
    let k = head.num_labels;
    // loss = mean CE(logits, labels) over labelled tokens
    let logits = mean_loss_backward(g, a, scale, n, k)?;
    // logits = x · W^T + b
    let (dw, db) = (grads.slice(head.w.clone()), grads.slice(head.b.clone()));
    matmul_backward(g, dhidden, dw, Some(db), logits, dev(&a.x)?, params.slice(head.w.clone()), n, c, k)?;
    // x = dropout(hidden)
    dropout_backward(g, dhidden, drop.hidden, drop.seed_of(Site::Tagging), n * c)
}

/// Gold positions outside [0, T) are "not in this window": ignored (as `heads::span`).
fn clamp_targets(pos: &[i64], t: usize) -> Vec<i64> {
    pos.iter().map(|&p| if p < 0 || p >= t as i64 { IGNORE_INDEX } else { p }).collect()
}

/// Span QA forward over hidden (B, T, C) (the twin of `span_forward`). The start and end
/// logits are computed as two one-output products (rows 0 and 1 of the (2, C) weight), so each
/// is a contiguous (B, T) buffer: `a.pre` holds the start logits, `a.logits` the end logits.
pub fn span_forward(
    g: &Gpu,
    a: &mut HeadActs,
    params: Dev,
    head: &SpanHead,
    hidden: Dev,
    gold: Option<(&[i64], &[i64])>,
    b: usize,
    t: usize,
    c: usize,
) -> Result<f32> {
    let (n, x) = (b * t, hidden.dtype);
    let (w, bias) = (params.slice(head.w.clone()), params.slice(head.b.clone()));
    let start = g.alloc(n, x, "start logits")?;
    let end = g.alloc(n, x, "end logits")?;
    matmul_forward(g, start.dev(), hidden, w.at(0, c), Some(bias.at(0, 1)), n, c, 1)?;
    matmul_forward(g, end.dev(), hidden, w.at(c, c), Some(bias.at(1, 1)), n, c, 1)?;
    (a.pre, a.logits) = (Some(start), Some(end));
    let Some((s, e)) = gold else { return Ok(0.0) };
    let (ts, te) = (clamp_targets(s, t), clamp_targets(e, t));
    let losses = g.alloc(b, Dtype::F32, "span losses")?;
    let mut loss = 0.0;
    for (logits, tg) in [(dev(&a.pre)?, &ts), (dev(&a.logits)?, &te)] {
        let td = g.alloc(b, Dtype::I64, "span targets")?;
        g.write_i64(td.dev(), tg)?;
        crossentropy_forward(g, losses.dev(), logits, td.dev(), b, t)?;
        let count = tg.iter().filter(|&&p| p != IGNORE_INDEX).count();
        if count > 0 {
            let sum: f64 = g.read_f32(losses.dev())?.iter().map(|&x| x as f64).sum();
            loss += (sum / count as f64) as f32 / 2.0;
        }
    }
    a.targets_host = ts.into_iter().chain(te).collect();
    Ok(loss)
}

/// Span QA backward (the twin of `span_backward`): dhidden (B, T, C) overwritten. `hidden` is the forward's input.
pub fn span_backward(
    g: &Gpu,
    dhidden: Dev,
    grads: Dev,
    a: &HeadActs,
    params: Dev,
    head: &SpanHead,
    hidden: Dev,
    b: usize,
    t: usize,
    c: usize,
    scale: f32,
) -> Result<()> {
    let n = b * t;
    let (w, dw, db) = (params.slice(head.w.clone()), grads.slice(head.w.clone()), grads.slice(head.b.clone()));
    // loss = CE(start)/2 + CE(end)/2, each a mean over in-window sequences
    let (ts, te) = a.targets_host.split_at(b);
    let td = g.alloc(b, Dtype::I64, "span targets")?;
    for (j, (logits, tg)) in [(dev(&a.pre)?, ts), (dev(&a.logits)?, te)].into_iter().enumerate() {
        let dloss = 0.5 * scale / tg.iter().filter(|&&p| p != IGNORE_INDEX).count().max(1) as f32;
        g.write_i64(td.dev(), tg)?;
        crossentropy_backward(g, logits, logits, td.dev(), dloss, b, t)?;
        // logits_j = hidden · W[j]^T + b[j]: dhidden = Σ_j dlogits_j · W[j] (the second adds)
        let beta = if j == 0 { 0.0 } else { 1.0 };
        gemm(g, n, c, 1, dhidden, c, DMat::n(logits, 1), DMat::n(w.at(j * c, c), c), 1.0, beta, Strides::ONE)?;
        gemm(g, 1, c, n, dw.at(j * c, c), c, DMat::t(logits, 1), DMat::n(hidden, c), 1.0, 1.0, Strides::ONE)?;
        bias_backward(g, db.at(j, 1), logits, n, 1)?;
    }
    Ok(())
}

/// MLM forward and backward in one pass over the masked rows of hidden (N, C) (the twin of
/// `heads::mlm::mlm_forward_backward`, with `backward = true`) or the forward alone (the
/// evaluation loss). The (M, V) logits of the masked rows are the only vocabulary-sized buffer:
/// the cross-entropy backward overwrites them with their gradient in place. dhidden (N, C) is
/// overwritten (zero outside the masked rows) when given; `scale` multiplies dL.
pub fn mlm_step(
    g: &Gpu,
    dhidden: Option<Dev>,
    grads: Dev,
    params: Dev,
    head: &MlmHead,
    hidden: Dev,
    labels: &[i64],
    n: usize,
    c: usize,
    scale: f32,
) -> Result<f32> {
    let (v, x) = (head.vocab, hidden.dtype);
    let rows: Vec<u32> = (0..n).filter(|&i| labels[i] != IGNORE_INDEX).map(|i| i as u32).collect();
    let m = rows.len();
    if let Some(dh) = dhidden {
        g.zero(dh.at(0, n * c))?;
    }
    if m == 0 {
        return Ok(0.0);
    }
    let w = |r: &Range<usize>| params.slice(r.clone());
    let targets: Vec<i64> = rows.iter().map(|&i| labels[i as usize]).collect();
    let mut a = HeadActs { rows: Some(upload_rows(g, &rows)?), ..Default::default() };
    let xs = g.alloc(m * c, x, "MLM rows")?;
    gather_rows(g, xs.dev(), hidden, dev(&a.rows)?, m, n, c)?;
    let h1 = g.alloc(m * c, x, "MLM dense")?;
    matmul_forward(g, h1.dev(), xs.dev(), w(&head.dense_w), Some(w(&head.dense_b)), m, c, c)?;
    let h2 = g.alloc(m * c, x, "MLM gelu")?;
    gelu_forward(g, h2.dev(), h1.dev(), m * c)?;
    let h3 = g.alloc(m * c, x, "MLM layernorm")?;
    let mean = g.alloc(m, Dtype::F32, "MLM LN mean")?;
    let rstd = g.alloc(m, Dtype::F32, "MLM LN rstd")?;
    let (ln_w, ln_b) = (w(&head.ln_w), w(&head.ln_b));
    layernorm_forward(g, h3.dev(), mean.dev(), rstd.dev(), h2.dev(), ln_w, ln_b, m, c, head.eps)?;
    let logits = g.alloc(m * v, x, "MLM logits (masked rows × vocabulary)")?;
    matmul_forward(g, logits.dev(), h3.dev(), w(&head.wte), Some(w(&head.bias)), m, c, v)?;
    a.logits = Some(logits);
    let loss = mean_loss(g, &mut a, Some(&targets), m, v)?;
    let Some(dhidden) = dhidden else { return Ok(loss) };

    let gr = |r: &Range<usize>| grads.slice(r.clone());
    // loss = mean CE(logits, targets): dlogits overwrite the logits
    let dlogits = mean_loss_backward(g, &a, scale, m, v)?;
    // logits = h3 · wte^T + bias (the decoder is tied to the word embeddings)
    let dh3 = g.alloc(m * c, x, "MLM dh3")?;
    matmul_backward(g, dh3.dev(), gr(&head.wte), Some(gr(&head.bias)), dlogits, h3.dev(), w(&head.wte), m, c, v)?;
    // h3 = LN(h2)
    let dh2 = g.alloc(m * c, x, "MLM dh2")?;
    let (dlw, dlb) = (gr(&head.ln_w), gr(&head.ln_b));
    layernorm_backward(g, dh2.dev(), dlw, dlb, dh3.dev(), h2.dev(), mean.dev(), rstd.dev(), ln_w, m, c)?;
    // h2 = gelu(h1)
    let dh1 = g.alloc(m * c, x, "MLM dh1")?;
    gelu_backward(g, dh1.dev(), h1.dev(), dh2.dev(), m * c)?;
    // h1 = x · Wd^T + bd
    let dxs = g.alloc(m * c, x, "MLM dx")?;
    let (dw, db) = (gr(&head.dense_w), gr(&head.dense_b));
    matmul_backward(g, dxs.dev(), dw, Some(db), dh1.dev(), xs.dev(), w(&head.dense_w), m, c, c)?;
    // x = hidden[rows]
    scatter_rows(g, dhidden, dxs.dev(), dev(&a.rows)?, m, n, c)?;
    Ok(loss)
}
