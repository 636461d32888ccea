//! The conv kernel family (kernels/conv.cu) on every device: conv2d,
//! conv2d_input_grad and conv2d_weight_grad, forward, first and second
//! order gradients, on the simulator (always) and GPU 0 (when there is one)
//! against the CPU reference, on shapes that are multiples of no tile (and
//! that reach each tile variant: 64- and 16-wide, see kernels/conv.cu); and
//! the modulated convolution (which runs these kernels) against the official
//! implementation's golden outputs on the simulator.

mod common;
use common::{assert_close, golden, leaf_on, on_every_device, values, with_grads};
use stylegan2::ops::conv::{conv2d, conv2d_input_grad, conv2d_weight_grad, Conv2d};
use stylegan2::ops::modconv::{modulated_conv2d, ModConv, ModConvPath};
use stylegan2::{grad, Device, Error, Result, Tensor};

/// Inputs are O(1) values in [-1, 1); every result is a sum of K products
/// (K up to 67·9 for the forward, up to N·OH·OW = 867 for the weight
/// gradient, a few thousand through the second-order chains). fp32 summation
/// in a different order differs by about √K · 2^-24 relative to the largest
/// result (well under 1e-5 for these K); 1e-4 leaves a wide margin while a
/// wrong index or a missing tap is off by O(1) relative. The atol covers
/// outputs whose largest value is itself ~0.
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;

fn conv(stride: [usize; 2], padding: [usize; 2], groups: usize) -> Conv2d {
    Conv2d {
        stride,
        padding,
        groups,
        ..Conv2d::default()
    }
}

