//! Every kernel entry point of `kernels/*.cu`, as data: its family ([`Kernel`]), the file that
//! defines it, the element types it is instantiated for and its parameter list. A launch names
//! a kernel by ([`Kernel`], [`Dtype`]); a device resolves that pair once, when it opens, into
//! the slot [`Kernel::slot`] of a flat table, so a launch does no string formatting, locking or
//! map lookup. The parameter lists are checked three ways: every [`super::Launch`] against its
//! kernel's list when it is built, every list against the kernel's PTX (`tests/cuda_nvrtc.rs`),
//! and every argument's size against the C++ signature on the host kernel emulator.
//!
//! A kernel's C name is its family name and the dtype's suffix: `layernorm_forward_bf16`; the
//! kernels instantiated for f32 only already end in `_f32` (`global_norm_partial_f32`).

use super::device::Dtype;

/// The type of one kernel parameter, as its launch passes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// A device pointer (`T*`, 8 bytes).
    Ptr,
    /// `int`
    I32,
    /// `float`
    F32,
    /// `unsigned long long` (RNG seeds)
    U64,
}

impl Param {
    /// Bytes the parameter occupies in the kernel's parameter block.
    pub fn size(self) -> usize {
        match self {
            Param::Ptr | Param::U64 => 8,
            Param::I32 | Param::F32 => 4,
        }
    }
}

use Param::{Ptr as P, F32 as F, I32 as I, U64 as U};

/// The float element types: most kernels are instantiated for all three.
const FLOATS: &[Dtype] = &[Dtype::F32, Dtype::Bf16, Dtype::F16];
/// Kernels that exist only for f32 data (gradients, optimizer state, reductions).
const F32_ONLY: &[Dtype] = &[Dtype::F32];
/// The tensor-core kernels: bf16 and f16 only.
const NARROW: &[Dtype] = &[Dtype::Bf16, Dtype::F16];

/// Parameters of the three flash-attention gradient kernels and of the forward.
const FLASH_FORWARD: &[Param] = &[P, P, P, P, I, I, I, I, F, F, U];
const FLASH_BACKWARD: &[Param] = &[P, P, P, P, P, P, I, I, I, I, F, F, U];

macro_rules! kernels {
    ($( $(#[$doc:meta])* $v:ident = $name:literal in $file:literal for $dtypes:ident $params:expr ; )*) => {
        /// A kernel family: one entry point per element type it is instantiated for.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel {
            $( $(#[$doc])* $v, )*
        }

        impl Kernel {
            /// Every kernel family, in table order.
            pub const ALL: &'static [Kernel] = &[$(Kernel::$v),*];

            /// The family's C name without the dtype suffix (`layernorm_forward`).
            pub fn base_name(self) -> &'static str {
                match self { $(Kernel::$v => $name,)* }
            }

            /// The `kernels/` file that defines it.
            pub fn file(self) -> &'static str {
                match self { $(Kernel::$v => $file,)* }
            }

            /// The element types it is instantiated for.
            pub fn dtypes(self) -> &'static [Dtype] {
                match self { $(Kernel::$v => $dtypes,)* }
            }

            /// Its parameters, in order.
            pub fn params(self) -> &'static [Param] {
                match self { $(Kernel::$v => $params,)* }
            }
        }
    };
}

