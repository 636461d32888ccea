//! Reductions: sum, mean and max over axes, and `sum_to`, the adjoint of
//! broadcasting.

use crate::autograd::Backward;
use crate::backend::cpu::reduce::{self as cpu, Reduce};
use crate::backend::cuda::elementwise as cuda;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::{Storage, Tensor};

/// `x` reduced over `axes` (checked) into the keep-dim shape, on its device.
fn reduce_storage(x: &Tensor, axes: &[usize], op: Reduce) -> Result<Storage> {
    let device = x.device();
    Ok(match device {
        Device::Cpu => Storage::Cpu(cpu::reduce(x.storage().cpu(), x.dims(), axes, op)),
        Device::Cuda(_) | Device::Sim => cuda::reduce(&x.storage(), x.dims(), axes, op, device)?,
    })
}

/// Sorted, unique, in-range axes, or an error naming the op.
pub(crate) fn check_axes(op: &'static str, shape: &Shape, axes: &[usize]) -> Result<Vec<usize>> {
    let mut a = axes.to_vec();
    a.sort_unstable();
    a.dedup();
    if let Some(&bad) = a.iter().find(|&&x| x >= shape.rank()) {
        return Err(Error::Invalid {
            op,
            msg: format!("axis {bad} out of range for shape {shape}"),
        });
    }
    Ok(a)
}

fn keepdim_shape(shape: &Shape, axes: &[usize]) -> Shape {
    Shape::new(
        shape
            .dims()
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
            .collect::<Vec<_>>(),
    )
}

fn squeezed_shape(shape: &Shape, axes: &[usize]) -> Shape {
    Shape::new(
        shape
            .dims()
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect::<Vec<_>>(),
    )
}

/// Max over axes (keep-dim result); the gradient is shared equally among
/// tied maxima, through a constant mask so the rule stays differentiable.
struct MaxOp(Vec<usize>);

impl Backward for MaxOp {
    fn name(&self) -> &'static str {
        "max"
    }
    fn backward(&self, inputs: &[Tensor], y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        let mask = x.detach().eq_mask(&y.detach())?;
        let count = mask.sum(&self.0, true)?;
        Ok(vec![Some(g.mul(&mask.div(&count)?)?)])
    }
}

struct SumOp;

impl Backward for SumOp {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.broadcast_to(inputs[0].shape())?)])
    }
}

/// Sum with the keep-dim shape (reduced axes of size 1).
fn sum_keepdim(x: &Tensor, axes: &[usize]) -> Result<Tensor> {
    let storage = reduce_storage(x, axes, Reduce::Sum)?;
    Tensor::from_op_storage(
        storage,
        keepdim_shape(x.shape(), axes),
        x.device(),
        SumOp,
        vec![x.clone()],
    )
}

impl Tensor {
    /// Sums over `axes`; `keepdim` keeps them with size 1.
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        let axes = check_axes("sum", self.shape(), axes)?;
        let s = sum_keepdim(self, &axes)?;
        if keepdim {
            Ok(s)
        } else {
            s.reshape(squeezed_shape(self.shape(), &axes))
        }
    }

    /// Mean over `axes`.
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        let axes = check_axes("mean", self.shape(), axes)?;
        let count: usize = axes.iter().map(|&a| self.dims()[a]).product();
        self.sum(&axes, keepdim)?.scale(1.0 / count.max(1) as f32)
    }

    /// Sum of all elements, as a rank-0 tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.sum(&axes, false)
    }

    /// Mean of all elements, as a rank-0 tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.mean(&axes, false)
    }

    /// Maximum over `axes`. The gradient is shared equally among tied maxima.
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        let axes = check_axes("max", self.shape(), axes)?;
        if axes.iter().any(|&a| self.dims()[a] == 0) {
            return Err(Error::Invalid {
                op: "max",
                msg: format!("max over an empty axis of shape {}", self.shape()),
            });
        }
        let m = reduce_storage(self, &axes, Reduce::Max)?;
        let m = Tensor::from_op_storage(
            m,
            keepdim_shape(self.shape(), &axes),
            self.device(),
            MaxOp(axes.clone()),
            vec![self.clone()],
        )?;
        if keepdim {
            Ok(m)
        } else {
            m.reshape(squeezed_shape(self.shape(), &axes))
        }
    }

    /// Sums broadcast axes away so the result has `shape`, which must
    /// broadcast to `self`'s shape (the adjoint of `broadcast_to`).
    pub fn sum_to(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        if !shape.broadcasts_to(self.shape()) {
            return Err(Error::Shape {
                op: "sum_to",
                msg: format!("{shape} does not broadcast to {}", self.shape()),
            });
        }
        let lead = self.rank() - shape.rank();
        let axes: Vec<usize> = (0..self.rank())
            .filter(|&i| i < lead || (shape.dim(i - lead) == 1 && self.dims()[i] != 1))
            .collect();
        sum_keepdim(self, &axes)?.reshape(shape.clone())
    }
}
