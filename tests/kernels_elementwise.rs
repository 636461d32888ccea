//! The elementwise kernel family (kernels/elementwise.cu) on every device:
//! each elementwise, reduction and layout op, forward and gradients, on the
//! simulator (always) and GPU 0 (when there is one) against the CPU reference,
//! on shapes that are multiples of no tile.

mod common;
use common::{leaf_on, on_every_device, values, with_grads};
use stylegan2::ops::mbstd::minibatch_std;
use stylegan2::{Device, Error, Result, Shape, Tensor};

/// Batch 1 and 3; channels 1, 3, 5, 67; spatial 1×1, 5×5, 17×17, non-square.
const SHAPES: [&[usize]; 6] = [
    &[1, 1, 1, 1],
    &[3, 3, 5, 5],
    &[1, 5, 17, 17],
    &[3, 67, 5, 7],
    &[1, 67, 17, 13],
    &[3, 1, 1, 5],
];
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;

/// A leaf with values in [0.5, 1.5) (for sqrt, rsqrt, log).
fn positive_on(dims: &[usize], seed: u64, dev: Device) -> Tensor {
    let n = dims.iter().product();
    let v = values(n, seed).into_iter().map(|x| x.abs() + 0.5).collect();
    let t = Tensor::from_vec(v, dims.to_vec(), dev).unwrap();
    t.set_requires_grad(true).unwrap();
    t
}

type UnaryFn = fn(&Tensor) -> Result<Tensor>;

#[test]
fn unary_ops_forward_and_grad() {
    let ops: [(&str, UnaryFn, bool); 13] = [
        ("neg", |x| x.neg(), false),
        ("square", |x| x.square(), false),
        ("sqrt", |x| x.sqrt(), true),
        ("rsqrt", |x| x.rsqrt(), true),
        ("exp", |x| x.exp(), false),
        ("log", |x| x.log(), true),
        ("softplus", |x| x.scale(8.0)?.softplus(), false),
        ("sigmoid", |x| x.scale(8.0)?.sigmoid(), false),
        ("abs", |x| x.abs(), false),
        ("sign", |x| x.sign(), false),
        ("affine", |x| x.affine(-1.5, 0.25), false),
        ("clamp", |x| x.clamp(-0.4, 0.3), false),
        ("add_scalar", |x| x.add_scalar(2.0), false),
    ];
    for (name, f, positive) in ops {
        for (i, dims) in SHAPES.iter().enumerate() {
            on_every_device(&format!("{name} {dims:?}"), ATOL, RTOL, |dev| {
                let x = if positive {
                    positive_on(dims, i as u64, dev)
                } else {
                    leaf_on(dims, i as u64, dev)
                };
                with_grads(f(&x)?, &[&x])
            });
        }
    }
}

type BinaryFn = fn(&Tensor, &Tensor) -> Result<Tensor>;

#[test]
fn binary_ops_with_broadcasting_forward_and_grad() {
    let ops: [(&str, BinaryFn); 11] = [
        ("add", |a, b| a.add(b)),
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(&b.abs()?.add_scalar(0.5)?)),
        ("maximum", |a, b| a.maximum(b)),
        ("minimum", |a, b| a.minimum(b)),
        ("gt", |a, b| a.gt(b)),
        ("ge", |a, b| a.ge(b)),
        ("lt", |a, b| a.lt(b)),
        ("le", |a, b| a.le(b)),
        ("eq_mask", |a, b| a.eq_mask(&b.sign()?)),
    ];
    let pairs: [(&[usize], &[usize]); 7] = [
        (&[3, 67, 5, 7], &[3, 67, 5, 7]),
        (&[3, 67, 5, 7], &[67, 1, 1]),
        (&[1, 5, 17, 17], &[3, 1, 17, 1]),
        (&[3, 3, 5, 5], &[]),
        (&[5, 1], &[1, 7, 1, 1]),
        (&[1, 1, 1, 1], &[1]),
        (&[2, 1, 3, 1, 5, 1, 2], &[2, 3, 1, 5, 4, 1]),
    ];
    for (name, f) in ops {
        for (i, (sa, sb)) in pairs.iter().enumerate() {
            on_every_device(&format!("{name} {sa:?} {sb:?}"), ATOL, RTOL, |dev| {
                let a = leaf_on(sa, 10 + i as u64, dev);
                let b = leaf_on(sb, 20 + i as u64, dev);
                with_grads(f(&a, &b)?, &[&a, &b])
            });
        }
    }
}

