//! Sentence-pair classification readers: MNLI, SNLI, ANLI, QQP and XNLI JSON lines (jiant),
//! PAWS-X raw TSV with header (jiant), and the CSV-escaped TSVs XTREME's download script
//! writes for XNLI and PAWS-X.

use super::read::{at_line, csv_tsv_records, empty_split, json_label, json_rows, numbered_lines, resolve_label};
use super::Split;
use crate::error::Result;
use std::path::Path;

/// One sentence pair with its label id (into the task's label list); `None` when the file
/// carries no label (XTREME test files, HF test splits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairExample {
    /// `<split>-<n>` (n counts kept examples from 0), or the file's own id (PAWS-X raw files).
    pub id: String,
    /// First text (premise, question 1, sentence 1).
    pub a: String,
    /// Second text (hypothesis, question 2, sentence 2).
    pub b: String,
    /// Label id.
    pub label: Option<usize>,
}

/// The field names of a JSON-lines pair format.
#[derive(Clone, Copy, Debug)]
pub struct JsonPairFields {
    /// Field of the first text.
    pub a: &'static str,
    /// Field of the second text.
    pub b: &'static str,
    /// Field of the label.
    pub label: &'static str,
    /// Rows without a gold label (`-1`, `"-"`) are dropped in every split, as jiant's SNLI
    /// reader does.
    pub skip_unlabelled: bool,
}

/// MNLI (HF GLUE via jiant): `premise`, `hypothesis`, `label` (label strings).
pub const MNLI_FIELDS: JsonPairFields =
    JsonPairFields { a: "premise", b: "hypothesis", label: "label", skip_unlabelled: false };
/// SNLI from HF datasets: `premise`, `hypothesis`, `label`; rows labelled -1 dropped.
pub const SNLI_HF_FIELDS: JsonPairFields =
    JsonPairFields { a: "premise", b: "hypothesis", label: "label", skip_unlabelled: true };
/// SNLI in its original JSON-lines format: `sentence1`, `sentence2`, `gold_label`; rows with
/// gold label `-` dropped.
pub const SNLI_ORIGINAL_FIELDS: JsonPairFields =
    JsonPairFields { a: "sentence1", b: "sentence2", label: "gold_label", skip_unlabelled: true };
/// ANLI (HF `anli` via jiant, `premise` renamed `context`): `context`, `hypothesis`, `label`.
pub const ANLI_FIELDS: JsonPairFields =
    JsonPairFields { a: "context", b: "hypothesis", label: "label", skip_unlabelled: false };
/// QQP (HF GLUE via jiant): `text_a`, `text_b`, `label` ("0"/"1").
pub const QQP_FIELDS: JsonPairFields =
    JsonPairFields { a: "text_a", b: "text_b", label: "label", skip_unlabelled: false };
/// XNLI-1.0 `xnli.{dev,test}.jsonl` rows: `sentence1`, `sentence2`, `gold_label`, `language`.
pub const XNLI_FIELDS: JsonPairFields =
    JsonPairFields { a: "sentence1", b: "sentence2", label: "gold_label", skip_unlabelled: false };

/// Reads a JSON-lines pair file. Each row uses the first format of `formats` whose first-text
/// field it has (SNLI files come in two formats), else the first format. Labels map through
/// `labels`; an unknown label is an error naming the line. In the test split a missing label (absent, null, -1, "") gives `None`; in
/// train and val it is an error unless `fields.skip_unlabelled`. (jiant replaces every test
/// label by a dummy, `LABELS[-1]`; here a real test label, as XNLI and ANLI test files have,
/// is kept.) With `language`, only rows
/// whose `language` field equals it are kept (jiant's XNLI reader).
pub fn read_jsonl_pairs(
    path: &Path,
    text: &str,
    formats: &[JsonPairFields],
    labels: &[&str],
    split: Split,
    language: Option<&str>,
) -> Result<Vec<PairExample>> {
    let mut out = Vec::new();
    for row in json_rows(path, text)? {
        if let Some(lang) = language {
            if row.str("language")? != lang {
                continue;
            }
        }
        let Some(&first) = formats.first() else {
            return Err(crate::error::Error::Data("read_jsonl_pairs: no field formats given".to_string()));
        };
        let fields = formats.iter().copied().find(|f| row.has(f.a)).unwrap_or(first);
        let a = row.str(fields.a)?;
        let b = row.str(fields.b)?;
        let raw = row.obj.get(fields.label);
        let label = json_label(raw).map_err(|m| row.err(m))?;
        let label = match label.as_deref() {
            Some("-") | None if fields.skip_unlabelled => continue,
            l => resolve_label(labels, l, split != Split::Test).map_err(|m| row.err(m))?,
        };
        out.push(PairExample { id: format!("{split}-{}", out.len()), a: a.to_string(), b: b.to_string(), label });
    }
    if out.is_empty() {
        return Err(empty_split(path, "sentence pair"));
    }
    Ok(out)
}

