//! Dropout and the residual addition on the GPU (kernels/dropout.cu): the twins of
//! `cpu::ops::dropout_forward`, `dropout_backward` and `residual_forward`. Dropout masks come
//! from the counter-based RNG shared with the CPU (`xlt_dropout_scale(seed, i, p)`, i the index
//! within the view), so they equal the CPU's and the backward regenerates them from the seed.

use crate::cuda::device::{launch, Dev, Dtype, Gpu};
use crate::{Error, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};

/// Threads per block of the element-wise kernels.
const BLOCK: u32 = 256;
/// Most blocks per SM launched; the kernels' grid-stride loops cover the rest.
const BLOCKS_PER_SM: usize = 32;

/// A grid-stride launch over `n` elements.
fn elementwise_cfg(g: &Gpu, n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, g.sm_count.max(1) * BLOCKS_PER_SM);
    LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// `n` as a kernel int, or an error naming `op`.
fn int(op: &str, n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| Error::Usage(format!("{op}: N = {n} is more than a CUDA kernel's int can index")))
}

/// The activation dtype of `x`, which must be a float type.
fn float_dtype(op: &str, x: Dev) -> Result<Dtype> {
    if !x.dtype.is_float() {
        return Err(Error::Usage(format!("{op}: expected a float view, got {:?}", x.dtype)));
    }
    Ok(x.dtype)
}

/// x (N) *= dropout mask (in place): element i is multiplied by 0 with probability p, else by
/// 1/(1-p), decided by (seed, i) exactly as on the CPU. No-op when p <= 0.
pub fn dropout_forward(g: &Gpu, x: Dev, p: f32, seed: u64, n: usize) -> Result<()> {
    dropout(g, "dropout_forward", x, p, seed, n)
}

/// dx (N) *= the forward's mask (in place), regenerated from (seed, i).
/// Differentiates `x = x * mask`.
pub fn dropout_backward(g: &Gpu, dx: Dev, p: f32, seed: u64, n: usize) -> Result<()> {
    dropout(g, "dropout_backward", dx, p, seed, n)
}

/// The launch behind both dropout directions; `op` names the caller in errors.
fn dropout(g: &Gpu, op: &str, x: Dev, p: f32, seed: u64, n: usize) -> Result<()> {
    let t = float_dtype(op, x)?;
    x.check(&format!("{op} x"), n, t)?;
    let n_i32 = int(op, n)?;
    if p <= 0.0 || n == 0 {
        return Ok(());
    }
    let f = g.kernel("dropout_forward", t)?;
    let mut b = g.builder(&f);
    b.arg(&x.ptr).arg(&p).arg(&seed).arg(&n_i32);
    // SAFETY: argument list matches dropout_forward_<T>(T*, float, unsigned long long, int); x
    // holds N elements of T (checked above).
    unsafe { launch(&mut b, elementwise_cfg(g, n), op) }
}

/// out (N) += inp (N): the residual connection, and the accumulation of residual-stream
/// gradients in the backward.
pub fn residual_forward(g: &Gpu, out: Dev, inp: Dev, n: usize) -> Result<()> {
    let t = float_dtype("residual_forward", inp)?;
    out.check("residual_forward out", n, t)?;
    inp.check("residual_forward inp", n, t)?;
    let n_i32 = int("residual_forward", n)?;
    if n == 0 {
        return Ok(());
    }
    let f = g.kernel("residual_forward", t)?;
    let mut b = g.builder(&f);
    b.arg(&out.ptr).arg(&inp.ptr).arg(&n_i32);
    // SAFETY: argument list matches residual_forward_<T>(T*, const T*, int); both views hold N
    // elements of T (checked above).
    unsafe { launch(&mut b, elementwise_cfg(g, n), "residual_forward") }
}
