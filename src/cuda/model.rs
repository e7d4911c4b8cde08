//! The GPU twin of `cpu::CpuModel`, a [`TaskModel`]: the same [`Structure`] (heads, layout)
//! and dropout seeds, with the flat buffers on the device. The f32 master weights, f32
//! gradients and f32 AdamW moments keep the CPU layout, so the host model and the checkpoints
//! read them back unchanged; in bf16/f16 runs a narrow copy of the weights (rewritten by every
//! AdamW step) feeds the GEMMs and the activations are in that type.
//!
//! A training step waits for the device once. Each micro-batch is one upload (ids, mask,
//! positions, the head's rows and targets, the embedding backward's plan; see
//! [`super::upload`]) and launches only; its per-row losses go to a device status area. The
//! optimizer step averages, measures the norm, clips and counts non-finite values on the
//! device, and AdamW skips itself when that count is not zero; then one copy brings back the
//! count, the norm and every loss of the step. Buffers are sized for the largest batch so far,
//! so after warm-up a step allocates nothing (`tests/cuda_emu_model.rs` counts).
//!
//! fp16 training uses dynamic loss scaling: the loss is multiplied by `scale` before the
//! backward; a step whose gradients hold a NaN or an infinity is skipped and the scale halved;
//! after [`LossScaler::GROWTH_INTERVAL`] good steps it doubles.

use super::device::{Buf, Dev, Dtype, Gpu};
use super::encoder::{embedding_groups, encoder_backward, encoder_forward, oom_hint, Activations, BackwardScratch};
use super::encoder::{EncoderInput, EncoderIo};
use super::heads::*;
use super::ops::embedding::EmbeddingGroups;
use super::ops::{
    adamw_update, cast_from_f32, clip_by_norm_plan, count_nonfinite, count_nonfinite_plan, decay_bits, grad_norm,
    scale_inplace,
};
use super::upload::{upload_bound, Part, Slot, Staging};
use crate::model::align_loss::{so_forward_backward, SoBatch};
use crate::model::batch::{Batch, Targets, TaskBatch, IGNORE_INDEX};
use crate::model::dropout::DropoutCfg;
use crate::model::heads::{Head, Structure};
use crate::model::host::{first_non_finite_tensor, HostModel};
use crate::model::optim::{OptimizerState, StepConfig};
use crate::model::task_model::{OptimizerView, SpanLogits, StepReport, TaskModel};
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

/// Slots at the start of the status area: the non-finite count (u32) and the gradient norm.
const STATUS_HEAD: usize = 2;

/// How a micro-batch's per-row losses make its loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LossKind {
    /// No targets: the loss is 0.
    None,
    /// The mean over `count` scored rows (the others hold 0) of `rows` losses.
    Mean { rows: usize, count: usize },
    /// Span QA: B start losses then B end losses, each averaged over its in-window count;
    /// the loss is half of each.
    Span { b: usize, counts: [usize; 2] },
}

impl LossKind {
    /// Losses the forward writes.
    fn rows(self) -> usize {
        match self {
            LossKind::None => 0,
            LossKind::Mean { rows, .. } => rows,
            LossKind::Span { b, .. } => 2 * b,
        }
    }

    /// The loss from its per-row losses, summed in f64 as the CPU does.
    fn loss(self, rows: &[f32]) -> f32 {
        let mean = |v: &[f32], count: usize| (v.iter().map(|&x| x as f64).sum::<f64>() / count as f64) as f32;
        match self {
            LossKind::None | LossKind::Mean { count: 0, .. } => 0.0,
            LossKind::Mean { count, .. } => mean(rows, count),
            LossKind::Span { b, counts } => {
                let mut loss = 0.0;
                for (j, &count) in counts.iter().enumerate() {
                    if count > 0 {
                        loss += mean(&rows[j * b..(j + 1) * b], count) / 2.0;
                    }
                }
                loss
            }
        }
    }
}

