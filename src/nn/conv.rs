//! `Conv2dLayer`: equalized-learning-rate conv with optional FIR up/down-sampling.

use super::{join, param, resample_filter, Activation, Kind, Module, FIR_TAPS};
use crate::device::Device;
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
