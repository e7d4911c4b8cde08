//! A device as the CUDA backend uses it: [`Gpu`] over a [`DeviceApi`] (the GPU, or the host
//! kernel emulator of the tests), device memory, and the counts of what each step asks of it.
//!
//! Memory is handled like C pointers in llm.c: [`Buf`] owns an allocation, [`Dev`] is a copyable
//! view (address, element count, element type) that the op wrappers take, so a flat parameter
//! or gradient buffer can be cut into per-tensor views without borrow gymnastics. A view borrows
//! its allocation (`Dev<'a>`), so it cannot outlive it.

use super::api::{DeviceApi, DeviceInfo, GemmCall};
use super::driver::CudaDriver;
use super::launch::Launch;
use crate::{Error, Result};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

pub use super::driver::{cuda_err, driver_msg, probe, Probe};

/// Element type of a device buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE single precision.
    F32,
    /// bfloat16 (8-bit exponent, 7-bit mantissa).
    Bf16,
    /// IEEE half precision.
    F16,
    /// Token ids, positions, types.
    U32,
    /// Labels (`-100` = ignored, as PyTorch).
    I64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 | Dtype::U32 => 4,
            Dtype::Bf16 | Dtype::F16 => 2,
            Dtype::I64 => 8,
        }
    }

    /// The suffix of the kernels instantiated for this type (`layernorm_forward_bf16`).
    pub fn suffix(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
            Dtype::U32 => "u32",
            Dtype::I64 => "i64",
        }
    }

    /// Whether this is a floating-point activation type.
    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::Bf16 | Dtype::F16)
    }
}

/// A view of device memory: address, element count and element type, borrowed from the
/// allocation ([`Buf`]) it points into. Copyable like a pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dev<'a> {
    /// Device address of element 0.
    pub ptr: u64,
    /// Number of elements.
    pub len: usize,
    /// Element type.
    pub dtype: Dtype,
    _alloc: PhantomData<&'a Buf>,
}

impl<'a> Dev<'a> {
    /// A view of memory that no [`Buf`] owns.
    ///
    /// # Safety
    /// `len` elements of `dtype` at `ptr` must stay valid device memory (for the host emulator:
    /// host memory) for `'a`.
    pub unsafe fn from_raw(ptr: u64, len: usize, dtype: Dtype) -> Dev<'a> {
        Dev { ptr, len, dtype, _alloc: PhantomData }
    }

    /// The elements `range` of this view. Panics when the range is out of bounds (a bug in the
    /// caller's offset arithmetic, never a data error).
    pub fn slice(self, range: std::ops::Range<usize>) -> Dev<'a> {
        assert!(range.start <= range.end && range.end <= self.len, "device view {range:?} out of 0..{}", self.len);
        Dev {
            ptr: self.ptr + (range.start * self.dtype.size()) as u64,
            len: range.end - range.start,
            dtype: self.dtype,
            _alloc: PhantomData,
        }
    }

    /// `len` elements from `offset`.
    pub fn at(self, offset: usize, len: usize) -> Dev<'a> {
        self.slice(offset..offset + len)
    }

    /// The same bytes as elements of `dtype` (the length rounded down to whole elements).
    pub fn cast(self, dtype: Dtype) -> Dev<'a> {
        Dev { ptr: self.ptr, len: self.bytes() / dtype.size(), dtype, _alloc: PhantomData }
    }

    /// Size in bytes.
    pub fn bytes(self) -> usize {
        self.len * self.dtype.size()
    }

    /// Checks that the view holds at least `n` elements of `dtype` (wrappers call this on every
    /// argument before a launch, so a shape bug is an error instead of a wild write).
    pub fn check(self, what: &str, n: usize, dtype: Dtype) -> Result<()> {
        if self.dtype != dtype || self.len < n {
            return Err(Error::Usage(format!(
                "{what}: expected at least {n} × {dtype:?}, got a device view of {} × {:?}",
                self.len, self.dtype
            )));
        }
        Ok(())
    }
}

/// An owned device allocation, freed on drop.
pub struct Buf {
    ptr: u64,
    len: usize,
    dtype: Dtype,
    api: Arc<dyn DeviceApi>,
    counters: Arc<Counters>,
}

impl Buf {
    /// A view of the whole buffer.
    pub fn dev(&self) -> Dev<'_> {
        Dev { ptr: self.ptr, len: self.len, dtype: self.dtype, _alloc: PhantomData }
    }
    /// A view of the first `len` elements.
    pub fn view(&self, len: usize) -> Dev<'_> {
        self.dev().at(0, len)
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if self.ptr != 0 {
            self.counters.frees.fetch_add(1, Relaxed);
            // SAFETY: `ptr` came from this device's alloc and is freed once.
            unsafe { self.api.free(self.ptr) };
        }
    }
}

