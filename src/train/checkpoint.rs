//! Training checkpoints: everything needed to continue a run exactly.
//!
//! A checkpoint is a folder:
//! - `config.json` + `model.safetensors`: the encoder in the HF layout (loadable by
//!   `transformers`) and the heads under their HF task-model names;
//! - `optimizer.safetensors`: AdamW's first and second moments (`m.<name>`, `v.<name>`);
//! - any extra files the trainer adds (the head list `xlt_heads.json`);
//! - `state.json`, written last: the optimizer step and hyper-parameters, the parameter layout
//!   (names and shapes, checked on load), the run's identity (its settings and the hash of the
//!   model it started from, compared on resume), the trainer's own state (sampler, data order,
//!   schedule, early stopping) and the name and size of every other file of the folder.
//!
//! The folder is written whole next to its final place and renamed into it; an older
//! checkpoint of the same name is moved aside first and removed last. A kill at any moment
//! leaves either the old or the new checkpoint complete, and [`find`] tells which survived: a
//! folder counts only when its `state.json` parses and every file it lists is there with its
//! recorded size.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::model::weights::{load_into, saved_name, serialize_f32};
use crate::model::ParamLayout;
use crate::model::{AdamWConfig, OptimizerState, OptimizerView};
use safetensors::tensor::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the checkpoint format written in `state.json`.
pub const FORMAT_VERSION: u32 = 1;

/// The JSON state stored beside the tensors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    /// Format version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// Optimizer steps taken.
    pub step: u64,
    /// AdamW hyper-parameters: lr, beta1, beta2, eps, weight decay.
    pub adamw: [f32; 5],
    /// (name, shape) of every tensor in layout order; must match on load.
    pub layout: Vec<(String, Vec<usize>)>,
    /// The trainer's own state (sampler, data order, schedule, early stopping, ...).
    pub trainer: serde_json::Value,
    /// The run's identity: its settings and the hash of its starting model (null when the
    /// writer had none); a resume with other settings is refused.
    #[serde(default)]
    pub run: serde_json::Value,
    /// Every other file of the folder and its size in bytes (empty in checkpoints written
    /// before this list existed: then `config.json`, `model.safetensors` and
    /// `optimizer.safetensors` must be there).
    #[serde(default)]
    pub files: Vec<(String, u64)>,
}

/// Files every checkpoint has besides `state.json`.
const BASE_FILES: [&str; 3] = ["config.json", "model.safetensors", "optimizer.safetensors"];

impl CheckpointState {
    /// The AdamW hyper-parameters the checkpoint was saved with.
    pub fn adamw_config(&self) -> AdamWConfig {
        let [lr, beta1, beta2, eps, weight_decay] = self.adamw;
        AdamWConfig { lr, beta1, beta2, eps, weight_decay }
    }
}

fn layout_signature(layout: &ParamLayout) -> Vec<(String, Vec<usize>)> {
    layout.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect()
}

/// The sibling folders used while replacing `dir`.
fn staging(dir: &Path) -> (PathBuf, PathBuf) {
    crate::fsutil::staging_dirs(dir)
}

/// Writes a complete checkpoint of `params` (laid out by `layout`), the optimizer state `opt`
/// and its hyper-parameters `adamw`, `trainer` state, the run identity `run` and the `extra`
/// files (name, bytes) into `dir`, replacing any checkpoint there atomically: every file is
/// inside the folder before it is renamed into place.
pub fn save_checkpoint(
    dir: &Path,
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[f32],
    opt: &OptimizerView<'_>,
    adamw: &AdamWConfig,
    trainer: serde_json::Value,
    run: serde_json::Value,
    extra: &[(&str, &[u8])],
) -> Result<()> {
    if params.len() != layout.total || opt.m.len() != layout.total || opt.v.len() != layout.total {
        return Err(Error::RunFolder(format!(
            "checkpoint {}: buffers of {} / {} / {} values for a layout of {}",
            dir.display(),
            params.len(),
            opt.m.len(),
            opt.v.len(),
            layout.total
        )));
    }
    crate::fsutil::replace_dir(dir, |new| {
        crate::model::weights::save_dir(new, cfg, layout, params, &|_| true)?;
        let mut moments: Vec<(String, &[f32], &[usize])> = Vec::with_capacity(2 * layout.tensors.len());
        for t in &layout.tensors {
            moments.push((format!("m.{}", saved_name(t, cfg)), &opt.m[t.range()], t.shape.as_slice()));
            moments.push((format!("v.{}", saved_name(t, cfg)), &opt.v[t.range()], t.shape.as_slice()));
        }
        let bytes = serialize_f32(&moments).map_err(|e| Error::encode("the optimizer state", e))?;
        atomic_write(&new.join("optimizer.safetensors"), &bytes)?;
        for (name, data) in extra {
            atomic_write(&new.join(name), data)?;
        }
        let mut files = Vec::new();
        for name in BASE_FILES.iter().copied().chain(extra.iter().map(|(n, _)| *n)) {
            let p = new.join(name);
            let len = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
            files.push((name.to_string(), len));
        }
        let c = adamw;
        let state = CheckpointState {
            format: FORMAT_VERSION,
            step: opt.t,
            adamw: [c.lr, c.beta1, c.beta2, c.eps, c.weight_decay],
            layout: layout_signature(layout),
            trainer,
            run,
            files,
        };
        let text = serde_json::to_string_pretty(&state).map_err(|e| Error::encode("JSON", e))?;
        // state.json last: a folder with it (and every file it lists) is complete.
        atomic_write(&new.join("state.json"), text.as_bytes())
    })
}

