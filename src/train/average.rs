//! Snapshot averaging for zero-shot cross-lingual transfer ("One For All & All For One",
//! Schmidt, Vulić and Glavaš 2023): the uniform mean of every tensor over a list of saved model
//! folders, and the manifest a training grid writes its snapshots to, from which averaging sets
//! are selected (all snapshots, the last or best of each run, the global top-k by dev score).
//!
//! Averaging within one run is checkpoint averaging; averaging across runs trained with
//! different hyper-parameters is the same call on a selection that spans runs. All runs of such
//! a grid must share the task head's output space (OFA trains every run under one frozen head).
//!
//! The mean is streamed: one safetensors file is in memory at a time next to the running sum
//! (f64, one slot per parameter), never all snapshots at once. For N parameters the peak is
//! about 8N bytes of sums plus the largest shard file.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::model::heads::{read_heads, HEADS_FILE};
use crate::model::weights::checkpoint_files;
use crate::provenance::{AveragedSnapshot, Weights};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Tokenizer files copied verbatim from the first snapshot when present, so the averaged folder
/// loads with its tokenizer in xlt and in `transformers`.
pub const TOKENIZER_FILES: [&str; 5] =
    ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "sentencepiece.bpe.model", "vocab.txt"];

/// File name of the snapshot manifest a training run appends to.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What [`average`] wrote, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AverageReport {
    /// Number of snapshots averaged.
    pub snapshots: usize,
    /// Tensors written (averaged floats plus kept non-float buffers).
    pub tensors: usize,
    /// Elements of the averaged float tensors.
    pub parameters: usize,
    /// Non-float tensors (e.g. an integer `position_ids` buffer) written as found in the first
    /// snapshot; they must be identical in every snapshot.
    pub kept: Vec<String>,
    /// Tokenizer files copied from the first snapshot.
    pub copied: Vec<String>,
}

impl fmt::Display for AverageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "averaged {} snapshots: {} tensors, {} parameters", self.snapshots, self.tensors, self.parameters)?;
        if !self.kept.is_empty() {
            write!(f, " ({} non-float tensors kept from the first snapshot)", self.kept.len())?;
        }
        Ok(())
    }
}

/// One tensor of the running average.
enum Acc {
    /// A float tensor (f32/f16/bf16/f64 on disk): the running sum in f64, exact to far below
    /// f32 resolution for any realistic number of snapshots.
    Float { shape: Vec<usize>, sum: Vec<f64> },
    /// Any other dtype: the first snapshot's bytes, which every later snapshot must repeat.
    Kept { dtype: Dtype, shape: Vec<usize>, bytes: Vec<u8> },
}

/// An accumulator and the index of the last snapshot that supplied it (catches duplicates
/// across shards and tensors missing from a snapshot).
struct Slot {
    acc: Acc,
    seen: usize,
}

fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

/// Adds one stored float tensor, converted to f64, into `sum`; `sum.len()` equals its element
/// count (shapes are checked by the caller and sizes by safetensors).
fn add_into(sum: &mut [f64], view: &TensorView<'_>) {
    let b = view.data();
    match view.dtype() {
        Dtype::F32 => {
            for (s, c) in sum.iter_mut().zip(b.chunks_exact(4)) {
                *s += f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64;
            }
        }
        Dtype::F16 => {
            for (s, c) in sum.iter_mut().zip(b.chunks_exact(2)) {
                *s += half::f16::from_le_bytes([c[0], c[1]]).to_f64();
            }
        }
        Dtype::BF16 => {
            for (s, c) in sum.iter_mut().zip(b.chunks_exact(2)) {
                *s += half::bf16::from_le_bytes([c[0], c[1]]).to_f64();
            }
        }
        Dtype::F64 => {
            for (s, c) in sum.iter_mut().zip(b.chunks_exact(8)) {
                *s += f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            }
        }
        // Callers only pass float tensors.
        _ => {}
    }
}

