//! Dropout, defined once for both backends: the probabilities of one forward/backward pair and
//! the seed of every site that drops. Masks are not stored: each site regenerates its mask
//! from a counter-based hash of (step seed, site, element index), so the backward, the GPU and
//! the CPU all drop the same elements. Adding or renumbering a site here changes it everywhere.

use crate::config::ModelConfig;
use crate::rng;

/// Dropout settings of one forward/backward pair.
#[derive(Clone, Copy, Debug)]
pub struct DropoutCfg {
    /// Hidden-state dropout probability.
    pub hidden: f32,
    /// Attention-probability dropout probability.
    pub attention: f32,
    /// Seed of this step: every site derives its own stream from it.
    pub seed: u64,
}

/// Every place that applies dropout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The embedding sum after its LayerNorm (hidden_states[0]).
    Embeddings,
    /// Attention probabilities of layer `l`.
    Attention(usize),
    /// The attention output projection of layer `l`, before its residual.
    AttentionOutput(usize),
    /// The FFN output projection of layer `l`, before its residual.
    Ffn(usize),
    /// The first token before a RoBERTa classification head's dense layer.
    ClassifierInput,
    /// The classification head's hidden state before its output projection.
    ClassifierHidden,
    /// Every token before a tagging head.
    Tagging,
}

impl Site {
    /// (layer slot, site number) of the hash: layers count from 0; the embeddings and the heads
    /// take slots past every layer (`usize::MAX`, `- 1`, `- 2`).
    fn slot(self) -> (usize, u64) {
        match self {
            Site::Embeddings => (usize::MAX, 3),
            Site::Attention(l) => (l, 0),
            Site::AttentionOutput(l) => (l, 1),
            Site::Ffn(l) => (l, 2),
            Site::ClassifierInput => (usize::MAX - 1, 0),
            Site::ClassifierHidden => (usize::MAX - 1, 1),
            Site::Tagging => (usize::MAX - 2, 0),
        }
    }
}

impl DropoutCfg {
    /// No dropout (evaluation).
    pub const OFF: DropoutCfg = DropoutCfg { hidden: 0.0, attention: 0.0, seed: 0 };

    /// The model's dropout at a given step seed.
    pub fn train(cfg: &ModelConfig, seed: u64) -> Self {
        DropoutCfg { hidden: cfg.hidden_dropout, attention: cfg.attention_dropout, seed }
    }

    /// The seed of the mask at `site`.
    pub fn seed_of(&self, site: Site) -> u64 {
        let (l, s) = site.slot();
        rng::derive(self.seed, (l as u64).wrapping_mul(16).wrapping_add(s))
    }
}
