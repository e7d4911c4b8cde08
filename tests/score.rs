//! `xlt score` (library side): every task family scored from small synthetic files under
//! tests/fixtures/score/ with hand-worked expected values, the XTREME folder aggregation, and
//! bad input that must be an error naming the file and the line or question id. jiant's gold
//! files (tests/fixtures/tasks/jiant/) score; XTREME's stripped test files
//! (tests/fixtures/tasks/xtreme/) and unlabelled test splits are refused as such; BOM + CRLF
//! variants are written to a tempdir. One test runs the real binary.

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

// ---------------------------------------------------------------------------------------------
// jiant's gold files, told apart by content

/// A task data fixture (tests/fixtures/tasks/...): jiant's and XTREME's download layouts.
fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tasks").join(rel)
}

fn paths(task: &str, gold: &Path, pred: &Path, lang: Option<&str>) -> ScoreArgs {
    ScoreArgs {
        task: Some(task.into()),
        gold: Some(gold.to_path_buf()),
        pred: Some(pred.to_path_buf()),
        lang: lang.map(Into::into),
        ..ScoreArgs::default()
    }
}

fn score_paths(task: &str, gold: &Path, pred: &Path, lang: Option<&str>) -> Value {
    match run(&paths(task, gold, pred, lang)) {
        Ok(v) => v,
        Err(e) => panic!("{task} {} {}: {e}", gold.display(), pred.display()),
    }
}

