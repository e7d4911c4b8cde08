//! Snapshot averaging: the exact uniform mean over f32, bf16 and sharded snapshots, names,
//! config and tokenizer carried over, every mismatch reported with the snapshot and tensor, and
//! the manifest with each selection mode checked against hand-worked picks.

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xlt::config::ModelConfig;
use xlt::train::average::{average, Manifest, ManifestEntry, Selection, MANIFEST_FILE};

/// (name, shape) of the synthetic snapshots: transformers-style names, a head included.
const TENSORS: [(&str, &[usize]); 4] = [
    ("roberta.embeddings.word_embeddings.weight", &[4, 2]),
    ("roberta.encoder.layer.0.attention.self.query.weight", &[2, 2]),
    ("roberta.encoder.layer.0.output.LayerNorm.bias", &[2]),
    ("classifier.out_proj.weight", &[3, 2]),
];

/// Element `e` of tensor `t` in snapshot `k` (0, 1, 2): the mean over the three snapshots plus
/// offsets (+d, -2d, +d) that cancel. Every value is a multiple of 1/4 below 64, exact in
/// bf16, so the mean is exact whatever the storage type.
fn value(t: usize, e: usize, k: usize) -> f32 {
    let d = ((t + e) % 4) as f32 * 0.5;
    mean_value(t, e) + [d, -2.0 * d, d][k]
}

fn mean_value(t: usize, e: usize) -> f32 {
    (t * 8 + e) as f32 * 0.25 - 2.0
}

fn tensors_for(k: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    TENSORS
        .iter()
        .enumerate()
        .map(|(t, (name, shape))| {
            let n: usize = shape.iter().product();
            (name.to_string(), shape.to_vec(), (0..n).map(|e| value(t, e, k)).collect())
        })
        .collect()
}

fn encode(d: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => d.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => d.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
        Dtype::BF16 => d.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
        _ => unreachable!("test writes float types only"),
    }
}

/// Writes tensors with one dtype to a safetensors file.
fn write_st(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, d)| encode(d, dtype)).collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| (n.clone(), TensorView::new(dtype, s.clone(), b).expect("view")))
        .collect();
    std::fs::write(path, safetensors::tensor::serialize(views, None).expect("serialize")).expect("write");
}

fn config_json(hidden: usize) -> String {
    let cfg = ModelConfig::xlmr_shape(hidden, 1, 1, 4, 4, 8);
    serde_json::to_string_pretty(&cfg.to_json()).expect("config json")
}

/// A snapshot folder: config (hidden size 2) and one f32/f16/bf16 `model.safetensors`.
fn snapshot(dir: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("config.json"), config_json(2)).expect("config");
    write_st(&dir.join("model.safetensors"), tensors, dtype);
    dir.to_path_buf()
}

/// A snapshot split over two f32 shards listed by `model.safetensors.index.json`.
fn sharded_snapshot(dir: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("config.json"), config_json(2)).expect("config");
    let (a, b) = tensors.split_at(tensors.len() / 2);
    let shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
    write_st(&dir.join(shards[0]), a, Dtype::F32);
    write_st(&dir.join(shards[1]), b, Dtype::F32);
    let mut map = serde_json::Map::new();
    for (part, shard) in [a, b].iter().zip(shards) {
        for (name, _, _) in part.iter() {
            map.insert(name.clone(), shard.into());
        }
    }
    let index = serde_json::json!({ "metadata": { "total_size": 0 }, "weight_map": map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).expect("index");
    dir.to_path_buf()
}

/// The three standard snapshots: f32, bf16, and f32 in two shards.
fn three(root: &Path) -> Vec<PathBuf> {
    vec![
        snapshot(&root.join("s0"), &tensors_for(0), Dtype::F32),
        snapshot(&root.join("s1"), &tensors_for(1), Dtype::BF16),
        sharded_snapshot(&root.join("s2"), &tensors_for(2)),
    ]
}

/// (name → (dtype, shape, f32 values)) of a safetensors file, and its metadata.
type Loaded = BTreeMap<String, (Dtype, Vec<usize>, Vec<f32>)>;
fn read_out(path: &Path) -> (Loaded, Option<std::collections::HashMap<String, String>>) {
    let bytes = std::fs::read(path).expect("read");
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("header");
    let st = SafeTensors::deserialize(&bytes).expect("valid");
    let map = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            let data = if v.dtype() == Dtype::F32 {
                v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            } else {
                Vec::new()
            };
            (k, (v.dtype(), v.shape().to_vec(), data))
        })
        .collect();
    (map, meta.metadata().clone())
}

