//! Criterion benches of the CUDA kernels at XLM-R Base training shapes (B = 32, T = 128,
//! C = 768, NH = 12, FFN = 3072) in bf16: achieved bytes per second for the memory-bound kernels,
//! FLOP/s (reported as "elements") for the GEMMs and attention. Each sample launches the kernel
//! `iters` times and waits for the GPU once. Without a usable GPU the benches print why and do
//! nothing (`tools/gpu_check.sh` runs them on a GPU machine).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};
use xlt::cuda::ops::*;
use xlt::cuda::testing::rand_vec;
use xlt::cuda::{probe, Buf, Dtype, Gpu, Probe};
use xlt::model::AdamWConfig;

const B: usize = 32;
const T: usize = 128;
const C: usize = 768;
const NH: usize = 12;
const FFN: usize = 3072;
const N: usize = B * T;
const X: Dtype = Dtype::Bf16;

fn buf(g: &Gpu, n: usize, d: Dtype, seed: u64) -> Buf {
    g.upload_f32(&rand_vec(n, 1.0, seed), d, "bench input").expect("upload")
}

/// Times `f` (which queues work) `iters` times per sample, waiting for the GPU at the end.
fn timed(g: &Gpu, iters: u64, mut f: impl FnMut()) -> Duration {
    g.sync().expect("sync");
    let t0 = Instant::now();
    for _ in 0..iters {
        f();
    }
    g.sync().expect("sync");
    t0.elapsed()
}

