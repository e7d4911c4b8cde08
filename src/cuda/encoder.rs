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
//!
//! The activations are sized for the largest batch seen so far and reused for every smaller
//! one (dynamic padding changes T from batch to batch): after the first batches, a step
//! allocates nothing. The batch's ids, types, positions and mask arrive as views of the one
//! upload of its batch ([`EncoderInput`]).

use super::device::{Buf, Dev, Dtype, Gpu};
use super::ops::*;
use super::upload::{Part, Staged, Staging};
use crate::config::{Family, ModelConfig};
use crate::model::batch::{position_ids, Batch};
use crate::model::dropout::{DropoutCfg, Site};
use crate::model::{EncoderParams, LayerParams, LinearLayout};
use crate::{Error, Result};
use std::ops::Range;

/// Where a batch's encoder inputs lie in its upload.
#[derive(Clone, Copy, Debug)]
pub struct EncoderInput {
    ids: Part,
    types: Part,
    pos: Part,
    mask: Part,
}

/// The encoder inputs of a batch on the device: ids, types, positions (B·T) u32 and the
/// attention mask (B·T) f32.
#[derive(Clone, Copy, Debug)]
pub struct EncoderIo<'a> {
    /// (B, T) u32
    pub ids: Dev<'a>,
    /// (B, T) u32
    pub types: Dev<'a>,
    /// (B, T) u32
    pub pos: Dev<'a>,
    /// (B, T) f32: 1 for real tokens, 0 for padding.
    pub mask: Dev<'a>,
}

impl EncoderInput {
    /// Stages `batch`'s ids, types and mask, and its position ids (computed into `pos`, which
    /// the caller keeps for the embedding backward's plan).
    pub fn stage(st: &mut Staging, batch: &Batch, cfg: &ModelConfig, pos: &mut Vec<u32>) -> EncoderInput {
        let n = batch.b * batch.t;
        pos.clear();
        pos.resize(n, 0);
        position_ids(pos, &batch.ids, batch.b, batch.t, cfg.family, cfg.pad_token_id);
        EncoderInput {
            ids: st.u32s(&batch.ids[..n]),
            types: st.u32s(&batch.types[..n]),
            pos: st.u32s(pos),
            mask: st.f32s(&batch.mask[..n]),
        }
    }

    /// The views of the staged inputs once uploaded.
    pub fn views<'a>(&self, s: &Staged<'a>) -> EncoderIo<'a> {
        EncoderIo { ids: s.view(self.ids), types: s.view(self.types), pos: s.view(self.pos), mask: s.view(self.mask) }
    }
}

/// Saved activations of one layer, as `cpu::encoder::LayerActs`, with room for the largest
/// batch so far; the views below are cut to the current one.
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

/// Room an [`Activations`] was made for: rows N = B·T, and B·T·T (the unfused attention's
/// (B, NH, T, T) matrices per head).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    /// Rows B·T.
    pub rows: usize,
    /// B·T·T.
    pub btt: usize,
}

impl Room {
    /// The room a (B, T) batch needs.
    pub fn of(b: usize, t: usize) -> Room {
        Room { rows: b * t, btt: b * t * t }
    }
    /// Whether `self` holds `other`.
    pub fn holds(&self, other: Room) -> bool {
        self.rows >= other.rows && self.btt >= other.btt
    }
    /// Room for both.
    pub fn max(self, other: Room) -> Room {
        Room { rows: self.rows.max(other.rows), btt: self.btt.max(other.btt) }
    }
}

