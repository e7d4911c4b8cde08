//! Sentence embeddings from any layer of the encoder (`xlt embed`, and later BUCC/Tatoeba):
//! sentences sorted by length, batched with dynamic padding, pooled by the attention-masked
//! mean (special tokens included, as jiant and XTREME do) or the first token, output in input
//! order.

use crate::config::ModelConfig;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::features::classification::pad_sequences;
use crate::model::{weights, Batch, EncoderParams, ParamLayout, SentenceEncoder};
use crate::tokenize::{Encoded, Tokenizer};
use rayon::prelude::*;
use std::path::Path;

/// How token states become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Mean over attention-masked tokens, special tokens included.
    Mean,
    /// The first token (`<s>` / `[CLS]`).
    Cls,
}

/// An encoder (on its device) and its tokenizer, ready for inference.
pub struct Embedder {
    /// The encoder.
    encoder: Box<dyn SentenceEncoder>,
    /// The model's tokenizer.
    pub tok: Tokenizer,
}

/// An encoder's configuration, tokenizer and weights read from a model folder, on the host:
/// every file error surfaces here, before a device is chosen.
pub struct EncoderWeights {
    cfg: ModelConfig,
    tok: Tokenizer,
    enc: EncoderParams,
    /// (layout.total) encoder parameters, as loaded.
    params: Vec<f32>,
}

impl EncoderWeights {
    /// Reads `config.json`, `tokenizer.json` and the encoder weights of an HF model folder.
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::format(
                dir,
                "model folder not found (expected config.json, model.safetensors, tokenizer.json)",
            ));
        }
        let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
        let tok_path = dir.join("tokenizer.json");
        let tok = Tokenizer::from_file(&tok_path, cfg.family)?;
        if tok.vocab_size() > cfg.vocab_size {
            return Err(Error::format(
                &tok_path,
                format!(
                    "the tokenizer has {} tokens but config.json has vocab_size {}: tokenizer and model do not match",
                    tok.vocab_size(),
                    cfg.vocab_size
                ),
            ));
        }
        let mut layout = ParamLayout::default();
        let enc = EncoderParams::register(&mut layout, &cfg, false);
        // Every tensor of this layout is required, so the load fills the whole buffer.
        let mut params = vec![0.0; layout.total];
        weights::load_into(&mut params, &layout, &cfg, dir, &|_| true)?;
        Ok(EncoderWeights { cfg, tok, enc, params })
    }

    /// The encoder on `device`, with the tokenizer (for callers that use the hidden states
    /// themselves, as `xlt align` does).
    pub fn encoder_on(self, device: &Device) -> Result<(Box<dyn SentenceEncoder>, Tokenizer)> {
        let EncoderWeights { cfg, tok, enc, params } = self;
        Ok((device.encoder(cfg, enc, params)?, tok))
    }

    /// The configuration read.
    pub fn cfg(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The embedder on `device`.
    pub fn on(self, device: &Device) -> Result<Embedder> {
        let EncoderWeights { cfg, tok, enc, params } = self;
        Ok(Embedder { encoder: device.encoder(cfg, enc, params)?, tok })
    }
}

/// Result of embedding a list of sentences.
pub struct Embeddings {
    /// (n, C) row-major, in input order.
    pub data: Vec<f32>,
    /// n
    pub n: usize,
    /// C
    pub dim: usize,
    /// How many inputs were longer than the maximum length and were truncated.
    pub truncated: usize,
}

impl Embedder {
    /// Loads `config.json`, `tokenizer.json` and the encoder weights of an HF model folder
    /// onto `device` ([`EncoderWeights::read`], then [`EncoderWeights::on`]).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        EncoderWeights::read(dir)?.on(device)
    }

    /// The encoder's configuration.
    pub fn cfg(&self) -> &ModelConfig {
        self.encoder.cfg()
    }

    /// Embeds `sentences` from hidden_states[`layer`] (0 = embedding output, L = last).
    pub fn embed(
        &self,
        sentences: &[String],
        layer: usize,
        pool: Pool,
        batch_size: usize,
        max_len: usize,
    ) -> Result<Embeddings> {
        let cfg = self.cfg();
        let c = cfg.hidden_size;
        if layer > cfg.num_layers {
            return Err(Error::Setting(format!("--layer {layer}: the model has hidden states 0..={}", cfg.num_layers)));
        }
        if batch_size == 0 {
            return Err(Error::Setting("--batch-size must be at least 1".into()));
        }
        let max_len = max_len.min(cfg.max_seq_len());
        let tok = &self.tok;
        let encoded = sentences.par_iter().map(|s| tok.encode(s, None, max_len)).collect::<Result<Vec<_>>>()?;
        let truncated = encoded.iter().filter(|e| e.truncated).count();
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| (encoded[i].ids.len(), i));
        let chunks: Vec<&[usize]> = order.chunks(batch_size).collect();
        let batches: Vec<Batch> = chunks.iter().map(|ch| self.batch_of(ch, &encoded)).collect();
        let pooled = self.encoder.encode(&batches, layer, &|batch: &Batch, hidden: &[f32]| {
            let (b, t) = (batch.b, batch.t);
            let mut out = vec![0.0f32; b * c]; // (B, C)
            for row in 0..b {
                pool_row(
                    &mut out[row * c..(row + 1) * c],
                    &hidden[row * t * c..(row + 1) * t * c],
                    &batch.mask[row * t..(row + 1) * t],
                    c,
                    pool,
                );
            }
            out
        })?;
        let mut out = vec![0.0f32; sentences.len() * c];
        for (chunk, rows) in chunks.iter().zip(&pooled) {
            for (row, &i) in chunk.iter().enumerate() {
                out[i * c..(i + 1) * c].copy_from_slice(&rows[row * c..(row + 1) * c]);
            }
        }
        Ok(Embeddings { data: out, n: sentences.len(), dim: c, truncated })
    }

    /// The sentences `chunk` (indices into `encoded`) as one padded batch.
    fn batch_of(&self, chunk: &[usize], encoded: &[Encoded]) -> Batch {
        let seqs: Vec<(&[u32], &[u32])> =
            chunk.iter().map(|&i| (encoded[i].ids.as_slice(), encoded[i].types.as_slice())).collect();
        pad_sequences(&seqs, self.tok.pad_id)
    }
}

/// Pools one sequence's states (T, C) into dst (C).
fn pool_row(dst: &mut [f32], states: &[f32], mask: &[f32], c: usize, pool: Pool) {
    match pool {
        Pool::Cls => dst.copy_from_slice(&states[..c]),
        Pool::Mean => {
            dst.fill(0.0);
            let mut count = 0.0f32;
            for (ti, &m) in mask.iter().enumerate() {
                if m != 0.0 {
                    dst.iter_mut().zip(&states[ti * c..(ti + 1) * c]).for_each(|(d, s)| *d += s);
                    count += 1.0;
                }
            }
            let inv = 1.0 / count.max(1.0);
            dst.iter_mut().for_each(|d| *d *= inv);
        }
    }
}

/// Reads one sentence per line (UTF-8, `\n` or `\r\n`, a leading byte-order mark dropped).
/// Errors name the file and line.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(&bytes);
    let mut lines = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let s = std::str::from_utf8(raw).map_err(|e| {
            Error::format(path, format!("line {}: not valid UTF-8 (byte {} of the line)", i + 1, e.valid_up_to()))
        })?;
        lines.push(s.to_string());
    }
    // A final newline does not start another sentence.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        return Err(Error::format(path, "input is empty; expected one sentence per line"));
    }
    Ok(lines)
}
