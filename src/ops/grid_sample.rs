//! Bilinear grid sampling on an affine grid: PyTorch's
//! `grid_sample(x, affine_grid(theta, [N, C, OH, OW], align_corners=False),
//! mode='bilinear', padding_mode='zeros', align_corners=False)`, the resampling
//! step of the official augment pipeline (`training/augment.py`, through
//! `grid_sample_gradfix`).
//!
//! The grid (theta) is a constant, as the official code treats it: only the
//! images are differentiated. The op is linear in `x`, so the pair is closed
//! under differentiation:
//!
//! | op | d/d(first input) |
//! | --- | --- |
//! | `y = grid_sample_affine(x, θ, out_hw)` | `grid_sample_affine_input_grad(gy, θ, in_hw)` |
//! | `z = grid_sample_affine_input_grad(g, θ, in_hw)` | `grid_sample_affine(gz, θ, out_hw)` |

use crate::autograd::Backward;
use crate::backend::cpu::grid_sample as cpu;
use crate::backend::cuda::grid_sample as cuda;
use crate::device::Device;
use crate::error::{invalid, shape_err, Result};
use crate::tensor::{Storage, Tensor};

/// `y = grid_sample_affine(x, θ)`: its gradient scatters back.
struct GridSampleOp {
    theta: Tensor,
    in_hw: [usize; 2],
}

impl Backward for GridSampleOp {
    fn name(&self) -> &'static str {
        "grid_sample_affine"
    }

    fn backward(&self, _inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(grid_sample_affine_input_grad(
            g,
            &self.theta,
            self.in_hw,
        )?)])
    }
}

/// `z = grid_sample_affine_input_grad(g, θ)`: its gradient samples again.
struct GridSampleGradOp {
    theta: Tensor,
    out_hw: [usize; 2],
}

impl Backward for GridSampleGradOp {
    fn name(&self) -> &'static str {
        "grid_sample_affine_input_grad"
    }

    fn backward(&self, _inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(grid_sample_affine(g, &self.theta, self.out_hw)?)])
    }
}

/// Checks `x` (`[N, C, H, W]`) and `theta` (`[N, 2, 3]`, constant, same device);
/// returns the device and `[N, C, H, W]`.
fn check(op: &'static str, x: &Tensor, theta: &Tensor) -> Result<(Device, [usize; 4])> {
    let device = Tensor::same_device(op, &[x, theta])?;
    let [n, c, h, w] = match *x.dims() {
        [n, c, h, w] => [n, c, h, w],
        _ => {
            return shape_err(
                op,
                format!("the images must be [N, C, H, W], got {}", x.shape()),
            )
        }
    };
    if theta.dims() != [n, 2, 3] {
        return shape_err(
            op,
            format!(
                "theta must be [N, 2, 3] with N = {n} (the images' batch), got {}",
                theta.shape()
            ),
        );
    }
    if theta.needs_grad() {
        return invalid(
            op,
            "theta (the sampling grid) is a constant and takes no gradient; pass theta.detach()",
        );
    }
    Ok((device, [n, c, h, w]))
}

/// Samples `x [N, C, H, W]` bilinearly at the points of the affine grid of
/// `theta [N, 2, 3]` over an `out_hw = [OH, OW]` output, in PyTorch's
/// normalized coordinates (`align_corners = False`: −1 and 1 are the outer
/// edges of the corner pixels); neighbours outside the input are zero.
/// Returns `[N, C, OH, OW]`.
///
/// Output pixel `(oy, ox)` reads the input at
/// `ix = ((gx + 1)·W − 1) / 2`, `iy = ((gy + 1)·H − 1) / 2` with
/// `(gx, gy) = θ[n] · ((2·ox + 1 − OW)/OW, (2·oy + 1 − OH)/OH, 1)`.
///
/// Errors: shapes that do not match, a theta that requires grad, tensors on
/// different devices.
pub fn grid_sample_affine(x: &Tensor, theta: &Tensor, out_hw: [usize; 2]) -> Result<Tensor> {
    const OP: &str = "grid_sample_affine";
    let (device, [n, c, h, w]) = check(OP, x, theta)?;
    let storage = match device {
        Device::Cpu => Storage::Cpu(cpu::grid_sample_affine(
            x.storage().cpu(),
            theta.storage().cpu(),
            c,
            [h, w],
            out_hw,
        )),
        Device::Cuda(_) | Device::Sim => cuda::grid_sample_affine(
            &x.storage(),
            &theta.storage(),
            [n, c],
            [h, w],
            out_hw,
            device,
        )?,
    };
    Tensor::from_op_storage(
        storage,
        [n, c, out_hw[0], out_hw[1]],
        device,
        GridSampleOp {
            theta: theta.clone(),
            in_hw: [h, w],
        },
        vec![x.clone()],
    )
}

/// The gradient of `grid_sample_affine` w.r.t. its images: `g [N, C, OH, OW]`
/// scattered with the bilinear weights onto `[N, C, in_hw[0], in_hw[1]]`
/// (the adjoint of the sampling). Differentiable in `g` to any order.
pub fn grid_sample_affine_input_grad(
    g: &Tensor,
    theta: &Tensor,
    in_hw: [usize; 2],
) -> Result<Tensor> {
    const OP: &str = "grid_sample_affine_input_grad";
    let (device, [n, c, oh, ow]) = check(OP, g, theta)?;
    let storage = match device {
        Device::Cpu => Storage::Cpu(cpu::grid_sample_affine_input_grad(
            g.storage().cpu(),
            theta.storage().cpu(),
            c,
            in_hw,
            [oh, ow],
        )),
        Device::Cuda(_) | Device::Sim => cuda::grid_sample_affine_input_grad(
            &g.storage(),
            &theta.storage(),
            [n, c],
            in_hw,
            [oh, ow],
            device,
        )?,
    };
    Tensor::from_op_storage(
        storage,
        [n, c, in_hw[0], in_hw[1]],
        device,
        GridSampleGradOp {
            theta: theta.clone(),
            out_hw: [oh, ow],
        },
        vec![g.clone()],
    )
}
