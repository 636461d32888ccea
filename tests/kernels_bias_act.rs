//! The bias_act kernel family (kernels/bias_act.cu) on every device: every
//! activation with and without gain, clamp and bias, the bias on each axis,
//! forward, gradients w.r.t. x and b (create_graph), the grad op directly,
//! and second order (the grad op differentiated again), on odd shapes.

mod common;
use common::{leaf_on, on_every_device, values, with_grads};
use stylegan2::ops::bias_act::{bias_act, bias_act_grad, Act, BiasAct};
use stylegan2::{grad, Device, Result, Tensor};

/// Forward and dx are the CPU's arithmetic step for step (add, select, two
/// multiplies, compare: no contraction possible), so they agree to the bit;
/// db sums dx over up to 3·17·13 elements in another order, a relative error
/// of ~√n·ε ≈ 2e-6 of the largest |db|. 1e-4 covers that with margin while a
/// wrong slope, mask or bias index is off by O(1).
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;

const SHAPES: [&[usize]; 6] = [
    &[1, 1, 1, 1],
    &[3, 3, 5, 5],
    &[1, 5, 17, 17],
    &[3, 67, 5, 7],
    &[1, 67, 17, 13],
    &[3, 1, 1, 5],
];

/// Every activation, with the official lrelu, gains (negative and zero
/// included) and clamps that cut a part of the outputs (inputs are in [-1, 1)
/// plus a bias in [-1, 1)).
fn params() -> Vec<(&'static str, BiasAct)> {
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
        (
            "lrelu_neg_gain",
            BiasAct {
                act: Act::Lrelu { alpha: 0.3 },
                gain: -1.5,
                clamp: Some(0.8),
            },
        ),
        (
            "lrelu_zero_gain",
            BiasAct {
                act: Act::Lrelu { alpha: 0.2 },
                gain: 0.0,
                clamp: None,
            },
        ),
        (
            "clamp_zero",
            BiasAct {
                act: Act::Linear,
                gain: 1.0,
                clamp: Some(0.0),
            },
        ),
    ]
}

/// `[y, d²x, d²b]` of `z = bias_act(x, b)²`: the gradient of `⟨z, r⟩` with
/// create_graph, then the gradient of `⟨dx, r2⟩` w.r.t. x and b, which
/// differentiates the grad op (through its kernel) once more.
fn second_order(x: &Tensor, b: &Tensor, z: Tensor) -> Result<Vec<Tensor>> {
    let r = Tensor::from_vec(values(z.numel(), 77), z.dims().to_vec(), z.device())?;
    let g = grad(
        std::slice::from_ref(&z),
        std::slice::from_ref(x),
        Some(&[r]),
        true,
    )?[0]
        .clone()
        .expect("x takes a gradient");
    let r2 = Tensor::from_vec(values(x.numel(), 78), x.dims().to_vec(), x.device())?;
    let h = g.mul(&r2)?.sum_all()?;
    let g2 = grad(&[h], &[x.clone(), b.clone()], None, false)?;
    let z0 = |t: &Tensor| Tensor::zeros(t.dims().to_vec(), t.device());
    Ok(vec![
        g,
        g2[0].clone().unwrap_or_else(|| z0(x)),
        g2[1].clone().unwrap_or_else(|| z0(b)),
    ])
}

#[test]
fn bias_act_forward_and_grads_every_axis() {
    for (name, p) in params() {
        for (i, dims) in SHAPES.iter().enumerate() {
            for dim in 0..4 {
                let tag = format!("{name} {dims:?} dim {dim}");
                on_every_device(&tag, ATOL, RTOL, |dev| {
                    let x = leaf_on(dims, i as u64, dev);
                    let b = leaf_on(&[dims[dim]], 50 + i as u64, dev);
                    with_grads(bias_act(&x, Some(&b), dim, &p)?, &[&x, &b])
                });
            }
            on_every_device(&format!("{name} {dims:?} no bias"), ATOL, RTOL, |dev| {
                let x = leaf_on(dims, i as u64, dev);
                with_grads(bias_act(&x, None, 0, &p)?, &[&x])
            });
        }
    }
}

