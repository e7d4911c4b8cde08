//! Low-level helpers shared by the task readers: whole files as text (a missing file names
//! what was expected there), numbered lines, JSON-lines rows with typed field access,
//! CSV-escaped TSV records, and the label lookup every reader uses.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// Reads `path` as UTF-8 text. A missing file is an I/O error naming the path and `what` was
/// expected there; a leading byte-order mark is dropped.
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String> {
    crate::fsutil::read_text(path, Some(what))
}

/// A format error at `line` (1-based) of `path`.
pub(crate) fn at_line(path: &Path, line: usize, msg: impl std::fmt::Display) -> Error {
    Error::format(path, format!("line {line}: {msg}"))
}

/// The error for a split that yielded no examples.
pub(crate) fn empty_split(path: &Path, what: &str) -> Error {
    Error::format(path, format!("no examples: expected at least one {what}, found none"))
}

/// A short description of a JSON value for error messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", quote(s)),
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Object(_) => "an object".to_string(),
    }
}

/// `s` in double quotes, cut to 60 characters.
pub(crate) fn quote(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    format!("{out:?}")
}

/// Lines of `text` with their 1-based numbers; `\r\n` endings are handled.
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l))
}

/// One JSON-lines row: an object, with the file and line it came from.
pub(crate) struct Row<'a> {
    /// The file.
    pub path: &'a Path,
    /// 1-based line number.
    pub line: usize,
    /// The row's fields.
    pub obj: Map<String, Value>,
}

/// Parses every non-blank line of `text` as a JSON object.
pub(crate) fn json_rows<'a>(path: &'a Path, text: &str) -> Result<Vec<Row<'a>>> {
    let mut rows = Vec::new();
    for (line, l) in numbered_lines(text) {
        if l.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(l)
            .map_err(|e| at_line(path, line, format!("expected a JSON object, found invalid JSON ({e})")))?;
        match v {
            Value::Object(obj) => rows.push(Row { path, line, obj }),
            other => return Err(at_line(path, line, format!("expected a JSON object, found {}", describe(&other)))),
        }
    }
    Ok(rows)
}

impl Row<'_> {
    /// A format error at this row.
    pub fn err(&self, msg: impl std::fmt::Display) -> Error {
        at_line(self.path, self.line, msg)
    }

    /// Whether the row has field `key`.
    pub fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    /// The string field `key`.
    pub fn str(&self, key: &str) -> Result<&str> {
        str_field(&self.obj, key).map_err(|m| self.err(m))
    }

    /// The field `key`, which must be present.
    pub fn value(&self, key: &str) -> Result<&Value> {
        self.obj.get(key).ok_or_else(|| self.err(format!("expected a field `{key}`, found none")))
    }

    /// The array of strings `key`.
    pub fn str_list(&self, key: &str) -> Result<Vec<String>> {
        str_list(self.value(key)?)
            .map_err(|found| self.err(format!("expected `{key}` to be a list of strings, found {found}")))
    }
}

/// The string field `key` of `obj`, or a message saying what was found instead.
pub(crate) fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> std::result::Result<&'a str, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!("expected `{key}` to be a string, found {}", describe(v))),
        None => Err(format!("expected a string field `{key}`, found none")),
    }
}

/// A JSON array of strings, or a description of what was found instead.
pub(crate) fn str_list(v: &Value) -> std::result::Result<Vec<String>, String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("an element {}", describe(other))),
            })
            .collect(),
        other => Err(describe(other)),
    }
}

/// A label as written in a JSON row: strings as they are, integers in decimal. `None` for the
/// unlabelled markers datasets use: absent, null, `-1` (HF test splits, SNLI without gold
/// label) and `""` (HellaSwag / CommonsenseQA test splits).
pub(crate) fn json_label(v: Option<&Value>) -> std::result::Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(format!("expected the label to be a string or an integer, found {}", describe(other))),
    }
}

/// The id of `label` in `labels`, or a message naming it and the allowed labels.
pub(crate) fn label_id(labels: &[&str], label: &str) -> std::result::Result<usize, String> {
    labels
        .iter()
        .position(|l| *l == label)
        .ok_or_else(|| format!("unknown label {} (expected one of: {})", quote(label), labels.join(", ")))
}

/// Resolves an optional label: a known label gives its id; an absent one is allowed only in an
/// unlabelled (test) split.
pub(crate) fn resolve_label(
    labels: &[&str],
    label: Option<&str>,
    labelled: bool,
) -> std::result::Result<Option<usize>, String> {
    match label {
        Some(l) => label_id(labels, l).map(Some),
        None if labelled => Err(format!("expected a label (one of: {}), found none", labels.join(", "))),
        None => Ok(None),
    }
}

/// CSV-escaped tab-separated records (Python `csv.writer(delimiter="\t")`, quote-minimal), with
/// the line each record starts on. Blank lines are skipped.
pub(crate) fn csv_tsv_records(path: &Path, text: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut reader =
        csv::ReaderBuilder::new().delimiter(b'\t').has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| line_at(text, p.byte()));
            at_line(path, line, format!("expected a tab-separated CSV record, found malformed text ({e})"))
        })?;
        let line = rec.position().map_or(0, |p| line_at(text, p.byte()));
        out.push((line, rec.iter().map(str::to_string).collect()));
    }
    Ok(out)
}

/// The 1-based line of the first non-terminator byte at or after `byte`. The csv crate's own
/// line count lags by one after `\r\n` endings (Python's `csv.writer` default), so records are
/// located by byte offset instead.
pub(crate) fn line_at(text: &str, byte: u64) -> usize {
    let bytes = text.as_bytes();
    let mut at = usize::try_from(byte).unwrap_or(bytes.len()).min(bytes.len());
    while at < bytes.len() && (bytes[at] == b'\r' || bytes[at] == b'\n') {
        at += 1;
    }
    bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1
}
