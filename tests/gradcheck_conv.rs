//! matmul and the conv2d family: finite-difference checks (first and second
//! order) of every op w.r.t. each of its tensor inputs, values against naive
//! loops, and shape errors.

mod common;
use common::{assert_close, gradcheck, input, values, Check};
use stylegan2::ops::conv::{conv2d, conv2d_input_grad, conv2d_weight_grad, Conv2d};
use stylegan2::{Device, Tensor};

fn conv(stride: [usize; 2], padding: [usize; 2], groups: usize) -> Conv2d {
    Conv2d {
        stride,
        padding,
        groups,
        ..Conv2d::default()
    }
}

/// Output size of one spatial axis.
fn out_len(n: usize, k: usize, s: usize, p: usize) -> usize {
    (n + 2 * p - k) / s + 1
}

/// The gradcheck cases: input dims `[N, C, H, W]`, weight dims
/// `[O, C/groups, kh, kw]` and parameters. Each input stays at a few hundred
/// elements: the checker runs the op several times per element.
fn cases() -> Vec<([usize; 4], [usize; 4], Conv2d)> {
    vec![
        // Plain 3×3, one channel, batch 1.
        ([1, 1, 5, 5], [1, 1, 3, 3], Conv2d::default()),
        // 1×1 with stride 1 and no padding (the path without im2col).
        ([3, 5, 5, 5], [3, 5, 1, 1], Conv2d::default()),
        // 1×1 with stride 2 and padding 1.
        ([1, 3, 7, 6], [5, 3, 1, 1], conv([2, 2], [1, 1], 1)),
        // Non-square 2×3 kernel, stride [2, 1], padding [1, 2], non-square input;
        // (7 + 2 − 2) is odd, so the last input row is read by no output.
        ([3, 3, 7, 6], [5, 3, 2, 3], conv([2, 1], [1, 2], 1)),
        // 3×3, padding 2, stride 1.
        ([1, 3, 5, 5], [5, 3, 3, 3], conv([1, 1], [2, 2], 1)),
        // Groups 3, stride 2, padding 1.
        ([3, 6, 7, 6], [9, 2, 3, 3], conv([2, 2], [1, 1], 3)),
        // Groups 3 with one channel per group (depthwise), 2×3 kernel, padding 0.
        ([1, 3, 7, 6], [3, 1, 2, 3], conv([1, 2], [0, 0], 3)),
    ]
}

#[test]
fn matmul_gradcheck() {
    gradcheck(
        "matmul 2-D",
        |t| t[0].matmul(&t[1]),
        &[input(&[3, 5], 1), input(&[5, 4], 2)],
        Check::default(),
    );
    gradcheck(
        "matmul 3-D",
        |t| t[0].matmul(&t[1]),
        &[input(&[2, 3, 5], 3), input(&[2, 5, 7], 4)],
        Check::default(),
    );
    // A nonlinearity after the product makes the second order depend on both operands.
    gradcheck(
        "matmul 2-D squared",
        |t| t[0].matmul(&t[1])?.square(),
        &[input(&[1, 7], 5), input(&[7, 3], 6)],
        Check::default(),
    );
    // Only one operand requires grad.
    let b = Tensor::from_vec(values(20, 7), vec![5, 4], Device::Cpu).unwrap();
    gradcheck(
        "matmul rhs constant",
        |t| t[0].matmul(&b)?.square(),
        &[input(&[3, 5], 8)],
        Check::default(),
    );
}

#[test]
fn conv2d_gradcheck() {
    for (i, (xd, wd, p)) in cases().into_iter().enumerate() {
        let x = input(&xd, 10 + i as u64);
        let w = input(&wd, 30 + i as u64);
        gradcheck(
            &format!("conv2d case {i} x {xd:?} w {wd:?} {p:?}"),
            |t| conv2d(&t[0], &t[1], p),
            &[x, w],
            Check::default(),
        );
    }
}

#[test]
fn conv2d_input_grad_gradcheck() {
    for (i, (xd, wd, p)) in cases().into_iter().enumerate() {
        let gy = [
            xd[0],
            wd[0],
            out_len(xd[2], wd[2], p.stride[0], p.padding[0]),
            out_len(xd[3], wd[3], p.stride[1], p.padding[1]),
        ];
        let g = input(&gy, 50 + i as u64);
        let w = input(&wd, 70 + i as u64);
        gradcheck(
            &format!("conv2d_input_grad case {i} gy {gy:?} w {wd:?} {p:?}"),
            |t| conv2d_input_grad(&t[0], &t[1], [xd[2], xd[3]], p),
            &[g, w],
            Check::default(),
        );
    }
}

