//! `xlt reorder-study`: does English training data reordered to a target language's word order
//! transfer better? For one XTREME task (`udpos`, `panx` or `xnli`), each encoder (one study per
//! encoder, [`run_encoders`], the table of every encoder × condition at the top), and each
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
//! With `--fine-tune-aligner joint|per-language`, the aligner is also fine-tuned
//! ([`super::train::align_train`], awesome-align's so + tlm) on the study's own sentence pairs
//! (all languages' together, or each language's alone) into `aligners/`, and every language gets
//! a second condition, "reordered → lang (fine-tuned aligner)", aligned by it.
//!
//! Every step's output stays in the study folder (`align/`, `aligners/`, `data/`, `runs/`), and
//! `xlt xtreme` and `xlt align-train` reuse a finished run (an interrupted one continues from
//! its checkpoint), so an interrupted study continues where it stopped.

use super::aligner::{align_lines, AlignSettings};
use super::reorder::{aligner_input, reorder_file, Diagnostics, Layout, ReorderRequest};
use super::train::{align_train, AlignTrainRequest};
use crate::embed::EncoderWeights;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::report::ModelResults;
use crate::xtreme::{run as run_xtreme, XtremeConfig};
use std::path::{Path, PathBuf};

/// What a study runs.
#[derive(Clone)]
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
    /// Also fine-tune the aligner on the study's pairs, and how (the request's model, input and
    /// run folder are set by the study: the aligner, the pairs, `aligners/<joint|lang>`).
    pub fine_tune: Option<(AlignerFineTuning, AlignTrainRequest)>,
    /// The fine-tuning and evaluation of every condition (`xtreme.out`, `xtreme.data_dir` and
    /// `xtreme.model_name` are set per condition; `xtreme.tasks` to the task).
    pub xtreme: XtremeConfig,
}

/// Which fine-tuned aligners a study makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlignerFineTuning {
    /// One aligner on every language's pairs together.
    Joint,
    /// One aligner per language, on its pairs alone.
    PerLanguage,
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

