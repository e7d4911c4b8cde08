//! `xlt demo --reorder`: the reordering study (`xlt reorder-study`) in miniature on the demo's
//! synthetic languages. Does English training data reordered to the target language's word
//! order transfer better?
//!
//! 1. **Data** ([`super::data`]): the tagging task's `en` training sentences with their `xx`
//!    translations and the generator's gold links, and a separate parallel corpus for the
//!    aligner. `xx` puts verbs last, postpositions after their noun, time adjuncts first and a
//!    name's type-noun modifier after the name; half of the names are ambiguous, and only the
//!    side of their modifier tells their category.
//! 2. **Aligners**: the shipped model as it is (random weights: the aligner before fine-tuning)
//!    and the shipped model fine-tuned on the parallel corpus with awesome-align's translation
//!    language modelling (`tlm`; [`train_aligner`] says why not also `so` from random weights;
//!    `xlt align-train`), or a given folder (`--aligner`). Each
//!    aligns the tagging training pairs (`xlt align`, softmax at [`ReorderConfig::layer`]) and
//!    is scored against the gold links (AER, `xlt score --task alignment`).
//! 3. **Reordering** (`xlt reorder`, PAN-X layout): the English training set permuted towards
//!    `xx` with each aligner's links, and with the gold links (the oracle, labelled as such).
//! 4. **Fine-tuning**: the tagging task on each condition (the baseline: English as it is), from
//!    the same starting weights (the shipped model) and seed, for each of several seeds; the
//!    weights are selected on English dev in its original order.
//! 5. **Evaluation**: zero-shot on the `xx` test set (and `en` test), seqeval F1; the table
//!    (conditions × languages, mean ± std over seeds, best mean per column in bold) is
//!    `results.md` with the aligners' scores, the reordering diagnostics and every run's weights;
//!    `results.json` holds every run's results ([`crate::report`]'s layout, a row per condition
//!    and seed) and `reorder.json` the whole study.
//!
//! Every intermediate file stays in the output folder: `data/` (the corpus and the tagging
//! pairs as `src ||| tgt` lines, their gold links, the English training file and its reordered
//! versions), `align/` (each aligner's links), `aligner/` (the fine-tuned aligner's run) and
//! `runs/` (one trainer run per condition and seed).

