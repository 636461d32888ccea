//! Running the augment pipeline on a batch with given parameters: the four
//! stages of the official `AugmentPipe.forward` in its order (geometric,
//! colour, image-space filtering, corruptions), built from differentiable
//! ops so that gradients w.r.t. the images exist to every order. The
//! parameters, matrices, grids, filters, noise and masks are constants.

use super::matrix::{
    band_gains, color_matrix, filter_bank, geometric_inverse, mul3, scale2d, translate2d, M3, SYM6,
};
use super::{AugmentDraws, AugmentPipe};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::conv::{conv2d, Conv2d};
use crate::ops::grid_sample::grid_sample_affine;
use crate::ops::upfirdn::{upfirdn2d, upsample2d, UpFirDn};
use crate::tensor::Tensor;

const OP: &str = "augment";

fn invalid<T>(msg: String) -> Result<T> {
    Err(Error::Invalid { op: OP, msg })
}

/// `F.pad(x, mode='reflect')` along `axis` (2 or 3): `before` and `after`
/// mirrored pixels (the edge pixel itself not repeated), built from
/// narrow, flip and concat so it differentiates like them.
fn reflect_pad(x: &Tensor, axis: usize, before: usize, after: usize) -> Result<Tensor> {
    let len = x.dims()[axis];
    if before >= len.max(1) || after >= len.max(1) {
        return invalid(format!(
            "reflect padding of {before} and {after} pixels needs more than that many pixels along axis {axis}, the images have {len} ({})",
            x.shape()
        ));
    }
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(x.narrow(axis, 1, before)?.flip(&[axis])?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(x.narrow(axis, len - 1 - after, after)?.flip(&[axis])?);
    }
    Tensor::concat(&parts, axis)
}

impl AugmentPipe {
    /// Draws parameters at probability `p` (`draw`) and applies them.
    pub fn augment(&self, images: &Tensor, p: f32, rng: &mut crate::Rng) -> Result<Tensor> {
        let dims: [usize; 4] = images.dims().try_into().map_err(|_| Error::Shape {
            op: OP,
            msg: format!("the images must be [N, C, H, W], got {}", images.shape()),
        })?;
        let draws = self.draw(p, dims, rng);
        self.apply(images, &draws)
    }

    /// Applies the transformations that are on in `self` to `images
    /// [N, C, H, W]` with the per-sample parameters of `draws` (one per
    /// sample), returning `[N, C, H, W]`. Differentiable w.r.t. the images
    /// to any order.
    ///
    /// Errors: images that are not `[N, C, H, W]`, a parameter count other
    /// than N, noise images of the wrong size, colour transforms on images
    /// with other than 1 or 3 channels, or images too small for the reflect
    /// padding of the filtering stage (43-tap filters: H, W ≥ 22).
    pub fn apply(&self, images: &Tensor, draws: &AugmentDraws) -> Result<Tensor> {
        let [n, c, h, w] = match *images.dims() {
            [n, c, h, w] => [n, c, h, w],
            _ => {
                return Err(Error::Shape {
                    op: OP,
                    msg: format!("the images must be [N, C, H, W], got {}", images.shape()),
                })
            }
        };
        if draws.samples.len() != n {
            return invalid(format!(
                "{} parameter sets for a batch of {n} images",
                draws.samples.len()
            ));
        }
        if n == 0 || h == 0 || w == 0 {
            return Ok(images.clone());
        }
        let device = images.device();
        let mut x = images.clone();
        if self.geometric_on() {
            x = self.geometric(&x, draws)?;
        }
        if self.color_on(c) {
            x = self.color(&x, draws)?;
        }
        if self.imgfilter > 0.0 {
            x = self.filter(&x, draws)?;
        }
        if self.noise > 0.0 {
            let Some(z) = &draws.noise else {
                return invalid("noise is on but the draws hold no noise images".into());
            };
            if z.len() != n * c * h * w {
                return invalid(format!(
                    "{} noise values for images {}",
                    z.len(),
                    images.shape()
                ));
            }
            let plane = c * h * w;
            let scaled: Vec<f32> = z
                .iter()
                .enumerate()
                .map(|(i, v)| v * draws.samples[i / plane].noise)
                .collect();
            x = x.add(&Tensor::from_vec(scaled, [n, c, h, w], device)?)?;
        }
        if self.cutout > 0.0 {
            x = x.mul(&cutout_mask(draws, [n, h, w], device)?)?;
        }
        Ok(x)
    }