/// What a batch of one head puts in the upload besides the encoder inputs.
struct HeadStage {
    rows: Part,
    targets: Option<Part>,
    kind: LossKind,
    counts: [usize; 2],
    /// MLM: masked rows.
    m: usize,
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
    /// (⌈layout.total / 32⌉) u32: which elements take weight decay.
    decay: Buf,
    /// AdamW steps taken.
    pub t: u64,
    /// fp16 loss scaling (unused in other precisions).
    pub scaler: LossScaler,
    acts: Option<Activations>,
    scratch: Option<BackwardScratch>,
    heads: Vec<HeadActs>,
    /// Host side of the batch upload, and its device buffer.
    staging: Staging,
    io: Slot,
    /// (B, T) position ids of the last batch (host), for the embedding backward's plan.
    pos: Vec<u32>,
    /// f32: [non-finite count (u32), gradient norm, the per-row losses of the micro-batches
    /// accumulated since the last step...].
    status: Slot,
    /// The accumulated micro-batches' losses: (first row in `status`, how to average).
    pending: Vec<(usize, LossKind)>,
    /// The gradients are the last step's: the next micro-batch zeroes them first.
    stale_grads: bool,
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

    /// Uploads the weights (and their narrow copy); with `train`, also gradients, AdamW
    /// moments (`opt` or zeros) and the weight-decay mask, else empty buffers in their place.
    fn assemble(
        gpu: Arc<Gpu>,
        precision: Precision,
        host: &HostModel,
        opt: Option<&OptimizerState>,
        train: bool,
    ) -> Result<Self> {
        let g = &gpu;
        let layout = &host.structure.layout;
        let total = layout.total;
        let params = g.upload_f32(&host.params, Dtype::F32, "the f32 master weights")?;
        let params_x = match dtype_of(precision) {
            Dtype::F32 => None,
            d => {
                let b = g.alloc_uninit(total, d, "the low-precision weight copy")?;
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
        let bits = if train { decay_bits(total, layout.tensors.iter().map(|t| (t.range(), t.decay))) } else { vec![] };
        let decay = g.alloc_uninit(bits.len(), Dtype::U32, "the weight-decay mask")?;
        g.write_u32(decay.dev(), &bits)?;
        let heads = host.structure.specs.iter().map(|_| HeadActs::default()).collect();
        Ok(CudaModel {
            gpu,
            precision,
            s: host.structure.clone(),
            params,
            params_x,
            grads,
            m,
            v,
            decay,
            t,
            scaler: LossScaler::new(),
            acts: None,
            scratch: None,
            heads,
            staging: Staging::default(),
            io: Slot::new("the batch upload"),
            pos: Vec::new(),
            status: Slot::new("the step status"),
            pending: Vec::new(),
            stale_grads: false,
        })
    }

    fn trainable(&self) -> Result<()> {
        if self.grads.len() != self.s.layout.total {
            return Err(Error::Usage("this GPU model was loaded for inference only".into()));
        }
        Ok(())
    }

    /// The weights the forward reads: the narrow copy, or the f32 master in fp32.
    pub fn weights(&self) -> Dev<'_> {
        self.params_x.as_ref().map_or(self.params.dev(), |b| b.dev())
    }

    /// Forward of head `head` on `tb`: the mean loss (0.0 without targets), as
    /// `cpu::CpuModel::forward`. Outputs stay on the device ([`Self::read_logits`]).
    pub fn forward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        self.s.check(head, tb)?;
        let (at, kind) = self.run(head, tb, drop, false)?;
        self.read_loss(at, kind)
    }

    /// Forward and backward of head `head` on `tb`: gradients accumulate into [`Self::grads`]
    /// (multiplied by the loss scale in fp16, see [`Self::optimizer_step`]); the loss is
    /// reported by the next step.
    pub fn accumulate(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<()> {
        self.s.check(head, tb)?;
        self.trainable()?;
        if tb.targets == Targets::None {
            return Err(Error::Usage(format!("head `{}`: training needs targets", self.s.specs[head].name)));
        }
        if self.stale_grads {
            self.gpu.zero(self.grads.dev())?;
            self.stale_grads = false;
        }
        let entry = self.run(head, tb, drop, true)?;
        self.pending.push(entry);
        Ok(())
    }

    /// [`Self::accumulate`], returning the mean loss now (one wait for the device).
    pub fn forward_backward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        self.accumulate(head, tb, drop)?;
        let (at, kind) = *self.pending.last().ok_or_else(|| Error::Usage("no micro-batch to report".into()))?;
        self.read_loss(at, kind)
    }

