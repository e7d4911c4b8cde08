//! The optimizer step on the GPU: AdamW over the flat f32 master weights (kernels/adamw.cu),
//! the global gradient norm, averaging and clipping (kernels/global_norm.cu), and the
//! mixed-precision casts and the fp16 overflow count (kernels/cast.cu). Twins of
//! `cpu::ops::{adamw_update, grad_norm, scale_inplace, clip_grad_norm}`; the casts are the
//! device side of `half`'s conversions. Nothing here reads a value back: the norm and the
//! overflow count stay on the device, where the kernels that need them read them, and the
//! caller reads them with the step's other results in one copy.

use crate::cuda::device::{Dev, Dtype, Gpu};
use crate::cuda::kernels::Kernel;
use crate::cuda::launch::{grid, int, stride_blocks, KArg, Launch};
use crate::model::optim::AdamWConfig;
use crate::{Error, Result};

/// Threads per block of the element-wise kernels.
const BLOCK: u32 = 256;
/// Threads per block of the norm's two passes.
const NORM_BLOCK: u32 = 512;
/// Most blocks of the norm's first pass: fixed (not from the device) so that the partials, and
/// so the norm's bits, depend only on N.
const NORM_MAX_BLOCKS: usize = 1024;

/// The grid of an element-wise f32 pass over `n` elements.
fn stride(n: usize) -> Result<crate::cuda::launch::Grid> {
    grid([stride_blocks(n, BLOCK), 1, 1], BLOCK, 0)
}

/// The weight-decay bitmask of a flat buffer: bit i (bit i % 32 of word i / 32) set where
/// element i decays. `decays` lists (range, decays) of every tensor.
pub fn decay_bits(n: usize, decays: impl IntoIterator<Item = (std::ops::Range<usize>, bool)>) -> Vec<u32> {
    let mut bits = vec![0u32; n.div_ceil(32)];
    for (r, d) in decays {
        if d {
            for i in r {
                bits[i / 32] |= 1 << (i % 32);
            }
        }
    }
    bits
}

