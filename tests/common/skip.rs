//! The one policy for a test that needs something the machine may lack
//! (NVRTC, a GPU, python3): it says `SKIPPED: <test>: <reason>` where the
//! person running `cargo test` sees it, and it fails instead when the
//! environment requires that piece.
//!
//! `STYLEGAN2_REQUIRE` lists the required pieces, comma-separated
//! (`nvrtc`, `gpu`, `python3`, `cuobjdump`); CI (`.ci/run`) sets
//! `nvrtc,cuobjdump,python3`, a GPU
//! session (`bench/gpu-run.sh`) adds `gpu`. `STYLEGAN2_REQUIRE_NVRTC=1`, the
//! older spelling, still requires `nvrtc`.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Mutex;

/// What a test may need and a machine may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// libnvrtc.so.13 (kernel compilation; no GPU needed).
    Nvrtc,
    /// A CUDA GPU with its driver.
    Gpu,
    /// A `python3` interpreter (scripts under bench/).
    Python3,
    /// `cuobjdump` with `nvdisasm` (SASS checks of tests/nvrtc_compile.rs).
    Cuobjdump,
    /// The absence of a GPU (tests of the errors on a machine without one).
    /// Never required.
    NoGpu,
}

impl Need {
    /// The name used in `STYLEGAN2_REQUIRE`.
    pub fn name(self) -> &'static str {
        match self {
            Need::Nvrtc => "nvrtc",
            Need::Gpu => "gpu",
            Need::Python3 => "python3",
            Need::Cuobjdump => "cuobjdump",
            Need::NoGpu => "no-gpu",
        }
    }
}

/// Whether the environment makes `need` mandatory.
pub fn required(need: Need) -> bool {
    let listed = std::env::var("STYLEGAN2_REQUIRE").is_ok_and(|v| {
        v.split(',')
            .any(|p| p.trim().eq_ignore_ascii_case(need.name()))
    });
    let legacy =
        need == Need::Nvrtc && std::env::var("STYLEGAN2_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    listed || legacy
}

/// The text of a skip: `SKIPPED: <test>: needs <need>: <reason>`.
pub fn message(need: Need, reason: &str) -> String {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    format!("SKIPPED: {test}: needs {}: {reason}", need.name())
}

/// The gist of an error for a one-line skip: without the advice in
/// parentheses and the "unavailable: " prefix of `Device::cuda`'s errors
/// (`libcuda.so not found: no NVIDIA driver on this machine`).
pub fn short_reason(error: &str) -> &str {
    let e = error.strip_prefix("unavailable: ").unwrap_or(error);
    e.split_once(" (").map_or(e, |(gist, _)| gist).trim()
}

/// Records that the calling test (or part of it) does not run because
/// `need` is absent, for `reason`. Panics when `need` is required (see the
/// module doc); otherwise writes the message straight to the process's
/// stderr, which the test harness does not capture, so it shows in the
/// output of a passing `cargo test`. The caller then returns or goes on
/// without that part.
pub fn skip(need: Need, reason: &str) {
    report(need, message(need, reason));
}

/// As `skip`, for a part that every test of this test binary lacks (the
/// GPU runs of the kernel tests): said once per binary, under its name.
pub fn skip_in_binary(need: Need, reason: &str) {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Cargo names a test executable `<target>-<hash>`.
    let binary = stem
        .rsplit_once('-')
        .map_or(stem.as_str(), |(name, _)| name);
    report(
        need,
        format!("SKIPPED: {binary}: needs {}: {reason}", need.name()),
    );
}

fn report(need: Need, text: String) {
    report_with(need, text, &mut |line| {
        // `eprintln!` is captured by libtest for a passing test; a direct
        // write to the stderr handle is not. One write, so that the line
        // does not interleave with the harness's own output.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    })
}

/// As `skip`, writing the line (once per text and process) to `out`
/// instead of the real stderr: tests/skip_policy.rs checks the policy
/// without printing a skip that is not one.
pub fn skip_with(need: Need, reason: &str, out: &mut dyn FnMut(&str)) {
    report_with(need, message(need, reason), out)
}

fn report_with(need: Need, text: String, out: &mut dyn FnMut(&str)) {
    assert!(
        !required(need),
        "'{}' is required here (STYLEGAN2_REQUIRE) but absent, so this may not skip: {text}",
        need.name()
    );
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = SEEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(text.clone());
    if first {
        out(&format!("{text}\n"));
    }
}
