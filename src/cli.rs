//! Command-line interface: clap derive structs for every subcommand, validated into the
//! library's types by the handlers in `main.rs`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The model shipped with the repository (the demo's tiny XLM-R): the default of `xlt embed`.
pub const BUNDLED_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo-model");
/// Sample sentences in several languages.
pub const BUNDLED_INPUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/sample-sentences.txt");

/// xlt: XLM-R/BERT encoders, forward and backward, for zero-shot cross-lingual transfer.
#[derive(Parser, Debug)]
#[command(name = "xlt", version, about, long_about = None)]
pub struct Cli {
    /// CPU threads (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands (parsed once; their sizes do not matter).
#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Embed one sentence per line into a float32 .npy of shape [n, hidden].
    Embed(EmbedArgs),
    /// Word-align sentence pairs (`src ||| tgt` per line) from one layer of the encoder:
    /// awesome-align's softmax or SimAlign's argmax / itermax; Pharaoh `i-j` links out.
    Align(AlignArgs),
    /// Fine-tune an encoder as a word aligner on a parallel corpus (`src ||| tgt` per line)
    /// with awesome-align's objectives: self-training (so) and translation language modelling
    /// (tlm); writes an HF model folder `xlt align` and `xlt train` load.
    AlignTrain(AlignTrainArgs),
    /// Write the aligner's `src ||| tgt` input from an English training file and its
    /// translations, in the order `xlt reorder` reads the alignments.
    AlignInput(AlignInputArgs),
    /// Permute English training data (words and their labels) into a target language's word
    /// order through word alignments; prints the diagnostics as JSON.
    Reorder(ReorderArgs),
    /// The reordering study of one XTREME task: align and reorder the English training set
    /// towards each language, fine-tune the baseline and every reordered condition, and
    /// compare their zero-shot scores per language.
    ReorderStudy(ReorderStudyArgs),
    /// Time full training steps (forward, loss, backward, AdamW) on random weights.
    Bench(BenchArgs),
    /// Score predictions like the official evaluation scripts; prints one JSON object.
    Score(ScoreCliArgs),
    /// Average model snapshots (uniform mean of every tensor), streaming one at a time.
    Average(AverageArgs),
    /// Score every snapshot of one or more runs on every language of a task (kept in the
    /// manifests), and print the single-run baselines: last, best English dev, target-dev oracle.
    ScoreSnapshots(ScoreSnapshotsArgs),
    /// Accumulative averaging over runs of different hyper-parameters (One For All & All For
    /// One): for seeded orderings and i = 1..k runs, every mode's average scored per language.
    AverageProtocol(AverageProtocolArgs),
    /// Evaluate a checkpoint on a task's languages and split, without training.
    Eval(EvalArgs),
    /// Train on one or more tasks (intermediate or target), jiant style.
    Train(TrainArgs),
    /// The built-in default: fine-tune the shipped tiny model on synthetic tasks of every head
    /// family and evaluate zero-shot on a second synthetic language (about a minute on 2 cores).
    Demo(DemoArgs),
    /// Fine-tune an encoder on every XTREME task in English, evaluate zero-shot on all
    /// languages, write predictions and results tables (resumable).
    Xtreme(XtremeArgs),
    /// A whole experiment grid from one plan (intermediate configurations × target tasks,
    /// seeds, sweeps): list its runs, run them here or submit them to SLURM, show where they
    /// stand, write the Table 2 report.
    Grid(GridArgs),
}

/// `xlt grid` options: `xlt grid PLAN.toml [--dry-run] [--executor local|slurm]`, or a
/// subcommand (`status`, `report`).
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GridArgs {
    /// What to do instead of running the plan.
    #[command(subcommand)]
    pub command: Option<GridCommand>,
    /// Running the plan.
    #[command(flatten)]
    pub run: GridRunArgs,
}

