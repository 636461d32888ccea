//! The generator and discriminator against the official implementation
//! (`shared/golden/sg2_small_a`): ws, images, logits, per-layer traces and the
//! gradients of the four training losses, on the CPU device.
//!
//! Tolerances follow the golden README: `|a − b| ≤ atol + rtol·max|ref|`,
//! forward ≈ 1e-5, gradients from the same inputs ≈ 1e-4 relative; scalar
//! noise-strength and R1 bias gradients are judged against the largest
//! gradient of their whole group (strong cancellation).

mod common;
use common::{assert_close, golden};
use stylegan2::model::{Discriminator, Generator, ModelConfig, SynthesisOptions, Truncation};
use stylegan2::nn::{Ctx, Module, NoiseMode, StateDict};
use stylegan2::ops::modconv::ModConvPath;
use stylegan2::train::loss;
use stylegan2::{grad, Device, Tensor};

struct Setup {
    gold: golden::Golden,
    g: Generator,
    d: Discriminator,
}

fn setup() -> Setup {
    let gold = golden::load("sg2_small_a");
    let cfg = ModelConfig::preset("tiny", 32, 3, 0).unwrap();
    let mut rng = stylegan2::rng(0);
    let g = Generator::new(&cfg.generator, &mut rng, Device::Cpu).unwrap();
    let d = Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu).unwrap();
    let (all, _) = StateDict::load_safetensors(&gold.path, Device::Cpu).unwrap();
    g.load_state_dict(&all.sub("G")).unwrap();
    d.load_state_dict(&all.sub("D")).unwrap();
    Setup { gold, g, d }
}

fn close(what: &str, got: &Tensor, gold: &golden::Golden, key: &str, atol: f64, rtol: f64) {
    assert_eq!(got.dims(), gold.shape(key), "{what}: shape vs {key}");
    assert_close(what, &got.to_vec(), gold.data(key), atol, rtol);
}

fn const_noise() -> SynthesisOptions {
    SynthesisOptions::noise(NoiseMode::Const)
}

/// Compares gradients of every parameter with `<prefix><name>` in the golden
/// file: per tensor `atol_group·max|group| + rtol·max|ref|`.
fn check_grads(
    what: &str,
    params: &[(String, Tensor)],
    grads: &[Option<Tensor>],
    gold: &golden::Golden,
    prefix: &str,
    rtol: f64,
    atol_group: f64,
) {
    let group_max = params
        .iter()
        .flat_map(|(n, _)| gold.data(&format!("{prefix}{n}")).iter())
        .fold(0f64, |m, &v| m.max((v as f64).abs()));
    assert!(group_max > 0.0, "{what}: golden gradients are all zero");
    for ((name, p), g) in params.iter().zip(grads) {
        let key = format!("{prefix}{name}");
        let got = g
            .as_ref()
            .map(|g| g.to_vec())
            .unwrap_or_else(|| vec![0.0; p.numel()]);
        assert_close(
            &format!("{what}: {key}"),
            &got,
            gold.data(&key),
            atol_group * group_max,
            rtol,
        );
    }
}

#[test]
fn mapping_ws_truncation_and_w_avg_update() {
    let s = setup();
    let m = &s.g.mapping;
    let w_avg = m.w_avg.as_ref().unwrap();
    // The EMA update, from the recorded starting value.
    w_avg
        .assign(&s.gold.tensor("w_avg_update.w_avg_before"))
        .unwrap();
    let z = s.gold.tensor("w_avg_update.z");
    s.g.mapping(&z, None, Truncation::default(), true, &mut Ctx::new())
        .unwrap();
    close(
        "w_avg after update",
        w_avg,
        &s.gold,
        "w_avg_update.w_avg_after",
        1e-6,
        1e-6,
    );
    w_avg.assign(&s.gold.tensor("G.mapping.w_avg")).unwrap();

    let z = s.gold.tensor("in.z");
    let mut trace = StateDict::new();
    let ws =
        s.g.mapping(
            &z,
            None,
            Truncation::psi(1.0),
            false,
            &mut Ctx::new().with_trace(&mut trace),
        )
        .unwrap();
    close("ws ψ=1", &ws, &s.gold, "map.ws_psi1", 1e-6, 1e-6);
    for i in 0..2 {
        let k = format!("mapping.fc{i}");
        close(
            &k,
            trace.get(&k).unwrap(),
            &s.gold,
            &format!("trace.G.{k}"),
            1e-6,
            1e-6,
        );
    }
    let ws =
        s.g.mapping(&z, None, Truncation::psi(0.7), false, &mut Ctx::new())
            .unwrap();
    close("ws ψ=0.7", &ws, &s.gold, "map.ws_psi0_7", 1e-6, 1e-6);
    // Eval-mode calls leave w_avg alone.
    close("w_avg", w_avg, &s.gold, "G.mapping.w_avg", 0.0, 0.0);
}

