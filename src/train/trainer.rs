//! The training loop (jiant's runner, reference §0.5), over a [`TaskModel`] on any device.
//!
//! One optimizer step samples one task ([`TaskSampler`], p ∝ min(n, K)), runs
//! `gradient_accumulation_steps` micro-batches of it (dynamic padding, dropout and MLM masking
//! seeded by (run seed, step, micro-batch)), averages the gradients, clips them to
//! `max_grad_norm`, sets the linear warmup/decay learning rate and takes an AdamW step.
//! Every `eval_every_steps` (and at the end) each task with a validation set is scored on its
//! first `eval_subset_num` examples; the mean of the task scores decides early stopping and
//! which weights are kept in `best/`, which are restored at the end and saved as `model/`.
//!
//! Run folder:
//! - `checkpoint/`: the latest complete state (weights, AdamW moments, sampler, data orders,
//!   early-stopping state), replaced atomically; `--resume` continues from it bit for bit.
//! - `best/`: the best weights so far (a model folder: HF layout + head list).
//! - `model/`: the final model (best weights restored), input of the next phase.
//! - `snapshots/step-<N>/` + `snapshots/manifest.json`: optional snapshots for averaging.
//! - `log.jsonl`: one JSON object per train step and per evaluation.
//! - `val_metrics.json`: final scores on the full validation sets; `done`: written last.
//!
//! Gradient clipping runs once per optimizer step on the accumulated gradient (PyTorch's usual
//! recipe); jiant clips after every micro-batch, which only differs with accumulation.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::eval::{evaluate, EvalOptions};
use crate::features::mlm::{language_weights, sample_index, LANGUAGE_ALPHA};
use crate::fsutil::atomic_write;
use crate::model::DropoutCfg;
use crate::model::{AdamWConfig, HostModel, OptimizerState, StepConfig, TaskModel};
use crate::provenance::{Selection, SelectionSource, Weights};
use crate::rng::{derive, Rng};
use crate::tasks::{Examples, Kind, TaskSpec};
use crate::tokenize::Tokenizer;
use crate::train::average::{Manifest, ManifestEntry};
use crate::train::batches::{FeatureConfig, Features};
use crate::train::checkpoint::{find, load_checkpoint, save_checkpoint, Found};
use crate::train::sampler::{EpochOrder, EpochState, SamplerState, SamplingMode, TaskSampler, DEFAULT_CAP};
use crate::train::schedule::LinearSchedule;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// RNG streams derived from the run seed.
const STREAM_DROPOUT: u64 = 0xd5;
const STREAM_MASK: u64 = 0x3a5c;
const STREAM_LANGUAGE: u64 = 0x1a46;
const STREAM_ORDER: u64 = 0x0dde;
const STREAM_SAMPLER: u64 = 0x5a3;

/// When to take snapshots for checkpoint averaging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotEvery {
    /// No snapshots.
    #[default]
    Never,
    /// At the end of every epoch (the step budget divided by the epoch count).
    Epoch,
    /// Every N optimizer steps.
    Steps(u64),
}

/// Optimisation and bookkeeping settings of a run (the effective configuration is written
/// into the run folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Fraction of the steps spent warming up linearly from 0.
    pub warmup_proportion: f64,
    /// Decoupled weight decay (not on biases and LayerNorm weights).
    pub weight_decay: f64,
    /// AdamW ε.
    pub adam_epsilon: f64,
    /// AdamW β1.
    pub adam_beta1: f64,
    /// AdamW β2.
    pub adam_beta2: f64,
    /// Global gradient-norm limit (0: no clipping).
    pub max_grad_norm: f64,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Epochs over each task's (capped) training set, for the step budget.
    pub num_train_epochs: f64,
    /// Step budget overriding the epochs.
    pub max_steps: Option<u64>,
    /// K of the sampler and the step budget (examples-proportional mixing); None: uncapped.
    pub train_examples_cap: Option<usize>,
    /// Seed of data order, task sampling, head initialisation, dropout and MLM masking.
    pub seed: u64,
    /// Whether dropout is on during training.
    pub dropout: bool,
    /// Evaluate every N steps (0: only at the end).
    pub eval_every_steps: u64,
    /// Validation examples per task used while training (the first N).
    pub eval_subset_num: usize,
    /// Examples per evaluation batch.
    pub eval_batch_size: usize,
    /// Stop after this many evaluations without improvement (0: never stop early).
    pub no_improvements_for_n_evals: u64,
    /// Write `checkpoint/` every N steps (0: at every evaluation and at the end).
    pub save_checkpoint_every_steps: u64,
    /// Snapshots for averaging.
    pub snapshot_every: SnapshotEvery,
    /// Score the full validation sets at the end (`val_metrics.json`).
    pub do_val: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            learning_rate: 1e-5,
            warmup_proportion: 0.1,
            weight_decay: 0.01,
            adam_epsilon: 1e-8,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            max_grad_norm: 1.0,
            gradient_accumulation_steps: 1,
            num_train_epochs: 3.0,
            max_steps: None,
            train_examples_cap: Some(DEFAULT_CAP),
            seed: 0,
            dropout: true,
            eval_every_steps: 1000,
            eval_subset_num: 500,
            eval_batch_size: 64,
            no_improvements_for_n_evals: 30,
            save_checkpoint_every_steps: 0,
            snapshot_every: SnapshotEvery::Never,
            do_val: true,
        }
    }
}

