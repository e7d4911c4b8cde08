//! GPU parity tests of multi-head attention (forward and backward, key-padding mask, dropout on
//! the probabilities) and of softmax cross-entropy (2 to 250002 classes, in place and out of
//! place), each against its CPU twin in `cpu::ops`. Without a GPU every test prints a skip line
//! and passes.

use std::sync::{Mutex, MutexGuard};
use xlt::cpu::ops as cpu;
use xlt::cuda::ops::{self, AttnScratch};
use xlt::cuda::testing::{assert_close, gpu_or_skip, rand_vec, round_to, tolerance};
use xlt::cuda::{Buf, Dtype, Gpu};

const DTYPES: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];
const SEED: u64 = 0x5eed_a77e_0001;

/// The tests share one GPU: run them one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn up(g: &Gpu, v: &[f32], d: Dtype) -> Buf {
    g.upload_f32(v, d, "test input").unwrap()
}

fn read(g: &Gpu, b: &Buf) -> Vec<f32> {
    g.read_f32(b.dev()).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

// ---------------------------------------------------------------------------------------------
// attention

/// Key-padding mask (B, T): sequence 0 (mod 3) is all real tokens, sequence 1 has its last
/// third padded, sequence 2 is all padding (every query row fully masked).
fn make_mask(b: usize, t: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; b * t];
    for bi in 0..b {
        let real = match bi % 3 {
            0 => t,
            1 => (2 * t).div_ceil(3),
            _ => 0,
        };
        m[bi * t..bi * t + real].fill(1.0);
    }
    m
}

/// Backward bound: in bf16/f16 two T×T intermediates (dP, dS) are rounded to the activation
/// dtype before the last products (the CPU keeps them in f32), so twice the forward bound.
fn backward_tol(d: Dtype) -> f32 {
    2.0 * tolerance(d)
}

/// Runs attention forward and backward on the GPU and the CPU for one shape, dtype and dropout
/// probability, comparing out, att and dqkv.
fn check_attention(g: &Gpu, d: Dtype, (b, t, c, nh): (usize, usize, usize, usize), p: f32) {
    let what = format!("{d:?} B={b} T={t} C={c} NH={nh} p={p}");
    let qkv = round_to(&rand_vec(b * t * 3 * c, 1.0, 1 + (b * t * c) as u64), d);
    let dout = round_to(&rand_vec(b * t * c, 1.0, 2 + (b * t * c) as u64), d);
    let mask = make_mask(b, t);

    // CPU forward
    let mut out_c = vec![0.0f32; b * t * c];
    let mut att_c = vec![0.0f32; b * nh * t * t];
    cpu::attention_forward(&mut out_c, &mut att_c, &qkv, &mask, b, t, c, nh, p, SEED);

    // GPU forward (outputs pre-filled with garbage: they must be overwritten)
    let s = AttnScratch::new(g, d, b, t, c, nh).unwrap();
    let qkv_g = up(g, &qkv, d);
    let mask_g = up(g, &mask, Dtype::F32);
    let out_g = up(g, &rand_vec(b * t * c, 9.0, 3), d);
    let att_g = up(g, &rand_vec(b * nh * t * t, 9.0, 4), d);
    ops::attention_forward(g, out_g.dev(), att_g.dev(), qkv_g.dev(), mask_g.dev(), &s, b, t, c, nh, p, SEED).unwrap();
    let att_gpu = read(g, &att_g);
    assert_close(&format!("attention_forward att {what}"), &att_gpu, &att_c, tolerance(d));
    assert_close(&format!("attention_forward out {what}"), &read(g, &out_g), &out_c, tolerance(d));
    // Fully masked rows are exactly zero.
    for bi in (0..b).filter(|bi| bi % 3 == 2) {
        let (o, a) = (read(g, &out_g), &att_gpu);
        assert!(o[bi * t * c..(bi + 1) * t * c].iter().all(|&x| x == 0.0), "{what}: masked sequence {bi} out not 0");
        assert!(a[bi * nh * t * t..(bi + 1) * nh * t * t].iter().all(|&x| x == 0.0), "{what}: masked att not 0");
    }

    // Backward, both sides from the GPU's probabilities (so this checks the backward alone).
    let mut dqkv_c = vec![0.0f32; b * t * 3 * c];
    cpu::attention_backward(&mut dqkv_c, &dout, &qkv, &att_gpu, b, t, c, nh, p, SEED);
    let dout_g = up(g, &dout, d);
    let dqkv_g = up(g, &rand_vec(b * t * 3 * c, 9.0, 5), d);
    ops::attention_backward(g, dqkv_g.dev(), dout_g.dev(), qkv_g.dev(), att_g.dev(), &s, b, t, c, nh, p, SEED).unwrap();
    assert_close(&format!("attention_backward dqkv {what}"), &read(g, &dqkv_g), &dqkv_c, backward_tol(d));
}

