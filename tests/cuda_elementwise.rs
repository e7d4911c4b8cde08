//! GPU parity tests for the embedding, LayerNorm, activation, dropout and residual kernels: each
//! wrapper in `cuda::ops` against its CPU twin in `cpu::ops` on random inputs at odd sizes, for
//! every activation dtype (the CPU fed the inputs rounded to that dtype), plus bit-exact checks
//! where the GPU does the CPU's arithmetic in the CPU's order (dropout masks, the embedding
//! gradients) and determinism of the reductions. Without a GPU every test prints a skip line.

use xlt::cpu::ops as cpu;
use xlt::cuda::testing::{assert_close, gpu_or_skip, rand_vec, round_to, tolerance};
use xlt::cuda::{ops, Buf, Dtype, Gpu};
use xlt::rng::Rng;

const DTYPES: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];
const NS: [usize; 3] = [1, 7, 511];
const CS: [usize; 2] = [40, 768];

/// `v` rounded to `d`, uploaded as `d`.
fn up(g: &Gpu, v: &[f32], d: Dtype) -> Buf {
    g.upload_f32(v, d, "test input").unwrap()
}

fn up_u32(g: &Gpu, v: &[u32]) -> Buf {
    let b = g.alloc(v.len(), Dtype::U32, "test ids").unwrap();
    g.write_u32(b.dev(), v).unwrap();
    b
}

fn down(g: &Gpu, b: &Buf) -> Vec<f32> {
    g.read_f32(b.dev()).unwrap()
}

/// Bit-for-bit equality of two f32 vectors, naming the first difference.
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: element {i} is {:e}, expected exactly {:e}", got[i], want[i]);
    }
}

/// `n` values below `bound`, with every `every`-th one set to `pad` (when given).
fn rand_ids(n: usize, bound: u32, pad: Option<(u32, usize)>, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| match pad {
            Some((p, every)) if i % every == 0 => p,
            _ => r.below(bound as u64) as u32,
        })
        .collect()
}

// ----------------------------------------------------------------------------------------------
// embeddings

const V: usize = 37; // fewer rows than 511 tokens: ids repeat
const P: usize = 24;
const TT: usize = 2;
const PAD: u32 = 1;

#[test]
fn embedding_forward_matches_cpu() {
    let Some(g) = gpu_or_skip("embedding_forward_matches_cpu") else { return };
    for d in DTYPES {
        for n in NS {
            for c in CS {
                let ids = rand_ids(n, V as u32, Some((PAD, 5)), 1);
                let pos = rand_ids(n, P as u32, None, 2);
                let types = rand_ids(n, TT as u32, None, 3);
                let wte = round_to(&rand_vec(V * c, 1.0, 4), d);
                let wpe = round_to(&rand_vec(P * c, 1.0, 5), d);
                let wtt = round_to(&rand_vec(TT * c, 1.0, 6), d);
                let mut want = vec![0.0; n * c];
                cpu::embedding_forward(&mut want, &ids, &pos, &types, &wte, &wpe, &wtt, n, c);

                let out = g.alloc(n * c, d, "out").unwrap();
                let (gi, gp, gt) = (up_u32(&g, &ids), up_u32(&g, &pos), up_u32(&g, &types));
                let (bte, bpe, btt) = (up(&g, &wte, d), up(&g, &wpe, d), up(&g, &wtt, d));
                ops::embedding_forward(
                    &g,
                    out.dev(),
                    gi.dev(),
                    gp.dev(),
                    gt.dev(),
                    bte.dev(),
                    bpe.dev(),
                    btt.dev(),
                    n,
                    c,
                )
                .unwrap();
                let got = down(&g, &out);
                let what = format!("embedding_forward {d:?} N={n} C={c}");
                if d == Dtype::F32 {
                    // (wte + wpe) + wtt in f32 on both sides.
                    assert_bits(&what, &got, &want);
                } else {
                    assert_close(&what, &got, &want, tolerance(d));
                }
            }
        }
    }
}

