//! Network configurations with the official StyleGAN2-ADA numbers.
//!
//! A [`ModelConfig`] holds a generator, a discriminator and the training
//! defaults that the official `train.py` pairs with them (`cfg_specs`). It
//! serializes to JSON, which is stored in the metadata of every safetensors
//! file this crate writes, so a file names the networks it holds.
//!
//! The official presets train with mixed precision (`num_fp16_res = 4`) and
//! `conv_clamp = 256`, as official `train.py` sets for every `--cfg`; `tiny`
//! computes in FP32 (`num_fp16_res = 0`, no clamp). The layers of the top
//! `num_fp16_res` resolutions compute in FP16 on devices that run kernels
//! (`Device::Sim`, `Device::Cuda`) and in FP32 on the CPU, as the official
//! code does off CUDA (`use_fp16 and device.type == 'cuda'`).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Block architecture (official `architecture` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// A plain chain of blocks; the generator emits RGB only at the last block.
    Orig,
    /// RGB skip connections: the generator sums upsampled ToRGB outputs, the
    /// discriminator adds FromRGB of the downsampled image at every block.
    Skip,
    /// Residual blocks: a 1×1 resampling skip conv, both branches × √0.5.
    Resnet,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Orig => "orig",
            Architecture::Skip => "skip",
            Architecture::Resnet => "resnet",
        }
    }
}

/// The generator: official `Generator(z_dim, c_dim, w_dim, img_resolution,
/// img_channels, mapping_kwargs, synthesis_kwargs)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    pub z_dim: usize,
    pub c_dim: usize,
    pub w_dim: usize,
    pub img_resolution: usize,
    pub img_channels: usize,
    /// Number of mapping FC layers.
    pub mapping_layers: usize,
    /// Learning-rate multiplier of the mapping layers (official 0.01).
    pub mapping_lr_multiplier: f32,
    /// Decay of the tracked average of w (official 0.995).
    pub w_avg_beta: f32,
    /// Channels at resolution r: `min(channel_base / r, channel_max)`.
    pub channel_base: usize,
    pub channel_max: usize,
    /// Clamp of the synthesis layer outputs (±conv_clamp·gain); `None` = off.
    pub conv_clamp: Option<f32>,
    pub architecture: Architecture,
    /// Official `num_fp16_res`: the blocks of the highest `num_fp16_res`
    /// resolutions (never below 8×8) compute in FP16 on devices that run
    /// kernels. Files written before this field existed read as 0: they
    /// were trained and saved by FP32 code, and 0 keeps their numerics.
    #[serde(default)]
    pub num_fp16_res: usize,
}

/// The smallest `img_resolution` of a discriminator: its 4×4 epilogue
/// follows at least one block (the official `Discriminator`'s `b4` takes
/// the channels of the block above it).
pub const MIN_DISCRIMINATOR_RESOLUTION: usize = 8;

/// The discriminator: official `Discriminator(c_dim, img_resolution,
/// img_channels, architecture, channel_base, channel_max, conv_clamp,
/// cmap_dim, block_kwargs, mapping_kwargs, epilogue_kwargs)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscriminatorConfig {
    pub c_dim: usize,
    pub img_resolution: usize,
    pub img_channels: usize,
    pub architecture: Architecture,
    pub channel_base: usize,
    pub channel_max: usize,
    pub conv_clamp: Option<f32>,
    /// Official `num_fp16_res` of the discriminator (see
    /// [`GeneratorConfig::num_fp16_res`]; old files read as 0).
    #[serde(default)]
    pub num_fp16_res: usize,
    /// Dimension of the mapped label; `None` = channels at 4×4 (official default).
    pub cmap_dim: Option<usize>,
    /// Minibatch-std group size (`min(group, N)` at run time); `None` = whole batch.
    pub mbstd_group_size: Option<usize>,
    /// Minibatch-std feature maps; 0 disables the layer.
    pub mbstd_num_channels: usize,
    /// Layers of the label mapping network (used when `c_dim > 0`; official 8).
    pub mapping_layers: usize,
    /// Freeze-D: the first `freeze_layers` conv layers are buffers, not parameters.
    pub freeze_layers: usize,
}