#[test]
fn attention_matches_cpu_small() {
    let Some(g) = gpu_or_skip("attention_matches_cpu_small") else { return };
    let _s = serial();
    for d in DTYPES {
        // B = 3: one full sequence, one padded tail, one fully masked; HS = 10.
        for shape in [(3, 7, 40, 4), (1, 1, 40, 4), (2, 33, 96, 3)] {
            for p in [0.0, 0.1] {
                check_attention(&g, d, shape, p);
            }
        }
    }
}

#[test]
fn attention_matches_cpu_t511() {
    let Some(g) = gpu_or_skip("attention_matches_cpu_t511") else { return };
    let _s = serial();
    // BERT-base heads (HS 64) at T = 511; sequence 1 has a padded tail. The CPU reference is the
    // slow part, so two (dtype, p) pairs: f32 with dropout (masks must match exactly), bf16 without.
    check_attention(&g, Dtype::F32, (2, 511, 768, 12), 0.1);
    check_attention(&g, Dtype::Bf16, (2, 511, 768, 12), 0.0);
}

/// Fused (flash) attention against the CPU for one shape: out, the log-sum-exps (finite for rows
/// with a real key, +inf for fully masked ones) and dqkv from the CPU's probabilities; then
/// against the unfused GPU path. Outputs start as garbage: everything must be overwritten.
fn check_flash(g: &Gpu, d: Dtype, (b, t, c, nh): (usize, usize, usize, usize), p: f32) {
    let what = format!("flash {d:?} B={b} T={t} C={c} NH={nh} p={p}");
    let qkv = round_to(&rand_vec(b * t * 3 * c, 1.0, 11 + (b * t * c) as u64), d);
    let dout = round_to(&rand_vec(b * t * c, 1.0, 12 + (b * t * c) as u64), d);
    let mask = make_mask(b, t);
    let mut out_c = vec![0.0f32; b * t * c];
    let mut att_c = vec![0.0f32; b * nh * t * t];
    cpu::attention_forward(&mut out_c, &mut att_c, &qkv, &mask, b, t, c, nh, p, SEED);
    let mut dqkv_c = vec![0.0f32; b * t * 3 * c];
    cpu::attention_backward(&mut dqkv_c, &dout, &qkv, &att_c, b, t, c, nh, p, SEED);

    let (qkv_g, mask_g, dout_g) = (up(g, &qkv, d), up(g, &mask, Dtype::F32), up(g, &dout, d));
    let out_g = up(g, &rand_vec(b * t * c, 9.0, 3), d);
    let lse_g = up(g, &rand_vec(b * nh * t, 9.0, 4), Dtype::F32);
    ops::flash_attention_forward(g, out_g.dev(), lse_g.dev(), qkv_g.dev(), mask_g.dev(), b, t, c, nh, p, SEED).unwrap();
    let out_f = read(g, &out_g);
    assert_close(&format!("{what}: out"), &out_f, &out_c, tolerance(d));
    for (i, l) in read(g, &lse_g).iter().enumerate() {
        let masked = (i / (nh * t)) % 3 == 2;
        assert!(if masked { *l == f32::INFINITY } else { l.is_finite() }, "{what}: lse[{i}] = {l}");
    }
    let dsum_g = g.alloc(b * nh * t, Dtype::F32, "dsum").unwrap();
    let dqkv_g = up(g, &rand_vec(b * t * 3 * c, 9.0, 5), d);
    ops::flash_attention_backward(
        g,
        dqkv_g.dev(),
        dsum_g.dev(),
        dout_g.dev(),
        out_g.dev(),
        qkv_g.dev(),
        lse_g.dev(),
        mask_g.dev(),
        b,
        t,
        c,
        nh,
        p,
        SEED,
    )
    .unwrap();
    let dqkv_f = read(g, &dqkv_g);
    assert_close(&format!("{what}: dqkv"), &dqkv_f, &dqkv_c, backward_tol(d));

    // the unfused GPU path on the same inputs agrees within the same bounds
    let s = AttnScratch::new(g, d, b, t, c, nh).unwrap();
    let att_g = g.alloc(b * nh * t * t, d, "att").unwrap();
    ops::attention_forward(g, out_g.dev(), att_g.dev(), qkv_g.dev(), mask_g.dev(), &s, b, t, c, nh, p, SEED).unwrap();
    assert_close(&format!("{what}: out vs unfused"), &out_f, &read(g, &out_g), tolerance(d));
    ops::attention_backward(g, dqkv_g.dev(), dout_g.dev(), qkv_g.dev(), att_g.dev(), &s, b, t, c, nh, p, SEED).unwrap();
    assert_close(&format!("{what}: dqkv vs unfused"), &dqkv_f, &read(g, &dqkv_g), 2.0 * backward_tol(d));
}

