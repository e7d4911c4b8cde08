//! Per-family inference and scoring behind [`super::evaluate`].
//!
//! Every family runs the same loop ([`run_sorted`]): features sorted by length (ties by index),
//! cut into batches of `batch_size`, each collated with dynamic padding and run through the
//! head without dropout; outputs are read back by feature index, so predictions come out in
//! input order whatever the batching.
//! - Classification and multiple choice: argmax over the head's K outputs (the first on ties).
//! - Tagging: argmax per token; [`stitch`] gives each word the prediction at its first
//!   sub-token across the segments of a split sentence, and a word without sub-tokens the
//!   fallback tag (`X` for UDPOS, else `O` when the label set has it, else label 0). seqeval
//!   and the CCG token accuracy are computed over those word tags.
//! - Span QA: each window's start/end logits are kept over its own tokens (not the batch's
//!   padding, so the top-20 candidates do not depend on the batch), then [`decode`] picks each
//!   question's best span over its windows (`n_best` 20, at most 30 sub-tokens); a question
//!   without a valid span answers `""`. EM/F1 are the official SQuAD v1.1 (or MLQA) ones.
//! - MLM: example `i` is masked on its own from `derive(mlm_seed, i)` and the masked rows are
//!   stacked into padded batches, so the mean loss over masked tokens, and the perplexity
//!   `exp(mean loss)`, do not depend on the batch size.

use super::{EvalOptions, EvalResult, Predictions};
use crate::error::{Error, Result};
use crate::features::span::{decode, MAX_ANSWER_LEN, N_BEST};
use crate::features::tagging::stitch;
use crate::metrics::accuracy::{binary_f1, Accuracy};
use crate::metrics::mlqa::MlqaLang;
use crate::metrics::squad::{self, AnswerNorm, QaExample};
use crate::metrics::Seqeval;
use crate::model::batch::{Batch, Targets, TaskBatch, IGNORE_INDEX};
use crate::model::dropout::DropoutCfg;
use crate::model::TaskModel;
use crate::rng::{derive, Rng};
use crate::tasks::{ChoiceExample, Examples, Metric, PairExample, SpanExample, TaggingExample, TaskSpec, TextExample};
use crate::tokenize::Tokenizer;
use crate::train::batches::{FeatureConfig, Features};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// One evaluation: the model and head, and what the examples are featurised and scored with.
pub(super) struct Run<'a> {
    /// The model.
    pub model: &'a mut dyn TaskModel,
    /// Index of the head to run.
    pub head: usize,
    /// Tokenizer of the model.
    pub tok: &'a Tokenizer,
    /// The task (its metric and name).
    pub task: &'a TaskSpec,
    /// Label strings by head output.
    pub label_names: &'a [String],
    /// Featurisation, lengths already capped at the model's.
    pub features: &'a FeatureConfig,
    /// Batch size, MLM seed.
    pub opts: &'a EvalOptions,
}

/// Index of the largest value, the first one on ties (a NaN never wins).
pub(super) fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best })
}

/// Mean of per-batch mean losses weighted by the number of targets each averaged.
#[derive(Default)]
struct MeanLoss {
    sum: f64,
    count: usize,
}

impl MeanLoss {
    fn add(&mut self, loss: f32, count: usize) {
        self.sum += loss as f64 * count as f64;
        self.count += count;
    }

    fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// Whether a split is labelled: all `labelled` of `n` examples, or none; an error otherwise.
fn all_or_none(task: &TaskSpec, labelled: usize, n: usize) -> Result<bool> {
    match labelled {
        0 => Ok(false),
        l if l == n => Ok(true),
        l => Err(Error::Data(format!(
            "task {}: {l} of {n} examples have labels; a split is scored only when all of them do",
            task.name
        ))),
    }
}

/// Runs `head` over every feature, shortest first, `batch_size` at a time: `collate` builds
/// the batch of the given feature indices, `read` gets the model after the forward, the
/// indices, the batch and the forward's mean loss.
fn run_sorted(
    model: &mut dyn TaskModel,
    head: usize,
    feats: &Features,
    batch_size: usize,
    mut collate: impl FnMut(&[usize]) -> Result<TaskBatch>,
    mut read: impl FnMut(&dyn TaskModel, &[usize], &TaskBatch, f32) -> Result<()>,
) -> Result<()> {
    let mut order: Vec<usize> = (0..feats.len()).collect();
    order.sort_by_key(|&i| (feats.seq_len(i), i));
    for chunk in order.chunks(batch_size) {
        let tb = collate(chunk)?;
        let loss = model.forward(head, &tb, DropoutCfg::OFF)?;
        read(&*model, chunk, &tb, loss)?;
    }
    Ok(())
}

/// The head's output rows of the last forward, checked to hold `rows` × `k` values.
fn logits_of(model: &dyn TaskModel, head: usize, rows: usize, k: usize) -> Result<Cow<'_, [f32]>> {
    let logits = model.logits(head)?;
    if logits.len() < rows * k {
        return Err(Error::Data(format!("expected {rows} × {k} logits, found {}", logits.len())));
    }
    Ok(logits)
}