#[test]
fn conv2d_weight_grad_gradcheck() {
    for (i, (xd, wd, p)) in cases().into_iter().enumerate() {
        let gy = [
            xd[0],
            wd[0],
            out_len(xd[2], wd[2], p.stride[0], p.padding[0]),
            out_len(xd[3], wd[3], p.stride[1], p.padding[1]),
        ];
        let x = input(&xd, 90 + i as u64);
        let g = input(&gy, 110 + i as u64);
        gradcheck(
            &format!("conv2d_weight_grad case {i} x {xd:?} gy {gy:?} {p:?}"),
            |t| conv2d_weight_grad(&t[0], &t[1], [wd[2], wd[3]], p),
            &[x, g],
            Check::default(),
        );
    }
}

/// A composite in the style of R1: the squared norm of the input gradient of
/// a small two-layer net, differentiated once more w.r.t. the weights.
#[test]
fn conv2d_double_backward_composite() {
    let x = input(&[2, 3, 6, 5], 130);
    let w1 = input(&[4, 3, 3, 3], 131);
    let w2 = input(&[2, 2, 2, 2], 132);
    gradcheck(
        "r1-like",
        |t| {
            let h = conv2d(&t[0], &t[1], conv([1, 1], [1, 1], 1))?.square()?;
            let y = conv2d(&h, &t[2], conv([2, 2], [0, 0], 2))?;
            let gx = stylegan2::grad(&[y.sum_all()?], &[t[0].clone()], None, true)?;
            gx[0].as_ref().unwrap().square()?.sum_all()
        },
        &[x, w1, w2],
        Check {
            second_order: false,
            ..Check::default()
        },
    );
}

