//! upfirdn2d: upsample by zero insertion, pad (negative = crop), FIR filter,
//! downsample, as written: each plane is up-sampled and padded into a
//! scratch plane, then correlated with the filter, 16 outputs at a time.
//! The per-pixel loop over only the taps that land on real input pixels
//! (`pass_reference`, test-only) is the definition it is tested against.

use super::PAR_MIN;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Parameters of `upfirdn2d`, with the official conventions: `up` and `down`
/// are `[x, y]`, `pad` is `[x0, x1, y0, y1]` in upsampled pixels (negative
/// crops), `flip_filter = false` is a true convolution, `gain` scales the
/// filter (a 1-D separable filter takes `gain^½` in each of its two passes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpFirDn {
    pub up: [usize; 2],
    pub down: [usize; 2],
    pub pad: [isize; 4],
    pub flip_filter: bool,
    pub gain: f32,
}

impl Default for UpFirDn {
    /// The identity resampling: up 1, down 1, no padding, convolution, gain 1.
    fn default() -> Self {
        UpFirDn {
            up: [1, 1],
            down: [1, 1],
            pad: [0; 4],
            flip_filter: false,
            gain: 1.0,
        }
    }
}

/// Output length along one axis: `(n·up + p0 + p1 − k) / down + 1`, or `None`
/// when the padded length is shorter than the filter (or on overflow).
pub fn out_len(n: usize, up: usize, down: usize, p0: isize, p1: isize, k: usize) -> Option<usize> {
    let padded = (n as i128) * (up as i128) + p0 as i128 + p1 as i128;
    let span = padded - k as i128;
    if span < 0 || up == 0 || down == 0 {
        return None;
    }
    usize::try_from(span / down as i128 + 1).ok()
}

impl UpFirDn {
    /// Output `[h, w]` for an input of `hw` and a filter of `[fh, fw]`.
    pub fn out_size(&self, hw: [usize; 2], fhw: [usize; 2]) -> Option<[usize; 2]> {
        let oh = out_len(
            hw[0],
            self.up[1],
            self.down[1],
            self.pad[2],
            self.pad[3],
            fhw[0],
        )?;
        let ow = out_len(
            hw[1],
            self.up[0],
            self.down[0],
            self.pad[0],
            self.pad[1],
            fhw[1],
        )?;
        Some([oh, ow])
    }

    /// The parameters of the gradient: up and down swapped, the filter flip
    /// toggled, the same gain, and the padding of the official
    /// `Upfirdn2dCuda.backward`, which maps an output of `out_hw` back onto
    /// exactly `in_hw`.
    pub fn gradient(&self, in_hw: [usize; 2], out_hw: [usize; 2], fhw: [usize; 2]) -> UpFirDn {
        let [ih, iw] = in_hw.map(|v| v as isize);
        let [oh, ow] = out_hw.map(|v| v as isize);
        let [fh, fw] = fhw.map(|v| v as isize);
        let [ux, uy] = self.up.map(|v| v as isize);
        let [dx, dy] = self.down.map(|v| v as isize);
        let [x0, _, y0, _] = self.pad;
        UpFirDn {
            up: self.down,
            down: self.up,
            pad: [
                fw - x0 - 1,
                iw * ux - ow * dx + x0 - ux + 1,
                fh - y0 - 1,
                ih * uy - oh * dy + y0 - uy + 1,
            ],
            flip_filter: !self.flip_filter,
            gain: self.gain,
        }
    }
}

/// The taps of one axis: for output index `t`, the pairs (filter index,
/// input index) in `pairs[start[t]..start[t + 1]]`.
#[cfg(test)]
struct Taps {
    start: Vec<usize>,
    pairs: Vec<(usize, usize)>,
}

