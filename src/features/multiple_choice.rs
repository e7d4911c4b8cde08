//! Multiple-choice features (HellaSwag, Cosmos QA, CommonsenseQA) as jiant's
//! `templates/multiple_choice.py`: each of the K choices becomes its own sequence
//! `prompt` + `choice` in the family's pair template (XLM-R `<s> P </s></s> C </s>`, BERT
//! `[CLS] P [SEP] C [SEP]` with the choice in segment 1), and a batch of B examples is B·K
//! sequences with the choices of one example adjacent, plus B labels.
//!
//! Truncation is jiant's `truncate_sequences` over (prompt, choice) with a budget of
//! `max_seq_len` minus the special tokens: the currently longer part loses one token at a time
//! (ties → the prompt) until the two fit. Which end is cut is a [`Truncation`] option: jiant
//! at the paper's time (v2.1.x) cut the ends (keeping each part's beginning); jiant#1256 (Jan
//! 2021) switched multiple choice to keeping the ends. The default is the paper-era behaviour.

use super::classification::{in_example, label_or_ignore, pad_sequences};
use crate::error::{Error, Result};
use crate::model::batch::Batch;
use crate::tasks::ChoiceExample;
use crate::tokenize::Tokenizer;
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;

/// Which end of an over-long prompt or choice is cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Truncation {
    /// Keep each part's first tokens (jiant `truncate_end=True`, the paper-era v2.1.x code).
    #[default]
    KeepStart,
    /// Keep each part's last tokens (jiant `truncate_end=False`, after jiant#1256).
    KeepEnd,
}

impl Truncation {
    /// A short stable name (`keep_start` / `keep_end`), e.g. for cache keys.
    pub fn name(self) -> &'static str {
        match self {
            Truncation::KeepStart => "keep_start",
            Truncation::KeepEnd => "keep_end",
        }
    }
}

/// The K encoded choices of one example and its label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceFeature {
    /// K sequences of token ids, one per choice, in choice order.
    pub ids: Vec<Vec<u32>>,
    /// K sequences of token type ids.
    pub types: Vec<Vec<u32>>,
    /// The index of the right choice; None for unlabelled (test) examples.
    pub label: Option<usize>,
}

impl ChoiceFeature {
    /// K: the number of choices.
    pub fn num_choices(&self) -> usize {
        self.ids.len()
    }
}

/// The family's pair template, read off the tokenizer itself by encoding an empty pair:
/// `head` goes before the prompt, `mid` between prompt and choice, `tail` after the choice.
#[derive(Clone, Debug)]
struct PairTemplate {
    head: Vec<u32>,
    mid: Vec<u32>,
    tail: Vec<u32>,
    /// Token types of head, mid, tail.
    head_types: Vec<u32>,
    mid_types: Vec<u32>,
    tail_types: Vec<u32>,
}

impl PairTemplate {
    fn of(tok: &Tokenizer) -> Result<Self> {
        let n = tok.num_special(true);
        let e = tok.encode("", Some(""), n)?;
        if e.ids.len() != n || n < 2 {
            return Err(Error::Tokenizer(format!(
                "expected an empty pair to encode to {n} special tokens, found {} ids",
                e.ids.len()
            )));
        }
        Ok(PairTemplate {
            head: e.ids[..1].to_vec(),
            mid: e.ids[1..n - 1].to_vec(),
            tail: e.ids[n - 1..].to_vec(),
            head_types: e.types[..1].to_vec(),
            mid_types: e.types[1..n - 1].to_vec(),
            tail_types: e.types[n - 1..].to_vec(),
        })
    }

    fn num_special(&self) -> usize {
        self.head.len() + self.mid.len() + self.tail.len()
    }

    /// `head A mid B tail`; A takes the head's type, B the tail's.
    fn apply(&self, a: &[u32], b: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let mut ids = Vec::with_capacity(a.len() + b.len() + self.num_special());
        let mut types = Vec::with_capacity(ids.capacity());
        let (ta, tb) = (self.head_types[0], self.tail_types[0]);
        ids.extend_from_slice(&self.head);
        types.extend_from_slice(&self.head_types);
        ids.extend_from_slice(a);
        types.resize(ids.len(), ta);
        ids.extend_from_slice(&self.mid);
        types.extend_from_slice(&self.mid_types);
        ids.extend_from_slice(b);
        types.resize(ids.len(), tb);
        ids.extend_from_slice(&self.tail);
        types.extend_from_slice(&self.tail_types);
        (ids, types)
    }
}

