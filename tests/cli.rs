//! The real `xlt` binary: `embed` and `bench` behaviour, and bad input that must give a
//! one-line error naming the file, a non-zero exit, no panic and no output file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xlt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xlt")).args(args).env("RUST_BACKTRACE", "0").output().expect("run xlt")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Runs a command that must fail cleanly; returns its stderr.
fn fails(args: &[&str], out: &Path, needles: &[&str]) -> String {
    let o = xlt(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{args:?} should fail; stderr: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error expected: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: error {err:?} should mention {n:?}");
    }
    assert!(!out.exists(), "{args:?} left an output file behind");
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().expect("parent"))
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
    err
}

#[test]
fn embed_writes_npy_in_input_order_independent_of_batching() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in.txt");
    let lines =
        ["a much longer sentence than the others, with many words in it", "short", "", "mid length line here", "short"];
    std::fs::write(&input, lines.join("\n") + "\n").expect("write");
    let model = fixture("tiny-xlmr");
    let run = |bs: &str, out: &Path| {
        let o = xlt(&["embed", "--model", s(&model), "--input", s(&input), "--output", s(out), "--batch-size", bs]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        xlt::npy::read_f32(out).expect("npy")
    };
    let (one, shape) = run("1", &tmp.path().join("one.npy"));
    let (many, shape2) = run("4", &tmp.path().join("many.npy"));
    assert_eq!(shape, vec![5, 32]);
    assert_eq!(shape, shape2);
    // Padding in a batch must not change any sentence's embedding.
    let d = one.iter().zip(&many).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(d < 1e-5, "batching changed embeddings by {d}");
    // Identical lines give identical rows; different lines different rows.
    assert_eq!(&many[32..64], &many[4 * 32..5 * 32]);
    assert_ne!(&many[0..32], &many[32..64]);
}

