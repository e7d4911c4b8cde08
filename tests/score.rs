//! `xlt score` (library side): every task family scored from small synthetic files under
//! tests/fixtures/score/ with hand-worked expected values, the XTREME folder aggregation, and
//! bad input that must be an error naming the file and the line or question id.

use serde_json::Value;
use std::path::{Path, PathBuf};
use xlt::score::{run, ScoreArgs};

/// Scores are printed on the 0–100 scale; arithmetic in f64.
const EPS: f64 = 1e-9;

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/score").join(name)
}

fn args(task: &str, gold: &str, pred: &str, lang: Option<&str>) -> ScoreArgs {
    ScoreArgs {
        task: Some(task.into()),
        gold: Some(fx(gold)),
        pred: Some(fx(pred)),
        lang: lang.map(Into::into),
        ..ScoreArgs::default()
    }
}

fn score(task: &str, gold: &str, pred: &str, lang: Option<&str>) -> Value {
    match run(&args(task, gold, pred, lang)) {
        Ok(v) => v,
        Err(e) => panic!("{task} {gold} {pred}: {e}"),
    }
}

/// The error message of a run that must fail; checks it names every `needle`.
fn fails(a: &ScoreArgs, needles: &[&str]) -> String {
    let msg = match run(a) {
        Ok(v) => panic!("{a:?} should fail, got {v}"),
        Err(e) => e.to_string(),
    };
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} should mention {n:?}");
    }
    msg
}

fn num(v: &Value, key: &str) -> f64 {
    match v.get(key).and_then(Value::as_f64) {
        Some(x) => x,
        None => panic!("no number {key:?} in {v}"),
    }
}

fn assert_close(v: &Value, key: &str, want: f64) {
    let got = num(v, key);
    assert!((got - want).abs() < EPS, "{key}: got {got}, want {want} in {v}");
}

// ---------------------------------------------------------------------------------------------
// Question answering

#[test]
fn squad_scores_missing_and_extra() {
    // q1 "paris." vs "Paris" → EM 1, F1 1. q2 missing → 0. q3 "Eiffel Tower" vs "The Eiffel
    // Tower" → EM 1, F1 1. q4 "Le Monde" vs "«Le Monde»": SQuAD keeps « and » (not ASCII), so
    // ["le", "monde"] vs ["«le", "monde»"] → 0, 0. EM = F1 = 2/4 = 50; q9 is extra.
    for task in ["squad", "xquad", "tydiqa"] {
        let v = score(task, "squad_gold.json", "squad_pred.json", Some("de"));
        assert_close(&v, "exact_match", 50.0);
        assert_close(&v, "f1", 50.0);
        assert_eq!((num(&v, "total"), num(&v, "missing"), num(&v, "extra")), (4.0, 1.0, 1.0));
    }
    // Under MLQA English rules « and » are punctuation: q4 now matches → 3/4 = 75.
    let v = score("mlqa", "squad_gold.json", "squad_pred.json", Some("en"));
    assert_close(&v, "exact_match", 75.0);
    assert_close(&v, "f1", 75.0);
}

#[test]
fn mlqa_chinese_scores() {
    // z1 "东京。" → "东 京" = gold "东 京": EM 1, F1 1.
    // z2 "首都" → [首, 都] vs "日本的首都" → [日, 本, 的, 首, 都]: P 1, R 2/5, F1 4/7; EM 0.
    // EM = 1/2 = 50; F1 = (1 + 4/7) / 2 = 11/14.
    let v = score("mlqa", "mlqa_gold_zh.json", "mlqa_pred_zh.json", Some("zh"));
    assert_close(&v, "exact_match", 50.0);
    assert_close(&v, "f1", 100.0 * 11.0 / 14.0);
    // SQuAD rules on the same files: 。 stays and nothing is segmented → 0 and 0.
    let v = score("xquad", "mlqa_gold_zh.json", "mlqa_pred_zh.json", None);
    assert_close(&v, "exact_match", 0.0);
    assert_close(&v, "f1", 0.0);
}

