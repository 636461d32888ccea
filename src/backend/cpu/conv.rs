//! 2-D convolution (NCHW, cross-correlation, grouped) and its two
//! gradients, by implicit GEMM where [`Implicit`] applies (stride 1 or 2, an
//! output at least 16 wide, at most 256 input channels per group: the
//! layers of the CPU presets from 16² up), else by im2col + GEMM:
//!
//! - forward: `y[n, g] = W_g · cols(x[n, g])`
//! - input gradient: `gx[n, g] = col2im(W_gᵀ · gy[n, g])`
//! - weight gradient: `gW_g = Σ_n gy[n, g] · cols(x[n, g])ᵀ`
//!
//! `W_g` is the `[O/groups, C/groups·kh·kw]` slice of the weight of group
//! `g`, and `cols` the `[C/groups·kh·kw, OH·OW]` patch matrix whose row order
//! matches the weight's `[c, i, j]` layout. A 1×1 kernel with stride 1 and no
//! padding skips im2col: the patch matrix is the input itself. The implicit
//! forms compute the same sums without the patch matrix: the forward and the
//! strided input gradient one GEMM per tap on the padded input's phases, the
//! stride-1 input gradient as the forward of the flipped, transposed weight,
//! the weight gradient one GEMM per kernel row on a channels-last copy.
//!
//! Large convolutions run one task per sample (each with its own im2col
//! buffer; the weight gradient sums per-task partials at the end); with fewer
//! samples than threads, im2col/col2im and GEMM also split inside each
//! sample. At x [4, 64, 32, 32], w [64, 64, 3, 3] on 2 cores, splitting over
//! the batch beat splitting only inside the GEMM (weight gradient ~80 vs ~50
//! GFLOP/s; forward and input gradient about even).

use super::matmul::{gemm_into, gemm_into_strided, MatRef};
use rayon::prelude::*;

/// The sizes of one convolution; the ops layer validates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    /// `[y, x]`.
    pub stride: [usize; 2],
    /// `[y, x]`, zeros on both sides.
    pub padding: [usize; 2],
    pub groups: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    /// Input channels per group.
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// Output channels per group.
    fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Rows of the patch matrix of one group (the GEMM reduction size).
    fn ckk(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// Output pixels per channel.
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    fn in_size(&self) -> usize {
        self.c * self.h * self.w
    }
    fn out_size(&self) -> usize {
        self.o * self.p()
    }
    /// A 1×1 kernel, stride 1, no padding: the patch matrix is the input.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.padding == [0, 0]
    }
    /// Multiply-adds of one sample.
    fn flops_per_sample(&self) -> usize {
        self.out_size() * self.ckk()
    }
    /// How to spread the work over the rayon pool.
    fn split(&self) -> Split {
        let threads = rayon::current_num_threads();
        let big = self.n * self.flops_per_sample() >= super::matmul::GEMM_PAR_MIN;
        Split {
            // One task per sample, each with its own scratch buffer.
            batch: big && threads > 1 && self.n > 1,
            // Fewer samples than threads: also split inside each sample.
            inner: big && threads > 1 && self.n < threads,
        }
    }
}

/// Where a convolution runs in parallel: over the samples of the batch,
/// inside each sample's im2col and GEMM, or both (nested rayon tasks).
#[derive(Clone, Copy, Debug)]
struct Split {
    batch: bool,
    inner: bool,
}

/// The output range `[lo, hi)` along one axis whose input index
/// `o·s + k − pad` lies in `[0, len)`.
fn valid_range(len: usize, k: usize, s: usize, pad: usize, out: usize) -> (usize, usize) {
    let lo = if pad > k { (pad - k).div_ceil(s) } else { 0 };
    let hi = if len + pad > k {
        (len + pad - k).div_ceil(s)
    } else {
        0
    };
    let lo = lo.min(out);
    (lo, hi.min(out).max(lo))
}

/// One row of the patch matrix: kernel tap `(i, j)` of channel plane `xc`.
fn im2col_row(xc: &[f32], g: &ConvGeom, i: usize, j: usize, row: &mut [f32]) {
    let [sy, sx] = g.stride;
    let [py, px] = g.padding;
    let (lo, hi) = valid_range(g.w, j, sx, px, g.ow);
    for (oy, r) in row.chunks_exact_mut(g.ow).enumerate() {
        let iy = oy * sy + i;
        if iy < py || iy - py >= g.h {
            r.fill(0.0);
            continue;
        }
        let xr = &xc[(iy - py) * g.w..][..g.w];
        r[..lo].fill(0.0);
        r[hi..].fill(0.0);
        if lo == hi {
            // The whole row reads padding (a kernel wider than the input).
        } else if sx == 1 {
            let ix = lo + j - px;
            r[lo..hi].copy_from_slice(&xr[ix..ix + (hi - lo)]);
        } else {
            for (ox, v) in r[lo..hi].iter_mut().enumerate() {
                *v = xr[(lo + ox) * sx + j - px];
            }
        }
    }
}

