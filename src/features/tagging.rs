//! Word-tagging features (UDPOS, PAN-X, CCG): each word is tokenized on its own
//! ([`Tokenizer::encode_words`]); its tag goes on its first sub-token and every other position
//! (continuation sub-tokens, specials, pads) carries `IGNORE_INDEX`.
//!
//! Sentences longer than `max_seq_len` are split, as XTREME's `utils_preprocess.py` does
//! (jiant truncates and drops the rest from scoring, jiant#1169): words are packed greedily,
//! in order, into segments of at most `max_seq_len - 2` sub-tokens, each segment becomes one
//! feature `<s> … </s>` / `[CLS] … [SEP]` (the family's single template, as jiant; XTREME adds
//! a second `</s>` for XLM-R) that records its example and word range, and [`stitch`] turns the
//! per-token predictions of all segments back into one label per word. No word is dropped and
//! no sentence is cut:
//! - a word with more sub-tokens than a whole segment holds gets a segment of its own with its
//!   first `max_seq_len - 2` sub-tokens (its first sub-token, the labelled one, is always kept);
//!   such words are counted in [`TaggingStats::clipped_words`] (XTREME replaces them by `<unk>`);
//! - a word with no sub-token at all (e.g. a lone zero-width character) has no position to
//!   label or predict; it is counted in [`TaggingStats::empty_words`] and [`stitch`] gives it the
//!   caller's fallback label (XTREME and jiant feed `<unk>` instead).

use super::classification::{in_example, pad_sequences};
use crate::error::{Error, Result};
use crate::model::batch::{Batch, IGNORE_INDEX};
use crate::tasks::TaggingExample;
use crate::tokenize::Tokenizer;
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;

/// One segment of one sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggingFeature {
    /// Index of the example (sentence) in the featurised slice.
    pub example: usize,
    /// Index of the first word of the segment in its sentence.
    pub first_word: usize,
    /// Number of words in the segment (words `first_word .. first_word + num_words`, including
    /// words without sub-tokens).
    pub num_words: usize,
    /// (T) token ids including the special tokens.
    pub ids: Vec<u32>,
    /// (T) token types (all 0).
    pub types: Vec<u32>,
    /// (T) the tag id on each word's first sub-token, `IGNORE_INDEX` elsewhere (everywhere for
    /// untagged examples).
    pub labels: Vec<i64>,
    /// (T) the sentence-level word index of each token (None for the special tokens).
    pub word_ids: Vec<Option<u32>>,
}

impl TaggingFeature {
    /// `(position, sentence word index)` of every word's first sub-token in this segment.
    pub fn first_subtokens(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut prev = None;
        for (pos, w) in self.word_ids.iter().enumerate() {
            if let Some(w) = *w {
                if prev != Some(w) {
                    out.push((pos, w as usize));
                }
            }
            prev = *w;
        }
        out
    }
}

/// Counts of what splitting did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggingStats {
    /// Sentences featurised.
    pub examples: usize,
    /// Features (segments) produced.
    pub segments: usize,
    /// Sentences split into more than one segment.
    pub split_examples: usize,
    /// Words with no sub-token (given the fallback label by [`stitch`]).
    pub empty_words: usize,
    /// Words longer than a segment, kept with their first `max_seq_len - 2` sub-tokens.
    pub clipped_words: usize,
}

/// The features of a set of sentences and the splitting statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggingSet {
    /// Segments, sentence-major and in word order within a sentence.
    pub features: Vec<TaggingFeature>,
    /// What splitting did.
    pub stats: TaggingStats,
}

/// Splits and labels every sentence (see the module docs). `max_seq_len` counts the special
/// tokens. Errors name the example: a tag list whose length differs from the word count, or a
/// tag id that does not fit the label type.
pub fn featurize_tagging(tok: &Tokenizer, examples: &[TaggingExample], max_seq_len: usize) -> Result<TaggingSet> {
    let special = tok.num_special(false);
    let budget = max_seq_len
        .checked_sub(special)
        .filter(|&b| b > 0)
        .ok_or_else(|| Error::Data(format!("max length {max_seq_len} leaves no room for a sub-token")))?;
    let mut set = TaggingSet::default();
    for (index, ex) in examples.iter().enumerate() {
        let before = set.features.len();
        featurize_one(tok, index, ex, budget, &mut set)?;
        set.stats.examples += 1;
        set.stats.split_examples += (set.features.len() - before > 1) as usize;
    }
    set.stats.segments = set.features.len();
    Ok(set)
}

