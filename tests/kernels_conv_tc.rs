//! Conv2d on the tensor cores (kernels/conv_tc.cu, chosen on `Device::Sim`
//! whenever the precision is not F32): forward, input gradient and weight
//! gradient at TF32, BF16 and FP16, on shapes that are multiples of no tile
//! (the kernels tile 64 × 64 and step 8 or 16 channels / pixels): batch 1
//! and 3, channels 3, 5, 67, 130, 5×5, 17×17 and non-square images, stride
//! 2 (the input gradient's phases) and groups. Each result is compared twice:
//! - with the CPU reference on operands rounded as the kernel rounds them,
//!   where only the FP32 summation order differs: a wrong fragment, tile or
//!   tap index fails this even when it is smaller than the rounding error;
//! - with the FP32 CPU reference at the bound operand rounding allows,
//!   |err| ≤ c·u·√K·max|a|·max|b| (u the precision's unit roundoff, K the
//!   reduction length, a and b the two operands).
//!
//! On a GPU (GPU 0, when there is one) only the second check runs: there
//! the small GEMMs take the FP32 kernels (the launch code keeps the tensor
//! cores for GEMMs that fill the tiles), which the bound covers too; the
//! 40 → 48 channel cases take the tensor cores there.

mod common;
use common::tc::{assert_within, max_abs, rounded};
use common::{kernel_devices, values};
use stylegan2::ops::conv::{conv2d, conv2d_input_grad, conv2d_weight_grad, Conv2d};
use stylegan2::ops::precision::Precision;
use stylegan2::{Device, Result, Tensor};

const PRECISIONS: [Precision; 3] = [Precision::TF32, Precision::BF16, Precision::F16];

/// A convolution to test: input `[n, c, h, w]`, `o` output channels, kernel `k`.
struct Case {
    x: [usize; 4],
    o: usize,
    k: [usize; 2],
    p: Conv2d,
}

fn cases() -> Vec<Case> {
    let conv = |stride: usize, pad: usize, groups: usize| Conv2d {
        stride: [stride; 2],
        padding: [pad; 2],
        groups,
        ..Conv2d::default()
    };
    vec![
        // Tiny: one partial tile everywhere, 3 channels (fromRGB-like).
        Case {
            x: [1, 3, 5, 5],
            o: 5,
            k: [3, 3],
            p: conv(1, 1, 1),
        },
        // Batch 3, 67 channels (5 k-steps of 16, 9 of 8), non-square, stride 2
        // (four input-gradient phases).
        Case {
            x: [3, 67, 7, 5],
            o: 5,
            k: [3, 3],
            p: conv(2, 1, 1),
        },
        // 130 output channels (three 64-row tiles), 17×17: 289 columns.
        Case {
            x: [1, 5, 17, 17],
            o: 130,
            k: [1, 1],
            p: conv(1, 0, 1),
        },
        // Large enough for a GPU to pick the tensor-core kernels in all
        // three passes (32+ rows, a reduction of 16+), stride 1 and 2.
        Case {
            x: [2, 40, 9, 7],
            o: 48,
            k: [3, 3],
            p: conv(1, 1, 1),
        },
        Case {
            x: [2, 40, 9, 7],
            o: 48,
            k: [3, 3],
            p: conv(2, 1, 1),
        },
        // Groups (the grouped modulated convolution), non-square kernel.
        Case {
            x: [3, 10, 5, 6],
            o: 6,
            k: [3, 2],
            p: conv(1, 1, 2),
        },
    ]
}

fn to(t: &Tensor, dev: Device) -> Result<Tensor> {
    Tensor::from_vec(t.to_vec(), t.dims().to_vec(), dev)
}

/// Which op of the conv family a check runs.
#[derive(Clone, Copy, Debug)]
enum Pass {
    Forward,
    InputGrad,
    WeightGrad,
}

