//! The training files `xlt reorder` reads and writes, in the layouts users have them:
//!
//! - tagging (UDPOS, PAN-X): `word\ttag` per line, a blank line between sentences, read with
//!   the project's XTREME token-file reader ([`crate::tasks::tagging::read_token_file`]: tags
//!   checked against the task's tag list, errors at file:line) and written back the same way,
//!   keeping the input's line ending (`\n` or `\r\n`) and the number of line breaks it ends
//!   with;
//! - sentence pairs, three formats told apart by the first line:
//!   - XNLI-MT-1.0 `multinli.train.{lang}.tsv`: header `premise\thypo\tlabel`, plain
//!     tab-separated fields (quotes are literal, as HF's loader reads it with `QUOTE_NONE`);
//!   - raw PAWS-X `train.tsv` / `translated_train.tsv`: header `id\tsentence1\tsentence2\tlabel`,
//!     plain tab-separated fields;
//!   - XTREME's `xnli/train-en.tsv` / `pawsx/train-en.tsv`: no header, `sentence1\tsentence2\tlabel`
//!     CSV-escaped by Python's `csv.writer`, read with the project's CSV reader.
//!
//!   Raw rows are split as the project's PAWS-X reader splits them (the line trimmed, then cut
//!   at tabs) and must have as many fields as the header; blank lines are not examples and are
//!   not written back.

use super::Layout;
use crate::align::pharaoh;
use crate::error::{Error, Result};
use crate::tasks::read::{at_line, csv_tsv_records, quote};
use crate::tasks::tagging::read_token_file;
use crate::tasks::Split;
use std::io::Write;
use std::path::Path;

/// One tagged sentence: a tag per word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tagged {
    pub words: Vec<String>,
    pub tags: Vec<String>,
}

/// A token-per-line tagging file.
#[derive(Clone, Debug)]
pub(crate) struct TaggingFile {
    pub sentences: Vec<Tagged>,
    /// `"\n"` or `"\r\n"`, as the input uses.
    pub eol: &'static str,
    /// The number of line breaks after the last word line of the input (0: no final newline;
    /// XTREME's files end with a blank line, 2).
    pub tail: usize,
}

/// `"\r\n"` when `text` uses Windows line endings, else `"\n"`.
fn eol_of(text: &str) -> &'static str {
    if text.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

/// Reads the English tagging file of `layout` (UDPOS or PAN-X).
pub(crate) fn read_tagging(path: &Path, layout: Layout) -> Result<TaggingFile> {
    let task = crate::tasks::lookup(layout.name())?;
    let text =
        crate::fsutil::read_text(path, Some("tagging file (word<TAB>tag lines, a blank line between sentences)"))?;
    let examples = read_token_file(path, &text, task.labels, Split::Train)?;
    let mut sentences = Vec::with_capacity(examples.len());
    for ex in examples {
        // Train-split reading gives every word a tag id into `task.labels`.
        let ids = ex.tags.unwrap_or_default();
        let tags = ids
            .iter()
            .map(|&id| task.labels.get(id).map(|t| t.to_string()))
            .collect::<Option<Vec<_>>>()
            .filter(|t| t.len() == ex.words.len())
            .ok_or_else(|| Error::format(path, format!("sentence {}: expected a tag for every word", ex.id)))?;
        sentences.push(Tagged { words: ex.words, tags });
    }
    let trailing = &text[text.trim_end().len()..];
    Ok(TaggingFile { sentences, eol: eol_of(&text), tail: trailing.matches('\n').count() })
}

/// Writes `file` atomically: `word\ttag` lines, one blank line between sentences, the input's
/// line ending and final line breaks.
pub(crate) fn write_tagging(path: &Path, file: &TaggingFile) -> Result<()> {
    let eol = file.eol;
    crate::fsutil::atomic_write_with(path, |w| {
        for (k, s) in file.sentences.iter().enumerate() {
            if k > 0 {
                w.write_all(eol.as_bytes())?;
            }
            for (n, (word, tag)) in s.words.iter().zip(&s.tags).enumerate() {
                let last = k + 1 == file.sentences.len() && n + 1 == s.words.len();
                write!(w, "{word}\t{tag}")?;
                if !last {
                    w.write_all(eol.as_bytes())?;
                }
            }
        }
        for _ in 0..file.tail {
            w.write_all(eol.as_bytes())?;
        }
        Ok(())
    })
}

/// The three sentence-pair file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PairFormat {
    /// XNLI-MT-1.0 `multinli.train.{lang}.tsv`: header `premise\thypo\tlabel`, plain tabs.
    XnliMt,
    /// Raw PAWS-X: header `id\tsentence1\tsentence2\tlabel`, plain tabs.
    PawsxRaw,
    /// XTREME's `{xnli,pawsx}/train-en.tsv`: no header, CSV-escaped `s1\ts2[\tlabel]`.
    Xtreme,
}

