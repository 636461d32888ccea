//! Adaptive discriminator augmentation (ADA): the augment pipeline of the
//! official StyleGAN2-ADA (`training/augment.py`, Karras et al. 2020,
//! "Training Generative Adversarial Networks with Limited Data") and the
//! controller that adapts its probability `p` (`ada`).
//!
//! - `AugmentPipe`: the probability multipliers and parameter ranges of each
//!   transformation, with the official presets (`AugmentPipe::preset`).
//! - `AugmentPipe::draw`: per-sample random parameters (`SampleParams`) with
//!   the official distributions, from the crate's seeded `Rng`.
//! - `AugmentPipe::apply` (in `apply.rs`): runs the transformations with
//!   given parameters, differentiable w.r.t. the images to every order
//!   (R1 differentiates D's input through it twice).
//!
//! Every transformation's parameters are constants of the graph: only the
//! images are differentiated, as in the official code.

pub mod ada;
mod apply;
mod matrix;
pub mod preview;

pub use ada::{AdaController, AdaState, AugMode};

use crate::error::{Error, Result};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

/// Probability multipliers (0 disables a transformation) and parameter
/// ranges of the pipeline; the field names and defaults are the official
/// `AugmentPipe.__init__` arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentPipe {
    // Pixel blitting.
    pub xflip: f32,
    pub rotate90: f32,
    pub xint: f32,
    /// Range of integer translation, relative to the image size.
    pub xint_max: f32,
    // General geometric transformations.
    pub scale: f32,
    pub rotate: f32,
    pub aniso: f32,
    pub xfrac: f32,
    /// Log2 standard deviation of isotropic scaling.
    pub scale_std: f32,
    /// Range of arbitrary rotation, 1 = full circle.
    pub rotate_max: f32,
    /// Log2 standard deviation of anisotropic scaling.
    pub aniso_std: f32,
    /// Standard deviation of fractional translation, relative to the image size.
    pub xfrac_std: f32,
    // Colour transformations.
    pub brightness: f32,
    pub contrast: f32,
    pub lumaflip: f32,
    pub hue: f32,
    pub saturation: f32,
    pub brightness_std: f32,
    /// Log2 standard deviation of contrast.
    pub contrast_std: f32,
    /// Range of hue rotation, 1 = full circle.
    pub hue_max: f32,
    /// Log2 standard deviation of saturation.
    pub saturation_std: f32,
    // Image-space filtering.
    pub imgfilter: f32,
    /// Probability multipliers of the four frequency bands.
    pub imgfilter_bands: [f32; 4],
    /// Log2 standard deviation of a band's amplification.
    pub imgfilter_std: f32,
    // Image-space corruptions.
    pub noise: f32,
    pub cutout: f32,
    pub noise_std: f32,
    /// Size of the cutout rectangle, relative to the image size.
    pub cutout_size: f32,
}

impl Default for AugmentPipe {
    /// Every transformation off, the official parameter ranges.
    fn default() -> Self {
        AugmentPipe {
            xflip: 0.0,
            rotate90: 0.0,
            xint: 0.0,
            xint_max: 0.125,
            scale: 0.0,
            rotate: 0.0,
            aniso: 0.0,
            xfrac: 0.0,
            scale_std: 0.2,
            rotate_max: 1.0,
            aniso_std: 0.2,
            xfrac_std: 0.125,
            brightness: 0.0,
            contrast: 0.0,
            lumaflip: 0.0,
            hue: 0.0,
            saturation: 0.0,
            brightness_std: 0.2,
            contrast_std: 0.5,
            hue_max: 1.0,
            saturation_std: 1.0,
            imgfilter: 0.0,
            imgfilter_bands: [1.0; 4],
            imgfilter_std: 1.0,
            noise: 0.0,
            cutout: 0.0,
            noise_std: 0.1,
            cutout_size: 0.5,
        }
    }
}

/// The official preset names (`train.py --augpipe`).
pub const PRESETS: [&str; 11] = [
    "blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn", "bgcfnc",
];

/// The transformations each preset letter turns on.
#[derive(Clone, Copy)]
enum Group {
    Blit,
    Geom,
    Color,
    Filter,
    Noise,
    Cutout,
}

