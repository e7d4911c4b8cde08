//! Training: schedule.
