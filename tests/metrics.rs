//! The sliced Wasserstein distance (src/metrics): the Laplacian pyramid,
//! the distance's behaviour on known distributions, its independence of the
//! image order, and `stylegan2 metric` / `train --metrics swd` end to end.

use rand::Rng;
use std::path::Path;
use std::process::{Command, Output};
use stylegan2::data::{Dataset, Synthetic};
use stylegan2::metrics::swd::{
    self, laplacian_pyramid, level_resolutions, pyr_down, pyr_up, reconstruct_laplacian_pyramid,
    swd_images, through_u8, Descriptors,
};
use stylegan2::metrics::Metric;

fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = stylegan2::rng(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `n` images of the synthetic dataset (shapes on gradients) in [-1, 1].
fn synthetic(n: usize, res: usize, seed: u64) -> Vec<f32> {
    let ds = Synthetic::new(res, 3, n, seed).unwrap();
    (0..n)
        .flat_map(|i| ds.image(i).unwrap())
        .map(|u| u as f32 / 127.5 - 1.0)
        .collect()
}

/// `n` smooth images: per channel a random linear gradient, no edges.
fn gradients(n: usize, res: usize, seed: u64) -> Vec<f32> {
    let mut rng = stylegan2::rng(seed);
    let mut out = Vec::with_capacity(n * 3 * res * res);
    for _ in 0..n * 3 {
        let (a, b, c): (f32, f32, f32) = (
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
            rng.random_range(-0.5..0.5),
        );
        for y in 0..res {
            for x in 0..res {
                let (u, v) = (x as f32 / res as f32 - 0.5, y as f32 / res as f32 - 0.5);
                out.push(a * u + b * v + c);
            }
        }
    }
    out
}

/// Reflection about the edge sample, written out case by case (scipy's
/// `mode="mirror"` for a 5-tap filter on n ≥ 3).
fn mirror_ref(i: isize, n: usize) -> usize {
    let n = n as isize;
    if i < 0 {
        (-i) as usize
    } else if i >= n {
        (2 * (n - 1) - i) as usize
    } else {
        i as usize
    }
}

/// The official `scipy.ndimage.convolve(x, gain·gaussian_filter, mirror)`,
/// as a direct (non-separable) 5×5 convolution of one plane.
fn conv5x5(x: &[f32], h: usize, w: usize, gain: f32) -> Vec<f32> {
    let t = [1.0f32, 4.0, 6.0, 4.0, 1.0];
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for xx in 0..w {
            let mut s = 0.0f64;
            for (ky, ty) in t.iter().enumerate() {
                for (kx, tx) in t.iter().enumerate() {
                    let sy = mirror_ref(y as isize + ky as isize - 2, h);
                    let sx = mirror_ref(xx as isize + kx as isize - 2, w);
                    s += (ty * tx / 256.0) as f64 * x[sy * w + sx] as f64;
                }
            }
            out[y * w + xx] = s as f32 * gain;
        }
    }
    out
}

#[test]
fn pyramid_levels_for_16_32_64_px() {
    assert_eq!(level_resolutions(16), vec![16]);
    assert_eq!(level_resolutions(32), vec![32, 16]);
    assert_eq!(level_resolutions(64), vec![64, 32, 16]);
    assert!(level_resolutions(8).is_empty());
    for res in [16, 32, 64] {
        let levels = level_resolutions(res);
        let img = uniform(2 * 3 * res * res, res as u64);
        let pyr = laplacian_pyramid(&img, 6, res, levels.len());
        let sizes: Vec<usize> = pyr.iter().map(Vec::len).collect();
        let want: Vec<usize> = levels.iter().map(|r| 6 * r * r).collect();
        assert_eq!(sizes, want, "{res} px");
    }
}

