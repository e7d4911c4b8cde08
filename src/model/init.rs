//! Random initialisation as HF does it: normal(0, 0.02) weights, zero biases, unit LayerNorm
//! weights, and a zero row for the padding index of the embedding tables.

use super::ParamLayout;
use crate::config::{Family, ModelConfig};
use crate::rng::Rng;
use std::collections::HashSet;

/// HF's `initializer_range`.
pub const INIT_STD: f32 = 0.02;

/// Initialises every tensor of `layout` in `params` (length `layout.total`) from `seed`.
/// Each tensor draws from its own stream derived from its name, so adding a head does not
/// change the encoder's initial values.
pub fn init_params(params: &mut [f32], layout: &ParamLayout, cfg: &ModelConfig, seed: u64) {
    init_params_except(params, layout, cfg, seed, &HashSet::new());
}

/// [`init_params`] for every tensor but those named in `keep` (loaded from a checkpoint): the
/// others get exactly the values [`init_params`] gives them, without drawing the kept ones.
pub fn init_params_except(
    params: &mut [f32],
    layout: &ParamLayout,
    cfg: &ModelConfig,
    seed: u64,
    keep: &HashSet<String>,
) {
    for t in layout.tensors.iter().filter(|t| !keep.contains(&t.name)) {
        let dst = &mut params[t.range()];
        init_tensor(dst, &t.name, seed);
        let c = cfg.hidden_size;
        let pad = cfg.pad_token_id as usize;
        let zero_pad_row = t.name == "embeddings.word_embeddings.weight"
            || (cfg.family == Family::XlmRoberta && t.name == "embeddings.position_embeddings.weight");
        if zero_pad_row && (pad + 1) * c <= dst.len() {
            dst[pad * c..(pad + 1) * c].fill(0.0);
        }
    }
}

/// Initialises one tensor by its HF name.
pub fn init_tensor(dst: &mut [f32], name: &str, seed: u64) {
    if name.ends_with("LayerNorm.weight") {
        dst.fill(1.0);
    } else if name.ends_with("bias") {
        dst.fill(0.0);
    } else {
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let mut rng = Rng::new(seed ^ h);
        for x in dst.iter_mut() {
            *x = rng.normal() * INIT_STD;
        }
    }
}
