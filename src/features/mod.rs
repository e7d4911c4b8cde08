//! Featurisation: task examples to token features for the heads (pairs, multiple choice,
//! span QA windows, tagging labels on first sub-tokens, MLM masking), and the on-disk cache.

pub mod cache;
pub mod classification;
pub mod mlm;
pub mod multiple_choice;
pub mod span;
pub mod tagging;