/// Training defaults of a preset (official `cfg_specs`, one GPU's view).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingDefaults {
    /// Total batch size.
    pub batch: usize,
    /// Training length in thousands of real images shown: the preset's
    /// (official `cfg_specs`), or in a training snapshot the run's
    /// `--kimg` (fractional for short runs; older files hold integers).
    pub kimg: f64,
    /// Adam learning rate of G, and of D unless `dlr` is set.
    pub lr: f32,
    /// Adam learning rate of D when it differs from `lr` (not an official
    /// preset field: only `tiny` sets it); absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlr: Option<f32>,
    pub r1_gamma: f32,
    /// G EMA half-life in thousands of images.
    pub ema_kimg: f32,
    /// EMA ramp-up (fraction of images seen); `None` = off.
    pub ema_rampup: Option<f32>,
    pub pl_weight: f32,
    pub style_mixing_prob: f32,
    /// Random noise into G's synthesis layers while training (official:
    /// always). Without, the noise strengths get no gradient and stay 0
    /// (only `tiny` turns it off); absent in older files: on.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub noise: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// A generator, a discriminator and the training defaults of a preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The preset this configuration came from (informative).
    pub preset: String,
    pub generator: GeneratorConfig,
    pub discriminator: DiscriminatorConfig,
    pub training: TrainingDefaults,
}

/// The preset names `ModelConfig::preset` accepts.
pub const PRESETS: &[&str] = &[
    "auto",
    "stylegan2",
    "paper256",
    "paper512",
    "paper1024",
    "cifar",
    "tiny",
];

fn is_pow2_res(r: usize) -> bool {
    r >= 4 && r.is_power_of_two()
}

fn bad(msg: String) -> Error {
    Error::Invalid { op: "config", msg }
}

/// Official `cfg_specs` entry.
struct Spec {
    kimg: usize,
    mb: usize,
    mbstd: usize,
    fmaps: f64,
    lrate: f32,
    gamma: f32,
    ema: f32,
    ramp: Option<f32>,
    map: usize,
}

