//! The GPU itself: probing for a usable one without panicking, opening it, loading the kernels
//! (nvcc-built fatbins, or NVRTC from the embedded sources), and device memory.
//!
//! Memory is handled like C pointers in llm.c: [`Buf`] owns an allocation, [`Dev`] is a copyable
//! view (address, element count, element type) that the op wrappers take, so a flat parameter
//! or gradient buffer can be cut into per-tensor views without borrow gymnastics. Everything runs
//! on one stream (the context's default stream), so launches, cuBLAS calls and copies are
//! ordered without events; cudarc's event tracking is switched off.

use crate::{Error, Result};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{result as dr, sys, CudaContext, CudaFunction, CudaModule, CudaStream, LaunchArgs, PushKernelArg};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

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

/// A view of device memory: address, element count and element type. Copyable like a pointer;
/// it does not keep the allocation alive (the owning [`Buf`] must outlive its use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dev {
    /// Device address of element 0.
    pub ptr: u64,
    /// Number of elements.
    pub len: usize,
    /// Element type.
    pub dtype: Dtype,
}

impl Dev {
    /// The elements `range` of this view. Panics when the range is out of bounds (a bug in the
    /// caller's offset arithmetic, never a data error).
    pub fn slice(self, range: std::ops::Range<usize>) -> Dev {
        assert!(range.start <= range.end && range.end <= self.len, "device view {range:?} out of 0..{}", self.len);
        Dev {
            ptr: self.ptr + (range.start * self.dtype.size()) as u64,
            len: range.end - range.start,
            dtype: self.dtype,
        }
    }

    /// `len` elements from `offset`.
    pub fn at(self, offset: usize, len: usize) -> Dev {
        self.slice(offset..offset + len)
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
    ctx: Arc<CudaContext>,
}

impl Buf {
    /// A view of the whole buffer.
    pub fn dev(&self) -> Dev {
        Dev { ptr: self.ptr, len: self.len, dtype: self.dtype }
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
            // Errors cannot be returned from drop; a failed free leaks, which the driver reclaims
            // when the context goes.
            let _ = self.ctx.bind_to_thread();
            // SAFETY: `ptr` came from malloc_sync in this context and is freed once; the legacy
            // default stream orders this after every launch that used it.
            let _ = unsafe { dr::free_sync(self.ptr) };
        }
    }
}

impl std::fmt::Debug for Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buf({} × {:?} at {:#x})", self.len, self.dtype, self.ptr)
    }
}

/// What a probe found: a usable GPU, or why there is none.
#[derive(Clone, Debug)]
pub enum Probe {
    /// CUDA driver, cuBLAS and at least one device are present.
    Usable {
        /// Number of CUDA devices.
        devices: usize,
    },
    /// No usable GPU; the reason in one line.
    Unusable(String),
}

/// Checks for a usable GPU without panicking: cudarc's dynamic loading panics on the first call
/// into a missing library, so the libraries are looked for first and the driver is touched only
/// when they are all there.
pub fn probe() -> Probe {
    // SAFETY: these only try to dlopen the libraries by name.
    if !unsafe { sys::is_culib_present() } {
        return Probe::Unusable("no CUDA driver (libcuda) found".into());
    }
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Probe::Unusable("the CUDA driver is present but cuBLAS (libcublas) is not".into());
    }
    if !unsafe { cudarc::cublaslt::sys::is_culib_present() } {
        return Probe::Unusable("the CUDA driver is present but cuBLASLt (libcublasLt) is not".into());
    }
    if KERNEL_FATBINS.is_empty() && !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Probe::Unusable("this build has no compiled kernels and NVRTC (libnvrtc) is missing".into());
    }
    // The libraries load; a driver error from here on is an error, not a panic.
    match std::panic::catch_unwind(|| {
        dr::init()?;
        CudaContext::device_count()
    }) {
        Ok(Ok(n)) if n > 0 => Probe::Usable { devices: n as usize },
        Ok(Ok(_)) => Probe::Unusable("the CUDA driver reports no devices".into()),
        Ok(Err(e)) => Probe::Unusable(format!("the CUDA driver failed to start: {}", driver_msg(&e))),
        Err(_) => Probe::Unusable("the CUDA driver could not be loaded".into()),
    }
}