kernels! {
    /// `kernels/adamw.cu`: AdamW over the flat f32 buffers.
    AdamwUpdate = "adamw_update" in "adamw.cu" for F32_ONLY &[P, P, P, P, P, P, F, F, F, F, F, F, I];
    /// AdamW that also writes the narrow copy of the weights.
    AdamwUpdateCopy = "adamw_update_copy" in "adamw.cu" for FLOATS &[P, P, P, P, P, P, P, F, F, F, F, F, F, I];
    /// Splits qkv (B, T, 3C) into heads.
    AttentionPermute = "attention_permute" in "attention.cu" for FLOATS &[P, P, I, I, I, I, I];
    /// Puts the heads back side by side.
    AttentionUnpermute = "attention_unpermute" in "attention.cu" for FLOATS &[P, P, I, I, I, I, I];
    /// Masked softmax of the scores, in place, with dropout.
    AttentionSoftmaxForward = "attention_softmax_forward" in "attention.cu" for FLOATS &[P, P, P, I, I, I, F, F, U];
    /// The dropped probabilities, regenerated.
    AttentionDropout = "attention_dropout" in "attention.cu" for FLOATS &[P, P, I, I, I, F, U];
    /// The softmax backward, in place.
    AttentionSoftmaxBackward = "attention_softmax_backward" in "attention.cu" for FLOATS &[P, P, I, I, I, F, F, U];
    /// `out += bias` per row.
    BiasForward = "bias_forward" in "bias.cu" for FLOATS &[P, P, I, I];
    /// Per-block column sums of the bias gradient.
    BiasBackwardPartial = "bias_backward_partial" in "bias.cu" for FLOATS &[P, P, I, I, I];
    /// The partial sums added in block order.
    BiasBackwardReduce = "bias_backward_reduce_f32" in "bias.cu" for F32_ONLY &[P, P, I, I];
    /// f32 → activation type.
    CastFromF32 = "cast_from_f32" in "cast.cu" for FLOATS &[P, P, I];
    /// Activation type → f32.
    CastToF32 = "cast_to_f32" in "cast.cu" for FLOATS &[P, P, I];
    /// NaN and infinity count (fp16 overflow check).
    CountNonfinite = "count_nonfinite_f32" in "cast.cu" for F32_ONLY &[P, P, I];
    /// Dropout in place (both directions).
    DropoutForward = "dropout_forward" in "dropout.cu" for FLOATS &[P, F, U, I];
    /// `out += inp`.
    ResidualForward = "residual_forward" in "dropout.cu" for FLOATS &[P, P, I];
    /// Word + position + type embeddings.
    EmbeddingForward = "embedding_forward" in "embedding.cu" for FLOATS &[P, P, P, P, P, P, P, I, I, I, I, I];
    /// The embedding gradient, one table row per block.
    EmbeddingBackward = "embedding_backward" in "embedding.cu" for FLOATS &[P, P, P, P, P, I, I];
    /// Fused attention forward, head size 16.
    FlashForward16 = "flash_attention_forward_hs16" in "flash_attention.cu" for NARROW FLASH_FORWARD;
    /// Fused attention forward, head size 32.
    FlashForward32 = "flash_attention_forward_hs32" in "flash_attention.cu" for NARROW FLASH_FORWARD;
    /// Fused attention forward, head size 64.
    FlashForward64 = "flash_attention_forward_hs64" in "flash_attention.cu" for NARROW FLASH_FORWARD;
    /// Fused attention forward, head size 128.
    FlashForward128 = "flash_attention_forward_hs128" in "flash_attention.cu" for NARROW FLASH_FORWARD;
    /// dK and dV, head size 16.
    FlashDkdv16 = "flash_attention_backward_dkdv_hs16" in "flash_attention.cu" for NARROW FLASH_BACKWARD;
    /// dK and dV, head size 32.
    FlashDkdv32 = "flash_attention_backward_dkdv_hs32" in "flash_attention.cu" for NARROW FLASH_BACKWARD;
    /// dK and dV, head size 64.
    FlashDkdv64 = "flash_attention_backward_dkdv_hs64" in "flash_attention.cu" for NARROW FLASH_BACKWARD;
    /// dK and dV, head size 128.
    FlashDkdv128 = "flash_attention_backward_dkdv_hs128" in "flash_attention.cu" for NARROW FLASH_BACKWARD;
    /// dQ, head size 16.
    FlashDq16 = "flash_attention_backward_dq_hs16" in "flash_attention.cu" for NARROW FLASH_BACKWARD;
    /// dQ, head size 32.
    FlashDq32 = "flash_attention_backward_dq_hs32" in "flash_attention.cu" for NARROW FLASH_BACKWARD;
    /// dQ, head size 64.
    FlashDq64 = "flash_attention_backward_dq_hs64" in "flash_attention.cu" for NARROW FLASH_BACKWARD;
    /// dQ, head size 128.
    FlashDq128 = "flash_attention_backward_dq_hs128" in "flash_attention.cu" for NARROW FLASH_BACKWARD;
    /// Σ dout ⊙ out per head row, before the flash backward.
    FlashRowdot = "flash_attention_backward_rowdot" in "flash_attention.cu" for NARROW &[P, P, P, I, I, I, I];
    /// Rows gathered into a compact tensor.
    GatherRows = "gather_rows" in "gather.cu" for FLOATS &[P, P, P, I, I];
    /// Rows scattered back.
    ScatterRows = "scatter_rows" in "gather.cu" for FLOATS &[P, P, P, I, I];
    /// Exact GELU.
    GeluForward = "gelu_forward" in "gelu.cu" for FLOATS &[P, P, I];
    /// GELU's backward.
    GeluBackward = "gelu_backward" in "gelu.cu" for FLOATS &[P, P, P, I];
    /// tanh.
    TanhForward = "tanh_forward" in "gelu.cu" for FLOATS &[P, P, I];
    /// tanh's backward.
    TanhBackward = "tanh_backward" in "gelu.cu" for FLOATS &[P, P, P, I];
    /// Per-block f64 sums of squares.
    GlobalNormPartial = "global_norm_partial_f32" in "global_norm.cu" for F32_ONLY &[P, P, I];
    /// The partials added in order, square-rooted.
    GlobalNormReduce = "global_norm_reduce_f32" in "global_norm.cu" for F32_ONLY &[P, P, I];
    /// `x *= scale`.
    ScaleInplace = "scale_inplace_f32" in "global_norm.cu" for F32_ONLY &[P, F, I];
    /// Clipping by a norm that stays on the device.
    ClipByNorm = "clip_by_norm_f32" in "global_norm.cu" for F32_ONLY &[P, P, F, I];
    /// LayerNorm forward.
    LayernormForward = "layernorm_forward" in "layernorm.cu" for FLOATS &[P, P, P, P, P, P, I, I, F];
    /// LayerNorm backward: dinp and per-block dw, db partials.
    LayernormBackward = "layernorm_backward" in "layernorm.cu" for FLOATS &[P, P, P, P, P, P, P, I, I, I];
    /// The dw, db partials added in block order.
    LayernormBackwardReduce = "layernorm_backward_reduce_f32" in "layernorm.cu" for F32_ONLY &[P, P, P, I, I];
    /// Softmax cross-entropy per row.
    CrossentropyForward = "crossentropy_forward" in "softmax_xent.cu" for FLOATS &[P, P, P, I, I];
    /// Its backward.
    CrossentropyBackward = "crossentropy_backward" in "softmax_xent.cu" for FLOATS &[P, P, P, F, I, I];
}

