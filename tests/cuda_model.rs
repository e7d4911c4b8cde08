//! The whole CUDA model against the CPU reference, on the emulated device (always) and on a GPU
//! (`--ignored`): loss and every parameter gradient of every head family (fp32 tight, bf16 and
//! fp16 loose), with dropout on (the masks are the CPU's), on the unfused and the fused
//! attention paths; a short training run with accumulation and clipping whose loss curve tracks
//! the CPU's; a step that leaves the weights untouched when a loss is NaN or fp16 overflows;
//! bit-identical reruns; inference and GPU embeddings; and, anywhere, the fp16 loss scaler and
//! that probing and opening never panic.

#[path = "cuda_emu/harness.rs"]
mod harness;

use std::sync::Arc;
use xlt::config::ModelConfig;
use xlt::cpu::CpuModel;
use xlt::cuda::model::{CudaModel, LossScaler};
use xlt::cuda::{probe, Gpu, Probe};
use xlt::model::{
    assign_prefixes, AdamWConfig, Batch, DropoutCfg, HeadSpec, HostModel, Precision, SoBatch, StepConfig, Targets,
    TaskBatch, TaskModel, IGNORE_INDEX,
};
use xlt::rng::Rng;
use xlt::tasks::Kind;

/// Odd sizes everywhere: C = 40 (HS = 10), FFN = 72, V = 301, T = 9.
fn config() -> ModelConfig {
    let mut cfg = ModelConfig::xlmr_shape(40, 2, 4, 72, 301, 40);
    cfg.hidden_dropout = 0.1;
    cfg.attention_dropout = 0.1;
    cfg
}

fn specs() -> Vec<HeadSpec> {
    let mut s = vec![
        HeadSpec::new("cls", Kind::Classification, 3),
        HeadSpec::new("mc", Kind::MultipleChoice, 2),
        HeadSpec::new("qa", Kind::SpanQa, 0),
        HeadSpec::new("tag", Kind::Tagging, 5),
        HeadSpec::new("mlm", Kind::MaskedLm, 0),
    ];
    assign_prefixes(&mut s);
    s
}

/// B rows of T = 9 tokens; row r has r pads at its end (pad id 1).
fn batch(b: usize, seed: u64) -> Batch {
    let (t, pad) = (9, 1u32);
    let mut r = Rng::new(seed);
    let mut ids = Vec::with_capacity(b * t);
    for row in 0..b {
        for j in 0..t {
            ids.push(if j == 0 {
                0
            } else if j >= t - row.min(t - 2) {
                pad
            } else {
                5 + r.below(290) as u32
            });
        }
    }
    let mask = ids.iter().map(|&i| if i == pad { 0.0 } else { 1.0 }).collect();
    Batch { b, t, types: vec![0; ids.len()], ids, mask }
}

fn task_batch(kind: Kind, seed: u64) -> TaskBatch {
    let i = IGNORE_INDEX;
    let mut r = Rng::new(seed ^ 77);
    match kind {
        Kind::Classification => TaskBatch { batch: batch(3, seed), targets: Targets::Labels(vec![2, 0, 1]) },
        Kind::MultipleChoice => TaskBatch { batch: batch(4, seed), targets: Targets::Labels(vec![1, 0]) },
        Kind::SpanQa => {
            TaskBatch { batch: batch(3, seed), targets: Targets::Span { start: vec![1, 9, 2], end: vec![3, 9, 6] } }
        }
        Kind::Tagging => {
            let labels = (0..27).map(|j| if j % 3 == 0 { i } else { r.below(5) as i64 }).collect();
            TaskBatch { batch: batch(3, seed), targets: Targets::Labels(labels) }
        }
        Kind::MaskedLm => {
            let labels = (0..27).map(|j| if j % 4 == 1 { 5 + r.below(290) as i64 } else { i }).collect();
            TaskBatch { batch: batch(3, seed), targets: Targets::Labels(labels) }
        }
        Kind::Retrieval => unreachable!("no head"),
    }
}

/// A model whose weights are larger than HF's 0.02 init, so every path carries signal.
/// A trainable CPU model of `cfg` with `specs`, initialised from `seed`.
fn cpu_model(cfg: &ModelConfig, specs: Vec<HeadSpec>, seed: u64) -> CpuModel {
    CpuModel::new(HostModel::new_random(cfg, specs, seed).expect("model"), None).expect("cpu model")
}

