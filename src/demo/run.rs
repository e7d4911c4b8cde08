//! The demo run: a multi-task fine-tuning of the shipped tiny model on the four synthetic
//! task families of [`super::data`] in `en` (with MLM co-training on English raw text), then zero-shot evaluation of every task on `en` and `xx` test sets, written as
//! `results.json` / `results.md` / `results.svg` ([`crate::report`]) and printed as a table
//! with each task's chance level.
//!
//! The run folder (`<out>/run/`) is the trainer's: `--resume` continues an interrupted demo
//! from its checkpoint, bit for bit.

use super::data::{self, DemoSplits};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::eval::{evaluate_languages, EvalOptions, LangData};
use crate::model::{assign_prefixes, HeadSpec, HostModel, TaskModel};
use crate::model::{init::init_params, weights, EncoderParams, ParamLayout};
use crate::report::{ModelResults, TaskResult};
use crate::tasks::{lookup, Examples, Kind, Metric, Suite, TaskSpec, TrainSource};
use crate::tokenize::Tokenizer;
use crate::train::batches::{FeatureConfig, Features};
use crate::train::trainer::{TrainConfig, TrainSource as Source, TrainTask, Trainer, ValSet, Validation};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Seed of the shipped model's random initialisation.
pub const INIT_SEED: u64 = 20_200_813;

const fn demo_task(name: &'static str, kind: Kind, labels: &'static [&'static str], metric: Metric) -> TaskSpec {
    TaskSpec {
        name,
        jiant_task: name,
        suite: Suite::Intermediate,
        kind,
        labels,
        languages: &["en", "xx"],
        test_only_languages: &[],
        variants: &[],
        members: &[],
        head: name,
        train_source: TrainSource::Own,
        metric,
    }
}

const FOUR: &[&str] = &["0", "1", "2", "3"];

/// The four demo tasks, one per head family.
pub static DEMO_TASKS: [TaskSpec; 4] = [
    demo_task("pairs", Kind::Classification, &data::PAIR_LABELS, Metric::Accuracy),
    demo_task("choice", Kind::MultipleChoice, FOUR, Metric::Accuracy),
    demo_task("span", Kind::SpanQa, &[], Metric::SquadEmF1),
    demo_task("tagging", Kind::Tagging, data::TAG_LABELS, Metric::SeqevalF1),
];

/// Chance level of each demo task's primary score, in percent (span QA and entity F1 are
/// near 0 for a model that has learned nothing).
pub fn chance(task: &str) -> f64 {
    match task {
        "pairs" => 100.0 / 3.0,
        "choice" => 25.0,
        _ => 0.0,
    }
}

/// Settings of a demo run.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Output folder.
    pub out: PathBuf,
    /// Model folder (default: the shipped `assets/demo-model`).
    pub model_dir: PathBuf,
    /// Continue an interrupted run.
    pub resume: bool,
    /// Optimizer steps.
    pub steps: u64,
    /// Training examples per task.
    pub train_examples: usize,
    /// Dev and test examples per task and language.
    pub eval_examples: usize,
    /// Seed of data, heads, order, dropout and masking.
    pub seed: u64,
    /// Show the progress bar.
    pub progress: bool,
    /// Where training and evaluation run.
    pub device: Device,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            out: PathBuf::from("xlt-demo"),
            model_dir: data::default_model_dir(),
            resume: false,
            steps: 1500,
            train_examples: 2000,
            eval_examples: 200,
            seed: 1,
            progress: true,
            device: Device::Cpu,
        }
    }
}

/// Writes the shipped model's weights: the encoder of [`data::model_config`] initialised as
/// HF does from [`INIT_SEED`] (`model.safetensors`), next to its config and tokenizer.
pub fn write_initial_model(dir: &Path) -> Result<()> {
    data::write_model_files(dir)?;
    let cfg = data::model_config();
    let mut layout = ParamLayout::default();
    EncoderParams::register(&mut layout, &cfg, false);
    let mut params = vec![0.0; layout.total];
    init_params(&mut params, &layout, &cfg, INIT_SEED);
    weights::save_dir(dir, &cfg, &layout, &params, &|_| true)
}

