//! Where each task's files live in the two layouts, and [`read_split`], which reads one split
//! of one task into typed examples.
//!
//! jiant layout (`jiant/scripts/download_data`): `<root>/configs/<run_name>_config.json` names
//! the files (see [`super::jiant`]); the formats per task are those of reference section 1 and
//! 2.x: JSON lines for the HF-derived tasks and XNLI, raw PAWS-X TSVs with a header, `word\ttag`
//! files for UDPOS and PAN-X, SQuAD JSON for the QA tasks, CCG TSV with `tags_to_id.json`,
//! BUCC / Tatoeba sentence files, raw text for MLM.
//!
//! XTREME layout (`google-research/xtreme` `scripts/download_data.sh` + `utils_preprocess.py`),
//! under its `download/` folder:
//! - `xnli/{train-en,dev-<l>,test-<l>}.tsv`, `pawsx/{train-en,dev-<l>,test-<l>}.tsv`:
//!   `s1\ts2\tlabel`, CSV-escaped, test without label. `xnli/train-en.tsv` is MultiNLI's English
//!   train set (from XNLI-MT) and also serves as the `mnli` train split in this layout.
//! - `udpos/{train,dev,test}-<l>.tsv`, `panx/{train,dev,test}-<l>.tsv`: `word\ttag`, blank line
//!   between sentences, test files words only.
//! - `squad/{train,dev}-v1.1.json` (the `squad_v1` train and val splits).
//! - `xquad/xquad.<l>.json`: test only, answers stripped.
//! - `mlqa/MLQA_V1/{dev,test}/{dev,test}-context-<l>-question-<l>.json`: test answers stripped.
//! - `tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.<l>.train.json` (train) and
//!   `tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.<l>.dev.json` (the official dev set, which is
//!   XTREME's test set; answers stripped). XTREME's 2020 scripts wrote `tydiqa.<l>.train.json`
//!   / `tydiqa.<l>.dev.json` instead; those names are accepted when the first are absent.
//! - `bucc2018/<l>-en.{dev,test}.{<l>,en}` and `<l>-en.dev.gold` (BUCC "sample" is dev,
//!   "training" is test; the test gold is deleted).
//! - `tatoeba/<l>-en.{<l>,en}`: test only; the English side is sorted and no gold is kept.
//!
//! The other intermediate tasks (SNLI, ANLI, QQP, SQuAD v2.0, HellaSwag, CCG, Cosmos QA,
//! CommonsenseQA, MLM) have no XTREME layout and are read from the jiant layout only.
//! XTREME's tokenizer-specific `udpos_processed_maxlen128/` and `panx_processed_maxlen128/`
//! folders (split long sentences, `<unk>` words) are not read: featurisation does that work.

use super::classification::{
    read_jsonl_pairs, read_pawsx_raw, read_xtreme_pairs, JsonPairFields, ANLI_FIELDS, MNLI_FIELDS, QQP_FIELDS,
    SNLI_HF_FIELDS, SNLI_ORIGINAL_FIELDS, XNLI_FIELDS,
};
use super::jiant::{load_jiant_config, TaskConfig};
use super::mlm::read_text_lines;
use super::multiple_choice::{read_commonsenseqa, read_cosmosqa, read_hellaswag};
use super::read::read_text;
use super::registry::{lookup, parse_run_name, Kind, Suite, TaskSpec};
use super::retrieval::{read_bucc, read_tatoeba};
use super::span_qa::{read_squad, SquadOptions};
use super::tagging::{read_ccg, read_tags_to_id, read_token_file};
use super::{ChoiceExample, PairExample, RetrievalSet, SpanExample, Split, TaggingExample, TextExample};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Which layout a data folder follows, and its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// jiant's download output (`--output_path`): configs in `<root>/configs/`.
    Jiant(PathBuf),
    /// XTREME's `download/` folder.
    Xtreme(PathBuf),
}

impl Layout {
    /// The jiant config of a task and subset: `<root>/configs/<run_name>_config.json`.
    pub fn jiant_config_path(root: &Path, task: &TaskSpec, subset: Option<&str>) -> PathBuf {
        root.join("configs").join(format!("{}_config.json", task.run_name(subset)))
    }
}

