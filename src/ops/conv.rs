//! 2-D convolution (NCHW, PyTorch `F.conv2d` semantics: cross-correlation,
//! zero padding, grouped) and its two gradients as ops of their own.
//!
//! The three ops differentiate into each other, which closes the set under
//! differentiation (R1 regularization differentiates the discriminator's
//! input gradient once more):
//!
//! | op | d/d(first input) | d/d(second input) |
//! | --- | --- | --- |
//! | `y = conv2d(x, w)` | `conv2d_input_grad(gy, w)` | `conv2d_weight_grad(x, gy)` |
//! | `z = conv2d_input_grad(g, w)` | `conv2d(gz, w)` | `conv2d_weight_grad(gz, g)` |
//! | `z = conv2d_weight_grad(x, g)` | `conv2d_input_grad(g, gz)` | `conv2d(x, gz)` |

use crate::autograd::Backward;
use crate::backend::cpu::conv::{self as cpu, ConvGeom};
use crate::backend::cuda::conv as cuda;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{invalid, shape_err, Result};
use crate::ops::precision::Precision;
use crate::tensor::{Storage, Tensor};

/// Parameters of a 2-D convolution; `stride` and `padding` are `[y, x]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub stride: [usize; 2],
    /// Zeros added on both sides of each spatial axis.
    pub padding: [usize; 2],
    pub groups: usize,
    /// Operand precision of the products (FP32 accumulation always), for the
    /// op and both its gradients. Non-FP32 runs the tensor-core kernels
    /// (kernels/conv_tc.cu) on `Device::Sim` always and on `Device::Cuda`
    /// from compute capability 8.0 where a GEMM fills the 64-row tiles (at
    /// least 32 rows and a reduction of 16 per group); elsewhere, and on the
    /// CPU (the reference), the product is FP32. See [`Precision`].
    pub precision: Precision,
}

impl Default for Conv2d {
    fn default() -> Self {
        Conv2d {
            stride: [1, 1],
            padding: [0, 0],
            groups: 1,
            precision: Precision::F32,
        }
    }
}

impl Conv2d {
    /// Checks the parameters themselves (not the shapes).
    fn check(&self, op: &'static str) -> Result<()> {
        if self.stride.contains(&0) {
            return invalid(op, format!("stride {:?} must be at least 1", self.stride));
        }
        if self.groups == 0 {
            return invalid(op, "groups must be at least 1");
        }
        Ok(())
    }

    /// Output size along one spatial axis, or an error when the kernel does
    /// not fit the padded input (an empty output).
    fn out_len(&self, op: &'static str, axis: usize, input: usize, k: usize) -> Result<usize> {
        let name = ["height", "width"][axis];
        let padded = self.padding[axis]
            .checked_mul(2)
            .and_then(|p| p.checked_add(input));
        match padded {
            Some(padded) if padded >= k => Ok((padded - k) / self.stride[axis] + 1),
            _ => shape_err(
                op,
                format!(
                    "kernel {name} {k} exceeds the padded input {name} {input} + 2 × {}: the output would be empty",
                    self.padding[axis]
                ),
            ),
        }
    }
}

fn rank4(op: &'static str, what: &str, layout: &str, t: &Tensor) -> Result<[usize; 4]> {
    match *t.dims() {
        [a, b, c, d] => Ok([a, b, c, d]),
        _ => shape_err(
            op,
            format!("{what} must be 4-D {layout}, got {}", t.shape()),
        ),
    }
}

/// Validates everything but the output-side tensor and returns the geometry.
/// `x_dims` are the input-side sizes `[N, C, H, W]` and `x_desc` names them
/// (`input [..]` or `input size [..]`); `w_desc` names the weight.
fn geometry(
    op: &'static str,
    p: &Conv2d,
    x_dims: [usize; 4],
    x_desc: &str,
    w_dims: [usize; 4],
    w_desc: &str,
) -> Result<ConvGeom> {
    p.check(op)?;
    let [n, c, h, w] = x_dims;
    let hw = [h, w];
    let [o, cg, kh, kw] = w_dims;
    if kh == 0 || kw == 0 {
        return shape_err(op, format!("weight {w_desc} has an empty kernel"));
    }
    if hw.contains(&0) {
        return shape_err(op, format!("{x_desc} has an empty spatial size {hw:?}"));
    }
    let g = p.groups;
    if c % g != 0 {
        return shape_err(
            op,
            format!("groups {g} do not divide the {c} input channels of {x_desc}"),
        );
    }
    if o % g != 0 {
        return shape_err(
            op,
            format!("groups {g} do not divide the {o} output channels of weight {w_desc}"),
        );
    }
    if cg.checked_mul(g) != Some(c) {
        return shape_err(
            op,
            format!("{x_desc} has {c} channels, weight {w_desc} expects {cg} × groups {g}"),
        );
    }
    let oh = p.out_len(op, 0, hw[0], kh)?;
    let ow = p.out_len(op, 1, hw[1], kw)?;
    let sizes = [[n, c, hw[0], hw[1]], [n, o, oh, ow], [o, cg, kh, kw]];
    let fits = |d: &[usize; 4]| {
        d.iter()
            .try_fold(1usize, |a, &b| a.checked_mul(b))
            .is_some()
    };
    if !sizes.iter().all(fits)
        || cg
            .checked_mul(kh * kw)
            .and_then(|k| k.checked_mul(oh * ow))
            .is_none()
    {
        return invalid(op, format!("{x_desc} with weight {w_desc}: sizes overflow"));
    }
    Ok(ConvGeom {
        n,
        c,
        h: hw[0],
        w: hw[1],
        o,
        kh,
        kw,
        stride: p.stride,
        padding: p.padding,
        groups: g,
        oh,
        ow,
    })
}

