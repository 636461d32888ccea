//! `Discriminator`: blocks `b{R} … b8` and the 4×4 epilogue `b4`.

use super::config::{Architecture, DiscriminatorConfig};
use super::mapping::{MappingNetwork, Truncation};
use crate::device::Device;
use crate::error::{invalid, shape_err, Result};
use crate::nn::mixed::{add_as, block_dtype};
use crate::nn::{
    join, resample_filter, Activation, Conv2dLayer, Ctx, FullyConnected, Kind, MinibatchStd,
    Module, FIR_TAPS,
};
use crate::ops::precision::Precision;
use crate::ops::upfirdn::downsample2d;
use crate::tensor::{DType, Tensor};

/// One resolution of the discriminator (official `DiscriminatorBlock`).
pub struct DiscriminatorBlock {
    /// 0 for the first (highest-resolution) block, which reads the image.
    pub in_channels: usize,
    pub tmp_channels: usize,
    pub out_channels: usize,
    pub resolution: usize,
    pub img_channels: usize,
    pub architecture: Architecture,
    /// `[4, 4]` buffer (image downsampling with 'skip').
    pub resample_filter: Tensor,
    /// 1×1 lrelu; on the first block, and on every block with 'skip'.
    pub fromrgb: Option<Conv2dLayer>,
    /// 3×3 lrelu.
    pub conv0: Conv2dLayer,
    /// 3×3 lrelu, down 2.
    pub conv1: Conv2dLayer,
    /// With 'resnet': 1×1 down 2, no bias, linear.
    pub skip: Option<Conv2dLayer>,
    /// Official `use_fp16`: one of the top `num_fp16_res` resolutions, whose
    /// activations are F16 on devices that run kernels (see `nn::mixed`).
    pub use_fp16: bool,
}

impl DiscriminatorBlock {
    /// `layer_idx` counts the conv layers before this block (Freeze-D).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        tmp_channels: usize,
        out_channels: usize,
        resolution: usize,
        img_channels: usize,
        architecture: Architecture,
        conv_clamp: Option<f32>,
        layer_idx: &mut usize,
        freeze_layers: usize,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> DiscriminatorBlock {
        let mut trainable = || {
            let t = *layer_idx >= freeze_layers;
            *layer_idx += 1;
            t
        };
        let fromrgb = (in_channels == 0 || architecture == Architecture::Skip).then(|| {
            let tr = trainable();
            Conv2dLayer::new(
                img_channels,
                tmp_channels,
                1,
                true,
                Activation::Lrelu,
                1,
                1,
                conv_clamp,
                tr,
                rng,
                device,
            )
        });
        let tr = trainable();
        let conv0 = Conv2dLayer::new(
            tmp_channels,
            tmp_channels,
            3,
            true,
            Activation::Lrelu,
            1,
            1,
            conv_clamp,
            tr,
            rng,
            device,
        );
        let tr = trainable();
        let conv1 = Conv2dLayer::new(
            tmp_channels,
            out_channels,
            3,
            true,
            Activation::Lrelu,
            1,
            2,
            conv_clamp,
            tr,
            rng,
            device,
        );
        let skip = (architecture == Architecture::Resnet).then(|| {
            let tr = trainable();
            Conv2dLayer::new(
                tmp_channels,
                out_channels,
                1,
                false,
                Activation::Linear,
                1,
                2,
                None,
                tr,
                rng,
                device,
            )
        });
        DiscriminatorBlock {
            in_channels,
            tmp_channels,
            out_channels,
            resolution,
            img_channels,
            architecture,
            resample_filter: resample_filter(&FIR_TAPS, device),
            fromrgb,
            conv0,
            conv1,
            skip,
            use_fp16: false,
        }
    }
}

impl Module for DiscriminatorBlock {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        f(
            join(prefix, "resample_filter"),
            &self.resample_filter,
            Kind::Buffer,
        );
        if let Some(l) = &self.fromrgb {
            l.visit(&join(prefix, "fromrgb"), f);
        }
        self.conv0.visit(&join(prefix, "conv0"), f);
        self.conv1.visit(&join(prefix, "conv1"), f);
        if let Some(l) = &self.skip {
            l.visit(&join(prefix, "skip"), f);
        }
    }
}