/// The examples of one split, by head family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Examples {
    /// Sentence-pair classification.
    Pair(Vec<PairExample>),
    /// Multiple choice.
    MultipleChoice(Vec<ChoiceExample>),
    /// Extractive QA.
    Span(Vec<SpanExample>),
    /// Word tagging.
    Tagging(Vec<TaggingExample>),
    /// Raw text (MLM).
    Text(Vec<TextExample>),
    /// Two sentence sets and their alignment.
    Retrieval(RetrievalSet),
}

impl Examples {
    /// Number of examples (for retrieval: sentences on both sides).
    pub fn len(&self) -> usize {
        match self {
            Examples::Pair(v) => v.len(),
            Examples::MultipleChoice(v) => v.len(),
            Examples::Span(v) => v.len(),
            Examples::Tagging(v) => v.len(),
            Examples::Text(v) => v.len(),
            Examples::Retrieval(r) => r.other.len() + r.english.len(),
        }
    }

    /// Whether there are no examples (readers never return an empty split).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The head family of these examples.
    pub fn kind(&self) -> Kind {
        match self {
            Examples::Pair(_) => Kind::Classification,
            Examples::MultipleChoice(_) => Kind::MultipleChoice,
            Examples::Span(_) => Kind::SpanQa,
            Examples::Tagging(_) => Kind::Tagging,
            Examples::Text(_) => Kind::MaskedLm,
            Examples::Retrieval(_) => Kind::Retrieval,
        }
    }

    fn wrong(&self, want: &str) -> Error {
        Error::Data(format!("expected {want} examples, found {:?} examples", self.kind()))
    }

    /// The sentence pairs, or an error for another family.
    pub fn into_pairs(self) -> Result<Vec<PairExample>> {
        match self {
            Examples::Pair(v) => Ok(v),
            other => Err(other.wrong("sentence-pair")),
        }
    }

    /// The multiple-choice questions, or an error for another family.
    pub fn into_choices(self) -> Result<Vec<ChoiceExample>> {
        match self {
            Examples::MultipleChoice(v) => Ok(v),
            other => Err(other.wrong("multiple-choice")),
        }
    }

    /// The QA questions, or an error for another family.
    pub fn into_spans(self) -> Result<Vec<SpanExample>> {
        match self {
            Examples::Span(v) => Ok(v),
            other => Err(other.wrong("span QA")),
        }
    }

    /// The tagged sentences, or an error for another family.
    pub fn into_tagging(self) -> Result<Vec<TaggingExample>> {
        match self {
            Examples::Tagging(v) => Ok(v),
            other => Err(other.wrong("tagging")),
        }
    }

    /// The text lines, or an error for another family.
    pub fn into_text(self) -> Result<Vec<TextExample>> {
        match self {
            Examples::Text(v) => Ok(v),
            other => Err(other.wrong("raw text")),
        }
    }

    /// The retrieval set, or an error for another family.
    pub fn into_retrieval(self) -> Result<RetrievalSet> {
        match self {
            Examples::Retrieval(r) => Ok(r),
            other => Err(other.wrong("retrieval")),
        }
    }
}

fn no_split(task: &TaskSpec, split: Split, layout: &str, has: &[Split]) -> Error {
    let has: Vec<&str> = has.iter().map(|s| s.jiant_key()).collect();
    Error::Data(format!(
        "task {} has no {split} split in the {layout} layout (it has: {})",
        task.name,
        if has.is_empty() { "none".to_string() } else { has.join(", ") }
    ))
}

fn not_a_single_task(task: &TaskSpec) -> Error {
    Error::Data(format!("{} is a multi-task mixture of {}; read each member task", task.name, task.members.join(", ")))
}

/// Reads `split` of `task` for `subset` (the language of an XTREME task, the round `r1`..`r3`
/// of `adversarial_nli`, none for the other intermediate tasks, an optional corpus name for
/// `mlm`) from `layout`. A subset the task does not have is an error listing those it has; a
/// missing file is an error naming the expected path.
pub fn read_split(task: &TaskSpec, layout: &Layout, split: Split, subset: Option<&str>) -> Result<Examples> {
    if !task.members.is_empty() {
        return Err(not_a_single_task(task));
    }
    let subset = task.check_subset(subset)?;
    match layout {
        Layout::Jiant(root) => {
            let config = load_jiant_config(&Layout::jiant_config_path(root, task, subset))?;
            check_config_task(task, &config)?;
            read_jiant(task, &config, split, subset)
        }
        Layout::Xtreme(root) => read_xtreme(task, root, split, subset),
    }
}