/// Running a grid plan.
#[derive(Args, Debug)]
pub struct GridRunArgs {
    /// The plan (TOML; see plans/).
    pub plan: Option<PathBuf>,
    /// Print every run, one command line per line, with the runs it waits for; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the runs go: this machine, one run per device at a time; or SLURM, one job per run.
    #[arg(long, value_enum, default_value_t = ExecutorArg::Local)]
    pub executor: ExecutorArg,
    /// Local executor: the GPUs to spread runs over, comma-separated (default: every GPU found,
    /// else one run at a time on the CPU).
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Run again finished runs whose command line or starting model no longer match the plan
    /// (their folders are moved to OUT/replaced/<time>/).
    #[arg(long)]
    pub rerun_changed: bool,
}

/// `xlt grid` subcommands.
#[derive(Subcommand, Debug)]
pub enum GridCommand {
    /// Where each run stands: done, running, pending, failed or changed (from the run folders
    /// and SLURM's queue).
    Status {
        /// The plan.
        plan: PathBuf,
    },
    /// Write the grid's results.md/json/svg (Table 2 layout) from the finished target runs.
    Report {
        /// The plan.
        plan: PathBuf,
    },
}

/// `xlt grid --executor`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorArg {
    /// This machine.
    Local,
    /// SLURM (`sbatch`).
    Slurm,
}

/// `xlt demo` options.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output folder (run/, results.json, results.md, results.svg; default: xlt-demo, with
    /// --reorder xlt-demo-reorder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue an interrupted demo from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Optimizer steps (default: 1500; with --reorder, 600 per fine-tuning run).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Seed (with --reorder: of the data and the aligner's fine-tuning).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The reordering study instead: fine-tune an aligner (tlm) on parallel en–xx text,
    /// align the English tagging training set with its translations, reorder it towards xx's
    /// word order, fine-tune every condition (baseline, reordered, gold-link oracle) and compare
    /// zero-shot scores (default output folder: xlt-demo-reorder).
    #[arg(long, conflicts_with = "resume")]
    pub reorder: bool,
    /// With --reorder: fine-tuning seeds, every condition run once per seed.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3", requires = "reorder")]
    pub seeds: Vec<u64>,
    /// With --reorder: use this aligner model folder instead of fine-tuning one.
    #[arg(long, requires = "reorder")]
    pub aligner: Option<PathBuf>,
    /// With --reorder: hidden_states index the aligners read (0 = embeddings).
    #[arg(long, default_value_t = 0, requires = "reorder")]
    pub layer: usize,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Rewrite the shipped model folder's initial weights, config and tokenizer (maintainers).
    #[arg(long, hide = true)]
    pub write_initial_model: bool,
}

