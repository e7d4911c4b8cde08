//! The optimizer step on the GPU: AdamW on the f32 master weights (kernels/adamw.cu), the global
//! gradient norm and clipping (kernels/global_norm.cu), and the mixed-precision casts and the
//! fp16 overflow check (kernels/cast.cu). Twins of `cpu::ops::{adamw_update, grad_norm,
//! clip_grad_norm, scale_inplace}`; the casts are the device side of `half`'s conversions.

use crate::cuda::device::{cuda_err, grid_blocks, launch, Dev, Dtype, Gpu};
use crate::model::optim::AdamWConfig;
use crate::{Error, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};

/// Threads per block of the element-wise kernels.
const BLOCK: u32 = 256;
/// Threads per block of the norm's two passes.
const NORM_BLOCK: u32 = 512;
/// Most blocks of the norm's first pass: fixed (not from the device) so that the partials, and
/// so the norm's bits, depend only on N.
const NORM_MAX_BLOCKS: usize = 1024;

/// `x` as an i32 kernel argument, or an `Error::Usage` naming `what`.
fn to_i32(what: &str, x: usize) -> Result<i32> {
    i32::try_from(x).map_err(|_| Error::Usage(format!("{what} = {x} is larger than i32::MAX")))
}

/// A grid-stride launch over `n` elements: enough blocks to fill the GPU, not one per element.
fn elementwise(g: &Gpu, n: usize) -> LaunchConfig {
    grid_blocks(n.div_ceil(BLOCK as usize).min(g.sm_count.max(1) * 16), BLOCK, 0)
}

