//! Mixed precision in the layers: the official FP16 blocks (`use_fp16`,
//! `num_fp16_res`, training/networks.py).
//!
//! A block of the top `num_fp16_res` resolutions keeps its activations in
//! F16 between layers (official `x.to(dtype)`); the synthesis layers' fused
//! modulated convolution and the discriminator's convolutions (`conv2d`)
//! read it as stored, the other steps (FIR, bias_act, the unfused modulated
//! convolution) widen it (exact); each multiplies FP16 operands with FP32 accumulation
//! (the modulated convolution's tensor-core kernels at `Precision::F16`; the
//! plain convolutions on FP16-rounded weights, which is the same product),
//! runs its epilogue (bias, activation, gain, `conv_clamp`) on the FP32
//! accumulators and rounds the result to F16 once. The official layers also
//! round the raw convolution before the epilogue; the clamp (±256·gain)
//! keeps either within F16's range.
//!
//! Only devices that run kernels compute so: on the CPU the blocks stay
//! FP32, as the official code does off CUDA (`use_fp16 and device.type ==
//! 'cuda'`), and `Ctx::force_fp32` (official `force_fp32`) keeps them FP32
//! anywhere.

use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::ops::precision::Precision;
use crate::tensor::Tensor;

/// The dtype of a block's activations: F16 for an FP16 block (`use_fp16`)
/// on a device that runs kernels unless `force_fp32`, else F32.
pub fn block_dtype(use_fp16: bool, device: Device, force_fp32: bool) -> DType {
    if use_fp16 && device.runs_kernels() && !force_fp32 {
        DType::F16
    } else {
        DType::F32
    }
}

/// The operand precision of a layer whose activations are stored as
/// `dtype`: that format for 2-byte storage, else the caller's `requested`.
pub(crate) fn conv_precision(dtype: DType, requested: Precision) -> Precision {
    match dtype {
        DType::F16 => Precision::F16,
        DType::BF16 => Precision::BF16,
        DType::F32 => requested,
    }
}

/// The official FP16 safeguard of `modulated_conv2d` ("pre-normalize inputs
/// to avoid FP16 overflow", applied when `x` is FP16 and the layer
/// demodulates): `weight · (1/√(I·kh·kw)) / max|weight[o]|` per output
/// channel and `styles / max|styles[n]|` per sample. Demodulation cancels
/// both scales (up to its ε = 1e-8), so the layer computes the same function
/// with products that stay within F16's range. Differentiable (through the
/// maxima, as the official `norm(inf)`).
pub fn fp16_prenormalize(weight: &Tensor, styles: &Tensor) -> Result<(Tensor, Tensor)> {
    let d = weight.dims();
    let fan_in = (d[1] * d[2] * d[3]) as f32;
    let wmax = weight.abs()?.max(&[1, 2, 3], true)?;
    let w = weight.div(&wmax)?.scale(1.0 / fan_in.sqrt())?;
    let smax = styles.abs()?.max(&[1], true)?;
    let s = styles.div(&smax)?;
    Ok((w, s))
}

/// `a + b` of two activations stored as `dtype` (the official FP16 blocks'
/// `y.add_(x)`): computed in FP32 on their values and rounded once.
pub(crate) fn add_as(a: &Tensor, b: &Tensor, dtype: DType) -> Result<Tensor> {
    a.to_dtype(DType::F32)?
        .add(&b.to_dtype(DType::F32)?)?
        .to_dtype(dtype)
}

/// A weight as a layer of activations stored as `dtype` multiplies it:
/// `r(r(weight) · gain)` with `r` the rounding to `dtype` (official
/// `weight.to(x.dtype) * weight_gain` in that dtype), as F32 values; for
/// F32 just `weight · gain`. Differentiable (the rounding passes gradients
/// as the identity).
pub(crate) fn weight_as(weight: &Tensor, gain: f32, dtype: DType) -> Result<Tensor> {
    if dtype == DType::F32 {
        return weight.scale(gain);
    }
    weight
        .to_dtype(dtype)?
        .to_dtype(DType::F32)?
        .scale(gain)?
        .to_dtype(dtype)?
        .to_dtype(DType::F32)
}
