//! `xlt score`: a drop-in for the official evaluation scripts. Scores one prediction file
//! against its gold file, or a whole XTREME prediction folder against a gold folder the way
//! XTREME's `evaluate.py` aggregates it; every score is on the 0–100 scale the official
//! scripts print.
//!
//! Input rules (the official scripts are laxer; here bad input is an error naming the file and
//! line, or the question id, never a silently different score):
//! - QA (`squad`, `xquad`, `tydiqa`, `mlqa`): gold in SQuAD JSON (`{"data": [...]}` or the bare
//!   list), predictions `{"id": "answer"}`. A gold question without a prediction scores 0, as
//!   officially, and is counted under `missing`; predicted ids that are not gold questions are
//!   ignored, as officially, and counted under `extra`. Gold answers must lie inside their
//!   context (`answer_start` + length ≤ context length, in characters); ids must be unique.
//! - Tagging (`panx`, `udpos`): one `tag` or `token<TAB>tag` per line (the same column count
//!   throughout a file), a blank line between sentences (the last sentence needs none; repeated
//!   blank lines are one break). Gold and prediction must have the same sentences and the same
//!   number of tags in each; every tag must belong to the task's label set.
//! - Classification: one label per line, or `sentence1<TAB>sentence2<TAB>label` (XTREME
//!   layout); equal line counts; labels from the task's label set. Blank lines are allowed only
//!   at the end of a file.
//! - `bucc2018`: `src_id<TAB>en_id` per line, scored as sets. `tatoeba`: one index per line.

use crate::error::{Error, Result};
use crate::metrics::bucc::{self, Pair};
use crate::metrics::mlqa::MlqaLang;
use crate::metrics::squad::{self, AnswerNorm, QaExample};
use crate::metrics::{Accuracy, Seqeval};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Arguments of `xlt score`: either `task` + `gold` + `pred` (+ `lang` for MLQA), or
/// `xtreme_dir` + `gold_dir`.
#[derive(Debug, Clone, Default)]
pub struct ScoreArgs {
    /// Task name (`xnli`, `pawsx`, `udpos`, `panx`, `xquad`, `mlqa`, `tydiqa`, `squad`,
    /// `bucc2018`, `tatoeba`, or an intermediate classification task).
    pub task: Option<String>,
    /// Gold file.
    pub gold: Option<PathBuf>,
    /// Prediction file.
    pub pred: Option<PathBuf>,
    /// Language code: selects MLQA's normalisation (required for `mlqa`, ignored elsewhere).
    pub lang: Option<String>,
    /// An XTREME prediction folder (`<task>/test-<lang>.{tsv,json}`).
    pub xtreme_dir: Option<PathBuf>,
    /// The gold folder with the same layout as `xtreme_dir`.
    pub gold_dir: Option<PathBuf>,
}

/// Scores what `args` names and returns the one JSON object `xlt score` prints.
///
/// Single-file keys: QA `exact_match`, `f1`, `total`, `missing`, `extra`; tagging `f1`,
/// `precision`, `recall` (+ `accuracy` for `udpos`); classification `accuracy` (+ `f1` of class
/// `1` for `qqp`); `bucc2018` `f1`, `precision`, `recall`; `tatoeba` `accuracy`. Folder mode:
/// `{"overall": {...}, "tasks": {task: {metric: {lang: v}, "avg_<metric>": v, "avg_metric": v}},
/// "skipped": [...]}` (see [`score_xtreme_dir`]).
pub fn run(args: &ScoreArgs) -> Result<Value> {
    match (&args.xtreme_dir, &args.gold_dir) {
        (Some(pred_dir), Some(gold_dir)) => {
            if args.task.is_some() || args.gold.is_some() || args.pred.is_some() {
                return Err(Error::Invalid(
                    "score: --xtreme-dir/--gold-dir score a whole folder; leave out --task, --gold and --pred".into(),
                ));
            }
            score_xtreme_dir(pred_dir, gold_dir)
        }
        (Some(_), None) => Err(Error::Invalid("score: --xtreme-dir needs --gold-dir (the gold folder)".into())),
        (None, Some(_)) => Err(Error::Invalid("score: --gold-dir needs --xtreme-dir (the prediction folder)".into())),
        (None, None) => {
            let (Some(task), Some(gold), Some(pred)) = (&args.task, &args.gold, &args.pred) else {
                return Err(Error::Invalid(
                    "score: give --task, --gold and --pred (or --xtreme-dir and --gold-dir)".into(),
                ));
            };
            let task = Task::parse(task)?;
            Ok(score_task(task, gold, pred, args.lang.as_deref())?.to_json())
        }
    }
}

