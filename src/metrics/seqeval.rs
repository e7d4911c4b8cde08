//! seqeval 0.0.12 chunk precision / recall / F1 (PAN-X and, by the XTREME convention, UDPOS)
//! and token accuracy, as a streaming metric.
//!
//! seqeval 0.0.12 reads every label as `tag = label[0]` and `type = label.split('-')[-1]`,
//! with no validation. For BIO entity tags that is ordinary chunking; a sequence may start a
//! chunk with `I-`. For plain POS tags (`NOUN`, `VERB`, ...) it means: consecutive identical
//! tags merge into one chunk, tags starting with `S` (`SCONJ`, `SYM`) are always one-token
//! chunks, and `INTJ` behaves like an `I-` tag. XTREME and jiant report this chunk F1 as the
//! UDPOS "F1"; it is not token accuracy, which is computed alongside.
//!
//! Sentences are scored as seqeval scores a list of lists: concatenated with an `O` after each
//! sentence and one more `O` at the end, chunks identified by (type, start, end) in that
//! concatenated sequence, micro-averaged over sets of chunks.

use crate::error::{Error, Result};
use std::collections::HashSet;

/// One chunk: its type and the inclusive (start, end) positions in the concatenated sequence.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Chunk {
    /// `label.split('-')[-1]` of the labels in the chunk, e.g. `PER` or `NOUN`.
    pub ty: String,
    /// First position.
    pub start: usize,
    /// Last position (inclusive).
    pub end: usize,
}

/// The chunker's state between two labels (`prev_tag`, `prev_type`, `begin_offset`, `i`).
#[derive(Clone, Debug)]
struct Cursor {
    prev_tag: char,
    prev_type: String,
    begin: usize,
    pos: usize,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor { prev_tag: 'O', prev_type: String::new(), begin: 0, pos: 0 }
    }
}

/// seqeval `end_of_chunk(prev_tag, tag, prev_type, type_)`.
fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (prev_tag == 'B' && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag == 'I' && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != ty)
}

/// seqeval `start_of_chunk(prev_tag, tag, prev_type, type_)`.
fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != ty)
}

impl Cursor {
    /// Feeds one label; returns the chunk it closes, if any. `label` must be non-empty.
    fn step(&mut self, label: &str) -> Option<Chunk> {
        let tag = label.chars().next().unwrap_or('O');
        let ty = label.rsplit('-').next().unwrap_or("");
        let mut closed = None;
        if end_of_chunk(self.prev_tag, tag, &self.prev_type, ty) {
            // i - 1: never reached at i = 0, where prev_tag is the initial 'O'.
            closed = Some(Chunk { ty: self.prev_type.clone(), start: self.begin, end: self.pos.saturating_sub(1) });
        }
        if start_of_chunk(self.prev_tag, tag, &self.prev_type, ty) {
            self.begin = self.pos;
        }
        self.prev_tag = tag;
        self.prev_type.clear();
        self.prev_type.push_str(ty);
        self.pos += 1;
        closed
    }
}

/// Chunks of one side (gold or predicted), built label by label.
#[derive(Clone, Debug, Default)]
struct Chunker {
    cursor: Cursor,
    chunks: HashSet<Chunk>,
}

impl Chunker {
    fn push(&mut self, label: &str) {
        if let Some(c) = self.cursor.step(label) {
            self.chunks.insert(c);
        }
    }
}

fn check_labels<S: AsRef<str>>(labels: &[S], side: &str) -> Result<()> {
    match labels.iter().position(|l| l.as_ref().is_empty()) {
        Some(i) => Err(Error::Data(format!("seqeval: empty {side} label at position {i} of a sentence"))),
        None => Ok(()),
    }
}

/// seqeval 0.0.12 `get_entities` over a list of sentences (each followed by `O`, plus a final
/// `O`), in the order chunks close. Labels must be non-empty.
pub fn get_entities<S: AsRef<str>>(sentences: &[Vec<S>]) -> Result<Vec<Chunk>> {
    let mut cursor = Cursor::default();
    let mut out = Vec::new();
    for s in sentences {
        check_labels(s, "a")?;
        for l in s.iter().map(AsRef::as_ref).chain(std::iter::once("O")) {
            out.extend(cursor.step(l));
        }
    }
    out.extend(cursor.step("O"));
    Ok(out)
}

/// Scores of [`Seqeval::compute`]; rates are fractions in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeqevalScores {
    /// Micro chunk precision, `correct / predicted` (0 when nothing was predicted).
    pub precision: f64,
    /// Micro chunk recall, `correct / gold` (0 when there is no gold chunk).
    pub recall: f64,
    /// 2PR / (P + R), 0 when P + R = 0.
    pub f1: f64,
    /// Token accuracy over all labels (seqeval `accuracy_score`; 0 when empty).
    pub accuracy: f64,
    /// Gold chunks.
    pub n_gold: usize,
    /// Predicted chunks.
    pub n_pred: usize,
    /// Predicted chunks that are also gold chunks.
    pub n_correct: usize,
    /// Labels seen.
    pub tokens: usize,
    /// Sentences seen.
    pub sentences: usize,
}

/// Streaming seqeval 0.0.12: `update` once per sentence, `compute` at any time.
#[derive(Clone, Debug, Default)]
pub struct Seqeval {
    gold: Chunker,
    pred: Chunker,
    tokens: usize,
    correct_tokens: usize,
    sentences: usize,
}

impl Seqeval {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sentence: its gold and predicted labels, of equal length, none empty.
    pub fn update<S: AsRef<str>, P: AsRef<str>>(&mut self, gold: &[S], pred: &[P]) -> Result<()> {
        if gold.len() != pred.len() {
            return Err(Error::Usage(format!(
                "seqeval: sentence {} has {} gold labels but {} predicted labels",
                self.sentences,
                gold.len(),
                pred.len()
            )));
        }
        check_labels(gold, "gold")?;
        check_labels(pred, "predicted")?;
        for (g, p) in gold.iter().zip(pred) {
            let (g, p) = (g.as_ref(), p.as_ref());
            self.gold.push(g);
            self.pred.push(p);
            self.correct_tokens += usize::from(g == p);
        }
        // The `O` seqeval appends to every sentence of a list of lists.
        self.gold.push("O");
        self.pred.push("O");
        self.tokens += gold.len();
        self.sentences += 1;
        Ok(())
    }

    /// Precision, recall, F1 and token accuracy of everything added so far.
    pub fn compute(&self) -> SeqevalScores {
        // seqeval also appends one final `O` after the last sentence's `O`. It never closes a
        // chunk: with prev_tag 'O' no `end_of_chunk` rule fires. So the closed sets are final.
        let (small, large) = if self.gold.chunks.len() <= self.pred.chunks.len() {
            (&self.gold.chunks, &self.pred.chunks)
        } else {
            (&self.pred.chunks, &self.gold.chunks)
        };
        let n_correct = small.iter().filter(|c| large.contains(*c)).count();
        let n_gold = self.gold.chunks.len();
        let n_pred = self.pred.chunks.len();
        let precision = if n_pred > 0 { n_correct as f64 / n_pred as f64 } else { 0.0 };
        let recall = if n_gold > 0 { n_correct as f64 / n_gold as f64 } else { 0.0 };
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        let accuracy = if self.tokens > 0 { self.correct_tokens as f64 / self.tokens as f64 } else { 0.0 };
        SeqevalScores {
            precision,
            recall,
            f1,
            accuracy,
            n_gold,
            n_pred,
            n_correct,
            tokens: self.tokens,
            sentences: self.sentences,
        }
    }

    /// Forgets everything added.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}
