//! The library side of the `generate`, `style-mix` and `info` commands:
//! latents from seeds, images to PNG, grids, the style-mixing figure and a
//! report of a network file.

use super::generator::Generator;
use super::mapping::Truncation;
use super::synthesis::SynthesisOptions;
use super::{Discriminator, ModelConfig};
use crate::device::Device;
use crate::error::{invalid, shape_err, Error, Result};
use crate::nn::{Ctx, Module, NoiseMode};
use crate::tensor::Tensor;
use image::{DynamicImage, GenericImage, GenericImageView, ImageBuffer, Luma, Rgb};
use std::path::{Path, PathBuf};

/// The latent of `seed`: `[1, z_dim]` standard normal from `stylegan2::rng(seed)`,
/// the same on every device.
pub fn latent(seed: u64, z_dim: usize, device: Device) -> Tensor {
    Tensor::randn(vec![1, z_dim], &mut crate::rng(seed), device)
}

/// Where the latent of a seed comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Latents {
    /// [`latent`]: the crate's generator, the same on every device.
    #[default]
    Crate,
    /// numpy's `RandomState(seed).randn(1, z_dim)`, as the official
    /// `generate.py` draws it, so a seed gives the official image of a
    /// network (with noise const or none).
    Numpy,
}

impl Latents {
    pub fn parse(s: &str) -> Result<Latents> {
        match s {
            "crate" => Ok(Latents::Crate),
            "numpy" | "official" => Ok(Latents::Numpy),
            other => invalid(
                "latents",
                format!("'{other}': expected crate or numpy (the official generate.py's)"),
            ),
        }
    }

    /// The latent `[1, z_dim]` of `seed`.
    pub fn latent(self, seed: u64, z_dim: usize, device: Device) -> Result<Tensor> {
        match self {
            Latents::Crate => Ok(latent(seed, z_dim, device)),
            Latents::Numpy => {
                let z = super::numpy_rng::RandomState::new(seed)?.randn(z_dim);
                Tensor::from_vec(
                    z.iter().map(|&v| v as f32).collect(),
                    vec![1, z_dim],
                    device,
                )
            }
        }
    }
}

/// The one-hot label `[1, c_dim]` of `class` for a conditional generator;
/// `None` for an unconditional one (where a class is an error, as is a
/// missing class for a conditional one).
pub fn class_label(g: &Generator, class: Option<usize>, device: Device) -> Result<Option<Tensor>> {
    let c_dim = g.config.c_dim;
    match (c_dim, class) {
        (0, None) => Ok(None),
        (0, Some(c)) => invalid(
            "--class",
            format!("{c} given, but the generator is unconditional: leave --class out"),
        ),
        (_, None) => invalid(
            "--class",
            format!(
                "the generator is conditional: give --class 0..{}",
                c_dim - 1
            ),
        ),
        (_, Some(c)) if c >= c_dim => invalid(
            "--class",
            format!(
                "{c} out of range: the generator has {c_dim} classes (0..{})",
                c_dim - 1
            ),
        ),
        (_, Some(c)) => {
            let mut v = vec![0.0; c_dim];
            v[c] = 1.0;
            Tensor::from_vec(v, vec![1, c_dim], device).map(Some)
        }
    }
}

/// Parses a seed list as the official scripts do: `"0,5,10-12"` → 0, 5, 10,
/// 11, 12; at most [`crate::flags::MAX_SEEDS`] seeds, checked before any
/// is listed (see [`crate::flags::RangeList`]).
pub fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    Ok(crate::flags::RangeList::parse(s, "--seeds", crate::flags::MAX_SEEDS)?.values())
}

