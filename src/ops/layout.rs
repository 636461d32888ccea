//! Shape and layout ops: reshape, permute, broadcast, narrow, pad, concat,
//! flip. Each backward is another op of this file (or `sum_to`).

use crate::autograd::Backward;
use crate::backend::cpu::layout as cpu;
use crate::backend::cuda::elementwise as kernels;
use crate::device::Device;
use crate::error::{shape_err, Error, Result};
use crate::shape::Shape;
use crate::tensor::{Storage, Tensor};

struct ReshapeOp;

impl Backward for ReshapeOp {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.reshape(inputs[0].shape().clone())?)])
    }
}

struct PermuteOp(Vec<usize>);

impl Backward for PermuteOp {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn backward(&self, _inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut inv = vec![0; self.0.len()];
        for (i, &p) in self.0.iter().enumerate() {
            inv[p] = i;
        }
        Ok(vec![Some(g.permute(&inv)?)])
    }
}

struct BroadcastOp;

impl Backward for BroadcastOp {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.sum_to(inputs[0].shape())?)])
    }
}

struct NarrowOp {
    axis: usize,
    start: usize,
}

impl Backward for NarrowOp {
    fn name(&self) -> &'static str {
        "narrow"
    }
    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let full = inputs[0].dims()[self.axis];
        let after = full - self.start - g.dims()[self.axis];
        Ok(vec![Some(g.pad_zeros(self.axis, self.start, after)?)])
    }
}

struct ConcatOp(usize);

impl Backward for ConcatOp {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut start = 0;
        let mut out = Vec::with_capacity(inputs.len());
        for t in inputs {
            let len = t.dims()[self.0];
            out.push(Some(g.narrow(self.0, start, len)?));
            start += len;
        }
        Ok(out)
    }
}

struct FlipOp(Vec<usize>);

impl Backward for FlipOp {
    fn name(&self) -> &'static str {
        "flip"
    }
    fn backward(&self, _inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.flip(&self.0)?)])
    }
}

fn check_axis(op: &'static str, t: &Tensor, axis: usize) -> Result<()> {
    if axis >= t.rank() {
        return Err(Error::Invalid {
            op,
            msg: format!("axis {axis} out of range for shape {}", t.shape()),
        });
    }
    Ok(())
}

/// Gathers `t` into `out_dims` with strides over its buffer (see `cpu::strided_gather`).
fn gather(t: &Tensor, out_dims: &[usize], strides: &[isize], offset: isize) -> Result<Storage> {
    let device = t.device();
    Ok(match device {
        Device::Cpu => Storage::Cpu(cpu::strided_gather(
            t.storage().cpu(),
            out_dims,
            strides,
            offset,
        )),
        Device::Cuda(_) | Device::Sim => {
            kernels::strided_gather(&t.storage(), t.numel(), out_dims, strides, offset, device)?
        }
    })
}

struct ToDeviceOp(Device);

impl Backward for ToDeviceOp {
    fn name(&self) -> &'static str {
        "to_device"
    }
    fn backward(&self, _inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.to_device(self.0)?)])
    }
}