fn err_text<T: std::fmt::Debug>(r: xlt::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn mean_is_exact_over_f32_bf16_and_sharded_snapshots() {
    let tmp = tempfile::tempdir().expect("tmp");
    let snaps = three(tmp.path());
    std::fs::write(snaps[0].join("tokenizer.json"), "{\"tok\": 1}").expect("tokenizer");
    std::fs::write(snaps[1].join("tokenizer.json"), "{\"tok\": 2}").expect("tokenizer");
    std::fs::write(snaps[0].join("training_state.bin"), "not copied").expect("extra");
    let out = tmp.path().join("avg");
    let report = average(&out, &snaps).expect("average");

    assert_eq!(report.snapshots, 3);
    assert_eq!(report.tensors, 4);
    assert_eq!(report.parameters, 8 + 4 + 2 + 6);
    assert!(report.kept.is_empty());
    assert_eq!(report.copied, vec!["tokenizer.json".to_string()]);

    let (got, meta) = read_out(&out.join("model.safetensors"));
    assert_eq!(meta.and_then(|m| m.get("format").cloned()).as_deref(), Some("pt"));
    let names: Vec<&str> = got.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = TENSORS.iter().map(|(n, _)| *n).collect();
    want.sort();
    assert_eq!(names, want, "names kept as stored");
    for (t, (name, shape)) in TENSORS.iter().enumerate() {
        let (dtype, s, data) = &got[*name];
        assert_eq!(*dtype, Dtype::F32, "{name}");
        assert_eq!(s.as_slice(), *shape, "{name}");
        for (e, x) in data.iter().enumerate() {
            assert_eq!(*x, mean_value(t, e), "{name}[{e}]");
            // The offsets are not all zero, so a wrong count or a skipped snapshot shows.
            if (t + e) % 4 != 0 {
                assert_ne!(*x, value(t, e, 0), "{name}[{e}] equals the first snapshot");
            }
        }
    }
    let cfg_in = std::fs::read(snaps[0].join("config.json")).expect("cfg");
    assert_eq!(std::fs::read(out.join("config.json")).expect("cfg out"), cfg_in, "config copied verbatim");
    assert_eq!(std::fs::read_to_string(out.join("tokenizer.json")).expect("tok"), "{\"tok\": 1}");
    assert!(!out.join("training_state.bin").exists());
    assert!(!out.join("model.safetensors.index.json").exists());
    // No temp files left behind.
    let mut files: Vec<String> =
        std::fs::read_dir(&out).expect("ls").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
    files.sort();
    assert_eq!(files, ["config.json", "model.safetensors", "tokenizer.json", "xlt_weights.json"]);
    // The record names every averaged snapshot.
    match xlt::provenance::Weights::of_dir(&out).expect("record") {
        xlt::provenance::Weights::Average { snapshots } => assert_eq!(snapshots.len(), snaps.len()),
        other => panic!("expected an average, found {other:?}"),
    }
    // The average loads as a config + weights folder.
    ModelConfig::from_file(&out.join("config.json")).expect("config loads");
}

#[test]
fn sum_is_not_rounded_to_f32_between_snapshots() {
    // 2^24 + 1 + 1 in f32 rounds to 2^24 at each step; the exact mean (2^24 + 2) / 3 = 5592406
    // is an f32. Snapshot order as given: the big value first.
    let tmp = tempfile::tempdir().expect("tmp");
    let one = |k: usize, v: f32| {
        snapshot(&tmp.path().join(format!("s{k}")), &[("bias".to_string(), vec![1], vec![v])], Dtype::F32)
    };
    let snaps = vec![one(0, 16_777_216.0), one(1, 1.0), one(2, 1.0)];
    let out = tmp.path().join("avg");
    average(&out, &snaps).expect("average");
    let (got, _) = read_out(&out.join("model.safetensors"));
    assert_eq!(got["bias"].2, vec![5_592_406.0]);
}

#[test]
fn one_snapshot_is_converted_to_f32_unchanged() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = snapshot(&tmp.path().join("s"), &tensors_for(1), Dtype::F16);
    let out = tmp.path().join("avg");
    let report = average(&out, std::slice::from_ref(&s)).expect("average");
    assert_eq!(report.snapshots, 1);
    let (got, _) = read_out(&out.join("model.safetensors"));
    for (t, (name, _)) in TENSORS.iter().enumerate() {
        let want: Vec<f32> = got[*name].2.iter().enumerate().map(|(e, _)| value(t, e, 1)).collect();
        assert_eq!(got[*name].2, want, "{name}");
    }
}

