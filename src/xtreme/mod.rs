//! `xlt xtreme`: fine-tune on each XTREME target task's English training set, evaluate
//! zero-shot on every language, and write results in XTREME's layout.
//!
//! Each trainable task is one run (`<out>/runs/<task>/`, the trainer's folder layout) with the
//! paper's Table 4 presets (learning rate 3e-6; XNLI batch 4 × 2 epochs, PAWS-X 32 × 5, QA
//! 16 × 2, POS / NER 32 × 10), the encoder loaded `partial`ly (fresh heads). XQuAD and MLQA
//! share one SQuAD run, as in XTREME. Model selection never uses data a task is scored on
//! (see [`crate::train::setup`]): XQuAD and MLQA select on SQuAD v1.1 dev, TyDiQA-GoldP keeps
//! its last weights unless `--select-on-english-dev`, the others select on their English dev.
//!
//! Every language whose files are present is then scored: on its test split when that carries
//! labels, else on its dev split; each score records its split and the weights that produced
//! it ([`crate::provenance::Weights`]). Predictions of the test sets go to
//! `<out>/predictions/<task>/test-<lang>.{tsv,json}` (XTREME's submission layout), in jiant's
//! layout too, where XQuAD's and TyDiQA-GoldP's test sets are jiant's `val` split. BUCC and
//! Tatoeba come straight from the encoder's embeddings ([`retrieval`]).
//!
//! Before the first training step every file of every task to run is read and parsed, so a
//! malformed file fails in seconds. A finished task leaves `<out>/<task>.result.json`: its
//! result and the [`Fingerprint`] of what made it (the encoder's files, every data file read,
//! the settings). A re-run reuses a finished task only when the fingerprint matches; otherwise
//! it says what changed, moves the old result and run folder to `<out>/replaced/<time>/` and
//! runs the task again. An interrupted fine-tuning resumes from its checkpoint (when its
//! folder's fingerprint matches). `results.json`, `results.md` and `results.svg`
//! ([`crate::report`]) list every finished task in the folder and are rewritten after each task.

pub mod retrieval;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::eval::{evaluate_languages, prediction_ext, EvalOptions, LangData};
use crate::fsutil::atomic_write;
use crate::model::HostModel;
use crate::provenance::{model_hash, Fingerprint, Weights};
use crate::report::{LangScore, ModelResults, TaskResult};
use crate::tasks::TrainSource;
use crate::tasks::{expected_files, lookup, read_split, split_present, Kind, Layout, Split, TaskSpec};
use crate::train::setup::{detect_layout, label_names, load_tokenizer, prepare, selection_data, LoadMode, RunSpec};
use crate::train::trainer::TrainConfig;
use retrieval::RetrievalOptions;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The nine XTREME tasks in XTREME's order.
pub const XTREME_TASKS: [&str; 9] =
    ["pawsx", "xnli", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba"];

/// File in a task's run folder recording what the run was started from (a [`Fingerprint`]
/// of its training part).
const RUN_FINGERPRINT: &str = "xtreme_run.json";

/// Settings of an `xlt xtreme` run.
#[derive(Clone, Debug)]
pub struct XtremeConfig {
    /// The encoder to evaluate (an HF folder or an intermediate run's `model/`).
    pub encoder: PathBuf,
    /// XTREME `download/` folder (or jiant layout).
    pub data_dir: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Tasks to run (default: all nine).
    pub tasks: Vec<String>,
    /// Row label in the tables.
    pub model_name: String,
    /// Overrides of the presets: learning rate, epochs, batch size, step budget.
    pub learning_rate: Option<f64>,
    /// Epochs instead of the preset.
    pub num_train_epochs: Option<f64>,
    /// Batch size instead of the preset.
    pub train_batch_size: Option<usize>,
    /// Sequence length instead of 128 (classification, tagging) / 384 (QA).
    pub max_seq_length: Option<usize>,
    /// Select TyDiQA-GoldP on its English dev set (XTREME's English test set), labelled as
    /// optimistic; off: keep its last weights.
    pub select_on_english_dev: bool,
    /// Optimisation settings shared by the runs (seed, max steps, evaluation interval, ...).
    pub train: TrainConfig,
    /// Show progress bars.
    pub progress: bool,
    /// Where fine-tuning, evaluation and retrieval run.
    pub device: Device,
}

/// What `<out>/<task>.result.json` holds: the result and what it was made from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct TaskRecord {
    result: TaskResult,
    fingerprint: Fingerprint,
}

