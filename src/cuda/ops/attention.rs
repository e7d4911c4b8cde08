//! Multi-head self-attention with a key-padding mask on the GPU: the twin of
//! `cpu::ops::attention_forward` / `attention_backward` (kernels/attention.cu).
//!
//! Correct-first design (a fused flash kernel is a later issue): the heads are permuted out of
//! qkv (B, T, 3C) into q, k, v (B, NH, T, HS), the products are batched cuBLAS GEMMs over the
//! B·NH heads, and the masked softmax (one warp per row) writes the probabilities into att in
//! place. Dropout on the probabilities uses the counter-based RNG at the flat index into att,
//! `(bi·NH + h)·T·T + i·T + j`, so the masks equal the CPU's and are regenerated in the backward.
//! In bf16/f16 the GEMM outputs (scores, dP, dS) are in the activation dtype; the row kernels
//! compute in f32.

use crate::cuda::device::{Buf, Dev, Dtype, Gpu};
use crate::cuda::gemm::{gemm, DMat, Strides};
use crate::cuda::kernels::Kernel;
use crate::cuda::launch::{grid, stride_blocks, KArg, Launch};
use crate::{Error, Result};

/// Rows of scores per block of the softmax kernels (one warp each); kernels/attention.cu's
/// `ATT_ROWS_PER_BLOCK`.
const ROWS_PER_BLOCK: usize = 8;
/// Threads per block of the element-wise kernels.
const BLOCK: u32 = 256;

/// The scratch buffers of attention, shared by all layers (their contents do not outlive a
/// call), with room for `rows` = B·T rows and B·T·T scores per head; a scratch made for a larger
/// batch serves smaller ones.
pub struct AttnScratch {
    /// (3, B, NH, T, HS): q, k, v permuted out of qkv (B, T, 3C); one buffer so one kernel
    /// fills all three.
    qkv: Buf,
    /// (B, NH, T, HS): y = P·v in the forward, dy (dout permuted) in the backward.
    y: Buf,
    /// (B, NH, T, T): the probabilities after dropout (forward, when p_drop > 0; backward, for
    /// dV); then, in the backward, dP and dS in place (dropped is dead once dV is computed).
    tt: Buf,
    /// (3, B, NH, T, HS): dq, dk, dv, un-permuted into dqkv (B, T, 3C) at the end.
    dqkv: Buf,
    dtype: Dtype,
}

impl AttnScratch {
    /// Scratch for attention over up to `rows` (B·T) rows of C channels in `nh` heads, `btt`
    /// (B·T·T) scores per head, in `dtype`.
    pub fn new(g: &Gpu, dtype: Dtype, rows: usize, btt: usize, c: usize, nh: usize) -> Result<Self> {
        check_shape("AttnScratch::new", dtype, 1, rows, c, nh)?;
        let rc = rows * c;
        Ok(AttnScratch {
            qkv: g.alloc_uninit(3 * rc, dtype, "attention scratch q, k, v (3, B, NH, T, HS)")?,
            y: g.alloc_uninit(rc, dtype, "attention scratch y (B, NH, T, HS)")?,
            tt: g.alloc_uninit(nh * btt, dtype, "attention scratch (B, NH, T, T)")?,
            dqkv: g.alloc_uninit(3 * rc, dtype, "attention scratch dq, dk, dv (3, B, NH, T, HS)")?,
            dtype,
        })
    }

    /// Device memory held, in bytes.
    pub fn bytes(&self) -> usize {
        [&self.qkv, &self.y, &self.tt, &self.dqkv].iter().map(|b| b.len() * b.dtype().size()).sum()
    }

    /// Checks that this scratch covers (B, T, C, NH) in `dtype`.
    fn check(&self, op: &str, dtype: Dtype, b: usize, t: usize, c: usize, nh: usize) -> Result<()> {
        if dtype != self.dtype {
            return Err(Error::Usage(format!("{op}: scratch is {:?}, activations are {dtype:?}", self.dtype)));
        }
        let btc = b * t * c;
        self.qkv.dev().check(&format!("{op} scratch q, k, v"), 3 * btc, dtype)?;
        self.y.dev().check(&format!("{op} scratch y"), btc, dtype)?;
        self.tt.dev().check(&format!("{op} scratch (B, NH, T, T)"), b * nh * t * t, dtype)?;
        self.dqkv.dev().check(&format!("{op} scratch dq, dk, dv"), 3 * btc, dtype)
    }
}