/// A task `xlt score` knows how to score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Task {
    /// SQuAD v1.1.
    Squad,
    /// XQuAD (SQuAD normalisation).
    Xquad,
    /// TyDiQA-GoldP (SQuAD normalisation).
    Tydiqa,
    /// MLQA (per-language normalisation).
    Mlqa,
    /// PAN-X / WikiANN NER.
    Panx,
    /// Universal Dependencies POS.
    Udpos,
    /// XNLI.
    Xnli,
    /// PAWS-X.
    Pawsx,
    /// MultiNLI.
    Mnli,
    /// SNLI.
    Snli,
    /// Adversarial NLI (labels `c`, `e`, `n`).
    Anli,
    /// Quora Question Pairs.
    Qqp,
    /// HellaSwag.
    Hellaswag,
    /// Cosmos QA.
    Cosmosqa,
    /// CommonsenseQA.
    Commonsenseqa,
    /// BUCC 2018 bitext mining.
    Bucc2018,
    /// Tatoeba retrieval.
    Tatoeba,
}

const NLI_LABELS: &[&str] = &["contradiction", "entailment", "neutral"];
const BINARY_LABELS: &[&str] = &["0", "1"];
const PANX_LABELS: &[&str] = &["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"];
/// The 17 UPOS tags plus the `O` XTREME's label list adds.
const UDPOS_LABELS: &[&str] = &[
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT", "SCONJ",
    "SYM", "VERB", "X", "O",
];

/// The task names [`Task::parse`] accepts.
pub const TASK_NAMES: &[&str] = &[
    "squad",
    "xquad",
    "tydiqa",
    "mlqa",
    "panx",
    "udpos",
    "xnli",
    "pawsx",
    "mnli",
    "snli",
    "adversarial_nli",
    "qqp",
    "hellaswag",
    "cosmosqa",
    "commonsenseqa",
    "bucc2018",
    "tatoeba",
];

impl Task {
    /// From a task name in [`TASK_NAMES`] (also `squad_v1`, `anli`).
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "squad" | "squad_v1" => Task::Squad,
            "xquad" => Task::Xquad,
            "tydiqa" => Task::Tydiqa,
            "mlqa" => Task::Mlqa,
            "panx" => Task::Panx,
            "udpos" => Task::Udpos,
            "xnli" => Task::Xnli,
            "pawsx" => Task::Pawsx,
            "mnli" => Task::Mnli,
            "snli" => Task::Snli,
            "adversarial_nli" | "anli" => Task::Anli,
            "qqp" => Task::Qqp,
            "hellaswag" => Task::Hellaswag,
            "cosmosqa" => Task::Cosmosqa,
            "commonsenseqa" => Task::Commonsenseqa,
            "bucc2018" => Task::Bucc2018,
            "tatoeba" => Task::Tatoeba,
            _ => {
                return Err(Error::Invalid(format!(
                    "score: unknown task {name:?} (expected one of {})",
                    TASK_NAMES.join(", ")
                )))
            }
        })
    }

    /// The canonical name, as in [`TASK_NAMES`].
    pub fn name(self) -> &'static str {
        match self {
            Task::Squad => "squad",
            Task::Xquad => "xquad",
            Task::Tydiqa => "tydiqa",
            Task::Mlqa => "mlqa",
            Task::Panx => "panx",
            Task::Udpos => "udpos",
            Task::Xnli => "xnli",
            Task::Pawsx => "pawsx",
            Task::Mnli => "mnli",
            Task::Snli => "snli",
            Task::Anli => "adversarial_nli",
            Task::Qqp => "qqp",
            Task::Hellaswag => "hellaswag",
            Task::Cosmosqa => "cosmosqa",
            Task::Commonsenseqa => "commonsenseqa",
            Task::Bucc2018 => "bucc2018",
            Task::Tatoeba => "tatoeba",
        }
    }

    /// The label set of a classification or tagging task.
    fn labels(self) -> &'static [&'static str] {
        match self {
            Task::Xnli | Task::Mnli | Task::Snli => NLI_LABELS,
            Task::Anli => &["c", "e", "n"],
            Task::Pawsx | Task::Qqp => BINARY_LABELS,
            Task::Hellaswag | Task::Cosmosqa => &["0", "1", "2", "3"],
            Task::Commonsenseqa => &["A", "B", "C", "D", "E"],
            Task::Panx => PANX_LABELS,
            Task::Udpos => UDPOS_LABELS,
            _ => &[],
        }
    }
}

