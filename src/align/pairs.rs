//! The aligners' input: one sentence pair per line, `src ||| tgt`, both sides already split
//! into words by whitespace (awesome-align's and SimAlign's format).
//!
//! A line is a pair only if splitting it on the exact string ` ||| ` gives exactly two parts and
//! neither is blank; anything else (an empty line, a missing or doubled separator, a blank side)
//! is not a pair, and its output line stays empty, so output line k always belongs to input
//! line k.

use crate::error::Result;
use std::path::Path;

/// The separator between the two sides.
pub const SEPARATOR: &str = " ||| ";

/// The source and target words of `line`, or `None` when the line is not a pair.
pub fn parse_pair(line: &str) -> Option<(Vec<&str>, Vec<&str>)> {
    let mut parts = line.split(SEPARATOR);
    let (src, tgt) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || src.trim().is_empty() || tgt.trim().is_empty() {
        return None;
    }
    Some((src.split_whitespace().collect(), tgt.split_whitespace().collect()))
}

/// Reads a pair file: its lines (a leading byte-order mark and `\r` dropped; a final newline
/// does not add a line). Invalid UTF-8 is an error naming the line.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text = crate::fsutil::read_text(path, Some("sentence pairs, one `src ||| tgt` per line"))?;
    Ok(super::pharaoh::lines(&text).map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_non_blank_sides_make_a_pair() {
        assert_eq!(parse_pair("a b ||| c"), Some((vec!["a", "b"], vec!["c"])));
        assert_eq!(parse_pair("  a \t b  |||  c  "), Some((vec!["a", "b"], vec!["c"])));
        for bad in ["", "   ", "a b", "a ||| b ||| c", " ||| b", "a |||  ", "a|||b", "a ||| ", "a||| b"] {
            assert_eq!(parse_pair(bad), None, "{bad:?}");
        }
        // The separator is the exact string: `|||` inside a word is a word.
        assert_eq!(parse_pair("a|||b ||| c"), Some((vec!["a|||b"], vec!["c"])));
    }
}