/// `xlt xtreme` options.
#[derive(Args, Debug)]
pub struct XtremeArgs {
    /// Encoder folder: an HF model or an intermediate run's model/ (with tokenizer.json).
    #[arg(long)]
    pub encoder: PathBuf,
    /// XTREME download/ folder (or jiant layout).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Output folder (runs/, predictions/, results.json, results.md, results.svg).
    #[arg(long)]
    pub out: PathBuf,
    /// Tasks, comma-separated (default: all nine).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Row label in the tables (default: the encoder folder's name).
    #[arg(long)]
    pub model_name: Option<String>,
    /// Fine-tuning settings.
    #[command(flatten)]
    pub tune: FineTuneArgs,
    /// Select TyDiQA-GoldP on its English dev set, which is also XTREME's English test set
    /// (labelled optimistic). Default: keep its last weights, as XTREME does.
    #[arg(long)]
    pub select_on_english_dev: bool,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The fine-tuning settings of every `xlt xtreme` run (also `xlt reorder-study`'s).
#[derive(Args, Debug)]
pub struct FineTuneArgs {
    /// Learning rate (default 3e-6, the paper's target-task rate).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Epochs instead of the Table 4 preset.
    #[arg(long)]
    pub num_train_epochs: Option<f64>,
    /// Batch size instead of the Table 4 preset.
    #[arg(long)]
    pub train_batch_size: Option<usize>,
    /// Step budget per task (overrides the epochs).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Tokens per sequence (default 128; 384 for QA; 512 for retrieval).
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// Evaluate every N steps for early stopping (default 1000).
    #[arg(long, default_value_t = 1000)]
    pub eval_every_steps: u64,
    /// Examples per evaluation batch.
    #[arg(long, default_value_t = 64)]
    pub eval_batch_size: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// How `xlt train` initialises the model (jiant's `--model_load_mode`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum LoadModeArg {
    /// The encoder of an HF model folder; fresh heads.
    FromTransformers,
    /// The encoder of an xlt model folder (a previous run's `model/`); fresh heads.
    Partial,
    /// Every tensor, heads included, from an xlt model folder.
    All,
}

/// `xlt train` options. Every value can also come from `--config FILE.toml` (same names with
/// underscores; optimisation settings under `[train]`); flags override the file, and the
/// effective configuration is written to `<exp-dir>/runs/<run-name>/run_config.toml`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// TOML run configuration.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run name; the run folder is <exp-dir>/runs/<run-name>.
    #[arg(long)]
    pub run_name: Option<String>,
    /// Experiment folder.
    #[arg(long)]
    pub exp_dir: Option<PathBuf>,
    /// Data folder: jiant's download output (with configs/) or XTREME's download/ folder.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Tasks, comma-separated jiant run names (mnli, anli_plus, squad_v1, xnli, mlm, ...).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// MLM corpora (languages), comma-separated: reads the mlm_<lang> configs.
    #[arg(long, value_delimiter = ',')]
    pub mlm_languages: Vec<String>,
    /// Model folder: HF (config.json, model.safetensors, tokenizer.json) or a previous run's model/.
    #[arg(long, visible_alias = "model-path", alias = "hf-pretrained-model-name-or-path")]
    pub model: Option<PathBuf>,
    /// How to load the model.
    #[arg(long, value_enum)]
    pub model_load_mode: Option<LoadModeArg>,
    /// tokenizer.json (default: the model folder's).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Tokens per sequence, special tokens included (default 256).
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// Examples per micro-batch (default: the paper's per-task preset).
    #[arg(long)]
    pub train_batch_size: Option<usize>,
    /// Epochs (default: the task's preset, 3 for several tasks).
    #[arg(long)]
    pub num_train_epochs: Option<f64>,
    /// Step budget (overrides the epochs).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Peak learning rate (default 1e-5; 5e-6 with MLM; 3e-6 for XTREME target tasks).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Micro-batches per optimizer step.
    #[arg(long)]
    pub gradient_accumulation_steps: Option<usize>,
    /// Warmup fraction of the steps (default 0.1).
    #[arg(long)]
    pub warmup_proportion: Option<f64>,
    /// AdamW weight decay (default 0.01).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// AdamW epsilon (default 1e-8).
    #[arg(long)]
    pub adam_epsilon: Option<f64>,
    /// Gradient-norm clipping (default 1.0; 0 turns it off).
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Sampler / step-budget cap K (default 131072; 0: uncapped).
    #[arg(long)]
    pub train_examples_cap: Option<usize>,
    /// Seed of data order, sampling, head initialisation, dropout and masking (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluate every N steps (default 1000; 0: only at the end).
    #[arg(long)]
    pub eval_every_steps: Option<u64>,
    /// Validation examples per task while training (default 500).
    #[arg(long)]
    pub eval_subset_num: Option<usize>,
    /// Examples per evaluation batch (default 64).
    #[arg(long)]
    pub eval_batch_size: Option<usize>,
    /// Early stopping patience in evaluations (default 30; 0: off).
    #[arg(long)]
    pub no_improvements_for_n_evals: Option<u64>,
    /// Write the resumable checkpoint every N steps (default: at every evaluation).
    #[arg(long)]
    pub save_checkpoint_every_steps: Option<u64>,
    /// Snapshots for averaging: `epoch` or a step interval.
    #[arg(long)]
    pub snapshot_every: Option<String>,
    /// Train without dropout.
    #[arg(long)]
    pub no_dropout: bool,
    /// Skip the final scoring of the full validation sets.
    #[arg(long)]
    pub no_val: bool,
    /// Select TyDiQA-GoldP on its English dev set, which is also XTREME's English test set
    /// (labelled optimistic). Default: keep its last weights, as XTREME does.
    #[arg(long)]
    pub select_on_english_dev: bool,
    /// Task heads from this model folder (a head run's model/) instead of fresh ones, by name.
    #[arg(long)]
    pub head_from: Option<PathBuf>,
    /// Keep the task heads fixed (no gradient, optimizer state or weight decay); needs
    /// --head-from. Runs that share a frozen head average without mixing heads.
    #[arg(long)]
    pub freeze_head: bool,
    /// Continue the run from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Data layout of `--data-dir`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutArg {
    /// XTREME's download folder.
    Xtreme,
    /// jiant's download output (configs/ + data/).
    Jiant,
}

/// Which split to evaluate.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitArg {
    /// Development data.
    Val,
    /// Test data (scored when it carries labels).
    Test,
}

