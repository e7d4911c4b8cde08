//! Parity tests of multi-head attention (unfused and fused: forward and backward, key-padding
//! mask, dropout on the probabilities) and of softmax cross-entropy (2 to 250002 classes, in place
//! and out of place), each against its CPU twin in `cpu::ops`; the fused path also against the
//! unfused one; determinism of both paths (run twice, compare bits); the wrappers' argument
//! errors.
//!
//! Every test runs on the host kernel emulator (`name::emulated`, tests/cuda_emu/) and, ignored,
//! on a GPU (`name::gpu`, `--ignored`); the emulator runs smaller shapes where the GPU's would
//! take minutes (each test's doc says what only the GPU runs). Outputs a kernel must fully write
//! start as NaN (0xff bytes), so an unwritten element fails on both devices.

#[path = "cuda_emu/harness.rs"]
mod harness;

use xlt::cpu::ops as cpu;
use xlt::cuda::ops::{self, AttnScratch};
use xlt::cuda::testing::{assert_close, rand_vec, round_to, tolerance};
use xlt::cuda::{Buf, Dtype, Gpu};

const DTYPES: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];
const SEED: u64 = 0x5eed_a77e_0001;

on_both_devices!(
    attention_matches_cpu_small,
    attention_matches_cpu_long,
    flash_attention_matches_cpu,
    flash_attention_is_deterministic,
    attention_backward_is_deterministic,
    attention_rejects_bad_arguments,
    flash_attention_rejects_bad_arguments,
    crossentropy_matches_cpu,
    crossentropy_rejects_partly_overlapping_views,
    crossentropy_invalid_target_is_nan_not_a_wild_read,
);

/// Whether `g` is the host kernel emulator (slow: some shapes are GPU-only).
fn emulated(g: &Gpu) -> bool {
    g.info().name == "host kernel emulator"
}

fn up(g: &Gpu, v: &[f32], d: Dtype) -> Buf {
    g.upload_f32(v, d, "test input").unwrap()
}

/// `n` elements of `d`, every byte 0xff (NaN): an output the kernel must fully write.
fn poisoned(g: &Gpu, n: usize, d: Dtype, what: &str) -> Buf {
    let b = g.alloc_uninit(n, d, what).unwrap();
    g.fill_bytes(b.dev(), 0xff).unwrap();
    b
}

