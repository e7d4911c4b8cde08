//! Helpers for the GPU tests: get the GPU or skip with a printed reason, random inputs, and
//! element-wise comparison with a tolerance per dtype.

use super::device::{probe, Dtype, Gpu, Probe};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The GPU for one test, held exclusively: tests of a binary run in parallel threads, but the
/// ops share the GPU's scratch area and stream, so GPU tests take turns. Dereferences to the
/// `Arc<Gpu>` (`&lease` coerces to `&Gpu`, `lease.clone()` is an `Arc<Gpu>`).
pub struct GpuLease {
    gpu: Arc<Gpu>,
    _turn: MutexGuard<'static, ()>,
}

impl std::ops::Deref for GpuLease {
    type Target = Arc<Gpu>;
    fn deref(&self) -> &Arc<Gpu> {
        &self.gpu
    }
}

/// The GPU shared by a test binary, or `None` after printing why the test skips. With
/// `XLT_REQUIRE_GPU` set (tools/gpu_check.sh sets it), a missing GPU fails the test instead.
pub fn gpu_or_skip(test: &str) -> Option<GpuLease> {
    static TURN: Mutex<()> = Mutex::new(());
    static GPU: OnceLock<Result<Arc<Gpu>, String>> = OnceLock::new();
    let got = GPU.get_or_init(|| match probe() {
        Probe::Unusable(why) => Err(why),
        Probe::Usable { .. } => Gpu::open(0).map_err(|e| e.to_string()),
    });
    match got {
        // A test that panicked while holding the GPU leaves it usable for the next.
        Ok(g) => Some(GpuLease { gpu: g.clone(), _turn: TURN.lock().unwrap_or_else(|e| e.into_inner()) }),
        Err(why) => {
            if std::env::var_os("XLT_REQUIRE_GPU").is_some() {
                panic!("{test}: XLT_REQUIRE_GPU is set but there is no usable GPU: {why}");
            }
            eprintln!("skipping {test}: no usable GPU ({why})");
            None
        }
    }
}

/// `n` values uniform in [-scale, scale), fixed by `seed` (never all zeros).
pub fn rand_vec(n: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut r = crate::rng::Rng::new(seed);
    (0..n).map(|_| (r.next_f32() * 2.0 - 1.0) * scale).collect()
}

/// Relative tolerance of a kernel's output against its f32 CPU twin, by activation dtype.
pub fn tolerance(d: Dtype) -> f32 {
    match d {
        Dtype::F32 => 1e-5,
        Dtype::Bf16 => 2e-2,
        Dtype::F16 => 5e-3,
        _ => 0.0,
    }
}

/// Rounds host values to `d` and back, so a CPU reference sees the inputs the GPU sees.
pub fn round_to(v: &[f32], d: Dtype) -> Vec<f32> {
    match d {
        Dtype::Bf16 => v.iter().map(|&x| f32::from(half::bf16::from_f32(x))).collect(),
        Dtype::F16 => v.iter().map(|&x| f32::from(half::f16::from_f32(x))).collect(),
        _ => v.to_vec(),
    }
}

/// Largest error of `got` against `want`, relative to the largest |want| (a scale-aware bound
/// that does not blow up on near-zero elements). Returns (max abs error, that relative error).
pub fn max_rel_err(got: &[f32], want: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-30);
    let err =
        got.iter()
            .zip(want)
            .fold(0.0f32, |m, (a, b)| if a.is_nan() || b.is_nan() { f32::INFINITY } else { m.max((a - b).abs()) });
    (err, err / scale)
}

/// Asserts `got` matches `want` within `rel` (relative to the largest |want|), naming `what`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    let (abs, r) = max_rel_err(got, want);
    assert!(r <= rel, "{what}: max error {abs:e} = {r:e} relative (bound {rel:e}) over {} elements", want.len());
}
