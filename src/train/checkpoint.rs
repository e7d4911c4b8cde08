//! Training: checkpoint.
