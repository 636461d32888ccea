//! Launch code for `kernels/modconv.cu`: demodulation coefficients,
//! per-sample weights, the fused modulated convolution (forward with its
//! epilogue) and the kernels of its first-order backward, on `Device::Cuda`
//! and `Device::Sim` alike. Shapes are validated by `ops::modconv`.

use super::conv_tc;
use super::launch::{launch, Args, Config, KernelArg};
use super::modconv_tc::{self, TcKernel};
use super::{alloc, InBuf, OutBuf, SrcBuf};
use crate::backend::cpu::conv::ConvGeom as CpuConvGeom;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::precision::Precision;
use crate::tensor::Storage;

const FAMILY: &str = "modconv";
const BLOCK: u32 = 256;
const MAX_BLOCKS: u32 = 1 << 16;
/// MC_TH, MC_TW, MC_BM and MC_THREADS of modconv_common.cuh.
const TH: usize = 8;
const TW: usize = 16;
const BM: usize = 64;
/// MC_WM, MC_WN, MC_WK of modconv.cu (weight-gradient tiles).
const WM: usize = 64;
const WN: usize = 64;
const WK: usize = 16;
/// Dynamic shared memory a block may use without opting in (48 KiB).
const SMEM_MAX: usize = super::launch::MAX_DYNAMIC_SHARED_BYTES as usize;
/// Input channels staged per step of the forward, at most.
const CHUNK: usize = 8;

/// `act` codes of modconv.cu.
pub(crate) const ACT_LINEAR: i32 = 0;
pub(crate) const ACT_LRELU: i32 = 1;

fn ptr_of(b: &Option<InBuf<'_>>) -> u64 {
    b.as_ref().map_or(0, |b| b.ptr())
}

fn opt_in<'a>(s: Option<&'a Storage>, device: Device) -> Result<Option<InBuf<'a>>> {
    s.map(|s| InBuf::new(s, device)).transpose()
}

/// `p[..n] = 0` on the device (targets of atomicAdd).
fn zeros(device: Device, n: usize) -> Result<OutBuf> {
    let mut b = alloc(device, n)?;
    if n > 0 {
        let mut args = Args::new();
        args.push(b.ptr()).push(n as i64).push(0f32);
        // SAFETY: (float*, long long, float); the buffer holds n floats.
        unsafe { launch(device, FAMILY, "modconv_fill", Config::linear(n), &mut args)? };
    }
    Ok(b)
}

/// `wsq[o, i] = Σ_k w[o, i, k]²` for `w` `[O·I, K]`.
pub(crate) fn wsq(w: &Storage, oi: usize, k: usize, device: Device) -> Result<Storage> {
    let mut out = alloc(device, oi)?;
    if oi > 0 {
        let win = InBuf::new(w, device)?;
        let mut args = Args::new();
        args.push(out.ptr())
            .push(win.ptr())
            .push(oi as i32)
            .push(k as i32);
        // SAFETY: (float*, const float*, int, int); w holds oi·k floats.
        unsafe { launch(device, FAMILY, "modconv_wsq", Config::linear(oi), &mut args)? };
    }
    Ok(out.into_storage())
}

/// `d[n, o] = rsqrt(Σ_i s[n, i]² · wsq[o, i] + 1e-8)`.
pub(crate) fn demod(
    s: &Storage,
    wsq: &Storage,
    [n, o, i]: [usize; 3],
    device: Device,
) -> Result<Storage> {
    let mut out = alloc(device, n * o)?;
    if n * o > 0 {
        let (sin, win) = (InBuf::new(s, device)?, InBuf::new(wsq, device)?);
        let mut args = Args::new();
        args.push(out.ptr())
            .push(sin.ptr())
            .push(win.ptr())
            .push(n as i32)
            .push(o as i32)
            .push(i as i32);
        // SAFETY: (float*, const float*, const float*, int, int, int); s is [n, i], wsq [o, i].
        unsafe {
            launch(
                device,
                FAMILY,
                "modconv_demod",
                Config::linear(n * o),
                &mut args,
            )?
        };
    }
    Ok(out.into_storage())
}

