//! `SynthesisBlock` and `SynthesisNetwork`: ws → image.

use super::config::{Architecture, GeneratorConfig};
use crate::device::Device;
use crate::error::{invalid, shape_err, Result};
use crate::nn::mixed::{add_as, block_dtype};
use crate::nn::{
    join, param, resample_filter, Activation, Conv2dLayer, Ctx, Kind, Module, NoiseMode,
    SynthesisLayer, ToRgb, FIR_TAPS,
};
use crate::ops::modconv::ModConvPath;
use crate::ops::precision::Precision;
use crate::ops::upfirdn::upsample2d;
use crate::tensor::Tensor;

/// One resolution of the synthesis network (official `SynthesisBlock`).
pub struct SynthesisBlock {
    /// 0 for the first (4×4) block, which starts from `const`.
    pub in_channels: usize,
    pub out_channels: usize,
    pub resolution: usize,
    pub img_channels: usize,
    pub is_last: bool,
    pub architecture: Architecture,
    /// `[4, 4]` buffer (image upsampling).
    pub resample_filter: Tensor,
    /// `[C, 4, 4]` learned input of the first block, init N(0,1).
    pub const_input: Option<Tensor>,
    /// Upsampling layer (all blocks but the first).
    pub conv0: Option<SynthesisLayer>,
    pub conv1: SynthesisLayer,
    /// With 'skip', and on the last block.
    pub torgb: Option<ToRgb>,
    /// With 'resnet', all blocks but the first: 1×1 up 2, no bias.
    pub skip: Option<Conv2dLayer>,
    /// Official `use_fp16`: one of the top `num_fp16_res` resolutions, whose
    /// activations are F16 on devices that run kernels (see `nn::mixed`).
    pub use_fp16: bool,
}

impl SynthesisBlock {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        w_dim: usize,
        resolution: usize,
        img_channels: usize,
        is_last: bool,
        architecture: Architecture,
        conv_clamp: Option<f32>,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> SynthesisBlock {
        let const_input = (in_channels == 0).then(|| {
            param(Tensor::randn(
                vec![out_channels, resolution, resolution],
                rng,
                device,
            ))
        });
        let conv0 = (in_channels != 0).then(|| {
            SynthesisLayer::new(
                in_channels,
                out_channels,
                w_dim,
                resolution,
                2,
                true,
                conv_clamp,
                rng,
                device,
            )
        });
        let conv1 = SynthesisLayer::new(
            out_channels,
            out_channels,
            w_dim,
            resolution,
            1,
            true,
            conv_clamp,
            rng,
            device,
        );
        let torgb = (is_last || architecture == Architecture::Skip)
            .then(|| ToRgb::new(out_channels, img_channels, w_dim, conv_clamp, rng, device));
        let skip = (in_channels != 0 && architecture == Architecture::Resnet).then(|| {
            Conv2dLayer::new(
                in_channels,
                out_channels,
                1,
                false,
                Activation::Linear,
                2,
                1,
                None,
                true,
                rng,
                device,
            )
        });
        SynthesisBlock {
            in_channels,
            out_channels,
            resolution,
            img_channels,
            is_last,
            architecture,
            resample_filter: resample_filter(&FIR_TAPS, device),
            const_input,
            conv0,
            conv1,
            torgb,
            skip,
            use_fp16: false,
        }
    }

    /// Number of synthesis layers (each reads one w).
    pub fn num_conv(&self) -> usize {
        1 + self.conv0.is_some() as usize
    }

    /// Number of ToRGB layers (0 or 1; reads the w of the next block's conv0).
    pub fn num_torgb(&self) -> usize {
        self.torgb.is_some() as usize
    }
}

