//! Training checkpoints: everything needed to continue a run exactly.
//!
//! A checkpoint is a folder:
//! - `config.json` + `model.safetensors`: the encoder in the HF layout (loadable by
//!   `transformers`) and the heads under their HF task-model names;
//! - `optimizer.safetensors`: AdamW's first and second moments (`m.<name>`, `v.<name>`);
//! - `state.json`: the optimizer step and hyper-parameters, the parameter layout (names and
//!   shapes, checked on load) and the trainer's own state (sampler, data order, schedule,
//!   early stopping) as an opaque JSON value.
//!
//! The folder is written next to its final place and renamed into it; an older checkpoint of
//! the same name is moved aside first and removed last. A kill at any moment leaves either the
//! old or the new checkpoint complete, and [`load_checkpoint`] finds whichever survived.

use crate::config::ModelConfig;
use crate::cpu::ops::AdamWConfig;
use crate::cpu::AdamW;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::model::weights::{load_into, saved_name, serialize_f32};
use crate::model::ParamLayout;
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
}

fn layout_signature(layout: &ParamLayout) -> Vec<(String, Vec<usize>)> {
    layout.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect()
}

/// The sibling folders used while replacing `dir`.
fn staging(dir: &Path) -> (PathBuf, PathBuf) {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
    (dir.with_file_name(format!(".{name}.new")), dir.with_file_name(format!(".{name}.old")))
}

/// Writes a complete checkpoint of `params` (laid out by `layout`), the optimizer and
/// `trainer` state into `dir`, replacing any checkpoint there atomically.
pub fn save_checkpoint(
    dir: &Path,
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[f32],
    opt: &AdamW,
    trainer: serde_json::Value,
) -> Result<()> {
    if params.len() != layout.total || opt.m.len() != layout.total || opt.v.len() != layout.total {
        return Err(Error::Invalid(format!(
            "checkpoint {}: buffers of {} / {} / {} values for a layout of {}",
            dir.display(),
            params.len(),
            opt.m.len(),
            opt.v.len(),
            layout.total
        )));
    }
    let (new, old) = staging(dir);
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(|e| Error::io(&new, e))?;
    }
    std::fs::create_dir_all(&new).map_err(|e| Error::io(&new, e))?;
    crate::model::weights::save_dir(&new, cfg, layout, params, &|_| true)?;
    let mut moments: Vec<(String, &[f32], &[usize])> = Vec::with_capacity(2 * layout.tensors.len());
    for t in &layout.tensors {
        moments.push((format!("m.{}", saved_name(t, cfg)), &opt.m[t.range()], t.shape.as_slice()));
        moments.push((format!("v.{}", saved_name(t, cfg)), &opt.v[t.range()], t.shape.as_slice()));
    }
    let bytes = serialize_f32(&moments).map_err(|e| Error::Invalid(format!("optimizer state: {e}")))?;
    atomic_write(&new.join("optimizer.safetensors"), &bytes)?;
    let c = &opt.cfg;
    let state = CheckpointState {
        format: FORMAT_VERSION,
        step: opt.t,
        adamw: [c.lr, c.beta1, c.beta2, c.eps, c.weight_decay],
        layout: layout_signature(layout),
        trainer,
    };
    let text = serde_json::to_string_pretty(&state).map_err(|e| Error::Invalid(e.to_string()))?;
    // state.json last: a folder with it is complete.
    atomic_write(&new.join("state.json"), text.as_bytes())?;
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&new, dir).map_err(|e| Error::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// The folder holding the complete checkpoint for `dir`: `dir` itself, or the previous
/// checkpoint a kill left moved aside during a replacement.
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    if dir.join("state.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let (_, old) = staging(dir);
    if old.join("state.json").is_file() {
        return Ok(old);
    }
    Err(Error::format(
        dir,
        "no complete checkpoint here (expected state.json, model.safetensors, optimizer.safetensors)",
    ))
}

/// Loads the checkpoint at `dir` into `params` and `opt` (both sized for `layout`) and returns
/// the stored state. The layout must match the one saved, tensor by tensor.
pub fn load_checkpoint(
    dir: &Path,
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &mut [f32],
    opt: &mut AdamW,
) -> Result<CheckpointState> {
    let dir = resolve(dir)?;
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: CheckpointState = serde_json::from_str(&text)
        .map_err(|e| Error::format(&state_path, format!("not an xlt checkpoint state: {e}")))?;
    if state.format != FORMAT_VERSION {
        return Err(Error::format(&state_path, format!("format {} (this xlt reads {FORMAT_VERSION})", state.format)));
    }
    let want = layout_signature(layout);
    if state.layout != want {
        let diff = want
            .iter()
            .zip(state.layout.iter().map(Some).chain(std::iter::repeat(None)))
            .find(|(a, b)| Some(*a) != *b)
            .map(|(a, b)| format!("expected {} {:?}, checkpoint has {:?}", a.0, a.1, b))
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
        }
    }
    let [lr, beta1, beta2, eps, weight_decay] = state.adamw;
    opt.cfg = AdamWConfig { lr, beta1, beta2, eps, weight_decay };
    opt.t = state.step;
    Ok(state)
}
