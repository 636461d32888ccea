//! The matmul kernel family (kernels/matmul.cu) on every device: 2-D and
//! batched 3-D products, forward, first and second order gradients, on the
//! simulator (always) and GPU 0 (when there is one) against the CPU
//! reference, on sizes that are multiples of no tile.

mod common;
use common::{leaf_on, on_every_device, values, with_grads};
use stylegan2::{grad, Result, Tensor};

/// Inputs in [-1, 1); each result is a sum of k ≤ 131 products (a few
/// hundred through the second-order chain, where the backward products
/// reduce over m or n). Reordered fp32 sums differ by about √k · 2^-24
/// relative to the largest result (< 1e-6 here): 1e-4 is a wide margin,
/// while a wrong index is off by O(1). The atol covers all-~0 results.
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;

/// `with_grads` plus the gradients of `h = Σ_k ⟨∇_k, r2_k⟩` w.r.t. `xs`.
fn with_second_order(y: Tensor, xs: &[&Tensor]) -> Result<Vec<Tensor>> {
    let out = with_grads(y, xs)?;
    let mut h: Option<Tensor> = None;
    for (k, (g, x)) in out[1..].iter().zip(xs).enumerate() {
        let r2 = Tensor::from_vec(
            values(x.numel(), 500 + k as u64),
            x.dims().to_vec(),
            x.device(),
        )?;
        // Squaring makes the second order depend on both operands.
        let term = g.square()?.mul(&r2)?.sum_all()?;
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
fn matmul_2d_forward_and_grads() {
    // (m, k, n): 1s, odd sizes, one above a 64 tile in each axis, k above
    // several 16-steps, and a long thin product.
    let sizes: [(usize, usize, usize); 8] = [
        (1, 1, 1),
        (1, 7, 1),
        (3, 5, 4),
        (5, 67, 3),
        (67, 17, 65),
        (65, 131, 67),
        (1, 300, 130),
        (130, 2, 1),
    ];
    for (i, (m, k, n)) in sizes.into_iter().enumerate() {
        on_every_device(&format!("matmul [{m},{k}]x[{k},{n}]"), ATOL, RTOL, |dev| {
            let a = leaf_on(&[m, k], 10 + i as u64, dev);
            let b = leaf_on(&[k, n], 20 + i as u64, dev);
            with_second_order(a.matmul(&b)?, &[&a, &b])
        });
    }
}

#[test]
fn matmul_3d_forward_and_grads() {
    let sizes: [(usize, usize, usize, usize); 5] = [
        (1, 1, 1, 1),
        (3, 5, 7, 3),
        (3, 67, 17, 5),
        (2, 1, 67, 70),
        (5, 17, 3, 66),
    ];
    for (i, (b, m, k, n)) in sizes.into_iter().enumerate() {
        on_every_device(
            &format!("matmul [{b},{m},{k}]x[{b},{k},{n}]"),
            ATOL,
            RTOL,
            |dev| {
                let x = leaf_on(&[b, m, k], 30 + i as u64, dev);
                let y = leaf_on(&[b, k, n], 40 + i as u64, dev);
                with_second_order(x.matmul(&y)?, &[&x, &y])
            },
        );
    }
}

#[test]
fn matmul_batch_beyond_the_grid_slices() {
    // More batch items (1030) than the launch's 1024 grid slices: blocks
    // loop over the rest (k = 3: any summation order is within a few ulps).
    on_every_device("matmul batch 1030", ATOL, RTOL, |dev| {
        let a = leaf_on(&[1030, 2, 3], 1, dev);
        let b = leaf_on(&[1030, 3, 2], 2, dev);
        Ok(vec![a.matmul(&b)?])
    });
}

#[test]
fn matmul_with_empty_inner_dimension_is_zero() {
    on_every_device("matmul k = 0", 0.0, 0.0, |dev| {
        let a = Tensor::zeros(vec![3, 0], dev);
        let b = Tensor::zeros(vec![0, 5], dev);
        Ok(vec![a.matmul(&b)?])
    });
}
