//! Element types of a tensor's storage and the host conversions between them.
//!
//! `F32` is what every op computes in. `F16` and `BF16` are storage types
//! for the activations of the FP16 blocks of mixed precision (official
//! `num_fp16_res`): 2 bytes an element, read and written by the cast op
//! (`Tensor::to_dtype`) and by the ops that declare them (see
//! `autograd::Backward::supports`). Conversions round to nearest, ties to
//! even, as `__float2half_rn`, `cvt.rn.bf16.f32` and torch's `.to()` do.

use crate::error::{invalid, Result};
use half::{bf16, f16};

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DType {
    /// IEEE binary32: every op's compute type.
    #[default]
    F32,
    /// IEEE binary16 (11-bit significand, range ±65504): official FP16 layers.
    F16,
    /// bfloat16 (8-bit significand, FP32's range).
    BF16,
}

impl DType {
    /// `f32`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }

    /// The inverse of [`DType::name`]; an unknown name lists the valid ones.
    pub fn parse(s: &str) -> Result<DType> {
        match s {
            "f32" => Ok(DType::F32),
            "f16" => Ok(DType::F16),
            "bf16" => Ok(DType::BF16),
            other => invalid(
                "dtype",
                format!("unknown dtype '{other}': expected f32, f16 or bf16"),
            ),
        }
    }

    /// Bytes of one element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// Whether this is a 2-byte type.
    pub fn is_half(self) -> bool {
        self != DType::F32
    }

    /// The format code of the cast kernels (kernels/elementwise.cu:
    /// `TC_BF16` = 2, `TC_F16` = 3, as kernels/common.cuh); None for F32.
    pub(crate) fn half_code(self) -> Option<i32> {
        match self {
            DType::F32 => None,
            DType::BF16 => Some(2),
            DType::F16 => Some(3),
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `x` rounded to the 2-byte type `dtype` (nearest, ties to even), as bits.
/// `F32` is not a 2-byte type: its bits are those of F16.
pub(crate) fn encode(x: &[f32], dtype: DType) -> Vec<u16> {
    match dtype {
        DType::BF16 => x.iter().map(|&v| bf16::from_f32(v).to_bits()).collect(),
        DType::F16 | DType::F32 => x.iter().map(|&v| f16::from_f32(v).to_bits()).collect(),
    }
}

/// The values of 2-byte elements `bits` of type `dtype` (exact).
pub(crate) fn decode(bits: &[u16], dtype: DType) -> Vec<f32> {
    match dtype {
        DType::BF16 => bits.iter().map(|&b| bf16::from_bits(b).to_f32()).collect(),
        DType::F16 | DType::F32 => bits.iter().map(|&b| f16::from_bits(b).to_f32()).collect(),
    }
}
