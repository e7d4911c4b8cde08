//! From a run description ([`RunSpec`]: tasks, data folder, model, load mode, settings) to a
//! ready [`Trainer`]: task names are resolved and validated, data read and featurised, heads
//! built (tasks with the same registry head share one), the paper's per-task presets applied
//! where no value was given, and the model loaded in the requested mode.
//!
//! Presets (paper Tables 3 and 4): batch size and epochs per task; learning rate 1e-5 for
//! intermediate tasks, 5e-6 when MLM is co-trained, 3e-6 for XTREME target tasks. A run of
//! several tasks trains 3 epochs.

use crate::config::ModelConfig;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::model::{assign_prefixes, read_heads, HeadSpec, HostModel};
use crate::tasks::{
    lookup, parse_run_name, read_split, split_present, Examples, Kind, Layout, Split, Suite, TaskSpec, TrainSource,
};
use crate::tokenize::Tokenizer;
use crate::train::batches::{FeatureConfig, Features};
use crate::train::trainer::{
    bad_setting, check_range, TrainConfig, TrainSource as Source, TrainTask, Trainer, ValSet, Validation,
};
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
    /// Select TyDiQA-GoldP on its English dev set, which is also XTREME's English test set
    /// (the selection is then labelled as optimistic); off: keep its last weights, as XTREME
    /// does.
    pub select_on_english_dev: bool,
    /// A model folder (a head run's `model/`) whose task-head tensors replace the fresh heads
    /// of this run (by name; every head tensor of this run must be there, with its shape).
    pub head_from: Option<PathBuf>,
    /// Keep the task heads fixed: no gradient, optimizer state or weight decay (needs
    /// `head_from`): runs that share a frozen head can be averaged (One For All & All For One).
    pub freeze_head: bool,
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
            select_on_english_dev: false,
            head_from: None,
            freeze_head: false,
            train: TrainConfig::default(),
        }
    }
}

impl RunSpec {
    /// Reads a TOML run description (every field optional).
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = crate::fsutil::read_text(path, Some("run configuration (TOML)"))?;
        toml::from_str(&text).map_err(|e| {
            Error::format(path, format!("not a valid xlt run configuration: {}", crate::error::toml_message(&text, &e)))
        })
    }

    /// The completed description as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::encode("the run configuration", e))
    }

    /// Checks every setting before anything is read or written: a run name that is one folder
    /// name, task and MLM language lists without empty entries, sizes of at least 1, and the
    /// optimisation settings ([`TrainConfig::validate`]). Errors name the flag.
    pub fn validate(&self) -> Result<()> {
        let name = self.run_name.as_str();
        if name.trim().is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(bad_setting("run_name", "a folder name (no slashes)", format!("{name:?}")));
        }
        if self.tasks.is_empty() {
            return Err(Error::Setting("no tasks: pass --tasks (e.g. --tasks mnli,squad_v1) or set `tasks`".into()));
        }
        if self.tasks.iter().any(|t| t.trim().is_empty()) {
            return Err(bad_setting(
                "tasks",
                "task names without empty entries",
                format!("{:?}", self.tasks.join(",")),
            ));
        }
        if self.mlm_languages.iter().any(|t| t.trim().is_empty()) {
            return Err(bad_setting(
                "mlm_languages",
                "languages without empty entries",
                format!("{:?}", self.mlm_languages.join(",")),
            ));
        }
        if self.freeze_head && self.head_from.is_none() {
            return Err(Error::Setting(
                "--freeze-head needs --head-from RUN/model: a frozen fresh head would stay random".into(),
            ));
        }
        if self.head_from.is_some() && self.model_load_mode == LoadMode::All {
            return Err(Error::Setting(
                "--head-from replaces the heads, --model-load-mode all loads them: choose one".into(),
            ));
        }
        if self.max_seq_length < 4 {
            return Err(bad_setting("max_seq_length", "at least 4 tokens", self.max_seq_length));
        }
        if self.train_batch_size == Some(0) {
            return Err(bad_setting("train_batch_size", "at least 1", 0));
        }
        if let Some(e) = self.num_train_epochs {
            check_range("num_train_epochs", e, e > 0.0, "a number of epochs > 0")?;
        }
        if let Some(lr) = self.learning_rate {
            check_range("learning_rate", lr, lr > 0.0 && lr <= 1.0, "a number in (0, 1]")?;
        }
        self.train.validate()
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
        return Err(Error::Setting(format!("data folder {} does not exist", dir.display())));
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
                return Err(Error::Setting(format!(
                    "{} is evaluated from embeddings and has no training data; use xlt xtreme or xlt eval",
                    spec.name
                )));
            }
            if out.iter().any(|t| t.name == m) {
                return Err(Error::Setting(format!("task {m} is listed twice")));
            }
            out.push(ResolvedTask { name: m, spec, subset });
        }
    }
    if out.is_empty() {
        return Err(Error::Setting("no tasks given (--tasks)".into()));
    }
    Ok(out)
}

