//! `Generator`: mapping network + synthesis network.

use super::config::GeneratorConfig;
use super::mapping::MappingNetwork;
use super::mapping::Truncation;
use super::synthesis::{SynthesisNetwork, SynthesisOptions};
use crate::device::Device;
use crate::error::{invalid, shape_err, Result};
use crate::nn::{join, Ctx, Kind, Module};
use crate::tensor::Tensor;

/// Official `Generator`; state-dict names `synthesis.*`, `mapping.*`.
pub struct Generator {
    pub config: GeneratorConfig,
    pub synthesis: SynthesisNetwork,
    pub mapping: MappingNetwork,
}

impl Generator {
    /// A generator with the official initialization, drawn from `rng`.
    pub fn new(
        cfg: &GeneratorConfig,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> Result<Generator> {
        cfg.validate()?;
        let synthesis = SynthesisNetwork::new(cfg, rng, device);
        let mapping = MappingNetwork::new(
            cfg.z_dim,
            cfg.c_dim,
            cfg.w_dim,
            Some(synthesis.num_ws),
            cfg.mapping_layers,
            cfg.mapping_lr_multiplier,
            Some(cfg.w_avg_beta),
            rng,
            device,
        );
        Ok(Generator {
            config: cfg.clone(),
            synthesis,
            mapping,
        })
    }

    pub fn num_ws(&self) -> usize {
        self.synthesis.num_ws
    }
}

impl Module for Generator {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.synthesis.visit(&join(prefix, "synthesis"), f);
        self.mapping.visit(&join(prefix, "mapping"), f);
    }
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("config", &self.config)
            .field("num_ws", &self.num_ws())
            .field("num_params", &self.num_params())
            .finish()
    }
}

impl Generator {
    /// Mapping: `z [N, z_dim]`, `c [N, c_dim]` (when `c_dim > 0`) →
    /// `ws [N, num_ws, w_dim]`; `update_w_avg` in training.
    pub fn mapping(
        &self,
        z: &Tensor,
        c: Option<&Tensor>,
        trunc: Truncation,
        update_w_avg: bool,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        ctx.enter("mapping");
        let ws = self.mapping.forward(Some(z), c, trunc, update_w_avg, ctx);
        ctx.leave();
        ws
    }

    /// Synthesis: `ws [N, num_ws, w_dim]` → images `[N, C, R, R]`.
    pub fn synthesis(&self, ws: &Tensor, opts: SynthesisOptions, ctx: &mut Ctx) -> Result<Tensor> {
        ctx.enter("synthesis");
        let img = self.synthesis.forward(ws, opts, ctx);
        ctx.leave();
        img
    }

    /// `G(z, c)`: mapping (no w_avg update) then synthesis.
    pub fn forward(
        &self,
        z: &Tensor,
        c: Option<&Tensor>,
        trunc: Truncation,
        opts: SynthesisOptions,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let ws = self.mapping(z, c, trunc, false, ctx)?;
        self.synthesis(&ws, opts, ctx)
    }
}

/// Style mixing: `ws[:, ..cutoff]` from `ws`, `ws[:, cutoff..]` from `other`
/// (both `[N, num_ws, w_dim]`).
pub fn mix_styles(ws: &Tensor, other: &Tensor, cutoff: usize) -> Result<Tensor> {
    if ws.shape() != other.shape() || ws.rank() != 3 {
        return shape_err(
            "mix_styles",
            format!(
                "ws {} and {} must be one [N, num_ws, w_dim] shape",
                ws.shape(),
                other.shape()
            ),
        );
    }
    let num_ws = ws.dims()[1];
    if cutoff > num_ws {
        return invalid(
            "mix_styles",
            format!("cutoff {cutoff} exceeds num_ws {num_ws}"),
        );
    }
    if cutoff == num_ws {
        return Ok(ws.clone());
    }
    if cutoff == 0 {
        return Ok(other.clone());
    }
    Tensor::concat(
        &[
            ws.narrow(1, 0, cutoff)?,
            other.narrow(1, cutoff, num_ws - cutoff)?,
        ],
        1,
    )
}

/// The official training-time crossover: with probability `prob` a cutoff
/// uniform in `1 .. num_ws`, else `num_ws` (no mixing).
pub fn style_mixing_cutoff(num_ws: usize, prob: f32, rng: &mut impl rand::Rng) -> usize {
    if num_ws < 2 {
        return num_ws;
    }
    let cutoff = rng.random_range(1..num_ws);
    if rng.random::<f32>() < prob {
        cutoff
    } else {
        num_ws
    }
}

/// Mapping with the official training-time style mixing: with probability
/// `prob`, the ws from `cutoff` on come from a second latent (drawn from
/// `rng`, without w_avg update).
pub fn mapping_with_mixing(
    g: &Generator,
    z: &Tensor,
    c: Option<&Tensor>,
    prob: f32,
    update_w_avg: bool,
    rng: &mut crate::Rng,
) -> Result<Tensor> {
    let mut ctx = Ctx::new();
    let ws = g.mapping(z, c, Truncation::default(), update_w_avg, &mut ctx)?;
    if prob <= 0.0 {
        return Ok(ws);
    }
    let cutoff = style_mixing_cutoff(g.num_ws(), prob, rng);
    if cutoff == g.num_ws() {
        return Ok(ws);
    }
    let z2 = Tensor::randn(z.dims().to_vec(), rng, z.device());
    let ws2 = g.mapping(&z2, c, Truncation::default(), false, &mut ctx)?;
    mix_styles(&ws, &ws2, cutoff)
}