#[test]
fn integer_buffers_are_kept_and_must_match() {
    let tmp = tempfile::tempdir().expect("tmp");
    let write_with_ids = |k: usize, ids: [i64; 3]| {
        let dir = snapshot(&tmp.path().join(format!("s{k}")), &[], Dtype::F32);
        let w = encode(&[k as f32, 2.0], Dtype::F32);
        let i: Vec<u8> = ids.iter().flat_map(|x| x.to_le_bytes()).collect();
        let views = vec![
            ("roberta.embeddings.LayerNorm.weight", TensorView::new(Dtype::F32, vec![2], &w).expect("view")),
            ("roberta.embeddings.position_ids", TensorView::new(Dtype::I64, vec![1, 3], &i).expect("view")),
        ];
        std::fs::write(dir.join("model.safetensors"), safetensors::tensor::serialize(views, None).expect("ser"))
            .expect("write");
        dir
    };
    let a = write_with_ids(0, [0, 1, 2]);
    let b = write_with_ids(2, [0, 1, 2]);
    let c = write_with_ids(3, [0, 1, 5]);
    let out = tmp.path().join("avg");
    let report = average(&out, &[a.clone(), b]).expect("average");
    assert_eq!(report.kept, vec!["roberta.embeddings.position_ids".to_string()]);
    assert_eq!(report.parameters, 2);
    let bytes = std::fs::read(out.join("model.safetensors")).expect("read");
    let st = SafeTensors::deserialize(&bytes).expect("valid");
    let ids = st.tensor("roberta.embeddings.position_ids").expect("kept");
    assert_eq!(ids.dtype(), Dtype::I64);
    assert_eq!(ids.data(), [0i64, 1, 2].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>().as_slice());
    let w = read_out(&out.join("model.safetensors")).0;
    assert_eq!(w["roberta.embeddings.LayerNorm.weight"].2, vec![1.0, 2.0]);

    let msg = err_text(average(&tmp.path().join("avg2"), &[a, c.clone()]));
    assert!(msg.contains("roberta.embeddings.position_ids") && msg.contains(&c.display().to_string()), "{msg}");
}

#[test]
fn mismatched_shape_names_the_snapshot_and_tensor() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut snaps = three(tmp.path());
    let mut bad = tensors_for(1);
    bad[1].1 = vec![1, 4];
    snaps[1] = snapshot(&tmp.path().join("bad"), &bad, Dtype::F32);
    let out = tmp.path().join("avg");
    let msg = err_text(average(&out, &snaps));
    assert!(msg.contains(&snaps[1].display().to_string()), "{msg}");
    assert!(msg.contains("roberta.encoder.layer.0.attention.self.query.weight"), "{msg}");
    assert!(msg.contains("[1, 4]") && msg.contains("[2, 2]"), "{msg}");
    assert!(!out.exists(), "nothing written on error");
}

#[test]
fn missing_and_extra_tensors_name_the_snapshot_and_tensor() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut snaps = three(tmp.path());
    let mut fewer = tensors_for(2);
    let gone = fewer.remove(3).0;
    snaps[2] = snapshot(&tmp.path().join("fewer"), &fewer, Dtype::F32);
    let msg = err_text(average(&tmp.path().join("avg"), &snaps));
    assert!(msg.contains(&snaps[2].display().to_string()) && msg.contains(&gone), "{msg}");
    assert!(msg.contains("missing"), "{msg}");

    let mut more = tensors_for(2);
    more.push(("lm_head.bias".to_string(), vec![4], vec![0.0; 4]));
    snaps[2] = snapshot(&tmp.path().join("more"), &more, Dtype::F32);
    let msg = err_text(average(&tmp.path().join("avg"), &snaps));
    assert!(msg.contains(&snaps[2].display().to_string()) && msg.contains("lm_head.bias"), "{msg}");
}