impl From<SplitArg> for xlt::tasks::Split {
    fn from(s: SplitArg) -> Self {
        match s {
            SplitArg::Val => xlt::tasks::Split::Val,
            SplitArg::Test => xlt::tasks::Split::Test,
        }
    }
}

/// `xlt eval` options.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model folder: an xlt run's model/ (any heads) or an HF task model (encoder + head).
    #[arg(long)]
    pub model: PathBuf,
    /// Task name (xnli, pawsx, mnli, qqp, ...).
    #[arg(long)]
    pub task: String,
    /// Data folder.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Layout of the data folder (default: jiant when it has configs/, else XTREME).
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
    /// Head to evaluate with (default: the task's registry head, or the model's only head of
    /// the task's family).
    #[arg(long)]
    pub head: Option<String>,
    /// Split (default: dev where the data folder has one for the task, else test: XQuAD and
    /// TyDiQA-GoldP in XTREME's layout).
    #[arg(long, value_enum)]
    pub split: Option<SplitArg>,
    /// Languages, comma-separated (default: every language of the task that has the split;
    /// the others are named). For MLM: corpora (`mlm`, or the <lang> of mlm_<lang> configs).
    #[arg(long, value_delimiter = ',')]
    pub langs: Vec<String>,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Maximum tokens per sequence, special tokens included (QA windows too).
    #[arg(long, default_value_t = 384)]
    pub max_seq_len: usize,
    /// Write predictions in XTREME's layout to OUT/<task>/<dev|test>-<lang>.{tsv,json}.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
}

/// Which manifest entries `xlt average` uses.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectArg {
    /// Every snapshot in the manifest.
    All,
    /// The latest step of each run.
    LastPerRun,
    /// The best dev score of each run.
    BestPerRun,
    /// The K best dev scores over all runs (`--k`).
    TopK,
}

/// `xlt average` options: snapshot folders, or a manifest and a selection.
#[derive(Args, Debug)]
pub struct AverageArgs {
    /// Output model folder (config.json + model.safetensors + tokenizer files).
    #[arg(long)]
    pub out: PathBuf,
    /// Snapshot folders (HF layout) to average.
    #[arg(required_unless_present_any = ["manifest", "runs"], conflicts_with_all = ["manifest", "runs"])]
    pub snapshots: Vec<PathBuf>,
    /// A snapshot manifest (a run's snapshots/manifest.json) to select from; repeat it to
    /// select over several runs at once.
    #[arg(long)]
    pub manifest: Vec<PathBuf>,
    /// An experiment folder (or a folder of runs): the manifests of all its runs.
    #[arg(long, conflicts_with = "manifest")]
    pub runs: Option<PathBuf>,
    /// Selection from the manifests.
    #[arg(long, value_enum, default_value_t = SelectArg::All)]
    pub select: SelectArg,
    /// K for `--select top-k`.
    #[arg(long)]
    pub k: Option<usize>,
}

