//! The per-sample matrices and filters of the augment pipeline, in f64 on
//! the host: the inverse 3×3 homogeneous transform of the geometric stage
//! (output pixel → input pixel), the 4×4 colour transform, and the filter
//! bank of the image-space filtering. Formulas of `training/augment.py`.

use super::SampleParams;
use std::f64::consts::PI;

pub(crate) type M3 = [[f64; 3]; 3];
pub(crate) type M4 = [[f64; 4]; 4];

/// Low-pass filter of the geometric stage: Daubechies symlet 6 (the
/// wavelet's published decomposition low-pass coefficients).
pub(crate) const SYM6: [f64; 12] = [
    0.015404109327027373,
    0.0034907120842174702,
    -0.11799011114819057,
    -0.048311742585633,
    0.4910559419267466,
    0.787641141030194,
    0.3379294217276218,
    -0.07263752278646252,
    -0.021060292512300564,
    0.04472490177066578,
    0.0017677118642428036,
    -0.007800708325034148,
];

/// Low-pass filter from which the filter bank of image-space filtering is built: symlet 2.
const SYM2: [f64; 4] = [
    -0.12940952255092145,
    0.22414386804185735,
    0.836516303737469,
    0.48296291314469025,
];

pub(crate) fn mul3(a: &M3, b: &M3) -> M3 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

