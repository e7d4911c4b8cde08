//! xlt: a from-scratch XLM-R/BERT encoder (forward and backward) for zero-shot cross-lingual
//! transfer research. See ARCHITECTURE.md for the map of the crate.

pub mod bench;
pub mod config;
pub mod cpu;
pub mod embed;
pub mod features;
pub mod error;
pub mod fsutil;
pub mod heads;
pub mod metrics;
pub mod model;
pub mod npy;
pub mod rng;
pub mod score;
pub mod tasks;
pub mod tokenize;

pub use error::{Error, Result};
