//! Word alignment on xlt's encoder and English training data reordered to a target language's
//! word order (the seed question: does reordered English transfer better?).
//!
//! - [`pharaoh`]: the `i-j` link format every aligner writes and reads (zero-indexed, source
//!   word first), and gold sets with sure (`i-j`) and possible (`ipj`) links.
//! - [`pairs`]: the aligners' `src ||| tgt` input, a line at a time.
//! - [`extract`]: links from hidden states: awesome-align's `softmax`, SimAlign's `argmax` and
//!   `itermax`, on sub-word pieces, then mapped to words.
//! - [`aligner`]: `xlt align`: words tokenised one by one, both sides encoded separately on the
//!   CPU or GPU encoder, sorted by length and batched, links out a line per input line.
//! - [`quality`]: AER, precision, recall and F1 against a gold alignment (`xlt score --task
//!   alignment`), as awesome-align's evaluation computes them.
//! - [`reorder`]: `xlt reorder`: English words (and their labels) permuted into the target
//!   order through the links.
//! - [`study`]: `xlt reorder-study`: align, reorder towards each language, fine-tune every
//!   condition and compare zero-shot scores in one table.

pub mod aligner;
pub mod extract;
pub mod pairs;
pub mod pharaoh;
pub mod quality;
pub mod reorder;
pub mod study;
pub mod train;