/// Up to eight names, then a count.
fn list(names: &[&str]) -> String {
    const MAX: usize = 8;
    let mut s = names.iter().take(MAX).copied().collect::<Vec<_>>().join(", ");
    if names.len() > MAX {
        s.push_str(&format!(" and {} more", names.len() - MAX));
    }
    s
}

/// A snapshot's `config.json`: raw bytes (copied for the first snapshot), parsed JSON and the
/// validated configuration.
struct SnapshotConfig {
    path: PathBuf,
    bytes: Vec<u8>,
    json: Value,
    cfg: ModelConfig,
}

fn read_config(dir: &Path) -> Result<SnapshotConfig> {
    let path = dir.join("config.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let text = crate::fsutil::text_of(&path, bytes.clone())?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(&path, format!("expected an HF config.json (JSON object): {e}")))?;
    let cfg = ModelConfig::from_json(&json, &path)?;
    Ok(SnapshotConfig { path, bytes, json, cfg })
}

/// Checks that `other` describes the same architecture as `first`. Dropout rates are training
/// hyper-parameters and may differ between the runs of a grid; everything that decides tensor
/// shapes or the forward pass, and the label map of the head, must agree.
fn same_config(first: &SnapshotConfig, other: &SnapshotConfig, first_dir: &Path) -> Result<()> {
    let (a, b) = (&first.cfg, &other.cfg);
    let fields: [(&str, String, String); 10] = [
        ("model_type", a.family.model_type().into(), b.family.model_type().into()),
        ("hidden_size", a.hidden_size.to_string(), b.hidden_size.to_string()),
        ("num_hidden_layers", a.num_layers.to_string(), b.num_layers.to_string()),
        ("num_attention_heads", a.num_heads.to_string(), b.num_heads.to_string()),
        ("intermediate_size", a.intermediate_size.to_string(), b.intermediate_size.to_string()),
        ("vocab_size", a.vocab_size.to_string(), b.vocab_size.to_string()),
        ("max_position_embeddings", a.max_position_embeddings.to_string(), b.max_position_embeddings.to_string()),
        ("type_vocab_size", a.type_vocab_size.to_string(), b.type_vocab_size.to_string()),
        ("layer_norm_eps", a.layer_norm_eps.to_string(), b.layer_norm_eps.to_string()),
        ("pad_token_id", a.pad_token_id.to_string(), b.pad_token_id.to_string()),
    ];
    for (key, x, y) in fields {
        if x != y {
            return Err(Error::format(
                &other.path,
                format!(
                    "{key} is {y} but the first snapshot ({}) has {x}; snapshots to average must share the architecture",
                    first_dir.display()
                ),
            ));
        }
    }
    // Averaging heads whose label order differs would silently mix classes.
    let (la, lb) = (first.json.get("id2label"), other.json.get("id2label"));
    if la != lb {
        let show = |v: Option<&Value>| v.map_or_else(|| "none".to_string(), Value::to_string);
        return Err(Error::format(
            &other.path,
            format!(
                "id2label is {} but the first snapshot ({}) has {}; averaged heads must share their label order",
                show(lb),
                first_dir.display(),
                show(la)
            ),
        ));
    }
    Ok(())
}

/// Adds snapshot `i` (folder `dir`) into `slots`; snapshot 0 defines the tensor set.
fn accumulate(slots: &mut BTreeMap<String, Slot>, i: usize, dir: &Path, first_dir: &Path) -> Result<()> {
    let mismatch = |file: &Path, msg: String| Error::format(file, msg);
    for file in checkpoint_files(dir)? {
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::format(&file, format!("not a valid safetensors file (truncated or corrupt?): {e}")))?;
        for (name, view) in st.iter() {
            let shape = view.shape().to_vec();
            let dtype = view.dtype();
            let slot = match slots.get_mut(name) {
                Some(slot) if slot.seen == i => {
                    return Err(mismatch(&file, format!("tensor {name} appears twice in snapshot {}", dir.display())));
                }
                Some(slot) => slot,
                None if i == 0 => {
                    let acc = if is_float(dtype) {
                        let mut sum = vec![0.0f64; shape.iter().product()];
                        add_into(&mut sum, &view);
                        Acc::Float { shape, sum }
                    } else {
                        Acc::Kept { dtype, shape, bytes: view.data().to_vec() }
                    };
                    check_finite(&acc, name, &file)?;
                    slots.insert(name.to_string(), Slot { acc, seen: 0 });
                    continue;
                }
                None => {
                    return Err(mismatch(
                        &file,
                        format!("tensor {name} is not in the first snapshot ({})", first_dir.display()),
                    ));
                }
            };
            let expected = match &slot.acc {
                Acc::Float { shape, .. } | Acc::Kept { shape, .. } => shape,
            };
            if &shape != expected {
                return Err(mismatch(
                    &file,
                    format!(
                        "tensor {name} has shape {shape:?} but {expected:?} in the first snapshot ({})",
                        first_dir.display()
                    ),
                ));
            }
            match &mut slot.acc {
                Acc::Float { sum, .. } => {
                    if !is_float(dtype) {
                        return Err(mismatch(
                            &file,
                            format!(
                                "tensor {name} has dtype {dtype:?} but is a float tensor in the first snapshot ({})",
                                first_dir.display()
                            ),
                        ));
                    }
                    add_into(sum, &view);
                }
                Acc::Kept { dtype: d0, bytes: b0, .. } => {
                    if dtype != *d0 || view.data() != b0.as_slice() {
                        return Err(mismatch(
                            &file,
                            format!(
                                "non-float tensor {name} ({dtype:?}) differs from the first snapshot ({}, {d0:?}); \
                                 only float tensors are averaged, the others must be identical",
                                first_dir.display()
                            ),
                        ));
                    }
                }
            }
            check_finite(&slot.acc, name, &file)?;
            slot.seen = i;
        }
    }
    if slots.is_empty() {
        return Err(Error::format(dir, "snapshot holds no tensors"));
    }
    let missing: Vec<&str> = slots.iter().filter(|(_, s)| s.seen != i).map(|(n, _)| n.as_str()).collect();
    if !missing.is_empty() {
        return Err(Error::format(
            dir,
            format!("missing tensors {} that the first snapshot ({}) has", list(&missing), first_dir.display()),
        ));
    }
    Ok(())
}

