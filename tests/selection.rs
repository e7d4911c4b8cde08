//! Numbers a researcher can publish: no task is selected on data it is scored on (XQuAD and
//! MLQA on SQuAD v1.1 dev, TyDiQA-GoldP on nothing unless asked, in both layouts and in
//! `xlt train`), SQuAD-family selection on (F1 + EM) / 2, MLM validation per corpus, every
//! number saying which weights and which split produced it (`results.json`, `results.md`,
//! `xlt eval`), the submission folder complete in jiant's layout, and `xlt eval` defaults on a
//! partial download.

mod common;
use common::copy_dir;
use std::path::{Path, PathBuf};
use std::process::Command;
use xlt::device::Device;
use xlt::provenance::Weights;
use xlt::report::read_json;
use xlt::tokenize::Tokenizer;
use xlt::train::setup::{load_tokenizer, prepare, RunSpec};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-xlmr");
const JIANT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tasks/jiant");
const XTREME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tasks/xtreme");

fn spec(exp: &Path, data: &str, name: &str, tasks: &[&str], steps: u64) -> RunSpec {
    let mut s = RunSpec {
        run_name: name.into(),
        exp_dir: exp.to_path_buf(),
        data_dir: PathBuf::from(data),
        tasks: tasks.iter().map(|t| t.to_string()).collect(),
        model: PathBuf::from(MODEL),
        max_seq_length: 64,
        train_batch_size: Some(2),
        learning_rate: Some(1e-3),
        ..RunSpec::default()
    };
    s.train.max_steps = Some(steps);
    s.train.eval_every_steps = 2;
    s.train.eval_batch_size = 4;
    s.train.seed = 3;
    s
}

fn tok() -> Tokenizer {
    load_tokenizer(&spec(Path::new("/nonexistent"), JIANT, "x", &["mnli"], 1)).expect("tokenizer")
}

fn xlt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xlt")).args(args).output().expect("spawn xlt")
}

fn json_out(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(o.stdout.trim_ascii()).expect("one JSON object")
}

/// The selection data of the only task of a prepared run, or its reason for having none.
fn selection_of(s: RunSpec) -> Result<String, String> {
    let tok = tok();
    let run = prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer;
    let sel = run.selection();
    match sel.sources.as_slice() {
        [one] => Ok(one.data.clone()),
        [] => Err("none".into()),
        many => panic!("one task, {} selection sources", many.len()),
    }
}

#[test]
fn xquad_and_mlqa_select_on_squad_dev_in_both_layouts() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (i, data) in [JIANT, XTREME].iter().enumerate() {
        for task in ["xquad", "mlqa"] {
            let got = selection_of(spec(tmp.path(), data, &format!("{task}{i}"), &[task], 2));
            let data_name = got.unwrap_or_else(|e| panic!("{task} in {data}: {e}"));
            assert!(data_name.starts_with("squad_v1 val"), "{task} in {data} selects on {data_name}");
        }
    }
}

#[test]
fn tydiqa_keeps_its_last_weights_unless_asked_and_then_says_so() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    // Default: no selection, the last weights, and the record says why.
    let s = spec(tmp.path(), JIANT, "tydiqa", &["tydiqa"], 4);
    let mut run = prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer.quiet();
    assert!(run.selection().sources.is_empty());
    let summary = run.run("tydiqa", None).expect("run").expect("finished");
    assert_eq!(summary.best_step, None);
    match Weights::of_dir(&tmp.path().join("runs/tydiqa/model")).expect("record") {
        Weights::Last { steps, reason, .. } => {
            assert_eq!(steps, 4);
            assert!(reason.contains("XTREME's English test set"), "{reason}");
        }
        other => panic!("expected the last weights, found {other:?}"),
    }
    // Asked for: selected on the English dev set, labelled optimistic.
    let mut s = spec(tmp.path(), JIANT, "tydiqa-sel", &["tydiqa"], 4);
    s.select_on_english_dev = true;
    let mut run = prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer.quiet();
    let sel = run.selection();
    assert_eq!(sel.sources.len(), 1);
    assert!(sel.caveat.as_deref().is_some_and(|c| c.contains("optimistic")), "{sel:?}");
    run.run("tydiqa-sel", None).expect("run");
    let w = Weights::of_dir(&tmp.path().join("runs/tydiqa-sel/model")).expect("record");
    assert!(matches!(w, Weights::Best { .. }) && w.optimistic(), "{w:?}");
    // XTREME's layout: same rule (its English GoldP dev set is filed as test).
    let s = spec(tmp.path(), XTREME, "tydiqa-x", &["tydiqa"], 2);
    assert!(selection_of(s).is_err());
}

