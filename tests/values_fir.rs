//! Values of upfirdn2d, bias_act and noise injection on small hand-computed
//! cases and against a naive transcription of the official reference
//! (`_upfirdn2d_ref`: zero insertion, pad/crop, flip, conv2d, stride), and
//! the errors on bad arguments.

mod common;
use common::{assert_close, values};
use stylegan2::ops::bias_act::{bias_act, bias_act_grad, Act, BiasAct};
use stylegan2::ops::noise::noise_inject;
use stylegan2::ops::upfirdn::{downsample2d, setup_filter, upfirdn2d, upsample2d, UpFirDn};
use stylegan2::{Device, Error, Tensor};

fn t(data: Vec<f32>, dims: &[usize]) -> Tensor {
    Tensor::from_vec(data, dims.to_vec(), Device::Cpu).unwrap()
}

/// The official reference step by step, on one plane, in f64.
fn naive_plane(
    x: &[f32],
    [h, w]: [usize; 2],
    f2: &[f64],
    [fh, fw]: [usize; 2],
    p: &UpFirDn,
) -> (Vec<f64>, [usize; 2]) {
    let [ux, uy] = p.up;
    let [dx, dy] = p.down;
    let [x0, x1, y0, y1] = p.pad;
    // 1. Zero insertion.
    let (uh, uw) = (h * uy, w * ux);
    let mut u = vec![0f64; uh * uw];
    for i in 0..h {
        for j in 0..w {
            u[i * uy * uw + j * ux] = x[i * w + j] as f64;
        }
    }
    // 2. Pad, then crop.
    let (ph, pw) = (
        (uh as isize + y0.max(0) + y1.max(0)) as usize,
        (uw as isize + x0.max(0) + x1.max(0)) as usize,
    );
    let mut padded = vec![0f64; ph * pw];
    for i in 0..uh {
        for j in 0..uw {
            padded[(i + y0.max(0) as usize) * pw + j + x0.max(0) as usize] = u[i * uw + j];
        }
    }
    let (r0, r1) = ((-y0).max(0) as usize, ph - (-y1).max(0) as usize);
    let (c0, c1) = ((-x0).max(0) as usize, pw - (-x1).max(0) as usize);
    let (ch, cw) = (r1 - r0, c1 - c0);
    // 3. Flip unless flip_filter, then correlate (F.conv2d).
    let wgt = |a: usize, b: usize| {
        if p.flip_filter {
            f2[a * fw + b]
        } else {
            f2[(fh - 1 - a) * fw + (fw - 1 - b)]
        }
    };
    let (vh, vw) = (ch + 1 - fh, cw + 1 - fw);
    let mut conv = vec![0f64; vh * vw];
    for i in 0..vh {
        for j in 0..vw {
            let mut s = 0.0;
            for a in 0..fh {
                for b in 0..fw {
                    s += padded[(r0 + i + a) * pw + c0 + j + b] * wgt(a, b);
                }
            }
            conv[i * vw + j] = s;
        }
    }
    // 4. Keep every down-th pixel from 0.
    let (oh, ow) = (vh.div_ceil(dy), vw.div_ceil(dx));
    let mut out = Vec::with_capacity(oh * ow);
    for i in 0..oh {
        for j in 0..ow {
            out.push(conv[i * dy * vw + j * dx]);
        }
    }
    (out, [oh, ow])
}

/// upfirdn2d by the naive reference; a 1-D filter is its outer product.
fn naive(x: &Tensor, f: &Tensor, p: &UpFirDn) -> (Vec<f32>, Vec<usize>) {
    let d = x.dims();
    let fv: Vec<f64> = f.to_vec().iter().map(|&v| v as f64).collect();
    let (f2, fhw) = match *f.dims() {
        [k] => (
            (0..k * k)
                .map(|i| fv[i / k] * fv[i % k])
                .collect::<Vec<_>>(),
            [k, k],
        ),
        [fh, fw] => (fv, [fh, fw]),
        _ => unreachable!(),
    };
    let f2: Vec<f64> = f2.iter().map(|v| v * p.gain as f64).collect();
    let xv = x.to_vec();
    let hw = d[2] * d[3];
    let mut out = Vec::new();
    let mut ohw = [0, 0];
    for plane in xv.chunks(hw) {
        let (o, s) = naive_plane(plane, [d[2], d[3]], &f2, fhw, p);
        out.extend(o.into_iter().map(|v| v as f32));
        ohw = s;
    }
    (out, vec![d[0], d[1], ohw[0], ohw[1]])
}

