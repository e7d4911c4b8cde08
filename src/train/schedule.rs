//! Learning-rate schedules: jiant's linear warmup then linear decay to zero (HF
//! `get_linear_schedule_with_warmup`), and a constant rate.
//!
//! Steps are optimizer steps, 0-based: `lr(s)` is the rate the `s`-th call to the optimizer
//! uses. With `LambdaLR` the scheduler sets `base_lr · λ(0)` at construction and every
//! `scheduler.step()` after `optimizer.step()` moves to `λ(s + 1)`, so the first update runs at
//! `λ(0)` (= 0 whenever there is a warmup) — the same indexing as here.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Linear warmup from 0 to `peak_lr` over `warmup_steps`, then linear decay to 0 at
/// `total_steps`, exactly as HF `get_linear_schedule_with_warmup`:
///
/// ```text
/// lr(s) = peak · s / max(1, W)                          if s < W
///       = peak · max(0, (N − s) / max(1, N − W))        otherwise
/// ```
///
/// with `W = warmup_steps`, `N = total_steps`; each ratio is computed in f64 and then multiplied
/// by `peak` (`base_lr * lr_lambda(step)`), so the values are bit-identical to PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearSchedule {
    /// Rate reached at the end of warmup.
    pub peak_lr: f64,
    /// Number of warmup steps `W`.
    pub warmup_steps: u64,
    /// Total number of optimizer steps `N`; the rate is 0 from step `N` on.
    pub total_steps: u64,
}

impl LinearSchedule {
    /// jiant's schedule: `warmup_steps = int(total_steps · warmup_proportion)` (the configurator's
    /// `int(max_steps * warmup_steps_proportion)`, default proportion 0.1), computed in f64 as
    /// Python does, so e.g. `new(lr, 10, 0.1)` has one warmup step.
    ///
    /// Errors when `peak_lr` is negative or not finite, or `warmup_proportion` is outside [0, 1].
    pub fn new(peak_lr: f64, total_steps: u64, warmup_proportion: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&warmup_proportion) {
            return Err(Error::Setting(format!(
                "linear schedule: expected a warmup proportion in [0, 1], found {warmup_proportion}"
            )));
        }
        // Python's int() truncates toward zero; the product is non-negative, so this is floor.
        let warmup_steps = (total_steps as f64 * warmup_proportion).floor() as u64;
        Self::with_warmup_steps(peak_lr, warmup_steps, total_steps)
    }

    /// A schedule with an explicit number of warmup steps (jiant's `warmup_steps` given directly).
    /// `warmup_steps > total_steps` is accepted as HF does (the rate then drops to 0 after warmup).
    ///
    /// Errors when `peak_lr` is negative or not finite.
    pub fn with_warmup_steps(peak_lr: f64, warmup_steps: u64, total_steps: u64) -> Result<Self> {
        check_lr(peak_lr, "linear schedule")?;
        Ok(LinearSchedule { peak_lr, warmup_steps, total_steps })
    }

    /// The multiplier `λ(step)` in [0, 1] applied to `peak_lr`.
    pub fn factor(&self, step: u64) -> f64 {
        let (s, w, n) = (step as i128, self.warmup_steps as i128, self.total_steps as i128);
        if s < w {
            s as f64 / w.max(1) as f64
        } else {
            ((n - s) as f64 / (n - w).max(1) as f64).max(0.0)
        }
    }

    /// The rate used at optimizer step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        self.peak_lr * self.factor(step)
    }
}

/// A learning-rate schedule as the training loop sees it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// Linear warmup then linear decay (jiant's only schedule).
    Linear(LinearSchedule),
    /// The same rate at every step (HF `get_constant_schedule`).
    Constant {
        /// The rate.
        lr: f64,
    },
}

impl Schedule {
    /// A constant rate; errors when `lr` is negative or not finite.
    pub fn constant(lr: f64) -> Result<Self> {
        check_lr(lr, "constant schedule")?;
        Ok(Schedule::Constant { lr })
    }

    /// The rate used at optimizer step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        match self {
            Schedule::Linear(s) => s.lr(step),
            Schedule::Constant { lr } => *lr,
        }
    }
}

impl From<LinearSchedule> for Schedule {
    fn from(s: LinearSchedule) -> Self {
        Schedule::Linear(s)
    }
}

fn check_lr(lr: f64, what: &str) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(Error::Setting(format!("{what}: expected a finite non-negative learning rate, found {lr}")))
    }
}