/// Writes `text` to `dir/name` and returns the path.
fn put(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// `text` with a UTF-8 byte-order mark and CRLF line endings.
fn bom_crlf(text: &str) -> String {
    format!("\u{feff}{}", text.replace('\n', "\r\n"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).expect("read fixture")
}

#[test]
fn jiant_pawsx_and_xnli_gold_files_score() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    // pawsx_en/dev_2k.tsv: header, then one row labelled 1.
    let en = data("jiant/data/pawsx_en/dev_2k.tsv");
    assert_close(&score_paths("pawsx", &en, &put(t, "p1", "1\n"), None), "accuracy", 100.0);
    assert_close(&score_paths("pawsx", &en, &put(t, "p0", "0\n"), None), "accuracy", 0.0);
    // pawsx_de/dev_2k.tsv: labels 1 0; pred 1 1 → 1/2. With BOM + CRLF in both files: the same.
    let de = data("jiant/data/pawsx_de/dev_2k.tsv");
    assert_close(&score_paths("pawsx", &de, &put(t, "p11", "1\n1\n"), None), "accuracy", 50.0);
    let de_crlf = put(t, "dev_2k.tsv", &bom_crlf(&read(&de)));
    let pred_crlf = put(t, "p10", &bom_crlf("1\n0\n"));
    assert_close(&score_paths("pawsx", &de_crlf, &pred_crlf, None), "accuracy", 100.0);
    // test_2k.tsv has labels too (label 0).
    let test = data("jiant/data/pawsx_de/test_2k.tsv");
    assert_close(&score_paths("pawsx", &test, &put(t, "p0b", "0\n"), None), "accuracy", 100.0);

    // xnli_de/val.jsonl: de neutral, en entailment, de contradiction. --lang de keeps the de rows
    // as jiant's reader does: pred neutral entailment → 1/2.
    let val = data("jiant/data/xnli_de/val.jsonl");
    let pred = put(t, "xnli_pred", "neutral\nentailment\n");
    assert_close(&score_paths("xnli", &val, &pred, Some("de")), "accuracy", 50.0);
    let val_crlf = put(t, "val.jsonl", &bom_crlf(&read(&val)));
    let pred_crlf = put(t, "xnli_pred_crlf", &bom_crlf("neutral\ncontradiction\n"));
    assert_close(&score_paths("xnli", &val_crlf, &pred_crlf, Some("de")), "accuracy", 100.0);
    // Several languages and no --lang: which rows to score is ambiguous.
    fails(&paths("xnli", &val, &pred, None), &["val.jsonl", "2 languages (de, en)", "--lang"]);
    fails(&paths("xnli", &val, &pred, Some("fr")), &["val.jsonl", "language \"fr\"", "de, en"]);
    // A one-language file (as jiant's download writes per language) needs no --lang: gold
    // entailment neutral, pred neutral entailment → 0; the other way round → 100.
    let one = put(
        t,
        "one.jsonl",
        &bom_crlf(concat!(
            r#"{"language": "de", "gold_label": "entailment", "sentence1": "a", "sentence2": "b"}"#,
            "\n\n",
            r#"{"language": "de", "gold_label": "neutral", "sentence1": "c", "sentence2": "d"}"#,
            "\n"
        )),
    );
    assert_close(&score_paths("xnli", &one, &pred, None), "accuracy", 0.0);
    let swapped = put(t, "xnli_pred_swapped", "entailment\nneutral\n");
    assert_close(&score_paths("xnli", &one, &swapped, None), "accuracy", 100.0);
    // An unknown label names the gold file and line.
    let bad = put(t, "bad.jsonl", r#"{"language": "de", "gold_label": "maybe", "sentence1": "a", "sentence2": "b"}"#);
    fails(&paths("xnli", &bad, &put(t, "pe", "entailment\n"), None), &["bad.jsonl", "line 1", "\"maybe\""]);
    // JSON lines are not a PAWS-X gold format.
    fails(&paths("pawsx", &one, &pred, None), &["one.jsonl", "found JSON lines"]);
}

#[test]
fn jiant_intermediate_task_gold_files_score() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let p = |name: &str, text: &str| put(t, name, text);
    // MNLI val: entailment contradiction.
    let v = score_paths("mnli", &data("jiant/data/mnli/val.jsonl"), &p("mnli", "entailment\nneutral\n"), None);
    assert_close(&v, "accuracy", 50.0);
    // SNLI val in the original format: the `-` row is dropped as jiant drops it → entailment
    // contradiction.
    let v = score_paths("snli", &data("jiant/data/snli/val.jsonl"), &p("snli", "entailment\ncontradiction\n"), None);
    assert_close(&v, "accuracy", 100.0);
    // ANLI keeps jiant's c/e/n labels: val is `n`.
    let anli = data("jiant/data/adversarial_nli_r1/val.jsonl");
    assert_close(&score_paths("adversarial_nli", &anli, &p("anli", "n\n"), None), "accuracy", 100.0);
    fails(&paths("anli", &anli, &p("anli_long", "neutral\n"), None), &["anli_long", "unknown label \"neutral\""]);
    // QQP val: `1` → accuracy and F1 of class 1.
    let v = score_paths("qqp", &data("jiant/data/qqp/val.jsonl"), &p("qqp", "1\n"), None);
    assert_close(&v, "accuracy", 100.0);
    assert_close(&v, "f1", 100.0);
    // Multiple choice: HellaSwag val `2`, CommonsenseQA val `E`.
    let v = score_paths("hellaswag", &data("jiant/data/hellaswag/val.jsonl"), &p("hs", "1\n"), None);
    assert_close(&v, "accuracy", 0.0);
    let v = score_paths("commonsenseqa", &data("jiant/data/commonsenseqa/val.jsonl"), &p("csqa", "E\n"), None);
    assert_close(&v, "accuracy", 100.0);
    // BOM + CRLF, integer labels (QQP from HF) and a blank line.
    let qqp = p(
        "qqp.jsonl",
        &bom_crlf("{\"text_a\": \"a\", \"text_b\": \"b\", \"label\": 0}\n\n{\"text_a\": \"c\", \"text_b\": \"d\", \"label\": 1}\n"),
    );
    assert_close(&score_paths("qqp", &qqp, &p("qqp2", &bom_crlf("0\n0\n")), None), "accuracy", 50.0);
    // A row without a label among labelled rows is an error at its line, not a stripped file.
    let mixed = p(
        "mixed.jsonl",
        "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"entailment\"}\n{\"premise\": \"c\", \"hypothesis\": \"d\", \"label\": -1}\n",
    );
    let msg = fails(&paths("mnli", &mixed, &p("m2", "entailment\nneutral\n"), None), &["mixed.jsonl", "line 2"]);
    assert!(!msg.contains("no labels"), "{msg}");
}

#[test]
fn jiant_gold_files_in_a_folder() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (pred, gold) = xtreme_folders(tmp.path());
    // The same gold labels as xtreme_folders, as jiant writes them: raw PAWS-X with a header and
    // XNLI JSON lines, under the folder's file names; BOM + CRLF in PAWS-X.
    for l in PAWSX {
        let raw = "id\tsentence1\tsentence2\tlabel\n1\ta\tb\t0\n2\tc\td\t1\n3\te\tf\t1\n4\tg\th\t0\n";
        write(&gold, "pawsx", l, "tsv", &bom_crlf(raw));
    }
    for l in XNLI {
        let row = |label: &str| {
            format!(r#"{{"language": "{l}", "gold_label": "{label}", "sentence1": "s", "sentence2": "t"}}"#)
        };
        write(&gold, "xnli", l, "tsv", &format!("{}\n{}\n", row("entailment"), row("neutral")));
    }
    let v = match run(&ScoreArgs { xtreme_dir: Some(pred), gold_dir: Some(gold), ..ScoreArgs::default() }) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_close(&v["tasks"]["pawsx"], "avg_metric", 425.0 / 7.0);
    assert_close(&v["tasks"]["xnli"], "avg_metric", 1400.0 / 15.0);
}

// ---------------------------------------------------------------------------------------------
// Gold files without labels or answers

const NO_LABELS: &str = "this gold file has no labels (XTREME's public test files";

#[test]
fn stripped_classification_gold_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let pred = put(t, "pred", "entailment\n");
    let bin = put(t, "pred01", "0\n");
    // XTREME's test-<lang>.tsv: sentence1, sentence2, no label.
    for (task, file, p) in [("xnli", "xtreme/xnli/test-de.tsv", &pred), ("pawsx", "xtreme/pawsx/test-de.tsv", &bin)] {
        fails(
            &paths(task, &data(file), p, None),
            &["test-de.tsv", "line 1", "found 2 tab-separated columns", NO_LABELS],
        );
    }
    // jiant's test splits: -1 (MNLI, QQP, Cosmos QA), "" (HellaSwag, CommonsenseQA).
    for (task, file) in [
        ("mnli", "jiant/data/mnli/test.jsonl"),
        ("qqp", "jiant/data/qqp/test.jsonl"),
        ("hellaswag", "jiant/data/hellaswag/test.jsonl"),
        ("commonsenseqa", "jiant/data/commonsenseqa/test.jsonl"),
        ("cosmosqa", "jiant/data/cosmosqa_hf/test.jsonl"),
    ] {
        fails(&paths(task, &data(file), &pred, None), &["test.jsonl", "no row has a label", NO_LABELS]);
    }
    // XNLI JSON lines without gold_label, BOM + CRLF.
    let xnli = put(
        t,
        "xnli_test.jsonl",
        &bom_crlf("{\"language\": \"de\", \"sentence1\": \"a\", \"sentence2\": \"b\"}\n{\"language\": \"de\", \"sentence1\": \"c\", \"sentence2\": \"d\", \"gold_label\": null}\n"),
    );
    fails(&paths("xnli", &xnli, &pred, Some("de")), &["xnli_test.jsonl", NO_LABELS]);
    // Raw PAWS-X without a label column, or with every label empty.
    let no_col = put(t, "no_col.tsv", &bom_crlf("id\tsentence1\tsentence2\n1\ta\tb\n"));
    fails(&paths("pawsx", &no_col, &bin, None), &["no_col.tsv", "line 1", "no `label` column", NO_LABELS]);
    let empty = put(t, "empty.tsv", &bom_crlf("id\tsentence1\tsentence2\tlabel\n1\ta\tb\t\n2\tc\td\t\n"));
    fails(&paths("pawsx", &empty, &bin, None), &["empty.tsv", "label` column is empty", NO_LABELS]);
    // A prediction file of two columns is a plain column-count error, not a stripped gold file.
    let msg = fails(&paths("xnli", &fx("xnli_gold.tsv"), &data("xtreme/xnli/test-de.tsv"), None), &["test-de.tsv"]);
    assert!(!msg.contains("gold file has no"), "{msg}");
}