/// The sums were finite before this file was added, so a non-finite sum means this file holds
/// a NaN or infinity (a diverged run), which would poison the whole average.
fn check_finite(acc: &Acc, name: &str, file: &Path) -> Result<()> {
    if let Acc::Float { sum, .. } = acc {
        if let Some(k) = sum.iter().position(|s| !s.is_finite()) {
            return Err(Error::format(
                file,
                format!(
                    "tensor {name} holds a non-finite value at flat index {k}; a diverged snapshot cannot be averaged"
                ),
            ));
        }
    }
    Ok(())
}

/// The head list ([`HEADS_FILE`]) every snapshot carries, which must be the same in all of
/// them (averaging tensors of different heads would be meaningless); `None` when none has one.
fn same_heads(snapshots: &[PathBuf]) -> Result<Option<Vec<u8>>> {
    let read = |dir: &PathBuf| -> Result<Option<Vec<u8>>> {
        let p = dir.join(HEADS_FILE);
        if !p.is_file() {
            return Ok(None);
        }
        let specs = read_heads(dir)?;
        serde_json::to_vec_pretty(&specs).map(Some).map_err(|e| Error::encode("JSON", e))
    };
    let first = read(&snapshots[0])?;
    for dir in &snapshots[1..] {
        if read(dir)? != first {
            return Err(Error::format(
                dir.join(HEADS_FILE),
                format!(
                    "the head list differs from the first snapshot's ({}); snapshots to average must share their heads",
                    snapshots[0].display()
                ),
            ));
        }
    }
    Ok(first)
}

