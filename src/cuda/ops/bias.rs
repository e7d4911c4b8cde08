//! The bias of the linear layers on the GPU (kernels/bias.cu): `out += bias` after the cuBLAS
//! product, and the deterministic column sums of its backward. Twins of the bias rows of
//! `cpu::ops::matmul_forward` and of `cpu::ops::bias_backward`.

use crate::cuda::device::{Dev, Dtype, Gpu};
use crate::cuda::kernels::Kernel;
use crate::cuda::launch::{grid, int, KArg, Launch};
use crate::{Error, Result};

/// Rows per block of the backward's partial sums: the CPU's `REDUCE_ROWS`, so that (while the
/// partials fit in [`MAX_PARTIALS`]) the GPU performs the CPU's exact sequence of additions.
const REDUCE_ROWS: usize = 64;
/// Most partial sums (f32) the backward keeps in scratch; above it the row blocks double.
const MAX_PARTIALS: usize = 1 << 24;
/// Most rows of blocks in the forward's grid (each thread then loops over N / this rows).
const FORWARD_ROW_BLOCKS: usize = 1024;

/// Threads per block for one thread per column: OC rounded up to a warp, at most 256.
fn column_block(oc: usize) -> u32 {
    (oc.div_ceil(32) * 32).clamp(32, 256) as u32
}

/// The activation dtype of `d` (a float type), or an `Error::Usage` naming `what`.
fn float_dtype(what: &str, d: Dev) -> Result<Dtype> {
    if d.dtype.is_float() {
        Ok(d.dtype)
    } else {
        Err(Error::Usage(format!("{what}: expected a float view (F32, Bf16, F16), got {:?}", d.dtype)))
    }
}

/// out (N, OC) += bias (OC), both in the activation dtype (applied after the GEMM of
/// `matmul::matmul_forward`; the CPU writes the bias rows first and accumulates the product onto
/// them, which is the same sum in f32).
pub fn bias_forward_plan(out: Dev, bias: Dev, n: usize, oc: usize) -> Result<Option<Launch>> {
    let dt = float_dtype("bias_forward out", out)?;
    out.check("bias_forward out", n * oc, dt)?;
    bias.check("bias_forward bias", oc, dt)?;
    let (n_i32, oc_i32) = (int("bias_forward N", n)?, int("bias_forward OC", oc)?);
    if n == 0 || oc == 0 {
        return Ok(None);
    }
    let block = column_block(oc);
    let gr = grid([oc.div_ceil(block as usize), n.min(FORWARD_ROW_BLOCKS), 1], block, 0)?;
    let args = [KArg::ptr(out), KArg::ptr(bias), KArg::I32(n_i32), KArg::I32(oc_i32)];
    Launch::new(Kernel::BiasForward, dt, gr, &args).map(Some)
}

/// Rows per partial block and the number of blocks of the backward for (N, OC).
fn backward_blocks(n: usize, oc: usize) -> (usize, usize) {
    let mut rows = REDUCE_ROWS;
    while n.div_ceil(rows) * oc > MAX_PARTIALS && rows < n {
        rows *= 2;
    }
    (rows, n.div_ceil(rows))
}

/// f32 elements of scratch [`bias_backward_plans`] needs for (N, OC).
pub fn bias_backward_scratch(n: usize, oc: usize) -> usize {
    backward_blocks(n, oc).1 * oc
}

/// dbias (OC) f32 += Σ over rows of dout (N, OC) (activation dtype). Differentiates
/// `out = inp · w^T + bias`. Deterministic: per-block partial sums over fixed blocks of 64 rows
/// (more when N·OC is huge) in `scratch` ([`bias_backward_scratch`] floats), then added in block
/// order; bit-identical to `cpu::ops::bias_backward` whenever ⌈N/64⌉·OC ≤ 2^24.
pub fn bias_backward_plans(dbias: Dev, scratch: Dev, dout: Dev, n: usize, oc: usize) -> Result<Option<[Launch; 2]>> {
    let dt = float_dtype("bias_backward dout", dout)?;
    dbias.check("bias_backward dbias", oc, Dtype::F32)?;
    dout.check("bias_backward dout", n * oc, dt)?;
    if n == 0 || oc == 0 {
        return Ok(None);
    }
    let (rows, blocks) = backward_blocks(n, oc);
    scratch.check("bias_backward scratch", blocks * oc, Dtype::F32)?;
    let block = column_block(oc);
    let col_blocks = oc.div_ceil(block as usize);
    let (n_i32, oc_i32) = (int("bias_backward N", n)?, int("bias_backward OC", oc)?);
    let (rows_i32, blocks_i32) = (int("bias_backward rows per block", rows)?, int("bias_backward blocks", blocks)?);
    let partial = Launch::new(
        Kernel::BiasBackwardPartial,
        dt,
        grid([blocks, col_blocks, 1], block, 0)?,
        &[KArg::ptr(scratch), KArg::ptr(dout), KArg::I32(n_i32), KArg::I32(oc_i32), KArg::I32(rows_i32)],
    )?;
    let reduce = Launch::new(
        Kernel::BiasBackwardReduce,
        Dtype::F32,
        grid([col_blocks, 1, 1], block, 0)?,
        &[KArg::ptr(dbias), KArg::ptr(scratch), KArg::I32(blocks_i32), KArg::I32(oc_i32)],
    )?;
    Ok(Some([partial, reduce]))
}

/// Bias forward on the GPU (see [`bias_forward_plan`]).
pub fn bias_forward(g: &Gpu, out: Dev, bias: Dev, n: usize, oc: usize) -> Result<()> {
    g.run(bias_forward_plan(out, bias, n, oc)?)
}

/// Bias backward on the GPU, in the GPU's reduction scratch (see [`bias_backward_plans`]).
pub fn bias_backward(g: &Gpu, dbias: Dev, dout: Dev, n: usize, oc: usize) -> Result<()> {
    let scratch = g.scratch(bias_backward_scratch(n, oc))?;
    g.run(bias_backward_plans(dbias, scratch, dout, n, oc)?.into_iter().flatten())
}
