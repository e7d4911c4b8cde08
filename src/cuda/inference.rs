//! The encoder on the GPU for inference only ([`SentenceEncoder`]), the twin of
//! `cpu/inference.rs`: the inference-layout weights uploaded once in the run's precision; each
//! batch is one upload, runs to the requested layer on the device, and its hidden state comes
//! back to the host for the caller's reduction. The activations and the upload buffer are
//! sized for the largest batch so far and reused.

use super::device::{Buf, Gpu};
use super::encoder::{encoder_forward, Activations, EncoderInput};
use super::model::dtype_of;
use super::upload::{upload_bound, Slot, Staging};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::batch::Batch;
use crate::model::dropout::DropoutCfg;
use crate::model::task_model::{Reduce, SentenceEncoder};
use crate::model::{EncoderParams, Precision};
use std::sync::{Arc, Mutex};

/// The buffers reused from batch to batch.
struct Reused {
    acts: Option<Activations>,
    staging: Staging,
    io: Slot,
    pos: Vec<u32>,
}

/// Encoder weights (inference layout) on a GPU.
pub struct CudaEncoder {
    gpu: Arc<Gpu>,
    cfg: ModelConfig,
    enc: EncoderParams,
    /// (layout.total) in the precision's dtype.
    params: Buf,
    reused: Mutex<Reused>,
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
        let reused = Reused { acts: None, staging: Staging::default(), io: Slot::new("the batch upload"), pos: vec![] };
        Ok(CudaEncoder { gpu, cfg, enc, params, reused: Mutex::new(reused) })
    }
}

impl SentenceEncoder for CudaEncoder {
    fn cfg(&self) -> &ModelConfig {
        &self.cfg
    }

    fn encode(&self, batches: &[Batch], layer: usize, reduce: &Reduce) -> Result<Vec<Vec<f32>>> {
        let g = &*self.gpu;
        let mut r = self.reused.lock().map_err(|_| Error::Cuda("the encoder's buffers are poisoned".into()))?;
        let Reused { acts, staging, io, pos } = &mut *r;
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            Activations::ensure(acts, g, &self.cfg, self.params.dtype(), batch.b, batch.t, false)?;
            let a = acts.as_ref().ok_or_else(|| Error::Usage("activations missing".into()))?;
            io.ensure(g, upload_bound(batch.b * batch.t), super::device::Dtype::U32)?;
            staging.clear();
            let input = EncoderInput::stage(staging, batch, &self.cfg, pos);
            let staged = staging.upload(g, io)?;
            let params = self.params.dev();
            encoder_forward(g, a, &input.views(&staged), params, &self.enc, &self.cfg, DropoutCfg::OFF, Some(layer))?;
            let hidden = g.read_f32(a.last(self.cfg.hidden_size))?; // (B, T, C)
            out.push(reduce(batch, &hidden));
        }
        Ok(out)
    }
}
