//! Finite-difference gradient checks of every CPU op's backward and of the whole tiny model.
//!
//! Each check uses loss = Σ out ⊙ r for a fixed random r, so the analytic gradient is the
//! backward with dout = r; the numeric one is a central difference of that loss in f64.

use xlt::config::{Family, ModelConfig};
use xlt::cpu::ops::*;
use xlt::model::batch::position_ids;
use xlt::model::{AdamWConfig, Batch, DropoutCfg, TaskModel, IGNORE_INDEX};
use xlt::rng::Rng;

mod common;
use common::{check, dot, randn};

#[test]
fn matmul_backward_matches_finite_differences() {
    let (n, c, oc) = (7, 5, 6);
    let mut inp = randn(n * c, 1, 1.0);
    let mut w = randn(oc * c, 2, 1.0);
    let mut bias = randn(oc, 3, 1.0);
    let r = randn(n * oc, 4, 1.0);
    let (mut dinp, mut dw, mut db) = (vec![0.0; n * c], vec![0.0; oc * c], vec![0.0; oc]);
    matmul_backward(&mut dinp, &mut dw, Some(&mut db), &r, &inp, &w, n, c, oc);
    let f = |inp: &[f32], w: &[f32], b: &[f32]| {
        let mut out = vec![0.0; n * oc];
        matmul_forward(&mut out, inp, w, Some(b), n, c, oc);
        dot(&out, &r)
    };
    let (w0, b0, i0) = (w.clone(), bias.clone(), inp.clone());
    check("matmul.dinp", &mut inp, &dinp, |x| f(x, &w0, &b0), 1e-2, 1000);
    check("matmul.dw", &mut w, &dw, |x| f(&i0, x, &b0), 1e-2, 1000);
    check("matmul.dbias", &mut bias, &db, |x| f(&i0, &w0, x), 1e-2, 1000);
}

#[test]
fn layernorm_backward_matches_finite_differences() {
    let (n, c) = (5, 11);
    let mut inp = randn(n * c, 5, 2.0);
    let mut w = randn(c, 6, 1.0);
    let mut b = randn(c, 7, 1.0);
    let r = randn(n * c, 8, 1.0);
    let f = |inp: &[f32], w: &[f32], b: &[f32]| {
        let (mut out, mut m, mut s) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
        layernorm_forward(&mut out, &mut m, &mut s, inp, w, b, n, c, 1e-5);
        dot(&out, &r)
    };
    let (mut out, mut m, mut s) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
    layernorm_forward(&mut out, &mut m, &mut s, &inp, &w, &b, n, c, 1e-5);
    let (mut dinp, mut dw, mut db) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
    layernorm_backward(&mut dinp, &mut dw, &mut db, &r, &inp, &m, &s, &w, n, c);
    let (w0, b0, i0) = (w.clone(), b.clone(), inp.clone());
    check("layernorm.dinp", &mut inp, &dinp, |x| f(x, &w0, &b0), 1e-2, 1000);
    check("layernorm.dw", &mut w, &dw, |x| f(&i0, x, &b0), 1e-2, 1000);
    check("layernorm.db", &mut b, &db, |x| f(&i0, &w0, x), 1e-2, 1000);
}

#[test]
fn gelu_tanh_dropout_backward_match_finite_differences() {
    let n = 64;
    let mut x = randn(n, 9, 2.0);
    let r = randn(n, 10, 1.0);
    let mut d = vec![0.0; n];
    gelu_backward(&mut d, &x, &r, n);
    check(
        "gelu",
        &mut x,
        &d,
        |x| {
            let mut o = vec![0.0; n];
            gelu_forward(&mut o, x, n);
            dot(&o, &r)
        },
        1e-2,
        1000,
    );
    let mut out = vec![0.0; n];
    tanh_forward(&mut out, &x, n);
    tanh_backward(&mut d, &out, &r, n);
    check(
        "tanh",
        &mut x,
        &d,
        |x| {
            let mut o = vec![0.0; n];
            tanh_forward(&mut o, x, n);
            dot(&o, &r)
        },
        1e-2,
        1000,
    );
    let mut d = r.clone();
    dropout_backward(&mut d, 0.4, 77, n);
    assert!(d.iter().filter(|v| **v == 0.0).count() > 5, "dropout at p=0.4 zeroes some of 64 elements");
    check(
        "dropout",
        &mut x,
        &d,
        |x| {
            let mut o = x.to_vec();
            dropout_forward(&mut o, 0.4, 77, n);
            dot(&o, &r)
        },
        1e-2,
        1000,
    );
}