/// Scores of one gold/prediction pair: metrics on the 0–100 scale and counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    /// (name, value) on the 0–100 scale, averaged over languages in folder mode.
    pub metrics: Vec<(&'static str, f64)>,
    /// (name, count) that are reported but not averaged (QA `total`, `missing`, `extra`).
    pub counts: Vec<(&'static str, usize)>,
}

impl Scores {
    /// The flat JSON object of single-file mode.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.metrics {
            m.insert((*k).into(), json!(v));
        }
        for (k, v) in &self.counts {
            m.insert((*k).into(), json!(v));
        }
        Value::Object(m)
    }
}

/// Scores one prediction file against its gold file. `lang` selects MLQA's normalisation and
/// is required for [`Task::Mlqa`]; other tasks ignore it.
pub fn score_task(task: Task, gold: &Path, pred: &Path, lang: Option<&str>) -> Result<Scores> {
    match task {
        Task::Squad | Task::Xquad | Task::Tydiqa => score_qa(gold, pred, AnswerNorm::Squad),
        Task::Mlqa => {
            let lang = lang.ok_or_else(|| {
                Error::Invalid("score: mlqa needs --lang (ar, de, en, es, hi, vi or zh) for its normalisation".into())
            })?;
            score_qa(gold, pred, AnswerNorm::Mlqa(MlqaLang::parse(lang)?))
        }
        Task::Panx | Task::Udpos => score_tagging(task, gold, pred),
        Task::Bucc2018 => score_bucc(gold, pred),
        Task::Tatoeba => score_tatoeba(gold, pred),
        _ => score_classification(task, gold, pred),
    }
}

// ---------------------------------------------------------------------------------------------
// Line-based files.

/// The lines of a UTF-8 text file without their `\n` / `\r\n` (and without a leading BOM).
fn read_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(&bytes);
    let mut lines = Vec::new();
    let mut parts: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if parts.last().is_some_and(|l| l.is_empty()) {
        parts.pop();
    }
    for (i, raw) in parts.into_iter().enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw)
            .map_err(|e| Error::format(path, format!("line {}: not valid UTF-8 ({e})", i + 1)))?;
        lines.push(line.to_string());
    }
    Ok(lines)
}

/// Lines with their 1-based numbers, trailing blank lines dropped; a blank line elsewhere is an
/// error (`what` names what a line should hold).
fn data_lines(path: &Path, what: &str) -> Result<Vec<(usize, String)>> {
    let mut lines = read_lines(path)?;
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            if l.trim().is_empty() {
                Err(Error::format(path, format!("line {}: blank line, expected {what}", i + 1)))
            } else {
                Ok((i + 1, l))
            }
        })
        .collect()
}

fn check_label(path: &Path, line: usize, label: &str, task: Task) -> Result<()> {
    let labels = task.labels();
    if labels.contains(&label) {
        Ok(())
    } else {
        Err(Error::format(
            path,
            format!("line {line}: unknown label {label:?} for {} (expected one of {})", task.name(), labels.join(", ")),
        ))
    }
}

/// Column count of `line` that must equal `expected` (set by the first data line), or be one of
/// `allowed` on the first line.
fn columns<'a>(
    path: &Path,
    no: usize,
    line: &'a str,
    expected: &mut Option<(usize, usize)>,
    allowed: &[usize],
    layout: &str,
) -> Result<Vec<&'a str>> {
    let cols: Vec<&str> = line.split('\t').collect();
    match *expected {
        None => {
            if !allowed.contains(&cols.len()) {
                return Err(Error::format(
                    path,
                    format!("line {no}: expected {layout}, found {} tab-separated columns", cols.len()),
                ));
            }
            *expected = Some((cols.len(), no));
        }
        Some((n, first)) if n != cols.len() => {
            return Err(Error::format(
                path,
                format!("line {no}: expected {n} tab-separated columns as on line {first}, found {}", cols.len()),
            ));
        }
        Some(_) => {}
    }
    Ok(cols)
}