#[test]
fn different_config_names_the_snapshot_and_field() {
    let tmp = tempfile::tempdir().expect("tmp");
    let snaps = three(tmp.path());
    std::fs::write(snaps[2].join("config.json"), config_json(4)).expect("config");
    let msg = err_text(average(&tmp.path().join("avg"), &snaps));
    assert!(msg.contains(&snaps[2].join("config.json").display().to_string()), "{msg}");
    assert!(msg.contains("hidden_size is 4") && msg.contains("has 2;"), "{msg}");

    // A different label order in the head is an error too.
    let snaps = three(&tmp.path().join("labels"));
    let mut v: serde_json::Value = serde_json::from_str(&config_json(2)).expect("json");
    v["id2label"] = serde_json::json!({"0": "entailment", "1": "neutral", "2": "contradiction"});
    std::fs::write(snaps[0].join("config.json"), v.to_string()).expect("config");
    v["id2label"] = serde_json::json!({"0": "contradiction", "1": "neutral", "2": "entailment"});
    std::fs::write(snaps[1].join("config.json"), v.to_string()).expect("config");
    let msg = err_text(average(&tmp.path().join("avg"), &snaps));
    assert!(msg.contains("id2label") && msg.contains(&snaps[1].display().to_string()), "{msg}");

    // Dropout is a training hyper-parameter: runs of a grid may differ in it.
    let snaps = three(&tmp.path().join("dropout"));
    let mut v: serde_json::Value = serde_json::from_str(&config_json(2)).expect("json");
    v["hidden_dropout_prob"] = 0.2.into();
    std::fs::write(snaps[1].join("config.json"), v.to_string()).expect("config");
    average(&tmp.path().join("avg_dropout"), &snaps).expect("dropout may differ");
}

#[test]
fn bad_inputs_are_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let snaps = three(tmp.path());
    let msg = err_text(average(&tmp.path().join("avg"), &[]));
    assert!(msg.contains("at least one snapshot"), "{msg}");

    let msg = err_text(average(&snaps[1], &snaps));
    assert!(msg.contains("output folder") && msg.contains(&snaps[1].display().to_string()), "{msg}");
    // The same folder through another spelling.
    let msg = err_text(average(&tmp.path().join("s2/../s0"), &snaps));
    assert!(msg.contains("output folder"), "{msg}");

    let msg = err_text(average(&tmp.path().join("avg"), &[snaps[0].clone(), snaps[1].clone(), snaps[0].clone()]));
    assert!(msg.contains("twice") && msg.contains(&snaps[0].display().to_string()), "{msg}");

    let missing = tmp.path().join("nope");
    let msg = err_text(average(&tmp.path().join("avg"), &[snaps[0].clone(), missing.clone()]));
    assert!(msg.contains(&missing.display().to_string()), "{msg}");

    // A NaN in one snapshot (a diverged run) would poison the average.
    let mut nan = tensors_for(1);
    nan[2].2[1] = f32::NAN;
    let bad = snapshot(&tmp.path().join("nan"), &nan, Dtype::F32);
    let msg = err_text(average(&tmp.path().join("avg"), &[snaps[0].clone(), bad.clone()]));
    assert!(msg.contains(&bad.display().to_string()) && msg.contains(&nan[2].0), "{msg}");

    // A truncated weights file names the file.
    let cut = snapshot(&tmp.path().join("cut"), &tensors_for(1), Dtype::F32);
    let st = cut.join("model.safetensors");
    let bytes = std::fs::read(&st).expect("read");
    std::fs::write(&st, &bytes[..bytes.len() - 4]).expect("truncate");
    let msg = err_text(average(&tmp.path().join("avg"), &[snaps[0].clone(), cut]));
    assert!(msg.contains(&st.display().to_string()), "{msg}");
}

fn entry(path: &str, run: &str, step: u64, epoch: Option<u64>, dev: Option<f64>) -> ManifestEntry {
    ManifestEntry {
        path: PathBuf::from(path),
        run: run.to_string(),
        step,
        epoch,
        dev_score: dev,
        hparams: None,
        scores: None,
    }
}

/// Three runs of a grid, appended out of step order on purpose:
///
/// | #  | path | run     | step | dev  |
/// |----|------|---------|------|------|
/// | 0  | a1   | lr=1e-5 | 100  | 0.70 |
/// | 1  | a3   | lr=1e-5 | 300  | 0.80 |
/// | 2  | a2   | lr=1e-5 | 200  | 0.80 |
/// | 3  | b1   | lr=2e-5 | 100  | 0.60 |
/// | 4  | b2   | lr=2e-5 | 200  | 0.90 |
/// | 5  | b3   | lr=2e-5 | 300  | 0.90 |
/// | 6  | c0   | lr=3e-5 | 100  | 0.85 |
/// | 7  | c3   | lr=3e-5 | 300  | 0.80 |
///
/// Score ties with the later step come both before (a3) and after (b3) the earlier one in the
/// manifest, so neither "first seen" nor "last seen" passes for "later step".
fn grid(dir: &Path) -> PathBuf {
    let m = dir.join(MANIFEST_FILE);
    let rows = [
        ("a1", "lr=1e-5", 100, 0.70),
        ("a3", "lr=1e-5", 300, 0.80),
        ("a2", "lr=1e-5", 200, 0.80),
        ("b1", "lr=2e-5", 100, 0.60),
        ("b2", "lr=2e-5", 200, 0.90),
        ("b3", "lr=2e-5", 300, 0.90),
        ("c0", "lr=3e-5", 100, 0.85),
        ("c3", "lr=3e-5", 300, 0.80),
    ];
    for (i, (p, run, step, dev)) in rows.into_iter().enumerate() {
        Manifest::append(&m, entry(p, run, step, Some(i as u64), Some(dev))).expect("append");
    }
    m
}