/// A driver error as `NAME: description`.
pub fn driver_msg(e: &dr::DriverError) -> String {
    let name = e.error_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|_| format!("{:?}", e.0));
    let what = e.error_string().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{name}: {what}")
}

/// One GPU: its context and stream, the cuBLAS handle, and the loaded kernels.
pub struct Gpu {
    /// The device's primary context.
    pub ctx: Arc<CudaContext>,
    /// The one stream everything runs on.
    pub stream: Arc<CudaStream>,
    /// cuBLAS, bound to `stream`.
    pub blas: CudaBlas,
    /// cuBLAS workspace (bytes), bound to the handle.
    _workspace: Buf,
    modules: Modules,
    funcs: Mutex<HashMap<String, CudaFunction>>,
    scratch: Mutex<Option<Buf>>,
    /// Device name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Compute capability (major, minor).
    pub cc: (i32, i32),
    /// Streaming multiprocessors.
    pub sm_count: usize,
    /// Total device memory in bytes.
    pub total_mem: usize,
    /// Whether the kernels came from nvcc fatbins (false: compiled with NVRTC at start-up).
    pub precompiled: bool,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.describe())
    }
}

/// cuBLAS workspace: 32 MiB, what cuBLAS recommends for Hopper.
const CUBLAS_WORKSPACE: usize = 32 << 20;

