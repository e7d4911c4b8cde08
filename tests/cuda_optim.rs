//! Parity tests of the linear layers and the optimizer step, on the emulated device
//! (tests/cuda_emu/) and, `#[ignore]`d, on a real GPU: the bias kernels, the cuBLAS products of
//! `cuda::gemm` (single and batched, with transposes) and `ops::matmul_*`, AdamW over a flat
//! buffer (weight-decay bitmask, device skip flag), the global gradient norm and clipping kept
//! on the device, scaling, the mixed-precision casts and the non-finite count, each against its
//! CPU twin in `cpu::ops` (or a host loop). Outputs a kernel must fully write start as NaN.

#[path = "cuda_emu/harness.rs"]
mod harness;

use xlt::cpu::ops as cpu;
use xlt::cuda::gemm::{self, DMat, Strides};
use xlt::cuda::ops;
use xlt::cuda::testing::{assert_close, rand_vec, round_to, tolerance};
use xlt::cuda::{Buf, Dev, Dtype, Gpu};
use xlt::model::AdamWConfig;

on_both_devices!(
    bias_forward_matches_cpu,
    bias_backward_matches_cpu_and_is_deterministic,
    matmul_forward_matches_cpu,
    matmul_forward_t_matches_cpu,
    matmul_backward_matches_cpu,
    gemm_batched_with_transposes_matches_host_loop,
    adamw_matches_cpu_over_steps,
    adamw_decay_mask_matches_per_tensor_cpu,
    adamw_skip_flag_leaves_the_state_untouched,
    grad_norm_matches_cpu_and_is_deterministic,
    clip_grad_norm_matches_cpu,
    scale_inplace_matches_cpu,
    casts_round_like_half,
    count_nonfinite_counts_nan_and_inf,
);

const DTYPES: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];

/// Whether `g` is the host kernel emulator (slow: the largest sizes shrink there).
fn on_emulator(g: &Gpu) -> bool {
    g.info().name == "host kernel emulator"
}

fn up(g: &Gpu, v: &[f32], d: Dtype) -> Buf {
    g.upload_f32(v, d, "test input").unwrap()
}

/// An output buffer of NaN (every byte 0xff): an element the kernel does not write shows.
fn poisoned(g: &Gpu, n: usize, d: Dtype) -> Buf {
    let b = g.alloc_uninit(n, d, "test output").unwrap();
    g.fill_bytes(b.dev(), 0xff).unwrap();
    b
}

fn read(g: &Gpu, b: &Buf) -> Vec<f32> {
    g.read_f32(b.dev()).unwrap()
}

/// Asserts `got` and `want` are identical to the bit, naming the first difference.
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits()) {
        let k = got.iter().zip(want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        let (x, y) = (got[i], want[i]);
        panic!(
            "{what}: {k} elements differ in bits, first [{i}]: got {x:e} ({:#010x}), want {y:e} ({:#010x})",
            x.to_bits(),
            y.to_bits()
        );
    }
}

/// Bitwise equal, except that any NaN matches any NaN (payloads may differ).
fn assert_same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let same = if b.is_nan() { a.is_nan() } else { a.to_bits() == b.to_bits() };
        assert!(same, "{what}: element {i}: got {a:e} ({:#010x}), want {b:e} ({:#010x})", a.to_bits(), b.to_bits());
    }
}

const SHAPES: [(usize, usize, usize); 3] = [(7, 40, 120), (511, 768, 40), (1, 40, 3)];

// ---------------------------------------------------------------------------------------------
// bias

fn bias_forward_matches_cpu(g: &Gpu) {
    for d in DTYPES {
        for oc in [40, 768] {
            for n in [1, 7, 511] {
                let out0 = round_to(&rand_vec(n * oc, 2.0, 1 + n as u64), d);
                let bias = round_to(&rand_vec(oc, 1.0, 2 + oc as u64), d);
                // Accumulated into: starts from defined values.
                let out = up(g, &out0, d);
                let b = up(g, &bias, d);
                ops::bias_forward(g, out.dev(), b.dev(), n, oc).unwrap();
                let want: Vec<f32> = out0.iter().enumerate().map(|(i, x)| x + bias[i % oc]).collect();
                assert_close(&format!("bias_forward {d:?} N={n} OC={oc}"), &read(g, &out), &want, tolerance(d));
            }
        }
    }
}

