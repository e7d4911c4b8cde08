//! Multiple-choice readers (jiant layout): HellaSwag and CommonsenseQA JSON lines (HF datasets
//! or original format), Cosmos QA JSON lines (HF) or CSV (original release).

use super::read::{
    at_line, describe, empty_split, json_label, json_rows, line_at, resolve_label, str_field, str_list, Row,
};
use super::Split;
use crate::error::Result;
use serde_json::Value;
use std::path::Path;

/// One prompt with its candidate continuations and the id of the correct one (into the task's
/// choice keys); `None` for unlabelled test rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChoiceExample {
    /// `<split>-<n>`, n counting examples from 0.
    pub id: String,
    /// Shared first segment.
    pub prompt: String,
    /// One second segment per choice, in choice-key order.
    pub choices: Vec<String>,
    /// Index of the correct choice.
    pub label: Option<usize>,
}

fn finish(path: &Path, out: Vec<ChoiceExample>) -> Result<Vec<ChoiceExample>> {
    if out.is_empty() {
        return Err(empty_split(path, "multiple-choice question"));
    }
    Ok(out)
}

fn row_label(row: &Row, key: &str, keys: &[&str], split: Split) -> Result<Option<usize>> {
    let label = json_label(row.obj.get(key)).map_err(|m| row.err(m))?;
    resolve_label(keys, label.as_deref(), split != Split::Test).map_err(|m| row.err(m))
}

/// HellaSwag (HF `hellaswag` via jiant): prompt = `ctx_a`; choice i = `ctx_b + " " + endings[i]`;
/// `label` "0".."3" (or an integer); four endings required.
pub fn read_hellaswag(path: &Path, text: &str, keys: &[&str], split: Split) -> Result<Vec<ChoiceExample>> {
    let mut out = Vec::new();
    for row in json_rows(path, text)? {
        let ctx_a = row.str("ctx_a")?;
        let ctx_b = row.str("ctx_b")?;
        let endings = row.str_list("endings")?;
        if endings.len() != keys.len() {
            return Err(row.err(format!("expected {} endings, found {}", keys.len(), endings.len())));
        }
        let label = row_label(&row, "label", keys, split)?;
        let choices = endings.iter().map(|e| format!("{ctx_b} {e}")).collect();
        out.push(ChoiceExample { id: format!("{split}-{}", out.len()), prompt: ctx_a.to_string(), choices, label });
    }
    finish(path, out)
}

/// Cosmos QA: prompt = `context + " " + question`; choices `answer0`..`answer3`; `label` 0..3.
/// A `.csv` file is the original release (header `id,context,question,answer0,...,answer3[,label]`,
/// `test_no_label.csv` has no label column); anything else is read as HF JSON lines.
pub fn read_cosmosqa(path: &Path, text: &str, keys: &[&str], split: Split) -> Result<Vec<ChoiceExample>> {
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut out = Vec::new();
    if !is_csv {
        for row in json_rows(path, text)? {
            let prompt = format!("{} {}", row.str("context")?, row.str("question")?);
            let choices =
                (0..keys.len()).map(|i| row.str(&format!("answer{i}")).map(str::to_string)).collect::<Result<_>>()?;
            let label = row_label(&row, "label", keys, split)?;
            out.push(ChoiceExample { id: format!("{split}-{}", out.len()), prompt, choices, label });
        }
        return finish(path, out);
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| at_line(path, 1, format!("expected a CSV header, found malformed text ({e})")))?
        .clone();
    let col = |name: &str| header.iter().position(|h| h == name);
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            at_line(
                path,
                1,
                format!("expected a CSV header column `{name}`, found {:?}", header.iter().collect::<Vec<_>>()),
            )
        })
    };
    let context = need("context")?;
    let question = need("question")?;
    let answers = (0..keys.len()).map(|i| need(&format!("answer{i}"))).collect::<Result<Vec<_>>>()?;
    let label_col = col("label");
    for rec in reader.records() {
        let rec = rec.map_err(|e| {
            at_line(
                path,
                e.position().map_or(0, |p| line_at(text, p.byte())),
                format!("expected a CSV record, found malformed text ({e})"),
            )
        })?;
        let line = rec.position().map_or(0, |p| line_at(text, p.byte()));
        if rec.len() != header.len() {
            return Err(at_line(
                path,
                line,
                format!("expected {} comma-separated columns, found {}", header.len(), rec.len()),
            ));
        }
        let get = |i: usize| rec.get(i).unwrap_or_default().to_string();
        let prompt = format!("{} {}", get(context), get(question));
        let choices = answers.iter().map(|&i| get(i)).collect();
        let raw = label_col.map(get).filter(|l| !l.is_empty() && l != "-1");
        let label = resolve_label(keys, raw.as_deref(), split != Split::Test).map_err(|m| at_line(path, line, m))?;
        out.push(ChoiceExample { id: format!("{split}-{}", out.len()), prompt, choices, label });
    }
    finish(path, out)
}