#[test]
fn flash_attention_matches_cpu() {
    let Some(g) = gpu_or_skip("flash_attention_matches_cpu") else { return };
    let _s = serial();
    for d in [Dtype::Bf16, Dtype::F16] {
        // every head size; T below, at and across the 64-row tiles; B = 3 includes a fully
        // masked sequence
        for shape in [(3, 7, 32, 2), (3, 64, 96, 3), (3, 130, 128, 2), (2, 100, 256, 2), (1, 1, 64, 1)] {
            for p in [0.0, 0.1] {
                check_flash(&g, d, shape, p);
            }
        }
    }
    // XLM-R Base heads at T = 511, and XLM-R Large's head count at T = 512
    check_flash(&g, Dtype::Bf16, (2, 511, 768, 12), 0.1);
    check_flash(&g, Dtype::Bf16, (1, 512, 1024, 16), 0.0);
}

#[test]
fn flash_attention_is_deterministic() {
    let Some(g) = gpu_or_skip("flash_attention_is_deterministic") else { return };
    let _s = serial();
    let (d, b, t, c, nh, p) = (Dtype::Bf16, 3, 511, 768, 12, 0.1);
    let qkv = up(&g, &rand_vec(b * t * 3 * c, 1.0, 31), d);
    let dout = up(&g, &rand_vec(b * t * c, 1.0, 32), d);
    let mask = up(&g, &make_mask(b, t), Dtype::F32);
    let (out, lse, dsum) = (
        g.alloc(b * t * c, d, "out").unwrap(),
        g.alloc(b * nh * t, Dtype::F32, "lse").unwrap(),
        g.alloc(b * nh * t, Dtype::F32, "dsum").unwrap(),
    );
    let runs: Vec<(Vec<f32>, Vec<f32>)> = (0..2)
        .map(|_| {
            ops::flash_attention_forward(&g, out.dev(), lse.dev(), qkv.dev(), mask.dev(), b, t, c, nh, p, SEED)
                .unwrap();
            let dqkv = g.alloc(b * t * 3 * c, d, "dqkv").unwrap();
            let (o, l, m) = (out.dev(), lse.dev(), mask.dev());
            ops::flash_attention_backward(
                &g,
                dqkv.dev(),
                dsum.dev(),
                dout.dev(),
                o,
                qkv.dev(),
                l,
                m,
                b,
                t,
                c,
                nh,
                p,
                SEED,
            )
            .unwrap();
            (read(&g, &out), read(&g, &dqkv))
        })
        .collect();
    assert_eq!(bits(&runs[0].0), bits(&runs[1].0), "flash forward reruns differ");
    assert_eq!(bits(&runs[0].1), bits(&runs[1].1), "flash backward reruns differ");
}

