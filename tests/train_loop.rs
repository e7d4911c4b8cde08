//! The training loop end to end on the task fixtures: a multi-task run (classification,
//! multiple choice, span QA, MLM co-training) with accumulation, dropout and evaluation;
//! N steps straight equal N/2 + stop + resume + N/2 bit for bit; a killed `xlt train`
//! resumes to the same model; NaN losses, bad task names and unwritable folders are clear
//! errors before or at the failing step.

mod common;
use common::copy_dir;
use std::path::{Path, PathBuf};
use std::process::Command;
use xlt::device::Device;
use xlt::tokenize::Tokenizer;
use xlt::train::setup::{load_tokenizer, prepare, RunSpec};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-xlmr");
const JIANT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tasks/jiant");
const XTREME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tasks/xtreme");

fn spec(exp: &Path, name: &str, tasks: &[&str], steps: u64) -> RunSpec {
    let mut s = RunSpec {
        run_name: name.into(),
        exp_dir: exp.to_path_buf(),
        data_dir: PathBuf::from(JIANT),
        tasks: tasks.iter().map(|t| t.to_string()).collect(),
        model: PathBuf::from(MODEL),
        max_seq_length: 64,
        train_batch_size: Some(2),
        learning_rate: Some(1e-3),
        ..RunSpec::default()
    };
    s.train.max_steps = Some(steps);
    s.train.gradient_accumulation_steps = 2;
    s.train.eval_every_steps = 3;
    s.train.eval_batch_size = 4;
    s.train.seed = 5;
    s
}

fn tok() -> Tokenizer {
    load_tokenizer(&spec(Path::new("/nonexistent"), "x", &["mnli"], 1)).expect("tokenizer")
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn multi_task_run_trains_evaluates_and_writes_its_folder() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let s = spec(tmp.path(), "multi", &["mnli", "hellaswag", "squad_v1", "mlm"], 8);
    let mut run = prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer.quiet();
    let heads: Vec<String> = run.model.structure().specs.iter().map(|h| h.name.clone()).collect();
    assert_eq!(heads, ["nli", "hellaswag", "squad", "mlm"]);
    let summary = run.run("multi", None).expect("run").expect("finished");
    assert_eq!(summary.steps, 8);
    assert!(summary.best_score.is_some(), "validation scores exist");
    let dir = tmp.path().join("runs/multi");
    for f in ["done", "val_metrics.json", "run_config.toml", "log.jsonl", "model/model.safetensors"] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    for f in ["model/xlt_heads.json", "model/tokenizer.json", "checkpoint/state.json", "best/model.safetensors"] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let log = std::fs::read_to_string(dir.join("log.jsonl")).expect("log");
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.iter().filter(|v| v["event"] == "train").count(), 8);
    assert!(lines.iter().filter(|v| v["event"] == "eval").count() >= 3);
    // Every task was sampled at least once in 8 steps? Not guaranteed; all losses are finite.
    assert!(lines.iter().filter(|v| v["event"] == "train").all(|v| v["loss"].as_f64().is_some_and(f64::is_finite)));
    // The effective configuration reloads.
    let back = RunSpec::from_toml_file(&dir.join("run_config.toml")).expect("toml");
    assert_eq!(back.train.max_steps, Some(8));
    assert_eq!(back.learning_rate, Some(1e-3));
    // The final model loads as a whole, and as an encoder for a next phase.
    xlt::model::HostModel::from_dir(&dir.join("model")).expect("reload");
}

#[test]
fn stop_and_resume_equals_a_straight_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let tasks = ["mnli", "squad_v1", "mlm"];
    let mut s = spec(tmp.path(), "straight", &tasks, 10);
    s.train.save_checkpoint_every_steps = 5;
    let mut a = prepare(s.clone(), &tok, false, &Device::Cpu).expect("prepare").trainer.quiet();
    a.run("straight", None).expect("run");
    s.run_name = "halves".into();
    let mut b = prepare(s.clone(), &tok, false, &Device::Cpu).expect("prepare").trainer.quiet();
    assert!(b.run("halves", Some(5)).expect("first half").is_none());
    drop(b);
    // Without --resume the existing checkpoint is protected.
    let err = prepare(s.clone(), &tok, false, &Device::Cpu).err().expect("refused");
    assert!(err.to_string().contains("--resume"), "{err}");
    let mut c = prepare(s, &tok, true, &Device::Cpu).expect("resume").trainer.quiet();
    assert_eq!(c.state.step, 5);
    c.run("halves", None).expect("second half");
    let (x, y) = (tmp.path().join("runs/straight"), tmp.path().join("runs/halves"));
    assert_eq!(read(&x.join("model/model.safetensors")), read(&y.join("model/model.safetensors")));
    assert_eq!(read(&x.join("checkpoint/optimizer.safetensors")), read(&y.join("checkpoint/optimizer.safetensors")));
}

