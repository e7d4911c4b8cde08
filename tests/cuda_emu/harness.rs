//! The host kernel emulator, from Rust: builds `tests/cuda_emu/emu.cpp` with one kernel file
//! into a shared library (g++, `-DXLT_EMU -include emu.h`, cached under the test target
//! directory by content hash), loads it, and runs [`xlt::cuda::Launch`] plans on host memory.
//! A plan's device pointers are host addresses of [`HostBuf`]s.
//!
//! Needs a C++17 compiler (`CXX`, else `g++`) and the CUDA headers for `cuda_bf16.h` /
//! `cuda_fp16.h` (`XLT_CUDA_INCLUDE`, else next to `$NVCC`, `CUDA_HOME`, `CUDA_PATH` or
//! /usr/local/cuda; `tools/install-nvcc.sh` provides them). Without them the tests skip with a
//! message, unless `XLT_REQUIRE_EMU` is set (CI sets it).

#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use xlt::cuda::{Dev, Dtype, Launch};

/// The emulator keeps one launch's state in globals: one launch at a time per process.
static LOCK: Mutex<()> = Mutex::new(());

type LaunchFn = unsafe extern "C" fn(
    name: *const std::ffi::c_char,
    grid: *const u32,
    block: *const u32,
    smem: u32,
    params: *const *const std::ffi::c_void,
    reverse: i32,
    err: *mut std::ffi::c_char,
    err_len: std::ffi::c_ulong,
) -> i32;

/// Compiler flags of the emulator library. Kernels type-pun through pointers (128-bit loads,
/// packed pairs), which CUDA compilers allow: so no strict aliasing.
const FLAGS: &[&str] = &["-std=c++17", "-O2", "-fno-strict-aliasing", "-fPIC", "-shared", "-DXLT_EMU", "-w"];

/// A loaded emulator library.
pub struct Emu {
    lib: libloading::Library,
}

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

fn skip(test: &str, why: &str) -> Option<Emu> {
    if std::env::var_os("XLT_REQUIRE_EMU").is_some() {
        panic!("{test}: XLT_REQUIRE_EMU is set but the kernel emulator cannot be built: {why}");
    }
    eprintln!("skipping {test}: {why}");
    None
}

