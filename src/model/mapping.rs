//! `MappingNetwork`: z (and label c) → w.

use crate::device::Device;
use crate::nn::{join, Activation, FullyConnected, Kind, Module};
use crate::tensor::Tensor;

/// Official `MappingNetwork`: normalize z (and the embedded label), then
/// `num_layers` lrelu FC layers with learning-rate multiplier `lr_mul`;
/// tracks the average w while training (`w_avg`) for truncation.
pub struct MappingNetwork {
    pub z_dim: usize,
    pub c_dim: usize,
    pub w_dim: usize,
    /// Broadcast w to `[N, num_ws, w_dim]`; `None` returns `[N, w_dim]`.
    pub num_ws: Option<usize>,
    /// Label embedding `FC(c_dim → w_dim)` when `c_dim > 0`.
    pub embed: Option<FullyConnected>,
    /// `fc0 … fc{L−1}`.
    pub layers: Vec<FullyConnected>,
    /// `[w_dim]` buffer, init 0; present when w is broadcast and tracked.
    pub w_avg: Option<Tensor>,
    pub w_avg_beta: Option<f32>,
}

impl MappingNetwork {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        z_dim: usize,
        c_dim: usize,
        w_dim: usize,
        num_ws: Option<usize>,
        num_layers: usize,
        lr_multiplier: f32,
        w_avg_beta: Option<f32>,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> MappingNetwork {
        let embed_features = if c_dim > 0 { w_dim } else { 0 };
        let embed = (c_dim > 0).then(|| {
            FullyConnected::new(
                c_dim,
                embed_features,
                true,
                Activation::Linear,
                1.0,
                0.0,
                rng,
                device,
            )
        });
        let layers = (0..num_layers)
            .map(|i| {
                let in_f = if i == 0 {
                    z_dim + embed_features
                } else {
                    w_dim
                };
                FullyConnected::new(
                    in_f,
                    w_dim,
                    true,
                    Activation::Lrelu,
                    lr_multiplier,
                    0.0,
                    rng,
                    device,
                )
            })
            .collect();
        let tracked = num_ws.is_some() && w_avg_beta.is_some();
        MappingNetwork {
            z_dim,
            c_dim,
            w_dim,
            num_ws,
            embed,
            layers,
            w_avg: tracked.then(|| Tensor::zeros(vec![w_dim], device)),
            w_avg_beta,
        }
    }
}

impl Module for MappingNetwork {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        if let Some(w) = &self.w_avg {
            f(join(prefix, "w_avg"), w, Kind::Buffer);
        }
        if let Some(e) = &self.embed {
            e.visit(&join(prefix, "embed"), f);
        }
        for (i, l) in self.layers.iter().enumerate() {
            l.visit(&join(prefix, &format!("fc{i}")), f);
        }
    }
}
