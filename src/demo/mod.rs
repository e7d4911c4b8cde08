//! `xlt demo`: the built-in default run. A tiny XLM-R-shaped model shipped in
//! `assets/demo-model/` is trained on synthetic tasks of every head family and evaluated
//! zero-shot on a second synthetic language. `xlt demo --reorder` ([`reorder`]) runs the
//! reordering study on them: align, reorder the English training data towards the second
//! language's word order, fine-tune, compare.

pub mod data;
pub mod reorder;
pub mod run;
