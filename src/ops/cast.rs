//! The cast between FP32 and 2-byte storage (`Tensor::to_dtype`): how the
//! FP16 blocks of mixed precision keep their activations in half precision,
//! as the official code's `x.to(dtype)`.

use crate::autograd::Backward;
use crate::backend::cuda::elementwise as cuda;
use crate::device::Device;
use crate::dtype::{self, DType};
use crate::error::Result;
use crate::tensor::{HalfData, HalfStorage, Storage, Tensor};

/// Records the cast; the gradient is cast back to the input's dtype
/// (rounding is treated as the identity, as torch's `.to()`), so a cast is
/// differentiable to any order.
struct CastOp;

impl Backward for CastOp {
    fn name(&self) -> &'static str {
        "to_dtype"
    }

    fn supports(&self, _dtype: DType) -> bool {
        true
    }

    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.to_dtype(inputs[0].dtype())?)])
    }
}

/// Storage of `x` as `to`: F32 → 2-byte rounds to nearest even, 2-byte →
/// F32 widens exactly, between 2-byte types through F32.
fn cast_storage(x: &Tensor, to: DType) -> Result<Storage> {
    let (device, n, src) = (x.device(), x.numel(), x.storage());
    let from = src.dtype();
    match (device, from, to) {
        (Device::Cpu, _, DType::F32) => Ok(Storage::Cpu(src.to_host_vec()?)),
        (Device::Cpu, _, _) => {
            let bits = dtype::encode(src.host()?, to);
            Ok(Storage::Half(HalfStorage::new(to, HalfData::Host(bits))))
        }
        (_, DType::F32, _) => cuda::cast_to_half(&src, n, to, device),
        (_, _, DType::F32) => match &*src {
            Storage::Half(h) => cuda::cast_from_half(h, n, device),
            _ => Err(crate::Error::Internal(format!(
                "to_dtype: {from} tensor without 2-byte storage"
            ))),
        },
        (_, _, _) => {
            let wide = Tensor::from_device_storage(cast_storage(x, DType::F32)?, x.shape(), device);
            cast_storage(&wide, to)
        }
    }
}

impl Tensor {
    /// This tensor's values as `dtype` (same shape and device): F32 → F16 or
    /// BF16 rounds to nearest, ties to even (F16 overflows to ±inf beyond
    /// ±65504; official FP16 layers clamp with `conv_clamp` before); back to
    /// F32 is exact. The same dtype returns the tensor itself. Differentiable
    /// (the gradient is cast back to this tensor's dtype).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if self.dtype() == dtype {
            return Ok(self.clone());
        }
        let storage = cast_storage(self, dtype)?;
        Tensor::from_op_storage(
            storage,
            self.shape().clone(),
            self.device(),
            CastOp,
            vec![self.clone()],
        )
    }
}
