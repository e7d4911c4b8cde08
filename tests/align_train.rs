//! `xlt align-train`: the self-training objective's gradient against finite differences (on the
//! hidden states, and through the encoder to an intermediate layer, the layers above it left
//! without gradient), a tiny fine-tuning run that lowers both objectives' losses, exact resume,
//! the output folder loaded by `xlt align`, and bad corpora named by file and line.

use std::path::{Path, PathBuf};
use std::process::Command;
use xlt::align::pairs::parse_pair;
use xlt::align::train::{align_train, AlignTrainRequest, Objective, ParallelSet, SoSettings};
use xlt::config::{Family, ModelConfig};
use xlt::cpu::CpuModel;
use xlt::device::Device;
use xlt::model::align_loss::so_forward_backward;
use xlt::model::{assign_prefixes, Batch, DropoutCfg, HeadSpec, HostModel, SoBatch};
use xlt::rng::Rng;
use xlt::tasks::Kind;
use xlt::tokenize::Tokenizer;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xlt-align-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

/// The alignment fixtures' sentence pairs (the lines that are pairs), as a corpus file.
fn corpus(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixture("align/pairs.txt")).expect("pairs");
    let lines: Vec<&str> = text.lines().filter(|l| parse_pair(l).is_some()).collect();
    assert!(lines.len() >= 30, "the fixture holds {} pairs", lines.len());
    let path = dir.join("corpus.txt");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write corpus");
    path
}

/// Random hidden states (2P, T, C) and a random guide for P = 2 pairs of (3, 4) and (2, 2)
/// pieces in sequences of T = 6.
fn random_case(seed: u64) -> (Vec<f32>, SoBatch, usize) {
    let (p, t, c) = (2, 6, 5);
    let mut r = Rng::new(seed);
    let hidden: Vec<f32> = (0..2 * p * t * c).map(|_| r.normal()).collect();
    let lens = vec![(3, 4), (2, 2)];
    let guide = lens.iter().map(|&(m, n)| (0..m * n).map(|_| (r.below(2) == 0) as u32 as f32).collect()).collect();
    let batch = Batch { b: 2 * p, t, ids: vec![5; 2 * p * t], types: vec![0; 2 * p * t], mask: vec![1.0; 2 * p * t] };
    (hidden, SoBatch { batch, lens, guide, consistency: false }, c)
}

#[test]
fn so_gradient_matches_finite_differences() {
    let (hidden, sb, c) = random_case(3);
    check_gradient(&hidden, &sb, c);
    // With the consistency term (awesome-align's `co`).
    check_gradient(&hidden, &SoBatch { consistency: true, ..sb.clone() }, c);
    // Consistency alone: a 1 × 1 pair adds −1 (both probabilities are 1, min(m, n) = 1).
    let batch = Batch { b: 2, t: 3, ids: vec![5; 6], types: vec![0; 6], mask: vec![1.0; 6] };
    let one = SoBatch { batch, lens: vec![(1, 1)], guide: vec![vec![0.0]], consistency: true };
    assert_eq!(so_forward_backward(None, &[0.5; 24], &one, 4), -1.0);
}

fn check_gradient(hidden: &[f32], sb: &SoBatch, c: usize) {
    let sb = sb.clone();
    let mut grad = vec![f32::NAN; hidden.len()];
    let loss = so_forward_backward(Some(&mut grad), hidden, &sb, c);
    assert!(loss.is_finite() && loss < 0.0);
    let t = sb.batch.t;
    let eps = 1e-2f32;
    for (k, &g) in grad.iter().enumerate() {
        let mut h = hidden.to_vec();
        h[k] += eps;
        let up = so_forward_backward(None, &h, &sb, c) as f64;
        h[k] -= 2.0 * eps;
        let down = so_forward_backward(None, &h, &sb, c) as f64;
        let fd = (up - down) / (2.0 * eps as f64);
        assert!((fd - g as f64).abs() <= 2e-3 + 2e-2 * fd.abs(), "element {k}: analytic {g}, numeric {fd}");
        // Special and padding positions (not a pair's pieces) get exactly zero.
        let (seq, pos) = (k / c / t, k / c % t);
        let (m, n) = sb.lens[seq % 2];
        let len = if seq < 2 { m } else { n };
        if pos == 0 || pos > len {
            assert_eq!(g, 0.0, "element {k} is not a piece");
        }
    }
}