/// Validates sizes shared by every entry point: a float dtype, NH dividing C, and the sizes the
/// kernels take as `int` within i32.
fn check_shape(op: &str, dtype: Dtype, b: usize, t: usize, c: usize, nh: usize) -> Result<()> {
    if !dtype.is_float() {
        return Err(Error::Usage(format!("{op}: activations must be f32, bf16 or f16, not {dtype:?}")));
    }
    if nh == 0 || !c.is_multiple_of(nh) {
        return Err(Error::Usage(format!("{op}: {nh} heads do not divide C = {c}")));
    }
    let max = i32::MAX as usize;
    if b > max || t > max || c > max || 3 * c > max || b.saturating_mul(nh).saturating_mul(t) > max {
        return Err(Error::Usage(format!("{op}: sizes B={b} T={t} C={c} NH={nh} exceed i32")));
    }
    Ok(())
}

/// Checks the dropout probability: in [0, 1).
pub(super) fn check_p(op: &str, p: f32) -> Result<()> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Usage(format!("{op}: dropout probability {p} is not in [0, 1)")));
    }
    Ok(())
}

/// dst (P, B, NH, T, HS) = src (B, T, P·C) split into heads (`unpermute`: the reverse, heads
/// side by side, overwritten): P = 3 for qkv → q, k, v (and dq, dk, dv → dqkv), P = 1 for
/// dout → dy and y → out.
pub fn attention_permute_plan(
    unpermute: bool,
    dst: Dev,
    src: Dev,
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    parts: usize,
) -> Result<Launch> {
    let n = parts * b * t * c;
    dst.check("attention_permute dst", n, src.dtype)?;
    src.check("attention_permute src", n, src.dtype)?;
    let k = if unpermute { Kernel::AttentionUnpermute } else { Kernel::AttentionPermute };
    let args = [
        KArg::ptr(dst),
        KArg::ptr(src),
        KArg::I32(b as i32),
        KArg::I32(t as i32),
        KArg::I32(c as i32),
        KArg::I32(nh as i32),
        KArg::I32(parts as i32),
    ];
    Launch::new(k, src.dtype, grid([b * t, 1, 1], BLOCK, 0)?, &args)
}

/// att (B, NH, T, T): scores in, masked softmax of scores·scale out (in place); `dropped`
/// (same shape) gets the probabilities after dropout when given. mask (B, T) f32.
pub fn attention_softmax_forward_plan(
    att: Dev,
    dropped: Option<Dev>,
    mask: Dev,
    b: usize,
    t: usize,
    nh: usize,
    scale: f32,
    p_drop: f32,
    seed: u64,
) -> Result<Launch> {
    let rows = b * nh * t;
    att.check("attention_softmax_forward att", rows * t, att.dtype)?;
    if let Some(d) = dropped {
        d.check("attention_softmax_forward dropped", rows * t, att.dtype)?;
    }
    mask.check("attention_softmax_forward mask", b * t, Dtype::F32)?;
    let args = [
        KArg::ptr(att),
        KArg::opt(dropped),
        KArg::ptr(mask),
        KArg::I32(b as i32),
        KArg::I32(nh as i32),
        KArg::I32(t as i32),
        KArg::F32(scale),
        KArg::F32(p_drop),
        KArg::U64(seed),
    ];
    let gr = grid([rows.div_ceil(ROWS_PER_BLOCK), 1, 1], (ROWS_PER_BLOCK * 32) as u32, 0)?;
    Launch::new(Kernel::AttentionSoftmaxForward, att.dtype, gr, &args)
}

/// out (B, NH, T, T) = att · dropout mask (p, seed) at the flat index: the dropped
/// probabilities of the forward, regenerated.
pub fn attention_dropout_plan(out: Dev, att: Dev, b: usize, t: usize, nh: usize, p: f32, seed: u64) -> Result<Launch> {
    let n = b * nh * t * t;
    out.check("attention_dropout out", n, att.dtype)?;
    att.check("attention_dropout att", n, att.dtype)?;
    let args = [
        KArg::ptr(out),
        KArg::ptr(att),
        KArg::I32(b as i32),
        KArg::I32(nh as i32),
        KArg::I32(t as i32),
        KArg::F32(p),
        KArg::U64(seed),
    ];
    Launch::new(Kernel::AttentionDropout, att.dtype, grid([stride_blocks(n, BLOCK), 1, 1], BLOCK, 0)?, &args)
}