#[test]
fn attention_backward_is_deterministic() {
    let Some(g) = gpu_or_skip("attention_backward_is_deterministic") else { return };
    let _s = serial();
    for d in [Dtype::F32, Dtype::Bf16] {
        let (b, t, c, nh, p) = (3, 511, 768, 12, 0.1);
        let s = AttnScratch::new(&g, d, b, t, c, nh).unwrap();
        let qkv = up(&g, &rand_vec(b * t * 3 * c, 1.0, 21), d);
        let dout = up(&g, &rand_vec(b * t * c, 1.0, 22), d);
        let mask = up(&g, &make_mask(b, t), Dtype::F32);
        let out = g.alloc(b * t * c, d, "out").unwrap();
        let att = g.alloc(b * nh * t * t, d, "att").unwrap();
        let runs: Vec<(Vec<f32>, Vec<f32>)> = (0..2)
            .map(|_| {
                ops::attention_forward(&g, out.dev(), att.dev(), qkv.dev(), mask.dev(), &s, b, t, c, nh, p, SEED)
                    .unwrap();
                let dqkv = g.alloc(b * t * 3 * c, d, "dqkv").unwrap();
                ops::attention_backward(&g, dqkv.dev(), dout.dev(), qkv.dev(), att.dev(), &s, b, t, c, nh, p, SEED)
                    .unwrap();
                (read(&g, &out), read(&g, &dqkv))
            })
            .collect();
        assert_eq!(bits(&runs[0].0), bits(&runs[1].0), "attention_forward {d:?}: reruns differ");
        assert_eq!(bits(&runs[0].1), bits(&runs[1].1), "attention_backward {d:?}: reruns differ");
    }
}

#[test]
fn attention_rejects_bad_arguments() {
    let Some(g) = gpu_or_skip("attention_rejects_bad_arguments") else { return };
    let _s = serial();
    let (b, t, c, nh) = (2, 7, 40, 4);
    let s = AttnScratch::new(&g, Dtype::F32, b, t, c, nh).unwrap();
    let qkv = g.alloc(b * t * 3 * c, Dtype::F32, "qkv").unwrap();
    let mask = g.alloc(b * t, Dtype::F32, "mask").unwrap();
    let out = g.alloc(b * t * c, Dtype::F32, "out").unwrap();
    let att = g.alloc(b * nh * t * t, Dtype::F32, "att").unwrap();
    let fwd = |t: usize, nh: usize, p: f32| {
        ops::attention_forward(&g, out.dev(), att.dev(), qkv.dev(), mask.dev(), &s, b, t, c, nh, p, SEED)
    };
    assert!(fwd(t, 3, 0.0).is_err(), "3 heads do not divide C = 40");
    assert!(fwd(t, nh, 1.0).is_err(), "p = 1");
    assert!(fwd(t + 1, nh, 0.0).is_err(), "buffers too small for T + 1");
    assert!(AttnScratch::new(&g, Dtype::U32, b, t, c, nh).is_err());
    let s16 = AttnScratch::new(&g, Dtype::Bf16, b, t, c, nh).unwrap();
    let r = ops::attention_forward(&g, out.dev(), att.dev(), qkv.dev(), mask.dev(), &s16, b, t, c, nh, 0.0, SEED);
    assert!(r.is_err(), "bf16 scratch with f32 activations");
}

// ---------------------------------------------------------------------------------------------
// cross-entropy

/// Targets for `n` rows of `k` classes: first and last class, an ignored row, the middle one.
fn targets(n: usize, k: usize) -> Vec<i64> {
    (0..n)
        .map(|i| match i % 5 {
            0 => 0,
            1 => k as i64 - 1,
            2 => xlt::model::IGNORE_INDEX,
            3 => (k / 2) as i64,
            _ => 1,
        })
        .collect()
}

