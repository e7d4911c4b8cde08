//! `xlt xtreme` on the XTREME fixtures: every task runs (fine-tuning, zero-shot evaluation,
//! retrieval), predictions land in XTREME's layout and re-score to the reported numbers, the
//! tables are written, and a re-run skips finished tasks.

mod common;
use common::copy_dir;
use std::path::Path;
use std::process::Command;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-xlmr");
const XTREME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tasks/xtreme");

fn xtreme(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "xtreme",
        "--encoder",
        MODEL,
        "--data-dir",
        XTREME,
        "--max-steps",
        "4",
        "--eval-every-steps",
        "2",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let out_s = out.display().to_string();
    Command::new(env!("CARGO_BIN_EXE_xlt")).args(&args).args(["--out", &out_s]).output().expect("spawn xlt")
}

#[test]
fn all_tasks_run_score_and_resume() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("xt");
    let o = xtreme(&out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results = xlt::report::read_json(&out.join("results.json")).expect("results.json");
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.model, "tiny-xlmr");
    let tasks: Vec<&str> = r.tasks.iter().map(|t| t.task.as_str()).collect();
    assert_eq!(tasks, xlt::xtreme::XTREME_TASKS);
    for f in ["results.md", "results.svg", "runs/xnli/model/model.safetensors", "runs/xquad/done"] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    // MLQA reuses the SQuAD run of XQuAD: no runs/mlqa, and the run is not made again.
    assert!(!out.join("runs/mlqa").exists());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("fine-tuning").count(), 6, "{err}");
    assert!(!out.join("replaced").exists(), "{err}");
    // The PAN-X German dev score is what `xlt score` gives for predictions of the same model.
    let panx = r.task("panx").expect("panx");
    let de = panx.languages.get("de").expect("panx de scored on dev");
    assert!((0.0..=100.0).contains(&de.primary));
    let pred = tmp.path().join("panx-dev");
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["eval", "--model", &out.join("runs/panx/model").display().to_string(), "--task", "panx"])
        .args(["--data-dir", XTREME, "--langs", "de", "--max-seq-len", "128", "--out", &pred.display().to_string()])
        .output()
        .expect("eval");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii()).expect("json");
    assert!((v["scores"]["de"].as_f64().expect("score") - de.primary).abs() < 1e-9, "{v}");
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["score", "--task", "panx", "--gold", &format!("{XTREME}/panx/dev-de.tsv")])
        .args(["--pred", &pred.join("panx/dev-de.tsv").display().to_string()])
        .output()
        .expect("score");
    let scored: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii()).expect("json");
    assert!((scored["f1"].as_f64().expect("f1") - de.primary).abs() < 1e-6, "{scored} vs {}", de.primary);
    // Test predictions in the submission layout.
    for f in
        ["xnli/test-de.tsv", "pawsx/test-de.tsv", "udpos/test-kk.tsv", "xquad/test-de.json", "bucc2018/test-de.tsv"]
    {
        assert!(out.join("predictions").join(f).is_file(), "missing prediction {f}");
    }
    // A re-run skips every finished task and reproduces the results.
    let before = std::fs::read(out.join("results.json")).expect("read");
    let o = xtreme(&out, &[]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("already done").count(), 9, "{err}");
    assert_eq!(std::fs::read(out.join("results.json")).expect("read"), before);
}

#[test]
fn unknown_tasks_and_missing_data_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let o = xtreme(&tmp.path().join("a"), &["--tasks", "mnli"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not an XTREME task") && !err.contains("panicked"), "{err}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["xtreme", "--encoder", MODEL, "--data-dir", &empty.display().to_string(), "--tasks", "xnli"])
        .args(["--out", &tmp.path().join("b").display().to_string(), "--quiet"])
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("train-en.tsv") && !err.contains("panicked"), "{err}");
}

#[test]
fn a_malformed_language_file_is_an_error_not_a_missing_language() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    copy_dir(Path::new(XTREME), &data);
    std::fs::write(data.join("xnli/dev-de.tsv"), "only one column\n").expect("corrupt");
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["xtreme", "--encoder", MODEL, "--data-dir", &data.display().to_string(), "--tasks", "xnli"])
        .args(["--max-steps", "2", "--quiet", "--out", &tmp.path().join("out").display().to_string()])
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("dev-de.tsv") && !err.contains("panicked"), "{err}");
}

