//! Multi-task sampling (jiant's `task_sampler.py`), the step budget jiant's configurator derives
//! from task sizes, and the per-task shuffled epoch order.
//!
//! One optimizer step samples one task ([`TaskSampler::next`]) and then takes
//! `gradient_accumulation_steps` batches from that task's [`EpochOrder`]. jiant draws tasks with
//! an unseeded `RandomState`, so its task order is not reproducible; here every draw is a pure
//! function of (seed, draw index) built from [`crate::rng`], so the whole sampler state is two
//! integers and a resumed run continues the identical sequence.

use crate::error::{Error, Result};
use crate::rng::{derive, mix64, Rng};
use serde::{Deserialize, Serialize};

/// T5's examples-proportional mixing limit `K = 2^17` (Raffel et al. 2020 explored 2^16…2^21;
/// the value used for the paper's runs is unverified, so it is a default, not a fixed rule).
pub const DEFAULT_CAP: usize = 1 << 17;

/// Stream id for the task draws, so a sampler and an [`EpochOrder`] built from the same seed
/// do not share random numbers.
const TASK_STREAM: u64 = 0x7a5c_5a3d_1e2f_0001;

/// How tasks are weighted.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum SamplingMode {
    /// `p_t = 1 / T` (jiant `UniformMultiTaskSampler`).
    Uniform,
    /// `p_t ∝ n_t` (jiant `ProportionalMultiTaskSampler`, the simple API's default).
    Proportional,
    /// `p_t ∝ min(n_t, cap)`: T5 examples-proportional mixing; what jiant's simple API builds
    /// (`SpecifiedProbMultiTaskSampler` over capped counts) when `train_examples_cap` is set.
    CappedProportional {
        /// The limit `K` ([`DEFAULT_CAP`] in the paper).
        cap: usize,
    },
    /// `p_t ∝ min(n_t, cap)^(1 / temperature)` (jiant `TemperatureMultiTaskSampler`; no cap when
    /// `cap` is `None`). Temperature 1 is (capped) proportional; large temperatures approach
    /// uniform.
    Temperature {
        /// `T > 0`.
        temperature: f64,
        /// Optional limit applied before the power.
        cap: Option<usize>,
    },
}

/// Everything needed to resume a [`TaskSampler`]: the seed and the number of draws made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// The seed the sampler was built with.
    pub seed: u64,
    /// Number of tasks drawn so far; the next draw has this index.
    pub draws: u64,
}

/// A seeded sampler over tasks: each [`next`](TaskSampler::next) returns a task index drawn
/// from [`probabilities`](TaskSampler::probabilities).
#[derive(Clone, Debug)]
pub struct TaskSampler {
    names: Vec<String>,
    sizes: Vec<usize>,
    mode: SamplingMode,
    /// (T) normalised probabilities.
    probs: Vec<f64>,
    /// (T) running sums of `probs`, the inverse-CDF table.
    cdf: Vec<f64>,
    seed: u64,
    /// Generator key for the task stream: `mix64(derive(seed, TASK_STREAM))`, the seed an
    /// [`Rng`] built from `derive(seed, TASK_STREAM)` holds.
    key: u64,
    draws: u64,
}

impl TaskSampler {
    /// A sampler over `task_names` with train-set sizes `sizes` (examples, or feature rows for
    /// QA, as jiant counts its cache).
    ///
    /// Errors when there are no tasks, names and sizes differ in length, a name repeats, a task
    /// is empty, a cap is 0, or the temperature is not a finite positive number.
    pub fn new<S: AsRef<str>>(task_names: &[S], sizes: &[usize], mode: SamplingMode, seed: u64) -> Result<Self> {
        if task_names.is_empty() {
            return Err(Error::Usage("task sampler: expected at least one task, found none".into()));
        }
        if task_names.len() != sizes.len() {
            return Err(Error::Usage(format!(
                "task sampler: expected one size per task, found {} tasks and {} sizes",
                task_names.len(),
                sizes.len()
            )));
        }
        let names: Vec<String> = task_names.iter().map(|s| s.as_ref().to_string()).collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(Error::Usage(format!("task sampler: task `{name}` is listed twice")));
            }
            if sizes[i] == 0 {
                return Err(Error::Usage(format!(
                    "task sampler: expected a non-empty training set for task `{name}`, found 0 examples"
                )));
            }
        }
        let probs = probabilities_for(sizes, mode)?;
        let mut cdf = Vec::with_capacity(probs.len());
        let mut acc = 0.0;
        for p in &probs {
            acc += p;
            cdf.push(acc);
        }
        let key = mix64(derive(seed, TASK_STREAM));
        Ok(TaskSampler { names, sizes: sizes.to_vec(), mode, probs, cdf, seed, key, draws: 0 })
    }

    /// A sampler that continues exactly where the one that produced `state` stopped; the tasks,
    /// sizes and mode must be the ones it was built with.
    pub fn from_state<S: AsRef<str>>(
        task_names: &[S],
        sizes: &[usize],
        mode: SamplingMode,
        state: &SamplerState,
    ) -> Result<Self> {
        let mut s = Self::new(task_names, sizes, mode, state.seed)?;
        s.draws = state.draws;
        Ok(s)
    }

    /// The resumable state (seed and draws so far).
    pub fn state(&self) -> SamplerState {
        SamplerState { seed: self.seed, draws: self.draws }
    }

    /// The index of the next task. The `k`-th draw (0-based) takes the 64-bit value
    /// `Rng::new(derive(seed, stream))` would return on its `(k + 1)`-th call, turns its top 53
    /// bits into `u` in [0, 1) and returns the first task whose cumulative probability exceeds
    /// `u`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> usize {
        let u = unit_f64(self.key, self.draws);
        self.draws += 1;
        let i = self.cdf.partition_point(|&c| c <= u);
        // Rounding can leave the last running sum a hair under 1.
        i.min(self.cdf.len() - 1)
    }

    /// The sampling probability of each task, in the order given to [`new`](TaskSampler::new).
    pub fn probabilities(&self) -> &[f64] {
        &self.probs
    }

    /// The task names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The task sizes, in order.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// The sampling mode.
    pub fn mode(&self) -> SamplingMode {
        self.mode
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: a sampler has at least one task.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Number of tasks drawn so far.
    pub fn draws(&self) -> u64 {
        self.draws
    }
}