#[test]
fn qa_bad_input() {
    fails(&args("mlqa", "squad_gold.json", "squad_pred.json", None), &["mlqa needs --lang"]);
    fails(&args("mlqa", "squad_gold.json", "squad_pred.json", Some("fr")), &["unknown MLQA language \"fr\""]);
    // serde_json reports the position: the missing comma after line 2.
    fails(
        &args("squad", "squad_gold.json", "squad_pred_malformed.json", None),
        &["squad_pred_malformed.json", "invalid JSON", "line 3"],
    );
    fails(
        &args("squad", "squad_gold.json", "squad_pred_not_string.json", None),
        &["squad_pred_not_string.json", "\"q2\"", "should be a string"],
    );
    // "context." at 10 in "Short context." (14 characters) would end at 18.
    fails(
        &args("squad", "squad_gold_bad_span.json", "squad_pred.json", None),
        &["squad_gold_bad_span.json", "question \"q1\"", "[10, 18)", "outside its context of 14 characters"],
    );
    fails(&args("squad", "squad_gold.json", "no_such_file.json", None), &["no_such_file.json"]);
}

// ---------------------------------------------------------------------------------------------
// Tagging

#[test]
fn panx_scores() {
    // gold B-PER I-PER O O B-LOC | I-LOC O O → (PER,0,1) (LOC,4,4) (LOC,6,6): the second
    // sentence starts with I-LOC, which opens a chunk.
    // pred B-PER I-PER O O B-ORG | B-LOC O O → (PER,0,1) (ORG,4,4) (LOC,6,6).
    // 2 of 3 shared: P = R = F1 = 2/3.
    let v = score("panx", "panx_gold.tsv", "panx_pred.txt", None);
    for k in ["f1", "precision", "recall"] {
        assert_close(&v, k, 200.0 / 3.0);
    }
    assert!(v.get("accuracy").is_none(), "accuracy is reported for udpos only");
}

#[test]
fn udpos_scores_chunk_f1_and_accuracy() {
    // gold DET ADJ ADJ NOUN VERB | INTJ PUNCT → DET(0,0) ADJ(1,2) NOUN(3,3) VERB(4,4)
    //   INTJ(6,6) PUNCT(7,7): 6 chunks.
    // pred DET ADJ ADJ NOUN NOUN | INTJ PUNCT → DET ADJ NOUN(3,4) INTJ PUNCT: 5 chunks.
    // shared 4: P 4/5, R 4/6, F1 = 2·(4/5)(2/3) / (4/5 + 2/3) = 8/11. Accuracy: 6 of the 7
    // tags equal (VERB → NOUN is the one miss) = 6/7.
    let v = score("udpos", "udpos_gold.tsv", "udpos_pred.txt", None);
    assert_close(&v, "precision", 80.0);
    assert_close(&v, "recall", 400.0 / 6.0);
    assert_close(&v, "f1", 800.0 / 11.0);
    assert_close(&v, "accuracy", 600.0 / 7.0);
}

#[test]
fn tagging_bad_input() {
    let msg = fails(
        &args("panx", "panx_gold.tsv", "panx_pred_one_sentence.txt", None),
        &["panx_pred_one_sentence.txt", "1 sentences but 2 gold sentences"],
    );
    assert!(msg.contains("panx_gold.tsv"), "{msg}");
    // Sentence 2 starts on line 7 of the prediction and line 7 of the gold file.
    fails(
        &args("panx", "panx_gold.tsv", "panx_pred_short_sentence.txt", None),
        &["panx_pred_short_sentence.txt", "line 7", "sentence 2 has 2 tags", "panx_gold.tsv:7 has 3"],
    );
    fails(
        &args("panx", "panx_gold.tsv", "panx_pred_unknown.txt", None),
        &["panx_pred_unknown.txt", "line 7", "unknown label \"B-CITY\""],
    );
    fails(
        &args("panx", "panx_gold_columns.tsv", "panx_pred.txt", None),
        &["panx_gold_columns.tsv", "line 2", "expected 2 tab-separated columns as on line 1, found 3"],
    );
    // A NER gold file is not a UDPOS gold file.
    fails(&args("udpos", "panx_gold.tsv", "panx_pred.txt", None), &["line 1", "unknown label \"B-PER\" for udpos"]);
}

// ---------------------------------------------------------------------------------------------
// Classification and retrieval