// ---------------------------------------------------------------------------------------------
// Classification.

/// Labels of a classification file, with their line numbers.
fn read_labels(path: &Path, task: Task) -> Result<Vec<(usize, String)>> {
    let mut expected = None;
    let layout = "`label` or `sentence1<TAB>sentence2<TAB>label`";
    let mut out = Vec::new();
    for (no, line) in data_lines(path, "a label")? {
        let cols = columns(path, no, &line, &mut expected, &[1, 3], layout)?;
        let label = cols[cols.len() - 1].trim();
        check_label(path, no, label, task)?;
        out.push((no, label.to_string()));
    }
    Ok(out)
}

fn score_classification(task: Task, gold_path: &Path, pred_path: &Path) -> Result<Scores> {
    let gold = read_labels(gold_path, task)?;
    let pred = read_labels(pred_path, task)?;
    if gold.is_empty() {
        return Err(Error::format(gold_path, "no gold labels"));
    }
    if gold.len() != pred.len() {
        return Err(Error::format(
            pred_path,
            format!("{} predictions but {} gold labels in {}", pred.len(), gold.len(), gold_path.display()),
        ));
    }
    let g: Vec<&str> = gold.iter().map(|(_, l)| l.as_str()).collect();
    let p: Vec<&str> = pred.iter().map(|(_, l)| l.as_str()).collect();
    let mut acc = Accuracy::new();
    acc.update(&g, &p)?;
    let mut metrics = vec![("accuracy", 100.0 * acc.compute())];
    if task == Task::Qqp {
        metrics.push(("f1", 100.0 * crate::metrics::accuracy::binary_f1(&g, &p, &"1")?));
    }
    Ok(Scores { metrics, counts: Vec::new() })
}

// ---------------------------------------------------------------------------------------------
// Tagging.

/// One sentence of a tag file: the line it starts on and its tags.
struct TagSentence {
    line: usize,
    tags: Vec<String>,
}

/// Sentences of a tag file (`tag` or `token<TAB>tag` lines, blank lines between sentences).
fn read_tags(path: &Path, task: Task) -> Result<Vec<TagSentence>> {
    let mut expected = None;
    let layout = "`tag` or `token<TAB>tag`";
    let mut out: Vec<TagSentence> = Vec::new();
    let mut cur: Option<TagSentence> = None;
    for (i, line) in read_lines(path)?.into_iter().enumerate() {
        let no = i + 1;
        if line.trim().is_empty() {
            out.extend(cur.take());
            continue;
        }
        let cols = columns(path, no, &line, &mut expected, &[1, 2], layout)?;
        let tag = cols[cols.len() - 1].trim();
        if tag.is_empty() {
            return Err(Error::format(path, format!("line {no}: empty tag")));
        }
        check_label(path, no, tag, task)?;
        cur.get_or_insert_with(|| TagSentence { line: no, tags: Vec::new() }).tags.push(tag.to_string());
    }
    out.extend(cur);
    Ok(out)
}

fn score_tagging(task: Task, gold_path: &Path, pred_path: &Path) -> Result<Scores> {
    let gold = read_tags(gold_path, task)?;
    let pred = read_tags(pred_path, task)?;
    if gold.is_empty() {
        return Err(Error::format(gold_path, "no gold sentences"));
    }
    if gold.len() != pred.len() {
        return Err(Error::format(
            pred_path,
            format!("{} sentences but {} gold sentences in {}", pred.len(), gold.len(), gold_path.display()),
        ));
    }
    let mut m = Seqeval::new();
    for (k, (g, p)) in gold.iter().zip(&pred).enumerate() {
        if g.tags.len() != p.tags.len() {
            return Err(Error::format(
                pred_path,
                format!(
                    "line {}: sentence {} has {} tags but gold sentence at {}:{} has {}",
                    p.line,
                    k + 1,
                    p.tags.len(),
                    gold_path.display(),
                    g.line,
                    g.tags.len()
                ),
            ));
        }
        m.update(&g.tags, &p.tags)?;
    }
    let s = m.compute();
    let mut metrics = vec![("f1", 100.0 * s.f1), ("precision", 100.0 * s.precision), ("recall", 100.0 * s.recall)];
    if task == Task::Udpos {
        metrics.push(("accuracy", 100.0 * s.accuracy));
    }
    Ok(Scores { metrics, counts: Vec::new() })
}

