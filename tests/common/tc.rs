//! Helpers of the tensor-core kernel tests: operands rounded as the kernels
//! round them, and a max-error comparison that names the worst element.

use stylegan2::ops::precision::Precision;
use stylegan2::{Device, Result, Tensor};

/// `v` as the kernel's operand: TF32 by cvt.rna (nearest, ties away from
/// zero, 10 mantissa bits), BF16 and FP16 by round-to-nearest-even.
pub fn round_operand(v: f32, p: Precision) -> f32 {
    match p {
        Precision::F32 => v,
        Precision::TF32 if v.is_finite() => f32::from_bits((v.to_bits() + 0x1000) & !0x1fff),
        Precision::TF32 => v,
        Precision::BF16 => half::bf16::from_f32(v).to_f32(),
        Precision::F16 => half::f16::from_f32(v).to_f32(),
    }
}

pub fn rounded(t: &Tensor, p: Precision) -> Result<Tensor> {
    let v = t
        .to_vec()
        .into_iter()
        .map(|v| round_operand(v, p))
        .collect();
    Tensor::from_vec(v, t.dims().to_vec(), Device::Cpu)
}

pub fn max_abs(t: &Tensor) -> f64 {
    t.to_vec()
        .iter()
        .fold(0f64, |m, &v| m.max((v as f64).abs()))
}

/// Fails when max |got − want| exceeds `tol` (NaN counts as infinite).
pub fn assert_within(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_vec(), want.to_vec());
    let (i, err) = g
        .iter()
        .zip(&w)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .enumerate()
        .fold((0, 0f64), |m, (i, e)| {
            if e.is_nan() || e > m.1 {
                (i, if e.is_nan() { f64::INFINITY } else { e })
            } else {
                m
            }
        });
    assert!(
        err <= tol,
        "{what}: max |diff| {err:.3e} at {i} (got {}, want {}) exceeds {tol:.3e}",
        g[i],
        w[i]
    );
}
