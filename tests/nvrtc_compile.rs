//! Every kernels/*.cu compiles with NVRTC for sm_80 and sm_90; prints the
//! registers, spills and shared memory of each kernel (ptxas -v), and fails
//! when a kernel of a hot family spills at sm_90 (a spill in the inner loop of
//! a convolution costs more than the registers it saves).
//!
//! Needs libnvrtc (no GPU): `pip install --target DIR nvidia-cuda-nvrtc` and
//! `LD_LIBRARY_PATH=DIR/nvidia/cu13/lib`. Says SKIPPED when NVRTC is
//! missing, unless `STYLEGAN2_REQUIRE=nvrtc` (CI) makes that a failure
//! (tests/common/skip.rs).

mod common;
use common::skip::{skip, Need};
use stylegan2::backend::cuda::{compile, nvrtc_present, NVRTC_HINT};

/// Kernel families whose kernels must not spill at sm_90.
const HOT_FAMILIES: [&str; 3] = ["modconv", "conv", "upfirdn"];

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

#[test]
fn every_kernel_file_compiles_for_sm80_and_sm90() {
    if !nvrtc_present() {
        skip(Need::Nvrtc, NVRTC_HINT);
        return;
    }
    let (major, minor) = compile::nvrtc_version().unwrap();
    println!("NVRTC {major}.{minor}");
    let families = compile::families();
    let mut spills = Vec::new();
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
        spills.is_empty(),
        "hot kernels spill at sm_90:\n{}",
        spills.join("\n")
    );
}