/// One training source of a task: a language (or the only split) and its features.
pub struct TrainSource {
    /// Language or corpus name (`en` for English tasks).
    pub lang: String,
    /// Training features.
    pub features: Features,
}

/// A collated micro-batch: a head's, or the self-training objective's at a layer.
enum MicroBatch {
    Task(crate::model::TaskBatch),
    SelfTraining(crate::model::SoBatch, usize),
}

/// One task of a run: its data and which head it trains.
pub struct TrainTask {
    /// Unique name in the run (a jiant run name: `xnli`, `squad_v1`, `mlm`).
    pub name: String,
    /// Registry entry.
    pub spec: &'static TaskSpec,
    /// Index of its head in the model.
    pub head: usize,
    /// Label strings in id order (empty for span QA and MLM).
    pub label_names: Vec<String>,
    /// Training data: one source, or one per language for MLM (sampled with α = 0.3).
    pub train: Vec<TrainSource>,
    /// The data model selection scores this task on, or why there is none.
    pub val: Validation,
    /// Training examples per micro-batch.
    pub batch_size: usize,
}

/// Validation data of one task, used for early stopping and choosing the best weights.
pub struct ValSet {
    /// The examples (all of them; evaluations during training use the first
    /// `eval_subset_num`).
    pub examples: Examples,
    /// Their language, when it matters for scoring (MLQA's normalisation).
    pub lang: Option<String>,
    /// Where they come from, for the record: task, language and split (`squad_v1 val`).
    pub data: String,
    /// Set when these examples are also an evaluation set (see [`crate::provenance::Selection`]).
    pub caveat: Option<String>,
}

/// A task's validation data, or the reason it has none (then it never takes part in
/// selection, and a run without any keeps its last weights).
pub enum Validation {
    /// Score the task on this set.
    Set(ValSet),
    /// No validation, and why.
    None(String),
}

impl Validation {
    /// The set, if there is one.
    pub fn set(&self) -> Option<&ValSet> {
        match self {
            Validation::Set(v) => Some(v),
            Validation::None(_) => None,
        }
    }
}

impl TrainTask {
    fn size(&self) -> usize {
        self.train.iter().map(|s| s.features.len()).sum()
    }
}

/// Everything that changes during a run besides the weights and the optimizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: u64,
    /// The task sampler.
    pub sampler: SamplerState,
    /// One data order per (task, source).
    pub orders: Vec<Vec<EpochState>>,
    /// Best aggregate validation score so far.
    pub best_score: Option<f64>,
    /// Step of the best score.
    pub best_step: Option<u64>,
    /// Evaluations since the best.
    pub evals_without_improvement: u64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Step of the last evaluation and its score.
    pub last_eval: Option<(u64, f64)>,
}

/// Selection score per task (None for a split without labels).
pub type TaskScores = BTreeMap<String, Option<f64>>;

/// Every metric of each task's last full validation (`acc`, `f1`, `em`, `loss`,
/// `perplexity`, ...).
pub type TaskMetrics = BTreeMap<String, BTreeMap<String, f64>>;

/// The score model selection compares for one task: jiant's major metric, (F1 + EM) / 2 for
/// the SQuAD family, the primary score otherwise (minus the perplexity for MLM).
pub fn selection_score(spec: &TaskSpec, r: &crate::eval::EvalResult) -> Option<f64> {
    match spec.kind {
        Kind::SpanQa => Some((r.metrics.get("f1")? + r.metrics.get("em")?) / 2.0),
        _ => r.primary,
    }
}

/// The name of [`selection_score`] for a task.
pub fn selection_metric(spec: &TaskSpec) -> &'static str {
    match spec.kind {
        Kind::SpanQa => "(f1 + em) / 2",
        Kind::MaskedLm => "-perplexity",
        _ => match spec.metric {
            crate::tasks::Metric::AccuracyAndF1 => "(acc + f1) / 2",
            crate::tasks::Metric::SeqevalF1 => "f1",
            _ => "acc",
        },
    }
}

/// What a finished run reports.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Steps taken.
    pub steps: u64,
    /// The step budget.
    pub total_steps: u64,
    /// Best aggregate validation score and its step.
    pub best_score: Option<f64>,
    /// Step whose weights were kept.
    pub best_step: Option<u64>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Full validation scores per task (the selection score), when measured.
    pub val: BTreeMap<String, Option<f64>>,
    /// Every metric of the full validations (MLM: `loss` and `perplexity`).
    pub val_metrics: TaskMetrics,
    /// Which weights `model/` holds.
    pub weights: Weights,
    /// Where the final model was written.
    pub model_dir: PathBuf,
}

/// Appends JSON lines to `log.jsonl`, flushed per line.
struct JsonlLog {
    file: std::fs::File,
    path: PathBuf,
}

impl JsonlLog {
    fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(JsonlLog { file, path: path.to_path_buf() })
    }

    fn write(&mut self, v: serde_json::Value) -> Result<()> {
        writeln!(self.file, "{v}").map_err(|e| Error::io(&self.path, e))
    }
}

