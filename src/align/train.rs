//! `xlt align-train`: fine-tuning an encoder as a word aligner on a parallel corpus with
//! awesome-align's objectives (Dou & Neubig 2021), on the ordinary trainer (checkpoints, exact
//! resume, progress bar, JSONL log); the result is an HF model folder that `xlt align` and
//! `xlt train` load.
//!
//! - **`so`, self-training**: each batch's pairs are aligned by the model as it is at that step
//!   (no dropout, awesome-align's softmax extraction at `--layer` and `--threshold`); the guide
//!   marks every piece pair whose words are aligned; the objective
//!   ([`crate::model::align_loss`]) pulls both softmaxes towards the guide, through the encoder
//!   up to that layer only ([`crate::model::TaskModel::accumulate_so`]).
//! - **`tlm`, translation language modelling**: each pair as one sequence, both sides with their
//!   special tokens (`<s> src </s><s> tgt </s>`), each side cut to half the model's positions;
//!   the order (source first or target first) and the side whose pieces are masked (BERT's
//!   15 %, 80/10/10 recipe) are drawn per pair; the loss is the MLM head's.
//!
//! The corpus has awesome-align's format, `src ||| tgt` per line, words split on whitespace and
//! tokenised one by one as `xlt align` does. A line that is not a pair is an error naming its
//! file and line (training data is never skipped silently).
//!
//! Differences from awesome-align's `run_train.py`, by design: an optimizer step trains one
//! objective, drawn by the trainer's task sampler (awesome-align sums both objectives' losses
//! in every step); the guide comes from a forward without dropout (awesome-align computes it
//! in whatever mode the model is in when the batch is collated); TLM masks one side per pair
//! in one loss (awesome-align masks each side in turn, two losses per batch).

use super::aligner::{pad_batch, Side, WordPieces};
use super::extract::{piece_links, word_links, Method};
use super::pairs::parse_pair;
use crate::config::ModelConfig;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::features::mlm::mask_tokens;
use crate::model::batch::{Targets, TaskBatch};
use crate::model::{assign_prefixes, HostModel, SoBatch, TaskModel};
use crate::rng::Rng;
use crate::tasks::lookup;
use crate::tokenize::Tokenizer;
use crate::train::batches::{FeatureConfig, Features, MLM_PROBABILITY};
use crate::train::trainer::{RunSummary, TrainConfig, TrainSource, TrainTask, Trainer, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A training objective of the aligner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Self-training towards the model's own alignments.
    So,
    /// Translation language modelling.
    Tlm,
    /// Consistency of the two directions' alignment probabilities (added to self-training's
    /// batches, or alone on them).
    Co,
}

impl Objective {
    /// The objective's name (`so`, `tlm`), also its task name in the run.
    pub fn name(self) -> &'static str {
        match self {
            Objective::So => "so",
            Objective::Tlm => "tlm",
            Objective::Co => "co",
        }
    }

    /// Parses `so` / `tlm`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "so" => Ok(Objective::So),
            "tlm" => Ok(Objective::Tlm),
            "co" => Ok(Objective::Co),
            other => Err(Error::Setting(format!("--objectives: unknown objective `{other}` (expected so, tlm, co)"))),
        }
    }
}

/// One sentence pair of the corpus, tokenised word by word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParallelPair {
    /// Source side.
    pub src: Side,
    /// Target side.
    pub tgt: Side,
}

/// A parallel corpus for one objective, with the model's number of positions.
#[derive(Clone, Debug)]
pub struct ParallelSet {
    /// The pairs, in file order.
    pub pairs: Vec<ParallelPair>,
    /// The model's positions (special tokens included).
    pub max_seq_len: usize,
}

/// What the self-training objective reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoSettings {
    /// hidden_states index the alignments and the loss read (awesome-align's `--align_layer`).
    pub layer: usize,
    /// The softmax threshold of the guide's alignments.
    pub threshold: f32,
    /// Whether the self-training term is on (off: only consistency, no guide).
    pub so: bool,
    /// Whether the consistency term is on.
    pub co: bool,
}

impl ParallelSet {
    /// Pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The longest sequence pair `i` gives: the TLM sequence, or a self-training side.
    pub fn seq_len(&self, i: usize, tlm: bool) -> usize {
        let p = &self.pairs[i];
        if tlm {
            let half = self.max_seq_len / 2;
            (p.src.ids.len() + 2).min(half) + (p.tgt.ids.len() + 2).min(half)
        } else {
            p.src.ids.len().max(p.tgt.ids.len()) + 2
        }
    }

