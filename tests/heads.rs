//! Finite-difference gradient checks of every task head: the gradient with respect to the
//! encoder output and to every head tensor (and, for MLM, the tied word embeddings).

mod common;
use common::{check, randn};
use xlt::config::Family;
use xlt::cpu::heads::{
    mlm_backward, mlm_forward, multiple_choice_backward, multiple_choice_forward, span_backward, span_forward,
    tagging_backward, tagging_forward, MlmActs, MultipleChoiceActs, SpanActs, TaggingActs,
};
use xlt::model::heads::{MlmHead, MultipleChoiceHead, SpanHead, TaggingHead};
use xlt::model::{DropoutCfg, ParamLayout, IGNORE_INDEX};

const DROP: DropoutCfg = DropoutCfg { hidden: 0.2, attention: 0.0, seed: 42 };

/// Checks dL/dhidden and dL/dparams of a head given `loss(params, hidden)` and its analytic
/// gradients, over every tensor of `layout`.
#[allow(clippy::too_many_arguments)]
fn check_head(
    name: &str,
    layout: &ParamLayout,
    params: &[f32],
    hidden: &[f32],
    grads: &[f32],
    dhidden: &[f32],
    vanishing: &[&str],
    mut loss: impl FnMut(&[f32], &[f32]) -> f64,
) {
    let mut h = hidden.to_vec();
    check(&format!("{name}.dhidden"), &mut h, dhidden, |x| loss(params, x), 1e-2, 60);
    for t in &layout.tensors {
        let r = t.range();
        if vanishing.contains(&t.name.as_str()) {
            // A bias shared by every position of a softmax cancels out: its gradient is zero.
            assert!(grads[r].iter().all(|g| g.abs() < 1e-6), "{name}.{} should vanish", t.name);
            continue;
        }
        let mut x = params[r.clone()].to_vec();
        check(
            &format!("{name}.{}", t.name),
            &mut x,
            &grads[r.clone()],
            |xv| {
                let mut p = params.to_vec();
                p[r.clone()].copy_from_slice(xv);
                loss(&p, hidden)
            },
            1e-2,
            40,
        );
    }
}

#[test]
fn tagging_head_gradients() {
    let (b, t, c, k) = (2, 5, 6, 4);
    let n = b * t;
    let mut layout = ParamLayout::default();
    let head = TaggingHead::register(&mut layout, "classifier", c, k);
    let params = randn(layout.total, 1, 0.5);
    let hidden = randn(n * c, 2, 1.0);
    // First sub-tokens labelled, the rest (and specials) ignored.
    let labels = vec![IGNORE_INDEX, 2, IGNORE_INDEX, 0, 3, IGNORE_INDEX, 1, 1, IGNORE_INDEX, IGNORE_INDEX];
    let mut a = TaggingActs::new(n, c, k);
    tagging_forward(&mut a, &params, &head, &hidden, Some(&labels), n, c, DROP);
    let (mut grads, mut dh) = (vec![0.0; layout.total], vec![0.0; n * c]);
    tagging_backward(&mut dh, &mut grads, &mut a, &params, &head, &labels, n, c, DROP);
    check_head("tagging", &layout, &params, &hidden, &grads, &dh, &[], |p, h| {
        let mut a = TaggingActs::new(n, c, k);
        tagging_forward(&mut a, p, &head, h, Some(&labels), n, c, DROP) as f64
    });
    // Ignored tokens receive no gradient.
    assert!(dh[0..c].iter().all(|&g| g == 0.0));
}

#[test]
fn span_head_gradients_and_out_of_window_answers() {
    let (b, t, c) = (3, 6, 5);
    let mut layout = ParamLayout::default();
    let head = SpanHead::register(&mut layout, "qa_outputs", c);
    let params = randn(layout.total, 3, 0.5);
    let hidden = randn(b * t * c, 4, 1.0);
    // Third sequence: the answer is outside this window (position T), so it is ignored.
    let (starts, ends) = (vec![1i64, 4, 6], vec![2i64, 5, 6]);
    let mut a = SpanActs::new(b, t);
    let loss = span_forward(&mut a, &params, &head, &hidden, Some((&starts, &ends)), b, t, c);
    assert!(loss > 0.0);
    let (mut grads, mut dh) = (vec![0.0; layout.total], vec![0.0; b * t * c]);
    span_backward(&mut dh, &mut grads, &mut a, &params, &head, &hidden, (&starts, &ends), b, t, c);
    check_head("span", &layout, &params, &hidden, &grads, &dh, &["qa_outputs.bias"], |p, h| {
        let mut a = SpanActs::new(b, t);
        span_forward(&mut a, p, &head, h, Some((&starts, &ends)), b, t, c) as f64
    });
    assert!(dh[2 * t * c..].iter().all(|&g| g == 0.0), "an ignored window gets no gradient");
}

