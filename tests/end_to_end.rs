//! The pieces fit: an XTREME-layout XNLI fixture is read, featurised, used to fine-tune the tiny
//! XLM-R with AdamW until it fits the English training examples, then the model predicts the
//! German dev set (accuracy reported) and the unlabelled test set (no accuracy).

mod common;
use std::path::Path;
use xlt::eval::{evaluate, EvalOptions, Predictions};
use xlt::features::classification::{collate, featurize_pairs};
use xlt::model::{AdamWConfig, DropoutCfg, StepConfig, TaskModel};
use xlt::tasks::{lookup, read_split, Examples, Layout, Split};
use xlt::tokenize::Tokenizer;

#[test]
fn xnli_fixture_trains_and_evaluates_zero_shot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let layout = Layout::Xtreme(root.join("tasks/xtreme"));
    let task = lookup("xnli").expect("xnli is registered");
    let split = |s, l| read_split(task, &layout, s, Some(l)).expect("split");
    let (train, dev, test) = (split(Split::Train, "en"), split(Split::Val, "de"), split(Split::Test, "de"));
    assert!(!train.is_empty() && !dev.is_empty() && !test.is_empty());

    let model_dir = root.join("tiny-xlmr");
    let mut model = common::classifier_from_dir(&model_dir, task.labels.len());
    let tok = Tokenizer::from_file(&model_dir.join("tokenizer.json"), model.s.cfg.family).expect("tokenizer");
    let pairs = match &train {
        Examples::Pair(p) => p.clone(),
        _ => panic!("XNLI gives pairs"),
    };
    let features = featurize_pairs(&tok, &pairs, 64).expect("features");
    let (batch, labels) = collate(&features, tok.pad_id);
    let tb = common::labelled(&batch, &labels);
    let step = StepConfig {
        adamw: AdamWConfig { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 },
        micro_batches: 1,
        max_grad_norm: 0.0,
    };
    let mut train_step = |s: u64| {
        let loss = model.forward_backward(0, &tb, DropoutCfg::train(&model.s.cfg, s)).expect("forward_backward");
        model.step(&step).expect("step");
        loss
    };
    let first = train_step(0);
    let mut last = first;
    for s in 1..60 {
        last = train_step(s);
    }
    assert!(last < first * 0.2, "training loss {first} -> {last}");
    let names: Vec<String> = task.labels.iter().map(|l| l.to_string()).collect();
    let mut eval = |ex: &Examples, lang: &str, batch: usize| {
        evaluate(&mut model, 0, &tok, task, &names, ex, Some(lang), &EvalOptions::new(batch, 64)).expect("evaluate")
    };
    assert_eq!(eval(&train, "en", 2).primary, Some(100.0), "memorises its training set");
    let d1 = eval(&dev, "de", 1);
    assert!(d1.primary.is_some_and(|a| (0.0..=100.0).contains(&a)));
    let t = eval(&test, "de", 8);
    assert_eq!(t.primary, None, "the test split has no labels");
    assert!(matches!(&t.predictions, Predictions::Labels(l) if l.len() == test.len()));
    // Batch size does not change predictions.
    assert_eq!(eval(&dev, "de", 8).predictions, d1.predictions);
}