#[test]
fn pyr_down_and_up_match_the_official_mirror_convolution() {
    // Non-square and odd: the separable, strided code against a direct
    // 5×5 convolution then slicing, as pyr_down / pyr_up are written.
    let (h, w) = (6, 9);
    let x = uniform(2 * h * w, 1);
    let down = pyr_down(&x, 2, h, w);
    let (dh, dw) = (h.div_ceil(2), w.div_ceil(2));
    let up = pyr_up(&x, 2, h, w);
    for p in 0..2 {
        let plane = &x[p * h * w..(p + 1) * h * w];
        let full = conv5x5(plane, h, w, 1.0);
        for y in 0..dh {
            for xx in 0..dw {
                let (a, b) = (down[p * dh * dw + y * dw + xx], full[2 * y * w + 2 * xx]);
                // 25 products of |x| ≤ 1: f32 summation differences ~1e-7.
                assert!((a - b).abs() < 1e-6, "down p{p} ({y},{xx}): {a} vs {b}");
            }
        }
        let mut z = vec![0.0; 4 * h * w];
        for y in 0..h {
            for xx in 0..w {
                z[2 * y * 2 * w + 2 * xx] = plane[y * w + xx];
            }
        }
        let full = conv5x5(&z, 2 * h, 2 * w, 4.0);
        for (i, (a, b)) in up[p * 4 * h * w..(p + 1) * 4 * h * w]
            .iter()
            .zip(&full)
            .enumerate()
        {
            assert!((a - b).abs() < 4e-6, "up p{p} [{i}]: {a} vs {b}");
        }
    }
    // Both reproduce a constant, edges included.
    let c = vec![0.3f32; 16 * 16];
    assert!(pyr_down(&c, 1, 16, 16)
        .iter()
        .all(|v| (v - 0.3).abs() < 1e-6));
    assert!(pyr_up(&c, 1, 16, 16).iter().all(|v| (v - 0.3).abs() < 1e-6));
}

#[test]
fn the_laplacian_pyramid_reconstructs_the_image() {
    let res = 64;
    let img = synthetic(2, res, 5);
    let pyr = laplacian_pyramid(&img, 6, res, 3);
    // Not vacuous: the band-pass levels carry detail.
    assert!(pyr[0].iter().map(|v| v.abs()).fold(0.0, f32::max) > 0.05);
    assert!(pyr[1].iter().map(|v| v.abs()).fold(0.0, f32::max) > 0.05);
    let back = reconstruct_laplacian_pyramid(&pyr, 6, res);
    let err = back
        .iter()
        .zip(&img)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // Values ≤ 1 through a few dozen f32 operations per level: ~1e-6.
    assert!(err < 1e-5, "max reconstruction error {err}");
}

#[test]
fn swd_is_small_for_one_distribution_and_large_for_different_ones() {
    let (n, res) = (64, 32);
    let shapes = synthetic(n, res, 1);
    let shapes2 = synthetic(n, res, 2);
    let noise = uniform(n * 3 * res * res, 3);
    let smooth = gradients(n, res, 4);
    let s = |a: &[f32], b: &[f32]| swd_images(a, b, n, 3, res, (10, 11), 7).unwrap();

    // The same images with the same seeds: identical descriptors, zero.
    let same = swd_images(&shapes, &shapes, n, 3, res, (10, 10), 7).unwrap();
    assert_eq!(same.per_level, vec![0.0, 0.0]);

    let self_ = s(&shapes, &shapes);
    let other_images = s(&shapes, &shapes2);
    let vs_noise = s(&shapes, &noise);
    let noise_vs_smooth = s(&noise, &smooth);
    eprintln!("self {self_:?}\nsame distribution {other_images:?}\nshapes/noise {vs_noise:?}\nnoise/smooth {noise_vs_smooth:?}");
    // Same images, other patches: 8192 unit-variance descriptors per level
    // whose sorted projections differ by sampling noise, ~1/√8192 ≈ 0.01
    // per quantile, i.e. ~10–30 ×1e3 (measured 22, 15).
    // Same distribution, other images: at the coarse level the 128 patches
    // of an image are correlated (its colours), so only the 64 images count,
    // ~1/√64 ≈ 0.1 per quantile; up to ~100 (measured 29, 67).
    // Different distributions (white noise has independent components,
    // shapes and gradients strongly correlated ones) differ by O(0.2–0.6)
    // per quantile (measured 318, 178 and 558, 236): more than 5× the first
    // and 2× the second on every level.
    for (lvl, &v) in self_.per_level.iter().enumerate() {
        let same_dist = other_images.per_level[lvl];
        assert!(v > 0.0 && v < 60.0, "self, level {lvl}: {self_:?}");
        assert!(same_dist < 120.0, "same distribution: {other_images:?}");
        for diff in [&vs_noise, &noise_vs_smooth] {
            let d = diff.per_level[lvl];
            assert!(d > 5.0 * v && d > 2.0 * same_dist, "level {lvl}: {diff:?}");
        }
    }
    assert!(vs_noise.mean > 200.0 && noise_vs_smooth.mean > 200.0);
    // Symmetric up to the seeds' roles.
    let ab = swd_images(&noise, &smooth, n, 3, res, (10, 10), 7).unwrap();
    let ba = swd_images(&smooth, &noise, n, 3, res, (10, 10), 7).unwrap();
    assert_eq!(ab, ba);
}

