//! The CUDA backend: mirrors `cpu/` call for call (same op names, same argument order: outputs,
//! inputs, sizes) on hand-written kernels (`kernels/*.cu`, one concern per file) and cuBLAS
//! GEMMs. Activations are f32, bf16 or f16 ([`device::Dtype`]); arithmetic, LayerNorm
//! statistics, parameter gradients and the AdamW master weights are always f32.
//!
//! - [`device`]: probing (never panics when CUDA is missing), the [`device::Gpu`] handle,
//!   kernel loading, device memory ([`device::Buf`] owns, [`device::Dev`] views).
//! - [`ops`]: one typed wrapper per kernel, the twin of `cpu::ops`.
//! - [`gemm`]: the linear layers and attention's batched products through cuBLAS.
//! - [`encoder`]: `encoder_forward` / `encoder_backward`, the twins of `cpu::encoder`'s.
//! - [`heads`]: the task heads, twins of `cpu::heads`'.
//! - [`model`]: [`model::CudaModel`], the twin of `cpu::CpuModel`: the [`crate::model::TaskModel`]
//!   on the GPU (precision, fp16 loss scaling, AdamW, clipping).
//! - [`inference`]: [`inference::CudaEncoder`], the [`crate::model::SentenceEncoder`] on the GPU.

pub mod device;
pub mod encoder;
pub mod gemm;
pub mod heads;
pub mod inference;
pub mod model;
pub mod ops;
pub mod testing;

pub use device::{probe, Buf, Dev, Dtype, Gpu, KArg, Launch, Probe};
pub use inference::CudaEncoder;
pub use model::CudaModel;
