//! The emulated device: the CUDA backend's device interface ([`xlt::cuda::DeviceApi`]) on the
//! host, so the backend's kernels, wrappers and whole model run — and are checked against the
//! CPU — on a machine without a GPU.
//!
//! - Kernels: every `kernels/*.cu` file is compiled by g++ with `emu.h` force-included
//!   (`tests/cuda_emu/emu.cpp` runs a block's threads as fibers, switched at barriers and warp
//!   collectives) into one shared library per file, cached under the test target directory by
//!   content hash, with every entry point of [`xlt::cuda::Kernel`] registered. A launch's
//!   argument sizes are checked against the C++ signature, and its pointers against the live
//!   allocations.
//! - Every launch runs twice from the same memory, the block's threads in ascending then in
//!   descending order, and every allocation it can reach (through its pointer arguments) must
//!   come out bit-identical: a missing barrier or a race between threads shows up as a
//!   difference.
//! - Memory is host memory, 256-byte aligned; a new allocation is all 0xff bytes (NaN in every
//!   float type), so an element a kernel should have written and did not shows. Shared memory,
//!   static and dynamic, is 0xff at the start of every block.
//! - These checks are themselves tested on kernels wrong on purpose (`selftest.cu`, in
//!   tests/cuda_emu.rs). `XLT_EMU_LOG=FILE` lists every launched entry point, to see which
//!   kernels the tests cover (all of them, as of this writing).
//! - GEMMs follow cuBLAS's column-major definition (`cublasGemmStridedBatchedEx` with f32
//!   compute): f32 accumulation in order of k, then alpha, beta and one rounding to C's type.
//!
//! Needs a C++17 compiler (`CXX`, else `g++`) and the CUDA headers for `cuda_bf16.h` /
//! `cuda_fp16.h` (`XLT_CUDA_INCLUDE`, else next to `$NVCC`, `CUDA_HOME`, `CUDA_PATH` or
//! /usr/local/cuda; `tools/install-nvcc.sh` provides them). Without them the tests skip with a
//! message, unless `XLT_REQUIRE_EMU` is set (CI sets it).

#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use xlt::cuda::launch::Grid;
use xlt::cuda::launch::MAX_ARGS;
use xlt::cuda::{DeviceApi, DeviceInfo, Dtype, GemmCall, Gpu, KArg, Kernel, Launch};

type FindFn = unsafe extern "C" fn(name: *const std::ffi::c_char) -> i32;
type ParamsFn = unsafe extern "C" fn(index: i32, sizes: *mut i32, max: i32) -> i32;
type LaunchFn = unsafe extern "C" fn(
    index: i32,
    grid: *const u32,
    block: *const u32,
    smem: u32,
    params: *const *const std::ffi::c_void,
    reverse: i32,
    err: *mut std::ffi::c_char,
    err_len: std::ffi::c_ulong,
) -> i32;

/// Compiler flags of the emulator libraries. Kernels type-pun through pointers (128-bit loads,
/// packed pairs), which CUDA compilers allow: so no strict aliasing. No _FORTIFY_SOURCE (some
/// distributions' default): its longjmp check refuses the fibers' switches between stacks.
const FLAGS: &[&str] =
    &["-std=c++17", "-O2", "-fno-strict-aliasing", "-fPIC", "-shared", "-DXLT_EMU", "-U_FORTIFY_SOURCE", "-w"];

/// Memory the emulated device reports as its total.
const TOTAL_MEM: usize = 16 << 30;

fn cuda_include() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("XLT_CUDA_INCLUDE") {
        dirs.push(d.into());
    }
    if let Some(n) = std::env::var_os("NVCC") {
        if let Some(bin) = Path::new(&n).parent() {
            dirs.push(bin.join("../include"));
        }
    }
    for v in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(d) = std::env::var_os(v) {
            dirs.push(Path::new(&d).join("include"));
        }
    }
    dirs.push("/usr/local/cuda/include".into());
    dirs.into_iter().find(|d| d.join("cuda_bf16.h").is_file())
}

