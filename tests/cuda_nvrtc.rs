//! The NVRTC fallback, checked without a GPU: every `kernels/*.cu` compiles with NVRTC (the path
//! a build without nvcc takes at run time), and every kernel name the Rust wrappers load
//! (`g.kernel("op", dtype)` → `op_f32`, `op_bf16`, `op_f16`; `g.func("name")`) is an entry point
//! of the compiled code, so a misspelt or missing instantiation fails here instead of on a GPU;
//! and every launch in the wrappers passes as many arguments, of the same sizes, as its kernel
//! declares in the PTX.
//!
//! Needs libnvrtc on the library path (`tools/install-nvcc.sh` installs it; `.ci/run` puts it on
//! `LD_LIBRARY_PATH`); skips with a message without it, unless `XLT_REQUIRE_NVRTC` is set.

use std::collections::BTreeSet;
use std::path::Path;

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

/// Kernel names the wrappers in src/cuda load, read from their source.
fn requested_kernels() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut files = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cuda")];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).expect("read src/cuda").map(|e| e.expect("entry").path()));
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read source");
        for (pat, typed) in [("g.kernel(\"", true), ("g.func(\"", false)] {
            for (i, _) in text.match_indices(pat) {
                let rest = &text[i + pat.len()..];
                let name = &rest[..rest.find('"').expect("closing quote")];
                let f32_only = rest.split(')').next().is_some_and(|args| args.contains("Dtype::F32"));
                if typed && !f32_only {
                    for s in ["f32", "bf16", "f16"] {
                        names.insert(format!("{name}_{s}"));
                    }
                } else if typed {
                    names.insert(format!("{name}_f32"));
                } else {
                    names.insert(name.to_string());
                }
            }
        }
    }
    names
}

#[test]
fn every_kernel_compiles_with_nvrtc_and_every_requested_name_exists() {
    if !nvrtc_or_skip("every_kernel_compiles_with_nvrtc_and_every_requested_name_exists") {
        return;
    }
    let wanted = requested_kernels();
    assert!(wanted.len() > 60, "expected the wrappers to request many kernels, found {wanted:?}");
    for arch in ["compute_80", "compute_90"] {
        let compiled = xlt::cuda::device::compile_with_nvrtc(arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        let mut entries = BTreeSet::new();
        for (name, ptx) in &compiled {
            let text = ptx.to_src();
            let found: Vec<&str> = text
                .match_indices(".entry ")
                .map(|(i, _)| {
                    let rest = &text[i + 7..];
                    &rest[..rest.find('(').expect("entry name ends at its parameter list")]
                })
                .collect();
            assert!(!found.is_empty(), "{arch}: kernels/{name} compiled to no entry point");
            entries.extend(found.into_iter().map(|s| s.trim().to_string()));
        }
        let missing: Vec<&String> = wanted.iter().filter(|n| !entries.contains(*n)).collect();
        assert!(missing.is_empty(), "{arch}: kernels the wrappers load but no file defines: {missing:?}");
    }
}

/// Kind of a kernel argument: 8 bytes (pointer, seed), a 4-byte float, a 4-byte int, or a
/// 4-byte scalar whose Rust name does not say which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArgKind {
    Wide,
    Float,
    Int,
    Narrow,
}

impl ArgKind {
    /// Whether a launch argument of kind `self` fits a kernel parameter of kind `param`.
    fn fits(self, param: ArgKind) -> bool {
        self == param || (self == ArgKind::Narrow && matches!(param, ArgKind::Float | ArgKind::Int))
    }
}

/// The kind of a launch argument from its Rust expression: pointers and seeds are wide; the
/// wrappers name float scalars after what they are and int sizes with an `_i32`/`_i`/`32` suffix.
fn arg_kind(expr: &str) -> ArgKind {
    const FLOATS: &[&str] = &["scale", "eps", "step_size", "p_drop", "decay", "beta1", "beta2", "bc2_sqrt", "dloss"];
    if expr.ends_with(".ptr") || expr.ends_with("_ptr") || expr.contains("seed") {
        ArgKind::Wide
    } else if FLOATS.contains(&expr) {
        ArgKind::Float
    } else if expr.ends_with("_i32") || expr.ends_with("_i") || expr.ends_with("32") {
        ArgKind::Int
    } else {
        ArgKind::Narrow
    }
}

/// (kernel name, typed, argument kinds, file) of every launch in src/cuda, read from the
/// wrappers' source: after `g.kernel("op", ..)` / `g.func("name")`, each `.arg(&x)` up to
/// `launch(` is an argument.
fn wrapper_launches() -> Vec<(String, bool, Vec<ArgKind>, String)> {
    let mut out = Vec::new();
    let mut files = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cuda")];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).expect("read src/cuda").map(|e| e.expect("entry").path()));
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read source");
        let mut current: Option<(String, bool)> = None;
        let mut args: Vec<ArgKind> = Vec::new();
        let mut rest = text.as_str();
        loop {
            let next = ["g.kernel(\"", "g.func(\"", ".arg(&", "launch(&mut "]
                .iter()
                .filter_map(|pat| rest.find(pat).map(|i| (i, *pat)))
                .min_by_key(|(i, _)| *i);
            let Some((i, pat)) = next else { break };
            rest = &rest[i + pat.len()..];
            match pat {
                ".arg(&" => {
                    args.push(arg_kind(&rest[..rest.find(')').expect("closing paren")]));
                }
                "launch(&mut " => {
                    if let Some((name, typed)) = &current {
                        out.push((name.clone(), *typed, std::mem::take(&mut args), p.display().to_string()));
                    }
                    args.clear();
                }
                _ => {
                    let name = &rest[..rest.find('"').expect("closing quote")];
                    current = Some((name.to_string(), pat == "g.kernel(\""));
                    args.clear();
                }
            }
        }
    }
    out
}