fn model(seed: u64) -> CpuModel {
    let mut m = cpu_model(&config(), specs(), seed);
    let mut r = Rng::new(seed + 100);
    for x in m.params.iter_mut() {
        *x += r.normal() * 0.1;
    }
    m
}

/// Per-tensor comparison of two gradient buffers: max |a - b| over max |b| of each tensor, with
/// a floor of 1e-2 of the largest gradient of the model: a tensor whose true gradient is zero
/// (biases a softmax cancels: the attention key bias, the multiple-choice scorer's and the span
/// head's output bias) holds only rounding noise on both sides.
/// The tensors of heads other than `head` (which the step never touches) must hold exactly zero.
fn check_grads(m: &CpuModel, head: Option<usize>, got: &[f32], want: &[f32], rel: f32, what: &str) {
    let global = want.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    for t in &m.s.layout.tensors {
        let r = t.range();
        let (g, w) = (&got[r.clone()], &want[r.clone()]);
        let other_head = head.is_some_and(|h| {
            t.name.starts_with("heads.") && !t.name.starts_with(&format!("heads.{}.", m.s.specs[h].name))
        });
        if other_head {
            assert!(g.iter().chain(w).all(|x| *x == 0.0), "{what}: {} belongs to another head", t.name);
            continue;
        }
        let scale = w.iter().fold(0.0f32, |a, x| a.max(x.abs())).max(1e-2 * global);
        let err =
            g.iter().zip(w).fold(0.0f32, |a, (x, y)| if x.is_finite() { a.max((x - y).abs()) } else { f32::INFINITY });
        assert!(
            err <= rel * scale,
            "{what}: {}: max error {err:e} vs scale {scale:e} (bound {rel:e} relative)",
            t.name
        );
    }
}

fn bounds(p: Precision) -> (f32, f32) {
    // (loss relative, gradient relative per tensor). fp32 differs from the CPU only by summation
    // order; bf16 keeps 8 bits of mantissa in every activation and GEMM input.
    match p {
        Precision::Fp32 => (1e-5, 2e-4),
        Precision::Bf16 => (3e-2, 1.5e-1),
        Precision::Fp16 => (1e-2, 5e-2),
    }
}

/// One forward + backward of head `h` on the GPU and the CPU from the same weights: the losses
/// and every gradient must agree within `bounds(p)`. Returns the GPU model for further checks.
fn step_matches_cpu(
    gpu: &Arc<Gpu>,
    cpu: &mut CpuModel,
    p: Precision,
    h: usize,
    drop: DropoutCfg,
    what: &str,
) -> CudaModel {
    let (loss_rel, grad_rel) = bounds(p);
    let mut gm = CudaModel::new(gpu.clone(), p, &cpu.host(), None).expect("upload");
    // A scale that keeps this tiny model's scaled gradients inside fp16's range (the default
    // 65536 overflows on a first step, which the scaler then backs off from).
    gm.scaler.scale = 256.0;
    let tb = task_batch(cpu.s.specs[h].kind, h as u64);
    let want = cpu.forward_backward(h, &tb, drop).expect("cpu");
    let got = gm.forward_backward(h, &tb, drop).expect("gpu");
    assert!((got - want).abs() <= loss_rel * want.abs().max(1e-3), "{what}: loss {got} vs CPU {want}");
    let mut grads = gm.download_grads().expect("grads");
    if p == Precision::Fp16 {
        let s = gm.scaler.scale;
        grads.iter_mut().for_each(|g| *g /= s);
    }
    check_grads(cpu, Some(h), &grads, &cpu.grads, grad_rel, what);
    gm
}

fn every_head_matches_the_cpu_in_every_precision(gpu: &Arc<Gpu>) {
    for p in [Precision::Fp32, Precision::Bf16, Precision::Fp16] {
        let (loss_rel, grad_rel) = bounds(p);
        for (h, spec) in specs().iter().enumerate() {
            let mut cpu = model(3);
            let drop = DropoutCfg::train(&cpu.s.cfg, 42 + h as u64);
            let what = format!("{p:?} head {}", spec.name);
            let mut gm = step_matches_cpu(gpu, &mut cpu, p, h, drop, &what);
            let tb = task_batch(spec.kind, h as u64);
            // The forward alone returns the same loss and the same outputs.
            cpu.zero_grad();
            let cpu_fwd = cpu.forward(h, &tb, drop).expect("cpu forward");
            let gpu_fwd = gm.forward(h, &tb, drop).expect("gpu forward");
            assert!((gpu_fwd - cpu_fwd).abs() <= loss_rel * cpu_fwd.abs().max(1e-3), "{what}: forward loss");
            if let Some(want) = cpu.head_logits(h) {
                let got = gm.read_logits(h).expect("logits");
                xlt::cuda::testing::assert_close(&format!("{what} logits"), &got, want, grad_rel);
            }
        }
    }
}

