//! The grid_sample kernel family (kernels/grid_sample.cu) on every device
//! against the CPU reference: forward, the scatter gradient and the second
//! order (recorded rule), on odd shapes, up- and down-scaling grids and grids
//! that reach outside the input.

mod common;
use common::{leaf_on, on_every_device, with_grads};
use stylegan2::ops::grid_sample::{grid_sample_affine, grid_sample_affine_input_grad};
use stylegan2::{grad, Device, Result, Tensor};

/// Each output is a sum of ≤ 4 products (the scatter: of at most about
/// 4·(OH·OW)/(H·W) plus 4 products per input pixel here) whose weights are computed by the same
/// formula in fp32; a GPU's FMA contraction changes the weights and the grid
/// point by ~1 ulp of the normalized coordinate, i.e. ~1e-6 of a pixel,
/// which moves a weight by ~1e-6. 1e-5 relative leaves margin; a wrong
/// neighbour or a transposed axis is off by O(1).
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-5;

fn theta(n: usize, dev: Device) -> Tensor {
    let mut v = Vec::new();
    for k in 0..n {
        let a = 0.4 + 1.1 * k as f32;
        let (s0, s1) = (1.0 + 0.3 * k as f32, 0.7 - 0.1 * k as f32);
        v.extend([
            s0 * a.cos(),
            -s1 * a.sin(),
            0.1 * k as f32 - 0.05,
            s0 * a.sin(),
            s1 * a.cos(),
            0.2 - 0.15 * k as f32,
        ]);
    }
    Tensor::from_vec(v, [n, 2, 3], dev).unwrap()
}

const CASES: [([usize; 4], [usize; 2]); 5] = [
    ([1, 1, 1, 1], [1, 1]),
    ([2, 3, 5, 7], [9, 4]),
    ([3, 2, 17, 13], [11, 19]),
    ([1, 5, 8, 8], [33, 31]),
    ([2, 1, 31, 2], [3, 30]),
];

#[test]
fn forward_gradient_and_second_order_match_the_cpu() {
    for (dims, ohw) in CASES {
        on_every_device(
            &format!("grid_sample_affine {dims:?} -> {ohw:?}"),
            ATOL,
            RTOL,
            |dev| -> Result<Vec<Tensor>> {
                let x = leaf_on(&dims, 1, dev);
                let t = theta(dims[0], dev);
                let y = grid_sample_affine(&x, &t, ohw)?;
                let mut out = with_grads(y.square()?, &[&x])?;
                // Second order: d/dx of ⟨∂L/∂x, x⟩ runs the scatter's own rule.
                let h = out[1].mul(&x)?.sum_all()?;
                let gs = grad(
                    std::slice::from_ref(&h),
                    std::slice::from_ref(&x),
                    None,
                    false,
                )?;
                out.push(gs[0].clone().expect("x takes a gradient"));
                Ok(out)
            },
        );
    }
}

#[test]
fn input_grad_op_matches_the_cpu() {
    for (dims, ohw) in CASES {
        on_every_device(
            &format!("grid_sample_affine_input_grad {dims:?} <- {ohw:?}"),
            ATOL,
            RTOL,
            |dev| -> Result<Vec<Tensor>> {
                let g = leaf_on(&[dims[0], dims[1], ohw[0], ohw[1]], 2, dev);
                let t = theta(dims[0], dev);
                Ok(vec![grid_sample_affine_input_grad(
                    &g,
                    &t,
                    [dims[2], dims[3]],
                )?])
            },
        );
    }
}