/// Images `[N, C, H, W]` in [-1, 1] to 8-bit images as the official
/// scripts convert them: `(x·127.5 + 128)` clamped to [0, 255], truncated.
/// C must be 1 (gray) or 3 (RGB).
pub fn to_images(img: &Tensor) -> Result<Vec<DynamicImage>> {
    let &[n, c, h, w] = img.dims() else {
        return shape_err("to_images", format!("{} is not [N, C, H, W]", img.shape()));
    };
    if c != 1 && c != 3 {
        return shape_err(
            "to_images",
            format!("{c} channels: only 1 (gray) and 3 (RGB) images can be written"),
        );
    }
    let v = img.to_vec();
    let px = |x: f32| (x * 127.5 + 128.0).clamp(0.0, 255.0) as u8;
    let (w32, h32) = (w as u32, h as u32);
    Ok((0..n)
        .map(|i| {
            let at =
                |ch: usize, y: u32, x: u32| v[((i * c + ch) * h + y as usize) * w + x as usize];
            if c == 1 {
                DynamicImage::ImageLuma8(ImageBuffer::from_fn(w32, h32, |x, y| {
                    Luma([px(at(0, y, x))])
                }))
            } else {
                DynamicImage::ImageRgb8(ImageBuffer::from_fn(w32, h32, |x, y| {
                    Rgb([px(at(0, y, x)), px(at(1, y, x)), px(at(2, y, x))])
                }))
            }
        })
        .collect())
}

/// Tiles equally sized images row by row, `cols` per row (black padding).
pub fn grid(images: &[DynamicImage], cols: usize) -> Result<DynamicImage> {
    let Some(first) = images.first() else {
        return invalid("grid", "no images");
    };
    let (w, h) = first.dimensions();
    if images.iter().any(|i| i.dimensions() != (w, h)) {
        return invalid("grid", "images differ in size");
    }
    let cols = cols.clamp(1, images.len());
    let rows = images.len().div_ceil(cols);
    let mut canvas = match first {
        DynamicImage::ImageLuma8(_) => DynamicImage::new_luma8(w * cols as u32, h * rows as u32),
        _ => DynamicImage::new_rgb8(w * cols as u32, h * rows as u32),
    };
    for (k, im) in images.iter().enumerate() {
        let (x, y) = ((k % cols) as u32 * w, (k / cols) as u32 * h);
        canvas
            .copy_from(im, x, y)
            .map_err(|e| Error::Internal(format!("grid: {e}")))?;
    }
    Ok(canvas)
}

/// Writes a PNG through the checked writer ([`crate::fsio`]), creating the
/// parent directory; a failed write leaves no file and names `path`.
pub fn save_png(img: &DynamicImage, path: &Path) -> Result<()> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Io(format!("encoding {}: {e}", path.display())))?;
    crate::fsio::write(path, &png)
}

/// Options of `generate`.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub seeds: Vec<u64>,
    /// Truncation ψ (1 = none) and cutoff.
    pub truncation: Truncation,
    pub noise_mode: NoiseMode,
    /// Class of a conditional generator.
    pub class: Option<usize>,
    pub outdir: PathBuf,
    /// Also write `grid.png` with all seeds.
    pub grid: bool,
}

/// The image of one seed: z from the seed, random noise (if asked) from
/// the seed too, so a seed names one image on every device.
pub fn generate_seed(
    g: &Generator,
    seed: u64,
    trunc: Truncation,
    noise_mode: NoiseMode,
    class: Option<usize>,
) -> Result<Tensor> {
    generate_seed_with(g, seed, Latents::Crate, trunc, noise_mode, class)
}

/// [`generate_seed`] with the latent from `latents` (random noise still
/// follows the crate's generator seeded by `seed`).
pub fn generate_seed_with(
    g: &Generator,
    seed: u64,
    latents: Latents,
    trunc: Truncation,
    noise_mode: NoiseMode,
    class: Option<usize>,
) -> Result<Tensor> {
    let device = g.synthesis.blocks[0].conv1.weight.device();
    let _guard = crate::no_grad();
    let mut rng = crate::rng(seed);
    let crate_z = Tensor::randn(vec![1, g.config.z_dim], &mut rng, device);
    let z = match latents {
        Latents::Crate => crate_z,
        Latents::Numpy => latents.latent(seed, g.config.z_dim, device)?,
    };
    let c = class_label(g, class, device)?;
    g.forward(
        &z,
        c.as_ref(),
        trunc,
        SynthesisOptions::noise(noise_mode),
        &mut Ctx::with_rng(&mut rng),
    )
}

/// Writes `seed{NNNN}.png` per seed into `outdir` (and `grid.png`);
/// returns the paths written.
pub fn generate(g: &Generator, opts: &GenerateOptions) -> Result<Vec<PathBuf>> {
    generate_with(g, opts, Latents::Crate)
}

