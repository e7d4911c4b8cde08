//! `xlt bench`: times full training steps (forward, 3-class sequence-classification loss,
//! backward, AdamW) on random weights and random tokens; the same step the criterion bench runs.

use crate::config::ModelConfig;
use crate::cpu::encoder::{Batch, DropoutCfg};
use crate::cpu::ops::AdamWConfig;
use crate::cpu::{AdamW, SequenceClassifier};
use crate::rng::Rng;
use std::time::Instant;

/// What to time.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    /// Model shape.
    pub cfg: ModelConfig,
    /// B
    pub batch: usize,
    /// T
    pub seq: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
    /// Seed of weights, tokens and dropout.
    pub seed: u64,
}

/// Timings of a benchmark run.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// Median milliseconds per step.
    pub ms_per_step: f64,
    /// Fastest step.
    pub ms_min: f64,
    /// Tokens (B·T) per second at the median.
    pub tokens_per_s: f64,
    /// Loss after the last step (a sanity check that the step ran).
    pub last_loss: f32,
}

/// A random batch of B sequences of T tokens (no padding) and 3-class labels.
pub fn random_batch(cfg: &ModelConfig, b: usize, t: usize, seed: u64) -> (Batch, Vec<i64>) {
    let mut r = Rng::new(seed);
    let lo = 5.min(cfg.vocab_size as u64 - 1);
    let ids = (0..b * t).map(|_| (lo + r.below(cfg.vocab_size as u64 - lo)) as u32).collect();
    let labels = (0..b).map(|_| r.below(3) as i64).collect();
    (Batch { b, t, ids, types: vec![0; b * t], mask: vec![1.0; b * t] }, labels)
}

/// One training step: zero grads, forward, backward, AdamW. Returns the loss.
pub fn train_step(
    model: &mut SequenceClassifier,
    opt: &mut AdamW,
    batch: &Batch,
    labels: &[i64],
    step_seed: u64,
) -> f32 {
    let drop = DropoutCfg::train(&model.cfg, step_seed);
    model.zero_grad();
    let loss = model.forward(batch, Some(labels), drop);
    model.backward(batch, labels, drop);
    opt.step(&mut model.params, &model.grads, &model.layout);
    loss
}

/// The optimizer settings of the benchmark (PyTorch's AdamW defaults at lr 1e-5).
pub fn bench_adamw() -> AdamWConfig {
    AdamWConfig { lr: 1e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
}

/// Times `spec.steps` training steps on the CPU after `spec.warmup` untimed ones.
pub fn run_cpu(spec: &BenchSpec) -> BenchResult {
    let mut model = SequenceClassifier::new_random(&spec.cfg, 3, spec.seed);
    let mut opt = AdamW::new(bench_adamw(), model.layout.total);
    let (batch, labels) = random_batch(&spec.cfg, spec.batch, spec.seq, spec.seed ^ 1);
    let mut last_loss = 0.0;
    for s in 0..spec.warmup {
        last_loss = train_step(&mut model, &mut opt, &batch, &labels, s as u64);
    }
    let mut times = Vec::with_capacity(spec.steps);
    for s in 0..spec.steps {
        let t0 = Instant::now();
        last_loss = train_step(&mut model, &mut opt, &batch, &labels, (spec.warmup + s) as u64);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    summarize(spec, times, last_loss)
}

fn summarize(spec: &BenchSpec, mut times: Vec<f64>, last_loss: f32) -> BenchResult {
    times.sort_by(f64::total_cmp);
    let median = if times.is_empty() {
        f64::NAN
    } else if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        0.5 * (times[times.len() / 2 - 1] + times[times.len() / 2])
    };
    BenchResult {
        ms_per_step: median,
        ms_min: times.first().copied().unwrap_or(f64::NAN),
        tokens_per_s: (spec.batch * spec.seq) as f64 / (median / 1e3),
        last_loss,
    }
}

/// Times `spec.steps` training steps on the GPU (the same step: 3-class classification head,
/// dropout, AdamW with clipping at 1.0) after `spec.warmup` untimed ones; each step ends with a
/// device synchronisation. Also returns the device memory in use after the last step (bytes).
pub fn run_cuda(
    spec: &BenchSpec,
    gpu: std::sync::Arc<crate::cuda::Gpu>,
    precision: crate::cuda::model::Precision,
) -> crate::Result<(BenchResult, usize)> {
    use crate::cpu::multitask::{HeadSpec, MultiTaskModel, Targets, TaskBatch};
    let specs = vec![HeadSpec::new("bench", crate::tasks::Kind::Classification, 3)];
    let host = MultiTaskModel::new_random(&spec.cfg, specs, spec.seed)?;
    let mut model = crate::cuda::model::CudaModel::new(gpu.clone(), &host, precision, None)?;
    drop(host);
    let (batch, labels) = random_batch(&spec.cfg, spec.batch, spec.seq, spec.seed ^ 1);
    let tb = TaskBatch { batch, targets: Targets::Labels(labels) };
    let opt = bench_adamw();
    let mut last_loss = 0.0;
    let mut step = |s: usize| -> crate::Result<f32> {
        let drop = DropoutCfg::train(&spec.cfg, s as u64);
        let loss = model.forward_backward(0, &tb, drop)?;
        model.step(&opt, 1, 1.0)?;
        gpu.sync()?;
        Ok(loss)
    };
    for s in 0..spec.warmup {
        last_loss = step(s)?;
    }
    let mut times = Vec::with_capacity(spec.steps);
    for s in 0..spec.steps {
        let t0 = Instant::now();
        last_loss = step(spec.warmup + s)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (free, total) = gpu.mem_info()?;
    Ok((summarize(spec, times, last_loss), total - free))
}
