//! Evaluation shared by the trainer (dev scores every N steps, early stopping), `xlt eval` and
//! `xlt xtreme`: one task head of a [`TaskModel`] (on either device) run over a split's examples, its
//! predictions, the task's official metric, and the prediction files of XTREME's submission
//! layout that `xlt score` reads back.
//!
//! [`evaluate`] featurises the examples (the first `limit` of them), sorts the features by
//! length, runs them in padded batches without dropout and returns the predictions in input
//! order. The metric is the task's ([`Metric`]); `eval/tasks.rs` holds each family's decoding
//! and scoring. [`write_predictions`] writes one family's predictions: a label per line
//! (classification, multiple choice), a tag per line with a blank line between sentences
//! (tagging), a `{"question id": "answer"}` JSON object (span QA).

pub mod command;
pub mod protocol;
pub mod snapshots;
mod tasks;

use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::model::TaskModel;
use crate::tasks::{Examples, Kind, Metric, TaskSpec};
use crate::tokenize::Tokenizer;
use crate::train::batches::FeatureConfig;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

/// How [`evaluate`] featurises and batches a split.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Features per forward pass (examples for multiple choice, windows for span QA, segments
    /// for tagging).
    pub batch_size: usize,
    /// Featurisation; sequence lengths are capped at the model's position count.
    pub features: FeatureConfig,
    /// Only the first N examples (the trainer's early-stopping subset uses 500); all when None.
    pub limit: Option<usize>,
    /// Seed of the MLM masks: example `i` is masked from `rng::derive(mlm_seed, i)`, so the
    /// perplexity depends neither on the batch size nor on the order of the batches.
    pub mlm_seed: u64,
}

impl EvalOptions {
    /// Every example, `batch_size` features per batch, sequences of at most `max_seq_len`
    /// tokens ([`FeatureConfig::new`]), MLM mask seed 0.
    pub fn new(batch_size: usize, max_seq_len: usize) -> Self {
        EvalOptions { batch_size, features: FeatureConfig::new(max_seq_len), limit: None, mlm_seed: 0 }
    }
}

/// The predictions of one split, in example order.
#[derive(Clone, Debug, PartialEq)]
pub enum Predictions {
    /// One label string per example (classification labels, multiple-choice keys).
    Labels(Vec<String>),
    /// Per sentence, one tag string per word.
    Tags(Vec<Vec<String>>),
    /// (question id, answer text) per question.
    Answers(Vec<(String, String)>),
    /// Nothing to predict (MLM).
    None,
}

impl Predictions {
    /// Number of predicted examples (0 for [`Predictions::None`]).
    pub fn len(&self) -> usize {
        match self {
            Predictions::Labels(v) => v.len(),
            Predictions::Tags(v) => v.len(),
            Predictions::Answers(v) => v.len(),
            Predictions::None => 0,
        }
    }

    /// Whether there is no prediction.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`evaluate`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalResult {
    /// Metric values by name: `acc`, `f1`, `em`, `precision`, `recall` in percent (0–100);
    /// `loss` (mean cross-entropy of the scored targets), `perplexity`. Empty for a split
    /// without labels.
    pub metrics: BTreeMap<String, f64>,
    /// The task's main score in percent (F1 for QA, seqeval F1 for UDPOS / PAN-X, the mean of
    /// accuracy and F1 for QQP, accuracy otherwise); minus the perplexity for MLM. None for a
    /// split without labels.
    pub primary: Option<f64>,
    /// The predictions, in example order.
    pub predictions: Predictions,
    /// Number of examples evaluated (after `limit`).
    pub examples: usize,
}

impl EvalResult {
    /// The score of one language as results tables keep it: the primary score, EM as the
    /// secondary one where there is one, and the split it was measured on; `None` for a split
    /// without labels.
    pub fn lang_score(&self, split: &str) -> Option<crate::report::LangScore> {
        Some(crate::report::LangScore {
            primary: self.primary?,
            secondary: self.metrics.get("em").copied(),
            split: Some(split.to_string()),
            optimistic: false,
        })
    }

    /// A result without scores.
    fn unscored(predictions: Predictions, examples: usize) -> Self {
        EvalResult { metrics: BTreeMap::new(), primary: None, predictions, examples }
    }
}

/// The metrics a head family can be scored with.
fn metric_fits(kind: Kind, metric: Metric) -> bool {
    matches!(
        (kind, metric),
        (Kind::Classification, Metric::Accuracy | Metric::AccuracyAndF1)
            | (Kind::MultipleChoice, Metric::Accuracy)
            | (Kind::Tagging, Metric::SeqevalF1 | Metric::TokenAccuracy)
            | (Kind::SpanQa, Metric::SquadEmF1 | Metric::MlqaEmF1 | Metric::Squad2EmF1)
            | (Kind::MaskedLm, Metric::Perplexity)
    )
}

