//! One training step on the kernel devices against the CPU reference: the
//! `tiny` preset at 16×16, batch 4 (a multiple of the minibatch-stddev
//! group), same seed, step 0 — which runs all four phases (Gmain, Greg,
//! Dmain, Dreg; the lazy regularizers run when `step % interval == 0`).
//! Every parameter and buffer of G, D and G_ema, the Adam moments and
//! `pl_mean` must agree.
//!
//! Why the tolerances are what they are. Latents, noise, mixing and data
//! are drawn on the host, so both devices see the same inputs; the kernels
//! differ from the CPU by fp32 summation order only. Gradients are held to
//! the golden tests' budget: `δ = 1e-4·max|g| of the tensor + 1e-5·max|g|
//! of the network`. StyleGAN2's Adam has β1 = 0, so after the step the
//! moment `m` IS the last phase's gradient and `√v` a root-mean-square of
//! the two phases' gradients: both are compared with δ directly. Adam then
//! normalizes: an update is `lr·g/(√v̂+ε)`, so a gradient error δ moves a
//! parameter by about `lr·δ/|g|`, which is large where |g| is small (a sign
//! flip of a near-zero gradient moves it by 2·lr). A single tolerance on the
//! parameters would be either loose everywhere or flaky; instead each
//! element gets the bound that δ implies through Adam, computed from the
//! CPU's own gradients (recovered from its moments): tight where gradients
//! are large, up to the largest possible Adam move where they vanish.

mod common;
use common::{assert_close, kernel_devices};
use stylegan2::nn::Module;
use stylegan2::train::{Adam, TrainOptions, Trainer};
use stylegan2::Device;

/// Gradient budget of the golden tests: relative to the tensor, and to the
/// whole network (cancellation in small tensors such as noise strengths).
const RTOL_TENSOR: f64 = 1e-4;
const RTOL_NET: f64 = 1e-5;

