//! Mixed precision (official `num_fp16_res`): the 2-byte dtypes and their
//! cast, the ops' dtype check, and the FP16 blocks of G and D on the
//! simulator against FP32.

mod common;

use half::{bf16, f16};
use stylegan2::{grad, DType, Device, Tensor};

/// Values that exercise rounding: ties, the F16 subnormal range and
/// overflow, and FP32 values between representable half values.
fn edge_values() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        65504.0,
        65519.0,                    // rounds down to 65504
        65520.0,                    // tie at the top: rounds to +inf in F16
        -70000.0,                   // overflow: −inf in F16, finite in BF16
        1e-8,                       // below F16's smallest subnormal/2: 0
        3e-8,                       // rounds to the smallest F16 subnormal 2^-24
        6.1e-5,                     // F16 subnormal range
        1.0 + 2f32.powi(-11),       // F16 tie: to even (1.0)
        1.0 + 3.0 * 2f32.powi(-11), // F16 tie: to even (1 + 2^-9)
        1.0 + 2f32.powi(-8),        // BF16 tie: to even (1.0)
        1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    v.extend(common::values(200, 3).iter().map(|x| x * 300.0));
    v
}

fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

fn bf16_round(x: f32) -> f32 {
    bf16::from_f32(x).to_f32()
}

#[test]
fn cast_rounds_to_nearest_even_on_every_device() {
    let x = edge_values();
    let n = x.len();
    for device in [Device::Cpu, Device::Sim] {
        let t = Tensor::from_vec(x.clone(), vec![n], device).unwrap();
        assert_eq!(t.dtype(), DType::F32);
        for (dtype, round) in [
            (DType::F16, f16_round as fn(f32) -> f32),
            (DType::BF16, bf16_round),
        ] {
            let h = t.to_dtype(dtype).unwrap();
            assert_eq!(h.dtype(), dtype, "{device}");
            assert_eq!(h.device(), device);
            assert_eq!(h.dims(), [n]);
            let back = h.to_dtype(DType::F32).unwrap();
            assert_eq!(back.dtype(), DType::F32);
            for (k, ((&xi, hi), bi)) in x.iter().zip(h.to_vec()).zip(back.to_vec()).enumerate() {
                let want = round(xi);
                // Bitwise: the kernels and the CPU round as the `half` crate.
                assert_eq!(
                    hi.to_bits(),
                    want.to_bits(),
                    "{device} {dtype} [{k}] {xi}: to_vec {hi}, want {want}"
                );
                assert_eq!(
                    bi.to_bits(),
                    want.to_bits(),
                    "{device} {dtype} [{k}] {xi} back"
                );
            }
            // Exact round trip of values already in the format.
            let again = back.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap();
            assert_eq!(again.to_vec(), back.to_vec(), "{device} {dtype}");
        }
        // F16 → BF16 goes through F32.
        let hb = t
            .to_dtype(DType::F16)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let want: Vec<f32> = x.iter().map(|&v| bf16_round(f16_round(v))).collect();
        assert_eq!(hb.dtype(), DType::BF16);
        assert_eq!(hb.to_vec(), want, "{device}");
        // Same dtype: the tensor itself.
        assert_eq!(t.to_dtype(DType::F32).unwrap().id(), t.id());
    }
    assert_eq!(f16_round(65520.0), f32::INFINITY);
    assert_eq!(f16_round(1.0 + 2f32.powi(-11)), 1.0);
    assert_eq!(DType::parse("bf16").unwrap(), DType::BF16);
    assert!(DType::parse("f64")
        .unwrap_err()
        .to_string()
        .contains("f32, f16 or bf16"));
}

/// `L = Σ c · y²` with `y = f32(f16(x))`: the cast's gradient is the
/// identity up to rounding (as torch's `.to()`): the gradient passes the
/// half tensor in half, so `∂L/∂x = r(2 c y)` (y and the product rounded)
/// and, through the recorded backward, `∂(Σ ∂L/∂x)/∂x = r(2 c)`.
#[test]
fn cast_gradients_first_and_second_order() {
    for device in [Device::Cpu, Device::Sim] {
        for (dtype, r) in [
            (DType::F16, f16_round as fn(f32) -> f32),
            (DType::BF16, bf16_round),
        ] {
            let x = common::leaf_on(&[3, 5], 1, device);
            let c = Tensor::from_vec(common::values(15, 2), vec![3, 5], device).unwrap();
            let h = x.to_dtype(dtype).unwrap();
            let y = h.to_dtype(DType::F32).unwrap();
            let loss = y.square().unwrap().mul(&c).unwrap().sum_all().unwrap();
            let g = grad(&[loss], std::slice::from_ref(&x), None, true).unwrap()[0]
                .clone()
                .unwrap();
            assert_eq!(g.dtype(), DType::F32, "the gradient has the input's dtype");
            let (yv, cv) = (y.to_vec(), c.to_vec());
            let want: Vec<f32> = yv.iter().zip(&cv).map(|(y, c)| r(2.0 * c * y)).collect();
            // Exact: both sides round the same f32 product 2·c·y.
            assert_eq!(g.to_vec(), want, "{device} {dtype} first order");
            let g2 = grad(
                &[g.sum_all().unwrap()],
                std::slice::from_ref(&x),
                None,
                false,
            )
            .unwrap()[0]
                .clone()
                .unwrap();
            let want2: Vec<f32> = cv.iter().map(|c| r(2.0 * c)).collect();
            assert_eq!(g2.to_vec(), want2, "{device} {dtype} second order");
            // The gradient reaching the half tensor is half.
            let gh = grad(
                &[y.sum_all().unwrap()],
                std::slice::from_ref(&h),
                None,
                false,
            )
            .unwrap()[0]
                .clone()
                .unwrap();
            assert_eq!(gh.dtype(), dtype);
        }
    }
}

#[test]
fn ops_refuse_half_inputs_naming_the_op() {
    for device in [Device::Cpu, Device::Sim] {
        let x = Tensor::from_vec(common::values(24, 4), vec![1, 2, 3, 4], device).unwrap();
        let h = x.to_dtype(DType::F16).unwrap();
        let w = Tensor::from_vec(common::values(18, 5), vec![1, 2, 3, 3], device).unwrap();
        let cases: Vec<(&str, stylegan2::Result<Tensor>)> = vec![
            ("add", h.add(&x)),
            ("mul", x.mul(&h)),
            ("exp", h.exp()),
            ("sum", h.sum_all()),
            ("reshape", h.reshape(vec![24])),
            (
                "conv2d",
                stylegan2::ops::conv::conv2d(&h, &w, stylegan2::ops::conv::Conv2d::default()),
            ),
        ];
        for (op, r) in cases {
            let e = r.expect_err(op).to_string();
            assert!(
                e.starts_with(op) && e.contains("f16") && e.contains("to_dtype"),
                "{device} {op}: {e}"
            );
        }
        let b = x.to_dtype(DType::BF16).unwrap();
        let e = b.neg().unwrap_err().to_string();
        assert!(e.contains("neg") && e.contains("bf16"), "{e}");
        // assign keeps a tensor's dtype.
        let e = x.assign(&h).unwrap_err().to_string();
        assert!(e.contains("assign") && e.contains("f16"), "{e}");
    }
}