/// Output `t` reads the upsampled, padded signal at `t·down + j` for filter
/// position `j`; that is input pixel `i` when `t·down + j − p0 = i·up`.
/// Correlation with the filter uses tap `j`, convolution tap `k − 1 − j`.
#[cfg(test)]
fn taps(n: usize, up: usize, down: usize, p0: isize, k: usize, flip: bool, out: usize) -> Taps {
    let mut start = Vec::with_capacity(out + 1);
    let mut pairs = Vec::new();
    start.push(0);
    for t in 0..out {
        let c = (t * down) as i64 - p0 as i64;
        for j in 0..k {
            let q = c + j as i64;
            if q >= 0 && q % up as i64 == 0 && ((q / up as i64) as usize) < n {
                let fi = if flip { j } else { k - 1 - j };
                pairs.push((fi, (q / up as i64) as usize));
            }
        }
        start.push(pairs.len());
    }
    Taps { start, pairs }
}

/// Outputs computed together in registers by [`pass`].
const LANES: usize = 16;

/// One 2-D pass over `planes` images of `hw` with the filter `f` (`fhw`,
/// already scaled by the gain), producing `ohw`.
///
/// Each plane is written once into a scratch plane, up-sampled (zeros
/// inserted) and zero-padded (or cropped); then every output sums all
/// `fh·fw` filter taps over it, `LANES` outputs at a time in registers.
/// The real taps come in the order of [`pass_reference`], the others add
/// exact zeros, so the results are equal (tested below). Up-sampling by 2
/// thus multiplies by zeros 3 times in 4, which vectorized still beats a
/// scalar walk over the real taps.
#[allow(clippy::too_many_arguments)]
fn pass(
    x: &[f32],
    planes: usize,
    hw: [usize; 2],
    f: &[f32],
    fhw: [usize; 2],
    up: [usize; 2],
    down: [usize; 2],
    pad: [isize; 4],
    flip: bool,
    ohw: [usize; 2],
) -> Vec<f32> {
    let [h, w] = hw;
    let [oh, ow] = ohw;
    let [fh, fw] = fhw;
    let [dx, dy] = down;
    let [ux, uy] = up;
    let [px0, px1, py0, py1] = pad;
    // The up-sampled, padded plane; `out_size` guaranteed it holds the filter.
    let hp = ((h * uy) as isize + py0 + py1) as usize;
    let wp = ((w * ux) as isize + px0 + px1) as usize;
    // Rows are stored `ws` apart, with zeros past `wp`, so that the last
    // block of LANES outputs reads inside its row (its extra outputs are
    // dropped).
    let ws = wp.max((ow.div_ceil(LANES) * LANES - 1) * dx + fw);
    // The filter in summation order: tap j of an axis is filter index
    // j (flip) or k − 1 − j.
    let fk: Vec<f32> = (0..fh * fw)
        .map(|t| {
            let (jy, jx) = (t / fw, t % fw);
            let (iy, ix) = if flip {
                (jy, jx)
            } else {
                (fh - 1 - jy, fw - 1 - jx)
            };
            f[iy * fw + ix]
        })
        .collect();
    let mut y = vec![0f32; planes * oh * ow];
    if y.is_empty() {
        return y;
    }
    let plane = |zp: &mut Vec<f32>, (pi, out): (usize, &mut [f32])| {
        let xp = &x[pi * h * w..(pi + 1) * h * w];
        zp.clear();
        zp.resize(hp * ws, 0.0);
        for (iy, xrow) in xp.chunks_exact(w).enumerate() {
            // Input (iy, ix) lands on padded (iy·uy + py0, ix·ux + px0).
            let r = (iy * uy) as isize + py0;
            if r < 0 || r >= hp as isize {
                continue;
            }
            let zrow = &mut zp[r as usize * ws..][..wp];
            if ux == 1 {
                let c0 = px0.max(0) as usize;
                let i0 = (-px0).max(0) as usize;
                if c0 < wp && i0 < w {
                    let len = (w - i0).min(wp - c0);
                    zrow[c0..c0 + len].copy_from_slice(&xrow[i0..i0 + len]);
                }
            } else {
                for (ix, &v) in xrow.iter().enumerate() {
                    let c = (ix * ux) as isize + px0;
                    if c >= 0 && c < wp as isize {
                        zrow[c as usize] = v;
                    }
                }
            }
        }
        correlate(zp, ws, &fk, [fh, fw], [dx, dy], out, ow);
    };
    let work = planes * oh * ow * fh * fw;
    if work >= PAR_MIN && planes > 1 {
        y.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each_init(Vec::new, plane);
    } else {
        let mut zp = Vec::new();
        y.chunks_mut(oh * ow)
            .enumerate()
            .for_each(|t| plane(&mut zp, t));
    }
    y
}

