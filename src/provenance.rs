//! Where a reported number comes from, and whether a result on disk still belongs to its inputs.
//!
//! [`Weights`] says which weights a model folder holds: the best evaluation of a run (by which
//! score, on which data, how many examples, at which step), the last step of a run (and why no
//! selection was made), a snapshot, an average of which snapshots, or a folder used as found.
//! The trainer writes it as [`WEIGHTS_FILE`] beside every model it saves (`best/`, `model/`,
//! `snapshots/step-N/`), `xlt average` beside the average; `xlt eval`, `xlt xtreme` and
//! `xlt demo` copy it into every result they report.
//!
//! [`Fingerprint`] identifies what a result was made from: a hash of the encoder's files, a
//! hash of every data file read, and the settings that decide the numbers. `xlt xtreme` stores
//! it with each finished task and re-runs a task whose fingerprint no longer matches, saying
//! which part changed ([`Fingerprint::differences`]). Hashes are XXH3-128 of the file bytes.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// File beside a saved model's weights describing them ([`Weights`]).
pub const WEIGHTS_FILE: &str = "xlt_weights.json";

/// One source of the model-selection score: which task was scored, by which metric, on which
/// data, with how many examples per evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelectionSource {
    /// The task of the run being selected (`xquad`, `mnli`, ...).
    pub task: String,
    /// The score compared: `acc`, `(f1 + em) / 2`, `-perplexity`, ...
    pub metric: String,
    /// Where the examples came from: task, language and split, e.g. `squad_v1 val`.
    pub data: String,
    /// Examples scored at each evaluation (the first N of `data`).
    pub examples: usize,
}

/// How the best weights of a run were chosen.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// The aggregate compared between evaluations (`mean over tasks`).
    pub criterion: String,
    /// Its parts.
    pub sources: Vec<SelectionSource>,
    /// Set when the selection data is also an evaluation set (selected on English dev of a
    /// task whose English dev is XTREME's English test set, on request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caveat: Option<String>,
}

/// Which weights a model folder holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Weights {
    /// The evaluation with the best selection score in a run.
    Best {
        /// Run name.
        run: String,
        /// Step whose weights these are.
        step: u64,
        /// Steps the run took.
        steps: u64,
        /// The selection score at `step`.
        score: f64,
        /// How it was chosen.
        selection: Selection,
    },
    /// The weights after a run's last step: no selection.
    Last {
        /// Run name.
        run: String,
        /// Steps the run took.
        steps: u64,
        /// Why these and not the best of several evaluations.
        reason: String,
    },
    /// A snapshot taken during a run.
    Snapshot {
        /// Run name.
        run: String,
        /// Step of the snapshot.
        step: u64,
        /// Epoch, when snapshots are per epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
        /// Selection score at that step (the run's selection data), when measured.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dev_score: Option<f64>,
    },
    /// The uniform mean of snapshots.
    Average {
        /// The snapshot folders, in the order given, each with its own record when it had one.
        snapshots: Vec<AveragedSnapshot>,
    },
    /// A model folder used as found (an HF model, a pre-trained encoder), without an xlt record.
    AsLoaded {
        /// The folder.
        path: String,
    },
}

/// One input of an average.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AveragedSnapshot {
    /// The snapshot folder.
    pub path: String,
    /// Its own record, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Box<Weights>>,
}

impl Weights {
    /// The record in `dir` ([`WEIGHTS_FILE`]), or [`Weights::AsLoaded`] when there is none.
    pub fn of_dir(dir: &Path) -> Result<Weights> {
        let path = dir.join(WEIGHTS_FILE);
        if !path.is_file() {
            return Ok(Weights::AsLoaded { path: dir.display().to_string() });
        }
        let text = crate::fsutil::read_text(&path, None)?;
        serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not an xlt weights record: {e}")))
    }

