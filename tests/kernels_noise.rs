//! The noise kernel family (kernels/noise.cu) on every device: forward with
//! per-sample and shared noise planes, strength of rank 0 and 1; gradients
//! with create_graph (the composed rule, recorded) and without (the fused
//! gradient kernels), which must agree with each other and with the CPU; and
//! second order through the composed rule.

mod common;
use common::{assert_close, kernel_devices, leaf_on, on_every_device, values, with_grads};
use stylegan2::ops::noise::noise_inject;
use stylegan2::{grad, Device, Result, Tensor};

/// The forward is one multiply-add per element (FMA on a GPU: ≤ 1 ulp).
/// dstrength sums up to 3·67·5·7 products in a two-stage tree against the
/// CPU's order; dnoise sums ≤ 3·67 terms. Their rounding is ~√n·ε relative
/// to Σ|terms|, itself ≤ ~√n × the largest |result| for these random
/// signs: below 2e-5 relative. 1e-4 leaves margin; a missing channel or a
/// wrong broadcast is off by O(1).
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

/// (x, noise, strength) leaves on `dev`.
fn inputs(dims: &[usize], batched: bool, strength_rank: usize, dev: Device) -> [Tensor; 3] {
    let nn = if batched { dims[0] } else { 1 };
    let x = leaf_on(dims, 1, dev);
    let noise = leaf_on(&[nn, 1, dims[2], dims[3]], 2, dev);
    let s = Tensor::from_vec(vec![0.7], vec![1; strength_rank], dev).unwrap();
    s.set_requires_grad(true).unwrap();
    [x, noise, s]
}

/// y and the first-order gradients without create_graph: the fused kernels
/// on Cuda/Sim.
fn first_order(x: &Tensor, noise: &Tensor, s: &Tensor) -> Result<Vec<Tensor>> {
    let y = noise_inject(x, noise, s)?;
    let r = Tensor::from_vec(values(y.numel(), 77), y.dims().to_vec(), y.device())?;
    let gs = grad(
        std::slice::from_ref(&y),
        &[x.clone(), noise.clone(), s.clone()],
        Some(&[r]),
        false,
    )?;
    let mut out = vec![y];
    out.extend(
        gs.into_iter()
            .map(|g| g.expect("every input takes a gradient")),
    );
    Ok(out)
}

#[test]
fn forward_and_gradients_both_ways() {
    for (i, dims) in SHAPES.iter().enumerate() {
        for batched in [true, false] {
            for rank in [0, 1] {
                let tag = format!("{dims:?} batched {batched} strength rank {rank}");
                on_every_device(&format!("{tag} create_graph"), ATOL, RTOL, |dev| {
                    let [x, noise, s] = inputs(dims, batched, rank, dev);
                    with_grads(noise_inject(&x, &noise, &s)?, &[&x, &noise, &s])
                });
                on_every_device(&format!("{tag} fused"), ATOL, RTOL, |dev| {
                    let [x, noise, s] = inputs(dims, batched, rank, dev);
                    first_order(&x, &noise, &s)
                });
                // Fused kernels against the composed rule on the same device.
                for dev in kernel_devices() {
                    let [x, noise, s] = inputs(dims, batched, rank, dev);
                    let fused = first_order(&x, &noise, &s).unwrap();
                    let composed =
                        with_grads(noise_inject(&x, &noise, &s).unwrap(), &[&x, &noise, &s])
                            .unwrap();
                    for (k, (a, b)) in fused.iter().zip(&composed).enumerate() {
                        assert_eq!(a.dims(), b.dims(), "{tag} {dev} output {k}: shape");
                        assert_close(
                            &format!("{tag} {dev} output {k}: fused vs composed ({i})"),
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
}

#[test]
fn only_the_gradients_asked_for() {
    // A constant noise buffer (the usual case): only x and strength take
    // gradients, fused and composed.
    on_every_device("const noise", ATOL, RTOL, |dev| {
        let x = leaf_on(&[3, 5, 4, 7], 3, dev);
        let noise = Tensor::from_vec(values(28, 4), vec![1, 1, 4, 7], dev)?;
        let s = leaf_on(&[1], 5, dev);
        let y = noise_inject(&x, &noise, &s)?;
        let r = Tensor::from_vec(values(y.numel(), 6), y.dims().to_vec(), dev)?;
        let fused = grad(
            std::slice::from_ref(&y),
            &[x.clone(), s.clone()],
            Some(std::slice::from_ref(&r)),
            false,
        )?;
        let mut out: Vec<Tensor> = fused.into_iter().map(|g| g.unwrap()).collect();
        out.extend(with_grads(y, &[&x, &s])?);
        Ok(out)
    });
}

#[test]
fn second_order_through_the_composed_rule() {
    for dims in [&[3usize, 3, 5, 5][..], &[1, 67, 17, 13]] {
        for batched in [true, false] {
            on_every_device(
                &format!("{dims:?} batched {batched} second order"),
                ATOL,
                RTOL,
                |dev| {
                    let [x, noise, s] = inputs(dims, batched, 1, dev);
                    let y = noise_inject(&x, &noise, &s)?.square()?;
                    let ins = [x.clone(), noise.clone(), s.clone()];
                    let gs = grad(std::slice::from_ref(&y), &ins, None, true)?;
                    let mut h = None;
                    for (k, g) in gs.iter().enumerate() {
                        let g = g.as_ref().expect("every input takes a gradient");
                        let r2 = Tensor::from_vec(
                            values(g.numel(), 80 + k as u64),
                            g.dims().to_vec(),
                            dev,
                        )?;
                        let t = g.mul(&r2)?.sum_all()?;
                        h = Some(match h {
                            Some(a) => t.add(&a)?,
                            None => t,
                        });
                    }
                    let g2 = grad(&[h.unwrap()], &ins, None, false)?;
                    Ok(g2.into_iter().map(|g| g.unwrap()).collect())
                },
            );
        }
    }
}
