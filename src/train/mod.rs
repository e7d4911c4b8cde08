//! Training machinery: learning-rate schedule, multi-task sampler, checkpoints with exact
//! resume, and snapshot averaging.

pub mod average;
pub mod batches;
pub mod checkpoint;
pub mod sampler;
pub mod schedule;
pub mod setup;
pub mod trainer;
