//! `MappingNetwork`: z (and label c) → w.

use crate::device::Device;
use crate::error::{invalid, shape_err, Result};
use crate::nn::{join, Activation, Ctx, FullyConnected, Kind, Module};
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

/// `x · rsqrt(mean(x², axis 1) + 1e-8)` (official `normalize_2nd_moment`).
pub fn normalize_2nd_moment(x: &Tensor) -> Result<Tensor> {
    x.mul(&x.square()?.mean(&[1], true)?.add_scalar(1e-8)?.rsqrt()?)
}

/// Truncation of a mapping call: `w_avg + ψ (w − w_avg)` on the first
/// `cutoff` ws (all with `None`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Truncation {
    pub psi: f32,
    pub cutoff: Option<usize>,
}

impl Default for Truncation {
    fn default() -> Self {
        Truncation {
            psi: 1.0,
            cutoff: None,
        }
    }
}

impl Truncation {
    pub fn psi(psi: f32) -> Truncation {
        Truncation { psi, cutoff: None }
    }
}

impl MappingNetwork {
    /// `z [N, z_dim]` and `c [N, c_dim]` (each required iff its dim is > 0)
    /// → `ws [N, num_ws, w_dim]` (or `[N, w_dim]` without broadcast).
    /// With `update_w_avg` (training), `w_avg ← lerp(mean_n(w), w_avg, β)`
    /// before broadcasting.
    pub fn forward(
        &self,
        z: Option<&Tensor>,
        c: Option<&Tensor>,
        trunc: Truncation,
        update_w_avg: bool,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        const OP: &str = "MappingNetwork";
        let mut x = None;
        let mut n = None;
        if self.z_dim > 0 {
            let Some(z) = z else {
                return invalid(OP, format!("a latent z [N, {}] is required", self.z_dim));
            };
            if z.rank() != 2 || z.dims()[1] != self.z_dim {
                return shape_err(OP, format!("z {} is not [N, {}]", z.shape(), self.z_dim));
            }
            n = Some(z.dims()[0]);
            x = Some(normalize_2nd_moment(z)?);
        }
        if let Some(embed) = &self.embed {
            let Some(c) = c else {
                return invalid(OP, format!("a label c [N, {}] is required", self.c_dim));
            };
            if c.rank() != 2 || c.dims()[1] != self.c_dim || n.is_some_and(|n| n != c.dims()[0]) {
                return shape_err(
                    OP,
                    format!(
                        "label c {} is not [{}, {}]",
                        c.shape(),
                        n.map_or("N".into(), |n| n.to_string()),
                        self.c_dim
                    ),
                );
            }
            ctx.enter("embed");
            let y = embed.forward(c)?;
            ctx.record("", &y);
            ctx.leave();
            let y = normalize_2nd_moment(&y)?;
            x = Some(match x {
                Some(x) => Tensor::concat(&[x, y], 1)?,
                None => y,
            });
        }
        let Some(mut x) = x else {
            return invalid(OP, "the network has neither z nor c inputs");
        };
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            ctx.enter(&format!("fc{i}"));
            ctx.record("", &x);
            ctx.leave();
        }
        if update_w_avg {
            if let (Some(w_avg), Some(beta)) = (&self.w_avg, self.w_avg_beta) {
                let _g = crate::no_grad();
                // torch.lerp(mean, w_avg, β) for β ≥ 0.5: w_avg − (w_avg − mean)(1 − β).
                let mean = x.detach().mean(&[0], false)?;
                w_avg.assign(&w_avg.sub(&w_avg.sub(&mean)?.scale(1.0 - beta)?)?)?;
            }
        }
        let Some(num_ws) = self.num_ws else {
            if trunc.psi != 1.0 {
                return invalid(OP, "truncation needs broadcast ws and a tracked w_avg");
            }
            return Ok(x);
        };
        let nb = x.dims()[0];
        let ws = x
            .unsqueeze(1)?
            .broadcast_to(&vec![nb, num_ws, self.w_dim].into())?;
        if trunc.psi == 1.0 {
            return Ok(ws);
        }
        let Some(w_avg) = &self.w_avg else {
            return invalid(OP, "truncation needs a tracked w_avg");
        };
        let cut = trunc.cutoff.unwrap_or(num_ws).min(num_ws);
        let lerp = |t: &Tensor| -> Result<Tensor> {
            let avg = w_avg.reshape(vec![1, 1, self.w_dim])?;
            // torch.lerp(w_avg, w, ψ).
            if trunc.psi < 0.5 {
                avg.add(&t.sub(&avg)?.scale(trunc.psi)?)
            } else {
                t.sub(&t.sub(&avg)?.scale(1.0 - trunc.psi)?)
            }
        };
        if cut == num_ws {
            return lerp(&ws);
        }
        if cut == 0 {
            return Ok(ws);
        }
        let head = lerp(&ws.narrow(1, 0, cut)?)?;
        Tensor::concat(&[head, ws.narrow(1, cut, num_ws - cut)?], 1)
    }
}
