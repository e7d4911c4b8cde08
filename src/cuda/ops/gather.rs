//! Row gathers and scatters between (N, C) and compact (M, C) tensors: the first token of each
//! sequence for the classification heads, the masked positions for MLM. On the CPU these are
//! plain slice copies inside the heads.

use crate::cuda::device::{grid_1d, launch, Dev, Dtype, Gpu};
use crate::{Error, Result};
use cudarc::driver::PushKernelArg;

fn check_rows(what: &str, rows: Dev, m: usize, c: usize) -> Result<(i32, i32)> {
    rows.check(what, m, Dtype::U32)?;
    let big = |_| Error::Usage(format!("{what}: {m} rows × {c} channels is too large"));
    Ok((i32::try_from(m).map_err(big)?, i32::try_from(c).map_err(big)?))
}

/// out (M, C) = inp[rows] (N, C); rows (M) u32, each < N (the caller builds them on the host).
pub fn gather_rows(g: &Gpu, out: Dev, inp: Dev, rows: Dev, m: usize, n: usize, c: usize) -> Result<()> {
    let (m32, c32) = check_rows("gather_rows rows", rows, m, c)?;
    out.check("gather_rows out", m * c, inp.dtype)?;
    inp.check("gather_rows inp", n * c, inp.dtype)?;
    if m == 0 {
        return Ok(());
    }
    let f = g.kernel("gather_rows", inp.dtype)?;
    let mut b = g.builder(&f);
    b.arg(&out.ptr).arg(&inp.ptr).arg(&rows.ptr).arg(&m32).arg(&c32);
    // SAFETY: (out, inp, rows, m, c) is the kernel's signature; views checked above.
    unsafe { launch(&mut b, grid_1d((m * c).min(1 << 24), 256), "gather_rows") }
}

/// out[rows] (N, C) = inp (M, C); other rows of out are left as they are. Differentiates
/// `out = inp[rows]` when out starts zeroed and rows are distinct.
pub fn scatter_rows(g: &Gpu, out: Dev, inp: Dev, rows: Dev, m: usize, n: usize, c: usize) -> Result<()> {
    let (m32, c32) = check_rows("scatter_rows rows", rows, m, c)?;
    out.check("scatter_rows out", n * c, inp.dtype)?;
    inp.check("scatter_rows inp", m * c, inp.dtype)?;
    if m == 0 {
        return Ok(());
    }
    let f = g.kernel("scatter_rows", inp.dtype)?;
    let mut b = g.builder(&f);
    b.arg(&out.ptr).arg(&inp.ptr).arg(&rows.ptr).arg(&m32).arg(&c32);
    // SAFETY: (out, inp, rows, m, c) is the kernel's signature; views checked above.
    unsafe { launch(&mut b, grid_1d((m * c).min(1 << 24), 256), "scatter_rows") }
}
