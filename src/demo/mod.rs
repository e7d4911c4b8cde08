//! `xlt demo`: the built-in default run. A tiny XLM-R-shaped model shipped in
//! `assets/demo-model/` is trained on synthetic tasks of every head family and evaluated
//! zero-shot on a second synthetic language.

pub mod data;
pub mod run;
