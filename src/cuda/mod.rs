//! The CUDA backend: mirrors `cpu/` call for call (same op names, same argument order: outputs,
//! inputs, sizes) on hand-written kernels (`kernels/*.cu`, one concern per file) and cuBLAS
//! GEMMs. Activations are f32, bf16 or f16 ([`device::Dtype`]); arithmetic, LayerNorm
//! statistics, parameter gradients and the AdamW master weights are always f32.
//!
//! - [`api`]: the device interface ([`api::DeviceApi`]): memory, copies, launches, GEMMs;
//!   implemented by [`driver::CudaDriver`] (the GPU: CUDA driver + cuBLAS through `cudarc`;
//!   probing never panics when CUDA is missing) and by the host kernel emulator of the tests.
//! - [`device`]: [`device::Gpu`], the backend's handle on either, with the counts of what it
//!   was asked to do; device memory ([`device::Buf`] owns, [`device::Dev`] views).
//! - [`kernels`]: every kernel entry point as data (family, file, dtypes, parameters).
//! - [`launch`]: [`launch::Launch`], a kernel launch as data, built by pure plan functions.
//! - [`ops`]: one typed wrapper per kernel (a `*_plan` function and its launch), the twin of
//!   `cpu::ops`.
//! - [`gemm`]: products through cuBLAS, the twin of `cpu::gemm`.
//! - [`encoder`]: `encoder_forward` / `encoder_backward`, the twins of `cpu::encoder`'s.
//! - [`heads`]: the task heads, twins of `cpu::heads`'.
//! - [`model`]: [`model::CudaModel`], the twin of `cpu::CpuModel`: the [`crate::model::TaskModel`]
//!   on the GPU (precision, fp16 loss scaling, AdamW, clipping).
//! - [`inference`]: [`inference::CudaEncoder`], the [`crate::model::SentenceEncoder`] on the GPU.

pub mod api;
pub mod device;
pub mod driver;
pub mod encoder;
pub mod gemm;
pub mod heads;
pub mod inference;
pub mod kernels;
pub mod launch;
pub mod model;
pub mod ops;
pub mod testing;
pub mod upload;

pub use api::{DeviceApi, DeviceInfo, GemmCall};
pub use device::{probe, Buf, Counts, Dev, Dtype, Gpu, Probe};
pub use inference::CudaEncoder;
pub use kernels::{Kernel, Param};
pub use launch::{KArg, Launch};
pub use model::CudaModel;
