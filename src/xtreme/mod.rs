//! `xlt xtreme`: fine-tune on each XTREME target task's English training set, evaluate
//! zero-shot on every language, and write results in XTREME's layout.
//!
//! Each trainable task is one run (`<out>/runs/<task>/`, the trainer's folder layout) with the
//! paper's Table 4 presets (learning rate 3e-6; XNLI batch 4 × 2 epochs, PAWS-X 32 × 5, QA
//! 16 × 2, POS / NER 32 × 10), the encoder loaded `partial`ly (fresh heads). XQuAD and MLQA
//! share one SQuAD run, as in XTREME. Every language whose files are present is then scored:
//! on its test split when that carries labels, else on its dev split. Predictions of every
//! available test split go to `<out>/predictions/<task>/test-<lang>.{tsv,json}` (XTREME's
//! submission layout); BUCC and Tatoeba come straight from the encoder's embeddings
//! ([`retrieval`]). A finished task leaves `<out>/<task>.result.json`; re-running skips it, and
//! an interrupted fine-tuning resumes from its checkpoint. `results.json`, `results.md` and
//! `results.svg` ([`crate::report`]) are rewritten after every task.

pub mod retrieval;

use crate::cpu::multitask::MultiTaskModel;
use crate::error::{Error, Result};
use crate::eval::{eval_model, evaluate, write_predictions, EvalOptions, EvalResult};
use crate::fsutil::atomic_write;
use crate::report::{LangScore, ModelResults, TaskResult};
use crate::tasks::{expected_files, expected_splits, lookup, read_split, Kind, Layout, Metric, Split, TaskSpec};
use crate::train::setup::{detect_layout, label_names, load_tokenizer, prepare, LoadMode, RunSpec};
use crate::train::trainer::TrainConfig;
use retrieval::{evaluate_bucc, evaluate_tatoeba, RetrievalOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The nine XTREME tasks in XTREME's order.
pub const XTREME_TASKS: [&str; 9] =
    ["pawsx", "xnli", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba"];

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
    /// Optimisation settings shared by the runs (seed, max steps, evaluation interval, ...).
    pub train: TrainConfig,
    /// Show progress bars.
    pub progress: bool,
    /// The GPU the fine-tuning steps run on, and its precision (`None`: the CPU).
    pub gpu: Option<crate::cuda::model::OnGpu>,
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::SquadEmF1 | Metric::MlqaEmF1 | Metric::Squad2EmF1 => "f1/em",
        Metric::SeqevalF1 | Metric::BuccF1 => "f1",
        _ => "acc",
    }
}

/// The run a task's fine-tuning happens in (XQuAD and MLQA share SQuAD's).
fn run_task(task: &str) -> &str {
    match task {
        "mlqa" => "xquad",
        t => t,
    }
}

/// Whether every file `split` of `task` needs for `lang` exists in `layout`.
fn has_files(task: &TaskSpec, layout: &Layout, split: Split, lang: &str) -> bool {
    expected_files(task, layout, split, Some(lang)).is_ok_and(|f| !f.is_empty() && f.iter().all(|p| p.exists()))
}

/// The languages of `task` whose `split` files are present, read. A present but malformed
/// file is an error, not a missing language.
fn readable(task: &TaskSpec, layout: &Layout, split: Split) -> Result<Vec<(String, crate::tasks::Examples)>> {
    task.languages
        .iter()
        .filter(|l| has_files(task, layout, split, l))
        .map(|l| Ok((l.to_string(), read_split(task, layout, split, Some(l))?)))
        .collect()
}

fn lang_score(r: &EvalResult) -> Option<LangScore> {
    let primary = r.primary?;
    Some(LangScore { primary, secondary: r.metrics.get("em").copied() })
}

/// Fine-tunes (or reuses the finished run of) a trainable task and scores its languages.
fn trainable(cfg: &XtremeConfig, task: &'static TaskSpec, layout: &Layout) -> Result<TaskResult> {
    let qa = task.kind == Kind::SpanQa;
    let max_len = cfg.max_seq_length.unwrap_or(if qa { 384 } else { 128 });
    let name = run_task(task.name);
    let mut spec = RunSpec {
        run_name: name.to_string(),
        exp_dir: cfg.out.clone(),
        data_dir: cfg.data_dir.clone(),
        tasks: vec![name.to_string()],
        model: cfg.encoder.clone(),
        model_load_mode: LoadMode::Partial,
        max_seq_length: max_len,
        train_batch_size: cfg.train_batch_size,
        num_train_epochs: cfg.num_train_epochs,
        learning_rate: cfg.learning_rate,
        train: cfg.train.clone(),
        ..RunSpec::default()
    };
    let model_cfg = crate::config::ModelConfig::from_file(&cfg.encoder.join("config.json"))?;
    spec.max_seq_length = spec.max_seq_length.min(model_cfg.max_seq_len());
    let run_dir = spec.run_dir();
    let tok = load_tokenizer(&spec)?;
    if !run_dir.join("done").is_file() {
        let resume = run_dir.join("checkpoint").exists();
        let prepared = prepare(spec.clone(), &tok, resume)?;
        let mut trainer = prepared.trainer;
        if !cfg.progress {
            trainer = trainer.quiet();
        }
        if let Some((gpu, precision)) = &cfg.gpu {
            trainer.use_gpu(gpu.clone(), *precision)?;
        }
        eprintln!("{}: fine-tuning {} steps into {}", task.name, trainer.total_steps(), run_dir.display());
        trainer.run(name, None)?;
    }
    // Zero-shot scoring on the GPU when there is one.
    let mut model = eval_model(MultiTaskModel::from_dir(&run_dir.join("model"))?, cfg.gpu.as_ref())?;
    let labels = label_names(task);
    let opts = EvalOptions::new(cfg.train.eval_batch_size, spec.max_seq_length);
    let mut languages = BTreeMap::new();
    let mut splits = Vec::new();
    let tests = readable(task, layout, Split::Test)?;
    for (lang, ex) in &tests {
        let r = evaluate(model.as_mut(), 0, &tok, task, &labels, ex, Some(lang), &opts)?;
        let ext = if qa { "json" } else { "tsv" };
        let path = cfg.out.join("predictions").join(task.name).join(format!("test-{lang}.{ext}"));
        write_predictions(&path, &r.predictions)?;
        if let Some(s) = lang_score(&r) {
            languages.insert(lang.clone(), s);
            splits.push("test");
        }
    }
    for (lang, ex) in readable(task, layout, Split::Val)? {
        if languages.contains_key(&lang) {
            continue;
        }
        let r = evaluate(model.as_mut(), 0, &tok, task, &labels, &ex, Some(&lang), &opts)?;
        if let Some(s) = lang_score(&r) {
            languages.insert(lang, s);
            splits.push("dev");
        }
    }
    let missing: Vec<&str> = task.languages.iter().copied().filter(|l| !languages.contains_key(*l)).collect();
    if !missing.is_empty() {
        eprintln!("note: {}: no labelled data for {}", task.name, missing.join(" "));
    }
    Ok(TaskResult {
        task: task.name.into(),
        metric: metric_name(task.metric).into(),
        split: split_of(&splits),
        languages,
    })
}

