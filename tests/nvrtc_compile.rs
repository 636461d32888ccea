//! Every kernels/*.cu compiles with NVRTC for sm_80 and sm_90; prints the
//! registers, spills and shared memory of each kernel (ptxas -v), and fails
//! when a kernel of a hot family spills at sm_90 (a spill in the inner loop of
//! a convolution costs more than the registers it saves).
//!
//! With `cuobjdump` and `nvdisasm` (PyPI `nvidia-cuda-cuobjdump`,
//! `nvidia-cuda-nvdisasm`; cuobjdump found on `$STYLEGAN2_CUOBJDUMP`,
//! in `.ci/cuobjdump/nvidia/cu13/bin/` or on `PATH`) it also disassembles
//! the sm_90 cubins and fails when a tensor-core kernel (`*_tc_*`) has no
//! `HMMA` instruction, or a kernel of a hot family touches local memory
//! (`LDL`/`STL`: spills or a register array indexed at run time).
//!
//! Needs libnvrtc (no GPU): `pip install --target DIR nvidia-cuda-nvrtc` and
//! `LD_LIBRARY_PATH=DIR/nvidia/cu13/lib`. Says SKIPPED when NVRTC (or
//! cuobjdump, for the SASS checks) is missing, unless `STYLEGAN2_REQUIRE`
//! lists `nvrtc` (`cuobjdump`), as CI does, which makes that a failure
//! (tests/common/skip.rs).

mod common;
use common::skip::{skip, Need};
use std::path::PathBuf;
use std::process::Command;
use stylegan2::backend::cuda::{compile, nvrtc_present, NVRTC_HINT};

/// Kernel families whose kernels must not spill at sm_90.
const HOT_FAMILIES: [&str; 5] = ["modconv", "modconv_tc", "conv", "conv_tc", "upfirdn"];
/// Kernels of tensor-core families that only convert operands (no HMMA).
const TC_CONVERTERS: [&str; 2] = ["modconv_tc_weight", "conv_tc_weight"];

/// Per kernel: (name, registers, spill stores + loads in bytes, shared bytes, barriers).
fn ptxas_report(log: &str) -> Vec<(String, u32, u32, u32, u32)> {
    let num_before = |line: &str, unit: &str| -> u32 {
        line.split(',')
            .find_map(|part| {
                let part = part.trim();
                let rest = part.strip_suffix(unit)?.trim();
                rest.rsplit(' ').next()?.parse().ok()
            })
            .unwrap_or(0)
    };
    let mut out: Vec<(String, u32, u32, u32, u32)> = Vec::new();
    for line in log.lines() {
        if let Some(i) = line.find("Compiling entry function '") {
            let name = line[i + 26..].split('\'').next().unwrap_or("?").to_string();
            out.push((name, 0, 0, 0, 0));
        } else if let Some(k) = out.last_mut() {
            if line.contains("bytes spill stores") {
                k.2 =
                    num_before(line, "bytes spill stores") + num_before(line, "bytes spill loads");
            }
            if line.contains("Used ") && line.contains("registers") {
                let after = &line[line.find("Used ").unwrap() + 5..];
                k.1 = after
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                k.3 = num_before(line, "bytes smem");
                k.4 = num_before(line, "barriers");
            }
        }
    }
    out
}

