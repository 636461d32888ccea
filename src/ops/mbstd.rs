//! Minibatch standard deviation (the discriminator epilogue), composed from
//! differentiable ops, with the official strided grouping.

use crate::error::{invalid, shape_err, Result};
use crate::tensor::Tensor;

/// Appends `num_channels` feature maps holding the per-group standard
/// deviation of `x` [N, C, H, W] (official `MinibatchStdLayer`).
///
/// With `G = min(group_size, N)`, sample n belongs to group `n mod (N/G)`
/// together with samples `n ± k·N/G` (the reshape `[G, N/G, …]` strides the
/// batch). Per group and channel-slice: population variance over the G
/// members, `sqrt(var + 1e-8)`, averaged over the slice's channels and pixels.
pub fn minibatch_std(x: &Tensor, group_size: usize, num_channels: usize) -> Result<Tensor> {
    let &[n, c, h, w] = x.dims() else {
        return shape_err(
            "minibatch_std",
            format!("input {} is not [N, C, H, W]", x.shape()),
        );
    };
    if group_size == 0 || num_channels == 0 {
        return invalid(
            "minibatch_std",
            format!("group_size {group_size} and num_channels {num_channels} must be ≥ 1"),
        );
    }
    let g = group_size.min(n);
    if n % g != 0 {
        return shape_err(
            "minibatch_std",
            format!("batch {n} is not divisible by group size {g}"),
        );
    }
    if c % num_channels != 0 {
        return shape_err(
            "minibatch_std",
            format!("{c} channels are not divisible by num_channels {num_channels}"),
        );
    }
    let (m, f) = (n / g, num_channels);
    let y = x.reshape(vec![g, m, f, c / f, h, w])?;
    let centered = y.sub(&y.mean(&[0], true)?)?;
    let std = centered
        .square()?
        .mean(&[0], false)?
        .add_scalar(1e-8)?
        .sqrt()?; // [m, f, c/f, h, w]
    let s = std.mean(&[2, 3, 4], false)?; // [m, f]
    let maps = s
        .reshape(vec![1, m, f, 1, 1])?
        .broadcast_to(&[g, m, f, h, w].into())?
        .reshape(vec![n, f, h, w])?;
    Tensor::concat(&[x.clone(), maps], 1)
}
