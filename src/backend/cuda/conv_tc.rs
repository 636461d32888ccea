//! Launch code for `kernels/conv_tc.cu`: conv2d forward, input gradient and
//! weight gradient on the tensor cores (TF32, BF16, FP16 operands, FP32
//! accumulators), chosen by `conv` when the precision asks for it. Its own
//! NVRTC module: a program that only runs FP32 never compiles it.

use super::conv::{check_grid, WGRAD_MAX_SPLITS, WGRAD_MIN_CHUNK, WGRAD_TARGET_BLOCKS};
use super::launch::{launch, Args, Config};
use super::{alloc, InBuf, OutBuf, SrcBuf};
use crate::backend::cpu::conv::ConvGeom;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::ops::precision::Precision;
use crate::tensor::Storage;

const FAMILY: &str = "conv_tc";
/// CT_TILE, CT_THREADS, CT_STAGES and CT_ROW_BYTES of conv_tc.cu.
const TILE: usize = 64;
const THREADS: u32 = 256;
const STAGES: usize = 3;
const ROW: usize = 32;
/// On a GPU the tensor-core kernels pay off once the 64-row tile is not
/// mostly padding and a k-step of 8–16 channels not mostly zeros.
const MIN_ROWS: usize = 32;
const MIN_K: usize = 16;

/// Which of the three GEMMs a launch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    Forward,
    InputGrad,
    WeightGrad,
}

/// The operand format code of common.cuh and the kernel name suffix, when
/// `precision` runs on the tensor cores of `device` for this GEMM: always
/// on the simulator (so the kernels are tested there), on a GPU from compute
/// capability 8.0 and when the GEMM's rows and reduction fill the tiles
/// (`rows` × `k` per group).
pub(crate) fn pick(
    precision: Precision,
    rows: usize,
    k: usize,
    device: Device,
) -> Result<Option<i32>> {
    let Some(fmt) = precision.tc_format() else {
        return Ok(None);
    };
    let ok = match device {
        Device::Sim => true,
        Device::Cuda(ordinal) => super::gpu(ordinal)?.arch.0 >= 8 && rows >= MIN_ROWS && k >= MIN_K,
        Device::Cpu => false,
    };
    Ok(ok.then_some(fmt))
}

/// Whether `pass` of convolution `g` runs on the tensor cores at `precision`.
pub(crate) fn applies(
    pass: Pass,
    g: &ConvGeom,
    precision: Precision,
    device: Device,
) -> Result<bool> {
    let (og, cg) = (g.o / g.groups, g.c / g.groups);
    let (rows, k) = match pass {
        Pass::Forward => (og, cg),
        Pass::InputGrad => (cg, og),
        Pass::WeightGrad => (og, cg * g.kh * g.kw),
    };
    Ok(pick(precision, rows, k, device)?.is_some())
}

fn kernel(pass: Pass, precision: Precision) -> &'static str {
    const NAMES: [[&str; 3]; 3] = [
        ["conv_tc_fwd_tf32", "conv_tc_fwd_bf16", "conv_tc_fwd_f16"],
        [
            "conv_tc_dgrad_tf32",
            "conv_tc_dgrad_bf16",
            "conv_tc_dgrad_f16",
        ],
        [
            "conv_tc_wgrad_tf32",
            "conv_tc_wgrad_bf16",
            "conv_tc_wgrad_f16",
        ],
    ];
    let p = match pass {
        Pass::Forward => 0,
        Pass::InputGrad => 1,
        Pass::WeightGrad => 2,
    };
    NAMES[p][precision.tc_format().unwrap_or(1) as usize - 1]
}

/// The forward kernel that reads `x` stored as `dtype` as it is: the `_xh`
/// kernel for F16 storage at F16 operands (no widened copy of the
/// activations); None where `x` must be widened to FP32 first.
pub(crate) fn forward_for_input(precision: Precision, dtype: DType) -> Option<&'static str> {
    match (dtype, precision) {
        (DType::F32, _) => Some(kernel(Pass::Forward, precision)),
        (DType::F16, Precision::F16) => Some("conv_tc_fwd_f16_xh"),
        _ => None,
    }
}