    /// The geometric stage: reflect-pad by the margin every sample needs, 2×
    /// up with the symlet-6 low-pass, bilinear sampling at the inverse
    /// transform, 2× down with the flipped filter cropping the margin.
    fn geometric(&self, x: &Tensor, draws: &AugmentDraws) -> Result<Tensor> {
        let [n, _, h, w] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
        let mut gs: Vec<M3> = draws
            .samples
            .iter()
            .map(|s| geometric_inverse(s, w, h))
            .collect();
        // Hz_pad: the filter reaches a quarter of its length in input pixels.
        let hz_pad = SYM6.len() / 4;
        let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        // Where the output's corners land in the input: the margin to pad.
        let mut m = [f64::NEG_INFINITY; 4]; // x0, y0, x1, y1
        for g in &gs {
            for (px, py) in [(-cx, -cy), (cx, -cy), (cx, cy), (-cx, cy)] {
                let qx = g[0][0] * px + g[0][1] * py + g[0][2];
                let qy = g[1][0] * px + g[1][1] * py + g[1][2];
                m[0] = m[0].max(-qx);
                m[1] = m[1].max(-qy);
                m[2] = m[2].max(qx);
                m[3] = m[3].max(qy);
            }
        }
        let extra = [2.0 * hz_pad as f64 - cx, 2.0 * hz_pad as f64 - cy];
        let lim = [w as f64 - 1.0, h as f64 - 1.0];
        let m: [usize; 4] =
            std::array::from_fn(|k| (m[k] + extra[k % 2]).max(0.0).min(lim[k % 2]).ceil() as usize);
        let [mx0, my0, mx1, my1] = m;
        let x = reflect_pad(&reflect_pad(x, 3, mx0, mx1)?, 2, my0, my1)?;
        let t = translate2d(
            (mx0 as f64 - mx1 as f64) / 2.0,
            (my0 as f64 - my1 as f64) / 2.0,
        );
        let sum: f64 = SYM6.iter().sum();
        let f = Tensor::from_vec(
            SYM6.iter().map(|v| (v / sum) as f32).collect(),
            [SYM6.len()],
            x.device(),
        )?;
        let x = upsample2d(&x, &f, 2, 1.0)?;
        let (ih, iw) = (x.dims()[2], x.dims()[3]);
        let (oh, ow) = ((h + 2 * hz_pad) * 2, (w + 2 * hz_pad) * 2);
        let mut theta = Vec::with_capacity(n * 6);
        for g in gs.iter_mut() {
            let mut a = mul3(&t, g);
            a = mul3(&mul3(&scale2d(2.0, 2.0), &a), &scale2d(0.5, 0.5));
            a = mul3(&mul3(&translate2d(-0.5, -0.5), &a), &translate2d(0.5, 0.5));
            a = mul3(
                &mul3(&scale2d(2.0 / iw as f64, 2.0 / ih as f64), &a),
                &scale2d(ow as f64 / 2.0, oh as f64 / 2.0),
            );
            theta.extend(a[..2].iter().flatten().map(|&v| v as f32));
        }
        let theta = Tensor::from_vec(theta, [n, 2, 3], x.device())?;
        let x = grid_sample_affine(&x, &theta, [oh, ow])?;
        // The official downsample2d(down=2, padding=−2·Hz_pad, flip_filter=True).
        let k = SYM6.len() as isize;
        let p = -2 * hz_pad as isize;
        let (p0, p1) = (p + (k - 1).div_euclid(2), p + (k - 2).div_euclid(2));
        upfirdn2d(
            &x,
            &f,
            &UpFirDn {
                up: [1, 1],
                down: [2, 2],
                pad: [p0, p1, p0, p1],
                flip_filter: true,
                gain: 1.0,
            },
        )
    }