/// One AdamW step at step `t` (1-based) over params (N) f32 (the master weights), m (N) f32,
/// v (N) f32, from grads (N) f32, with `cfg.weight_decay` decoupled where `decay` (the
/// layout's flag: not on biases and LayerNorm weights). With `params_x` (N) in an activation dtype, also writes the
/// updated parameters rounded to it (the copy the forward reads), in the same pass: kernel
/// `adamw_update_copy_<dtype>`; without, `adamw_update_f32`. The math and its f32 rounding
/// sequence are exactly `cpu::ops::adamw_update`'s (bias corrections in f64 on the host).
pub fn adamw_update(
    g: &Gpu,
    params: Dev,
    params_x: Option<Dev>,
    grads: Dev,
    m: Dev,
    v: Dev,
    cfg: &AdamWConfig,
    decay: bool,
    t: u64,
    n: usize,
) -> Result<()> {
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
    if t == 0 {
        return Err(Error::Usage("adamw_update: the step t is 1-based, got 0".into()));
    }
    if n == 0 {
        return Ok(());
    }
    let n_i32 = to_i32("adamw_update N", n)?;
    // Host-side constants, computed as in cpu::ops::adamw_update.
    let bc1 = 1.0 - (cfg.beta1 as f64).powf(t as f64);
    let bc2 = 1.0 - (cfg.beta2 as f64).powf(t as f64);
    let step_size = (cfg.lr as f64 / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let decay = if decay { 1.0 - cfg.lr * cfg.weight_decay } else { 1.0 };
    let (beta1, beta2, eps) = (cfg.beta1, cfg.beta2, cfg.eps);
    let launch_cfg = elementwise(g, n);
    match params_x {
        None => {
            let f = g.func("adamw_update_f32")?;
            let mut b = g.builder(&f);
            b.arg(&params.ptr).arg(&grads.ptr).arg(&m.ptr).arg(&v.ptr);
            b.arg(&beta1).arg(&beta2).arg(&eps).arg(&step_size).arg(&bc2_sqrt).arg(&decay).arg(&n_i32);
            // SAFETY: argument list matches adamw_update_f32(float*, const float*, float*, float*,
            // float ×6, int); all four views hold N floats (checked above).
            unsafe { launch(&mut b, launch_cfg, "adamw_update") }
        }
        Some(px) => {
            let f = g.kernel("adamw_update_copy", px.dtype)?;
            let mut b = g.builder(&f);
            b.arg(&params.ptr).arg(&px.ptr).arg(&grads.ptr).arg(&m.ptr).arg(&v.ptr);
            b.arg(&beta1).arg(&beta2).arg(&eps).arg(&step_size).arg(&bc2_sqrt).arg(&decay).arg(&n_i32);
            // SAFETY: argument list matches adamw_update_copy_<dtype>(float*, T*, const float*,
            // float*, float*, float ×6, int); every view holds N elements of its type (checked).
            unsafe { launch(&mut b, launch_cfg, "adamw_update_copy") }
        }
    }
}

/// Global L2 norm of grads (N) f32, squares accumulated in f64 like `cpu::ops::grad_norm`.
/// Deterministic: at most 1024 blocks (a number fixed by N) each write one f64 partial into the
/// GPU's scratch, viewed as doubles (2 floats each); one block adds them in a fixed order and
/// writes the f32 norm into the float after them, which is read back (this waits for the GPU).
pub fn grad_norm(g: &Gpu, grads: Dev, n: usize) -> Result<f32> {
    grads.check("grad_norm grads", n, Dtype::F32)?;
    if n == 0 {
        return Ok(0.0);
    }
    let n_i32 = to_i32("grad_norm N", n)?;
    let blocks = n.div_ceil(NORM_BLOCK as usize).min(NORM_MAX_BLOCKS);
    let blocks_i32 = blocks as i32;
    // [0, 2·blocks): the f64 partials (the scratch is 256-byte aligned); [2·blocks]: the norm.
    let scratch = g.scratch(2 * blocks + 1)?;
    let norm = scratch.at(2 * blocks, 1);

    let f = g.func("global_norm_partial_f32")?;
    let mut b = g.builder(&f);
    b.arg(&scratch.ptr).arg(&grads.ptr).arg(&n_i32);
    // SAFETY: argument list matches global_norm_partial_f32(double*, const float*, int); grads
    // holds N floats (checked), the scratch room for `blocks` doubles.
    unsafe { launch(&mut b, grid_blocks(blocks, NORM_BLOCK, 0), "global_norm_partial") }?;

    let f = g.func("global_norm_reduce_f32")?;
    let mut b = g.builder(&f);
    b.arg(&norm.ptr).arg(&scratch.ptr).arg(&blocks_i32);
    // SAFETY: argument list matches global_norm_reduce_f32(float*, const double*, int); the
    // partials were written just above, `norm` is one float after them.
    unsafe { launch(&mut b, grid_blocks(1, NORM_BLOCK, 0), "global_norm_reduce") }?;

    let host = g.read_f32(norm)?;
    host.first().copied().ok_or_else(|| Error::Cuda("grad_norm: the norm did not come back".into()))
}

/// grads (N) f32 *= scale.
pub fn scale_inplace(g: &Gpu, grads: Dev, scale: f32, n: usize) -> Result<()> {
    grads.check("scale_inplace grads", n, Dtype::F32)?;
    if n == 0 {
        return Ok(());
    }
    let n_i32 = to_i32("scale_inplace N", n)?;
    let f = g.func("scale_inplace_f32")?;
    let mut b = g.builder(&f);
    b.arg(&grads.ptr).arg(&scale).arg(&n_i32);
    // SAFETY: argument list matches scale_inplace_f32(float*, float, int); grads holds N floats.
    unsafe { launch(&mut b, elementwise(g, n), "scale_inplace") }
}

/// Clips grads (N) f32 to a global L2 norm of at most `max_norm`, as `cpu::ops::clip_grad_norm`
/// (PyTorch's `clip_grad_norm_`): coefficient max_norm / (norm + 1e-6), applied only when below
/// 1. Returns the norm before clipping.
pub fn clip_grad_norm(g: &Gpu, grads: Dev, max_norm: f32, n: usize) -> Result<f32> {
    let norm = grad_norm(g, grads, n)?;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        scale_inplace(g, grads, coef, n)?;
    }
    Ok(norm)
}