#[test]
fn eval_scores_retrieval_from_embeddings() {
    let tmp = tempfile::tempdir().expect("tmp");
    let eval = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xlt"))
            .args(["eval", "--model", MODEL, "--task", "bucc2018", "--data-dir", XTREME, "--langs", "de"])
            .args(extra)
            .output()
            .expect("spawn")
    };
    let o = eval(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--out") && !err.contains("panicked"), "{err}");
    let out = tmp.path().join("preds");
    let o = eval(&["--out", &out.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii()).expect("json");
    assert!(v["scores"]["de"]["score"].as_f64().is_some_and(|f| (0.0..=100.0).contains(&f)), "{v}");
    assert!(out.join("bucc2018/test-de.tsv").is_file());
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn a_result_made_from_another_encoder_data_or_settings_is_re_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let data = tmp.path().join("data");
    copy_dir(Path::new(XTREME), &data);
    let run = |encoder: &str, data: &Path, extra: &[&str]| {
        let mut args = vec![
            "xtreme",
            "--encoder",
            encoder,
            "--data-dir",
            data.to_str().expect("utf8"),
            "--max-steps",
            "2",
            "--eval-every-steps",
            "1",
            "--quiet",
            "--device",
            "cpu",
            "--model-name",
            "m",
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_xlt"))
            .args(&args)
            .args(["--out", out.to_str().expect("utf8")])
            .output()
            .expect("spawn")
    };
    let o = run(MODEL, &data, &["--tasks", "pawsx"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(MODEL, &data, &["--tasks", "pawsx"]);
    assert!(o.status.success() && stderr(&o).contains("pawsx: already done"), "{}", stderr(&o));
    // Other settings.
    let o = run(MODEL, &data, &["--tasks", "pawsx", "--learning-rate", "1e-4"]);
    let err = stderr(&o);
    assert!(o.status.success() && err.contains("re-running") && err.contains("learning_rate"), "{err}");
    // Other data.
    let dev = data.join("pawsx/dev-de.tsv");
    let text = std::fs::read_to_string(&dev).expect("read");
    std::fs::write(&dev, format!("{text}Ein Satz.\tEin anderer Satz.\t0\n")).expect("write");
    let o = run(MODEL, &data, &["--tasks", "pawsx", "--learning-rate", "1e-4"]);
    let err = stderr(&o);
    assert!(o.status.success() && err.contains("data file pawsx/dev-de.tsv changed"), "{err}");
    // Another encoder: the fine-tuned PAWS-X model itself, copied.
    let other = tmp.path().join("other");
    copy_dir(&out.join("runs/pawsx/model"), &other);
    let o = run(other.to_str().expect("utf8"), &data, &["--tasks", "pawsx", "--learning-rate", "1e-4"]);
    let err = stderr(&o);
    assert!(o.status.success() && err.contains("the encoder's files differ"), "{err}");
    // Nothing is lost: each replaced result and run folder is kept.
    let kept: Vec<_> = std::fs::read_dir(out.join("replaced")).expect("replaced").collect();
    assert!(!kept.is_empty());
    // results.* list every finished task of the folder, not only this call's.
    let o = run(MODEL, &data, &["--tasks", "xnli"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = &xlt::report::read_json(&out.join("results.json")).expect("results")[0];
    let tasks: Vec<&str> = r.tasks.iter().map(|t| t.task.as_str()).collect();
    assert_eq!(tasks, ["pawsx", "xnli"]);
    assert!(stderr(&o).contains("results of other encoders"), "{}", stderr(&o));
}

#[test]
fn every_file_is_read_before_the_first_training_step() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    copy_dir(Path::new(XTREME), &data);
    // PAN-X's German test file is broken; PAW-X comes first and must not start training.
    std::fs::write(data.join("panx/test-de.tsv"), "Berlin\tB-LOC\textra\n").expect("corrupt");
    let out = tmp.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["xtreme", "--encoder", MODEL, "--data-dir", &data.display().to_string(), "--tasks", "pawsx,panx"])
        .args(["--max-steps", "2", "--quiet", "--device", "cpu", "--out", &out.display().to_string()])
        .output()
        .expect("spawn");
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("panx/test-de.tsv") && err.contains("line 1"), "{err}");
    assert!(!out.join("runs").exists(), "training started before the data was checked");
}
