//! LayerNorm on the GPU (kernels/layernorm.cu): the twins of `cpu::ops::layernorm_forward` and
//! `cpu::ops::layernorm_backward`. Statistics (mean, rstd) and the parameter gradients are f32
//! whatever the activation dtype; dw and db are reduced deterministically (per-block partials in
//! the reduction scratch, added in block order by a second kernel).

use crate::cuda::device::{Dev, Dtype, Gpu};
use crate::cuda::kernels::Kernel;
use crate::cuda::launch::{grid, int, KArg, Launch};
use crate::{Error, Result};

/// Threads per block of the forward: one warp per row, so 8 rows per block.
const FORWARD_BLOCK: u32 = 256;
/// Most threads per block of the backward (a block walks its rows, each thread owning channels
/// j ≡ threadIdx (mod block)).
const BACKWARD_BLOCK: usize = 256;
/// Blocks of the backward's first kernel: a number fixed by N alone (not by the device), so the
/// partial sums, and the bits of dw and db, are the same on every GPU. Enough to fill an H200
/// (132 SMs) about four times.
const BACKWARD_BLOCKS: usize = 512;
/// Dynamic shared memory a backward block may use without opting in (bytes): 48 KiB less the
/// kernel's static 32 × float2 reduction buffer.
const MAX_SHARED: usize = (48 << 10) - 256;

/// The activation dtype of `inp` (a float type).
fn float_dtype(op: &str, inp: Dev) -> Result<Dtype> {
    if !inp.dtype.is_float() {
        return Err(Error::Usage(format!("{op} inp: expected a float view, got {:?}", inp.dtype)));
    }
    Ok(inp.dtype)
}

/// out (N, C) = (inp - mean) * rstd * w + b, in the dtype of inp (N, C); w, b (C) in the same
/// dtype; saves mean (N) and rstd (N) in f32 for the backward. One warp per row, two passes
/// (the mean, then the variance of the centred values) as on the CPU.
pub fn layernorm_forward_plan(
    out: Dev,
    mean: Dev,
    rstd: Dev,
    inp: Dev,
    w: Dev,
    b: Dev,
    n: usize,
    c: usize,
    eps: f32,
) -> Result<Option<Launch>> {
    let x = float_dtype("layernorm_forward", inp)?;
    out.check("layernorm_forward out", n * c, x)?;
    mean.check("layernorm_forward mean", n, Dtype::F32)?;
    rstd.check("layernorm_forward rstd", n, Dtype::F32)?;
    inp.check("layernorm_forward inp", n * c, x)?;
    w.check("layernorm_forward w", c, x)?;
    b.check("layernorm_forward b", c, x)?;
    int("layernorm_forward N·C", n * c)?;
    if n == 0 {
        return Ok(None);
    }
    if c == 0 {
        return Err(Error::Usage("layernorm_forward: C = 0 channels".into()));
    }
    let rows_per_block = FORWARD_BLOCK as usize / 32;
    let args = [
        KArg::ptr(out),
        KArg::ptr(mean),
        KArg::ptr(rstd),
        KArg::ptr(inp),
        KArg::ptr(w),
        KArg::ptr(b),
        KArg::I32(int("layernorm_forward N", n)?),
        KArg::I32(int("layernorm_forward C", c)?),
        KArg::F32(eps),
    ];
    let gr = grid([n.div_ceil(rows_per_block), 1, 1], FORWARD_BLOCK, 0)?;
    Launch::new(Kernel::LayernormForward, x, gr, &args).map(Some)
}

/// Rows per block and blocks of the backward for N rows.
fn backward_blocks(n: usize) -> (usize, usize) {
    let rows_per_block = n.div_ceil(BACKWARD_BLOCKS.min(n).max(1));
    (rows_per_block, n.div_ceil(rows_per_block.max(1)))
}

/// f32 elements of scratch [`layernorm_backward_plans`] needs for (N, C).
pub fn layernorm_backward_scratch(n: usize, c: usize) -> usize {
    backward_blocks(n).1 * 2 * c
}