/// Reads `split` of the task a jiant config describes. The task and subset come from the
/// config's `name` (a jiant run name such as `xnli_de`), else from its `task` and `kwargs`.
pub fn read_config_split(config: &TaskConfig, split: Split) -> Result<Examples> {
    let (task, subset) = task_of_config(config)?;
    read_jiant(task, config, split, subset.as_deref())
}

fn task_of_config(config: &TaskConfig) -> Result<(&'static TaskSpec, Option<String>)> {
    let (task, subset) = match parse_run_name(&config.name) {
        Ok(found) => found,
        Err(_) => {
            let task = match config.task.as_str() {
                "squad" if config.kwarg_bool("version_2_with_negative") == Some(true) => lookup("squad_v2")?,
                "squad" => lookup("squad_v1")?,
                other => lookup(other).map_err(|e| Error::format(&config.config_path, e.to_string()))?,
            };
            let subset = task.check_subset(config.kwarg_str("language"))?.map(str::to_string);
            (task, subset)
        }
    };
    check_config_task(task, config)?;
    Ok((task, subset))
}

fn check_config_task(task: &TaskSpec, config: &TaskConfig) -> Result<()> {
    if config.task != task.jiant_task {
        return Err(Error::format(
            &config.config_path,
            format!("expected `task` {:?} for {}, found {:?}", task.jiant_task, task.name, config.task),
        ));
    }
    Ok(())
}

fn read_file_text(path: &Path, task: &TaskSpec, split: Split, subset: Option<&str>) -> Result<String> {
    read_text(path, &format!("{} {split} file", task.run_name(subset)))
}

/// Reads one split of `task` from the files a jiant config names.
fn read_jiant(task: &TaskSpec, config: &TaskConfig, split: Split, subset: Option<&str>) -> Result<Examples> {
    if !task.members.is_empty() {
        return Err(not_a_single_task(task));
    }
    // The config's own language must agree with the one asked for.
    if let (Some(want), Some(have)) = (subset, config.kwarg_str("language")) {
        if task.suite == Suite::Xtreme && want != have {
            return Err(Error::format(
                &config.config_path,
                format!("expected kwargs.language {want:?} for {}, found {have:?}", task.run_name(subset)),
            ));
        }
    }
    let labels = task.labels;
    match task.name {
        "bucc2018" => {
            let key = split.jiant_key();
            if split == Split::Train {
                return Err(no_split(task, split, "jiant", &[Split::Val, Split::Test]));
            }
            let gold = if split == Split::Val { Some(config.nested_file(key, "labels")?) } else { None };
            return Ok(Examples::Retrieval(read_bucc(
                config.nested_file(key, "other")?,
                config.nested_file(key, "eng")?,
                gold,
            )?));
        }
        "tatoeba" => {
            if split != Split::Val {
                return Err(no_split(task, split, "jiant", &[Split::Val]));
            }
            let labels =
                if config.paths.contains_key("labels_path") { Some(config.file("labels_path")?) } else { None };
            return Ok(Examples::Retrieval(read_tatoeba(config.file("other")?, config.file("eng")?, labels)?));
        }
        "xnli" if split == Split::Train => {
            return Err(Error::Data("task xnli has no train split: XNLI trains on mnli".to_string()))
        }
        _ => {}
    }
    let path = config.split_file(split)?;
    let text = read_file_text(path, task, split, subset)?;
    let pairs = |formats: &[JsonPairFields], language: Option<&str>| {
        read_jsonl_pairs(path, &text, formats, labels, split, language).map(Examples::Pair)
    };
    match task.name {
        "mnli" => pairs(&[MNLI_FIELDS], None),
        "snli" => pairs(&[SNLI_HF_FIELDS, SNLI_ORIGINAL_FIELDS], None),
        "adversarial_nli" => pairs(&[ANLI_FIELDS], None),
        "qqp" => pairs(&[QQP_FIELDS], None),
        "xnli" => {
            let language = subset.or(config.kwarg_str("language"));
            pairs(&[XNLI_FIELDS], language)
        }
        "pawsx" => Ok(Examples::Pair(read_pawsx_raw(path, &text, labels)?)),
        "hellaswag" => Ok(Examples::MultipleChoice(read_hellaswag(path, &text, labels, split)?)),
        "cosmosqa" => Ok(Examples::MultipleChoice(read_cosmosqa(path, &text, labels, split)?)),
        "commonsenseqa" => Ok(Examples::MultipleChoice(read_commonsenseqa(path, &text, labels, split)?)),
        "squad_v1" | "squad_v2" | "xquad" | "mlqa" | "tydiqa" => {
            let version_2 = task.name == "squad_v2" || config.kwarg_bool("version_2_with_negative") == Some(true);
            let tydiqa_language = if task.name == "tydiqa" && split == Split::Train { subset } else { None };
            Ok(Examples::Span(read_squad(path, &text, split, SquadOptions { version_2, tydiqa_language })?))
        }
        "udpos" | "panx" => Ok(Examples::Tagging(read_token_file(path, &text, labels, split)?)),
        "ccg" => {
            let tags_to_id = read_tags_to_id(config.file("tags_to_id")?)?;
            Ok(Examples::Tagging(read_ccg(path, &text, &tags_to_id, split)?))
        }
        "mlm" => Ok(Examples::Text(read_text_lines(path, &text, split)?)),
        other => Err(Error::Data(format!("task {other} has no jiant reader"))),
    }
}