/// Rejects an empty list, missing or repeated snapshots, and an output folder that is one of
/// the inputs or holds a sharded index that would shadow the new `model.safetensors`.
fn check_inputs(out_dir: &Path, snapshots: &[PathBuf]) -> Result<()> {
    if snapshots.is_empty() {
        return Err(Error::Data("averaging needs at least one snapshot; none were given".into()));
    }
    let mut canonical: Vec<PathBuf> = Vec::with_capacity(snapshots.len());
    for dir in snapshots {
        if !dir.is_dir() {
            return Err(Error::format(dir, "expected a snapshot folder (config.json + model.safetensors)"));
        }
        let c = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        if let Some(j) = canonical.iter().position(|p| *p == c) {
            return Err(Error::Data(format!(
                "snapshot {} is listed twice ({} and {}); a uniform average takes each snapshot once",
                dir.display(),
                snapshots[j].display(),
                dir.display()
            )));
        }
        canonical.push(c);
    }
    if out_dir.exists() {
        let out = out_dir.canonicalize().map_err(|e| Error::io(out_dir, e))?;
        if let Some(j) = canonical.iter().position(|p| *p == out) {
            return Err(Error::Data(format!(
                "output folder {} is the input snapshot {}; write the average elsewhere",
                out_dir.display(),
                snapshots[j].display()
            )));
        }
        let index = out_dir.join("model.safetensors.index.json");
        if index.exists() {
            return Err(Error::format(
                &index,
                "the output folder holds a sharded checkpoint whose index would shadow the averaged \
                 model.safetensors; choose an empty folder",
            ));
        }
    }
    Ok(())
}

/// Writes the uniform mean of `snapshots` (HF model folders as xlt saves them: `config.json` and
/// `model.safetensors` or shards, f32/f16/bf16) into `out_dir`: f32 `model.safetensors` with
/// metadata `{"format": "pt"}`, the first snapshot's `config.json` and its tokenizer files, each
/// written atomically. Tensor names are kept as stored (`roberta.encoder.layer.0...`).
///
/// Every snapshot must hold the same tensor names and shapes and the same architecture in its
/// config; any difference is an error naming the snapshot, the file and the tensor or field.
/// Snapshots are read one at a time; non-float tensors must be identical and are kept as is.
pub fn average(out_dir: &Path, snapshots: &[PathBuf]) -> Result<AverageReport> {
    check_inputs(out_dir, snapshots)?;
    let first_dir = &snapshots[0];
    let first = read_config(first_dir)?;
    let heads = same_heads(snapshots)?;
    let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
    for (i, dir) in snapshots.iter().enumerate() {
        if i > 0 {
            same_config(&first, &read_config(dir)?, first_dir)?;
        }
        accumulate(&mut slots, i, dir, first_dir)?;
    }

    let n = snapshots.len() as f64;
    let mut report = AverageReport { snapshots: snapshots.len(), tensors: slots.len(), ..Default::default() };
    // Turn each sum into f32 mean bytes, dropping the f64 sums as we go.
    let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(slots.len());
    for (name, slot) in slots {
        match slot.acc {
            Acc::Float { shape, sum } => {
                report.parameters += sum.len();
                let bytes: Vec<u8> = sum.iter().flat_map(|s| ((s / n) as f32).to_le_bytes()).collect();
                out.push((name, Dtype::F32, shape, bytes));
            }
            Acc::Kept { dtype, shape, bytes } => {
                report.kept.push(name.clone());
                out.push((name, dtype, shape, bytes));
            }
        }
    }
    let mut views = Vec::with_capacity(out.len());
    for (name, dtype, shape, bytes) in &out {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| Error::encode(format!("averaged tensor {name}"), e))?;
        views.push((name.as_str(), view));
    }
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let bytes = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| Error::encode(format!("the average for {}", out_dir.display()), e))?;
    drop(out);

    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    atomic_write(&out_dir.join("model.safetensors"), &bytes)?;
    drop(bytes);
    for name in TOKENIZER_FILES {
        let src = first_dir.join(name);
        if src.is_file() {
            let data = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
            atomic_write(&out_dir.join(name), &data)?;
            report.copied.push(name.to_string());
        }
    }
    // The head list, so the average loads as an xlt model (`xlt eval`, `xlt xtreme --encoder`).
    if let Some(heads) = &heads {
        atomic_write(&out_dir.join(HEADS_FILE), heads)?;
        report.copied.push(HEADS_FILE.to_string());
    }
    let mut inputs = Vec::with_capacity(snapshots.len());
    for dir in snapshots {
        let weights = match Weights::of_dir(dir)? {
            Weights::AsLoaded { .. } => None,
            w => Some(Box::new(w)),
        };
        inputs.push(AveragedSnapshot { path: dir.display().to_string(), weights });
    }
    Weights::Average { snapshots: inputs }.save(out_dir)?;
    // Last, so a folder with a config.json is a complete one.
    atomic_write(&out_dir.join("config.json"), &first.bytes)?;
    Ok(report)
}