/// What [`find`] found for a checkpoint folder.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    /// A complete checkpoint: `dir` itself, or the previous one a kill left moved aside.
    Complete(PathBuf),
    /// `dir` exists but is not a complete checkpoint, and nothing complete is beside it: what
    /// is wrong, naming the file.
    Incomplete(String),
    /// No checkpoint was ever completed here (a half-written first one does not count).
    Absent,
}

/// Why `dir` is not a complete checkpoint, or `None` when it is one.
fn incomplete(dir: &Path) -> Option<String> {
    let state_path = dir.join("state.json");
    if !state_path.is_file() {
        return Some(format!("{} is missing", state_path.display()));
    }
    let state = match read_state_file(&state_path) {
        Ok(s) => s,
        Err(e) => return Some(e.to_string()),
    };
    let listed: Vec<(String, Option<u64>)> = if state.files.is_empty() {
        BASE_FILES.iter().map(|f| (f.to_string(), None)).collect()
    } else {
        state.files.iter().map(|(f, n)| (f.clone(), Some(*n))).collect()
    };
    for (name, size) in listed {
        let p = dir.join(&name);
        match (std::fs::metadata(&p), size) {
            (Err(_), _) => return Some(format!("{} is missing", p.display())),
            (Ok(m), Some(n)) if m.len() != n => {
                return Some(format!("{} has {} bytes, state.json records {n}", p.display(), m.len()))
            }
            _ => {}
        }
    }
    None
}

/// Looks for the checkpoint of `dir`: `dir` when complete, else the complete previous
/// checkpoint a kill during a replacement left beside it (`.<name>.old`).
pub fn find(dir: &Path) -> Found {
    let (_, old) = staging(dir);
    let why = match incomplete(dir) {
        None => return Found::Complete(dir.to_path_buf()),
        Some(why) => why,
    };
    if incomplete(&old).is_none() {
        return Found::Complete(old);
    }
    if dir.exists() {
        Found::Incomplete(why)
    } else {
        Found::Absent
    }
}

/// The folder holding the complete checkpoint for `dir` ([`find`]); an error naming what is
/// missing otherwise.
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    match find(dir) {
        Found::Complete(p) => Ok(p),
        Found::Incomplete(why) => Err(Error::format(dir, format!("incomplete checkpoint: {why}"))),
        Found::Absent => Err(Error::format(
            dir,
            "no complete checkpoint here (expected state.json, model.safetensors, optimizer.safetensors)",
        )),
    }
}

fn read_state_file(state_path: &Path) -> Result<CheckpointState> {
    let text = crate::fsutil::read_text(state_path, None)?;
    let state: CheckpointState = serde_json::from_str(&text)
        .map_err(|e| Error::format(state_path, format!("not an xlt checkpoint state: {e}")))?;
    if state.format != FORMAT_VERSION {
        return Err(Error::format(state_path, format!("format {} (this xlt reads {FORMAT_VERSION})", state.format)));
    }
    Ok(state)
}

/// The `state.json` of the complete checkpoint for `dir`.
pub fn read_state(dir: &Path) -> Result<CheckpointState> {
    read_state_file(&resolve(dir)?.join("state.json"))
}

/// Loads the checkpoint at `dir` into `params` and `opt` (both sized for `layout`) and returns
/// the stored state (its `adamw` field holds the hyper-parameters it was saved with, see
/// [`CheckpointState::adamw_config`]). The layout must match the one saved, tensor by tensor.
pub fn load_checkpoint(
    dir: &Path,
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &mut [f32],
    opt: &mut OptimizerState,
) -> Result<CheckpointState> {
    let dir = resolve(dir)?;
    let state = read_state_file(&dir.join("state.json"))?;
    let want = layout_signature(layout);
    if state.layout != want {
        let diff = want
            .iter()
            .zip(state.layout.iter().map(Some).chain(std::iter::repeat(None)))
            .find(|(a, b)| Some(*a) != *b)
            .map(|(a, b)| match b {
                Some((name, shape)) => format!("expected {} {:?}, checkpoint has {name} {shape:?}", a.0, a.1),
                None => format!("expected {} {:?}, checkpoint has no tensor there", a.0, a.1),
            })
            .unwrap_or_else(|| format!("checkpoint has {} tensors, the model {}", state.layout.len(), want.len()));
        return Err(Error::Checkpoint { path: dir.clone(), msg: diff });
    }
    load_into(params, layout, cfg, &dir, &|_| true)?;
    let opt_path = dir.join("optimizer.safetensors");
    let bytes = std::fs::read(&opt_path).map_err(|e| Error::io(&opt_path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(&opt_path, format!("not a valid safetensors file (truncated or corrupt?): {e}")))?;
    for t in &layout.tensors {
        for (prefix, buf) in [("m", &mut opt.m), ("v", &mut opt.v)] {
            let name = format!("{prefix}.{}", saved_name(t, cfg));
            let view = st
                .tensor(&name)
                .map_err(|_| Error::Checkpoint { path: opt_path.clone(), msg: format!("missing {name}") })?;
            if view.dtype() != Dtype::F32 || view.shape() != t.shape.as_slice() {
                return Err(Error::Checkpoint {
                    path: opt_path.clone(),
                    msg: format!("{name}: {:?} {:?}, expected F32 {:?}", view.dtype(), view.shape(), t.shape),
                });
            }
            for (dst, c) in buf[t.range()].iter_mut().zip(view.data().chunks_exact(4)) {
                *dst = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            if let Some(i) = buf[t.range()].iter().position(|x| !x.is_finite()) {
                return Err(Error::Checkpoint {
                    path: opt_path.clone(),
                    msg: format!("{name} holds a non-finite value ({}) at flat index {i}", buf[t.range()][i]),
                });
            }
        }
    }
    opt.t = state.step;
    Ok(state)
}