/// [`generate`] with the latents from `latents`.
pub fn generate_with(
    g: &Generator,
    opts: &GenerateOptions,
    latents: Latents,
) -> Result<Vec<PathBuf>> {
    if opts.seeds.is_empty() {
        return invalid("generate", "no seeds");
    }
    let mut written = Vec::new();
    let mut all = Vec::new();
    for &seed in &opts.seeds {
        let img = generate_seed_with(
            g,
            seed,
            latents,
            opts.truncation,
            opts.noise_mode,
            opts.class,
        )?;
        let im = to_images(&img)?.remove(0);
        let path = opts.outdir.join(format!("seed{seed:04}.png"));
        save_png(&im, &path)?;
        written.push(path);
        all.push(im);
    }
    if opts.grid {
        let cols = (all.len() as f64).sqrt().ceil() as usize;
        let path = opts.outdir.join("grid.png");
        save_png(&grid(&all, cols)?, &path)?;
        written.push(path);
    }
    Ok(written)
}

/// The official style-mixing figure: the top row shows the column seeds,
/// the left column the row seeds, and cell (r, c) the row seed's ws with
/// the rows `col_styles` taken from the column seed. Returns the image.
pub fn style_mix(
    g: &Generator,
    row_seeds: &[u64],
    col_seeds: &[u64],
    col_styles: &[usize],
    trunc: Truncation,
    noise_mode: NoiseMode,
    class: Option<usize>,
) -> Result<DynamicImage> {
    style_mix_with(
        g,
        row_seeds,
        col_seeds,
        col_styles,
        trunc,
        noise_mode,
        class,
        Latents::Crate,
    )
}

/// [`style_mix`] with the latents from `latents` (`Numpy`: those of the
/// official `style_mixing.py`).
#[allow(clippy::too_many_arguments)]
pub fn style_mix_with(
    g: &Generator,
    row_seeds: &[u64],
    col_seeds: &[u64],
    col_styles: &[usize],
    trunc: Truncation,
    noise_mode: NoiseMode,
    class: Option<usize>,
    latents: Latents,
) -> Result<DynamicImage> {
    if row_seeds.is_empty() || col_seeds.is_empty() {
        return invalid(
            "style_mix",
            "needs at least one row seed and one column seed",
        );
    }
    let num_ws = g.num_ws();
    if let Some(&bad) = col_styles.iter().find(|&&s| s >= num_ws) {
        return invalid(
            "style_mix",
            format!(
                "style {bad} out of range: the generator has {num_ws} ws (0..{})",
                num_ws - 1
            ),
        );
    }
    let device = g.synthesis.blocks[0].conv1.weight.device();
    let _guard = crate::no_grad();
    let c = class_label(g, class, device)?;
    let ws_of = |seed: u64| -> Result<Tensor> {
        let z = latents.latent(seed, g.config.z_dim, device)?;
        g.mapping(&z, c.as_ref(), trunc, false, &mut Ctx::new())
    };
    // Noise: one generator for the whole figure (const/none need none).
    let mut rng = crate::rng(0);
    let mut synth = |ws: &Tensor| -> Result<DynamicImage> {
        let img = g.synthesis(
            ws,
            SynthesisOptions::noise(noise_mode),
            &mut Ctx::with_rng(&mut rng),
        )?;
        Ok(to_images(&img)?.remove(0))
    };
    let row_ws: Vec<Tensor> = row_seeds.iter().map(|&s| ws_of(s)).collect::<Result<_>>()?;
    let col_ws: Vec<Tensor> = col_seeds.iter().map(|&s| ws_of(s)).collect::<Result<_>>()?;
    let mut cells: Vec<Option<DynamicImage>> = vec![None];
    for w in &col_ws {
        cells.push(Some(synth(w)?));
    }
    for rw in &row_ws {
        cells.push(Some(synth(rw)?));
        for cw in &col_ws {
            let rows: Vec<Tensor> = (0..num_ws)
                .map(|i| {
                    let src = if col_styles.contains(&i) { cw } else { rw };
                    src.narrow(1, i, 1)
                })
                .collect::<Result<_>>()?;
            cells.push(Some(synth(&Tensor::concat(&rows, 1)?)?));
        }
    }
    let sample = cells[1].as_ref().expect("a column image");
    let blank = match sample {
        DynamicImage::ImageLuma8(_) => DynamicImage::new_luma8(sample.width(), sample.height()),
        _ => DynamicImage::new_rgb8(sample.width(), sample.height()),
    };
    let images: Vec<DynamicImage> = cells
        .into_iter()
        .map(|c| c.unwrap_or_else(|| blank.clone()))
        .collect();
    grid(&images, col_seeds.len() + 1)
}