#[test]
fn crossentropy_matches_cpu() {
    let Some(g) = gpu_or_skip("crossentropy_matches_cpu") else { return };
    let _s = serial();
    let n = 5;
    let dloss = 0.75;
    for d in DTYPES {
        for k in [3, 40, 250_002] {
            let what = format!("{d:?} N={n} K={k}");
            let logits = round_to(&rand_vec(n * k, 4.0, 30 + k as u64), d);
            let tg = targets(n, k);
            let mut losses_c = vec![0.0f32; n];
            cpu::crossentropy_forward(&mut losses_c, &logits, &tg, n, k);
            let mut dlogits_c = vec![0.0f32; n * k];
            cpu::crossentropy_backward(&mut dlogits_c, &logits, &tg, dloss, n, k);

            let logits_g = up(&g, &logits, d);
            let tg_g = g.alloc(n, Dtype::I64, "targets").unwrap();
            g.write_i64(tg_g.dev(), &tg).unwrap();

            // forward: losses are f32 computed from the same (rounded) logits in f32 on both
            // sides, so the f32 bound holds for every dtype.
            let losses_g = up(&g, &vec![7.0; n], Dtype::F32);
            ops::crossentropy_forward(&g, losses_g.dev(), logits_g.dev(), tg_g.dev(), n, k).unwrap();
            let losses = read(&g, &losses_g);
            assert_close(&format!("crossentropy_forward {what}"), &losses, &losses_c, tolerance(Dtype::F32));
            assert_eq!(losses[2], 0.0, "{what}: ignored row's loss");

            // backward out of place (dlogits pre-filled with garbage), then in place
            let dl_g = up(&g, &rand_vec(n * k, 9.0, 31), d);
            ops::crossentropy_backward(&g, dl_g.dev(), logits_g.dev(), tg_g.dev(), dloss, n, k).unwrap();
            let dl = read(&g, &dl_g);
            assert_close(&format!("crossentropy_backward {what}"), &dl, &dlogits_c, tolerance(d));
            assert!(dl[2 * k..3 * k].iter().all(|&x| x == 0.0), "{what}: ignored row's gradient not 0");
            // Per counted row, the non-target entries against their own scale (at K = 250002
            // they are ~1e-5, invisible next to the target's -dloss). In f16 they are
            // subnormal, where the spacing is 6e-8: a looser bound.
            let row_tol = if d == Dtype::F16 { 1e-2 } else { tolerance(d) };
            for i in (0..n).filter(|&i| tg[i] != xlt::model::IGNORE_INDEX) {
                let t = tg[i] as usize;
                let drop_t = |v: &[f32]| -> Vec<f32> {
                    v[i * k..(i + 1) * k].iter().enumerate().filter(|&(j, _)| j != t).map(|(_, &x)| x).collect()
                };
                assert_close(
                    &format!("crossentropy_backward {what} row {i}"),
                    &drop_t(&dl),
                    &drop_t(&dlogits_c),
                    row_tol,
                );
            }

            ops::crossentropy_backward(&g, logits_g.dev(), logits_g.dev(), tg_g.dev(), dloss, n, k).unwrap();
            assert_eq!(bits(&read(&g, &logits_g)), bits(&dl), "{what}: in place differs from out of place");
        }
    }
}

#[test]
fn crossentropy_invalid_target_is_nan_not_a_wild_read() {
    let Some(g) = gpu_or_skip("crossentropy_invalid_target_is_nan_not_a_wild_read") else { return };
    let _s = serial();
    let (n, k) = (3, 40);
    let logits = up(&g, &rand_vec(n * k, 2.0, 40), Dtype::F32);
    let tg = g.alloc(n, Dtype::I64, "targets").unwrap();
    g.write_i64(tg.dev(), &[5, k as i64 + 1_000_000, -7]).unwrap();
    let losses = g.alloc(n, Dtype::F32, "losses").unwrap();
    ops::crossentropy_forward(&g, losses.dev(), logits.dev(), tg.dev(), n, k).unwrap();
    let l = g.read_f32(losses.dev()).unwrap();
    assert!(l[0].is_finite() && l[1].is_nan() && l[2].is_nan(), "losses {l:?}");
    let dl = g.alloc(n * k, Dtype::F32, "dlogits").unwrap();
    ops::crossentropy_backward(&g, dl.dev(), logits.dev(), tg.dev(), 1.0, n, k).unwrap();
    assert!(g.read_f32(dl.dev()).unwrap().iter().all(|x| x.is_finite()));
}