struct DemoData {
    train: Examples,
    dev: Examples,
    tests: Vec<(String, Examples)>,
}

fn splits_of<T>(en: DemoSplits<T>, xx: DemoSplits<T>, wrap: fn(Vec<T>) -> Examples) -> DemoData {
    DemoData {
        train: wrap(en.train),
        dev: wrap(en.dev),
        tests: vec![("en".into(), wrap(en.test)), ("xx".into(), wrap(xx.test))],
    }
}

fn demo_data(spec: &TaskSpec, cfg: &DemoConfig) -> Result<DemoData> {
    let (n, m, s) = (cfg.train_examples, cfg.eval_examples, cfg.seed);
    Ok(match spec.kind {
        Kind::Classification => {
            splits_of(data::pair_task("en", n, m, s)?, data::pair_task("xx", n, m, s)?, Examples::Pair)
        }
        Kind::MultipleChoice => {
            splits_of(data::choice_task("en", n, m, s)?, data::choice_task("xx", n, m, s)?, Examples::MultipleChoice)
        }
        Kind::SpanQa => splits_of(data::span_task("en", n, m, s)?, data::span_task("xx", n, m, s)?, Examples::Span),
        _ => splits_of(data::tagging_task("en", n, m, s)?, data::tagging_task("xx", n, m, s)?, Examples::Tagging),
    })
}

