//! Finite-difference checks (first and second order) of the demodulation
//! coefficients and the modulated convolution, on both execution paths.

mod common;
use common::{gradcheck, input, Check};
use stylegan2::ops::modconv::{demod_coefficients, modulated_conv2d, ModConv, ModConvPath};
use stylegan2::ops::upfirdn::setup_filter;
use stylegan2::Device;

#[test]
fn demodulation_coefficients() {
    // Styles offset from 0 like real affine outputs (bias init 1).
    let s = input(&[3, 5], 1).add_scalar(1.0).unwrap().detach();
    s.set_requires_grad(true).unwrap();
    gradcheck(
        "demod_coefficients",
        |t| demod_coefficients(&t[0], &t[1]),
        &[s, input(&[4, 5, 3, 3], 2)],
        Check::default(),
    );
}

#[test]
fn modulated_conv2d_all_layer_kinds_both_paths() {
    let f = setup_filter(&[1.0, 3.0, 3.0, 1.0], Device::Cpu).unwrap();
    let cases = [
        (
            "3x3 up1",
            ModConv::conv3x3(),
            vec![4, 3, 3, 3],
            vec![2, 3, 5, 4],
        ),
        (
            "3x3 up2",
            ModConv::conv3x3_up2(),
            vec![2, 3, 3, 3],
            vec![1, 3, 3, 4],
        ),
        (
            "1x1 torgb",
            ModConv::torgb(),
            vec![3, 5, 1, 1],
            vec![3, 5, 3, 3],
        ),
    ];
    for (name, p, wshape, xshape) in cases {
        for path in [ModConvPath::Unfused, ModConvPath::Grouped] {
            let n = xshape[0];
            let s = input(&[n, wshape[1]], 3).add_scalar(1.0).unwrap().detach();
            s.set_requires_grad(true).unwrap();
            gradcheck(
                &format!("modulated_conv2d {name} {path:?}"),
                |t| modulated_conv2d(&t[0], &t[1], &t[2], Some(&f), p, path),
                &[input(&xshape, 4), input(&wshape, 5), s],
                Check::default(),
            );
        }
    }
}

#[test]
fn modulated_conv2d_rejects_bad_shapes() {
    let x = input(&[2, 3, 5, 5], 1);
    let w = input(&[4, 3, 3, 3], 2);
    let s = input(&[2, 4], 3);
    let e = modulated_conv2d(&x, &w, &s, None, ModConv::conv3x3(), ModConvPath::Unfused)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("modulated_conv2d") && e.contains("[2, 4]"),
        "{e}"
    );
    let s = input(&[2, 3], 3);
    let e = modulated_conv2d(
        &x,
        &w,
        &s,
        None,
        ModConv::conv3x3_up2(),
        ModConvPath::Unfused,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("filter"), "{e}");
}