/// A training run: model, optimizer, data, schedule and state.
pub struct Trainer<'a> {
    /// The model being trained, on its device.
    pub model: Box<dyn TaskModel>,
    /// AdamW's hyper-parameters (the learning rate follows the schedule).
    adamw: AdamWConfig,
    tok: &'a Tokenizer,
    tasks: Vec<TrainTask>,
    cfg: TrainConfig,
    features: FeatureConfig,
    run_dir: PathBuf,
    sampler: TaskSampler,
    orders: Vec<Vec<EpochOrder>>,
    schedule: LinearSchedule,
    /// Run state (step, early stopping).
    pub state: TrainerState,
    log: JsonlLog,
    progress: bool,
    /// Files copied into every saved model folder (the tokenizer's): source and name there.
    model_files: Vec<(PathBuf, String)>,
    /// The run's name in records and the snapshot manifest (set by [`Trainer::run`]).
    run_label: String,
    /// The run's identity (settings, starting model), stored in every checkpoint.
    identity: serde_json::Value,
}

/// The step budget: `max_steps`, else jiant's Σ_t epochs · ceil(min(n_t, K) / (b_t · acc)).
pub fn total_steps(sizes_and_batches: &[(usize, usize)], cfg: &TrainConfig) -> Result<u64> {
    if let Some(n) = cfg.max_steps {
        return Ok(n);
    }
    let acc = cfg.gradient_accumulation_steps as u128;
    let mut total = 0.0f64;
    for &(n, b) in sizes_and_batches {
        let n = cfg.train_examples_cap.map_or(n, |k| n.min(k)) as u128;
        total += cfg.num_train_epochs * n.div_ceil(b as u128 * acc) as f64;
    }
    Ok(total.floor() as u64)
}

/// The error for setting `key` (`--key-with-dashes` on the command line, `key` in a TOML
/// file) whose value `found` is not `expected`.
pub fn bad_setting(key: &str, expected: &str, found: impl std::fmt::Display) -> Error {
    Error::Setting(format!("--{} ({key}): expected {expected}, found {found}", key.replace('_', "-")))
}

/// Checks that `x` is finite and inside `range` (written as `shown` in the message).
pub(crate) fn check_range(key: &str, x: f64, ok: bool, shown: &str) -> Result<()> {
    if x.is_finite() && ok {
        Ok(())
    } else {
        Err(bad_setting(key, shown, x))
    }
}

impl TrainConfig {
    /// Checks every optimisation setting before anything is written: the learning rate, weight
    /// decay, Adam's ε and βs, the clipping norm, the warmup proportion and the epochs finite
    /// and in range; counts at least 1. The error names the flag (and its TOML key).
    pub fn validate(&self) -> Result<()> {
        let lr = self.learning_rate;
        check_range("learning_rate", lr, lr > 0.0 && lr <= 1.0, "a number in (0, 1]")?;
        let wd = self.weight_decay;
        check_range("weight_decay", wd, (0.0..1.0).contains(&wd), "a number in [0, 1)")?;
        let eps = self.adam_epsilon;
        check_range("adam_epsilon", eps, eps > 0.0 && eps < 1.0, "a number in (0, 1)")?;
        for (key, b) in [("adam_beta1", self.adam_beta1), ("adam_beta2", self.adam_beta2)] {
            check_range(key, b, (0.0..1.0).contains(&b), "a number in [0, 1)")?;
        }
        let norm = self.max_grad_norm;
        check_range("max_grad_norm", norm, norm >= 0.0, "a number ≥ 0 (0: no clipping)")?;
        let w = self.warmup_proportion;
        check_range("warmup_proportion", w, (0.0..=1.0).contains(&w), "a number in [0, 1]")?;
        let e = self.num_train_epochs;
        check_range("num_train_epochs", e, e > 0.0, "a number of epochs > 0")?;
        for (key, n) in [
            ("gradient_accumulation_steps", self.gradient_accumulation_steps as u64),
            ("eval_batch_size", self.eval_batch_size as u64),
            ("eval_subset_num", self.eval_subset_num as u64),
        ] {
            if n == 0 {
                return Err(bad_setting(key, "at least 1", 0));
            }
        }
        if self.max_steps == Some(0) {
            return Err(bad_setting("max_steps", "at least 1", 0));
        }
        if self.train_examples_cap == Some(0) {
            return Err(bad_setting("train_examples_cap", "a positive cap (0 on the command line: uncapped)", 0));
        }
        if self.snapshot_every == SnapshotEvery::Steps(0) {
            return Err(bad_setting("snapshot_every", "`epoch`, `never` or a step count ≥ 1", 0));
        }
        Ok(())
    }
}

fn check_config(cfg: &TrainConfig, tasks: &[TrainTask]) -> Result<()> {
    let bad = |m: String| Err(Error::Setting(m));
    if tasks.is_empty() {
        return bad("no training tasks".into());
    }
    cfg.validate()?;
    for t in tasks {
        if t.batch_size == 0 {
            return bad(format!("task {}: batch size must be at least 1", t.name));
        }
        if t.train.is_empty() || t.train.iter().any(|s| s.features.is_empty()) {
            return bad(format!("task {}: the training split produced no features", t.name));
        }
    }
    Ok(())
}

/// Bytes a checkpoint of `n` parameters takes (weights + two moments) plus the `best/`,
/// `model/` and one snapshot copy of the weights, with 10% slack.
fn disk_needed(n: usize, snapshots: bool) -> u64 {
    let copies = 3 + 2 + u64::from(snapshots);
    (n as u64 * 4 * copies) * 11 / 10
}

