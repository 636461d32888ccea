//! `SynthesisLayer` (modulated conv, noise, bias, lrelu) and `ToRGBLayer`.

use super::{
    join, param, resample_filter, Activation, Ctx, FullyConnected, Kind, Module, FIR_TAPS,
};
use crate::device::Device;
use crate::error::{invalid, shape_err, Result};
use crate::ops::bias_act::bias_act;
use crate::ops::modconv::{
    modulated_conv2d, modulated_conv2d_fused, Epilogue, ModConv, ModConvPath,
};
use crate::ops::noise::noise_inject;
use crate::ops::precision::Precision;
use crate::tensor::{DType, Tensor};

/// Where a synthesis layer's noise comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NoiseMode {
    /// Fresh N(0,1) noise `[N, 1, H, W]` per call (training).
    #[default]
    Random,
    /// The layer's `noise_const` buffer (reproducible images).
    Const,
    /// No noise.
    None,
}

impl NoiseMode {
    /// Parses `random`, `const` or `none`.
    pub fn parse(s: &str) -> Result<NoiseMode> {
        match s {
            "random" => Ok(NoiseMode::Random),
            "const" => Ok(NoiseMode::Const),
            "none" => Ok(NoiseMode::None),
            other => invalid(
                "noise_mode",
                format!("unknown noise mode '{other}': expected random, const or none"),
            ),
        }
    }
}

/// Official `SynthesisLayer`: `styles = affine(w)` (bias init 1), modulated
/// and demodulated conv (up 1 or 2), `+ noise · noise_strength`, bias,
/// lrelu·√2·gain, clamp ±conv_clamp·gain.
pub struct SynthesisLayer {
    pub affine: FullyConnected,
    /// `[out, in, k, k]`, stored N(0,1), no runtime gain (demodulation).
    pub weight: Tensor,
    /// Scalar `[]`, init 0 (only with noise).
    pub noise_strength: Option<Tensor>,
    /// `[out]`, init 0.
    pub bias: Tensor,
    /// `[4, 4]` buffer.
    pub resample_filter: Tensor,
    /// `[res, res]` buffer, N(0,1) (only with noise).
    pub noise_const: Option<Tensor>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub w_dim: usize,
    /// Output resolution.
    pub resolution: usize,
    pub kernel_size: usize,
    pub up: usize,
    pub activation: Activation,
    pub conv_clamp: Option<f32>,
}

impl SynthesisLayer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        w_dim: usize,
        resolution: usize,
        up: usize,
        use_noise: bool,
        conv_clamp: Option<f32>,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> SynthesisLayer {
        let kernel_size = 3;
        let affine = FullyConnected::style_affine(w_dim, in_channels, rng, device);
        let weight = param(Tensor::randn(
            vec![out_channels, in_channels, kernel_size, kernel_size],
            rng,
            device,
        ));
        let noise_const =
            use_noise.then(|| Tensor::randn(vec![resolution, resolution], rng, device));
        SynthesisLayer {
            affine,
            weight,
            noise_strength: use_noise.then(|| param(Tensor::scalar(0.0, device))),
            bias: param(Tensor::zeros(vec![out_channels], device)),
            resample_filter: resample_filter(&FIR_TAPS, device),
            noise_const,
            in_channels,
            out_channels,
            w_dim,
            resolution,
            kernel_size,
            up,
            activation: Activation::Lrelu,
            conv_clamp,
        }
    }
}

impl Module for SynthesisLayer {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        f(join(prefix, "weight"), &self.weight, Kind::Param);
        if let Some(s) = &self.noise_strength {
            f(join(prefix, "noise_strength"), s, Kind::Param);
        }
        f(join(prefix, "bias"), &self.bias, Kind::Param);
        f(
            join(prefix, "resample_filter"),
            &self.resample_filter,
            Kind::Buffer,
        );
        if let Some(n) = &self.noise_const {
            f(join(prefix, "noise_const"), n, Kind::Buffer);
        }
        self.affine.visit(&join(prefix, "affine"), f);
    }
}

/// Official `ToRGBLayer`: `styles = affine(w) / √(Cin·k²)`, modulated conv
/// without demodulation, linear bias, clamp ±conv_clamp.
pub struct ToRgb {
    pub affine: FullyConnected,
    /// `[out, in, k, k]`, stored N(0,1).
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: usize,
    pub conv_clamp: Option<f32>,
}

impl ToRgb {
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        w_dim: usize,
        conv_clamp: Option<f32>,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> ToRgb {
        let kernel_size = 1;
        let affine = FullyConnected::style_affine(w_dim, in_channels, rng, device);
        ToRgb {
            affine,
            weight: param(Tensor::randn(
                vec![out_channels, in_channels, kernel_size, kernel_size],
                rng,
                device,
            )),
            bias: param(Tensor::zeros(vec![out_channels], device)),
            in_channels,
            out_channels,
            kernel_size,
            conv_clamp,
        }
    }

    /// The gain applied to the styles: `1/√(Cin·k²)`.
    pub fn weight_gain(&self) -> f32 {
        1.0 / ((self.in_channels * self.kernel_size * self.kernel_size) as f32).sqrt()
    }
}

impl Module for ToRgb {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        f(join(prefix, "weight"), &self.weight, Kind::Param);
        f(join(prefix, "bias"), &self.bias, Kind::Param);
        self.affine.visit(&join(prefix, "affine"), f);
    }
}

