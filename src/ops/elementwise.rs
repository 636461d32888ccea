//! Elementwise ops: unary maps, broadcasting binary arithmetic, masks.

use crate::autograd::Backward;
use crate::backend::cpu::elementwise::{self as cpu, Binary, Unary};
use crate::backend::cuda::elementwise as cuda;
use crate::device::Device;
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::{Storage, Tensor};

struct UnaryOp(Unary);

impl Backward for UnaryOp {
    fn name(&self) -> &'static str {
        match self.0 {
            Unary::Neg => "neg",
            Unary::Square => "square",
            Unary::Sqrt => "sqrt",
            Unary::Rsqrt => "rsqrt",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Softplus => "softplus",
            Unary::Sigmoid => "sigmoid",
            Unary::Abs => "abs",
            Unary::Sign => "sign",
            Unary::Affine { .. } => "affine",
            Unary::Clamp { .. } => "clamp",
            Unary::InRange { .. } => "in_range",
        }
    }

    fn backward(&self, inputs: &[Tensor], y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        let dx = match self.0 {
            Unary::Neg => g.neg()?,
            Unary::Square => g.mul(x)?.scale(2.0)?,
            Unary::Sqrt => g.div(y)?.scale(0.5)?,
            Unary::Rsqrt => g.mul(&y.square()?.mul(y)?)?.scale(-0.5)?,
            Unary::Exp => g.mul(y)?,
            Unary::Log => g.div(x)?,
            Unary::Softplus => g.mul(&x.sigmoid()?)?,
            Unary::Sigmoid => g.mul(&y.mul(&y.affine(-1.0, 1.0)?)?)?,
            Unary::Abs => g.mul(&map(x, Unary::Sign, false)?)?,
            Unary::Affine { mul, .. } => g.scale(mul)?,
            Unary::Clamp { lo, hi } => g.mul(&map(x, Unary::InRange { lo, hi }, false)?)?,
            // Piecewise constant: zero gradient almost everywhere.
            Unary::Sign | Unary::InRange { .. } => return Ok(vec![None]),
        };
        Ok(vec![Some(dx)])
    }
}

/// Applies `op`; `differentiable` false makes a constant (a mask) that records no graph.
fn map(x: &Tensor, op: Unary, differentiable: bool) -> Result<Tensor> {
    let device = x.device();
    let storage = match device {
        Device::Cpu => Storage::Cpu(cpu::unary(x.storage().cpu(), op)),
        Device::Cuda(_) | Device::Sim => cuda::unary(&x.storage(), x.numel(), device, op)?,
    };
    Ok(if differentiable {
        Tensor::from_op_storage(storage, x.shape(), device, UnaryOp(op), vec![x.clone()])?
    } else {
        Tensor::from_device_storage(storage, x.shape(), device)
    })
}

/// `a op b` broadcast to `out`, on the tensors' device.
fn binary_storage(
    a: &Tensor,
    b: &Tensor,
    out: &Shape,
    device: Device,
    op: Binary,
) -> Result<Storage> {
    let (sa, sb) = (a.storage(), b.storage());
    Ok(match device {
        Device::Cpu => Storage::Cpu(cpu::binary(
            sa.cpu(),
            a.shape(),
            sb.cpu(),
            b.shape(),
            out,
            op,
        )),
        Device::Cuda(_) | Device::Sim => {
            cuda::binary(&sa, a.shape(), &sb, b.shape(), out, device, op)?
        }
    })
}

struct BinaryOp(Binary);

impl Backward for BinaryOp {
    fn name(&self) -> &'static str {
        match self.0 {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
            Binary::Maximum => "maximum",
            Binary::Minimum => "minimum",
            _ => "compare",
        }
    }

    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let (ga, gb) = match self.0 {
            Binary::Add => (g.clone(), g.clone()),
            Binary::Sub => (g.clone(), g.neg()?),
            Binary::Mul => (g.mul(b)?, g.mul(a)?),
            Binary::Div => (g.div(b)?, g.mul(a)?.div(&b.square()?)?.neg()?),
            // The gradient goes to the selected operand (to `a` on ties).
            Binary::Maximum | Binary::Minimum => {
                let cmp = if self.0 == Binary::Maximum {
                    Binary::Ge
                } else {
                    Binary::Le
                };
                let pick_a = compare(a, b, cmp)?;
                let pick_b = pick_a.affine(-1.0, 1.0)?;
                (g.mul(&pick_a)?, g.mul(&pick_b)?)
            }
            _ => return Ok(vec![None, None]),
        };
        Ok(vec![
            Some(ga.sum_to(a.shape())?),
            Some(gb.sum_to(b.shape())?),
        ])
    }
}

