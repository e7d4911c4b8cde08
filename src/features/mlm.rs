//! Masked-language-modelling features: raw text lines as single sequences, the HF / jiant
//! masking recipe (`templates/mlm.py:mlm_mask_tokens`), and exponentially smoothed language
//! sampling for multilingual MLM.
//!
//! Masking: every token that is neither special nor padding is selected with probability p
//! (0.15); a selected token becomes the mask id with probability 0.8, a uniformly random id in
//! `[0, vocab_size)` (special ids included, as HF) with probability 0.1, and stays unchanged
//! otherwise. Labels hold the original id at selected positions and `IGNORE_INDEX` elsewhere.
//! jiant masks anew at every forward (validation too); callers draw a fresh mask per batch.
//!
//! The mask id (`<mask>` = 250001 for XLM-R, `[MASK]` = 103 for mBERT) is not part of
//! [`Tokenizer`]'s API: the caller looks it up in the tokenizer's vocabulary and passes it in.

use super::classification::{single_feature, PairFeature};
use crate::error::{Error, Result};
use crate::model::batch::{Batch, IGNORE_INDEX};
use crate::rng::Rng;
use crate::tasks::TextExample;
use crate::tokenize::Tokenizer;

/// The masking probability of HF and jiant.
pub const MLM_PROBABILITY: f32 = 0.15;

/// The language-sampling exponent of XLM-R (Conneau et al. 2020).
pub const LANGUAGE_ALPHA: f64 = 0.3;

/// Encodes raw text lines as single sequences (`<s> text </s>` / `[CLS] text [SEP]`), each
/// truncated to its first `max_seq_len - 2` sub-tokens (the rest is discarded, as jiant), with
/// no label. Errors name the line's id.
pub fn featurize_text(tok: &Tokenizer, examples: &[TextExample], max_seq_len: usize) -> Result<Vec<PairFeature>> {
    examples.iter().map(|ex| single_feature(tok, &ex.id, &ex.text, None, max_seq_len)).collect()
}

/// (N) true where a token must never be masked: the tokenizer's `<s>`/`</s>`/`<pad>` (or
/// `[CLS]`/`[SEP]`/`[PAD]`) ids, which is what HF's `get_special_tokens_mask(...,
/// already_has_special_tokens=True)` plus jiant's padding mask select for these tokenizers.
pub fn special_tokens_mask(tok: &Tokenizer, ids: &[u32]) -> Vec<bool> {
    ids.iter().map(|&i| i == tok.cls_id || i == tok.sep_id || i == tok.pad_id).collect()
}

/// Masks `ids` (N, any flat layout) for MLM; `special` (N) marks positions never selected
/// (specials and pads). Returns the masked ids (N) and the labels (N): the original id where
/// selected, `IGNORE_INDEX` elsewhere. Draws from `rng` in position order (three draws per
/// eligible position), so a seed fixes the result.
pub fn mask_tokens(
    ids: &[u32],
    special: &[bool],
    vocab_size: usize,
    mask_id: u32,
    rng: &mut Rng,
    p: f32,
) -> Result<(Vec<u32>, Vec<i64>)> {
    if ids.len() != special.len() {
        return Err(Error::Data(format!(
            "mask_tokens: expected one special flag per token ({} tokens), found {}",
            ids.len(),
            special.len()
        )));
    }
    if vocab_size == 0 || (mask_id as usize) >= vocab_size {
        return Err(Error::Data(format!("mask_tokens: mask id {mask_id} outside a vocabulary of {vocab_size}")));
    }
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::Data(format!("mask_tokens: probability {p} outside [0, 1]")));
    }
    let mut out = ids.to_vec();
    let mut labels = vec![IGNORE_INDEX; ids.len()];
    for (i, (&id, &skip)) in ids.iter().zip(special).enumerate() {
        if skip {
            continue;
        }
        // Three draws per eligible token whatever the outcome, so the stream stays aligned.
        let (select, replace, random) = (rng.next_f32(), rng.next_f32(), rng.next_f32());
        if select >= p {
            continue;
        }
        labels[i] = id as i64;
        if replace < 0.8 {
            out[i] = mask_id;
        } else if random < 0.5 {
            out[i] = rng.below(vocab_size as u64) as u32;
        }
    }
    Ok((out, labels))
}

/// Masks a collated batch: positions with mask 0 (pads) and the tokenizer's special ids are
/// never selected. Returns the masked ids (B·T) and labels (B·T) for the MLM head.
pub fn mask_batch(tok: &Tokenizer, batch: &Batch, mask_id: u32, rng: &mut Rng, p: f32) -> Result<(Vec<u32>, Vec<i64>)> {
    let mut special = special_tokens_mask(tok, &batch.ids);
    for (s, &m) in special.iter_mut().zip(&batch.mask) {
        *s |= m == 0.0;
    }
    mask_tokens(&batch.ids, &special, tok.vocab_size(), mask_id, rng, p)
}

/// Sampling probabilities of languages with `counts[i]` sentences: p_i ∝ n_i^α, normalised
/// (α = 0.3 in XLM-R; α = 1 is proportional, α = 0 uniform over non-empty languages). A
/// language with no data gets 0. Errors if all counts are 0 or α is negative or not finite.
pub fn language_weights(counts: &[usize], alpha: f64) -> Result<Vec<f64>> {
    if !(alpha.is_finite() && alpha >= 0.0) {
        return Err(Error::Data(format!("language sampling exponent must be finite and ≥ 0, found {alpha}")));
    }
    let raw: Vec<f64> = counts.iter().map(|&n| if n == 0 { 0.0 } else { (n as f64).powf(alpha) }).collect();
    let total: f64 = raw.iter().sum();
    if total <= 0.0 {
        return Err(Error::Data(format!("language sampling: every one of {} languages has no data", counts.len())));
    }
    Ok(raw.into_iter().map(|w| w / total).collect())
}

/// Draws an index with probability `weights[i]` (weights summing to about 1, e.g. from
/// [`language_weights`]). Returns the last non-zero index when rounding leaves the draw past
/// the total.
pub fn sample_index(weights: &[f64], rng: &mut Rng) -> usize {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * weights.iter().sum::<f64>();
    let mut acc = 0.0;
    for (i, &w) in weights.iter().enumerate() {
        acc += w;
        if u < acc {
            return i;
        }
    }
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}
