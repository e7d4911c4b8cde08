//! `xlt bench`: times full training steps (forward, 3-class sequence-classification loss,
//! backward, then the optimizer step: gradient clipping at 1.0 and AdamW) on random weights and
//! random tokens, through the model trait, so the CPU and the GPU time the same step; the
//! criterion bench runs the same step on the CPU.

use crate::config::ModelConfig;
use crate::device::Device;
use crate::error::Result;
use crate::model::{AdamWConfig, Batch, DropoutCfg, HeadSpec, HostModel, StepConfig, Targets, TaskBatch, TaskModel};
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
pub fn random_batch(cfg: &ModelConfig, b: usize, t: usize, seed: u64) -> TaskBatch {
    let mut r = Rng::new(seed);
    let lo = 5.min(cfg.vocab_size as u64 - 1);
    let ids = (0..b * t).map(|_| (lo + r.below(cfg.vocab_size as u64 - lo)) as u32).collect();
    let labels = (0..b).map(|_| r.below(3) as i64).collect();
    TaskBatch {
        batch: Batch { b, t, ids, types: vec![0; b * t], mask: vec![1.0; b * t] },
        targets: Targets::Labels(labels),
    }
}

/// A randomly initialised encoder of `cfg` with one 3-class classification head (HF
/// initialisation from `seed`), on the host.
pub fn bench_model(cfg: &ModelConfig, seed: u64) -> Result<HostModel> {
    HostModel::new_random(cfg, vec![HeadSpec::new("bench", crate::tasks::Kind::Classification, 3)], seed)
}

/// The optimizer step of the benchmark: PyTorch's AdamW defaults at lr 1e-5, one micro-batch,
/// clipping at a global norm of 1.0 (as every training run).
pub fn bench_step() -> StepConfig {
    StepConfig {
        adamw: AdamWConfig { lr: 1e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 },
        micro_batches: 1,
        max_grad_norm: 1.0,
    }
}

/// One training step with dropout seeded by `step_seed`: forward, backward, optimizer step,
/// as the trainer takes it (on a GPU: one wait for the device, when the step reports its
/// loss). Returns the loss.
pub fn train_step(model: &mut dyn TaskModel, tb: &TaskBatch, step_seed: u64) -> Result<f32> {
    let drop = DropoutCfg::train(&model.structure().cfg, step_seed);
    model.accumulate(0, tb, drop)?;
    let report = model.step(&bench_step())?;
    report.losses.first().copied().ok_or_else(|| crate::Error::Usage("the step reported no loss".into()))
}

/// Times `spec.steps` training steps on `device` after `spec.warmup` untimed ones; each step
/// ends with a device synchronisation. Also returns the device memory in use after the last
/// step, where the device reports it.
pub fn run(spec: &BenchSpec, device: &Device) -> Result<(BenchResult, Option<usize>)> {
    let host = bench_model(&spec.cfg, spec.seed)?;
    device
        .check_training_fits(&spec.cfg, host.structure.layout.total, spec.batch, spec.seq)
        .map_err(|e| e.context("lower --batch or --seq"))?;
    let mut model = device.train_model(host, None)?;
    let tb = random_batch(&spec.cfg, spec.batch, spec.seq, spec.seed ^ 1);
    let mut last_loss = 0.0;
    let mut step = |s: usize| -> Result<f32> {
        let loss = train_step(model.as_mut(), &tb, s as u64)?;
        model.synchronize()?;
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
    Ok((summarize(spec, times, last_loss), model.memory_in_use()))
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
