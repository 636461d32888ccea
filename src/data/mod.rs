//! Training data: image folders and zip archives of PNG/JPEG files, and a
//! procedurally generated dataset that needs no download. A [`Loader`]
//! serves shuffled batches (with optional x-flips) as tensors in [-1, 1],
//! and their labels for conditional training.

pub mod decode;
pub mod folder;
pub mod labels;
pub mod synthetic;
pub mod tool;

pub use folder::{CheckOptions, Files, ImageFolder};
pub use labels::Labels;
pub use synthetic::Synthetic;

use crate::device::Device;
use crate::error::{invalid, Result};
use crate::tensor::Tensor;
use rand::seq::SliceRandom;
use std::path::Path;

/// A finite set of square `channels × resolution²` 8-bit images.
pub trait Dataset: Send {
    /// A short name for run directories and messages.
    fn name(&self) -> String;
    /// Number of images.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn resolution(&self) -> usize;
    /// 1 (gray) or 3 (RGB).
    fn channels(&self) -> usize;
    /// Image `index` as `[C, H, W]` bytes; errors name the file.
    fn image(&self, index: usize) -> Result<Vec<u8>>;
    /// Images left out when the set was opened (`--skip-bad`).
    fn skipped(&self) -> usize {
        0
    }
    /// Size of the labels (0: unlabeled).
    fn label_dim(&self) -> usize {
        0
    }
    /// Label `index` (`label_dim` values; one-hot for classes).
    fn label(&self, _index: usize) -> Result<Vec<f32>> {
        Ok(Vec::new())
    }
}

/// Opens the dataset named by a `--data` value: `synthetic` (or
/// `synthetic:N` for N images) for the built-in procedural images at
/// `resolution` (default 32), else a directory or `.zip` of PNG/JPEG images,
/// whose resolution must equal `resolution` when one is given.
pub fn open(spec: &str, resolution: Option<usize>, seed: u64) -> Result<Box<dyn Dataset>> {
    open_with_labels(spec, resolution, seed, false)
}

/// [`open`], with `labels`: folders and zips carry the labels of their
/// `dataset.json` (if any), synthetic images a class (their shape kind,
/// see [`Synthetic::with_labels`]). Without, no labels (and no
/// `dataset.json` read).
pub fn open_with_labels(
    spec: &str,
    resolution: Option<usize>,
    seed: u64,
    labels: bool,
) -> Result<Box<dyn Dataset>> {
    open_opts(
        spec,
        &OpenOptions {
            resolution,
            seed,
            labels,
            ..OpenOptions::default()
        },
    )
}

/// The most images `synthetic:N` may have (the loader keeps a permutation
/// of them in memory).
pub const MAX_SYNTHETIC: usize = 1 << 24;

/// How a `--data` value is opened (see [`open_opts`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    /// The resolution of synthetic data (default 32); for a folder, the
    /// resolution it must have (given by the user as `--resolution`).
    pub resolution: Option<usize>,
    /// The seed of synthetic data.
    pub seed: u64,
    /// Labels: `dataset.json` of a folder, the shape kind of synthetic data.
    pub labels: bool,
    /// Skip unreadable images of a folder (see [`CheckOptions::skip_bad`]).
    pub skip_bad: bool,
    /// A progress bar while a large folder is checked.
    pub progress: bool,
}

/// Whether a `--data` value names the built-in synthetic dataset:
/// `synthetic` or `synthetic:…` (a malformed count is refused by
/// [`open_opts`]). Any other name is a path, `synthetic.zip` and
/// `synthetic-faces/` included (`./synthetic` for a folder of that name).
pub fn is_synthetic(spec: &str) -> bool {
    spec == "synthetic" || spec.starts_with("synthetic:")
}

/// Opens the dataset named by a `--data` value: `synthetic` (or
/// `synthetic:N`) or a directory / `.zip` of images, checked completely
/// (see [`ImageFolder::open_checked`]). Errors name `--data`.
pub fn open_opts(spec: &str, o: &OpenOptions) -> Result<Box<dyn Dataset>> {
    if is_synthetic(spec) {
        // `is_synthetic`: the rest is empty or `:N`.
        let count = match spec.strip_prefix("synthetic:") {
            None => synthetic::DEFAULT_COUNT,
            Some(n) => match n.parse::<usize>() {
                Ok(n) if (1..=MAX_SYNTHETIC).contains(&n) => n,
                _ => {
                    return invalid(
                        "--data",
                        format!(
                            "'{spec}': expected synthetic or synthetic:N with N in 1..={}",
                            MAX_SYNTHETIC
                        ),
                    )
                }
            },
        };
        let ds = Synthetic::new(o.resolution.unwrap_or(32), 3, count, o.seed)?;
        return Ok(Box::new(if o.labels { ds.with_labels() } else { ds }));
    }
    if spec.trim().is_empty() {
        return invalid("--data", "an empty path");
    }
    let ds = ImageFolder::open_checked(
        Path::new(spec),
        CheckOptions {
            labels: o.labels,
            skip_bad: o.skip_bad,
            progress: o.progress,
        },
    )
    .map_err(|e| crate::Error::Io(format!("--data {spec}: {e}")))?;
    if let Some(r) = o.resolution {
        if r != ds.resolution() {
            return invalid(
                "--data",
                format!(
                    "{spec} holds {0}×{0} images, but --resolution {r} was asked for",
                    ds.resolution()
                ),
            );
        }
    }
    Ok(Box::new(ds))
}