#[test]
fn stripped_tagging_gold_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pred = put(tmp.path(), "pred", "O\nO\n");
    // XTREME's test files: words only.
    fails(
        &paths("udpos", &data("xtreme/udpos/test-en.tsv"), &pred, None),
        &["test-en.tsv", "line 1", "the word \"Run\"", "not a udpos tag", "has words but no tags"],
    );
    fails(
        &paths("panx", &data("xtreme/panx/test-de.tsv"), &pred, None),
        &["test-de.tsv", "line 1", "the word \"Die\"", "has words but no tags (XTREME's public test files"],
    );
    let words = put(tmp.path(), "words.tsv", &bom_crlf("Die\nUNO\n"));
    fails(&paths("panx", &words, &pred, None), &["words.tsv", "has words but no tags"]);
    // A one-column gold of tags still scores; a prediction of words is an unknown label.
    let tags = put(tmp.path(), "tags.tsv", &bom_crlf("O\nB-ORG\n"));
    assert_close(&score_paths("panx", &tags, &pred, None), "recall", 0.0);
    let msg = fails(&paths("panx", &tags, &words, None), &["words.tsv", "line 1", "unknown label \"Die\""]);
    assert!(!msg.contains("no tags"), "{msg}");
}

#[test]
fn stripped_qa_gold_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pred = put(tmp.path(), "pred.json", r#"{"xq-1": "Deutschland"}"#);
    // XTREME's xquad.<l>.json: one {"answer_start": 0, "text": ""} per question.
    for task in ["xquad", "squad", "tydiqa"] {
        fails(
            &paths(task, &data("xtreme/xquad/xquad.de.json"), &pred, None),
            &["xquad.de.json", "every gold answer text is empty (2 questions)", "this gold file has no answers"],
        );
    }
    fails(
        &paths("tydiqa", &data("xtreme/tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.fi.dev.json"), &pred, None),
        &["tydiqa.goldp.fi.dev.json", "has no answers"],
    );
    // Only some questions without an answer text: an error naming the question.
    let partial = put(
        tmp.path(),
        "partial.json",
        &bom_crlf(concat!(
            r#"{"data": [{"paragraphs": [{"context": "Paris is big.", "qas": ["#,
            "\n",
            r#"{"id": "q1", "answers": [{"answer_start": 0, "text": "Paris"}]},"#,
            "\n",
            r#"{"id": "q2", "answers": [{"answer_start": 0, "text": ""}]}]}]}]}"#,
            "\n"
        )),
    );
    let msg = fails(
        &paths("squad", &partial, &pred, None),
        &["partial.json", "question \"q2\"", "expected a non-empty answer text"],
    );
    assert!(!msg.contains("has no answers"), "{msg}");
}