/// Per-sample weights `wn[n, o, i, k] = w[o, i, k] · s[n, i] · d[n, o]`.
pub(crate) fn modulate_weight(
    w: &Storage,
    s: &Storage,
    d: Option<&Storage>,
    [n, o, i, k]: [usize; 4],
    device: Device,
) -> Result<Storage> {
    let total = n * o * i * k;
    let mut out = alloc(device, total)?;
    if total > 0 {
        let (win, sin, din) = (
            InBuf::new(w, device)?,
            InBuf::new(s, device)?,
            opt_in(d, device)?,
        );
        let mut args = Args::new();
        args.push(out.ptr())
            .push(win.ptr())
            .push(sin.ptr())
            .push(ptr_of(&din))
            .push(n as i32)
            .push(o as i32)
            .push(i as i32)
            .push(k as i32);
        // SAFETY: matches modconv_modulate_weight; w [o,i,k], s [n,i], d [n,o].
        unsafe {
            launch(
                device,
                FAMILY,
                "modconv_modulate_weight",
                Config::linear(total),
                &mut args,
            )?
        };
    }
    Ok(out.into_storage())
}

/// The FIR up-sampling step staged inside the kernels: zero insertion `up`,
/// leading pads `p0 = [y, x]`, the 2-D filter `[fh, fw]` (a convolution) and
/// its gain.
#[derive(Clone, Copy)]
pub(crate) struct Fir<'a> {
    pub(crate) f: &'a Storage,
    pub(crate) fhw: [usize; 2],
    pub(crate) up: usize,
    pub(crate) p0: [isize; 2],
    pub(crate) gain: f32,
}

/// A view `w(m, c, ky, kx) = w[off + m·sm + c·sc + ky·sy + kx·sx]` of a weight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WeightView {
    pub(crate) off: i64,
    pub(crate) strides: [i32; 4],
}

/// The geometry of one launch of the fused convolution: input `[N, C, H, W]`,
/// staged signal `[ZH, ZW]` (x, or its FIR up-sampling), output
/// `[N, M, OH, OW]`, kernel `[kh, kw]`, zero padding of Z `[y, x]` (may be
/// negative).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) hw: [usize; 2],
    pub(crate) m: usize,
    pub(crate) k: [usize; 2],
    pub(crate) zhw: [usize; 2],
    pub(crate) pad: [isize; 2],
    pub(crate) ohw: [usize; 2],
}

/// The epilogue of the fused kernel: per-row output scale, noise, bias,
/// activation, gain and clamp; optionally the raw accumulator (`pre`) and the
/// row dot products `Σ_p acc · dot_aux` (as `dot`).
pub(crate) struct EpiArgs<'a> {
    pub(crate) out_scale: Option<&'a Storage>,
    /// Noise `[N or 1, 1, OH, OW]`, whether it has one plane per sample, strength `[1]`.
    pub(crate) noise: Option<(&'a Storage, bool, &'a Storage)>,
    pub(crate) bias: Option<&'a Storage>,
    pub(crate) act: i32,
    pub(crate) alpha: f32,
    pub(crate) gain: f32,
    /// Negative: none.
    pub(crate) clamp: f32,
    pub(crate) want_pre: bool,
    pub(crate) dot_aux: Option<&'a Storage>,
}

impl EpiArgs<'_> {
    pub(crate) fn plain() -> EpiArgs<'static> {
        EpiArgs {
            out_scale: None,
            noise: None,
            bias: None,
            act: ACT_LINEAR,
            alpha: 0.0,
            gain: 1.0,
            clamp: -1.0,
            want_pre: false,
            dot_aux: None,
        }
    }
}

/// `struct McEpi` of modconv.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct McEpi {
    out_scale: u64,
    noise: u64,
    noise_nstride: i64,
    strength: u64,
    bias: u64,
    act: i32,
    alpha: f32,
    gain: f32,
    clamp: f32,
    pre: u64,
    dot_out: u64,
    dot_aux: u64,
}
// SAFETY: plain addresses and numbers with the C layout of `struct McEpi`.
unsafe impl KernelArg for McEpi {}