fn trainer(device: Device, cond: bool) -> Trainer {
    let dir = std::env::temp_dir().join(format!(
        "sg2_train_sim_{}{}_{}",
        device.to_string().replace(':', ""),
        if cond { "_cond" } else { "" },
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut t = Trainer::new(TrainOptions {
        preset: Some("tiny".into()),
        resolution: Some(16),
        data: "synthetic:64".into(),
        batch: Some(4),
        kimg: 1.0,
        snap_kimg: 0.0,
        grid: 4,
        seed: 3,
        device,
        run_dir: Some(dir),
        cond,
        ..TrainOptions::default()
    })
    .unwrap();
    // The official loss (path length, style mixing, random noise), which
    // the tiny preset's demo defaults leave out: the step runs every phase.
    t.official_loss();
    t
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0f64, |m, x| m.max(x.abs()))
}

/// The gradients one optimizer applied in this step, recovered from its
/// moments (β1 = 0: m = last gradient; v = Σ (1−β2)·β2^k·g²), per
/// parameter: `(name, steps taken, [first gradient, second gradient])`.
/// With one step only the first is present.
struct Applied {
    name: String,
    steps: u64,
    /// |g| per element and step; the first of two is recovered from
    /// `v − (1−β2)·g2²`, clamped at 0 where rounding makes it negative
    /// (which only widens its tolerance).
    g: Vec<Vec<f64>>,
    /// √v̂ after the last step (bias-corrected).
    rms: Vec<f64>,
}

fn applied(opt: &Adam) -> Vec<Applied> {
    assert_eq!(opt.config.betas.0, 0.0, "StyleGAN2's Adam has β1 = 0");
    let b2 = opt.config.betas.1 as f64;
    let sd = opt.state_dict();
    opt.params()
        .iter()
        .zip(opt.steps())
        .map(|((name, _), &steps)| {
            let vec_of = |k: &str| -> Vec<f64> {
                sd.get(&format!("{k}.{name}"))
                    .map(|t| t.to_vec().into_iter().map(f64::from).collect())
                    .unwrap_or_default()
            };
            let (m, v) = (vec_of("m"), vec_of("v"));
            let bc = 1.0 - b2.powi(steps as i32);
            let rms = v.iter().map(|v| (v / bc).sqrt()).collect();
            let g = match steps {
                0 => vec![],
                1 => vec![m.iter().map(|x| x.abs()).collect()],
                2 => vec![
                    v.iter()
                        .zip(&m)
                        .map(|(v, g2)| {
                            ((v - (1.0 - b2) * g2 * g2) / (b2 * (1.0 - b2)))
                                .max(0.0)
                                .sqrt()
                        })
                        .collect(),
                    m.iter().map(|x| x.abs()).collect(),
                ],
                s => panic!("{name}: {s} Adam steps in one training step"),
            };
            Applied {
                name: name.clone(),
                steps,
                g,
                rms,
            }
        })
        .collect()
}

/// Per-element bound on |Δp| after this step's Adam updates, from the CPU's
/// gradients `a` and the budget δ_s per step s:
/// first update `lr·g/(|g|+ε)` moves by at most `lr·min(2, 2δ1/|g1|)`;
/// a second one `lr·g2/(√v̂+ε)` by at most `lr·min(2√2, 2(δ1+δ2)/√v̂)`
/// (its derivatives w.r.t. g1 and g2 are ≤ 1/√v̂; 2√2 bounds |g2|/√v̂
/// for β2 < 1; the factor 2 is headroom for second-order terms).
fn param_bounds(a: &Applied, delta: &[f64], lr: f64, eps: f64) -> Vec<f64> {
    let n = a.g.first().map_or(0, Vec::len);
    (0..n)
        .map(|i| {
            let first = lr * (2.0 * delta[0] / (a.g[0][i] + eps)).min(2.0);
            let second = if a.steps == 2 {
                lr * (2.0 * (delta[0] + delta[1]) / (a.rms[i] + eps)).min(2.0 * 2f64.sqrt())
            } else {
                0.0
            };
            first + second
        })
        .collect()
}

/// Compares one network and its optimizer: Adam steps and moments, the
/// parameters within their Adam-propagated bounds, `also` (G_ema) within
/// the same bounds, and buffers at forward precision.
fn check_net(
    what: &str,
    (cpu, cpu_opt): (&dyn Module, &Adam),
    (dev, dev_opt): (&dyn Module, &Adam),
    also: Option<(&dyn Module, &dyn Module)>,
) -> f64 {
    assert_eq!(cpu_opt.steps(), dev_opt.steps(), "{what}: Adam step counts");
    let (lr, eps) = (cpu_opt.config.lr as f64, cpu_opt.config.eps as f64);
    let ca = applied(cpu_opt);
    let da = applied(dev_opt);
    // δ per step: of the tensor and of the whole network.
    let steps = ca.iter().map(|a| a.g.len()).max().unwrap_or(0);
    let net_max: Vec<f64> = (0..steps)
        .map(|s| {
            ca.iter()
                .filter_map(|a| a.g.get(s))
                .map(|g| max_abs(g))
                .fold(0.0, f64::max)
        })
        .collect();
    assert!(
        net_max.iter().all(|&m| m > 0.0),
        "{what}: all gradients zero"
    );
    let (cpu_p, dev_p) = (cpu.state_dict(), dev.state_dict());
    let also_sd = also.map(|(c, d)| (c.state_dict(), d.state_dict()));
    let mut worst = 0f64;
    for (c, d) in ca.iter().zip(&da) {
        let name = &c.name;
        if c.steps == 0 {
            continue;
        }
        let delta: Vec<f64> =
            c.g.iter()
                .zip(&net_max)
                .map(|(g, &nm)| RTOL_TENSOR * max_abs(g) + RTOL_NET * nm)
                .collect();
        // The moments: m is the last gradient, √v̂ a weighted RMS of both
        // (1-Lipschitz in them), each within the summed budget.
        let m_tol = *delta.last().unwrap();
        let sd = |o: &Adam, k: &str| o.state_dict().get(&format!("{k}.{name}")).unwrap().to_vec();
        let what_m = format!("{what}: Adam m.{name} (last gradient)");
        assert_close(&what_m, &sd(dev_opt, "m"), &sd(cpu_opt, "m"), m_tol, 0.0);
        let rms = |a: &Applied| a.rms.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let what_v = format!("{what}: Adam √v̂.{name}");
        assert_close(&what_v, &rms(d), &rms(c), delta.iter().sum(), 0.0);

        let bound = param_bounds(c, &delta, lr, eps);
        let mut pairs = vec![(String::new(), &cpu_p, &dev_p)];
        if let Some((ce, de)) = &also_sd {
            pairs.push(("G_ema ".into(), ce, de));
        }
        for (tag, cs, ds) in pairs {
            let (cv, dv) = (cs.get(name).unwrap(), ds.get(name).unwrap());
            for (i, ((x, y), b)) in cv.to_vec().iter().zip(dv.to_vec()).zip(&bound).enumerate() {
                // Plus rounding of the parameter itself.
                let tol = b + 4.0 * f32::EPSILON as f64 * (*x as f64).abs();
                let err = (*x as f64 - y as f64).abs();
                worst = worst.max(err / tol);
                assert!(
                    err <= tol,
                    "{what}: {tag}{name}[{i}] is {y} on the device, {x} on the CPU: |diff| {err:.3e} > bound {tol:.3e} (CPU gradient {:?}, δ {delta:?}, lr {lr})",
                    c.g.iter().map(|g| g[i]).collect::<Vec<_>>()
                );
            }
        }
    }
    // Buffers (w_avg, filters, const noise): forward precision.
    for m in [Some((cpu, dev)), also].into_iter().flatten() {
        for (name, b) in m.0.buffers() {
            let got = m.1.state_dict().get(&name).unwrap().to_vec();
            assert_close(
                &format!("{what}: buffer {name}"),
                &got,
                &b.to_vec(),
                1e-6,
                1e-5,
            );
        }
    }
    worst
}

#[test]
fn one_training_step_matches_the_cpu_on_kernel_devices() {
    check_one_step(false);
}

/// The same with labels (synthetic classes): G's label embedding and D's
/// conditional projection, same inputs, same budget.
#[test]
fn one_conditional_training_step_matches_the_cpu_on_kernel_devices() {
    check_one_step(true);
}

fn check_one_step(cond: bool) {
    let mut cpu = trainer(Device::Cpu, cond);
    assert_eq!(cpu.config.generator.c_dim, if cond { 3 } else { 0 });
    assert_eq!(cpu.step, 0);
    let phases: Vec<_> = cpu
        .phases_of(0)
        .into_iter()
        .map(|(p, _)| p.name())
        .collect();
    assert_eq!(
        phases,
        ["Gmain", "Greg", "Dmain", "Dreg"],
        "step 0 runs every phase"
    );
    cpu.step().unwrap();
    for device in kernel_devices() {
        let mut t = trainer(device, cond);
        t.step().unwrap();
        let what = |net: &str| format!("{device} vs cpu: {net}");
        let g = check_net(
            &what("G"),
            (&cpu.g, &cpu.opt_g),
            (&t.g, &t.opt_g),
            Some((&cpu.g_ema, &t.g_ema)),
        );
        let d = check_net(&what("D"), (&cpu.d, &cpu.opt_d), (&t.d, &t.opt_d), None);
        let (pc, pd) = (
            cpu.loss.pl_mean_value().unwrap(),
            t.loss.pl_mean_value().unwrap(),
        );
        assert_close(&what("pl_mean"), &[pd], &[pc], 0.0, 1e-5);
        eprintln!("{device}: worst |diff|/bound over parameters: G {g:.3}, D {d:.3}");
        for (net, m) in [("G", &t.g as &dyn Module), ("D", &t.d), ("G_ema", &t.g_ema)] {
            for (n, p) in m.state_dict().iter() {
                assert_eq!(p.device(), device, "{}: {n} left the device", what(net));
            }
        }
        std::fs::remove_dir_all(&t.run_dir).ok();
    }
    std::fs::remove_dir_all(&cpu.run_dir).ok();
}