#[test]
fn other_targets_select_on_their_english_dev() {
    let tmp = tempfile::tempdir().expect("tmp");
    assert_eq!(selection_of(spec(tmp.path(), XTREME, "udpos", &["udpos"], 2)).as_deref(), Ok("udpos en dev"));
    assert_eq!(selection_of(spec(tmp.path(), JIANT, "mnli", &["mnli"], 2)).as_deref(), Ok("mnli val"));
}

#[test]
fn squad_selection_uses_the_mean_of_f1_and_em() {
    use xlt::eval::{EvalResult, Predictions};
    use xlt::train::trainer::selection_score;
    // jiant's major metric for the SQuAD family; other tasks compare their primary score.
    let r = EvalResult {
        metrics: [("f1".to_string(), 80.0), ("em".to_string(), 60.0)].into(),
        primary: Some(80.0),
        predictions: Predictions::None,
        examples: 10,
    };
    for task in ["squad_v1", "xquad", "mlqa", "tydiqa"] {
        assert_eq!(selection_score(xlt::tasks::lookup(task).expect("task"), &r), Some(70.0), "{task}");
    }
    assert_eq!(selection_score(xlt::tasks::lookup("mnli").expect("mnli"), &r), Some(80.0));
    let tmp = tempfile::tempdir().expect("tmp");
    let tok = tok();
    let mut run = prepare(spec(tmp.path(), JIANT, "squad", &["squad_v1"], 4), &tok, false, &Device::Cpu)
        .expect("prepare")
        .trainer;
    run = run.quiet();
    assert_eq!(run.selection().sources[0].metric, "(f1 + em) / 2");
    run.run("squad", None).expect("run");
    let log = std::fs::read_to_string(tmp.path().join("runs/squad/log.jsonl")).expect("log");
    let evals: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|v| v["event"] == "eval")
        .collect();
    assert!(!evals.is_empty());
    for e in evals {
        let m = &e["metrics"]["squad_v1"];
        let (f1, em) = (m["f1"].as_f64().expect("f1"), m["em"].as_f64().expect("em"));
        let score = e["tasks"]["squad_v1"].as_f64().expect("score");
        assert!((score - (f1 + em) / 2.0).abs() < 1e-9, "{e}");
    }
}