fn names(dir: &Path, picked: Vec<PathBuf>) -> Vec<String> {
    picked
        .into_iter()
        .map(|p| p.strip_prefix(dir).expect("resolved against the manifest folder").display().to_string())
        .collect()
}

#[test]
fn manifest_round_trip_resolves_relative_paths() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = tmp.path().join("runs/manifest.json");
    let abs = tmp.path().join("elsewhere/snap");
    Manifest::append(&m, entry("ckpt/step-100", "r", 100, Some(1), Some(0.5))).expect("append creates");
    Manifest::append(&m, entry(abs.to_str().expect("utf8"), "r", 200, None, None)).expect("append");
    let loaded = Manifest::load(&m).expect("load");
    assert_eq!(
        loaded.entries,
        vec![
            entry(tmp.path().join("runs/ckpt/step-100").to_str().expect("utf8"), "r", 100, Some(1), Some(0.5)),
            entry(abs.to_str().expect("utf8"), "r", 200, None, None),
        ]
    );
    // Stored as given: relative stays relative; absent options are omitted.
    let text = std::fs::read_to_string(&m).expect("read");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["entries"][0]["path"], "ckpt/step-100");
    assert!(v["entries"][1].get("dev_score").is_none(), "{text}");
    assert!(!tmp
        .path()
        .join("runs")
        .read_dir()
        .expect("ls")
        .any(|e| { e.expect("entry").file_name().to_string_lossy().contains(".tmp") }));

    // Repeating a run's step or a path is refused and leaves the file as it was.
    let msg = err_text(Manifest::append(&m, entry("other", "r", 100, None, None)));
    assert!(msg.contains("entries[2]") && msg.contains("entries[0]"), "{msg}");
    let msg = err_text(Manifest::append(&m, entry("ckpt/step-100", "r", 300, None, None)));
    assert!(msg.contains("path"), "{msg}");
    assert_eq!(std::fs::read_to_string(&m).expect("read"), text);
    // A non-finite score cannot be stored as JSON.
    let msg = err_text(Manifest::append(&m, entry("x", "r", 400, None, Some(f64::NAN))));
    assert!(msg.contains("dev_score"), "{msg}");
}

