//! The encoder on the GPU for inference only ([`SentenceEncoder`]), the twin of
//! `cpu/inference.rs`: the inference-layout weights uploaded once in the run's precision; each
//! batch runs to the requested layer on the device and its hidden state comes back to the host
//! for the caller's reduction.

use super::device::{Buf, Gpu};
use super::encoder::{encoder_forward, Activations};
use super::model::dtype_of;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::model::batch::Batch;
use crate::model::dropout::DropoutCfg;
use crate::model::task_model::{Reduce, SentenceEncoder};
use crate::model::{EncoderParams, Precision};
use std::sync::Arc;

/// Encoder weights (inference layout) on a GPU.
pub struct CudaEncoder {
    gpu: Arc<Gpu>,
    cfg: ModelConfig,
    enc: EncoderParams,
    /// (layout.total) in the precision's dtype.
    params: Buf,
}

impl CudaEncoder {
    /// Transposes the encoder `params` for inference (as the CPU's) and uploads them to `gpu`
    /// in `precision`'s dtype.
    pub fn new(
        gpu: Arc<Gpu>,
        precision: Precision,
        cfg: ModelConfig,
        mut enc: EncoderParams,
        mut params: Vec<f32>,
    ) -> Result<Self> {
        enc.transpose_linears_for_inference(&mut params, &cfg);
        let params = gpu.upload_f32(&params, dtype_of(precision), "the encoder weights")?;
        Ok(CudaEncoder { gpu, cfg, enc, params })
    }
}

impl SentenceEncoder for CudaEncoder {
    fn cfg(&self) -> &ModelConfig {
        &self.cfg
    }

    fn encode(&self, batches: &[Batch], layer: usize, reduce: &Reduce) -> Result<Vec<Vec<f32>>> {
        let g = &*self.gpu;
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let mut acts = Activations::new(g, &self.cfg, self.params.dtype(), batch.b, batch.t, false)?;
            let params = self.params.dev();
            encoder_forward(g, &mut acts, params, &self.enc, &self.cfg, batch, DropoutCfg::OFF, Some(layer))?;
            let hidden = g.read_f32(acts.last())?; // (B, T, C)
            out.push(reduce(batch, &hidden));
        }
        Ok(out)
    }
}
