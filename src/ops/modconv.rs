//! Modulated convolution (StyleGAN2's synthesis layers), composed from the
//! conv2d, upfirdn2d and elementwise ops, so that every gradient, including
//! the second-order ones regularization needs, follows from theirs.
//!
//! `y = d ⊙ conv(x ⊙ s, w)` with `d[n,o] = rsqrt(Σ_i s[n,i]² · Σ_k w[o,i,k]² + 1e-8)`.
//!
//! `modulated_conv2d_fused` runs the same math, plus the synthesis layer's
//! noise, bias, activation and clamp, as one kernel (kernels/modconv.cu) on
//! `Cuda`/`Sim`. Its first-order backward runs the family's backward kernels:
//! - the epilogue's backward gives `g` (the gradient of `d ⊙ u`, `u` the raw
//!   convolution saved by the forward), `gu = g · d` and the row sums
//!   `Σ_p g` (bias), `Σ_p g · noise` (strength), `dd = Σ_p g · u`;
//! - input gradient: the fused kernel on `gu` with the transposed, flipped
//!   weight view and the styles as output scale (up 1), or that kernel onto
//!   the up-sampled grid followed by the adjoint FIR step (up 2), each
//!   reducing `Σ x · ∂L/∂(x ⊙ s)` for the styles on the way;
//! - weight gradient: a split-K GEMM over (n, pixel) of `gu` and `s ⊙ Z`
//!   (on the tensor cores at a non-F32 precision: conv_tc.cu's weight
//!   gradient with the styles as input scale);
//! - demodulation terms with `e = dd · d³`: `dw −= w · Σ_n e s²`,
//!   `ds −= s · Σ_o e · Σ_k w²`.
//!
//! A backward that records a graph (create_graph) differentiates the
//! composition instead, so every order of derivative stays available.

use crate::autograd::{self, Backward};
use crate::backend::cuda::modconv as cuda;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{invalid, shape_err, Error, Result};
use crate::ops::bias_act::{bias_act, Act, BiasAct};
use crate::ops::conv::{conv2d, conv2d_input_grad, Conv2d};
use crate::ops::noise::noise_inject;
use crate::ops::precision::Precision;
use crate::ops::upfirdn::{upfirdn2d, UpFirDn};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// How the official `modulated_conv2d` is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModConv {
    pub demodulate: bool,
    /// 1, or 2 for the up-sampling layers (needs a resample filter).
    pub up: usize,
    pub padding: usize,
    /// Official `flip_weight`: true = correlation (F.conv2d), false = true convolution.
    pub flip_weight: bool,
    /// Operand precision of the products on `Cuda`/`Sim`: the fused path's
    /// forward, input and weight gradients, and the convolution of the
    /// `Unfused` and `Grouped` paths (the conv op's tensor-core kernels); the
    /// CPU computes in FP32. See [`Precision`].
    pub precision: Precision,
}

impl ModConv {
    /// SynthesisLayer conv1: 3×3, up 1, padding 1, demodulated.
    pub fn conv3x3() -> Self {
        ModConv {
            demodulate: true,
            up: 1,
            padding: 1,
            flip_weight: true,
            precision: Precision::F32,
        }
    }
    /// SynthesisLayer conv0 of blocks above 4×4: 3×3, up 2, padding 1, demodulated.
    pub fn conv3x3_up2() -> Self {
        ModConv {
            demodulate: true,
            up: 2,
            padding: 1,
            flip_weight: false,
            precision: Precision::F32,
        }
    }
    /// The same call at operand precision `precision`.
    pub fn with_precision(self, precision: Precision) -> Self {
        ModConv { precision, ..self }
    }
    /// ToRGB: 1×1 without demodulation.
    pub fn torgb() -> Self {
        ModConv {
            demodulate: false,
            up: 1,
            padding: 0,
            flip_weight: true,
            precision: Precision::F32,
        }
    }
}

/// How the convolution is executed; all give the same result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ModConvPath {
    /// `Fused` on devices that run kernels (one launch per layer instead of
    /// five or more), `Unfused` on the CPU (where `Fused` is that composition).
    #[default]
    Auto,
    /// Scale activations by the styles, convolve with the shared weight,
    /// scale by the demodulation coefficients (the official non-fused path).
    Unfused,
    /// Materialize per-sample weights and run one grouped convolution with
    /// groups = N (the official fused path).
    Grouped,
    /// One kernel (kernels/modconv.cu): styles scale the input as it is
    /// loaded, demodulation in the epilogue, per-sample weights never exist.
    /// On the CPU it computes the unfused composition.
    Fused,
}

impl ModConvPath {
    /// The path `Auto` stands for on `device`; the others are themselves.
    pub fn resolve(self, device: Device) -> ModConvPath {
        match self {
            ModConvPath::Auto if device.runs_kernels() => ModConvPath::Fused,
            ModConvPath::Auto => ModConvPath::Unfused,
            p => p,
        }
    }

    /// `auto`, `unfused`, `grouped` or `fused` (command-line flags).
    pub fn parse(s: &str) -> Result<ModConvPath> {
        match s {
            "auto" => Ok(ModConvPath::Auto),
            "unfused" => Ok(ModConvPath::Unfused),
            "grouped" => Ok(ModConvPath::Grouped),
            "fused" => Ok(ModConvPath::Fused),
            other => invalid(
                "modconv path",
                format!("unknown path '{other}': expected auto, unfused, grouped or fused"),
            ),
        }
    }
}

