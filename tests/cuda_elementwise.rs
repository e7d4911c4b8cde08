//! Parity tests for the embedding, LayerNorm, activation, dropout and residual kernels: each
//! wrapper in `cuda::ops` against its CPU twin in `cpu::ops` on random inputs at odd sizes, for
//! every activation dtype (the CPU fed the inputs rounded to that dtype), plus bit-exact checks
//! where the device does the CPU's arithmetic in the CPU's order (dropout masks, the embedding
//! gradients), determinism of the reductions (run twice, compare bits) and the wrappers' argument
//! errors.
//!
//! Every test runs on the host kernel emulator (`name::emulated`, tests/cuda_emu/) and, ignored,
//! on a GPU (`name::gpu`, `--ignored`). Outputs a kernel must fully write start as NaN (0xff
//! bytes), so an unwritten element fails the comparison on both devices; accumulated outputs
//! (gradient tables, dw, db, residuals) start from defined values.

#[path = "cuda_emu/harness.rs"]
mod harness;

use xlt::cpu::ops as cpu;
use xlt::cuda::launch::grid;
use xlt::cuda::testing::{assert_close, rand_vec, round_to, tolerance};
use xlt::cuda::{ops, Buf, Dtype, Gpu, Launch};
use xlt::rng::Rng;

const DTYPES: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];
const NS: [usize; 3] = [1, 7, 511];
const CS: [usize; 2] = [40, 768];

on_both_devices!(
    embedding_forward_matches_cpu,
    embedding_forward_of_an_id_past_the_table_is_nan,
    embedding_backward_matches_cpu_exactly_with_repeats_and_padding,
    embedding_backward_rejects_ids_outside_the_table,
    layernorm_forward_matches_cpu,
    layernorm_backward_matches_cpu,
    layernorm_backward_is_deterministic,
    gelu_forward_and_backward_match_cpu,
    tanh_forward_and_backward_match_cpu,
    dropout_mask_matches_cpu_exactly,
    dropout_narrow_dtypes_match_cpu,
    dropout_with_p_zero_is_a_no_op,
    residual_forward_matches_cpu,
);

/// Whether `g` is the host kernel emulator (slow: some sizes are GPU-only).
fn emulated(g: &Gpu) -> bool {
    g.info().name == "host kernel emulator"
}

/// `v` rounded to `d`, uploaded as `d`.
fn up(g: &Gpu, v: &[f32], d: Dtype) -> Buf {
    g.upload_f32(v, d, "test input").unwrap()
}

fn up_u32(g: &Gpu, v: &[u32]) -> Buf {
    let b = g.alloc_uninit(v.len(), Dtype::U32, "test ids").unwrap();
    g.write_u32(b.dev(), v).unwrap();
    b
}