#[test]
fn embed_layer_and_pooling_follow_hidden_states() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = fixture("tiny-bert");
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "one two three\nfour five\n").expect("write");
    let out = |name: &str, extra: &[&str]| {
        let p = tmp.path().join(name);
        let mut args = vec!["embed", "--model", s(&model), "--input", s(&input), "--output", s(&p)];
        args.extend_from_slice(extra);
        let o = xlt(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        xlt::npy::read_f32(&p).expect("npy").0
    };
    let last = out("last.npy", &[]);
    let last2 = out("last2.npy", &["--layer", "2"]);
    let l0 = out("l0.npy", &["--layer", "0"]);
    let cls0 = out("cls0.npy", &["--layer", "0", "--pool", "cls"]);
    assert_eq!(last, last2, "default layer is the last (2 layers)");
    assert_ne!(last, l0);
    assert_ne!(l0, cls0);
    let o = xlt(&[
        "embed",
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--output",
        s(&tmp.path().join("x.npy")),
        "--layer",
        "3",
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("0..=2"));
}

#[test]
fn long_lines_are_truncated_with_one_note() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("long.txt");
    let long = "word ".repeat(400);
    std::fs::write(&input, format!("{long}\n{long}\nshort\n")).expect("write");
    let out = tmp.path().join("o.npy");
    let o = xlt(&["embed", "--model", s(&fixture("tiny-xlmr")), "--input", s(&input), "--output", s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("truncated").count(), 1, "{err}");
    assert!(err.contains("2 of 3 lines"), "{err}");
}

#[test]
fn bad_input_gives_one_line_errors_and_no_output() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out.npy");
    let model = fixture("tiny-xlmr");
    let good = tmp.path().join("good.txt");
    std::fs::write(&good, "hello\n").expect("write");

    fails(&["embed", "--model", "/no/such/model", "--input", s(&good), "--output", s(&out)], &out, &["/no/such/model"]);
    fails(
        &["embed", "--model", s(&model), "--input", "/no/such/input.txt", "--output", s(&out)],
        &out,
        &["/no/such/input.txt"],
    );

    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "").expect("write");
    fails(&["embed", "--model", s(&model), "--input", s(&empty), "--output", s(&out)], &out, &["empty.txt", "empty"]);

    let latin1 = tmp.path().join("latin1.txt");
    std::fs::write(&latin1, b"fine\ncaf\xe9\n").expect("write");
    fails(
        &["embed", "--model", s(&model), "--input", s(&latin1), "--output", s(&out)],
        &out,
        &["latin1.txt", "line 2", "UTF-8"],
    );

    // Corrupt weights: a truncated safetensors file.
    let corrupt = tmp.path().join("corrupt");
    std::fs::create_dir_all(&corrupt).expect("mkdir");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(model.join(f), corrupt.join(f)).expect("copy");
    }
    let bytes = std::fs::read(model.join("model.safetensors")).expect("read");
    std::fs::write(corrupt.join("model.safetensors"), &bytes[..bytes.len() - 100]).expect("write");
    fails(
        &["embed", "--model", s(&corrupt), "--input", s(&good), "--output", s(&out)],
        &out,
        &["model.safetensors", "truncated or corrupt"],
    );

    // A config that does not match the weights.
    let mismatch = tmp.path().join("mismatch");
    std::fs::create_dir_all(&mismatch).expect("mkdir");
    std::fs::copy(model.join("tokenizer.json"), mismatch.join("tokenizer.json")).expect("copy");
    std::fs::copy(model.join("model.safetensors"), mismatch.join("model.safetensors")).expect("copy");
    let cfg = std::fs::read_to_string(model.join("config.json"))
        .expect("cfg")
        .replace("\"hidden_size\": 32", "\"hidden_size\": 64");
    std::fs::write(mismatch.join("config.json"), cfg).expect("write");
    fails(
        &["embed", "--model", s(&mismatch), "--input", s(&good), "--output", s(&out)],
        &out,
        &["mismatch", "has shape", "config implies"],
    );

    // A tokenizer that is not JSON.
    let badtok = tmp.path().join("badtok");
    std::fs::create_dir_all(&badtok).expect("mkdir");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(model.join(f), badtok.join(f)).expect("copy");
    }
    std::fs::write(badtok.join("tokenizer.json"), "not json").expect("write");
    fails(&["embed", "--model", s(&badtok), "--input", s(&good), "--output", s(&out)], &out, &["tokenizer.json"]);

    // A tokenizer from another model (more tokens than the embedding table has rows).
    let small = tmp.path().join("small-vocab");
    std::fs::create_dir_all(&small).expect("mkdir");
    for f in ["tokenizer.json", "model.safetensors"] {
        std::fs::copy(model.join(f), small.join(f)).expect("copy");
    }
    let cfg = std::fs::read_to_string(model.join("config.json"))
        .expect("cfg")
        .replace("\"vocab_size\": 400", "\"vocab_size\": 300");
    assert!(cfg.contains("300"), "fixture config has vocab_size 400");
    std::fs::write(small.join("config.json"), cfg).expect("write");
    fails(
        &["embed", "--model", s(&small), "--input", s(&good), "--output", s(&out)],
        &out,
        &["tokenizer.json", "vocab_size 300"],
    );

    // An output folder that does not exist.
    let nowhere = tmp.path().join("no/such/dir/out.npy");
    let o = xlt(&["embed", "--model", s(&model), "--input", s(&good), "--output", s(&nowhere)]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no/such/dir"));
}

