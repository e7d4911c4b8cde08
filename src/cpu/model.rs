//! The CPU reference model: one shared encoder with a head per task ([`Structure`]), its flat
//! parameter, gradient and AdamW buffers, and the activations of the last batch (shared by all
//! heads, resized per batch for dynamic padding). It implements [`TaskModel`]; `cuda/model.rs`
//! is its twin.
//!
//! A head's tensor names: a run with a single head (plus optionally MLM) keeps the HF
//! task-model names (`classifier.*`, `qa_outputs.*`), so `transformers` loads the fine-tuned
//! head too; with several heads each gets `heads.<task>.` in front. The MLM head is always
//! `lm_head.*` (`cls.predictions.*` for BERT), tied to the word embeddings.

use super::encoder::{encoder_backward, encoder_forward, Activations, BackwardScratch};
use super::heads::*;
use super::ops::{adamw_update, clip_grad_norm, grad_norm, scale_inplace};
use crate::error::{Error, Result};
use crate::model::align_loss::{so_forward_backward, SoBatch};
use crate::model::batch::{Batch, Targets, TaskBatch, IGNORE_INDEX};
use crate::model::dropout::DropoutCfg;
use crate::model::heads::{Head, MlmHead, Structure};
use crate::model::host::{first_non_finite_tensor, HostModel};
use crate::model::optim::{OptimizerState, StepConfig};
use crate::model::task_model::{OptimizerView, SpanLogits, StepReport, TaskModel};
use crate::tasks::Kind;
use std::borrow::Cow;

/// Masked rows whose vocabulary logits are held at once when evaluating the MLM loss.
const MLM_EVAL_ROWS: usize = 64;

/// The buffers of one head for the current batch shape.
enum HeadBufs {
    Classification(HeadActs),
    MultipleChoice(MultipleChoiceActs),
    Span(SpanActs),
    Tagging(TaggingActs),
    Mlm(MlmActs),
}

/// An encoder with one head per task on the CPU: weights, gradients and AdamW moments as flat
/// buffers sharing the structure's layout.
pub struct CpuModel {
    /// Configuration, layout and tensor ranges.
    pub s: Structure,
    /// (layout.total) parameters.
    pub params: Vec<f32>,
    /// (layout.total) gradients; empty for an inference-only model.
    pub grads: Vec<f32>,
    /// (layout.total) AdamW first and second moments and the steps taken; empty for an
    /// inference-only model.
    pub opt: OptimizerState,
    /// Encoder activations and backward scratch for the current (B, T).
    acts: Option<(Activations, BackwardScratch)>,
    /// Per-head buffers, created on first use and rebuilt when the batch shape changes.
    bufs: Vec<Option<HeadBufs>>,
    /// (B, T) each head's buffers were built for.
    bufs_shape: Vec<(usize, usize)>,
    /// Losses of the micro-batches accumulated since the last step.
    pending: Vec<f32>,
    /// The gradients are the last step's (kept for a report when it was skipped): the next
    /// micro-batch starts from zero.
    stale_grads: bool,
}

impl CpuModel {
    /// A trainable model from host weights, with zeroed gradients and the AdamW state `opt`
    /// (zeroed moments when `None`).
    pub fn new(host: HostModel, opt: Option<OptimizerState>) -> Result<Self> {
        let n = host.structure.layout.total;
        let opt = match opt {
            Some(o) if o.m.len() != n || o.v.len() != n => {
                return Err(Error::Usage(format!(
                    "optimizer state of {} / {} values for a model of {n} parameters",
                    o.m.len(),
                    o.v.len()
                )))
            }
            Some(o) => o,
            None => OptimizerState { m: vec![0.0; n], v: vec![0.0; n], t: 0 },
        };
        Ok(Self::assemble(host, vec![0.0; n], opt))
    }

    /// An inference-only model: weights, no gradients or optimizer state.
    pub fn inference(host: HostModel) -> Self {
        Self::assemble(host, Vec::new(), OptimizerState::default())
    }

    fn assemble(host: HostModel, grads: Vec<f32>, opt: OptimizerState) -> Self {
        let HostModel { structure: s, params } = host;
        let bufs = s.specs.iter().map(|_| None).collect();
        let bufs_shape = vec![(0, 0); s.specs.len()];
        CpuModel { s, params, grads, opt, acts: None, bufs, bufs_shape, pending: Vec::new(), stale_grads: false }
    }

    /// The weights as a host model (a copy).
    pub fn host(&self) -> HostModel {
        HostModel { structure: self.s.clone(), params: self.params.clone() }
    }