/// Builds (or reuses) and loads the emulator with `kernels/<file>`, registering `names`.
pub fn emu_or_skip(test: &str, file: &str, names: &[String]) -> Option<Emu> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(include) = cuda_include() else {
        return skip(test, "no CUDA headers (cuda_bf16.h); run tools/install-nvcc.sh and set NVCC");
    };
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    let emu_dir = root.join("tests/cuda_emu");
    let kernels = root.join("kernels");
    let mut h = DefaultHasher::new();
    for p in [emu_dir.join("emu.h"), emu_dir.join("emu.cpp"), kernels.join(file)] {
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).hash(&mut h);
    }
    for entry in std::fs::read_dir(&kernels).expect("kernels/") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|e| e == "cuh") {
            std::fs::read(&p).expect("header").hash(&mut h);
        }
    }
    names.hash(&mut h);
    include.hash(&mut h);
    cxx.hash(&mut h);
    FLAGS.hash(&mut h);
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cuda_emu");
    std::fs::create_dir_all(&out_dir).expect("create emulator dir");
    let lib_path = out_dir.join(format!("emu-{:016x}.so", h.finish()));
    if !lib_path.is_file() {
        let unique = format!("{}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], "");
        let reg = out_dir.join(format!("reg-{unique}.cpp"));
        let mut src = format!("#include \"{}\"\n", kernels.join(file).display());
        for n in names {
            src.push_str(&format!("XLT_EMU_REGISTER({n})\n"));
        }
        std::fs::write(&reg, src).expect("write registration");
        let tmp = out_dir.join(format!("emu-{unique}.so.tmp"));
        let status = Command::new(&cxx)
            .args(FLAGS)
            .arg("-I")
            .arg(&kernels)
            .arg("-I")
            .arg(&include)
            .arg("-include")
            .arg(emu_dir.join("emu.h"))
            .arg(&reg)
            .arg(emu_dir.join("emu.cpp"))
            .arg("-o")
            .arg(&tmp)
            .output();
        match status {
            Ok(o) if o.status.success() => std::fs::rename(&tmp, &lib_path).expect("install emulator library"),
            Ok(o) => panic!(
                "{test}: building the kernel emulator for kernels/{file} failed ({}):\n{}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => return skip(test, &format!("cannot run the C++ compiler `{cxx}`: {e}")),
        }
    }
    // SAFETY: the library is ours, built just above; its initialisers only register kernels.
    let lib = unsafe { libloading::Library::new(&lib_path) }.expect("load the emulator library");
    Some(Emu { lib })
}

impl Emu {
    /// Runs `plan` with the block's threads in ascending (or, with `reverse`, descending) order.
    pub fn run(&self, plan: &Launch, reverse: bool) -> Result<(), String> {
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the symbol has the LaunchFn signature (emu.cpp).
        let f: libloading::Symbol<LaunchFn> = unsafe { self.lib.get(b"xlt_emu_launch\0") }.expect("xlt_emu_launch");
        let name = std::ffi::CString::new(plan.name.as_str()).expect("kernel name");
        let grid = [plan.grid.0, plan.grid.1, plan.grid.2];
        let block = [plan.block.0, plan.block.1, plan.block.2];
        let params: Vec<*const std::ffi::c_void> = plan.args.iter().map(|a| a.as_ptr()).collect();
        let mut err = vec![0u8; 1024];
        // SAFETY: the plan's pointers are live HostBufs of the sizes its builder checked; params
        // point into `plan.args`, alive for the call.
        let rc = unsafe {
            f(
                name.as_ptr(),
                grid.as_ptr(),
                block.as_ptr(),
                plan.shared,
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
        Err(String::from_utf8_lossy(&err[..end]).into_owned())
    }

    /// Runs `plan` in both thread orders from the same inputs and asserts the outputs (`outs`)
    /// are bit-identical: a missing barrier or a cross-thread race shows up as a difference.
    pub fn run_both_orders(&self, plan: &Launch, outs: &mut [&mut HostBuf]) {
        self.run(plan, false).unwrap_or_else(|e| panic!("{e}"));
        let first: Vec<Vec<u8>> = outs.iter().map(|b| b.bytes().to_vec()).collect();
        for b in outs.iter_mut() {
            b.poison();
        }
        self.run(plan, true).unwrap_or_else(|e| panic!("{e}"));
        for (i, (b, f)) in outs.iter().zip(&first).enumerate() {
            if let Some(at) = b.bytes().iter().zip(f).position(|(x, y)| x != y) {
                let e = at / b.dtype.size();
                let (ascending, descending) = (HostBuf::decode(f, b.dtype, e), HostBuf::decode(b.bytes(), b.dtype, e));
                panic!(
                    "{}: output {i} differs between thread orders (a race?): element {e} is {ascending} with threads \
                     in ascending order, {descending} in descending",
                    plan.name
                );
            }
        }
    }
}

/// Host memory standing in for a device buffer: 16-byte aligned, elements of `dtype`.
pub struct HostBuf {
    data: Vec<u128>,
    len: usize,
    dtype: Dtype,
}

impl HostBuf {
    /// `len` elements, every byte 0xff (NaN in every float type), so unwritten outputs show.
    pub fn poisoned(len: usize, dtype: Dtype) -> Self {
        let mut b = HostBuf { data: vec![0; (len * dtype.size()).div_ceil(16).max(1)], len, dtype };
        b.poison();
        b
    }

    /// `values` stored as `dtype` (rounded to nearest for bf16/f16).
    pub fn from_f32(values: &[f32], dtype: Dtype) -> Self {
        let mut b =
            HostBuf { data: vec![0; (values.len() * dtype.size()).div_ceil(16).max(1)], len: values.len(), dtype };
        let bytes = b.bytes_mut();
        for (i, &v) in values.iter().enumerate() {
            match dtype {
                Dtype::F32 => bytes[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes()),
                Dtype::Bf16 => bytes[2 * i..2 * i + 2].copy_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
                Dtype::F16 => bytes[2 * i..2 * i + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes()),
                other => panic!("HostBuf::from_f32: {other:?} is not a float type"),
            }
        }
        b
    }

    /// The values as f32.
    pub fn to_f32(&self) -> Vec<f32> {
        (0..self.len).map(|i| Self::decode(self.bytes(), self.dtype, i)).collect()
    }

    /// Element `i` of `bytes` holding `dtype` values, as f32.
    fn decode(bytes: &[u8], dtype: Dtype, i: usize) -> f32 {
        match dtype {
            Dtype::F32 => f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes")),
            Dtype::Bf16 => half::bf16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32(),
            Dtype::F16 => half::f16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32(),
            other => panic!("HostBuf: {other:?} is not a float type"),
        }
    }

    /// A view for a plan builder: the "device" address is this buffer's host address.
    pub fn dev(&mut self) -> Dev {
        Dev { ptr: self.data.as_mut_ptr() as u64, len: self.len, dtype: self.dtype }
    }

    /// Sets every byte to 0xff.
    pub fn poison(&mut self) {
        self.bytes_mut().fill(0xff);
    }

    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.data)[..self.len * self.dtype.size()]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.len * self.dtype.size();
        &mut bytemuck::cast_slice_mut(&mut self.data)[..n]
    }
}