    /// hidden_states[`layer`] (B, T, C) of `batch`, no dropout, no head, read back to the host
    /// (see [`TaskModel::encode_layer`]).
    pub fn encode_layer(&mut self, batch: &Batch, layer: usize) -> Result<Vec<f32>> {
        self.s.check_batch("encode", batch)?;
        self.s.check_layer(layer)?;
        self.encoder_run(batch, layer, None).map_err(|e| oom_hint(e, batch.b, batch.t))
    }

    /// The self-training objective on `sb` from hidden_states[`layer`]: the forward stops at
    /// the layer, its hidden states come to the host for the loss and its gradient
    /// ([`so_forward_backward`], one read-back and one upload per micro-batch), and the backward
    /// runs from the layer. The loss joins the status area like a head's, for the step to
    /// report.
    pub fn accumulate_so(&mut self, sb: &SoBatch, layer: usize, drop: DropoutCfg) -> Result<()> {
        sb.check()?;
        self.s.check_batch("self-training", &sb.batch)?;
        self.s.check_layer(layer)?;
        self.trainable()?;
        if self.stale_grads {
            self.gpu.zero(self.grads.dev())?;
            self.stale_grads = false;
        }
        let (b, t) = (sb.batch.b, sb.batch.t);
        self.encoder_run(&sb.batch, layer, Some((sb, drop))).map(|_| ()).map_err(|e| oom_hint(e, b, t))
    }

    /// The encoder on `batch` to hidden_states[`layer`] in training activations. Without `so`:
    /// no dropout, and the hidden states are returned. With `so`: `drop`, the objective's loss
    /// into the status area and its gradient through the encoder backward.
    fn encoder_run(&mut self, batch: &Batch, layer: usize, so: Option<(&SoBatch, DropoutCfg)>) -> Result<Vec<f32>> {
        let (b, t, c) = (batch.b, batch.t, self.s.cfg.hidden_size);
        let x = dtype_of(self.precision);
        let g = self.gpu.clone();
        Activations::ensure(&mut self.acts, &g, &self.s.cfg, x, b, t, true)?;
        if so.is_some() {
            BackwardScratch::ensure(&mut self.scratch, &g, &self.s.cfg, x, b, t)?;
        }
        self.io.ensure(&g, upload_bound(b * t), Dtype::U32)?;
        let mut st = std::mem::take(&mut self.staging);
        st.clear();
        let enc_in = EncoderInput::stage(&mut st, batch, &self.s.cfg, &mut self.pos);
        let (groups, plan_part) = stage_embedding_plan(&mut st, batch, &self.pos, &self.s, so.is_some())?;
        // The objective's loss row in the status area, after the pending ones.
        let at = self.status_used();
        if so.is_some() {
            self.status.grow_keeping(&g, at + 1, Dtype::F32, at)?;
        }
        let staged = st.upload(&g, &mut self.io)?;
        let io: EncoderIo = enc_in.views(&staged);
        let params = self.params_x.as_ref().map_or(self.params.dev(), |b| b.dev());
        let acts = self.acts.as_ref().ok_or_else(|| Error::Usage("activations missing".into()))?;
        let (cfg, enc) = (&self.s.cfg, &self.s.enc);
        let _r = g.range(|| format!("{} to layer {layer}", if so.is_some() { "self-training" } else { "encode" }));
        let drop = so.map_or(DropoutCfg::OFF, |(_, d)| d);
        encoder_forward(&g, acts, &io, params, enc, cfg, drop, Some(layer))?;
        // (B, T, C) hidden_states[layer], on the host.
        let hidden = g.read_f32(acts.hidden(layer, c))?;
        let (Some((sb, drop)), Some(groups), Some(plan)) = (so, &groups, plan_part) else {
            self.staging = st;
            return Ok(hidden);
        };
        let s = self.scratch.as_ref().ok_or_else(|| Error::Usage("backward scratch missing".into()))?;
        // (B, T, C) dLoss/dhidden, times the loss scale in fp16 as the heads' backward.
        let mut dh = vec![0.0f32; b * t * c];
        let loss = so_forward_backward(Some(&mut dh), &hidden, sb, c);
        if self.precision == Precision::Fp16 {
            let scale = self.scaler.scale;
            dh.iter_mut().for_each(|v| *v *= scale);
        }
        g.write_f32(s.dx.view(b * t * c), &dh)?;
        g.write_f32(self.status.view(at + 1)?.at(at, 1), &[loss])?;
        encoder_backward(&g, self.grads.dev(), s, acts, &io, groups, staged.view(plan), params, enc, cfg, drop, layer)?;
        self.pending.push((at, LossKind::Mean { rows: 1, count: 1 }));
        self.staging = st;
        Ok(hidden)
    }

