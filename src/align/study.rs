//! `xlt reorder-study`: does English training data reordered to a target language's word order
//! transfer better? For one XTREME task (`udpos`, `panx` or `xnli`), one encoder, and each
//! target language with translations of the English training set:
//!
//! 1. the aligner's input from the English training file and the translations
//!    ([`super::reorder::aligner_input`]), the links from an aligner (the encoder itself by
//!    default: the un-fine-tuned aligner; `--aligner DIR` for another, e.g. a fine-tuned one),
//!    and the English training file reordered towards the language ([`super::reorder`]);
//! 2. a data folder per condition that is the XTREME folder with only `<task>/train-en.tsv`
//!    replaced (every other file a symbolic link to the original);
//! 3. one `xlt xtreme` run per condition (the baseline on the original data, then "reordered →
//!    lang" for each language): fine-tuned on the (reordered) English training set, selected on
//!    English dev, evaluated zero-shot on every language of the task;
//! 4. `study.md`: conditions × languages, best per column in bold, with each condition's
//!    reordering diagnostics; and `results.json` / `results.md` / `results.svg` of
//!    [`crate::report`] (the conditions as rows, with the weights and split of every number).
//!
//! Every step's output stays in the study folder (`align/`, `data/`, `runs/`), and `xlt xtreme`
//! reuses a condition's finished run, so an interrupted study continues where it stopped.

use super::aligner::{align_lines, AlignSettings};
use super::reorder::{aligner_input, reorder_file, Diagnostics, Layout, ReorderRequest};
use crate::embed::EncoderWeights;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::report::ModelResults;
use crate::xtreme::{run as run_xtreme, XtremeConfig};
use std::path::{Path, PathBuf};

/// What a study runs.
pub struct StudyConfig {
    /// The task: `udpos`, `panx` or `xnli` (XTREME layout, `<task>/train-en.tsv`).
    pub task: String,
    /// The target languages to reorder towards.
    pub langs: Vec<String>,
    /// The translations of the English training file per language: a path with `{lang}`
    /// (see `xlt align-input` for each task's format).
    pub translations: String,
    /// The aligner model folder (default: the encoder).
    pub aligner: Option<PathBuf>,
    /// How to align.
    pub align: AlignSettings,
    /// `--punct` of the reordering.
    pub punct: bool,
    /// The fine-tuning and evaluation of every condition (`xtreme.out`, `xtreme.data_dir` and
    /// `xtreme.model_name` are set per condition; `xtreme.tasks` to the task).
    pub xtreme: XtremeConfig,
}

/// One condition's outcome.
pub struct Condition {
    /// `baseline` or `reordered → <lang>`.
    pub name: String,
    /// Its reordering diagnostics (none for the baseline).
    pub diagnostics: Option<Diagnostics>,
    /// Its results.
    pub results: ModelResults,
}

/// The file of `lang`'s translations.
fn translations_of(pattern: &str, lang: &str) -> PathBuf {
    PathBuf::from(pattern.replace("{lang}", lang))
}

/// Checks what a study reads, before any device is chosen or anything written: the task, the
/// languages, the translations pattern and every file. Returns the task's layout.
pub fn check_inputs(task: &str, langs: &[String], translations: &str, data_dir: &Path) -> Result<Layout> {
    let layout = Layout::from_name(task)?;
    if layout == Layout::Pawsx {
        return Err(Error::Setting(
            "--task pawsx: XTREME's pawsx/train-en.tsv has no ids to match PAWS-X's translations by; \
             run xlt align-input (with en/train.tsv), xlt align and xlt reorder by hand"
                .into(),
        ));
    }
    if langs.is_empty() {
        return Err(Error::Setting("--langs: give at least one target language".into()));
    }
    if !translations.contains("{lang}") {
        return Err(Error::Setting(format!(
            "--translations {translations:?}: the path must contain {{lang}}, replaced by each language"
        )));
    }
    let english = data_dir.join(task).join("train-en.tsv");
    if !english.is_file() {
        return Err(Error::format(&english, "missing: the study reads the English training file of XTREME's layout"));
    }
    for lang in langs {
        let t = translations_of(translations, lang);
        if !t.is_file() {
            return Err(Error::format(&t, format!("missing: the translations into {lang}")));
        }
    }
    Ok(layout)
}