/// Demodulation coefficients `d[n,o] = rsqrt(Σ_i s[n,i]² · Σ_k w[o,i,k]² + 1e-8)`.
pub fn demod_coefficients(styles: &Tensor, weight: &Tensor) -> Result<Tensor> {
    check_weight_styles("demod_coefficients", weight, styles)?;
    let wsq = weight.square()?.sum(&[2, 3], false)?; // [O, I]
    styles
        .square()?
        .matmul(&wsq.transpose(0, 1)?)?
        .add_scalar(1e-8)?
        .rsqrt()
}

fn check_weight_styles(op: &'static str, weight: &Tensor, styles: &Tensor) -> Result<()> {
    let (&[_, i, _, _], &[_, si]) = (weight.dims(), styles.dims()) else {
        return shape_err(
            op,
            format!(
                "weight {} must be [O, I, kh, kw] and styles {} [N, I]",
                weight.shape(),
                styles.shape()
            ),
        );
    };
    if i != si {
        return shape_err(
            op,
            format!(
                "weight {} has {i} input channels, styles {} has {si}",
                weight.shape(),
                styles.shape()
            ),
        );
    }
    Ok(())
}

/// Checks x [N, I, H, W] against weight [O, I, kh, kw] and styles [N, I];
/// returns x's sizes.
fn check_inputs(
    op: &'static str,
    x: &Tensor,
    weight: &Tensor,
    styles: &Tensor,
) -> Result<[usize; 4]> {
    check_weight_styles(op, weight, styles)?;
    let &[n, i, h, w] = x.dims() else {
        return shape_err(op, format!("input {} is not [N, C, H, W]", x.shape()));
    };
    if i != weight.dims()[1] || styles.dims()[0] != n {
        return shape_err(
            op,
            format!(
                "input {}, weight {} and styles {} disagree on N or input channels",
                x.shape(),
                weight.shape(),
                styles.shape()
            ),
        );
    }
    Ok([n, i, h, w])
}

/// The official `modulated_conv2d` (without noise, which the layer adds
/// afterwards): x [N, I, H, W], weight [O, I, kh, kw] (raw, no gain),
/// styles [N, I]; `filter` is the resample filter, required when `up` is 2.
pub fn modulated_conv2d(
    x: &Tensor,
    weight: &Tensor,
    styles: &Tensor,
    filter: Option<&Tensor>,
    p: ModConv,
    path: ModConvPath,
) -> Result<Tensor> {
    const OP: &str = "modulated_conv2d";
    let path = path.resolve(x.device());
    if path == ModConvPath::Fused {
        return modulated_conv2d_fused(x, weight, styles, filter, p, &Epilogue::identity());
    }
    let [n, i, _, _] = check_inputs(OP, x, weight, styles)?;
    let (o, kh, kw) = (weight.dims()[0], weight.dims()[2], weight.dims()[3]);
    // Up-sampling as the official conv2d_resample's fast path forms it: a
    // stride-2 transposed convolution on the input grid, then the FIR
    // (`up2_transposed`); otherwise a convolution, flipped unless `flip_weight`.
    let (resample, conv_pad, flip) = match (p.up, filter) {
        (1, _) => (None, p.padding, !p.flip_weight),
        (2, Some(f)) => (Some(f), 0, !p.flip_weight),
        (2, None) => return invalid(OP, "up = 2 needs a resample filter"),
        (up, _) => return invalid(OP, format!("up = {up}; only 1 and 2 are supported")),
    };
    let wk = || -> Result<Tensor> {
        if flip {
            weight.flip(&[2, 3])
        } else {
            Ok(weight.clone())
        }
    };
    let conv = Conv2d {
        padding: [conv_pad, conv_pad],
        precision: p.precision,
        ..Conv2d::default()
    };
    let dcoefs = || -> Result<Option<Tensor>> {
        if p.demodulate {
            Some(demod_coefficients(styles, weight)).transpose()
        } else {
            Ok(None)
        }
    };
    match path {
        ModConvPath::Unfused => {
            let xs = x.mul(&styles.reshape(vec![n, i, 1, 1])?)?;
            let y = match &resample {
                // Up-sampling convolves on the input grid (a stride-2
                // transposed convolution, then the FIR), as the official
                // conv2d_resample's fast path does: a quarter of the
                // multiply-adds of convolving the up-sampled signal.
                Some(f) => up2_transposed(&xs, weight, f, p, 1)?,
                None => conv2d(&xs, &wk()?, conv)?,
            };
            match dcoefs()? {
                Some(d) => y.mul(&d.reshape(vec![n, o, 1, 1])?),
                None => Ok(y),
            }
        }
        ModConvPath::Grouped => {
            // w'[n,o,i] = w[o,i] · s[n,i] · d[n,o], as [N·O, I, kh, kw]: one
            // kernel when no gradient is recorded, else differentiable ops.
            let device = x.device();
            let untracked =
                !autograd::is_grad_enabled() || !(weight.needs_grad() || styles.needs_grad());
            // Up-sampling runs as a grouped transposed convolution on the
            // input grid (as the unfused path), which flips by itself.
            let wk = if resample.is_some() {
                weight.clone()
            } else {
                wk()?
            };
            let wn = if device != Device::Cpu && untracked {
                let (wst, sst) = (wk.storage(), styles.storage());
                let d = if p.demodulate {
                    let wsq = cuda::wsq(&wst, o * i, kh * kw, device)?;
                    Some(cuda::demod(&sst, &wsq, [n, o, i], device)?)
                } else {
                    None
                };
                let wn = cuda::modulate_weight(&wst, &sst, d.as_ref(), [n, o, i, kh * kw], device)?;
                Tensor::from_device_storage(wn, vec![n, o, i, kh, kw], device)
            } else {
                let mut wn = wk
                    .unsqueeze(0)?
                    .mul(&styles.reshape(vec![n, 1, i, 1, 1])?)?;
                if let Some(d) = dcoefs()? {
                    wn = wn.mul(&d.reshape(vec![n, o, 1, 1, 1])?)?;
                }
                wn
            };
            let wn = wn.reshape(vec![n * o, i, kh, kw])?;
            let (hh, ww) = (x.dims()[2], x.dims()[3]);
            let xg = x.reshape(vec![1, n * i, hh, ww])?;
            let y = match &resample {
                Some(f) => up2_transposed(&xg, &wn, f, p, n)?,
                None => conv2d(&xg, &wn, Conv2d { groups: n, ..conv })?,
            };
            let (oh, ow) = (y.dims()[2], y.dims()[3]);
            y.reshape(vec![n, o, oh, ow])
        }
        ModConvPath::Fused | ModConvPath::Auto => Err(Error::Internal(
            "modulated_conv2d: the fused path is dispatched before".into(),
        )),
    }
}

