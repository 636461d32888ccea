//! `SynthesisBlock` and `SynthesisNetwork`: ws → image.

use super::config::{Architecture, GeneratorConfig};
use crate::device::Device;
use crate::nn::{
    join, param, resample_filter, Activation, Conv2dLayer, Kind, Module, SynthesisLayer, ToRgb,
    FIR_TAPS,
};
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