/// Runs the GPU embedding backward from the given initial gradients; returns (dwte, dwpe, dwtt).
#[allow(clippy::too_many_arguments)]
fn gpu_embedding_backward(
    g: &Gpu,
    init: (&[f32], &[f32], &[f32]),
    dout: &[f32],
    ids: &[u32],
    pos: &[u32],
    types: &[u32],
    d: Dtype,
    n: usize,
    c: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (dwte, dwpe, dwtt) = (up(g, init.0, Dtype::F32), up(g, init.1, Dtype::F32), up(g, init.2, Dtype::F32));
    let gd = up(g, dout, d);
    ops::embedding_backward(
        g,
        dwte.dev(),
        dwpe.dev(),
        dwtt.dev(),
        gd.dev(),
        ids,
        pos,
        types,
        Some(PAD),
        Some(PAD),
        n,
        c,
    )
    .unwrap();
    (down(g, &dwte), down(g, &dwpe), down(g, &dwtt))
}

#[test]
fn embedding_backward_matches_cpu_exactly_with_repeats_and_padding() {
    let Some(g) = gpu_or_skip("embedding_backward_matches_cpu_exactly_with_repeats_and_padding") else { return };
    for d in DTYPES {
        for n in NS {
            for c in CS {
                // Every 5th word id and every 7th position is the padding row; the rest repeat
                // (V, P < N). The gradient tables start non-zero (they accumulate).
                let ids = rand_ids(n, V as u32, Some((PAD, 5)), 11);
                let pos = rand_ids(n, P as u32, Some((PAD, 7)), 12);
                let types = rand_ids(n, TT as u32, None, 13);
                let dout = round_to(&rand_vec(n * c, 1.0, 14), d);
                let init = (rand_vec(V * c, 0.5, 15), rand_vec(P * c, 0.5, 16), rand_vec(TT * c, 0.5, 17));
                let (mut wte, mut wpe, mut wtt) = init.clone();
                cpu::embedding_backward(
                    &mut wte,
                    &mut wpe,
                    &mut wtt,
                    &dout,
                    &ids,
                    &pos,
                    &types,
                    Some(PAD),
                    Some(PAD),
                    n,
                    c,
                );
                let run =
                    || gpu_embedding_backward(&g, (&init.0, &init.1, &init.2), &dout, &ids, &pos, &types, d, n, c);
                let (gte, gpe, gtt) = run();
                // Each gradient row is its start value plus the dout rows in increasing order, in
                // f32, on both sides: bit-identical whatever the dout dtype.
                let what = format!("embedding_backward {d:?} N={n} C={c}");
                assert_bits(&format!("{what} dwte"), &gte, &wte);
                assert_bits(&format!("{what} dwpe"), &gpe, &wpe);
                assert_bits(&format!("{what} dwtt"), &gtt, &wtt);
                let pad = PAD as usize * c..(PAD as usize + 1) * c;
                assert_bits(&format!("{what} padding row of dwte"), &gte[pad.clone()], &init.0[pad.clone()]);
                assert_bits(&format!("{what} padding row of dwpe"), &gpe[pad.clone()], &init.1[pad]);
                // Deterministic: a second run is bit-identical.
                let (ate, ape, att) = run();
                assert_bits(&format!("{what} rerun dwte"), &ate, &gte);
                assert_bits(&format!("{what} rerun dwpe"), &ape, &gpe);
                assert_bits(&format!("{what} rerun dwtt"), &att, &gtt);
            }
        }
    }
}

#[test]
fn embedding_backward_rejects_ids_outside_the_table() {
    let Some(g) = gpu_or_skip("embedding_backward_rejects_ids_outside_the_table") else { return };
    let (n, c) = (3, 40);
    let (dwte, dwpe, dwtt) = (
        g.alloc(V * c, Dtype::F32, "dwte").unwrap(),
        g.alloc(P * c, Dtype::F32, "dwpe").unwrap(),
        g.alloc(TT * c, Dtype::F32, "dwtt").unwrap(),
    );
    let dout = up(&g, &rand_vec(n * c, 1.0, 1), Dtype::F32);
    let ids = [0, V as u32, 2];
    let r = ops::embedding_backward(
        &g,
        dwte.dev(),
        dwpe.dev(),
        dwtt.dev(),
        dout.dev(),
        &ids,
        &[0, 1, 2],
        &[0, 0, 0],
        None,
        None,
        n,
        c,
    );
    assert!(matches!(r, Err(xlt::Error::Usage(_))), "an id past the table must be Error::Usage, got {r:?}");
}

// ----------------------------------------------------------------------------------------------
// layernorm

const EPS: f32 = 1e-5;