fn bert_classification_uses_the_pooler(gpu: &Arc<Gpu>) {
    let mut cfg = config();
    cfg.family = xlt::config::Family::Bert;
    cfg.pad_token_id = 0;
    cfg.type_vocab_size = 2;
    let specs = vec![HeadSpec::new("cls", Kind::Classification, 3)];
    let mut cpu = cpu_model(&cfg, specs, 5);
    let mut r = Rng::new(9);
    cpu.params.iter_mut().for_each(|x| *x += r.normal() * 0.1);
    let mut gm = CudaModel::new(gpu.clone(), Precision::Fp32, &cpu.host(), None).expect("upload");
    let mut tb = task_batch(Kind::Classification, 1);
    tb.batch.ids.iter_mut().for_each(|i| *i = if *i == 1 { 0 } else { *i });
    tb.batch.types = (0..tb.batch.ids.len()).map(|j| (j % 9 >= 4) as u32).collect();
    let drop = DropoutCfg::train(&cpu.s.cfg, 8);
    let want = cpu.forward_backward(0, &tb, drop).expect("cpu");
    let got = gm.forward_backward(0, &tb, drop).expect("gpu");
    assert!((got - want).abs() <= 1e-5 * want.abs(), "loss {got} vs {want}");
    check_grads(&cpu, None, &gm.download_grads().expect("grads"), &cpu.grads, 2e-4, "BERT fp32");
}

/// Twenty AdamW steps with accumulation and clipping on both backends from the same weights,
/// taken as the trainer takes them (accumulate, then a step that reports the losses).
fn train_curve(gpu: Option<Arc<Gpu>>, p: Precision) -> Vec<f32> {
    let cpu_model = model(11);
    let adamw = AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    let step_cfg = StepConfig { adamw, micro_batches: 2, max_grad_norm: 1.0 };
    let tb = [task_batch(Kind::Classification, 1), task_batch(Kind::Classification, 2)];
    let cfg = cpu_model.s.cfg.clone();
    let mut m: Box<dyn TaskModel> = match gpu {
        Some(g) => {
            let mut gm = CudaModel::new(g, p, &cpu_model.host(), None).expect("upload");
            gm.scaler.scale = 256.0;
            Box::new(gm)
        }
        None => Box::new(cpu_model),
    };
    let mut losses = Vec::new();
    for step in 0..20u64 {
        for (micro, b) in tb.iter().enumerate() {
            m.accumulate(0, b, DropoutCfg::train(&cfg, step * 2 + micro as u64)).expect("accumulate");
        }
        let report = m.step(&step_cfg).expect("step");
        assert!(report.applied && report.grad_norm.is_some_and(f32::is_finite), "step {step}: {report:?}");
        assert_eq!(report.losses.len(), 2);
        losses.push(report.losses.iter().sum::<f32>() / 2.0);
    }
    losses
}

fn a_short_training_run_tracks_the_cpu(gpu: &Arc<Gpu>) {
    let cpu = train_curve(None, Precision::Fp32);
    assert!(cpu[19] < cpu[0] * 0.7, "the CPU run should learn: {cpu:?}");
    for (p, rel) in [(Precision::Fp32, 1e-3), (Precision::Bf16, 5e-2), (Precision::Fp16, 5e-2)] {
        let got = train_curve(Some(gpu.clone()), p);
        for (s, (g, c)) in got.iter().zip(&cpu).enumerate() {
            assert!((g - c).abs() <= rel * c.abs().max(0.1), "{p:?} step {s}: loss {g} vs CPU {c}\n{got:?}\n{cpu:?}");
        }
    }
}