impl Gpu {
    /// Opens device `ordinal`: probes first (never panics when CUDA is missing), then creates
    /// the context, the cuBLAS handle, and loads every kernel module.
    pub fn open(ordinal: usize) -> Result<Arc<Gpu>> {
        match probe() {
            Probe::Unusable(why) => return Err(Error::Cuda(why)),
            Probe::Usable { devices } if ordinal >= devices => {
                return Err(Error::Cuda(format!("there is no CUDA device {ordinal} ({devices} present)")))
            }
            Probe::Usable { .. } => {}
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| cuda_err("creating the CUDA context", &e))?;
        // SAFETY: everything runs on one stream, which orders all reads and writes; the
        // per-buffer events cudarc would record are pure overhead here.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let name = ctx.name().map_err(|e| cuda_err("reading the device name", &e))?;
        let cc = ctx.compute_capability().map_err(|e| cuda_err("reading the compute capability", &e))?;
        let sm_count = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| cuda_err("reading the multiprocessor count", &e))? as usize;
        let (_, total_mem) = ctx.mem_get_info().map_err(|e| cuda_err("reading the memory size", &e))?;
        if cc.0 < 8 {
            return Err(Error::Cuda(format!(
                "{name} has compute capability {}.{}; xlt's kernels need 8.0 or newer (Ampere, Hopper)",
                cc.0, cc.1
            )));
        }
        let blas = CudaBlas::new(stream.clone())
            .map_err(|err| Error::Cublas { what: "creating the cuBLAS handle".into(), err })?;
        let workspace = alloc_raw(&ctx, CUBLAS_WORKSPACE, Dtype::F32, "the cuBLAS workspace")?;
        // SAFETY: the workspace outlives the handle (both live in this struct; the handle is
        // dropped first, fields drop in declaration order).
        unsafe {
            cudarc::cublas::sys::cublasSetWorkspace_v2(*blas.handle(), workspace.ptr as *mut _, CUBLAS_WORKSPACE)
                .result()
                .map_err(|err| Error::Cublas { what: "setting the cuBLAS workspace".into(), err })?;
        }
        // Keep split-K reductions of bf16/f16 products in f32 (accuracy over a little speed).
        // SAFETY: a valid handle; the mode is a plain enum value.
        unsafe {
            use cudarc::cublas::sys::cublasMath_t;
            cudarc::cublas::sys::cublasSetMathMode(
                *blas.handle(),
                cublasMath_t::CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION,
            )
            .result()
            .map_err(|err| Error::Cublas { what: "setting the cuBLAS math mode".into(), err })?;
        }
        let (modules, precompiled) = load_modules(&ctx, cc)?;
        Ok(Arc::new(Gpu {
            ctx,
            stream,
            blas,
            _workspace: workspace,
            modules,
            funcs: Mutex::new(HashMap::new()),
            scratch: Mutex::new(None),
            name,
            cc,
            sm_count,
            total_mem,
            precompiled,
        }))
    }

    /// One line describing the device, for `device: ...` messages.
    pub fn describe(&self) -> String {
        format!(
            "{} (compute {}.{}, {} SMs, {:.0} GiB{})",
            self.name,
            self.cc.0,
            self.cc.1,
            self.sm_count,
            self.total_mem as f64 / (1u64 << 30) as f64,
            if self.precompiled { "" } else { ", kernels compiled with NVRTC" }
        )
    }

    /// The kernel `name` (e.g. `"layernorm_forward_bf16"`), loaded once and cached.
    pub fn func(&self, name: &str) -> Result<CudaFunction> {
        let mut funcs = self.funcs.lock().map_err(|_| Error::Cuda("kernel cache poisoned".into()))?;
        if let Some(f) = funcs.get(name) {
            return Ok(f.clone());
        }
        for (_, m) in &self.modules {
            if let Ok(f) = m.load_function(name) {
                funcs.insert(name.to_string(), f.clone());
                return Ok(f);
            }
        }
        Err(Error::Cuda(format!("kernel `{name}` is in none of the loaded modules")))
    }

    /// The kernel `op` instantiated for `dtype` (`op_bf16`).
    pub fn kernel(&self, op: &str, dtype: Dtype) -> Result<CudaFunction> {
        self.func(&format!("{op}_{}", dtype.suffix()))
    }

    /// A shared f32 scratch area of at least `n` elements, for the partial sums of the
    /// deterministic reductions (parameter gradients, norms). One op at a time uses it: a
    /// wrapper takes it, launches, and is done with it before it returns. Grows as needed.
    pub fn scratch(&self, n: usize) -> Result<Dev> {
        let mut s = self.scratch.lock().map_err(|_| Error::Cuda("scratch poisoned".into()))?;
        if s.as_ref().is_none_or(|b| b.len() < n) {
            // Queued kernels may still use the old buffer: wait for them before freeing it.
            self.sync()?;
            *s = None;
            *s = Some(alloc_raw(&self.ctx, n.max(1 << 16) * 4, Dtype::F32, "reduction scratch")?);
        }
        Ok(s.as_ref().map(|b| b.dev()).expect("set just above"))
    }

    /// Runs a [`Launch`] plan on this GPU's stream.
    ///
    /// # Safety
    /// As [`launch`]: the plan's arguments must match the kernel's parameters and every pointer
    /// must be a live device view large enough for the launch (plan builders check their views).
    pub unsafe fn launch_plan(&self, p: &Launch) -> Result<()> {
        let f = self.func(&p.name)?;
        let mut l = self.builder(&f);
        for a in &p.args {
            match a {
                KArg::Ptr(v) | KArg::U64(v) => l.arg(v),
                KArg::I32(v) => l.arg(v),
                KArg::F32(v) => l.arg(v),
            };
        }
        let cfg = cudarc::driver::LaunchConfig { grid_dim: p.grid, block_dim: p.block, shared_mem_bytes: p.shared };
        // SAFETY: the caller guarantees the plan matches the kernel (see above).
        unsafe { launch(&mut l, cfg, &p.name) }
    }

    /// A launch builder for `f` on this GPU's stream.
    pub fn builder<'a>(&'a self, f: &'a CudaFunction) -> LaunchArgs<'a> {
        self.stream.launch_builder(f)
    }

    /// Allocates `n` zeroed elements; `what` names the buffer in an out-of-memory error.
    pub fn alloc(&self, n: usize, dtype: Dtype, what: &str) -> Result<Buf> {
        let b = alloc_raw(&self.ctx, n * dtype.size(), dtype, what)?;
        self.zero(b.dev())?;
        Ok(b)
    }

    /// Makes this GPU's context current on the calling thread (the raw driver and cuBLAS calls
    /// act on the current context; cudarc's launches bind it themselves).
    pub fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| cuda_err("binding the context", &e))
    }

    /// Sets every byte of `d` to zero.
    pub fn zero(&self, d: Dev) -> Result<()> {
        if d.len == 0 {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: `d` is a live view of device memory of `d.bytes()` bytes.
        unsafe { dr::memset_d8_async(d.ptr, 0, d.bytes(), self.stream.cu_stream()) }
            .map_err(|e| cuda_err("clearing device memory", &e))
    }

    /// Copies `src` into `dst` (same type; `dst` at least as long).
    pub fn copy(&self, dst: Dev, src: Dev) -> Result<()> {
        dst.check("copy destination", src.len, src.dtype)?;
        if src.len == 0 {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: both views are live and `dst` holds `src.bytes()` bytes.
        unsafe { dr::memcpy_dtod_async(dst.ptr, src.ptr, src.bytes(), self.stream.cu_stream()) }
            .map_err(|e| cuda_err("copying device memory", &e))
    }

    /// Writes host f32 values into `dst`, converting to its float type.
    pub fn write_f32(&self, dst: Dev, host: &[f32]) -> Result<()> {
        if dst.len < host.len() || !dst.dtype.is_float() {
            return Err(Error::Usage(format!("write of {} f32 into {:?}", host.len(), dst)));
        }
        match dst.dtype {
            Dtype::F32 => self.write_raw(dst, host),
            Dtype::Bf16 => self.write_raw(dst, &host.iter().map(|&x| half::bf16::from_f32(x)).collect::<Vec<_>>()),
            _ => self.write_raw(dst, &host.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>()),
        }
    }

    /// Writes host u32 values into a u32 view.
    pub fn write_u32(&self, dst: Dev, host: &[u32]) -> Result<()> {
        dst.check("u32 upload", host.len(), Dtype::U32)?;
        self.write_raw(dst, host)
    }

    /// Writes host i64 values into an i64 view.
    pub fn write_i64(&self, dst: Dev, host: &[i64]) -> Result<()> {
        dst.check("i64 upload", host.len(), Dtype::I64)?;
        self.write_raw(dst, host)
    }

    fn write_raw<T>(&self, dst: Dev, host: &[T]) -> Result<()> {
        if host.is_empty() {
            return Ok(());
        }
        self.ctx.bind_to_thread().map_err(|e| cuda_err("binding the context", &e))?;
        // SAFETY: `dst` holds at least `size_of_val(host)` bytes (checked by the callers); the
        // synchronous copy is ordered after earlier work on the legacy default stream.
        unsafe { dr::memcpy_htod_sync(dst.ptr, host) }.map_err(|e| cuda_err("copying to the GPU", &e))
    }

    /// A new device buffer holding `host`, converted to `dtype` (a float type).
    pub fn upload_f32(&self, host: &[f32], dtype: Dtype, what: &str) -> Result<Buf> {
        let b = self.alloc(host.len(), dtype, what)?;
        self.write_f32(b.dev(), host)?;
        Ok(b)
    }

    /// Reads a float view back as f32 (waits for the GPU).
    pub fn read_f32(&self, src: Dev) -> Result<Vec<f32>> {
        match src.dtype {
            Dtype::F32 => self.read_raw::<f32>(src),
            Dtype::Bf16 => Ok(self.read_raw::<half::bf16>(src)?.into_iter().map(f32::from).collect()),
            Dtype::F16 => Ok(self.read_raw::<half::f16>(src)?.into_iter().map(f32::from).collect()),
            other => Err(Error::Usage(format!("read_f32 of a {other:?} view"))),
        }
    }

    /// Reads a u32 view back.
    pub fn read_u32(&self, src: Dev) -> Result<Vec<u32>> {
        src.check("u32 download", src.len, Dtype::U32)?;
        self.read_raw(src)
    }

    fn read_raw<T: Copy + Default>(&self, src: Dev) -> Result<Vec<T>> {
        let mut host = vec![T::default(); src.len];
        if host.is_empty() {
            return Ok(host);
        }
        self.ctx.bind_to_thread().map_err(|e| cuda_err("binding the context", &e))?;
        // SAFETY: `src` is a live view of `src.len` elements of T (its dtype's size).
        unsafe { dr::memcpy_dtoh_sync(&mut host, src.ptr) }.map_err(|e| cuda_err("copying from the GPU", &e))?;
        Ok(host)
    }

    /// Waits for all queued work; surfaces asynchronous kernel errors.
    pub fn sync(&self) -> Result<()> {
        self.stream.synchronize().map_err(|e| cuda_err("waiting for the GPU", &e))
    }

    /// (free, total) device memory in bytes.
    pub fn mem_info(&self) -> Result<(usize, usize)> {
        self.ctx.mem_get_info().map_err(|e| cuda_err("reading free memory", &e))
    }
}

/// A driver error during `what` as a crate error.
pub fn cuda_err(what: &str, e: &dr::DriverError) -> Error {
    if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        return Error::OutOfMemory { what: what.to_string(), bytes: 0 };
    }
    Error::Driver { what: what.to_string(), err: *e }
}