/// One saved snapshot of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// The snapshot folder; relative paths are relative to the manifest's folder.
    pub path: PathBuf,
    /// Run identifier (e.g. `lr=2e-5,bs=32,seed=7`); runs of different hyper-parameters differ.
    pub run: String,
    /// Optimizer step at which the snapshot was taken.
    pub step: u64,
    /// Epoch, when snapshots are taken per epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Source-language validation score (higher is better), when it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_score: Option<f64>,
    /// The run's hyper-parameters (`learning_rate`, `batch_size` or `batch_size.<task>`,
    /// `seed`, `num_train_epochs`, `warmup_proportion`, `weight_decay`,
    /// `gradient_accumulation_steps`), so runs of one grid can be told apart and grouped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hparams: Option<std::collections::BTreeMap<String, f64>>,
    /// Scores of the snapshot per `<split>.<lang>` (`dev.de`, `test.de`): the task's primary
    /// metric on each language, written by `xlt score-snapshots`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<std::collections::BTreeMap<String, f64>>,
}

impl ManifestEntry {
    /// The recorded score `key` (`dev.de`, `test.de`), if scored.
    pub fn score(&self, key: &str) -> Option<f64> {
        self.scores.as_ref().and_then(|s| s.get(key).copied())
    }

    fn describe(&self) -> String {
        format!("run {:?} step {} ({})", self.run, self.step, self.path.display())
    }
}

/// The snapshots of one or more runs, stored as `{"entries": [...]}` in `manifest.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Snapshots in the order they were appended.
    pub entries: Vec<ManifestEntry>,
}

/// Which snapshots of a manifest to average.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every snapshot (within one run: checkpoint averaging; across runs: OFA's R-CA).
    All,
    /// The highest-step snapshot of each run (OFA's R-L).
    LastPerRun,
    /// The best-dev-score snapshot of each run, ties to the later step (OFA's R-DEV).
    BestPerRun,
    /// The k best snapshots by dev score over all runs, ties to the later step (OFA's Soup-k).
    TopK(usize),
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::All => write!(f, "all"),
            Selection::LastPerRun => write!(f, "last"),
            Selection::BestPerRun => write!(f, "best"),
            Selection::TopK(k) => write!(f, "top{k}"),
        }
    }
}

impl FromStr for Selection {
    type Err = Error;

    /// Parses `all`, `last`, `best` or `top<k>` (e.g. `top5`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Unknown(format!("selection {s:?}; expected all, last, best or top<k> with k >= 1"));
        match s {
            "all" => Ok(Selection::All),
            "last" => Ok(Selection::LastPerRun),
            "best" => Ok(Selection::BestPerRun),
            _ => {
                let k: usize = s.strip_prefix("top").ok_or_else(bad)?.parse().map_err(|_| bad())?;
                if k == 0 {
                    return Err(bad());
                }
                Ok(Selection::TopK(k))
            }
        }
    }
}

