//! Extractive QA (SQuAD, XQuAD, MLQA, TyDiQA), as HF `*ForQuestionAnswering` and jiant's
//! `QAHead`: Linear(C, 2) gives start and end logits per token; the loss is the mean of the
//! start and end cross-entropies over the sequence, gold positions clamped to [0, T] and T
//! ignored (answers outside the window).

use crate::cpu::encoder::two_mut;
use crate::cpu::ops::*;
use crate::model::ParamLayout;
use std::ops::Range;

/// Ranges of the span head (HF names `qa_outputs.weight` (2, C), `qa_outputs.bias` (2)).
#[derive(Clone, Debug)]
pub struct SpanHead {
    /// (2, C)
    pub w: Range<usize>,
    /// (2)
    pub b: Range<usize>,
}

impl SpanHead {
    /// Registers `<prefix>.weight` / `<prefix>.bias` (HF uses `qa_outputs`).
    pub fn register(layout: &mut ParamLayout, prefix: &str, c: usize) -> Self {
        SpanHead {
            w: layout.push(&format!("{prefix}.weight"), &[2, c], true, false),
            b: layout.push(&format!("{prefix}.bias"), &[2], false, false),
        }
    }
}

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