    /// The loss of the micro-batch whose per-row losses start at `at` in the status area.
    fn read_loss(&self, at: usize, kind: LossKind) -> Result<f32> {
        if kind.rows() == 0 {
            return Ok(0.0);
        }
        let rows = self.gpu.read_f32(self.status.view(at + kind.rows())?.at(at, kind.rows()))?;
        Ok(kind.loss(&rows))
    }

    /// Rows of the status area in use: its head and the pending losses.
    fn status_used(&self) -> usize {
        self.pending.last().map_or(STATUS_HEAD, |&(at, k)| at + k.rows())
    }

    /// Stages what head `head` needs of `tb` besides the encoder inputs: the rows it gathers,
    /// its targets, and how its losses average.
    fn stage_head(&self, head: usize, tb: &TaskBatch, st: &mut Staging) -> Result<HeadStage> {
        let (b, t) = (tb.batch.b, tb.batch.t);
        let labels = match &tb.targets {
            Targets::Labels(l) => Some(l.as_slice()),
            _ => None,
        };
        let scored = |y: &[i64]| y.iter().filter(|&&v| v != IGNORE_INDEX).count();
        let first_tokens: Vec<u32> = (0..b).map(|bi| (bi * t) as u32).collect();
        let mean = |y: &[i64]| LossKind::Mean { rows: y.len(), count: scored(y) };
        let stage = match &self.s.heads[head] {
            Head::Classification(_) | Head::MultipleChoice(_) => HeadStage {
                rows: st.u32s(&first_tokens),
                targets: labels.map(|y| st.i64s(y)),
                kind: labels.map_or(LossKind::None, mean),
                counts: [labels.map_or(0, scored), 0],
                m: 0,
            },
            Head::Tagging(_) => HeadStage {
                rows: st.u32s(&[]),
                targets: labels.map(|y| st.i64s(y)),
                kind: labels.map_or(LossKind::None, mean),
                counts: [labels.map_or(0, scored), 0],
                m: 0,
            },
            Head::Span(_) => match &tb.targets {
                Targets::Span { start, end } => {
                    // Gold positions outside [0, T) are "not in this window": ignored.
                    let clamp = |p: i64| if p < 0 || p >= t as i64 { IGNORE_INDEX } else { p };
                    let y: Vec<i64> = start.iter().chain(end).map(|&p| clamp(p)).collect();
                    let counts = [scored(&y[..b]), scored(&y[b..])];
                    HeadStage {
                        rows: st.u32s(&[]),
                        targets: Some(st.i64s(&y)),
                        kind: LossKind::Span { b, counts },
                        counts,
                        m: 0,
                    }
                }
                _ => HeadStage { rows: st.u32s(&[]), targets: None, kind: LossKind::None, counts: [0, 0], m: 0 },
            },
            Head::Mlm(_) => {
                let y = labels.ok_or_else(|| Error::Usage("MLM needs target tokens".into()))?;
                let rows: Vec<u32> = (0..b * t).filter(|&i| y[i] != IGNORE_INDEX).map(|i| i as u32).collect();
                let targets: Vec<i64> = rows.iter().map(|&i| y[i as usize]).collect();
                let m = rows.len();
                HeadStage {
                    rows: st.u32s(&rows),
                    targets: Some(st.i64s(&targets)),
                    kind: LossKind::Mean { rows: m, count: m },
                    counts: [m, 0],
                    m,
                }
            }
        };
        Ok(stage)
    }

