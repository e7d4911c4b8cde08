//! The encoder on the GPU: `encoder_forward` and `encoder_backward` are `cpu::encoder`'s op
//! lists call for call, on device views. Post-LayerNorm transformer (BERT / XLM-R):
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
//!
//! `params` is the flat parameter buffer in the activation dtype (the f32 master itself in f32
//! runs, its narrow copy otherwise), with `cpu`'s layout; `grads` is the flat f32 gradient
//! buffer. Dropout sites and seeds are the CPU's, so masks are identical on both backends.

use super::device::{Buf, Dev, Dtype, Gpu};
use super::ops::*;
use crate::config::{Family, ModelConfig};
use crate::model::batch::{position_ids, Batch};
use crate::model::dropout::{DropoutCfg, Site};
use crate::model::{EncoderParams, LayerParams, LinearLayout};
use crate::{Error, Result};
use std::ops::Range;

/// Saved activations of one layer, as `cpu::encoder::LayerActs`.
pub struct LayerActs {
    /// (B, T, 3C)
    pub qkv: Buf,
    /// What the attention backward needs besides qkv and atty: the (B, NH, T, T) probabilities
    /// before dropout (unfused path) or the (B, NH, T) f32 log-sum-exps (flash path).
    pub att: Buf,
    /// (B, T, C) attention output before the projection.
    pub atty: Buf,
    /// (B, T, C) projection + dropout + residual, the LN1 input.
    pub res1: Buf,
    /// (B, T, C)
    pub ln1: Buf,
    /// (B, T) f32
    pub ln1_mean: Buf,
    /// (B, T) f32
    pub ln1_rstd: Buf,
    /// (B, T, FFN)
    pub fch: Buf,
    /// (B, T, FFN)
    pub fch_gelu: Buf,
    /// (B, T, C) FFN projection + dropout + residual, the LN2 input.
    pub res2: Buf,
    /// (B, T, C) the layer output.
    pub out: Buf,
    /// (B, T) f32
    pub ln2_mean: Buf,
    /// (B, T) f32
    pub ln2_rstd: Buf,
}

impl LayerActs {
    fn new(g: &Gpu, cfg: &ModelConfig, x: Dtype, b: usize, t: usize, path: AttnPath) -> Result<Self> {
        let (n, c, ffn, nh) = (b * t, cfg.hidden_size, cfg.intermediate_size, cfg.num_heads);
        let a = |len: usize, d: Dtype, what: &str| g.alloc(len, d, what);
        Ok(LayerActs {
            qkv: a(n * 3 * c, x, "qkv")?,
            att: match path {
                AttnPath::Unfused => a(b * nh * t * t, x, "attention probabilities")?,
                AttnPath::Flash => a(b * nh * t, Dtype::F32, "attention log-sum-exps")?,
            },
            atty: a(n * c, x, "attention output")?,
            res1: a(n * c, x, "res1")?,
            ln1: a(n * c, x, "ln1")?,
            ln1_mean: a(n, Dtype::F32, "ln1 mean")?,
            ln1_rstd: a(n, Dtype::F32, "ln1 rstd")?,
            fch: a(n * ffn, x, "fch")?,
            fch_gelu: a(n * ffn, x, "fch_gelu")?,
            res2: a(n * c, x, "res2")?,
            out: a(n * c, x, "layer output")?,
            ln2_mean: a(n, Dtype::F32, "ln2 mean")?,
            ln2_rstd: a(n, Dtype::F32, "ln2 rstd")?,
        })
    }
}