/// Runs `pass` of `case` on `dev` at precision `prec` with operands `a`
/// (x, or gy for the input gradient) and `b` (w, or gy for the weight gradient).
fn run(pass: Pass, case: &Case, a: &Tensor, b: &Tensor, prec: Precision) -> Result<Tensor> {
    let p = Conv2d {
        precision: prec,
        ..case.p
    };
    match pass {
        Pass::Forward => conv2d(a, b, p),
        Pass::InputGrad => conv2d_input_grad(a, b, [case.x[2], case.x[3]], p),
        Pass::WeightGrad => conv2d_weight_grad(a, b, case.k, p),
    }
}

/// Each pass of each case at each precision: the two comparisons of the
/// module docs. Bounds:
/// - same operands: each output sums K products in FP32, in another order
///   than the CPU; each partial sum is off by at most 2⁻²⁴ of its magnitude,
///   ≤ K·max|a|·max|b|, so |err| ≤ K·2⁻²⁴·K·max|a|·max|b|;
/// - FP32 reference: each product of rounded operands is within (2u + u²)
///   of the exact one relative to |a||b|; the K rounding errors are
///   independent with mean ≈ 0, so the sum is off by about 2u·√K·max|a|·max|b|;
///   we allow c = 4 (twice that).
fn check(pass: Pass) {
    let _g = stylegan2::no_grad();
    for (ci, case) in cases().iter().enumerate() {
        let [n, c, h, w] = case.x;
        let [kh, kw] = case.k;
        let cg = c / case.p.groups;
        let x = Tensor::from_vec(
            values(n * c * h * w, 21 + ci as u64),
            case.x.to_vec(),
            Device::Cpu,
        )
        .unwrap();
        let wt = Tensor::from_vec(
            values(case.o * cg * kh * kw, 31 + ci as u64),
            vec![case.o, cg, kh, kw],
            Device::Cpu,
        )
        .unwrap();
        let y = conv2d(&x, &wt, case.p).unwrap();
        let gy = Tensor::from_vec(
            values(y.numel(), 41 + ci as u64),
            y.dims().to_vec(),
            Device::Cpu,
        )
        .unwrap();
        let (oh, ow) = (y.dims()[2], y.dims()[3]);
        let og = case.o / case.p.groups;
        let (a, b, k) = match pass {
            Pass::Forward => (&x, &wt, cg * kh * kw),
            Pass::InputGrad => (&gy, &wt, og * kh * kw),
            Pass::WeightGrad => (&x, &gy, n * oh * ow),
        };
        let k = k as f64;
        let scale = max_abs(a) * max_abs(b);
        let want = run(pass, case, a, b, Precision::F32).unwrap();
        for (dev, prec) in kernel_devices()
            .into_iter()
            .flat_map(|d| PRECISIONS.map(|p| (d, p)))
        {
            let what = format!(
                "{pass:?} case {ci} {:?} → {:?} {prec} on {dev}",
                case.x,
                y.dims()
            );
            let (sa, sb) = (to(a, dev).unwrap(), to(b, dev).unwrap());
            let got = run(pass, case, &sa, &sb, prec).unwrap();
            if dev == Device::Sim {
                let same = run(
                    pass,
                    case,
                    &rounded(a, prec).unwrap(),
                    &rounded(b, prec).unwrap(),
                    Precision::F32,
                )
                .unwrap();
                assert_within(
                    &format!("{what} vs rounded operands"),
                    &got,
                    &same,
                    k * k * 2f64.powi(-24) * scale,
                );
            }
            assert_within(
                &format!("{what} vs FP32"),
                &got,
                &want,
                4.0 * prec.unit_roundoff() * k.sqrt() * scale,
            );
        }
    }
}

#[test]
fn tc_conv2d_forward() {
    check(Pass::Forward);
}

#[test]
fn tc_conv2d_input_grad() {
    check(Pass::InputGrad);
}

#[test]
fn tc_conv2d_weight_grad() {
    check(Pass::WeightGrad);
}

