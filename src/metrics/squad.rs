//! SQuAD v1.1 exact match and F1 (SQuAD, XQuAD, TyDiQA-GoldP), and the question-level
//! evaluation loop shared with MLQA.
//!
//! Official v1.1 definition: `normalize_answer` = lowercase → drop `string.punctuation`
//! (ASCII only: `«»、。` and every other non-ASCII punctuation stay) → replace the whole words
//! `a|an|the` by a space → collapse whitespace. EM compares normalised strings; F1 is the
//! bag-of-tokens overlap of the whitespace-split normalised strings, 0 when nothing overlaps.
//! Each question scores the max over its gold answers; a question without a prediction scores
//! 0 and still counts in the denominator. XQuAD and TyDiQA use this English normalisation for
//! every language.

use super::mlqa::{self, MlqaLang};
use super::text::{is_ascii_punct, py_split, replace_whole_words};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};

/// SQuAD v1.1 `normalize_answer`.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punc: String = lower.chars().filter(|c| !is_ascii_punct(*c)).collect();
    let no_articles = replace_whole_words(&no_punc, &["a", "an", "the"]);
    py_split(&no_articles).join(" ")
}

/// Token-overlap F1 of two token lists (`collections.Counter` intersection), 0 when no token
/// is shared — so an empty prediction scores 0 even against an answer that normalises to "".
pub fn token_f1(pred: &[&str], gold: &[&str]) -> f64 {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in gold {
        *counts.entry(t).or_insert(0) += 1;
    }
    let mut same = 0usize;
    for t in pred {
        if let Some(c) = counts.get_mut(t) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let p = same as f64 / pred.len() as f64;
    let r = same as f64 / gold.len() as f64;
    2.0 * p * r / (p + r)
}

/// SQuAD v1.1 exact match: the normalised strings are equal.
pub fn exact_match(pred: &str, gold: &str) -> bool {
    normalize_answer(pred) == normalize_answer(gold)
}

/// SQuAD v1.1 F1 of one prediction against one gold answer, in [0, 1].
pub fn f1_score(pred: &str, gold: &str) -> f64 {
    let p = normalize_answer(pred);
    let g = normalize_answer(gold);
    token_f1(&py_split(&p), &py_split(&g))
}

/// Which answer normalisation a QA task uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerNorm {
    /// SQuAD v1.1 (SQuAD, XQuAD, TyDiQA): English rules for every language.
    Squad,
    /// MLQA with the rules of one language.
    Mlqa(MlqaLang),
}

impl AnswerNorm {
    /// Normalised answer.
    pub fn normalize(self, s: &str) -> String {
        match self {
            AnswerNorm::Squad => normalize_answer(s),
            AnswerNorm::Mlqa(lang) => mlqa::normalize_answer(s, lang),
        }
    }

    /// (exact match, F1) of `pred` against one gold answer.
    pub fn em_f1(self, pred: &str, gold: &str) -> (bool, f64) {
        let p = self.normalize(pred);
        let g = self.normalize(gold);
        (p == g, token_f1(&py_split(&p), &py_split(&g)))
    }

    /// (max exact match, max F1) over the gold answers, taken separately as the official
    /// `metric_max_over_ground_truths` does. `golds` must not be empty.
    pub fn max_over_golds(self, pred: &str, golds: &[String]) -> (bool, f64) {
        golds.iter().fold((false, 0.0f64), |(em, f1), g| {
            let (e, f) = self.em_f1(pred, g);
            (em || e, f1.max(f))
        })
    }
}

/// One gold question: its id and the texts of its gold answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QaExample {
    /// Question id, the key of the prediction file.
    pub id: String,
    /// Gold answer texts (at least one).
    pub answers: Vec<String>,
}

/// Result of [`evaluate`]; rates are fractions in [0, 1] of all gold questions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QaScores {
    /// Mean exact match.
    pub exact_match: f64,
    /// Mean F1.
    pub f1: f64,
    /// Gold questions (the denominator).
    pub total: usize,
    /// Gold questions without a prediction (scored 0, as the official scripts do).
    pub missing: usize,
    /// Predicted ids that are not gold questions (ignored, as the official scripts do).
    pub extra: usize,
}

/// The official `evaluate(dataset, predictions)` loop: mean over gold questions of the max EM
/// and max F1 over gold answers; unanswered questions score 0. Errors if a question has no
/// gold answer (the official script raises there too) or an id occurs twice.
pub fn evaluate(examples: &[QaExample], predictions: &HashMap<String, String>, norm: AnswerNorm) -> Result<QaScores> {
    let mut seen = HashSet::with_capacity(examples.len());
    let (mut em, mut f1, mut missing) = (0.0f64, 0.0f64, 0usize);
    for ex in examples {
        if !seen.insert(ex.id.as_str()) {
            return Err(Error::Data(format!("question id {:?} occurs more than once in the gold data", ex.id)));
        }
        if ex.answers.is_empty() {
            return Err(Error::Data(format!("question {:?} has no gold answer", ex.id)));
        }
        match predictions.get(&ex.id) {
            None => missing += 1,
            Some(pred) => {
                let (e, f) = norm.max_over_golds(pred, &ex.answers);
                em += f64::from(u8::from(e));
                f1 += f;
            }
        }
    }
    let extra = predictions.keys().filter(|k| !seen.contains(k.as_str())).count();
    let total = examples.len();
    let mean = |s: f64| if total > 0 { s / total as f64 } else { 0.0 };
    Ok(QaScores { exact_match: mean(em), f1: mean(f1), total, missing, extra })
}
