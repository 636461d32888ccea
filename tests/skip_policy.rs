//! The skip policy of tests/common/skip.rs: a piece listed in
//! `STYLEGAN2_REQUIRE` (or NVRTC under the older `STYLEGAN2_REQUIRE_NVRTC=1`)
//! turns a skip into a failure; an unlisted one passes with its message.
//! One test in this binary, so setting the environment races with nothing.

mod common;
use common::skip::{message, required, skip, Need};

#[test]
fn a_required_piece_fails_and_an_optional_one_says_skipped() {
    let run = |need| {
        std::panic::catch_unwind(|| {
            skip(
                need,
                "not a real skip: tests/skip_policy.rs checks the policy",
            )
        })
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