/// Everything the forward saves for the backward, for one (B, T), as
/// `cpu::encoder::Activations`; also holds the batch's ids on the device.
pub struct Activations {
    /// B
    pub b: usize,
    /// T
    pub t: usize,
    /// Activation dtype.
    pub dtype: Dtype,
    /// (B, T) host position ids of the last batch (the embedding backward groups rows by them).
    pub pos_host: Vec<u32>,
    /// (B, T) u32
    pub ids: Buf,
    /// (B, T) u32
    pub types: Buf,
    /// (B, T) u32
    pub pos: Buf,
    /// (B, T) f32: 1 for real tokens, 0 for padding.
    pub mask: Buf,
    /// (B, T, C) embedding sum before LayerNorm.
    pub emb: Buf,
    /// (B, T) f32
    pub emb_mean: Buf,
    /// (B, T) f32
    pub emb_rstd: Buf,
    /// (B, T, C) hidden_states[0].
    pub x0: Buf,
    /// One per layer when training; a single reused entry for inference.
    pub layers: Vec<LayerActs>,
    /// (B, T, C) inference only: the running hidden state.
    pub x: Option<Buf>,
    /// Attention kernels and their scratch, shared by every layer.
    pub attn: AttnState,
    /// Whether every layer is kept for a backward pass.
    pub train: bool,
}

impl Activations {
    /// Buffers for a (B, T) batch in activation dtype `x`; `train` keeps every layer. An
    /// out-of-memory error names the batch shape to lower.
    pub fn new(g: &Gpu, cfg: &ModelConfig, x: Dtype, b: usize, t: usize, train: bool) -> Result<Self> {
        Self::alloc(g, cfg, x, b, t, train).map_err(|e| oom_hint(e, b, t))
    }

    fn alloc(g: &Gpu, cfg: &ModelConfig, x: Dtype, b: usize, t: usize, train: bool) -> Result<Self> {
        let (n, c) = (b * t, cfg.hidden_size);
        let nl = if train { cfg.num_layers } else { 1 };
        let path = AttnPath::choose(x, c, cfg.num_heads)?;
        Ok(Activations {
            b,
            t,
            dtype: x,
            pos_host: vec![0; n],
            ids: g.alloc(n, Dtype::U32, "token ids")?,
            types: g.alloc(n, Dtype::U32, "token types")?,
            pos: g.alloc(n, Dtype::U32, "positions")?,
            mask: g.alloc(n, Dtype::F32, "attention mask")?,
            emb: g.alloc(n * c, x, "embeddings")?,
            emb_mean: g.alloc(n, Dtype::F32, "embedding LN mean")?,
            emb_rstd: g.alloc(n, Dtype::F32, "embedding LN rstd")?,
            x0: g.alloc(n * c, x, "hidden_states[0]")?,
            layers: (0..nl).map(|_| LayerActs::new(g, cfg, x, b, t, path)).collect::<Result<_>>()?,
            x: if train { None } else { Some(g.alloc(n * c, x, "hidden state")?) },
            attn: match path {
                AttnPath::Unfused => AttnState::Unfused(AttnScratch::new(g, x, b, t, c, cfg.num_heads)?),
                AttnPath::Flash => {
                    AttnState::Flash { dsum: g.alloc(b * cfg.num_heads * t, Dtype::F32, "attention dsum")? }
                }
            },
            train,
        })
    }

    /// hidden_states[L] after a training forward (L = 0 is the embedding output).
    pub fn hidden(&self, l: usize) -> Dev {
        if l == 0 {
            self.x0.dev()
        } else {
            self.layers[l - 1].out.dev()
        }
    }

    /// The output of the last layer run: the final hidden state.
    pub fn last(&self) -> Dev {
        match (&self.x, self.layers.last()) {
            (Some(x), _) => x.dev(),
            (None, Some(la)) => la.out.dev(),
            (None, None) => self.x0.dev(),
        }
    }
}

/// The attention kernels of a batch and their scratch, shared by every layer.
pub enum AttnState {
    /// `ops::attention` with its permute / product buffers.
    Unfused(AttnScratch),
    /// `ops::flash`; `dsum` (B, NH, T) f32 is the backward's row-dot scratch.
    Flash {
        /// (B, NH, T) f32
        dsum: Buf,
    },
}