/// The files of one split in XTREME's layout, by role.
enum XtremeFiles {
    One(PathBuf),
    Bucc { other: PathBuf, english: PathBuf, gold: Option<PathBuf> },
    Tatoeba { other: PathBuf, english: PathBuf },
}

impl XtremeFiles {
    fn paths(&self) -> Vec<PathBuf> {
        match self {
            XtremeFiles::One(p) => vec![p.clone()],
            XtremeFiles::Bucc { other, english, gold } => {
                let mut v = vec![other.clone(), english.clone()];
                v.extend(gold.clone());
                v
            }
            XtremeFiles::Tatoeba { other, english } => vec![other.clone(), english.clone()],
        }
    }
}

/// The first of `primary`, `fallback` that exists, else `primary` (so errors name it).
fn either(primary: PathBuf, fallback: PathBuf) -> PathBuf {
    if !primary.exists() && fallback.exists() {
        fallback
    } else {
        primary
    }
}

fn xtreme_files(task: &TaskSpec, root: &Path, split: Split, subset: Option<&str>) -> Result<XtremeFiles> {
    let lang = subset.unwrap_or("en");
    let pre = split.xtreme_prefix();
    let one = |p: PathBuf| Ok(XtremeFiles::One(p));
    match (task.name, split) {
        ("mnli", Split::Train) => one(root.join("xnli/train-en.tsv")),
        ("mnli", _) => Err(no_split(task, split, "XTREME", &[Split::Train])),
        ("squad_v1", Split::Train) => one(root.join("squad/train-v1.1.json")),
        ("squad_v1", Split::Val) => one(root.join("squad/dev-v1.1.json")),
        ("squad_v1", _) => Err(no_split(task, split, "XTREME", &[Split::Train, Split::Val])),
        ("xnli" | "pawsx" | "udpos" | "panx", _) => one(root.join(task.name).join(format!("{pre}-{lang}.tsv"))),
        ("xquad", Split::Test) => one(root.join(format!("xquad/xquad.{lang}.json"))),
        ("xquad", _) => Err(no_split(task, split, "XTREME", &[Split::Test])),
        ("mlqa", Split::Val | Split::Test) => {
            one(root.join(format!("mlqa/MLQA_V1/{pre}/{pre}-context-{lang}-question-{lang}.json")))
        }
        ("mlqa", _) => Err(no_split(task, split, "XTREME", &[Split::Val, Split::Test])),
        ("tydiqa", Split::Train) => {
            let dir = root.join("tydiqa/tydiqa-goldp-v1.1-train");
            one(either(
                dir.join(format!("tydiqa.goldp.{lang}.train.json")),
                dir.join(format!("tydiqa.{lang}.train.json")),
            ))
        }
        ("tydiqa", Split::Test) => {
            let dir = root.join("tydiqa/tydiqa-goldp-v1.1-dev");
            one(either(dir.join(format!("tydiqa.goldp.{lang}.dev.json")), dir.join(format!("tydiqa.{lang}.dev.json"))))
        }
        ("tydiqa", _) => Err(no_split(task, split, "XTREME", &[Split::Train, Split::Test])),
        ("bucc2018", Split::Val | Split::Test) => {
            let base = root.join("bucc2018");
            let gold = base.join(format!("{lang}-en.{pre}.gold"));
            Ok(XtremeFiles::Bucc {
                other: base.join(format!("{lang}-en.{pre}.{lang}")),
                english: base.join(format!("{lang}-en.{pre}.en")),
                // XTREME deletes the test gold; read it only where it is present.
                gold: if split == Split::Val || gold.exists() { Some(gold) } else { None },
            })
        }
        ("bucc2018", _) => Err(no_split(task, split, "XTREME", &[Split::Val, Split::Test])),
        ("tatoeba", Split::Test) => Ok(XtremeFiles::Tatoeba {
            other: root.join(format!("tatoeba/{lang}-en.{lang}")),
            english: root.join(format!("tatoeba/{lang}-en.en")),
        }),
        ("tatoeba", _) => Err(no_split(task, split, "XTREME", &[Split::Test])),
        _ => {
            Err(Error::Data(format!("task {} has no XTREME download layout; read it from the jiant layout", task.name)))
        }
    }
}

