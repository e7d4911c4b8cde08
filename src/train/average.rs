//! Training: average.
