//! Finite-difference checks (first and second order) of upfirdn2d,
//! bias_act, bias_act_grad and noise injection.
//!
//! Each op output is squared before the check so the second-order check
//! differentiates the backward rules themselves (for a linear op alone the
//! gradient would not depend on the input).

mod common;
use common::{gradcheck, input, input_away_from_zero, values, Check};
use stylegan2::ops::bias_act::{bias_act, bias_act_grad, Act, BiasAct};
use stylegan2::ops::noise::noise_inject;
use stylegan2::ops::upfirdn::{downsample2d, upfirdn2d, upsample2d, UpFirDn};
use stylegan2::{Device, Tensor};

/// A constant (no grad) tensor of `values`.
fn constant(dims: &[usize], seed: u64) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(values(n, seed), dims.to_vec(), Device::Cpu).unwrap()
}

fn check_upfirdn(name: &str, f: &Tensor, p: UpFirDn) {
    let x = input(&[2, 3, 5, 7], 1);
    gradcheck(
        name,
        |t| upfirdn2d(&t[0], f, &p)?.square(),
        &[x],
        Check::default(),
    );
}

#[test]
fn upfirdn2d_2d_filter() {
    // Non-symmetric 3×4 filter: a wrong flip or transposed axis shows.
    let f = constant(&[3, 4], 7);
    let base = UpFirDn::default();
    check_upfirdn(
        "up2",
        &f,
        UpFirDn {
            up: [2, 2],
            pad: [2, 1, 1, 2],
            ..base
        },
    );
    check_upfirdn(
        "down2",
        &f,
        UpFirDn {
            down: [2, 2],
            pad: [1, 1, 1, 1],
            ..base
        },
    );
    check_upfirdn(
        "pad",
        &f,
        UpFirDn {
            pad: [1, 2, 0, 3],
            ..base
        },
    );
    check_upfirdn(
        "crop",
        &f,
        UpFirDn {
            pad: [-1, 2, 1, -2],
            ..base
        },
    );
    check_upfirdn(
        "flip_gain4",
        &f,
        UpFirDn {
            up: [2, 2],
            pad: [1, 2, 2, 0],
            flip_filter: true,
            gain: 4.0,
            ..base
        },
    );
    check_upfirdn(
        "up_x_down_y",
        &f,
        UpFirDn {
            up: [2, 1],
            down: [1, 2],
            pad: [0, -1, 2, 1],
            flip_filter: true,
            ..base
        },
    );
    check_upfirdn(
        "up3_down2_crop",
        &f,
        UpFirDn {
            up: [3, 3],
            down: [2, 2],
            pad: [-2, 1, 1, -1],
            gain: 4.0,
            ..base
        },
    );
}

#[test]
fn upfirdn2d_1d_filter() {
    let f = constant(&[4], 8);
    let base = UpFirDn::default();
    check_upfirdn(
        "sep_up2",
        &f,
        UpFirDn {
            up: [2, 2],
            pad: [2, 1, 2, 1],
            gain: 4.0,
            ..base
        },
    );
    check_upfirdn(
        "sep_down2_flip",
        &f,
        UpFirDn {
            down: [2, 2],
            pad: [1, 2, 0, 1],
            flip_filter: true,
            ..base
        },
    );
    check_upfirdn(
        "sep_crop",
        &f,
        UpFirDn {
            pad: [-1, 3, 2, -1],
            ..base
        },
    );
}

#[test]
fn upsample2d_downsample2d() {
    let f = constant(&[4, 4], 9);
    let x = input(&[1, 2, 5, 4], 2);
    gradcheck(
        "upsample2d",
        |t| upsample2d(&t[0], &f, 2, 1.0)?.square(),
        std::slice::from_ref(&x),
        Check::default(),
    );
    gradcheck(
        "downsample2d",
        |t| downsample2d(&t[0], &f, 2, 1.0)?.square(),
        &[x],
        Check::default(),
    );
}

/// `x` such that every `x + b` is at least 0.2 from the lrelu kink and every
/// output at least 0.1 from the clamp bounds (eps = 1e-2 never crosses them).
fn bias_act_inputs(dims: &[usize], dim: usize, p: &BiasAct, seed: u64) -> (Tensor, Tensor) {
    let c = dims[dim];
    let step: usize = dims[dim + 1..].iter().product();
    let b: Vec<f32> = values(c, seed + 1).iter().map(|v| v * 0.1).collect();
    let n: usize = dims.iter().product();
    let mut pool = values(64 * n, seed).into_iter().map(|v| v * 1.5);
    let x: Vec<f32> = (0..n)
        .map(|i| {
            let bi = b[(i / step) % c];
            pool.by_ref()
                .find(|&v| {
                    let s = v + bi;
                    let a = match p.act {
                        Act::Linear => s,
                        Act::Lrelu { alpha } => {
                            if s > 0.0 {
                                s
                            } else {
                                alpha * s
                            }
                        }
                    };
                    let y = a * p.gain;
                    s.abs() >= 0.2 && p.clamp.is_none_or(|cl| (y.abs() - cl).abs() >= 0.1)
                })
                .expect("enough candidate inputs")
        })
        .collect();
    let x = Tensor::from_vec(x, dims.to_vec(), Device::Cpu).unwrap();
    let b = Tensor::from_vec(b, vec![c], Device::Cpu).unwrap();
    x.set_requires_grad(true).unwrap();
    b.set_requires_grad(true).unwrap();
    (x, b)
}

