//! Finite-difference checks (first and second order, as R1 needs) of the
//! whole augment pipeline w.r.t. its images, with fixed parameters that turn
//! on every transformation, and the draws' basic laws.

mod common;
use common::{gradcheck, input, Check};
use stylegan2::augment::{AugmentDraws, AugmentPipe, SampleParams};

fn every_transformation() -> SampleParams {
    SampleParams {
        xflip: true,
        rotate90: 1,
        xint: [0.1, -0.1],
        scale: 1.2,
        rotate_pre: 0.4,
        aniso: 0.9,
        rotate_post: -0.7,
        xfrac: [0.05, 0.02],
        brightness: 0.1,
        contrast: 1.3,
        lumaflip: true,
        hue: 0.8,
        saturation: 0.6,
        imgfilter: [1.5, 1.0, 0.7, 2.0],
        noise: 0.1,
        cutout: 0.5,
        cutout_center: [0.3, 0.7],
    }
}

#[test]
fn bgc_noise_cutout_differentiates_twice() {
    let x = input(&[1, 3, 8, 8], 5);
    let mut pipe = AugmentPipe::preset("bgc").unwrap();
    (pipe.noise, pipe.cutout) = (1.0, 1.0);
    let draws = AugmentDraws {
        samples: vec![every_transformation()],
        noise: Some(vec![0.5; 3 * 8 * 8]),
    };
    gradcheck(
        "augment bgc + noise + cutout",
        |t| pipe.apply(&t[0], &draws)?.square(),
        &[x],
        Check::default(),
    );
}

#[test]
fn image_filtering_differentiates_twice() {
    // 22×22: the smallest images the 43-tap filter's reflect padding allows.
    let x = input(&[1, 1, 22, 22], 7);
    let pipe = AugmentPipe::preset("filter").unwrap();
    let draws = AugmentDraws {
        samples: vec![every_transformation()],
        noise: None,
    };
    gradcheck(
        "augment filter",
        |t| pipe.apply(&t[0], &draws)?.square(),
        &[x],
        Check::default(),
    );
}

#[test]
fn p_zero_draws_the_identity_and_bgc_then_nearly_keeps_the_images() {
    let pipe = AugmentPipe::preset("bgcfnc").unwrap();
    let mut rng = stylegan2::rng(3);
    let d = pipe.draw(0.0, [5, 3, 8, 8], &mut rng);
    assert!(d.samples.iter().all(|s| SampleParams {
        cutout_center: [0.5; 2],
        ..s.clone()
    } == SampleParams::default()));
    // At p = 0 the official geometric stage still resamples (up, identity
    // grid, down with the orthogonal symlet filter): close to the input away
    // from the borders.
    let x = input(&[2, 3, 16, 16], 6);
    let bgc = AugmentPipe::preset("bgc").unwrap();
    let y = bgc.augment(&x, 0.0, &mut rng).unwrap();
    let (xv, yv) = (x.to_vec(), y.to_vec());
    let mut worst = 0f32;
    for i in 0..xv.len() {
        let (r, c) = ((i / 16) % 16, i % 16);
        if (3..13).contains(&r) && (3..13).contains(&c) {
            worst = worst.max((xv[i] - yv[i]).abs());
        }
    }
    assert!(
        worst < 0.1,
        "identity augmentation moved a pixel by {worst}"
    );
}

#[test]
fn p_one_applies_each_transformation_about_half_the_time_or_more() {
    let pipe = AugmentPipe::preset("bgc").unwrap();
    let mut rng = stylegan2::rng(4);
    let d = pipe.draw(1.0, [4000, 3, 8, 8], &mut rng);
    let frac = |f: &dyn Fn(&SampleParams) -> bool| {
        d.samples.iter().filter(|s| f(s)).count() as f64 / d.samples.len() as f64
    };
    // x-flip: applied with p, then flips with 1/2; rotate90: 3/4 turn.
    assert!((frac(&|s| s.xflip) - 0.5).abs() < 0.04);
    assert!((frac(&|s| s.rotate90 != 0) - 0.75).abs() < 0.04);
    assert!((frac(&|s| s.scale != 1.0) - 1.0).abs() < 1e-9);
    // Rotation: pre and post each with 1 − √(1 − p) = 1 at p = 1.
    assert!((frac(&|s| s.rotate_pre != 0.0 && s.rotate_post != 0.0) - 1.0).abs() < 1e-9);
}
