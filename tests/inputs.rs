//! Nothing silently wrong on bad input, through the real binary: empty task names, non-finite
//! weights in every command, settings out of range (before anything is written), byte-order
//! marks and CRLF in every text input, sizes that cannot fit, and errors that are one plain
//! line.

mod common;
use common::copy_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-xlmr");
const JIANT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tasks/jiant");
const XTREME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tasks/xtreme");
const SENTENCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/sample-sentences.txt");

fn xlt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xlt")).args(args).env("RUST_BACKTRACE", "0").output().expect("run xlt")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Runs a command that must fail with one plain line naming every needle; returns it.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let o = xlt(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{args:?} should fail; stderr: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> =
        err.trim_end().lines().filter(|l| !l.starts_with("device: ") && !l.starts_with("note: ")).collect();
    assert_eq!(lines.len(), 1, "one-line error expected: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: error {err:?} should mention {n:?}");
    }
    // No Rust debug formatting of options or structs.
    for debug in ["Some(", "None", "Os {", "kind:"] {
        assert!(!err.contains(debug), "{args:?}: debug formatting in {err:?}");
    }
    err
}

fn train_args<'a>(exp: &'a str, tasks: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--tasks",
        tasks,
        "--data-dir",
        JIANT,
        "--model",
        MODEL,
        "--max-seq-length",
        "32",
        "--max-steps",
        "2",
        "--quiet",
        "--device",
        "cpu",
        "--exp-dir",
        exp,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn empty_task_names_are_errors_and_mixtures_answer_only_to_their_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let exp = tmp.path().join("exp");
    for tasks in ["", "ccg,", ",mnli"] {
        fails(&train_args(s(&exp), tasks, &[]), &["empty"]);
    }
    assert!(!exp.exists(), "nothing is written for a bad task list");
    let out = tmp.path().join("x");
    fails(&["xtreme", "--encoder", MODEL, "--data-dir", XTREME, "--out", s(&out), "--tasks", "pawsx,"], &["empty"]);
    // The ANLI+ mixture is not a jiant task class: the empty class does not name it.
    assert!(xlt::tasks::lookup("").is_err());
    assert_eq!(xlt::tasks::lookup("anli_plus").expect("by name").name, "anli_plus");
    assert_eq!(xlt::tasks::lookup("anli+").expect("alias").name, "anli_plus");
}

/// A copy of the tiny model whose `tensor` holds `value` at element 5.
fn poisoned_model(root: &Path, tensor: &str, value: f32) -> PathBuf {
    let dir = root.join("poisoned");
    copy_dir(Path::new(MODEL), &dir);
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(name, v)| (name, v.shape().to_vec(), v.data().to_vec())).collect();
    let (_, _, data) = tensors.iter_mut().find(|(n, _, _)| n == tensor).expect("tensor present");
    data[20..24].copy_from_slice(&value.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, shape, d)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), d).expect("view"))
        })
        .collect();
    std::fs::write(&path, safetensors::tensor::serialize(views, None).expect("serialize")).expect("write");
    dir
}

#[test]
fn non_finite_weights_are_refused_at_load_in_every_command() {
    let tmp = tempfile::tempdir().expect("tmp");
    let name = "roberta.encoder.layer.0.attention.self.query.weight";
    let bad = poisoned_model(tmp.path(), name, f32::NAN);
    let m = s(&bad);
    let npy = tmp.path().join("e.npy");
    fails(&["embed", "--model", m, "--input", SENTENCES, "--output", s(&npy)], &[name, "non-finite", "NaN"]);
    assert!(!npy.exists());
    fails(&["eval", "--model", m, "--task", "xnli", "--data-dir", XTREME, "--langs", "de", "--device", "cpu"], &[name]);
    let exp = tmp.path().join("exp");
    let mut args = train_args(s(&exp), "mnli", &[]);
    args[6] = m;
    fails(&args, &[name]);
    let out = tmp.path().join("xt");
    fails(
        &["xtreme", "--encoder", m, "--data-dir", XTREME, "--out", s(&out), "--tasks", "pawsx", "--device", "cpu"],
        &[name],
    );
    fails(&["average", "--out", s(&tmp.path().join("avg")), MODEL, m], &[name]);
    // Infinity too.
    let inf = poisoned_model(&tmp.path().join("inf"), name, f32::INFINITY);
    fails(&["embed", "--model", s(&inf), "--input", SENTENCES, "--output", s(&npy)], &[name, "inf"]);
}

