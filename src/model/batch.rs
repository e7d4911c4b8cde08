//! Batches as both backends take them: token ids, types and mask padded to (B, T), and the
//! targets a head is scored against, and the position ids both backends compute on the host.

use crate::config::Family;

/// Label value that contributes no loss (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// A batch of token ids, already padded to (B, T).
#[derive(Clone, Debug)]
pub struct Batch {
    /// B
    pub b: usize,
    /// T
    pub t: usize,
    /// (B, T) token ids.
    pub ids: Vec<u32>,
    /// (B, T) token type (segment) ids.
    pub types: Vec<u32>,
    /// (B, T) 1.0 for real tokens, 0.0 for padding.
    pub mask: Vec<f32>,
}

/// What a batch is scored against.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// No targets (prediction).
    None,
    /// Class ids (B) for classification, choice ids (B examples) for multiple choice, tag ids
    /// (B·T) for tagging, target token ids (B·T) for MLM; `IGNORE_INDEX` where unscored.
    Labels(Vec<i64>),
    /// Gold start and end token positions (B each) for span QA; outside [0, T) means "not in
    /// this window".
    Span {
        /// (B)
        start: Vec<i64>,
        /// (B)
        end: Vec<i64>,
    },
}

/// One padded batch of a task and its targets. For multiple choice the batch holds B·K
/// sequences (the K choices of an example adjacent).
#[derive(Clone, Debug)]
pub struct TaskBatch {
    /// Token ids, types and mask.
    pub batch: Batch,
    /// Targets.
    pub targets: Targets,
}

impl Batch {
    /// Tokens in the batch that are not padding.
    pub fn real_tokens(&self) -> usize {
        self.mask.iter().filter(|&&m| m > 0.0).count()
    }
}

impl TaskBatch {
    /// Tokens in the batch that are not padding.
    pub fn real_tokens(&self) -> usize {
        self.batch.real_tokens()
    }
}

/// Position ids (B, T). XLM-R: cumulative count of non-pad tokens + `pad`, pads get `pad`
/// (HF `create_position_ids_from_input_ids`). BERT: 0..T.
pub fn position_ids(out: &mut [u32], ids: &[u32], b: usize, t: usize, family: Family, pad: u32) {
    for bi in 0..b {
        let (row_out, row_ids) = (&mut out[bi * t..(bi + 1) * t], &ids[bi * t..(bi + 1) * t]);
        match family {
            Family::Bert => row_out.iter_mut().enumerate().for_each(|(i, p)| *p = i as u32),
            Family::XlmRoberta => {
                let mut count = 0u32;
                for (p, &id) in row_out.iter_mut().zip(row_ids) {
                    if id != pad {
                        count += 1;
                        *p = count + pad;
                    } else {
                        *p = pad;
                    }
                }
            }
        }
    }
}
