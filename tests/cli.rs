//! The `stylegan2` binary end to end: init → info → generate → style-mix,
//! and clear errors (non-zero exit, message on stderr) for bad input.

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stylegan2"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn init_info_generate_style_mix() {
    let dir = std::env::temp_dir().join(format!("stylegan2-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = |args: &[&str]| {
        let o = run(args, &dir);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    ok(&[
        "init",
        "--preset",
        "tiny",
        "--resolution",
        "16",
        "--out",
        "w.safetensors",
    ]);
    let info = ok(&["info", "w.safetensors"]);
    assert!(info.contains("tiny") && info.contains("G_ema"), "{info}");
    ok(&[
        "generate",
        "--weights",
        "w.safetensors",
        "--seeds",
        "0-3",
        "--trunc",
        "0.7",
        "--device",
        "cpu",
        "--out",
        "imgs",
    ]);
    for f in ["seed0000.png", "seed0003.png", "grid.png"] {
        let bytes = std::fs::read(dir.join("imgs").join(f)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{f}");
    }
    ok(&[
        "style-mix",
        "--weights",
        "w.safetensors",
        "--rows",
        "0-1",
        "--cols",
        "2-3",
        "--styles",
        "0-1",
        "--out",
        "mix.png",
    ]);
    assert!(dir.join("mix.png").exists());

    let fails = |args: &[&str], needle: &str| {
        let o = run(args, &dir);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    };
    fails(
        &["generate", "--weights", "missing.safetensors", "--out", "x"],
        "missing.safetensors",
    );
    std::fs::write(dir.join("bad.safetensors"), b"not a safetensors file").unwrap();
    fails(&["info", "bad.safetensors"], "bad.safetensors");
    fails(
        &[
            "generate",
            "--weights",
            "w.safetensors",
            "--noise-mode",
            "loud",
            "--out",
            "x",
        ],
        "noise mode",
    );
    fails(
        &[
            "generate",
            "--weights",
            "w.safetensors",
            "--device",
            "tpu",
            "--out",
            "x",
        ],
        "unknown device",
    );
    fails(&["bench", "--iters", "0"], "--iters");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn augment_writes_a_grid_of_draws_and_names_bad_flags() {
    let dir = std::env::temp_dir().join(format!("stylegan2-cli-aug-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = run(
        &[
            "augment",
            "--data",
            "synthetic:8",
            "--p",
            "0.5",
            "--num",
            "4",
            "--draws",
            "2",
            "--out",
            "grid.png",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Synthetic images are 32×32: 4 columns, the originals and 2 draws.
    let img = image::open(dir.join("grid.png")).unwrap();
    assert_eq!((img.width(), img.height()), (4 * 32, 3 * 32));
    let o = run(
        &[
            "augment",
            "--data",
            "synthetic:8",
            "--augpipe",
            "bgz",
            "--out",
            "x.png",
        ],
        &dir,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("bgz"), "{err}");
    let o = run(&["train", "--aug", "sometimes", "--kimg", "0.004"], &dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("sometimes"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