#[test]
fn gelu_is_exact_erf_gelu() {
    // Reference values of 0.5 x (1 + erf(x / sqrt 2)), computed in double precision.
    let xs = [-3.0f32, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5];
    let want = [-0.004_049_694_f32, -0.158_655_25, -0.154_268_77, 0.0, 0.345_731_23, 0.841_344_8, 2.484_475_8];
    let mut out = vec![0.0; xs.len()];
    gelu_forward(&mut out, &xs, xs.len());
    for (o, w) in out.iter().zip(&want) {
        assert!((o - w).abs() < 1e-6, "{o} vs {w}");
    }
}

#[test]
fn attention_backward_matches_finite_differences() {
    let (b, t, c, nh) = (2, 5, 8, 2);
    // Second sequence has two padding positions.
    let mask = vec![1., 1., 1., 1., 1., 1., 1., 1., 0., 0.];
    for p_drop in [0.0f32, 0.3] {
        let mut qkv = randn(b * t * 3 * c, 11, 1.0);
        let r = randn(b * t * c, 12, 1.0);
        let f = |qkv: &[f32]| {
            let (mut out, mut att) = (vec![0.0; b * t * c], vec![0.0; b * nh * t * t]);
            attention_forward(&mut out, &mut att, qkv, &mask, b, t, c, nh, p_drop, 99);
            dot(&out, &r)
        };
        let (mut out, mut att) = (vec![0.0; b * t * c], vec![0.0; b * nh * t * t]);
        attention_forward(&mut out, &mut att, &qkv, &mask, b, t, c, nh, p_drop, 99);
        // Padded keys get zero probability.
        for h in 0..nh {
            for i in 0..t {
                let row = &att[((nh + h) * t + i) * t..((nh + h) * t + i + 1) * t];
                assert_eq!(&row[3..], &[0.0, 0.0]);
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
        let mut dqkv = vec![0.0; b * t * 3 * c];
        attention_backward(&mut dqkv, &r, &qkv, &att, b, t, c, nh, p_drop, 99);
        check(&format!("attention(p={p_drop}).dqkv"), &mut qkv, &dqkv, f, 1e-2, 1000);
    }
}

#[test]
fn embedding_backward_matches_finite_differences() {
    let (v, p, tt, c, b, t) = (9, 8, 2, 4, 2, 3);
    let ids = vec![3u32, 1, 3, 8, 0, 1];
    let types = vec![0u32, 0, 1, 1, 1, 0];
    let mut pos = vec![0u32; b * t];
    position_ids(&mut pos, &ids, b, t, Family::XlmRoberta, 1);
    assert_eq!(pos, vec![2, 1, 3, 2, 3, 1], "XLM-R positions: cumulative non-pad count + padding_idx");
    let mut wte = randn(v * c, 13, 1.0);
    let wpe = randn(p * c, 14, 1.0);
    let mut wtt = randn(tt * c, 15, 1.0);
    let r = randn(b * t * c, 16, 1.0);
    let (mut dwte, mut dwpe, mut dwtt) = (vec![0.0; v * c], vec![0.0; p * c], vec![0.0; tt * c]);
    embedding_backward(&mut dwte, &mut dwpe, &mut dwtt, &r, &ids, &pos, &types, None, None, b * t, c);
    let f = |wte: &[f32], wtt: &[f32]| {
        let mut out = vec![0.0; b * t * c];
        embedding_forward(&mut out, &ids, &pos, &types, wte, &wpe, wtt, b * t, c);
        dot(&out, &r)
    };
    let (wte0, wtt0) = (wte.clone(), wtt.clone());
    check("embedding.dwte", &mut wte, &dwte, |x| f(x, &wtt0), 1e-2, 1000);
    check("embedding.dwtt", &mut wtt, &dwtt, |x| f(&wte0, x), 1e-2, 1000);
    position_ids(&mut pos, &ids, b, t, Family::Bert, 0);
    assert_eq!(pos, vec![0, 1, 2, 0, 1, 2]);
    // Padding rows receive no gradient (nn.Embedding's padding_idx).
    let (mut dwte, mut dwpe, mut dwtt) = (vec![0.0; v * c], vec![0.0; p * c], vec![0.0; tt * c]);
    embedding_backward(&mut dwte, &mut dwpe, &mut dwtt, &r, &ids, &pos, &types, Some(1), Some(1), b * t, c);
    assert!(dwte[c..2 * c].iter().all(|&g| g == 0.0) && dwpe[c..2 * c].iter().all(|&g| g == 0.0));
    assert!(dwte[3 * c..4 * c].iter().any(|&g| g != 0.0));
}

#[test]
fn crossentropy_backward_matches_finite_differences_and_ignores() {
    let (n, k) = (4, 5);
    let mut logits = randn(n * k, 17, 2.0);
    let targets = vec![2i64, IGNORE_INDEX, 0, 4];
    let f = |l: &[f32]| {
        let mut losses = vec![0.0; n];
        let (s, cnt) = crossentropy_forward(&mut losses, l, &targets, n, k);
        assert_eq!(cnt, 3);
        s as f64 / cnt as f64
    };
    let mut d = vec![0.0; n * k];
    crossentropy_backward(&mut d, &logits, &targets, 1.0 / 3.0, n, k);
    assert!(d[k..2 * k].iter().all(|&x| x == 0.0), "ignored row has zero gradient");
    check("crossentropy", &mut logits, &d, f, 1e-2, 1000);
    // A hand-worked case: uniform logits over 4 classes give ln 4.
    let mut losses = vec![0.0; 1];
    let (s, _) = crossentropy_forward(&mut losses, &[0.5; 4], &[1], 1, 4);
    assert!((s - 4f32.ln()).abs() < 1e-6);
}

#[test]
fn adamw_matches_a_hand_worked_step() {
    // PyTorch AdamW, step 1, lr 0.1, wd 0.01: p = p(1 - lr wd) - lr * g / (|g| + eps) for m̂ = g, v̂ = g².
    let cfg = AdamWConfig { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    let mut p = vec![1.0f32, -2.0];
    let g = vec![0.5f32, -0.25];
    let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
    adamw_update(&mut p, &g, &mut m, &mut v, &cfg, true, 1, 2);
    let want = [1.0 * (1.0 - 0.001) - 0.1, -2.0 * (1.0 - 0.001) + 0.1];
    for (a, b) in p.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // Step 2 with the same gradient, no decay (a bias or LayerNorm weight): m = 0.19 g / (1 - 0.81),
    // v = 0.001999 g² / (1 - 0.998001): same direction, same size.
    adamw_update(&mut p, &g, &mut m, &mut v, &cfg, false, 2, 2);
    assert!((p[0] - (want[0] - 0.1)).abs() < 1e-5, "{}", p[0]);
    let norm = grad_norm(&[3.0, 4.0]);
    assert!((norm - 5.0).abs() < 1e-6);
    // Clipping to 1: (3, 4) / (5 + 1e-6); a norm already below the limit is left alone.
    let mut g = vec![3.0f32, 4.0];
    assert_eq!(clip_grad_norm(&mut g, 1.0), 5.0);
    assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
    let mut small = vec![0.3f32, 0.4];
    clip_grad_norm(&mut small, 1.0);
    assert_eq!(small, vec![0.3, 0.4]);
}

fn tiny_config(family: Family) -> ModelConfig {
    let mut cfg = ModelConfig::xlmr_shape(16, 2, 2, 24, 30, 20);
    cfg.family = family;
    cfg.layer_norm_eps = 1e-5;
    if family == Family::Bert {
        cfg.pad_token_id = 0;
        cfg.type_vocab_size = 2;
    }
    cfg
}

fn tiny_batch(cfg: &ModelConfig) -> Batch {
    let pad = cfg.pad_token_id;
    // First token: <s> (0) for XLM-R, [CLS] (2) for BERT, whose pad id is 0.
    let cls = if cfg.family == Family::Bert { 2 } else { 0 };
    let ids = vec![cls, 5, 7, 9, 2, 11, 2, cls, 13, 2, pad, pad];
    let types = if cfg.family == Family::Bert { vec![0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0] } else { vec![0; 12] };
    let mask = ids.iter().map(|&i| if i == pad { 0.0 } else { 1.0 }).collect();
    Batch { b: 2, t: 6, ids, types, mask }
}

/// The whole model: loss = mean CE of the classification head, every tensor sampled.
fn whole_model_check(family: Family, dropout: bool) {
    let cfg = tiny_config(family);
    let mut model = common::classifier(&cfg, 3, 5);
    // Larger weights than HF's 0.02 so every path carries signal above f32 round-off.
    let mut r = Rng::new(21);
    for x in model.params.iter_mut() {
        *x += r.normal() * 0.2;
    }
    let batch = tiny_batch(&cfg);
    let tb = common::labelled(&batch, &[2, 0]);
    let drop = if dropout { DropoutCfg { hidden: 0.2, attention: 0.2, seed: 1234 } } else { DropoutCfg::OFF };
    model.forward_backward(0, &tb, drop).expect("forward and backward");
    let grads = model.grads.clone();
    let layout = model.s.layout.clone();
    for t in &layout.tensors {
        let rng = t.range();
        let mut x = model.params[rng.clone()].to_vec();
        let g = &grads[rng.clone()];
        // The key bias shifts every score of a query row equally, so softmax cancels it: its true
        // gradient is zero and the analytic one is round-off. Check that instead.
        if t.name.contains("attention.self.key.bias") {
            assert!(g.iter().all(|v| v.abs() < 1e-6), "{}: key bias gradient must vanish", t.name);
            continue;
        }
        if g.iter().all(|&v| v == 0.0) {
            // Only rows of the embedding tables that the batch does not touch may be all-zero;
            // every other tensor must receive gradient.
            assert!(t.name.contains("embeddings"), "{} received no gradient", t.name);
            continue;
        }
        let params0 = model.params.clone();
        let mut probe = common::classifier(&cfg, 3, 5);
        check(
            &format!("{family:?}/{}", t.name),
            &mut x,
            g,
            |xv| {
                probe.params.copy_from_slice(&params0);
                probe.params[rng.clone()].copy_from_slice(xv);
                probe.forward(0, &tb, drop).expect("forward") as f64
            },
            1e-2,
            24,
        );
    }
}

#[test]
fn whole_tiny_xlmr_gradients_match_finite_differences() {
    whole_model_check(Family::XlmRoberta, false);
}

#[test]
fn whole_tiny_bert_gradients_match_finite_differences() {
    whole_model_check(Family::Bert, false);
}

#[test]
fn whole_tiny_model_gradients_with_dropout_match_finite_differences() {
    whole_model_check(Family::XlmRoberta, true);
}

#[test]
fn training_steps_are_bit_identical_on_rerun() {
    // Same seed, same batch, same thread count: parameters after three AdamW steps with
    // dropout must match to the bit (parallel reductions sum in a fixed order).
    let run = || {
        let mut cfg = ModelConfig::xlmr_shape(64, 2, 4, 96, 50, 70);
        cfg.hidden_dropout = 0.1;
        let mut model = common::classifier(&cfg, 3, 7);
        let tb = xlt::bench::random_batch(&cfg, 6, 33, 8);
        for s in 0..3 {
            xlt::bench::train_step(&mut model, &tb, s).expect("step");
        }
        model.params
    };
    let (a, b) = (run(), run());
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "reruns differ");
}

#[test]
fn changing_batch_shapes_reuses_buffers_without_changing_results() {
    // Dynamic padding: a long batch, then a short one, then the long one again must give the
    // same loss and gradients as the long batch on a fresh model.
    let cfg = ModelConfig::xlmr_shape(32, 2, 4, 48, 60, 40);
    let long = xlt::bench::random_batch(&cfg, 3, 20, 1);
    let short = xlt::bench::random_batch(&cfg, 2, 7, 2);
    let mut fresh = common::classifier(&cfg, 3, 4);
    let want = fresh.forward_backward(0, &long, DropoutCfg::OFF).expect("fresh");
    let mut m = common::classifier(&cfg, 3, 4);
    for tb in [&long, &short] {
        TaskModel::zero_grad(&mut m).expect("zero");
        m.forward_backward(0, tb, DropoutCfg::OFF).expect("step");
    }
    TaskModel::zero_grad(&mut m).expect("zero");
    let got = m.forward_backward(0, &long, DropoutCfg::OFF).expect("again");
    assert_eq!(got.to_bits(), want.to_bits());
    assert!(m.grads.iter().zip(&fresh.grads).all(|(a, b)| a.to_bits() == b.to_bits()));
}