/// datt (B, NH, T, T): dP in, dS = P ⊙ (dP' − Σ_j dP' ⊙ P) · scale out (in place), where
/// dP' = dP · dropout mask (p, seed) and P = att (before dropout).
pub fn attention_softmax_backward_plan(
    datt: Dev,
    att: Dev,
    b: usize,
    t: usize,
    nh: usize,
    scale: f32,
    p_drop: f32,
    seed: u64,
) -> Result<Launch> {
    let rows = b * nh * t;
    datt.check("attention_softmax_backward datt", rows * t, att.dtype)?;
    att.check("attention_softmax_backward att", rows * t, att.dtype)?;
    let args = [
        KArg::ptr(datt),
        KArg::ptr(att),
        KArg::I32(b as i32),
        KArg::I32(nh as i32),
        KArg::I32(t as i32),
        KArg::F32(scale),
        KArg::F32(p_drop),
        KArg::U64(seed),
    ];
    let gr = grid([rows.div_ceil(ROWS_PER_BLOCK), 1, 1], (ROWS_PER_BLOCK * 32) as u32, 0)?;
    Launch::new(Kernel::AttentionSoftmaxBackward, att.dtype, gr, &args)
}

/// Multi-head self-attention with a key-padding mask.
/// out (B, T, C) = dropout(softmax(Q K^T / sqrt(HS) + mask)) V per head; att (B, NH, T, T)
/// saves the probabilities before dropout. qkv (B, T, 3C) holds Q, K, V side by side; mask
/// (B, T) f32 is 1 for real tokens, 0 for padding; a query whose keys are all padding gets
/// all-zero probabilities. `s` is scratch for at least this shape.
pub fn attention_forward(
    g: &Gpu,
    out: Dev,
    att: Dev,
    qkv: Dev,
    mask: Dev,
    s: &AttnScratch,
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    p_drop: f32,
    seed: u64,
) -> Result<()> {
    const OP: &str = "attention_forward";
    let dt = qkv.dtype;
    check_shape(OP, dt, b, t, c, nh)?;
    check_p(OP, p_drop)?;
    let (hs, btc) = (c / nh, b * t * c);
    out.check("attention_forward out", btc, dt)?;
    att.check("attention_forward att", b * nh * t * t, dt)?;
    qkv.check("attention_forward qkv", 3 * btc, dt)?;
    mask.check("attention_forward mask", b * t, Dtype::F32)?;
    s.check(OP, dt, b, t, c, nh)?;
    if btc == 0 {
        return Ok(());
    }
    let (heads, qkv_p, y, tt) = (b * nh, s.qkv.dev(), s.y.dev(), s.tt.dev());
    let (q, k, v) = (qkv_p.at(0, btc), qkv_p.at(btc, btc), qkv_p.at(2 * btc, btc));
    // q, k, v (B, NH, T, HS) = qkv (B, T, 3C) split into heads
    g.launch(&attention_permute_plan(false, qkv_p, qkv, b, t, c, nh, 3)?)?;
    // scores (T, T) = q (T, HS) · k (T, HS)^T per head, into att
    let per_head = Strides { count: heads, a: t * hs, b: t * hs, c: t * t };
    gemm(g, t, t, hs, att, t, DMat::n(q, hs), DMat::t(k, hs), 1.0, 0.0, per_head)?;
    // P = masked softmax(scores / sqrt(HS)) in place; the dropped copy alongside
    let scale = 1.0 / (hs as f32).sqrt();
    let dropped = (p_drop > 0.0).then_some(tt);
    g.launch(&attention_softmax_forward_plan(att, dropped, mask, b, t, nh, scale, p_drop, seed)?)?;
    // y (T, HS) = P (T, T) · v (T, HS) per head
    let probs = dropped.unwrap_or(att);
    let per_head = Strides { count: heads, a: t * t, b: t * hs, c: t * hs };
    gemm(g, t, hs, t, y, hs, DMat::n(probs, t), DMat::n(v, hs), 1.0, 0.0, per_head)?;
    // out (B, T, C) = y (B, NH, T, HS) with the heads side by side
    g.launch(&attention_permute_plan(true, out, y, b, t, c, nh, 1)?)
}

