//! Training: Adam, the G EMA, datasets and their errors, the loss phases on
//! the tiny model, and short runs that write snapshots, resume and learn.

use std::path::{Path, PathBuf};
use stylegan2::augment::AugMode;
use stylegan2::data::{self, Dataset, ImageFolder, Loader, Synthetic};
use stylegan2::model::cli::{generate, info, GenerateOptions};
use stylegan2::model::{load_generator, Discriminator, Generator, ModelConfig, Truncation};
use stylegan2::nn::{Module, NoiseMode};
use stylegan2::train::{
    checkpoint, ema_beta, loss, update_ema, Adam, AdamConfig, Phase, TrainOptions, Trainer,
};
use stylegan2::{Device, Tensor};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sg2_train_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn t(v: &[f32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), vec![v.len()], Device::Cpu).unwrap()
}

fn leaf(v: &[f32]) -> Tensor {
    let p = t(v);
    p.set_requires_grad(true).unwrap();
    p
}

/// Adam in f64, written out from the torch.optim.Adam documentation.
fn adam_reference(p0: f64, grads: &[f64], lr: f64, b1: f64, b2: f64, eps: f64) -> Vec<f64> {
    let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
    let mut out = Vec::new();
    for (i, &g) in grads.iter().enumerate() {
        let t = (i + 1) as i32;
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        let mhat = m / (1.0 - b1.powi(t));
        let vhat = v / (1.0 - b2.powi(t));
        p -= lr * mhat / (vhat.sqrt() + eps);
        out.push(p);
    }
    out
}

#[test]
fn adam_follows_the_torch_update_sequence() {
    let grads = [[0.5f32, -2.0], [0.25, 1.0], [-1.0, 3.0], [0.0, -0.5]];
    for (b1, b2) in [(0.0f32, 0.99f32), (0.9, 0.999)] {
        let p = leaf(&[1.0, -3.0]);
        let mut opt = Adam::new(
            vec![("p".into(), p.clone())],
            AdamConfig {
                lr: 0.1,
                betas: (b1, b2),
                eps: 1e-8,
            },
        )
        .unwrap();
        let mut got = Vec::new();
        for g in &grads {
            opt.step(&[Some(t(g))]).unwrap();
            got.push(p.to_vec());
        }
        for (k, start) in [1.0f64, -3.0].into_iter().enumerate() {
            let gs: Vec<f64> = grads.iter().map(|g| g[k] as f64).collect();
            let want = adam_reference(start, &gs, 0.1, b1 as f64, b2 as f64, 1e-8);
            for (step, w) in want.iter().enumerate() {
                // f32 arithmetic on values of order 1: a few ulps.
                assert!(
                    (got[step][k] as f64 - w).abs() < 1e-6,
                    "betas ({b1}, {b2}) step {step} elem {k}: {} vs {w}",
                    got[step][k]
                );
            }
        }
        assert_eq!(opt.steps(), &[4]);
    }
    // By hand: Adam's first step moves every coordinate by lr·sign(g)
    // (m̂ = g, v̂ = g²), whatever the betas.
    let p = leaf(&[0.0, 0.0, 0.0]);
    let mut opt = Adam::new(vec![("p".into(), p.clone())], AdamConfig::stylegan2(0.01)).unwrap();
    opt.step(&[Some(t(&[3.0, -0.001, 1e4]))]).unwrap();
    let v = p.to_vec();
    for (got, want) in v.iter().zip([-0.01f32, 0.01, -0.01]) {
        assert!((got - want).abs() < 1e-6, "{v:?}");
    }
}

#[test]
fn adam_skips_missing_gradients_and_sanitizes_bad_ones() {
    let a = leaf(&[1.0, 1.0, 1.0]);
    let b = leaf(&[2.0]);
    let mut opt = Adam::new(
        vec![("a".into(), a.clone()), ("b".into(), b.clone())],
        AdamConfig::stylegan2(0.5),
    )
    .unwrap();
    // NaN → 0 (no move on a first step), ±inf → ±1e5 (a step of lr).
    opt.step(&[Some(t(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY])), None])
        .unwrap();
    let v = a.to_vec();
    assert_eq!(v[0], 1.0);
    assert!(
        (v[1] - 0.5).abs() < 1e-6 && (v[2] - 1.5).abs() < 1e-6,
        "{v:?}"
    );
    assert_eq!(b.to_vec(), vec![2.0], "no gradient: unchanged");
    assert_eq!(
        opt.steps(),
        &[1, 0],
        "a skipped parameter keeps its step count"
    );
    assert!(opt.step(&[None]).is_err(), "one gradient per parameter");
    assert!(
        opt.step(&[Some(t(&[1.0])), None]).is_err(),
        "shape mismatch"
    );
    assert!(Adam::new(vec![], AdamConfig::stylegan2(-1.0)).is_err());
}

