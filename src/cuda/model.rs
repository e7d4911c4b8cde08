//! The GPU twin of `cpu::CpuModel`, a [`TaskModel`]: the same [`Structure`] (heads, layout)
//! and dropout seeds, with the flat buffers on the device. The f32 master weights, f32 gradients and f32 AdamW moments keep
//! the CPU layout, so the host model and the checkpoints read them back unchanged; in bf16/f16
//! runs a narrow copy of the weights (rewritten by every AdamW step) feeds the GEMMs and the
//! activations are in that type.
//!
//! fp16 training uses dynamic loss scaling: the loss is multiplied by `scale` before the
//! backward; a step whose gradients hold a NaN or an infinity is skipped and the scale halved;
//! after [`LossScaler::GROWTH_INTERVAL`] good steps it doubles.

use super::device::{Buf, Dev, Dtype, Gpu};
use super::encoder::{encoder_backward, encoder_forward, oom_hint, Activations, BackwardScratch};
use super::heads::*;
use super::ops::{adamw_update, cast_from_f32, clip_grad_norm, count_nonfinite, grad_norm, scale_inplace};
use crate::model::batch::{Targets, TaskBatch};
use crate::model::dropout::DropoutCfg;
use crate::model::heads::{Head, Structure};
use crate::model::host::{first_non_finite_tensor, HostModel};
use crate::model::optim::{OptimizerState, StepConfig};
use crate::model::task_model::{OptimizerView, SpanLogits, TaskModel};
use crate::{Error, Result};
use std::borrow::Cow;
use std::sync::Arc;

pub use crate::model::Precision;

/// The activation dtype of a precision.
pub fn dtype_of(p: Precision) -> Dtype {
    match p {
        Precision::Fp32 => Dtype::F32,
        Precision::Bf16 => Dtype::Bf16,
        Precision::Fp16 => Dtype::F16,
    }
}

/// Dynamic loss scaling for fp16 (PyTorch `GradScaler` semantics).
#[derive(Clone, Copy, Debug)]
pub struct LossScaler {
    /// Current scale.
    pub scale: f32,
    /// Good steps since the last change.
    pub good_steps: u32,
    /// Steps skipped for overflow so far.
    pub skipped: u64,
}

impl LossScaler {
    /// Initial scale, as PyTorch's.
    pub const INIT: f32 = 65536.0;
    /// Good steps before the scale doubles.
    pub const GROWTH_INTERVAL: u32 = 2000;

    fn new() -> Self {
        LossScaler { scale: Self::INIT, good_steps: 0, skipped: 0 }
    }

    /// Records a step: `overflow` halves the scale (and the step is skipped by the caller),
    /// otherwise the scale doubles after `GROWTH_INTERVAL` good steps.
    pub fn update(&mut self, overflow: bool) {
        if overflow {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
            self.skipped += 1;
        } else {
            self.good_steps += 1;
            if self.good_steps >= Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        }
    }
}

/// The GPU twin of `cpu::CpuModel`: parameters, gradients and AdamW state on the device.
pub struct CudaModel {
    /// The GPU.
    pub gpu: Arc<Gpu>,
    /// Arithmetic precision.
    pub precision: Precision,
    /// The model's structure: configuration, layout and heads.
    pub s: Structure,
    /// (layout.total) f32 master weights.
    pub params: Buf,
    /// (layout.total) narrow copy of the weights for bf16/f16; `None` in fp32.
    params_x: Option<Buf>,
    /// (layout.total) f32 gradients.
    pub grads: Buf,
    /// (layout.total) f32 AdamW first moments.
    pub m: Buf,
    /// (layout.total) f32 AdamW second moments.
    pub v: Buf,
    /// AdamW steps taken.
    pub t: u64,
    /// fp16 loss scaling (unused in other precisions).
    pub scaler: LossScaler,
    acts: Option<(Activations, BackwardScratch)>,
    head_acts: Vec<HeadActs>,
}

impl CudaModel {
    /// A trainable model on `gpu` from host weights and the AdamW state `opt` (zeroed moments
    /// when `None`).
    pub fn new(gpu: Arc<Gpu>, precision: Precision, host: &HostModel, opt: Option<&OptimizerState>) -> Result<Self> {
        Self::assemble(gpu, precision, host, opt, true)
    }

    /// For evaluation only: the weights on `gpu` without gradients or optimizer state (a
    /// quarter of the training footprint); `forward_backward` and `step` are errors.
    pub fn inference(gpu: Arc<Gpu>, precision: Precision, host: &HostModel) -> Result<Self> {
        Self::assemble(gpu, precision, host, None, false)
    }