/// The 4×4 end of the discriminator (official `DiscriminatorEpilogue`):
/// minibatch std, 3×3 conv, fc, out (and the label projection).
pub struct DiscriminatorEpilogue {
    pub in_channels: usize,
    pub cmap_dim: usize,
    pub resolution: usize,
    pub img_channels: usize,
    pub architecture: Architecture,
    /// With 'skip'.
    pub fromrgb: Option<Conv2dLayer>,
    pub mbstd: Option<MinibatchStd>,
    pub conv: Conv2dLayer,
    pub fc: FullyConnected,
    /// `C → 1`, or `C → cmap_dim` with labels.
    pub out: FullyConnected,
}

impl DiscriminatorEpilogue {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        cmap_dim: usize,
        resolution: usize,
        img_channels: usize,
        architecture: Architecture,
        mbstd_group_size: Option<usize>,
        mbstd_num_channels: usize,
        conv_clamp: Option<f32>,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> DiscriminatorEpilogue {
        let fromrgb = (architecture == Architecture::Skip).then(|| {
            Conv2dLayer::new(
                img_channels,
                in_channels,
                1,
                true,
                Activation::Lrelu,
                1,
                1,
                None,
                true,
                rng,
                device,
            )
        });
        let mbstd = (mbstd_num_channels > 0).then_some(MinibatchStd {
            group_size: mbstd_group_size,
            num_channels: mbstd_num_channels,
        });
        let conv = Conv2dLayer::new(
            in_channels + mbstd_num_channels,
            in_channels,
            3,
            true,
            Activation::Lrelu,
            1,
            1,
            conv_clamp,
            true,
            rng,
            device,
        );
        let fc = FullyConnected::new(
            in_channels * resolution * resolution,
            in_channels,
            true,
            Activation::Lrelu,
            1.0,
            0.0,
            rng,
            device,
        );
        let out = FullyConnected::new(
            in_channels,
            if cmap_dim == 0 { 1 } else { cmap_dim },
            true,
            Activation::Linear,
            1.0,
            0.0,
            rng,
            device,
        );
        DiscriminatorEpilogue {
            in_channels,
            cmap_dim,
            resolution,
            img_channels,
            architecture,
            fromrgb,
            mbstd,
            conv,
            fc,
            out,
        }
    }
}

impl Module for DiscriminatorEpilogue {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        if let Some(l) = &self.fromrgb {
            l.visit(&join(prefix, "fromrgb"), f);
        }
        self.conv.visit(&join(prefix, "conv"), f);
        self.fc.visit(&join(prefix, "fc"), f);
        self.out.visit(&join(prefix, "out"), f);
    }
}

/// Official `Discriminator`; state-dict names `b{res}.*`, `mapping.*`, `b4.*`.
pub struct Discriminator {
    pub config: DiscriminatorConfig,
    pub blocks: Vec<DiscriminatorBlock>,
    /// Label mapping `c → cmap` when `c_dim > 0`.
    pub mapping: Option<MappingNetwork>,
    pub b4: DiscriminatorEpilogue,
}

impl Discriminator {
    /// A discriminator with the official initialization, drawn from `rng`.
    pub fn new(
        cfg: &DiscriminatorConfig,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> Result<Discriminator> {
        cfg.validate()?;
        let mut layer_idx = 0;
        let blocks = cfg
            .block_resolutions()
            .into_iter()
            .map(|res| {
                let in_channels = if res < cfg.img_resolution {
                    cfg.channels(res)
                } else {
                    0
                };
                let block = DiscriminatorBlock::new(
                    in_channels,
                    cfg.channels(res),
                    cfg.channels(res / 2),
                    res,
                    cfg.img_channels,
                    cfg.architecture,
                    cfg.conv_clamp,
                    &mut layer_idx,
                    cfg.freeze_layers,
                    rng,
                    device,
                );
                DiscriminatorBlock {
                    use_fp16: cfg.use_fp16(res),
                    ..block
                }
            })
            .collect();
        let cmap_dim = cfg.effective_cmap_dim();
        let mapping = (cfg.c_dim > 0).then(|| {
            MappingNetwork::new(
                0,
                cfg.c_dim,
                cmap_dim,
                None,
                cfg.mapping_layers,
                0.01,
                None,
                rng,
                device,
            )
        });
        let b4 = DiscriminatorEpilogue::new(
            cfg.channels(4),
            cmap_dim,
            4,
            cfg.img_channels,
            cfg.architecture,
            cfg.mbstd_group_size,
            cfg.mbstd_num_channels,
            cfg.conv_clamp,
            rng,
            device,
        );
        Ok(Discriminator {
            config: cfg.clone(),
            blocks,
            mapping,
            b4,
        })
    }
}

impl Module for Discriminator {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        for b in &self.blocks {
            b.visit(&join(prefix, &format!("b{}", b.resolution)), f);
        }
        if let Some(m) = &self.mapping {
            m.visit(&join(prefix, "mapping"), f);
        }
        self.b4.visit(&join(prefix, "b4"), f);
    }
}