#[test]
fn one_piece_each_side_gives_minus_two_and_no_gradient() {
    // A 1 × 1 pair: both softmaxes are 1, the guide 1: the loss is −(1/1 + 1/1).
    let batch = Batch { b: 2, t: 3, ids: vec![5; 6], types: vec![0; 6], mask: vec![1.0; 6] };
    let sb = SoBatch { batch, lens: vec![(1, 1)], guide: vec![vec![1.0]], consistency: false };
    let hidden: Vec<f32> = (0..6 * 4).map(|i| i as f32 * 0.1).collect();
    let mut grad = vec![1.0; hidden.len()];
    assert_eq!(so_forward_backward(Some(&mut grad), &hidden, &sb, 4), -2.0);
    assert!(grad.iter().all(|&g| g == 0.0));
    // Without a linked piece pair the loss is 0.
    let sb = SoBatch { guide: vec![vec![0.0]], ..sb };
    assert_eq!(so_forward_backward(None, &hidden, &sb, 4), 0.0);
}

#[test]
fn a_malformed_batch_is_a_usage_error_not_a_panic() {
    let (_, mut sb, _) = random_case(1);
    sb.guide[1].pop();
    assert!(sb.check().unwrap_err().to_string().contains("guide"));
    let cfg = ModelConfig::xlmr_shape(8, 2, 2, 16, 40, 20);
    let mut m =
        CpuModel::new(HostModel::new_random(&cfg, vec![HeadSpec::new("mlm", Kind::MaskedLm, 0)], 1).expect("m"), None)
            .expect("model");
    assert!(m.accumulate_so(&sb, 1, DropoutCfg::OFF).is_err());
    let (_, sb, _) = random_case(1);
    assert!(m.accumulate_so(&sb, 3, DropoutCfg::OFF).unwrap_err().to_string().contains("hidden_states[3]"));
}

/// The whole model's gradient of the objective at hidden_states[1] of a 2-layer encoder:
/// central differences of the loss (same guide, no dropout) for weights of the embeddings and
/// of layer 0; layer 1 and the head get none.
#[test]
fn so_through_the_encoder_matches_finite_differences() {
    let cfg = ModelConfig::xlmr_shape(8, 2, 2, 16, 40, 20);
    let mut specs = vec![HeadSpec::new("mlm", Kind::MaskedLm, 0)];
    assign_prefixes(&mut specs);
    let mut host = HostModel::new_random(&cfg, specs, 4).expect("model");
    let mut r = Rng::new(9);
    host.params.iter_mut().for_each(|x| *x += 0.2 * r.normal());
    let mut m = CpuModel::new(host, None).expect("cpu");
    // Pairs (3, 2) and (2, 3) in rows of T = 5 (pad id 1 after each sequence's end).
    let ids: Vec<u32> = [[0, 7, 9, 11, 2], [0, 12, 13, 2, 1], [0, 20, 21, 2, 1], [0, 30, 31, 32, 2]].concat();
    let mask = ids.iter().map(|&i| if i == 1 { 0.0 } else { 1.0 }).collect();
    let batch = Batch { b: 4, t: 5, types: vec![0; 20], ids, mask };
    let sb = SoBatch {
        batch,
        lens: vec![(3, 2), (2, 3)],
        guide: vec![vec![1., 0., 0., 1., 1., 0.], vec![0., 1., 1., 0., 0., 1.]],
        consistency: true,
    };
    let layer = 1;
    let loss = m.accumulate_so(&sb, layer, DropoutCfg::OFF).expect("accumulate");
    let grads = m.grads.clone();
    let loss_at = |m: &mut CpuModel| {
        let h = m.encode_layer(&sb.batch, layer).expect("encode").to_vec();
        so_forward_backward(None, &h, &sb, cfg.hidden_size) as f64
    };
    assert!((loss_at(&mut m) - loss as f64).abs() < 1e-6);
    let s = m.s.clone();
    for t in &s.layout.tensors {
        let rg = t.range();
        if t.name.starts_with("encoder.layer.1.") || !t.encoder {
            assert!(grads[rg].iter().all(|&g| g == 0.0), "{} is above the objective's layer", t.name);
            continue;
        }
        // A few entries of every tensor below it.
        let scale = grads[rg.clone()].iter().fold(0.0f32, |a, g| a.max(g.abs())) as f64;
        for k in [rg.start, rg.start + rg.len() / 2, rg.end - 1] {
            let eps = 1e-2f32;
            let x = m.params[k];
            m.params[k] = x + eps;
            let up = loss_at(&mut m);
            m.params[k] = x - eps;
            let down = loss_at(&mut m);
            m.params[k] = x;
            let fd = (up - down) / (2.0 * eps as f64);
            let g = grads[k] as f64;
            assert!(
                (fd - g).abs() <= 1e-3 + 3e-2 * scale.max(fd.abs()),
                "{}[{}]: analytic {g}, numeric {fd}",
                t.name,
                k - rg.start
            );
        }
    }
}