fn binary(a: &Tensor, b: &Tensor, op: Binary, name: &'static str) -> Result<Tensor> {
    let device = Tensor::same_device(name, &[a, b])?;
    let out = a.shape().broadcast(b.shape(), name)?;
    let storage = binary_storage(a, b, &out, device, op)?;
    Tensor::from_op_storage(
        storage,
        out,
        device,
        BinaryOp(op),
        vec![a.clone(), b.clone()],
    )
}

fn compare(a: &Tensor, b: &Tensor, op: Binary) -> Result<Tensor> {
    let device = Tensor::same_device("compare", &[a, b])?;
    let out = a.shape().broadcast(b.shape(), "compare")?;
    let storage = binary_storage(a, b, &out, device, op)?;
    Ok(Tensor::from_device_storage(storage, out, device))
}

impl Tensor {
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        binary(self, rhs, Binary::Add, "add")
    }
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        binary(self, rhs, Binary::Sub, "sub")
    }
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        binary(self, rhs, Binary::Mul, "mul")
    }
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        binary(self, rhs, Binary::Div, "div")
    }
    /// Elementwise maximum; the gradient goes to the larger operand.
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        binary(self, rhs, Binary::Maximum, "maximum")
    }
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        binary(self, rhs, Binary::Minimum, "minimum")
    }

    /// Mask (1.0 / 0.0) of `self > rhs`, broadcast; not differentiable.
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        compare(self, rhs, Binary::Gt)
    }
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        compare(self, rhs, Binary::Ge)
    }
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        compare(self, rhs, Binary::Lt)
    }
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        compare(self, rhs, Binary::Le)
    }
    pub fn eq_mask(&self, rhs: &Tensor) -> Result<Tensor> {
        compare(self, rhs, Binary::Eq)
    }

    pub fn neg(&self) -> Result<Tensor> {
        map(self, Unary::Neg, true)
    }
    pub fn square(&self) -> Result<Tensor> {
        map(self, Unary::Square, true)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        map(self, Unary::Sqrt, true)
    }
    pub fn rsqrt(&self) -> Result<Tensor> {
        map(self, Unary::Rsqrt, true)
    }
    pub fn exp(&self) -> Result<Tensor> {
        map(self, Unary::Exp, true)
    }
    pub fn log(&self) -> Result<Tensor> {
        map(self, Unary::Log, true)
    }
    /// `log(1 + e^x)`, stable for large |x|.
    pub fn softplus(&self) -> Result<Tensor> {
        map(self, Unary::Softplus, true)
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        map(self, Unary::Sigmoid, true)
    }
    pub fn abs(&self) -> Result<Tensor> {
        map(self, Unary::Abs, true)
    }
    /// -1, 0 or 1 per element; not differentiable.
    pub fn sign(&self) -> Result<Tensor> {
        map(self, Unary::Sign, false)
    }
    /// `self * mul + add` with scalar constants.
    pub fn affine(&self, mul: f32, add: f32) -> Result<Tensor> {
        map(self, Unary::Affine { mul, add }, true)
    }
    pub fn scale(&self, s: f32) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(1.0, s)
    }
    /// Clamps to `[lo, hi]`; the gradient passes where `lo <= x <= hi`.
    pub fn clamp(&self, lo: f32, hi: f32) -> Result<Tensor> {
        if lo > hi || lo.is_nan() || hi.is_nan() {
            return crate::error::invalid("clamp", format!("empty range [{lo}, {hi}]"));
        }
        map(self, Unary::Clamp { lo, hi }, true)
    }
    /// `self + (end - self) * t`, with `t` broadcast.
    pub fn lerp(&self, end: &Tensor, t: &Tensor) -> Result<Tensor> {
        self.add(&end.sub(self)?.mul(t)?)
    }
    /// `self + (end - self) * t` with a scalar weight.
    pub fn lerp_scalar(&self, end: &Tensor, t: f32) -> Result<Tensor> {
        self.add(&end.sub(self)?.scale(t)?)
    }
}
