//! Launch code for `kernels/noise.cu`: noise injection and its fused
//! first-order gradients, on `Device::Cuda` and `Device::Sim` alike.

use super::launch::{launch, Args, Config};
use super::{alloc, InBuf};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::tensor::Storage;

const FAMILY: &str = "noise";
const BLOCK: u32 = 256;
/// Blocks of the first stage of the strength-gradient reduction: enough to
/// fill a GPU, few enough for one block to sum the partials.
const PARTIAL_BLOCKS: usize = 1024;

fn check(what: &str, ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "cuda noise: buffer sizes do not match the dims ({what})"
        )))
    }
}

/// Pushes n·c·hw or n, c, hw and the batched flag (as the kernels take them).
fn push_dims(args: &mut Args, n: usize, c: usize, hw: usize, batched: bool) {
    args.push(n as i64)
        .push(c as i64)
        .push(hw as i64)
        .push(batched as i32);
}

/// `y = x + noise · strength` for `x` of `dims` `[N, C, H, W]`, `noise`
/// `[N or 1, HW]` (`batched`: one plane per sample) and a one-element `strength`.
pub(crate) fn noise_inject(
    x: &Storage,
    dims: [usize; 4],
    noise: &Storage,
    batched: bool,
    strength: &Storage,
    device: Device,
) -> Result<Storage> {
    let [n, c, h, w] = dims;
    let (total, hw) = (n * c * h * w, h * w);
    let mut y = alloc(device, total)?;
    if total == 0 {
        return Ok(y.into_storage());
    }
    check(
        "noise_inject",
        x.len() == total && noise.len() == if batched { n * hw } else { hw } && strength.len() == 1,
    )?;
    let (xin, nin, sin) = (
        InBuf::new(x, device)?,
        InBuf::new(noise, device)?,
        InBuf::new(strength, device)?,
    );
    let mut args = Args::new();
    args.push(y.ptr())
        .push(xin.ptr())
        .push(nin.ptr())
        .push(sin.ptr());
    push_dims(&mut args, total, c, hw, batched);
    // SAFETY: matches noise_fwd's parameters; x and y hold n·c·hw floats,
    // noise one or n planes of hw, strength one float.
    unsafe {
        launch(
            device,
            FAMILY,
            "noise_fwd",
            Config::linear(total),
            &mut args,
        )?
    };
    Ok(y.into_storage())
}

/// The gradient w.r.t. the noise: `strength · Σ_c g`, summed over the batch
/// when the noise is one plane; `[N or 1, HW]`.
pub(crate) fn grad_noise(
    g: &Storage,
    dims: [usize; 4],
    batched: bool,
    strength: &Storage,
    device: Device,
) -> Result<Storage> {
    let [n, c, h, w] = dims;
    let hw = h * w;
    let rows = if batched { n } else { 1 };
    let mut out = alloc(device, rows * hw)?;
    if rows * hw == 0 {
        return Ok(out.into_storage());
    }
    check("grad_noise", g.len() == n * c * hw && strength.len() == 1)?;
    let (gin, sin) = (InBuf::new(g, device)?, InBuf::new(strength, device)?);
    let mut args = Args::new();
    args.push(out.ptr()).push(gin.ptr()).push(sin.ptr());
    push_dims(&mut args, n, c, hw, batched);
    // SAFETY: matches noise_grad_noise's parameters; g holds n·c·hw floats,
    // out rows·hw, strength one.
    unsafe {
        launch(
            device,
            FAMILY,
            "noise_grad_noise",
            Config::linear(rows * hw),
            &mut args,
        )?
    };
    Ok(out.into_storage())
}

/// The gradient w.r.t. the strength: `Σ g · noise` (noise broadcast), one
/// float, by a deterministic two-stage reduction (no atomics).
pub(crate) fn grad_strength(
    g: &Storage,
    dims: [usize; 4],
    noise: &Storage,
    batched: bool,
    device: Device,
) -> Result<Storage> {
    let [n, c, h, w] = dims;
    let (total, hw) = (n * c * h * w, h * w);
    if total == 0 {
        // alloc leaves GPU memory uninitialized: an empty sum is 0.
        return Storage::try_from_host(vec![0.0], device);
    }
    let mut out = alloc(device, 1)?;
    check(
        "grad_strength",
        g.len() == total && noise.len() == if batched { n * hw } else { hw },
    )?;
    let parts = total.div_ceil(BLOCK as usize).clamp(1, PARTIAL_BLOCKS);
    let mut partial = alloc(device, parts)?;
    let (gin, nin) = (InBuf::new(g, device)?, InBuf::new(noise, device)?);
    let mut args = Args::new();
    args.push(partial.ptr()).push(gin.ptr()).push(nin.ptr());
    push_dims(&mut args, total, c, hw, batched);
    let cfg = Config {
        grid: (parts as u32, 1, 1),
        block: (BLOCK, 1, 1),
        shared_bytes: 0,
    };
    // SAFETY: matches noise_grad_strength_partial's parameters; g holds
    // n·c·hw floats, noise one or n planes, partial one float per block.
    unsafe {
        launch(
            device,
            FAMILY,
            "noise_grad_strength_partial",
            cfg,
            &mut args,
        )?
    };
    let mut args = Args::new();
    args.push(out.ptr()).push(partial.ptr()).push(parts as i64);
    let cfg = Config {
        grid: (1, 1, 1),
        block: (BLOCK, 1, 1),
        shared_bytes: 0,
    };
    // SAFETY: matches noise_grad_strength_final's parameters; partial holds
    // `parts` floats written above (same stream), out one.
    unsafe { launch(device, FAMILY, "noise_grad_strength_final", cfg, &mut args)? };
    Ok(out.into_storage())
}