/// The first `n` examples (borrowed when nothing is cut).
fn first_n(examples: &Examples, n: Option<usize>) -> Result<Cow<'_, Examples>> {
    let Some(n) = n.filter(|&n| n < examples.len()) else {
        return Ok(Cow::Borrowed(examples));
    };
    Ok(Cow::Owned(match examples {
        Examples::Pair(v) => Examples::Pair(v[..n].to_vec()),
        Examples::MultipleChoice(v) => Examples::MultipleChoice(v[..n].to_vec()),
        Examples::Span(v) => Examples::Span(v[..n].to_vec()),
        Examples::Tagging(v) => Examples::Tagging(v[..n].to_vec()),
        Examples::Text(v) => Examples::Text(v[..n].to_vec()),
        Examples::Retrieval(_) => {
            return Err(Error::Usage("retrieval sets are evaluated by crate::xtreme::retrieval".into()))
        }
    }))
}

/// Runs head `head` of `model` over `examples` (one split of `task`, in `lang` when the task
/// has languages) and scores the predictions with `task.metric`.
///
/// `label_names` are the head's class labels, choice keys or tags in id order (one per head
/// output; ignored for span QA and MLM). `lang` selects MLQA's answer normalisation and is
/// required to score MLQA. A split without labels gets predictions, empty metrics and no
/// primary score; a split where only some examples carry labels is an error.
///
/// Errors rather than wrong numbers: a head, task and examples of different families, a label
/// list of the wrong length, a gold label outside it, SQuAD v2.0 (the span decoder has no
/// no-answer score: [`Error::Unsupported`]), retrieval tasks (scored by
/// [`crate::xtreme::retrieval`]), an empty split, a batch size of 0.
pub fn evaluate(
    model: &mut dyn TaskModel,
    head: usize,
    tok: &Tokenizer,
    task: &TaskSpec,
    label_names: &[String],
    examples: &Examples,
    lang: Option<&str>,
    opts: &EvalOptions,
) -> Result<EvalResult> {
    let spec = model.structure().specs.get(head).cloned().ok_or_else(|| {
        Error::Usage(format!("the model has {} heads; there is no head {head}", model.structure().specs.len()))
    })?;
    if opts.batch_size == 0 {
        return Err(Error::Usage("evaluation batch size must be at least 1".into()));
    }
    if task.kind == Kind::Retrieval || examples.kind() == Kind::Retrieval {
        return Err(Error::Usage(format!(
            "{} is a retrieval task: it is evaluated from embeddings (crate::xtreme::retrieval), not by a head",
            task.name
        )));
    }
    if task.metric == Metric::Squad2EmF1 {
        return Err(Error::Unsupported {
            path: task.name.into(),
            msg: "SQuAD v2.0 scoring needs a no-answer score and threshold, which the span decoder \
                  (features::span::best_span) does not produce; evaluate SQuAD v1.1-style tasks only"
                .into(),
        });
    }
    if spec.kind != task.kind || examples.kind() != task.kind {
        return Err(Error::Usage(format!(
            "task {} is {:?}, head `{}` is {:?} and the examples are {:?}; they must agree",
            task.name,
            task.kind,
            spec.name,
            spec.kind,
            examples.kind()
        )));
    }
    if !metric_fits(task.kind, task.metric) {
        return Err(Error::Usage(format!(
            "task {}: a {:?} head cannot be scored with {:?}",
            task.name, task.kind, task.metric
        )));
    }
    let needs_names = matches!(task.kind, Kind::Classification | Kind::MultipleChoice | Kind::Tagging);
    if needs_names && label_names.len() != spec.num_labels {
        return Err(Error::Usage(format!(
            "task {}: head `{}` has {} outputs but {} label names were given",
            task.name,
            spec.name,
            spec.num_labels,
            label_names.len()
        )));
    }
    if tok.vocab_size() > model.structure().cfg.vocab_size {
        return Err(Error::Usage(format!(
            "the tokenizer produces ids up to {} but the model has {} word embeddings",
            tok.vocab_size(),
            model.structure().cfg.vocab_size
        )));
    }
    let examples = first_n(examples, opts.limit)?;
    if examples.is_empty() {
        return Err(Error::Usage(format!("task {}: no examples to evaluate", task.name)));
    }
    let mut features = opts.features.clone();
    let max = model.structure().cfg.max_seq_len();
    features.max_seq_len = features.max_seq_len.min(max);
    features.span.max_seq_len = features.span.max_seq_len.min(max);
    let run = tasks::Run { model, head, tok, task, label_names, features: &features, opts };
    let ex = examples.as_ref();
    match ex {
        Examples::Pair(v) => run.pairs(ex, v),
        Examples::MultipleChoice(v) => run.choices(ex, v),
        Examples::Tagging(v) => run.tagging(ex, v),
        Examples::Span(v) => run.spans(ex, v, lang),
        Examples::Text(v) => run.mlm(ex, v),
        Examples::Retrieval(_) => unreachable!("rejected above"),
    }
}

