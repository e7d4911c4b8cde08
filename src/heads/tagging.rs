//! Token tagging (UDPOS, PAN-X, CCG), as jiant's `TokenClassificationHead` and HF
//! `*ForTokenClassification`: dropout → Linear(C, K) on every token; cross-entropy only on
//! labelled positions (the first sub-token of each word; others carry `IGNORE_INDEX`).

use crate::cpu::encoder::{two_mut, DropoutCfg};
use crate::cpu::ops::*;
use crate::model::ParamLayout;
use std::ops::Range;

/// Ranges of the tagging head's tensors (HF names `classifier.weight` / `classifier.bias`).
#[derive(Clone, Debug)]
pub struct TaggingHead {
    /// (K, C)
    pub w: Range<usize>,
    /// (K)
    pub b: Range<usize>,
    /// K
    pub num_labels: usize,
}

impl TaggingHead {
    /// Registers `<prefix>.weight` and `<prefix>.bias` (HF uses `classifier`).
    pub fn register(layout: &mut ParamLayout, prefix: &str, c: usize, num_labels: usize) -> Self {
        TaggingHead {
            w: layout.push(&format!("{prefix}.weight"), &[num_labels, c], true, false),
            b: layout.push(&format!("{prefix}.bias"), &[num_labels], false, false),
            num_labels,
        }
    }
}

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

/// Dropout site layer id of the tagging head.
pub const HEAD_LAYER: usize = usize::MAX - 2;

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
    dropout_forward(&mut a.x, drop.hidden, drop.site(HEAD_LAYER, 0), n * c);
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
    dropout_backward(dhidden, drop.hidden, drop.site(HEAD_LAYER, 0), n * c);
}
