//! Launch code for `kernels/elementwise.cu`: unary maps, broadcasting binary
//! ops, the strided gather behind permute/broadcast/narrow/flip, concat and
//! sum/max reductions, and the casts to and from 2-byte storage, on
//! `Device::Cuda` and `Device::Sim` alike.

use super::launch::{launch, Args, Config, KernelArg};
use super::{alloc, alloc_half, HalfInBuf, InBuf};
use crate::backend::cpu::elementwise::{Binary, Unary};
use crate::backend::cpu::reduce::Reduce;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::{HalfStorage, Storage};

const FAMILY: &str = "elementwise";
/// `MAX_RANK` of elementwise.cu: axes after merging contiguous ones.
pub const MAX_RANK: usize = 6;
const BLOCK: u32 = 256;
const MAX_BLOCKS: u32 = 1 << 16;
/// Rows longer than this get a block each instead of a warp.
const WARP_ROW_MAX: usize = 1024;

/// `struct Dims` of elementwise.cu: right-aligned sizes or strides.
#[repr(C)]
#[derive(Clone, Copy)]
struct Dims([i64; MAX_RANK]);
// SAFETY: plain i64s, the C layout of `struct Dims { long long v[6]; }`.
unsafe impl KernelArg for Dims {}

impl Dims {
    /// Right-aligns `v`, padding the front with `pad`.
    fn new(v: &[i64], pad: i64) -> Dims {
        let mut d = [pad; MAX_RANK];
        d[MAX_RANK - v.len()..].copy_from_slice(v);
        Dims(d)
    }
}

fn unary_code(op: Unary) -> (i32, f32, f32) {
    match op {
        Unary::Neg => (0, 0.0, 0.0),
        Unary::Square => (1, 0.0, 0.0),
        Unary::Sqrt => (2, 0.0, 0.0),
        Unary::Rsqrt => (3, 0.0, 0.0),
        Unary::Exp => (4, 0.0, 0.0),
        Unary::Log => (5, 0.0, 0.0),
        Unary::Softplus => (6, 0.0, 0.0),
        Unary::Sigmoid => (7, 0.0, 0.0),
        Unary::Abs => (8, 0.0, 0.0),
        Unary::Sign => (9, 0.0, 0.0),
        Unary::Affine { mul, add } => (10, mul, add),
        Unary::Clamp { lo, hi } => (11, lo, hi),
        Unary::InRange { lo, hi } => (12, lo, hi),
    }
}

fn binary_code(op: Binary) -> i32 {
    match op {
        Binary::Add => 0,
        Binary::Sub => 1,
        Binary::Mul => 2,
        Binary::Div => 3,
        Binary::Maximum => 4,
        Binary::Minimum => 5,
        Binary::Gt => 6,
        Binary::Ge => 7,
        Binary::Lt => 8,
        Binary::Le => 9,
        Binary::Eq => 10,
    }
}

fn reduce_code(op: Reduce) -> i32 {
    match op {
        Reduce::Sum => 0,
        Reduce::Max => 1,
    }
}

/// Drops size-1 axes and merges neighbours that are contiguous in every
/// operand (the output is row-major, so always contiguous). Returns at least
/// one axis.
fn coalesce(dims: &[usize], strides: &[Vec<isize>]) -> (Vec<usize>, Vec<Vec<isize>>) {
    let mut d: Vec<usize> = Vec::new();
    let mut s: Vec<Vec<isize>> = vec![Vec::new(); strides.len()];
    for ax in 0..dims.len() {
        if dims[ax] == 1 {
            continue;
        }
        let mergeable = !d.is_empty()
            && strides
                .iter()
                .zip(&s)
                .all(|(st, cur)| cur[cur.len() - 1] == st[ax] * dims[ax] as isize);
        if mergeable {
            *d.last_mut().unwrap() *= dims[ax];
            for (k, st) in strides.iter().enumerate() {
                *s[k].last_mut().unwrap() = st[ax];
            }
        } else {
            d.push(dims[ax]);
            for (k, st) in strides.iter().enumerate() {
                s[k].push(st[ax]);
            }
        }
    }
    if d.is_empty() {
        d.push(1);
        s.iter_mut().for_each(|v| v.push(0));
    }
    (d, s)
}

fn check_rank(op: &'static str, dims: &[usize]) -> Result<()> {
    if dims.len() > MAX_RANK {
        return Err(Error::Invalid {
            op,
            msg: format!(
                "shape {dims:?} (after merging contiguous axes) has more than {MAX_RANK} axes, \
                 the most the CUDA kernels take"
            ),
        });
    }
    Ok(())
}