/// Scored targets of a batch (labels that are not `IGNORE_INDEX`).
fn scored_targets(tb: &TaskBatch) -> usize {
    match &tb.targets {
        Targets::Labels(l) => l.iter().filter(|&&y| y != IGNORE_INDEX).count(),
        _ => 0,
    }
}

/// A result with scores: `metrics` by name, `primary`, the predictions.
fn scored(predictions: Predictions, examples: usize, metrics: &[(&str, f64)], primary: f64) -> EvalResult {
    let metrics: BTreeMap<String, f64> = metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    EvalResult { metrics, primary: Some(primary), predictions, examples }
}

/// Stacks single-sequence batches (B = 1 each, with label targets) into one right-padded batch.
fn stack_rows(rows: &[TaskBatch], pad_id: u32) -> Result<TaskBatch> {
    let b = rows.len();
    let t = rows.iter().map(|r| r.batch.t).max().unwrap_or(0);
    let mut batch = Batch { b, t, ids: vec![pad_id; b * t], types: vec![0; b * t], mask: vec![0.0; b * t] }; // (B, T)
    let mut labels = vec![IGNORE_INDEX; b * t]; // (B, T)
    for (row, r) in rows.iter().enumerate() {
        let (n, at) = (r.batch.t, row * t);
        match &r.targets {
            Targets::Labels(l) if r.batch.b == 1 && l.len() == n => labels[at..at + n].copy_from_slice(l),
            _ => return Err(Error::Data("stacking MLM rows: expected one sequence with one label per token".into())),
        }
        batch.ids[at..at + n].copy_from_slice(&r.batch.ids);
        batch.types[at..at + n].copy_from_slice(&r.batch.types);
        batch.mask[at..at + n].copy_from_slice(&r.batch.mask);
    }
    Ok(TaskBatch { batch, targets: Targets::Labels(labels) })
}

