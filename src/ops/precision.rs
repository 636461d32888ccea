//! Operand precision of the convolutions' products.
//!
//! `F32` multiplies FP32 operands on the CUDA cores: the exact path, the
//! default of every library call (the golden tests compare it bit-for-bit
//! close to the official FP32 results). The others round the operands as
//! they enter the tensor cores (`mma.sync`, sm_80 and later) and accumulate
//! in FP32, as cuDNN does with `allow_tf32` or with FP16/BF16 inputs:
//!
//! | precision | operand significand | unit roundoff `u` | tensor-core shape |
//! | --- | --- | --- | --- |
//! | `F32`  | 24 bits | 2⁻²⁴ | (CUDA cores) |
//! | `TF32` | 11 bits (cvt.rna: nearest, ties away) | 2⁻¹¹ | m16n8k8 |
//! | `BF16` | 8 bits (nearest even) | 2⁻⁸ | m16n8k16 |
//! | `F16`  | 11 bits (nearest even; range ±65504) | 2⁻¹¹ | m16n8k16 |
//!
//! Where it applies: the fused modulated convolution's forward, input and
//! weight gradients (kernels/modconv_tc.cu, kernels/conv_tc.cu) and conv2d's
//! forward and both gradients (kernels/conv_tc.cu: the grouped and unfused
//! modconv paths, the discriminator) on `Device::Cuda` with compute
//! capability 8.0 or more where the GEMM fills the tiles (older GPUs and
//! small GEMMs run the FP32 kernels), and on `Device::Sim` (always, so the
//! tensor-core kernels are tested there). On the CPU every precision
//! computes in FP32, as the official code does off CUDA: the CPU is the
//! reference the other devices are checked against.

use crate::error::{invalid, Result};

/// Precision of the operands of a convolution's products (accumulation is
/// always FP32). See the module docs for where each one applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// FP32 operands on the CUDA cores (exact path).
    #[default]
    F32,
    /// TF32 operands (10 explicit mantissa bits) on the tensor cores.
    TF32,
    /// BF16 operands (7 explicit mantissa bits, FP32's range) on the tensor cores.
    BF16,
    /// FP16 operands (10 explicit mantissa bits, range ±65504) on the tensor cores.
    F16,
}

impl Precision {
    /// All precisions, FP32 first.
    pub const ALL: [Precision; 4] = [
        Precision::F32,
        Precision::TF32,
        Precision::BF16,
        Precision::F16,
    ];

    /// `f32`, `tf32`, `bf16` or `f16` (command-line flags, bench rows).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::TF32 => "tf32",
            Precision::BF16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// The inverse of [`Precision::name`]; an unknown name is an error that lists the valid ones.
    pub fn parse(s: &str) -> Result<Precision> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .map_or_else(
                || {
                    invalid(
                        "precision",
                        format!("unknown precision '{s}': expected f32, tf32, bf16 or f16"),
                    )
                },
                Ok,
            )
    }

    /// Unit roundoff of the operands, `2^-p` with `p` the significand bits
    /// (implicit bit included): a rounded operand is within `u·|x|` of `x`.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            Precision::F32 => 2f64.powi(-24),
            Precision::TF32 | Precision::F16 => 2f64.powi(-11),
            Precision::BF16 => 2f64.powi(-8),
        }
    }

    /// Whether the products run on the tensor cores (everything but `F32`).
    pub fn uses_tensor_cores(self) -> bool {
        self != Precision::F32
    }

    /// The operand format code of kernels/common.cuh (`TC_TF32` = 1,
    /// `TC_BF16` = 2, `TC_F16` = 3); None for FP32.
    pub(crate) fn tc_format(self) -> Option<i32> {
        match self {
            Precision::F32 => None,
            Precision::TF32 => Some(1),
            Precision::BF16 => Some(2),
            Precision::F16 => Some(3),
        }
    }

    /// Bytes of one operand in the tensor-core kernels (4 for TF32, 2 for 16-bit).
    pub(crate) fn operand_bytes(self) -> usize {
        match self {
            Precision::F32 | Precision::TF32 => 4,
            Precision::BF16 | Precision::F16 => 2,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
