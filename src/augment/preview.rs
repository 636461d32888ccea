//! `stylegan2 augment`: a grid of the same real images under several draws
//! of the pipeline, to see what D sees at a given `p`.

use super::AugmentPipe;
use crate::data::Loader;
use crate::device::Device;
use crate::error::{invalid, Result};
use crate::model::cli::{grid, to_images};
use image::DynamicImage;

/// The first `num` images of `loader`'s dataset in the top row, then
/// `draws` rows of the same images augmented by `pipe` at probability `p`
/// (draws from the seeded generator `seed`).
///
/// Errors: an image that cannot be read, `num` or `draws` of 0, or images
/// the pipeline cannot take (see `AugmentPipe::apply`).
pub fn augment_grid(
    loader: &Loader,
    pipe: &AugmentPipe,
    p: f32,
    num: usize,
    draws: usize,
    seed: u64,
    device: Device,
) -> Result<DynamicImage> {
    if num == 0 || draws == 0 {
        return invalid("augment", "--num and --draws must be at least 1");
    }
    if !(p.is_finite() && p >= 0.0) {
        return invalid("augment", format!("--p {p} must be a finite number ≥ 0"));
    }
    let num = num.min(loader.dataset().len());
    let idx: Vec<usize> = (0..num).collect();
    let reals = loader.images(&idx, &vec![false; num], device)?;
    let mut rng = crate::rng(seed);
    let mut cells = to_images(&reals)?;
    for _ in 0..draws {
        let aug = pipe.augment(&reals, p, &mut rng)?.clamp(-1.0, 1.0)?;
        cells.extend(to_images(&aug)?);
    }
    grid(&cells, num)
}