#[test]
fn bias_act_second_order() {
    for (name, p) in params() {
        for (i, dims) in SHAPES.iter().enumerate() {
            on_every_device(
                &format!("{name} {dims:?} second order"),
                ATOL,
                RTOL,
                |dev| {
                    let x = leaf_on(dims, 10 + i as u64, dev);
                    let b = leaf_on(&[dims[1]], 60 + i as u64, dev);
                    second_order(&x, &b, bias_act(&x, Some(&b), 1, &p)?.square()?)
                },
            );
        }
    }
}

#[test]
fn bias_act_grad_op_directly() {
    for (name, p) in params() {
        for (i, dims) in SHAPES.iter().enumerate() {
            on_every_device(
                &format!("bias_act_grad {name} {dims:?}"),
                ATOL,
                RTOL,
                |dev| {
                    let x = leaf_on(dims, 20 + i as u64, dev);
                    let y = bias_act(&x, None, 0, &p)?.detach();
                    let dy = leaf_on(dims, 30 + i as u64, dev);
                    with_grads(bias_act_grad(&dy, &y, &p)?, &[&dy])
                },
            );
        }
    }
}

#[test]
fn clamp_mask_is_strict_and_nan_goes_to_a_bound() {
    // Outputs exactly at ±clamp get no gradient (strict |y| < clamp); NaN is
    // clamped like the CPU does it. Exact equality: no arithmetic differs.
    let p = BiasAct {
        act: Act::Linear,
        gain: 1.0,
        clamp: Some(0.5),
    };
    let xs = vec![0.5, -0.5, 0.49, -0.49, 2.0, -2.0, f32::NAN, 0.0];
    on_every_device("clamp edges", 0.0, 0.0, |dev| {
        let x = Tensor::from_vec(xs.clone(), vec![8], dev)?;
        let y = bias_act(&x, None, 0, &p)?;
        let dy = Tensor::from_vec(vec![1.0; 8], vec![8], dev)?;
        let dx = bias_act_grad(&dy, &y, &p)?;
        Ok(vec![y, dx])
    });
    let y = bias_act(
        &Tensor::from_vec(xs, vec![8], Device::Sim).unwrap(),
        None,
        0,
        &p,
    )
    .unwrap();
    let dx = bias_act_grad(&Tensor::ones(vec![8], Device::Sim), &y, &p).unwrap();
    assert_eq!(dx.to_vec(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
}

#[test]
fn lrelu_slope_at_exact_zero() {
    // x + b == 0 exactly (and -0): the output is 0, and the slope taken from
    // y / gain > 0 is alpha there, as on the CPU; with a negative gain the
    // sign of y flips but the slope does not.
    for gain in [2.0, -2.0] {
        let p = BiasAct {
            act: Act::Lrelu { alpha: 0.25 },
            gain,
            clamp: None,
        };
        on_every_device(&format!("lrelu at zero, gain {gain}"), 0.0, 0.0, |dev| {
            let x = Tensor::from_vec(vec![0.5, -0.5, 0.0, -0.0, 1.0, -1.0], vec![2, 3], dev)?;
            let b = Tensor::from_vec(vec![-0.5, 0.5, 0.0], vec![3], dev)?;
            x.set_requires_grad(true)?;
            let y = bias_act(&x, Some(&b), 1, &p)?;
            let dx = grad(std::slice::from_ref(&y), &[x], None, false)?[0]
                .clone()
                .unwrap();
            // Pre-activations [0, 0, 0; -0.5, 1.5, -1]: only 1.5 has slope 1.
            let a = 0.25 * gain;
            assert_eq!(dx.to_vec(), vec![a, a, a, a, gain, a], "{dev}");
            Ok(vec![y, dx])
        });
    }
}