#[test]
fn multiple_choice_head_gradients() {
    let (b, k, t, c) = (2, 3, 4, 6);
    let mut layout = ParamLayout::default();
    let head = MultipleChoiceHead::register(&mut layout, "mc_head", c, k);
    let params = randn(layout.total, 5, 0.5);
    let hidden = randn(b * k * t * c, 6, 1.0);
    let labels = vec![2i64, 0];
    let mut a = MultipleChoiceActs::new(b, k, c);
    multiple_choice_forward(&mut a, &params, &head, &hidden, Some(&labels), b, t, c, DROP);
    assert_eq!(a.scores().len(), b * k);
    let (mut grads, mut dh) = (vec![0.0; layout.total], vec![0.0; b * k * t * c]);
    multiple_choice_backward(&mut dh, &mut grads, &mut a, &params, &head, &labels, b, t, c, DROP);
    check_head("multiple_choice", &layout, &params, &hidden, &grads, &dh, &["mc_head.out_proj.bias"], |p, h| {
        let mut a = MultipleChoiceActs::new(b, k, c);
        multiple_choice_forward(&mut a, p, &head, h, Some(&labels), b, t, c, DROP) as f64
    });
}

#[test]
fn mlm_head_gradients_including_tied_embeddings() {
    let (n, c, v) = (7, 6, 11);
    for family in [Family::XlmRoberta, Family::Bert] {
        let mut layout = ParamLayout::default();
        let wte = layout.push("embeddings.word_embeddings.weight", &[v, c], true, true);
        let head = MlmHead::register(&mut layout, family, wte, c, v, 1e-5);
        let mut params = randn(layout.total, 7, 0.5);
        // LayerNorm weight near 1 as in a real model.
        params[head.ln_w.clone()].iter_mut().for_each(|x| *x += 1.0);
        let hidden = randn(n * c, 8, 1.0);
        let labels = vec![IGNORE_INDEX, 3, IGNORE_INDEX, IGNORE_INDEX, 10, 0, IGNORE_INDEX];
        let mut a = MlmActs::default();
        mlm_forward(&mut a, &params, &head, &hidden, &labels, n, c);
        assert_eq!(a.logits.len(), 3 * v, "logits only for the 3 masked positions");
        let (mut grads, mut dh) = (vec![0.0; layout.total], vec![0.0; n * c]);
        mlm_backward(&mut dh, &mut grads, &a, &params, &head, n, c);
        check_head(&format!("mlm/{family:?}"), &layout, &params, &hidden, &grads, &dh, &[], |p, h| {
            let mut a = MlmActs::default();
            mlm_forward(&mut a, p, &head, h, &labels, n, c) as f64
        });
    }
}

#[test]
fn retrieval_layer_defaults_follow_xtreme() {
    use xlt::model::heads::default_retrieval_layer;
    assert_eq!(default_retrieval_layer(24), 14);
    assert_eq!(default_retrieval_layer(12), 8);
    assert_eq!(default_retrieval_layer(6), 4);
}

#[test]
fn fused_chunked_mlm_equals_forward_then_backward() {
    use xlt::cpu::heads::{mlm_forward_backward, LOGIT_ROWS_PER_CHUNK};
    let (c, v) = (8, 50);
    let n = 3 * LOGIT_ROWS_PER_CHUNK + 7;
    let mut layout = ParamLayout::default();
    let wte = layout.push("embeddings.word_embeddings.weight", &[v, c], true, true);
    let head = MlmHead::register(&mut layout, Family::XlmRoberta, wte, c, v, 1e-5);
    let params = randn(layout.total, 9, 0.5);
    let hidden = randn(n * c, 10, 1.0);
    // Mask most rows so several chunks are needed.
    let labels: Vec<i64> = (0..n).map(|i| if i % 5 == 0 { IGNORE_INDEX } else { (i * 7 % v) as i64 }).collect();
    let mut a = MlmActs::default();
    let want_loss = mlm_forward(&mut a, &params, &head, &hidden, &labels, n, c);
    let (mut g1, mut d1) = (vec![0.0; layout.total], vec![0.0; n * c]);
    mlm_backward(&mut d1, &mut g1, &a, &params, &head, n, c);
    let mut b = MlmActs::default();
    let (mut g2, mut d2) = (vec![0.0; layout.total], vec![0.0; n * c]);
    let loss = mlm_forward_backward(&mut d2, &mut g2, &mut b, &params, &head, &hidden, &labels, n, c);
    assert!(b.logits.is_empty(), "the fused path keeps no full logits");
    assert!((loss - want_loss).abs() < 1e-5, "{loss} vs {want_loss}");
    let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() <= 1e-5 * (1.0 + q.abs()));
    assert!(close(&d2, &d1) && close(&g2, &g1), "fused gradients differ");
}