impl AttnState {
    /// Which path this is.
    pub fn path(&self) -> AttnPath {
        match self {
            AttnState::Unfused(_) => AttnPath::Unfused,
            AttnState::Flash { .. } => AttnPath::Flash,
        }
    }
}

/// Turns an out-of-memory error into one that names the batch shape to lower.
pub fn oom_hint(e: Error, b: usize, t: usize) -> Error {
    match e {
        Error::OutOfMemory { what, bytes } if !what.contains(" for a batch of ") => Error::OutOfMemory {
            what: format!(
                "{what} for a batch of {b} sequences × {t} tokens; lower the batch size (e.g. \
                 --train-batch-size {} with --gradient-accumulation-steps to keep the effective batch) or \
                 the maximum sequence length",
                (b / 2).max(1)
            ),
            bytes,
        },
        other => other,
    }
}

/// Runs the encoder on `batch` (the twin of `cpu::encoder::encoder_forward`). Training
/// activations keep every layer; inference activations stop after `stop_after` layers.
pub fn encoder_forward(
    g: &Gpu,
    acts: &mut Activations,
    params: Dev,
    p: &EncoderParams,
    cfg: &ModelConfig,
    batch: &Batch,
    drop: DropoutCfg,
    stop_after: Option<usize>,
) -> Result<()> {
    let (b, t, c) = (batch.b, batch.t, cfg.hidden_size);
    let n = b * t;
    if acts.b != b || acts.t != t {
        return Err(Error::Usage(format!("activations sized for ({}, {}), batch is ({b}, {t})", acts.b, acts.t)));
    }
    let w = |r: &Range<usize>| params.slice(r.clone());

    position_ids(&mut acts.pos_host, &batch.ids, b, t, cfg.family, cfg.pad_token_id);
    g.write_u32(acts.ids.dev(), &batch.ids)?;
    g.write_u32(acts.types.dev(), &batch.types)?;
    g.write_u32(acts.pos.dev(), &acts.pos_host)?;
    g.write_f32(acts.mask.dev(), &batch.mask)?;
    let (ids, pos, types) = (acts.ids.dev(), acts.pos.dev(), acts.types.dev());
    embedding_forward(g, acts.emb.dev(), ids, pos, types, w(&p.wte), w(&p.wpe), w(&p.wtt), n, c)?;
    layernorm_forward(
        g,
        acts.x0.dev(),
        acts.emb_mean.dev(),
        acts.emb_rstd.dev(),
        acts.emb.dev(),
        w(&p.ln_emb_w),
        w(&p.ln_emb_b),
        n,
        c,
        cfg.layer_norm_eps,
    )?;
    dropout_forward(g, acts.x0.dev(), drop.hidden, drop.seed_of(Site::Embeddings), n * c)?;

    let nl = stop_after.unwrap_or(cfg.num_layers).min(cfg.num_layers);
    let mask = acts.mask.dev();
    if acts.train {
        for l in 0..nl {
            let x = if l == 0 { acts.x0.dev() } else { acts.layers[l - 1].out.dev() };
            layer_forward(
                g,
                &acts.layers[l],
                &acts.attn,
                x,
                mask,
                params,
                &p.layers[l],
                p.linear_layout,
                cfg,
                batch,
                drop,
                l,
            )?;
        }
    } else {
        let x = acts.x.as_ref().ok_or_else(|| Error::Usage("inference activations without x".into()))?.dev();
        g.copy(x, acts.x0.dev())?;
        for l in 0..nl {
            layer_forward(
                g,
                &acts.layers[0],
                &acts.attn,
                x,
                mask,
                params,
                &p.layers[l],
                p.linear_layout,
                cfg,
                batch,
                drop,
                l,
            )?;
            g.copy(x, acts.layers[0].out.dev())?;
        }
    }
    Ok(())
}