// ---------------------------------------------------------------------------------------------
// Retrieval.

/// `src_id<TAB>en_id` pairs.
fn read_pairs(path: &Path) -> Result<HashSet<Pair>> {
    let mut out = HashSet::new();
    for (no, line) in data_lines(path, "`src_id<TAB>en_id`")? {
        let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
        if cols.len() != 2 || cols.iter().any(|c| c.is_empty()) {
            return Err(Error::format(
                path,
                format!("line {no}: expected `src_id<TAB>en_id`, found {} tab-separated columns: {line:?}", cols.len()),
            ));
        }
        out.insert((cols[0].to_string(), cols[1].to_string()));
    }
    Ok(out)
}

fn score_bucc(gold_path: &Path, pred_path: &Path) -> Result<Scores> {
    let gold = read_pairs(gold_path)?;
    if gold.is_empty() {
        return Err(Error::format(gold_path, "no gold pairs"));
    }
    let pred = read_pairs(pred_path)?;
    let s = bucc::prf(&pred, &gold);
    Ok(Scores {
        metrics: vec![("f1", 100.0 * s.f1), ("precision", 100.0 * s.precision), ("recall", 100.0 * s.recall)],
        counts: Vec::new(),
    })
}

/// One sentence index per line.
fn read_indices(path: &Path) -> Result<Vec<usize>> {
    data_lines(path, "a sentence index")?
        .into_iter()
        .map(|(no, line)| {
            line.trim().parse::<usize>().map_err(|_| {
                Error::format(path, format!("line {no}: expected a sentence index (integer ≥ 0), found {line:?}"))
            })
        })
        .collect()
}

fn score_tatoeba(gold_path: &Path, pred_path: &Path) -> Result<Scores> {
    let gold = read_indices(gold_path)?;
    let pred = read_indices(pred_path)?;
    if gold.is_empty() {
        return Err(Error::format(gold_path, "no gold indices"));
    }
    if gold.len() != pred.len() {
        return Err(Error::format(
            pred_path,
            format!("{} predictions but {} gold indices in {}", pred.len(), gold.len(), gold_path.display()),
        ));
    }
    let acc = crate::metrics::tatoeba::accuracy(&pred, &gold)?;
    Ok(Scores { metrics: vec![("accuracy", 100.0 * acc)], counts: Vec::new() })
}

// ---------------------------------------------------------------------------------------------
// Question answering.

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(&bytes);
    serde_json::from_slice(bytes).map_err(|e| Error::format(path, format!("invalid JSON: {e}")))
}

fn field<'a>(v: &'a Value, key: &str, at: &str, path: &Path) -> Result<&'a Value> {
    v.get(key).ok_or_else(|| Error::format(path, format!("{at}: missing field {key:?}")))
}

fn array<'a>(v: &'a Value, key: &str, at: &str, path: &Path) -> Result<&'a Vec<Value>> {
    field(v, key, at, path)?.as_array().ok_or_else(|| Error::format(path, format!("{at}: {key:?} should be a list")))
}

fn string<'a>(v: &'a Value, key: &str, at: &str, path: &Path) -> Result<&'a str> {
    field(v, key, at, path)?.as_str().ok_or_else(|| Error::format(path, format!("{at}: {key:?} should be a string")))
}