/// Builds (or reuses) the emulator library of `kernels/<file>` with `names` registered.
fn build_lib(file: &str, names: &[String], include: &Path, cxx: &str) -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    build_lib_from(&root.join("kernels").join(file), names, include, cxx)
}

/// Builds (or reuses) the emulator library of the kernel source `source` with `names`
/// registered.
fn build_lib_from(source: &Path, names: &[String], include: &Path, cxx: &str) -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let emu_dir = root.join("tests/cuda_emu");
    let kernels = root.join("kernels");
    let file = source.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut h = DefaultHasher::new();
    for p in [emu_dir.join("emu.h"), emu_dir.join("emu.cpp"), source.to_path_buf()] {
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?.hash(&mut h);
    }
    let mut headers: Vec<PathBuf> = std::fs::read_dir(&kernels)
        .map_err(|e| format!("kernels/: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cuh"))
        .collect();
    headers.sort();
    for p in headers {
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?.hash(&mut h);
    }
    (names, include, cxx, FLAGS).hash(&mut h);
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cuda_emu");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let stem = file.trim_end_matches(".cu");
    let lib_path = out_dir.join(format!("emu-{stem}-{:016x}.so", h.finish()));
    if lib_path.is_file() {
        return Ok(lib_path);
    }
    let unique = format!("{stem}-{}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], "");
    let reg = out_dir.join(format!("reg-{unique}.cpp"));
    let mut src = format!("#include \"{}\"\n", source.display());
    for n in names {
        src.push_str(&format!("XLT_EMU_REGISTER({n})\n"));
    }
    std::fs::write(&reg, src).map_err(|e| format!("{}: {e}", reg.display()))?;
    let tmp = out_dir.join(format!("emu-{unique}.so.tmp"));
    let out = Command::new(cxx)
        .args(FLAGS)
        .arg("-I")
        .arg(&kernels)
        .arg("-I")
        .arg(include)
        .arg("-include")
        .arg(emu_dir.join("emu.h"))
        .arg(&reg)
        .arg(emu_dir.join("emu.cpp"))
        .arg("-o")
        .arg(&tmp)
        .output()
        .map_err(|e| format!("cannot run the C++ compiler `{cxx}`: {e}"))?;
    let _ = std::fs::remove_file(&reg);
    if !out.status.success() {
        panic!(
            "building the kernel emulator for {} failed ({}):\n{}",
            source.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&tmp, &lib_path).map_err(|e| format!("{}: {e}", lib_path.display()))?;
    Ok(lib_path)
}

/// The emulator's self-test kernels ([`EmuDevice::selftest_kernels`]).
pub struct SelfTestKernels {
    lib: Lib,
}

/// One kernel file's emulator library.
struct Lib {
    file: String,
    lib: libloading::Library,
}

/// One live allocation: host memory standing in for device memory, starting at `ptr` (the
/// first 256-byte boundary inside `data`).
struct Alloc {
    _data: Vec<u128>,
    ptr: u64,
    bytes: usize,
}

impl Alloc {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` .. `ptr + bytes` lies inside `_data`, which this allocation owns.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.bytes) }
    }
}

/// The emulated device.
pub struct EmuDevice {
    libs: Vec<Lib>,
    /// [`Kernel::SLOTS`] entries: (library, index in it, parameter sizes).
    table: Vec<Option<(usize, i32, Vec<i32>)>>,
    mem: Mutex<BTreeMap<u64, Alloc>>,
    info: DeviceInfo,
    check_orders: AtomicBool,
}

/// The emulator keeps one launch's state in process-wide globals: one launch at a time.
static LAUNCH: Mutex<()> = Mutex::new(());

impl EmuDevice {
    /// Builds every kernel library (in parallel, cached) and resolves every entry point.
    pub fn new() -> Result<EmuDevice, String> {
        let include = cuda_include()
            .ok_or("no CUDA headers (cuda_bf16.h); run tools/install-nvcc.sh and set NVCC or XLT_CUDA_INCLUDE")?;
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
        let mut files: Vec<&'static str> = Kernel::ALL.iter().map(|k| k.file()).collect();
        files.sort();
        files.dedup();
        let names = |file: &str| -> Vec<String> {
            Kernel::entry_points().filter(|(k, _, _)| k.file() == file).map(|(_, _, n)| n).collect()
        };
        let paths: Vec<Result<PathBuf, String>> = std::thread::scope(|s| {
            let jobs: Vec<_> = files.iter().map(|f| s.spawn(|| build_lib(f, &names(f), &include, &cxx))).collect();
            jobs.into_iter().map(|j| j.join().unwrap_or_else(|_| Err("a build thread panicked".into()))).collect()
        });
        let mut libs = Vec::new();
        for (file, path) in files.iter().zip(paths) {
            // SAFETY: our own library, built just above; its initialisers only register kernels.
            let lib = unsafe { libloading::Library::new(path?) }.map_err(|e| format!("loading {file}: {e}"))?;
            libs.push(Lib { file: file.to_string(), lib });
        }
        let mut table = vec![None; Kernel::SLOTS];
        for (kernel, dtype, name) in Kernel::entry_points() {
            let li = libs.iter().position(|l| l.file == kernel.file()).ok_or(format!("no library for {name}"))?;
            // SAFETY: the symbols have these signatures (emu.cpp).
            let (find, params): (libloading::Symbol<FindFn>, libloading::Symbol<ParamsFn>) = unsafe {
                (
                    libs[li].lib.get(b"xlt_emu_find\0").map_err(|e| e.to_string())?,
                    libs[li].lib.get(b"xlt_emu_params\0").map_err(|e| e.to_string())?,
                )
            };
            let c = std::ffi::CString::new(name.clone()).map_err(|e| e.to_string())?;
            // SAFETY: a valid C string.
            let index = unsafe { find(c.as_ptr()) };
            if index < 0 {
                return Err(format!("{name} is not registered in the emulator library of {}", kernel.file()));
            }
            let mut sizes = vec![0i32; MAX_ARGS];
            // SAFETY: `sizes` has room for MAX_ARGS entries.
            let count = unsafe { params(index, sizes.as_mut_ptr(), MAX_ARGS as i32) };
            sizes.truncate(count.max(0) as usize);
            table[kernel.slot(dtype).expect("entry points have slots")] = Some((li, index, sizes));
        }
        let info = DeviceInfo {
            name: "host kernel emulator".into(),
            cc: (9, 0),
            sm_count: 4,
            total_mem: TOTAL_MEM,
            kernels: "g++ on the host".into(),
        };
        Ok(EmuDevice { libs, table, mem: Mutex::new(BTreeMap::new()), info, check_orders: AtomicBool::new(true) })
    }

    /// Builds the emulator's self-test kernels (`tests/cuda_emu/selftest.cu`: wrong on purpose,
    /// so its own checks can be shown to fail).
    pub fn selftest_kernels(&self) -> Result<SelfTestKernels, String> {
        let include = cuda_include().ok_or("no CUDA headers (cuda_bf16.h)")?;
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cuda_emu/selftest.cu");
        let names: Vec<String> =
            ["selftest_reverse", "selftest_reverse_racy", "selftest_deadlock", "selftest_half_written"]
                .map(String::from)
                .to_vec();
        let path = build_lib_from(&source, &names, &include, &cxx)?;
        // SAFETY: our own library, built just above; its initialisers only register kernels.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| format!("loading selftest.cu: {e}"))?;
        Ok(SelfTestKernels { lib: Lib { file: "selftest.cu".into(), lib } })
    }

    /// Launches self-test kernel `name` over `blocks` blocks of `threads` threads, through the
    /// checks of every launch (argument sizes and pointers, both thread orders).
    ///
    /// # Safety
    /// The kernel's accesses stay inside the allocations its pointer arguments point into.
    pub unsafe fn launch_selftest(
        &self,
        k: &SelfTestKernels,
        name: &str,
        blocks: u32,
        threads: u32,
        args: &[KArg],
    ) -> xlt::Result<()> {
        let lookup = || -> Result<(i32, Vec<i32>), String> {
            // SAFETY: the symbols have these signatures (emu.cpp).
            let (find, params): (libloading::Symbol<FindFn>, libloading::Symbol<ParamsFn>) = unsafe {
                (
                    k.lib.lib.get(b"xlt_emu_find\0").map_err(|e| e.to_string())?,
                    k.lib.lib.get(b"xlt_emu_params\0").map_err(|e| e.to_string())?,
                )
            };
            let c = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
            // SAFETY: a valid C string.
            let index = unsafe { find(c.as_ptr()) };
            let mut sizes = vec![0i32; MAX_ARGS];
            // SAFETY: `sizes` has room for MAX_ARGS entries.
            let count = unsafe { params(index, sizes.as_mut_ptr(), MAX_ARGS as i32) };
            if count < 0 {
                return Err(format!("{name} is not a self-test kernel"));
            }
            sizes.truncate(count as usize);
            Ok((index, sizes))
        };
        let (index, sizes) = lookup().map_err(xlt::Error::Usage)?;
        let g = xlt::cuda::launch::grid([blocks as usize, 1, 1], threads, 0)?;
        // SAFETY: the caller's guarantee.
        unsafe { self.launch_in(&k.lib, index, &sizes, name, g, args) }
    }

    /// Whether every launch is run in both thread orders and compared (on by default).
    pub fn set_check_orders(&self, on: bool) {
        self.check_orders.store(on, Ordering::Relaxed);
    }

    fn mem(&self) -> MutexGuard<'_, BTreeMap<u64, Alloc>> {
        self.mem.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks that [ptr, ptr + bytes) lies in one live allocation.
    fn check_range(&self, what: &str, ptr: u64, bytes: usize) -> xlt::Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let mem = self.mem();
        match mem.range(..=ptr).next_back() {
            Some((&base, a)) if ptr + bytes as u64 <= base + a.bytes as u64 => Ok(()),
            _ => Err(xlt::Error::Usage(format!(
                "emulator: {what} of {bytes} bytes at {ptr:#x} is outside every live allocation"
            ))),
        }
    }

    /// Launches kernel `index` of `lib` (parameter sizes `sizes`) after checking its arguments,
    /// in both thread orders unless the check is off.
    ///
    /// # Safety
    /// As [`DeviceApi::launch`]: the kernel's accesses stay inside the allocations its pointers
    /// point into.
    unsafe fn launch_in(
        &self,
        lib: &Lib,
        index: i32,
        sizes: &[i32],
        name: &str,
        g: Grid,
        args: &[KArg],
    ) -> xlt::Result<()> {
        let got: Vec<i32> = args.iter().map(|a| a.size() as i32).collect();
        if got != sizes {
            return Err(xlt::Error::Usage(format!(
                "emulator: {name} takes parameters of {sizes:?} bytes, the launch passes {got:?}"
            )));
        }
        for (i, a) in args.iter().enumerate() {
            if let KArg::Ptr(p) = a {
                if *p != 0 {
                    self.check_range(&format!("{name} argument {i}"), *p, 1)?;
                }
            }
        }
        let _one = LAUNCH.lock().unwrap_or_else(|e| e.into_inner());
        log_launch(name);
        if !self.check_orders.load(Ordering::Relaxed) {
            return self.run(lib, index, g, args, false);
        }
        let bases = self.touched(args);
        let before = self.snapshot(&bases);
        self.run(lib, index, g, args, false)?;
        let ascending = self.snapshot(&bases);
        self.restore(&before);
        self.run(lib, index, g, args, true)?;
        for ((p, want), (_, got)) in ascending.iter().zip(self.snapshot(&bases)) {
            if let Some(at) = want.iter().zip(&got).position(|(a, b)| a != b) {
                return Err(xlt::Error::Cuda(format!(
                    "emulator: {name} wrote different bytes with the block's threads in ascending and in \
                     descending order (a race or a missing barrier?): allocation {p:#x}, byte {at}"
                )));
            }
        }
        Ok(())
    }

    fn run(&self, lib: &Lib, index: i32, g: Grid, args: &[KArg], reverse: bool) -> xlt::Result<()> {
        // SAFETY: the symbol has the LaunchFn signature (emu.cpp).
        let f: libloading::Symbol<LaunchFn> =
            unsafe { lib.lib.get(b"xlt_emu_launch\0") }.map_err(|e| xlt::Error::Cuda(format!("emulator: {e}")))?;
        let grid = [g.blocks.0, g.blocks.1, g.blocks.2];
        let block = [g.threads, 1, 1];
        let params: Vec<*const std::ffi::c_void> = args.iter().map(|a| a.as_ptr()).collect();
        let mut err = vec![0u8; 1024];
        // SAFETY: the plan's pointers were checked against the live allocations; `params`
        // points into the plan's arguments, alive for the call.
        let rc = unsafe {
            f(
                index,
                grid.as_ptr(),
                block.as_ptr(),
                g.shared,
                params.as_ptr(),
                reverse as i32,
                err.as_mut_ptr() as *mut std::ffi::c_char,
                err.len() as std::ffi::c_ulong,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let end = err.iter().position(|&b| b == 0).unwrap_or(err.len());
        Err(xlt::Error::Cuda(format!("emulator: {}", String::from_utf8_lossy(&err[..end]))))
    }

    /// A copy of the bytes of the allocations `bases` (what a launch can write: a kernel
    /// reaches memory only through its pointer arguments).
    fn snapshot(&self, bases: &[u64]) -> Vec<(u64, Vec<u8>)> {
        let mem = self.mem();
        bases.iter().filter_map(|p| mem.get(p).map(|a| (*p, a.bytes().to_vec()))).collect()
    }

    /// The distinct allocations the pointer arguments of `plan` point into.
    fn touched(&self, args: &[KArg]) -> Vec<u64> {
        let mem = self.mem();
        let mut bases: Vec<u64> = args
            .iter()
            .filter_map(|a| match a {
                KArg::Ptr(p) if *p != 0 => mem.range(..=*p).next_back().map(|(&b, _)| b),
                _ => None,
            })
            .collect();
        bases.sort_unstable();
        bases.dedup();
        bases
    }

    /// Writes a snapshot back.
    fn restore(&self, snap: &[(u64, Vec<u8>)]) {
        for (p, bytes) in snap {
            // SAFETY: the allocation is live (no free happens during a launch) and holds these
            // bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), *p as *mut u8, bytes.len()) };
        }
    }
}

/// Reads element `i` of type `d` at `ptr` as f32.
///
/// # Safety
/// `ptr` + i elements lies in a live allocation.
unsafe fn load(ptr: u64, i: usize, d: Dtype) -> f32 {
    unsafe {
        match d {
            Dtype::F32 => *(ptr as *const f32).add(i),
            Dtype::Bf16 => (*(ptr as *const half::bf16).add(i)).to_f32(),
            _ => (*(ptr as *const half::f16).add(i)).to_f32(),
        }
    }
}

/// Writes `v` rounded to type `d` as element `i` at `ptr`.
///
/// # Safety
/// `ptr` + i elements lies in a live allocation.
unsafe fn store(ptr: u64, i: usize, d: Dtype, v: f32) {
    unsafe {
        match d {
            Dtype::F32 => *(ptr as *mut f32).add(i) = v,
            Dtype::Bf16 => *(ptr as *mut half::bf16).add(i) = half::bf16::from_f32(v),
            _ => *(ptr as *mut half::f16).add(i) = half::f16::from_f32(v),
        }
    }
}

impl DeviceApi for EmuDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn alloc(&self, bytes: usize, what: &str) -> xlt::Result<u64> {
        if bytes == 0 {
            return Ok(0);
        }
        let used: usize = self.mem().values().map(|a| a.bytes).sum();
        if used + bytes > TOTAL_MEM {
            return Err(xlt::Error::OutOfMemory { what: what.to_string(), bytes });
        }
        // 256-byte alignment, as cudaMalloc: over-allocate and start at the first boundary.
        let data = vec![u128::MAX; (bytes + 256).div_ceil(16)];
        let ptr = (data.as_ptr() as u64).next_multiple_of(256);
        self.mem().insert(ptr, Alloc { _data: data, ptr, bytes });
        Ok(ptr)
    }

    unsafe fn free(&self, ptr: u64) {
        self.mem().remove(&ptr);
    }

    unsafe fn memset(&self, ptr: u64, value: u8, bytes: usize) -> xlt::Result<()> {
        self.check_range("memset", ptr, bytes)?;
        // SAFETY: checked above.
        unsafe { std::ptr::write_bytes(ptr as *mut u8, value, bytes) };
        Ok(())
    }

    unsafe fn copy_to_device(&self, dst: u64, src: &[u8]) -> xlt::Result<()> {
        self.check_range("copy to the device", dst, src.len())?;
        // SAFETY: checked above.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    unsafe fn copy_to_host(&self, dst: &mut [u8], src: u64) -> xlt::Result<()> {
        self.check_range("copy to the host", src, dst.len())?;
        // SAFETY: checked above.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    unsafe fn copy_on_device(&self, dst: u64, src: u64, bytes: usize) -> xlt::Result<()> {
        self.check_range("copy source", src, bytes)?;
        self.check_range("copy destination", dst, bytes)?;
        // SAFETY: checked above; `copy` allows overlap.
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, bytes) };
        Ok(())
    }

    unsafe fn launch(&self, plan: &Launch) -> xlt::Result<()> {
        let name = plan.name();
        let (lib, index, sizes) = plan
            .kernel
            .slot(plan.dtype)
            .and_then(|s| self.table[s].as_ref())
            .ok_or_else(|| xlt::Error::Cuda(format!("emulator: {name} is not registered")))?;
        self.launch_in(&self.libs[*lib], *index, sizes, &name, plan.grid, plan.args())
    }

    unsafe fn gemm(&self, call: &GemmCall) -> xlt::Result<()> {
        let cm = call.args;
        let (es, eo) = (call.ab.size() as u64, call.out.size() as u64);
        // op(A)(i, l) and op(B)(l, j), column-major as cuBLAS defines them.
        let a_at = |i: usize, l: usize| if cm.transa { l + i * cm.lda } else { i + l * cm.lda };
        let b_at = |l: usize, j: usize| if cm.transb { j + l * cm.ldb } else { l + j * cm.ldb };
        for batch in 0..call.batch {
            let (a, b) = (call.a + (batch * cm.stride_a) as u64 * es, call.b + (batch * cm.stride_b) as u64 * es);
            let c = call.c + (batch * cm.stride_c) as u64 * eo;
            let span = |ld: usize, rows: usize, cols: usize| if rows * cols == 0 { 0 } else { (cols - 1) * ld + rows };
            let (ar, ac) = if cm.transa { (cm.k, cm.m) } else { (cm.m, cm.k) };
            let (br, bc) = if cm.transb { (cm.n, cm.k) } else { (cm.k, cm.n) };
            self.check_range("gemm A", a, span(cm.lda, ar, ac) * es as usize)?;
            self.check_range("gemm B", b, span(cm.ldb, br, bc) * es as usize)?;
            self.check_range("gemm C", c, span(cm.ldc, cm.m, cm.n) * eo as usize)?;
            for j in 0..cm.n {
                for i in 0..cm.m {
                    let mut acc = 0.0f32;
                    for l in 0..cm.k {
                        // SAFETY: every index lies in the spans checked above.
                        acc += unsafe { load(a, a_at(i, l), call.ab) * load(b, b_at(l, j), call.ab) };
                    }
                    let at = i + j * cm.ldc;
                    let mut v = call.alpha * acc;
                    if call.beta != 0.0 {
                        // SAFETY: as above.
                        v += call.beta * unsafe { load(c, at, call.out) };
                    }
                    // SAFETY: as above.
                    unsafe { store(c, at, call.out, v) };
                }
            }
        }
        Ok(())
    }

    fn synchronize(&self) -> xlt::Result<()> {
        Ok(())
    }

    fn mem_info(&self) -> xlt::Result<(usize, usize)> {
        let used: usize = self.mem().values().map(|a| a.bytes).sum();
        Ok((TOTAL_MEM - used.min(TOTAL_MEM), TOTAL_MEM))
    }
}

/// The emulated device of a test binary and the `Gpu` over it, or why there is none.
type Shared = Result<(Arc<EmuDevice>, Arc<Gpu>), String>;

/// The emulated device shared by a test binary, or why there is none.
fn shared() -> &'static Shared {
    static DEV: OnceLock<Shared> = OnceLock::new();
    DEV.get_or_init(|| {
        let emu = Arc::new(EmuDevice::new()?);
        let gpu = Gpu::on(emu.clone());
        Ok((emu, gpu))
    })
}

/// The emulated device for one test, held exclusively (its scratch area, counters and
/// launch-order checks are shared); dereferences to the `Arc<Gpu>`.
pub struct EmuLease {
    /// The device interface itself (to switch the order checks).
    pub emu: Arc<EmuDevice>,
    gpu: Arc<Gpu>,
    _turn: MutexGuard<'static, ()>,
}

impl std::ops::Deref for EmuLease {
    type Target = Arc<Gpu>;
    fn deref(&self) -> &Arc<Gpu> {
        &self.gpu
    }
}

impl Drop for EmuLease {
    fn drop(&mut self) {
        self.emu.set_check_orders(true);
    }
}

/// The emulated device, or `None` after printing why the test skips (a failure when
/// `XLT_REQUIRE_EMU` is set, as in CI).
pub fn emulated(test: &str) -> Option<EmuLease> {
    static TURN: Mutex<()> = Mutex::new(());
    SHARED_INIT.get_or_init(|| ());
    match shared() {
        Ok((emu, gpu)) => {
            Some(EmuLease { emu: emu.clone(), gpu: gpu.clone(), _turn: TURN.lock().unwrap_or_else(|e| e.into_inner()) })
        }
        Err(why) => {
            if std::env::var_os("XLT_REQUIRE_EMU").is_some() {
                panic!("{test}: XLT_REQUIRE_EMU is set but the kernel emulator cannot be built: {why}");
            }
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

/// Switches the emulated device's both-orders check for the test holding it (tests of counts
/// rather than of kernels save half the time); the lease turns it back on. A no-op when there
/// is no emulated device (a test on a GPU).
pub fn order_checks(on: bool) {
    if let Some(Ok((emu, _))) = SHARED_INIT.get().map(|_| shared()) {
        emu.set_check_orders(on);
    }
}

/// With `XLT_EMU_LOG=FILE`, appends every launched entry point's name to FILE, one per line:
/// which kernels the emulated tests cover (`comm` against `xlt::cuda::Kernel::entry_points`).
fn log_launch(name: &str) {
    use std::io::Write;
    static LOG: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    let log = LOG.get_or_init(|| {
        let path = std::env::var_os("XLT_EMU_LOG")?;
        std::fs::OpenOptions::new().create(true).append(true).open(path).ok().map(Mutex::new)
    });
    if let Some(f) = log {
        let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writeln!(f, "{name}") {
            eprintln!("XLT_EMU_LOG: {e}");
        }
    }
}

/// Set once the emulated device has been asked for.
static SHARED_INIT: OnceLock<()> = OnceLock::new();

/// Runs a test body on the emulated device (always) and on a real GPU (`#[ignore]`d: `cargo
/// test -- --ignored` on a GPU machine, as `tools/gpu_check.sh` does). Each name becomes a
/// module with the tests `emulated` and `gpu`, calling the function of that name with `&Gpu`.
#[macro_export]
macro_rules! on_both_devices {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn emulated() {
                    if let Some(g) = super::harness::emulated(concat!(stringify!($name), "::emulated")) {
                        super::$name(&g);
                    }
                }
                #[test]
                #[ignore = "needs a CUDA GPU"]
                fn gpu() {
                    if let Some(g) = xlt::cuda::testing::gpu_or_skip(concat!(stringify!($name), "::gpu")) {
                        super::$name(&g);
                    }
                }
            }
        )*
    };
}