/// (name, input dims [N, C, H, W], weight dims [O, C/groups, kh, kw], params).
type Case = (&'static str, [usize; 4], [usize; 4], Conv2d);

fn cases() -> Vec<Case> {
    vec![
        (
            "1x1 spatial, 1 channel",
            [1, 1, 1, 1],
            [1, 1, 1, 1],
            Conv2d::default(),
        ),
        (
            "3x3 pad 1, batch 3",
            [3, 3, 5, 5],
            [5, 3, 3, 3],
            conv([1, 1], [1, 1], 1),
        ),
        // 67 output channels: two row tiles; weight gradient split in two.
        (
            "3x3 17x17 to 67",
            [1, 5, 17, 17],
            [67, 5, 3, 3],
            conv([1, 1], [1, 1], 1),
        ),
        // 67 input channels: five channel chunks of 16; asymmetric padding.
        (
            "67 ch stride 2 pad [1,2]",
            [3, 67, 5, 7],
            [5, 67, 3, 3],
            conv([2, 2], [1, 2], 1),
        ),
        (
            "67 to 67 non-square",
            [1, 67, 17, 13],
            [67, 67, 3, 3],
            conv([1, 1], [1, 1], 1),
        ),
        // Weight gradient over 3·17·17 = 867 pixels: four split-K ranges.
        (
            "split-K 867",
            [3, 3, 17, 17],
            [5, 3, 3, 3],
            conv([1, 1], [1, 1], 1),
        ),
        (
            "groups 3 stride 2",
            [3, 15, 17, 13],
            [9, 5, 3, 3],
            conv([2, 2], [1, 1], 3),
        ),
        // StyleGAN2's grouped path: batch folded into channels, per-sample weights.
        (
            "groups = batch 3",
            [1, 15, 9, 9],
            [201, 5, 3, 3],
            conv([1, 1], [1, 1], 3),
        ),
        // 2×3 kernel, stride [2, 1], padding [1, 2]; the last input row is read by no output.
        (
            "2x3 kernel",
            [3, 3, 7, 6],
            [5, 3, 2, 3],
            conv([2, 1], [1, 2], 1),
        ),
        // 1×1 with stride 2: input-gradient phases with no tap write zeros.
        (
            "1x1 stride 2",
            [3, 5, 17, 17],
            [3, 5, 1, 1],
            conv([2, 2], [0, 0], 1),
        ),
        // 1×1 with padding 2: a zero border of outputs; stride [1, 2].
        (
            "1x1 pad 2",
            [1, 3, 5, 5],
            [5, 3, 1, 1],
            conv([1, 2], [2, 2], 1),
        ),
        // Kernel larger than the input.
        (
            "3x3 on 1x1",
            [1, 3, 1, 1],
            [4, 3, 3, 3],
            conv([1, 1], [1, 1], 1),
        ),
        (
            "3x5 kernel pad [2,0]",
            [1, 5, 5, 7],
            [3, 5, 3, 5],
            conv([1, 2], [2, 0], 1),
        ),
        (
            "depthwise 2x3",
            [3, 3, 7, 6],
            [3, 1, 2, 3],
            conv([1, 2], [0, 0], 3),
        ),
        // fromRGB-like 1×1 to 67 channels: a weight gradient with 5 columns.
        ("1x1 to 67", [3, 5, 5, 7], [67, 5, 1, 1], Conv2d::default()),
        // The discriminator's down-sampling conv: 3×3 stride 2 valid.
        (
            "3x3 stride 2 valid",
            [3, 5, 17, 17],
            [7, 5, 3, 3],
            conv([2, 2], [0, 0], 1),
        ),
    ]
}

fn out_hw(x: [usize; 4], w: [usize; 4], p: Conv2d) -> [usize; 2] {
    [
        (x[2] + 2 * p.padding[0] - w[2]) / p.stride[0] + 1,
        (x[3] + 2 * p.padding[1] - w[3]) / p.stride[1] + 1,
    ]
}

/// `with_grads(y, xs)` followed by the gradients of `h = Σ_k ⟨∇_k, r2_k⟩`
/// w.r.t. `xs`: the backward rules recorded under `create_graph` run again,
/// so each op's gradients run as kernels in every role.
fn with_second_order(y: Tensor, xs: &[&Tensor]) -> Result<Vec<Tensor>> {
    let out = with_grads(y, xs)?;
    let mut h: Option<Tensor> = None;
    for (k, (g, x)) in out[1..].iter().zip(xs).enumerate() {
        let r2 = Tensor::from_vec(
            values(x.numel(), 500 + k as u64),
            x.dims().to_vec(),
            x.device(),
        )?;
        let term = g.mul(&r2)?.sum_all()?;
        h = Some(match h {
            Some(acc) => acc.add(&term)?,
            None => term,
        });
    }
    let h = h.expect("at least one input");
    let inputs: Vec<Tensor> = xs.iter().map(|&x| x.clone()).collect();
    let second = grad(std::slice::from_ref(&h), &inputs, None, false)?;
    let mut all = out;
    for (g, x) in second.into_iter().zip(xs) {
        all.push(g.unwrap_or_else(|| Tensor::zeros(x.dims().to_vec(), x.device())));
    }
    Ok(all)
}

#[test]
fn conv2d_forward_and_grads() {
    for (i, (name, xd, wd, p)) in cases().into_iter().enumerate() {
        on_every_device(&format!("conv2d {name}"), ATOL, RTOL, |dev| {
            let x = leaf_on(&xd, 10 + i as u64, dev);
            let w = leaf_on(&wd, 40 + i as u64, dev);
            with_second_order(conv2d(&x, &w, p)?, &[&x, &w])
        });
    }
}

#[test]
fn conv2d_input_grad_forward_and_grads() {
    for (i, (name, xd, wd, p)) in cases().into_iter().enumerate() {
        let [oh, ow] = out_hw(xd, wd, p);
        on_every_device(&format!("conv2d_input_grad {name}"), ATOL, RTOL, |dev| {
            let gy = leaf_on(&[xd[0], wd[0], oh, ow], 70 + i as u64, dev);
            let w = leaf_on(&wd, 40 + i as u64, dev);
            let z = conv2d_input_grad(&gy, &w, [xd[2], xd[3]], p)?;
            with_second_order(z, &[&gy, &w])
        });
    }
}

#[test]
fn conv2d_weight_grad_forward_and_grads() {
    for (i, (name, xd, wd, p)) in cases().into_iter().enumerate() {
        let [oh, ow] = out_hw(xd, wd, p);
        on_every_device(&format!("conv2d_weight_grad {name}"), ATOL, RTOL, |dev| {
            let x = leaf_on(&xd, 10 + i as u64, dev);
            let gy = leaf_on(&[xd[0], wd[0], oh, ow], 70 + i as u64, dev);
            let z = conv2d_weight_grad(&x, &gy, [wd[2], wd[3]], p)?;
            with_second_order(z, &[&x, &gy])
        });
    }
}

#[test]
fn long_weight_gradient_reduction() {
    // 3·40·40 = 4800 output pixels: many split-K ranges, the last one short.
    // The reduction is ~5k long: √5k · 2^-24 ≈ 4e-6 relative, under 1e-4.
    on_every_device("conv2d_weight_grad 4800 pixels", ATOL, RTOL, |dev| {
        let x = leaf_on(&[3, 2, 40, 40], 1, dev);
        let gy = leaf_on(&[3, 3, 40, 40], 2, dev);
        let p = conv([1, 1], [1, 1], 1);
        Ok(vec![conv2d_weight_grad(&x, &gy, [3, 3], p)?])
    });
}

#[test]
fn empty_batch_and_channels() {
    // No samples: the weight gradient is zero (an empty reduction); no input
    // channels: the output is zero. Both exact.
    on_every_device("conv2d empty", 0.0, 0.0, |dev| {
        let p = conv([1, 1], [1, 1], 1);
        let x0 = Tensor::zeros(vec![0, 3, 5, 5], dev);
        let gy0 = Tensor::zeros(vec![0, 4, 5, 5], dev);
        let x = Tensor::zeros(vec![2, 0, 5, 5], dev);
        let w = Tensor::zeros(vec![4, 0, 3, 3], dev);
        Ok(vec![
            conv2d_weight_grad(&x0, &gy0, [3, 3], p)?,
            conv2d(&x0, &leaf_on(&[4, 3, 3, 3], 1, dev), p)?,
            conv2d(&x, &w, p)?,
        ])
    });
}

#[test]
fn shape_errors_on_the_simulator() {
    let x = leaf_on(&[1, 4, 5, 5], 1, Device::Sim);
    let w = leaf_on(&[3, 3, 3, 3], 2, Device::Sim);
    let e = conv2d(&x, &w, Conv2d::default()).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let w_cpu = leaf_on(&[3, 4, 3, 3], 2, Device::Cpu);
    let e = conv2d(&x, &w_cpu, Conv2d::default()).unwrap_err();
    assert!(matches!(e, Error::Device { .. }), "{e}");
}

/// The modulated convolution without up-sampling runs conv2d (plain, and
/// grouped with per-sample weights) plus elementwise ops only: on the
/// simulator it must match the official outputs and gradients. Tolerances
/// are the golden README's (forward 1e-5, gradients 1e-4 relative).
#[test]
fn golden_modconv_on_the_simulator() {
    let g = golden::load("sg2_ops_a");
    let sim = |key: &str| -> Tensor {
        let (shape, data) = g.raw(key);
        let t = Tensor::from_vec(data.to_vec(), shape.to_vec(), Device::Sim).unwrap();
        t.set_requires_grad(true).unwrap();
        t
    };
    for (case, p) in [
        ("modconv_3x3_up1_demod", ModConv::conv3x3()),
        ("modconv_1x1_nodemod", ModConv::torgb()),
    ] {
        let key = |k: &str| format!("{case}.{k}");
        for (path, y_key) in [
            (ModConvPath::Unfused, "y_nonfused"),
            (ModConvPath::Grouped, "y_fused"),
        ] {
            let (x, w, s) = (sim(&key("x")), sim(&key("weight")), sim(&key("styles")));
            let y = modulated_conv2d(&x, &w, &s, None, p, path).unwrap();
            assert_eq!(y.device(), Device::Sim);
            assert_close(
                &format!("{case} {path:?} y"),
                &y.to_vec(),
                g.data(&key(y_key)),
                1e-5,
                1e-5,
            );
            let dy = sim(&key("dy")).detach();
            let grads = grad(&[y], &[x, w, s], Some(&[dy]), false).unwrap();
            for (gr, name) in grads.iter().zip(["dx", "dweight", "dstyles"]) {
                let gr = gr.as_ref().unwrap_or_else(|| panic!("{case}: no {name}"));
                assert_close(
                    &format!("{case} {path:?} {name}"),
                    &gr.to_vec(),
                    g.data(&key(name)),
                    1e-5,
                    1e-4,
                );
            }
        }
    }
}
