//! Synthetic tasks for the demo (being written).