/// jiant's `truncate_sequences` lengths for two parts: while the total exceeds `budget`, the
/// longer part loses one token (ties → the first). Returns the kept lengths.
pub fn jiant_target_lengths(len_a: usize, len_b: usize, budget: usize) -> (usize, usize) {
    if len_a + len_b <= budget {
        return (len_a, len_b);
    }
    // Closed form of the one-at-a-time loop: cut the longer down to the shorter, then
    // alternate starting with the first part (argmax picks the first on ties).
    let (mut a, mut b) = (len_a, len_b);
    let excess = a + b - budget;
    let gap = a.abs_diff(b).min(excess);
    if a > b {
        a -= gap;
    } else {
        b -= gap;
    }
    let rest = excess - gap;
    if rest > 0 {
        // now a == b; the first part loses ceil(rest / 2), the second floor(rest / 2)
        a -= rest.div_ceil(2);
        b -= rest / 2;
    }
    (a, b)
}

/// Keeps `n` tokens of `v` from the start or the end.
fn cut(v: &[u32], n: usize, how: Truncation) -> &[u32] {
    match how {
        Truncation::KeepStart => &v[..n],
        Truncation::KeepEnd => &v[v.len() - n..],
    }
}

/// Encodes the K choices of one example (see the module docs), each at most `max_seq_len`
/// tokens. Errors name the example: no choices, a label out of range, or a budget too small
/// for the special tokens.
pub fn choice_feature(
    tok: &Tokenizer,
    ex: &ChoiceExample,
    max_seq_len: usize,
    how: Truncation,
) -> Result<ChoiceFeature> {
    let template = PairTemplate::of(tok)?;
    choice_feature_with(tok, &template, ex, max_seq_len, how)
}

fn choice_feature_with(
    tok: &Tokenizer,
    template: &PairTemplate,
    ex: &ChoiceExample,
    max_seq_len: usize,
    how: Truncation,
) -> Result<ChoiceFeature> {
    let k = ex.choices.len();
    if k == 0 {
        return Err(Error::Data(format!("example {}: expected at least one choice, found none", ex.id)));
    }
    if let Some(y) = ex.label {
        if y >= k {
            return Err(Error::Data(format!("example {}: label {y} out of range for {k} choices", ex.id)));
        }
    }
    let budget = max_seq_len.checked_sub(template.num_special()).ok_or_else(|| {
        Error::Data(format!(
            "example {}: max length {max_seq_len} leaves no room for the {} special tokens",
            ex.id,
            template.num_special()
        ))
    })?;
    let prompt = tok.tokens(&ex.prompt).map_err(|e| in_example(&ex.id, e))?;
    let mut ids = Vec::with_capacity(k);
    let mut types = Vec::with_capacity(k);
    for choice in &ex.choices {
        let choice = tok.tokens(choice).map_err(|e| in_example(&ex.id, e))?;
        let (na, nb) = jiant_target_lengths(prompt.len(), choice.len(), budget);
        let (i, t) = template.apply(cut(&prompt, na, how), cut(&choice, nb, how));
        ids.push(i);
        types.push(t);
    }
    Ok(ChoiceFeature { ids, types, label: ex.label })
}

/// Encodes every example (see [`choice_feature`]); the features keep the examples' order.
pub fn featurize_choices(
    tok: &Tokenizer,
    examples: &[ChoiceExample],
    max_seq_len: usize,
    how: Truncation,
) -> Result<Vec<ChoiceFeature>> {
    let template = PairTemplate::of(tok)?;
    examples.iter().map(|ex| choice_feature_with(tok, &template, ex, max_seq_len, how)).collect()
}

/// Collates B examples of K choices into one batch of B·K sequences (the choices of one
/// example adjacent, example-major), padded to the longest sequence, and the labels (B) with
/// `IGNORE_INDEX` for unlabelled examples. Returns K too. All examples must have the same K.
pub fn collate<F: Borrow<ChoiceFeature>>(features: &[F], pad_id: u32) -> Result<(Batch, Vec<i64>, usize)> {
    let k = features.first().map_or(0, |f| f.borrow().num_choices());
    let mut seqs = Vec::with_capacity(features.len() * k);
    for (row, f) in features.iter().enumerate() {
        let f = f.borrow();
        if f.num_choices() != k || f.types.len() != k {
            return Err(Error::Data(format!(
                "multiple-choice batch: expected {k} choices in every example, found {} in example {row} of the batch",
                f.num_choices()
            )));
        }
        seqs.extend(f.ids.iter().zip(&f.types).map(|(i, t)| (i.as_slice(), t.as_slice())));
    }
    let labels = features.iter().map(|f| label_or_ignore(f.borrow().label)).collect();
    Ok((pad_sequences(&seqs, pad_id), labels, k))
}