#[test]
fn synthesis_images_for_each_noise_mode_and_path() {
    let s = setup();
    for psi in ["psi1", "psi0_7"] {
        let ws = s.gold.tensor(&format!("map.ws_{psi}"));
        for (mode, noise) in [("const", NoiseMode::Const), ("none", NoiseMode::None)] {
            for (pname, path) in [
                ("nonfused", ModConvPath::Unfused),
                ("fused", ModConvPath::Grouped),
            ] {
                let opts = SynthesisOptions {
                    noise_mode: noise,
                    path,
                };
                let img = s.g.synthesis(&ws, opts, &mut Ctx::new()).unwrap();
                let key = format!("img.{psi}.{mode}.{pname}");
                close(&key, &img, &s.gold, &key, 2e-5, 1e-5);
            }
        }
    }
    // Random noise needs a generator, and a seed reproduces the image.
    let ws = s.gold.tensor("map.ws_psi1");
    let opts = SynthesisOptions::noise(NoiseMode::Random);
    assert!(s.g.synthesis(&ws, opts, &mut Ctx::new()).is_err());
    let a =
        s.g.synthesis(&ws, opts, &mut Ctx::with_rng(&mut stylegan2::rng(5)))
            .unwrap();
    let b =
        s.g.synthesis(&ws, opts, &mut Ctx::with_rng(&mut stylegan2::rng(5)))
            .unwrap();
    assert_eq!(a.to_vec(), b.to_vec());
    // The full generator equals mapping + synthesis.
    let img =
        s.g.forward(
            &s.gold.tensor("in.z"),
            None,
            Truncation::default(),
            const_noise(),
            &mut Ctx::new(),
        )
        .unwrap();
    close("G(z)", &img, &s.gold, "img.psi1.const.nonfused", 2e-5, 1e-5);
}

#[test]
fn synthesis_per_layer_traces() {
    let s = setup();
    let ws = s.gold.tensor("map.ws_psi1");
    let mut trace = StateDict::new();
    s.g.synthesis(&ws, const_noise(), &mut Ctx::new().with_trace(&mut trace))
        .unwrap();
    let mut n = 0;
    for key in s.gold.keys() {
        let Some(name) = key.strip_prefix("trace.G.synthesis.") else {
            continue;
        };
        let name = format!("synthesis.{name}");
        let got = trace.get(&name).unwrap_or_else(|| {
            panic!(
                "no trace {name}; have {:?}",
                trace.names().collect::<Vec<_>>()
            )
        });
        close(&name, got, &s.gold, key, 1e-5, 1e-5);
        n += 1;
    }
    assert!(n >= 4 * 5, "only {n} synthesis traces compared");
}

#[test]
fn discriminator_logits_and_traces() {
    let s = setup();
    let img = s.gold.tensor("img.psi1.const.nonfused");
    let logits = s.d.forward(&img, None, &mut Ctx::new()).unwrap();
    close("D(gen)", &logits, &s.gold, "dlogits.gen", 1e-5, 1e-5);
    let mut trace = StateDict::new();
    let logits =
        s.d.forward(
            &s.gold.tensor("in.real"),
            None,
            &mut Ctx::new().with_trace(&mut trace),
        )
        .unwrap();
    close("D(real)", &logits, &s.gold, "dlogits.real", 1e-5, 1e-5);
    let mut n = 0;
    for key in s.gold.keys() {
        let Some(name) = key.strip_prefix("trace.D.") else {
            continue;
        };
        let got = trace.get(name).unwrap_or_else(|| {
            panic!(
                "no trace {name}; have {:?}",
                trace.names().collect::<Vec<_>>()
            )
        });
        close(name, got, &s.gold, key, 1e-5, 1e-5);
        n += 1;
    }
    assert_eq!(n, 13 + 5, "discriminator traces compared");
}