fn request(dir: &Path, objectives: Vec<Objective>, steps: u64) -> AlignTrainRequest {
    let mut req = AlignTrainRequest::new(fixture("tiny-xlmr"), corpus(dir), dir.join("run"));
    req.objectives = objectives;
    req.layer = 1;
    req.batch_size = 4;
    req.train.learning_rate = 3e-3;
    req.train.max_steps = Some(steps);
    req.train.save_checkpoint_every_steps = 5;
    req
}

/// Mean TLM loss over fixed masked batches, and the self-training loss with the guides the
/// model `guide_from` gives, of the model folder `dir` (both evaluated without dropout).
fn losses(dir: &Path, set: &ParallelSet, tok: &Tokenizer, guides: &[SoBatch]) -> (f64, f64) {
    let mut m = CpuModel::new(HostModel::from_dir(dir).expect("model"), None).expect("cpu");
    let mut rng = Rng::new(17);
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut tlm = 0.0;
    for chunk in idx.chunks(6) {
        let tb = set.tlm_batch(chunk, tok, &mut rng).expect("tlm batch");
        tlm += m.forward(0, &tb, DropoutCfg::OFF).expect("forward") as f64;
    }
    let c = m.s.cfg.hidden_size;
    let so = guides
        .iter()
        .map(|sb| so_forward_backward(None, m.encode_layer(&sb.batch, 1).expect("encode"), sb, c) as f64)
        .sum::<f64>();
    (tlm / idx.chunks(6).count() as f64, so / guides.len() as f64)
}

#[test]
fn a_tiny_fine_tuning_lowers_both_losses() {
    let dir = tmp("lowers");
    let req = request(&dir, vec![Objective::So, Objective::Tlm], 40);
    let summary = align_train(&req, &Device::Cpu, false, false, None).expect("train").expect("finished");
    assert_eq!(summary.steps, 40);
    let tok = Tokenizer::from_file(&fixture("tiny-xlmr/tokenizer.json"), Family::XlmRoberta).expect("tok");
    let cfg = ModelConfig::from_file(&fixture("tiny-xlmr/config.json")).expect("cfg");
    let (pairs, _) = xlt::align::train::read_corpus(&req.input, &tok, &cfg).expect("corpus");
    let set = ParallelSet { pairs, max_seq_len: cfg.max_seq_len() };
    // The guides of the starting model (its MLM head is fresh: the folder has none; the same
    // seed gives the same head the run started from).
    let start = dir.join("start");
    let mut specs = vec![HeadSpec::new("mlm", Kind::MaskedLm, 0)];
    assign_prefixes(&mut specs);
    HostModel::from_encoder_dir(&fixture("tiny-xlmr"), specs, req.train.seed)
        .expect("start")
        .save(&start)
        .expect("save");
    let mut m0 = CpuModel::new(HostModel::from_dir(&start).expect("start"), None).expect("cpu");
    let so = SoSettings { layer: 1, threshold: 1e-3, so: true, co: false };
    let idx: Vec<usize> = (0..set.len()).collect();
    let guides: Vec<SoBatch> = idx.chunks(6).map(|c| set.so_batch(c, &tok, &mut m0, so).expect("so batch")).collect();
    assert!(guides.iter().any(|g| g.guide.iter().flatten().any(|&x| x == 1.0)), "the start aligns something");
    let (tlm0, so0) = losses(&start, &set, &tok, &guides);
    let (tlm1, so1) = losses(&summary.model_dir, &set, &tok, &guides);
    assert!(tlm1 < tlm0 - 0.1, "TLM loss {tlm0} → {tlm1}");
    // The objective is at least −2 per pair (both softmaxes wholly on the guide): the run closes
    // at least a tenth of the distance to it.
    assert!(so1 < so0 - 0.1 * (so0 + 2.0), "self-training loss {so0} → {so1}");
    // `xlt train --model RUN/model` loads its encoder, the fine-tuned one.
    let trained = HostModel::from_dir(&summary.model_dir).expect("trained");
    let mut specs = vec![HeadSpec::new("udpos", Kind::Tagging, 17)];
    assign_prefixes(&mut specs);
    let enc = HostModel::from_encoder_dir(&summary.model_dir, specs, 0).expect("encoder for xlt train");
    for t in enc.structure.layout.tensors.iter().filter(|t| t.encoder) {
        let o = trained.structure.layout.tensors.iter().find(|o| o.name == t.name).expect("same tensor");
        assert_eq!(enc.params[t.range()], trained.params[o.range()], "{}", t.name);
    }
    // The run's log has both objectives' steps.
    let log = std::fs::read_to_string(dir.join("run/log.jsonl")).expect("log");
    assert!(log.contains("\"task\":\"so\"") && log.contains("\"task\":\"tlm\""));
}

