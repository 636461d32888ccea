//! The fused modulated convolution (kernels/modconv.cu) on every device: the
//! fused forward with each part of its epilogue, and its first-order
//! gradients w.r.t. x, weight, styles, noise, noise strength and bias, on the
//! simulator (always) and GPU 0 (when there is one) against the CPU, where the
//! fused op is the composed reference (modconv → noise_inject → bias_act).
//! Shapes are multiples of no tile (the forward tiles 32 channels × 8×16
//! pixels, the weight gradient 64 × 64).

mod common;
use common::{assert_close, golden, on_every_device, values, with_grads};
use stylegan2::ops::bias_act::BiasAct;
use stylegan2::ops::modconv::{
    modulated_conv2d, modulated_conv2d_fused, Epilogue, ModConv, ModConvPath,
};
use stylegan2::ops::precision::Precision;
use stylegan2::ops::upfirdn::setup_filter;
use stylegan2::{grad, Device, Result, Tensor};

/// (batch, in channels, out channels, height, width).
const SHAPES: [[usize; 5]; 6] = [
    [1, 1, 1, 1, 1],
    [3, 3, 5, 5, 5],
    [1, 5, 67, 17, 17],
    [3, 67, 3, 5, 7],
    [1, 67, 5, 17, 13],
    [3, 5, 1, 1, 5],
];

/// Forward: each output sums C·k² ≤ 603 products of O(1) terms, demodulated
/// to O(1); fp32 summation-order differences are ~√603·6e-8 ≈ 1.5e-6
/// relative, so 1e-4 of max|y| (plus 1e-5 absolute) has margin without
/// hiding a wrong index (an O(1) error).
const FWD: (f64, f64) = (1e-5, 1e-4);
/// Gradients reduce over up to N·OH·OW·O ≈ 3·34·34·5 terms (weight, styles):
/// ~√17000·6e-8 ≈ 8e-6 relative to the summands, which can exceed max|grad|
/// by a few times, hence 3e-4.
const GRAD: (f64, f64) = (1e-5, 3e-4);

