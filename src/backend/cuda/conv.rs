//! Launch code for `kernels/conv.cu`: conv2d forward, input gradient and
//! weight gradient (grouped, strided, padded) as implicit GEMMs, on
//! `Device::Cuda` and `Device::Sim` alike. The geometry comes validated from
//! `ops::conv`; this layer only checks what the kernels add (int offsets,
//! grid limits).

use super::conv_tc::{self, Pass};
use super::launch::{launch, Args, Config};
use super::{alloc, InBuf};
use crate::backend::cpu::conv::ConvGeom;
use crate::device::Device;
use crate::error::{invalid, Result};
use crate::ops::precision::Precision;
use crate::tensor::Storage;

const FAMILY: &str = "conv";
/// `CONV_BK`: the reduction step; split-K chunks are multiples of it.
const STEP: usize = 16;
const THREADS: u32 = 256;
/// A GEMM side of at most this many rows or columns gets a 16-wide tile.
const SKINNY: usize = 16;
/// Weight-gradient split-K: aim for about this many blocks (two per SM of a
/// 132-SM H100/H200), as a weight alone often makes only a few 64×64 tiles ...
pub(crate) const WGRAD_TARGET_BLOCKS: usize = 264;
/// ... but give every split at least this much of the reduction (the partial
/// sums, `splits · |w|` floats, stay small next to the work), and at most
/// this many splits.
pub(crate) const WGRAD_MIN_CHUNK: usize = 256;
pub(crate) const WGRAD_MAX_SPLITS: usize = 64;
const MAX_GRID_YZ: usize = 65535;

/// The scalar arguments shared by the three kernels, after the buffers.
pub(crate) fn push_geom(args: &mut Args, g: &ConvGeom) {
    for v in [
        g.n,
        g.c,
        g.h,
        g.w,
        g.o,
        g.kh,
        g.kw,
        g.stride[0],
        g.stride[1],
        g.padding[0],
        g.padding[1],
        g.oh,
        g.ow,
        g.groups,
    ] {
        args.push(v as i32);
    }
}

/// The kernels index with `int`: every buffer they touch must have fewer
/// than 2^31 elements, and each grid dimension must fit its limit.
fn check_fits(op: &'static str, g: &ConvGeom, extra: &[(&str, usize)]) -> Result<()> {
    let max = i32::MAX as usize;
    let sizes = [
        ("input", g.n * g.c * g.h * g.w),
        ("output", g.n * g.o * g.oh * g.ow),
        ("weight", g.o * (g.c / g.groups) * g.kh * g.kw),
    ];
    for (what, n) in sizes.iter().chain(extra) {
        if *n > max {
            return invalid(
                op,
                format!("the {what} has {n} elements; the CUDA kernels take at most {max}"),
            );
        }
    }
    // Padding enters int arithmetic next to coordinates.
    if g.padding.iter().chain(&g.stride).any(|&v| v > max / 4) {
        return invalid(
            op,
            format!(
                "padding {:?} or stride {:?} too large for the CUDA kernels",
                g.padding, g.stride
            ),
        );
    }
    Ok(())
}

pub(crate) fn check_grid(op: &'static str, grid: (usize, usize, usize)) -> Result<(u32, u32, u32)> {
    if grid.0 > i32::MAX as usize || grid.1 > MAX_GRID_YZ || grid.2 > MAX_GRID_YZ {
        return invalid(
            op,
            format!("launch grid {grid:?} exceeds the CUDA limits (2^31 − 1, 65535, 65535)"),
        );
    }
    Ok((grid.0 as u32, grid.1 as u32, grid.2 as u32))
}

/// One instantiation of a kernel template of conv.cu: its name and its
/// block tile `bm × bn` (`Tile<BM, BN>`).
#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    bm: usize,
    bn: usize,
}