/// Runs the study (see the module documentation) into `cfg.xtreme.out`.
pub fn run(cfg: &StudyConfig) -> Result<Vec<Condition>> {
    let base = &cfg.xtreme;
    let layout = check_inputs(&cfg.task, &cfg.langs, &cfg.translations, &base.data_dir)?;
    let english = base.data_dir.join(&cfg.task).join("train-en.tsv");
    let out = &base.out;
    let dirs = ["align", "data", "runs"].map(|d| out.join(d));
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    // 1. Align and reorder towards every language (each file checked before the first run).
    let aligner_dir = cfg.aligner.as_deref().unwrap_or(&base.encoder);
    let (encoder, tok) = EncoderWeights::read(aligner_dir)?.encoder_on(&base.device)?;
    let mut reordered = Vec::new();
    for lang in &cfg.langs {
        let pairs = dirs[0].join(format!("{lang}.pairs.txt"));
        aligner_input(layout, &english, &translations_of(&cfg.translations, lang), &pairs)?;
        let lines = super::pairs::read_lines(&pairs)?;
        let links = align_lines(encoder.as_ref(), &tok, &lines, &cfg.align)?;
        let align = dirs[0].join(format!("{lang}.align.txt"));
        let text: String = links.lines().map(|l| l + "\n").collect();
        atomic_write(&align, text.as_bytes())?;
        let data = dirs[1].join(lang);
        let train = data_variant(&base.data_dir, &data, &cfg.task)?;
        let d = reorder_file(&ReorderRequest {
            layout,
            input: english.clone(),
            alignments: align,
            output: train,
            punct: cfg.punct,
        })?;
        let json = serde_json::to_string_pretty(&d)
            .map_err(|e| Error::Encode { what: "diagnostics".into(), msg: e.to_string() })?;
        atomic_write(&dirs[0].join(format!("{lang}.diagnostics.json")), json.as_bytes())?;
        eprintln!("reordered towards {lang}: {d}");
        reordered.push((lang.clone(), data, d));
    }
    drop(encoder);
    // 2. One xtreme run per condition.
    let mut conditions = Vec::new();
    let mut todo: Vec<(String, PathBuf, Option<Diagnostics>)> = vec![("baseline".into(), base.data_dir.clone(), None)];
    todo.extend(reordered.into_iter().map(|(lang, data, d)| (format!("reordered → {lang}"), data, Some(d))));
    for (name, data_dir, diagnostics) in todo {
        let folder =
            if name == "baseline" { "baseline".to_string() } else { name.replace("reordered → ", "reordered-") };
        eprintln!("condition {name}: {} on {}", cfg.task, data_dir.display());
        let mut xc = base.clone();
        xc.data_dir = data_dir;
        xc.out = dirs[2].join(folder);
        xc.tasks = vec![cfg.task.clone()];
        xc.model_name = name.clone();
        let results = run_xtreme(&xc)?;
        conditions.push(Condition { name, diagnostics, results });
    }
    // 3. The tables.
    let models: Vec<ModelResults> = conditions.iter().map(|c| c.results.clone()).collect();
    crate::report::write_all(out, &models)?;
    atomic_write(&out.join("study.md"), render(&cfg.task, &conditions).as_bytes())?;
    Ok(conditions)
}

/// `dst`: the XTREME folder `src` with every entry a symbolic link, except `<task>/`, a real
/// folder of links to `src/<task>/*` but `train-en.tsv`; returns where that file goes.
fn data_variant(src: &Path, dst: &Path, task: &str) -> Result<PathBuf> {
    let link = |from: &Path, to: &Path| -> Result<()> {
        if to.symlink_metadata().is_ok() {
            return Ok(()); // made by an earlier, interrupted study
        }
        let from = from.canonicalize().map_err(|e| Error::io(from, e))?;
        std::os::unix::fs::symlink(&from, to).map_err(|e| Error::io(to, e))
    };
    let entries = |dir: &Path| -> Result<Vec<std::fs::DirEntry>> {
        let mut v: Vec<_> = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.filter_map(|e| e.ok()).collect();
        v.sort_by_key(|e| e.file_name());
        Ok(v)
    };
    std::fs::create_dir_all(dst.join(task)).map_err(|e| Error::io(dst, e))?;
    for e in entries(src)? {
        if e.file_name() != task {
            link(&e.path(), &dst.join(e.file_name()))?;
        }
    }
    for e in entries(&src.join(task))? {
        if e.file_name() != "train-en.tsv" {
            link(&e.path(), &dst.join(task).join(e.file_name()))?;
        }
    }
    Ok(dst.join(task).join("train-en.tsv"))
}

/// The study's table: conditions × languages of the task's primary score, best per column in
/// bold, then each condition's diagnostics.
pub fn render(task: &str, conditions: &[Condition]) -> String {
    let result = |c: &Condition| c.results.task(task).cloned();
    let mut langs: Vec<String> = conditions.iter().filter_map(result).flat_map(|r| r.languages.into_keys()).collect();
    langs.sort();
    langs.dedup();
    let metric = conditions.iter().filter_map(result).map(|r| r.metric).next().unwrap_or_default();
    let mut s = format!(
        "# Reordered English training data: {task}\n\nZero-shot {metric} per language (English dev selects the \
         weights; each language scored on the split named in results.md), fine-tuned on the English training set \
         as it is (baseline) or reordered towards one language. Best per column in bold.\n\n| condition | {} | avg (w/o en) |\n|---|{}---|\n",
        langs.join(" | "),
        "---|".repeat(langs.len())
    );
    let score = |c: &Condition, l: &str| result(c).and_then(|r| r.languages.get(l).map(|x| x.primary));
    let avg = |c: &Condition| {
        let v: Vec<f64> = langs.iter().filter(|l| l.as_str() != "en").filter_map(|l| score(c, l)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let best =
        |f: &dyn Fn(&Condition) -> Option<f64>| conditions.iter().filter_map(f).fold(f64::NEG_INFINITY, f64::max);
    let cell = |v: Option<f64>, b: f64| match v {
        Some(v) if v == b => format!("**{v:.1}**"),
        Some(v) => format!("{v:.1}"),
        None => "–".into(),
    };
    for c in conditions {
        let mut row = format!("| {} |", c.name);
        for l in &langs {
            row += &format!(" {} |", cell(score(c, l), best(&|c| score(c, l))));
        }
        row += &format!(" {} |\n", cell(avg(c), best(&avg)));
        s += &row;
    }
    s += "\nReordering diagnostics:\n\n";
    for c in conditions {
        if let Some(d) = &c.diagnostics {
            s += &format!("- {}: {d}\n", c.name);
        }
    }
    s
}