#[test]
fn classification_retrieval_scores() {
    // gold e c n e (XTREME layout, label in column 3), pred e c e e (+ trailing blank line):
    // 3/4 = 75.
    let v = score("xnli", "xnli_gold.tsv", "xnli_pred.txt", None);
    assert_close(&v, "accuracy", 75.0);
    // BUCC: gold 3 pairs, pred 2 pairs, 1 shared: P 1/2, R 1/3, F1 2·(1/6)/(5/6) = 0.4.
    let v = score("bucc2018", "bucc_gold.tsv", "bucc_pred.tsv", None);
    assert_close(&v, "precision", 50.0);
    assert_close(&v, "recall", 100.0 / 3.0);
    assert_close(&v, "f1", 40.0);
    // Tatoeba: gold 2 0 1 3, pred 2 1 1 3 → 3/4.
    let v = score("tatoeba", "tatoeba_gold.txt", "tatoeba_pred.txt", None);
    assert_close(&v, "accuracy", 75.0);
}

#[test]
fn classification_retrieval_bad_input() {
    fails(
        &args("xnli", "xnli_gold.tsv", "xnli_pred_short.txt", None),
        &["xnli_pred_short.txt", "3 predictions but 4 gold labels"],
    );
    fails(
        &args("xnli", "xnli_gold.tsv", "xnli_pred_unknown.txt", None),
        &["xnli_pred_unknown.txt", "line 3", "unknown label \"maybe\""],
    );
    fails(
        &args("xnli", "xnli_gold_columns.tsv", "xnli_pred.txt", None),
        &["xnli_gold_columns.tsv", "line 2", "expected 3 tab-separated columns as on line 1, found 2"],
    );
    fails(
        &args("xnli", "xnli_gold.tsv", "xnli_pred_blank.txt", None),
        &["xnli_pred_blank.txt", "line 2", "blank line"],
    );
    // PAWS-X labels are 0/1, not NLI labels.
    fails(
        &args("pawsx", "xnli_gold.tsv", "xnli_pred.txt", None),
        &["line 1", "unknown label \"entailment\" for pawsx"],
    );
    fails(&args("bucc2018", "bucc_gold.tsv", "bucc_pred_bad.tsv", None), &["bucc_pred_bad.tsv", "line 2"]);
    fails(
        &args("tatoeba", "tatoeba_gold.txt", "tatoeba_pred_bad.txt", None),
        &["tatoeba_pred_bad.txt", "line 3", "\"x\""],
    );
    fails(&args("nope", "xnli_gold.tsv", "xnli_pred.txt", None), &["unknown task \"nope\""]);
    fails(&ScoreArgs { task: Some("xnli".into()), ..ScoreArgs::default() }, &["give --task, --gold and --pred"]);
    fails(&ScoreArgs { xtreme_dir: Some(fx("x")), ..ScoreArgs::default() }, &["--gold-dir"]);
}

// ---------------------------------------------------------------------------------------------
// A whole XTREME folder

fn write(root: &Path, task: &str, lang: &str, ext: &str, text: &str) {
    let dir = root.join(task);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(format!("test-{lang}.{ext}")), text).expect("write");
}

const PAWSX: [&str; 7] = ["de", "en", "es", "fr", "ja", "ko", "zh"];
const XNLI: [&str; 15] = ["ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"];
const MLQA: [&str; 7] = ["en", "es", "de", "ar", "hi", "vi", "zh"];
const BUCC: [&str; 4] = ["de", "fr", "ru", "zh"];

