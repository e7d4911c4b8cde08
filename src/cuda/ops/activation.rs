//! The element-wise activations on the GPU (kernels/gelu.cu): exact GELU for the feed-forward
//! layers and tanh for the classification head's pooler, forward and backward; the twins of
//! `cpu::ops::gelu_forward`, `gelu_backward`, `tanh_forward` and `tanh_backward`.

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

/// Checks the element-wise arguments of `op`: `main` decides the dtype (a float type), every
/// view in `views` holds `n` elements of it. Returns the dtype and `n` as a kernel int.
fn checked(op: &str, main: Dev, views: &[(&str, Dev)], n: usize) -> Result<(Dtype, i32)> {
    let x = main.dtype;
    if !x.is_float() {
        return Err(Error::Usage(format!("{op}: expected float views, got {x:?}")));
    }
    for (name, v) in views {
        v.check(&format!("{op} {name}"), n, x)?;
    }
    let n_i32 = i32::try_from(n)
        .map_err(|_| Error::Usage(format!("{op}: N = {n} is more than a CUDA kernel's int can index")))?;
    Ok((x, n_i32))
}

/// out (N) = 0.5 x (1 + erf(x / sqrt 2)) of inp (N): exact GELU as HF `hidden_act: gelu`.
pub fn gelu_forward(g: &Gpu, out: Dev, inp: Dev, n: usize) -> Result<()> {
    let (x, n_i32) = checked("gelu_forward", inp, &[("out", out), ("inp", inp)], n)?;
    if n == 0 {
        return Ok(());
    }
    let f = g.kernel("gelu_forward", x)?;
    let mut b = g.builder(&f);
    b.arg(&out.ptr).arg(&inp.ptr).arg(&n_i32);
    // SAFETY: argument list matches gelu_forward_<T>(T*, const T*, int); both views hold N
    // elements of T (checked above).
    unsafe { launch(&mut b, elementwise_cfg(g, n), "gelu_forward") }
}

/// dinp (N) = dout (N) · GELU'(inp (N)) (overwritten).
/// Differentiates `out = 0.5 x (1 + erf(x/√2))`: GELU'(x) = Φ(x) + x φ(x).
pub fn gelu_backward(g: &Gpu, dinp: Dev, inp: Dev, dout: Dev, n: usize) -> Result<()> {
    let (x, n_i32) = checked("gelu_backward", inp, &[("dinp", dinp), ("inp", inp), ("dout", dout)], n)?;
    if n == 0 {
        return Ok(());
    }
    let f = g.kernel("gelu_backward", x)?;
    let mut b = g.builder(&f);
    b.arg(&dinp.ptr).arg(&inp.ptr).arg(&dout.ptr).arg(&n_i32);
    // SAFETY: argument list matches gelu_backward_<T>(T*, const T*, const T*, int); the three
    // views hold N elements of T (checked above).
    unsafe { launch(&mut b, elementwise_cfg(g, n), "gelu_backward") }
}

/// out (N) = tanh(inp (N)).
pub fn tanh_forward(g: &Gpu, out: Dev, inp: Dev, n: usize) -> Result<()> {
    let (x, n_i32) = checked("tanh_forward", inp, &[("out", out), ("inp", inp)], n)?;
    if n == 0 {
        return Ok(());
    }
    let f = g.kernel("tanh_forward", x)?;
    let mut b = g.builder(&f);
    b.arg(&out.ptr).arg(&inp.ptr).arg(&n_i32);
    // SAFETY: argument list matches tanh_forward_<T>(T*, const T*, int); both views hold N
    // elements of T (checked above).
    unsafe { launch(&mut b, elementwise_cfg(g, n), "tanh_forward") }
}

/// dinp (N) = dout (N) · (1 - out²) (overwritten), out (N) the forward's output.
/// Differentiates `out = tanh(inp)`.
pub fn tanh_backward(g: &Gpu, dinp: Dev, out: Dev, dout: Dev, n: usize) -> Result<()> {
    let (x, n_i32) = checked("tanh_backward", out, &[("dinp", dinp), ("out", out), ("dout", dout)], n)?;
    if n == 0 {
        return Ok(());
    }
    let f = g.kernel("tanh_backward", x)?;
    let mut b = g.builder(&f);
    b.arg(&dinp.ptr).arg(&out.ptr).arg(&dout.ptr).arg(&n_i32);
    // SAFETY: argument list matches tanh_backward_<T>(T*, const T*, const T*, int); the three
    // views hold N elements of T (checked above).
    unsafe { launch(&mut b, elementwise_cfg(g, n), "tanh_backward") }
}
