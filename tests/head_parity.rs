//! Golden parity of the heads transformers has in the same form: token classification,
//! extractive QA and masked LM (decoder tied to the word embeddings), on the tiny XLM-R and
//! BERT fixtures (`tools/make_head_fixtures.py`). Logits and loss ≤ 1e-4 / 1e-5 absolute; the
//! head's gradients and the word-embedding gradient (reached through the whole encoder, and
//! for MLM also through the tied decoder) ≤ 1e-3 relative.

use safetensors::tensor::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use xlt::config::ModelConfig;
use xlt::cpu::encoder::{encoder_backward, encoder_forward, Activations, BackwardScratch};
use xlt::cpu::heads::{
    mlm_backward, mlm_forward, span_backward, span_forward, tagging_backward, tagging_forward, MlmActs, SpanActs,
    TaggingActs,
};
use xlt::model::heads::{MlmHead, SpanHead, TaggingHead};
use xlt::model::{weights::load_into, EncoderParams, ParamLayout};
use xlt::model::{Batch, DropoutCfg};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

struct Golden(Vec<u8>);

impl Golden {
    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.0).expect("valid safetensors")
    }
    fn f32(&self, name: &str) -> Vec<f32> {
        let st = self.st();
        let v = st.tensor(name).unwrap_or_else(|_| panic!("missing {name}"));
        assert_eq!(v.dtype(), Dtype::F32, "{name}");
        v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }
    fn i64(&self, name: &str) -> Vec<i64> {
        let st = self.st();
        let v = st.tensor(name).unwrap_or_else(|_| panic!("missing {name}"));
        assert_eq!(v.dtype(), Dtype::I64, "{name}");
        v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
    }
    fn shape(&self, name: &str) -> Vec<usize> {
        self.st().tensor(name).expect("tensor").shape().to_vec()
    }
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn rel(a: &[f32], b: &[f32]) -> f32 {
    max_abs(a, b) / b.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-12)
}

enum Head {
    Tagging(TaggingHead),
    Span(SpanHead),
    Mlm(MlmHead),
}

fn run(model: &str, tag: &str) {
    let dir = fixture(model);
    let cfg = ModelConfig::from_file(&dir.join("config.json")).expect("config");
    let heads = Golden(std::fs::read(dir.join("heads.safetensors")).expect("heads.safetensors"));
    let golden = Golden(std::fs::read(dir.join("golden.safetensors")).expect("golden.safetensors"));
    // Encoder first (same offsets as an encoder-only layout), then the head.
    let mut layout = ParamLayout::default();
    let enc = EncoderParams::register(&mut layout, &cfg, false);
    let mut params = vec![0.0f32; layout.total];
    load_into(&mut params, &layout, &cfg, &dir, &|t| t.encoder).expect("encoder weights");
    let (c, v) = (cfg.hidden_size, cfg.vocab_size);
    let head = match tag {
        "tagging" => Head::Tagging(TaggingHead::register(&mut layout, "classifier", c, 5)),
        "span" => Head::Span(SpanHead::register(&mut layout, "qa_outputs", c)),
        _ => Head::Mlm(MlmHead::register(&mut layout, cfg.family, enc.wte.clone(), c, v, cfg.layer_norm_eps)),
    };
    params.resize(layout.total, 0.0);
    for t in layout.tensors.iter().filter(|t| !t.encoder) {
        params[t.range()].copy_from_slice(&heads.f32(&format!("{tag}.w.{}", t.name)));
    }
    let shape = heads.shape(&format!("{tag}.input_ids"));
    let (b, t) = (shape[0], shape[1]);
    let n = b * t;
    let batch = Batch {
        b,
        t,
        ids: heads.i64(&format!("{tag}.input_ids")).iter().map(|&x| x as u32).collect(),
        types: golden.i64("token_type_ids").iter().map(|&x| x as u32).collect(),
        mask: golden.i64("attention_mask").iter().map(|&x| x as f32).collect(),
    };
    let off = DropoutCfg::OFF;
    let mut acts = Activations::new(&cfg, b, t, true);
    encoder_forward(&mut acts, &params, &enc, &cfg, &batch, off, None);
    let hidden = acts.last().to_vec();
    let mut grads = vec![0.0f32; layout.total];
    let mut s = BackwardScratch::new(&cfg, b, t);
    let (loss, logits) = match &head {
        Head::Tagging(h) => {
            let labels = heads.i64("tagging.labels");
            let mut a = TaggingActs::new(n, c, 5);
            let loss = tagging_forward(&mut a, &params, h, &hidden, Some(&labels), n, c, off);
            tagging_backward(&mut s.dx, &mut grads, &mut a, &params, h, &labels, n, c, off);
            (loss, a.logits)
        }
        Head::Span(h) => {
            let (st, en) = (heads.i64("span.start_positions"), heads.i64("span.end_positions"));
            let mut a = SpanActs::new(b, t);
            let loss = span_forward(&mut a, &params, h, &hidden, Some((&st, &en)), b, t, c);
            span_backward(&mut s.dx, &mut grads, &mut a, &params, h, &hidden, (&st, &en), b, t, c);
            (loss, a.logits.clone())
        }
        Head::Mlm(h) => {
            let labels = heads.i64("mlm.labels");
            let mut a = MlmActs::default();
            let loss = mlm_forward(&mut a, &params, h, &hidden, &labels, n, c);
            mlm_backward(&mut s.dx, &mut grads, &a, &params, h, n, c);
            (loss, a.logits.clone())
        }
    };
    let d = max_abs(&logits, &heads.f32(&format!("{tag}.logits")));
    assert!(d <= 1e-4, "{model}/{tag}: logits differ by {d}");
    let want = heads.f32(&format!("{tag}.loss"))[0];
    assert!((loss - want).abs() <= 1e-5, "{model}/{tag}: loss {loss} vs {want}");
    encoder_backward(&mut grads, &mut s, &acts, &params, &enc, &cfg, &batch, off, cfg.num_layers);
    let mut checked = 0;
    for tensor in layout.tensors.iter().filter(|t| !t.encoder || t.name == "embeddings.word_embeddings.weight").rev() {
        let want = heads.f32(&format!("{tag}.grad.{}", tensor.name));
        if tensor.name == "qa_outputs.bias" {
            // The bias shifts every position's logit equally, so the softmax cancels it: both
            // gradients are round-off around zero.
            let worst = grads[tensor.range()].iter().chain(&want).fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(worst < 1e-6, "{model}/{tag}: qa_outputs.bias gradient should vanish ({worst:e})");
            checked += 1;
            continue;
        }
        let r = rel(&grads[tensor.range()], &want);
        assert!(r <= 1e-3, "{model}/{tag}: gradient of {} off by {r:.2e} relative", tensor.name);
        checked += 1;
    }
    println!("{model}/{tag}: logits {d:.1e}, loss {loss} vs {want}, {checked} gradients match");
}

#[test]
fn token_classification_matches_transformers() {
    run("tiny-xlmr", "tagging");
    run("tiny-bert", "tagging");
}

#[test]
fn question_answering_matches_transformers() {
    run("tiny-xlmr", "span");
    run("tiny-bert", "span");
}

#[test]
fn masked_lm_matches_transformers() {
    run("tiny-xlmr", "mlm");
    run("tiny-bert", "mlm");
}