impl Run<'_> {
    fn num_labels(&self) -> usize {
        self.model.structure().specs[self.head].num_labels
    }

    /// The name of label id `id` of a gold example.
    fn label_name(&self, id: usize, example: &str) -> Result<&str> {
        self.label_names.get(id).map(String::as_str).ok_or_else(|| {
            Error::Data(format!(
                "task {}: example {example} has label id {id}, outside the {} labels",
                self.task.name,
                self.label_names.len()
            ))
        })
    }

    /// Sentence-pair classification.
    pub fn pairs(self, examples: &Examples, v: &[PairExample]) -> Result<EvalResult> {
        let gold: Vec<Option<usize>> = v.iter().map(|e| e.label).collect();
        self.classes(examples, &gold)
    }

    /// Multiple choice: every question must have as many choices as the head scores.
    pub fn choices(self, examples: &Examples, v: &[ChoiceExample]) -> Result<EvalResult> {
        let k = self.num_labels();
        if let Some(e) = v.iter().find(|e| e.choices.len() != k) {
            return Err(Error::Data(format!(
                "task {}: example {} has {} choices but head `{}` scores {k}",
                self.task.name,
                e.id,
                e.choices.len(),
                self.model.structure().specs[self.head].name
            )));
        }
        let gold: Vec<Option<usize>> = v.iter().map(|e| e.label).collect();
        self.classes(examples, &gold)
    }

    /// One class (or choice) per example: argmax, then accuracy (and QQP's F1).
    fn classes(self, examples: &Examples, gold: &[Option<usize>]) -> Result<EvalResult> {
        let n = gold.len();
        let labelled = all_or_none(self.task, gold.iter().filter(|g| g.is_some()).count(), n)?;
        let feats = Features::new(self.tok, examples, self.features, false)?;
        if feats.len() != n {
            return Err(Error::Data(format!("{} features for {n} examples", feats.len())));
        }
        let (k, head, tok) = (self.num_labels(), self.head, self.tok);
        let mut preds = vec![0usize; n];
        let mut loss = MeanLoss::default();
        run_sorted(
            self.model,
            head,
            &feats,
            self.opts.batch_size,
            |idx| {
                let mut tb = feats.collate(idx, tok, None)?;
                if !labelled {
                    tb.targets = Targets::None;
                }
                Ok(tb)
            },
            |model, idx, tb, l| {
                let logits = logits_of(model, head, idx.len(), k)?; // (B, K)
                for (row, &i) in idx.iter().enumerate() {
                    preds[i] = argmax(&logits[row * k..(row + 1) * k]);
                }
                loss.add(l, scored_targets(tb));
                Ok(())
            },
        )?;
        let names: Vec<String> = preds.iter().map(|&p| self.label_names[p].clone()).collect();
        if !labelled {
            return Ok(EvalResult::unscored(Predictions::Labels(names), n));
        }
        let gold: Vec<usize> = gold.iter().flatten().copied().collect();
        let mut acc = Accuracy::new();
        acc.update(&gold, &preds)?;
        let acc = 100.0 * acc.compute();
        let mut metrics = vec![("acc", acc)];
        metrics.extend(loss.mean().map(|l| ("loss", l)));
        let primary = if self.task.metric == Metric::AccuracyAndF1 {
            // jiant's QQP: scikit-learn's F1 of the positive class, label id 1.
            let f1 = 100.0 * binary_f1(&gold, &preds, &1)?;
            metrics.push(("f1", f1));
            (acc + f1) / 2.0
        } else {
            acc
        };
        Ok(scored(Predictions::Labels(names), n, &metrics, primary))
    }

    /// Word tagging: token argmax, stitched back to one tag per word, then seqeval F1 or the
    /// token (word) accuracy.
    pub fn tagging(self, examples: &Examples, v: &[TaggingExample]) -> Result<EvalResult> {
        let n = v.len();
        let labelled = all_or_none(self.task, v.iter().filter(|e| e.tags.is_some()).count(), n)?;
        let feats = Features::new(self.tok, examples, self.features, false)?;
        let Features::Tagging(set) = &feats else {
            return Err(Error::Data("tagging examples gave non-tagging features".into()));
        };
        let (k, head, tok) = (self.num_labels(), self.head, self.tok);
        let mut token_preds: Vec<Vec<usize>> = vec![Vec::new(); set.features.len()];
        let mut loss = MeanLoss::default();
        run_sorted(
            self.model,
            head,
            &feats,
            self.opts.batch_size,
            |idx| {
                let mut tb = feats.collate(idx, tok, None)?;
                if !labelled {
                    tb.targets = Targets::None;
                }
                Ok(tb)
            },
            |model, idx, tb, l| {
                let t = tb.batch.t;
                let logits = logits_of(model, head, idx.len() * t, k)?; // (B·T, K)
                for (row, &i) in idx.iter().enumerate() {
                    let len = set.features[i].ids.len();
                    token_preds[i] =
                        (0..len).map(|p| argmax(&logits[(row * t + p) * k..(row * t + p + 1) * k])).collect();
                }
                loss.add(l, scored_targets(tb));
                Ok(())
            },
        )?;
        let num_words: Vec<usize> = v.iter().map(|e| e.words.len()).collect();
        let stitched = stitch(&set.features, &token_preds, &num_words, self.fallback_tag())?;
        let tags: Vec<Vec<String>> =
            stitched.labels.iter().map(|s| s.iter().map(|&p| self.label_names[p].clone()).collect()).collect();
        if !labelled {
            return Ok(EvalResult::unscored(Predictions::Tags(tags), n));
        }
        let mut seqeval = Seqeval::new();
        let mut acc = Accuracy::new();
        for ((ex, pred_ids), pred) in v.iter().zip(&stitched.labels).zip(&tags) {
            let gold_ids = ex.tags.as_deref().unwrap_or_default();
            let gold: Vec<&str> = gold_ids.iter().map(|&g| self.label_name(g, &ex.id)).collect::<Result<_>>()?;
            acc.update(gold_ids, pred_ids)?;
            if self.task.metric == Metric::SeqevalF1 {
                seqeval.update(&gold, pred)?;
            }
        }
        let acc = 100.0 * acc.compute();
        let mut metrics = vec![("acc", acc)];
        metrics.extend(loss.mean().map(|l| ("loss", l)));
        let primary = if self.task.metric == Metric::SeqevalF1 {
            let s = seqeval.compute();
            let f1 = 100.0 * s.f1;
            metrics.extend([("f1", f1), ("precision", 100.0 * s.precision), ("recall", 100.0 * s.recall)]);
            f1
        } else {
            acc
        };
        Ok(scored(Predictions::Tags(tags), n, &metrics, primary))
    }

    /// The tag of a word without sub-tokens: `X` for UDPOS, else `O`, else label 0.
    fn fallback_tag(&self) -> usize {
        let prefer: [&str; 2] = if self.task.name == "udpos" { ["X", "O"] } else { ["O", "X"] };
        prefer.iter().find_map(|p| self.label_names.iter().position(|n| n == p)).unwrap_or(0)
    }

    /// Extractive QA: best span per question over its windows, then SQuAD or MLQA EM/F1.
    pub fn spans(self, examples: &Examples, v: &[SpanExample], lang: Option<&str>) -> Result<EvalResult> {
        let n = v.len();
        let labelled = all_or_none(self.task, v.iter().filter(|e| e.answers.is_some()).count(), n)?;
        // Fail before running the model when the normalisation cannot be chosen.
        let norm = match self.task.metric {
            Metric::MlqaEmF1 if labelled => {
                let lang = lang.ok_or_else(|| {
                    Error::Data(format!("task {}: scoring MLQA needs the language (its normalisation)", self.task.name))
                })?;
                AnswerNorm::Mlqa(MlqaLang::parse(lang)?)
            }
            _ => AnswerNorm::Squad,
        };
        let feats = Features::new(self.tok, examples, self.features, false)?;
        let Features::Span(set) = &feats else {
            return Err(Error::Data("span QA examples gave non-span features".into()));
        };
        let nf = set.features.len();
        let (head, tok) = (self.head, self.tok);
        let (mut starts, mut ends) = (vec![Vec::new(); nf], vec![Vec::new(); nf]);
        run_sorted(
            self.model,
            head,
            &feats,
            self.opts.batch_size,
            |idx| {
                let mut tb = feats.collate(idx, tok, None)?;
                tb.targets = Targets::None;
                Ok(tb)
            },
            |model, idx, tb, _| {
                let t = tb.batch.t;
                let (s, e) = model.span_logits(head)?; // (B, T) each
                for (row, &i) in idx.iter().enumerate() {
                    let len = set.features[i].ids.len();
                    starts[i] = s[row * t..row * t + len].to_vec();
                    ends[i] = e[row * t..row * t + len].to_vec();
                }
                Ok(())
            },
        )?;
        // Windows are stored example by example: walk them alongside the examples.
        let mut answers = Vec::with_capacity(n);
        let mut f = 0;
        for (e, ex) in v.iter().enumerate() {
            let first = f;
            while f < nf && set.example_index[f] == e {
                f += 1;
            }
            let text = decode(ex, &set.features[first..f], &starts[first..f], &ends[first..f], N_BEST, MAX_ANSWER_LEN)?;
            answers.push((ex.id.clone(), text));
        }
        if f != nf {
            return Err(Error::Data(format!("span windows out of example order: {} of {nf} were read", f)));
        }
        if !labelled {
            return Ok(EvalResult::unscored(Predictions::Answers(answers), n));
        }
        let gold: Vec<QaExample> = v
            .iter()
            .map(|ex| QaExample {
                id: ex.id.clone(),
                answers: ex.answers.iter().flatten().map(|a| a.text.clone()).collect(),
            })
            .collect();
        let preds: HashMap<String, String> = answers.iter().cloned().collect();
        let s = squad::evaluate(&gold, &preds, norm)?;
        let (em, f1) = (100.0 * s.exact_match, 100.0 * s.f1);
        Ok(scored(Predictions::Answers(answers), n, &[("em", em), ("f1", f1)], f1))
    }

    /// MLM: mean cross-entropy over deterministically masked tokens and its perplexity.
    pub fn mlm(self, examples: &Examples, v: &[TextExample]) -> Result<EvalResult> {
        let feats = Features::new(self.tok, examples, self.features, false)?;
        let (head, tok, seed) = (self.head, self.tok, self.opts.mlm_seed);
        let mut loss = MeanLoss::default();
        run_sorted(
            self.model,
            head,
            &feats,
            self.opts.batch_size,
            |idx| {
                let rows = idx
                    .iter()
                    .map(|&i| feats.collate(&[i], tok, Some(&mut Rng::new(derive(seed, i as u64)))))
                    .collect::<Result<Vec<_>>>()?;
                stack_rows(&rows, tok.pad_id)
            },
            |_, _, tb, l| {
                loss.add(l, scored_targets(tb));
                Ok(())
            },
        )?;
        // A split so short that no token was masked has nothing to score.
        let Some(mean) = loss.mean() else {
            return Ok(EvalResult::unscored(Predictions::None, v.len()));
        };
        let perplexity = mean.exp();
        Ok(scored(Predictions::None, v.len(), &[("loss", mean), ("perplexity", perplexity)], -perplexity))
    }
}