fn featurize_one(
    tok: &Tokenizer,
    index: usize,
    ex: &TaggingExample,
    budget: usize,
    set: &mut TaggingSet,
) -> Result<()> {
    let n_words = ex.words.len();
    let tags: Option<Vec<i64>> = match &ex.tags {
        Some(tags) if tags.len() != n_words => {
            return Err(Error::Data(format!(
                "example {}: expected one tag per word ({n_words} words), found {} tags",
                ex.id,
                tags.len()
            )))
        }
        Some(tags) => Some(
            tags.iter()
                .map(|&t| i64::try_from(t).map_err(|_| Error::Data(format!("example {}: tag id {t} too large", ex.id))))
                .collect::<Result<_>>()?,
        ),
        None => None,
    };
    // The whole sentence, unsplit: a budget no sentence reaches.
    let words: Vec<&str> = ex.words.iter().map(String::as_str).collect();
    let enc = tok.encode_words(&words, usize::MAX).map_err(|e| in_example(&ex.id, e))?;
    // Strip the template's specials: one before, one after.
    let inner = enc.ids.len().saturating_sub(1);
    let (ids, wids) = (&enc.ids[1.min(inner)..inner], &enc.word_ids[1.min(inner)..inner]);
    // Sub-token range of each word (empty for words without sub-tokens).
    let mut spans = vec![(0usize, 0usize); n_words];
    let mut seen = vec![false; n_words];
    for (pos, w) in wids.iter().enumerate() {
        let w = w.ok_or_else(|| {
            Error::Tokenizer(format!("example {}: sub-token {pos} of the sentence has no word id", ex.id))
        })? as usize;
        if w >= n_words {
            return Err(Error::Tokenizer(format!("example {}: word id {w} out of range for {n_words} words", ex.id)));
        }
        if !seen[w] {
            seen[w] = true;
            spans[w] = (pos, pos);
        } else if spans[w].1 != pos {
            return Err(Error::Tokenizer(format!("example {}: the sub-tokens of word {w} are not contiguous", ex.id)));
        }
        spans[w].1 = pos + 1;
    }
    let empty: usize = seen.iter().filter(|&&s| !s).count();
    set.stats.empty_words += empty;
    // Greedy packing of words into segments of at most `budget` sub-tokens.
    let mut start_word = 0;
    let mut seg: Vec<usize> = Vec::new(); // words of the current segment that have sub-tokens
    let mut seg_len = 0;
    let emit = |first: usize, end: usize, seg: &[usize], set: &mut TaggingSet| {
        let (mut s_ids, mut s_wids, mut s_labels) = (vec![tok.cls_id], vec![None], vec![IGNORE_INDEX]);
        for &w in seg {
            let (a, b) = spans[w];
            let b = b.min(a + budget); // a clipped word keeps its first `budget` sub-tokens
            s_ids.extend_from_slice(&ids[a..b]);
            s_wids.extend(std::iter::repeat_n(Some(w as u32), b - a));
            s_labels.push(tags.as_ref().map_or(IGNORE_INDEX, |t| t[w]));
            s_labels.extend(std::iter::repeat_n(IGNORE_INDEX, b - a - 1));
        }
        s_ids.push(tok.sep_id);
        s_wids.push(None);
        s_labels.push(IGNORE_INDEX);
        set.features.push(TaggingFeature {
            example: index,
            first_word: first,
            num_words: end - first,
            types: vec![0; s_ids.len()],
            ids: s_ids,
            labels: s_labels,
            word_ids: s_wids,
        });
    };
    for (w, &(a, b)) in spans.iter().enumerate() {
        let len = b - a;
        if len > budget {
            set.stats.clipped_words += 1;
        }
        let len = len.min(budget);
        if len > 0 && seg_len + len > budget && !seg.is_empty() {
            emit(start_word, w, &seg, set);
            start_word = w;
            seg.clear();
            seg_len = 0;
        }
        if len > 0 {
            seg.push(w);
            seg_len += len;
        }
    }
    // The last (or only) segment; a sentence without sub-tokens still gets one (empty) feature.
    emit(start_word, n_words, &seg, set);
    Ok(())
}