/// One transformer layer forward: input x (B, T, C), output `la.out`.
fn layer_forward(
    g: &Gpu,
    la: &LayerActs,
    attn: &AttnState,
    x: Dev,
    mask: Dev,
    params: Dev,
    lp: &LayerParams,
    layout: LinearLayout,
    cfg: &ModelConfig,
    batch: &Batch,
    drop: DropoutCfg,
    l: usize,
) -> Result<()> {
    let (b, t, c, nh, ffn) = (batch.b, batch.t, cfg.hidden_size, cfg.num_heads, cfg.intermediate_size);
    let n = b * t;
    let w = |r: &Range<usize>| params.slice(r.clone());
    linear(g, layout, la.qkv.dev(), x, w(&lp.qkv_w), Some(w(&lp.qkv_b)), n, c, 3 * c)?;
    let (p_att, seed) = (drop.attention, drop.seed_of(Site::Attention(l)));
    let (atty, att, qkv) = (la.atty.dev(), la.att.dev(), la.qkv.dev());
    match attn {
        AttnState::Unfused(s) => attention_forward(g, atty, att, qkv, mask, s, b, t, c, nh, p_att, seed)?,
        AttnState::Flash { .. } => flash_attention_forward(g, atty, att, qkv, mask, b, t, c, nh, p_att, seed)?,
    }
    linear(g, layout, la.res1.dev(), la.atty.dev(), w(&lp.attn_proj_w), Some(w(&lp.attn_proj_b)), n, c, c)?;
    dropout_forward(g, la.res1.dev(), drop.hidden, drop.seed_of(Site::AttentionOutput(l)), n * c)?;
    residual_forward(g, la.res1.dev(), x, n * c)?;
    layernorm_forward(
        g,
        la.ln1.dev(),
        la.ln1_mean.dev(),
        la.ln1_rstd.dev(),
        la.res1.dev(),
        w(&lp.ln1_w),
        w(&lp.ln1_b),
        n,
        c,
        cfg.layer_norm_eps,
    )?;
    linear(g, layout, la.fch.dev(), la.ln1.dev(), w(&lp.fc_w), Some(w(&lp.fc_b)), n, c, ffn)?;
    gelu_forward(g, la.fch_gelu.dev(), la.fch.dev(), n * ffn)?;
    linear(g, layout, la.res2.dev(), la.fch_gelu.dev(), w(&lp.fc_proj_w), Some(w(&lp.fc_proj_b)), n, ffn, c)?;
    dropout_forward(g, la.res2.dev(), drop.hidden, drop.seed_of(Site::Ffn(l)), n * c)?;
    residual_forward(g, la.res2.dev(), la.ln1.dev(), n * c)?;
    layernorm_forward(
        g,
        la.out.dev(),
        la.ln2_mean.dev(),
        la.ln2_rstd.dev(),
        la.res2.dev(),
        w(&lp.ln2_w),
        w(&lp.ln2_b),
        n,
        c,
        cfg.layer_norm_eps,
    )
}

/// A layer's linear forward on weights stored in either layout.
fn linear(
    g: &Gpu,
    layout: LinearLayout,
    out: Dev,
    inp: Dev,
    w: Dev,
    b: Option<Dev>,
    n: usize,
    c: usize,
    oc: usize,
) -> Result<()> {
    match layout {
        LinearLayout::OutIn => matmul_forward(g, out, inp, w, b, n, c, oc),
        LinearLayout::InOut => matmul_forward_t(g, out, inp, w, b, n, c, oc),
    }
}

/// Scratch buffers of the backward pass for one (B, T), as `cpu::encoder::BackwardScratch`.
pub struct BackwardScratch {
    /// (B, T, C) gradient of the residual stream entering the current layer from above.
    pub dx: Buf,
    /// (B, T, C) gradient of a LayerNorm input.
    dres: Buf,
    /// (B, T, C) dres after the dropout mask.
    dtmp: Buf,
    /// (B, T, C)
    dln1: Buf,
    /// (B, T, C)
    datty: Buf,
    /// (B, T, 3C)
    dqkv: Buf,
    /// (B, T, FFN)
    dfch_gelu: Buf,
    /// (B, T, FFN)
    dfch: Buf,
}

