//! LayerNorm on the GPU (kernels/layernorm.cu): the twins of `cpu::ops::layernorm_forward` and
//! `cpu::ops::layernorm_backward`. Statistics (mean, rstd) and the parameter gradients are f32
//! whatever the activation dtype; dw and db are reduced deterministically (per-block partials in
//! the GPU's scratch area, added in block order by a second kernel).

use crate::cuda::device::{grid_1d, grid_blocks, launch, Dev, Dtype, Gpu};
use crate::{Error, Result};
use cudarc::driver::PushKernelArg;

/// Threads per block of the forward: one warp per row, so 8 rows per block.
const FORWARD_BLOCK: u32 = 256;
/// Most threads per block of the backward (a block walks its rows, each thread owning channels
/// j ≡ threadIdx (mod block)).
const BACKWARD_BLOCK: usize = 256;
/// Backward blocks per SM aimed at (the row chunks are sized so the grid has about this many
/// blocks per SM; the partials grow with it).
const BACKWARD_BLOCKS_PER_SM: usize = 4;
/// Dynamic shared memory a backward block may use without opting in (bytes): 48 KiB less the
/// kernel's static 32 × float2 reduction buffer.
const MAX_SHARED: usize = (48 << 10) - 256;

/// `x` as a kernel `int`, or an error naming `what`.
fn int(what: &str, x: usize) -> Result<i32> {
    i32::try_from(x).map_err(|_| Error::Usage(format!("{what}: {x} is more than a CUDA kernel's int can index")))
}

/// out (N, C) = (inp - mean) * rstd * w + b, in the dtype of inp (N, C); w, b (C) in the same
/// dtype; saves mean (N) and rstd (N) in f32 for the backward. One warp per row, two passes
/// (the mean, then the variance of the centred values) as on the CPU.
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
    let x = inp.dtype;
    if !x.is_float() {
        return Err(Error::Usage(format!("layernorm_forward inp: expected a float view, got {x:?}")));
    }
    out.check("layernorm_forward out", n * c, x)?;
    mean.check("layernorm_forward mean", n, Dtype::F32)?;
    rstd.check("layernorm_forward rstd", n, Dtype::F32)?;
    inp.check("layernorm_forward inp", n * c, x)?;
    w.check("layernorm_forward w", c, x)?;
    b.check("layernorm_forward b", c, x)?;
    int("layernorm_forward N·C", n * c)?;
    if n == 0 {
        return Ok(());
    }
    if c == 0 {
        return Err(Error::Usage("layernorm_forward: C = 0 channels".into()));
    }
    let (n_i32, c_i32) = (int("layernorm_forward N", n)?, int("layernorm_forward C", c)?);
    let rows_per_block = FORWARD_BLOCK as usize / 32;
    let cfg = grid_blocks(n.div_ceil(rows_per_block), FORWARD_BLOCK, 0);
    let f = g.kernel("layernorm_forward", x)?;
    let mut l = g.builder(&f);
    l.arg(&out.ptr).arg(&mean.ptr).arg(&rstd.ptr).arg(&inp.ptr).arg(&w.ptr).arg(&b.ptr);
    l.arg(&n_i32).arg(&c_i32).arg(&eps);
    // SAFETY: argument list matches layernorm_forward_<T>(T*, float*, float*, T*, T*, T*, int, int,
    // float); out/inp hold N·C, mean/rstd N, w/b C elements (checked above).
    unsafe { launch(&mut l, cfg, "layernorm_forward") }
}

/// dinp (N, C) = dL/dinp (overwritten); dw, db (C) f32 accumulate (`+=`); dout, inp (N, C) and
/// w (C) in the activation dtype, mean, rstd (N) f32 from the forward.
/// Differentiates `out = (inp - mean) * rstd * w + b`.
///
/// Deterministic: each block handles a fixed chunk of rows and writes its dw/db partial sums to
/// the scratch area; a second kernel adds them in block order. The chunking depends only on N and
/// the GPU's SM count, so reruns on one GPU are bit-identical.
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
    let x = inp.dtype;
    if !x.is_float() {
        return Err(Error::Usage(format!("layernorm_backward inp: expected a float view, got {x:?}")));
    }
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
        return Ok(());
    }
    let shared = 2 * c * 4;
    if shared > MAX_SHARED {
        return Err(Error::Usage(format!(
            "layernorm_backward: C = {c} needs {shared} bytes of shared memory per block, more than {MAX_SHARED}"
        )));
    }
    let (n_i32, c_i32) = (int("layernorm_backward N", n)?, int("layernorm_backward C", c)?);
    int("layernorm_backward 2C", 2 * c)?;
    // Rows per block so the grid has about BACKWARD_BLOCKS_PER_SM blocks per SM, then the number
    // of blocks that chunking needs (no empty blocks).
    let target = (g.sm_count.max(1) * BACKWARD_BLOCKS_PER_SM).min(n);
    let rows_per_block = n.div_ceil(target);
    let blocks = n.div_ceil(rows_per_block);
    let (rpb_i32, blocks_i32) = (int("rows per block", rows_per_block)?, int("blocks", blocks)?);
    let threads = c.next_multiple_of(32).min(BACKWARD_BLOCK) as u32;
    let partial = g.scratch(blocks * 2 * c)?;

    let f = g.kernel("layernorm_backward", x)?;
    let mut l = g.builder(&f);
    l.arg(&dinp.ptr).arg(&partial.ptr).arg(&dout.ptr).arg(&inp.ptr).arg(&mean.ptr).arg(&rstd.ptr).arg(&w.ptr);
    l.arg(&n_i32).arg(&c_i32).arg(&rpb_i32);
    // SAFETY: argument list matches layernorm_backward_<T>(T*, float*, T*, T*, float*, float*, T*,
    // int, int, int); dinp/dout/inp hold N·C, mean/rstd N, w C elements (checked above), the
    // scratch blocks·2C floats, and the dynamic shared memory is the 2C floats the kernel uses.
    unsafe { launch(&mut l, grid_blocks(blocks, threads, shared as u32), "layernorm_backward")? };

    let f = g.kernel("layernorm_backward_reduce", Dtype::F32)?;
    let mut l = g.builder(&f);
    l.arg(&dw.ptr).arg(&db.ptr).arg(&partial.ptr).arg(&blocks_i32).arg(&c_i32);
    // SAFETY: argument list matches layernorm_backward_reduce_f32(float*, float*, float*, int, int);
    // dw/db hold C floats, the scratch the blocks·2C partials written just above; one thread
    // per element of [dw | db] (2C threads).
    unsafe { launch(&mut l, grid_1d(2 * c, 256), "layernorm_backward_reduce") }
}