fn to_i64(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

fn to_i64s(v: &[isize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// `op` applied to each of the `n` elements of `x`.
pub(crate) fn unary(x: &Storage, n: usize, device: Device, op: Unary) -> Result<Storage> {
    let mut y = alloc(device, n)?;
    if n > 0 {
        let xin = InBuf::new(x, device)?;
        let (code, p0, p1) = unary_code(op);
        let mut args = Args::new();
        args.push(y.ptr())
            .push(xin.ptr())
            .push(n as i64)
            .push(code)
            .push(p0)
            .push(p1);
        // SAFETY: (float*, const float*, long long, int, float, float); both buffers hold n floats.
        unsafe { launch(device, FAMILY, "unary_map", Config::linear(n), &mut args)? };
    }
    Ok(y.into_storage())
}

/// The `n` values of f32 storage `x` rounded to the 2-byte `dtype`
/// (nearest, ties to even).
pub(crate) fn cast_to_half(x: &Storage, n: usize, dtype: DType, device: Device) -> Result<Storage> {
    let Some(fmt) = dtype.half_code() else {
        return Err(Error::Internal(format!("cast_to_half to {dtype}")));
    };
    let mut y = alloc_half(device, n)?;
    if n > 0 {
        let xin = InBuf::new(x, device)?;
        let mut args = Args::new();
        args.push(y.ptr()).push(xin.ptr()).push(n as i64).push(fmt);
        // SAFETY: (unsigned short*, const float*, long long, int); both buffers hold n elements.
        unsafe { launch(device, FAMILY, "cast_to_half", Config::linear(n), &mut args)? };
    }
    Ok(Storage::Half(HalfStorage::new(dtype, y.into_data())))
}

/// The `n` 2-byte elements of `x` widened to f32 (exact).
pub(crate) fn cast_from_half(x: &HalfStorage, n: usize, device: Device) -> Result<Storage> {
    let Some(fmt) = x.dtype.half_code() else {
        return Err(Error::Internal("cast_from_half of f32 storage".into()));
    };
    let mut y = alloc(device, n)?;
    if n > 0 {
        // The bits where the kernel can read them.
        let xin = HalfInBuf::new(x, device)?;
        let xp = xin.ptr();
        let mut args = Args::new();
        args.push(y.ptr()).push(xp).push(n as i64).push(fmt);
        // SAFETY: (float*, const unsigned short*, long long, int); both buffers hold n elements.
        unsafe {
            launch(
                device,
                FAMILY,
                "cast_from_half",
                Config::linear(n),
                &mut args,
            )?
        };
    }
    Ok(y.into_storage())
}

/// `a op b` broadcast to `out`.
pub(crate) fn binary(
    a: &Storage,
    sa: &Shape,
    b: &Storage,
    sb: &Shape,
    out: &Shape,
    device: Device,
    op: Binary,
) -> Result<Storage> {
    let n = out.numel();
    let mut y = alloc(device, n)?;
    if n == 0 {
        return Ok(y.into_storage());
    }
    let st = |s: &Shape| -> Vec<isize> {
        s.broadcast_strides(out)
            .into_iter()
            .map(|v| v as isize)
            .collect()
    };
    let (dims, strides) = coalesce(out.dims(), &[st(sa), st(sb)]);
    check_rank("binary", &dims)?;
    let (ain, bin) = (InBuf::new(a, device)?, InBuf::new(b, device)?);
    let mut args = Args::new();
    args.push(y.ptr())
        .push(ain.ptr())
        .push(bin.ptr())
        .push(n as i64)
        .push(binary_code(op))
        .push(Dims::new(&to_i64(&dims), 1))
        .push(Dims::new(&to_i64s(&strides[0]), 0))
        .push(Dims::new(&to_i64s(&strides[1]), 0))
        .push(dims.len() as i32);
    // SAFETY: matches binary_map's parameters; the strides stay inside a and b
    // because both shapes broadcast to `out`.
    unsafe { launch(device, FAMILY, "binary_map", Config::linear(n), &mut args)? };
    Ok(y.into_storage())
}

/// `out[c] = x[offset + Σ c_i · strides_i]` over `out_dims` (see
/// `cpu::layout::strided_gather`); strides may be 0 or negative. `x_len` is
/// the number of elements of `x`, against which every index is checked.
pub(crate) fn strided_gather(
    x: &Storage,
    x_len: usize,
    out_dims: &[usize],
    strides: &[isize],
    offset: isize,
    device: Device,
) -> Result<Storage> {
    let n: usize = out_dims.iter().product();
    let mut y = alloc(device, n)?;
    if n == 0 {
        return Ok(y.into_storage());
    }
    // The kernel trusts its indices: check the extremes here.
    let (mut lo, mut hi) = (offset, offset);
    for (&d, &s) in out_dims.iter().zip(strides) {
        let span = (d as isize - 1) * s;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    if lo < 0 || hi >= x_len as isize {
        return Err(Error::Internal(format!(
            "strided gather reaches elements {lo}..={hi} of a buffer of {x_len}"
        )));
    }
    let (dims, st) = coalesce(out_dims, &[strides.to_vec()]);
    check_rank("strided_gather", &dims)?;
    let xin = InBuf::new(x, device)?;
    let mut args = Args::new();
    args.push(y.ptr())
        .push(xin.ptr())
        .push(n as i64)
        .push(offset as i64)
        .push(Dims::new(&to_i64(&dims), 1))
        .push(Dims::new(&to_i64s(&st[0]), 0))
        .push(dims.len() as i32);
    // SAFETY: matches strided_gather's parameters; indices checked above.
    unsafe {
        launch(
            device,
            FAMILY,
            "strided_gather",
            Config::linear(n),
            &mut args,
        )?
    };
    Ok(y.into_storage())
}

/// Concatenation: part k is `[outer, inners[k]]`, the result `[outer, Σ inners]`.
pub(crate) fn concat(
    parts: &[&Storage],
    outer: usize,
    inners: &[usize],
    device: Device,
) -> Result<Storage> {
    let total: usize = inners.iter().sum();
    let mut y = alloc(device, outer * total)?;
    let mut start = 0usize;
    for (p, &inner) in parts.iter().zip(inners) {
        let n = outer * inner;
        if n > 0 {
            let pin = InBuf::new(p, device)?;
            let mut args = Args::new();
            args.push(y.ptr())
                .push(pin.ptr())
                .push(outer as i64)
                .push(inner as i64)
                .push(total as i64)
                .push(start as i64);
            // SAFETY: matches concat_part; the part holds outer*inner floats and
            // columns start..start+inner lie within the total.
            unsafe { launch(device, FAMILY, "concat_part", Config::linear(n), &mut args)? };
        }
        start += inner;
    }
    Ok(y.into_storage())
}

/// Reduces `x` (shape `dims`) over `axes` (sorted, unique, in range) into the
/// keep-dim shape. Adjacent reduced axes are reduced in place as an
/// [outer, r, inner] view; otherwise the kept axes are first gathered in
/// front of the reduced ones.
pub(crate) fn reduce(
    x: &Storage,
    dims: &[usize],
    axes: &[usize],
    op: Reduce,
    device: Device,
) -> Result<Storage> {
    let n_in: usize = dims.iter().product();
    let n_out: usize = (0..dims.len())
        .filter(|a| !axes.contains(a))
        .map(|a| dims[a])
        .product();
    if n_out == 0 {
        return Ok(alloc(device, 0)?.into_storage());
    }
    // Size-1 axes do not matter for adjacency.
    let live: Vec<usize> = (0..dims.len()).filter(|&a| dims[a] != 1).collect();
    let pos: Vec<usize> = (0..live.len())
        .filter(|&i| axes.contains(&live[i]))
        .collect();
    let adjacent = pos.windows(2).all(|w| w[1] == w[0] + 1);
    let prod = |ax: &[usize]| ax.iter().map(|&a| dims[a]).product::<usize>();
    let (gathered, outer, r, inner);
    let src: &Storage = if adjacent {
        let (first, last) = match (pos.first(), pos.last()) {
            (Some(&f), Some(&l)) => (f, l + 1),
            _ => (live.len(), live.len()),
        };
        outer = prod(&live[..first]);
        r = prod(&live[first..last]);
        inner = prod(&live[last..]);
        x
    } else {
        let kept: Vec<usize> = live.iter().copied().filter(|a| !axes.contains(a)).collect();
        let red: Vec<usize> = live.iter().copied().filter(|a| axes.contains(a)).collect();
        let st = Shape::new(dims.to_vec()).strides();
        let order: Vec<usize> = kept.iter().chain(&red).copied().collect();
        let gdims: Vec<usize> = order.iter().map(|&a| dims[a]).collect();
        let gst: Vec<isize> = order.iter().map(|&a| st[a] as isize).collect();
        gathered = strided_gather(x, n_in, &gdims, &gst, 0, device)?;
        outer = prod(&kept);
        r = prod(&red);
        inner = 1;
        &gathered
    };
    reduce_view(src, outer, r, inner, op, device)
}

/// Reduces the [outer, r, inner] view of `x` over r.
fn reduce_view(
    x: &Storage,
    outer: usize,
    r: usize,
    inner: usize,
    op: Reduce,
    device: Device,
) -> Result<Storage> {
    let mut y = alloc(device, outer * inner)?;
    let xin = InBuf::new(x, device)?;
    let mut args = Args::new();
    args.push(y.ptr())
        .push(xin.ptr())
        .push(outer as i64)
        .push(r as i64);
    let (kernel, cfg) = if inner == 1 {
        args.push(reduce_code(op));
        if r <= WARP_ROW_MAX {
            let rows_per_block = (BLOCK / 32) as usize;
            let cfg = Config::linear(outer * 32);
            debug_assert!(cfg.grid.0 as usize <= outer.div_ceil(rows_per_block));
            ("reduce_rows_warp", cfg)
        } else {
            let blocks = outer.clamp(1, MAX_BLOCKS as usize) as u32;
            let cfg = Config {
                grid: (blocks, 1, 1),
                block: (BLOCK, 1, 1),
                shared_bytes: 0,
            };
            ("reduce_rows_block", cfg)
        }
    } else {
        args.push(inner as i64).push(reduce_code(op));
        let bx = inner.next_power_of_two().min(32);
        let by = (BLOCK as usize / bx).min(r.next_power_of_two()).max(1);
        let gx = inner.div_ceil(bx);
        if gx > i32::MAX as usize {
            return Err(Error::Invalid {
                op: "reduce",
                msg: format!("inner extent {inner} is too large for one launch"),
            });
        }
        let cfg = Config {
            grid: (gx as u32, outer.clamp(1, 65535) as u32, 1),
            block: (bx as u32, by as u32, 1),
            shared_bytes: 0,
        };
        ("reduce_inner", cfg)
    };
    // SAFETY: matches the kernel's parameters; x holds outer*r*inner floats
    // and y outer*inner.
    unsafe { launch(device, FAMILY, kernel, cfg, &mut args)? };
    Ok(y.into_storage())
}

/// Scalars of one Adam step (see `adam_step` in elementwise.cu).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamScalars {
    pub b1: f32,
    pub b2: f32,
    pub step_size: f32,
    pub inv_sqrt_bc2: f32,
    pub eps: f32,
}

/// One fused Adam step over `n` parameters: returns `(p', m', v')`.
/// `state` is `(m, v)`, `None` on a parameter's first step.
pub(crate) fn adam_step(
    p: &Storage,
    state: Option<(&Storage, &Storage)>,
    g: &Storage,
    n: usize,
    device: Device,
    k: AdamScalars,
) -> Result<(Storage, Storage, Storage)> {
    let (mut po, mut mo, mut vo) = (alloc(device, n)?, alloc(device, n)?, alloc(device, n)?);
    if n > 0 {
        let (pin, gin) = (InBuf::new(p, device)?, InBuf::new(g, device)?);
        let (min, vin) = match state {
            Some((m, v)) => (Some(InBuf::new(m, device)?), Some(InBuf::new(v, device)?)),
            None => (None, None),
        };
        // Without state the kernel never reads m and v: pass g's pointer.
        let (mp, vp) = (
            min.as_ref().map_or(gin.ptr(), InBuf::ptr),
            vin.as_ref().map_or(gin.ptr(), InBuf::ptr),
        );
        let mut args = Args::new();
        args.push(po.ptr())
            .push(mo.ptr())
            .push(vo.ptr())
            .push(pin.ptr())
            .push(mp)
            .push(vp)
            .push(gin.ptr())
            .push(n as i64)
            .push(k.b1)
            .push(k.b2)
            .push(k.step_size)
            .push(k.inv_sqrt_bc2)
            .push(k.eps)
            .push(state.is_some() as i32);
        // SAFETY: matches adam_step's parameters; every buffer holds n floats
        // (m and v are not read when has_state is 0).
        unsafe { launch(device, FAMILY, "adam_step", Config::linear(n), &mut args)? };
    }
    Ok((po.into_storage(), mo.into_storage(), vo.into_storage()))
}

#[cfg(test)]
mod tests {
    use super::coalesce;

    #[test]
    fn coalescing_merges_contiguous_axes_and_drops_unit_axes() {
        // Contiguous [2, 3, 4]: one axis.
        let (d, s) = coalesce(&[2, 3, 4], &[vec![12, 4, 1]]);
        assert_eq!((d, s), (vec![24], vec![vec![1]]));
        // Broadcast along the middle axis: [2, 3, 4] with strides (4, 0, 1).
        let (d, s) = coalesce(&[2, 3, 4], &[vec![4, 0, 1], vec![12, 4, 1]]);
        assert_eq!(d, vec![2, 3, 4]);
        assert_eq!(s, vec![vec![4, 0, 1], vec![12, 4, 1]]);
        // Flip of the last axis merges nothing but drops the unit axis.
        let (d, s) = coalesce(&[1, 3, 5], &[vec![15, 5, -1]]);
        assert_eq!((d, s), (vec![3, 5], vec![vec![5, -1]]));
        // A scalar keeps one axis.
        let (d, s) = coalesce(&[], &[vec![]]);
        assert_eq!((d, s), (vec![1], vec![vec![0]]));
    }
}
