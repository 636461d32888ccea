//! Sliced Wasserstein distance between two sets of images (Karras et al.,
//! "Progressive Growing of GANs", 2018, section 5; the official
//! `metrics/sliced_wasserstein.py` of tkarras/progressive_growing_of_gans,
//! reused unchanged by the StyleGAN repository). This follows that file:
//!
//! - `generate_laplacian_pyramid`: levels from the image resolution down to
//!   16 px; `pyr_down` convolves with the 5×5 binomial filter
//!   `[1,4,6,4,1]ᵀ[1,4,6,4,1]/256` (scipy `mode="mirror"`, i.e. reflection
//!   about the edge pixel, as `cv2.pyrDown`) and keeps every second pixel;
//!   `pyr_up` inserts zeros and convolves with 4× that filter. Level `i` is
//!   `G_i − pyr_up(G_{i+1})`, the last level the blurred image itself.
//! - `get_descriptors_for_minibatch`: 128 random 7×7 neighbourhoods per image
//!   and level, all channels, centres drawn uniformly from `[3, R−3)`.
//! - `finalize_descriptors`: per level and per set, subtract the mean and
//!   divide by the (population) standard deviation of each channel over all
//!   neighbourhoods and the 7×7 positions; flatten to `C·49` components.
//! - `sliced_wasserstein(A, B, dir_repeats=4, dirs_per_repeat=128)`: per
//!   repeat, 128 Gaussian directions normalized to unit length, project both
//!   sets, sort each direction's projections, and average `|a − b|` over
//!   neighbourhoods and directions; average the repeats.
//! - `API.end`: the per-level distances times 10³ and their mean,
//!   reported as `SWDx1e3_<res>` and `SWDx1e3_avg`.
//!
//! Differences, all on purpose: randomness comes from a seed instead of
//! NumPy's global state. The neighbourhoods of an image are drawn from a
//! generator seeded by the seed, the level and a hash of the image's pixels,
//! and the descriptors are put in a canonical order before normalizing, so
//! the result is a function of the *set* of images (bit for bit the same for
//! any order). A channel with zero variance (e.g. the high-pass levels of
//! constant images) is left at zero instead of becoming NaN.
//!
//! Descriptors are invariant to an affine map of each channel (the pyramid
//! is linear and reproduces constants, and they are standardized), so images
//! in [-1, 1] measure as the official uint8 images do (which patches are
//! drawn follows the pixel values, so the numbers are not bit-identical).
//! Quantization does matter, hence [`through_u8`] for generated images.

use crate::backend::cpu::matmul::{gemm_into, MatRef};
use crate::error::{invalid, shape_err, Result};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// Side of a descriptor neighbourhood (official `nhood_size`).
pub const NHOOD_SIZE: usize = 7;
/// Neighbourhoods per image and level (official `nhoods_per_image`).
pub const NHOODS_PER_IMAGE: usize = 128;
/// Independent sets of random directions (official `dir_repeats`).
pub const DIR_REPEATS: usize = 4;
/// Directions per set (official `dirs_per_repeat`).
pub const DIRS_PER_REPEAT: usize = 128;
/// The coarsest pyramid level (official: `while res >= 16`).
pub const MIN_RESOLUTION: usize = 16;

/// The pyramid levels' resolutions for `resolution`-pixel images: halving
/// from `resolution` while ≥ 16 (32 → [32, 16]).
pub fn level_resolutions(resolution: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut r = resolution;
    while r >= MIN_RESOLUTION {
        out.push(r);
        r /= 2;
    }
    out
}

/// Index `i` (possibly outside `0..n`) reflected about the edge samples,
/// scipy.ndimage's `mode="mirror"`: `… 2 1 | 0 1 2 … n−1 | n−2 …`.
fn mirror(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let j = i.rem_euclid(period);
    (if j < n as isize { j } else { period - j }) as usize
}

/// The 1-D binomial filter `[1, 4, 6, 4, 1] / 16`; its outer product is the
/// official 5×5 `gaussian_filter`.
const TAPS: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];