/// A NaN weight makes the loss NaN: the step reports it and leaves every weight, moment and the
/// step count as they were (so the trainer's error names the poisoned tensor); an fp16 overflow
/// with finite losses is a skipped step that halves the loss scale.
fn a_step_with_a_non_finite_loss_or_an_overflow_changes_nothing(gpu: &Arc<Gpu>) {
    let adamw = AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    let step_cfg = StepConfig { adamw, micro_batches: 1, max_grad_norm: 1.0 };
    let tb = task_batch(Kind::Classification, 1);
    let drop = DropoutCfg::train(&config(), 1);
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();

    let cpu = model(12);
    let mut gm = CudaModel::new(gpu.clone(), Precision::Bf16, &cpu.host(), None).expect("upload");
    gm.accumulate(0, &tb, drop).expect("accumulate");
    assert!(gm.optimizer_step(&step_cfg).expect("step").applied, "a good step applies");
    let mut params = gm.download_params().expect("params");
    let t = gm.s.layout.find("encoder.layer.1.output.dense.weight").expect("tensor").clone();
    params[t.range().start + 3] = f32::NAN;
    gm.upload_params(&params).expect("upload");
    let (before, moments, steps) = (bits(gm.download_params().expect("p")), gm.download_moments().expect("m"), gm.t);
    gm.accumulate(0, &tb, drop).expect("accumulate");
    let report = gm.optimizer_step(&step_cfg).expect("step");
    assert!(report.losses[0].is_nan() && !report.applied, "{report:?}");
    assert_eq!(bits(gm.download_params().expect("p")), before, "weights untouched");
    let after = gm.download_moments().expect("m");
    assert_eq!((bits(after.0), bits(after.1)), (bits(moments.0), bits(moments.1)), "moments untouched");
    assert_eq!(gm.t, steps, "no AdamW step counted");
    let found = TaskModel::first_non_finite(&gm).expect("scan").expect("a NaN");
    assert!(found.contains("encoder.layer.1.output.dense.weight[3]"), "{found}");

    let mut gm = CudaModel::new(gpu.clone(), Precision::Fp16, &cpu.host(), None).expect("upload");
    gm.scaler.scale = 1e30; // the scaled loss gradient overflows fp16
    let before = bits(gm.download_params().expect("p"));
    gm.accumulate(0, &tb, drop).expect("accumulate");
    let report = gm.optimizer_step(&step_cfg).expect("step");
    assert!(report.losses[0].is_finite() && report.grad_norm.is_none() && !report.applied, "{report:?}");
    assert_eq!(bits(gm.download_params().expect("p")), before, "an overflowed step changes no weight");
    assert_eq!((gm.t, gm.scaler.skipped, gm.scaler.scale), (0, 1, 5e29), "skipped, scale halved");
    // The next step starts from zero gradients and applies.
    gm.scaler.scale = 256.0;
    gm.accumulate(0, &tb, drop).expect("accumulate");
    let report = gm.optimizer_step(&step_cfg).expect("step");
    assert!(report.applied && report.grad_norm.is_some_and(f32::is_finite), "{report:?}");
}

/// Frozen head tensors (`--freeze-head`): the GPU step leaves them, and their moments, bit for
/// bit as they were, while the encoder trains, in fp32 and bf16.
fn a_frozen_head_stays_bit_identical(gpu: &Arc<Gpu>) {
    let adamw = AdamWConfig { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 };
    let step_cfg = StepConfig { adamw, micro_batches: 2, max_grad_norm: 1.0 };
    let tb = task_batch(Kind::Classification, 1);
    let drop = DropoutCfg::train(&config(), 1);
    for p in [Precision::Fp32, Precision::Bf16] {
        let mut host = model(12).host();
        assert!(host.structure.layout.freeze_heads() > 0);
        let layout = host.structure.layout.clone();
        let mut gm = CudaModel::new(gpu.clone(), p, &host, None).expect("upload");
        let before = gm.download_params().expect("params");
        for _ in 0..2 {
            gm.accumulate(0, &tb, drop).expect("accumulate");
            gm.accumulate(0, &tb, drop).expect("accumulate");
            assert!(gm.optimizer_step(&step_cfg).expect("step").applied);
        }
        let (after, (m, v)) = (gm.download_params().expect("params"), gm.download_moments().expect("moments"));
        let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for t in &layout.tensors {
            let r = t.range();
            if t.frozen {
                assert_eq!(bits(&after[r.clone()]), bits(&before[r.clone()]), "{p:?} {}", t.name);
                assert!(m[r.clone()].iter().chain(&v[r]).all(|x| *x == 0.0), "{p:?} moments of {}", t.name);
            }
        }
        assert_ne!(bits(&after), bits(&before), "{p:?}: the encoder trains");
    }
}

