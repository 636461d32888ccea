//! The fused modulated convolution on the tensor cores (kernels/modconv_tc.cu
//! `modconv_tc_fwd_*` and, for its weight gradient and the grouped path,
//! kernels/conv_tc.cu; chosen on `Device::Sim` whenever the precision is not
//! F32) at TF32, BF16 and FP16, on shapes that are multiples of no tile (the
//! kernel tiles 64 channels × 8×16 pixels × 8 or 16 channels per step):
//! - against a CPU reference whose operands are rounded as the kernel rounds
//!   them (the staged `Z = x ⊙ s` or its FIR up-sampling, and the weight),
//!   where only FP32 summation order differs — this catches a wrong fragment
//!   or tile index even when it is smaller than the rounding error;
//! - against the FP32 CPU reference within the bound that operand rounding
//!   allows, forward with the whole epilogue and every first-order gradient,
//!   on Sim and on GPU 0 when there is one. The last small shape (20 → 40
//!   channels) is large enough for the GPU to pick the tensor-core kernels.

mod common;
use common::tc::{assert_within, max_abs, rounded};
use common::{kernel_devices, values};
use stylegan2::ops::bias_act::{Act, BiasAct};
use stylegan2::ops::conv::{conv2d, Conv2d};
use stylegan2::ops::modconv::{demod_coefficients, modulated_conv2d_fused, Epilogue, ModConv};
use stylegan2::ops::precision::Precision;
use stylegan2::ops::upfirdn::{setup_filter, upfirdn2d, UpFirDn};
use stylegan2::{grad, Device, Result, Tensor};

const PRECISIONS: [Precision; 3] = [Precision::TF32, Precision::BF16, Precision::F16];

/// (batch, in channels, out channels, height, width): batch 1 and 3,
/// channels 3, 5, 67, 130, square and not.
const SHAPES: [[usize; 5]; 3] = [[1, 3, 5, 5, 5], [3, 67, 5, 5, 7], [1, 5, 130, 17, 9]];
/// Smaller shapes for the bound tests (the simulator is slow): the same
/// batch and channel counts, fewer pixels.
const SMALL_SHAPES: [[usize; 5]; 4] = [
    [1, 3, 5, 5, 5],
    [3, 67, 5, 5, 3],
    [1, 5, 130, 3, 5],
    [2, 20, 40, 6, 5],
];

