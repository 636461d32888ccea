//! Launch code for `kernels/upfirdn.cu`: the general upfirdn2d kernel and
//! the tiled fast paths for the StyleGAN2 hot cases (4×4 filter, up 2 or
//! down 2), chosen at launch, on `Device::Cuda` and `Device::Sim` alike.

use super::launch::{launch, Args, Config, KernelArg};
use super::{alloc, InBuf};
use crate::backend::cpu::upfirdn::UpFirDn;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::tensor::Storage;
use std::cell::Cell;

const FAMILY: &str = "upfirdn";
/// `UP2_T` / `DOWN_T` of upfirdn.cu: threads per block and axis.
const UP2_T: usize = 16;
const DOWN_T: usize = 16;
/// The most blocks in grid z (planes): beyond, each block walks several planes
/// (grid-stride). 4096 planes of even one tile give 1M threads, more than a
/// GPU holds at once, and stay within the 65535 limit of grid z.
pub const MAX_GRID_Z: usize = 4096;

/// `struct Taps16` of upfirdn.cu: 4×4 correlation weights, row-major.
#[repr(C)]
#[derive(Clone, Copy)]
struct Taps16([f32; 16]);
// SAFETY: plain f32s, the C layout of `struct Taps16 { float t[16]; }`.
unsafe impl KernelArg for Taps16 {}

thread_local! {
    static FAST_PATHS: Cell<bool> = const { Cell::new(true) };
}

/// Restores the previous fast-path setting when dropped.
pub struct FastPathGuard {
    prev: bool,
}

impl Drop for FastPathGuard {
    fn drop(&mut self) {
        FAST_PATHS.with(|f| f.set(self.prev));
    }
}

/// While the guard lives, upfirdn2d on this thread uses only the general
/// kernel (to compare the fast paths against it, in tests and benchmarks).
pub fn general_only() -> FastPathGuard {
    FastPathGuard {
        prev: FAST_PATHS.with(|f| f.replace(false)),
    }
}

/// The tiled kernel that serves `p` with a filter of `f_dims`, if any: a 2-D
/// 4×4 filter with up 2 (down 1), or up 1 and down 2 or 1, on both axes, any
/// padding, flip and gain. `None` means the general kernel.
pub fn fast_path(p: &UpFirDn, f_dims: &[usize]) -> Option<&'static str> {
    if f_dims != [4, 4] || !FAST_PATHS.with(|f| f.get()) {
        return None;
    }
    match (p.up, p.down) {
        ([2, 2], [1, 1]) => Some("upfirdn2d_up2_k4"),
        ([1, 1], [2, 2]) | ([1, 1], [1, 1]) => Some("upfirdn2d_down_k4"),
        _ => None,
    }
}

/// The kernels index planes with 32-bit coordinates: every upsampled,
/// padded or downsampled extent must fit with room to spare.
fn check_extents(hw: [usize; 2], ohw: [usize; 2], fhw: [usize; 2], p: &UpFirDn) -> Result<()> {
    let lim = (i32::MAX / 4) as i128;
    let pads: i128 = p.pad.iter().map(|v| v.unsigned_abs() as i128).sum();
    let spans = [
        hw[0] as i128 * p.up[1] as i128 + pads,
        hw[1] as i128 * p.up[0] as i128 + pads,
        ohw[0] as i128 * p.down[1] as i128 + fhw[0] as i128 + pads,
        ohw[1] as i128 * p.down[0] as i128 + fhw[1] as i128 + pads,
    ];
    if spans.iter().any(|&s| s > lim) {
        return Err(Error::Invalid {
            op: "upfirdn2d",
            msg: format!(
                "input {hw:?} with {p:?} is too large for the CUDA kernels' 32-bit plane coordinates"
            ),
        });
    }
    Ok(())
}

