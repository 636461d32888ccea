//! The upfirdn kernel family (kernels/upfirdn.cu) on every device: the
//! general kernel over up/down 1 and 2 per axis, positive, negative and
//! asymmetric pads, 2-D and separable filters of sizes 1..5, flip and gain;
//! the tiled 4×4 up-2 / down-2 fast paths on odd sizes, against the CPU and
//! against the general kernel. Forward, gradient (create_graph) and second
//! order, so the gradient-of-gradient launches run through the kernels too.

mod common;
use common::{assert_close, kernel_devices, leaf_on, on_every_device, values};
use stylegan2::backend::cuda::upfirdn::{fast_path, general_only, MAX_GRID_Z};
use stylegan2::ops::upfirdn::{downsample2d, setup_filter, upfirdn2d, upsample2d, UpFirDn};
use stylegan2::{grad, Device, Result, Tensor};

/// Every output is a sum of at most fh·fw ≤ 25 products, taken in the CPU's
/// order; the squares and the gradient chains compose at most three such
/// sums, so reordering and FMA contraction stay below ~75·ε ≈ 5e-6 of the
/// largest magnitude. 1e-4 leaves a 20× margin while a wrong tap, flip or
/// offset is off by O(1) of it.
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;

/// A constant filter of `dims` with distinct, non-symmetric taps (a wrong
/// flip or transposed axis shows).
fn filter(dims: &[usize], seed: u64, dev: Device) -> Tensor {
    let n = dims.iter().product();
    let v = values(n, seed).into_iter().map(|v| v + 0.25).collect();
    Tensor::from_vec(v, dims.to_vec(), dev).unwrap()
}

/// `[y, dx, d²]`: `y = upfirdn2d(x)²`, `dx` the gradient of `⟨y, r⟩` with
/// create_graph, `d²` the gradient of `⟨dx, r2⟩` w.r.t. x (which runs the
/// gradient of the gradient: upfirdn2d with the original parameters).
fn fwd_grad_second(x: &Tensor, y: Tensor) -> Result<Vec<Tensor>> {
    let r = Tensor::from_vec(values(y.numel(), 77), y.dims().to_vec(), y.device())?;
    let g = grad(
        std::slice::from_ref(&y),
        std::slice::from_ref(x),
        Some(&[r]),
        true,
    )?[0]
        .clone()
        .expect("x takes a gradient");
    let r2 = Tensor::from_vec(values(x.numel(), 78), x.dims().to_vec(), x.device())?;
    let h = g.mul(&r2)?.sum_all()?;
    let g2 = grad(&[h], std::slice::from_ref(x), None, false)?[0]
        .clone()
        .unwrap_or_else(|| Tensor::zeros(x.dims().to_vec(), x.device()));
    Ok(vec![y, g, g2])
}

fn check(name: &str, xdims: &[usize], fdims: &[usize], p: &UpFirDn) {
    on_every_device(name, ATOL, RTOL, |dev| {
        let x = leaf_on(xdims, 3, dev);
        let f = filter(fdims, 5, dev);
        let y = upfirdn2d(&x, &f, p)?.square()?;
        fwd_grad_second(&x, y)
    });
}

/// Parameter sets of the general kernel: up/down 1 and 2 independently per
/// axis, pads positive, negative (crop) and asymmetric, flip, gain.
fn general_params() -> Vec<UpFirDn> {
    let b = UpFirDn::default();
    vec![
        b,
        UpFirDn {
            pad: [1, 2, 0, 3],
            gain: -1.5,
            ..b
        },
        UpFirDn {
            up: [2, 1],
            down: [1, 2],
            pad: [1, -1, 2, 0],
            ..b
        },
        UpFirDn {
            up: [1, 2],
            down: [2, 1],
            pad: [-1, 2, 0, 1],
            flip_filter: true,
            ..b
        },
        UpFirDn {
            up: [2, 2],
            pad: [2, 1, 3, 2],
            gain: 4.0,
            ..b
        },
        UpFirDn {
            down: [2, 2],
            pad: [2, 2, 1, 1],
            flip_filter: true,
            ..b
        },
        UpFirDn {
            up: [2, 2],
            down: [2, 2],
            pad: [3, -1, 1, 2],
            flip_filter: true,
            gain: 0.5,
        },
    ]
}

