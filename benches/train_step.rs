//! Criterion benches of the CPU backend: a full training step (forward, 3-class
//! sequence-classification loss, backward, clipping, AdamW) at the `xlt bench` default shape,
//! through the model trait as `xlt bench` runs it, and the inference forward used by
//! `xlt embed`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xlt::bench::{bench_model, random_batch, train_step};
use xlt::config::ModelConfig;
use xlt::device::Device;
use xlt::model::Batch;

fn shape() -> (ModelConfig, usize, usize) {
    (ModelConfig::xlmr_shape(256, 4, 4, 1024, 8000, 130), 8, 128)
}

fn bench_train_step(c: &mut Criterion) {
    let (cfg, b, t) = shape();
    let host = bench_model(&cfg, 0).expect("model");
    let mut model = Device::Cpu.train_model(host.clone(), None).expect("cpu model");
    let tb = random_batch(&cfg, b, t, 1);
    let mut g = c.benchmark_group("cpu");
    g.sample_size(10);
    g.throughput(Throughput::Elements((b * t) as u64));
    let mut step = 0u64;
    g.bench_function("train_step_h256_l4_b8_t128", |bench| {
        bench.iter(|| {
            step += 1;
            train_step(model.as_mut(), &tb, step).expect("step")
        })
    });
    // The encoder alone, in the inference layout `xlt embed` uses.
    let s = model.structure();
    let (enc, params) = (s.enc.clone(), model.params().expect("params")[..].to_vec());
    let encoder = Device::Cpu.encoder(cfg.clone(), enc, params).expect("encoder");
    let batches: Vec<Batch> = vec![tb.batch.clone()];
    g.bench_function("encoder_forward_inference_h256_l4_b8_t128", |bench| {
        bench.iter(|| encoder.encode(&batches, cfg.num_layers, &|_, h| vec![h[0]]).expect("encode"))
    });
    g.finish();
}

criterion_group!(benches, bench_train_step);
criterion_main!(benches);
