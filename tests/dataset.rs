//! Labels (`dataset.json`), conditional training (`--cond`) and the
//! `stylegan2 dataset` conversion tool.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use stylegan2::data::tool::{convert, image_name, ConvertOptions, Transform};
use stylegan2::data::{self, synthetic, Dataset, ImageFolder, Loader};
use stylegan2::model::cli::generate_seed;
use stylegan2::model::{load_generator, Truncation};
use stylegan2::nn::NoiseMode;
use stylegan2::train::{TrainOptions, Trainer};
use stylegan2::Device;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sg2_dataset_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An RGB PNG whose pixel (x, y) is `f(x, y)`.
fn png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
        .save_with_format(path, image::ImageFormat::Png)
        .unwrap();
}

fn plain(path: &Path, v: u8) {
    png(path, 8, 8, |_, _| [v, v / 2, 255 - v]);
}

/// Three 8×8 images `a.png`, `sub/b.png`, `sub/c.png` and a dataset.json.
fn labeled_folder(dir: &Path, json: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    plain(&dir.join("a.png"), 10);
    plain(&dir.join("sub").join("b.png"), 100);
    plain(&dir.join("sub").join("c.png"), 200);
    std::fs::write(dir.join("dataset.json"), json).unwrap();
    dir.to_path_buf()
}

/// The files of `dir` (recursively) into a zip, named relative to `dir`.
fn zip_dir(dir: &Path, out: &Path) {
    fn walk(root: &Path, d: &Path, zw: &mut zip::ZipWriter<std::fs::File>) {
        let mut entries: Vec<_> = std::fs::read_dir(d).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, zw);
            } else {
                let name = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .replace('\\', "/");
                zw.start_file(name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                zw.write_all(&std::fs::read(&p).unwrap()).unwrap();
            }
        }
    }
    let mut zw = zip::ZipWriter::new(std::fs::File::create(out).unwrap());
    walk(dir, dir, &mut zw);
    zw.finish().unwrap();
}

const CLASSES_JSON: &str = r#"{"labels": [["sub/c.png", 1], ["a.png", 0], ["sub/b.png", 3]]}"#;