fn read(g: &Gpu, b: &Buf) -> Vec<f32> {
    g.read_f32(b.dev()).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Scratch for unfused attention over (B, T, C, NH) in `d`.
fn scratch(g: &Gpu, d: Dtype, (b, t, c, nh): (usize, usize, usize, usize)) -> AttnScratch {
    AttnScratch::new(g, d, b * t, b * t * t, c, nh).unwrap()
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

/// Runs attention forward and backward on the device and the CPU for one shape, dtype and
/// dropout probability, comparing out, att and dqkv.
fn check_attention(g: &Gpu, d: Dtype, (b, t, c, nh): (usize, usize, usize, usize), p: f32) {
    let what = format!("{d:?} B={b} T={t} C={c} NH={nh} p={p}");
    let qkv = round_to(&rand_vec(b * t * 3 * c, 1.0, 1 + (b * t * c) as u64), d);
    let dout = round_to(&rand_vec(b * t * c, 1.0, 2 + (b * t * c) as u64), d);
    let mask = make_mask(b, t);

    // CPU forward
    let mut out_c = vec![0.0f32; b * t * c];
    let mut att_c = vec![0.0f32; b * nh * t * t];
    cpu::attention_forward(&mut out_c, &mut att_c, &qkv, &mask, b, t, c, nh, p, SEED);

    // device forward (outputs poisoned: they must be overwritten)
    let s = scratch(g, d, (b, t, c, nh));
    let qkv_g = up(g, &qkv, d);
    let mask_g = up(g, &mask, Dtype::F32);
    let out_g = poisoned(g, b * t * c, d, "out");
    let att_g = poisoned(g, b * nh * t * t, d, "att");
    ops::attention_forward(g, out_g.dev(), att_g.dev(), qkv_g.dev(), mask_g.dev(), &s, b, t, c, nh, p, SEED).unwrap();
    let att_gpu = read(g, &att_g);
    let out_gpu = read(g, &out_g);
    assert_close(&format!("attention_forward att {what}"), &att_gpu, &att_c, tolerance(d));
    assert_close(&format!("attention_forward out {what}"), &out_gpu, &out_c, tolerance(d));
    // Fully masked rows are exactly zero.
    for bi in (0..b).filter(|bi| bi % 3 == 2) {
        let (o, a) = (&out_gpu, &att_gpu);
        assert!(o[bi * t * c..(bi + 1) * t * c].iter().all(|&x| x == 0.0), "{what}: masked sequence {bi} out not 0");
        assert!(a[bi * nh * t * t..(bi + 1) * nh * t * t].iter().all(|&x| x == 0.0), "{what}: masked att not 0");
    }

    // Backward, both sides from the device's probabilities (so this checks the backward alone).
    let mut dqkv_c = vec![0.0f32; b * t * 3 * c];
    cpu::attention_backward(&mut dqkv_c, &dout, &qkv, &att_gpu, b, t, c, nh, p, SEED);
    let dout_g = up(g, &dout, d);
    let dqkv_g = poisoned(g, b * t * 3 * c, d, "dqkv");
    ops::attention_backward(g, dqkv_g.dev(), dout_g.dev(), qkv_g.dev(), att_g.dev(), &s, b, t, c, nh, p, SEED).unwrap();
    assert_close(&format!("attention_backward dqkv {what}"), &read(g, &dqkv_g), &dqkv_c, backward_tol(d));
}

fn attention_matches_cpu_small(g: &Gpu) {
    for d in DTYPES {
        // B = 3: one full sequence, one padded tail, one fully masked; HS = 10.
        for shape in [(3, 7, 40, 4), (1, 1, 40, 4), (2, 33, 96, 3)] {
            for p in [0.0, 0.1] {
                check_attention(g, d, shape, p);
            }
        }
    }
}

/// BERT-base heads (HS 64) at T > 256; sequence 1 has a padded tail. The CPU reference is the
/// slow part, so two (dtype, p) pairs: f32 with dropout (masks must match exactly), bf16 without.
/// The GPU runs B = 2, T = 511, C = 768, NH = 12; the emulator B = 2, T = 300, C = 128, NH = 2.
fn attention_matches_cpu_long(g: &Gpu) {
    let shape = if emulated(g) { (2, 300, 128, 2) } else { (2, 511, 768, 12) };
    check_attention(g, Dtype::F32, shape, 0.1);
    check_attention(g, Dtype::Bf16, shape, 0.0);
}

/// Fused (flash) attention against the CPU for one shape: out, the log-sum-exps (finite for rows
/// with a real key, +inf for fully masked ones) and dqkv from the CPU's probabilities; then
/// against the unfused device path. Outputs start poisoned: everything must be overwritten.
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
    let out_g = poisoned(g, b * t * c, d, "out");
    let lse_g = poisoned(g, b * nh * t, Dtype::F32, "lse");
    ops::flash_attention_forward(g, out_g.dev(), lse_g.dev(), qkv_g.dev(), mask_g.dev(), b, t, c, nh, p, SEED).unwrap();
    let out_f = read(g, &out_g);
    assert_close(&format!("{what}: out"), &out_f, &out_c, tolerance(d));
    for (i, l) in read(g, &lse_g).iter().enumerate() {
        let masked = (i / (nh * t)) % 3 == 2;
        assert!(if masked { *l == f32::INFINITY } else { l.is_finite() }, "{what}: lse[{i}] = {l}");
    }
    let dsum_g = poisoned(g, b * nh * t, Dtype::F32, "dsum");
    let dqkv_g = poisoned(g, b * t * 3 * c, d, "dqkv");
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

    // the unfused device path on the same inputs agrees within the same bounds
    let s = scratch(g, d, (b, t, c, nh));
    let out_u = poisoned(g, b * t * c, d, "out (unfused)");
    let att_u = poisoned(g, b * nh * t * t, d, "att (unfused)");
    let dqkv_u = poisoned(g, b * t * 3 * c, d, "dqkv (unfused)");
    ops::attention_forward(g, out_u.dev(), att_u.dev(), qkv_g.dev(), mask_g.dev(), &s, b, t, c, nh, p, SEED).unwrap();
    assert_close(&format!("{what}: out vs unfused"), &out_f, &read(g, &out_u), tolerance(d));
    ops::attention_backward(g, dqkv_u.dev(), dout_g.dev(), qkv_g.dev(), att_u.dev(), &s, b, t, c, nh, p, SEED).unwrap();
    assert_close(&format!("{what}: dqkv vs unfused"), &dqkv_f, &read(g, &dqkv_u), 2.0 * backward_tol(d));
}

/// Every head size; T below, at and across the 64-row tiles; B = 3 includes a fully masked
/// sequence; bf16 and f16, with and without dropout.
///
/// The GPU runs every shape in both dtypes with and without dropout, and adds XLM-R Base's heads
/// at T = 511 (B = 2, C = 768, NH = 12, p = 0.1) and XLM-R Large's head count at T = 512 (B = 1,
/// C = 1024, NH = 16). The emulator (seconds per launch at these sizes) runs the two largest
/// shapes, T = 130 (HS 64) and T = 100 (HS 128), once per dtype, with the dropout settings
/// crossed (bf16: p = 0.1 at T = 130, 0 at T = 100; f16 the other way round), and T = 300
/// (B = 2, C = 64, NH = 1: five key tiles, the last partial) for the long sequences.
fn flash_attention_matches_cpu(g: &Gpu) {
    let emu = emulated(g);
    for d in [Dtype::Bf16, Dtype::F16] {
        for shape in [(3, 7, 32, 2), (3, 64, 96, 3), (1, 1, 64, 1)] {
            for p in [0.0, 0.1] {
                check_flash(g, d, shape, p);
            }
        }
        for (i, shape) in [(3, 130, 128, 2), (2, 100, 256, 2)].into_iter().enumerate() {
            if emu {
                let p = if (i == 0) == (d == Dtype::Bf16) { 0.1 } else { 0.0 };
                check_flash(g, d, shape, p);
            } else {
                for p in [0.0, 0.1] {
                    check_flash(g, d, shape, p);
                }
            }
        }
    }
    if emu {
        check_flash(g, Dtype::Bf16, (2, 300, 64, 1), 0.1);
    } else {
        check_flash(g, Dtype::Bf16, (2, 511, 768, 12), 0.1);
        check_flash(g, Dtype::Bf16, (1, 512, 1024, 16), 0.0);
    }
}

/// Two runs of the fused forward and backward from poisoned outputs are bit-identical. The GPU
/// runs B = 3, T = 511, C = 768, NH = 12; the emulator B = 3, T = 100, C = 64, NH = 2.
fn flash_attention_is_deterministic(g: &Gpu) {
    let (b, t, c, nh) = if emulated(g) { (3, 100, 64, 2) } else { (3, 511, 768, 12) };
    let (d, p) = (Dtype::Bf16, 0.1);
    let qkv = up(g, &rand_vec(b * t * 3 * c, 1.0, 31), d);
    let dout = up(g, &rand_vec(b * t * c, 1.0, 32), d);
    let mask = up(g, &make_mask(b, t), Dtype::F32);
    let (out, lse, dsum, dqkv) = (
        g.alloc_uninit(b * t * c, d, "out").unwrap(),
        g.alloc_uninit(b * nh * t, Dtype::F32, "lse").unwrap(),
        g.alloc_uninit(b * nh * t, Dtype::F32, "dsum").unwrap(),
        g.alloc_uninit(b * t * 3 * c, d, "dqkv").unwrap(),
    );
    let runs: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..2)
        .map(|_| {
            for buf in [&out, &lse, &dsum, &dqkv] {
                g.fill_bytes(buf.dev(), 0xff).unwrap();
            }
            ops::flash_attention_forward(g, out.dev(), lse.dev(), qkv.dev(), mask.dev(), b, t, c, nh, p, SEED).unwrap();
            ops::flash_attention_backward(
                g,
                dqkv.dev(),
                dsum.dev(),
                dout.dev(),
                out.dev(),
                qkv.dev(),
                lse.dev(),
                mask.dev(),
                b,
                t,
                c,
                nh,
                p,
                SEED,
            )
            .unwrap();
            (read(g, &out), read(g, &lse), read(g, &dqkv))
        })
        .collect();
    assert!(runs[0].2.iter().all(|x| x.is_finite()), "flash backward left unwritten or non-finite elements");
    assert_eq!(bits(&runs[0].0), bits(&runs[1].0), "flash forward reruns differ");
    assert_eq!(bits(&runs[0].1), bits(&runs[1].1), "flash log-sum-exp reruns differ");
    assert_eq!(bits(&runs[0].2), bits(&runs[1].2), "flash backward reruns differ");
}

