//! BUCC 2018 and Tatoeba straight from an encoder's sentence embeddings, with no training: the
//! retrieval step of `xlt xtreme`.
//!
//! Both tasks embed every sentence as the attention-masked mean (special tokens included) of
//! one hidden state, as jiant's `EmbeddingModel` and XTREME's 2020 `extract_embeddings` do; the
//! layer defaults to [`default_retrieval_layer`] (`hidden_states[14]` of a 24-layer model, jiant's
//! `retrieval_layer`). The encoder is loaded once per call and serves every language.
//!
//! - BUCC ([`evaluate_bucc`]): per language, margin mining on dev and on test
//!   ([`bucc::mine_pairs`], XTREME's settings: ratio margin, k = 4, `max` retrieval, sentences
//!   whose text occurs under several ids dropped), the threshold tuned on the dev gold and
//!   applied to test ([`bucc::tune_and_evaluate`]). Predictions go to
//!   `<out>/bucc2018/test-<lang>.tsv` (and the dev ones to `dev-<lang>.tsv`), one
//!   `<lang-id>\t<en-id>` pair per line, the layout `xlt score` and XTREME's `evaluate.py` read.
//! - Tatoeba ([`evaluate_tatoeba`]): the direction is en→xx, as in XTREME's
//!   `similarity_search`: each (sorted) English sentence queries the other language's
//!   sentences by cosine, and `<out>/tatoeba/test-<lang>.tsv` holds, for English line j, the
//!   index of the retrieved non-English line, one per line. Accuracy needs the gold alignment:
//!   jiant's layout carries it (`labels_path`); in XTREME's layout, where the download keeps
//!   none, a jiant-style `tatoeba/<lang>-en.labels` file (one index per English line) next to
//!   the sentence files is read when present.

use crate::embed::{Embedder, Pool};
use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::metrics::bucc::{self, Duplicates, MineOptions, Pair, Prf, ScoredPair, Side};
use crate::metrics::tatoeba;
use crate::model::heads::default_retrieval_layer;
use crate::tasks::retrieval::read_tatoeba;
use crate::tasks::{expected_files, lookup, read_split, Gold, Layout, RetrievalSet, Sentence, Split, TaskSpec};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// How sentences are embedded for retrieval.
#[derive(Clone, Debug)]
pub struct RetrievalOptions {
    /// Index into HF hidden_states (0 = embedding output); `None` = [`default_retrieval_layer`].
    pub layer: Option<usize>,
    /// Sentences per batch (sorted by length, padded per batch).
    pub batch_size: usize,
    /// Maximum tokens per sentence, special tokens included (capped at the model's positions);
    /// longer sentences are truncated and counted in [`LanguageScore::extra`].
    pub max_seq_len: usize,
    /// Where the encoder runs.
    pub device: crate::device::Device,
}

impl Default for RetrievalOptions {
    /// The default layer, batches of 32, 512 tokens (XTREME's `--max_seq_length`).
    fn default() -> Self {
        RetrievalOptions { layer: None, batch_size: 32, max_seq_len: 512, device: crate::device::Device::Cpu }
    }
}

/// The score of one language of a retrieval task.
#[derive(Clone, Debug, PartialEq)]
pub struct LanguageScore {
    /// Language code (`de`, ...).
    pub lang: String,
    /// The split `primary` was measured on, as the layout names it: `"test"`, or for BUCC the
    /// dev split (`"dev"` in XTREME's layout, `"val"` in jiant's) when the test gold is absent,
    /// as in both downloads. Tatoeba has one set: XTREME's `"test"`, jiant's `"val"`.
    pub split: String,
    /// Percent: BUCC F1, Tatoeba accuracy. `None` for Tatoeba when no gold alignment is found
    /// (the predictions are still written).
    pub primary: Option<f64>,
    /// Whether `primary` was measured on the gold the BUCC threshold was tuned on (no test
    /// gold): optimistic.
    pub optimistic: bool,
    /// Everything else, JSON: the layer and pooling used, precision, recall and threshold
    /// (BUCC), sentence, candidate and prediction counts, truncated sentences, the prediction
    /// file.
    pub extra: Value,
}

/// The encoder with the layer and batching settings of one call.
struct Encoder {
    model: Embedder,
    layer: usize,
    opts: RetrievalOptions,
}