/// Separable 5×5 blur with mirror edges of `planes` `h × w` planes, scaled
/// by `gain`, sampled at every `step`-th row and column (2 for `pyr_down`).
fn blur(x: &[f32], planes: usize, h: usize, w: usize, gain: f32, step: usize) -> Vec<f32> {
    let (oh, ow) = (h.div_ceil(step), w.div_ceil(step));
    let mut out = vec![0.0f32; planes * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .for_each(|(o, p)| {
            // Rows first (all input rows, output columns only), then columns.
            let mut tmp = vec![0.0f32; h * ow];
            for y in 0..h {
                let row = &p[y * w..(y + 1) * w];
                for ox in 0..ow {
                    let cx = (ox * step) as isize;
                    tmp[y * ow + ox] = TAPS
                        .iter()
                        .enumerate()
                        .map(|(k, &t)| t * row[mirror(cx + k as isize - 2, w)])
                        .sum();
                }
            }
            for oy in 0..oh {
                let cy = (oy * step) as isize;
                for ox in 0..ow {
                    let s: f32 = TAPS
                        .iter()
                        .enumerate()
                        .map(|(k, &t)| t * tmp[mirror(cy + k as isize - 2, h) * ow + ox])
                        .sum();
                    o[oy * ow + ox] = s * gain;
                }
            }
        });
    out
}

/// `pyr_down` (as `cv2.pyrDown`): blur, then every second pixel;
/// `planes × h × w` → `planes × ⌈h/2⌉ × ⌈w/2⌉`.
pub fn pyr_down(x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    blur(x, planes, h, w, 1.0, 2)
}

/// `pyr_up` (as `cv2.pyrUp`): zeros between the pixels, then 4× the blur;
/// `planes × h × w` → `planes × 2h × 2w`.
pub fn pyr_up(x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let (uh, uw) = (2 * h, 2 * w);
    let mut up = vec![0.0f32; planes * uh * uw];
    for (u, p) in up.chunks_mut(uh * uw).zip(x.chunks(h * w)) {
        for y in 0..h {
            for xx in 0..w {
                u[2 * y * uw + 2 * xx] = p[y * w + xx];
            }
        }
    }
    blur(&up, planes, uh, uw, 4.0, 1)
}

/// The Laplacian pyramid of `planes` square `res × res` planes with
/// `levels` levels: level `i` (resolution `res / 2^i`) is the band-pass
/// `G_i − pyr_up(G_{i+1})`, the last level the low-pass `G_{levels−1}`.
/// `res` must be divisible by `2^(levels−1)`.
pub fn laplacian_pyramid(x: &[f32], planes: usize, res: usize, levels: usize) -> Vec<Vec<f32>> {
    let mut pyr = vec![x.to_vec()];
    let mut r = res;
    for _ in 1..levels {
        let down = pyr_down(pyr.last().expect("a level"), planes, r, r);
        let up = pyr_up(&down, planes, r / 2, r / 2);
        for (a, b) in pyr.last_mut().expect("a level").iter_mut().zip(&up) {
            *a -= b;
        }
        pyr.push(down);
        r /= 2;
    }
    pyr
}

/// Inverse of [`laplacian_pyramid`]: from the coarsest level, `pyr_up` and
/// add the next finer one. `res` is the finest level's resolution.
pub fn reconstruct_laplacian_pyramid(pyr: &[Vec<f32>], planes: usize, res: usize) -> Vec<f32> {
    let Some(last) = pyr.last() else {
        return Vec::new();
    };
    let mut img = last.clone();
    let mut r = res >> (pyr.len() - 1);
    for level in pyr.iter().rev().skip(1) {
        img = pyr_up(&img, planes, r, r);
        for (a, b) in img.iter_mut().zip(level) {
            *a += b;
        }
        r *= 2;
    }
    img
}

/// Rounds images in [-1, 1] through 8 bits as the official scripts (and
/// `generate`'s PNGs) do, `(x·127.5 + 128)` clamped to [0, 255] and
/// truncated, and back as `u/127.5 − 1`, the data loader's conversion: the
/// official metric sees fakes as uint8, like the reals.
pub fn through_u8(x: &mut [f32]) {
    for v in x {
        let u = (*v * 127.5 + 128.0).clamp(0.0, 255.0) as u8;
        *v = u as f32 / 127.5 - 1.0;
    }
}

/// A 64-bit finalizer (splitmix64): well-mixed seeds from structured input.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// FNV-1a of the pixels' bit patterns: the image's identity for its
/// neighbourhood positions (stable across platforms and releases).
fn image_hash(px: &[f32]) -> u64 {
    px.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, v| {
        (h ^ v.to_bits() as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// Accumulates the raw descriptors of one set of images, minibatch by
/// minibatch (official `API.feed`); [`Descriptors::finalize`] normalizes.
pub struct Descriptors {
    resolution: usize,
    channels: usize,
    seed: u64,
    images: usize,
    /// Per level: rows of `channels · 7 · 7` values.
    levels: Vec<Vec<f32>>,
}

impl Descriptors {
    /// An empty set for `channels × resolution²` images; `seed` draws the
    /// neighbourhood positions. The resolution must be a power of two ≥ 16.
    pub fn new(resolution: usize, channels: usize, seed: u64) -> Result<Descriptors> {
        if resolution < MIN_RESOLUTION || !resolution.is_power_of_two() {
            return invalid(
                "swd",
                format!(
                    "images of {resolution}×{resolution}: the sliced Wasserstein distance needs a power-of-two resolution ≥ {MIN_RESOLUTION} (its coarsest pyramid level)"
                ),
            );
        }
        if channels == 0 {
            return invalid("swd", "images with 0 channels");
        }
        Ok(Descriptors {
            resolution,
            channels,
            seed,
            images: 0,
            levels: vec![Vec::new(); level_resolutions(resolution).len()],
        })
    }

    /// Images fed so far.
    pub fn len(&self) -> usize {
        self.images
    }

    pub fn is_empty(&self) -> bool {
        self.images == 0
    }

    pub fn resolution(&self) -> usize {
        self.resolution
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Adds `n` images `[n, C, R, R]` (any range; see the module doc).
    pub fn feed(&mut self, images: &[f32], n: usize) -> Result<()> {
        let (c, r) = (self.channels, self.resolution);
        let each = c * r * r;
        if images.len() != n * each {
            return shape_err(
                "swd",
                format!("{} values are not {n} images of {c}×{r}×{r}", images.len()),
            );
        }
        if let Some(i) = images.iter().position(|v| !v.is_finite()) {
            return invalid(
                "swd",
                format!("image {} holds a non-finite value", i / each),
            );
        }
        let nlev = self.levels.len();
        let seed = self.seed;
        let per_image: Vec<Vec<Vec<f32>>> = images
            .par_chunks(each)
            .map(|img| {
                let hash = image_hash(img);
                let pyr = laplacian_pyramid(img, c, r, nlev);
                pyr.iter()
                    .enumerate()
                    .map(|(lod, level)| {
                        let lr = r >> lod;
                        let mut rng = crate::rng(mix(mix(seed ^ hash) ^ lod as u64));
                        neighbourhoods(level, c, lr, &mut rng)
                    })
                    .collect()
            })
            .collect();
        for img in per_image {
            for (dst, d) in self.levels.iter_mut().zip(img) {
                dst.extend(d);
            }
        }
        self.images += n;
        Ok(())
    }

    /// Normalizes the descriptors of every level (official
    /// `finalize_descriptors`); fails on an empty set.
    pub fn finalize(self) -> Result<NormalizedDescriptors> {
        if self.images == 0 {
            return invalid("swd", "no images were fed");
        }
        let c = self.channels;
        let dim = c * NHOOD_SIZE * NHOOD_SIZE;
        let levels = self
            .levels
            .into_iter()
            .map(|d| normalize(d, c, dim))
            .collect();
        Ok(NormalizedDescriptors {
            resolutions: level_resolutions(self.resolution),
            images: self.images,
            dim,
            levels,
        })
    }
}

/// `NHOODS_PER_IMAGE` random 7×7 patches (all channels) of one `c × r × r`
/// level, each flattened as `[channel][y][x]`.
fn neighbourhoods(level: &[f32], c: usize, r: usize, rng: &mut crate::Rng) -> Vec<f32> {
    let h = NHOOD_SIZE / 2;
    let mut out = Vec::with_capacity(NHOODS_PER_IMAGE * c * NHOOD_SIZE * NHOOD_SIZE);
    for _ in 0..NHOODS_PER_IMAGE {
        // Official: np.random.randint(H, S - H), centres in [3, r − 3).
        let cx = rng.random_range(h..r - h);
        let cy = rng.random_range(h..r - h);
        for ch in 0..c {
            let plane = &level[ch * r * r..(ch + 1) * r * r];
            for y in cy - h..=cy + h {
                out.extend_from_slice(&plane[y * r + cx - h..=y * r + cx + h]);
            }
        }
    }
    out
}

/// Canonical row order, then per-channel standardization (population std
/// over rows and the 7×7 positions, in f64).
fn normalize(mut d: Vec<f32>, c: usize, dim: usize) -> Vec<f32> {
    let rows = d.len() / dim;
    // Sorting rows makes the sums below, and hence the result, independent
    // of the order the images came in.
    let mut order: Vec<usize> = (0..rows).collect();
    order.par_sort_unstable_by(|&a, &b| {
        let (ra, rb) = (&d[a * dim..(a + 1) * dim], &d[b * dim..(b + 1) * dim]);
        ra.iter()
            .zip(rb)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let sorted: Vec<f32> = order
        .iter()
        .flat_map(|&i| d[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    d = sorted;
    let per = dim / c;
    for ch in 0..c {
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for row in d.chunks_exact(dim) {
            for &v in &row[ch * per..(ch + 1) * per] {
                s += v as f64;
                s2 += (v as f64) * (v as f64);
            }
        }
        let n = (rows * per) as f64;
        let mean = s / n;
        let var = (s2 / n - mean * mean).max(0.0);
        let std = var.sqrt();
        // Zero variance: the channel is constant; centring alone leaves 0.
        let inv = if std > 1e-12 * (1.0 + mean.abs()) {
            1.0 / std
        } else {
            1.0
        };
        for row in d.chunks_exact_mut(dim) {
            for v in &mut row[ch * per..(ch + 1) * per] {
                *v = ((*v as f64 - mean) * inv) as f32;
            }
        }
    }
    d
}

/// The normalized descriptors of one set of images, per pyramid level.
pub struct NormalizedDescriptors {
    resolutions: Vec<usize>,
    images: usize,
    dim: usize,
    levels: Vec<Vec<f32>>,
}

impl NormalizedDescriptors {
    /// Images in the set.
    pub fn len(&self) -> usize {
        self.images
    }

    pub fn is_empty(&self) -> bool {
        self.images == 0
    }

    /// Resolutions of the pyramid levels, finest first.
    pub fn resolutions(&self) -> &[usize] {
        &self.resolutions
    }

    /// Components per descriptor (`C · 7 · 7`).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Level `i`'s descriptors, `len() · 128` rows of `dim()` values.
    pub fn level(&self, i: usize) -> &[f32] {
        &self.levels[i]
    }
}

/// The SWD of two sets: per level (finest first) and the mean, ×10³ as the
/// official report.
#[derive(Clone, Debug, PartialEq)]
pub struct SwdResult {
    pub resolutions: Vec<usize>,
    /// `SWDx1e3_<res>` per level.
    pub per_level: Vec<f64>,
    /// `SWDx1e3_avg`.
    pub mean: f64,
}

impl SwdResult {
    /// `(name, value)` with the official names: `SWDx1e3_<res>`, …,
    /// `SWDx1e3_avg`.
    pub fn named(&self) -> Vec<(String, f64)> {
        self.resolutions
            .iter()
            .zip(&self.per_level)
            .map(|(r, v)| (format!("SWDx1e3_{r}"), *v))
            .chain([("SWDx1e3_avg".to_string(), self.mean)])
            .collect()
    }

    /// A two-row table: the level names and the values.
    pub fn table(&self) -> String {
        let named = self.named();
        let head: Vec<String> = named.iter().map(|(n, _)| format!("{n:<14}")).collect();
        let vals: Vec<String> = named.iter().map(|(_, v)| format!("{v:<14.4}")).collect();
        format!(
            "{}\n{}\n",
            head.concat().trim_end(),
            vals.concat().trim_end()
        )
    }
}

/// The sliced Wasserstein distance of two equally sized sets of descriptors
/// (`rows × dim`, row-major), official `sliced_wasserstein` with
/// `DIR_REPEATS × DIRS_PER_REPEAT` directions drawn from `seed`.
pub fn sliced_wasserstein(a: &[f32], b: &[f32], dim: usize, seed: u64) -> Result<f64> {
    if dim == 0 || !a.len().is_multiple_of(dim) || a.len() != b.len() || a.is_empty() {
        return shape_err(
            "swd",
            format!(
                "descriptor sets of {} and {} values with {dim} components: need two equal, non-empty sets",
                a.len(),
                b.len()
            ),
        );
    }
    let rows = a.len() / dim;
    let mut rng = crate::rng(seed);
    let mut total = 0.0f64;
    for _ in 0..DIR_REPEATS {
        // Directions as rows: [DIRS_PER_REPEAT, dim], each of unit length.
        let mut dirs = vec![0.0f32; DIRS_PER_REPEAT * dim];
        for d in dirs.chunks_exact_mut(dim) {
            let v: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            for (o, x) in d.iter_mut().zip(&v) {
                *o = (x / norm) as f32;
            }
        }
        let project = |set: &[f32]| -> Vec<f32> {
            // [dirs, rows] = dirs · setᵀ: each direction's projections contiguous.
            let mut p = vec![0.0f32; DIRS_PER_REPEAT * rows];
            gemm_into(
                &mut p,
                MatRef::row_major(&dirs, DIRS_PER_REPEAT, dim),
                MatRef::row_major(set, rows, dim).t(),
                false,
                true,
            );
            p.par_chunks_mut(rows).for_each(radix_sort);
            p
        };
        let (pa, pb) = (project(a), project(b));
        let sum: f64 = pa
            .par_chunks(rows)
            .zip(pb.par_chunks(rows))
            .map(|(x, y)| {
                x.iter()
                    .zip(y)
                    .map(|(p, q)| (p - q).abs() as f64)
                    .sum::<f64>()
            })
            .sum();
        total += sum / (DIRS_PER_REPEAT * rows) as f64;
    }
    Ok(total / DIR_REPEATS as f64)
}

/// Sorts finite floats ascending (as `sort_unstable_by(f32::total_cmp)`)
/// with a 3-pass LSD radix sort on order-preserving keys: the projections'
/// sorts dominate the metric's time, and this is several times faster than
/// a comparison sort for the 10⁴–10⁶ values per direction.
pub fn radix_sort(v: &mut [f32]) {
    // Flip all bits of negatives, the sign bit of the rest: unsigned order
    // of the keys is the total order of the floats.
    let key = |x: f32| {
        let b = x.to_bits();
        b ^ if b >> 31 == 1 { u32::MAX } else { 1 << 31 }
    };
    let unkey = |k: u32| f32::from_bits(k ^ if k >> 31 == 0 { u32::MAX } else { 1 << 31 });
    let mut a: Vec<u32> = v.iter().map(|&x| key(x)).collect();
    let mut b = vec![0u32; a.len()];
    for shift in [0u32, 11, 22] {
        let mut count = [0usize; 2048];
        for &k in &a {
            count[((k >> shift) & 2047) as usize] += 1;
        }
        let mut sum = 0;
        for c in count.iter_mut() {
            let n = *c;
            *c = sum;
            sum += n;
        }
        for &k in &a {
            let d = &mut count[((k >> shift) & 2047) as usize];
            b[*d] = k;
            *d += 1;
        }
        std::mem::swap(&mut a, &mut b);
    }
    for (o, &k) in v.iter_mut().zip(&a) {
        *o = unkey(k);
    }
}

/// SWD ×10³ per level and the mean between two finalized sets of the same
/// size and image shape (official `API.end`); directions from `seed`.
pub fn swd(a: &NormalizedDescriptors, b: &NormalizedDescriptors, seed: u64) -> Result<SwdResult> {
    if a.resolutions != b.resolutions || a.dim != b.dim {
        return shape_err(
            "swd",
            format!(
                "sets of different images: levels {:?} with {} components vs {:?} with {}",
                a.resolutions, a.dim, b.resolutions, b.dim
            ),
        );
    }
    if a.images != b.images {
        return invalid(
            "swd",
            format!(
                "sets of {} and {} images: the distance compares equally many",
                a.images, b.images
            ),
        );
    }
    let per_level = (0..a.levels.len())
        .map(|i| {
            sliced_wasserstein(&a.levels[i], &b.levels[i], a.dim, mix(seed ^ mix(i as u64)))
                .map(|d| d * 1e3)
        })
        .collect::<Result<Vec<f64>>>()?;
    let mean = per_level.iter().sum::<f64>() / per_level.len() as f64;
    Ok(SwdResult {
        resolutions: a.resolutions.clone(),
        per_level,
        mean,
    })
}

/// SWD ×10³ of two sets of `n` images `[n, C, R, R]`: descriptors from
/// `desc_seed_a` / `desc_seed_b`, directions from `dir_seed`.
pub fn swd_images(
    a: &[f32],
    b: &[f32],
    n: usize,
    channels: usize,
    resolution: usize,
    desc_seeds: (u64, u64),
    dir_seed: u64,
) -> Result<SwdResult> {
    let mut da = Descriptors::new(resolution, channels, desc_seeds.0)?;
    da.feed(a, n)?;
    let mut db = Descriptors::new(resolution, channels, desc_seeds.1)?;
    db.feed(b, n)?;
    swd(&da.finalize()?, &db.finalize()?, dir_seed)
}