#[cfg(test)]
use tests::portable_only;

/// Tests ask for the portable loop on their own thread (calls small enough
/// not to go to the thread pool).
#[cfg(not(test))]
fn portable_only() -> bool {
    false
}

/// `out` (rows of `ow`) = the correlation of the padded plane `zp` (rows
/// `ws` apart, each readable up to `(⌈ow/LANES⌉·LANES − 1)·dx + fw`) with
/// `fk` (`[fh, fw]`, in summation order) at strides `[dx, dy]`. On a CPU
/// with AVX-512 (the crate is built for the x86-64 baseline) strides 1 and 2
/// run on 16-lane registers: a multiply then an add per tap, as the
/// portable loop, so the results are the same.
fn correlate(
    zp: &[f32],
    ws: usize,
    fk: &[f32],
    fhw: [usize; 2],
    down: [usize; 2],
    out: &mut [f32],
    ow: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if (down[0] == 1 || down[0] == 2)
        && !portable_only()
        && std::arch::is_x86_feature_detected!("avx512f")
    {
        // SAFETY: the CPU supports AVX-512F (checked above).
        return unsafe { avx512::correlate(zp, ws, fk, fhw, down, out, ow) };
    }
    // Without AVX-512 (the AMD EPYC CPUs the CPU bench runs on), AVX2 holds
    // a block in two 8-lane registers where the baseline build has four
    // SSE ones: the FIR was ~19% of a CPU training step on the SSE loop.
    #[cfg(target_arch = "x86_64")]
    if (down[0] == 1 || down[0] == 2)
        && !portable_only()
        && std::arch::is_x86_feature_detected!("avx2")
    {
        // SAFETY: the CPU supports AVX2 (checked above).
        return unsafe { avx2::correlate(zp, ws, fk, fhw, down, out, ow) };
    }
    let [fh, fw] = fhw;
    let [dx, dy] = down;
    for (ty, orow) in out.chunks_exact_mut(ow).enumerate() {
        for tx0 in (0..ow).step_by(LANES) {
            let mut acc = [0f32; LANES];
            for jy in 0..fh {
                let zrow = &zp[(ty * dy + jy) * ws..][..ws];
                for (jx, &c) in fk[jy * fw..(jy + 1) * fw].iter().enumerate() {
                    let z = &zrow[tx0 * dx + jx..][..(LANES - 1) * dx + 1];
                    for (k, a) in acc.iter_mut().enumerate() {
                        *a += c * z[k * dx];
                    }
                }
            }
            let l = (ow - tx0).min(LANES);
            orow[tx0..tx0 + l].copy_from_slice(&acc[..l]);
        }
    }
}

