//! Pharaoh alignment lines: space-separated `i-j` links, zero-indexed, `i` the source (English)
//! word and `j` the target word; gold sets also mark possible links `ipj`. One line per
//! sentence pair; an empty line is a pair without links.

use crate::error::{Error, Result};
use std::path::Path;

/// One link: (source word, target word), zero-indexed.
pub type Link = (usize, usize);

/// Whether a gold link is sure (`i-j`) or only possible (`ipj`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `i-j`
    Sure,
    /// `ipj`
    Possible,
}

/// Parses one token `i-j` or `ipj` (with `one_indexed`, both indices lose 1). The error says
/// what is wrong with the token, for the caller to place in its file and line.
pub fn parse_link(token: &str, one_indexed: bool) -> std::result::Result<(Link, Kind), String> {
    let (a, b, kind) = if let Some((a, b)) = token.split_once('-') {
        (a, b, Kind::Sure)
    } else if let Some((a, b)) = token.split_once('p') {
        (a, b, Kind::Possible)
    } else {
        return Err(format!("{token:?} is not a link (expected i-j, or ipj for a possible link)"));
    };
    let num = |s: &str| -> std::result::Result<usize, String> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("{token:?} is not a link: {s:?} is not a word index"));
        }
        let v: usize = s.parse().map_err(|_| format!("{token:?}: index {s} is too large"))?;
        if one_indexed {
            v.checked_sub(1).ok_or_else(|| format!("{token:?}: index 0 in a 1-indexed alignment"))
        } else {
            Ok(v)
        }
    };
    Ok(((num(a)?, num(b)?), kind))
}

/// Parses one line of links (any kind).
pub fn parse_line(line: &str, one_indexed: bool) -> std::result::Result<Vec<(Link, Kind)>, String> {
    line.split_whitespace().map(|t| parse_link(t, one_indexed)).collect()
}

/// Formats links as a Pharaoh line: distinct, sorted by (i, j), single spaces.
pub fn format_line(links: &[Link]) -> String {
    let mut l = links.to_vec();
    l.sort_unstable();
    l.dedup();
    let mut s = String::with_capacity(l.len() * 6);
    for (k, (i, j)) in l.iter().enumerate() {
        if k > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{i}-{j}"));
    }
    s
}

/// Reads an alignment file: per line, its links and their kinds. Errors name the file and line
/// (a malformed token is an error, never skipped). A final newline does not add a line.
pub fn read_file(path: &Path, one_indexed: bool) -> Result<Vec<Vec<(Link, Kind)>>> {
    let text = crate::fsutil::read_text(path, Some("alignment file (i-j links, one line per sentence pair)"))?;
    let mut out = Vec::new();
    for (n, line) in lines(&text).enumerate() {
        out.push(parse_line(line, one_indexed).map_err(|e| Error::format(path, format!("line {}: {e}", n + 1)))?);
    }
    Ok(out)
}

/// The lines of `text` without their `\n` / `\r\n`; a final newline does not start another.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let empty = text.is_empty();
    body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).take(if empty { 0 } else { usize::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_and_format() {
        assert_eq!(parse_link("3-14", false), Ok(((3, 14), Kind::Sure)));
        assert_eq!(parse_link("3p14", false), Ok(((3, 14), Kind::Possible)));
        assert_eq!(parse_link("1-1", true), Ok(((0, 0), Kind::Sure)));
        for bad in ["3", "a-1", "1-", "-1", "1--2", "1-2-3", "1p2p3", "+1-2"] {
            assert!(parse_link(bad, false).is_err(), "{bad}");
        }
        assert!(parse_link("0-1", true).unwrap_err().contains("index 0"));
        assert_eq!(format_line(&[(2, 0), (0, 1), (2, 0), (0, 0), (10, 2), (9, 3)]), "0-0 0-1 2-0 9-3 10-2");
        assert_eq!(format_line(&[]), "");
    }

    #[test]
    fn lines_keep_empty_lines_and_drop_the_final_newline() {
        assert_eq!(lines("a\r\n\nb\n").collect::<Vec<_>>(), ["a", "", "b"]);
        assert_eq!(lines("a\n\n").collect::<Vec<_>>(), ["a", ""]);
        assert_eq!(lines("").count(), 0);
        assert_eq!(lines("\n").collect::<Vec<_>>(), [""]);
    }
}
