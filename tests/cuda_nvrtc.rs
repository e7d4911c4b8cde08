//! The NVRTC fallback and the kernel table, checked without a GPU: every `kernels/*.cu`
//! compiles with NVRTC (the path a build without nvcc takes at run time); every entry point of
//! [`xlt::cuda::Kernel`] (what a device resolves when it opens, and what every launch names) is
//! defined by the file the table says, and no file defines one the table lacks; and every
//! entry point's parameter list in the table (against which [`xlt::cuda::Launch::new`] checks
//! every launch's arguments) matches the kernel's PTX parameters, in number, size and type.
//!
//! Needs libnvrtc on the library path (`tools/install-nvcc.sh` installs it; `.ci/run` puts it on
//! `LD_LIBRARY_PATH`); skips with a message without it, unless `XLT_REQUIRE_NVRTC` is set.

use std::collections::{BTreeMap, BTreeSet};
use xlt::cuda::{Kernel, Param};

fn nvrtc_or_skip(test: &str) -> bool {
    // SAFETY: only tries to dlopen the library by name.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return true;
    }
    if std::env::var_os("XLT_REQUIRE_NVRTC").is_some() {
        panic!("{test}: XLT_REQUIRE_NVRTC is set but libnvrtc was not found");
    }
    eprintln!("skipping {test}: libnvrtc not found");
    false
}

/// The type class of a PTX parameter: 8 bytes (pointer, seed), f32, or a 4-byte integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ptx {
    Wide,
    Float,
    Int,
}

impl Ptx {
    /// Whether a table parameter of type `p` is passed as this PTX parameter.
    fn takes(self, p: Param) -> bool {
        matches!((self, p), (Ptx::Wide, Param::Ptr | Param::U64) | (Ptx::Float, Param::F32) | (Ptx::Int, Param::I32))
    }
}

/// The parameter classes of each `.entry` of a PTX text, by entry name.
fn ptx_entries(text: &str) -> Vec<(String, Vec<Ptx>)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(".entry ") {
        let rest = &text[i + 7..];
        let open = rest.find('(').expect("parameter list");
        let close = rest.find(')').expect("end of the parameter list");
        let params = rest[open + 1..close]
            .split(',')
            .filter(|p| p.contains(".param"))
            .map(|p| {
                if [".u64", ".b64", ".s64", ".f64"].iter().any(|t| p.contains(t)) {
                    Ptx::Wide
                } else if p.contains(".f32") {
                    Ptx::Float
                } else {
                    Ptx::Int
                }
            })
            .collect();
        out.push((rest[..open].trim().to_string(), params));
    }
    out
}

/// (file, entry name) → parameter classes, for every kernel NVRTC compiles for `arch`.
fn compile(arch: &'static str) -> BTreeMap<(String, String), Vec<Ptx>> {
    let compiled = xlt::cuda::driver::compile_with_nvrtc(arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
    let mut out = BTreeMap::new();
    for (file, ptx) in &compiled {
        let entries = ptx_entries(&ptx.to_src());
        assert!(!entries.is_empty(), "{arch}: kernels/{file} compiled to no entry point");
        for (name, params) in entries {
            out.insert((file.clone(), name), params);
        }
    }
    out
}

#[test]
fn every_kernel_compiles_and_the_table_lists_exactly_its_entry_points() {
    if !nvrtc_or_skip("every_kernel_compiles_and_the_table_lists_exactly_its_entry_points") {
        return;
    }
    let table: BTreeSet<(String, String)> =
        Kernel::entry_points().map(|(k, _, name)| (k.file().to_string(), name)).collect();
    assert!(table.len() > 70, "expected every kernel in the table, found {}", table.len());
    for arch in ["compute_80", "compute_90"] {
        let compiled: BTreeSet<(String, String)> = compile(arch).into_keys().collect();
        let missing: Vec<_> = table.difference(&compiled).collect();
        assert!(missing.is_empty(), "{arch}: entry points in the table that no file defines: {missing:?}");
        let unlisted: Vec<_> = compiled.difference(&table).collect();
        assert!(unlisted.is_empty(), "{arch}: kernels no launch can name (missing from the table): {unlisted:?}");
    }
}

#[test]
fn every_parameter_list_in_the_table_matches_the_ptx() {
    if !nvrtc_or_skip("every_parameter_list_in_the_table_matches_the_ptx") {
        return;
    }
    let compiled = compile("compute_90");
    let mut compared = 0;
    for (kernel, _, name) in Kernel::entry_points() {
        let want = &compiled[&(kernel.file().to_string(), name.clone())];
        let got = kernel.params();
        let ok = got.len() == want.len() && want.iter().zip(got).all(|(w, p)| w.takes(*p));
        assert!(ok, "{name}: the table says {got:?}, the PTX takes {want:?}");
        compared += 1;
    }
    assert_eq!(compared, Kernel::entry_points().count());
}

#[test]
fn a_launch_whose_arguments_do_not_match_its_kernel_is_refused() {
    use xlt::cuda::launch::grid;
    use xlt::cuda::{Dtype, KArg, Launch};
    let g = grid([1, 1, 1], 32, 0).expect("grid");
    let good = [KArg::Ptr(0), KArg::Ptr(0), KArg::I32(4)];
    assert!(Launch::new(Kernel::GeluForward, Dtype::Bf16, g, &good).is_ok());
    let err = |args: &[KArg], d: Dtype| Launch::new(Kernel::GeluForward, d, g, args).expect_err("refused").to_string();
    assert!(err(&good[..2], Dtype::F32).contains("do not match"));
    assert!(err(&[KArg::Ptr(0), KArg::Ptr(0), KArg::F32(4.0)], Dtype::F32).contains("do not match"));
    assert!(err(&good, Dtype::U32).contains("no U32 instantiation"));
    let e = Launch::new(Kernel::GlobalNormPartial, Dtype::Bf16, g, &good).expect_err("f32 only").to_string();
    assert!(e.contains("no Bf16 instantiation"), "{e}");
    assert!(grid([1, 70000, 1], 32, 0).is_err(), "grid y past 65535");
    assert!(grid([1, 1, 1], 2048, 0).is_err(), "more than 1024 threads");
}
