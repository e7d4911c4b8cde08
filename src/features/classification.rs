//! Sentence(-pair) classification features (MNLI, SNLI, ANLI, QQP, XNLI, PAWS-X) and the
//! dynamic-padding collation every single-sequence feature shares.
//!
//! A pair is encoded with the family template of reference §0.2 (XLM-R `<s> A </s></s> B </s>`,
//! token types all 0; BERT `[CLS] A [SEP] B [SEP]`, segments 0/1) by [`Tokenizer::encode`],
//! which truncates longest-first to `max_seq_len`. That is HF `tokenizers`' rule; jiant's
//! `truncate_sequences` (decrement the longer side one token at a time, ties → first) gives the
//! same lengths except when both texts must be cut, the first is the longer one and the budget
//! is odd: the extra token then goes to the first text here and to the second in jiant.
//!
//! Batches are padded to the longest sequence in the batch (jiant `--smart_truncate`), on the
//! right, with the pad id, type 0 and mask 0.

use crate::error::{Error, Result};
use crate::model::batch::{Batch, IGNORE_INDEX};
use crate::tasks::PairExample;
use crate::tokenize::Tokenizer;
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;

/// One encoded sequence (single text or pair) with its optional class label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairFeature {
    /// (T) token ids including the special tokens.
    pub ids: Vec<u32>,
    /// (T) token type (segment) ids.
    pub types: Vec<u32>,
    /// The class index; None for unlabelled (test) examples.
    pub label: Option<usize>,
}

/// Wraps a tokenizer failure with the example it happened on.
pub(crate) fn in_example(id: &str, e: Error) -> Error {
    match e {
        Error::Tokenizer(msg) => Error::Tokenizer(format!("example {id}: {msg}")),
        e => e.context(format!("example {id}")),
    }
}

/// Encodes one pair example, truncated longest-first to `max_seq_len` tokens.
pub fn pair_feature(tok: &Tokenizer, ex: &PairExample, max_seq_len: usize) -> Result<PairFeature> {
    let e = tok.encode(&ex.a, Some(&ex.b), max_seq_len).map_err(|e| in_example(&ex.id, e))?;
    Ok(PairFeature { ids: e.ids, types: e.types, label: ex.label })
}

/// Encodes one single-text example (`<s> A </s>` / `[CLS] A [SEP]`), keeping the first
/// `max_seq_len - 2` sub-tokens. `id` only names the example in errors.
pub fn single_feature(
    tok: &Tokenizer,
    id: &str,
    text: &str,
    label: Option<usize>,
    max_seq_len: usize,
) -> Result<PairFeature> {
    let e = tok.encode(text, None, max_seq_len).map_err(|e| in_example(id, e))?;
    Ok(PairFeature { ids: e.ids, types: e.types, label })
}

/// Encodes every pair example (see [`pair_feature`]); the features keep the examples' order.
pub fn featurize_pairs(tok: &Tokenizer, examples: &[PairExample], max_seq_len: usize) -> Result<Vec<PairFeature>> {
    examples.iter().map(|ex| pair_feature(tok, ex, max_seq_len)).collect()
}

/// Right-pads sequences `(ids, types)` to the longest one: ids with `pad_id`, types with 0,
/// mask 1.0 on real tokens and 0.0 on pads. The result has B = `seqs.len()` rows of T = the
/// longest length (B = T = 0 for no sequences).
pub fn pad_sequences(seqs: &[(&[u32], &[u32])], pad_id: u32) -> Batch {
    let b = seqs.len();
    let t = seqs.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);
    let mut ids = vec![pad_id; b * t]; // (B, T)
    let mut types = vec![0u32; b * t]; // (B, T)
    let mut mask = vec![0f32; b * t]; // (B, T)
    for (row, (s_ids, s_types)) in seqs.iter().enumerate() {
        let n = s_ids.len();
        ids[row * t..row * t + n].copy_from_slice(s_ids);
        // A feature always has one type per token; guard anyway so a short types list pads with 0.
        let m = s_types.len().min(n);
        types[row * t..row * t + m].copy_from_slice(&s_types[..m]);
        mask[row * t..row * t + n].fill(1.0);
    }
    Batch { b, t, ids, types, mask }
}

/// The label of an optional class index for the heads: the index, or `IGNORE_INDEX` for None.
pub fn label_or_ignore(label: Option<usize>) -> i64 {
    label.map_or(IGNORE_INDEX, |y| y as i64)
}

/// Collates features into one batch padded to its longest sequence, and the labels (B) with
/// `IGNORE_INDEX` (−100) for unlabelled features. Accepts `&[PairFeature]` or `&[&PairFeature]`.
pub fn collate<F: Borrow<PairFeature>>(features: &[F], pad_id: u32) -> (Batch, Vec<i64>) {
    let seqs: Vec<(&[u32], &[u32])> =
        features.iter().map(|f| (f.borrow().ids.as_slice(), f.borrow().types.as_slice())).collect();
    let labels = features.iter().map(|f| label_or_ignore(f.borrow().label)).collect();
    (pad_sequences(&seqs, pad_id), labels)
}
