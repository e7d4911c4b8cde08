//! The aligner's input for a reordering run: one `src ||| tgt` line per English sentence, in
//! exactly the order [`super::reorder_file`] reads the alignment lines back (a line per tagging
//! sentence; two per pair example, the first text then the second), with the English side
//! split exactly as the reorder step splits it, so that every link index names the same word.

use super::files::{read_pairs, read_tagging, PairFile, PairFormat};
use super::Layout;
use crate::align::pharaoh;
use crate::error::{Error, Result};
use crate::metrics::text::{is_py_space, is_unicode_punct, py_split};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// What [`aligner_input`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlignerInputReport {
    /// English examples: tagging sentences or pair rows.
    pub examples: usize,
    /// Lines written: one per tagging sentence, two per pair example.
    pub lines: usize,
    /// Lines written empty because one side had no words (an empty field or translation, or a
    /// PAWS-X row without a translation): the aligner gives them no links, so the sentence
    /// stays as it is.
    pub empty_lines: usize,
    /// PAWS-X English rows whose id has no row in the translations (both of their lines are
    /// empty).
    pub missing_translations: usize,
    /// PAWS-X translation rows whose id is not in the English file (not used).
    pub unused_translations: usize,
    /// Words written differently in the aligner input only, so that the aligner sees exactly one
    /// word where the reorder step sees one: an empty tagging word or one with whitespace inside
    /// (written with `_` for the whitespace, or as `_`), and the word `|||` (written `|`).
    pub replaced_words: usize,
}

impl std::fmt::Display for AlignerInputReport {
    /// One line: `1000 examples → 2000 lines (3 empty); 1 English row without a translation, 0
    /// translations unused; 0 words replaced`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} examples → {} lines ({} empty); {} English row{} without a translation, {} translation{} unused; \
             {} word{} replaced",
            self.examples,
            self.lines,
            self.empty_lines,
            self.missing_translations,
            if self.missing_translations == 1 { "" } else { "s" },
            self.unused_translations,
            if self.unused_translations == 1 { "" } else { "s" },
            self.replaced_words,
            if self.replaced_words == 1 { "" } else { "s" },
        )
    }
}

/// The English words of a pair-task text: the text split on whitespace (Python's
/// `str.split()`, as awesome-align splits its input). The reorder step and the aligner input
/// both use this, so link indices refer to the same words.
pub fn english_words(text: &str) -> Vec<&str> {
    py_split(text)
}