/// dqkv (B, T, 3C) = dL/dqkv (overwritten) from dout (B, T, C); att (B, NH, T, T) holds the
/// forward's probabilities (before dropout) and the dropout mask is regenerated from
/// (p_drop, seed). Differentiates `out = dropout(softmax(Q K^T * scale + mask)) V`.
pub fn attention_backward(
    g: &Gpu,
    dqkv: Dev,
    dout: Dev,
    qkv: Dev,
    att: Dev,
    s: &AttnScratch,
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    p_drop: f32,
    seed: u64,
) -> Result<()> {
    const OP: &str = "attention_backward";
    let dt = qkv.dtype;
    check_shape(OP, dt, b, t, c, nh)?;
    check_p(OP, p_drop)?;
    let (hs, btc) = (c / nh, b * t * c);
    dqkv.check("attention_backward dqkv", 3 * btc, dt)?;
    dout.check("attention_backward dout", btc, dt)?;
    qkv.check("attention_backward qkv", 3 * btc, dt)?;
    att.check("attention_backward att", b * nh * t * t, dt)?;
    s.check(OP, dt, b, t, c, nh)?;
    if btc == 0 {
        return Ok(());
    }
    let (heads, qkv_p, dy, tt, dqkv_p) = (b * nh, s.qkv.dev(), s.y.dev(), s.tt.dev(), s.dqkv.dev());
    let (q, k, v) = (qkv_p.at(0, btc), qkv_p.at(btc, btc), qkv_p.at(2 * btc, btc));
    let (dq, dk, dv) = (dqkv_p.at(0, btc), dqkv_p.at(btc, btc), dqkv_p.at(2 * btc, btc));
    // q, k, v recomputed from qkv (not stored per layer); dy (B, NH, T, HS) from dout
    g.launch(&attention_permute_plan(false, qkv_p, qkv, b, t, c, nh, 3)?)?;
    g.launch(&attention_permute_plan(false, dy, dout, b, t, c, nh, 1)?)?;
    // dV (T, HS) = Pd^T (T, T) · dy (T, HS), Pd = the dropped probabilities
    let probs = if p_drop > 0.0 {
        g.launch(&attention_dropout_plan(tt, att, b, t, nh, p_drop, seed)?)?;
        tt
    } else {
        att
    };
    let tt_x_hs = Strides { count: heads, a: t * t, b: t * hs, c: t * hs };
    gemm(g, t, hs, t, dv, hs, DMat::t(probs, t), DMat::n(dy, hs), 1.0, 0.0, tt_x_hs)?;
    // dP (T, T) = dy (T, HS) · V^T, into tt (the dropped probabilities are dead now)
    let hs_x_hs = Strides { count: heads, a: t * hs, b: t * hs, c: t * t };
    gemm(g, t, t, hs, tt, t, DMat::n(dy, hs), DMat::t(v, hs), 1.0, 0.0, hs_x_hs)?;
    // dS = P ⊙ (dP·mask − Σ_j dP·mask ⊙ P) / sqrt(HS), in place
    let scale = 1.0 / (hs as f32).sqrt();
    g.launch(&attention_softmax_backward_plan(tt, att, b, t, nh, scale, p_drop, seed)?)?;
    // dQ (T, HS) = dS · K ; dK (T, HS) = dS^T · Q
    gemm(g, t, hs, t, dq, hs, DMat::n(tt, t), DMat::n(k, hs), 1.0, 0.0, tt_x_hs)?;
    gemm(g, t, hs, t, dk, hs, DMat::t(tt, t), DMat::n(q, hs), 1.0, 0.0, tt_x_hs)?;
    // dqkv (B, T, 3C) = dq, dk, dv with the heads side by side
    g.launch(&attention_permute_plan(true, dqkv, dqkv_p, b, t, c, nh, 3)?)
}