/// The oracle: a direct loop over the definition of a grouped, strided,
/// padded cross-correlation, accumulated in f64.
fn naive_conv2d(x: &[f32], xd: [usize; 4], w: &[f32], wd: [usize; 4], p: Conv2d) -> Vec<f32> {
    let [n, c, h, wi] = xd;
    let [o, cg, kh, kw] = wd;
    let (oh, ow) = (
        out_len(h, kh, p.stride[0], p.padding[0]),
        out_len(wi, kw, p.stride[1], p.padding[1]),
    );
    let og = o / p.groups;
    let mut y = vec![0f32; n * o * oh * ow];
    for b in 0..n {
        for oc in 0..o {
            let grp = oc / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0f64;
                    for ci in 0..cg {
                        let ic = grp * cg + ci;
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (oy * p.stride[0] + i) as isize - p.padding[0] as isize;
                                let ix = (ox * p.stride[1] + j) as isize - p.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wi as isize {
                                    continue;
                                }
                                let xv = x[((b * c + ic) * h + iy as usize) * wi + ix as usize];
                                let wv = w[((oc * cg + ci) * kh + i) * kw + j];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    y[((b * o + oc) * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
    }
    assert_eq!(c, cg * p.groups);
    y
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// conv2d against the naive loop, and its two gradient ops against the
/// adjoint identities ⟨conv2d(x, w), gy⟩ = ⟨x, input_grad(gy, w)⟩ =
/// ⟨w, weight_grad(x, gy)⟩. The larger cases are big enough to take the
/// multi-threaded paths (over the batch, and inside one sample's GEMM).
#[test]
fn conv2d_values_against_naive_loop() {
    let mut all = cases();
    all.extend([
        ([2, 4, 9, 8], [6, 2, 3, 2], conv([3, 2], [2, 1], 2)),
        ([4, 16, 16, 16], [32, 16, 3, 3], conv([1, 1], [1, 1], 1)),
        ([1, 16, 17, 15], [24, 16, 3, 3], conv([2, 2], [1, 1], 1)),
        ([6, 32, 12, 12], [32, 8, 3, 3], conv([1, 1], [1, 1], 4)),
        ([5, 64, 16, 16], [48, 64, 1, 1], Conv2d::default()),
        ([1, 64, 16, 16], [48, 64, 1, 1], Conv2d::default()),
        ([2, 8, 5, 5], [8, 8, 5, 5], Conv2d::default()),
        // Kernels wider than the input: some output rows and columns read only padding.
        ([1, 2, 1, 2], [2, 2, 11, 11], conv([1, 1], [5, 5], 1)),
        ([2, 3, 2, 3], [3, 1, 9, 7], conv([2, 3], [4, 3], 3)),
    ]);
    for (i, (xd, wd, p)) in all.into_iter().enumerate() {
        let what = format!("case {i} x {xd:?} w {wd:?} {p:?}");
        let xv = values(xd.iter().product(), 200 + i as u64);
        let wv = values(wd.iter().product(), 300 + i as u64);
        let x = Tensor::from_vec(xv.clone(), xd.to_vec(), Device::Cpu).unwrap();
        let w = Tensor::from_vec(wv.clone(), wd.to_vec(), Device::Cpu).unwrap();
        let y = conv2d(&x, &w, p).unwrap();
        let want = naive_conv2d(&xv, xd, &wv, wd, p);
        assert_close(&format!("conv2d {what}"), &y.to_vec(), &want, 1e-5, 1e-5);

        let gyv = values(y.numel(), 400 + i as u64);
        let gy = Tensor::from_vec(gyv.clone(), y.dims().to_vec(), Device::Cpu).unwrap();
        let gx = conv2d_input_grad(&gy, &w, [xd[2], xd[3]], p).unwrap();
        let gw = conv2d_weight_grad(&x, &gy, [wd[2], wd[3]], p).unwrap();
        assert_eq!(gx.dims(), &xd);
        assert_eq!(gw.dims(), &wd);
        let lhs = dot(&want, &gyv);
        let scale = 1e-4 * (1.0 + lhs.abs()) + 1e-6 * y.numel() as f64;
        let via_x = dot(&xv, &gx.to_vec());
        let via_w = dot(&wv, &gw.to_vec());
        assert!(
            (lhs - via_x).abs() <= scale,
            "conv2d_input_grad adjoint {what}: {lhs} vs {via_x}"
        );
        assert!(
            (lhs - via_w).abs() <= scale,
            "conv2d_weight_grad adjoint {what}: {lhs} vs {via_w}"
        );
        // Each element of input_grad is the adjoint applied to a unit vector:
        // spot-check a few against the naive conv.
        let gxv = gx.to_vec();
        for &k in &[0, gxv.len() / 3, gxv.len() - 1] {
            let mut e = vec![0f32; xv.len()];
            e[k] = 1.0;
            let col = naive_conv2d(&e, xd, &wv, wd, p);
            let want_k = dot(&col, &gyv) as f32;
            assert!(
                (gxv[k] - want_k).abs() <= 1e-4 * (1.0 + want_k.abs()),
                "conv2d_input_grad {what} element {k}: {} vs {want_k}",
                gxv[k]
            );
        }
    }
}

#[test]
fn conv2d_values_small_exact() {
    // 1 channel, 3×3 input, 2×2 kernel of ones: sums of 2×2 windows.
    let x = Tensor::from_vec(
        (1..=9).map(|v| v as f32).collect(),
        vec![1, 1, 3, 3],
        Device::Cpu,
    )
    .unwrap();
    let w = Tensor::ones(vec![1, 1, 2, 2], Device::Cpu);
    let y = conv2d(&x, &w, Conv2d::default()).unwrap();
    assert_eq!(y.dims(), &[1, 1, 2, 2]);
    assert_eq!(y.to_vec(), vec![12., 16., 24., 28.]);
    // Cross-correlation, not convolution: a one-hot kernel at (0, 1) shifts.
    let w = Tensor::from_vec(vec![0., 1., 0., 0.], vec![1, 1, 2, 2], Device::Cpu).unwrap();
    let y = conv2d(&x, &w, Conv2d::default()).unwrap();
    assert_eq!(y.to_vec(), vec![2., 3., 5., 6.]);
    // Padding 1, stride 2: the corners of the padded 5×5 grid.
    let w = Tensor::ones(vec![1, 1, 1, 1], Device::Cpu);
    let y = conv2d(&x, &w, conv([2, 2], [1, 1], 1)).unwrap();
    assert_eq!(y.dims(), &[1, 1, 3, 3]);
    assert_eq!(y.to_vec(), vec![0., 0., 0., 0., 5., 0., 0., 0., 0.]);
}

#[test]
fn matmul_values() {
    let a = Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], vec![2, 3], Device::Cpu).unwrap();
    let b = Tensor::from_vec(vec![1., 0., 0., 1., 1., 1.], vec![3, 2], Device::Cpu).unwrap();
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.dims(), &[2, 2]);
    assert_eq!(c.to_vec(), vec![4., 5., 10., 11.]);
    // Larger sizes take the multi-threaded paths: one big product, many small ones.
    for (bt, m, k, n) in [(1, 130, 97, 131), (2, 128, 96, 130), (300, 16, 15, 17)] {
        let av = values(bt * m * k, 1);
        let bv = values(bt * k * n, 2);
        let a = Tensor::from_vec(av.clone(), vec![bt, m, k], Device::Cpu).unwrap();
        let b = Tensor::from_vec(bv.clone(), vec![bt, k, n], Device::Cpu).unwrap();
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.dims(), &[bt, m, n]);
        let mut want = vec![0f32; bt * m * n];
        for q in 0..bt {
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0f64;
                    for l in 0..k {
                        acc += av[(q * m + i) * k + l] as f64 * bv[(q * k + l) * n + j] as f64;
                    }
                    want[(q * m + i) * n + j] = acc as f32;
                }
            }
        }
        assert_close(
            &format!("matmul [{bt}, {m}, {k}] × [{bt}, {k}, {n}]"),
            &c.to_vec(),
            &want,
            1e-5,
            1e-5,
        );
    }
}

