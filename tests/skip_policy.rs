//! The skip policy of tests/common/skip.rs: a piece listed in
//! `STYLEGAN2_REQUIRE` (or NVRTC under the older `STYLEGAN2_REQUIRE_NVRTC=1`)
//! turns a skip into a failure; an unlisted one passes with its message.
//! One test in this binary, so setting the environment races with nothing.

mod common;
use common::skip::{message, required, short_reason, skip_with, Need};
use std::sync::Mutex;

#[test]
fn a_required_piece_fails_and_an_optional_one_says_skipped() {
    // The lines go here, not to the real stderr: a policy check printed
    // as "SKIPPED" in every test run read as a real skip.
    let said = Mutex::new(Vec::<String>::new());
    let run = |need| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            skip_with(need, "policy check", &mut |line| {
                said.lock().unwrap().push(line.to_string())
            })
        }))
    };
    std::env::remove_var("STYLEGAN2_REQUIRE_NVRTC");

    std::env::set_var("STYLEGAN2_REQUIRE", "nvrtc, Python3");
    assert!(required(Need::Nvrtc) && required(Need::Python3));
    assert!(!required(Need::Gpu) && !required(Need::NoGpu));
    assert!(run(Need::Nvrtc).is_err(), "a required piece must fail");
    assert!(
        run(Need::Gpu).is_ok(),
        "an optional piece only says SKIPPED"
    );
    assert_eq!(
        said.lock().unwrap().as_slice(),
        ["SKIPPED: a_required_piece_fails_and_an_optional_one_says_skipped: needs gpu: policy check\n"]
    );

    std::env::remove_var("STYLEGAN2_REQUIRE");
    assert!(!required(Need::Nvrtc));
    std::env::set_var("STYLEGAN2_REQUIRE_NVRTC", "1");
    assert!(required(Need::Nvrtc) && !required(Need::Gpu));
    std::env::remove_var("STYLEGAN2_REQUIRE_NVRTC");

    let text = message(Need::Gpu, "no driver");
    assert!(
        text.starts_with("SKIPPED: a_required_piece_fails_and_an_optional_one_says_skipped: needs gpu: no driver"),
        "{text}"
    );
}

/// A GPU skip is one short line: the driver error without its advice.
#[test]
fn a_gpu_skip_gives_the_gist_of_the_error() {
    let e = "unavailable: libcuda.so not found: no NVIDIA driver on this machine (install the NVIDIA driver to use a GPU; Device::Cpu and Device::Sim need none)";
    assert_eq!(
        short_reason(e),
        "libcuda.so not found: no NVIDIA driver on this machine"
    );
    assert_eq!(short_reason("cuInit failed: 100"), "cuInit failed: 100");
}