fn read_xtreme(task: &TaskSpec, root: &Path, split: Split, subset: Option<&str>) -> Result<Examples> {
    let path = match xtreme_files(task, root, split, subset)? {
        XtremeFiles::Bucc { other, english, gold } => {
            return Ok(Examples::Retrieval(read_bucc(&other, &english, gold.as_deref())?))
        }
        XtremeFiles::Tatoeba { other, english } => {
            return Ok(Examples::Retrieval(read_tatoeba(&other, &english, None)?))
        }
        XtremeFiles::One(p) => p,
    };
    let text = read_file_text(&path, task, split, subset)?;
    match task.kind {
        Kind::Classification => Ok(Examples::Pair(read_xtreme_pairs(&path, &text, task.labels, split)?)),
        Kind::Tagging => Ok(Examples::Tagging(read_token_file(&path, &text, task.labels, split)?)),
        Kind::SpanQa => Ok(Examples::Span(read_squad(&path, &text, split, SquadOptions::default())?)),
        _ => Err(Error::Data(format!("task {} has no XTREME download layout", task.name))),
    }
}

/// The splits `task` should have for `subset` in `layout`: in XTREME's layout, train only for
/// the training language (English), dev and test as each task provides; in jiant's, the
/// phases its download scripts write.
pub fn expected_splits(task: &TaskSpec, layout: &Layout, subset: Option<&str>) -> Vec<Split> {
    use Split::*;
    let en = subset.is_none_or(|s| s == "en");
    let train_if_en = |mut v: Vec<Split>| {
        if en {
            v.insert(0, Train);
        }
        v
    };
    let has_dev = subset.is_none_or(|s| !task.test_only_languages.contains(&s));
    let jiant = matches!(layout, Layout::Jiant(_));
    if !task.members.is_empty() {
        return Vec::new();
    }
    match (task.name, jiant) {
        ("squad_v1", _) | ("squad_v2", true) | ("mlm", true) => vec![Train, Val],
        ("mnli", false) => vec![Train],
        (_, false) if task.suite == Suite::Intermediate => Vec::new(),
        (_, true) if task.suite == Suite::Intermediate => vec![Train, Val, Test],
        ("xnli", true) => vec![Val, Test],
        ("xnli" | "pawsx" | "panx", _) => train_if_en(vec![Val, Test]),
        ("udpos", _) => train_if_en(if has_dev { vec![Val, Test] } else { vec![Test] }),
        ("xquad", true) | ("tatoeba", true) => vec![Val],
        ("xquad", false) | ("tatoeba", false) => vec![Test],
        ("mlqa", _) | ("bucc2018", _) => vec![Val, Test],
        ("tydiqa", true) => train_if_en(vec![Val]),
        ("tydiqa", false) => train_if_en(vec![Test]),
        _ => Vec::new(),
    }
}

