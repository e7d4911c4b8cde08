//! `xlt score`: a drop-in for the official evaluation scripts. Scores one prediction file
//! against its gold file, or a whole XTREME prediction folder against a gold folder the way
//! XTREME's `evaluate.py` aggregates it; every score is on the 0–100 scale the official
//! scripts print.
//!
//! Input rules (the official scripts are laxer; here bad input is an error naming the file and
//! line, or the question id, never a silently different score). Every file may start with a
//! UTF-8 byte-order mark and use `\n` or `\r\n` line endings.
//! - QA (`squad`, `xquad`, `tydiqa`, `mlqa`): gold in SQuAD JSON (`{"data": [...]}` or the bare
//!   list), predictions `{"id": "answer"}`. A gold question without a prediction scores 0, as
//!   officially, and is counted under `missing`; predicted ids that are not gold questions are
//!   ignored, as officially, and counted under `extra`. Gold answers must lie inside their
//!   context (`answer_start` + length ≤ context length, in characters) and have a non-empty
//!   text; ids must be unique.
//! - Tagging (`panx`, `udpos`): one `tag` or `token<TAB>tag` per line (the same column count
//!   throughout a file; jiant's and XTREME's `word<TAB>tag` files), a blank line between
//!   sentences (the last sentence needs none; repeated blank lines are one break). Gold and
//!   prediction must have the same sentences and the same number of tags in each; every tag
//!   must belong to the task's label set.
//! - Classification: predictions one label per line. Gold in any of these layouts, told apart
//!   by content, not by file name:
//!   - one label per line, or `sentence1<TAB>sentence2<TAB>label` (XTREME's `dev-<l>.tsv`);
//!   - raw PAWS-X (jiant's `dev_2k.tsv` / `test_2k.tsv`): line 1 the header
//!     `id<TAB>sentence1<TAB>sentence2<TAB>label`, the label in the 4th column;
//!   - JSON lines (a first non-blank line starting with `{`, without a tab): jiant's
//!     `val.jsonl` / `test.jsonl` of XNLI (`gold_label`), MNLI, SNLI (HF or original format;
//!     rows without a gold label are dropped, as jiant does), ANLI (labels `c`/`e`/`n`), QQP,
//!     HellaSwag, Cosmos QA and CommonsenseQA, read by the training readers. An XNLI file with
//!     rows of several languages needs `--lang` to pick one, as jiant's reader does.
//!
//!   Equal example counts; labels from the task's label set. In line files blank lines are
//!   allowed only at the end.
//! - `bucc2018`: `src_id<TAB>en_id` per line, scored as sets. `tatoeba`: one index per line.
//!
//! A gold file without gold is refused with an error saying so, never scored 0: XTREME's public
//! test files (QA with one `{"answer_start": 0, "text": ""}` per question, classification with
//! `sentence1<TAB>sentence2` only, tagging with words only, found when the first line's single
//! column is not a tag of the task) and unlabelled test splits (JSON rows whose label is absent,
//! null, -1 or empty; raw PAWS-X without labels). A QA gold file where only some answers are
//! empty is an error naming the first such question.

use crate::error::{Error, Result};
use crate::metrics::bucc::{self, Pair};
use crate::metrics::mlqa::MlqaLang;
use crate::metrics::squad::{self, AnswerNorm, QaExample};
use crate::metrics::{Accuracy, Seqeval};
use crate::tasks::classification::{
    read_jsonl_pairs, read_pawsx_raw, JsonPairFields, ANLI_FIELDS, MNLI_FIELDS, QQP_FIELDS, SNLI_HF_FIELDS,
    SNLI_ORIGINAL_FIELDS, XNLI_FIELDS,
};
use crate::tasks::multiple_choice::{read_commonsenseqa, read_cosmosqa, read_hellaswag};
use crate::tasks::read::{json_rows, read_text};
use crate::tasks::Split;
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
    /// Language code: selects MLQA's normalisation (required for `mlqa`) and the rows of one
    /// language in an XNLI JSON-lines gold file; ignored elsewhere.
    pub lang: Option<String>,
    /// An XTREME prediction folder (`<task>/test-<lang>.{tsv,json}`).
    pub xtreme_dir: Option<PathBuf>,
    /// The gold folder with the same layout as `xtreme_dir`.
    pub gold_dir: Option<PathBuf>,
    /// `alignment`: the gold file's indices start at 1 (many published gold sets do).
    pub gold_one_indexed: bool,
}