/// The run a task's fine-tuning happens in (XQuAD and MLQA share SQuAD's).
fn run_task(task: &str) -> &str {
    match task {
        "mlqa" => "xquad",
        t => t,
    }
}

/// The split that holds XTREME's test set of `task` in `layout`: jiant files XQuAD's test set
/// and TyDiQA-GoldP's dev set (XTREME's test set) as `val`.
fn submission_split(task: &TaskSpec, layout: &Layout) -> Split {
    match (task.name, layout) {
        ("xquad" | "tydiqa", Layout::Jiant(_)) => Split::Val,
        _ => Split::Test,
    }
}

/// The name a layout gives `split`: XTREME's `dev`, jiant's `val`.
fn split_name(split: Split, layout: &Layout) -> &'static str {
    match (split, layout) {
        (Split::Val, Layout::Xtreme(_)) => "dev",
        (s, _) => s.jiant_key(),
    }
}

/// A registry task and the subsets of it that a result reads.
type TaskSubsets = (&'static TaskSpec, Vec<Option<&'static str>>);

/// The registry tasks whose files `task`'s result depends on: itself and its training source.
fn related(task: &'static TaskSpec) -> Result<Vec<TaskSubsets>> {
    let mut out = vec![(task, task.languages.iter().map(|l| Some(*l)).collect::<Vec<_>>())];
    if let TrainSource::Task(src, subset) = task.train_source {
        let src = lookup(src)?;
        if src.name != task.name {
            out.push((src, vec![subset]));
        }
        let squad = lookup("squad_v1")?;
        if matches!(task.name, "xquad" | "mlqa") && src.name != squad.name {
            // XQuAD and MLQA select on SQuAD v1.1 dev: it is read too.
            out.push((squad, vec![None]));
        }
    }
    Ok(out)
}

/// Every (task, subset, split) of `task`'s result that the data folder has.
fn present_splits(task: &'static TaskSpec, layout: &Layout) -> Result<Vec<(&'static TaskSpec, Option<String>, Split)>> {
    let mut out = Vec::new();
    for (t, subsets) in related(task)? {
        for s in subsets {
            for split in Split::ALL {
                if split_present(t, layout, split, s)? {
                    out.push((t, s.map(str::to_string), split));
                }
            }
        }
    }
    Ok(out)
}

