//! Launch code for `kernels/grid_sample.cu`: bilinear sampling on an affine
//! grid and its input gradient (zero fill, then an atomic scatter), on
//! `Device::Cuda` and `Device::Sim` alike.

use super::launch::{launch, Args, Config};
use super::{alloc, InBuf};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::tensor::Storage;

const FAMILY: &str = "grid_sample";

/// The kernels index a plane with 32-bit coordinates.
fn check(what: &str, ok: bool, hw: [usize; 2], ohw: [usize; 2]) -> Result<()> {
    let lim = (i32::MAX / 4) as usize;
    if hw[0] * hw[1] > lim || ohw[0] * ohw[1] > lim {
        return Err(Error::Invalid {
            op: "grid_sample_affine",
            msg: format!(
                "planes {hw:?} → {ohw:?} are too large for the CUDA kernels' 32-bit plane coordinates"
            ),
        });
    }
    if ok {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "cuda grid_sample: buffer sizes do not match the dims ({what})"
        )))
    }
}

fn push_dims(args: &mut Args, total: usize, c: usize, hw: [usize; 2], ohw: [usize; 2]) {
    args.push(total as i64);
    for v in [c, hw[0], hw[1], ohw[0], ohw[1]] {
        args.push(v as i32);
    }
}

/// `y [n, c, oh, ow]` sampled from `x [n, c, h, w]` with `theta [n, 2, 3]`
/// (see the kernel file for the conventions). The op validated the shapes.
pub(crate) fn grid_sample_affine(
    x: &Storage,
    theta: &Storage,
    nc: [usize; 2],
    hw: [usize; 2],
    ohw: [usize; 2],
    device: Device,
) -> Result<Storage> {
    let [n, c] = nc;
    let total = n * c * ohw[0] * ohw[1];
    check(
        "grid_sample_affine",
        x.len() == n * c * hw[0] * hw[1] && theta.len() == n * 6,
        hw,
        ohw,
    )?;
    let mut y = alloc(device, total)?;
    if total == 0 {
        return Ok(y.into_storage());
    }
    if hw[0] * hw[1] == 0 {
        // Every neighbour is outside an empty plane.
        zero(&mut y, total, device)?;
        return Ok(y.into_storage());
    }
    let (xin, tin) = (InBuf::new(x, device)?, InBuf::new(theta, device)?);
    let mut args = Args::new();
    args.push(y.ptr()).push(xin.ptr()).push(tin.ptr());
    push_dims(&mut args, total, c, hw, ohw);
    // SAFETY: matches grid_sample_affine_fwd's parameters; x holds n·c·h·w
    // floats, y n·c·oh·ow, theta n·6; every read is checked against h and w.
    unsafe {
        launch(
            device,
            FAMILY,
            "grid_sample_affine_fwd",
            Config::linear(total),
            &mut args,
        )?
    };
    Ok(y.into_storage())
}

/// Fills `total` floats of `y` with zeros.
fn zero(y: &mut super::OutBuf, total: usize, device: Device) -> Result<()> {
    let mut args = Args::new();
    args.push(y.ptr()).push(total as i64);
    // SAFETY: matches grid_sample_zero's parameters; y holds `total` floats.
    unsafe {
        launch(
            device,
            FAMILY,
            "grid_sample_zero",
            Config::linear(total),
            &mut args,
        )?
    };
    Ok(())
}

/// The input gradient `gx [n, c, h, w]` of `grid_sample_affine` for the
/// output gradient `g [n, c, oh, ow]`.
pub(crate) fn grid_sample_affine_input_grad(
    g: &Storage,
    theta: &Storage,
    nc: [usize; 2],
    hw: [usize; 2],
    ohw: [usize; 2],
    device: Device,
) -> Result<Storage> {
    let [n, c] = nc;
    let (total_in, total_out) = (n * c * hw[0] * hw[1], n * c * ohw[0] * ohw[1]);
    check(
        "grid_sample_affine_input_grad",
        g.len() == total_out && theta.len() == n * 6,
        hw,
        ohw,
    )?;
    let mut gx = alloc(device, total_in)?;
    if total_in == 0 {
        return Ok(gx.into_storage());
    }
    // The zeroed buffer is the accumulation target of the scatter.
    zero(&mut gx, total_in, device)?;
    if total_out > 0 {
        let (gin, tin) = (InBuf::new(g, device)?, InBuf::new(theta, device)?);
        let mut args = Args::new();
        args.push(gx.ptr()).push(gin.ptr()).push(tin.ptr());
        push_dims(&mut args, total_out, c, hw, ohw);
        // SAFETY: matches grid_sample_affine_input_grad's parameters; gx holds
        // n·c·h·w floats (zeroed), g n·c·oh·ow, theta n·6; every write is
        // checked against h and w.
        unsafe {
            launch(
                device,
                FAMILY,
                "grid_sample_affine_input_grad",
                Config::linear(total_out),
                &mut args,
            )?
        };
    }
    Ok(gx.into_storage())
}