/// The FIR step of up-sampling by 2 before a valid convolution (the generic
/// composition, the reference `up2_transposed` is tested against): zero
/// insertion and the filter `f` (1-D or 2-D, gain 4), padded as the
/// official conv2d_resample pads it for `padding`.
#[cfg(test)]
fn up2_fir(op: &'static str, f: &Tensor, padding: usize) -> Result<UpFirDn> {
    let (fh, fw) = filter_hw(op, f)?;
    // Official conv2d_resample: pad0 += (f + up - 1) // 2, pad1 += (f - up) // 2
    // (Python floor division: negative for filters smaller than `up`).
    let up = 2isize;
    let pad = |fsz: usize| {
        let (fsz, base) = (fsz as isize, padding as isize);
        (
            base + (fsz + up - 1).div_euclid(2),
            base + (fsz - up).div_euclid(2),
        )
    };
    let ((x0, x1), (y0, y1)) = (pad(fw), pad(fh));
    Ok(UpFirDn {
        up: [2, 2],
        down: [1, 1],
        pad: [x0, x1, y0, y1],
        flip_filter: false,
        gain: 4.0,
    })
}

/// The filter's `(height, width)`; a 1-D filter is separable, `(k, k)`.
fn filter_hw(op: &'static str, f: &Tensor) -> Result<(usize, usize)> {
    match *f.dims() {
        [fh, fw] => Ok((fh, fw)),
        [k] => Ok((k, k)),
        _ => shape_err(
            op,
            format!("resample filter {} is not 1-D or 2-D", f.shape()),
        ),
    }
}

/// Up-sampling by 2 as the official conv2d_resample's fast path forms it:
/// a transposed convolution with stride 2 (`conv2d_input_grad`, whose
/// gradients are the other conv2d ops) on the input grid, then the FIR
/// (gain 4) with the pads that remain. `xs` is the modulated input
/// `[N, G·I, H, W]`, `weight` `[G·O, I, kh, kw]` (G `groups`: the grouped
/// path's per-sample weights), `f` the 1-D or 2-D filter; the result
/// `[N, G·O, 2H + 2·padding + 2 − kh, …]` equals
/// `conv2d(upfirdn2d(xs, up 2), weight)` of the generic composition (both
/// are the same linear shift-invariant map; only the summation order differs).
fn up2_transposed(
    xs: &Tensor,
    weight: &Tensor,
    f: &Tensor,
    p: ModConv,
    groups: usize,
) -> Result<Tensor> {
    const UP: isize = 2;
    let (h, w) = (xs.dims()[2], xs.dims()[3]);
    let (kh, kw) = (weight.dims()[2], weight.dims()[3]);
    let (fh, fw) = filter_hw("modulated_conv2d", f)?;
    // Official conv2d_resample (up 2, down 1): the FIR pads of the generic
    // path, less what the transposed convolution's full output adds
    // (`k − 1` before, `k − up` after), and the part of that overlap both
    // sides share cropped by the transposed convolution's own padding.
    let pads = |fsz: usize, k: usize| {
        let (fsz, k, base) = (fsz as isize, k as isize, p.padding as isize);
        let p0 = base + (fsz + UP - 1).div_euclid(2) - (k - 1);
        let p1 = base + (fsz - UP).div_euclid(2) - (k - UP);
        let pt = (-p0).min(-p1).max(0);
        (p0 + pt, p1 + pt, pt as usize)
    };
    let ((x0, x1, pxt), (y0, y1, pyt)) = (pads(fw, kw), pads(fh, kh));
    // The transposed convolution's output size, (in − 1)·2 − 2·pad + k; a
    // pad that crops it to nothing is an error of the shapes, named here.
    let out_len = |len: usize, k: usize, pt: usize| {
        len.checked_sub(1)
            .and_then(|l| (l * 2 + k).checked_sub(2 * pt))
            .filter(|&l| l > 0)
    };
    let (Some(th), Some(tw)) = (out_len(h, kh, pyt), out_len(w, kw, pxt)) else {
        return shape_err(
            "modulated_conv2d",
            format!(
                "up 2 with weight {} and padding {} leaves no output for input {}",
                weight.shape(),
                p.padding,
                xs.shape()
            ),
        );
    };
    // conv_transpose2d takes the weight as [G·I, O, kh, kw] (per group, the
    // transpose of [O, I]); the official flips it when `flip_weight` (its
    // wrapper gets `not flip_weight`).
    let (go, i) = (weight.dims()[0], weight.dims()[1]);
    let o = go / groups;
    let wt = weight
        .reshape(vec![groups, o, i, kh, kw])?
        .transpose(1, 2)?
        .reshape(vec![groups * i, o, kh, kw])?;
    let wt = if p.flip_weight { wt.flip(&[2, 3])? } else { wt };
    let t = conv2d_input_grad(
        xs,
        &wt,
        [th, tw],
        Conv2d {
            stride: [2, 2],
            padding: [pyt, pxt],
            groups,
            // The transposed convolution is conv2d's input gradient: on the
            // tensor cores at a non-F32 precision (conv_tc.cu's stride
            // phases); the CPU computes FP32 at every precision.
            precision: p.precision,
        },
    )?;
    let fir = UpFirDn {
        up: [1, 1],
        down: [1, 1],
        pad: [x0, x1, y0, y1],
        flip_filter: false,
        gain: (UP * UP) as f32,
    };
    upfirdn2d(&t, f, &fir)
}

