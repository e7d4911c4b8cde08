//! Learning-rate schedule and multi-task sampling: hand-worked schedule values (HF
//! `get_linear_schedule_with_warmup`), sampler frequencies against the stated probabilities,
//! jiant's step budget, seeded shuffling, and exact resume from saved state.

use std::collections::{HashMap, HashSet};
use xlt::train::sampler::{
    steps_per_task, EpochOrder, EpochState, SamplerState, SamplingMode, TaskSampler, DEFAULT_CAP,
};
use xlt::train::schedule::{LinearSchedule, Schedule};
use xlt::Error;

/// Tolerance for f64 rate and probability arithmetic.
const EPS: f64 = 1e-12;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= EPS
}

/// A setting out of range: the caller changes a flag.
fn assert_setting<T: std::fmt::Debug>(r: xlt::Result<T>, what: &str) {
    match r {
        Err(Error::Setting(msg)) => assert!(!msg.is_empty(), "{what}: empty message"),
        other => panic!("{what}: expected Error::Setting, found {other:?}"),
    }
}

/// The API called with arguments it does not take.
fn assert_usage<T: std::fmt::Debug>(r: xlt::Result<T>, what: &str) {
    match r {
        Err(Error::Usage(msg)) => assert!(!msg.is_empty(), "{what}: empty message"),
        other => panic!("{what}: expected Error::Usage, found {other:?}"),
    }
}

// ---------------------------------------------------------------- schedule

#[test]
fn linear_total_10_warmup_1() {
    // W = int(10 · 0.1) = 1. s = 0: 0/1 = 0. s ≥ 1: (10 − s) / (10 − 1).
    let s = LinearSchedule::new(1.0, 10, 0.1).unwrap();
    assert_eq!(s.warmup_steps, 1);
    let want = [0.0, 1.0, 8.0 / 9.0, 7.0 / 9.0, 6.0 / 9.0, 5.0 / 9.0, 4.0 / 9.0, 3.0 / 9.0, 2.0 / 9.0, 1.0 / 9.0, 0.0];
    for (step, w) in want.iter().enumerate() {
        assert!(close(s.lr(step as u64), *w), "step {step}: {} vs {w}", s.lr(step as u64));
    }
    // Past the end the rate stays at 0 (max(0, ·)), never negative.
    assert_eq!(s.lr(11), 0.0);
    assert_eq!(s.lr(1_000_000), 0.0);
}

#[test]
fn linear_total_100_warmup_10() {
    // W = 10: warmup s/10, then (100 − s)/90, peak 2e-5.
    let peak = 2e-5;
    let s = LinearSchedule::new(peak, 100, 0.1).unwrap();
    assert_eq!(s.warmup_steps, 10);
    let cases = [
        (0u64, 0.0),
        (1, 0.1),
        (5, 0.5),
        (9, 0.9),
        (10, 1.0), // 90/90
        (11, 89.0 / 90.0),
        (55, 0.5), // 45/90
        (99, 1.0 / 90.0),
        (100, 0.0),
    ];
    for (step, f) in cases {
        assert!(close(s.factor(step), f), "step {step}: factor {} vs {f}", s.factor(step));
        assert!((s.lr(step) - peak * f).abs() <= 1e-20, "step {step}: lr {}", s.lr(step));
    }
    // Rises monotonically during warmup, falls monotonically after.
    for step in 0..10 {
        assert!(s.lr(step) < s.lr(step + 1));
    }
    for step in 10..100 {
        assert!(s.lr(step) > s.lr(step + 1));
    }
}

#[test]
fn warmup_is_truncated_like_python_int() {
    // int(15 · 0.1) = int(1.5) = 1; int(19 · 0.1) = 1; int(20 · 0.1) = 2; int(7 · 0.1) = 0.
    for (total, w) in [(15u64, 1u64), (19, 1), (20, 2), (7, 0), (0, 0), (1000, 100)] {
        assert_eq!(LinearSchedule::new(1.0, total, 0.1).unwrap().warmup_steps, w, "total {total}");
    }
}