/// The op's backward runs its gradients at the op's precision: dL/dx and
/// dL/dw of `⟨conv2d(x, w), r⟩` on Sim at BF16 match the two gradient ops
/// called directly at BF16 (the same kernels, so to the bit).
#[test]
fn tc_conv2d_backward_uses_the_precision() {
    let dev = Device::Sim;
    let p = Conv2d {
        padding: [1, 1],
        precision: Precision::BF16,
        ..Conv2d::default()
    };
    let x = Tensor::from_vec(values(2 * 5 * 6 * 4, 51), vec![2, 5, 6, 4], dev).unwrap();
    let w = Tensor::from_vec(values(7 * 5 * 9, 52), vec![7, 5, 3, 3], dev).unwrap();
    x.set_requires_grad(true).unwrap();
    w.set_requires_grad(true).unwrap();
    let y = conv2d(&x, &w, p).unwrap();
    let r = Tensor::from_vec(values(y.numel(), 53), y.dims().to_vec(), dev).unwrap();
    let g = stylegan2::grad(
        &[y],
        &[x.clone(), w.clone()],
        Some(std::slice::from_ref(&r)),
        false,
    )
    .unwrap();
    let _ng = stylegan2::no_grad();
    let dx = conv2d_input_grad(&r, &w, [6, 4], p).unwrap();
    let dw = conv2d_weight_grad(&x, &r, [3, 3], p).unwrap();
    assert_eq!(g[0].as_ref().unwrap().to_vec(), dx.to_vec());
    assert_eq!(g[1].as_ref().unwrap().to_vec(), dw.to_vec());
    let f32_dx = conv2d_input_grad(
        &r,
        &w,
        [6, 4],
        Conv2d {
            precision: Precision::F32,
            ..p
        },
    )
    .unwrap();
    assert_ne!(
        f32_dx.to_vec(),
        dx.to_vec(),
        "BF16 rounding shows in the input gradient"
    );
}

/// The discriminator's forward takes the precision (DiscriminatorOptions):
/// the tiny preset at 8×8 on Sim at BF16 gives logits that differ from its
/// FP32 logits (the tensor-core kernels ran) by no more than operand
/// rounding explains. The per-kernel bounds are checked above; through five
/// layers we only ask for 5% of the logits' scale (BF16's u = 2⁻⁸ ≈ 0.4%
/// per operand; a wrong kernel is off by O(1)).
#[test]
fn discriminator_forward_takes_the_precision() {
    use stylegan2::model::{Discriminator, DiscriminatorOptions, ModelConfig};
    use stylegan2::nn::Ctx;
    let _g = stylegan2::no_grad();
    let cfg = ModelConfig::preset("tiny", 8, 3, 0).unwrap();
    let d = Discriminator::new(&cfg.discriminator, &mut stylegan2::rng(5), Device::Sim).unwrap();
    let img = Tensor::from_vec(values(2 * 3 * 8 * 8, 61), vec![2, 3, 8, 8], Device::Sim).unwrap();
    let at = |precision| {
        d.forward_with(
            &img,
            None,
            DiscriminatorOptions { precision },
            &mut Ctx::new(),
        )
        .unwrap()
        .to_vec()
    };
    let (exact, bf16) = (at(Precision::F32), at(Precision::BF16));
    let scale = exact.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    assert_ne!(
        exact, bf16,
        "BF16 changed nothing: the tensor-core kernels did not run"
    );
    for (e, b) in exact.iter().zip(&bf16) {
        assert!(
            (e - b).abs() <= 0.05 * scale,
            "logit {b} at BF16 vs {e} at FP32"
        );
    }
}