/// Whether `c` is a CJK ideograph: the ranges BERT's BasicTokenizer (`_is_chinese_char`) puts
/// in words of their own.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// The target words of a raw (untokenized) translation of a pair task: split on whitespace,
/// then every punctuation character (Unicode `P*`, and the ASCII punctuation and symbols) and
/// every CJK ideograph becomes a word of its own, as mBERT's BasicTokenizer splits text
/// (without lowercasing or accent stripping): `l'homme, dit-il.` → `l ' homme , dit - il .`,
/// `我爱纽约。` → `我 爱 纽 约 。`. Only the relative target positions matter for reordering, so
/// a per-character split of Chinese is an acceptable word segmentation.
pub fn target_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in py_split(text) {
        let mut word = String::new();
        for c in chunk.chars() {
            if is_unicode_punct(c) || is_cjk(c) {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                out.push(c.to_string());
            } else {
                word.push(c);
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out
}

/// `word` as the aligner must see it to count it as one word (see
/// [`AlignerInputReport::replaced_words`]).
fn aligner_word(word: &str, replaced: &mut usize) -> String {
    if word.is_empty() {
        *replaced += 1;
        return "_".to_string();
    }
    if word == "|||" {
        *replaced += 1;
        return "|".to_string();
    }
    if word.chars().any(is_py_space) {
        *replaced += 1;
        return py_split(word).join("_");
    }
    word.to_string()
}

/// One aligner line: `src ||| tgt`, or an empty line when either side has no words (awesome-
/// align also answers such a line with an empty line).
fn pair_line<S: AsRef<str>, T: AsRef<str>>(src: &[S], tgt: &[T], report: &mut AlignerInputReport) -> String {
    report.lines += 1;
    if src.is_empty() || tgt.is_empty() {
        report.empty_lines += 1;
        return String::new();
    }
    let src: Vec<String> = src.iter().map(|w| aligner_word(w.as_ref(), &mut report.replaced_words)).collect();
    let tgt: Vec<String> = tgt.iter().map(|w| aligner_word(w.as_ref(), &mut report.replaced_words)).collect();
    format!("{} ||| {}", src.join(" "), tgt.join(" "))
}

fn count_mismatch(english: &Path, n: usize, what: &str, translations: &Path, t: usize, unit: &str) -> Error {
    Error::Data(format!(
        "{} has {n} {what}, but {} has {t} {unit}{}: expected one translation per English {}, in the same order",
        english.display(),
        translations.display(),
        if t == 1 { "" } else { "s" },
        if what == "rows" { "row" } else { "sentence" }
    ))
}

/// Writes the aligner's input for `layout` to `output` (atomically; nothing is written when an
/// input is wrong) from the English train file and a file of translations:
///
/// - UDPOS / PAN-X: `english` is the `word\ttag` file; `translations` has one target sentence
///   per line, already word-tokenized (split on whitespace only), line k for sentence k. Line k
///   of the output is sentence k's words `|||` its translation's words.
/// - XNLI: `english` and `translations` are pair files in any of XNLI's formats (XNLI-MT
///   `multinli.train.en.tsv` and `multinli.train.{lang}.tsv`, whose rows line up by position;
///   or XTREME's `xnli/train-en.tsv`); row k of both gives lines 2k (premise) and 2k+1
///   (hypothesis), zero-indexed.
/// - PAWS-X: `english` is the raw `en/train.tsv` and `translations` the raw
///   `{lang}/translated_train.tsv`, rows matched **by id**: row k of the English file gives
///   lines 2k (sentence1) and 2k+1 (sentence2); a row whose id has no translation gets two
///   empty lines (its example stays as it is). The alignments then also fit XTREME's
///   `pawsx/train-en.tsv`, which has the same rows in the same order but no ids (so it cannot
///   be the `english` file here).
///
/// English words of pair tasks are the whitespace-split text ([`english_words`]); target words
/// of pair tasks are split further at punctuation ([`target_words`]). A line is empty when
/// either side has no words. Row or line counts that differ are an error naming both files and
/// both counts.
pub fn aligner_input(layout: Layout, english: &Path, translations: &Path, output: &Path) -> Result<AlignerInputReport> {
    super::refuse_overwrite(output, &[english, translations])?;
    let mut report = AlignerInputReport::default();
    let lines = match layout {
        Layout::Udpos | Layout::Panx => tagging_lines(layout, english, translations, &mut report)?,
        Layout::Xnli => xnli_lines(english, translations, &mut report)?,
        Layout::Pawsx => pawsx_lines(english, translations, &mut report)?,
    };
    crate::fsutil::atomic_write_with(output, |w| {
        for l in &lines {
            w.write_all(l.as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    Ok(report)
}

fn tagging_lines(
    layout: Layout,
    english: &Path,
    translations: &Path,
    report: &mut AlignerInputReport,
) -> Result<Vec<String>> {
    let file = read_tagging(english, layout)?;
    let text = crate::fsutil::read_text(
        translations,
        Some("translations (one word-tokenized target sentence per line, line k for English sentence k)"),
    )?;
    let targets: Vec<&str> = pharaoh::lines(&text).collect();
    if targets.len() != file.sentences.len() {
        return Err(count_mismatch(english, file.sentences.len(), "sentences", translations, targets.len(), "line"));
    }
    report.examples = file.sentences.len();
    Ok(file.sentences.iter().zip(&targets).map(|(s, t)| pair_line(&s.words, &py_split(t), report)).collect())
}

fn xnli_lines(english: &Path, translations: &Path, report: &mut AlignerInputReport) -> Result<Vec<String>> {
    let en = read_pairs(english, Layout::Xnli, "English XNLI train file (multinli.train.en.tsv or train-en.tsv)")?;
    let tr = read_pairs(translations, Layout::Xnli, "translated XNLI train file (multinli.train.{lang}.tsv)")?;
    if en.rows.len() != tr.rows.len() {
        return Err(count_mismatch(english, en.rows.len(), "rows", translations, tr.rows.len(), "row"));
    }
    report.examples = en.rows.len();
    let mut lines = Vec::with_capacity(2 * en.rows.len());
    for (e, t) in en.rows.iter().zip(&tr.rows) {
        let (ea, eb) = en.texts(e);
        let (ta, tb) = tr.texts(t);
        lines.push(pair_line(&english_words(ea), &target_words(ta), report));
        lines.push(pair_line(&english_words(eb), &target_words(tb), report));
    }
    Ok(lines)
}

/// The id of a raw PAWS-X row.
fn id_of(row: &super::files::PairRow) -> &str {
    row.fields.first().map_or("", String::as_str)
}

fn require_ids(path: &Path, file: &PairFile, role: &str) -> Result<()> {
    if file.format == PairFormat::PawsxRaw {
        return Ok(());
    }
    Err(Error::Data(format!(
        "{}: expected the raw PAWS-X {role} (header id<TAB>sentence1<TAB>sentence2<TAB>label), found a {}: \
         translations are matched to English rows by id. XTREME's pawsx/train-en.tsv has the rows of the raw \
         en/train.tsv in the same order, so write the aligner input from en/train.tsv and reorder either file \
         with its alignments",
        path.display(),
        file.format.describe()
    )))
}

fn pawsx_lines(english: &Path, translations: &Path, report: &mut AlignerInputReport) -> Result<Vec<String>> {
    let en = read_pairs(english, Layout::Pawsx, "English PAWS-X train file (en/train.tsv)")?;
    require_ids(english, &en, "English train file (en/train.tsv)")?;
    let tr = read_pairs(translations, Layout::Pawsx, "PAWS-X translations ({lang}/translated_train.tsv)")?;
    require_ids(translations, &tr, "translations ({lang}/translated_train.tsv)")?;
    // id → the first row with it; a repeated id must repeat the same texts.
    let mut by_id: HashMap<&str, &super::files::PairRow> = HashMap::new();
    for row in &tr.rows {
        let id = id_of(row);
        match by_id.get(id) {
            Some(first) if tr.texts(first) != tr.texts(row) => {
                return Err(Error::format(
                    translations,
                    format!(
                        "line {}: id {} already has a different translation on line {}",
                        row.line,
                        crate::tasks::read::quote(id),
                        first.line
                    ),
                ))
            }
            Some(_) => {}
            None => {
                by_id.insert(id, row);
            }
        }
    }
    report.examples = en.rows.len();
    let mut used: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut lines = Vec::with_capacity(2 * en.rows.len());
    for e in &en.rows {
        let (ea, eb) = en.texts(e);
        let (ta, tb) = match by_id.get(id_of(e)) {
            Some(t) => {
                used.insert(id_of(t));
                tr.texts(t)
            }
            None => {
                report.missing_translations += 1;
                ("", "")
            }
        };
        lines.push(pair_line(&english_words(ea), &target_words(ta), report));
        lines.push(pair_line(&english_words(eb), &target_words(tb), report));
    }
    report.unused_translations = by_id.len() - used.len();
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_words_split_punctuation_and_cjk() {
        assert_eq!(target_words("l'homme, dit-il."), ["l", "'", "homme", ",", "dit", "-", "il", "."]);
        assert_eq!(target_words("我爱纽约。"), ["我", "爱", "纽", "约", "。"]);
        assert_eq!(target_words("  «Oui»  $5 "), ["«", "Oui", "»", "$", "5"]);
        assert_eq!(target_words("नमस्ते।"), ["नमस्ते", "।"]);
        assert!(target_words(" \t ").is_empty());
    }

    #[test]
    fn english_words_split_on_whitespace_only() {
        assert_eq!(english_words(" He said \"hi\",  twice. "), ["He", "said", "\"hi\",", "twice."]);
    }

    #[test]
    fn aligner_lines_keep_one_word_per_word() {
        let mut r = AlignerInputReport::default();
        assert_eq!(pair_line(&["a", "|||", "b c", ""], &["x"], &mut r), "a | b_c _ ||| x");
        assert_eq!(pair_line(&["a"], &[] as &[&str], &mut r), "");
        assert_eq!((r.lines, r.empty_lines, r.replaced_words), (2, 1, 3));
    }
}
