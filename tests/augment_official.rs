//! The augment pipeline against the official one (tests/data/make_augment.py
//! ran `training/augment.py` with scripted random draws): each
//! transformation alone and the bgc chain, on RGB [2 or 4, 3, 32, 32] and
//! gray [2, 1, 16, 16] images, forward and the input gradient of
//! `L = Σ R·y + ½ Σ y²`, on the CPU and every kernel device.

mod common;
use common::{assert_close, golden, kernel_devices};
use stylegan2::augment::{AugmentDraws, AugmentPipe, SampleParams};
use stylegan2::{grad, Device, Tensor};

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/augment_official.safetensors"
);

/// The pipeline of a case: its transformations on with multiplier 1.
fn pipe(case: &str) -> AugmentPipe {
    let mut p = AugmentPipe::default();
    match case {
        "bgc" => return AugmentPipe::preset("bgc").unwrap(),
        "xflip" => p.xflip = 1.0,
        "rotate90" => p.rotate90 = 1.0,
        "xint" => p.xint = 1.0,
        "scale" => p.scale = 1.0,
        "rotate" => p.rotate = 1.0,
        "aniso" => p.aniso = 1.0,
        "xfrac" => p.xfrac = 1.0,
        "brightness" => p.brightness = 1.0,
        "contrast" => p.contrast = 1.0,
        "lumaflip" => p.lumaflip = 1.0,
        "hue" => p.hue = 1.0,
        "saturation" => p.saturation = 1.0,
        "imgfilter" => p.imgfilter = 1.0,
        "noise" => p.noise = 1.0,
        "cutout" => p.cutout = 1.0,
        _ => panic!("unknown case {case}"),
    }
    p
}

/// One row of `{case}.{set}.params` (columns of make_augment.py's PARAM_COLUMNS).
fn sample(r: &[f32]) -> SampleParams {
    SampleParams {
        xflip: r[0] != 0.0,
        rotate90: r[1] as u8,
        xint: [r[2], r[3]],
        scale: r[4],
        rotate_pre: r[5],
        aniso: r[6],
        rotate_post: r[7],
        xfrac: [r[8], r[9]],
        brightness: r[10],
        contrast: r[11],
        lumaflip: r[12] != 0.0,
        hue: r[13],
        saturation: r[14],
        imgfilter: [r[15], r[16], r[17], r[18]],
        noise: r[19],
        cutout: r[20],
        cutout_center: [r[21], r[22]],
    }
}

/// Tolerances, relative to the largest |reference| (≈ 1–3 here).
///
/// Geometric cases: the official code composes the inverse matrix in f32
/// through ~10 products (and rounds cos(π/2) to −4e-8), this crate in f64,
/// so grid points differ by ~1e-6 in normalized units, which these random
/// images (up to 2 apart per pixel) turn into ~1e-5; measured worst on the
/// CPU 1.1e-5 (rotate). 1e-4 leaves room for a GPU's FMA contraction; a
/// wrong matrix order, sign or half-pixel offset is off by O(0.1–1).
/// Other cases are a few f32 operations per pixel (43-tap filters included):
/// measured worst 3.5e-7; 5e-6.
fn tolerance(case: &str) -> f64 {
    match case {
        "xflip" | "rotate90" | "xint" | "scale" | "rotate" | "aniso" | "xfrac" | "bgc" => 1e-4,
        _ => 5e-6,
    }
}

fn cases(g: &golden::Golden) -> Vec<(String, String)> {
    g.keys()
        .iter()
        .filter_map(|k| k.strip_suffix(".y"))
        .map(|k| {
            let (case, set) = k.split_once('.').expect("{case}.{set}.y");
            (case.to_string(), set.to_string())
        })
        .collect()
}

/// y and d/dx of Σ R·y + ½ Σ y² on `device`.
fn run(g: &golden::Golden, case: &str, set: &str, device: Device) -> (Vec<f32>, Vec<f32>) {
    let key = format!("{case}.{set}");
    let (rows_shape, rows) = g.raw(&format!("{key}.params"));
    let n = rows_shape[0];
    let x_all = g.tensor(&format!("x_{set}"));
    let x = x_all
        .narrow(0, 0, n)
        .unwrap()
        .detach()
        .to_device(device)
        .unwrap();
    x.set_requires_grad(true).unwrap();
    let draws = AugmentDraws {
        samples: rows.chunks(rows_shape[1]).map(sample).collect(),
        noise: g
            .keys()
            .contains(&format!("{key}.noise").as_str())
            .then(|| g.data(&format!("{key}.noise")).to_vec()),
    };
    let y = pipe(case)
        .apply(&x, &draws)
        .unwrap_or_else(|e| panic!("{key} on {device}: {e}"));
    let r: Vec<f32> = (0..y.numel())
        .map(|i| (0.37 * i as f64 + 0.1).sin() as f32)
        .collect();
    let r = Tensor::from_vec(r, y.dims().to_vec(), device).unwrap();
    let loss = r
        .mul(&y)
        .unwrap()
        .sum_all()
        .unwrap()
        .add(&y.square().unwrap().sum_all().unwrap().scale(0.5).unwrap())
        .unwrap();
    let gx = grad(&[loss], std::slice::from_ref(&x), None, false).unwrap()[0]
        .clone()
        .expect("x takes a gradient");
    (y.to_vec(), gx.to_vec())
}

#[test]
fn every_case_matches_the_official_pipeline_on_every_device() {
    let g = golden::load_path(FILE);
    let all = cases(&g);
    assert_eq!(all.len(), 31, "cases in {FILE}");
    let mut devices = vec![Device::Cpu];
    devices.extend(kernel_devices());
    for (case, set) in &all {
        let key = format!("{case}.{set}");
        let tol = tolerance(case);
        for &device in &devices {
            let (y, gx) = run(&g, case, set, device);
            let worst = |a: &[f32], b: &[f32]| {
                let m = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                a.iter().zip(b).fold(0f32, |w, (x, y)| w.max((x - y).abs())) / m
            };
            eprintln!(
                "{key} on {device}: worst |Δ|/max|ref| y {:.1e}, grad {:.1e}",
                worst(&y, g.data(&format!("{key}.y"))),
                worst(&gx, g.data(&format!("{key}.grad")))
            );
            assert_close(
                &format!("{key} y on {device}"),
                &y,
                g.data(&format!("{key}.y")),
                tol,
                tol,
            );
            assert_close(
                &format!("{key} grad on {device}"),
                &gx,
                g.data(&format!("{key}.grad")),
                tol,
                tol,
            );
        }
    }
}