/// What the fused convolution returns: `y`, and `pre` / `dot` when asked.
pub(crate) struct FwdOut {
    pub(crate) y: Storage,
    pub(crate) pre: Option<Storage>,
    pub(crate) dot: Option<Storage>,
}

pub(crate) fn to_i32(op: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Invalid {
        op,
        msg: format!("size {v} exceeds the kernels' 32-bit index range"),
    })
}

#[allow(clippy::too_many_arguments)]
/// Runs `modconv_fwd_*` (FP32) or `modconv_tc_fwd_*` (tensor cores, see
/// `modconv_tc`): `y = epilogue(Σ w(m,c,ky,kx) · s[n,c]·Z[n,c,oy+ky−pad, ox+kx−pad])`.
pub(crate) fn fused_conv(
    x: &Storage,
    in_scale: Option<&Storage>,
    w: &Storage,
    view: WeightView,
    fir: Option<Fir<'_>>,
    g: ConvGeom,
    epi: &EpiArgs<'_>,
    precision: Precision,
    device: Device,
) -> Result<FwdOut> {
    const OP: &str = "modulated_conv2d (fused kernel)";
    let [kh, kw] = g.k;
    let tc = TcKernel::pick(precision, g, fir, device)?;
    let out_n = g.n * g.m * g.ohw[0] * g.ohw[1];
    // FP32: channels per staging step, as many as fit in 48 KiB, at most CHUNK.
    let per_chan = kh * kw * BM + (TH + kh - 1) * (TW + kw - 1);
    let cc = (SMEM_MAX / (4 * per_chan)).min(CHUNK).min(g.c.max(1));
    if cc == 0 && tc.is_none() {
        return Err(Error::Invalid {
            op: OP,
            msg: format!("kernel {kh}×{kw} too large for the fused kernel's shared memory"),
        });
    }
    let mut y = alloc(device, out_n)?;
    let mut pre = if epi.want_pre {
        Some(alloc(device, out_n)?)
    } else {
        None
    };
    let mut dot = match epi.dot_aux {
        Some(_) => Some(zeros(device, g.n * g.m)?),
        None => None,
    };
    // F16 storage (an FP16 block's activations) is read by the `_xh`
    // tensor-core kernel as it is; any other kernel reads it widened.
    let xh = match (x, tc) {
        (Storage::Half(h), Some(t)) => t.for_input(h.dtype),
        _ => None,
    };
    if out_n > 0 {
        let xin = SrcBuf::new(x, xh.is_some(), device)?;
        let x_ptr = xin.ptr();
        let sin = opt_in(in_scale, device)?;
        let win = InBuf::new(w, device)?;
        let fin = opt_in(fir.map(|f| f.f), device)?;
        let osc = opt_in(epi.out_scale, device)?;
        let nin = opt_in(epi.noise.map(|n| n.0), device)?;
        let stin = opt_in(epi.noise.map(|n| n.2), device)?;
        let bin = opt_in(epi.bias, device)?;
        let ain = opt_in(epi.dot_aux, device)?;
        let plane = g.ohw[0] * g.ohw[1];
        let e = McEpi {
            out_scale: ptr_of(&osc),
            noise: ptr_of(&nin),
            noise_nstride: match epi.noise {
                Some((_, true, _)) => plane as i64,
                _ => 0,
            },
            strength: ptr_of(&stin),
            bias: ptr_of(&bin),
            act: epi.act,
            alpha: epi.alpha,
            gain: epi.gain,
            clamp: epi.clamp,
            pre: pre.as_mut().map_or(0, |p| p.ptr()),
            dot_out: dot.as_mut().map_or(0, |p| p.ptr()),
            dot_aux: ptr_of(&ain),
        };
        let (fhw, up, p0, fgain) = match fir {
            Some(f) => (f.fhw, f.up, f.p0, f.gain),
            None => ([0, 0], 1, [0, 0], 1.0),
        };
        // Both kernel families take (y, x, in_scale, <weights>, fir, fh, fw,
        // up, p0y, p0x, fir_gain, C, H, W, M, kh, kw, ZH, ZW, cpy, cpx, OH, OW,
        // <channels per step or Cpad>, McEpi); only <weights> differ.
        let mut args = Args::new();
        args.push(y.ptr()).push(x_ptr).push(ptr_of(&sin));
        let push_tail = |args: &mut Args, per_step: usize| -> Result<()> {
            args.push(ptr_of(&fin))
                .push(fhw[0] as i32)
                .push(fhw[1] as i32)
                .push(up as i32)
                .push(p0[0] as i32)
                .push(p0[1] as i32)
                .push(fgain);
            for v in [g.c, g.hw[0], g.hw[1], g.m, kh, kw, g.zhw[0], g.zhw[1]] {
                args.push(to_i32(OP, v)?);
            }
            args.push(g.pad[0] as i32).push(g.pad[1] as i32);
            for v in [g.ohw[0], g.ohw[1], per_step] {
                args.push(to_i32(OP, v)?);
            }
            args.push(e);
            Ok(())
        };
        let grid = grid(OP, g)?;
        if let Some(tc) = tc {
            // The weight view's operands, [M][kh·kw][Cpad], then the GEMM.
            let mut wt = tc.weight_operands(win.ptr(), view, g, device)?;
            args.push(wt.ptr());
            push_tail(&mut args, tc.cpad(g.c))?;
            let cfg = Config {
                grid,
                block: (BLOCK, 1, 1),
                shared_bytes: tc.shared_bytes(g, [TH, TW, BM]),
            };
            // SAFETY: the arguments follow MC_TC_PARAMS (x: F16 bits for
            // the `_xh` kernels, floats otherwise); wt holds Cpad channels
            // per (m, tap); the other buffers as below.
            let name = xh.unwrap_or(tc.name);
            unsafe { launch(device, modconv_tc::FAMILY, name, cfg, &mut args)? };
            drop(wt);
        } else {
            args.push(win.ptr()).push(view.off);
            for s in view.strides {
                args.push(s);
            }
            push_tail(&mut args, cc)?;
            let cfg = Config {
                grid,
                block: (BLOCK, 1, 1),
                shared_bytes: (4 * cc * per_chan) as u32,
            };
            let kernel = match (kh, kw) {
                (3, 3) if fir.is_some_and(|f| f.up == 2 && f.fhw == [4, 4]) => {
                    "modconv_fwd_3x3_up2_f4"
                }
                (3, 3) => "modconv_fwd_3x3",
                (1, 1) => "modconv_fwd_1x1",
                _ => "modconv_fwd_any",
            };
            // SAFETY: the arguments follow MC_FWD_PARAMS; every buffer has the
            // size the geometry implies (checked by the op), the weight view
            // stays inside w for m < M, c < C, ky < kh, kx < kw.
            unsafe { launch(device, FAMILY, kernel, cfg, &mut args)? };
        }
    }
    Ok(FwdOut {
        y: y.into_storage(),
        pre: pre.map(OutBuf::into_storage),
        dot: dot.map(OutBuf::into_storage),
    })
}

