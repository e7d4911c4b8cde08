//! The pieces fit: an XTREME-layout XNLI fixture is read, featurised, used to fine-tune the tiny
//! XLM-R with AdamW until it fits the English training examples, then the model predicts the
//! German dev set (accuracy reported) and the unlabelled test set (no accuracy).

use std::path::Path;
use xlt::bench::train_step;
use xlt::cpu::ops::AdamWConfig;
use xlt::cpu::{AdamW, SequenceClassifier};
use xlt::eval::{pair_accuracy, predict_pairs};
use xlt::features::classification::{collate, featurize_pairs};
use xlt::tasks::{lookup, read_split, Layout, Split};
use xlt::tokenize::Tokenizer;

#[test]
fn xnli_fixture_trains_and_evaluates_zero_shot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let layout = Layout::Xtreme(root.join("tasks/xtreme"));
    let task = lookup("xnli").expect("xnli is registered");
    let split = |s| read_split(task, &layout, s, Some("en")).and_then(|e| e.into_pairs());
    let train = split(Split::Train).expect("train-en");
    let read_lang = |s, l| read_split(task, &layout, s, Some(l)).and_then(|e| e.into_pairs());
    let dev = read_lang(Split::Val, "de").expect("dev-de");
    let test = read_lang(Split::Test, "de").expect("test-de");
    assert!(!train.is_empty() && !dev.is_empty() && !test.is_empty());

    let model_dir = root.join("tiny-xlmr");
    let mut model = SequenceClassifier::from_dir(&model_dir, task.labels.len(), 0).expect("model");
    let tok = Tokenizer::from_file(&model_dir.join("tokenizer.json"), model.cfg.family).expect("tokenizer");
    let features = featurize_pairs(&tok, &train, 64).expect("features");
    let (batch, labels) = collate(&features, tok.pad_id);
    let mut opt = AdamW::new(
        AdamWConfig { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 },
        model.layout.total,
    );
    let first = train_step(&mut model, &mut opt, &batch, &labels, 0);
    let mut last = first;
    for s in 1..60 {
        last = train_step(&mut model, &mut opt, &batch, &labels, s);
    }
    assert!(last < first * 0.2, "training loss {first} -> {last}");
    let fit = predict_pairs(&mut model, &tok, &train, 2, 64).expect("predict train");
    assert_eq!(pair_accuracy(&train, &fit).expect("accuracy"), Some(1.0), "memorises its training set");
    let dev_preds = predict_pairs(&mut model, &tok, &dev, 1, 64).expect("predict dev");
    let acc = pair_accuracy(&dev, &dev_preds).expect("accuracy").expect("dev has labels");
    assert!((0.0..=1.0).contains(&acc));
    let test_preds = predict_pairs(&mut model, &tok, &test, 8, 64).expect("predict test");
    assert_eq!(test_preds.len(), test.len());
    assert_eq!(pair_accuracy(&test, &test_preds).expect("no labels"), None);
    // Batch size does not change predictions.
    assert_eq!(predict_pairs(&mut model, &tok, &dev, 8, 64).expect("predict"), dev_preds);
}