/// The 64-bit value `Rng::new(s).next_u64()` returns on its `counter`-th call, where
/// `key = mix64(s)`: indexable directly, so no generator has to be replayed on resume.
#[inline]
fn rng_at(key: u64, counter: u64) -> u64 {
    mix64(key ^ mix64(counter))
}

/// Uniform in [0, 1) with 53 bits for draw `index` (0-based) of the stream `key`.
#[inline]
fn unit_f64(key: u64, index: u64) -> f64 {
    (rng_at(key, index.wrapping_add(1)) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Normalised probabilities for `sizes` under `mode`.
fn probabilities_for(sizes: &[usize], mode: SamplingMode) -> Result<Vec<f64>> {
    let capped = |cap: usize| -> Result<Vec<f64>> {
        if cap == 0 {
            return Err(Error::Usage("task sampler: expected a positive examples cap, found 0".into()));
        }
        Ok(sizes.iter().map(|&n| n.min(cap) as f64).collect())
    };
    let weights: Vec<f64> = match mode {
        SamplingMode::Uniform => vec![1.0; sizes.len()],
        SamplingMode::Proportional => sizes.iter().map(|&n| n as f64).collect(),
        SamplingMode::CappedProportional { cap } => capped(cap)?,
        SamplingMode::Temperature { temperature, cap } => {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(Error::Usage(format!(
                    "task sampler: expected a finite positive temperature, found {temperature}"
                )));
            }
            let base = match cap {
                Some(cap) => capped(cap)?,
                None => sizes.iter().map(|&n| n as f64).collect(),
            };
            base.into_iter().map(|w| w.powf(1.0 / temperature)).collect()
        }
    };
    let total: f64 = weights.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return Err(Error::Usage(format!(
            "task sampler: task weights {weights:?} do not sum to a finite positive number"
        )));
    }
    Ok(weights.into_iter().map(|w| w / total).collect())
}

/// jiant's `max_steps` when only epochs are given (`SimpleAPIMultiTaskConfigurator`):
///
/// ```text
/// max_steps = int(Σ_t epochs · ceil(min(n_t, cap) / (batch · grad_acc)))
/// ```
///
/// summed in f64 in task order as Python does (`epochs` may be fractional). `cap` is
/// `train_examples_cap` (`None`: no cap); a single device is assumed (`num_gpus` = 1).
/// jiant then takes `warmup_steps = int(unrounded_sum · 0.1)`; for whole epochs the sum is an
/// integer and [`LinearSchedule::new`](super::schedule::LinearSchedule::new) on the result gives
/// the same warmup.
///
/// Errors when there are no tasks, `batch` or `grad_acc` is 0, `cap` is `Some(0)`, or `epochs`
/// is negative or not finite.
pub fn steps_per_task(sizes: &[usize], cap: Option<usize>, epochs: f64, batch: usize, grad_acc: usize) -> Result<u64> {
    if sizes.is_empty() {
        return Err(Error::Usage("step budget: expected at least one task, found none".into()));
    }
    if batch == 0 || grad_acc == 0 {
        return Err(Error::Usage(format!(
            "step budget: expected positive batch size and accumulation steps, found {batch} and {grad_acc}"
        )));
    }
    if cap == Some(0) {
        return Err(Error::Usage("step budget: expected a positive examples cap, found 0".into()));
    }
    if !(epochs.is_finite() && epochs >= 0.0) {
        return Err(Error::Usage(format!("step budget: expected a finite non-negative epoch count, found {epochs}")));
    }
    let effective = batch as u128 * grad_acc as u128;
    let mut total = 0.0f64;
    for &n in sizes {
        let n = cap.map_or(n, |k| n.min(k)) as u128;
        let per_epoch = n.div_ceil(effective);
        total += epochs * per_epoch as f64;
    }
    Ok(total.floor() as u64)
}