/// Gold questions of a SQuAD-format file, checked: unique ids, at least one answer each, every
/// answer span inside its context.
fn read_squad_gold(path: &Path) -> Result<Vec<QaExample>> {
    let root = read_json(path)?;
    let articles = match &root {
        Value::Object(_) => array(&root, "data", "top level", path)?,
        Value::Array(a) => a,
        _ => return Err(Error::format(path, "expected a SQuAD-format object with a \"data\" list")),
    };
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (a, article) in articles.iter().enumerate() {
        let at = format!("data[{a}]");
        for (p, para) in array(article, "paragraphs", &at, path)?.iter().enumerate() {
            let at = format!("data[{a}].paragraphs[{p}]");
            let context_chars = string(para, "context", &at, path)?.chars().count();
            for (q, qa) in array(para, "qas", &at, path)?.iter().enumerate() {
                let at = format!("data[{a}].paragraphs[{p}].qas[{q}]");
                let id = string(qa, "id", &at, path)?.to_string();
                let at = format!("question {id:?} ({at})");
                if !ids.insert(id.clone()) {
                    return Err(Error::format(path, format!("{at}: duplicate question id")));
                }
                let mut answers = Vec::new();
                for (k, ans) in array(qa, "answers", &at, path)?.iter().enumerate() {
                    let at = format!("{at}, answer {k}");
                    let text = string(ans, "text", &at, path)?;
                    if let Some(start) = ans.get("answer_start") {
                        let start = start.as_u64().ok_or_else(|| {
                            Error::format(path, format!("{at}: answer_start should be an integer ≥ 0, found {start}"))
                        })?;
                        let len = text.chars().count() as u64;
                        if start + len > context_chars as u64 {
                            return Err(Error::format(
                                path,
                                format!(
                                    "{at}: span [{start}, {}) lies outside its context of {context_chars} characters",
                                    start + len
                                ),
                            ));
                        }
                    }
                    answers.push(text.to_string());
                }
                if answers.is_empty() {
                    return Err(Error::format(path, format!("{at}: no gold answer")));
                }
                out.push(QaExample { id, answers });
            }
        }
    }
    Ok(out)
}

/// `{"id": "answer text"}` predictions.
fn read_qa_predictions(path: &Path) -> Result<HashMap<String, String>> {
    let root = read_json(path)?;
    let Value::Object(map) = root else {
        return Err(Error::format(path, "expected a JSON object {\"question id\": \"answer text\"}"));
    };
    map.into_iter()
        .map(|(id, v)| match v {
            Value::String(s) => Ok((id, s)),
            other => {
                Err(Error::format(path, format!("prediction for question {id:?} should be a string, found {other}")))
            }
        })
        .collect()
}

fn score_qa(gold_path: &Path, pred_path: &Path, norm: AnswerNorm) -> Result<Scores> {
    let gold = read_squad_gold(gold_path)?;
    if gold.is_empty() {
        return Err(Error::format(gold_path, "no gold questions"));
    }
    let pred = read_qa_predictions(pred_path)?;
    let s = squad::evaluate(&gold, &pred, norm)?;
    Ok(Scores {
        metrics: vec![("exact_match", 100.0 * s.exact_match), ("f1", 100.0 * s.f1)],
        counts: vec![("total", s.total), ("missing", s.missing), ("extra", s.extra)],
    })
}

// ---------------------------------------------------------------------------------------------
// A whole XTREME folder.

/// XTREME's tasks and their test languages (`evaluate.py` `TASK2LANGS`).
pub const XTREME_TASKS: [(&str, &[&str]); 9] = [
    ("pawsx", &["de", "en", "es", "fr", "ja", "ko", "zh"]),
    ("xnli", &["ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"]),
    (
        "panx",
        &[
            "af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id", "it",
            "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru", "sw", "ta", "te", "th", "tl", "tr",
            "ur", "vi", "yo", "zh",
        ],
    ),
    (
        "udpos",
        &[
            "af", "ar", "bg", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id", "it", "ja",
            "kk", "ko", "mr", "nl", "pt", "ru", "ta", "te", "th", "tl", "tr", "ur", "vi", "yo", "zh",
        ],
    ),
    ("bucc2018", &["de", "fr", "ru", "zh"]),
    (
        "tatoeba",
        &[
            "af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id", "it", "ja",
            "jv", "ka", "kk", "ko", "ml", "mr", "nl", "pt", "ru", "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "zh",
        ],
    ),
    ("xquad", &["en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi"]),
    ("mlqa", &["en", "es", "de", "ar", "hi", "vi", "zh"]),
    ("tydiqa", &["en", "ar", "bn", "fi", "id", "ko", "ru", "sw", "te"]),
];

/// XTREME's task groups (`evaluate.py` `GROUP2TASK`).
pub const XTREME_GROUPS: [(&str, &[&str]); 4] = [
    ("classification", &["pawsx", "xnli"]),
    ("tagging", &["udpos", "panx"]),
    ("qa", &["xquad", "mlqa", "tydiqa"]),
    ("retrieval", &["bucc2018", "tatoeba"]),
];

