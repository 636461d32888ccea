//! `FullyConnectedLayer` with equalized learning rate.

use super::{param, Activation, Kind, Module};
use crate::device::Device;
use crate::error::{shape_err, Result};
use crate::ops::bias_act::bias_act;
use crate::tensor::Tensor;

/// `y = act(x · (W·lr_mul/√in)ᵀ + b·lr_mul)`; `W` is stored N(0,1)/lr_mul.
pub struct FullyConnected {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
    pub in_features: usize,
    pub out_features: usize,
    pub activation: Activation,
    pub lr_multiplier: f32,
}

impl FullyConnected {
    /// Official init: weight N(0,1)/lr_multiplier, bias `bias_init`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_features: usize,
        out_features: usize,
        bias: bool,
        activation: Activation,
        lr_multiplier: f32,
        bias_init: f32,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> FullyConnected {
        let w = Tensor::randn(vec![out_features, in_features], rng, device);
        let weight = if lr_multiplier == 1.0 {
            w
        } else {
            let v = w.to_vec().iter().map(|x| x / lr_multiplier).collect();
            Tensor::from_vec(v, vec![out_features, in_features], device).expect("same size")
        };
        FullyConnected {
            weight: param(weight),
            bias: bias.then(|| param(Tensor::full(bias_init, vec![out_features], device))),
            in_features,
            out_features,
            activation,
            lr_multiplier,
        }
    }

    /// The style affine of a synthesis layer or ToRGB: `w [N, w_dim]` →
    /// styles `[N, channels]`, linear, bias initialized to 1 (official
    /// `FullyConnectedLayer(w_dim, in_channels, bias_init=1)`).
    pub fn style_affine(
        w_dim: usize,
        channels: usize,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> FullyConnected {
        FullyConnected::new(
            w_dim,
            channels,
            true,
            Activation::Linear,
            1.0,
            1.0,
            rng,
            device,
        )
    }

    /// Runtime gain of the weight: `lr_mul / √in`.
    pub fn weight_gain(&self) -> f32 {
        self.lr_multiplier / (self.in_features as f32).sqrt()
    }
}

impl Module for FullyConnected {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        f(super::join(prefix, "weight"), &self.weight, Kind::Param);
        if let Some(b) = &self.bias {
            f(super::join(prefix, "bias"), b, Kind::Param);
        }
    }
}

impl FullyConnected {
    /// `x [N, in] → [N, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 2 || x.dims()[1] != self.in_features {
            return shape_err(
                "FullyConnected",
                format!("input {} is not [N, {}]", x.shape(), self.in_features),
            );
        }
        let w = self.weight.scale(self.weight_gain())?;
        let y = x.matmul(&w.transpose(0, 1)?)?;
        let b = match &self.bias {
            Some(b) if self.lr_multiplier != 1.0 => Some(b.scale(self.lr_multiplier)?),
            Some(b) => Some(b.clone()),
            None => None,
        };
        bias_act(&y, b.as_ref(), 1, &self.activation.bias_act(1.0, None))
    }
}
