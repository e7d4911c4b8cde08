//! The fused attention kernels (kernels/flash_attention.cu) on the emulated device
//! (tests/cuda_emu/), checked against the CPU backend without a GPU: through the same wrappers
//! the model calls, against `cpu::ops::attention_forward` / `attention_backward`, with padding,
//! fully masked rows, sequence lengths that are not a multiple of the tiles, dropout, every
//! compiled head size, bf16 and f16. The emulated device runs every launch with the block's
//! threads in both orders and requires bit-identical memory (a missing barrier shows up as a
//! difference); outputs start as NaN, so every element must be written.
//!
//! The emulator checks the kernels' logic and indexing and the tensor-core fragment layouts as
//! the PTX ISA documents them; what only a GPU shows (the hardware mma's rounding, occupancy,
//! speed) is tests/cuda_attention.rs's job.

#[path = "cuda_emu/harness.rs"]
mod harness;

use xlt::cpu::ops::{attention_backward, attention_forward};
use xlt::cuda::ops::{flash_attention_backward, flash_attention_forward, flash_forward_plan};
use xlt::cuda::testing::{assert_close, max_rel_err, rand_vec, round_to};
use xlt::cuda::{Buf, Dtype, Gpu};

/// One attention problem. `real[bi]` is the number of real (unmasked) keys of batch row bi.
struct Case {
    dtype: Dtype,
    t: usize,
    nh: usize,
    hs: usize,
    p_drop: f32,
    real: Vec<usize>,
}

/// Bounds relative to the largest reference magnitude. The kernels round P (and dS) to the
/// activation type before their second product, as FlashAttention does, so the bounds are a few
/// units of that type's rounding: bf16 keeps 8 bits (2^-8 ≈ 3.9e-3), f16 11 bits.
fn bounds(d: Dtype) -> (f32, f32) {
    match d {
        Dtype::Bf16 => (1e-2, 1e-2), // (forward out, gradients); seen: up to 3.9e-3
        _ => (1.5e-3, 1.5e-3),       // seen: up to 3.9e-4
    }
}