#[test]
fn upfirdn2d_matches_the_naive_reference() {
    let x = t(values(2 * 3 * 5 * 7, 1), &[2, 3, 5, 7]);
    let f2 = t(values(12, 2), &[3, 4]);
    let f1 = t(values(3, 3), &[3]);
    let mut count = 0;
    for up in [[1, 1], [2, 2], [3, 1], [1, 2]] {
        for down in [[1, 1], [2, 2], [1, 3]] {
            for pad in [[0, 0, 0, 0], [1, 2, 0, 3], [-1, 2, 2, -2], [3, -2, -1, 1]] {
                for flip_filter in [false, true] {
                    for f in [&f2, &f1] {
                        let p = UpFirDn {
                            up,
                            down,
                            pad,
                            flip_filter,
                            gain: 1.5,
                        };
                        let (want, dims) = naive(&x, f, &p);
                        let y = upfirdn2d(&x, f, &p).unwrap();
                        assert_eq!(y.dims(), &dims[..], "{p:?} filter {}", f.shape());
                        assert_close(
                            &format!("{p:?} filter {}", f.shape()),
                            &y.to_vec(),
                            &want,
                            1e-5,
                            1e-5,
                        );
                        count += 1;
                    }
                }
            }
        }
    }
    assert_eq!(count, 192);
}

#[test]
fn delta_image_reproduces_the_filter() {
    // One pixel, padded by the filter size − 1 on every side: the output is
    // the filter itself (convolution) or the flipped filter (correlation).
    let fv = values(12, 5);
    let f = t(fv.clone(), &[3, 4]);
    let x = t(vec![1.0], &[1, 1, 1, 1]);
    let p = UpFirDn {
        pad: [3, 3, 2, 2],
        gain: 2.0,
        ..Default::default()
    };
    let y = upfirdn2d(&x, &f, &p).unwrap();
    assert_eq!(y.dims(), &[1, 1, 3, 4]);
    let scaled: Vec<f32> = fv.iter().map(|v| v * 2.0).collect();
    assert_eq!(
        y.to_vec(),
        scaled,
        "flip_filter = false is a true convolution"
    );
    let y = upfirdn2d(
        &x,
        &f,
        &UpFirDn {
            flip_filter: true,
            ..p
        },
    )
    .unwrap();
    let flipped: Vec<f32> = scaled.iter().rev().copied().collect();
    assert_eq!(y.to_vec(), flipped, "flip_filter = true is a correlation");
}