#[test]
fn the_image_order_does_not_change_the_result() {
    let (n, res) = (16, 32);
    let a = synthetic(n, res, 1);
    let b = synthetic(n, res, 2);
    let each = 3 * res * res;
    let mut perm: Vec<usize> = (0..n).collect();
    perm.reverse();
    perm.swap(0, 5);
    let permuted: Vec<f32> = perm
        .iter()
        .flat_map(|&i| a[i * each..(i + 1) * each].iter().copied())
        .collect();
    let r1 = swd_images(&a, &b, n, 3, res, (1, 2), 3).unwrap();
    let r2 = swd_images(&permuted, &b, n, 3, res, (1, 2), 3).unwrap();
    // Bit for bit: patch positions follow the pixels, descriptors are sorted.
    assert_eq!(r1, r2);
    // Feeding in two minibatches is the same as one.
    let mut d = Descriptors::new(res, 3, 1).unwrap();
    d.feed(&a[..5 * each], 5).unwrap();
    d.feed(&a[5 * each..], n - 5).unwrap();
    let mut e = Descriptors::new(res, 3, 2).unwrap();
    e.feed(&b, n).unwrap();
    let r3 = swd::swd(&d.finalize().unwrap(), &e.finalize().unwrap(), 3).unwrap();
    assert_eq!(r1, r3);
    // Another direction seed gives another (close) estimate: seeds matter.
    let r4 = swd_images(&a, &b, n, 3, res, (1, 2), 4).unwrap();
    assert_ne!(r1, r4);
}

#[test]
fn radix_sort_orders_as_total_cmp() {
    let mut v = uniform(5000, 9);
    v.extend([0.0, -0.0, 1e-30, -1e-30, 3.3e38, -3.3e38, 1.0, 1.0]);
    for (i, x) in v.iter_mut().enumerate().step_by(7) {
        *x *= 1e6 * (i as f32 + 1.0);
    }
    let mut want = v.clone();
    want.sort_unstable_by(f32::total_cmp);
    swd::radix_sort(&mut v);
    let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&v), bits(&want));
    let mut empty: Vec<f32> = Vec::new();
    swd::radix_sort(&mut empty);
}

#[test]
fn fakes_round_through_8_bits_like_the_reals() {
    let mut v = vec![-1.5, -1.0, -0.2, 0.0, 0.5, 1.0, 2.0];
    through_u8(&mut v);
    let u: Vec<f32> = [0u8, 0, 102, 128, 191, 255, 255]
        .iter()
        .map(|&u| u as f32 / 127.5 - 1.0)
        .collect();
    assert_eq!(v, u);
    let again = {
        let mut w = v.clone();
        through_u8(&mut w);
        w
    };
    assert_eq!(again, v);
}

#[test]
fn bad_inputs_are_errors() {
    assert!(Descriptors::new(8, 3, 0).is_err());
    assert!(Descriptors::new(24, 3, 0).is_err());
    assert!(Descriptors::new(16, 0, 0).is_err());
    let mut d = Descriptors::new(16, 3, 0).unwrap();
    assert!(d.feed(&[0.0; 100], 1).is_err());
    let mut img = vec![0.0; 3 * 16 * 16];
    img[7] = f32::NAN;
    assert!(d.feed(&img, 1).is_err());
    assert!(Descriptors::new(16, 3, 0).unwrap().finalize().is_err());
    let a = synthetic(2, 16, 1);
    let b = synthetic(3, 16, 1);
    let mut da = Descriptors::new(16, 3, 0).unwrap();
    da.feed(&a, 2).unwrap();
    let mut db = Descriptors::new(16, 3, 0).unwrap();
    db.feed(&b, 3).unwrap();
    assert!(swd::swd(&da.finalize().unwrap(), &db.finalize().unwrap(), 0).is_err());
    assert_eq!(
        Metric::parse_list(&["none".into()]).unwrap(),
        Vec::<Metric>::new()
    );
    assert_eq!(
        Metric::parse_list(&["swd,swd".into()]).unwrap(),
        vec![Metric::Swd]
    );
    assert!(Metric::parse_list(&["fid".into()]).is_err());
}

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stylegan2"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn fails(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "succeeded; stderr {err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
}

