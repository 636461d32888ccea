//! `Conv2dLayer`: equalized-learning-rate conv with optional FIR up/down-sampling.

use super::{join, param, resample_filter, Activation, Kind, Module, FIR_TAPS};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{invalid, shape_err, Result};
use crate::ops::bias_act::bias_act;
use crate::ops::conv::{conv2d, Conv2d};
use crate::ops::precision::Precision;
use crate::ops::upfirdn::{upfirdn2d, UpFirDn};
use crate::tensor::Tensor;

/// `y = clamp(act(conv2d_resample(x, W/√(Cin·k²)) + b) · gain)`.
pub struct Conv2dLayer {
    /// `[out, in, k, k]`, stored N(0,1).
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
    /// `[4, 4]` buffer.
    pub resample_filter: Tensor,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: usize,
    pub up: usize,
    pub down: usize,
    pub activation: Activation,
    pub conv_clamp: Option<f32>,
    /// False for Freeze-D layers: weight and bias are buffers.
    pub trainable: bool,
}

impl Conv2dLayer {
    /// Official init: weight N(0,1), bias 0.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        bias: bool,
        activation: Activation,
        up: usize,
        down: usize,
        conv_clamp: Option<f32>,
        trainable: bool,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> Conv2dLayer {
        let mk = |t: Tensor| if trainable { param(t) } else { t };
        Conv2dLayer {
            weight: mk(Tensor::randn(
                vec![out_channels, in_channels, kernel_size, kernel_size],
                rng,
                device,
            )),
            bias: bias.then(|| mk(Tensor::zeros(vec![out_channels], device))),
            resample_filter: resample_filter(&FIR_TAPS, device),
            in_channels,
            out_channels,
            kernel_size,
            up,
            down,
            activation,
            conv_clamp,
            trainable,
        }
    }

    /// Runtime gain of the weight: `1/√(Cin·k²)`.
    pub fn weight_gain(&self) -> f32 {
        1.0 / ((self.in_channels * self.kernel_size * self.kernel_size) as f32).sqrt()
    }
}

impl Module for Conv2dLayer {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        let kind = if self.trainable {
            Kind::Param
        } else {
            Kind::Buffer
        };
        f(join(prefix, "weight"), &self.weight, kind);
        if let Some(b) = &self.bias {
            f(join(prefix, "bias"), b, kind);
        }
        f(
            join(prefix, "resample_filter"),
            &self.resample_filter,
            Kind::Buffer,
        );
    }
}

/// The official `conv2d_resample`: a convolution with `w` (`[O, I, k, k]`,
/// gains already applied) of `x` upsampled by `up` or downsampled by `down`
/// with the FIR filter `f`, `padding` relative to the upsampled image.
/// `flip_weight` = true is a correlation (F.conv2d), false a convolution.
/// FP32 products; [`conv2d_resample_at`] takes the precision.
pub fn conv2d_resample(
    x: &Tensor,
    w: &Tensor,
    f: &Tensor,
    up: usize,
    down: usize,
    padding: usize,
    flip_weight: bool,
) -> Result<Tensor> {
    conv2d_resample_at(x, w, f, [up, down], padding, flip_weight, Precision::F32)
}

