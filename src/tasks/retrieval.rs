//! Bitext retrieval readers: BUCC 2018 (`<l>-en.{dev,test}.{<l>,en}` lines `id\tsentence`, gold
//! `<l>-id\ten-id`) and Tatoeba (aligned sentence files, English side sorted, jiant's
//! `<l>-en.labels` giving each English line's original index).

use super::read::{at_line, numbered_lines, quote, read_text};
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::Path;

/// One sentence of a retrieval set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sentence {
    /// BUCC: the file's id (`de-000000001`); Tatoeba: the line index from 0.
    pub id: String,
    /// Sentence text (BUCC: trimmed; Tatoeba: the line as is).
    pub text: String,
}

/// The gold alignment of a retrieval set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gold {
    /// BUCC: (non-English id, English id) pairs, in file order.
    Pairs(Vec<(String, String)>),
    /// Tatoeba: for each English sentence j, the index of its translation in `other`.
    Indices(Vec<usize>),
}

/// The two sides of a retrieval task for one language, and the gold alignment when the files
/// carry it (BUCC dev, jiant's Tatoeba labels; XTREME hides BUCC test gold and Tatoeba's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrievalSet {
    /// Non-English sentences.
    pub other: Vec<Sentence>,
    /// English sentences.
    pub english: Vec<Sentence>,
    /// Gold alignment.
    pub gold: Option<Gold>,
}

fn read_bucc_sentences(path: &Path, what: &str) -> Result<Vec<Sentence>> {
    let text = read_text(path, what)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (line, l) in numbered_lines(&text) {
        if l.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = l.split('\t').collect();
        let [id, sentence] = fields.as_slice() else {
            return Err(at_line(
                path,
                line,
                format!("expected 2 tab-separated columns (id, sentence), found {}", fields.len()),
            ));
        };
        let id = id.trim();
        if !seen.insert(id.to_string()) {
            return Err(at_line(path, line, format!("expected unique sentence ids, found {} again", quote(id))));
        }
        out.push(Sentence { id: id.to_string(), text: sentence.trim().to_string() });
    }
    if out.is_empty() {
        return Err(super::read::empty_split(path, "sentence"));
    }
    Ok(out)
}

/// Reads one BUCC 2018 split: the non-English and English sentence files and, for dev, the
/// gold file, whose ids must all occur in the sentence files.
pub fn read_bucc(other: &Path, english: &Path, gold: Option<&Path>) -> Result<RetrievalSet> {
    let other_s = read_bucc_sentences(other, "BUCC non-English sentence file")?;
    let english_s = read_bucc_sentences(english, "BUCC English sentence file")?;
    let gold = match gold {
        None => None,
        Some(path) => {
            let text = read_text(path, "BUCC gold file")?;
            let other_ids: HashSet<&str> = other_s.iter().map(|s| s.id.as_str()).collect();
            let en_ids: HashSet<&str> = english_s.iter().map(|s| s.id.as_str()).collect();
            let mut pairs = Vec::new();
            for (line, l) in numbered_lines(&text) {
                if l.trim().is_empty() {
                    continue;
                }
                let fields: Vec<&str> = l.trim().split('\t').collect();
                let [o, e] = fields.as_slice() else {
                    return Err(at_line(
                        path,
                        line,
                        format!("expected 2 tab-separated ids (non-English, English), found {} columns", fields.len()),
                    ));
                };
                if !other_ids.contains(o) {
                    return Err(at_line(path, line, format!("id {} is not in {}", quote(o), other.display())));
                }
                if !en_ids.contains(e) {
                    return Err(at_line(path, line, format!("id {} is not in {}", quote(e), english.display())));
                }
                pairs.push((o.to_string(), e.to_string()));
            }
            if pairs.is_empty() {
                return Err(super::read::empty_split(path, "gold pair"));
            }
            Some(Gold::Pairs(pairs))
        }
    };
    Ok(RetrievalSet { other: other_s, english: english_s, gold })
}

fn read_lines_as_sentences(path: &Path, what: &str) -> Result<Vec<Sentence>> {
    let text = read_text(path, what)?;
    let out: Vec<Sentence> =
        text.lines().enumerate().map(|(i, l)| Sentence { id: i.to_string(), text: l.to_string() }).collect();
    if out.is_empty() {
        return Err(super::read::empty_split(path, "sentence"));
    }
    Ok(out)
}

/// Reads a Tatoeba language pair: `other` and `english` line-aligned by count (English sorted
/// by XTREME's preprocessing), and jiant's labels file: one integer per English line, the index
/// of its translation in `other`.
pub fn read_tatoeba(other: &Path, english: &Path, labels: Option<&Path>) -> Result<RetrievalSet> {
    let other_s = read_lines_as_sentences(other, "Tatoeba non-English sentence file")?;
    let english_s = read_lines_as_sentences(english, "Tatoeba English sentence file")?;
    if other_s.len() != english_s.len() {
        return Err(Error::format(
            english,
            format!("expected as many lines as {} ({}), found {}", other.display(), other_s.len(), english_s.len()),
        ));
    }
    let gold = match labels {
        None => None,
        Some(path) => {
            let text = read_text(path, "Tatoeba labels file")?;
            let mut idx = Vec::with_capacity(english_s.len());
            for (line, l) in numbered_lines(&text) {
                let n = l.trim().parse::<usize>().ok().filter(|&n| n < other_s.len()).ok_or_else(|| {
                    at_line(
                        path,
                        line,
                        format!("expected a sentence index in 0..{}, found {}", other_s.len(), quote(l)),
                    )
                })?;
                idx.push(n);
            }
            if idx.len() != english_s.len() {
                return Err(Error::format(
                    path,
                    format!("expected one label per English sentence ({}), found {}", english_s.len(), idx.len()),
                ));
            }
            Some(Gold::Indices(idx))
        }
    };
    Ok(RetrievalSet { other: other_s, english: english_s, gold })
}