impl std::fmt::Debug for Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buf({} × {:?} at {:#x})", self.len, self.dtype, self.ptr)
    }
}

/// Running totals of what the device was asked to do.
#[derive(Default)]
struct Counters {
    allocs: AtomicU64,
    alloc_bytes: AtomicU64,
    frees: AtomicU64,
    memsets: AtomicU64,
    to_device: AtomicU64,
    to_device_bytes: AtomicU64,
    to_host: AtomicU64,
    to_host_bytes: AtomicU64,
    on_device: AtomicU64,
    launches: AtomicU64,
    gemms: AtomicU64,
    syncs: AtomicU64,
}

/// A snapshot of a device's counters; [`Counts::since`] gives what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Allocations.
    pub allocs: u64,
    /// Bytes allocated.
    pub alloc_bytes: u64,
    /// Frees.
    pub frees: u64,
    /// Memory sets (zeroing).
    pub memsets: u64,
    /// Host → device copies.
    pub to_device: u64,
    /// Bytes copied host → device.
    pub to_device_bytes: u64,
    /// Device → host copies (each waits for the device).
    pub to_host: u64,
    /// Bytes copied device → host.
    pub to_host_bytes: u64,
    /// Device → device copies.
    pub on_device: u64,
    /// Kernel launches.
    pub launches: u64,
    /// GEMM calls (a strided batch is one).
    pub gemms: u64,
    /// Times the host waited for the device: explicit synchronisations and device → host
    /// copies.
    pub syncs: u64,
}

impl Counts {
    /// What happened between `before` and this snapshot.
    pub fn since(&self, before: &Counts) -> Counts {
        Counts {
            allocs: self.allocs - before.allocs,
            alloc_bytes: self.alloc_bytes - before.alloc_bytes,
            frees: self.frees - before.frees,
            memsets: self.memsets - before.memsets,
            to_device: self.to_device - before.to_device,
            to_device_bytes: self.to_device_bytes - before.to_device_bytes,
            to_host: self.to_host - before.to_host,
            to_host_bytes: self.to_host_bytes - before.to_host_bytes,
            on_device: self.on_device - before.on_device,
            launches: self.launches - before.launches,
            gemms: self.gemms - before.gemms,
            syncs: self.syncs - before.syncs,
        }
    }
}

/// A device the CUDA backend runs on: the GPU, or the host kernel emulator, behind one
/// interface, with the reduction scratch area every deterministic reduction shares and the
/// counts of what it was asked to do.
pub struct Gpu {
    api: Arc<dyn DeviceApi>,
    counters: Arc<Counters>,
    scratch: Mutex<Option<Buf>>,
    profiling: bool,
    /// Streaming multiprocessors (a device property; launch plans do not depend on it).
    pub sm_count: usize,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.describe())
    }
}

/// An open profiler range; closed on drop.
pub struct Range<'a> {
    gpu: Option<&'a Gpu>,
}

impl Drop for Range<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.gpu {
            g.api.range_pop();
        }
    }
}

impl Gpu {
    /// Opens GPU `ordinal` through the CUDA driver (see [`CudaDriver::open`]).
    pub fn open(ordinal: usize) -> Result<Arc<Gpu>> {
        Ok(Gpu::on(Arc::new(CudaDriver::open(ordinal)?)))
    }

    /// The backend on any device interface (the host kernel emulator in the tests).
    pub fn on(api: Arc<dyn DeviceApi>) -> Arc<Gpu> {
        let (profiling, sm_count) = (api.profiling(), api.info().sm_count);
        Arc::new(Gpu { api, counters: Arc::default(), scratch: Mutex::new(None), profiling, sm_count })
    }

    /// What the device is.
    pub fn info(&self) -> &DeviceInfo {
        self.api.info()
    }

    /// One line describing the device, for `device: ...` messages.
    pub fn describe(&self) -> String {
        let i = self.info();
        format!(
            "{} (compute {}.{}, {} SMs, {:.0} GiB, kernels: {})",
            i.name,
            i.cc.0,
            i.cc.1,
            i.sm_count,
            i.total_mem as f64 / (1u64 << 30) as f64,
            i.kernels
        )
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let c = &self.counters;
        Counts {
            allocs: c.allocs.load(Relaxed),
            alloc_bytes: c.alloc_bytes.load(Relaxed),
            frees: c.frees.load(Relaxed),
            memsets: c.memsets.load(Relaxed),
            to_device: c.to_device.load(Relaxed),
            to_device_bytes: c.to_device_bytes.load(Relaxed),
            to_host: c.to_host.load(Relaxed),
            to_host_bytes: c.to_host_bytes.load(Relaxed),
            on_device: c.on_device.load(Relaxed),
            launches: c.launches.load(Relaxed),
            gemms: c.gemms.load(Relaxed),
            syncs: c.syncs.load(Relaxed),
        }
    }

