//! Sentence embeddings from any layer of the encoder (`xlt embed`, and later BUCC/Tatoeba):
//! sentences sorted by length, batched with dynamic padding, pooled by the attention-masked
//! mean (special tokens included, as jiant and XTREME do) or the first token, output in input
//! order.

use crate::config::ModelConfig;
use crate::cpu::encoder::{encoder_forward, Activations, DropoutCfg};
use crate::cpu::gemm::serial_scope;
use crate::cuda;
use crate::cuda::model::Precision;
use crate::cuda::{Buf, Gpu};
use crate::error::{Error, Result};
use crate::features::classification::pad_sequences;
use crate::model::{weights, EncoderParams, ParamLayout};
use crate::tokenize::{Encoded, Tokenizer};
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// How token states become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Mean over attention-masked tokens, special tokens included.
    Mean,
    /// The first token (`<s>` / `[CLS]`).
    Cls,
}

/// An encoder and its tokenizer, ready for inference.
pub struct Embedder {
    /// Model configuration.
    pub cfg: ModelConfig,
    /// Encoder parameters (no pooler).
    pub params: Vec<f32>,
    /// Encoder tensor ranges.
    pub enc: EncoderParams,
    /// The model's tokenizer.
    pub tok: Tokenizer,
    /// The weights on a GPU, when [`Embedder::use_gpu`] was called: batches then run there.
    gpu: Option<GpuWeights>,
}

/// The encoder weights (inference layout) on a GPU, in the activation dtype.
struct GpuWeights {
    gpu: Arc<Gpu>,
    /// (layout.total) in the precision's dtype.
    params: Buf,
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
    /// Loads `config.json`, `tokenizer.json` and the weights of an HF model folder.
    pub fn load(dir: &Path) -> Result<Self> {
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
        let mut enc = EncoderParams::register(&mut layout, &cfg, false);
        // Every tensor of this layout is required, so the load fills the whole buffer.
        let mut params = vec![0.0; layout.total];
        weights::load_into(&mut params, &layout, &cfg, dir, &|_| true)?;
        enc.transpose_linears_for_inference(&mut params, &cfg);
        Ok(Embedder { cfg, params, enc, tok, gpu: None })
    }

    /// Runs every later [`Self::embed`] on `gpu` at `precision` (the weights are uploaded once).
    pub fn use_gpu(&mut self, gpu: Arc<Gpu>, precision: Precision) -> Result<()> {
        let params = gpu.upload_f32(&self.params, precision.dtype(), "the encoder weights")?;
        self.gpu = Some(GpuWeights { gpu, params });
        Ok(())
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
        let c = self.cfg.hidden_size;
        if layer > self.cfg.num_layers {
            return Err(Error::Invalid(format!(
                "--layer {layer}: the model has hidden states 0..={}",
                self.cfg.num_layers
            )));
        }
        if batch_size == 0 {
            return Err(Error::Invalid("--batch-size must be at least 1".into()));
        }
        let max_len = max_len.min(self.cfg.max_seq_len());
        let encoded = sentences.par_iter().map(|s| self.tok.encode(s, None, max_len)).collect::<Result<Vec<_>>>()?;
        let truncated = encoded.iter().filter(|e| e.truncated).count();
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| (encoded[i].ids.len(), i));
        let chunks: Vec<&[usize]> = order.chunks(batch_size).collect();
        let longest = chunks.last().map_or(1, |ch| ch.iter().map(|&i| encoded[i].ids.len()).max().unwrap_or(1));
        let threads = rayon::current_num_threads();
        // With several threads, whole batches run side by side, each with single-threaded
        // GEMMs, unless one batch per thread would hold too much activation memory.
        let per_batch = Activations::bytes(&self.cfg, batch_size, longest);
        let concurrent = threads > 1 && per_batch * threads <= PARALLEL_BATCH_BYTES;
        let run = |acts: &mut Activations, chunk: &&[usize]| self.embed_batch(acts, chunk, &encoded, layer, pool);
        let pooled: Vec<Vec<f32>> = if let Some(w) = &self.gpu {
            chunks.iter().map(|ch| self.embed_batch_gpu(w, ch, &encoded, layer, pool)).collect::<Result<_>>()?
        } else if concurrent {
            chunks
                .par_iter()
                .map_init(|| Activations::new(&self.cfg, 0, 0, false), |acts, ch| serial_scope(|| run(acts, ch)))
                .collect()
        } else {
            let mut acts = Activations::new(&self.cfg, 0, 0, false);
            chunks.iter().map(|ch| run(&mut acts, ch)).collect()
        };
        let mut out = vec![0.0f32; sentences.len() * c];
        for (chunk, rows) in chunks.iter().zip(&pooled) {
            for (row, &i) in chunk.iter().enumerate() {
                out[i * c..(i + 1) * c].copy_from_slice(&rows[row * c..(row + 1) * c]);
            }
        }
        Ok(Embeddings { data: out, n: sentences.len(), dim: c, truncated })
    }
}

impl Embedder {
    /// Encodes the sentences `chunk` (indices into `encoded`) as one padded batch; returns their
    /// pooled vectors (len(chunk), C) in chunk order.
    fn embed_batch(
        &self,
        acts: &mut Activations,
        chunk: &[usize],
        encoded: &[Encoded],
        layer: usize,
        pool: Pool,
    ) -> Vec<f32> {
        let c = self.cfg.hidden_size;
        let seqs: Vec<(&[u32], &[u32])> =
            chunk.iter().map(|&i| (encoded[i].ids.as_slice(), encoded[i].types.as_slice())).collect();
        let batch = pad_sequences(&seqs, self.tok.pad_id);
        let (b, t) = (batch.b, batch.t);
        acts.resize(&self.cfg, b, t);
        encoder_forward(acts, &self.params, &self.enc, &self.cfg, &batch, DropoutCfg::OFF, Some(layer));
        let hidden = acts.last();
        let mut out = vec![0.0f32; b * c];
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
    }
}

impl Embedder {
    /// [`Self::embed_batch`] on the GPU: the encoder runs there, the chosen hidden state comes
    /// back to the host for pooling.
    fn embed_batch_gpu(
        &self,
        w: &GpuWeights,
        chunk: &[usize],
        encoded: &[Encoded],
        layer: usize,
        pool: Pool,
    ) -> Result<Vec<f32>> {
        let c = self.cfg.hidden_size;
        let seqs: Vec<(&[u32], &[u32])> =
            chunk.iter().map(|&i| (encoded[i].ids.as_slice(), encoded[i].types.as_slice())).collect();
        let batch = pad_sequences(&seqs, self.tok.pad_id);
        let (b, t, g) = (batch.b, batch.t, &*w.gpu);
        let mut acts = cuda::encoder::Activations::new(g, &self.cfg, w.params.dtype(), b, t, false)?;
        let params = w.params.dev();
        cuda::encoder::encoder_forward(
            g,
            &mut acts,
            params,
            &self.enc,
            &self.cfg,
            &batch,
            DropoutCfg::OFF,
            Some(layer),
        )?;
        let hidden = g.read_f32(acts.last())?;
        let mut out = vec![0.0f32; b * c];
        for row in 0..b {
            pool_row(
                &mut out[row * c..(row + 1) * c],
                &hidden[row * t * c..(row + 1) * t * c],
                &batch.mask[row * t..(row + 1) * t],
                c,
                pool,
            );
        }
        Ok(out)
    }
}

/// Above this much activation memory for one batch per thread, batches run one at a time.
const PARALLEL_BATCH_BYTES: usize = 4 << 30;

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