#[test]
fn no_warmup_and_degenerate_schedules() {
    // W = 0: s = 0 already runs at the peak, (N − 0)/N = 1.
    let s = LinearSchedule::new(3.0, 4, 0.0).unwrap();
    let lrs: Vec<f64> = (0..5).map(|k| s.lr(k)).collect();
    assert_eq!(lrs, vec![3.0, 2.25, 1.5, 0.75, 0.0]);
    // Warmup over everything: 0, 1/4, 2/4, 3/4, then (4 − 4)/max(1, 0) = 0.
    let s = LinearSchedule::new(1.0, 4, 1.0).unwrap();
    let lrs: Vec<f64> = (0..5).map(|k| s.lr(k)).collect();
    assert_eq!(lrs, vec![0.0, 0.25, 0.5, 0.75, 0.0]);
    // Explicit warmup longer than the run (HF accepts it).
    let s = LinearSchedule::with_warmup_steps(1.0, 8, 4).unwrap();
    assert_eq!(s.lr(2), 0.25);
    assert_eq!(s.lr(8), 0.0);
}

#[test]
fn schedule_enum_and_constant() {
    let lin: Schedule = LinearSchedule::new(1.0, 10, 0.1).unwrap().into();
    assert!(close(lin.lr(2), 8.0 / 9.0));
    let c = Schedule::constant(5e-6).unwrap();
    assert_eq!(c.lr(0), 5e-6);
    assert_eq!(c.lr(123_456), 5e-6);
}

#[test]
fn schedule_rejects_bad_inputs() {
    assert_setting(LinearSchedule::new(1.0, 10, -0.1), "negative proportion");
    assert_setting(LinearSchedule::new(1.0, 10, 1.5), "proportion above 1");
    assert_setting(LinearSchedule::new(1.0, 10, f64::NAN), "NaN proportion");
    assert_setting(LinearSchedule::new(-1e-5, 10, 0.1), "negative lr");
    assert_setting(LinearSchedule::new(f64::INFINITY, 10, 0.1), "infinite lr");
    assert_setting(LinearSchedule::with_warmup_steps(f64::NAN, 1, 10), "NaN lr");
    assert_setting(Schedule::constant(-1.0), "negative constant");
}

// ---------------------------------------------------------------- sampler probabilities

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("task{i}")).collect()
}

fn assert_probs(s: &TaskSampler, want: &[f64]) {
    let p = s.probabilities();
    assert_eq!(p.len(), want.len());
    for (t, (a, b)) in p.iter().zip(want).enumerate() {
        assert!(close(*a, *b), "task {t}: p = {a}, expected {b}");
    }
}

/// Draws `n` tasks and checks each count is within 5 binomial standard deviations (+1) of `n·p`.
fn assert_frequencies(s: &mut TaskSampler, n: usize) {
    let probs = s.probabilities().to_vec();
    let mut counts = vec![0usize; probs.len()];
    for _ in 0..n {
        counts[s.next()] += 1;
    }
    for (t, (&c, &p)) in counts.iter().zip(&probs).enumerate() {
        let mean = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!((c as f64 - mean).abs() <= 5.0 * sd + 1.0, "task {t}: {c} draws, expected {mean:.1} ± {sd:.1}");
    }
}

#[test]
fn capped_proportional_is_t5_mixing() {
    // min(n, 2^17): [10, 1000, 131072], sum 132082.
    assert_eq!(DEFAULT_CAP, 131_072);
    let sizes = [10, 1000, 300_000];
    let mut s = TaskSampler::new(&names(3), &sizes, SamplingMode::CappedProportional { cap: DEFAULT_CAP }, 7).unwrap();
    assert_probs(&s, &[10.0 / 132_082.0, 1000.0 / 132_082.0, 131_072.0 / 132_082.0]);
    assert_frequencies(&mut s, 1_000_000);
}