/// The three flash-attention kernels of one head size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashOp {
    /// The forward.
    Forward,
    /// dK and dV.
    Dkdv,
    /// dQ.
    Dq,
}

impl Kernel {
    /// Slots per family in the flat table: one per float dtype.
    const DTYPE_SLOTS: usize = 3;
    /// Size of the flat table a device resolves the kernels into.
    pub const SLOTS: usize = Kernel::ALL.len() * Kernel::DTYPE_SLOTS;

    /// The slot of (`self`, `dtype`) in the flat table, or `None` where the kernel is not
    /// instantiated for `dtype`.
    pub fn slot(self, dtype: Dtype) -> Option<usize> {
        if !self.dtypes().contains(&dtype) {
            return None;
        }
        let d = match dtype {
            Dtype::F32 => 0,
            Dtype::Bf16 => 1,
            Dtype::F16 => 2,
            Dtype::U32 | Dtype::I64 => return None,
        };
        Some(self as usize * Kernel::DTYPE_SLOTS + d)
    }

    /// The C name of the entry point for `dtype` (`layernorm_forward_bf16`).
    pub fn name(self, dtype: Dtype) -> String {
        let base = self.base_name();
        if self.dtypes() == F32_ONLY && base.ends_with("_f32") {
            base.to_string()
        } else {
            format!("{base}_{}", dtype.suffix())
        }
    }

    /// Every (kernel, dtype) entry point: the family and its C name.
    pub fn entry_points() -> impl Iterator<Item = (Kernel, Dtype, String)> {
        Kernel::ALL.iter().flat_map(|&k| k.dtypes().iter().map(move |&d| (k, d, k.name(d))))
    }

    /// The flash-attention kernel `op` for head size `hs`, when one is compiled.
    pub fn flash(op: FlashOp, hs: usize) -> Option<Kernel> {
        use Kernel::*;
        let all = match op {
            FlashOp::Forward => [FlashForward16, FlashForward32, FlashForward64, FlashForward128],
            FlashOp::Dkdv => [FlashDkdv16, FlashDkdv32, FlashDkdv64, FlashDkdv128],
            FlashOp::Dq => [FlashDq16, FlashDq32, FlashDq64, FlashDq128],
        };
        [16, 32, 64, 128].iter().position(|&h| h == hs).map(|i| all[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_and_names_unique() {
        let mut slots = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (k, d, name) in Kernel::entry_points() {
            let s = k.slot(d).expect("an instantiated dtype has a slot");
            assert!(s < Kernel::SLOTS);
            assert!(slots.insert(s), "{name}: slot {s} taken twice");
            assert!(names.insert(name.clone()), "{name} twice");
            assert!(k.params().len() <= super::super::launch::MAX_ARGS, "{name}: too many parameters");
        }
        assert_eq!(Kernel::LayernormForward.name(Dtype::Bf16), "layernorm_forward_bf16");
        assert_eq!(Kernel::GlobalNormPartial.name(Dtype::F32), "global_norm_partial_f32");
        assert_eq!(Kernel::CastFromF32.name(Dtype::F32), "cast_from_f32_f32");
        assert_eq!(Kernel::AdamwUpdate.name(Dtype::F32), "adamw_update_f32");
        assert_eq!(Kernel::GlobalNormPartial.slot(Dtype::Bf16), None);
        assert_eq!(Kernel::flash(FlashOp::Dq, 64), Some(Kernel::FlashDq64));
        assert_eq!(Kernel::flash(FlashOp::Forward, 48), None);
    }
}