/// `n` elements of `d`, every byte 0xff (NaN): an output the kernel must fully write.
fn poisoned(g: &Gpu, n: usize, d: Dtype, what: &str) -> Buf {
    let b = g.alloc_uninit(n, d, what).unwrap();
    g.fill_bytes(b.dev(), 0xff).unwrap();
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

/// `plan` on a grid of `blocks` blocks instead of its own: a grid-stride kernel must cover any N
/// from any grid, which a small grid shows at sizes the emulator runs quickly.
fn on_blocks(plan: Launch, blocks: usize) -> Launch {
    let gr = grid([blocks, 1, 1], plan.grid.threads, plan.grid.shared as usize).unwrap();
    Launch::new(plan.kernel, plan.dtype, gr, plan.args()).unwrap()
}

// ----------------------------------------------------------------------------------------------
// embeddings

const V: usize = 37; // fewer rows than 511 tokens: ids repeat
const P: usize = 24;
const TT: usize = 2;
const PAD: u32 = 1;

fn embedding_forward_matches_cpu(g: &Gpu) {
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

                let out = poisoned(g, n * c, d, "out");
                let (gi, gp, gt) = (up_u32(g, &ids), up_u32(g, &pos), up_u32(g, &types));
                let (bte, bpe, btt) = (up(g, &wte, d), up(g, &wpe, d), up(g, &wtt, d));
                ops::embedding_forward(
                    g,
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
                let got = down(g, &out);
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

/// The device cannot report an id past its table: that row comes out NaN (no wild read), the
/// others as usual. The output starts at 0 here, so a NaN is the kernel's.
fn embedding_forward_of_an_id_past_the_table_is_nan(g: &Gpu) {
    let (n, c) = (3, 40);
    let (wte, wpe, wtt) = (rand_vec(V * c, 1.0, 7), rand_vec(P * c, 1.0, 8), rand_vec(TT * c, 1.0, 9));
    let (ids, pos, types) = ([0, V as u32, 2], [0, 1, P as u32 + 5], [1, 0, 0]);
    let out = g.alloc(n * c, Dtype::F32, "out").unwrap();
    let (gi, gp, gt) = (up_u32(g, &ids), up_u32(g, &pos), up_u32(g, &types));
    let (bte, bpe, btt) = (up(g, &wte, Dtype::F32), up(g, &wpe, Dtype::F32), up(g, &wtt, Dtype::F32));
    ops::embedding_forward(g, out.dev(), gi.dev(), gp.dev(), gt.dev(), bte.dev(), bpe.dev(), btt.dev(), n, c).unwrap();
    let got = down(g, &out);
    let mut want = vec![0.0; c];
    cpu::embedding_forward(&mut want, &ids[..1], &pos[..1], &types[..1], &wte, &wpe, &wtt, 1, c);
    assert_bits("embedding_forward row 0", &got[..c], &want);
    assert!(got[c..].iter().all(|v| v.is_nan()), "rows with an id past their table must be NaN");
}

/// Runs the device embedding backward from the given initial gradients; returns (dwte, dwpe,
/// dwtt).
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
    let groups = ops::EmbeddingGroups::new(ids, pos, types, Some(PAD), Some(PAD), [V, P, TT]).unwrap();
    let mut packed = Vec::new();
    groups.pack(&mut packed);
    let plan = up_u32(g, &packed);
    let (dwte, dwpe, dwtt) = (up(g, init.0, Dtype::F32), up(g, init.1, Dtype::F32), up(g, init.2, Dtype::F32));
    let gd = up(g, dout, d);
    ops::embedding_backward(g, dwte.dev(), dwpe.dev(), dwtt.dev(), gd.dev(), &groups, plan.dev(), n, c).unwrap();
    (down(g, &dwte), down(g, &dwpe), down(g, &dwtt))
}

fn embedding_backward_matches_cpu_exactly_with_repeats_and_padding(g: &Gpu) {
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
                let run = || gpu_embedding_backward(g, (&init.0, &init.1, &init.2), &dout, &ids, &pos, &types, d, n, c);
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

/// An id past its table is `Error::Usage` when the groups are built; groups that name rows past
/// the device table, or a packed plan shorter than the groups, are `Error::Usage` before any
/// launch.
fn embedding_backward_rejects_ids_outside_the_table(g: &Gpu) {
    let (n, c) = (3, 40);
    let (ids, pos, types) = ([0, V as u32, 2], [0, 1, 2], [0, 0, 0]);
    let r = ops::EmbeddingGroups::new(&ids, &pos, &types, None, None, [V, P, TT]);
    assert!(matches!(r, Err(xlt::Error::Usage(_))), "an id past the table must be Error::Usage, got {r:?}");

    let (dwte, dwpe, dwtt) = (
        g.alloc(V * c, Dtype::F32, "dwte").unwrap(),
        g.alloc(P * c, Dtype::F32, "dwpe").unwrap(),
        g.alloc(TT * c, Dtype::F32, "dwtt").unwrap(),
    );
    let dout = up(g, &rand_vec(n * c, 1.0, 1), Dtype::F32);
    // Groups for a larger word table than the device one.
    let groups = ops::EmbeddingGroups::new(&ids, &pos, &types, None, None, [V + 1, P, TT]).unwrap();
    let mut packed = Vec::new();
    groups.pack(&mut packed);
    let plan = up_u32(g, &packed);
    let r = ops::embedding_backward(g, dwte.dev(), dwpe.dev(), dwtt.dev(), dout.dev(), &groups, plan.dev(), n, c);
    assert!(matches!(r, Err(xlt::Error::Usage(_))), "a row past dwte must be Error::Usage, got {r:?}");
    // A plan view shorter than the groups.
    let ok = [0, 1, 2];
    let groups = ops::EmbeddingGroups::new(&ok, &pos, &types, None, None, [V, P, TT]).unwrap();
    packed.clear();
    groups.pack(&mut packed);
    let plan = up_u32(g, &packed);
    let short = plan.dev().at(0, packed.len() - 1);
    let r = ops::embedding_backward(g, dwte.dev(), dwpe.dev(), dwtt.dev(), dout.dev(), &groups, short, n, c);
    assert!(matches!(r, Err(xlt::Error::Usage(_))), "a short plan must be Error::Usage, got {r:?}");
    // Nothing was written.
    assert!(down(g, &dwte).iter().chain(&down(g, &dwpe)).chain(&down(g, &dwtt)).all(|&v| v == 0.0));
}

// ----------------------------------------------------------------------------------------------
// layernorm

const EPS: f32 = 1e-5;
/// Rows for LayerNorm: [`NS`] and N = 1031, where each backward block handles more than one row
/// (the backward's blocks are fixed at 512 once N > 512) and the last block fewer than the others.
const LN_NS: [usize; 4] = [1, 7, 511, 1031];

/// (N, C) of the LayerNorm backward tests: [`LN_NS`] × [`CS`] on the GPU. The emulator (about
/// 40 µs per row and thread of a block) runs C = 40 at N = 1, 7 and 513 (257 blocks of two rows,
/// the last of one) and C = 768 at N = 1, 7 and 37; the GPU adds N = 511 and 1031 at both C.
fn ln_backward_shapes(g: &Gpu) -> Vec<(usize, usize)> {
    if emulated(g) {
        vec![(1, 40), (7, 40), (513, 40), (1, 768), (7, 768), (37, 768)]
    } else {
        LN_NS.iter().flat_map(|&n| CS.map(|c| (n, c))).collect()
    }
}

/// Inputs (N, C) with a non-zero mean per row, and w, b (C), rounded to `d`.
fn ln_inputs(n: usize, c: usize, d: Dtype, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = rand_vec(n * c, 2.0, seed).iter().map(|v| v + 0.7).collect();
    let w: Vec<f32> = rand_vec(c, 0.3, seed + 1).iter().map(|v| v + 1.0).collect();
    let b = rand_vec(c, 0.2, seed + 2);
    (round_to(&x, d), round_to(&w, d), round_to(&b, d))
}

fn layernorm_forward_matches_cpu(g: &Gpu) {
    for d in DTYPES {
        for n in LN_NS {
            for c in CS {
                let (x, w, b) = ln_inputs(n, c, d, 21);
                let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
                cpu::layernorm_forward(&mut out, &mut mean, &mut rstd, &x, &w, &b, n, c, EPS);

                let gout = poisoned(g, n * c, d, "out");
                let gmean = poisoned(g, n, Dtype::F32, "mean");
                let grstd = poisoned(g, n, Dtype::F32, "rstd");
                let (gx, gw, gb) = (up(g, &x, d), up(g, &w, d), up(g, &b, d));
                ops::layernorm_forward(
                    g,
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
                assert_close(&format!("{what} out"), &down(g, &gout), &out, tolerance(d));
                // The statistics are f32 from the same (rounded) inputs whatever the dtype; only
                // the summation order differs.
                assert_close(&format!("{what} mean"), &down(g, &gmean), &mean, tolerance(Dtype::F32));
                assert_close(&format!("{what} rstd"), &down(g, &grstd), &rstd, tolerance(Dtype::F32));
            }
        }
    }
}

/// The device LayerNorm backward from the given initial dw, db; returns (dinp, dw, db).
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
    let gdinp = poisoned(g, n * c, d, "dinp");
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

/// See [`ln_backward_shapes`] for the sizes on each device.
fn layernorm_backward_matches_cpu(g: &Gpu) {
    for d in DTYPES {
        for &(n, c) in &ln_backward_shapes(g) {
            let (x, w, b) = ln_inputs(n, c, d, 31);
            let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
            cpu::layernorm_forward(&mut out, &mut mean, &mut rstd, &x, &w, &b, n, c, EPS);
            let dout = round_to(&rand_vec(n * c, 1.0, 32), d);
            let (dw0, db0) = (rand_vec(c, 1.0, 33), rand_vec(c, 1.0, 34));
            let (mut dinp, mut dw, mut db) = (vec![0.0; n * c], dw0.clone(), db0.clone());
            cpu::layernorm_backward(&mut dinp, &mut dw, &mut db, &dout, &x, &mean, &rstd, &w, n, c);

            let (gdinp, gdw, gdb) = gpu_layernorm_backward(g, &dout, &x, &mean, &rstd, &w, &dw0, &db0, d, n, c);
            let what = format!("layernorm_backward {d:?} N={n} C={c}");
            assert_close(&format!("{what} dinp"), &gdinp, &dinp, tolerance(d));
            // dw, db are f32 sums of f32 products of the same rounded inputs on both sides;
            // only the summation order differs, whatever the activation dtype.
            assert_close(&format!("{what} dw"), &gdw, &dw, tolerance(Dtype::F32));
            assert_close(&format!("{what} db"), &gdb, &db, tolerance(Dtype::F32));
        }
    }
}

/// Two runs are bit-identical, with one row per block and with several: C = 768 at N = 511 and
/// 1031 on the GPU; on the emulator (see [`ln_backward_shapes`]) N = 37 at C = 768 and N = 513 at
/// C = 40.
fn layernorm_backward_is_deterministic(g: &Gpu) {
    let shapes = if emulated(g) { [(37, 768), (513, 40)] } else { [(511, 768), (1031, 768)] };
    for d in [Dtype::F32, Dtype::Bf16] {
        for (n, c) in shapes {
            let (x, w, b) = ln_inputs(n, c, d, 41);
            let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
            cpu::layernorm_forward(&mut out, &mut mean, &mut rstd, &x, &w, &b, n, c, EPS);
            let dout = round_to(&rand_vec(n * c, 1.0, 42), d);
            let (dw0, db0) = (rand_vec(c, 1.0, 43), rand_vec(c, 1.0, 44));
            let first = gpu_layernorm_backward(g, &dout, &x, &mean, &rstd, &w, &dw0, &db0, d, n, c);
            let second = gpu_layernorm_backward(g, &dout, &x, &mean, &rstd, &w, &dw0, &db0, d, n, c);
            let what = format!("layernorm_backward {d:?} N={n} C={c}");
            assert_bits(&format!("{what} rerun dinp"), &second.0, &first.0);
            assert_bits(&format!("{what} rerun dw"), &second.1, &first.1);
            assert_bits(&format!("{what} rerun db"), &second.2, &first.2);
        }
    }
}

// ----------------------------------------------------------------------------------------------
// activations

/// Element counts: 1, 7, 511 and a few rows of 768 channels (more than one block).
const LENS: [usize; 4] = [1, 7, 511, 7 * 768 + 5];

fn gelu_forward_and_backward_match_cpu(g: &Gpu) {
    // Bounds relative to max(|want|, 1): GELU of inputs in [-4, 4] is O(1), and the CPU twin's
    // erf (Abramowitz-Stegun 7.1.26, cpu/math.rs) is exact to 1.5e-7 absolute only, so a lone
    // input in the negative tail (N = 1: x = -3.53, out = -7.4e-4) cannot be held to 1e-5 of its
    // own tiny value; the kernel's erff is the closer one there.
    for d in DTYPES {
        for n in LENS {
            let x = round_to(&rand_vec(n, 4.0, 51), d);
            let dout = round_to(&rand_vec(n, 1.0, 52), d);
            let mut out = vec![0.0; n];
            cpu::gelu_forward(&mut out, &x, n);
            let mut dinp = vec![0.0; n];
            cpu::gelu_backward(&mut dinp, &x, &dout, n);

            let (gx, gdout) = (up(g, &x, d), up(g, &dout, d));
            let (gout, gdinp) = (poisoned(g, n, d, "out"), poisoned(g, n, d, "dinp"));
            ops::gelu_forward(g, gout.dev(), gx.dev(), n).unwrap();
            ops::gelu_backward(g, gdinp.dev(), gx.dev(), gdout.dev(), n).unwrap();
            let floored = |got: &[f32], want: &[f32], what: String| {
                let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                // A NaN (an unwritten element) is an infinite error, not one `max` skips.
                let err = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, |m, e| {
                    if e.is_nan() {
                        f32::INFINITY
                    } else {
                        m.max(e)
                    }
                });
                assert!(err <= tolerance(d) * scale, "{what}: max error {err:e} (bound {:e})", tolerance(d) * scale);
            };
            floored(&down(g, &gout), &out, format!("gelu_forward {d:?} N={n}"));
            floored(&down(g, &gdinp), &dinp, format!("gelu_backward {d:?} N={n}"));
        }
    }
}

fn tanh_forward_and_backward_match_cpu(g: &Gpu) {
    for d in DTYPES {
        for n in LENS {
            let x = round_to(&rand_vec(n, 3.0, 61), d);
            let dout = round_to(&rand_vec(n, 1.0, 62), d);
            let mut out = vec![0.0; n];
            cpu::tanh_forward(&mut out, &x, n);
            // The backward reads the forward's output as the device stored it (rounded to d).
            let out_d = round_to(&out, d);
            let mut dinp = vec![0.0; n];
            cpu::tanh_backward(&mut dinp, &out_d, &dout, n);

            let (gx, gdout) = (up(g, &x, d), up(g, &dout, d));
            let (gout, gdinp) = (poisoned(g, n, d, "out"), poisoned(g, n, d, "dinp"));
            ops::tanh_forward(g, gout.dev(), gx.dev(), n).unwrap();
            let got_out = down(g, &gout);
            let gout_d = up(g, &out_d, d);
            ops::tanh_backward(g, gdinp.dev(), gout_d.dev(), gdout.dev(), n).unwrap();
            assert_close(&format!("tanh_forward {d:?} N={n}"), &got_out, &out, tolerance(d));
            assert_close(&format!("tanh_backward {d:?} N={n}"), &down(g, &gdinp), &dinp, tolerance(d));
        }
    }
}

// ----------------------------------------------------------------------------------------------
// dropout and residual

/// Dropout forward and backward (f32) bit-identical to the CPU's. The GPU also runs N = 2²² + 3,
/// more than the launch's largest grid covers in one sweep (the kernel's grid-stride loop through
/// the wrapper's own plan); the emulator, too slow for that many threads, runs the wrapper up to
/// N = 50003 and covers the grid-stride loop by running the same plan on 3 blocks.
fn dropout_mask_matches_cpu_exactly(g: &Gpu) {
    let mut lens = vec![1, 7, 511, 7 * 768 + 5, 50_003];
    if !emulated(g) {
        lens.push((1 << 22) + 3);
    }
    for n in lens {
        for (p, seed) in [(0.1f32, 0x1234_5678_9abc_def0u64), (0.5, 7)] {
            let x = rand_vec(n, 1.0, 71);
            let mut want = x.clone();
            cpu::dropout_forward(&mut want, p, seed, n);
            let gx = up(g, &x, Dtype::F32);
            ops::dropout_forward(g, gx.dev(), p, seed, n).unwrap();
            let got = down(g, &gx);
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
            let gdx = up(g, &dx, Dtype::F32);
            ops::dropout_backward(g, gdx.dev(), p, seed, n).unwrap();
            assert_bits(&format!("dropout_backward f32 N={n} p={p}"), &down(g, &gdx), &want_dx);
            // The same plan on a grid of 3 blocks: each thread loops over many elements.
            if n > 3 * 256 {
                let gx = up(g, &x, Dtype::F32);
                let plan = ops::dropout_plan(gx.dev(), p, seed, n).unwrap().expect("p > 0 launches");
                g.launch(&on_blocks(plan, 3)).unwrap();
                assert_bits(&format!("dropout_forward f32 N={n} p={p} on 3 blocks"), &down(g, &gx), &want);
            }
        }
    }
}

fn dropout_narrow_dtypes_match_cpu(g: &Gpu) {
    for d in [Dtype::Bf16, Dtype::F16] {
        for n in LENS {
            let (p, seed) = (0.1f32, 99u64);
            let x = round_to(&rand_vec(n, 1.0, 81), d);
            let mut want = x.clone();
            cpu::dropout_forward(&mut want, p, seed, n);
            let gx = up(g, &x, d);
            ops::dropout_forward(g, gx.dev(), p, seed, n).unwrap();
            let got = down(g, &gx);
            let what = format!("dropout_forward {d:?} N={n}");
            for i in 0..n {
                assert_eq!(got[i] == 0.0, want[i] == 0.0, "{what}: the masks differ at element {i}");
            }
            assert_close(&what, &got, &want, tolerance(d));
        }
    }
}

fn dropout_with_p_zero_is_a_no_op(g: &Gpu) {
    let x = rand_vec(511, 1.0, 91);
    let gx = up(g, &x, Dtype::F32);
    let launches = g.counts().launches;
    ops::dropout_forward(g, gx.dev(), 0.0, 5, 511).unwrap();
    ops::dropout_backward(g, gx.dev(), 0.0, 5, 511).unwrap();
    assert_eq!(g.counts().launches, launches, "dropout with p = 0 launches nothing");
    assert_bits("dropout p=0", &down(g, &gx), &x);
}

fn residual_forward_matches_cpu(g: &Gpu) {
    for d in DTYPES {
        for n in LENS {
            let out0 = round_to(&rand_vec(n, 1.0, 101), d);
            let inp = round_to(&rand_vec(n, 1.0, 102), d);
            let mut want = out0.clone();
            cpu::residual_forward(&mut want, &inp, n);
            let (gout, ginp) = (up(g, &out0, d), up(g, &inp, d));
            ops::residual_forward(g, gout.dev(), ginp.dev(), n).unwrap();
            let got = down(g, &gout);
            let what = format!("residual_forward {d:?} N={n}");
            if d == Dtype::F32 {
                assert_bits(&what, &got, &want);
            } else {
                assert_close(&what, &got, &want, tolerance(d));
            }
        }
    }
}
