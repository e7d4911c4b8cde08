//! What a training step asks of the device, counted (`Gpu::counts`): after warm-up, a step of
//! every head family allocates nothing, copies its batch to the device once per micro-batch,
//! and waits for the device once (the step's one read-back of its losses, norm and overflow
//! count), in fp32, bf16 and fp16, with batches whose T changes from step to step; the GPU
//! embedder allocates nothing for a batch no larger than one it has seen.
//!
//! The counts come from the same code on every device, so they are measured on the emulated
//! device (and, `--ignored`, a GPU) at a tiny shape, and at the real XLM-R Base shape on a
//! counting device that allocates addresses but runs nothing (`xlmr_base_step_counts` prints
//! the table BENCHMARKS.md quotes).

#[path = "cuda_emu/harness.rs"]
mod harness;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use xlt::config::ModelConfig;
use xlt::cuda::model::CudaModel;
use xlt::cuda::{Counts, DeviceApi, DeviceInfo, GemmCall, Gpu, Launch};
use xlt::model::{
    assign_prefixes, AdamWConfig, Batch, DropoutCfg, HeadSpec, HostModel, Precision, StepConfig, Targets, TaskBatch,
    IGNORE_INDEX,
};
use xlt::rng::Rng;
use xlt::tasks::Kind;