use super::data::{self, ParallelSentence};
use super::run::DEMO_TASKS;
use crate::align::aligner::{align_lines, AlignSettings};
use crate::align::extract::Method;
use crate::align::pharaoh::{Kind, Link};
use crate::align::quality::{score, AlignmentScores};
use crate::align::reorder::{reorder_file, Diagnostics, Layout, ReorderRequest};
use crate::align::train::{align_train, AlignTrainRequest, Objective};
use crate::device::Device;
use crate::embed::EncoderWeights;
use crate::error::{Error, Result};
use crate::eval::{evaluate_languages, EvalOptions, LangData};
use crate::fsutil::atomic_write;
use crate::model::{assign_prefixes, HeadSpec, HostModel};
use crate::provenance::Weights;
use crate::report::{ModelResults, TaskResult};
use crate::tasks::tagging::read_token_file;
use crate::tasks::{Examples, Split, TaggingExample, TaskSpec};
use crate::tokenize::Tokenizer;
use crate::train::batches::{FeatureConfig, Features};
use crate::train::trainer::{TrainConfig, TrainSource, TrainTask, Trainer, ValSet, Validation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The demo task the study fine-tunes: tagging, the one whose labels depend on word order.
const TASK: usize = 3;

/// Settings of `xlt demo --reorder`.
#[derive(Clone, Debug)]
pub struct ReorderConfig {
    /// Output folder.
    pub out: PathBuf,
    /// The starting model of the aligner and of every fine-tuning (default: the shipped
    /// `assets/demo-model`).
    pub model_dir: PathBuf,
    /// An aligner folder to use instead of fine-tuning one (`--aligner`).
    pub aligner: Option<PathBuf>,
    /// Seed of the data and of the aligner's fine-tuning.
    pub data_seed: u64,
    /// Seeds of the fine-tuning runs: every condition is run once per seed.
    pub seeds: Vec<u64>,
    /// English tagging training sentences (the pairs that are aligned and reordered).
    pub train_examples: usize,
    /// Dev and test sentences per language.
    pub eval_examples: usize,
    /// Lines of the aligner's parallel corpus.
    pub parallel_examples: usize,
    /// Optimizer steps of each fine-tuning run.
    pub steps: u64,
    /// Optimizer steps of the aligner's fine-tuning.
    pub aligner_steps: u64,
    /// The aligner's fine-tuning objectives (see [`train_aligner`] for the default).
    pub aligner_objectives: Vec<Objective>,
    /// hidden_states index the aligners read (0 = embeddings), also self-training's layer.
    pub layer: usize,
    /// awesome-align's softmax threshold.
    pub threshold: f32,
    /// Show progress bars.
    pub progress: bool,
    /// Where training, alignment and evaluation run.
    pub device: Device,
}

impl Default for ReorderConfig {
    fn default() -> Self {
        ReorderConfig {
            out: PathBuf::from("xlt-demo-reorder"),
            model_dir: data::default_model_dir(),
            aligner: None,
            data_seed: 1,
            seeds: vec![1, 2, 3],
            train_examples: 1000,
            eval_examples: 300,
            parallel_examples: 2000,
            steps: 600,
            aligner_steps: 4000,
            aligner_objectives: vec![Objective::Tlm],
            layer: 0,
            threshold: crate::align::aligner::DEFAULT_THRESHOLD,
            progress: true,
            device: Device::Cpu,
        }
    }
}

/// One aligner: where it came from, its links' quality and what reordering with them did.
#[derive(Clone, Debug, Serialize)]
pub struct AlignerReport {
    /// `untrained` (the starting model), `trained` (fine-tuned, `tlm` by default), `given`
    /// (`--aligner`), or `gold` (the generator's links: the oracle).
    pub name: String,
    /// Its model folder (none for the gold links).
    pub folder: Option<PathBuf>,
    /// Against the gold links, on the tagging training pairs.
    pub scores: AlignmentScores,
    /// The reordering of the English training set with its links.
    pub diagnostics: Diagnostics,
}

/// One condition: its training data and its results per seed.
#[derive(Clone, Debug, Serialize)]
pub struct ConditionReport {
    /// The row label: `baseline`, `reordered (… aligner)`, `reordered (gold links, oracle)`.
    pub name: String,
    /// The aligner whose links reordered the data (none for the baseline).
    pub aligner: Option<String>,
    /// The English training file it was fine-tuned on.
    pub train_file: PathBuf,
    /// Per seed: the results (tagging F1 on the `en` and `xx` test sets, with their weights).
    pub runs: Vec<(u64, ModelResults)>,
}

impl ConditionReport {
    /// The F1 of every seed on `lang`.
    pub fn scores(&self, lang: &str) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|(_, r)| r.tasks.first().and_then(|t| t.languages.get(lang)).map(|s| s.primary))
            .collect()
    }
}

/// What the study produced.
#[derive(Clone, Debug, Serialize)]
pub struct ReorderResults {
    /// The aligners, the gold links last.
    pub aligners: Vec<AlignerReport>,
    /// The conditions, the baseline first.
    pub conditions: Vec<ConditionReport>,
    /// The settings, for the record.
    pub settings: serde_json::Value,
}

/// Mean and sample standard deviation (0 for one value); `None` for none.
pub fn mean_std(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    Some((mean, var.sqrt()))
}

/// Checks the settings before anything is written.
fn check(cfg: &ReorderConfig) -> Result<()> {
    if cfg.seeds.is_empty() {
        return Err(Error::Setting("--seeds: give at least one seed".into()));
    }
    if cfg.train_examples == 0 || cfg.eval_examples == 0 || cfg.parallel_examples == 0 {
        return Err(Error::Setting("the demo needs at least one example of each kind".into()));
    }
    if cfg.steps == 0 {
        return Err(Error::Setting("--steps must be at least 1".into()));
    }
    if !cfg.model_dir.join("model.safetensors").is_file() {
        return Err(Error::Data(format!(
            "{} has no model.safetensors; the demo model ships with the repository",
            cfg.model_dir.display()
        )));
    }
    if let Some(a) = &cfg.aligner {
        if !a.join("config.json").is_file() {
            return Err(Error::Setting(format!("--aligner {}: not a model folder (no config.json)", a.display())));
        }
    }
    Ok(())
}

/// Writes `lines` as a file, a newline after each.
fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> Result<()> {
    let text: String = lines.map(|l| l + "\n").collect();
    atomic_write(path, text.as_bytes())
}

