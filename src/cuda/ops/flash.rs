//! Fused (flash) attention on tensor cores: the twin of `cpu::ops::attention_forward` /
//! `attention_backward` without a (B, NH, T, T) matrix (kernels/flash_attention.cu).
//!
//! The forward saves the output and one f32 log-sum-exp per (head, query) instead of the
//! probabilities; the backward recomputes them tile by tile. Masking and dropout decisions are
//! the unfused path's and the CPU's (same RNG index), so the three agree up to rounding.
//!
//! Each launch is built by a pure `*_plan` function (views checked, [`Launch`] out), which the
//! wrappers run on the GPU and the tests run on the host kernel emulator and check against the
//! kernels' PTX parameter lists.

use super::attention::check_p;
use crate::cuda::device::{Dev, Dtype, Gpu};
use crate::cuda::kernels::{FlashOp, Kernel};
use crate::cuda::launch::{aligned, grid, Grid, KArg, Launch};
use crate::{Error, Result};

/// Threads per block (4 warps); kernels/flash_attention.cu's `FA_THREADS`.
const THREADS: u32 = 128;
/// Queries (forward, dq) or keys (dk/dv) per block; `FA_ROWS`.
const ROWS: usize = 64;
/// Head sizes with a compiled instantiation.
pub const FLASH_HEAD_SIZES: [usize; 4] = [16, 32, 64, 128];

/// Whether fused attention serves activations of `dtype` with C channels in `nh` heads: bf16 or
/// f16 (tensor cores), a head size of 16, 32, 64 or 128, and C a multiple of 8 (128-bit loads).
pub fn flash_supported(dtype: Dtype, c: usize, nh: usize) -> bool {
    matches!(dtype, Dtype::Bf16 | Dtype::F16)
        && nh > 0
        && c.is_multiple_of(nh)
        && FLASH_HEAD_SIZES.contains(&(c / nh))
        && c.is_multiple_of(8)
}

/// The error for a shape the fused kernels do not serve.
fn unsupported(op: &str, dtype: Dtype, c: usize, nh: usize) -> Error {
    Error::Usage(format!(
        "{op}: fused attention needs bf16/f16 activations and a head size in {FLASH_HEAD_SIZES:?} \
         (got {dtype:?}, C = {c}, {nh} heads)"
    ))
}

/// Checks the shape for every flash entry point and returns the head size. Offsets inside the
/// kernels are 64-bit; the sizes they take as `int`, and B and NH as grid dimensions, must fit.
fn check(op: &str, dtype: Dtype, b: usize, t: usize, c: usize, nh: usize, p_drop: f32) -> Result<usize> {
    if !flash_supported(dtype, c, nh) {
        return Err(unsupported(op, dtype, c, nh));
    }
    if b > 65535 || nh > 65535 || t > i32::MAX as usize || 3 * c > i32::MAX as usize {
        return Err(Error::Usage(format!("{op}: sizes B={b} T={t} C={c} NH={nh} exceed the launch grid or i32")));
    }
    check_p(op, p_drop)?;
    Ok(c / nh)
}

/// The grid of a per-head kernel over `t` rows in blocks of [`ROWS`].
fn head_grid(b: usize, t: usize, nh: usize) -> Result<Grid> {
    grid([t.div_ceil(ROWS), nh, b], THREADS, 0)
}

/// The kernel `op` for head size `hs` (checked to exist by [`check`]).
fn kernel(op: FlashOp, hs: usize) -> Result<Kernel> {
    Kernel::flash(op, hs).ok_or_else(|| Error::Usage(format!("no fused attention kernel for head size {hs}")))
}

/// Forward launch: out (B, T, C) = attention of qkv (B, T, 3C) with key mask (B, T) f32 and
/// dropout (p_drop, seed) on the probabilities; lse (B, NH, T) f32 = each row's log-sum-exp of
/// the scaled, masked scores (+inf when every key is masked; that row of out is 0).
pub fn flash_forward_plan(
    out: Dev,
    lse: Dev,
    qkv: Dev,
    mask: Dev,
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    p_drop: f32,
    seed: u64,
) -> Result<Launch> {
    const OP: &str = "flash_attention_forward";
    let dt = qkv.dtype;
    let hs = check(OP, dt, b, t, c, nh, p_drop)?;
    out.check("flash_attention_forward out", b * t * c, dt)?;
    lse.check("flash_attention_forward lse", b * nh * t, Dtype::F32)?;
    qkv.check("flash_attention_forward qkv", b * t * 3 * c, dt)?;
    mask.check("flash_attention_forward mask", b * t, Dtype::F32)?;
    // The kernel reads qkv and writes out in 128-bit vectors.
    aligned("flash_attention_forward qkv", qkv, 16)?;
    aligned("flash_attention_forward out", out, 16)?;
    let scale = 1.0 / (hs as f32).sqrt();
    Launch::new(
        kernel(FlashOp::Forward, hs)?,
        dt,
        head_grid(b, t, nh)?,
        &[
            KArg::Ptr(out.ptr),
            KArg::Ptr(lse.ptr),
            KArg::Ptr(qkv.ptr),
            KArg::Ptr(mask.ptr),
            KArg::I32(b as i32),
            KArg::I32(t as i32),
            KArg::I32(c as i32),
            KArg::I32(nh as i32),
            KArg::F32(scale),
            KArg::F32(p_drop),
            KArg::U64(seed),
        ],
    )
}