    /// The TLM batch of pairs `idx`: per pair one sequence of both sides (the order drawn),
    /// one side's pieces masked (the side drawn), labels on the masked pieces.
    pub fn tlm_batch(&self, idx: &[usize], tok: &Tokenizer, rng: &mut Rng) -> Result<TaskBatch> {
        let half = self.max_seq_len / 2;
        if half < 3 {
            return Err(Error::Setting(format!("a model of {} positions cannot hold a TLM pair", self.max_seq_len)));
        }
        let side = |s: &Side| s.sequence(tok, half - 2);
        let (vocab, mask_id) = (tok.vocab_size(), tok.mask_id()?);
        let mut seqs = Vec::with_capacity(idx.len());
        let mut labels = Vec::with_capacity(idx.len());
        for &i in idx {
            let p = &self.pairs[i];
            let (a, b) = if rng.next_f32() < 0.5 { (side(&p.src), side(&p.tgt)) } else { (side(&p.tgt), side(&p.src)) };
            let first = rng.next_f32() < 0.5;
            // Never selected: special tokens and the side that stays visible.
            let special: Vec<bool> = (0..a.len() + b.len())
                .map(|k| {
                    let (in_a, at) = if k < a.len() { (true, k) } else { (false, k - a.len()) };
                    let len = if in_a { a.len() } else { b.len() };
                    at == 0 || at + 1 == len || in_a != first
                })
                .collect();
            let ids: Vec<u32> = a.iter().chain(&b).copied().collect();
            let (masked, y) = mask_tokens(&ids, &special, vocab, mask_id, rng, MLM_PROBABILITY)?;
            seqs.push(masked);
            labels.push(y);
        }
        let batch = pad_batch(&seqs, tok.pad_id);
        let mut y = vec![crate::model::IGNORE_INDEX; batch.b * batch.t];
        for (r, l) in labels.iter().enumerate() {
            y[r * batch.t..r * batch.t + l.len()].copy_from_slice(l);
        }
        Ok(TaskBatch { batch, targets: Targets::Labels(y) })
    }

    /// The self-training batch of pairs `idx`: sources then targets, each
    /// `[CLS] pieces [SEP]`, and each pair's guide from `model`'s own alignments now (no
    /// dropout; awesome-align's softmax at `so.layer` and `so.threshold`).
    pub fn so_batch(
        &self,
        idx: &[usize],
        tok: &Tokenizer,
        model: &mut dyn TaskModel,
        so: SoSettings,
    ) -> Result<SoBatch> {
        let pairs: Vec<&ParallelPair> = idx.iter().map(|&i| &self.pairs[i]).collect();
        let seqs: Vec<Vec<u32>> = (pairs.iter().map(|p| &p.src))
            .chain(pairs.iter().map(|p| &p.tgt))
            .map(|s| s.sequence(tok, usize::MAX))
            .collect();
        let batch = pad_batch(&seqs, tok.pad_id);
        let c = model.structure().cfg.hidden_size;
        let (np, t) = (pairs.len(), batch.t);
        if !so.so {
            let guide = pairs.iter().map(|p| vec![0.0; p.src.ids.len() * p.tgt.ids.len()]).collect();
            let lens = pairs.iter().map(|p| (p.src.ids.len(), p.tgt.ids.len())).collect();
            return Ok(SoBatch { batch, lens, guide, consistency: so.co });
        }
        // (2P, T, C)
        let hidden = model.encode_layer(&batch, so.layer)?;
        let method = Method::Softmax { threshold: so.threshold };
        let mut guide = Vec::with_capacity(np);
        let mut lens = Vec::with_capacity(np);
        for (k, p) in pairs.iter().enumerate() {
            let (m, n) = (p.src.ids.len(), p.tgt.ids.len());
            let hs = &hidden[(k * t + 1) * c..(k * t + 1 + m) * c];
            let ht = &hidden[((np + k) * t + 1) * c..((np + k) * t + 1 + n) * c];
            let linked: HashSet<(usize, usize)> =
                word_links(&piece_links(method, hs, ht, c), &p.src.words, &p.tgt.words).into_iter().collect();
            let mut g = vec![0.0f32; m * n];
            for (i, &wi) in p.src.words.iter().enumerate() {
                for (j, &wj) in p.tgt.words.iter().enumerate() {
                    if linked.contains(&(wi, wj)) {
                        g[i * n + j] = 1.0;
                    }
                }
            }
            guide.push(g);
            lens.push((m, n));
        }
        Ok(SoBatch { batch, lens, guide, consistency: so.co })
    }
}

