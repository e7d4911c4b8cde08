//! Checkpoint I/O: save/load round trip in the HF layout, f16/bf16 and sharded checkpoints,
//! names with or without the family prefix, ignored heads, and every mismatch reported by name.

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use xlt::config::ModelConfig;
mod common;
use xlt::model::weights::{load_into, save_dir};
use xlt::model::{EncoderParams, ParamLayout};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// (name → (shape, f32 values)) of a safetensors file.
fn read_all(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).expect("read");
    let st = SafeTensors::deserialize(&bytes).expect("valid");
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(v.dtype(), Dtype::F32);
            let data = v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            (k, (v.shape().to_vec(), data))
        })
        .collect()
}

/// Writes tensors with the given dtype (F32, F16 or BF16) to a safetensors file.
fn write(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| match dtype {
            Dtype::F32 => d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Dtype::F16 => d.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
            Dtype::BF16 => d.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
            _ => unreachable!("test writes float types only"),
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| (n.clone(), TensorView::new(dtype, s.clone(), b).expect("view")))
        .collect();
    std::fs::write(path, safetensors::tensor::serialize(views, None).expect("serialize")).expect("write");
}

fn encoder_only(dir: &Path) -> xlt::Result<(ModelConfig, Vec<f32>, ParamLayout)> {
    let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
    let mut layout = ParamLayout::default();
    EncoderParams::register(&mut layout, &cfg, false);
    let mut params = vec![0.0; layout.total];
    load_into(&mut params, &layout, &cfg, dir, &|t| t.encoder)?;
    Ok((cfg, params, layout))
}

fn copy_config(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    std::fs::copy(from.join("config.json"), to.join("config.json")).expect("copy config");
}

