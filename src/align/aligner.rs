//! `xlt align`: word alignments of sentence pairs from one layer of xlt's encoder, with the
//! published tools' contract (awesome-align's `softmax`, SimAlign's `argmax` and `itermax`).
//!
//! Each word is tokenised alone with the model's whole `tokenizer.json` pipeline and no special
//! tokens; every piece belongs to its word. The source and the target side are encoded
//! separately, each as `[CLS] pieces [SEP]` / `<s> pieces </s>`; `hidden_states[layer]` (0 = the
//! embeddings) without the two special positions gives one row per piece. Sequences are sorted
//! by length and batched, a chunk of pairs at a time (so memory is bounded whatever the file's
//! size), on the CPU or the GPU encoder; the batch size changes no output. A side longer than
//! the model's positions keeps its first pieces, as awesome-align truncates, and is counted.

use super::extract::{piece_links, word_links, Method};
use super::pairs::parse_pair;
use super::pharaoh::{format_line, Link};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::features::classification::pad_sequences;
use crate::model::{Batch, SentenceEncoder};
use crate::tokenize::Tokenizer;
use rayon::prelude::*;
use std::collections::HashMap;

/// awesome-align's defaults: layer 8, softmax, τ = 1e-3.
pub const DEFAULT_LAYER: usize = 8;
/// awesome-align's softmax threshold.
pub const DEFAULT_THRESHOLD: f32 = 1e-3;
/// Pieces whose hidden states one chunk holds at most (both sides of its pairs together).
const CHUNK_PIECES: usize = 1 << 16;

/// How to align.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlignSettings {
    /// Index into HF `hidden_states`: 0 = embedding output.
    pub layer: usize,
    /// The extraction method.
    pub method: Method,
    /// Sequences per encoder batch.
    pub batch_size: usize,
}

/// One side of a pair, tokenised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Side {
    /// The pieces' ids, without special tokens.
    pub ids: Vec<u32>,
    /// The word of each piece (`ids.len()` entries).
    pub words: Vec<usize>,
    /// Whether pieces beyond the model's positions were dropped.
    pub truncated: bool,
}

impl Side {
    /// The side as the encoder reads it: `[CLS] pieces [SEP]` / `<s> pieces </s>`, at most its
    /// first `max_pieces` pieces.
    pub fn sequence(&self, tok: &Tokenizer, max_pieces: usize) -> Vec<u32> {
        let pieces = &self.ids[..self.ids.len().min(max_pieces)];
        let mut ids = Vec::with_capacity(pieces.len() + 2);
        ids.push(tok.cls_id);
        ids.extend_from_slice(pieces);
        ids.push(tok.sep_id);
        ids
    }
}

/// Pads sequences of token type 0 into one batch.
pub fn pad_batch<S: AsRef<[u32]>>(seqs: &[S], pad: u32) -> Batch {
    let zeros = vec![0u32; seqs.iter().map(|s| s.as_ref().len()).max().unwrap_or(0)];
    let rows: Vec<(&[u32], &[u32])> = seqs.iter().map(|s| (s.as_ref(), &zeros[..s.as_ref().len()])).collect();
    pad_sequences(&rows, pad)
}

/// What aligning a file produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Alignments {
    /// Per input line: its links (`None` for a line that is not a pair).
    pub links: Vec<Option<Vec<Link>>>,
    /// Lines that were not pairs (their output lines are empty).
    pub not_pairs: usize,
    /// Pairs with a side truncated to the model's positions.
    pub truncated: usize,
    /// Sub-word pieces encoded, both sides.
    pub pieces: usize,
}

impl Alignments {
    /// The output file's lines: sorted distinct `i-j` links, an empty line for a non-pair.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.links.iter().map(|l| l.as_deref().map(format_line).unwrap_or_default())
    }
}

/// Splits words into pieces: each word tokenised alone, every piece mapped to its word; at most
/// `max_pieces` kept.
pub struct WordPieces<'a> {
    tok: &'a Tokenizer,
    cache: std::sync::Mutex<HashMap<String, Vec<u32>>>,
}

impl<'a> WordPieces<'a> {
    /// Over `tok`.
    pub fn new(tok: &'a Tokenizer) -> Self {
        WordPieces { tok, cache: Default::default() }
    }

    /// The pieces of one word (cached: corpora repeat words).
    pub fn word(&self, w: &str) -> Result<Vec<u32>> {
        if let Some(p) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(w) {
            return Ok(p.clone());
        }
        let p = self.tok.tokens(w)?;
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(w.to_string(), p.clone());
        Ok(p)
    }

    /// The pieces of a side's words.
    pub fn side(&self, words: &[&str], max_pieces: usize) -> Result<Side> {
        let mut s = Side::default();
        for (wi, w) in words.iter().enumerate() {
            for id in self.word(w)? {
                if s.ids.len() == max_pieces {
                    s.truncated = true;
                    return Ok(s);
                }
                s.ids.push(id);
                s.words.push(wi);
            }
        }
        Ok(s)
    }
}