    /// Sets every gradient to zero and forgets the losses accumulated since the last step.
    pub fn zero_grad(&mut self) {
        self.grads.iter_mut().for_each(|g| *g = 0.0);
        self.pending.clear();
        self.stale_grads = false;
    }

    fn trainable(&self) -> Result<()> {
        if self.grads.len() != self.s.layout.total {
            return Err(Error::Usage("this model was loaded for inference only: it cannot be trained".into()));
        }
        Ok(())
    }

    /// Sizes the encoder buffers for (B, T) and the head's buffers for the batch. A batch
    /// whose buffers would not fit in the available memory is an error, before allocating.
    fn ensure(&mut self, head: usize, b: usize, t: usize) -> Result<()> {
        self.ensure_encoder(b, t)?;
        let c = self.s.cfg.hidden_size;
        if self.bufs_shape[head] == (b, t) && self.bufs[head].is_some() {
            return Ok(());
        }
        // Head buffers are small next to the encoder's; rebuild them when the shape changes.
        let k = self.s.specs[head].num_labels;
        self.bufs[head] = Some(match &self.s.heads[head] {
            Head::Classification(_) => HeadBufs::Classification(HeadActs::new(b, c, k)),
            Head::MultipleChoice(_) => HeadBufs::MultipleChoice(MultipleChoiceActs::new(b / k, k, c)),
            Head::Span(_) => HeadBufs::Span(SpanActs::new(b, t)),
            Head::Tagging(_) => HeadBufs::Tagging(TaggingActs::new(b * t, c, k)),
            Head::Mlm(_) => HeadBufs::Mlm(MlmActs::default()),
        });
        self.bufs_shape[head] = (b, t);
        Ok(())
    }

    /// Sizes the encoder's training activations and backward scratch for (B, T).
    fn ensure_encoder(&mut self, b: usize, t: usize) -> Result<()> {
        let cfg = &self.s.cfg;
        let held = self.acts.as_ref().map_or(0, |(a, _)| Activations::train_bytes(cfg, a.b, a.t));
        let need = Activations::train_bytes(cfg, b, t);
        if need > held {
            crate::sys::check_fits(
                need - held,
                &format!("a batch of {b} × {t} tokens (lower the batch size or the sequence length)"),
            )?;
        }
        match &mut self.acts {
            Some((a, _)) if a.b == b && a.t == t => {}
            Some((a, s)) => {
                a.resize(cfg, b, t);
                s.resize(cfg, b, t);
            }
            None => self.acts = Some((Activations::new(cfg, b, t, true), BackwardScratch::new(cfg, b, t))),
        }
        Ok(())
    }

    /// hidden_states[`layer`] (B, T, C) of `batch`, no dropout, no head (see
    /// [`TaskModel::encode_layer`]).
    pub fn encode_layer(&mut self, batch: &Batch, layer: usize) -> Result<&[f32]> {
        self.s.check_batch("encode", batch)?;
        self.s.check_layer(layer)?;
        self.ensure_encoder(batch.b, batch.t)?;
        let (acts, _) = self.acts.as_mut().expect("ensure_encoder sets the activations");
        encoder_forward(acts, &self.params, &self.s.enc, &self.s.cfg, batch, DropoutCfg::OFF, Some(layer));
        Ok(acts.hidden(layer))
    }

    /// The self-training objective on `sb` from hidden_states[`layer`], its gradients
    /// accumulated (see [`TaskModel::accumulate_so`]); returns the loss.
    pub fn accumulate_so(&mut self, sb: &SoBatch, layer: usize, drop: DropoutCfg) -> Result<f32> {
        sb.check()?;
        self.s.check_batch("self-training", &sb.batch)?;
        self.s.check_layer(layer)?;
        self.trainable()?;
        if self.stale_grads {
            self.zero_grad();
        }
        let (b, t, c) = (sb.batch.b, sb.batch.t, self.s.cfg.hidden_size);
        self.ensure_encoder(b, t)?;
        let (acts, scratch) = self.acts.as_mut().expect("ensure_encoder sets the activations");
        encoder_forward(acts, &self.params, &self.s.enc, &self.s.cfg, &sb.batch, drop, Some(layer));
        let loss = so_forward_backward(Some(&mut scratch.dx[..b * t * c]), acts.hidden(layer), sb, c);
        let (params, grads) = (&self.params, &mut self.grads);
        encoder_backward(grads, scratch, acts, params, &self.s.enc, &self.s.cfg, &sb.batch, drop, layer);
        self.pending.push(loss);
        Ok(loss)
    }

