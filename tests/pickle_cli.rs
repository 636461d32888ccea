//! NVIDIA's pickles through the `stylegan2` binary: `convert`, `info`,
//! `generate --latents numpy` giving the official images, and a transfer
//! run (`train --resume X.pkl --freezed N`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stylegan2-pkl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary in `dir`; returns (success, stdout, stderr).
fn run(args: &[&str], dir: &Path) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_stylegan2"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn ok(args: &[&str], dir: &Path) -> (String, String) {
    let (s, out, err) = run(args, dir);
    assert!(s, "{args:?}: {err}");
    (out, err)
}

fn st_tensor(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name)
        .unwrap_or_else(|_| panic!("{name} not in {}", path.display()))
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn convert_and_info() {
    let dir = tmp("convert");
    let pkl = data("sg2_uncond.pkl");
    let (out, _) = ok(&["convert", pkl.to_str().unwrap(), "u.safetensors"], &dir);
    assert!(out.contains("augment_pipe.p 0.25"), "{out}");
    for f in [pkl.to_str().unwrap(), "u.safetensors"] {
        let (info, _) = ok(&["info", f], &dir);
        assert!(info.contains("G_ema: 56 tensors"), "{info}");
    }
    // A truncated pickle fails naming the problem.
    let bytes = std::fs::read(&pkl).unwrap();
    std::fs::write(dir.join("cut.pkl"), &bytes[..bytes.len() / 3]).unwrap();
    let (s, _, err) = run(&["convert", "cut.pkl", "x.safetensors"], &dir);
    assert!(
        !s && err.contains("cut.pkl") && err.contains("truncated"),
        "{err}"
    );
    assert!(!dir.join("x.safetensors").exists());
}

#[test]
fn generate_with_numpy_latents_writes_the_official_images() {
    let dir = tmp("generate");
    let pkl = data("sg2_uncond.pkl");
    ok(
        &[
            "generate",
            "--weights",
            pkl.to_str().unwrap(),
            "--seeds",
            "0-3",
            "--trunc",
            "0.7",
            "--latents",
            "numpy",
            "--noise-mode",
            "const",
            "--device",
            "cpu",
            "--out",
            "imgs",
        ],
        &dir,
    );
    let want = st_tensor(&data("sg2_uncond.oracle.safetensors"), "img_psi0.7");
    for seed in 0..4 {
        let img = image::open(dir.join(format!("imgs/seed{seed:04}.png")))
            .unwrap()
            .to_rgb8();
        assert_official(&img, (0, 0), &want, seed);
    }
    // style_mixing.py's latents too: the header images of the figure.
    ok(
        &[
            "style-mix",
            "--weights",
            pkl.to_str().unwrap(),
            "--rows",
            "0",
            "--cols",
            "1-2",
            "--styles",
            "0-1",
            "--trunc",
            "0.7",
            "--latents",
            "numpy",
            "--device",
            "cpu",
            "--out",
            "mix.png",
        ],
        &dir,
    );
    let mix = image::open(dir.join("mix.png")).unwrap().to_rgb8();
    assert_eq!(mix.dimensions(), (48, 32));
    assert_official(&mix, (16, 0), &want, 1);
    assert_official(&mix, (32, 0), &want, 2);
    assert_official(&mix, (0, 16), &want, 0);
}

/// The 16×16 cell at `at` of `img` is the official 8-bit image of `seed`
/// (generate.py: `(x·127.5 + 128).clamp(0, 255)` to uint8; a value within
/// float noise of a step may land one off).
fn assert_official(img: &image::RgbImage, at: (u32, u32), want: &[f32], seed: usize) {
    let (c, h, w) = (3, 16, 16);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let v = want[((seed * c + ch) * h + y) * w + x];
                let q = (v * 127.5 + 128.0).clamp(0.0, 255.0) as i32;
                let got = img.get_pixel(at.0 + x as u32, at.1 + y as u32)[ch] as i32;
                assert!(
                    (got - q).abs() <= 1,
                    "seed {seed} ({x},{y},{ch}): {got} vs {q}"
                );
            }
        }
    }
}

#[test]
fn transfer_run_from_a_pickle_with_freeze_d() {
    let dir = tmp("transfer");
    let pkl = data("sg2_uncond.pkl");
    ok(&["convert", pkl.to_str().unwrap(), "src.safetensors"], &dir);
    let (out, err) = ok(
        &[
            "train",
            "--resume",
            pkl.to_str().unwrap(),
            "--freezed",
            "2",
            "--data",
            "synthetic:64",
            "--resolution",
            "16",
            "--batch",
            "4",
            "--kimg",
            "0.032",
            "--snap-kimg",
            "0",
            "--grid",
            "4",
            "--quiet",
            "--device",
            "cpu",
        ],
        &dir,
    );
    assert!(
        err.contains("transfer learning") && err.contains("preset 'auto'"),
        "{err}"
    );
    assert!(err.contains("G.channel_base = 128"), "{err}");
    // kimg 0 at the start: 8 steps of 4 images.
    assert!(out.contains("trained 8 steps (0.032 kimg)"), "{out}");
    let snap = std::fs::read_dir(dir.join("training-runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("network-snapshot-00000032.safetensors");
    let src = dir.join("src.safetensors");
    // Freeze-D 2: b16's fromrgb and conv0 unchanged, conv1 trained.
    for (name, frozen) in [
        ("D.b16.fromrgb.weight", true),
        ("D.b16.conv0.weight", true),
        ("D.b16.conv1.weight", false),
        ("G.mapping.fc0.weight", false),
    ] {
        let same = st_tensor(&snap, name) == st_tensor(&src, name);
        assert_eq!(same, frozen, "{name}");
    }
}

/// A damaged pickle (G.mapping.fc1.weight misshapen, G_ema intact; or a
/// tensor missing) is refused by generate, style-mix and metric as by
/// convert, naming the tensor, and nothing is written.
#[test]
fn every_command_refuses_the_pickles_convert_refuses() {
    let dir = tmp("damaged");
    for (pkl, needle) in [
        ("bad_shape.pkl", "mapping.fc1.weight"),
        ("bad_missing.pkl", "synthesis.b16.torgb.bias"),
    ] {
        let p = data(pkl);
        let p = p.to_str().unwrap();
        let (s, _, err) = run(&["convert", p, "c.safetensors"], &dir);
        assert!(!s && err.contains(needle), "convert {pkl}: {err}");
        for args in [
            vec![
                "generate",
                "--network",
                p,
                "--seeds",
                "0",
                "--device",
                "cpu",
                "--outdir",
                "g",
            ],
            vec![
                "style-mix",
                "--network",
                p,
                "--device",
                "cpu",
                "--out",
                "m.png",
            ],
            vec![
                "metric",
                "--network",
                p,
                "--data",
                "synthetic:8",
                "--num",
                "8",
                "--device",
                "cpu",
            ],
        ] {
            let (s, _, err) = run(&args, &dir);
            assert!(
                !s && err.contains(needle) && err.contains(pkl),
                "{args:?}: {err}"
            );
        }
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).ok();
}