impl Variant {
    /// The variant for a GEMM of `rows × cols` per group: 16-wide tiles
    /// where a side has at most 16, else 64. `names` lists the kernels for
    /// 64×64, 16×64, 64×16 and 16×16 tiles.
    fn pick(names: [&'static str; 4], rows: usize, cols: usize) -> Variant {
        let (m16, n16) = (rows <= SKINNY, cols <= SKINNY);
        let (i, bm, bn) = match (m16, n16) {
            (false, false) => (0, 64, 64),
            (true, false) => (1, 16, 64),
            (false, true) => (2, 64, 16),
            (true, true) => (3, 16, 16),
        };
        Variant {
            name: names[i],
            bm,
            bn,
        }
    }

    /// 256 threads and two buffers of `Tile<BM, BN>::BUF` floats of shared memory.
    fn config(&self, grid: (u32, u32, u32)) -> Config {
        let buf = STEP * ((self.bm + 4) + (self.bn + 4));
        Config {
            grid,
            block: (THREADS, 1, 1),
            shared_bytes: (2 * buf * 4) as u32,
        }
    }
}

/// `y = conv2d(x, w)`: `x` `[n, c, h, w]`, `w` `[o, c/groups, kh, kw]`,
/// result `[n, o, oh, ow]`; on the tensor cores (conv_tc.cu) where
/// `precision` and the device allow (`conv_tc::applies`).
pub(crate) fn conv2d(
    x: &Storage,
    w: &Storage,
    g: &ConvGeom,
    precision: Precision,
    device: Device,
) -> Result<Storage> {
    const OP: &str = "conv2d";
    check_fits(OP, g, &[])?;
    let len = g.n * g.o * g.oh * g.ow;
    let mut y = alloc(device, len)?;
    if len == 0 {
        return Ok(y.into_storage());
    }
    if conv_tc::applies(Pass::Forward, g, precision, device)? {
        conv_tc::conv_or_input_grad(Pass::Forward, &mut y, x, w, g, precision, device)?;
        return Ok(y.into_storage());
    }
    let (og, cols) = (g.o / g.groups, g.n * g.oh * g.ow);
    // No 16-column variant: the columns are pixels, rarely that few.
    let names = [
        "conv2d_fwd",
        "conv2d_fwd_m16",
        "conv2d_fwd",
        "conv2d_fwd_m16",
    ];
    let v = Variant::pick(names, og, usize::MAX);
    let grid = check_grid(OP, (cols.div_ceil(v.bn), og.div_ceil(v.bm), g.groups))?;
    let (xin, win) = (InBuf::new(x, device)?, InBuf::new(w, device)?);
    let mut args = Args::new();
    args.push(y.ptr()).push(xin.ptr()).push(win.ptr());
    push_geom(&mut args, g);
    // SAFETY: conv2d_fwd*(float*, const float*, const float*, 14 × int); the
    // buffers hold the [n, o, oh, ow], [n, c, h, w] and [o, c/groups, kh, kw]
    // tensors of `g`, the only elements the kernel touches.
    unsafe { launch(device, FAMILY, v.name, v.config(grid), &mut args)? };
    Ok(y.into_storage())
}

/// The gradient of `conv2d` w.r.t. its input: `gy` `[n, o, oh, ow]`, `w`
/// `[o, c/groups, kh, kw]`, result `[n, c, h, w]`; tensor cores as `conv2d`.
pub(crate) fn conv2d_input_grad(
    gy: &Storage,
    w: &Storage,
    g: &ConvGeom,
    precision: Precision,
    device: Device,
) -> Result<Storage> {
    const OP: &str = "conv2d_input_grad";
    check_fits(OP, g, &[])?;
    let len = g.n * g.c * g.h * g.w;
    let mut gx = alloc(device, len)?;
    if len == 0 {
        return Ok(gx.into_storage());
    }
    if conv_tc::applies(Pass::InputGrad, g, precision, device)? {
        conv_tc::conv_or_input_grad(Pass::InputGrad, &mut gx, gy, w, g, precision, device)?;
        return Ok(gx.into_storage());
    }
    let [sy, sx] = g.stride;
    // One grid slice per (group, stride phase); the x extent covers the
    // largest phase (phase 0: ceil(h/sy) × ceil(w/sx) pixels per sample).
    let (cg, cols) = (g.c / g.groups, g.n * g.h.div_ceil(sy) * g.w.div_ceil(sx));
    let names = [
        "conv2d_dgrad",
        "conv2d_dgrad_m16",
        "conv2d_dgrad",
        "conv2d_dgrad_m16",
    ];
    let v = Variant::pick(names, cg, usize::MAX);
    let grid = check_grid(
        OP,
        (
            cols.div_ceil(v.bn),
            cg.div_ceil(v.bm),
            g.groups.saturating_mul(sy.saturating_mul(sx)),
        ),
    )?;
    let (gyin, win) = (InBuf::new(gy, device)?, InBuf::new(w, device)?);
    let mut args = Args::new();
    args.push(gx.ptr()).push(gyin.ptr()).push(win.ptr());
    push_geom(&mut args, g);
    // SAFETY: conv2d_dgrad*(float*, const float*, const float*, 14 × int); the
    // buffers hold the [n, c, h, w], [n, o, oh, ow] and weight tensors of
    // `g`; every phase writes exactly its own input pixels, so together they
    // write every element of gx.
    unsafe { launch(device, FAMILY, v.name, v.config(grid), &mut args)? };
    Ok(gx.into_storage())
}

/// How many contiguous ranges the weight gradient's reduction over
/// `n · oh · ow` is split into, and the length of each (a multiple of the
/// kernel's step).
fn wgrad_splits(g: &ConvGeom, v: Variant) -> (usize, usize) {
    let l = g.n * g.oh * g.ow;
    let kc = (g.c / g.groups) * g.kh * g.kw;
    let base = g.groups * (g.o / g.groups).div_ceil(v.bm) * kc.div_ceil(v.bn);
    let want = (WGRAD_TARGET_BLOCKS / base.max(1))
        .min(l.div_ceil(WGRAD_MIN_CHUNK))
        .clamp(1, WGRAD_MAX_SPLITS);
    let chunk = l.div_ceil(want).div_ceil(STEP).max(1) * STEP;
    // Rounding the chunk up may leave the last splits empty: drop them.
    (l.div_ceil(chunk).max(1), chunk)
}

/// The gradient of `conv2d` w.r.t. its weight: `x` `[n, c, h, w]`, `gy`
/// `[n, o, oh, ow]`, result `[o, c/groups, kh, kw]`.
///
/// Split-K with a second pass: each split writes its partial sums to a
/// workspace and `conv2d_wgrad_reduce` adds them in a fixed order. Chosen
/// over atomicAdd into a zeroed buffer because the result is then
/// deterministic run to run (R1 and path-length terms differentiate it
/// again), the output needs no zeroing pass (`alloc` leaves GPU memory
/// uninitialized), and the extra pass reads only `splits · |w|` floats.
///
/// On the tensor cores (`conv_tc::applies`) the same scheme runs with the
/// tensor-core GEMM writing the partial sums.
pub(crate) fn conv2d_weight_grad(
    x: &Storage,
    gy: &Storage,
    g: &ConvGeom,
    precision: Precision,
    device: Device,
) -> Result<Storage> {
    const OP: &str = "conv2d_weight_grad";
    let kc = (g.c / g.groups) * g.kh * g.kw;
    let wlen = g.o * kc;
    let names = [
        "conv2d_wgrad",
        "conv2d_wgrad_m16",
        "conv2d_wgrad_n16",
        "conv2d_wgrad_m16n16",
    ];
    let v = Variant::pick(names, g.o / g.groups, kc);
    let tc = conv_tc::applies(Pass::WeightGrad, g, precision, device)?;
    let (splits, chunk) = if tc {
        conv_tc::wgrad_splits(g)
    } else {
        wgrad_splits(g, v)
    };
    check_fits(OP, g, &[("split-K workspace", splits * wlen)])?;
    let mut gw = alloc(device, wlen)?;
    if wlen == 0 {
        return Ok(gw.into_storage());
    }
    let mut partial = if splits > 1 {
        Some(alloc(device, splits * wlen)?)
    } else {
        None
    };
    let out = partial.as_mut().unwrap_or(&mut gw);
    if tc {
        conv_tc::weight_grad_partial(
            out,
            x,
            gy,
            None,
            false,
            (splits, chunk),
            g,
            precision,
            device,
        )?;
    } else {
        let grid = check_grid(
            OP,
            (
                kc.div_ceil(v.bn),
                (g.o / g.groups).div_ceil(v.bm),
                g.groups * splits,
            ),
        )?;
        let (xin, gyin) = (InBuf::new(x, device)?, InBuf::new(gy, device)?);
        let mut args = Args::new();
        args.push(out.ptr()).push(xin.ptr()).push(gyin.ptr());
        push_geom(&mut args, g);
        args.push(splits as i32).push(chunk as i32);
        // SAFETY: conv2d_wgrad*(float*, const float*, const float*, 16 × int);
        // `out` holds splits × [o, c/groups, kh, kw] floats, every one written
        // (a split with an empty range writes zeros); x and gy hold the tensors of `g`.
        unsafe { launch(device, FAMILY, v.name, v.config(grid), &mut args)? };
    }
    if let Some(mut p) = partial {
        let mut args = Args::new();
        args.push(gw.ptr())
            .push(p.ptr())
            .push(wlen as i32)
            .push(splits as i32);
        // SAFETY: conv2d_wgrad_reduce(float*, const float*, int, int); gw
        // holds wlen floats, p splits × wlen. `p` lives until after the
        // launch; on a GPU its memory is freed on the same stream, after
        // the kernel.
        unsafe {
            launch(
                device,
                FAMILY,
                "conv2d_wgrad_reduce",
                Config::linear(wlen),
                &mut args,
            )?
        };
    }
    Ok(gw.into_storage())
}