#[test]
fn reductions_forward_and_grad() {
    let axes_sets: [&[usize]; 9] = [
        &[0],
        &[1],
        &[3],
        &[2, 3],
        &[1, 3],
        &[0, 2],
        &[0, 1, 2, 3],
        &[0, 3],
        &[],
    ];
    for (i, dims) in SHAPES.iter().enumerate() {
        for axes in axes_sets {
            for keepdim in [false, true] {
                let tag = format!("{dims:?} axes {axes:?} keepdim {keepdim}");
                on_every_device(&format!("sum {tag}"), ATOL, RTOL, |dev| {
                    let x = leaf_on(dims, i as u64, dev);
                    with_grads(x.sum(axes, keepdim)?, &[&x])
                });
                on_every_device(&format!("mean {tag}"), ATOL, RTOL, |dev| {
                    let x = leaf_on(dims, i as u64, dev);
                    with_grads(x.mean(axes, keepdim)?, &[&x])
                });
                on_every_device(&format!("max {tag}"), ATOL, RTOL, |dev| {
                    let x = leaf_on(dims, i as u64, dev);
                    with_grads(x.max(axes, keepdim)?, &[&x])
                });
            }
        }
    }
}

#[test]
fn long_rows_and_ties() {
    // Rows longer than a warp's share (block-per-row path), a long middle
    // axis, and ties in max (gradient shared among them).
    on_every_device("long rows", 1e-4, 1e-4, |dev| {
        let x = leaf_on(&[3, 5000], 1, dev);
        let y = leaf_on(&[2, 3001, 3], 2, dev);
        let mut out = with_grads(x.sum(&[1], false)?, &[&x])?;
        out.extend(with_grads(y.max(&[1], false)?, &[&y])?);
        out.extend(with_grads(y.sum(&[0, 1], false)?, &[&y])?);
        out.push(x.sum_all()?);
        Ok(out)
    });
    on_every_device("max ties", ATOL, RTOL, |dev| {
        let x = Tensor::from_vec(
            vec![1.0, 3.0, 3.0, -2.0, 0.5, 0.5, 0.5, 0.5],
            vec![2, 4],
            dev,
        )?;
        x.set_requires_grad(true)?;
        with_grads(x.max(&[1], true)?, &[&x])
    });
    on_every_device("empty", ATOL, RTOL, |dev| {
        let x = leaf_on(&[3, 0, 5], 1, dev);
        Ok(vec![x.sum(&[1], false)?, x.sum(&[2], false)?, x.exp()?])
    });
}

#[test]
fn layout_ops_forward_and_grad() {
    for (i, dims) in SHAPES.iter().enumerate() {
        let seed = 30 + i as u64;
        let tag = |op: &str| format!("{op} {dims:?}");
        on_every_device(&tag("permute"), ATOL, RTOL, |dev| {
            let x = leaf_on(dims, seed, dev);
            let y = x.permute(&[0, 2, 3, 1])?.permute(&[3, 1, 0, 2])?;
            with_grads(y, &[&x])
        });
        on_every_device(&tag("transpose"), ATOL, RTOL, |dev| {
            let x = leaf_on(dims, seed, dev);
            with_grads(x.transpose(1, 3)?, &[&x])
        });
        on_every_device(&tag("broadcast_to"), ATOL, RTOL, |dev| {
            let x = leaf_on(&[dims[1], 1, dims[3]], seed, dev);
            let target = Shape::new(vec![2, dims[1], 3, dims[3]]);
            with_grads(x.broadcast_to(&target)?, &[&x])
        });
        on_every_device(&tag("narrow"), ATOL, RTOL, |dev| {
            let x = leaf_on(dims, seed, dev);
            let len = dims[3].div_ceil(2);
            let y = x.narrow(3, dims[3] - len, len)?.narrow(1, 0, dims[1])?;
            with_grads(y, &[&x])
        });
        on_every_device(&tag("pad_zeros"), ATOL, RTOL, |dev| {
            let x = leaf_on(dims, seed, dev);
            with_grads(x.pad_zeros(2, 2, 1)?, &[&x])
        });
        on_every_device(&tag("flip"), ATOL, RTOL, |dev| {
            let x = leaf_on(dims, seed, dev);
            let y = x.flip(&[3])?.flip(&[1, 2])?;
            with_grads(y, &[&x])
        });
        on_every_device(&tag("reshape"), ATOL, RTOL, |dev| {
            let x = leaf_on(dims, seed, dev);
            let y = x
                .reshape(vec![dims[0] * dims[1], dims[2] * dims[3]])?
                .unsqueeze(1)?;
            with_grads(y.scale(2.0)?, &[&x])
        });
        for axis in 0..4 {
            on_every_device(&tag(&format!("concat axis {axis}")), ATOL, RTOL, |dev| {
                let a = leaf_on(dims, seed, dev);
                let mut d2 = dims.to_vec();
                d2[axis] = 2;
                let b = leaf_on(&d2, seed + 1, dev);
                let c = leaf_on(dims, seed + 2, dev);
                let y = Tensor::concat(&[a.clone(), b.clone(), c.clone()], axis)?;
                with_grads(y, &[&a, &b, &c])
            });
        }
    }
}