#[test]
fn settings_out_of_range_name_the_flag_before_anything_is_written() {
    let tmp = tempfile::tempdir().expect("tmp");
    let exp = tmp.path().join("exp");
    let e = s(&exp);
    for (flag, value, needle) in [
        ("--learning-rate", "nan", "--learning-rate"),
        ("--learning-rate", "0", "--learning-rate"),
        ("--learning-rate", "5", "--learning-rate"),
        ("--weight-decay=-0.1", "", "--weight-decay"),
        ("--adam-epsilon", "0", "--adam-epsilon"),
        ("--max-grad-norm", "inf", "--max-grad-norm"),
        ("--warmup-proportion", "1.5", "--warmup-proportion"),
        ("--num-train-epochs=-1", "", "--num-train-epochs"),
        ("--gradient-accumulation-steps", "0", "--gradient-accumulation-steps"),
        ("--train-batch-size", "0", "--train-batch-size"),
        ("--eval-batch-size", "0", "--eval-batch-size"),
    ] {
        let extra: Vec<&str> = [flag, value].into_iter().filter(|a| !a.is_empty()).collect();
        fails(&train_args(e, "mnli", &extra), &[needle]);
        assert!(!exp.exists(), "{flag} {value}: the experiment folder was created");
    }
    let mut args = train_args(e, "mnli", &[]);
    args[8] = "100000";
    fails(&args, &["--max-seq-length", "positions"]);
    assert!(!exp.exists());
    // The same names from a TOML file, which may start with a byte-order mark.
    let cfg = tmp.path().join("run.toml");
    std::fs::write(&cfg, "\u{feff}tasks = [\"mnli\"]\r\n[train]\r\nweight_decay = -1.0\r\n").expect("write");
    fails(&["train", "--config", s(&cfg), "--model", MODEL, "--data-dir", JIANT, "--exp-dir", e], &["weight_decay"]);
    // xlt xtreme checks its settings before anything too.
    let out = tmp.path().join("xt");
    fails(
        &["xtreme", "--encoder", MODEL, "--data-dir", XTREME, "--out", s(&out), "--learning-rate=-1"],
        &["--learning-rate"],
    );
    assert!(!out.exists());
}