impl BackwardScratch {
    /// Buffers for a (B, T) batch in activation dtype `x`.
    pub fn new(g: &Gpu, cfg: &ModelConfig, x: Dtype, b: usize, t: usize) -> Result<Self> {
        let (n, c, ffn) = (b * t, cfg.hidden_size, cfg.intermediate_size);
        let a = |len: usize, what: &str| g.alloc(len, x, what);
        let s = || -> Result<Self> {
            Ok(BackwardScratch {
                dx: a(n * c, "dx")?,
                dres: a(n * c, "dres")?,
                dtmp: a(n * c, "dtmp")?,
                dln1: a(n * c, "dln1")?,
                datty: a(n * c, "datty")?,
                dqkv: a(n * 3 * c, "dqkv")?,
                dfch_gelu: a(n * ffn, "dfch_gelu")?,
                dfch: a(n * ffn, "dfch")?,
            })
        };
        s().map_err(|e| oom_hint(e, b, t))
    }
}

/// Backward through the whole encoder (the twin of `cpu::encoder::encoder_backward`). On entry
/// `s.dx` (B, T, C) holds dL/d(last hidden state); parameter gradients accumulate into `grads`
/// (f32, same layout as `params`).
pub fn encoder_backward(
    g: &Gpu,
    grads: Dev,
    s: &BackwardScratch,
    acts: &Activations,
    params: Dev,
    p: &EncoderParams,
    cfg: &ModelConfig,
    batch: &Batch,
    drop: DropoutCfg,
) -> Result<()> {
    if !acts.train || p.linear_layout != LinearLayout::OutIn {
        return Err(Error::Usage("encoder_backward needs training activations and HF-layout weights".into()));
    }
    let (b, t, c) = (batch.b, batch.t, cfg.hidden_size);
    let n = b * t;
    for l in (0..cfg.num_layers).rev() {
        let x = if l == 0 { acts.x0.dev() } else { acts.layers[l - 1].out.dev() };
        let la = &acts.layers[l];
        layer_backward(g, grads, s, la, &acts.attn, x, acts.mask.dev(), params, &p.layers[l], cfg, batch, drop, l)?;
    }
    // x0 = dropout(LN(emb)); emb = wte[ids] + wpe[pos] + wtt[types]
    dropout_backward(g, s.dx.dev(), drop.hidden, drop.seed_of(Site::Embeddings), n * c)?;
    let gr = |r: &Range<usize>| grads.slice(r.clone());
    layernorm_backward(
        g,
        s.dres.dev(),
        gr(&p.ln_emb_w),
        gr(&p.ln_emb_b),
        s.dx.dev(),
        acts.emb.dev(),
        acts.emb_mean.dev(),
        acts.emb_rstd.dev(),
        params.slice(p.ln_emb_w.clone()),
        n,
        c,
    )?;
    // HF builds both families' word embeddings, and XLM-R's position embeddings, with
    // padding_idx = pad_token_id: those rows get no gradient.
    let pad = cfg.pad_token_id;
    let pos_pad = (cfg.family == Family::XlmRoberta).then_some(pad);
    embedding_backward(
        g,
        gr(&p.wte),
        gr(&p.wpe),
        gr(&p.wtt),
        s.dres.dev(),
        &batch.ids,
        &acts.pos_host,
        &batch.types,
        Some(pad),
        pos_pad,
        n,
        c,
    )
}