#[test]
fn stripped_gold_in_a_folder_names_the_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (pred, gold) = xtreme_folders(tmp.path());
    write(&gold, "xnli", "bg", "tsv", "Ein Satz.\tNoch einer.\nA\tB\n");
    let a = ScoreArgs { xtreme_dir: Some(pred), gold_dir: Some(gold), ..ScoreArgs::default() };
    fails(&a, &["xnli", "test-bg.tsv", "line 1", NO_LABELS]);
}

/// `xlt score` itself: jiant's PAWS-X dev file scores; a stripped gold file is one error line.
#[test]
fn cli_scores_jiant_gold_and_refuses_stripped_gold() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pred = put(tmp.path(), "pred.txt", &bom_crlf("1\n0\n"));
    let xlt = |gold: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_xlt"))
            .args(["score", "--task", "pawsx", "--gold"])
            .arg(gold)
            .arg("--pred")
            .arg(&pred)
            .output()
            .expect("run xlt")
    };
    let o = xlt(&data("jiant/data/pawsx_de/dev_2k.tsv"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(o.stdout.trim_ascii()).expect("json");
    assert_close(&v, "accuracy", 100.0);
    let o = xlt(&data("xtreme/pawsx/test-de.tsv"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("test-de.tsv") && err.contains(NO_LABELS), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