    /// A named range on the profiler's timeline (NVTX) until the guard drops; `name` is only
    /// called when a profiler listens.
    pub fn range(&self, name: impl FnOnce() -> String) -> Range<'_> {
        if self.profiling {
            self.api.range_push(&name());
            Range { gpu: Some(self) }
        } else {
            Range { gpu: None }
        }
    }

    /// Allocates `n` elements of `dtype`, uninitialised (on the emulator: every byte 0xff, NaN
    /// in every float type); `what` names the buffer in an out-of-memory error.
    pub fn alloc_uninit(&self, n: usize, dtype: Dtype, what: &str) -> Result<Buf> {
        let bytes = n * dtype.size();
        let ptr = self.api.alloc(bytes, what)?;
        self.counters.allocs.fetch_add(1, Relaxed);
        self.counters.alloc_bytes.fetch_add(bytes as u64, Relaxed);
        Ok(Buf { ptr, len: n, dtype, api: self.api.clone(), counters: self.counters.clone() })
    }

    /// Allocates `n` zeroed elements.
    pub fn alloc(&self, n: usize, dtype: Dtype, what: &str) -> Result<Buf> {
        let b = self.alloc_uninit(n, dtype, what)?;
        self.zero(b.dev())?;
        Ok(b)
    }

    /// Sets every byte of `d` to zero.
    pub fn zero(&self, d: Dev<'_>) -> Result<()> {
        self.fill_bytes(d, 0)
    }

    /// Sets every byte of `d` to `value` (0xff: NaN in every float type).
    pub fn fill_bytes(&self, d: Dev<'_>, value: u8) -> Result<()> {
        if d.len == 0 {
            return Ok(());
        }
        self.counters.memsets.fetch_add(1, Relaxed);
        // SAFETY: `d` is a live view of `d.bytes()` bytes.
        unsafe { self.api.memset(d.ptr, value, d.bytes()) }
    }

    /// Copies `src` into `dst` (same type; `dst` at least as long).
    pub fn copy(&self, dst: Dev<'_>, src: Dev<'_>) -> Result<()> {
        dst.check("copy destination", src.len, src.dtype)?;
        if src.len == 0 {
            return Ok(());
        }
        self.counters.on_device.fetch_add(1, Relaxed);
        // SAFETY: both views are live and `dst` holds `src.bytes()` bytes.
        unsafe { self.api.copy_on_device(dst.ptr, src.ptr, src.bytes()) }
    }

    /// Writes host bytes into `dst` (which must hold at least that many bytes).
    pub fn write_bytes(&self, dst: Dev<'_>, host: &[u8]) -> Result<()> {
        if dst.bytes() < host.len() {
            return Err(Error::Usage(format!("write of {} bytes into {dst:?}", host.len())));
        }
        if host.is_empty() {
            return Ok(());
        }
        self.counters.to_device.fetch_add(1, Relaxed);
        self.counters.to_device_bytes.fetch_add(host.len() as u64, Relaxed);
        // SAFETY: `dst` is a live view of at least `host.len()` bytes.
        unsafe { self.api.copy_to_device(dst.ptr, host) }
    }

    /// Writes host f32 values into `dst`, converting to its float type.
    pub fn write_f32(&self, dst: Dev<'_>, host: &[f32]) -> Result<()> {
        if dst.len < host.len() || !dst.dtype.is_float() {
            return Err(Error::Usage(format!("write of {} f32 into {dst:?}", host.len())));
        }
        match dst.dtype {
            Dtype::F32 => self.write_bytes(dst, bytemuck::cast_slice(host)),
            Dtype::Bf16 => {
                let v: Vec<half::bf16> = host.iter().map(|&x| half::bf16::from_f32(x)).collect();
                self.write_bytes(dst, bytemuck::cast_slice(&v))
            }
            _ => {
                let v: Vec<half::f16> = host.iter().map(|&x| half::f16::from_f32(x)).collect();
                self.write_bytes(dst, bytemuck::cast_slice(&v))
            }
        }
    }

    /// Writes host u32 values into a u32 view.
    pub fn write_u32(&self, dst: Dev<'_>, host: &[u32]) -> Result<()> {
        dst.check("u32 upload", host.len(), Dtype::U32)?;
        self.write_bytes(dst, bytemuck::cast_slice(host))
    }

    /// Writes host i64 values into an i64 view.
    pub fn write_i64(&self, dst: Dev<'_>, host: &[i64]) -> Result<()> {
        dst.check("i64 upload", host.len(), Dtype::I64)?;
        self.write_bytes(dst, bytemuck::cast_slice(host))
    }

    /// A new device buffer holding `host`, converted to `dtype` (a float type).
    pub fn upload_f32(&self, host: &[f32], dtype: Dtype, what: &str) -> Result<Buf> {
        let b = self.alloc_uninit(host.len(), dtype, what)?;
        self.write_f32(b.dev(), host)?;
        Ok(b)
    }

    /// Reads `src` back into host bytes (waits for the device).
    pub fn read_bytes(&self, src: Dev<'_>) -> Result<Vec<u8>> {
        let mut host = vec![0u8; src.bytes()];
        if host.is_empty() {
            return Ok(host);
        }
        self.counters.to_host.fetch_add(1, Relaxed);
        self.counters.to_host_bytes.fetch_add(host.len() as u64, Relaxed);
        self.counters.syncs.fetch_add(1, Relaxed);
        // SAFETY: `src` is a live view of `src.bytes()` bytes.
        unsafe { self.api.copy_to_host(&mut host, src.ptr) }?;
        Ok(host)
    }

    /// Reads a float view back as f32 (waits for the device).
    pub fn read_f32(&self, src: Dev<'_>) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(src)?;
        match src.dtype {
            Dtype::F32 => Ok(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes)),
            Dtype::Bf16 => {
                Ok(bytemuck::pod_collect_to_vec::<u8, half::bf16>(&bytes).into_iter().map(f32::from).collect())
            }
            Dtype::F16 => {
                Ok(bytemuck::pod_collect_to_vec::<u8, half::f16>(&bytes).into_iter().map(f32::from).collect())
            }
            other => Err(Error::Usage(format!("read_f32 of a {other:?} view"))),
        }
    }

    /// Reads a u32 view back.
    pub fn read_u32(&self, src: Dev<'_>) -> Result<Vec<u32>> {
        src.check("u32 download", src.len, Dtype::U32)?;
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(src)?))
    }

    /// Waits for all queued work; surfaces asynchronous kernel errors.
    pub fn sync(&self) -> Result<()> {
        self.counters.syncs.fetch_add(1, Relaxed);
        self.api.synchronize()
    }

    /// (free, total) device memory in bytes.
    pub fn mem_info(&self) -> Result<(usize, usize)> {
        self.api.mem_info()
    }

    /// A shared f32 scratch area of at least `n` elements, for the partial sums of the
    /// deterministic reductions (parameter gradients, norms). One op at a time uses it: a
    /// wrapper takes it, launches, and is done with it before it returns. Grows as needed.
    pub fn scratch(&self, n: usize) -> Result<Dev<'_>> {
        let mut s = self.scratch.lock().map_err(|_| Error::Cuda("scratch poisoned".into()))?;
        if s.as_ref().is_none_or(|b| b.len() < n) {
            // Queued kernels may still use the old buffer; freeing waits for them.
            *s = None;
            *s = Some(self.alloc_uninit(n.max(1 << 16), Dtype::F32, "reduction scratch")?);
        }
        let b = s.as_ref().map(|b| (b.ptr, b.len)).ok_or_else(|| Error::Cuda("scratch missing".into()))?;
        // SAFETY: the scratch buffer lives as long as `self` and only grows while no view of it
        // is in use (one op at a time, see above).
        Ok(unsafe { Dev::from_raw(b.0, b.1, Dtype::F32) })
    }

    /// Queues every launch of `plans` in order (a plan function's `Option<Launch>`, an array of
    /// launches, ...).
    pub fn run(&self, plans: impl IntoIterator<Item = Launch>) -> Result<()> {
        for p in plans {
            self.launch(&p)?;
        }
        Ok(())
    }

    /// Queues a kernel launch (named on the profiler's timeline when one listens).
    pub fn launch(&self, plan: &Launch) -> Result<()> {
        let _r = self.range(|| plan.name());
        self.counters.launches.fetch_add(1, Relaxed);
        // SAFETY: plans are built from checked views (`ops::*`), which borrow live buffers of
        // this device, and `Launch::new` matched the arguments to the kernel.
        unsafe { self.api.launch(plan) }
    }

    /// Queues a GEMM (see [`super::gemm::gemm`], which checks the operands).
    ///
    /// # Safety
    /// The operands cover every element the product reads or writes.
    pub unsafe fn gemm_call(&self, call: &GemmCall) -> Result<()> {
        let _r = self.range(|| format!("gemm {}x{}x{} batch {}", call.args.m, call.args.n, call.args.k, call.batch));
        self.counters.gemms.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract.
        unsafe { self.api.gemm(call) }
    }
}