/// Scores every XTREME task whose folder exists in both `pred_dir` and `gold_dir`, every
/// language of it (a missing language file is an error), and aggregates as `evaluate.py`:
/// per task `avg_<metric>` = mean over languages and `avg_metric` = (avg EM + avg F1) / 2 for
/// QA, else `avg_f1` if present, else `avg_accuracy`; `overall` has `all_task` (mean
/// `avg_metric` of the 9 tasks, only when all are present) and each group whose tasks are all
/// present. QA tasks also list `total`, `missing` and `extra` per language (not averaged);
/// `udpos` also has `accuracy` / `avg_accuracy`, while its `avg_metric` stays `avg_f1`.
/// `skipped` lists XTREME tasks found in only one of the two folders.
pub fn score_xtreme_dir(pred_dir: &Path, gold_dir: &Path) -> Result<Value> {
    for d in [pred_dir, gold_dir] {
        if !d.is_dir() {
            return Err(Error::format(d, "not a folder (expected <task>/test-<lang>.{tsv,json} inside)"));
        }
    }
    let mut tasks = Map::new();
    let mut avg_metric: HashMap<&str, f64> = HashMap::new();
    let mut skipped = Vec::new();
    for (name, langs) in XTREME_TASKS {
        let (p_has, g_has) = (pred_dir.join(name).is_dir(), gold_dir.join(name).is_dir());
        if !(p_has && g_has) {
            if p_has {
                skipped.push(format!("{name} (no gold folder)"));
            } else if g_has {
                skipped.push(format!("{name} (no prediction folder)"));
            }
            continue;
        }
        let task = Task::parse(name)?;
        let is_qa = matches!(task, Task::Xquad | Task::Mlqa | Task::Tydiqa);
        let suffix = if is_qa { "json" } else { "tsv" };
        let mut metrics: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
        let mut counts: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for lang in langs.iter() {
            let file = format!("test-{lang}.{suffix}");
            let (p, g) = (pred_dir.join(name).join(&file), gold_dir.join(name).join(&file));
            for (f, what) in [(&p, "prediction"), (&g, "gold")] {
                if !f.is_file() {
                    return Err(Error::format(f, format!("missing {what} file for {name} {lang}")));
                }
            }
            let s = score_task(task, &g, &p, Some(lang))?;
            for (m, v) in s.metrics {
                metrics.entry(m).or_default().insert((*lang).into(), json!(v));
                *sums.entry(m).or_default() += v;
            }
            for (c, v) in s.counts {
                counts.entry(c).or_default().insert((*lang).into(), json!(v));
            }
        }
        let mut out = Map::new();
        let mut avg: BTreeMap<String, f64> = BTreeMap::new();
        for (m, per_lang) in metrics {
            avg.insert(format!("avg_{m}"), sums.get(m).copied().unwrap_or(0.0) / langs.len() as f64);
            out.insert(m.into(), Value::Object(per_lang));
        }
        let task_metric = if is_qa {
            let get = |k: &str| avg.get(k).copied().unwrap_or(0.0);
            (get("avg_exact_match") + get("avg_f1")) / 2.0
        } else {
            avg.get("avg_f1").or_else(|| avg.get("avg_accuracy")).copied().unwrap_or(0.0)
        };
        for (k, v) in avg {
            out.insert(k, json!(v));
        }
        out.insert("avg_metric".into(), json!(task_metric));
        for (c, per_lang) in counts {
            out.insert(c.into(), Value::Object(per_lang));
        }
        avg_metric.insert(name, task_metric);
        tasks.insert(name.into(), Value::Object(out));
    }
    if tasks.is_empty() {
        return Err(Error::Invalid(format!(
            "score: no XTREME task folder ({}) is in both {} and {}",
            XTREME_TASKS.map(|(t, _)| t).join(", "),
            pred_dir.display(),
            gold_dir.display()
        )));
    }
    let mut overall = Map::new();
    if XTREME_TASKS.iter().all(|(t, _)| avg_metric.contains_key(t)) {
        let all = XTREME_TASKS.iter().map(|(t, _)| avg_metric[t]).sum::<f64>() / XTREME_TASKS.len() as f64;
        overall.insert("all_task".into(), json!(all));
    }
    for (group, members) in XTREME_GROUPS {
        if members.iter().all(|t| avg_metric.contains_key(t)) {
            let v = members.iter().map(|t| avg_metric[t]).sum::<f64>() / members.len() as f64;
            overall.insert(group.into(), json!(v));
        }
    }
    Ok(json!({ "overall": overall, "tasks": tasks, "skipped": skipped }))
}