fn err(r: stylegan2::Result<Tensor>) -> String {
    r.map(|t| format!("no error, got {:?}", t.shape()))
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn matmul_shape_errors_name_the_op() {
    let z = |d: &[usize]| Tensor::zeros(d.to_vec(), Device::Cpu);
    let e = err(z(&[2, 3]).matmul(&z(&[4, 5])));
    assert!(
        e.contains("matmul") && e.contains("[2, 3]") && e.contains("[4, 5]"),
        "{e}"
    );
    let e = err(z(&[2, 2, 3]).matmul(&z(&[3, 3, 5])));
    assert!(e.contains("matmul") && e.contains("batch"), "{e}");
    let e = err(z(&[2, 3]).matmul(&z(&[2, 3, 5])));
    assert!(e.contains("matmul") && e.contains("[2, 3, 5]"), "{e}");
    let e = err(z(&[3]).matmul(&z(&[3])));
    assert!(e.contains("matmul"), "{e}");
    // Empty products are fine.
    assert_eq!(z(&[0, 3]).matmul(&z(&[3, 4])).unwrap().dims(), &[0, 4]);
    assert_eq!(
        z(&[2, 0]).matmul(&z(&[0, 4])).unwrap().to_vec(),
        vec![0.0; 8]
    );
}

#[test]
fn conv2d_shape_errors_name_the_op() {
    let z = |d: &[usize]| Tensor::zeros(d.to_vec(), Device::Cpu);
    // Wrong channel count.
    let e = err(conv2d(
        &z(&[2, 5, 8, 8]),
        &z(&[6, 4, 3, 3]),
        Conv2d::default(),
    ));
    assert!(
        e.starts_with("conv2d:") && e.contains("[2, 5, 8, 8]") && e.contains("[6, 4, 3, 3]"),
        "{e}"
    );
    // Groups that do not divide the input or output channels.
    let e = err(conv2d(
        &z(&[1, 4, 8, 8]),
        &z(&[6, 1, 3, 3]),
        conv([1, 1], [0, 0], 3),
    ));
    assert!(e.starts_with("conv2d:") && e.contains("groups 3"), "{e}");
    let e = err(conv2d(
        &z(&[1, 6, 8, 8]),
        &z(&[4, 2, 3, 3]),
        conv([1, 1], [0, 0], 3),
    ));
    assert!(e.starts_with("conv2d:") && e.contains("groups 3"), "{e}");
    // Rank-3 input and weight.
    let e = err(conv2d(&z(&[5, 8, 8]), &z(&[6, 5, 3, 3]), Conv2d::default()));
    assert!(e.starts_with("conv2d:") && e.contains("[5, 8, 8]"), "{e}");
    let e = err(conv2d(&z(&[1, 5, 8, 8]), &z(&[6, 5, 3]), Conv2d::default()));
    assert!(e.starts_with("conv2d:") && e.contains("[6, 5, 3]"), "{e}");
    // Bad parameters.
    let e = err(conv2d(
        &z(&[1, 2, 8, 8]),
        &z(&[2, 2, 3, 3]),
        conv([0, 1], [0, 0], 1),
    ));
    assert!(e.starts_with("conv2d:") && e.contains("stride"), "{e}");
    let e = err(conv2d(
        &z(&[1, 2, 8, 8]),
        &z(&[2, 2, 3, 3]),
        conv([1, 1], [0, 0], 0),
    ));
    assert!(e.starts_with("conv2d:") && e.contains("groups"), "{e}");
    // A kernel larger than the padded input: an empty output is an error.
    let e = err(conv2d(
        &z(&[1, 2, 4, 8]),
        &z(&[2, 2, 7, 3]),
        conv([1, 1], [1, 0], 1),
    ));
    assert!(e.starts_with("conv2d:") && e.contains("empty"), "{e}");
    // Huge padding must not overflow.
    let e = err(conv2d(
        &z(&[1, 2, 4, 4]),
        &z(&[2, 2, 3, 3]),
        conv([1, 1], [usize::MAX / 2, 0], 1),
    ));
    assert!(e.starts_with("conv2d:"), "{e}");
    // The kernel fits exactly once, and the empty batch is fine.
    assert_eq!(
        conv2d(
            &z(&[1, 2, 4, 8]),
            &z(&[3, 2, 6, 3]),
            conv([1, 1], [1, 0], 1)
        )
        .unwrap()
        .dims(),
        &[1, 3, 1, 6]
    );
    assert_eq!(
        conv2d(&z(&[0, 2, 4, 4]), &z(&[3, 2, 3, 3]), Conv2d::default())
            .unwrap()
            .dims(),
        &[0, 3, 2, 2]
    );
}

#[test]
fn conv2d_grad_shape_errors_name_the_op() {
    let z = |d: &[usize]| Tensor::zeros(d.to_vec(), Device::Cpu);
    let p = Conv2d::default();
    // input_grad: gy does not match the output of input_hw and w.
    let e = err(conv2d_input_grad(
        &z(&[2, 6, 5, 5]),
        &z(&[6, 4, 3, 3]),
        [8, 8],
        p,
    ));
    assert!(
        e.starts_with("conv2d_input_grad:") && e.contains("[2, 6, 5, 5]"),
        "{e}"
    );
    // input_grad: output channels of gy and w differ.
    let e = err(conv2d_input_grad(
        &z(&[2, 5, 6, 6]),
        &z(&[6, 4, 3, 3]),
        [8, 8],
        p,
    ));
    assert!(e.starts_with("conv2d_input_grad:"), "{e}");
    // input_grad: rank-3 gy, groups not dividing O.
    let e = err(conv2d_input_grad(
        &z(&[6, 6, 6]),
        &z(&[6, 4, 3, 3]),
        [8, 8],
        p,
    ));
    assert!(e.starts_with("conv2d_input_grad:"), "{e}");
    let e = err(conv2d_input_grad(
        &z(&[1, 4, 6, 6]),
        &z(&[4, 1, 3, 3]),
        [8, 8],
        conv([1, 1], [0, 0], 3),
    ));
    assert!(
        e.starts_with("conv2d_input_grad:") && e.contains("groups 3"),
        "{e}"
    );
    // input_grad: kernel larger than the requested input.
    let e = err(conv2d_input_grad(
        &z(&[1, 4, 1, 1]),
        &z(&[4, 1, 3, 3]),
        [2, 2],
        p,
    ));
    assert!(e.starts_with("conv2d_input_grad:"), "{e}");
    // weight_grad: batch or spatial sizes of gy that do not match.
    let e = err(conv2d_weight_grad(
        &z(&[2, 4, 8, 8]),
        &z(&[3, 6, 6, 6]),
        [3, 3],
        p,
    ));
    assert!(
        e.starts_with("conv2d_weight_grad:") && e.contains("[3, 6, 6, 6]"),
        "{e}"
    );
    let e = err(conv2d_weight_grad(
        &z(&[2, 4, 8, 8]),
        &z(&[2, 6, 5, 6]),
        [3, 3],
        p,
    ));
    assert!(e.starts_with("conv2d_weight_grad:"), "{e}");
    // weight_grad: groups not dividing C, rank-3 input.
    let e = err(conv2d_weight_grad(
        &z(&[2, 4, 8, 8]),
        &z(&[2, 6, 6, 6]),
        [3, 3],
        conv([1, 1], [0, 0], 3),
    ));
    assert!(
        e.starts_with("conv2d_weight_grad:") && e.contains("groups 3"),
        "{e}"
    );
    let e = err(conv2d_weight_grad(
        &z(&[4, 8, 8]),
        &z(&[2, 6, 6, 6]),
        [3, 3],
        p,
    ));
    assert!(e.starts_with("conv2d_weight_grad:"), "{e}");
    // A stride that leaves input rows unread still takes the given input size.
    let gx = conv2d_input_grad(
        &z(&[1, 2, 3, 3]),
        &z(&[2, 1, 2, 2]),
        [7, 6],
        conv([2, 2], [0, 0], 1),
    )
    .unwrap();
    assert_eq!(gx.dims(), &[1, 1, 7, 6]);
}
