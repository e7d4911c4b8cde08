//! `xlt xtreme`: fine-tune on each XTREME target task's English training set, evaluate
//! zero-shot on every language, and write results in XTREME's layout.

pub mod retrieval;
