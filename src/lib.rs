//! xlt: a from-scratch XLM-R/BERT encoder (forward and backward) for zero-shot cross-lingual
//! transfer research. See ARCHITECTURE.md for the map of the crate.

// Ops take outputs, inputs and sizes explicitly, llm.c style (the CUDA kernels take the same
// arguments in the same order), so long argument lists are the design, not an accident.
#![allow(clippy::too_many_arguments)]

pub mod align;
pub mod bench;
pub mod config;
pub mod cpu;
pub mod cuda;
pub mod demo;
pub mod device;
pub mod embed;
pub mod error;
pub mod eval;
pub mod features;
pub mod fsutil;
pub mod grid;
pub mod metrics;
pub mod model;
pub mod npy;
pub mod provenance;
pub mod report;
pub mod rng;
pub mod score;
pub mod sys;
pub mod tasks;
pub mod tokenize;
pub mod train;
pub mod xtreme;

pub use error::{Error, Result};
