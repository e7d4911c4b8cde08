//! Loading and saving weights in the HF safetensors layout: `model.safetensors` or a sharded
//! checkpoint (`model.safetensors.index.json`), f32/f16/bf16 on disk, names with or without the
//! `roberta.` / `bert.` prefix. What `xlt` saves, `transformers` loads.

use super::{ParamLayout, ParamTensor};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// What a load did, for logs and tests.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Layout names that received values.
    pub loaded: Vec<String>,
    /// Checkpoint names skipped as known heads or buffers (`lm_head.*`, `cls.*`, ...).
    pub ignored: Vec<String>,
}

/// The safetensors files of a model folder: the shards listed by the index, or the single file.
pub fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::format(dir, "expected a model folder (config.json + model.safetensors)"));
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = crate::fsutil::read_text(&index, None)?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(&index, format!("expected a safetensors index (JSON): {e}")))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::format(&index, "expected a \"weight_map\" object of tensor name -> shard file"))?;
        let mut files: Vec<PathBuf> = Vec::new();
        for f in map.values() {
            let f = f.as_str().ok_or_else(|| Error::format(&index, "weight_map values must be file names"))?;
            let p = dir.join(f);
            if !files.contains(&p) {
                files.push(p);
            }
        }
        files.sort();
        for f in &files {
            if !f.is_file() {
                return Err(Error::format(&index, format!("lists shard {} which does not exist", f.display())));
            }
        }
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(Error::format(dir, "no model.safetensors or model.safetensors.index.json in this folder"))
}

/// Converts one stored tensor to f32, whatever its on-disk float type.
fn to_f32(view: &TensorView<'_>, name: &str, path: &Path) -> Result<Vec<f32>> {
    let b = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        other => {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                msg: format!("tensor {name} has dtype {other:?}; expected F32, F16 or BF16"),
            })
        }
    })
}

/// Maps a checkpoint name to the layout's name: strips the family prefix, renames legacy
/// `gamma`/`beta` LayerNorm parameters.
fn layout_name(key: &str, cfg: &ModelConfig) -> String {
    let k = key.strip_prefix(cfg.family.prefix()).unwrap_or(key);
    let k = if let Some(s) = k.strip_suffix("LayerNorm.gamma") {
        format!("{s}LayerNorm.weight")
    } else if let Some(s) = k.strip_suffix("LayerNorm.beta") {
        format!("{s}LayerNorm.bias")
    } else {
        k.to_string()
    };
    k
}

/// Checkpoint tensors that xlt knowingly skips when the layout has no slot for them.
fn is_known_extra(name: &str) -> bool {
    const HEADS: [&str; 7] =
        ["lm_head.", "cls.", "pooler.", "classifier.", "qa_outputs.", "heads.", "embeddings.position_ids"];
    HEADS.iter().any(|h| name.starts_with(h)) || name == "embeddings.token_type_ids"
}

fn list(names: &[String]) -> String {
    const MAX: usize = 8;
    let mut s = names.iter().take(MAX).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > MAX {
        s.push_str(&format!(" and {} more", names.len() - MAX));
    }
    s
}

/// Loads the checkpoint in `dir` into `params` following `layout`.
///
/// Every layout tensor for which `required` is true must be present; tensors in the checkpoint
/// that are neither in the layout nor known extras are an error, as is any shape mismatch.
pub fn load_into(
    params: &mut [f32],
    layout: &ParamLayout,
    cfg: &ModelConfig,
    dir: &Path,
    required: &dyn Fn(&ParamTensor) -> bool,
) -> Result<LoadReport> {
    load_subset(params, layout, cfg, dir, &|_| true, required)
}

/// Loads only the layout tensors `select` picks (each required) from the checkpoint in `dir`;
/// the checkpoint's other tensors of the layout are left alone (reported as ignored). Used to
/// take an encoder out of a fine-tuned checkpoint while the heads stay freshly initialised.
pub fn load_selected(
    params: &mut [f32],
    layout: &ParamLayout,
    cfg: &ModelConfig,
    dir: &Path,
    select: &dyn Fn(&ParamTensor) -> bool,
) -> Result<LoadReport> {
    load_subset(params, layout, cfg, dir, select, select)
}

