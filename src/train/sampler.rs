//! Training: sampler.
