//! The generator and discriminator on the simulator (every op runs its CUDA
//! kernel) against the official implementation (`shared/golden/sg2_small_a`):
//! the generated image and the generator's gradients for a recorded upstream
//! gradient, and the R1 penalty's parameter gradients through double
//! backprop (the conv kernels differentiated once more).
//!
//! Tolerances are those of tests/golden_model.rs (the golden README's):
//! forward 1e-5 relative (2e-5 absolute on the image), gradients 1e-4
//! relative plus 1e-5 of the largest gradient of the group (cancellation).

mod common;
use common::{assert_close, golden};
use stylegan2::model::{Discriminator, Generator, ModelConfig, SynthesisOptions, Truncation};
use stylegan2::nn::{Ctx, Module, NoiseMode, StateDict};
use stylegan2::{grad, Device, Tensor};

const DEV: Device = Device::Sim;

fn check_grads(
    what: &str,
    params: &[(String, Tensor)],
    grads: &[Option<Tensor>],
    gold: &golden::Golden,
    prefix: &str,
) {
    let key = |n: &str| format!("{prefix}{n}");
    let group_max = params
        .iter()
        .flat_map(|(n, _)| gold.data(&key(n)).iter())
        .fold(0f64, |m, &v| m.max((v as f64).abs()));
    assert!(group_max > 0.0, "{what}: golden gradients are all zero");
    for ((n, p), g) in params.iter().zip(grads) {
        assert_eq!(p.device(), DEV, "{what}: {n} device");
        let got = g
            .as_ref()
            .map(|g| g.to_vec())
            .unwrap_or_else(|| vec![0.0; p.numel()]);
        assert_close(
            &format!("{what}: {n}"),
            &got,
            gold.data(&key(n)),
            1e-5 * group_max,
            1e-4,
        );
    }
}

#[test]
fn generator_and_r1_on_the_simulator() {
    let gold = golden::load("sg2_small_a");
    let cfg = ModelConfig::preset("tiny", 32, 3, 0).unwrap();
    let mut rng = stylegan2::rng(0);
    let g = Generator::new(&cfg.generator, &mut rng, DEV).unwrap();
    let d = Discriminator::new(&cfg.discriminator, &mut rng, DEV).unwrap();
    let (all, _) = StateDict::load_safetensors(&gold.path, DEV).unwrap();
    g.load_state_dict(&all.sub("G")).unwrap();
    d.load_state_dict(&all.sub("D")).unwrap();
    let on_dev = |k: &str| gold.tensor(k).to_device(DEV).unwrap();

    let img = g
        .forward(
            &on_dev("in.z"),
            None,
            Truncation::default(),
            SynthesisOptions::noise(NoiseMode::Const),
            &mut Ctx::new(),
        )
        .unwrap();
    assert_eq!(img.device(), DEV);
    assert_close(
        "gen_img",
        &img.to_vec(),
        gold.data("gmain.gen_img"),
        2e-5,
        1e-5,
    );
    let params = g.parameters();
    let ts: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
    let grads = grad(&[img], &ts, Some(&[on_dev("gmain.dimg")]), false).unwrap();
    check_grads("G main", &params, &grads, &gold, "gmain.grad.G.");

    let real = on_dev("in.real");
    real.set_requires_grad(true).unwrap();
    let logits = d.forward(&real, None, &mut Ctx::new()).unwrap();
    assert_close(
        "real_logits",
        &logits.to_vec(),
        gold.data("r1.real_logits"),
        1e-5,
        1e-5,
    );
    let r1 = grad(
        &[logits.sum_all().unwrap()],
        std::slice::from_ref(&real),
        None,
        true,
    )
    .unwrap()[0]
        .clone()
        .unwrap();
    assert_close(
        "r1_grads",
        &r1.to_vec(),
        gold.data("r1.r1_grads"),
        1e-6,
        1e-4,
    );
    // The golden R1 loss: γ/2 · mean over the batch of |∇x D|², γ = 10.
    let loss = r1
        .square()
        .unwrap()
        .sum(&[1, 2, 3], false)
        .unwrap()
        .scale(10.0 / 2.0)
        .unwrap()
        .mean_all()
        .unwrap();
    assert_close("r1 loss", &loss.to_vec(), gold.data("r1.loss"), 1e-7, 1e-4);
    let params = d.parameters();
    let ts: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
    let grads = grad(&[loss], &ts, None, false).unwrap();
    check_grads("R1", &params, &grads, &gold, "r1.grad.D.");
}
