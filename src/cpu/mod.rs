//! The CPU reference backend: f32, multithreaded with rayon, GEMMs by the `gemm` crate.
//! It is the spec every other backend is checked against.

pub mod encoder;
pub mod gemm;
pub mod math;
pub mod multitask;
pub mod ops;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::heads::classification::{classifier_backward, classifier_forward, ClassifierHead, HeadActs};
use crate::model::{init::init_params, weights, EncoderParams, ParamLayout};
use encoder::{encoder_backward, encoder_forward, Activations, BackwardScratch, Batch, DropoutCfg};
use ops::{adamw_update, AdamWConfig};
use std::path::Path;

/// An encoder with a sequence-classification head, its flat parameter and gradient buffers,
/// and activations cached for the last batch shape.
pub struct SequenceClassifier {
    /// Model configuration.
    pub cfg: ModelConfig,
    /// Offset table of `params` and `grads`.
    pub layout: ParamLayout,
    /// Encoder tensor ranges.
    pub enc: EncoderParams,
    /// Head tensor ranges.
    pub head: ClassifierHead,
    /// (layout.total) parameters.
    pub params: Vec<f32>,
    /// (layout.total) gradients.
    pub grads: Vec<f32>,
    /// Activations, backward scratch and head buffers for the current (B, T).
    state: Option<(Activations, BackwardScratch, HeadActs)>,
}

impl SequenceClassifier {
    /// Layout of an encoder (with a pooler for BERT, whose head needs it) and a K-way head.
    fn layout(cfg: &ModelConfig, num_labels: usize, with_pooler: bool) -> (ParamLayout, EncoderParams, ClassifierHead) {
        let mut layout = ParamLayout::default();
        let enc = EncoderParams::register(&mut layout, cfg, with_pooler || cfg.family == crate::config::Family::Bert);
        let head = ClassifierHead::register(&mut layout, &enc, cfg, num_labels);
        (layout, enc, head)
    }

    /// Randomly initialised model (HF initialisation) from `seed`.
    pub fn new_random(cfg: &ModelConfig, num_labels: usize, seed: u64) -> Self {
        let (layout, enc, head) = Self::layout(cfg, num_labels, false);
        let mut params = vec![0.0; layout.total];
        init_params(&mut params, &layout, cfg, seed);
        let grads = vec![0.0; layout.total];
        SequenceClassifier { cfg: cfg.clone(), layout, enc, head, params, grads, state: None }
    }

    /// Loads an HF model folder: the encoder is required; a pooler and a matching head are
    /// loaded when present, otherwise initialised from `seed`.
    pub fn from_dir(dir: &Path, num_labels: usize, seed: u64) -> Result<Self> {
        let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
        let (layout, enc, head) = Self::layout(&cfg, num_labels, true);
        let mut params = vec![0.0; layout.total];
        init_params(&mut params, &layout, &cfg, seed);
        weights::load_into(&mut params, &layout, &cfg, dir, &|t| t.encoder && !t.name.starts_with("pooler."))?;
        let grads = vec![0.0; layout.total];
        Ok(SequenceClassifier { cfg, layout, enc, head, params, grads, state: None })
    }

    /// Sizes the cached buffers for a (B, T) batch, reallocating only when the shape changes.
    /// With dynamic padding every batch has its own T: buffers are resized in place.
    /// Loads an HF model folder that must hold the classification head too (for evaluating a
    /// fine-tuned checkpoint): every tensor of the layout is required.
    pub fn from_dir_with_head(dir: &Path, num_labels: usize) -> Result<Self> {
        let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
        let (layout, enc, head) = Self::layout(&cfg, num_labels, true);
        let mut params = vec![0.0; layout.total];
        weights::load_into(&mut params, &layout, &cfg, dir, &|_| true)?;
        let grads = vec![0.0; layout.total];
        Ok(SequenceClassifier { cfg, layout, enc, head, params, grads, state: None })
    }

    fn ensure_state(&mut self, b: usize, t: usize) {
        let (c, k) = (self.cfg.hidden_size, self.head.num_labels);
        match &mut self.state {
            Some((a, s, h)) => {
                if a.b != b || a.t != t {
                    a.resize(&self.cfg, b, t);
                    s.resize(&self.cfg, b, t);
                    *h = HeadActs::new(b, c, k);
                }
            }
            None => {
                self.state = Some((
                    Activations::new(&self.cfg, b, t, true),
                    BackwardScratch::new(&self.cfg, b, t),
                    HeadActs::new(b, c, k),
                ))
            }
        }
    }

