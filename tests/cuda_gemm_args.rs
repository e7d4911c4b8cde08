//! The row-major → column-major translation of `cuda::gemm`, checked without a GPU: the
//! arguments `cublas_gemm_args` gives cuBLAS are fed to a host model of cublasGemmEx /
//! cublasGemmStridedBatchedEx (column-major, as its documentation defines it), which must
//! reproduce the row-major product computed directly, for every transpose combination, padded
//! leading dimensions and batches.

use xlt::cuda::gemm::{cublas_gemm_args, CublasGemm, Strides};
use xlt::rng::Rng;

/// cuBLAS's definition: C (m × n, column-major, ldc) = alpha · op(A) · op(B) + beta · C, where
/// op(A) is m × k (A stored k × m when transposed), op(B) k × n; batch i offsets by the strides.
fn cublas_model(g: &CublasGemm, count: usize, alpha: f32, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    for bi in 0..count {
        let (a, b) = (&a[bi * g.stride_a..], &b[bi * g.stride_b..]);
        let c = &mut c[bi * g.stride_c..];
        for j in 0..g.n {
            for i in 0..g.m {
                let mut acc = 0.0f64;
                for p in 0..g.k {
                    // column-major element (r, col) of a matrix with leading dimension ld: r + col·ld
                    let av = if g.transa { a[p + i * g.lda] } else { a[i + p * g.lda] };
                    let bv = if g.transb { b[j + p * g.ldb] } else { b[p + j * g.ldb] };
                    acc += av as f64 * bv as f64;
                }
                let ci = i + j * g.ldc;
                c[ci] = (alpha as f64 * acc + beta as f64 * c[ci] as f64) as f32;
            }
        }
    }
}

/// Row-major reference: out (M, N) = alpha · op(A) · op(B) + beta · out.
#[allow(clippy::too_many_arguments)]
fn row_major(
    (m, n, k): (usize, usize, usize),
    (a, a_trans, a_ld): (&[f32], bool, usize),
    (b, b_trans, b_ld): (&[f32], bool, usize),
    out: &mut [f32],
    ldo: usize,
    alpha: f32,
    beta: f32,
    batch: Strides,
) {
    for bi in 0..batch.count {
        let (a, b) = (&a[bi * batch.a..], &b[bi * batch.b..]);
        let out = &mut out[bi * batch.c..];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for p in 0..k {
                    let av = if a_trans { a[p * a_ld + i] } else { a[i * a_ld + p] };
                    let bv = if b_trans { b[j * b_ld + p] } else { b[p * b_ld + j] };
                    acc += av as f64 * bv as f64;
                }
                let o = &mut out[i * ldo + j];
                *o = (alpha as f64 * acc + beta as f64 * *o as f64) as f32;
            }
        }
    }
}

#[test]
fn cublas_arguments_reproduce_the_row_major_product() {
    let mut r = Rng::new(5);
    let mut cases = 0;
    for (m, n, k) in [(7, 5, 3), (1, 9, 4), (6, 1, 8), (4, 4, 1)] {
        for a_trans in [false, true] {
            for b_trans in [false, true] {
                for count in [1, 3] {
                    let (ar, ac) = if a_trans { (k, m) } else { (m, k) };
                    let (br, bc) = if b_trans { (n, k) } else { (k, n) };
                    // padded leading dimensions and gaps between the batch's matrices
                    let (a_ld, b_ld, ldo) = (ac + 2, bc + 1, n + 3);
                    let batch = Strides { count, a: ar * a_ld + 5, b: br * b_ld + 2, c: m * ldo + 4 };
                    let fill = |len: usize, r: &mut Rng| (0..len).map(|_| r.next_f32() - 0.5).collect::<Vec<f32>>();
                    let a = fill(batch.a * count + ar * a_ld, &mut r);
                    let b = fill(batch.b * count + br * b_ld, &mut r);
                    let out0 = fill(batch.c * count + m * ldo, &mut r);
                    let (alpha, beta) = (0.75, 0.5);
                    let mut want = out0.clone();
                    row_major((m, n, k), (&a, a_trans, a_ld), (&b, b_trans, b_ld), &mut want, ldo, alpha, beta, batch);
                    let g = cublas_gemm_args(m, n, k, ldo, (a_trans, a_ld), (b_trans, b_ld), batch);
                    let mut got = out0.clone();
                    // cuBLAS's first operand is the row-major B, its second the row-major A
                    cublas_model(&g, count, alpha, &b, &a, beta, &mut got);
                    let what = format!("m={m} n={n} k={k} a_trans={a_trans} b_trans={b_trans} count={count}");
                    for (i, (x, y)) in got.iter().zip(&want).enumerate() {
                        assert!((x - y).abs() <= 1e-6, "{what}: element {i}: {x} vs {y}");
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 32);
}
