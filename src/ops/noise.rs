//! Noise injection of the synthesis layers: `y = x + noise · strength`.
//!
//! The backward rule is composed of differentiable ops, so gradients of any
//! order work. A first-order backward on `Cuda`/`Sim` (no graph recorded:
//! `create_graph` off) uses the fused gradient kernels of kernels/noise.cu
//! instead; both give the same values.

use crate::autograd::{self, Backward};
use crate::backend::cpu::noise as cpu;
use crate::backend::cuda::noise as cuda;
use crate::device::Device;
use crate::error::{shape_err, Result};
use crate::tensor::{Storage, Tensor};

struct NoiseOp {
    /// `[N, C, H, W]` of x.
    dims: [usize; 4],
    /// Whether the noise has one plane per sample (else one shared plane).
    batched: bool,
}

impl NoiseOp {
    /// The fused first-order gradients w.r.t. noise and strength (kernels).
    fn fused(
        &self,
        noise: &Tensor,
        strength: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let device = g.device();
        let dnoise = if noise.needs_grad() {
            let s = cuda::grad_noise(
                &g.storage(),
                self.dims,
                self.batched,
                &strength.storage(),
                device,
            )?;
            Some(Tensor::from_device_storage(s, noise.shape(), device))
        } else {
            None
        };
        let dstrength = if strength.needs_grad() {
            let s = cuda::grad_strength(
                &g.storage(),
                self.dims,
                &noise.storage(),
                self.batched,
                device,
            )?;
            Some(Tensor::from_device_storage(s, strength.shape(), device))
        } else {
            None
        };
        Ok((dnoise, dstrength))
    }
}

impl Backward for NoiseOp {
    fn name(&self) -> &'static str {
        "noise_inject"
    }

    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (noise, strength) = (&inputs[1], &inputs[2]);
        // Grad mode is on during backward only under create_graph: then the
        // composed rule records the graph of the gradient.
        let fused = matches!(g.device(), Device::Cuda(_) | Device::Sim)
            && !autograd::is_grad_enabled()
            && g.device() == noise.device()
            && g.device() == strength.device();
        let (dnoise, dstrength) = if fused {
            self.fused(noise, strength, g)?
        } else {
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
            (dnoise, dstrength)
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
    let storage = match device {
        Device::Cpu => Storage::Cpu(cpu::noise_inject(
            x.storage().cpu(),
            [n, c, h, w],
            noise.storage().cpu(),
            batched,
            strength.storage().cpu()[0],
        )),
        Device::Cuda(_) | Device::Sim => cuda::noise_inject(
            &x.storage(),
            [n, c, h, w],
            &noise.storage(),
            batched,
            &strength.storage(),
            device,
        )?,
    };
    Tensor::from_op_storage(
        storage,
        x.shape(),
        device,
        NoiseOp {
            dims: [n, c, h, w],
            batched,
        },
        vec![x.clone(), noise.clone(), strength.clone()],
    )
}