/// pawsx, xnli, bucc2018 and mlqa in both folders, udpos in the prediction folder only.
fn xtreme_folders(root: &Path) -> (PathBuf, PathBuf) {
    let (pred, gold) = (root.join("pred"), root.join("gold"));
    for l in PAWSX {
        write(&gold, "pawsx", l, "tsv", "0\n1\n1\n0\n");
        let p = match l {
            "de" => "0\n1\n1\n0\n", // 4/4
            "en" => "0\n1\n1\n1\n", // 3/4
            _ => "1\n1\n1\n1\n",    // 2/4
        };
        write(&pred, "pawsx", l, "tsv", p);
    }
    for l in XNLI {
        write(&gold, "xnli", l, "tsv", "entailment\nneutral\n");
        write(&pred, "xnli", l, "tsv", if l == "ar" { "neutral\nentailment\n" } else { "entailment\nneutral\n" });
    }
    for l in BUCC {
        write(&gold, "bucc2018", l, "tsv", &format!("{l}-1\ten-1\n{l}-2\ten-2\n"));
        let p = if l == "de" { format!("{l}-1\ten-1\n{l}-2\ten-2\n") } else { format!("{l}-1\ten-1\n") };
        write(&pred, "bucc2018", l, "tsv", &p);
    }
    let gold_qa = r#"{"data": [{"paragraphs": [{"context": "Paris", "qas": [{"id": "q",
        "answers": [{"answer_start": 0, "text": "Paris"}]}]}]}]}"#;
    for l in MLQA {
        write(&gold, "mlqa", l, "json", gold_qa);
        write(&pred, "mlqa", l, "json", if l == "zh" { "{}" } else { r#"{"q": "Paris"}"# });
    }
    write(&pred, "udpos", "en", "tsv", "NOUN\n");
    (pred, gold)
}

#[test]
fn xtreme_folder_aggregates_like_evaluate_py() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (pred, gold) = xtreme_folders(tmp.path());
    let v = match run(&ScoreArgs { xtreme_dir: Some(pred), gold_dir: Some(gold), ..ScoreArgs::default() }) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let tasks = &v["tasks"];
    // pawsx: de 100, en 75, five languages 50 → (100 + 75 + 250) / 7 = 425/7.
    assert_close(&tasks["pawsx"]["accuracy"], "en", 75.0);
    assert_close(&tasks["pawsx"], "avg_accuracy", 425.0 / 7.0);
    assert_close(&tasks["pawsx"], "avg_metric", 425.0 / 7.0);
    // xnli: 14 languages 100, ar 0 → 1400/15.
    assert_close(&tasks["xnli"], "avg_metric", 1400.0 / 15.0);
    // bucc2018: de F1 100; others P 1, R 1/2 → F1 2/3 → (100 + 3·200/3) / 4 = 75.
    assert_close(&tasks["bucc2018"]["f1"], "fr", 200.0 / 3.0);
    assert_close(&tasks["bucc2018"], "avg_metric", 75.0);
    // mlqa: six languages EM = F1 = 100, zh unanswered → 0: avg 600/7 each;
    // avg_metric = (avg EM + avg F1) / 2.
    assert_close(&tasks["mlqa"], "avg_exact_match", 600.0 / 7.0);
    assert_close(&tasks["mlqa"], "avg_metric", 600.0 / 7.0);
    assert_eq!(tasks["mlqa"]["missing"]["zh"], 1);
    assert_eq!(tasks["mlqa"]["missing"]["en"], 0);
    // Groups only when complete: classification = (425/7 + 1400/15) / 2; no qa (xquad, tydiqa
    // absent), no retrieval (tatoeba absent), no all_task.
    let overall = &v["overall"];
    assert_close(overall, "classification", (425.0 / 7.0 + 1400.0 / 15.0) / 2.0);
    for absent in ["qa", "retrieval", "tagging", "all_task"] {
        assert!(overall.get(absent).is_none(), "{absent} in {overall}");
    }
    assert_eq!(v["skipped"], serde_json::json!(["udpos (no gold folder)"]));
}

#[test]
fn xtreme_folder_missing_language_file_is_an_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (pred, gold) = xtreme_folders(tmp.path());
    std::fs::remove_file(pred.join("xnli").join("test-sw.tsv")).expect("rm");
    let a = ScoreArgs { xtreme_dir: Some(pred), gold_dir: Some(gold.clone()), ..ScoreArgs::default() };
    fails(&a, &["test-sw.tsv", "missing prediction file for xnli sw"]);
    // A malformed file inside the folder names that file and line.
    let (pred, gold) = xtreme_folders(&tmp.path().join("again"));
    write(&pred, "pawsx", "ja", "tsv", "0\n1\n2\n0\n");
    let a = ScoreArgs { xtreme_dir: Some(pred), gold_dir: Some(gold), ..ScoreArgs::default() };
    fails(&a, &["test-ja.tsv", "line 3", "unknown label \"2\""]);
    let empty = tempfile::tempdir().expect("tmp");
    let a = ScoreArgs {
        xtreme_dir: Some(empty.path().to_path_buf()),
        gold_dir: Some(empty.path().to_path_buf()),
        ..ScoreArgs::default()
    };
    fails(&a, &["no XTREME task folder"]);
}
