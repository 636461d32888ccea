//! The CUDA simulator's own C++ test program (kernels/sim/test): barriers,
//! shared memory, warp shuffles and votes, atomics and divergence detection,
//! until the Rust launch layer drives the simulator directly.

use std::process::Command;

#[test]
fn simulator_runtime_passes_its_cpp_tests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/sim/test");
    let out = Command::new("bash")
        .arg(format!("{dir}/run.sh"))
        .output()
        .expect("bash must be available to build the simulator tests");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kernels/sim/test/run.sh failed:\n{text}"
    );
    assert!(
        text.contains(" passed, 0 failed"),
        "no test summary in:\n{text}"
    );
}