#[test]
fn composed_ops_and_second_order() {
    // Minibatch stddev (reshape, mean, sqrt, broadcast, concat) and a second
    // derivative through the recorded backward graph.
    on_every_device("minibatch_std", ATOL, RTOL, |dev| {
        let x = leaf_on(&[4, 6, 5, 3], 3, dev);
        with_grads(minibatch_std(&x, 2, 3)?, &[&x])
    });
    on_every_device("second order", 1e-4, 1e-4, |dev| {
        let x = leaf_on(&[3, 5, 7], 4, dev);
        let w = leaf_on(&[5, 1], 5, dev);
        let y = x
            .mul(&w)?
            .softplus()?
            .square()?
            .mean(&[1], false)?
            .sum_all()?;
        let g = stylegan2::grad(&[y], &[x.clone(), w.clone()], None, true)?;
        let gx = g[0].clone().unwrap();
        let h = gx.square()?.sum_all()?;
        let g2 = stylegan2::grad(&[h], &[x.clone(), w.clone()], None, false)?;
        Ok(vec![gx, g2[0].clone().unwrap(), g2[1].clone().unwrap()])
    });
}

#[test]
fn to_device_moves_values_and_gradients() {
    for dev in common::kernel_devices() {
        let x = leaf_on(&[3, 5, 7], 6, Device::Cpu);
        let y = x.to_device(dev).unwrap();
        assert_eq!(y.device(), dev);
        assert_eq!(y.to_vec(), x.to_vec());
        let back = y.exp().unwrap().to_device(Device::Cpu).unwrap();
        assert_eq!(back.device(), Device::Cpu);
        let g = stylegan2::grad(
            &[back.sum_all().unwrap()],
            std::slice::from_ref(&x),
            None,
            false,
        )
        .unwrap();
        let g = g[0].as_ref().unwrap();
        assert_eq!(g.device(), Device::Cpu);
        common::assert_close(
            "to_device grad",
            &g.to_vec(),
            &x.exp().unwrap().to_vec(),
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn mixing_devices_is_an_error() {
    let a = Tensor::ones(vec![2], Device::Cpu);
    let b = Tensor::ones(vec![2], Device::Sim);
    match a.add(&b) {
        Err(Error::Device { op, msg }) => {
            assert_eq!(op, "add");
            assert!(msg.contains("cpu") && msg.contains("sim"), "{msg}");
        }
        other => panic!("expected a device error, got {other:?}"),
    }
}

#[test]
fn more_than_six_unmergeable_axes_is_a_clear_error() {
    // Seven axes that no merging can reduce (a transposition of each pair).
    let dims = vec![2, 3, 2, 3, 2, 3, 2];
    let x = leaf_on(&dims, 1, Device::Sim);
    let err = x.permute(&[6, 5, 4, 3, 2, 1, 0]).unwrap_err();
    assert!(err.to_string().contains("more than 6 axes"), "{err}");
}