/// Inputs (N, C) with a non-zero mean per row, and w, b (C), rounded to `d`.
fn ln_inputs(n: usize, c: usize, d: Dtype, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = rand_vec(n * c, 2.0, seed).iter().map(|v| v + 0.7).collect();
    let w: Vec<f32> = rand_vec(c, 0.3, seed + 1).iter().map(|v| v + 1.0).collect();
    let b = rand_vec(c, 0.2, seed + 2);
    (round_to(&x, d), round_to(&w, d), round_to(&b, d))
}

#[test]
fn layernorm_forward_matches_cpu() {
    let Some(g) = gpu_or_skip("layernorm_forward_matches_cpu") else { return };
    for d in DTYPES {
        for n in NS {
            for c in CS {
                let (x, w, b) = ln_inputs(n, c, d, 21);
                let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
                cpu::layernorm_forward(&mut out, &mut mean, &mut rstd, &x, &w, &b, n, c, EPS);

                let gout = g.alloc(n * c, d, "out").unwrap();
                let gmean = g.alloc(n, Dtype::F32, "mean").unwrap();
                let grstd = g.alloc(n, Dtype::F32, "rstd").unwrap();
                let (gx, gw, gb) = (up(&g, &x, d), up(&g, &w, d), up(&g, &b, d));
                ops::layernorm_forward(
                    &g,
                    gout.dev(),
                    gmean.dev(),
                    grstd.dev(),
                    gx.dev(),
                    gw.dev(),
                    gb.dev(),
                    n,
                    c,
                    EPS,
                )
                .unwrap();
                let what = format!("layernorm_forward {d:?} N={n} C={c}");
                assert_close(&format!("{what} out"), &down(&g, &gout), &out, tolerance(d));
                // The statistics are f32 from the same (rounded) inputs whatever the dtype; only
                // the summation order differs.
                assert_close(&format!("{what} mean"), &down(&g, &gmean), &mean, tolerance(Dtype::F32));
                assert_close(&format!("{what} rstd"), &down(&g, &grstd), &rstd, tolerance(Dtype::F32));
            }
        }
    }
}

/// The GPU LayerNorm backward from the given initial dw, db; returns (dinp, dw, db).
#[allow(clippy::too_many_arguments)]
fn gpu_layernorm_backward(
    g: &Gpu,
    dout: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    w: &[f32],
    dw0: &[f32],
    db0: &[f32],
    d: Dtype,
    n: usize,
    c: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let gdinp = g.alloc(n * c, d, "dinp").unwrap();
    let (gdw, gdb) = (up(g, dw0, Dtype::F32), up(g, db0, Dtype::F32));
    let (gdout, gx, gw) = (up(g, dout, d), up(g, x, d), up(g, w, d));
    let (gmean, grstd) = (up(g, mean, Dtype::F32), up(g, rstd, Dtype::F32));
    ops::layernorm_backward(
        g,
        gdinp.dev(),
        gdw.dev(),
        gdb.dev(),
        gdout.dev(),
        gx.dev(),
        gmean.dev(),
        grstd.dev(),
        gw.dev(),
        n,
        c,
    )
    .unwrap();
    (down(g, &gdinp), down(g, &gdw), down(g, &gdb))
}

#[test]
fn layernorm_backward_matches_cpu() {
    let Some(g) = gpu_or_skip("layernorm_backward_matches_cpu") else { return };
    for d in DTYPES {
        for n in NS {
            for c in CS {
                let (x, w, b) = ln_inputs(n, c, d, 31);
                let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
                cpu::layernorm_forward(&mut out, &mut mean, &mut rstd, &x, &w, &b, n, c, EPS);
                let dout = round_to(&rand_vec(n * c, 1.0, 32), d);
                let (dw0, db0) = (rand_vec(c, 1.0, 33), rand_vec(c, 1.0, 34));
                let (mut dinp, mut dw, mut db) = (vec![0.0; n * c], dw0.clone(), db0.clone());
                cpu::layernorm_backward(&mut dinp, &mut dw, &mut db, &dout, &x, &mean, &rstd, &w, n, c);

                let (gdinp, gdw, gdb) = gpu_layernorm_backward(&g, &dout, &x, &mean, &rstd, &w, &dw0, &db0, d, n, c);
                let what = format!("layernorm_backward {d:?} N={n} C={c}");
                assert_close(&format!("{what} dinp"), &gdinp, &dinp, tolerance(d));
                // dw, db are f32 sums of f32 products of the same rounded inputs on both sides;
                // only the summation order differs, whatever the activation dtype.
                assert_close(&format!("{what} dw"), &gdw, &dw, tolerance(Dtype::F32));
                assert_close(&format!("{what} db"), &gdb, &db, tolerance(Dtype::F32));
            }
        }
    }
}

