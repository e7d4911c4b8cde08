//! The encoder on the CPU, llm.c style: `encoder_forward` is the per-layer list of op calls,
//! `encoder_backward` the same list reversed. Post-LayerNorm transformer (BERT / XLM-R):
//!
//! ```text
//! x0      = dropout(LN(wte[ids] + wpe[pos] + wtt[types]))      hidden_states[0]
//! per layer l, input x:
//!   qkv   = x · Wqkv^T + bqkv                                   (B, T, 3C)
//!   atty  = attention(qkv, mask)                                 (B, T, C)
//!   res1  = dropout(atty · Wo^T + bo) + x
//!   ln1   = LN1(res1)
//!   fch   = ln1 · Wfc^T + bfc ; fch_gelu = gelu(fch)            (B, T, FFN)
//!   res2  = dropout(fch_gelu · Wp^T + bp) + ln1
//!   out   = LN2(res2)                                            hidden_states[l + 1]
//! ```

use super::ops::*;
use crate::config::ModelConfig;
use crate::model::batch::{position_ids, Batch};
use crate::model::dropout::{DropoutCfg, Site};
use crate::model::{EncoderParams, LayerParams, LinearLayout};

/// Saved activations of one layer.
#[derive(Clone, Debug)]
pub struct LayerActs {
    /// (B, T, 3C)
    pub qkv: Vec<f32>,
    /// (B, NH, T, T) attention probabilities before dropout.
    pub att: Vec<f32>,
    /// (B, T, C) attention output before the projection.
    pub atty: Vec<f32>,
    /// (B, T, C) projection + dropout + residual, the LN1 input.
    pub res1: Vec<f32>,
    /// (B, T, C)
    pub ln1: Vec<f32>,
    /// (B, T)
    pub ln1_mean: Vec<f32>,
    /// (B, T)
    pub ln1_rstd: Vec<f32>,
    /// (B, T, FFN)
    pub fch: Vec<f32>,
    /// (B, T, FFN)
    pub fch_gelu: Vec<f32>,
    /// (B, T, C) FFN projection + dropout + residual, the LN2 input.
    pub res2: Vec<f32>,
    /// (B, T, C) the layer output.
    pub out: Vec<f32>,
    /// (B, T)
    pub ln2_mean: Vec<f32>,
    /// (B, T)
    pub ln2_rstd: Vec<f32>,
}

impl LayerActs {
    fn new(cfg: &ModelConfig, b: usize, t: usize) -> Self {
        let e = Vec::new;
        let mut la = LayerActs {
            qkv: e(),
            att: e(),
            atty: e(),
            res1: e(),
            ln1: e(),
            ln1_mean: e(),
            ln1_rstd: e(),
            fch: e(),
            fch_gelu: e(),
            res2: e(),
            out: e(),
            ln2_mean: e(),
            ln2_rstd: e(),
        };
        la.resize(cfg, b, t);
        la
    }

    /// Resizes every buffer for a (B, T) batch, keeping allocations (no page faults when a
    /// batch is no larger than an earlier one).
    fn resize(&mut self, cfg: &ModelConfig, b: usize, t: usize) {
        let (n, c, ffn, nh) = (b * t, cfg.hidden_size, cfg.intermediate_size, cfg.num_heads);
        self.qkv.resize(n * 3 * c, 0.0);
        self.att.resize(b * nh * t * t, 0.0);
        for v in [&mut self.atty, &mut self.res1, &mut self.ln1, &mut self.res2, &mut self.out] {
            v.resize(n * c, 0.0);
        }
        for v in [&mut self.ln1_mean, &mut self.ln1_rstd, &mut self.ln2_mean, &mut self.ln2_rstd] {
            v.resize(n, 0.0);
        }
        self.fch.resize(n * ffn, 0.0);
        self.fch_gelu.resize(n * ffn, 0.0);
    }
}

/// Everything the forward saves for the backward, for one (B, T).
#[derive(Clone, Debug)]
pub struct Activations {
    /// B
    pub b: usize,
    /// T
    pub t: usize,
    /// (B, T)
    pub pos: Vec<u32>,
    /// (B, T, C) embedding sum before LayerNorm.
    pub emb: Vec<f32>,
    /// (B, T)
    pub emb_mean: Vec<f32>,
    /// (B, T)
    pub emb_rstd: Vec<f32>,
    /// (B, T, C) hidden_states[0].
    pub x0: Vec<f32>,
    /// One per layer when training; a single reused entry for inference.
    pub layers: Vec<LayerActs>,
    /// (B, T, C) inference only: the running hidden state.
    pub x: Vec<f32>,
    /// Whether every layer is kept for a backward pass.
    pub train: bool,
}