/// Kinds of the parameters of each `.entry` of a PTX text.
fn ptx_params(text: &str) -> Vec<(String, Vec<ArgKind>)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(".entry ") {
        let rest = &text[i + 7..];
        let open = rest.find('(').expect("parameter list");
        let close = rest.find(')').expect("end of the parameter list");
        let sizes = rest[open + 1..close]
            .split(',')
            .filter(|p| p.contains(".param"))
            .map(|p| {
                if [".u64", ".b64", ".s64", ".f64"].iter().any(|t| p.contains(t)) {
                    ArgKind::Wide
                } else if p.contains(".f32") {
                    ArgKind::Float
                } else {
                    ArgKind::Int
                }
            })
            .collect();
        out.push((rest[..open].trim().to_string(), sizes));
    }
    out
}

#[test]
fn every_launch_passes_the_kernels_parameters() {
    if !nvrtc_or_skip("every_launch_passes_the_kernels_parameters") {
        return;
    }
    let compiled = xlt::cuda::device::compile_with_nvrtc("compute_90").expect("compile");
    let mut params = std::collections::BTreeMap::new();
    for (_, ptx) in &compiled {
        params.extend(ptx_params(&ptx.to_src()));
    }
    let launches = wrapper_launches();
    assert!(launches.len() > 25, "expected many launches, found {}", launches.len());
    let mut compared = 0;
    for (name, typed, args, file) in launches {
        let names: Vec<String> =
            if typed { ["f32", "bf16", "f16"].iter().map(|s| format!("{name}_{s}")).collect() } else { vec![name] };
        for n in names {
            let Some(want) = params.get(&n) else { continue }; // f32-only kernels: the other test
            let ok = args.len() == want.len() && args.iter().zip(want).all(|(a, w)| a.fits(*w));
            assert!(ok, "{file}: the launch of {n} passes {args:?}, the kernel takes {want:?}");
            compared += 1;
        }
    }
    assert!(compared > 60, "only {compared} launches were compared with their kernels");
}

/// The kind of a plan argument, as `ptx_params` reads kernel parameters.
fn karg_kind(a: &xlt::cuda::KArg) -> ArgKind {
    match a {
        xlt::cuda::KArg::Ptr(_) | xlt::cuda::KArg::U64(_) => ArgKind::Wide,
        xlt::cuda::KArg::F32(_) => ArgKind::Float,
        xlt::cuda::KArg::I32(_) => ArgKind::Int,
    }
}

#[test]
fn every_flash_plan_matches_its_kernel() {
    if !nvrtc_or_skip("every_flash_plan_matches_its_kernel") {
        return;
    }
    use xlt::cuda::ops::{flash_backward_plans, flash_forward_plan, FLASH_HEAD_SIZES};
    use xlt::cuda::{Dev, Dtype};
    let compiled = xlt::cuda::device::compile_with_nvrtc("compute_80").expect("compile");
    let mut params = std::collections::BTreeMap::new();
    for (_, ptx) in &compiled {
        params.extend(ptx_params(&ptx.to_src()));
    }
    let (b, t) = (2, 70);
    let mut compared = 0;
    for dt in [Dtype::Bf16, Dtype::F16] {
        for hs in FLASH_HEAD_SIZES {
            let (nh, c) = (2, 2 * hs);
            let v = |len: usize, dtype: Dtype| Dev { ptr: 0, len, dtype };
            let (qkv, out, lse, mask) =
                (v(b * t * 3 * c, dt), v(b * t * c, dt), v(b * 2 * t, Dtype::F32), v(b * t, Dtype::F32));
            let fwd = flash_forward_plan(out, lse, qkv, mask, b, t, c, nh, 0.1, 7).expect("forward plan");
            let bwd = flash_backward_plans(qkv, lse, out, out, qkv, lse, mask, b, t, c, nh, 0.1, 7).expect("backward");
            for plan in std::iter::once(&fwd).chain(bwd.iter()) {
                let want = params.get(&plan.name).unwrap_or_else(|| panic!("no kernel named {}", plan.name));
                let got: Vec<ArgKind> = plan.args.iter().map(karg_kind).collect();
                assert_eq!(&got, want, "{}: the plan passes {got:?}, the kernel takes {want:?}", plan.name);
                assert!(plan.block.0 * plan.block.1 * plan.block.2 <= 1024, "{}: block too large", plan.name);
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 2 * FLASH_HEAD_SIZES.len() * 4);
}