/// A copy of the jiant fixture with one MLM corpus per language (`mlm_<lang>` configs).
fn jiant_with_mlm_corpora(root: &Path) -> PathBuf {
    let data = root.join("jiant");
    copy_dir(Path::new(JIANT), &data);
    let (de, fr) = (
        "Der Bodensee liegt in Europa zwischen Deutschland, Österreich und der Schweiz.\nDie Stadt ist alt und liegt am See.\n",
        "La ville est belle et ancienne, au bord du lac entre les montagnes.\nLe lac est grand et profond.\n",
    );
    for (lang, text) in [("de", de), ("fr", fr)] {
        let d = data.join(format!("data/mlm_{lang}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("train.txt"), text.repeat(3)).expect("train");
        std::fs::write(d.join("val.txt"), text).expect("val");
        let config = serde_json::json!({
            "task": "mlm_simple",
            "paths": {"train": format!("../data/mlm_{lang}/train.txt"), "val": format!("../data/mlm_{lang}/val.txt")},
            "name": format!("mlm_{lang}"),
        });
        std::fs::write(data.join(format!("configs/mlm_{lang}_config.json")), config.to_string()).expect("config");
    }
    data
}

#[test]
fn mlm_validation_is_read_per_corpus_and_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = jiant_with_mlm_corpora(tmp.path());
    let tok = tok();
    let mut s = spec(tmp.path(), data.to_str().expect("utf8"), "mlm", &["mlm"], 4);
    s.mlm_languages = vec!["de".into(), "fr".into()];
    let prepared = prepare(s, &tok, false, &Device::Cpu).expect("prepare");
    assert_eq!(prepared.trainer.selection().sources[0].data, "mlm val (de, fr)");
    let summary = prepared.trainer.quiet().run("mlm", None).expect("run").expect("finished");
    let m = &summary.val_metrics["mlm"];
    assert!(m["perplexity"] > 1.0 && m["loss"] > 0.0, "{m:?}");
    // xlt eval --task mlm reads the same corpora: all of them by default, one on request.
    let model = tmp.path().join("runs/mlm/model");
    let (model_s, data_s) = (model.to_str().expect("utf8"), data.to_str().expect("utf8"));
    let v = json_out(&xlt(&["eval", "--model", model_s, "--task", "mlm", "--data-dir", data_s]));
    for corpus in ["de", "fr", "mlm"] {
        let p = v["metrics"][corpus]["perplexity"].as_f64().unwrap_or_else(|| panic!("{corpus}: {v}"));
        assert!(p > 1.0, "{v}");
    }
    assert_eq!(v["split"], "val");
    let v = json_out(&xlt(&["eval", "--model", model_s, "--task", "mlm", "--data-dir", data_s, "--langs", "de"]));
    assert_eq!(v["scores"].as_object().expect("scores").len(), 1, "{v}");
}

#[test]
fn a_broken_validation_file_is_an_error_not_a_missing_split() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("jiant");
    copy_dir(Path::new(JIANT), &data);
    std::fs::write(data.join("data/mnli/val.jsonl"), "{\"premise\": \"a\", \n").expect("corrupt");
    let tok = tok();
    let err = prepare(spec(tmp.path(), data.to_str().expect("utf8"), "m", &["mnli"], 2), &tok, false, &Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("val.jsonl") && err.contains("line 1"), "{err}");
    // A task without any validation data in the folder is fine, and says so.
    let s = spec(tmp.path(), XTREME, "mnli-x", &["mnli"], 2);
    let run = prepare(s, &tok, false, &Device::Cpu).expect("prepare").trainer;
    assert!(run.selection().sources.is_empty());
}

