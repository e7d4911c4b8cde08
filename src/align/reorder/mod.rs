//! `xlt reorder`: English training data permuted into a target language's word order through
//! word alignments (reference `seeds.md` B.3–B.5), so that a model fine-tuned on it can be
//! compared zero-shot with one fine-tuned on the original order.
//!
//! The workflow, per target language:
//! 1. [`aligner_input`] writes the aligner's `src ||| tgt` file from the English train file
//!    and the translations, one line per English sentence in the order step 3 expects.
//! 2. Any aligner (`xlt align`, awesome-align, SimAlign) turns it into a Pharaoh file: a line
//!    of zero-indexed `i-j` links per input line, i the English word, j the target word.
//! 3. [`reorder_file`] permutes every English sentence ([`permutation`]; words and their tags
//!    together) and writes the train file in its own layout, with [`Diagnostics`].
//!
//! Layouts ([`Layout`], named by task):
//! - `udpos`, `panx`: XTREME's `udpos/train-en.tsv` / `panx/train-en.tsv`, `word\ttag` per line
//!   and a blank line between sentences (BOM and CRLF tolerated; `-DOCSTART-` lines separate
//!   sentences and are not written back). Alignment line k (zero-indexed) is sentence k. The
//!   output has the same layout: one blank line between sentences, the input's line ending,
//!   as many final line breaks as the input.
//! - `xnli`: XNLI-MT-1.0 `multinli.train.en.tsv` (header `premise\thypo\tlabel`, plain tabs) or
//!   XTREME's `xnli/train-en.tsv` (no header, CSV-escaped `premise\thypo\tlabel`).
//! - `pawsx`: raw PAWS-X `en/train.tsv` (header `id\tsentence1\tsentence2\tlabel`, plain tabs)
//!   or XTREME's `pawsx/train-en.tsv` (no header, CSV-escaped `sentence1\tsentence2\tlabel`).
//!
//! For the pair tasks, the format is told by the first line, and the alignment file has two
//! lines per example: line 2k for the first text (premise / sentence1) of example k and line
//! 2k+1 for the second (hypothesis / sentence2), each permuted on its own. A text's English
//! words are its whitespace-split words; the output text is the (reordered) words joined by
//! single spaces — also for texts that do not move, so every text of the output is
//! whitespace-normalised. Header, ids, labels and the column count are unchanged; blank lines
//! (not examples) are not written.
//!
//! `--punct` ([`ReorderRequest::punct`]): unaligned punctuation other than opening brackets and
//! quotes attaches to the aligned word on its left ([`Attach::Left`], see
//! [`punct_attachments`]). Punctuation is the UPOS tag `PUNCT` for UDPOS, and for PAN-X and the
//! pair tasks (no POS tags) a word made only of Unicode `P*` characters ([`is_punct_word`]).
//!
//! Checks, all before anything is written: the alignment file must have exactly one line per
//! sentence (two per pair example), else an error names both files and both counts; a link
//! whose English index is beyond its sentence is an error naming the alignment file and line
//! (target indices cannot be checked here: the reorder step does not see the translation); a
//! malformed link token is an error at its line. Possible links (`ipj`) count as links. Outputs
//! are written atomically, and never over an input.

mod diagnostics;
mod files;
mod input;
mod permute;

pub use diagnostics::Diagnostics;
pub use input::{aligner_input, english_words, target_words, AlignerInputReport};
pub use permute::{aligned_words, apply, is_punct_word, kendall_tau, permutation, punct_attachments, Attach};

use crate::align::pharaoh::{self, Link};
use crate::error::{Error, Result};
use files::{read_pairs, read_tagging, write_pairs, write_tagging, Tagged};
use std::path::{Path, PathBuf};