#[test]
fn layernorm_backward_is_deterministic() {
    let Some(g) = gpu_or_skip("layernorm_backward_is_deterministic") else { return };
    for d in [Dtype::F32, Dtype::Bf16] {
        let (n, c) = (511, 768);
        let (x, w, b) = ln_inputs(n, c, d, 41);
        let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
        cpu::layernorm_forward(&mut out, &mut mean, &mut rstd, &x, &w, &b, n, c, EPS);
        let dout = round_to(&rand_vec(n * c, 1.0, 42), d);
        let (dw0, db0) = (rand_vec(c, 1.0, 43), rand_vec(c, 1.0, 44));
        let first = gpu_layernorm_backward(&g, &dout, &x, &mean, &rstd, &w, &dw0, &db0, d, n, c);
        let second = gpu_layernorm_backward(&g, &dout, &x, &mean, &rstd, &w, &dw0, &db0, d, n, c);
        assert_bits(&format!("layernorm_backward {d:?} rerun dinp"), &second.0, &first.0);
        assert_bits(&format!("layernorm_backward {d:?} rerun dw"), &second.1, &first.1);
        assert_bits(&format!("layernorm_backward {d:?} rerun db"), &second.2, &first.2);
    }
}

// ----------------------------------------------------------------------------------------------
// activations

/// Element counts: 1, 7, 511 and a few rows of 768 channels (more than one block).
const LENS: [usize; 4] = [1, 7, 511, 7 * 768 + 5];

#[test]
fn gelu_forward_and_backward_match_cpu() {
    let Some(g) = gpu_or_skip("gelu_forward_and_backward_match_cpu") else { return };
    for d in DTYPES {
        for n in LENS {
            let x = round_to(&rand_vec(n, 4.0, 51), d);
            let dout = round_to(&rand_vec(n, 1.0, 52), d);
            let mut out = vec![0.0; n];
            cpu::gelu_forward(&mut out, &x, n);
            let mut dinp = vec![0.0; n];
            cpu::gelu_backward(&mut dinp, &x, &dout, n);

            let (gx, gdout) = (up(&g, &x, d), up(&g, &dout, d));
            let (gout, gdinp) = (g.alloc(n, d, "out").unwrap(), g.alloc(n, d, "dinp").unwrap());
            ops::gelu_forward(&g, gout.dev(), gx.dev(), n).unwrap();
            ops::gelu_backward(&g, gdinp.dev(), gx.dev(), gdout.dev(), n).unwrap();
            assert_close(&format!("gelu_forward {d:?} N={n}"), &down(&g, &gout), &out, tolerance(d));
            assert_close(&format!("gelu_backward {d:?} N={n}"), &down(&g, &gdinp), &dinp, tolerance(d));
        }
    }
}

#[test]
fn tanh_forward_and_backward_match_cpu() {
    let Some(g) = gpu_or_skip("tanh_forward_and_backward_match_cpu") else { return };
    for d in DTYPES {
        for n in LENS {
            let x = round_to(&rand_vec(n, 3.0, 61), d);
            let dout = round_to(&rand_vec(n, 1.0, 62), d);
            let mut out = vec![0.0; n];
            cpu::tanh_forward(&mut out, &x, n);
            // The backward reads the forward's output as the GPU stored it (rounded to d).
            let out_d = round_to(&out, d);
            let mut dinp = vec![0.0; n];
            cpu::tanh_backward(&mut dinp, &out_d, &dout, n);

            let (gx, gdout) = (up(&g, &x, d), up(&g, &dout, d));
            let (gout, gdinp) = (g.alloc(n, d, "out").unwrap(), g.alloc(n, d, "dinp").unwrap());
            ops::tanh_forward(&g, gout.dev(), gx.dev(), n).unwrap();
            let got_out = down(&g, &gout);
            let gout_d = up(&g, &out_d, d);
            ops::tanh_backward(&g, gdinp.dev(), gout_d.dev(), gdout.dev(), n).unwrap();
            assert_close(&format!("tanh_forward {d:?} N={n}"), &got_out, &out, tolerance(d));
            assert_close(&format!("tanh_backward {d:?} N={n}"), &down(&g, &gdinp), &dinp, tolerance(d));
        }
    }
}