/// The forward's grid: (spatial tiles, ceil(M / BM), N).
fn grid(op: &'static str, g: ConvGeom) -> Result<(u32, u32, u32)> {
    let tiles = g.ohw[0].div_ceil(TH) * g.ohw[1].div_ceil(TW);
    let (gy, gz) = (g.m.div_ceil(BM), g.n);
    if tiles > i32::MAX as usize || gy > 65535 || gz > 65535 {
        return Err(Error::Invalid {
            op,
            msg: format!("grid ({tiles}, {gy}, {gz}) exceeds the CUDA limits"),
        });
    }
    Ok((tiles as u32, gy as u32, gz as u32))
}

/// The epilogue's backward (see `modconv_epilogue_grad`).
pub(crate) struct EpiGrad {
    /// Gradient of the raw accumulator `[N, M, P]`.
    pub(crate) gu: Storage,
    /// Gradient of the pre-noise value `[N, M, P]` (when asked).
    pub(crate) g: Option<Storage>,
    /// Row sums `[N, M]`: Σ g, Σ g·u, Σ g·noise (when asked).
    pub(crate) row_g: Option<Storage>,
    pub(crate) row_gu: Option<Storage>,
    pub(crate) row_gn: Option<Storage>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn epilogue_grad(
    gy: &Storage,
    y: &Storage,
    pre: Option<&Storage>,
    d: Option<&Storage>,
    noise: Option<(&Storage, bool)>,
    [n, m, p]: [usize; 3],
    (act, alpha, gain, clamp): (i32, f32, f32, f32),
    want: [bool; 3],
    want_g: bool,
    device: Device,
) -> Result<EpiGrad> {
    let total = n * m * p;
    let mut gu = alloc(device, total)?;
    let mut g = if want_g {
        Some(alloc(device, total)?)
    } else {
        None
    };
    let mut rows: Vec<Option<OutBuf>> = Vec::new();
    for (k, on) in want.into_iter().enumerate() {
        let needed = on && (k != 1 || pre.is_some()) && (k != 2 || noise.is_some());
        rows.push(if needed {
            Some(alloc(device, n * m)?)
        } else {
            None
        });
    }
    if n * m > 0 {
        let (gin, yin) = (InBuf::new(gy, device)?, InBuf::new(y, device)?);
        let (pin, din) = (opt_in(pre, device)?, opt_in(d, device)?);
        let nin = opt_in(noise.map(|v| v.0), device)?;
        let mut args = Args::new();
        args.push(gu.ptr()).push(g.as_mut().map_or(0, |b| b.ptr()));
        for r in rows.iter_mut() {
            args.push(r.as_mut().map_or(0, |b| b.ptr()));
        }
        args.push(gin.ptr())
            .push(yin.ptr())
            .push(ptr_of(&pin))
            .push(ptr_of(&din))
            .push(ptr_of(&nin))
            .push(match noise {
                Some((_, true)) => p as i64,
                _ => 0i64,
            })
            .push(to_i32("modconv_epilogue_grad", n)?)
            .push(to_i32("modconv_epilogue_grad", m)?)
            .push(to_i32("modconv_epilogue_grad", p)?)
            .push(act)
            .push(alpha)
            .push(gain)
            .push(clamp);
        let cfg = Config {
            grid: ((n * m).min(MAX_BLOCKS as usize) as u32, 1, 1),
            block: (BLOCK, 1, 1),
            shared_bytes: 0,
        };
        // SAFETY: matches modconv_epilogue_grad; gy, y, pre are [n, m, p], d [n, m], noise [n or 1, p].
        unsafe { launch(device, FAMILY, "modconv_epilogue_grad", cfg, &mut args)? };
    }
    let mut rows = rows.into_iter().map(|r| r.map(OutBuf::into_storage));
    Ok(EpiGrad {
        gu: gu.into_storage(),
        g: g.map(OutBuf::into_storage),
        row_g: rows.next().flatten(),
        row_gu: rows.next().flatten(),
        row_gn: rows.next().flatten(),
    })
}

/// The demodulation terms: `cw [O, I]` and `ds [N, I]` (see `modconv_demod_grad`).
pub(crate) fn demod_grad(
    dd: &Storage,
    d: &Storage,
    s: &Storage,
    wsq: &Storage,
    [n, o, i]: [usize; 3],
    device: Device,
) -> Result<(Storage, Storage)> {
    let (mut cw, mut ds) = (alloc(device, o * i)?, alloc(device, n * i)?);
    let total = o * i + n * i;
    if total > 0 {
        let ins = [dd, d, s, wsq]
            .into_iter()
            .map(|t| InBuf::new(t, device))
            .collect::<Result<Vec<_>>>()?;
        let mut args = Args::new();
        args.push(cw.ptr()).push(ds.ptr());
        for b in &ins {
            args.push(b.ptr());
        }
        args.push(n as i32).push(o as i32).push(i as i32);
        // SAFETY: matches modconv_demod_grad; dd, d [n,o], s [n,i], wsq [o,i].
        unsafe {
            launch(
                device,
                FAMILY,
                "modconv_demod_grad",
                Config::linear(total),
                &mut args,
            )?
        };
    }
    Ok((cw.into_storage(), ds.into_storage()))
}

/// `z = upfirdn2d(x ⊙ s)` `[N, C, ZH, ZW]`.
pub(crate) fn upfir(
    x: &Storage,
    s: &Storage,
    fir: Fir<'_>,
    [n, c, h, w]: [usize; 4],
    zhw: [usize; 2],
    device: Device,
) -> Result<Storage> {
    let total = n * c * zhw[0] * zhw[1];
    let mut z = alloc(device, total)?;
    if total > 0 {
        let (xin, sin, fin) = (
            InBuf::new(x, device)?,
            InBuf::new(s, device)?,
            InBuf::new(fir.f, device)?,
        );
        let mut args = Args::new();
        args.push(z.ptr())
            .push(xin.ptr())
            .push(sin.ptr())
            .push(fin.ptr())
            .push(fir.fhw[0] as i32)
            .push(fir.fhw[1] as i32)
            .push(fir.up as i32)
            .push(fir.p0[0] as i32)
            .push(fir.p0[1] as i32)
            .push(fir.gain);
        for v in [n, c, h, w, zhw[0], zhw[1]] {
            args.push(to_i32("modconv_upfir", v)?);
        }
        // SAFETY: matches modconv_upfir; x [n,c,h,w], s [n,c], z [n,c,zh,zw].
        unsafe {
            launch(
                device,
                FAMILY,
                "modconv_upfir",
                Config::linear(total),
                &mut args,
            )?
        };
    }
    Ok(z.into_storage())
}

/// The adjoint FIR step of the input gradient: `dx = FIRᵀ(gz) · s`, and
/// `ds[n, c] = Σ FIRᵀ(gz) · x`.
pub(crate) fn fir_down(
    gz: &Storage,
    x: &Storage,
    s: &Storage,
    fir: Fir<'_>,
    [n, c, h, w]: [usize; 4],
    zhw: [usize; 2],
    device: Device,
) -> Result<(Storage, Storage)> {
    let (mut dx, mut ds) = (alloc(device, n * c * h * w)?, alloc(device, n * c)?);
    if n * c > 0 {
        let ins = [gz, x, s, fir.f]
            .into_iter()
            .map(|t| InBuf::new(t, device))
            .collect::<Result<Vec<_>>>()?;
        let mut args = Args::new();
        args.push(dx.ptr()).push(ds.ptr());
        for b in &ins {
            args.push(b.ptr());
        }
        args.push(fir.fhw[0] as i32)
            .push(fir.fhw[1] as i32)
            .push(fir.up as i32)
            .push(fir.p0[0] as i32)
            .push(fir.p0[1] as i32)
            .push(fir.gain);
        for v in [n, c, h, w, zhw[0], zhw[1]] {
            args.push(to_i32("modconv_fir_down", v)?);
        }
        let cfg = Config {
            grid: ((n * c).min(MAX_BLOCKS as usize) as u32, 1, 1),
            block: (BLOCK, 1, 1),
            shared_bytes: 0,
        };
        // SAFETY: matches modconv_fir_down; gz [n,c,zh,zw], x [n,c,h,w], s [n,c].
        unsafe { launch(device, FAMILY, "modconv_fir_down", cfg, &mut args)? };
    }
    Ok((dx.into_storage(), ds.into_storage()))
}

/// The weight gradient `Σ_{n,p} gu · s · Z` as split-K partial sums
/// `[splits, M, C·kh·kw]` (stored at the raw weight's index, flipped when
/// `flip`); returns the storage and `splits`. At a tensor-core precision
/// (where `conv_tc` applies) it is conv_tc.cu's weight-gradient GEMM with
/// the styles as input scale; else `modconv_wgrad` in FP32.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grad(
    gu: &Storage,
    z: &Storage,
    in_scale: Option<&Storage>,
    g: ConvGeom,
    flip: bool,
    precision: Precision,
    device: Device,
) -> Result<(Storage, usize)> {
    const OP: &str = "modconv_wgrad";
    let [kh, kw] = g.k;
    let cols = g.c * kh * kw;
    let kdim = g.n * g.ohw[0] * g.ohw[1];
    // The same GEMM as conv2d's weight gradient of Z (stride 1, padding
    // `pad`, which is never negative here: p.padding, or 0 for up 2).
    let cg = CpuConvGeom {
        n: g.n,
        c: g.c,
        h: g.zhw[0],
        w: g.zhw[1],
        o: g.m,
        kh,
        kw,
        stride: [1, 1],
        padding: g.pad.map(|p| p.max(0) as usize),
        groups: 1,
        oh: g.ohw[0],
        ow: g.ohw[1],
    };
    if g.pad.iter().all(|&p| p >= 0)
        && conv_tc::applies(conv_tc::Pass::WeightGrad, &cg, precision, device)?
    {
        let (splits, chunk) = conv_tc::wgrad_splits(&cg);
        let total = splits * g.m * cols;
        for (what, v) in [
            ("split-K workspace", total),
            ("staged input", g.n * g.c * g.zhw[0] * g.zhw[1]),
        ] {
            to_i32(OP, v).map_err(|_| Error::Invalid {
                op: OP,
                msg: format!("the {what} has {v} elements; the kernels take at most 2^31 − 1"),
            })?;
        }
        let mut part = alloc(device, total)?;
        if total > 0 {
            conv_tc::weight_grad_partial(
                &mut part,
                z,
                gu,
                in_scale,
                flip,
                (splits, chunk),
                &cg,
                precision,
                device,
            )?;
        }
        return Ok((part.into_storage(), splits));
    }
    let (mt, nt) = (g.m.div_ceil(WM), cols.div_ceil(WN));
    // Enough blocks to fill a large GPU, each with at least 64 K-steps of work.
    let splits = 256usize
        .div_ceil((mt * nt).max(1))
        .clamp(1, kdim.div_ceil(WK * 64).max(1));
    let kps = kdim.div_ceil(splits).div_ceil(WK) * WK;
    let splits = kdim.div_ceil(kps.max(1)).max(1);
    let total = splits * g.m * cols;
    let mut part = alloc(device, total)?;
    if total > 0 {
        let (gin, zin, sin) = (
            InBuf::new(gu, device)?,
            InBuf::new(z, device)?,
            opt_in(in_scale, device)?,
        );
        let mut args = Args::new();
        args.push(part.ptr())
            .push(gin.ptr())
            .push(zin.ptr())
            .push(ptr_of(&sin));
        for v in [g.n, g.m, g.c, g.zhw[0], g.zhw[1], kh, kw] {
            args.push(to_i32(OP, v)?);
        }
        args.push(g.pad[0] as i32).push(g.pad[1] as i32);
        args.push(to_i32(OP, g.ohw[0])?)
            .push(to_i32(OP, g.ohw[1])?)
            .push(flip as i32)
            .push(kps as i64);
        if mt > 65535 || splits > 65535 {
            return Err(Error::Invalid {
                op: OP,
                msg: format!("grid ({nt}, {mt}, {splits}) exceeds the CUDA limits"),
            });
        }
        let cfg = Config {
            grid: (nt as u32, mt as u32, splits as u32),
            block: (BLOCK, 1, 1),
            shared_bytes: 0,
        };
        // SAFETY: matches modconv_wgrad; gu [n,m,oh,ow], z [n,c,zh,zw], s [n,c],
        // part [splits, m, cols]; every block writes its whole K range's sums.
        unsafe { launch(device, FAMILY, "modconv_wgrad", cfg, &mut args)? };
    }
    Ok((part.into_storage(), splits))
}