#[test]
fn stopping_and_resuming_gives_the_same_weights() {
    let (a, b) = (tmp("straight"), tmp("resumed"));
    let straight = align_train(&request(&a, vec![Objective::So, Objective::Tlm], 12), &Device::Cpu, false, false, None)
        .expect("straight")
        .expect("finished");
    let req = request(&b, vec![Objective::So, Objective::Tlm], 12);
    assert!(align_train(&req, &Device::Cpu, false, false, Some(5)).expect("first part").is_none());
    let resumed = align_train(&req, &Device::Cpu, true, false, None).expect("resume").expect("finished");
    let read = |d: &Path| std::fs::read(d.join("model.safetensors")).expect("weights");
    assert!(read(&straight.model_dir) == read(&resumed.model_dir), "resumed weights differ");
    // Other settings on top of that checkpoint are refused.
    let mut other = req.clone();
    other.threshold = 0.01;
    let e = align_train(&other, &Device::Cpu, true, false, None).unwrap_err().to_string();
    assert!(e.contains("threshold"), "{e}");
}

/// `xlt align-train` of the tiny XLM-R on `input` into `out` at layer 1 on the CPU, plus `extra`.
fn align_train_cli(input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let model = fixture("tiny-xlmr");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let mut args: Vec<String> = ["align-train", "--model", &s(&model), "--input", &s(input), "--output", &s(out)]
        .iter()
        .map(|x| x.to_string())
        .collect();
    args.extend(["--device", "cpu", "--quiet"].iter().chain(extra).map(|x| x.to_string()));
    if !extra.contains(&"--layer") {
        args.extend(["--layer".to_string(), "1".to_string()]);
    }
    Command::new(env!("CARGO_BIN_EXE_xlt")).args(&args).output().expect("run xlt")
}

#[test]
fn the_fine_tuned_model_aligns_and_bad_corpora_name_their_line() {
    let dir = tmp("cli");
    let corpus = corpus(&dir);
    let run = dir.join("run");
    let out = align_train_cli(&corpus, &run, &["--max-steps", "4", "--batch-size", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let aligned = dir.join("out.txt");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_xlt"))
        .args(["align", "--model", &s(&run.join("model")), "--input", &s(&corpus), "--output", &s(&aligned)])
        .args(["--layer", "1", "--device", "cpu"])
        .output()
        .expect("run xlt");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = std::fs::read_to_string(&aligned).expect("alignments");
    assert_eq!(lines.lines().count(), std::fs::read_to_string(&corpus).expect("c").lines().count());
    // A line that is not a pair stops the run before any step, naming file and line.
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "a b ||| c d\nno separator\n").expect("write");
    let out = align_train_cli(&bad, &dir.join("bad-run"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad.txt:2") && err.contains("not a sentence pair"), "{err}");
    assert!(!dir.join("bad-run/checkpoint").exists());
    let out = align_train_cli(&corpus, &dir.join("x"), &["--layer", "7"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--layer 7"));
    let out = align_train_cli(&corpus, &dir.join("y"), &["--objectives", "so,psi"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown objective `psi`"));
}