/// Allocates `bytes` bytes (uninitialised) in `ctx`.
fn alloc_raw(ctx: &Arc<CudaContext>, bytes: usize, dtype: Dtype, what: &str) -> Result<Buf> {
    ctx.bind_to_thread().map_err(|e| cuda_err("binding the context", &e))?;
    let ptr = if bytes == 0 {
        0
    } else {
        // SAFETY: plain allocation in the current context.
        unsafe { dr::malloc_sync(bytes) }.map_err(|e| match cuda_err(what, &e) {
            Error::OutOfMemory { what, .. } => Error::OutOfMemory { what, bytes },
            other => other,
        })?
    };
    Ok(Buf { ptr, len: bytes / dtype.size(), dtype, ctx: ctx.clone() })
}

/// The loaded kernel modules, by kernel file name.
type Modules = Vec<(String, Arc<CudaModule>)>;

/// Loads one module per kernel file: the nvcc fatbins when the build had nvcc, else the sources
/// compiled with NVRTC for this device. Returns the modules and whether they were precompiled.
fn load_modules(ctx: &Arc<CudaContext>, cc: (i32, i32)) -> Result<(Modules, bool)> {
    let mut modules = Vec::new();
    if !KERNEL_FATBINS.is_empty() {
        for (name, bin) in KERNEL_FATBINS {
            let m = ctx
                .load_module(cudarc::nvrtc::Ptx::from_binary(bin.to_vec()))
                .map_err(|e| cuda_err(&format!("loading kernels/{name}"), &e))?;
            modules.push((name.to_string(), m));
        }
        return Ok((modules, true));
    }
    let arch: &'static str = match cc {
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, _) => "compute_90",
        (10, _) => "compute_100",
        (12, _) => "compute_120",
        _ => "compute_80",
    };
    for (name, ptx) in compile_with_nvrtc(arch)? {
        let m = ctx.load_module(ptx).map_err(|e| cuda_err(&format!("loading kernels/{name}"), &e))?;
        modules.push((name, m));
    }
    Ok((modules, false))
}

