//! Safe single-precision GEMM over row-major slices, backed by the `gemm` crate.
//!
//! `sgemm` follows BLAS conventions on row-major storage: C (m, n) = op(A) (m, k) · op(B) (k, n),
//! where op transposes when asked; `lda`/`ldb`/`ldc` are row strides in elements, so a head's
//! slice of the fused (B, T, 3C) qkv buffer can be used in place.

use gemm::Parallelism;
use std::cell::Cell;

thread_local! {
    /// Set inside [`serial_scope`]: `Par::Pool` GEMMs issued from this thread run serially.
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every GEMM it issues from this thread kept on this thread. For callers that
/// already run independent work items in parallel (one batch per thread).
pub fn serial_scope<R>(f: impl FnOnce() -> R) -> R {
    let prev = SERIAL.with(|s| s.replace(true));
    let r = f();
    SERIAL.with(|s| s.set(prev));
    r
}

/// Whether to let the GEMM spread over the rayon pool (large products) or run on the calling
/// thread (small products inside an outer parallel loop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Par {
    /// Use every thread of the current rayon pool.
    Pool,
    /// Run on the calling thread only.
    Serial,
}

/// A row-major matrix operand: `data[i * ld + j]` is element (i, j) of the stored matrix.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    /// Backing storage.
    pub data: &'a [f32],
    /// Row stride in elements.
    pub ld: usize,
    /// Use the transpose of the stored matrix.
    pub trans: bool,
}

impl<'a> Mat<'a> {
    /// A matrix used as stored.
    pub fn n(data: &'a [f32], ld: usize) -> Self {
        Mat { data, ld, trans: false }
    }
    /// A matrix used transposed.
    pub fn t(data: &'a [f32], ld: usize) -> Self {
        Mat { data, ld, trans: true }
    }
    /// (row stride, column stride) of op(self) and the element span needed for a (rows, cols)
    /// op(self).
    fn strides(&self, rows: usize, cols: usize) -> (isize, isize, usize) {
        let (stored_rows, stored_cols) = if self.trans { (cols, rows) } else { (rows, cols) };
        let span = if stored_rows == 0 || stored_cols == 0 { 0 } else { (stored_rows - 1) * self.ld + stored_cols };
        assert!(stored_cols <= self.ld || stored_rows <= 1, "leading dimension {} < columns {}", self.ld, stored_cols);
        if self.trans {
            (1, self.ld as isize, span)
        } else {
            (self.ld as isize, 1, span)
        }
    }
}

/// C (m, n) = op(A) · op(B), or C += op(A) · op(B) when `accumulate`. `ldc` is C's row stride.
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    ldc: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    par: Par,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (a_rs, a_cs, a_span) = a.strides(m, k);
    let (b_rs, b_cs, b_span) = b.strides(k, n);
    // Bounds are checked here once so the raw-pointer call below stays in range.
    assert!(a.data.len() >= a_span && b.data.len() >= b_span, "GEMM operand too small");
    assert!(n <= ldc && c.len() >= (m - 1) * ldc + n, "GEMM output too small");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = match par {
        Par::Pool if rayon::current_num_threads() > 1 && !SERIAL.with(Cell::get) => Parallelism::Rayon(0),
        _ => Parallelism::None,
    };
    // SAFETY: the asserts above bound every index the kernel touches: op(A) is (m, k) within
    // a.data, op(B) is (k, n) within b.data, C is (m, n) with row stride ldc within c. C does not
    // alias A or B (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], ta: bool, b: &[f32], tb: bool) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    s += av as f64 * bv as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn all_transpose_combinations_match_naive() {
        let (m, n, k) = (37, 29, 41);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 97) as f32 / 48.0 - 1.0).collect();
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let want = naive(m, n, k, &a, ta, &b, tb);
            let am = if ta { Mat::t(&a, m) } else { Mat::n(&a, k) };
            let bm = if tb { Mat::t(&b, k) } else { Mat::n(&b, n) };
            let mut c = vec![1.0; m * n];
            sgemm(m, n, k, &mut c, n, am, bm, true, Par::Pool);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - (y + 1.0)).abs() < 1e-4, "ta={ta} tb={tb}: {x} vs {}", y + 1.0);
            }
            sgemm(m, n, k, &mut c, n, am, bm, false, Par::Serial);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-4);
            }
        }
    }
}
