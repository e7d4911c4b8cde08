//! The bias of the linear layers on the GPU (kernels/bias.cu): `out += bias` after the cuBLAS
//! product, and the deterministic column sums of its backward. Twins of the bias rows of
//! `cpu::ops::matmul_forward` and of `cpu::ops::bias_backward`.

use crate::cuda::device::{launch, Dev, Dtype, Gpu};
use crate::{Error, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};

/// Rows per block of the backward's partial sums: the CPU's `REDUCE_ROWS`, so that (while the
/// partials fit in [`MAX_PARTIALS`]) the GPU performs the CPU's exact sequence of additions.
const REDUCE_ROWS: usize = 64;
/// Most partial sums (f32) the backward keeps in scratch; above it the row blocks double.
const MAX_PARTIALS: usize = 1 << 24;
/// Most rows of blocks in the forward's grid (each thread then loops over N / this rows).
const FORWARD_ROW_BLOCKS: usize = 1024;

/// `x` as an i32 kernel argument, or an `Error::Usage` naming `what`.
fn to_i32(what: &str, x: usize) -> Result<i32> {
    i32::try_from(x).map_err(|_| Error::Usage(format!("{what} = {x} is larger than i32::MAX")))
}

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
pub fn bias_forward(g: &Gpu, out: Dev, bias: Dev, n: usize, oc: usize) -> Result<()> {
    let dt = float_dtype("bias_forward out", out)?;
    out.check("bias_forward out", n * oc, dt)?;
    bias.check("bias_forward bias", oc, dt)?;
    if n == 0 || oc == 0 {
        return Ok(());
    }
    let (n_i32, oc_i32) = (to_i32("bias_forward N", n)?, to_i32("bias_forward OC", oc)?);
    let block = column_block(oc);
    let cfg = LaunchConfig {
        grid_dim: (oc.div_ceil(block as usize) as u32, n.min(FORWARD_ROW_BLOCKS) as u32, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    };
    let f = g.kernel("bias_forward", dt)?;
    let mut b = g.builder(&f);
    b.arg(&out.ptr).arg(&bias.ptr).arg(&n_i32).arg(&oc_i32);
    // SAFETY: argument list matches bias_forward_<dtype>(T*, const T*, int, int); views checked
    // above to hold N·OC and OC elements.
    unsafe { launch(&mut b, cfg, "bias_forward") }
}

/// dbias (OC) f32 += Σ over rows of dout (N, OC) (activation dtype). Differentiates
/// `out = inp · w^T + bias`. Deterministic: per-block partial sums over fixed blocks of 64 rows
/// (more when N·OC is huge) in the GPU's scratch, then added in block order; bit-identical to
/// `cpu::ops::bias_backward` whenever ⌈N/64⌉·OC ≤ 2^24.
pub fn bias_backward(g: &Gpu, dbias: Dev, dout: Dev, n: usize, oc: usize) -> Result<()> {
    let dt = float_dtype("bias_backward dout", dout)?;
    dbias.check("bias_backward dbias", oc, Dtype::F32)?;
    dout.check("bias_backward dout", n * oc, dt)?;
    if n == 0 || oc == 0 {
        return Ok(());
    }
    let mut rows = REDUCE_ROWS;
    while n.div_ceil(rows) * oc > MAX_PARTIALS && rows < n {
        rows *= 2;
    }
    let blocks = n.div_ceil(rows);
    let block = column_block(oc);
    let col_blocks = oc.div_ceil(block as usize);
    if col_blocks > 65535 {
        return Err(Error::Usage(format!("bias_backward: OC = {oc} needs more than 65535 blocks of {block} columns")));
    }
    let (n_i32, oc_i32) = (to_i32("bias_backward N", n)?, to_i32("bias_backward OC", oc)?);
    let (rows_i32, blocks_i32) =
        (to_i32("bias_backward rows per block", rows)?, to_i32("bias_backward blocks", blocks)?);
    let partial = g.scratch(blocks * oc)?;

    let f = g.kernel("bias_backward_partial", dt)?;
    let cfg =
        LaunchConfig { grid_dim: (blocks as u32, col_blocks as u32, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
    let mut b = g.builder(&f);
    b.arg(&partial.ptr).arg(&dout.ptr).arg(&n_i32).arg(&oc_i32).arg(&rows_i32);
    // SAFETY: argument list matches bias_backward_partial_<dtype>(float*, const T*, int, int,
    // int); dout holds N·OC elements (checked), the scratch ⌈N/R⌉·OC floats.
    unsafe { launch(&mut b, cfg, "bias_backward_partial") }?;

    let f = g.func("bias_backward_reduce_f32")?;
    let cfg = LaunchConfig { grid_dim: (col_blocks as u32, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
    let mut b = g.builder(&f);
    b.arg(&dbias.ptr).arg(&partial.ptr).arg(&blocks_i32).arg(&oc_i32);
    // SAFETY: argument list matches bias_backward_reduce_f32(float*, const float*, int, int);
    // dbias holds OC floats (checked), the scratch blocks·OC partials written just above.
    unsafe { launch(&mut b, cfg, "bias_backward_reduce") }
}