/// [`conv2d_resample`] with `[up, down]` and the operand precision of the
/// convolution (see [`Conv2d::precision`]; the FIR steps stay FP32). `x`
/// may be F16: the convolution reads it as stored, the FIR widens it.
pub fn conv2d_resample_at(
    x: &Tensor,
    w: &Tensor,
    f: &Tensor,
    [up, down]: [usize; 2],
    padding: usize,
    flip_weight: bool,
    precision: Precision,
) -> Result<Tensor> {
    const OP: &str = "conv2d_resample";
    let &[_, _, kh, kw] = w.dims() else {
        return shape_err(OP, format!("weight {} is not [O, I, kh, kw]", w.shape()));
    };
    let &[fh, fw] = f.dims() else {
        return shape_err(OP, format!("filter {} is not [fh, fw]", f.shape()));
    };
    if up == 0 || down == 0 || (up > 1 && down > 1) {
        return invalid(
            OP,
            format!("up {up}, down {down}: one of them must be 1, both ≥ 1"),
        );
    }
    let (fh, fw, p) = (fh as isize, fw as isize, padding as isize);
    let (u, d) = (up as isize, down as isize);
    let mut pad = [p, p, p, p];
    if up > 1 {
        pad[0] += (fw + u - 1).div_euclid(2);
        pad[1] += (fw - u).div_euclid(2);
        pad[2] += (fh + u - 1).div_euclid(2);
        pad[3] += (fh - u).div_euclid(2);
    }
    if down > 1 {
        pad[0] += (fw - d + 1).div_euclid(2);
        pad[1] += (fw - d).div_euclid(2);
        pad[2] += (fh - d + 1).div_euclid(2);
        pad[3] += (fh - d).div_euclid(2);
    }
    let wc = if flip_weight {
        w.clone()
    } else {
        w.flip(&[2, 3])?
    };
    let valid = Conv2d {
        precision,
        ..Conv2d::default()
    };
    let pointwise = kh == 1 && kw == 1;
    if up == 1 && down == 1 {
        return conv2d(
            x,
            &wc,
            Conv2d {
                padding: [padding, padding],
                ..valid
            },
        );
    }
    if down > 1 {
        let fir = UpFirDn {
            up: [1, 1],
            down: if pointwise { [down, down] } else { [1, 1] },
            pad,
            flip_filter: false,
            gain: 1.0,
        };
        // The FIR computes on F32 (an F16 input widened).
        let xf = upfirdn2d(&x.to_dtype(DType::F32)?, f, &fir)?;
        let stride = if pointwise { [1, 1] } else { [down, down] };
        return conv2d(&xf, &wc, Conv2d { stride, ..valid });
    }
    let fir = UpFirDn {
        up: [up, up],
        down: [1, 1],
        pad,
        flip_filter: false,
        gain: (up * up) as f32,
    };
    if pointwise {
        upfirdn2d(&conv2d(x, &wc, valid)?, f, &fir)
    } else {
        conv2d(&upfirdn2d(&x.to_dtype(DType::F32)?, f, &fir)?, &wc, valid)
    }
}

impl Conv2dLayer {
    /// `x [N, Cin, H, W] → [N, Cout, H·up/down, W·up/down]`; `gain` scales the
    /// activation's gain and the clamp (the resnet branches use √0.5). An
    /// F16/BF16 input (a layer of an FP16 block) gives a result of that dtype.
    pub fn forward(&self, x: &Tensor, gain: f32) -> Result<Tensor> {
        self.forward_at(x, gain, Precision::F32)
    }

    /// [`Conv2dLayer::forward`] with the convolution's operand precision.
    pub fn forward_at(&self, x: &Tensor, gain: f32, precision: Precision) -> Result<Tensor> {
        if x.rank() != 4 || x.dims()[1] != self.in_channels {
            return shape_err(
                "Conv2dLayer",
                format!("input {} is not [N, {}, H, W]", x.shape(), self.in_channels),
            );
        }
        // A layer of an FP16 block (2-byte input, see `super::mixed`):
        // FP16 operands (on the tensor cores where the device has them), FP32
        // accumulation and epilogue, F16 result. `conv2d` reads F16 x as
        // stored (no F32 copy kept); the FIR steps widen it (BF16: widened).
        let dtype = x.dtype();
        let x = &if dtype == DType::F16 {
            x.clone()
        } else {
            x.to_dtype(DType::F32)?
        };
        let w = super::mixed::weight_as(&self.weight, self.weight_gain(), dtype)?;
        let precision = super::mixed::conv_precision(dtype, precision);
        let y = conv2d_resample_at(
            x,
            &w,
            &self.resample_filter,
            [self.up, self.down],
            self.kernel_size / 2,
            self.up == 1,
            precision,
        )?;
        bias_act(
            &y,
            self.bias.as_ref(),
            1,
            &self.activation.bias_act(gain, self.conv_clamp),
        )?
        .to_dtype(dtype)
    }
}
