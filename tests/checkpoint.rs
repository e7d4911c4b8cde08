//! Checkpoints: N steps straight and N/2 + save + load into fresh buffers + N/2 give identical
//! parameters; a kill during a replacement leaves a loadable checkpoint; mismatches are named.

use xlt::bench::{bench_adamw, random_batch, train_step};
use xlt::config::ModelConfig;
use xlt::cpu::{AdamW, SequenceClassifier};
use xlt::train::checkpoint::{load_checkpoint, resolve, save_checkpoint};

fn cfg() -> ModelConfig {
    let mut c = ModelConfig::xlmr_shape(32, 2, 4, 48, 60, 40);
    c.hidden_dropout = 0.1;
    c.attention_dropout = 0.1;
    c
}

#[test]
fn resume_is_bit_identical() {
    let cfg = cfg();
    let (batch, labels) = random_batch(&cfg, 4, 17, 3);
    let steps = 6;
    // Straight run.
    let mut a = SequenceClassifier::new_random(&cfg, 3, 11);
    let mut oa = AdamW::new(bench_adamw(), a.layout.total);
    oa.cfg.lr = 1e-3;
    for s in 0..steps {
        train_step(&mut a, &mut oa, &batch, &labels, s);
    }
    // Half, checkpoint, fresh model and optimizer from the checkpoint, other half.
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ckpt");
    let mut b = SequenceClassifier::new_random(&cfg, 3, 11);
    let mut ob = AdamW::new(bench_adamw(), b.layout.total);
    ob.cfg.lr = 1e-3;
    for s in 0..steps / 2 {
        train_step(&mut b, &mut ob, &batch, &labels, s);
    }
    save_checkpoint(
        &dir,
        &b.cfg,
        &b.layout,
        &b.params,
        &ob,
        serde_json::json!({"next_step": steps / 2}),
        serde_json::Value::Null,
        &[],
    )
    .expect("save");
    // Saving again replaces the checkpoint in place.
    save_checkpoint(
        &dir,
        &b.cfg,
        &b.layout,
        &b.params,
        &ob,
        serde_json::json!({"next_step": steps / 2}),
        serde_json::Value::Null,
        &[],
    )
    .expect("resave");
    let mut c = SequenceClassifier::new_random(&cfg, 3, 999);
    let mut oc = AdamW::new(bench_adamw(), c.layout.total);
    let state = load_checkpoint(&dir, &c.cfg.clone(), &c.layout.clone(), &mut c.params, &mut oc).expect("load");
    assert_eq!(state.trainer["next_step"], steps / 2);
    assert_eq!(oc.t, steps / 2);
    assert_eq!(oc.cfg.lr, 1e-3);
    for s in steps / 2..steps {
        train_step(&mut c, &mut oc, &batch, &labels, s);
    }
    assert!(a.params.iter().zip(&c.params).all(|(x, y)| x.to_bits() == y.to_bits()), "resumed run differs");
    assert!(oa.m.iter().zip(&oc.m).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// A 3-way classifier, its optimizer, and a temp folder with its checkpoint in `ckpt/`.
fn saved() -> (ModelConfig, SequenceClassifier, AdamW, tempfile::TempDir) {
    let cfg = cfg();
    let m = SequenceClassifier::new_random(&cfg, 3, 1);
    let opt = AdamW::new(bench_adamw(), m.layout.total);
    let tmp = tempfile::tempdir().expect("tmp");
    save(&tmp.path().join("ckpt"), &m, &opt);
    (cfg, m, opt, tmp)
}

fn save(dir: &std::path::Path, m: &SequenceClassifier, opt: &AdamW) {
    save_checkpoint(dir, &m.cfg, &m.layout, &m.params, opt, serde_json::Value::Null, serde_json::Value::Null, &[])
        .expect("save");
}

#[test]
fn interrupted_replacement_leaves_the_old_checkpoint_loadable() {
    let (cfg, m, opt, tmp) = saved();
    let dir = tmp.path().join("ckpt");
    // Simulate a kill after the old checkpoint was moved aside and before the new one landed.
    let old = tmp.path().join(".ckpt.old");
    std::fs::rename(&dir, &old).expect("move aside");
    std::fs::create_dir_all(tmp.path().join(".ckpt.new")).expect("half-written new");
    assert_eq!(resolve(&dir).expect("resolve"), old);
    let mut n = SequenceClassifier::new_random(&cfg, 3, 2);
    let mut o2 = AdamW::new(bench_adamw(), n.layout.total);
    load_checkpoint(&dir, &cfg, &n.layout.clone(), &mut n.params, &mut o2).expect("load the survivor");
    assert_eq!(n.params, m.params);
    // The next save cleans up and lands normally.
    save(&dir, &m, &opt);
    assert!(dir.join("state.json").is_file() && !old.exists());
}

#[test]
fn mismatched_or_corrupt_checkpoints_are_named() {
    let (cfg, _, _, tmp) = saved();
    let dir = tmp.path().join("ckpt");
    // A model with a 5-way head does not match a 3-way checkpoint.
    let mut other = SequenceClassifier::new_random(&cfg, 5, 1);
    let mut o5 = AdamW::new(bench_adamw(), other.layout.total);
    let err = load_checkpoint(&dir, &cfg, &other.layout.clone(), &mut other.params, &mut o5).expect_err("mismatch");
    assert!(err.to_string().contains("classifier.out_proj.weight"), "{err}");
    // A truncated optimizer file.
    let p = dir.join("optimizer.safetensors");
    let bytes = std::fs::read(&p).expect("read");
    std::fs::write(&p, &bytes[..bytes.len() / 3]).expect("truncate");
    let mut same = SequenceClassifier::new_random(&cfg, 3, 1);
    let mut o3 = AdamW::new(bench_adamw(), same.layout.total);
    let err = load_checkpoint(&dir, &cfg, &same.layout.clone(), &mut same.params, &mut o3).expect_err("corrupt");
    assert!(err.to_string().contains("optimizer.safetensors"), "{err}");
    // Nothing there at all.
    let err = resolve(&tmp.path().join("nope")).expect_err("absent");
    assert!(err.to_string().contains("nope"));
}

#[test]
fn non_finite_optimizer_moments_are_named_at_load() {
    let (cfg, _, _, tmp) = saved();
    let dir = tmp.path().join("ckpt");
    // Overwrite the first value of the last tensor of the file (sizes unchanged) with NaN.
    let p = dir.join("optimizer.safetensors");
    let mut bytes = std::fs::read(&p).expect("read");
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&p, &bytes).expect("write");
    let mut fresh = SequenceClassifier::new_random(&cfg, 3, 2);
    let mut o2 = AdamW::new(bench_adamw(), fresh.layout.total);
    let err = load_checkpoint(&dir, &cfg, &fresh.layout.clone(), &mut fresh.params, &mut o2).expect_err("NaN");
    let msg = err.to_string();
    assert!(msg.contains("non-finite") && (msg.contains("m.") || msg.contains("v.")), "{msg}");
}

#[test]
fn a_half_written_first_checkpoint_counts_as_none_and_a_damaged_one_as_incomplete() {
    use xlt::train::checkpoint::{find, Found};
    let cfg = cfg();
    let m = SequenceClassifier::new_random(&cfg, 3, 1);
    let opt = AdamW::new(bench_adamw(), m.layout.total);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ckpt");
    // Killed while writing the very first checkpoint: only the staging folder exists.
    std::fs::create_dir_all(tmp.path().join(".ckpt.new")).expect("staging");
    std::fs::write(tmp.path().join(".ckpt.new/model.safetensors"), b"partial").expect("partial");
    assert_eq!(find(&dir), Found::Absent);
    save(&dir, &m, &opt);
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
