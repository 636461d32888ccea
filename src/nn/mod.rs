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
pub mod mixed;
pub mod state;
pub mod synthesis;

pub use conv::{conv2d_resample, conv2d_resample_at, Conv2dLayer};
pub use fc::FullyConnected;
pub use mbstd::MinibatchStd;
pub use state::{join, Kind, Module, StateDict};
pub use synthesis::{NoiseMode, SynthesisLayer, ToRgb};

use crate::device::Device;
use crate::ops::bias_act::{Act, BiasAct};
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

    /// The `bias_act` parameters of this activation with an extra layer
    /// `gain` and `clamp` (official order: bias, act, × def_gain·gain, clamp ±clamp·gain).
    pub fn bias_act(self, gain: f32, clamp: Option<f32>) -> BiasAct {
        BiasAct {
            act: match self {
                Activation::Linear => Act::Linear,
                Activation::Lrelu => Act::Lrelu { alpha: 0.2 },
            },
            gain: self.def_gain() * gain,
            clamp: clamp.map(|c| c * gain),
        }
    }
}

/// Per-call state of a forward pass: the generator of random noise
/// (`NoiseMode::Random` needs one) and an optional trace that collects the
/// output of every layer under its official name.
#[derive(Default)]
pub struct Ctx<'a> {
    pub rng: Option<&'a mut crate::Rng>,
    pub trace: Option<&'a mut StateDict>,
    /// Official `force_fp32`: the FP16 blocks (`num_fp16_res`) compute in
    /// FP32 on every device (see `mixed`).
    pub force_fp32: bool,
    /// Name of the module being run (dotted), maintained by `enter`/`leave`.
    scope: Vec<String>,
}

impl<'a> Ctx<'a> {
    /// No random noise, no trace.
    pub fn new() -> Ctx<'a> {
        Ctx::default()
    }

    pub fn with_rng(rng: &'a mut crate::Rng) -> Ctx<'a> {
        Ctx {
            rng: Some(rng),
            ..Ctx::default()
        }
    }

    /// Collects every layer output into `trace` under its state-dict name
    /// (`synthesis.b8.conv0`, `synthesis.b8.conv0.affine`, `b4.fc`, …).
    pub fn with_trace(mut self, trace: &'a mut StateDict) -> Ctx<'a> {
        self.trace = Some(trace);
        self
    }

    /// Runs the FP16 blocks in FP32 (official `force_fp32`).
    pub fn force_fp32(mut self, on: bool) -> Ctx<'a> {
        self.force_fp32 = on;
        self
    }

    /// Enters the child module `name` (names recorded inside are prefixed).
    pub fn enter(&mut self, name: &str) {
        self.scope.push(name.to_string());
    }

    /// Leaves the module entered last.
    pub fn leave(&mut self) {
        self.scope.pop();
    }

    /// Records `t` as `name` of the current module when tracing (`""`: the
    /// module's own output).
    pub fn record(&mut self, name: &str, t: &Tensor) {
        if let Some(tr) = self.trace.as_deref_mut() {
            let mut full = self.scope.join(".");
            if !name.is_empty() {
                full = join(&full, name);
            }
            tr.insert(full, t.detach());
        }
    }
}

/// The official resampling filter of `taps` (`setup_filter`: the outer
/// product normalized to sum 1) as a `[k, k]` buffer; `taps` must be
/// non-empty, finite and of non-zero sum (as `FIR_TAPS` is).
pub fn resample_filter(taps: &[f32], device: Device) -> Tensor {
    crate::ops::upfirdn::setup_filter(taps, device).expect("valid filter taps")
}

/// The filter taps of every StyleGAN2 layer.
pub const FIR_TAPS: [f32; 4] = [1.0, 3.0, 3.0, 1.0];

/// A trainable leaf.
pub(crate) fn param(t: Tensor) -> Tensor {
    t.set_requires_grad(true).expect("fresh tensors are leaves");
    t
}
