//! Forward passes beyond the golden configuration: labels, the other
//! architectures, truncation cutoff, style mixing, and errors on bad input.

use stylegan2::model::{
    mapping_with_mixing, mix_styles, style_mixing_cutoff, Architecture, Discriminator, Generator,
    ModelConfig, SynthesisOptions, Truncation,
};
use stylegan2::nn::{Ctx, Module, NoiseMode};
use stylegan2::{grad, Device, Tensor};

fn nets(cfg: &ModelConfig) -> (Generator, Discriminator) {
    let mut rng = stylegan2::rng(11);
    (
        Generator::new(&cfg.generator, &mut rng, Device::Cpu).unwrap(),
        Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu).unwrap(),
    )
}

fn one_hot(n: usize, c: usize) -> Tensor {
    let v = (0..n * c)
        .map(|i| ((i / c) % c == i % c) as u8 as f32)
        .collect();
    Tensor::from_vec(v, vec![n, c], Device::Cpu).unwrap()
}

#[test]
fn conditional_networks_of_every_architecture_run_and_backpropagate() {
    for (ga, da) in [
        (Architecture::Skip, Architecture::Resnet),
        (Architecture::Resnet, Architecture::Skip),
        (Architecture::Orig, Architecture::Orig),
    ] {
        let mut cfg = ModelConfig::preset("tiny", 16, 3, 4).unwrap();
        cfg.generator.architecture = ga;
        cfg.discriminator.architecture = da;
        cfg.generator.conv_clamp = Some(256.0);
        let (g, d) = nets(&cfg);
        let mut rng = stylegan2::rng(1);
        let z = Tensor::randn(vec![4, 64], &mut rng, Device::Cpu);
        let c = one_hot(4, 4);
        let opts = SynthesisOptions::noise(NoiseMode::Random);
        let img = g
            .forward(
                &z,
                Some(&c),
                Truncation::default(),
                opts,
                &mut Ctx::with_rng(&mut rng),
            )
            .unwrap();
        assert_eq!(img.dims(), &[4, 3, 16, 16], "{ga:?}");
        assert!(img.to_vec().iter().all(|v| v.is_finite()));
        let logits = d.forward(&img, Some(&c), &mut Ctx::new()).unwrap();
        assert_eq!(logits.dims(), &[4, 1], "{da:?}");
        // Every parameter of both networks gets a gradient.
        let loss = logits.softplus().unwrap().sum_all().unwrap();
        let params: Vec<(String, Tensor)> = g
            .parameters()
            .into_iter()
            .map(|(n, t)| (format!("G.{n}"), t))
            .chain(
                d.parameters()
                    .into_iter()
                    .map(|(n, t)| (format!("D.{n}"), t)),
            )
            .collect();
        let ts: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
        let grads = grad(&[loss], &ts, None, false).unwrap();
        for ((name, _), g) in params.iter().zip(&grads) {
            let g = g
                .as_ref()
                .unwrap_or_else(|| panic!("{ga:?}/{da:?}: no gradient for {name}"));
            assert!(g.to_vec().iter().all(|v| v.is_finite()), "{name}");
        }
        // Labels are required and checked.
        let err = g
            .forward(
                &z,
                None,
                Truncation::default(),
                opts,
                &mut Ctx::with_rng(&mut rng),
            )
            .unwrap_err();
        assert!(err.to_string().contains("label"), "{err}");
        assert!(d
            .forward(&img, Some(&one_hot(4, 3)), &mut Ctx::new())
            .is_err());
    }
}

#[test]
fn truncation_cutoff_and_style_mixing() {
    let cfg = ModelConfig::preset("tiny", 32, 3, 0).unwrap();
    let (g, _) = nets(&cfg);
    let w_avg = g.mapping.w_avg.as_ref().unwrap();
    w_avg
        .assign(&Tensor::full(0.5, vec![64], Device::Cpu))
        .unwrap();
    let mut rng = stylegan2::rng(2);
    let z = Tensor::randn(vec![2, 64], &mut rng, Device::Cpu);
    let mut ctx = Ctx::new();
    let full = g
        .mapping(&z, None, Truncation::psi(1.0), false, &mut ctx)
        .unwrap();
    let t = Truncation {
        psi: 0.5,
        cutoff: Some(3),
    };
    let cut = g.mapping(&z, None, t, false, &mut ctx).unwrap();
    let (fv, cv) = (full.to_vec(), cut.to_vec());
    for n in 0..2 {
        for r in 0..8 {
            for k in 0..64 {
                let i = (n * 8 + r) * 64 + k;
                let want = if r < 3 {
                    0.5 + 0.5 * (fv[i] - 0.5)
                } else {
                    fv[i]
                };
                assert!((cv[i] - want).abs() < 1e-5, "row {r}");
            }
        }
    }
    // Mixing takes rows from the cutoff on from the second ws.
    let other = Tensor::zeros(vec![2, 8, 64], Device::Cpu);
    let mixed = mix_styles(&full, &other, 5).unwrap().to_vec();
    for (i, v) in mixed.iter().enumerate() {
        let r = (i / 64) % 8;
        assert_eq!(*v, if r < 5 { fv[i] } else { 0.0 });
    }
    assert!(mix_styles(&full, &other, 9).is_err());
    assert!(mix_styles(&full, &other.narrow(1, 0, 4).unwrap(), 2).is_err());
    for _ in 0..50 {
        let c = style_mixing_cutoff(8, 0.9, &mut rng);
        assert!((1..=8).contains(&c));
    }
    assert_eq!(style_mixing_cutoff(8, 0.0, &mut rng), 8);
    let ws = mapping_with_mixing(&g, &z, None, 1.0, true, &mut rng).unwrap();
    assert_eq!(ws.dims(), &[2, 8, 64]);
    // Training mode moved w_avg.
    assert!(w_avg.to_vec().iter().any(|&v| v != 0.5));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let cfg = ModelConfig::preset("tiny", 32, 3, 0).unwrap();
    let (g, d) = nets(&cfg);
    let mut ctx = Ctx::new();
    let z = Tensor::zeros(vec![2, 63], Device::Cpu);
    assert!(g
        .mapping(&z, None, Truncation::default(), false, &mut ctx)
        .is_err());
    let ws = Tensor::zeros(vec![2, 7, 64], Device::Cpu);
    let err = g
        .synthesis(&ws, SynthesisOptions::noise(NoiseMode::Const), &mut ctx)
        .unwrap_err();
    assert!(err.to_string().contains("ws"), "{err}");
    let img = Tensor::zeros(vec![2, 3, 16, 16], Device::Cpu);
    assert!(d.forward(&img, None, &mut ctx).is_err());
    // mbstd groups of 4 need a batch divisible by min(4, N).
    let img = Tensor::zeros(vec![6, 3, 32, 32], Device::Cpu);
    assert!(d.forward(&img, None, &mut ctx).is_err());
    let img = Tensor::zeros(vec![3, 3, 32, 32], Device::Cpu);
    assert_eq!(d.forward(&img, None, &mut ctx).unwrap().dims(), &[3, 1]);
}
