//! Fused bias + activation + gain + clamp (the official `bias_act`), and its
//! gradient op.
//!
//! As in the official `BiasActCuda` / `BiasActCudaGrad`: the backward of
//! `bias_act` is `bias_act_grad(dy, y)`, linear in `dy` with a mask that
//! depends on `y` only, so the derivative of the grad op w.r.t. `dy` is the
//! grad op again and w.r.t. `y` is zero (lrelu has no second-derivative
//! term). Gradients of any order work.

use crate::autograd::Backward;
use crate::backend::cpu::bias_act as cpu;
use crate::backend::cuda::bias_act as cuda;
use crate::device::Device;
use crate::error::{invalid, shape_err, Result};
use crate::tensor::{Storage, Tensor};

pub use crate::backend::cpu::bias_act::{Act, BiasAct};

struct BiasActOp {
    p: BiasAct,
    dim: usize,
    has_bias: bool,
}

impl Backward for BiasActOp {
    fn name(&self) -> &'static str {
        "bias_act"
    }

    fn backward(&self, inputs: &[Tensor], y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let dx = if self.p.is_identity() {
            g.clone()
        } else {
            bias_act_grad(g, y, &self.p)?
        };
        if !self.has_bias {
            return Ok(vec![Some(dx)]);
        }
        if !inputs[1].needs_grad() {
            return Ok(vec![Some(dx), None]);
        }
        let axes: Vec<usize> = (0..inputs[0].rank()).filter(|&a| a != self.dim).collect();
        let db = dx.sum(&axes, false)?;
        Ok(vec![Some(dx), Some(db)])
    }
}

struct BiasActGradOp {
    p: BiasAct,
    /// The forward output, detached: the mask is a constant.
    y: Tensor,
}

impl Backward for BiasActGradOp {
    fn name(&self) -> &'static str {
        "bias_act_grad"
    }

    fn backward(
        &self,
        _inputs: &[Tensor],
        _dx: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(bias_act_grad(g, &self.y, &self.p)?)])
    }
}

fn check_params(op: &'static str, p: &BiasAct) -> Result<()> {
    if !p.gain.is_finite() {
        return invalid(op, format!("gain {} is not finite", p.gain));
    }
    if let Act::Lrelu { alpha } = p.act {
        if !alpha.is_finite() {
            return invalid(op, format!("lrelu alpha {alpha} is not finite"));
        }
    }
    if let Some(c) = p.clamp {
        if c.is_nan() || c < 0.0 {
            return invalid(op, format!("clamp {c} must be >= 0 (None disables it)"));
        }
    }
    Ok(())
}

/// `y = clamp(act(x + b) · gain, −clamp, clamp)` with `b` (1-D, of length
/// `x.dims()[dim]`) broadcast along axis `dim` of `x`; `dim` is ignored
/// without a bias. Differentiable w.r.t. `x` and `b`.
pub fn bias_act(x: &Tensor, b: Option<&Tensor>, dim: usize, p: &BiasAct) -> Result<Tensor> {
    const OP: &str = "bias_act";
    check_params(OP, p)?;
    let device = match b {
        Some(b) => Tensor::same_device(OP, &[x, b])?,
        None => x.device(),
    };
    let mut step = 1;
    if let Some(b) = b {
        if b.rank() != 1 {
            return shape_err(OP, format!("the bias must be 1-D, got {}", b.shape()));
        }
        if dim >= x.rank() {
            return invalid(
                OP,
                format!("bias axis {dim} out of range for x of shape {}", x.shape()),
            );
        }
        if b.numel() != x.dims()[dim] {
            return shape_err(
                OP,
                format!(
                    "bias {} does not match axis {dim} of x {}",
                    b.shape(),
                    x.shape()
                ),
            );
        }
        step = x.dims()[dim + 1..].iter().product();
    }
    let b_store = b.map(|b| b.storage());
    let storage = match device {
        Device::Cpu => Storage::Cpu(cpu::bias_act(
            x.storage().cpu(),
            b_store.as_ref().map(|s| s.cpu()),
            step,
            p,
        )),
        Device::Cuda(_) | Device::Sim => cuda::bias_act(
            &x.storage(),
            x.numel(),
            b_store.as_deref().zip(b.map(|b| b.numel())),
            step,
            p,
            device,
        )?,
    };
    let mut inputs = vec![x.clone()];
    inputs.extend(b.cloned());
    Tensor::from_op_storage(
        storage,
        x.shape(),
        device,
        BiasActOp {
            p: *p,
            dim,
            has_bias: b.is_some(),
        },
        inputs,
    )
}

/// The gradient of `bias_act` w.r.t. `x` given the upstream gradient `dy` and
/// the forward output `y`: `dy · act'(y) · gain`, zero where `|y|` reached
/// the clamp. Differentiable w.r.t. `dy` (its derivative is itself); `y` is a
/// constant mask.
pub fn bias_act_grad(dy: &Tensor, y: &Tensor, p: &BiasAct) -> Result<Tensor> {
    const OP: &str = "bias_act_grad";
    check_params(OP, p)?;
    let device = Tensor::same_device(OP, &[dy, y])?;
    if dy.shape() != y.shape() {
        return shape_err(OP, format!("dy {} and y {} differ", dy.shape(), y.shape()));
    }
    let storage = match device {
        Device::Cpu => Storage::Cpu(cpu::bias_act_grad(dy.storage().cpu(), y.storage().cpu(), p)),
        Device::Cuda(_) | Device::Sim => {
            cuda::bias_act_grad(&dy.storage(), &y.storage(), dy.numel(), p, device)?
        }
    };
    Tensor::from_op_storage(
        storage,
        dy.shape(),
        device,
        BiasActGradOp {
            p: *p,
            y: y.detach(),
        },
        vec![dy.clone()],
    )
}