fn check(g: &Gpu, case: &Case, seed: u64) {
    let (dt, t, nh, hs) = (case.dtype, case.t, case.nh, case.hs);
    let (b, c) = (case.real.len(), nh * hs);
    let what = format!("{dt:?} T={t} NH={nh} HS={hs} p={} real={:?}", case.p_drop, case.real);
    let mask: Vec<f32> = case.real.iter().flat_map(|&r| (0..t).map(move |j| if j < r { 1.0 } else { 0.0 })).collect();
    let qkv = round_to(&rand_vec(b * t * 3 * c, 1.5, seed), dt);
    let dout = round_to(&rand_vec(b * t * c, 1.0, seed + 1), dt);
    let drop_seed = seed ^ 0x5eed;

    // CPU reference
    let (mut out_ref, mut att) = (vec![0.0; b * t * c], vec![0.0; b * nh * t * t]);
    attention_forward(&mut out_ref, &mut att, &qkv, &mask, b, t, c, nh, case.p_drop, drop_seed);
    let mut dqkv_ref = vec![0.0; b * t * 3 * c];
    attention_backward(&mut dqkv_ref, &dout, &qkv, &att, b, t, c, nh, case.p_drop, drop_seed);
    // lse (B, NH, T) of the scaled, masked scores, in f64
    let scale = 1.0 / (hs as f64).sqrt();
    let mut lse_ref = vec![f32::INFINITY; b * nh * t];
    for bi in 0..b {
        for h in 0..nh {
            for i in 0..t {
                let q = &qkv[(bi * t + i) * 3 * c + h * hs..][..hs];
                let s: Vec<f64> = (0..case.real[bi])
                    .map(|j| {
                        let k = &qkv[(bi * t + j) * 3 * c + c + h * hs..][..hs];
                        q.iter().zip(k).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale
                    })
                    .collect();
                if let Some(m) = s.iter().cloned().reduce(f64::max) {
                    lse_ref[(bi * nh + h) * t + i] = (m + s.iter().map(|x| (x - m).exp()).sum::<f64>().ln()) as f32;
                }
            }
        }
    }

    // forward on the emulated device
    let up = |v: &[f32], d: Dtype| g.upload_f32(v, d, "input").expect("upload");
    let poisoned = |n: usize, d: Dtype| -> Buf {
        let b = g.alloc_uninit(n, d, "output").expect("alloc");
        g.fill_bytes(b.dev(), 0xff).expect("poison");
        b
    };
    let (qkv_d, mask_d) = (up(&qkv, dt), up(&mask, Dtype::F32));
    let (out, lse) = (poisoned(b * t * c, dt), poisoned(b * nh * t, Dtype::F32));
    flash_attention_forward(g, out.dev(), lse.dev(), qkv_d.dev(), mask_d.dev(), b, t, c, nh, case.p_drop, drop_seed)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let out_h = g.read_f32(out.dev()).expect("read");
    let lse_h = g.read_f32(lse.dev()).expect("read");
    let (fwd_bound, grad_bound) = bounds(dt);
    let (abs, rel) = max_rel_err(&out_h, &out_ref);
    eprintln!("{what}: out max error {abs:e} ({rel:e} relative)");
    assert_close(&format!("{what}: out"), &out_h, &out_ref, fwd_bound);
    for (i, (got, want)) in lse_h.iter().zip(&lse_ref).enumerate() {
        let ok =
            if want.is_infinite() { *got == f32::INFINITY } else { (got - want).abs() <= 1e-4 * want.abs().max(1.0) };
        assert!(ok, "{what}: lse[{i}] = {got}, want {want}");
    }

    // backward on the emulated device, from the kernel's own out and lse
    let dout_d = up(&dout, dt);
    let (dqkv, dsum) = (poisoned(b * t * 3 * c, dt), poisoned(b * nh * t, Dtype::F32));
    flash_attention_backward(
        g,
        dqkv.dev(),
        dsum.dev(),
        dout_d.dev(),
        out.dev(),
        qkv_d.dev(),
        lse.dev(),
        mask_d.dev(),
        b,
        t,
        c,
        nh,
        case.p_drop,
        drop_seed,
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = g.read_f32(dqkv.dev()).expect("read");
    assert!(got.iter().all(|v| v.is_finite()), "{what}: dqkv has unwritten or non-finite elements");
    for (part, name) in ["dq", "dk", "dv"].iter().enumerate() {
        let pick = |v: &[f32]| -> Vec<f32> {
            v.chunks(3 * c).flat_map(|row| row[part * c..(part + 1) * c].to_vec()).collect()
        };
        let (abs, rel) = max_rel_err(&pick(&got), &pick(&dqkv_ref));
        eprintln!("{what}: {name} max error {abs:e} ({rel:e} relative)");
        assert_close(&format!("{what}: {name}"), &pick(&got), &pick(&dqkv_ref), grad_bound);
    }
}

#[test]
fn flash_attention_matches_the_cpu_on_the_emulator_bf16() {
    let Some(g) = harness::emulated("flash_attention_matches_the_cpu_on_the_emulator_bf16") else { return };
    // T not a multiple of 64 with padding; a batch row of only padding; two key tiles; dropout
    let cases = [
        Case { dtype: Dtype::Bf16, t: 37, nh: 2, hs: 16, p_drop: 0.0, real: vec![37, 20] },
        Case { dtype: Dtype::Bf16, t: 70, nh: 2, hs: 64, p_drop: 0.1, real: vec![70, 0, 51] },
        Case { dtype: Dtype::Bf16, t: 20, nh: 1, hs: 128, p_drop: 0.0, real: vec![13] },
        Case { dtype: Dtype::Bf16, t: 9, nh: 3, hs: 32, p_drop: 0.2, real: vec![9, 4] },
    ];
    for (i, case) in cases.iter().enumerate() {
        check(&g, case, 100 + i as u64);
    }
}

#[test]
fn flash_attention_matches_the_cpu_on_the_emulator_f16() {
    let Some(g) = harness::emulated("flash_attention_matches_the_cpu_on_the_emulator_f16") else { return };
    let cases = [
        Case { dtype: Dtype::F16, t: 65, nh: 2, hs: 32, p_drop: 0.1, real: vec![65, 30] },
        Case { dtype: Dtype::F16, t: 17, nh: 1, hs: 128, p_drop: 0.0, real: vec![17, 0] },
    ];
    for (i, case) in cases.iter().enumerate() {
        check(&g, case, 200 + i as u64);
    }
}

#[test]
fn flash_plans_reject_unsupported_shapes_and_misaligned_views() {
    let Some(g) = harness::emulated("flash_plans_reject_unsupported_shapes_and_misaligned_views") else { return };
    let a = g.alloc(3 * 2 * 5 * 32, Dtype::Bf16, "qkv").expect("alloc");
    let lse = g.alloc(2 * 4 * 2, Dtype::F32, "lse").expect("alloc");
    let m = g.alloc(2 * 4, Dtype::F32, "mask").expect("alloc");
    let o = g.alloc(2 * 5 * 32, Dtype::Bf16, "out").expect("alloc");
    // HS = 24 has no instantiation
    let e = flash_forward_plan(o.dev(), lse.dev(), a.dev(), m.dev(), 2, 4, 24, 1, 0.0, 0).unwrap_err();
    assert!(e.to_string().contains("head size"), "{e}");
    // a wrong-sized view is an error, not a wild write
    let e = flash_forward_plan(o.dev(), lse.dev(), a.dev(), m.dev(), 2, 5, 16, 1, 0.0, 0).unwrap_err();
    assert!(e.to_string().contains("mask"), "{e}");
    // the kernels read qkv in 128-bit vectors: a view 8 bytes in is refused
    let shifted = a.dev().at(4, 3 * 2 * 4 * 16);
    let e = flash_forward_plan(o.dev(), lse.dev(), shifted, m.dev(), 2, 4, 16, 1, 0.0, 0).unwrap_err();
    assert!(e.to_string().contains("aligned"), "{e}");
}

/// The emulator's own checks fail on kernels that are wrong on purpose
/// (tests/cuda_emu/selftest.cu), and a launch after a failed one runs normally: a missing barrier
/// is a race the two thread orders expose (static shared memory starts as NaN in every block
/// and run), threads stuck at different barriers are a deadlock naming them, an element no
/// thread writes stays NaN, and a launch whose arguments do not match the kernel's parameters
/// is refused.
#[test]
fn the_emulator_catches_races_deadlocks_unwritten_elements_and_wrong_arguments() {
    use xlt::cuda::KArg;
    let Some(g) = harness::emulated("the_emulator_catches_races_deadlocks_unwritten_elements_and_wrong_arguments")
    else {
        return;
    };
    let k = g.emu.selftest_kernels().expect("self-test kernels");
    let n = 96usize;
    let input: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let inp = g.upload_f32(&input, Dtype::F32, "in").expect("upload");
    let out = g.alloc_uninit(n, Dtype::F32, "out").expect("alloc");
    let args = [KArg::ptr(out.dev()), KArg::ptr(inp.dev()), KArg::I32(n as i32)];
    let launch = |name: &str, blocks: u32, threads: u32, args: &[KArg]| {
        // SAFETY: every kernel stays within n elements of its buffers.
        unsafe { g.emu.launch_selftest(&k, name, blocks, threads, args) }
    };
    let reversed: Vec<f32> = input.iter().rev().copied().collect();
    let check_reverse = || {
        launch("selftest_reverse", 1, n as u32, &args).expect("the correct kernel passes");
        assert_eq!(g.read_f32(out.dev()).expect("read"), reversed);
    };
    check_reverse();

    // In one order, a thread that reads its mirror's element before it is written reads NaN ...
    g.emu.set_check_orders(false);
    launch("selftest_reverse_racy", 1, n as u32, &args).expect("one order alone compares nothing");
    let got = g.read_f32(out.dev()).expect("read");
    assert!(got.iter().any(|v| v.is_nan()), "reads before the write should see NaN: {got:?}");
    // ... and the two orders disagree, even when an earlier run left the right values there.
    g.emu.set_check_orders(true);
    let err = launch("selftest_reverse_racy", 1, n as u32, &args).expect_err("a race").to_string();
    assert!(err.contains("ascending and in descending order"), "{err}");

    let err = launch("selftest_deadlock", 1, 32, &[KArg::ptr(out.dev())]).expect_err("a deadlock").to_string();
    assert!(
        err.contains("deadlock") && err.contains("at __syncthreads") && err.contains("at a warp collective"),
        "{err}"
    );
    // Threads the deadlock left inside their kernel start afresh in the next launch.
    check_reverse();

    let half = g.alloc_uninit(n, Dtype::F32, "half").expect("alloc");
    launch("selftest_half_written", 2, 64, &[KArg::ptr(half.dev()), KArg::I32(n as i32)]).expect("launch");
    let got = g.read_f32(half.dev()).expect("read");
    assert!(got.iter().enumerate().all(|(i, v)| if i % 2 == 0 { *v == 1.0 } else { v.is_nan() }), "{got:?}");

    let err = launch("selftest_reverse", 1, n as u32, &args[..2]).expect_err("too few arguments").to_string();
    assert!(err.contains("takes parameters of [8, 8, 4] bytes"), "{err}");
    let err = launch("selftest_reverse", 1, n as u32, &[args[0], args[1], KArg::U64(n as u64)])
        .expect_err("a wrong argument type")
        .to_string();
    assert!(err.contains("the launch passes [8, 8, 8]"), "{err}");
    // A pointer outside every allocation is refused before the kernel runs.
    let stray = [KArg::Ptr(8), args[1], args[2]];
    let err = launch("selftest_reverse", 1, n as u32, &stray).expect_err("a stray pointer").to_string();
    assert!(err.contains("selftest_reverse argument 0"), "{err}");
}
