//! Optimizer settings, shared by both backends: AdamW's hyper-parameters and what one training
//! step does around it (average the accumulated gradients, clip their global norm).

/// AdamW hyper-parameters (PyTorch `torch.optim.AdamW` semantics: decoupled weight decay).
#[derive(Clone, Copy, Debug)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f32,
    /// β1.
    pub beta1: f32,
    /// β2.
    pub beta2: f32,
    /// ε added to the bias-corrected second-moment root.
    pub eps: f32,
    /// Decoupled weight decay (applied only where the layout says so).
    pub weight_decay: f32,
}

/// One optimizer step, as both backends take it: the accumulated gradients are averaged over
/// `micro_batches`, clipped to a global L2 norm of `max_grad_norm` (when positive, PyTorch's
/// `clip_grad_norm_`), then AdamW updates every tensor (weight decay only where the layout
/// marks it) and the gradients are zeroed.
#[derive(Clone, Copy, Debug)]
pub struct StepConfig {
    /// AdamW's hyper-parameters at this step (the learning rate of the schedule).
    pub adamw: AdamWConfig,
    /// Micro-batches whose gradients were accumulated.
    pub micro_batches: usize,
    /// Global-norm limit (0: no clipping).
    pub max_grad_norm: f32,
}

/// The AdamW state of a model as the host sees it (checkpoints): both moments in the parameter
/// layout and the number of steps taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// (layout.total) first moments.
    pub m: Vec<f32>,
    /// (layout.total) second moments.
    pub v: Vec<f32>,
    /// Steps taken.
    pub t: u64,
}