    /// Forward pass of head `head` on `tb`; returns the mean loss over the scored targets
    /// (0.0 without targets). Outputs stay readable through [`Self::logits`] and
    /// [`Self::span_logits`]. The MLM loss is computed in slices of vocabulary rows.
    pub fn forward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        self.s.check(head, tb)?;
        self.ensure(head, tb.batch.b, tb.batch.t)?;
        Ok(self.forward_checked(head, tb, drop))
    }

    /// [`Self::forward`] on a batch [`Self::check`] accepted, with buffers [`Self::ensure`]d.
    fn forward_checked(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> f32 {
        let (b, t, c) = (tb.batch.b, tb.batch.t, self.s.cfg.hidden_size);
        let (acts, _) = self.acts.as_mut().expect("ensure sets the activations");
        encoder_forward(acts, &self.params, &self.s.enc, &self.s.cfg, &tb.batch, drop, None);
        let hidden = acts.last();
        let params = &self.params;
        let labels = match &tb.targets {
            Targets::Labels(l) => Some(l.as_slice()),
            _ => None,
        };
        let buf = self.bufs[head].as_mut().expect("ensure sets the head buffers");
        match (&self.s.heads[head], buf) {
            (Head::Classification(h), HeadBufs::Classification(a)) => {
                classifier_forward(a, params, h, hidden, labels, b, t, c, drop)
            }
            (Head::MultipleChoice(h), HeadBufs::MultipleChoice(a)) => {
                multiple_choice_forward(a, params, h, hidden, labels, b / h.num_choices, t, c, drop)
            }
            (Head::Span(h), HeadBufs::Span(a)) => {
                let gold = match &tb.targets {
                    Targets::Span { start, end } => Some((start.as_slice(), end.as_slice())),
                    _ => None,
                };
                span_forward(a, params, h, hidden, gold, b, t, c)
            }
            (Head::Tagging(h), HeadBufs::Tagging(a)) => tagging_forward(a, params, h, hidden, labels, b * t, c, drop),
            (Head::Mlm(h), HeadBufs::Mlm(a)) => {
                let labels = labels.expect("checked: MLM has targets");
                mlm_eval_loss(a, params, h, hidden, labels, b * t, c)
            }
            _ => unreachable!("head buffers match their head"),
        }
    }

    /// Forward and backward of head `head` on `tb`: returns the mean loss (also kept for the
    /// next step's report); gradients accumulate into `grads`. `tb` must carry targets.
    pub fn forward_backward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        self.s.check(head, tb)?;
        self.trainable()?;
        if tb.targets == Targets::None {
            return Err(Error::Usage(format!("head `{}`: training needs targets", self.s.specs[head].name)));
        }
        if self.stale_grads {
            self.zero_grad();
        }
        let (b, t, c) = (tb.batch.b, tb.batch.t, self.s.cfg.hidden_size);
        self.ensure(head, b, t)?;
        let loss = if self.s.specs[head].kind == Kind::MaskedLm {
            let (acts, _) = self.acts.as_mut().expect("ensure sets the activations");
            encoder_forward(acts, &self.params, &self.s.enc, &self.s.cfg, &tb.batch, drop, None);
            f32::NAN // replaced below
        } else {
            self.forward_checked(head, tb, drop)
        };
        let (acts, scratch) = self.acts.as_mut().expect("forward sets the activations");
        let dx = &mut scratch.dx;
        let (params, grads) = (&self.params, &mut self.grads);
        let hidden = acts.last();
        let buf = self.bufs[head].as_mut().expect("forward sets the head buffers");
        let mut loss = loss;
        match (&self.s.heads[head], buf, &tb.targets) {
            (Head::Classification(h), HeadBufs::Classification(a), Targets::Labels(y)) => {
                classifier_backward(dx, grads, a, params, h, y, b, t, c, drop)
            }
            (Head::MultipleChoice(h), HeadBufs::MultipleChoice(a), Targets::Labels(y)) => {
                multiple_choice_backward(dx, grads, a, params, h, y, b / h.num_choices, t, c, drop)
            }
            (Head::Span(h), HeadBufs::Span(a), Targets::Span { start, end }) => {
                span_backward(dx, grads, a, params, h, hidden, (start, end), b, t, c)
            }
            (Head::Tagging(h), HeadBufs::Tagging(a), Targets::Labels(y)) => {
                tagging_backward(dx, grads, a, params, h, y, b * t, c, drop)
            }
            (Head::Mlm(h), HeadBufs::Mlm(a), Targets::Labels(y)) => {
                loss = mlm_forward_backward(dx, grads, a, params, h, hidden, y, b * t, c);
            }
            _ => unreachable!("checked: targets match the head"),
        }
        let layers = self.s.cfg.num_layers;
        encoder_backward(grads, scratch, acts, params, &self.s.enc, &self.s.cfg, &tb.batch, drop, layers);
        self.pending.push(loss);
        Ok(loss)
    }

    /// Where the first NaN or infinity is: a weight, else an activation of the last forward,
    /// else a gradient, as `weight NAME[i] = NaN`; `None` when every value is finite.
    pub fn first_non_finite(&self) -> Option<String> {
        if let Some(found) = first_non_finite_tensor(&self.s, &self.params, "weight") {
            return Some(found);
        }
        if let Some((a, _)) = &self.acts {
            let mut named: Vec<(String, &[f32])> =
                vec![("embedding sum".into(), &a.emb), ("hidden_states[0]".into(), &a.x0)];
            for (l, la) in a.layers.iter().enumerate() {
                for (what, v) in [
                    ("qkv", &la.qkv),
                    ("attention probabilities", &la.att),
                    ("attention output", &la.atty),
                    ("first residual", &la.res1),
                    ("first LayerNorm output", &la.ln1),
                    ("FFN input", &la.fch),
                    ("FFN GELU", &la.fch_gelu),
                    ("second residual", &la.res2),
                    ("output", &la.out),
                ] {
                    named.push((format!("layer {l} {what}"), v.as_slice()));
                }
            }
            for (what, v) in named {
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Some(format!("activation {what} (B = {}, T = {})[{i}] = {}", a.b, a.t, v[i]));
                }
            }
        }
        first_non_finite_tensor(&self.s, &self.grads, "gradient")
    }

    /// Outputs of the last forward of `head`: classification logits (B, K), multiple-choice
    /// scores (B, K), tagging logits (B·T, K); `None` for span QA, MLM, or before a forward.
    pub fn head_logits(&self, head: usize) -> Option<&[f32]> {
        match self.bufs.get(head)?.as_ref()? {
            HeadBufs::Classification(a) => Some(&a.logits),
            HeadBufs::MultipleChoice(a) => Some(a.scores()),
            HeadBufs::Tagging(a) => Some(&a.logits),
            _ => None,
        }
    }

    /// (B, C) tanh output of the classification head `head` of the last forward (BERT's
    /// `pooler_output`; XLM-R's dense + tanh), `None` for other heads or before a forward.
    pub fn pooled(&self, head: usize) -> Option<&[f32]> {
        match self.bufs.get(head)?.as_ref()? {
            HeadBufs::Classification(a) => Some(&a.pooled),
            _ => None,
        }
    }

    /// Start and end logits (B, T) each of the last span-QA forward of `head`.
    pub fn head_span_logits(&self, head: usize) -> Option<(&[f32], &[f32])> {
        match self.bufs.get(head)?.as_ref()? {
            HeadBufs::Span(a) => Some((&a.start, &a.end)),
            _ => None,
        }
    }

    /// hidden_states[l] (B, T, C) of the last forward (0 = embedding output).
    pub fn hidden_state(&self, l: usize) -> Option<&[f32]> {
        self.acts.as_ref().filter(|_| l <= self.s.cfg.num_layers).map(|(a, _)| a.hidden(l))
    }

    /// Averages the accumulated gradients over `cfg.micro_batches`, clips them, takes one AdamW
    /// step (weight decay only where the layout marks it); returns the norm before clipping.
    /// A non-finite norm, or a non-finite loss among those accumulated, leaves the weights
    /// (and the gradients) untouched ([`StepReport::applied`] is false); either way the next
    /// micro-batch starts from zero gradients.
    pub fn optimizer_step(&mut self, cfg: &StepConfig) -> Result<StepReport> {
        self.trainable()?;
        let losses = std::mem::take(&mut self.pending);
        self.stale_grads = true;
        if losses.iter().any(|l| !l.is_finite()) {
            return Ok(StepReport { losses, grad_norm: Some(f32::NAN), applied: false });
        }
        // Frozen tensors take no part: their gradients count neither in the norm nor anywhere.
        for r in self.s.layout.frozen_ranges() {
            self.grads[r].fill(0.0);
        }
        if cfg.micro_batches > 1 {
            scale_inplace(&mut self.grads, 1.0 / cfg.micro_batches as f32);
        }
        let norm = if cfg.max_grad_norm > 0.0 {
            clip_grad_norm(&mut self.grads, cfg.max_grad_norm)
        } else {
            grad_norm(&self.grads)
        };
        if !norm.is_finite() {
            return Ok(StepReport { losses, grad_norm: Some(norm), applied: false });
        }
        self.opt.t += 1;
        for tensor in self.s.layout.tensors.iter().filter(|t| !t.frozen) {
            let r = tensor.range();
            let n = r.len();
            adamw_update(
                &mut self.params[r.clone()],
                &self.grads[r.clone()],
                &mut self.opt.m[r.clone()],
                &mut self.opt.v[r.clone()],
                &cfg.adamw,
                tensor.decay,
                self.opt.t,
                n,
            );
        }
        self.zero_grad();
        Ok(StepReport { losses, grad_norm: Some(norm), applied: true })
    }
}