/// out (N) in an activation dtype = inp (N) f32, rounded to nearest even (the f32 → bf16/f16
/// copies of mixed precision; a plain copy for F32). Kernel `cast_from_f32_<dtype of out>`.
pub fn cast_from_f32(g: &Gpu, out: Dev, inp: Dev, n: usize) -> Result<()> {
    if !out.dtype.is_float() {
        return Err(Error::Usage(format!("cast_from_f32 out: expected a float view, got {:?}", out.dtype)));
    }
    out.check("cast_from_f32 out", n, out.dtype)?;
    inp.check("cast_from_f32 inp", n, Dtype::F32)?;
    if n == 0 {
        return Ok(());
    }
    let n_i32 = to_i32("cast_from_f32 N", n)?;
    let f = g.kernel("cast_from_f32", out.dtype)?;
    let mut b = g.builder(&f);
    b.arg(&out.ptr).arg(&inp.ptr).arg(&n_i32);
    // SAFETY: argument list matches cast_from_f32_<dtype>(T*, const float*, int); both views
    // hold N elements of their types (checked above).
    unsafe { launch(&mut b, elementwise(g, n), "cast_from_f32") }
}

/// out (N) f32 = inp (N) in an activation dtype (exact). Kernel `cast_to_f32_<dtype of inp>`.
pub fn cast_to_f32(g: &Gpu, out: Dev, inp: Dev, n: usize) -> Result<()> {
    if !inp.dtype.is_float() {
        return Err(Error::Usage(format!("cast_to_f32 inp: expected a float view, got {:?}", inp.dtype)));
    }
    out.check("cast_to_f32 out", n, Dtype::F32)?;
    inp.check("cast_to_f32 inp", n, inp.dtype)?;
    if n == 0 {
        return Ok(());
    }
    let n_i32 = to_i32("cast_to_f32 N", n)?;
    let f = g.kernel("cast_to_f32", inp.dtype)?;
    let mut b = g.builder(&f);
    b.arg(&out.ptr).arg(&inp.ptr).arg(&n_i32);
    // SAFETY: argument list matches cast_to_f32_<dtype>(float*, const T*, int); both views hold
    // N elements of their types (checked above).
    unsafe { launch(&mut b, elementwise(g, n), "cast_to_f32") }
}

/// How many of x (N) f32 are NaN or ±inf (the overflow check of fp16 dynamic loss scaling).
/// Exact and deterministic: per-block counts added with an integer atomic into a u32 in the
/// GPU's scratch, zeroed first and read back (this waits for the GPU).
pub fn count_nonfinite(g: &Gpu, x: Dev, n: usize) -> Result<usize> {
    x.check("count_nonfinite x", n, Dtype::F32)?;
    if n == 0 {
        return Ok(0);
    }
    let n_i32 = to_i32("count_nonfinite N", n)?;
    let scratch = g.scratch(1)?;
    let count = Dev { ptr: scratch.ptr, len: 1, dtype: Dtype::U32 };
    // Gpu::zero is a raw driver call: make sure this thread has the context current.
    g.ctx.bind_to_thread().map_err(|e| cuda_err("binding the context", &e))?;
    g.zero(count)?;
    let f = g.func("count_nonfinite_f32")?;
    let mut b = g.builder(&f);
    b.arg(&count.ptr).arg(&x.ptr).arg(&n_i32);
    // SAFETY: argument list matches count_nonfinite_f32(unsigned*, const float*, int); x holds N
    // floats (checked), `count` is the first 4 bytes of the scratch.
    unsafe { launch(&mut b, elementwise(g, n), "count_nonfinite") }?;
    let host = g.read_u32(count)?;
    host.first().map(|&k| k as usize).ok_or_else(|| Error::Cuda("count_nonfinite: the count did not come back".into()))
}
