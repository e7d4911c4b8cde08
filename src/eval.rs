//! Evaluation pieces shared by the trainer and `xlt eval`: predictions of a sequence
//! classifier on task examples (featurised, sorted by length, padded per batch, returned in
//! input order) and their accuracy against the examples' labels.

use crate::cpu::encoder::DropoutCfg;
use crate::cpu::SequenceClassifier;
use crate::error::{Error, Result};
use crate::features::classification::{collate, featurize_pairs};
use crate::metrics::accuracy::Accuracy;
use crate::tasks::classification::PairExample;
use crate::tokenize::Tokenizer;

/// Predicted label ids (argmax of the logits) for `examples`, in input order.
pub fn predict_pairs(
    model: &mut SequenceClassifier,
    tok: &Tokenizer,
    examples: &[PairExample],
    batch_size: usize,
    max_seq_len: usize,
) -> Result<Vec<usize>> {
    if batch_size == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    let features = featurize_pairs(tok, examples, max_seq_len.min(model.cfg.max_seq_len()))?;
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.sort_by_key(|&i| (features[i].ids.len(), i));
    let k = model.head.num_labels;
    let mut preds = vec![0usize; features.len()];
    for chunk in order.chunks(batch_size) {
        let batch_features: Vec<_> = chunk.iter().map(|&i| &features[i]).collect();
        let (batch, _) = collate(&batch_features, tok.pad_id);
        model.forward(&batch, None, DropoutCfg::OFF);
        let logits = model.logits().ok_or_else(|| Error::Invalid("forward produced no logits".into()))?;
        for (row, &i) in chunk.iter().enumerate() {
            let r = &logits[row * k..(row + 1) * k];
            preds[i] = (0..k).fold(0, |best, j| if r[j] > r[best] { j } else { best });
        }
    }
    Ok(preds)
}

/// Accuracy of `preds` against the labels of `examples`; `None` when the examples carry no
/// labels (a test split), an error when only some do.
pub fn pair_accuracy(examples: &[PairExample], preds: &[usize]) -> Result<Option<f64>> {
    if examples.len() != preds.len() {
        return Err(Error::Invalid(format!("{} predictions for {} examples", preds.len(), examples.len())));
    }
    let labelled = examples.iter().filter(|e| e.label.is_some()).count();
    if labelled == 0 {
        return Ok(None);
    }
    if labelled != examples.len() {
        return Err(Error::Invalid(format!("{labelled} of {} examples have labels", examples.len())));
    }
    let mut acc = Accuracy::new();
    for (e, p) in examples.iter().zip(preds) {
        if let Some(l) = e.label {
            acc.update_one(&l, p);
        }
    }
    Ok(Some(acc.compute()))
}
