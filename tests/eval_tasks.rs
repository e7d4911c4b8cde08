//! The family-generic evaluator (`xlt::eval::evaluate`) on the tiny XLM-R: outputs forced
//! through a head's bias (or tied by zeroed weights) so every prediction is known, and the
//! scores must then equal hand-counted values; `limit` keeps the first examples; unlabelled
//! splits give predictions and no score; written prediction files re-scored by `xlt score`
//! give the returned numbers; MLM perplexity of a random model is of the order of the
//! vocabulary and fixed by the mask seed; bad calls are errors.

use std::path::{Path, PathBuf};
use xlt::config::ModelConfig;
use xlt::cpu::CpuModel;
use xlt::eval::{evaluate, write_predictions, EvalOptions, EvalResult, Predictions};
use xlt::model::{assign_prefixes, HeadSpec, HostModel};
use xlt::score::{score_task, Task};
use xlt::tasks::registry::{PANX_TAGS, UPOS_TAGS};
use xlt::tasks::{
    lookup, read_split, Answer, ChoiceExample, Examples, Kind, Layout, PairExample, SpanExample, Split, TaggingExample,
    TaskSpec, TextExample,
};
use xlt::tokenize::Tokenizer;

/// Scores are percentages computed in f64.
const EPS: f64 = 1e-9;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn xtreme() -> Layout {
    Layout::Xtreme(fixtures().join("tasks/xtreme"))
}

fn jiant() -> Layout {
    Layout::Jiant(fixtures().join("tasks/jiant"))
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_file(&fixtures().join("tiny-xlmr/tokenizer.json"), xlt::config::Family::XlmRoberta)
        .expect("tokenizer")
}

fn config() -> ModelConfig {
    ModelConfig::from_file(&fixtures().join("tiny-xlmr/config.json")).expect("config")
}

/// A random tiny XLM-R with one head for `task` (`k` outputs).
fn model_for(task: &TaskSpec, k: usize, seed: u64) -> CpuModel {
    let mut specs = vec![HeadSpec::new(task.head, task.kind, k)];
    assign_prefixes(&mut specs);
    CpuModel::inference(HostModel::new_random(&config(), specs, seed).expect("model"))
}

fn names(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|s| s.to_string()).collect()
}

fn opts(batch_size: usize) -> EvalOptions {
    EvalOptions::new(batch_size, 64)
}

fn run(
    m: &mut CpuModel,
    task: &TaskSpec,
    labels: &[String],
    ex: &Examples,
    lang: Option<&str>,
    o: &EvalOptions,
) -> EvalResult {
    evaluate(m, 0, &tokenizer(), task, labels, ex, lang, o).unwrap_or_else(|e| panic!("{}: {e}", task.name))
}

fn eval_err(
    m: &mut CpuModel,
    task: &TaskSpec,
    labels: &[String],
    ex: &Examples,
    lang: Option<&str>,
    o: &EvalOptions,
) -> xlt::Error {
    match evaluate(m, 0, &tokenizer(), task, labels, ex, lang, o) {
        Ok(r) => panic!("{} should fail, got {:?}", task.name, r.metrics),
        Err(e) => e,
    }
}

fn metric(r: &EvalResult, key: &str) -> f64 {
    *r.metrics.get(key).unwrap_or_else(|| panic!("no metric {key:?} in {:?}", r.metrics))
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < EPS, "{what}: got {got}, want {want}");
}

/// Sets tensor `name` of `m` to `values`.
fn set(m: &mut CpuModel, name: &str, values: &[f32]) {
    let t = m.s.layout.find(name).unwrap_or_else(|| panic!("no tensor {name}")).clone();
    assert_eq!(t.numel(), values.len(), "{name}");
    m.params[t.range()].copy_from_slice(values);
}

/// Makes every output of a K-way bias-ended head class `c`: a huge bias on `c`.
fn force(m: &mut CpuModel, bias: &str, k: usize, c: usize) {
    let mut b = vec![0.0; k];
    b[c] = 1e4;
    set(m, bias, &b);
}