/// Loads the layout tensors `select` picks from the checkpoint in `dir` (others of the layout
/// are ignored there); those `required` picks must be present. A loaded tensor holding a NaN
/// or an infinity is an error naming it.
pub fn load_subset(
    params: &mut [f32],
    layout: &ParamLayout,
    cfg: &ModelConfig,
    dir: &Path,
    select: &dyn Fn(&ParamTensor) -> bool,
    required: &dyn Fn(&ParamTensor) -> bool,
) -> Result<LoadReport> {
    let mut report = LoadReport::default();
    let mut seen = HashSet::new();
    let mut unexpected = Vec::new();
    for file in checkpoint_files(dir)? {
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::format(&file, format!("not a valid safetensors file (truncated or corrupt?): {e}")))?;
        for (key, view) in st.tensors() {
            let name = layout_name(&key, cfg);
            match layout.find(&name) {
                Some(t) if !select(t) => report.ignored.push(key),
                Some(t) => {
                    if view.shape() != t.shape.as_slice() {
                        return Err(Error::Checkpoint {
                            path: file.clone(),
                            msg: format!("tensor {key} has shape {:?}; the config implies {:?}", view.shape(), t.shape),
                        });
                    }
                    let v = to_f32(&view, &key, &file)?;
                    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                        return Err(Error::Checkpoint {
                            path: file.clone(),
                            msg: format!(
                                "tensor {key} holds a non-finite value ({}) at flat index {i}; the weights are \
                                 corrupt or come from a diverged run",
                                v[i]
                            ),
                        });
                    }
                    params[t.range()].copy_from_slice(&v);
                    if seen.insert(name.clone()) {
                        report.loaded.push(name);
                    }
                }
                None if is_known_extra(&name) => report.ignored.push(key),
                None => unexpected.push(key),
            }
        }
    }
    if !unexpected.is_empty() {
        unexpected.sort();
        return Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            msg: format!("unexpected tensors: {}", list(&unexpected)),
        });
    }
    let missing: Vec<String> =
        layout.tensors.iter().filter(|t| required(t) && !seen.contains(&t.name)).map(|t| t.name.clone()).collect();
    if !missing.is_empty() {
        return Err(Error::Checkpoint { path: dir.to_path_buf(), msg: format!("missing tensors: {}", list(&missing)) });
    }
    Ok(report)
}

/// The name a layout tensor is saved under: encoder tensors get the family prefix.
pub fn saved_name(t: &ParamTensor, cfg: &ModelConfig) -> String {
    if t.encoder {
        format!("{}{}", cfg.family.prefix(), t.name)
    } else {
        t.name.clone()
    }
}

/// Serialises named f32 tensors (name, data, shape) as a safetensors file image with the
/// `{"format": "pt"}` metadata `transformers` expects.
pub fn serialize_f32(tensors: &[(String, &[f32], &[usize])]) -> std::result::Result<Vec<u8>, String> {
    let bytes: Vec<&[u8]> = tensors.iter().map(|(_, d, _)| bytemuck::cast_slice::<f32, u8>(d)).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, _, shape), b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, shape.to_vec(), b).map_err(|e| format!("tensor {name}: {e}"))?;
        views.push((name.clone(), view));
    }
    let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::tensor::serialize(views, Some(meta.into_iter().collect())).map_err(|e| e.to_string())
}

/// Writes `config.json` and `model.safetensors` (f32) into `dir`, each atomically, with the
/// tensors of `layout` selected by `include`.
pub fn save_dir(
    dir: &Path,
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[f32],
    include: &dyn Fn(&ParamTensor) -> bool,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let named: Vec<(String, &[f32], &[usize])> = layout
        .tensors
        .iter()
        .filter(|t| include(t))
        .map(|t| (saved_name(t, cfg), &params[t.range()], t.shape.as_slice()))
        .collect();
    let bytes = serialize_f32(&named).map_err(|e| Error::encode(format!("the weights of {}", dir.display()), e))?;
    atomic_write(&dir.join("model.safetensors"), &bytes)?;
    let cfg_text = serde_json::to_string_pretty(&cfg.to_json()).map_err(|e| Error::encode("JSON", e))?;
    atomic_write(&dir.join("config.json"), cfg_text.as_bytes())?;
    Ok(())
}