#[test]
fn save_then_load_round_trips_with_hf_names() {
    let model = common::classifier_from_dir(&fixture("tiny-xlmr"), 3);
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("saved");
    save_dir(&out, &model.s.cfg, &model.s.layout, &model.params, &|_| true).expect("save");
    let saved = read_all(&out.join("model.safetensors"));
    assert!(saved.contains_key("roberta.encoder.layer.1.attention.self.query.weight"));
    assert!(saved.contains_key("classifier.out_proj.weight"));
    assert_eq!(saved.len(), model.s.layout.tensors.len());
    // Everything the original checkpoint had is saved bit-identically under the same name,
    // except XLM-R's encoder pooler, which a sequence-classification model (HF's
    // `XLMRobertaForSequenceClassification` too) does not have.
    for (k, (shape, data)) in read_all(&fixture("tiny-xlmr/model.safetensors")) {
        if k.starts_with("roberta.pooler.") {
            assert!(!saved.contains_key(&k));
            continue;
        }
        let (s2, d2) = saved.get(&k).unwrap_or_else(|| panic!("{k} not saved"));
        assert_eq!((&shape, &data), (s2, d2), "{k}");
    }
    let back = common::classifier_from_dir(&out, 3);
    assert_eq!(back.params, model.params);
    assert_eq!(back.s.cfg, model.s.cfg);
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(&out).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn loads_bf16_and_f16_sharded_checkpoints_without_prefix() {
    let src = fixture("tiny-bert");
    let (_, want, layout) = encoder_only(&src).expect("f32 load");
    let all: Vec<(String, Vec<usize>, Vec<f32>)> = read_all(&src.join("model.safetensors"))
        .into_iter()
        .map(|(k, (s, d))| (k.strip_prefix("bert.").unwrap_or(&k).to_string(), s, d))
        .collect();
    for dtype in [Dtype::BF16, Dtype::F16] {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path();
        copy_config(&src, dir);
        let (a, b) = all.split_at(all.len() / 2);
        write(&dir.join("model-00001-of-00002.safetensors"), a, dtype);
        write(&dir.join("model-00002-of-00002.safetensors"), b, dtype);
        let map: serde_json::Map<String, serde_json::Value> = a
            .iter()
            .map(|t| (t.0.clone(), "model-00001-of-00002.safetensors".into()))
            .chain(b.iter().map(|t| (t.0.clone(), "model-00002-of-00002.safetensors".into())))
            .collect();
        let index = serde_json::json!({"metadata": {}, "weight_map": map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).expect("index");
        let (_, got, _) = encoder_only(dir).expect("sharded load");
        let tol = if dtype == Dtype::BF16 { 1.0 / 128.0 } else { 1.0 / 1024.0 };
        for t in &layout.tensors {
            for (g, w) in got[t.range()].iter().zip(&want[t.range()]) {
                assert!((g - w).abs() <= tol * w.abs().max(1e-3), "{dtype:?} {}: {g} vs {w}", t.name);
            }
        }
    }
}

fn expect_err(dir: &Path, needles: &[&str]) {
    let err = match encoder_only(dir) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    };
    for n in needles {
        assert!(err.contains(n), "error {err:?} should mention {n:?}");
    }
}

#[test]
fn mismatches_are_reported_by_name() {
    let src = fixture("tiny-xlmr");
    let all: Vec<(String, Vec<usize>, Vec<f32>)> =
        read_all(&src.join("model.safetensors")).into_iter().map(|(k, (s, d))| (k, s, d)).collect();
    let tmp = tempfile::tempdir().expect("tmp");

    // A missing tensor.
    let dir = tmp.path().join("missing");
    copy_config(&src, &dir);
    let kept: Vec<_> = all.iter().filter(|t| t.0 != "roberta.encoder.layer.1.output.dense.weight").cloned().collect();
    write(&dir.join("model.safetensors"), &kept, Dtype::F32);
    expect_err(&dir, &["missing tensors", "encoder.layer.1.output.dense.weight"]);

    // An unexpected tensor.
    let dir = tmp.path().join("unexpected");
    copy_config(&src, &dir);
    let mut extra = all.clone();
    extra.push(("roberta.encoder.layer.7.mystery.weight".into(), vec![2], vec![1.0, 2.0]));
    write(&dir.join("model.safetensors"), &extra, Dtype::F32);
    expect_err(&dir, &["unexpected tensors", "roberta.encoder.layer.7.mystery.weight"]);

    // Known heads are skipped: an MLM head and the LM head of a pretraining checkpoint.
    let dir = tmp.path().join("heads");
    copy_config(&src, &dir);
    let mut heads = all.clone();
    heads.push(("lm_head.bias".into(), vec![3], vec![0.0; 3]));
    heads.push(("cls.predictions.bias".into(), vec![3], vec![0.0; 3]));
    write(&dir.join("model.safetensors"), &heads, Dtype::F32);
    encoder_only(&dir).expect("known heads are ignored");

    // A config that does not match the weights.
    let dir = tmp.path().join("mismatch");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("cfg")).expect("json");
    cfg["intermediate_size"] = 64.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("write cfg");
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).expect("copy");
    expect_err(&dir, &["mismatch/model.safetensors", "has shape", "48", "the config implies", "64"]);

    // A truncated file.
    let dir = tmp.path().join("truncated");
    copy_config(&src, &dir);
    let bytes = std::fs::read(src.join("model.safetensors")).expect("read");
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).expect("write");
    expect_err(&dir, &["model.safetensors", "not a valid safetensors file"]);

    // No weights at all, and no folder at all.
    let dir = tmp.path().join("empty");
    copy_config(&src, &dir);
    expect_err(&dir, &["no model.safetensors"]);
    expect_err(&tmp.path().join("nope"), &["nope"]);
}

#[test]
fn unsupported_configs_are_clear_errors() {
    let src = fixture("tiny-xlmr");
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("cfg")).expect("json");
    let tmp = tempfile::tempdir().expect("tmp");
    let cases: [(&str, serde_json::Value, &str); 4] = [
        ("hidden_act", "relu".into(), "hidden_act \"relu\""),
        ("position_embedding_type", "relative_key".into(), "relative_key"),
        ("model_type", "gpt2".into(), "model_type \"gpt2\""),
        ("num_attention_heads", 5.into(), "multiple of num_attention_heads"),
    ];
    for (key, val, needle) in cases {
        let mut cfg = base.clone();
        cfg[key] = val;
        let p = tmp.path().join(format!("{key}.json"));
        std::fs::write(&p, cfg.to_string()).expect("write");
        let err = ModelConfig::from_file(&p).expect_err("must be rejected").to_string();
        assert!(err.contains(needle) && err.contains(&p.display().to_string()), "{err}");
    }
    let p = tmp.path().join("broken.json");
    std::fs::write(&p, "{ not json").expect("write");
    assert!(ModelConfig::from_file(&p).expect_err("broken").to_string().contains("broken.json"));
}