/// Runs the study for every encoder of `encoders` (each its own study in `out/<encoder>/`, the
/// aligner by default the encoder itself) and writes one table of every encoder × condition
/// (`<encoder> · <condition>`) into `cfg.xtreme.out`. With one encoder this is [`run`].
pub fn run_encoders(cfg: &StudyConfig, encoders: &[PathBuf]) -> Result<Vec<Condition>> {
    if encoders.len() <= 1 {
        let mut one = cfg.clone();
        if let Some(e) = encoders.first() {
            one.xtreme.encoder = e.clone();
        }
        return run(&one);
    }
    let mut labels: Vec<String> = Vec::new();
    for e in encoders {
        let base = crate::xtreme::model_label(e);
        let mut label = base.clone();
        let mut k = 2;
        while labels.contains(&label) {
            label = format!("{base}-{k}");
            k += 1;
        }
        labels.push(label);
    }
    let mut all = Vec::new();
    for (e, label) in encoders.iter().zip(&labels) {
        eprintln!("encoder {label}: {}", e.display());
        let mut one = cfg.clone();
        one.xtreme.encoder = e.clone();
        one.xtreme.out = cfg.xtreme.out.join(label);
        for mut c in run(&one)? {
            c.name = format!("{label} · {}", c.name);
            c.results.model = c.name.clone();
            all.push(c);
        }
    }
    let models: Vec<ModelResults> = all.iter().map(|c| c.results.clone()).collect();
    crate::report::write_all(&cfg.xtreme.out, &models)?;
    atomic_write(&cfg.xtreme.out.join("study.md"), render(&cfg.task, &all).as_bytes())?;
    Ok(all)
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
    // 1. The aligner's input per language, then align and reorder towards every language (each
    // file checked before the first run).
    let mut pairs = Vec::new();
    for lang in &cfg.langs {
        let p = dirs[0].join(format!("{lang}.pairs.txt"));
        aligner_input(layout, &english, &translations_of(&cfg.translations, lang), &p)?;
        pairs.push(p);
    }
    let aligner_dir = cfg.aligner.clone().unwrap_or_else(|| base.encoder.clone());
    let mut todo: Vec<(String, String, PathBuf, Option<Diagnostics>)> =
        vec![("baseline".into(), "baseline".into(), base.data_dir.clone(), None)];
    let plain: Vec<(usize, PathBuf)> = (0..cfg.langs.len()).map(|k| (k, aligner_dir.clone())).collect();
    for (k, d, data) in reorder_with(cfg, layout, &english, &pairs, &plain, "")? {
        let lang = &cfg.langs[k];
        todo.push((format!("reordered → {lang}"), format!("reordered-{lang}"), data, Some(d)));
    }
    if let Some((how, template)) = &cfg.fine_tune {
        let tuned = fine_tune_aligners(cfg, *how, template, &aligner_dir, &pairs, &out.join("aligners"))?;
        for (k, d, data) in reorder_with(cfg, layout, &english, &pairs, &tuned, "-ft")? {
            let lang = &cfg.langs[k];
            todo.push((
                format!("reordered → {lang} (fine-tuned aligner)"),
                format!("reordered-{lang}-ft"),
                data,
                Some(d),
            ));
        }
    }
    // 2. One xtreme run per condition.
    let mut conditions = Vec::new();
    for (name, folder, data_dir, diagnostics) in todo {
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

/// Aligns each language `k` of `aligners` (language index, aligner folder) with its aligner,
/// reorders the English training file towards it into `data/<lang><suffix>`, and writes the
/// links and diagnostics into `align/<lang><suffix>.*`. Returns (language index, diagnostics,
/// data folder) per language.
fn reorder_with(
    cfg: &StudyConfig,
    layout: Layout,
    english: &Path,
    pairs: &[PathBuf],
    aligners: &[(usize, PathBuf)],
    suffix: &str,
) -> Result<Vec<(usize, Diagnostics, PathBuf)>> {
    let (base, out) = (&cfg.xtreme, &cfg.xtreme.out);
    let mut done = Vec::new();
    let mut loaded: Option<(PathBuf, Box<dyn crate::model::SentenceEncoder>, crate::tokenize::Tokenizer)> = None;
    for (k, dir) in aligners {
        if loaded.as_ref().is_none_or(|(d, _, _)| d != dir) {
            let (encoder, tok) = EncoderWeights::read(dir)?.encoder_on(&base.device)?;
            loaded = Some((dir.clone(), encoder, tok));
        }
        let Some((_, encoder, tok)) = loaded.as_ref() else { unreachable!("loaded above") };
        let lang = format!("{}{suffix}", cfg.langs[*k]);
        let lines = super::pairs::read_lines(&pairs[*k])?;
        let links = align_lines(encoder.as_ref(), tok, &lines, &cfg.align)?;
        let align = out.join("align").join(format!("{lang}.align.txt"));
        let text: String = links.lines().map(|l| l + "\n").collect();
        atomic_write(&align, text.as_bytes())?;
        let data = out.join("data").join(&lang);
        let train = data_variant(&base.data_dir, &data, &cfg.task)?;
        let d = reorder_file(&ReorderRequest {
            layout,
            input: english.to_path_buf(),
            alignments: align,
            output: train,
            punct: cfg.punct,
        })?;
        let json = serde_json::to_string_pretty(&d)
            .map_err(|e| Error::Encode { what: "diagnostics".into(), msg: e.to_string() })?;
        atomic_write(&out.join("align").join(format!("{lang}.diagnostics.json")), json.as_bytes())?;
        eprintln!("reordered towards {lang}: {d}");
        done.push((*k, d, data));
    }
    Ok(done)
}

/// Fine-tunes the aligner `from` on the study's pairs (every language's together, or each
/// language's alone) into `root/joint` or `root/<lang>`; a finished run is reused, an
/// interrupted one continues. Lines of the pair files that are not pairs (a sentence or a
/// translation without words) are left out of the corpus, with a note of how many. Returns the
/// fine-tuned aligner of each language.
fn fine_tune_aligners(
    cfg: &StudyConfig,
    how: AlignerFineTuning,
    template: &AlignTrainRequest,
    from: &Path,
    pairs: &[PathBuf],
    root: &Path,
) -> Result<Vec<(usize, PathBuf)>> {
    let groups: Vec<(String, Vec<usize>)> = match how {
        AlignerFineTuning::Joint => vec![("joint".into(), (0..cfg.langs.len()).collect())],
        AlignerFineTuning::PerLanguage => cfg.langs.iter().enumerate().map(|(k, l)| (l.clone(), vec![k])).collect(),
    };
    let mut out = Vec::new();
    for (name, members) in groups {
        let run_dir = root.join(&name);
        std::fs::create_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
        let corpus = run_dir.join("corpus.txt");
        let mut text = String::new();
        let mut skipped = 0;
        for &k in &members {
            for line in super::pairs::read_lines(&pairs[k])? {
                if super::pairs::parse_pair(&line).is_some() {
                    text += &line;
                    text.push('\n');
                } else {
                    skipped += 1;
                }
            }
        }
        if skipped > 0 {
            eprintln!("note: aligner {name}: {skipped} lines without two non-empty sides are not in its corpus");
        }
        atomic_write(&corpus, text.as_bytes())?;
        let mut req = template.clone();
        req.model = from.to_path_buf();
        req.input = corpus;
        req.run_dir = run_dir.join("run");
        if !req.run_dir.join("done").is_file() {
            let resume = matches!(
                crate::train::checkpoint::find(&req.run_dir.join("checkpoint")),
                crate::train::checkpoint::Found::Complete(_)
            );
            eprintln!("fine-tuning the aligner {name} into {}", req.run_dir.display());
            align_train(&req, &cfg.xtreme.device, resume, false, None)?;
        } else {
            crate::train::setup::check_identity(&req.run_dir, &req.identity()?)?;
        }
        out.extend(members.iter().map(|&k| (k, req.run_dir.join("model"))));
    }
    Ok(out)
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