impl AugmentPipe {
    /// The official preset `name` (one of `PRESETS`; `bgc` is the default
    /// of `train.py`): the named groups on with multiplier 1.
    pub fn preset(name: &str) -> Result<AugmentPipe> {
        use Group::*;
        let groups: &[Group] = match name {
            "blit" => &[Blit],
            "geom" => &[Geom],
            "color" => &[Color],
            "filter" => &[Filter],
            "noise" => &[Noise],
            "cutout" => &[Cutout],
            "bg" => &[Blit, Geom],
            "bgc" => &[Blit, Geom, Color],
            "bgcf" => &[Blit, Geom, Color, Filter],
            "bgcfn" => &[Blit, Geom, Color, Filter, Noise],
            "bgcfnc" => &[Blit, Geom, Color, Filter, Noise, Cutout],
            _ => {
                return Err(Error::Invalid {
                    op: "augpipe",
                    msg: format!(
                        "unknown augment preset `{name}`; expected one of {}",
                        PRESETS.join(", ")
                    ),
                })
            }
        };
        let mut p = AugmentPipe::default();
        for g in groups {
            match g {
                Blit => (p.xflip, p.rotate90, p.xint) = (1.0, 1.0, 1.0),
                Geom => (p.scale, p.rotate, p.aniso, p.xfrac) = (1.0, 1.0, 1.0, 1.0),
                Color => {
                    (p.brightness, p.contrast, p.lumaflip, p.hue, p.saturation) =
                        (1.0, 1.0, 1.0, 1.0, 1.0)
                }
                Filter => p.imgfilter = 1.0,
                Noise => p.noise = 1.0,
                Cutout => p.cutout = 1.0,
            }
        }
        Ok(p)
    }

    /// Whether the geometric stage runs (any of its multipliers is on, even
    /// at p = 0, as the official code runs it whenever its matrix was built).
    pub fn geometric_on(&self) -> bool {
        [
            self.xflip,
            self.rotate90,
            self.xint,
            self.scale,
            self.rotate,
            self.aniso,
            self.xfrac,
        ]
        .iter()
        .any(|&m| m > 0.0)
    }

    /// Whether the colour stage runs for images of `channels` channels (hue
    /// and saturation only act on colour images).
    pub fn color_on(&self, channels: usize) -> bool {
        self.brightness > 0.0
            || self.contrast > 0.0
            || self.lumaflip > 0.0
            || (channels > 1 && (self.hue > 0.0 || self.saturation > 0.0))
    }