/// A set of runs: their manifests, or an experiment folder.
#[derive(Args, Debug)]
pub struct RunSetArgs {
    /// A run's snapshot manifest (snapshots/manifest.json); repeat for several runs.
    #[arg(long, required_unless_present = "runs")]
    pub manifest: Vec<PathBuf>,
    /// An experiment folder (or a folder of runs): every run's manifest.
    #[arg(long, conflicts_with = "manifest")]
    pub runs: Option<PathBuf>,
}

impl RunSetArgs {
    /// The manifests of the set.
    pub fn manifests(&self) -> xlt::Result<Vec<PathBuf>> {
        match &self.runs {
            Some(dir) => xlt::train::average::Manifest::run_manifests(dir),
            None => Ok(self.manifest.clone()),
        }
    }
}

/// What snapshots and averages are scored on, and how.
#[derive(Args, Debug)]
pub struct SnapshotEvalArgs {
    /// Task name.
    #[arg(long)]
    pub task: String,
    /// Data folder (XTREME download/ or jiant layout).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Splits to score, comma-separated: val (dev) and/or test.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [SplitArg::Val])]
    pub splits: Vec<SplitArg>,
    /// Languages (default: every language of the task that has the split).
    #[arg(long, value_delimiter = ',')]
    pub langs: Vec<String>,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Maximum tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
}

/// `xlt average-protocol` options.
#[derive(Args, Debug)]
pub struct AverageProtocolArgs {
    /// The runs.
    #[command(flatten)]
    pub set: RunSetArgs,
    /// Output folder (protocol.md, protocol.json, protocol.svg, averages/).
    #[arg(long)]
    pub out: PathBuf,
    /// Runs per ordering (one per hyper-parameter configuration).
    #[arg(long)]
    pub k: usize,
    /// Seeded orderings of the runs.
    #[arg(long, default_value_t = 3)]
    pub orderings: usize,
    /// Seed of the orderings.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Modes, comma-separated: last (R-L), best (R-DEV), all (R-CA), top<K> (Soup-K).
    #[arg(long, value_delimiter = ',', default_values_t = ["last".to_string(), "best".to_string(), "all".to_string()])]
    pub modes: Vec<String>,
    /// Languages and evaluation settings.
    #[command(flatten)]
    pub eval: SnapshotEvalArgs,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
}

/// `xlt score-snapshots` options.
#[derive(Args, Debug)]
pub struct ScoreSnapshotsArgs {
    /// The runs.
    #[command(flatten)]
    pub set: RunSetArgs,
    /// Languages and evaluation settings.
    #[command(flatten)]
    pub eval: SnapshotEvalArgs,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
}

/// `xlt score` options: one task's gold and prediction files, or a whole XTREME folder.
#[derive(Args, Debug)]
pub struct ScoreCliArgs {
    /// Task: squad, xquad, tydiqa, mlqa, panx, udpos, xnli, pawsx, an intermediate
    /// classification task, bucc2018, tatoeba, or alignment (AER, precision, recall and F1 of
    /// Pharaoh links against a gold set with sure `i-j` and possible `ipj` links).
    #[arg(long, required_unless_present = "xtreme_dir")]
    pub task: Option<String>,
    /// Gold file (SQuAD JSON, token<TAB>tag TSV, labelled data file: labels, XTREME TSV, jiant's
    /// raw PAWS-X TSV or JSON lines; or pairs). Files without labels or answers are refused.
    #[arg(long, requires = "pred")]
    pub gold: Option<PathBuf>,
    /// Prediction file ({"id": "answer"} JSON, one tag or label per line, or pairs).
    #[arg(long, requires = "gold")]
    pub pred: Option<PathBuf>,
    /// Language: selects MLQA's normalisation, and the rows of one language in an XNLI JSON-lines
    /// gold file (accepted and ignored elsewhere).
    #[arg(long)]
    pub lang: Option<String>,
    /// An XTREME prediction folder (<task>/test-<lang>.{tsv,json}) to score as a whole.
    #[arg(long, conflicts_with = "task", requires = "gold_dir")]
    pub xtreme_dir: Option<PathBuf>,
    /// The gold folder, same layout as --xtreme-dir.
    #[arg(long)]
    pub gold_dir: Option<PathBuf>,
    /// --task alignment: the gold file's word indices start at 1 (the prediction's at 0).
    #[arg(long)]
    pub gold_one_indexed: bool,
}