/// One launch of `upfirdn2d_general` with a `[fh, fw]` filter `f` whose taps
/// are scaled by `gain` in the kernel.
#[allow(clippy::too_many_arguments)]
fn general(
    x: &Storage,
    planes: usize,
    hw: [usize; 2],
    f: &InBuf,
    fhw: [usize; 2],
    up: [usize; 2],
    down: [usize; 2],
    pad0: [isize; 2],
    flip: bool,
    gain: f32,
    ohw: [usize; 2],
    device: Device,
) -> Result<Storage> {
    let n = planes * ohw[0] * ohw[1];
    let mut y = alloc(device, n)?;
    if n == 0 {
        return Ok(y.into_storage());
    }
    let xin = InBuf::new(x, device)?;
    let mut args = Args::new();
    args.push(y.ptr())
        .push(xin.ptr())
        .push(f.ptr())
        .push(planes as i64);
    for v in [hw[0], hw[1], ohw[0], ohw[1], fhw[0], fhw[1]] {
        args.push(v as i32);
    }
    for v in [up[0], up[1], down[0], down[1]] {
        args.push(v as i32);
    }
    args.push(pad0[0] as i32)
        .push(pad0[1] as i32)
        .push(flip as i32)
        .push(gain);
    // SAFETY: matches upfirdn2d_general's parameters; x holds planes·h·w
    // floats, y planes·oh·ow, f fh·fw; every read is bounds-checked in the
    // kernel against h and w, and the extents fit in i32 (check_extents).
    unsafe {
        launch(
            device,
            FAMILY,
            "upfirdn2d_general",
            Config::linear(n),
            &mut args,
        )?
    };
    Ok(y.into_storage())
}

/// The 16 correlation weights of a 4×4 filter: tap (jy, jx) multiplies the
/// padded signal at offset (jy, jx), i.e. `f[jy][jx]` when `flip`, else
/// `f[3 − jy][3 − jx]`, times the gain (as the CPU scales its filter).
fn taps16(f: &[f32], flip: bool, gain: f32) -> Taps16 {
    let mut t = [0f32; 16];
    for jy in 0..4 {
        for jx in 0..4 {
            let (fy, fx) = if flip { (jy, jx) } else { (3 - jy, 3 - jx) };
            t[jy * 4 + jx] = f[fy * 4 + fx] * gain;
        }
    }
    Taps16(t)
}

/// upfirdn2d of `planes` images of `hw` (row-major, plane after plane) with
/// the filter `f` of `f_dims` (`[fh, fw]`, or `[k]` separable: along x then
/// y with `gain^½` each, as the CPU does), on `device`. The op validated
/// the arguments (`ops::upfirdn::upfirdn2d`).
pub(crate) fn upfirdn2d(
    x: &Storage,
    planes: usize,
    hw: [usize; 2],
    f: &Storage,
    f_dims: &[usize],
    p: &UpFirDn,
    device: Device,
) -> Result<Storage> {
    let bad = |what: &str| {
        Error::Internal(format!(
            "cuda upfirdn2d: {what} ({p:?}, input {hw:?}, filter {f_dims:?})"
        ))
    };
    let fhw = match *f_dims {
        [k] => [k, k],
        [fh, fw] => [fh, fw],
        _ => return Err(bad("the filter must have rank 1 or 2")),
    };
    if x.len() != planes * hw[0] * hw[1] || f.len() != f_dims.iter().product::<usize>() {
        return Err(bad("buffer sizes do not match the dims"));
    }
    let ohw = p.out_size(hw, fhw).ok_or_else(|| bad("no output size"))?;
    check_extents(hw, ohw, fhw, p)?;
    let [x0, _, y0, _] = p.pad;
    // Grid y covers output rows by tiles of 16 (up 2: 32) and is limited to 65535.
    let tall = ohw[0] > 65535 * DOWN_T;
    if let Some(kernel) = fast_path(p, f_dims).filter(|_| !tall) {
        // 16 floats; on a GPU the host copy is made once and kept with the
        // filter's buffer.
        let taps = taps16(f.host()?, p.flip_filter, p.gain);
        return tiled(
            x,
            planes,
            hw,
            ohw,
            [x0, y0],
            kernel,
            p.down[0],
            taps,
            device,
        );
    }
    let fin = InBuf::new(f, device)?;
    match *f_dims {
        [k] => {
            let root = p.gain.abs().sqrt();
            let t = general(
                x,
                planes,
                hw,
                &fin,
                [1, k],
                [p.up[0], 1],
                [p.down[0], 1],
                [x0, 0],
                p.flip_filter,
                root.copysign(p.gain),
                [hw[0], ohw[1]],
                device,
            )?;
            general(
                &t,
                planes,
                [hw[0], ohw[1]],
                &fin,
                [k, 1],
                [1, p.up[1]],
                [1, p.down[1]],
                [0, y0],
                p.flip_filter,
                root,
                ohw,
                device,
            )
        }
        _ => general(
            x,
            planes,
            hw,
            &fin,
            fhw,
            p.up,
            p.down,
            [x0, y0],
            p.flip_filter,
            p.gain,
            ohw,
            device,
        ),
    }
}