/// What the fused kernel applies after the convolution, in SynthesisLayer's
/// order: `+ noise · strength`, then `bias_act` (bias, activation, gain, clamp).
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// Noise `[N, 1, OH, OW]` or `[1, 1, OH, OW]` and its scalar strength.
    pub noise: Option<(&'a Tensor, &'a Tensor)>,
    /// `[O]`, added along the channel axis.
    pub bias: Option<&'a Tensor>,
    /// Activation, total gain and clamp (as `bias_act`).
    pub act: BiasAct,
}

impl Epilogue<'static> {
    /// Nothing after the convolution.
    pub fn identity() -> Self {
        Epilogue {
            noise: None,
            bias: None,
            act: BiasAct::linear(),
        }
    }
}

/// The composed reference of the fused op: unfused modulated conv →
/// `noise_inject` → `bias_act`. Differentiable to any order.
fn composed(
    x: &Tensor,
    weight: &Tensor,
    styles: &Tensor,
    filter: Option<&Tensor>,
    p: ModConv,
    epi: &Epilogue,
) -> Result<Tensor> {
    // The composed ops compute on F32 (an F16 input, differentiably widened).
    let x = &x.to_dtype(DType::F32)?;
    let mut y = modulated_conv2d(x, weight, styles, filter, p, ModConvPath::Unfused)?;
    if let Some((noise, strength)) = epi.noise {
        y = noise_inject(&y, noise, strength)?;
    }
    if epi.bias.is_none() && epi.act.is_identity() {
        return Ok(y);
    }
    bias_act(&y, epi.bias, 1, &epi.act)
}

/// Geometry of the fused op, from validated shapes.
#[derive(Clone, Copy, Debug)]
struct FusedGeom {
    n: usize,
    i: usize,
    hw: [usize; 2],
    o: usize,
    k: [usize; 2],
    /// The staged signal (x, or its FIR up-sampling) and its zero padding.
    zhw: [usize; 2],
    pad: [isize; 2],
    ohw: [usize; 2],
    /// Leading FIR pads `[y, x]` (up 2).
    p0: [isize; 2],
    fhw: [usize; 2],
    /// The forward's weight view is flipped (`!flip_weight`).
    flip: bool,
}

impl FusedGeom {
    fn conv(&self) -> cuda::ConvGeom {
        cuda::ConvGeom {
            n: self.n,
            c: self.i,
            hw: self.hw,
            m: self.o,
            k: self.k,
            zhw: self.zhw,
            pad: self.pad,
            ohw: self.ohw,
        }
    }

    /// `wk(o, i, ky, kx)`: the raw weight, flipped when `flip`.
    fn view(&self) -> cuda::WeightView {
        let [kh, kw] = self.k.map(|v| v as i32);
        let (sm, sc) = (self.i as i32 * kh * kw, kh * kw);
        if self.flip {
            cuda::WeightView {
                off: ((kh - 1) * kw + kw - 1) as i64,
                strides: [sm, sc, -kw, -1],
            }
        } else {
            cuda::WeightView {
                off: 0,
                strides: [sm, sc, kw, 1],
            }
        }
    }

    /// The input gradient's view `w'(i, o, ky, kx) = wk(o, i, kh−1−ky, kw−1−kx)`.
    fn view_t(&self) -> cuda::WeightView {
        let [kh, kw] = self.k.map(|v| v as i32);
        let (sm, sc) = (kh * kw, self.i as i32 * kh * kw);
        if self.flip {
            cuda::WeightView {
                off: 0,
                strides: [sm, sc, kw, 1],
            }
        } else {
            cuda::WeightView {
                off: ((kh - 1) * kw + kw - 1) as i64,
                strides: [sm, sc, -kw, -1],
            }
        }
    }

    fn fir<'a>(&self, f: &'a crate::tensor::Storage) -> cuda::Fir<'a> {
        cuda::Fir {
            f,
            fhw: self.fhw,
            up: 2,
            p0: self.p0,
            gain: 4.0,
        }
    }
}

