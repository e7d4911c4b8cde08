//! The BUCC and Tatoeba step of `xlt xtreme` with the tiny XLM-R: prediction files in XTREME's
//! submission layout that `xlt score` re-scores to the returned numbers, hand-checkable cases
//! where both sides hold the same sentences, and missing data as errors naming the file.

use serde_json::Value;
use std::path::{Path, PathBuf};
use xlt::score::{score_task, Task};
use xlt::tasks::Layout;
use xlt::xtreme::retrieval::{evaluate_bucc, evaluate_tatoeba, LanguageScore, RetrievalOptions};

/// Scores are percentages computed in f64 from the same counts.
const EPS: f64 = 1e-9;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model() -> PathBuf {
    fixtures().join("tiny-xlmr")
}

fn xtreme_fixtures() -> Layout {
    Layout::Xtreme(fixtures().join("tasks/xtreme"))
}

/// Small batches, so sentences of different lengths share padded batches.
fn opts() -> RetrievalOptions {
    RetrievalOptions { layer: None, batch_size: 2, max_seq_len: 64, device: xlt::device::Device::Cpu }
}

fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(str::to_string).collect()
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write");
}

fn metric(scores: &xlt::score::Scores, name: &str) -> f64 {
    match scores.metrics.iter().find(|(k, _)| *k == name) {
        Some((_, v)) => *v,
        None => panic!("no {name} in {scores:?}"),
    }
}

fn extra_f64(s: &LanguageScore, path: &[&str]) -> f64 {
    let mut v = &s.extra;
    for k in path {
        v = &v[*k];
    }
    v.as_f64().unwrap_or_else(|| panic!("no number at {path:?} in {}", s.extra))
}

fn the_one(scores: Vec<LanguageScore>) -> LanguageScore {
    assert_eq!(scores.len(), 1, "one language in, one score out");
    scores.into_iter().next().expect("one score")
}

/// Distinct sentences of distinct lengths and words for the identical-sides cases.
const SENTENCES: [&str; 8] = [
    "The dog is sleeping in the garden.",
    "It will rain in Cologne tomorrow.",
    "The museum is closed on Mondays.",
    "A cat chases a small grey mouse through the kitchen.",
    "We need more coffee.",
    "Where is the station?",
    "My brother plays the violin every evening after dinner.",
    "Yes.",
];

// ---------------------------------------------------------------------------------------------
// BUCC

#[test]
fn bucc_fixture_predictions_rescore_to_the_returned_dev_f1() {
    let out = tempfile::tempdir().expect("tmp");
    let s = the_one(evaluate_bucc(&model(), &xtreme_fixtures(), &["de"], out.path(), &opts()).expect("bucc"));
    assert_eq!(s.lang, "de");
    // XTREME's download has no test gold: the score is the dev F1 at the tuned threshold,
    // marked optimistic.
    assert_eq!(s.split, "dev");
    assert!(s.optimistic);
    assert!(s.extra["test"].is_null(), "{}", s.extra);
    let f1 = s.primary.expect("BUCC always has a score");
    assert!((0.0..=100.0).contains(&f1));
    assert_eq!(s.extra["layer"], Value::from(1), "default layer of a 2-layer model");

    let dev = out.path().join("bucc2018/dev-de.tsv");
    let test = out.path().join("bucc2018/test-de.tsv");
    assert_eq!(lines(&dev).len() as f64, extra_f64(&s, &["predicted_pairs", "dev"]));
    assert_eq!(lines(&test).len() as f64, extra_f64(&s, &["predicted_pairs", "test"]));
    assert!(lines(&test).len() <= 1, "the test split has one sentence per side");
    for l in lines(&dev).iter().chain(&lines(&test)) {
        let cols: Vec<&str> = l.split('\t').collect();
        assert!(cols.len() == 2 && cols[0].starts_with("de-") && cols[1].starts_with("en-"), "{l:?}");
    }

    let gold = fixtures().join("tasks/xtreme/bucc2018/de-en.dev.gold");
    let rescored = score_task(Task::Bucc2018, &gold, &dev, None).expect("score");
    assert!((metric(&rescored, "f1") - f1).abs() < EPS, "{rescored:?} vs {f1}");
    assert!((metric(&rescored, "precision") - extra_f64(&s, &["precision"])).abs() < EPS);
    assert!((metric(&rescored, "recall") - extra_f64(&s, &["recall"])).abs() < EPS);
}