/// CommonsenseQA, five choices A–E keyed by label, `answerKey` the correct key. HF format:
/// `question` a string and `choices: {label: [...], text: [...]}`; original format: `question:
/// {stem, choices: [{label, text}]}`. Choices are put in key order; every key must appear once.
pub fn read_commonsenseqa(path: &Path, text: &str, keys: &[&str], split: Split) -> Result<Vec<ChoiceExample>> {
    let mut out = Vec::new();
    for row in json_rows(path, text)? {
        let (prompt, pairs): (String, Vec<(String, String)>) = match row.value("question")? {
            Value::String(q) => {
                let choices = match row.value("choices")? {
                    Value::Object(c) => c,
                    other => {
                        return Err(row.err(format!("expected `choices` to be an object, found {}", describe(other))))
                    }
                };
                let labels = choices.get("label").map(str_list);
                let texts = choices.get("text").map(str_list);
                let (Some(Ok(labels)), Some(Ok(texts))) = (labels, texts) else {
                    return Err(row.err("expected `choices.label` and `choices.text` to be lists of strings"));
                };
                if labels.len() != texts.len() {
                    return Err(row.err(format!(
                        "expected as many choice labels as texts, found {} and {}",
                        labels.len(),
                        texts.len()
                    )));
                }
                (q.clone(), labels.into_iter().zip(texts).collect())
            }
            Value::Object(q) => {
                let stem = str_field(q, "stem").map_err(|m| row.err(format!("question: {m}")))?;
                let Some(Value::Array(items)) = q.get("choices") else {
                    return Err(row.err("expected `question.choices` to be a list of {label, text}"));
                };
                let pairs = items
                    .iter()
                    .map(|c| match c {
                        Value::Object(c) => Ok((str_field(c, "label")?.to_string(), str_field(c, "text")?.to_string())),
                        other => Err(format!("expected a choice object, found {}", describe(other))),
                    })
                    .collect::<std::result::Result<Vec<_>, String>>()
                    .map_err(|m| row.err(format!("question.choices: {m}")))?;
                (stem.to_string(), pairs)
            }
            other => {
                return Err(
                    row.err(format!("expected `question` to be a string or an object, found {}", describe(other)))
                )
            }
        };
        let mut choices = Vec::with_capacity(keys.len());
        for key in keys {
            let mut found = pairs.iter().filter(|(l, _)| l == key);
            match (found.next(), found.next()) {
                (Some((_, t)), None) => choices.push(t.clone()),
                _ => {
                    return Err(row.err(format!(
                        "expected exactly one choice labelled {key}, found labels {:?}",
                        pairs.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>()
                    )))
                }
            }
        }
        if pairs.len() != keys.len() {
            return Err(row.err(format!("expected {} choices, found {}", keys.len(), pairs.len())));
        }
        let label = row_label(&row, "answerKey", keys, split)?;
        out.push(ChoiceExample { id: format!("{split}-{}", out.len()), prompt, choices, label });
    }
    finish(path, out)
}