#[test]
fn killed_cli_run_resumes_to_the_same_model() {
    let tmp = tempfile::tempdir().expect("tmp");
    let exe = env!("CARGO_BIN_EXE_xlt");
    let args = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "--tasks",
            "xnli,panx",
            "--data-dir",
            XTREME,
            "--model",
            MODEL,
            "--max-seq-length",
            "48",
            "--train-batch-size",
            "2",
            "--max-steps",
            "300",
            "--save-checkpoint-every-steps",
            "4",
            "--learning-rate",
            "5e-4",
            "--seed",
            "3",
            "--quiet",
            "--run-name",
            name,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push("--exp-dir".into());
        v.push(tmp.path().display().to_string());
        v
    };
    let ok = Command::new(exe).args(args("straight")).output().expect("spawn");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // Kill the second run as soon as it has written a checkpoint, mid-run.
    let mut child = Command::new(exe).args(args("killed")).spawn().expect("spawn");
    let ckpt = tmp.path().join("runs/killed/checkpoint/state.json");
    let t0 = std::time::Instant::now();
    while !ckpt.is_file() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let done = tmp.path().join("runs/killed/done").is_file();
    assert!(!done, "the run finished before the kill; the test needs a longer run");
    let mut resume = args("killed");
    resume.push("--resume".into());
    let out = Command::new(exe).args(&resume).output().expect("spawn");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (x, y) = (tmp.path().join("runs/straight"), tmp.path().join("runs/killed"));
    assert_eq!(read(&x.join("model/model.safetensors")), read(&y.join("model/model.safetensors")));
}

#[test]
fn nan_loss_names_the_step_task_and_tensor_and_stays_resumable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let mut s = spec(tmp.path(), "nan", &["mnli"], 8);
    s.train.save_checkpoint_every_steps = 2;
    let mut run = prepare(s.clone(), &tok, false, &Device::Cpu).expect("prepare").trainer.quiet();
    assert!(run.run("nan", Some(4)).expect("four good steps").is_none());
    let ckpt = tmp.path().join("runs/nan/checkpoint");
    let before = read(&ckpt.join("model.safetensors"));
    // A weight turns into NaN (as a diverging run's would): the next step stops the run.
    let t = run.model.structure().layout.find("encoder.layer.1.output.dense.weight").expect("tensor").clone();
    let mut params = run.model.params().expect("weights").into_owned();
    params[t.range().start + 3] = f32::NAN;
    run.model.set_params(&params).expect("set weights");
    let msg = run.run("nan", None).expect_err("diverges").to_string();
    for needle in
        ["step 4", "task mnli", "feature rows", "weight encoder.layer.1.output.dense.weight[3] = NaN", "--resume"]
    {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }
    // Nothing was written over the last good checkpoint, and the run continues from it.
    assert_eq!(read(&ckpt.join("model.safetensors")), before);
    assert!(!tmp.path().join("runs/nan/done").exists());
    let mut again = prepare(s, &tok, true, &Device::Cpu).expect("resume").trainer.quiet();
    assert_eq!(again.state.step, 4);
    again.run("nan", None).expect("finishes from the checkpoint");
}

