//! Modulated convolution (StyleGAN2's synthesis layers), composed from the
//! conv2d, upfirdn2d and elementwise ops, so that every gradient, including
//! the second-order ones regularization needs, follows from theirs.
//!
//! `y = d ⊙ conv(x ⊙ s, w)` with `d[n,o] = rsqrt(Σ_i s[n,i]² · Σ_k w[o,i,k]² + 1e-8)`.

use crate::error::{invalid, shape_err, Result};
use crate::ops::conv::{conv2d, Conv2d};
use crate::ops::upfirdn::{upfirdn2d, UpFirDn};
use crate::tensor::Tensor;

/// How the official `modulated_conv2d` is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModConv {
    pub demodulate: bool,
    /// 1, or 2 for the up-sampling layers (needs a resample filter).
    pub up: usize,
    pub padding: usize,
    /// Official `flip_weight`: true = correlation (F.conv2d), false = true convolution.
    pub flip_weight: bool,
}

impl ModConv {
    /// SynthesisLayer conv1: 3×3, up 1, padding 1, demodulated.
    pub fn conv3x3() -> Self {
        ModConv {
            demodulate: true,
            up: 1,
            padding: 1,
            flip_weight: true,
        }
    }
    /// SynthesisLayer conv0 of blocks above 4×4: 3×3, up 2, padding 1, demodulated.
    pub fn conv3x3_up2() -> Self {
        ModConv {
            demodulate: true,
            up: 2,
            padding: 1,
            flip_weight: false,
        }
    }
    /// ToRGB: 1×1 without demodulation.
    pub fn torgb() -> Self {
        ModConv {
            demodulate: false,
            up: 1,
            padding: 0,
            flip_weight: true,
        }
    }
}

/// How the convolution is executed; both give the same result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ModConvPath {
    /// Scale activations by the styles, convolve with the shared weight,
    /// scale by the demodulation coefficients (the official non-fused path).
    #[default]
    Unfused,
    /// Materialize per-sample weights and run one grouped convolution with
    /// groups = N (the official fused path).
    Grouped,
}

/// Demodulation coefficients `d[n,o] = rsqrt(Σ_i s[n,i]² · Σ_k w[o,i,k]² + 1e-8)`.
pub fn demod_coefficients(styles: &Tensor, weight: &Tensor) -> Result<Tensor> {
    check_weight_styles("demod_coefficients", weight, styles)?;
    let wsq = weight.square()?.sum(&[2, 3], false)?; // [O, I]
    styles
        .square()?
        .matmul(&wsq.transpose(0, 1)?)?
        .add_scalar(1e-8)?
        .rsqrt()
}

fn check_weight_styles(op: &'static str, weight: &Tensor, styles: &Tensor) -> Result<()> {
    let (&[_, i, _, _], &[_, si]) = (weight.dims(), styles.dims()) else {
        return shape_err(
            op,
            format!(
                "weight {} must be [O, I, kh, kw] and styles {} [N, I]",
                weight.shape(),
                styles.shape()
            ),
        );
    };
    if i != si {
        return shape_err(
            op,
            format!(
                "weight {} has {i} input channels, styles {} has {si}",
                weight.shape(),
                styles.shape()
            ),
        );
    }
    Ok(())
}