/// Two runs of the unfused forward and backward from poisoned outputs are bit-identical, in f32
/// and bf16. The GPU runs B = 3, T = 511, C = 768, NH = 12; the emulator B = 3, T = 100, C = 96,
/// NH = 3.
fn attention_backward_is_deterministic(g: &Gpu) {
    let (b, t, c, nh) = if emulated(g) { (3, 100, 96, 3) } else { (3, 511, 768, 12) };
    let p = 0.1;
    for d in [Dtype::F32, Dtype::Bf16] {
        let s = scratch(g, d, (b, t, c, nh));
        let qkv = up(g, &rand_vec(b * t * 3 * c, 1.0, 21), d);
        let dout = up(g, &rand_vec(b * t * c, 1.0, 22), d);
        let mask = up(g, &make_mask(b, t), Dtype::F32);
        let out = g.alloc_uninit(b * t * c, d, "out").unwrap();
        let att = g.alloc_uninit(b * nh * t * t, d, "att").unwrap();
        let dqkv = g.alloc_uninit(b * t * 3 * c, d, "dqkv").unwrap();
        let runs: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..2)
            .map(|_| {
                for buf in [&out, &att, &dqkv] {
                    g.fill_bytes(buf.dev(), 0xff).unwrap();
                }
                ops::attention_forward(g, out.dev(), att.dev(), qkv.dev(), mask.dev(), &s, b, t, c, nh, p, SEED)
                    .unwrap();
                ops::attention_backward(g, dqkv.dev(), dout.dev(), qkv.dev(), att.dev(), &s, b, t, c, nh, p, SEED)
                    .unwrap();
                (read(g, &out), read(g, &att), read(g, &dqkv))
            })
            .collect();
        assert!(runs[0].2.iter().all(|x| x.is_finite()), "attention_backward {d:?}: unwritten or non-finite dqkv");
        assert_eq!(bits(&runs[0].0), bits(&runs[1].0), "attention_forward {d:?}: reruns differ");
        assert_eq!(bits(&runs[0].1), bits(&runs[1].1), "attention_forward {d:?}: att reruns differ");
        assert_eq!(bits(&runs[0].2), bits(&runs[1].2), "attention_backward {d:?}: reruns differ");
    }
}