impl Activations {
    /// Buffers for a (B, T) batch; `train` keeps every layer (needed for the backward).
    pub fn new(cfg: &ModelConfig, b: usize, t: usize, train: bool) -> Self {
        let nl = if train { cfg.num_layers } else { 1 };
        let mut a = Activations {
            b,
            t,
            pos: Vec::new(),
            emb: Vec::new(),
            emb_mean: Vec::new(),
            emb_rstd: Vec::new(),
            x0: Vec::new(),
            layers: (0..nl).map(|_| LayerActs::new(cfg, b, t)).collect(),
            x: Vec::new(),
            train,
        };
        a.resize(cfg, b, t);
        a
    }

    /// Re-sizes the buffers for a (B, T) batch, keeping their allocations.
    pub fn resize(&mut self, cfg: &ModelConfig, b: usize, t: usize) {
        let (n, c) = (b * t, cfg.hidden_size);
        (self.b, self.t) = (b, t);
        self.pos.resize(n, 0);
        self.emb.resize(n * c, 0.0);
        self.emb_mean.resize(n, 0.0);
        self.emb_rstd.resize(n, 0.0);
        self.x0.resize(n * c, 0.0);
        for la in &mut self.layers {
            la.resize(cfg, b, t);
        }
        if !self.train {
            self.x.resize(n * c, 0.0);
        }
    }

    /// Bytes a training `Activations` (every layer kept) and its [`BackwardScratch`] hold for a
    /// (B, T) batch, an upper bound used to refuse batches that cannot fit in memory.
    pub fn train_bytes(cfg: &ModelConfig, b: usize, t: usize) -> u64 {
        let (n, c, ffn, nh) =
            (b as u64 * t as u64, cfg.hidden_size as u64, cfg.intermediate_size as u64, cfg.num_heads as u64);
        let layer = n * 3 * c + b as u64 * nh * t as u64 * t as u64 + 5 * n * c + 4 * n + 2 * n * ffn;
        let embed = n + 2 * n * c + 2 * n;
        // The backward scratch holds about two layers' worth of gradients.
        4 * (embed + (cfg.num_layers as u64 + 2) * layer)
    }

    /// Bytes an inference `Activations` holds for a (B, T) batch.
    pub fn bytes(cfg: &ModelConfig, b: usize, t: usize) -> usize {
        let (n, c, ffn, nh) = (b * t, cfg.hidden_size, cfg.intermediate_size, cfg.num_heads);
        4 * (n * (3 * c + 3) + n * c + n * (8 * c + 2 * ffn + 4) + b * nh * t * t)
    }

    /// hidden_states[L] after a training forward (L = 0 is the embedding output).
    pub fn hidden(&self, l: usize) -> &[f32] {
        if l == 0 {
            &self.x0
        } else {
            &self.layers[l - 1].out
        }
    }

    /// The output of the last layer run: the final hidden state.
    pub fn last(&self) -> &[f32] {
        if self.train {
            self.layers.last().map_or(&self.x0, |la| &la.out)
        } else {
            &self.x
        }
    }
}

/// Runs the encoder on `batch`. Training activations keep every layer; inference activations
/// stop after `stop_after` layers (`None` = all), leaving that hidden state in `acts.last()`.
pub fn encoder_forward(
    acts: &mut Activations,
    params: &[f32],
    p: &EncoderParams,
    cfg: &ModelConfig,
    batch: &Batch,
    drop: DropoutCfg,
    stop_after: Option<usize>,
) {
    let (b, t, c) = (batch.b, batch.t, cfg.hidden_size);
    let n = b * t;
    assert!(acts.b == b && acts.t == t, "activations sized for ({}, {}), batch is ({b}, {t})", acts.b, acts.t);
    let w = |r: &std::ops::Range<usize>| &params[r.clone()];

    position_ids(&mut acts.pos, &batch.ids, b, t, cfg.family, cfg.pad_token_id);
    embedding_forward(&mut acts.emb, &batch.ids, &acts.pos, &batch.types, w(&p.wte), w(&p.wpe), w(&p.wtt), n, c);
    layernorm_forward(
        &mut acts.x0,
        &mut acts.emb_mean,
        &mut acts.emb_rstd,
        &acts.emb,
        w(&p.ln_emb_w),
        w(&p.ln_emb_b),
        n,
        c,
        cfg.layer_norm_eps,
    );
    dropout_forward(&mut acts.x0, drop.hidden, drop.seed_of(Site::Embeddings), n * c);

    let nl = stop_after.unwrap_or(cfg.num_layers).min(cfg.num_layers);
    if acts.train {
        for l in 0..nl {
            let (done, rest) = acts.layers.split_at_mut(l);
            let x = if l == 0 { &acts.x0 } else { &done[l - 1].out };
            layer_forward(&mut rest[0], x, params, &p.layers[l], p.linear_layout, cfg, batch, drop, l);
        }
    } else {
        acts.x.copy_from_slice(&acts.x0);
        for l in 0..nl {
            layer_forward(&mut acts.layers[0], &acts.x, params, &p.layers[l], p.linear_layout, cfg, batch, drop, l);
            std::mem::swap(&mut acts.x, &mut acts.layers[0].out);
        }
    }
}

