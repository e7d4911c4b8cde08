//! Multiple choice (HellaSwag, Cosmos QA, CommonsenseQA), as jiant's `MultipleChoiceModel`:
//! each of the K choices is encoded as its own sequence `prompt [SEP] choice`, a RoBERTa-style
//! head with one output scores its first token, and cross-entropy runs over the K scores.

use super::classification::{classifier_backward_logits, classifier_forward, ClassifierHead, HeadActs};
use crate::cpu::encoder::DropoutCfg;
use crate::cpu::ops::{crossentropy_backward, crossentropy_forward, IGNORE_INDEX};
use crate::model::ParamLayout;

/// The scoring head (dense + tanh + out_proj with one output) and the number of choices.
#[derive(Clone, Debug)]
pub struct MultipleChoiceHead {
    /// The shared per-choice scorer.
    pub scorer: ClassifierHead,
    /// K: choices per example.
    pub num_choices: usize,
}

impl MultipleChoiceHead {
    /// Registers `<prefix>.dense.*` and `<prefix>.out_proj.*` (one output).
    pub fn register(layout: &mut ParamLayout, prefix: &str, c: usize, num_choices: usize) -> Self {
        MultipleChoiceHead { scorer: ClassifierHead::register_named(layout, prefix, c, 1), num_choices }
    }
}

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
