//! Launch code for `kernels/bias_act.cu`: fused bias + activation + gain +
//! clamp and its gradient, on `Device::Cuda` and `Device::Sim` alike.

use super::launch::{launch, Args, Config};
use super::{alloc, InBuf};
use crate::backend::cpu::bias_act::{Act, BiasAct};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::tensor::Storage;

const FAMILY: &str = "bias_act";

/// `ActCode` of bias_act.cu and the lrelu slope.
fn act_code(act: Act) -> (i32, f32) {
    match act {
        Act::Linear => (0, 0.0),
        Act::Lrelu { alpha } => (1, alpha),
    }
}

/// Pushes act, alpha, gain, has_clamp, clamp.
fn push_params(args: &mut Args, p: &BiasAct) {
    let (code, alpha) = act_code(p.act);
    args.push(code)
        .push(alpha)
        .push(p.gain)
        .push(p.clamp.is_some() as i32)
        .push(p.clamp.unwrap_or(0.0));
}

/// `bias_act` of the `n` elements of `x`, with `b[(i / step) % b_len]`
/// added to element `i` when there is a bias (see `cpu::bias_act`).
pub(crate) fn bias_act(
    x: &Storage,
    n: usize,
    b: Option<(&Storage, usize)>,
    step: usize,
    p: &BiasAct,
    device: Device,
) -> Result<Storage> {
    let mut y = alloc(device, n)?;
    if n == 0 {
        return Ok(y.into_storage());
    }
    if x.len() != n || b.is_some_and(|(s, len)| s.len() != len) {
        return Err(Error::Internal(format!(
            "cuda bias_act: buffer sizes do not match ({n} elements)"
        )));
    }
    let xin = InBuf::new(x, device)?;
    // An empty bias adds nothing, as on the CPU.
    let bin = match b {
        Some((s, len)) if len > 0 => Some((InBuf::new(s, device)?, len)),
        _ => None,
    };
    let mut args = Args::new();
    args.push(y.ptr())
        .push(xin.ptr())
        .push(bin.as_ref().map_or(0u64, |(b, _)| b.ptr()))
        .push(n as i64)
        .push(step.max(1) as i64)
        .push(bin.as_ref().map_or(1, |(_, len)| *len) as i64);
    push_params(&mut args, p);
    // SAFETY: matches bias_act_fwd's parameters; x and y hold n floats, b
    // (or null) holds c floats and is indexed modulo c.
    unsafe { launch(device, FAMILY, "bias_act_fwd", Config::linear(n), &mut args)? };
    Ok(y.into_storage())
}

/// The gradient of `bias_act` w.r.t. its input, from the upstream gradient
/// `dy` and the op's output `y` (both of `n` elements).
pub(crate) fn bias_act_grad(
    dy: &Storage,
    y: &Storage,
    n: usize,
    p: &BiasAct,
    device: Device,
) -> Result<Storage> {
    let mut dx = alloc(device, n)?;
    if n == 0 {
        return Ok(dx.into_storage());
    }
    if dy.len() != n || y.len() != n {
        return Err(Error::Internal(format!(
            "cuda bias_act_grad: buffer sizes do not match ({n} elements)"
        )));
    }
    let (dyin, yin) = (InBuf::new(dy, device)?, InBuf::new(y, device)?);
    let mut args = Args::new();
    args.push(dx.ptr())
        .push(dyin.ptr())
        .push(yin.ptr())
        .push(n as i64);
    push_params(&mut args, p);
    // SAFETY: matches bias_act_grad's parameters; all three buffers hold n floats.
    unsafe {
        launch(
            device,
            FAMILY,
            "bias_act_grad",
            Config::linear(n),
            &mut args,
        )?
    };
    Ok(dx.into_storage())
}
