//! Featurised task data and batches for the trainer and the evaluator: one [`Features`] per
//! (task, split), any subset of which collates into a [`TaskBatch`] padded to its longest
//! sequence (dynamic padding). MLM batches are masked at collation time from a seeded RNG, so
//! a step's masking depends only on the run seed and the step.

use crate::align::train::{ParallelSet, SoSettings};
use crate::error::{Error, Result};
use crate::features::classification::{self, featurize_pairs, PairFeature};
use crate::features::mlm::{featurize_text, mask_batch};
use crate::features::multiple_choice::{self, featurize_choices, ChoiceFeature, Truncation};
use crate::features::span::{featurize_all, SpanFeatureConfig, SpanFeatureSet};
use crate::features::tagging::{self, featurize_tagging, TaggingSet};
use crate::model::batch::{Targets, TaskBatch};
use crate::rng::Rng;
use crate::tasks::Examples;
use crate::tokenize::Tokenizer;

/// MLM masking probability (BERT / XLM-R).
pub const MLM_PROBABILITY: f32 = 0.15;

/// Featurisation settings shared by every task of a run.
#[derive(Clone, Debug)]
pub struct FeatureConfig {
    /// Tokens per sequence, special tokens included.
    pub max_seq_len: usize,
    /// Span-QA windows ([`FeatureConfig::new`] sets its `max_seq_len` to the field above).
    pub span: SpanFeatureConfig,
    /// Which end of an over-long multiple-choice prompt or choice is cut.
    pub choice_truncation: Truncation,
}

impl FeatureConfig {
    /// Defaults of the paper's runs for sequences of `max_seq_len` tokens.
    pub fn new(max_seq_len: usize) -> Self {
        let span = SpanFeatureConfig { max_seq_len, ..SpanFeatureConfig::default() };
        FeatureConfig { max_seq_len, span, choice_truncation: Truncation::default() }
    }
}

/// The features of one split of one task.
#[derive(Clone, Debug)]
pub enum Features {
    /// Pair classification, one feature per example.
    Pair(Vec<PairFeature>),
    /// Multiple choice, one feature (K sequences) per example.
    Choice(Vec<ChoiceFeature>),
    /// Span QA: possibly several windows per question.
    Span(SpanFeatureSet),
    /// Tagging: possibly several segments per sentence.
    Tagging(TaggingSet),
    /// Raw text for MLM, one sequence per line.
    Text(Vec<PairFeature>),
    /// Sentence pairs for translation language modelling (`xlt align-train`), masked at
    /// collation time as MLM text is.
    Tlm(ParallelSet),
    /// Sentence pairs for the self-training objective (`xlt align-train`): each batch's guide
    /// needs the model, so the trainer builds these batches ([`ParallelSet::so_batch`]), not
    /// [`Features::collate`].
    SelfTraining(ParallelSet, SoSettings),
}

impl Features {
    /// Featurises `examples`; `train` selects training-time span windows (gold positions
    /// required, unanswerable windows kept as in HF).
    pub fn new(tok: &Tokenizer, examples: &Examples, cfg: &FeatureConfig, train: bool) -> Result<Self> {
        Ok(match examples {
            Examples::Pair(v) => Features::Pair(featurize_pairs(tok, v, cfg.max_seq_len)?),
            Examples::MultipleChoice(v) => {
                Features::Choice(featurize_choices(tok, v, cfg.max_seq_len, cfg.choice_truncation)?)
            }
            Examples::Span(v) => Features::Span(featurize_all(tok, tok.family(), v, &cfg.span, train)?),
            Examples::Tagging(v) => Features::Tagging(featurize_tagging(tok, v, cfg.max_seq_len)?),
            Examples::Text(v) => Features::Text(featurize_text(tok, v, cfg.max_seq_len)?),
            Examples::Retrieval(_) => {
                return Err(Error::Usage("retrieval data has no training features; it is embedded directly".into()))
            }
        })
    }

    /// Number of features (the unit batches are drawn in).
    pub fn len(&self) -> usize {
        match self {
            Features::Pair(v) | Features::Text(v) => v.len(),
            Features::Choice(v) => v.len(),
            Features::Span(s) => s.features.len(),
            Features::Tagging(s) => s.features.len(),
            Features::Tlm(s) | Features::SelfTraining(s, _) => s.len(),
        }
    }

    /// Whether there are no features.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length in tokens of feature `i` (the longest choice for multiple choice).
    pub fn seq_len(&self, i: usize) -> usize {
        match self {
            Features::Pair(v) | Features::Text(v) => v[i].ids.len(),
            Features::Choice(v) => v[i].ids.iter().map(Vec::len).max().unwrap_or(0),
            Features::Span(s) => s.features[i].ids.len(),
            Features::Tagging(s) => s.features[i].ids.len(),
            Features::Tlm(s) => s.seq_len(i, true),
            Features::SelfTraining(s, _) => s.seq_len(i, false),
        }
    }

    /// Collates features `idx` into one padded batch with its targets. MLM batches are masked
    /// with `mlm_rng` (required for text); the others ignore it. Unlabelled features give
    /// `IGNORE_INDEX` labels; span windows without an answer position point outside the batch.
    pub fn collate(&self, idx: &[usize], tok: &Tokenizer, mlm_rng: Option<&mut Rng>) -> Result<TaskBatch> {
        if idx.is_empty() {
            return Err(Error::Usage("cannot collate an empty batch".into()));
        }
        let pad = tok.pad_id;
        Ok(match self {
            Features::Pair(v) => {
                let (batch, labels) = classification::collate(&pick(v, idx), pad);
                TaskBatch { batch, targets: Targets::Labels(labels) }
            }
            Features::Choice(v) => {
                let (batch, labels, _) = multiple_choice::collate(&pick(v, idx), pad)?;
                TaskBatch { batch, targets: Targets::Labels(labels) }
            }
            Features::Span(s) => {
                let f = pick(&s.features, idx);
                let seqs: Vec<(&[u32], &[u32])> = f.iter().map(|f| (f.ids.as_slice(), f.types.as_slice())).collect();
                let batch = classification::pad_sequences(&seqs, pad);
                // A window without the answer (or an unlabelled one) targets position T: ignored.
                let out = batch.t as i64;
                let start = f.iter().map(|f| f.start.map_or(out, |p| p as i64)).collect();
                let end = f.iter().map(|f| f.end.map_or(out, |p| p as i64)).collect();
                TaskBatch { batch, targets: Targets::Span { start, end } }
            }
            Features::Tagging(s) => {
                let (batch, labels) = tagging::collate(&pick(&s.features, idx), pad);
                TaskBatch { batch, targets: Targets::Labels(labels) }
            }
            Features::Text(v) => {
                let (mut batch, _) = classification::collate(&pick(v, idx), pad);
                let rng = mlm_rng.ok_or_else(|| Error::Usage("MLM batches need a masking RNG".into()))?;
                let (ids, labels) = mask_batch(tok, &batch, tok.mask_id()?, rng, MLM_PROBABILITY)?;
                batch.ids = ids;
                TaskBatch { batch, targets: Targets::Labels(labels) }
            }
            Features::Tlm(s) => {
                let rng = mlm_rng.ok_or_else(|| Error::Usage("TLM batches need a masking RNG".into()))?;
                s.tlm_batch(idx, tok, rng)?
            }
            Features::SelfTraining(..) => {
                return Err(Error::Usage("self-training batches need the model: the trainer builds them".into()))
            }
        })
    }
}

fn pick<'a, T>(v: &'a [T], idx: &[usize]) -> Vec<&'a T> {
    idx.iter().map(|&i| &v[i]).collect()
}
