//! SQuAD-format readers for extractive QA: SQuAD v1.1/v2.0, XQuAD, MLQA and TyDiQA-GoldP, in
//! both layouts (the files are the same JSON; only their names differ). Every gold answer must
//! lie inside its context at its character offset.

use super::read::{empty_split, quote};
use super::Split;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// One gold answer: its text and the character (Unicode scalar, as Python indexes `str`)
/// offset where it starts in the context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Answer text, `context[start_char..start_char + text.chars().count()]`.
    pub text: String,
    /// Character offset in the context.
    pub start_char: usize,
}

/// One question over one context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanExample {
    /// The question id from the file (predictions are keyed by it).
    pub id: String,
    /// Article title (empty when the file has none).
    pub title: String,
    /// Question text.
    pub question: String,
    /// Context paragraph.
    pub context: String,
    /// Gold answers; `Some(vec![])` for a SQuAD v2.0 unanswerable question, `None` when the file
    /// carries no gold answer (XTREME's test files, whose answers are replaced by one
    /// `{"answer_start": 0, "text": ""}` placeholder).
    pub answers: Option<Vec<Answer>>,
    /// SQuAD v2.0 `is_impossible`.
    pub is_impossible: bool,
}

#[derive(Deserialize)]
struct SquadFile {
    data: Vec<SquadArticle>,
}

#[derive(Deserialize)]
struct SquadArticle {
    #[serde(default)]
    title: String,
    paragraphs: Vec<SquadParagraph>,
}

#[derive(Deserialize)]
struct SquadParagraph {
    context: String,
    qas: Vec<SquadQa>,
}

#[derive(Deserialize)]
struct SquadQa {
    id: String,
    question: String,
    #[serde(default)]
    answers: Vec<SquadAnswer>,
    #[serde(default)]
    is_impossible: bool,
}

#[derive(Deserialize)]
struct SquadAnswer {
    text: String,
    answer_start: i64,
}

/// TyDiQA-GoldP language names used as id prefixes in the official train file
/// (`english--3215621880858840488-2`), with their ISO codes.
pub const TYDIQA_LANGUAGE_NAMES: &[(&str, &str)] = &[
    ("arabic", "ar"),
    ("bengali", "bn"),
    ("english", "en"),
    ("finnish", "fi"),
    ("indonesian", "id"),
    ("korean", "ko"),
    ("russian", "ru"),
    ("swahili", "sw"),
    ("telugu", "te"),
];

/// The ISO language of a TyDiQA question id with a language-name prefix, `None` for ids
/// without one (XTREME's per-language files strip the prefix).
pub fn tydiqa_id_language(id: &str) -> Option<&'static str> {
    let prefix = id.split('-').next()?;
    TYDIQA_LANGUAGE_NAMES.iter().find(|(name, _)| *name == prefix).map(|(_, iso)| *iso)
}

/// Options of [`read_squad`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SquadOptions<'a> {
    /// SQuAD v2.0: honour `is_impossible`.
    pub version_2: bool,
    /// Keep only questions whose TyDiQA id prefix names this language (ids without a language
    /// prefix are kept). jiant's downloader writes the full nine-language train file as
    /// `tydiqa_<lang>/tydiqa.<lang>.train.json`; this restores the English-only training set.
    pub tydiqa_language: Option<&'a str>,
}

/// Byte offset of character `start` in `s` (`s.len()` when `start` is the character count).
fn char_to_byte(s: &str, start: usize) -> Option<usize> {
    s.char_indices().map(|(b, _)| b).chain(std::iter::once(s.len())).nth(start)
}

/// Reads a SQuAD-format JSON file. An answer whose text is not found at its offset in the
/// context is an error naming the question id; so is an answerable training question without
/// an answer. A file with no questions is an error.
pub fn read_squad(path: &Path, text: &str, split: Split, opts: SquadOptions) -> Result<Vec<SpanExample>> {
    let file: SquadFile = serde_json::from_str(text).map_err(|e| {
        Error::format(
            path,
            format!("line {}: expected SQuAD-format JSON {{\"data\": [{{\"paragraphs\": [{{\"context\", \"qas\"}}]}}]}}: {e}", e.line()),
        )
    })?;
    let mut out = Vec::new();
    for article in file.data {
        for para in article.paragraphs {
            for qa in para.qas {
                if let Some(lang) = opts.tydiqa_language {
                    if tydiqa_id_language(&qa.id).is_some_and(|l| l != lang) {
                        continue;
                    }
                }
                let is_impossible = opts.version_2 && qa.is_impossible;
                let answers =
                    if is_impossible { Some(Vec::new()) } else { gold_answers(path, &qa, &para.context, split)? };
                out.push(SpanExample {
                    id: qa.id,
                    title: article.title.clone(),
                    question: qa.question,
                    context: para.context.clone(),
                    answers,
                    is_impossible,
                });
            }
        }
    }
    if out.is_empty() {
        return Err(empty_split(path, "question"));
    }
    Ok(out)
}

fn gold_answers(path: &Path, qa: &SquadQa, context: &str, split: Split) -> Result<Option<Vec<Answer>>> {
    let err = |msg: String| Error::format(path, format!("question {}: {msg}", quote(&qa.id)));
    // XTREME's placeholder for stripped test answers: one empty answer at offset 0.
    if qa.answers.iter().all(|a| a.text.is_empty() && a.answer_start == 0) {
        if split == Split::Train {
            return Err(err("expected at least one answer in a training file, found none".to_string()));
        }
        return Ok(None);
    }
    let mut answers = Vec::with_capacity(qa.answers.len());
    for a in &qa.answers {
        let start = usize::try_from(a.answer_start)
            .map_err(|_| err(format!("answer {} has a negative start {}", quote(&a.text), a.answer_start)))?;
        if a.text.is_empty() {
            return Err(err(format!("expected a non-empty answer text, found \"\" at character {start}")));
        }
        let found = match char_to_byte(context, start) {
            Some(b) if context[b..].starts_with(&a.text) => None,
            Some(b) => Some(format!("the context there reads {}", quote(&context[b..]))),
            None => Some(format!("the context has only {} characters", context.chars().count())),
        };
        if let Some(found) = found {
            return Err(err(format!(
                "answer {} at character {start} lies outside its context: {found}",
                quote(&a.text)
            )));
        }
        answers.push(Answer { text: a.text.clone(), start_char: start });
    }
    Ok(Some(answers))
}