/// The English tagging sentences as a PAN-X training file: `word\ttag` lines, a blank line
/// after each sentence.
fn write_tagging(path: &Path, examples: &[TaggingExample]) -> Result<()> {
    let mut text = String::new();
    for ex in examples {
        for (i, w) in ex.words.iter().enumerate() {
            let tag = ex.tags.as_ref().and_then(|t| t.get(i)).map_or("O", |&t| data::TAG_LABELS[t]);
            text += &format!("{w}\t{tag}\n");
        }
        text.push('\n');
    }
    atomic_write(path, text.as_bytes())
}

/// Reads a training file [`write_tagging`] or `xlt reorder` wrote.
fn read_tagging(path: &Path) -> Result<Vec<TaggingExample>> {
    let text = crate::fsutil::read_text(path, Some("tagging file (word<TAB>tag lines)"))?;
    read_token_file(path, &text, data::TAG_LABELS, Split::Train)
}

/// The aligner: `model_dir` fine-tuned on the parallel corpus `corpus` (`src ||| tgt` lines)
/// with awesome-align's objectives through `xlt align-train` ([`align_train`]), with the
/// learning rate raised for a random-weight model and [`ReorderConfig::aligner_steps`] steps.
/// Returns the fine-tuned model folder (`<out>/model/`).
///
/// The default objective is translation language modelling (`tlm`) alone: from the shipped
/// model's random weights, self-training (`so`) reinforces the alignments the model starts
/// with, which on this tiny model are dominated by the position embeddings (both sides are
/// encoded separately from position 0), and collapses to the diagonal `i-i` (measured: AER
/// 0.68, no sentence reordered, after 600 steps of `so` + `tlm`). `so` sharpens an aligner
/// that already aligns, as awesome-align's pre-trained mBERT does; `aligner_objectives` takes
/// it back.
pub fn train_aligner(cfg: &ReorderConfig, corpus: &Path, out: &Path) -> Result<PathBuf> {
    let mut req = AlignTrainRequest::new(cfg.model_dir.clone(), corpus.to_path_buf(), out.to_path_buf());
    req.objectives = cfg.aligner_objectives.clone();
    req.layer = cfg.layer.max(1);
    req.threshold = cfg.threshold;
    req.batch_size = 16;
    req.train.learning_rate = 1e-3;
    req.train.warmup_proportion = 0.1;
    req.train.max_steps = Some(cfg.aligner_steps);
    req.train.seed = cfg.data_seed;
    remove_run(out)?;
    align_train(&req, &cfg.device, false, cfg.progress, None)?;
    Ok(out.join("model"))
}

