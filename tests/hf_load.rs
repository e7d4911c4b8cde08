//! What xlt saves, `transformers` loads: a tiny model is trained for a few steps, saved in the
//! HF layout, loaded by `transformers` (`*ForSequenceClassification.from_pretrained`) and run
//! on the same batch; logits must agree. Needs a Python with torch + transformers in
//! `XLT_PYTHON`; without it the test says so and passes (CI has no PyTorch).

use std::path::Path;
use std::process::Command;
mod common;
use xlt::bench::{bench_step, random_batch};
use xlt::model::weights::save_dir;
use xlt::model::{DropoutCfg, TaskModel};

const SCRIPT: &str = r#"
import json, sys, torch, transformers
d, arch = sys.argv[1], sys.argv[2]
cls = getattr(transformers, arch)
m = cls.from_pretrained(d, num_labels=3).eval()
b = json.load(open(d + "/batch.json"))
with torch.no_grad():
    out = m(input_ids=torch.tensor(b["ids"]), attention_mask=torch.tensor(b["mask"]), token_type_ids=torch.tensor(b["types"]))
print(json.dumps(out.logits.flatten().tolist()))
"#;

fn check(fixture: &str, arch: &str) {
    let Some(py) = std::env::var_os("XLT_PYTHON") else {
        println!("skipped: set XLT_PYTHON to a Python with torch and transformers");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture);
    let mut model = common::classifier_from_dir(&dir, 3);
    let mut step = bench_step();
    step.adamw.lr = 1e-3;
    let mut tb = random_batch(&model.s.cfg, 2, 9, 3);
    for s in 0..3 {
        model.forward_backward(0, &tb, DropoutCfg::train(&model.s.cfg, s)).expect("forward_backward");
        model.step(&step).expect("step");
    }
    // Pad the second sequence so the mask matters.
    for i in 6..9 {
        tb.batch.ids[9 + i] = model.s.cfg.pad_token_id;
        tb.batch.mask[9 + i] = 0.0;
    }
    tb.targets = xlt::model::Targets::None;
    model.forward(0, &tb, DropoutCfg::OFF).expect("forward");
    let ours = model.head_logits(0).expect("logits").to_vec();
    let batch = &tb.batch;
    let tmp = tempfile::tempdir().expect("tmp");
    save_dir(tmp.path(), &model.s.cfg, &model.s.layout, &model.params, &|_| true).expect("save");
    let b = serde_json::json!({
        "ids": batch.ids.chunks(9).collect::<Vec<_>>(),
        "types": batch.types.chunks(9).collect::<Vec<_>>(),
        "mask": batch.mask.chunks(9).map(|r| r.iter().map(|&m| m as i64).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    std::fs::write(tmp.path().join("batch.json"), b.to_string()).expect("batch");
    let o = Command::new(py).args(["-c", SCRIPT]).arg(tmp.path()).arg(arch).output().expect("run python");
    assert!(o.status.success(), "transformers failed: {}", String::from_utf8_lossy(&o.stderr));
    let theirs: Vec<f32> = serde_json::from_slice(o.stdout.trim_ascii()).expect("logits json");
    let d = ours.iter().zip(&theirs).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("{fixture}: transformers reproduces xlt's logits within {d:.2e}");
    assert!(d < 1e-4, "{fixture}: {ours:?} vs {theirs:?}");
}

#[test]
fn saved_xlmr_loads_in_transformers() {
    check("tiny-xlmr", "XLMRobertaForSequenceClassification");
}

#[test]
fn saved_bert_loads_in_transformers() {
    check("tiny-bert", "BertForSequenceClassification");
}
