//! The encoder on the CPU for inference only ([`SentenceEncoder`]): linear weights transposed
//! once at load (`LinearLayout::InOut`, the layout the `gemm` crate multiplies fastest), one
//! layer's activation buffers reused for every layer, and, with several threads, whole batches
//! side by side with single-threaded GEMMs when that fits in [`PARALLEL_BATCH_BYTES`].
//! `cuda/inference.rs` is its twin.

use super::encoder::{encoder_forward, Activations};
use super::gemm::serial_scope;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::model::batch::Batch;
use crate::model::dropout::DropoutCfg;
use crate::model::task_model::{Reduce, SentenceEncoder};
use crate::model::EncoderParams;
use rayon::prelude::*;

/// Above this much activation memory for one batch per thread, batches run one at a time.
pub const PARALLEL_BATCH_BYTES: usize = 4 << 30;

/// Encoder weights in the inference layout.
pub struct CpuEncoder {
    cfg: ModelConfig,
    /// Encoder parameters, linear weights transposed (no pooler).
    params: Vec<f32>,
    /// Encoder tensor ranges.
    enc: EncoderParams,
}

impl CpuEncoder {
    /// Takes the encoder `params` (laid out by `enc`, as loaded) and transposes its linear
    /// weights for inference; such a buffer can no longer be trained or saved.
    pub fn new(cfg: ModelConfig, mut enc: EncoderParams, mut params: Vec<f32>) -> Self {
        enc.transpose_linears_for_inference(&mut params, &cfg);
        CpuEncoder { cfg, params, enc }
    }

    fn run(&self, acts: &mut Activations, batch: &Batch, layer: usize, reduce: &Reduce) -> Vec<f32> {
        acts.resize(&self.cfg, batch.b, batch.t);
        encoder_forward(acts, &self.params, &self.enc, &self.cfg, batch, DropoutCfg::OFF, Some(layer));
        reduce(batch, acts.last())
    }
}

impl SentenceEncoder for CpuEncoder {
    fn cfg(&self) -> &ModelConfig {
        &self.cfg
    }

    fn encode(&self, batches: &[Batch], layer: usize, reduce: &Reduce) -> Result<Vec<Vec<f32>>> {
        let threads = rayon::current_num_threads();
        let (b, t) = batches.iter().fold((1, 1), |(b, t), x| (b.max(x.b), t.max(x.t)));
        let per_batch = Activations::bytes(&self.cfg, b, t);
        let concurrent = threads > 1 && per_batch * threads <= PARALLEL_BATCH_BYTES;
        Ok(if concurrent {
            batches
                .par_iter()
                .map_init(
                    || Activations::new(&self.cfg, 0, 0, false),
                    |acts, batch| serial_scope(|| self.run(acts, batch, layer, reduce)),
                )
                .collect()
        } else {
            let mut acts = Activations::new(&self.cfg, 0, 0, false);
            batches.iter().map(|batch| self.run(&mut acts, batch, layer, reduce)).collect()
        })
    }
}
