//! Finite-difference checks (first and second order) of the affine grid
//! sampling op and of its input gradient as an op of its own.
//!
//! The output is squared before the check so the second-order check
//! differentiates the backward rules themselves (the op is linear in x).

mod common;
use common::{gradcheck, input, Check};
use stylegan2::ops::grid_sample::{grid_sample_affine, grid_sample_affine_input_grad};
use stylegan2::{Device, Tensor};

/// Two samples: a rotation with anisotropic scale and translation that
/// leaves part of the output outside the input (zero padding), and a
/// shrink with a shift.
fn theta() -> Tensor {
    let (c, s) = (0.7f32.cos(), 0.7f32.sin());
    Tensor::from_vec(
        vec![
            1.3 * c,
            -0.8 * s,
            0.21,
            1.3 * s,
            0.8 * c,
            -0.13,
            0.6,
            0.05,
            -0.3,
            -0.02,
            0.7,
            0.4,
        ],
        [2, 2, 3],
        Device::Cpu,
    )
    .unwrap()
}

#[test]
fn grid_sample_affine_first_and_second_order() {
    let x = input(&[2, 3, 5, 7], 1);
    let t = theta();
    gradcheck(
        "grid_sample_affine",
        |v| grid_sample_affine(&v[0], &t, [6, 4])?.square(),
        &[x],
        Check::default(),
    );
}

#[test]
fn grid_sample_affine_input_grad_first_and_second_order() {
    let g = input(&[2, 3, 6, 4], 2);
    let t = theta();
    gradcheck(
        "grid_sample_affine_input_grad",
        |v| grid_sample_affine_input_grad(&v[0], &t, [5, 7])?.square(),
        &[g],
        Check::default(),
    );
}

#[test]
fn theta_must_be_constant_and_shaped() {
    let x = input(&[2, 1, 3, 3], 3);
    let t = theta();
    t.set_requires_grad(true).unwrap();
    let e = grid_sample_affine(&x, &t, [3, 3]).unwrap_err().to_string();
    assert!(e.contains("constant"), "{e}");
    let bad = Tensor::zeros([1, 2, 3], Device::Cpu);
    let e = grid_sample_affine(&x, &bad, [3, 3])
        .unwrap_err()
        .to_string();
    assert!(e.contains("[N, 2, 3]") && e.contains("[1, 2, 3]"), "{e}");
}