/// Trains and evaluates the demo; returns the results (also written under `cfg.out`).
pub fn run(cfg: &DemoConfig) -> Result<ModelResults> {
    if !cfg.model_dir.join("model.safetensors").is_file() {
        return Err(Error::Data(format!(
            "{} has no model.safetensors; the demo model ships with the repository",
            cfg.model_dir.display()
        )));
    }
    let model_cfg = crate::config::ModelConfig::from_file(&cfg.model_dir.join("config.json"))?;
    let tok = Tokenizer::from_file(&cfg.model_dir.join("tokenizer.json"), model_cfg.family)?;
    let features = FeatureConfig::new(data::MAX_SEQ_LEN);
    let mlm = lookup("mlm")?;
    let mut heads: Vec<HeadSpec> = DEMO_TASKS.iter().map(|t| HeadSpec::new(t.head, t.kind, t.labels.len())).collect();
    heads.push(HeadSpec::new(mlm.head, Kind::MaskedLm, 0));
    assign_prefixes(&mut heads);
    let mut tasks = Vec::new();
    let mut evals = Vec::new();
    for (i, spec) in DEMO_TASKS.iter().enumerate() {
        let d = demo_data(spec, cfg)?;
        tasks.push(TrainTask {
            name: spec.name.into(),
            spec,
            head: i,
            label_names: spec.labels.iter().map(|s| s.to_string()).collect(),
            train: vec![Source { lang: "en".into(), features: Features::new(&tok, &d.train, &features, true)? }],
            val: Validation::Set(ValSet {
                examples: d.dev,
                lang: Some("en".into()),
                data: format!("{} en dev", spec.name),
                caveat: None,
            }),
            batch_size: 32,
        });
        evals.push(d.tests);
    }
    // MLM co-training on English raw text. (Raw `xx` text would train embeddings for `xx`
    // words the task heads never see in training; on this synthetic pair that costs the
    // zero-shot transfer more than it gains.)
    let lang = data::TRAIN_LANGUAGE;
    let ex = Examples::Text(data::mlm_text(lang, cfg.train_examples, cfg.seed)?);
    let text = vec![Source { lang: lang.into(), features: Features::new(&tok, &ex, &features, true)? }];
    tasks.push(TrainTask {
        name: "mlm".into(),
        spec: mlm,
        head: DEMO_TASKS.len(),
        label_names: Vec::new(),
        train: text,
        val: Validation::None("MLM is co-trained; selection uses the four tasks' dev sets".into()),
        batch_size: 16,
    });
    let train = TrainConfig {
        learning_rate: 1e-3,
        max_steps: Some(cfg.steps),
        seed: cfg.seed,
        eval_every_steps: (cfg.steps / 4).max(1),
        eval_subset_num: cfg.eval_examples,
        no_improvements_for_n_evals: 0,
        train_examples_cap: None,
        do_val: false,
        ..TrainConfig::default()
    };
    let model = HostModel::from_encoder_dir(&cfg.model_dir, heads, cfg.seed)?;
    let run_dir = cfg.out.join("run");
    let identity = serde_json::json!({
        "settings": {
            "steps": cfg.steps, "seed": cfg.seed, "train_examples": cfg.train_examples,
            "eval_examples": cfg.eval_examples,
        },
        "model": crate::provenance::model_hash(&cfg.model_dir)?,
    });
    if cfg.resume {
        crate::train::setup::check_identity(&run_dir, &identity)?;
    }
    let done = cfg.resume && run_dir.join("done").is_file();
    if done {
        eprintln!("{} is complete; evaluating its model", run_dir.display());
    }
    let mut model: Box<dyn TaskModel> = if done {
        cfg.device.eval_model(HostModel::from_dir(&run_dir.join("model"))?)?
    } else {
        let mut trainer = Trainer::new(model, &tok, tasks, train, features.clone(), &run_dir, cfg.resume, &cfg.device)?
            .with_model_files(vec![(cfg.model_dir.join("tokenizer.json"), "tokenizer.json".into())])
            .with_identity(identity)
            .with_progress(cfg.progress);
        trainer.run("demo", None)?;
        // The run ends on its best weights (restored into the model it trained).
        trainer.model
    };
    let weights = crate::provenance::Weights::of_dir(&run_dir.join("model"))?;
    let identity_model = crate::provenance::model_hash(&cfg.model_dir)?;
    let opts = EvalOptions::new(64, data::MAX_SEQ_LEN);
    let mut results = ModelResults { model: "demo".into(), tasks: Vec::new() };
    for (i, spec) in DEMO_TASKS.iter().enumerate() {
        let labels: Vec<String> = spec.labels.iter().map(|s| s.to_string()).collect();
        let data: Vec<LangData> = std::mem::take(&mut evals[i])
            .into_iter()
            .map(|(lang, examples)| LangData { lang, split: "test".into(), examples, predictions: None })
            .collect();
        let mut languages = BTreeMap::new();
        for r in evaluate_languages(model.as_mut(), i, &tok, spec, &labels, data, &opts)? {
            let s = r.result.lang_score(&r.split);
            let s = s.ok_or_else(|| Error::Data(format!("demo {} test has no labels", spec.name)))?;
            languages.insert(r.lang, s);
        }
        results.tasks.push(TaskResult {
            task: spec.name.into(),
            metric: spec.metric.label().into(),
            split: "test".into(),
            languages,
            weights: Some(weights.clone()),
            encoder: Some(format!("{} (xxh3 {})", cfg.model_dir.display(), &identity_model[..16])),
            notes: Vec::new(),
        });
    }
    crate::report::write_all(&cfg.out, std::slice::from_ref(&results))?;
    Ok(results)
}

/// The printed table: task, metric, chance, `en` (trained) and `xx` (zero-shot) scores.
pub fn table(results: &ModelResults) -> String {
    let mut s = String::from("task      metric  chance     en   xx (zero-shot)\n");
    for t in &results.tasks {
        let score = |l: &str| t.languages.get(l).map_or("-".to_string(), |v| format!("{:.1}", v.primary));
        s.push_str(&format!(
            "{:<9} {:<7} {:>6.1} {:>6} {:>6}\n",
            t.task,
            t.metric,
            chance(&t.task),
            score("en"),
            score("xx")
        ));
    }
    s
}
