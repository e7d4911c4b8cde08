//! The device selector: the one place above the two backends that names them. A command picks
//! a [`Device`] from `--device` and `--precision`; the trainer, the evaluator, the embedder, the
//! bench, `xlt xtreme` and `xlt demo` then ask it for a [`TaskModel`] or a [`SentenceEncoder`]
//! built from host weights, and never branch on the device themselves.

use crate::config::ModelConfig;
use crate::cpu::{CpuEncoder, CpuModel};
use crate::cuda::{probe, CudaEncoder, CudaModel, Gpu, Probe};
use crate::error::Result;
use crate::model::{EncoderParams, HostModel, OptimizerState, Precision, SentenceEncoder, TaskModel};
use std::sync::Arc;

/// What `--device` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The GPU when one is usable, else the CPU.
    Auto,
    /// The CPU reference backend.
    Cpu,
    /// The GPU; an error when there is none.
    Cuda,
}

/// Where models run.
#[derive(Clone)]
pub enum Device {
    /// The CPU reference backend (f32).
    Cpu,
    /// A GPU at a precision.
    Cuda {
        /// The GPU.
        gpu: Arc<Gpu>,
        /// Arithmetic precision.
        precision: Precision,
    },
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How many GPUs this machine has that xlt can use (0 without a usable CUDA driver); the probe
/// never panics.
pub fn usable_gpus() -> usize {
    match probe() {
        Probe::Usable { devices } => devices,
        Probe::Unusable(_) => 0,
    }
}

impl Device {
    /// The device `choice` asks for, and a line saying which and, for `Auto` on the CPU, why
    /// (the caller prints it). `Auto` takes the GPU when one is usable; `Cuda` without a usable
    /// GPU is an error. The probe never panics when the CUDA libraries are missing.
    pub fn pick(choice: DeviceChoice, precision: Option<Precision>) -> Result<(Device, String)> {
        let open = || -> Result<Device> {
            let gpu = Gpu::open(0)?;
            Ok(Device::Cuda { gpu, precision: precision.unwrap_or(Precision::GPU_DEFAULT) })
        };
        let (device, line) = match choice {
            DeviceChoice::Cpu => (Device::Cpu, None),
            DeviceChoice::Cuda => (open()?, None),
            DeviceChoice::Auto => match probe() {
                Probe::Unusable(why) => (Device::Cpu, Some(format!("device: cpu ({why})"))),
                Probe::Usable { .. } => match open() {
                    Ok(d) => (d, None),
                    Err(e) => (Device::Cpu, Some(format!("device: cpu (the GPU is not usable: {e})"))),
                },
            },
        };
        let line = line.unwrap_or_else(|| format!("device: {}", device.describe()));
        Ok((device, line))
    }

    /// `cpu`, or `cuda:0, <GPU> (bf16)`.
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => "cpu".into(),
            Device::Cuda { gpu, precision } => format!("cuda:0, {} ({})", gpu.describe(), precision.name()),
        }
    }

    /// The precision of a GPU run (`None` on the CPU, which computes in f32).
    pub fn precision(&self) -> Option<Precision> {
        match self {
            Device::Cpu => None,
            Device::Cuda { precision, .. } => Some(*precision),
        }
    }

    /// A trainable model on this device from host weights and AdamW state (zeroed when `None`).
    pub fn train_model(&self, host: HostModel, opt: Option<OptimizerState>) -> Result<Box<dyn TaskModel>> {
        Ok(match self {
            Device::Cpu => Box::new(CpuModel::new(host, opt)?),
            Device::Cuda { gpu, precision } => Box::new(CudaModel::new(gpu.clone(), *precision, &host, opt.as_ref())?),
        })
    }

    /// A model for evaluation only (weights, no gradients or optimizer state) on this device.
    pub fn eval_model(&self, host: HostModel) -> Result<Box<dyn TaskModel>> {
        Ok(match self {
            Device::Cpu => Box::new(CpuModel::inference(host)),
            Device::Cuda { gpu, precision } => Box::new(CudaModel::inference(gpu.clone(), *precision, &host)?),
        })
    }

    /// An inference encoder on this device from an encoder's weights (as loaded).
    pub fn encoder(&self, cfg: ModelConfig, enc: EncoderParams, params: Vec<f32>) -> Result<Box<dyn SentenceEncoder>> {
        Ok(match self {
            Device::Cpu => Box::new(CpuEncoder::new(cfg, enc, params)),
            Device::Cuda { gpu, precision } => Box::new(CudaEncoder::new(gpu.clone(), *precision, cfg, enc, params)?),
        })
    }

    /// An error, before anything is allocated, when training a model of `cfg` with `params`
    /// parameters on batches of `rows` × `t` tokens cannot fit here (weights, gradients, both
    /// AdamW moments and one batch's activations on the CPU; a GPU reports its own
    /// out-of-memory errors, naming the batch shape, when it allocates).
    pub fn check_training_fits(&self, cfg: &ModelConfig, params: usize, rows: usize, t: usize) -> Result<()> {
        match self {
            Device::Cpu => {
                let bytes = 16 * params as u64 + crate::cpu::encoder::Activations::train_bytes(cfg, rows, t);
                crate::sys::check_fits(bytes, &format!("training on batches of {rows} × {t} tokens"))
            }
            Device::Cuda { .. } => Ok(()),
        }
    }

    /// Which attention kernels a training step of `cfg` runs here: `fused` (flash) or
    /// `unfused` on a GPU, `None` on the CPU.
    pub fn attention_path(&self, cfg: &ModelConfig) -> Result<Option<String>> {
        match self {
            Device::Cpu => Ok(None),
            Device::Cuda { precision, .. } => {
                let x = crate::cuda::model::dtype_of(*precision);
                let path = crate::cuda::ops::AttnPath::choose(x, cfg.hidden_size, cfg.num_heads)?;
                Ok(Some(format!("{path:?}").to_lowercase()))
            }
        }
    }
}
