//! Helpers shared by the integration tests: finite-difference checks, fixture copies and the
//! grid tests' tiny plan.

#![allow(dead_code)]

use xlt::rng::Rng;

pub fn randn(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.normal() * scale).collect()
}

pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Compares `analytic` with central differences of `loss` over the coordinates of `x`
/// (every coordinate, or `max_coords` spread evenly).
pub fn check(
    name: &str,
    x: &mut [f32],
    analytic: &[f32],
    mut loss: impl FnMut(&[f32]) -> f64,
    eps: f32,
    max_coords: usize,
) {
    assert_eq!(x.len(), analytic.len(), "{name}: gradient length");
    let stride = (x.len() / max_coords).max(1);
    let mut worst = 0.0f64;
    let scale = analytic.iter().fold(0.0f32, |m, g| m.max(g.abs())) as f64;
    assert!(scale > 0.0, "{name}: analytic gradient is identically zero");
    for i in (0..x.len()).step_by(stride) {
        let orig = x[i];
        x[i] = orig + eps;
        let lp = loss(x);
        x[i] = orig - eps;
        let lm = loss(x);
        x[i] = orig;
        let num = (lp - lm) / (2.0 * eps as f64);
        let err = (num - analytic[i] as f64).abs() / (scale + 1e-6);
        worst = worst.max(err);
        assert!(
            err < 2e-2,
            "{name}[{i}]: numeric {num:.6e} vs analytic {:.6e} (relative to max |g| {scale:.3e}: {err:.2e})",
            analytic[i]
        );
    }
    println!("{name}: worst error relative to max |g| = {worst:.2e}");
}

/// Copies the folder `from` into `to` (created), recursively: a fixture the test may change.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

/// A randomly initialised encoder of `cfg` with one K-way classification head (HF
/// initialisation from `seed`), as a trainable CPU model.
pub fn classifier(cfg: &xlt::config::ModelConfig, k: usize, seed: u64) -> xlt::cpu::CpuModel {
    let head = xlt::model::HeadSpec::new("cls", xlt::tasks::Kind::Classification, k);
    let host = xlt::model::HostModel::new_random(cfg, vec![head], seed).expect("model");
    xlt::cpu::CpuModel::new(host, None).expect("cpu model")
}

/// The encoder and K-way classification head of the HF folder `dir` (every tensor required),
/// as a trainable CPU model.
pub fn classifier_from_dir(dir: &std::path::Path, k: usize) -> xlt::cpu::CpuModel {
    let head = xlt::model::HeadSpec::new("cls", xlt::tasks::Kind::Classification, k);
    let host = xlt::model::HostModel::from_dir_with_heads(dir, vec![head]).expect("model folder loads");
    xlt::cpu::CpuModel::new(host, None).expect("cpu model")
}

/// `batch` with class labels (B) as its targets.
pub fn labelled(batch: &xlt::model::Batch, labels: &[i64]) -> xlt::model::TaskBatch {
    xlt::model::TaskBatch { batch: batch.clone(), targets: xlt::model::Targets::Labels(labels.to_vec()) }
}

/// plans/tiny.toml with its paths made absolute and its output in `out`, written into `dir`.
pub fn tiny_plan(dir: &std::path::Path, out: &std::path::Path) -> std::path::PathBuf {
    const ROOT: &str = env!("CARGO_MANIFEST_DIR");
    let plan = std::fs::read_to_string(std::path::Path::new(ROOT).join("plans/tiny.toml")).expect("plans/tiny.toml");
    let plan = plan
        .replace("out = \"../grid-tiny\"", &format!("out = \"{}\"", out.display()))
        .replace("\"../", &format!("\"{ROOT}/"));
    let path = dir.join("tiny.toml");
    std::fs::write(&path, plan).expect("write plan");
    path
}
