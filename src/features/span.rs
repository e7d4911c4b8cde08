//! Extractive QA (SQuAD, XQuAD, MLQA, TyDiQA-GoldP): examples to doc-stride windows, and
//! window logits back to an answer string. Featurisation follows HF
//! `squad_convert_example_to_features` (as ported by jiant's `squad_style/core.py`), decoding
//! follows `compute_predictions_logits`.
//!
//! Featurisation: the context is split on whitespace (space, `\t`, `\r`, `\n`, U+202F) into
//! doc words, each word is sub-tokenized on its own, the question is cut to `max_query_len`
//! sub-tokens, and windows of at most `max_seq_len − len(q) − num_special(pair)` context
//! sub-tokens start every `doc_stride` sub-tokens until one reaches the end of the context.
//! Each window is laid out with the family's pair template, question first:
//! XLM-R `<s> q </s></s> ctx </s>` (types all 0), BERT `[CLS] q [SEP] ctx [SEP]` (ctx and its
//! `[SEP]` type 1). The context starts at `len(q) + 3` for XLM-R and `len(q) + 2` for BERT;
//! jiant computes `len(q) + 2` for XLM-R too (its multi-separator set misses `xlmroberta`),
//! which shifts its labels and token map one position left. This module uses the true offset.
//!
//! Decoding reads the answer back from the original context, from the first character of the
//! first doc word to the last character of the last doc word of the best span. HF instead
//! re-aligns the predicted sub-tokens inside those words with BERT's BasicTokenizer
//! (`get_final_text`), which can trim punctuation glued to a word; whole words keep the
//! context's own spelling and spacing for every script, and SQuAD/MLQA normalisation strips
//! punctuation before scoring anyway.

use crate::config::Family;
use crate::error::{Error, Result};
use crate::tasks::SpanExample;
use crate::tokenize::Tokenizer;

/// Candidates per side kept by [`decode`] in XTREME and jiant (`n_best_size`).
pub const N_BEST: usize = 20;

/// Longest answer, in sub-tokens, [`decode`] accepts in XTREME and jiant (`max_answer_length`).
pub const MAX_ANSWER_LEN: usize = 30;

/// Window sizes for [`featurize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanFeatureConfig {
    /// Tokens per window, special tokens included (384).
    pub max_seq_len: usize,
    /// Context sub-tokens between the starts of consecutive windows (128).
    pub doc_stride: usize,
    /// Question sub-tokens kept; the rest is cut (64).
    pub max_query_len: usize,
}

impl Default for SpanFeatureConfig {
    fn default() -> Self {
        SpanFeatureConfig { max_seq_len: 384, doc_stride: 128, max_query_len: 64 }
    }
}

/// One whitespace-delimited word of a context, by its place in the context string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocWord {
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset one past the last character (`&context[start..end]` is the word).
    pub end: usize,
    /// Character (Unicode scalar, as Python indexes `str`) offset of the first character.
    pub start_char: usize,
    /// Character offset one past the last character.
    pub end_char: usize,
}

/// The whitespace of SQuAD featurisation (`_is_whitespace`): space, `\t`, `\r`, `\n` and
/// U+202F NARROW NO-BREAK SPACE. Other Unicode spaces stay inside words.
pub fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{202F}')
}

/// Splits a context into doc words on [`is_whitespace`], keeping each word's offsets.
pub fn doc_words(context: &str) -> Vec<DocWord> {
    let mut words: Vec<DocWord> = Vec::new();
    let mut in_word = false;
    for (ci, (b, c)) in context.char_indices().enumerate() {
        if is_whitespace(c) {
            in_word = false;
        } else if in_word {
            if let Some(w) = words.last_mut() {
                w.end = b + c.len_utf8();
                w.end_char = ci + 1;
            }
        } else {
            words.push(DocWord { start: b, end: b + c.len_utf8(), start_char: ci, end_char: ci + 1 });
            in_word = true;
        }
    }
    words
}