#[test]
fn bad_runs_fail_before_the_first_step() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let err = prepare(spec(tmp.path(), "a", &["mnlii"], 4), &tok, false, &Device::Cpu).err().expect("unknown task");
    assert!(err.to_string().contains("mnlii"), "{err}");
    let err = prepare(spec(tmp.path(), "b", &["tatoeba"], 4), &tok, false, &Device::Cpu).err().expect("untrainable");
    assert!(err.to_string().contains("embeddings"), "{err}");
    let mut s = spec(tmp.path(), "c", &["mnli"], 4);
    s.data_dir = tmp.path().join("nowhere");
    let err = prepare(s, &tok, false, &Device::Cpu).err().expect("no data");
    assert!(err.to_string().contains("nowhere"), "{err}");
    // An output folder that cannot be created.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let mut s = spec(&file, "d", &["mnli"], 4);
    s.exp_dir = file.join("sub");
    let err = prepare(s, &tok, false, &Device::Cpu).err().expect("unwritable");
    assert!(err.to_string().contains("a-file"), "{err}");
}

#[test]
fn toml_config_with_flag_overrides() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("run.toml");
    let text = format!(
        "run_name = \"from-toml\"\nexp_dir = {:?}\ndata_dir = {JIANT:?}\ntasks = [\"mnli\"]\nmodel = {MODEL:?}\n\
         max_seq_length = 64\n[train]\nmax_steps = 3\nseed = 9\n",
        tmp.path().display().to_string()
    );
    std::fs::write(&cfg, text).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["train", "--config", &cfg.display().to_string(), "--max-steps", "2", "--quiet"])
        .output()
        .expect("spawn");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back = RunSpec::from_toml_file(&tmp.path().join("runs/from-toml/run_config.toml")).expect("effective");
    assert_eq!(back.train.max_steps, Some(2), "the flag wins");
    assert_eq!(back.train.seed, 9, "the file's value stays");
    std::fs::write(&cfg, "tasks = [\"mnli\"]\nlearning_rat = 1.0\n").expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_xlt")).args(["train", "--config", &cfg.display().to_string()]).output();
    let err = String::from_utf8_lossy(&o.expect("spawn").stderr).to_string();
    assert!(err.contains("learning_rat") && !err.contains("panicked"), "{err}");
}

#[test]
fn resume_after_a_kill_between_checkpoint_and_snapshots_keeps_one_entry_per_step() {
    use xlt::train::average::Manifest;
    use xlt::train::trainer::SnapshotEvery;
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let mut s = spec(tmp.path(), "snaps", &["mnli"], 8);
    s.train.snapshot_every = SnapshotEvery::Steps(2);
    s.train.save_checkpoint_every_steps = 4;
    s.train.eval_every_steps = 0;
    // Stopped at step 6: checkpoint of step 4, snapshots of steps 2, 4 and 6.
    let mut a = prepare(s.clone(), &tok, false, &Device::Cpu).expect("prepare").trainer.quiet();
    assert!(a.run("snaps", Some(6)).expect("run").is_none());
    drop(a);
    let mut b = prepare(s, &tok, true, &Device::Cpu).expect("resume").trainer.quiet();
    assert_eq!(b.state.step, 4);
    b.run("snaps", None).expect("finish");
    let dir = tmp.path().join("runs/snaps/snapshots");
    let m = Manifest::load(&dir.join("manifest.json")).expect("manifest");
    assert_eq!(m.entries.iter().map(|e| e.step).collect::<Vec<_>>(), [2, 4, 6, 8]);
    assert!(m.entries.iter().all(|e| e.dev_score.is_some() && e.run == "snaps"));
    // Every snapshot is a complete model folder: it loads, and `xlt eval` scores it.
    for step in [2, 4, 6, 8] {
        let snap = dir.join(format!("step-{step:08}"));
        for f in ["config.json", "model.safetensors", "xlt_heads.json", "tokenizer.json", "xlt_weights.json"] {
            assert!(snap.join(f).is_file(), "snapshot {step} lacks {f}");
        }
        match xlt::provenance::Weights::of_dir(&snap).expect("record") {
            xlt::provenance::Weights::Snapshot { step: s, .. } => assert_eq!(s, step),
            other => panic!("{other:?}"),
        }
    }
    let snap = dir.join("step-00000004");
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["eval", "--model", &snap.display().to_string(), "--task", "mnli", "--data-dir", JIANT])
        .args(["--max-seq-len", "64", "--device", "cpu"])
        .output()
        .expect("eval");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // So is an average of them.
    let avg = tmp.path().join("avg");
    let selected = m.select(xlt::train::average::Selection::All).expect("select");
    xlt::train::average::average(&avg, &selected).expect("average");
    for f in ["xlt_heads.json", "tokenizer.json", "xlt_weights.json"] {
        assert!(avg.join(f).is_file(), "the average lacks {f}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["eval", "--model", &avg.display().to_string(), "--task", "mnli", "--data-dir", JIANT])
        .args(["--max-seq-len", "64", "--device", "cpu"])
        .output()
        .expect("eval");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii()).expect("json");
    assert_eq!(v["weights"]["kind"], "average");
    assert_eq!(v["weights"]["snapshots"].as_array().map(Vec::len), Some(4));
}