#[test]
fn bucc_reads_the_jiant_layout_too() {
    let out = tempfile::tempdir().expect("tmp");
    let layout = Layout::Jiant(fixtures().join("tasks/jiant"));
    let s = the_one(evaluate_bucc(&model(), &layout, &["de"], out.path(), &opts()).expect("bucc"));
    // jiant names the dev split `val`; without a test gold the threshold is scored on the gold
    // it was tuned on: optimistic.
    assert_eq!(s.split, "val");
    assert!(s.optimistic);
    assert!(out.path().join("bucc2018/test-de.tsv").is_file());
}

/// BUCC files for `de` where both sides hold the same texts (the English side in another
/// order) and the gold pairs each sentence with its copy; test = dev, with its gold kept.
fn identical_bucc(root: &Path) {
    let n = SENTENCES.len();
    let de: String = SENTENCES.iter().enumerate().map(|(i, s)| format!("de-{:09}\t{s}\n", i + 1)).collect();
    // English sentence i is German sentence (3i + 1) mod n (3 and 8 are coprime).
    let en_of = |i: usize| (3 * i + 1) % n;
    let en: String = (0..n).map(|i| format!("en-{:09}\t{}\n", i + 1, SENTENCES[en_of(i)])).collect();
    let gold: String = (0..n).map(|i| format!("de-{:09}\ten-{:09}\n", en_of(i) + 1, i + 1)).collect();
    for split in ["dev", "test"] {
        write(root, &format!("bucc2018/de-en.{split}.de"), &de);
        write(root, &format!("bucc2018/de-en.{split}.en"), &en);
        write(root, &format!("bucc2018/de-en.{split}.gold"), &gold);
    }
}

#[test]
fn bucc_on_identical_sides_finds_every_pair() {
    let data = tempfile::tempdir().expect("tmp");
    identical_bucc(data.path());
    let out = tempfile::tempdir().expect("tmp");
    let layout = Layout::Xtreme(data.path().to_path_buf());
    let s = the_one(evaluate_bucc(&model(), &layout, &["de"], out.path(), &opts()).expect("bucc"));
    // The test gold is present, so the score is on test, with a threshold tuned elsewhere.
    assert_eq!(s.split, "test");
    assert!(!s.optimistic);
    let f1 = s.primary.expect("score");
    // Each sentence's copy has cosine 1 and wins its margin; tuned on dev = test, nothing is lost.
    assert!((f1 - 100.0).abs() < EPS, "F1 {f1} on identical sides: {}", s.extra);
    let test = out.path().join("bucc2018/test-de.tsv");
    assert_eq!(lines(&test).len(), SENTENCES.len());
    let rescored = score_task(Task::Bucc2018, &data.path().join("bucc2018/de-en.test.gold"), &test, None).unwrap();
    assert!((metric(&rescored, "f1") - f1).abs() < EPS);
}

#[test]
fn bucc_duplicate_texts_are_dropped_and_counted() {
    let data = tempfile::tempdir().expect("tmp");
    identical_bucc(data.path());
    // A second German id for the first sentence: XTREME drops texts that occur twice.
    let path = data.path().join("bucc2018/de-en.dev.de");
    let mut de = std::fs::read_to_string(&path).expect("read");
    de.push_str(&format!("de-000000099\t{}\n", SENTENCES[0]));
    std::fs::write(&path, de).expect("write");
    let out = tempfile::tempdir().expect("tmp");
    let layout = Layout::Xtreme(data.path().to_path_buf());
    let s = the_one(evaluate_bucc(&model(), &layout, &["de"], out.path(), &opts()).expect("bucc"));
    assert_eq!(extra_f64(&s, &["duplicate_ids_dropped", "dev"]), 2.0, "{}", s.extra);
    assert_eq!(extra_f64(&s, &["duplicate_ids_dropped", "test"]), 0.0);
    let dev = lines(&out.path().join("bucc2018/dev-de.tsv"));
    assert!(dev.iter().all(|l| !l.starts_with("de-000000001\t") && !l.starts_with("de-000000099\t")), "{dev:?}");
}

// ---------------------------------------------------------------------------------------------
// Tatoeba

#[test]
fn tatoeba_xtreme_fixture_writes_one_index_per_english_line_without_gold() {
    let out = tempfile::tempdir().expect("tmp");
    let s = the_one(evaluate_tatoeba(&model(), &xtreme_fixtures(), &["de"], out.path(), &opts()).expect("tatoeba"));
    assert_eq!((s.lang.as_str(), s.split.as_str()), ("de", "test"));
    assert_eq!(s.primary, None, "XTREME's download has no Tatoeba gold");
    assert!(s.extra["gold"].is_null());
    let pred = lines(&out.path().join("tatoeba/test-de.tsv"));
    assert_eq!(pred.len(), 3);
    assert!(pred.iter().all(|p| p.parse::<usize>().is_ok_and(|i| i < 3)), "{pred:?}");
}