/// Adds N(0, 0.2²) noise to every parameter, so hidden states depend on the input far more
/// than at HF's initialisation scale.
fn perturb(m: &mut CpuModel, seed: u64) {
    let mut r = xlt::rng::Rng::new(seed);
    m.params.iter_mut().for_each(|x| *x += r.normal() * 0.2);
}

fn pair(i: usize, label: Option<usize>) -> PairExample {
    // Varied lengths, so sorting by length reorders the examples.
    let a = ["Ein Hund", "Die Katze schläft auf dem Sofa", "Er liest", "Wir gehen heute Abend ins Kino, oder nicht"];
    let b = ["Ein Tier", "Niemand schläft", "Sie schreibt einen langen Brief an ihre Schwester", "Ja"];
    PairExample { id: format!("p{i}"), a: a[i % 4].into(), b: b[(i / 2) % 4].into(), label }
}

fn pairs(labels: &[usize]) -> Examples {
    Examples::Pair(labels.iter().enumerate().map(|(i, &l)| pair(i, Some(l))).collect())
}

fn tagged(id: &str, words: &[&str], tags: Option<&[usize]>) -> TaggingExample {
    TaggingExample {
        id: id.into(),
        words: words.iter().map(|w| w.to_string()).collect(),
        tags: tags.map(<[usize]>::to_vec),
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tmp")
}

// ---------------------------------------------------------------------------------------------
// Classification and multiple choice.

#[test]
fn forced_class_accuracy_is_that_class_frequency() {
    let task = lookup("xnli").expect("xnli");
    let labels = names(task.labels);
    let mut m = model_for(task, 3, 1);
    force(&mut m, "classifier.out_proj.bias", 3, 1);
    let gold = [0, 1, 1, 2, 1, 0, 2, 2, 1, 0];
    let ex = pairs(&gold);
    let r = run(&mut m, task, &labels, &ex, Some("de"), &opts(3));
    assert_eq!(r.predictions, Predictions::Labels(vec!["entailment".to_string(); 10]));
    assert_eq!(r.examples, 10);
    close(metric(&r, "acc"), 40.0, "acc");
    close(r.primary.expect("labelled"), 40.0, "primary");
    // Cross-entropy with one logit 1e4 above the rest: 0 when right, ~1e4 when wrong.
    let loss = metric(&r, "loss");
    assert!((loss - 0.6e4).abs() < 10.0, "mean loss {loss}");
    // `limit` keeps the first examples: 0, 1, 1, 2 → 2 of 4 right.
    let o = EvalOptions { limit: Some(4), ..opts(3) };
    let r = run(&mut m, task, &labels, &ex, Some("de"), &o);
    assert_eq!((r.examples, r.predictions.len()), (4, 4));
    close(r.primary.expect("labelled"), 50.0, "first four");
    // A limit past the end keeps everything.
    let o = EvalOptions { limit: Some(100), ..opts(3) };
    assert_eq!(run(&mut m, task, &labels, &ex, None, &o).examples, 10);
}

#[test]
fn predictions_come_back_in_input_order_whatever_the_batch_size() {
    let task = lookup("xnli").expect("xnli");
    let labels = names(task.labels);
    let mut m = model_for(task, 3, 2);
    perturb(&mut m, 2);
    set(&mut m, "classifier.out_proj.bias", &[0.0; 3]);
    let gold: Vec<usize> = (0..13).map(|i| (i * 7) % 3).collect();
    let ex = pairs(&gold);
    let one = run(&mut m, task, &labels, &ex, None, &opts(1));
    let Predictions::Labels(p) = &one.predictions else { panic!("labels") };
    let distinct: std::collections::BTreeSet<&String> = p.iter().collect();
    assert!(distinct.len() > 1, "predictions should vary between examples: {p:?}");
    for bs in [2, 5, 64] {
        let r = run(&mut m, task, &labels, &ex, None, &opts(bs));
        assert_eq!(r.predictions, one.predictions, "batch size {bs}");
        close(r.primary.expect("labelled"), one.primary.expect("labelled"), "acc");
    }
    // Accuracy is the count of agreeing labels.
    let right = p.iter().zip(&gold).filter(|(p, &g)| **p == labels[g]).count();
    close(one.primary.expect("labelled"), 100.0 * right as f64 / 13.0, "acc by hand");
}

#[test]
fn qqp_primary_is_the_mean_of_accuracy_and_positive_f1() {
    let task = lookup("qqp").expect("qqp");
    let labels = names(task.labels);
    let mut m = model_for(task, 2, 3);
    force(&mut m, "classifier.out_proj.bias", 2, 1);
    // All predicted "1": accuracy 3/5; TP 3, FP 2, FN 0 → F1 = 6/8.
    let r = run(&mut m, task, &labels, &pairs(&[1, 0, 1, 1, 0]), None, &opts(4));
    close(metric(&r, "acc"), 60.0, "acc");
    close(metric(&r, "f1"), 75.0, "f1");
    close(r.primary.expect("labelled"), 67.5, "primary");
    // All predicted "0": no positive prediction, F1 0.
    force(&mut m, "classifier.out_proj.bias", 2, 0);
    let r = run(&mut m, task, &labels, &pairs(&[1, 0, 1, 1, 0]), None, &opts(4));
    close(metric(&r, "f1"), 0.0, "f1");
    close(r.primary.expect("labelled"), 20.0, "primary");
}

#[test]
fn tied_multiple_choice_scores_pick_the_first_choice() {
    let task = lookup("hellaswag").expect("hellaswag");
    let keys = names(task.labels);
    let mut m = model_for(task, 4, 4);
    // Zero scorer weights: every choice scores the bias, and ties go to the first choice.
    set(&mut m, "classifier.out_proj.weight", &[0.0; 32]);
    let gold = [0usize, 2, 0, 3, 1];
    let ex = Examples::MultipleChoice(
        gold.iter()
            .enumerate()
            .map(|(i, &l)| ChoiceExample {
                id: format!("c{i}"),
                prompt: "Ein Mann steht am Herd und".into(),
                choices: names(&["kocht Suppe.", "liest", "fährt mit dem Fahrrad nach Hause.", "schläft"]),
                label: Some(l),
            })
            .collect(),
    );
    let r = run(&mut m, task, &keys, &ex, None, &opts(2));
    assert_eq!(r.predictions, Predictions::Labels(vec!["0".to_string(); 5]));
    close(r.primary.expect("labelled"), 40.0, "acc");
    let loss = metric(&r, "loss");
    assert!((loss - (4.0f64).ln()).abs() < 1e-5, "tied scores: loss {loss} should be ln 4");
    // A question with a different number of choices than the head scores is an error.
    let Examples::MultipleChoice(mut v) = ex else { unreachable!() };
    v[1].choices.pop();
    let e = eval_err(&mut m, task, &keys, &Examples::MultipleChoice(v), None, &opts(2)).to_string();
    assert!(e.contains("3 choices") && e.contains("c1"), "{e}");
}

#[test]
fn unlabelled_splits_get_predictions_and_no_score() {
    let task = lookup("xnli").expect("xnli");
    let labels = names(task.labels);
    let mut m = model_for(task, 3, 5);
    let test = read_split(task, &xtreme(), Split::Test, Some("de")).expect("test-de");
    let r = run(&mut m, task, &labels, &test, Some("de"), &opts(8));
    assert_eq!(r.primary, None);
    assert!(r.metrics.is_empty());
    assert_eq!(r.predictions.len(), test.len());

    let panx = lookup("panx").expect("panx");
    let mut m = model_for(panx, 7, 5);
    let test = read_split(panx, &xtreme(), Split::Test, Some("de")).expect("panx test-de");
    let r = run(&mut m, panx, &names(PANX_TAGS), &test, Some("de"), &opts(8));
    assert_eq!((r.primary, r.metrics.is_empty()), (None, true));
    let Predictions::Tags(tags) = &r.predictions else { panic!("tags") };
    let Examples::Tagging(v) = &test else { panic!("tagging") };
    assert_eq!(tags.iter().map(Vec::len).collect::<Vec<_>>(), v.iter().map(|e| e.words.len()).collect::<Vec<_>>());

    let xquad = lookup("xquad").expect("xquad");
    let mut m = model_for(xquad, 0, 5);
    let test = read_split(xquad, &xtreme(), Split::Test, Some("de")).expect("xquad de");
    let r = run(&mut m, xquad, &[], &test, Some("de"), &opts(8));
    assert_eq!((r.primary, r.metrics.is_empty()), (None, true));
    assert_eq!(r.predictions.len(), test.len());

    // Some labelled, some not: an error rather than a score over part of the split.
    let mixed = Examples::Pair(vec![pair(0, Some(1)), pair(1, None)]);
    let e = eval_err(&mut model_for(task, 3, 5), task, &labels, &mixed, None, &opts(8)).to_string();
    assert!(e.contains("1 of 2 examples have labels"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Tagging.

#[test]
fn forced_panx_tag_gives_hand_counted_seqeval_scores() {
    let task = lookup("panx").expect("panx");
    let tags = names(PANX_TAGS);
    let (b_loc, b_per, i_per, o) = (0, 2, 5, 6);
    let ex = Examples::Tagging(vec![
        tagged("s1", &["Anna", "lebt", "in", "Berlin"], Some(&[b_per, o, o, b_loc])),
        tagged("s2", &["Max", "Mustermann", "arbeitet"], Some(&[b_per, i_per, o])),
    ]);
    let mut m = model_for(task, 7, 6);
    force(&mut m, "classifier.bias", 7, b_per);
    let r = run(&mut m, task, &tags, &ex, Some("de"), &opts(4));
    let want: Vec<Vec<String>> = vec![vec!["B-PER".into(); 4], vec!["B-PER".into(); 3]];
    assert_eq!(r.predictions, Predictions::Tags(want));
    // Gold chunks PER(Anna), LOC(Berlin), PER(Max Mustermann); predicted: 7 single-word PERs,
    // of which PER(Anna) is right. P = 1/7, R = 1/3, F1 = 2PR/(P+R) = 1/5.
    close(metric(&r, "precision"), 100.0 / 7.0, "precision");
    close(metric(&r, "recall"), 100.0 / 3.0, "recall");
    close(metric(&r, "f1"), 20.0, "f1");
    close(r.primary.expect("labelled"), 20.0, "primary");
    close(metric(&r, "acc"), 200.0 / 7.0, "word accuracy");
    // All `O`: nothing predicted, F1 0.
    force(&mut m, "classifier.bias", 7, o);
    let r = run(&mut m, task, &tags, &ex, Some("de"), &opts(4));
    close(r.primary.expect("labelled"), 0.0, "f1 of all-O");
    close(metric(&r, "acc"), 300.0 / 7.0, "word accuracy of all-O");
}

#[test]
fn split_sentences_are_stitched_back_one_tag_per_word() {
    let task = lookup("udpos").expect("udpos");
    let tags = names(UPOS_TAGS);
    let noun = UPOS_TAGS.iter().position(|t| *t == "NOUN").expect("NOUN");
    let words: Vec<String> = (0..40).map(|i| format!("Wort{i}")).collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let gold: Vec<usize> = (0..40).map(|i| if i % 4 == 0 { noun } else { 0 }).collect();
    let ex = Examples::Tagging(vec![tagged("long", &w, Some(&gold)), tagged("short", &["Haus"], Some(&[noun]))]);
    let mut m = model_for(task, tags.len(), 7);
    force(&mut m, "classifier.bias", tags.len(), noun);
    // 12 tokens per segment: the 40-word sentence is split into several segments.
    let o = EvalOptions::new(3, 12);
    let r = run(&mut m, task, &tags, &ex, Some("en"), &o);
    let Predictions::Tags(p) = &r.predictions else { panic!("tags") };
    assert_eq!(p.iter().map(Vec::len).collect::<Vec<_>>(), vec![40, 1]);
    assert!(p.iter().flatten().all(|t| t == "NOUN"));
    // Gold: NOUN, ADJ ADJ ADJ, NOUN, ... (10 NOUN and 10 ADJ chunks), then NOUN (Haus);
    // predicted: one NOUN chunk per sentence, of which NOUN(Haus) is right. P = 1/2, R = 1/21,
    // F1 = 2/23. Right words: 10 + 1 of 41.
    close(metric(&r, "acc"), 1100.0 / 41.0, "word accuracy");
    close(metric(&r, "precision"), 50.0, "precision");
    close(metric(&r, "recall"), 100.0 / 21.0, "recall");
    close(r.primary.expect("labelled"), 200.0 / 23.0, "f1");
}

#[test]
fn ccg_scores_word_accuracy() {
    let task = lookup("ccg").expect("ccg");
    let tags = names(&["N", "NP", "S[dcl]", "(S\\NP)/NP", "."]);
    let ex = Examples::Tagging(vec![
        tagged("c1", &["Pierre", "sleeps", "."], Some(&[1, 2, 4])),
        tagged("c2", &["dogs", "chase", "cats", "."], Some(&[1, 3, 1, 4])),
    ]);
    let mut m = model_for(task, 5, 8);
    force(&mut m, "classifier.bias", 5, 1);
    let r = run(&mut m, task, &tags, &ex, None, &opts(2));
    close(r.primary.expect("labelled"), 300.0 / 7.0, "3 of 7 words are NP");
    assert!(!r.metrics.contains_key("f1"), "CCG is scored by accuracy only");
}

// ---------------------------------------------------------------------------------------------
// Span QA.

fn qa(id: &str, question: &str, context: &str, answer: Option<(&str, usize)>) -> SpanExample {
    SpanExample {
        id: id.into(),
        title: String::new(),
        question: question.into(),
        context: context.into(),
        answers: answer.map(|(text, start_char)| vec![Answer { text: text.into(), start_char }]),
        is_impossible: false,
    }
}

#[test]
fn one_word_contexts_answer_that_word() {
    let task = lookup("squad_v1").expect("squad_v1");
    let mut m = model_for(task, 0, 9);
    // Whatever the logits, the only span a one-word context has is that word (the windows
    // are shorter than the 20 candidates per side, so a valid one is always among them).
    let ex = Examples::Span(vec![
        qa("q1", "Wann?", "1936", Some(("1936", 0))),
        qa("q2", "Wo?", "Berlin", Some(("Berlin", 0))),
        qa("q3", "Welche Stadt?", "Hamburg", Some(("München", 0))),
        qa("q4", "Wer?", "Anna", Some(("Anna", 0))),
    ]);
    let r = run(&mut m, task, &[], &ex, None, &opts(3));
    let want: Vec<(String, String)> = [("q1", "1936"), ("q2", "Berlin"), ("q3", "Hamburg"), ("q4", "Anna")]
        .map(|(a, b)| (a.into(), b.into()))
        .to_vec();
    assert_eq!(r.predictions, Predictions::Answers(want));
    close(metric(&r, "em"), 75.0, "em");
    close(metric(&r, "f1"), 75.0, "f1");
    close(r.primary.expect("labelled"), 75.0, "primary is F1");
}

/// Evaluates a labelled QA split, writes its predictions and re-scores them with `xlt score`
/// against the file they were read from.
fn qa_round_trip(task_name: &str, layout: &Layout, split: Split, lang: &str, gold: &Path, score_as: Task) {
    let task = lookup(task_name).expect("task");
    let ex = read_split(task, layout, split, Some(lang)).expect("split");
    let Examples::Span(v) = &ex else { panic!("span") };
    for seed in 0..3 {
        let mut m = model_for(task, 0, seed);
        perturb(&mut m, seed);
        let r = run(&mut m, task, &[], &ex, Some(lang), &opts(2));
        let Predictions::Answers(answers) = &r.predictions else { panic!("answers") };
        assert_eq!(answers.len(), v.len());
        for ((id, text), e) in answers.iter().zip(v) {
            assert_eq!(id, &e.id);
            assert!(e.context.contains(text.as_str()), "{id}: {text:?} not in the context");
        }
        let dir = tmp();
        let pred = dir.path().join(format!("{task_name}/test-{lang}.json"));
        write_predictions(&pred, &r.predictions).expect("write");
        let s = score_task(score_as, gold, &pred, Some(lang)).expect("score");
        let get = |k: &str| s.metrics.iter().find(|(n, _)| *n == k).map(|(_, v)| *v).expect(k);
        close(get("exact_match"), metric(&r, "em"), "em re-scored");
        close(get("f1"), metric(&r, "f1"), "f1 re-scored");
        assert_eq!(s.counts.iter().find(|(n, _)| *n == "missing").map(|(_, c)| *c), Some(0));
    }
}

#[test]
fn qa_predictions_rescore_to_the_returned_numbers() {
    let root = fixtures().join("tasks");
    qa_round_trip("xquad", &jiant(), Split::Val, "de", &root.join("jiant/data/xquad_de/xquad.json"), Task::Xquad);
    let mlqa_dev = root.join("xtreme/mlqa/MLQA_V1/dev/dev-context-de-question-de.json");
    qa_round_trip("mlqa", &xtreme(), Split::Val, "de", &mlqa_dev, Task::Mlqa);
}

#[test]
fn mlqa_needs_its_language_and_squad_v2_is_unsupported() {
    let mlqa = lookup("mlqa").expect("mlqa");
    let ex = read_split(mlqa, &xtreme(), Split::Val, Some("de")).expect("mlqa dev");
    let e = eval_err(&mut model_for(mlqa, 0, 1), mlqa, &[], &ex, None, &opts(2)).to_string();
    assert!(e.contains("language"), "{e}");
    let e = eval_err(&mut model_for(mlqa, 0, 1), mlqa, &[], &ex, Some("xx"), &opts(2)).to_string();
    assert!(e.contains("xx"), "{e}");

    let v2 = lookup("squad_v2").expect("squad_v2");
    let ex = read_split(v2, &jiant(), Split::Val, None).expect("squad v2 dev");
    let e = eval_err(&mut model_for(v2, 0, 1), v2, &[], &ex, None, &opts(2));
    assert!(matches!(e, xlt::Error::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("no-answer"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Prediction files and `xlt score`.

#[test]
fn classification_predictions_rescore_to_the_returned_accuracy() {
    let task = lookup("xnli").expect("xnli");
    let labels = names(task.labels);
    let mut m = model_for(task, 3, 10);
    force(&mut m, "classifier.out_proj.bias", 3, 2);
    let dir = tmp();
    // The XTREME fixture: neutral, contradiction → 50 with everything neutral.
    let dev = read_split(task, &xtreme(), Split::Val, Some("de")).expect("dev-de");
    let r = run(&mut m, task, &labels, &dev, Some("de"), &opts(2));
    close(r.primary.expect("labelled"), 50.0, "acc");
    let pred = dir.path().join("xnli/test-de.tsv");
    write_predictions(&pred, &r.predictions).expect("write");
    assert_eq!(std::fs::read_to_string(&pred).expect("read"), "neutral\nneutral\n");
    let gold = fixtures().join("tasks/xtreme/xnli/dev-de.tsv");
    let s = score_task(Task::Xnli, &gold, &pred, None).expect("score");
    assert_eq!(s.metrics, vec![("accuracy", 50.0)]);
    // A larger hand-made split: gold written in the XTREME layout, a model whose predictions vary.
    perturb(&mut m, 10);
    set(&mut m, "classifier.out_proj.bias", &[0.0; 3]);
    let gold_ids: Vec<usize> = (0..12).map(|i| (i * 5) % 3).collect();
    let ex = pairs(&gold_ids);
    let r = run(&mut m, task, &labels, &ex, None, &opts(5));
    let Examples::Pair(v) = &ex else { unreachable!() };
    let gold_text: String = v.iter().map(|e| format!("{}\t{}\t{}\n", e.a, e.b, labels[e.label.unwrap_or(0)])).collect();
    let gold = dir.path().join("dev-xx.tsv");
    std::fs::write(&gold, gold_text).expect("gold");
    write_predictions(&pred, &r.predictions).expect("rewrite");
    let s = score_task(Task::Xnli, &gold, &pred, None).expect("score");
    close(s.metrics[0].1, metric(&r, "acc"), "re-scored accuracy");
}

#[test]
fn tagging_predictions_rescore_to_the_returned_f1() {
    for (name, lang, score_as) in [("panx", "de", Task::Panx), ("udpos", "en", Task::Udpos)] {
        let task = lookup(name).expect("task");
        let tags = names(task.labels);
        let dev = read_split(task, &xtreme(), Split::Val, Some(lang)).expect("dev");
        for seed in 0..3 {
            let mut m = model_for(task, tags.len(), seed);
            perturb(&mut m, seed);
            let r = run(&mut m, task, &tags, &dev, Some(lang), &opts(2));
            let dir = tmp();
            let pred = dir.path().join(format!("{name}/test-{lang}.tsv"));
            write_predictions(&pred, &r.predictions).expect("write");
            let gold = fixtures().join(format!("tasks/xtreme/{name}/dev-{lang}.tsv"));
            let s = score_task(score_as, &gold, &pred, None).expect("score");
            let get = |k: &str| s.metrics.iter().find(|(n, _)| *n == k).map(|(_, v)| *v).expect(k);
            close(get("f1"), metric(&r, "f1"), "f1");
            close(get("precision"), metric(&r, "precision"), "precision");
            close(get("recall"), metric(&r, "recall"), "recall");
            if score_as == Task::Udpos {
                close(get("accuracy"), metric(&r, "acc"), "accuracy");
            }
        }
    }
}

#[test]
fn prediction_files_have_the_xtreme_layout() {
    let dir = tmp();
    let p = dir.path().join("a/b/labels.tsv");
    write_predictions(&p, &Predictions::Labels(names(&["0", "1", "1"]))).expect("labels");
    assert_eq!(std::fs::read_to_string(&p).expect("read"), "0\n1\n1\n");
    let p = dir.path().join("tags.tsv");
    let tags = Predictions::Tags(vec![names(&["B-PER", "O"]), names(&["O"]), names(&["B-LOC", "I-LOC", "O"])]);
    write_predictions(&p, &tags).expect("tags");
    assert_eq!(std::fs::read_to_string(&p).expect("read"), "B-PER\nO\n\nO\n\nB-LOC\nI-LOC\nO\n");
    let p = dir.path().join("qa.json");
    let answers = Predictions::Answers(vec![("q1".into(), "in \"Berlin\"".into()), ("q2".into(), String::new())]);
    write_predictions(&p, &answers).expect("answers");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
    assert_eq!(v, serde_json::json!({"q1": "in \"Berlin\"", "q2": ""}));
    // What the layouts cannot hold.
    let bad = [
        Predictions::None,
        Predictions::Labels(names(&["a\tb"])),
        Predictions::Labels(names(&[""])),
        Predictions::Tags(vec![names(&["O"]), vec![]]),
        Predictions::Answers(vec![("q".into(), "a".into()), ("q".into(), "b".into())]),
    ];
    for b in &bad {
        assert!(write_predictions(&dir.path().join("bad"), b).is_err(), "{b:?} should be refused");
    }
    assert!(!dir.path().join("bad").exists(), "nothing is written on error");
}

// ---------------------------------------------------------------------------------------------
// MLM.

fn text_examples() -> Examples {
    let lines = [
        "Der Bodensee liegt zwischen Deutschland, Österreich und der Schweiz.",
        "Die Brücke über die Elbe wurde 1936 fertiggestellt.",
        "Birds sing in the morning.",
        "Ein kurzer Satz.",
        "Wir gehen heute Abend ins Kino, oder bleiben wir zu Hause und lesen ein Buch?",
        "The quick brown fox jumps over the lazy dog.",
    ];
    Examples::Text(
        (0..30).map(|i| TextExample { id: format!("l{i}"), text: lines[i % lines.len()].to_string() }).collect(),
    )
}

#[test]
fn mlm_perplexity_of_a_random_model_is_near_the_vocabulary_size_and_seeded() {
    let task = lookup("mlm").expect("mlm");
    let mut m = model_for(task, 0, 11);
    let ex = text_examples();
    let o = |bs: usize, seed: u64| EvalOptions { mlm_seed: seed, ..opts(bs) };
    let r = run(&mut m, task, &[], &ex, None, &o(4, 1));
    let ppl = metric(&r, "perplexity");
    let v = m.s.cfg.vocab_size as f64;
    assert!(ppl.is_finite() && ppl > 1.0, "perplexity {ppl}");
    assert!(ppl > v / 4.0 && ppl < v * 4.0, "perplexity {ppl} of a random model should be near V = {v}");
    close(r.primary.expect("scored"), -ppl, "primary is minus the perplexity");
    close(metric(&r, "loss").exp(), ppl, "perplexity = exp(mean loss)");
    assert_eq!(r.predictions, Predictions::None);
    assert_eq!(r.examples, 30);
    // Same seed: the same number, whatever the batch size; another seed masks other tokens.
    let again = run(&mut m, task, &[], &ex, None, &o(4, 1));
    assert_eq!(metric(&again, "perplexity").to_bits(), ppl.to_bits());
    for bs in [1, 7, 64] {
        let p = metric(&run(&mut m, task, &[], &ex, None, &o(bs, 1)), "perplexity");
        assert!((p - ppl).abs() < 1e-4 * ppl, "batch size {bs}: {p} vs {ppl}");
    }
    let other = metric(&run(&mut m, task, &[], &ex, None, &o(4, 2)), "perplexity");
    assert_ne!(other.to_bits(), ppl.to_bits());
    assert!(write_predictions(&tmp().path().join("mlm.txt"), &r.predictions).is_err());
}

#[test]
fn mlm_reads_the_jiant_fixture() {
    let task = lookup("mlm").expect("mlm");
    let ex = read_split(task, &jiant(), Split::Train, None).expect("mlm train");
    let r = run(&mut model_for(task, 0, 12), task, &[], &ex, None, &opts(2));
    assert_eq!(r.examples, ex.len());
    if let Some(p) = r.primary {
        assert!(p < -1.0, "minus a perplexity above 1: {p}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad calls.

#[test]
fn bad_calls_are_errors() {
    let xnli = lookup("xnli").expect("xnli");
    let labels = names(xnli.labels);
    let ex = pairs(&[0, 1]);
    let mut m = model_for(xnli, 3, 13);
    let msg = |e: xlt::Error| e.to_string();
    assert!(msg(eval_err(&mut m, xnli, &labels, &ex, None, &opts(0))).contains("batch size"));
    assert!(msg(eval_err(&mut m, xnli, &labels[..2], &ex, None, &opts(2))).contains("2 label names"));
    let o = EvalOptions { limit: Some(0), ..opts(2) };
    assert!(msg(eval_err(&mut m, xnli, &labels, &ex, None, &o)).contains("no examples"));
    // Examples, task and head of different families.
    let tagging = Examples::Tagging(vec![tagged("t", &["a"], Some(&[0]))]);
    assert!(msg(eval_err(&mut m, xnli, &labels, &tagging, None, &opts(2))).contains("must agree"));
    let panx = lookup("panx").expect("panx");
    assert!(msg(eval_err(&mut m, panx, &names(PANX_TAGS), &tagging, None, &opts(2))).contains("must agree"));
    // A gold label outside the head's labels.
    let e = msg(eval_err(&mut m, xnli, &labels, &pairs(&[0, 3]), None, &opts(2)));
    assert!(e.contains("label 3"), "{e}");
    // No head 1; retrieval is not evaluated by a head.
    let e = evaluate(&mut m, 1, &tokenizer(), xnli, &labels, &ex, None, &opts(2)).expect_err("no head 1");
    assert!(e.to_string().contains("no head 1"), "{e}");
    let tatoeba = lookup("tatoeba").expect("tatoeba");
    let r = read_split(tatoeba, &xtreme(), Split::Test, Some("de")).expect("tatoeba");
    assert!(msg(eval_err(&mut m, tatoeba, &[], &r, None, &opts(2))).contains("retrieval"));
    // The model still evaluates after the errors.
    assert!(run(&mut m, xnli, &labels, &ex, None, &opts(2)).primary.is_some());
    assert_eq!(m.s.specs[0].kind, Kind::Classification);
}
