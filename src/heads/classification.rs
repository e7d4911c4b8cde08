//! Sequence / pair classification head on the first token, dense + tanh + linear:
//! XLM-R's `classifier.dense` → tanh → `classifier.out_proj` (RoBERTa head, dropout before
//! each linear), BERT's `pooler` → dropout → `classifier` (the pooler is the encoder's).

use crate::config::{Family, ModelConfig};
use crate::cpu::encoder::{two_mut, DropoutCfg};
use crate::cpu::ops::*;
use crate::model::{EncoderParams, ParamLayout};
use std::ops::Range;

/// Ranges of the head's tensors.
#[derive(Clone, Debug)]
pub struct ClassifierHead {
    /// (C, C) dense weight: `classifier.dense.weight` (XLM-R) or `pooler.dense.weight` (BERT).
    pub dense_w: Range<usize>,
    /// (C)
    pub dense_b: Range<usize>,
    /// (K, C) output projection: `classifier.out_proj.weight` or `classifier.weight`.
    pub out_w: Range<usize>,
    /// (K)
    pub out_b: Range<usize>,
    /// K
    pub num_labels: usize,
    /// RoBERTa's head also applies dropout to the first token before the dense layer.
    pub dropout_before_dense: bool,
}

impl ClassifierHead {
    /// The RoBERTa-style head (dense + tanh + out_proj) under a name prefix of its own, e.g.
    /// `mc_head` for multiple choice with one output per choice.
    pub fn register_named(layout: &mut ParamLayout, prefix: &str, c: usize, num_labels: usize) -> Self {
        ClassifierHead {
            dense_w: layout.push(&format!("{prefix}.dense.weight"), &[c, c], true, false),
            dense_b: layout.push(&format!("{prefix}.dense.bias"), &[c], false, false),
            out_w: layout.push(&format!("{prefix}.out_proj.weight"), &[num_labels, c], true, false),
            out_b: layout.push(&format!("{prefix}.out_proj.bias"), &[num_labels], false, false),
            num_labels,
            dropout_before_dense: true,
        }
    }

    /// Registers the head's tensors. For BERT the dense layer is the encoder's pooler, which
    /// must have been registered.
    pub fn register(layout: &mut ParamLayout, enc: &EncoderParams, cfg: &ModelConfig, num_labels: usize) -> Self {
        Self::register_prefixed(layout, enc, cfg, num_labels, "")
    }

    /// [`register`](Self::register) with `prefix` before the head's HF names
    /// (`<prefix>classifier.*`), for several classification heads over one encoder.
    pub fn register_prefixed(
        layout: &mut ParamLayout,
        enc: &EncoderParams,
        cfg: &ModelConfig,
        num_labels: usize,
        prefix: &str,
    ) -> Self {
        let c = cfg.hidden_size;
        match (cfg.family, &enc.pooler) {
            (Family::Bert, Some((pw, pb))) => ClassifierHead {
                dense_w: pw.clone(),
                dense_b: pb.clone(),
                out_w: layout.push(&format!("{prefix}classifier.weight"), &[num_labels, c], true, false),
                out_b: layout.push(&format!("{prefix}classifier.bias"), &[num_labels], false, false),
                num_labels,
                dropout_before_dense: false,
            },
            _ => ClassifierHead {
                dense_w: layout.push(&format!("{prefix}classifier.dense.weight"), &[c, c], true, false),
                dense_b: layout.push(&format!("{prefix}classifier.dense.bias"), &[c], false, false),
                out_w: layout.push(&format!("{prefix}classifier.out_proj.weight"), &[num_labels, c], true, false),
                out_b: layout.push(&format!("{prefix}classifier.out_proj.bias"), &[num_labels], false, false),
                num_labels,
                dropout_before_dense: true,
            },
        }
    }
}

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

/// Dropout site layer id of the classification head (the encoder uses layer indices below it).
pub const HEAD_LAYER: usize = usize::MAX - 1;

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
        dropout_forward(&mut a.cls, drop.hidden, drop.site(HEAD_LAYER, 0), b * c);
    }
    matmul_forward(&mut a.pre, &a.cls, w(&head.dense_w), Some(w(&head.dense_b)), b, c, c);
    tanh_forward(&mut a.pooled, &a.pre, b * c);
    a.h.copy_from_slice(&a.pooled);
    dropout_forward(&mut a.h, drop.hidden, drop.site(HEAD_LAYER, 1), b * c);
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
    dropout_backward(&mut a.dh, drop.hidden, drop.site(HEAD_LAYER, 1), b * c);
    tanh_backward(&mut a.dpre, &a.pooled, &a.dh, b * c);
    // pre = cls · Wd^T + bd
    let (dw, db) = two_mut(grads, &head.dense_w, &head.dense_b);
    matmul_backward(&mut a.dcls, dw, Some(db), &a.dpre, &a.cls, w(&head.dense_w), b, c, c);
    if head.dropout_before_dense {
        dropout_backward(&mut a.dcls, drop.hidden, drop.site(HEAD_LAYER, 0), b * c);
    }
    // cls = hidden[:, 0, :]
    dhidden[..b * t * c].fill(0.0);
    for bi in 0..b {
        dhidden[bi * t * c..bi * t * c + c].copy_from_slice(&a.dcls[bi * c..(bi + 1) * c]);
    }
}