/// The weight as the A operand `[G][Mg][kh·kw][Kpad]` (`conv_tc_weight`):
/// the forward's (Mg = out channels) or, with `transpose`, the input
/// gradient's (Mg = in channels); returns the buffer and Kpad.
fn weight_operands(
    w: &InBuf<'_>,
    g: &ConvGeom,
    transpose: bool,
    precision: Precision,
    device: Device,
) -> Result<(OutBuf, usize)> {
    let (og, cg) = (g.o / g.groups, g.c / g.groups);
    let (mg, kg) = if transpose { (cg, og) } else { (og, cg) };
    let per_row = ROW / precision.operand_bytes();
    let kpad = kg.div_ceil(per_row) * per_row;
    let kk = g.kh * g.kw;
    let count = g.groups * mg * kk * kpad;
    let mut wt = alloc(device, (count * precision.operand_bytes()).div_ceil(4))?;
    let mut args = Args::new();
    args.push(wt.ptr()).push(w.ptr());
    for v in [g.groups, mg, kg, kk, kpad, transpose as usize] {
        args.push(v as i32);
    }
    args.push(precision.tc_format().unwrap_or(1));
    // SAFETY: conv_tc_weight(uchar*, const float*, 6 × int, int); wt holds
    // `count` operands, w the [o, c/groups, kh, kw] weight of `g`.
    unsafe {
        launch(
            device,
            FAMILY,
            "conv_tc_weight",
            Config::linear(count),
            &mut args,
        )?
    };
    Ok((wt, kpad))
}

/// The tensor-core forward (`Pass::Forward`: `y` from `x`) or input
/// gradient (`Pass::InputGrad`: `gx` from `gy`) into `out`; the sizes were
/// checked by `conv` (every tensor under 2^31 elements).
pub(crate) fn conv_or_input_grad(
    pass: Pass,
    out: &mut OutBuf,
    src: &Storage,
    w: &Storage,
    g: &ConvGeom,
    precision: Precision,
    device: Device,
) -> Result<()> {
    let op = match pass {
        Pass::Forward => "conv2d (tensor cores)",
        _ => "conv2d_input_grad (tensor cores)",
    };
    let (og, cg) = (g.o / g.groups, g.c / g.groups);
    let [sy, sx] = g.stride;
    let (rows, cols, phases) = match pass {
        Pass::Forward => (og, g.n * g.oh * g.ow, 1),
        // The grid's x extent covers the largest stride phase.
        _ => (
            cg,
            g.n * g.h.div_ceil(sy) * g.w.div_ceil(sx),
            sy.saturating_mul(sx),
        ),
    };
    let grid = check_grid(
        op,
        (
            cols.div_ceil(TILE),
            rows.div_ceil(TILE),
            g.groups.saturating_mul(phases),
        ),
    )?;
    // F16 storage (an FP16 block's activations) is read by the forward's
    // `_xh` kernel as it is; anything else reaches the kernel as floats
    // (2-byte storage widened into a temporary by InBuf).
    let xh = match (pass, src) {
        (Pass::Forward, Storage::Half(h)) => forward_for_input(precision, h.dtype),
        _ => None,
    };
    let sin = SrcBuf::new(src, xh.is_some(), device)?;
    let win = InBuf::new(w, device)?;
    let (mut wt, kpad) = weight_operands(&win, g, pass != Pass::Forward, precision, device)?;
    let mut args = Args::new();
    args.push(out.ptr()).push(sin.ptr()).push(wt.ptr());
    super::conv::push_geom(&mut args, g);
    args.push(kpad as i32);
    let cfg = Config {
        grid,
        block: (THREADS, 1, 1),
        shared_bytes: (STAGES * 2 * TILE * ROW) as u32,
    };
    let name = xh.unwrap_or(kernel(pass, precision));
    // SAFETY: CT_CONV_PARAMS: (float*, const float* or, for `_xh`, const
    // ushort*, const uchar*, 14 × int, int); out and src hold the output-
    // and input-side tensors of `g`, wt the operands written above (freed
    // after the launch, on the same stream).
    unsafe { launch(device, FAMILY, name, cfg, &mut args) }
}