/// One transformer layer forward: input x (B, T, C), output `la.out`.
fn layer_forward(
    la: &mut LayerActs,
    x: &[f32],
    params: &[f32],
    lp: &LayerParams,
    layout: LinearLayout,
    cfg: &ModelConfig,
    batch: &Batch,
    drop: DropoutCfg,
    l: usize,
) {
    let (b, t, c, nh, ffn) = (batch.b, batch.t, cfg.hidden_size, cfg.num_heads, cfg.intermediate_size);
    let n = b * t;
    let w = |r: &std::ops::Range<usize>| &params[r.clone()];
    linear(layout, &mut la.qkv, x, w(&lp.qkv_w), Some(w(&lp.qkv_b)), n, c, 3 * c);
    attention_forward(
        &mut la.atty,
        &mut la.att,
        &la.qkv,
        &batch.mask,
        b,
        t,
        c,
        nh,
        drop.attention,
        drop.seed_of(Site::Attention(l)),
    );
    linear(layout, &mut la.res1, &la.atty, w(&lp.attn_proj_w), Some(w(&lp.attn_proj_b)), n, c, c);
    dropout_forward(&mut la.res1, drop.hidden, drop.seed_of(Site::AttentionOutput(l)), n * c);
    residual_forward(&mut la.res1, x, n * c);
    layernorm_forward(
        &mut la.ln1,
        &mut la.ln1_mean,
        &mut la.ln1_rstd,
        &la.res1,
        w(&lp.ln1_w),
        w(&lp.ln1_b),
        n,
        c,
        cfg.layer_norm_eps,
    );
    linear(layout, &mut la.fch, &la.ln1, w(&lp.fc_w), Some(w(&lp.fc_b)), n, c, ffn);
    gelu_forward(&mut la.fch_gelu, &la.fch, n * ffn);
    linear(layout, &mut la.res2, &la.fch_gelu, w(&lp.fc_proj_w), Some(w(&lp.fc_proj_b)), n, ffn, c);
    dropout_forward(&mut la.res2, drop.hidden, drop.seed_of(Site::Ffn(l)), n * c);
    residual_forward(&mut la.res2, &la.ln1, n * c);
    layernorm_forward(
        &mut la.out,
        &mut la.ln2_mean,
        &mut la.ln2_rstd,
        &la.res2,
        w(&lp.ln2_w),
        w(&lp.ln2_b),
        n,
        c,
        cfg.layer_norm_eps,
    );
}

/// The tanh pooler: out (B, C) = tanh(hidden[:, 0, :] · W^T + b), HF's `pooler_output`.
/// `first` (B, C) receives the first-token states.
pub fn pooler_forward(
    out: &mut [f32],
    first: &mut [f32],
    hidden: &[f32],
    w: &[f32],
    bias: &[f32],
    b: usize,
    t: usize,
    c: usize,
) {
    for bi in 0..b {
        first[bi * c..(bi + 1) * c].copy_from_slice(&hidden[bi * t * c..bi * t * c + c]);
    }
    let mut pre = vec![0.0f32; b * c];
    matmul_forward(&mut pre, first, w, Some(bias), b, c, c);
    tanh_forward(out, &pre, b * c);
}

/// A layer's linear forward on weights stored in either layout.
fn linear(
    layout: LinearLayout,
    out: &mut [f32],
    inp: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    n: usize,
    c: usize,
    oc: usize,
) {
    match layout {
        LinearLayout::OutIn => matmul_forward(out, inp, w, b, n, c, oc),
        LinearLayout::InOut => matmul_forward_t(out, inp, w, b, n, c, oc),
    }
}

