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
        // conv2d takes F16 x (an FP16 block's activations), not an F16 weight.
        let hw = w.to_dtype(DType::F16).unwrap();
        let cases: Vec<(&str, stylegan2::Result<Tensor>)> = vec![
            ("add", h.add(&x)),
            ("mul", x.mul(&h)),
            ("exp", h.exp()),
            ("sum", h.sum_all()),
            ("reshape", h.reshape(vec![24])),
            (
                "conv2d",
                stylegan2::ops::conv::conv2d(&x, &hw, stylegan2::ops::conv::Conv2d::default()),
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

use stylegan2::model::{Architecture, Generator, ModelConfig, SynthesisOptions, Truncation};
use stylegan2::nn::{Ctx, NoiseMode, StateDict};

/// F16's unit roundoff 2^-11.
const U16: f64 = 1.0 / 2048.0;

/// A small mixed-precision configuration: 16², 32 channels, the official
/// clamp, `num_fp16_res = 2` (blocks 8 and 16 in FP16, 4 in FP32).
fn small_cfg(arch_g: Architecture) -> ModelConfig {
    let mut cfg = ModelConfig::preset("tiny", 16, 3, 0).unwrap();
    for (base, max) in [
        (
            &mut cfg.generator.channel_base,
            &mut cfg.generator.channel_max,
        ),
        (
            &mut cfg.discriminator.channel_base,
            &mut cfg.discriminator.channel_max,
        ),
    ] {
        *base = 512;
        *max = 32;
    }
    cfg.generator.architecture = arch_g;
    cfg.generator.conv_clamp = Some(256.0);
    cfg.discriminator.conv_clamp = Some(256.0);
    cfg.generator.num_fp16_res = 2;
    cfg.discriminator.num_fp16_res = 2;
    cfg.validate().unwrap();
    cfg
}

fn rms(v: &[f32]) -> f64 {
    (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// `(rms(got − want) / rms(want), max|got − want| / max|want|)`.
fn rel_errors(got: &[f32], want: &[f32]) -> (f64, f64) {
    let d: Vec<f32> = got.iter().zip(want).map(|(a, b)| a - b).collect();
    let maxw = want.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    let maxd = d.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    (rms(&d) / rms(want), maxd / maxw)
}

/// The error bound of `layers` FP16 layers in sequence, relative to the
/// output. A layer rounds three things to F16: its input, its weight (the
/// products' operands) and its result. Rounding to nearest has a relative
/// error uniform within ±u (u = 2^-11), rms ≤ u/√3; a product's and a sum's
/// relative rms error is that of its terms when the errors are independent
/// (FP32 accumulation adds nothing at this scale), so a layer's output is
/// off by ≤ √3 · u/√3 = u rms. Demodulation keeps each layer's gain near 1
/// and the errors of successive layers add at worst linearly: rms ≤ L·u.
/// The largest element error is taken as 4× that relative to the largest
/// output (each error is a sum of many independent terms: 4σ).
/// (Measured: Skip 1.2u, Resnet 2.0u over 6 layers; BF16 operands, 8×
/// coarser, would exceed the bound.)
fn fp16_bound(layers: usize) -> (f64, f64) {
    let rms = U16 * layers as f64;
    (rms, 4.0 * rms)
}

/// G at `num_fp16_res = 2` on the simulator against the FP32 CPU reference:
/// within the FP16 bound, above the FP32 path's error (so FP16 really ran),
/// and the FP16 blocks' activations are F16.
#[test]
fn generator_fp16_blocks_on_sim_match_fp32_within_the_fp16_bound() {
    for arch in [Architecture::Skip, Architecture::Resnet] {
        let cfg = small_cfg(arch);
        let g_cpu = Generator::new(&cfg.generator, &mut stylegan2::rng(5), Device::Cpu).unwrap();
        let g_sim = Generator::new(&cfg.generator, &mut stylegan2::rng(5), Device::Sim).unwrap();
        let z = common::values(2 * 64, 9);
        let opts = SynthesisOptions::noise(NoiseMode::Const);
        let run = |g: &Generator, device: Device, force_fp32: bool, trace: &mut StateDict| {
            let z = Tensor::from_vec(z.clone(), vec![2, 64], device).unwrap();
            let mut ctx = Ctx::new().with_trace(trace).force_fp32(force_fp32);
            g.forward(&z, None, Truncation::default(), opts, &mut ctx)
                .unwrap()
        };
        let want = run(&g_cpu, Device::Cpu, false, &mut StateDict::new()).to_vec();
        let mut trace = StateDict::new();
        let img = run(&g_sim, Device::Sim, false, &mut trace);
        assert_eq!(img.dtype(), DType::F32, "the image path is FP32");
        let dtype_of = |k: &str| trace.get(k).unwrap_or_else(|| panic!("{k}")).dtype();
        assert_eq!(dtype_of("synthesis.b4.conv1"), DType::F32);
        assert_eq!(dtype_of("synthesis.b8.conv0"), DType::F16);
        assert_eq!(dtype_of("synthesis.b16.conv1"), DType::F16);
        assert_eq!(dtype_of("synthesis.b16.torgb"), DType::F32);
        let got = img.to_vec();
        assert!(got.iter().all(|v| v.is_finite()));
        // conv0, conv1 and torgb of blocks 8 and 16.
        let (b_rms, b_max) = fp16_bound(6);
        let (e_rms, e_max) = rel_errors(&got, &want);
        eprintln!(
            "{arch:?}: FP16 rel rms {e_rms:.2e} max {e_max:.2e}; bound {b_rms:.2e} {b_max:.2e}"
        );
        assert!(
            e_rms <= b_rms && e_max <= b_max,
            "{arch:?}: rms {e_rms:.3e} max {e_max:.3e}"
        );
        // force_fp32 (official): the same network in FP32 on the simulator.
        let f32_img = run(&g_sim, Device::Sim, true, &mut StateDict::new()).to_vec();
        let (f_rms, _) = rel_errors(&f32_img, &want);
        assert!(f_rms < 1e-5, "{arch:?}: force_fp32 rms {f_rms:.3e}");
        assert!(
            e_rms > 10.0 * f_rms,
            "{arch:?}: FP16 did not run ({e_rms:.3e} vs {f_rms:.3e})"
        );
    }
}

fn trainer(device: Device, num_fp16_res: usize) -> stylegan2::train::Trainer {
    let dir = std::env::temp_dir().join(format!(
        "sg2_mixed_{}_{num_fp16_res}_{}",
        device.to_string().replace(':', ""),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    stylegan2::train::Trainer::new(stylegan2::train::TrainOptions {
        preset: Some("tiny".into()),
        resolution: Some(8),
        data: "synthetic:64".into(),
        batch: Some(4),
        kimg: 1.0,
        snap_kimg: 0.0,
        grid: 4,
        seed: 3,
        device,
        run_dir: Some(dir),
        num_fp16_res: Some(num_fp16_res),
        ..Default::default()
    })
    .unwrap()
}

/// One training step (step 0: Gmain, Greg, Dmain, Dreg) at 8×8 with the
/// block 8 of both networks in FP16 (`num_fp16_res = 1`) on the simulator, against the same
/// networks (same seed, same inputs, the official clamp) computed in FP32 on
/// the CPU.
///
/// Bound on the parameters. StyleGAN2's Adam has β1 = 0, so a step moves
/// every element by `lr·g/√v̂` = ±lr when only one gradient was seen (and
/// by at most `lr·√(1/(1−β2))`·… with two: at most 2·lr per step, twice
/// with Gmain and Greg): the direction follows the gradient's sign. FP16
/// perturbs a gradient by a relative rms of about L·u (see `fp16_bound`),
/// so only elements whose gradient is within that of zero can move
/// differently. Hence: (1) no element is further than Adam's largest move,
/// 2·lr per optimizer step, from the FP32 result (a NaN or a blow-up fails
/// this); (2) the elements that moved differently by more than lr/2 are at
/// most 5% of each network (a wrong FP16 path, e.g. missing the clamp or
/// the safeguard, or a wrong gradient through a cast, changes most of them;
/// measured: 0.4% of G, 0.3% of D).
#[test]
fn one_mixed_precision_training_step_on_sim_stays_near_fp32() {
    let mut cpu = trainer(Device::Cpu, 1);
    let mut sim = trainer(Device::Sim, 1);
    assert_eq!(cpu.config.generator.conv_clamp, Some(256.0));
    assert!(cpu.precision_summary().starts_with("fp32"));
    assert_eq!(
        sim.precision_summary(),
        "mixed: G fp16 from 8x8, D fp16 from 8x8"
    );
    cpu.step().unwrap();
    sim.step().unwrap();
    // Every loss and statistic is finite (the step also refuses otherwise).
    let stats = sim.stats.means();
    assert!(stats.iter().any(|(n, _)| n.contains("loss")), "{stats:?}");
    for (name, v) in &stats {
        assert!(v.is_finite(), "{name} = {v}");
    }
    let lr = cpu.config.training.lr as f64;
    for (net, a, b, opt) in [
        (
            "G",
            &cpu.g as &dyn stylegan2::nn::Module,
            &sim.g as &dyn stylegan2::nn::Module,
            &cpu.opt_g,
        ),
        ("D", &cpu.d, &sim.d, &cpu.opt_d),
    ] {
        let steps: std::collections::HashMap<String, u64> = opt
            .params()
            .iter()
            .zip(opt.steps())
            .map(|((n, _), &s)| (n.clone(), s))
            .collect();
        let (mut total, mut moved) = (0usize, 0usize);
        for ((name, p), (_, q)) in a.parameters().iter().zip(b.parameters().iter()) {
            let s = steps.get(name).copied().unwrap_or(0) as f64;
            for (x, y) in p.to_vec().iter().zip(q.to_vec()) {
                assert!(y.is_finite(), "{net}.{name} is not finite");
                let d = (*x as f64 - y as f64).abs();
                assert!(
                    d <= 2.0 * lr * s + 1e-6,
                    "{net}.{name}: moved {d:.3e} away from FP32"
                );
                moved += (d > 0.5 * lr) as usize;
                total += 1;
            }
        }
        let frac = moved as f64 / total as f64;
        eprintln!(
            "{net}: {moved} of {total} elements ({:.3}%) moved differently by > lr/2",
            100.0 * frac
        );
        assert!(
            frac <= 0.05,
            "{net}: {:.2}% of the elements moved differently",
            100.0 * frac
        );
    }
    std::fs::remove_dir_all(&cpu.run_dir).ok();
    std::fs::remove_dir_all(&sim.run_dir).ok();
}

/// Official `--fp32`: mixed precision off in both networks (no FP16 blocks,
/// no clamp) whatever the preset; it conflicts with asking for FP16 blocks.
#[test]
fn fp32_option_turns_mixed_precision_off() {
    let dir = std::env::temp_dir().join(format!("sg2_fp32_{}", std::process::id()));
    let opts = |fp32: bool, n: Option<usize>| stylegan2::train::TrainOptions {
        preset: Some("auto".into()),
        resolution: Some(8),
        data: "synthetic:8".into(),
        batch: Some(4),
        kimg: 1.0,
        grid: 1,
        device: Device::Sim,
        run_dir: Some(dir.clone()),
        fp32,
        num_fp16_res: n,
        ..Default::default()
    };
    let t = stylegan2::train::Trainer::new(opts(false, None)).unwrap();
    assert_eq!(t.config.generator.num_fp16_res, 4);
    assert_eq!(
        t.precision_summary(),
        "mixed: G fp16 from 8x8, D fp16 from 8x8"
    );
    let t = stylegan2::train::Trainer::new(opts(true, None)).unwrap();
    assert_eq!(t.config.generator.num_fp16_res, 0);
    assert_eq!(t.config.discriminator.num_fp16_res, 0);
    assert_eq!(t.config.generator.conv_clamp, None);
    assert_eq!(t.config.discriminator.conv_clamp, None);
    assert_eq!(t.precision_summary(), "fp32");
    let e = stylegan2::train::Trainer::new(opts(true, Some(2)))
        .err()
        .expect("--fp32 with FP16 blocks")
        .to_string();
    assert!(
        e.contains("--fp32") && e.contains("num_fp16_res = 2"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