/// Pooling of token states into a sentence vector.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolArg {
    /// Mean over attention-masked tokens, special tokens included (jiant / XTREME).
    Mean,
    /// The first token (<s> / [CLS]).
    Cls,
}

/// Link extraction of `xlt align`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlignMethodArg {
    /// awesome-align: softmax over rows and over columns of the dot products, both above
    /// --threshold.
    Softmax,
    /// SimAlign "inter": mutual argmax of (cosine + 1) / 2.
    Argmax,
    /// SimAlign IterMax: argmax, then one more round for words left unaligned.
    Itermax,
}

/// `xlt align` options.
#[derive(Args, Debug)]
pub struct AlignArgs {
    /// HF model folder (BERT or XLM-R): config.json, model.safetensors, tokenizer.json.
    #[arg(long)]
    pub model: PathBuf,
    /// Sentence pairs, one `src ||| tgt` per line, both sides split into words by whitespace.
    #[arg(long)]
    pub input: PathBuf,
    /// Output: one line of zero-indexed `i-j` links per input line (i = source word).
    #[arg(long)]
    pub output: PathBuf,
    /// Index into HF hidden_states (0 = embeddings); awesome-align's and SimAlign's default, 8.
    #[arg(long, default_value_t = xlt::align::aligner::DEFAULT_LAYER)]
    pub layer: usize,
    /// Link extraction.
    #[arg(long, value_enum, default_value_t = AlignMethodArg::Softmax)]
    pub method: AlignMethodArg,
    /// softmax: both probabilities must be strictly above this.
    #[arg(long, default_value_t = xlt::align::aligner::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// Sequences per encoder batch (sorted by length; changes no output).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
}

/// `xlt align-train` options (defaults: awesome-align's `--train_so --train_tlm` recipe).
#[derive(Args, Debug)]
pub struct AlignTrainArgs {
    /// The model folder to start from (HF BERT or XLM-R, or an xlt model folder).
    #[arg(long)]
    pub model: PathBuf,
    /// The parallel corpus: `src ||| tgt` per line, both sides split into words by whitespace.
    #[arg(long)]
    pub input: PathBuf,
    /// The run folder: checkpoint, log.jsonl, and the fine-tuned model in `model/`.
    #[arg(long)]
    pub output: PathBuf,
    /// Objectives: so (self-training), tlm (translation language modelling), co (consistency,
    /// on self-training's batches); so and co make one task of the run, tlm another.
    #[arg(long, value_delimiter = ',', default_value = "so,tlm")]
    pub objectives: Vec<String>,
    /// Index into HF hidden_states that self-training aligns and trains (awesome-align's
    /// `--align_layer`).
    #[arg(long, default_value_t = xlt::align::aligner::DEFAULT_LAYER)]
    pub layer: usize,
    /// Softmax threshold of self-training's alignments.
    #[arg(long, default_value_t = xlt::align::aligner::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// Sentence pairs per micro-batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub gradient_accumulation_steps: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    pub learning_rate: f64,
    /// Epochs over the corpus (each objective's), for the step budget.
    #[arg(long, default_value_t = 1.0)]
    pub num_train_epochs: f64,
    /// Step budget overriding the epochs.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Fraction of the steps spent warming up.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_proportion: f64,
    /// Seed of data order, objective sampling, masking and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write `checkpoint/` every N steps (0: only at the end).
    #[arg(long, default_value_t = 1000)]
    pub save_checkpoint_every_steps: u64,
    /// A tokenizer.json other than the model folder's.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Continue the run in `--output` from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
}