impl TaskModel for CpuModel {
    fn structure(&self) -> &Structure {
        &self.s
    }
    fn device(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }
    fn forward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        CpuModel::forward(self, head, tb, drop)
    }
    fn accumulate(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<()> {
        CpuModel::forward_backward(self, head, tb, drop).map(|_| ())
    }
    fn forward_backward(&mut self, head: usize, tb: &TaskBatch, drop: DropoutCfg) -> Result<f32> {
        CpuModel::forward_backward(self, head, tb, drop)
    }
    fn logits(&self, head: usize) -> Result<Cow<'_, [f32]>> {
        self.head_logits(head)
            .map(Cow::Borrowed)
            .ok_or_else(|| Error::Usage(format!("head {head} has no logits from a forward pass")))
    }
    fn span_logits(&self, head: usize) -> Result<SpanLogits<'_>> {
        self.head_span_logits(head)
            .map(|(s, e)| (Cow::Borrowed(s), Cow::Borrowed(e)))
            .ok_or_else(|| Error::Usage(format!("head {head} has no span logits from a forward pass")))
    }
    fn encode_layer(&mut self, batch: &Batch, layer: usize) -> Result<Cow<'_, [f32]>> {
        CpuModel::encode_layer(self, batch, layer).map(Cow::Borrowed)
    }
    fn accumulate_so(&mut self, sb: &SoBatch, layer: usize, drop: DropoutCfg) -> Result<()> {
        CpuModel::accumulate_so(self, sb, layer, drop).map(|_| ())
    }
    fn hidden(&self, l: usize) -> Result<Cow<'_, [f32]>> {
        self.hidden_state(l)
            .map(Cow::Borrowed)
            .ok_or_else(|| Error::Usage(format!("no hidden_states[{l}]: no forward has run, or no such layer")))
    }
    fn step(&mut self, cfg: &StepConfig) -> Result<StepReport> {
        self.optimizer_step(cfg)
    }
    fn zero_grad(&mut self) -> Result<()> {
        CpuModel::zero_grad(self);
        Ok(())
    }
    fn params(&self) -> Result<Cow<'_, [f32]>> {
        Ok(Cow::Borrowed(&self.params))
    }
    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        if params.len() != self.params.len() {
            return Err(Error::Usage(format!("{} parameters for a model of {}", params.len(), self.params.len())));
        }
        self.params.copy_from_slice(params);
        Ok(())
    }
    fn optimizer(&self) -> Result<OptimizerView<'_>> {
        self.trainable()?;
        Ok(OptimizerView { m: Cow::Borrowed(&self.opt.m), v: Cow::Borrowed(&self.opt.v), t: self.opt.t })
    }
    fn first_non_finite(&self) -> Result<Option<String>> {
        Ok(CpuModel::first_non_finite(self))
    }
    fn check_fits(&self, rows: usize, t: usize) -> Result<()> {
        let bytes = Activations::train_bytes(&self.s.cfg, rows, t);
        crate::sys::check_fits(bytes, &format!("a batch of {rows} × {t} tokens"))
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    fn memory_in_use(&self) -> Option<usize> {
        None
    }
}

/// Mean MLM cross-entropy over the masked rows of hidden (N, C), holding at most
/// `MLM_EVAL_ROWS` rows of vocabulary logits at a time.
fn mlm_eval_loss(
    a: &mut MlmActs,
    params: &[f32],
    head: &MlmHead,
    hidden: &[f32],
    labels: &[i64],
    n: usize,
    c: usize,
) -> f32 {
    let rows: Vec<usize> = (0..n).filter(|&i| labels[i] != IGNORE_INDEX).collect();
    if rows.is_empty() {
        return 0.0;
    }
    let mut sub = vec![IGNORE_INDEX; n];
    let mut total = 0.0f64;
    for chunk in rows.chunks(MLM_EVAL_ROWS) {
        for &i in chunk {
            sub[i] = labels[i];
        }
        total += mlm_forward(a, params, head, hidden, &sub, n, c) as f64 * chunk.len() as f64;
        for &i in chunk {
            sub[i] = IGNORE_INDEX;
        }
    }
    (total / rows.len() as f64) as f32
}