    /// Forward pass; returns the mean cross-entropy over `labels` (B).
    pub fn forward(&mut self, batch: &Batch, labels: Option<&[i64]>, drop: DropoutCfg) -> f32 {
        let (b, t, c) = (batch.b, batch.t, self.cfg.hidden_size);
        self.ensure_state(b, t);
        let (acts, _, ha) = self.state.as_mut().expect("ensure_state sets the state");
        encoder_forward(acts, &self.params, &self.enc, &self.cfg, batch, drop, None);
        classifier_forward(ha, &self.params, &self.head, acts.last(), labels, b, t, c, drop)
    }

    /// Backward of the loss of the last `forward` (same batch, labels and dropout); gradients
    /// accumulate into `grads`.
    pub fn backward(&mut self, batch: &Batch, labels: &[i64], drop: DropoutCfg) {
        let (b, t, c) = (batch.b, batch.t, self.cfg.hidden_size);
        // Invariant: callers run `forward` on the same batch first (documented above).
        let (acts, scratch, ha) = self.state.as_mut().expect("backward called before forward");
        classifier_backward(&mut scratch.dx, &mut self.grads, ha, &self.params, &self.head, labels, b, t, c, drop);
        encoder_backward(&mut self.grads, scratch, acts, &self.params, &self.enc, &self.cfg, batch, drop);
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grads.iter_mut().for_each(|g| *g = 0.0);
    }

    /// hidden_states[l] of the last forward (0 = embedding output).
    pub fn hidden(&self, l: usize) -> Option<&[f32]> {
        self.state.as_ref().map(|(a, _, _)| a.hidden(l))
    }

    /// (B, C) output of the encoder's own pooler on the last forward's final hidden state, if
    /// the model has a pooler (for BERT it is also the head's dense layer).
    pub fn encoder_pooled(&self) -> Option<Vec<f32>> {
        let (acts, _, _) = self.state.as_ref()?;
        let (w, b) = self.enc.pooler.as_ref()?;
        let (bsz, t, c) = (acts.b, acts.t, self.cfg.hidden_size);
        let (mut out, mut first) = (vec![0.0; bsz * c], vec![0.0; bsz * c]);
        encoder::pooler_forward(
            &mut out,
            &mut first,
            acts.last(),
            &self.params[w.clone()],
            &self.params[b.clone()],
            bsz,
            t,
            c,
        );
        Some(out)
    }

    /// (B, K) logits of the last forward.
    pub fn logits(&self) -> Option<&[f32]> {
        self.state.as_ref().map(|(_, _, h)| h.logits.as_slice())
    }

    /// (B, C) tanh pooler output of the last forward (BERT's `pooler_output`; for XLM-R the
    /// head's dense + tanh).
    pub fn pooled(&self) -> Option<&[f32]> {
        self.state.as_ref().map(|(_, _, h)| h.pooled.as_slice())
    }
}

/// AdamW state over the flat buffers: first and second moments sharing the parameter layout.
pub struct AdamW {
    /// Hyper-parameters.
    pub cfg: AdamWConfig,
    /// (layout.total) first moments.
    pub m: Vec<f32>,
    /// (layout.total) second moments.
    pub v: Vec<f32>,
    /// Steps taken.
    pub t: u64,
}

impl AdamW {
    /// Zeroed moments for `n` parameters.
    pub fn new(cfg: AdamWConfig, n: usize) -> Self {
        AdamW { cfg, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    /// One step; weight decay only on tensors the layout marks for it.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], layout: &ParamLayout) {
        self.t += 1;
        for tensor in &layout.tensors {
            let r = tensor.range();
            let wd = if tensor.decay { self.cfg.weight_decay } else { 0.0 };
            let n = r.len();
            adamw_update(
                &mut params[r.clone()],
                &grads[r.clone()],
                &mut self.m[r.clone()],
                &mut self.v[r.clone()],
                &self.cfg,
                wd,
                self.t,
                n,
            );
        }
    }
}