/// Everything needed to resume an [`EpochOrder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochState {
    /// The seed the order was built with.
    pub seed: u64,
    /// Index of the current pass over the data (0-based).
    pub pass: u64,
    /// Number of indices of the current pass already handed out, below `n` in saved states;
    /// `n` is accepted on restore and means the start of the next pass.
    pub position: u64,
}

/// An endless stream of example indices for one task, as jiant's `InfiniteYield` over a
/// shuffling loader: every pass is a fresh seeded permutation of `0..n` (Fisher–Yates driven by
/// `Rng::new(derive(seed, pass))`), batches never straddle two passes, and the last batch of a
/// pass keeps whatever is left (`drop_last = False`).
///
/// Give each task its own seed (e.g. `derive(run_seed, task_index)`) so tasks shuffle
/// independently.
#[derive(Clone, Debug)]
pub struct EpochOrder {
    n: usize,
    seed: u64,
    pass: u64,
    position: usize,
    /// (n) the current pass's permutation.
    perm: Vec<usize>,
}

impl EpochOrder {
    /// The order over `n` examples, starting at pass 0; errors when `n` is 0.
    pub fn new(n: usize, seed: u64) -> Result<Self> {
        Self::from_state(n, &EpochState { seed, pass: 0, position: 0 })
    }

    /// An order that continues exactly where the one that produced `state` stopped; `n` must be
    /// the size it was built with. Errors when `n` is 0 or `state.position > n`.
    pub fn from_state(n: usize, state: &EpochState) -> Result<Self> {
        if n == 0 {
            return Err(Error::Usage("epoch order: expected a non-empty data set, found 0 examples".into()));
        }
        let position = usize::try_from(state.position).ok().filter(|&p| p <= n).ok_or_else(|| {
            Error::Usage(format!(
                "epoch order: expected a position in 0..={n} for {n} examples, found {}",
                state.position
            ))
        })?;
        let mut o = EpochOrder {
            n,
            seed: state.seed,
            pass: state.pass,
            position,
            perm: permutation(n, state.seed, state.pass),
        };
        o.roll_if_done();
        Ok(o)
    }

    /// The resumable state.
    pub fn state(&self) -> EpochState {
        EpochState { seed: self.seed, pass: self.pass, position: self.position as u64 }
    }

    /// The next batch: up to `batch_size` indices from the current pass, fewer at the end of a
    /// pass (the partial batch is kept); the next call starts the next pass. A
    /// `batch_size` of 0 returns an empty batch and consumes nothing.
    pub fn next_batch(&mut self, batch_size: usize) -> Vec<usize> {
        if batch_size == 0 {
            return Vec::new();
        }
        let end = self.n.min(self.position.saturating_add(batch_size));
        let batch = self.perm[self.position..end].to_vec();
        self.position = end;
        self.roll_if_done();
        batch
    }

    /// Number of examples `n`.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false: an order has at least one example.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Index of the pass the next index comes from.
    pub fn pass(&self) -> u64 {
        self.pass
    }

    /// Number of indices of the current pass already handed out (always below `n`).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Starts the next pass as soon as the current one is used up, so `position < n` always
    /// holds and a saved state names the pass the next index comes from.
    fn roll_if_done(&mut self) {
        if self.position >= self.n {
            self.pass += 1;
            self.position = 0;
            self.perm = permutation(self.n, self.seed, self.pass);
        }
    }
}

impl Iterator for EpochOrder {
    type Item = usize;

    /// The next index; never `None` (passes repeat forever).
    fn next(&mut self) -> Option<usize> {
        let i = self.perm[self.position];
        self.position += 1;
        self.roll_if_done();
        Some(i)
    }
}

/// Pass `pass`'s permutation of `0..n`: Fisher–Yates from the top, as `np.random.shuffle`,
/// swapping position `i` with a uniform `j` in `0..=i`.
fn permutation(n: usize, seed: u64, pass: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(derive(seed, pass));
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        perm.swap(i, j);
    }
    perm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_draws_match_the_sequential_generator() {
        let s = derive(42, TASK_STREAM);
        let mut rng = Rng::new(s);
        let key = mix64(s);
        for k in 0..100u64 {
            assert_eq!(rng.next_u64(), rng_at(key, k + 1), "draw {k}");
        }
    }
}