/// Checks that the output-side tensor `gy` is `[n, o, oh, ow]` of `geom`.
fn check_out(op: &'static str, gy: &Tensor, what: &str, g: &ConvGeom, ctx: &str) -> Result<()> {
    let want = [g.n, g.o, g.oh, g.ow];
    if gy.dims() != want {
        return shape_err(
            op,
            format!(
                "{what} {} does not match the convolution output {want:?} of {ctx}",
                gy.shape()
            ),
        );
    }
    Ok(())
}

/// Whether `x` may be stored as F16: the activations of an FP16 block,
/// which `conv2d` and `conv2d_weight_grad` read as stored (the tensor-core
/// forward's `_xh` kernel) or widened into a temporary (every other kernel);
/// the graph keeps only the F16 tensor. Their other operands are F32.
fn check_input_dtypes(op: &'static str, x: &Tensor, other: &Tensor, what: &str) -> Result<()> {
    if !matches!(x.dtype(), DType::F32 | DType::F16) {
        return invalid(op, format!("input x is {}: f32 or f16 expected", x.dtype()));
    }
    if other.dtype() != DType::F32 {
        return invalid(
            op,
            format!(
                "{what} must be f32, got {}: cast it with to_dtype(DType::F32) first",
                other.dtype()
            ),
        );
    }
    Ok(())
}

/// F32 and F16 (`check_input_dtypes` admits F16 for x only).
fn f32_or_f16(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16)
}

struct Conv2dOp(Conv2d);

impl Backward for Conv2dOp {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn supports(&self, dtype: DType) -> bool {
        f32_or_f16(dtype)
    }
    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        // The gradient of an F16 x is F16, as x itself (rounded once).
        let dx = if x.needs_grad() {
            Some(conv2d_input_grad(g, w, [x.dims()[2], x.dims()[3]], self.0)?.to_dtype(x.dtype())?)
        } else {
            None
        };
        let dw = if w.needs_grad() {
            Some(conv2d_weight_grad(
                x,
                g,
                [w.dims()[2], w.dims()[3]],
                self.0,
            )?)
        } else {
            None
        };
        Ok(vec![dx, dw])
    }
}

struct InputGradOp(Conv2d);

impl Backward for InputGradOp {
    fn name(&self) -> &'static str {
        "conv2d_input_grad"
    }
    fn backward(&self, inputs: &[Tensor], _z: &Tensor, gz: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (g, w) = (&inputs[0], &inputs[1]);
        let dg = if g.needs_grad() {
            Some(conv2d(gz, w, self.0)?)
        } else {
            None
        };
        let dw = if w.needs_grad() {
            Some(conv2d_weight_grad(
                gz,
                g,
                [w.dims()[2], w.dims()[3]],
                self.0,
            )?)
        } else {
            None
        };
        Ok(vec![dg, dw])
    }
}

struct WeightGradOp(Conv2d);

impl Backward for WeightGradOp {
    fn name(&self) -> &'static str {
        "conv2d_weight_grad"
    }
    fn supports(&self, dtype: DType) -> bool {
        f32_or_f16(dtype)
    }
    fn backward(&self, inputs: &[Tensor], _z: &Tensor, gz: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (x, g) = (&inputs[0], &inputs[1]);
        let dx = if x.needs_grad() {
            Some(
                conv2d_input_grad(g, gz, [x.dims()[2], x.dims()[3]], self.0)?
                    .to_dtype(x.dtype())?,
            )
        } else {
            None
        };
        let dg = if g.needs_grad() {
            Some(conv2d(x, gz, self.0)?)
        } else {
            None
        };
        Ok(vec![dx, dg])
    }
}

