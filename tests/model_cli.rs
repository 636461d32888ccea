//! `generate`, `style-mix` and `info` library functions.

use stylegan2::model::cli::{
    class_label, config_summary, generate, generate_seed, info, latent, parse_seeds, style_mix,
    to_images, GenerateOptions,
};
use stylegan2::model::{save_networks, Discriminator, Generator, ModelConfig, Truncation};
use stylegan2::nn::NoiseMode;
use stylegan2::{Device, Tensor};

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sg2_cli_{name}_{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny_g(c_dim: usize) -> Generator {
    let cfg = ModelConfig::preset("tiny", 16, 3, c_dim).unwrap();
    Generator::new(&cfg.generator, &mut stylegan2::rng(3), Device::Cpu).unwrap()
}

#[test]
fn seeds_parse_like_the_official_scripts() {
    assert_eq!(parse_seeds("0,5,10-12").unwrap(), vec![0, 5, 10, 11, 12]);
    assert_eq!(parse_seeds(" 7 ").unwrap(), vec![7]);
    for bad in ["", "a", "3-1", "1-", "-2"] {
        assert!(parse_seeds(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_seed_names_one_latent_and_one_image() {
    let z1 = latent(42, 64, Device::Cpu).to_vec();
    let mut rng = stylegan2::rng(42);
    assert_eq!(
        z1,
        Tensor::randn(vec![1, 64], &mut rng, Device::Cpu).to_vec()
    );
    let g = tiny_g(0);
    for mode in [NoiseMode::Const, NoiseMode::Random, NoiseMode::None] {
        let a = generate_seed(&g, 9, Truncation::psi(0.7), mode, None).unwrap();
        let b = generate_seed(&g, 9, Truncation::psi(0.7), mode, None).unwrap();
        assert_eq!(a.to_vec(), b.to_vec(), "{mode:?}");
        assert_eq!(a.dims(), &[1, 3, 16, 16]);
    }
}

#[test]
fn images_convert_as_the_official_scripts() {
    let t = Tensor::from_vec(vec![-1.0, 0.0, 1.0, 2.0], vec![1, 1, 2, 2], Device::Cpu).unwrap();
    let im = to_images(&t).unwrap().remove(0).to_luma8();
    assert_eq!(im.into_raw(), vec![0, 128, 255, 255]);
    let bad = Tensor::zeros(vec![1, 2, 2, 2], Device::Cpu);
    assert!(to_images(&bad).is_err());
}

#[test]
fn generate_writes_pngs_and_a_grid() {
    let g = tiny_g(0);
    let dir = tmpdir("generate");
    let opts = GenerateOptions {
        seeds: vec![1, 2, 3],
        truncation: Truncation::psi(1.0),
        noise_mode: NoiseMode::Const,
        class: None,
        outdir: dir.clone(),
        grid: true,
    };
    let paths = generate(&g, &opts).unwrap();
    assert_eq!(paths.len(), 4);
    let img = image::open(dir.join("seed0002.png")).unwrap();
    assert_eq!((img.width(), img.height()), (16, 16));
    let grid = image::open(dir.join("grid.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (32, 32));
    // The PNG holds the generated pixels.
    let want =
        to_images(&generate_seed(&g, 2, Truncation::psi(1.0), NoiseMode::Const, None).unwrap())
            .unwrap()
            .remove(0)
            .to_rgb8();
    assert_eq!(img.to_rgb8(), want);
    // Classes: required by a conditional generator, refused by the others.
    assert!(generate(
        &g,
        &GenerateOptions {
            class: Some(1),
            ..opts.clone()
        }
    )
    .is_err());
    let gc = tiny_g(4);
    assert!(class_label(&gc, None, Device::Cpu).is_err());
    assert!(class_label(&gc, Some(4), Device::Cpu).is_err());
    assert_eq!(
        class_label(&gc, Some(2), Device::Cpu)
            .unwrap()
            .unwrap()
            .to_vec(),
        vec![0.0, 0.0, 1.0, 0.0]
    );
    let paths = generate(
        &gc,
        &GenerateOptions {
            class: Some(2),
            grid: false,
            ..opts
        },
    )
    .unwrap();
    assert_eq!(paths.len(), 3);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn style_mixing_figure() {
    let g = tiny_g(0);
    let fig = style_mix(
        &g,
        &[1, 2],
        &[3, 4, 5],
        &[0, 1, 2],
        Truncation::psi(1.0),
        NoiseMode::Const,
        None,
    )
    .unwrap();
    assert_eq!((fig.width(), fig.height()), (16 * 4, 16 * 3));
    let rgb = fig.to_rgb8();
    // Top-left cell is blank; the top row holds the column seeds' images.
    assert!(rgb
        .enumerate_pixels()
        .filter(|(x, y, _)| *x < 16 && *y < 16)
        .all(|(_, _, p)| p.0 == [0, 0, 0]));
    let col =
        to_images(&generate_seed(&g, 3, Truncation::psi(1.0), NoiseMode::Const, None).unwrap())
            .unwrap()
            .remove(0)
            .to_rgb8();
    for y in 0..16 {
        for x in 0..16 {
            assert_eq!(rgb.get_pixel(16 + x, y), col.get_pixel(x, y));
        }
    }
    // Taking every style from the column seed reproduces the column image.
    let all: Vec<usize> = (0..g.num_ws()).collect();
    let fig = style_mix(
        &g,
        &[1],
        &[3],
        &all,
        Truncation::psi(1.0),
        NoiseMode::Const,
        None,
    )
    .unwrap()
    .to_rgb8();
    for y in 0..16 {
        for x in 0..16 {
            assert_eq!(fig.get_pixel(16 + x, 16 + y), col.get_pixel(x, y));
        }
    }
    assert!(style_mix(
        &g,
        &[1],
        &[2],
        &[99],
        Truncation::psi(1.0),
        NoiseMode::Const,
        None
    )
    .is_err());
}

#[test]
fn info_reports_config_and_parameter_counts() {
    let cfg = ModelConfig::preset("tiny", 32, 3, 0).unwrap();
    let mut rng = stylegan2::rng(4);
    let g = Generator::new(&cfg.generator, &mut rng, Device::Cpu).unwrap();
    let d = Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu).unwrap();
    let dir = tmpdir("info");
    let path = dir.join("nets.safetensors");
    save_networks(&path, &cfg, &[("G", &g), ("D", &d), ("G_ema", &g)]).unwrap();
    let report = info(&path).unwrap();
    use stylegan2::nn::Module;
    for needle in [
        "\"preset\": \"tiny\"".to_string(),
        "G: 75 tensors".to_string(),
        format!("{} trainable parameters", g.num_params()),
        "D: 37 tensors".to_string(),
        format!("{} trainable parameters", d.num_params()),
        "G_ema:".to_string(),
    ] {
        assert!(report.contains(&needle), "{needle:?} not in\n{report}");
    }
    assert!(info(dir.join("missing.safetensors")).is_err());
    let s = config_summary(&ModelConfig::preset("stylegan2", 1024, 3, 0).unwrap()).unwrap();
    assert!(
        s.contains("G 30370060 parameters (18 ws), D 29012513 parameters"),
        "{s}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