#[test]
fn a_checkpoint_holds_every_file_and_lists_them() {
    use xlt::train::checkpoint::{find, read_state, Found};
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let mut s = spec(tmp.path(), "whole", &["mnli", "hellaswag"], 2);
    s.train.save_checkpoint_every_steps = 1;
    prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer.quiet().run("whole", None).expect("run");
    let ckpt = tmp.path().join("runs/whole/checkpoint");
    let state = read_state(&ckpt).expect("state");
    let files: Vec<&str> = state.files.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(files, ["config.json", "model.safetensors", "optimizer.safetensors", "xlt_heads.json"]);
    assert!(!state.run.is_null(), "the run's identity is recorded");
    // A file missing or cut short makes the folder incomplete, naming it.
    std::fs::write(ckpt.join("xlt_heads.json"), b"[").expect("truncate");
    match find(&ckpt) {
        Found::Incomplete(why) => assert!(why.contains("xlt_heads.json"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_kill_at_any_instant_leaves_a_complete_checkpoint_or_none() {
    use xlt::train::checkpoint::{find, Found};
    let tmp = tempfile::tempdir().expect("tmp");
    let exe = env!("CARGO_BIN_EXE_xlt");
    let exp = tmp.path().display().to_string();
    let args = [
        "train",
        "--tasks",
        "mnli,hellaswag",
        "--data-dir",
        JIANT,
        "--model",
        MODEL,
        "--max-seq-length",
        "48",
        "--train-batch-size",
        "2",
        "--max-steps",
        "400",
        "--save-checkpoint-every-steps",
        "1",
        "--eval-every-steps",
        "0",
        "--quiet",
        "--device",
        "cpu",
        "--run-name",
        "kills",
        "--exp-dir",
        &exp,
    ];
    let ckpt = tmp.path().join("runs/kills/checkpoint");
    // Kill at many instants, resuming each time: every survivor is whole, and each resume works.
    for (i, ms) in [40u64, 75, 130, 9, 210, 55, 17, 300].into_iter().enumerate() {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        if i > 0 {
            cmd.arg("--resume");
        }
        let mut child =
            cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(ms));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        assert!(!matches!(find(&ckpt), Found::Incomplete(_)), "kill {i} after {ms} ms left {:?}", find(&ckpt));
    }
    let o = Command::new(exe).args(args).arg("--resume").output().expect("resume");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(tmp.path().join("runs/kills/done").is_file());
}

#[test]
fn resume_refuses_other_settings_other_models_and_incomplete_checkpoints() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let s = spec(tmp.path(), "r", &["mnli"], 6);
    let mut a = prepare(s.clone(), &tok, false, &Device::Cpu).expect("prepare").trainer.quiet();
    a.save_checkpoint().expect("checkpoint at step 0");
    assert!(a.run("r", Some(2)).expect("run").is_none());
    a.save_checkpoint().expect("checkpoint at step 2");
    drop(a);
    // Other settings.
    let mut other = s.clone();
    other.learning_rate = Some(2e-3);
    let err = prepare(other, &tok, true, &Device::Cpu).err().expect("refused").to_string();
    assert!(err.contains("learning_rate") && err.contains("--run-name"), "{err}");
    // Another starting model (one weight changed).
    let model = tmp.path().join("model");
    copy_dir(Path::new(MODEL), &model);
    let mut m = xlt::model::HostModel::from_dir_with_heads(
        &model,
        vec![xlt::train::setup::head_spec(xlt::tasks::lookup("xnli").expect("xnli"))],
    )
    .expect("load");
    m.params[7] += 0.5;
    let st = &m.structure;
    xlt::model::weights::save_dir(&model, &st.cfg, &st.layout, &m.params, &|_| true).expect("save");
    let mut other = s.clone();
    other.model = model;
    let err = prepare(other, &tok, true, &Device::Cpu).err().expect("refused").to_string();
    assert!(err.contains("starting model"), "{err}");
    // The same settings resume.
    prepare(s.clone(), &tok, true, &Device::Cpu).expect("same settings resume");
    // An incomplete checkpoint is an error with or without --resume, naming the missing file,
    // and it is left as it is.
    let ckpt = tmp.path().join("runs/r/checkpoint");
    std::fs::remove_file(ckpt.join("optimizer.safetensors")).expect("rm");
    for resume in [true, false] {
        let err = prepare(s.clone(), &tok, resume, &Device::Cpu).err().expect("refused").to_string();
        assert!(err.contains("optimizer.safetensors") && err.contains("incomplete"), "{err}");
    }
    assert!(ckpt.join("model.safetensors").is_file());
}

#[test]
fn resuming_a_finished_run_with_other_settings_says_so() {
    let tmp = tempfile::tempdir().expect("tmp");
    let exe = env!("CARGO_BIN_EXE_xlt");
    let exp = tmp.path().display().to_string();
    let run = |extra: &[&str]| {
        Command::new(exe)
            .args(["train", "--tasks", "mnli", "--data-dir", JIANT, "--model", MODEL, "--max-seq-length", "32"])
            .args(["--max-steps", "2", "--quiet", "--device", "cpu", "--run-name", "f", "--exp-dir", &exp])
            .args(extra)
            .output()
            .expect("spawn")
    };
    assert!(run(&[]).status.success());
    let o = run(&["--resume"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stderr).contains("already complete"));
    let o = run(&["--resume", "--learning-rate", "2e-5"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("finished run") && err.contains("learning_rate"), "{err}");
}

/// `--head-from RUN/model --freeze-head`: the heads of a head run replace the fresh ones and
/// stay bit for bit as they are while the encoder trains (no gradient, no moment, no decay);
/// without `--freeze-head` they start from the head run's and train on. A head missing from the
/// source, or freezing without a source, is an error.
#[test]
fn a_frozen_head_from_a_head_run_stays_byte_identical() {
    use xlt::model::HostModel;
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let run = |s: RunSpec| {
        let name = s.run_name.clone();
        prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer.quiet().run(&name, None).expect("run");
        HostModel::from_dir(&tmp.path().join("runs").join(name).join("model")).expect("model")
    };
    let head_run = run(spec(tmp.path(), "head", &["mnli"], 4));
    let source = tmp.path().join("runs/head/model");
    let head_bits = |m: &HostModel, encoder: bool| -> Vec<u32> {
        m.structure
            .layout
            .tensors
            .iter()
            .filter(|t| t.encoder == encoder)
            .flat_map(|t| m.params[t.range()].iter().map(|v| v.to_bits()))
            .collect()
    };
    let mut s = spec(tmp.path(), "frozen", &["mnli"], 4);
    s.head_from = Some(source.clone());
    s.freeze_head = true;
    let frozen = run(s);
    assert_eq!(
        head_bits(&frozen, false),
        head_bits(&head_run, false),
        "the frozen head is the head run's, bit for bit"
    );
    assert_ne!(head_bits(&frozen, true), head_bits(&head_run, true), "the encoder trained");
    // The checkpoint's moments of the frozen tensors are zero.
    let opt = safetensors_f32(&tmp.path().join("runs/frozen/checkpoint/optimizer.safetensors"));
    let heads: Vec<&str> =
        frozen.structure.layout.tensors.iter().filter(|t| !t.encoder).map(|t| t.name.as_str()).collect();
    let frozen_moments: Vec<&(String, Vec<f32>)> = opt
        .iter()
        .filter(|(name, _)| heads.iter().any(|h| name == &format!("m.{h}") || name == &format!("v.{h}")))
        .collect();
    assert_eq!(frozen_moments.len(), 2 * heads.len(), "{heads:?}");
    for (name, values) in frozen_moments {
        assert!(values.iter().all(|v| *v == 0.0), "moment {name} of a frozen tensor");
    }
    let mut s = spec(tmp.path(), "warm", &["mnli"], 4);
    s.head_from = Some(source.clone());
    let warm = run(s);
    assert_ne!(head_bits(&warm, false), head_bits(&head_run, false), "an unfrozen head trains on");

    let mut s = spec(tmp.path(), "bad", &["mnli"], 4);
    s.freeze_head = true;
    let err = prepare(s, &tok, false, &Device::Cpu).err().expect("freeze without a source").to_string();
    assert!(err.contains("--freeze-head needs --head-from"), "{err}");
    let mut s = spec(tmp.path(), "other", &["squad_v1"], 4);
    s.head_from = Some(source);
    let err = prepare(s, &tok, false, &Device::Cpu).err().expect("no such head").to_string();
    assert!(err.contains("--head-from") && err.contains("no head tensor qa_outputs"), "{err}");
}

/// Every tensor of a safetensors file as f32 (the optimizer state is saved in f32).
fn safetensors_f32(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = read(path);
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("header size")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header");
    let data = &bytes[8 + n..];
    let mut out = Vec::new();
    for (name, v) in header.as_object().expect("object") {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(v["dtype"], "F32", "{name}");
        let off = v["data_offsets"].as_array().expect("offsets");
        let (a, b) = (off[0].as_u64().expect("a") as usize, off[1].as_u64().expect("b") as usize);
        out.push((
            name.clone(),
            data[a..b].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect(),
        ));
    }
    out
}

/// Runs as a set: `xlt average --runs EXP` reads every run's manifest at once; every snapshot
/// records its run's hyper-parameters; the average of identical runs is the run, bit for bit;
/// two manifests naming the same run are refused.
#[test]
fn averaging_reads_the_runs_of_an_experiment_as_one_set() {
    use xlt::train::average::Manifest;
    use xlt::train::trainer::SnapshotEvery;
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    for name in ["lr1", "lr2"] {
        // Same settings and seed: identical runs under two names.
        let mut s = spec(tmp.path(), name, &["mnli"], 4);
        s.train.snapshot_every = SnapshotEvery::Steps(2);
        prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer.quiet().run(name, None).expect("run");
    }
    let manifests = Manifest::run_manifests(tmp.path()).expect("manifests");
    assert_eq!(manifests.len(), 2);
    let all = Manifest::merge(&manifests).expect("merge");
    assert_eq!(all.entries.len(), 4);
    let h = all.entries[0].hparams.as_ref().expect("hyper-parameters recorded");
    assert_eq!((h["learning_rate"], h["batch_size"], h["seed"]), (1e-3, 2.0, 5.0));

    let out = tmp.path().join("avg");
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["average", "--out", &out.display().to_string(), "--runs", &tmp.path().display().to_string()])
        .args(["--select", "last-per-run"])
        .output()
        .expect("average");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let last = tmp.path().join("runs/lr1/snapshots/step-00000004/model.safetensors");
    let (a, b) = (
        xlt::model::HostModel::from_dir(&out).expect("avg"),
        xlt::model::HostModel::from_dir(last.parent().expect("dir")).expect("run"),
    );
    let bits = |m: &xlt::model::HostModel| m.params.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b), "the average of identical runs is the run");

    // The same run in two manifests: refused, naming both.
    let copy = tmp.path().join("copy/snapshots");
    std::fs::create_dir_all(&copy).expect("mkdir");
    std::fs::copy(&manifests[0], copy.join("manifest.json")).expect("copy");
    let err = Manifest::merge(&[manifests[0].clone(), copy.join("manifest.json")]).expect_err("collision").to_string();
    assert!(err.contains("\"lr1\"") && err.contains("distinct names"), "{err}");
    let empty = tempfile::tempdir().expect("tmp");
    assert!(Manifest::run_manifests(empty.path()).expect_err("none").to_string().contains("--snapshot-every"));
}