fn bias_backward_matches_cpu_and_is_deterministic(g: &Gpu) {
    for d in DTYPES {
        for oc in [40, 768] {
            for n in [1, 7, 511] {
                let dout = round_to(&rand_vec(n * oc, 1.0, 10 + n as u64), d);
                let db0 = rand_vec(oc, 1.0, 11 + oc as u64);
                let mut want = db0.clone();
                cpu::bias_backward(&mut want, &dout, n, oc);
                let dout_g = up(g, &dout, d);
                let runs: Vec<Vec<f32>> = (0..2)
                    .map(|_| {
                        let db = up(g, &db0, Dtype::F32);
                        ops::bias_backward(g, db.dev(), dout_g.dev(), n, oc).unwrap();
                        read(g, &db)
                    })
                    .collect();
                let what = format!("bias_backward {d:?} N={n} OC={oc}");
                assert_close(&what, &runs[0], &want, 1e-6);
                assert_bits(&format!("{what}: two runs"), &runs[1], &runs[0]);
                // Blocks of 64 rows fixed by N, summed in block order: the CPU's exact sequence
                // of f32 additions, on every device.
                assert_bits(&format!("{what}: against the CPU"), &runs[0], &want);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// linear layers (src/cuda/ops/matmul.rs over src/cuda/gemm.rs)

fn matmul_forward_matches_cpu(g: &Gpu) {
    for d in DTYPES {
        for (n, c, oc) in SHAPES {
            for with_bias in [true, false] {
                let inp = round_to(&rand_vec(n * c, 1.0, 20 + n as u64), d);
                let w = round_to(&rand_vec(oc * c, 1.0, 21 + oc as u64), d);
                let bias = round_to(&rand_vec(oc, 1.0, 22), d);
                let mut want = vec![0.0; n * oc];
                cpu::matmul_forward(&mut want, &inp, &w, with_bias.then_some(&bias[..]), n, c, oc);
                let (inp_g, w_g, b_g) = (up(g, &inp, d), up(g, &w, d), up(g, &bias, d));
                // The forward overwrites out, never reads it.
                let out = poisoned(g, n * oc, d);
                let bias_dev = with_bias.then(|| b_g.dev());
                ops::matmul_forward(g, out.dev(), inp_g.dev(), w_g.dev(), bias_dev, n, c, oc).unwrap();
                let what = format!("matmul_forward {d:?} (N, C, OC) = ({n}, {c}, {oc}) bias {with_bias}");
                assert_close(&what, &read(g, &out), &want, tolerance(d));
            }
        }
    }
}

fn matmul_forward_t_matches_cpu(g: &Gpu) {
    for d in DTYPES {
        for (n, c, oc) in SHAPES {
            let inp = round_to(&rand_vec(n * c, 1.0, 30 + n as u64), d);
            let wt = round_to(&rand_vec(c * oc, 1.0, 31 + oc as u64), d);
            let bias = round_to(&rand_vec(oc, 1.0, 32), d);
            let mut want = vec![0.0; n * oc];
            cpu::matmul_forward_t(&mut want, &inp, &wt, Some(&bias), n, c, oc);
            let (inp_g, wt_g, b_g) = (up(g, &inp, d), up(g, &wt, d), up(g, &bias, d));
            let out = poisoned(g, n * oc, d);
            ops::matmul_forward_t(g, out.dev(), inp_g.dev(), wt_g.dev(), Some(b_g.dev()), n, c, oc).unwrap();
            let what = format!("matmul_forward_t {d:?} (N, C, OC) = ({n}, {c}, {oc})");
            assert_close(&what, &read(g, &out), &want, tolerance(d));
        }
    }
}

fn matmul_backward_matches_cpu(g: &Gpu) {
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

            let (dout_g, inp_g, w_g) = (up(g, &dout, d), up(g, &inp, d), up(g, &w, d));
            // dinp is overwritten.
            let dinp = poisoned(g, n * c, d);
            let dw = up(g, &dw0, Dtype::F32);
            let db = up(g, &db0, Dtype::F32);
            ops::matmul_backward(
                g,
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
            assert_close(&format!("{what} dinp"), &read(g, &dinp), &dinp_want, tolerance(d));
            // dw is an f32 product of the (rounded) narrow inputs: only the summation order
            // differs from the CPU, so the f32 bound holds for every dtype.
            assert_close(&format!("{what} dw"), &read(g, &dw), &dw_want, tolerance(Dtype::F32));
            assert_close(&format!("{what} dbias"), &read(g, &db), &db_want, 1e-6);
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

fn gemm_batched_with_transposes_matches_host_loop(g: &Gpu) {
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
                // beta ≠ 0: out is read, so it starts from defined values.
                let (a_g, b_g, out) = (up(g, &a, d), up(g, &b, d), up(g, &out0, od));
                let (da, db) =
                    (DMat { dev: a_g.dev(), ld: lda, trans: ta }, DMat { dev: b_g.dev(), ld: ldb, trans: tb });
                gemm::gemm(g, m, n, k, out.dev(), ldo, da, db, alpha, beta, st).unwrap();
                // Elements outside the products (padding, gaps) must be untouched: they are in
                // `want` unchanged, so the comparison covers them.
                let what = format!("gemm batched {d:?} -> {od:?} ta={ta} tb={tb}");
                assert_close(&what, &read(g, &out), &want, tolerance(od));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AdamW

const ADAMW: AdamWConfig = AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };

/// Gradients of step `t`: of varying size, a few tiny, so that ε matters somewhere.
fn step_grads(n: usize, t: u64) -> Vec<f32> {
    rand_vec(n, 1.0, 70 + t).iter().enumerate().map(|(i, x)| if i % 97 == 0 { x * 1e-9 } else { *x }).collect()
}

/// AdamW's state on the device: params, m, v (N) f32 and the optional copy in an activation
/// dtype (NaN until the first step writes it).
struct DevState {
    p: Buf,
    m: Buf,
    v: Buf,
    px: Option<Buf>,
}

impl DevState {
    fn new(g: &Gpu, p: &[f32], copy: Option<Dtype>) -> DevState {
        let n = p.len();
        let px = copy.map(|d| poisoned(g, n, d));
        DevState {
            p: up(g, p, Dtype::F32),
            m: g.alloc(n, Dtype::F32, "m").unwrap(),
            v: g.alloc(n, Dtype::F32, "v").unwrap(),
            px,
        }
    }

    /// (params, m, v, params_x) read back.
    fn read(&self, g: &Gpu) -> [Vec<f32>; 4] {
        [read(g, &self.p), read(g, &self.m), read(g, &self.v), self.px.as_ref().map_or(Vec::new(), |b| read(g, b))]
    }

    /// One step on the device.
    fn step(&self, g: &Gpu, grads: &Buf, decay_bits: Option<&Buf>, skip: Option<Dev>, cfg: &AdamWConfig, t: u64) {
        let n = self.p.len();
        let px = self.px.as_ref().map(|b| b.dev());
        let bits = decay_bits.map(|b| b.dev());
        ops::adamw_update(g, self.p.dev(), px, grads.dev(), self.m.dev(), self.v.dev(), bits, skip, cfg, t, n).unwrap();
    }

    /// Asserts the device state is the host state to the bit, and the copy is the parameters
    /// rounded to nearest even.
    fn assert_is(&self, g: &Gpu, what: &str, p: &[f32], m: &[f32], v: &[f32]) {
        let [gp, gm, gv, gx] = self.read(g);
        // The kernel performs the CPU's f32 operations in its order, without FMA: the states
        // agree to the bit.
        assert_bits(&format!("{what} params"), &gp, p);
        assert_bits(&format!("{what} m"), &gm, m);
        assert_bits(&format!("{what} v"), &gv, v);
        if let Some(b) = &self.px {
            assert_bits(&format!("{what}: params_x against params rounded"), &gx, &round_to(&gp, b.dtype()));
        }
    }
}

fn adamw_matches_cpu_over_steps(g: &Gpu) {
    let n = 10_007;
    // (mask, CPU decay flag): no mask decays everywhere; all-ones and all-zero bitmasks.
    let masks = [
        ("no mask", None, true),
        ("all-ones mask", Some(ops::decay_bits(n, [(0..n, true)])), true),
        ("all-zero mask", Some(ops::decay_bits(n, [(0..n, false)])), false),
    ];
    for (name, mask, decay) in &masks {
        let mask_g = mask.as_ref().map(|b| {
            let d = g.alloc(b.len(), Dtype::U32, "decay bits").unwrap();
            g.write_u32(d.dev(), b).unwrap();
            d
        });
        for copy in [None, Some(Dtype::F32), Some(Dtype::Bf16), Some(Dtype::F16)] {
            let mut p = rand_vec(n, 1.0, 60);
            let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
            let st = DevState::new(g, &p, copy);
            for t in 1..=10u64 {
                let grads = step_grads(n, t);
                cpu::adamw_update(&mut p, &grads, &mut m, &mut v, &ADAMW, *decay, t, n);
                st.step(g, &up(g, &grads, Dtype::F32), mask_g.as_ref(), None, &ADAMW, t);
                st.assert_is(g, &format!("adamw {name} copy={copy:?} t={t}"), &p, &m, &v);
            }
        }
    }
}

fn adamw_decay_mask_matches_per_tensor_cpu(g: &Gpu) {
    // "Tensors" of a flat buffer: boundaries on and inside 32-bit words, a one-word tensor, a
    // single element; N = 7_020 is not a multiple of 32.
    let lens = [
        (1024, true),
        (32, false),
        (37, true),
        (1, false),
        (31, true),
        (64, false),
        (3000, true),
        (5, false),
        (2049, false),
        (777, true),
    ];
    let mut ranges: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
    for (len, decay) in lens {
        let at = ranges.last().map_or(0, |(r, _)| r.end);
        ranges.push((at..at + len, decay));
    }
    let n = ranges.last().map_or(0, |(r, _)| r.end);
    assert_eq!(n, 7_020);
    // A weight decay large enough to change every decayed value's bits.
    let cfg = AdamWConfig { weight_decay: 0.1, ..ADAMW };
    let mask = ops::decay_bits(n, ranges.iter().cloned());
    let mask_g = g.alloc(mask.len(), Dtype::U32, "decay bits").unwrap();
    g.write_u32(mask_g.dev(), &mask).unwrap();
    for copy in [None, Some(Dtype::Bf16)] {
        let mut p = rand_vec(n, 1.0, 61);
        let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
        let st = DevState::new(g, &p, copy);
        for t in 1..=5u64 {
            let grads = step_grads(n, t);
            let decayed_everywhere = {
                let (mut p, mut m, mut v) = (p.clone(), m.clone(), v.clone());
                cpu::adamw_update(&mut p, &grads, &mut m, &mut v, &cfg, true, t, n);
                p
            };
            for (r, decay) in ranges.iter().cloned() {
                let (ps, ms, vs) = (&mut p[r.clone()], &mut m[r.clone()], &mut v[r.clone()]);
                cpu::adamw_update(ps, &grads[r.clone()], ms, vs, &cfg, decay, t, r.len());
            }
            // The mask matters: undecayed tensors differ from a step that decays everywhere.
            for (r, decay) in &ranges {
                let differ = r.clone().filter(|&i| p[i].to_bits() != decayed_everywhere[i].to_bits()).count();
                assert_eq!(
                    differ > 0,
                    !decay,
                    "adamw mask t={t}: tensor {r:?} (decay {decay}) is not sensitive to the mask"
                );
            }
            st.step(g, &up(g, &grads, Dtype::F32), Some(&mask_g), None, &cfg, t);
            st.assert_is(g, &format!("adamw mixed mask copy={copy:?} t={t}"), &p, &m, &v);
        }
    }
}

fn adamw_skip_flag_leaves_the_state_untouched(g: &Gpu) {
    let n = 4_099;
    let mut p = rand_vec(n, 1.0, 62);
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    let st = DevState::new(g, &p, Some(Dtype::F16));
    // The skip count sits in a slot of a larger flag buffer, as in a training step.
    let flags = g.alloc(4, Dtype::U32, "flags").unwrap();
    let skip = flags.dev().at(2, 1);

    // Zero in the slot: the step runs.
    let grads = step_grads(n, 1);
    cpu::adamw_update(&mut p, &grads, &mut m, &mut v, &ADAMW, true, 1, n);
    st.step(g, &up(g, &grads, Dtype::F32), None, Some(skip), &ADAMW, 1);
    st.assert_is(g, "adamw skip=0 t=1", &p, &m, &v);
    let before = st.read(g);

    // An overflow counted on the device: the step is skipped, the state (and the copy) stays
    // bit-identical, inf never reaches it.
    let mut bad = step_grads(n, 2);
    bad[1234] = f32::INFINITY;
    bad[n - 1] = f32::NAN;
    let bad_g = up(g, &bad, Dtype::F32);
    ops::count_nonfinite(g, skip, bad_g.dev(), n).unwrap();
    assert_eq!(g.read_u32(flags.dev()).unwrap(), [0, 0, 2, 0], "the overflow count in its slot");
    st.step(g, &bad_g, None, Some(skip), &ADAMW, 2);
    for (name, (got, want)) in ["params", "m", "v", "params_x"].iter().zip(st.read(g).iter().zip(&before)) {
        assert_bits(&format!("adamw skip=2: {name}"), got, want);
    }
    // A count written by the host skips too, with finite gradients.
    let grads = step_grads(n, 2);
    let grads_g = up(g, &grads, Dtype::F32);
    g.write_u32(skip, &[7]).unwrap();
    st.step(g, &grads_g, None, Some(skip), &ADAMW, 2);
    for (name, (got, want)) in ["params", "m", "v", "params_x"].iter().zip(st.read(g).iter().zip(&before)) {
        assert_bits(&format!("adamw skip=7: {name}"), got, want);
    }

    // Counted back to zero on clean gradients: the step runs again, as the CPU's.
    ops::count_nonfinite(g, skip, grads_g.dev(), n).unwrap();
    assert_eq!(g.read_u32(flags.dev()).unwrap(), [0, 0, 0, 0], "the count of clean gradients");
    cpu::adamw_update(&mut p, &grads, &mut m, &mut v, &ADAMW, true, 2, n);
    st.step(g, &grads_g, None, Some(skip), &ADAMW, 2);
    st.assert_is(g, "adamw skip=0 t=2", &p, &m, &v);
}

// ---------------------------------------------------------------------------------------------
// norm, clipping, scaling

/// A one-float device slot for the norm inside a poisoned buffer of 3, whose neighbours must
/// stay NaN.
fn norm_slots(g: &Gpu) -> Buf {
    poisoned(g, 3, Dtype::F32)
}

fn read_norm(g: &Gpu, slots: &Buf, what: &str) -> f32 {
    let s = read(g, slots);
    assert!(s[0].to_bits() == u32::MAX && s[2].to_bits() == u32::MAX, "{what}: wrote outside the norm slot: {s:?}");
    s[1]
}

fn grad_norm_matches_cpu_and_is_deterministic(g: &Gpu) {
    let big = if on_emulator(g) { 100_003 } else { 1_000_003 };
    for n in [1, 7, 511, big] {
        let grads = rand_vec(n, 1.0, 80 + n as u64);
        let want = cpu::grad_norm(&grads);
        let gg = up(g, &grads, Dtype::F32);
        let mut runs = Vec::new();
        for _ in 0..2 {
            let slots = norm_slots(g);
            ops::grad_norm(g, slots.dev().at(1, 1), gg.dev(), n).unwrap();
            runs.push(read_norm(g, &slots, &format!("grad_norm N={n}")));
        }
        let (a, b) = (runs[0], runs[1]);
        assert!(((a - want) / want).abs() <= 1e-6, "grad_norm N={n}: {a} vs CPU {want}");
        assert_eq!(a.to_bits(), b.to_bits(), "grad_norm N={n}: two runs differ ({a} vs {b})");
        if n == 1 {
            // sqrt(x²) in f64 is |x|: exact.
            assert_eq!(a.to_bits(), want.to_bits(), "grad_norm N=1: {a} vs CPU {want}");
        }
        // The norm is a sum of squares: the buffer itself is untouched.
        assert_bits(&format!("grad_norm N={n}: the gradients after"), &read(g, &gg), &grads);
    }
}

fn clip_grad_norm_matches_cpu(g: &Gpu) {
    let n = if on_emulator(g) { 10_007 } else { 100_003 };
    let grads = rand_vec(n, 1.0, 90);
    // The norm is about sqrt(N/3) (58 or 183): 1e6 does not clip, 1.0 does.
    for max_norm in [1e6f32, 1.0] {
        let mut want = grads.clone();
        let want_norm = cpu::clip_grad_norm(&mut want, max_norm);
        let gg = up(g, &grads, Dtype::F32);
        let slots = norm_slots(g);
        ops::clip_grad_norm(g, slots.dev().at(1, 1), gg.dev(), max_norm, n).unwrap();
        let what = format!("clip N={n} max_norm={max_norm}");
        let norm = read_norm(g, &slots, &what);
        assert!(((norm - want_norm) / want_norm).abs() <= 1e-6, "{what}: norm {norm} vs CPU {want_norm}");
        let got = read(g, &gg);
        if max_norm > want_norm {
            assert_bits(&format!("{what}: gradients without clipping"), &got, &grads);
        } else {
            assert_close(&what, &got, &want, 1e-6);
            // From the device's own norm, the kernel's coefficient and product are the host's
            // f32 operations: exact.
            let coef = max_norm / (norm + 1e-6);
            let exact: Vec<f32> = grads.iter().map(|x| x * coef).collect();
            assert_bits(&format!("{what}: against the device norm's coefficient"), &got, &exact);
            let after = norm_slots(g);
            ops::grad_norm(g, after.dev().at(1, 1), gg.dev(), n).unwrap();
            let clipped = read_norm(g, &after, &what);
            assert!((clipped - max_norm).abs() <= 1e-4, "{what}: norm after clipping {clipped}, want {max_norm}");
        }
    }
    // A non-finite norm, as the CPU: NaN compares false, so nothing is clipped; an infinite norm
    // gives a coefficient of 0 (the infinities become NaN).
    for (i, bad) in [(5, f32::NAN), (n - 1, f32::INFINITY)] {
        let mut x = grads.clone();
        x[i] = bad;
        let mut want = x.clone();
        let want_norm = cpu::clip_grad_norm(&mut want, 1.0);
        let gg = up(g, &x, Dtype::F32);
        let slots = norm_slots(g);
        ops::clip_grad_norm(g, slots.dev().at(1, 1), gg.dev(), 1.0, n).unwrap();
        let what = format!("clip N={n} with {bad} at {i}");
        let norm = read_norm(g, &slots, &what);
        assert_same(&format!("{what}: norm"), &[norm], &[want_norm]);
        let got = read(g, &gg);
        if bad.is_nan() {
            assert_bits(&format!("{what}: gradients"), &got, &x);
        }
        assert_same(&what, &got, &want);
    }
}

fn scale_inplace_matches_cpu(g: &Gpu) {
    for n in [1, 7, 100_003] {
        let grads = rand_vec(n, 3.0, 95 + n as u64);
        let mut want = grads.clone();
        cpu::scale_inplace(&mut want, 0.3721);
        let gg = up(g, &grads, Dtype::F32);
        ops::scale_inplace(g, gg.dev(), 0.3721, n).unwrap();
        // One f32 multiply each: identical bits.
        assert_bits(&format!("scale_inplace N={n}"), &read(g, &gg), &want);
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

fn casts_round_like_half(g: &Gpu) {
    let x = cast_inputs();
    let n = x.len();
    let x_g = up(g, &x, Dtype::F32);
    for d in DTYPES {
        // f32 → dtype on the device, against half's from_f32 (round to nearest even).
        let narrow = poisoned(g, n, d);
        ops::cast_from_f32(g, narrow.dev(), x_g.dev(), n).unwrap();
        let want = round_to(&x, d);
        assert_same(&format!("cast_from_f32 {d:?}"), &read(g, &narrow), &want);
        // dtype → f32, from half's conversion uploaded; and the round trip.
        let back = poisoned(g, n, Dtype::F32);
        let host_narrow = up(g, &x, d);
        ops::cast_to_f32(g, back.dev(), host_narrow.dev(), n).unwrap();
        assert_same(&format!("cast_to_f32 {d:?}"), &read(g, &back), &want);
        g.fill_bytes(back.dev(), 0xff).unwrap();
        ops::cast_to_f32(g, back.dev(), narrow.dev(), n).unwrap();
        assert_same(&format!("cast round trip {d:?}"), &read(g, &back), &want);
    }
}

fn count_nonfinite_counts_nan_and_inf(g: &Gpu) {
    let n = 100_003;
    // The count goes to a slot of a poisoned u32 buffer: the wrapper zeroes the slot, and only
    // the slot.
    let slots = g.alloc_uninit(3, Dtype::U32, "counts").unwrap();
    let count = |x: &Buf, n: usize| -> u32 {
        g.fill_bytes(slots.dev(), 0xff).unwrap();
        ops::count_nonfinite(g, slots.dev().at(1, 1), x.dev(), n).unwrap();
        let s = g.read_u32(slots.dev()).unwrap();
        assert_eq!([s[0], s[2]], [u32::MAX; 2], "count_nonfinite wrote outside its slot");
        s[1]
    };
    let mut x = rand_vec(n, 1e30, 110);
    x[5] = f32::MAX; // large but finite
    x[6] = -f32::MAX;
    let clean = up(g, &x, Dtype::F32);
    assert_eq!(count(&clean, n), 0, "count_nonfinite on finite values");
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
    let dirty = up(g, &x, Dtype::F32);
    for _ in 0..2 {
        assert_eq!(count(&dirty, n), planted.len() as u32, "count_nonfinite with NaN/inf planted");
    }
    // A prefix: only what lies inside N counts.
    assert_eq!(count(&dirty, 12_345), 3, "count_nonfinite on a prefix");
}