fn bias_act_params() -> Vec<(&'static str, BiasAct)> {
    vec![
        ("linear", BiasAct::linear()),
        (
            "linear_gain_clamp",
            BiasAct {
                gain: 2.0,
                clamp: Some(1.5),
                ..BiasAct::linear()
            },
        ),
        ("lrelu", BiasAct::lrelu()),
        (
            "lrelu_clamp",
            BiasAct {
                act: Act::Lrelu { alpha: 0.2 },
                gain: 4.0,
                clamp: Some(1.0),
            },
        ),
    ]
}

#[test]
fn bias_act_wrt_x_and_b() {
    for (name, p) in bias_act_params() {
        for (dims, dim) in [
            (&[3usize, 5, 4, 3][..], 1usize),
            (&[2, 7], 1),
            (&[3, 5, 4, 3], 2),
        ] {
            let (x, b) = bias_act_inputs(dims, dim, &p, 3);
            if p.clamp.is_some() {
                let y = bias_act(&x, Some(&b), dim, &p).unwrap().to_vec();
                let clamped = y.iter().filter(|v| v.abs() >= p.clamp.unwrap()).count();
                assert!(
                    clamped > 0 && clamped < y.len(),
                    "{name}: {clamped} of {} clamped",
                    y.len()
                );
            }
            gradcheck(
                &format!("bias_act {name} {dims:?} dim {dim}"),
                |t| bias_act(&t[0], Some(&t[1]), dim, &p)?.square(),
                &[x, b],
                Check::default(),
            );
        }
    }
}

#[test]
fn bias_act_without_bias() {
    let p = BiasAct::lrelu();
    let x = input_away_from_zero(&[2, 3, 4], 5, 0.2);
    gradcheck(
        "bias_act no bias",
        |t| bias_act(&t[0], None, 0, &p)?.square(),
        &[x],
        Check::default(),
    );
}

#[test]
fn bias_act_grad_wrt_dy() {
    for (name, p) in bias_act_params() {
        let (x, b) = bias_act_inputs(&[3, 5, 4, 3], 1, &p, 4);
        let y = bias_act(&x, Some(&b), 1, &p).unwrap().detach();
        let dy = input(&[3, 5, 4, 3], 6);
        gradcheck(
            &format!("bias_act_grad {name}"),
            |t| bias_act_grad(&t[0], &y, &p)?.square(),
            &[dy],
            Check::default(),
        );
    }
}

#[test]
fn noise_inject_wrt_all() {
    for noise_dims in [[2usize, 1, 4, 5], [1, 1, 4, 5]] {
        for strength_dims in [&[1usize][..], &[]] {
            let x = input(&[2, 3, 4, 5], 11);
            let noise = input(&noise_dims, 12);
            let s = Tensor::from_vec(vec![0.7], strength_dims.to_vec(), Device::Cpu).unwrap();
            s.set_requires_grad(true).unwrap();
            gradcheck(
                &format!("noise_inject noise {noise_dims:?} strength {strength_dims:?}"),
                |t| noise_inject(&t[0], &t[1], &t[2])?.square(),
                &[x, noise, s],
                Check::default(),
            );
        }
    }
}

#[test]
fn noise_inject_with_constant_noise_and_bias() {
    // The usual case: a constant noise buffer, only x and strength take gradients.
    let x = input(&[2, 3, 4, 5], 13);
    let noise = constant(&[1, 1, 4, 5], 14);
    let s = input(&[1], 15);
    gradcheck(
        "noise_inject const noise",
        |t| noise_inject(&t[0], &noise, &t[1])?.square(),
        &[x, s],
        Check::default(),
    );
    let (x, b) = bias_act_inputs(&[2, 5, 3], 1, &BiasAct::lrelu(), 16);
    let b = b.detach();
    gradcheck(
        "bias_act const bias",
        |t| bias_act(&t[0], Some(&b), 1, &BiasAct::lrelu())?.square(),
        &[x],
        Check::default(),
    );
}