/// One window of one question: model inputs (unpadded; pad with [`Tokenizer::pad_id`], type 0,
/// mask 0) and what is needed to map positions back to the context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanFeature {
    /// Token ids with the special tokens (at most `max_seq_len`).
    pub ids: Vec<u32>,
    /// Token type ids: all 0 for XLM-R; for BERT 0 up to the first `[SEP]`, then 1.
    pub types: Vec<u32>,
    /// Which window of its example this is (0, 1, ...).
    pub window_index: usize,
    /// Index, among the context's sub-tokens, of this window's first context token.
    pub window_start: usize,
    /// Index in `ids` of the first context token: `len(q) + 3` (XLM-R), `len(q) + 2` (BERT).
    pub context_offset: usize,
    /// Number of context tokens in the window (`ids[context_offset..context_offset + context_len]`).
    pub context_len: usize,
    /// For each token of `ids`, the doc word (index into [`doc_words`]) it came from; `None`
    /// for question and special tokens.
    pub token_to_orig: Vec<Option<usize>>,
    /// For each token of `ids`, whether this window gives it the most context of all windows
    /// (largest `min(left, right) + 0.01·context_len`, first window on ties); false outside
    /// the context. Each context sub-token is max-context in exactly one window.
    pub token_is_max_context: Vec<bool>,
    /// Training: gold start position in `ids`, 0 (the CLS token) when the answer does not lie
    /// wholly inside this window or the question has no answer. `None` when not training.
    pub start: Option<usize>,
    /// Training: gold end position in `ids` (inclusive), 0 like `start`. `None` when not training.
    pub end: Option<usize>,
}

/// A training example that produced no features, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Question id.
    pub id: String,
    /// Why its answer could not be placed in the context.
    pub reason: String,
}

/// The features of many examples, with the examples dropped on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanFeatureSet {
    /// All windows, example by example, in example order.
    pub features: Vec<SpanFeature>,
    /// For each feature, the index of its example in the input slice.
    pub example_index: Vec<usize>,
    /// Training examples whose answer was not found (HF logs "Could not find answer" and drops them).
    pub skipped: Vec<Skipped>,
}

/// Context sub-tokens with their word map (`tok_to_orig_index`, `orig_to_tok_index`).
struct DocTokens {
    /// Sub-token ids of the whole context.
    ids: Vec<u32>,
    /// For each sub-token, its doc word.
    tok_to_orig: Vec<usize>,
    /// For each doc word, the index of its first sub-token (the next word's when it has none).
    orig_to_tok: Vec<usize>,
}

fn tokenize_doc(tok: &Tokenizer, context: &str, words: &[DocWord]) -> Result<DocTokens> {
    let mut d = DocTokens { ids: Vec::new(), tok_to_orig: Vec::new(), orig_to_tok: Vec::with_capacity(words.len()) };
    for (wi, w) in words.iter().enumerate() {
        d.orig_to_tok.push(d.ids.len());
        let sub = tok.tokens(&context[w.start..w.end])?;
        d.tok_to_orig.extend(std::iter::repeat_n(wi, sub.len()));
        d.ids.extend(sub);
    }
    Ok(d)
}

/// The gold answer as an inclusive doc-word span, or why it cannot be found. Mirrors
/// `SquadExample.__init__` (`char_to_word_offset`) and the "Could not find answer" check: the
/// words covering the answer's characters, joined by single spaces, must contain the answer
/// with its whitespace runs collapsed.
fn answer_words(
    context: &str,
    words: &[DocWord],
    text: &str,
    start_char: usize,
) -> std::result::Result<(usize, usize), String> {
    let n_chars = context.chars().count();
    let len = text.chars().count();
    if len == 0 {
        return Err("the answer text is empty".into());
    }
    if start_char >= n_chars {
        return Err(format!("the answer starts at character {start_char} but the context has {n_chars} characters"));
    }
    let end_char = (start_char + len - 1).min(n_chars - 1);
    // char_to_word_offset: a whitespace character belongs to the word before it.
    let word_at = |c: usize| words.iter().rposition(|w| w.start_char <= c);
    let Some(s) = word_at(start_char) else {
        return Err(format!("the answer starts at character {start_char}, in whitespace before the first word"));
    };
    let e = word_at(end_char).unwrap_or(s);
    let actual: Vec<&str> = words[s..=e].iter().map(|w| &context[w.start..w.end]).collect();
    let actual = actual.join(" ");
    let cleaned: Vec<&str> = text.split_whitespace().collect();
    if !actual.contains(&cleaned.join(" ")) {
        return Err(format!("answer {text:?} not found at character {start_char}: the context there reads {actual:?}"));
    }
    Ok((s, e))
}