    /// The colour stage: RGB images through each sample's 4×4 matrix
    /// (`C[:3, :3] · rgb + C[:3, 3]`); grayscale images through its mean row.
    fn color(&self, x: &Tensor, draws: &AugmentDraws) -> Result<Tensor> {
        let [n, c, h, w] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
        let device = x.device();
        let mats: Vec<_> = draws
            .samples
            .iter()
            .map(|s| color_matrix(s, c > 1))
            .collect();
        match c {
            3 => {
                let lin: Vec<f32> = mats
                    .iter()
                    .flat_map(|m| (0..3).flat_map(move |i| (0..3).map(move |j| m[i][j] as f32)))
                    .collect();
                let off: Vec<f32> = mats
                    .iter()
                    .flat_map(|m| (0..3).map(move |i| m[i][3] as f32))
                    .collect();
                let lin = Tensor::from_vec(lin, [n, 3, 3], device)?;
                let off = Tensor::from_vec(off, [n, 3, 1], device)?;
                lin.matmul(&x.reshape([n, 3, h * w])?)?
                    .add(&off)?
                    .reshape([n, c, h, w])
            }
            1 => {
                // Mean of the three colour rows: its RGB sum scales, its last entry offsets.
                let row =
                    |m: &super::matrix::M4, j: usize| (0..3).map(|i| m[i][j]).sum::<f64>() / 3.0;
                let scale: Vec<f32> = mats
                    .iter()
                    .map(|m| (row(m, 0) + row(m, 1) + row(m, 2)) as f32)
                    .collect();
                let off: Vec<f32> = mats.iter().map(|m| row(m, 3) as f32).collect();
                x.mul(&Tensor::from_vec(scale, [n, 1, 1, 1], device)?)?
                    .add(&Tensor::from_vec(off, [n, 1, 1, 1], device)?)
            }
            _ => invalid(format!(
                "colour augmentation needs RGB (3 channels) or L (1 channel) images, got {}",
                x.shape()
            )),
        }
    }

    /// Image-space filtering: each sample's band gains combine the filter
    /// bank into one zero-phase 43-tap filter, applied separably (rows, then
    /// columns) after reflect padding.
    fn filter(&self, x: &Tensor, draws: &AugmentDraws) -> Result<Tensor> {
        let [n, c, h, w] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
        let bank = filter_bank();
        let taps = bank[0].len();
        let mut f = Vec::with_capacity(n * c * taps);
        for s in &draws.samples {
            let g = band_gains(&s.imgfilter);
            let row: Vec<f32> = (0..taps)
                .map(|k| (0..4).map(|b| g[b] * bank[b][k]).sum::<f64>() as f32)
                .collect();
            for _ in 0..c {
                f.extend_from_slice(&row);
            }
        }
        let p = taps / 2;
        let x = reflect_pad(&reflect_pad(x, 3, p, p)?, 2, p, p)?.reshape([
            1,
            n * c,
            h + 2 * p,
            w + 2 * p,
        ])?;
        let groups = Conv2d {
            groups: n * c,
            ..Conv2d::default()
        };
        let fx = Tensor::from_vec(f.clone(), [n * c, 1, 1, taps], x.device())?;
        let fy = Tensor::from_vec(f, [n * c, 1, taps, 1], x.device())?;
        let x = conv2d(&x, &fx, groups)?;
        conv2d(&x, &fy, groups)?.reshape([n, c, h, w])
    }
}

/// The cutout masks `[N, 1, H, W]`: 0 inside each sample's rectangle (pixel
/// centres within `size/2` of the centre on both axes), 1 elsewhere.
fn cutout_mask(draws: &AugmentDraws, [n, h, w]: [usize; 3], device: Device) -> Result<Tensor> {
    let mut m = Vec::with_capacity(n * h * w);
    for s in &draws.samples {
        for y in 0..h {
            let out_y = ((y as f32 + 0.5) / h as f32 - s.cutout_center[1]).abs() >= s.cutout / 2.0;
            for x in 0..w {
                let out_x =
                    ((x as f32 + 0.5) / w as f32 - s.cutout_center[0]).abs() >= s.cutout / 2.0;
                m.push(if out_x || out_y { 1.0 } else { 0.0 });
            }
        }
    }
    Tensor::from_vec(m, [n, 1, h, w], device)
}