#[test]
fn tatoeba_jiant_fixture_rescores_to_the_returned_accuracy() {
    let out = tempfile::tempdir().expect("tmp");
    let layout = Layout::Jiant(fixtures().join("tasks/jiant"));
    let s = the_one(evaluate_tatoeba(&model(), &layout, &["de"], out.path(), &opts()).expect("tatoeba"));
    let acc = s.primary.expect("jiant's layout has labels");
    let pred = out.path().join("tatoeba/test-de.tsv");
    assert_eq!(lines(&pred).len(), 3);
    let gold = fixtures().join("tasks/jiant/data/tatoeba_de/de-en.labels");
    let rescored = score_task(Task::Tatoeba, &gold, &pred, None).expect("score");
    assert!((metric(&rescored, "accuracy") - acc).abs() < EPS, "{rescored:?} vs {acc}");
}

#[test]
fn tatoeba_on_identical_sides_is_100_percent() {
    // XTREME layout: the other side as is, the English side sorted, plus jiant's labels file.
    let data = tempfile::tempdir().expect("tmp");
    let other: String = SENTENCES.iter().map(|s| format!("{s}\n")).collect();
    let mut sorted: Vec<(&str, usize)> = SENTENCES.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    sorted.sort();
    let english: String = sorted.iter().map(|(s, _)| format!("{s}\n")).collect();
    let labels: String = sorted.iter().map(|(_, i)| format!("{i}\n")).collect();
    write(data.path(), "tatoeba/de-en.de", &other);
    write(data.path(), "tatoeba/de-en.en", &english);
    write(data.path(), "tatoeba/de-en.labels", &labels);
    let out = tempfile::tempdir().expect("tmp");
    let layout = Layout::Xtreme(data.path().to_path_buf());
    let s = the_one(evaluate_tatoeba(&model(), &layout, &["de"], out.path(), &opts()).expect("tatoeba"));
    assert_eq!(s.primary, Some(100.0), "{}", s.extra);
    let pred = out.path().join("tatoeba/test-de.tsv");
    assert_eq!(lines(&pred), labels.lines().collect::<Vec<_>>());
    let rescored = score_task(Task::Tatoeba, &data.path().join("tatoeba/de-en.labels"), &pred, None).unwrap();
    assert!((metric(&rescored, "accuracy") - 100.0).abs() < EPS);
}

// ---------------------------------------------------------------------------------------------
// Errors

fn error_of(r: xlt::Result<Vec<LanguageScore>>) -> String {
    match r {
        Ok(s) => panic!("should fail, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_language_is_an_error_naming_the_file() {
    let out = tempfile::tempdir().expect("tmp");
    // The fixtures hold `de` only; `fr` is a BUCC and Tatoeba language without files.
    let e = error_of(evaluate_bucc(&model(), &xtreme_fixtures(), &["de", "fr"], out.path(), &opts()));
    assert!(e.contains("bucc2018/fr-en.dev.fr") && e.contains("missing file"), "{e}");
    let e = error_of(evaluate_tatoeba(&model(), &xtreme_fixtures(), &["fr"], out.path(), &opts()));
    assert!(e.contains("tatoeba/fr-en.fr") && e.contains("missing file"), "{e}");
}

#[test]
fn bad_language_lists_and_models_are_errors() {
    let out = tempfile::tempdir().expect("tmp");
    let e = error_of(evaluate_bucc(&model(), &xtreme_fixtures(), &["xx"], out.path(), &opts()));
    assert!(e.contains("`xx`") && e.contains("de fr ru zh"), "{e}");
    let e = error_of(evaluate_tatoeba(&model(), &xtreme_fixtures(), &[], out.path(), &opts()));
    assert!(e.contains("no languages"), "{e}");
    let e = error_of(evaluate_tatoeba(&model(), &xtreme_fixtures(), &["de", "de"], out.path(), &opts()));
    assert!(e.contains("twice"), "{e}");
    let missing = fixtures().join("no-such-model");
    let e = error_of(evaluate_bucc(&missing, &xtreme_fixtures(), &["de"], out.path(), &opts()));
    assert!(e.contains("no-such-model"), "{e}");
    let bad_layer = RetrievalOptions { layer: Some(9), ..opts() };
    let e = error_of(evaluate_tatoeba(&model(), &xtreme_fixtures(), &["de"], out.path(), &bad_layer));
    assert!(e.contains("0..=2"), "{e}");
}
