//! Matrix products through cuBLAS (`cublasGemmEx` / `cublasGemmStridedBatchedEx`), always with
//! f32 accumulation: the twin of `cpu::gemm::sgemm`. The linear layers built on it are
//! `ops::matmul`, as `cpu::ops::matmul_*` are built on `sgemm`.
//!
//! Everything is described row-major, as on the CPU: `out (M, N) = op(A) (M, K) · op(B) (K, N)`.
//! cuBLAS is column-major, so the call computes `out^T = op(B)^T · op(A)^T`, which is the same
//! memory. Operands are f32, bf16 or f16; the output may be f32 with bf16/f16 inputs (parameter
//! gradients accumulate into the f32 gradient buffer).

use super::api::GemmCall;
use super::device::{Dev, Dtype, Gpu};
use crate::{Error, Result};

/// A matrix operand: a device view, its leading dimension (row stride in elements), and whether
/// it is used transposed. The twin of `cpu::gemm::Mat`.
#[derive(Clone, Copy, Debug)]
pub struct DMat<'a> {
    /// The elements (row-major).
    pub dev: Dev<'a>,
    /// Row stride in elements.
    pub ld: usize,
    /// Use the transpose.
    pub trans: bool,
}

impl<'a> DMat<'a> {
    /// `dev` as stored.
    pub fn n(dev: Dev<'a>, ld: usize) -> Self {
        DMat { dev, ld, trans: false }
    }
    /// The transpose of `dev`.
    pub fn t(dev: Dev<'a>, ld: usize) -> Self {
        DMat { dev, ld, trans: true }
    }
}

/// A batch of equally spaced products: `count` of them, consecutive operands `a`, `b` and
/// outputs `c` elements apart. `Strides::ONE` is a single product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    /// Number of products.
    pub count: usize,
    /// Elements between consecutive A operands.
    pub a: usize,
    /// Elements between consecutive B operands.
    pub b: usize,
    /// Elements between consecutive outputs.
    pub c: usize,
}

impl Strides {
    /// One product.
    pub const ONE: Strides = Strides { count: 1, a: 0, b: 0, c: 0 };
}

/// The column-major cuBLAS product that computes a row-major `gemm`: row-major
/// `out = op(A) · op(B)` is column-major `out^T = op(B)^T · op(A)^T` in the same memory, so
/// cuBLAS's first operand is the row-major B, its second the row-major A, and M and N swap.
/// Fields are cublasGemmEx's (strides: cublasGemmStridedBatchedEx's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CublasGemm {
    /// Transpose of cuBLAS's A (the row-major B).
    pub transa: bool,
    /// Transpose of cuBLAS's B (the row-major A).
    pub transb: bool,
    /// Rows of cuBLAS's output (= N).
    pub m: usize,
    /// Columns of cuBLAS's output (= M).
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Leading dimension of cuBLAS's A.
    pub lda: usize,
    /// Leading dimension of cuBLAS's B.
    pub ldb: usize,
    /// Leading dimension of the output.
    pub ldc: usize,
    /// Stride between cuBLAS's A operands.
    pub stride_a: usize,
    /// Stride between cuBLAS's B operands.
    pub stride_b: usize,
    /// Stride between outputs.
    pub stride_c: usize,
}

/// The cuBLAS arguments of the row-major product out (M, N) = op(A) (M, K) · op(B) (K, N):
/// A used transposed when `a_trans`, with row stride `a_ld` (likewise B), out with `ldo`.
pub fn cublas_gemm_args(
    m: usize,
    n: usize,
    k: usize,
    ldo: usize,
    (a_trans, a_ld): (bool, usize),
    (b_trans, b_ld): (bool, usize),
    batch: Strides,
) -> CublasGemm {
    CublasGemm {
        transa: b_trans,
        transb: a_trans,
        m: n,
        n: m,
        k,
        lda: b_ld,
        ldb: a_ld,
        ldc: ldo,
        stride_a: batch.b,
        stride_b: batch.a,
        stride_c: batch.c,
    }
}

/// out (M, N) = alpha · op(A) (M, K) · op(B) (K, N) + beta · out, row-major with leading
/// dimension `ldo`, for each product of `batch`. A and B share a dtype; out has theirs or f32.
pub fn gemm(
    g: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    out: Dev,
    ldo: usize,
    a: DMat,
    b: DMat,
    alpha: f32,
    beta: f32,
    batch: Strides,
) -> Result<()> {
    if a.dev.dtype != b.dev.dtype || !(out.dtype == a.dev.dtype || out.dtype == Dtype::F32) {
        return Err(Error::Usage(format!(
            "gemm: operands {:?} × {:?} into {:?} are not a supported combination",
            a.dev.dtype, b.dev.dtype, out.dtype
        )));
    }
    if m == 0 || n == 0 || batch.count == 0 {
        return Ok(());
    }
    // Bounds: the last element each operand can touch must lie inside its view.
    let span = |rows: usize, cols: usize, ld: usize| (rows - 1) * ld + cols;
    let (ar, ac) = if a.trans { (k, m) } else { (m, k) };
    let (br, bc) = if b.trans { (n, k) } else { (k, n) };
    let last = batch.count - 1;
    if k > 0 {
        a.dev.check("gemm A", last * batch.a + span(ar, ac, a.ld), a.dev.dtype)?;
        b.dev.check("gemm B", last * batch.b + span(br, bc, b.ld), b.dev.dtype)?;
    }
    out.check("gemm out", last * batch.c + span(m, n, ldo), out.dtype)?;
    if !a.dev.dtype.is_float() {
        return Err(Error::Usage(format!("gemm on {:?} operands", a.dev.dtype)));
    }
    let cm = cublas_gemm_args(m, n, k, ldo, (a.trans, a.ld), (b.trans, b.ld), batch);
    // cuBLAS's A is the row-major B and its B the row-major A (see `CublasGemm`).
    let call = GemmCall {
        args: cm,
        a: b.dev.ptr,
        b: a.dev.ptr,
        c: out.ptr,
        ab: a.dev.dtype,
        out: out.dtype,
        alpha,
        beta,
        batch: batch.count,
    };
    // SAFETY: every operand is a live device view checked above to cover the elements the
    // product reads or writes.
    unsafe { g.gemm_call(&call) }
}