/// The answer's sub-token span (inclusive), as `_improve_answer_span`: inside the words' span,
/// the tightest sub-span whose sub-tokens equal the answer tokenized on its own; the whole
/// words' span when none does.
fn answer_tokens(
    tok: &Tokenizer,
    doc: &DocTokens,
    text: &str,
    (s, e): (usize, usize),
) -> Result<std::result::Result<(usize, usize), String>> {
    let tok_start = doc.orig_to_tok[s];
    let next = doc.orig_to_tok.get(e + 1).copied().unwrap_or(doc.ids.len());
    let Some(tok_end) = next.checked_sub(1).filter(|&t| t >= tok_start && t < doc.ids.len()) else {
        return Ok(Err(format!("the answer's words (doc words {s}..={e}) have no sub-tokens")));
    };
    let want = tok.tokens(text)?;
    for new_start in tok_start..=tok_end {
        for new_end in (new_start..=tok_end).rev() {
            if doc.ids[new_start..=new_end] == want[..] {
                return Ok(Ok((new_start, new_end)));
            }
        }
    }
    Ok(Ok((tok_start, tok_end)))
}

/// Whether the window `cur` gives doc token `pos` the most context (`_new_check_is_max_context`):
/// score `min(left, right) + 0.01·len`, compared here as `100·min + len` to stay exact.
fn is_max_context(windows: &[(usize, usize)], cur: usize, pos: usize) -> bool {
    let mut best: Option<(usize, usize)> = None;
    for (i, &(start, len)) in windows.iter().enumerate() {
        if pos < start || pos >= start + len {
            continue;
        }
        let score = 100 * (pos - start).min(start + len - 1 - pos) + len;
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((i, score));
        }
    }
    best.is_some_and(|(i, _)| i == cur)
}

/// Why a training example yields no features, or its features.
fn featurize_inner(
    tok: &Tokenizer,
    family: Family,
    ex: &SpanExample,
    cfg: &SpanFeatureConfig,
    train: bool,
) -> Result<std::result::Result<Vec<SpanFeature>, String>> {
    let id = &ex.id;
    if cfg.doc_stride == 0 {
        return Err(Error::Data(format!("question {id:?}: doc_stride must be at least 1, found 0")));
    }
    let mut q = tok.tokens(&ex.question)?;
    q.truncate(cfg.max_query_len);
    let n_special = tok.num_special(true);
    let max_ctx = cfg.max_seq_len.checked_sub(q.len() + n_special).filter(|&p| p > 0).ok_or_else(|| {
        Error::Data(format!(
            "question {id:?}: max_seq_len {} leaves no room for context after {} question tokens and {n_special} special tokens",
            cfg.max_seq_len,
            q.len()
        ))
    })?;
    let words = doc_words(&ex.context);
    let doc = tokenize_doc(tok, &ex.context, &words)?;

    // Gold sub-token span; None for a question without an answer (every window points at CLS).
    let gold = if !train {
        None
    } else {
        let answers = ex.answers.as_deref().ok_or_else(|| {
            Error::Data(format!("question {id:?}: training needs gold answers, found none (a test file?)"))
        })?;
        match answers.first() {
            Some(a) if !ex.is_impossible => {
                let span = match answer_words(&ex.context, &words, &a.text, a.start_char) {
                    Ok(span) => span,
                    Err(why) => return Ok(Err(why)),
                };
                match answer_tokens(tok, &doc, &a.text, span)? {
                    Ok(t) => Some(t),
                    Err(why) => return Ok(Err(why)),
                }
            }
            _ => None,
        }
    };

    // Windows (start, len) over the context sub-tokens, as BERT's run_squad: every doc_stride
    // tokens until one reaches the end. (HF's later loop gives the same windows.)
    let n = doc.ids.len();
    let mut windows: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    while start < n {
        let len = (n - start).min(max_ctx);
        windows.push((start, len));
        if start + len == n {
            break;
        }
        start += len.min(cfg.doc_stride);
    }

    let (cls, sep) = (tok.cls_id, tok.sep_id);
    let mut out = Vec::with_capacity(windows.len());
    for (wi, &(ws, wl)) in windows.iter().enumerate() {
        let mut ids = Vec::with_capacity(q.len() + wl + n_special);
        ids.push(cls);
        ids.extend_from_slice(&q);
        ids.push(sep);
        let context_type = match family {
            Family::XlmRoberta => {
                ids.push(sep);
                0
            }
            Family::Bert => 1,
        };
        let mut types = vec![0u32; ids.len()];
        let off = ids.len();
        ids.extend_from_slice(&doc.ids[ws..ws + wl]);
        ids.push(sep);
        types.resize(ids.len(), context_type);
        if ids.len() != q.len() + wl + n_special {
            return Err(Error::Data(format!(
                "question {id:?}: the {family:?} template adds {} special tokens but the tokenizer expects {n_special}; \
                 tokenizer and model family disagree",
                ids.len() - q.len() - wl
            )));
        }
        let mut token_to_orig = vec![None; ids.len()];
        let mut token_is_max_context = vec![false; ids.len()];
        for i in 0..wl {
            token_to_orig[off + i] = Some(doc.tok_to_orig[ws + i]);
            token_is_max_context[off + i] = is_max_context(&windows, wi, ws + i);
        }
        let (start, end) = match (train, gold) {
            (false, _) => (None, None),
            (true, Some((ts, te))) if ts >= ws && te < ws + wl => (Some(ts - ws + off), Some(te - ws + off)),
            (true, _) => (Some(0), Some(0)),
        };
        out.push(SpanFeature {
            ids,
            types,
            window_index: wi,
            window_start: ws,
            context_offset: off,
            context_len: wl,
            token_to_orig,
            token_is_max_context,
            start,
            end,
        });
    }
    Ok(Ok(out))
}