/// A launch of one of the tiled 4×4 kernels.
#[allow(clippy::too_many_arguments)]
fn tiled(
    x: &Storage,
    planes: usize,
    hw: [usize; 2],
    ohw: [usize; 2],
    pad0: [isize; 2],
    kernel: &'static str,
    p_down: usize,
    taps: Taps16,
    device: Device,
) -> Result<Storage> {
    let n = planes * ohw[0] * ohw[1];
    let mut y = alloc(device, n)?;
    if n == 0 {
        return Ok(y.into_storage());
    }
    let xin = InBuf::new(x, device)?;
    let [px0, py0] = pad0;
    let mut args = Args::new();
    args.push(y.ptr()).push(xin.ptr()).push(planes as i64);
    for v in [hw[0], hw[1], ohw[0], ohw[1]] {
        args.push(v as i32);
    }
    args.push(px0 as i32).push(py0 as i32);
    let gz = planes.min(MAX_GRID_Z) as u32;
    let cfg = if kernel == "upfirdn2d_up2_k4" {
        // Per axis, outputs t ∈ [0, o) pair up on input pixels
        // i0 = ⌊(t − p0 + 1) / 2⌋; each thread takes one i0.
        let range = |o: usize, p0: isize| {
            let lo = (1 - p0).div_euclid(2);
            let hi = (o as isize - p0).div_euclid(2);
            (lo, (hi - lo + 1) as usize)
        };
        let (i0x, cx) = range(ohw[1], px0);
        let (i0y, cy) = range(ohw[0], py0);
        args.push(i0x as i32).push(i0y as i32);
        Config {
            grid: (cx.div_ceil(UP2_T) as u32, cy.div_ceil(UP2_T) as u32, gz),
            block: (UP2_T as u32, UP2_T as u32, 1),
            shared_bytes: 0,
        }
    } else {
        args.push(p_down as i32);
        Config {
            grid: (
                ohw[1].div_ceil(DOWN_T) as u32,
                ohw[0].div_ceil(DOWN_T) as u32,
                gz,
            ),
            block: (DOWN_T as u32, DOWN_T as u32, 1),
            shared_bytes: 0,
        }
    };
    args.push(taps);
    // SAFETY: matches the kernel's parameters (upfirdn2d_up2_k4 takes the
    // two i0 origins before the taps, upfirdn2d_down_k4 `down`, which is 1
    // or 2 as its tile is sized for); x holds planes·h·w floats and y
    // planes·oh·ow; the kernels check every read against h, w and every
    // write against oh, ow.
    unsafe { launch(device, FAMILY, kernel, cfg, &mut args)? };
    Ok(y.into_storage())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps16_flips_and_scales() {
        let f: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(taps16(&f, true, 2.0).0[1], 2.0);
        // Convolution: tap (0, 0) is the filter's last element.
        assert_eq!(taps16(&f, false, 1.0).0[0], 15.0);
        assert_eq!(taps16(&f, false, 1.0).0[4], 11.0);
    }
}