/// Aligns every line of `lines` (see the module documentation).
pub fn align_lines(
    encoder: &dyn SentenceEncoder,
    tok: &Tokenizer,
    lines: &[String],
    s: &AlignSettings,
) -> Result<Alignments> {
    let cfg = encoder.cfg();
    check_settings(cfg, s)?;
    let max_pieces = cfg.max_seq_len().saturating_sub(2);
    let wp = WordPieces::new(tok);
    // Per line: its two sides, or None.
    let sides: Vec<Option<(Side, Side)>> = lines
        .par_iter()
        .map(|line| match parse_pair(line) {
            Some((src, tgt)) => Ok(Some((wp.side(&src, max_pieces)?, wp.side(&tgt, max_pieces)?))),
            None => Ok(None),
        })
        .collect::<Result<_>>()?;
    let mut out = Alignments { links: vec![None; lines.len()], ..Default::default() };
    out.not_pairs = sides.iter().filter(|x| x.is_none()).count();
    out.truncated = sides.iter().flatten().filter(|(a, b)| a.truncated || b.truncated).count();
    // The pairs (line, source, target), in chunks of consecutive pairs holding at most
    // CHUNK_PIECES pieces.
    let pairs: Vec<(usize, &Side, &Side)> =
        sides.iter().enumerate().filter_map(|(k, x)| x.as_ref().map(|(a, b)| (k, a, b))).collect();
    let mut start = 0;
    while start < pairs.len() {
        let mut end = start;
        let mut pieces = 0;
        while let Some((_, a, b)) = pairs.get(end) {
            if end > start && pieces + a.ids.len() + b.ids.len() > CHUNK_PIECES {
                break;
            }
            pieces += a.ids.len() + b.ids.len();
            end += 1;
        }
        for (k, links) in align_chunk(encoder, tok, &pairs[start..end], s)? {
            out.links[k] = Some(links);
        }
        out.pieces += pieces;
        start = end;
    }
    Ok(out)
}

/// An error when `s` does not fit the model.
fn check_settings(cfg: &ModelConfig, s: &AlignSettings) -> Result<()> {
    if s.layer > cfg.num_layers {
        return Err(Error::Setting(format!(
            "--layer {}: the model has hidden states 0..={} (0 = embeddings, {} = last layer)",
            s.layer, cfg.num_layers, cfg.num_layers
        )));
    }
    if s.batch_size == 0 {
        return Err(Error::Setting("--batch-size must be at least 1".into()));
    }
    if let Method::Softmax { threshold } = s.method {
        if !(threshold.is_finite() && (0.0..1.0).contains(&threshold)) {
            return Err(Error::Setting(format!("--threshold {threshold}: expected a probability in [0, 1)")));
        }
    }
    Ok(())
}

/// Links of the pairs `chunk` (line index, source side, target side).
fn align_chunk(
    encoder: &dyn SentenceEncoder,
    tok: &Tokenizer,
    chunk: &[(usize, &Side, &Side)],
    s: &AlignSettings,
) -> Result<Vec<(usize, Vec<Link>)>> {
    let c = encoder.cfg().hidden_size;
    // Every side of the chunk as a sequence with its special tokens; sequence 2q is pair q's
    // source, 2q + 1 its target.
    let seqs: Vec<Vec<u32>> =
        chunk.iter().flat_map(|(_, a, b)| [a, b]).map(|side| side.sequence(tok, usize::MAX)).collect();
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&q| (seqs[q].len(), q));
    let groups: Vec<&[usize]> = order.chunks(s.batch_size).collect();
    let batches: Vec<Batch> = groups
        .iter()
        .map(|g| pad_batch(&g.iter().map(|&q| seqs[q].as_slice()).collect::<Vec<_>>(), tok.pad_id))
        .collect();
    // Per batch: the piece rows of each sequence, special positions dropped, back to back.
    let states = encoder.encode(&batches, s.layer, &|batch: &Batch, hidden: &[f32]| {
        let mut kept = Vec::new();
        for row in 0..batch.b {
            let len = batch.mask[row * batch.t..(row + 1) * batch.t].iter().filter(|&&m| m != 0.0).count();
            let first = (row * batch.t + 1) * c;
            kept.extend_from_slice(&hidden[first..first + len.saturating_sub(2) * c]);
        }
        kept
    })?;
    // Each sequence's (pieces, C) rows.
    let mut rows: Vec<&[f32]> = vec![&[]; seqs.len()];
    for (g, st) in groups.iter().zip(&states) {
        let mut at = 0;
        for &q in g.iter() {
            let n = (seqs[q].len() - 2) * c;
            rows[q] = &st[at..at + n];
            at += n;
        }
    }
    Ok(chunk
        .par_iter()
        .enumerate()
        .map(|(q, (k, a, b))| {
            let pieces = piece_links(s.method, rows[2 * q], rows[2 * q + 1], c);
            (*k, word_links(&pieces, &a.words, &b.words))
        })
        .collect())
}