#[test]
fn generator_gradients_driven_by_recorded_dimg() {
    let s = setup();
    let img =
        s.g.forward(
            &s.gold.tensor("in.z"),
            None,
            Truncation::default(),
            const_noise(),
            &mut Ctx::new(),
        )
        .unwrap();
    close("gmain.gen_img", &img, &s.gold, "gmain.gen_img", 2e-5, 1e-5);
    // The G loss through D, on the golden image: loss and dloss/dimg.
    let gen_img = s.gold.input("gmain.gen_img");
    let logits = s.d.forward(&gen_img, None, &mut Ctx::new()).unwrap();
    close("gmain.logits", &logits, &s.gold, "gmain.logits", 1e-5, 1e-5);
    let gloss = loss::g_main_loss(&logits).unwrap().sum_all().unwrap();
    close("gmain.loss", &gloss, &s.gold, "gmain.loss", 1e-5, 1e-5);
    let dimg = grad(&[gloss], std::slice::from_ref(&gen_img), None, false).unwrap()[0]
        .clone()
        .unwrap();
    close("gmain.dimg", &dimg, &s.gold, "gmain.dimg", 1e-7, 1e-4);
    let params = s.g.parameters();
    let ts: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
    let grads = grad(&[img], &ts, Some(&[s.gold.tensor("gmain.dimg")]), false).unwrap();
    check_grads(
        "G main",
        &params,
        &grads,
        &s.gold,
        "gmain.grad.G.",
        1e-4,
        1e-5,
    );
}

#[test]
fn discriminator_main_gradients() {
    let s = setup();
    let gen =
        s.d.forward(&s.gold.tensor("gmain.gen_img"), None, &mut Ctx::new())
            .unwrap();
    let real =
        s.d.forward(&s.gold.tensor("in.real"), None, &mut Ctx::new())
            .unwrap();
    close(
        "dmain.gen_logits",
        &gen,
        &s.gold,
        "dmain.gen_logits",
        1e-5,
        1e-5,
    );
    // The golden loss sums over the batch where training takes the mean.
    let loss = loss::d_gen_loss(&gen)
        .unwrap()
        .sum_all()
        .unwrap()
        .add(&loss::d_real_loss(&real).unwrap().sum_all().unwrap())
        .unwrap();
    close("dmain.loss", &loss, &s.gold, "dmain.loss", 1e-5, 1e-5);
    let params = s.d.parameters();
    let ts: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
    let grads = grad(&[loss], &ts, None, false).unwrap();
    check_grads(
        "D main",
        &params,
        &grads,
        &s.gold,
        "dmain.grad.D.",
        1e-4,
        1e-5,
    );
}

/// The training phases themselves (`StyleGAN2Loss::phase_loss`) with the
/// golden model, constant noise and no style mixing: each phase's loss is
/// the golden loss rescaled as the golden README says (main losses are
/// batch sums there, means here; R1 is a mean with gain 1 in both).
#[test]
fn training_phases_reproduce_the_golden_losses() {
    let s = setup();
    let opts = loss::LossOptions {
        style_mixing_prob: 0.0,
        r1_gamma: 10.0,
        noise_mode: NoiseMode::Const,
        ..Default::default()
    };
    let mut l = loss::StyleGAN2Loss::new(opts, Device::Cpu).unwrap();
    let (real, z) = (s.gold.tensor("in.real"), s.gold.tensor("in.z"));
    let n = z.dims()[0] as f32;
    let mut rng = stylegan2::rng(0);
    let mut run = |phase, gain| {
        l.phase_loss(phase, &s.g, &s.d, &real, None, &z, None, gain, &mut rng)
            .unwrap()
            .loss
    };
    // G and D phases see the image G(in.z) recomputed here (≈ 5e-6 from the
    // golden one), so the loss values agree to ~1e-5 relative.
    let gmain = run(loss::Phase::Gmain, 1.0).scale(n).unwrap();
    close("Gmain · N", &gmain, &s.gold, "gmain.loss", 1e-5, 1e-5);
    let dmain = run(loss::Phase::Dmain, 1.0).scale(n).unwrap();
    close("Dmain · N", &dmain, &s.gold, "dmain.loss", 1e-5, 1e-5);
    // Dreg sees only the reals: the same computation as the golden one.
    let dreg = run(loss::Phase::Dreg, 1.0);
    close("Dreg", &dreg, &s.gold, "r1.loss", 1e-7, 1e-4);
    let params = s.d.parameters();
    let ts: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
    let grads = grad(&[dreg], &ts, None, false).unwrap();
    check_grads(
        "Dreg phase",
        &params,
        &grads,
        &s.gold,
        "r1.grad.D.",
        1e-4,
        1e-5,
    );
    // A gain multiplies the loss (lazy regularization: gain = interval).
    let dreg16 = run(loss::Phase::Dreg, 16.0).to_scalar().unwrap();
    let r1 = s.gold.data("r1.loss")[0];
    assert!(
        (dreg16 - 16.0 * r1).abs() <= 1e-4 * 16.0 * r1.abs(),
        "{dreg16} vs 16·{r1}"
    );
}