impl Manifest {
    /// Reads `path` without resolving entry paths, checking every entry.
    fn read_raw(path: &Path) -> Result<Self> {
        let text = crate::fsutil::read_text(path, Some("snapshot manifest"))?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::format(path, format!("expected a snapshot manifest (JSON): {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::format(path, "expected a JSON object {\"entries\": [...]}".to_string()))?;
        if let Some(k) = obj.keys().find(|k| k.as_str() != "entries") {
            return Err(Error::format(path, format!("unknown field {k:?}; a manifest holds only \"entries\"")));
        }
        let list = obj
            .get("entries")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::format(path, "expected an \"entries\" array".to_string()))?;
        let mut entries = Vec::with_capacity(list.len());
        for (i, e) in list.iter().enumerate() {
            let entry: ManifestEntry = serde_json::from_value(e.clone()).map_err(|err| {
                Error::format(
                    path,
                    format!(
                        "entries[{i}]: {err}; expected path, run, step, optional epoch, dev_score, hparams and scores"
                    ),
                )
            })?;
            entries.push(entry);
        }
        let m = Manifest { entries };
        m.validate(path)?;
        Ok(m)
    }

    /// Each entry has a path and a finite score; (run, step) and paths are unique.
    fn validate(&self, path: &Path) -> Result<()> {
        let mut keys: HashMap<(&str, u64), usize> = HashMap::new();
        let mut paths: HashMap<&Path, usize> = HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            if e.path.as_os_str().is_empty() {
                return Err(Error::format(path, format!("entries[{i}] ({}): empty snapshot path", e.describe())));
            }
            if let Some(s) = e.dev_score {
                if !s.is_finite() {
                    return Err(Error::format(
                        path,
                        format!("entries[{i}] ({}): dev_score {s} is not finite", e.describe()),
                    ));
                }
            }
            if let Some(j) = keys.insert((e.run.as_str(), e.step), i) {
                return Err(Error::format(
                    path,
                    format!("entries[{i}] ({}) repeats the run and step of entries[{j}]", e.describe()),
                ));
            }
            if let Some(j) = paths.insert(e.path.as_path(), i) {
                return Err(Error::format(
                    path,
                    format!("entries[{i}] ({}) repeats the snapshot path of entries[{j}]", e.describe()),
                ));
            }
        }
        Ok(())
    }

    /// Reads the manifest at `path`; relative entry paths are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let mut m = Self::read_raw(path)?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        for e in &mut m.entries {
            if e.path.is_relative() {
                e.path = base.join(&e.path);
            }
        }
        Ok(m)
    }

    /// The manifests of several runs as one (entry paths resolved): every run's snapshots,
    /// in the order given. A run name or snapshot folder found in two manifests is an error
    /// naming both files (runs of one grid need distinct names).
    pub fn merge(paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            return Err(Error::Setting("no manifest to average from".into()));
        }
        let mut out = Manifest::default();
        let mut owner: HashMap<String, usize> = HashMap::new();
        for (k, p) in paths.iter().enumerate() {
            let m = Self::load(p)?;
            for e in &m.entries {
                if let Some(&j) = owner.get(&e.run).filter(|&&j| j != k) {
                    return Err(Error::Data(format!(
                        "run {:?} is in {} and in {}: runs averaged together need distinct names",
                        e.run,
                        paths[j].display(),
                        p.display()
                    )));
                }
                owner.insert(e.run.clone(), k);
            }
            out.entries.extend(m.entries);
        }
        out.validate(&paths[0])?;
        Ok(out)
    }

    /// The manifests of every run in the experiment folder `dir` (`<dir>/runs/*/snapshots/`,
    /// or `<dir>/*/snapshots/` for a folder of runs), sorted by run folder.
    pub fn run_manifests(dir: &Path) -> Result<Vec<PathBuf>> {
        let base = if dir.join("runs").is_dir() { dir.join("runs") } else { dir.to_path_buf() };
        let mut found: Vec<PathBuf> = std::fs::read_dir(&base)
            .map_err(|e| Error::io(&base, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("snapshots").join("manifest.json"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(Error::format(
                &base,
                "no run here has snapshots (<run>/snapshots/manifest.json); train with --snapshot-every",
            ));
        }
        Ok(found)
    }

    /// Rewrites the manifest at `path` atomically after `edit` changed it (entry paths as
    /// stored, relative ones relative to the manifest's folder). One writer per manifest.
    pub fn rewrite(path: &Path, edit: impl FnOnce(&mut Manifest) -> Result<()>) -> Result<()> {
        let mut m = Self::read_raw(path)?;
        edit(&mut m)?;
        m.validate(path)?;
        let text =
            serde_json::to_string_pretty(&m).map_err(|e| Error::encode(format!("manifest {}", path.display()), e))?;
        atomic_write(path, format!("{text}\n").as_bytes())
    }

    /// Appends `entry` to the manifest at `path` (created with its folder if missing) and
    /// rewrites the file atomically. The entry's path is stored as given: pass it relative to
    /// the manifest's folder to keep the folder relocatable. An entry for the same snapshot
    /// folder, run and step is replaced, not repeated (a resumed run replays the steps after
    /// its checkpoint and saves their snapshots again); any other repetition is an error. One
    /// writer per manifest.
    pub fn append(path: &Path, entry: ManifestEntry) -> Result<()> {
        let mut m = if path.exists() {
            Self::parse(&crate::fsutil::read_text(path, None)?, path)?
        } else {
            Manifest::default()
        };
        match m.entries.iter_mut().find(|e| e.path == entry.path && e.run == entry.run && e.step == entry.step) {
            Some(old) => *old = entry,
            None => m.entries.push(entry),
        }
        m.validate(path)?;
        let text =
            serde_json::to_string_pretty(&m).map_err(|e| Error::encode(format!("manifest {}", path.display()), e))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        atomic_write(path, format!("{text}\n").as_bytes())
    }

    /// The dev score of every entry, or an error naming the first entry without one.
    fn scores(&self, selection: Selection) -> Result<Vec<f64>> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| match e.dev_score {
                Some(s) if s.is_finite() => Ok(s),
                _ => Err(Error::Data(format!(
                    "manifest entries[{i}] ({}) has no finite dev_score; selection {selection} ranks by dev score",
                    e.describe()
                ))),
            })
            .collect()
    }

    /// For each run in order of first appearance, the entry index that `better(candidate,
    /// current)` prefers.
    fn per_run(&self, better: impl Fn(usize, usize) -> bool) -> Vec<usize> {
        let mut order: Vec<usize> = Vec::new();
        let mut by_run: HashMap<&str, usize> = HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            match by_run.get(e.run.as_str()) {
                Some(&slot) => {
                    if better(i, order[slot]) {
                        order[slot] = i;
                    }
                }
                None => {
                    by_run.insert(e.run.as_str(), order.len());
                    order.push(i);
                }
            }
        }
        order
    }

    /// The snapshot folders `selection` picks. `All` keeps manifest order; the per-run modes
    /// give one snapshot per run in order of each run's first entry; `TopK` ranks by dev score
    /// (descending), then step (later first), then manifest order. Best and top-k need a dev
    /// score on every entry; k must be between 1 and the number of entries.
    pub fn select(&self, selection: Selection) -> Result<Vec<PathBuf>> {
        if self.entries.is_empty() {
            return Err(Error::Data(format!("manifest has no entries to select {selection} from")));
        }
        let step = |i: usize| self.entries[i].step;
        let picked: Vec<usize> = match selection {
            Selection::All => (0..self.entries.len()).collect(),
            Selection::LastPerRun => self.per_run(|i, j| step(i) > step(j)),
            Selection::BestPerRun => {
                let s = self.scores(selection)?;
                self.per_run(|i, j| s[i].total_cmp(&s[j]).then(step(i).cmp(&step(j))).is_gt())
            }
            Selection::TopK(k) => {
                if k == 0 || k > self.entries.len() {
                    return Err(Error::Data(format!(
                        "selection top{k}: k must be between 1 and the {} snapshots in the manifest",
                        self.entries.len()
                    )));
                }
                let s = self.scores(selection)?;
                let mut idx: Vec<usize> = (0..self.entries.len()).collect();
                // Stable sort: equal score and step keep manifest order.
                idx.sort_by(|&i, &j| s[j].total_cmp(&s[i]).then(step(j).cmp(&step(i))));
                idx.truncate(k);
                idx
            }
        };
        Ok(picked.into_iter().map(|i| self.entries[i].path.clone()).collect())
    }
}