/// Scratch buffers of the backward pass for one (B, T).
#[derive(Clone, Debug)]
pub struct BackwardScratch {
    /// (B, T, C) gradient of the residual stream entering the current layer from above.
    pub dx: Vec<f32>,
    /// (B, T, C) gradient of a LayerNorm input.
    dres: Vec<f32>,
    /// (B, T, C) dres after the dropout mask.
    dtmp: Vec<f32>,
    /// (B, T, C)
    dln1: Vec<f32>,
    /// (B, T, C)
    datty: Vec<f32>,
    /// (B, T, 3C)
    dqkv: Vec<f32>,
    /// (B, T, FFN)
    dfch_gelu: Vec<f32>,
    /// (B, T, FFN)
    dfch: Vec<f32>,
}

impl BackwardScratch {
    /// Buffers for a (B, T) batch.
    pub fn new(cfg: &ModelConfig, b: usize, t: usize) -> Self {
        let e = Vec::new;
        let mut s = BackwardScratch {
            dx: e(),
            dres: e(),
            dtmp: e(),
            dln1: e(),
            datty: e(),
            dqkv: e(),
            dfch_gelu: e(),
            dfch: e(),
        };
        s.resize(cfg, b, t);
        s
    }

    /// Re-sizes the buffers for a (B, T) batch, keeping their allocations.
    pub fn resize(&mut self, cfg: &ModelConfig, b: usize, t: usize) {
        let (n, c, ffn) = (b * t, cfg.hidden_size, cfg.intermediate_size);
        for v in [&mut self.dx, &mut self.dres, &mut self.dtmp, &mut self.dln1, &mut self.datty] {
            v.resize(n * c, 0.0);
        }
        self.dqkv.resize(n * 3 * c, 0.0);
        self.dfch_gelu.resize(n * ffn, 0.0);
        self.dfch.resize(n * ffn, 0.0);
    }
}

/// Backward through the encoder's first `layers` layers and the embeddings. On entry `s.dx`
/// (B, T, C) holds dL/d(hidden_states[layers]) (`layers` = `cfg.num_layers`: the last hidden
/// state; fewer when a loss reads an intermediate layer, whose forward stopped there);
/// parameter gradients accumulate into `grads` (same layout as `params`).
pub fn encoder_backward(
    grads: &mut [f32],
    s: &mut BackwardScratch,
    acts: &Activations,
    params: &[f32],
    p: &EncoderParams,
    cfg: &ModelConfig,
    batch: &Batch,
    drop: DropoutCfg,
    layers: usize,
) {
    assert!(acts.train, "encoder_backward needs training activations");
    assert_eq!(p.linear_layout, LinearLayout::OutIn, "encoder_backward needs HF-layout weights");
    let (b, t, c) = (batch.b, batch.t, cfg.hidden_size);
    let n = b * t;
    for l in (0..layers.min(cfg.num_layers)).rev() {
        let x = if l == 0 { &acts.x0 } else { &acts.layers[l - 1].out };
        layer_backward(grads, s, &acts.layers[l], x, params, &p.layers[l], cfg, batch, drop, l);
    }
    // x0 = dropout(LN(emb)); emb = wte[ids] + wpe[pos] + wtt[types]
    dropout_backward(&mut s.dx, drop.hidden, drop.seed_of(Site::Embeddings), n * c);
    let (dlnw, dlnb) = two_mut(grads, &p.ln_emb_w, &p.ln_emb_b);
    layernorm_backward(
        &mut s.dres,
        dlnw,
        dlnb,
        &s.dx,
        &acts.emb,
        &acts.emb_mean,
        &acts.emb_rstd,
        &params[p.ln_emb_w.clone()],
        n,
        c,
    );
    let (dwte, dwpe, dwtt) = three_mut(grads, &p.wte, &p.wpe, &p.wtt);
    // HF builds both families' word embeddings, and XLM-R's position embeddings, with
    // padding_idx = pad_token_id: those rows get no gradient.
    let pad = cfg.pad_token_id;
    let pos_pad = (cfg.family == crate::config::Family::XlmRoberta).then_some(pad);
    embedding_backward(dwte, dwpe, dwtt, &s.dres, &batch.ids, &acts.pos, &batch.types, Some(pad), pos_pad, n, c);
}