impl ModelConfig {
    /// A preset by name (see [`PRESETS`]) for images of `resolution`² with
    /// `img_channels` channels and `c_dim` label dimensions. `auto` assumes
    /// one GPU (see [`ModelConfig::auto`]).
    pub fn preset(
        name: &str,
        resolution: usize,
        img_channels: usize,
        c_dim: usize,
    ) -> Result<ModelConfig> {
        let spec = match name {
            "auto" => return ModelConfig::auto(resolution, img_channels, c_dim, 1),
            "tiny" => return ModelConfig::tiny(resolution, img_channels, c_dim),
            "stylegan2" => Spec {
                kimg: 25000,
                mb: 32,
                mbstd: 4,
                fmaps: 1.0,
                lrate: 0.002,
                gamma: 10.0,
                ema: 10.0,
                ramp: None,
                map: 8,
            },
            "paper256" => Spec {
                kimg: 25000,
                mb: 64,
                mbstd: 8,
                fmaps: 0.5,
                lrate: 0.0025,
                gamma: 1.0,
                ema: 20.0,
                ramp: None,
                map: 8,
            },
            "paper512" => Spec {
                kimg: 25000,
                mb: 64,
                mbstd: 8,
                fmaps: 1.0,
                lrate: 0.0025,
                gamma: 0.5,
                ema: 20.0,
                ramp: None,
                map: 8,
            },
            "paper1024" => Spec {
                kimg: 25000,
                mb: 32,
                mbstd: 4,
                fmaps: 1.0,
                lrate: 0.002,
                gamma: 2.0,
                ema: 10.0,
                ramp: None,
                map: 8,
            },
            "cifar" => Spec {
                kimg: 100000,
                mb: 64,
                mbstd: 32,
                fmaps: 1.0,
                lrate: 0.0025,
                gamma: 0.01,
                ema: 500.0,
                ramp: Some(0.05),
                map: 2,
            },
            other => {
                return Err(bad(format!(
                    "unknown preset '{other}': expected one of {}",
                    PRESETS.join(", ")
                )))
            }
        };
        let mut cfg = ModelConfig::from_spec(name, &spec, resolution, img_channels, c_dim);
        if name == "cifar" {
            // Official: no path length regularization, no style mixing, plain D.
            cfg.training.pl_weight = 0.0;
            cfg.training.style_mixing_prob = 0.0;
            cfg.discriminator.architecture = Architecture::Orig;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Official `cfg_specs['auto']`: hyperparameters from the resolution and
    /// the number of GPUs (`batch = max(min(gpus·min(4096/res, 32), 64), gpus)`,
    /// `mbstd = min(batch/gpus, 4)`, half the feature maps below 512²,
    /// `γ = 0.0002·res²/batch`, EMA `batch·10/32` kimg).
    pub fn auto(
        resolution: usize,
        img_channels: usize,
        c_dim: usize,
        gpus: usize,
    ) -> Result<ModelConfig> {
        if !is_pow2_res(resolution) {
            return Err(bad(format!(
                "resolution {resolution} must be a power of two ≥ 4"
            )));
        }
        if gpus == 0 {
            return Err(bad("gpus must be ≥ 1".into()));
        }
        let mb = (gpus * (4096 / resolution).min(32)).min(64).max(gpus);
        let spec = Spec {
            kimg: 25000,
            mb,
            mbstd: (mb / gpus).min(4),
            fmaps: if resolution >= 512 { 1.0 } else { 0.5 },
            lrate: if resolution >= 1024 { 0.002 } else { 0.0025 },
            gamma: (0.0002 * (resolution * resolution) as f64 / mb as f64) as f32,
            ema: mb as f32 * 10.0 / 32.0,
            ramp: Some(0.05),
            map: 2,
        };
        let cfg = ModelConfig::from_spec("auto", &spec, resolution, img_channels, c_dim);
        cfg.validate()?;
        Ok(cfg)
    }

    /// A small, fast configuration for CPU demos and tests; at 32×32 its
    /// networks are exactly the golden `sg2_small_a` model (z = w = 64, 2
    /// mapping layers, channel_base 1024, channel_max 64, no clamp, mbstd
    /// group 4).
    ///
    /// Training, chosen on the synthetic demo (README, "The two
    /// commands"): batch 16, R1 γ = 1, G lr 0.0025 and D lr 0.0015, no
    /// path-length regularization and no style mixing (as the official
    /// `cifar` preset), no training noise. Measured: at D lr 0.0025 D won
    /// (D loss toward 0.45) and G answered with speckle from its noise
    /// inputs and stripes; at D lr 0.001 G collapsed to one shape; random
    /// noise only added speckle to the flat shapes.
    pub fn tiny(resolution: usize, img_channels: usize, c_dim: usize) -> Result<ModelConfig> {
        let spec = Spec {
            kimg: 1000,
            mb: 16,
            mbstd: 4,
            fmaps: 1024.0 / 32768.0,
            lrate: 0.0025,
            gamma: 1.0,
            ema: 2.5,
            ramp: Some(0.05),
            map: 2,
        };
        let mut cfg = ModelConfig::from_spec("tiny", &spec, resolution, img_channels, c_dim);
        cfg.generator.z_dim = 64;
        cfg.generator.w_dim = 64;
        for (base, max) in [
            (
                &mut cfg.generator.channel_base,
                &mut cfg.generator.channel_max,
            ),
            (
                &mut cfg.discriminator.channel_base,
                &mut cfg.discriminator.channel_max,
            ),
        ] {
            *base = 1024;
            *max = 64;
        }
        cfg.generator.conv_clamp = None;
        cfg.discriminator.conv_clamp = None;
        cfg.generator.num_fp16_res = 0;
        cfg.discriminator.num_fp16_res = 0;
        let t = &mut cfg.training;
        t.dlr = Some(0.0015);
        t.pl_weight = 0.0;
        t.style_mixing_prob = 0.0;
        t.noise = false;
        cfg.validate()?;
        Ok(cfg)
    }

    fn from_spec(
        name: &str,
        s: &Spec,
        resolution: usize,
        img_channels: usize,
        c_dim: usize,
    ) -> ModelConfig {
        let channel_base = (s.fmaps * 32768.0) as usize;
        ModelConfig {
            preset: name.to_string(),
            generator: GeneratorConfig {
                z_dim: 512,
                c_dim,
                w_dim: 512,
                img_resolution: resolution,
                img_channels,
                mapping_layers: s.map,
                mapping_lr_multiplier: 0.01,
                w_avg_beta: 0.995,
                channel_base,
                channel_max: 512,
                conv_clamp: Some(256.0),
                architecture: Architecture::Skip,
                num_fp16_res: 4,
            },
            discriminator: DiscriminatorConfig {
                c_dim,
                img_resolution: resolution,
                img_channels,
                architecture: Architecture::Resnet,
                channel_base,
                channel_max: 512,
                conv_clamp: Some(256.0),
                num_fp16_res: 4,
                cmap_dim: None,
                mbstd_group_size: Some(s.mbstd),
                mbstd_num_channels: 1,
                mapping_layers: 8,
                freeze_layers: 0,
            },
            training: TrainingDefaults {
                batch: s.mb,
                kimg: s.kimg as f64,
                lr: s.lrate,
                dlr: None,
                r1_gamma: s.gamma,
                ema_kimg: s.ema,
                ema_rampup: s.ramp,
                pl_weight: 2.0,
                style_mixing_prob: 0.9,
                noise: true,
            },
        }
    }

    /// Fails with a message naming the first inconsistent field.
    pub fn validate(&self) -> Result<()> {
        self.generator.validate()?;
        self.discriminator.validate()?;
        let (g, d) = (&self.generator, &self.discriminator);
        if g.img_resolution != d.img_resolution
            || g.img_channels != d.img_channels
            || g.c_dim != d.c_dim
        {
            return Err(bad(format!(
                "generator ({}², {} channels, c_dim {}) and discriminator ({}², {} channels, c_dim {}) disagree",
                g.img_resolution, g.img_channels, g.c_dim, d.img_resolution, d.img_channels, d.c_dim
            )));
        }
        if self.training.batch == 0 {
            return Err(bad("training.batch must be ≥ 1".into()));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::Internal(format!("config to JSON: {e}")))
    }

    /// Parses and validates a configuration.
    pub fn from_json(s: &str) -> Result<ModelConfig> {
        let cfg: ModelConfig =
            serde_json::from_str(s).map_err(|e| Error::Io(format!("model config JSON: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Official `fp16_resolution = max(2^(log2(R) + 1 − num_fp16_res), 8)`: the
/// blocks at this resolution and above use FP16 (none when `num_fp16_res` is 0).
pub fn fp16_resolution(img_resolution: usize, num_fp16_res: usize) -> usize {
    if num_fp16_res == 0 {
        return usize::MAX;
    }
    let log2 = img_resolution.trailing_zeros() as usize;
    let e = (log2 + 1).saturating_sub(num_fp16_res);
    (1usize << e).max(8)
}

impl ModelConfig {
    /// Official `train.py --fp32`: no FP16 layers and no activation clamp in
    /// either network.
    pub fn set_fp32(&mut self) {
        self.generator.num_fp16_res = 0;
        self.discriminator.num_fp16_res = 0;
        self.generator.conv_clamp = None;
        self.discriminator.conv_clamp = None;
    }
}

/// Official `channels_dict`: `min(channel_base / res, channel_max)`.
pub fn channels_at(channel_base: usize, channel_max: usize, res: usize) -> usize {
    (channel_base / res).min(channel_max)
}

fn check_common(
    what: &str,
    res: usize,
    img_channels: usize,
    channel_base: usize,
    channel_max: usize,
    conv_clamp: Option<f32>,
) -> Result<()> {
    if !is_pow2_res(res) {
        return Err(bad(format!(
            "{what}.img_resolution {res} must be a power of two ≥ 4"
        )));
    }
    if img_channels == 0 {
        return Err(bad(format!("{what}.img_channels must be ≥ 1")));
    }
    if channel_max == 0 || channels_at(channel_base, channel_max, res) == 0 {
        return Err(bad(format!(
            "{what}: channel_base {channel_base} / channel_max {channel_max} give 0 channels at {res}²"
        )));
    }
    if let Some(c) = conv_clamp {
        if !(c.is_finite() && c > 0.0) {
            return Err(bad(format!("{what}.conv_clamp {c} must be positive")));
        }
    }
    Ok(())
}

impl GeneratorConfig {
    /// Number of w vectors the synthesis network reads: `2·log2(R) − 2`.
    pub fn num_ws(&self) -> usize {
        2 * self.img_resolution.trailing_zeros() as usize - 2
    }

    /// Block resolutions 4, 8, …, R.
    pub fn block_resolutions(&self) -> Vec<usize> {
        (2..=self.img_resolution.trailing_zeros())
            .map(|i| 1usize << i)
            .collect()
    }

    pub fn channels(&self, res: usize) -> usize {
        channels_at(self.channel_base, self.channel_max, res)
    }

    /// Whether the block at `res` is an FP16 block (official `use_fp16`).
    pub fn use_fp16(&self, res: usize) -> bool {
        res >= fp16_resolution(self.img_resolution, self.num_fp16_res)
    }

    pub fn validate(&self) -> Result<()> {
        check_common(
            "generator",
            self.img_resolution,
            self.img_channels,
            self.channel_base,
            self.channel_max,
            self.conv_clamp,
        )?;
        if self.w_dim == 0 {
            return Err(bad("generator.w_dim must be ≥ 1".into()));
        }
        if self.z_dim == 0 && self.c_dim == 0 {
            return Err(bad("generator needs z_dim > 0 or c_dim > 0".into()));
        }
        if self.mapping_layers == 0 {
            return Err(bad("generator.mapping_layers must be ≥ 1".into()));
        }
        if !(self.mapping_lr_multiplier.is_finite() && self.mapping_lr_multiplier > 0.0) {
            return Err(bad(format!(
                "generator.mapping_lr_multiplier {} must be positive",
                self.mapping_lr_multiplier
            )));
        }
        if !(0.0..=1.0).contains(&self.w_avg_beta) {
            return Err(bad(format!(
                "generator.w_avg_beta {} must lie in [0, 1]",
                self.w_avg_beta
            )));
        }
        Ok(())
    }
}

impl DiscriminatorConfig {
    /// The layers Freeze-D counts (official `DiscriminatorBlock`'s
    /// `layer_idx`): per block from the highest resolution, fromrgb (first
    /// block, or every block with 'skip'), conv0, conv1 and, with
    /// 'resnet', skip. `freeze_layers` at or above it freezes every block;
    /// the 4×4 epilogue always trains.
    pub fn freezable_layers(&self) -> usize {
        let blocks = self.block_resolutions().len();
        let fromrgb = if self.architecture == Architecture::Skip {
            blocks
        } else {
            blocks.min(1)
        };
        let skip = if self.architecture == Architecture::Resnet {
            blocks
        } else {
            0
        };
        fromrgb + 2 * blocks + skip
    }

    /// Block resolutions R, R/2, …, 8 (the 4×4 epilogue is separate).
    pub fn block_resolutions(&self) -> Vec<usize> {
        (3..=self.img_resolution.trailing_zeros())
            .rev()
            .map(|i| 1usize << i)
            .collect()
    }

    pub fn channels(&self, res: usize) -> usize {
        channels_at(self.channel_base, self.channel_max, res)
    }

    /// Whether the block at `res` is an FP16 block (official `use_fp16`).
    pub fn use_fp16(&self, res: usize) -> bool {
        res >= fp16_resolution(self.img_resolution, self.num_fp16_res)
    }

    /// The mapped-label dimension actually used (0 without labels).
    pub fn effective_cmap_dim(&self) -> usize {
        if self.c_dim == 0 {
            0
        } else {
            self.cmap_dim.unwrap_or_else(|| self.channels(4))
        }
    }

    pub fn validate(&self) -> Result<()> {
        check_common(
            "discriminator",
            self.img_resolution,
            self.img_channels,
            self.channel_base,
            self.channel_max,
            self.conv_clamp,
        )?;
        if self.img_resolution < MIN_DISCRIMINATOR_RESOLUTION {
            return Err(bad(format!(
                "discriminator.img_resolution {} must be ≥ {MIN_DISCRIMINATOR_RESOLUTION} (the 4×4 epilogue follows at least one block)",
                self.img_resolution
            )));
        }
        if self.mbstd_group_size == Some(0) {
            return Err(bad(
                "discriminator.mbstd_group_size must be ≥ 1 (or null for the whole batch)".into(),
            ));
        }
        if self.mbstd_num_channels > 0 && !self.channels(4).is_multiple_of(self.mbstd_num_channels)
        {
            return Err(bad(format!(
                "discriminator: {} channels at 4×4 are not divisible by mbstd_num_channels {}",
                self.channels(4),
                self.mbstd_num_channels
            )));
        }
        if self.c_dim > 0 && (self.mapping_layers == 0 || self.effective_cmap_dim() == 0) {
            return Err(bad(
                "discriminator: a conditional D needs mapping_layers ≥ 1 and cmap_dim ≥ 1".into(),
            ));
        }
        Ok(())
    }
}