/// How the weight gradient's reduction over `n · oh · ow` is split: (splits,
/// chunk), the chunk a multiple of 16 (a k-step of every format), with
/// conv.rs's targets for the 64 × 64 tile.
pub(crate) fn wgrad_splits(g: &ConvGeom) -> (usize, usize) {
    let l = g.n * g.oh * g.ow;
    let kc = (g.c / g.groups) * g.kh * g.kw;
    let base = g.groups * (g.o / g.groups).div_ceil(TILE) * kc.div_ceil(TILE);
    let want = (WGRAD_TARGET_BLOCKS / base.max(1))
        .min(l.div_ceil(WGRAD_MIN_CHUNK))
        .clamp(1, WGRAD_MAX_SPLITS);
    let chunk = l.div_ceil(want).div_ceil(16).max(1) * 16;
    (l.div_ceil(chunk).max(1), chunk)
}

/// The tensor-core weight gradient's partial sums `[splits, o, c/groups,
/// kh, kw]` into `part` (`splits` and `chunk` from [`wgrad_splits`]):
/// `Σ_l gy · x`, x scaled by `in_scale` `[n, c]` when given, the taps stored
/// flipped when `flip` (both for the modulated convolution).
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grad_partial(
    part: &mut OutBuf,
    x: &Storage,
    gy: &Storage,
    in_scale: Option<&Storage>,
    flip: bool,
    (splits, chunk): (usize, usize),
    g: &ConvGeom,
    precision: Precision,
    device: Device,
) -> Result<()> {
    const OP: &str = "conv2d_weight_grad (tensor cores)";
    let kc = (g.c / g.groups) * g.kh * g.kw;
    let grid = check_grid(
        OP,
        (
            kc.div_ceil(TILE),
            (g.o / g.groups).div_ceil(TILE),
            g.groups.saturating_mul(splits),
        ),
    )?;
    let (xin, gyin) = (InBuf::new(x, device)?, InBuf::new(gy, device)?);
    let sin = in_scale.map(|s| InBuf::new(s, device)).transpose()?;
    let mut args = Args::new();
    args.push(part.ptr())
        .push(xin.ptr())
        .push(gyin.ptr())
        .push(sin.as_ref().map_or(0, |s| s.ptr()));
    super::conv::push_geom(&mut args, g);
    args.push(flip as i32)
        .push(splits as i32)
        .push(chunk as i64);
    let cfg = Config {
        grid,
        block: (THREADS, 1, 1),
        shared_bytes: (2 * 2 * TILE * ROW) as u32,
    };
    // SAFETY: CT_WGRAD_PARAMS: (float*, 3 × const float*, 14 × int, int, int,
    // long long); part holds splits × [o, c/groups, kh, kw] floats, every one
    // written (an empty split writes zeros); x, gy hold the tensors of `g`,
    // in_scale [n, c].
    unsafe {
        launch(
            device,
            FAMILY,
            kernel(Pass::WeightGrad, precision),
            cfg,
            &mut args,
        )?
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F16 storage at F16 operands picks the `_xh` forward that reads it;
    /// F32 the precision's own kernel; anything else none (widened first).
    #[test]
    fn f16_input_picks_the_forward_that_reads_it() {
        assert_eq!(
            forward_for_input(Precision::F16, DType::F16),
            Some("conv_tc_fwd_f16_xh")
        );
        for p in [Precision::TF32, Precision::BF16, Precision::F16] {
            assert_eq!(
                forward_for_input(p, DType::F32),
                Some(kernel(Pass::Forward, p))
            );
        }
        for p in [Precision::TF32, Precision::BF16] {
            assert_eq!(forward_for_input(p, DType::F16), None, "{p}");
        }
        assert_eq!(forward_for_input(Precision::F16, DType::BF16), None);
    }
}