fn split_of(splits: &[&str]) -> String {
    match (splits.contains(&"test"), splits.contains(&"dev")) {
        (true, true) => "test+dev".into(),
        (false, true) => "dev".into(),
        _ => "test".into(),
    }
}

fn retrieval_task(cfg: &XtremeConfig, task: &'static TaskSpec, layout: &Layout) -> Result<TaskResult> {
    let model_cfg = crate::config::ModelConfig::from_file(&cfg.encoder.join("config.json"))?;
    let opts = RetrievalOptions {
        max_seq_len: cfg.max_seq_length.unwrap_or(512).min(model_cfg.max_seq_len()),
        batch_size: cfg.train.eval_batch_size,
        gpu: cfg.gpu.clone(),
        ..RetrievalOptions::default()
    };
    let present: Vec<&str> = task
        .languages
        .iter()
        .copied()
        .filter(|l| expected_splits(task, layout, Some(l)).into_iter().all(|sp| has_files(task, layout, sp, l)))
        .collect();
    if present.is_empty() {
        return Err(Error::Invalid(format!("{}: no language files in {}", task.name, cfg.data_dir.display())));
    }
    let pred_dir = cfg.out.join("predictions");
    let scores = if task.name == "bucc2018" {
        evaluate_bucc(&cfg.encoder, layout, &present, &pred_dir, &opts)?
    } else {
        evaluate_tatoeba(&cfg.encoder, layout, &present, &pred_dir, &opts)?
    };
    let mut languages = BTreeMap::new();
    let mut splits = Vec::new();
    for s in scores {
        if let Some(p) = s.primary {
            languages.insert(s.lang, LangScore { primary: p, secondary: None });
            splits.push(if s.split == "dev" { "dev" } else { "test" });
        }
    }
    if languages.is_empty() {
        eprintln!("note: {}: predictions written, no gold alignment to score them", task.name);
    }
    Ok(TaskResult {
        task: task.name.into(),
        metric: metric_name(task.metric).into(),
        split: split_of(&splits),
        languages,
    })
}

/// Runs every requested task (skipping finished ones) and writes the results; returns them.
pub fn run(cfg: &XtremeConfig) -> Result<ModelResults> {
    let layout = detect_layout(&cfg.data_dir)?;
    let names: Vec<String> =
        if cfg.tasks.is_empty() { XTREME_TASKS.iter().map(|s| s.to_string()).collect() } else { cfg.tasks.clone() };
    let mut specs = Vec::new();
    for n in &names {
        let t = lookup(n)?;
        if !XTREME_TASKS.contains(&t.name) {
            return Err(Error::Invalid(format!(
                "{n} is not an XTREME task; expected one of {}",
                XTREME_TASKS.join(" ")
            )));
        }
        specs.push(t);
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    let mut results = ModelResults { model: cfg.model_name.clone(), tasks: Vec::new() };
    for task in specs {
        let done = cfg.out.join(format!("{}.result.json", task.name));
        let result = if done.is_file() {
            let text = std::fs::read_to_string(&done).map_err(|e| Error::io(&done, e))?;
            eprintln!("{}: already done ({})", task.name, done.display());
            serde_json::from_str(&text).map_err(|e| Error::format(&done, e.to_string()))?
        } else {
            let r = if task.kind == Kind::Retrieval {
                retrieval_task(cfg, task, &layout)?
            } else {
                trainable(cfg, task, &layout)?
            };
            let text = serde_json::to_string_pretty(&r).map_err(|e| Error::Invalid(e.to_string()))?;
            atomic_write(&done, text.as_bytes())?;
            r
        };
        eprintln!(
            "{}: average {} over {} languages",
            task.name,
            result.average().map_or("-".into(), |a| format!("{a:.1}")),
            result.languages.len()
        );
        results.tasks.push(result);
        crate::report::write_all(&cfg.out, std::slice::from_ref(&results))?;
    }
    Ok(results)
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
