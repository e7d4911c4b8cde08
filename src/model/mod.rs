//! The backend-neutral core. The parameter layout: every tensor of the encoder and its heads
//! lives in one flat `f32` buffer; gradients and AdamW moments are buffers of the same length
//! sharing this offset table. Around it: batches ([`batch`]), dropout sites ([`dropout`]), the
//! heads and a model's structure ([`heads`]), host weights ([`host`]), optimizer settings
//! ([`optim`]), precision ([`precision`]), HF weights on disk ([`weights`]) and the model trait
//! both backends implement ([`task_model`]).
//!
//! Names are the HF names. Encoder tensors are stored without the family prefix
//! (`embeddings.word_embeddings.weight`) and saved with it (`roberta.` / `bert.`); head tensors
//! keep their HF task-model names (`classifier.dense.weight`).

pub mod align_loss;
pub mod batch;
pub mod dropout;
pub mod heads;
pub mod host;
pub mod init;
pub mod optim;
pub mod precision;
pub mod task_model;
pub mod weights;

pub use align_loss::SoBatch;
pub use batch::{Batch, Targets, TaskBatch, IGNORE_INDEX};
pub use dropout::{DropoutCfg, Site};
pub use heads::{assign_prefixes, read_heads, HeadSpec, Structure, HEADS_FILE};
pub use host::HostModel;
pub use optim::{AdamWConfig, OptimizerState, StepConfig};
pub use precision::Precision;
pub use task_model::{OptimizerView, Reduce, SentenceEncoder, SpanLogits, StepReport, TaskModel};

use crate::config::ModelConfig;
use std::ops::Range;

/// One named tensor in the flat buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamTensor {
    /// HF name (without the encoder prefix for encoder tensors).
    pub name: String,
    /// Row-major shape; HF `nn.Linear` weights are (out, in).
    pub shape: Vec<usize>,
    /// First element in the flat buffer.
    pub offset: usize,
    /// Whether AdamW applies weight decay (not to biases and LayerNorm weights).
    pub decay: bool,
    /// Whether the tensor belongs to the encoder (saved with the family prefix).
    pub encoder: bool,
    /// Frozen: no gradient reaches the optimizer, no moment, no decay; the step leaves it
    /// bit for bit as it is (`--freeze-head`).
    pub frozen: bool,
}

impl ParamTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Element range in the flat buffer.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.numel()
    }
}

/// The offset table shared by parameters, gradients and optimizer moments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamLayout {
    /// Tensors in buffer order.
    pub tensors: Vec<ParamTensor>,
    /// Total number of `f32` elements.
    pub total: usize,
}

impl ParamLayout {
    /// Freezes every task-head tensor (all but the encoder's): no gradient, moment or decay
    /// for them from now on. Returns how many tensors were frozen.
    pub fn freeze_heads(&mut self) -> usize {
        let mut n = 0;
        for t in self.tensors.iter_mut().filter(|t| !t.encoder) {
            t.frozen = true;
            t.decay = false;
            n += 1;
        }
        n
    }

    /// The element ranges of the frozen tensors.
    pub fn frozen_ranges(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.tensors.iter().filter(|t| t.frozen).map(ParamTensor::range)
    }

    /// Appends a tensor and returns its element range.
    pub fn push(&mut self, name: &str, shape: &[usize], decay: bool, encoder: bool) -> Range<usize> {
        let t = ParamTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            offset: self.total,
            decay,
            encoder,
            frozen: false,
        };
        self.total += t.numel();
        let r = t.range();
        self.tensors.push(t);
        r
    }
    /// Looks a tensor up by its layout name.
    pub fn find(&self, name: &str) -> Option<&ParamTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
    /// Appends `n` tensors that are used as one: their ranges are contiguous, so the returned
    /// range covers them all (e.g. query/key/value weights form one (3C, C) matrix).
    pub fn push_group(&mut self, names: &[String], shape: &[usize], decay: bool) -> Range<usize> {
        let start = self.total;
        for n in names {
            self.push(n, shape, decay, true);
        }
        start..self.total
    }
}

/// Ranges of one transformer layer's tensors. Shapes use C (hidden), FFN (intermediate).
#[derive(Clone, Debug)]
pub struct LayerParams {
    /// (3C, C): query, key, value weights stacked.
    pub qkv_w: Range<usize>,
    /// (3C): query, key, value biases stacked.
    pub qkv_b: Range<usize>,
    /// (C, C) attention output projection.
    pub attn_proj_w: Range<usize>,
    /// (C)
    pub attn_proj_b: Range<usize>,
    /// (C) post-attention LayerNorm.
    pub ln1_w: Range<usize>,
    /// (C)
    pub ln1_b: Range<usize>,
    /// (FFN, C)
    pub fc_w: Range<usize>,
    /// (FFN)
    pub fc_b: Range<usize>,
    /// (C, FFN)
    pub fc_proj_w: Range<usize>,
    /// (C)
    pub fc_proj_b: Range<usize>,
    /// (C) post-FFN LayerNorm.
    pub ln2_w: Range<usize>,
    /// (C)
    pub ln2_b: Range<usize>,
}