#[test]
fn constant_image_stays_constant_in_the_interior() {
    let f = setup_filter(&[1.0, 3.0, 3.0, 1.0], Device::Cpu).unwrap();
    let x = Tensor::full(0.7, vec![1, 2, 6, 6], Device::Cpu);
    let y = upsample2d(&x, &f, 2, 1.0).unwrap();
    assert_eq!(y.dims(), &[1, 2, 12, 12]);
    let v = y.to_vec();
    for c in 0..2 {
        for i in 2..10 {
            for j in 2..10 {
                let got = v[c * 144 + i * 12 + j];
                assert!((got - 0.7).abs() < 1e-6, "up2 at ({i},{j}): {got}");
            }
        }
    }
    // The explicit call the synthesis block makes: up 2, pad [2,1,2,1], gain 4.
    let y2 = upfirdn2d(
        &x,
        &f,
        &UpFirDn {
            up: [2, 2],
            pad: [2, 1, 2, 1],
            gain: 4.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(y2.to_vec(), v);
    let d = downsample2d(&x, &f, 2, 1.0).unwrap();
    assert_eq!(d.dims(), &[1, 2, 3, 3]);
    assert!((d.to_vec()[4] - 0.7).abs() < 1e-6);
}

#[test]
fn separable_filter_equals_its_outer_product() {
    let x = t(values(2 * 5 * 9 * 9, 4), &[2, 5, 9, 9]);
    let f1 = t(vec![0.125, 0.375, 0.375, 0.125], &[4]);
    let f2 = setup_filter(&[1.0, 3.0, 3.0, 1.0], Device::Cpu).unwrap();
    for p in [
        UpFirDn {
            up: [2, 2],
            pad: [2, 1, 2, 1],
            gain: 4.0,
            ..Default::default()
        },
        UpFirDn {
            down: [2, 2],
            pad: [1, 1, 1, 1],
            flip_filter: true,
            ..Default::default()
        },
    ] {
        let a = upfirdn2d(&x, &f1, &p).unwrap();
        let b = upfirdn2d(&x, &f2, &p).unwrap();
        assert_eq!(a.dims(), b.dims());
        assert_close(&format!("{p:?}"), &a.to_vec(), &b.to_vec(), 1e-6, 1e-6);
    }
}

#[test]
fn resampling_sizes_follow_the_official_defaults() {
    let f = setup_filter(&[1.0, 3.0, 3.0, 1.0], Device::Cpu).unwrap();
    for (h, up_h, down_h) in [(9, 18, 4), (8, 16, 4), (1, 2, 0)] {
        let x = Tensor::zeros(vec![1, 1, h, h], Device::Cpu);
        assert_eq!(upsample2d(&x, &f, 2, 1.0).unwrap().dims()[2], up_h);
        match downsample2d(&x, &f, 2, 1.0) {
            Ok(y) => assert_eq!(y.dims()[2], down_h),
            Err(e) => assert!(down_h == 0 && e.to_string().contains("upfirdn2d"), "{e}"),
        }
    }
    // A 1×1 filter with up 2: the default padding is [1, -1] per axis
    // (Python's floor division: (1 - 2) // 2 = -1), still a 2× output.
    let one = t(vec![1.0], &[1, 1]);
    let x = t(vec![1.0, 2.0], &[1, 1, 1, 2]);
    let y = upsample2d(&x, &one, 2, 1.0).unwrap();
    assert_eq!(y.dims(), &[1, 1, 2, 4]);
    assert_eq!(y.to_vec(), vec![0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 8.0]);
}

#[test]
fn bias_act_hand_values() {
    // x [1, 2, 3] along dim 1 gets b = [0.5, -1].
    let x = t(vec![-2.0, 0.5, 3.0, 1.0, 0.25, -4.0], &[1, 2, 3]);
    let b = t(vec![0.5, -1.0], &[2]);
    let s = std::f32::consts::SQRT_2;
    let y = bias_act(&x, Some(&b), 1, &BiasAct::lrelu()).unwrap();
    let want = [
        -1.5 * 0.2 * s,
        1.0 * s,
        3.5 * s,
        0.0,
        -0.75 * 0.2 * s,
        -5.0 * 0.2 * s,
    ];
    assert_close("lrelu", &y.to_vec(), &want, 1e-7, 1e-6);
    let p = BiasAct {
        clamp: Some(2.0),
        ..BiasAct::lrelu()
    };
    let y = bias_act(&x, Some(&b), 1, &p).unwrap();
    let want = [
        -1.5 * 0.2 * s,
        1.0 * s,
        2.0,
        0.0,
        -0.75 * 0.2 * s,
        -5.0 * 0.2 * s,
    ];
    assert_close("lrelu clamp 2", &y.to_vec(), &want, 1e-7, 1e-6);
    let dy = Tensor::ones(vec![1, 2, 3], Device::Cpu);
    let dx = bias_act_grad(&dy, &y, &p).unwrap();
    // Clamped (3.5·√2 > 2) gives 0; y = 0 takes the negative slope.
    let want = [0.2 * s, s, 0.0, 0.2 * s, 0.2 * s, 0.2 * s];
    assert_close("lrelu clamp 2 grad", &dx.to_vec(), &want, 1e-7, 1e-6);
    let lin = BiasAct {
        act: Act::Linear,
        gain: 3.0,
        clamp: Some(6.0),
    };
    let y = bias_act(&x, None, 7, &lin).unwrap();
    assert_eq!(y.to_vec(), vec![-6.0, 1.5, 6.0, 3.0, 0.75, -6.0]);
    // The kernel passes gradients only where -clamp < y < clamp (strict).
    let dx = bias_act_grad(&dy, &y, &lin).unwrap();
    assert_eq!(dx.to_vec(), vec![0.0, 3.0, 0.0, 3.0, 3.0, 0.0]);
}

#[test]
fn noise_inject_values() {
    let x = t((0..12).map(|v| v as f32).collect(), &[2, 2, 1, 3]);
    let noise = t(vec![1.0, 2.0, 3.0], &[1, 1, 1, 3]);
    let s = t(vec![0.5], &[1]);
    let y = noise_inject(&x, &noise, &s).unwrap();
    let want: Vec<f32> = (0..12).map(|v| v as f32 + [0.5, 1.0, 1.5][v % 3]).collect();
    assert_eq!(y.to_vec(), want);
    let noise = t(vec![1.0, 2.0, 3.0, -1.0, -2.0, -3.0], &[2, 1, 1, 3]);
    let y = noise_inject(&x, &noise, &Tensor::scalar(2.0, Device::Cpu)).unwrap();
    let want: Vec<f32> = (0..12)
        .map(|v| v as f32 + [2.0, 4.0, 6.0, -2.0, -4.0, -6.0][(v / 6) * 3 + v % 3])
        .collect();
    assert_eq!(y.to_vec(), want);
}

fn is_shape(e: &Error, op: &str) -> bool {
    matches!(e, Error::Shape { op: o, .. } if *o == op)
}

fn is_invalid(e: &Error, op: &str) -> bool {
    matches!(e, Error::Invalid { op: o, .. } if *o == op)
}

#[test]
fn bad_arguments_are_errors_naming_the_op() {
    let x = Tensor::zeros(vec![1, 2, 4, 4], Device::Cpu);
    let f = setup_filter(&[1.0, 3.0, 3.0, 1.0], Device::Cpu).unwrap();
    let p = UpFirDn::default();
    let e = upfirdn2d(&Tensor::zeros(vec![2, 4, 4], Device::Cpu), &f, &p).unwrap_err();
    assert!(is_shape(&e, "upfirdn2d"), "{e}");
    let e = upfirdn2d(&x, &Tensor::zeros(vec![1, 2, 2], Device::Cpu), &p).unwrap_err();
    assert!(is_shape(&e, "upfirdn2d"), "{e}");
    let e = upfirdn2d(&x, &Tensor::zeros(vec![0], Device::Cpu), &p).unwrap_err();
    assert!(is_shape(&e, "upfirdn2d"), "{e}");
    for bad in [
        UpFirDn { up: [0, 1], ..p },
        UpFirDn { down: [1, 0], ..p },
        UpFirDn {
            pad: [0, 0, -1, 0],
            ..p
        },
        UpFirDn {
            pad: [-3, -2, 0, 0],
            ..p
        },
        UpFirDn {
            gain: f32::NAN,
            ..p
        },
    ] {
        let e = upfirdn2d(&x, &f, &bad).unwrap_err();
        assert!(is_invalid(&e, "upfirdn2d"), "{bad:?}: {e}");
    }
    let fg = f.detach();
    fg.set_requires_grad(true).unwrap();
    assert!(is_invalid(
        &upfirdn2d(&x, &fg, &p).unwrap_err(),
        "upfirdn2d"
    ));
    assert!(is_invalid(
        &upsample2d(&x, &f, 0, 1.0).unwrap_err(),
        "upsample2d"
    ));
    assert!(is_invalid(
        &downsample2d(&x, &f, 0, 1.0).unwrap_err(),
        "downsample2d"
    ));
    assert!(setup_filter(&[], Device::Cpu).is_err());
    assert!(setup_filter(&[1.0, -1.0], Device::Cpu).is_err());

    let b = Tensor::zeros(vec![3], Device::Cpu);
    let la = BiasAct::lrelu();
    assert!(is_shape(
        &bias_act(&x, Some(&b), 1, &la).unwrap_err(),
        "bias_act"
    ));
    let b2 = Tensor::zeros(vec![2, 1], Device::Cpu);
    assert!(is_shape(
        &bias_act(&x, Some(&b2), 1, &la).unwrap_err(),
        "bias_act"
    ));
    let b4 = Tensor::zeros(vec![4], Device::Cpu);
    assert!(is_invalid(
        &bias_act(&x, Some(&b4), 4, &la).unwrap_err(),
        "bias_act"
    ));
    assert!(bias_act(&x, Some(&b4), 3, &la).is_ok());
    let neg = BiasAct {
        clamp: Some(-1.0),
        ..la
    };
    assert!(is_invalid(
        &bias_act(&x, None, 1, &neg).unwrap_err(),
        "bias_act"
    ));
    let e = bias_act_grad(&x, &Tensor::zeros(vec![1, 2, 4], Device::Cpu), &la).unwrap_err();
    assert!(is_shape(&e, "bias_act_grad"), "{e}");

    let s = Tensor::scalar(1.0, Device::Cpu);
    for nd in [
        vec![1, 2, 4, 4],
        vec![2, 1, 4, 4],
        vec![1, 1, 4, 3],
        vec![1, 4, 4],
    ] {
        let e = noise_inject(&x, &Tensor::zeros(nd.clone(), Device::Cpu), &s).unwrap_err();
        assert!(is_shape(&e, "noise_inject"), "{nd:?}: {e}");
    }
    let n = Tensor::zeros(vec![1, 1, 4, 4], Device::Cpu);
    let e = noise_inject(&x, &n, &Tensor::zeros(vec![2], Device::Cpu)).unwrap_err();
    assert!(is_shape(&e, "noise_inject"), "{e}");
    let e = noise_inject(&Tensor::zeros(vec![2, 4, 4], Device::Cpu), &n, &s).unwrap_err();
    assert!(is_shape(&e, "noise_inject"), "{e}");
}