/// dinp (N, C) = dL/dinp (overwritten); dw, db (C) f32 accumulate (`+=`); dout, inp (N, C) and
/// w (C) in the activation dtype, mean, rstd (N) f32 from the forward; `scratch` holds
/// [`layernorm_backward_scratch`] floats. Differentiates `out = (inp - mean) * rstd * w + b`.
///
/// Deterministic: each block handles a fixed chunk of rows and writes its dw/db partial sums to
/// the scratch; a second kernel adds them in block order. The chunking depends only on N.
pub fn layernorm_backward_plans(
    dinp: Dev,
    dw: Dev,
    db: Dev,
    scratch: Dev,
    dout: Dev,
    inp: Dev,
    mean: Dev,
    rstd: Dev,
    w: Dev,
    n: usize,
    c: usize,
) -> Result<Option<[Launch; 2]>> {
    let x = float_dtype("layernorm_backward", inp)?;
    dinp.check("layernorm_backward dinp", n * c, x)?;
    dw.check("layernorm_backward dw", c, Dtype::F32)?;
    db.check("layernorm_backward db", c, Dtype::F32)?;
    dout.check("layernorm_backward dout", n * c, x)?;
    inp.check("layernorm_backward inp", n * c, x)?;
    mean.check("layernorm_backward mean", n, Dtype::F32)?;
    rstd.check("layernorm_backward rstd", n, Dtype::F32)?;
    w.check("layernorm_backward w", c, x)?;
    int("layernorm_backward N·C", n * c)?;
    if n == 0 || c == 0 {
        return Ok(None);
    }
    let shared = 2 * c * 4;
    if shared > MAX_SHARED {
        return Err(Error::Usage(format!(
            "layernorm_backward: C = {c} needs {shared} bytes of shared memory per block, more than {MAX_SHARED}"
        )));
    }
    let (rows_per_block, blocks) = backward_blocks(n);
    scratch.check("layernorm_backward scratch", blocks * 2 * c, Dtype::F32)?;
    let (n_i32, c_i32) = (int("layernorm_backward N", n)?, int("layernorm_backward C", c)?);
    int("layernorm_backward 2C", 2 * c)?;
    let threads = c.next_multiple_of(32).min(BACKWARD_BLOCK) as u32;
    let partial = Launch::new(
        Kernel::LayernormBackward,
        x,
        grid([blocks, 1, 1], threads, shared)?,
        &[
            KArg::ptr(dinp),
            KArg::ptr(scratch),
            KArg::ptr(dout),
            KArg::ptr(inp),
            KArg::ptr(mean),
            KArg::ptr(rstd),
            KArg::ptr(w),
            KArg::I32(n_i32),
            KArg::I32(c_i32),
            KArg::I32(int("layernorm_backward rows per block", rows_per_block)?),
        ],
    )?;
    // One thread per element of [dw | db].
    let reduce = Launch::new(
        Kernel::LayernormBackwardReduce,
        Dtype::F32,
        grid([(2 * c).div_ceil(256), 1, 1], 256, 0)?,
        &[KArg::ptr(dw), KArg::ptr(db), KArg::ptr(scratch), KArg::I32(int("blocks", blocks)?), KArg::I32(c_i32)],
    )?;
    Ok(Some([partial, reduce]))
}

/// LayerNorm forward on the GPU (see [`layernorm_forward_plan`]).
pub fn layernorm_forward(
    g: &Gpu,
    out: Dev,
    mean: Dev,
    rstd: Dev,
    inp: Dev,
    w: Dev,
    b: Dev,
    n: usize,
    c: usize,
    eps: f32,
) -> Result<()> {
    g.run(layernorm_forward_plan(out, mean, rstd, inp, w, b, n, c, eps)?)
}

/// LayerNorm backward on the GPU, in the GPU's reduction scratch (see
/// [`layernorm_backward_plans`]).
pub fn layernorm_backward(
    g: &Gpu,
    dinp: Dev,
    dw: Dev,
    db: Dev,
    dout: Dev,
    inp: Dev,
    mean: Dev,
    rstd: Dev,
    w: Dev,
    n: usize,
    c: usize,
) -> Result<()> {
    let scratch = g.scratch(layernorm_backward_scratch(n, c))?;
    g.run(layernorm_backward_plans(dinp, dw, db, scratch, dout, inp, mean, rstd, w, n, c)?.into_iter().flatten())
}