// AVX-512 intrinsics are stable since Rust 1.89 (as is gemm's x86-v4
// feature this crate enables), newer than the declared rust-version.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod avx512 {
    use super::LANES;
    use std::arch::x86_64::*;

    /// [`super::correlate`] for `dx` 1 or 2 on 16-lane registers.
    #[target_feature(enable = "avx512f")]
    pub(super) fn correlate(
        zp: &[f32],
        ws: usize,
        fk: &[f32],
        fhw: [usize; 2],
        down: [usize; 2],
        out: &mut [f32],
        ow: usize,
    ) {
        let [fh, fw] = fhw;
        let [dx, dy] = down;
        debug_assert!(dx == 1 || dx == 2);
        // Lanes 0, 2, …, 30 of two consecutive 16-float loads.
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let mut buf = [0f32; LANES];
        for (ty, orow) in out.chunks_exact_mut(ow).enumerate() {
            for tx0 in (0..ow).step_by(LANES) {
                let mut acc = _mm512_setzero_ps();
                for jy in 0..fh {
                    let zrow = &zp[(ty * dy + jy) * ws..][..ws];
                    for (jx, &c) in fk[jy * fw..(jy + 1) * fw].iter().enumerate() {
                        let base = tx0 * dx + jx;
                        // In bounds: `ws` covers (LANES − 1)·dx + 1 floats
                        // from `base` (the caller's row layout); for dx = 2
                        // the second load ends one float past the last read
                        // one, which the assert covers too.
                        let need = if dx == 1 { LANES } else { 2 * LANES };
                        let z = &zrow[base..];
                        let v = if dx == 1 {
                            assert!(z.len() >= need);
                            // SAFETY: 16 floats readable (asserted).
                            unsafe { _mm512_loadu_ps(z.as_ptr()) }
                        } else if z.len() >= need {
                            // SAFETY: 32 floats readable (checked).
                            unsafe {
                                let a = _mm512_loadu_ps(z.as_ptr());
                                let b = _mm512_loadu_ps(z.as_ptr().add(LANES));
                                _mm512_permutex2var_ps(a, even, b)
                            }
                        } else {
                            // The row's last block: gather the 16 even floats.
                            let mut t = [0f32; LANES];
                            for (k, t) in t.iter_mut().enumerate() {
                                *t = z[2 * k];
                            }
                            // SAFETY: reads the local array.
                            unsafe { _mm512_loadu_ps(t.as_ptr()) }
                        };
                        acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_set1_ps(c), v));
                    }
                }
                // SAFETY: writes the local array of 16 floats.
                unsafe { _mm512_storeu_ps(buf.as_mut_ptr(), acc) };
                let l = (ow - tx0).min(LANES);
                orow[tx0..tx0 + l].copy_from_slice(&buf[..l]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::LANES;
    use std::arch::x86_64::*;

    /// [`super::correlate`] for `dx` 1 or 2 on two 8-lane registers: a
    /// multiply then an add per tap (no FMA), as the portable loop, so the
    /// results are the same.
    #[target_feature(enable = "avx2")]
    pub(super) fn correlate(
        zp: &[f32],
        ws: usize,
        fk: &[f32],
        fhw: [usize; 2],
        down: [usize; 2],
        out: &mut [f32],
        ow: usize,
    ) {
        let [fh, fw] = fhw;
        let [dx, dy] = down;
        debug_assert!(dx == 1 || dx == 2);
        let mut buf = [0f32; LANES];
        for (ty, orow) in out.chunks_exact_mut(ow).enumerate() {
            for tx0 in (0..ow).step_by(LANES) {
                let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                for jy in 0..fh {
                    let zrow = &zp[(ty * dy + jy) * ws..][..ws];
                    for (jx, &c) in fk[jy * fw..(jy + 1) * fw].iter().enumerate() {
                        let z = &zrow[tx0 * dx + jx..];
                        // In bounds: `ws` covers (LANES − 1)·dx + 1 floats
                        // from here (the caller's row layout); for dx = 2 the
                        // last load ends one float past the last one read,
                        // which the check covers too.
                        let (a, b) = if dx == 1 {
                            assert!(z.len() >= LANES);
                            // SAFETY: 16 floats readable (asserted).
                            unsafe {
                                (
                                    _mm256_loadu_ps(z.as_ptr()),
                                    _mm256_loadu_ps(z.as_ptr().add(8)),
                                )
                            }
                        } else if z.len() >= 2 * LANES {
                            // SAFETY: 32 floats readable (checked).
                            unsafe { (evens(z.as_ptr()), evens(z.as_ptr().add(LANES))) }
                        } else {
                            // The row's last block: gather the 16 even floats.
                            let mut t = [0f32; LANES];
                            for (k, t) in t.iter_mut().enumerate() {
                                *t = z[2 * k];
                            }
                            // SAFETY: reads the local array.
                            unsafe {
                                (
                                    _mm256_loadu_ps(t.as_ptr()),
                                    _mm256_loadu_ps(t.as_ptr().add(8)),
                                )
                            }
                        };
                        let c = _mm256_set1_ps(c);
                        lo = _mm256_add_ps(lo, _mm256_mul_ps(c, a));
                        hi = _mm256_add_ps(hi, _mm256_mul_ps(c, b));
                    }
                }
                // SAFETY: writes the local array of 16 floats.
                unsafe {
                    _mm256_storeu_ps(buf.as_mut_ptr(), lo);
                    _mm256_storeu_ps(buf.as_mut_ptr().add(8), hi);
                }
                let l = (ow - tx0).min(LANES);
                orow[tx0..tx0 + l].copy_from_slice(&buf[..l]);
            }
        }
    }

    /// Floats 0, 2, …, 14 of the 16 at `p`.
    ///
    /// # Safety
    /// 16 floats readable at `p`; AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn evens(p: *const f32) -> __m256 {
        // SAFETY: the caller's contract.
        let (a, b) = unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) };
        // [a0 a2 b0 b2 | a4 a6 b4 b6], then 64-bit lanes 0 2 1 3.
        let s = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(s)))
    }
}

