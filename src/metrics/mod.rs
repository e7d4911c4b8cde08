//! Official evaluation metrics of every intermediate and XTREME task, reimplemented from their
//! definitions: accuracy, seqeval 0.0.12 chunk F1, SQuAD v1.1 and MLQA EM/F1, BUCC margin
//! mining with a tuned threshold, Tatoeba nearest-neighbour accuracy.
//!
//! Every function here returns rates as fractions in [0, 1]; [`crate::score`] prints them on
//! the 0–100 scale of the official scripts. Streaming metrics follow `new / update / compute
//! / reset`.

pub mod accuracy;
pub mod bucc;
pub mod knn;
pub mod mlqa;
pub mod seqeval;
pub mod squad;
pub mod tatoeba;
pub mod text;

pub use accuracy::Accuracy;
pub use seqeval::{Seqeval, SeqevalScores};
pub use squad::{AnswerNorm, QaExample, QaScores};