/// The cuobjdump to use, if any.
fn cuobjdump() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("STYLEGAN2_CUOBJDUMP").map(PathBuf::from),
        Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(".ci/cuobjdump/nvidia/cu13/bin/cuobjdump"),
        ),
        Some(PathBuf::from("cuobjdump")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Per kernel of a cubin: (name, its SASS), from `cuobjdump -sass`.
fn sass_by_kernel(tool: &PathBuf, cubin: &[u8], tag: &str) -> Vec<(String, String)> {
    let path =
        std::env::temp_dir().join(format!("stylegan2-sass-{}-{tag}.cubin", std::process::id()));
    std::fs::write(&path, cubin).unwrap();
    // cuobjdump runs nvdisasm, which the PyPI wheels install beside it.
    let mut cmd = Command::new(tool);
    if let Some(dir) = tool.parent().filter(|d| d.join("nvdisasm").exists()) {
        let path_var = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path_var));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap())
            .env("NVDISASM_PATH", dir);
    }
    let out = cmd.arg("-sass").arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "cuobjdump -sass {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut kernels: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.trim().strip_prefix("Function : ") {
            kernels.push((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = kernels.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    kernels
}

/// What the SASS of `kernel` (of a hot family when `hot`) breaks, if anything.
fn sass_problems(kernel: &str, sass: &str, hot: bool) -> Vec<String> {
    let has = |op: &str| {
        sass.lines().any(|l| {
            l.split_whitespace()
                .any(|w| w == op || w.starts_with(&format!("{op}.")))
        })
    };
    let mut p = Vec::new();
    if kernel.contains("_tc_") && !TC_CONVERTERS.contains(&kernel) && !has("HMMA") {
        p.push(format!("{kernel}: tensor-core kernel without HMMA"));
    }
    if hot && (has("LDL") || has("STL")) {
        p.push(format!("{kernel}: local-memory traffic (LDL/STL)"));
    }
    p
}

#[test]
fn every_kernel_file_compiles_for_sm80_and_sm90() {
    if !nvrtc_present() {
        skip(Need::Nvrtc, NVRTC_HINT);
        return;
    }
    let (major, minor) = compile::nvrtc_version().unwrap();
    println!("NVRTC {major}.{minor}");
    let families = compile::families();
    let objdump = cuobjdump();
    match &objdump {
        Some(t) => println!("SASS checks with {}", t.display()),
        None => skip(
            Need::Cuobjdump,
            "SASS checks not run: no cuobjdump (pip install --target .ci/cuobjdump \
             nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm, or set STYLEGAN2_CUOBJDUMP)",
        ),
    }
    let mut spills = Vec::new();
    let mut sass_failures = Vec::new();
    assert!(!families.is_empty(), "no kernel files embedded");
    for family in families {
        for arch in ["sm_80", "sm_90"] {
            let t = std::time::Instant::now();
            let c = compile::compile_cubin(family, arch, &["--ptxas-options=-v"])
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                c.cubin.starts_with(b"\x7fELF"),
                "{family} {arch}: not a cubin"
            );
            if let (Some(tool), "sm_90") = (&objdump, arch) {
                let kernels = sass_by_kernel(tool, &c.cubin, family);
                assert!(!kernels.is_empty(), "{family}: no kernels in the SASS");
                for (name, sass) in kernels {
                    let count = |op: &str| sass.matches(op).count();
                    let (hmma, local) = (count("HMMA"), count("LDL") + count("STL"));
                    if hmma + local > 0 {
                        println!("  SASS {name}: {hmma} HMMA, {local} LDL/STL");
                    }
                    sass_failures.extend(sass_problems(
                        &name,
                        &sass,
                        HOT_FAMILIES.contains(&family),
                    ));
                }
            }
            let report = ptxas_report(&c.log);
            assert!(
                !report.is_empty(),
                "{family} {arch}: no ptxas report in:\n{}",
                c.log
            );
            println!(
                "kernels/{family}.cu {arch}: {} kernels, {} bytes, {:.2} s",
                report.len(),
                c.cubin.len(),
                t.elapsed().as_secs_f64()
            );
            for (name, regs, spill, smem, bar) in report {
                println!(
                    "  {name:<24} {regs:>3} registers  {spill:>4} spill bytes  {smem:>6} smem bytes  {bar} barriers"
                );
                if spill > 0 && arch == "sm_90" && HOT_FAMILIES.contains(&family) {
                    spills.push(format!("{family}.cu {name}: {spill} spill bytes"));
                }
            }
        }
    }
    assert!(
        sass_failures.is_empty(),
        "sm_90 SASS checks failed:\n{}",
        sass_failures.join("\n")
    );
    assert!(
        spills.is_empty(),
        "hot kernels spill at sm_90:\n{}",
        spills.join("\n")
    );
}
