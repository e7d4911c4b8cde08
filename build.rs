//! Build script: embeds the CUDA kernel sources of `kernels/` into the binary.
//!
//! Every `kernels/*.cu` file becomes an entry of `KERNEL_SOURCES` (name, source text) in
//! `$OUT_DIR/kernels.rs`, which `src/kernels.rs` includes. The CUDA backend compiles them at
//! run time with NVRTC; ahead-of-time nvcc compilation (cubins for sm_80/sm_90 plus PTX) is the
//! CUDA backend's part of this script and arrives with it.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    let dir = Path::new("kernels");
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cu" || x == "cuh"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut out = String::from("/// (file name, CUDA C source) of every file in `kernels/`.\n");
    out.push_str("pub const KERNEL_SOURCES: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let abs = std::fs::canonicalize(f).expect("kernel path from read_dir exists");
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let _ = writeln!(out, "    ({name:?}, include_str!({:?})),", abs.display().to_string());
    }
    out.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("kernels.rs"), out).expect("write kernels.rs");
}
