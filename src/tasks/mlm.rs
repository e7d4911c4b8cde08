//! Raw text for masked language modelling (jiant's `mlm_simple`): one example per line,
//! surrounding whitespace dropped, empty lines skipped. Which corpus the paper mixed in
//! ("wiki text") is in neither jiant nor XTREME; any text files named by an `mlm_simple` config
//! are read. There is no XTREME layout for MLM.

use super::read::{empty_split, numbered_lines};
use super::Split;
use crate::error::Result;
use std::path::Path;

/// One line of raw text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextExample {
    /// `<split>-<line index from 0>`, as jiant's guids (skipped empty lines keep their index).
    pub id: String,
    /// The line, trimmed.
    pub text: String,
}

/// Reads a raw-text file, one example per non-empty line. A file without text is an error.
pub fn read_text_lines(path: &Path, text: &str, split: Split) -> Result<Vec<TextExample>> {
    let out: Vec<TextExample> = numbered_lines(text)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(line, l)| TextExample { id: format!("{split}-{}", line - 1), text: l.trim().to_string() })
        .collect();
    if out.is_empty() {
        return Err(empty_split(path, "non-empty line of text"));
    }
    Ok(out)
}
