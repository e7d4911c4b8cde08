//! A model's weights on the host: its [`Structure`] and the flat parameter buffer, loaded from
//! and saved to model folders (HF layout + the head list). What a backend is built from, what
//! checkpoints and `best/` / `model/` folders are written from; no activations, gradients or
//! optimizer state (those belong to a backend's [`super::task_model::TaskModel`]).

use super::heads::{read_heads, HeadSpec, Structure};
use super::init::{init_params, init_params_except};
use super::weights;
use crate::config::ModelConfig;
use crate::error::Result;
use std::collections::HashSet;
use std::path::Path;

/// The structure and weights of a model, on the host.
#[derive(Clone, Debug)]
pub struct HostModel {
    /// Configuration, layout and tensor ranges.
    pub structure: Structure,
    /// (layout.total) parameters.
    pub params: Vec<f32>,
}

impl HostModel {
    /// Randomly initialised encoder and heads (HF initialisation) from `seed`.
    pub fn new_random(cfg: &ModelConfig, specs: Vec<HeadSpec>, seed: u64) -> Result<Self> {
        let structure = Structure::new(cfg, specs)?;
        let mut params = vec![0.0; structure.layout.total];
        init_params(&mut params, &structure.layout, cfg, seed);
        Ok(HostModel { structure, params })
    }

    /// The encoder of the model folder `dir` (an HF model or an xlt checkpoint: config.json +
    /// safetensors), with fresh heads initialised from `seed`. Head tensors in the folder are
    /// ignored: this is jiant's `from_transformers` and `partial` loading.
    pub fn from_encoder_dir(dir: &Path, specs: Vec<HeadSpec>, seed: u64) -> Result<Self> {
        Ok(Self::load_partial(dir, specs, seed, false)?.0)
    }

    /// The model folder `dir`'s encoder and, with `heads`, its head tensors for `specs` where it
    /// holds them; every tensor it lacks is initialised from `seed` as [`Self::new_random`] would
    /// (the values do not depend on which tensors were loaded, and those are not drawn at all).
    /// BERT's pooler belongs to the encoder; a checkpoint without one keeps the fresh pooler.
    /// Returns the model and the layout names that came from the folder.
    pub fn load_partial(dir: &Path, specs: Vec<HeadSpec>, seed: u64, heads: bool) -> Result<(Self, HashSet<String>)> {
        let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
        let structure = Structure::new(&cfg, specs)?;
        let mut params = vec![0.0; structure.layout.total];
        let report = weights::load_subset(&mut params, &structure.layout, &cfg, dir, &|t| heads || t.encoder, &|t| {
            t.encoder && !t.name.starts_with("pooler.")
        })?;
        let loaded: HashSet<String> = report.loaded.into_iter().collect();
        init_params_except(&mut params, &structure.layout, &cfg, seed, &loaded);
        Ok((HostModel { structure, params }, loaded))
    }

    /// Every tensor (encoder and heads) from `dir`, with the head list saved there.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_dir_with_heads(dir, read_heads(dir)?)
    }

    /// Every tensor (encoder and the heads `specs`) from `dir`: e.g. an HF fine-tuned task
    /// model, whose head has the HF names (`classifier.*`, `qa_outputs.*`; empty prefix).
    pub fn from_dir_with_heads(dir: &Path, specs: Vec<HeadSpec>) -> Result<Self> {
        let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
        let structure = Structure::new(&cfg, specs)?;
        let mut params = vec![0.0; structure.layout.total];
        weights::load_into(&mut params, &structure.layout, &cfg, dir, &|_| true)?;
        Ok(HostModel { structure, params })
    }

    /// Writes config.json, model.safetensors and the head list into `dir` (each atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        save_model(dir, &self.structure, &self.params)
    }
}

/// Writes config.json, model.safetensors (the `params` of `structure`) and the head list into
/// `dir`, each atomically.
pub fn save_model(dir: &Path, structure: &Structure, params: &[f32]) -> Result<()> {
    weights::save_dir(dir, &structure.cfg, &structure.layout, params, &|_| true)?;
    structure.save_heads(dir)
}

/// The first tensor of `structure`'s layout whose slice of `buf` holds a NaN or infinity, as
/// `<what> NAME[i] = value`.
pub fn first_non_finite_tensor(structure: &Structure, buf: &[f32], what: &str) -> Option<String> {
    structure.layout.tensors.iter().find_map(|t| {
        let v = buf.get(t.range())?;
        v.iter().position(|x| !x.is_finite()).map(|i| format!("{what} {}[{i}] = {}", t.name, v[i]))
    })
}