/// Filters: 2-D square and non-square of sizes 1..5, and separable 1-D.
const FILTERS: [&[usize]; 12] = [
    &[1, 1],
    &[2, 3],
    &[3, 2],
    &[5, 5],
    &[1, 4],
    &[4, 1],
    &[5, 3],
    &[4, 5],
    &[1],
    &[3],
    &[4],
    &[5],
];

#[test]
fn general_kernel_every_parameter_set_and_filter() {
    let mut ran = 0;
    for (i, p) in general_params().iter().enumerate() {
        for fdims in FILTERS {
            let xdims = [1, 3, 7, 5];
            let fhw = if fdims.len() == 1 {
                [fdims[0]; 2]
            } else {
                [fdims[0], fdims[1]]
            };
            if p.out_size([7, 5], fhw).is_none() {
                continue;
            }
            assert!(fast_path(p, fdims).is_none());
            check(
                &format!("params {i} {p:?} filter {fdims:?}"),
                &xdims,
                fdims,
                p,
            );
            ran += 1;
        }
    }
    assert!(ran >= 84, "only {ran} cases had an output");
}

#[test]
fn general_kernel_odd_shapes() {
    // Batch·channels 1, 3 and 5·67; spatial 1×1, 5×5, 17×13.
    let shapes: [&[usize]; 4] = [
        &[1, 1, 1, 1],
        &[3, 1, 5, 5],
        &[1, 3, 17, 13],
        &[5, 67, 5, 5],
    ];
    let mut ran = 0;
    for xdims in shapes {
        for (i, p) in general_params().iter().enumerate() {
            for fdims in [&[2usize, 3][..], &[3]] {
                let fhw = if fdims.len() == 1 {
                    [fdims[0]; 2]
                } else {
                    [fdims[0], fdims[1]]
                };
                if p.out_size([xdims[2], xdims[3]], fhw).is_none() {
                    continue;
                }
                check(
                    &format!("{xdims:?} params {i} filter {fdims:?}"),
                    xdims,
                    fdims,
                    p,
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 50, "only {ran} cases had an output");
}

/// The hot cases: 4×4 filter, up 2 with the pads of the synthesis network
/// ([2,1,2,1] image path, [3,2,3,2] conv path) and an odd one; down 2 with
/// the discriminator's skip pad [1,1,1,1], [2,2,2,2] and an odd one; down 1
/// (filter only) with the pad [2,2,2,2] before the discriminator's stride-2
/// conv and odd ones; with flip and gains.
fn fast_params() -> Vec<UpFirDn> {
    let b = UpFirDn::default();
    let up = |pad, flip_filter, gain| UpFirDn {
        up: [2, 2],
        pad,
        flip_filter,
        gain,
        ..b
    };
    let down = |pad, flip_filter, gain| UpFirDn {
        down: [2, 2],
        pad,
        flip_filter,
        gain,
        ..b
    };
    let same = |pad, flip_filter, gain| UpFirDn {
        pad,
        flip_filter,
        gain,
        ..b
    };
    vec![
        up([2, 1, 2, 1], false, 4.0),
        up([3, 2, 3, 2], false, 4.0),
        up([0, -1, 1, 3], true, -2.0),
        up([-3, 2, -2, 1], true, 1.0),
        down([1, 1, 1, 1], false, 1.0),
        down([2, 2, 2, 2], true, 1.0),
        down([0, 1, -1, 2], false, 0.5),
        same([2, 2, 2, 2], false, 1.0),
        same([1, 2, 0, 3], true, -0.5),
        same([-1, 0, 2, 1], false, 4.0),
    ]
}

const FAST_SHAPES: [&[usize]; 5] = [
    &[1, 1, 1, 1],
    &[3, 1, 5, 5],
    &[1, 3, 17, 13],
    &[1, 1, 40, 37],
    &[5, 67, 5, 5],
];

#[test]
fn fast_paths_against_cpu() {
    let mut ran = 0;
    for xdims in FAST_SHAPES {
        for (i, p) in fast_params().iter().enumerate() {
            if p.out_size([xdims[2], xdims[3]], [4, 4]).is_none() {
                continue;
            }
            assert!(fast_path(p, &[4, 4]).is_some(), "{p:?} takes no fast path");
            check(&format!("fast {xdims:?} params {i}"), xdims, &[4, 4], p);
            ran += 1;
        }
    }
    assert!(ran >= 45, "only {ran} cases had an output");
}

#[test]
fn fast_paths_against_general_kernel() {
    for dev in kernel_devices() {
        for xdims in FAST_SHAPES {
            for (i, p) in fast_params().iter().enumerate() {
                if p.out_size([xdims[2], xdims[3]], [4, 4]).is_none() {
                    continue;
                }
                let run = || -> Result<Vec<Tensor>> {
                    let x = leaf_on(xdims, 7, dev);
                    let f = filter(&[4, 4], 9, dev);
                    let y = upfirdn2d(&x, &f, p)?.square()?;
                    fwd_grad_second(&x, y)
                };
                let fast = run().unwrap();
                let general = {
                    let _g = general_only();
                    assert!(fast_path(p, &[4, 4]).is_none());
                    run().unwrap()
                };
                for (k, (a, b)) in fast.iter().zip(&general).enumerate() {
                    // Same taps in the same order: only FMA contraction differs.
                    assert_close(
                        &format!("{dev} {xdims:?} params {i} output {k}: fast vs general"),
                        &a.to_vec(),
                        &b.to_vec(),
                        ATOL,
                        RTOL,
                    );
                }
            }
        }
    }
}

#[test]
fn fast_paths_walk_more_planes_than_grid_z() {
    // More planes than blocks in grid z: each block takes several planes.
    let xdims = [1, MAX_GRID_Z + 3, 2, 3];
    for (i, p) in fast_params().iter().enumerate() {
        if p.out_size([2, 3], [4, 4]).is_none() {
            continue;
        }
        on_every_device(&format!("many planes params {i}"), ATOL, RTOL, |dev| {
            let x = leaf_on(&xdims, 13, dev);
            let f = filter(&[4, 4], 14, dev);
            Ok(vec![upfirdn2d(&x, &f, p)?])
        });
    }
}

#[test]
fn upsample2d_downsample2d_with_setup_filter() {
    for xdims in [&[1usize, 1, 1, 1][..], &[3, 5, 5, 7], &[1, 3, 17, 13]] {
        on_every_device(&format!("upsample2d {xdims:?}"), ATOL, RTOL, |dev| {
            let x = leaf_on(xdims, 11, dev);
            let f = setup_filter(&[1.0, 3.0, 3.0, 1.0], dev)?;
            fwd_grad_second(&x, upsample2d(&x, &f, 2, 1.0)?.square()?)
        });
        if xdims[2] >= 2 {
            on_every_device(&format!("downsample2d {xdims:?}"), ATOL, RTOL, |dev| {
                let x = leaf_on(xdims, 12, dev);
                let f = setup_filter(&[1.0, 3.0, 3.0, 1.0], dev)?;
                fwd_grad_second(&x, downsample2d(&x, &f, 2, 1.0)?.square()?)
            });
        }
    }
}

#[test]
fn bad_arguments_are_errors_on_the_simulator() {
    let x = leaf_on(&[1, 1, 2, 2], 1, Device::Sim);
    let f = filter(&[4, 4], 2, Device::Sim);
    // Cropping more than the input leaves no output pixel.
    let p = UpFirDn {
        pad: [-3, 0, 0, 0],
        ..Default::default()
    };
    assert!(upfirdn2d(&x, &f, &p).is_err());
    let f3 = filter(&[2, 2, 2], 2, Device::Sim);
    assert!(upfirdn2d(&x, &f3, &UpFirDn::default()).is_err());
}