/// The direct per-pixel loop over the tabulated taps: the plain definition
/// that [`pass`] is tested against.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
fn pass_reference(
    x: &[f32],
    planes: usize,
    hw: [usize; 2],
    f: &[f32],
    fhw: [usize; 2],
    up: [usize; 2],
    down: [usize; 2],
    pad: [isize; 4],
    flip: bool,
    ohw: [usize; 2],
) -> Vec<f32> {
    let [h, w] = hw;
    let [oh, ow] = ohw;
    let fw = fhw[1];
    let rows = taps(h, up[1], down[1], pad[2], fhw[0], flip, oh);
    let cols = taps(w, up[0], down[0], pad[0], fhw[1], flip, ow);
    let mut y = vec![0f32; planes * oh * ow];
    for (pi, out) in y.chunks_mut((oh * ow).max(1)).enumerate() {
        let xp = &x[pi * h * w..(pi + 1) * h * w];
        for ty in 0..oh {
            let rt = &rows.pairs[rows.start[ty]..rows.start[ty + 1]];
            for tx in 0..ow {
                let ct = &cols.pairs[cols.start[tx]..cols.start[tx + 1]];
                let mut acc = 0f32;
                for &(fy, iy) in rt {
                    for &(fx, ix) in ct {
                        acc += xp[iy * w + ix] * f[fy * fw + fx];
                    }
                }
                out[ty * ow + tx] = acc;
            }
        }
    }
    y
}