    /// Runs head `head` on `tb`, with the backward when `backward`; its per-row losses go to
    /// the status area after the pending ones. Returns where they start and how they average.
    fn run(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg, backward: bool) -> Result<(usize, LossKind)> {
        let (b, t) = (tb.batch.b, tb.batch.t);
        self.run_inner(head, tb, drop, backward).map_err(|e| oom_hint(e, b, t))
    }

    fn run_inner(
        &mut self,
        head: usize,
        tb: &TaskBatch,
        drop: DropoutCfg,
        backward: bool,
    ) -> Result<(usize, LossKind)> {
        let (b, t, c) = (tb.batch.b, tb.batch.t, self.s.cfg.hidden_size);
        let x = dtype_of(self.precision);
        let g = self.gpu.clone();
        Activations::ensure(&mut self.acts, &g, &self.s.cfg, x, b, t, true)?;
        if backward {
            BackwardScratch::ensure(&mut self.scratch, &g, &self.s.cfg, x, b, t)?;
        }
        // Everything the batch needs on the device, in one copy.
        self.io.ensure(&g, upload_bound(b * t), Dtype::U32)?;
        let mut st = std::mem::take(&mut self.staging);
        st.clear();
        let enc_in = EncoderInput::stage(&mut st, &tb.batch, &self.s.cfg, &mut self.pos);
        let hs = self.stage_head(head, tb, &mut st)?;
        let (groups, plan_part) = stage_embedding_plan(&mut st, &tb.batch, &self.pos, &self.s, backward)?;
        let at = self.status_used();
        let kind = hs.kind;
        self.status.grow_keeping(&g, at + kind.rows(), Dtype::F32, at)?;
        let staged = st.upload(&g, &mut self.io)?;
        let io: EncoderIo = enc_in.views(&staged);
        let status = self.status.view(at + kind.rows())?;
        let head_io = HeadIo {
            rows: Some(staged.view(hs.rows)),
            targets: hs.targets.map(|p| staged.view(p)),
            losses: (kind.rows() > 0).then(|| status.at(at, kind.rows())),
            counts: hs.counts,
        };

        let params = self.params_x.as_ref().map_or(self.params.dev(), |b| b.dev());
        let grads = self.grads.dev();
        let acts = self.acts.as_ref().ok_or_else(|| Error::Usage("activations missing".into()))?;
        let (cfg, enc) = (&self.s.cfg, &self.s.enc);
        let _r = g.range(|| format!("{} {}", if backward { "train" } else { "forward" }, self.s.specs[head].name));
        encoder_forward(&g, acts, &io, params, enc, cfg, drop, None)?;
        let hidden = acts.last(c);
        let a = &mut self.heads[head];
        let dx = match (&self.scratch, backward) {
            (Some(s), true) => Some(s.dx.view(b * t * c)),
            _ => None,
        };
        // fp16: the backward starts from scale·dL so small gradients survive the narrow type.
        let scale = if self.precision == Precision::Fp16 { self.scaler.scale } else { 1.0 };
        match &self.s.heads[head] {
            Head::Classification(h) => {
                classifier_forward(&g, a, params, h, hidden, &head_io, b, t, c, drop)?;
                if let Some(dx) = dx {
                    classifier_backward(&g, dx, grads, a, params, h, &head_io, b, t, c, drop, scale)?;
                }
            }
            Head::MultipleChoice(h) => {
                let k = h.num_choices;
                multiple_choice_forward(&g, a, params, &h.scorer, k, hidden, &head_io, b / k, t, c, drop)?;
                if let Some(dx) = dx {
                    multiple_choice_backward(
                        &g,
                        dx,
                        grads,
                        a,
                        params,
                        &h.scorer,
                        k,
                        &head_io,
                        b / k,
                        t,
                        c,
                        drop,
                        scale,
                    )?;
                }
            }
            Head::Span(h) => {
                span_forward(&g, a, params, h, hidden, &head_io, b, t, c)?;
                if let Some(dx) = dx {
                    span_backward(&g, dx, grads, a, params, h, hidden, &head_io, b, t, c, scale)?;
                }
            }
            Head::Tagging(h) => {
                tagging_forward(&g, a, params, h, hidden, &head_io, b * t, c, drop)?;
                if let Some(dx) = dx {
                    tagging_backward(&g, dx, grads, a, params, h, &head_io, b * t, c, drop, scale)?;
                }
            }
            Head::Mlm(h) => mlm_step(&g, a, dx, grads, params, h, hidden, &head_io, hs.m, b * t, c, scale)?,
        }
        if let (Some(s), Some(groups), Some(plan)) = (&self.scratch, &groups, plan_part) {
            if backward {
                let layers = cfg.num_layers;
                encoder_backward(&g, grads, s, acts, &io, groups, staged.view(plan), params, enc, cfg, drop, layers)?;
            }
        }
        self.staging = st;
        Ok((at, kind))
    }