/// Scores what `args` names and returns the one JSON object `xlt score` prints.
///
/// Single-file keys: QA `exact_match`, `f1`, `total`, `missing`, `extra`; tagging `f1`,
/// `precision`, `recall` (+ `accuracy` for `udpos`); classification `accuracy` (+ `f1` of class
/// `1` for `qqp`); `bucc2018` `f1`, `precision`, `recall`; `tatoeba` `accuracy`; `alignment`
/// `aer`, `precision`, `recall`, `f1` and the link counts ([`crate::align::quality`]). Folder mode:
/// `{"overall": {...}, "tasks": {task: {metric: {lang: v}, "avg_<metric>": v, "avg_metric": v}},
/// "skipped": [...]}` (see [`score_xtreme_dir`]).
pub fn run(args: &ScoreArgs) -> Result<Value> {
    match (&args.xtreme_dir, &args.gold_dir) {
        (Some(pred_dir), Some(gold_dir)) => {
            if args.task.is_some() || args.gold.is_some() || args.pred.is_some() {
                return Err(Error::Setting(
                    "score: --xtreme-dir/--gold-dir score a whole folder; leave out --task, --gold and --pred".into(),
                ));
            }
            score_xtreme_dir(pred_dir, gold_dir)
        }
        (Some(_), None) => Err(Error::Setting("score: --xtreme-dir needs --gold-dir (the gold folder)".into())),
        (None, Some(_)) => Err(Error::Setting("score: --gold-dir needs --xtreme-dir (the prediction folder)".into())),
        (None, None) => {
            let (Some(task), Some(gold), Some(pred)) = (&args.task, &args.gold, &args.pred) else {
                return Err(Error::Setting(
                    "score: give --task, --gold and --pred (or --xtreme-dir and --gold-dir)".into(),
                ));
            };
            if task == "alignment" {
                let s = crate::align::quality::score_files(gold, pred, args.gold_one_indexed)?;
                return serde_json::to_value(&s)
                    .map_err(|e| Error::Encode { what: "scores".into(), msg: e.to_string() });
            }
            if args.gold_one_indexed {
                return Err(Error::Setting("score: --gold-one-indexed is for --task alignment".into()));
            }
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
                return Err(Error::Unknown(format!(
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
/// is required for [`Task::Mlqa`]; for [`Task::Xnli`] it picks the rows of that language in a
/// JSON-lines gold file; other tasks ignore it. A gold file without labels or answers is an
/// error (see the module doc).
pub fn score_task(task: Task, gold: &Path, pred: &Path, lang: Option<&str>) -> Result<Scores> {
    match task {
        Task::Squad | Task::Xquad | Task::Tydiqa => score_qa(gold, pred, AnswerNorm::Squad),
        Task::Mlqa => {
            let lang = lang.ok_or_else(|| {
                Error::Setting("score: mlqa needs --lang (ar, de, en, es, hi, vi or zh) for its normalisation".into())
            })?;
            score_qa(gold, pred, AnswerNorm::Mlqa(MlqaLang::parse(lang)?))
        }
        Task::Panx | Task::Udpos => score_tagging(task, gold, pred),
        Task::Bucc2018 => score_bucc(gold, pred),
        Task::Tatoeba => score_tatoeba(gold, pred),
        _ => score_classification(task, gold, pred, lang),
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

/// Why a gold file cannot be scored: it carries no labels, tags or answers (`what`). `found`
/// says what the file holds instead, `has` what it has (`"words but "`, or empty); the message
/// names the file through [`Error::format`].
fn stripped(path: &Path, found: &str, has: &str, what: &str) -> Error {
    Error::format(
        path,
        format!(
            "{found}: this gold file has {has}no {what} (XTREME's public test files and other unlabelled test \
             splits have them removed); score against a gold file that has them"
        ),
    )
}

/// Labels of a line-based classification file (`label` or `sentence1<TAB>sentence2<TAB>label`
/// per line), with their line numbers. A `gold` file of two columns is XTREME's unlabelled
/// test layout and is refused as such.
fn read_labels(path: &Path, task: Task, gold: bool) -> Result<Vec<(usize, String)>> {
    let mut expected = None;
    let layout = "`label` or `sentence1<TAB>sentence2<TAB>label`";
    let mut out = Vec::new();
    for (no, line) in data_lines(path, "a label")? {
        if gold && expected.is_none() && line.split('\t').count() == 2 {
            return Err(stripped(
                path,
                &format!("line {no}: expected {layout}, found 2 tab-separated columns (sentence1, sentence2)"),
                "",
                "labels",
            ));
        }
        let cols = columns(path, no, &line, &mut expected, &[1, 3], layout)?;
        let label = cols[cols.len() - 1].trim();
        check_label(path, no, label, task)?;
        out.push((no, label.to_string()));
    }
    Ok(out)
}

/// Layout of a classification gold file, told from its content by [`gold_layout`].
#[derive(Clone, Copy)]
enum GoldLayout {
    /// JSON lines (jiant's XNLI, MNLI, SNLI, ANLI, QQP, HellaSwag, Cosmos QA, CommonsenseQA).
    JsonLines,
    /// Raw PAWS-X TSV with the header `id<TAB>sentence1<TAB>sentence2[<TAB>label]` (jiant).
    PawsxRaw,
    /// One label, or `sentence1<TAB>sentence2<TAB>label` (XTREME), per line.
    Lines,
}

/// JSON lines when the first non-blank line starts with `{` and has no tab (a JSON row cannot
/// hold a raw tab inside a string; an XTREME TSV row whose first sentence starts with `{` has
/// one); raw PAWS-X when line 1 is the header `id<TAB>sentence1<TAB>sentence2...`; else lines.
fn gold_layout(text: &str) -> GoldLayout {
    let first_data = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let header: Vec<&str> = text.lines().next().unwrap_or_default().trim().split('\t').collect();
    if first_data.trim_start().starts_with('{') && !first_data.contains('\t') {
        GoldLayout::JsonLines
    } else if header.starts_with(&["id", "sentence1", "sentence2"]) {
        GoldLayout::PawsxRaw
    } else {
        GoldLayout::Lines
    }
}

/// Gold labels of a classification file in any layout of [`GoldLayout`]. `lang` picks the rows
/// of one language in an XNLI JSON-lines file (jiant's reader does the same).
fn read_gold_labels(path: &Path, task: Task, lang: Option<&str>) -> Result<Vec<String>> {
    let text = read_text(path, "gold file")?;
    match gold_layout(&text) {
        GoldLayout::Lines => Ok(read_labels(path, task, true)?.into_iter().map(|(_, l)| l).collect()),
        GoldLayout::PawsxRaw => read_pawsx_gold(path, &text, task),
        GoldLayout::JsonLines => read_jsonl_gold(path, &text, task, lang),
    }
}

/// A raw PAWS-X file (jiant's `dev_2k.tsv` / `test_2k.tsv`): read by the training reader, after
/// refusing a file without labels (no `label` column, or every label empty).
fn read_pawsx_gold(path: &Path, text: &str, task: Task) -> Result<Vec<String>> {
    let labels = task.labels();
    let header_cols = text.lines().next().unwrap_or_default().trim().split('\t').count();
    if header_cols == 3 {
        return Err(stripped(path, "line 1: the header has no `label` column", "", "labels"));
    }
    let rows: Vec<&str> = text.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
    if !rows.is_empty() && rows.iter().all(|l| l.trim().split('\t').nth(3).is_none_or(|x| x.trim().is_empty())) {
        return Err(stripped(path, "every row's `label` column is empty", "", "labels"));
    }
    read_pawsx_raw(path, text, labels)?.into_iter().map(|ex| label_name(path, task, ex.label)).collect()
}

/// A JSON-lines file of one of the intermediate tasks or XNLI, read by the training readers.
/// Every row must carry a label; a file where none does is refused as unlabelled.
fn read_jsonl_gold(path: &Path, text: &str, task: Task, lang: Option<&str>) -> Result<Vec<String>> {
    let labels = task.labels();
    let language = if task == Task::Xnli { xnli_language(path, text, lang)? } else { None };
    let formats: &[JsonPairFields] = match task {
        Task::Xnli => &[XNLI_FIELDS],
        Task::Mnli => &[MNLI_FIELDS],
        Task::Snli => &[SNLI_HF_FIELDS, SNLI_ORIGINAL_FIELDS],
        Task::Anli => &[ANLI_FIELDS],
        Task::Qqp => &[QQP_FIELDS],
        _ => &[],
    };
    // The test split allows rows without a label; the val split names the first such row.
    let read = |split: Split| -> Result<Vec<Option<usize>>> {
        let ids = match task {
            Task::Hellaswag => read_hellaswag(path, text, labels, split)?.into_iter().map(|e| e.label).collect(),
            Task::Cosmosqa => read_cosmosqa(path, text, labels, split)?.into_iter().map(|e| e.label).collect(),
            Task::Commonsenseqa => {
                read_commonsenseqa(path, text, labels, split)?.into_iter().map(|e| e.label).collect()
            }
            _ if !formats.is_empty() => {
                read_jsonl_pairs(path, text, formats, labels, split, language)?.into_iter().map(|e| e.label).collect()
            }
            _ => {
                return Err(Error::format(
                    path,
                    format!(
                        "expected a {} gold file of `label` or `sentence1<TAB>sentence2<TAB>label` lines{}, found \
                         JSON lines",
                        task.name(),
                        if task == Task::Pawsx { " or a raw PAWS-X TSV with a header" } else { "" }
                    ),
                ))
            }
        };
        Ok(ids)
    };
    let ids = read(Split::Test)?;
    if ids.iter().all(Option::is_none) {
        return Err(stripped(path, "no row has a label (all absent, null, -1 or empty)", "", "labels"));
    }
    if ids.iter().any(Option::is_none) {
        read(Split::Val)?;
    }
    ids.into_iter().map(|id| label_name(path, task, id)).collect()
}

/// The label string of a label id from a task reader.
fn label_name(path: &Path, task: Task, id: Option<usize>) -> Result<String> {
    match id.and_then(|i| task.labels().get(i)) {
        Some(l) => Ok((*l).to_string()),
        None => {
            Err(Error::format(path, format!("expected a {} label on every row, found a row without one", task.name())))
        }
    }
}

/// The `language` to keep in an XNLI JSON-lines file: `lang` when given (it must occur), none
/// when every row has the same language (or none), else an error asking for `--lang`.
fn xnli_language<'a>(path: &Path, text: &str, lang: Option<&'a str>) -> Result<Option<&'a str>> {
    let mut seen: Vec<String> = Vec::new();
    for row in json_rows(path, text)? {
        if let Some(Value::String(l)) = row.obj.get("language") {
            if !seen.contains(l) {
                seen.push(l.clone());
            }
        }
    }
    seen.sort();
    match lang {
        _ if seen.is_empty() => Ok(None),
        Some(l) if seen.iter().any(|s| s == l) => Ok(Some(l)),
        Some(l) => Err(Error::format(
            path,
            format!("expected rows with language {l:?}, found only languages {}", seen.join(", ")),
        )),
        None if seen.len() == 1 => Ok(None),
        None => Err(Error::format(
            path,
            format!("rows of {} languages ({}): give --lang to score one of them", seen.len(), seen.join(", ")),
        )),
    }
}

fn score_classification(task: Task, gold_path: &Path, pred_path: &Path, lang: Option<&str>) -> Result<Scores> {
    let gold = read_gold_labels(gold_path, task, lang)?;
    let pred = read_labels(pred_path, task, false)?;
    if gold.is_empty() {
        return Err(Error::format(gold_path, "no gold labels"));
    }
    if gold.len() != pred.len() {
        return Err(Error::format(
            pred_path,
            format!("{} predictions but {} gold labels in {}", pred.len(), gold.len(), gold_path.display()),
        ));
    }
    let g: Vec<&str> = gold.iter().map(String::as_str).collect();
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

/// Sentences of a tag file (`tag` or `token<TAB>tag` lines, blank lines between sentences). A
/// `gold` file whose first line is one column that is not a tag of the task holds words only
/// (XTREME's unlabelled test layout) and is refused as such.
fn read_tags(path: &Path, task: Task, gold: bool) -> Result<Vec<TagSentence>> {
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
        let first = expected.is_none();
        let cols = columns(path, no, &line, &mut expected, &[1, 2], layout)?;
        let tag = cols[cols.len() - 1].trim();
        if gold && first && cols.len() == 1 && !tag.is_empty() && !task.labels().contains(&tag) {
            return Err(stripped(
                path,
                &format!("line {no}: expected {layout}, found the word {tag:?}, which is not a {} tag", task.name()),
                "words but ",
                "tags",
            ));
        }
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
    let gold = read_tags(gold_path, task, true)?;
    let pred = read_tags(pred_path, task, false)?;
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
/// answer span inside its context, no empty answer text. A file whose every answer text is empty
/// is XTREME's stripped test layout (one `{"answer_start": 0, "text": ""}` per question) and is
/// refused as such; an empty answer in a file that has others is an error naming the question.
fn read_squad_gold(path: &Path) -> Result<Vec<QaExample>> {
    let root = read_json(path)?;
    let articles = match &root {
        Value::Object(_) => array(&root, "data", "top level", path)?,
        Value::Array(a) => a,
        _ => return Err(Error::format(path, "expected a SQuAD-format object with a \"data\" list")),
    };
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    let (mut answer_count, mut empty_count) = (0usize, 0usize);
    let mut first_empty: Option<String> = None;
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
                    answer_count += 1;
                    if text.is_empty() {
                        empty_count += 1;
                        first_empty.get_or_insert(at);
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
    if answer_count > 0 && empty_count == answer_count {
        let found = format!("every gold answer text is empty ({} questions)", out.len());
        return Err(stripped(path, &found, "", "answers"));
    }
    if let Some(at) = first_empty {
        return Err(Error::format(
            path,
            format!("{at}: expected a non-empty answer text, found \"\" (other questions have answers)"),
        ));
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
/// `skipped` lists XTREME tasks found in only one of the two folders. Gold files are read as in
/// [`score_task`] with the file's language, so a `test-<lang>.tsv` may also hold jiant's raw
/// PAWS-X or XNLI JSON lines; a gold file without labels or answers is an error naming it.
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
        return Err(Error::Setting(format!(
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