fn cases() -> [(&'static str, ModConv, usize); 3] {
    [
        ("3x3 up1", ModConv::conv3x3(), 3),
        ("3x3 up2", ModConv::conv3x3_up2(), 3),
        ("1x1 nodemod", ModConv::torgb(), 1),
    ]
}

/// Which parts of the epilogue a test uses.
#[derive(Clone, Copy, Debug)]
struct Parts {
    /// None, Some(true): one noise plane per sample, Some(false): shared.
    noise: Option<bool>,
    bias: bool,
    lrelu: bool,
    gain: f32,
    clamp: Option<f32>,
}

const EPILOGUES: [Parts; 5] = [
    Parts {
        noise: None,
        bias: false,
        lrelu: false,
        gain: 1.0,
        clamp: None,
    },
    Parts {
        noise: Some(true),
        bias: false,
        lrelu: false,
        gain: 1.0,
        clamp: None,
    },
    Parts {
        noise: Some(false),
        bias: true,
        lrelu: false,
        gain: 1.0,
        clamp: None,
    },
    Parts {
        noise: None,
        bias: true,
        lrelu: true,
        gain: std::f32::consts::SQRT_2,
        clamp: None,
    },
    // SynthesisLayer with a layer gain and a clamp that some outputs reach.
    Parts {
        noise: Some(true),
        bias: true,
        lrelu: true,
        gain: 1.3 * std::f32::consts::SQRT_2,
        clamp: Some(0.9),
    },
];

/// Leaf tensors of one test: x, weight, styles (≈ 1 ± 0.3, as the golden
/// file's), filter, and the epilogue's noise, strength, bias.
struct Inputs {
    x: Tensor,
    w: Tensor,
    s: Tensor,
    f: Tensor,
    noise: Option<Tensor>,
    strength: Tensor,
    bias: Tensor,
}

fn leaf(v: Vec<f32>, dims: &[usize], dev: Device) -> Result<Tensor> {
    let t = Tensor::from_vec(v, dims.to_vec(), dev)?;
    t.set_requires_grad(true)?;
    Ok(t)
}

fn inputs(
    [n, i, o, h, w]: [usize; 5],
    k: usize,
    p: ModConv,
    parts: Parts,
    dev: Device,
) -> Result<Inputs> {
    let (oh, ow) = (h * p.up, w * p.up);
    let x = leaf(values(n * i * h * w, 1), &[n, i, h, w], dev)?;
    let wt = leaf(values(o * i * k * k, 2), &[o, i, k, k], dev)?;
    let s = leaf(
        values(n * i, 3).iter().map(|v| 1.0 + 0.3 * v).collect(),
        &[n, i],
        dev,
    )?;
    let noise = match parts.noise {
        Some(per_sample) => {
            let nn = if per_sample { n } else { 1 };
            Some(leaf(values(nn * oh * ow, 4), &[nn, 1, oh, ow], dev)?)
        }
        None => None,
    };
    Ok(Inputs {
        x,
        w: wt,
        s,
        f: setup_filter(&[1.0, 3.0, 3.0, 1.0], dev)?,
        noise,
        strength: leaf(vec![0.7], &[], dev)?,
        bias: leaf(values(o, 5).iter().map(|v| 0.5 * v).collect(), &[o], dev)?,
    })
}

fn run(t: &Inputs, p: ModConv, parts: Parts) -> Result<Tensor> {
    let epi = Epilogue {
        noise: t.noise.as_ref().map(|nz| (nz, &t.strength)),
        bias: parts.bias.then_some(&t.bias),
        act: BiasAct {
            act: if parts.lrelu {
                stylegan2::ops::bias_act::Act::Lrelu { alpha: 0.2 }
            } else {
                stylegan2::ops::bias_act::Act::Linear
            },
            gain: parts.gain,
            clamp: parts.clamp,
        },
    };
    modulated_conv2d_fused(&t.x, &t.w, &t.s, Some(&t.f), p, &epi)
}

/// `y` and the first-order gradients of `⟨y, r⟩` w.r.t. `xs` (no
/// create_graph: the fused op's backward kernels); zeros where none.
fn with_grads1(y: Tensor, xs: &[&Tensor]) -> Result<Vec<Tensor>> {
    let r = Tensor::from_vec(values(y.numel(), 77), y.dims().to_vec(), y.device())?;
    let inputs: Vec<Tensor> = xs.iter().map(|&x| x.clone()).collect();
    let gs = grad(std::slice::from_ref(&y), &inputs, Some(&[r]), false)?;
    let mut out = vec![y];
    for (g, x) in gs.into_iter().zip(xs) {
        out.push(match g {
            Some(g) => g,
            None => Tensor::zeros(x.dims().to_vec(), x.device()),
        });
    }
    Ok(out)
}

#[test]
fn fused_forward_every_case_and_epilogue() {
    let _g = stylegan2::no_grad();
    for (name, p, k) in cases() {
        for shape in SHAPES {
            for parts in EPILOGUES {
                on_every_device(
                    &format!("{name} {shape:?} {parts:?}"),
                    FWD.0,
                    FWD.1,
                    |dev| Ok(vec![run(&inputs(shape, k, p, parts, dev)?, p, parts)?]),
                );
            }
        }
    }
}

#[test]
fn fused_first_order_gradients() {
    for (name, p, k) in cases() {
        for shape in SHAPES {
            for parts in [EPILOGUES[0], EPILOGUES[2], EPILOGUES[4]] {
                on_every_device(
                    &format!("{name} {shape:?} {parts:?} grads"),
                    GRAD.0,
                    GRAD.1,
                    |dev| {
                        let t = inputs(shape, k, p, parts, dev)?;
                        let y = run(&t, p, parts)?;
                        let mut xs = vec![&t.x, &t.w, &t.s];
                        if let Some(nz) = &t.noise {
                            xs.extend([nz, &t.strength]);
                        }
                        if parts.bias {
                            xs.push(&t.bias);
                        }
                        with_grads1(y, &xs)
                    },
                );
            }
        }
    }
}

/// Gradients w.r.t. a subset of the inputs (the others are constants): the
/// backward computes only what is asked, and each part still matches.
#[test]
fn fused_gradients_of_subsets() {
    let (name, p, k) = cases()[1];
    let shape = [3, 5, 3, 5, 7];
    let parts = EPILOGUES[4];
    for which in 0..6 {
        on_every_device(
            &format!("{name} {shape:?} only input {which}"),
            GRAD.0,
            GRAD.1,
            |dev| {
                let t = inputs(shape, k, p, parts, dev)?;
                let all = [
                    &t.x,
                    &t.w,
                    &t.s,
                    t.noise.as_ref().unwrap(),
                    &t.strength,
                    &t.bias,
                ];
                for (j, v) in all.iter().enumerate() {
                    v.set_requires_grad(j == which)?;
                }
                with_grads1(run(&t, p, parts)?, &[all[which]])
            },
        );
    }
}

/// `modulated_conv2d(.., Fused)` is the fused op with nothing after the
/// convolution, and equals the unfused path on the CPU.
#[test]
fn fused_path_of_modulated_conv2d() {
    let _g = stylegan2::no_grad();
    for (name, p, k) in cases() {
        let shape = [3, 5, 67, 5, 7];
        on_every_device(&format!("{name} path"), FWD.0, FWD.1, |dev| {
            let t = inputs(shape, k, p, EPILOGUES[0], dev)?;
            let y = modulated_conv2d(&t.x, &t.w, &t.s, Some(&t.f), p, ModConvPath::Fused)?;
            if dev == Device::Cpu {
                let u = modulated_conv2d(&t.x, &t.w, &t.s, Some(&t.f), p, ModConvPath::Unfused)?;
                assert_close("cpu fused = unfused", &y.to_vec(), &u.to_vec(), 0.0, 0.0);
            }
            Ok(vec![y])
        });
    }
}

/// create_graph: the fused op's recorded backward is the composed rule, so
/// gradients (and their gradients) match the CPU composition.
#[test]
fn fused_create_graph_gradients() {
    for (name, p, k) in cases() {
        let shape = [3, 5, 3, 5, 7];
        let parts = EPILOGUES[4];
        on_every_device(&format!("{name} create_graph"), GRAD.0, GRAD.1, |dev| {
            let t = inputs(shape, k, p, parts, dev)?;
            let y = run(&t, p, parts)?;
            let noise = t.noise.as_ref().unwrap();
            let mut out = with_grads(y, &[&t.x, &t.w, &t.s, noise, &t.strength, &t.bias])?;
            // A second derivative: d/dx of Σ (dL/dstyles)².
            let h = out[3].square()?.sum_all()?;
            let hx = grad(
                std::slice::from_ref(&h),
                std::slice::from_ref(&t.x),
                None,
                false,
            )?;
            out.push(hx[0].clone().unwrap());
            Ok(out)
        });
    }
}

/// The official modulated_conv2d cases of the golden file through the fused
/// kernel on the simulator: y and the gradients w.r.t. x, weight, styles.
#[test]
fn golden_modconv_cases_fused_on_sim() {
    // README: forward ≈ 1e-5, gradients ≈ 1e-4 relative to max|ref|.
    let gold = golden::load("sg2_ops_a");
    let dev = Device::Sim;
    let on = |k: &str| -> Tensor {
        let t = Tensor::from_vec(gold.data(k).to_vec(), gold.shape(k).to_vec(), dev).unwrap();
        t.set_requires_grad(true).unwrap();
        t
    };
    let f = Tensor::from_vec(
        gold.data("filter").to_vec(),
        gold.shape("filter").to_vec(),
        dev,
    )
    .unwrap();
    for (case, p) in [
        ("modconv_3x3_up1_demod", ModConv::conv3x3()),
        ("modconv_3x3_up2_demod", ModConv::conv3x3_up2()),
        ("modconv_1x1_nodemod", ModConv::torgb()),
    ] {
        let key = |k: &str| format!("{case}.{k}");
        let (x, w, s) = (on(&key("x")), on(&key("weight")), on(&key("styles")));
        let y = modulated_conv2d(&x, &w, &s, Some(&f), p, ModConvPath::Fused).unwrap();
        assert_eq!(y.device(), dev);
        assert_eq!(y.dims(), gold.shape(&key("y_nonfused")), "{case}: shape");
        assert_close(
            &format!("{case} fused y"),
            &y.to_vec(),
            gold.data(&key("y_nonfused")),
            1e-5,
            1e-5,
        );
        let dy = Tensor::from_vec(
            gold.data(&key("dy")).to_vec(),
            gold.shape(&key("dy")).to_vec(),
            dev,
        )
        .unwrap();
        let grads = grad(&[y], &[x, w, s], Some(&[dy]), false).unwrap();
        for (g, name) in grads.iter().zip(["dx", "dweight", "dstyles"]) {
            let g = g.as_ref().unwrap_or_else(|| panic!("{case}: no {name}"));
            assert_close(
                &format!("{case} fused {name}"),
                &g.to_vec(),
                gold.data(&key(name)),
                1e-5,
                1e-4,
            );
        }
    }
}

/// Bad arguments are errors naming the problem, never panics.
#[test]
fn fused_rejects_bad_arguments() {
    let dev = Device::Sim;
    let t = inputs([2, 3, 4, 5, 5], 3, ModConv::conv3x3(), EPILOGUES[4], dev).unwrap();
    let bad_bias = Tensor::zeros(vec![3], dev);
    let epi = Epilogue {
        noise: None,
        bias: Some(&bad_bias),
        act: BiasAct::lrelu(),
    };
    let e = modulated_conv2d_fused(&t.x, &t.w, &t.s, None, ModConv::conv3x3(), &epi).unwrap_err();
    assert!(e.to_string().contains("bias"), "{e}");
    let bad_noise = Tensor::zeros(vec![2, 1, 4, 5], dev);
    let epi = Epilogue {
        noise: Some((&bad_noise, &t.strength)),
        bias: None,
        act: BiasAct::linear(),
    };
    let e = modulated_conv2d_fused(&t.x, &t.w, &t.s, None, ModConv::conv3x3(), &epi).unwrap_err();
    assert!(e.to_string().contains("noise"), "{e}");
    let e = modulated_conv2d_fused(
        &t.x,
        &t.w,
        &t.s,
        None,
        ModConv::conv3x3_up2(),
        &Epilogue::identity(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("filter"), "{e}");
    let cpu_s = Tensor::zeros(vec![2, 3], Device::Cpu);
    let e = modulated_conv2d_fused(
        &t.x,
        &t.w,
        &cpu_s,
        None,
        ModConv::conv3x3(),
        &Epilogue::identity(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("device"), "{e}");
}

/// The grouped path with its per-sample weights from `modconv_modulate_weight`
/// (used when no gradient is recorded) against the CPU.
#[test]
fn grouped_path_with_modulated_weight_kernel() {
    let _g = stylegan2::no_grad();
    for (name, p, k) in cases() {
        on_every_device(&format!("{name} grouped"), FWD.0, FWD.1, |dev| {
            let t = inputs([3, 5, 67, 5, 7], k, p, EPILOGUES[0], dev)?;
            Ok(vec![modulated_conv2d(
                &t.x,
                &t.w,
                &t.s,
                Some(&t.f),
                p,
                ModConvPath::Grouped,
            )?])
        });
    }
}

/// SynthesisLayer and ToRGB with the fused path equal their unfused path
/// (on the CPU the fused op is the composition, so this checks the wiring of
/// noise, bias, activation, gain and clamp into the epilogue), forward and
/// gradients.
#[test]
fn synthesis_layer_and_torgb_fused_path_on_cpu() {
    use stylegan2::nn::synthesis::{NoiseMode, SynthesisLayer, ToRgb};
    use stylegan2::nn::Ctx;
    let dev = Device::Cpu;
    let mut rng = stylegan2::rng(3);
    for up in [1, 2] {
        let layer = SynthesisLayer::new(5, 7, 8, 8, up, true, Some(0.8), &mut rng, dev);
        layer
            .noise_strength
            .as_ref()
            .unwrap()
            .assign(&Tensor::scalar(0.3, dev))
            .unwrap();
        layer
            .bias
            .assign(&Tensor::from_vec(values(7, 9), vec![7], dev).unwrap())
            .unwrap();
        let torgb = ToRgb::new(7, 3, 8, Some(0.5), &mut rng, dev);
        let x = leaf(
            values(2 * 5 * 64 / (up * up), 11),
            &[2, 5, 8 / up, 8 / up],
            dev,
        )
        .unwrap();
        let w = leaf(values(2 * 8, 12), &[2, 8], dev).unwrap();
        let mut outs = Vec::new();
        for path in [ModConvPath::Unfused, ModConvPath::Fused] {
            let mut ctx = Ctx::new();
            let y = layer
                .forward(
                    &x,
                    &w,
                    NoiseMode::Const,
                    path,
                    Precision::F32,
                    1.3,
                    &mut ctx,
                )
                .unwrap();
            let img = torgb
                .forward(&y, &w, path, Precision::F32, &mut ctx)
                .unwrap();
            let loss = img.square().unwrap().sum_all().unwrap();
            let gs = grad(
                std::slice::from_ref(&loss),
                &[x.clone(), layer.weight.clone(), layer.bias.clone()],
                None,
                false,
            )
            .unwrap();
            let mut v = vec![y.to_vec(), img.to_vec()];
            v.extend(gs.into_iter().map(|g| g.unwrap().to_vec()));
            outs.push(v);
        }
        for (k, (a, b)) in outs[0].iter().zip(&outs[1]).enumerate() {
            assert_close(&format!("up {up} output {k}"), b, a, 0.0, 0.0);
        }
    }
}

/// Up-sampling with filters other than the 4×4 [1,3,3,1] (the generic FIR
/// staging): a 3×3 [1,2,1] filter and a 1-D (separable) [1,3,3,1], forward
/// and first-order gradients.
#[test]
fn fused_up2_with_other_filters() {
    let p = ModConv::conv3x3_up2();
    for (fname, taps, one_d) in [
        ("f3", vec![1.0, 2.0, 1.0], false),
        ("1-D f4", vec![1.0, 3.0, 3.0, 1.0], true),
    ] {
        for shape in [[3, 5, 67, 5, 7], [1, 3, 5, 1, 1]] {
            on_every_device(&format!("up2 {fname} {shape:?}"), GRAD.0, GRAD.1, |dev| {
                let mut t = inputs(shape, 3, p, EPILOGUES[4], dev)?;
                t.f = if one_d {
                    let s: f32 = taps.iter().sum();
                    Tensor::from_vec(taps.iter().map(|v| v / s).collect(), vec![taps.len()], dev)?
                } else {
                    setup_filter(&taps, dev)?
                };
                // The output stays 2H: Z is 2H + pad0 + pad1 − f + 1 = 2H + 2, then a valid 3×3.
                let y = run(&t, p, EPILOGUES[4])?;
                with_grads1(
                    y,
                    &[
                        &t.x,
                        &t.w,
                        &t.s,
                        t.noise.as_ref().unwrap(),
                        &t.strength,
                        &t.bias,
                    ],
                )
            });
        }
    }
}

#[test]
fn auto_path_is_fused_where_kernels_run_and_unfused_on_the_cpu() {
    assert_eq!(ModConvPath::Auto.resolve(Device::Sim), ModConvPath::Fused);
    assert_eq!(
        ModConvPath::Auto.resolve(Device::Cuda(0)),
        ModConvPath::Fused
    );
    assert_eq!(ModConvPath::Auto.resolve(Device::Cpu), ModConvPath::Unfused);
    assert_eq!(
        ModConvPath::Grouped.resolve(Device::Sim),
        ModConvPath::Grouped
    );
    for (s, p) in [
        ("auto", ModConvPath::Auto),
        ("unfused", ModConvPath::Unfused),
        ("grouped", ModConvPath::Grouped),
        ("fused", ModConvPath::Fused),
    ] {
        assert_eq!(ModConvPath::parse(s).unwrap(), p);
    }
    let e = ModConvPath::parse("fast").unwrap_err().to_string();
    assert!(e.contains("'fast'") && e.contains("grouped"), "{e}");
    // The default is Auto, and on the simulator it is bit-identical to Fused.
    assert_eq!(ModConvPath::default(), ModConvPath::Auto);
    let _g = stylegan2::no_grad();
    let (_, p, k) = cases()[0];
    let t = inputs([3, 5, 67, 5, 7], k, p, EPILOGUES[0], Device::Sim).unwrap();
    let auto = modulated_conv2d(&t.x, &t.w, &t.s, Some(&t.f), p, ModConvPath::Auto).unwrap();
    let fused = modulated_conv2d(&t.x, &t.w, &t.s, Some(&t.f), p, ModConvPath::Fused).unwrap();
    assert_close(
        "auto = fused on sim",
        &auto.to_vec(),
        &fused.to_vec(),
        0.0,
        0.0,
    );
}
