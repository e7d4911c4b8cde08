//! Arithmetic precision of a run on a GPU (the CPU always computes in f32).

/// Arithmetic precision of a GPU run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Everything in f32 (the reference).
    Fp32,
    /// bf16 activations and GEMM inputs, f32 accumulation, master weights and optimizer.
    Bf16,
    /// fp16 likewise, with dynamic loss scaling.
    Fp16,
}

impl Precision {
    /// The default on a GPU: bf16, which every GPU xlt opens has (compute capability 8.0 or
    /// newer is required).
    pub const GPU_DEFAULT: Precision = Precision::Bf16;

    /// `fp32`, `bf16` or `fp16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }
}
