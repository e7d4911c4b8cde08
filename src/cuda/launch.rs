//! Kernel launches as data. Every wrapper in `ops/` builds its launches with a pure function:
//! views and sizes checked, a [`Launch`] out (kernel, dtype, grid, arguments); a device runs it
//! ([`super::Gpu::launch`]). The same plan runs on the GPU and on the host kernel emulator, and
//! is checked against its kernel's parameter list ([`super::kernels`]) when it is built.

use super::device::{Dev, Dtype};
use super::kernels::{Kernel, Param};
use crate::{Error, Result};

/// The most arguments a kernel takes.
pub const MAX_ARGS: usize = 16;

/// Most blocks of a grid-stride launch: enough to fill any current GPU several times over, and
/// a number fixed by the sizes, not by the device, so the work split (and any reduction order
/// that follows it) is the same on every GPU.
pub const MAX_STRIDE_BLOCKS: usize = 8192;

/// One kernel argument, by value, in the kernel's parameter type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KArg {
    /// A device address (`T*`); 0 is a null pointer.
    Ptr(u64),
    /// `int`
    I32(i32),
    /// `float`
    F32(f32),
    /// `unsigned long long` (seeds)
    U64(u64),
}

impl KArg {
    /// A view's address.
    pub fn ptr(d: Dev<'_>) -> KArg {
        KArg::Ptr(d.ptr)
    }

    /// An optional view's address, null when absent.
    pub fn opt(d: Option<Dev<'_>>) -> KArg {
        KArg::Ptr(d.map_or(0, |d| d.ptr))
    }

    /// The parameter type this argument fills.
    pub fn param(&self) -> Param {
        match self {
            KArg::Ptr(_) => Param::Ptr,
            KArg::I32(_) => Param::I32,
            KArg::F32(_) => Param::F32,
            KArg::U64(_) => Param::U64,
        }
    }

    /// Size of the argument in bytes.
    pub fn size(&self) -> usize {
        self.param().size()
    }

    /// The argument's bytes, for launchers that take an array of pointers to values (the
    /// driver's `cuLaunchKernel`, the emulator).
    pub fn as_ptr(&self) -> *const std::ffi::c_void {
        match self {
            KArg::Ptr(v) | KArg::U64(v) => v as *const u64 as *const std::ffi::c_void,
            KArg::I32(v) => v as *const i32 as *const std::ffi::c_void,
            KArg::F32(v) => v as *const f32 as *const std::ffi::c_void,
        }
    }
}

/// Blocks, threads per block and dynamic shared memory of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    /// Blocks (x, y, z).
    pub blocks: (u32, u32, u32),
    /// Threads per block (x only: every kernel uses 1-D blocks).
    pub threads: u32,
    /// Dynamic shared memory in bytes.
    pub shared: u32,
}

/// A grid of `blocks` (x, y, z; each at least 1) of `threads` threads with `shared` bytes of
/// dynamic shared memory, checked against CUDA's limits (x < 2³¹, y and z ≤ 65535, at most 1024
/// threads, 48 KiB of dynamic shared memory without opting in).
pub fn grid(blocks: [usize; 3], threads: u32, shared: usize) -> Result<Grid> {
    let [x, y, z] = blocks.map(|b| b.max(1));
    if x > i32::MAX as usize || y > 65535 || z > 65535 || threads == 0 || threads > 1024 || shared > 48 << 10 {
        return Err(Error::Usage(format!(
            "a launch of ({x}, {y}, {z}) blocks × {threads} threads with {shared} bytes of shared memory exceeds \
             CUDA's limits"
        )));
    }
    Ok(Grid { blocks: (x as u32, y as u32, z as u32), threads, shared: shared as u32 })
}

/// Blocks of a grid-stride launch over `n` elements with `threads` per block: one element per
/// thread up to [`MAX_STRIDE_BLOCKS`] blocks; the kernels' loops cover the rest.
pub fn stride_blocks(n: usize, threads: u32) -> usize {
    n.div_ceil(threads as usize).clamp(1, MAX_STRIDE_BLOCKS)
}

/// `x` as a kernel `int`, or an error naming `what`.
pub fn int(what: &str, x: usize) -> Result<i32> {
    i32::try_from(x).map_err(|_| Error::Usage(format!("{what} = {x} is more than a CUDA kernel's int can hold")))
}

/// Checks that view `d` starts on a `bytes`-byte boundary (kernels that read 128-bit vectors
/// need 16).
pub fn aligned(what: &str, d: Dev<'_>, bytes: u64) -> Result<()> {
    if !d.ptr.is_multiple_of(bytes) {
        return Err(Error::Usage(format!("{what}: address {:#x} is not {bytes}-byte aligned", d.ptr)));
    }
    Ok(())
}

/// A kernel launch as data: which entry point, its grid and its arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Launch {
    /// The kernel family.
    pub kernel: Kernel,
    /// The element type it is instantiated for.
    pub dtype: Dtype,
    /// Blocks, threads and shared memory.
    pub grid: Grid,
    args: [KArg; MAX_ARGS],
    nargs: u8,
}

impl Launch {
    /// A launch of `kernel` for `dtype`, checked: the kernel must be instantiated for `dtype`
    /// and `args` must match its parameter list in number and type.
    pub fn new(kernel: Kernel, dtype: Dtype, grid: Grid, args: &[KArg]) -> Result<Launch> {
        if kernel.slot(dtype).is_none() {
            return Err(Error::Usage(format!("{} has no {dtype:?} instantiation", kernel.base_name())));
        }
        let params = kernel.params();
        if args.len() != params.len() || args.iter().zip(params).any(|(a, p)| a.param() != *p) {
            let got: Vec<Param> = args.iter().map(KArg::param).collect();
            return Err(Error::Usage(format!(
                "{}: arguments {got:?} do not match the parameters {params:?}",
                kernel.name(dtype)
            )));
        }
        let mut all = [KArg::I32(0); MAX_ARGS];
        all[..args.len()].copy_from_slice(args);
        Ok(Launch { kernel, dtype, grid, args: all, nargs: args.len() as u8 })
    }

    /// The arguments, in the kernel's parameter order.
    pub fn args(&self) -> &[KArg] {
        &self.args[..self.nargs as usize]
    }

    /// The entry point's C name (`layernorm_forward_bf16`).
    pub fn name(&self) -> String {
        self.kernel.name(self.dtype)
    }
}