fn benches(c: &mut Criterion) {
    let gpu = match probe() {
        Probe::Usable { .. } => Gpu::open(0).expect("open the GPU"),
        Probe::Unusable(why) => {
            eprintln!("skipping the CUDA kernel benches: no usable GPU ({why})");
            return;
        }
    };
    let g = &*gpu;
    let mut grp = c.benchmark_group(format!("cuda_bf16_b{B}_t{T}_c{C}"));
    grp.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let e = X.size() as u64;
    let (n, c_, ffn) = (N as u64, C as u64, FFN as u64);

    // layernorm: read x, write out (N, C); w, b; mean, rstd
    let (x, w, bias) = (buf(g, N * C, X, 1), buf(g, C, X, 2), buf(g, C, X, 3));
    let out = buf(g, N * C, X, 4);
    let (mean, rstd) = (buf(g, N, Dtype::F32, 5), buf(g, N, Dtype::F32, 6));
    grp.throughput(Throughput::Bytes(2 * n * c_ * e + 8 * n));
    grp.bench_function("layernorm_forward", |bn| {
        bn.iter_custom(|it| {
            timed(g, it, || {
                layernorm_forward(g, out.dev(), mean.dev(), rstd.dev(), x.dev(), w.dev(), bias.dev(), N, C, 1e-5)
                    .expect("ln")
            })
        })
    });
    let (dw, db) = (buf(g, C, Dtype::F32, 7), buf(g, C, Dtype::F32, 8));
    let dinp = buf(g, N * C, X, 9);
    grp.throughput(Throughput::Bytes(3 * n * c_ * e + 8 * n));
    grp.bench_function("layernorm_backward", |bn| {
        bn.iter_custom(|it| {
            timed(g, it, || {
                let (m, r) = (mean.dev(), rstd.dev());
                layernorm_backward(g, dinp.dev(), dw.dev(), db.dev(), out.dev(), x.dev(), m, r, w.dev(), N, C)
                    .expect("ln backward")
            })
        })
    });

    // GELU over (N, FFN)
    let (h, hg, dh) = (buf(g, N * FFN, X, 10), buf(g, N * FFN, X, 11), buf(g, N * FFN, X, 12));
    grp.throughput(Throughput::Bytes(2 * n * ffn * e));
    grp.bench_function("gelu_forward", |bn| {
        bn.iter_custom(|it| timed(g, it, || gelu_forward(g, hg.dev(), h.dev(), N * FFN).expect("gelu")))
    });
    grp.throughput(Throughput::Bytes(3 * n * ffn * e));
    grp.bench_function("gelu_backward", |bn| {
        bn.iter_custom(|it| timed(g, it, || gelu_backward(g, dh.dev(), h.dev(), hg.dev(), N * FFN).expect("gelu bwd")))
    });

    // dropout (in place) and residual over (N, C)
    grp.throughput(Throughput::Bytes(2 * n * c_ * e));
    grp.bench_function("dropout_forward", |bn| {
        bn.iter_custom(|it| timed(g, it, || dropout_forward(g, out.dev(), 0.1, 7, N * C).expect("dropout")))
    });
    grp.throughput(Throughput::Bytes(3 * n * c_ * e));
    grp.bench_function("residual_forward", |bn| {
        bn.iter_custom(|it| timed(g, it, || residual_forward(g, out.dev(), x.dev(), N * C).expect("residual")))
    });

    // the QKV projection: (N, C) · (3C, C)^T, 2·N·C·3C FLOPs
    let (wqkv, bqkv, qkv) = (buf(g, 3 * C * C, X, 13), buf(g, 3 * C, X, 14), buf(g, N * 3 * C, X, 15));
    grp.throughput(Throughput::Elements(2 * n * c_ * 3 * c_));
    grp.bench_function("matmul_forward_qkv_flop", |bn| {
        bn.iter_custom(|it| {
            timed(g, it, || {
                matmul_forward(g, qkv.dev(), x.dev(), wqkv.dev(), Some(bqkv.dev()), N, C, 3 * C).expect("gemm")
            })
        })
    });

    // attention: Q·K^T and P·V, 4·B·NH·T²·HS FLOPs forward, twice that backward
    let s = AttnScratch::new(g, X, N, B * T * T, C, NH).expect("scratch");
    let att = buf(g, B * NH * T * T, X, 16);
    let mask = g.upload_f32(&vec![1.0; N], Dtype::F32, "mask").expect("mask");
    let (y, dy, dqkv) = (buf(g, N * C, X, 17), buf(g, N * C, X, 18), buf(g, N * 3 * C, X, 19));
    let flops = 4 * (B * NH * T * T * (C / NH)) as u64;
    grp.throughput(Throughput::Elements(flops));
    grp.bench_function("attention_forward_flop", |bn| {
        bn.iter_custom(|it| {
            timed(g, it, || {
                attention_forward(g, y.dev(), att.dev(), qkv.dev(), mask.dev(), &s, B, T, C, NH, 0.1, 3)
                    .expect("attention")
            })
        })
    });
    grp.throughput(Throughput::Elements(2 * flops));
    grp.bench_function("attention_backward_flop", |bn| {
        bn.iter_custom(|it| {
            timed(g, it, || {
                attention_backward(g, dqkv.dev(), dy.dev(), qkv.dev(), att.dev(), &s, B, T, C, NH, 0.1, 3)
                    .expect("attention backward")
            })
        })
    });

    // fused (flash) attention on the same shapes; its backward also recomputes Q·K^T and dO·V^T
    // once more (dK/dV and dQ are separate kernels), but the FLOPs reported are the same
    // model FLOPs as the unfused path's
    let lse = g.alloc(B * NH * T, Dtype::F32, "lse").expect("lse");
    let dsum = g.alloc(B * NH * T, Dtype::F32, "dsum").expect("dsum");
    grp.throughput(Throughput::Elements(flops));
    grp.bench_function("flash_attention_forward_flop", |bn| {
        bn.iter_custom(|it| {
            timed(g, it, || {
                flash_attention_forward(g, y.dev(), lse.dev(), qkv.dev(), mask.dev(), B, T, C, NH, 0.1, 3)
                    .expect("flash attention")
            })
        })
    });
    grp.throughput(Throughput::Elements(2 * flops));
    grp.bench_function("flash_attention_backward_flop", |bn| {
        bn.iter_custom(|it| {
            timed(g, it, || {
                let (o, l, m) = (y.dev(), lse.dev(), mask.dev());
                flash_attention_backward(g, dqkv.dev(), dsum.dev(), dy.dev(), o, qkv.dev(), l, m, B, T, C, NH, 0.1, 3)
                    .expect("flash attention backward")
            })
        })
    });

    // MLM cross-entropy: 15% of the tokens over a 250002-token vocabulary, forward + backward
    // in place (read the logits twice, write them once)
    let (m, v) = (N * 15 / 100, 250_002usize);
    let logits = buf(g, m * v, X, 20);
    let losses = buf(g, m, Dtype::F32, 21);
    let targets = g.alloc(m, Dtype::I64, "targets").expect("targets");
    g.write_i64(targets.dev(), &(0..m as i64).map(|i| (i * 7919) % v as i64).collect::<Vec<_>>()).expect("targets");
    grp.throughput(Throughput::Bytes(3 * (m * v) as u64 * e));
    grp.bench_function("crossentropy_forward_backward_v250002", |bn| {
        bn.iter_custom(|it| {
            timed(g, it, || {
                crossentropy_forward(g, losses.dev(), logits.dev(), targets.dev(), m, v).expect("xent");
                let l = logits.dev();
                crossentropy_backward(g, l, l, targets.dev(), 1.0 / m as f32, m, v).expect("xent backward");
            })
        })
    });

    // AdamW over a flat buffer of 64M parameters with the bf16 copy, in one launch: reads p, g,
    // m, v (16 B), writes p, m, v, p16 (14 B) per parameter
    let np = 64 << 20;
    let (p, gr, mo, ve) = (
        buf(g, np, Dtype::F32, 22),
        buf(g, np, Dtype::F32, 23),
        buf(g, np, Dtype::F32, 24),
        buf(g, np, Dtype::F32, 25),
    );
    let (px, cfg) =
        (buf(g, np, X, 26), AdamWConfig { lr: 1e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 });
    // Second moments must be non-negative.
    g.write_f32(ve.dev(), &vec![1e-4; np]).expect("v");
    grp.throughput(Throughput::Bytes(30 * np as u64));
    let mut step = 0u64;
    grp.bench_function("adamw_update_64m", |bn| {
        bn.iter_custom(|it| {
            timed(g, it, || {
                step += 1;
                let (pd, xd, gd) = (p.dev(), Some(px.dev()), gr.dev());
                adamw_update(g, pd, xd, gd, mo.dev(), ve.dev(), None, None, &cfg, step, np).expect("adamw")
            })
        })
    });
    // The same as a training step runs it: weight decay by bitmask (weights decay, biases do
    // not: one bit more per parameter read) and the fp16 overflow count read on the device (zero:
    // the step runs)
    let layer = C * C + C;
    let tensors = (0..np)
        .step_by(layer)
        .flat_map(|at| [(at..(at + C * C).min(np), true), ((at + C * C).min(np)..(at + layer).min(np), false)]);
    let mask = decay_bits(np, tensors);
    let bits = g.alloc(mask.len(), Dtype::U32, "decay bits").expect("decay bits");
    g.write_u32(bits.dev(), &mask).expect("decay bits");
    let skip = g.alloc(1, Dtype::U32, "skip").expect("skip");
    grp.throughput(Throughput::Bytes(30 * np as u64 + 4 * mask.len() as u64));
    grp.bench_function("adamw_update_64m_mask_skip", |bn| {
        bn.iter_custom(|it| {
            timed(g, it, || {
                step += 1;
                let (pd, xd, gd, md, vd) = (p.dev(), Some(px.dev()), gr.dev(), mo.dev(), ve.dev());
                adamw_update(g, pd, xd, gd, md, vd, Some(bits.dev()), Some(skip.dev()), &cfg, step, np).expect("adamw")
            })
        })
    });
    // the global norm, kept on the device: reads g (4 B per parameter)
    let norm = g.alloc(1, Dtype::F32, "norm").expect("norm");
    grp.throughput(Throughput::Bytes(4 * np as u64));
    grp.bench_function("grad_norm_64m", |bn| {
        bn.iter_custom(|it| timed(g, it, || grad_norm(g, norm.dev(), gr.dev(), np).expect("norm")))
    });
    // clipping by that norm on the device: the norm (reads g) then g *= coefficient (reads and
    // writes g), 12 B per parameter. With max_norm = 1 every call clips: after the first the
    // norm is 1, and 1 / (1 + 1e-6) < 1 in f32 (the gradients shrink by 1e-6 a call, far from
    // subnormal over a bench's calls). Last: it changes the gradients.
    grp.throughput(Throughput::Bytes(12 * np as u64));
    grp.bench_function("clip_grad_norm_64m", |bn| {
        bn.iter_custom(|it| timed(g, it, || clip_grad_norm(g, norm.dev(), gr.dev(), 1.0, np).expect("clip")))
    });
    grp.finish();
}

criterion_group!(kernels, benches);
criterion_main!(kernels);