/// Ranges of the encoder's tensors in the flat buffer.
#[derive(Clone, Debug)]
pub struct EncoderParams {
    /// (V, C) word embeddings.
    pub wte: Range<usize>,
    /// (P, C) position embeddings.
    pub wpe: Range<usize>,
    /// (TT, C) token-type embeddings.
    pub wtt: Range<usize>,
    /// (C) embedding LayerNorm.
    pub ln_emb_w: Range<usize>,
    /// (C)
    pub ln_emb_b: Range<usize>,
    /// One entry per layer.
    pub layers: Vec<LayerParams>,
    /// (C, C) and (C): the tanh pooler over the first token, when the model has one.
    pub pooler: Option<(Range<usize>, Range<usize>)>,
    /// How the layers' linear weights are stored in the buffer.
    pub linear_layout: LinearLayout,
}

/// Storage order of the transformer layers' linear weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearLayout {
    /// HF `nn.Linear` order (OC, C): what is loaded, trained and saved.
    OutIn,
    /// Transposed, (C, OC): inference only (`xlt embed`), where the GEMM runs faster on it.
    InOut,
}

impl EncoderParams {
    /// Every layer's linear weight ranges with their (OC, C) shapes.
    pub fn linear_weights(&self, cfg: &ModelConfig) -> Vec<(Range<usize>, usize, usize)> {
        let (c, ffn) = (cfg.hidden_size, cfg.intermediate_size);
        let mut out = Vec::new();
        for lp in &self.layers {
            out.push((lp.qkv_w.clone(), 3 * c, c));
            out.push((lp.attn_proj_w.clone(), c, c));
            out.push((lp.fc_w.clone(), ffn, c));
            out.push((lp.fc_proj_w.clone(), c, ffn));
        }
        out
    }

    /// Transposes every layer's linear weights in `params` from (OC, C) to (C, OC) for fast
    /// inference. The buffer can then no longer be trained or saved.
    pub fn transpose_linears_for_inference(&mut self, params: &mut [f32], cfg: &ModelConfig) {
        if self.linear_layout == LinearLayout::InOut {
            return;
        }
        for (r, oc, c) in self.linear_weights(cfg) {
            let w = params[r.clone()].to_vec();
            let dst = &mut params[r];
            for o in 0..oc {
                for i in 0..c {
                    dst[i * oc + o] = w[o * c + i];
                }
            }
        }
        self.linear_layout = LinearLayout::InOut;
    }
}

impl EncoderParams {
    /// Registers the encoder's tensors (HF names, HF shapes) in `layout`.
    pub fn register(layout: &mut ParamLayout, cfg: &ModelConfig, with_pooler: bool) -> Self {
        let (c, ffn) = (cfg.hidden_size, cfg.intermediate_size);
        let w = |layout: &mut ParamLayout, n: &str, s: &[usize], decay| layout.push(n, s, decay, true);
        let wte = w(layout, "embeddings.word_embeddings.weight", &[cfg.vocab_size, c], true);
        let wpe = w(layout, "embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, c], true);
        let wtt = w(layout, "embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, c], true);
        let ln_emb_w = w(layout, "embeddings.LayerNorm.weight", &[c], false);
        let ln_emb_b = w(layout, "embeddings.LayerNorm.bias", &[c], false);
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for l in 0..cfg.num_layers {
            let p = format!("encoder.layer.{l}.");
            let qkv = |suffix: &str| -> Vec<String> {
                ["query", "key", "value"].iter().map(|m| format!("{p}attention.self.{m}.{suffix}")).collect()
            };
            let qkv_w = layout.push_group(&qkv("weight"), &[c, c], true);
            let qkv_b = layout.push_group(&qkv("bias"), &[c], false);
            layers.push(LayerParams {
                qkv_w,
                qkv_b,
                attn_proj_w: w(layout, &format!("{p}attention.output.dense.weight"), &[c, c], true),
                attn_proj_b: w(layout, &format!("{p}attention.output.dense.bias"), &[c], false),
                ln1_w: w(layout, &format!("{p}attention.output.LayerNorm.weight"), &[c], false),
                ln1_b: w(layout, &format!("{p}attention.output.LayerNorm.bias"), &[c], false),
                fc_w: w(layout, &format!("{p}intermediate.dense.weight"), &[ffn, c], true),
                fc_b: w(layout, &format!("{p}intermediate.dense.bias"), &[ffn], false),
                fc_proj_w: w(layout, &format!("{p}output.dense.weight"), &[c, ffn], true),
                fc_proj_b: w(layout, &format!("{p}output.dense.bias"), &[c], false),
                ln2_w: w(layout, &format!("{p}output.LayerNorm.weight"), &[c], false),
                ln2_b: w(layout, &format!("{p}output.LayerNorm.bias"), &[c], false),
            });
        }
        let pooler = with_pooler
            .then(|| (w(layout, "pooler.dense.weight", &[c, c], true), w(layout, "pooler.dense.bias", &[c], false)));
        EncoderParams { wte, wpe, wtt, ln_emb_w, ln_emb_b, layers, pooler, linear_layout: LinearLayout::OutIn }
    }
}
