//! `CpuModel`, the reference model, checked on its own: a single classification head keeps
//! the layout of HF's sequence-classification model (names, shapes, decay flags); every head
//! family of one multi-head model has gradients that match central differences of its loss; `forward_backward` returns `forward`'s loss; save / load round trips keep the heads
//! (or, loading only the encoder, keep fresh ones); bad targets are errors, not panics.

mod common;
use common::{check, randn};
use xlt::config::ModelConfig;
use xlt::cpu::CpuModel;
use xlt::model::heads::ClassifierHead;
use xlt::model::{
    assign_prefixes, Batch, DropoutCfg, EncoderParams, HeadSpec, HostModel, ParamLayout, Targets, TaskBatch,
    HEADS_FILE, IGNORE_INDEX,
};
use xlt::rng::Rng;
use xlt::tasks::Kind;

const OFF: DropoutCfg = DropoutCfg::OFF;

fn tiny_config() -> ModelConfig {
    let mut cfg = ModelConfig::xlmr_shape(16, 2, 2, 24, 30, 20);
    cfg.hidden_dropout = 0.1;
    cfg.attention_dropout = 0.1;
    cfg
}

/// B = 2, T = 6 with two pads at the end of the second row.
fn tiny_batch(b_rows: usize) -> Batch {
    let pad = 1;
    let rows = [[0u32, 5, 7, 9, 2, 11], [0, 13, 2, 17, pad, pad], [0, 8, 21, 2, 6, 2], [0, 29, 2, pad, pad, pad]];
    let ids: Vec<u32> = rows[..b_rows].iter().flatten().copied().collect();
    let mask = ids.iter().map(|&i| if i == pad { 0.0 } else { 1.0 }).collect();
    Batch { b: b_rows, t: 6, types: vec![0; ids.len()], ids, mask }
}

fn head_specs() -> Vec<HeadSpec> {
    let mut specs = vec![
        HeadSpec::new("cls", Kind::Classification, 3),
        HeadSpec::new("mc", Kind::MultipleChoice, 2),
        HeadSpec::new("qa", Kind::SpanQa, 0),
        HeadSpec::new("tag", Kind::Tagging, 4),
        HeadSpec::new("mlm", Kind::MaskedLm, 0),
    ];
    assign_prefixes(&mut specs);
    specs
}

/// A batch with targets for each head of [`head_specs`], by head name.
fn batch_for(kind: Kind) -> TaskBatch {
    let i = IGNORE_INDEX;
    match kind {
        Kind::Classification => TaskBatch { batch: tiny_batch(2), targets: Targets::Labels(vec![2, 0]) },
        // Two questions of two choices each: sequences 0, 1 and 2, 3.
        Kind::MultipleChoice => TaskBatch { batch: tiny_batch(4), targets: Targets::Labels(vec![1, 0]) },
        // Second row's answer lies outside its window (position T): ignored by the loss.
        Kind::SpanQa => {
            TaskBatch { batch: tiny_batch(2), targets: Targets::Span { start: vec![1, 6], end: vec![3, 6] } }
        }
        Kind::Tagging => {
            TaskBatch { batch: tiny_batch(2), targets: Targets::Labels(vec![i, 3, 1, i, i, 0, i, 2, i, 1, i, i]) }
        }
        Kind::MaskedLm => {
            TaskBatch { batch: tiny_batch(2), targets: Targets::Labels(vec![i, 12, i, 4, i, i, i, 25, i, 9, i, i]) }
        }
        Kind::Retrieval => unreachable!("no head"),
    }
}

/// A multi-head model with weights larger than HF's 0.02, so every path carries signal above
/// f32 round-off.
fn perturbed_model(seed: u64) -> CpuModel {
    let mut m = cpu(HostModel::new_random(&tiny_config(), head_specs(), seed).expect("model"));
    let mut r = Rng::new(seed + 100);
    for x in m.params.iter_mut() {
        *x += r.normal() * 0.2;
    }
    m
}