impl LayerActs {
    fn new(g: &Gpu, cfg: &ModelConfig, x: Dtype, room: Room, path: AttnPath) -> Result<Self> {
        let (n, c, ffn, nh) = (room.rows, cfg.hidden_size, cfg.intermediate_size, cfg.num_heads);
        let a = |len: usize, d: Dtype, what: &str| g.alloc_uninit(len, d, what);
        Ok(LayerActs {
            qkv: a(n * 3 * c, x, "qkv")?,
            att: match path {
                AttnPath::Unfused => a(nh * room.btt, x, "attention probabilities")?,
                AttnPath::Flash => a(nh * n, Dtype::F32, "attention log-sum-exps")?,
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

/// Everything the forward saves for the backward, as `cpu::encoder::Activations`, with room for
/// the largest batch so far ([`Room`]); `b` and `t` are the current batch's.
pub struct Activations {
    /// B of the current batch.
    pub b: usize,
    /// T of the current batch.
    pub t: usize,
    /// What the buffers have room for.
    pub room: Room,
    /// Activation dtype.
    pub dtype: Dtype,
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
    /// Buffers with room for `room` in activation dtype `x`; `train` keeps every layer. An
    /// out-of-memory error names the batch shape to lower.
    pub fn new(g: &Gpu, cfg: &ModelConfig, x: Dtype, b: usize, t: usize, room: Room, train: bool) -> Result<Self> {
        Self::alloc(g, cfg, x, b, t, room, train).map_err(|e| oom_hint(e, b, t))
    }

    fn alloc(g: &Gpu, cfg: &ModelConfig, x: Dtype, b: usize, t: usize, room: Room, train: bool) -> Result<Self> {
        let (n, c) = (room.rows, cfg.hidden_size);
        let nl = if train { cfg.num_layers } else { 1 };
        let path = AttnPath::choose(x, c, cfg.num_heads)?;
        Ok(Activations {
            b,
            t,
            room,
            dtype: x,
            emb: g.alloc_uninit(n * c, x, "embeddings")?,
            emb_mean: g.alloc_uninit(n, Dtype::F32, "embedding LN mean")?,
            emb_rstd: g.alloc_uninit(n, Dtype::F32, "embedding LN rstd")?,
            x0: g.alloc_uninit(n * c, x, "hidden_states[0]")?,
            layers: (0..nl).map(|_| LayerActs::new(g, cfg, x, room, path)).collect::<Result<_>>()?,
            x: if train { None } else { Some(g.alloc_uninit(n * c, x, "hidden state")?) },
            attn: match path {
                AttnPath::Unfused => AttnState::Unfused(AttnScratch::new(g, x, room.rows, room.btt, c, cfg.num_heads)?),
                AttnPath::Flash => {
                    AttnState::Flash { dsum: g.alloc_uninit(cfg.num_heads * n, Dtype::F32, "attention dsum")? }
                }
            },
            train,
        })
    }

    /// Reuses `acts` for a (B, T) batch when it has room, else makes new buffers with room for
    /// both its old room and this batch (the old ones are freed first).
    pub fn ensure(
        acts: &mut Option<Activations>,
        g: &Gpu,
        cfg: &ModelConfig,
        x: Dtype,
        b: usize,
        t: usize,
        train: bool,
    ) -> Result<()> {
        let need = Room::of(b, t);
        if let Some(a) = acts.as_mut() {
            if a.room.holds(need) && a.dtype == x && a.train == train {
                (a.b, a.t) = (b, t);
                return Ok(());
            }
        }
        let room = acts.take().map_or(need, |a| a.room.max(need));
        *acts = Some(Activations::new(g, cfg, x, b, t, room, train)?);
        Ok(())
    }

    /// hidden_states[L] (B, T, C) of the current batch after a training forward (L = 0 is the
    /// embedding output).
    pub fn hidden(&self, l: usize, c: usize) -> Dev<'_> {
        let n = self.b * self.t * c;
        if l == 0 {
            self.x0.view(n)
        } else {
            self.layers[l - 1].out.view(n)
        }
    }

    /// The output of the last layer run (B, T, C): the final hidden state.
    pub fn last(&self, c: usize) -> Dev<'_> {
        let n = self.b * self.t * c;
        match (&self.x, self.layers.last()) {
            (Some(x), _) => x.view(n),
            (None, Some(la)) => la.out.view(n),
            (None, None) => self.x0.view(n),
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

/// Runs the encoder on a (B, T) batch whose inputs are `io` (the twin of
/// `cpu::encoder::encoder_forward`). Training activations keep every layer; inference
/// activations stop after `stop_after` layers.
pub fn encoder_forward(
    g: &Gpu,
    acts: &Activations,
    io: &EncoderIo,
    params: Dev,
    p: &EncoderParams,
    cfg: &ModelConfig,
    drop: DropoutCfg,
    stop_after: Option<usize>,
) -> Result<()> {
    let (b, t, c) = (acts.b, acts.t, cfg.hidden_size);
    let n = b * t;
    let _r = g.range(|| "encoder forward".into());
    let w = |r: &Range<usize>| params.slice(r.clone());
    let (emb, x0) = (acts.emb.view(n * c), acts.x0.view(n * c));
    let (mean, rstd) = (acts.emb_mean.view(n), acts.emb_rstd.view(n));
    embedding_forward(g, emb, io.ids, io.pos, io.types, w(&p.wte), w(&p.wpe), w(&p.wtt), n, c)?;
    layernorm_forward(g, x0, mean, rstd, emb, w(&p.ln_emb_w), w(&p.ln_emb_b), n, c, cfg.layer_norm_eps)?;
    dropout_forward(g, x0, drop.hidden, drop.seed_of(Site::Embeddings), n * c)?;

    let nl = stop_after.unwrap_or(cfg.num_layers).min(cfg.num_layers);
    let shape = Shape { b, t, c, nh: cfg.num_heads, ffn: cfg.intermediate_size, eps: cfg.layer_norm_eps };
    if acts.train {
        for l in 0..nl {
            let x = acts.hidden(l, c);
            layer_forward(
                g,
                &acts.layers[l],
                &acts.attn,
                x,
                io.mask,
                params,
                &p.layers[l],
                p.linear_layout,
                shape,
                drop,
                l,
            )?;
        }
    } else {
        let x = acts.x.as_ref().ok_or_else(|| Error::Usage("inference activations without x".into()))?.view(n * c);
        g.copy(x, x0)?;
        for l in 0..nl {
            let la = &acts.layers[0];
            layer_forward(g, la, &acts.attn, x, io.mask, params, &p.layers[l], p.linear_layout, shape, drop, l)?;
            g.copy(x, la.out.view(n * c))?;
        }
    }
    Ok(())
}

/// The sizes one layer runs at.
#[derive(Clone, Copy)]
struct Shape {
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    ffn: usize,
    eps: f32,
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
    sh: Shape,
    drop: DropoutCfg,
    l: usize,
) -> Result<()> {
    let Shape { b, t, c, nh, ffn, eps } = sh;
    let n = b * t;
    let _r = g.range(|| format!("layer {l} forward"));
    let w = |r: &Range<usize>| params.slice(r.clone());
    let (qkv, atty, res1, ln1) = (la.qkv.view(n * 3 * c), la.atty.view(n * c), la.res1.view(n * c), la.ln1.view(n * c));
    let (fch, fch_gelu, res2, out) =
        (la.fch.view(n * ffn), la.fch_gelu.view(n * ffn), la.res2.view(n * c), la.out.view(n * c));
    linear(g, layout, qkv, x, w(&lp.qkv_w), Some(w(&lp.qkv_b)), n, c, 3 * c)?;
    let (p_att, seed) = (drop.attention, drop.seed_of(Site::Attention(l)));
    match attn {
        AttnState::Unfused(s) => {
            let att = la.att.view(b * nh * t * t);
            attention_forward(g, atty, att, qkv, mask, s, b, t, c, nh, p_att, seed)?
        }
        AttnState::Flash { .. } => {
            let lse = la.att.view(b * nh * t);
            flash_attention_forward(g, atty, lse, qkv, mask, b, t, c, nh, p_att, seed)?
        }
    }
    linear(g, layout, res1, atty, w(&lp.attn_proj_w), Some(w(&lp.attn_proj_b)), n, c, c)?;
    dropout_forward(g, res1, drop.hidden, drop.seed_of(Site::AttentionOutput(l)), n * c)?;
    residual_forward(g, res1, x, n * c)?;
    let (m1, r1) = (la.ln1_mean.view(n), la.ln1_rstd.view(n));
    layernorm_forward(g, ln1, m1, r1, res1, w(&lp.ln1_w), w(&lp.ln1_b), n, c, eps)?;
    linear(g, layout, fch, ln1, w(&lp.fc_w), Some(w(&lp.fc_b)), n, c, ffn)?;
    gelu_forward(g, fch_gelu, fch, n * ffn)?;
    linear(g, layout, res2, fch_gelu, w(&lp.fc_proj_w), Some(w(&lp.fc_proj_b)), n, ffn, c)?;
    dropout_forward(g, res2, drop.hidden, drop.seed_of(Site::Ffn(l)), n * c)?;
    residual_forward(g, res2, ln1, n * c)?;
    let (m2, r2) = (la.ln2_mean.view(n), la.ln2_rstd.view(n));
    layernorm_forward(g, out, m2, r2, res2, w(&lp.ln2_w), w(&lp.ln2_b), n, c, eps)
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

/// Scratch buffers of the backward pass, as `cpu::encoder::BackwardScratch`, with room for the
/// largest batch so far.
pub struct BackwardScratch {
    /// Rows (B·T) of room.
    pub rows: usize,
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
    /// Buffers for `rows` rows in activation dtype `x`.
    pub fn new(g: &Gpu, cfg: &ModelConfig, x: Dtype, rows: usize) -> Result<Self> {
        let (n, c, ffn) = (rows, cfg.hidden_size, cfg.intermediate_size);
        let a = |len: usize, what: &str| g.alloc_uninit(len, x, what);
        Ok(BackwardScratch {
            rows,
            dx: a(n * c, "dx")?,
            dres: a(n * c, "dres")?,
            dtmp: a(n * c, "dtmp")?,
            dln1: a(n * c, "dln1")?,
            datty: a(n * c, "datty")?,
            dqkv: a(n * 3 * c, "dqkv")?,
            dfch_gelu: a(n * ffn, "dfch_gelu")?,
            dfch: a(n * ffn, "dfch")?,
        })
    }

    /// Reuses `s` for `rows` rows when it has room, else makes new buffers for the larger of its
    /// old room and `rows` (the old ones freed first).
    pub fn ensure(
        s: &mut Option<BackwardScratch>,
        g: &Gpu,
        cfg: &ModelConfig,
        x: Dtype,
        b: usize,
        t: usize,
    ) -> Result<()> {
        let rows = b * t;
        if s.as_ref().is_some_and(|s| s.rows >= rows) {
            return Ok(());
        }
        let rows = s.take().map_or(rows, |s| s.rows.max(rows));
        *s = Some(BackwardScratch::new(g, cfg, x, rows).map_err(|e| oom_hint(e, b, t))?);
        Ok(())
    }
}

/// Backward through the encoder's first `layers` layers and the embeddings (the twin of
/// `cpu::encoder::encoder_backward`). On entry `s.dx` (B, T, C) holds
/// dL/d(hidden_states[layers]); parameter gradients accumulate into `grads`
/// (f32, same layout as `params`). `groups` is the embedding backward's plan, uploaded with the
/// batch as `plan`.
pub fn encoder_backward(
    g: &Gpu,
    grads: Dev,
    s: &BackwardScratch,
    acts: &Activations,
    io: &EncoderIo,
    groups: &EmbeddingGroups,
    plan: Dev,
    params: Dev,
    p: &EncoderParams,
    cfg: &ModelConfig,
    drop: DropoutCfg,
    layers: usize,
) -> Result<()> {
    if !acts.train || p.linear_layout != LinearLayout::OutIn {
        return Err(Error::Usage("encoder_backward needs training activations and HF-layout weights".into()));
    }
    let (b, t, c) = (acts.b, acts.t, cfg.hidden_size);
    let n = b * t;
    let _r = g.range(|| "encoder backward".into());
    let shape = Shape { b, t, c, nh: cfg.num_heads, ffn: cfg.intermediate_size, eps: cfg.layer_norm_eps };
    for l in (0..layers.min(cfg.num_layers)).rev() {
        let x = acts.hidden(l, c);
        layer_backward(g, grads, s, &acts.layers[l], &acts.attn, x, io.mask, params, &p.layers[l], shape, drop, l)?;
    }
    // x0 = dropout(LN(emb)); emb = wte[ids] + wpe[pos] + wtt[types]
    let (dx, dres) = (s.dx.view(n * c), s.dres.view(n * c));
    dropout_backward(g, dx, drop.hidden, drop.seed_of(Site::Embeddings), n * c)?;
    let gr = |r: &Range<usize>| grads.slice(r.clone());
    let (mean, rstd) = (acts.emb_mean.view(n), acts.emb_rstd.view(n));
    let (dw, db, ln_w) = (gr(&p.ln_emb_w), gr(&p.ln_emb_b), params.slice(p.ln_emb_w.clone()));
    layernorm_backward(g, dres, dw, db, dx, acts.emb.view(n * c), mean, rstd, ln_w, n, c)?;
    embedding_backward(g, gr(&p.wte), gr(&p.wpe), gr(&p.wtt), dres, groups, plan, n, c)
}

/// The embedding backward's plan for a batch: HF builds both families' word embeddings, and
/// XLM-R's position embeddings, with padding_idx = pad_token_id: those rows get no gradient.
pub fn embedding_groups(batch: &Batch, pos: &[u32], p: &EncoderParams, cfg: &ModelConfig) -> Result<EmbeddingGroups> {
    let (n, c, pad) = (batch.b * batch.t, cfg.hidden_size, cfg.pad_token_id);
    let pos_pad = (cfg.family == Family::XlmRoberta).then_some(pad);
    let rows = [p.wte.len() / c, p.wpe.len() / c, p.wtt.len() / c];
    EmbeddingGroups::new(&batch.ids[..n], &pos[..n], &batch.types[..n], Some(pad), pos_pad, rows)
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
    sh: Shape,
    drop: DropoutCfg,
    l: usize,
) -> Result<()> {
    let Shape { b, t, c, nh, ffn, .. } = sh;
    let n = b * t;
    let _r = g.range(|| format!("layer {l} backward"));
    let w = |r: &Range<usize>| params.slice(r.clone());
    let gr = |r: &Range<usize>| grads.slice(r.clone());
    let (dx, dres, dtmp, dln1) = (s.dx.view(n * c), s.dres.view(n * c), s.dtmp.view(n * c), s.dln1.view(n * c));
    let (datty, dqkv, dfch_gelu, dfch) =
        (s.datty.view(n * c), s.dqkv.view(n * 3 * c), s.dfch_gelu.view(n * ffn), s.dfch.view(n * ffn));

    // out = LN2(res2)
    let (m2, r2) = (la.ln2_mean.view(n), la.ln2_rstd.view(n));
    layernorm_backward(g, dres, gr(&lp.ln2_w), gr(&lp.ln2_b), dx, la.res2.view(n * c), m2, r2, w(&lp.ln2_w), n, c)?;
    // res2 = dropout(fch_gelu · Wp^T + bp) + ln1
    g.copy(dtmp, dres)?;
    dropout_backward(g, dtmp, drop.hidden, drop.seed_of(Site::Ffn(l)), n * c)?;
    let (dw, db) = (gr(&lp.fc_proj_w), gr(&lp.fc_proj_b));
    matmul_backward(g, dfch_gelu, dw, Some(db), dtmp, la.fch_gelu.view(n * ffn), w(&lp.fc_proj_w), n, ffn, c)?;
    // fch_gelu = gelu(fch)
    gelu_backward(g, dfch, la.fch.view(n * ffn), dfch_gelu, n * ffn)?;
    // fch = ln1 · Wfc^T + bfc ; ln1 also feeds the residual of res2
    let (dw, db) = (gr(&lp.fc_w), gr(&lp.fc_b));
    matmul_backward(g, dln1, dw, Some(db), dfch, la.ln1.view(n * c), w(&lp.fc_w), n, c, ffn)?;
    residual_forward(g, dln1, dres, n * c)?;
    // ln1 = LN1(res1)
    let (m1, r1) = (la.ln1_mean.view(n), la.ln1_rstd.view(n));
    layernorm_backward(g, dres, gr(&lp.ln1_w), gr(&lp.ln1_b), dln1, la.res1.view(n * c), m1, r1, w(&lp.ln1_w), n, c)?;
    // res1 = dropout(atty · Wo^T + bo) + x
    g.copy(dtmp, dres)?;
    dropout_backward(g, dtmp, drop.hidden, drop.seed_of(Site::AttentionOutput(l)), n * c)?;
    let (dw, db) = (gr(&lp.attn_proj_w), gr(&lp.attn_proj_b));
    matmul_backward(g, datty, dw, Some(db), dtmp, la.atty.view(n * c), w(&lp.attn_proj_w), n, c, c)?;
    // atty = attention(qkv, mask)
    let (p_att, seed) = (drop.attention, drop.seed_of(Site::Attention(l)));
    let qkv = la.qkv.view(n * 3 * c);
    match attn {
        AttnState::Unfused(sc) => {
            let att = la.att.view(b * nh * t * t);
            attention_backward(g, dqkv, datty, qkv, att, sc, b, t, c, nh, p_att, seed)?
        }
        AttnState::Flash { dsum } => {
            let (dsum, atty, lse) = (dsum.view(b * nh * t), la.atty.view(n * c), la.att.view(b * nh * t));
            flash_attention_backward(g, dqkv, dsum, datty, atty, qkv, lse, mask, b, t, c, nh, p_att, seed)?
        }
    }
    // qkv = x · Wqkv^T + bqkv ; x also feeds the residual of res1
    let (dw, db) = (gr(&lp.qkv_w), gr(&lp.qkv_b));
    matmul_backward(g, dx, dw, Some(db), dqkv, x, w(&lp.qkv_w), n, c, 3 * c)?;
    residual_forward(g, dx, dres, n * c)
}