/// The adjoint of `im2col_row`: adds one patch row back into its plane.
fn col2im_row(row: &[f32], g: &ConvGeom, i: usize, j: usize, xc: &mut [f32]) {
    let [sy, sx] = g.stride;
    let [py, px] = g.padding;
    let (lo, hi) = valid_range(g.w, j, sx, px, g.ow);
    for (oy, r) in row.chunks_exact(g.ow).enumerate() {
        let iy = oy * sy + i;
        if iy < py || iy - py >= g.h {
            continue;
        }
        let xr = &mut xc[(iy - py) * g.w..][..g.w];
        if lo == hi {
            continue;
        }
        if sx == 1 {
            // Contiguous: a plain vector add (no index arithmetic per element).
            let ix = lo + j - px;
            for (x, &v) in xr[ix..ix + (hi - lo)].iter_mut().zip(&r[lo..hi]) {
                *x += v;
            }
        } else {
            for (ox, &v) in r[lo..hi].iter().enumerate() {
                xr[(lo + ox) * sx + j - px] += v;
            }
        }
    }
}

/// The patch matrix `[cg·kh·kw, oh·ow]` of one group of one sample
/// (`x` is its `[cg, h, w]` block).
fn im2col(x: &[f32], g: &ConvGeom, cols: &mut [f32], parallel: bool) {
    let (kk, hw, p) = (g.kh * g.kw, g.h * g.w, g.p());
    let fill = |(r, row): (usize, &mut [f32])| {
        let (c, t) = (r / kk, r % kk);
        im2col_row(&x[c * hw..][..hw], g, t / g.kw, t % g.kw, row);
    };
    if parallel {
        cols.par_chunks_exact_mut(p).enumerate().for_each(fill);
    } else {
        cols.chunks_exact_mut(p).enumerate().for_each(fill);
    }
}

/// Adds the patch matrix `cols` of one group back into `gx` (`[cg, h, w]`).
fn col2im(cols: &[f32], g: &ConvGeom, gx: &mut [f32], parallel: bool) {
    let (kk, hw, p) = (g.kh * g.kw, g.h * g.w, g.p());
    // Rows of one channel write to one plane: split the work by channel.
    let add = |(c, plane): (usize, &mut [f32])| {
        for t in 0..kk {
            let row = &cols[(c * kk + t) * p..][..p];
            col2im_row(row, g, t / g.kw, t % g.kw, plane);
        }
    };
    if parallel {
        gx.par_chunks_exact_mut(hw).enumerate().for_each(add);
    } else {
        gx.chunks_exact_mut(hw).enumerate().for_each(add);
    }
}

/// Implicit GEMM of a convolution (no patch matrix). Stride 1: with the
/// input plane zero-padded to `hp × wp` and flattened, kernel tap `(i, j)`
/// reads the padded plane at the constant offset `i·wp + j` from output
/// pixel `q = oy·wp + ox`. So the convolution of one group is `kh·kw` GEMMs
/// `out[o, q] += W_tap[o, c] · xpad[c, q + i·wp + j]` over `q < oh·wp`, which
/// also computes `wp − ow` junk columns per output row (dropped at the end).
/// Against im2col it saves writing and reading the `cg·kh·kw × oh·ow` patch
/// matrix (75 MB per sample at 512 channels, 64²) for `(wp − ow)/ow` more
/// multiply-adds.
///
/// Stride `s = [sy, sx]`: the padded plane is stored as its `sy·sx` phases
/// (`phase[a·sx + b][r, k] = xpad[r·sy + a, k·sx + b]`, each `hs × ws` with
/// `hs = ⌈hp/sy⌉`, `ws = ⌈wp/sx⌉`), so tap `(i, j)` reads phase
/// `(i mod sy, j mod sx)` at the constant offset `(i div sy)·ws + j div sx`
/// from `q = oy·ws + ox`: the same GEMMs, with `ws − ow` junk columns.
struct Implicit {
    wp: usize,
    s: [usize; 2],
    hs: usize,
    ws: usize,
}