#[test]
fn lazy_regularization_scales_lr_and_betas() {
    let c = AdamConfig::stylegan2(0.0025).lazy(16);
    let r = 16.0f32 / 17.0;
    assert!((c.lr - 0.0025 * r).abs() < 1e-9);
    assert_eq!(c.betas.0, 0.0);
    assert!((c.betas.1 - 0.99f32.powf(r)).abs() < 1e-7);
    assert_eq!(AdamConfig::stylegan2(0.002).lazy(0).lr, 0.002);
}

#[test]
fn ema_beta_and_update() {
    // β = 0.5^(batch / (ema_kimg·1000)) without a ramp-up.
    let b = ema_beta(32, 10.0, None, 123_456);
    assert!((b as f64 - 0.5f64.powf(32.0 / 10_000.0)).abs() < 1e-7);
    // With a ramp-up: ema_nimg = min(ema_kimg·1000, cur_nimg·rampup).
    assert_eq!(ema_beta(8, 2.5, Some(0.05), 0), 0.0, "G_ema starts as G");
    let b = ema_beta(8, 2.5, Some(0.05), 1000);
    assert!((b as f64 - 0.5f64.powf(8.0 / 50.0)).abs() < 1e-7);
    let b = ema_beta(8, 2.5, Some(0.05), 1_000_000);
    assert!((b as f64 - 0.5f64.powf(8.0 / 2500.0)).abs() < 1e-7);

    let cfg = ModelConfig::preset("tiny", 16, 3, 0).unwrap();
    let g = Generator::new(&cfg.generator, &mut stylegan2::rng(1), Device::Cpu).unwrap();
    let g_ema = Generator::new(&cfg.generator, &mut stylegan2::rng(2), Device::Cpu).unwrap();
    let w_avg = g.mapping.w_avg.as_ref().unwrap();
    w_avg
        .assign(&Tensor::full(0.7, vec![64], Device::Cpu))
        .unwrap();
    let before: Vec<Vec<f32>> = g_ema.parameters().iter().map(|(_, t)| t.to_vec()).collect();
    update_ema(&g_ema, &g, 0.25).unwrap();
    for (((n, pe), (_, p)), old) in g_ema.parameters().iter().zip(g.parameters()).zip(before) {
        for ((e, p), o) in pe.to_vec().iter().zip(p.to_vec()).zip(old) {
            let want = p + 0.25 * (o - p);
            assert!((e - want).abs() <= 1e-5 * want.abs().max(1.0), "{n}");
        }
    }
    assert_eq!(
        g_ema.mapping.w_avg.as_ref().unwrap().to_vec(),
        vec![0.7; 64],
        "buffers are copied"
    );
}

fn write_png(path: &Path, w: u32, h: u32, rgb: bool) {
    let img: image::DynamicImage = if rgb {
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 7])).into()
    } else {
        image::GrayImage::from_fn(w, h, |x, _| image::Luma([x as u8 * 10])).into()
    };
    img.save_with_format(path, image::ImageFormat::Png).unwrap();
}