/// A label or tag that fits on one line of a prediction file.
fn check_field(what: &str, index: usize, s: &str) -> Result<()> {
    if s.trim().is_empty() || s.contains(['\n', '\r', '\t']) {
        return Err(Error::Usage(format!(
            "{what} {index}: {s:?} cannot be written as one tab-free line of a prediction file"
        )));
    }
    Ok(())
}

/// Writes `preds` to `path` in XTREME's submission layout (what `xlt score` reads), creating
/// the parent folder: one label per line for [`Predictions::Labels`]; one tag per line and a
/// blank line between sentences for [`Predictions::Tags`]; a JSON object
/// `{"question id": "answer text"}` for [`Predictions::Answers`]. The file is replaced
/// atomically. Errors: MLM (no predictions), an empty or multi-line label, a sentence without
/// words (the layout cannot hold it), a question id given twice.
pub fn write_predictions(path: &Path, preds: &Predictions) -> Result<()> {
    let text = match preds {
        Predictions::Labels(labels) => {
            let mut out = String::new();
            for (i, l) in labels.iter().enumerate() {
                check_field("prediction", i, l)?;
                out.push_str(l);
                out.push('\n');
            }
            out
        }
        Predictions::Tags(sentences) => {
            let mut out = String::new();
            for (i, tags) in sentences.iter().enumerate() {
                if tags.is_empty() {
                    return Err(Error::Usage(format!(
                        "sentence {i} has no words; the tagging layout (blank line between sentences) cannot hold it"
                    )));
                }
                if i > 0 {
                    out.push('\n');
                }
                for t in tags {
                    check_field(&format!("sentence {i}, tag"), i, t)?;
                    out.push_str(t);
                    out.push('\n');
                }
            }
            out
        }
        Predictions::Answers(answers) => {
            let mut map = serde_json::Map::new();
            for (id, text) in answers {
                if map.insert(id.clone(), serde_json::Value::String(text.clone())).is_some() {
                    return Err(Error::Usage(format!("question id {id:?} is predicted twice")));
                }
            }
            let mut s = serde_json::to_string(&serde_json::Value::Object(map))
                .map_err(|e| Error::encode("QA predictions", e))?;
            s.push('\n');
            s
        }
        Predictions::None => {
            return Err(Error::Usage("MLM has no predictions to write (its score is a perplexity)".into()))
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    atomic_write(path, text.as_bytes())
}

/// One language of a task to evaluate: its language, the name of its split as records say it
/// (`test`, `dev`, jiant's `val`), its examples, and where its predictions go (none: not
/// written).
pub struct LangData {
    /// Language code (or MLM corpus).
    pub lang: String,
    /// The split's name.
    pub split: String,
    /// The examples.
    pub examples: Examples,
    /// The prediction file to write, in XTREME's submission layout.
    pub predictions: Option<std::path::PathBuf>,
}

/// One language's evaluation.
pub struct LangEval {
    /// Language code.
    pub lang: String,
    /// The split's name.
    pub split: String,
    /// Metrics and predictions.
    pub result: EvalResult,
}

/// Evaluates head `head` of `model` on every language of `data` in order ([`evaluate`]) and
/// writes each language's predictions where it asks: the one place `xlt eval`, `xlt xtreme`
/// and `xlt demo` score languages.
pub fn evaluate_languages(
    model: &mut dyn TaskModel,
    head: usize,
    tok: &Tokenizer,
    task: &TaskSpec,
    label_names: &[String],
    data: Vec<LangData>,
    opts: &EvalOptions,
) -> Result<Vec<LangEval>> {
    let mut out = Vec::with_capacity(data.len());
    for d in data {
        let result = evaluate(model, head, tok, task, label_names, &d.examples, Some(&d.lang), opts)?;
        if let Some(path) = &d.predictions {
            write_predictions(path, &result.predictions)?;
        }
        out.push(LangEval { lang: d.lang, split: d.split, result });
    }
    Ok(out)
}

/// The file extension of a task's predictions: `json` for span QA, else `tsv`.
pub fn prediction_ext(kind: Kind) -> &'static str {
    if kind == Kind::SpanQa {
        "json"
    } else {
        "tsv"
    }
}