/// Removes a run folder of an earlier demo in the same output folder.
fn remove_run(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Aligns the tagging training pairs with the model in `folder`; returns the links per pair.
fn align_with(cfg: &ReorderConfig, folder: &Path, lines: &[String]) -> Result<Vec<Vec<Link>>> {
    let (encoder, tok) = EncoderWeights::read(folder)?.encoder_on(&cfg.device)?;
    let settings =
        AlignSettings { layer: cfg.layer, method: Method::Softmax { threshold: cfg.threshold }, batch_size: 64 };
    let a = align_lines(encoder.as_ref(), &tok, lines, &settings)?;
    Ok(a.links.into_iter().map(Option::unwrap_or_default).collect())
}

/// Fine-tunes the tagging task on `train` from `cfg.model_dir` with `seed`, selects on English
/// dev, and scores the `en` and `xx` test sets.
#[allow(clippy::too_many_arguments)]
fn fine_tune(
    cfg: &ReorderConfig,
    tok: &Tokenizer,
    name: &str,
    run_dir: &Path,
    train: &[TaggingExample],
    dev: &[TaggingExample],
    tests: &[(&str, &[TaggingExample])],
    seed: u64,
) -> Result<ModelResults> {
    let spec: &'static TaskSpec = &DEMO_TASKS[TASK];
    let features = FeatureConfig::new(data::MAX_SEQ_LEN);
    let mut heads = vec![HeadSpec::new(spec.head, spec.kind, spec.labels.len())];
    assign_prefixes(&mut heads);
    let labels: Vec<String> = spec.labels.iter().map(|s| s.to_string()).collect();
    let ex = Examples::Tagging(train.to_vec());
    let task = TrainTask {
        name: spec.name.into(),
        spec,
        head: 0,
        label_names: labels.clone(),
        train: vec![TrainSource { lang: "en".into(), features: Features::new(tok, &ex, &features, true)? }],
        val: Validation::Set(ValSet {
            examples: Examples::Tagging(dev.to_vec()),
            lang: Some("en".into()),
            data: format!("{} en dev", spec.name),
            caveat: None,
        }),
        batch_size: 32,
    };
    let train_cfg = TrainConfig {
        learning_rate: 1e-3,
        max_steps: Some(cfg.steps),
        seed,
        eval_every_steps: (cfg.steps / 5).max(1),
        eval_subset_num: cfg.eval_examples,
        no_improvements_for_n_evals: 0,
        train_examples_cap: None,
        do_val: false,
        ..TrainConfig::default()
    };
    let model = HostModel::from_encoder_dir(&cfg.model_dir, heads, seed)?;
    remove_run(run_dir)?;
    let mut trainer = Trainer::new(model, tok, vec![task], train_cfg, features, run_dir, false, &cfg.device)?
        .with_model_files(vec![(cfg.model_dir.join("tokenizer.json"), "tokenizer.json".into())])
        .with_progress(cfg.progress);
    trainer.run(name, None)?;
    let mut model = trainer.model;
    let weights = Weights::of_dir(&run_dir.join("model"))?;
    let hash = crate::provenance::model_hash(&cfg.model_dir)?;
    let data: Vec<LangData> = tests
        .iter()
        .map(|(lang, ex)| LangData {
            lang: lang.to_string(),
            split: "test".into(),
            examples: Examples::Tagging(ex.to_vec()),
            predictions: None,
        })
        .collect();
    let opts = EvalOptions::new(64, data::MAX_SEQ_LEN);
    let mut languages = BTreeMap::new();
    for r in evaluate_languages(model.as_mut(), 0, tok, spec, &labels, data, &opts)? {
        let s = r.result.lang_score(&r.split);
        languages.insert(r.lang, s.ok_or_else(|| Error::Data("demo tagging test has no labels".into()))?);
    }
    Ok(ModelResults {
        model: name.to_string(),
        tasks: vec![TaskResult {
            task: spec.name.into(),
            metric: spec.metric.label().into(),
            split: "test".into(),
            languages,
            weights: Some(weights),
            encoder: Some(format!("{} (xxh3 {})", cfg.model_dir.display(), &hash[..16])),
            notes: Vec::new(),
        }],
    })
}

/// Runs the study (see the module documentation) into `cfg.out`.
pub fn run(cfg: &ReorderConfig) -> Result<ReorderResults> {
    check(cfg)?;
    let dirs = ["data", "align", "runs"].map(|d| cfg.out.join(d));
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let [data_dir, align_dir, runs_dir] = &dirs;
    // 1. Data.
    let (n, m, s) = (cfg.train_examples, cfg.eval_examples, cfg.data_seed);
    let en = data::tagging_task("en", n, m, s)?;
    let xx = data::tagging_task("xx", n, m, s)?;
    let pairs: Vec<ParallelSentence> = data::tagging_parallel(n, 0, s)?.train;
    let corpus = data::parallel_text(cfg.parallel_examples, s)?;
    let corpus_file = data_dir.join("parallel.txt");
    write_lines(&corpus_file, corpus.iter().map(ParallelSentence::pair_line))?;
    write_lines(&data_dir.join("parallel.gold.txt"), corpus.iter().map(ParallelSentence::gold_line))?;
    let lines: Vec<String> = pairs.iter().map(ParallelSentence::pair_line).collect();
    write_lines(&data_dir.join("train.pairs.txt"), lines.iter().cloned())?;
    let gold_file = data_dir.join("train.gold.txt");
    write_lines(&gold_file, pairs.iter().map(ParallelSentence::gold_line))?;
    let english = data_dir.join("train-en.tsv");
    write_tagging(&english, &en.train)?;
    let gold: Vec<Vec<(Link, Kind)>> =
        pairs.iter().map(|p| p.gold.iter().map(|&l| (l, Kind::Sure)).collect()).collect();

    // 2. Aligners and their links.
    let mut aligners: Vec<(String, Option<PathBuf>)> = vec![("untrained".into(), Some(cfg.model_dir.clone()))];
    match &cfg.aligner {
        Some(a) => aligners.push(("given".into(), Some(a.clone()))),
        None => {
            let objectives: Vec<&str> = cfg.aligner_objectives.iter().map(|o| o.name()).collect();
            eprintln!("fine-tuning the aligner ({}) on {} parallel lines", objectives.join(" + "), corpus.len());
            let folder = train_aligner(cfg, &corpus_file, &cfg.out.join("aligner"))?;
            aligners.push(("trained".into(), Some(folder)));
        }
    }
    aligners.push(("gold".into(), None));
    let mut reports = Vec::new();
    for (name, folder) in &aligners {
        let (links, align_file) = match folder {
            Some(f) => {
                let links = align_with(cfg, f, &lines)?;
                let file = align_dir.join(format!("{name}.txt"));
                write_lines(&file, links.iter().map(|l| crate::align::pharaoh::format_line(l)))?;
                (links, file)
            }
            None => (pairs.iter().map(|p| p.gold.clone()).collect(), gold_file.clone()),
        };
        let scores = score(&gold, &links);
        let diagnostics = reorder_file(&ReorderRequest {
            layout: Layout::Panx,
            input: english.clone(),
            alignments: align_file,
            output: data_dir.join(format!("train-en.reordered-{name}.tsv")),
            punct: false,
        })?;
        eprintln!("aligner {name}: AER {:.3}; reordering: {diagnostics}", scores.aer);
        reports.push(AlignerReport { name: name.clone(), folder: folder.clone(), scores, diagnostics });
    }

    // 3. Fine-tuning per condition and seed.
    let tok = Tokenizer::from_file(
        &cfg.model_dir.join("tokenizer.json"),
        crate::config::ModelConfig::from_file(&cfg.model_dir.join("config.json"))?.family,
    )?;
    let mut conditions: Vec<ConditionReport> =
        vec![ConditionReport { name: "baseline".into(), aligner: None, train_file: english.clone(), runs: Vec::new() }];
    for r in &reports {
        conditions.push(ConditionReport {
            name: condition_name(&r.name),
            aligner: Some(r.name.clone()),
            train_file: data_dir.join(format!("train-en.reordered-{}.tsv", r.name)),
            runs: Vec::new(),
        });
    }
    let tests: [(&str, &[TaggingExample]); 2] = [("en", &en.test), ("xx", &xx.test)];
    for c in &mut conditions {
        let train = read_tagging(&c.train_file)?;
        for &seed in &cfg.seeds {
            let folder = format!("{}-seed{seed}", c.aligner.as_deref().unwrap_or("baseline"));
            let name = format!("{} · seed {seed}", c.name);
            eprintln!("condition {name}");
            let r = fine_tune(cfg, &tok, &name, &runs_dir.join(&folder), &train, &en.dev, &tests, seed)?;
            c.runs.push((seed, r));
        }
    }

    // 4. Tables.
    let settings = serde_json::json!({
        "model": cfg.model_dir, "aligner": cfg.aligner, "data_seed": cfg.data_seed, "seeds": cfg.seeds,
        "train_examples": cfg.train_examples, "eval_examples": cfg.eval_examples,
        "parallel_examples": cfg.parallel_examples, "steps": cfg.steps, "aligner_steps": cfg.aligner_steps,
        "aligner_objectives": cfg.aligner_objectives.iter().map(|o| o.name()).collect::<Vec<_>>(),
        "layer": cfg.layer, "threshold": cfg.threshold,
    });
    let results = ReorderResults { aligners: reports, conditions, settings };
    let models: Vec<ModelResults> =
        results.conditions.iter().flat_map(|c| c.runs.iter().map(|(_, r)| r.clone())).collect();
    crate::report::write_all(&cfg.out, &models)?;
    atomic_write(&cfg.out.join("results.md"), render(&results).as_bytes())?;
    let json = serde_json::to_string_pretty(&results).map_err(|e| Error::encode("reorder results", e))?;
    atomic_write(&cfg.out.join("reorder.json"), json.as_bytes())?;
    Ok(results)
}

/// The row label of the condition reordered with `aligner`'s links.
fn condition_name(aligner: &str) -> String {
    match aligner {
        "gold" => "reordered (gold links, oracle)".into(),
        "untrained" => "reordered (untrained aligner)".into(),
        "trained" => "reordered (trained aligner)".into(),
        other => format!("reordered ({other} aligner)"),
    }
}

fn cell(v: Option<(f64, f64)>, best: bool, seeds: usize) -> String {
    match v {
        None => "–".into(),
        Some((m, sd)) => {
            let s = if seeds > 1 { format!("{m:.1} ± {sd:.1}") } else { format!("{m:.1}") };
            if best {
                format!("**{s}**")
            } else {
                s
            }
        }
    }
}

/// The printed table: conditions × languages (mean ± std over seeds of the test F1; best mean
/// per column marked with `*`), with each condition's aligner AER and how much its data moved.
pub fn table(r: &ReorderResults) -> String {
    let seeds = r.conditions.first().map_or(0, |c| c.runs.len());
    let best = |lang: &str| {
        r.conditions.iter().filter_map(|c| mean_std(&c.scores(lang)).map(|x| x.0)).fold(f64::NEG_INFINITY, f64::max)
    };
    let (be, bx) = (best("en"), best("xx"));
    let mut s = format!(
        "tagging F1, test ({seeds} seed{}; * best)   en              xx (zero-shot)   aligner AER  reordered\n",
        if seeds == 1 { "" } else { "s" }
    );
    for c in &r.conditions {
        let f = |lang: &str, b: f64| match mean_std(&c.scores(lang)) {
            Some((m, sd)) => format!("{m:5.1} ± {sd:4.1}{}", if m == b { "*" } else { " " }),
            None => "–".into(),
        };
        let a = c.aligner.as_ref().and_then(|a| r.aligners.iter().find(|x| &x.name == a));
        let aer = a.map_or("–".into(), |a| format!("{:.3}", a.scores.aer));
        let moved =
            a.and_then(|a| a.diagnostics.changed_share()).map_or("–".into(), |x| format!("{:.0}%", 100.0 * x));
        s += &format!("{:<40} {:<15} {:<16} {:>11}  {:>9}\n", c.name, f("en", be), f("xx", bx), aer, moved);
    }
    s
}

/// `results.md`: the conditions table, the aligners, and every run's numbers with their weights.
pub fn render(r: &ReorderResults) -> String {
    let seeds: Vec<u64> = r.conditions.first().map(|c| c.runs.iter().map(|x| x.0).collect()).unwrap_or_default();
    let n = seeds.len();
    let mut s = String::from("# Reordered English training data: the demo's tagging task\n\n");
    s += &format!(
        "Seqeval F1 on the test sets: `en` (the training language) and `xx` (zero-shot). Each condition \
         fine-tunes the shipped model on the English training set, as it is (baseline) or reordered towards \
         `xx` with an aligner's links (or the generator's gold links: an oracle no real study has), with the \
         same seed and steps; the weights are the run's best on English dev (original order). Mean ± sample \
         std over fine-tuning seeds {seeds:?}; best mean per column in bold.\n\n\
         | condition | en | xx |\n|---|---:|---:|\n"
    );
    let best = |lang: &str| {
        r.conditions.iter().filter_map(|c| mean_std(&c.scores(lang)).map(|x| x.0)).fold(f64::NEG_INFINITY, f64::max)
    };
    for c in &r.conditions {
        let f = |lang: &str| {
            let v = mean_std(&c.scores(lang));
            cell(v, v.is_some_and(|v| v.0 == best(lang)), n)
        };
        s += &format!("| {} | {} | {} |\n", c.name, f("en"), f("xx"));
    }
    s += "\n## Aligners\n\nOn the English tagging training sentences and their translations, against the \
          generator's gold links (`data/train.gold.txt`; `xlt score --task alignment` computes the same), and what \
          reordering the English training set with their links did.\n\n\
          | aligner | AER | precision | recall | sentences reordered | mean Kendall τ | unaligned words |\n\
          |---|---:|---:|---:|---:|---:|---:|\n";
    for a in &r.aligners {
        let d = &a.diagnostics;
        let pct = |x: Option<f64>| x.map_or("–".into(), |x| format!("{:.0}%", 100.0 * x));
        let what = match &a.folder {
            Some(f) => format!("{} (`{}`)", a.name, f.display()),
            None => "gold links (oracle)".into(),
        };
        s += &format!(
            "| {what} | {:.3} | {:.3} | {:.3} | {} | {} | {} |\n",
            a.scores.aer,
            a.scores.precision,
            a.scores.recall,
            pct(d.changed_share()),
            d.mean_kendall_tau().map_or("–".into(), |t| format!("{t:.2}")),
            pct(d.unaligned_share()),
        );
    }
    s += "\n## Every run\n\nScores on the test split of each language; weights as the run recorded them.\n\n\
          | condition | seed | en | xx | weights |\n|---|---:|---:|---:|---|\n";
    for c in &r.conditions {
        for (seed, m) in &c.runs {
            let t = m.tasks.first();
            let v = |lang: &str| {
                t.and_then(|t| t.languages.get(lang)).map_or("–".into(), |x| format!("{:.1}", x.primary))
            };
            let w = t.and_then(|t| t.weights.as_ref()).map_or("–".into(), |w| w.describe());
            s += &format!("| {} | {seed} | {} | {} | {w} |\n", c.name, v("en"), v("xx"));
        }
    }
    s
}
