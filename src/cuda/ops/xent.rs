//! Softmax cross-entropy on the GPU, from 2 labels up to a 250k-token MLM vocabulary: the twin
//! of `cpu::ops::crossentropy_forward` / `crossentropy_backward` (kernels/softmax_xent.cu).
//!
//! One block per row loops over K (an online max/sum pass, then the write pass), so no (N, K)
//! buffer besides the logits exists, and the backward may overwrite the logits in place.
//! Targets are i64 on the device, -100 = ignored. Labels are validated by the model before the
//! loss; a target outside [0, K) is never used as an index: its loss is NaN and its gradient
//! lacks the one-hot term.

use crate::cuda::device::{Dev, Dtype, Gpu};
use crate::cuda::kernels::Kernel;
use crate::cuda::launch::{grid, int, KArg, Launch};
use crate::{Error, Result};

/// Threads per row: enough to cover small K in one pass, at most 512 for large vocabularies.
fn block_for(k: usize) -> u32 {
    (k.div_ceil(32) * 32).clamp(32, 512) as u32
}

/// The logits' dtype (a float type) after checking the shared arguments.
fn check(op: &str, logits: Dev, targets: Dev, n: usize, k: usize) -> Result<Dtype> {
    let dt = logits.dtype;
    if !dt.is_float() {
        return Err(Error::Usage(format!("{op}: logits must be f32, bf16 or f16, not {dt:?}")));
    }
    int(&format!("{op} N"), n)?;
    int(&format!("{op} K"), k)?;
    logits.check(&format!("{op} logits"), n * k, dt)?;
    targets.check(&format!("{op} targets"), n, Dtype::I64)?;
    if n > 0 && k == 0 {
        return Err(Error::Usage(format!("{op}: K = 0 classes")));
    }
    Ok(dt)
}

/// losses (N) f32 = -log softmax(logits (N, K))[target] (0 where targets (N) i64 is -100).
/// The sum and the count of the CPU twin are left to the caller (read the losses back).
pub fn crossentropy_forward_plan(losses: Dev, logits: Dev, targets: Dev, n: usize, k: usize) -> Result<Option<Launch>> {
    let dt = check("crossentropy_forward", logits, targets, n, k)?;
    losses.check("crossentropy_forward losses", n, Dtype::F32)?;
    if n == 0 {
        return Ok(None);
    }
    let args = [KArg::ptr(losses), KArg::ptr(logits), KArg::ptr(targets), KArg::I32(n as i32), KArg::I32(k as i32)];
    Launch::new(Kernel::CrossentropyForward, dt, grid([n, 1, 1], block_for(k), 0)?, &args).map(Some)
}

/// dlogits (N, K) = dloss · (softmax(logits) − onehot(target)), overwritten; 0 on ignored rows.
/// Differentiates `loss = dloss · Σ losses` (dloss = 1/count gives the mean's gradient).
/// `dlogits` may be the same view as `logits` (in place: no second (N, K) buffer).
pub fn crossentropy_backward_plan(
    dlogits: Dev,
    logits: Dev,
    targets: Dev,
    dloss: f32,
    n: usize,
    k: usize,
) -> Result<Option<Launch>> {
    let dt = check("crossentropy_backward", logits, targets, n, k)?;
    dlogits.check("crossentropy_backward dlogits", n * k, dt)?;
    if n == 0 || k == 0 {
        return Ok(None);
    }
    // A partial overlap would let one row's writes clobber another row's logits before they are
    // read; only the exact same view (in place) or disjoint memory is safe.
    let bytes = (n * k * dt.size()) as u64;
    let overlap = dlogits.ptr < logits.ptr + bytes && logits.ptr < dlogits.ptr + bytes;
    if overlap && dlogits.ptr != logits.ptr {
        return Err(Error::Usage("crossentropy_backward: dlogits partly overlaps logits".into()));
    }
    let args = [
        KArg::ptr(dlogits),
        KArg::ptr(logits),
        KArg::ptr(targets),
        KArg::F32(dloss),
        KArg::I32(n as i32),
        KArg::I32(k as i32),
    ];
    Launch::new(Kernel::CrossentropyBackward, dt, grid([n, 1, 1], block_for(k), 0)?, &args).map(Some)
}

/// Cross-entropy forward on the GPU (see [`crossentropy_forward_plan`]).
pub fn crossentropy_forward(g: &Gpu, losses: Dev, logits: Dev, targets: Dev, n: usize, k: usize) -> Result<()> {
    g.run(crossentropy_forward_plan(losses, logits, targets, n, k)?)
}

/// Cross-entropy backward on the GPU (see [`crossentropy_backward_plan`]).
pub fn crossentropy_backward(
    g: &Gpu,
    dlogits: Dev,
    logits: Dev,
    targets: Dev,
    dloss: f32,
    n: usize,
    k: usize,
) -> Result<()> {
    g.run(crossentropy_backward_plan(dlogits, logits, targets, dloss, n, k)?)
}