/// The windows of one question (`squad_convert_example_to_features`). With `train`, gold
/// positions come from the first answer (as HF); a question marked impossible, or with
/// `Some(vec![])` answers, points at CLS in every window.
///
/// A training example whose answer cannot be placed in its context (offset past the end, text
/// not matching the words there, answer words without sub-tokens) yields `Ok(vec![])`, the way
/// HF drops it; [`featurize_all`] collects those in [`SpanFeatureSet::skipped`] with the reason.
/// A context without sub-tokens also yields no windows. Errors: training without answers
/// (`answers: None`), a window size that leaves no room for context, `doc_stride` 0, a
/// tokenizer failure; each names the question id.
pub fn featurize(
    tok: &Tokenizer,
    family: Family,
    ex: &SpanExample,
    cfg: &SpanFeatureConfig,
    train: bool,
) -> Result<Vec<SpanFeature>> {
    Ok(featurize_inner(tok, family, ex, cfg, train)?.unwrap_or_default())
}

/// [`featurize`] over many examples, keeping each feature's example index and the list of
/// dropped training examples.
pub fn featurize_all(
    tok: &Tokenizer,
    family: Family,
    examples: &[SpanExample],
    cfg: &SpanFeatureConfig,
    train: bool,
) -> Result<SpanFeatureSet> {
    let mut set = SpanFeatureSet::default();
    for (i, ex) in examples.iter().enumerate() {
        match featurize_inner(tok, family, ex, cfg, train)? {
            Ok(features) => {
                set.example_index.extend(std::iter::repeat_n(i, features.len()));
                set.features.extend(features);
            }
            Err(reason) => set.skipped.push(Skipped { id: ex.id.clone(), reason }),
        }
    }
    Ok(set)
}

/// The best answer span of one question.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanPrediction {
    /// The answer: the context from the first doc word's first character to the last doc
    /// word's last character.
    pub text: String,
    /// Which feature (window) it came from.
    pub feature: usize,
    /// Start position in that feature's `ids`.
    pub start_token: usize,
    /// End position (inclusive) in that feature's `ids`.
    pub end_token: usize,
    /// First doc word (index into [`doc_words`]).
    pub start_word: usize,
    /// Last doc word (inclusive).
    pub end_word: usize,
    /// Start logit + end logit.
    pub score: f64,
}

