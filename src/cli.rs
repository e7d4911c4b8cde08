//! Command-line interface: clap derive structs for every subcommand, validated into the
//! library's types by the handlers in `main.rs`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The model and sample input bundled with the repository: the default of `xlt embed`.
pub const BUNDLED_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-xlmr");
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

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Embed one sentence per line into a float32 .npy of shape [n, hidden].
    Embed(EmbedArgs),
    /// Time full training steps (forward, loss, backward, AdamW) on random weights.
    Bench(BenchArgs),
    /// Score predictions like the official evaluation scripts; prints one JSON object.
    Score(ScoreCliArgs),
    /// Average model snapshots (uniform mean of every tensor), streaming one at a time.
    Average(AverageArgs),
    /// Evaluate a fine-tuned checkpoint on a task's languages (pair classification so far).
    Eval(EvalArgs),
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

/// `xlt eval` options.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Fine-tuned model folder (encoder and task head in the HF layout).
    #[arg(long)]
    pub model: PathBuf,
    /// Task name (xnli, pawsx, mnli, qqp, ...).
    #[arg(long)]
    pub task: String,
    /// Data folder.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Layout of the data folder.
    #[arg(long, value_enum, default_value_t = LayoutArg::Xtreme)]
    pub layout: LayoutArg,
    /// Split.
    #[arg(long, value_enum, default_value_t = SplitArg::Val)]
    pub split: SplitArg,
    /// Languages, comma-separated (default: every language of the task).
    #[arg(long, value_delimiter = ',')]
    pub langs: Vec<String>,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Maximum tokens per pair, special tokens included.
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
    /// Write predictions (one label per line) to OUT/<task>/<dev|test>-<lang>.tsv.
    #[arg(long)]
    pub out: Option<PathBuf>,
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
    #[arg(required_unless_present = "manifest", conflicts_with = "manifest")]
    pub snapshots: Vec<PathBuf>,
    /// A snapshot manifest (manifest.json) to select from.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Selection from the manifest.
    #[arg(long, value_enum, default_value_t = SelectArg::All, requires = "manifest")]
    pub select: SelectArg,
    /// K for `--select top-k`.
    #[arg(long, requires = "manifest")]
    pub k: Option<usize>,
}

/// `xlt score` options: one task's gold and prediction files, or a whole XTREME folder.
#[derive(Args, Debug)]
pub struct ScoreCliArgs {
    /// Task: squad, xquad, tydiqa, mlqa, panx, udpos, xnli, pawsx, an intermediate
    /// classification task, bucc2018 or tatoeba.
    #[arg(long, required_unless_present = "xtreme_dir")]
    pub task: Option<String>,
    /// Gold file (SQuAD JSON, token<TAB>tag TSV, labelled data file, or pairs).
    #[arg(long, requires = "pred")]
    pub gold: Option<PathBuf>,
    /// Prediction file ({"id": "answer"} JSON, one tag or label per line, or pairs).
    #[arg(long, requires = "gold")]
    pub pred: Option<PathBuf>,
    /// Language: selects MLQA's normalisation (accepted and ignored for SQuAD-style tasks).
    #[arg(long)]
    pub lang: Option<String>,
    /// An XTREME prediction folder (<task>/test-<lang>.{tsv,json}) to score as a whole.
    #[arg(long, conflicts_with = "task", requires = "gold_dir")]
    pub xtreme_dir: Option<PathBuf>,
    /// The gold folder, same layout as --xtreme-dir.
    #[arg(long)]
    pub gold_dir: Option<PathBuf>,
}

/// Pooling of token states into a sentence vector.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolArg {
    /// Mean over attention-masked tokens, special tokens included (jiant / XTREME).
    Mean,
    /// The first token (<s> / [CLS]).
    Cls,
}

/// `xlt embed` options.
#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// HF model folder: config.json, model.safetensors (or sharded), tokenizer.json.
    /// Default: the tiny XLM-R bundled with the repository.
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