fn step_cfg(micro_batches: usize) -> StepConfig {
    let adamw = AdamWConfig { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    StepConfig { adamw, micro_batches, max_grad_norm: 1.0 }
}

/// B rows of T tokens with a few pads at the end of every other row.
fn batch(b: usize, t: usize, vocab: usize, seed: u64) -> Batch {
    let mut r = Rng::new(seed);
    let mut ids = Vec::with_capacity(b * t);
    for row in 0..b {
        for j in 0..t {
            let pad = row % 2 == 1 && j + 2 >= t && t > 3;
            ids.push(if j == 0 {
                0
            } else if pad {
                1
            } else {
                5 + r.below(vocab as u64 - 5) as u32
            });
        }
    }
    let mask = ids.iter().map(|&i| if i == 1 { 0.0 } else { 1.0 }).collect();
    Batch { b, t, types: vec![0; ids.len()], ids, mask }
}

/// A batch with targets for a head of `kind` (multiple choice: `b` rows = b/2 questions).
fn task_batch(kind: Kind, b: usize, t: usize, vocab: usize, seed: u64) -> TaskBatch {
    let mut r = Rng::new(seed ^ 5);
    let batch = batch(b, t, vocab, seed);
    let targets = match kind {
        Kind::Classification => Targets::Labels((0..b).map(|_| r.below(3) as i64).collect()),
        Kind::MultipleChoice => Targets::Labels((0..b / 2).map(|_| r.below(2) as i64).collect()),
        Kind::SpanQa => Targets::Span {
            start: (0..b).map(|_| r.below(t as u64) as i64).collect(),
            end: (0..b).map(|_| r.below(t as u64 + 2) as i64).collect(),
        },
        Kind::Tagging => {
            Targets::Labels((0..b * t).map(|j| if j % 3 == 0 { IGNORE_INDEX } else { r.below(4) as i64 }).collect())
        }
        Kind::MaskedLm => Targets::Labels(
            (0..b * t).map(|j| if j % 5 == 2 { 5 + r.below(vocab as u64 - 5) as i64 } else { IGNORE_INDEX }).collect(),
        ),
        Kind::Retrieval => unreachable!("no head"),
    };
    TaskBatch { batch, targets }
}

fn specs() -> Vec<HeadSpec> {
    let mut s = vec![
        HeadSpec::new("cls", Kind::Classification, 3),
        HeadSpec::new("mc", Kind::MultipleChoice, 2),
        HeadSpec::new("qa", Kind::SpanQa, 0),
        HeadSpec::new("tag", Kind::Tagging, 4),
        HeadSpec::new("mlm", Kind::MaskedLm, 0),
    ];
    assign_prefixes(&mut s);
    s
}

/// Counts of one training step of head `h` over `micro` micro-batches of (B, T): the whole step,
/// and of it the optimizer step (clipping and AdamW).
fn step_counts(g: &Gpu, m: &mut CudaModel, h: usize, b: usize, t: usize, micro: usize, seed: u64) -> (Counts, Counts) {
    let (kind, vocab) = (m.s.specs[h].kind, m.s.cfg.vocab_size);
    let tbs: Vec<TaskBatch> = (0..micro).map(|i| task_batch(kind, b, t, vocab, seed + i as u64)).collect();
    let drop = DropoutCfg::train(&m.s.cfg, seed);
    let before = g.counts();
    for tb in &tbs {
        m.accumulate(h, tb, drop).expect("accumulate");
    }
    let before_step = g.counts();
    let report = m.optimizer_step(&step_cfg(micro)).expect("step");
    assert_eq!(report.losses.len(), micro);
    (g.counts().since(&before), g.counts().since(&before_step))
}

/// Most launches of an optimizer step: the overflow count, the gradient scaling, the norm (two
/// passes), the clip, the non-finite count and AdamW, over the flat buffers whatever the number
/// of tensors (two hundred-odd at XLM-R Base).
const MAX_OPTIMIZER_LAUNCHES: u64 = 8;

/// The invariants of a warmed-up step of `micro` micro-batches (`opt`: its optimizer step).
fn assert_steady(what: &str, (c, opt): &(Counts, Counts), micro: usize) {
    assert!(
        opt.launches <= MAX_OPTIMIZER_LAUNCHES && opt.gemms == 0 && opt.allocs == 0,
        "{what}: clipping and AdamW take a few launches over the flat buffers: {opt:?}"
    );
    assert_eq!((c.allocs, c.frees), (0, 0), "{what}: a warmed-up step allocates nothing: {c:?}");
    assert_eq!(c.syncs, 1, "{what}: one wait for the device per step: {c:?}");
    assert_eq!(c.to_host, 1, "{what}: one read-back per step: {c:?}");
    assert_eq!(c.to_device, micro as u64, "{what}: one upload per micro-batch: {c:?}");
}

/// Every head, bf16 and fp16, ragged T: after one warm-up step at the largest shape, steps at
/// that shape and smaller ones allocate nothing and wait once.
fn a_warmed_up_step_allocates_nothing_and_waits_once(g: &Arc<Gpu>) {
    harness::order_checks(false); // counts, not kernels: tests/cuda_model.rs checks those
    let mut cfg = ModelConfig::xlmr_shape(32, 2, 2, 48, 97, 40);
    cfg.hidden_dropout = 0.1;
    cfg.attention_dropout = 0.1;
    // fp32 (the unfused attention path) is counted at XLM-R Base below.
    for p in [Precision::Bf16, Precision::Fp16] {
        let host = HostModel::new_random(&cfg, specs(), 3).expect("model");
        let mut m = CudaModel::new(g.clone(), p, &host, None).expect("upload");
        m.scaler.scale = 64.0;
        for h in 0..specs().len() {
            step_counts(g, &mut m, h, 4, 12, 2, 1); // warm-up: the largest shape
            for (t, micro) in [(7, 2), (12, 1), (3, 1)] {
                let c = step_counts(g, &mut m, h, 4, t, micro, 10 + t as u64);
                assert_steady(&format!("{p:?} head {} T = {t} × {micro}", m.s.specs[h].name), &c, micro);
            }
        }
    }
}

/// The GPU embedder reuses its buffers: a second pass over batches no larger allocates nothing.
fn the_embedder_reuses_its_buffers(g: &Arc<Gpu>) {
    harness::order_checks(false);
    use xlt::embed::{Embedder, Pool};
    let dir = xlt::demo::data::default_model_dir();
    let sentences: Vec<String> = ["the cat sat", "anna gave tom 3 apples in paris", "a", "who went to rome ?"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let device = xlt::device::Device::Cuda { gpu: g.clone(), precision: Precision::Bf16 };
    let e = Embedder::load(&dir, &device).expect("load");
    e.embed(&sentences, 1, Pool::Mean, 2, 64).expect("first pass");
    let before = g.counts();
    e.embed(&sentences[..3], 1, Pool::Mean, 2, 64).expect("second pass");
    let c = g.counts().since(&before);
    assert_eq!(c.allocs, 0, "the second pass allocates nothing: {c:?}");
    assert_eq!(c.to_device, 2, "one upload per batch: {c:?}");
}

on_both_devices!(a_warmed_up_step_allocates_nothing_and_waits_once, the_embedder_reuses_its_buffers);

/// A device that hands out addresses and counts, but stores and runs nothing: reads come back
/// as zeros. Enough for the model to take steps at a size no emulator could run.
struct CountingDevice {
    next: AtomicU64,
    info: DeviceInfo,
}

impl CountingDevice {
    fn new() -> CountingDevice {
        let info = DeviceInfo {
            name: "counting device".into(),
            cc: (9, 0),
            sm_count: 132,
            total_mem: 1 << 40,
            kernels: "none (counts only)".into(),
        };
        CountingDevice { next: AtomicU64::new(1 << 20), info }
    }
}

impl DeviceApi for CountingDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn alloc(&self, bytes: usize, _what: &str) -> xlt::Result<u64> {
        Ok(self.next.fetch_add((bytes as u64).next_multiple_of(256).max(256), Ordering::Relaxed))
    }
    unsafe fn free(&self, _ptr: u64) {}
    unsafe fn memset(&self, _ptr: u64, _value: u8, _bytes: usize) -> xlt::Result<()> {
        Ok(())
    }
    unsafe fn copy_to_device(&self, _dst: u64, _src: &[u8]) -> xlt::Result<()> {
        Ok(())
    }
    unsafe fn copy_to_host(&self, dst: &mut [u8], _src: u64) -> xlt::Result<()> {
        dst.fill(0);
        Ok(())
    }
    unsafe fn copy_on_device(&self, _dst: u64, _src: u64, _bytes: usize) -> xlt::Result<()> {
        Ok(())
    }
    unsafe fn launch(&self, _plan: &Launch) -> xlt::Result<()> {
        Ok(())
    }
    unsafe fn gemm(&self, _call: &GemmCall) -> xlt::Result<()> {
        Ok(())
    }
    fn synchronize(&self) -> xlt::Result<()> {
        Ok(())
    }
    fn mem_info(&self) -> xlt::Result<(usize, usize)> {
        Ok((1 << 40, 1 << 40))
    }
}

/// The per-step counts at XLM-R Base (768 / 12 layers / 12 heads / 3072, vocabulary 250 002),
/// B = 32, T = 128, one micro-batch and two, in bf16 (flash attention) and fp32 (unfused), with
/// a classification head and with MLM: printed for BENCHMARKS.md, and held to the invariants.
#[test]
fn xlmr_base_step_counts() {
    let cfg = ModelConfig::preset("xlmr-base").expect("preset");
    let mut s = vec![HeadSpec::new("cls", Kind::Classification, 3), HeadSpec::new("mlm", Kind::MaskedLm, 0)];
    assign_prefixes(&mut s);
    let host = HostModel::new_random(&cfg, s, 0).expect("model");
    println!("| precision | head | micro-batches | allocations | uploads | read-backs | waits | launches (optimizer step) | GEMMs | memsets | device copies |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for p in [Precision::Bf16, Precision::Fp32] {
        let g = Gpu::on(Arc::new(CountingDevice::new()));
        let mut m = CudaModel::new(g.clone(), p, &host, None).expect("upload");
        for h in 0..2 {
            step_counts(&g, &mut m, h, 32, 128, 2, 1); // warm-up: the most micro-batches
            for micro in [1, 2] {
                let counts = step_counts(&g, &mut m, h, 32, 128, micro, 2);
                let name = &m.s.specs[h].name;
                assert_steady(&format!("{p:?} {name} × {micro}"), &counts, micro);
                let (c, opt) = counts;
                println!(
                    "| {} | {name} | {micro} | {} | {} | {} | {} | {} ({}) | {} | {} | {} |",
                    p.name(),
                    c.allocs,
                    c.to_device,
                    c.to_host,
                    c.syncs,
                    c.launches,
                    opt.launches,
                    c.gemms,
                    c.memsets,
                    c.on_device
                );
            }
        }
    }
}
