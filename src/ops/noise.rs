//! Noise injection of the synthesis layers: `y = x + noise · strength`.

use crate::autograd::Backward;
use crate::backend::cpu::noise as cpu;
use crate::device::Device;
use crate::error::no_kernel;
use crate::error::{shape_err, Result};
use crate::tensor::Tensor;

struct NoiseOp;

impl Backward for NoiseOp {
    fn name(&self) -> &'static str {
        "noise_inject"
    }

    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (noise, strength) = (&inputs[1], &inputs[2]);
        // Gradients only for inputs that take them (the engine drops the rest).
        let dnoise = if noise.needs_grad() {
            Some(g.sum(&[1], true)?.mul(strength)?.sum_to(noise.shape())?)
        } else {
            None
        };
        let dstrength = if strength.needs_grad() {
            Some(g.mul(noise)?.sum_all()?.reshape(strength.shape().clone())?)
        } else {
            None
        };
        Ok(vec![Some(g.clone()), dnoise, dstrength])
    }
}

/// `y = x + noise · strength` for `x [N, C, H, W]`, `noise [N, 1, H, W]` or
/// `[1, 1, H, W]` (broadcast over channels, and over the batch), and a
/// one-element `strength` (rank 0 or `[1]`). Differentiable w.r.t. all three.
pub fn noise_inject(x: &Tensor, noise: &Tensor, strength: &Tensor) -> Result<Tensor> {
    const OP: &str = "noise_inject";
    let device = Tensor::same_device(OP, &[x, noise, strength])?;
    let [n, c, h, w] = match *x.dims() {
        [n, c, h, w] => [n, c, h, w],
        _ => return shape_err(OP, format!("x must be [N, C, H, W], got {}", x.shape())),
    };
    let batched = match *noise.dims() {
        [nn, 1, nh, nw] if nh == h && nw == w && (nn == n || nn == 1) => nn == n && n != 1,
        _ => {
            return shape_err(
                OP,
                format!(
                    "noise must be [{n}, 1, {h}, {w}] or [1, 1, {h}, {w}] for x {}, got {}",
                    x.shape(),
                    noise.shape()
                ),
            )
        }
    };
    if strength.numel() != 1 || strength.rank() > 1 {
        return shape_err(
            OP,
            format!(
                "strength must be a scalar (rank 0 or [1]), got {}",
                strength.shape()
            ),
        );
    }
    let data = match device {
        Device::Cpu => cpu::noise_inject(
            x.storage().cpu(),
            [n, c, h, w],
            noise.storage().cpu(),
            batched,
            strength.storage().cpu()[0],
        ),
        Device::Cuda(_) | Device::Sim => return Err(no_kernel(OP, device)),
    };
    Ok(Tensor::from_op(
        data,
        x.shape(),
        device,
        NoiseOp,
        vec![x.clone(), noise.clone(), strength.clone()],
    ))
}