/// Where a task's training examples come from: (task, subset).
fn train_source(t: &ResolvedTask) -> Result<(&'static TaskSpec, Option<String>)> {
    match t.spec.train_source {
        TrainSource::Own => Ok((t.spec, t.subset.clone())),
        TrainSource::Task(src, subset) => Ok((lookup(src)?, subset.map(str::to_string))),
        TrainSource::Untrained => Err(Error::Setting(format!("{} has no training data", t.spec.name))),
    }
}

/// Reads `split` of `task` for `subset` when the layout has it ([`split_present`]); a present
/// split that cannot be read is an error naming the file and line.
fn read_if_present(task: &TaskSpec, layout: &Layout, split: Split, subset: Option<&str>) -> Result<Option<Examples>> {
    if !split_present(task, layout, split, subset)? {
        return Ok(None);
    }
    read_split(task, layout, split, subset).map(Some)
}

/// `task`'s `split` for `subset` as a record names it, with the layout's name of the split:
/// `xnli en dev` (XTREME's download), `mnli val` (jiant's).
fn data_name(task: &TaskSpec, subset: Option<&str>, split: Split, layout: &Layout) -> String {
    let split = match (split, layout) {
        (Split::Val, Layout::Xtreme(_)) => "dev",
        (s, _) => s.jiant_key(),
    };
    match subset {
        Some(s) => format!("{} {s} {split}", task.name),
        None => format!("{} {split}", task.name),
    }
}

/// Why TyDiQA-GoldP keeps its last weights by default.
pub const TYDIQA_NO_SELECTION: &str = "TyDiQA-GoldP's English dev set is XTREME's English test set, so the last \
     weights are kept (XTREME's protocol; --select-on-english-dev selects on it, labelled as such)";

/// Where model selection reads the examples of a task.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectionData {
    /// The task the examples belong to (SQuAD v1.1 for XQuAD and MLQA).
    pub task: &'static TaskSpec,
    /// Its language or round.
    pub subset: Option<String>,
    /// The split.
    pub split: Split,
    /// How records name it (`squad_v1 val (SQuAD v1.1 dev)`).
    pub data: String,
    /// Set when the examples are also an evaluation set.
    pub caveat: Option<String>,
}

/// The data model selection scores `task` (of run subset `subset`) on in `layout`, never data
/// the task is reported on, or why there is none:
/// - XQuAD and MLQA: SQuAD v1.1 dev (their English "dev" is XQuAD's test set), as jiant does;
/// - TyDiQA-GoldP: none by default (its English dev is XTREME's English test set: the last
///   weights are kept, as in XTREME's sample implementation); with `select_on_english_dev`,
///   that English dev, labelled with a caveat;
/// - every other task: its own English (or only) dev split, else its training source's.
///
/// MLM is handled by the caller (one validation text per corpus).
pub fn selection_data(
    task: &'static TaskSpec,
    subset: Option<&str>,
    layout: &Layout,
    select_on_english_dev: bool,
) -> Result<std::result::Result<SelectionData, String>> {
    let found = |task, subset: Option<&str>, split, data: String, caveat| {
        Ok(Ok(SelectionData { task, subset: subset.map(str::to_string), split, data, caveat }))
    };
    match task.name {
        "xquad" | "mlqa" => {
            let squad = lookup("squad_v1")?;
            if split_present(squad, layout, Split::Val, None)? {
                return found(squad, None, Split::Val, "squad_v1 val (SQuAD v1.1 dev)".into(), None);
            }
            return Ok(Err(format!(
                "SQuAD v1.1 dev, on which {} is selected (its English dev is an evaluation set), is not in this \
                 data folder",
                task.name
            )));
        }
        "tydiqa" if !select_on_english_dev => return Ok(Err(TYDIQA_NO_SELECTION.into())),
        "tydiqa" => {
            // jiant calls the English GoldP dev set `val`; XTREME's download files it as test.
            let split = if matches!(layout, Layout::Jiant(_)) { Split::Val } else { Split::Test };
            if split_present(task, layout, split, Some("en"))? {
                return found(
                    task,
                    Some("en"),
                    split,
                    "tydiqa en dev (TyDiQA-GoldP English dev)".into(),
                    Some(
                        "selected on TyDiQA-GoldP's English dev set, which is also XTREME's English test set: the \
                         English score is optimistic"
                            .into(),
                    ),
                );
            }
            return Ok(Err("TyDiQA-GoldP's English dev set is not in this data folder".into()));
        }
        _ => {}
    }
    let own = match task.suite {
        Suite::Xtreme => Some("en"),
        Suite::Intermediate => subset,
    };
    if split_present(task, layout, Split::Val, own)? {
        return found(task, own, Split::Val, data_name(task, own, Split::Val, layout), None);
    }
    if let TrainSource::Task(src, src_subset) = task.train_source {
        let src = lookup(src)?;
        if src.name != task.name && split_present(src, layout, Split::Val, src_subset)? {
            return found(src, src_subset, Split::Val, data_name(src, src_subset, Split::Val, layout), None);
        }
    }
    Ok(Err(format!("a validation split of {} is not in this data folder", task.run_name(own))))
}

