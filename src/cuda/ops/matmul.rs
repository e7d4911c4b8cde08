//! Linear layers on the GPU: `out = inp · Wᵀ + bias` and its backward, a cuBLAS GEMM
//! ([`crate::cuda::gemm`], f32 accumulation) followed by the bias kernel. The twins of
//! `cpu::ops::matmul_forward`, `matmul_forward_t` and `matmul_backward`.

use super::bias::{bias_backward, bias_forward};
use crate::cuda::device::{Dev, Gpu};
use crate::cuda::gemm::{gemm, DMat, Strides};
use crate::Result;

/// out (N, OC) = inp (N, C) · w (OC, C)^T + bias (OC). The twin of `cpu::ops::matmul_forward`.
pub fn matmul_forward(
    g: &Gpu,
    out: Dev,
    inp: Dev,
    w: Dev,
    bias: Option<Dev>,
    n: usize,
    c: usize,
    oc: usize,
) -> Result<()> {
    linear_forward(g, out, inp, DMat::t(w, c), bias, n, c, oc)
}

/// out (N, OC) = inp (N, C) · wt (C, OC) + bias: weights stored (in, out), as
/// `cpu::ops::matmul_forward_t`.
pub fn matmul_forward_t(
    g: &Gpu,
    out: Dev,
    inp: Dev,
    wt: Dev,
    bias: Option<Dev>,
    n: usize,
    c: usize,
    oc: usize,
) -> Result<()> {
    linear_forward(g, out, inp, DMat::n(wt, oc), bias, n, c, oc)
}

/// out (N, OC) = inp (N, C) · op(W) (C, OC) + bias, either weight layout.
fn linear_forward(
    g: &Gpu,
    out: Dev,
    inp: Dev,
    w: DMat,
    bias: Option<Dev>,
    n: usize,
    c: usize,
    oc: usize,
) -> Result<()> {
    gemm(g, n, oc, c, out, oc, DMat::n(inp, c), w, 1.0, 0.0, Strides::ONE)?;
    match bias {
        Some(b) => bias_forward(g, out, b, n, oc),
        None => Ok(()),
    }
}

/// dinp (N, C) = dout · w (overwritten); dw (OC, C) f32 += dout^T · inp; dbias (OC) f32 +=
/// Σ_rows dout. Differentiates `out = inp · w^T + bias` (`cpu::ops::matmul_backward`).
pub fn matmul_backward(
    g: &Gpu,
    dinp: Dev,
    dw: Dev,
    dbias: Option<Dev>,
    dout: Dev,
    inp: Dev,
    w: Dev,
    n: usize,
    c: usize,
    oc: usize,
) -> Result<()> {
    gemm(g, n, c, oc, dinp, c, DMat::n(dout, oc), DMat::n(w, c), 1.0, 0.0, Strides::ONE)?;
    gemm(g, oc, c, n, dw, c, DMat::t(dout, oc), DMat::n(inp, c), 1.0, 1.0, Strides::ONE)?;
    if let Some(db) = dbias {
        bias_backward(g, db, dout, n, oc)?;
    }
    Ok(())
}