fn attention_rejects_bad_arguments(g: &Gpu) {
    let (b, t, c, nh) = (2, 7, 40, 4);
    let s = scratch(g, Dtype::F32, (b, t, c, nh));
    let qkv = g.alloc(b * t * 3 * c, Dtype::F32, "qkv").unwrap();
    let mask = g.alloc(b * t, Dtype::F32, "mask").unwrap();
    let out = g.alloc(b * t * c, Dtype::F32, "out").unwrap();
    let att = g.alloc(b * nh * t * t, Dtype::F32, "att").unwrap();
    let launches = g.counts().launches;
    let fwd = |t: usize, nh: usize, p: f32| {
        ops::attention_forward(g, out.dev(), att.dev(), qkv.dev(), mask.dev(), &s, b, t, c, nh, p, SEED)
    };
    assert!(fwd(t, 3, 0.0).is_err(), "3 heads do not divide C = 40");
    assert!(fwd(t, nh, 1.0).is_err(), "p = 1");
    assert!(fwd(t + 1, nh, 0.0).is_err(), "buffers too small for T + 1");
    assert!(AttnScratch::new(g, Dtype::U32, b * t, b * t * t, c, nh).is_err());
    let s16 = scratch(g, Dtype::Bf16, (b, t, c, nh));
    let r = ops::attention_forward(g, out.dev(), att.dev(), qkv.dev(), mask.dev(), &s16, b, t, c, nh, 0.0, SEED);
    assert!(r.is_err(), "bf16 scratch with f32 activations");
    // Scratch for fewer rows or scores than the call needs.
    let small = AttnScratch::new(g, Dtype::F32, b * t - 1, b * t * t, c, nh).unwrap();
    let r = ops::attention_forward(g, out.dev(), att.dev(), qkv.dev(), mask.dev(), &small, b, t, c, nh, 0.0, SEED);
    assert!(r.is_err(), "scratch for B·T - 1 rows");
    let small = AttnScratch::new(g, Dtype::F32, b * t, b * t * t - 1, c, nh).unwrap();
    let dqkv = g.alloc(b * t * 3 * c, Dtype::F32, "dqkv").unwrap();
    let r = ops::attention_backward(g, dqkv.dev(), out.dev(), qkv.dev(), att.dev(), &small, b, t, c, nh, 0.0, SEED);
    assert!(r.is_err(), "scratch for B·T·T - 1 scores");
    assert_eq!(g.counts().launches, launches, "a rejected call launches nothing");
}