fn mul4(a: &M4, b: &M4) -> M4 {
    let mut c = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            c[i][j] = (0..4).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

pub(crate) fn translate2d(tx: f64, ty: f64) -> M3 {
    [[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]]
}

pub(crate) fn scale2d(sx: f64, sy: f64) -> M3 {
    [[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]]
}

/// Counter-clockwise rotation by `theta` in the (x right, y down) pixel frame.
fn rotate2d(theta: f64) -> M3 {
    let (s, c) = theta.sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

/// The inverse geometric transform of one sample on `[w, h]` images: maps
/// an output pixel (centred coordinates) to the input pixel it reads. The
/// official composition order: x-flip, 90° rotation, integer translation,
/// isotropic scale, pre-rotation, anisotropic scale, post-rotation,
/// fractional translation, each right-multiplied as its inverse.
pub(crate) fn geometric_inverse(s: &SampleParams, w: usize, h: usize) -> M3 {
    let (w, h) = (w as f64, h as f64);
    let mut g = scale2d(if s.xflip { -1.0 } else { 1.0 }, 1.0);
    // rotate2d_inv(−π/2·i) = rotate2d(π/2·i).
    g = mul3(&g, &rotate2d(PI / 2.0 * s.rotate90 as f64));
    // Rounded half to even, as torch.round.
    let tx = (s.xint[0] as f64 * w).round_ties_even();
    let ty = (s.xint[1] as f64 * h).round_ties_even();
    g = mul3(&g, &translate2d(-tx, -ty));
    let sc = s.scale as f64;
    g = mul3(&g, &scale2d(1.0 / sc, 1.0 / sc));
    g = mul3(&g, &rotate2d(s.rotate_pre as f64));
    let a = s.aniso as f64;
    g = mul3(&g, &scale2d(1.0 / a, a));
    g = mul3(&g, &rotate2d(s.rotate_post as f64));
    mul3(
        &g,
        &translate2d(-(s.xfrac[0] as f64) * w, -(s.xfrac[1] as f64) * h),
    )
}

/// The 4×4 colour transform of one sample (colour in → colour out, RGB and
/// a homogeneous 1): brightness, contrast, luma flip, hue rotation about the
/// luma axis, saturation, each left-multiplied. Hue and saturation act only
/// when `color` (more than one channel).
pub(crate) fn color_matrix(s: &SampleParams, color: bool) -> M4 {
    let id = |i: usize, j: usize| if i == j { 1.0 } else { 0.0 };
    let mut c: M4 = std::array::from_fn(|i| std::array::from_fn(|j| id(i, j)));
    let b = s.brightness as f64;
    let tr: M4 = std::array::from_fn(|i| {
        std::array::from_fn(|j| id(i, j) + if j == 3 && i < 3 { b } else { 0.0 })
    });
    c = mul4(&tr, &c);
    let k = s.contrast as f64;
    let sc: M4 =
        std::array::from_fn(|i| std::array::from_fn(|j| id(i, j) * if i < 3 { k } else { 1.0 }));
    c = mul4(&sc, &c);
    // Luma axis v = (1, 1, 1, 0)/√3; v vᵀ has 1/3 in its RGB block.
    let vv = |i: usize, j: usize| if i < 3 && j < 3 { 1.0 / 3.0 } else { 0.0 };
    if s.lumaflip {
        let hh: M4 = std::array::from_fn(|i| std::array::from_fn(|j| id(i, j) - 2.0 * vv(i, j)));
        c = mul4(&hh, &c);
    }
    if color {
        // Rotation by θ about the unit axis v (Rodrigues).
        let (sn, cs) = (s.hue as f64).sin_cos();
        let cc = 1.0 - cs;
        let v = 1.0 / 3f64.sqrt();
        let (vx, vy, vz) = (v, v, v);
        let r: M4 = [
            [
                vx * vx * cc + cs,
                vx * vy * cc - vz * sn,
                vx * vz * cc + vy * sn,
                0.0,
            ],
            [
                vy * vx * cc + vz * sn,
                vy * vy * cc + cs,
                vy * vz * cc - vx * sn,
                0.0,
            ],
            [
                vz * vx * cc - vy * sn,
                vz * vy * cc + vx * sn,
                vz * vz * cc + cs,
                0.0,
            ],
            [0.0, 0.0, 0.0, 1.0],
        ];
        c = mul4(&r, &c);
        let sat = s.saturation as f64;
        let m: M4 = std::array::from_fn(|i| {
            std::array::from_fn(|j| vv(i, j) + (id(i, j) - vv(i, j)) * sat)
        });
        c = mul4(&m, &c);
    }
    c
}

/// Full 1-D convolution.
fn convolve(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

/// The filter bank of image-space filtering: 4 zero-phase bands (low to
/// high frequency) of 43 taps that sum to the identity filter, built from
/// the symlet-2 half-band pair `H(z)H(z⁻¹)/2`, `H(−z)H(−z⁻¹)/2` by repeated
/// zero insertion and low-pass filtering, as the official constructor does.
pub(crate) fn filter_bank() -> Vec<Vec<f64>> {
    let lo = SYM2;
    let hi: Vec<f64> = lo
        .iter()
        .enumerate()
        .map(|(k, v)| if k % 2 == 0 { *v } else { -v })
        .collect();
    let rev = |v: &[f64]| v.iter().rev().copied().collect::<Vec<f64>>();
    let lo2: Vec<f64> = convolve(&lo, &rev(&lo)).iter().map(|v| v / 2.0).collect();
    let hi2: Vec<f64> = convolve(&hi, &rev(&hi)).iter().map(|v| v / 2.0).collect();
    let mut bank: Vec<Vec<f64>> = (0..4)
        .map(|i| vec![if i == 0 { 1.0 } else { 0.0 }])
        .collect();
    for i in 1..4 {
        for row in bank.iter_mut() {
            // Zero insertion (dropping the trailing zero), then the low-pass.
            let mut up = vec![0.0; 2 * row.len() - 1];
            for (k, v) in row.iter().enumerate() {
                up[2 * k] = *v;
            }
            *row = convolve(&up, &lo2);
        }
        let len = bank[i].len();
        let start = (len - hi2.len()) / 2;
        for (k, v) in hi2.iter().enumerate() {
            bank[i][start + k] += v;
        }
    }
    bank
}

/// Each band's gain for one sample: the drawn amplifications `t`, each
/// normalized so the expected power (spectrum 1/f: weights 10, 1, 1, 1 over
/// 13) stays 1, multiplied band after band as the official loop does.
pub(crate) fn band_gains(t: &[f32; 4]) -> [f64; 4] {
    const POWER: [f64; 4] = [10.0 / 13.0, 1.0 / 13.0, 1.0 / 13.0, 1.0 / 13.0];
    let mut g = [1.0f64; 4];
    for (i, &ti) in t.iter().enumerate() {
        let mut tv = [1.0f64; 4];
        tv[i] = ti as f64;
        let norm = (0..4).map(|k| POWER[k] * tv[k] * tv[k]).sum::<f64>().sqrt();
        for k in 0..4 {
            g[k] *= tv[k] / norm;
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_bank_sums_to_the_identity() {
        let bank = filter_bank();
        assert_eq!(bank.len(), 4);
        assert!(bank.iter().all(|b| b.len() == 43));
        for k in 0..43 {
            let s: f64 = bank.iter().map(|b| b[k]).sum();
            let want = if k == 21 { 1.0 } else { 0.0 };
            // The published symlet taps carry ~16 digits and are power
            // complementary to ~1e-12, not exactly (measured 1.0e-12).
            assert!((s - want).abs() < 1e-9, "tap {k}: {s}");
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn identity_parameters_give_identity_matrices() {
        let s = SampleParams::default();
        let g = geometric_inverse(&s, 8, 6);
        let c = color_matrix(&s, true);
        for i in 0..3 {
            for j in 0..3 {
                assert!((g[i][j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-15);
            }
        }
        for i in 0..4 {
            for j in 0..4 {
                assert!((c[i][j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-15);
            }
        }
        assert_eq!(band_gains(&[1.0; 4]), [1.0; 4]);
    }
}
