//! Golden parity with HF `transformers`: a tiny random XLM-R and a tiny random BERT, built by
//! `tools/make_fixtures.py`, run on a padded batch of pairs. Every hidden state, the pooled
//! output, the logits and loss of a sequence-classification head, and every parameter gradient
//! must match: activations max-abs ≤ 1e-4, gradients max-abs relative to the tensor's
//! largest value ≤ 1e-3. Tokenization is checked against the HF fast tokenizer's outputs.

use safetensors::tensor::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use xlt::config::ModelConfig;
mod common;
use xlt::cpu::encoder::pooler_forward;
use xlt::model::weights::saved_name;
use xlt::model::{Batch, DropoutCfg};
use xlt::tokenize::Tokenizer;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

struct Golden {
    bytes: Vec<u8>,
}

impl Golden {
    fn load(dir: &Path) -> Self {
        Golden { bytes: std::fs::read(dir.join("golden.safetensors")).expect("golden.safetensors is committed") }
    }
    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("valid golden file")
    }
    fn f32(&self, name: &str) -> Vec<f32> {
        let st = self.st();
        let v = st.tensor(name).unwrap_or_else(|_| panic!("golden tensor {name}"));
        assert_eq!(v.dtype(), Dtype::F32);
        v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }
    fn i64(&self, name: &str) -> (Vec<i64>, Vec<usize>) {
        let st = self.st();
        let v = st.tensor(name).unwrap_or_else(|_| panic!("golden tensor {name}"));
        assert_eq!(v.dtype(), Dtype::I64);
        let data = v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        (data, v.shape().to_vec())
    }
    fn has(&self, name: &str) -> bool {
        self.st().tensor(name).is_ok()
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// The encoder pooler's tensor `suffix` (`weight`, `bias`) of the fixture in `dir`.
fn pooler_tensor(dir: &Path, suffix: &str) -> Vec<f32> {
    let bytes = std::fs::read(dir.join("model.safetensors")).expect("weights");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let (_, v) = st
        .tensors()
        .into_iter()
        .find(|(n, _)| n.ends_with(&format!("pooler.dense.{suffix}")))
        .expect("the fixture has a pooler");
    v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn run_parity(name: &str) {
    let dir = fixture(name);
    let g = Golden::load(&dir);
    let mut model = common::classifier_from_dir(&dir, 3);
    let cfg: ModelConfig = model.s.cfg.clone();
    let (ids, shape) = g.i64("input_ids");
    let (b, t) = (shape[0], shape[1]);
    let batch = Batch {
        b,
        t,
        ids: ids.iter().map(|&x| x as u32).collect(),
        types: g.i64("token_type_ids").0.iter().map(|&x| x as u32).collect(),
        mask: g.i64("attention_mask").0.iter().map(|&x| x as f32).collect(),
    };
    assert!(batch.mask.contains(&0.0), "the golden batch must contain padding");
    let labels = g.i64("labels").0;
    let tb = common::labelled(&batch, &labels);

    let loss = model.forward(0, &tb, DropoutCfg::OFF).expect("forward");
    for l in 0..=cfg.num_layers {
        let d = max_abs_diff(model.hidden_state(l).expect("forward ran"), &g.f32(&format!("hidden_states.{l}")));
        println!("{name}: hidden_states[{l}] max abs diff {d:.2e}");
        assert!(d <= 1e-4, "{name}: hidden_states[{l}] differs by {d}");
    }
    // HF's pooler_output: the encoder's pooler on the final hidden state.
    let c = cfg.hidden_size;
    let (mut pooled, mut first) = (vec![0.0; b * c], vec![0.0; b * c]);
    let last = model.hidden_state(cfg.num_layers).expect("forward ran");
    pooler_forward(
        &mut pooled,
        &mut first,
        last,
        &pooler_tensor(&dir, "weight"),
        &pooler_tensor(&dir, "bias"),
        b,
        t,
        c,
    );
    let d = max_abs_diff(&pooled, &g.f32("pooled"));
    println!("{name}: pooled max abs diff {d:.2e}");
    assert!(d <= 1e-4, "{name}: pooled output differs by {d}");
    let d = max_abs_diff(model.head_logits(0).expect("forward ran"), &g.f32("logits"));
    assert!(d <= 1e-4, "{name}: logits differ by {d}");
    let want_loss = g.f32("loss")[0];
    println!("{name}: loss {loss} vs transformers {want_loss}");
    assert!((loss - want_loss).abs() <= 1e-5, "{name}: loss {loss} vs {want_loss}");

    model.zero_grad();
    model.forward_backward(0, &tb, DropoutCfg::OFF).expect("backward");
    let mut checked = 0;
    for tensor in &model.s.layout.tensors {
        let key = format!("grad.{}", saved_name(tensor, &cfg));
        if !g.has(&key) {
            // The XLM-R pooler does not feed the classification loss: no gradient recorded.
            assert!(tensor.name.starts_with("pooler."), "{name}: no golden gradient for {key}");
            continue;
        }
        let want = g.f32(&key);
        let got = &model.grads[tensor.range()];
        if tensor.name.ends_with("attention.self.key.bias") {
            // Softmax cancels the key bias: both gradients are round-off around zero.
            let worst = got.iter().chain(&want).fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(worst < 1e-6, "{name}: {key} should vanish, max |g| {worst:.2e}");
            checked += 1;
            continue;
        }
        let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let rel = max_abs_diff(got, &want) / scale.max(1e-12);
        assert!(rel <= 1e-3, "{name}: gradient {key} relative error {rel:.2e} (max |g| {scale:.2e})");
        checked += 1;
    }
    println!("{name}: {checked} parameter gradients match");
    assert!(checked >= 4 + 16 * cfg.num_layers, "{name}: only {checked} gradients compared");
}

#[test]
fn tiny_xlmr_matches_transformers_forward_and_backward() {
    run_parity("tiny-xlmr");
}

#[test]
fn tiny_bert_matches_transformers_forward_and_backward() {
    run_parity("tiny-bert");
}

fn run_tokenizer_parity(name: &str) {
    let dir = fixture(name);
    let cfg = ModelConfig::from_file(&dir.join("config.json")).expect("config");
    let tok = Tokenizer::from_file(&dir.join("tokenizer.json"), cfg.family).expect("tokenizer");
    let text = std::fs::read_to_string(dir.join("tokens.json")).expect("tokens.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
    let (mut pairs, mut words, mut truncated) = (0, 0, 0);
    for case in &cases {
        let want_ids: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).expect("ids");
        if let Some(ws) = case.get("words") {
            let ws: Vec<String> = serde_json::from_value(ws.clone()).expect("words");
            let refs: Vec<&str> = ws.iter().map(String::as_str).collect();
            let e = tok.encode_words(&refs, 512).expect("encode words");
            let want_w: Vec<Option<u32>> = serde_json::from_value(case["word_ids"].clone()).expect("word ids");
            assert_eq!(e.ids, want_ids, "{name}: words {ws:?}");
            assert_eq!(e.word_ids, want_w, "{name}: word ids of {ws:?}");
            words += 1;
            continue;
        }
        let a = case["a"].as_str().expect("a");
        let b = case["b"].as_str();
        let max_len = case["max_length"].as_u64().map_or(512, |m| m as usize);
        let e = tok.encode(a, b, max_len).expect("encode");
        let want_types: Vec<u32> = serde_json::from_value(case["token_type_ids"].clone()).expect("types");
        assert_eq!(e.ids, want_ids, "{name}: {a:?} / {b:?} (max {max_len})");
        assert_eq!(e.types, want_types, "{name}: token types of {a:?} / {b:?}");
        pairs += b.is_some() as usize;
        truncated += e.truncated as usize;
    }
    println!("{name}: {} cases ({pairs} pairs, {words} pre-tokenized, {truncated} truncated)", cases.len());
    assert!(pairs >= 2 && words >= 1 && truncated >= 2, "{name}: tokens.json lacks pair / word / truncation cases");
}

#[test]
fn tiny_xlmr_tokenization_matches_hf() {
    run_tokenizer_parity("tiny-xlmr");
}

#[test]
fn tiny_bert_tokenization_matches_hf() {
    run_tokenizer_parity("tiny-bert");
}

/// The inference path of `xlt embed` (transposed weights, one reused layer buffer, early stop
/// at the requested layer) must give the hidden states of the training path.
#[test]
fn inference_path_matches_training_path() {
    use xlt::embed::{Embedder, Pool};
    for name in ["tiny-xlmr", "tiny-bert"] {
        let dir = fixture(name);
        let emb = Embedder::load(&dir, &xlt::device::Device::Cpu).expect("embedder");
        let mut model = common::classifier_from_dir(&dir, 3);
        let sentences: Vec<String> =
            ["a short one", "a somewhat longer sentence with more words", "mid size line"].map(String::from).to_vec();
        for layer in 0..=model.s.cfg.num_layers {
            let got = emb.embed(&sentences, layer, Pool::Mean, 2, 64).expect("embed");
            let c = model.s.cfg.hidden_size;
            for (i, s) in sentences.iter().enumerate() {
                let e = emb.tok.encode(s, None, 64).expect("encode");
                let t = e.ids.len();
                let batch = Batch { b: 1, t, ids: e.ids.clone(), types: e.types.clone(), mask: vec![1.0; t] };
                let tb = xlt::model::TaskBatch { batch, targets: xlt::model::Targets::None };
                model.forward(0, &tb, DropoutCfg::OFF).expect("forward");
                let h = model.hidden_state(layer).expect("hidden");
                let mean: Vec<f32> = (0..c).map(|j| (0..t).map(|ti| h[ti * c + j]).sum::<f32>() / t as f32).collect();
                let d = max_abs_diff(&got.data[i * c..(i + 1) * c], &mean);
                assert!(d < 1e-5, "{name} layer {layer} sentence {i}: {d}");
            }
        }
    }
}