/// Compiles every embedded `kernels/*.cu` source with NVRTC for `arch` (e.g. `"compute_90"`):
/// the fallback when the build had no nvcc. Needs libnvrtc, not a GPU. Returns (file name, PTX).
pub fn compile_with_nvrtc(arch: &'static str) -> Result<Vec<(String, cudarc::nvrtc::Ptx)>> {
    // SAFETY: only tries to dlopen the library by name.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(Error::Cuda("NVRTC (libnvrtc) was not found".into()));
    }
    let includes = nvrtc_include_dirs();
    if includes.is_empty() {
        return Err(Error::Cuda(
            "NVRTC needs the CUDA headers (cuda_bf16.h, cuda_fp16.h) and none were found: set XLT_CUDA_INCLUDE or \
             CUDA_HOME, or build with nvcc (tools/install-nvcc.sh) so the kernels are compiled ahead of time"
                .into(),
        ));
    }
    let mut out = Vec::new();
    for (name, src) in KERNEL_SOURCES.iter().filter(|(n, _)| n.ends_with(".cu")) {
        // NVRTC has no file system: splice the kernels' own headers in place of their includes.
        let full = splice_headers(src, &mut Vec::new());
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some(arch),
            options: vec!["-std=c++17".into()],
            include_paths: includes.clone(),
            name: Some(name.to_string()),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(full, opts)
            .map_err(|e| Error::Cuda(format!("NVRTC could not compile kernels/{name}: {e:?}")))?;
        out.push((name.to_string(), ptx));
    }
    Ok(out)
}