/// A trainable CPU model of `host`.
fn cpu(host: HostModel) -> CpuModel {
    CpuModel::new(host, None).expect("cpu model")
}

// ---------------------------------------------------------------------------------------------
// (a) One classification head has HF's layout.

#[test]
fn single_classification_head_keeps_the_hf_layout() {
    let cfg = tiny_config();
    let mut specs = vec![HeadSpec::new("xnli", Kind::Classification, 3)];
    assign_prefixes(&mut specs);
    assert_eq!(specs[0].prefix, "", "a single head keeps the HF task-model names");
    let m = HostModel::new_random(&cfg, specs, 7).expect("model");
    // XLMRobertaForSequenceClassification: the encoder, then classifier.dense and out_proj.
    let mut want = ParamLayout::default();
    let enc = EncoderParams::register(&mut want, &cfg, false);
    ClassifierHead::register(&mut want, &enc, &cfg, 3);
    assert_eq!(m.structure.layout, want, "same tensor names, shapes, offsets, decay and encoder flags");
    assert!(m.structure.layout.find("classifier.out_proj.weight").is_some());
    // Training it moves every tensor the batch reaches, with and without dropout.
    let mut model = cpu(m);
    let p = randn(model.params.len(), 3, 0.3);
    model.params.copy_from_slice(&p);
    let mut tb = xlt::bench::random_batch(&cfg, 4, 11, 5);
    // The second sequence ends in four pads.
    for j in 7..11 {
        tb.batch.ids[11 + j] = cfg.pad_token_id;
        tb.batch.mask[11 + j] = 0.0;
    }
    for drop in [DropoutCfg::train(&cfg, 99), OFF] {
        model.zero_grad();
        let loss = model.forward_backward(0, &tb, drop).expect("forward_backward");
        assert!(loss.is_finite() && loss > 0.0);
        assert_eq!(model.head_logits(0).expect("logits").len(), 4 * 3);
        assert!(model.grads.iter().any(|&g| g != 0.0));
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Every head family's gradients against finite differences; (c) forward_backward's loss.

/// Encoder tensors sampled by the gradient checks.
const ENCODER_TENSORS: &[&str] = &[
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.LayerNorm.bias",
    "encoder.layer.0.attention.self.query.weight",
    "encoder.layer.0.attention.self.value.bias",
    "encoder.layer.0.intermediate.dense.weight",
    "encoder.layer.1.attention.output.dense.weight",
    "encoder.layer.1.output.LayerNorm.weight",
];

/// The names of head `head`'s own tensors.
fn head_tensors(m: &CpuModel, head: usize) -> Vec<String> {
    let s = &m.s.specs[head];
    let prefix = if s.kind == Kind::MaskedLm { "lm_head.".to_string() } else { s.prefix.clone() };
    assert!(!prefix.is_empty(), "several heads are prefixed");
    let names: Vec<String> =
        m.s.layout
            .tensors
            .iter()
            .filter(|t| !t.encoder && t.name.starts_with(&prefix))
            .map(|t| t.name.clone())
            .collect();
    assert!(!names.is_empty(), "head {} has tensors under {prefix}", s.name);
    names
}

fn gradcheck_head(kind: Kind) {
    let mut m = perturbed_model(3);
    let head = m.s.specs.iter().position(|s| s.kind == kind).expect("head of that kind");
    let tb = batch_for(kind);
    m.zero_grad();
    let loss = m.forward_backward(head, &tb, OFF).expect("forward_backward");
    assert!(loss.is_finite() && loss > 0.0, "{kind:?} loss {loss}");
    let grads = m.grads.clone();
    let params0 = m.params.clone();
    // Other heads' tensors get no gradient from this head.
    for (other, s) in m.s.specs.clone().iter().enumerate() {
        if other != head {
            for name in head_tensors(&m, other) {
                let r = m.s.layout.find(&name).expect("tensor").range();
                assert!(grads[r].iter().all(|&g| g == 0.0), "{kind:?}: {} ({}) got gradient", name, s.name);
            }
        }
    }
    let mut names: Vec<String> = ENCODER_TENSORS.iter().map(|s| s.to_string()).collect();
    names.extend(head_tensors(&m, head));
    for name in &names {
        let r = m.s.layout.find(name).unwrap_or_else(|| panic!("no tensor {name}")).range();
        let g = &grads[r.clone()];
        let mut x = params0[r.clone()].to_vec();
        let mut loss_at = |xv: &[f32]| {
            m.params[r.clone()].copy_from_slice(xv);
            m.forward(head, &tb, OFF).expect("forward") as f64
        };
        if g.iter().all(|v| v.abs() < 1e-6) {
            // A bias added to every score of one softmax (the multiple-choice scorer's bias, the
            // span start/end biases) cancels out: its gradient is zero, numerically too.
            assert!(matches!(kind, Kind::MultipleChoice | Kind::SpanQa), "{kind:?}: {name} got no gradient");
            for i in 0..x.len().min(2) {
                let orig = x[i];
                x[i] = orig + 1e-2;
                let lp = loss_at(&x);
                x[i] = orig - 1e-2;
                let lm = loss_at(&x);
                x[i] = orig;
                assert!(((lp - lm) / 2e-2).abs() < 1e-3, "{kind:?}: {name}[{i}] should not move the loss");
            }
        } else {
            check(&format!("{kind:?}/{name}"), &mut x, g, loss_at, 1e-2, 12);
        }
        m.params.copy_from_slice(&params0);
    }
}

#[test]
fn classification_head_gradients_match_finite_differences() {
    gradcheck_head(Kind::Classification);
}

#[test]
fn multiple_choice_head_gradients_match_finite_differences() {
    gradcheck_head(Kind::MultipleChoice);
}

#[test]
fn span_head_gradients_match_finite_differences() {
    gradcheck_head(Kind::SpanQa);
}

#[test]
fn tagging_head_gradients_match_finite_differences() {
    gradcheck_head(Kind::Tagging);
}

#[test]
fn mlm_head_gradients_match_finite_differences() {
    gradcheck_head(Kind::MaskedLm);
}

#[test]
fn forward_backward_returns_the_forward_loss() {
    let mut m = perturbed_model(4);
    for head in 0..m.s.specs.len() {
        let kind = m.s.specs[head].kind;
        let tb = batch_for(kind);
        let drops = if kind == Kind::MaskedLm { vec![OFF] } else { vec![OFF, DropoutCfg::train(&m.s.cfg, 17)] };
        for drop in drops {
            let f = m.forward(head, &tb, drop).expect("forward");
            m.zero_grad();
            let fb = m.forward_backward(head, &tb, drop).expect("forward_backward");
            if kind == Kind::MaskedLm {
                // The fused MLM pass sums its slices of vocabulary rows in another order.
                assert!((f - fb).abs() <= 1e-6 * f.abs(), "{kind:?}: forward {f} vs forward_backward {fb}");
            } else {
                assert_eq!(f.to_bits(), fb.to_bits(), "{kind:?}: forward {f} vs forward_backward {fb}");
            }
            // A second forward on the same batch gives the same loss (no state leaks).
            assert_eq!(m.forward(head, &tb, drop).expect("forward").to_bits(), f.to_bits());
        }
    }
}

#[test]
fn switching_heads_and_shapes_does_not_change_results() {
    // Heads share the encoder buffers: running another head (and another shape) in between
    // must not change a head's loss or gradients.
    let mut m = perturbed_model(5);
    let cls = batch_for(Kind::Classification);
    m.zero_grad();
    let l1 = m.forward_backward(0, &cls, OFF).expect("cls");
    let g1 = m.grads.clone();
    let mc = batch_for(Kind::MultipleChoice);
    m.forward(1, &mc, OFF).expect("mc");
    m.forward(3, &batch_for(Kind::Tagging), OFF).expect("tag");
    m.zero_grad();
    let l2 = m.forward_backward(0, &cls, OFF).expect("cls again");
    assert_eq!(l1.to_bits(), l2.to_bits());
    assert_eq!(g1, m.grads);
}

// ---------------------------------------------------------------------------------------------
// (d) Save and load.

fn head_params(m: &HostModel) -> Vec<(String, Vec<f32>)> {
    m.structure
        .layout
        .tensors
        .iter()
        .filter(|t| !t.encoder)
        .map(|t| (t.name.clone(), m.params[t.range()].to_vec()))
        .collect()
}

fn encoder_params(m: &HostModel) -> Vec<(String, Vec<f32>)> {
    m.structure
        .layout
        .tensors
        .iter()
        .filter(|t| t.encoder)
        .map(|t| (t.name.clone(), m.params[t.range()].to_vec()))
        .collect()
}

#[test]
fn save_and_from_dir_round_trip_params_and_heads() {
    let saved = perturbed_model(6).host();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("model");
    std::fs::create_dir_all(&dir).expect("mkdir");
    saved.save(&dir).expect("save");
    assert!(dir.join(HEADS_FILE).is_file() && dir.join("config.json").is_file());
    let loaded = HostModel::from_dir(&dir).expect("from_dir");
    assert_eq!(loaded.structure.specs, saved.structure.specs);
    assert_eq!(loaded.structure.layout, saved.structure.layout);
    assert_eq!(loaded.params, saved.params);
    assert_eq!(loaded.structure.cfg.vocab_size, saved.structure.cfg.vocab_size);
    // The reloaded model computes the same thing.
    let (mut a, mut b) = (cpu(saved), cpu(loaded));
    for head in 0..a.s.specs.len() {
        let tb = batch_for(a.s.specs[head].kind);
        let (la, lb) = (a.forward(head, &tb, OFF).expect("a"), b.forward(head, &tb, OFF).expect("b"));
        assert_eq!(la.to_bits(), lb.to_bits(), "head {}", a.s.specs[head].name);
    }
}

#[test]
fn from_encoder_dir_loads_the_encoder_and_keeps_fresh_heads() {
    let saved = perturbed_model(7).host();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("model");
    std::fs::create_dir_all(&dir).expect("mkdir");
    saved.save(&dir).expect("save");
    let specs = head_specs();
    let loaded = HostModel::from_encoder_dir(&dir, specs.clone(), 42).expect("from_encoder_dir");
    let fresh = HostModel::new_random(&tiny_config(), specs, 42).expect("fresh");
    assert_eq!(encoder_params(&loaded), encoder_params(&saved), "encoder from the folder");
    assert_ne!(encoder_params(&loaded), encoder_params(&fresh));
    let (lh, sh, fh) = (head_params(&loaded), head_params(&saved), head_params(&fresh));
    assert_eq!(lh, fh, "heads as a fresh model with the same seed");
    for ((name, l), (_, s)) in lh.iter().zip(&sh) {
        // The MLM and span biases start at zero in both; every weight differs.
        if name.ends_with("weight") {
            assert_ne!(l, s, "{name} must not come from the folder");
        }
    }
    assert_ne!(lh, sh);
    // Fewer heads than were saved: the folder's extra heads are ignored.
    let mut one = vec![HeadSpec::new("other", Kind::Tagging, 5)];
    assign_prefixes(&mut one);
    let m = HostModel::from_encoder_dir(&dir, one, 1).expect("another head set");
    assert_eq!(encoder_params(&m), encoder_params(&saved));
}

// ---------------------------------------------------------------------------------------------
// (e) Bad targets.

fn error_of(r: xlt::Result<f32>) -> String {
    match r {
        Ok(l) => panic!("expected an error, got loss {l}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_targets_are_errors() {
    let mut m = perturbed_model(8);
    let (cls, mc, qa, tag, mlm) = (0, 1, 2, 3, 4);
    let with = |kind: Kind, targets: Targets| TaskBatch { batch: batch_for(kind).batch, targets };
    let cases: Vec<(usize, TaskBatch, &str)> = vec![
        (cls, with(Kind::Classification, Targets::Labels(vec![3, 0])), "label 3 outside"),
        (cls, with(Kind::Classification, Targets::Labels(vec![-2, 0])), "label -2 outside"),
        (cls, with(Kind::Classification, Targets::Labels(vec![1])), "targets do not match"),
        (cls, with(Kind::Classification, Targets::Labels(vec![1, 0, 2])), "targets do not match"),
        (cls, with(Kind::Classification, Targets::Span { start: vec![0, 0], end: vec![0, 0] }), "targets do not match"),
        (mc, with(Kind::MultipleChoice, Targets::Labels(vec![2, 0])), "label 2 outside"),
        (mc, with(Kind::MultipleChoice, Targets::Labels(vec![1, 0, 1, 0])), "targets do not match"),
        (mc, TaskBatch { batch: tiny_batch(3), targets: Targets::Labels(vec![1]) }, "whole number"),
        (qa, with(Kind::SpanQa, Targets::Labels(vec![0, 1])), "targets do not match"),
        (qa, with(Kind::SpanQa, Targets::Span { start: vec![1], end: vec![2] }), "targets do not match"),
        (tag, with(Kind::Tagging, Targets::Labels(vec![4; 12])), "label 4 outside"),
        (tag, with(Kind::Tagging, Targets::Labels(vec![0; 11])), "targets do not match"),
        (mlm, with(Kind::MaskedLm, Targets::None), "needs target"),
        (mlm, with(Kind::MaskedLm, Targets::Labels(vec![0; 5])), "targets do not match"),
    ];
    for (head, tb, needle) in &cases {
        for fb in [false, true] {
            let r = if fb { m.forward_backward(*head, tb, OFF) } else { m.forward(*head, tb, OFF) };
            let msg = error_of(r);
            assert!(
                msg.contains(needle),
                "head {head} ({}): {msg:?} should say {needle:?}",
                if fb { "fb" } else { "f" }
            );
        }
    }
    // Training needs targets.
    let none = with(Kind::Classification, Targets::None);
    assert!(error_of(m.forward_backward(cls, &none, OFF)).contains("training needs targets"));
    // Broken batches.
    let mut short = batch_for(Kind::Classification);
    short.batch.ids.pop();
    assert!(error_of(m.forward(cls, &short, OFF)).contains("do not hold"));
    let long = TaskBatch {
        batch: Batch { b: 1, t: 40, ids: vec![5; 40], types: vec![0; 40], mask: vec![1.0; 40] },
        targets: Targets::Labels(vec![0]),
    };
    assert!(error_of(m.forward(cls, &long, OFF)).contains("exceed"));
    let empty =
        TaskBatch { batch: Batch { b: 0, t: 0, ids: vec![], types: vec![], mask: vec![] }, targets: Targets::None };
    assert!(error_of(m.forward(cls, &empty, OFF)).contains("empty batch"));
    // The model still works after the errors.
    m.forward(cls, &batch_for(Kind::Classification), OFF).expect("good batch");
}

#[test]
fn bad_head_specs_are_errors() {
    let cfg = tiny_config();
    let build = |specs: Vec<HeadSpec>| match HostModel::new_random(&cfg, specs, 0) {
        Ok(_) => panic!("should be rejected"),
        Err(e) => e.to_string(),
    };
    assert!(build(vec![]).contains("at least one task head"));
    assert!(build(vec![HeadSpec::new("a", Kind::Classification, 0)]).contains("at least one label"));
    assert!(build(vec![HeadSpec::new("a", Kind::Tagging, 2), HeadSpec::new("a", Kind::Tagging, 2)]).contains("twice"));
    assert!(build(vec![HeadSpec::new("r", Kind::Retrieval, 0)]).contains("retrieval"));
    assert!(build(vec![HeadSpec::new("m1", Kind::MaskedLm, 0), HeadSpec::new("m2", Kind::MaskedLm, 0)])
        .contains("at most one MLM head"));
}

/// Inputs the shape checks do not cover yet: each must be an error, never a panic.
fn no_panic(what: &str, f: impl FnOnce(&mut CpuModel) -> xlt::Result<f32>) {
    let mut m = perturbed_model(9);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut m)));
    match r {
        Ok(Err(_)) => {}
        Ok(Ok(l)) => panic!("{what}: expected an error, got loss {l}"),
        Err(_) => panic!("{what}: panicked instead of returning an error"),
    }
}

#[test]
fn mlm_target_outside_the_vocabulary_is_an_error() {
    let i = IGNORE_INDEX;
    let tb = TaskBatch { batch: tiny_batch(2), targets: Targets::Labels(vec![i, 30, i, i, i, i, i, i, i, i, i, i]) };
    no_panic("MLM target 30 of 30", |m| m.forward(4, &tb, OFF));
}

#[test]
fn unknown_head_index_is_an_error() {
    no_panic("head 9 of 5", |m| m.forward(9, &batch_for(Kind::Classification), OFF));
}

#[test]
fn token_id_outside_the_vocabulary_is_an_error() {
    let mut tb = batch_for(Kind::Classification);
    tb.batch.ids[1] = 30;
    no_panic("token id 30 of 30", |m| m.forward(0, &tb, OFF));
}

/// Calls out of order through the model trait — outputs read before any forward pass, a head's
/// other kind of output, an inference-only model trained, weights of the wrong size — are
/// `Error::Usage`, never panics, and leave the model usable.
#[test]
fn misuse_of_the_model_trait_is_a_usage_error() {
    use xlt::model::{AdamWConfig, StepConfig, TaskModel};
    let usage = |what: &str, r: std::result::Result<(), xlt::Error>| match r {
        Err(e) => assert!(matches!(e.root(), xlt::Error::Usage(_)), "{what}: expected Error::Usage, got {e:?}"),
        Ok(()) => panic!("{what}: expected an error"),
    };
    let step = StepConfig {
        adamw: AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 },
        micro_batches: 1,
        max_grad_norm: 1.0,
    };
    let mut trained = perturbed_model(11);
    let m: &mut dyn TaskModel = &mut trained;
    usage("logits before a forward", m.logits(0).map(drop));
    usage("span logits before a forward", m.span_logits(2).map(drop));
    usage("hidden state before a forward", m.hidden(0).map(drop));
    let cls = batch_for(Kind::Classification);
    m.forward(0, &cls, OFF).expect("forward");
    usage("span logits of a classification head", m.span_logits(0).map(drop));
    usage("logits of a span head", m.logits(2).map(drop));
    usage("hidden state past the last layer", m.hidden(9).map(drop));
    usage("weights of the wrong size", m.set_params(&[0.0; 3]));
    assert_eq!(m.logits(0).expect("logits after forward").len(), 2 * 3, "the model still answers");

    let host = HostModel::new_random(&tiny_config(), head_specs(), 3).expect("model");
    let mut inference = CpuModel::inference(host);
    let m: &mut dyn TaskModel = &mut inference;
    usage("training an inference model", m.forward_backward(0, &cls, OFF).map(drop));
    usage("stepping an inference model", m.step(&step).map(drop));
    usage("optimizer state of an inference model", m.optimizer().map(drop));
    m.forward(0, &cls, OFF).expect("an inference model still predicts");
}