impl Tensor {
    /// Same data, new shape with the same number of elements.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return shape_err(
                "reshape",
                format!("{} to {shape}: element counts differ", self.shape()),
            );
        }
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        // Same row-major data: the buffer is shared.
        Tensor::from_op_shared(
            self.storage(),
            shape,
            self.device(),
            ReshapeOp,
            vec![self.clone()],
        )
    }

    /// Reorders axes: output axis i is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::Invalid {
                op: "permute",
                msg: format!(
                    "{perm:?} is not a permutation of the axes of {}",
                    self.shape()
                ),
            });
        }
        let st = self.shape().strides();
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims()[p]).collect();
        let strides: Vec<isize> = perm.iter().map(|&p| st[p] as isize).collect();
        let data = gather(self, &dims, &strides, 0)?;
        Tensor::from_op_storage(
            data,
            dims,
            self.device(),
            PermuteOp(perm.to_vec()),
            vec![self.clone()],
        )
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        check_axis("transpose", self, a.max(b))?;
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Repeats size-1 (or missing leading) axes up to `shape`.
    pub fn broadcast_to(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        if !self.shape().broadcasts_to(shape) {
            return shape_err(
                "broadcast_to",
                format!("{} does not broadcast to {shape}", self.shape()),
            );
        }
        let strides: Vec<isize> = self
            .shape()
            .broadcast_strides(shape)
            .into_iter()
            .map(|s| s as isize)
            .collect();
        let data = gather(self, shape.dims(), &strides, 0)?;
        Tensor::from_op_storage(
            data,
            shape.clone(),
            self.device(),
            BroadcastOp,
            vec![self.clone()],
        )
    }

    /// The slice `start..start + len` along `axis`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        check_axis("narrow", self, axis)?;
        if start + len > self.dims()[axis] {
            return shape_err(
                "narrow",
                format!(
                    "{start}..{} exceeds axis {axis} of {}",
                    start + len,
                    self.shape()
                ),
            );
        }
        let st = self.shape().strides();
        let mut dims = self.dims().to_vec();
        dims[axis] = len;
        let strides: Vec<isize> = st.iter().map(|&s| s as isize).collect();
        let data = gather(self, &dims, &strides, (start * st[axis]) as isize)?;
        Tensor::from_op_storage(
            data,
            dims,
            self.device(),
            NarrowOp { axis, start },
            vec![self.clone()],
        )
    }

    /// Zeros before and after along `axis` (the adjoint of `narrow`).
    pub fn pad_zeros(&self, axis: usize, before: usize, after: usize) -> Result<Tensor> {
        check_axis("pad_zeros", self, axis)?;
        let mut parts = Vec::with_capacity(3);
        let side = |n: usize| {
            let mut d = self.dims().to_vec();
            d[axis] = n;
            Tensor::zeros(d, self.device())
        };
        if before > 0 {
            parts.push(side(before));
        }
        parts.push(self.clone());
        if after > 0 {
            parts.push(side(after));
        }
        Tensor::concat(&parts, axis)
    }

    /// Joins tensors along `axis`; all other axes must agree.
    pub fn concat(parts: &[Tensor], axis: usize) -> Result<Tensor> {
        let Some(first) = parts.first() else {
            return Err(Error::Invalid {
                op: "concat",
                msg: "no tensors to concatenate".into(),
            });
        };
        check_axis("concat", first, axis)?;
        let device = Tensor::same_device("concat", &parts.iter().collect::<Vec<_>>())?;
        for p in parts {
            let ok = p.rank() == first.rank()
                && p.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            if !ok {
                return shape_err(
                    "concat",
                    format!("{} and {} differ off axis {axis}", first.shape(), p.shape()),
                );
            }
        }
        if parts.len() == 1 {
            return Ok(first.clone());
        }
        let outer: usize = first.dims()[..axis].iter().product();
        let inners: Vec<usize> = parts
            .iter()
            .map(|p| p.dims()[axis..].iter().product())
            .collect();
        let stores: Vec<_> = parts.iter().map(|p| p.storage()).collect();
        let data = match device {
            Device::Cpu => {
                let slices: Vec<&[f32]> = stores.iter().map(|s| s.cpu()).collect();
                Storage::Cpu(cpu::concat(&slices, outer, &inners))
            }
            Device::Cuda(_) | Device::Sim => {
                let refs: Vec<&Storage> = stores.iter().map(|s| s.as_ref()).collect();
                kernels::concat(&refs, outer, &inners, device)?
            }
        };
        let mut dims = first.dims().to_vec();
        dims[axis] = parts.iter().map(|p| p.dims()[axis]).sum();
        Tensor::from_op_storage(data, dims, device, ConcatOp(axis), parts.to_vec())
    }

    /// Reverses the order of elements along each of `axes`.
    pub fn flip(&self, axes: &[usize]) -> Result<Tensor> {
        let axes = crate::ops::reduce::check_axes("flip", self.shape(), axes)?;
        let st = self.shape().strides();
        let mut offset = 0isize;
        let strides: Vec<isize> = (0..self.rank())
            .map(|i| {
                if axes.contains(&i) && self.dims()[i] > 0 {
                    offset += ((self.dims()[i] - 1) * st[i]) as isize;
                    -(st[i] as isize)
                } else {
                    st[i] as isize
                }
            })
            .collect();
        let data = gather(self, self.dims(), &strides, offset)?;
        Tensor::from_op_storage(
            data,
            self.shape().clone(),
            self.device(),
            FlipOp(axes),
            vec![self.clone()],
        )
    }

    /// The same values on `device` (a copy through the host between
    /// different devices). Differentiable: the gradient moves back.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let data = self.storage().to_host_vec()?;
        let storage = Storage::try_from_host(data, device)?;
        Tensor::from_op_storage(
            storage,
            self.shape().clone(),
            device,
            ToDeviceOp(self.device()),
            vec![self.clone()],
        )
    }

    /// Inserts an axis of size 1 at `axis` (0..=rank).
    pub fn unsqueeze(&self, axis: usize) -> Result<Tensor> {
        if axis > self.rank() {
            return Err(Error::Invalid {
                op: "unsqueeze",
                msg: format!("axis {axis} for shape {}", self.shape()),
            });
        }
        let mut d = self.dims().to_vec();
        d.insert(axis, 1);
        self.reshape(d)
    }
}