#[test]
fn r1_gradients_through_double_backprop() {
    let s = setup();
    let real = s.gold.input("in.real");
    let logits = s.d.forward(&real, None, &mut Ctx::new()).unwrap();
    close(
        "r1.real_logits",
        &logits,
        &s.gold,
        "r1.real_logits",
        1e-5,
        1e-5,
    );
    let r1_grads = grad(
        &[logits.sum_all().unwrap()],
        std::slice::from_ref(&real),
        None,
        true,
    )
    .unwrap()[0]
        .clone()
        .unwrap();
    close("r1.r1_grads", &r1_grads, &s.gold, "r1.r1_grads", 1e-6, 1e-4);
    let penalty = loss::r1_penalty(&logits, &real).unwrap();
    close(
        "r1.r1_penalty",
        &penalty,
        &s.gold,
        "r1.r1_penalty",
        1e-7,
        1e-4,
    );
    let loss = penalty.scale(10.0 / 2.0).unwrap().mean_all().unwrap();
    close("r1.loss", &loss, &s.gold, "r1.loss", 1e-7, 1e-4);
    let params = s.d.parameters();
    let ts: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
    let grads = grad(&[loss], &ts, None, false).unwrap();
    check_grads("R1", &params, &grads, &s.gold, "r1.grad.D.", 1e-4, 1e-5);
}

#[test]
fn path_length_gradients_with_recorded_noise() {
    let s = setup();
    let z = s.gold.tensor("pl.z");
    let ws =
        s.g.mapping(&z, None, Truncation::default(), false, &mut Ctx::new())
            .unwrap();
    close("pl.gen_ws", &ws, &s.gold, "pl.gen_ws", 1e-6, 1e-6);
    let img = s.g.synthesis(&ws, const_noise(), &mut Ctx::new()).unwrap();
    close("pl.gen_img", &img, &s.gold, "pl.gen_img", 2e-5, 1e-5);
    let noise = s.gold.tensor("pl.pl_noise");
    let out = img.mul(&noise).unwrap().sum_all().unwrap();
    let pl_grads = grad(&[out], std::slice::from_ref(&ws), None, true).unwrap()[0]
        .clone()
        .unwrap();
    close("pl.pl_grads", &pl_grads, &s.gold, "pl.pl_grads", 1e-6, 1e-4);
    let lengths = loss::path_lengths(&img, &ws, &noise).unwrap();
    close(
        "pl.pl_lengths",
        &lengths,
        &s.gold,
        "pl.pl_lengths",
        1e-6,
        1e-5,
    );
    // pl_mean' = lerp(pl_mean, mean(lengths), 0.01), not detached in the penalty.
    let mut l = loss::StyleGAN2Loss::new(loss::LossOptions::default(), Device::Cpu).unwrap();
    l.set_pl_mean(s.gold.data("pl.pl_mean_before")[0]).unwrap();
    let penalty = l.pl_penalty(&lengths).unwrap();
    close(
        "pl.pl_mean_after",
        &l.pl_mean,
        &s.gold,
        "pl.pl_mean_after",
        1e-8,
        1e-5,
    );
    close(
        "pl.pl_penalty",
        &penalty,
        &s.gold,
        "pl.pl_penalty",
        1e-7,
        1e-4,
    );
    let loss = penalty.scale(l.opts.pl_weight).unwrap().mean_all().unwrap();
    close("pl.loss", &loss, &s.gold, "pl.loss", 1e-7, 1e-4);
    let params = s.g.parameters();
    let ts: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
    let grads = grad(&[loss], &ts, None, false).unwrap();
    check_grads(
        "path length",
        &params,
        &grads,
        &s.gold,
        "pl.grad.G.",
        1e-4,
        1e-5,
    );
}