impl Encoder {
    fn load(model_dir: &Path, opts: &RetrievalOptions) -> Result<Self> {
        let model = Embedder::load(model_dir, &opts.device)?;
        let layer = opts.layer.unwrap_or_else(|| default_retrieval_layer(model.cfg().num_layers));
        Ok(Encoder { model, layer, opts: opts.clone() })
    }

    /// Mean-pooled embeddings (n, C) of `sentences`, C, and how many were truncated.
    fn embed(&self, sentences: &[Sentence]) -> Result<(Vec<f32>, usize, usize)> {
        let texts: Vec<String> = sentences.iter().map(|s| s.text.clone()).collect();
        let e = self.model.embed(&texts, self.layer, Pool::Mean, self.opts.batch_size, self.opts.max_seq_len)?;
        Ok((e.data, e.dim, e.truncated))
    }

    /// The JSON fields every score carries.
    fn describe(&self) -> Value {
        json!({ "layer": self.layer, "pool": "mean" })
    }
}

/// Checks the language list: not empty, no language twice.
fn check_languages(task: &str, languages: &[&str]) -> Result<()> {
    if languages.is_empty() {
        return Err(Error::Data(format!("{task}: no languages given")));
    }
    let mut seen = HashSet::new();
    for l in languages {
        if !seen.insert(*l) {
            return Err(Error::Data(format!("{task}: language {l:?} is listed twice")));
        }
    }
    Ok(())
}