/// The official `modulated_conv2d` (without noise, which the layer adds
/// afterwards): x [N, I, H, W], weight [O, I, kh, kw] (raw, no gain),
/// styles [N, I]; `filter` is the resample filter, required when `up` is 2.
pub fn modulated_conv2d(
    x: &Tensor,
    weight: &Tensor,
    styles: &Tensor,
    filter: Option<&Tensor>,
    p: ModConv,
    path: ModConvPath,
) -> Result<Tensor> {
    const OP: &str = "modulated_conv2d";
    check_weight_styles(OP, weight, styles)?;
    let &[n, i, _, _] = x.dims() else {
        return shape_err(OP, format!("input {} is not [N, C, H, W]", x.shape()));
    };
    if i != weight.dims()[1] || styles.dims()[0] != n {
        return shape_err(
            OP,
            format!(
                "input {}, weight {} and styles {} disagree on N or input channels",
                x.shape(),
                weight.shape(),
                styles.shape()
            ),
        );
    }
    let (o, kh, kw) = (weight.dims()[0], weight.dims()[2], weight.dims()[3]);
    // Up-sampling as the official conv2d_resample forms it: zero-insertion
    // and FIR (gain up²) with padding widened by the filter, then a valid
    // convolution, flipped unless `flip_weight`.
    let (resample, conv_pad, flip) = match (p.up, filter) {
        (1, _) => (None, p.padding, !p.flip_weight),
        (2, Some(f)) => {
            let (fh, fw) = match *f.dims() {
                [fh, fw] => (fh, fw),
                [k] => (k, k),
                _ => {
                    return shape_err(
                        OP,
                        format!("resample filter {} is not 1-D or 2-D", f.shape()),
                    )
                }
            };
            // Official conv2d_resample: pad0 += (f + up - 1) // 2, pad1 += (f - up) // 2
            // (Python floor division: negative for filters smaller than `up`).
            let up = 2isize;
            let pad = |fsz: usize| {
                let (fsz, base) = (fsz as isize, p.padding as isize);
                (
                    base + (fsz + up - 1).div_euclid(2),
                    base + (fsz - up).div_euclid(2),
                )
            };
            let ((x0, x1), (y0, y1)) = (pad(fw), pad(fh));
            let fir = UpFirDn {
                up: [2, 2],
                down: [1, 1],
                pad: [x0, x1, y0, y1],
                flip_filter: false,
                gain: 4.0,
            };
            (Some((f, fir)), 0, !p.flip_weight)
        }
        (2, None) => return invalid(OP, "up = 2 needs a resample filter"),
        (up, _) => return invalid(OP, format!("up = {up}; only 1 and 2 are supported")),
    };
    let wk = if flip {
        weight.flip(&[2, 3])?
    } else {
        weight.clone()
    };
    let up_fir = |t: &Tensor| -> Result<Tensor> {
        match &resample {
            Some((f, fir)) => upfirdn2d(t, f, fir),
            None => Ok(t.clone()),
        }
    };
    let conv = Conv2d {
        stride: [1, 1],
        padding: [conv_pad, conv_pad],
        groups: 1,
    };
    let dcoefs = if p.demodulate {
        Some(demod_coefficients(styles, weight)?)
    } else {
        None
    };
    match path {
        ModConvPath::Unfused => {
            let xs = x.mul(&styles.reshape(vec![n, i, 1, 1])?)?;
            let y = conv2d(&up_fir(&xs)?, &wk, conv)?;
            match dcoefs {
                Some(d) => y.mul(&d.reshape(vec![n, o, 1, 1])?),
                None => Ok(y),
            }
        }
        ModConvPath::Grouped => {
            // w'[n,o,i] = w[o,i] · s[n,i] · d[n,o], as [N·O, I, kh, kw].
            let mut wn = wk
                .unsqueeze(0)?
                .mul(&styles.reshape(vec![n, 1, i, 1, 1])?)?;
            if let Some(d) = &dcoefs {
                wn = wn.mul(&d.reshape(vec![n, o, 1, 1, 1])?)?;
            }
            let wn = wn.reshape(vec![n * o, i, kh, kw])?;
            let xg = up_fir(x)?;
            let (hh, ww) = (xg.dims()[2], xg.dims()[3]);
            let y = conv2d(
                &xg.reshape(vec![1, n * i, hh, ww])?,
                &wn,
                Conv2d { groups: n, ..conv },
            )?;
            let (oh, ow) = (y.dims()[2], y.dims()[3]);
            y.reshape(vec![n, o, oh, ow])
        }
    }
}