/// Collates features into one batch padded to the longest segment, and the labels (B·T) with
/// `IGNORE_INDEX` on pads.
pub fn collate<F: Borrow<TaggingFeature>>(features: &[F], pad_id: u32) -> (Batch, Vec<i64>) {
    let seqs: Vec<(&[u32], &[u32])> =
        features.iter().map(|f| (f.borrow().ids.as_slice(), f.borrow().types.as_slice())).collect();
    let batch = pad_sequences(&seqs, pad_id);
    let t = batch.t;
    let mut labels = vec![IGNORE_INDEX; batch.b * t]; // (B, T)
    for (row, f) in features.iter().enumerate() {
        let l = &f.borrow().labels;
        labels[row * t..row * t + l.len()].copy_from_slice(l);
    }
    (batch, labels)
}

/// One label per word of every sentence, from the segments' predictions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stitched {
    /// Per sentence, one label id per word, in word order.
    pub labels: Vec<Vec<usize>>,
    /// Words that had no sub-token and got the fallback label.
    pub fallback_words: usize,
}

/// Stitches per-token predicted label ids back into one label per word.
///
/// `predictions[i]` holds the predicted label id of every position of `features[i]` (at least
/// its length; a padded batch row is fine); `num_words[e]` is the word count of sentence `e`;
/// `fallback` is given to words without sub-tokens (say, `X` for UDPOS, `O` for PAN-X). Every
/// word takes the prediction at its first sub-token. Errors if the segments of a sentence do
/// not cover its words exactly once, in order, or a word with sub-tokens has no first sub-token
/// in its segment.
pub fn stitch<P: AsRef<[usize]>>(
    features: &[TaggingFeature],
    predictions: &[P],
    num_words: &[usize],
    fallback: usize,
) -> Result<Stitched> {
    if features.len() != predictions.len() {
        return Err(Error::Data(format!(
            "stitch: expected one prediction row per segment ({} segments), found {} rows",
            features.len(),
            predictions.len()
        )));
    }
    let mut labels: Vec<Vec<Option<usize>>> = num_words.iter().map(|&n| vec![None; n]).collect();
    // Next word each sentence's segments must start at.
    let mut next = vec![0usize; num_words.len()];
    let mut fallback_words = 0;
    // Segments of a sentence may come in any order: visit them by (sentence, first word).
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.sort_by_key(|&i| (features[i].example, features[i].first_word));
    for i in order {
        let f = &features[i];
        let pred = predictions[i].as_ref();
        let Some(slot) = labels.get_mut(f.example) else {
            return Err(Error::Data(format!(
                "stitch: segment {i} belongs to sentence {}, but only {} sentences were given",
                f.example,
                num_words.len()
            )));
        };
        let end = f.first_word + f.num_words;
        if f.first_word != next[f.example] || end > slot.len() {
            return Err(Error::Data(format!(
                "stitch: segment {i} of sentence {} covers words {}..{end}, expected it to start at word {} of {}",
                f.example,
                f.first_word,
                next[f.example],
                slot.len()
            )));
        }
        next[f.example] = end;
        if pred.len() < f.ids.len() {
            return Err(Error::Data(format!(
                "stitch: segment {i} has {} positions but {} predictions",
                f.ids.len(),
                pred.len()
            )));
        }
        for (pos, w) in f.first_subtokens() {
            if w < f.first_word || w >= end || slot[w].is_some() {
                return Err(Error::Data(format!(
                    "stitch: segment {i} of sentence {} labels word {w} outside its words {}..{end} or twice",
                    f.example, f.first_word
                )));
            }
            slot[w] = Some(pred[pos]);
        }
        // Words of the range without a first sub-token are the words without sub-tokens.
        for l in &mut slot[f.first_word..end] {
            if l.is_none() {
                *l = Some(fallback);
                fallback_words += 1;
            }
        }
    }
    for (e, (&n, &got)) in num_words.iter().zip(&next).enumerate() {
        if got != n {
            return Err(Error::Data(format!(
                "stitch: the segments of sentence {e} cover words 0..{got}, expected 0..{n}"
            )));
        }
    }
    Ok(Stitched {
        labels: labels.into_iter().map(|s| s.into_iter().map(|l| l.unwrap_or(fallback)).collect()).collect(),
        fallback_words,
    })
}
