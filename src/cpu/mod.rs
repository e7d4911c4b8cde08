//! The CPU reference backend: f32, multithreaded with rayon, GEMMs by the `gemm` crate.
//! It is the spec every other backend is checked against. `model.rs` is the [`TaskModel`]
//! ([`model::CpuModel`]), `inference.rs` the [`SentenceEncoder`]; `encoder.rs`, `heads.rs` and
//! `ops.rs` the math, each with its twin under `cuda/`.
//!
//! [`TaskModel`]: crate::model::TaskModel
//! [`SentenceEncoder`]: crate::model::SentenceEncoder

pub mod encoder;
pub mod gemm;
pub mod heads;
pub mod inference;
pub mod math;
pub mod model;
pub mod ops;

pub use inference::CpuEncoder;
pub use model::CpuModel;
