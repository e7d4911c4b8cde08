//! Criterion benches of the CPU backend: a full training step (forward, 3-class
//! sequence-classification loss, backward, AdamW) at the `xlt bench` default shape, and the
//! inference forward used by `xlt embed`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xlt::bench::{bench_adamw, random_batch, train_step};
use xlt::config::ModelConfig;
use xlt::cpu::encoder::{encoder_forward, Activations, DropoutCfg};
use xlt::cpu::{AdamW, SequenceClassifier};

fn shape() -> (ModelConfig, usize, usize) {
    (ModelConfig::xlmr_shape(256, 4, 4, 1024, 8000, 130), 8, 128)
}

fn bench_train_step(c: &mut Criterion) {
    let (cfg, b, t) = shape();
    let mut model = SequenceClassifier::new_random(&cfg, 3, 0);
    let mut opt = AdamW::new(bench_adamw(), model.layout.total);
    let (batch, labels) = random_batch(&cfg, b, t, 1);
    let mut g = c.benchmark_group("cpu");
    g.sample_size(10);
    g.throughput(Throughput::Elements((b * t) as u64));
    let mut step = 0u64;
    g.bench_function("train_step_h256_l4_b8_t128", |bench| {
        bench.iter(|| {
            step += 1;
            train_step(&mut model, &mut opt, &batch, &labels, step)
        })
    });
    let mut acts = Activations::new(&cfg, b, t, false);
    g.bench_function("encoder_forward_inference_h256_l4_b8_t128", |bench| {
        bench.iter(|| encoder_forward(&mut acts, &model.params, &model.enc, &cfg, &batch, DropoutCfg::OFF, None))
    });
    g.finish();
}

criterion_group!(benches, bench_train_step);
criterion_main!(benches);
