//! Build script: compiles the CUDA kernels of `kernels/` and embeds them in the binary.
//!
//! With nvcc (found through `NVCC`, `CUDA_HOME`/`CUDA_PATH`, or `PATH`; `tools/install-nvcc.sh`
//! installs one), every `kernels/*.cu` becomes a fatbin holding cubins for sm_80 and sm_90 and
//! PTX for newer GPUs, embedded as `KERNEL_FATBINS` in `$OUT_DIR/kernels.rs`. ptxas reports each
//! kernel's registers and spills; a spill is a warning, and an error when `XLT_DENY_SPILLS` is
//! set (CI sets it). Without nvcc the sources alone are embedded (`KERNEL_SOURCES`, always
//! present) and the CUDA backend compiles them with NVRTC at run time, which a
//! `cargo:warning` says. `XLT_REQUIRE_NVCC` turns a missing nvcc into an error.
//!
//! Compile options are the same for both paths: no fast math (GELU is the exact erf form and
//! the parity tests compare against the CPU), C++17.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Architectures with machine code in the fatbin; the last one also gets PTX for newer GPUs.
const ARCHS: &[&str] = &["80", "90"];

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    for var in ["NVCC", "CUDA_HOME", "CUDA_PATH", "PATH", "XLT_DENY_SPILLS", "XLT_REQUIRE_NVCC"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let dir = Path::new("kernels");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cu" || x == "cuh"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    let mut out = String::from("/// (file name, CUDA C source) of every file in `kernels/`.\n");
    out.push_str("pub const KERNEL_SOURCES: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let abs = std::fs::canonicalize(f).expect("kernel path from read_dir exists");
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let _ = writeln!(out, "    ({name:?}, include_str!({:?})),", abs.display().to_string());
    }
    out.push_str("];\n");

    let units: Vec<&PathBuf> = files.iter().filter(|f| f.extension().is_some_and(|x| x == "cu")).collect();
    let fatbins = match find_nvcc() {
        Some(nvcc) => compile_all(&nvcc, &units, &out_dir),
        None => {
            if std::env::var_os("XLT_REQUIRE_NVCC").is_some() {
                panic!("XLT_REQUIRE_NVCC is set but no nvcc was found (NVCC, CUDA_HOME, CUDA_PATH, PATH)");
            }
            println!(
                "cargo:warning=nvcc not found: the CUDA kernels are embedded as sources and compiled with \
                 NVRTC at run time (set NVCC or run tools/install-nvcc.sh to compile them now)"
            );
            Vec::new()
        }
    };
    out.push_str("/// (file name, fatbin) of every compiled `kernels/*.cu`; empty when nvcc was not found.\n");
    out.push_str("pub const KERNEL_FATBINS: &[(&str, &[u8])] = &[\n");
    for (name, path) in &fatbins {
        let _ = writeln!(out, "    ({name:?}, include_bytes!({:?})),", path.display().to_string());
    }
    out.push_str("];\n");
    std::fs::write(out_dir.join("kernels.rs"), out).expect("write kernels.rs");
}

/// nvcc from `NVCC`, `$CUDA_HOME/bin`, `$CUDA_PATH/bin` or `PATH`, if it runs.
fn find_nvcc() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("NVCC") {
        candidates.push(PathBuf::from(p));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(home) = std::env::var_os(var) {
            candidates.push(PathBuf::from(home).join("bin").join("nvcc"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nvcc")));
    }
    candidates.into_iter().find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// Compiles every unit in parallel; returns (file name, fatbin path) in input order.
fn compile_all(nvcc: &Path, units: &[&PathBuf], out_dir: &Path) -> Vec<(String, PathBuf)> {
    let deny_spills = std::env::var_os("XLT_DENY_SPILLS").is_some();
    let results: Vec<(String, PathBuf, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = units.iter().map(|u| s.spawn(move || compile_one(nvcc, u, out_dir))).collect();
        handles.into_iter().map(|h| h.join().expect("nvcc thread panicked")).collect()
    });
    let mut spills = Vec::new();
    for (name, _, log) in &results {
        spills.extend(spill_lines(log).into_iter().map(|l| format!("{name}: {l}")));
    }
    std::fs::write(out_dir.join("ptxas.log"), results.iter().map(|r| r.2.as_str()).collect::<String>())
        .expect("write ptxas.log");
    if !spills.is_empty() {
        let msg = format!("ptxas reports register spills:\n{}", spills.join("\n"));
        if deny_spills {
            panic!("{msg}\n(XLT_DENY_SPILLS is set)");
        }
        for l in msg.lines() {
            println!("cargo:warning={l}");
        }
    }
    results.into_iter().map(|(n, p, _)| (n, p)).collect()
}

/// One `.cu` → fatbin (sm_80 + sm_90 cubins, compute_90 PTX). Panics with nvcc's output on a
/// compile error, so the build fails with the message. Returns (name, path, ptxas log).
fn compile_one(nvcc: &Path, unit: &Path, out_dir: &Path) -> (String, PathBuf, String) {
    let name = unit.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let stem = unit.file_stem().and_then(|n| n.to_str()).unwrap_or_default();
    let out = out_dir.join(format!("{stem}.fatbin"));
    let mut cmd = Command::new(nvcc);
    cmd.arg("-fatbin").args(["-O3", "-std=c++17", "-Ikernels", "-Xptxas", "-v", "--expt-relaxed-constexpr"]);
    for a in ARCHS {
        cmd.arg(format!("-gencode=arch=compute_{a},code=sm_{a}"));
    }
    let last = ARCHS.last().expect("at least one architecture");
    cmd.arg(format!("-gencode=arch=compute_{last},code=compute_{last}"));
    cmd.arg("-o").arg(&out).arg(unit);
    let output = cmd.output().unwrap_or_else(|e| panic!("running {}: {e}", nvcc.display()));
    let log = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        panic!("nvcc failed on {}:\n{log}", unit.display());
    }
    (name, out, log)
}

/// The ptxas lines that report a non-zero spill, with the kernel they belong to.
fn spill_lines(log: &str) -> Vec<String> {
    let mut current = String::new();
    let mut found = Vec::new();
    for line in log.lines() {
        if let Some(i) = line.find("Compiling entry function ") {
            current = line[i + 25..].replace('\'', "");
        }
        let spilled = line.contains("spill stores") && !line.contains(" 0 bytes spill stores, 0 bytes spill loads");
        if spilled {
            found.push(format!("{current}: {}", line.trim()));
        }
    }
    found
}