/// One layer backward: `s.dx` holds dL/d(out) on entry and dL/d(x) on exit.
fn layer_backward(
    g: &Gpu,
    grads: Dev,
    s: &BackwardScratch,
    la: &LayerActs,
    attn: &AttnState,
    x: Dev,
    mask: Dev,
    params: Dev,
    lp: &LayerParams,
    cfg: &ModelConfig,
    batch: &Batch,
    drop: DropoutCfg,
    l: usize,
) -> Result<()> {
    let (b, t, c, nh, ffn) = (batch.b, batch.t, cfg.hidden_size, cfg.num_heads, cfg.intermediate_size);
    let n = b * t;
    let w = |r: &Range<usize>| params.slice(r.clone());
    let gr = |r: &Range<usize>| grads.slice(r.clone());
    let (dx, dres, dtmp, dln1) = (s.dx.dev(), s.dres.dev(), s.dtmp.dev(), s.dln1.dev());

    // out = LN2(res2)
    let (m2, r2) = (la.ln2_mean.dev(), la.ln2_rstd.dev());
    layernorm_backward(g, dres, gr(&lp.ln2_w), gr(&lp.ln2_b), dx, la.res2.dev(), m2, r2, w(&lp.ln2_w), n, c)?;
    // res2 = dropout(fch_gelu · Wp^T + bp) + ln1
    g.copy(dtmp, dres)?;
    dropout_backward(g, dtmp, drop.hidden, drop.seed_of(Site::Ffn(l)), n * c)?;
    let (dw, db) = (gr(&lp.fc_proj_w), gr(&lp.fc_proj_b));
    matmul_backward(g, s.dfch_gelu.dev(), dw, Some(db), dtmp, la.fch_gelu.dev(), w(&lp.fc_proj_w), n, ffn, c)?;
    // fch_gelu = gelu(fch)
    gelu_backward(g, s.dfch.dev(), la.fch.dev(), s.dfch_gelu.dev(), n * ffn)?;
    // fch = ln1 · Wfc^T + bfc ; ln1 also feeds the residual of res2
    let (dw, db) = (gr(&lp.fc_w), gr(&lp.fc_b));
    matmul_backward(g, dln1, dw, Some(db), s.dfch.dev(), la.ln1.dev(), w(&lp.fc_w), n, c, ffn)?;
    residual_forward(g, dln1, dres, n * c)?;
    // ln1 = LN1(res1)
    let (m1, r1) = (la.ln1_mean.dev(), la.ln1_rstd.dev());
    layernorm_backward(g, dres, gr(&lp.ln1_w), gr(&lp.ln1_b), dln1, la.res1.dev(), m1, r1, w(&lp.ln1_w), n, c)?;
    // res1 = dropout(atty · Wo^T + bo) + x
    g.copy(dtmp, dres)?;
    dropout_backward(g, dtmp, drop.hidden, drop.seed_of(Site::AttentionOutput(l)), n * c)?;
    let (dw, db) = (gr(&lp.attn_proj_w), gr(&lp.attn_proj_b));
    matmul_backward(g, s.datty.dev(), dw, Some(db), dtmp, la.atty.dev(), w(&lp.attn_proj_w), n, c, c)?;
    // atty = attention(qkv, mask)
    let (p_att, seed) = (drop.attention, drop.seed_of(Site::Attention(l)));
    let (dqkv, datty, qkv, att) = (s.dqkv.dev(), s.datty.dev(), la.qkv.dev(), la.att.dev());
    match attn {
        AttnState::Unfused(sc) => attention_backward(g, dqkv, datty, qkv, att, sc, b, t, c, nh, p_att, seed)?,
        AttnState::Flash { dsum } => {
            let (dsum, atty) = (dsum.dev(), la.atty.dev());
            flash_attention_backward(g, dqkv, dsum, datty, atty, qkv, att, mask, b, t, c, nh, p_att, seed)?
        }
    }
    // qkv = x · Wqkv^T + bqkv ; x also feeds the residual of res1
    let (dw, db) = (gr(&lp.qkv_w), gr(&lp.qkv_b));
    matmul_backward(g, dx, dw, Some(db), s.dqkv.dev(), x, w(&lp.qkv_w), n, c, 3 * c)?;
    residual_forward(g, dx, dres, n * c)
}