impl Module for SynthesisBlock {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        if let Some(c) = &self.const_input {
            f(join(prefix, "const"), c, Kind::Param);
        }
        f(
            join(prefix, "resample_filter"),
            &self.resample_filter,
            Kind::Buffer,
        );
        if let Some(l) = &self.conv0 {
            l.visit(&join(prefix, "conv0"), f);
        }
        self.conv1.visit(&join(prefix, "conv1"), f);
        if let Some(l) = &self.torgb {
            l.visit(&join(prefix, "torgb"), f);
        }
        if let Some(l) = &self.skip {
            l.visit(&join(prefix, "skip"), f);
        }
    }
}

/// Official `SynthesisNetwork`: blocks `b4 … b{R}`.
pub struct SynthesisNetwork {
    pub w_dim: usize,
    pub img_resolution: usize,
    pub img_channels: usize,
    pub blocks: Vec<SynthesisBlock>,
    /// Number of w vectors read: `2·log2(R) − 2`.
    pub num_ws: usize,
}

impl SynthesisNetwork {
    pub fn new(
        cfg: &GeneratorConfig,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> SynthesisNetwork {
        let mut blocks = Vec::new();
        let mut num_ws = 0;
        for res in cfg.block_resolutions() {
            let in_channels = if res > 4 { cfg.channels(res / 2) } else { 0 };
            let is_last = res == cfg.img_resolution;
            let block = SynthesisBlock::new(
                in_channels,
                cfg.channels(res),
                cfg.w_dim,
                res,
                cfg.img_channels,
                is_last,
                cfg.architecture,
                cfg.conv_clamp,
                rng,
                device,
            );
            let block = SynthesisBlock {
                use_fp16: cfg.use_fp16(res),
                ..block
            };
            num_ws += block.num_conv();
            if is_last {
                num_ws += block.num_torgb();
            }
            blocks.push(block);
        }
        SynthesisNetwork {
            w_dim: cfg.w_dim,
            img_resolution: cfg.img_resolution,
            img_channels: cfg.img_channels,
            blocks,
            num_ws,
        }
    }
}

impl Module for SynthesisNetwork {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        for b in &self.blocks {
            b.visit(&join(prefix, &format!("b{}", b.resolution)), f);
        }
    }
}

/// How the synthesis network runs: noise source, modulated-conv path and
/// the operand precision of the fused path (`F32` by default: exact).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SynthesisOptions {
    pub noise_mode: NoiseMode,
    pub path: ModConvPath,
    pub precision: Precision,
}

impl SynthesisOptions {
    pub fn noise(noise_mode: NoiseMode) -> SynthesisOptions {
        SynthesisOptions {
            noise_mode,
            ..Default::default()
        }
    }
}

/// `ws[:, i]` as `[N, w_dim]`.
fn w_row(ws: &Tensor, i: usize) -> Result<Tensor> {
    let (n, d) = (ws.dims()[0], ws.dims()[2]);
    ws.narrow(1, i, 1)?.reshape(vec![n, d])
}

