//! Quality metrics of a generator against a dataset. Only the sliced
//! Wasserstein distance (SWD, [`swd`]) for now: FID needs the Inception
//! weights, which cannot be downloaded at run time.
//!
//! [`Swd`] holds the real images' descriptors (computed once, as the
//! official code caches `desc_real`) and scores a generator against them;
//! `stylegan2 metric` and `stylegan2 train --metrics swd` use it.

pub mod swd;

pub use swd::{Descriptors, NormalizedDescriptors, SwdResult};

use crate::data::Loader;
use crate::device::Device;
use crate::error::{invalid, Result};
use crate::model::{Generator, SynthesisOptions, Truncation};
use crate::nn::{Ctx, NoiseMode};
use crate::tensor::Tensor;
use rand::seq::SliceRandom;
use rand::Rng as _;

/// A metric `train --metrics` can compute at each snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// The sliced Wasserstein distance.
    Swd,
}

impl Metric {
    /// Parses a `--metrics` value: `swd` (`none` is handled by the caller).
    pub fn parse(s: &str) -> Result<Metric> {
        match s {
            "swd" => Ok(Metric::Swd),
            _ => invalid(
                "metrics",
                format!("unknown metric '{s}': expected swd or none (FID needs Inception weights, which this crate does not have)"),
            ),
        }
    }

    /// The name `--metrics` takes.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Swd => "swd",
        }
    }

    /// Parses a comma-separated `--metrics` list; `none` (or nothing) is none.
    pub fn parse_list(items: &[String]) -> Result<Vec<Metric>> {
        let mut out = Vec::new();
        for s in items.iter().flat_map(|s| s.split(',')).map(str::trim) {
            if s == "none" || s.is_empty() {
                continue;
            }
            let m = Metric::parse(s)?;
            if !out.contains(&m) {
                out.push(m);
            }
        }
        Ok(out)
    }
}

/// Images per set for the metrics of a training run of `preset` when
/// `--metrics-num` is not given: 256 for `tiny` (a few seconds on a CPU),
/// else 1024. The official SWD used 8192–16384; these are for trends.
pub fn default_train_num(preset: &str) -> usize {
    if preset == "tiny" {
        256
    } else {
        1024
    }
}

/// Images per generator or loader call.
pub const DEFAULT_BATCH: usize = 16;

/// Salts that keep the uses of one `--seed` independent.
const REAL_DESC_SALT: u64 = 0x5245_414C; // "REAL"
const FAKE_DESC_SALT: u64 = 0x4641_4B45; // "FAKE"
const DIR_SALT: u64 = 0x4449_5253; // "DIRS"
const LATENT_SALT: u64 = 0x4C41_5445; // "LATE"

/// The SWD of generators against `num` real images.
pub struct Swd {
    reals: NormalizedDescriptors,
    /// The reals' labels, `[num, label_dim]`, when the dataset has labels:
    /// a conditional generator gets them (official: labels of real images).
    labels: Option<(Vec<f32>, usize)>,
    seed: u64,
    batch: usize,
}

impl Swd {
    /// Descriptors of `num` real images of `loader`'s dataset (a random
    /// subset drawn from `seed`, no flips; all images when the dataset has
    /// fewer than `num`). `progress` is told each batch's size.
    pub fn new(
        loader: &Loader,
        num: usize,
        seed: u64,
        batch: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Swd> {
        if num == 0 {
            return invalid("swd", "the number of images must be at least 1");
        }
        if batch == 0 {
            return invalid("swd", "the batch must be at least 1");
        }
        let ds = loader.dataset();
        let mut desc = Descriptors::new(ds.resolution(), ds.channels(), seed ^ REAL_DESC_SALT)?;
        let mut idx: Vec<usize> = (0..ds.len()).collect();
        idx.shuffle(&mut crate::rng(seed));
        idx.truncate(num);
        let label_dim = ds.label_dim();
        let mut labels = Vec::new();
        for chunk in idx.chunks(batch) {
            let imgs = loader.images(chunk, &vec![false; chunk.len()], Device::Cpu)?;
            desc.feed(&imgs.to_vec(), chunk.len())?;
            if label_dim > 0 {
                labels.extend(loader.labels(chunk, Device::Cpu)?.to_vec());
            }
            progress(chunk.len());
        }
        Ok(Swd {
            reals: desc.finalize()?,
            labels: (label_dim > 0).then_some((labels, label_dim)),
            seed,
            batch,
        })
    }

    /// Images per set: `min(num, dataset size)`.
    pub fn num(&self) -> usize {
        self.reals.len()
    }

    /// SWD of `num()` images of `g` (random latents and noise from the
    /// seed, truncation `psi`; a conditional generator gets the labels of
    /// the real images, or uniformly random classes if the data has none)
    /// against the reals. The fakes pass through 8 bits as the
    /// reals do. `g` must make images of the reals' resolution and channels.
    pub fn evaluate(
        &self,
        g: &Generator,
        psi: f32,
        progress: &mut dyn FnMut(usize),
    ) -> Result<SwdResult> {
        let (res, ch) = (g.config.img_resolution, g.config.img_channels);
        let want = &self.reals;
        let want_res = want.resolutions()[0];
        let want_ch = want.dim() / (swd::NHOOD_SIZE * swd::NHOOD_SIZE);
        if res != want_res || ch != want_ch {
            return invalid(
                "swd",
                format!(
                    "the generator makes {res}×{res} images with {ch} channels, the data is {want_res}×{want_res} with {want_ch}"
                ),
            );
        }
        let c_dim = g.config.c_dim;
        if let Some((_, dim)) = &self.labels {
            if c_dim > 0 && *dim != c_dim {
                return invalid(
                    "swd",
                    format!("the generator takes {c_dim} label dimensions, the data's labels have {dim}"),
                );
            }
        }
        let device = g.synthesis.blocks[0].conv1.weight.device();
        let _guard = crate::no_grad();
        let mut rng = crate::rng(self.seed ^ LATENT_SALT);
        let mut desc = Descriptors::new(res, ch, self.seed ^ FAKE_DESC_SALT)?;
        let mut done = 0;
        while done < self.num() {
            let n = (self.num() - done).min(self.batch);
            let z = Tensor::randn(vec![n, g.config.z_dim], &mut rng, device);
            let c = match (c_dim, &self.labels) {
                (0, _) => None,
                (_, Some((l, dim))) => Some(Tensor::from_vec(
                    l[done * dim..(done + n) * dim].to_vec(),
                    vec![n, c_dim],
                    device,
                )?),
                (_, None) => {
                    let mut v = vec![0.0f32; n * c_dim];
                    for row in v.chunks_exact_mut(c_dim) {
                        row[rng.random_range(0..c_dim)] = 1.0;
                    }
                    Some(Tensor::from_vec(v, vec![n, c_dim], device)?)
                }
            };
            // Random noise, as the official metrics run G.
            let img = g.forward(
                &z,
                c.as_ref(),
                Truncation::psi(psi),
                SynthesisOptions::noise(NoiseMode::Random),
                &mut Ctx::with_rng(&mut rng),
            )?;
            let mut v = img.try_to_vec()?;
            swd::through_u8(&mut v);
            desc.feed(&v, n)?;
            progress(n);
            done += n;
        }
        swd::swd(&self.reals, &desc.finalize()?, self.seed ^ DIR_SALT)
    }
}
