//! One typed wrapper per kernel: the twins of `cpu::ops`, with the same names and argument order
//! (outputs, inputs, sizes) after the leading `&Gpu`. Every wrapper checks its views' sizes and
//! types before launching, so a shape bug is an error, not a wild write.
//!
//! Deterministic by construction: reductions over rows (parameter gradients, norms) write
//! per-block partial sums to the GPU's scratch area and add them in a fixed order; there are no
//! floating-point atomics, so a rerun is bit-identical.

pub mod activation;
pub mod attention;
pub mod bias;
pub mod dropout;
pub mod embedding;
pub mod flash;
pub mod gather;
pub mod layernorm;
pub mod matmul;
pub mod optim;
pub mod xent;

pub use activation::*;
pub use attention::*;
pub use bias::*;
pub use dropout::*;
pub use embedding::*;
pub use flash::*;
pub use gather::*;
pub use layernorm::*;
pub use matmul::*;
pub use optim::*;
pub use xent::*;