/// The validation data of run task `t` ([`selection_data`]; for MLM, the validation text of
/// each `--mlm-languages` corpus, or of the single `mlm` corpus). A split the data folder has
/// but that cannot be read is an error naming file and line.
fn validation(t: &ResolvedTask, layout: &Layout, spec: &RunSpec) -> Result<Validation> {
    if t.spec.kind == Kind::MaskedLm {
        let langs: Vec<Option<String>> = if spec.mlm_languages.is_empty() {
            vec![t.subset.clone()]
        } else {
            spec.mlm_languages.iter().map(|l| Some(l.clone())).collect()
        };
        let (mut text, mut found) = (Vec::new(), Vec::new());
        for l in &langs {
            if let Some(ex) = read_if_present(t.spec, layout, Split::Val, l.as_deref())? {
                text.extend(ex.into_text()?);
                found.push(l.clone().unwrap_or_else(|| "mlm".into()));
            }
        }
        if text.is_empty() {
            return Ok(Validation::None("MLM validation text is not in this data folder".into()));
        }
        let missing: Vec<String> =
            langs.iter().map(|l| l.clone().unwrap_or_else(|| "mlm".into())).filter(|l| !found.contains(l)).collect();
        if !missing.is_empty() {
            eprintln!("note: task {}: no MLM validation text for {}", t.name, missing.join(", "));
        }
        let data = format!("mlm val ({})", found.join(", "));
        return Ok(Validation::Set(ValSet { examples: Examples::Text(text), lang: None, data, caveat: None }));
    }
    match selection_data(t.spec, t.subset.as_deref(), layout, spec.select_on_english_dev)? {
        Ok(d) => {
            let examples = read_split(d.task, layout, d.split, d.subset.as_deref())?;
            // MLQA's normalisation needs a language: SQuAD dev is English.
            let lang = d.subset.clone().or_else(|| (t.spec.suite == Suite::Xtreme).then(|| "en".to_string()));
            Ok(Validation::Set(ValSet { examples, lang, data: d.data, caveat: d.caveat }))
        }
        Err(why) => Ok(Validation::None(why)),
    }
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

/// Replaces every task-head tensor of `model` with the tensor of the same name in the model
/// folder `src` (a head run's `model/`): a tensor missing there, or of another shape, is an
/// error naming it.
fn copy_heads(model: &mut HostModel, src: &Path) -> Result<()> {
    let other = HostModel::from_dir(src).map_err(|e| e.context(format!("--head-from {}", src.display())))?;
    for t in model.structure.layout.tensors.iter().filter(|t| !t.encoder) {
        let Some(o) = other.structure.layout.tensors.iter().find(|o| !o.encoder && o.name == t.name) else {
            return Err(Error::Setting(format!(
                "--head-from {}: it has no head tensor {} (its heads: {})",
                src.display(),
                t.name,
                other.structure.specs.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        if o.shape != t.shape {
            return Err(Error::Setting(format!(
                "--head-from {}: {} has shape {:?} there, this run needs {:?}",
                src.display(),
                t.name,
                o.shape,
                t.shape
            )));
        }
        model.params[t.range()].copy_from_slice(&other.params[o.range()]);
    }
    Ok(())
}

/// Loads the tokenizer of a run (its own file or the model folder's).
pub fn load_tokenizer(spec: &RunSpec) -> Result<Tokenizer> {
    let cfg = ModelConfig::from_file(&spec.model.join("config.json"))?;
    let path = spec.tokenizer.clone().unwrap_or_else(|| spec.model.join("tokenizer.json"));
    Tokenizer::from_file(&path, cfg.family)
}

impl RunSpec {
    /// Validates the description and fills in the preset values it leaves open (learning rate
    /// and epochs, paper Tables 3 and 4), so that two descriptions of the same run compare
    /// equal.
    pub fn complete(mut self) -> Result<RunSpec> {
        self.validate()?;
        let resolved = resolve_tasks(&self.tasks)?;
        let with_mlm = resolved.iter().any(|t| t.spec.kind == Kind::MaskedLm);
        let all_targets = resolved.iter().all(|t| t.spec.suite == Suite::Xtreme);
        let lr = self.learning_rate.unwrap_or(if all_targets {
            3e-6
        } else if with_mlm {
            5e-6
        } else {
            1e-5
        });
        let epochs =
            self.num_train_epochs.unwrap_or(if self.tasks.len() == 1 { preset(&self.tasks[0]).1 } else { 3.0 });
        self.learning_rate = Some(lr);
        self.num_train_epochs = Some(epochs);
        self.train.learning_rate = lr;
        self.train.num_train_epochs = epochs;
        Ok(self)
    }

    /// The run's identity, stored in its checkpoints: every setting that decides the training
    /// (the completed description without its folder paths and the evaluation batch size), the
    /// data folder, and the hash of the starting model (and of a separate tokenizer file).
    pub fn identity(&self) -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(self).map_err(|e| Error::encode("JSON", e))?;
        if let Some(m) = v.as_object_mut() {
            for key in ["exp_dir", "run_name", "model", "tokenizer", "data_dir"] {
                m.remove(key);
            }
            if let Some(t) = m.get_mut("train").and_then(|t| t.as_object_mut()) {
                t.remove("eval_batch_size");
                t.remove("do_val");
            }
        }
        let data = self.data_dir.canonicalize().unwrap_or_else(|_| self.data_dir.clone());
        let tokenizer = match &self.tokenizer {
            Some(p) => Some(crate::provenance::hash_file(p)?),
            None => None,
        };
        Ok(serde_json::json!({
            "settings": v,
            "data_dir": data.display().to_string(),
            "model": crate::provenance::model_hash(&self.model)?,
            "tokenizer": tokenizer,
        }))
    }
}

/// For a run about to be resumed (or found finished): an error when the checkpoint in its
/// folder `run_dir` was made with other settings, another data folder or another starting model
/// than `identity` ([`RunSpec::identity`] of the completed description), naming what differs.
/// A checkpoint that does not record its identity is accepted with a note. Nothing to compare
/// without a complete checkpoint.
pub fn check_identity(run_dir: &Path, identity: &serde_json::Value) -> Result<()> {
    let dir = run_dir.join("checkpoint");
    if !matches!(crate::train::checkpoint::find(&dir), crate::train::checkpoint::Found::Complete(_)) {
        return Ok(());
    }
    let state = crate::train::checkpoint::read_state(&dir)?;
    if state.run.is_null() {
        eprintln!("note: {} does not record the settings it was made with; they cannot be compared", dir.display());
        return Ok(());
    }
    let diffs: Vec<String> = crate::provenance::setting_differences(&state.run, identity)
        .into_iter()
        .map(|d| {
            if d.starts_with("setting model:") {
                "the starting model's files differ".to_string()
            } else if d.starts_with("setting tokenizer:") {
                "the tokenizer file differs".to_string()
            } else {
                d.replacen("setting settings.", "", 1).replacen("setting ", "", 1)
            }
        })
        .collect();
    if diffs.is_empty() {
        return Ok(());
    }
    let done = run_dir.join("done").is_file();
    Err(Error::Setting(format!(
        "{} {} with other settings than this call ({}); {}",
        run_dir.display(),
        if done { "is a finished run made" } else { "holds a checkpoint made" },
        diffs.join("; "),
        if done {
            "choose another --run-name to train with these settings"
        } else {
            "resume with the same settings, or choose another --run-name"
        }
    )))
}

/// The tokenizer files a run copies into every model folder it saves, as (source, name):
/// its `tokenizer.json` (the `tokenizer` file when one is set) and the companions the model
/// folder has (`tokenizer_config.json`, `special_tokens_map.json`, `sentencepiece.bpe.model`,
/// `vocab.txt`), so the saved folders load in xlt and in `transformers`.
pub fn tokenizer_files(spec: &RunSpec) -> Vec<(PathBuf, String)> {
    let mut out = vec![(
        spec.tokenizer.clone().unwrap_or_else(|| spec.model.join("tokenizer.json")),
        "tokenizer.json".to_string(),
    )];
    for name in crate::train::average::TOKENIZER_FILES.iter().filter(|n| **n != "tokenizer.json") {
        let p = spec.model.join(name);
        if p.is_file() {
            out.push((p, name.to_string()));
        }
    }
    out
}

/// Resolves, validates and loads everything for `spec`; completes the spec with the preset
/// values actually used; the model is built on `device`. `tok` must be [`load_tokenizer`]'s
/// result for the same spec. With `resume`, a checkpoint made with other settings is refused
/// ([`check_identity`]).
pub fn prepare<'a>(spec: RunSpec, tok: &'a Tokenizer, resume: bool, device: &Device) -> Result<PreparedRun<'a>> {
    let spec = spec.complete()?;
    let resolved = resolve_tasks(&spec.tasks)?;
    let layout = detect_layout(&spec.data_dir)?;
    let identity = spec.identity()?;
    if resume {
        check_identity(&spec.run_dir(), &identity)?;
    }
    let features = FeatureConfig::new(spec.max_seq_length);
    let cfg = ModelConfig::from_file(&spec.model.join("config.json"))?;
    if spec.max_seq_length > cfg.max_seq_len() {
        return Err(Error::Setting(format!(
            "--max-seq-length (max_seq_length): {} exceeds the model's {} positions",
            spec.max_seq_length,
            cfg.max_seq_len()
        )));
    }
    if tok.vocab_size() > cfg.vocab_size {
        return Err(Error::Setting(format!(
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
                return Err(Error::Setting(format!("tasks sharing head {} disagree on its shape", h.name)))
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
                .map_err(|e| e.context(format!("task {} training data", t.name)))?;
            let f = Features::new(tok, &ex, &features, true)
                .map_err(|e| e.context(format!("task {} training data", t.name)))?;
            if f.is_empty() {
                return Err(Error::Setting(format!("task {}: the training split produced no features", t.name)));
            }
            train.push(Source { lang: s.unwrap_or_else(|| "en".into()), features: f });
        }
        let val = validation(t, &layout, &spec).map_err(|e| e.context(format!("task {} validation data", t.name)))?;
        if let Validation::None(why) = &val {
            eprintln!("note: task {}: no model selection: {why}", t.name);
        }
        let head_name = t.spec.head;
        let head = heads.iter().position(|h| h.name == head_name).expect("every task's head was registered");
        let batch_size = spec.train_batch_size.unwrap_or(preset(t.spec.name).0);
        tasks.push(TrainTask {
            name: t.name.clone(),
            spec: t.spec,
            head,
            label_names: label_names(t.spec),
            train,
            val,
            batch_size,
        });
    }
    let model = match spec.model_load_mode {
        LoadMode::FromTransformers | LoadMode::Partial => {
            HostModel::from_encoder_dir(&spec.model, heads, spec.train.seed)?
        }
        LoadMode::All => {
            let saved = read_heads(&spec.model)?;
            if saved != heads {
                let names = |h: &[HeadSpec]| h.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ");
                return Err(Error::Setting(format!(
                    "--model-load-mode all: {} holds the heads {}, this run needs {}",
                    spec.model.display(),
                    names(&saved),
                    names(&heads)
                )));
            }
            HostModel::from_dir(&spec.model)?
        }
    };
    let mut model = model;
    if let Some(src) = &spec.head_from {
        copy_heads(&mut model, src)?;
        if spec.freeze_head {
            let n = model.structure.layout.freeze_heads();
            eprintln!("note: {n} head tensors from {} are frozen", src.display());
        }
    }
    let run_dir = spec.run_dir();
    let trainer = Trainer::new(model, tok, tasks, spec.train.clone(), features, &run_dir, resume, device)?
        .with_model_files(tokenizer_files(&spec))
        .with_identity(identity);
    crate::fsutil::atomic_write(&run_dir.join("run_config.toml"), spec.to_toml()?.as_bytes())?;
    Ok(PreparedRun { trainer, spec })
}