    /// Writes the record into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::encode("JSON", e))?;
        crate::fsutil::atomic_write(&dir.join(WEIGHTS_FILE), format!("{text}\n").as_bytes())
    }

    /// One line for tables and logs.
    pub fn describe(&self) -> String {
        match self {
            Weights::Best { run, step, steps, score, selection } => {
                let parts: Vec<String> = selection
                    .sources
                    .iter()
                    .map(|s| format!("{} {} on the first {} examples of {}", s.task, s.metric, s.examples, s.data))
                    .collect();
                let by = match parts.as_slice() {
                    [one] => one.clone(),
                    many => format!("{} of {}", selection.criterion, many.join("; ")),
                };
                let mut s = format!("best of run {run} (step {step} of {steps}) by {by}: {score:.2}");
                if let Some(c) = &selection.caveat {
                    s.push_str(&format!(" [{c}]"));
                }
                s
            }
            Weights::Last { run, steps, reason } => format!("last step ({steps}) of run {run}: {reason}"),
            Weights::Snapshot { run, step, epoch, .. } => match epoch {
                Some(e) => format!("snapshot of run {run} at step {step} (epoch {e})"),
                None => format!("snapshot of run {run} at step {step}"),
            },
            Weights::Average { snapshots } => format!(
                "uniform average of {} snapshots: {}",
                snapshots.len(),
                snapshots.iter().map(|s| s.path.as_str()).collect::<Vec<_>>().join(", ")
            ),
            Weights::AsLoaded { path } => format!("as loaded from {path}"),
        }
    }

    /// Whether the weights were selected on data that is also reported as an evaluation set.
    pub fn optimistic(&self) -> bool {
        matches!(self, Weights::Best { selection, .. } if selection.caveat.is_some())
    }
}

// ---------------------------------------------------------------------------------------------
// Fingerprints

/// XXH3-128 of `path`'s bytes, as 32 hex digits (read in 8 MiB pieces).
pub fn hash_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:032x}", h.digest128()))
}

/// The hash of a model folder's weights, configuration and tokenizer: one hash over the
/// per-file hashes of `config.json`, every safetensors file (or shard) and `tokenizer.json`
/// when present.
pub fn model_hash(dir: &Path) -> Result<String> {
    let mut files = vec![dir.join("config.json")];
    files.extend(crate::model::weights::checkpoint_files(dir)?);
    let tok = dir.join("tokenizer.json");
    if tok.is_file() {
        files.push(tok);
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        h.update(name.as_bytes());
        h.update(hash_file(f)?.as_bytes());
    }
    Ok(format!("{:032x}", h.digest128()))
}

/// What a result was made from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// [`model_hash`] of the encoder.
    pub encoder: String,
    /// Hash of every data file read, by its path relative to the data folder.
    pub data: BTreeMap<String, String>,
    /// The settings that decide the numbers.
    pub settings: Value,
}

impl Fingerprint {
    /// Hashes `files` (each under `root`, keyed by its path relative to it).
    pub fn hash_data(root: &Path, files: &[std::path::PathBuf]) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for f in files {
            let key = f.strip_prefix(root).unwrap_or(f).display().to_string();
            out.insert(key, hash_file(f)?);
        }
        Ok(out)
    }

    /// What differs between `self` (the stored fingerprint) and `now`, one phrase each; empty
    /// when they are equal.
    pub fn differences(&self, now: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        if self.encoder != now.encoder {
            out.push("the encoder's files differ".to_string());
        }
        for (k, v) in &now.data {
            match self.data.get(k) {
                None => out.push(format!("data file {k} was not read before")),
                Some(old) if old != v => out.push(format!("data file {k} changed")),
                Some(_) => {}
            }
        }
        for k in self.data.keys().filter(|k| !now.data.contains_key(*k)) {
            out.push(format!("data file {k} is no longer read"));
        }
        out.extend(setting_differences(&self.settings, &now.settings));
        out
    }
}

/// Dotted keys whose values differ between two JSON settings objects, as
/// `setting a.b: old → new`.
pub fn setting_differences(old: &Value, new: &Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or_else(|| "unset".to_string(), Value::to_string);
            format!("setting {k}: {} → {}", show(a.get(k)), show(b.get(k)))
        })
        .collect()
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}