/// Checks a resolution as the networks need it: a power of two ≥ 4.
pub(crate) fn check_resolution(r: usize, what: &str) -> Result<()> {
    if r < 4 || !r.is_power_of_two() {
        return invalid(
            "data",
            format!("{what}: resolution {r} is not a power of two ≥ 4"),
        );
    }
    Ok(())
}

/// An endless stream of shuffled samples of a dataset: sample `k` of the
/// stream is a function of `(seed, k)` alone, so a resumed run continues
/// the same order. With `xflip` each image also appears mirrored
/// (the dataset is doubled, as the official `--mirror`).
pub struct Loader {
    dataset: Box<dyn Dataset>,
    xflip: bool,
    seed: u64,
    epoch: Option<u64>,
    perm: Vec<usize>,
}

impl Loader {
    pub fn new(dataset: Box<dyn Dataset>, xflip: bool, seed: u64) -> Result<Loader> {
        if dataset.is_empty() {
            return invalid("data", format!("{}: the dataset is empty", dataset.name()));
        }
        Ok(Loader {
            dataset,
            xflip,
            seed,
            epoch: None,
            perm: Vec::new(),
        })
    }

    pub fn dataset(&self) -> &dyn Dataset {
        self.dataset.as_ref()
    }

    /// Samples per epoch (twice the images with x-flips).
    pub fn len(&self) -> usize {
        self.dataset.len() * if self.xflip { 2 } else { 1 }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The (image index, flipped) of stream position `k`.
    pub fn item(&mut self, k: u64) -> (usize, bool) {
        let len = self.len() as u64;
        let epoch = k / len;
        if self.epoch != Some(epoch) {
            let mut rng = crate::rng(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            self.perm = (0..self.len()).collect();
            self.perm.shuffle(&mut rng);
            self.epoch = Some(epoch);
        }
        let i = self.perm[(k % len) as usize];
        let n = self.dataset.len();
        (i % n, i >= n)
    }

    /// Stream positions `start .. start + n` as `[n, C, R, R]` in [-1, 1].
    pub fn batch(&mut self, start: u64, n: usize, device: Device) -> Result<Tensor> {
        let items: Vec<(usize, bool)> = (0..n as u64).map(|j| self.item(start + j)).collect();
        let idx: Vec<usize> = items.iter().map(|&(i, _)| i).collect();
        let flips: Vec<bool> = items.iter().map(|&(_, f)| f).collect();
        self.images(&idx, &flips, device)
    }

    /// [`Loader::batch`] with the labels of the images, `[n, label_dim]`.
    pub fn batch_with_labels(
        &mut self,
        start: u64,
        n: usize,
        device: Device,
    ) -> Result<(Tensor, Tensor)> {
        let items: Vec<(usize, bool)> = (0..n as u64).map(|j| self.item(start + j)).collect();
        let idx: Vec<usize> = items.iter().map(|&(i, _)| i).collect();
        let flips: Vec<bool> = items.iter().map(|&(_, f)| f).collect();
        Ok((
            self.images(&idx, &flips, device)?,
            self.labels(&idx, device)?,
        ))
    }

    /// Labels of images `idx` as `[n, label_dim]`.
    pub fn labels(&self, idx: &[usize], device: Device) -> Result<Tensor> {
        let dim = self.dataset.label_dim();
        if dim == 0 {
            return invalid(
                "data",
                format!("{}: the dataset has no labels", self.dataset.name()),
            );
        }
        let mut data = Vec::with_capacity(idx.len() * dim);
        for &i in idx {
            let l = self.dataset.label(i)?;
            if l.len() != dim {
                return invalid(
                    "data",
                    format!(
                        "{}: label {i} has {} values, expected {dim}",
                        self.dataset.name(),
                        l.len()
                    ),
                );
            }
            data.extend(l);
        }
        Tensor::from_vec(data, vec![idx.len(), dim], device)
    }

    /// Images `idx` (mirrored where `flips`) as `[n, C, R, R]` in [-1, 1].
    pub fn images(&self, idx: &[usize], flips: &[bool], device: Device) -> Result<Tensor> {
        let (c, r) = (self.dataset.channels(), self.dataset.resolution());
        let mut data = Vec::with_capacity(idx.len() * c * r * r);
        for (&i, &flip) in idx.iter().zip(flips) {
            let img = self.dataset.image(i)?;
            if img.len() != c * r * r {
                return invalid(
                    "data",
                    format!(
                        "{}: image {i} has {} values, expected {c}×{r}×{r}",
                        self.dataset.name(),
                        img.len()
                    ),
                );
            }
            for row in img.chunks_exact(r) {
                let px = |x: usize| row[if flip { r - 1 - x } else { x }] as f32 / 127.5 - 1.0;
                data.extend((0..r).map(px));
            }
        }
        Tensor::from_vec(data, vec![idx.len(), c, r, r], device)
    }
}
