//! The device interface on a real GPU: the CUDA driver and cuBLAS through `cudarc`. Probing for
//! a usable GPU never panics (the libraries are looked for by name before the driver is
//! touched); opening one loads every kernel module (nvcc fatbins embedded by `build.rs`, or the
//! embedded sources compiled with NVRTC) and resolves every entry point of
//! [`super::kernels::Kernel`] into a flat table, so a launch is a table index and one
//! `cuLaunchKernel`. Everything runs on the context's default stream, which orders launches,
//! cuBLAS calls and copies without events. With `XLT_NVTX=1` (and libnvToolsExt present) every
//! launch, GEMM and encoder layer is a named NVTX range, so an `nsys` timeline reads as the
//! encoder's op list.

use super::api::{DeviceApi, DeviceInfo, GemmCall};
use super::device::Dtype;
use super::kernels::Kernel;
use super::launch::{Launch, MAX_ARGS};
use crate::{Error, Result};
use cudarc::cublas::sys::{self as cb, cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{result as dr, sys, CudaContext, CudaFunction, CudaModule, CudaStream};
use std::ffi::c_void;
use std::sync::Arc;

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

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

/// A driver error during `what` as a crate error (out of memory as [`Error::OutOfMemory`]).
pub fn cuda_err(what: &str, e: &dr::DriverError) -> Error {
    if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        return Error::OutOfMemory { what: what.to_string(), bytes: 0 };
    }
    Error::Driver { what: what.to_string(), err: *e }
}

/// cuBLAS workspace: 32 MiB, what cuBLAS recommends for Hopper.
const CUBLAS_WORKSPACE: usize = 32 << 20;

/// A raw device allocation freed on drop (the cuBLAS workspace).
struct RawAlloc {
    ptr: u64,
    ctx: Arc<CudaContext>,
}

impl Drop for RawAlloc {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: allocated by malloc_sync in this context, freed once.
        let _ = unsafe { dr::free_sync(self.ptr) };
    }
}

/// One GPU through the CUDA driver and cuBLAS.
pub struct CudaDriver {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Declared before the workspace: the handle is destroyed before its workspace is freed.
    blas: CudaBlas,
    _workspace: RawAlloc,
    /// The loaded modules (kept alive for the functions).
    _modules: Vec<Arc<CudaModule>>,
    /// [`Kernel::SLOTS`] entries: every (kernel, dtype) entry point, resolved at open.
    funcs: Vec<Option<CudaFunction>>,
    /// NVTX ranges on (XLT_NVTX=1 and libnvToolsExt present).
    nvtx: bool,
    info: DeviceInfo,
}

