//! Official evaluation metrics of every intermediate and XTREME task.