impl SynthesisBlock {
    /// One block: `x` (None for the first), `img` (None before the first
    /// ToRGB), `ws [N, num_conv + num_torgb, w_dim]` → `(x, img)`. An FP16
    /// block (`use_fp16`, on a device that runs kernels, without
    /// `ctx.force_fp32`) returns `x` as F16; `img` is always F32.
    pub fn forward(
        &self,
        x: Option<&Tensor>,
        img: Option<&Tensor>,
        ws: &Tensor,
        opts: SynthesisOptions,
        ctx: &mut Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        const OP: &str = "SynthesisBlock";
        let n = ws.dims()[0];
        let dtype = block_dtype(self.use_fp16, ws.device(), ctx.force_fp32);
        let half = self.resolution / 2;
        let mut wi = 0;
        let mut next_w = || {
            wi += 1;
            w_row(ws, wi - 1)
        };
        let sqrt_half = 0.5f32.sqrt();
        let layer =
            |l: &SynthesisLayer, name: &str, x: &Tensor, w: &Tensor, gain: f32, ctx: &mut Ctx| {
                ctx.enter(name);
                let y = l.forward(x, w, opts.noise_mode, opts.path, opts.precision, gain, ctx);
                if let Ok(y) = &y {
                    ctx.record("", y);
                }
                ctx.leave();
                y
            };
        let x = match (&self.const_input, &self.conv0) {
            (Some(c), _) => {
                let x = c
                    .unsqueeze(0)?
                    .broadcast_to(
                        &vec![n, self.out_channels, self.resolution, self.resolution].into(),
                    )?
                    .to_dtype(dtype)?;
                layer(&self.conv1, "conv1", &x, &next_w()?, 1.0, ctx)?
            }
            (None, Some(conv0)) => {
                let Some(x) = x else {
                    return invalid(OP, format!("block b{} needs the input x", self.resolution));
                };
                if x.dims() != [n, self.in_channels, half, half] {
                    return shape_err(
                        OP,
                        format!(
                            "input {} is not [{n}, {}, {half}, {half}]",
                            x.shape(),
                            self.in_channels
                        ),
                    );
                }
                let x = &x.to_dtype(dtype)?;
                match &self.skip {
                    Some(skip) => {
                        ctx.enter("skip");
                        let y = skip.forward(x, sqrt_half)?;
                        ctx.record("", &y);
                        ctx.leave();
                        let h = layer(conv0, "conv0", x, &next_w()?, 1.0, ctx)?;
                        let h = layer(&self.conv1, "conv1", &h, &next_w()?, sqrt_half, ctx)?;
                        add_as(&y, &h, dtype)?
                    }
                    None => {
                        let h = layer(conv0, "conv0", x, &next_w()?, 1.0, ctx)?;
                        layer(&self.conv1, "conv1", &h, &next_w()?, 1.0, ctx)?
                    }
                }
            }
            (None, None) => return Err(crate::Error::Internal("block without input".into())),
        };
        let mut img = match img {
            Some(img) => {
                if img.dims() != [n, self.img_channels, half, half] {
                    return shape_err(
                        OP,
                        format!(
                            "image {} is not [{n}, {}, {half}, {half}]",
                            img.shape(),
                            self.img_channels
                        ),
                    );
                }
                Some(upsample2d(img, &self.resample_filter, 2, 1.0)?)
            }
            None => None,
        };
        if let Some(torgb) = &self.torgb {
            ctx.enter("torgb");
            let y = torgb.forward(&x, &next_w()?, opts.path, opts.precision, ctx)?;
            ctx.record("", &y);
            ctx.leave();
            img = Some(match img {
                Some(i) => i.add(&y)?,
                None => y,
            });
        }
        if let Some(i) = &img {
            ctx.record("img", i);
        }
        Ok((x, img))
    }
}

impl SynthesisNetwork {
    /// `ws [N, num_ws, w_dim]` → image `[N, img_channels, R, R]`. Block r
    /// reads `ws[:, k .. k + num_conv + num_torgb]` and advances k by
    /// num_conv, so a ToRGB shares its w with the next block's conv0.
    pub fn forward(&self, ws: &Tensor, opts: SynthesisOptions, ctx: &mut Ctx) -> Result<Tensor> {
        if ws.rank() != 3 || ws.dims()[1] != self.num_ws || ws.dims()[2] != self.w_dim {
            return shape_err(
                "SynthesisNetwork",
                format!(
                    "ws {} is not [N, {}, {}]",
                    ws.shape(),
                    self.num_ws,
                    self.w_dim
                ),
            );
        }
        let mut w_idx = 0;
        let mut x: Option<Tensor> = None;
        let mut img: Option<Tensor> = None;
        for b in &self.blocks {
            let k = b.num_conv() + b.num_torgb();
            let bws = ws.narrow(1, w_idx, k)?;
            w_idx += b.num_conv();
            ctx.enter(&format!("b{}", b.resolution));
            let out = b.forward(x.as_ref(), img.as_ref(), &bws, opts, ctx);
            ctx.leave();
            let (nx, nimg) = out?;
            x = Some(nx);
            img = nimg;
        }
        img.ok_or_else(|| crate::Error::Internal("synthesis produced no image".into()))
    }
}