/// A report of a network file: its configuration and, per network
/// (`G`, `D`, `G_ema`), the number of tensors and of trainable parameters.
pub fn info(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let (sd, meta) = if super::io::is_pickle_file(path) {
        // A pickle: its networks' config; no training progress.
        let (config, sd) = super::io::read_networks(path, Device::Cpu)?;
        let mut meta = std::collections::HashMap::new();
        if let Some(c) = config {
            meta.insert(super::CONFIG_KEY.to_string(), c.to_json()?);
        }
        (sd, meta)
    } else {
        crate::nn::StateDict::load_safetensors(path, Device::Cpu)?
    };
    let config = meta
        .get(super::CONFIG_KEY)
        .map(|s| {
            ModelConfig::from_json(s).map_err(|e| {
                Error::Io(format!(
                    "{}: {} metadata: {e}",
                    path.display(),
                    super::CONFIG_KEY
                ))
            })
        })
        .transpose()?;
    let mut out = format!("{}\n", path.display());
    // A training snapshot's counters (see `train::checkpoint`).
    match meta
        .get(crate::train::STATE_KEY)
        .map(|s| serde_json::from_str::<crate::train::TrainState>(s))
    {
        Some(Ok(st)) => {
            out += &format!(
                "training progress: {:.3} kimg ({} images shown), step {}, pl_mean {}, seed {}\n",
                st.cur_nimg as f64 / 1000.0,
                st.cur_nimg,
                st.step,
                st.pl_mean,
                st.seed
            )
        }
        Some(Err(e)) => out += &format!("training state unreadable: {e}\n"),
        None => out += "no training state (a network file, not a snapshot)\n",
    }
    let mut prefixes: Vec<String> = Vec::new();
    for n in sd.names() {
        let p = n.split('.').next().unwrap_or("").to_string();
        if !prefixes.contains(&p) {
            prefixes.push(p);
        }
    }
    prefixes.sort();
    match &config {
        Some(cfg) => out += &format!("config ({}):\n{}\n", cfg.preset, cfg.to_json()?),
        None => out += "no stylegan2 config in the metadata\n",
    }
    for p in &prefixes {
        let sub = sd.sub(p);
        let total: usize = sub.iter().map(|(_, t)| t.numel()).sum();
        let trainable = match (config.as_ref(), p.as_str()) {
            (Some(cfg), "G" | "G_ema") => Some(param_count_of(
                &Generator::new(&cfg.generator, &mut crate::rng(0), Device::Cpu)?,
                &sub,
            )),
            (Some(cfg), "D") => Some(param_count_of(
                &Discriminator::new(&cfg.discriminator, &mut crate::rng(0), Device::Cpu)?,
                &sub,
            )),
            _ => None,
        };
        out += &format!("{p}: {} tensors, {total} values", sub.len());
        if let Some(t) = trainable {
            out += &format!(", {t} trainable parameters");
        }
        out += "\n";
    }
    Ok(out)
}

/// Values of `sd` that are parameters (not buffers) of `m`.
fn param_count_of(m: &dyn Module, sd: &crate::nn::StateDict) -> usize {
    m.parameters()
        .iter()
        .filter_map(|(n, _)| sd.get(n))
        .map(Tensor::numel)
        .sum()
}

/// `info` for a configuration alone: parameter counts of a fresh G and D.
pub fn config_summary(cfg: &ModelConfig) -> Result<String> {
    let mut rng = crate::rng(0);
    let g = Generator::new(&cfg.generator, &mut rng, Device::Cpu)?;
    let d = Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu)?;
    Ok(format!(
        "{}: G {} parameters ({} ws), D {} parameters",
        cfg.preset,
        g.num_params(),
        g.num_ws(),
        d.num_params()
    ))
}