    /// The attention kernels the last batch ran (None before the first batch).
    pub fn attention_path(&self) -> Option<super::ops::AttnPath> {
        self.acts.as_ref().map(|a| a.attn.path())
    }

    /// Zeroes the gradients and forgets the pending losses.
    pub fn zero_gradients(&mut self) -> Result<()> {
        self.pending.clear();
        self.stale_grads = false;
        self.gpu.zero(self.grads.dev())
    }

    /// Averages accumulated gradients over `micro_batches`, clips them to a global norm of
    /// `max_norm` (when positive), and takes one AdamW step (weight decay only on tensors the
    /// layout marks), as the CPU does; then reads the step's status back, in one copy. The step
    /// is skipped on the device when the norm or a loss is not finite, or (fp16) a gradient
    /// overflowed; an fp16 overflow with finite losses is a skipped step (`grad_norm: None`,
    /// the loss scale backs off), anything else non-finite is left for the caller to report.
    pub fn optimizer_step(&mut self, step: &StepConfig) -> Result<StepReport> {
        self.trainable()?;
        let (cfg, micro_batches, max_norm) = (&step.adamw, step.micro_batches, step.max_grad_norm);
        let g = self.gpu.clone();
        let n = self.s.layout.total;
        let used = self.status_used();
        self.status.grow_keeping(&g, used, Dtype::F32, used)?;
        let _r = g.range(|| "optimizer step".into());
        let status = self.status.view(used)?;
        let (count, norm) = (status.at(0, 1).cast(Dtype::U32), status.at(1, 1));
        let grads = self.grads.dev();
        let fp16 = self.precision == Precision::Fp16;
        let mut inv = 1.0 / micro_batches.max(1) as f32;
        // Frozen tensors take no part: zero gradients, no decay (the layout's flags), so AdamW
        // leaves them and their (zero) moments bit for bit as they are.
        for r in self.s.layout.frozen_ranges() {
            g.zero(grads.slice(r))?;
        }
        // count = non-finite gradients (fp16 overflow), then + non-finite norm and losses.
        if fp16 {
            count_nonfinite(&g, count, grads, n)?;
            inv /= self.scaler.scale;
        } else {
            g.zero(count)?;
        }
        if fp16 || micro_batches > 1 {
            scale_inplace(&g, grads, inv, n)?;
        }
        grad_norm(&g, norm, grads, n)?;
        if max_norm > 0.0 {
            g.run(clip_by_norm_plan(grads, norm, max_norm, n)?)?;
        }
        g.run(count_nonfinite_plan(count, status.at(1, used - 1), used - 1)?)?;
        self.t += 1;
        let (params, px) = (self.params.dev(), self.params_x.as_ref().map(|b| b.dev()));
        let (m, v) = (self.m.dev(), self.v.dev());
        adamw_update(&g, params, px, grads, m, v, Some(self.decay.dev()), Some(count), cfg, self.t, n)?;
        drop(_r);

        // The one wait of the step.
        let host = g.read_f32(status)?;
        let skipped = host[0].to_bits() > 0;
        let losses: Vec<f32> = self.pending.iter().map(|&(at, k)| k.loss(&host[at..at + k.rows()])).collect();
        let grad_norm = host[1];
        self.pending.clear();
        self.stale_grads = true;
        if skipped {
            self.t -= 1;
        }
        if fp16 {
            let overflow = skipped && losses.iter().all(|l| l.is_finite());
            self.scaler.update(overflow);
            if overflow {
                return Ok(StepReport { losses, grad_norm: None, applied: false });
            }
        }
        Ok(StepReport { losses, grad_norm: Some(grad_norm), applied: !skipped })
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
    /// [`Self::read_span_logits`] instead. Read after a `forward`, before a backward
    /// overwrites them with their gradient.
    pub fn read_logits(&self, head: usize) -> Result<Vec<f32>> {
        let a = self.heads.get(head).ok_or_else(|| Error::Usage(format!("no head {head}")))?;
        match (&self.s.heads[head], a.logits()) {
            (Head::Span(_) | Head::Mlm(_), _) => Err(Error::Usage("span QA and MLM heads have no logits".into())),
            (_, Some(l)) => self.gpu.read_f32(l),
            (_, None) => Err(Error::Usage("no forward has run for this head".into())),
        }
    }

    /// Start and end logits (B, T) each of the last span-QA forward of `head`.
    pub fn read_span_logits(&self, head: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let a = self.heads.get(head).ok_or_else(|| Error::Usage(format!("no head {head}")))?;
        match (&self.s.heads[head], a.start_logits(), a.logits()) {
            (Head::Span(_), Some(s), Some(e)) => Ok((self.gpu.read_f32(s)?, self.gpu.read_f32(e)?)),
            _ => Err(Error::Usage("the forward pass produced no span logits".into())),
        }
    }

    /// hidden_states[l] (B, T, C) of the last forward, on the host.
    pub fn read_hidden(&self, l: usize) -> Result<Vec<f32>> {
        let a = self.acts.as_ref().ok_or_else(|| Error::Usage("no forward has run".into()))?;
        self.gpu.read_f32(a.hidden(l, self.s.cfg.hidden_size))
    }
}

/// With `backward`, the embedding backward's plan for `batch` (position ids `pos`), and where
/// its packed form lies in the staged upload `st`.
fn stage_embedding_plan(
    st: &mut Staging,
    batch: &Batch,
    pos: &[u32],
    s: &Structure,
    backward: bool,
) -> Result<(Option<EmbeddingGroups>, Option<Part>)> {
    if !backward {
        return Ok((None, None));
    }
    let groups = embedding_groups(batch, pos, &s.enc, &s.cfg)?;
    let mut packed = Vec::with_capacity(groups.len());
    groups.pack(&mut packed);
    let part = st.u32s(&packed);
    Ok((Some(groups), Some(part)))
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
    fn accumulate(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<()> {
        CudaModel::accumulate(self, head, tb, drop)
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
    fn encode_layer(&mut self, batch: &Batch, layer: usize) -> Result<Cow<'_, [f32]>> {
        CudaModel::encode_layer(self, batch, layer).map(Cow::Owned)
    }
    fn accumulate_so(&mut self, sb: &SoBatch, layer: usize, drop: DropoutCfg) -> Result<()> {
        CudaModel::accumulate_so(self, sb, layer, drop)
    }
    fn hidden(&self, l: usize) -> Result<Cow<'_, [f32]>> {
        if l > self.s.cfg.num_layers {
            return Err(Error::Usage(format!("no hidden_states[{l}]: the model has {} layers", self.s.cfg.num_layers)));
        }
        self.read_hidden(l).map(Cow::Owned)
    }
    fn step(&mut self, cfg: &StepConfig) -> Result<StepReport> {
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
