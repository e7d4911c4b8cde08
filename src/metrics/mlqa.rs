//! MLQA v1 answer normalisation (official `evaluate_mlqa.py`, also XTREME's copy and jiant's
//! `mlqa.py`): language-specific punctuation, articles and tokenisation.
//!
//! `normalize_answer(s, lang)` = lowercase → drop every character of Unicode category `P*`
//! and of `string.punctuation` → replace articles by a space → re-tokenise and join with
//! single spaces. Articles (whole words, Python Unicode `\b`): en `a an the`; es
//! `un una unos unas el la los las`; de `ein eine einen einem eines einer der die das den dem
//! des`; vi `của là cái chiếc những`; hi and zh none. Arabic uses `re.sub('\sال^|ال', ' ', …)`:
//! the first alternative can never match (`^` after text), so every `ال`, anywhere in a word,
//! becomes a space. Tokenisation is whitespace splitting except for zh, where each character
//! in U+4E00–U+9FA5 (and each punctuation character) is its own token. EM and F1 are then
//! SQuAD's, on these tokens (see [`super::squad`]).

use super::squad::token_f1;
use super::text::{is_unicode_punct, py_split, replace_whole_words};
use crate::error::{Error, Result};

/// The seven MLQA languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MlqaLang {
    /// English.
    En,
    /// Spanish.
    Es,
    /// German.
    De,
    /// Vietnamese.
    Vi,
    /// Arabic.
    Ar,
    /// Hindi.
    Hi,
    /// Chinese.
    Zh,
}

impl MlqaLang {
    /// Every language, in the order of MLQA's language list.
    pub const ALL: [MlqaLang; 7] =
        [MlqaLang::Ar, MlqaLang::De, MlqaLang::En, MlqaLang::Es, MlqaLang::Hi, MlqaLang::Vi, MlqaLang::Zh];

    /// From a two-letter code (`en`, `es`, `de`, `vi`, `ar`, `hi`, `zh`); other codes are an
    /// error, as in the official script.
    pub fn parse(code: &str) -> Result<Self> {
        Ok(match code {
            "en" => MlqaLang::En,
            "es" => MlqaLang::Es,
            "de" => MlqaLang::De,
            "vi" => MlqaLang::Vi,
            "ar" => MlqaLang::Ar,
            "hi" => MlqaLang::Hi,
            "zh" => MlqaLang::Zh,
            _ => {
                return Err(Error::Unknown(format!(
                    "unknown MLQA language {code:?} (expected one of ar, de, en, es, hi, vi, zh)"
                )))
            }
        })
    }

    /// The two-letter code.
    pub fn code(self) -> &'static str {
        match self {
            MlqaLang::En => "en",
            MlqaLang::Es => "es",
            MlqaLang::De => "de",
            MlqaLang::Vi => "vi",
            MlqaLang::Ar => "ar",
            MlqaLang::Hi => "hi",
            MlqaLang::Zh => "zh",
        }
    }

    /// The whole-word articles removed for this language.
    pub fn articles(self) -> &'static [&'static str] {
        match self {
            MlqaLang::En => &["a", "an", "the"],
            MlqaLang::Es => &["un", "una", "unos", "unas", "el", "la", "los", "las"],
            MlqaLang::De => {
                &["ein", "eine", "einen", "einem", "eines", "einer", "der", "die", "das", "den", "dem", "des"]
            }
            MlqaLang::Vi => &["của", "là", "cái", "chiếc", "những"],
            MlqaLang::Ar | MlqaLang::Hi | MlqaLang::Zh => &[],
        }
    }
}

/// Is `c` one of the CJK ideographs MLQA segments one by one (`[\u4e00-\u9fa5]`)?
fn is_mlqa_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fa5}').contains(&c)
}

/// MLQA `mixed_segmentation`: CJK ideographs and punctuation characters are single tokens;
/// the text between them is whitespace-split.
pub fn mixed_segmentation(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in text.chars() {
        if is_mlqa_cjk(c) || is_unicode_punct(c) {
            out.extend(py_split(&run).into_iter().map(str::to_string));
            run.clear();
            out.push(c.to_string());
        } else {
            run.push(c);
        }
    }
    out.extend(py_split(&run).into_iter().map(str::to_string));
    out
}

/// MLQA `normalize_answer(s, lang)`.
pub fn normalize_answer(s: &str, lang: MlqaLang) -> String {
    let lower = s.to_lowercase();
    let no_punc: String = lower.chars().filter(|c| !is_unicode_punct(*c)).collect();
    let no_articles = match lang {
        MlqaLang::Ar => no_punc.replace("ال", " "),
        _ => replace_whole_words(&no_punc, lang.articles()),
    };
    match lang {
        MlqaLang::Zh => mixed_segmentation(&no_articles).join(" "),
        _ => py_split(&no_articles).join(" "),
    }
}

/// MLQA exact match.
pub fn exact_match(pred: &str, gold: &str, lang: MlqaLang) -> bool {
    normalize_answer(pred, lang) == normalize_answer(gold, lang)
}

/// MLQA F1 of one prediction against one gold answer, in [0, 1].
pub fn f1_score(pred: &str, gold: &str, lang: MlqaLang) -> f64 {
    let p = normalize_answer(pred, lang);
    let g = normalize_answer(gold, lang);
    token_f1(&py_split(&p), &py_split(&g))
}