impl Implicit {
    fn new(g: &ConvGeom) -> Self {
        let (hp, wp) = (g.h + 2 * g.padding[0], g.w + 2 * g.padding[1]);
        Implicit {
            wp,
            s: g.stride,
            hs: hp.div_ceil(g.stride[0]),
            ws: wp.div_ceil(g.stride[1]),
        }
    }
    /// Stride 1 or 2, an output wide enough that the junk columns cost
    /// little (≤ 2·pad/16: 13% at 3×3, padding 1) and at most 256 input
    /// channels. Measured with 3×3 taps, batch 8, 2 threads (loaded machine,
    /// best of 3–5): implicit/im2col speed 1.5–2.7× at 32–128 channels and
    /// 1.1–1.6× at 256 (32², 64²), but 0.8–1.0× at 512 (16²–64²), where the
    /// patch matrix's single K = 4608 product outweighs its traffic. Stride
    /// 2 takes the same rule, measured only on the tiny preset's training
    /// step (16–64 channels), where its im2col/col2im had been ~10%.
    fn applies(g: &ConvGeom) -> bool {
        g.stride[0] <= 2 && g.stride[1] <= 2 && !g.pointwise() && g.ow >= 16 && g.cg() <= 256
    }
    /// Floats per channel: all phases of its padded plane.
    fn plane(&self) -> usize {
        self.s[0] * self.s[1] * self.hs * self.ws
    }
    /// Where input pixel `(y, x)` lies in a channel's phases: `rows[y] +
    /// cols[x]` (tabulated: no division per pixel).
    fn phase_offsets(&self, g: &ConvGeom) -> (Vec<usize>, Vec<usize>) {
        let ([sy, sx], [py, px]) = (self.s, g.padding);
        let rows = (0..g.h)
            .map(|y| ((y + py) % sy) * sx * self.hs * self.ws + (y + py) / sy * self.ws)
            .collect();
        let cols = (0..g.w)
            .map(|x| ((x + px) % sx) * self.hs * self.ws + (x + px) / sx)
            .collect();
        (rows, cols)
    }
    /// Where tap `(i, j)` reads for output pixel 0 of a channel.
    fn tap_offset(&self, i: usize, j: usize) -> usize {
        let [sy, sx] = self.s;
        ((i % sy) * sx + j % sx) * self.hs * self.ws + (i / sy) * self.ws + j / sx
    }
    /// Writes the `cg` planes of `xg` (`[cg, h, w]`) zero-padded into `xpad`
    /// (`cg·hp·wp + kw` floats: the tail the last junk columns read is
    /// zeroed too).
    fn pad_input(&self, xg: &[f32], g: &ConvGeom, xpad: &mut [f32], par: bool) {
        if self.s != [1, 1] {
            return self.phase_input(xg, g, xpad);
        }
        let (hw, plane, wp) = (g.h * g.w, self.plane(), self.wp);
        let [py, px] = g.padding;
        // Zero only the borders and the tail; the interior is overwritten.
        let pad_plane = |(c, dst): (usize, &mut [f32])| {
            let src = &xg[c * hw..][..hw];
            dst[..py * wp].fill(0.0);
            for (y, row) in dst[py * wp..(py + g.h) * wp]
                .chunks_exact_mut(wp)
                .enumerate()
            {
                row[..px].fill(0.0);
                row[px..px + g.w].copy_from_slice(&src[y * g.w..][..g.w]);
                row[px + g.w..].fill(0.0);
            }
            dst[(py + g.h) * wp..].fill(0.0);
        };
        let (planes, tail) = xpad.split_at_mut(g.cg() * plane);
        tail.fill(0.0);
        if par {
            planes
                .par_chunks_exact_mut(plane)
                .enumerate()
                .for_each(pad_plane);
        } else {
            planes
                .chunks_exact_mut(plane)
                .enumerate()
                .for_each(pad_plane);
        }
    }
    /// [`Self::pad_input`] for a stride other than 1: the padded planes as
    /// their phases (see [`Implicit`]), zeros where a phase reads padding or
    /// past `hp × wp`.
    fn phase_input(&self, xg: &[f32], g: &ConvGeom, xpad: &mut [f32]) {
        let (hw, plane, [sy, sx]) = (g.h * g.w, self.plane(), self.s);
        let [py, px] = g.padding;
        let (planes, tail) = xpad.split_at_mut(g.cg() * plane);
        tail.fill(0.0);
        for (c, dst) in planes.chunks_exact_mut(plane).enumerate() {
            let src = &xg[c * hw..][..hw];
            for (ph, phase) in dst.chunks_exact_mut(self.hs * self.ws).enumerate() {
                let (a, b) = (ph / sx, ph % sx);
                for (r, row) in phase.chunks_exact_mut(self.ws).enumerate() {
                    let y = r * sy + a;
                    if y < py || y - py >= g.h {
                        row.fill(0.0);
                        continue;
                    }
                    let srow = &src[(y - py) * g.w..][..g.w];
                    for (k, v) in row.iter_mut().enumerate() {
                        let x = k * sx + b;
                        *v = if x >= px && x - px < g.w {
                            srow[x - px]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
    /// Scratch floats: the padded input planes of one group (plus the
    /// `kw − 1` elements the last junk columns read past the end) and the
    /// `og × oh·ws` product.
    fn scratch(&self, g: &ConvGeom) -> usize {
        g.cg() * self.plane() + g.kw + g.og() * g.oh * self.ws
    }
}

/// `y_g = conv(x_g, w_g)` of one group by implicit GEMM (see [`Implicit`]);
/// `taps` is the group's weight tap-major, `[kh·kw, og, cg]` ([`tap_major`]).
fn conv_implicit(
    xg: &[f32],
    taps: &[f32],
    g: &ConvGeom,
    yg: &mut [f32],
    scratch: &mut [f32],
    par: bool,
) {
    let im = Implicit::new(g);
    let (cg, og, kk, plane) = (g.cg(), g.og(), g.kh * g.kw, im.plane());
    let (xpad, prod) = scratch.split_at_mut(cg * plane + g.kw);
    let prod = &mut prod[..og * g.oh * im.ws];
    im.pad_input(xg, g, xpad, par);
    let q = g.oh * im.ws;
    for t in 0..kk {
        let (i, j) = (t / g.kw, t % g.kw);
        let a = MatRef::row_major(&taps[t * og * cg..][..og * cg], og, cg);
        let b = MatRef::new(&xpad[im.tap_offset(i, j)..], cg, q, plane, 1);
        gemm_into(prod, a, b, t > 0, par);
    }
    // Drop the junk columns.
    for (dst, src) in yg.chunks_exact_mut(g.ow).zip(prod.chunks_exact(im.ws)) {
        dst.copy_from_slice(&src[..g.ow]);
    }
}

/// The weight `[groups·og, cg, kh, kw]` as `[groups, kh·kw, og, cg]`: one
/// contiguous `og × cg` matrix per tap and group, packed once per call
/// rather than read with stride `kh·kw` by every sample's GEMMs.
fn tap_major(w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (og, cg, kk) = (g.og(), g.cg(), g.kh * g.kw);
    let mut out = vec![0.0; w.len()];
    for (dst, src) in out
        .chunks_exact_mut(og * cg * kk)
        .zip(w.chunks_exact(og * cg * kk))
    {
        for (oc, wk) in src.chunks_exact(kk).enumerate() {
            for (t, &v) in wk.iter().enumerate() {
                dst[t * og * cg + oc] = v;
            }
        }
    }
    out
}

/// Runs `f(sample, out_block, scratch, inner_parallel)` for every sample.
fn per_sample(
    g: &ConvGeom,
    out: &mut [f32],
    block: usize,
    scratch: usize,
    f: impl Fn(usize, &mut [f32], &mut Vec<f32>, bool) + Sync,
) {
    if block == 0 {
        return;
    }
    let split = g.split();
    if split.batch {
        out.par_chunks_exact_mut(block).enumerate().for_each_init(
            || vec![0.0; scratch],
            |buf, (n, o)| f(n, o, buf, split.inner),
        );
    } else {
        let mut buf = vec![0.0; scratch];
        for (n, o) in out.chunks_exact_mut(block).enumerate() {
            f(n, o, &mut buf, split.inner);
        }
    }
}

/// `y = conv2d(x, w)`: `x` `[n, c, h, w]`, `w` `[o, c/groups, kh, kw]`,
/// result `[n, o, oh, ow]`.
pub fn conv2d(x: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
    conv2d_by(x, w, g, Implicit::applies(g))
}

/// `conv2d` by implicit GEMM (stride 1 only) or by im2col + GEMM.
fn conv2d_by(x: &[f32], w: &[f32], g: &ConvGeom, implicit: bool) -> Vec<f32> {
    assert_eq!(x.len(), g.n * g.in_size(), "conv2d: input size");
    assert_eq!(w.len(), g.o * g.ckk(), "conv2d: weight size");
    let (cg, og, ckk, p, hw) = (g.cg(), g.og(), g.ckk(), g.p(), g.h * g.w);
    let mut y = vec![0.0; g.n * g.out_size()];
    let taps = if implicit {
        tap_major(w, g)
    } else {
        Vec::new()
    };
    let scratch = if implicit {
        Implicit::new(g).scratch(g)
    } else {
        ckk * p
    };
    per_sample(g, &mut y, g.out_size(), scratch, |n, yn, cols, par| {
        let xn = &x[n * g.in_size()..][..g.in_size()];
        for gi in 0..g.groups {
            let xg = &xn[gi * cg * hw..][..cg * hw];
            if implicit {
                let tg = &taps[gi * og * ckk..][..og * ckk];
                conv_implicit(xg, tg, g, &mut yn[gi * og * p..][..og * p], cols, par);
                continue;
            }
            let b = if g.pointwise() {
                MatRef::row_major(xg, cg, p)
            } else {
                im2col(xg, g, cols, par);
                MatRef::row_major(cols, ckk, p)
            };
            let a = MatRef::row_major(&w[gi * og * ckk..][..og * ckk], og, ckk);
            gemm_into(&mut yn[gi * og * p..][..og * p], a, b, false, par);
        }
    });
    y
}

/// The gradient of `conv2d` w.r.t. its input: `gy` `[n, o, oh, ow]`, `w`
/// `[o, c/groups, kh, kw]`, result `[n, c, h, w]`.
///
/// With stride 1 this is itself a stride-1 convolution (see [`transposed`])
/// and runs as one by implicit GEMM where that applies, else by
/// GEMM + col2im.
pub fn conv2d_input_grad(gy: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let implicit = if g.stride == [1, 1] {
        transposed(g).is_some_and(|t| Implicit::applies(&t))
    } else {
        Implicit::applies(g)
    };
    conv2d_input_grad_by(gy, w, g, implicit)
}

/// The geometry of the input gradient of a stride-1 convolution as a
/// convolution of its own: `gx = conv2d(gy, w')` with `w'[g·cg + c, o, i, j]
/// = w[g·og + o, c, kh−1−i, kw−1−j]` ([`flip_transpose`]) and padding
/// `k − 1 − pad` on each axis (the full correlation's adjoint), which maps
/// `oh × ow` back onto `h × w`. `None` for other strides or a padding wider
/// than `k − 1`.
fn transposed(g: &ConvGeom) -> Option<ConvGeom> {
    if g.stride != [1, 1] || g.padding[0] >= g.kh || g.padding[1] >= g.kw {
        return None;
    }
    Some(ConvGeom {
        n: g.n,
        c: g.o,
        h: g.oh,
        w: g.ow,
        o: g.c,
        kh: g.kh,
        kw: g.kw,
        stride: [1, 1],
        padding: [g.kh - 1 - g.padding[0], g.kw - 1 - g.padding[1]],
        groups: g.groups,
        oh: g.h,
        ow: g.w,
    })
}

/// The weight `w'` of [`transposed`], `[groups·cg, og, kh, kw]`.
fn flip_transpose(w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (og, cg, kk) = (g.og(), g.cg(), g.kh * g.kw);
    let mut out = vec![0.0; w.len()];
    for (dst, src) in out
        .chunks_exact_mut(og * cg * kk)
        .zip(w.chunks_exact(og * cg * kk))
    {
        for o in 0..og {
            for c in 0..cg {
                let s = &src[(o * cg + c) * kk..][..kk];
                let d = &mut dst[(c * og + o) * kk..][..kk];
                for (d, s) in d.iter_mut().zip(s.iter().rev()) {
                    *d = *s;
                }
            }
        }
    }
    out
}

/// `conv2d_input_grad` as the convolution of [`transposed`] (by implicit
/// GEMM) or by GEMM + col2im.
fn conv2d_input_grad_by(gy: &[f32], w: &[f32], g: &ConvGeom, implicit: bool) -> Vec<f32> {
    assert_eq!(gy.len(), g.n * g.out_size(), "conv2d_input_grad: gy size");
    assert_eq!(w.len(), g.o * g.ckk(), "conv2d_input_grad: weight size");
    if implicit && g.stride == [1, 1] {
        let t = transposed(g).expect("padding below the kernel size");
        return conv2d_by(gy, &flip_transpose(w, g), &t, true);
    }
    if implicit {
        return input_grad_phases(gy, w, g);
    }
    let (cg, og, ckk, p, hw) = (g.cg(), g.og(), g.ckk(), g.p(), g.h * g.w);
    let mut gx = vec![0.0; g.n * g.in_size()];
    let scratch = if g.pointwise() { 0 } else { ckk * p };
    per_sample(g, &mut gx, g.in_size(), scratch, |n, gxn, cols, par| {
        let gyn = &gy[n * g.out_size()..][..g.out_size()];
        for gi in 0..g.groups {
            let b = MatRef::row_major(&gyn[gi * og * p..][..og * p], og, p);
            let at = MatRef::row_major(&w[gi * og * ckk..][..og * ckk], og, ckk).t();
            let gxg = &mut gxn[gi * cg * hw..][..cg * hw];
            if g.pointwise() {
                gemm_into(gxg, at, b, false, par);
            } else {
                gemm_into(cols, at, b, false, par);
                col2im(cols, g, gxg, par);
            }
        }
    });
    gx
}

/// The input gradient of a strided convolution without a patch matrix:
/// the adjoint of [`conv_implicit`]. Per tap, `W_tapᵀ · gy'` (`gy'` laid out
/// `ws` wide with zero junk columns) is added into the gradient's phases
/// (see [`Implicit`]) at the tap's offset, then the phases are gathered
/// back into `[cg, h, w]`. Each channel's phases are stored `plane + kw`
/// apart so that the rows a GEMM adds into never overlap.
fn input_grad_phases(gy: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let im = Implicit::new(g);
    let (cg, og, kk, p, hw, ws) = (g.cg(), g.og(), g.kh * g.kw, g.p(), g.h * g.w, im.ws);
    let cs = im.plane() + g.kw;
    let q = g.oh * ws;
    let taps = tap_major(w, g);
    let (rows, cols) = im.phase_offsets(g);
    let mut gx = vec![0.0; g.n * g.in_size()];
    per_sample(
        g,
        &mut gx,
        g.in_size(),
        cg * cs + og * q,
        |n, gxn, buf, par| {
            let (gph, gyp) = buf.split_at_mut(cg * cs);
            let gyp = &mut gyp[..og * q];
            let gyn = &gy[n * g.out_size()..][..g.out_size()];
            for gi in 0..g.groups {
                gph.fill(0.0);
                let gyg = &gyn[gi * og * p..][..og * p];
                for (dst, src) in gyp.chunks_exact_mut(ws).zip(gyg.chunks_exact(g.ow)) {
                    dst[..g.ow].copy_from_slice(src);
                    dst[g.ow..].fill(0.0);
                }
                let b = MatRef::row_major(gyp, og, q);
                for t in 0..kk {
                    let at =
                        MatRef::row_major(&taps[(gi * kk + t) * og * cg..][..og * cg], og, cg).t();
                    let off = im.tap_offset(t / g.kw, t % g.kw);
                    gemm_into_strided(&mut gph[off..], cs, at, b, true, par);
                }
                let gxg = &mut gxn[gi * cg * hw..][..cg * hw];
                for (c, plane) in gxg.chunks_exact_mut(hw.max(1)).enumerate() {
                    let src = &gph[c * cs..][..cs];
                    for (row, &base) in plane.chunks_exact_mut(g.w.max(1)).zip(&rows) {
                        for (v, &col) in row.iter_mut().zip(&cols) {
                            *v = src[base + col];
                        }
                    }
                }
            }
        },
    );
    gx
}

/// The gradient of `conv2d` w.r.t. its weight: `x` `[n, c, h, w]`, `gy`
/// `[n, o, oh, ow]`, result `[o, c/groups, kh, kw]`.
///
/// Where the implicit GEMM applies (see [`Implicit`]), one GEMM per tap over
/// the zero-padded input: `gW_tap[o, c] = Σ_q gy'[o, q] · xpad[c, q + i·wp +
/// j]`, with `gy'` the output gradient laid out `wp` wide and zeros in the
/// junk columns (so they add nothing); else GEMM against the patch matrix.
pub fn conv2d_weight_grad(x: &[f32], gy: &[f32], g: &ConvGeom) -> Vec<f32> {
    conv2d_weight_grad_by(x, gy, g, Implicit::applies(g))
}

/// `conv2d_weight_grad` by per-tap implicit GEMM (stride 1 only) or by
/// im2col + GEMM.
fn conv2d_weight_grad_by(x: &[f32], gy: &[f32], g: &ConvGeom, implicit: bool) -> Vec<f32> {
    assert_eq!(x.len(), g.n * g.in_size(), "conv2d_weight_grad: input size");
    assert_eq!(gy.len(), g.n * g.out_size(), "conv2d_weight_grad: gy size");
    if implicit {
        return weight_grad_implicit(x, gy, g);
    }
    let (cg, og, ckk, p, hw) = (g.cg(), g.og(), g.ckk(), g.p(), g.h * g.w);
    let pointwise = g.pointwise();
    let scratch = if pointwise { 0 } else { ckk * p };
    // Adds sample n's contribution to `gw`.
    let add_sample = |n: usize, gw: &mut [f32], cols: &mut [f32], par: bool| {
        let xn = &x[n * g.in_size()..][..g.in_size()];
        let gyn = &gy[n * g.out_size()..][..g.out_size()];
        for gi in 0..g.groups {
            let xg = &xn[gi * cg * hw..][..cg * hw];
            let bt = if pointwise {
                MatRef::row_major(xg, cg, p).t()
            } else {
                im2col(xg, g, cols, par);
                MatRef::row_major(cols, ckk, p).t()
            };
            let a = MatRef::row_major(&gyn[gi * og * p..][..og * p], og, p);
            gemm_into(&mut gw[gi * og * ckk..][..og * ckk], a, bt, true, par);
        }
    };
    sum_over_samples(g, g.o * ckk, scratch, add_sample)
}

/// `Σ_n add_sample(n, ·)` into a zeroed `[wsize]` buffer: with the batch
/// split, per-task partial sums added up at the end. `add_sample(n, acc,
/// scratch, inner_parallel)` adds sample `n`'s contribution to `acc`.
fn sum_over_samples(
    g: &ConvGeom,
    wsize: usize,
    scratch: usize,
    add_sample: impl Fn(usize, &mut [f32], &mut [f32], bool) + Sync,
) -> Vec<f32> {
    if wsize == 0 {
        return Vec::new();
    }
    let split = g.split();
    if split.batch {
        (0..g.n)
            .into_par_iter()
            .fold(
                || (vec![0.0f32; wsize], vec![0.0f32; scratch]),
                |(mut acc, mut buf), n| {
                    add_sample(n, &mut acc, &mut buf, split.inner);
                    (acc, buf)
                },
            )
            .map(|(acc, _)| acc)
            .reduce(
                || vec![0.0; wsize],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    a
                },
            )
    } else {
        let mut acc = vec![0.0; wsize];
        let mut buf = vec![0.0; scratch];
        for n in 0..g.n {
            add_sample(n, &mut acc, &mut buf, split.inner);
        }
        acc
    }
}

/// The weight gradient by implicit GEMM (see [`conv2d_weight_grad`]), one
/// GEMM per kernel row (and column phase) rather than per tap: with the
/// padded input's phases (see [`Implicit`]) stored channels-last
/// (`xhwc[(pixel of the phases)·cg + c]`), the taps `j = b, b + sx, …` of
/// kernel row `i` read the same phase at pixel offsets `tap_offset(i, b) +
/// m` for `j = b + m·sx`: linear in `m·cg + c`. So each `(i, b)` is one
/// `og × ⌈(kw − b)/sx⌉·cg` product `Σ_q gy'[o, q] · xhwc[(q + tap_offset(i,
/// b))·cg + m·cg + c]`. At the small channel counts of the CPU presets
/// (16–64) that shape keeps `gemm` on its packed kernels: per tap (`og × cg`
/// with both operands contiguous along `q`) it took its dot-product kernels
/// at a third of the speed.
fn weight_grad_implicit(x: &[f32], gy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let im = Implicit::new(g);
    let (cg, og, kh, kw, p, hw, ws) = (g.cg(), g.og(), g.kh, g.kw, g.p(), g.h * g.w, im.ws);
    let sx = g.stride[1];
    let q = g.oh * ws;
    // The phases plus the `kw` pixels the last junk columns read.
    let xlen = (im.plane() + kw) * cg;
    // The `(i, b)` blocks: kernel row, column phase, taps in the block.
    let blocks: Vec<(usize, usize, usize)> = (0..kh)
        .flat_map(|i| (0..sx.min(kw)).map(move |b| (i, b, (kw - b).div_ceil(sx))))
        .collect();
    let (rows, cols) = im.phase_offsets(g);
    // Partial sums: per group, the `og × cnt·cg` block of each `(i, b)`.
    let add_sample = |n: usize, gwr: &mut [f32], buf: &mut [f32], par: bool| {
        let (xhwc, gyp) = buf.split_at_mut(xlen);
        let gyp = &mut gyp[..og * q];
        let xn = &x[n * g.in_size()..][..g.in_size()];
        let gyn = &gy[n * g.out_size()..][..g.out_size()];
        for gi in 0..g.groups {
            xhwc.fill(0.0);
            let xg = &xn[gi * cg * hw..][..cg * hw];
            for c in 0..cg {
                for (y, &base) in rows.iter().enumerate() {
                    let row = &xg[(c * g.h + y) * g.w..][..g.w];
                    for (&v, &col) in row.iter().zip(&cols) {
                        xhwc[(base + col) * cg + c] = v;
                    }
                }
            }
            let gyg = &gyn[gi * og * p..][..og * p];
            for (dst, src) in gyp.chunks_exact_mut(ws).zip(gyg.chunks_exact(g.ow)) {
                dst[..g.ow].copy_from_slice(src);
                dst[g.ow..].fill(0.0);
            }
            let a = MatRef::row_major(gyp, og, q);
            let mut at = gi * og * g.ckk();
            for &(i, b, cnt) in &blocks {
                let bm = MatRef::new(&xhwc[im.tap_offset(i, b) * cg..], q, cnt * cg, cg, 1);
                gemm_into(&mut gwr[at..][..og * cnt * cg], a, bm, true, par);
                at += og * cnt * cg;
            }
        }
    };
    let gwr = sum_over_samples(g, g.o * g.ckk(), xlen + og * q, add_sample);
    // Back to `[groups·og, cg, kh, kw]`.
    let mut gw = vec![0.0; gwr.len()];
    let mut at = 0;
    for gi in 0..g.groups {
        let dst = &mut gw[gi * og * g.ckk()..][..og * g.ckk()];
        for &(i, b, cnt) in &blocks {
            let block = &gwr[at..][..og * cnt * cg];
            for (o, row) in block.chunks_exact(cnt * cg).enumerate() {
                for (mc, &v) in row.iter().enumerate() {
                    let (j, c) = (b + (mc / cg) * sx, mc % cg);
                    dst[((o * cg + c) * kh + i) * kw + j] = v;
                }
            }
            at += og * cnt * cg;
        }
    }
    gw
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn geom(
        n: usize,
        c: usize,
        hw: [usize; 2],
        o: usize,
        k: [usize; 2],
        pad: [usize; 2],
        groups: usize,
    ) -> ConvGeom {
        geom_s(n, c, hw, o, k, pad, groups, [1, 1])
    }

    #[allow(clippy::too_many_arguments)]
    fn geom_s(
        n: usize,
        c: usize,
        hw: [usize; 2],
        o: usize,
        k: [usize; 2],
        pad: [usize; 2],
        groups: usize,
        stride: [usize; 2],
    ) -> ConvGeom {
        let out = |a: usize| (hw[a] + 2 * pad[a] - k[a]) / stride[a] + 1;
        ConvGeom {
            n,
            c,
            h: hw[0],
            w: hw[1],
            o,
            kh: k[0],
            kw: k[1],
            stride,
            padding: pad,
            groups,
            oh: out(0),
            ow: out(1),
        }
    }

    /// The implicit GEMM against im2col + GEMM: the same products summed in
    /// another order. With inputs in [−1, 1] an output sums ≤ 60 products
    /// of |·| ≤ 1, whose reordering moves it by ~√60 · 2⁻²⁴ · √60 ≈ 4e-6
    /// typically; 1e-4 leaves margin, while an indexing error (a wrong tap,
    /// pad or junk column) moves values by O(0.1–1).
    #[test]
    fn implicit_gemm_matches_im2col() {
        let mut rng = crate::rng(3);
        let cases = [
            geom(2, 3, [5, 17], 4, [3, 3], [1, 1], 1),
            geom(1, 4, [3, 16], 6, [3, 3], [1, 1], 2),
            geom(3, 2, [6, 18], 3, [3, 1], [2, 0], 1),
            geom(2, 5, [4, 20], 2, [2, 3], [0, 2], 1),
            geom(1, 6, [7, 19], 5, [3, 3], [0, 0], 1),
            // Stride 2 (the phases): odd and even padded sizes, one axis
            // strided, groups, the discriminator's unpadded 3×3 after the FIR.
            geom_s(2, 3, [7, 37], 4, [3, 3], [1, 1], 1, [2, 2]),
            geom_s(3, 4, [8, 34], 6, [3, 3], [0, 0], 2, [2, 2]),
            geom_s(1, 3, [5, 35], 2, [2, 3], [1, 0], 1, [1, 2]),
            geom_s(2, 5, [9, 17], 3, [3, 2], [2, 1], 1, [2, 1]),
            geom_s(3, 16, [35, 35], 16, [3, 3], [0, 0], 1, [2, 2]),
        ];
        for g in cases {
            assert!(Implicit::applies(&g), "{g:?}");
            let x = uniform(&mut rng, g.n * g.in_size());
            let w = uniform(&mut rng, g.o * g.ckk());
            let fast = conv2d_by(&x, &w, &g, true);
            let slow = conv2d_by(&x, &w, &g, false);
            let (err, scale) = max_diff(&fast, &slow);
            assert!(scale >= 0.5, "{g:?}: outputs too small to test ({scale})");
            assert!(err <= 1e-4, "{g:?}: differs by {err}");
        }
    }

    fn uniform(rng: &mut impl Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// Largest |a − b| and largest |b|.
    fn max_diff(a: &[f32], b: &[f32]) -> (f32, f32) {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).fold((0f32, 0f32), |(e, m), (a, b)| {
            (e.max((a - b).abs()), m.max(b.abs()))
        })
    }

    /// The input and weight gradients by implicit GEMM against GEMM +
    /// col2im / im2col + GEMM: the same products summed in another order.
    /// Shapes: odd sizes, non-square kernels, paddings 0 to k − 1, groups,
    /// batch 1 and 3, and one large enough to split over the batch and
    /// inside samples. An output sums K products of |·| ≤ 1 (K = o/groups·
    /// kh·kw for the input gradient, n·oh·ow for the weight gradient); the
    /// two orders each round by ~√K · 2⁻²⁴ · √K typically, so 1e-6·K (16×
    /// that) bounds the difference, while an indexing error (a wrong tap,
    /// pad, flip or a junk column counted) moves an output by whole
    /// products, O(0.1–1).
    #[test]
    fn implicit_gradients_match_im2col() {
        let mut rng = crate::rng(5);
        let cases = [
            geom(1, 3, [5, 17], 4, [3, 3], [1, 1], 1),
            geom(3, 4, [3, 16], 6, [3, 3], [1, 1], 2),
            geom(3, 2, [6, 18], 3, [3, 1], [2, 0], 1),
            geom(1, 5, [4, 20], 2, [2, 3], [0, 2], 1),
            geom(3, 6, [7, 19], 5, [3, 3], [0, 0], 1),
            geom(3, 6, [9, 21], 9, [3, 3], [1, 1], 3),
            geom(3, 16, [20, 17], 24, [3, 3], [1, 1], 1),
            geom(1, 16, [20, 17], 24, [3, 3], [1, 1], 1),
            // Strided (the phases): odd and even padded sizes, one axis
            // strided, groups, the discriminator's unpadded 3×3 after the
            // FIR, G's up-sampling transposed conv (3×3, stride 2, pad 0).
            geom_s(2, 3, [7, 37], 4, [3, 3], [1, 1], 1, [2, 2]),
            geom_s(3, 4, [8, 34], 6, [3, 3], [0, 0], 2, [2, 2]),
            geom_s(1, 3, [5, 35], 2, [2, 3], [1, 0], 1, [1, 2]),
            geom_s(3, 5, [9, 17], 3, [3, 2], [2, 1], 1, [2, 1]),
            geom_s(3, 16, [35, 35], 16, [3, 3], [0, 0], 1, [2, 2]),
            geom_s(1, 16, [35, 35], 32, [3, 3], [0, 0], 1, [2, 2]),
        ];
        let (mut batch, mut inner) = (false, false);
        for g in cases {
            let s = g.split();
            (batch, inner) = (batch | s.batch, inner | s.inner);
            let x = uniform(&mut rng, g.n * g.in_size());
            let w = uniform(&mut rng, g.o * g.ckk());
            let gy = uniform(&mut rng, g.n * g.out_size());
            if g.stride == [1, 1] {
                assert!(Implicit::applies(&transposed(&g).unwrap()), "{g:?}");
            } else {
                assert!(Implicit::applies(&g), "{g:?}");
            }
            let fast = conv2d_input_grad_by(&gy, &w, &g, true);
            let slow = conv2d_input_grad_by(&gy, &w, &g, false);
            let (err, scale) = max_diff(&fast, &slow);
            let k = (g.og() * g.kh * g.kw) as f32;
            assert!(scale >= 0.5, "{g:?}: input gradient too small ({scale})");
            assert!(err <= 1e-6 * k, "{g:?}: input gradient differs by {err}");

            let fast = conv2d_weight_grad_by(&x, &gy, &g, true);
            let slow = conv2d_weight_grad_by(&x, &gy, &g, false);
            let (err, scale) = max_diff(&fast, &slow);
            let k = (g.n * g.p()) as f32;
            assert!(scale >= 0.5, "{g:?}: weight gradient too small ({scale})");
            assert!(err <= 1e-6 * k, "{g:?}: weight gradient differs by {err}");
        }
        // The split cases ran (with a pool of two or more threads).
        assert!(batch && inner || rayon::current_num_threads() < 2);
    }

    /// `flip_transpose` then `transposed` is the adjoint of the convolution:
    /// ⟨conv2d(x, w), gy⟩ = ⟨x, conv2d_input_grad(gy, w)⟩ on both paths, and
    /// also for a padding ≥ k (no transposed form: the im2col path).
    #[test]
    fn input_gradient_is_the_adjoint() {
        let mut rng = crate::rng(6);
        for g in [
            geom(3, 4, [5, 17], 6, [3, 2], [2, 1], 2),
            geom(2, 3, [4, 6], 2, [2, 2], [2, 3], 1),
            geom_s(2, 4, [6, 35], 6, [3, 3], [1, 1], 2, [2, 2]),
        ] {
            let x = uniform(&mut rng, g.n * g.in_size());
            let w = uniform(&mut rng, g.o * g.ckk());
            let gy = uniform(&mut rng, g.n * g.out_size());
            let dot = |a: &[f32], b: &[f32]| -> f64 {
                a.iter().zip(b).map(|(a, b)| *a as f64 * *b as f64).sum()
            };
            let lhs = dot(&conv2d_by(&x, &w, &g, false), &gy);
            for implicit in [true, false] {
                if implicit && g.stride == [1, 1] && transposed(&g).is_none() {
                    continue;
                }
                let rhs = dot(&x, &conv2d_input_grad_by(&gy, &w, &g, implicit));
                // f32 sums of a few hundred terms of |·| ≤ 1·K.
                assert!(
                    (lhs - rhs).abs() <= 1e-3,
                    "{g:?} {implicit}: {lhs} vs {rhs}"
                );
            }
        }
    }
}