/// Creates `<out>/<task>` and returns it.
fn task_dir(out: &Path, task: &str) -> Result<PathBuf> {
    let dir = out.join(task);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// What both retrieval tasks start with: the task (its `languages` checked), the encoder
/// loaded once, and `<out>/<task>/` created.
fn setup(
    name: &str,
    model_dir: &Path,
    languages: &[&str],
    out: &Path,
    opts: &RetrievalOptions,
) -> Result<(&'static TaskSpec, Encoder, PathBuf)> {
    let task = lookup(name)?;
    check_languages(task.name, languages)?;
    for lang in languages {
        task.check_subset(Some(lang))?;
    }
    let enc = Encoder::load(model_dir, opts)?;
    Ok((task, enc, task_dir(out, task.name)?))
}

/// BUCC or Tatoeba, as `task` names ([`evaluate_bucc`], [`evaluate_tatoeba`]).
pub fn evaluate(
    task: &TaskSpec,
    model_dir: &Path,
    layout: &Layout,
    languages: &[&str],
    out: &Path,
    opts: &RetrievalOptions,
) -> Result<Vec<LanguageScore>> {
    match task.name {
        "bucc2018" => evaluate_bucc(model_dir, layout, languages, out, opts),
        "tatoeba" => evaluate_tatoeba(model_dir, layout, languages, out, opts),
        other => Err(Error::Unknown(format!("{other} is not a retrieval task (bucc2018, tatoeba)"))),
    }
}

// ---------------------------------------------------------------------------------------------
// BUCC 2018

/// BUCC 2018 for each of `languages` (`de`, `fr`, `ru`, `zh`) from `layout`: mine dev and test,
/// tune the threshold on the dev gold, apply it to test. The score is the test F1 when the test
/// gold exists, else the dev F1 at the tuned threshold (`split` says which). Writes
/// `<out>/bucc2018/test-<lang>.tsv` and `<out>/bucc2018/dev-<lang>.tsv`, `<lang-id>\t<en-id>`
/// per line, sorted. A language whose files are missing is an error naming the file.
pub fn evaluate_bucc(
    model_dir: &Path,
    layout: &Layout,
    languages: &[&str],
    out: &Path,
    opts: &RetrievalOptions,
) -> Result<Vec<LanguageScore>> {
    let (task, enc, dir) = setup("bucc2018", model_dir, languages, out, opts)?;
    languages.iter().map(|lang| bucc_language(&enc, task, layout, lang, &dir)).collect()
}

/// One BUCC split: its sentences, gold pairs if any, and the mined candidates.
struct Mined {
    set: RetrievalSet,
    gold: Option<HashSet<Pair>>,
    cands: Vec<ScoredPair>,
    truncated: usize,
    /// Ids whose text occurs more than once on their side (dropped from mining, as in XTREME).
    duplicate_ids: usize,
}

fn mine_split(enc: &Encoder, task: &TaskSpec, layout: &Layout, split: Split, lang: &str) -> Result<Mined> {
    let set = read_split(task, layout, split, Some(lang))?.into_retrieval()?;
    let gold = match &set.gold {
        None => None,
        Some(Gold::Pairs(p)) => Some(p.iter().cloned().collect::<HashSet<Pair>>()),
        Some(Gold::Indices(_)) => {
            return Err(Error::Data(format!("bucc2018 {lang} {split}: expected gold id pairs, found indices")))
        }
    };
    let (x, d, tx) = enc.embed(&set.other)?; // (n_other, C)
    let (y, _, ty) = enc.embed(&set.english)?; // (n_en, C)
    let ids = |s: &[Sentence]| s.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    let texts = |s: &[Sentence]| s.iter().map(|s| s.text.clone()).collect::<Vec<_>>();
    let (src_ids, src_texts) = (ids(&set.other), texts(&set.other));
    let (trg_ids, trg_texts) = (ids(&set.english), texts(&set.english));
    let src = Side { ids: &src_ids, texts: &src_texts, emb: &x };
    let trg = Side { ids: &trg_ids, texts: &trg_texts, emb: &y };
    let cands = bucc::mine_pairs(&src, &trg, d, &MineOptions::default(), Duplicates::Drop)?;
    let duplicate_ids = duplicated(&src_texts) + duplicated(&trg_texts);
    Ok(Mined { set, gold, cands, truncated: tx + ty, duplicate_ids })
}

/// How many entries of `texts` share their text with another entry.
fn duplicated(texts: &[String]) -> usize {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for t in texts {
        *count.entry(t.as_str()).or_default() += 1;
    }
    count.values().filter(|&&c| c > 1).sum()
}

/// Writes `pairs` sorted, `src\ttrg` per line.
fn write_pairs(path: &Path, pairs: &HashSet<Pair>) -> Result<()> {
    let mut sorted: Vec<&Pair> = pairs.iter().collect();
    sorted.sort();
    let text: String = sorted.iter().map(|(s, t)| format!("{s}\t{t}\n")).collect();
    atomic_write(path, text.as_bytes())
}

fn prf_json(p: &Prf) -> Value {
    json!({
        "f1": 100.0 * p.f1,
        "precision": 100.0 * p.precision,
        "recall": 100.0 * p.recall,
        "correct": p.n_correct,
        "predicted": p.n_pred,
        "gold": p.n_gold,
    })
}

fn bucc_language(enc: &Encoder, task: &TaskSpec, layout: &Layout, lang: &str, dir: &Path) -> Result<LanguageScore> {
    let dev = mine_split(enc, task, layout, Split::Val, lang)?;
    let dev_gold = dev.gold.as_ref().ok_or_else(|| {
        Error::Data(format!("bucc2018 {lang}: the dev split has no gold pairs; no threshold can be tuned"))
    })?;
    let test = mine_split(enc, task, layout, Split::Test, lang)?;
    let r = bucc::tune_and_evaluate(&dev.cands, dev_gold, &test.cands, test.gold.as_ref())?;
    let dev_pairs = bucc::extract(&dev.cands, r.threshold);
    let test_path = dir.join(format!("test-{lang}.tsv"));
    let dev_path = dir.join(format!("dev-{lang}.tsv"));
    write_pairs(&test_path, &r.test_pairs)?;
    write_pairs(&dev_path, &dev_pairs)?;
    let dev_name = if matches!(layout, Layout::Jiant(_)) { "val" } else { "dev" };
    let (split, scored) = match &r.test {
        Some(t) => ("test", t),
        None => (dev_name, &r.dev),
    };
    let mut extra = enc.describe();
    extra["precision"] = json!(100.0 * scored.precision);
    extra["recall"] = json!(100.0 * scored.recall);
    extra["threshold"] = json!(r.threshold);
    extra["threshold_tuned_on"] = json!(dev_name);
    extra["dev"] = prf_json(&r.dev);
    extra["test"] = r.test.as_ref().map_or(Value::Null, prf_json);
    extra["sentences"] = json!({
        "dev": { lang: dev.set.other.len(), "en": dev.set.english.len() },
        "test": { lang: test.set.other.len(), "en": test.set.english.len() },
    });
    extra["candidates"] = json!({ "dev": dev.cands.len(), "test": test.cands.len() });
    extra["predicted_pairs"] = json!({ "dev": dev_pairs.len(), "test": r.test_pairs.len() });
    extra["duplicate_ids_dropped"] = json!({ "dev": dev.duplicate_ids, "test": test.duplicate_ids });
    extra["truncated"] = json!(dev.truncated + test.truncated);
    extra["predictions"] = json!({ "dev": dev_path, "test": test_path });
    Ok(LanguageScore {
        lang: lang.to_string(),
        split: split.into(),
        primary: Some(100.0 * scored.f1),
        optimistic: r.test.is_none(),
        extra,
    })
}

// ---------------------------------------------------------------------------------------------
// Tatoeba

/// Tatoeba for each of `languages` from `layout`: for each English sentence, the cosine-nearest
/// sentence of the other language (XTREME's en→xx direction), written as its line index to
/// `<out>/tatoeba/test-<lang>.tsv`, one per English line. Accuracy (percent) when the gold
/// alignment is found (jiant's `labels_path`, or `tatoeba/<lang>-en.labels` in XTREME's
/// layout), else `primary` is `None`. A language whose files are missing is an error naming the
/// file.
pub fn evaluate_tatoeba(
    model_dir: &Path,
    layout: &Layout,
    languages: &[&str],
    out: &Path,
    opts: &RetrievalOptions,
) -> Result<Vec<LanguageScore>> {
    let (task, enc, dir) = setup("tatoeba", model_dir, languages, out, opts)?;
    languages.iter().map(|lang| tatoeba_language(&enc, task, layout, lang, &dir)).collect()
}

/// Reads one Tatoeba language and the gold labels file it was read with, if any.
fn read_tatoeba_set(task: &TaskSpec, layout: &Layout, lang: &str) -> Result<(RetrievalSet, Option<PathBuf>)> {
    match layout {
        Layout::Jiant(_) => {
            let set = read_split(task, layout, Split::Val, Some(lang))?.into_retrieval()?;
            let labels =
                if set.gold.is_some() { expected_files(task, layout, Split::Val, Some(lang))?.pop() } else { None };
            Ok((set, labels))
        }
        Layout::Xtreme(_) => {
            let files = expected_files(task, layout, Split::Test, Some(lang))?;
            let [other, english] = files.as_slice() else {
                return Err(Error::Data(format!(
                    "tatoeba {lang}: expected two sentence files in the XTREME layout, found {}",
                    files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
                )));
            };
            // `<lang>-en.en` → `<lang>-en.labels`, jiant's name for the same alignment.
            let labels = Some(english.with_extension("labels")).filter(|p| p.is_file());
            Ok((read_tatoeba(other, english, labels.as_deref())?, labels))
        }
    }
}

fn tatoeba_language(enc: &Encoder, task: &TaskSpec, layout: &Layout, lang: &str, dir: &Path) -> Result<LanguageScore> {
    let (set, labels) = read_tatoeba_set(task, layout, lang)?;
    let (base, d, tb) = enc.embed(&set.other)?; // (n_other, C)
    let (queries, _, tq) = enc.embed(&set.english)?; // (n_en, C)
    let pred = tatoeba::nearest(&queries, &base, d)?; // (n_en,)
    let path = dir.join(format!("test-{lang}.tsv"));
    let text: String = pred.iter().map(|p| format!("{p}\n")).collect();
    atomic_write(&path, text.as_bytes())?;
    let primary = match &set.gold {
        None => None,
        Some(Gold::Indices(gold)) => Some(100.0 * tatoeba::accuracy(&pred, gold)?),
        Some(Gold::Pairs(_)) => {
            return Err(Error::Data(format!("tatoeba {lang}: expected gold indices, found id pairs")))
        }
    };
    let mut extra = enc.describe();
    extra["sentences"] = json!({ lang: set.other.len(), "en": set.english.len() });
    extra["gold"] = labels.map_or(Value::Null, |p| json!(p));
    extra["truncated"] = json!(tb + tq);
    extra["predictions"] = json!(path);
    let split = if matches!(layout, Layout::Jiant(_)) { "val" } else { "test" };
    Ok(LanguageScore { lang: lang.to_string(), split: split.into(), primary, optimistic: false, extra })
}