impl PairFormat {
    /// The header a raw format must have.
    fn header(self) -> &'static [&'static str] {
        match self {
            PairFormat::XnliMt => &["premise", "hypo", "label"],
            PairFormat::PawsxRaw => &["id", "sentence1", "sentence2", "label"],
            PairFormat::Xtreme => &[],
        }
    }

    /// The columns of the two texts.
    pub fn text_columns(self) -> (usize, usize) {
        match self {
            PairFormat::PawsxRaw => (1, 2),
            PairFormat::XnliMt | PairFormat::Xtreme => (0, 1),
        }
    }

    /// How the format is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            PairFormat::XnliMt => "file in XNLI-MT's format (header premise<TAB>hypo<TAB>label)",
            PairFormat::PawsxRaw => "file in PAWS-X's own format (header id<TAB>sentence1<TAB>sentence2<TAB>label)",
            PairFormat::Xtreme => "file in XTREME's layout (no header, CSV-escaped sentence1<TAB>sentence2<TAB>label)",
        }
    }
}

/// One example row: its 1-based line and its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PairRow {
    pub line: usize,
    pub fields: Vec<String>,
}

/// A sentence-pair file.
#[derive(Clone, Debug)]
pub(crate) struct PairFile {
    pub format: PairFormat,
    /// The header line as it was (raw formats).
    pub header: Option<String>,
    pub rows: Vec<PairRow>,
    pub eol: &'static str,
    /// Whether the input ends with a line break (raw formats; CSV records always end with one).
    pub final_newline: bool,
}

impl PairFile {
    /// The two texts of `row`.
    pub fn texts<'a>(&self, row: &'a PairRow) -> (&'a str, &'a str) {
        let (a, b) = self.format.text_columns();
        let field = |c: usize| row.fields.get(c).map_or("", String::as_str);
        (field(a), field(b))
    }
}

/// Reads a sentence-pair file of `layout` (XNLI or PAWS-X) in whichever of its formats the
/// first line shows: XNLI's `premise` header (XNLI-MT) or PAWS-X's `id` header (raw PAWS-X),
/// else XTREME's headerless CSV. `what` names the file's role for a missing file.
pub(crate) fn read_pairs(path: &Path, layout: Layout, what: &str) -> Result<PairFile> {
    let text = crate::fsutil::read_text(path, Some(what))?;
    let first = pharaoh::lines(&text).next().unwrap_or("");
    let first_field = first.trim().split('\t').next().unwrap_or("");
    let format = match (layout, first_field) {
        (Layout::Xnli, "premise") => PairFormat::XnliMt,
        (Layout::Pawsx, "id") => PairFormat::PawsxRaw,
        _ => PairFormat::Xtreme,
    };
    let eol = eol_of(&text);
    let mut rows = Vec::new();
    let mut header = None;
    if format == PairFormat::Xtreme {
        for (line, fields) in csv_tsv_records(path, &text)? {
            if !(2..=3).contains(&fields.len()) {
                return Err(at_line(
                    path,
                    line,
                    format!("expected 3 tab-separated columns (sentence1, sentence2, label), found {}", fields.len()),
                ));
            }
            rows.push(PairRow { line, fields });
        }
    } else {
        let want = format.header();
        for (n, l) in pharaoh::lines(&text).enumerate() {
            let line = n + 1;
            let fields: Vec<&str> = l.trim().split('\t').collect();
            if line == 1 {
                if fields != want {
                    return Err(at_line(
                        path,
                        1,
                        format!("expected the header {:?}, found {}", want.join("\t"), quote(l)),
                    ));
                }
                header = Some(l.to_string());
                continue;
            }
            if l.trim().is_empty() {
                continue;
            }
            if fields.len() != want.len() {
                return Err(at_line(
                    path,
                    line,
                    format!(
                        "expected {} tab-separated columns ({}), found {}",
                        want.len(),
                        want.join(", "),
                        fields.len()
                    ),
                ));
            }
            rows.push(PairRow { line, fields: fields.into_iter().map(str::to_string).collect() });
        }
    }
    if rows.is_empty() {
        return Err(Error::format(
            path,
            format!("no examples: expected at least one row in this {}, found none", format.describe()),
        ));
    }
    Ok(PairFile { format, header, rows, eol, final_newline: text.ends_with('\n') })
}

/// Writes `file` atomically in its own format: the header as it was, then every row (raw
/// formats: fields joined by tabs; XTREME: CSV-escaped as Python's `csv.writer` does), with
/// the input's line ending.
pub(crate) fn write_pairs(path: &Path, file: &PairFile) -> Result<()> {
    let eol = file.eol;
    crate::fsutil::atomic_write_with(path, |w| {
        if file.format == PairFormat::Xtreme {
            let terminator = if eol == "\r\n" { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') };
            let mut cw = csv::WriterBuilder::new()
                .delimiter(b'\t')
                .terminator(terminator)
                .quote_style(csv::QuoteStyle::Necessary)
                .from_writer(&mut *w);
            for row in &file.rows {
                cw.write_record(&row.fields).map_err(std::io::Error::other)?;
            }
            return cw.flush();
        }
        let mut lines: Vec<String> = file.header.iter().cloned().collect();
        lines.extend(file.rows.iter().map(|r| r.fields.join("\t")));
        for (k, l) in lines.iter().enumerate() {
            w.write_all(l.as_bytes())?;
            if k + 1 < lines.len() || file.final_newline {
                w.write_all(eol.as_bytes())?;
            }
        }
        Ok(())
    })
}