/// One AdamW step at step `t` (1-based) over params (N) f32 (the master weights), m (N) f32,
/// v (N) f32, from grads (N) f32: weight decay `cfg.weight_decay` decoupled where `decay_bits`
/// (⌈N/32⌉ u32, see [`decay_bits`]; `None`: everywhere) has the element's bit. With `params_x`
/// (N) in an activation dtype, also writes the updated parameters rounded to it (the copy the
/// forward reads), in the same pass. With `skip` (1 u32), the kernel does nothing when it holds
/// a non-zero count (an fp16 overflow). The math and its f32 rounding sequence are exactly
/// `cpu::ops::adamw_update`'s (bias corrections in f64 on the host).
pub fn adamw_update_plan(
    params: Dev,
    params_x: Option<Dev>,
    grads: Dev,
    m: Dev,
    v: Dev,
    decay_bits: Option<Dev>,
    skip: Option<Dev>,
    cfg: &AdamWConfig,
    t: u64,
    n: usize,
) -> Result<Option<Launch>> {
    params.check("adamw_update params", n, Dtype::F32)?;
    grads.check("adamw_update grads", n, Dtype::F32)?;
    m.check("adamw_update m", n, Dtype::F32)?;
    v.check("adamw_update v", n, Dtype::F32)?;
    if let Some(px) = params_x {
        if !px.dtype.is_float() {
            return Err(Error::Usage(format!("adamw_update params_x: expected a float view, got {:?}", px.dtype)));
        }
        px.check("adamw_update params_x", n, px.dtype)?;
    }
    if let Some(bits) = decay_bits {
        bits.check("adamw_update decay_bits", n.div_ceil(32), Dtype::U32)?;
    }
    if let Some(s) = skip {
        s.check("adamw_update skip", 1, Dtype::U32)?;
    }
    if t == 0 {
        return Err(Error::Usage("adamw_update: the step t is 1-based, got 0".into()));
    }
    let n_i32 = int("adamw_update N", n)?;
    if n == 0 {
        return Ok(None);
    }
    // Host-side constants, computed as in cpu::ops::adamw_update.
    let bc1 = 1.0 - (cfg.beta1 as f64).powf(t as f64);
    let bc2 = 1.0 - (cfg.beta2 as f64).powf(t as f64);
    let step_size = (cfg.lr as f64 / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let decay = 1.0 - cfg.lr * cfg.weight_decay;
    let tail = [
        KArg::ptr(grads),
        KArg::ptr(m),
        KArg::ptr(v),
        KArg::opt(decay_bits),
        KArg::opt(skip),
        KArg::F32(cfg.beta1),
        KArg::F32(cfg.beta2),
        KArg::F32(cfg.eps),
        KArg::F32(step_size),
        KArg::F32(bc2_sqrt),
        KArg::F32(decay),
        KArg::I32(n_i32),
    ];
    let launch = match params_x {
        None => {
            let mut args = vec![KArg::ptr(params)];
            args.extend_from_slice(&tail);
            Launch::new(Kernel::AdamwUpdate, Dtype::F32, stride(n)?, &args)?
        }
        Some(px) => {
            let mut args = vec![KArg::ptr(params), KArg::ptr(px)];
            args.extend_from_slice(&tail);
            Launch::new(Kernel::AdamwUpdateCopy, px.dtype, stride(n)?, &args)?
        }
    };
    Ok(Some(launch))
}

/// f32 elements of scratch [`grad_norm_plans`] needs for N gradients.
pub fn grad_norm_scratch(n: usize) -> usize {
    2 * norm_blocks(n)
}

fn norm_blocks(n: usize) -> usize {
    n.div_ceil(NORM_BLOCK as usize).clamp(1, NORM_MAX_BLOCKS)
}

/// norm (1) f32 = the global L2 norm of grads (N) f32, squares accumulated in f64 like
/// `cpu::ops::grad_norm`. Deterministic: at most 1024 blocks (a number fixed by N) each write
/// one f64 partial into `scratch` ([`grad_norm_scratch`] floats, viewed as doubles); one block
/// adds them in a fixed order. The norm stays on the device.
pub fn grad_norm_plans(norm: Dev, scratch: Dev, grads: Dev, n: usize) -> Result<[Launch; 2]> {
    norm.check("grad_norm norm", 1, Dtype::F32)?;
    grads.check("grad_norm grads", n, Dtype::F32)?;
    let blocks = norm_blocks(n);
    scratch.check("grad_norm scratch", 2 * blocks, Dtype::F32)?;
    if !scratch.ptr.is_multiple_of(8) {
        return Err(Error::Usage("grad_norm scratch: f64 partials need 8-byte alignment".into()));
    }
    let n_i32 = int("grad_norm N", n)?;
    let partial = Launch::new(
        Kernel::GlobalNormPartial,
        Dtype::F32,
        grid([blocks, 1, 1], NORM_BLOCK, 0)?,
        &[KArg::ptr(scratch), KArg::ptr(grads), KArg::I32(n_i32)],
    )?;
    let reduce = Launch::new(
        Kernel::GlobalNormReduce,
        Dtype::F32,
        grid([1, 1, 1], NORM_BLOCK, 0)?,
        &[KArg::ptr(norm), KArg::ptr(scratch), KArg::I32(blocks as i32)],
    )?;
    Ok([partial, reduce])
}

/// grads (N) f32 *= scale.
pub fn scale_inplace_plan(grads: Dev, scale: f32, n: usize) -> Result<Option<Launch>> {
    grads.check("scale_inplace grads", n, Dtype::F32)?;
    let n_i32 = int("scale_inplace N", n)?;
    if n == 0 {
        return Ok(None);
    }
    let args = [KArg::ptr(grads), KArg::F32(scale), KArg::I32(n_i32)];
    Launch::new(Kernel::ScaleInplace, Dtype::F32, stride(n)?, &args).map(Some)
}

/// Clips grads (N) f32 by the norm (1) f32 on the device: × max_norm / (norm + 1e-6) when that
/// is below 1, as `cpu::ops::clip_grad_norm` (PyTorch's `clip_grad_norm_`).
pub fn clip_by_norm_plan(grads: Dev, norm: Dev, max_norm: f32, n: usize) -> Result<Option<Launch>> {
    grads.check("clip_by_norm grads", n, Dtype::F32)?;
    norm.check("clip_by_norm norm", 1, Dtype::F32)?;
    let n_i32 = int("clip_by_norm N", n)?;
    if n == 0 {
        return Ok(None);
    }
    let args = [KArg::ptr(grads), KArg::ptr(norm), KArg::F32(max_norm), KArg::I32(n_i32)];
    Launch::new(Kernel::ClipByNorm, Dtype::F32, stride(n)?, &args).map(Some)
}

/// out (N) in an activation dtype = inp (N) f32, rounded to nearest even (the f32 → bf16/f16
/// copies of mixed precision; a plain copy for F32). Kernel `cast_from_f32_<dtype of out>`.
pub fn cast_from_f32_plan(out: Dev, inp: Dev, n: usize) -> Result<Option<Launch>> {
    if !out.dtype.is_float() {
        return Err(Error::Usage(format!("cast_from_f32 out: expected a float view, got {:?}", out.dtype)));
    }
    out.check("cast_from_f32 out", n, out.dtype)?;
    inp.check("cast_from_f32 inp", n, Dtype::F32)?;
    let n_i32 = int("cast_from_f32 N", n)?;
    if n == 0 {
        return Ok(None);
    }
    let args = [KArg::ptr(out), KArg::ptr(inp), KArg::I32(n_i32)];
    Launch::new(Kernel::CastFromF32, out.dtype, stride(n)?, &args).map(Some)
}

/// out (N) f32 = inp (N) in an activation dtype (exact). Kernel `cast_to_f32_<dtype of inp>`.
pub fn cast_to_f32_plan(out: Dev, inp: Dev, n: usize) -> Result<Option<Launch>> {
    if !inp.dtype.is_float() {
        return Err(Error::Usage(format!("cast_to_f32 inp: expected a float view, got {:?}", inp.dtype)));
    }
    out.check("cast_to_f32 out", n, Dtype::F32)?;
    inp.check("cast_to_f32 inp", n, inp.dtype)?;
    let n_i32 = int("cast_to_f32 N", n)?;
    if n == 0 {
        return Ok(None);
    }
    let args = [KArg::ptr(out), KArg::ptr(inp), KArg::I32(n_i32)];
    Launch::new(Kernel::CastToF32, inp.dtype, stride(n)?, &args).map(Some)
}

/// count (1) u32 += the number of NaN and ±inf in x (N) f32 (the overflow check of fp16 dynamic
/// loss scaling; zero `count` first). Exact: per-block counts added with an integer atomic.
pub fn count_nonfinite_plan(count: Dev, x: Dev, n: usize) -> Result<Option<Launch>> {
    count.check("count_nonfinite count", 1, Dtype::U32)?;
    x.check("count_nonfinite x", n, Dtype::F32)?;
    let n_i32 = int("count_nonfinite N", n)?;
    if n == 0 {
        return Ok(None);
    }
    let args = [KArg::ptr(count), KArg::ptr(x), KArg::I32(n_i32)];
    Launch::new(Kernel::CountNonfinite, Dtype::F32, stride(n)?, &args).map(Some)
}

/// AdamW on the GPU (see [`adamw_update_plan`]).
pub fn adamw_update(
    g: &Gpu,
    params: Dev,
    params_x: Option<Dev>,
    grads: Dev,
    m: Dev,
    v: Dev,
    decay_bits: Option<Dev>,
    skip: Option<Dev>,
    cfg: &AdamWConfig,
    t: u64,
    n: usize,
) -> Result<()> {
    g.run(adamw_update_plan(params, params_x, grads, m, v, decay_bits, skip, cfg, t, n)?)
}

/// The global gradient norm into `norm` (1) f32 on the device, in the GPU's reduction scratch
/// (see [`grad_norm_plans`]).
pub fn grad_norm(g: &Gpu, norm: Dev, grads: Dev, n: usize) -> Result<()> {
    let scratch = g.scratch(grad_norm_scratch(n))?;
    g.run(grad_norm_plans(norm, scratch, grads, n)?)
}

/// grads (N) f32 *= scale on the GPU.
pub fn scale_inplace(g: &Gpu, grads: Dev, scale: f32, n: usize) -> Result<()> {
    g.run(scale_inplace_plan(grads, scale, n)?)
}

/// Clips grads (N) f32 to a global L2 norm of at most `max_norm`, as `cpu::ops::clip_grad_norm`:
/// the norm before clipping is written to `norm` (1) f32 and stays on the device.
pub fn clip_grad_norm(g: &Gpu, norm: Dev, grads: Dev, max_norm: f32, n: usize) -> Result<()> {
    grad_norm(g, norm, grads, n)?;
    g.run(clip_by_norm_plan(grads, norm, max_norm, n)?)
}

/// f32 → activation dtype on the GPU (see [`cast_from_f32_plan`]).
pub fn cast_from_f32(g: &Gpu, out: Dev, inp: Dev, n: usize) -> Result<()> {
    g.run(cast_from_f32_plan(out, inp, n)?)
}

/// Activation dtype → f32 on the GPU (see [`cast_to_f32_plan`]).
pub fn cast_to_f32(g: &Gpu, out: Dev, inp: Dev, n: usize) -> Result<()> {
    g.run(cast_to_f32_plan(out, inp, n)?)
}

/// count (1) u32 = the number of NaN and ±inf in x (N) f32: zeroes `count`, then counts (see
/// [`count_nonfinite_plan`]). The count stays on the device.
pub fn count_nonfinite(g: &Gpu, count: Dev, x: Dev, n: usize) -> Result<()> {
    g.zero(count.at(0, 1))?;
    g.run(count_nonfinite_plan(count, x, n)?)
}
