//! Layers of the official networks (`training/networks.py`), built from the
//! differentiable ops: equalized-learning-rate fully connected and conv
//! layers, the modulated synthesis layer, ToRGB and minibatch stddev.
//!
//! Every layer stores its raw parameters under the official names and
//! applies the equalized-learning-rate gains at run time, so official state
//! dicts load unchanged.

pub mod conv;
pub mod fc;
pub mod mbstd;
pub mod state;
pub mod synthesis;

pub use conv::Conv2dLayer;
pub use fc::FullyConnected;
pub use mbstd::MinibatchStd;
pub use state::{join, Kind, Module, StateDict};
pub use synthesis::{NoiseMode, SynthesisLayer, ToRgb};

use crate::device::Device;
use crate::tensor::Tensor;

/// The activation of a layer (official `activation` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Identity, gain 1.
    Linear,
    /// Leaky ReLU with slope 0.2, default gain √2.
    Lrelu,
}

impl Activation {
    /// The default gain the official `bias_act` applies (`def_gain`).
    pub fn def_gain(self) -> f32 {
        match self {
            Activation::Linear => 1.0,
            Activation::Lrelu => std::f32::consts::SQRT_2,
        }
    }
}

/// The official resampling filter: `outer(k, k) / sum(outer(k, k))` for the
/// 1-D taps `k` (`[1, 3, 3, 1]` everywhere in StyleGAN2), as a `[4, 4]` buffer.
pub fn resample_filter(taps: &[f32], device: Device) -> Tensor {
    let n = taps.len();
    let mut f: Vec<f32> = (0..n * n).map(|i| taps[i / n] * taps[i % n]).collect();
    let s: f32 = f.iter().sum();
    f.iter_mut().for_each(|v| *v /= s);
    Tensor::from_vec(f, vec![n, n], device).expect("n×n values")
}

/// The filter taps of every StyleGAN2 layer.
pub const FIR_TAPS: [f32; 4] = [1.0, 3.0, 3.0, 1.0];

/// A trainable leaf.
pub(crate) fn param(t: Tensor) -> Tensor {
    t.set_requires_grad(true).expect("fresh tensors are leaves");
    t
}
