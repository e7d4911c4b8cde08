//! Task heads over the shared encoder. Each head registers its tensors in the same flat
//! parameter layout as the encoder and has a forward and a backward on the CPU ops.

pub mod classification;
pub mod mlm;
pub mod multiple_choice;
pub mod span;
pub mod tagging;

/// The hidden state XTREME uses for retrieval (BUCC, Tatoeba) by default: hidden_states[14]
/// of a 24-layer model, [8] of a 12-layer one; other depths use the layer at the same
/// relative depth (7/12), rounded.
pub fn default_retrieval_layer(num_layers: usize) -> usize {
    match num_layers {
        24 => 14,
        12 => 8,
        l => ((l * 7 + 6) / 12).clamp(0, l),
    }
}
