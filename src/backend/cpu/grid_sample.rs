//! Bilinear grid sampling on an affine grid (PyTorch's `grid_sample` of
//! `affine_grid(theta)`, zeros padding, `align_corners = False`) and its
//! input gradient, the transposed scatter. One plane per rayon task; the
//! scatter of a plane runs in output order, so results are deterministic.
//!
//! Conventions (shared with `kernels/grid_sample.cu`): output pixel `(oy, ox)`
//! of an `[oh, ow]` plane has normalized coordinates
//! `xn = (2·ox + 1 − ow) / ow`, `yn = (2·oy + 1 − oh) / oh`; the grid point is
//! `g = θ[n] · (xn, yn, 1)` and is read at input pixel coordinates
//! `ix = ((gx + 1)·w − 1) / 2`, `iy = ((gy + 1)·h − 1) / 2`.

use super::PAR_MIN;
use rayon::prelude::*;

/// The top-left neighbour and the weights of the four neighbours
/// (nw, ne, sw, se) of output pixel `(ox, oy)`.
#[inline]
fn bilinear_at(
    t: &[f32],
    ox: usize,
    oy: usize,
    ohw: [usize; 2],
    hw: [usize; 2],
) -> (i64, i64, [f32; 4]) {
    let [oh, ow] = ohw;
    let [h, w] = hw;
    let xn = (2 * ox as i64 + 1 - ow as i64) as f32 / ow as f32;
    let yn = (2 * oy as i64 + 1 - oh as i64) as f32 / oh as f32;
    let gx = t[0] * xn + t[1] * yn + t[2];
    let gy = t[3] * xn + t[4] * yn + t[5];
    let ix = ((gx + 1.0) * w as f32 - 1.0) * 0.5;
    let iy = ((gy + 1.0) * h as f32 - 1.0) * 0.5;
    let (fx, fy) = (ix.floor(), iy.floor());
    // Clamped as the kernel does: far-away points contribute nothing anyway.
    let x0 = fx.max(-2.0).min(w as f32 + 1.0) as i64;
    let y0 = fy.max(-2.0).min(h as f32 + 1.0) as i64;
    let (ax, ay) = (ix - fx, iy - fy);
    (
        x0,
        y0,
        [
            (1.0 - ax) * (1.0 - ay),
            ax * (1.0 - ay),
            (1.0 - ax) * ay,
            ax * ay,
        ],
    )
}

/// The in-plane index of neighbour `k` (0..4: nw, ne, sw, se), if inside.
#[inline]
fn tap(x0: i64, y0: i64, k: usize, hw: [usize; 2]) -> Option<usize> {
    let (px, py) = (x0 + (k & 1) as i64, y0 + (k >> 1) as i64);
    (px >= 0 && py >= 0 && (px as usize) < hw[1] && (py as usize) < hw[0])
        .then(|| py as usize * hw[1] + px as usize)
}

/// Visits every output pixel `o` of one plane and each of its in-bounds
/// bilinear neighbours `i` with weight `w`, in the order nw, ne, sw, se: the
/// forward gathers along these pairs, the input grad scatters along them.
fn for_each_tap(t: &[f32], ohw: [usize; 2], hw: [usize; 2], mut f: impl FnMut(usize, usize, f32)) {
    for oy in 0..ohw[0] {
        for ox in 0..ohw[1] {
            let (x0, y0, wts) = bilinear_at(t, ox, oy, ohw, hw);
            for (k, &wk) in wts.iter().enumerate() {
                if let Some(i) = tap(x0, y0, k, hw) {
                    f(oy * ohw[1] + ox, i, wk);
                }
            }
        }
    }
}

/// `y [n, c, oh, ow]` sampled from `x [n, c, h, w]` with `theta [n, 2, 3]`.
pub fn grid_sample_affine(
    x: &[f32],
    theta: &[f32],
    c: usize,
    hw: [usize; 2],
    ohw: [usize; 2],
) -> Vec<f32> {
    let (plane_in, plane_out) = (hw[0] * hw[1], ohw[0] * ohw[1]);
    let mut y = vec![0f32; x.len() / plane_in.max(1) * plane_out];
    if plane_in == 0 || plane_out == 0 {
        return y;
    }
    let run = |(p, yp): (usize, &mut [f32])| {
        let t = &theta[(p / c) * 6..(p / c) * 6 + 6];
        let xp = &x[p * plane_in..(p + 1) * plane_in];
        for_each_tap(t, ohw, hw, |o, i, wk| yp[o] += xp[i] * wk);
    };
    if y.len() >= PAR_MIN {
        y.par_chunks_mut(plane_out).enumerate().for_each(run);
    } else {
        y.chunks_mut(plane_out).enumerate().for_each(run);
    }
    y
}

/// The input gradient `gx [n, c, h, w]` of `grid_sample_affine` for the
/// output gradient `g [n, c, oh, ow]`: each output pixel's value scattered to
/// its four neighbours with the bilinear weights.
pub fn grid_sample_affine_input_grad(
    g: &[f32],
    theta: &[f32],
    c: usize,
    hw: [usize; 2],
    ohw: [usize; 2],
) -> Vec<f32> {
    let (plane_in, plane_out) = (hw[0] * hw[1], ohw[0] * ohw[1]);
    let mut gx = vec![0f32; g.len() / plane_out.max(1) * plane_in];
    if plane_in == 0 || plane_out == 0 {
        return gx;
    }
    let run = |(p, gp): (usize, &mut [f32])| {
        let t = &theta[(p / c) * 6..(p / c) * 6 + 6];
        let go = &g[p * plane_out..(p + 1) * plane_out];
        for_each_tap(t, ohw, hw, |o, i, wk| gp[i] += go[o] * wk);
    };
    if gx.len() >= PAR_MIN {
        gx.par_chunks_mut(plane_in).enumerate().for_each(run);
    } else {
        gx.chunks_mut(plane_in).enumerate().for_each(run);
    }
    gx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_theta_reproduces_the_input() {
        // θ = [[1, 0, 0], [0, 1, 0]] samples every pixel at its own center.
        let x: Vec<f32> = (0..2 * 3 * 5).map(|v| v as f32).collect();
        let t = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let y = grid_sample_affine(&x, &t, 2, [3, 5], [3, 5]);
        assert_eq!(y, x);
    }

    #[test]
    fn half_pixel_shift_averages_neighbours_and_pads_zeros() {
        // Shift right by half a pixel of a 1×2 plane: gx = xn + 1/2 (one pixel = 2/w).
        let x = [2.0, 4.0];
        let t = [1.0, 0.0, 0.5, 0.0, 1.0, 0.0];
        let y = grid_sample_affine(&x, &t, 1, [1, 2], [1, 2]);
        assert_eq!(y, vec![3.0, 2.0]); // (2 + 4) / 2, then (4 + 0) / 2
                                       // Adjointness: ⟨A x, g⟩ = ⟨x, Aᵀ g⟩.
        let g = [0.5, -1.5];
        let gx = grid_sample_affine_input_grad(&g, &t, 1, [1, 2], [1, 2]);
        let lhs: f32 = y.iter().zip(&g).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&gx).map(|(a, b)| a * b).sum();
        assert_eq!(lhs, rhs);
    }
}
