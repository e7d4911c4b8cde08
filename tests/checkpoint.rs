//! Checkpoints: N steps straight and N/2 + save + load into fresh buffers + N/2 give identical
//! parameters; a kill during a replacement leaves a loadable checkpoint; mismatches are named.

mod common;
use common::classifier;
use xlt::bench::{bench_step, random_batch, train_step};
use xlt::config::ModelConfig;
use xlt::cpu::CpuModel;
use xlt::model::{OptimizerState, TaskModel};
use xlt::train::checkpoint::{find, load_checkpoint, resolve, save_checkpoint, Found};

fn cfg() -> ModelConfig {
    let mut c = ModelConfig::xlmr_shape(32, 2, 4, 48, 60, 40);
    c.hidden_dropout = 0.1;
    c.attention_dropout = 0.1;
    c
}

/// Writes `m`'s checkpoint into `dir` with `trainer` state.
fn save(dir: &std::path::Path, m: &CpuModel, trainer: serde_json::Value) {
    let s = &m.s;
    let opt = m.optimizer().expect("trainable");
    save_checkpoint(
        dir,
        &s.cfg,
        &s.layout,
        &m.params,
        &opt,
        &bench_step().adamw,
        trainer,
        serde_json::Value::Null,
        &[],
    )
    .expect("save");
}

/// Loads the checkpoint in `dir` into a fresh K-way model (weights from another seed).
fn load(dir: &std::path::Path, cfg: &ModelConfig, k: usize) -> xlt::Result<(CpuModel, serde_json::Value)> {
    let mut m = classifier(cfg, k, 999);
    let n = m.s.layout.total;
    let mut opt = OptimizerState { m: vec![0.0; n], v: vec![0.0; n], t: 0 };
    let layout = m.s.layout.clone();
    let state = load_checkpoint(dir, cfg, &layout, &mut m.params, &mut opt)?;
    m.opt = opt;
    Ok((m, state.trainer))
}

#[test]
fn resume_is_bit_identical() {
    let cfg = cfg();
    let tb = random_batch(&cfg, 4, 17, 3);
    let steps = 6;
    // Straight run.
    let mut a = classifier(&cfg, 3, 11);
    for s in 0..steps {
        train_step(&mut a, &tb, s).expect("step");
    }
    // Half, checkpoint, fresh model and optimizer from the checkpoint, other half.
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ckpt");
    let mut b = classifier(&cfg, 3, 11);
    for s in 0..steps / 2 {
        train_step(&mut b, &tb, s).expect("step");
    }
    save(&dir, &b, serde_json::json!({"next_step": steps / 2}));
    // Saving again replaces the checkpoint in place.
    save(&dir, &b, serde_json::json!({"next_step": steps / 2}));
    let (mut c, trainer) = load(&dir, &cfg, 3).expect("load");
    assert_eq!(trainer["next_step"], steps / 2);
    assert_eq!(c.opt.t, steps / 2);
    for s in steps / 2..steps {
        train_step(&mut c, &tb, s).expect("step");
    }
    assert!(a.params.iter().zip(&c.params).all(|(x, y)| x.to_bits() == y.to_bits()), "resumed run differs");
    assert!(a.opt.m.iter().zip(&c.opt.m).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// A 3-way classifier and a temp folder with its checkpoint in `ckpt/`.
fn saved() -> (ModelConfig, CpuModel, tempfile::TempDir) {
    let cfg = cfg();
    let m = classifier(&cfg, 3, 1);
    let tmp = tempfile::tempdir().expect("tmp");
    save(&tmp.path().join("ckpt"), &m, serde_json::Value::Null);
    (cfg, m, tmp)
}

#[test]
fn interrupted_replacement_leaves_the_old_checkpoint_loadable() {
    let (cfg, m, tmp) = saved();
    let dir = tmp.path().join("ckpt");
    // Simulate a kill after the old checkpoint was moved aside and before the new one landed.
    let old = tmp.path().join(".ckpt.old");
    std::fs::rename(&dir, &old).expect("move aside");
    std::fs::create_dir_all(tmp.path().join(".ckpt.new")).expect("half-written new");
    assert_eq!(resolve(&dir).expect("resolve"), old);
    let (n, _) = load(&dir, &cfg, 3).expect("load the survivor");
    assert_eq!(n.params, m.params);
    // The next save cleans up and lands normally.
    save(&dir, &m, serde_json::Value::Null);
    assert!(dir.join("state.json").is_file() && !old.exists());
}

#[test]
fn mismatched_or_corrupt_checkpoints_are_named() {
    let (cfg, _, tmp) = saved();
    let dir = tmp.path().join("ckpt");
    // A model with a 5-way head does not match a 3-way checkpoint.
    let err = load(&dir, &cfg, 5).err().expect("mismatch");
    assert!(err.to_string().contains("classifier.out_proj.weight"), "{err}");
    // A truncated optimizer file.
    let p = dir.join("optimizer.safetensors");
    let bytes = std::fs::read(&p).expect("read");
    std::fs::write(&p, &bytes[..bytes.len() / 3]).expect("truncate");
    let err = load(&dir, &cfg, 3).err().expect("corrupt");
    assert!(err.to_string().contains("optimizer.safetensors"), "{err}");
    // Nothing there at all.
    let err = resolve(&tmp.path().join("nope")).expect_err("absent");
    assert!(err.to_string().contains("nope"));
}

#[test]
fn non_finite_optimizer_moments_are_named_at_load() {
    let (cfg, _, tmp) = saved();
    let dir = tmp.path().join("ckpt");
    // Overwrite the first value of the last tensor of the file (sizes unchanged) with NaN.
    let p = dir.join("optimizer.safetensors");
    let mut bytes = std::fs::read(&p).expect("read");
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&p, &bytes).expect("write");
    let msg = load(&dir, &cfg, 3).err().expect("NaN").to_string();
    assert!(msg.contains("non-finite") && (msg.contains("m.") || msg.contains("v.")), "{msg}");
}

#[test]
fn a_half_written_first_checkpoint_counts_as_none_and_a_damaged_one_as_incomplete() {
    let m = classifier(&cfg(), 3, 1);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ckpt");
    // Killed while writing the very first checkpoint: only the staging folder exists.
    std::fs::create_dir_all(tmp.path().join(".ckpt.new")).expect("staging");
    std::fs::write(tmp.path().join(".ckpt.new/model.safetensors"), b"partial").expect("partial");
    assert_eq!(find(&dir), Found::Absent);
    save(&dir, &m, serde_json::Value::Null);
    assert_eq!(find(&dir), Found::Complete(dir.clone()));
    // A file cut short in place is not a checkpoint, and says which file.
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).expect("read");
    std::fs::write(&p, &bytes[..bytes.len() - 8]).expect("truncate");
    match find(&dir) {
        Found::Incomplete(why) => assert!(why.contains("model.safetensors"), "{why}"),
        other => panic!("{other:?}"),
    }
}
