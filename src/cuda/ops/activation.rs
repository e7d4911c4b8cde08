//! The element-wise activations on the GPU (kernels/gelu.cu): exact GELU for the feed-forward
//! layers and tanh for the classification head's pooler, forward and backward; the twins of
//! `cpu::ops::gelu_forward`, `gelu_backward`, `tanh_forward` and `tanh_backward`.

use crate::cuda::device::{Dev, Gpu};
use crate::cuda::kernels::Kernel;
use crate::cuda::launch::{grid, int, stride_blocks, KArg, Launch};
use crate::{Error, Result};

/// Threads per block of the element-wise kernels.
const BLOCK: u32 = 256;

/// The plan of element-wise kernel `k` over `n` elements: `main` decides the dtype (a float
/// type), every view of `views` holds `n` elements of it, and they are the kernel's pointer
/// arguments in order, followed by N. `None` when N = 0.
pub(super) fn elementwise_plan(k: Kernel, main: Dev, views: &[(&str, Dev)], n: usize) -> Result<Option<Launch>> {
    let x = main.dtype;
    if !x.is_float() {
        return Err(Error::Usage(format!("{}: expected float views, got {x:?}", k.base_name())));
    }
    let mut args = Vec::with_capacity(views.len() + 1);
    for (name, v) in views {
        v.check(&format!("{} {name}", k.base_name()), n, x)?;
        args.push(KArg::ptr(*v));
    }
    args.push(KArg::I32(int(&format!("{} N", k.base_name()), n)?));
    if n == 0 {
        return Ok(None);
    }
    Launch::new(k, x, grid([stride_blocks(n, BLOCK), 1, 1], BLOCK, 0)?, &args).map(Some)
}

/// out (N) = 0.5 x (1 + erf(x / sqrt 2)) of inp (N): exact GELU as HF `hidden_act: gelu`.
pub fn gelu_forward_plan(out: Dev, inp: Dev, n: usize) -> Result<Option<Launch>> {
    elementwise_plan(Kernel::GeluForward, inp, &[("out", out), ("inp", inp)], n)
}

/// dinp (N) = dout (N) · GELU'(inp (N)) (overwritten).
/// Differentiates `out = 0.5 x (1 + erf(x/√2))`: GELU'(x) = Φ(x) + x φ(x).
pub fn gelu_backward_plan(dinp: Dev, inp: Dev, dout: Dev, n: usize) -> Result<Option<Launch>> {
    elementwise_plan(Kernel::GeluBackward, inp, &[("dinp", dinp), ("inp", inp), ("dout", dout)], n)
}

/// out (N) = tanh(inp (N)).
pub fn tanh_forward_plan(out: Dev, inp: Dev, n: usize) -> Result<Option<Launch>> {
    elementwise_plan(Kernel::TanhForward, inp, &[("out", out), ("inp", inp)], n)
}

/// dinp (N) = dout (N) · (1 - out²) (overwritten), out (N) the forward's output.
/// Differentiates `out = tanh(inp)`.
pub fn tanh_backward_plan(dinp: Dev, out: Dev, dout: Dev, n: usize) -> Result<Option<Launch>> {
    elementwise_plan(Kernel::TanhBackward, out, &[("dinp", dinp), ("out", out), ("dout", dout)], n)
}

/// GELU forward on the GPU (see [`gelu_forward_plan`]).
pub fn gelu_forward(g: &Gpu, out: Dev, inp: Dev, n: usize) -> Result<()> {
    g.run(gelu_forward_plan(out, inp, n)?)
}

/// GELU backward on the GPU (see [`gelu_backward_plan`]).
pub fn gelu_backward(g: &Gpu, dinp: Dev, inp: Dev, dout: Dev, n: usize) -> Result<()> {
    g.run(gelu_backward_plan(dinp, inp, dout, n)?)
}

/// tanh forward on the GPU (see [`tanh_forward_plan`]).
pub fn tanh_forward(g: &Gpu, out: Dev, inp: Dev, n: usize) -> Result<()> {
    g.run(tanh_forward_plan(out, inp, n)?)
}

/// tanh backward on the GPU (see [`tanh_backward_plan`]).
pub fn tanh_backward(g: &Gpu, dinp: Dev, out: Dev, dout: Dev, n: usize) -> Result<()> {
    g.run(tanh_backward_plan(dinp, out, dout, n)?)
}
