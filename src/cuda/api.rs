//! The device interface: everything the CUDA backend asks of a device — memory, copies, kernel
//! launches, cuBLAS-style GEMMs, synchronisation — as one trait with two implementations: the
//! GPU through the CUDA driver and cuBLAS ([`super::driver::CudaDriver`]), and the host kernel
//! emulator of the tests (`tests/cuda_emu/`), which runs the same `kernels/*.cu` as host C++
//! and computes the GEMMs by cuBLAS's column-major definition. [`super::Gpu`] wraps either,
//! counting what a training step asks of it.
//!
//! Everything is ordered as if on one stream: a call may return before its work is done, but
//! work runs in call order, and [`DeviceApi::copy_to_host`] returns only when the data is there.

use super::device::Dtype;
use super::launch::Launch;
use crate::Result;

/// What a device is, for messages.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Device name, e.g. "NVIDIA H200".
    pub name: String,
    /// Compute capability (major, minor).
    pub cc: (i32, i32),
    /// Streaming multiprocessors.
    pub sm_count: usize,
    /// Total device memory in bytes.
    pub total_mem: usize,
    /// How the kernels were loaded ("nvcc fatbins", "NVRTC", "host emulator").
    pub kernels: String,
}

/// One cuBLAS `cublasGemmStridedBatchedEx` call in cuBLAS's own column-major terms (see
/// [`super::gemm::CublasGemm`] for how a row-major product maps onto it), with f32 compute:
/// for each of `batch` products, `C = alpha · op(A) · op(B) + beta · C`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmCall {
    /// Transposes, sizes, leading dimensions and strides.
    pub args: super::gemm::CublasGemm,
    /// Device address of cuBLAS's A.
    pub a: u64,
    /// Device address of cuBLAS's B.
    pub b: u64,
    /// Device address of C.
    pub c: u64,
    /// Element type of A and B.
    pub ab: Dtype,
    /// Element type of C (that of A and B, or f32).
    pub out: Dtype,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of C's previous contents (0: C is overwritten, never read).
    pub beta: f32,
    /// Number of products.
    pub batch: usize,
}

/// A device: the GPU, or the host kernel emulator.
///
/// # Safety
/// Implementations must treat addresses as the addresses of their own allocations; callers
/// guarantee (through [`super::Dev`]'s checked views) that every address and length lies inside
/// a live allocation, and that a launch's arguments match its kernel (checked by
/// [`Launch::new`]).
pub trait DeviceApi: Send + Sync {
    /// What the device is.
    fn info(&self) -> &DeviceInfo;
    /// Allocates `bytes` bytes, uninitialised, 256-byte aligned; `what` names the buffer in an
    /// out-of-memory error.
    fn alloc(&self, bytes: usize, what: &str) -> Result<u64>;
    /// Frees an allocation once the work queued before this call is done with it.
    ///
    /// # Safety
    /// `ptr` came from [`DeviceApi::alloc`] on this device and is freed once.
    unsafe fn free(&self, ptr: u64);
    /// Sets `bytes` bytes at `ptr` to `value`.
    ///
    /// # Safety
    /// The range lies inside a live allocation.
    unsafe fn memset(&self, ptr: u64, value: u8, bytes: usize) -> Result<()>;
    /// Copies host bytes to the device.
    ///
    /// # Safety
    /// The destination range lies inside a live allocation.
    unsafe fn copy_to_device(&self, dst: u64, src: &[u8]) -> Result<()>;
    /// Copies device bytes to the host; returns when they are there (waits for queued work).
    ///
    /// # Safety
    /// The source range lies inside a live allocation.
    unsafe fn copy_to_host(&self, dst: &mut [u8], src: u64) -> Result<()>;
    /// Copies `bytes` bytes between device addresses.
    ///
    /// # Safety
    /// Both ranges lie inside live allocations.
    unsafe fn copy_on_device(&self, dst: u64, src: u64, bytes: usize) -> Result<()>;
    /// Queues a kernel launch.
    ///
    /// # Safety
    /// Every pointer argument addresses enough live device memory for the launch.
    unsafe fn launch(&self, plan: &Launch) -> Result<()>;
    /// Queues a GEMM.
    ///
    /// # Safety
    /// A, B and C cover every element the product reads or writes.
    unsafe fn gemm(&self, call: &GemmCall) -> Result<()>;
    /// Waits for all queued work; reports asynchronous errors.
    fn synchronize(&self) -> Result<()>;
    /// (free, total) device memory in bytes.
    fn mem_info(&self) -> Result<(usize, usize)>;
    /// Whether named ranges reach a profiler (then [`super::Gpu`] names every launch).
    fn profiling(&self) -> bool {
        false
    }
    /// Opens a named range on the profiler's timeline (NVTX); no-op where there is none.
    fn range_push(&self, _name: &str) {}
    /// Closes the innermost range.
    fn range_pop(&self) {}
}