/// Two pairs of `batch(4, seed)` (rows 0, 1 the sources, rows 2, 3 the targets) with a guide.
fn so_batch(seed: u64) -> SoBatch {
    let lens = vec![(6, 4), (5, 3)];
    let mut r = Rng::new(seed ^ 5);
    let guide = lens.iter().map(|&(m, n)| (0..m * n).map(|_| (r.below(3) == 0) as u32 as f32).collect()).collect();
    SoBatch { batch: batch(4, seed), lens, guide, consistency: seed.is_multiple_of(2) }
}

/// The self-training objective (`xlt align-train --objectives so`) from hidden_states[1] and
/// [2]: the GPU's loss and every gradient against the CPU's in each precision; the layers above
/// the objective's and the MLM head get no gradient on either device; `encode_layer` gives the
/// CPU's hidden states.
fn self_training_matches_the_cpu(gpu: &Arc<Gpu>) {
    for p in [Precision::Fp32, Precision::Bf16, Precision::Fp16] {
        let (loss_rel, grad_rel) = bounds(p);
        for layer in [1, 2] {
            let what = format!("self-training at layer {layer} in {p:?}");
            let mut cpu = model(6);
            let mut gm = CudaModel::new(gpu.clone(), p, &cpu.host(), None).expect("upload");
            gm.scaler.scale = 256.0;
            let sb = so_batch(layer as u64);
            let drop = DropoutCfg::train(&cpu.s.cfg, 2);
            let h_cpu = cpu.encode_layer(&sb.batch, layer).expect("cpu").to_vec();
            let h_gpu = gm.encode_layer(&sb.batch, layer).expect("gpu");
            let scale = h_cpu.iter().fold(0.0f32, |a, x| a.max(x.abs()));
            let err = h_cpu.iter().zip(&h_gpu).fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
            assert!(err <= 4.0 * loss_rel.max(1e-6) * scale, "{what}: encode_layer differs by {err} (scale {scale})");
            let want = cpu.accumulate_so(&sb, layer, drop).expect("cpu");
            gm.accumulate_so(&sb, layer, drop).expect("gpu");
            let mut grads = gm.download_grads().expect("grads");
            if p == Precision::Fp16 {
                let s = gm.scaler.scale;
                grads.iter_mut().for_each(|g| *g /= s);
            }
            check_grads(&cpu, None, &grads, &cpu.grads, grad_rel, &what);
            for t in &cpu.s.layout.tensors {
                let above = t.name.starts_with(&format!("encoder.layer.{layer}.")) || !t.encoder;
                if above {
                    let r = t.range();
                    assert!(grads[r.clone()].iter().chain(&cpu.grads[r]).all(|g| *g == 0.0), "{what}: {}", t.name);
                }
            }
            let adamw = AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
            let report = gm.optimizer_step(&StepConfig { adamw, micro_batches: 1, max_grad_norm: 1.0 }).expect("step");
            let got = report.losses[0];
            assert!((got - want).abs() <= loss_rel * want.abs().max(1e-3), "{what}: loss {got} vs CPU {want}");
        }
    }
}

fn reruns_are_bit_identical(gpu: &Arc<Gpu>) {
    for p in [Precision::Fp32, Precision::Bf16] {
        let run = || {
            let cpu = model(4);
            let mut gm = CudaModel::new(gpu.clone(), p, &cpu.host(), None).expect("upload");
            let mut losses = Vec::new();
            for (h, spec) in specs().iter().enumerate() {
                let tb = task_batch(spec.kind, 9);
                losses.push(gm.forward_backward(h, &tb, DropoutCfg::train(&cpu.s.cfg, 3)).expect("fb").to_bits());
            }
            (losses, gm.download_grads().expect("grads").iter().map(|g| g.to_bits()).collect::<Vec<_>>())
        };
        assert!(run() == run(), "{p:?}: two identical runs differ");
    }
}