/// `xlt align-input` options.
#[derive(Args, Debug)]
pub struct AlignInputArgs {
    /// The training data's task: udpos, panx (word<TAB>tag files), xnli, pawsx.
    #[arg(long)]
    pub task: String,
    /// The English training file (udpos/panx `train-en.tsv`; XNLI-MT `multinli.train.en.tsv` or
    /// XTREME's `xnli/train-en.tsv`; PAWS-X `en/train.tsv`, whose ids match the translations).
    #[arg(long)]
    pub english: PathBuf,
    /// The translations: for udpos/panx one target sentence per line (words split by
    /// whitespace), line k for sentence k; XNLI-MT `multinli.train.<lang>.tsv`; PAWS-X
    /// `<lang>/translated_train.tsv` (matched by id).
    #[arg(long)]
    pub translations: PathBuf,
    /// The `src ||| tgt` file to write (two lines per example for xnli/pawsx: first text, then
    /// second).
    #[arg(long)]
    pub output: PathBuf,
}

/// `xlt reorder` options.
#[derive(Args, Debug)]
pub struct ReorderArgs {
    /// The training data's task: udpos, panx, xnli, pawsx.
    #[arg(long)]
    pub task: String,
    /// The English training file (the one given to `xlt align-input`, or the XTREME layout of
    /// the same rows).
    #[arg(long)]
    pub input: PathBuf,
    /// Pharaoh links, one line per line of `xlt align-input`'s output (`xlt align`,
    /// awesome-align or SimAlign).
    #[arg(long)]
    pub alignments: PathBuf,
    /// The reordered training file (same layout as --input).
    #[arg(long)]
    pub output: PathBuf,
    /// POS-aware variant: unaligned punctuation (other than opening brackets and quotes)
    /// attaches to the word on its left.
    #[arg(long)]
    pub punct: bool,
}

/// `xlt reorder-study` options.
#[derive(Args, Debug)]
pub struct ReorderStudyArgs {
    /// Encoder folders (HF models or intermediate runs' model/), comma-separated: each is
    /// fine-tuned in every condition (and is its own aligner unless --aligner), in its own
    /// study folder `OUT/<encoder>/`; the table at OUT holds every encoder × condition.
    #[arg(long, value_delimiter = ',', required = true)]
    pub encoder: Vec<PathBuf>,
    /// XTREME download/ folder (the task's train-en.tsv is reordered).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The task: udpos, panx or xnli.
    #[arg(long)]
    pub task: String,
    /// Target languages to reorder towards, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub langs: Vec<String>,
    /// The translations of the English training file, a path containing {lang} (formats as in
    /// `xlt align-input`).
    #[arg(long)]
    pub translations: String,
    /// Output folder (align/, data/, runs/, study.md, results.json/md/svg).
    #[arg(long)]
    pub out: PathBuf,
    /// Aligner model folder (default: the encoder, un-fine-tuned).
    #[arg(long)]
    pub aligner: Option<PathBuf>,
    /// Aligner layer (index into hidden_states).
    #[arg(long, default_value_t = xlt::align::aligner::DEFAULT_LAYER)]
    pub layer: usize,
    /// Link extraction.
    #[arg(long, value_enum, default_value_t = AlignMethodArg::Softmax)]
    pub method: AlignMethodArg,
    /// softmax threshold.
    #[arg(long, default_value_t = xlt::align::aligner::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// Unaligned punctuation attaches left.
    #[arg(long)]
    pub punct: bool,
    /// Also fine-tune the aligner (`xlt align-train`'s so + tlm) on the study's pairs, one for
    /// all languages (joint) or one per language, and add a "fine-tuned aligner" condition per
    /// language.
    #[arg(long, value_enum)]
    pub fine_tune_aligner: Option<AlignerFineTuningArg>,
    /// The aligner's fine-tuning: epochs over its pairs.
    #[arg(long, default_value_t = 1.0)]
    pub aligner_epochs: f64,
    /// The aligner's fine-tuning: a step budget overriding the epochs.
    #[arg(long)]
    pub aligner_max_steps: Option<u64>,
    /// The aligner's fine-tuning: peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    pub aligner_learning_rate: f64,
    /// The aligner's fine-tuning: sentence pairs per step.
    #[arg(long, default_value_t = 8)]
    pub aligner_batch_size: usize,
    /// Fine-tuning settings of every condition (as `xlt xtreme`).
    #[command(flatten)]
    pub tune: FineTuneArgs,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Where to run (alignment and fine-tuning).
    #[command(flatten)]
    pub run_on: RunOn,
}