/// Reads a `src ||| tgt` corpus, each word tokenised alone; sides longer than the model's
/// positions keep their first pieces (counted in the second value). A line that is not a pair
/// (see [`parse_pair`]), or a side without a piece, is an error naming the file and line.
pub fn read_corpus(path: &Path, tok: &Tokenizer, cfg: &ModelConfig) -> Result<(Vec<ParallelPair>, usize)> {
    let text = crate::fsutil::read_text(path, Some("parallel corpus"))?;
    let wp = WordPieces::new(tok);
    let max_pieces = cfg.max_seq_len().saturating_sub(2);
    let mut pairs = Vec::new();
    let mut truncated = 0;
    for (k, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), k + 1);
        let Some((src, tgt)) = parse_pair(line) else {
            return Err(Error::Data(format!(
                "{}: not a sentence pair (expected `source words ||| target words`, both sides non-empty)",
                at()
            )));
        };
        let (s, t) = (wp.side(&src, max_pieces)?, wp.side(&tgt, max_pieces)?);
        if s.ids.is_empty() || t.ids.is_empty() {
            return Err(Error::Data(format!("{}: a side tokenises to no piece", at())));
        }
        truncated += usize::from(s.truncated || t.truncated);
        pairs.push(ParallelPair { src: s, tgt: t });
    }
    if pairs.is_empty() {
        return Err(Error::Data(format!("{}: no sentence pair", path.display())));
    }
    Ok((pairs, truncated))
}

/// Everything `xlt align-train` needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlignTrainRequest {
    /// The model folder to start from (HF or xlt: config.json, safetensors, tokenizer.json).
    pub model: PathBuf,
    /// A tokenizer file other than the model folder's `tokenizer.json`.
    pub tokenizer: Option<PathBuf>,
    /// The parallel corpus (`src ||| tgt`).
    pub input: PathBuf,
    /// The run folder (checkpoints, log; the fine-tuned model in `model/`).
    pub run_dir: PathBuf,
    /// Objectives, each a task of the run.
    pub objectives: Vec<Objective>,
    /// hidden_states index self-training reads (awesome-align's `--align_layer`, 8).
    pub layer: usize,
    /// Softmax threshold of self-training's alignments (1e-3).
    pub threshold: f32,
    /// Pairs per micro-batch.
    pub batch_size: usize,
    /// Optimizer, schedule, seed and checkpointing.
    pub train: TrainConfig,
}

impl AlignTrainRequest {
    /// awesome-align's fine-tuning recipe (`--train_so --train_tlm`, learning rate 2e-5, one
    /// epoch, no warm-up or weight decay, 8 pairs per step) for `model`, `input` and `run_dir`.
    pub fn new(model: PathBuf, input: PathBuf, run_dir: PathBuf) -> Self {
        let train = TrainConfig {
            learning_rate: 2e-5,
            warmup_proportion: 0.0,
            weight_decay: 0.0,
            num_train_epochs: 1.0,
            train_examples_cap: None,
            eval_every_steps: 0,
            no_improvements_for_n_evals: 0,
            do_val: false,
            ..TrainConfig::default()
        };
        AlignTrainRequest {
            model,
            tokenizer: None,
            input,
            run_dir,
            objectives: vec![Objective::So, Objective::Tlm],
            layer: super::aligner::DEFAULT_LAYER,
            threshold: super::aligner::DEFAULT_THRESHOLD,
            batch_size: 8,
            train,
        }
    }

    /// What a resumed run must share with the checkpoint: every setting, the corpus's and the
    /// starting model's contents.
    pub fn identity(&self) -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(self).map_err(|e| Error::encode("JSON", e))?;
        if let Some(m) = v.as_object_mut() {
            for key in ["model", "tokenizer", "input", "run_dir"] {
                m.remove(key);
            }
        }
        let tokenizer = match &self.tokenizer {
            Some(p) => Some(crate::provenance::hash_file(p)?),
            None => None,
        };
        Ok(serde_json::json!({
            "settings": v,
            "corpus": crate::provenance::hash_file(&self.input)?,
            "model": crate::provenance::model_hash(&self.model)?,
            "tokenizer": tokenizer,
        }))
    }
}

/// The starting model with an MLM head: the folder's own (`lm_head.*` / `cls.predictions.*`,
/// as pretrained checkpoints ship it) when it has every tensor of one, else a fresh head, with
/// a note.
fn load_with_mlm_head(dir: &Path, seed: u64) -> Result<HostModel> {
    let mut heads = vec![crate::train::setup::head_spec(lookup("mlm")?)];
    assign_prefixes(&mut heads);
    let (mut m, mut loaded) = HostModel::load_partial(dir, heads, seed, true)?;
    let s = &m.structure;
    let missing: Vec<&str> =
        s.layout.tensors.iter().filter(|t| !t.encoder && !loaded.contains(&t.name)).map(|t| t.name.as_str()).collect();
    if !missing.is_empty() {
        eprintln!("note: {} has no MLM head (no {}); TLM starts from a fresh one", dir.display(), missing.join(", "));
        // The head's tensors that were there are drawn afresh too: a head is whole or new.
        let heads: Vec<&String> = s.layout.tensors.iter().filter(|t| !t.encoder).map(|t| &t.name).collect();
        loaded.retain(|n| !heads.contains(&n));
        crate::model::init::init_params_except(&mut m.params, &s.layout, &s.cfg, seed, &loaded);
    }
    Ok(m)
}