/// The fused wrappers refuse f32, head sizes without a kernel, short views and p = 1 before
/// launching anything.
fn flash_attention_rejects_bad_arguments(g: &Gpu) {
    let (b, t) = (2, 7);
    let call = |d: Dtype, c: usize, nh: usize, lse_len: usize, p: f32| {
        let qkv = g.alloc(b * t * 3 * c, d, "qkv").unwrap();
        let mask = g.alloc(b * t, Dtype::F32, "mask").unwrap();
        let out = g.alloc(b * t * c, d, "out").unwrap();
        let lse = g.alloc(lse_len, Dtype::F32, "lse").unwrap();
        ops::flash_attention_forward(g, out.dev(), lse.dev(), qkv.dev(), mask.dev(), b, t, c, nh, p, SEED)
    };
    let launches = g.counts().launches;
    assert!(call(Dtype::Bf16, 64, 2, b * 2 * t, 0.0).is_ok(), "a supported shape");
    assert_eq!(g.counts().launches, launches + 1);
    assert!(call(Dtype::F32, 64, 2, b * 2 * t, 0.0).is_err(), "f32 activations");
    assert!(call(Dtype::Bf16, 40, 4, b * 4 * t, 0.0).is_err(), "HS = 10");
    assert!(call(Dtype::F16, 64, 2, b * 2 * t - 1, 0.0).is_err(), "lse one short");
    assert!(call(Dtype::Bf16, 64, 2, b * 2 * t, 1.0).is_err(), "p = 1");
    assert_eq!(g.counts().launches, launches + 1, "a rejected call launches nothing");
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

fn crossentropy_matches_cpu(g: &Gpu) {
    // K = 250002 (the XLM-R vocabulary) is where a naive f32 sum of exp(x - max) loses its small
    // terms (1.5e-4 relative); both twins accumulate it with care (the CPU in f64, the kernel in
    // partial sums and a tree), so the tight bounds hold there too.
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

            let logits_g = up(g, &logits, d);
            let tg_g = g.alloc(n, Dtype::I64, "targets").unwrap();
            g.write_i64(tg_g.dev(), &tg).unwrap();

            // forward: losses are f32 computed from the same (rounded) logits in f32 on both
            // sides, so the f32 bound holds for every dtype.
            let losses_g = poisoned(g, n, Dtype::F32, "losses");
            ops::crossentropy_forward(g, losses_g.dev(), logits_g.dev(), tg_g.dev(), n, k).unwrap();
            let losses = read(g, &losses_g);
            assert_close(&format!("crossentropy_forward {what}"), &losses, &losses_c, tolerance(Dtype::F32));
            assert_eq!(losses[2], 0.0, "{what}: ignored row's loss");

            // backward out of place (dlogits poisoned), then in place
            let dl_g = poisoned(g, n * k, d, "dlogits");
            ops::crossentropy_backward(g, dl_g.dev(), logits_g.dev(), tg_g.dev(), dloss, n, k).unwrap();
            let dl = read(g, &dl_g);
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

            ops::crossentropy_backward(g, logits_g.dev(), logits_g.dev(), tg_g.dev(), dloss, n, k).unwrap();
            assert_eq!(bits(&read(g, &logits_g)), bits(&dl), "{what}: in place differs from out of place");
        }
    }
}