/// The training data being reordered, named by task; the file format within a task is told
/// by the file (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// UDPOS: `word\tUPOS` lines; `--punct` uses the tag `PUNCT`.
    Udpos,
    /// PAN-X (WikiANN): `word\tBIO-tag` lines; `--punct` uses the word's characters.
    Panx,
    /// XNLI / MultiNLI train: XNLI-MT `multinli.train.en.tsv` or XTREME `xnli/train-en.tsv`.
    Xnli,
    /// PAWS-X train: raw `en/train.tsv` or XTREME `pawsx/train-en.tsv`.
    Pawsx,
}

impl Layout {
    /// Every layout, in the order of their names.
    pub const ALL: [Layout; 4] = [Layout::Udpos, Layout::Panx, Layout::Xnli, Layout::Pawsx];

    /// The task name: `udpos`, `panx`, `xnli`, `pawsx`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Udpos => "udpos",
            Layout::Panx => "panx",
            Layout::Xnli => "xnli",
            Layout::Pawsx => "pawsx",
        }
    }

    /// The layout of a task name; an unknown name is [`Error::Unknown`] listing the known ones.
    pub fn from_name(name: &str) -> Result<Layout> {
        Layout::ALL.into_iter().find(|l| l.name() == name).ok_or_else(|| {
            Error::Unknown(format!(
                "unknown task {name:?} for reordering (expected one of: {})",
                Layout::ALL.map(Layout::name).join(", ")
            ))
        })
    }

    /// Whether the files are token-per-line tagging files (one alignment line per sentence)
    /// rather than sentence pairs (two per example).
    pub fn is_tagging(self) -> bool {
        matches!(self, Layout::Udpos | Layout::Panx)
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One reordering run: an English train file, its alignments, where the result goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReorderRequest {
    /// Which task's files these are.
    pub layout: Layout,
    /// The English train file.
    pub input: PathBuf,
    /// The Pharaoh alignment file (zero-indexed `i-j`, English first): a line per tagging
    /// sentence, two per pair example.
    pub alignments: PathBuf,
    /// Where the reordered train file is written (atomically; never one of the inputs).
    pub output: PathBuf,
    /// Unaligned punctuation (other than opening brackets and quotes) attaches left.
    pub punct: bool,
}

/// Reorders `req.input` with `req.alignments` into `req.output` (see the module documentation
/// for the layouts, conventions and checks) and returns what it did.
pub fn reorder_file(req: &ReorderRequest) -> Result<Diagnostics> {
    refuse_overwrite(&req.output, &[&req.input, &req.alignments])?;
    if req.layout.is_tagging() {
        reorder_tagging(req)
    } else {
        reorder_pairs(req)
    }
}

/// An error unless `output` is a file other than every one of `inputs`.
pub(crate) fn refuse_overwrite(output: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(out) = output.canonicalize() else {
        return Ok(()); // does not exist yet
    };
    for input in inputs {
        if input.canonicalize().is_ok_and(|i| i == out) {
            return Err(Error::Setting(format!(
                "the output {} is also an input; write the result to another file",
                output.display()
            )));
        }
    }
    Ok(())
}

/// The alignment file: per line, its distinct links sorted.
fn read_alignments(path: &Path) -> Result<Vec<Vec<Link>>> {
    Ok(pharaoh::read_file(path, false)?
        .into_iter()
        .map(|line| {
            let mut links: Vec<Link> = line.into_iter().map(|(l, _)| l).collect();
            links.sort_unstable();
            links.dedup();
            links
        })
        .collect())
}

/// An error unless the alignment file has `per` lines per example of the input.
fn check_count(req: &ReorderRequest, lines: usize, examples: usize, per: usize, what: &str) -> Result<()> {
    if lines == per * examples {
        return Ok(());
    }
    let expected = if per == 1 {
        "one alignment line per sentence, line k for sentence k".to_string()
    } else {
        format!("{per} alignment lines per example ({}): the first text's line, then the second's", per * examples)
    };
    Err(Error::Data(format!(
        "{} has {lines} line{}, but {} has {examples} {what}: expected {expected}",
        req.alignments.display(),
        if lines == 1 { "" } else { "s" },
        req.input.display()
    )))
}

/// The permutation of one sentence (`None`: no links), after checking that every link is
/// inside it, with the sentence recorded in `diag`. `line` is the alignment line (1-based),
/// `which` names the sentence for an error.
fn permute_sentence(
    req: &ReorderRequest,
    line: usize,
    which: impl Fn() -> String,
    words: &[&str],
    is_punct: impl Fn(usize) -> bool,
    links: &[Link],
    diag: &mut Diagnostics,
) -> Result<Option<Vec<usize>>> {
    let m = words.len();
    if let Some(&(i, j)) = links.iter().find(|&&(i, _)| i >= m) {
        return Err(Error::format(
            &req.alignments,
            format!(
                "line {line}: link {i}-{j} is beyond the sentence: English word {i} of {}, which has {m} word{}",
                which(),
                if m == 1 { "" } else { "s" }
            ),
        ));
    }
    let perm = if req.punct {
        let flags: Vec<bool> = (0..m).map(&is_punct).collect();
        let attach = punct_attachments(words, &flags);
        permutation(m, links, |i| attach[i])
    } else {
        permutation(m, links, |_| Attach::Right)
    };
    diag.add_sentence(m, links.len(), aligned_words(m, links), perm.as_deref());
    Ok(perm)
}

fn reorder_tagging(req: &ReorderRequest) -> Result<Diagnostics> {
    let mut file = read_tagging(&req.input, req.layout)?;
    let aligns = read_alignments(&req.alignments)?;
    check_count(req, aligns.len(), file.sentences.len(), 1, "sentences")?;
    let mut diag = Diagnostics { examples: file.sentences.len(), ..Default::default() };
    let input_name = req.input.display().to_string();
    let mut out = Vec::with_capacity(file.sentences.len());
    for (k, (s, links)) in file.sentences.iter().zip(&aligns).enumerate() {
        let words: Vec<&str> = s.words.iter().map(String::as_str).collect();
        let is_punct = |i: usize| match req.layout {
            Layout::Udpos => s.tags[i] == "PUNCT",
            _ => is_punct_word(words[i]),
        };
        let which = || format!("sentence {} of {input_name}", k + 1);
        let perm = permute_sentence(req, k + 1, which, &words, is_punct, links, &mut diag)?;
        out.push(match perm {
            Some(p) => Tagged { words: apply(&p, &s.words), tags: apply(&p, &s.tags) },
            None => s.clone(),
        });
    }
    file.sentences = out;
    write_tagging(&req.output, &file)?;
    Ok(diag)
}

fn reorder_pairs(req: &ReorderRequest) -> Result<Diagnostics> {
    let mut file = read_pairs(&req.input, req.layout, &format!("English {} train file", req.layout))?;
    let aligns = read_alignments(&req.alignments)?;
    check_count(req, aligns.len(), file.rows.len(), 2, "examples")?;
    let mut diag = Diagnostics { examples: file.rows.len(), ..Default::default() };
    let input_name = req.input.display().to_string();
    let (col_a, col_b) = file.format.text_columns();
    let mut rows = Vec::with_capacity(file.rows.len());
    for (k, row) in file.rows.iter().enumerate() {
        let mut new_row = row.clone();
        for (side, col) in [(0, col_a), (1, col_b)] {
            let text = row.fields.get(col).map_or("", String::as_str);
            let words = english_words(text);
            let which = || {
                let field = if side == 0 { "first text" } else { "second text" };
                format!("the {field} of example {} (line {} of {input_name})", k + 1, row.line)
            };
            let line = 2 * k + side + 1;
            let perm =
                permute_sentence(req, line, which, &words, |i| is_punct_word(words[i]), &aligns[line - 1], &mut diag)?;
            let reordered = match perm {
                Some(p) => apply(&p, &words),
                None => words,
            };
            if let Some(f) = new_row.fields.get_mut(col) {
                *f = reordered.join(" ");
            }
        }
        rows.push(new_row);
    }
    file.rows = rows;
    write_pairs(&req.output, &file)?;
    Ok(diag)
}