#[test]
fn metric_and_train_metrics_cli() {
    let dir = std::env::temp_dir().join(format!("stylegan2-metrics-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    ok(&run(
        &[
            "init",
            "--preset",
            "tiny",
            "--resolution",
            "16",
            "--out",
            "net.safetensors",
        ],
        &dir,
    ));
    let base = [
        "metric",
        "--weights",
        "net.safetensors",
        "--data",
        "synthetic:64",
        "--num",
        "24",
        "--device",
        "cpu",
    ];
    let out = ok(&run(&[&base[..], &["--out", "swd.json"]].concat(), &dir));
    assert!(out.contains("SWDx1e3_16    SWDx1e3_avg"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("swd.json")).unwrap()).unwrap();
    let (l16, avg) = (
        json["SWDx1e3_16"].as_f64().unwrap(),
        json["SWDx1e3_avg"].as_f64().unwrap(),
    );
    // One level: the mean is that level; an untrained G is far from the data.
    assert_eq!(l16, avg);
    assert!(avg > 50.0, "{json}");
    assert_eq!(json["num"], 24);
    // Deterministic from the seed.
    let again = ok(&run(&base, &dir));
    assert_eq!(
        out.lines().nth(2).unwrap(),
        again.lines().nth(2).unwrap(),
        "{out}\n{again}"
    );
    // A dataset smaller than --num: all of it, with a note.
    let small = run(
        &[
            "metric",
            "--weights",
            "net.safetensors",
            "--data",
            "synthetic:5",
            "--num",
            "24",
            "--device",
            "cpu",
        ],
        &dir,
    );
    ok(&small);
    assert!(String::from_utf8_lossy(&small.stderr).contains("5 images"));

    // Bad flags and data.
    fails(&run(&[&base[..], &["--num", "0"]].concat(), &dir), "--num");
    let mut tpu = base.to_vec();
    tpu[8] = "tpu";
    fails(&run(&tpu, &dir), "tpu");
    fails(
        &run(&[&base[..], &["--batch", "0"]].concat(), &dir),
        "--batch",
    );
    fails(&run(&["metric", "--data", "synthetic"], &dir), "--network");
    fails(
        &run(
            &[
                "metric",
                "--weights",
                "missing.safetensors",
                "--data",
                "synthetic",
            ],
            &dir,
        ),
        "missing.safetensors",
    );
    // A folder at another resolution than the network's.
    let folder = dir.join("imgs32");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..2u8 {
        image::RgbImage::from_pixel(32, 32, image::Rgb([i * 100, 20, 30]))
            .save(folder.join(format!("{i}.png")))
            .unwrap();
    }
    fails(
        &run(
            &[
                "metric",
                "--weights",
                "net.safetensors",
                "--data",
                "imgs32",
                "--device",
                "cpu",
            ],
            &dir,
        ),
        "32×32",
    );

    // A conditional network gets the reals' labels (synthetic: 3 classes).
    for (c_dim, good) in [("3", true), ("5", false)] {
        ok(&run(
            &[
                "init",
                "--preset",
                "tiny",
                "--resolution",
                "16",
                "--c-dim",
                c_dim,
                "--out",
                "cond.safetensors",
            ],
            &dir,
        ));
        let mut args = base.to_vec();
        args[2] = "cond.safetensors";
        let o = run(&args, &dir);
        if good {
            assert!(ok(&o).contains("SWDx1e3_avg"));
        } else {
            fails(&o, "label dimensions");
        }
    }

    // Training with --metrics swd: the snapshot's stats line carries it.
    let train = [
        "train",
        "--resolution",
        "16",
        "--data",
        "synthetic:64",
        "--batch",
        "4",
        "--kimg",
        "0.008",
        "--grid",
        "4",
        "--device",
        "cpu",
        "--quiet",
        "--outdir",
        "runs",
    ];
    fails(
        &run(&[&train[..], &["--metrics", "fid"]].concat(), &dir),
        "unknown metric 'fid'",
    );
    fails(
        &run(
            &[&train[..], &["--metrics", "swd", "--metrics-num", "0"]].concat(),
            &dir,
        ),
        "--metrics-num",
    );
    fails(
        &run(
            &[
                "train",
                "--resolution",
                "8",
                "--metrics",
                "swd",
                "--device",
                "cpu",
                "--quiet",
            ],
            &dir,
        ),
        "at least 16×16",
    );
    ok(&run(
        &[&train[..], &["--metrics", "swd", "--metrics-num", "16"]].concat(),
        &dir,
    ));
    let run_dir = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let stats = std::fs::read_to_string(run_dir.join("stats.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(stats.lines().last().unwrap()).unwrap();
    assert!(line["SWDx1e3_avg"].as_f64().unwrap() > 0.0, "{line}");
    assert!(line["SWDx1e3_16"].as_f64().unwrap() > 0.0, "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}