#[test]
fn malformed_manifests_name_the_file_and_entry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = tmp.path().join(MANIFEST_FILE);
    let m_s = m.display().to_string();
    std::fs::write(&m, "{\"entries\": [").expect("write");
    let msg = err_text(Manifest::load(&m));
    assert!(msg.contains(&m_s), "{msg}");
    std::fs::write(&m, "[]").expect("write");
    assert!(err_text(Manifest::load(&m)).contains(&m_s));
    std::fs::write(&m, r#"{"entries": [{"path": "a", "run": "r", "step": 1}, {"path": "b", "run": "r"}]}"#)
        .expect("write");
    let msg = err_text(Manifest::load(&m));
    assert!(msg.contains(&m_s) && msg.contains("entries[1]") && msg.contains("step"), "{msg}");
    std::fs::write(&m, r#"{"entries": [{"path": "a", "run": "r", "step": -3}]}"#).expect("write");
    assert!(err_text(Manifest::load(&m)).contains("entries[0]"));
    std::fs::write(&m, r#"{"entries": [{"path": "a", "run": "r", "step": 1, "dev": 0.5}]}"#).expect("write");
    let msg = err_text(Manifest::load(&m));
    assert!(msg.contains("entries[0]") && msg.contains("dev"), "{msg}");
    // append refuses to rewrite a malformed manifest.
    assert!(err_text(Manifest::append(&m, entry("b", "r", 2, None, None))).contains("entries[0]"));
    assert!(err_text(Manifest::load(&tmp.path().join("absent.json"))).contains("absent.json"));
}

#[test]
fn selection_all_last_best() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Manifest::load(&grid(tmp.path())).expect("load");
    let dir = tmp.path();
    assert_eq!(names(dir, m.select(Selection::All).expect("all")), ["a1", "a3", "a2", "b1", "b2", "b3", "c0", "c3"]);
    // Highest step per run, not the last appended (a2 comes after a3).
    assert_eq!(names(dir, m.select(Selection::LastPerRun).expect("last")), ["a3", "b3", "c3"]);
    // a: a3 and a2 tie at 0.80, a3 has the later step. b: b2 and b3 tie at 0.90, b3 is later.
    // c: c0 (0.85) beats the later c3 (0.80).
    assert_eq!(names(dir, m.select(Selection::BestPerRun).expect("best")), ["a3", "b3", "c0"]);
}

#[test]
fn selection_top_k_ranks_by_score_then_step() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Manifest::load(&grid(tmp.path())).expect("load");
    let dir = tmp.path();
    let top = |k| names(dir, m.select(Selection::TopK(k)).expect("top"));
    // 0.90: b3 (300) before b2 (200); 0.85: c0; 0.80: a3 and c3 (both step 300, manifest
    // order), then a2 (200); 0.70: a1; 0.60: b1.
    assert_eq!(top(1), ["b3"]);
    assert_eq!(top(3), ["b3", "b2", "c0"]);
    assert_eq!(top(5), ["b3", "b2", "c0", "a3", "c3"]);
    assert_eq!(top(8), ["b3", "b2", "c0", "a3", "c3", "a2", "a1", "b1"]);
    assert!(err_text(m.select(Selection::TopK(0))).contains("top0"));
    assert!(err_text(m.select(Selection::TopK(9))).contains("8 snapshots"));
}

#[test]
fn ranking_without_dev_score_is_an_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = grid(tmp.path());
    Manifest::append(&m, entry("d1", "lr=4e-5", 100, None, None)).expect("append");
    let m = Manifest::load(&m).expect("load");
    assert_eq!(m.select(Selection::All).expect("all").len(), 9);
    assert_eq!(names(tmp.path(), m.select(Selection::LastPerRun).expect("last")), ["a3", "b3", "c3", "d1"]);
    for sel in [Selection::BestPerRun, Selection::TopK(2)] {
        let msg = err_text(m.select(sel));
        assert!(msg.contains("entries[8]") && msg.contains("lr=4e-5") && msg.contains("dev_score"), "{msg}");
    }
    assert!(err_text(Manifest::default().select(Selection::All)).contains("no entries"));
}

#[test]
fn selection_parses_and_prints() {
    for (s, sel) in [
        ("all", Selection::All),
        ("last", Selection::LastPerRun),
        ("best", Selection::BestPerRun),
        ("top5", Selection::TopK(5)),
    ] {
        assert_eq!(s.parse::<Selection>().expect("parse"), sel);
        assert_eq!(sel.to_string(), s);
    }
    for bad in ["top0", "top", "topx", "first", ""] {
        assert!(bad.parse::<Selection>().is_err(), "{bad}");
    }
}

#[test]
fn manifest_selection_feeds_average_across_runs() {
    // Run a: snapshots 0 and 1 (dev 0.5, 0.9); run b: snapshot 2 (dev 0.7). Best per run picks
    // snapshots 1 and 2; their mean differs from the three-way mean.
    let tmp = tempfile::tempdir().expect("tmp");
    let snaps = three(tmp.path());
    let m = tmp.path().join(MANIFEST_FILE);
    for (k, (run, dev)) in [("a", 0.5), ("a", 0.9), ("b", 0.7)].into_iter().enumerate() {
        let rel = format!("s{k}");
        Manifest::append(&m, entry(&rel, run, 100 * (k as u64 + 1), None, Some(dev))).expect("append");
    }
    let picked = Manifest::load(&m).expect("load").select(Selection::BestPerRun).expect("best");
    assert_eq!(picked, vec![snaps[1].clone(), snaps[2].clone()]);
    let out = tmp.path().join("avg");
    let report = average(&out, &picked).expect("average");
    assert_eq!(report.snapshots, 2);
    let (got, _) = read_out(&out.join("model.safetensors"));
    for (t, (name, _)) in TENSORS.iter().enumerate() {
        for (e, x) in got[*name].2.iter().enumerate() {
            assert_eq!(*x, (value(t, e, 1) + value(t, e, 2)) / 2.0, "{name}[{e}]");
        }
    }
}