    /// Uploads the weights (and their narrow copy); with `train`, also gradients and AdamW
    /// moments (`opt` or zeros), else empty buffers in their place.
    fn assemble(
        gpu: Arc<Gpu>,
        precision: Precision,
        host: &HostModel,
        opt: Option<&OptimizerState>,
        train: bool,
    ) -> Result<Self> {
        let g = &gpu;
        let total = host.structure.layout.total;
        let params = g.upload_f32(&host.params, Dtype::F32, "the f32 master weights")?;
        let params_x = match dtype_of(precision) {
            Dtype::F32 => None,
            d => {
                let b = g.alloc(total, d, "the low-precision weight copy")?;
                cast_from_f32(g, b.dev(), params.dev(), total)?;
                Some(b)
            }
        };
        let n = if train { total } else { 0 };
        let grads = g.alloc(n, Dtype::F32, "the gradients")?;
        let (m, v, t) = match opt {
            Some(o) if train => {
                (g.upload_f32(&o.m, Dtype::F32, "AdamW m")?, g.upload_f32(&o.v, Dtype::F32, "AdamW v")?, o.t)
            }
            _ => (g.alloc(n, Dtype::F32, "AdamW m")?, g.alloc(n, Dtype::F32, "AdamW v")?, 0),
        };
        let head_acts = host.structure.specs.iter().map(|_| HeadActs::default()).collect();
        Ok(CudaModel {
            gpu,
            precision,
            s: host.structure.clone(),
            params,
            params_x,
            grads,
            m,
            v,
            t,
            scaler: LossScaler::new(),
            acts: None,
            head_acts,
        })
    }

    fn trainable(&self) -> Result<()> {
        if self.grads.len() != self.s.layout.total {
            return Err(Error::Usage("this GPU model was loaded for inference only".into()));
        }
        Ok(())
    }

    /// The weights the forward reads: the narrow copy, or the f32 master in fp32.
    pub fn weights(&self) -> Dev {
        self.params_x.as_ref().map_or(self.params.dev(), |b| b.dev())
    }

    fn ensure(&mut self, b: usize, t: usize) -> Result<()> {
        if self.acts.as_ref().is_some_and(|(a, _)| a.b == b && a.t == t) {
            return Ok(());
        }
        self.acts = None; // free the old shape first
        let (g, cfg, x) = (&self.gpu, &self.s.cfg, dtype_of(self.precision));
        self.acts = Some((Activations::new(g, cfg, x, b, t, true)?, BackwardScratch::new(g, cfg, x, b, t)?));
        Ok(())
    }