#[test]
fn proportional_and_uniform() {
    let sizes = [100, 300, 600];
    let mut s = TaskSampler::new(&names(3), &sizes, SamplingMode::Proportional, 1).unwrap();
    assert_probs(&s, &[0.1, 0.3, 0.6]);
    assert_frequencies(&mut s, 200_000);

    let mut s = TaskSampler::new(&names(3), &sizes, SamplingMode::Uniform, 1).unwrap();
    assert_probs(&s, &[1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
    assert_frequencies(&mut s, 200_000);
}

#[test]
fn temperature_with_and_without_cap() {
    // T = 2: sqrt([100, 10000]) = [10, 100] → [1/11, 10/11].
    let mode = SamplingMode::Temperature { temperature: 2.0, cap: None };
    let mut s = TaskSampler::new(&["a", "b"], &[100, 10_000], mode, 3).unwrap();
    assert_probs(&s, &[1.0 / 11.0, 10.0 / 11.0]);
    assert_frequencies(&mut s, 200_000);
    // Cap 400 first: sqrt([100, 400]) = [10, 20] → [1/3, 2/3].
    let mode = SamplingMode::Temperature { temperature: 2.0, cap: Some(400) };
    let mut s = TaskSampler::new(&["a", "b"], &[100, 10_000], mode, 3).unwrap();
    assert_probs(&s, &[1.0 / 3.0, 2.0 / 3.0]);
    assert_frequencies(&mut s, 200_000);
    // T = 1 is proportional.
    let mode = SamplingMode::Temperature { temperature: 1.0, cap: None };
    let s = TaskSampler::new(&["a", "b"], &[1, 3], mode, 3).unwrap();
    assert_probs(&s, &[0.25, 0.75]);
}

#[test]
fn single_task_always_drawn() {
    let mut s = TaskSampler::new(&["only"], &[5], SamplingMode::Proportional, 0).unwrap();
    assert!((0..1000).all(|_| s.next() == 0));
    assert_eq!(s.draws(), 1000);
}

// ---------------------------------------------------------------- sampler determinism and resume

fn draw(s: &mut TaskSampler, n: usize) -> Vec<usize> {
    (0..n).map(|_| s.next()).collect()
}

#[test]
fn sampler_is_deterministic_per_seed() {
    let mode = SamplingMode::Uniform;
    let sizes = [10, 10, 10, 10];
    let a = draw(&mut TaskSampler::new(&names(4), &sizes, mode, 11).unwrap(), 500);
    let b = draw(&mut TaskSampler::new(&names(4), &sizes, mode, 11).unwrap(), 500);
    let c = draw(&mut TaskSampler::new(&names(4), &sizes, mode, 12).unwrap(), 500);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Not a constant or periodic stream: every task shows up and consecutive draws vary.
    assert_eq!(a.iter().collect::<HashSet<_>>().len(), 4);
    assert!(a.windows(2).filter(|w| w[0] != w[1]).count() > 300);
}

#[test]
fn sampler_resumes_exactly() {
    let tasks = ["mnli", "squad", "mlm_en"];
    let sizes = [392_702, 88_641, 2_000_000];
    let mode = SamplingMode::CappedProportional { cap: DEFAULT_CAP };
    let (n, m) = (1234, 4321);
    let straight = draw(&mut TaskSampler::new(&tasks, &sizes, mode, 99).unwrap(), n + m);

    let mut first = TaskSampler::new(&tasks, &sizes, mode, 99).unwrap();
    let head = draw(&mut first, n);
    let state = first.state();
    assert_eq!(state, SamplerState { seed: 99, draws: n as u64 });
    // Through JSON, as a checkpoint stores it.
    let json = serde_json::to_string(&state).unwrap();
    let restored: SamplerState = serde_json::from_str(&json).unwrap();
    let mut resumed = TaskSampler::from_state(&tasks, &sizes, mode, &restored).unwrap();
    let tail = draw(&mut resumed, m);

    assert_eq!(head, straight[..n]);
    assert_eq!(tail, straight[n..]);
    // The original keeps going identically too.
    assert_eq!(draw(&mut first, m), tail);
}

#[test]
fn sampler_rejects_bad_inputs() {
    let none: [&str; 0] = [];
    assert_usage(TaskSampler::new(&none, &[], SamplingMode::Uniform, 0), "no tasks");
    assert_usage(TaskSampler::new(&["a", "b"], &[1], SamplingMode::Uniform, 0), "length mismatch");
    assert_usage(TaskSampler::new(&["a", "b"], &[1, 0], SamplingMode::Proportional, 0), "zero-size task");
    assert_usage(TaskSampler::new(&["a", "a"], &[1, 2], SamplingMode::Proportional, 0), "duplicate name");
    assert_usage(TaskSampler::new(&["a"], &[1], SamplingMode::CappedProportional { cap: 0 }, 0), "zero cap");
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mode = SamplingMode::Temperature { temperature: t, cap: None };
        assert_usage(TaskSampler::new(&["a"], &[1], mode, 0), "bad temperature");
    }
    let mode = SamplingMode::Temperature { temperature: 2.0, cap: Some(0) };
    assert_usage(TaskSampler::new(&["a"], &[1], mode, 0), "zero temperature cap");
}

// ---------------------------------------------------------------- step budget

#[test]
fn step_budget_matches_jiant_configurator() {
    // Effective batch 8 · 4 = 32. Capped sizes [10, 1000, 131072]:
    // ceil(10/32) = 1, ceil(1000/32) = ceil(31.25) = 32, ceil(131072/32) = 4096; Σ = 4129; ×2 epochs.
    let sizes = [10, 1000, 300_000];
    assert_eq!(steps_per_task(&sizes, Some(DEFAULT_CAP), 2.0, 8, 4).unwrap(), 8258);
    // No cap: ceil(300000/32) = 9375 → (1 + 32 + 9375) · 2.
    assert_eq!(steps_per_task(&sizes, None, 2.0, 8, 4).unwrap(), 18_816);
    // Exact multiples add no extra step: 64/32 = 2.
    assert_eq!(steps_per_task(&[64], None, 1.0, 32, 1).unwrap(), 2);
    // Fractional epochs: 0.5 · ceil(33/32) + 0.5 · ceil(1/32) = 1 + 0.5 = 1.5 → int → 1.
    assert_eq!(steps_per_task(&[33, 1], None, 0.5, 32, 1).unwrap(), 1);
    // 1.5 · ceil(33/32) = 3.
    assert_eq!(steps_per_task(&[33], None, 1.5, 32, 1).unwrap(), 3);
    // jiant's warmup on top: int(8258 · 0.1) = 825.
    let s = LinearSchedule::new(1e-5, steps_per_task(&sizes, Some(DEFAULT_CAP), 2.0, 8, 4).unwrap(), 0.1).unwrap();
    assert_eq!((s.total_steps, s.warmup_steps), (8258, 825));
}

#[test]
fn step_budget_rejects_bad_inputs() {
    assert_usage(steps_per_task(&[], None, 1.0, 8, 1), "no tasks");
    assert_usage(steps_per_task(&[10], None, 1.0, 0, 1), "zero batch");
    assert_usage(steps_per_task(&[10], None, 1.0, 8, 0), "zero accumulation");
    assert_usage(steps_per_task(&[10], Some(0), 1.0, 8, 1), "zero cap");
    assert_usage(steps_per_task(&[10], None, -1.0, 8, 1), "negative epochs");
    assert_usage(steps_per_task(&[10], None, f64::NAN, 8, 1), "NaN epochs");
}

// ---------------------------------------------------------------- epoch order

#[test]
fn each_pass_is_a_permutation_with_partial_last_batch() {
    // n = 10, batch 4: every pass is [4, 4, 2], then the next pass starts fresh.
    let mut o = EpochOrder::new(10, 5).unwrap();
    let mut passes = Vec::new();
    for pass in 0..5u64 {
        let mut seen = Vec::new();
        for want_len in [4, 4, 2] {
            assert_eq!(o.pass(), pass);
            let b = o.next_batch(4);
            assert_eq!(b.len(), want_len, "pass {pass}");
            seen.extend(b);
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "pass {pass} is not a permutation: {seen:?}");
        passes.push(seen);
    }
    // Passes are reshuffled, not repeated, and not the identity.
    assert!(passes.windows(2).any(|w| w[0] != w[1]));
    assert!(passes.iter().any(|p| *p != (0..10).collect::<Vec<_>>()));
    // A batch larger than the data set is one whole pass.
    let mut o = EpochOrder::new(3, 1).unwrap();
    assert_eq!(o.next_batch(100).len(), 3);
    assert_eq!((o.pass(), o.position()), (1, 0));
    assert_eq!(o.next_batch(100).len(), 3);
    assert_eq!(o.pass(), 2);
    assert!(o.next_batch(0).is_empty());
}

#[test]
fn fisher_yates_is_uniform() {
    // All 24 orders of 4 items appear about equally often (a Sattolo-style bug, j in 0..i,
    // would give only the 6 cyclic ones; a naive shuffle would skew the counts).
    let mut o = EpochOrder::new(4, 2024).unwrap();
    let passes = 48_000;
    let mut counts: HashMap<Vec<usize>, usize> = HashMap::new();
    for _ in 0..passes {
        *counts.entry(o.next_batch(4)).or_default() += 1;
    }
    assert_eq!(counts.len(), 24);
    let mean = passes as f64 / 24.0; // 2000, sd ≈ 44
    for (perm, c) in &counts {
        assert!((*c as f64 - mean).abs() < 250.0, "{perm:?}: {c} vs {mean}");
    }
}

#[test]
fn epoch_order_is_deterministic_and_iterates_across_passes() {
    let a: Vec<usize> = EpochOrder::new(7, 3).unwrap().take(70).collect();
    let b: Vec<usize> = EpochOrder::new(7, 3).unwrap().take(70).collect();
    let c: Vec<usize> = EpochOrder::new(7, 4).unwrap().take(70).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    for chunk in a.chunks(7) {
        let mut s = chunk.to_vec();
        s.sort_unstable();
        assert_eq!(s, (0..7).collect::<Vec<_>>());
    }
    // Item-wise and batch-wise iteration hand out the same stream.
    let mut o = EpochOrder::new(7, 3).unwrap();
    let batched: Vec<usize> = (0..10).flat_map(|_| o.next_batch(7)).collect();
    assert_eq!(batched, a);
}

#[test]
fn epoch_order_resumes_exactly() {
    let (n, bs) = (23, 5);
    let straight: Vec<Vec<usize>> = {
        let mut o = EpochOrder::new(n, 77).unwrap();
        (0..40).map(|_| o.next_batch(bs)).collect()
    };
    // Save at every batch boundary, including the ends of passes (position == n).
    for k in 0..40 {
        let mut o = EpochOrder::new(n, 77).unwrap();
        for _ in 0..k {
            o.next_batch(bs);
        }
        let json = serde_json::to_string(&o.state()).unwrap();
        let state: EpochState = serde_json::from_str(&json).unwrap();
        assert!(state.position < n as u64, "{state:?}");
        let mut r = EpochOrder::from_state(n, &state).unwrap();
        let rest: Vec<Vec<usize>> = (k..40).map(|_| r.next_batch(bs)).collect();
        assert_eq!(rest, straight[k..], "resumed after {k} batches from {state:?}");
    }
    // A state at the end of a pass and one at the start of the next are the same point.
    let mut end = EpochOrder::from_state(n, &EpochState { seed: 77, pass: 2, position: n as u64 }).unwrap();
    let mut start = EpochOrder::from_state(n, &EpochState { seed: 77, pass: 3, position: 0 }).unwrap();
    assert_eq!(end.next_batch(bs), start.next_batch(bs));
}

#[test]
fn epoch_order_rejects_bad_inputs() {
    assert_usage(EpochOrder::new(0, 1), "empty data set");
    assert_usage(EpochOrder::from_state(5, &EpochState { seed: 1, pass: 0, position: 6 }), "position past the end");
}