fn cases() -> [(&'static str, ModConv); 3] {
    [
        ("3x3 up1", ModConv::conv3x3()),
        ("3x3 up2", ModConv::conv3x3_up2()),
        ("1x1 nodemod", ModConv::torgb()),
    ]
}

struct Inputs {
    x: Tensor,
    w: Tensor,
    s: Tensor,
    f: Tensor,
}

fn inputs([n, i, o, h, w]: [usize; 5], p: ModConv, dev: Device) -> Result<Inputs> {
    let k = if p.padding == 0 { 1 } else { 3 };
    let leaf = |v: Vec<f32>, dims: &[usize]| -> Result<Tensor> {
        let t = Tensor::from_vec(v, dims.to_vec(), dev)?;
        t.set_requires_grad(true)?;
        Ok(t)
    };
    Ok(Inputs {
        x: leaf(values(n * i * h * w, 11), &[n, i, h, w])?,
        w: leaf(values(o * i * k * k, 12), &[o, i, k, k])?,
        s: leaf(
            values(n * i, 13).iter().map(|v| 1.0 + 0.3 * v).collect(),
            &[n, i],
        )?,
        f: setup_filter(&[1.0, 3.0, 3.0, 1.0], dev)?,
    })
}

fn on_cpu(t: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(t.to_vec(), t.dims().to_vec(), Device::Cpu)
}

/// The staged signal Z (x ⊙ s, or its FIR up-sampling as modulated_conv2d
/// forms it) and the weight as the kernel correlates it, both in FP32.
fn staged(t: &Inputs, p: ModConv) -> Result<(Tensor, Tensor, usize)> {
    let (x, w, s) = (on_cpu(&t.x)?, on_cpu(&t.w)?, on_cpu(&t.s)?);
    let [n, i] = [x.dims()[0], x.dims()[1]];
    let xs = x.mul(&s.reshape(vec![n, i, 1, 1])?)?;
    if p.up == 2 {
        let fir = UpFirDn {
            up: [2, 2],
            down: [1, 1],
            pad: [3, 2, 3, 2],
            flip_filter: false,
            gain: 4.0,
        };
        Ok((upfirdn2d(&xs, &on_cpu(&t.f)?, &fir)?, w.flip(&[2, 3])?, 0))
    } else {
        Ok((xs, w, p.padding))
    }
}

/// `d ⊙ conv(round(Z), round(w))` on the CPU (d from the unrounded w and s,
/// as the kernels compute it in FP32).
fn rounded_reference(t: &Inputs, p: ModConv, prec: Precision) -> Result<Tensor> {
    let (z, wk, pad) = staged(t, p)?;
    let conv = Conv2d {
        padding: [pad, pad],
        ..Conv2d::default()
    };
    let y = conv2d(&rounded(&z, prec)?, &rounded(&wk, prec)?, conv)?;
    if !p.demodulate {
        return Ok(y);
    }
    let d = demod_coefficients(&on_cpu(&t.s)?, &on_cpu(&t.w)?)?;
    let [n, o] = [d.dims()[0], d.dims()[1]];
    y.mul(&d.reshape(vec![n, o, 1, 1])?)
}

/// max |d| (1 without demodulation).
fn max_demod(t: &Inputs, p: ModConv) -> Result<f64> {
    Ok(if p.demodulate {
        max_abs(&demod_coefficients(&on_cpu(&t.s)?, &on_cpu(&t.w)?)?)
    } else {
        1.0
    })
}

#[test]
fn tc_forward_matches_the_operand_rounded_reference() {
    let _g = stylegan2::no_grad();
    for (name, p) in cases() {
        for shape in SHAPES {
            for prec in PRECISIONS {
                let t = inputs(shape, p, Device::Sim).unwrap();
                let what = format!("{name} {shape:?} {prec}");
                let got = modulated_conv2d_fused(
                    &t.x,
                    &t.w,
                    &t.s,
                    Some(&t.f),
                    p.with_precision(prec),
                    &Epilogue::identity(),
                )
                .unwrap();
                let want = rounded_reference(&t, p, prec).unwrap();
                let (z, wk, _) = staged(&t, p).unwrap();
                let (mz, mw, md) = (max_abs(&z), max_abs(&wk), max_demod(&t, p).unwrap());
                let k = (shape[1] * wk.dims()[2] * wk.dims()[3]) as f64;
                // Same operands: FP32 sums in another order, K·2⁻²⁴ of the
                // sum of |products| at most. Up 2: the kernel's FIR sums in
                // another order than upfirdn2d, so a Z that sits on a rounding
                // boundary may round the other way: u·max|Z| per product, a
                // few of them at most in one sum (allow 4).
                let flips = if p.up == 2 { 4.0 } else { 0.0 };
                let tol = (k * 2f64.powi(-24) * k + flips * prec.unit_roundoff()) * mz * mw * md;
                assert_within(&what, &got, &want, tol);
            }
        }
    }
}

/// The layer's whole epilogue (noise, bias, lrelu, gain, clamp) against the
/// FP32 CPU reference. Each product of rounded operands is within 2u of the
/// exact one (u: unit roundoff, both operands rounded), the errors of the K
/// products are independent with mean ≈ 0, so the sum is off by about
/// 2u·√K·max|w|·max|Z| (we allow twice that: c = 4); demodulation scales it
/// by d, the epilogue by at most its gain (lrelu and clamp are 1-Lipschitz).
#[test]
fn tc_forward_with_epilogue_within_the_precision_bound() {
    let _g = stylegan2::no_grad();
    for (name, p) in cases() {
        for shape in SMALL_SHAPES {
            for prec in PRECISIONS {
                let what = format!("{name} {shape:?} {prec}");
                let run = |dev: Device, run_prec: Precision| -> Result<(Tensor, f64)> {
                    let t = inputs(shape, p, dev)?;
                    let [n, o, oh, ow] = [shape[0], shape[2], shape[3] * p.up, shape[4] * p.up];
                    let noise = Tensor::from_vec(values(n * oh * ow, 14), vec![n, 1, oh, ow], dev)?;
                    let strength = Tensor::from_vec(vec![0.7], vec![], dev)?;
                    let bias = Tensor::from_vec(values(o, 15), vec![o], dev)?;
                    let gain = 1.3 * std::f32::consts::SQRT_2;
                    let epi = Epilogue {
                        noise: Some((&noise, &strength)),
                        bias: Some(&bias),
                        act: BiasAct {
                            act: Act::Lrelu { alpha: 0.2 },
                            gain,
                            clamp: Some(0.9),
                        },
                    };
                    let y = modulated_conv2d_fused(
                        &t.x,
                        &t.w,
                        &t.s,
                        Some(&t.f),
                        p.with_precision(run_prec),
                        &epi,
                    )?;
                    let (z, wk, _) = staged(&t, p)?;
                    let k = (shape[1] * wk.dims()[2] * wk.dims()[3]) as f64;
                    let bound = 4.0
                        * prec.unit_roundoff()
                        * k.sqrt()
                        * max_abs(&z)
                        * max_abs(&wk)
                        * max_demod(&t, p)?
                        * gain as f64;
                    Ok((y, bound))
                };
                let (want, bound) = run(Device::Cpu, Precision::F32).unwrap();
                for dev in kernel_devices() {
                    let (got, _) = run(dev, prec).unwrap();
                    assert_within(&format!("{what} on {dev}"), &got, &want, bound + 1e-5);
                }
            }
        }
    }
}

/// First-order input gradient (the transposed convolution runs on the
/// tensor cores too) against the FP32 CPU gradient, for `⟨y, r⟩` with
/// r ∈ [-1, 1): the raw-accumulator gradient is gu = r·d, its K' = O·k²
/// products with the weight are bounded as in the forward, times s (the
/// output scale of the transposed kernel); up 2 adds the FP32 adjoint FIR
/// step, whose used taps sum to 1.
#[test]
fn tc_input_gradient_within_the_precision_bound() {
    for (name, p) in cases() {
        for shape in SMALL_SHAPES {
            for prec in PRECISIONS {
                let what = format!("{name} {shape:?} {prec} dL/dx");
                let run = |dev: Device, run_prec: Precision| -> Result<(Tensor, f64)> {
                    let t = inputs(shape, p, dev)?;
                    let y = modulated_conv2d_fused(
                        &t.x,
                        &t.w,
                        &t.s,
                        Some(&t.f),
                        p.with_precision(run_prec),
                        &Epilogue::identity(),
                    )?;
                    let r = Tensor::from_vec(values(y.numel(), 77), y.dims().to_vec(), dev)?;
                    let g = grad(&[y], std::slice::from_ref(&t.x), Some(&[r]), false)?;
                    let dx = g.into_iter().next().flatten().expect("dL/dx");
                    let kk = (t.w.dims()[2] * t.w.dims()[3]) as f64;
                    let bound = 4.0
                        * prec.unit_roundoff()
                        * (shape[2] as f64 * kk).sqrt()
                        * max_abs(&t.w)
                        * max_demod(&t, p)?
                        * max_abs(&t.s);
                    Ok((dx, bound))
                };
                let (want, bound) = run(Device::Cpu, Precision::F32).unwrap();
                for dev in kernel_devices() {
                    let (got, _) = run(dev, prec).unwrap();
                    assert_within(&format!("{what} on {dev}"), &got, &want, bound + 1e-5);
                }
            }
        }
    }
}

/// First-order weight and style gradients (the fast backward) against the
/// FP32 CPU gradients, for `⟨y, r⟩` with r ∈ [-1, 1).
///
/// Weight gradient: the GEMM `Σ_{n,p} gu · (s ⊙ Z)` runs on the tensor cores
/// (conv_tc.cu) with gu = r·d: K = N·OH·OW rounded products, bounded as the
/// forward, 4u·√K·max|gu|·max|s⊙Z|. The demodulation term `−w · Σ_n e s²`
/// (e = dd·d³, dd = Σ_p g·u) is FP32 on u, the forward's accumulator, whose
/// error is the forward bound ε_u = 4u·√K_f·max|Z|·max|w|; over P pixels and
/// N samples that moves dw by at most max|w|·N·P·max|r|·ε_u·max d³·max s².
/// Style gradient: Σ_p x · ∂L/∂(x⊙s) over P = H·W (or the up-sampled grid,
/// then FIR adjoint, taps summing to 1) of the input-gradient's error (the
/// dx bound of the test above without its factor s), plus the same dd term
/// through Σ_o e·Σ_k w²: max s·O·P·max|r|·ε_u·max d³·max Σ_k w².
#[test]
fn tc_weight_and_style_gradients_within_the_precision_bound() {
    for (name, p) in cases() {
        for shape in SMALL_SHAPES {
            for prec in PRECISIONS {
                let run = |dev: Device, run_prec: Precision| -> Result<(Vec<Tensor>, [f64; 2])> {
                    let t = inputs(shape, p, dev)?;
                    let y = modulated_conv2d_fused(
                        &t.x,
                        &t.w,
                        &t.s,
                        Some(&t.f),
                        p.with_precision(run_prec),
                        &Epilogue::identity(),
                    )?;
                    let [n, o, oh, ow] = [y.dims()[0], y.dims()[1], y.dims()[2], y.dims()[3]];
                    let r = Tensor::from_vec(values(y.numel(), 78), y.dims().to_vec(), dev)?;
                    let g = grad(&[y], &[t.w.clone(), t.s.clone()], Some(&[r]), false)?;
                    let gs: Vec<Tensor> = g.into_iter().map(|v| v.expect("gradient")).collect();
                    let u = prec.unit_roundoff();
                    let (z, wk, _) = staged(&t, p)?;
                    let (mz, mw, md) = (max_abs(&z), max_abs(&wk), max_demod(&t, p)?);
                    let ms = max_abs(&t.s);
                    let kk = (wk.dims()[2] * wk.dims()[3]) as f64;
                    let kf = shape[1] as f64 * kk;
                    let pix = (oh * ow) as f64;
                    let eps_u = 4.0 * u * kf.sqrt() * mz * mw;
                    let (dd_w, dd_s) = if p.demodulate {
                        (
                            mw * n as f64 * pix * eps_u * md.powi(3) * ms * ms,
                            ms * o as f64 * pix * eps_u * md.powi(3) * mw * mw * kk,
                        )
                    } else {
                        (0.0, 0.0)
                    };
                    let kw_ = (n * oh * ow) as f64;
                    let bound_w = 4.0 * u * kw_.sqrt() * md * mz + dd_w;
                    let in_pix = (z.dims()[2] * z.dims()[3]) as f64;
                    let gxs = 4.0 * u * (o as f64 * kk).sqrt() * mw * md;
                    let bound_s = in_pix * max_abs(&t.x) * gxs + dd_s;
                    Ok((gs, [bound_w, bound_s]))
                };
                let (want, bounds) = run(Device::Cpu, Precision::F32).unwrap();
                for dev in kernel_devices() {
                    let (got, _) = run(dev, prec).unwrap();
                    for (k, what) in ["dL/dw", "dL/ds"].iter().enumerate() {
                        let what = format!("{name} {shape:?} {prec} {what} on {dev}");
                        assert_within(&what, &got[k], &want[k], bounds[k] + 1e-5);
                    }
                }
            }
        }
    }
}

/// The grouped path (per-sample weights, one grouped conv2d) runs its
/// convolution at the layer's precision (conv_tc.cu with groups = N): within
/// the forward's precision bound of the FP32 CPU result.
#[test]
fn tc_grouped_path_within_the_precision_bound() {
    use stylegan2::ops::modconv::{modulated_conv2d, ModConvPath};
    let _g = stylegan2::no_grad();
    for (name, p) in cases() {
        for shape in SMALL_SHAPES {
            for prec in PRECISIONS {
                let run = |dev: Device, run_prec: Precision| -> Result<(Tensor, f64)> {
                    let t = inputs(shape, p, dev)?;
                    let y = modulated_conv2d(
                        &t.x,
                        &t.w,
                        &t.s,
                        Some(&t.f),
                        p.with_precision(run_prec),
                        ModConvPath::Grouped,
                    )?;
                    // Operands: Z without the styles (x, or its FIR
                    // up-sampling: at most max|s⊙Z| / min s, s ≥ 0.7 by
                    // construction) and w·s·d (max|w|·max|s|·max d).
                    let (z, wk, _) = staged(&t, p)?;
                    let k = (shape[1] * wk.dims()[2] * wk.dims()[3]) as f64;
                    let mzx = max_abs(&z) / 0.7;
                    let bound = 4.0
                        * prec.unit_roundoff()
                        * k.sqrt()
                        * mzx
                        * max_abs(&wk)
                        * max_abs(&t.s)
                        * max_demod(&t, p)?;
                    Ok((y, bound))
                };
                let (want, bound) = run(Device::Cpu, Precision::F32).unwrap();
                for dev in kernel_devices() {
                    let (got, _) = run(dev, prec).unwrap();
                    let what = format!("{name} {shape:?} {prec} grouped on {dev}");
                    assert_within(&what, &got, &want, bound + 1e-5);
                }
            }
        }
    }
}

/// An FP16 block's activation reaches the fused op as F16 storage, which
/// the `_xh` tensor-core kernels read as it is (no widened copy). Widening
/// F16 to FP32 is exact and the FP16 operand of a widened value is that
/// value, so the forward must equal, bit for bit, the same kernel on the
/// widened input; the gradients must equal those of the widened run too
/// (dL/dx as F16: the FP32 gradient rounded once, as a cast's backward
/// rounds it), for the fast first-order backward and for the composed one
/// (create_graph). One odd shape per case (batch 3 and 1, channels 3, 5,
/// 67, 130, non-square).
#[test]
fn tc_forward_reads_f16_input_as_stored() {
    use stylegan2::DType;
    let shapes = [[3, 67, 5, 5, 3], [1, 5, 130, 3, 5], [3, 130, 3, 5, 7]];
    for ((name, p), shape) in cases().into_iter().zip(shapes) {
        let p = p.with_precision(Precision::F16);
        let epi = Epilogue {
            noise: None,
            bias: None,
            act: BiasAct {
                act: Act::Lrelu { alpha: 0.2 },
                gain: std::f32::consts::SQRT_2,
                clamp: Some(0.9),
            },
        };
        // Gradients of ⟨y, r⟩ w.r.t. (x, w, s), with x stored as `dtype`.
        let run = |dtype: DType, create_graph: bool| -> Result<(Tensor, Vec<Tensor>)> {
            let t = inputs(shape, p, Device::Sim)?;
            // The same F16 values either way: widened, or as stored.
            let x = t.x.to_dtype(DType::F16)?.to_dtype(dtype)?;
            let y = modulated_conv2d_fused(&x, &t.w, &t.s, Some(&t.f), p, &epi)?;
            let r = Tensor::from_vec(values(y.numel(), 78), y.dims().to_vec(), Device::Sim)?;
            let wrt = [x.clone(), t.w.clone(), t.s.clone()];
            let g = grad(std::slice::from_ref(&y), &wrt, Some(&[r]), create_graph)?;
            assert_eq!(x.dtype(), dtype);
            let g: Vec<Tensor> = g.into_iter().map(|g| g.expect("a gradient")).collect();
            assert_eq!(g[0].dtype(), dtype, "{name}: dL/dx has the input's dtype");
            Ok((y, g))
        };
        let bits = |t: &Tensor| -> Vec<u32> {
            let v = t.to_dtype(DType::F32).unwrap().to_vec();
            v.into_iter().map(f32::to_bits).collect()
        };
        for create_graph in [false, true] {
            // The composed backward is slow on the simulator: one case.
            if create_graph && p.up != 1 {
                continue;
            }
            let what = format!("{name} {shape:?} f16 input, create_graph {create_graph}");
            let (y16, g16) = run(DType::F16, create_graph).unwrap();
            let (y32, g32) = run(DType::F32, create_graph).unwrap();
            assert_eq!(bits(&y16), bits(&y32), "{what}: forward");
            let dx32 = g32[0].to_dtype(DType::F16).unwrap();
            assert_eq!(bits(&g16[0]), bits(&dx32), "{what}: dL/dx");
            assert_eq!(bits(&g16[1]), bits(&g32[1]), "{what}: dL/dw");
            assert_eq!(bits(&g16[2]), bits(&g32[2]), "{what}: dL/ds");
        }
    }
}

/// The fused op takes F16 only for x; F16 parameters are refused by name.
#[test]
fn fused_op_refuses_f16_parameters() {
    use stylegan2::DType;
    let p = ModConv::conv3x3().with_precision(Precision::F16);
    let t = inputs([1, 3, 5, 5, 5], p, Device::Sim).unwrap();
    let w16 = t.w.to_dtype(DType::F16).unwrap();
    let Err(err) = modulated_conv2d_fused(&t.x, &w16, &t.s, None, p, &Epilogue::identity()) else {
        panic!("an f16 weight is refused");
    };
    let err = err.to_string();
    assert!(
        err.contains("modulated_conv2d_fused") && err.contains("f16"),
        "{err}"
    );
}