#[test]
fn xtreme_results_say_which_weights_and_split_made_every_number() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let o = xlt(&[
        "xtreme",
        "--encoder",
        MODEL,
        "--data-dir",
        JIANT,
        "--out",
        out.to_str().expect("utf8"),
        "--tasks",
        "xquad,tydiqa,pawsx,bucc2018,tatoeba",
        "--max-steps",
        "4",
        "--eval-every-steps",
        "2",
        "--quiet",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = &read_json(&out.join("results.json")).expect("results")[0];
    // XQuAD: selected on SQuAD dev; scored on jiant's val split, which is XQuAD's test set.
    let xquad = r.task("xquad").expect("xquad");
    match xquad.weights.as_ref().expect("weights") {
        Weights::Best { selection, .. } => assert!(selection.sources[0].data.starts_with("squad_v1 val")),
        other => panic!("{other:?}"),
    }
    assert_eq!(xquad.languages["de"].split.as_deref(), Some("val"));
    assert!(xquad.notes.iter().any(|n| n.contains("XTREME's test set")), "{:?}", xquad.notes);
    // TyDiQA: the last weights.
    let tydiqa = r.task("tydiqa").expect("tydiqa");
    assert!(matches!(tydiqa.weights, Some(Weights::Last { .. })), "{:?}", tydiqa.weights);
    // PAWS-X: best on English dev; German scored on test.
    let pawsx = r.task("pawsx").expect("pawsx");
    assert!(matches!(pawsx.weights, Some(Weights::Best { .. })), "{:?}", pawsx.weights);
    assert_eq!(pawsx.languages["de"].split.as_deref(), Some("test"));
    // BUCC: the threshold was tuned on the gold it is scored on: optimistic, and said so.
    let bucc = r.task("bucc2018").expect("bucc");
    assert!(bucc.languages["de"].optimistic && bucc.optimistic());
    assert!(bucc.notes.iter().any(|n| n.contains("optimistic")));
    assert!(matches!(bucc.weights, Some(Weights::AsLoaded { .. })));
    // Tatoeba in jiant's layout is a val split.
    assert_eq!(r.task("tatoeba").expect("tatoeba").languages["de"].split.as_deref(), Some("val"));
    // Every task names its encoder.
    assert!(r.tasks.iter().all(|t| t.encoder.as_deref().is_some_and(|e| e.contains("tiny-xlmr"))));
    let md = std::fs::read_to_string(out.join("results.md")).expect("md");
    for needle in ["weights: best of run xquad", "weights: last step", "40.0 †", "† optimistic", "scored on val (de)"]
    {
        assert!(md.contains(needle), "results.md lacks {needle:?}:\n{md}");
    }
    // The submission folder is complete in jiant's layout too.
    for f in ["xquad/test-de.json", "tydiqa/test-en.json", "pawsx/test-de.tsv", "bucc2018/test-de.tsv"] {
        assert!(out.join("predictions").join(f).is_file(), "missing predictions/{f}");
    }
    // xlt eval says which weights it scored.
    let v = json_out(&xlt(&[
        "eval",
        "--model",
        out.join("runs/pawsx/model").to_str().expect("utf8"),
        "--task",
        "pawsx",
        "--data-dir",
        JIANT,
        "--langs",
        "en",
        "--max-seq-len",
        "128",
    ]));
    assert_eq!(v["weights"]["kind"], "best", "{v}");
    assert_eq!(v["split"], "val");
}

#[test]
fn eval_without_langs_takes_every_language_that_has_the_split() {
    let tmp = tempfile::tempdir().expect("tmp");
    // A model with a tagging and a span head, trained two steps.
    let exp = tmp.path().join("exp");
    let o = xlt(&[
        "train",
        "--tasks",
        "udpos,squad_v1",
        "--data-dir",
        XTREME,
        "--model",
        MODEL,
        "--max-seq-length",
        "64",
        "--train-batch-size",
        "2",
        "--max-steps",
        "2",
        "--quiet",
        "--device",
        "cpu",
        "--run-name",
        "heads",
        "--exp-dir",
        exp.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = exp.join("runs/heads/model");
    let model = model.to_str().expect("utf8");
    // UDPOS: dev for en only in the fixture (kk has only a test split): the others are named.
    let v = json_out(&xlt(&["eval", "--model", model, "--task", "udpos", "--data-dir", XTREME, "--max-seq-len", "64"]));
    assert_eq!(v["split"], "dev");
    assert_eq!(v["scores"].as_object().expect("scores").keys().collect::<Vec<_>>(), ["en"]);
    let skipped: Vec<&str> = v["skipped"].as_array().expect("skipped").iter().filter_map(|x| x.as_str()).collect();
    assert!(skipped.contains(&"kk") && skipped.contains(&"th") && !skipped.contains(&"en"), "{v}");
    // XQuAD and TyDiQA-GoldP have only a test split in XTREME's layout: it is the default.
    for task in ["xquad", "tydiqa"] {
        let out = tmp.path().join(task);
        let v = json_out(&xlt(&[
            "eval",
            "--model",
            model,
            "--task",
            task,
            "--data-dir",
            XTREME,
            "--out",
            out.to_str().expect("utf8"),
        ]));
        assert_eq!(v["split"], "test", "{v}");
        assert!(std::fs::read_dir(out.join(task)).expect("predictions").count() > 0);
    }
    // A language asked for by name must be there.
    let o = xlt(&["eval", "--model", model, "--task", "udpos", "--data-dir", XTREME, "--langs", "kk"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("dev-kk.tsv"), "{err}");
}