// ----------------------------------------------------------------------------------------------
// dropout and residual

#[test]
fn dropout_mask_matches_cpu_exactly() {
    let Some(g) = gpu_or_skip("dropout_mask_matches_cpu_exactly") else { return };
    // The last length is more than the launch's grid covers in one sweep (grid-stride loop).
    for n in [1, 7, 511, 7 * 768 + 5, (1 << 22) + 3] {
        for (p, seed) in [(0.1f32, 0x1234_5678_9abc_def0u64), (0.5, 7)] {
            let x = rand_vec(n, 1.0, 71);
            let mut want = x.clone();
            cpu::dropout_forward(&mut want, p, seed, n);
            let gx = up(&g, &x, Dtype::F32);
            ops::dropout_forward(&g, gx.dev(), p, seed, n).unwrap();
            let got = down(&g, &gx);
            // Same mask from (seed, i), same f32 product: bit-identical.
            assert_bits(&format!("dropout_forward f32 N={n} p={p}"), &got, &want);
            if n > 10_000 {
                let dropped = got.iter().filter(|v| **v == 0.0).count() as f64 / n as f64;
                assert!((dropped - p as f64).abs() < 0.01, "dropout p={p}: dropped fraction {dropped}");
            }
            // The backward applies the same mask.
            let dx = rand_vec(n, 1.0, 72);
            let mut want_dx = dx.clone();
            cpu::dropout_backward(&mut want_dx, p, seed, n);
            let gdx = up(&g, &dx, Dtype::F32);
            ops::dropout_backward(&g, gdx.dev(), p, seed, n).unwrap();
            assert_bits(&format!("dropout_backward f32 N={n} p={p}"), &down(&g, &gdx), &want_dx);
        }
    }
}

#[test]
fn dropout_narrow_dtypes_match_cpu() {
    let Some(g) = gpu_or_skip("dropout_narrow_dtypes_match_cpu") else { return };
    for d in [Dtype::Bf16, Dtype::F16] {
        for n in LENS {
            let (p, seed) = (0.1f32, 99u64);
            let x = round_to(&rand_vec(n, 1.0, 81), d);
            let mut want = x.clone();
            cpu::dropout_forward(&mut want, p, seed, n);
            let gx = up(&g, &x, d);
            ops::dropout_forward(&g, gx.dev(), p, seed, n).unwrap();
            let got = down(&g, &gx);
            let what = format!("dropout_forward {d:?} N={n}");
            for i in 0..n {
                assert_eq!(got[i] == 0.0, want[i] == 0.0, "{what}: the masks differ at element {i}");
            }
            assert_close(&what, &got, &want, tolerance(d));
        }
    }
}

#[test]
fn dropout_with_p_zero_is_a_no_op() {
    let Some(g) = gpu_or_skip("dropout_with_p_zero_is_a_no_op") else { return };
    let x = rand_vec(511, 1.0, 91);
    let gx = up(&g, &x, Dtype::F32);
    ops::dropout_forward(&g, gx.dev(), 0.0, 5, 511).unwrap();
    ops::dropout_backward(&g, gx.dev(), 0.0, 5, 511).unwrap();
    assert_bits("dropout p=0", &down(&g, &gx), &x);
}

#[test]
fn residual_forward_matches_cpu() {
    let Some(g) = gpu_or_skip("residual_forward_matches_cpu") else { return };
    for d in DTYPES {
        for n in LENS {
            let out0 = round_to(&rand_vec(n, 1.0, 101), d);
            let inp = round_to(&rand_vec(n, 1.0, 102), d);
            let mut want = out0.clone();
            cpu::residual_forward(&mut want, &inp, n);
            let (gout, ginp) = (up(&g, &out0, d), up(&g, &inp, d));
            ops::residual_forward(&g, gout.dev(), ginp.dev(), n).unwrap();
            let got = down(&g, &gout);
            let what = format!("residual_forward {d:?} N={n}");
            if d == Dtype::F32 {
                assert_bits(&what, &got, &want);
            } else {
                assert_close(&what, &got, &want, tolerance(d));
            }
        }
    }
}