impl std::fmt::Debug for Discriminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discriminator")
            .field("config", &self.config)
            .field("num_params", &self.num_params())
            .finish()
    }
}

/// How the discriminator runs: the operand precision of its convolutions
/// (`F32` by default: exact; see [`Precision`] for where the others apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DiscriminatorOptions {
    pub precision: Precision,
}

fn run_conv(
    l: &Conv2dLayer,
    name: &str,
    x: &Tensor,
    gain: f32,
    opts: DiscriminatorOptions,
    ctx: &mut Ctx,
) -> Result<Tensor> {
    ctx.enter(name);
    let y = l.forward_at(x, gain, opts.precision);
    if let Ok(y) = &y {
        ctx.record("", y);
    }
    ctx.leave();
    y
}

impl DiscriminatorBlock {
    /// `x [N, in, res, res]` (None for the first block) and `img [N, C, res, res]`
    /// (needed by the first block and with 'skip') → `(x [N, out, res/2, res/2], img)`.
    /// An FP16 block (`use_fp16`, on a device that runs kernels, without
    /// `ctx.force_fp32`) returns them as F16.
    pub fn forward(
        &self,
        x: Option<&Tensor>,
        img: Option<&Tensor>,
        opts: DiscriminatorOptions,
        ctx: &mut Ctx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        const OP: &str = "DiscriminatorBlock";
        let r = self.resolution;
        if let Some(x) = x {
            if x.rank() != 4 || x.dims()[1..] != [self.in_channels, r, r] {
                return shape_err(
                    OP,
                    format!(
                        "input {} is not [N, {}, {r}, {r}]",
                        x.shape(),
                        self.in_channels
                    ),
                );
            }
        }
        // An FP16 block keeps x (and the image it reads) as F16 (official
        // `x.to(dtype)`, `img.to(dtype)`); its layers compute as `nn::mixed`.
        let device = x.or(img).map_or(Device::Cpu, |t| t.device());
        let dtype = block_dtype(self.use_fp16, device, ctx.force_fp32);
        let mut x = x.map(|x| x.to_dtype(dtype)).transpose()?;
        let mut img_out = None;
        if let Some(fromrgb) = &self.fromrgb {
            let Some(img) = img else {
                return invalid(OP, format!("block b{r} needs the image"));
            };
            if img.rank() != 4 || img.dims()[1..] != [self.img_channels, r, r] {
                return shape_err(
                    OP,
                    format!(
                        "image {} is not [N, {}, {r}, {r}]",
                        img.shape(),
                        self.img_channels
                    ),
                );
            }
            let img = img.to_dtype(dtype)?;
            let y = run_conv(fromrgb, "fromrgb", &img, 1.0, opts, ctx)?;
            x = Some(match x {
                Some(x) => add_as(&x, &y, dtype)?,
                None => y,
            });
            if self.architecture == Architecture::Skip {
                let down = downsample2d(&img.to_dtype(DType::F32)?, &self.resample_filter, 2, 1.0)?;
                img_out = Some(down.to_dtype(dtype)?);
            }
        }
        let Some(x) = x else {
            return invalid(OP, format!("block b{r} needs the input x"));
        };
        let sqrt_half = 0.5f32.sqrt();
        let x = match &self.skip {
            Some(skip) => {
                let y = run_conv(skip, "skip", &x, sqrt_half, opts, ctx)?;
                let h = run_conv(&self.conv0, "conv0", &x, 1.0, opts, ctx)?;
                let h = run_conv(&self.conv1, "conv1", &h, sqrt_half, opts, ctx)?;
                add_as(&y, &h, dtype)?
            }
            None => {
                let h = run_conv(&self.conv0, "conv0", &x, 1.0, opts, ctx)?;
                run_conv(&self.conv1, "conv1", &h, 1.0, opts, ctx)?
            }
        };
        ctx.record("x", &x);
        Ok((x, img_out))
    }
}

