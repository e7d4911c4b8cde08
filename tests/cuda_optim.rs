//! GPU parity tests of the linear layers and the optimizer step: the bias kernels, the cuBLAS
//! products of `cuda::gemm` (single and batched, with transposes), AdamW, the global gradient
//! norm and clipping, the mixed-precision casts and the non-finite count, each against its CPU
//! twin in `cpu::ops` (or a host loop). Without a GPU every test prints a skip line and passes.

use xlt::cpu::ops as cpu;
use xlt::cuda::gemm::{self, DMat, Strides};
use xlt::cuda::ops;
use xlt::cuda::testing::{assert_close, gpu_or_skip, rand_vec, round_to, tolerance};
use xlt::cuda::{Buf, Dtype, Gpu};
use xlt::model::AdamWConfig;

const DTYPES: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];

fn up(g: &Gpu, v: &[f32], d: Dtype) -> Buf {
    g.upload_f32(v, d, "test input").unwrap()
}

fn read(g: &Gpu, b: &Buf) -> Vec<f32> {
    g.read_f32(b.dev()).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// How many elements differ in their bits (for information: several ops are bit-identical to
/// the CPU by construction, the assertions only ask for a tight tolerance).
fn bit_mismatches(a: &[f32], b: &[f32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count()
}

const SHAPES: [(usize, usize, usize); 3] = [(7, 40, 120), (511, 768, 40), (1, 40, 3)];

// ---------------------------------------------------------------------------------------------
// bias

#[test]
fn bias_forward_matches_cpu() {
    let Some(g) = gpu_or_skip("bias_forward_matches_cpu") else { return };
    for d in DTYPES {
        for oc in [40, 768] {
            for n in [1, 7, 511] {
                let out0 = round_to(&rand_vec(n * oc, 2.0, 1 + n as u64), d);
                let bias = round_to(&rand_vec(oc, 1.0, 2 + oc as u64), d);
                let out = up(&g, &out0, d);
                let b = up(&g, &bias, d);
                ops::bias_forward(&g, out.dev(), b.dev(), n, oc).unwrap();
                let want: Vec<f32> = out0.iter().enumerate().map(|(i, x)| x + bias[i % oc]).collect();
                assert_close(&format!("bias_forward {d:?} N={n} OC={oc}"), &read(&g, &out), &want, tolerance(d));
            }
        }
    }
}

#[test]
fn bias_backward_matches_cpu_and_is_deterministic() {
    let Some(g) = gpu_or_skip("bias_backward_matches_cpu_and_is_deterministic") else { return };
    for d in DTYPES {
        for oc in [40, 768] {
            for n in [1, 7, 511] {
                let dout = round_to(&rand_vec(n * oc, 1.0, 10 + n as u64), d);
                let db0 = rand_vec(oc, 1.0, 11 + oc as u64);
                let mut want = db0.clone();
                cpu::bias_backward(&mut want, &dout, n, oc);
                let dout_g = up(&g, &dout, d);
                let runs: Vec<Vec<f32>> = (0..2)
                    .map(|_| {
                        let db = up(&g, &db0, Dtype::F32);
                        ops::bias_backward(&g, db.dev(), dout_g.dev(), n, oc).unwrap();
                        read(&g, &db)
                    })
                    .collect();
                let what = format!("bias_backward {d:?} N={n} OC={oc}");
                // The same f32 additions in the same order as the CPU (blocks of 64 rows): the
                // sums should agree to the bit; 1e-6 leaves room only for a rounding or two.
                assert_close(&what, &runs[0], &want, 1e-6);
                assert_eq!(bits(&runs[0]), bits(&runs[1]), "{what}: two runs differ");
                let k = bit_mismatches(&runs[0], &want);
                if k > 0 {
                    eprintln!("note: {what}: {k} of {oc} sums differ in bits from the CPU's");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// linear layers (src/cuda/ops/matmul.rs over src/cuda/gemm.rs)

#[test]
fn matmul_forward_matches_cpu() {
    let Some(g) = gpu_or_skip("matmul_forward_matches_cpu") else { return };
    for d in DTYPES {
        for (n, c, oc) in SHAPES {
            for with_bias in [true, false] {
                let inp = round_to(&rand_vec(n * c, 1.0, 20 + n as u64), d);
                let w = round_to(&rand_vec(oc * c, 1.0, 21 + oc as u64), d);
                let bias = round_to(&rand_vec(oc, 1.0, 22), d);
                let mut want = vec![0.0; n * oc];
                cpu::matmul_forward(&mut want, &inp, &w, with_bias.then_some(&bias[..]), n, c, oc);
                let (inp_g, w_g, b_g) = (up(&g, &inp, d), up(&g, &w, d), up(&g, &bias, d));
                // Garbage in out: the forward overwrites it.
                let out = up(&g, &rand_vec(n * oc, 5.0, 23), d);
                let bias_dev = with_bias.then(|| b_g.dev());
                ops::matmul_forward(&g, out.dev(), inp_g.dev(), w_g.dev(), bias_dev, n, c, oc).unwrap();
                let what = format!("matmul_forward {d:?} (N, C, OC) = ({n}, {c}, {oc}) bias {with_bias}");
                assert_close(&what, &read(&g, &out), &want, tolerance(d));
            }
        }
    }
}

#[test]
fn matmul_forward_t_matches_cpu() {
    let Some(g) = gpu_or_skip("matmul_forward_t_matches_cpu") else { return };
    for d in DTYPES {
        for (n, c, oc) in SHAPES {
            let inp = round_to(&rand_vec(n * c, 1.0, 30 + n as u64), d);
            let wt = round_to(&rand_vec(c * oc, 1.0, 31 + oc as u64), d);
            let bias = round_to(&rand_vec(oc, 1.0, 32), d);
            let mut want = vec![0.0; n * oc];
            cpu::matmul_forward_t(&mut want, &inp, &wt, Some(&bias), n, c, oc);
            let (inp_g, wt_g, b_g) = (up(&g, &inp, d), up(&g, &wt, d), up(&g, &bias, d));
            let out = up(&g, &rand_vec(n * oc, 5.0, 33), d);
            ops::matmul_forward_t(&g, out.dev(), inp_g.dev(), wt_g.dev(), Some(b_g.dev()), n, c, oc).unwrap();
            let what = format!("matmul_forward_t {d:?} (N, C, OC) = ({n}, {c}, {oc})");
            assert_close(&what, &read(&g, &out), &want, tolerance(d));
        }
    }
}

#[test]
fn matmul_backward_matches_cpu() {
    let Some(g) = gpu_or_skip("matmul_backward_matches_cpu") else { return };
    for d in DTYPES {
        for (n, c, oc) in SHAPES {
            let dout = round_to(&rand_vec(n * oc, 1.0, 40 + n as u64), d);
            let inp = round_to(&rand_vec(n * c, 1.0, 41 + c as u64), d);
            let w = round_to(&rand_vec(oc * c, 1.0, 42 + oc as u64), d);
            // Parameter gradients accumulate: start them from random values.
            let dw0 = rand_vec(oc * c, 1.0, 43);
            let db0 = rand_vec(oc, 1.0, 44);
            let (mut dinp_want, mut dw_want, mut db_want) = (vec![0.0; n * c], dw0.clone(), db0.clone());
            cpu::matmul_backward(&mut dinp_want, &mut dw_want, Some(&mut db_want), &dout, &inp, &w, n, c, oc);

            let (dout_g, inp_g, w_g) = (up(&g, &dout, d), up(&g, &inp, d), up(&g, &w, d));
            // Garbage in dinp: it is overwritten.
            let dinp = up(&g, &rand_vec(n * c, 5.0, 45), d);
            let dw = up(&g, &dw0, Dtype::F32);
            let db = up(&g, &db0, Dtype::F32);
            ops::matmul_backward(
                &g,
                dinp.dev(),
                dw.dev(),
                Some(db.dev()),
                dout_g.dev(),
                inp_g.dev(),
                w_g.dev(),
                n,
                c,
                oc,
            )
            .unwrap();
            let what = format!("matmul_backward {d:?} (N, C, OC) = ({n}, {c}, {oc})");
            assert_close(&format!("{what} dinp"), &read(&g, &dinp), &dinp_want, tolerance(d));
            // dw is an f32 product of the (rounded) narrow inputs: only the summation order
            // differs from the CPU, so the f32 bound holds for every dtype.
            assert_close(&format!("{what} dw"), &read(&g, &dw), &dw_want, tolerance(Dtype::F32));
            assert_close(&format!("{what} dbias"), &read(&g, &db), &db_want, 1e-6);
        }
    }
}

/// Host reference of one row-major product: out (M, N) = alpha · op(A) · op(B) + beta · out.
#[allow(clippy::too_many_arguments)]
fn host_gemm(
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
    ldo: usize,
    a: &[f32],
    lda: usize,
    ta: bool,
    b: &[f32],
    ldb: usize,
    tb: bool,
    alpha: f32,
    beta: f32,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let x = if ta { a[p * lda + i] } else { a[i * lda + p] };
                let y = if tb { b[j * ldb + p] } else { b[p * ldb + j] };
                s += x as f64 * y as f64;
            }
            let o = &mut out[i * ldo + j];
            *o = (alpha as f64 * s + beta as f64 * *o as f64) as f32;
        }
    }
}

#[test]
fn gemm_batched_with_transposes_matches_host_loop() {
    let Some(g) = gpu_or_skip("gemm_batched_with_transposes_matches_host_loop") else { return };
    let (m, n, k, count) = (7, 33, 40, 5);
    let (alpha, beta) = (0.75f32, 0.5f32);
    // (operand dtype, output dtype): same type, and f32 outputs from narrow operands.
    let combos = [
        (Dtype::F32, Dtype::F32),
        (Dtype::Bf16, Dtype::Bf16),
        (Dtype::F16, Dtype::F16),
        (Dtype::Bf16, Dtype::F32),
        (Dtype::F16, Dtype::F32),
    ];
    for (d, od) in combos {
        for ta in [false, true] {
            for tb in [false, true] {
                // Stored shapes, padded leading dimensions and gaps between the batch entries.
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let (lda, ldb, ldo) = (ac + 3, bc + 1, n + 2);
                let st = Strides { count, a: ar * lda + 5, b: br * ldb + 2, c: m * ldo + 7 };
                let a = round_to(&rand_vec(count * st.a, 1.0, 50), d);
                let b = round_to(&rand_vec(count * st.b, 1.0, 51), d);
                let out0 = round_to(&rand_vec(count * st.c, 1.0, 52), od);
                let mut want = out0.clone();
                for e in 0..count {
                    host_gemm(
                        m,
                        n,
                        k,
                        &mut want[e * st.c..],
                        ldo,
                        &a[e * st.a..],
                        lda,
                        ta,
                        &b[e * st.b..],
                        ldb,
                        tb,
                        alpha,
                        beta,
                    );
                }
                let (a_g, b_g, out) = (up(&g, &a, d), up(&g, &b, d), up(&g, &out0, od));
                let (da, db) =
                    (DMat { dev: a_g.dev(), ld: lda, trans: ta }, DMat { dev: b_g.dev(), ld: ldb, trans: tb });
                gemm::gemm(&g, m, n, k, out.dev(), ldo, da, db, alpha, beta, st).unwrap();
                // Elements outside the products (padding, gaps) must be untouched: they are in
                // `want` unchanged, so the comparison covers them.
                let what = format!("gemm batched {d:?} -> {od:?} ta={ta} tb={tb}");
                assert_close(&what, &read(&g, &out), &want, tolerance(od));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AdamW

#[test]
fn adamw_matches_cpu_over_steps() {
    let Some(g) = gpu_or_skip("adamw_matches_cpu_over_steps") else { return };
    let n = 10_007;
    let cfg = AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    for decay in [false, true] {
        for copy in [None, Some(Dtype::F32), Some(Dtype::Bf16), Some(Dtype::F16)] {
            let mut p = rand_vec(n, 1.0, 60);
            let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
            let p_g = up(&g, &p, Dtype::F32);
            let m_g = g.alloc(n, Dtype::F32, "m").unwrap();
            let v_g = g.alloc(n, Dtype::F32, "v").unwrap();
            let px = copy.map(|d| g.alloc(n, d, "params_x").unwrap());
            for t in 1..=10u64 {
                // Gradients of varying size, a few tiny, so that ε matters somewhere.
                let grads: Vec<f32> = rand_vec(n, 1.0, 70 + t)
                    .iter()
                    .enumerate()
                    .map(|(i, x)| if i % 97 == 0 { x * 1e-9 } else { *x })
                    .collect();
                cpu::adamw_update(&mut p, &grads, &mut m, &mut v, &cfg, decay, t, n);
                let grads_g = up(&g, &grads, Dtype::F32);
                let px_dev = px.as_ref().map(|b| b.dev());
                ops::adamw_update(&g, p_g.dev(), px_dev, grads_g.dev(), m_g.dev(), v_g.dev(), &cfg, decay, t, n)
                    .unwrap();
                if t == 1 || t == 10 {
                    let what = format!("adamw decay={decay} copy={copy:?} t={t}");
                    let (gp, gm, gv) = (read(&g, &p_g), read(&g, &m_g), read(&g, &v_g));
                    // The kernel performs the CPU's f32 operations in its order without FMA,
                    // so the states should agree to the bit; 1e-6 is the tight bound asked.
                    assert_close(&format!("{what} params"), &gp, &p, 1e-6);
                    assert_close(&format!("{what} m"), &gm, &m, 1e-6);
                    assert_close(&format!("{what} v"), &gv, &v, 1e-6);
                    let k = bit_mismatches(&gp, &p) + bit_mismatches(&gm, &m) + bit_mismatches(&gv, &v);
                    if k > 0 {
                        eprintln!("note: {what}: {k} of {} state values differ in bits from the CPU's", 3 * n);
                    }
                    if let (Some(d), Some(b)) = (copy, px.as_ref()) {
                        // The copy is exactly the updated master weights rounded to nearest even.
                        assert_eq!(
                            bits(&read(&g, b)),
                            bits(&round_to(&gp, d)),
                            "{what}: params_x is not params rounded"
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// norm, clipping, scaling

#[test]
fn grad_norm_matches_cpu_and_is_deterministic() {
    let Some(g) = gpu_or_skip("grad_norm_matches_cpu_and_is_deterministic") else { return };
    for n in [1, 7, 511, 1_000_003] {
        let grads = rand_vec(n, 1.0, 80 + n as u64);
        let want = cpu::grad_norm(&grads);
        let gg = up(&g, &grads, Dtype::F32);
        let a = ops::grad_norm(&g, gg.dev(), n).unwrap();
        let b = ops::grad_norm(&g, gg.dev(), n).unwrap();
        assert!(((a - want) / want).abs() <= 1e-6, "grad_norm N={n}: {a} vs CPU {want}");
        assert_eq!(a.to_bits(), b.to_bits(), "grad_norm N={n}: two runs differ ({a} vs {b})");
        // The norm is a sum of squares: the buffer itself is untouched.
        assert_eq!(bits(&read(&g, &gg)), bits(&grads), "grad_norm N={n} changed the gradients");
    }
}

#[test]
fn clip_grad_norm_matches_cpu() {
    let Some(g) = gpu_or_skip("clip_grad_norm_matches_cpu") else { return };
    let n = 100_003;
    let grads = rand_vec(n, 1.0, 90);
    // The norm is about sqrt(N/3) ≈ 183: 1e6 does not clip, 1.0 does.
    for max_norm in [1e6f32, 1.0] {
        let mut want = grads.clone();
        let want_norm = cpu::clip_grad_norm(&mut want, max_norm);
        let gg = up(&g, &grads, Dtype::F32);
        let norm = ops::clip_grad_norm(&g, gg.dev(), max_norm, n).unwrap();
        assert!(
            ((norm - want_norm) / want_norm).abs() <= 1e-6,
            "clip max_norm={max_norm}: norm {norm} vs CPU {want_norm}"
        );
        let got = read(&g, &gg);
        if max_norm > want_norm {
            assert_eq!(bits(&got), bits(&grads), "clip max_norm={max_norm}: gradients changed without clipping");
        } else {
            assert_close(&format!("clip max_norm={max_norm}"), &got, &want, 1e-6);
            let clipped = ops::grad_norm(&g, gg.dev(), n).unwrap();
            assert!((clipped - max_norm).abs() <= 1e-4, "clip: norm after clipping {clipped}, want {max_norm}");
        }
    }
}

#[test]
fn scale_inplace_matches_cpu() {
    let Some(g) = gpu_or_skip("scale_inplace_matches_cpu") else { return };
    for n in [1, 7, 100_003] {
        let grads = rand_vec(n, 3.0, 95 + n as u64);
        let mut want = grads.clone();
        cpu::scale_inplace(&mut want, 0.3721);
        let gg = up(&g, &grads, Dtype::F32);
        ops::scale_inplace(&g, gg.dev(), 0.3721, n).unwrap();
        // One f32 multiply each: identical bits.
        assert_eq!(bits(&read(&g, &gg)), bits(&want), "scale_inplace N={n}");
    }
}

// ---------------------------------------------------------------------------------------------
// casts and the non-finite count

/// Random values over many magnitudes, and the edge cases of rounding to bf16/f16: ties, the
/// f16 overflow threshold, f16 subnormals, f32 subnormals, infinities, signed zeros, a NaN.
fn cast_inputs() -> Vec<f32> {
    let mut v = Vec::new();
    for (i, scale) in [1e-6f32, 1e-3, 1.0, 1e3, 6e4, 1e5, 1e30].iter().enumerate() {
        v.extend(rand_vec(10_001, *scale, 100 + i as u64));
    }
    let ulp_bf16 = 2f32.powi(-7); // bf16 spacing at 1.0
    let ulp_f16 = 2f32.powi(-10);
    v.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        -f32::MAX,
        f32::MIN_POSITIVE,
        1e-39,
        -3.3e-40,
        65504.0,
        65519.996,
        65520.0,
        -70000.0,
        5.960_464_5e-8, // smallest f16 subnormal
        2.980_232_2e-8, // half of it: a tie, rounds to 0
        8.940_697e-8,   // 1.5 × it: a tie, rounds to 2×
        1e-7,
        1.0 + ulp_bf16 / 2.0,       // bf16 tie, rounds down to even
        1.0 + 3.0 * ulp_bf16 / 2.0, // bf16 tie, rounds up to even
        1.0 + ulp_f16 / 2.0,
        1.0 + 3.0 * ulp_f16 / 2.0,
        -(1.0 + 3.0 * ulp_bf16 / 2.0),
    ]);
    v
}

/// Bitwise equal, except that any NaN matches any NaN (payloads may differ).
fn assert_same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let same = if b.is_nan() { a.is_nan() } else { a.to_bits() == b.to_bits() };
        assert!(same, "{what}: element {i}: got {a:e} ({:#010x}), want {b:e} ({:#010x})", a.to_bits(), b.to_bits());
    }
}

#[test]
fn casts_round_like_half() {
    let Some(g) = gpu_or_skip("casts_round_like_half") else { return };
    let x = cast_inputs();
    let n = x.len();
    let x_g = up(&g, &x, Dtype::F32);
    for d in DTYPES {
        // f32 → dtype on the GPU, against half's from_f32 (round to nearest even).
        let narrow = g.alloc(n, d, "narrow").unwrap();
        ops::cast_from_f32(&g, narrow.dev(), x_g.dev(), n).unwrap();
        let want = round_to(&x, d);
        assert_same(&format!("cast_from_f32 {d:?}"), &read(&g, &narrow), &want);
        // dtype → f32, from half's conversion uploaded; and the round trip.
        let back = g.alloc(n, Dtype::F32, "back").unwrap();
        let host_narrow = up(&g, &x, d);
        ops::cast_to_f32(&g, back.dev(), host_narrow.dev(), n).unwrap();
        assert_same(&format!("cast_to_f32 {d:?}"), &read(&g, &back), &want);
        ops::cast_to_f32(&g, back.dev(), narrow.dev(), n).unwrap();
        assert_same(&format!("cast round trip {d:?}"), &read(&g, &back), &want);
    }
}

#[test]
fn count_nonfinite_counts_nan_and_inf() {
    let Some(g) = gpu_or_skip("count_nonfinite_counts_nan_and_inf") else { return };
    let n = 100_003;
    let mut x = rand_vec(n, 1e30, 110);
    x[5] = f32::MAX; // large but finite
    x[6] = -f32::MAX;
    let clean = up(&g, &x, Dtype::F32);
    assert_eq!(ops::count_nonfinite(&g, clean.dev(), n).unwrap(), 0, "count_nonfinite on finite values");
    let planted = [
        (0, f32::NAN),
        (17, -f32::NAN),
        (50_000, f32::NAN),
        (n - 1, f32::NAN),
        (3, f32::INFINITY),
        (99_999, f32::INFINITY),
        (12_345, f32::NEG_INFINITY),
    ];
    for (i, val) in planted {
        x[i] = val;
    }
    let dirty = up(&g, &x, Dtype::F32);
    for _ in 0..2 {
        assert_eq!(
            ops::count_nonfinite(&g, dirty.dev(), n).unwrap(),
            planted.len(),
            "count_nonfinite with NaN/inf planted"
        );
    }
    // A prefix: only what lies inside N counts.
    assert_eq!(ops::count_nonfinite(&g, dirty.dev(), 12_345).unwrap(), 3, "count_nonfinite on a prefix");
}