/// 2-D convolution: `x` `[N, C, H, W]`, `w` `[O, C/groups, kh, kw]`,
/// result `[N, O, OH, OW]` with `OH = (H + 2·pad_y − kh) / stride_y + 1`
/// (and likewise for the width). Cross-correlation, as PyTorch's `F.conv2d`.
/// `x` may be F16 (an FP16 block's activations, read as stored where the
/// kernel can: see `check_input_dtypes`), `w` is F32; the result is F32.
pub fn conv2d(x: &Tensor, w: &Tensor, p: Conv2d) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let device = Tensor::same_device(OP, &[x, w])?;
    check_input_dtypes(OP, x, w, "weight")?;
    if device == Device::Cpu && x.dtype() != DType::F32 {
        // The CPU reference computes on F32 values.
        return conv2d(&x.to_dtype(DType::F32)?, w, p);
    }
    let [n, c, h, wd] = rank4(OP, "input", "[N, C, H, W]", x)?;
    let wdims = rank4(OP, "weight", "[O, C/groups, kh, kw]", w)?;
    let xs = format!("input {}", x.shape());
    let g = geometry(OP, &p, [n, c, h, wd], &xs, wdims, &w.shape().to_string())?;
    let data = match device {
        Device::Cpu => Storage::Cpu(cpu::conv2d(x.storage().cpu(), w.storage().cpu(), &g)),
        Device::Cuda(_) | Device::Sim => {
            cuda::conv2d(&x.storage(), &w.storage(), &g, p.precision, device)?
        }
    };
    Tensor::from_op_storage(
        data,
        vec![g.n, g.o, g.oh, g.ow],
        device,
        Conv2dOp(p),
        vec![x.clone(), w.clone()],
    )
}

/// The gradient of `conv2d` w.r.t. its input (a transposed convolution):
/// `gy` `[N, O, OH, OW]`, `w` `[O, C/groups, kh, kw]`, result
/// `[N, C, H, W]` with `[H, W] = input_hw`, which resolves the ambiguity of
/// strides (several input sizes give one output size).
pub fn conv2d_input_grad(
    gy: &Tensor,
    w: &Tensor,
    input_hw: [usize; 2],
    p: Conv2d,
) -> Result<Tensor> {
    const OP: &str = "conv2d_input_grad";
    let device = Tensor::same_device(OP, &[gy, w])?;
    let [n, ..] = rank4(OP, "output gradient", "[N, O, OH, OW]", gy)?;
    let wdims = rank4(OP, "weight", "[O, C/groups, kh, kw]", w)?;
    p.check(OP)?;
    let c = wdims[1].saturating_mul(p.groups);
    let xs = format!("input size {:?}", [n, c, input_hw[0], input_hw[1]]);
    let ws = w.shape().to_string();
    let g = geometry(OP, &p, [n, c, input_hw[0], input_hw[1]], &xs, wdims, &ws)?;
    check_out(
        OP,
        gy,
        "output gradient",
        &g,
        &format!("{xs} and weight {ws}"),
    )?;
    let data = match device {
        Device::Cpu => Storage::Cpu(cpu::conv2d_input_grad(
            gy.storage().cpu(),
            w.storage().cpu(),
            &g,
        )),
        Device::Cuda(_) | Device::Sim => {
            cuda::conv2d_input_grad(&gy.storage(), &w.storage(), &g, p.precision, device)?
        }
    };
    Tensor::from_op_storage(
        data,
        vec![g.n, g.c, g.h, g.w],
        device,
        InputGradOp(p),
        vec![gy.clone(), w.clone()],
    )
}

/// The gradient of `conv2d` w.r.t. its weight: `x` `[N, C, H, W]`, `gy`
/// `[N, O, OH, OW]`, result `[O, C/groups, kh, kw]` with `[kh, kw] = kernel_hw`.
/// `x` may be F16 as in [`conv2d`] (widened into a temporary); `gy` is F32.
pub fn conv2d_weight_grad(
    x: &Tensor,
    gy: &Tensor,
    kernel_hw: [usize; 2],
    p: Conv2d,
) -> Result<Tensor> {
    const OP: &str = "conv2d_weight_grad";
    let device = Tensor::same_device(OP, &[x, gy])?;
    check_input_dtypes(OP, x, gy, "output gradient")?;
    if device == Device::Cpu && x.dtype() != DType::F32 {
        return conv2d_weight_grad(&x.to_dtype(DType::F32)?, gy, kernel_hw, p);
    }
    let [n, c, h, wd] = rank4(OP, "input", "[N, C, H, W]", x)?;
    let [_, o, ..] = rank4(OP, "output gradient", "[N, O, OH, OW]", gy)?;
    p.check(OP)?;
    if c % p.groups != 0 {
        return shape_err(
            OP,
            format!(
                "groups {} do not divide the {c} input channels of input {}",
                p.groups,
                x.shape()
            ),
        );
    }
    let wdims = [o, c / p.groups, kernel_hw[0], kernel_hw[1]];
    let xs = format!("input {}", x.shape());
    let ws = format!("{wdims:?}");
    let g = geometry(OP, &p, [n, c, h, wd], &xs, wdims, &ws)?;
    check_out(
        OP,
        gy,
        "output gradient",
        &g,
        &format!("{xs} and weight {ws}"),
    )?;
    let data = match device {
        Device::Cpu => Storage::Cpu(cpu::conv2d_weight_grad(
            x.storage().cpu(),
            gy.storage().cpu(),
            &g,
        )),
        Device::Cuda(_) | Device::Sim => {
            cuda::conv2d_weight_grad(&x.storage(), &gy.storage(), &g, p.precision, device)?
        }
    };
    Tensor::from_op_storage(
        data,
        wdims.to_vec(),
        device,
        WeightGradOp(p),
        vec![x.clone(), gy.clone()],
    )
}