/// Validates the fused op's arguments and returns its geometry and the 2-D
/// resample filter (up 2).
fn fused_geometry(
    x: &Tensor,
    weight: &Tensor,
    styles: &Tensor,
    filter: Option<&Tensor>,
    p: ModConv,
    epi: &Epilogue,
) -> Result<(FusedGeom, Option<Tensor>)> {
    const OP: &str = "modulated_conv2d_fused";
    let [n, i, h, w] = check_inputs(OP, x, weight, styles)?;
    let (o, kh, kw) = (weight.dims()[0], weight.dims()[2], weight.dims()[3]);
    if kh == 0 || kw == 0 || h == 0 || w == 0 {
        return shape_err(
            OP,
            format!("empty kernel or input: {} {}", x.shape(), weight.shape()),
        );
    }
    let out_len = |z: usize, pad: isize, k: usize| -> Option<usize> {
        let v = z as isize + 2 * pad - k as isize + 1;
        (v >= 1).then_some(v as usize)
    };
    let (zhw, pad, p0, fhw, f2) = match (p.up, filter) {
        (1, _) => {
            let pd = p.padding as isize;
            ([h, w], [pd, pd], [0, 0], [0, 0], None)
        }
        (2, Some(f)) => {
            let f2 = match *f.dims() {
                [_, _] => f.detach(),
                [k] => f
                    .reshape(vec![k, 1])?
                    .mul(&f.reshape(vec![1, k])?)?
                    .detach(),
                _ => {
                    return shape_err(
                        OP,
                        format!("resample filter {} is not 1-D or 2-D", f.shape()),
                    )
                }
            };
            let [fh, fw] = [f2.dims()[0], f2.dims()[1]];
            if fh == 0 || fw == 0 {
                return shape_err(OP, format!("empty resample filter {}", f.shape()));
            }
            // As modulated_conv2d: pad0 = padding + (f + 1) // 2, pad1 = padding + (f − 2) // 2.
            let pads = |fs: usize| {
                let (fs, b) = (fs as isize, p.padding as isize);
                (b + (fs + 1).div_euclid(2), b + (fs - 2).div_euclid(2))
            };
            let ((y0, y1), (x0, x1)) = (pads(fh), pads(fw));
            let zl = |len: usize, a: isize, b: isize, fs: usize| {
                let v = 2 * len as isize + a + b - fs as isize + 1;
                (v >= 1).then_some(v as usize)
            };
            let (Some(zh), Some(zw)) = (zl(h, y0, y1, fh), zl(w, x0, x1, fw)) else {
                return invalid(OP, "the up-sampled input is smaller than the filter");
            };
            ([zh, zw], [0, 0], [y0, x0], [fh, fw], Some(f2))
        }
        (2, None) => return invalid(OP, "up = 2 needs a resample filter"),
        (up, _) => return invalid(OP, format!("up = {up}; only 1 and 2 are supported")),
    };
    let (Some(oh), Some(ow)) = (out_len(zhw[0], pad[0], kh), out_len(zhw[1], pad[1], kw)) else {
        return shape_err(
            OP,
            format!(
                "kernel {kh}×{kw} exceeds the padded input {}: the output would be empty",
                x.shape()
            ),
        );
    };
    if let Some((noise, strength)) = epi.noise {
        match *noise.dims() {
            [nn, 1, nh, nw] if nh == oh && nw == ow && (nn == n || nn == 1) => {}
            _ => {
                return shape_err(
                    OP,
                    format!(
                        "noise must be [{n}, 1, {oh}, {ow}] or [1, 1, {oh}, {ow}], got {}",
                        noise.shape()
                    ),
                )
            }
        }
        if strength.numel() != 1 || strength.rank() > 1 {
            return shape_err(
                OP,
                format!(
                    "noise strength must be a scalar (rank 0 or [1]), got {}",
                    strength.shape()
                ),
            );
        }
    }
    if let Some(b) = epi.bias {
        if b.dims() != [o] {
            return shape_err(
                OP,
                format!("bias {} is not [{o}] (the output channels)", b.shape()),
            );
        }
    }
    let a = epi.act;
    if !a.gain.is_finite() || a.clamp.is_some_and(|c| c.is_nan() || c < 0.0) {
        return invalid(
            OP,
            format!(
                "gain {} must be finite and clamp {:?} >= 0",
                a.gain, a.clamp
            ),
        );
    }
    Ok((
        FusedGeom {
            n,
            i,
            hw: [h, w],
            o,
            k: [kh, kw],
            zhw,
            pad,
            ohw: [oh, ow],
            p0,
            fhw,
            flip: !p.flip_weight,
        },
        f2,
    ))
}

/// `(act code, alpha, gain, clamp)` of the kernels (clamp −1: none).
fn act_args(a: &BiasAct) -> (i32, f32, f32, f32) {
    let (code, alpha) = match a.act {
        Act::Linear => (cuda::ACT_LINEAR, 0.0),
        Act::Lrelu { alpha } => (cuda::ACT_LRELU, alpha),
    };
    (code, alpha, a.gain, a.clamp.unwrap_or(-1.0))
}

struct FusedModConvOp {
    p: ModConv,
    g: FusedGeom,
    /// The original filter argument (for the composed rule) and its 2-D form.
    filter: Option<Tensor>,
    f2: Option<Tensor>,
    act: BiasAct,
    has_noise: bool,
    has_bias: bool,
    /// Saved for the fast backward: the raw accumulator u, d and wsq (demodulated only).
    pre: Option<Tensor>,
    d: Option<Tensor>,
    wsq: Option<Tensor>,
}