impl<'a> Trainer<'a> {
    /// Sets up a run in `run_dir`. With `resume`, the latest checkpoint there is loaded
    /// (weights, optimizer and state; the model's own weights are replaced); without, the
    /// folder must not hold a checkpoint already. The model then moves to `device`. Validates
    /// the configuration, the data and the output folder (writable, enough free space) before
    /// any step.
    pub fn new(
        model: HostModel,
        tok: &'a Tokenizer,
        tasks: Vec<TrainTask>,
        cfg: TrainConfig,
        features: FeatureConfig,
        run_dir: &Path,
        resume: bool,
        device: &Device,
    ) -> Result<Self> {
        check_config(&cfg, &tasks)?;
        let specs = &model.structure.specs;
        for t in &tasks {
            if t.head >= specs.len() || specs[t.head].kind != t.spec.kind {
                return Err(Error::Setting(format!("task {}: head {} does not fit its family", t.name, t.head)));
            }
        }
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        let probe = run_dir.join(".xlt-write-test");
        atomic_write(&probe, b"ok")
            .map_err(|e| Error::RunFolder(format!("the run folder {} is not writable: {e}", run_dir.display())))?;
        let _ = std::fs::remove_file(&probe);
        let needed = disk_needed(model.structure.layout.total, cfg.snapshot_every != SnapshotEvery::Never);
        if let Ok(free) = fs4::available_space(run_dir) {
            if free < needed {
                return Err(Error::Setting(format!(
                    "{} has {:.1} MB free; checkpoints of this model need about {:.1} MB",
                    run_dir.display(),
                    free as f64 / 1e6,
                    needed as f64 / 1e6
                )));
            }
        }
        let ckpt = run_dir.join("checkpoint");
        let has_ckpt = match find(&ckpt) {
            Found::Complete(_) if !resume => {
                return Err(Error::RunFolder(format!(
                    "{} already holds a checkpoint; pass --resume to continue it or choose another run name",
                    run_dir.display()
                )))
            }
            Found::Complete(_) => true,
            // Never start over on top of a checkpoint that cannot be read: it would be replaced.
            Found::Incomplete(why) => {
                return Err(Error::RunFolder(format!(
                    "{} holds an incomplete checkpoint ({why}); {}",
                    run_dir.display(),
                    if resume {
                        "it cannot be resumed: restore it, or remove the folder to start over"
                    } else {
                        "remove the folder to start over or choose another run name"
                    }
                )))
            }
            Found::Absent => false,
        };
        let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        let sizes: Vec<usize> = tasks.iter().map(|t| t.size()).collect();
        let mode = match cfg.train_examples_cap {
            Some(cap) => SamplingMode::CappedProportional { cap },
            None => SamplingMode::Proportional,
        };
        let total = total_steps(&tasks.iter().map(|t| (t.size(), t.batch_size)).collect::<Vec<_>>(), &cfg)?;
        if total == 0 {
            return Err(Error::Setting("the step budget is 0: raise the epochs or set max steps".into()));
        }
        let schedule = LinearSchedule::new(cfg.learning_rate, total, cfg.warmup_proportion)?;
        let adamw = AdamWConfig {
            lr: cfg.learning_rate as f32,
            beta1: cfg.adam_beta1 as f32,
            beta2: cfg.adam_beta2 as f32,
            eps: cfg.adam_epsilon as f32,
            weight_decay: cfg.weight_decay as f32,
        };
        let mut model = model;
        let n = model.structure.layout.total;
        let mut opt = OptimizerState { m: vec![0.0; n], v: vec![0.0; n], t: 0 };
        let (sampler, orders, state) = if has_ckpt && resume {
            let (cfg_m, layout) = (model.structure.cfg.clone(), model.structure.layout.clone());
            let saved = load_checkpoint(&ckpt, &cfg_m, &layout, &mut model.params, &mut opt)?;
            let state: TrainerState = serde_json::from_value(saved.trainer)
                .map_err(|e| Error::format(&ckpt, format!("trainer state: {e}")))?;
            if state.orders.len() != tasks.len() {
                return Err(Error::Checkpoint {
                    path: ckpt.clone(),
                    msg: format!("saved for {} tasks, this run has {}", state.orders.len(), tasks.len()),
                });
            }
            let sampler = TaskSampler::from_state(&names, &sizes, mode, &state.sampler)?;
            let mut orders = Vec::new();
            for (t, saved) in tasks.iter().zip(&state.orders) {
                if saved.len() != t.train.len() {
                    return Err(Error::Checkpoint {
                        path: ckpt.clone(),
                        msg: format!("task {}: saved for {} sources, found {}", t.name, saved.len(), t.train.len()),
                    });
                }
                let o: Result<Vec<EpochOrder>> =
                    t.train.iter().zip(saved).map(|(s, st)| EpochOrder::from_state(s.features.len(), st)).collect();
                orders.push(o?);
            }
            (sampler, orders, state)
        } else {
            let sampler = TaskSampler::new(&names, &sizes, mode, derive(cfg.seed, STREAM_SAMPLER))?;
            let mut orders = Vec::new();
            for (ti, t) in tasks.iter().enumerate() {
                let o: Result<Vec<EpochOrder>> = t
                    .train
                    .iter()
                    .enumerate()
                    .map(|(si, s)| {
                        EpochOrder::new(
                            s.features.len(),
                            derive(cfg.seed, STREAM_ORDER ^ ((ti as u64) << 20 | si as u64)),
                        )
                    })
                    .collect();
                orders.push(o?);
            }
            let state = TrainerState {
                step: 0,
                sampler: sampler.state(),
                orders: orders.iter().map(|o| o.iter().map(EpochOrder::state).collect()).collect(),
                best_score: None,
                best_step: None,
                evals_without_improvement: 0,
                stopped_early: false,
                last_eval: None,
            };
            (sampler, orders, state)
        };
        let log = JsonlLog::open(&run_dir.join("log.jsonl"))?;
        let model = device.train_model(model, Some(opt))?;
        Ok(Trainer {
            model,
            adamw,
            tok,
            tasks,
            cfg,
            features,
            run_dir: run_dir.to_path_buf(),
            sampler,
            orders,
            schedule,
            state,
            log,
            progress: true,
            model_files: Vec::new(),
            run_label: run_dir.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned()),
            identity: serde_json::Value::Null,
        })
    }

    /// Copies `files` (the tokenizer's: `tokenizer.json` and what else the model folder has)
    /// into every model folder the run saves (`best/`, `model/`, snapshots), so each loads on
    /// its own.
    pub fn with_model_files(mut self, files: Vec<(PathBuf, String)>) -> Self {
        self.model_files = files;
        self
    }

    /// Sets the run's identity (its settings and starting model, JSON), stored in every
    /// checkpoint and compared when the run is resumed.
    pub fn with_identity(mut self, identity: serde_json::Value) -> Self {
        self.identity = identity;
        self
    }

    /// The run folder.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Turns the progress bar off (tests, non-interactive use).
    pub fn quiet(self) -> Self {
        self.with_progress(false)
    }

    /// Shows the progress bar or not.
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// The step budget of the run.
    pub fn total_steps(&self) -> u64 {
        self.schedule.total_steps
    }

    /// An error when the largest batch of some task would not fit in the device's memory, before
    /// the first step allocates it (the GPU reports its own out-of-memory errors, naming the
    /// batch shape, when it allocates).
    pub fn check_memory(&self) -> Result<()> {
        for t in &self.tasks {
            let choices = self.model.structure().specs[t.head].num_labels;
            let rows = match (&t.train[0].features, t.spec.kind) {
                (_, Kind::MultipleChoice) => t.batch_size * choices,
                (Features::SelfTraining(..), _) => 2 * t.batch_size,
                _ => t.batch_size,
            };
            let t_max = self.features.max_seq_len;
            self.model
                .check_fits(rows, t_max)
                .map_err(|e| e.context(format!("task {} (lower --train-batch-size or --max-seq-length)", t.name)))?;
        }
        Ok(())
    }

    /// One micro-batch of task `ti` at (step, micro): its batch, drawn from the task's order
    /// (for MLM, a language drawn with α = 0.3 first), masked and collated; a self-training
    /// batch with its guide from the model as it is now.
    fn micro_batch(&mut self, ti: usize, step: u64, micro: u64) -> Result<(MicroBatch, String)> {
        let t = &self.tasks[ti];
        let key = step.wrapping_mul(1 << 16) ^ micro;
        let si = if t.train.len() > 1 {
            let counts: Vec<usize> = t.train.iter().map(|s| s.features.len()).collect();
            let w = language_weights(&counts, LANGUAGE_ALPHA)?;
            sample_index(&w, &mut Rng::new(derive(self.cfg.seed ^ STREAM_LANGUAGE, key)))
        } else {
            0
        };
        let idx = self.orders[ti][si].next_batch(t.batch_size);
        let what = format!("task {} ({}), feature rows {:?}", t.name, t.train[si].lang, idx);
        if let Features::SelfTraining(set, so) = &t.train[si].features {
            let sb = set.so_batch(&idx, self.tok, self.model.as_mut(), *so)?;
            return Ok((MicroBatch::SelfTraining(sb, so.layer), what));
        }
        let mut rng = Rng::new(derive(self.cfg.seed ^ STREAM_MASK, key));
        let tb = t.train[si].features.collate(&idx, self.tok, Some(&mut rng))?;
        Ok((MicroBatch::Task(tb), what))
    }

    /// One optimizer step; returns (task index, mean loss, grad norm, lr, real tokens).
    fn train_step(&mut self) -> Result<(usize, f32, f32, f64, usize)> {
        let step = self.state.step;
        let ti = self.sampler.next();
        let head = self.tasks[ti].head;
        let acc = self.cfg.gradient_accumulation_steps;
        let mut tokens = 0;
        let mut whats = Vec::with_capacity(acc);
        for micro in 0..acc as u64 {
            let (mb, what) = self.micro_batch(ti, step, micro)?;
            let drop = if self.cfg.dropout {
                let seed = derive(self.cfg.seed ^ STREAM_DROPOUT, step << 16 ^ micro);
                DropoutCfg::train(&self.model.structure().cfg, seed)
            } else {
                DropoutCfg::OFF
            };
            match mb {
                MicroBatch::Task(tb) => {
                    tokens += tb.real_tokens();
                    self.model.accumulate(head, &tb, drop)?;
                }
                MicroBatch::SelfTraining(sb, layer) => {
                    tokens += sb.batch.real_tokens();
                    self.model.accumulate_so(&sb, layer, drop)?;
                }
            }
            whats.push(what);
        }
        let lr = self.schedule.lr(step);
        self.adamw.lr = lr as f32;
        let cfg = StepConfig { adamw: self.adamw, micro_batches: acc, max_grad_norm: self.cfg.max_grad_norm as f32 };
        // The step reports the micro-batches' losses; it leaves the weights untouched when one
        // is not finite, so the error below names the tensor that went wrong, not its victims.
        let report = self.model.step(&cfg)?;
        for (micro, (&loss, what)) in report.losses.iter().zip(&whats).enumerate() {
            if !loss.is_finite() {
                return Err(self.diverged(&format!("loss is {loss} at step {step}, micro-batch {micro}: {what}")));
            }
        }
        // fp16 may skip a step whose gradients overflowed (the loss scale backs off).
        let norm = report.grad_norm.unwrap_or(0.0);
        if !norm.is_finite() {
            let task = &self.tasks[ti].name;
            return Err(self.diverged(&format!("gradient norm is {norm} at step {step} (task {task})")));
        }
        let loss_sum: f32 = report.losses.iter().sum();
        self.state.step += 1;
        Ok((ti, loss_sum / acc as f32, norm, lr, tokens))
    }

    /// The error for a run that produced a non-finite number: `what` happened, then the first
    /// non-finite tensor found (weights, then activations, then gradients), and where the run
    /// can continue from. Nothing is written: the last checkpoint stays as it was.
    fn diverged(&mut self, what: &str) -> Error {
        let found = match self.model.first_non_finite() {
            Ok(found) => found,
            Err(e) => Some(format!("(the model's values could not be read: {e})")),
        };
        let found = found.unwrap_or_else(|| "no weight, activation or gradient holds one".into());
        let resume = match find(&self.run_dir.join("checkpoint")) {
            Found::Complete(_) => "the last checkpoint is intact: lower the learning rate or check the data, then \
                                   continue with --resume"
                .to_string(),
            _ => "no checkpoint was written yet".to_string(),
        };
        Error::Setting(format!("{what}; first non-finite value: {found}; stopping ({resume})"))
    }

    /// Scores every task that has validation data on its first `limit` examples (all when
    /// None); returns per-task selection scores ([`selection_score`]), their aggregate (mean
    /// over non-MLM tasks, or over all when only MLM has scores) and every metric per task.
    pub fn evaluate_tasks(&mut self, limit: Option<usize>) -> Result<(TaskScores, Option<f64>, TaskMetrics)> {
        let mut scores = BTreeMap::new();
        let mut metrics = BTreeMap::new();
        let (mut main, mut mlm) = (Vec::new(), Vec::new());
        for t in &self.tasks {
            let Validation::Set(val) = &t.val else { continue };
            let opts = EvalOptions {
                batch_size: self.cfg.eval_batch_size,
                features: self.features.clone(),
                limit,
                mlm_seed: derive(self.cfg.seed, STREAM_MASK),
            };
            let model = self.model.as_mut();
            let r =
                evaluate(model, t.head, self.tok, t.spec, &t.label_names, &val.examples, val.lang.as_deref(), &opts)
                    .map_err(|e| e.context(format!("evaluating {} on {}", t.name, val.data)))?;
            let score = selection_score(t.spec, &r);
            if let Some(p) = score {
                if t.spec.kind == Kind::MaskedLm {
                    mlm.push(p)
                } else {
                    main.push(p)
                }
            }
            scores.insert(t.name.clone(), score);
            metrics.insert(t.name.clone(), r.metrics);
        }
        let pool = if main.is_empty() { &mlm } else { &main };
        let agg = if pool.is_empty() { None } else { Some(pool.iter().sum::<f64>() / pool.len() as f64) };
        Ok((scores, agg, metrics))
    }

    /// How the best weights are chosen in this run: the tasks that take part in the aggregate
    /// of [`Self::evaluate_tasks`], each with its metric, data and number of examples.
    pub fn selection(&self) -> Selection {
        let with_val: Vec<(&TrainTask, &ValSet)> =
            self.tasks.iter().filter_map(|t| t.val.set().map(|v| (t, v))).collect();
        let only_mlm = with_val.iter().all(|(t, _)| t.spec.kind == Kind::MaskedLm);
        let sources: Vec<SelectionSource> = with_val
            .iter()
            .filter(|(t, _)| only_mlm || t.spec.kind != Kind::MaskedLm)
            .map(|(t, v)| SelectionSource {
                task: t.name.clone(),
                metric: selection_metric(t.spec).to_string(),
                data: v.data.clone(),
                examples: v.examples.len().min(self.cfg.eval_subset_num),
            })
            .collect();
        let caveats: Vec<String> = with_val.iter().filter_map(|(_, v)| v.caveat.clone()).collect();
        let criterion = if sources.len() == 1 { "the score".to_string() } else { "the mean of the task scores".into() };
        Selection { criterion, sources, caveat: (!caveats.is_empty()).then(|| caveats.join("; ")) }
    }

    /// Why a run keeps its last weights: the reasons of its tasks without validation data.
    fn no_selection_reason(&self) -> String {
        let reasons: Vec<String> = self
            .tasks
            .iter()
            .filter_map(|t| match &t.val {
                Validation::None(why) => Some(format!("{}: {why}", t.name)),
                Validation::Set(_) => None,
            })
            .collect();
        if reasons.is_empty() {
            "no evaluation produced a score".into()
        } else {
            format!("no model selection ({})", reasons.join("; "))
        }
    }

    /// Writes a complete model folder at `dir` (weights, config, head list, the tokenizer
    /// files, the [`Weights`] record), replacing any folder there as a whole.
    fn save_model_dir(&mut self, dir: &Path, weights: &Weights) -> Result<()> {
        let params = self.model.params()?;
        let (structure, files) = (self.model.structure(), &self.model_files);
        crate::fsutil::replace_dir(dir, |tmp| {
            crate::model::host::save_model(tmp, structure, &params)?;
            for (src, name) in files {
                std::fs::copy(src, tmp.join(name)).map_err(|e| Error::io(src, e))?;
            }
            weights.save(tmp)
        })
    }

    fn trainer_state_json(&mut self) -> Result<serde_json::Value> {
        self.state.sampler = self.sampler.state();
        self.state.orders = self.orders.iter().map(|o| o.iter().map(EpochOrder::state).collect()).collect();
        serde_json::to_value(&self.state).map_err(|e| Error::encode("JSON", e))
    }

    /// Writes `checkpoint/` (replacing the previous one atomically, head list included).
    pub fn save_checkpoint(&mut self) -> Result<()> {
        let state = self.trainer_state_json()?;
        let dir = self.run_dir.join("checkpoint");
        let s = self.model.structure();
        let heads = serde_json::to_vec_pretty(&s.specs).map_err(|e| Error::encode("JSON", e))?;
        let (params, opt) = (self.model.params()?, self.model.optimizer()?);
        save_checkpoint(
            &dir,
            &s.cfg,
            &s.layout,
            &params,
            &opt,
            &self.adamw,
            state,
            self.identity.clone(),
            &[(crate::model::HEADS_FILE, &heads)],
        )
    }

    /// Evaluates, logs, keeps the best weights and updates early stopping.
    fn eval_and_track(&mut self, bar: &ProgressBar) -> Result<Option<f64>> {
        let (scores, agg, metrics) = self.evaluate_tasks(Some(self.cfg.eval_subset_num))?;
        let step = self.state.step;
        self.log.write(
            serde_json::json!({"event": "eval", "step": step, "score": agg, "tasks": scores, "metrics": metrics}),
        )?;
        let Some(score) = agg else { return Ok(None) };
        self.state.last_eval = Some((step, score));
        let improved = self.state.best_score.is_none_or(|b| score > b);
        if improved {
            self.state.best_score = Some(score);
            self.state.best_step = Some(step);
            self.state.evals_without_improvement = 0;
            let w =
                Weights::Best { run: self.run_label.clone(), step, steps: step, score, selection: self.selection() };
            self.save_model_dir(&self.run_dir.join("best"), &w)?;
        } else {
            self.state.evals_without_improvement += 1;
        }
        bar.println(format!(
            "step {step}: validation {score:.3}{} {}",
            if improved { " (best)" } else { "" },
            scores
                .iter()
                .map(|(k, v)| format!("{k}={}", v.map_or("-".into(), |v| format!("{v:.2}"))))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        let patience = self.cfg.no_improvements_for_n_evals;
        if patience > 0 && self.state.evals_without_improvement >= patience {
            self.state.stopped_early = true;
        }
        Ok(Some(score))
    }

    fn snapshot_due(&self, step: u64) -> Option<Option<u64>> {
        match self.cfg.snapshot_every {
            SnapshotEvery::Never => None,
            SnapshotEvery::Steps(n) if n > 0 && step.is_multiple_of(n) => Some(None),
            SnapshotEvery::Steps(_) => None,
            SnapshotEvery::Epoch => {
                let epochs = self.cfg.num_train_epochs.ceil().max(1.0) as u64;
                let per = (self.total_steps() / epochs).max(1);
                (step.is_multiple_of(per) || step == self.total_steps()).then_some(Some(step.div_ceil(per)))
            }
        }
    }

    /// Saves a complete model folder `snapshots/step-<N>/` and lists it in the manifest (a
    /// step replayed after a resume replaces its entry instead of adding a second one).
    fn snapshot(&mut self, epoch: Option<u64>) -> Result<()> {
        let step = self.state.step;
        let score = match self.state.last_eval {
            Some((s, v)) if s == step => Some(v),
            _ => self.evaluate_tasks(Some(self.cfg.eval_subset_num))?.1,
        };
        let rel = PathBuf::from(format!("step-{step:08}"));
        let dir = self.run_dir.join("snapshots");
        let w = Weights::Snapshot { run: self.run_label.clone(), step, epoch, dev_score: score };
        self.save_model_dir(&dir.join(&rel), &w)?;
        Manifest::append(
            &dir.join("manifest.json"),
            ManifestEntry {
                path: rel,
                run: self.run_label.clone(),
                step,
                epoch,
                dev_score: score,
                hparams: Some(self.hparams()),
                scores: None,
            },
        )
    }

    /// The hyper-parameters a snapshot records: the optimisation settings and each task's
    /// batch size (`batch_size` when every task has the same).
    fn hparams(&self) -> std::collections::BTreeMap<String, f64> {
        let c = &self.cfg;
        let mut h: std::collections::BTreeMap<String, f64> = [
            ("learning_rate", c.learning_rate),
            ("seed", c.seed as f64),
            ("num_train_epochs", c.num_train_epochs),
            ("warmup_proportion", c.warmup_proportion),
            ("weight_decay", c.weight_decay),
            ("gradient_accumulation_steps", c.gradient_accumulation_steps as f64),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let sizes: Vec<usize> = self.tasks.iter().map(|t| t.batch_size).collect();
        if sizes.windows(2).all(|w| w[0] == w[1]) {
            if let Some(&b) = sizes.first() {
                h.insert("batch_size".into(), b as f64);
            }
        } else {
            for t in &self.tasks {
                h.insert(format!("batch_size.{}", t.name), t.batch_size as f64);
            }
        }
        h
    }

    /// Runs until the step budget is spent, early stopping triggers, or `stop_at` steps are
    /// done (the run can then be resumed). On completion the best weights are restored, saved
    /// as `model/`, optionally scored on the full validation sets, and `done` is written.
    pub fn run(&mut self, run_name: &str, stop_at: Option<u64>) -> Result<Option<RunSummary>> {
        self.run_label = run_name.to_string();
        self.check_memory()?;
        let total = self.total_steps();
        let bar = if self.progress { ProgressBar::new(total) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} {msg}")
                .map_err(|e| Error::encode("JSON", e))?,
        );
        bar.set_position(self.state.step);
        let started = Instant::now();
        let mut tokens_seen = 0usize;
        while self.state.step < total && !self.state.stopped_early {
            if stop_at.is_some_and(|s| self.state.step >= s) {
                bar.finish_and_clear();
                return Ok(None);
            }
            let (ti, loss, norm, lr, tokens) = self.train_step()?;
            tokens_seen += tokens;
            let step = self.state.step;
            let tps = tokens_seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
            self.log.write(serde_json::json!({
                "event": "train", "step": step, "task": self.tasks[ti].name, "loss": loss,
                "grad_norm": norm, "lr": lr, "tokens": tokens,
            }))?;
            bar.set_position(step);
            bar.set_message(format!("{} loss {loss:.4} lr {lr:.2e} {tps:.0} tok/s", self.tasks[ti].name));
            let eval_due =
                self.cfg.eval_every_steps > 0 && step.is_multiple_of(self.cfg.eval_every_steps) && step < total;
            if eval_due {
                self.eval_and_track(&bar)?;
            }
            if let Some(epoch) = self.snapshot_due(step) {
                self.snapshot(epoch)?;
            }
            let every = self.cfg.save_checkpoint_every_steps;
            if (every > 0 && step.is_multiple_of(every)) || (every == 0 && eval_due) {
                self.save_checkpoint()?;
            }
        }
        bar.finish_and_clear();
        self.finish()
    }

    fn finish(&mut self) -> Result<Option<RunSummary>> {
        let hidden = ProgressBar::hidden();
        if self.state.last_eval.is_none_or(|(s, _)| s != self.state.step) {
            self.eval_and_track(&hidden)?;
        }
        self.save_checkpoint()?;
        let weights = match (self.state.best_step, self.state.best_score) {
            (Some(step), Some(score)) => {
                let best = self.run_dir.join("best");
                let best = crate::fsutil::complete_dir(&best).ok_or_else(|| {
                    Error::Setting(format!(
                        "{}: the best weights (step {step}) are missing; the run cannot say which weights it \
                         ends with",
                        best.display()
                    ))
                })?;
                match Weights::of_dir(&best)? {
                    Weights::Best { step: s, .. } if s == step => {}
                    other => {
                        return Err(Error::Setting(format!(
                            "{}: expected the best weights of step {step}, found {}",
                            best.display(),
                            other.describe()
                        )))
                    }
                }
                let s = self.model.structure();
                let mut params = vec![0.0; s.layout.total];
                crate::model::weights::load_into(&mut params, &s.layout, &s.cfg, &best, &|_| true)?;
                self.model.set_params(&params)?;
                Weights::Best {
                    run: self.run_label.clone(),
                    step,
                    steps: self.state.step,
                    score,
                    selection: self.selection(),
                }
            }
            _ => Weights::Last {
                run: self.run_label.clone(),
                steps: self.state.step,
                reason: self.no_selection_reason(),
            },
        };
        let model_dir = self.run_dir.join("model");
        self.save_model_dir(&model_dir, &weights)?;
        let (val, val_metrics) = if self.cfg.do_val {
            let (scores, _, metrics) = self.evaluate_tasks(None)?;
            (scores, metrics)
        } else {
            (BTreeMap::new(), BTreeMap::new())
        };
        let summary = RunSummary {
            steps: self.state.step,
            total_steps: self.total_steps(),
            best_score: self.state.best_score,
            best_step: self.state.best_step,
            stopped_early: self.state.stopped_early,
            val,
            val_metrics,
            weights,
            model_dir,
        };
        let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::encode("JSON", e))?;
        atomic_write(&self.run_dir.join("val_metrics.json"), text.as_bytes())?;
        self.log.write(serde_json::json!({"event": "done", "summary": summary}))?;
        atomic_write(&self.run_dir.join("done"), b"DONE\n")?;
        Ok(Some(summary))
    }
}