#[test]
fn bench_prints_one_json_line() {
    let o = xlt(&[
        "bench", "--hidden", "32", "--layers", "1", "--heads", "2", "--ffn", "64", "--vocab", "100", "--batch", "2",
        "--seq", "16", "--steps", "3", "--warmup", "1", "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.trim().lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert!(v["ms_per_step"].as_f64().expect("ms") > 0.0);
    assert_eq!(v["tokens_per_s"].as_f64().map(|x| x > 0.0), Some(true));
    assert_eq!(v["hidden"], 32);
    let o = xlt(&["bench", "--preset", "xlmr-huge"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("xlmr-huge"));
    let o = xlt(&["bench", "--hidden", "30", "--heads", "4", "--steps", "1"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("multiple"));
}

#[test]
fn score_prints_one_json_object_and_fails_cleanly() {
    let fx = |n: &str| fixture("score").join(n);
    let o =
        xlt(&["score", "--task", "squad", "--gold", s(&fx("squad_gold.json")), "--pred", s(&fx("squad_pred.json"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.trim().lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    for key in ["exact_match", "f1"] {
        let x = v[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&x), "{key} = {x} on the 0-100 scale");
    }
    let o = xlt(&["score", "--task", "udpos", "--gold", s(&fx("udpos_gold.tsv")), "--pred", s(&fx("udpos_pred.txt"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii()).expect("json");
    assert!(v["accuracy"].is_number() && v["f1"].is_number());
    // Malformed predictions: one line naming the file, non-zero exit, no panic.
    let o = xlt(&[
        "score",
        "--task",
        "squad",
        "--gold",
        s(&fx("squad_gold.json")),
        "--pred",
        s(&fx("squad_pred_malformed.json")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked") && err.contains("squad_pred_malformed.json"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // Neither a task nor a folder.
    assert!(!xlt(&["score"]).status.success());
}

#[test]
fn average_cli_from_folders_and_manifest() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = fixture("tiny-xlmr");
    let (s1, s2) = (tmp.path().join("s1"), tmp.path().join("s2"));
    for d in [&s1, &s2] {
        std::fs::create_dir_all(d).expect("mkdir");
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(src.join(f), d.join(f)).expect("copy");
        }
    }
    let out = tmp.path().join("avg");
    let o = xlt(&["average", "--out", s(&out), s(&s1), s(&s2)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The mean of two identical snapshots is the snapshot: embeddings from it match.
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "hello world\n").expect("write");
    let e = |m: &Path, name: &str| {
        let p = tmp.path().join(name);
        let o = xlt(&["embed", "--model", s(m), "--input", s(&input), "--output", s(&p)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        xlt::npy::read_f32(&p).expect("npy").0
    };
    assert_eq!(e(&out, "a.npy"), e(&src, "b.npy"));
    // Manifest selection.
    let manifest = tmp.path().join("manifest.json");
    let m = serde_json::json!({"entries": [
        {"path": "s1", "run": "r", "step": 1, "dev_score": 0.5},
        {"path": "s2", "run": "r", "step": 2, "dev_score": 0.7}
    ]});
    std::fs::write(&manifest, m.to_string()).expect("manifest");
    let out2 = tmp.path().join("avg2");
    let o = xlt(&["average", "--out", s(&out2), "--manifest", s(&manifest), "--select", "top-k", "--k", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = xlt(&["average", "--out", s(&out2), "--manifest", s(&manifest), "--select", "top-k"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--k"));
    let o = xlt(&["average", "--out", s(&tmp.path().join("avg3")), s(&s1), s(&tmp.path().join("missing"))]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("missing") && !err.contains("panicked"), "{err}");
}

#[test]
fn eval_writes_predictions_that_score_agrees_with() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = fixture("tasks/xtreme");
    let out = tmp.path().join("preds");
    let o = xlt(&[
        "eval",
        "--model",
        s(&fixture("tiny-xlmr")),
        "--task",
        "xnli",
        "--data-dir",
        s(&data),
        "--langs",
        "de",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii()).expect("json");
    let acc = v["scores"]["de"].as_f64().expect("de accuracy");
    let pred = out.join("xnli/dev-de.tsv");
    let o = xlt(&["score", "--task", "xnli", "--gold", s(&data.join("xnli/dev-de.tsv")), "--pred", s(&pred)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let scored: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii()).expect("json");
    assert!((scored["accuracy"].as_f64().expect("accuracy") - acc).abs() < 1e-9, "eval {acc} vs score {scored}");
    // A language without data names the expected file; a checkpoint without a head is refused.
    let o =
        xlt(&["eval", "--model", s(&fixture("tiny-xlmr")), "--task", "xnli", "--data-dir", s(&data), "--langs", "fr"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("dev-fr.tsv") && !err.contains("panicked"), "{err}");
    let o = xlt(&["eval", "--model", s(&fixture("tiny-xlmr")), "--task", "udpos", "--data-dir", s(&data)]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("udpos"));
}