impl CudaDriver {
    /// Opens device `ordinal`: probes first (never panics when CUDA is missing), then creates
    /// the context and the cuBLAS handle, loads every kernel module and resolves every entry
    /// point (a missing one is an error here, not at its first launch).
    pub fn open(ordinal: usize) -> Result<CudaDriver> {
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
        ctx.bind_to_thread().map_err(|e| cuda_err("binding the context", &e))?;
        // SAFETY: plain allocation in the current context.
        let ws = unsafe { dr::malloc_sync(CUBLAS_WORKSPACE) }.map_err(|e| cuda_err("the cuBLAS workspace", &e))?;
        let workspace = RawAlloc { ptr: ws, ctx: ctx.clone() };
        // SAFETY: the workspace outlives the handle (see the field order).
        unsafe {
            cb::cublasSetWorkspace_v2(*blas.handle(), ws as *mut c_void, CUBLAS_WORKSPACE)
                .result()
                .map_err(|err| Error::Cublas { what: "setting the cuBLAS workspace".into(), err })?;
        }
        // Keep split-K reductions of bf16/f16 products in f32 (accuracy over a little speed).
        // SAFETY: a valid handle; the mode is a plain enum value.
        unsafe {
            cb::cublasSetMathMode(*blas.handle(), cb::cublasMath_t::CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)
                .result()
                .map_err(|err| Error::Cublas { what: "setting the cuBLAS math mode".into(), err })?;
        }
        let (modules, precompiled) = load_modules(&ctx, cc)?;
        let mut funcs: Vec<Option<CudaFunction>> = vec![None; Kernel::SLOTS];
        for (kernel, dtype, cname) in Kernel::entry_points() {
            let Some((_, m)) = modules.iter().find(|(file, _)| file == kernel.file()) else {
                return Err(Error::Cuda(format!("kernels/{} was not loaded", kernel.file())));
            };
            let f = m
                .load_function(&cname)
                .map_err(|e| cuda_err(&format!("finding kernel `{cname}` in kernels/{}", kernel.file()), &e))?;
            funcs[kernel.slot(dtype).expect("entry points have slots")] = Some(f);
        }
        // SAFETY: only tries to dlopen the library by name.
        let nvtx =
            std::env::var("XLT_NVTX").is_ok_and(|v| v == "1") && unsafe { cudarc::nvtx::sys::is_culib_present() };
        let kernels = if precompiled { "nvcc fatbins" } else { "compiled with NVRTC" }.to_string();
        Ok(CudaDriver {
            ctx,
            stream,
            blas,
            _workspace: workspace,
            _modules: modules.into_iter().map(|(_, m)| m).collect(),
            funcs,
            nvtx,
            info: DeviceInfo { name, cc, sm_count, total_mem, kernels },
        })
    }

    fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| cuda_err("binding the context", &e))
    }
}

impl DeviceApi for CudaDriver {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn alloc(&self, bytes: usize, what: &str) -> Result<u64> {
        if bytes == 0 {
            return Ok(0);
        }
        self.bind()?;
        // SAFETY: plain allocation in the current context.
        unsafe { dr::malloc_sync(bytes) }.map_err(|e| match cuda_err(what, &e) {
            Error::OutOfMemory { what, .. } => Error::OutOfMemory { what, bytes },
            other => other,
        })
    }

    unsafe fn free(&self, ptr: u64) {
        if ptr == 0 {
            return;
        }
        // Errors cannot be returned from a drop; a failed free leaks, which the driver reclaims
        // when the context goes.
        let _ = self.ctx.bind_to_thread();
        // SAFETY: the caller's contract; cuMemFree waits for the work that uses it.
        let _ = unsafe { dr::free_sync(ptr) };
    }

    unsafe fn memset(&self, ptr: u64, value: u8, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the caller's contract.
        unsafe { dr::memset_d8_async(ptr, value, bytes, self.stream.cu_stream()) }
            .map_err(|e| cuda_err("setting device memory", &e))
    }

