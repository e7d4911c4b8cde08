//! CUDA kernels run on the host kernel emulator (tests/cuda_emu/) and checked against the CPU
//! backend, without a GPU: the fused attention kernels (kernels/flash_attention.cu), launched
//! from the same plans the GPU wrappers launch, against `cpu::ops::attention_forward` /
//! `attention_backward`, with padding, fully masked rows, sequence lengths that are not a
//! multiple of the tiles, dropout, every compiled head size, bf16 and f16. Every launch runs with
//! the block's threads in both orders and must give bit-identical outputs (a missing barrier
//! shows up as a difference), and every output element must be written.
//!
//! The emulator checks the kernels' logic and indexing and the tensor-core fragment layouts as
//! the PTX ISA documents them; what only a GPU shows (the hardware mma's rounding, occupancy,
//! speed) is tests/cuda_attention.rs's job.

#[path = "cuda_emu/harness.rs"]
mod harness;

use harness::{emu_or_skip, Emu, HostBuf};
use xlt::cpu::ops::{attention_backward, attention_forward};
use xlt::cuda::ops::{flash_backward_plans, flash_forward_plan, FLASH_HEAD_SIZES};
use xlt::cuda::testing::{assert_close, max_rel_err, rand_vec, round_to};
use xlt::cuda::Dtype;

fn flash_names() -> Vec<String> {
    let mut names = Vec::new();
    for dt in ["bf16", "f16"] {
        for hs in FLASH_HEAD_SIZES {
            for op in ["forward", "backward_dkdv", "backward_dq"] {
                names.push(format!("flash_attention_{op}_hs{hs}_{dt}"));
            }
        }
        names.push(format!("flash_attention_backward_rowdot_{dt}"));
    }
    names
}

fn emu(test: &str) -> Option<Emu> {
    emu_or_skip(test, "flash_attention.cu", &flash_names())
}

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

fn check(emu: &Emu, case: &Case, seed: u64) {
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

    // forward on the emulator
    let (mut qkv_d, mut mask_d) = (HostBuf::from_f32(&qkv, dt), HostBuf::from_f32(&mask, Dtype::F32));
    let (mut out, mut lse) = (HostBuf::poisoned(b * t * c, dt), HostBuf::poisoned(b * nh * t, Dtype::F32));
    let plan = flash_forward_plan(out.dev(), lse.dev(), qkv_d.dev(), mask_d.dev(), b, t, c, nh, case.p_drop, drop_seed)
        .expect("forward plan");
    emu.run_both_orders(&plan, &mut [&mut out, &mut lse]);
    let (fwd_bound, grad_bound) = bounds(dt);
    let (abs, rel) = max_rel_err(&out.to_f32(), &out_ref);
    eprintln!("{what}: out max error {abs:e} ({rel:e} relative)");
    assert_close(&format!("{what}: out"), &out.to_f32(), &out_ref, fwd_bound);
    for (i, (got, want)) in lse.to_f32().iter().zip(&lse_ref).enumerate() {
        let ok =
            if want.is_infinite() { *got == f32::INFINITY } else { (got - want).abs() <= 1e-4 * want.abs().max(1.0) };
        assert!(ok, "{what}: lse[{i}] = {got}, want {want}");
    }

    // backward on the emulator, from the kernel's own out and lse
    let mut dout_d = HostBuf::from_f32(&dout, dt);
    let (mut dqkv, mut dsum) = (HostBuf::poisoned(b * t * 3 * c, dt), HostBuf::poisoned(b * nh * t, Dtype::F32));
    let plans = flash_backward_plans(
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
    .expect("backward plans");
    emu.run_both_orders(&plans[0], &mut [&mut dsum]);
    // dq writes dqkv's Q columns, dkdv its K and V columns; each runs in both thread orders
    // (which poisons the buffer in between), so keep dq's columns before running dkdv
    emu.run_both_orders(&plans[2], &mut [&mut dqkv]);
    let dq_part = dqkv.to_f32();
    dqkv.poison();
    emu.run_both_orders(&plans[1], &mut [&mut dqkv]);
    let mut got = dqkv.to_f32();
    for (row, dq_row) in got.chunks_mut(3 * c).zip(dq_part.chunks(3 * c)) {
        row[..c].copy_from_slice(&dq_row[..c]);
    }
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
    let Some(emu) = emu("flash_attention_matches_the_cpu_on_the_emulator_bf16") else { return };
    // T not a multiple of 64 with padding; a batch row of only padding; two key tiles; dropout
    let cases = [
        Case { dtype: Dtype::Bf16, t: 37, nh: 2, hs: 16, p_drop: 0.0, real: vec![37, 20] },
        Case { dtype: Dtype::Bf16, t: 70, nh: 2, hs: 64, p_drop: 0.1, real: vec![70, 0, 51] },
        Case { dtype: Dtype::Bf16, t: 20, nh: 1, hs: 128, p_drop: 0.0, real: vec![13] },
        Case { dtype: Dtype::Bf16, t: 9, nh: 3, hs: 32, p_drop: 0.2, real: vec![9, 4] },
    ];
    for (i, case) in cases.iter().enumerate() {
        check(&emu, case, 100 + i as u64);
    }
}

#[test]
fn flash_attention_matches_the_cpu_on_the_emulator_f16() {
    let Some(emu) = emu("flash_attention_matches_the_cpu_on_the_emulator_f16") else { return };
    let cases = [
        Case { dtype: Dtype::F16, t: 65, nh: 2, hs: 32, p_drop: 0.1, real: vec![65, 30] },
        Case { dtype: Dtype::F16, t: 17, nh: 1, hs: 128, p_drop: 0.0, real: vec![17, 0] },
    ];
    for (i, case) in cases.iter().enumerate() {
        check(&emu, case, 200 + i as u64);
    }
}

#[test]
fn flash_plans_reject_unsupported_shapes() {
    let mut a = HostBuf::poisoned(3 * 2 * 4 * 24, Dtype::Bf16);
    let mut lse = HostBuf::poisoned(2 * 4 * 2, Dtype::F32);
    let mut m = HostBuf::poisoned(2 * 4, Dtype::F32);
    let mut o = HostBuf::poisoned(2 * 4 * 24, Dtype::Bf16);
    // HS = 24 has no instantiation
    let e = flash_forward_plan(o.dev(), lse.dev(), a.dev(), m.dev(), 2, 4, 24, 1, 0.0, 0).unwrap_err();
    assert!(e.to_string().contains("head size"), "{e}");
    // a wrong-sized view is an error, not a wild write
    let e = flash_forward_plan(o.dev(), lse.dev(), a.dev(), m.dev(), 2, 5, 16, 1, 0.0, 0).unwrap_err();
    assert!(e.to_string().contains("mask"), "{e}");
}