/// An FP16 block's activation reaches `conv2d` (and, in its backward,
/// `conv2d_weight_grad`) as F16 storage: the forward's `_xh` kernel reads it
/// as it is, every other kernel widens it into a temporary. Widening F16 is
/// exact and the FP16 operand of a widened value is that value, so the
/// result must equal, bit for bit, the same op on the widened input, and so
/// must every first-order gradient (dL/dx as F16: the FP32 gradient rounded
/// once, as a cast's backward rounds it). Both ops that take x, each case
/// above (batch 1 and 3; channels 3, 5, 67; 17×17, non-square; stride 2;
/// groups), with and without create_graph.
#[test]
fn tc_forward_reads_f16_input_as_stored() {
    use stylegan2::grad;
    use stylegan2::DType;
    let dev = Device::Sim;
    let bits = |t: &Tensor| -> Vec<u32> {
        let v = t.to_dtype(DType::F32).unwrap().to_vec();
        v.into_iter().map(f32::to_bits).collect()
    };
    for (ci, case) in cases().iter().enumerate() {
        let p = Conv2d {
            precision: Precision::F16,
            ..case.p
        };
        let [n, c, h, w] = case.x;
        let wd = [case.o, c / p.groups, case.k[0], case.k[1]];
        let seed = 100 + 10 * ci as u64;
        let leaf = |dims: Vec<usize>, s: u64| -> Tensor {
            let numel = dims.iter().product();
            let t = Tensor::from_vec(values(numel, s), dims, dev).unwrap();
            t.set_requires_grad(true).unwrap();
            t
        };
        // Each op of x, its result and the gradients of ⟨result, r⟩ w.r.t.
        // (x, other operand), with x stored as `dtype`.
        let run = |weight_grad: bool, dtype: DType, create_graph: bool| -> (Tensor, Vec<Tensor>) {
            // The same F16 values either way: widened, or as stored.
            let x0 = leaf(vec![n, c, h, w], seed);
            let x = x0.to_dtype(DType::F16).unwrap().to_dtype(dtype).unwrap();
            let y = if weight_grad {
                let gy_dims = conv2d(&x0, &leaf(wd.to_vec(), seed + 1), p).unwrap();
                let gy = leaf(gy_dims.dims().to_vec(), seed + 2);
                let z = conv2d_weight_grad(&x, &gy, case.k, p).unwrap();
                (z, gy)
            } else {
                let wt = leaf(wd.to_vec(), seed + 1);
                (conv2d(&x, &wt, p).unwrap(), wt)
            };
            let (y, other) = y;
            assert_eq!(y.dtype(), DType::F32);
            let r = Tensor::from_vec(values(y.numel(), seed + 3), y.dims().to_vec(), dev).unwrap();
            let g = grad(
                std::slice::from_ref(&y),
                &[x.clone(), other],
                Some(&[r]),
                create_graph,
            )
            .unwrap();
            let g: Vec<Tensor> = g.into_iter().map(|g| g.expect("a gradient")).collect();
            assert_eq!(g[0].dtype(), dtype, "dL/dx has the input's dtype");
            (y, g)
        };
        for weight_grad in [false, true] {
            for create_graph in [false, true] {
                let what = format!(
                    "case {ci} {:?} {}, create_graph {create_graph}",
                    case.x,
                    if weight_grad {
                        "conv2d_weight_grad"
                    } else {
                        "conv2d"
                    }
                );
                let (y16, g16) = run(weight_grad, DType::F16, create_graph);
                let (y32, g32) = run(weight_grad, DType::F32, create_graph);
                assert_eq!(bits(&y16), bits(&y32), "{what}: result");
                let dx32 = g32[0].to_dtype(DType::F16).unwrap();
                assert_eq!(bits(&g16[0]), bits(&dx32), "{what}: dL/dx");
                assert_eq!(
                    bits(&g16[1]),
                    bits(&g32[1]),
                    "{what}: second operand's gradient"
                );
            }
        }
    }
}

/// The ops take F16 only for x: an F16 weight or output gradient is refused
/// by name.
#[test]
fn conv_refuses_f16_other_operands() {
    use stylegan2::DType;
    let x = Tensor::from_vec(values(75, 1), vec![1, 3, 5, 5], Device::Sim).unwrap();
    let w = Tensor::from_vec(values(45, 2), vec![5, 3, 1, 3], Device::Sim).unwrap();
    let w16 = w.to_dtype(DType::F16).unwrap();
    let err = conv2d(&x, &w16, Conv2d::default()).unwrap_err().to_string();
    assert!(err.contains("conv2d") && err.contains("f16"), "{err}");
    let gy = conv2d(&x, &w, Conv2d::default())
        .unwrap()
        .to_dtype(DType::F16)
        .unwrap();
    let err = conv2d_weight_grad(&x, &gy, [1, 3], Conv2d::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv2d_weight_grad") && err.contains("f16"),
        "{err}"
    );
}