/// One layer backward: `s.dx` holds dL/d(out) on entry and dL/d(x) on exit.
fn layer_backward(
    grads: &mut [f32],
    s: &mut BackwardScratch,
    la: &LayerActs,
    x: &[f32],
    params: &[f32],
    lp: &LayerParams,
    cfg: &ModelConfig,
    batch: &Batch,
    drop: DropoutCfg,
    l: usize,
) {
    let (b, t, c, nh, ffn) = (batch.b, batch.t, cfg.hidden_size, cfg.num_heads, cfg.intermediate_size);
    let n = b * t;
    let w = |r: &std::ops::Range<usize>| &params[r.clone()];

    // out = LN2(res2)
    let (dw, db) = two_mut(grads, &lp.ln2_w, &lp.ln2_b);
    layernorm_backward(&mut s.dres, dw, db, &s.dx, &la.res2, &la.ln2_mean, &la.ln2_rstd, w(&lp.ln2_w), n, c);
    // res2 = dropout(fch_gelu · Wp^T + bp) + ln1
    s.dtmp.copy_from_slice(&s.dres);
    dropout_backward(&mut s.dtmp, drop.hidden, drop.seed_of(Site::Ffn(l)), n * c);
    let (dw, db) = two_mut(grads, &lp.fc_proj_w, &lp.fc_proj_b);
    matmul_backward(&mut s.dfch_gelu, dw, Some(db), &s.dtmp, &la.fch_gelu, w(&lp.fc_proj_w), n, ffn, c);
    // fch_gelu = gelu(fch)
    gelu_backward(&mut s.dfch, &la.fch, &s.dfch_gelu, n * ffn);
    // fch = ln1 · Wfc^T + bfc ; ln1 also feeds the residual of res2
    let (dw, db) = two_mut(grads, &lp.fc_w, &lp.fc_b);
    matmul_backward(&mut s.dln1, dw, Some(db), &s.dfch, &la.ln1, w(&lp.fc_w), n, c, ffn);
    residual_forward(&mut s.dln1, &s.dres, n * c);
    // ln1 = LN1(res1)
    let (dw, db) = two_mut(grads, &lp.ln1_w, &lp.ln1_b);
    layernorm_backward(&mut s.dres, dw, db, &s.dln1, &la.res1, &la.ln1_mean, &la.ln1_rstd, w(&lp.ln1_w), n, c);
    // res1 = dropout(atty · Wo^T + bo) + x
    s.dtmp.copy_from_slice(&s.dres);
    dropout_backward(&mut s.dtmp, drop.hidden, drop.seed_of(Site::AttentionOutput(l)), n * c);
    let (dw, db) = two_mut(grads, &lp.attn_proj_w, &lp.attn_proj_b);
    matmul_backward(&mut s.datty, dw, Some(db), &s.dtmp, &la.atty, w(&lp.attn_proj_w), n, c, c);
    // atty = attention(qkv, mask)
    attention_backward(
        &mut s.dqkv,
        &s.datty,
        &la.qkv,
        &la.att,
        b,
        t,
        c,
        nh,
        drop.attention,
        drop.seed_of(Site::Attention(l)),
    );
    // qkv = x · Wqkv^T + bqkv ; x also feeds the residual of res1
    let (dw, db) = two_mut(grads, &lp.qkv_w, &lp.qkv_b);
    matmul_backward(&mut s.dx, dw, Some(db), &s.dqkv, x, w(&lp.qkv_w), n, c, 3 * c);
    residual_forward(&mut s.dx, &s.dres, n * c);
}

/// Two disjoint mutable tensors of the flat gradient buffer.
pub fn two_mut<'a>(
    buf: &'a mut [f32],
    a: &std::ops::Range<usize>,
    b: &std::ops::Range<usize>,
) -> (&'a mut [f32], &'a mut [f32]) {
    assert!(a.end <= b.start || b.end <= a.start, "overlapping parameter ranges");
    if a.start < b.start {
        let (lo, hi) = buf.split_at_mut(b.start);
        (&mut lo[a.clone()], &mut hi[..b.len()])
    } else {
        let (lo, hi) = buf.split_at_mut(a.start);
        (&mut hi[..a.len()], &mut lo[b.clone()])
    }
}

/// Three disjoint mutable tensors in increasing buffer order.
fn three_mut<'a>(
    buf: &'a mut [f32],
    a: &std::ops::Range<usize>,
    b: &std::ops::Range<usize>,
    c: &std::ops::Range<usize>,
) -> (&'a mut [f32], &'a mut [f32], &'a mut [f32]) {
    assert!(a.end <= b.start && b.end <= c.start, "parameter ranges out of order");
    let (lo, rest) = buf.split_at_mut(b.start);
    let (mid, hi) = rest.split_at_mut(c.start - b.start);
    (&mut lo[a.clone()], &mut mid[..b.len()], &mut hi[..c.len()])
}