fn err_of(path: &Path) -> String {
    match ImageFolder::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn image_folder_errors_name_the_problem() {
    let dir = tmpdir("folder_errors");
    // Missing and empty.
    let missing = dir.join("nope");
    assert!(err_of(&missing).contains("does not exist"));
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"not an image").unwrap();
    assert!(
        err_of(&empty).contains("no PNG or JPEG"),
        "{}",
        err_of(&empty)
    );
    // A corrupt PNG.
    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    write_png(&corrupt.join("a.png"), 8, 8, true);
    std::fs::write(corrupt.join("b.png"), b"\x89PNG garbage").unwrap();
    let e = err_of(&corrupt);
    assert!(
        e.contains("b.png") && e.contains("not a PNG or JPEG"),
        "{e}"
    );
    // Sizes: mixed, non-square, not a power of two.
    let mixed = dir.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    write_png(&mixed.join("a.png"), 8, 8, true);
    write_png(&mixed.join("b.png"), 16, 16, true);
    let e = err_of(&mixed);
    assert!(
        e.contains("b.png") && e.contains("16×16") && e.contains("8×8"),
        "{e}"
    );
    let nonsq = dir.join("nonsquare");
    std::fs::create_dir_all(&nonsq).unwrap();
    write_png(&nonsq.join("a.png"), 8, 4, true);
    let e = err_of(&nonsq);
    assert!(e.contains("a.png") && e.contains("square"), "{e}");
    let odd = dir.join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    write_png(&odd.join("a.png"), 12, 12, true);
    let e = err_of(&odd);
    assert!(e.contains("a.png") && e.contains("power of two"), "{e}");
    // A truncated PNG: found when the folder is opened (every image is
    // decoded then).
    let trunc = dir.join("truncated");
    std::fs::create_dir_all(&trunc).unwrap();
    write_png(&trunc.join("a.png"), 8, 8, true);
    let bytes = std::fs::read(trunc.join("a.png")).unwrap();
    std::fs::write(trunc.join("a.png"), &bytes[..bytes.len() / 2]).unwrap();
    let e = err_of(&trunc);
    assert!(e.contains("a.png") && e.contains("truncated"), "{e}");
    // The resolution asked for must be the data's.
    let good = dir.join("good");
    std::fs::create_dir_all(&good).unwrap();
    write_png(&good.join("a.png"), 8, 8, true);
    let e = data::open(good.to_str().unwrap(), Some(16), 0)
        .err()
        .unwrap();
    assert!(e.to_string().contains("--resolution 16"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn image_folder_and_zip_read_images_as_chw() {
    let dir = tmpdir("folder_good");
    let rgb = dir.join("rgb");
    std::fs::create_dir_all(rgb.join("sub")).unwrap();
    write_png(&rgb.join("a.png"), 8, 8, true);
    write_png(&rgb.join("sub").join("b.PNG"), 8, 8, true);
    let ds = ImageFolder::open(&rgb).unwrap();
    assert_eq!((ds.len(), ds.resolution(), ds.channels()), (2, 8, 3));
    let img = ds.image(0).unwrap();
    assert_eq!(img.len(), 3 * 64);
    // Pixel (x=3, y=2): R = 30, G = 20, B = 7 in planes R, G, B.
    assert_eq!(
        (img[2 * 8 + 3], img[64 + 2 * 8 + 3], img[128 + 2 * 8 + 3]),
        (30, 20, 7)
    );
    let gray = dir.join("gray");
    std::fs::create_dir_all(&gray).unwrap();
    write_png(&gray.join("a.png"), 8, 8, false);
    let gds = ImageFolder::open(&gray).unwrap();
    assert_eq!(gds.channels(), 1);
    assert_eq!(gds.image(0).unwrap()[5], 50);
    // JPEG (lossy: pixels within a few levels of a smooth ramp).
    let jpg = dir.join("jpg");
    std::fs::create_dir_all(&jpg).unwrap();
    let ramp = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 100]));
    image::DynamicImage::from(ramp)
        .save_with_format(jpg.join("a.jpg"), image::ImageFormat::Jpeg)
        .unwrap();
    let jds = ImageFolder::open(&jpg).unwrap();
    assert_eq!((jds.resolution(), jds.channels()), (16, 3));
    let px = jds.image(0).unwrap();
    assert!(
        (px[2 * 256 + 5 * 16 + 5] as i32 - 100).abs() <= 8,
        "{}",
        px[2 * 256 + 85]
    );

    // A zip as the official dataset_tool writes it (stored entries).
    let zpath = dir.join("data.zip");
    {
        let mut w = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for name in ["00000/img0.png", "00000/img1.png"] {
            w.start_file(name, o).unwrap();
            std::io::Write::write_all(&mut w, &std::fs::read(rgb.join("a.png")).unwrap()).unwrap();
        }
        w.start_file("dataset.json", o).unwrap();
        std::io::Write::write_all(&mut w, b"{}").unwrap();
        w.finish().unwrap();
    }
    let zds = ImageFolder::open(&zpath).unwrap();
    assert_eq!((zds.len(), zds.resolution(), zds.channels()), (2, 8, 3));
    assert_eq!(zds.image(1).unwrap(), img);
    std::fs::write(dir.join("bad.zip"), b"PK not really").unwrap();
    let e = err_of(&dir.join("bad.zip"));
    assert!(e.contains("bad.zip"), "{e}");

    // The loader: [-1, 1], x-flips double the data and mirror the image.
    let mut loader = Loader::new(Box::new(ImageFolder::open(&rgb).unwrap()), true, 5).unwrap();
    assert_eq!(loader.len(), 4);
    let plain = loader.images(&[0], &[false], Device::Cpu).unwrap().to_vec();
    let flipped = loader.images(&[0], &[true], Device::Cpu).unwrap().to_vec();
    assert!((plain[2 * 8 + 3] - (30.0 / 127.5 - 1.0)).abs() < 1e-6);
    for y in 0..8 {
        for x in 0..8 {
            assert_eq!(plain[y * 8 + x], flipped[y * 8 + 7 - x]);
        }
    }
    // One epoch visits every (image, flip) once; the order is the seed's.
    let mut seen: Vec<(usize, bool)> = (0..4).map(|k| loader.item(k)).collect();
    let again: Vec<(usize, bool)> = (0..4).map(|k| loader.item(k)).collect();
    assert_eq!(seen, again);
    seen.sort();
    assert_eq!(seen, vec![(0, false), (0, true), (1, false), (1, true)]);
    assert_eq!(
        loader.batch(2, 3, Device::Cpu).unwrap().dims(),
        &[3, 3, 8, 8]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn synthetic_data_is_deterministic_and_varied() {
    let a = Synthetic::new(16, 3, 10, 7).unwrap();
    let b = Synthetic::new(16, 3, 10, 7).unwrap();
    let c = Synthetic::new(16, 3, 10, 8).unwrap();
    assert_eq!(a.image(3).unwrap(), b.image(3).unwrap());
    assert_ne!(a.image(3).unwrap(), a.image(4).unwrap());
    assert_ne!(a.image(3).unwrap(), c.image(3).unwrap());
    let img = a.image(0).unwrap();
    assert_eq!(img.len(), 3 * 16 * 16);
    let (lo, hi) = (img.iter().min().unwrap(), img.iter().max().unwrap());
    assert!(hi - lo > 40, "flat image: {lo}..{hi}");
    assert!(a.image(10).is_err());
    assert_eq!(
        Synthetic::new(8, 1, 1, 0).unwrap().image(0).unwrap().len(),
        64
    );
    assert!(Synthetic::new(12, 3, 1, 0).is_err());
    assert!(data::open("synthetic:0", None, 0).is_err());
    assert_eq!(data::open("synthetic:5", Some(8), 0).unwrap().len(), 5);
}

#[test]
fn every_loss_phase_is_finite_on_the_tiny_model() {
    let cfg = ModelConfig::preset("tiny", 16, 3, 0).unwrap();
    let mut rng = stylegan2::rng(4);
    let g = Generator::new(&cfg.generator, &mut rng, Device::Cpu).unwrap();
    let d = Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu).unwrap();
    let mut l = loss::StyleGAN2Loss::new(loss::LossOptions::default(), Device::Cpu).unwrap();
    let real = Tensor::uniform(vec![4, 3, 16, 16], -1.0, 1.0, &mut rng, Device::Cpu).unwrap();
    let z = Tensor::randn(vec![4, 64], &mut rng, Device::Cpu);
    for phase in [Phase::Gmain, Phase::Greg, Phase::Dmain, Phase::Dreg] {
        let out = l
            .phase_loss(phase, &g, &d, &real, None, &z, None, 4.0, &mut rng)
            .unwrap();
        let v = out.loss.to_scalar().unwrap();
        assert!(v.is_finite(), "{phase:?}: {v}");
        let params = if phase.is_generator() {
            g.parameters()
        } else {
            d.parameters()
        };
        let ts: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
        let grads = stylegan2::grad(&[out.loss], &ts, None, false).unwrap();
        // Only parameters whose gradient is identically zero (golden
        // `zero_gradients`) may get none: R1 does not see the epilogue biases
        // (D is piecewise linear in the image there), the path length not
        // the ToRGB biases.
        for ((name, _), g) in params.iter().zip(&grads) {
            let exempt = match phase {
                Phase::Dreg => {
                    ["b4.conv.bias", "b4.fc.bias", "b4.out.bias"].contains(&name.as_str())
                }
                Phase::Greg => name.ends_with("torgb.bias"),
                _ => false,
            };
            assert!(g.is_some() || exempt, "{phase:?}: no gradient for {name}");
        }
        for g in grads.iter().flatten() {
            assert!(g.to_vec().iter().all(|x| x.is_finite()), "{phase:?}");
        }
        assert!(!out.stats.is_empty());
    }
    assert!(l.pl_mean_value().unwrap() > 0.0, "Greg updates pl_mean");
    // Path lengths with batch shrink 2: two samples of four.
    assert!(l.opts.pl_batch_shrink == 2);
}

fn opts(dir: &Path, kimg: f64) -> TrainOptions {
    TrainOptions {
        preset: Some("tiny".into()),
        resolution: Some(16),
        data: "synthetic:64".into(),
        batch: Some(4),
        kimg,
        snap_kimg: 0.0,
        grid: 4,
        seed: 3,
        device: Device::Cpu,
        run_dir: Some(dir.to_path_buf()),
        ..TrainOptions::default()
    }
}

/// A trainer with the official loss (path length, style mixing, random
/// noise), which the `tiny` preset's demo defaults leave out: these tests
/// exercise every phase and every parameter.
fn official_loss(mut t: Trainer) -> Trainer {
    t.official_loss();
    t
}

fn g_ema_values(path: &Path) -> Vec<f32> {
    let (_, g) = load_generator(path, Device::Cpu).unwrap();
    g.parameters()
        .iter()
        .flat_map(|(_, t)| t.to_vec())
        .collect()
}

#[test]
fn a_short_run_writes_loadable_snapshots_and_resumes() {
    let dir = tmpdir("run");
    // Five steps straight (batch 4: 20 images); step 4 runs Greg, step 0 all four phases.
    let straight = official_loss(Trainer::new(opts(&dir.join("straight"), 0.02)).unwrap())
        .run()
        .unwrap();
    assert_eq!((straight.steps, straight.cur_nimg), (5, 20));
    let snap = straight.last_snapshot.unwrap();
    for f in [
        "reals.png",
        "fakes_init00000000.png",
        "fakes00000020.png",
        "stats.jsonl",
    ] {
        assert!(dir.join("straight").join(f).exists(), "{f}");
    }
    // The snapshot is a network file: info and generate (from G_ema) read it.
    let report = info(&snap).unwrap();
    assert!(
        report.contains("G_ema") && report.contains("opt_D"),
        "{report}"
    );
    let written = generate(
        &load_generator(&snap, Device::Cpu).unwrap().1,
        &GenerateOptions {
            seeds: vec![0, 1],
            truncation: Truncation::psi(0.7),
            noise_mode: NoiseMode::Const,
            class: None,
            outdir: dir.join("samples"),
            grid: true,
        },
    )
    .unwrap();
    assert_eq!(written.len(), 3);

    // Three steps, then a resume to the same total: the step count continues,
    // and optimizer state, pl_mean, data order and latents make it the same run.
    let first = official_loss(Trainer::new(opts(&dir.join("first"), 0.012)).unwrap())
        .run()
        .unwrap();
    assert_eq!(first.steps, 3);
    let mut o = opts(&dir.join("second"), 0.02);
    o.resume = first.last_snapshot.clone();
    let mut t = official_loss(Trainer::new(o).unwrap());
    assert_eq!((t.step, t.cur_nimg), (3, 12));
    let second = t.run().unwrap();
    assert_eq!((second.steps, second.cur_nimg), (5, 20));
    let (a, b) = (
        g_ema_values(&snap),
        g_ema_values(second.last_snapshot.as_ref().unwrap()),
    );
    let first_vals = g_ema_values(first.last_snapshot.as_ref().unwrap());
    let moved = a
        .iter()
        .zip(&first_vals)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    // Two Adam steps move weights by ~lr = 2.5e-3; a faithful resume agrees to
    // float rounding (summation order may differ between runs).
    assert!(moved > 1e-3, "training moved G_ema by only {moved}");
    assert!(
        diff < 1e-4,
        "resumed run differs by {diff} (training moved {moved})"
    );

    // Nothing left to do is an error, as is a resume with another preset.
    let mut o = opts(&dir.join("third"), 0.02);
    o.resume = second.last_snapshot.clone();
    let e = Trainer::new(o).err().unwrap().to_string();
    assert!(e.contains("raise --kimg"), "{e}");
    let mut o = opts(&dir.join("fourth"), 1.0);
    o.resume = second.last_snapshot;
    o.preset = Some("cifar".into());
    assert!(Trainer::new(o).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

/// The ADA state of a snapshot's training counters.
fn ada_state(path: &Path) -> stylegan2::augment::AdaState {
    checkpoint::load(path, Device::Cpu)
        .unwrap()
        .state
        .expect("a snapshot has a training state")
        .augment
        .expect("an ADA run saves its augment state")
}

#[test]
fn ada_runs_adjust_p_and_resume_exactly() {
    let dir = tmpdir("ada_run");
    let ada = |run: &str, kimg: f64| TrainOptions {
        aug: Some(AugMode::Ada),
        augment_p: Some(0.3),
        ..opts(&dir.join(run), kimg)
    };
    // Nine steps straight: ADA adjusts after steps 4 and 8 (batch 4: 9 steps = 36 images).
    let straight = Trainer::new(ada("straight", 0.036)).unwrap().run().unwrap();
    assert_eq!(straight.steps, 9);
    let want = ada_state(straight.last_snapshot.as_ref().unwrap());
    // p moved by ±batch·interval/(ada_kimg·1000) = 3.2e-5 per adjustment, twice.
    let moved = (want.p - 0.3).abs();
    // (Two moves the same way, or one each way.)
    assert!(want.last_rt.is_some(), "{want:?}");
    assert!(moved < 1e-6 || (moved - 6.4e-5).abs() < 1e-6, "{want:?}");
    assert_eq!(
        want.signs_count, 1,
        "step 9's signs wait for the next adjustment"
    );
    let stats = std::fs::read_to_string(dir.join("straight/stats.jsonl")).unwrap();
    assert!(
        stats.contains("\"aug_p\"") && stats.contains("\"ada_rt\"") && stats.contains("signs_real"),
        "{stats}"
    );

    // Three steps (a snapshot mid-interval with signs pending: Dmain of
    // steps 0–2 and Dreg of step 0, which reports them too as the official
    // loss), then a resume to nine: the same p, pending signs and last r_t.
    let first = Trainer::new(ada("first", 0.012)).unwrap().run().unwrap();
    let mid = ada_state(first.last_snapshot.as_ref().unwrap());
    assert_eq!((mid.p, mid.signs_count, mid.last_rt), (0.3, 4, None));
    let mut o = ada("second", 0.036);
    o.resume = first.last_snapshot.clone();
    let second = Trainer::new(o).unwrap().run().unwrap();
    assert_eq!(second.steps, 9);
    assert_eq!(ada_state(second.last_snapshot.as_ref().unwrap()), want);
    let (a, b) = (
        g_ema_values(straight.last_snapshot.as_ref().unwrap()),
        g_ema_values(second.last_snapshot.as_ref().unwrap()),
    );
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    eprintln!("resumed ADA run: max |ΔG_ema| = {diff:e}");
    // As the plain resume test: the same run up to summation order.
    assert!(diff < 1e-4, "resumed ADA run differs by {diff}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn training_moves_g_and_d_learns_a_separable_case() {
    let dir = tmpdir("learn");
    let mut t = official_loss(Trainer::new(opts(&dir, 1.0)).unwrap());
    let before: Vec<Vec<f32>> = t.g.parameters().iter().map(|(_, p)| p.to_vec()).collect();
    t.step().unwrap();
    let changed =
        t.g.parameters()
            .iter()
            .zip(&before)
            .filter(|((_, p), b)| p.to_vec() != **b)
            .count();
    assert!(
        changed * 10 >= before.len() * 9,
        "{changed}/{} G tensors moved",
        before.len()
    );

    // Reals are all white, fakes come from a fixed G: D alone, trained with
    // its Dmain phase, must drive its loss (2·ln 2 ≈ 1.39 at chance) down.
    let white = Tensor::ones(vec![4, 3, 16, 16], Device::Cpu);
    let mut opt = Adam::new(t.d.parameters(), AdamConfig::stylegan2(0.0025)).unwrap();
    let mut rng = stylegan2::rng(9);
    let mut losses = Vec::new();
    for _ in 0..30 {
        let z = Tensor::randn(vec![4, 64], &mut rng, Device::Cpu);
        let out = t
            .loss
            .phase_loss(
                Phase::Dmain,
                &t.g,
                &t.d,
                &white,
                None,
                &z,
                None,
                1.0,
                &mut rng,
            )
            .unwrap();
        losses.push(out.loss.to_scalar().unwrap());
        let grads = stylegan2::grad(&[out.loss], &opt.tensors(), None, false).unwrap();
        opt.step(&grads).unwrap();
    }
    let first = losses[..3].iter().sum::<f32>() / 3.0;
    let last = losses[losses.len() - 3..].iter().sum::<f32>() / 3.0;
    assert!(
        last < 0.5 * first && last < 0.5,
        "D loss {first} → {last}: {losses:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_options_are_refused_with_a_reason() {
    let dir = tmpdir("bad_opts");
    let cases: Vec<(TrainOptions, &str)> = vec![
        (
            TrainOptions {
                kimg: 0.0,
                ..opts(&dir, 1.0)
            },
            "--kimg",
        ),
        (
            TrainOptions {
                batch: Some(0),
                ..opts(&dir, 1.0)
            },
            "--batch",
        ),
        (
            TrainOptions {
                glr: Some(-1.0),
                ..opts(&dir, 1.0)
            },
            "--glr",
        ),
        (
            TrainOptions {
                dlr: Some(0.0),
                ..opts(&dir, 1.0)
            },
            "--dlr",
        ),
        (
            TrainOptions {
                gamma: Some(f32::NAN),
                ..opts(&dir, 1.0)
            },
            "--gamma",
        ),
        (
            TrainOptions {
                preset: Some("huge".into()),
                ..opts(&dir, 1.0)
            },
            "unknown preset",
        ),
        (
            TrainOptions {
                resolution: Some(24),
                ..opts(&dir, 1.0)
            },
            "power of two",
        ),
        (
            TrainOptions {
                data: "/no/such/dir".into(),
                ..opts(&dir, 1.0)
            },
            "does not exist",
        ),
        (
            TrainOptions {
                resume: Some(dir.join("missing.safetensors")),
                ..opts(&dir, 1.0)
            },
            "missing.safetensors",
        ),
        (
            TrainOptions {
                aug: Some(AugMode::Fixed),
                ..opts(&dir, 1.0)
            },
            "--aug fixed needs the probability --p",
        ),
        (
            TrainOptions {
                augment_p: Some(0.5),
                ..opts(&dir, 1.0)
            },
            "--p applies to --aug ada or fixed",
        ),
        (
            TrainOptions {
                aug: Some(AugMode::Ada),
                augpipe: Some("bgz".into()),
                ..opts(&dir, 1.0)
            },
            "unknown augment preset `bgz`",
        ),
        (
            TrainOptions {
                aug: Some(AugMode::Ada),
                ada_target: Some(1.5),
                ..opts(&dir, 1.0)
            },
            "--target",
        ),
        (
            TrainOptions {
                aug: Some(AugMode::Fixed),
                augment_p: Some(0.5),
                augpipe: Some("bgcf".into()),
                ..opts(&dir, 1.0)
            },
            "at least 22×22",
        ),
        (
            TrainOptions {
                aug: Some(AugMode::Ada),
                ada_kimg: Some(0.0),
                ..opts(&dir, 1.0)
            },
            "--ada-kimg 0 must be a positive number",
        ),
        (
            TrainOptions {
                ada_kimg: Some(10.0),
                ..opts(&dir, 1.0)
            },
            "--ada-kimg applies to --aug ada",
        ),
    ];
    for (o, needle) in cases {
        let e = Trainer::new(o).err().expect(needle).to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn trains_on_a_folder_of_gray_images() {
    let dir = tmpdir("gray_run");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..3 {
        write_png(&data.join(format!("{i}.png")), 8, 8, false);
    }
    let o = TrainOptions {
        resolution: None,
        data: data.to_str().unwrap().into(),
        batch: Some(2),
        kimg: 0.004,
        mirror: true,
        ..opts(&dir.join("run"), 1.0)
    };
    let s = Trainer::new(o).unwrap().run().unwrap();
    assert_eq!(s.steps, 2);
    let (cfg, g) = load_generator(s.last_snapshot.unwrap(), Device::Cpu).unwrap();
    assert_eq!(
        (cfg.generator.img_resolution, cfg.generator.img_channels),
        (8, 1)
    );
    assert_eq!(g.config.img_channels, 1);
    std::fs::remove_dir_all(&dir).ok();
}

/// The first step's estimate amortizes the lazy regularization: a phase of
/// interval i counts 1/i of its time, the rest of the step counts whole.
/// Hand-computed: rest 10 − (1 + 4 + 1 + 3.2) = 0.8; 0.8 + 1 + 4/4 + 1 +
/// 3.2/16 = 4.0 (exact in binary up to the rounding of 0.2 and 0.8, hence
/// the 1e-12).
#[test]
fn the_first_step_estimate_amortizes_regularization() {
    use stylegan2::train::{StepTiming, D_REG_INTERVAL, G_REG_INTERVAL};
    assert_eq!((G_REG_INTERVAL, D_REG_INTERVAL), (4, 16));
    let t = StepTiming {
        total: 10.0,
        phases: vec![
            (Phase::Gmain, 1, 1.0),
            (Phase::Greg, G_REG_INTERVAL, 4.0),
            (Phase::Dmain, 1, 1.0),
            (Phase::Dreg, D_REG_INTERVAL, 3.2),
        ],
    };
    approx::assert_abs_diff_eq!(t.amortized(), 4.0, epsilon = 1e-12);
    // A step of main phases only is its own time.
    let main = StepTiming {
        total: 2.5,
        phases: vec![(Phase::Gmain, 1, 1.0), (Phase::Dmain, 1, 1.0)],
    };
    approx::assert_abs_diff_eq!(main.amortized(), 2.5, epsilon = 1e-12);

    // A real first step records every phase it ran, with its interval,
    // and amortizes to less than its whole time.
    let dir = tmpdir("timing");
    let mut tr = official_loss(Trainer::new(opts(&dir, 0.004)).unwrap());
    let due = tr.phases_of(0);
    assert_eq!(due.len(), 4, "{due:?}");
    tr.step().unwrap();
    let ran: Vec<(Phase, usize)> = tr.last_step.phases.iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(ran, due);
    let s = &tr.last_step;
    assert!(s.phases.iter().all(|p| p.2 > 0.0) && s.total >= s.phases.iter().map(|p| p.2).sum());
    assert!(s.amortized() < s.total, "{s:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Freeze-D's layer count matches the layers the discriminator freezes
/// (official `layer_idx`: fromrgb, conv0, conv1, skip per block), for each
/// architecture: freezing that many leaves no block layer trainable, one
/// fewer leaves exactly the last one.
#[test]
fn freeze_d_counts_the_layers_the_discriminator_freezes() {
    use stylegan2::model::config::Architecture;
    for arch in [Architecture::Orig, Architecture::Skip, Architecture::Resnet] {
        let mut cfg = ModelConfig::preset("tiny", 32, 3, 0).unwrap().discriminator;
        cfg.architecture = arch;
        let layers = cfg.freezable_layers();
        let trainable = |freeze: usize| {
            let mut c = cfg.clone();
            c.freeze_layers = freeze;
            let d = Discriminator::new(&c, &mut stylegan2::rng(0), Device::Cpu).unwrap();
            d.blocks
                .iter()
                .flat_map(|b| {
                    [
                        b.fromrgb.as_ref(),
                        Some(&b.conv0),
                        Some(&b.conv1),
                        b.skip.as_ref(),
                    ]
                })
                .flatten()
                .map(|l| l.trainable)
                .collect::<Vec<bool>>()
        };
        let all = trainable(0);
        assert_eq!(all.len(), layers, "{arch:?}");
        assert!(all.iter().all(|&t| t));
        assert!(trainable(layers).iter().all(|&t| !t), "{arch:?}");
        assert!(trainable(999_999).iter().all(|&t| !t), "{arch:?}");
        let last = trainable(layers - 1);
        assert_eq!(last.iter().filter(|&&t| t).count(), 1, "{arch:?}");
        assert!(last[layers - 1], "{arch:?}");
    }
}