/// The backward works in place or on disjoint views; a view that partly overlaps the logits
/// (rows would clobber rows not yet read) is refused before launching.
fn crossentropy_rejects_partly_overlapping_views(g: &Gpu) {
    let (n, k) = (3, 40);
    let buf = g.alloc(n * k + k, Dtype::F32, "logits").unwrap();
    let tg = g.alloc(n, Dtype::I64, "targets").unwrap();
    let (logits, shifted) = (buf.dev().at(0, n * k), buf.dev().at(k, n * k));
    let launches = g.counts().launches;
    let r = ops::crossentropy_backward(g, shifted, logits, tg.dev(), 1.0, n, k);
    assert!(matches!(r, Err(xlt::Error::Usage(_))), "a partly overlapping dlogits must be Error::Usage, got {r:?}");
    assert_eq!(g.counts().launches, launches, "a rejected call launches nothing");
}

/// A target outside [0, K) gives a NaN loss (the losses start finite here, so a NaN is the
/// kernel's) and a finite gradient without the one-hot term; it is never used as an index.
fn crossentropy_invalid_target_is_nan_not_a_wild_read(g: &Gpu) {
    let (n, k) = (3, 40);
    let logits = up(g, &rand_vec(n * k, 2.0, 40), Dtype::F32);
    let tg = g.alloc(n, Dtype::I64, "targets").unwrap();
    g.write_i64(tg.dev(), &[5, k as i64 + 1_000_000, -7]).unwrap();
    let losses = up(g, &[7.0; 3], Dtype::F32);
    ops::crossentropy_forward(g, losses.dev(), logits.dev(), tg.dev(), n, k).unwrap();
    let l = read(g, &losses);
    assert!(l[0].is_finite() && l[0] != 7.0 && l[1].is_nan() && l[2].is_nan(), "losses {l:?}");
    // The gradient starts poisoned: every element must be written, and finite.
    let dl = poisoned(g, n * k, Dtype::F32, "dlogits");
    ops::crossentropy_backward(g, dl.dev(), logits.dev(), tg.dev(), 1.0, n, k).unwrap();
    assert!(read(g, &dl).iter().all(|x| x.is_finite()));
}