/// Runs (or, with `resume`, continues) the aligner's fine-tuning; `stop_at` ends it early after
/// that many steps, leaving a checkpoint (tests of resuming). Returns the trainer's summary
/// (`None` when stopped early).
pub fn align_train(
    req: &AlignTrainRequest,
    device: &Device,
    resume: bool,
    progress: bool,
    stop_at: Option<u64>,
) -> Result<Option<RunSummary>> {
    if req.objectives.is_empty() {
        return Err(Error::Setting("--objectives: at least one of so, tlm".into()));
    }
    if req.batch_size == 0 {
        return Err(Error::Setting("--batch-size must be at least 1".into()));
    }
    if !(req.threshold.is_finite() && (0.0..1.0).contains(&req.threshold)) {
        return Err(Error::Setting(format!("--threshold {}: expected a probability in [0, 1)", req.threshold)));
    }
    let cfg = ModelConfig::from_file(&req.model.join("config.json"))?;
    if req.layer == 0 || req.layer > cfg.num_layers {
        return Err(Error::Setting(format!(
            "--layer {}: self-training reads a layer's output, 1..={} for this model",
            req.layer, cfg.num_layers
        )));
    }
    let tok_path = req.tokenizer.clone().unwrap_or_else(|| req.model.join("tokenizer.json"));
    let tok = Tokenizer::from_file(&tok_path, cfg.family)?;
    if tok.vocab_size() > cfg.vocab_size {
        return Err(Error::Setting(format!(
            "the tokenizer has {} tokens but the model's vocabulary only {}",
            tok.vocab_size(),
            cfg.vocab_size
        )));
    }
    let identity = req.identity()?;
    if resume {
        crate::train::setup::check_identity(&req.run_dir, &identity)?;
    }
    let (pairs, truncated) = read_corpus(&req.input, &tok, &cfg)?;
    if truncated > 0 {
        eprintln!("note: {truncated} pairs have a side longer than the model's positions: its first pieces are kept");
    }
    let set = ParallelSet { pairs, max_seq_len: cfg.max_seq_len() };
    let spec = lookup("mlm")?;
    let mut seen = HashSet::new();
    for &o in &req.objectives {
        if !seen.insert(o) {
            return Err(Error::Setting(format!("--objectives: {} given twice", o.name())));
        }
    }
    // so and co share their batches (one task: `so`, `co` or `so+co`); tlm is a task of its own.
    let (so, co) = (seen.contains(&Objective::So), seen.contains(&Objective::Co));
    let mut objectives: Vec<(String, Features)> = Vec::new();
    if so || co {
        let name = [(so, "so"), (co, "co")].iter().filter(|x| x.0).map(|x| x.1).collect::<Vec<_>>().join("+");
        let settings = SoSettings { layer: req.layer, threshold: req.threshold, so, co };
        objectives.push((name, Features::SelfTraining(set.clone(), settings)));
    }
    if seen.contains(&Objective::Tlm) {
        objectives.push(("tlm".into(), Features::Tlm(set.clone())));
    }
    let mut tasks = Vec::new();
    for (name, features) in objectives {
        tasks.push(TrainTask {
            name,
            spec,
            head: 0,
            label_names: Vec::new(),
            train: vec![TrainSource { lang: "parallel".into(), features }],
            val: Validation::None("an aligner's fine-tuning has no validation set: the last weights are kept".into()),
            batch_size: req.batch_size,
        });
    }
    let model = load_with_mlm_head(&req.model, req.train.seed)?;
    let features = FeatureConfig::new(cfg.max_seq_len());
    let mut files = vec![(tok_path, "tokenizer.json".to_string())];
    for name in ["tokenizer_config.json", "special_tokens_map.json", "sentencepiece.bpe.model", "vocab.txt"] {
        let p = req.model.join(name);
        if req.tokenizer.is_none() && p.is_file() {
            files.push((p, name.to_string()));
        }
    }
    let mut trainer = Trainer::new(model, &tok, tasks, req.train.clone(), features, &req.run_dir, resume, device)?
        .with_model_files(files)
        .with_identity(identity)
        .with_progress(progress);
    let text = serde_json::to_string_pretty(req).map_err(|e| Error::encode("JSON", e))?;
    crate::fsutil::atomic_write(&req.run_dir.join("align_train.json"), text.as_bytes())?;
    let name = req.run_dir.file_name().map_or("align-train".into(), |n| n.to_string_lossy().into_owned());
    trainer.run(&name, stop_at)
}
