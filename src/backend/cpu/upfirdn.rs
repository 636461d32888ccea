//! upfirdn2d: upsample by zero insertion, pad (negative = crop), FIR filter,
//! downsample. A direct loop: each output pixel sums only the filter taps
//! that land on real (not inserted, not padded) input pixels; the taps of
//! every output row and column are tabulated once per call.

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
struct Taps {
    start: Vec<usize>,
    pairs: Vec<(usize, usize)>,
}

/// Output `t` reads the upsampled, padded signal at `t·down + j` for filter
/// position `j`; that is input pixel `i` when `t·down + j − p0 = i·up`.
/// Correlation with the filter uses tap `j`, convolution tap `k − 1 − j`.
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

/// The taps of one axis as arithmetic progressions, one per filter index:
/// through filter tap `fi`, outputs `t0 + m·st` read inputs `i0 + m·si`
/// for `m < count`. Derived from [`taps`] (the same pairs, regrouped), so
/// both orders of summation see the same terms; see [`pass`].
struct Runs {
    runs: Vec<Run>,
}

#[derive(Clone, Copy, Debug)]
struct Run {
    fi: usize,
    t0: usize,
    st: usize,
    i0: usize,
    si: usize,
    count: usize,
}

/// Output `t` reads input `(t·down + j − p0) / up` through filter position
/// `j` when that division is exact and in range. For a fixed `j` those `t`
/// are one residue class modulo `up / gcd(up, down)` intersected with an
/// interval: an arithmetic progression.
fn runs(n: usize, up: usize, down: usize, p0: isize, k: usize, flip: bool, out: usize) -> Runs {
    let g = gcd(up, down);
    let st = up / g;
    let si = down / g;
    let mut runs = Vec::with_capacity(k);
    for j in 0..k {
        let input = |t: usize| {
            let q = (t * down) as i64 + j as i64 - p0 as i64;
            (q >= 0 && q % up as i64 == 0 && ((q / up as i64) as usize) < n)
                .then(|| (q / up as i64) as usize)
        };
        let Some(t0) = (0..out).find(|&t| input(t).is_some()) else {
            continue;
        };
        let i0 = input(t0).unwrap_or(0);
        let count = (t0..out)
            .step_by(st)
            .take_while(|&t| input(t).is_some())
            .count();
        let fi = if flip { j } else { k - 1 - j };
        runs.push(Run {
            fi,
            t0,
            st,
            i0,
            si,
            count,
        });
    }
    Runs { runs }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `out[t0 + m·st] += c · x[i0 + m·si]` for one run; the unit-stride case
/// is a plain axpy the compiler vectorizes.
fn axpy_run(out: &mut [f32], x: &[f32], c: f32, r: &Run) {
    if r.count == 0 {
        return;
    }
    if r.st == 1 && r.si == 1 {
        let o = &mut out[r.t0..r.t0 + r.count];
        let x = &x[r.i0..r.i0 + r.count];
        for (o, &x) in o.iter_mut().zip(x) {
            *o += c * x;
        }
    } else {
        for m in 0..r.count {
            out[r.t0 + m * r.st] += c * x[r.i0 + m * r.si];
        }
    }
}

/// One 2-D pass over `planes` images of `hw` with the filter `f` (`fhw`,
/// already scaled by the gain), producing `ohw`.
///
/// Each output row sums, over its row taps and then over the filter's
/// columns, one axpy per (row tap, filter column): the same terms in the
/// same order as [`pass_reference`] sums them per pixel, so the results are
/// identical (tested below), with no per-pixel tap lookup.
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
    let fw = fhw[1];
    let rows = taps(h, up[1], down[1], pad[2], fhw[0], flip, oh);
    let cols = runs(w, up[0], down[0], pad[0], fhw[1], flip, ow);
    let mut y = vec![0f32; planes * oh * ow];
    if y.is_empty() {
        return y;
    }
    let plane = |(pi, out): (usize, &mut [f32])| {
        let xp = &x[pi * h * w..(pi + 1) * h * w];
        for (ty, orow) in out.chunks_exact_mut(ow).enumerate() {
            for &(fy, iy) in &rows.pairs[rows.start[ty]..rows.start[ty + 1]] {
                let frow = &f[fy * fw..(fy + 1) * fw];
                let xrow = &xp[iy * w..(iy + 1) * w];
                for r in &cols.runs {
                    axpy_run(orow, xrow, frow[r.fi], r);
                }
            }
        }
    };
    // Multiply-adds of the whole call.
    let per_row: usize = cols.runs.iter().map(|r| r.count).sum();
    let work = planes * rows.pairs.len() * per_row;
    if work >= PAR_MIN && planes > 1 {
        y.par_chunks_mut(oh * ow).enumerate().for_each(plane);
    } else {
        y.chunks_mut(oh * ow).enumerate().for_each(plane);
    }
    y
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

    /// The progression form sums the same terms in the same order as the
    /// per-pixel reference: equal bit for bit, on up/down 1–3, odd sizes,
    /// positive and negative (cropping) pads, both filter orientations.
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
            let fast = pass(&x, planes, hw, &f, fhw, up, down, pad, flip, ohw);
            let slow = pass_reference(&x, planes, hw, &f, fhw, up, down, pad, flip, ohw);
            assert_eq!(fast, slow, "{p:?} hw {hw:?} filter {fhw:?}");
            checked += 1;
        }
        assert!(checked > 200, "only {checked} configurations had an output");
    }
}
