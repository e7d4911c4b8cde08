//! Dropout and the residual addition on the GPU (kernels/dropout.cu): the twins of
//! `cpu::ops::dropout_forward`, `dropout_backward` and `residual_forward`. Dropout masks come
//! from the counter-based RNG shared with the CPU (`xlt_dropout_scale(seed, i, p)`, i the index
//! within the view), so they equal the CPU's and the backward regenerates them from the seed.

use super::activation::elementwise_plan;
use crate::cuda::device::{Dev, Gpu};
use crate::cuda::kernels::Kernel;
use crate::cuda::launch::{grid, int, stride_blocks, KArg, Launch};
use crate::{Error, Result};

/// Threads per block.
const BLOCK: u32 = 256;

/// x (N) *= dropout mask (in place): element i is multiplied by 0 with probability p, else by
/// 1/(1-p), decided by (seed, i) exactly as on the CPU. `None` when p <= 0 (nothing to do).
/// The backward (`dropout_backward`) is the same launch: dx *= the regenerated mask.
pub fn dropout_plan(x: Dev, p: f32, seed: u64, n: usize) -> Result<Option<Launch>> {
    if !x.dtype.is_float() {
        return Err(Error::Usage(format!("dropout: expected a float view, got {:?}", x.dtype)));
    }
    x.check("dropout x", n, x.dtype)?;
    let n_i32 = int("dropout N", n)?;
    if p <= 0.0 || n == 0 {
        return Ok(None);
    }
    let args = [KArg::ptr(x), KArg::F32(p), KArg::U64(seed), KArg::I32(n_i32)];
    Launch::new(Kernel::DropoutForward, x.dtype, grid([stride_blocks(n, BLOCK), 1, 1], BLOCK, 0)?, &args).map(Some)
}

/// out (N) += inp (N): the residual connection, and the accumulation of residual-stream
/// gradients in the backward.
pub fn residual_forward_plan(out: Dev, inp: Dev, n: usize) -> Result<Option<Launch>> {
    elementwise_plan(Kernel::ResidualForward, inp, &[("out", out), ("inp", inp)], n)
}

/// x (N) *= dropout mask on the GPU (see [`dropout_plan`]).
pub fn dropout_forward(g: &Gpu, x: Dev, p: f32, seed: u64, n: usize) -> Result<()> {
    g.run(dropout_plan(x, p, seed, n)?)
}

/// dx (N) *= the forward's mask (in place), regenerated from (seed, i).
/// Differentiates `x = x * mask`.
pub fn dropout_backward(g: &Gpu, dx: Dev, p: f32, seed: u64, n: usize) -> Result<()> {
    g.run(dropout_plan(dx, p, seed, n)?)
}

/// out (N) += inp (N) on the GPU (see [`residual_forward_plan`]).
pub fn residual_forward(g: &Gpu, out: Dev, inp: Dev, n: usize) -> Result<()> {
    g.run(residual_forward_plan(out, inp, n)?)
}