/// Every data file `task`'s result is made from (training, selection and evaluation data) that
/// the data folder has.
fn task_files(task: &'static TaskSpec, layout: &Layout) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (t, subset, split) in present_splits(task, layout)? {
        for f in expected_files(t, layout, split, subset.as_deref())? {
            if f.is_file() && !files.contains(&f) {
                files.push(f);
            }
        }
    }
    // Tatoeba's alignment file in XTREME's layout, when one was added beside the sentences.
    if task.name == "tatoeba" && matches!(layout, Layout::Xtreme(_)) {
        for l in task.languages {
            for f in expected_files(task, layout, Split::Test, Some(l))? {
                let labels = f.with_extension("labels");
                if f.extension().is_some_and(|e| e == "en") && labels.is_file() && !files.contains(&labels) {
                    files.push(labels);
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads and parses every file of `task` (every split of every language, its training and
/// selection data), dropping the examples: a malformed file is an error naming it now, before
/// any training.
fn check_readable(task: &'static TaskSpec, layout: &Layout) -> Result<()> {
    for (t, subset, split) in present_splits(task, layout)? {
        read_split(t, layout, split, subset.as_deref())
            .map_err(|e| e.context(format!("{}: checking the data before training", task.name)))?;
    }
    Ok(())
}

/// The run description of a trainable task, completed with its presets.
fn run_spec(cfg: &XtremeConfig, task: &TaskSpec, max_positions: usize) -> Result<RunSpec> {
    let qa = task.kind == Kind::SpanQa;
    let name = run_task(task.name);
    let spec = RunSpec {
        run_name: name.to_string(),
        exp_dir: cfg.out.clone(),
        data_dir: cfg.data_dir.clone(),
        tasks: vec![name.to_string()],
        model: cfg.encoder.clone(),
        model_load_mode: LoadMode::Partial,
        max_seq_length: cfg.max_seq_length.unwrap_or(if qa { 384 } else { 128 }).min(max_positions),
        train_batch_size: cfg.train_batch_size,
        num_train_epochs: cfg.num_train_epochs,
        learning_rate: cfg.learning_rate,
        select_on_english_dev: cfg.select_on_english_dev,
        train: cfg.train.clone(),
        ..RunSpec::default()
    };
    spec.complete()
}

/// The settings that decide a task's numbers, for its fingerprint: the completed run
/// description without its paths (fine-tuned tasks), the pooling and sequence length
/// (retrieval).
fn task_settings(task: &TaskSpec, spec: Option<&RunSpec>, retrieval_len: usize) -> serde_json::Value {
    match spec {
        Some(spec) => {
            let mut v = serde_json::to_value(spec).unwrap_or(serde_json::Value::Null);
            if let Some(m) = v.as_object_mut() {
                for key in ["exp_dir", "model", "data_dir", "tokenizer", "run_name"] {
                    m.remove(key);
                }
                // The completed description repeats the learning rate and epochs under `train`.
                if let Some(t) = m.get_mut("train").and_then(|t| t.as_object_mut()) {
                    for key in ["eval_batch_size", "do_val", "learning_rate", "num_train_epochs"] {
                        t.remove(key);
                    }
                }
                m.insert("task".into(), task.name.into());
            }
            v
        }
        None => {
            serde_json::json!({ "task": task.name, "pool": "mean", "layer": "default", "max_seq_len": retrieval_len })
        }
    }
}

/// Reads a finished task's record; `Ok(None)` when there is none, and for a result written
/// without a fingerprint (then it is re-run, saying so).
fn read_record(path: &Path) -> Result<Option<std::result::Result<TaskRecord, String>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = crate::fsutil::read_text(path, None)?;
    if let Ok(r) = serde_json::from_str::<TaskRecord>(&text) {
        return Ok(Some(Ok(r)));
    }
    match serde_json::from_str::<TaskResult>(&text) {
        Ok(_) => Ok(Some(Err("it records no fingerprint of the encoder, data and settings that made it".into()))),
        Err(e) => Err(Error::format(path, format!("not an xlt task result: {e}"))),
    }
}

/// `<out>/replaced/<time>/`, created, where stale results are moved.
fn replaced_dir(out: &Path, stamp: &str) -> Result<PathBuf> {
    let d = out.join("replaced").join(stamp);
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    Ok(d)
}

/// Moves `path` (a file or folder inside `out`) to the same relative place under `to`.
fn move_aside(out: &Path, path: &Path, to: &Path) -> Result<PathBuf> {
    let rel = path.strip_prefix(out).unwrap_or(path);
    let dst = to.join(rel);
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::rename(path, &dst).map_err(|e| Error::io(path, e))?;
    Ok(dst)
}

/// The current UTC time as `YYYY-MM-DDTHH-MM-SS` (a folder name).
fn stamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Makes sure the run folder of a trainable task belongs to `fp` (the training part of its
/// fingerprint): a folder made from another encoder, data or settings (or without a record)
/// is moved aside, saying why; the record is written before training starts.
fn claim_run_folder(cfg: &XtremeConfig, run_dir: &Path, fp: &Fingerprint, stamp: &str) -> Result<()> {
    let record = run_dir.join(RUN_FINGERPRINT);
    if run_dir.exists() {
        let why = if record.is_file() {
            let text = crate::fsutil::read_text(&record, None)?;
            let old: Fingerprint = serde_json::from_str(&text)
                .map_err(|e| Error::format(&record, format!("not an xlt run fingerprint: {e}")))?;
            old.differences(fp)
        } else {
            vec!["it does not record what it was started from".to_string()]
        };
        if why.is_empty() {
            return Ok(());
        }
        let to = move_aside(&cfg.out, run_dir, &replaced_dir(&cfg.out, stamp)?)?;
        eprintln!(
            "{}: the run folder was made from something else ({}); moved to {}",
            run_dir.display(),
            why.join("; "),
            to.display()
        );
    }
    std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
    let text = serde_json::to_string_pretty(fp).map_err(|e| Error::encode("JSON", e))?;
    atomic_write(&record, text.as_bytes())
}

/// Fine-tunes (or reuses the finished run of) a trainable task and scores its languages.
fn trainable(
    cfg: &XtremeConfig,
    task: &'static TaskSpec,
    layout: &Layout,
    spec: RunSpec,
    train_fp: &Fingerprint,
    encoder: &str,
    stamp: &str,
) -> Result<TaskResult> {
    let run_dir = spec.run_dir();
    let name = spec.run_name.clone();
    let tok = load_tokenizer(&spec)?;
    claim_run_folder(cfg, &run_dir, train_fp, stamp)?;
    if !run_dir.join("done").is_file() {
        let resume = run_dir.join("checkpoint").exists();
        let prepared = prepare(spec.clone(), &tok, resume, &cfg.device)?;
        let mut trainer = prepared.trainer.with_progress(cfg.progress);
        eprintln!("{}: fine-tuning {} steps into {}", task.name, trainer.total_steps(), run_dir.display());
        trainer.run(&name, None)?;
    }
    // Zero-shot scoring on the GPU when there is one.
    let model_dir = run_dir.join("model");
    let weights = Weights::of_dir(&model_dir)?;
    let mut model = cfg.device.eval_model(HostModel::from_dir(&model_dir)?)?;
    let labels = label_names(task);
    let opts = EvalOptions::new(cfg.train.eval_batch_size, spec.max_seq_length);
    let ext = prediction_ext(task.kind);
    let submission = submission_split(task, layout);
    // XTREME's test set first: predictions in the submission layout, scored where labelled.
    let mut data = Vec::new();
    for lang in task.languages {
        if split_present(task, layout, submission, Some(lang))? {
            let path = cfg.out.join("predictions").join(task.name).join(format!("test-{lang}.{ext}"));
            let examples = read_split(task, layout, submission, Some(lang))?;
            let split = split_name(submission, layout).to_string();
            data.push(LangData { lang: lang.to_string(), split, examples, predictions: Some(path) });
        }
    }
    let mut languages = BTreeMap::new();
    for r in evaluate_languages(model.as_mut(), 0, &tok, task, &labels, data, &opts)? {
        if let Some(s) = r.result.lang_score(&r.split) {
            languages.insert(r.lang, s);
        }
    }
    // Then the dev split of every language the test split left unscored.
    let mut data = Vec::new();
    if submission != Split::Val {
        for lang in task.languages.iter().filter(|l| !languages.contains_key(**l)) {
            if split_present(task, layout, Split::Val, Some(lang))? {
                let examples = read_split(task, layout, Split::Val, Some(lang))?;
                let split = split_name(Split::Val, layout).to_string();
                data.push(LangData { lang: lang.to_string(), split, examples, predictions: None });
            }
        }
    }
    let mut dev_only = Vec::new();
    for r in evaluate_languages(model.as_mut(), 0, &tok, task, &labels, data, &opts)? {
        if let Some(s) = r.result.lang_score(&r.split) {
            dev_only.push(r.lang.clone());
            languages.insert(r.lang, s);
        }
    }
    let mut notes = Vec::new();
    if submission == Split::Val {
        notes.push(format!(
            "jiant's {} `val` split is XTREME's test set ({}): its scores are test scores, and its predictions \
             are written as predictions/{}/test-<lang>.{ext}",
            task.name,
            if task.name == "xquad" { "XQuAD" } else { "TyDiQA-GoldP's dev set" },
            task.name
        ));
    }
    if !dev_only.is_empty() {
        notes.push(format!("scored on the dev split where the test split carries no labels: {}", dev_only.join(", ")));
    }
    let missing: Vec<&str> = task.languages.iter().copied().filter(|l| !languages.contains_key(*l)).collect();
    if !missing.is_empty() {
        eprintln!("note: {}: no labelled data for {}", task.name, missing.join(" "));
    }
    if weights.optimistic() {
        if let Some(en) = languages.get_mut("en") {
            en.optimistic = true;
        }
        notes.push("the weights were selected on English data that is also scored here: English is optimistic".into());
    }
    Ok(TaskResult {
        task: task.name.into(),
        metric: task.metric.label().into(),
        split: split_of(&languages),
        languages,
        weights: Some(weights),
        encoder: Some(encoder.to_string()),
        notes,
    })
}

/// `test`, `dev` or `test+dev` from the languages' splits.
fn split_of(languages: &BTreeMap<String, LangScore>) -> String {
    let is_test = |s: &LangScore| s.split.as_deref().is_some_and(|x| x == "test");
    let (test, other) = (languages.values().any(is_test), languages.values().any(|s| !is_test(s)));
    match (test, other) {
        (true, true) => "test+dev".into(),
        (false, true) => languages.values().find_map(|s| s.split.clone()).unwrap_or_else(|| "dev".into()),
        _ => "test".into(),
    }
}

fn retrieval_task(
    cfg: &XtremeConfig,
    task: &'static TaskSpec,
    layout: &Layout,
    max_seq_len: usize,
    encoder: &str,
) -> Result<TaskResult> {
    let opts = RetrievalOptions {
        max_seq_len,
        batch_size: cfg.train.eval_batch_size,
        device: cfg.device.clone(),
        ..RetrievalOptions::default()
    };
    let mut present = Vec::new();
    for l in task.languages {
        let needed: &[Split] =
            if task.name == "bucc2018" { &[Split::Val, Split::Test] } else { &[submission(task, layout)] };
        let mut all = true;
        for sp in needed {
            all &= split_present(task, layout, *sp, Some(l))?;
        }
        if all {
            present.push(*l);
        }
    }
    if present.is_empty() {
        return Err(Error::Data(format!("{}: no language files in {}", task.name, cfg.data_dir.display())));
    }
    let pred_dir = cfg.out.join("predictions");
    let scores = retrieval::evaluate(task, &cfg.encoder, layout, &present, &pred_dir, &opts)?;
    let mut languages = BTreeMap::new();
    let mut notes = Vec::new();
    let layer = scores.first().and_then(|s| s.extra["layer"].as_u64());
    notes.push(format!(
        "no fine-tuning: sentences embedded as the mean of hidden_states[{}] of the encoder",
        layer.map_or("?".to_string(), |l| l.to_string())
    ));
    let mut tuned_on_own_gold = Vec::new();
    for s in scores {
        if let Some(p) = s.primary {
            if s.optimistic {
                tuned_on_own_gold.push(s.lang.clone());
            }
            languages.insert(
                s.lang,
                LangScore { primary: p, secondary: None, split: Some(s.split.clone()), optimistic: s.optimistic },
            );
        }
    }
    if !tuned_on_own_gold.is_empty() {
        notes.push(format!(
            "BUCC: the test gold is not in this data folder, so the F1 of {} is measured on the dev gold the \
             threshold was tuned on: optimistic (XTREME reports test F1 with the dev-tuned threshold)",
            tuned_on_own_gold.join(", ")
        ));
    }
    if task.name == "tatoeba" && matches!(layout, Layout::Jiant(_)) {
        notes.push("jiant files Tatoeba as a `val` split; it is the same set XTREME reports as test".into());
    }
    if languages.is_empty() {
        eprintln!("note: {}: predictions written, no gold alignment to score them", task.name);
    }
    Ok(TaskResult {
        task: task.name.into(),
        metric: task.metric.label().into(),
        split: split_of(&languages),
        languages,
        weights: Some(Weights::AsLoaded { path: cfg.encoder.display().to_string() }),
        encoder: Some(encoder.to_string()),
        notes,
    })
}

/// The split a retrieval task is read from in `layout` (Tatoeba: jiant's `val`, XTREME's test).
fn submission(task: &TaskSpec, layout: &Layout) -> Split {
    match (task.name, layout) {
        ("tatoeba", Layout::Jiant(_)) => Split::Val,
        _ => Split::Test,
    }
}

/// What to do with one requested task.
enum Plan {
    /// Its finished result matches: reuse it.
    Reuse(Box<TaskResult>),
    /// Run it; the reasons a finished result (if any) no longer matches.
    Run { stale: Vec<String> },
}

/// Every finished task result in `out`, in XTREME's order.
fn finished_results(out: &Path) -> Result<Vec<TaskResult>> {
    let mut results = Vec::new();
    for name in XTREME_TASKS {
        if let Some(Ok(rec)) = read_record(&out.join(format!("{name}.result.json")))? {
            results.push(rec.result);
        }
    }
    Ok(results)
}

/// Runs every requested task (reusing finished ones whose fingerprint matches) and writes the
/// results; returns every finished result in the output folder.
pub fn run(cfg: &XtremeConfig) -> Result<ModelResults> {
    let layout = detect_layout(&cfg.data_dir)?;
    let names: Vec<String> =
        if cfg.tasks.is_empty() { XTREME_TASKS.iter().map(|s| s.to_string()).collect() } else { cfg.tasks.clone() };
    let mut specs: Vec<&'static TaskSpec> = Vec::new();
    for n in &names {
        let t = lookup(n)?;
        if !XTREME_TASKS.contains(&t.name) {
            return Err(Error::Unknown(format!(
                "{n} is not an XTREME task; expected one of {}",
                XTREME_TASKS.join(" ")
            )));
        }
        if specs.iter().any(|s| s.name == t.name) {
            return Err(Error::Data(format!("--tasks: {} is listed twice", t.name)));
        }
        specs.push(t);
    }
    // Settings first: a bad value fails before anything is read or written.
    let model_cfg = crate::config::ModelConfig::from_file(&cfg.encoder.join("config.json"))?;
    let positions = model_cfg.max_seq_len();
    let mut run_specs = BTreeMap::new();
    for t in &specs {
        if t.kind != Kind::Retrieval {
            run_specs.insert(t.name, run_spec(cfg, t, positions)?);
        }
    }
    let retrieval_len = cfg.max_seq_length.unwrap_or(512).min(positions);
    let hash = model_hash(&cfg.encoder)?;
    let encoder = format!("{} (xxh3 {})", cfg.encoder.display(), &hash[..16]);
    // Plan: a finished result is reused only when it was made from the same encoder, data and
    // settings.
    let mut plans = Vec::new();
    for t in &specs {
        let fp = Fingerprint {
            encoder: hash.clone(),
            data: Fingerprint::hash_data(&cfg.data_dir, &task_files(t, &layout)?)?,
            settings: task_settings(t, run_specs.get(t.name), retrieval_len),
        };
        let record = cfg.out.join(format!("{}.result.json", t.name));
        let plan = match read_record(&record)? {
            Some(Ok(rec)) if rec.fingerprint == fp => Plan::Reuse(Box::new(rec.result)),
            Some(Ok(rec)) => Plan::Run { stale: rec.fingerprint.differences(&fp) },
            Some(Err(why)) => Plan::Run { stale: vec![why] },
            None => Plan::Run { stale: Vec::new() },
        };
        plans.push((t, fp, plan));
    }
    // Every file of every task to run is read before the first training step.
    for (t, _, plan) in &plans {
        if matches!(plan, Plan::Run { .. }) {
            check_readable(t, &layout)?;
        }
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    // One folder per call for what it replaces, never one of an earlier call.
    let stamp = {
        let base = stamp();
        let mut k = 1;
        let mut name = base.clone();
        while cfg.out.join("replaced").join(&name).exists() {
            k += 1;
            name = format!("{base}-{k}");
        }
        name
    };
    for (task, fp, plan) in plans {
        let record = cfg.out.join(format!("{}.result.json", task.name));
        let result = match plan {
            Plan::Reuse(r) => {
                eprintln!("{}: already done with this encoder, data and settings ({})", task.name, record.display());
                *r
            }
            Plan::Run { stale } => {
                if !stale.is_empty() {
                    let to = replaced_dir(&cfg.out, &stamp)?;
                    move_aside(&cfg.out, &record, &to)?;
                    let preds = cfg.out.join("predictions").join(task.name);
                    if preds.exists() {
                        move_aside(&cfg.out, &preds, &to)?;
                    }
                    eprintln!(
                        "{}: re-running: {}; the previous result is in {}",
                        task.name,
                        stale.join("; "),
                        to.display()
                    );
                }
                let r = match run_specs.remove(task.name) {
                    None => retrieval_task(cfg, task, &layout, retrieval_len, &encoder)?,
                    Some(spec) => {
                        // The run folder is judged by the training part of the fingerprint:
                        // everything but the evaluation files of the languages.
                        // XQuAD and MLQA share one run: the task name is not part of it.
                        let mut train_fp = fp.clone();
                        train_fp.data = training_files(task, &layout, cfg)?;
                        if let Some(m) = train_fp.settings.as_object_mut() {
                            m.remove("task");
                        }
                        trainable(cfg, task, &layout, spec, &train_fp, &encoder, &stamp)?
                    }
                };
                let rec = TaskRecord { result: r.clone(), fingerprint: fp };
                let text = serde_json::to_string_pretty(&rec).map_err(|e| Error::encode("JSON", e))?;
                atomic_write(&record, text.as_bytes())?;
                r
            }
        };
        eprintln!(
            "{}: average {} over {} languages",
            task.name,
            result.average().map_or("-".into(), |a| format!("{a:.1}")),
            result.languages.len()
        );
        let all = ModelResults { model: cfg.model_name.clone(), tasks: finished_results(&cfg.out)? };
        crate::report::write_all(&cfg.out, std::slice::from_ref(&all))?;
    }
    let all = ModelResults { model: cfg.model_name.clone(), tasks: finished_results(&cfg.out)? };
    let encoders: Vec<&str> = all.tasks.iter().filter_map(|t| t.encoder.as_deref()).collect();
    if encoders.iter().any(|e| *e != encoder) {
        eprintln!(
            "note: {} also holds results of other encoders; results.md names each task's encoder",
            cfg.out.display()
        );
    }
    Ok(all)
}

/// Hashes of the files a task's fine-tuning reads (its training source's training split and its
/// selection data), keyed like [`Fingerprint::data`].
fn training_files(task: &'static TaskSpec, layout: &Layout, cfg: &XtremeConfig) -> Result<BTreeMap<String, String>> {
    let mut reads = Vec::new();
    if let TrainSource::Task(src, subset) = task.train_source {
        reads.push((lookup(src)?, subset.map(str::to_string), Split::Train));
    }
    if let Ok(d) = selection_data(task, None, layout, cfg.select_on_english_dev)? {
        reads.push((d.task, d.subset, d.split));
    }
    let mut files = Vec::new();
    for (t, subset, split) in reads {
        for f in expected_files(t, layout, split, subset.as_deref())? {
            if f.is_file() && !files.contains(&f) {
                files.push(f);
            }
        }
    }
    files.sort();
    Fingerprint::hash_data(&cfg.data_dir, &files)
}

/// The default row label: the encoder folder's name (its parent's for a run's `model/`).
pub fn model_label(encoder: &Path) -> String {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    match name(encoder).as_deref() {
        Some("model") => encoder.parent().and_then(name).unwrap_or_else(|| "model".into()),
        Some(n) => n.to_string(),
        None => "model".into(),
    }
}