/// Backward launches, in order: dsum (B, NH, T) f32 = Σ dout ⊙ out per head row; then dK, dV;
/// then dQ, into dqkv (B, T, 3C) (overwritten). `out` and `lse` are the forward's; mask, p_drop
/// and seed as in the forward.
pub fn flash_backward_plans(
    dqkv: Dev,
    dsum: Dev,
    dout: Dev,
    out: Dev,
    qkv: Dev,
    lse: Dev,
    mask: Dev,
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    p_drop: f32,
    seed: u64,
) -> Result<[Launch; 3]> {
    const OP: &str = "flash_attention_backward";
    let dt = qkv.dtype;
    let hs = check(OP, dt, b, t, c, nh, p_drop)?;
    dqkv.check("flash_attention_backward dqkv", b * t * 3 * c, dt)?;
    dsum.check("flash_attention_backward dsum", b * nh * t, Dtype::F32)?;
    dout.check("flash_attention_backward dout", b * t * c, dt)?;
    out.check("flash_attention_backward out", b * t * c, dt)?;
    qkv.check("flash_attention_backward qkv", b * t * 3 * c, dt)?;
    lse.check("flash_attention_backward lse", b * nh * t, Dtype::F32)?;
    mask.check("flash_attention_backward mask", b * t, Dtype::F32)?;
    // 128-bit loads of dout, out and qkv, 128-bit stores of dqkv.
    for (what, d) in [("dqkv", dqkv), ("dout", dout), ("out", out), ("qkv", qkv)] {
        aligned(&format!("flash_attention_backward {what}"), d, 16)?;
    }
    let scale = 1.0 / (hs as f32).sqrt();
    let rows = b * nh * t;
    let rowdot = Launch::new(
        Kernel::FlashRowdot,
        dt,
        grid([rows.div_ceil(8), 1, 1], 256, 0)?,
        &[
            KArg::Ptr(dsum.ptr),
            KArg::Ptr(dout.ptr),
            KArg::Ptr(out.ptr),
            KArg::I32(b as i32),
            KArg::I32(t as i32),
            KArg::I32(c as i32),
            KArg::I32(nh as i32),
        ],
    )?;
    let grads = |op: FlashOp| -> Result<Launch> {
        Launch::new(
            kernel(op, hs)?,
            dt,
            head_grid(b, t, nh)?,
            &[
                KArg::Ptr(dqkv.ptr),
                KArg::Ptr(dout.ptr),
                KArg::Ptr(qkv.ptr),
                KArg::Ptr(lse.ptr),
                KArg::Ptr(dsum.ptr),
                KArg::Ptr(mask.ptr),
                KArg::I32(b as i32),
                KArg::I32(t as i32),
                KArg::I32(c as i32),
                KArg::I32(nh as i32),
                KArg::F32(scale),
                KArg::F32(p_drop),
                KArg::U64(seed),
            ],
        )
    };
    Ok([rowdot, grads(FlashOp::Dkdv)?, grads(FlashOp::Dq)?])
}

/// Fused attention forward on the GPU (see [`flash_forward_plan`]).
pub fn flash_attention_forward(
    g: &Gpu,
    out: Dev,
    lse: Dev,
    qkv: Dev,
    mask: Dev,
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    p_drop: f32,
    seed: u64,
) -> Result<()> {
    let plan = flash_forward_plan(out, lse, qkv, mask, b, t, c, nh, p_drop, seed)?;
    if b * t == 0 {
        return Ok(());
    }
    g.launch(&plan)
}

/// Fused attention backward on the GPU (see [`flash_backward_plans`]); `dsum` is (B, NH, T) f32
/// scratch.
pub fn flash_attention_backward(
    g: &Gpu,
    dqkv: Dev,
    dsum: Dev,
    dout: Dev,
    out: Dev,
    qkv: Dev,
    lse: Dev,
    mask: Dev,
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
    p_drop: f32,
    seed: u64,
) -> Result<()> {
    let plans = flash_backward_plans(dqkv, dsum, dout, out, qkv, lse, mask, b, t, c, nh, p_drop, seed)?;
    if b * t == 0 {
        return Ok(());
    }
    g.run(plans)
}

/// Which attention kernels a batch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnPath {
    /// The fused kernels of this file: saves (B, NH, T) log-sum-exps per layer.
    Flash,
    /// `ops::attention`: permutes, batched cuBLAS GEMMs and a row softmax; saves the
    /// (B, NH, T, T) probabilities per layer. Serves f32 and any head size.
    Unfused,
}

impl AttnPath {
    /// The path for activations of `dtype` with C channels in `nh` heads: fused wherever
    /// [`flash_supported`], unless the `XLT_ATTENTION` environment variable says `unfused`;
    /// `XLT_ATTENTION=flash` makes an unsupported shape an error instead of a fallback.
    pub fn choose(dtype: Dtype, c: usize, nh: usize) -> Result<AttnPath> {
        let supported = flash_supported(dtype, c, nh);
        match std::env::var("XLT_ATTENTION").unwrap_or_default().as_str() {
            "" | "auto" => Ok(if supported { AttnPath::Flash } else { AttnPath::Unfused }),
            "unfused" => Ok(AttnPath::Unfused),
            "flash" if supported => Ok(AttnPath::Flash),
            "flash" => Err(unsupported("XLT_ATTENTION=flash", dtype, c, nh)),
            other => Err(Error::Unknown(format!("XLT_ATTENTION={other}: expected auto, flash or unfused"))),
        }
    }
}
