//! Softmax cross-entropy on the GPU, from 2 labels up to a 250k-token MLM vocabulary: the twin
//! of `cpu::ops::crossentropy_forward` / `crossentropy_backward` (kernels/softmax_xent.cu).
//!
//! One block per row loops over K (an online max/sum pass, then the write pass), so no (N, K)
//! buffer besides the logits exists, and the backward may overwrite the logits in place.
//! Targets are i64 on the device, -100 = ignored. Labels are validated by the model before the
//! loss; a target outside [0, K) is never used as an index: its loss is NaN and its gradient
//! lacks the one-hot term.

use crate::cuda::device::{grid_blocks, launch, Dev, Dtype, Gpu};
use crate::{Error, Result};
use cudarc::driver::PushKernelArg;

/// Threads per row: enough to cover small K in one pass, at most 512 for large vocabularies.
fn block_for(k: usize) -> u32 {
    (k.div_ceil(32) * 32).clamp(32, 512) as u32
}

/// Checks that N and K fit the kernels' `int` sizes and the grid.
fn check_sizes(op: &str, n: usize, k: usize) -> Result<()> {
    if n > i32::MAX as usize || k > i32::MAX as usize {
        return Err(Error::Usage(format!("{op}: N = {n} rows of K = {k} classes exceed i32")));
    }
    Ok(())
}

/// losses (N) f32 = -log softmax(logits (N, K))[target] (0 where targets (N) i64 is -100).
/// The sum and the count of the CPU twin are left to the caller (read the losses back).
pub fn crossentropy_forward(g: &Gpu, losses: Dev, logits: Dev, targets: Dev, n: usize, k: usize) -> Result<()> {
    check_sizes("crossentropy_forward", n, k)?;
    let dt = logits.dtype;
    if !dt.is_float() {
        return Err(Error::Usage(format!("crossentropy_forward: logits must be f32, bf16 or f16, not {dt:?}")));
    }
    losses.check("crossentropy_forward losses", n, Dtype::F32)?;
    logits.check("crossentropy_forward logits", n * k, dt)?;
    targets.check("crossentropy_forward targets", n, Dtype::I64)?;
    if n == 0 {
        return Ok(());
    }
    if k == 0 {
        return Err(Error::Usage("crossentropy_forward: K = 0 classes".into()));
    }
    let (n_i, k_i) = (n as i32, k as i32);
    let f = g.kernel("crossentropy_forward", dt)?;
    let mut b = g.builder(&f);
    b.arg(&losses.ptr).arg(&logits.ptr).arg(&targets.ptr).arg(&n_i).arg(&k_i);
    // SAFETY: argument list matches the kernel's signature; views checked above.
    unsafe { launch(&mut b, grid_blocks(n, block_for(k), 0), "crossentropy_forward") }
}

/// dlogits (N, K) = dloss · (softmax(logits) − onehot(target)), overwritten; 0 on ignored rows.
/// Differentiates `loss = dloss · Σ losses` (dloss = 1/count gives the mean's gradient).
/// `dlogits` may be the same view as `logits` (in place: no second (N, K) buffer).
pub fn crossentropy_backward(
    g: &Gpu,
    dlogits: Dev,
    logits: Dev,
    targets: Dev,
    dloss: f32,
    n: usize,
    k: usize,
) -> Result<()> {
    check_sizes("crossentropy_backward", n, k)?;
    let dt = logits.dtype;
    if !dt.is_float() {
        return Err(Error::Usage(format!("crossentropy_backward: logits must be f32, bf16 or f16, not {dt:?}")));
    }
    dlogits.check("crossentropy_backward dlogits", n * k, dt)?;
    logits.check("crossentropy_backward logits", n * k, dt)?;
    targets.check("crossentropy_backward targets", n, Dtype::I64)?;
    if n == 0 || k == 0 {
        return Ok(());
    }
    // A partial overlap would let one row's writes clobber another row's logits before they are
    // read; only the exact same view (in place) or disjoint memory is safe.
    let bytes = (n * k * dt.size()) as u64;
    let overlap = dlogits.ptr < logits.ptr + bytes && logits.ptr < dlogits.ptr + bytes;
    if overlap && dlogits.ptr != logits.ptr {
        return Err(Error::Usage("crossentropy_backward: dlogits partly overlaps logits".into()));
    }
    let (n_i, k_i) = (n as i32, k as i32);
    let f = g.kernel("crossentropy_backward", dt)?;
    let mut b = g.builder(&f);
    b.arg(&dlogits.ptr).arg(&logits.ptr).arg(&targets.ptr).arg(&dloss).arg(&n_i).arg(&k_i);
    // SAFETY: argument list matches the kernel's signature; views checked above.
    unsafe { launch(&mut b, grid_blocks(n, block_for(k), 0), "crossentropy_backward") }
}
