//! The one model trait both backends implement ([`TaskModel`]): what the trainer, the
//! evaluator, the bench and the commands need from a model, whatever device it runs on. The
//! CPU's `cpu::CpuModel` and the GPU's `cuda::CudaModel` implement it; `crate::device` picks
//! one and builds it from a [`super::host::HostModel`]. Nothing above the backends names them.

use super::align_loss::SoBatch;
use super::batch::{Batch, TaskBatch};
use super::dropout::DropoutCfg;
use super::heads::Structure;
use super::optim::StepConfig;
use crate::config::ModelConfig;
use crate::error::Result;
use std::borrow::Cow;

/// Start and end logits (B, T) each, borrowed from the CPU or copied from the GPU.
pub type SpanLogits<'a> = (Cow<'a, [f32]>, Cow<'a, [f32]>);

/// The AdamW moments and step count as the host sees them (borrowed on the CPU).
pub struct OptimizerView<'a> {
    /// (layout.total) first moments.
    pub m: Cow<'a, [f32]>,
    /// (layout.total) second moments.
    pub v: Cow<'a, [f32]>,
    /// Steps taken.
    pub t: u64,
}

/// What one optimizer step did ([`TaskModel::step`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// The mean loss of every micro-batch accumulated since the previous step, in order.
    pub losses: Vec<f32>,
    /// The global gradient norm before clipping; `None` when the step was skipped for an fp16
    /// overflow (the loss scale then backs off).
    pub grad_norm: Option<f32>,
    /// Whether the weights were updated: not when a loss or the norm is not finite (the
    /// weights, and the gradients, stay as they were, for the caller to report), nor on an fp16
    /// overflow.
    pub applied: bool,
}

/// An encoder with its task heads, its weights and (when trainable) gradients and AdamW state,
/// on one device.
///
/// A training step is `accumulate` once per micro-batch (gradients accumulate), then one
/// `step` (average, clip, AdamW), which reports the micro-batches' losses: on a GPU the step
/// waits for the device once, not once per micro-batch. Evaluation is `forward` then `logits` / `span_logits`.
/// A model built for inference only has no gradients or optimizer state: `forward_backward`
/// and `step` are errors. Misuse (reading outputs before a forward, a head that does not
/// exist) is an error, never a panic.
pub trait TaskModel {
    /// Configuration, layout, encoder and head ranges.
    fn structure(&self) -> &Structure;
    /// Where it runs, for messages: `cpu`, `cuda:0 (NVIDIA H200, bf16)`.
    fn device(&self) -> String;
    /// Forward of head `head` on `tb`: the mean loss over its targets (0.0 without targets).
    fn forward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32>;
    /// Forward and backward of head `head` on `tb` (which must carry targets): gradients
    /// accumulate until [`TaskModel::step`], which reports the loss.
    fn accumulate(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<()>;
    /// [`TaskModel::accumulate`], returning the mean loss now (on a GPU this waits for it).
    fn forward_backward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32>;
    /// Outputs of the last forward of `head`: classification logits (B, K), multiple-choice
    /// scores (B, K), tagging logits (B·T, K).
    fn logits(&self, head: usize) -> Result<Cow<'_, [f32]>>;
    /// Start and end logits (B, T) each of the last span-QA forward of `head`.
    fn span_logits(&self, head: usize) -> Result<SpanLogits<'_>>;
    /// hidden_states[l] (B, T, C) of the last forward (0 = embedding output).
    fn hidden(&self, l: usize) -> Result<Cow<'_, [f32]>>;
    /// hidden_states[`layer`] (B, T, C) of `batch` without dropout and without a head, the
    /// encoder run only to that layer (the self-training objective's guide). Replaces the
    /// activations of the last forward; accumulated gradients are kept.
    fn encode_layer(&mut self, batch: &Batch, layer: usize) -> Result<Cow<'_, [f32]>>;
    /// The self-training objective ([`crate::model::align_loss`]) on `sb`: the encoder run to
    /// hidden_states[`layer`] with `drop`, the loss and its gradient on the host, the backward
    /// from that layer (the layers above it get no gradient). Gradients accumulate until
    /// [`TaskModel::step`], which reports the loss.
    fn accumulate_so(&mut self, sb: &SoBatch, layer: usize, drop: DropoutCfg) -> Result<()>;
    /// One optimizer step over the accumulated gradients ([`StepConfig`]): averaged over the
    /// micro-batches, clipped, AdamW. Skipped (the weights untouched) when a loss or the norm is
    /// not finite, or on an fp16 overflow; see [`StepReport`]. The gradients start from zero
    /// for the next micro-batch.
    fn step(&mut self, cfg: &StepConfig) -> Result<StepReport>;
    /// Discards accumulated gradients and their losses.
    fn zero_grad(&mut self) -> Result<()>;
    /// The weights, on the host (layout.total).
    fn params(&self) -> Result<Cow<'_, [f32]>>;
    /// Replaces the weights with host `params` (layout.total); the optimizer state is kept.
    fn set_params(&mut self, params: &[f32]) -> Result<()>;
    /// The AdamW moments and step count, on the host (an error for an inference-only model).
    fn optimizer(&self) -> Result<OptimizerView<'_>>;
    /// Where the first NaN or infinity is (a weight, else an activation of the last forward,
    /// else a gradient), as `weight NAME[i] = NaN`; `None` when every value is finite.
    fn first_non_finite(&self) -> Result<Option<String>>;
    /// An error, before anything is allocated, when a training batch of `rows` sequences of
    /// `t` tokens cannot fit in the device's memory.
    fn check_fits(&self, rows: usize, t: usize) -> Result<()>;
    /// Waits until the device has finished its queued work (timing; a no-op on the CPU).
    fn synchronize(&self) -> Result<()>;
    /// Device memory in use, in bytes, where the device reports it.
    fn memory_in_use(&self) -> Option<usize>;
}

/// What [`SentenceEncoder::encode`] does with each batch's hidden state: the batch and its
/// hidden state (B, T, C) in, the rows the caller keeps out (pooled sentence vectors).
pub type Reduce<'a> = dyn Fn(&Batch, &[f32]) -> Vec<f32> + Sync + 'a;

/// An encoder run for inference only, as the embedder and the retrieval tasks use it: the
/// hidden state of one layer for batches of sentences, reduced per batch by the caller (so no
/// more than a batch of hidden states is held at once). The CPU's keeps its weights transposed
/// for inference and may run batches side by side; the GPU's keeps them on the device.
pub trait SentenceEncoder {
    /// The encoder's configuration.
    fn cfg(&self) -> &ModelConfig;
    /// Runs every batch to hidden_states[`layer`] (0 = embedding output) and returns
    /// `reduce(batch, hidden (B, T, C))` for each, in order.
    fn encode(&self, batches: &[Batch], layer: usize, reduce: &Reduce) -> Result<Vec<Vec<f32>>>;
}
