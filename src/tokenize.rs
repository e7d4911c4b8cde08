//! Tokenization through the `tokenizers` crate from an HF `tokenizer.json`, with each family's
//! special-token template built here (so a tokenizer.json without a post-processor still works):
//! XLM-R `<s> A </s></s> B </s>` (token types all 0), BERT `[CLS] A [SEP] B [SEP]` (segments
//! 0/1); longest-first pair truncation; pre-tokenized words with word ids for tagging.

use crate::config::Family;
use crate::error::{Error, Result};
use std::path::Path;

/// One encoded input with its special tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids including special tokens.
    pub ids: Vec<u32>,
    /// Token type (segment) ids.
    pub types: Vec<u32>,
    /// For pre-tokenized input: the word each token came from (None for special tokens).
    pub word_ids: Vec<Option<u32>>,
    /// Whether truncation removed tokens.
    pub truncated: bool,
}

/// A family-aware wrapper around `tokenizers::Tokenizer`.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    family: Family,
    /// `<s>` / `[CLS]`
    pub cls_id: u32,
    /// `</s>` / `[SEP]`
    pub sep_id: u32,
    /// `<pad>` / `[PAD]`
    pub pad_id: u32,
}

impl Tokenizer {
    /// Loads `tokenizer.json` for a model of `family`.
    pub fn from_file(path: &Path, family: Family) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::format(path, "tokenizer file not found (expected an HF tokenizer.json)"));
        }
        let text = crate::fsutil::read_text(path, Some("HF tokenizer.json"))?;
        let mut inner = tokenizers::Tokenizer::from_bytes(text.as_bytes())
            .map_err(|e| Error::format(path, format!("not a valid HF tokenizer.json: {e}")))?;
        // Truncation and padding are done here, per family, not by the file's settings.
        inner.with_truncation(None).map_err(|e| Error::format(path, format!("cannot disable truncation: {e}")))?;
        inner.with_padding(None);
        let (cls, sep, pad) = match family {
            Family::XlmRoberta => ("<s>", "</s>", "<pad>"),
            Family::Bert => ("[CLS]", "[SEP]", "[PAD]"),
        };
        let id = |tok: &str| {
            inner.token_to_id(tok).ok_or_else(|| {
                Error::format(
                    path,
                    format!("special token {tok:?} is not in the vocabulary; is this a {family:?} tokenizer?"),
                )
            })
        };
        Ok(Tokenizer { cls_id: id(cls)?, sep_id: id(sep)?, pad_id: id(pad)?, family, inner })
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The mask token's id (`<mask>` / `[MASK]`), or an error when the vocabulary has none.
    pub fn mask_id(&self) -> Result<u32> {
        let name = match self.family {
            Family::XlmRoberta => "<mask>",
            Family::Bert => "[MASK]",
        };
        self.token_id(name)
            .ok_or_else(|| Error::Tokenizer(format!("the vocabulary has no mask token {name:?}; MLM needs one")))
    }

    /// The model family whose special-token template this tokenizer applies.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Number of ids the tokenizer can produce (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Number of special tokens added around one sequence (`pair` = two sequences).
    pub fn num_special(&self, pair: bool) -> usize {
        match (self.family, pair) {
            (_, false) => 2,
            (Family::XlmRoberta, true) => 4,
            (Family::Bert, true) => 3,
        }
    }

    /// Sub-word ids of raw text, without special tokens.
    pub fn tokens(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encodes a single text or a pair, truncated (longest first) so the result, special tokens
    /// included, has at most `max_len` tokens.
    pub fn encode(&self, a: &str, b: Option<&str>, max_len: usize) -> Result<Encoded> {
        let mut ta = self.tokens(a)?;
        let mut tb = match b {
            Some(b) => Some(self.tokens(b)?),
            None => None,
        };
        let budget = max_len
            .checked_sub(self.num_special(tb.is_some()))
            .ok_or_else(|| Error::Setting(format!("max length {max_len} leaves no room for the special tokens")))?;
        let truncated = truncate_longest_first(&mut ta, tb.as_mut(), budget);
        let mut e = self.with_specials(&ta, tb.as_deref(), None);
        e.truncated = truncated;
        Ok(e)
    }

    /// Encodes pre-tokenized words (e.g. a tagging sentence), keeping each token's word id.
    /// Truncates to `max_len` tokens including the special tokens.
    pub fn encode_words(&self, words: &[&str], max_len: usize) -> Result<Encoded> {
        let enc = self.inner.encode(words, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut ids = enc.get_ids().to_vec();
        let mut wids: Vec<Option<u32>> = enc.get_word_ids().to_vec();
        let budget = max_len.checked_sub(2).ok_or_else(|| Error::Setting("max length below 2".into()))?;
        let truncated = ids.len() > budget;
        ids.truncate(budget);
        wids.truncate(budget);
        let mut e = self.with_specials(&ids, None, Some(&wids));
        e.truncated = truncated;
        Ok(e)
    }

    /// Wraps token ids in the family's template.
    fn with_specials(&self, a: &[u32], b: Option<&[u32]>, word_ids: Option<&[Option<u32>]>) -> Encoded {
        let (cls, sep) = (self.cls_id, self.sep_id);
        let mut ids = Vec::with_capacity(a.len() + b.map_or(0, |b| b.len()) + 4);
        let mut types = Vec::with_capacity(ids.capacity());
        ids.push(cls);
        ids.extend_from_slice(a);
        ids.push(sep);
        types.resize(ids.len(), 0);
        if let Some(b) = b {
            let seg = match self.family {
                Family::XlmRoberta => {
                    ids.push(sep);
                    types.push(0);
                    0
                }
                Family::Bert => 1,
            };
            ids.extend_from_slice(b);
            ids.push(sep);
            types.resize(ids.len(), seg);
        }
        let word_ids = match word_ids {
            Some(w) => std::iter::once(None).chain(w.iter().copied()).chain(std::iter::once(None)).collect(),
            None => Vec::new(),
        };
        Encoded { ids, types, word_ids, truncated: false }
    }
}

/// Longest-first truncation of a pair to `budget` tokens in all, as HF `tokenizers` does it:
/// if cutting the longer side down to `budget - shorter` suffices, only it is cut; otherwise
/// the shorter side keeps `budget / 2` and the longer `budget / 2 + budget % 2` (the second
/// side counts as the longer on ties). Returns whether anything was removed.
pub fn truncate_longest_first(a: &mut Vec<u32>, b: Option<&mut Vec<u32>>, budget: usize) -> bool {
    let Some(b) = b else {
        let cut = a.len() > budget;
        a.truncate(budget);
        return cut;
    };
    if a.len() + b.len() <= budget {
        return false;
    }
    let swap = a.len() > b.len();
    let mut n1 = a.len().min(b.len());
    let mut n2 = if n1 > budget { n1 } else { n1.max(budget - n1) };
    if n1 + n2 > budget {
        n1 = budget / 2;
        n2 = n1 + budget % 2;
    }
    let (na, nb) = if swap { (n2, n1) } else { (n1, n2) };
    a.truncate(na);
    b.truncate(nb);
    true
}

#[cfg(test)]
mod tests {
    use super::truncate_longest_first;

    #[test]
    fn longest_first_matches_hf_tokenizers() {
        let (mut a, mut b) = (vec![1; 10], vec![2; 4]);
        assert!(truncate_longest_first(&mut a, Some(&mut b), 10));
        assert_eq!((a.len(), b.len()), (6, 4));
        let (mut a, mut b) = (vec![1; 7], vec![2; 7]);
        assert!(truncate_longest_first(&mut a, Some(&mut b), 9));
        assert_eq!((a.len(), b.len()), (4, 5));
        let (mut a, mut b) = (vec![1; 12], vec![2; 9]);
        assert!(truncate_longest_first(&mut a, Some(&mut b), 8));
        assert_eq!((a.len(), b.len()), (4, 4));
        let (mut a, mut b) = (vec![1; 3], vec![2; 3]);
        assert!(!truncate_longest_first(&mut a, Some(&mut b), 6));
    }
}