#[test]
fn fp16_loss_scale_backs_off_and_grows() {
    // Runs everywhere: the scaler is host logic.
    let mut s = xlt::cuda::model::LossScaler { scale: LossScaler::INIT, good_steps: 0, skipped: 0 };
    s.update(true);
    assert_eq!((s.scale, s.skipped), (LossScaler::INIT / 2.0, 1));
    for _ in 0..LossScaler::GROWTH_INTERVAL - 1 {
        s.update(false);
    }
    assert_eq!(s.scale, LossScaler::INIT / 2.0);
    s.update(false);
    assert_eq!((s.scale, s.good_steps), (LossScaler::INIT, 0));
    let mut low = xlt::cuda::model::LossScaler { scale: 1.0, good_steps: 5, skipped: 0 };
    low.update(true);
    assert_eq!(low.scale, 1.0, "the scale never drops below 1");
}

#[test]
fn probing_and_opening_never_panic() {
    // Runs everywhere: without CUDA both say why; with a GPU both succeed.
    match probe() {
        Probe::Unusable(why) => {
            assert!(!why.is_empty());
            let err = Gpu::open(0).expect_err("no GPU: open fails").to_string();
            assert!(err.contains(&why), "{err} should carry the probe's reason {why}");
        }
        Probe::Usable { devices } => {
            assert!(devices > 0);
            let g = Gpu::open(0).expect("open");
            assert!(Gpu::open(devices).is_err(), "a device past the last one is an error");
            assert!(!g.describe().is_empty());
        }
    }
}

fn inference_model_matches_the_cpu_forward(gpu: &Arc<Gpu>) {
    let mut cpu = model(6);
    let mut gm = CudaModel::inference(gpu.clone(), Precision::Fp32, &cpu.host()).expect("upload");
    for (h, spec) in specs().iter().enumerate() {
        let tb = task_batch(spec.kind, 20 + h as u64);
        let want = TaskModel::forward(&mut cpu, h, &tb, DropoutCfg::OFF).expect("cpu");
        let got = TaskModel::forward(&mut gm, h, &tb, DropoutCfg::OFF).expect("gpu");
        assert!((got - want).abs() <= 1e-5 * want.abs().max(1e-3), "head {}: loss {got} vs {want}", spec.name);
        match spec.kind {
            Kind::SpanQa => {
                let (ws, we) = TaskModel::span_logits(&cpu, h).expect("cpu span");
                let (gs, ge) = TaskModel::span_logits(&gm, h).expect("gpu span");
                xlt::cuda::testing::assert_close("start logits", &gs, &ws, 1e-4);
                xlt::cuda::testing::assert_close("end logits", &ge, &we, 1e-4);
            }
            Kind::MaskedLm => {}
            _ => {
                let (w, g) = (TaskModel::logits(&cpu, h).expect("cpu"), TaskModel::logits(&gm, h).expect("gpu"));
                xlt::cuda::testing::assert_close(&format!("head {} logits", spec.name), &g, &w, 1e-4);
            }
        }
    }
    let tb = task_batch(Kind::Classification, 1);
    assert!(gm.forward_backward(0, &tb, DropoutCfg::OFF).is_err(), "an inference model does not train");
}

#[test]
fn out_of_memory_names_the_batch_shape_to_lower() {
    // Runs everywhere: the message is built on the host.
    use xlt::cuda::encoder::oom_hint;
    let e = oom_hint(xlt::Error::OutOfMemory { what: "qkv".into(), bytes: 3 << 30 }, 32, 512);
    let msg = e.to_string();
    for part in ["GPU out of memory", "qkv", "32 sequences × 512 tokens", "--train-batch-size 16", "3.00 GiB"] {
        assert!(msg.contains(part), "{msg:?} should say {part:?}");
    }
    assert_eq!(oom_hint(e, 8, 8).to_string(), msg, "the hint is added once");
    let other = oom_hint(xlt::Error::Cuda("launch failed".into()), 32, 512).to_string();
    assert_eq!(other, "CUDA: launch failed", "other errors pass through");
}