/// `xlt score-snapshots`: every snapshot of every run of an experiment scored per language and
/// split, the scores kept in the manifests (a second call scores nothing), equal to `xlt eval`'s
/// on the same snapshot, and the single-run baselines (S-L, S-DEV, S-TDEV as an oracle) printed.
#[test]
fn every_snapshot_is_scored_once_per_language_and_the_baselines_are_queries() {
    use xlt::train::average::Manifest;
    use xlt::train::trainer::SnapshotEvery;
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let data = xnli_data(tmp.path());
    let fx = Path::new(XTREME).join("xnli");
    let data_s = data.display().to_string();
    let exp = tmp.path().join("exp");
    for (name, seed) in [("a", 1), ("b", 2)] {
        let mut s = spec(&exp, name, &["xnli"], 4);
        s.data_dir = data.clone();
        s.train.seed = seed;
        s.train.snapshot_every = SnapshotEvery::Steps(2);
        prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer.quiet().run(name, None).expect("run");
    }
    let score = || {
        Command::new(env!("CARGO_BIN_EXE_xlt"))
            .args(["score-snapshots", "--runs", &exp.display().to_string(), "--task", "xnli"])
            .args(["--data-dir", &data_s, "--splits", "val,test", "--max-seq-len", "64"])
            .output()
            .expect("score-snapshots")
    };
    let o = score();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    assert!(err.contains("scored 4 of 4"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    for run in ["a", "b"] {
        assert_eq!(v[run]["S-L"]["step"], 4, "{v}");
        assert!(v[run]["S-DEV"]["scores"]["dev.de"].is_f64(), "{v}");
        assert!(v[run]["S-TDEV (oracle)"]["de"]["test"].is_f64(), "{v}");
    }
    let m = Manifest::merge(&Manifest::run_manifests(&exp).expect("manifests")).expect("merge");
    let e = &m.entries[0];
    let scores = e.scores.as_ref().expect("scores kept in the manifest");
    assert!(scores.contains_key("dev.de") && scores.contains_key("test.de"), "{scores:?}");
    // The same number as xlt eval on that snapshot.
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["eval", "--model", &e.path.display().to_string(), "--task", "xnli", "--data-dir", &data_s])
        .args(["--langs", "de", "--split", "test", "--max-seq-len", "64"])
        .output()
        .expect("eval");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ev: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii()).expect("json");
    assert_eq!(ev["scores"]["de"].as_f64(), Some(scores["test.de"]));
    // Scored once: a second call evaluates nothing.
    let o = score();
    assert!(String::from_utf8_lossy(&o.stderr).contains("scored 0 of 4"));
    // Unlabelled test files (XTREME's) are an error, not an empty score.
    std::fs::copy(fx.join("test-de.tsv"), data.join("xnli/test-de.tsv")).expect("copy");
    let fresh = tmp.path().join("exp2");
    let mut s = spec(&fresh, "c", &["xnli"], 2);
    s.data_dir = data.clone();
    s.train.snapshot_every = SnapshotEvery::Steps(2);
    prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer.quiet().run("c", None).expect("run");
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["score-snapshots", "--runs", &fresh.display().to_string(), "--task", "xnli"])
        .args(["--data-dir", &data_s, "--splits", "test", "--max-seq-len", "64"])
        .output()
        .expect("score-snapshots");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no language of xnli has labels"), "{err}");
}