/// Whether `split` of `task` for `subset` is in `layout` at all: in XTREME's layout, when the
/// layout has the split and any of its files exists; in jiant's, when the task config exists
/// and names the split. A split that is present must then read cleanly: a partly missing,
/// unreadable or malformed split is an error from [`read_split`] naming the file, never an
/// absent split. A config that exists but cannot be parsed is an error here already.
pub fn split_present(task: &TaskSpec, layout: &Layout, split: Split, subset: Option<&str>) -> Result<bool> {
    if !task.members.is_empty() {
        return Ok(false);
    }
    let subset = task.check_subset(subset)?;
    match layout {
        Layout::Xtreme(root) => match xtreme_files(task, root, split, subset) {
            Ok(files) => Ok(files.paths().iter().any(|p| p.exists())),
            // The layout has no such split (or no such task).
            Err(_) => Ok(false),
        },
        Layout::Jiant(root) => {
            let path = Layout::jiant_config_path(root, task, subset);
            if !path.exists() {
                return Ok(false);
            }
            let config = load_jiant_config(&path)?;
            Ok(match task.name {
                "tatoeba" => split == Split::Val,
                _ => config.has_split(split),
            })
        }
    }
}

/// The files `split` of `task` for `subset` is read from in `layout`. For the jiant layout this
/// is the config followed by the files it names for the split (only the config when it is
/// missing).
pub fn expected_files(task: &TaskSpec, layout: &Layout, split: Split, subset: Option<&str>) -> Result<Vec<PathBuf>> {
    if !task.members.is_empty() {
        return Err(not_a_single_task(task));
    }
    let subset = task.check_subset(subset)?;
    match layout {
        Layout::Xtreme(root) => Ok(xtreme_files(task, root, split, subset)?.paths()),
        Layout::Jiant(root) => {
            let config_path = Layout::jiant_config_path(root, task, subset);
            if !config_path.exists() {
                return Ok(vec![config_path]);
            }
            let config = load_jiant_config(&config_path)?;
            let mut out = vec![config_path];
            match task.name {
                "bucc2018" => {
                    let key = split.jiant_key();
                    for sub in ["other", "eng", "labels"] {
                        if sub != "labels" || split == Split::Val {
                            out.push(config.nested_file(key, sub)?.to_path_buf());
                        }
                    }
                }
                "tatoeba" => {
                    for key in ["other", "eng", "labels_path"] {
                        out.push(config.file(key)?.to_path_buf());
                    }
                }
                name => {
                    out.push(config.split_file(split)?.to_path_buf());
                    if name == "ccg" {
                        out.push(config.file("tags_to_id")?.to_path_buf());
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Every expected file of `task` (all its languages or rounds, each expected split; for the
/// ANLI+ mixture, its members) that is absent from `layout`, each named by its full path. An
/// empty list means the data folder is complete for the task (a task without files in that
/// layout, such as HellaSwag in XTREME's, expects none).
pub fn missing_files(task: &TaskSpec, layout: &Layout) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    if !task.members.is_empty() {
        for member in task.members {
            let (t, subset) = parse_run_name(member)?;
            collect_missing(t, layout, subset.as_deref(), &mut missing)?;
        }
    } else if task.subsets().is_empty() {
        collect_missing(task, layout, None, &mut missing)?;
    } else {
        for s in task.subsets() {
            collect_missing(task, layout, Some(s), &mut missing)?;
        }
    }
    missing.dedup();
    Ok(missing)
}

fn collect_missing(task: &TaskSpec, layout: &Layout, subset: Option<&str>, out: &mut Vec<PathBuf>) -> Result<()> {
    for split in expected_splits(task, layout, subset) {
        for p in expected_files(task, layout, split, subset)? {
            if !p.exists() && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(())
}