impl DiscriminatorEpilogue {
    /// `x [N, C, 4, 4]` → logits `[N, 1]` (projected on `cmap [N, cmap_dim]`
    /// with labels).
    pub fn forward(
        &self,
        x: &Tensor,
        img: Option<&Tensor>,
        cmap: Option<&Tensor>,
        opts: DiscriminatorOptions,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        const OP: &str = "DiscriminatorEpilogue";
        let r = self.resolution;
        if x.rank() != 4 || x.dims()[1..] != [self.in_channels, r, r] {
            return shape_err(
                OP,
                format!(
                    "input {} is not [N, {}, {r}, {r}]",
                    x.shape(),
                    self.in_channels
                ),
            );
        }
        let n = x.dims()[0];
        // The epilogue is FP32 (official `dtype = torch.float32`).
        let mut x = x.to_dtype(DType::F32)?;
        if let Some(fromrgb) = &self.fromrgb {
            let Some(img) = img else {
                return invalid(OP, "the 'skip' epilogue needs the image");
            };
            let img = img.to_dtype(DType::F32)?;
            x = x.add(&run_conv(fromrgb, "fromrgb", &img, 1.0, opts, ctx)?)?;
        }
        if let Some(mbstd) = &self.mbstd {
            x = mbstd.forward(&x)?;
            ctx.record("mbstd", &x);
        }
        let x = run_conv(&self.conv, "conv", &x, 1.0, opts, ctx)?;
        let x = self
            .fc
            .forward(&x.reshape(vec![n, self.in_channels * r * r])?)?;
        ctx.record("fc", &x);
        let mut x = self.out.forward(&x)?;
        ctx.record("out", &x);
        if self.cmap_dim > 0 {
            let Some(cmap) = cmap else {
                return invalid(OP, "a conditional discriminator needs the mapped label");
            };
            if cmap.dims() != [n, self.cmap_dim] {
                return shape_err(
                    OP,
                    format!("cmap {} is not [{n}, {}]", cmap.shape(), self.cmap_dim),
                );
            }
            x = x
                .mul(cmap)?
                .sum(&[1], true)?
                .scale(1.0 / (self.cmap_dim as f32).sqrt())?;
        }
        Ok(x)
    }
}

impl Discriminator {
    /// `D(img, c)`: images `[N, C, R, R]` (and labels `[N, c_dim]` when
    /// `c_dim > 0`) → logits `[N, 1]`.
    pub fn forward(&self, img: &Tensor, c: Option<&Tensor>, ctx: &mut Ctx) -> Result<Tensor> {
        self.forward_with(img, c, DiscriminatorOptions::default(), ctx)
    }

    /// [`Discriminator::forward`] with options (the convolutions' precision).
    pub fn forward_with(
        &self,
        img: &Tensor,
        c: Option<&Tensor>,
        opts: DiscriminatorOptions,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let r = cfg.img_resolution;
        if img.rank() != 4 || img.dims()[1..] != [cfg.img_channels, r, r] {
            return shape_err(
                "Discriminator",
                format!(
                    "images {} are not [N, {}, {r}, {r}]",
                    img.shape(),
                    cfg.img_channels
                ),
            );
        }
        let mut x: Option<Tensor> = None;
        let mut im = Some(img.clone());
        for b in &self.blocks {
            ctx.enter(&format!("b{}", b.resolution));
            let out = b.forward(x.as_ref(), im.as_ref(), opts, ctx);
            ctx.leave();
            let (nx, nim) = out?;
            x = Some(nx);
            im = nim;
        }
        let cmap = match &self.mapping {
            Some(m) => {
                ctx.enter("mapping");
                let cm = m.forward(None, c, Truncation::default(), false, ctx);
                ctx.leave();
                Some(cm?)
            }
            None => None,
        };
        let Some(x) = x else {
            return Err(crate::Error::Internal(
                "discriminator without blocks".into(),
            ));
        };
        ctx.enter("b4");
        let logits = self.b4.forward(&x, im.as_ref(), cmap.as_ref(), opts, ctx);
        if let Ok(l) = &logits {
            ctx.record("", l);
        }
        ctx.leave();
        logits
    }
}