/// `xlt average-protocol`: runs of two hyper-parameter configurations × two seeds, seeded
/// orderings of one run per configuration, every mode's average for i = 1, 2 scored per
/// language; with one run, R-L is that run's last snapshot (its score as `xlt score-snapshots`
/// records it); each distinct average is made once.
#[test]
fn accumulative_averaging_reports_every_mode_over_orderings() {
    use xlt::eval::protocol::Report;
    use xlt::train::average::Manifest;
    use xlt::train::trainer::SnapshotEvery;
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let data = xnli_data(tmp.path());
    let exp = tmp.path().join("exp");
    for (name, lr, seed) in [("lr1-s1", 1e-3, 1), ("lr1-s2", 1e-3, 2), ("lr2-s1", 3e-4, 1), ("lr2-s2", 3e-4, 2)] {
        let mut s = spec(&exp, name, &["xnli"], 4);
        s.data_dir = data.clone();
        s.learning_rate = Some(lr);
        s.train.seed = seed;
        s.train.snapshot_every = SnapshotEvery::Steps(2);
        prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer.quiet().run(name, None).expect("run");
    }
    let (exp_s, data_s) = (exp.display().to_string(), data.display().to_string());
    let out = tmp.path().join("protocol");
    let protocol = || {
        Command::new(env!("CARGO_BIN_EXE_xlt"))
            .args(["average-protocol", "--runs", &exp_s, "--task", "xnli", "--data-dir", &data_s])
            .args([
                "--out",
                &out.display().to_string(),
                "--k",
                "2",
                "--orderings",
                "3",
                "--modes",
                "last,best,all,top2",
            ])
            .args(["--max-seq-len", "64"])
            .output()
            .expect("protocol")
    };
    let o = protocol();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Report =
        serde_json::from_str(&std::fs::read_to_string(out.join("protocol.json")).expect("json")).expect("report");
    assert_eq!(r.orderings.len(), 3);
    for order in &r.orderings {
        assert_eq!(order.len(), 2);
        assert_ne!(&order[0][..3], &order[1][..3], "one run per configuration: {order:?}");
    }
    let names: Vec<(&str, usize)> = r.rows.iter().map(|row| (row.protocol.as_str(), row.runs)).collect();
    assert_eq!(
        names,
        [
            ("R-L", 1),
            ("R-L", 2),
            ("R-DEV", 1),
            ("R-DEV", 2),
            ("R-CA", 1),
            ("R-CA", 2),
            ("Soup-2", 1),
            ("Soup-2", 2),
            ("S-TDEV (oracle)", 1)
        ]
    );
    // The oracle picks, per language, a snapshot of the first run on that language's dev set:
    // at least as good, ordering by ordering, as its last snapshot (R-L with one run).
    let (oracle, rl) = (&r.rows[8].languages["de"], &r.rows[0].languages["de"]);
    assert!(oracle.mean >= rl.mean - 1e-9, "oracle {oracle:?} vs R-L {rl:?}");
    for f in ["protocol.md", "protocol.svg"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // R-L with one run: the mean over the orderings of each first run's last snapshot.
    let o = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["score-snapshots", "--runs", &exp_s, "--task", "xnli", "--data-dir", &data_s, "--max-seq-len", "64"])
        .output()
        .expect("score");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = Manifest::merge(&Manifest::run_manifests(&exp).expect("manifests")).expect("merge");
    let last = |run: &str| {
        let e = m.entries.iter().filter(|e| e.run == run).max_by_key(|e| e.step).expect("entry");
        e.scores.as_ref().expect("scores")["dev.de"]
    };
    let want = r.orderings.iter().map(|o| last(&o[0])).sum::<f64>() / 3.0;
    let got = r.rows[0].languages["de"].mean;
    assert!((got - want).abs() < 1e-9, "R-L with one run {got} vs the last snapshots' {want}");
    // Made once: a second call makes no new average.
    let count = || std::fs::read_dir(out.join("averages")).expect("ls").count();
    let before = count();
    assert!(protocol().status.success());
    assert_eq!(count(), before);
}