/// upfirdn2d of `planes` images of `hw` (row-major, plane after plane).
///
/// `f_dims` is `[fh, fw]` for a 2-D filter or `[k]` for a separable one,
/// applied along x then along y with `gain^½` each (a negative gain keeps its
/// sign in the first pass). The caller (`ops::upfirdn`) validates the
/// arguments; what it missed comes back as `Error::Internal`.
pub fn upfirdn2d(
    x: &[f32],
    planes: usize,
    hw: [usize; 2],
    f: &[f32],
    f_dims: &[usize],
    p: &UpFirDn,
) -> Result<Vec<f32>> {
    let bad = |what: &str| {
        Error::Internal(format!(
            "cpu upfirdn2d: {what} ({p:?}, input {hw:?}, filter {f_dims:?})"
        ))
    };
    if x.len() != planes * hw[0] * hw[1] || f.len() != f_dims.iter().product::<usize>() {
        return Err(bad("buffer sizes do not match the dims"));
    }
    match *f_dims {
        [k] => {
            let root = p.gain.abs().sqrt();
            let fx: Vec<f32> = f.iter().map(|&v| v * root.copysign(p.gain)).collect();
            let fy: Vec<f32> = f.iter().map(|&v| v * root).collect();
            let [oh, ow] = p
                .out_size(hw, [k, k])
                .ok_or_else(|| bad("no output size"))?;
            let t = pass(
                x,
                planes,
                hw,
                &fx,
                [1, k],
                [p.up[0], 1],
                [p.down[0], 1],
                [p.pad[0], p.pad[1], 0, 0],
                p.flip_filter,
                [hw[0], ow],
            );
            Ok(pass(
                &t,
                planes,
                [hw[0], ow],
                &fy,
                [k, 1],
                [1, p.up[1]],
                [1, p.down[1]],
                [0, 0, p.pad[2], p.pad[3]],
                p.flip_filter,
                [oh, ow],
            ))
        }
        [fh, fw] => {
            let fg: Vec<f32> = f.iter().map(|&v| v * p.gain).collect();
            let ohw = p
                .out_size(hw, [fh, fw])
                .ok_or_else(|| bad("no output size"))?;
            Ok(pass(
                x,
                planes,
                hw,
                &fg,
                [fh, fw],
                p.up,
                p.down,
                p.pad,
                p.flip_filter,
                ohw,
            ))
        }
        _ => Err(bad("the filter must have rank 1 or 2")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::cell::Cell;

    thread_local! {
        static PORTABLE_ONLY: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether this test thread asked for the portable loop only.
    pub(super) fn portable_only() -> bool {
        PORTABLE_ONLY.with(|p| p.get())
    }

    /// The dense form sums the real taps in the order of the per-pixel
    /// reference and adds exact zeros for the others: equal, on up/down 1–3,
    /// odd sizes, positive and negative (cropping) pads, both filter
    /// orientations.
    #[test]
    fn pass_equals_reference() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut checked = 0;
        for _ in 0..400 {
            let hw = [rng.random_range(1..9), rng.random_range(1..9)];
            let fhw = [rng.random_range(1..6), rng.random_range(1..6)];
            let up = [rng.random_range(1..4), rng.random_range(1..4)];
            let down = [rng.random_range(1..4), rng.random_range(1..4)];
            let pad = [0; 4].map(|_| rng.random_range(-3i64..5) as isize);
            let flip = rng.random_bool(0.5);
            let p = UpFirDn {
                up,
                down,
                pad,
                flip_filter: flip,
                gain: 1.0,
            };
            let Some(ohw) = p.out_size(hw, fhw) else {
                continue;
            };
            let planes = 3;
            let x: Vec<f32> = (0..planes * hw[0] * hw[1])
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let f: Vec<f32> = (0..fhw[0] * fhw[1])
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let slow = pass_reference(&x, planes, hw, &f, fhw, up, down, pad, flip, ohw);
            // The SIMD path where the CPU has it, and the portable loop.
            for portable in [false, true] {
                PORTABLE_ONLY.with(|p| p.set(portable));
                let fast = pass(&x, planes, hw, &f, fhw, up, down, pad, flip, ohw);
                assert_eq!(
                    fast, slow,
                    "{p:?} hw {hw:?} filter {fhw:?} portable {portable}"
                );
            }
            checked += 1;
        }
        assert!(checked > 200, "only {checked} configurations had an output");
    }

    /// Without up-sampling, on the model's shapes and beyond:
    /// 4×4 and separable filters, down 1 and 2, pads that crop, widths
    /// across the register block.
    #[test]
    fn pass_without_upsampling_equals_reference() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let mut checked = 0;
        for _ in 0..300 {
            let hw = [rng.random_range(1..12), rng.random_range(1..40)];
            let fhw = [rng.random_range(1..6), rng.random_range(1..6)];
            let down = [rng.random_range(1..4), rng.random_range(1..4)];
            let pad = [0; 4].map(|_| rng.random_range(-3i64..5) as isize);
            let flip = rng.random_bool(0.5);
            let p = UpFirDn {
                up: [1, 1],
                down,
                pad,
                flip_filter: flip,
                gain: 1.0,
            };
            let Some(ohw) = p.out_size(hw, fhw) else {
                continue;
            };
            let planes = 2;
            let x: Vec<f32> = (0..planes * hw[0] * hw[1])
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let f: Vec<f32> = (0..fhw[0] * fhw[1])
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let slow = pass_reference(&x, planes, hw, &f, fhw, [1, 1], down, pad, flip, ohw);
            for portable in [false, true] {
                PORTABLE_ONLY.with(|p| p.set(portable));
                let fast = pass(&x, planes, hw, &f, fhw, [1, 1], down, pad, flip, ohw);
                assert_eq!(
                    fast, slow,
                    "{p:?} hw {hw:?} filter {fhw:?} portable {portable}"
                );
            }
            checked += 1;
        }
        assert!(checked > 150, "only {checked} configurations had an output");
    }
}
