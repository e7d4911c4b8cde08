//! Task heads over the shared encoder. Each head registers its tensors in the same flat
//! parameter layout as the encoder and has a forward and a backward on the CPU ops.

pub mod classification;