impl SynthesisLayer {
    /// `x [N, Cin, res/up, res/up]`, `w [N, w_dim]` → `[N, Cout, res, res]`.
    /// `gain` scales the activation gain and the clamp; `precision` is the
    /// operand precision of the fused path (see `ModConv::precision`).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &Tensor,
        w: &Tensor,
        noise_mode: NoiseMode,
        path: ModConvPath,
        precision: Precision,
        gain: f32,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        const OP: &str = "SynthesisLayer";
        let in_res = self.resolution / self.up;
        let &[n, c, h, wd] = x.dims() else {
            return shape_err(OP, format!("input {} is not [N, C, H, W]", x.shape()));
        };
        if c != self.in_channels || h != in_res || wd != in_res {
            return shape_err(
                OP,
                format!(
                    "input {} is not [N, {}, {in_res}, {in_res}]",
                    x.shape(),
                    self.in_channels
                ),
            );
        }
        let styles = self.affine.forward(w)?;
        ctx.record("affine", &styles);
        // A layer of an FP16 block (2-byte input, see `super::mixed`): FP16
        // operands with the official safeguard, F16 result. The fused kernel
        // reads F16 x as it is; the other paths widen it.
        let (x, fused, dtype) = modconv_input(x, path)?;
        let x = &x;
        let precision = super::mixed::conv_precision(dtype, precision);
        let (weight, styles) = if dtype == DType::F16 {
            super::mixed::fp16_prenormalize(&self.weight, &styles)?
        } else {
            (self.weight.clone(), styles)
        };
        let p = ModConv {
            demodulate: true,
            up: self.up,
            padding: self.kernel_size / 2,
            flip_weight: self.up == 1,
            precision,
        };
        let noise = match (&self.noise_strength, &self.noise_const) {
            (Some(strength), Some(noise_const)) => {
                let r = self.resolution;
                let noise = match noise_mode {
                    NoiseMode::None => None,
                    NoiseMode::Const => Some(noise_const.reshape(vec![1, 1, r, r])?),
                    NoiseMode::Random => {
                        let Some(rng) = ctx.rng.as_deref_mut() else {
                            return invalid(
                                OP,
                                "noise mode 'random' needs a random generator in the forward context",
                            );
                        };
                        Some(Tensor::randn(vec![n, 1, r, r], rng, x.device()))
                    }
                };
                noise.map(|nz| (nz, strength))
            }
            _ => None,
        };
        let act = self.activation.bias_act(gain, self.conv_clamp);
        if fused {
            // One kernel: modulation, conv, demodulation, noise, bias, lrelu, clamp.
            let epi = Epilogue {
                noise: noise.as_ref().map(|(nz, st)| (nz, *st)),
                bias: Some(&self.bias),
                act,
            };
            return modulated_conv2d_fused(
                x,
                &weight,
                &styles,
                Some(&self.resample_filter),
                p,
                &epi,
            )?
            .to_dtype(dtype);
        }
        let mut y = modulated_conv2d(x, &weight, &styles, Some(&self.resample_filter), p, path)?;
        if let Some((noise, strength)) = &noise {
            y = noise_inject(&y, noise, strength)?;
        }
        bias_act(&y, Some(&self.bias), 1, &act)?.to_dtype(dtype)
    }
}

impl ToRgb {
    /// `x [N, Cin, H, W]`, `w [N, w_dim]` → `[N, img_channels, H, W]`.
    pub fn forward(
        &self,
        x: &Tensor,
        w: &Tensor,
        path: ModConvPath,
        precision: Precision,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        if x.rank() != 4 || x.dims()[1] != self.in_channels {
            return shape_err(
                "ToRGB",
                format!("input {} is not [N, {}, H, W]", x.shape(), self.in_channels),
            );
        }
        let styles = self.affine.forward(w)?;
        ctx.record("affine", &styles);
        let styles = styles.scale(self.weight_gain())?;
        let act = Activation::Linear.bias_act(1.0, self.conv_clamp);
        // In an FP16 block (2-byte input): FP16 operands, the result rounded
        // to F16 and widened (official `y.to(torch.float32)`): the image
        // path is always F32. The fused kernel reads F16 x as it is.
        let (x, fused, dtype) = modconv_input(x, path)?;
        let x = &x;
        let precision = super::mixed::conv_precision(dtype, precision);
        let y = if fused {
            let epi = Epilogue {
                noise: None,
                bias: Some(&self.bias),
                act,
            };
            let p = ModConv::torgb().with_precision(precision);
            modulated_conv2d_fused(x, &self.weight, &styles, None, p, &epi)?
        } else {
            let y = modulated_conv2d(x, &self.weight, &styles, None, ModConv::torgb(), path)?;
            bias_act(&y, Some(&self.bias), 1, &act)?
        };
        y.to_dtype(dtype)?.to_dtype(DType::F32)
    }
}

/// The modulated convolution's input as its path takes it: the fused
/// kernel reads a 2-byte (FP16 block) `x` as stored, the other paths widen
/// it to F32. Returns that tensor, whether the path is fused, and `x`'s
/// own dtype (which sets the layer's precision and result rounding).
fn modconv_input(x: &Tensor, path: ModConvPath) -> Result<(Tensor, bool, DType)> {
    let fused = path.resolve(x.device()) == ModConvPath::Fused;
    let x_in = if fused {
        x.clone()
    } else {
        x.to_dtype(DType::F32)?
    };
    Ok((x_in, fused, x.dtype()))
}