fn gpu_embeddings_match_the_cpu(gpu: &Arc<Gpu>) {
    use xlt::embed::{Embedder, Pool};
    let dir = xlt::demo::data::default_model_dir();
    let sentences: Vec<String> = ["the cat sat", "anna gave tom 3 apples in paris", "a", "who went to rome ?"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cpu = Embedder::load(&dir, &xlt::device::Device::Cpu).expect("load");
    for (p, rel) in [(Precision::Fp32, 1e-5), (Precision::Bf16, 3e-2)] {
        let g = Embedder::load(&dir, &xlt::device::Device::Cuda { gpu: gpu.clone(), precision: p }).expect("load");
        for (layer, pool) in [(cpu.cfg().num_layers, Pool::Mean), (1, Pool::Cls), (0, Pool::Mean)] {
            let want = cpu.embed(&sentences, layer, pool, 3, 64).expect("cpu");
            let got = g.embed(&sentences, layer, pool, 3, 64).expect("gpu");
            assert_eq!((got.n, got.dim), (want.n, want.dim));
            xlt::cuda::testing::assert_close(&format!("{p:?} layer {layer} {pool:?}"), &got.data, &want.data, rel);
        }
    }
}

/// `xlt align` on the GPU encoder: the same links as on the CPU in fp32 (every line of the
/// alignment fixture, every method), and in bf16 close to them (the CPU's links as a gold
/// set: AER at most 0.15).
fn gpu_alignments_match_the_cpu(gpu: &Arc<Gpu>) {
    use xlt::align::aligner::{align_lines, AlignSettings};
    use xlt::align::extract::Method;
    use xlt::align::pharaoh::Kind as LinkKind;
    use xlt::embed::EncoderWeights;
    harness::order_checks(false); // links, not kernels: the kernels are checked above
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let lines = xlt::align::pairs::read_lines(&root.join("align/pairs.txt")).expect("pairs");
    for model in ["tiny-xlmr", "tiny-bert"] {
        let load = |d: &xlt::device::Device| {
            EncoderWeights::read(&root.join(model)).expect("model").encoder_on(d).expect("encoder")
        };
        let (cpu, tok) = load(&xlt::device::Device::Cpu);
        for method in [Method::Softmax { threshold: 1e-3 }, Method::Argmax, Method::Itermax] {
            let s = AlignSettings { layer: 2, method, batch_size: 7 };
            let want = align_lines(cpu.as_ref(), &tok, &lines, &s).expect("cpu");
            for (p, max_aer) in [(Precision::Fp32, 0.0), (Precision::Bf16, 0.15)] {
                let (g, _) = load(&xlt::device::Device::Cuda { gpu: gpu.clone(), precision: p });
                let got = align_lines(g.as_ref(), &tok, &lines, &s).expect("gpu");
                if max_aer == 0.0 {
                    assert_eq!(got.links, want.links, "{model} {method:?} {p:?}");
                    continue;
                }
                let gold: Vec<Vec<_>> =
                    want.links.iter().map(|l| l.iter().flatten().map(|&x| (x, LinkKind::Sure)).collect()).collect();
                let pred: Vec<Vec<_>> = got.links.iter().map(|l| l.clone().unwrap_or_default()).collect();
                let q = xlt::align::quality::score(&gold, &pred);
                assert!(q.aer <= max_aer, "{model} {method:?} {p:?}: AER {} against the CPU's links", q.aer);
            }
        }
    }
}

fn fused_attention_model_matches_the_cpu(gpu: &Arc<Gpu>) {
    // HS = 16: bf16/f16 runs take the fused (flash) attention path; every head's loss and
    // gradients against the CPU, with attention dropout on.
    let mut cfg = ModelConfig::xlmr_shape(32, 2, 2, 72, 301, 40);
    cfg.hidden_dropout = 0.1;
    cfg.attention_dropout = 0.1;
    for p in [Precision::Bf16, Precision::Fp16] {
        for (h, spec) in specs().iter().enumerate() {
            let mut cpu = cpu_model(&cfg, specs(), 5);
            let drop = DropoutCfg::train(&cpu.s.cfg, 7 + h as u64);
            let what = format!("fused attention {p:?} head {}", spec.name);
            let gm = step_matches_cpu(gpu, &mut cpu, p, h, drop, &what);
            assert_eq!(gm.attention_path(), Some(xlt::cuda::ops::AttnPath::Flash), "HS 16 in {p:?} runs fused");
        }
    }
}

on_both_devices!(
    every_head_matches_the_cpu_in_every_precision,
    bert_classification_uses_the_pooler,
    a_short_training_run_tracks_the_cpu,
    a_step_with_a_non_finite_loss_or_an_overflow_changes_nothing,
    reruns_are_bit_identical,
    self_training_matches_the_cpu,
    a_frozen_head_stays_bit_identical,
    inference_model_matches_the_cpu_forward,
    gpu_embeddings_match_the_cpu,
    gpu_alignments_match_the_cpu,
    fused_attention_model_matches_the_cpu,
);