/// XTREME's XNLI under `dir/download`: the fixture's English training set, also as English dev
/// (to select on), and its German dev set, also as a labelled German test set (the fixture's
/// test file, like XTREME's, has no labels).
fn xnli_data(dir: &Path) -> PathBuf {
    let data = dir.join("download");
    std::fs::create_dir_all(data.join("xnli")).expect("mkdir");
    let fx = Path::new(XTREME).join("xnli");
    for (from, to) in [("train-en", "train-en"), ("train-en", "dev-en"), ("dev-de", "dev-de"), ("dev-de", "test-de")] {
        std::fs::copy(fx.join(format!("{from}.tsv")), data.join(format!("xnli/{to}.tsv"))).expect("copy");
    }
    data
}

/// tools/ofa_tiny.sh, the documented miniature of the averaging protocol, runs end to end.
#[test]
fn the_tiny_averaging_protocol_script_runs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("ofa");
    let o = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/ofa_tiny.sh"))
        .arg(&out)
        .env("XLT", env!("CARGO_BIN_EXE_xlt"))
        .output()
        .expect("bash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("protocol/protocol.md")).expect("protocol.md");
    assert!(
        md.contains("## dev, 3 runs") && md.contains("## test, 3 runs") && md.contains("| S-TDEV (oracle) |"),
        "{md}"
    );
    assert!(md.contains("| Soup-3 |"), "{md}");
    let baselines: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("baselines.json")).expect("baselines")).expect("json");
    assert_eq!(baselines.as_object().map(|o| o.len()), Some(6), "six grid runs: {baselines}");
}