/// Which fine-tuned aligners `xlt reorder-study` makes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlignerFineTuningArg {
    /// One aligner on every language's pairs.
    Joint,
    /// One aligner per language.
    PerLanguage,
}

/// `xlt embed` options.
#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// HF model folder: config.json, model.safetensors (or sharded), tokenizer.json.
    /// Default: the demo's tiny XLM-R shipped with the repository (`assets/demo-model`).
    #[arg(long, default_value = BUNDLED_MODEL)]
    pub model: PathBuf,
    /// Text file, one sentence per line (UTF-8). Default: bundled sample sentences.
    #[arg(long, default_value = BUNDLED_INPUT)]
    pub input: PathBuf,
    /// Output .npy file (float32, [n, hidden]).
    #[arg(long)]
    pub output: PathBuf,
    /// Index into HF hidden_states: 0 = embedding output, number of layers = last (default).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Pooling.
    #[arg(long, value_enum, default_value_t = PoolArg::Mean)]
    pub pool: PoolArg,
    /// Sentences per batch (sorted by length, padded per batch).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Maximum tokens per sentence including special tokens; longer lines are truncated.
    #[arg(long, default_value_t = 512)]
    pub max_seq_len: usize,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
}

/// `--device` and `--precision`, shared by every command that runs the model.
#[derive(Args, Clone, Copy, Debug)]
pub struct RunOn {
    /// Device: the GPU when one is usable, else the CPU (auto); the CPU; or the GPU (cuda).
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Arithmetic precision on the GPU (default: bf16); the CPU is fp32.
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
}

/// Where to run.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    /// The GPU when one is usable, else the CPU.
    Auto,
    /// The CPU reference backend.
    Cpu,
    /// The CUDA backend.
    Cuda,
}

/// `xlt bench` options. A preset sets the shape; explicit shape flags override it.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Device to time.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Arithmetic precision on the GPU (default: bf16).
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Named shape: xlmr-base (768/12/12/3072, vocab 250002) or xlmr-large (1024/24/16/4096).
    #[arg(long)]
    pub preset: Option<String>,
    /// Hidden size (default 256).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Layers (default 4).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Attention heads (default 4).
    #[arg(long)]
    pub heads: Option<usize>,
    /// FFN size (default 1024).
    #[arg(long)]
    pub ffn: Option<usize>,
    /// Vocabulary size (default 8000).
    #[arg(long)]
    pub vocab: Option<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Sequence length.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Seed of weights, tokens and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// `--precision`: arithmetic precision on a GPU.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    /// Everything in f32 (the reference).
    Fp32,
    /// bf16 activations and GEMM inputs, f32 accumulation, master weights and optimizer.
    Bf16,
    /// fp16 likewise, with dynamic loss scaling.
    Fp16,
}

impl From<PrecisionArg> for xlt::model::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Fp32 => xlt::model::Precision::Fp32,
            PrecisionArg::Bf16 => xlt::model::Precision::Bf16,
            PrecisionArg::Fp16 => xlt::model::Precision::Fp16,
        }
    }
}

impl From<DeviceArg> for xlt::device::DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => xlt::device::DeviceChoice::Auto,
            DeviceArg::Cpu => xlt::device::DeviceChoice::Cpu,
            DeviceArg::Cuda => xlt::device::DeviceChoice::Cuda,
        }
    }
}