/// Reads a raw PAWS-X file (`train.tsv`, `dev_2k.tsv`, `test_2k.tsv`, jiant's layout): a header
/// line `id\tsentence1\tsentence2\tlabel`, then exactly four tab-separated fields per line, not
/// CSV-escaped (quotes are literal). Every split carries labels.
pub fn read_pawsx_raw(path: &Path, text: &str, labels: &[&str]) -> Result<Vec<PairExample>> {
    let mut out = Vec::new();
    for (line, l) in numbered_lines(text) {
        let fields: Vec<&str> = l.trim().split('\t').collect();
        if line == 1 {
            if fields.first() != Some(&"id") {
                return Err(at_line(
                    path,
                    1,
                    format!("expected the header `id\\tsentence1\\tsentence2\\tlabel`, found {l:?}"),
                ));
            }
            continue;
        }
        if l.trim().is_empty() {
            continue;
        }
        let [id, a, b, label] = fields.as_slice() else {
            return Err(at_line(
                path,
                line,
                format!("expected 4 tab-separated columns (id, sentence1, sentence2, label), found {}", fields.len()),
            ));
        };
        let label = resolve_label(labels, Some(label), true).map_err(|m| at_line(path, line, m))?;
        out.push(PairExample { id: id.to_string(), a: a.to_string(), b: b.to_string(), label });
    }
    if out.is_empty() {
        return Err(empty_split(path, "sentence pair"));
    }
    Ok(out)
}

/// Reads an XTREME classification TSV (`xnli/dev-de.tsv`, `pawsx/train-en.tsv`, ...): no header,
/// `sentence1\tsentence2\tlabel`, CSV-escaped by Python's `csv.writer`. Test files have only the
/// two sentences (label `None`); train and dev rows need all three columns.
///
/// XTREME's own readers (`third_party/processors/{xnli,pawsx}.py`) skip the first row as if it
/// were a header and read without CSV unescaping, so they drop one example per file and keep
/// doubled quotes; this reader keeps every row and unescapes.
pub fn read_xtreme_pairs(path: &Path, text: &str, labels: &[&str], split: Split) -> Result<Vec<PairExample>> {
    let mut out = Vec::new();
    for (line, rec) in csv_tsv_records(path, text)? {
        let (a, b, label) = match (rec.as_slice(), split) {
            ([a, b, l], _) => (a, b, Some(l.trim())),
            ([a, b], Split::Test) => (a, b, None),
            (_, Split::Test) => {
                return Err(at_line(
                    path,
                    line,
                    format!(
                        "expected 2 or 3 tab-separated columns (sentence1, sentence2[, label]), found {}",
                        rec.len()
                    ),
                ))
            }
            _ => {
                return Err(at_line(
                    path,
                    line,
                    format!("expected 3 tab-separated columns (sentence1, sentence2, label), found {}", rec.len()),
                ))
            }
        };
        let label = resolve_label(labels, label, split != Split::Test).map_err(|m| at_line(path, line, m))?;
        out.push(PairExample { id: format!("{split}-{}", out.len()), a: a.clone(), b: b.clone(), label });
    }
    if out.is_empty() {
        return Err(empty_split(path, "sentence pair"));
    }
    Ok(out)
}