    /// Forward of head `head` on `tb`: the mean loss (0.0 without targets), as
    /// `cpu::CpuModel::forward`. Outputs stay on the device ([`Self::read_logits`]).
    pub fn forward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        self.s.check(head, tb)?;
        self.run(head, tb, drop, false)
    }

    /// Forward and backward of head `head` on `tb`: the mean loss; gradients accumulate into
    /// [`Self::grads`] (multiplied by the loss scale in fp16, see [`Self::step`]).
    pub fn forward_backward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        self.s.check(head, tb)?;
        self.trainable()?;
        if tb.targets == Targets::None {
            return Err(Error::Usage(format!("head `{}`: training needs targets", self.s.specs[head].name)));
        }
        self.run(head, tb, drop, true)
    }

    /// [`Self::run_inner`], with an out-of-memory error naming the batch shape to lower.
    fn run(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg, backward: bool) -> Result<f32> {
        self.run_inner(head, tb, drop, backward).map_err(|e| oom_hint(e, tb.batch.b, tb.batch.t))
    }

    fn run_inner(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg, backward: bool) -> Result<f32> {
        let (b, t, c) = (tb.batch.b, tb.batch.t, self.s.cfg.hidden_size);
        self.ensure(b, t)?;
        let params = self.weights();
        let grads = self.grads.dev();
        let g = &*self.gpu;
        let (acts, scratch) = self.acts.as_mut().expect("ensure sets the activations");
        let (cfg, enc) = (&self.s.cfg, &self.s.enc);
        encoder_forward(g, acts, params, enc, cfg, &tb.batch, drop, None)?;
        let hidden = acts.last();
        let labels = match &tb.targets {
            Targets::Labels(l) => Some(l.as_slice()),
            _ => None,
        };
        let a = &mut self.head_acts[head];
        let dx = scratch.dx.dev();
        // fp16: the backward starts from scale·dL so small gradients survive the narrow type.
        let scale = if self.precision == Precision::Fp16 { self.scaler.scale } else { 1.0 };
        let loss = match &self.s.heads[head] {
            Head::Classification(h) => {
                let loss = classifier_forward(g, a, params, h, hidden, labels, b, t, c, drop)?;
                if backward {
                    classifier_backward(g, dx, grads, a, params, h, b, t, c, drop, scale)?;
                }
                loss
            }
            Head::MultipleChoice(h) => {
                let k = h.num_choices;
                let loss = multiple_choice_forward(g, a, params, &h.scorer, k, hidden, labels, b / k, t, c, drop)?;
                if backward {
                    multiple_choice_backward(g, dx, grads, a, params, &h.scorer, k, b / k, t, c, drop, scale)?;
                }
                loss
            }
            Head::Span(h) => {
                let gold = match &tb.targets {
                    Targets::Span { start, end } => Some((start.as_slice(), end.as_slice())),
                    _ => None,
                };
                let loss = span_forward(g, a, params, h, hidden, gold, b, t, c)?;
                if backward {
                    span_backward(g, dx, grads, a, params, h, hidden, b, t, c, scale)?;
                }
                loss
            }
            Head::Tagging(h) => {
                let loss = tagging_forward(g, a, params, h, hidden, labels, b * t, c, drop)?;
                if backward {
                    tagging_backward(g, dx, grads, a, params, h, b * t, c, drop, scale)?;
                }
                loss
            }
            Head::Mlm(h) => {
                let y = labels.ok_or_else(|| Error::Usage("MLM needs target tokens".into()))?;
                mlm_step(g, backward.then_some(dx), grads, params, h, hidden, y, b * t, c, scale)?
            }
        };
        if backward {
            encoder_backward(g, grads, scratch, acts, params, enc, cfg, &tb.batch, drop)?;
        }
        Ok(loss)
    }

    /// The attention kernels the last batch ran (None before the first batch).
    pub fn attention_path(&self) -> Option<super::ops::AttnPath> {
        self.acts.as_ref().map(|(a, _)| a.attn.path())
    }

    /// Zeroes the gradients.
    pub fn zero_gradients(&self) -> Result<()> {
        self.gpu.zero(self.grads.dev())
    }

    /// Averages accumulated gradients over `micro_batches`, clips them to a global norm of
    /// `max_norm` (when positive), and takes one AdamW step (weight decay only on tensors the
    /// layout marks), as the trainer does on the CPU. In fp16 a step whose gradients overflow is
    /// skipped (returns `None`) and the loss scale backs off. Returns the norm before clipping.
    pub fn optimizer_step(&mut self, step: &StepConfig) -> Result<Option<f32>> {
        let (cfg, micro_batches, max_norm) = (&step.adamw, step.micro_batches, step.max_grad_norm);
        self.trainable()?;
        let g = &*self.gpu;
        let (grads, n) = (self.grads.dev(), self.s.layout.total);
        let mut inv = 1.0 / micro_batches.max(1) as f32;
        if self.precision == Precision::Fp16 {
            if count_nonfinite(g, grads, n)? > 0 {
                self.scaler.update(true);
                self.zero_gradients()?;
                return Ok(None);
            }
            // Unscale by the scale this step's gradients were made with, then update it.
            inv /= self.scaler.scale;
            self.scaler.update(false);
            scale_inplace(g, grads, inv, n)?;
        } else if micro_batches > 1 {
            scale_inplace(g, grads, inv, n)?;
        }
        let norm = if max_norm > 0.0 { clip_grad_norm(g, grads, max_norm, n)? } else { grad_norm(g, grads, n)? };
        self.t += 1;
        for tensor in &self.s.layout.tensors {
            let r = tensor.range();
            let len = r.len();
            let px = self.params_x.as_ref().map(|b| b.dev().slice(r.clone()));
            let (p, gr) = (self.params.dev().slice(r.clone()), grads.slice(r.clone()));
            let (m, v) = (self.m.dev().slice(r.clone()), self.v.dev().slice(r.clone()));
            adamw_update(g, p, px, gr, m, v, cfg, tensor.decay, self.t, len)?;
        }
        self.zero_gradients()?;
        Ok(Some(norm))
    }

    /// Replaces the weights (f32 master and narrow copy) with host `params` (the layout's
    /// length); the optimizer state is left as it is.
    pub fn upload_params(&mut self, params: &[f32]) -> Result<()> {
        if params.len() != self.s.layout.total {
            return Err(Error::Usage(format!("{} parameters for a model of {}", params.len(), self.s.layout.total)));
        }
        self.gpu.write_f32(self.params.dev(), params)?;
        if let Some(x) = &self.params_x {
            cast_from_f32(&self.gpu, x.dev(), self.params.dev(), params.len())?;
        }
        Ok(())
    }

    /// The f32 master weights on the host.
    pub fn download_params(&self) -> Result<Vec<f32>> {
        self.gpu.read_f32(self.params.dev())
    }

    /// The f32 gradients on the host.
    pub fn download_grads(&self) -> Result<Vec<f32>> {
        self.gpu.read_f32(self.grads.dev())
    }

    /// The AdamW moments (m, v) on the host.
    pub fn download_moments(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((self.gpu.read_f32(self.m.dev())?, self.gpu.read_f32(self.v.dev())?))
    }

    /// Outputs of the last forward of `head`, as `cpu::CpuModel::head_logits`: classification
    /// logits (B, K), multiple-choice scores (B, K), tagging logits (B·T, K); span QA has
    /// [`Self::span_logits`] instead. Read after a `forward`, before a backward overwrites them
    /// with their gradient.
    pub fn read_logits(&self, head: usize) -> Result<Vec<f32>> {
        let a = self.head_acts.get(head).ok_or_else(|| Error::Usage(format!("no head {head}")))?;
        match (&self.s.heads[head], &a.logits) {
            (Head::Span(_) | Head::Mlm(_), _) => Err(Error::Usage("span QA and MLM heads have no logits".into())),
            (_, Some(l)) => self.gpu.read_f32(l.dev()),
            (_, None) => Err(Error::Usage("no forward has run for this head".into())),
        }
    }

    /// Start and end logits (B, T) each of the last span-QA forward of `head`.
    pub fn read_span_logits(&self, head: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let a = self.head_acts.get(head).ok_or_else(|| Error::Usage(format!("no head {head}")))?;
        match (&self.s.heads[head], &a.pre, &a.logits) {
            (Head::Span(_), Some(s), Some(e)) => Ok((self.gpu.read_f32(s.dev())?, self.gpu.read_f32(e.dev())?)),
            _ => Err(Error::Usage("the forward pass produced no span logits".into())),
        }
    }

    /// hidden_states[l] (B, T, C) of the last forward, on the host.
    pub fn read_hidden(&self, l: usize) -> Result<Vec<f32>> {
        let (a, _) = self.acts.as_ref().ok_or_else(|| Error::Usage("no forward has run".into()))?;
        self.gpu.read_f32(a.hidden(l))
    }
}

