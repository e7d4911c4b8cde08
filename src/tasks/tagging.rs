//! Word-tagging readers: the token-per-line files of UDPOS and PAN-X (`word\ttag`, blank line
//! between sentences; test files of XTREME's layout have words only), and CCG supertagging's
//! `words\ttags` lines with the `tags_to_id.json` map.
//!
//! CCG data cannot be downloaded (CCGbank is LDC2005T13); jiant v1's preparation scripts split
//! sections 00–18 / 19–21 / 22–24 into train / dev / test and number the 1363 tag types.

use super::read::{at_line, describe, empty_split, label_id, numbered_lines, quote, read_text};
use super::registry::CCG_NUM_TAGS;
use super::Split;
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One sentence of words with one tag id per word (into the task's tag list, or CCG's
/// `tags_to_id`); `None` when the file has words only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggingExample {
    /// `<split>-<n>`, n counting sentences from 0.
    pub id: String,
    /// The words, as split in the file.
    pub words: Vec<String>,
    /// One tag id per word.
    pub tags: Option<Vec<usize>>,
}

/// Reads a token-per-line file (`udpos/dev-de.tsv`, `panx_de/val.tsv`, ...): each line `word\ttag`
/// (surrounding whitespace dropped, as jiant's `line.strip()`), a blank line or `-DOCSTART-` line
/// between sentences. Test-split lines may be a bare word; within one sentence either every word
/// has a tag or none does. Train and val lines need both columns.
pub fn read_token_file(path: &Path, text: &str, tags: &[&str], split: Split) -> Result<Vec<TaggingExample>> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut ids: Vec<Option<usize>> = Vec::new();
    let mut first_line = 0;
    let mut flush = |words: &mut Vec<String>, ids: &mut Vec<Option<usize>>, first_line: usize| -> Result<()> {
        if words.is_empty() {
            return Ok(());
        }
        let tagged = ids.iter().filter(|t| t.is_some()).count();
        let tag_ids = if tagged == ids.len() {
            Some(ids.iter().flatten().copied().collect())
        } else if tagged == 0 {
            None
        } else {
            return Err(at_line(
                path,
                first_line,
                format!(
                    "expected every word of the sentence starting here to have a tag or none to, found {tagged} of {}",
                    ids.len()
                ),
            ));
        };
        out.push(TaggingExample { id: format!("{split}-{}", out.len()), words: std::mem::take(words), tags: tag_ids });
        ids.clear();
        Ok(())
    };
    for (line, l) in numbered_lines(text) {
        let l = l.trim();
        if l.is_empty() || l.starts_with("-DOCSTART-") {
            flush(&mut words, &mut ids, first_line)?;
            continue;
        }
        if words.is_empty() {
            first_line = line;
        }
        let fields: Vec<&str> = l.split('\t').collect();
        let (word, tag) = match fields.as_slice() {
            [w, t] => (*w, Some(*t)),
            [w] if split == Split::Test => (*w, None),
            _ => {
                let expected = if split == Split::Test { "1 or 2" } else { "2" };
                return Err(at_line(
                    path,
                    line,
                    format!(
                        "expected {expected} tab-separated columns (word, tag), found {}: {}",
                        fields.len(),
                        quote(l)
                    ),
                ));
            }
        };
        let id = match tag {
            Some(t) => Some(label_id(tags, t).map_err(|m| at_line(path, line, m))?),
            None => None,
        };
        words.push(word.to_string());
        ids.push(id);
    }
    flush(&mut words, &mut ids, first_line)?;
    if out.is_empty() {
        return Err(empty_split(path, "tagged sentence"));
    }
    Ok(out)
}

/// Reads CCG's `tags_to_id.json` (`{tag: id}`, ids as integers or decimal strings, each below
/// 1363).
pub fn read_tags_to_id(path: &Path) -> Result<BTreeMap<String, usize>> {
    let text = read_text(path, "CCG tags_to_id.json")?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(path, format!("line {}: expected a JSON object {{tag: id}}: {e}", e.line())))?;
    let Value::Object(m) = v else {
        return Err(Error::format(path, format!("expected a JSON object {{tag: id}}, found {}", describe(&v))));
    };
    let mut out = BTreeMap::new();
    for (tag, id) in m {
        let n = match &id {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse::<u64>().ok(),
            _ => None,
        };
        match n.and_then(|n| usize::try_from(n).ok()) {
            Some(n) if n < CCG_NUM_TAGS => {
                out.insert(tag, n);
            }
            _ => {
                return Err(Error::format(
                    path,
                    format!("tag {}: expected an id in 0..{CCG_NUM_TAGS}, found {}", quote(&tag), describe(&id)),
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(Error::format(path, "expected at least one tag, found an empty object"));
    }
    Ok(out)
}

/// Reads a CCG file (`ccg.train`, ...): one sentence per line, `w1 w2 ...\tT1 T2 ...`, as many
/// tags as words, each tag in `tags_to_id`. Every split carries tags.
pub fn read_ccg(
    path: &Path,
    text: &str,
    tags_to_id: &BTreeMap<String, usize>,
    split: Split,
) -> Result<Vec<TaggingExample>> {
    let mut out = Vec::new();
    for (line, l) in numbered_lines(text) {
        let l = l.trim();
        if l.is_empty() {
            continue;
        }
        let fields: Vec<&str> = l.split('\t').collect();
        let [words, tags] = fields.as_slice() else {
            return Err(at_line(
                path,
                line,
                format!("expected 2 tab-separated columns (words, tags), found {}", fields.len()),
            ));
        };
        let words: Vec<String> = words.split_whitespace().map(str::to_string).collect();
        let tags: Vec<&str> = tags.split_whitespace().collect();
        if words.len() != tags.len() {
            return Err(at_line(
                path,
                line,
                format!("expected one tag per word, found {} words and {} tags", words.len(), tags.len()),
            ));
        }
        let ids = tags
            .iter()
            .map(|t| {
                tags_to_id.get(*t).copied().ok_or_else(|| {
                    at_line(path, line, format!("unknown CCG tag {} (not in tags_to_id.json)", quote(t)))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(TaggingExample { id: format!("{split}-{}", out.len()), words, tags: Some(ids) });
    }
    if out.is_empty() {
        return Err(empty_split(path, "tagged sentence"));
    }
    Ok(out)
}