    /// Draws the parameters of `n` samples of `[c, h, w]` images at
    /// probability `p` with the official distributions: each transformation
    /// is applied to a sample with probability `multiplier · p` (rotation:
    /// pre- and post-rotation each with `1 − √(1 − rotate·p)`, so that one or
    /// both happen with probability `rotate·p`), and its strength drawn as
    /// in `training/augment.py`. With noise on, also the standard normal
    /// noise images. Draws only for the transformations that are on.
    pub fn draw(&self, p: f32, dims: [usize; 4], rng: &mut crate::Rng) -> AugmentDraws {
        let [n, c, h, w] = dims;
        let mut samples = vec![SampleParams::default(); n];
        let normal = |rng: &mut crate::Rng| -> f32 { StandardNormal.sample(rng) };
        let on = |m: f32, rng: &mut crate::Rng| rng.random::<f32>() < m * p;
        let p_rot = 1.0 - (1.0 - self.rotate * p).clamp(0.0, 1.0).sqrt();
        let pi = std::f32::consts::PI;
        for s in samples.iter_mut() {
            if self.xflip > 0.0 {
                let i = (rng.random::<f32>() * 2.0).floor();
                s.xflip = on(self.xflip, rng) && i >= 1.0;
            }
            if self.rotate90 > 0.0 {
                let i = (rng.random::<f32>() * 4.0).floor().min(3.0) as u8;
                s.rotate90 = if on(self.rotate90, rng) { i } else { 0 };
            }
            if self.xint > 0.0 {
                let t = [
                    (rng.random::<f32>() * 2.0 - 1.0) * self.xint_max,
                    (rng.random::<f32>() * 2.0 - 1.0) * self.xint_max,
                ];
                s.xint = if on(self.xint, rng) { t } else { [0.0; 2] };
            }
            if self.scale > 0.0 {
                let v = (normal(rng) * self.scale_std).exp2();
                s.scale = if on(self.scale, rng) { v } else { 1.0 };
            }
            if self.rotate > 0.0 {
                let t = (rng.random::<f32>() * 2.0 - 1.0) * pi * self.rotate_max;
                s.rotate_pre = if rng.random::<f32>() < p_rot { t } else { 0.0 };
            }
            if self.aniso > 0.0 {
                let v = (normal(rng) * self.aniso_std).exp2();
                s.aniso = if on(self.aniso, rng) { v } else { 1.0 };
            }
            if self.rotate > 0.0 {
                let t = (rng.random::<f32>() * 2.0 - 1.0) * pi * self.rotate_max;
                s.rotate_post = if rng.random::<f32>() < p_rot { t } else { 0.0 };
            }
            if self.xfrac > 0.0 {
                let t = [normal(rng) * self.xfrac_std, normal(rng) * self.xfrac_std];
                s.xfrac = if on(self.xfrac, rng) { t } else { [0.0; 2] };
            }
            if self.brightness > 0.0 {
                let b = normal(rng) * self.brightness_std;
                s.brightness = if on(self.brightness, rng) { b } else { 0.0 };
            }
            if self.contrast > 0.0 {
                let v = (normal(rng) * self.contrast_std).exp2();
                s.contrast = if on(self.contrast, rng) { v } else { 1.0 };
            }
            if self.lumaflip > 0.0 {
                let i = (rng.random::<f32>() * 2.0).floor();
                s.lumaflip = on(self.lumaflip, rng) && i >= 1.0;
            }
            if self.hue > 0.0 && c > 1 {
                let t = (rng.random::<f32>() * 2.0 - 1.0) * pi * self.hue_max;
                s.hue = if on(self.hue, rng) { t } else { 0.0 };
            }
            if self.saturation > 0.0 && c > 1 {
                let v = (normal(rng) * self.saturation_std).exp2();
                s.saturation = if on(self.saturation, rng) { v } else { 1.0 };
            }
            if self.imgfilter > 0.0 {
                for (b, &band) in self.imgfilter_bands.iter().enumerate() {
                    let v = (normal(rng) * self.imgfilter_std).exp2();
                    s.imgfilter[b] = if on(self.imgfilter * band, rng) {
                        v
                    } else {
                        1.0
                    };
                }
            }
            if self.noise > 0.0 {
                let v = normal(rng).abs() * self.noise_std;
                s.noise = if on(self.noise, rng) { v } else { 0.0 };
            }
            if self.cutout > 0.0 {
                s.cutout = if on(self.cutout, rng) {
                    self.cutout_size
                } else {
                    0.0
                };
                s.cutout_center = [rng.random::<f32>(), rng.random::<f32>()];
            }
        }
        let noise = (self.noise > 0.0).then(|| {
            (0..n * c * h * w)
                .map(|_| normal(rng))
                .collect::<Vec<f32>>()
        });
        AugmentDraws { samples, noise }
    }
}

/// The parameters of one sample's transformations; `Default` is the
/// identity of each (as when a transformation is not drawn). Angles in
/// radians, translations relative to the image size (x, y).
#[derive(Clone, Debug, PartialEq)]
pub struct SampleParams {
    pub xflip: bool,
    /// Quarter turns, 0..4 (the official `rotate2d_inv(−π/2·i)`).
    pub rotate90: u8,
    /// Integer translation before rounding to pixels, relative to (W, H).
    pub xint: [f32; 2],
    pub scale: f32,
    pub rotate_pre: f32,
    pub aniso: f32,
    pub rotate_post: f32,
    /// Fractional translation relative to (W, H).
    pub xfrac: [f32; 2],
    pub brightness: f32,
    pub contrast: f32,
    pub lumaflip: bool,
    pub hue: f32,
    pub saturation: f32,
    /// Amplification of each of the four frequency bands before the
    /// official power normalization (1 = not drawn).
    pub imgfilter: [f32; 4],
    /// Standard deviation of the additive noise.
    pub noise: f32,
    /// Cutout rectangle size relative to the image (0 = none) and its centre (x, y).
    pub cutout: f32,
    pub cutout_center: [f32; 2],
}

impl Default for SampleParams {
    fn default() -> Self {
        SampleParams {
            xflip: false,
            rotate90: 0,
            xint: [0.0; 2],
            scale: 1.0,
            rotate_pre: 0.0,
            aniso: 1.0,
            rotate_post: 0.0,
            xfrac: [0.0; 2],
            brightness: 0.0,
            contrast: 1.0,
            lumaflip: false,
            hue: 0.0,
            saturation: 1.0,
            imgfilter: [1.0; 4],
            noise: 0.0,
            cutout: 0.0,
            cutout_center: [0.5; 2],
        }
    }
}

/// Everything random about one call of the pipeline: per-sample parameters
/// and, when noise is on, the standard normal noise images `[N, C, H, W]`
/// (scaled by each sample's `noise`).
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentDraws {
    pub samples: Vec<SampleParams>,
    pub noise: Option<Vec<f32>>,
}
