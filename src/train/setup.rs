//! From a run description ([`RunSpec`]: tasks, data folder, model, load mode, settings) to a
//! ready [`Trainer`]: task names are resolved and validated, data read and featurised, heads
//! built (tasks with the same registry head share one), the paper's per-task presets applied
//! where no value was given, and the model loaded in the requested mode.
//!
//! Presets (paper Tables 3 and 4): batch size and epochs per task; learning rate 1e-5 for
//! intermediate tasks, 5e-6 when MLM is co-trained, 3e-6 for XTREME target tasks. A run of
//! several tasks trains 3 epochs.

use crate::config::ModelConfig;
use crate::cpu::multitask::{assign_prefixes, read_heads, HeadSpec, MultiTaskModel};
use crate::error::{Error, Result};
use crate::tasks::{lookup, parse_run_name, read_split, Examples, Kind, Layout, Split, Suite, TaskSpec, TrainSource};
use crate::tokenize::Tokenizer;
use crate::train::batches::{FeatureConfig, Features};
use crate::train::trainer::{TrainConfig, TrainSource as Source, TrainTask, Trainer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How the model's weights are initialised (jiant's `--model_load_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// The encoder of an HF model folder; fresh heads.
    #[default]
    FromTransformers,
    /// The encoder of an xlt model folder (e.g. an intermediate run's `model/`); fresh heads,
    /// as the paper does between phases.
    Partial,
    /// Every tensor, heads included, from an xlt model folder with the same heads.
    All,
}

/// Everything that defines a training run; read from flags and/or a TOML file and written
/// back, completed, as `run_config.toml` in the run folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSpec {
    /// Run name: the run folder is `<exp_dir>/runs/<run_name>`.
    pub run_name: String,
    /// Experiment folder.
    pub exp_dir: PathBuf,
    /// Data folder (jiant layout when it has `configs/`, else XTREME's `download/`).
    pub data_dir: PathBuf,
    /// Tasks (jiant run names): `mnli`, `anli_plus`, `squad_v1`, `xnli`, `mlm`, ...
    pub tasks: Vec<String>,
    /// MLM corpora (`mlm_<lang>` configs in the jiant layout); empty: the single `mlm` config.
    pub mlm_languages: Vec<String>,
    /// Model folder (HF or xlt).
    pub model: PathBuf,
    /// How to load it.
    pub model_load_mode: LoadMode,
    /// tokenizer.json (default: the model folder's).
    pub tokenizer: Option<PathBuf>,
    /// Tokens per sequence.
    pub max_seq_length: usize,
    /// Examples per micro-batch for every task (default: the paper's per-task preset).
    pub train_batch_size: Option<usize>,
    /// Epochs (default: the task's preset for one task, 3 for several).
    pub num_train_epochs: Option<f64>,
    /// Peak learning rate (default: 1e-5, 5e-6 with MLM, 3e-6 for XTREME targets).
    pub learning_rate: Option<f64>,
    /// The remaining optimisation settings (learning rate and epochs are set from above).
    pub train: TrainConfig,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            run_name: "run".into(),
            exp_dir: PathBuf::from("experiments"),
            data_dir: PathBuf::from("data"),
            tasks: Vec::new(),
            mlm_languages: Vec::new(),
            model: PathBuf::new(),
            model_load_mode: LoadMode::FromTransformers,
            tokenizer: None,
            max_seq_length: 256,
            train_batch_size: None,
            num_train_epochs: None,
            learning_rate: None,
            train: TrainConfig::default(),
        }
    }
}

impl RunSpec {
    /// Reads a TOML run description (every field optional).
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| Error::format(path, format!("not a valid xlt run configuration: {e}")))
    }

    /// The completed description as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::Invalid(format!("cannot write the run configuration: {e}")))
    }

    /// `<exp_dir>/runs/<run_name>`.
    pub fn run_dir(&self) -> PathBuf {
        self.exp_dir.join("runs").join(&self.run_name)
    }
}

/// The paper's batch size and epochs for a task (Tables 3 and 4); (32, 3) otherwise.
pub fn preset(task: &str) -> (usize, f64) {
    match task {
        "anli_plus" | "mnli" | "snli" | "adversarial_nli" => (24, 2.0),
        "ccg" => (24, 15.0),
        "commonsenseqa" => (4, 10.0),
        "cosmosqa" => (4, 15.0),
        "hellaswag" => (24, 7.0),
        "qqp" => (24, 3.0),
        "squad_v1" | "squad_v2" => (8, 3.0),
        "mlm" => (8, 3.0),
        "xnli" => (4, 2.0),
        "pawsx" => (32, 5.0),
        "xquad" | "mlqa" | "tydiqa" => (16, 2.0),
        "udpos" | "panx" => (32, 10.0),
        _ => (32, 3.0),
    }
}

/// The layout of a data folder: jiant's when it has `configs/`, else XTREME's.
pub fn detect_layout(dir: &Path) -> Result<Layout> {
    if !dir.is_dir() {
        return Err(Error::Invalid(format!("data folder {} does not exist", dir.display())));
    }
    Ok(if dir.join("configs").is_dir() { Layout::Jiant(dir.to_path_buf()) } else { Layout::Xtreme(dir.to_path_buf()) })
}

/// One resolved task of a run: registry entry and subset, named as in jiant.
#[derive(Clone, Debug)]
pub struct ResolvedTask {
    /// The run name (`adversarial_nli_r1`, `xnli`, `mlm`).
    pub name: String,
    /// Registry entry.
    pub spec: &'static TaskSpec,
    /// Subset (ANLI round), if any.
    pub subset: Option<String>,
}

/// Resolves task names (expanding mixtures such as `anli_plus`); unknown names are errors.
pub fn resolve_tasks(names: &[String]) -> Result<Vec<ResolvedTask>> {
    let mut out: Vec<ResolvedTask> = Vec::new();
    for name in names {
        let spec = lookup(name).ok();
        let members: Vec<String> = match spec {
            Some(s) if !s.members.is_empty() => s.members.iter().map(|m| m.to_string()).collect(),
            _ => vec![name.clone()],
        };
        for m in members {
            let (spec, subset) = match lookup(&m) {
                Ok(s) if s.suite == Suite::Xtreme || s.subsets().is_empty() || s.kind == Kind::MaskedLm => (s, None),
                _ => parse_run_name(&m)?,
            };
            if spec.kind == Kind::Retrieval {
                return Err(Error::Invalid(format!(
                    "{} is evaluated from embeddings and has no training data; use xlt xtreme or xlt eval",
                    spec.name
                )));
            }
            if out.iter().any(|t| t.name == m) {
                return Err(Error::Invalid(format!("task {m} is listed twice")));
            }
            out.push(ResolvedTask { name: m, spec, subset });
        }
    }
    if out.is_empty() {
        return Err(Error::Invalid("no tasks given (--tasks)".into()));
    }
    Ok(out)
}

/// Where a task's training examples come from: (task, subset).
fn train_source(t: &ResolvedTask) -> Result<(&'static TaskSpec, Option<String>)> {
    match t.spec.train_source {
        TrainSource::Own => Ok((t.spec, t.subset.clone())),
        TrainSource::Task(src, subset) => Ok((lookup(src)?, subset.map(str::to_string))),
        TrainSource::Untrained => Err(Error::Invalid(format!("{} has no training data", t.spec.name))),
    }
}

/// The validation examples used for early stopping: the task's own English (or only) dev
/// split, else its training source's dev split, else none (a note is printed).
fn val_source(t: &ResolvedTask, layout: &Layout) -> Option<(Examples, Option<String>)> {
    let own_subset = match t.spec.suite {
        Suite::Xtreme => Some("en".to_string()),
        Suite::Intermediate => t.subset.clone(),
    };
    if let Ok(ex) = read_split(t.spec, layout, Split::Val, own_subset.as_deref()) {
        return Some((ex, own_subset));
    }
    let (src, subset) = train_source(t).ok()?;
    if src.name != t.spec.name {
        if let Ok(ex) = read_split(src, layout, Split::Val, subset.as_deref()) {
            return Some((ex, subset));
        }
    }
    eprintln!("note: {} has no validation split here; its last weights count as its best", t.name);
    None
}

/// Label strings of a task in id order (CCG: the tag ids as strings).
pub fn label_names(spec: &TaskSpec) -> Vec<String> {
    if spec.name == "ccg" {
        (0..crate::tasks::registry::CCG_NUM_TAGS).map(|i| i.to_string()).collect()
    } else {
        spec.labels.iter().map(|s| s.to_string()).collect()
    }
}

/// The head a task trains: the registry head name, its family and number of labels.
pub fn head_spec(spec: &TaskSpec) -> HeadSpec {
    HeadSpec::new(spec.head, spec.kind, label_names(spec).len())
}

/// A prepared run: the trainer and the resolved description.
pub struct PreparedRun<'a> {
    /// The trainer, positioned at step 0 or at the resumed checkpoint.
    pub trainer: Trainer<'a>,
    /// The completed run description.
    pub spec: RunSpec,
}

/// Loads the tokenizer of a run (its own file or the model folder's).
pub fn load_tokenizer(spec: &RunSpec) -> Result<Tokenizer> {
    let cfg = ModelConfig::from_file(&spec.model.join("config.json"))?;
    let path = spec.tokenizer.clone().unwrap_or_else(|| spec.model.join("tokenizer.json"));
    Tokenizer::from_file(&path, cfg.family)
}

/// Resolves, validates and loads everything for `spec`; completes the spec with the preset
/// values actually used. `tok` must be [`load_tokenizer`]'s result for the same spec.
pub fn prepare<'a>(mut spec: RunSpec, tok: &'a Tokenizer, resume: bool) -> Result<PreparedRun<'a>> {
    let resolved = resolve_tasks(&spec.tasks)?;
    let layout = detect_layout(&spec.data_dir)?;
    let with_mlm = resolved.iter().any(|t| t.spec.kind == Kind::MaskedLm);
    let all_targets = resolved.iter().all(|t| t.spec.suite == Suite::Xtreme);
    let lr = spec.learning_rate.unwrap_or(if all_targets {
        3e-6
    } else if with_mlm {
        5e-6
    } else {
        1e-5
    });
    let epochs = spec.num_train_epochs.unwrap_or(if spec.tasks.len() == 1 { preset(&spec.tasks[0]).1 } else { 3.0 });
    spec.learning_rate = Some(lr);
    spec.num_train_epochs = Some(epochs);
    spec.train.learning_rate = lr;
    spec.train.num_train_epochs = epochs;
    let features = FeatureConfig::new(spec.max_seq_length);
    let cfg = ModelConfig::from_file(&spec.model.join("config.json"))?;
    if spec.max_seq_length > cfg.max_seq_len() {
        return Err(Error::Invalid(format!(
            "max sequence length {} exceeds the model's {} positions",
            spec.max_seq_length,
            cfg.max_seq_len()
        )));
    }
    if tok.vocab_size() > cfg.vocab_size {
        return Err(Error::Invalid(format!(
            "the tokenizer has {} tokens but the model's vocabulary only {}",
            tok.vocab_size(),
            cfg.vocab_size
        )));
    }
    // Heads: one per registry head name, in first-use order.
    let mut heads: Vec<HeadSpec> = Vec::new();
    for t in &resolved {
        let h = head_spec(t.spec);
        match heads.iter().find(|o| o.name == h.name) {
            Some(o) if o.kind != h.kind || o.num_labels != h.num_labels => {
                return Err(Error::Invalid(format!("tasks sharing head {} disagree on its shape", h.name)))
            }
            Some(_) => {}
            None => heads.push(h),
        }
    }
    assign_prefixes(&mut heads);
    // Data, read and featurised before the model is loaded: bad data fails fast.
    let mut tasks = Vec::new();
    for t in &resolved {
        let (src, subset) = train_source(t)?;
        let sources = if t.spec.kind == Kind::MaskedLm && !spec.mlm_languages.is_empty() {
            spec.mlm_languages.iter().map(|l| Some(l.clone())).collect()
        } else {
            vec![subset]
        };
        let mut train = Vec::new();
        for s in sources {
            let ex = read_split(src, &layout, Split::Train, s.as_deref())
                .map_err(|e| Error::Invalid(format!("task {} training data: {e}", t.name)))?;
            let f = Features::new(tok, &ex, &features, true)
                .map_err(|e| Error::Invalid(format!("task {} training data: {e}", t.name)))?;
            if f.is_empty() {
                return Err(Error::Invalid(format!("task {}: the training split produced no features", t.name)));
            }
            train.push(Source { lang: s.unwrap_or_else(|| "en".into()), features: f });
        }
        let val = val_source(t, &layout);
        let head_name = t.spec.head;
        let head = heads.iter().position(|h| h.name == head_name).expect("every task's head was registered");
        let batch_size = spec.train_batch_size.unwrap_or(preset(t.spec.name).0);
        let (val, val_lang) = match val {
            Some((v, l)) => (Some(v), l),
            None => (None, None),
        };
        tasks.push(TrainTask {
            name: t.name.clone(),
            spec: t.spec,
            head,
            label_names: label_names(t.spec),
            train,
            val,
            val_lang,
            batch_size,
        });
    }
    let model = match spec.model_load_mode {
        LoadMode::FromTransformers | LoadMode::Partial => {
            MultiTaskModel::from_encoder_dir(&spec.model, heads, spec.train.seed)?
        }
        LoadMode::All => {
            let saved = read_heads(&spec.model)?;
            if saved != heads {
                return Err(Error::Invalid(format!(
                    "--model-load-mode all: {} holds heads {:?}, this run needs {:?}",
                    spec.model.display(),
                    saved.iter().map(|h| &h.name).collect::<Vec<_>>(),
                    heads.iter().map(|h| &h.name).collect::<Vec<_>>()
                )));
            }
            MultiTaskModel::from_dir(&spec.model)?
        }
    };
    let run_dir = spec.run_dir();
    let trainer = Trainer::new(model, tok, tasks, spec.train.clone(), features, &run_dir, resume)?;
    crate::fsutil::atomic_write(&run_dir.join("run_config.toml"), spec.to_toml()?.as_bytes())?;
    // The next phase loads `model/` with its tokenizer.
    let tok_src = spec.tokenizer.clone().unwrap_or_else(|| spec.model.join("tokenizer.json"));
    for dir in ["model", "best"] {
        let d = run_dir.join(dir);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        std::fs::copy(&tok_src, d.join("tokenizer.json")).map_err(|e| Error::io(&tok_src, e))?;
    }
    Ok(PreparedRun { trainer, spec })
}
