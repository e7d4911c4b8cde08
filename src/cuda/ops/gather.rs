//! Row gathers and scatters between (N, C) and compact (M, C) tensors: the first token of each
//! sequence for the classification heads, the masked positions for MLM. On the CPU these are
//! plain slice copies inside the heads.

use crate::cuda::device::{Dev, Dtype, Gpu};
use crate::cuda::kernels::Kernel;
use crate::cuda::launch::{grid, int, stride_blocks, KArg, Launch};
use crate::Result;

/// Threads per block.
const BLOCK: u32 = 256;

/// The plan of a gather or scatter: `dst` and `src` hold (rows_dst, C) and (rows_src, C).
fn plan(
    k: Kernel,
    out: Dev,
    inp: Dev,
    rows: Dev,
    m: usize,
    out_rows: usize,
    inp_rows: usize,
    c: usize,
) -> Result<Option<Launch>> {
    let op = k.base_name();
    rows.check(&format!("{op} rows"), m, Dtype::U32)?;
    out.check(&format!("{op} out"), out_rows * c, inp.dtype)?;
    inp.check(&format!("{op} inp"), inp_rows * c, inp.dtype)?;
    let (m_i32, c_i32) = (int(&format!("{op} M"), m)?, int(&format!("{op} C"), c)?);
    int(&format!("{op} M·C"), m * c)?;
    if m == 0 || c == 0 {
        return Ok(None);
    }
    let args = [KArg::ptr(out), KArg::ptr(inp), KArg::ptr(rows), KArg::I32(m_i32), KArg::I32(c_i32)];
    Launch::new(k, inp.dtype, grid([stride_blocks(m * c, BLOCK), 1, 1], BLOCK, 0)?, &args).map(Some)
}

/// out (M, C) = inp[rows] (N, C); rows (M) u32, each < N (the caller builds them on the host).
pub fn gather_rows_plan(out: Dev, inp: Dev, rows: Dev, m: usize, n: usize, c: usize) -> Result<Option<Launch>> {
    plan(Kernel::GatherRows, out, inp, rows, m, m, n, c)
}

/// out[rows] (N, C) = inp (M, C); other rows of out are left as they are. Differentiates
/// `out = inp[rows]` when out starts zeroed and rows are distinct.
pub fn scatter_rows_plan(out: Dev, inp: Dev, rows: Dev, m: usize, n: usize, c: usize) -> Result<Option<Launch>> {
    plan(Kernel::ScatterRows, out, inp, rows, m, n, m, c)
}

/// Row gather on the GPU (see [`gather_rows_plan`]).
pub fn gather_rows(g: &Gpu, out: Dev, inp: Dev, rows: Dev, m: usize, n: usize, c: usize) -> Result<()> {
    g.run(gather_rows_plan(out, inp, rows, m, n, c)?)
}

/// Row scatter on the GPU (see [`scatter_rows_plan`]).
pub fn scatter_rows(g: &Gpu, out: Dev, inp: Dev, rows: Dev, m: usize, n: usize, c: usize) -> Result<()> {
    g.run(scatter_rows_plan(out, inp, rows, m, n, c)?)
}