impl Backward for FusedModConvOp {
    fn name(&self) -> &'static str {
        "modulated_conv2d_fused"
    }

    /// F16 for x (an FP16 block's activations, read by the `_xh` kernels as
    /// they are); `modulated_conv2d_fused` keeps the other inputs F32.
    fn supports(&self, dtype: DType) -> bool {
        matches!(dtype, DType::F32 | DType::F16)
    }

    fn backward(&self, inputs: &[Tensor], y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        if autograd::is_grad_enabled() {
            self.composed_backward(inputs, g)
        } else {
            self.fast_backward(inputs, y, g)
        }
    }
}

impl FusedModConvOp {
    /// The epilogue's tensors among `inputs` (x, weight, styles, [noise,
    /// strength], [bias]).
    fn epilogue<'a>(&self, inputs: &'a [Tensor]) -> Epilogue<'a> {
        Epilogue {
            noise: self.has_noise.then(|| (&inputs[3], &inputs[4])),
            bias: self
                .has_bias
                .then(|| &inputs[if self.has_noise { 5 } else { 3 }]),
            act: self.act,
        }
    }

    /// create_graph: differentiate the composed forward, rebuilt from the
    /// inputs, so that the gradients are themselves differentiable.
    fn composed_backward(&self, inputs: &[Tensor], g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let y = composed(
            &inputs[0],
            &inputs[1],
            &inputs[2],
            self.filter.as_ref(),
            self.p,
            &self.epilogue(inputs),
        )?;
        let wrt: Vec<Tensor> = inputs.iter().filter(|t| t.needs_grad()).cloned().collect();
        let mut gs = autograd::grad(&[y], &wrt, Some(std::slice::from_ref(g)), true)?.into_iter();
        Ok(inputs
            .iter()
            .map(|t| {
                if t.needs_grad() {
                    gs.next().flatten()
                } else {
                    None
                }
            })
            .collect())
    }

    /// First order: the backward kernels of kernels/modconv.cu.
    fn fast_backward(
        &self,
        inputs: &[Tensor],
        y: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, w, s) = (&inputs[0], &inputs[1], &inputs[2]);
        let device = x.device();
        let geo = self.g;
        let [n, i, o] = [geo.n, geo.i, geo.o];
        let [kh, kw] = geo.k;
        let [oh, ow] = geo.ohw;
        let epi = self.epilogue(inputs);
        let need = |t: &Tensor| t.needs_grad();
        let (need_x, need_w, need_s) = (need(x), need(w), need(s));
        let need_noise = epi.noise.is_some_and(|(nz, _)| need(nz));
        let need_str = epi.noise.is_some_and(|(_, st)| need(st));
        let need_b = epi.bias.is_some_and(need);
        let demod = self.d.is_some() && (need_w || need_s);
        let t = |st: crate::tensor::Storage, shape: Vec<usize>| {
            Tensor::from_device_storage(st, shape, device)
        };

        let (gs, ys) = (g.storage(), y.storage());
        let pre = self.pre.as_ref().map(|t| t.storage());
        let d = self.d.as_ref().map(|t| t.storage());
        let noise_st = epi
            .noise
            .map(|(nz, _)| (nz.storage(), nz.dims()[0] == n && n > 1));
        let eg = cuda::epilogue_grad(
            &gs,
            &ys,
            if demod { pre.as_deref() } else { None },
            d.as_deref(),
            if need_str {
                noise_st.as_ref().map(|(st, b)| (&**st, *b))
            } else {
                None
            },
            [n, o, oh * ow],
            act_args(&self.act),
            [need_b, demod, need_str],
            need_noise,
            device,
        )?;

        // An F16 x widened once for the backward kernels (a temporary: the
        // graph keeps only the F16 tensor).
        let xw = x.to_dtype(DType::F32)?;
        let (xs, ss, ws) = (xw.storage(), s.storage(), w.storage());
        let fst = self.f2.as_ref().map(|f| f.storage());
        let mut dx = None;
        let mut ds = None;
        if need_x || need_s {
            let gt = cuda::ConvGeom {
                n,
                c: o,
                hw: geo.ohw,
                m: i,
                k: geo.k,
                zhw: geo.ohw,
                pad: [kh as isize - 1 - geo.pad[0], kw as isize - 1 - geo.pad[1]],
                ohw: geo.zhw,
            };
            match &fst {
                None => {
                    let epi_t = cuda::EpiArgs {
                        out_scale: Some(&ss),
                        dot_aux: need_s.then_some(&*xs),
                        ..cuda::EpiArgs::plain()
                    };
                    let r = cuda::fused_conv(
                        &eg.gu,
                        None,
                        &ws,
                        geo.view_t(),
                        None,
                        gt,
                        &epi_t,
                        self.p.precision,
                        device,
                    )?;
                    dx = Some(t(r.y, x.dims().to_vec()).to_dtype(x.dtype())?);
                    ds = r.dot.map(|v| t(v, vec![n, i]));
                }
                Some(f) => {
                    let r = cuda::fused_conv(
                        &eg.gu,
                        None,
                        &ws,
                        geo.view_t(),
                        None,
                        gt,
                        &cuda::EpiArgs::plain(),
                        self.p.precision,
                        device,
                    )?;
                    let (gx, gsty) = cuda::fir_down(
                        &r.y,
                        &xs,
                        &ss,
                        geo.fir(f),
                        [n, i, geo.hw[0], geo.hw[1]],
                        geo.zhw,
                        device,
                    )?;
                    dx = Some(t(gx, x.dims().to_vec()).to_dtype(x.dtype())?);
                    ds = Some(t(gsty, vec![n, i]));
                }
            }
        }
        let mut dw = None;
        if need_w {
            let (part, splits) = match &fst {
                None => cuda::weight_grad(
                    &eg.gu,
                    &xs,
                    Some(&ss),
                    geo.conv(),
                    geo.flip,
                    self.p.precision,
                    device,
                )?,
                Some(f) => {
                    let z = cuda::upfir(
                        &xs,
                        &ss,
                        geo.fir(f),
                        [n, i, geo.hw[0], geo.hw[1]],
                        geo.zhw,
                        device,
                    )?;
                    cuda::weight_grad(
                        &eg.gu,
                        &z,
                        None,
                        geo.conv(),
                        geo.flip,
                        self.p.precision,
                        device,
                    )?
                }
            };
            dw = Some(t(part, vec![splits, o, i, kh, kw]).sum(&[0], false)?);
        }
        if demod {
            let (Some(dd), Some(d), Some(wsq)) = (&eg.row_gu, &d, &self.wsq) else {
                return Err(Error::Internal(
                    "modulated_conv2d_fused: demodulation state missing in backward".into(),
                ));
            };
            let (cw, dsd) = cuda::demod_grad(dd, d, &ss, &wsq.storage(), [n, o, i], device)?;
            if let Some(v) = dw.take() {
                dw = Some(v.sub(&w.mul(&t(cw, vec![o, i, 1, 1]))?)?);
            }
            if let Some(v) = ds.take() {
                ds = Some(v.add(&t(dsd, vec![n, i]))?);
            }
        }
        let mut out = vec![dx.filter(|_| need_x), dw, ds.filter(|_| need_s)];
        if let Some((nz, st)) = epi.noise {
            let dnoise = match eg.g {
                Some(gp) if need_noise => Some(
                    t(gp, vec![n, o, oh, ow])
                        .sum(&[1], true)?
                        .mul(st)?
                        .sum_to(nz.shape())?,
                ),
                _ => None,
            };
            let dstr = match eg.row_gn {
                Some(r) if need_str => {
                    Some(t(r, vec![n, o]).sum_all()?.reshape(st.shape().clone())?)
                }
                _ => None,
            };
            out.push(dnoise);
            out.push(dstr);
        }
        if epi.bias.is_some() {
            out.push(match eg.row_g {
                Some(r) if need_b => Some(t(r, vec![n, o]).sum(&[0], false)?),
                _ => None,
            });
        }
        Ok(out)
    }
}