impl TaskModel for CudaModel {
    fn structure(&self) -> &Structure {
        &self.s
    }
    fn device(&self) -> String {
        format!("cuda:0 ({}, {})", self.gpu.describe(), self.precision.name())
    }
    fn forward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        CudaModel::forward(self, head, tb, drop)
    }
    fn forward_backward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        CudaModel::forward_backward(self, head, tb, drop)
    }
    fn logits(&self, head: usize) -> Result<Cow<'_, [f32]>> {
        self.read_logits(head).map(Cow::Owned)
    }
    fn span_logits(&self, head: usize) -> Result<SpanLogits<'_>> {
        let (s, e) = self.read_span_logits(head)?;
        Ok((Cow::Owned(s), Cow::Owned(e)))
    }
    fn hidden(&self, l: usize) -> Result<Cow<'_, [f32]>> {
        if l > self.s.cfg.num_layers {
            return Err(Error::Usage(format!("no hidden_states[{l}]: the model has {} layers", self.s.cfg.num_layers)));
        }
        self.read_hidden(l).map(Cow::Owned)
    }
    fn step(&mut self, cfg: &StepConfig) -> Result<Option<f32>> {
        self.optimizer_step(cfg)
    }
    fn zero_grad(&mut self) -> Result<()> {
        self.trainable()?;
        self.zero_gradients()
    }
    fn params(&self) -> Result<Cow<'_, [f32]>> {
        self.download_params().map(Cow::Owned)
    }
    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        self.upload_params(params)
    }
    fn optimizer(&self) -> Result<OptimizerView<'_>> {
        self.trainable()?;
        let (m, v) = self.download_moments()?;
        Ok(OptimizerView { m: Cow::Owned(m), v: Cow::Owned(v), t: self.t })
    }
    fn first_non_finite(&self) -> Result<Option<String>> {
        if let Some(found) = first_non_finite_tensor(&self.s, &self.download_params()?, "weight") {
            return Ok(Some(found));
        }
        if self.grads.len() == self.s.layout.total {
            return Ok(first_non_finite_tensor(&self.s, &self.download_grads()?, "gradient"));
        }
        Ok(None)
    }
    fn check_fits(&self, _rows: usize, _t: usize) -> Result<()> {
        // Device allocations report their own out-of-memory errors, naming the batch shape.
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        self.gpu.sync()
    }
    fn memory_in_use(&self) -> Option<usize> {
        self.gpu.mem_info().ok().map(|(free, total)| total.saturating_sub(free))
    }
}