/// Indices of the `n` largest values, largest first, earlier index first on ties (Python's
/// stable `sorted(..., reverse=True)`); NaN ranks as −∞.
fn top_n(row: &[f32], n: usize) -> Vec<usize> {
    let key = |i: usize| if row[i].is_nan() { f32::NEG_INFINITY } else { row[i] };
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
    idx.truncate(n);
    idx
}

/// The best-scoring valid span over all windows of `ex` (`compute_predictions_logits`), or
/// `None` when no candidate survives. `start_logits[f]` / `end_logits[f]` are feature `f`'s
/// logits, one per position; rows may be longer than `ids` (padding), and like HF the top
/// `n_best` are taken over the whole row, padding included. A candidate pair is discarded
/// when either position is outside the context (or past `ids`), its start is not
/// max-context, `end < start`, or it is longer than `max_answer_len` sub-tokens; the rest are
/// ranked by start + end logit, the first found winning ties.
pub fn best_span<S: AsRef<[f32]>>(
    ex: &SpanExample,
    features: &[SpanFeature],
    start_logits: &[S],
    end_logits: &[S],
    n_best: usize,
    max_answer_len: usize,
) -> Result<Option<SpanPrediction>> {
    let id = &ex.id;
    if start_logits.len() != features.len() || end_logits.len() != features.len() {
        return Err(Error::Data(format!(
            "question {id:?}: expected start and end logits for {} features, found {} and {}",
            features.len(),
            start_logits.len(),
            end_logits.len()
        )));
    }
    let words = doc_words(&ex.context);
    let mut best: Option<SpanPrediction> = None;
    for (fi, f) in features.iter().enumerate() {
        let (sl, el) = (start_logits[fi].as_ref(), end_logits[fi].as_ref());
        if sl.len() < f.ids.len() || el.len() < f.ids.len() {
            return Err(Error::Data(format!(
                "question {id:?}: feature {fi} has {} tokens but {} start and {} end logits",
                f.ids.len(),
                sl.len(),
                el.len()
            )));
        }
        let logit = |row: &[f32], i: usize| if row[i].is_nan() { f64::NEG_INFINITY } else { row[i] as f64 };
        let ends = top_n(el, n_best);
        for s in top_n(sl, n_best) {
            let Some(Some(ws)) = f.token_to_orig.get(s).copied() else { continue };
            if !f.token_is_max_context.get(s).copied().unwrap_or(false) {
                continue;
            }
            for &e in &ends {
                let Some(Some(we)) = f.token_to_orig.get(e).copied() else { continue };
                if e < s || e - s + 1 > max_answer_len {
                    continue;
                }
                let score = logit(sl, s) + logit(el, e);
                if best.as_ref().is_some_and(|b| score <= b.score) {
                    continue;
                }
                let (Some(first), Some(last)) = (words.get(ws), words.get(we)) else {
                    return Err(Error::Data(format!(
                        "question {id:?}: feature {fi} maps to doc word {} but the context has {} words; \
                         were the features built from another example?",
                        ws.max(we),
                        words.len()
                    )));
                };
                best = Some(SpanPrediction {
                    text: ex.context[first.start..last.end].to_string(),
                    feature: fi,
                    start_token: s,
                    end_token: e,
                    start_word: ws,
                    end_word: we,
                    score,
                });
            }
        }
    }
    Ok(best)
}

/// The predicted answer text of one question ([`best_span`]), `""` when no span is valid.
/// XTREME and jiant use `n_best` = [`N_BEST`], `max_answer_len` = [`MAX_ANSWER_LEN`].
pub fn decode<S: AsRef<[f32]>>(
    ex: &SpanExample,
    features: &[SpanFeature],
    start_logits: &[S],
    end_logits: &[S],
    n_best: usize,
    max_answer_len: usize,
) -> Result<String> {
    Ok(best_span(ex, features, start_logits, end_logits, n_best, max_answer_len)?.map(|p| p.text).unwrap_or_default())
}