/// The fused modulated convolution with the synthesis layer's epilogue:
/// `bias_act(noise_inject(modulated_conv2d(x, weight, styles), noise,
/// strength), bias)` in one kernel on `Cuda`/`Sim`, the composition itself on
/// the CPU. Arguments as `modulated_conv2d`; `epi` says what follows the
/// convolution. Differentiable w.r.t. x, weight, styles, noise, strength and
/// bias, to any order (a first-order backward runs the backward kernels; a
/// recorded one differentiates the composition).
pub fn modulated_conv2d_fused(
    x: &Tensor,
    weight: &Tensor,
    styles: &Tensor,
    filter: Option<&Tensor>,
    p: ModConv,
    epi: &Epilogue,
) -> Result<Tensor> {
    const OP: &str = "modulated_conv2d_fused";
    let mut all = vec![x, weight, styles];
    if let Some((nz, st)) = epi.noise {
        all.extend([nz, st]);
    }
    all.extend(epi.bias);
    if let Some(f) = filter {
        all.push(f);
    }
    let device = Tensor::same_device(OP, &all)?;
    // x may be F16 (the FP16 blocks' activations); the parameters and the
    // epilogue's tensors are F32, as the official layers keep them.
    if let Some(t) = all[1..].iter().find(|t| t.dtype() != DType::F32) {
        return invalid(
            OP,
            format!(
                "weight, styles, noise, bias and filter must be f32, got {}",
                t.dtype()
            ),
        );
    }
    if !matches!(x.dtype(), DType::F32 | DType::F16) {
        return invalid(OP, format!("input x is {}: f32 or f16 expected", x.dtype()));
    }
    if device == Device::Cpu {
        return composed(x, weight, styles, filter, p, epi);
    }
    let (geo, f2) = fused_geometry(x, weight, styles, filter, p, epi)?;
    if f2.as_ref().is_some_and(|f| f.needs_grad()) {
        return invalid(OP, "the resample filter is a constant; pass f.detach()");
    }
    let mut inputs = vec![x.clone(), weight.clone(), styles.clone()];
    if let Some((nz, st)) = epi.noise {
        inputs.extend([nz.clone(), st.clone()]);
    }
    inputs.extend(epi.bias.cloned());
    let tracked = autograd::is_grad_enabled() && inputs.iter().any(|t| t.needs_grad());
    let [n, i, o] = [geo.n, geo.i, geo.o];
    let [kh, kw] = geo.k;
    let (ws, ss) = (weight.storage(), styles.storage());
    let (wsq, d) = if p.demodulate {
        let wsq = cuda::wsq(&ws, o * i, kh * kw, device)?;
        let d = cuda::demod(&ss, &wsq, [n, o, i], device)?;
        (Some(wsq), Some(d))
    } else {
        (None, None)
    };
    let noise_st = epi
        .noise
        .map(|(nz, st)| (nz.storage(), nz.dims()[0] == n && n > 1, st.storage()));
    let bias_st = epi.bias.map(|b| b.storage());
    let fst = f2.as_ref().map(|f| f.storage());
    let (act, alpha, gain, clamp) = act_args(&epi.act);
    let ea = cuda::EpiArgs {
        out_scale: d.as_ref(),
        noise: noise_st.as_ref().map(|(a, b, c)| (&**a, *b, &**c)),
        bias: bias_st.as_deref(),
        act,
        alpha,
        gain,
        clamp,
        want_pre: tracked && p.demodulate,
        dot_aux: None,
    };
    let out = cuda::fused_conv(
        &x.storage(),
        Some(&ss),
        &ws,
        geo.view(),
        fst.as_deref().map(|f| geo.fir(f)),
        geo.conv(),
        &ea,
        p.precision,
        device,
    )?;
    let [oh, ow] = geo.ohw;
    let keep = |st: Option<crate::tensor::Storage>, shape: Vec<usize>| {
        st.map(|st| Tensor::from_device_storage(st, shape, device))
    };
    let op = FusedModConvOp {
        p,
        g: geo,
        filter: filter.map(|f| f.detach()),
        f2,
        act: epi.act,
        has_noise: epi.noise.is_some(),
        has_bias: epi.bias.is_some(),
        pre: keep(out.pre, vec![n, o, oh, ow]),
        d: keep(d, vec![n, o]),
        wsq: keep(wsq, vec![o, i]),
    };
    Tensor::from_op_storage(out.y, Shape::from(vec![n, o, oh, ow]), device, op, inputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::upfirdn::setup_filter;

    /// `up2_transposed` (the unfused and grouped paths' up-sampling) against
    /// the generic composition: zero insertion and FIR, then a
    /// valid convolution. Values and first-order gradients (w.r.t. the input
    /// and the weight); they differ only in summation order, so the bound is
    /// relative to the largest |value|: 2e-6 ≈ 30 ulps of f32 at that
    /// magnitude, above the rounding of sums of ≤ 5·4·4·3·3 terms.
    #[test]
    fn up2_transposed_matches_the_upsampled_convolution() {
        let mut rng = crate::rng(7);
        let f1 = setup_filter(&[1.0, 3.0, 3.0, 1.0], Device::Cpu).unwrap();
        let f2 = setup_filter(&[1.0, 2.0], Device::Cpu).unwrap();
        let f3 = Tensor::randn(vec![3, 4], &mut rng, Device::Cpu);
        // (filter, kernel [kh, kw], padding, flip_weight, input [h, w])
        let cases = [
            (&f1, [3, 3], 1, false, [4, 5]),
            (&f1, [3, 3], 1, true, [3, 3]),
            (&f1, [3, 3], 0, false, [5, 4]),
            (&f1, [1, 1], 0, true, [3, 4]),
            (&f2, [3, 3], 1, false, [4, 4]),
            (&f3, [3, 2], 2, false, [3, 5]),
            (&f1, [2, 3], 0, true, [1, 2]),
        ];
        for (f, [kh, kw], padding, flip_weight, [h, w]) in cases {
            let what = format!(
                "filter {}, kernel {kh}x{kw}, padding {padding}, flip {flip_weight}, input {h}x{w}",
                f.shape()
            );
            let p = ModConv {
                demodulate: true,
                up: 2,
                padding,
                flip_weight,
                precision: Precision::F32,
            };
            // Groups as the grouped path (one per sample) on odd cases.
            let groups = 1 + (h % 2);
            let what = format!("{what}, groups {groups}");
            let xs = Tensor::randn(vec![2, 5 * groups, h, w], &mut rng, Device::Cpu);
            let wt = Tensor::randn(vec![3 * groups, 5, kh, kw], &mut rng, Device::Cpu);
            xs.set_requires_grad(true).unwrap();
            wt.set_requires_grad(true).unwrap();
            let fast = up2_transposed(&xs, &wt, f, p, groups).unwrap();
            let wk = if flip_weight {
                wt.clone()
            } else {
                wt.flip(&[2, 3]).unwrap()
            };
            let fir = up2_fir("test", f, padding).unwrap();
            let conv = Conv2d {
                groups,
                ..Conv2d::default()
            };
            let slow = conv2d(&upfirdn2d(&xs, f, &fir).unwrap(), &wk, conv).unwrap();
            assert_eq!(fast.dims(), slow.dims(), "{what}");
            let r = Tensor::randn(slow.dims().to_vec(), &mut rng, Device::Cpu);
            let grads = |y: &Tensor| {
                let loss = y.mul(&r).unwrap().sum_all().unwrap();
                autograd::grad(&[loss], &[xs.clone(), wt.clone()], None, false)
                    .unwrap()
                    .into_iter()
                    .map(|g| g.unwrap().to_vec())
                    .collect::<Vec<_>>()
            };
            let (gf, gs) = (grads(&fast), grads(&slow));
            let pairs = [
                ("value", fast.to_vec(), slow.to_vec()),
                ("input gradient", gf[0].clone(), gs[0].clone()),
                ("weight gradient", gf[1].clone(), gs[1].clone()),
            ];
            for (name, a, b) in pairs {
                let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(scale > 0.0, "{what}: {name} is all zeros");
                let err = a
                    .iter()
                    .zip(&b)
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    err <= 2e-6 * scale,
                    "{what}: {name} differs by {err} (scale {scale})"
                );
            }
        }
    }
}