#[test]
fn labels_load_one_hot_from_folder_and_zip_and_floats_as_is() {
    let dir = tmpdir("labels");
    let folder = labeled_folder(&dir.join("cls"), CLASSES_JSON);
    let zip = dir.join("cls.zip");
    zip_dir(&folder, &zip);
    for path in [&folder, &zip] {
        let ds = ImageFolder::open(path).unwrap();
        // Images in sorted order a, sub/b, sub/c: classes 0, 3, 1; max 3 → 4 dims.
        assert_eq!(ds.label_dim(), 4, "{}", path.display());
        assert_eq!(ds.label(0).unwrap(), vec![1.0, 0.0, 0.0, 0.0]);
        assert_eq!(ds.label(1).unwrap(), vec![0.0, 0.0, 0.0, 1.0]);
        assert_eq!(ds.label(2).unwrap(), vec![0.0, 1.0, 0.0, 0.0]);
        let loader = Loader::new(Box::new(ds), true, 0).unwrap();
        let c = loader.labels(&[2, 0], Device::Cpu).unwrap();
        assert_eq!(c.dims(), &[2, 4]);
        assert_eq!(c.to_vec(), vec![0., 1., 0., 0., 1., 0., 0., 0.]);
    }
    // Float vectors are served as they are; integral floats are classes.
    let floats = labeled_folder(
        &dir.join("floats"),
        r#"{"labels": [["a.png", [0.5, -1]], ["sub/b.png", [2, 0.25]], ["sub/c.png", [0, 0]]]}"#,
    );
    let ds = ImageFolder::open(&floats).unwrap();
    assert_eq!(ds.label_dim(), 2);
    assert_eq!(ds.label(0).unwrap(), vec![0.5, -1.0]);
    assert_eq!(ds.label(1).unwrap(), vec![2.0, 0.25]);
    let f_cls = labeled_folder(
        &dir.join("fcls"),
        r#"{"labels": [["a.png", 2.0], ["sub/b.png", 0], ["sub/c.png", 1]]}"#,
    );
    assert_eq!(
        ImageFolder::open(&f_cls).unwrap().label(0).unwrap(),
        vec![0., 0., 1.]
    );
    // No labels: null, no "labels" key, or no dataset.json.
    let null = labeled_folder(&dir.join("null"), r#"{"labels": null}"#);
    assert_eq!(ImageFolder::open(&null).unwrap().label_dim(), 0);
    std::fs::write(null.join("dataset.json"), "{}").unwrap();
    assert_eq!(ImageFolder::open(&null).unwrap().label_dim(), 0);
    std::fs::remove_file(null.join("dataset.json")).unwrap();
    assert_eq!(ImageFolder::open(&null).unwrap().label_dim(), 0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn label_errors_name_the_problem() {
    let dir = tmpdir("label_errors");
    let cases = [
        (
            r#"{"labels": [["a.png", 0], ["sub/b.png", 1], ["sub/c.png", 1], ["gone.png", 2]]}"#,
            &["gone.png", "not an image of the dataset"][..],
        ),
        (
            r#"{"labels": [["a.png", 0], ["sub/b.png", 1]]}"#,
            &["sub/c.png", "has no label"],
        ),
        (
            r#"{"labels": [["a.png", 0], ["sub/b.png", [1, 2]], ["sub/c.png", 1]]}"#,
            &[
                "mixed label shapes",
                "a.png has class 0",
                "sub/b.png has an array of 2",
            ],
        ),
        (
            r#"{"labels": [["a.png", [1]], ["sub/b.png", [1, 2]], ["sub/c.png", [1]]]}"#,
            &["mixed label shapes", "sub/b.png"],
        ),
        (
            r#"{"labels": [["a.png", 0], ["sub/b.png", -1], ["sub/c.png", 1]]}"#,
            &["sub/b.png", "-1", "≥ 0"],
        ),
        (
            r#"{"labels": [["a.png", 0.5], ["sub/b.png", 0], ["sub/c.png", 1]]}"#,
            &["a.png", "integer"],
        ),
        (
            r#"{"labels": [["a.png", "cat"], ["sub/b.png", 0], ["sub/c.png", 1]]}"#,
            &["a.png", "expected a class"],
        ),
        (
            r#"{"labels": [["a.png", 0], ["a.png", 0], ["sub/b.png", 0], ["sub/c.png", 1]]}"#,
            &["a.png", "listed twice"],
        ),
        (r#"{"labels": [["a.png"]]}"#, &["entry 0"]),
        (r#"[1, 2]"#, &["expected an object"]),
        (r#"{"labels": 3}"#, &["must be a list"]),
        (r#"{"labels": [["a.png", 0"#, &["not valid JSON"]),
    ];
    for (k, (json, needles)) in cases.iter().enumerate() {
        let folder = labeled_folder(&dir.join(format!("case{k}")), json);
        let zip = dir.join(format!("case{k}.zip"));
        zip_dir(&folder, &zip);
        for path in [&folder, &zip] {
            let e = ImageFolder::open(path).err().expect(json).to_string();
            assert!(e.contains("dataset.json"), "{json}: {e}");
            for n in needles.iter() {
                assert!(e.contains(n), "{json}: '{n}' not in: {e}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn cond_opts(data: &str, run: &Path) -> TrainOptions {
    TrainOptions {
        preset: Some("tiny".into()),
        resolution: Some(16),
        data: data.into(),
        batch: Some(4),
        kimg: 0.008,
        snap_kimg: 0.0,
        grid: 6,
        seed: 1,
        device: Device::Cpu,
        run_dir: Some(run.to_path_buf()),
        cond: true,
        ..TrainOptions::default()
    }
}

#[test]
fn cond_without_labels_is_refused() {
    let dir = tmpdir("cond_refused");
    let folder = labeled_folder(&dir.join("data"), r#"{"labels": null}"#);
    let o = TrainOptions {
        resolution: None,
        ..cond_opts(folder.to_str().unwrap(), &dir.join("run"))
    };
    let e = Trainer::new(o).err().expect("refused").to_string();
    assert!(e.contains("--cond") && e.contains("has no labels"), "{e}");
    assert!(
        !dir.join("run").exists(),
        "no run directory for a refused run"
    );
    // Unlabeled data still trains without --cond; labels are then ignored.
    let labeled = labeled_folder(&dir.join("labeled"), CLASSES_JSON);
    let t = Trainer::new(TrainOptions {
        resolution: None,
        cond: false,
        ..cond_opts(labeled.to_str().unwrap(), &dir.join("run2"))
    })
    .unwrap();
    assert_eq!(t.config.generator.c_dim, 0);
    // ... and a broken dataset.json does not stop unconditional training
    // (the official loader reads it only for --cond), but stops --cond.
    let broken = labeled_folder(&dir.join("broken"), r#"{"labels": [["x.png", 0]]}"#);
    let o = |cond| TrainOptions {
        resolution: None,
        cond,
        ..cond_opts(broken.to_str().unwrap(), &dir.join("run3"))
    };
    assert_eq!(Trainer::new(o(false)).unwrap().config.generator.c_dim, 0);
    let e = Trainer::new(o(true)).err().expect("refused").to_string();
    assert!(e.contains("x.png") && e.contains("dataset.json"), "{e}");
    // An unconditional snapshot cannot continue with --cond.
    let s = Trainer::new(TrainOptions {
        cond: false,
        kimg: 0.004,
        ..cond_opts("synthetic:8", &dir.join("run4"))
    })
    .unwrap()
    .run()
    .unwrap();
    let e = Trainer::new(TrainOptions {
        kimg: 0.008,
        resume: s.last_snapshot,
        ..cond_opts("synthetic:8", &dir.join("run5"))
    })
    .err()
    .expect("refused")
    .to_string();
    assert!(
        e.contains("--cond given") && e.contains("unconditional"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn conditional_training_writes_a_snapshot_generate_samples_per_class() {
    let dir = tmpdir("cond_run");
    let run = dir.join("run");
    let mut t = Trainer::new(cond_opts("synthetic:64", &run)).unwrap();
    assert_eq!(
        (t.config.generator.c_dim, t.config.discriminator.c_dim),
        (3, 3)
    );
    // The grid: 6 cells in rows of 3, one class per row (class 0 first).
    let plan = t.grid_plan.clone();
    assert_eq!(plan.cols, 3);
    let labels = plan.labels.unwrap();
    for (k, l) in labels.iter().enumerate() {
        let mut want = vec![0.0; 3];
        want[k / 3] = 1.0;
        assert_eq!(l, &want, "cell {k}");
        assert_eq!(t.loader.dataset().label(plan.reals[k]).unwrap(), want);
    }
    let s = t.run().unwrap();
    assert_eq!(s.steps, 2);
    assert_eq!(s.c_dim, 3);
    for f in ["reals.png", "fakes_init00000000.png", "fakes00000008.png"] {
        assert!(run.join(f).exists(), "{f}");
    }
    let snap = s.last_snapshot.unwrap();
    let (cfg, g) = load_generator(&snap, Device::Cpu).unwrap();
    assert_eq!(cfg.generator.c_dim, 3);
    let img = |class| {
        generate_seed(&g, 5, Truncation::default(), NoiseMode::Const, class).map(|t| t.to_vec())
    };
    let (c0, c1) = (img(Some(0)).unwrap(), img(Some(1)).unwrap());
    assert!(c0.iter().all(|v| v.is_finite()));
    assert_ne!(c0, c1, "the label must change the image");
    assert!(img(Some(3)).is_err() && img(None).is_err());

    // The command line: generate --class 1 on the snapshot.
    let out = dir.join("imgs");
    let o = Command::new(env!("CARGO_BIN_EXE_stylegan2"))
        .args(["generate", "--weights", snap.to_str().unwrap()])
        .args(["--seeds", "0-1", "--class", "1", "--device", "cpu", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("seed0001.png").exists());

    // Resuming continues conditionally without --cond; an unlabeled dataset
    // cannot feed the conditional snapshot.
    let resumed = Trainer::new(TrainOptions {
        cond: false,
        kimg: 0.012,
        resume: Some(snap.clone()),
        ..cond_opts("synthetic:64", &dir.join("run2"))
    })
    .unwrap();
    assert!(resumed.cond && resumed.cur_nimg == 8);
    let unlabeled = dir.join("unlabeled");
    png(&unlabeled.join("a.png"), 16, 16, |x, y| {
        [x as u8, y as u8, 0]
    });
    let e = Trainer::new(TrainOptions {
        resolution: None,
        kimg: 0.012,
        resume: Some(snap),
        ..cond_opts(unlabeled.to_str().unwrap(), &dir.join("run3"))
    })
    .err()
    .expect("refused")
    .to_string();
    assert!(e.contains("has no labels"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn trains_conditionally_on_a_labeled_zip() {
    let dir = tmpdir("cond_zip");
    let folder = labeled_folder(&dir.join("data"), CLASSES_JSON);
    let zip = dir.join("data.zip");
    zip_dir(&folder, &zip);
    let s = Trainer::new(TrainOptions {
        resolution: None,
        batch: Some(2),
        kimg: 0.002,
        ..cond_opts(zip.to_str().unwrap(), &dir.join("run"))
    })
    .unwrap()
    .run()
    .unwrap();
    let (cfg, _) = load_generator(s.last_snapshot.unwrap(), Device::Cpu).unwrap();
    assert_eq!((cfg.generator.c_dim, cfg.generator.img_resolution), (4, 8));
    std::fs::remove_dir_all(&dir).ok();
}

/// The demo's grid of 32 has 4 rows for 3 classes: the fourth row is
/// class 0 again, with the next images of that class (the official
/// rotation), not the first row's images again.
#[test]
fn a_class_that_comes_round_again_shows_new_reals() {
    let dir = tmpdir("cond_grid");
    let t = Trainer::new(TrainOptions {
        grid: 32,
        ..cond_opts("synthetic:300", &dir.join("run"))
    })
    .unwrap();
    let plan = &t.grid_plan;
    assert_eq!((plan.cols, plan.reals.len()), (8, 32));
    let labels = plan.labels.as_ref().unwrap();
    for (k, (label, &real)) in labels.iter().zip(&plan.reals).enumerate() {
        let class = label.iter().position(|&v| v == 1.0).unwrap();
        assert_eq!(class, (k / 8) % 3, "cell {k}");
        assert_eq!(&t.loader.dataset().label(real).unwrap(), label);
    }
    let mut reals = plan.reals.clone();
    reals.sort_unstable();
    reals.dedup();
    assert_eq!(reals.len(), 32, "{:?}", plan.reals);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn synthetic_labels_are_the_shape_kind() {
    let plain = data::open("synthetic:6", Some(16), 2).unwrap();
    let labeled = data::open_with_labels("synthetic:6", Some(16), 2, true).unwrap();
    assert_eq!((plain.label_dim(), labeled.label_dim()), (0, 3));
    assert_eq!(labeled.label(4).unwrap(), vec![0.0, 1.0, 0.0]);
    // The class decides the shapes: some image must change.
    let differ = (0..6).any(|i| plain.image(i).unwrap() != labeled.image(i).unwrap());
    assert!(differ);
}

/// The shape kind of a synthetic image, told from its pixels: the shape is
/// what differs from the corner's colour (a bright hue, value 1, on a
/// background of 0.1, so ≥ 0.9 apart in some channel; the threshold
/// 0.3 keeps edge pixels more than half covered). A ring has the
/// background at its centre; a rectangle fills its bounding box, lying,
/// with sides ≥ 1.3:1 (drawn 1.5–2:1, edges cost ≤ 1 pixel a side); a
/// disc is round (bounding box near square) and fills π/4 of it. Returns
/// the kind (0 disc, 1 rectangle, 2 ring) and the mask's centroid in
/// pixels.
fn shape_kind(img: &[u8], res: usize) -> (usize, f32, f32) {
    let px = |x: usize, y: usize, c: usize| img[(c * res + y) * res + x] as i32;
    let inside = |x: usize, y: usize| (0..3).any(|c| (px(x, y, c) - px(0, 0, c)).abs() > 76);
    let (mut n, mut sx, mut sy) = (0usize, 0usize, 0usize);
    let (mut x0, mut y0, mut x1, mut y1) = (res, res, 0, 0);
    for y in 0..res {
        for x in 0..res {
            if inside(x, y) {
                (n, sx, sy) = (n + 1, sx + x, sy + y);
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    assert!(n > 0, "no shape");
    let (w, h) = ((x1 + 1 - x0) as f32, (y1 + 1 - y0) as f32);
    let (aspect, fill) = (w.max(h) / w.min(h), n as f32 / (w * h));
    let (cx, cy) = (sx as f32 / n as f32, sy as f32 / n as f32);
    let kind = if !inside(res / 2, res / 2) {
        2
    } else if aspect >= 1.3 && fill > 0.85 {
        assert!(w > h, "a standing rectangle: {w}×{h}");
        1
    } else {
        assert!(
            aspect < 1.2 && (0.65..0.9).contains(&fill),
            "neither disc, rectangle nor ring: {w}×{h}, fill {fill}"
        );
        0
    };
    (kind, cx, cy)
}

#[test]
fn synthetic_shapes_are_centred_discs_rectangles_and_rings_in_equal_shares() {
    let (res, n) = (32, 600);
    let ds = data::open("synthetic:600", Some(res), 0).unwrap();
    // The fixed background, rounded to u8 as the dataset does.
    let bg = synthetic::BACKGROUND.map(|v| (v * 255.0 + 0.5) as u8);
    let mut count = [0usize; 3];
    for i in 0..n {
        let img = ds.image(i).unwrap();
        let (kind, cx, cy) = shape_kind(&img, res);
        count[kind] += 1;
        // Every corner pixel is the background (the largest shape, a
        // ring of outer radius 0.42 ± 0.02, stays 0.06 of the width from
        // the border).
        for (x, y) in [(0, 0), (res - 1, 0), (0, res - 1), (res - 1, res - 1)] {
            let p: Vec<u8> = (0..3).map(|c| img[(c * res + y) * res + x]).collect();
            assert_eq!(p, bg, "image {i}: corner ({x}, {y})");
        }
        // Centred within ±JITTER of the width (0.64 px), plus a pixel for
        // the pixel grid (centres at +0.5) and anti-aliasing.
        let c = res as f32 / 2.0 - 0.5;
        let tol = synthetic::JITTER * res as f32 + 1.0;
        assert!(
            (cx - c).abs() < tol && (cy - c).abs() < tol,
            "image {i}: centroid ({cx}, {cy})"
        );
    }
    // Each kind with probability 1/3: 200 ± 11.5 (binomial sd); ±50 is
    // over 4 sd.
    for (kind, &c) in count.iter().enumerate() {
        assert!((150..=250).contains(&c), "kind {kind}: {count:?}");
    }
    // With labels, image i is of kind i % 3.
    let labeled = data::open_with_labels("synthetic:30", Some(res), 0, true).unwrap();
    for i in 0..30 {
        assert_eq!(
            shape_kind(&labeled.image(i).unwrap(), res).0,
            i % 3,
            "image {i}"
        );
    }
}

/// The hue in degrees of an 8-bit RGB colour (the HSV hexcone).
fn hue(rgb: [u8; 3]) -> f32 {
    let [r, g, b] = rgb.map(|v| v as f32);
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    let d = max - min;
    let h = if max == r {
        (g - b) / d
    } else if max == g {
        2.0 + (b - r) / d
    } else {
        4.0 + (r - g) / d
    };
    (60.0 * h).rem_euclid(360.0)
}

#[test]
fn synthetic_shapes_take_hues_from_their_kinds_third_of_the_circle() {
    // The documented thirds, written out rather than read from
    // `synthetic::hue_range`: a change of that function (back to the full
    // circle, say) must fail here, not move the expectation with it.
    const THIRDS: [std::ops::Range<f32>; 3] = [0.0..120.0, 120.0..240.0, 240.0..360.0];
    for (kind, third) in THIRDS.iter().enumerate() {
        assert_eq!(synthetic::hue_range(kind), *third, "hue_range({kind})");
    }
    let (res, n) = (32, 600);
    for labeled in [false, true] {
        let ds = data::open_with_labels("synthetic:600", Some(res), 0, labeled).unwrap();
        let mut seen = [(f32::MAX, f32::MIN); 3];
        for i in 0..n {
            let img = ds.image(i).unwrap();
            let (kind, _, _) = shape_kind(&img, res);
            // A pixel the shape covers whole: value 1, so its largest
            // channel is 255 (edge pixels mix in the background).
            let px = |p: usize| [0, 1, 2].map(|c| img[c * res * res + p]);
            let p = (0..res * res)
                .find(|&p| px(p).contains(&255))
                .unwrap_or_else(|| panic!("image {i}: no fully covered pixel"));
            let h = hue(px(p));
            let range = THIRDS[kind].clone();
            // Channels rounded to 8 bits move the hue by at most
            // 60° · (0.5 + 0.5) / (255 · 0.6) ≈ 0.39°: in a sextant the hue
            // is 60° · (mid − min) / (max − min) with max = 255 exact, mid
            // and min each off by ≤ 0.5, max − min ≥ 255 · 0.6 (saturation
            // ≥ 0.6); 360° is 0°.
            let inside = |h: f32| (range.start - 0.5..range.end + 0.5).contains(&h);
            assert!(
                inside(h) || inside(h + 360.0),
                "image {i} (kind {kind}): hue {h}° outside {range:?}"
            );
            let h = if kind == 2 && h < 1.0 { h + 360.0 } else { h };
            seen[kind] = (seen[kind].0.min(h), seen[kind].1.max(h));
        }
        // About 200 uniform draws per kind span nearly all of its 120°.
        for (kind, (lo, hi)) in seen.into_iter().enumerate() {
            let range = &THIRDS[kind];
            assert!(
                lo < range.start + 10.0 && hi > range.end - 10.0,
                "kind {kind} (labeled {labeled}): hues {lo}..{hi} of {range:?}"
            );
        }
    }
}

/// Only `synthetic` and `synthetic:…` name the built-in set: a folder or
/// zip whose name merely starts so (`synthetic.zip`, `synthetic-shapes/`)
/// is data like any other. It was refused as a malformed `synthetic:N`.
#[test]
fn data_named_like_synthetic_is_a_folder_or_zip() {
    let dir = tmpdir("synthname");
    let folder = labeled_folder(&dir.join("synthetic-shapes"), CLASSES_JSON);
    zip_dir(&folder, &dir.join("synthetic.zip"));
    for spec in ["synthetic-shapes", "synthetic.zip"] {
        assert!(!data::is_synthetic(spec), "{spec}");
        // Relative, as typed (an absolute path never starts so): opened as
        // a folder, its 8×8 images checked, then refused against
        // --resolution 16 before anything is trained.
        let o = Command::new(env!("CARGO_BIN_EXE_stylegan2"))
            .args(["train", "--data", spec, "--resolution", "16"])
            .args(["--outdir", "runs", "--device", "cpu"])
            .current_dir(&dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{spec}: {err}");
        assert!(
            err.contains(&format!("{spec} holds 8×8 images")),
            "{spec}: {err}"
        );
    }
    for (spec, ok) in [
        ("synthetic", true),
        ("synthetic:5", true),
        ("synthetic:", false),
        ("synthetic:abc", false),
        ("synthetic:0", false),
    ] {
        assert!(data::is_synthetic(spec), "{spec}");
        assert_eq!(data::open(spec, Some(8), 0).is_ok(), ok, "{spec}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `dataset --source synthetic:N` writes the built-in set as `train`
/// draws it (seed 0): read back as a labeled folder, every image and label
/// equals the synthetic dataset's, in order (PNG is lossless).
#[test]
fn dataset_tool_exports_the_synthetic_set_with_its_kinds_as_classes() {
    let dir = tmpdir("export");
    let opts = |dest: &Path, transform| ConvertOptions {
        source: "synthetic:12".into(),
        dest: dest.to_path_buf(),
        resolution: Some(16),
        transform,
        progress: false,
        skip_bad: false,
    };
    let dest = dir.join("shapes");
    let s = convert(&opts(&dest, Transform::None)).unwrap();
    assert_eq!(
        (s.images, s.resolution, s.channels, s.label_dim, s.skipped),
        (12, 16, 3, 3, 0)
    );
    let want = data::open_with_labels("synthetic:12", Some(16), 0, true).unwrap();
    let got = data::open_with_labels(dest.to_str().unwrap(), None, 0, true).unwrap();
    assert_eq!((got.len(), got.resolution(), got.label_dim()), (12, 16, 3));
    for i in 0..12 {
        assert_eq!(got.image(i).unwrap(), want.image(i).unwrap(), "image {i}");
        assert_eq!(got.label(i).unwrap(), want.label(i).unwrap(), "label {i}");
    }
    // The crops are for other images; nothing is written.
    let cropped = dir.join("cropped");
    let e = convert(&opts(&cropped, Transform::CenterCrop)).unwrap_err();
    assert!(e.to_string().contains("--transform"), "{e}");
    assert!(!cropped.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

fn open_dest(p: &Path) -> ImageFolder {
    ImageFolder::open(p).unwrap()
}

#[test]
fn dataset_tool_crops_resizes_and_carries_labels() {
    let dir = tmpdir("tool");
    let src = dir.join("src");
    // 12×8: blue 2-pixel borders left and right, red centre 8×8.
    let bordered = |x: u32, _| {
        if (2..10).contains(&x) {
            [250, 0, 0]
        } else {
            [0, 0, 250]
        }
    };
    png(&src.join("wide.png"), 12, 8, bordered);
    // 16×32: green band in the middle rows 8..24, black elsewhere.
    png(&src.join("sub").join("tall.png"), 16, 32, |_, y| {
        if (8..24).contains(&y) {
            [0, 240, 0]
        } else {
            [0, 0, 0]
        }
    });
    // A JPEG too.
    image::RgbImage::from_fn(20, 20, |_, _| image::Rgb([200, 200, 200]))
        .save_with_format(src.join("sub").join("gray.jpg"), image::ImageFormat::Jpeg)
        .unwrap();
    std::fs::write(
        src.join("dataset.json"),
        r#"{"labels": [["wide.png", 2], ["sub/tall.png", 0], ["sub/gray.jpg", 1]]}"#,
    )
    .unwrap();
    let opts = |dest: &Path, res: Option<usize>, t: Transform| ConvertOptions {
        source: src.clone(),
        dest: dest.to_path_buf(),
        resolution: res,
        transform: t,
        progress: false,
        skip_bad: false,
    };
    for dest in [dir.join("out.zip"), dir.join("outdir")] {
        let s = convert(&opts(&dest, Some(8), Transform::CenterCrop)).unwrap();
        assert_eq!(
            (s.images, s.resolution, s.channels, s.label_dim),
            (3, 8, 3, 3)
        );
        let ds = open_dest(&dest);
        assert_eq!((ds.len(), ds.resolution(), ds.channels()), (3, 8, 3));
        // Sorted sources: sub/gray.jpg, sub/tall.png, wide.png → 0, 1, 2.
        assert!(
            ds.file_name(2).ends_with(&image_name(2)),
            "{}",
            ds.file_name(2)
        );
        assert_eq!(ds.label(0).unwrap(), vec![0., 1., 0.]);
        assert_eq!(ds.label(1).unwrap(), vec![1., 0., 0.]);
        assert_eq!(ds.label(2).unwrap(), vec![0., 0., 1.]);
        // The crop keeps the red centre exactly (8 = side: no resize) ...
        let wide = ds.image(2).unwrap();
        assert!(wide[..64].iter().all(|&r| r == 250) && wide[128..].iter().all(|&b| b == 0));
        // ... and the tall image's middle 16 rows, green after the resize
        // (Lanczos overshoot stays within a few levels).
        let tall = ds.image(1).unwrap();
        assert!(
            tall[64..128].iter().all(|&g| g > 225),
            "{:?}",
            &tall[64..128]
        );
        // Refuses to overwrite.
        let e = convert(&opts(&dest, Some(8), Transform::CenterCrop))
            .unwrap_err()
            .to_string();
        assert!(e.contains("refusing to overwrite"), "{e}");
    }
    // center-crop-wide: the 12×8 image at full width 8 → 8×5 band (rounded),
    // letterboxed: black top and bottom rows.
    let wide_dir = dir.join("wide");
    convert(&opts(&wide_dir, Some(8), Transform::CenterCropWide)).unwrap();
    let img = open_dest(&wide_dir).image(2).unwrap();
    assert!(
        img[..8].iter().all(|&v| v == 0),
        "top row black: {:?}",
        &img[..8]
    );
    assert!(
        img[3 * 8..4 * 8].iter().any(|&v| v > 100),
        "band in the middle"
    );
    // No transform and no resolution: the images must already be training images.
    let e = convert(&opts(&dir.join("none"), None, Transform::None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("gray.jpg") && e.contains("power of two"), "{e}");
    assert!(convert(&opts(&dir.join("n2"), None, Transform::CenterCrop)).is_err());
    assert!(Transform::parse("crop").is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn dataset_tool_names_a_corrupt_file_and_leaves_no_output() {
    let dir = tmpdir("tool_corrupt");
    let src = dir.join("src");
    plain(&src.join("a.png"), 1);
    std::fs::write(src.join("b.png"), b"\x89PNG not really").unwrap();
    for dest in [dir.join("o.zip"), dir.join("o")] {
        let e = convert(&ConvertOptions {
            source: src.clone(),
            dest: dest.clone(),
            resolution: Some(8),
            transform: Transform::CenterCrop,
            progress: false,
            skip_bad: false,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("b.png"), "{e}");
        assert!(!dest.exists(), "{}", dest.display());
    }
    // Labels that do not fit the images stop the tool too.
    std::fs::remove_file(src.join("b.png")).unwrap();
    std::fs::write(src.join("dataset.json"), r#"{"labels": [["b.png", 0]]}"#).unwrap();
    let e = convert(&ConvertOptions {
        source: src.clone(),
        dest: dir.join("o3"),
        resolution: None,
        transform: Transform::None,
        progress: false,
        skip_bad: false,
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("b.png") && e.contains("dataset.json"), "{e}");

    // The command line: summary line, and an existing non-empty destination refused.
    std::fs::remove_file(src.join("dataset.json")).unwrap();
    let run = |dest: &Path| {
        Command::new(env!("CARGO_BIN_EXE_stylegan2"))
            .args(["dataset", "--quiet", "--source"])
            .arg(&src)
            .arg("--dest")
            .arg(dest)
            .output()
            .unwrap()
    };
    let o = run(&dir.join("cli.zip"));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("wrote 1 images (8×8, RGB, no labels)"),
        "{out}"
    );
    let o = run(&dir.join("cli.zip"));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing"));
    std::fs::remove_dir_all(&dir).ok();
}