    unsafe fn copy_to_device(&self, dst: u64, src: &[u8]) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the caller's contract; the synchronous copy from pageable memory is ordered
        // after the work queued before it.
        unsafe { dr::memcpy_htod_sync(dst, src) }.map_err(|e| cuda_err("copying to the GPU", &e))
    }

    unsafe fn copy_to_host(&self, dst: &mut [u8], src: u64) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the caller's contract.
        unsafe { dr::memcpy_dtoh_sync(dst, src) }.map_err(|e| cuda_err("copying from the GPU", &e))
    }

    unsafe fn copy_on_device(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the caller's contract.
        unsafe { dr::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream()) }
            .map_err(|e| cuda_err("copying device memory", &e))
    }

    unsafe fn launch(&self, p: &Launch) -> Result<()> {
        let f = p
            .kernel
            .slot(p.dtype)
            .and_then(|s| self.funcs[s].as_ref())
            .ok_or_else(|| Error::Cuda(format!("kernel `{}` is not loaded", p.name())))?;
        let mut params = [std::ptr::null_mut::<c_void>(); MAX_ARGS];
        for (slot, a) in params.iter_mut().zip(p.args()) {
            *slot = a.as_ptr() as *mut c_void;
        }
        let g = p.grid;
        self.bind()?;
        // SAFETY: `Launch::new` matched the arguments to the kernel's parameters; the caller
        // guarantees the pointers (see the trait).
        unsafe {
            dr::launch_kernel(
                f.cu_function(),
                g.blocks,
                (g.threads, 1, 1),
                g.shared,
                self.stream.cu_stream(),
                &mut params[..p.args().len()],
            )
        }
        .map_err(|e| cuda_err(&format!("launching {}", p.name()), &e))
    }

    unsafe fn gemm(&self, call: &GemmCall) -> Result<()> {
        let cm = &call.args;
        let op = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
        let (ta, tc) = (cuda_type(call.ab)?, cuda_type(call.out)?);
        let i =
            |x: usize| -> Result<i32> { i32::try_from(x).map_err(|_| Error::Usage(format!("gemm size {x} > i32"))) };
        self.bind()?;
        let handle = *self.blas.handle();
        let compute = cublasComputeType_t::CUBLAS_COMPUTE_32F;
        let algo = cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT;
        let (alpha, beta) = (&call.alpha as *const f32 as *const c_void, &call.beta as *const f32 as *const c_void);
        let (a, b, c) = (call.a as *const c_void, call.b as *const c_void, call.c as *mut c_void);
        // SAFETY: the caller guarantees the operands (see the trait); alpha and beta are host
        // f32 (the handle's default pointer mode) matching the f32 compute type.
        let status = unsafe {
            if call.batch == 1 {
                cb::cublasGemmEx(
                    handle,
                    op(cm.transa),
                    op(cm.transb),
                    i(cm.m)?,
                    i(cm.n)?,
                    i(cm.k)?,
                    alpha,
                    a,
                    ta,
                    i(cm.lda)?,
                    b,
                    ta,
                    i(cm.ldb)?,
                    beta,
                    c,
                    tc,
                    i(cm.ldc)?,
                    compute,
                    algo,
                )
            } else {
                cb::cublasGemmStridedBatchedEx(
                    handle,
                    op(cm.transa),
                    op(cm.transb),
                    i(cm.m)?,
                    i(cm.n)?,
                    i(cm.k)?,
                    alpha,
                    a,
                    ta,
                    i(cm.lda)?,
                    cm.stride_a as i64,
                    b,
                    ta,
                    i(cm.ldb)?,
                    cm.stride_b as i64,
                    beta,
                    c,
                    tc,
                    i(cm.ldc)?,
                    cm.stride_c as i64,
                    i(call.batch)?,
                    compute,
                    algo,
                )
            }
        };
        status.result().map_err(|err| Error::Cublas {
            what: format!("gemm ({}×{}×{}, batch {})", cm.m, cm.n, cm.k, call.batch),
            err,
        })
    }

    fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(|e| cuda_err("waiting for the GPU", &e))
    }

    fn mem_info(&self) -> Result<(usize, usize)> {
        self.ctx.mem_get_info().map_err(|e| cuda_err("reading free memory", &e))
    }

    fn profiling(&self) -> bool {
        self.nvtx
    }

    fn range_push(&self, name: &str) {
        if self.nvtx {
            if let Ok(c) = std::ffi::CString::new(name) {
                // SAFETY: a valid NUL-terminated string; NVTX copies it.
                unsafe { cudarc::nvtx::sys::nvtxRangePushA(c.as_ptr()) };
            }
        }
    }

    fn range_pop(&self) {
        if self.nvtx {
            // SAFETY: pops the range pushed by `range_push` (callers pair them).
            unsafe { cudarc::nvtx::sys::nvtxRangePop() };
        }
    }
}

fn cuda_type(d: Dtype) -> Result<cudaDataType> {
    Ok(match d {
        Dtype::F32 => cudaDataType::CUDA_R_32F,
        Dtype::Bf16 => cudaDataType::CUDA_R_16BF,
        Dtype::F16 => cudaDataType::CUDA_R_16F,
        other => return Err(Error::Usage(format!("gemm on {other:?} operands"))),
    })
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