/// `src` with every `#include "<name>.cuh"` of an embedded header replaced by that header's text,
/// recursively, each header once (`seen` holds those already spliced).
fn splice_headers(src: &str, seen: &mut Vec<&'static str>) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let header = line
            .trim()
            .strip_prefix("#include \"")
            .and_then(|r| r.strip_suffix('"'))
            .and_then(|h| KERNEL_SOURCES.iter().find(|(n, _)| *n == h && n.ends_with(".cuh")));
        match header {
            Some((h, _)) if seen.contains(h) => {}
            Some((h, text)) => {
                seen.push(h);
                out.push_str(&splice_headers(text, seen));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Folders holding the CUDA headers for NVRTC: `XLT_CUDA_INCLUDE`, `$CUDA_HOME/include`,
/// `$CUDA_PATH/include`, `/usr/local/cuda/include`, and `../include` of every `LD_LIBRARY_PATH`
/// entry (the layout of NVIDIA's Python wheels, whose `lib/` holds libnvrtc), each kept when it
/// has `cuda_bf16.h`, with its `cccl/` subfolder when there is one.
fn nvrtc_include_dirs() -> Vec<String> {
    use std::path::PathBuf;
    let mut cands: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("XLT_CUDA_INCLUDE") {
        cands.push(p.into());
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(h) = std::env::var_os(var) {
            cands.push(PathBuf::from(h).join("include"));
        }
    }
    cands.push("/usr/local/cuda/include".into());
    if let Some(lp) = std::env::var_os("LD_LIBRARY_PATH") {
        cands.extend(std::env::split_paths(&lp).map(|d| d.join("..").join("include")));
    }
    let mut dirs = Vec::new();
    for c in cands {
        if c.join("cuda_bf16.h").is_file() {
            let s = c.display().to_string();
            if !dirs.contains(&s) {
                dirs.push(s);
                if c.join("cccl").is_dir() {
                    dirs.push(c.join("cccl").display().to_string());
                }
            }
        }
    }
    dirs
}

/// One kernel argument of a [`Launch`], by value, in the kernel's parameter type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KArg {
    /// A device address (`T*`).
    Ptr(u64),
    /// `int`
    I32(i32),
    /// `float`
    F32(f32),
    /// `unsigned long long` (seeds)
    U64(u64),
}

impl KArg {
    /// Size of the argument in bytes, as the kernel's parameter list declares it.
    pub fn size(&self) -> usize {
        match self {
            KArg::Ptr(_) | KArg::U64(_) => 8,
            KArg::I32(_) | KArg::F32(_) => 4,
        }
    }

    /// The argument's bytes, for launchers that take an array of pointers to values.
    pub fn as_ptr(&self) -> *const std::ffi::c_void {
        match self {
            KArg::Ptr(v) | KArg::U64(v) => v as *const u64 as *const std::ffi::c_void,
            KArg::I32(v) => v as *const i32 as *const std::ffi::c_void,
            KArg::F32(v) => v as *const f32 as *const std::ffi::c_void,
        }
    }
}

/// A kernel launch as data: name, grid, block, dynamic shared memory and arguments. Wrappers
/// that build their launch with a pure function (checked views in, `Launch` out) run it with
/// [`Gpu::launch_plan`]; the same plan can be checked against the kernel's PTX parameters and run
/// by the host kernel emulator in the tests, without a GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// The kernel's C name (`flash_attention_forward_hs64_bf16`).
    pub name: String,
    /// Blocks (x, y, z).
    pub grid: (u32, u32, u32),
    /// Threads per block (x, y, z).
    pub block: (u32, u32, u32),
    /// Dynamic shared memory in bytes.
    pub shared: u32,
    /// Arguments in the kernel's parameter order.
    pub args: Vec<KArg>,
}

/// A 1-D launch of `n` threads in blocks of `block`.
pub fn grid_1d(n: usize, block: u32) -> cudarc::driver::LaunchConfig {
    cudarc::driver::LaunchConfig {
        grid_dim: (n.div_ceil(block as usize).max(1) as u32, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A launch of `blocks` blocks of `block` threads with `shmem` bytes of dynamic shared memory.
pub fn grid_blocks(blocks: usize, block: u32, shmem: u32) -> cudarc::driver::LaunchConfig {
    cudarc::driver::LaunchConfig {
        grid_dim: (blocks.max(1) as u32, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: shmem,
    }
}

/// Launches `args` (already pushed) with `cfg`, naming `op` in an error.
///
/// # Safety
/// The arguments must match the kernel's parameters in number, order and type, and every
/// pointer must be a live device view large enough for the launch (the wrappers check sizes
/// with [`Dev::check`] first).
pub unsafe fn launch(args: &mut LaunchArgs<'_>, cfg: cudarc::driver::LaunchConfig, op: &str) -> Result<()> {
    args.launch(cfg).map(|_| ()).map_err(|e| cuda_err(&format!("launching {op}"), &e))
}