#[test]
fn byte_order_marks_and_crlf_work_in_every_text_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bom = |p: &Path| {
        let text = std::fs::read_to_string(p).expect("read");
        let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
        std::fs::write(p, format!("\u{feff}{crlf}")).expect("write");
    };
    // Model folder: config.json and tokenizer.json; embedding input.
    let model = tmp.path().join("model");
    copy_dir(Path::new(MODEL), &model);
    bom(&model.join("config.json"));
    bom(&model.join("tokenizer.json"));
    let input = tmp.path().join("in.txt");
    std::fs::copy(SENTENCES, &input).expect("copy");
    bom(&input);
    let (a, b) = (tmp.path().join("a.npy"), tmp.path().join("b.npy"));
    let o = xlt(&["embed", "--model", s(&model), "--input", s(&input), "--output", s(&a)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = xlt(&["embed", "--model", MODEL, "--input", SENTENCES, "--output", s(&b)]);
    assert!(o.status.success());
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"), "same embeddings");
    // jiant configs and JSON lines, XTREME TSVs, all with a BOM and CRLF endings.
    let jiant = tmp.path().join("jiant");
    copy_dir(Path::new(JIANT), &jiant);
    for f in ["configs/mnli_config.json", "data/mnli/train.jsonl", "data/mnli/val.jsonl"] {
        bom(&jiant.join(f));
    }
    let exp = tmp.path().join("exp");
    let mut args = train_args(s(&exp), "mnli", &["--run-name", "bom"]);
    args[4] = s(&jiant);
    let o = xlt(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A snapshot manifest.
    let m = tmp.path().join("manifest.json");
    std::fs::write(
        &m,
        format!("\u{feff}{{\"entries\": [{{\"path\": \"{MODEL}\", \"run\": \"r\", \"step\": 1}}]}}\r\n"),
    )
    .expect("manifest");
    let o = xlt(&["average", "--out", s(&tmp.path().join("avg")), "--manifest", s(&m)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn xtreme_files_with_a_bom_and_crlf_score_as_without() {
    let tmp = tempfile::tempdir().expect("tmp");
    let xtreme = tmp.path().join("xtreme");
    copy_dir(Path::new(XTREME), &xtreme);
    for f in ["pawsx/dev-de.tsv", "panx/dev-de.tsv"] {
        let p = xtreme.join(f);
        let text = std::fs::read_to_string(&p).expect("read").replace('\n', "\r\n");
        std::fs::write(&p, format!("\u{feff}{text}")).expect("write");
    }
    // A model with a PAWS-X and a PAN-X head: its scores on the rewritten files are the same.
    let exp = tmp.path().join("exp");
    let o = xlt(&[
        "train",
        "--tasks",
        "pawsx,panx",
        "--data-dir",
        XTREME,
        "--model",
        MODEL,
        "--max-seq-length",
        "32",
        "--max-steps",
        "1",
        "--quiet",
        "--device",
        "cpu",
        "--exp-dir",
        s(&exp),
        "--run-name",
        "p",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = exp.join("runs/p/model");
    let score = |task: &str, data: &Path| {
        let o = xlt(&["eval", "--model", s(&model), "--task", task, "--data-dir", s(data), "--langs", "de"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii()).expect("json");
        v["scores"]["de"].as_f64().expect("score")
    };
    for task in ["pawsx", "panx"] {
        assert_eq!(score(task, &xtreme), score(task, Path::new(XTREME)), "{task}");
    }
}

#[test]
fn sizes_that_cannot_fit_are_errors_before_allocating() {
    let tmp = tempfile::tempdir().expect("tmp");
    fails(&["bench", "--seq", "100000", "--steps", "1"], &["--seq", "positions"]);
    fails(&["bench", "--batch", "1000000000", "--seq", "512", "--steps", "1"], &["memory", "--batch"]);
    let exp = tmp.path().join("exp");
    fails(&train_args(s(&exp), "mnli", &["--train-batch-size", "100000000000"]), &["memory", "--train-batch-size"]);
    let run = exp.join("runs/run");
    assert!(!run.join("checkpoint").exists() && !run.join("log.jsonl").metadata().is_ok_and(|m| m.len() > 0));
    fails(&["--threads", "0", "bench", "--steps", "1"], &["--threads"]);
    let o = xlt(&["--threads", "100000", "bench", "--steps", "1", "--hidden", "32", "--layers", "1", "--ffn", "64"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--threads lowered"));
}

#[test]
fn errors_are_one_plain_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let npy = tmp.path().join("x.npy");
    let err = fails(&["embed", "--input", "/nonexistent/in.txt", "--output", s(&npy)], &["/nonexistent/in.txt"]);
    assert_eq!(err.matches("No such file").count() + err.matches("no such file").count(), 1, "{err}");
    assert!(!err.contains("os error"), "{err}");
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "run_name = \"a\"\nlearning_rat = 1\n").expect("write");
    let err = fails(&["train", "--config", s(&cfg)], &["bad.toml", "line 2, column 1", "learning_rat"]);
    assert!(!err.contains("  |"), "no source snippet: {err}");
    std::fs::write(&cfg, "run_name = \n").expect("write");
    fails(&["train", "--config", s(&cfg)], &["bad.toml", "line 1"]);
}
